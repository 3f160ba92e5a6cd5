// Software segmentation of an IPv4 TCP or UDP (UDP_L4) aggregate: what the kernel's GSO
// (net/ipv4/tcp_offload.c tcp_gso_segment, net/ipv4/udp_offload.c __udp_gso_segment) does when
// a device cannot, for the cases where tsvs cannot hand the aggregate back with a virtio_net_hdr:
// IPIP (TUN: virtio_net_hdr has no way to say SKB_GSO_IPXIP4) and a TCP option inserted into one
// segment (FULLNAT's TOA: GSO would copy it into every segment).
//
// IPv6 aggregates (TCPV6, UDP_L4 over IPv6: net/ipv6/tcpv6_offload.c, udp_offload.c) are cut the
// same way with the IPv6 payload length in place of the total length (no ID, no header checksum).
//
// Segment k of an aggregate whose payload is cut in gso_size pieces carries the aggregate's
// headers with: IP total length and header checksum for its size, IP id + k (as the kernel does
// for TCPv4 without SKB_GSO_TCP_FIXEDID; UDP segments likewise), TCP seq + k × gso_size, CWR only
// on the first segment, FIN and PSH only on the last; UDP length for its size. Every segment gets
// a full transport checksum: the aggregate's checksum field (a partial one) is never reused.

import { readU16, readU32, writeU16, writeU32 } from "../addr.js";
import { moveBytes } from "./bytes.js";
import { csumFold, ipv4HeaderChecksum, ipv6PseudoSum, l4ChecksumV4, l4ChecksumV6 } from "./csum.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "./flow.js";
import { IP_CHECK, IP_ID, IP_TOTLEN } from "./ipv4.js";
import { IP6_PLEN, IPV6_HLEN } from "./ipv6.js";

const TCP_FIN_PSH = 0x09;
const TCP_CWR = 0x80;

/** Number of segments of a payload of `payload` bytes cut in `mss` pieces (at least 1). */
export function gsoSegmentCount(payload: number, mss: number): number {
  if (mss <= 0 || payload <= 0) return 1;
  return Math.ceil(payload / mss);
}

/**
 * Builds segment k of the aggregate src[l3, end) (transport header at l4, payload at pay) into
 * out at outL3, and returns the segment's IP length (0 when out is too small or the protocol is not
 * TCP/UDP). The header bytes [l3, pay) are copied as they are (already rewritten, if the caller
 * rewrote the aggregate), then the per-segment fields above are set.
 */
export function gsoBuildSegment(
  out: Uint8Array,
  outL3: number,
  src: Uint8Array,
  l3: number,
  l4: number,
  pay: number,
  end: number,
  mss: number,
  k: number,
): number {
  const proto = src[l3 + 9];
  if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return 0;
  const total = segmentInto(out, outL3, src, l3, pay, end, mss, k);
  if (total === 0) return 0;
  writeU16(out, outL3 + IP_TOTLEN, total);
  writeU16(out, outL3 + IP_ID, (readU16(src, l3 + IP_ID) + k) & 0xffff);
  writeU16(out, outL3 + IP_CHECK, 0);
  writeU16(out, outL3 + IP_CHECK, ipv4HeaderChecksum(out, outL3));
  segmentL4(out, outL3, outL3 + (l4 - l3), total - (l4 - l3), src, l4, end - pay, proto, mss, k, false);
  return total;
}

/**
 * Both families' common part: segment k's headers src[l3, pay) and its piece of the payload
 * src[pay, end) at out[outL3]. Returns its IP length, 0 when k is out of range or out too small.
 */
function segmentInto(
  out: Uint8Array,
  outL3: number,
  src: Uint8Array,
  l3: number,
  pay: number,
  end: number,
  mss: number,
  k: number,
): number {
  const hlen = pay - l3;
  const payload = end - pay;
  const n = gsoSegmentCount(payload, mss);
  if (k < 0 || k >= n) return 0;
  const step = mss > 0 ? mss : payload;
  const from = pay + k * step;
  const chunk = Math.min(step, end - from);
  const total = hlen + (chunk > 0 ? chunk : 0);
  if (outL3 + total > out.length) return 0;
  moveBytes(out, outL3, src, l3, hlen);
  if (chunk > 0) moveBytes(out, outL3 + hlen, src, from, chunk);
  return total;
}

/**
 * Segment k's transport header at out[o4] (l4Len bytes to the segment's end): TCP sequence number
 * and flags (CWR on the first only, FIN and PSH on the last only), or the UDP length; then the full
 * checksum with the family's pseudo-header.
 */
function segmentL4(
  out: Uint8Array,
  outL3: number,
  o4: number,
  l4Len: number,
  src: Uint8Array,
  l4: number,
  payload: number,
  proto: number,
  mss: number,
  k: number,
  v6: boolean,
): void {
  let field = 6;
  if (proto === IPPROTO_TCP) {
    const n = gsoSegmentCount(payload, mss);
    const step = mss > 0 ? mss : payload;
    writeU32(out, o4 + 4, (readU32(src, l4 + 4) + k * step) >>> 0);
    let flags = src[l4 + 13];
    if (k > 0) flags &= ~TCP_CWR;
    if (k < n - 1) flags &= ~TCP_FIN_PSH;
    out[o4 + 13] = flags;
    field = 16;
  } else writeU16(out, o4 + 4, l4Len);
  const c = v6 ? l4ChecksumV6(out, outL3, o4, l4Len, proto) : l4ChecksumV4(out, outL3, o4, l4Len, proto);
  writeU16(out, o4 + field, c);
}

/**
 * The value a CHECKSUM_PARTIAL TCP/UDP checksum field holds: the folded (not complemented)
 * pseudo-header sum of the datagram at l3 (addresses, protocol, transport length), which the
 * device (or the kernel's GSO) completes over the transport header and payload. Written after
 * addresses and ports were rewritten, it replaces whatever incremental updates did to the field.
 */
export function writePseudoHeaderSum(
  buf: Uint8Array,
  l3: number,
  l4: number,
  end: number,
  field: number,
): void {
  const l4Len = end - l4;
  let s =
    readU16(buf, l3 + 12) +
    readU16(buf, l3 + 14) +
    readU16(buf, l3 + 16) +
    readU16(buf, l3 + 18) +
    buf[l3 + 9];
  s += (l4Len >>> 16) + (l4Len & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  writeU16(buf, l4 + field, s);
}

/**
 * gsoBuildSegment for an IPv6 aggregate (extension headers, if any, are in [l3, l4) and copied):
 * the payload length for its size, TCP seq/flags or UDP length, and a full transport checksum
 * with the IPv6 pseudo-header. `proto` is the upper-layer protocol the walk found.
 */
export function gsoBuildSegment6(
  out: Uint8Array,
  outL3: number,
  src: Uint8Array,
  l3: number,
  l4: number,
  pay: number,
  end: number,
  proto: number,
  mss: number,
  k: number,
): number {
  if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return 0;
  const total = segmentInto(out, outL3, src, l3, pay, end, mss, k);
  if (total === 0) return 0;
  writeU16(out, outL3 + IP6_PLEN, total - IPV6_HLEN);
  segmentL4(out, outL3, outL3 + (l4 - l3), total - (l4 - l3), src, l4, end - pay, proto, mss, k, true);
  return total;
}

/** writePseudoHeaderSum for IPv6: the RFC 8200 §8.1 pseudo-header (addresses, length, next header). */
export function writePseudoHeaderSum6(
  buf: Uint8Array,
  l3: number,
  l4: number,
  end: number,
  proto: number,
  field: number,
): void {
  writeU16(buf, l4 + field, csumFold(ipv6PseudoSum(buf, l3, end - l4, proto)));
}
