// Never queue, net/netfilter/ipvs/ip_vs_nq.c.
// The first usable dest (list order) with no active connection is taken at once; otherwise the
// shortest expected delay (active + 1) / weight, strict comparison, first found wins ties.
import type { Dest } from "../dest.js";
import type { Service } from "../service.js";
import type { SchedDetail, Scheduler } from "./types.js";
import { ratio, usable } from "./util.js";

export function createNq(): Scheduler {
  return {
    name: "nq",
    explain(svc: Service): SchedDetail {
      return {
        rule: "never queue: the first usable destination with no active connection, else the smallest (active + 1) / weight",
        figures: {},
        dests: svc.dests.map((d) => ({
          dest: d,
          figures: {
            weight: d.weight,
            active: d.activeConns,
            idle: d.activeConns === 0,
            "(active+1)/weight": ratio(d.activeConns + 1, d.weight),
            usable: usable(d),
          },
        })),
      };
    },
    schedule(svc: Service): Dest | null {
      let least: Dest | null = null;
      let loh = 0;
      for (const d of svc.dests) {
        if (!usable(d)) continue;
        if (d.activeConns === 0) return d;
        const doh = d.activeConns + 1;
        if (least === null || loh * d.weight > doh * least.weight) {
          least = d;
          loh = doh;
        }
      }
      return least;
    },
  };
}
