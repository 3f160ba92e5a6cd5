// Locality-based least-connection, net/netfilter/ipvs/ip_vs_lblc.c.
// A cache maps the packet's destination address to a dest. A cached dest is reused while it is
// still in the service (DEST_F_AVAILABLE), has a non-zero weight, and is not "overloaded" in
// lblc's own sense: active > weight while some dest has active*2 < weight (the threshold flag
// DEST_F_OVERLOAD is not consulted for a cached dest, as in the kernel). Otherwise weighted
// least-connection picks a dest and the entry is replaced.
// Garbage collection is the kernel's 60 s periodic timer, run lazily from ctx.now: every 30th tick
// a full check drops entries unused for lblc_expiration (24 h); on other ticks, only when the
// table holds more than 16 * 1024 entries, entries unused for 6 min are dropped, at most
// min((entries - max) * 4/3, max/2) of them. The timer starts at the first schedule call.
import { formatIPv4 } from "../addr.js";
import { DEST_F_AVAILABLE, type Dest } from "../dest.js";
import type { Flow } from "../packet/flow.js";
import type { Service } from "../service.js";
import type { Figure, SchedContext, SchedDetail, Scheduler } from "./types.js";
import { wlcFigures, wlcSelect } from "./util.js";

export const LBLC_CHECK_EXPIRE_INTERVAL_MS = 60 * 1000;
export const LBLC_ENTRY_TIMEOUT_MS = 6 * 60 * 1000;
/** Default of the sysctl net.ipv4.vs.lblc_expiration. */
export const LBLC_DEFAULT_EXPIRATION_MS = 24 * 60 * 60 * 1000;
export const LBLC_COUNT_FOR_FULL_EXPIRATION = 30;
/** IP_VS_LBLC_TAB_SIZE * 16 with the default 10 table bits. */
export const LBLC_MAX_SIZE = (1 << 10) * 16;

interface LblcEntry {
  dest: Dest;
  lastuse: number;
}

/** The per-service state of lblc and lblcr: the cache and the garbage-collection timer. */
export interface LocalityState<E extends { lastuse: number }> {
  /** Keyed by destination address (host order). Insertion order stands in for the bucket rover. */
  table: Map<number, E>;
  /** Next periodic-timer expiry; NaN until the first schedule call. */
  nextCheck: number;
  counter: number;
  /** Set by doneService: a scheduler still running for a removed service adds no entries. */
  dead: boolean;
}

export type LblcState = LocalityState<LblcEntry>;

const copyEntry = (e: LblcEntry): LblcEntry => ({ dest: e.dest, lastuse: e.lastuse });

function newLocalityState<E extends { lastuse: number }>(): LocalityState<E> {
  return { table: new Map(), nextCheck: Number.NaN, counter: 1, dead: false };
}

export function initLocality(svc: Service): void {
  svc.schedData = newLocalityState();
}

export function doneLocality(svc: Service): void {
  const st = svc.schedData as LocalityState<{ lastuse: number }> | undefined;
  if (st !== undefined) {
    st.dead = true;
    st.table.clear();
  }
  svc.schedData = undefined;
}

/** The service's state (created on first use), its timer caught up to now. */
export function localityState<E extends { lastuse: number }>(
  svc: Service,
  now: number,
  expiration: number,
): LocalityState<E> {
  let st = svc.schedData as LocalityState<E> | undefined;
  if (st === undefined) {
    st = newLocalityState<E>();
    svc.schedData = st;
  }
  runTimers(st.table, st, now, expiration);
  return st;
}

/** explain: a copy of lblc's / lblcr's state, its entries copied by `entry` (schedule may change them). */
export function cloneLocality<E extends { lastuse: number }>(
  data: unknown,
  entry: (e: E) => E,
): LocalityState<E> | undefined {
  const st = data as LocalityState<E> | undefined;
  if (st === undefined) return undefined;
  const table = new Map<number, E>();
  for (const [k, e] of st.table) table.set(k, entry(e));
  return { table, nextCheck: st.nextCheck, counter: st.counter, dead: st.dead };
}

/**
 * explain: the entry for the packet's destination address as schedule() will find it (the copy's
 * timers caught up to now first), and why lblc's "overloaded" holds or not: the entry's dest has
 * more active connections than its weight while `underused` has active*2 < weight.
 */
export function localityLookup<E extends { lastuse: number }>(
  svc: Service,
  daddr: number,
  now: number,
  expiration: number,
  entry: (e: E) => E,
): { entry: E | undefined; tableSize: number } {
  const st = cloneLocality<E>(svc.schedData, entry) ?? newLocalityState<E>();
  runTimers(st.table, st, now, expiration);
  return { entry: st.table.get(daddr), tableSize: st.table.size };
}

/** The figures of lblc's overload test for dest: its active vs weight, and a dest with active*2 < weight. */
export function overloadFigures(dest: Dest, svc: Service): Record<string, Figure | Dest> {
  let underused: Dest | null = null;
  for (const d of svc.dests) {
    if (d.activeConns * 2 < d.weight) {
      underused = d;
      break;
    }
  }
  return {
    entryActive: dest.activeConns,
    entryWeight: dest.weight,
    underused: dest.activeConns > dest.weight ? underused : null,
    entryOverloaded: lblcOverloaded(dest, svc),
  };
}

/** is_overloaded() of ip_vs_lblc.c / ip_vs_lblcr.c. */
export function lblcOverloaded(dest: Dest, svc: Service): boolean {
  if (dest.activeConns > dest.weight) {
    for (const d of svc.dests) if (d.activeConns * 2 < d.weight) return true;
  }
  return false;
}

/** One run of ip_vs_lblc_check_expire at time t (ip_vs_lblcr_check_expire is identical). */
export function expireTick<E extends { lastuse: number }>(
  table: Map<number, E>,
  st: { counter: number },
  t: number,
  expiration: number,
): void {
  if (st.counter % LBLC_COUNT_FOR_FULL_EXPIRATION === 0) {
    for (const [k, e] of table) if (!(t < e.lastuse + expiration)) table.delete(k);
    st.counter = 1;
    return;
  }
  if (table.size <= LBLC_MAX_SIZE) {
    st.counter++;
    return;
  }
  let goal = Math.trunc(((table.size - LBLC_MAX_SIZE) * 4) / 3);
  if (goal > LBLC_MAX_SIZE / 2) goal = LBLC_MAX_SIZE / 2;
  for (const [k, e] of table) {
    if (t < e.lastuse + LBLC_ENTRY_TIMEOUT_MS) continue;
    table.delete(k);
    if (--goal <= 0) break;
  }
}

/**
 * Catch the periodic timer up to `now`. After a long idle gap (more ticks than a full-check
 * period) one full check at `now` stands for the missed ones.
 */
export function runTimers<E extends { lastuse: number }>(
  table: Map<number, E>,
  st: { counter: number; nextCheck: number },
  now: number,
  expiration: number,
): void {
  if (Number.isNaN(st.nextCheck)) {
    st.nextCheck = now + LBLC_CHECK_EXPIRE_INTERVAL_MS;
    return;
  }
  if (now < st.nextCheck) return;
  if (now - st.nextCheck >= LBLC_COUNT_FOR_FULL_EXPIRATION * LBLC_CHECK_EXPIRE_INTERVAL_MS) {
    st.counter = 0;
    expireTick(table, st, now, expiration);
    st.nextCheck = now + LBLC_CHECK_EXPIRE_INTERVAL_MS;
    return;
  }
  while (now >= st.nextCheck) {
    expireTick(table, st, st.nextCheck, expiration);
    st.nextCheck += LBLC_CHECK_EXPIRE_INTERVAL_MS;
  }
}

export function createLblc(expiration = LBLC_DEFAULT_EXPIRATION_MS): Scheduler {
  return {
    name: "lblc",
    initService: initLocality,
    doneService: doneLocality,
    cloneState(data: unknown): unknown {
      return cloneLocality<LblcEntry>(data, copyEntry);
    },
    explain(svc: Service, flow: Flow, ctx: SchedContext): SchedDetail {
      const { entry: en, tableSize } = localityLookup<LblcEntry>(
        svc,
        flow.daddr,
        ctx.now,
        expiration,
        copyEntry,
      );
      let figures: Record<string, Figure | Dest> = {
        key: formatIPv4(flow.daddr),
        tableSize,
        entry: en?.dest ?? null,
        entryIdleMs: en === undefined ? null : ctx.now - en.lastuse,
      };
      let path: string;
      if (en === undefined) path = "no entry for the address: weighted least-connection, then cached";
      else {
        const d = en.dest;
        figures = { ...figures, ...overloadFigures(d, svc) };
        if ((d.flags & DEST_F_AVAILABLE) === 0)
          path = "the entry's destination is gone: weighted least-connection";
        else if (d.weight <= 0)
          path = "the entry's destination is quiesced (weight 0): weighted least-connection";
        else if (lblcOverloaded(d, svc))
          path =
            "the entry's destination is overloaded (active > weight while another has active*2 < weight): weighted least-connection";
        else path = "the entry's destination is kept";
      }
      figures.path = path;
      return {
        rule: "locality-based least-connection: the destination cached for the packet's destination address, unless gone, quiesced or overloaded; else weighted least-connection",
        figures,
        dests: svc.dests.map((d) => ({ dest: d, figures: wlcFigures(d) })),
      };
    },
    schedule(svc: Service, flow: Flow, ctx: SchedContext): Dest | null {
      const now = ctx.now;
      const st = localityState<LblcEntry>(svc, now, expiration);
      const en = st.table.get(flow.daddr);
      if (en !== undefined) {
        en.lastuse = now;
        const d = en.dest;
        if ((d.flags & DEST_F_AVAILABLE) !== 0 && d.weight > 0 && !lblcOverloaded(d, svc)) return d;
      }
      const dest = wlcSelect(svc.dests);
      if (dest === null) return null;
      // ip_vs_lblc_new: an entry already naming this dest is kept as is; otherwise replaced.
      if (!st.dead && (en === undefined || en.dest !== dest)) {
        if (en !== undefined) st.table.delete(flow.daddr);
        st.table.set(flow.daddr, { dest, lastuse: now });
      }
      return dest;
    },
  };
}
