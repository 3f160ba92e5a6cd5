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
import { DEST_F_AVAILABLE, type Dest } from "../dest.js";
import type { Flow } from "../packet/flow.js";
import type { Service } from "../service.js";
import type { SchedContext, Scheduler } from "./types.js";
import { wlcSelect } from "./util.js";

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
