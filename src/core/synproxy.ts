// SYN proxy (issue 16): DPVS's src/ipvs/ip_vs_synproxy.c for NAT and FULLNAT services, with the
// cookie laid out as the Linux kernel's (net/ipv4/syncookies.c) and keyed by SipHash-2-4, as the
// kernel keys its cookies since 4.13.
//
// 1. A client's SYN to a service with the switch gets a SYN-ACK from the director whose ISN is a
//    cookie; nothing is kept. The SYN-ACK offers MSS min(client's, 1452), SACK, timestamps and
//    window scaling back as the client offered them (DPVS's synack_options mss 1452, sack; tsvs
//    offers wscale and timestamps too, see below). Its window is one segment: what the client may
//    send before the real server answers is held here (bounded, DPVS's max_ack_saved).
// 2. Only an ACK whose acknowledgment number less one is a valid cookie for its 4-tuple and
//    sequence number less one makes a connection (the engine schedules it as it would a SYN:
//    rate limit, defence, scheduler) in SYN_SENT, and a SYN goes to the real server through the
//    connection's method (NAT rewrite, FULLNAT's LIP, TOA or PROXY protocol as for any SYN) with
//    the client's ISN and the options the cookie encodes: MSS (table index), SACK permitted, the
//    client's window scale and whether it sent timestamps. It is sent again every 3 s, three
//    times (DPVS's rs_syn_max_retry, its SYN_SENT timeout of 3 s), then the entry expires. A bad
//    cookie: a reset to the client (the kernel's answer to an ACK no socket wants) and a counter,
//    nothing toward a real server.
// 3. The real server's SYN-ACK fixes the deltas: seq (cookie − its ISN; DPVS's
//    syn_proxy_seq.delta) and, with timestamps, the TS value (the SYN-ACK to the client carried
//    the cookie as its TSval, so no state was needed for it either). The director completes the
//    real server's handshake with an ACK of its own built from the client's (its window and
//    TSval, kept with the connection) and sends what it held, translated; the connection is
//    ESTABLISHED. A reset instead: translated to the client (DPVS), the connection closes.
// 4. From then on: replies get seq += delta, TSval += tsDelta and their window rescaled from the
//    real server's window scale to the director's (DPVS's tcp_out_adjust_window); requests get
//    ack −= delta and their SACK edges (DPVS's syn_proxy_filter_opt_outin), TSecr −= tsDelta, and
//    when the real server turned window scaling down, the client's window in its units. The
//    client's own sequence numbers are the real server's (the SYN carried the client's ISN), so
//    the PROXY protocol's shift (xmit/fullnat.ts) composes with this one: it moves the client's
//    numbers, this one the real server's. The ACK and SACK shift is proxy-proto.ts's ppAckBack
//    with a settled shift, the seq shift its ppShiftSeq.
//
// Cookie (kernel layout, DPVS's data bits): ISN = H(0) + clientISN + (count << 24) +
// ((H(count) + data) mod 2^24), H = SipHash-2-4 over (saddr, daddr, ports, count, which) under
// a 128-bit secret the engine is given, count = minutes of the injected clock. Valid for the
// current and the previous count (the kernel's MAX_SYNCOOKIE_AGE 2; DPVS accepts 4). data: MSS
// index (4 bits, DPVS's msstab), the client's window scale + 1 (4 bits, 0 = none), SACK, TS; the
// 14 bits above must come back zero. A forged ACK passes with odds of about 2^-22 (count 2^-7,
// data 2^-14.7): between DPVS (~2^-19) and the kernel (~2^-29, whose cookie carries less).
//
// No allocation per packet: one frame buffer and one Flow for what the director builds, a side
// record of 8 words per connection (allocated with the first SYN-proxy connection, as the PROXY
// protocol's), and a fixed pool of hold slots (allocated with it).

import { ipv6FromWords, readU16, readU32, writeU16, writeU32 } from "./addr.js";
import { A6_CADDR, A6_VADDR, CONN_F_FWD_MASK, CONN_F_SYNPROXY, type ConnTable } from "./conn/table.js";
import { type EngineCounters, R } from "./counters.js";
import type { Dest } from "./dest.js";
import { csumReplace16, l4ChecksumV4, l4ChecksumV6 } from "./packet/csum.js";
import { ETH_HLEN } from "./packet/eth.js";
import {
  ETH_P_IP,
  ETH_P_IPV6,
  Flow,
  IPPROTO_TCP,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
} from "./packet/flow.js";
import { writeIpv4Header } from "./packet/ipv4.js";
import { IP6_DADDR, IP6_SADDR, IPV6_HLEN } from "./packet/ipv6.js";
import { PARSE_OK, parseFrame } from "./packet/parse.js";
import { ppAckBack, ppShiftSeq } from "./packet/proxy-proto.js";
import { TCP_CHECK, TCP_HLEN, TCP_WIN } from "./packet/tcp.js";
import { TCP_S_CLOSE, TCP_S_ESTABLISHED, TCP_S_SYN_SENT, TCP_S_TIME_WAIT } from "./proto/tcp.js";
import { XMIT, XMIT6 } from "./xmit/index.js";
import { Verdict, type XmitEngine } from "./xmit/types.js";

/** DPVS's msstab: the MSS a cookie can carry, by index (the client's rounded down). */
export const SYNPROXY_MSS_TABLE: readonly number[] = [64, 256, 512, 536, 1024, 1280, 1440, 1452, 1460, 4312];
/** DPVS's synack_options mss: the most the SYN-ACK lets the client send in one segment. */
export const SYNPROXY_SYNACK_MSS = 1452;
/** The window scale the director announces to a client that offered one (Linux's usual 7). */
export const SYNPROXY_WSCALE = 7;
/** RFC 7323 §2.3: a shift above 14 is taken as 14. */
const WSCALE_MAX = 14;
/** TCP's default MSS when the SYN has none (RFC 9293 §3.7.1; DPVS's mss_clamp 536). */
const DEFAULT_MSS = 536;
/** The kernel's MAX_SYNCOOKIE_AGE: a cookie of this count or the one before is valid. */
export const SYNPROXY_COOKIE_AGE = 2;
/** The counter's period: the kernel's and DPVS's minute. */
export const SYNPROXY_COUNT_MS = 60_000;
/** DPVS's rs_syn_max_retry and its SYN_SENT timeout (the interval between them). */
export const SYNPROXY_SYN_RETRIES = 3;
export const SYNPROXY_SYN_RETRY_MS = 3000;
/** DPVS's max_ack_saved: segments held per connection until the real server answers. */
export const SYNPROXY_MAX_HELD = 3;
/** request()'s answer for an ACK that opens a new connection on a closed entry's 4-tuple. */
export const SYNPROXY_REOPEN = -2;
/** Hold slots for all connections, and the largest datagram one takes (a 1500-byte link's). */
const HOLD_SLOTS = 512;
const HOLD_SLOT = 2048;

// The cookie's data bits.
const D_MSS = 0xf;
const D_WS_SHIFT = 4;
const D_SACK = 0x100;
const D_TS = 0x200;
const D_USED = 0x3ff;

// The side record: 8 words per connection (record() sizes it in words: 8 per entry).
const RSHIFT = 3;
/** The director's ISN toward the client (the cookie). */
const R_ISN = 0;
/** The client's ISN (the real server's SYN carries it). */
const R_CISN = 1;
/** Added to the real server's sequence numbers on the way out. */
const R_SEQD = 2;
/** Added to the real server's TSvals on the way out. */
const R_TSD = 3;
/** The cookie's data, the real server's window scale + 1 at bit 12, retries left at 16, LIVE. */
const R_OPT = 4;
/** The client's last TSval and window before the real server answered. */
const R_TSV = 5;
const R_WIN = 6;
/** First held slot, -1 when none. */
const R_HOLD = 7;

const O_RSWS_SHIFT = 12;
const O_RETRY_SHIFT = 16;
const O_LIVE = 1 << 20;
const O_HELD_SHIFT = 21;

const TCPOPT_MSS = 2;
const TCPOPT_WS = 3;
const TCPOPT_SACK_PERM = 4;
const TCPOPT_TS = 8;

// ---------------------------------------------------------------- SipHash-2-4

/** The high half of siphash's last result (the test vectors check both). */
export let sipHi = 0;

/**
 * SipHash-2-4 (Aumasson & Bernstein 2012) of the n 32-bit words msg[0..n) taken as 4n bytes,
 * each word little-endian, under the 128-bit key k (4 words, little-endian): the low 32 bits of
 * the 64-bit result (sipHi has the high ones). 64-bit lanes as pairs of u32.
 */
export function siphash24(k: Uint32Array, msg: Int32Array, n: number): number {
  let v0h = (k[1] ^ 0x736f6d65) >>> 0;
  let v0l = (k[0] ^ 0x70736575) >>> 0;
  let v1h = (k[3] ^ 0x646f7261) >>> 0;
  let v1l = (k[2] ^ 0x6e646f6d) >>> 0;
  let v2h = (k[1] ^ 0x6c796765) >>> 0;
  let v2l = (k[0] ^ 0x6e657261) >>> 0;
  let v3h = (k[3] ^ 0x74656462) >>> 0;
  let v3l = (k[2] ^ 0x79746573) >>> 0;
  const blocks = n >>> 1;
  // Blocks, then the last one (the remaining word and the length in the top byte), then 4 rounds.
  for (let i = 0; i <= blocks + 1; i++) {
    let ml = 0;
    let mh = 0;
    let rounds = 2;
    if (i < blocks) {
      ml = msg[2 * i] >>> 0;
      mh = msg[2 * i + 1] >>> 0;
    } else if (i === blocks) {
      ml = (n & 1) === 1 ? msg[n - 1] >>> 0 : 0;
      mh = ((n * 4) << 24) >>> 0;
    } else {
      v2l = (v2l ^ 0xff) >>> 0;
      rounds = 4;
    }
    v3h = (v3h ^ mh) >>> 0;
    v3l = (v3l ^ ml) >>> 0;
    for (let r = 0; r < rounds; r++) {
      let t: number;
      let lo: number;
      // v0 += v1; v1 <<<= 13; v1 ^= v0; v0 <<<= 32
      lo = (v0l + v1l) >>> 0;
      v0h = (v0h + v1h + (lo < v0l ? 1 : 0)) >>> 0;
      v0l = lo;
      t = ((v1h << 13) | (v1l >>> 19)) >>> 0;
      v1l = ((v1l << 13) | (v1h >>> 19)) >>> 0;
      v1h = t;
      v1h = (v1h ^ v0h) >>> 0;
      v1l = (v1l ^ v0l) >>> 0;
      t = v0h;
      v0h = v0l;
      v0l = t;
      // v2 += v3; v3 <<<= 16; v3 ^= v2
      lo = (v2l + v3l) >>> 0;
      v2h = (v2h + v3h + (lo < v2l ? 1 : 0)) >>> 0;
      v2l = lo;
      t = ((v3h << 16) | (v3l >>> 16)) >>> 0;
      v3l = ((v3l << 16) | (v3h >>> 16)) >>> 0;
      v3h = t;
      v3h = (v3h ^ v2h) >>> 0;
      v3l = (v3l ^ v2l) >>> 0;
      // v0 += v3; v3 <<<= 21; v3 ^= v0
      lo = (v0l + v3l) >>> 0;
      v0h = (v0h + v3h + (lo < v0l ? 1 : 0)) >>> 0;
      v0l = lo;
      t = ((v3h << 21) | (v3l >>> 11)) >>> 0;
      v3l = ((v3l << 21) | (v3h >>> 11)) >>> 0;
      v3h = t;
      v3h = (v3h ^ v0h) >>> 0;
      v3l = (v3l ^ v0l) >>> 0;
      // v2 += v1; v1 <<<= 17; v1 ^= v2; v2 <<<= 32
      lo = (v2l + v1l) >>> 0;
      v2h = (v2h + v1h + (lo < v2l ? 1 : 0)) >>> 0;
      v2l = lo;
      t = ((v1h << 17) | (v1l >>> 15)) >>> 0;
      v1l = ((v1l << 17) | (v1h >>> 15)) >>> 0;
      v1h = t;
      v1h = (v1h ^ v2h) >>> 0;
      v1l = (v1l ^ v2l) >>> 0;
      t = v2h;
      v2h = v2l;
      v2l = t;
    }
    if (i <= blocks) {
      v0h = (v0h ^ mh) >>> 0;
      v0l = (v0l ^ ml) >>> 0;
    }
  }
  sipHi = (v0h ^ v1h ^ v2h ^ v3h) >>> 0;
  return (v0l ^ v1l ^ v2l ^ v3l) >>> 0;
}

// ---------------------------------------------------------------- options

// What parseOptions found (one parse at a time: no object per packet).
let oMss = 0;
let oWs = -1;
let oSack = false;
/** Offset of the timestamps option (kind 8, length 10), -1 when none. */
let oTs = -1;

/** tcp_parse_options over the header at l4 (bounded by end): MSS, window scale, SACK permitted, TS. */
function parseOptions(b: Uint8Array, l4: number, end: number): void {
  oMss = 0;
  oWs = -1;
  oSack = false;
  oTs = -1;
  let hend = l4 + ((b[l4 + 12] >>> 4) << 2);
  if (hend > end) hend = end;
  let i = l4 + TCP_HLEN;
  while (i < hend) {
    const kind = b[i];
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    if (i + 1 >= hend) break;
    const len = b[i + 1];
    if (len < 2 || i + len > hend) break;
    if (kind === TCPOPT_MSS && len === 4) oMss = readU16(b, i + 2);
    else if (kind === TCPOPT_WS && len === 3) oWs = b[i + 2] > WSCALE_MAX ? WSCALE_MAX : b[i + 2];
    else if (kind === TCPOPT_SACK_PERM && len === 2) oSack = true;
    else if (kind === TCPOPT_TS && len === 10) oTs = i;
    i += len;
  }
}

/** The cookie's data for a SYN's options (parseOptions'): MSS index, window scale + 1, SACK, TS. */
export function cookieData(mss: number, ws: number, sack: boolean, ts: boolean): number {
  if (mss === 0) mss = DEFAULT_MSS;
  const tab = SYNPROXY_MSS_TABLE;
  let i = 0;
  while (i + 1 < tab.length && tab[i + 1] <= mss) i++;
  return i | ((ws < 0 ? 0 : ws + 1) << D_WS_SHIFT) | (sack ? D_SACK : 0) | (ts ? D_TS : 0);
}

/** A checked cookie's data is well formed: known bits only, an MSS index in the table. */
function dataValid(d: number): boolean {
  return (d & ~D_USED) === 0 && (d & D_MSS) < SYNPROXY_MSS_TABLE.length;
}

function fold32(x: number): number {
  const s = (x >>> 16) + (x & 0xffff);
  return (s & 0xffff) + (s >>> 16);
}

/**
 * The 32-bit field at b[at] of the TCP header at l4 becomes v, the checksum updated (RFC 1624);
 * an option's field may sit at an odd distance from the header, where its bytes count swapped.
 */
function set32(b: Uint8Array, l4: number, at: number, v: number): void {
  const old = readU32(b, at);
  v >>>= 0;
  if (old === v) return;
  writeU32(b, at, v);
  let o = fold32(old);
  let n = fold32(v);
  if (((at - l4) & 1) !== 0) {
    o = ((o & 0xff) << 8) | (o >>> 8);
    n = ((n & 0xff) << 8) | (n >>> 8);
  }
  writeU16(b, l4 + TCP_CHECK, csumReplace16(readU16(b, l4 + TCP_CHECK), o, n));
}

function setWindow(b: Uint8Array, l4: number, w: number): void {
  const old = readU16(b, l4 + TCP_WIN);
  if (old === w) return;
  writeU16(b, l4 + TCP_WIN, w);
  writeU16(b, l4 + TCP_CHECK, csumReplace16(readU16(b, l4 + TCP_CHECK), old, w));
}

/**
 * The TCP options of a SYN (flags SYN) or SYN-ACK at b[off] from the cookie's data: MSS, then
 * SACK permitted and timestamps in Linux's order and padding, then the window scale `ws` when the
 * client offered one. Returns their length (a multiple of 4, at most 20).
 */
function writeOptions(
  b: Uint8Array,
  off: number,
  mss: number,
  data: number,
  ws: number,
  tsv: number,
  tse: number,
): number {
  let p = off;
  b[p] = TCPOPT_MSS;
  b[p + 1] = 4;
  writeU16(b, p + 2, mss);
  p += 4;
  const ts = (data & D_TS) !== 0;
  const sack = (data & D_SACK) !== 0;
  if (ts) {
    b[p] = sack ? TCPOPT_SACK_PERM : 1;
    b[p + 1] = sack ? 2 : 1;
    b[p + 2] = TCPOPT_TS;
    b[p + 3] = 10;
    writeU32(b, p + 4, tsv);
    writeU32(b, p + 8, tse);
    p += 12;
  } else if (sack) {
    b[p] = 1;
    b[p + 1] = 1;
    b[p + 2] = TCPOPT_SACK_PERM;
    b[p + 3] = 2;
    p += 4;
  }
  if (((data >>> D_WS_SHIFT) & 0xf) !== 0) {
    b[p] = 1;
    b[p + 1] = TCPOPT_WS;
    b[p + 2] = 3;
    b[p + 3] = ws;
    p += 4;
  }
  return p - off;
}

/** The 20-byte TCP header at b[l4]; the checksum is the caller's. */
function writeTcp(
  b: Uint8Array,
  l4: number,
  sport: number,
  dport: number,
  seq: number,
  ack: number,
  hlen: number,
  flags: number,
  win: number,
): void {
  writeU16(b, l4, sport);
  writeU16(b, l4 + 2, dport);
  writeU32(b, l4 + 4, seq >>> 0);
  writeU32(b, l4 + 8, ack >>> 0);
  b[l4 + 12] = (hlen >>> 2) << 4;
  b[l4 + 13] = flags;
  writeU16(b, l4 + TCP_WIN, win);
  writeU16(b, l4 + TCP_CHECK, 0);
  writeU16(b, l4 + 18, 0);
}

// ---------------------------------------------------------------- the proxy

/** What the SYN proxy uses of the engine (engine.ts builds it once). */
export interface SynproxyDeps {
  readonly conns: ConnTable;
  readonly out: XmitEngine;
  readonly counters: EngineCounters;
  readonly life: {
    setTcpStateTo(cx: number, dest: Dest | undefined, state: number, now: number): void;
    inStats(dest: Dest | undefined, bytes: number): void;
    outStats(dest: Dest | undefined, bytes: number): void;
  };
  readonly ctl: { destById(id: number): Dest | undefined };
  /** The engine's request path for a client segment of connection cx (held ones, translated there). */
  forward(cx: number, dest: Dest | undefined, f: Flow, now: number): number;
}

export class Synproxy {
  private readonly key = new Uint32Array(4);
  private readonly msg = new Int32Array(11);
  private msgLen = 0;
  /** Where the director's own segments are built (SYN-ACK, SYN, ACK): Ethernet room in front. */
  private readonly fb = new Uint8Array(ETH_HLEN + IPV6_HLEN + 60);
  /** The Flow of a segment built here or taken from a hold slot (the engine's is in use). */
  private readonly hf = new Flow();
  /** Per connection, 8 words (R_*), allocated with the first SYN-proxy connection. */
  private rec: Int32Array | null = null;
  private slotView: Uint8Array[] = [];
  private slotNext: Int32Array | null = null;
  private slotLen: Int32Array | null = null;
  private slotFree = -1;

  constructor(
    private readonly e: SynproxyDeps,
    secret: ArrayLike<number>,
  ) {
    for (let i = 0; i < 4; i++) this.key[i] = secret[i] >>> 0;
    this.hf.acceptIpv6 = true;
  }

  // ------------------------------------------------------------ cookie

  /** The hash input for f's 4-tuple (either family). */
  private load(f: Flow): void {
    const m = this.msg;
    const ports = (f.sport << 16) | f.dport | 0;
    if (f.af === 6) {
      for (let i = 0; i < 4; i++) {
        m[i] = f.s6[i];
        m[4 + i] = f.d6[i];
      }
      m[8] = ports;
      this.msgLen = 11;
    } else {
      m[0] = f.saddr | 0;
      m[1] = f.daddr | 0;
      m[2] = ports;
      this.msgLen = 5;
    }
  }

  private hash(count: number, which: number): number {
    const n = this.msgLen;
    this.msg[n - 2] = count | 0;
    this.msg[n - 1] = which;
    return siphash24(this.key, this.msg, n);
  }

  /** secure_tcp_syn_cookie: the ISN for f's 4-tuple, the client's ISN, a count and data. */
  cookie(f: Flow, clientIsn: number, count: number, data: number): number {
    this.load(f);
    const h0 = this.hash(0, 0);
    const h1 = this.hash(count, 1);
    return (h0 + clientIsn + ((count & 0xff) << 24) + ((h1 + data) & 0xffffff)) >>> 0;
  }

  /** check_tcp_syn_cookie: the data of a valid cookie, or -1. */
  checkCookie(f: Flow, cookie: number, clientIsn: number, count: number): number {
    this.load(f);
    const c = (cookie - this.hash(0, 0) - clientIsn) >>> 0;
    const diff = (count - (c >>> 24)) & 0xff;
    if (diff >= SYNPROXY_COOKIE_AGE) return -1;
    const d = (c - this.hash(count - diff, 1)) & 0xffffff;
    return dataValid(d) ? d : -1;
  }

  // ------------------------------------------------------------ step 1: the client's SYN

  /** dp_vs_synproxy_syn_rcv: the SYN in f (to a SYN-proxy service) answered with a cookie SYN-ACK. */
  answerSyn(f: Flow, now: number): number {
    const b = f.buf;
    const l4 = f.l4Off;
    parseOptions(b, l4, f.l3End);
    const data = cookieData(oMss, oWs, oSack, oTs >= 0);
    const isn = this.cookie(f, f.tcpSeq, Math.floor(now / SYNPROXY_COUNT_MS), data);
    const out = this.fb;
    const l3 = ETH_HLEN;
    const v6 = f.af === 6;
    const o = l3 + (v6 ? IPV6_HLEN : 20);
    const mss = Math.min(oMss === 0 ? DEFAULT_MSS : oMss, SYNPROXY_SYNACK_MSS);
    // TSval: the cookie itself, so the real server's values can be moved onto it later.
    const tsecr = oTs >= 0 ? readU32(b, oTs + 2) : 0;
    const olen = writeOptions(out, o + TCP_HLEN, mss, data, SYNPROXY_WSCALE, isn, tsecr);
    const tlen = TCP_HLEN + olen;
    // The window: one segment until the real server's own window reaches the client.
    writeTcp(out, o, f.dport, f.sport, isn, f.tcpSeq + 1, tlen, TCP_SYN | TCP_ACK, mss);
    this.e.counters.synproxySynAcks++;
    if (v6) {
      writeV6(out, l3, tlen, b, f.l3Off + IP6_DADDR, f.l3Off + IP6_SADDR);
      writeU16(out, o + TCP_CHECK, l4ChecksumV6(out, l3, o, tlen, IPPROTO_TCP));
      return this.e.out.emitIp6(out, l3, IPV6_HLEN + tlen, f.s6, 0, f.ifindex, now);
    }
    writeIpv4Header(out, l3, 0, 20 + tlen, 0, 0x4000, 64, IPPROTO_TCP, f.daddr, f.saddr);
    writeU16(out, o + TCP_CHECK, l4ChecksumV4(out, l3, o, tlen, IPPROTO_TCP));
    return this.e.out.emitIp(out, l3, 20 + tlen, f.saddr | 0, now);
  }

  // ------------------------------------------------------------ step 2: the client's ACK

  /** The cookie of the ACK in f (no connection yet): its data, or -1 (counted either way). */
  checkAck(f: Flow, now: number): number {
    const d = this.checkCookie(f, f.tcpAck - 1, f.tcpSeq - 1, Math.floor(now / SYNPROXY_COUNT_MS));
    if (d < 0) this.e.counters.synproxyAcksInvalid++;
    else this.e.counters.synproxyAcksValid++;
    return d;
  }

  /**
   * dp_vs_synproxy_ack_rcv after scheduling: connection cx (to dest) was made for the ACK in f
   * whose cookie carried `data`. It goes to SYN_SENT, the SYN goes to the real server, and the
   * ACK's data (if any) is held.
   */
  open(cx: number, dest: Dest | undefined, f: Flow, data: number, now: number): number {
    const t = this.e.conns;
    const r = this.record(cx, t.capacity);
    const k = cx << RSHIFT;
    parseOptions(f.buf, f.l4Off, f.l3End);
    r[k + R_ISN] = (f.tcpAck - 1) | 0;
    r[k + R_CISN] = (f.tcpSeq - 1) | 0;
    r[k + R_SEQD] = 0;
    r[k + R_TSD] = 0;
    r[k + R_OPT] = data | (SYNPROXY_SYN_RETRIES << O_RETRY_SHIFT);
    r[k + R_TSV] = oTs >= 0 ? readU32(f.buf, oTs + 2) | 0 : 0;
    r[k + R_WIN] = readU16(f.buf, f.l4Off + TCP_WIN);
    r[k + R_HOLD] = -1;
    t.setFlags(cx, t.flagsOf(cx) | CONN_F_SYNPROXY);
    t.setState(cx, TCP_S_SYN_SENT);
    t.arm(cx, SYNPROXY_SYN_RETRY_MS, now);
    this.e.life.inStats(dest, f.l3End - f.l3Off);
    t.countIn(cx);
    this.sendSyn(cx, now);
    if (f.payloadOff < f.l3End || (f.tcpFlags & TCP_FIN) !== 0) this.hold(cx, f);
    return Verdict.Sent;
  }

  /**
   * The real server's SYN for connection cx, built as the client's (CIP:cport → VIP:vport, the
   * client's ISN and options) and sent by the connection's method.
   */
  private sendSyn(cx: number, now: number): number {
    const t = this.e.conns;
    const r = this.rec!;
    const k = cx << RSHIFT;
    const o = r[k + R_OPT];
    const data = o & D_USED;
    const cws = ((data >>> D_WS_SHIFT) & 0xf) - 1;
    const mss = SYNPROXY_MSS_TABLE[data & D_MSS];
    const b = this.fb;
    const v6 = t.isIpv6(cx);
    const l4 = ETH_HLEN + (v6 ? IPV6_HLEN : 20);
    const olen = writeOptions(b, l4 + TCP_HLEN, mss, data, cws < 0 ? 0 : cws, r[k + R_TSV], 0);
    // A SYN's window is never scaled (RFC 7323 §2.2): the client's, in bytes, up to 65535.
    const win = Math.min(0xffff, r[k + R_WIN] * 2 ** (cws < 0 ? 0 : cws));
    return this.emitBuilt(cx, r[k + R_CISN], 0, TCP_SYN, win, TCP_HLEN + olen, now);
  }

  /**
   * The segment whose TCP header and options (tlen bytes) sit in fb, from the client's side of
   * connection cx: headers filled in, parsed into hf and sent by the connection's method.
   */
  private emitBuilt(
    cx: number,
    seq: number,
    ack: number,
    flags: number,
    win: number,
    tlen: number,
    now: number,
  ): number {
    const t = this.e.conns;
    const b = this.fb;
    const l3 = ETH_HLEN;
    const v6 = t.isIpv6(cx);
    const l4 = l3 + (v6 ? IPV6_HLEN : 20);
    writeTcp(b, l4, t.cportOf(cx), t.vportOf(cx), seq, ack, tlen, flags, win);
    if (v6) {
      const a = t.addr6Words;
      if (a === null) return Verdict.Drop;
      writeU32(b, l3, 0x60000000);
      writeU16(b, l3 + 4, tlen);
      b[l3 + 6] = IPPROTO_TCP;
      b[l3 + 7] = 64;
      ipv6FromWords(a, (cx << 4) + A6_CADDR, b, l3 + IP6_SADDR);
      ipv6FromWords(a, (cx << 4) + A6_VADDR, b, l3 + IP6_DADDR);
      writeU16(b, l4 + TCP_CHECK, l4ChecksumV6(b, l3, l4, tlen, IPPROTO_TCP));
      writeU16(b, 12, ETH_P_IPV6);
    } else {
      writeIpv4Header(b, l3, 0, 20 + tlen, 0, 0x4000, 64, IPPROTO_TCP, t.caddrOf(cx), t.vaddrOf(cx));
      writeU16(b, l4 + TCP_CHECK, l4ChecksumV4(b, l3, l4, tlen, IPPROTO_TCP));
      writeU16(b, 12, ETH_P_IP);
    }
    const f = this.hf;
    if (parseFrame(b, l4 + tlen, f, 0) !== PARSE_OK) return Verdict.Drop;
    f.gsoType = 0;
    f.gsoSize = 0;
    f.csumPartial = false;
    const m = (v6 ? XMIT6 : XMIT)[t.flagsOf(cx) & CONN_F_FWD_MASK];
    return m.inbound(this.e.out, cx, f, now);
  }

  /**
   * The SYN_SENT timer of connection cx ran out (conn/life.ts): the SYN goes again while retries
   * are left (true: re-armed), else the connection expires (false).
   */
  expire(cx: number, now: number): boolean {
    const r = this.rec;
    if (r === null) return false;
    const k = cx << RSHIFT;
    const o = r[k + R_OPT];
    const left = (o >>> O_RETRY_SHIFT) & 0xf;
    if ((o & O_LIVE) !== 0 || left === 0 || this.e.conns.stateOf(cx) !== TCP_S_SYN_SENT) return false;
    r[k + R_OPT] = o - (1 << O_RETRY_SHIFT);
    this.e.counters.synproxySynRetries++;
    this.e.conns.arm(cx, SYNPROXY_SYN_RETRY_MS, now);
    this.sendSyn(cx, now);
    return true;
  }

  // ------------------------------------------------------------ held segments

  /** The side record, with room for entry cx (grown by doubling: entry indices are the table's). */
  private record(cx: number, capacity: number): Int32Array {
    const need = (cx + 1) * 8;
    let r = this.rec;
    if (r !== null && need > r.length) {
      let n = r.length;
      while (need > n) n *= 2;
      const g = new Int32Array(n);
      g.set(r);
      this.rec = g;
      return g;
    }
    if (r === null) {
      let n = Math.max(capacity, 64) * 8;
      while (need > n) n *= 2;
      r = new Int32Array(n);
      this.rec = r;
      const s = new Uint8Array(HOLD_SLOTS * HOLD_SLOT);
      this.slotNext = new Int32Array(HOLD_SLOTS);
      this.slotLen = new Int32Array(HOLD_SLOTS);
      for (let i = 0; i < HOLD_SLOTS; i++) {
        this.slotView.push(s.subarray(i * HOLD_SLOT, (i + 1) * HOLD_SLOT));
        this.slotNext[i] = i + 1 < HOLD_SLOTS ? i + 1 : -1;
      }
      this.slotFree = 0;
    }
    return r;
  }

  /** dp_vs_synproxy_filter_ack: a client segment kept until the real server answers (bounded). */
  private hold(cx: number, f: Flow): number {
    const r = this.rec!;
    const k = cx << RSHIFT;
    const o = r[k + R_OPT];
    const held = (o >>> O_HELD_SHIFT) & 3;
    const len = f.l3End - f.l3Off;
    const s = this.slotFree;
    // An aggregate (its checksum may be partial) or a segment past the slot is not held: the
    // client sends it again.
    if (held >= SYNPROXY_MAX_HELD || s < 0 || f.gsoType !== 0 || ETH_HLEN + len > HOLD_SLOT)
      return this.drop(R.synproxy_hold_full);
    const next = this.slotNext!;
    this.slotFree = next[s];
    next[s] = -1;
    this.slotLen![s] = len;
    const v = this.slotView[s];
    const b = f.buf;
    for (let i = 0, j = f.l3Off; i < len; i++, j++) v[ETH_HLEN + i] = b[j];
    writeU16(v, 12, f.af === 6 ? ETH_P_IPV6 : ETH_P_IP);
    let p = r[k + R_HOLD];
    if (p < 0) r[k + R_HOLD] = s;
    else {
      while (next[p] >= 0) p = next[p];
      next[p] = s;
    }
    r[k + R_OPT] = (o & ~(3 << O_HELD_SHIFT)) | ((held + 1) << O_HELD_SHIFT);
    return Verdict.Sent;
  }

  /** The held segments of cx, in order, through the engine's request path; the slots go back. */
  private flush(cx: number, dest: Dest | undefined, now: number): void {
    const r = this.rec!;
    const k = cx << RSHIFT;
    const next = this.slotNext!;
    let s = r[k + R_HOLD];
    r[k + R_HOLD] = -1;
    r[k + R_OPT] &= ~(3 << O_HELD_SHIFT);
    const f = this.hf;
    while (s >= 0) {
      const n = next[s];
      if (parseFrame(this.slotView[s], ETH_HLEN + this.slotLen![s], f, 0) === PARSE_OK) {
        f.gsoType = 0;
        f.gsoSize = 0;
        f.csumPartial = false;
        this.e.forward(cx, dest, f, now);
      }
      next[s] = this.slotFree;
      this.slotFree = s;
      s = n;
    }
  }

  /** The connection is gone (conn/life.ts unlink): its held segments are dropped. */
  release(cx: number): void {
    const r = this.rec;
    if (r === null) return;
    const k = cx << RSHIFT;
    const next = this.slotNext!;
    let s = r[k + R_HOLD];
    r[k + R_HOLD] = -1;
    r[k + R_OPT] = 0;
    while (s >= 0) {
      const n = next[s];
      next[s] = this.slotFree;
      this.slotFree = s;
      s = n;
    }
  }

  /** Hold slots in use (tests, status). */
  heldSlots(): number {
    let free = 0;
    const next = this.slotNext;
    if (next === null) return 0;
    for (let s = this.slotFree; s >= 0; s = next[s]) free++;
    return HOLD_SLOTS - free;
  }

  // ------------------------------------------------------------ per packet

  /**
   * A client segment of SYN-proxy connection cx (engine.ts inbound), before its accounting: -1 to
   * go on (translated when the connection is live), SYNPROXY_REOPEN (the entry must go, the ACK
   * makes a new connection), or the verdict of what was done instead (a SYN answered, a segment
   * held, a pure ACK dropped while the real server has not answered).
   */
  request(cx: number, f: Flow, now: number): number {
    if (f.proto !== IPPROTO_TCP) return -1;
    const fl = f.tcpFlags;
    // dp_vs_synproxy_syn_rcv runs before any lookup: every SYN to the service gets a cookie.
    if ((fl & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN) return this.answerSyn(f, now);
    const r = this.rec;
    if (r === null) return -1;
    const k = cx << RSHIFT;
    const o = r[k + R_OPT];
    if ((o & O_LIVE) === 0) {
      if (f.payloadOff < f.l3End || (fl & (TCP_FIN | TCP_RST)) !== 0) return this.hold(cx, f);
      return this.drop(R.synproxy_waiting);
    }
    if ((fl & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === TCP_ACK && this.reopens(cx, r[k + R_ISN], f, now))
      return SYNPROXY_REOPEN;
    const b = f.buf;
    const l4 = f.l4Off;
    ppAckBack(b, l4, f.l3End, 0, r[k + R_SEQD], 0, true);
    if ((o & D_TS) !== 0) {
      parseOptions(b, l4, f.l3End);
      if (oTs >= 0) set32(b, l4, oTs + 6, readU32(b, oTs + 6) - r[k + R_TSD]);
    }
    const cws = ((o >>> D_WS_SHIFT) & 0xf) - 1;
    if (cws > 0 && ((o >>> O_RSWS_SHIFT) & 0xf) === 0)
      setWindow(b, l4, Math.min(0xffff, readU16(b, l4 + TCP_WIN) * 2 ** cws));
    return -1;
  }

  /**
   * dp_vs_synproxy_reuse_conn (DPVS's conn_reuse_state close and time_wait, its defaults): a client
   * ACK with a valid cookie of another handshake, on the 4-tuple of an entry that has closed, is a
   * new connection's (its SYN got a cookie from request()); the old entry must make room. The
   * entry's own last ACK fails the cookie and goes on as it is.
   */
  private reopens(cx: number, isn: number, f: Flow, now: number): boolean {
    const st = this.e.conns.stateOf(cx);
    if (st !== TCP_S_CLOSE && st !== TCP_S_TIME_WAIT) return false;
    if (((f.tcpAck - 1) | 0) === isn) return false;
    return this.checkCookie(f, f.tcpAck - 1, f.tcpSeq - 1, Math.floor(now / SYNPROXY_COUNT_MS)) >= 0;
  }

  /**
   * A real server's segment of SYN-proxy connection cx (engine.ts outbound), before its
   * accounting: -1 to go on (translated), or the verdict of what was done instead.
   */
  reply(cx: number, f: Flow, now: number): number {
    const r = this.rec;
    if (r === null || f.proto !== IPPROTO_TCP) return -1;
    const k = cx << RSHIFT;
    const o = r[k + R_OPT];
    if ((o & O_LIVE) !== 0) {
      this.toClient(r, k, o, f);
      return -1;
    }
    const t = this.e.conns;
    const fl = f.tcpFlags;
    const isn = r[k + R_ISN];
    const acksSyn = (f.tcpAck | 0) === ((r[k + R_CISN] + 1) | 0);
    const dest = this.e.ctl.destById(t.destOf(cx));
    if ((fl & (TCP_SYN | TCP_ACK | TCP_RST)) === (TCP_SYN | TCP_ACK) && acksSyn) {
      // dp_vs_synproxy_synack_rcv.
      const b = f.buf;
      parseOptions(b, f.l4Off, f.l3End);
      const rsTs = oTs >= 0 ? readU32(b, oTs + 2) : 0;
      r[k + R_SEQD] = (isn - f.tcpSeq) | 0;
      r[k + R_TSD] = (isn - rsTs) | 0;
      r[k + R_OPT] =
        (o & D_USED) | ((oWs < 0 ? 0 : oWs + 1) << O_RSWS_SHIFT) | O_LIVE | (o & (3 << O_HELD_SHIFT));
      this.e.life.setTcpStateTo(cx, dest, TCP_S_ESTABLISHED, now);
      this.e.life.outStats(dest, f.l3End - f.l3Off);
      t.countOut(cx);
      this.e.counters.synproxyConnsOpened++;
      this.sendAck(cx, f.tcpSeq + 1, rsTs, now);
      this.flush(cx, dest, now);
      return Verdict.Sent;
    }
    if ((fl & TCP_RST) !== 0 && ((fl & TCP_ACK) === 0 || acksSyn)) {
      // The real server refused: the client gets the reset at the number it expects (DPVS).
      r[k + R_SEQD] = (isn + 1 - f.tcpSeq) | 0;
      this.release(cx);
      r[k + R_OPT] = (o & D_USED) | O_LIVE;
      this.e.life.setTcpStateTo(cx, dest, TCP_S_CLOSE, now);
      this.toClient(r, k, r[k + R_OPT], f);
      return -1;
    }
    return this.drop(R.synproxy_waiting);
  }

  /** The ACK that completes the real server's handshake, built from the client's (window, TSval). */
  private sendAck(cx: number, rsIsn1: number, rsTs: number, now: number): number {
    const r = this.rec!;
    const k = cx << RSHIFT;
    const o = r[k + R_OPT];
    const b = this.fb;
    const l4 = ETH_HLEN + (this.e.conns.isIpv6(cx) ? IPV6_HLEN : 20);
    let tlen = TCP_HLEN;
    if ((o & D_TS) !== 0) {
      const p = l4 + TCP_HLEN;
      b[p] = 1;
      b[p + 1] = 1;
      b[p + 2] = TCPOPT_TS;
      b[p + 3] = 10;
      writeU32(b, p + 4, r[k + R_TSV]);
      writeU32(b, p + 8, rsTs);
      tlen += 12;
    }
    let win = r[k + R_WIN];
    const cws = ((o >>> D_WS_SHIFT) & 0xf) - 1;
    if (cws > 0 && ((o >>> O_RSWS_SHIFT) & 0xf) === 0) win = Math.min(0xffff, win * 2 ** cws);
    return this.emitBuilt(cx, r[k + R_CISN] + 1, rsIsn1, TCP_ACK, win, tlen, now);
  }

  /** A live connection's reply: seq and TSval moved onto the client's view, window rescaled. */
  private toClient(r: Int32Array, k: number, o: number, f: Flow): void {
    const b = f.buf;
    const l4 = f.l4Off;
    ppShiftSeq(b, l4, r[k + R_SEQD]);
    if ((o & D_TS) !== 0) {
      parseOptions(b, l4, f.l3End);
      if (oTs >= 0) set32(b, l4, oTs + 2, readU32(b, oTs + 2) + r[k + R_TSD]);
    }
    if (((o >>> D_WS_SHIFT) & 0xf) !== 0) {
      const rsws = ((o >>> O_RSWS_SHIFT) & 0xf) - 1;
      const shift = (rsws < 0 ? 0 : rsws) - SYNPROXY_WSCALE;
      if (shift !== 0) {
        const w = readU16(b, l4 + TCP_WIN);
        setWindow(b, l4, Math.min(0xffff, Math.floor(w * 2 ** shift)));
      }
    }
  }

  private drop(reason: number): number {
    this.e.counters.drops[reason]++;
    return Verdict.Drop;
  }

  /** Is connection cx's handshake with its real server done (tests, listings)? */
  isLive(cx: number): boolean {
    const r = this.rec;
    return r !== null && (r[(cx << RSHIFT) + R_OPT] & O_LIVE) !== 0;
  }

  /**
   * Connection sync (sync/sender.ts): connection cx's translation into out (seq delta, TSval
   * delta, the option bits a backup needs: the cookie's data and the real server's window scale);
   * false while its handshake with the real server is not done (nothing to carry yet).
   */
  syncState(cx: number, out: Int32Array): boolean {
    const r = this.rec;
    if (r === null) return false;
    const k = cx << RSHIFT;
    const o = r[k + R_OPT];
    if ((o & O_LIVE) === 0) return false;
    out[0] = r[k + R_SEQD];
    out[1] = r[k + R_TSD];
    out[2] = o & (D_USED | (0xf << O_RSWS_SHIFT));
    return true;
  }

  /**
   * A synced connection (sync/install.ts, the backup): cx translates as its master's did. The
   * table's capacity sizes the side record as for a connection made here.
   */
  installSynced(cx: number, seqd: number, tsd: number, opt: number, capacity: number): void {
    const r = this.record(cx, capacity);
    const k = cx << RSHIFT;
    r[k + R_ISN] = 0;
    r[k + R_CISN] = 0;
    r[k + R_SEQD] = seqd | 0;
    r[k + R_TSD] = tsd | 0;
    r[k + R_OPT] = (opt & (D_USED | (0xf << O_RSWS_SHIFT))) | O_LIVE;
    r[k + R_TSV] = 0;
    r[k + R_WIN] = 0;
    r[k + R_HOLD] = -1;
  }

  /** Connection cx's sequence delta (tests). */
  seqDelta(cx: number): number {
    const r = this.rec;
    return r === null ? 0 : r[(cx << RSHIFT) + R_SEQD];
  }
}

/** A 40-byte IPv6 TCP header at out[l3] from the addresses at src[sAt] and src[dAt]. */
function writeV6(out: Uint8Array, l3: number, tlen: number, src: Uint8Array, sAt: number, dAt: number): void {
  writeU32(out, l3, 0x60000000);
  writeU16(out, l3 + 4, tlen);
  out[l3 + 6] = IPPROTO_TCP;
  out[l3 + 7] = 64;
  for (let i = 0; i < 16; i++) {
    out[l3 + IP6_SADDR + i] = src[sAt + i];
    out[l3 + IP6_DADDR + i] = src[dAt + i];
  }
}
