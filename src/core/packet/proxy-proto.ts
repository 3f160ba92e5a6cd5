// The PROXY protocol (HAProxy, doc/proxy-protocol.txt, versions 1 and 2) as DPVS's FULLNAT sends it
// (src/ipvs/ip_vs_proxy_proto.c proxy_proto_insert): the header describing the client's connection
// (source = the client's address:port, destination = the VIP:port) goes in front of the first
// bytes of client data the real server receives, and the director shifts the connection's sequence
// numbers by its length from then on (tcp_in_adjust_seq / tcp_out_adjust_seq). The header builders
// write bytes into a caller's buffer (no strings: the data path calls them), and the sequence
// helpers rewrite a TCP header in place with incremental checksums.
//
// Sequence space of a PP connection, with isn1 = the client's ISN + 1 (its first data byte), L the
// length of the header the real server gets and O the length of a PROXY header the client itself
// sent at isn1 (0 when it sent none), which the director's replaces (DPVS: secure mode; -insecure
// translates it to the service's version, or passes one of that version as it is: L = O = 0): the
// real server sees the header at isn1..isn1+L-1 and the client's byte at s >= isn1+O at s+L-O. The
// director keeps no "sent" state (DPVS's pp_sent): a client segment starting at isn1 gets the
// header again, so the client's own retransmission of it carries it again; the real server's ACKs
// and SACK edges go back by L-O, one inside the header clamped to isn1 (the client's data there is
// not acknowledged). Once the client has been told of data past isn1 it never sends from isn1 again,
// and every later number is shifted without comparing (long connections wrap).

import { readU16, readU32, writeU16, writeU32 } from "../addr.js";
import { csumReplace16, csumReplace32 } from "./csum.js";

/** DPVS's proxy_protocol values (include/conf/service.h): the version and the insecure flag. */
export const PP_DISABLE = 0;
export const PP_V1 = 1;
export const PP_V2 = 2;
export const PP_VERSION_MASK = 0x0f;
export const PP_F_INSECURE = 0x10;

/** The names ipvsadm takes and prints (proxy_protocol_type / proxy_protocol_str). */
export const PP_NAMES = ["disable", "v1", "v2", "v1-insecure", "v2-insecure"] as const;
export type ProxyProtocolName = (typeof PP_NAMES)[number];

/** A name's value, or -1 (DPVS's proxy_protocol_type compares without case). */
export function ppValue(name: string): number {
  switch (name.toLowerCase()) {
    case "disable":
      return PP_DISABLE;
    case "v1":
      return PP_V1;
    case "v2":
      return PP_V2;
    case "v1-insecure":
      return PP_V1 | PP_F_INSECURE;
    case "v2-insecure":
      return PP_V2 | PP_F_INSECURE;
  }
  return -1;
}

/** proxy_protocol_str. */
export function ppName(v: number): ProxyProtocolName {
  const ins = (v & PP_F_INSECURE) !== 0;
  switch (v & PP_VERSION_MASK) {
    case PP_V1:
      return ins ? "v1-insecure" : "v1";
    case PP_V2:
      return ins ? "v2-insecure" : "v2";
  }
  return "disable";
}

/**
 * What is wrong with asking service (protocol, fwmark) for the PROXY protocol `name`, or null. tsvs
 * sends it over TCP. DPVS also prefixes the first datagram of a UDP connection with a v2 header
 * (lost with it when it is lost); tsvs refuses that rather than half-do it.
 */
export function ppRefusal(name: string, protocol: number, fwmark: number): string | null {
  const v = ppValue(name);
  if (v < 0) return `invalid proxy protocol "${name}" (disable|v1|v2|v1-insecure|v2-insecure)`;
  if (v !== PP_DISABLE && fwmark === 0 && protocol !== 6)
    return "proxy protocol is for TCP services (tsvs sends no PROXY header over UDP)";
  return null;
}

/** The v2 signature (proxy-protocol.txt §2.2), then ver_cmd, fam, len (big-endian). */
export const PP2_SIGNATURE = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);
export const PP2_HLEN = 16;
/** Version 2 with the PROXY command; the LOCAL command (health checks) is 0x20. */
const PP2_VER_PROXY = 0x21;
const PP2_VER_LOCAL = 0x20;
/** AF_INET or AF_INET6 over STREAM. */
const PP2_TCP4 = 0x11;
const PP2_TCP6 = 0x21;
export const PP2_LEN_TCP4 = PP2_HLEN + 12;
export const PP2_LEN_TCP6 = PP2_HLEN + 36;
/** The longest v1 line (proxy-protocol.txt §2.1): "PROXY TCP6 " + 2 × 39 + 2 × 5 + spaces + CRLF. */
export const PP1_MAX_LEN = 107;

/**
 * What a health check sends first to a real server that expects the protocol (keepalived's
 * check_data.h PROXY_PROTOCOL_CHECK_V1 / _V2): a v1 UNKNOWN line, a v2 LOCAL header with no address.
 */
export const PP1_CHECK = Uint8Array.from("PROXY UNKNOWN\r\n", (c) => c.charCodeAt(0));
export const PP2_CHECK = Uint8Array.of(...PP2_SIGNATURE, PP2_VER_LOCAL, 0x00, 0x00, 0x00);

function writeSig(b: Uint8Array, off: number): void {
  for (let i = 0; i < 12; i++) b[off + i] = PP2_SIGNATURE[i];
}

/** The v2 header of a TCP connection from saddr:sport to daddr:dport (IPv4, int32 bits); its length. */
export function pp2WriteTcp4(
  b: Uint8Array,
  off: number,
  saddr: number,
  sport: number,
  daddr: number,
  dport: number,
): number {
  writeSig(b, off);
  b[off + 12] = PP2_VER_PROXY;
  b[off + 13] = PP2_TCP4;
  writeU16(b, off + 14, 12);
  writeU32(b, off + 16, saddr >>> 0);
  writeU32(b, off + 20, daddr >>> 0);
  writeU16(b, off + 24, sport);
  writeU16(b, off + 26, dport);
  return PP2_LEN_TCP4;
}

/** The v2 header with IPv6 addresses, given as words (addr.ts ipv6ToWords) at w[sAt] and w[dAt]. */
export function pp2WriteTcp6(
  b: Uint8Array,
  off: number,
  w: Int32Array,
  sAt: number,
  sport: number,
  dAt: number,
  dport: number,
): number {
  writeSig(b, off);
  b[off + 12] = PP2_VER_PROXY;
  b[off + 13] = PP2_TCP6;
  writeU16(b, off + 14, 36);
  for (let i = 0; i < 4; i++) {
    writeU32(b, off + 16 + 4 * i, w[sAt + i] >>> 0);
    writeU32(b, off + 32 + 4 * i, w[dAt + i] >>> 0);
  }
  writeU16(b, off + 48, sport);
  writeU16(b, off + 50, dport);
  return PP2_LEN_TCP6;
}

const C_SPACE = 0x20;
const C_DOT = 0x2e;
const C_COLON = 0x3a;
const PP1_TCP4 = Uint8Array.from("PROXY TCP4 ", (c) => c.charCodeAt(0));
const PP1_TCP6 = Uint8Array.from("PROXY TCP6 ", (c) => c.charCodeAt(0));

function writeAscii(b: Uint8Array, off: number, s: Uint8Array): number {
  for (let i = 0; i < s.length; i++) b[off + i] = s[i];
  return off + s.length;
}

function writeDec(b: Uint8Array, off: number, v: number): number {
  if (v >= 10000) b[off++] = 0x30 + Math.floor(v / 10000);
  if (v >= 1000) b[off++] = 0x30 + (Math.floor(v / 1000) % 10);
  if (v >= 100) b[off++] = 0x30 + (Math.floor(v / 100) % 10);
  if (v >= 10) b[off++] = 0x30 + (Math.floor(v / 10) % 10);
  b[off++] = 0x30 + (v % 10);
  return off;
}

function writeQuad(b: Uint8Array, off: number, a: number): number {
  off = writeDec(b, off, (a >>> 24) & 0xff);
  b[off++] = C_DOT;
  off = writeDec(b, off, (a >>> 16) & 0xff);
  b[off++] = C_DOT;
  off = writeDec(b, off, (a >>> 8) & 0xff);
  b[off++] = C_DOT;
  return writeDec(b, off, a & 0xff);
}

function writeHex(b: Uint8Array, off: number, v: number): number {
  let started = false;
  for (let sh = 12; sh >= 0; sh -= 4) {
    const d = (v >>> sh) & 15;
    if (d === 0 && !started && sh !== 0) continue;
    started = true;
    b[off++] = d < 10 ? 0x30 + d : 0x57 + d;
  }
  return off;
}

/** Group i (0..7) of the address at w[at]. */
function group(w: Int32Array, at: number, i: number): number {
  const x = w[at + (i >> 1)];
  return (i & 1) === 0 ? (x >>> 16) & 0xffff : x & 0xffff;
}

/** The address as glibc's inet_ntop prints it (the rules of addr.ts formatIPv6), as bytes. */
function writeIpv6Text(b: Uint8Array, off: number, w: Int32Array, at: number): number {
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  for (let i = 0; i <= 8; i++) {
    if (i < 8 && group(w, at, i) === 0) {
      if (curBase < 0) curBase = i;
    } else if (curBase >= 0) {
      if (i - curBase > bestLen) {
        bestBase = curBase;
        bestLen = i - curBase;
      }
      curBase = -1;
    }
  }
  if (bestLen < 2) bestBase = -1;
  for (let i = 0; i < 8; i++) {
    if (bestBase >= 0 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) b[off++] = C_COLON;
      continue;
    }
    if (i !== 0) b[off++] = C_COLON;
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && group(w, at, 5) === 0xffff)))
      return writeQuad(b, off, w[at + 3]);
    off = writeHex(b, off, group(w, at, i));
  }
  if (bestBase >= 0 && bestBase + bestLen === 8) b[off++] = C_COLON;
  return off;
}

function writeV1Tail(b: Uint8Array, off: number, sport: number, dport: number): number {
  b[off++] = C_SPACE;
  off = writeDec(b, off, sport);
  b[off++] = C_SPACE;
  off = writeDec(b, off, dport);
  b[off++] = 0x0d;
  b[off++] = 0x0a;
  return off;
}

/** "PROXY TCP4 saddr daddr sport dport\r\n" (DPVS's snprintf); its length. b needs PP1_MAX_LEN bytes. */
export function pp1WriteTcp4(
  b: Uint8Array,
  off: number,
  saddr: number,
  sport: number,
  daddr: number,
  dport: number,
): number {
  let p = writeAscii(b, off, PP1_TCP4);
  p = writeQuad(b, p, saddr >>> 0);
  b[p++] = C_SPACE;
  p = writeQuad(b, p, daddr >>> 0);
  return writeV1Tail(b, p, sport, dport) - off;
}

/** The TCP6 line, the addresses as words at w[sAt] and w[dAt]. */
export function pp1WriteTcp6(
  b: Uint8Array,
  off: number,
  w: Int32Array,
  sAt: number,
  sport: number,
  dAt: number,
  dport: number,
): number {
  let p = writeAscii(b, off, PP1_TCP6);
  p = writeIpv6Text(b, p, w, sAt);
  b[p++] = C_SPACE;
  p = writeIpv6Text(b, p, w, dAt);
  return writeV1Tail(b, p, sport, dport) - off;
}

// ------------------------------------------------------------------ sequence numbers

const TCP_SEQ = 4;
const TCP_ACKSEQ = 8;
const TCP_DOFF = 12;
const TCP_FLAGS = 13;
const TCP_CHECK = 16;
const TCPOPT_SACK = 5;
const TCP_FLAG_ACK = 0x10;

/**
 * Sets the TCP header's 32-bit field at l4+at to v, the checksum updated (RFC 1624). Options need
 * no alignment: a SACK edge at an odd distance from the header straddles three checksum words, and
 * its bytes then count swapped.
 */
function setU32(b: Uint8Array, l4: number, at: number, v: number): void {
  const old = readU32(b, l4 + at);
  v >>>= 0;
  if (old === v) return;
  writeU32(b, l4 + at, v);
  const c = readU16(b, l4 + TCP_CHECK);
  if ((at & 1) === 0) {
    writeU16(b, l4 + TCP_CHECK, csumReplace32(c, old, v));
    return;
  }
  writeU16(b, l4 + TCP_CHECK, csumReplace16(c, swap16(fold16(old)), swap16(fold16(v))));
}

/** The 16-bit one's complement sum of a 32-bit value's two halves. */
function fold16(x: number): number {
  const s = (x >>> 16) + (x & 0xffff);
  return (s & 0xffff) + (s >>> 16);
}

function swap16(x: number): number {
  return ((x & 0xff) << 8) | (x >>> 8);
}

/** Shifts the client's sequence number by delta (L - O: a segment after the header). */
export function ppShiftSeq(b: Uint8Array, l4: number, delta: number): void {
  setU32(b, l4, TCP_SEQ, readU32(b, l4 + TCP_SEQ) + delta);
}

/**
 * A number of the real server's sequence space for the client's data (an ACK, a SACK edge, the
 * sequence number of a quoted segment) as the client must see it (see the top): len = L, old = O.
 */
export function ppSeqBack(x: number, isn1: number, len: number, old: number, done: boolean): number {
  if (done) return x - len + old;
  const d = (x - isn1) | 0;
  if (d <= 0) return x;
  return d <= len ? isn1 : x - len + old;
}

/**
 * The real server's segment at l4 (its options bounded by limit, the datagram's end): its ACK number and SACK edges
 * go back by the header's length (tcp_out_adjust_seq; an edge inside the header clamps to isn1).
 * Returns true when the ACK tells the client of data past isn1: it will not send from isn1 again.
 */
export function ppAckBack(
  b: Uint8Array,
  l4: number,
  limit: number,
  isn1: number,
  len: number,
  old: number,
  done: boolean,
): boolean {
  if ((b[l4 + TCP_FLAGS] & TCP_FLAG_ACK) === 0) return false;
  const ack = ppSeqBack(readU32(b, l4 + TCP_ACKSEQ), isn1, len, old, done);
  setU32(b, l4, TCP_ACKSEQ, ack);
  const passed = ((ack - isn1) | 0) > 0;
  // SACK blocks (RFC 2018): kind 5, length 2 + 8n.
  const end = Math.min(l4 + ((b[l4 + TCP_DOFF] >>> 4) << 2), limit);
  let p = l4 + 20;
  while (p < end) {
    const kind = b[p];
    if (kind === 0) break;
    if (kind === 1) {
      p++;
      continue;
    }
    if (p + 1 >= end) break;
    const olen = b[p + 1];
    if (olen < 2 || p + olen > end) break;
    if (kind === TCPOPT_SACK && olen >= 10 && (olen - 2) % 8 === 0) {
      for (let q = p + 2; q < p + olen; q += 4)
        setU32(b, l4, q - l4, ppSeqBack(readU32(b, q), isn1, len, old, done));
    }
    p += olen;
  }
  return passed;
}

// ------------------------------------------------------------------ a client's own header

/**
 * What ppParse read: the version, the family (4, 6, or 0 for UNKNOWN / LOCAL / a family the
 * director does not translate), the addresses as words (source at 0, destination at 4; IPv4 in
 * words 0 and 4) and the ports. One instance: the data path parses one header at a time.
 */
export const ppParsed = { ver: 0, fam: 0, w: new Int32Array(8), sport: 0, dport: 0 };

const PP1_PREFIX = Uint8Array.from("PROXY ", (c) => c.charCodeAt(0));
const groups = new Uint16Array(8);

/** A decimal number of 1..5 digits in b[s, e) up to max, or -1. */
function parseDec(b: Uint8Array, s: number, e: number, max: number): number {
  if (e <= s || e - s > 5) return -1;
  let v = 0;
  for (let i = s; i < e; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v <= max ? v : -1;
}

/** A dotted quad in b[s, e) as a u32, or -1. */
function parseQuad(b: Uint8Array, s: number, e: number): number {
  let v = 0;
  let parts = 0;
  let i = s;
  while (parts < 4) {
    let j = i;
    while (j < e && b[j] !== C_DOT) j++;
    const x = parseDec(b, i, j, 255);
    if (x < 0 || j - i > 3) return -1;
    v = v * 256 + x;
    parts++;
    if (parts === 4) return j === e ? v : -1;
    if (j === e) return -1;
    i = j + 1;
  }
  return -1;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  c |= 0x20;
  return c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
}

/** IPv6 text (inet_pton's forms: one "::", a trailing dotted quad) in b[s, e) into w[at..at+3]. */
function parseIpv6Text(b: Uint8Array, s: number, e: number, w: Int32Array, at: number): boolean {
  let n = 0;
  let gap = -1;
  let i = s;
  if (i < e && b[i] === C_COLON) {
    if (i + 1 >= e || b[i + 1] !== C_COLON) return false;
    gap = 0;
    i += 2;
  }
  while (i < e) {
    let j = i;
    let dot = false;
    while (j < e && b[j] !== C_COLON) {
      if (b[j] === C_DOT) dot = true;
      j++;
    }
    if (dot) {
      const q = j === e && n <= 6 ? parseQuad(b, i, e) : -1;
      if (q < 0) return false;
      groups[n++] = q >>> 16;
      groups[n++] = q & 0xffff;
      i = e;
      break;
    }
    if (j === i || j - i > 4 || n === 8) return false;
    let g = 0;
    for (let k = i; k < j; k++) {
      const h = hexDigit(b[k]);
      if (h < 0) return false;
      g = (g << 4) | h;
    }
    groups[n++] = g;
    i = j;
    if (i < e) {
      i++;
      if (i < e && b[i] === C_COLON) {
        if (gap >= 0) return false;
        gap = n;
        i++;
      } else if (i === e) return false;
    }
  }
  if (gap < 0 ? n !== 8 : n > 7) return false;
  const tail = gap < 0 ? 0 : n - gap;
  for (let k = 0; k < 8; k++) {
    let g = 0;
    if (gap < 0 || k < gap) g = groups[k];
    else if (k >= 8 - tail) g = groups[gap + k - (8 - tail)];
    if ((k & 1) === 0) w[at + (k >> 1)] = g << 16;
    else w[at + (k >> 1)] |= g;
  }
  return true;
}

/** The next space-separated token of the v1 line from b[s] (up to e): its end, or -1. */
function token(b: Uint8Array, s: number, e: number): number {
  let j = s;
  while (j < e && b[j] !== C_SPACE) j++;
  return j > s ? j : -1;
}

/**
 * A PROXY header the client sent at b[off, end) (its first data), as DPVS's proxy_proto_parse reads
 * it: its length (the whole v2 header, TLVs included; the v1 line with its CRLF) with ppParsed
 * filled in, 0 when the data does not start with one, -1 when it starts like one but is cut short
 * or malformed (then the director's header goes in front of it, as if there were none).
 */
export function ppParse(b: Uint8Array, off: number, end: number): number {
  const p = ppParsed;
  p.fam = 0;
  p.sport = 0;
  p.dport = 0;
  const n = end - off;
  if (n >= 12 && b[off] === 0x0d) {
    for (let i = 0; i < 12; i++) if (b[off + i] !== PP2_SIGNATURE[i]) return 0;
    if (n < PP2_HLEN) return -1;
    const vc = b[off + 12];
    const total = PP2_HLEN + ((b[off + 14] << 8) | b[off + 15]);
    if (vc >>> 4 !== 2 || (vc & 15) > 1 || n < total) return -1;
    p.ver = PP_V2;
    const fam = b[off + 13];
    if ((vc & 15) === 1 && fam === PP2_TCP4 && total >= PP2_LEN_TCP4) {
      p.fam = 4;
      p.w[0] = readU32(b, off + 16) | 0;
      p.w[4] = readU32(b, off + 20) | 0;
      p.sport = readU16(b, off + 24);
      p.dport = readU16(b, off + 26);
    } else if ((vc & 15) === 1 && fam === PP2_TCP6 && total >= PP2_LEN_TCP6) {
      p.fam = 6;
      for (let i = 0; i < 4; i++) {
        p.w[i] = readU32(b, off + 16 + 4 * i) | 0;
        p.w[4 + i] = readU32(b, off + 32 + 4 * i) | 0;
      }
      p.sport = readU16(b, off + 48);
      p.dport = readU16(b, off + 50);
    }
    return total;
  }
  if (n < 6) return 0;
  for (let i = 0; i < 6; i++) if (b[off + i] !== PP1_PREFIX[i]) return 0;
  // The line, CRLF included, within proxy-protocol.txt's 107 bytes.
  const lim = Math.min(end, off + PP1_MAX_LEN);
  let eol = off + 6;
  while (eol + 1 < lim && !(b[eol] === 0x0d && b[eol + 1] === 0x0a)) eol++;
  if (eol + 1 >= lim) return -1;
  p.ver = PP_V1;
  const len = eol + 2 - off;
  let s = off + 6;
  let t = token(b, s, eol);
  if (t < 0) return -1;
  const fam = t - s === 4 && b[s] === 0x54 && b[s + 1] === 0x43 && b[s + 2] === 0x50 ? b[s + 3] : 0;
  if (fam !== 0x34 && fam !== 0x36) return len; // UNKNOWN (anything else): no address
  const v6 = fam === 0x36;
  for (let k = 0; k < 8; k += 4) {
    s = t + 1;
    t = token(b, s, eol);
    if (t < 0) return -1;
    if (v6) {
      if (!parseIpv6Text(b, s, t, p.w, k)) return -1;
    } else {
      const a = parseQuad(b, s, t);
      if (a < 0) return -1;
      p.w[k] = a | 0;
    }
  }
  s = t + 1;
  t = token(b, s, eol);
  if (t < 0) return -1;
  p.sport = parseDec(b, s, t, 65535);
  if (p.sport < 0) return -1;
  s = t + 1;
  t = token(b, s, eol);
  if (t !== eol) return -1;
  p.dport = parseDec(b, s, t, 65535);
  if (p.dport < 0) return -1;
  p.fam = v6 ? 6 : 4;
  return len;
}

/**
 * The header of version ver describing what ppParse read (DPVS's -insecure translation), at b[off];
 * its length. Without an address: v1 "PROXY UNKNOWN", v2 the LOCAL command.
 */
export function ppWriteParsed(b: Uint8Array, off: number, ver: number): number {
  const p = ppParsed;
  if (p.fam === 4)
    return ver === PP_V2
      ? pp2WriteTcp4(b, off, p.w[0], p.sport, p.w[4], p.dport)
      : pp1WriteTcp4(b, off, p.w[0], p.sport, p.w[4], p.dport);
  if (p.fam === 6)
    return ver === PP_V2
      ? pp2WriteTcp6(b, off, p.w, 0, p.sport, 4, p.dport)
      : pp1WriteTcp6(b, off, p.w, 0, p.sport, 4, p.dport);
  const h = ver === PP_V2 ? PP2_CHECK : PP1_CHECK;
  b.set(h, off);
  return h.length;
}
