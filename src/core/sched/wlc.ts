// Weighted least-connection (the default scheduler), net/netfilter/ipvs/ip_vs_wlc.c.
// Minimises overhead/weight with overhead = active*256 + inactive, compared without division:
// loh*dw > doh*lw ⇔ loh/lw > doh/dw. Strict, so ties keep the first found in list order.
import type { Dest } from "../dest.js";
import type { Service } from "../service.js";
import type { SchedDetail, Scheduler } from "./types.js";
import { wlcFigures, wlcSelect } from "./util.js";

export function createWlc(): Scheduler {
  return {
    name: "wlc",
    explain(svc: Service): SchedDetail {
      return {
        rule: "weighted least-connection: the smallest overhead/weight (overhead = active*256 + inactive), ties to the first in list order",
        figures: {},
        dests: svc.dests.map((d) => ({ dest: d, figures: wlcFigures(d) })),
      };
    },
    schedule(svc: Service): Dest | null {
      return wlcSelect(svc.dests);
    },
  };
}
