// Neighbour Discovery (RFC 4861) for Ethernet: neighbour solicitation and advertisement parsed and
// validated as §7.1.1/§7.1.2 and the kernel's ndisc_rcv / ndisc_recv_ns / ndisc_recv_na require,
// the answer to a solicitation as ndisc_recv_ns → ndisc_send_na builds it, and keepalived's
// unsolicited advertisement (vrrp_ndisc.c), the IPv6 gratuitous ARP. Addresses are 16-byte
// slices (array + offset); MACs are 6 bytes from offset 0, as in arp.ts.

import { writeU32 } from "../addr.js";
import { ETH_HLEN, writeEthHeader } from "./eth.js";
import { ETH_P_IPV6 } from "./flow.js";
import {
  ICMPV6_CHECK,
  icmpv6Checksum,
  icmpv6Verify,
  NDISC_NEIGHBOUR_ADVERTISEMENT,
  NDISC_NEIGHBOUR_SOLICITATION,
} from "./icmpv6.js";
import {
  IP6_DADDR,
  IP6_HOPLIMIT,
  IP6_SADDR,
  IPV6_HLEN,
  type Ipv6Walk,
  ipv6AddrCopy,
  ipv6IsMulticast,
  ipv6IsUnspecified,
  NEXTHDR_ICMPV6,
  writeIpv6Header,
} from "./ipv6.js";

/** RFC 4861 §6.1.2/§7.1: NDP is sent with hop limit 255 and a receiver takes nothing else (no router forwarded it). */
export const NDISC_HOPLIMIT = 255;
/** ICMPv6 header + reserved/flags + target: the fixed part of NS and NA. */
export const NDP_MSG_LEN = 24;
export const NDP_TARGET = 8;
export const NDP_FLAGS = 4;
export const ND_OPT_SOURCE_LL_ADDR = 1;
export const ND_OPT_TARGET_LL_ADDR = 2;
/** A link-layer address option for Ethernet: type, length 1 (8 bytes), 6-byte MAC. */
export const ND_OPT_LL_LEN = 8;
/** NA flags, in the byte after the checksum. */
export const NDP_NA_ROUTER = 0x80;
export const NDP_NA_SOLICITED = 0x40;
export const NDP_NA_OVERRIDE = 0x20;

/** ff02::1, the all-nodes group; 33:33:00:00:00:01, its MAC. Shared: never write into them. */
export const ALL_NODES: Uint8Array = new Uint8Array([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
export const ALL_NODES_MAC: Uint8Array = new Uint8Array([0x33, 0x33, 0, 0, 0, 1]);

export const NDP_OK = 0;
/** Not a neighbour solicitation or advertisement (router discovery, redirect, other ICMPv6...). */
export const NDP_OTHER = 1;
/** A fragmented NS/NA (RFC 6980; ndisc_rcv with suppress_frag_ndisc, the default). */
export const NDP_ERR_FRAG = 2;
export const NDP_ERR_TRUNC = 3;
export const NDP_ERR_CSUM = 4;
export const NDP_ERR_HOPLIMIT = 5;
export const NDP_ERR_CODE = 6;
/** The target is a multicast address. */
export const NDP_ERR_TARGET = 7;
/** A DAD probe (source ::) not sent to a solicited-node group. */
export const NDP_ERR_DAD_DST = 8;
/** An option of length 0 or running past the message. */
export const NDP_ERR_OPTION = 9;
/** A link-layer address option whose length is not an Ethernet address's. */
export const NDP_ERR_LLADDR = 10;
/** A DAD probe with a source link-layer address option. */
export const NDP_ERR_DAD_LLADDR = 11;
/** An advertisement to a multicast group with the solicited flag set. */
export const NDP_ERR_SOLICITED_MCAST = 12;

/** Name of every ndpParse result, indexed by code (drop counters); error names start with "err_". */
export const NDP_RESULT_NAMES: readonly string[] = [
  "ok",
  "other",
  "err_ndp_frag",
  "err_ndp_trunc",
  "err_ndp_csum",
  "err_ndp_hoplimit",
  "err_ndp_code",
  "err_ndp_target",
  "err_ndp_dad_dst",
  "err_ndp_option",
  "err_ndp_lladdr",
  "err_ndp_dad_lladdr",
  "err_ndp_solicited_mcast",
];

/** A parsed NS or NA. One instance per context, reused. */
export class NdpMsg {
  /** NDISC_NEIGHBOUR_SOLICITATION or NDISC_NEIGHBOUR_ADVERTISEMENT. */
  type = 0;
  /** NA flags (NDP_NA_*); 0 for an NS. */
  flags = 0;
  /** Offset of the 16-byte target address. */
  targetOff = 0;
  /** Offset of the MAC in the source (NS) or target (NA) link-layer address option; -1 when absent. */
  lladdrOff = -1;
  /** An NS from the unspecified address: a duplicate address detection probe. */
  dad = false;
  /** Sent to a multicast group (an NS answered with O=1 and our MAC; an NA "unsolicited"). */
  dstMulticast = false;
}

/** Is the address at off a solicited-node group ff02::1:ffXX:XXXX (ipv6_addr_is_solict_mult)? */
export function ipv6IsSolicitedNode(buf: Uint8Array, off: number): boolean {
  if (buf[off] !== 0xff || buf[off + 1] !== 2) return false;
  for (let i = 2; i < 11; i++) if (buf[off + i] !== 0) return false;
  return buf[off + 11] === 1 && buf[off + 12] === 0xff;
}

/** Writes at out[oOff] the solicited-node group of addr[aOff..]: ff02::1:ff00:0/104 + its low 24 bits (RFC 4291 §2.7.1). */
export function ndpSolicitedNode(addr: Uint8Array, aOff: number, out: Uint8Array, oOff: number): void {
  const a = addr[aOff + 13];
  const b = addr[aOff + 14];
  const c = addr[aOff + 15];
  for (let i = 0; i < 16; i++) out[oOff + i] = 0;
  out[oOff] = 0xff;
  out[oOff + 1] = 2;
  out[oOff + 11] = 1;
  out[oOff + 12] = 0xff;
  out[oOff + 13] = a;
  out[oOff + 14] = b;
  out[oOff + 15] = c;
}

/** The Ethernet MAC of an IPv6 multicast group (RFC 2464 §7): 33:33 and the group's last 32 bits. */
export function ipv6MulticastMac(group: Uint8Array, gOff: number, out: Uint8Array, oOff: number): void {
  out[oOff] = 0x33;
  out[oOff + 1] = 0x33;
  for (let i = 0; i < 4; i++) out[oOff + 2 + i] = group[gOff + 12 + i];
}

/**
 * Parses and validates the NS or NA that the walk w found (w from ipv6Walk; its ICMPv6 message is
 * w.l4Off to w.l3End) into m. The checks: unfragmented, at least 24 bytes, checksum, hop limit 255,
 * code 0, target not multicast, options of non-zero length within the message, the first link-layer
 * address option of the right kind 8 bytes long (later duplicates ignored, as the kernel does); for
 * an NS from :: (DAD), a solicited-node destination and no source link-layer address; for an NA to
 * a multicast group, S clear. Unknown options are skipped (§4.6).
 */
export function ndpParse(buf: Uint8Array, w: Ipv6Walk, m: NdpMsg): number {
  m.type = 0;
  m.flags = 0;
  m.targetOff = 0;
  m.lladdrOff = -1;
  m.dad = false;
  m.dstMulticast = false;
  const l3 = w.l3Off;
  const l4 = w.l4Off;
  const end = w.l3End;
  if (w.proto !== NEXTHDR_ICMPV6 || w.fragOffset !== 0 || l4 >= end || end > buf.length) return NDP_OTHER;
  const type = buf[l4];
  if (type !== NDISC_NEIGHBOUR_SOLICITATION && type !== NDISC_NEIGHBOUR_ADVERTISEMENT) return NDP_OTHER;
  m.type = type;
  if (w.fragment) return NDP_ERR_FRAG;
  if (end - l4 < NDP_MSG_LEN) return NDP_ERR_TRUNC;
  if (!icmpv6Verify(buf, l3, l4, end - l4)) return NDP_ERR_CSUM;
  if (buf[l3 + IP6_HOPLIMIT] !== NDISC_HOPLIMIT) return NDP_ERR_HOPLIMIT;
  if (buf[l4 + 1] !== 0) return NDP_ERR_CODE;
  m.targetOff = l4 + NDP_TARGET;
  if (ipv6IsMulticast(buf, m.targetOff)) return NDP_ERR_TARGET;
  m.dstMulticast = ipv6IsMulticast(buf, l3 + IP6_DADDR);
  const ns = type === NDISC_NEIGHBOUR_SOLICITATION;
  if (ns) {
    m.dad = ipv6IsUnspecified(buf, l3 + IP6_SADDR);
    if (m.dad && !ipv6IsSolicitedNode(buf, l3 + IP6_DADDR)) return NDP_ERR_DAD_DST;
  } else {
    m.flags = buf[l4 + NDP_FLAGS] & (NDP_NA_ROUTER | NDP_NA_SOLICITED | NDP_NA_OVERRIDE);
    if (m.dstMulticast && (m.flags & NDP_NA_SOLICITED) !== 0) return NDP_ERR_SOLICITED_MCAST;
  }
  const want = ns ? ND_OPT_SOURCE_LL_ADDR : ND_OPT_TARGET_LL_ADDR;
  let lladdrLen = 0;
  for (let o = l4 + NDP_MSG_LEN; o < end; ) {
    if (o + 2 > end) return NDP_ERR_OPTION;
    const len = buf[o + 1] << 3;
    if (len === 0 || o + len > end) return NDP_ERR_OPTION;
    if (buf[o] === want && m.lladdrOff < 0) {
      m.lladdrOff = o + 2;
      lladdrLen = len;
    }
    o += len;
  }
  if (m.lladdrOff >= 0) {
    if (lladdrLen !== ND_OPT_LL_LEN) return NDP_ERR_LLADDR;
    if (m.dad) return NDP_ERR_DAD_LLADDR;
  }
  return NDP_OK;
}

/** Addresses read before a build that may overwrite them. */
const addrScratch = new Uint8Array(48);

/**
 * Writes the IPv6 header and the NS/NA body shared by both builders at out[l3Off], hop limit 255,
 * traffic class and flow label 0 (ip6_nd_hdr); the addresses are in addrScratch (src 0, dst 16,
 * target 32). Returns the IPv6 length.
 */
function writeNdpMsg(
  out: Uint8Array,
  l3Off: number,
  type: number,
  flags: number,
  optType: number,
  mac: Uint8Array | null,
): number {
  const len = NDP_MSG_LEN + (mac === null ? 0 : ND_OPT_LL_LEN);
  if (l3Off < 0 || l3Off + IPV6_HLEN + len > out.length) return 0;
  writeIpv6Header(out, l3Off, 0, 0, len, NEXTHDR_ICMPV6, NDISC_HOPLIMIT, addrScratch, 0, addrScratch, 16);
  const l4 = l3Off + IPV6_HLEN;
  out[l4] = type;
  out[l4 + 1] = 0;
  out[l4 + ICMPV6_CHECK] = 0;
  out[l4 + ICMPV6_CHECK + 1] = 0;
  writeU32(out, l4 + NDP_FLAGS, (flags & 255) << 24);
  ipv6AddrCopy(out, l4 + NDP_TARGET, addrScratch, 32);
  if (mac !== null) {
    const o = l4 + NDP_MSG_LEN;
    out[o] = optType;
    out[o + 1] = ND_OPT_LL_LEN >>> 3;
    for (let i = 0; i < 6; i++) out[o + 2 + i] = mac[i];
  }
  const c = icmpv6Checksum(out, l3Off, l4, len);
  out[l4 + ICMPV6_CHECK] = c >>> 8;
  out[l4 + ICMPV6_CHECK + 1] = c & 255;
  return IPV6_HLEN + len;
}

function loadAddrs(
  src: Uint8Array,
  sOff: number,
  dst: Uint8Array,
  dOff: number,
  target: Uint8Array,
  tOff: number,
): void {
  ipv6AddrCopy(addrScratch, 0, src, sOff);
  ipv6AddrCopy(addrScratch, 16, dst, dOff);
  ipv6AddrCopy(addrScratch, 32, target, tOff);
}

/**
 * Writes a neighbour solicitation or advertisement (type) for target at out[l3Off], IPv6 header
 * on. An NS goes to the target's solicited-node group for resolution (ndpSolicitedNode) or to the
 * target itself for a reachability probe; its source link-layer option carries mac, and is left
 * out when mac is null or the source is :: (a DAD probe must not have one, §7.2.2). An NA has
 * `flags` (NDP_NA_*; ignored for an NS) and the target link-layer option with mac unless mac is
 * null. Returns the IPv6 length (64 or 72), or 0 when out is too small.
 */
export function writeNdp(
  out: Uint8Array,
  l3Off: number,
  type: typeof NDISC_NEIGHBOUR_SOLICITATION | typeof NDISC_NEIGHBOUR_ADVERTISEMENT,
  flags: number,
  src: Uint8Array,
  sOff: number,
  dst: Uint8Array,
  dOff: number,
  target: Uint8Array,
  tOff: number,
  mac: Uint8Array | null,
): number {
  loadAddrs(src, sOff, dst, dOff, target, tOff);
  if (type === NDISC_NEIGHBOUR_ADVERTISEMENT)
    return writeNdpMsg(out, l3Off, type, flags, ND_OPT_TARGET_LL_ADDR, mac);
  const lla = ipv6IsUnspecified(addrScratch, 0) ? null : mac;
  return writeNdpMsg(out, l3Off, NDISC_NEIGHBOUR_SOLICITATION, 0, ND_OPT_SOURCE_LL_ADDR, lla);
}

/**
 * The advertisement answering the NS m (parsed from ns with walk w) for an address we own, as
 * ndisc_recv_ns sends it: from the target address; to ff02::1 with S=0, O=1 and our MAC for a DAD
 * probe; otherwise to the solicitation's source with S=1, and O=1 plus our MAC only when the NS was
 * multicast (a unicast NS is a reachability probe: the asker has our MAC, RFC 4861 §7.2.4). R is
 * `router` (the interface forwards). The Ethernet destination is the caller's: the NS's source
 * link-layer address when it had one (ns, m.lladdrOff), else its frame's source; 33:33:00:00:00:01
 * for ff02::1. out may be ns itself. Returns the IPv6 length, or 0 when m is not an NS or out is
 * too small.
 */
export function ndpAnswerNs(
  out: Uint8Array,
  l3Off: number,
  ns: Uint8Array,
  w: Ipv6Walk,
  m: NdpMsg,
  mac: Uint8Array,
  router: boolean,
): number {
  if (m.type !== NDISC_NEIGHBOUR_SOLICITATION || m.targetOff <= 0) return 0;
  const r = router ? NDP_NA_ROUTER : 0;
  if (m.dad) {
    loadAddrs(ns, m.targetOff, ALL_NODES, 0, ns, m.targetOff);
    return writeNdpMsg(
      out,
      l3Off,
      NDISC_NEIGHBOUR_ADVERTISEMENT,
      r | NDP_NA_OVERRIDE,
      ND_OPT_TARGET_LL_ADDR,
      mac,
    );
  }
  loadAddrs(ns, m.targetOff, ns, w.l3Off + IP6_SADDR, ns, m.targetOff);
  const flags = r | NDP_NA_SOLICITED | (m.dstMulticast ? NDP_NA_OVERRIDE : 0);
  return writeNdpMsg(
    out,
    l3Off,
    NDISC_NEIGHBOUR_ADVERTISEMENT,
    flags,
    ND_OPT_TARGET_LL_ADDR,
    m.dstMulticast ? mac : null,
  );
}

/** Length of keepalived's unsolicited NA frame: Ethernet + IPv6 + NA + target link-layer option. */
export const UNSOLICITED_NA_FRAME_LEN = ETH_HLEN + IPV6_HLEN + NDP_MSG_LEN + ND_OPT_LL_LEN;

/**
 * The whole Ethernet frame of keepalived's unsolicited neighbour advertisement for addr (a VIP) at
 * out[off] (ndisc_send_unsolicited_na_immediate): 33:33:00:00:00:01 ← mac, ff02::1 ← addr, hop limit
 * 255, O=1 (and R when the interface forwards), target addr, target link-layer option mac. Returns
 * UNSOLICITED_NA_FRAME_LEN, or 0 when out is too small.
 */
export function writeUnsolicitedNa(
  out: Uint8Array,
  off: number,
  mac: Uint8Array,
  addr: Uint8Array,
  aOff: number,
  router: boolean,
): number {
  if (off < 0 || off + UNSOLICITED_NA_FRAME_LEN > out.length) return 0;
  loadAddrs(addr, aOff, ALL_NODES, 0, addr, aOff);
  writeEthHeader(out, off, ALL_NODES_MAC, mac, ETH_P_IPV6);
  const flags = NDP_NA_OVERRIDE | (router ? NDP_NA_ROUTER : 0);
  return (
    ETH_HLEN +
    writeNdpMsg(out, off + ETH_HLEN, NDISC_NEIGHBOUR_ADVERTISEMENT, flags, ND_OPT_TARGET_LL_ADDR, mac)
  );
}
