// Locality-based least-connection with replication, net/netfilter/ipvs/ip_vs_lblcr.c.
// A cache maps the packet's destination address to a set of dests (newest member first, as
// list_add_rcu). On a hit the set's weighted-least-connection member that is available and not
// DEST_F_OVERLOAD is the candidate; when the set has more than one member and was not modified
// for lblcr_expiration (24 h), its weighted-most-loaded member is dropped. A candidate that is
// missing or overloaded (active > weight while some dest has active*2 < weight) makes weighted
// least-connection over the whole service pick a dest, which joins the set. Garbage collection
// of whole entries is lblc's (60 s timer, 6 min / 24 h), run lazily from ctx.now.
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD, type Dest, destOverhead } from "../dest.js";
import type { Flow } from "../packet/flow.js";
import type { Service } from "../service.js";
import {
  doneLocality,
  initLocality,
  LBLC_DEFAULT_EXPIRATION_MS,
  type LocalityState,
  lblcOverloaded,
  localityState,
} from "./lblc.js";
import type { SchedContext, Scheduler } from "./types.js";
import { wlcSelect } from "./util.js";

interface LblcrEntry {
  set: Dest[];
  lastmod: number;
  lastuse: number;
}

export type LblcrState = LocalityState<LblcrEntry>;

/** ip_vs_dest_set_min: the seed must be non-overloaded, weighted and available. */
function setMin(set: readonly Dest[]): Dest | null {
  const n = set.length;
  let i = 0;
  let least: Dest | null = null;
  for (; i < n; i++) {
    const d = set[i];
    if ((d.flags & DEST_F_OVERLOAD) !== 0) continue;
    if (d.weight > 0 && (d.flags & DEST_F_AVAILABLE) !== 0) {
      least = d;
      break;
    }
  }
  if (least === null) return null;
  let loh = destOverhead(least);
  for (i++; i < n; i++) {
    const d = set[i];
    if ((d.flags & DEST_F_OVERLOAD) !== 0) continue;
    const doh = destOverhead(d);
    if (loh * d.weight > doh * least.weight && (d.flags & DEST_F_AVAILABLE) !== 0) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

/** ip_vs_dest_set_max: weighted most-loaded member with a positive weight (moh/mw < doh/dw). */
function setMax(set: readonly Dest[]): Dest | null {
  const n = set.length;
  let i = 0;
  let most: Dest | null = null;
  for (; i < n; i++) {
    if (set[i].weight > 0) {
      most = set[i];
      break;
    }
  }
  if (most === null) return null;
  let moh = destOverhead(most);
  for (i++; i < n; i++) {
    const d = set[i];
    const doh = destOverhead(d);
    if (moh * d.weight < doh * most.weight && d.weight > 0) {
      most = d;
      moh = doh;
    }
  }
  return most;
}

export function createLblcr(expiration = LBLC_DEFAULT_EXPIRATION_MS): Scheduler {
  return {
    name: "lblcr",
    initService: initLocality,
    doneService: doneLocality,
    schedule(svc: Service, flow: Flow, ctx: SchedContext): Dest | null {
      const now = ctx.now;
      const st = localityState<LblcrEntry>(svc, now, expiration);
      const en = st.table.get(flow.daddr);
      if (en !== undefined) {
        en.lastuse = now;
        let dest = setMin(en.set);
        // time_after(now, lastmod + expiration): strictly later.
        if (en.set.length > 1 && now > en.lastmod + expiration) {
          const m = setMax(en.set);
          if (m !== null) {
            en.set.splice(en.set.indexOf(m), 1);
            en.lastmod = now;
          }
        }
        if (dest !== null && !lblcOverloaded(dest, svc)) return dest;
        dest = wlcSelect(svc.dests);
        if (dest === null) return null;
        if (!st.dead && en.set.indexOf(dest) < 0) {
          en.set.unshift(dest);
          en.lastmod = now;
        }
        return dest;
      }
      const dest = wlcSelect(svc.dests);
      if (dest === null) return null;
      if (!st.dead) st.table.set(flow.daddr, { set: [dest], lastmod: now, lastuse: now });
      return dest;
    },
  };
}
