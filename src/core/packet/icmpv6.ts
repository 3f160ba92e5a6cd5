// ICMPv6 (RFC 4443): echo replies and error messages as the kernel builds them (net/ipv6/icmp.c:
// icmpv6_echo_reply, icmp6_send with its "may we answer?" rules), and the relay of an error through
// NAT as ip_vs_in_icmp_v6 / ip_vs_nat_icmp_v6 (net/netfilter/ipvs/ip_vs_core.c) do it: the outer
// address, the quoted packet's address and port, then one full checksum (the pseudo-header covers
// ICMPv6, and errors are rare). The quoted packet has no header checksum in IPv6 and its transport
// checksum is left alone, as the kernel leaves it.

import { readU16, writeU16, writeU32 } from "../addr.js";
import { moveBytes } from "./bytes.js";
import { l4ChecksumV6, verifyL4V6 } from "./csum.js";
import {
  IP6_DADDR,
  IP6_SADDR,
  IPV6_HLEN,
  IPV6_MIN_MTU,
  Ipv6Walk,
  ipv6AddrCopy,
  ipv6IsMulticast,
  ipv6IsUnspecified,
  ipv6TrafficClass,
  ipv6WalkQuoted,
  NEXTHDR_ICMPV6,
  NEXTHDR_SCTP,
  NEXTHDR_TCP,
  NEXTHDR_UDP,
  writeIpv6Header,
} from "./ipv6.js";

export const ICMPV6_DEST_UNREACH = 1;
export const ICMPV6_PKT_TOOBIG = 2;
export const ICMPV6_TIME_EXCEED = 3;
export const ICMPV6_PARAMPROB = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const NDISC_ROUTER_SOLICITATION = 133;
export const NDISC_ROUTER_ADVERTISEMENT = 134;
export const NDISC_NEIGHBOUR_SOLICITATION = 135;
export const NDISC_NEIGHBOUR_ADVERTISEMENT = 136;
export const NDISC_REDIRECT = 137;

/** Destination unreachable codes (RFC 4443 §3.1). */
export const ICMPV6_NOROUTE = 0;
export const ICMPV6_ADM_PROHIBITED = 1;
export const ICMPV6_NOT_NEIGHBOUR = 2;
export const ICMPV6_ADDR_UNREACH = 3;
export const ICMPV6_PORT_UNREACH = 4;
export const ICMPV6_POLICY_FAIL = 5;
export const ICMPV6_REJECT_ROUTE = 6;
/** Time exceeded codes (§3.3). */
export const ICMPV6_EXC_HOPLIMIT = 0;
export const ICMPV6_EXC_FRAGTIME = 1;
/** Parameter problem codes (§3.4; 3 is RFC 7112's incomplete header chain). */
export const ICMPV6_HDR_FIELD = 0;
export const ICMPV6_UNK_NEXTHDR = 1;
export const ICMPV6_UNK_OPTION = 2;
export const ICMPV6_HDR_INCOMP = 3;

export const ICMPV6_TYPE = 0;
export const ICMPV6_CODE = 1;
export const ICMPV6_CHECK = 2;
/** Echo identifier and sequence; the MTU of packet too big; the pointer of parameter problem. */
export const ICMPV6_ID = 4;
export const ICMPV6_SEQ = 6;
export const ICMPV6_MTU = 4;
export const ICMPV6_HLEN = 8;
/** RFC 4443 §2.4(c): an error quotes as much of the invoking packet as fits in the minimum MTU. */
export const ICMPV6_ERR_QUOTE_MAX = IPV6_MIN_MTU - IPV6_HLEN - ICMPV6_HLEN;

/** RFC 4443 §2.1: error messages have the high-order bit of the type clear. */
export function icmpv6IsError(type: number): boolean {
  return (type & 0x80) === 0;
}

/** Checksum of the ICMPv6 message buf[icmpOff, icmpOff+len) under the IPv6 header at l3Off. */
export function icmpv6Checksum(buf: Uint8Array, l3Off: number, icmpOff: number, len: number): number {
  return l4ChecksumV6(buf, l3Off, icmpOff, len, NEXTHDR_ICMPV6);
}

export function icmpv6Verify(buf: Uint8Array, l3Off: number, icmpOff: number, len: number): boolean {
  return verifyL4V6(buf, l3Off, icmpOff, len, NEXTHDR_ICMPV6);
}

/** Recomputes the checksum of the ICMPv6 message the walk found (w.l4Off to w.l3End). */
export function icmpv6RecomputeChecksum(buf: Uint8Array, w: Ipv6Walk): void {
  const l4 = w.l4Off;
  if (w.proto !== NEXTHDR_ICMPV6 || w.fragment || l4 + ICMPV6_HLEN > w.l3End || w.l3End > buf.length) return;
  writeU16(buf, l4 + ICMPV6_CHECK, icmpv6Checksum(buf, w.l3Off, l4, w.l3End - l4));
}

/** Addresses read before a build that may overwrite them (out and the source may share memory). */
const addrScratch = new Uint8Array(32);

/**
 * May an error be sent about the packet the walk w describes (icmp6_send's rules, RFC 4443
 * §2.4(e))? Not to a multicast destination, except packet too big and parameter problem code 2
 * (the kernel narrows the latter to options marked "report even if multicast"); not when the
 * source is unspecified or multicast; not about an ICMPv6 error (is_ineligible, which also refuses
 * an unfragmented ICMPv6 packet too short to show its type).
 */
export function icmpv6ErrorAllowed(buf: Uint8Array, w: Ipv6Walk, type: number, code: number): boolean {
  const l3 = w.l3Off;
  if (l3 < 0 || l3 + IPV6_HLEN > buf.length) return false;
  if (
    ipv6IsMulticast(buf, l3 + IP6_DADDR) &&
    type !== ICMPV6_PKT_TOOBIG &&
    !(type === ICMPV6_PARAMPROB && code === ICMPV6_UNK_OPTION)
  )
    return false;
  if (ipv6IsUnspecified(buf, l3 + IP6_SADDR) || ipv6IsMulticast(buf, l3 + IP6_SADDR)) return false;
  if (w.proto === NEXTHDR_ICMPV6 && w.fragOffset === 0) {
    if (w.l4Off >= w.l3End || w.l4Off >= buf.length) return w.fragment;
    if (icmpv6IsError(buf[w.l4Off])) return false;
  }
  return true;
}

/**
 * Writes at out[outL3Off] an IPv6 + ICMPv6 error about the packet orig[origL3Off, +origLen),
 * quoting as much of it as fits in 1280 bytes (ICMPV6_ERR_QUOTE_MAX). `info` is the 32-bit field
 * after the checksum: the MTU for packet too big, the pointer for parameter problem, else 0. Source
 * and destination are 16 bytes at src[sOff] and dst[dOff] (dst is normally the invoking packet's
 * source); they may lie in orig or out. icmp6_send uses its socket's traffic class (0) and an
 * automatic flow label (a hash the core cannot reproduce), hence `flowLabel`. Check
 * icmpv6ErrorAllowed first. out may be orig itself. Returns the IPv6 length written, or 0 when out
 * is too small or the original is shorter than an IPv6 header.
 */
export function buildIcmpv6Error(
  out: Uint8Array,
  outL3Off: number,
  type: number,
  code: number,
  info: number,
  orig: Uint8Array,
  origL3Off: number,
  origLen: number,
  src: Uint8Array,
  sOff: number,
  dst: Uint8Array,
  dOff: number,
  hopLimit: number,
  flowLabel = 0,
): number {
  if (origL3Off < 0 || outL3Off < 0) return 0;
  let q = origLen;
  if (q > ICMPV6_ERR_QUOTE_MAX) q = ICMPV6_ERR_QUOTE_MAX;
  if (q > orig.length - origL3Off) q = orig.length - origL3Off;
  if (q < IPV6_HLEN) return 0;
  const total = IPV6_HLEN + ICMPV6_HLEN + q;
  if (outL3Off + total > out.length) return 0;
  ipv6AddrCopy(addrScratch, 0, src, sOff);
  ipv6AddrCopy(addrScratch, 16, dst, dOff);
  const l4 = outL3Off + IPV6_HLEN;
  moveBytes(out, l4 + ICMPV6_HLEN, orig, origL3Off, q);
  writeIpv6Header(
    out,
    outL3Off,
    0,
    flowLabel,
    ICMPV6_HLEN + q,
    NEXTHDR_ICMPV6,
    hopLimit,
    addrScratch,
    0,
    addrScratch,
    16,
  );
  out[l4] = type & 255;
  out[l4 + 1] = code & 255;
  writeU32(out, l4 + ICMPV6_MTU, info >>> 0);
  writeU16(out, l4 + ICMPV6_CHECK, icmpv6Checksum(out, outL3Off, l4, ICMPV6_HLEN + q));
  return total;
}

/**
 * Writes at out[outL3Off] the echo reply to the request that the walk w found in req (as
 * icmpv6_echo_reply: the request's traffic class, the whole ICMPv6 message with type 129, no
 * extension headers). Its source is src[sOff..+16]: the request's destination when that is unicast
 * (req, w.l3Off + IP6_DADDR), an address of the replier when the request went to a multicast group.
 * out may be req itself. Returns the IPv6 length written, or 0 when w is not an unfragmented echo
 * request of at least 8 bytes or out is too small.
 */
export function buildIcmpv6EchoReply(
  out: Uint8Array,
  outL3Off: number,
  req: Uint8Array,
  w: Ipv6Walk,
  src: Uint8Array,
  sOff: number,
  hopLimit: number,
  flowLabel = 0,
): number {
  const l4 = w.l4Off;
  const len = w.l3End - l4;
  if (w.proto !== NEXTHDR_ICMPV6 || w.fragment || len < ICMPV6_HLEN || w.l3End > req.length) return 0;
  if (req[l4] !== ICMPV6_ECHO_REQUEST || outL3Off < 0) return 0;
  const total = IPV6_HLEN + len;
  if (outL3Off + total > out.length) return 0;
  const tc = ipv6TrafficClass(req, w.l3Off);
  ipv6AddrCopy(addrScratch, 0, src, sOff);
  ipv6AddrCopy(addrScratch, 16, req, w.l3Off + IP6_SADDR);
  const ol4 = outL3Off + IPV6_HLEN;
  moveBytes(out, ol4, req, l4, len);
  writeIpv6Header(
    out,
    outL3Off,
    tc,
    flowLabel,
    len,
    NEXTHDR_ICMPV6,
    hopLimit,
    addrScratch,
    0,
    addrScratch,
    16,
  );
  out[ol4] = ICMPV6_ECHO_REPLY;
  writeU16(out, ol4 + ICMPV6_CHECK, icmpv6Checksum(out, outL3Off, ol4, len));
  return total;
}

/** The packet quoted in an ICMPv6 error: its walk, and the ports when they are quoted. */
export class Icmpv6Inner extends Ipv6Walk {
  /** TCP/UDP/SCTP with both ports quoted and not a non-first fragment: sport and dport are valid. */
  hasPorts = false;
  sport = 0;
  dport = 0;
}

export const ICMPV6_INNER_OK = 0;
/** Informational (echo, NDP...): not an error, nothing quoted. */
export const ICMPV6_INNER_NOT_ERROR = 1;
export const ICMPV6_INNER_NOT_ICMP = 2;
/** A fragmented ICMPv6 message: errors are never fragmented, so IPVS drops it. */
export const ICMPV6_INNER_FRAGMENT = 3;
/** Shorter than the 8-byte ICMPv6 header (IPVS drops it). */
export const ICMPV6_INNER_TRUNC = 4;
/** The quoted IPv6 header or its extension headers are cut or wrong (IPVS ignores the error). */
export const ICMPV6_INNER_BAD = 5;

/** Name of every icmpv6Inner result, indexed by code. */
export const ICMPV6_INNER_NAMES: readonly string[] = [
  "ok",
  "not_error",
  "not_icmp",
  "fragment",
  "trunc",
  "bad",
];

/**
 * Finds the packet quoted in the ICMPv6 error that the outer walk describes, as ip_vs_in_icmp_v6
 * does: the IPv6 header after the 8-byte ICMPv6 header, its extension headers walked within the
 * quote (ipv6WalkQuoted), and the TCP/UDP/SCTP ports when 4 bytes of them are quoted and the
 * quoted packet is not a non-first fragment. Its addresses are reversed with respect to the
 * connection, as in any error: inner source = the connection's side that sent the offending packet.
 */
export function icmpv6Inner(buf: Uint8Array, outer: Ipv6Walk, inner: Icmpv6Inner): number {
  inner.hasPorts = false;
  inner.sport = 0;
  inner.dport = 0;
  const l4 = outer.l4Off;
  if (outer.proto !== NEXTHDR_ICMPV6) return ICMPV6_INNER_NOT_ICMP;
  if (outer.fragment) return ICMPV6_INNER_FRAGMENT;
  if (l4 + ICMPV6_HLEN > outer.l3End || outer.l3End > buf.length) return ICMPV6_INNER_TRUNC;
  if (!icmpv6IsError(buf[l4])) return ICMPV6_INNER_NOT_ERROR;
  if (ipv6WalkQuoted(buf, l4 + ICMPV6_HLEN, outer.l3End, inner) !== 0) return ICMPV6_INNER_BAD;
  const p = inner.proto;
  if (
    (p === NEXTHDR_TCP || p === NEXTHDR_UDP || p === NEXTHDR_SCTP) &&
    inner.fragOffset === 0 &&
    inner.l4Off + 4 <= inner.l3End
  ) {
    inner.hasPorts = true;
    inner.sport = readU16(buf, inner.l4Off);
    inner.dport = readU16(buf, inner.l4Off + 2);
  }
  return ICMPV6_INNER_OK;
}

/** Rewrites a quoted port (0 = source, 2 = destination) when the quote has them; no checksum is touched. */
export function icmpv6InnerSetPort(buf: Uint8Array, inner: Icmpv6Inner, rel: 0 | 2, port: number): void {
  if (!inner.hasPorts) return;
  writeU16(buf, inner.l4Off + rel, port & 0xffff);
  if (rel === 0) inner.sport = port & 0xffff;
  else inner.dport = port & 0xffff;
}

/**
 * ip_vs_nat_icmp_v6 for a NAT connection. Outbound (real server → client, "inout" 1): the outer
 * source and the quoted destination become addr (the VIP), the quoted destination port becomes
 * port (the virtual port). Inbound (client side → real server, "inout" 0): the outer destination
 * and the quoted source become addr (the real server), the quoted source port becomes port. Then
 * the ICMPv6 checksum is recomputed over the whole message.
 */
export function icmpv6NatRelay(
  buf: Uint8Array,
  outer: Ipv6Walk,
  inner: Icmpv6Inner,
  outbound: boolean,
  addr: Uint8Array,
  aOff: number,
  port: number,
): void {
  if (outer.l3Off < 0 || outer.l3End > buf.length || inner.l3Off + IPV6_HLEN > outer.l3End) return;
  if (outbound) {
    ipv6AddrCopy(buf, outer.l3Off + IP6_SADDR, addr, aOff);
    ipv6AddrCopy(buf, inner.l3Off + IP6_DADDR, addr, aOff);
    icmpv6InnerSetPort(buf, inner, 2, port);
  } else {
    ipv6AddrCopy(buf, outer.l3Off + IP6_DADDR, addr, aOff);
    ipv6AddrCopy(buf, inner.l3Off + IP6_SADDR, addr, aOff);
    icmpv6InnerSetPort(buf, inner, 0, port);
  }
  icmpv6RecomputeChecksum(buf, outer);
}

/**
 * The FULLNAT relay of an ICMPv6 error (both ends rewritten): the error goes from `from` to `to`
 * (the outer addresses, 16 bytes each at fOff/tOff) about a packet `to`:toPort → `from`:fromPort
 * (the quote), the ICMPv6 checksum recomputed over the whole message. Toward a real server `from`
 * is the LIP and `to` the real server; toward a client, the VIP and the client.
 */
export function icmpv6FullnatRelay(
  buf: Uint8Array,
  outer: Ipv6Walk,
  inner: Icmpv6Inner,
  from: Uint8Array,
  fOff: number,
  fromPort: number,
  to: Uint8Array,
  tOff: number,
  toPort: number,
): void {
  if (outer.l3Off < 0 || outer.l3End > buf.length || inner.l3Off + IPV6_HLEN > outer.l3End) return;
  ipv6AddrCopy(buf, outer.l3Off + IP6_SADDR, from, fOff);
  ipv6AddrCopy(buf, outer.l3Off + IP6_DADDR, to, tOff);
  ipv6AddrCopy(buf, inner.l3Off + IP6_SADDR, to, tOff);
  ipv6AddrCopy(buf, inner.l3Off + IP6_DADDR, from, fOff);
  icmpv6InnerSetPort(buf, inner, 0, toPort);
  icmpv6InnerSetPort(buf, inner, 2, fromPort);
  icmpv6RecomputeChecksum(buf, outer);
}
