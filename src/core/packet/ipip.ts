// IPIP encapsulation (RFC 2003), the TUN forwarding method's wrapper (ip_vs_tunnel_xmit).

import { moveBytes } from "./bytes.js";
import { IPPROTO_IPIP } from "./flow.js";
import { IP_DF, IPV4_HLEN, writeIpv4Header } from "./ipv4.js";

/** Outer header added by IPIP. */
export const IPIP_OVERHEAD = IPV4_HLEN;

/**
 * The outer TOS of every tunnel type (ip_vs_prepare_tunneled_skb: INET_ECN_encapsulate(old, old),
 * include/net/inet_ecn.h): the inner DSCP and ECN field, except that a CE-marked inner datagram
 * gets ECT(0) outside — congestion already seen is not reported again by the tunnel.
 */
export function tunnelTos(innerTos: number): number {
  return (innerTos & 3) === 3 ? (innerTos & 0xfc) | 2 : innerTos & 0xff;
}

/**
 * The part every encapsulation shares: room for `hdr` bytes of outer headers at out[outL3Off] and
 * the inner datagram src[srcL3Off, +srcL3Len) moved right behind them (src may be out: the move is
 * overlap-safe). Returns the outer IP length, or 0 when out is too small or the result would
 * exceed 65535 bytes (nothing written then).
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
 * Writes the outer IPv4 header (proto 4) at out[outL3Off] and the inner datagram
 * src[srcL3Off, +srcL3Len) right after it; src may be out (the move is overlap-safe). The outer ID
 * is `id` (optional, default 0: with DF set the kernel's ip_select_ident leaves 0 for an atomic
 * datagram without a socket). Returns the outer IP length, or 0 when out is too small or the result
 * would exceed 65535 bytes.
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
): number {
  const total = placeInner(out, outL3Off, src, srcL3Off, srcL3Len, IPV4_HLEN);
  if (total === 0) return 0;
  writeIpv4Header(out, outL3Off, tos, total, id, df ? IP_DF : 0, ttl, IPPROTO_IPIP, saddr, daddr);
  return total;
}
