// ICMP for IPv4 (RFC 792): echo replies, error generation as the kernel's __icmp_send does it
// (net/ipv4/icmp.c), and the rewrite of the header embedded in an error, as ip_vs_nat_icmp
// (net/netfilter/ipvs/ip_vs_core.c) does it: addresses + inner IP checksum + ports, then one full
// ICMP checksum recomputation (errors are rare; the quoted bytes may be many).

import { readU16, readU32, writeU16, writeU32 } from "../addr.js";
import { moveBytes } from "./bytes.js";
import { csumReplace16, csumReplace32, l4ChecksumV4 } from "./csum.js";
import { type Flow, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from "./flow.js";
import { IP_CHECK, IP_DADDR, IP_SADDR, IP_TOS, IP_TTL, IPV4_HLEN, writeIpv4Header } from "./ipv4.js";

export const ICMP_ECHOREPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAMETERPROB = 12;

/** Codes: dest unreach / port unreachable and fragmentation needed; time exceeded / TTL. */
export const ICMP_NET_UNREACH = 0;
export const ICMP_HOST_UNREACH = 1;
export const ICMP_PROT_UNREACH = 2;
export const ICMP_PORT_UNREACH = 3;
export const ICMP_FRAG_NEEDED = 4;
export const ICMP_EXC_TTL = 0;
export const ICMP_EXC_FRAGTIME = 1;

export const ICMP_TYPE = 0;
export const ICMP_CODE = 1;
export const ICMP_CHECK = 2;
export const ICMP_ID = 4;
export const ICMP_SEQ = 6;
export const ICMP_HLEN = 8;

/** RFC 1812 4.3.2.3 / __icmp_send: an error datagram is at most 576 bytes. */
export const ICMP_ERR_MAX = 576;
/** IPTOS_TOS_MASK and IPTOS_PREC_INTERNETCONTROL. */
const IPTOS_TOS_MASK = 0x1e;
const IPTOS_PREC_INTERNETCONTROL = 0xc0;

/** The types icmp_pointers marks as errors (they quote the offending datagram). */
export function icmpIsError(type: number): boolean {
  return (
    type === ICMP_DEST_UNREACH ||
    type === ICMP_SOURCE_QUENCH ||
    type === ICMP_REDIRECT ||
    type === ICMP_TIME_EXCEEDED ||
    type === ICMP_PARAMETERPROB
  );
}

/**
 * Turns the parsed echo request into its reply in place: addresses swapped (the IP checksum does
 * not change: the sum is commutative), TTL set, type 0; both checksums fixed incrementally.
 * No-op unless flow is an unfragmented ICMP echo request. Ethernet is left to the caller.
 */
export function icmpEchoReplyInPlace(buf: Uint8Array, flow: Flow, ttl: number): void {
  const l3 = flow.l3Off;
  const l4 = flow.l4Off;
  if (flow.proto !== IPPROTO_ICMP || flow.fragment || flow.icmpType !== ICMP_ECHO) return;
  if (l3 < 0 || l3 + IPV4_HLEN > buf.length || l4 + ICMP_HLEN > buf.length) return;
  const s = readU32(buf, l3 + IP_SADDR);
  const d = readU32(buf, l3 + IP_DADDR);
  writeU32(buf, l3 + IP_SADDR, d);
  writeU32(buf, l3 + IP_DADDR, s);
  ttl &= 255;
  const proto = buf[l3 + IP_TTL + 1];
  const oldw = (buf[l3 + IP_TTL] << 8) | proto;
  buf[l3 + IP_TTL] = ttl;
  writeU16(buf, l3 + IP_CHECK, csumReplace16(readU16(buf, l3 + IP_CHECK), oldw, (ttl << 8) | proto));
  const code = buf[l4 + 1];
  buf[l4] = ICMP_ECHOREPLY;
  writeU16(
    buf,
    l4 + ICMP_CHECK,
    csumReplace16(readU16(buf, l4 + ICMP_CHECK), (ICMP_ECHO << 8) | code, (ICMP_ECHOREPLY << 8) | code),
  );
  flow.saddr = d;
  flow.daddr = s;
  flow.ttl = ttl;
  flow.icmpType = ICMP_ECHOREPLY;
}

/**
 * Writes at out[outL3Off] an IPv4 + ICMP error about the datagram orig[origL3Off, +origL3Len),
 * quoting as much of it as __icmp_send does: the whole error datagram at most 576 bytes (no IP
 * options are echoed, so 548 quoted bytes at most). `info` is the 32-bit rest of the ICMP header
 * (frag needed: next-hop MTU in the low 16 bits; parameter problem: pointer in the top byte).
 * TOS as __icmp_send: (original TOS & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL, i.e. & 0x1e |
 * 0xc0. DF not set (the kernel's ICMP socket uses IP_PMTUDISC_DONT), so an IP id is given: `id`
 * (optional, default 0) since the core has no randomness of its own. out may be orig itself.
 * Returns the IP length written, or 0 if out is too small or the original shorter than an IP header.
 */
export function buildIcmpError(
  out: Uint8Array,
  outL3Off: number,
  type: number,
  code: number,
  info: number,
  orig: Uint8Array,
  origL3Off: number,
  origL3Len: number,
  saddr: number,
  daddr: number,
  ttl: number,
  id = 0,
): number {
  let q = origL3Len;
  if (q > ICMP_ERR_MAX - IPV4_HLEN - ICMP_HLEN) q = ICMP_ERR_MAX - IPV4_HLEN - ICMP_HLEN;
  if (origL3Off < 0 || outL3Off < 0) return 0;
  if (q > orig.length - origL3Off) q = orig.length - origL3Off;
  if (q < IPV4_HLEN) return 0;
  const total = IPV4_HLEN + ICMP_HLEN + q;
  if (outL3Off + total > out.length) return 0;
  // Read the TOS before the copy: out and orig may overlap.
  const tos = (orig[origL3Off + IP_TOS] & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL;
  const l4 = outL3Off + IPV4_HLEN;
  moveBytes(out, l4 + ICMP_HLEN, orig, origL3Off, q);
  writeIpv4Header(out, outL3Off, tos, total, id, 0, ttl, IPPROTO_ICMP, saddr, daddr);
  out[l4] = type & 255;
  out[l4 + 1] = code & 255;
  writeU32(out, l4 + 4, info >>> 0);
  writeU16(out, l4 + ICMP_CHECK, l4ChecksumV4(out, outL3Off, l4, ICMP_HLEN + q, IPPROTO_ICMP));
  return total;
}

function innerHasPorts(flow: Flow): boolean {
  return (
    flow.hasInner &&
    flow.innerHasPorts &&
    (flow.innerProto === IPPROTO_TCP || flow.innerProto === IPPROTO_UDP)
  );
}

function innerSetAddr(buf: Uint8Array, flow: Flow, field: number, addr: number): boolean {
  const l3 = flow.innerL3Off;
  if (!flow.hasInner || l3 < 0 || l3 + IPV4_HLEN > buf.length) return false;
  addr >>>= 0;
  const old = readU32(buf, l3 + field);
  writeU32(buf, l3 + field, addr);
  writeU16(buf, l3 + IP_CHECK, csumReplace32(readU16(buf, l3 + IP_CHECK), old, addr));
  return true;
}

/** Rewrites the embedded header's source address (inner IP checksum fixed); then icmpRecomputeChecksum. */
export function icmpInnerSetSaddr(buf: Uint8Array, flow: Flow, addr: number): void {
  if (innerSetAddr(buf, flow, IP_SADDR, addr)) flow.innerSaddr = addr >>> 0;
}

/** Rewrites the embedded header's destination address (inner IP checksum fixed). */
export function icmpInnerSetDaddr(buf: Uint8Array, flow: Flow, addr: number): void {
  if (innerSetAddr(buf, flow, IP_DADDR, addr)) flow.innerDaddr = addr >>> 0;
}

/**
 * Rewrites the embedded TCP/UDP source port when 8 bytes of L4 are quoted. Like ip_vs_nat_icmp,
 * the inner L4 checksum is left alone (it is usually not quoted whole, and nobody verifies it).
 */
export function icmpInnerSetSport(buf: Uint8Array, flow: Flow, port: number): void {
  if (!innerHasPorts(flow) || flow.innerL4Off + 8 > buf.length) return;
  writeU16(buf, flow.innerL4Off, port & 0xffff);
  flow.innerSport = port & 0xffff;
}

/** Rewrites the embedded TCP/UDP destination port when 8 bytes of L4 are quoted. */
export function icmpInnerSetDport(buf: Uint8Array, flow: Flow, port: number): void {
  if (!innerHasPorts(flow) || flow.innerL4Off + 8 > buf.length) return;
  writeU16(buf, flow.innerL4Off + 2, port & 0xffff);
  flow.innerDport = port & 0xffff;
}

/** Full ICMP checksum over the message (l4Off to l3End), after embedded-header rewrites. */
export function icmpRecomputeChecksum(buf: Uint8Array, flow: Flow): void {
  const l4 = flow.l4Off;
  const end = flow.l3End;
  if (flow.proto !== IPPROTO_ICMP || l4 < 0 || l4 + ICMP_HLEN > end || end > buf.length) return;
  writeU16(buf, l4 + ICMP_CHECK, l4ChecksumV4(buf, flow.l3Off, l4, end - l4, IPPROTO_ICMP));
}
