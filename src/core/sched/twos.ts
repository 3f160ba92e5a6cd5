// Weighted random two choices, net/netfilter/ipvs/ip_vs_twos.c (Mitzenmacher's power of two
// choices). total = sum of usable weights + 1; two random points r1, r2 in [0, total) are each
// walked down the list (r -= weight, picked at r <= 0, so r = 0 picks the first usable dest);
// the second choice wins only when strictly less loaded: w2*oh1 > w1*oh2.
import { DEST_F_OVERLOAD, type Dest, destOverhead } from "../dest.js";
import type { Flow } from "../packet/flow.js";
import type { Service } from "../service.js";
import type { SchedContext, SchedDetail, Scheduler } from "./types.js";
import { loadFigures } from "./util.js";

function usableTwos(d: Dest): boolean {
  return (d.flags & DEST_F_OVERLOAD) === 0 && d.weight > 0;
}

/** Sum of the usable weights + 1; 0 when no dest is usable. */
function twosTotal(ds: readonly Dest[]): number {
  let total = 0;
  let any = false;
  for (const d of ds) {
    if (usableTwos(d)) {
      total += d.weight;
      any = true;
    }
  }
  return any ? total + 1 : 0;
}

/** The usable dest at point r of the weight line (r -= weight, picked at r <= 0); null past the end. */
function twosPoint(ds: readonly Dest[], r: number): Dest | null {
  for (const d of ds) {
    if (!usableTwos(d)) continue;
    r -= d.weight;
    if (r <= 0) return d;
  }
  return null;
}

/** The kernel's draws, in this order: prandom_u32() % total (get_random_u32_below in newer kernels). */
function draw(ctx: SchedContext, total: number): number {
  return (ctx.random() >>> 0) % total;
}

/** The second choice wins only when strictly less loaded: w2*oh1 > w1*oh2. */
function secondWins(c1: Dest | null, c2: Dest | null): boolean {
  if (c2 === null) return false;
  if (c1 === null) return true;
  return c2.weight * destOverhead(c1) > c1.weight * destOverhead(c2);
}

export function createTwos(): Scheduler {
  return {
    name: "twos",
    explain(svc: Service, _flow: Flow, ctx: SchedContext): SchedDetail {
      const ds = svc.dests;
      const total = twosTotal(ds);
      const r1 = total === 0 ? null : draw(ctx, total);
      const r2 = total === 0 ? null : draw(ctx, total);
      const c1 = r1 === null ? null : twosPoint(ds, r1);
      const c2 = r2 === null ? null : twosPoint(ds, r2);
      return {
        rule: "weighted random two choices: two random points on the usable weights pick two candidates; the second wins only when less loaded (w2*overhead1 > w1*overhead2)",
        figures: {
          total,
          r1,
          r2,
          first: c1,
          second: c2,
          "w2*overhead1": c1 === null || c2 === null ? null : c2.weight * destOverhead(c1),
          "w1*overhead2": c1 === null || c2 === null ? null : c1.weight * destOverhead(c2),
          secondWins: secondWins(c1, c2),
        },
        dests: ds.map((d) => ({ dest: d, figures: loadFigures(d) })),
      };
    },
    schedule(svc: Service, _flow: Flow, ctx: SchedContext): Dest | null {
      const ds = svc.dests;
      const total = twosTotal(ds);
      if (total === 0) return null;
      const r1 = draw(ctx, total);
      const r2 = draw(ctx, total);
      const c1 = twosPoint(ds, r1);
      const c2 = twosPoint(ds, r2);
      return secondWins(c1, c2) ? c2 : c1;
    },
  };
}
