// RFC 7915 (SIIT) header translation for NAT64, as DPVS's FULLNAT does it for an IPv6 service with
// IPv4 real servers (mbuf_6to4 / mbuf_4to6 in dpvs src/ipvs/ip_vs_nat64.c): the IP header is
// replaced, the transport header and payload stay where they are.
//
// IPv6 → IPv4 happens in place: the 20-byte IPv4 header is written over the last bytes of the IPv6
// header (and any extension headers, which RFC 7915 §5.1 drops), right before the transport
// header, so nothing moves. IPv4 → IPv6 needs 20 more bytes in front of the transport header than
// a frame at the start of its buffer has: the transport part is copied to `room` (the engine's
// scratch buffer) behind a fresh IPv6 header.
//
// TCP and UDP datagrams (nat64ToIpv4, nat64ToIpv6): the transport checksum is updated
// incrementally (RFC 1624): the pseudo-header's length and protocol are the same in both families,
// so only the addresses and the rewritten ports change the sum; a UDP datagram from IPv4 without a
// checksum (0) gets one computed in full, IPv6 requiring it. Fragments are not translated (the
// engine does not reassemble, and a lone first fragment could never be reassembled by its
// receiver: xmit/fullnat.ts drops them, counted nat64_fragment).
//
// Beside them (below): DPVS's MSS adjustment of the SYN-ACK (nat64ClampMss); RFC 7915 §4.1's
// fragmentation of an IPv4 datagram without DF that is too big for 1280 bytes of IPv6
// (nat64Fragment6); the ICMP error translations both ways with the quoted packet translated back to
// what its sender sent (nat64IcmpToIcmpv6, nat64IcmpToIcmpv4, RFC 7915 §4.2-4.3 / §5.2-5.3).

import { ipv6Fold, readU16, readU32, writeU16, writeU32 } from "../addr.js";
import { moveBytes } from "./bytes.js";
import { csumAdd, csumFinish, csumFold, l4ChecksumV6 } from "./csum.js";
import { type Flow, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from "./flow.js";
import {
  ICMP_DEST_UNREACH,
  ICMP_ERR_MAX,
  ICMP_FRAG_NEEDED,
  ICMP_HLEN,
  ICMP_HOST_UNREACH,
  ICMP_PARAMETERPROB,
  ICMP_PORT_UNREACH,
  ICMP_PROT_UNREACH,
  ICMP_TIME_EXCEEDED,
} from "./icmp.js";
import {
  ICMPV6_ADDR_UNREACH,
  ICMPV6_ADM_PROHIBITED,
  ICMPV6_DEST_UNREACH,
  ICMPV6_HDR_FIELD,
  ICMPV6_HLEN,
  ICMPV6_INNER_OK,
  ICMPV6_NOROUTE,
  ICMPV6_NOT_NEIGHBOUR,
  ICMPV6_PARAMPROB,
  ICMPV6_PKT_TOOBIG,
  ICMPV6_PORT_UNREACH,
  ICMPV6_TIME_EXCEED,
  ICMPV6_UNK_NEXTHDR,
  Icmpv6Inner,
  icmpv6Inner,
  icmpv6Verify,
} from "./icmpv6.js";
import { IP_DF, IP_MF, IP_OFFMASK, IP_SADDR, IPV4_HLEN, writeIpv4Header } from "./ipv4.js";
import {
  IP6_DADDR,
  IP6_HOPLIMIT,
  IP6_NEXTHDR,
  IP6_SADDR,
  IPV6_HLEN,
  IPV6_MIN_MTU,
  NEXTHDR_FRAGMENT,
  NEXTHDR_ICMPV6,
} from "./ipv6.js";
import { tcpGetMss, tcpSetMss } from "./tcp.js";
import { VNET_GSO_ECN, VNET_GSO_TCPV4, VNET_GSO_TCPV6 } from "./vnet.js";

const ETH_HLEN = 14;

/** The transport checksum field's offset in the header, -1 for a protocol that is not translated. */
function checkField(proto: number): number {
  if (proto === IPPROTO_TCP) return 16;
  if (proto === IPPROTO_UDP) return 6;
  return -1;
}

/**
 * RFC 1624 eqn. 3 for several words at once: the field after words summing to oldSum (unfolded)
 * became words summing to newSum.
 */
function csumSwap(check: number, oldSum: number, newSum: number): number {
  return ~csumFold((~check & 0xffff) + (~csumFold(oldSum) & 0xffff) + newSum) & 0xffff;
}

/** An aggregate's gso_type in the other family (TCPV4 ↔ TCPV6; UDP_L4 is family-free). */
function regso(gt: number, to6: boolean): number {
  const t = gt & ~VNET_GSO_ECN;
  if (to6 && t === VNET_GSO_TCPV4) return (gt & VNET_GSO_ECN) | VNET_GSO_TCPV6;
  if (!to6 && t === VNET_GSO_TCPV6) return (gt & VNET_GSO_ECN) | VNET_GSO_TCPV4;
  return gt;
}

/**
 * Translates the IPv6 TCP/UDP datagram in f to IPv4 in place, from saddr:sport to daddr:dport
 * (int32 bits of the addresses): traffic class → TOS, hop limit → TTL (the forwarding step
 * already took its decrement), DF set and ID 0 (RFC 7915 §5.1 allows 0 with DF). f then describes
 * the IPv4 datagram (l3Off moved forward). False, nothing changed, for a fragment or another
 * protocol.
 */
export function nat64ToIpv4(f: Flow, saddr: number, sport: number, daddr: number, dport: number): boolean {
  const cf = checkField(f.proto);
  if (cf < 0 || f.fragment) return false;
  const buf = f.buf;
  const l3 = f.l3Off;
  const l4 = f.l4Off;
  const o = l4 - IPV4_HLEN;
  if (o < ETH_HLEN) return false;
  const check = l4 + cf;
  const oldSum = csumAdd(buf, l3 + IP6_SADDR, 32) + readU16(buf, l4) + readU16(buf, l4 + 2);
  const newSum = (saddr >>> 16) + (saddr & 0xffff) + (daddr >>> 16) + (daddr & 0xffff) + sport + dport;
  const ttl = buf[l3 + IP6_HOPLIMIT];
  const tos = ((buf[l3] & 0x0f) << 4) | (buf[l3 + 1] >>> 4);
  // The checksum first: the IPv4 header overwrites the IPv6 addresses it reads.
  if (!(f.csumPartial && f.gsoType !== 0)) {
    let c = csumSwap(readU16(buf, check), oldSum, newSum);
    if (f.proto === IPPROTO_UDP && c === 0) c = 0xffff;
    writeU16(buf, check, c);
  }
  writeU16(buf, l4, sport);
  writeU16(buf, l4 + 2, dport);
  writeIpv4Header(buf, o, tos, f.l3End - o, 0, IP_DF, ttl, f.proto, saddr, daddr);
  f.af = 4;
  f.l3Off = o;
  f.saddr = saddr >>> 0;
  f.daddr = daddr >>> 0;
  f.sport = sport;
  f.dport = dport;
  f.ttl = ttl;
  f.tos = tos;
  f.ipId = 0;
  f.df = true;
  f.hasInner = false;
  f.gsoType = regso(f.gsoType, false);
  return true;
}

/**
 * Translates the IPv4 TCP/UDP datagram in f to IPv6 from s6:sport to d6:dport (four words each,
 * at sOff and dOff of their arrays): TOS → traffic class, TTL → hop limit, flow label 0. The
 * transport part moves to room[ETH_HLEN + 40] (f.buf becomes room) when f.buf has no 20 bytes to
 * spare in front of it. False, nothing changed, for a fragment or another protocol.
 */
export function nat64ToIpv6(
  f: Flow,
  room: Uint8Array,
  s6: Int32Array,
  sOff: number,
  sport: number,
  d6: Int32Array,
  dOff: number,
  dport: number,
): boolean {
  const cf = checkField(f.proto);
  if (cf < 0 || f.fragment) return false;
  let buf = f.buf;
  let l4 = f.l4Off;
  const l3 = f.l3Off;
  const l4Len = f.l3End - l4;
  const ttl = buf[l3 + 8];
  const tos = buf[l3 + 1];
  const oldSum = csumAdd(buf, l3 + IP_SADDR, 8) + readU16(buf, l4) + readU16(buf, l4 + 2);
  if (l4 - IPV6_HLEN < ETH_HLEN) {
    const to = ETH_HLEN + IPV6_HLEN;
    if (to + l4Len > room.length) return false;
    room.set(buf.subarray(l4, f.l3End), to);
    buf = room;
    f.buf = room;
    f.payloadOff += to - l4;
    l4 = to;
  }
  const o = l4 - IPV6_HLEN;
  buf[o] = 0x60 | (tos >>> 4);
  buf[o + 1] = (tos & 0x0f) << 4;
  buf[o + 2] = 0;
  buf[o + 3] = 0;
  writeU16(buf, o + 4, l4Len);
  buf[o + 6] = f.proto;
  buf[o + 7] = ttl;
  let newSum = sport + dport;
  for (let k = 0; k < 4; k++) {
    const sw = s6[sOff + k];
    const dw = d6[dOff + k];
    f.s6[k] = sw;
    f.d6[k] = dw;
    newSum += (sw >>> 16) + (sw & 0xffff) + (dw >>> 16) + (dw & 0xffff);
    writeU16(buf, o + 8 + 4 * k, sw >>> 16);
    writeU16(buf, o + 10 + 4 * k, sw & 0xffff);
    writeU16(buf, o + 24 + 4 * k, dw >>> 16);
    writeU16(buf, o + 26 + 4 * k, dw & 0xffff);
  }
  const check = l4 + cf;
  const old = readU16(buf, check);
  writeU16(buf, l4, sport);
  writeU16(buf, l4 + 2, dport);
  if (!(f.csumPartial && f.gsoType !== 0)) {
    // udp_snat_handler over IPv6: no checksum is no option, it is computed in full.
    if (f.proto === IPPROTO_UDP && old === 0) {
      writeU16(buf, check, 0);
      writeU16(buf, check, l4ChecksumV6(buf, o, l4, l4Len, IPPROTO_UDP));
    } else {
      let c = csumSwap(old, oldSum, newSum);
      if (f.proto === IPPROTO_UDP && c === 0) c = 0xffff;
      writeU16(buf, check, c);
    }
  }
  f.af = 6;
  f.l3Off = o;
  f.l4Off = l4;
  f.l3End = l4 + l4Len;
  f.protoOff = o + 6;
  f.extCount = 0;
  f.routingOff = -1;
  f.fragHdrOff = -1;
  f.saddr = ipv6Fold(f.s6);
  f.daddr = ipv6Fold(f.d6);
  f.sport = sport;
  f.dport = dport;
  f.ttl = ttl;
  f.tos = tos;
  f.df = true;
  f.hasInner = false;
  f.gsoType = regso(f.gsoType, true);
  return true;
}

// ------------------------------------------------------------------ MSS, fragments, ICMP errors

/**
 * DPVS's tcp_out_adjust_mss (ip_vs_proto_tcp.c, tcp_fnat_out_handler): the SYN-ACK a FULLNAT
 * connection's real server sends toward the client has its MSS option lowered by the length of the
 * TOA option the client's family takes (TCP_OLEN_IP6_ADDR, 20, for NAT64's IPv6 client), so that a
 * full-sized segment from the client still has room for TOA. Nothing is done to the SYN toward the
 * real server (DPVS does nothing there either). The checksum is fixed incrementally (tcpSetMss).
 */
export const NAT64_MSS_DELTA = 20;
/** The kernel's TCP_MIN_MSS: an MSS that would fall below it is left alone. */
const TCP_MIN_MSS = 88;

/** Lowers the MSS option of the TCP segment f describes by NAT64_MSS_DELTA; false when none is changed. */
export function nat64ClampMss(f: Flow): boolean {
  const m = tcpGetMss(f.buf, f.l4Off);
  if (m - NAT64_MSS_DELTA < TCP_MIN_MSS) return false;
  return tcpSetMss(f.buf, f, m - NAT64_MSS_DELTA);
}

/**
 * RFC 7915 §4.1: an IPv4 datagram without DF whose IPv6 translation exceeds 1280 bytes (the
 * minimum IPv6 MTU: the IPv6 path beyond the next hop is unknown) is sent as IPv6 fragments of at
 * most 1280 bytes, each with a Fragment Header. The RFC's administrator knob for a larger threshold
 * is not offered: 1280 always.
 */
export const NAT64_FRAG_MTU = IPV6_MIN_MTU;
const FRAG_HLEN = 8;
/** The data of every fragment but the last: 1280 − 40 − 8 = 1232 bytes, a multiple of 8. */
const FRAG_DATA = NAT64_FRAG_MTU - IPV6_HLEN - FRAG_HLEN;

/** How many fragments nat64Fragment6 cuts the IPv6 packet buf[l3, end) (no extension headers) into. */
export function nat64FragmentCount(l3: number, end: number): number {
  const data = end - l3 - IPV6_HLEN;
  return data <= 0 ? 0 : Math.ceil(data / FRAG_DATA);
}

/**
 * Writes fragment k of the IPv6 packet src[l3, end) (a fixed header right before its upper-layer
 * header, as nat64ToIpv6 leaves it) at out[o3]: the header with next header 44 and its payload
 * length, the Fragment Header (next header the packet's, offset, M, identification `id`: RFC 7915
 * §4.1's low-order 16 bits of the IPv4 Identification, high-order bits 0), then FRAG_DATA bytes of
 * the upper-layer data (fewer in the last). Returns the fragment's length, 0 when out is too small.
 */
export function nat64Fragment6(
  out: Uint8Array,
  o3: number,
  src: Uint8Array,
  l3: number,
  end: number,
  id: number,
  k: number,
): number {
  const first = l3 + IPV6_HLEN;
  const off = k * FRAG_DATA;
  let n = end - first - off;
  if (n <= 0) return 0;
  const more = n > FRAG_DATA;
  if (more) n = FRAG_DATA;
  const len = IPV6_HLEN + FRAG_HLEN + n;
  if (o3 + len > out.length || end > src.length) return 0;
  for (let i = 0; i < IPV6_HLEN; i++) out[o3 + i] = src[l3 + i];
  writeU16(out, o3 + 4, FRAG_HLEN + n);
  out[o3 + 6] = NEXTHDR_FRAGMENT;
  const fh = o3 + IPV6_HLEN;
  out[fh] = src[l3 + 6];
  out[fh + 1] = 0;
  writeU16(out, fh + 2, off | (more ? 1 : 0));
  writeU32(out, fh + 4, id & 0xffff);
  moveBytes(out, fh + FRAG_HLEN, src, first + off, n);
  return len;
}

/** RFC 1191 §7's plateau table, largest first (RFC 7915 §4.2: frag-needed with an MTU of 0). */
const MTU_PLATEAUS = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

/**
 * RFC 7915 §4.2's MTU of the packet too big a frag-needed becomes: max(1280, min(advertised + 20,
 * the IPv6 next hop's MTU, the IPv4 next hop's MTU + 20)); an advertised 0 (a router without RFC
 * 1191) is the greatest plateau below the quoted datagram's total length. A next hop's MTU of 0
 * (unknown) takes no part.
 */
export function nat64PtbMtu(advertised: number, totLen: number, mtu6: number, mtu4: number): number {
  let m = advertised;
  if (m === 0) {
    m = 68;
    for (const p of MTU_PLATEAUS)
      if (p < totLen) {
        m = p;
        break;
      }
  }
  m += IPV4_HLEN;
  if (mtu6 > 0 && mtu6 < m) m = mtu6;
  if (mtu4 > 0 && mtu4 + IPV4_HLEN < m) m = mtu4 + IPV4_HLEN;
  return m < IPV6_MIN_MTU ? IPV6_MIN_MTU : m;
}

/**
 * RFC 7915 §5.2's MTU of the frag-needed a packet too big becomes: min(advertised − 20 (− 28 when
 * the packet in error had a Fragment Header), the IPv4 next hop's MTU, the IPv6 next hop's MTU −
 * 20). An advertised MTU below 1280 is taken as 1280, as the IPv6 stack receiving it would (RFC
 * 8201 §4); a next hop's MTU of 0 (unknown) takes no part. At most 65535 (the field is 16 bits).
 */
export function nat64FragNeededMtu(
  advertised: number,
  hadFragHdr: boolean,
  mtu4: number,
  mtu6: number,
): number {
  let m = advertised < IPV6_MIN_MTU ? IPV6_MIN_MTU : advertised > 0xffff ? 0xffff : advertised;
  m -= hadFragHdr ? IPV4_HLEN + FRAG_HLEN : IPV4_HLEN;
  if (mtu4 > 0 && mtu4 < m) m = mtu4;
  if (mtu6 > 0 && mtu6 - IPV4_HLEN < m) m = mtu6 - IPV4_HLEN;
  return m;
}

// The results of the ICMP error translations below besides a length (> 0).
/** No counterpart in the other family (RFC 7915 §4.2/§5.2 "silently drop"). */
export const NAT64_ICMP_UNTRANSLATABLE = 0;
/** The error's own checksum is wrong: a corrupted error is not made into a valid one. */
export const NAT64_ICMP_CSUM = -1;
/** The quoted packet cannot be the connection's (a non-first fragment, a broken header, too short). */
export const NAT64_ICMP_QUOTE = -2;

/** RFC 7915 Figure 3: an ICMPv4 parameter problem's pointer into the IPv4 header → into IPv6's. */
const ptr4to6 = [0, 1, 4, 4, -1, -1, -1, -1, 7, 6, -1, -1, 8, 8, 8, 8, 24, 24, 24, 24];
/** The 32-bit word after the checksum that the last nat64MapIcmp4/6 computed (a pointer), else 0. */
let mappedInfo = 0;

/**
 * ICMPv4 → ICMPv6 type and code (RFC 7915 §4.2): (type << 8) | code, or -1 for "silently drop";
 * a parameter problem's pointer goes to nat64MappedInfo(). Frag-needed (3/4) maps to packet too
 * big, whose MTU the caller computes (nat64PtbMtu).
 */
export function nat64MapIcmp4(type: number, code: number, pointer: number): number {
  mappedInfo = 0;
  if (type === ICMP_DEST_UNREACH) {
    switch (code) {
      case 0: // net unreachable
      case 1: // host unreachable
      case 5: // source route failed
      case 6: // destination network unknown
      case 7: // destination host unknown
      case 8: // source host isolated
      case 11: // network unreachable for TOS
      case 12: // host unreachable for TOS
        return (ICMPV6_DEST_UNREACH << 8) | ICMPV6_NOROUTE;
      case 9: // network administratively prohibited
      case 10: // host administratively prohibited
      case 13: // communication administratively prohibited
      case 15: // precedence cutoff in effect
        return (ICMPV6_DEST_UNREACH << 8) | ICMPV6_ADM_PROHIBITED;
      case 2: // protocol unreachable: parameter problem pointing at the Next Header field
        mappedInfo = IP6_NEXTHDR << 24;
        return (ICMPV6_PARAMPROB << 8) | ICMPV6_UNK_NEXTHDR;
      case 3:
        return (ICMPV6_DEST_UNREACH << 8) | ICMPV6_PORT_UNREACH;
      case 4:
        return ICMPV6_PKT_TOOBIG << 8;
      default: // 14 (host precedence violation) and unknown codes
        return -1;
    }
  }
  if (type === ICMP_TIME_EXCEEDED) return code <= 1 ? (ICMPV6_TIME_EXCEED << 8) | code : -1;
  if (type === ICMP_PARAMETERPROB && (code === 0 || code === 2)) {
    const p = pointer < ptr4to6.length ? ptr4to6[pointer] : -1;
    if (p < 0) return -1;
    mappedInfo = p << 24;
    return (ICMPV6_PARAMPROB << 8) | ICMPV6_HDR_FIELD;
  }
  // Source quench (obsolete), redirect (single hop), parameter problem 1 and others: dropped.
  return -1;
}

/** The `info` word nat64MapIcmp4 / nat64MapIcmp6 computed with their last answer. */
export function nat64MappedInfo(): number {
  return mappedInfo;
}

/**
 * ICMPv6 → ICMPv4 type and code (RFC 7915 §5.2), as nat64MapIcmp4: packet too big maps to
 * frag-needed (the caller computes the MTU, nat64FragNeededMtu); parameter problem's pointer is
 * translated by RFC 7915's Figure 6.
 */
export function nat64MapIcmp6(type: number, code: number, pointer: number): number {
  mappedInfo = 0;
  if (type === ICMPV6_DEST_UNREACH) {
    switch (code) {
      case ICMPV6_NOROUTE:
      case ICMPV6_NOT_NEIGHBOUR:
      case ICMPV6_ADDR_UNREACH:
        return (ICMP_DEST_UNREACH << 8) | ICMP_HOST_UNREACH;
      case ICMPV6_ADM_PROHIBITED:
        return (ICMP_DEST_UNREACH << 8) | 10;
      case ICMPV6_PORT_UNREACH:
        return (ICMP_DEST_UNREACH << 8) | ICMP_PORT_UNREACH;
      default:
        return -1;
    }
  }
  if (type === ICMPV6_PKT_TOOBIG) return (ICMP_DEST_UNREACH << 8) | ICMP_FRAG_NEEDED;
  if (type === ICMPV6_TIME_EXCEED) return code <= 1 ? (ICMP_TIME_EXCEEDED << 8) | code : -1;
  if (type === ICMPV6_PARAMPROB) {
    if (code === ICMPV6_UNK_NEXTHDR) return (ICMP_DEST_UNREACH << 8) | ICMP_PROT_UNREACH;
    if (code !== ICMPV6_HDR_FIELD) return -1;
    let p = -1;
    if (pointer <= 1) p = pointer;
    else if (pointer === 4 || pointer === 5) p = 2;
    else if (pointer === 6) p = 9;
    else if (pointer === 7) p = 8;
    else if (pointer >= 8 && pointer <= 23) p = 12;
    else if (pointer >= 24 && pointer <= 39) p = 16;
    if (p < 0) return -1;
    mappedInfo = p << 24;
    return ICMP_PARAMETERPROB << 8;
  }
  return -1;
}

/** The sum of the eight 16-bit words of an address in word form. */
function sum6(w: Int32Array, o: number): number {
  let s = 0;
  for (let k = 0; k < 4; k++) {
    const x = w[o + k];
    s += (x >>> 16) + (x & 0xffff);
  }
  return s;
}

function writeWords6(buf: Uint8Array, off: number, w: Int32Array, o: number): void {
  for (let k = 0; k < 4; k++) {
    const x = w[o + k];
    writeU16(buf, off + 4 * k, x >>> 16);
    writeU16(buf, off + 4 * k + 2, x & 0xffff);
  }
}

/** RFC 4443 §2.4(c): the translated ICMPv6 error is at most 1280 bytes. */
const ICMP6_ERR_MAX = IPV6_MIN_MTU;

/**
 * RFC 7915 §4.2/§4.3 for a NAT64 connection: the ICMPv4 error f describes (from the real server's
 * side, about a request LIP:lport → RIP:rport; its TTL already decremented by the forwarding step)
 * becomes an ICMPv6 error at out[o3] from the VIP (v6 words at vOff) to the client (c6 at cOff)
 * about the packet the client sent, [client]:cport → [VIP]:vport:
 *
 * - outer: traffic class = TOS, flow label 0, hop limit = TTL; type and code by nat64MapIcmp4; a
 *   packet too big's MTU by nat64PtbMtu (mtu6: the link toward the client, mtu4: toward the real
 *   server); the ICMPv6 checksum with its pseudo-header, over the whole message;
 * - the quoted IPv4 header becomes an IPv6 one (traffic class = its TOS, hop limit = its TTL
 *   undecremented, payload length from its Total Length, not from what is quoted), its ports are
 *   un-NATed and its TCP/UDP checksum, when quoted whole, is adjusted for the new pseudo-header
 *   and ports (RFC 1624), as a translated packet's (a UDP 0 stays 0: the datagram is not there to
 *   sum); the rest of the quote is copied as it is (a TOA option the request got stays in it);
 * - only the quoted datagram is kept: an RFC 4884 extension (the length attribute) and anything
 *   past the quoted header's Total Length are left out, and the message is cut to 1280 bytes.
 *
 * The outer ICMP checksum is verified first. out must not be f.buf. Returns the IPv6 length, or
 * NAT64_ICMP_UNTRANSLATABLE / _CSUM / _QUOTE.
 */
export function nat64IcmpToIcmpv6(
  f: Flow,
  out: Uint8Array,
  o3: number,
  v6: Int32Array,
  vOff: number,
  vport: number,
  c6: Int32Array,
  cOff: number,
  cport: number,
  mtu6: number,
  mtu4: number,
): number {
  const buf = f.buf;
  const l3 = f.l3Off;
  const l4 = f.l4Off;
  const end = f.l3End;
  if (f.af !== 4 || f.proto !== IPPROTO_ICMP || !f.hasInner || l4 + ICMP_HLEN > end || end > buf.length)
    return NAT64_ICMP_QUOTE;
  if (csumFold(csumAdd(buf, l4, end - l4)) !== 0xffff) return NAT64_ICMP_CSUM;
  const type = buf[l4];
  const m = nat64MapIcmp4(type, buf[l4 + 1], buf[l4 + 4]);
  if (m < 0) return NAT64_ICMP_UNTRANSLATABLE;
  let info = mappedInfo;
  const il3 = f.innerL3Off;
  if (il3 + IPV4_HLEN > end) return NAT64_ICMP_QUOTE;
  const ihl = (buf[il3] & 15) << 2;
  const il4 = il3 + ihl;
  if (buf[il3] >>> 4 !== 4 || ihl < IPV4_HLEN || il4 > end) return NAT64_ICMP_QUOTE;
  const frag = readU16(buf, il3 + 6);
  // The translated requests are never fragments (DF, ID 0): a quoted one is not theirs.
  if ((frag & (IP_MF | IP_OFFMASK)) !== 0) return NAT64_ICMP_QUOTE;
  const totLen = readU16(buf, il3 + 2);
  if (m === ICMPV6_PKT_TOOBIG << 8) info = nat64PtbMtu(readU16(buf, l4 + 6), totLen, mtu6, mtu4);
  let q = end - il4;
  if (totLen >= ihl && totLen - ihl < q) q = totLen - ihl;
  // RFC 4884: a non-zero length attribute (32-bit words of original datagram) marks an extension.
  const ext = type === ICMP_PARAMETERPROB || type === ICMP_DEST_UNREACH || type === ICMP_TIME_EXCEEDED;
  const words = ext ? buf[l4 + 5] : 0;
  if (words !== 0 && words * 4 - ihl < q) q = Math.max(0, words * 4 - ihl);
  const max = ICMP6_ERR_MAX - IPV6_HLEN - ICMPV6_HLEN - IPV6_HLEN;
  if (q > max) q = max;
  const len = IPV6_HLEN + ICMPV6_HLEN + IPV6_HLEN + q;
  if (o3 < 0 || o3 + len > out.length || out === buf) return NAT64_ICMP_QUOTE;
  // Everything read from the ICMPv4 message before out is written.
  const tos = buf[l3 + 1];
  const ttl = buf[l3 + 8];
  const itos = buf[il3 + 1];
  const ittl = buf[il3 + 8];
  const iproto = buf[il3 + 9];
  const oldAddrSum = csumAdd(buf, il3 + IP_SADDR, 8);
  // Outer IPv6 header, ICMPv6 header.
  writeU32(out, o3, (0x60000000 | (tos << 20)) >>> 0);
  writeU16(out, o3 + 4, ICMPV6_HLEN + IPV6_HLEN + q);
  out[o3 + 6] = NEXTHDR_ICMPV6;
  out[o3 + 7] = ttl;
  writeWords6(out, o3 + IP6_SADDR, v6, vOff);
  writeWords6(out, o3 + IP6_DADDR, c6, cOff);
  const ic = o3 + IPV6_HLEN;
  out[ic] = m >>> 8;
  out[ic + 1] = m & 255;
  writeU16(out, ic + 2, 0);
  writeU32(out, ic + 4, info >>> 0);
  // The quoted packet, as the client sent it.
  const q3 = ic + ICMPV6_HLEN;
  writeU32(out, q3, (0x60000000 | (itos << 20)) >>> 0);
  writeU16(out, q3 + 4, totLen >= ihl ? totLen - ihl : q);
  out[q3 + 6] = iproto === IPPROTO_ICMP ? NEXTHDR_ICMPV6 : iproto;
  out[q3 + 7] = ittl;
  writeWords6(out, q3 + IP6_SADDR, c6, cOff);
  writeWords6(out, q3 + IP6_DADDR, v6, vOff);
  const q4 = q3 + IPV6_HLEN;
  moveBytes(out, q4, buf, il4, q);
  if (q >= 4 && (iproto === IPPROTO_TCP || iproto === IPPROTO_UDP)) {
    const oldSum = oldAddrSum + readU16(out, q4) + readU16(out, q4 + 2);
    writeU16(out, q4, cport);
    writeU16(out, q4 + 2, vport);
    const cf = checkField(iproto);
    if (q >= cf + 2) {
      const old = readU16(out, q4 + cf);
      if (!(iproto === IPPROTO_UDP && old === 0)) {
        let c = csumSwap(old, oldSum, sum6(c6, cOff) + sum6(v6, vOff) + cport + vport);
        if (iproto === IPPROTO_UDP && c === 0) c = 0xffff;
        writeU16(out, q4 + cf, c);
      }
    }
  }
  writeU16(out, ic + 2, l4ChecksumV6(out, o3, ic, len - IPV6_HLEN, NEXTHDR_ICMPV6));
  return len;
}

/** The packet an ICMPv6 error quotes (nat64IcmpToIcmpv4; parseFrame keeps its own). */
const quoted6 = new Icmpv6Inner();

/**
 * RFC 7915 §5.2/§5.3 for a NAT64 connection, in place: the ICMPv6 error f describes (from the
 * client's side, about a reply [VIP]:vport → [client]:cport; its hop limit already decremented)
 * becomes an ICMPv4 error from the LIP (`laddr`, int32 bits) to the real server (`raddr`) about
 * the packet the real server sent, RIP:rport → LIP:lport:
 *
 * - outer: TOS = traffic class, TTL = hop limit, ID 0, DF clear (RFC 7915 §5.1: at most 1260
 *   bytes), type and code by nat64MapIcmp6, a frag-needed's MTU by nat64FragNeededMtu (mtu4: the
 *   link toward the real server, mtu6: toward the client); the ICMP checksum over the message;
 * - the quoted IPv6 header (its extension headers dropped) becomes a 20-byte IPv4 one as
 *   nat64ToIpv4 writes them (TOS = traffic class, TTL = hop limit undecremented, ID 0 and DF; a
 *   quoted first fragment: MF from M and the Identification's low 16 bits, DF clear), its Total
 *   Length from the Payload Length; ports un-NATed, the TCP/UDP checksum adjusted when quoted;
 * - only the quoted datagram is kept (no RFC 4884 extension), the message cut to 576 bytes (the
 *   ICMPv4 errors' limit, RFC 1812 §4.3.2.3).
 *
 * The ICMPv6 checksum is verified first. The new datagram ends where the quote's transport bytes
 * end, written in front of them; f is then the IPv4 datagram (af, offsets, addresses). Returns its
 * length, or NAT64_ICMP_UNTRANSLATABLE / _CSUM / _QUOTE with f unchanged.
 */
export function nat64IcmpToIcmpv4(
  f: Flow,
  laddr: number,
  lport: number,
  raddr: number,
  rport: number,
  mtu4: number,
  mtu6: number,
): number {
  const buf = f.buf;
  const l3 = f.l3Off;
  const l4 = f.l4Off;
  const end = f.l3End;
  if (f.af !== 6 || f.proto !== NEXTHDR_ICMPV6 || f.fragment || l4 + ICMPV6_HLEN > end || end > buf.length)
    return NAT64_ICMP_QUOTE;
  if (!icmpv6Verify(buf, l3, l4, end - l4)) return NAT64_ICMP_CSUM;
  const type = buf[l4];
  const word = readU32(buf, l4 + 4);
  const m = nat64MapIcmp6(type, buf[l4 + 1], word);
  if (m < 0) return NAT64_ICMP_UNTRANSLATABLE;
  let info = mappedInfo;
  const w = quoted6;
  if (icmpv6Inner(buf, f, w) !== ICMPV6_INNER_OK) return NAT64_ICMP_QUOTE;
  // A non-first fragment has no ports: not one the connection's lookup found.
  if (w.fragOffset !== 0) return NAT64_ICMP_QUOTE;
  const il3 = w.l3Off;
  const il4 = w.l4Off;
  const extLen = il4 - il3 - IPV6_HLEN;
  const upper = readU16(buf, il3 + 4) - extLen;
  if (upper < 0 || il4 > end) return NAT64_ICMP_QUOTE;
  if (m === ((ICMP_DEST_UNREACH << 8) | ICMP_FRAG_NEEDED))
    info = nat64FragNeededMtu(word >>> 0, w.fragHdrOff >= 0, mtu4, mtu6);
  let q = end - il4;
  if (upper < q) q = upper;
  // RFC 4884 length attribute (64-bit words of original datagram) of destination unreachable and
  // time exceeded.
  const words = type === ICMPV6_DEST_UNREACH || type === ICMPV6_TIME_EXCEED ? buf[l4 + 4] : 0;
  if (words !== 0 && words * 8 - (il4 - il3) < q) q = Math.max(0, words * 8 - (il4 - il3));
  const max = ICMP_ERR_MAX - IPV4_HLEN - ICMP_HLEN - IPV4_HLEN;
  if (q > max) q = max;
  const len = IPV4_HLEN + ICMP_HLEN + IPV4_HLEN + q;
  const ni3 = il4 - IPV4_HLEN;
  const ic = ni3 - ICMP_HLEN;
  const o3 = ic - IPV4_HLEN;
  if (o3 < ETH_HLEN) return NAT64_ICMP_QUOTE;
  // Everything read from the IPv6 headers before they are overwritten.
  const tc = ((buf[l3] & 0x0f) << 4) | (buf[l3 + 1] >>> 4);
  const hl = buf[l3 + 7];
  const itc = ((buf[il3] & 0x0f) << 4) | (buf[il3 + 1] >>> 4);
  const ihl = buf[il3 + 7];
  const iproto = w.proto;
  const frag = w.fragHdrOff >= 0 && w.fragment ? (w.fragMore ? IP_MF : 0) : IP_DF;
  const id = w.fragHdrOff >= 0 && w.fragment ? w.fragId & 0xffff : 0;
  const oldAddrSum = csumAdd(buf, il3 + IP6_SADDR, 32);
  if (q >= 4 && (iproto === IPPROTO_TCP || iproto === IPPROTO_UDP)) {
    const oldSum = oldAddrSum + readU16(buf, il4) + readU16(buf, il4 + 2);
    writeU16(buf, il4, rport);
    writeU16(buf, il4 + 2, lport);
    const cf = checkField(iproto);
    if (q >= cf + 2) {
      const old = readU16(buf, il4 + cf);
      if (!(iproto === IPPROTO_UDP && old === 0)) {
        const newSum = (raddr >>> 16) + (raddr & 0xffff) + (laddr >>> 16) + (laddr & 0xffff) + rport + lport;
        let c = csumSwap(old, oldSum, newSum);
        if (iproto === IPPROTO_UDP && c === 0) c = 0xffff;
        writeU16(buf, il4 + cf, c);
      }
    }
  }
  const iproto4 = iproto === NEXTHDR_ICMPV6 ? IPPROTO_ICMP : iproto;
  writeIpv4Header(buf, ni3, itc, IPV4_HLEN + upper, id, frag, ihl, iproto4, raddr, laddr);
  buf[ic] = m >>> 8;
  buf[ic + 1] = m & 255;
  writeU16(buf, ic + 2, 0);
  writeU32(buf, ic + 4, info >>> 0);
  writeIpv4Header(buf, o3, tc, len, 0, 0, hl, IPPROTO_ICMP, laddr, raddr);
  writeU16(buf, ic + 2, csumFinish(csumAdd(buf, ic, len - IPV4_HLEN)));
  f.af = 4;
  f.proto = IPPROTO_ICMP;
  f.l3Off = o3;
  f.l4Off = ic;
  f.payloadOff = ic + ICMP_HLEN;
  f.l3End = o3 + len;
  f.saddr = laddr >>> 0;
  f.daddr = raddr >>> 0;
  f.ttl = hl;
  f.tos = tc;
  f.df = false;
  f.fragment = false;
  f.firstFragment = false;
  f.icmpType = m >>> 8;
  f.icmpCode = m & 255;
  f.innerL3Off = ni3;
  f.innerL4Off = il4;
  f.innerProto = iproto4;
  f.innerSaddr = raddr >>> 0;
  f.innerDaddr = laddr >>> 0;
  return len;
}
