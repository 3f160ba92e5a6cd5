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
// TCP and UDP only (ICMP would need its own translation, RFC 7915 §4.2/§5.2, with the quoted packet
// translated too). Fragments are not translated (a fragment has no ports to rewrite). The
// transport checksum is updated incrementally (RFC 1624): the pseudo-header's length and protocol
// are the same in both families, so only the addresses and the rewritten ports change the sum;
// a UDP datagram from IPv4 without a checksum (0) gets one computed in full, IPv6 requiring it.

import { ipv6Fold, readU16, writeU16 } from "../addr.js";
import { csumAdd, csumFold, l4ChecksumV6 } from "./csum.js";
import { type Flow, IPPROTO_TCP, IPPROTO_UDP } from "./flow.js";
import { IP_DF, IP_SADDR, IPV4_HLEN, writeIpv4Header } from "./ipv4.js";
import { IP6_HOPLIMIT, IP6_SADDR, IPV6_HLEN } from "./ipv6.js";
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
