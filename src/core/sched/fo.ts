// Weighted fail-over, net/netfilter/ipvs/ip_vs_fo.c.
// All traffic to the non-overloaded dest with the highest weight; strict ">" so among equal
// weights the first in list order (newest) wins. Weight 0 never beats the initial 0.
import { DEST_F_OVERLOAD, type Dest } from "../dest.js";
import type { Service } from "../service.js";
import type { SchedDetail, Scheduler } from "./types.js";

export function createFo(): Scheduler {
  return {
    name: "fo",
    explain(svc: Service): SchedDetail {
      return {
        rule: "weighted fail-over: the highest weight among destinations not overloaded, ties to the first in list order",
        figures: {},
        dests: svc.dests.map((d) => ({
          dest: d,
          figures: { weight: d.weight, overloaded: (d.flags & DEST_F_OVERLOAD) !== 0 },
        })),
      };
    },
    schedule(svc: Service): Dest | null {
      let best: Dest | null = null;
      let hw = 0;
      for (const d of svc.dests) {
        if ((d.flags & DEST_F_OVERLOAD) === 0 && d.weight > hw) {
          best = d;
          hw = d.weight;
        }
      }
      return best;
    },
  };
}
