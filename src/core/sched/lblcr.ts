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
  cloneLocality,
  doneLocality,
  initLocality,
  LBLC_DEFAULT_EXPIRATION_MS,
  type LocalityEntry,
  type LocalityState,
  lblcOverloaded,
  localityAdd,
  localityGet,
  localityLookup,
  localityState,
  overloadFigures,
} from "./lblc.js";
import type { Figure, SchedContext, SchedDetail, Scheduler } from "./types.js";
import { destText, flowDaddrText, wlcFigures, wlcSelect } from "./util.js";

interface LblcrEntry extends LocalityEntry {
  set: Dest[];
  lastmod: number;
}

export type LblcrState = LocalityState<LblcrEntry>;

const newEntry = (dest: Dest, now: number): LblcrEntry => ({
  set: [dest],
  lastmod: now,
  lastuse: now,
  w0: 0,
  w1: 0,
  w2: 0,
  w3: 0,
  next: null,
});

const copyEntry = (e: LblcrEntry): LblcrEntry => ({
  set: e.set.slice(),
  lastmod: e.lastmod,
  lastuse: e.lastuse,
  w0: e.w0,
  w1: e.w1,
  w2: e.w2,
  w3: e.w3,
  next: null,
});

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
    cloneState(data: unknown): unknown {
      return cloneLocality<LblcrEntry>(data, copyEntry);
    },
    explain(svc: Service, flow: Flow, ctx: SchedContext): SchedDetail {
      const now = ctx.now;
      const { entry: en, tableSize } = localityLookup<LblcrEntry>(svc, flow, now, expiration, copyEntry);
      let figures: Record<string, Figure | Dest> = {
        key: flowDaddrText(flow),
        tableSize,
        set: en === undefined ? null : en.set.map(destText).join(" "),
        entryIdleMs: en === undefined ? null : now - en.lastuse,
      };
      let path: string;
      if (en === undefined) path = "no entry for the address: weighted least-connection, a new set of one";
      else {
        const min = setMin(en.set);
        const drops = en.set.length > 1 && now > en.lastmod + expiration ? setMax(en.set) : null;
        figures = { ...figures, setMin: min, dropsMostLoaded: drops };
        if (min === null) path = "no usable member in the set: weighted least-connection joins the set";
        else {
          figures = { ...figures, ...overloadFigures(min, svc) };
          path = lblcOverloaded(min, svc)
            ? "the set's least-loaded member is overloaded (active > weight while another has active*2 < weight): weighted least-connection joins the set"
            : "the set's weighted least-connection member";
        }
      }
      figures.path = path;
      return {
        rule: "locality-based least-connection with replication: the least-loaded usable member of the set cached for the packet's destination address, unless overloaded; else weighted least-connection, which joins the set",
        figures,
        dests: svc.dests.map((d) => ({ dest: d, figures: wlcFigures(d) })),
      };
    },
    schedule(svc: Service, flow: Flow, ctx: SchedContext): Dest | null {
      const now = ctx.now;
      const st = localityState<LblcrEntry>(svc, now, expiration);
      const en = localityGet(st, flow);
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
      if (!st.dead) localityAdd(st, flow, newEntry(dest, now));
      return dest;
    },
  };
}
