// Frame parser: Ethernet II (802.1Q / 802.1ad tags skipped), ARP, IPv4 (options, fragments),
// IPv6 (extension headers, fragments), TCP, UDP, ICMP and ICMPv6 (with the packet embedded in
// errors) into one reusable Flow.
//
// The IPv4 checks are ip_rcv_core's (version, IHL, header checksum, total length within the frame
// and not below the header; bytes after the datagram are link padding). IPv6 is packet/ipv6.ts's
// walk (ipv6_rcv's version and payload length, ipv6_find_hdr's chain, ipv6_frag_rcv's fragment
// rules), done into the Flow itself. L4 checksums are not verified, as the IPVS forwarding path
// does not verify them either. Never throws, allocates nothing: every read is preceded by a bounds
// check against the frame length.

import { ipv6Fold, ipv6ToWords, readU16, readU32 } from "../addr.js";
import { csumAdd, csumFold } from "./csum.js";
import { ETH_HLEN } from "./eth.js";
import {
  ETH_P_8021AD,
  ETH_P_8021Q,
  ETH_P_ARP,
  ETH_P_IP,
  ETH_P_IPV6,
  FLOW_G_ARP,
  FLOW_G_ICMP,
  FLOW_G_IP,
  FLOW_G_IP6,
  FLOW_G_L4,
  type Flow,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
} from "./flow.js";
import { ICMP_ECHO, ICMP_ECHOREPLY, ICMP_HLEN, icmpIsError } from "./icmp.js";
import {
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_HLEN,
  ICMPV6_INNER_OK,
  Icmpv6Inner,
  icmpv6Inner,
  icmpv6IsError,
} from "./icmpv6.js";
import { IP_MF, IP_OFFMASK, IPV4_HLEN } from "./ipv4.js";
import { IP6_DADDR, IP6_OK, IP6_RESULT_NAMES, IP6_SADDR, ipv6Walk, NEXTHDR_ICMPV6 } from "./ipv6.js";
import { TCP_HLEN } from "./tcp.js";
import { UDP_HLEN } from "./udp.js";

export const PARSE_OK = 0;
export const PARSE_ARP = 1;
/** Well formed but not for the IPv4 data path (IPv6, LLDP, 802.3/LLC, non-Ethernet/IPv4 ARP...). */
export const PARSE_OTHER = 2;
export const PARSE_ERR_ETH_TRUNC = 3;
export const PARSE_ERR_VLAN_TRUNC = 4;
export const PARSE_ERR_ARP_TRUNC = 5;
export const PARSE_ERR_IP_TRUNC = 6;
export const PARSE_ERR_IP_VERSION = 7;
export const PARSE_ERR_IP_IHL = 8;
export const PARSE_ERR_IP_CSUM = 9;
export const PARSE_ERR_IP_TOTLEN = 10;
export const PARSE_ERR_TCP_TRUNC = 11;
export const PARSE_ERR_TCP_DOFF = 12;
export const PARSE_ERR_UDP_TRUNC = 13;
export const PARSE_ERR_UDP_LEN = 14;
export const PARSE_ERR_ICMP_TRUNC = 15;
/** IPv6 header and extension-header errors: 15 + the walk's IP6_ERR_* code (16..23). */
const PARSE_IP6_BASE = 15;
export const PARSE_ERR_IP6_TRUNC = 16;
export const PARSE_ERR_IP6_VERSION = 17;
export const PARSE_ERR_IP6_PLEN = 18;
export const PARSE_ERR_IP6_EXT_TRUNC = 19;
export const PARSE_ERR_IP6_HOP_ORDER = 20;
export const PARSE_ERR_IP6_EXT_MANY = 21;
export const PARSE_ERR_IP6_FRAG_LEN = 22;
export const PARSE_ERR_IP6_FRAG_HDRS = 23;
export const PARSE_ERR_ICMP6_TRUNC = 24;

/** Name of every result code, indexed by code (drop counters); error names start with "err_". */
export const PARSE_RESULT_NAMES: readonly string[] = [
  "ok",
  "arp",
  "other",
  "err_eth_trunc",
  "err_vlan_trunc",
  "err_arp_trunc",
  "err_ip_trunc",
  "err_ip_version",
  "err_ip_ihl",
  "err_ip_csum",
  "err_ip_totlen",
  "err_tcp_trunc",
  "err_tcp_doff",
  "err_udp_trunc",
  "err_udp_len",
  "err_icmp_trunc",
  // err_ip6_trunc .. err_ip6_frag_hdrs, in the walk's order.
  ...IP6_RESULT_NAMES.slice(1),
  "err_icmp6_trunc",
];

/** Back to the defaults of a fresh Flow: the fields of `groups` (FLOW_G_*). */
function clearGroups(f: Flow, groups: number): void {
  if ((groups & FLOW_G_IP) !== 0) {
    f.l4Off = 0;
    f.payloadOff = 0;
    f.proto = 0;
    f.saddr = 0;
    f.daddr = 0;
    f.ttl = 0;
    f.tos = 0;
    f.ipId = 0;
    f.df = false;
    f.fragment = false;
    f.firstFragment = false;
  }
  if ((groups & FLOW_G_L4) !== 0) {
    f.sport = 0;
    f.dport = 0;
    f.tcpFlags = 0;
    f.tcpSeq = 0;
    f.tcpAck = 0;
  }
  if ((groups & FLOW_G_ICMP) !== 0) {
    f.icmpType = 0;
    f.icmpCode = 0;
    f.icmpId = 0;
    f.hasInner = false;
    f.innerL3Off = 0;
    f.innerL4Off = 0;
    f.innerProto = 0;
    f.innerSaddr = 0;
    f.innerDaddr = 0;
    f.innerSport = 0;
    f.innerDport = 0;
    f.innerHasPorts = false;
    f.innerS6.fill(0);
    f.innerD6.fill(0);
  }
  if ((groups & FLOW_G_IP6) !== 0) {
    f.s6.fill(0);
    f.d6.fill(0);
    f.protoOff = 0;
    f.extCount = 0;
    f.routingOff = -1;
    f.fragHdrOff = -1;
    f.fragOffset = 0;
    f.fragMore = false;
    f.fragId = 0;
  }
  if ((groups & FLOW_G_ARP) !== 0) {
    f.arpOp = 0;
    f.arpSpa = 0;
    f.arpTpa = 0;
  }
}

/**
 * Parses the frame buf[0, len) into flow (every field reset first) and returns a PARSE_* code.
 * len is clamped to buf.length. ICMP errors whose embedded header is unusable (truncated, not
 * IPv4) still parse as PARSE_OK, with hasInner false: ip_vs_in_icmp also lets them pass.
 */
export function parseFrame(buf: Uint8Array, len: number, flow: Flow, ifindex: number): number {
  if (!(len > 0)) len = 0;
  else if (len > buf.length) len = buf.length;
  else len = Math.floor(len);
  // The frame fields are always reset; a field group only when the last parse left it
  // written and this one does not write it whole (parseEth reports what it wrote in
  // flow.groups). Every field ends as a fresh Flow's, or as parsed.
  const stale = flow.groups;
  flow.buf = buf;
  flow.len = len;
  flow.ifindex = ifindex;
  flow.fwmark = 0;
  flow.af = 4;
  flow.ethType = 0;
  flow.vlan = -1;
  flow.l3Off = 0;
  flow.l3End = 0;
  flow.groups = 0;
  const r = parseEth(buf, len, flow);
  const clear = stale & ~flow.groups;
  if (clear !== 0) clearGroups(flow, clear);
  return r;
}

function parseEth(buf: Uint8Array, len: number, flow: Flow): number {
  if (len < ETH_HLEN) return PARSE_ERR_ETH_TRUNC;
  let off = 12;
  let type = readU16(buf, off);
  while (type === ETH_P_8021Q || type === ETH_P_8021AD) {
    if (off + 6 > len) return PARSE_ERR_VLAN_TRUNC;
    // The outermost tag is kept: it is the one the attached switch port acts on.
    if (flow.vlan < 0) flow.vlan = readU16(buf, off + 2);
    off += 4;
    type = readU16(buf, off);
  }
  off += 2;
  flow.ethType = type;
  flow.l3Off = off;
  if (type === ETH_P_IP) return parseIpv4(buf, len, off, flow);
  if (type === ETH_P_ARP) return parseArp(buf, len, off, flow);
  if (type === ETH_P_IPV6 && flow.acceptIpv6) return parseIpv6(buf, len, off, flow);
  return PARSE_OTHER;
}

function parseArp(buf: Uint8Array, len: number, off: number, f: Flow): number {
  if (off + 8 > len) return PARSE_ERR_ARP_TRUNC;
  // Ethernet hardware (1), IPv4 protocol, 6-byte and 4-byte addresses: anything else is not ours.
  if (
    readU16(buf, off) !== 1 ||
    readU16(buf, off + 2) !== ETH_P_IP ||
    buf[off + 4] !== 6 ||
    buf[off + 5] !== 4
  ) {
    return PARSE_OTHER;
  }
  if (off + 28 > len) return PARSE_ERR_ARP_TRUNC;
  f.arpOp = readU16(buf, off + 6);
  f.arpSpa = readU32(buf, off + 14);
  f.arpTpa = readU32(buf, off + 24);
  f.groups |= FLOW_G_ARP;
  f.l3End = off + 28;
  return PARSE_ARP;
}

function parseIpv4(buf: Uint8Array, len: number, l3: number, f: Flow): number {
  if (l3 + IPV4_HLEN > len) return PARSE_ERR_IP_TRUNC;
  const vihl = buf[l3];
  if (vihl >>> 4 !== 4) return PARSE_ERR_IP_VERSION;
  const hlen = (vihl & 15) << 2;
  if (hlen < IPV4_HLEN) return PARSE_ERR_IP_IHL;
  if (l3 + hlen > len) return PARSE_ERR_IP_TRUNC;
  // Every header word is read once into a local before any Flow field is written: a store to
  // the Flow may alias (for the compiler) the typed array's own fields, and interleaving reads
  // and stores makes it reload the buffer's data pointer and length for every byte read.
  const tos = buf[l3 + 1];
  const totLen = (buf[l3 + 2] << 8) | buf[l3 + 3];
  const ipId = (buf[l3 + 4] << 8) | buf[l3 + 5];
  const frag = (buf[l3 + 6] << 8) | buf[l3 + 7];
  const ttl = buf[l3 + 8];
  const proto = buf[l3 + 9];
  const check = (buf[l3 + 10] << 8) | buf[l3 + 11];
  const saddr = (buf[l3 + 12] << 24) | (buf[l3 + 13] << 16) | (buf[l3 + 14] << 8) | buf[l3 + 15];
  const daddr = (buf[l3 + 16] << 24) | (buf[l3 + 17] << 16) | (buf[l3 + 18] << 8) | buf[l3 + 19];
  // The common 20-byte header summed from those words (bounds were checked above).
  const hsum =
    hlen === IPV4_HLEN
      ? ((vihl << 8) | tos) +
        totLen +
        ipId +
        frag +
        ((ttl << 8) | proto) +
        check +
        (saddr >>> 16) +
        (saddr & 0xffff) +
        (daddr >>> 16) +
        (daddr & 0xffff)
      : csumAdd(buf, l3, hlen);
  if (csumFold(hsum) !== 0xffff) return PARSE_ERR_IP_CSUM;
  if (totLen < hlen || l3 + totLen > len) return PARSE_ERR_IP_TOTLEN;
  const end = l3 + totLen;
  const l4 = l3 + hlen;
  const fragOff = frag & IP_OFFMASK;
  const fragment = fragOff !== 0 || (frag & IP_MF) !== 0;
  f.l3End = end;
  f.tos = tos;
  f.ipId = ipId;
  f.df = (frag & 0x4000) !== 0;
  f.ttl = ttl;
  f.proto = proto;
  f.saddr = saddr >>> 0;
  f.daddr = daddr >>> 0;
  f.fragment = fragment;
  f.firstFragment = fragment && fragOff === 0;
  f.l4Off = l4;
  f.payloadOff = l4;
  f.groups |= FLOW_G_IP;
  // Only the first fragment carries the transport header.
  if (fragOff !== 0) return PARSE_OK;

  if (proto === IPPROTO_TCP) return parseTcp(buf, l4, end, f);
  if (proto === IPPROTO_UDP) return parseUdp(buf, l4, end, f);
  if (proto === IPPROTO_ICMP) {
    if (l4 + ICMP_HLEN > end) return PARSE_ERR_ICMP_TRUNC;
    const t = icmpHeader(buf, l4, f);
    if (t === ICMP_ECHO || t === ICMP_ECHOREPLY) f.icmpId = readU16(buf, l4 + 4);
    else if (icmpIsError(t) && !f.fragment) parseInner(buf, l4 + ICMP_HLEN, end, f);
    return PARSE_OK;
  }
  return PARSE_OK;
}

/**
 * The 8-byte ICMP or ICMPv6 header at l4 (checked to be there): type, code, payload offset; the
 * type is returned. ICMP is rare: the group is reset whole here rather than tracked field by field.
 */
function icmpHeader(buf: Uint8Array, l4: number, f: Flow): number {
  clearGroups(f, FLOW_G_ICMP);
  f.groups |= FLOW_G_ICMP;
  const t = buf[l4];
  f.icmpType = t;
  f.icmpCode = buf[l4 + 1];
  f.payloadOff = l4 + ICMP_HLEN;
  return t;
}

/** The datagram quoted by an ICMP error; its checksum and total length are not checked (quoted). */
function parseInner(buf: Uint8Array, il3: number, end: number, f: Flow): void {
  if (il3 + IPV4_HLEN > end) return;
  const vihl = buf[il3];
  const ihlen = (vihl & 15) << 2;
  if (vihl >>> 4 !== 4 || ihlen < IPV4_HLEN || il3 + ihlen > end) return;
  f.hasInner = true;
  f.innerL3Off = il3;
  const il4 = il3 + ihlen;
  f.innerL4Off = il4;
  const p = buf[il3 + 9];
  f.innerProto = p;
  f.innerSaddr = readU32(buf, il3 + 12);
  f.innerDaddr = readU32(buf, il3 + 16);
  const innerFragOff = readU16(buf, il3 + 6) & IP_OFFMASK;
  if ((p === IPPROTO_TCP || p === IPPROTO_UDP) && innerFragOff === 0 && il4 + 8 <= end) {
    f.innerHasPorts = true;
    f.innerSport = readU16(buf, il4);
    f.innerDport = readU16(buf, il4 + 2);
  }
}

/** The TCP header at l4 (either family). */
function parseTcp(buf: Uint8Array, l4: number, end: number, f: Flow): number {
  if (l4 + TCP_HLEN > end) return PARSE_ERR_TCP_TRUNC;
  const thlen = (buf[l4 + 12] >>> 4) << 2;
  if (thlen < TCP_HLEN || l4 + thlen > end) return PARSE_ERR_TCP_DOFF;
  const sport = (buf[l4] << 8) | buf[l4 + 1];
  const dport = (buf[l4 + 2] << 8) | buf[l4 + 3];
  const seq = (buf[l4 + 4] << 24) | (buf[l4 + 5] << 16) | (buf[l4 + 6] << 8) | buf[l4 + 7];
  const ack = (buf[l4 + 8] << 24) | (buf[l4 + 9] << 16) | (buf[l4 + 10] << 8) | buf[l4 + 11];
  const flags = buf[l4 + 13];
  f.sport = sport;
  f.dport = dport;
  f.tcpSeq = seq >>> 0;
  f.tcpAck = ack >>> 0;
  f.tcpFlags = flags;
  f.payloadOff = l4 + thlen;
  f.groups |= FLOW_G_L4;
  return PARSE_OK;
}

/** The UDP header at l4 (either family); f.fragment is already set. */
function parseUdp(buf: Uint8Array, l4: number, end: number, f: Flow): number {
  if (l4 + UDP_HLEN > end) return PARSE_ERR_UDP_TRUNC;
  const ulen = readU16(buf, l4 + 4);
  // A first fragment's UDP length covers the whole reassembled datagram.
  if (ulen < UDP_HLEN || (!f.fragment && l4 + ulen > end)) return PARSE_ERR_UDP_LEN;
  f.sport = readU16(buf, l4);
  f.dport = readU16(buf, l4 + 2);
  f.tcpFlags = 0;
  f.tcpSeq = 0;
  f.tcpAck = 0;
  f.payloadOff = l4 + UDP_HLEN;
  f.groups |= FLOW_G_L4;
  return PARSE_OK;
}

/** Where icmpv6Inner walks the packet an ICMPv6 error quotes (parseFrame only; not reentrant). */
const quoted6 = new Icmpv6Inner();

function parseIpv6(buf: Uint8Array, len: number, l3: number, f: Flow): number {
  // The Flow has an Ipv6Walk's fields: the walk fills l3End, proto, l4Off, the fragment facts.
  f.af = 6;
  const r = ipv6Walk(buf, l3, len, f);
  if (r !== IP6_OK) {
    // Back to a fresh Flow's values (the walk wrote some before it failed), as an IPv4 error leaves them.
    clearGroups(f, FLOW_G_IP | FLOW_G_IP6);
    f.l3End = 0;
    return PARSE_IP6_BASE + r;
  }
  f.groups |= FLOW_G_IP | FLOW_G_IP6;
  ipv6ToWords(buf, l3 + IP6_SADDR, f.s6, 0);
  ipv6ToWords(buf, l3 + IP6_DADDR, f.d6, 0);
  f.saddr = ipv6Fold(f.s6);
  f.daddr = ipv6Fold(f.d6);
  f.tos = ((buf[l3] & 15) << 4) | (buf[l3 + 1] >>> 4);
  f.ttl = buf[l3 + 7];
  f.ipId = 0;
  f.df = true;
  const l4 = f.l4Off;
  const end = f.l3End;
  f.payloadOff = l4;
  // A non-first fragment stops the walk at its header: nothing after it is a header.
  if (f.fragOffset !== 0) return PARSE_OK;
  const proto = f.proto;
  if (proto === IPPROTO_TCP) return parseTcp(buf, l4, end, f);
  if (proto === IPPROTO_UDP) return parseUdp(buf, l4, end, f);
  if (proto === NEXTHDR_ICMPV6) {
    if (l4 + ICMPV6_HLEN > end) return PARSE_ERR_ICMP6_TRUNC;
    const t = icmpHeader(buf, l4, f);
    if (t === ICMPV6_ECHO_REQUEST || t === ICMPV6_ECHO_REPLY) f.icmpId = readU16(buf, l4 + 4);
    else if (icmpv6IsError(t) && !f.fragment) parseInner6(buf, f);
  }
  return PARSE_OK;
}

/**
 * The packet quoted by an ICMPv6 error, as ip_vs_in_icmp_v6 reads it: its extension headers
 * walked within the quote, and its ports when 4 bytes of them are there. A cut or malformed quote
 * leaves hasInner false (IPVS ignores such an error).
 */
function parseInner6(buf: Uint8Array, f: Flow): void {
  const q = quoted6;
  if (icmpv6Inner(buf, f, q) !== ICMPV6_INNER_OK) return;
  const il3 = q.l3Off;
  f.hasInner = true;
  f.innerL3Off = il3;
  f.innerL4Off = q.l4Off;
  f.innerProto = q.proto;
  ipv6ToWords(buf, il3 + IP6_SADDR, f.innerS6, 0);
  ipv6ToWords(buf, il3 + IP6_DADDR, f.innerD6, 0);
  f.innerSaddr = ipv6Fold(f.innerS6);
  f.innerDaddr = ipv6Fold(f.innerD6);
  if (q.hasPorts) {
    f.innerHasPorts = true;
    f.innerSport = q.sport;
    f.innerDport = q.dport;
  }
}
