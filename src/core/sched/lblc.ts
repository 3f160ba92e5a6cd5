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
import type { Figure, SchedContext, SchedDetail, Scheduler } from "./types.js";
import { flowDaddrText, wlcFigures, wlcSelect } from "./util.js";

export const LBLC_CHECK_EXPIRE_INTERVAL_MS = 60 * 1000;
export const LBLC_ENTRY_TIMEOUT_MS = 6 * 60 * 1000;
/** Default of the sysctl net.ipv4.vs.lblc_expiration. */
export const LBLC_DEFAULT_EXPIRATION_MS = 24 * 60 * 60 * 1000;
export const LBLC_COUNT_FOR_FULL_EXPIRATION = 30;
/** IP_VS_LBLC_TAB_SIZE * 16 with the default 10 table bits. */
export const LBLC_MAX_SIZE = (1 << 10) * 16;

/**
 * What lblc's and lblcr's entries share. The table is keyed by the destination address (IPv4) or
 * by its fold (IPv6: the kernel's ip_vs_lblc_hashkey hashes addr_fold). As the kernel's entry
 * keeps en->addr and ip_vs_lblc_get compares it whole (ip_vs_addr_equal), an IPv6 entry keeps its
 * address in w0..w3 and chains the entries whose addresses share its fold, so that two such
 * addresses are scheduled apart. The words are fields, not an array: a lookup reads the entry it
 * already has, and a new entry is one object, as for IPv4. An IPv4 entry's words are 0 and its
 * chain empty: a service has one family, so its table never holds both.
 */
export interface LocalityEntry {
  lastuse: number;
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  /** The next entry whose address has the same fold (IPv6); null at the end, and for IPv4. */
  next: this | null;
}

interface LblcEntry extends LocalityEntry {
  dest: Dest;
}

/** The per-service state of lblc and lblcr: the cache and the garbage-collection timer. */
export interface LocalityState<E extends LocalityEntry> {
  /** Keyed by destination address (host order; an IPv6 fold). Insertion order stands in for the bucket rover. */
  table: Map<number, E>;
  /** Entries, the chained IPv6 ones included (tbl->entries, which the collection compares with its bound). */
  entries: number;
  /** Next periodic-timer expiry; NaN until the first schedule call. */
  nextCheck: number;
  counter: number;
  /** Set by doneService: a scheduler still running for a removed service adds no entries. */
  dead: boolean;
}

export type LblcState = LocalityState<LblcEntry>;

const newEntry = (dest: Dest, lastuse: number): LblcEntry => ({
  dest,
  lastuse,
  w0: 0,
  w1: 0,
  w2: 0,
  w3: 0,
  next: null,
});

const copyEntry = (e: LblcEntry): LblcEntry => ({
  dest: e.dest,
  lastuse: e.lastuse,
  w0: e.w0,
  w1: e.w1,
  w2: e.w2,
  w3: e.w3,
  next: null,
});

function newLocalityState<E extends LocalityEntry>(): LocalityState<E> {
  return { table: new Map(), entries: 0, nextCheck: Number.NaN, counter: 1, dead: false };
}

export function initLocality(svc: Service): void {
  svc.schedData = newLocalityState();
}

export function doneLocality(svc: Service): void {
  const st = svc.schedData as LocalityState<LocalityEntry> | undefined;
  if (st !== undefined) {
    st.dead = true;
    st.table.clear();
    st.entries = 0;
  }
  svc.schedData = undefined;
}

/** The service's state (created on first use), its timer caught up to now. */
export function localityState<E extends LocalityEntry>(
  svc: Service,
  now: number,
  expiration: number,
): LocalityState<E> {
  let st = svc.schedData as LocalityState<E> | undefined;
  if (st === undefined) {
    st = newLocalityState<E>();
    svc.schedData = st;
  }
  runTimers(st, now, expiration);
  return st;
}

/** ip_vs_lblc_get: the entry of the flow's destination address, an IPv6 one compared whole. */
export function localityGet<E extends LocalityEntry>(st: LocalityState<E>, flow: Flow): E | undefined {
  const en = st.table.get(flow.daddr);
  if (flow.af !== 6 || en === undefined) return en;
  const w = flow.d6;
  return en.w0 === w[0] && en.w1 === w[1] && en.w2 === w[2] && en.w3 === w[3] ? en : chainGet(en.next, w);
}

/** The rest of a fold's chain: another address with the same fold (rare: kept out of localityGet). */
function chainGet<E extends LocalityEntry>(en: E | null, w: Int32Array): E | undefined {
  for (let e = en; e !== null; e = e.next)
    if (e.w0 === w[0] && e.w1 === w[1] && e.w2 === w[2] && e.w3 === w[3]) return e;
  return undefined;
}

/** ip_vs_lblc_hash: a new entry for the flow's destination address (an IPv6 one heads its fold's chain). */
export function localityAdd<E extends LocalityEntry>(st: LocalityState<E>, flow: Flow, en: E): void {
  const k = flow.daddr;
  if (flow.af === 6) {
    const w = flow.d6;
    en.w0 = w[0];
    en.w1 = w[1];
    en.w2 = w[2];
    en.w3 = w[3];
    en.next = st.table.get(k) ?? null;
  }
  st.table.set(k, en);
  st.entries++;
}

/** ip_vs_lblc_del of en, the entry of the flow's destination address. */
export function localityDelete<E extends LocalityEntry>(st: LocalityState<E>, flow: Flow, en: E): void {
  const k = flow.daddr;
  const head = st.table.get(k);
  if (head === en) {
    if (en.next === null) st.table.delete(k);
    else st.table.set(k, en.next);
  } else
    for (let e = head ?? null; e !== null; e = e.next)
      if (e.next === en) {
        e.next = en.next;
        break;
      }
  st.entries--;
}

/** explain: a copy of lblc's / lblcr's state, its entries (and their chains) copied by `entry`. */
export function cloneLocality<E extends LocalityEntry>(
  data: unknown,
  entry: (e: E) => E,
): LocalityState<E> | undefined {
  const st = data as LocalityState<E> | undefined;
  if (st === undefined) return undefined;
  const table = new Map<number, E>();
  for (const [k, head] of st.table) {
    const first = entry(head);
    let last = first;
    for (let e = head.next; e !== null; e = e.next) {
      last.next = entry(e);
      last = last.next;
    }
    table.set(k, first);
  }
  return { table, entries: st.entries, nextCheck: st.nextCheck, counter: st.counter, dead: st.dead };
}

/**
 * explain: the entry for the packet's destination address as schedule() will find it (the copy's
 * timers caught up to now first), and why lblc's "overloaded" holds or not: the entry's dest has
 * more active connections than its weight while `underused` has active*2 < weight.
 */
export function localityLookup<E extends LocalityEntry>(
  svc: Service,
  flow: Flow,
  now: number,
  expiration: number,
  entry: (e: E) => E,
): { entry: E | undefined; tableSize: number } {
  const st = cloneLocality<E>(svc.schedData, entry) ?? newLocalityState<E>();
  runTimers(st, now, expiration);
  return { entry: localityGet(st, flow), tableSize: st.entries };
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

/**
 * Drops the entries of key k's chain unused for `idle` ms at time t (t >= lastuse + idle), at
 * most `max` of them, and returns how many went. An IPv4 chain is its one entry.
 */
function sweep<E extends LocalityEntry>(
  st: LocalityState<E>,
  k: number,
  head: E,
  t: number,
  idle: number,
  max: number,
): number {
  let n = 0;
  let first: E | null = head;
  let prev: E | null = null;
  for (let e: E | null = head; e !== null && n < max; e = e.next) {
    if (t < e.lastuse + idle) {
      prev = e;
      continue;
    }
    n++;
    if (prev === null) first = e.next;
    else prev.next = e.next;
  }
  if (first === null) st.table.delete(k);
  else if (first !== head) st.table.set(k, first);
  st.entries -= n;
  return n;
}

/** One run of ip_vs_lblc_check_expire at time t (ip_vs_lblcr_check_expire is identical). */
export function expireTick<E extends LocalityEntry>(
  st: LocalityState<E>,
  t: number,
  expiration: number,
): void {
  const table = st.table;
  if (st.counter % LBLC_COUNT_FOR_FULL_EXPIRATION === 0) {
    for (const [k, e] of table) sweep(st, k, e, t, expiration, Number.POSITIVE_INFINITY);
    st.counter = 1;
    return;
  }
  if (st.entries <= LBLC_MAX_SIZE) {
    st.counter++;
    return;
  }
  let goal = Math.trunc(((st.entries - LBLC_MAX_SIZE) * 4) / 3);
  if (goal > LBLC_MAX_SIZE / 2) goal = LBLC_MAX_SIZE / 2;
  for (const [k, e] of table) {
    goal -= sweep(st, k, e, t, LBLC_ENTRY_TIMEOUT_MS, goal);
    if (goal <= 0) break;
  }
}

/**
 * Catch the periodic timer up to `now`. After a long idle gap (more ticks than a full-check
 * period) one full check at `now` stands for the missed ones.
 */
export function runTimers<E extends LocalityEntry>(
  st: LocalityState<E>,
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
    expireTick(st, now, expiration);
    st.nextCheck = now + LBLC_CHECK_EXPIRE_INTERVAL_MS;
    return;
  }
  while (now >= st.nextCheck) {
    expireTick(st, st.nextCheck, expiration);
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
      const { entry: en, tableSize } = localityLookup<LblcEntry>(svc, flow, ctx.now, expiration, copyEntry);
      let figures: Record<string, Figure | Dest> = {
        key: flowDaddrText(flow),
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
      const en = localityGet(st, flow);
      if (en !== undefined) {
        en.lastuse = now;
        const d = en.dest;
        if ((d.flags & DEST_F_AVAILABLE) !== 0 && d.weight > 0 && !lblcOverloaded(d, svc)) return d;
      }
      const dest = wlcSelect(svc.dests);
      if (dest === null) return null;
      // ip_vs_lblc_new: an entry already naming this dest is kept as is; otherwise replaced.
      if (!st.dead && (en === undefined || en.dest !== dest)) {
        if (en !== undefined) localityDelete(st, flow, en);
        localityAdd(st, flow, newEntry(dest, now));
      }
      return dest;
    },
  };
}
