// Weighted round-robin, net/netfilter/ipvs/ip_vs_wrr.c.
// di = gcd of the positive weights, mw = max weight - (di - 1), cw = current weight. A search
// walks the list from the cursor for a dest with weight >= cw that is not overloaded; at the end
// of the list cw drops by di and the walk restarts at the head; below 1 it wraps to mw. Every
// dest change resets the cursor to the head and realigns cw. The "last pass" / stop logic ends a
// fruitless search after every dest was tried with cw <= di (i.e. weight >= 1).
import { DEST_F_OVERLOAD, type Dest } from "../dest.js";
import type { Service } from "../service.js";
import type { SchedDetail, Scheduler } from "./types.js";
import { gcd } from "./util.js";

interface WrrState {
  /** Current dest; null = the list head. */
  cl: Dest | null;
  cw: number;
  mw: number;
  di: number;
}

function gcdWeight(svc: Service): number {
  let g = 0;
  for (const d of svc.dests) {
    if (d.weight > 0) g = g > 0 ? gcd(d.weight, g) : d.weight;
  }
  return g !== 0 ? g : 1;
}

/** Max weight over all dests, overloaded ones included (ip_vs_wrr_max_weight). */
function maxWeight(svc: Service): number {
  let w = 0;
  for (const d of svc.dests) if (d.weight > w) w = d.weight;
  return w;
}

function init(svc: Service): WrrState {
  const di = gcdWeight(svc);
  const mw = maxWeight(svc) - (di - 1);
  const st: WrrState = { cl: null, cw: mw, mw, di };
  svc.schedData = st;
  return st;
}

function destChanged(svc: Service): void {
  const st = svc.schedData as WrrState | undefined;
  if (st === undefined) {
    init(svc);
    return;
  }
  st.cl = null;
  st.di = gcdWeight(svc);
  st.mw = maxWeight(svc) - (st.di - 1);
  if (st.cw > st.mw || st.cw === 0) st.cw = st.mw;
  else if (st.di > 1) st.cw = Math.trunc(st.cw / st.di) * st.di + 1;
}

export function createWrr(): Scheduler {
  return {
    name: "wrr",
    initService(svc: Service): void {
      init(svc);
    },
    doneService(svc: Service): void {
      svc.schedData = undefined;
    },
    addDest: destChanged,
    delDest: destChanged,
    updDest: destChanged,
    cloneState(data: unknown): unknown {
      const st = data as WrrState | undefined;
      return st === undefined ? undefined : { ...st };
    },
    explain(svc: Service, _flow, _ctx, after: unknown): SchedDetail {
      const st = svc.schedData as WrrState | undefined;
      const next = after as WrrState | undefined;
      const cw = st?.cw ?? maxWeight(svc) - (gcdWeight(svc) - 1);
      return {
        rule: "weighted round robin: the first destination after the cursor whose weight >= the current weight cw (not overloaded); at the end of the list cw drops by gcd, below 1 it wraps to max",
        figures: {
          cursor: st?.cl ?? null,
          cw,
          gcd: st?.di ?? gcdWeight(svc),
          max: st?.mw ?? maxWeight(svc) - (gcdWeight(svc) - 1),
          cursorAfter: next?.cl ?? null,
          cwAfter: next?.cw ?? null,
        },
        dests: svc.dests.map((d) => ({
          dest: d,
          figures: {
            weight: d.weight,
            overloaded: (d.flags & DEST_F_OVERLOAD) !== 0,
            "weight>=cw": d.weight >= cw,
            cursor: d === (st?.cl ?? null),
          },
        })),
      };
    },
    schedule(svc: Service): Dest | null {
      const st = (svc.schedData as WrrState | undefined) ?? init(svc);
      if (st.mw === 0) return null; // no dest with a positive weight
      const ds = svc.dests;
      const n = ds.length;
      const last = st.cl;
      let stop: Dest | null = null;
      let lastPass = false;
      let restarted = false;
      let pos = last === null ? -1 : ds.indexOf(last);
      for (;;) {
        for (let i = pos + 1; i < n; i++) {
          const d = ds[i];
          if ((d.flags & DEST_F_OVERLOAD) === 0 && d.weight >= st.cw) {
            st.cl = d;
            return d;
          }
          if (d === stop) {
            st.cl = d;
            return null;
          }
        }
        pos = -1;
        st.cw -= st.di;
        if (st.cw <= 0) {
          st.cw = st.mw;
          // Either the pass with w >= 1 already covered every dest, or the search began at the
          // head, so its single traversal at w >= 1 did.
          if (lastPass || last === null) {
            st.cl = null;
            return null;
          }
          restarted = true;
        }
        lastPass = st.cw <= st.di;
        // The first w >= 1 traversal only saw the dests after `last`; finish at `last`.
        if (lastPass && restarted && last !== null) stop = last;
      }
    },
  };
}
