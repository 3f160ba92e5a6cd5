// Overflow-connection, net/netfilter/ipvs/ip_vs_ovf.c.
// The highest-weight dest whose active connections do not exceed its weight (active <= weight
// still qualifies); when it fills up, connections overflow to the next highest. Strict ">" on
// weight: ties keep the first in list order.
import { DEST_F_OVERLOAD, type Dest } from "../dest.js";
import type { Service } from "../service.js";
import type { SchedDetail, Scheduler } from "./types.js";

export function createOvf(): Scheduler {
  return {
    name: "ovf",
    explain(svc: Service): SchedDetail {
      return {
        rule: "overflow: the highest weight among destinations with active <= weight (not overloaded, weight > 0), ties to the first in list order",
        figures: {},
        dests: svc.dests.map((d) => ({
          dest: d,
          figures: {
            weight: d.weight,
            active: d.activeConns,
            overloaded: (d.flags & DEST_F_OVERLOAD) !== 0,
            "active<=weight": d.activeConns <= d.weight,
          },
        })),
      };
    },
    schedule(svc: Service): Dest | null {
      let best: Dest | null = null;
      let hw = 0;
      for (const d of svc.dests) {
        const w = d.weight;
        if ((d.flags & DEST_F_OVERLOAD) !== 0 || d.activeConns > w || w === 0) continue;
        if (best === null || w > hw) {
          best = d;
          hw = w;
        }
      }
      return best;
    },
  };
}
