// FULLNAT (tsvs extension, after DPVS/Alibaba LVS FULLNAT): the director rewrites both
// ends, CIP:cport → LIP:lport and VIP:vport → RIP:rport, so real servers need no setup
// and may sit on any routed network: they answer the LIP, and the director rewrites the
// reply back to VIP:vport → CIP:cport. The client's address is handed to the real server
// in a TOA TCP option (kind 254: port + IPv4 address), the layout the TOA kernel module
// reads from the ACK that completes the handshake; tsvs adds it to the SYN and that ACK.
//
// IPv6 (fullnat6, DPVS's FULLNAT for AF_INET6): the same with 128-bit addresses from the
// connection's IPv6 record, CIP6:cport → LIP6:lport and VIP6:vport → RIP6:rport, the checksums
// fixed by csumReplace128 (setAddrPort6). The TOA option of an IPv6 client is DPVS's
// (kmod/toa/toa.h TCPOLEN_IP6_TOA): kind 254, length 20, port, the 16-byte address; it goes in when
// the grown datagram still fits the link, as the IPv4 one does.
//
// NAT64 (fullnat64, DPVS's FULLNAT from an IPv6 VIP to IPv4 real servers): the entry's client side
// is IPv6 and its server side IPv4 (an IPv4 LIP of the service's -P addresses). Requests are
// translated (packet/nat64.ts) to LIP:lport → RIP:rport and leave by the IPv4 routes; replies,
// found by the IPv4 reply lookup, are translated back to VIP6:vport → CIP6:cport. The real server
// learns the client from the IPv6 TOA option (the connection's client is IPv6), as with DPVS. The
// FULLNAT methods hand such an entry to fullnat64 on its family (one flags read); ICMP errors about
// it are not translated (RFC 7915's ICMP translation with its quote): dropped, counted unsupported.

import { ipv6FromWords } from "../addr.js";
import { A6_CADDR, A6_DADDR, A6_LADDR, A6_VADDR, CONN_F_TOA_SENT } from "../conn/table.js";
import { R } from "../counters.js";
import type { Flow } from "../packet/flow.js";
import { IPPROTO_TCP, TCP_ACK, TCP_RST, TCP_SYN } from "../packet/flow.js";
import {
  icmpInnerSetDaddr,
  icmpInnerSetDport,
  icmpInnerSetSaddr,
  icmpInnerSetSport,
  icmpRecomputeChecksum,
} from "../packet/icmp.js";
import { Icmpv6Inner, icmpv6FullnatRelay, icmpv6Inner } from "../packet/icmpv6.js";
import {
  IPV4_HLEN,
  ipv4SetDaddr,
  ipv4SetDaddrDport,
  ipv4SetSaddr,
  ipv4SetSaddrSport,
} from "../packet/ipv4.js";
import { IP6_DADDR, IP6_SADDR } from "../packet/ipv6.js";
import { nat64ToIpv4, nat64ToIpv6 } from "../packet/nat64.js";
import {
  TCPOLEN_TOA,
  TCPOLEN_TOA6,
  tcpInsertOption,
  writeToa6Option,
  writeToaOption,
} from "../packet/tcp.js";
import { setAddrPort6 } from "./nat.js";
import { Verdict, type XmitEngine, type XmitMethod } from "./types.js";

/** Preallocated option bytes (no allocation per packet), room for either family's. */
const toa = new Uint8Array(TCPOLEN_TOA6);

/** The TOA option's length: the client's family decides (an IPv6 client's address is 16 bytes). */
function toaLen(e: XmitEngine, c: number): number {
  return e.conns.isIpv6(c) ? TCPOLEN_TOA6 : TCPOLEN_TOA;
}

/** Does this packet get a TOA option: a SYN, or the first ACK of the connection? */
function wantsToa(e: XmitEngine, c: number, f: Flow): boolean {
  if (f.proto !== IPPROTO_TCP || (f.tcpFlags & TCP_RST) !== 0) return false;
  if ((f.tcpFlags & TCP_SYN) !== 0) return true;
  return (f.tcpFlags & TCP_ACK) !== 0 && (e.conns.flagsOf(c) & CONN_F_TOA_SENT) === 0;
}

function maybeAddToa(e: XmitEngine, c: number, f: Flow, mtu: number): void {
  if (!wantsToa(e, c, f)) return;
  const t = e.conns;
  const handshakeAck = (f.tcpFlags & TCP_SYN) === 0;
  const len = toaLen(e, c);
  if (f.l3End - f.l3Off + len > mtu) return;
  // The frame is moved to the scratch buffer, which has room to grow the TCP header.
  const s = e.scratch;
  if (f.buf !== s) {
    s.set(f.buf.subarray(0, f.l3End), 0);
    f.buf = s;
  }
  if (len === TCPOLEN_TOA6) writeToa6Option(toa, 0, t.cportOf(c), t.addr6Words!, (c << 4) + A6_CADDR);
  else writeToaOption(toa, 0, t.cportOf(c), t.caddrOf(c));
  if (tcpInsertOption(s, f, toa, len, s.length) && handshakeAck)
    t.setFlags(c, t.flagsOf(c) | CONN_F_TOA_SENT);
}

// An aggregate that would get TOA is cut first: GSO would copy the option into every segment
// (and past the MSS the sender chose); only the first segment gets it. When the first segment
// has no room for it (maybeAddToa would skip it too), the aggregate goes out whole.
function cutForToa(e: XmitEngine, c: number, f: Flow): boolean {
  if (!wantsToa(e, c, f)) return false;
  const first = f.payloadOff - f.l3Off + Math.min(f.gsoSize, f.l3End - f.payloadOff);
  return first + toaLen(e, c) <= e.destMtuOf(e.conns.destOf(c));
}

export const fullnat: XmitMethod = {
  name: "fullnat",

  inbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    const p = e.destPath(t.destOf(c));
    if (p === null) return Verdict.Drop;
    if (!e.fitsPath(p, f.l3End - f.l3Off, 0, f, f.daddr | 0, now)) return Verdict.Drop;
    const buf = f.buf;
    ipv4SetSaddrSport(buf, f, t.laddrOf(c) | 0, t.lportOf(c));
    ipv4SetDaddrDport(buf, f, t.daddrOf(c) | 0, t.dportOf(c));
    maybeAddToa(e, c, f, p.iface.mtu);
    return e.emitToDest(f.buf, f.l3Off, f.l3End - f.l3Off, p, now);
  },

  segmentsInbound: cutForToa,

  outbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    if (t.isIpv6(c)) return outbound64(e, c, f, now);
    const buf = f.buf;
    ipv4SetSaddrSport(buf, f, t.vaddrOf(c) | 0, t.vportOf(c));
    ipv4SetDaddrDport(buf, f, t.caddrOf(c) | 0, t.cportOf(c));
    return e.emitIp(buf, f.l3Off, f.l3End - f.l3Off, f.daddr | 0, now);
  },

  // Client-side error about a reply (VIP:vport → CIP:cport): the real server must see it as
  // an error about RIP:rport → LIP:lport, sent from the LIP.
  icmpInbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    const p = e.destPath(t.destOf(c));
    if (p === null) return Verdict.Drop;
    const buf = f.buf;
    ipv4SetSaddr(buf, f, t.laddrOf(c) | 0);
    ipv4SetDaddr(buf, f, t.daddrOf(c) | 0);
    icmpInnerSetSaddr(buf, f, t.daddrOf(c));
    icmpInnerSetSport(buf, f, t.dportOf(c));
    icmpInnerSetDaddr(buf, f, t.laddrOf(c));
    icmpInnerSetDport(buf, f, t.lportOf(c));
    icmpRecomputeChecksum(buf, f);
    return e.emitToDest(buf, f.l3Off, f.l3End - f.l3Off, p, now);
  },

  // Error from the server side about a request (LIP:lport → RIP:rport): the client sees
  // it about CIP:cport → VIP:vport, from the VIP.
  icmpOutbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    if (t.isIpv6(c)) return e.drop(R.unsupported);
    const buf = f.buf;
    ipv4SetSaddr(buf, f, t.vaddrOf(c) | 0);
    ipv4SetDaddr(buf, f, t.caddrOf(c) | 0);
    icmpInnerSetSaddr(buf, f, t.caddrOf(c));
    icmpInnerSetSport(buf, f, t.cportOf(c));
    icmpInnerSetDaddr(buf, f, t.vaddrOf(c));
    icmpInnerSetDport(buf, f, t.vportOf(c));
    icmpRecomputeChecksum(buf, f);
    return e.emitIp(buf, f.l3Off, f.l3End - f.l3Off, f.daddr | 0, now);
  },
};

/** The two ends of a relayed error as bytes (the ICMPv6 codecs' form) and its quoted packet. */
const from16 = new Uint8Array(16);
const to16 = new Uint8Array(16);
const quoted = new Icmpv6Inner();

/**
 * The FULLNAT relay of an ICMPv6 error about connection c: from address `from` (A6_*) and port to
 * address `to` and port, about the packet to → from (icmpv6FullnatRelay). False when the quote
 * cannot be walked (nothing changed).
 */
function relay6(
  f: Flow,
  a: Int32Array,
  c: number,
  from: number,
  fromPort: number,
  to: number,
  toPort: number,
): boolean {
  if (icmpv6Inner(f.buf, f, quoted) !== 0) return false;
  ipv6FromWords(a, (c << 4) + from, from16, 0);
  ipv6FromWords(a, (c << 4) + to, to16, 0);
  icmpv6FullnatRelay(f.buf, f, quoted, from16, 0, fromPort, to16, 0, toPort);
  return true;
}

export const fullnat6: XmitMethod = {
  name: "fullnat",

  inbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    if (!t.isDestIpv6(c)) return inbound64(e, c, f, now);
    const p = e.destPath(t.destOf(c));
    const a = t.addr6Words;
    if (p === null || a === null) return Verdict.Drop;
    if (!e.fitsPath6(p, f.l3End - f.l3Off, 0, f, f.d6, now)) return Verdict.Drop;
    setAddrPort6(f, IP6_SADDR, a, (c << 4) + A6_LADDR, t.lportOf(c));
    setAddrPort6(f, IP6_DADDR, a, (c << 4) + A6_DADDR, t.dportOf(c));
    maybeAddToa(e, c, f, p.iface.mtu);
    return e.emitToDest6(f.buf, f.l3Off, f.l3End - f.l3Off, p, now);
  },

  segmentsInbound(e: XmitEngine, c: number, f: Flow): boolean {
    return !e.conns.isDestIpv6(c) || cutForToa(e, c, f);
  },

  outbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    const a = t.addr6Words;
    if (a === null) return Verdict.Drop;
    setAddrPort6(f, IP6_SADDR, a, (c << 4) + A6_VADDR, t.vportOf(c));
    setAddrPort6(f, IP6_DADDR, a, (c << 4) + A6_CADDR, t.cportOf(c));
    return e.emitIp6(f.buf, f.l3Off, f.l3End - f.l3Off, a, (c << 4) + A6_CADDR, 0, now);
  },

  // As the IPv4 one: toward the real server from the LIP, about RIP:rport → LIP:lport.
  icmpInbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    if (!t.isDestIpv6(c)) return e.drop(R.unsupported);
    const p = e.destPath(t.destOf(c));
    const a = t.addr6Words;
    if (p === null || a === null) return Verdict.Drop;
    if (!relay6(f, a, c, A6_LADDR, t.lportOf(c), A6_DADDR, t.dportOf(c))) return e.drop(R.icmp_unrelated);
    return e.emitToDest6(f.buf, f.l3Off, f.l3End - f.l3Off, p, now);
  },

  // Toward the client from the VIP, about CIP:cport → VIP:vport.
  icmpOutbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    const a = t.addr6Words;
    if (a === null) return Verdict.Drop;
    if (!relay6(f, a, c, A6_VADDR, t.vportOf(c), A6_CADDR, t.cportOf(c))) return e.drop(R.icmp_unrelated);
    return e.emitIp6(f.buf, f.l3Off, f.l3End - f.l3Off, a, (c << 4) + A6_CADDR, 0, now);
  },
};

/** NAT64's request (see the top): IPv6 from the client, out as IPv4 from the LIP to the RIP. */
function inbound64(e: XmitEngine, c: number, f: Flow, now: number): number {
  const t = e.conns;
  const p = e.destPath(t.destOf(c));
  if (p === null) return Verdict.Drop;
  // The IPv4 datagram is 20 bytes (and the extension headers) shorter: the IPv6 packet may be
  // that much longer than the IPv4 link, and packet too big says so (RFC 7915 §5.1's MTU + 20).
  if (!e.fitsPath6(p, f.l3End - f.l3Off, IPV4_HLEN - (f.l4Off - f.l3Off), f, f.d6, now)) return Verdict.Drop;
  if (!nat64ToIpv4(f, t.laddrOf(c) | 0, t.lportOf(c), t.daddrOf(c) | 0, t.dportOf(c)))
    return e.drop(f.fragment ? R.fragment : R.unsupported);
  maybeAddToa(e, c, f, p.iface.mtu);
  return e.emitToDest(f.buf, f.l3Off, f.l3End - f.l3Off, p, now);
}

/** NAT64's reply: IPv4 from the RIP to the LIP, out as IPv6 from the VIP6 to the client. */
function outbound64(e: XmitEngine, c: number, f: Flow, now: number): number {
  const t = e.conns;
  const a = t.addr6Words;
  if (a === null) return Verdict.Drop;
  const at = c << 4;
  if (!nat64ToIpv6(f, e.scratch, a, at + A6_VADDR, t.vportOf(c), a, at + A6_CADDR, t.cportOf(c)))
    return e.drop(f.fragment ? R.fragment : R.unsupported);
  return e.emitIp6(f.buf, f.l3Off, f.l3End - f.l3Off, a, at + A6_CADDR, 0, now);
}

/**
 * NAT64 as a method of its own (tests, explain): the FULLNAT methods of either family reach the
 * same functions when the entry's sides differ.
 */
export const fullnat64: XmitMethod = {
  name: "fullnat",
  inbound: inbound64,
  // An aggregate changes family: it is cut, each segment translated.
  segmentsInbound: () => true,
  outbound: outbound64,
  icmpInbound: (e: XmitEngine) => e.drop(R.unsupported),
  icmpOutbound: (e: XmitEngine) => e.drop(R.unsupported),
};
