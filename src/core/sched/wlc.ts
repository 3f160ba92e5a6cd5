// Weighted least-connection (the default scheduler), net/netfilter/ipvs/ip_vs_wlc.c.
// Minimises overhead/weight with overhead = active*256 + inactive, compared without division:
// loh*dw > doh*lw ⇔ loh/lw > doh/dw. Strict, so ties keep the first found in list order.
import type { Dest } from "../dest.js";
import type { Service } from "../service.js";
import type { Scheduler } from "./types.js";
import { wlcSelect } from "./util.js";

export function createWlc(): Scheduler {
  return {
    name: "wlc",
    schedule(svc: Service): Dest | null {
      return wlcSelect(svc.dests);
    },
  };
}
