// IP-in-IP encapsulation, the TUN forwarding method's outer headers (ip_vs_tunnel_xmit,
// ip_vs_tunnel_xmit_v6): an outer IPv4 header (RFC 2003 for IPv4 inside, protocol 4; RFC 4213's
// protocol 41 for IPv6 inside) or an outer IPv6 header (RFC 2473: next header 4 or 41), chosen by
// the real server's family; the inner datagram is the client's, of the service's family.

import { moveBytes } from "./bytes.js";
import { IPPROTO_IPIP } from "./flow.js";
import { IP_DF, IPV4_HLEN, writeIpv4Header } from "./ipv4.js";
import { IPV6_HLEN, NEXTHDR_IPV6, writeIpv6Header } from "./ipv6.js";

/** Outer header added by IPIP over IPv4. */
export const IPIP_OVERHEAD = IPV4_HLEN;
/** Outer header added by IPIP over IPv6 (ip6_tunnel's ip4ip6 / ip6ip6). */
export const IPIP6_OVERHEAD = IPV6_HLEN;
/**
 * The protocol (IPv4) or next header (IPv6) that says what is inside: ip_vs_prepare_tunneled_skb's
 * next_protocol, IPPROTO_IPIP for an IPv4 datagram, IPPROTO_IPV6 for an IPv6 one.
 */
export function innerProtocol(innerAf: 4 | 6): number {
  return innerAf === 6 ? NEXTHDR_IPV6 : IPPROTO_IPIP;
}

/**
 * The outer TOS of every tunnel type (ip_vs_prepare_tunneled_skb: INET_ECN_encapsulate(old, old),
 * include/net/inet_ecn.h): the inner DSCP and ECN field, except that a CE-marked inner datagram
 * gets ECT(0) outside — congestion already seen is not reported again by the tunnel. The same for
 * an IPv6 inner or outer header (its traffic class).
 */
export function tunnelTos(innerTos: number): number {
  return (innerTos & 3) === 3 ? (innerTos & 0xfc) | 2 : innerTos & 0xff;
}

/**
 * The part every encapsulation shares: room for `hdr` bytes of outer headers at out[outL3Off] and
 * the inner datagram src[srcL3Off, +srcL3Len) moved right behind them (src may be out: the move is
 * overlap-safe). Returns the outer IP length, or 0 when out is too small or the result would
 * exceed 65535 bytes (nothing written then). (An outer IPv6 header counts in the total here too:
 * its payload length is the total less 40, so this refuses a few bytes early, never late.)
 */
export function placeInner(
  out: Uint8Array,
  outL3Off: number,
  src: Uint8Array,
  srcL3Off: number,
  srcL3Len: number,
  hdr: number,
): number {
  const total = hdr + srcL3Len;
  if (outL3Off < 0 || srcL3Off < 0 || srcL3Len < 0 || srcL3Off + srcL3Len > src.length) return 0;
  if (total > 0xffff || outL3Off + total > out.length) return 0;
  moveBytes(out, outL3Off + hdr, src, srcL3Off, srcL3Len);
  return total;
}

/**
 * Writes the outer IPv4 header at out[outL3Off] and the inner datagram src[srcL3Off, +srcL3Len)
 * right after it; src may be out (the move is overlap-safe). The outer ID is `id` (optional,
 * default 0: with DF set the kernel's ip_select_ident leaves 0 for an atomic datagram without a
 * socket); `proto` says what is inside (4, default; 41 for IPv6). Returns the outer IP length, or
 * 0 when out is too small or the result would exceed 65535 bytes.
 */
export function ipipEncap(
  out: Uint8Array,
  outL3Off: number,
  src: Uint8Array,
  srcL3Off: number,
  srcL3Len: number,
  saddr: number,
  daddr: number,
  ttl: number,
  tos: number,
  df: boolean,
  id = 0,
  proto = IPPROTO_IPIP,
): number {
  const total = placeInner(out, outL3Off, src, srcL3Off, srcL3Len, IPV4_HLEN);
  if (total === 0) return 0;
  writeIpv4Header(out, outL3Off, tos, total, id, df ? IP_DF : 0, ttl, proto, saddr, daddr);
  return total;
}

/**
 * Writes the outer IPv6 header at out[outL3Off] and the inner datagram after it (as ipipEncap):
 * source and destination the 16 bytes at addrs[sOff] and addrs[dOff] (not inside out's header),
 * hop limit `hl`, traffic class `tc`, flow label 0 (ip_vs_tunnel_xmit_v6 clears it), next header
 * `nextHdr` (4 or 41). Returns the outer IP length (40 + payload), or 0 as ipipEncap.
 */
export function ipip6Encap(
  out: Uint8Array,
  outL3Off: number,
  src: Uint8Array,
  srcL3Off: number,
  srcL3Len: number,
  addrs: Uint8Array,
  sOff: number,
  dOff: number,
  hl: number,
  tc: number,
  nextHdr: number,
): number {
  const total = placeInner(out, outL3Off, src, srcL3Off, srcL3Len, IPV6_HLEN);
  if (total === 0) return 0;
  writeIpv6Header(out, outL3Off, tc, 0, total - IPV6_HLEN, nextHdr, hl, addrs, sOff, addrs, dOff);
  return total;
}
