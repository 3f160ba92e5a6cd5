// Shortest expected delay, net/netfilter/ipvs/ip_vs_sed.c.
// Expected delay (active + 1) / weight: only active connections count, the +1 is the incoming
// job. Same strict cross-multiplied comparison as wlc, so ties keep the first in list order.
import { DEST_F_OVERLOAD, type Dest } from "../dest.js";
import type { Service } from "../service.js";
import type { SchedDetail, Scheduler } from "./types.js";
import { ratio, usable } from "./util.js";

export function createSed(): Scheduler {
  return {
    name: "sed",
    explain(svc: Service): SchedDetail {
      return {
        rule: "shortest expected delay: the smallest (active + 1) / weight, ties to the first in list order",
        figures: {},
        dests: svc.dests.map((d) => ({
          dest: d,
          figures: {
            weight: d.weight,
            active: d.activeConns,
            "(active+1)/weight": ratio(d.activeConns + 1, d.weight),
            overloaded: (d.flags & DEST_F_OVERLOAD) !== 0,
            usable: usable(d),
          },
        })),
      };
    },
    schedule(svc: Service): Dest | null {
      const ds = svc.dests;
      const n = ds.length;
      let i = 0;
      let least: Dest | null = null;
      for (; i < n; i++) {
        if (usable(ds[i])) {
          least = ds[i];
          break;
        }
      }
      if (least === null) return null;
      let loh = least.activeConns + 1;
      for (i++; i < n; i++) {
        const d = ds[i];
        if ((d.flags & DEST_F_OVERLOAD) !== 0) continue;
        const doh = d.activeConns + 1;
        if (loh * d.weight > doh * least.weight) {
          least = d;
          loh = doh;
        }
      }
      return least;
    },
  };
}
