// TCP header (RFC 9293): field offsets, option walking, MSS clamping and option insertion
// (the TOA option that FULLNAT uses to pass the client address to the real server).

import { readU16, writeU16, writeU32 } from "../addr.js";
import { csumAdd, csumFold, csumReplace16 } from "./csum.js";
import { type Flow, IPPROTO_TCP } from "./flow.js";
import { IP_CHECK, IP_TOTLEN } from "./ipv4.js";
import { IP6_PLEN, IPV6_HLEN } from "./ipv6.js";

export const TCP_SPORT = 0;
export const TCP_DPORT = 2;
export const TCP_SEQ = 4;
export const TCP_ACK = 8;
export const TCP_DOFF = 12;
export const TCP_FLAGS = 13;
export const TCP_WIN = 14;
export const TCP_CHECK = 16;
export const TCP_URG = 18;
export const TCP_HLEN = 20;
/** Largest header: data offset 15. */
export const TCP_MAX_HLEN = 60;

export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOLEN_MSS = 4;
/** TOA: "TCP option address", kind 254 (experimental), as the ip_vs TOA module and DPVS use it. */
export const TCPOPT_TOA = 254;
export const TCPOLEN_TOA = 8;
/** TOA for an IPv6 client (DPVS's kmod/toa/toa.h TCPOLEN_IP6_TOA): kind 254, length 20, port, address. */
export const TCPOLEN_TOA6 = 20;

/**
 * Offset in buf of the first option of this kind in the TCP header at l4Off, or -1. Stops at EOL,
 * at a length below 2 or running past the header (as tcp_parse_options does).
 */
export function tcpFindOption(buf: Uint8Array, l4Off: number, kind: number): number {
  if (l4Off < 0 || l4Off + TCP_HLEN > buf.length) return -1;
  let end = l4Off + ((buf[l4Off + TCP_DOFF] >>> 4) << 2);
  if (end > buf.length) end = buf.length;
  let i = l4Off + TCP_HLEN;
  while (i < end) {
    const k = buf[i];
    if (k === kind) {
      // A single-byte kind matches as is; others need a sane length byte.
      if (k === TCPOPT_EOL || k === TCPOPT_NOP) return i;
      if (i + 1 < end && buf[i + 1] >= 2 && i + buf[i + 1] <= end) return i;
      return -1;
    }
    if (k === TCPOPT_EOL) return -1;
    if (k === TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return -1;
    const len = buf[i + 1];
    if (len < 2 || i + len > end) return -1;
    i += len;
  }
  return -1;
}

/** MSS option value, 0 when absent or malformed (length not 4). */
export function tcpGetMss(buf: Uint8Array, l4Off: number): number {
  const o = tcpFindOption(buf, l4Off, TCPOPT_MSS);
  if (o < 0 || buf[o + 1] !== TCPOLEN_MSS) return 0;
  return readU16(buf, o + 2);
}

/** Sets the MSS option value with an incremental checksum fix; false when there is no MSS option. */
export function tcpSetMss(buf: Uint8Array, flow: Flow, mss: number): boolean {
  if (flow.proto !== IPPROTO_TCP || flow.fragment) return false;
  const l4 = flow.l4Off;
  const o = tcpFindOption(buf, l4, TCPOPT_MSS);
  if (o < 0 || buf[o + 1] !== TCPOLEN_MSS || l4 + TCP_CHECK + 2 > buf.length) return false;
  mss &= 0xffff;
  const v = o + 2;
  let oldv = readU16(buf, v);
  writeU16(buf, v, mss);
  let newv = mss;
  // Options need no alignment: a value at an odd distance from the header start straddles two
  // checksum words, which adds it byte-swapped to the sum.
  if (((v - l4) & 1) === 1) {
    oldv = ((oldv & 255) << 8) | (oldv >>> 8);
    newv = ((newv & 255) << 8) | (newv >>> 8);
  }
  writeU16(buf, l4 + TCP_CHECK, csumReplace16(readU16(buf, l4 + TCP_CHECK), oldv, newv));
  return true;
}

/**
 * Inserts opt[0, optLen) right after the fixed 20-byte TCP header (before existing options, so a
 * trailing EOL in them cannot hide it, as DPVS inserts TOA), moving options and payload up. Fixes
 * data offset, IP total length, both checksums (incrementally: the moved bytes keep their word
 * alignment since optLen is a multiple of 4), flow.len/l3End/payloadOff. Trailing Ethernet padding
 * is dropped (flow.len = new l3End). False, with nothing changed, for a non-TCP flow, a fragment, an
 * optLen that is not a positive multiple of 4, a header that would exceed 60 bytes, a datagram that
 * would exceed 65535 bytes, or a buffer (capacity, at most buf.length) too small.
 */
export function tcpInsertOption(
  buf: Uint8Array,
  flow: Flow,
  opt: Uint8Array,
  optLen: number,
  capacity: number,
): boolean {
  if (flow.proto !== IPPROTO_TCP || flow.fragment) return false;
  if (!(optLen > 0) || (optLen & 3) !== 0 || optLen > opt.length) return false;
  const l3 = flow.l3Off;
  const l4 = flow.l4Off;
  const end = flow.l3End;
  if (capacity > buf.length) capacity = buf.length;
  if (l3 < 0 || l4 < l3 + 20 || end > buf.length || l4 + TCP_HLEN > end) return false;
  const doffByte = buf[l4 + TCP_DOFF];
  const hlen = (doffByte >>> 4) << 2;
  if (hlen < TCP_HLEN || l4 + hlen > end || hlen + optLen > TCP_MAX_HLEN) return false;
  // IPv6's payload length leaves out the 40-byte fixed header (and bounds the same 16 bits).
  const v6 = flow.af === 6;
  const totLen = v6 ? end - l3 - IPV6_HLEN : end - l3;
  if (totLen + optLen > 0xffff || end + optLen > capacity) return false;

  const at = l4 + TCP_HLEN;
  buf.copyWithin(at + optLen, at, end);
  for (let i = 0; i < optLen; i++) buf[at + i] = opt[i];

  const oldW12 = (doffByte << 8) | buf[l4 + TCP_FLAGS];
  const newDoffByte = (((hlen + optLen) >>> 2) << 4) | (doffByte & 15);
  buf[l4 + TCP_DOFF] = newDoffByte;
  const newW12 = (newDoffByte << 8) | buf[l4 + TCP_FLAGS];
  const oldSegLen = end - l4;
  const newSegLen = oldSegLen + optLen;
  // RFC 1624 eqn. 3 over several changes: ~C + Σ(~old) + Σ(new) + added words.
  let s = ~readU16(buf, l4 + TCP_CHECK) & 0xffff;
  s += (~oldW12 & 0xffff) + newW12;
  s += (~oldSegLen & 0xffff) + newSegLen;
  s = csumAdd(opt, 0, optLen, s);
  writeU16(buf, l4 + TCP_CHECK, ~csumFold(s) & 0xffff);

  if (v6) writeU16(buf, l3 + IP6_PLEN, totLen + optLen);
  else {
    writeU16(buf, l3 + IP_TOTLEN, totLen + optLen);
    writeU16(buf, l3 + IP_CHECK, csumReplace16(readU16(buf, l3 + IP_CHECK), totLen, totLen + optLen));
  }

  flow.l3End = end + optLen;
  flow.len = flow.l3End;
  flow.payloadOff += optLen;
  return true;
}

/** Writes the 8-byte TOA option: kind 254, length 8, client port, client IPv4 address. */
export function writeToaOption(opt: Uint8Array, off: number, port: number, addr: number): void {
  opt[off] = TCPOPT_TOA;
  opt[off + 1] = TCPOLEN_TOA;
  writeU16(opt, off + 2, port & 0xffff);
  writeU32(opt, off + 4, addr >>> 0);
}

/** The 20-byte TOA option of an IPv6 client: kind 254, length 20, client port, the 16-byte address. */
export function writeToa6Option(
  opt: Uint8Array,
  off: number,
  port: number,
  w: Int32Array,
  wOff: number,
): void {
  opt[off] = TCPOPT_TOA;
  opt[off + 1] = TCPOLEN_TOA6;
  writeU16(opt, off + 2, port & 0xffff);
  for (let k = 0; k < 4; k++) writeU32(opt, off + 4 + 4 * k, w[wOff + k] >>> 0);
}
