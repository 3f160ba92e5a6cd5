// Least-connection, net/netfilter/ipvs/ip_vs_lc.c.
// The dest with the smallest overhead (active*256 + inactive) wins, weight ignored except that
// weight 0 (quiesced) and DEST_F_OVERLOAD dests are skipped. Strict "<": ties keep the first
// found in list order (newest dest first).
import { type Dest, destOverhead } from "../dest.js";
import type { Service } from "../service.js";
import type { SchedDetail, Scheduler } from "./types.js";
import { loadFigures, usable } from "./util.js";

export function createLc(): Scheduler {
  return {
    name: "lc",
    explain(svc: Service): SchedDetail {
      return {
        rule: "least connections: the smallest overhead = active*256 + inactive among usable destinations, ties to the first in list order",
        figures: {},
        dests: svc.dests.map((d) => ({ dest: d, figures: loadFigures(d) })),
      };
    },
    schedule(svc: Service): Dest | null {
      let least: Dest | null = null;
      let loh = 0;
      for (const d of svc.dests) {
        if (!usable(d)) continue;
        const doh = destOverhead(d);
        if (least === null || doh < loh) {
          least = d;
          loh = doh;
        }
      }
      return least;
    },
  };
}
