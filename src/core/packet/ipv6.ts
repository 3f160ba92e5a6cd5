// IPv6 header (RFC 8200 §3) and its extension-header chain (§4), walked the way the kernel's
// ipv6_find_hdr(skb, &off, -1, &fragoff, NULL) walks it for IPVS (ip_vs_fill_iph_skb_off): hop-by-
// hop, routing, fragment, destination options and AH are skipped; anything else is the upper layer
// (ESP included: its payload is opaque); a non-first fragment stops the walk at the fragment header,
// since nothing after it is a header. The fragment checks are ipv6_frag_rcv's. Every read is
// bounds-checked against the end given; nothing throws and nothing is allocated per call: results
// go into a caller-owned Ipv6Walk.

import { readU16, readU32, writeU16, writeU32 } from "../addr.js";
import { csumReplace128 } from "./csum.js";

export const IP6_VER_TC_FL = 0;
export const IP6_PLEN = 4;
export const IP6_NEXTHDR = 6;
export const IP6_HOPLIMIT = 7;
export const IP6_SADDR = 8;
export const IP6_DADDR = 24;
export const IPV6_HLEN = 40;
/** RFC 8200 §5: every link carries 1280 bytes; ICMPv6 errors fit in it (RFC 4443 §2.4(c)). */
export const IPV6_MIN_MTU = 1280;

/** Next-header values (IANA protocol numbers). */
export const NEXTHDR_HOP = 0;
export const NEXTHDR_TCP = 6;
export const NEXTHDR_UDP = 17;
export const NEXTHDR_IPV6 = 41;
export const NEXTHDR_ROUTING = 43;
export const NEXTHDR_FRAGMENT = 44;
export const NEXTHDR_GRE = 47;
export const NEXTHDR_ESP = 50;
export const NEXTHDR_AUTH = 51;
export const NEXTHDR_ICMPV6 = 58;
export const NEXTHDR_NONE = 59;
export const NEXTHDR_DEST = 60;
export const NEXTHDR_SCTP = 132;

/**
 * At most this many extension headers are walked. RFC 8200 §4.1 orders a chain as hop-by-hop,
 * destination options, routing, fragment, AH, destination options: six, each at most once (the
 * destination options twice). Eight leaves room for an odd but legal chain, and stops a crafted one
 * (a 1500-byte frame holds 182 eight-byte headers) from costing a loop per header.
 */
export const IPV6_MAX_EXT_HDRS = 8;

export const IP6_OK = 0;
/** Shorter than the 40-byte header. */
export const IP6_ERR_TRUNC = 1;
export const IP6_ERR_VERSION = 2;
/** The payload length runs past the end of the frame. */
export const IP6_ERR_PLEN = 3;
/** An extension header runs past the end of the payload. */
export const IP6_ERR_EXT_TRUNC = 4;
/** Hop-by-hop options anywhere but right after the IPv6 header (RFC 8200 §4.3). */
export const IP6_ERR_HOP_ORDER = 5;
/** More than IPV6_MAX_EXT_HDRS extension headers. */
export const IP6_ERR_EXT_MANY = 6;
/** A fragment that is not the last whose data is not a multiple of 8, or one ending past 65535 (§4.5). */
export const IP6_ERR_FRAG_LEN = 7;
/** A first fragment without the whole header chain up to the upper-layer header (RFC 7112, §4.5). */
export const IP6_ERR_FRAG_HDRS = 8;

/** Name of every result code, indexed by code (drop counters); error names start with "err_". */
export const IP6_RESULT_NAMES: readonly string[] = [
  "ok",
  "err_ip6_trunc",
  "err_ip6_version",
  "err_ip6_plen",
  "err_ip6_ext_trunc",
  "err_ip6_hop_order",
  "err_ip6_ext_many",
  "err_ip6_frag_len",
  "err_ip6_frag_hdrs",
];

/** The largest IPv6 payload without a jumbo option. */
const IPV6_MAXPLEN = 65535;
const FRAG_OFFSET_MASK = 0xfff8;
const FRAG_MF = 1;

/** What an extension-header walk found. One instance per data-path context, reused. */
export class Ipv6Walk {
  /** Offset of the IPv6 header and the end of its payload (l3Off + 40 + payload length, or the quote's end). */
  l3Off = 0;
  l3End = 0;
  /** The upper-layer protocol (next header of the last extension header) and where it starts. */
  proto = 0;
  l4Off = 0;
  /** Offset of the byte that holds `proto`: byte 6 of the IPv6 header or byte 0 of an extension header. */
  protoOff = 0;
  /** Extension headers walked. */
  extCount = 0;
  /** Offset of the (first) routing header, or -1. */
  routingOff = -1;
  /** Offset of the fragment header, or -1; the fragment offset in bytes, the M flag, the identification. */
  fragHdrOff = -1;
  fragOffset = 0;
  fragMore = false;
  fragId = 0;
  /**
   * A real fragment (offset > 0 or M set). An atomic fragment (offset 0, M clear: RFC 6946) is not
   * one, as ipv6_frag_rcv treats it. Only the first fragment has ports: for the others, l4Off is
   * where the fragment's data starts and `proto` says what the whole datagram carries.
   */
  fragment = false;
  firstFragment = false;
}

function resetWalk(w: Ipv6Walk, l3Off: number): void {
  w.l3Off = l3Off;
  w.l3End = 0;
  w.proto = 0;
  w.l4Off = 0;
  w.protoOff = 0;
  w.extCount = 0;
  w.routingOff = -1;
  w.fragHdrOff = -1;
  w.fragOffset = 0;
  w.fragMore = false;
  w.fragId = 0;
  w.fragment = false;
  w.firstFragment = false;
}

/** The upper-layer header a first fragment must hold whole (ipv6frag_thdr_truncated). */
function upperHeaderLen(proto: number): number {
  if (proto === NEXTHDR_TCP) return 20;
  if (proto === NEXTHDR_UDP || proto === NEXTHDR_ICMPV6) return 8;
  return 1;
}

/** Walks the chain of w (l3Off, l3End set) from the fixed header's next header on. */
function walkChain(buf: Uint8Array, w: Ipv6Walk, quoted: boolean): number {
  const end = w.l3End;
  let protoOff = w.l3Off + IP6_NEXTHDR;
  let nh = buf[protoOff];
  let off = w.l3Off + IPV6_HLEN;
  let count = 0;
  for (;;) {
    if (nh === NEXTHDR_HOP) {
      if (count !== 0) return IP6_ERR_HOP_ORDER;
    } else if (
      nh !== NEXTHDR_ROUTING &&
      nh !== NEXTHDR_FRAGMENT &&
      nh !== NEXTHDR_DEST &&
      nh !== NEXTHDR_AUTH
    ) {
      break;
    }
    if (count === IPV6_MAX_EXT_HDRS) return IP6_ERR_EXT_MANY;
    // Every extension header is at least 8 bytes (AH too: (0 + 2) * 4).
    if (off + 8 > end) return IP6_ERR_EXT_TRUNC;
    count++;
    let hlen: number;
    if (nh === NEXTHDR_FRAGMENT) {
      hlen = 8;
      const fo = readU16(buf, off + 2);
      w.fragHdrOff = off;
      w.fragOffset = fo & FRAG_OFFSET_MASK;
      w.fragMore = (fo & FRAG_MF) !== 0;
      w.fragId = readU32(buf, off + 4);
      w.fragment = w.fragOffset !== 0 || w.fragMore;
      w.firstFragment = w.fragMore && w.fragOffset === 0;
      if (w.fragment && !quoted) {
        const dataLen = end - off - 8;
        if ((w.fragMore && (dataLen & 7) !== 0) || w.fragOffset + dataLen > IPV6_MAXPLEN)
          return IP6_ERR_FRAG_LEN;
      }
      if (w.fragOffset !== 0) {
        w.extCount = count;
        w.protoOff = off;
        w.proto = buf[off];
        w.l4Off = off + 8;
        return IP6_OK;
      }
    } else if (nh === NEXTHDR_AUTH) {
      // RFC 4302 §2.2: AH counts its length in 32-bit words, minus 2.
      hlen = (buf[off + 1] + 2) << 2;
    } else {
      hlen = (buf[off + 1] + 1) << 3;
    }
    if (off + hlen > end) return IP6_ERR_EXT_TRUNC;
    if (nh === NEXTHDR_ROUTING && w.routingOff < 0) w.routingOff = off;
    protoOff = off;
    nh = buf[off];
    off += hlen;
  }
  w.extCount = count;
  w.protoOff = protoOff;
  w.proto = nh;
  w.l4Off = off;
  if (w.firstFragment && !quoted && nh !== NEXTHDR_NONE && off + upperHeaderLen(nh) > end)
    return IP6_ERR_FRAG_HDRS;
  return IP6_OK;
}

function walk(buf: Uint8Array, l3Off: number, end: number, w: Ipv6Walk, quoted: boolean): number {
  resetWalk(w, l3Off);
  if (end > buf.length) end = buf.length;
  if (l3Off < 0 || l3Off + IPV6_HLEN > end) return IP6_ERR_TRUNC;
  if (buf[l3Off] >>> 4 !== 6) return IP6_ERR_VERSION;
  const l3End = l3Off + IPV6_HLEN + readU16(buf, l3Off + IP6_PLEN);
  if (l3End <= end) w.l3End = l3End;
  else if (quoted) w.l3End = end;
  else return IP6_ERR_PLEN;
  return walkChain(buf, w, quoted);
}

/**
 * Checks the IPv6 header at l3Off (version, payload length within `end`, the frame's end; bytes
 * after the payload are link padding) and walks its extension headers into w. Returns IP6_OK or
 * an IP6_ERR_* reason; w.l3End is set once the payload length is known good. No next header (59)
 * ends the walk with proto 59 and nothing after it.
 */
export function ipv6Walk(buf: Uint8Array, l3Off: number, end: number, w: Ipv6Walk): number {
  return walk(buf, l3Off, end, w, false);
}

/**
 * The same walk over a packet quoted in an ICMPv6 error: the quote may stop anywhere after the
 * 40-byte header, so the payload is taken to end at min(payload length, end) and the fragment
 * length checks, which need the whole datagram, are skipped. A header cut by the quote is still
 * IP6_ERR_EXT_TRUNC (ipv6_find_hdr fails, and IPVS ignores the error).
 */
export function ipv6WalkQuoted(buf: Uint8Array, l3Off: number, end: number, w: Ipv6Walk): number {
  return walk(buf, l3Off, end, w, true);
}

/** Traffic class: the 8 bits after the version (DSCP << 2 | ECN). */
export function ipv6TrafficClass(buf: Uint8Array, l3Off: number): number {
  return ((buf[l3Off] & 15) << 4) | (buf[l3Off + 1] >>> 4);
}

/** The 20-bit flow label. */
export function ipv6FlowLabel(buf: Uint8Array, l3Off: number): number {
  return ((buf[l3Off + 1] & 15) << 16) | (buf[l3Off + 2] << 8) | buf[l3Off + 3];
}

export function ipv6PayloadLen(buf: Uint8Array, l3Off: number): number {
  return readU16(buf, l3Off + IP6_PLEN);
}

/** Rewrites the traffic class, keeping version and flow label (IPv6 has no header checksum). */
export function ipv6SetTrafficClass(buf: Uint8Array, l3Off: number, tc: number): void {
  buf[l3Off] = 0x60 | ((tc >>> 4) & 15);
  buf[l3Off + 1] = ((tc & 15) << 4) | (buf[l3Off + 1] & 15);
}

/**
 * The forwarding step of __ip_vs_get_out_rt_v6 / ip6_forward: false when the hop limit is 1 or 0
 * (the caller answers with time exceeded and drops), else decremented in place and true.
 */
export function ipv6DecHopLimit(buf: Uint8Array, l3Off: number): boolean {
  const h = buf[l3Off + IP6_HOPLIMIT];
  if (h <= 1) return false;
  buf[l3Off + IP6_HOPLIMIT] = h - 1;
  return true;
}

/**
 * Writes a 40-byte header at off: version 6, traffic class, flow label (20 bits), payload length,
 * next header, hop limit, and the 16-byte addresses src[sOff..] and dst[dOff..] (which must not
 * overlap the header being written).
 */
export function writeIpv6Header(
  buf: Uint8Array,
  off: number,
  tc: number,
  flowLabel: number,
  payloadLen: number,
  nextHdr: number,
  hopLimit: number,
  src: Uint8Array,
  sOff: number,
  dst: Uint8Array,
  dOff: number,
): void {
  writeU32(buf, off, (0x60000000 | ((tc & 255) << 20) | (flowLabel & 0xfffff)) >>> 0);
  writeU16(buf, off + IP6_PLEN, payloadLen);
  buf[off + IP6_NEXTHDR] = nextHdr & 255;
  buf[off + IP6_HOPLIMIT] = hopLimit & 255;
  ipv6AddrCopy(buf, off + IP6_SADDR, src, sOff);
  ipv6AddrCopy(buf, off + IP6_DADDR, dst, dOff);
}

/** Copies 16 bytes (safe when both ranges are in one buffer). */
export function ipv6AddrCopy(dst: Uint8Array, dOff: number, src: Uint8Array, sOff: number): void {
  if (dst === src && dOff > sOff) {
    for (let i = 15; i >= 0; i--) dst[dOff + i] = src[sOff + i];
    return;
  }
  for (let i = 0; i < 16; i++) dst[dOff + i] = src[sOff + i];
}

export function ipv6AddrEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 16; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/** ff00::/8 (RFC 4291 §2.7). */
export function ipv6IsMulticast(buf: Uint8Array, off: number): boolean {
  return buf[off] === 0xff;
}

/** :: (RFC 4291 §2.5.2), the source of a DAD probe. */
export function ipv6IsUnspecified(buf: Uint8Array, off: number): boolean {
  for (let i = 0; i < 16; i++) if (buf[off + i] !== 0) return false;
  return true;
}

/**
 * Offset of the checksum field of the upper-layer header the walk found, or -1 when there is none
 * to fix: not TCP, UDP or ICMPv6, a non-first fragment, or a header cut short.
 */
export function ipv6L4CheckOffset(buf: Uint8Array, w: Ipv6Walk): number {
  if (w.fragOffset !== 0) return -1;
  let rel: number;
  if (w.proto === NEXTHDR_TCP) rel = 16;
  else if (w.proto === NEXTHDR_UDP) rel = 6;
  else if (w.proto === NEXTHDR_ICMPV6) rel = 2;
  else return -1;
  const off = w.l4Off + rel;
  return off + 2 <= w.l3End && off + 2 <= buf.length ? off : -1;
}

/**
 * NAT of one address: writes src[sOff..+16] over the address at buf[addrOff] (IP6_SADDR or
 * IP6_DADDR of the header) and fixes the upper-layer checksum at checkOff (from ipv6L4CheckOffset;
 * -1 for none) incrementally, since the address is in its pseudo-header. A UDP checksum of 0 stays
 * 0 and a result of 0 is stored as 0xffff (l4.ts's rule).
 */
export function ipv6SetAddr(
  buf: Uint8Array,
  addrOff: number,
  src: Uint8Array,
  sOff: number,
  checkOff: number,
  proto: number,
): void {
  if (addrOff < 0 || addrOff + 16 > buf.length) return;
  if (checkOff >= 0 && checkOff + 2 <= buf.length) {
    const c = readU16(buf, checkOff);
    if (!(c === 0 && proto === NEXTHDR_UDP)) {
      let n = csumReplace128(c, buf, addrOff, src, sOff);
      if (n === 0 && proto === NEXTHDR_UDP) n = 0xffff;
      writeU16(buf, checkOff, n);
    }
  }
  ipv6AddrCopy(buf, addrOff, src, sOff);
}
