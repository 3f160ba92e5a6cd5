// GRE (RFC 2784, with the RFC 2890 key/sequence fields on receive) as IPVS builds it for a TUN
// destination with --tun-type gre: net/netfilter/ipvs/ip_vs_xmit.c ipvs_gre_encap →
// gre_build_header (include/net/gre.h) with no key and no sequence number:
//
//   outer IPv4 (proto 47, DIP → RIP) or IPv6 (next header 47) | flags+version (16) |
//   protocol (16): 0x0800 (ETH_P_IP) for an IPv4 datagram inside, 0x86DD (ETH_P_IPV6) for IPv6 |
//   [checksum (16) | reserved1 (16) = 0]  (--tun-csum: the C bit, 0x8000) | the client's datagram
//
// ipvs_gre_encap picks the protocol from next_protocol: IPPROTO_IPIP → ETH_P_IP, else ETH_P_IPV6.
// gre_calc_hlen: 4 bytes, 8 with the checksum. The checksum is the Internet checksum of the GRE
// header (checksum field 0) and the payload (gre_checksum / the device's offload of it), with no
// pseudo-header, over IPv6 as over IPv4. The receive side follows gre_parse_header
// (net/ipv4/gre_demux.c): version and routing bits refused, a checksum verified when present, key
// and sequence skipped; the protocol then says the inner family (gre0 / ip6gre0 hand 0x0800 to
// IPv4 and 0x86DD to IPv6).

import { readU16, writeU16 } from "../addr.js";
import { csumAdd, csumFinish, csumFold } from "./csum.js";
import { ETH_P_IP, ETH_P_IPV6 } from "./flow.js";
import { placeInner } from "./ipip.js";
import { IP_DF, IPV4_HLEN, writeIpv4Header } from "./ipv4.js";
import { IPV6_HLEN, writeIpv6Header } from "./ipv6.js";

export const IPPROTO_GRE = 47;
/** struct gre_base_hdr: flags (16) + protocol (16). */
export const GRE_HLEN = 4;
/** The C bit (GRE_CSUM) and the checksum + reserved1 word it adds. */
export const GRE_CSUM = 0x8000;
export const GRE_CSUM_LEN = 4;
/** RFC 2890 bits the receiver skips over (GRE_KEY, GRE_SEQ) and those it refuses (GRE_ROUTING, GRE_VERSION). */
export const GRE_KEY = 0x2000;
export const GRE_SEQ = 0x1000;
export const GRE_ROUTING = 0x4000;
export const GRE_VERSION = 0x0007;
/** Outer IPv4 + GRE without / with the checksum: the MTU overheads. */
export const GRE_OVERHEAD = IPV4_HLEN + GRE_HLEN;
export const GRE_CSUM_OVERHEAD = GRE_OVERHEAD + GRE_CSUM_LEN;
/** The same over IPv6. */
export const GRE6_OVERHEAD = IPV6_HLEN + GRE_HLEN;
export const GRE6_CSUM_OVERHEAD = GRE6_OVERHEAD + GRE_CSUM_LEN;
/** The GRE protocol for an inner datagram of family af (ipvs_gre_encap). */
export function greProtocol(innerAf: 4 | 6): number {
  return innerAf === 6 ? ETH_P_IPV6 : ETH_P_IP;
}

/**
 * The GRE header at out[g] in front of the payload already in place (payloadLen bytes after it):
 * flags (C with csum), protocol, and with csum the checksum over header and payload. Returns the
 * header's length.
 */
function writeGre(out: Uint8Array, g: number, csum: boolean, protocol: number, payloadLen: number): number {
  const greLen = csum ? GRE_HLEN + GRE_CSUM_LEN : GRE_HLEN;
  writeU16(out, g, csum ? GRE_CSUM : 0);
  writeU16(out, g + 2, protocol);
  if (csum) {
    writeU16(out, g + 4, 0);
    writeU16(out, g + 6, 0);
    writeU16(out, g + 4, csumFinish(csumAdd(out, g, greLen + payloadLen)));
  }
  return greLen;
}

/**
 * Writes outer IPv4 + GRE at out[outL3Off] and the inner datagram src[srcL3Off, +srcL3Len) after
 * them (src may be out: the move is overlap-safe); csum adds the checksum field; protocol: 0x0800
 * (default) or 0x86DD; id: the outer IPv4 ID. Returns the outer IP length, or 0 when out is too
 * small or the result would exceed 65535 bytes.
 */
export function greEncap(
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
  csum: boolean,
  protocol = ETH_P_IP,
  id = 0,
): number {
  const hdr = IPV4_HLEN + (csum ? GRE_HLEN + GRE_CSUM_LEN : GRE_HLEN);
  const total = placeInner(out, outL3Off, src, srcL3Off, srcL3Len, hdr);
  if (total === 0) return 0;
  writeGre(out, outL3Off + IPV4_HLEN, csum, protocol, srcL3Len);
  writeIpv4Header(out, outL3Off, tos, total, id, df ? IP_DF : 0, ttl, IPPROTO_GRE, saddr, daddr);
  return total;
}

/**
 * greEncap over IPv6 (ip_vs_tunnel_xmit_v6): outer IPv6 (addresses at addrs[sOff], addrs[dOff],
 * hop limit hl, traffic class tc, flow label 0, next header 47) + GRE + the inner datagram.
 * Returns the outer IP length (40 + payload), or 0 as greEncap.
 */
export function greEncap6(
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
  csum: boolean,
  protocol: number,
): number {
  const hdr = IPV6_HLEN + (csum ? GRE_HLEN + GRE_CSUM_LEN : GRE_HLEN);
  const total = placeInner(out, outL3Off, src, srcL3Off, srcL3Len, hdr);
  if (total === 0) return 0;
  writeGre(out, outL3Off + IPV6_HLEN, csum, protocol, srcL3Len);
  writeIpv6Header(out, outL3Off, tc, 0, total - IPV6_HLEN, IPPROTO_GRE, hl, addrs, sOff, addrs, dOff);
  return total;
}

/** greDecap results (negative: dropped, as gre_parse_header / ipgre_rcv drop). */
export const GRE_ERR_SHORT = -1;
/** Version not 0 or the routing bit set (gre_parse_header: -EINVAL). */
export const GRE_ERR_HEADER = -2;
/** The checksum does not verify (csum_err). */
export const GRE_ERR_CSUM = -3;
/** A protocol tsvs does not deliver (anything but 0x0800, inner IPv4, and 0x86DD, inner IPv6). */
export const GRE_ERR_PROTO = -4;

/**
 * Parses the GRE packet at buf[off, off+len) (the outer IP payload) and returns the offset of the
 * inner datagram, or a GRE_ERR_* code. A present checksum must verify over the whole GRE packet.
 * The protocol (readU16(buf, off + 2): 0x0800 or 0x86DD) says the inner family; the caller checks
 * the inner header against it.
 */
export function greDecap(buf: Uint8Array, off: number, len: number): number {
  if (off < 0 || len < GRE_HLEN || off + len > buf.length) return GRE_ERR_SHORT;
  const flags = readU16(buf, off);
  if ((flags & (GRE_VERSION | GRE_ROUTING)) !== 0) return GRE_ERR_HEADER;
  // gre_calc_hlen: 4 + 4 for each of checksum, key, sequence.
  let hlen = GRE_HLEN;
  if ((flags & GRE_CSUM) !== 0) hlen += 4;
  if ((flags & GRE_KEY) !== 0) hlen += 4;
  if ((flags & GRE_SEQ) !== 0) hlen += 4;
  if (len < hlen) return GRE_ERR_SHORT;
  if ((flags & GRE_CSUM) !== 0 && csumFold(csumAdd(buf, off, len)) !== 0xffff) return GRE_ERR_CSUM;
  const p = readU16(buf, off + 2);
  if (p !== ETH_P_IP && p !== ETH_P_IPV6) return GRE_ERR_PROTO;
  return off + hlen;
}
