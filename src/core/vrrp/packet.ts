// VRRP advertisements on the wire: RFC 3768 (v2) and RFC 5798/9568 (v3) over IPv4, and v3 over
// IPv6, as keepalived builds and checks them (keepalived/vrrp/vrrp.c: vrrp_build_ip4,
// vrrp_build_vrrp_v2/_v3, vrrp_check_packet, open_vrrp_send_socket; vrrp_arp.c:
// send_gratuitous_arp_immediate).
//
//   VRRP header (8 bytes), then naddr × 4-byte addresses (IPv6: 16-byte), then (v2 only) 8 bytes of auth data:
//     0: version<<4 | type (1 = ADVERTISEMENT)   1: VRID   2: priority   3: naddr
//     v2: 4: auth type, 5: advert interval (s)   v3: 4-5: rsvd(4) | max advert interval (12, cs)
//     6-7: checksum
//   v2 checksum: the VRRP message only. v3/IPv4 checksum: an IPv4 pseudo-header
//   {src, dst, 0, 112, VRRP length} then the message, dst being the packet's actual destination
//   (keepalived ≥ 1.3.6); `v3_checksum_as_v2` drops the pseudo-header (Cisco, Juniper, RFC 9568).
//   keepalived always appends the 8 auth bytes in v2, zeros without authentication.
//
// The IPv4 header keepalived writes (IP_HDRINCL): TOS 0xc0 (internetwork control), id 0 (the
// kernel then picks one), frag_off 0 (no DF), TTL 255, protocol 112.
//
// Over IPv6 keepalived sends from a raw socket and lets the kernel write the header and the sum
// (IPV6_CHECKSUM at offset 6): traffic class 0xc0 (IPV6_TCLASS), hop limit 255
// (IPV6_MULTICAST_HOPS), next header 112, from the interface's link-local address (IPV6_PKTINFO)
// to ff02::12; the checksum covers the RFC 8200 §8.1 pseudo-header {src, dst, VRRP length (32
// bits), 0, 112}. The kernel also checks the sum of what it receives and drops a bad one before
// keepalived sees it; tsvs counts it as `checksum`. tsvs writes flow label 0 where the kernel
// picks one (auto_flowlabels), and hop limit 255 to unicast peers too (RFC 9568 §5.1.2.3; the
// kernel's unicast default would be 64, which a receiver does not check on unicast).
//
// Codecs over (buf, off), bounds checked, never throwing. Receive checks return a stable reason
// name that the daemon counts drops under.

import { formatIPv6, readU16, readU32, writeU16, writeU32 } from "../addr.js";
import { ARP_LEN, ARP_REQUEST, writeArp } from "../packet/arp.js";
import { csumAdd, csumAdd32, csumFinish, verifyIpv4Header } from "../packet/csum.js";
import { BROADCAST_MAC, ETH_HLEN, writeEthHeader } from "../packet/eth.js";
import { ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6 } from "../packet/flow.js";
import { NDISC_NEIGHBOUR_SOLICITATION } from "../packet/icmpv6.js";
import {
  IP_DADDR,
  IP_FRAG,
  IP_MF,
  IP_OFFMASK,
  IP_PROTO,
  IP_SADDR,
  IP_TOTLEN,
  IP_TTL,
  IPV4_HLEN,
  writeIpv4Header,
} from "../packet/ipv4.js";
import {
  IP6_DADDR,
  IP6_HOPLIMIT,
  IP6_OK,
  IP6_SADDR,
  IPV6_HLEN,
  Ipv6Walk,
  ipv6IsMulticast,
  ipv6Walk,
  writeIpv6Header,
} from "../packet/ipv6.js";
import { ipv6MulticastMac, ndpSolicitedNode, writeNdp } from "../packet/ndp.js";
import type { VrrpInstanceConfig } from "./config.js";

export const IPPROTO_VRRP = 112;
/** 224.0.0.18 */
export const INADDR_VRRP_GROUP = 0xe0000012;
export const VRRP_IP_TTL = 255;
/** keepalived: "set tos to internet network control". */
export const VRRP_IP_TOS = 0xc0;
/** ff02::12 (keepalived INADDR6_VRRP_GROUP). */
export const INADDR6_VRRP_GROUP: Uint8Array = Uint8Array.from([
  0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12,
]);
/** keepalived's IPV6_TCLASS on its advert socket: 0xc0, as the IPv4 TOS. */
export const VRRP_IP6_TCLASS = 0xc0;
export const VRRP_VERSION_2 = 2;
export const VRRP_VERSION_3 = 3;
export const VRRP_PKT_ADVERT = 1;
export const VRRP_AUTH_NONE = 0;
export const VRRP_AUTH_PASS = 1;
export const VRRP_AUTH_AH = 2;
export const VRRP_AUTH_LEN = 8;
export const VRRP_PRIO_STOP = 0;
export const VRRP_PRIO_OWNER = 255;
export const VRRP_MAX_ADDR = 255;

/** Header field offsets, from the start of the VRRP message. */
export const VRRP_VERS_TYPE = 0;
export const VRRP_VRID = 1;
export const VRRP_PRIORITY = 2;
export const VRRP_NADDR = 3;
export const VRRP_V2_AUTH_TYPE = 4;
export const VRRP_V2_ADVER_INT = 5;
export const VRRP_V3_ADVER_INT = 4;
export const VRRP_CHECKSUM = 6;
export const VRRP_HLEN = 8;
/** The 12-bit v3 interval field (centiseconds); the top 4 bits are reserved. */
export const VRRP_V3_ADVER_INT_MASK = 0x0fff;

/** Length of the VRRP message for a version and address count (keepalived expected_vrrp_pkt_len). */
export function vrrpMessageLen(version: number, naddr: number, family: 4 | 6 = 4): number {
  if (family === 6) return VRRP_HLEN + 16 * naddr;
  return VRRP_HLEN + 4 * naddr + (version === VRRP_VERSION_2 ? VRRP_AUTH_LEN : 0);
}

/** What an advert carries; the codec's own input (the instance config maps onto it). */
export interface AdvertFields {
  version: 2 | 3;
  vrid: number;
  priority: number;
  /** ms; v2 writes whole seconds, v3 centiseconds. */
  advertIntMs: number;
  addrs: readonly number[];
  /** v2 PASS authentication (first 8 characters); null = none. Ignored in v3, as keepalived does. */
  authPass: string | null;
  /** v3: checksum without the IPv4 pseudo-header. */
  v3ChecksumAsV2: boolean;
}

/** The 8 auth bytes of a PASS password: its first 8 characters (Latin-1 bytes), zero padded. */
function writeAuthData(buf: Uint8Array, off: number, pass: string | null): void {
  for (let i = 0; i < VRRP_AUTH_LEN; i++)
    buf[off + i] = pass !== null && i < pass.length ? pass.charCodeAt(i) & 255 : 0;
}

/** Sum of the IPv4 pseudo-header {src, dst, 0, 112, len}, unfolded. */
function pseudoSum(src: number, dst: number, len: number): number {
  return csumAdd32(csumAdd32(0, src), dst) + IPPROTO_VRRP + len;
}

/**
 * Writes a VRRP message at off; returns its length, or 0 when it does not fit or the fields are
 * out of range. srcIp/dstIp feed the v3 pseudo-header only.
 */
export function encodeAdvert(
  buf: Uint8Array,
  off: number,
  a: AdvertFields,
  srcIp: number,
  dstIp: number,
): number {
  const n = a.addrs.length;
  if (n > VRRP_MAX_ADDR || off < 0) return 0;
  const len = vrrpMessageLen(a.version, n);
  if (off + len > buf.length) return 0;
  buf[off + VRRP_VERS_TYPE] = (a.version << 4) | VRRP_PKT_ADVERT;
  buf[off + VRRP_VRID] = a.vrid & 255;
  buf[off + VRRP_PRIORITY] = a.priority & 255;
  buf[off + VRRP_NADDR] = n;
  if (a.version === VRRP_VERSION_2) {
    buf[off + VRRP_V2_AUTH_TYPE] = a.authPass !== null ? VRRP_AUTH_PASS : VRRP_AUTH_NONE;
    buf[off + VRRP_V2_ADVER_INT] = Math.round(a.advertIntMs / 1000) & 255;
  } else {
    writeU16(buf, off + VRRP_V3_ADVER_INT, Math.round(a.advertIntMs / 10) & VRRP_V3_ADVER_INT_MASK);
  }
  writeU16(buf, off + VRRP_CHECKSUM, 0);
  for (let i = 0; i < n; i++) writeU32(buf, off + VRRP_HLEN + 4 * i, a.addrs[i]);
  if (a.version === VRRP_VERSION_2) writeAuthData(buf, off + VRRP_HLEN + 4 * n, a.authPass);
  const base = a.version === VRRP_VERSION_3 && !a.v3ChecksumAsV2 ? pseudoSum(srcIp, dstIp, len) : 0;
  writeU16(buf, off + VRRP_CHECKSUM, csumFinish(csumAdd(buf, off, len, base)));
  return len;
}

/** 01:00:5e + the low 23 bits of an IPv4 multicast group (RFC 1112 §6.4); 224.0.0.18 → 01:00:5e:00:00:12. */
export function multicastMac(group: number): Uint8Array {
  return new Uint8Array([0x01, 0x00, 0x5e, (group >>> 16) & 0x7f, (group >>> 8) & 255, group & 255]);
}

/** The VRRP virtual MAC for IPv4: 00:00:5e:00:01:VRID (RFC 3768 §7.3). */
export function vmacOf(vrid: number): Uint8Array {
  return new Uint8Array([0x00, 0x00, 0x5e, 0x00, 0x01, vrid & 255]);
}

export function isMulticast(addr: number): boolean {
  return addr >>> 28 === 0xe;
}

/** The instance config fields an advert is built from. */
export type AdvertSource = Pick<
  VrrpInstanceConfig,
  "version" | "vrid" | "advertIntMs" | "authPass" | "addrs" | "v3ChecksumAsV2"
>;

export interface AdvertFrameOpts {
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  srcIp: number;
  /** The multicast group, or the unicast peer this copy goes to (it is in the v3 pseudo-header). */
  dstIp: number;
  cfg: AdvertSource;
  /** The priority to advertise: the effective one, 0 when resigning. */
  priority: number;
  /** IPv4 id; keepalived leaves 0 and the kernel fills it in. Default 0. */
  ipId?: number;
}

/** Writes Ethernet + IPv4 + VRRP at off; returns the frame length, 0 if it does not fit. */
export function writeAdvertFrame(buf: Uint8Array, off: number, o: AdvertFrameOpts): number {
  const l3 = off + ETH_HLEN;
  const l4 = l3 + IPV4_HLEN;
  const c = o.cfg;
  const addrs: number[] = [];
  for (const a of c.addrs) addrs.push(a.addr);
  const vlen = encodeAdvert(
    buf,
    l4,
    {
      version: c.version,
      vrid: c.vrid,
      priority: o.priority,
      advertIntMs: c.advertIntMs,
      addrs,
      authPass: c.version === VRRP_VERSION_2 ? c.authPass : null,
      v3ChecksumAsV2: c.v3ChecksumAsV2,
    },
    o.srcIp,
    o.dstIp,
  );
  if (vlen === 0) return 0;
  writeEthHeader(buf, off, o.dstMac, o.srcMac, ETH_P_IP);
  writeIpv4Header(
    buf,
    l3,
    VRRP_IP_TOS,
    IPV4_HLEN + vlen,
    o.ipId ?? 0,
    0,
    VRRP_IP_TTL,
    IPPROTO_VRRP,
    o.srcIp,
    o.dstIp,
  );
  return ETH_HLEN + IPV4_HLEN + vlen;
}

/** What an IPv6 advert carries (always VRRPv3, never authenticated). */
export interface AdvertFields6 {
  vrid: number;
  priority: number;
  /** ms, written in centiseconds. */
  advertIntMs: number;
  /** The addresses, 16 bytes each. */
  addrs: readonly Uint8Array[];
}

/** Sum of the IPv6 pseudo-header {src, dst, 32-bit length, 0, 0, 0, 112} (RFC 8200 §8.1), unfolded. */
function pseudoSum6(src: Uint8Array, sOff: number, dst: Uint8Array, dOff: number, len: number): number {
  return csumAdd(dst, dOff, 16, csumAdd(src, sOff, 16)) + (len >>> 16) + (len & 0xffff) + IPPROTO_VRRP;
}

/**
 * Writes a VRRPv3 message for IPv6 at off, its checksum over the pseudo-header of src[sOff..] and
 * dst[dOff..] (what the kernel fills in for keepalived); returns its length, or 0 when it does not
 * fit or has too many addresses.
 */
export function encodeAdvert6(
  buf: Uint8Array,
  off: number,
  a: AdvertFields6,
  src: Uint8Array,
  sOff: number,
  dst: Uint8Array,
  dOff: number,
): number {
  const n = a.addrs.length;
  if (n > VRRP_MAX_ADDR || off < 0) return 0;
  const len = vrrpMessageLen(VRRP_VERSION_3, n, 6);
  if (off + len > buf.length) return 0;
  buf[off + VRRP_VERS_TYPE] = (VRRP_VERSION_3 << 4) | VRRP_PKT_ADVERT;
  buf[off + VRRP_VRID] = a.vrid & 255;
  buf[off + VRRP_PRIORITY] = a.priority & 255;
  buf[off + VRRP_NADDR] = n;
  writeU16(buf, off + VRRP_V3_ADVER_INT, Math.round(a.advertIntMs / 10) & VRRP_V3_ADVER_INT_MASK);
  writeU16(buf, off + VRRP_CHECKSUM, 0);
  for (let i = 0; i < n; i++) buf.set(a.addrs[i].subarray(0, 16), off + VRRP_HLEN + 16 * i);
  writeU16(
    buf,
    off + VRRP_CHECKSUM,
    csumFinish(csumAdd(buf, off, len, pseudoSum6(src, sOff, dst, dOff, len))),
  );
  return len;
}

/** The VRRP virtual MAC for IPv6: 00:00:5e:00:02:VRID (RFC 5798 §7.3). */
export function vmac6Of(vrid: number): Uint8Array {
  return new Uint8Array([0x00, 0x00, 0x5e, 0x00, 0x02, vrid & 255]);
}

/** 33:33 + the group's last 32 bits (RFC 2464 §7): ff02::12 → 33:33:00:00:00:12. */
export function multicastMac6(group: Uint8Array): Uint8Array {
  const m = new Uint8Array(6);
  ipv6MulticastMac(group, 0, m, 0);
  return m;
}

export interface AdvertFrame6Opts {
  srcMac: Uint8Array;
  dstMac: Uint8Array;
  /** The interface's link-local address, or unicast_src_ip (16 bytes). */
  src: Uint8Array;
  /** ff02::12 (mcast_dst_ip), or the unicast peer this copy goes to. */
  dst: Uint8Array;
  vrid: number;
  advertIntMs: number;
  /** The instance's virtual_ipaddress, 16 bytes each. */
  addrs: readonly Uint8Array[];
  /** The priority to advertise: the effective one, 0 when resigning. */
  priority: number;
}

/** Writes Ethernet + IPv6 + VRRPv3 at off; returns the frame length, 0 if it does not fit. */
export function writeAdvertFrame6(buf: Uint8Array, off: number, o: AdvertFrame6Opts): number {
  const l3 = off + ETH_HLEN;
  const vlen = encodeAdvert6(buf, l3 + IPV6_HLEN, o, o.src, 0, o.dst, 0);
  if (vlen === 0) return 0;
  writeEthHeader(buf, off, o.dstMac, o.srcMac, ETH_P_IPV6);
  writeIpv6Header(buf, l3, VRRP_IP6_TCLASS, 0, vlen, IPPROTO_VRRP, VRRP_IP_TTL, o.src, 0, o.dst, 0);
  return ETH_HLEN + IPV6_HLEN + vlen;
}

const nsScratch = new Uint8Array(16);

/**
 * A neighbour solicitation for `target` from (mac, src) to its solicited-node group, with our
 * link-layer address: how the daemon learns an IPv6 unicast peer's MAC (the IPv6 counterpart of
 * writeArpRequestFrame). Returns the frame length, 0 when it does not fit.
 */
export function writeNsFrame(
  buf: Uint8Array,
  off: number,
  mac: Uint8Array,
  src: Uint8Array,
  target: Uint8Array,
): number {
  ndpSolicitedNode(target, 0, nsScratch, 0);
  const len = writeNdp(
    buf,
    off + ETH_HLEN,
    NDISC_NEIGHBOUR_SOLICITATION,
    0,
    src,
    0,
    nsScratch,
    0,
    target,
    0,
    mac,
  );
  if (len === 0) return 0;
  const dmac = new Uint8Array(6);
  ipv6MulticastMac(nsScratch, 0, dmac, 0);
  writeEthHeader(buf, off, dmac, mac, ETH_P_IPV6);
  return ETH_HLEN + len;
}

/**
 * A gratuitous ARP as keepalived sends it: an ARP request from mac to the broadcast address with
 * sender = target = ip and target hardware address ff:ff:ff:ff:ff:ff (the interface's broadcast
 * address, not zeros). 42 bytes, unpadded; 0 if it does not fit.
 */
export function writeGarpFrame(buf: Uint8Array, off: number, mac: Uint8Array, ip: number): number {
  const len = ETH_HLEN + ARP_LEN;
  if (off < 0 || off + len > buf.length) return 0;
  writeEthHeader(buf, off, BROADCAST_MAC, mac, ETH_P_ARP);
  writeArp(buf, off + ETH_HLEN, ARP_REQUEST, mac, ip, BROADCAST_MAC, ip);
  return len;
}

const ZERO_MAC = new Uint8Array(6);

/**
 * An ARP request for `tpa` from (mac, spa), broadcast: how the daemon learns a unicast peer's MAC
 * (its adverts go to that MAC, not to a multicast group). Returns the length, 0 when it does not fit.
 */
export function writeArpRequestFrame(
  buf: Uint8Array,
  off: number,
  mac: Uint8Array,
  spa: number,
  tpa: number,
): number {
  const len = ETH_HLEN + ARP_LEN;
  if (off < 0 || off + len > buf.length) return 0;
  writeEthHeader(buf, off, BROADCAST_MAC, mac, ETH_P_ARP);
  writeArp(buf, off + ETH_HLEN, ARP_REQUEST, mac, spa, ZERO_MAC, tpa);
  return len;
}

/** A VRRP frame, parsed once: offsets and the header fields the checks and the dispatch read. */
export interface VrrpFrame {
  family: 4 | 6;
  /** Offset of the IP header. */
  l3Off: number;
  /** IPv4 addresses; 0 for IPv6. */
  srcIp: number;
  dstIp: number;
  /** IPv6: offsets of the 16-byte source and destination addresses in the frame; -1 for IPv4. */
  src6Off: number;
  dst6Off: number;
  /** TTL, or the hop limit. */
  ttl: number;
  /** Offset of the VRRP message and its length from the IP length (Ethernet padding excluded). */
  vrrpOff: number;
  vrrpLen: number;
  version: number;
  type: number;
  vrid: number;
  priority: number;
  naddr: number;
}

/** parseVrrpFrame's extension-header walk (the daemon's one thread reads adverts). */
const walk6 = new Ipv6Walk();

/**
 * Parses Ethernet (one 802.1Q tag tolerated) + IP + the VRRP header; null when the frame is not an
 * unfragmented IPv4 protocol-112 packet with a valid header checksum, or an unfragmented IPv6
 * packet whose upper layer (after any extension headers) is 112, with at least the 8-byte VRRP
 * header. Bytes past the IP length (Ethernet padding) are ignored.
 */
export function parseVrrpFrame(frame: Uint8Array, len: number): VrrpFrame | null {
  if (len > frame.length) len = frame.length;
  if (len < ETH_HLEN + IPV4_HLEN + VRRP_HLEN) return null;
  let l3 = ETH_HLEN;
  let et = readU16(frame, 12);
  if (et === ETH_P_8021Q) {
    et = readU16(frame, 16);
    l3 += 4;
  }
  if (et === ETH_P_IPV6) return parseVrrpFrame6(frame, len, l3);
  if (et !== ETH_P_IP || l3 + IPV4_HLEN > len) return null;
  if (frame[l3] >>> 4 !== 4) return null;
  const ihl = (frame[l3] & 15) << 2;
  if (ihl < IPV4_HLEN) return null;
  const tot = readU16(frame, l3 + IP_TOTLEN);
  if (tot < ihl + VRRP_HLEN || l3 + tot > len) return null;
  if (frame[l3 + IP_PROTO] !== IPPROTO_VRRP) return null;
  if ((readU16(frame, l3 + IP_FRAG) & (IP_MF | IP_OFFMASK)) !== 0) return null;
  if (!verifyIpv4Header(frame, l3)) return null;
  const v = l3 + ihl;
  return {
    family: 4,
    l3Off: l3,
    srcIp: readU32(frame, l3 + IP_SADDR),
    dstIp: readU32(frame, l3 + IP_DADDR),
    src6Off: -1,
    dst6Off: -1,
    ttl: frame[l3 + IP_TTL],
    vrrpOff: v,
    vrrpLen: tot - ihl,
    version: frame[v] >>> 4,
    type: frame[v] & 15,
    vrid: frame[v + VRRP_VRID],
    priority: frame[v + VRRP_PRIORITY],
    naddr: frame[v + VRRP_NADDR],
  };
}

function parseVrrpFrame6(frame: Uint8Array, len: number, l3: number): VrrpFrame | null {
  const w = walk6;
  if (ipv6Walk(frame, l3, len, w) !== IP6_OK) return null;
  if (w.fragment || w.proto !== IPPROTO_VRRP || w.l3End - w.l4Off < VRRP_HLEN) return null;
  const v = w.l4Off;
  return {
    family: 6,
    l3Off: l3,
    srcIp: 0,
    dstIp: 0,
    src6Off: l3 + IP6_SADDR,
    dst6Off: l3 + IP6_DADDR,
    ttl: frame[l3 + IP6_HOPLIMIT],
    vrrpOff: v,
    vrrpLen: w.l3End - v,
    version: frame[v] >>> 4,
    type: frame[v] & 15,
    vrid: frame[v + VRRP_VRID],
    priority: frame[v + VRRP_PRIORITY],
    naddr: frame[v + VRRP_NADDR],
  };
}

/** Stable names the daemon counts dropped adverts under (one per keepalived receive check). */
export type VrrpDropReason =
  | "vrid"
  | "length"
  | "ttl"
  | "version"
  | "auth_type"
  | "auth_mismatch"
  | "auth"
  | "interval"
  | "type"
  | "checksum"
  | "dest";

/** The config fields the receive checks read. */
export type AdvertCheckConfig = Pick<
  VrrpInstanceConfig,
  "vrid" | "version" | "advertIntMs" | "authPass" | "unicastPeers" | "v3ChecksumAsV2"
> &
  Partial<Pick<VrrpInstanceConfig, "family" | "unicastPeers6">>;

function authMatches(buf: Uint8Array, off: number, pass: string): boolean {
  // keepalived compares in constant time; so do we (no early exit).
  let diff = 0;
  for (let i = 0; i < VRRP_AUTH_LEN; i++)
    diff |= buf[off + i] ^ (i < pass.length ? pass.charCodeAt(i) & 255 : 0);
  return diff === 0;
}

/**
 * keepalived's receive checks (vrrp_check_packet), in its order; null = accept, else the reason:
 *   vrid      the VRID is not ours (keepalived dispatches on it before checking)
 *   length    the VRRP length is not 8 + 4·naddr (+ 8 in v2), or 8 + 16·naddr over IPv6
 *   ttl       TTL / hop limit ≠ 255 while multicasting (unicast instances accept any)
 *   version   not our configured version (always 3 over IPv6)
 *   auth_type v2: unknown auth type (keepalived's invalid_authtype)
 *   auth_mismatch v2: a known auth type, not the one we use (authtype_mismatch)
 *   auth      v2 PASS: the 8 password bytes differ (keepalived ignores the advert)
 *   interval  v2: advert interval ≠ ours ("to prevent concurrent VRID running"); v3 only logs it
 *   type      not an ADVERTISEMENT
 *   checksum  v2 over the message; v3 with the pseudo-header (dst = the packet's destination, or
 *             224.0.0.18 as pre-1.3.6 keepalived unicast peers compute it). With
 *             v3_checksum_as_v2 keepalived skips the check altogether (so that peers of either
 *             form interoperate); tsvs accepts either form there and still drops a corrupt one.
 *             IPv6: the RFC 8200 pseudo-header with the packet's own addresses (the kernel's
 *             IPV6_CHECKSUM check, which drops before keepalived counts anything)
 *   dest      a multicast destination on a unicast instance, or the reverse
 * The frame's family must be the instance's (the daemon dispatches on it: keepalived's sockets
 * are per family). AH authentication is not supported (parseVrrpFrame drops protocol 51).
 */
export function checkAdvert(cfg: AdvertCheckConfig, buf: Uint8Array, p: VrrpFrame): VrrpDropReason | null {
  if (p.vrid !== cfg.vrid) return "vrid";
  if (p.family === 6) return checkAdvert6(cfg, buf, p);
  if (p.vrrpLen !== vrrpMessageLen(p.version, p.naddr)) return "length";
  const unicast = cfg.unicastPeers.length > 0;
  if (!unicast && p.ttl !== VRRP_IP_TTL) return "ttl";
  if (p.version !== cfg.version) return "version";
  const v = p.vrrpOff;
  if (cfg.version === VRRP_VERSION_2) {
    const at = buf[v + VRRP_V2_AUTH_TYPE];
    if (at !== VRRP_AUTH_NONE && at !== VRRP_AUTH_PASS && at !== VRRP_AUTH_AH) return "auth_type";
    const ours = cfg.authPass !== null ? VRRP_AUTH_PASS : VRRP_AUTH_NONE;
    if (at !== ours) return "auth_mismatch";
    if (cfg.authPass !== null && !authMatches(buf, v + VRRP_HLEN + 4 * p.naddr, cfg.authPass)) return "auth";
    if (buf[v + VRRP_V2_ADVER_INT] * 1000 !== cfg.advertIntMs) return "interval";
  }
  if (p.type !== VRRP_PKT_ADVERT) return "type";
  if (cfg.version === VRRP_VERSION_2) {
    if (csumFinish(csumAdd(buf, v, p.vrrpLen)) !== 0) return "checksum";
  } else {
    const body = csumAdd(buf, v, p.vrrpLen);
    const ok =
      csumFinish(body + pseudoSum(p.srcIp, p.dstIp, p.vrrpLen)) === 0 ||
      (unicast && csumFinish(body + pseudoSum(p.srcIp, INADDR_VRRP_GROUP, p.vrrpLen)) === 0) ||
      (cfg.v3ChecksumAsV2 && csumFinish(body) === 0);
    if (!ok) return "checksum";
  }
  if (isMulticast(p.dstIp) === unicast) return "dest";
  return null;
}

/** checkAdvert over IPv6: keepalived's order without the IPv4 and v2 steps. */
function checkAdvert6(cfg: AdvertCheckConfig, buf: Uint8Array, p: VrrpFrame): VrrpDropReason | null {
  if (p.vrrpLen !== vrrpMessageLen(p.version, p.naddr, 6)) return "length";
  const unicast = (cfg.unicastPeers6?.length ?? 0) > 0;
  if (!unicast && p.ttl !== VRRP_IP_TTL) return "ttl";
  if (p.version !== cfg.version) return "version";
  if (p.type !== VRRP_PKT_ADVERT) return "type";
  const sum = csumAdd(buf, p.vrrpOff, p.vrrpLen, pseudoSum6(buf, p.src6Off, buf, p.dst6Off, p.vrrpLen));
  if (csumFinish(sum) !== 0) return "checksum";
  if (ipv6IsMulticast(buf, p.dst6Off) === unicast) return "dest";
  return null;
}

/** What the state machine needs from an advert that passed checkAdvert. */
export interface VrrpAdvertIn {
  version: 2 | 3;
  vrid: number;
  priority: number;
  advertIntMs: number;
  /** IPv4 addresses carried (empty over IPv6). */
  addrs: number[];
  /** The IPv4 sender; 0 over IPv6. */
  srcIp: number;
  /** Over IPv6: the sender (formatIPv6's text) and the addresses carried. */
  src6?: string;
  addrs6?: string[];
}

/** The advert's fields for VrrpInstance.receive (call after checkAdvert accepted it). */
export function decodeAdvert(buf: Uint8Array, p: VrrpFrame): VrrpAdvertIn {
  const v = p.vrrpOff;
  const version: 2 | 3 = p.version === VRRP_VERSION_3 ? 3 : 2;
  const advertIntMs =
    version === 2
      ? buf[v + VRRP_V2_ADVER_INT] * 1000
      : (readU16(buf, v + VRRP_V3_ADVER_INT) & VRRP_V3_ADVER_INT_MASK) * 10;
  if (p.family === 6) {
    const addrs6: string[] = [];
    for (let i = 0; i < p.naddr && v + VRRP_HLEN + 16 * i + 16 <= buf.length; i++)
      addrs6.push(formatIPv6(buf, v + VRRP_HLEN + 16 * i));
    const src6 = formatIPv6(buf, p.src6Off);
    return { version, vrid: p.vrid, priority: p.priority, advertIntMs, addrs: [], srcIp: 0, src6, addrs6 };
  }
  const addrs: number[] = [];
  for (let i = 0; i < p.naddr && v + VRRP_HLEN + 4 * i + 4 <= buf.length; i++)
    addrs.push(readU32(buf, v + VRRP_HLEN + 4 * i));
  return { version, vrid: p.vrid, priority: p.priority, advertIntMs, addrs, srcIp: p.srcIp };
}
