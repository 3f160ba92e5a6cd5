// Weighted random two choices, net/netfilter/ipvs/ip_vs_twos.c (Mitzenmacher's power of two
// choices). total = sum of usable weights + 1; two random points r1, r2 in [0, total) are each
// walked down the list (r -= weight, picked at r <= 0, so r = 0 picks the first usable dest);
// the second choice wins only when strictly less loaded: w2*oh1 > w1*oh2.
import { DEST_F_OVERLOAD, type Dest, destOverhead } from "../dest.js";
import type { Flow } from "../packet/flow.js";
import type { Service } from "../service.js";
import type { SchedContext, Scheduler } from "./types.js";

export function createTwos(): Scheduler {
  return {
    name: "twos",
    schedule(svc: Service, _flow: Flow, ctx: SchedContext): Dest | null {
      const ds = svc.dests;
      let total = 0;
      let any = false;
      for (const d of ds) {
        if ((d.flags & DEST_F_OVERLOAD) === 0 && d.weight > 0) {
          total += d.weight;
          any = true;
        }
      }
      if (!any) return null;
      total += 1;
      // Kernel: prandom_u32() % total (get_random_u32_below in newer kernels); drawn in this order.
      let r1 = (ctx.random() >>> 0) % total;
      let r2 = (ctx.random() >>> 0) % total;
      let c1: Dest | null = null;
      let c2: Dest | null = null;
      let w1 = -1;
      let w2 = -1;
      let oh1 = 0;
      let oh2 = 0;
      for (const d of ds) {
        if ((d.flags & DEST_F_OVERLOAD) !== 0) continue;
        const w = d.weight;
        if (w <= 0) continue;
        r1 -= w;
        r2 -= w;
        if (r1 <= 0 && w1 === -1) {
          c1 = d;
          w1 = w;
          oh1 = destOverhead(d);
        }
        if (r2 <= 0 && w2 === -1) {
          c2 = d;
          w2 = w;
          oh2 = destOverhead(d);
        }
        if (w1 !== -1 && w2 !== -1) break;
      }
      if (c2 !== null && w2 * oh1 > w1 * oh2) return c2;
      return c1;
    },
  };
}
