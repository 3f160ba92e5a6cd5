// Helpers shared by the schedulers: the availability test most of them apply, the kernel's
// gcd/fls/hash_32, weighted least-connection selection (ip_vs_wlc.c, reused by lblc/lblcr),
// and hsiphash as the 64-bit kernel computes it (lib/siphash.c), for mh.
import { formatIPv4, ipv6WordsText } from "../addr.js";
import { DEST_F_OVERLOAD, type Dest, destOverhead } from "../dest.js";
import { type Flow, IPPROTO_TCP, IPPROTO_UDP } from "../packet/flow.js";
import type { Service } from "../service.js";
import type { Figure, SchedContext } from "./types.js";

export const IPPROTO_SCTP = 132;

/** Weight 0 = quiesced, DEST_F_OVERLOAD = upper threshold reached: no new connections. */
export function usable(d: Dest): boolean {
  return (d.flags & DEST_F_OVERLOAD) === 0 && d.weight > 0;
}

/** lib/math/gcd.c, for positive operands. */
export function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/** include/linux/bitops.h fls(): position of the highest set bit, 1-based; fls(0) = 0. */
export function fls(x: number): number {
  return 32 - Math.clz32(x);
}

/** include/linux/hash.h (since 4.7): hash_32(val, bits) = (val * GOLDEN_RATIO_32) >> (32 - bits). */
export const GOLDEN_RATIO_32 = 0x61c88647;

export function hash32(val: number, bits: number): number {
  return Math.imul(val, GOLDEN_RATIO_32) >>> (32 - bits);
}

/**
 * The source port sh-port / mh-port hash: ip_vs_{sh,mh}_get_port read the first 16 bits of the
 * transport header for TCP, UDP and SCTP only; anything else hashes with port 0.
 */
export function hashPort(proto: number, sport: number): number {
  return proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP ? sport : 0;
}

/**
 * Weighted least-connection over the service list (ip_vs_wlc.c; also __ip_vs_lblc_schedule and
 * __ip_vs_lblcr_schedule). The first usable dest in list order seeds the search; later dests
 * replace it only when strictly less loaded: loh*dw > doh*lw ⇔ loh/lw > doh/dw. Weight-0 dests
 * after the seed are not skipped explicitly, the product loh*0 can never win.
 */
export function wlcSelect(dests: readonly Dest[]): Dest | null {
  const n = dests.length;
  let i = 0;
  let least: Dest | null = null;
  for (; i < n; i++) {
    const d = dests[i];
    if (usable(d)) {
      least = d;
      break;
    }
  }
  if (least === null) return null;
  let loh = destOverhead(least);
  for (i++; i < n; i++) {
    const d = dests[i];
    if ((d.flags & DEST_F_OVERLOAD) !== 0) continue;
    const doh = destOverhead(d);
    if (loh * d.weight > doh * least.weight) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

// ---- explain: the prediction is schedule() itself, over a copy of the state ----

/**
 * The destination svc's scheduler would pick for flow now: schedule() itself, run over a copy of
 * the service's state (Scheduler.cloneState) with a context whose random() reads ahead
 * (ConnLife.peekContext); the live state is put back as it was, whatever happens. `after` is the
 * copy as schedule() left it. Control plane only (explain.ts); never on the data path.
 */
export function peekSchedule(
  svc: Service,
  flow: Flow,
  ctx: SchedContext,
): { dest: Dest | null; after: unknown } {
  const live = svc.schedData;
  const s = svc.sched;
  svc.schedData = s.cloneState === undefined ? live : s.cloneState(live);
  try {
    const dest = s.schedule(svc, flow, ctx);
    return { dest, after: svc.schedData };
  } finally {
    svc.schedData = live;
  }
}

/** explain: the packet's source address as text (IPv6 from its words, not the fold the hashes read). */
export function flowSaddrText(f: Flow): string {
  return f.af === 6 ? ipv6WordsText(f.s6) : formatIPv4(f.saddr);
}

/** explain: the packet's destination address as text. */
export function flowDaddrText(f: Flow): string {
  return f.af === 6 ? ipv6WordsText(f.d6) : formatIPv4(f.daddr);
}

/** explain: a destination as ipvsadm -Ln names it, ADDR:PORT or [ADDR6]:PORT. */
export function destText(d: Dest): string {
  return d.addr6 !== null ? `[${ipv6WordsText(d.addr6)}]:${d.port}` : `${formatIPv4(d.addr)}:${d.port}`;
}

/** A ratio for explanations: 3 decimals, null for a zero divisor. */
export function ratio(a: number, b: number): number | null {
  return b === 0 ? null : Math.round((a / b) * 1000) / 1000;
}

/** The figures the connection-counting schedulers compare, per destination. */
export function loadFigures(d: Dest): Record<string, Figure> {
  return {
    weight: d.weight,
    active: d.activeConns,
    inactive: d.inactConns,
    overhead: destOverhead(d),
    overloaded: (d.flags & DEST_F_OVERLOAD) !== 0,
    usable: usable(d),
  };
}

/** wlc's figures: loadFigures and overhead/weight. */
export function wlcFigures(d: Dest): Record<string, Figure> {
  return { ...loadFigures(d), "overhead/weight": ratio(destOverhead(d), d.weight) };
}

// ---- SipHash over 64-bit words kept as (hi, lo) u32 pairs: no BigInt, nothing allocated. ----

let v0h = 0;
let v0l = 0;
let v1h = 0;
let v1l = 0;
let v2h = 0;
let v2l = 0;
let v3h = 0;
let v3l = 0;

function sipRound(): void {
  let lo: number;
  let th: number;
  let tl: number;
  // v0 += v1; v1 = rol(v1, 13); v1 ^= v0; v0 = rol(v0, 32)
  lo = (v0l + v1l) >>> 0;
  v0h = (v0h + v1h + (lo < v0l ? 1 : 0)) >>> 0;
  v0l = lo;
  th = ((v1h << 13) | (v1l >>> 19)) >>> 0;
  tl = ((v1l << 13) | (v1h >>> 19)) >>> 0;
  v1h = (th ^ v0h) >>> 0;
  v1l = (tl ^ v0l) >>> 0;
  th = v0h;
  v0h = v0l;
  v0l = th;
  // v2 += v3; v3 = rol(v3, 16); v3 ^= v2
  lo = (v2l + v3l) >>> 0;
  v2h = (v2h + v3h + (lo < v2l ? 1 : 0)) >>> 0;
  v2l = lo;
  th = ((v3h << 16) | (v3l >>> 16)) >>> 0;
  tl = ((v3l << 16) | (v3h >>> 16)) >>> 0;
  v3h = (th ^ v2h) >>> 0;
  v3l = (tl ^ v2l) >>> 0;
  // v0 += v3; v3 = rol(v3, 21); v3 ^= v0
  lo = (v0l + v3l) >>> 0;
  v0h = (v0h + v3h + (lo < v0l ? 1 : 0)) >>> 0;
  v0l = lo;
  th = ((v3h << 21) | (v3l >>> 11)) >>> 0;
  tl = ((v3l << 21) | (v3h >>> 11)) >>> 0;
  v3h = (th ^ v0h) >>> 0;
  v3l = (tl ^ v0l) >>> 0;
  // v2 += v1; v1 = rol(v1, 17); v1 ^= v2; v2 = rol(v2, 32)
  lo = (v2l + v1l) >>> 0;
  v2h = (v2h + v1h + (lo < v2l ? 1 : 0)) >>> 0;
  v2l = lo;
  th = ((v1h << 17) | (v1l >>> 15)) >>> 0;
  tl = ((v1l << 17) | (v1h >>> 15)) >>> 0;
  v1h = (th ^ v2h) >>> 0;
  v1l = (tl ^ v2l) >>> 0;
  th = v2h;
  v2h = v2l;
  v2l = th;
}

/**
 * SipHash-c-d of one 4-byte message (a u32 read little-endian, as the kernel's hsiphash_1u32 /
 * hsiphash(&v, 4)) under the 128-bit key (k0, k1), each 64-bit half given as hi/lo u32.
 * Returns the low 32 bits of the 64-bit result (hsiphash returns u32).
 */
export function sipHashU32(
  first: number,
  k0h: number,
  k0l: number,
  k1h: number,
  k1l: number,
  cRounds: number,
  dRounds: number,
): number {
  // "somepseudorandomlygeneratedbytes"
  v0h = (0x736f6d65 ^ k0h) >>> 0;
  v0l = (0x70736575 ^ k0l) >>> 0;
  v1h = (0x646f7261 ^ k1h) >>> 0;
  v1l = (0x6e646f6d ^ k1l) >>> 0;
  v2h = (0x6c796765 ^ k0h) >>> 0;
  v2l = (0x6e657261 ^ k0l) >>> 0;
  v3h = (0x74656462 ^ k1h) >>> 0;
  v3l = (0x79746573 ^ k1l) >>> 0;
  // Last block b = (len << 56) | message bytes; len = 4, no full 8-byte block precedes it.
  const bh = 0x04000000;
  const bl = first >>> 0;
  v3h = (v3h ^ bh) >>> 0;
  v3l = (v3l ^ bl) >>> 0;
  for (let i = 0; i < cRounds; i++) sipRound();
  v0h = (v0h ^ bh) >>> 0;
  v0l = (v0l ^ bl) >>> 0;
  v2l = (v2l ^ 0xff) >>> 0;
  for (let i = 0; i < dRounds; i++) sipRound();
  return (v0l ^ v1l ^ v2l ^ v3l) >>> 0;
}

/**
 * hsiphash_1u32 on a 64-bit kernel: "HalfSipHash1-3" is SipHash-1-3 there, with hsiphash_key_t
 * holding two unsigned longs (64-bit key halves).
 */
export function hsiphash1u32(first: number, k0h: number, k0l: number, k1h: number, k1l: number): number {
  return sipHashU32(first, k0h, k0l, k1h, k1l, 1, 3);
}
