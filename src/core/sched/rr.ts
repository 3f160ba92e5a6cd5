// Round-robin, net/netfilter/ipvs/ip_vs_rr.c.
// The cursor is the last chosen dest (or the list head); a search walks on from it to the end of
// svc->destinations, then from the head up to and including the cursor itself. Dests with weight
// 0 or DEST_F_OVERLOAD are passed over. The list is newest-first, so a fresh service starts with
// the most recently added dest.
import type { Dest } from "../dest.js";
import type { Service } from "../service.js";
import type { SchedDetail, Scheduler } from "./types.js";
import { usable } from "./util.js";

interface RrState {
  /** Last chosen dest; null = the list head. */
  cursor: Dest | null;
  /**
   * The list as it was before the last change: ip_vs_rr_del_dest moves a cursor sitting on the
   * removed dest to its predecessor (p->next->prev after list_del), which only the old order knows.
   */
  order: Dest[];
}

function state(svc: Service): RrState {
  let st = svc.schedData as RrState | undefined;
  if (st === undefined) {
    st = { cursor: null, order: svc.dests.slice() };
    svc.schedData = st;
  }
  return st;
}

export function createRr(): Scheduler {
  return {
    name: "rr",
    initService(svc: Service): void {
      svc.schedData = { cursor: null, order: svc.dests.slice() } satisfies RrState;
    },
    doneService(svc: Service): void {
      svc.schedData = undefined;
    },
    addDest(svc: Service): void {
      state(svc).order = svc.dests.slice();
    },
    updDest(svc: Service): void {
      state(svc).order = svc.dests.slice();
    },
    delDest(svc: Service, dest: Dest): void {
      const st = state(svc);
      if (st.cursor === dest) {
        const i = st.order.indexOf(dest);
        // Predecessor in the old list; the head when it was first (or unknown).
        st.cursor = i > 0 ? st.order[i - 1] : null;
      }
      st.order = svc.dests.slice();
    },
    cloneState(data: unknown): unknown {
      const st = data as RrState | undefined;
      return st === undefined ? undefined : ({ cursor: st.cursor, order: st.order } satisfies RrState);
    },
    explain(svc: Service, _flow, _ctx, after: unknown): SchedDetail {
      const cur = (svc.schedData as RrState | undefined)?.cursor ?? null;
      return {
        rule: "round robin: the first usable destination after the cursor, wrapping to the head (weight 0 and overloaded ones are passed over)",
        figures: { cursor: cur, cursorAfter: (after as RrState | undefined)?.cursor ?? null },
        dests: svc.dests.map((d) => ({
          dest: d,
          figures: { weight: d.weight, usable: usable(d), cursor: d === cur },
        })),
      };
    },
    schedule(svc: Service): Dest | null {
      const st = state(svc);
      const ds = svc.dests;
      const n = ds.length;
      const last = st.cursor;
      // A cursor no longer on the list restarts from the head with a single pass, as the
      // kernel's "do not loop forever" guard ends up doing.
      const start = last === null ? 0 : ds.indexOf(last) + 1;
      for (let i = start; i < n; i++) {
        const d = ds[i];
        if (usable(d)) {
          st.cursor = d;
          return d;
        }
      }
      // Second pass, head .. cursor inclusive (the cursor itself is checked last).
      for (let i = 0; i < start; i++) {
        const d = ds[i];
        if (usable(d)) {
          st.cursor = d;
          return d;
        }
      }
      return null;
    },
  };
}
