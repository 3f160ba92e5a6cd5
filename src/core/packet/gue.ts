// GUE (Generic UDP Encapsulation, draft-ietf-intarea-gue) as IPVS builds it for a TUN destination
// with --tun-type gue: net/netfilter/ipvs/ip_vs_xmit.c ipvs_gue_encap + ip_vs_tunnel_xmit (outer
// IPv4) and ip_vs_tunnel_xmit_v6 (outer IPv6), with the header of include/net/gue.h (struct
// guehdr). On the wire:
//
//   outer IPv4 (proto 17, DIP → RIP) or IPv6 (next header 17) | UDP (sport from the flow, dport =
//   --tun-port) | GUE: byte 0 = version(2) C(1) hlen(5), proto_ctype = 4 (an IPv4 datagram
//   inside) or 41 (IPv6), flags (16 bits) |
//   [private flags word 0x80000000, csum_start(16) csum_offset(16)]  (remote checksum offload) |
//   the client's datagram
//
// Version 0, C = 0 (data), hlen = the options' length in 32-bit words. The options exist only with
// --tun-remcsum *and* an inner transport checksum still partial (skb->ip_summed ==
// CHECKSUM_PARTIAL): flags = GUE_FLAG_PRIV (0x0001), the private flags word = GUE_PFLAG_REMCSUM
// (1 << 31), then where the receiver starts summing and where it puts the checksum, both relative
// to the start of the inner datagram (csum_start - hdrlen; csum_start + csum_offset). The UDP
// checksum is computed with --tun-csum or --tun-remcsum, else 0 — over IPv6 too: udp6_set_csum(
// nocheck, …) writes 0 when nocheck (net/ipv6/ip6_checksum.c), the zero checksum RFC 6935/6936
// allow a tunnel, which fou's IPv6 socket accepts (udp_sock_create6 sets no_check6_rx: fou never
// asks for use_udp6_rx_checksums) and a plain UDPv6 socket refuses (UDP_NO_CHECK6_RX unset). A
// computed checksum of 0 goes out as 0xffff (CSUM_MANGLED_0).
//
// The receive side follows net/ipv4/fou_core.c gue_udp_recv: version 0, only known flags
// (validate_gue_flags), remote checksum applied (gue_remcsum → skb_remcsum_process), control
// messages and proto_ctype 0 dropped; the proto_ctype then picks the protocol handler the datagram
// is resubmitted to (4: ipip / ip6_tunnel's ip4ip6, 41: sit / ip6_tunnel's ip6ip6).

import { readU16, readU32, writeU16, writeU32 } from "../addr.js";
import { csumAdd, csumFinish, l4ChecksumV4, l4ChecksumV6 } from "./csum.js";
import { IPPROTO_IPIP, IPPROTO_UDP } from "./flow.js";
import { placeInner } from "./ipip.js";
import { IP_DF, IPV4_HLEN, writeIpv4Header } from "./ipv4.js";
import { IPV6_HLEN, NEXTHDR_IPV6, writeIpv6Header } from "./ipv6.js";
import { UDP_HLEN } from "./udp.js";

/** struct guehdr: the 4-byte base header. */
export const GUE_HLEN = 4;
/** Standard flag: private flags are in the options (htons(1 << 0)). */
export const GUE_FLAG_PRIV = 0x0001;
export const GUE_LEN_PRIV = 4;
/** Private flag: remote checksum offload (htonl(1U << 31)). */
export const GUE_PFLAG_REMCSUM = 0x80000000;
export const GUE_PLEN_REMCSUM = 4;
/** UDP + GUE base header: what GUE adds inside the outer IP header, without options. */
export const GUE_ENCAP_HLEN = UDP_HLEN + GUE_HLEN;
/** Outer IPv4 + UDP + GUE base header: what GUE adds without options (the MTU overhead). */
export const GUE_OVERHEAD = IPV4_HLEN + GUE_ENCAP_HLEN;
/** The same over IPv6. */
export const GUE6_OVERHEAD = IPV6_HLEN + GUE_ENCAP_HLEN;
/** The proto_ctype byte's offset in the GUE header (the inner protocol: 4 or 41). */
export const GUE_PROTO_CTYPE = 1;
/** What the remote-checksum option adds on top (GUE_PLEN_REMCSUM + GUE_LEN_PRIV). */
export const GUE_REMCSUM_OVERHEAD = GUE_PLEN_REMCSUM + GUE_LEN_PRIV;

/** inet_get_local_port_range defaults (net.ipv4.ip_local_port_range = 32768 60999). */
export const GUE_SPORT_MIN = 32768;
export const GUE_SPORT_MAX = 60999;

/**
 * udp_flow_src_port(net, skb, 0, 0, false) from a 32-bit flow hash: the hash is folded as the
 * kernel does (hash ^= hash << 16: only the upper 16 bits matter) and scaled into the local port
 * range, ((u64)hash * (max - min) >> 32) + min.
 */
export function udpSrcPortFromHash(hash: number): number {
  const h = (hash ^ (hash << 16)) >>> 0;
  return Math.floor((h * (GUE_SPORT_MAX - GUE_SPORT_MIN)) / 0x100000000) + GUE_SPORT_MIN;
}

/**
 * The flow hash that picks a connection's outer source port. The kernel takes skb_get_hash (the
 * flow dissector's siphash of addresses, ports and protocol under a random boot-time key), so the
 * port is per flow but not predictable; tsvs hashes the same fields with a fixed mix (murmur3's
 * finaliser over the words), so one flow keeps one port across restarts and directors, and an
 * ECMP/RSS spread on the real-server side still sees many ports.
 */
export function gueFlowHash(
  saddr: number,
  daddr: number,
  sport: number,
  dport: number,
  proto: number,
): number {
  let h = Math.imul(saddr ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ daddr, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ (((sport & 0xffff) << 16) | (dport & 0xffff)), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ proto, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The GUE header at out[g] (UDP payload start): version 0, C 0, hlen, proto_ctype `innerProto`,
 * and with remcsumStart >= 0 the private flags word and the remote-checksum option. Returns its
 * length (4, or 12 with the option).
 */
function writeGue(
  out: Uint8Array,
  g: number,
  innerProto: number,
  remcsumStart: number,
  remcsumOff: number,
): number {
  const optLen = remcsumStart >= 0 ? GUE_REMCSUM_OVERHEAD : 0;
  out[g] = optLen >>> 2; // version 0, C 0, hlen
  out[g + 1] = innerProto;
  writeU16(out, g + 2, optLen !== 0 ? GUE_FLAG_PRIV : 0);
  if (optLen !== 0) {
    writeU32(out, g + 4, GUE_PFLAG_REMCSUM);
    writeU16(out, g + 8, remcsumStart);
    writeU16(out, g + 10, remcsumStart + remcsumOff);
  }
  return GUE_HLEN + optLen;
}

/**
 * Writes outer IPv4 + UDP + GUE at out[outL3Off] and the inner datagram src[srcL3Off, +srcL3Len)
 * after them (src may be out: the move is overlap-safe). csum: compute the UDP checksum (else 0).
 * remcsumStart >= 0 adds the remote-checksum option with csum_start = remcsumStart and csum_offset
 * = remcsumStart + remcsumOff (both from the inner datagram's start; the caller leaves the inner
 * checksum partial). innerProto: the proto_ctype (4, default; 41 for an IPv6 datagram); id: the
 * outer IPv4 ID. Returns the outer IP length, or 0 when out is too small or the result would
 * exceed 65535 bytes.
 */
export function gueEncap(
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
  sport: number,
  dport: number,
  csum: boolean,
  remcsumStart = -1,
  remcsumOff = 0,
  innerProto = IPPROTO_IPIP,
  id = 0,
): number {
  const optLen = remcsumStart >= 0 ? GUE_REMCSUM_OVERHEAD : 0;
  const hdr = IPV4_HLEN + GUE_ENCAP_HLEN + optLen;
  const total = placeInner(out, outL3Off, src, srcL3Off, srcL3Len, hdr);
  if (total === 0) return 0;
  const u = outL3Off + IPV4_HLEN;
  writeGue(out, u + UDP_HLEN, innerProto, remcsumStart, remcsumOff);
  writeU16(out, u, sport);
  writeU16(out, u + 2, dport);
  writeU16(out, u + 4, total - IPV4_HLEN);
  writeU16(out, u + 6, 0);
  writeIpv4Header(out, outL3Off, tos, total, id, df ? IP_DF : 0, ttl, IPPROTO_UDP, saddr, daddr);
  if (csum) writeU16(out, u + 6, l4ChecksumV4(out, outL3Off, u, total - IPV4_HLEN, IPPROTO_UDP));
  return total;
}

/**
 * gueEncap over IPv6 (ip_vs_tunnel_xmit_v6): outer IPv6 (source and destination the 16 bytes at
 * addrs[sOff] and addrs[dOff], hop limit hl, traffic class tc, flow label 0, next header 17) +
 * UDP + GUE + the inner datagram. csum: the UDP checksum over the IPv6 pseudo-header (0 → 0xffff);
 * without it the field stays 0, as udp6_set_csum(nocheck) leaves it. Returns the outer IP length
 * (40 + payload), or 0 as gueEncap.
 */
export function gueEncap6(
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
  sport: number,
  dport: number,
  csum: boolean,
  innerProto: number,
  remcsumStart = -1,
  remcsumOff = 0,
): number {
  const optLen = remcsumStart >= 0 ? GUE_REMCSUM_OVERHEAD : 0;
  const hdr = IPV6_HLEN + GUE_ENCAP_HLEN + optLen;
  const total = placeInner(out, outL3Off, src, srcL3Off, srcL3Len, hdr);
  if (total === 0) return 0;
  const u = outL3Off + IPV6_HLEN;
  const ulen = total - IPV6_HLEN;
  writeGue(out, u + UDP_HLEN, innerProto, remcsumStart, remcsumOff);
  writeU16(out, u, sport);
  writeU16(out, u + 2, dport);
  writeU16(out, u + 4, ulen);
  writeU16(out, u + 6, 0);
  writeIpv6Header(out, outL3Off, tc, 0, ulen, IPPROTO_UDP, hl, addrs, sOff, addrs, dOff);
  if (csum) writeU16(out, u + 6, l4ChecksumV6(out, outL3Off, u, ulen, IPPROTO_UDP));
  return total;
}

/** gueDecap results (negative: dropped, as gue_udp_recv drops). */
export const GUE_ERR_SHORT = -1;
/** Version other than 0, an unknown standard or private flag, options longer than hlen. */
export const GUE_ERR_HEADER = -2;
/** A control message (C bit set): "No support yet" in the kernel too. */
export const GUE_ERR_CONTROL = -3;
/** The remote-checksum fields point past the datagram. */
export const GUE_ERR_REMCSUM = -4;
/** proto_ctype 0 (which fou drops too), or a protocol tsvs does not deliver (anything but 4 and 41). */
export const GUE_ERR_PROTO = -5;

/**
 * Parses the GUE datagram at buf[off, off+len) (a UDP payload) and returns the offset of the
 * inner datagram, or a GUE_ERR_* code. A remote-checksum option is applied in place, as
 * skb_remcsum_process does without partial offload: the checksum of the inner bytes from
 * csum_start to the end (the field holding the pseudo-header sum the sender left) is folded,
 * complemented and stored at csum_offset. proto_ctype 4 (inner IPv4) and 41 (inner IPv6) are
 * delivered: buf[off + GUE_PROTO_CTYPE] says which (the caller checks the inner header against it).
 */
export function gueDecap(buf: Uint8Array, off: number, len: number): number {
  if (off < 0 || len < GUE_HLEN || off + len > buf.length) return GUE_ERR_SHORT;
  const b0 = buf[off];
  const optLen = (b0 & 0x1f) << 2;
  const hdrLen = GUE_HLEN + optLen;
  if (len < hdrLen) return GUE_ERR_SHORT;
  if (b0 >>> 6 !== 0) return GUE_ERR_HEADER;
  // validate_gue_flags: only GUE_FLAG_PRIV is known; its word must fit the options, and the
  // private word may only hold GUE_PFLAG_REMCSUM (whose 4 bytes the kernel does not count:
  // guehdr_priv_flags_len() returns 0).
  const flags = readU16(buf, off + 2);
  if ((flags & ~GUE_FLAG_PRIV) !== 0) return GUE_ERR_HEADER;
  const inner = off + hdrLen;
  if ((flags & GUE_FLAG_PRIV) !== 0) {
    if (optLen < GUE_LEN_PRIV) return GUE_ERR_HEADER;
    const pflags = readU32(buf, off + GUE_HLEN);
    if ((pflags & ~GUE_PFLAG_REMCSUM) >>> 0 !== 0) return GUE_ERR_HEADER;
    if (pflags !== 0) {
      const pd = off + GUE_HLEN + GUE_LEN_PRIV;
      // gue_remcsum pulls up to the option's end and max(offset + 2, start) of the inner bytes.
      if (pd + GUE_PLEN_REMCSUM > inner) return GUE_ERR_REMCSUM;
      const start = readU16(buf, pd);
      const field = readU16(buf, pd + 2);
      const innerLen = len - hdrLen;
      if (field + 2 > innerLen || start > innerLen) return GUE_ERR_REMCSUM;
      writeU16(buf, inner + field, csumFinish(csumAdd(buf, inner + start, innerLen - start)));
    }
  }
  if ((b0 & 0x20) !== 0) return GUE_ERR_CONTROL;
  const p = buf[off + GUE_PROTO_CTYPE];
  if (p !== IPPROTO_IPIP && p !== NEXTHDR_IPV6) return GUE_ERR_PROTO;
  return inner;
}
