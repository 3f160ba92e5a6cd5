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
// FULLNAT methods hand such an entry to fullnat64 on its family (one flags read), its ICMP errors
// too: translated both ways with their quote (RFC 7915 §4.2/§5.2, packet/nat64.ts). The real
// server's SYN-ACK gets DPVS's MSS adjustment; a reply without DF over 1280 bytes of IPv6 leaves as
// IPv6 fragments (RFC 7915 §4.1), one with DF over the IPv6 link's MTU gets frag-needed; fragments
// of a NAT64 connection are dropped (nat64_fragment): tsvs does not reassemble.
//
// PROXY protocol (`--proxy-protocol v1|v2`, DPVS's svc->proxy_protocol; packet/proxy-proto.ts):
// the service's SYN marks the connection (CONN_F_PP, its client's first sequence number and the
// header's length in the PP record) and TOA is not added (DPVS: the two are exclusive). The first
// client segment with data at that sequence number gets the v1 or v2 header in front of its payload
// (DPVS's tcp_in_add_proxy_proto / proxy_proto_insert), the client's retransmission of it too; every
// later client segment is shifted by the header's length and the real server's ACK and SACK numbers
// are shifted back (tcp_out_adjust_seq). A first segment that would not fit the path with the header
// leaves as two, the header alone first (proxy_proto_send_standalone). The header describes the
// client's side, so a NAT64 connection's is the IPv6 form. For NAT64 the header goes in after the
// translation, into the IPv4 segment. A PROXY header the client sent itself is replaced, or with
// the -insecure modes kept (translated to the service's version if need be), as DPVS does.

import { ipv6FromWords, readU16, readU32, writeU16, writeU32 } from "../addr.js";
import {
  A6_CADDR,
  A6_DADDR,
  A6_LADDR,
  A6_VADDR,
  CONN_F_PP,
  CONN_F_TOA_SENT,
  type ConnTable,
} from "../conn/table.js";
import { R } from "../counters.js";
import type { DestPath } from "../output.js";
import {
  csumReplace16,
  csumReplace32,
  ipv4HeaderChecksum,
  l4ChecksumV4,
  l4ChecksumV6,
} from "../packet/csum.js";
import { ETH_HLEN } from "../packet/eth.js";
import type { Flow } from "../packet/flow.js";
import { IPPROTO_TCP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from "../packet/flow.js";
import {
  icmpInnerSetDaddr,
  icmpInnerSetDport,
  icmpInnerSetSaddr,
  icmpInnerSetSport,
  icmpRecomputeChecksum,
} from "../packet/icmp.js";
import { Icmpv6Inner, icmpv6FullnatRelay, icmpv6Inner } from "../packet/icmpv6.js";
import {
  IP_CHECK,
  IP_TOTLEN,
  IPV4_HLEN,
  ipv4SetDaddr,
  ipv4SetDaddrDport,
  ipv4SetSaddr,
  ipv4SetSaddrSport,
} from "../packet/ipv4.js";
import { IP6_DADDR, IP6_PLEN, IP6_SADDR, IPV6_HLEN } from "../packet/ipv6.js";
import {
  NAT64_FRAG_MTU,
  NAT64_ICMP_CSUM,
  NAT64_ICMP_UNTRANSLATABLE,
  nat64ClampMss,
  nat64Fragment6,
  nat64FragmentCount,
  nat64IcmpToIcmpv4,
  nat64IcmpToIcmpv6,
  nat64ToIpv4,
  nat64ToIpv6,
} from "../packet/nat64.js";
import {
  PP_F_INSECURE,
  PP_V2,
  PP_VERSION_MASK,
  PP1_MAX_LEN,
  pp1WriteTcp4,
  pp1WriteTcp6,
  pp2WriteTcp4,
  pp2WriteTcp6,
  ppAckBack,
  ppParse,
  ppParsed,
  ppSeqBack,
  ppShiftSeq,
  ppWriteParsed,
} from "../packet/proxy-proto.js";
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
  if ((e.conns.flagsOf(c) & CONN_F_PP) !== 0 || !wantsToa(e, c, f)) return;
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
  if ((e.conns.flagsOf(c) & CONN_F_PP) !== 0) return ppCuts(e.conns, c, f);
  if (!wantsToa(e, c, f)) return false;
  const first = f.payloadOff - f.l3Off + Math.min(f.gsoSize, f.l3End - f.payloadOff);
  return first + toaLen(e, c) <= e.destMtuOf(e.conns.destOf(c));
}

// ---------------------------------------------------------------- PROXY protocol

/**
 * The PP record's second word (table.ts ppWordOf): L, the length of the header the real server
 * gets (0: none, the client's own passes); the service's proxy_protocol value (version, insecure);
 * DECIDED once the first data was seen (L and O are then final); DONE; O, the length of the
 * client's own header that the director's replaces (packet/proxy-proto.ts, the top).
 */
const PPW_LEN = 0xff;
const PPW_VER_SHIFT = 8;
const PPW_VER = 0xff;
const PPW_DECIDED = 0x10000;
/** The client has been told of data past its first byte: it never sends from there again. */
const PPW_DONE = 0x20000;
const PPW_OLD_SHIFT = 20;
const PPW_OLD_MAX = 0xfff;
const TCP_URG = 0x20;

/** L - O: how far the client's numbers after its first segment move. */
function ppDelta(w: number): number {
  return (w & PPW_LEN) - (w >>> PPW_OLD_SHIFT);
}

/** Where the header the real server gets is built (L bytes), and where a header-only segment is. */
const ppHdr = new Uint8Array(PP1_MAX_LEN);
const ppSeg = new Uint8Array(ETH_HLEN + 2048);

/** Connection c's header (its client's side: CIP:cport → VIP:vport) at b[off]; its length. */
function ppWrite(t: ConnTable, c: number, ver: number, b: Uint8Array, off: number): number {
  if (t.isIpv6(c)) {
    const a = t.addr6Words;
    if (a === null) return 0;
    const at = c << 4;
    return ver === PP_V2
      ? pp2WriteTcp6(b, off, a, at + A6_CADDR, t.cportOf(c), at + A6_VADDR, t.vportOf(c))
      : pp1WriteTcp6(b, off, a, at + A6_CADDR, t.cportOf(c), at + A6_VADDR, t.vportOf(c));
  }
  return ver === PP_V2
    ? pp2WriteTcp4(b, off, t.caddrOf(c), t.cportOf(c), t.vaddrOf(c), t.vportOf(c))
    : pp1WriteTcp4(b, off, t.caddrOf(c), t.cportOf(c), t.vaddrOf(c), t.vportOf(c));
}

/**
 * The client's SYN: the connection sends the header when its service asks (read here, once per
 * SYN, so that no other packet looks at the service), from the sequence number after the SYN's.
 */
function ppSyn(t: ConnTable, c: number, f: Flow, p: DestPath): void {
  const svc = p.dest.svc;
  const pp = svc === null ? 0 : svc.proxyProtocol & PPW_VER;
  const flags = t.flagsOf(c);
  if ((pp & PP_VERSION_MASK) === 0) {
    if ((flags & CONN_F_PP) !== 0) t.setFlags(c, flags & ~CONN_F_PP);
    return;
  }
  const len = ppWrite(t, c, pp & PP_VERSION_MASK, ppHdr, 0);
  if (len === 0) return;
  t.setPp(c, f.tcpSeq + 1, len | (pp << PPW_VER_SHIFT));
  t.setFlags(c, flags | CONN_F_PP);
}

/** Is this aggregate the client's first data (it is cut: only its first segment gets the header)? */
function ppCuts(t: ConnTable, c: number, f: Flow): boolean {
  if (f.proto !== IPPROTO_TCP || (t.ppWordOf(c) & PPW_DONE) !== 0) return false;
  return (f.tcpSeq | 0) === t.ppIsnOf(c) && f.payloadOff < f.l3End;
}

/**
 * A client segment of a PP connection, its addresses already rewritten (v6: the IPv6 form leaves):
 * the SYN starts the record; a segment with data at the first sequence number gets the header
 * (inserted, or replacing the client's own, or sent alone first when the segment would outgrow
 * mtu); later ones are shifted. Returns -1 to let the caller emit f, or a verdict.
 */
function ppInbound(
  e: XmitEngine,
  c: number,
  f: Flow,
  p: DestPath,
  mtu: number,
  v6: boolean,
  now: number,
): number {
  if (f.proto !== IPPROTO_TCP) return -1;
  const t = e.conns;
  if ((f.tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN) {
    ppSyn(t, c, f, p);
    // TCP Fast Open: data on the SYN would reach the real server ahead of the header. It is cut
    // off; the SYN-ACK then acknowledges the SYN alone and the client sends the data again after
    // the handshake (Linux: tcp_rcv_fastopen_synack; RFC 7413), where it gets the header.
    if ((t.flagsOf(c) & CONN_F_PP) !== 0 && f.payloadOff < f.l3End) {
      growL3(f.buf, f.l3Off, v6, f.payloadOff - f.l3End);
      f.l3End = f.payloadOff;
      f.len = f.l3End;
      tcpChecksum(f.buf, f.l3Off, f.l4Off, f.l3End, v6);
    }
    return -1;
  }
  if ((t.flagsOf(c) & CONN_F_PP) === 0) return -1;
  const w = t.ppWordOf(c);
  const l4 = f.l4Off;
  const d = (readU32(f.buf, l4 + 4) - t.ppIsnOf(c)) | 0;
  if ((w & PPW_DONE) !== 0) {
    ppShiftSeq(f.buf, l4, ppDelta(w));
    return -1;
  }
  if (d > 0) {
    // Past the first byte before the first data was seen (it was lost or overtaken): how far it
    // moves depends on what the first data starts with (a client's own header is replaced). A reset
    // goes as it is (the real server answers it with a challenge ACK at worst); data waits for the
    // client to send it again.
    if ((w & PPW_DECIDED) === 0) return (f.tcpFlags & TCP_RST) !== 0 ? -1 : e.drop(R.pp_early);
    ppShiftSeq(f.buf, l4, ppDelta(w));
    return -1;
  }
  // Before the first byte (a keepalive before any data), or no data: as it is (DPVS sends the
  // header with data only: a pure ACK carrying it would make it arrive twice).
  if (d !== 0 || f.payloadOff >= f.l3End || (f.tcpFlags & (TCP_SYN | TCP_RST)) !== 0) return -1;
  return ppFirst(e, c, f, p, w, mtu, v6, now);
}

/**
 * The client's first data (or its retransmission: the same bytes decide the same): what the real
 * server gets in front of it (tcp_in_add_proxy_proto): a PROXY header the client sent itself is
 * replaced by the director's, or with -insecure translated to the service's version, or, of that
 * version already, passed as it is; without one, the director's goes in front.
 */
function ppFirst(
  e: XmitEngine,
  c: number,
  f: Flow,
  p: DestPath,
  w: number,
  mtu: number,
  v6: boolean,
  now: number,
): number {
  const t = e.conns;
  const pp = (w >>> PPW_VER_SHIFT) & PPW_VER;
  const ver = pp & PP_VERSION_MASK;
  const h = ppParse(f.buf, f.payloadOff, f.l3End);
  let len: number;
  let old = 0;
  if (h <= 0 || h > PPW_OLD_MAX) len = ppWrite(t, c, ver, ppHdr, 0);
  else if ((pp & PP_F_INSECURE) === 0) {
    old = h;
    len = ppWrite(t, c, ver, ppHdr, 0);
  } else if (ppParsed.ver === ver) len = 0;
  else {
    old = h;
    len = ppWriteParsed(ppHdr, 0, ver);
  }
  t.setPp(c, t.ppIsnOf(c), len | (pp << PPW_VER_SHIFT) | PPW_DECIDED | (old << PPW_OLD_SHIFT));
  if (len === 0) return -1;
  const grow = len - old;
  if (f.l3End - f.l3Off + grow <= mtu && f.l3End + grow <= e.scratch.length) {
    ppReplace(e, f, len, old, v6);
    return -1;
  }
  const v = ppAlone(e, f, p, len, v6, now);
  if (v !== Verdict.Sent) return v;
  // What follows it: the client's data after its own header (cut out here), at isn1 + len.
  if (old > 0) {
    const b = f.buf;
    b.copyWithin(f.payloadOff, f.payloadOff + old, f.l3End);
    growL3(b, f.l3Off, v6, -old);
    f.l3End -= old;
    f.len = f.l3End;
    tcpChecksum(b, f.l3Off, f.l4Off, f.l3End, v6);
    if (f.payloadOff >= f.l3End && (f.tcpFlags & TCP_FIN) === 0) return v;
  }
  ppShiftSeq(f.buf, f.l4Off, len);
  return -1;
}

/** The datagram's length fields grown by n (or shrunk, n < 0), the IPv4 header checksum with them. */
function growL3(b: Uint8Array, l3: number, v6: boolean, n: number): void {
  if (v6) {
    writeU16(b, l3 + IP6_PLEN, ((b[l3 + IP6_PLEN] << 8) | b[l3 + IP6_PLEN + 1]) + n);
    return;
  }
  const old = (b[l3 + IP_TOTLEN] << 8) | b[l3 + IP_TOTLEN + 1];
  writeU16(b, l3 + IP_TOTLEN, old + n);
  writeU16(b, l3 + IP_CHECK, csumReplace16((b[l3 + IP_CHECK] << 8) | b[l3 + IP_CHECK + 1], old, old + n));
}

/** The TCP checksum summed anew (the payload moved by an odd length, possibly). */
function tcpChecksum(b: Uint8Array, l3: number, l4: number, end: number, v6: boolean): void {
  writeU16(
    b,
    l4 + 16,
    v6 ? l4ChecksumV6(b, l3, l4, end - l4, IPPROTO_TCP) : l4ChecksumV4(b, l3, l4, end - l4, IPPROTO_TCP),
  );
}

/**
 * The header built in ppHdr (len bytes) in place of the first `old` bytes of f's payload, f moved
 * to the scratch buffer (room to grow), as TOA is.
 */
function ppReplace(e: XmitEngine, f: Flow, len: number, old: number, v6: boolean): void {
  const s = e.scratch;
  if (f.buf !== s) {
    s.set(f.buf.subarray(0, f.l3End), 0);
    f.buf = s;
  }
  const at = f.payloadOff;
  s.copyWithin(at + len, at + old, f.l3End);
  s.set(ppHdr.subarray(0, len), at);
  growL3(s, f.l3Off, v6, len - old);
  f.l3End += len - old;
  f.len = f.l3End;
  tcpChecksum(s, f.l3Off, f.l4Off, f.l3End, v6);
}

/**
 * proxy_proto_send_standalone: the header (ppHdr, len bytes) in a segment of its own (f's headers,
 * no FIN, the header as its payload) sent before f, which then follows shifted.
 */
function ppAlone(e: XmitEngine, f: Flow, p: DestPath, len: number, v6: boolean, now: number): number {
  const hl = f.payloadOff - f.l3Off;
  if (ETH_HLEN + hl + len > ppSeg.length) return e.drop(R.too_big);
  const b = ppSeg;
  const l3 = ETH_HLEN;
  const l4 = l3 + (f.l4Off - f.l3Off);
  b.set(f.buf.subarray(f.l3Off, f.payloadOff), l3);
  b.set(ppHdr.subarray(0, len), l3 + hl);
  // Not the FIN (it follows the data) nor an urgent pointer into data it does not carry.
  b[l4 + 13] &= ~(TCP_FIN | TCP_URG);
  if (v6) writeU16(b, l3 + IP6_PLEN, hl + len - IPV6_HLEN);
  else {
    writeU16(b, l3 + IP_TOTLEN, hl + len);
    writeU16(b, l3 + IP_CHECK, 0);
    writeU16(b, l3 + IP_CHECK, ipv4HeaderChecksum(b, l3));
  }
  tcpChecksum(b, l3, l4, l3 + hl + len, v6);
  return v6 ? e.emitToDest6(b, l3, hl + len, p, now) : e.emitToDest(b, l3, hl + len, p, now);
}

/**
 * An ICMP error from the real server's side quotes a segment the director shifted: its sequence
 * number goes back to the client's, or the client's stack ignores the error as out of its window
 * (tcp_v4_err / tcp_v6_err: `between(seq, snd_una, snd_nxt)`). csum: a checksum field over the
 * quote to keep right, or -1 when the caller sums the message anew.
 */
function ppQuoteBack(t: ConnTable, c: number, f: Flow, csum: number): void {
  if ((t.flagsOf(c) & CONN_F_PP) === 0 || f.innerProto !== IPPROTO_TCP) return;
  const b = f.buf;
  const q = f.innerL4Off + 4;
  if (q + 4 > f.l3End) return;
  const w = t.ppWordOf(c);
  const old = readU32(b, q);
  const v = ppSeqBack(old, t.ppIsnOf(c), w & PPW_LEN, w >>> PPW_OLD_SHIFT, (w & PPW_DONE) !== 0) >>> 0;
  writeU32(b, q, v);
  if (csum >= 0) writeU16(b, csum, csumReplace32(readU16(b, csum), old, v));
}

/** A reply of a PP connection: its ACK and SACK numbers as the client must see them. */
function ppOutbound(t: ConnTable, c: number, f: Flow): void {
  if (f.proto !== IPPROTO_TCP) return;
  const w = t.ppWordOf(c);
  const isn1 = t.ppIsnOf(c);
  const done = (w & PPW_DONE) !== 0;
  if (ppAckBack(f.buf, f.l4Off, f.l3End, isn1, w & PPW_LEN, w >>> PPW_OLD_SHIFT, done) && !done)
    t.setPp(c, isn1, w | PPW_DONE);
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
    if ((f.tcpFlags & TCP_SYN) !== 0 || (t.flagsOf(c) & CONN_F_PP) !== 0) {
      const v = ppInbound(e, c, f, p, p.iface.mtu, false, now);
      if (v >= 0) return v;
    }
    maybeAddToa(e, c, f, p.iface.mtu);
    return e.emitToDest(f.buf, f.l3Off, f.l3End - f.l3Off, p, now);
  },

  segmentsInbound: cutForToa,

  outbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    if (t.isIpv6(c)) return outbound64(e, c, f, now);
    if ((t.flagsOf(c) & CONN_F_PP) !== 0) ppOutbound(t, c, f);
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
    if (t.isIpv6(c)) return icmpOutbound64(e, c, f, now);
    ppQuoteBack(t, c, f, -1);
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
    if ((f.tcpFlags & TCP_SYN) !== 0 || (t.flagsOf(c) & CONN_F_PP) !== 0) {
      const v = ppInbound(e, c, f, p, p.iface.mtu, true, now);
      if (v >= 0) return v;
    }
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
    if ((t.flagsOf(c) & CONN_F_PP) !== 0) ppOutbound(t, c, f);
    setAddrPort6(f, IP6_SADDR, a, (c << 4) + A6_VADDR, t.vportOf(c));
    setAddrPort6(f, IP6_DADDR, a, (c << 4) + A6_CADDR, t.cportOf(c));
    return e.emitIp6(f.buf, f.l3Off, f.l3End - f.l3Off, a, (c << 4) + A6_CADDR, 0, now);
  },

  // As the IPv4 one: toward the real server from the LIP, about RIP:rport → LIP:lport.
  icmpInbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    if (!t.isDestIpv6(c)) return icmpInbound64(e, c, f, now);
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
    ppQuoteBack(t, c, f, -1);
    if (!relay6(f, a, c, A6_VADDR, t.vportOf(c), A6_CADDR, t.cportOf(c))) return e.drop(R.icmp_unrelated);
    return e.emitIp6(f.buf, f.l3Off, f.l3End - f.l3Off, a, (c << 4) + A6_CADDR, 0, now);
  },
};

/** NAT64's request (see the top): IPv6 from the client, out as IPv4 from the LIP to the RIP. */
function inbound64(e: XmitEngine, c: number, f: Flow, now: number): number {
  const t = e.conns;
  // A first fragment (the others never found the connection: no ports) is not translated: its
  // companions are dropped before the lookup and the engine does not reassemble.
  if (f.fragment) return e.drop(R.nat64_fragment);
  const p = e.destPath(t.destOf(c));
  if (p === null) return Verdict.Drop;
  // The IPv4 datagram is 20 bytes (and the extension headers) shorter: the IPv6 packet may be
  // that much longer than the IPv4 link, and packet too big says so (RFC 7915 §5.1's MTU + 20).
  if (!e.fitsPath6(p, f.l3End - f.l3Off, IPV4_HLEN - (f.l4Off - f.l3Off), f, f.d6, now)) return Verdict.Drop;
  if (!nat64ToIpv4(f, t.laddrOf(c) | 0, t.lportOf(c), t.daddrOf(c) | 0, t.dportOf(c)))
    return e.drop(R.unsupported);
  if ((f.tcpFlags & TCP_SYN) !== 0 || (t.flagsOf(c) & CONN_F_PP) !== 0) {
    const v = ppInbound(e, c, f, p, p.iface.mtu, false, now);
    if (v >= 0) return v;
  }
  maybeAddToa(e, c, f, p.iface.mtu);
  return e.emitToDest(f.buf, f.l3Off, f.l3End - f.l3Off, p, now);
}

/** Where outbound64 builds the IPv6 fragments of a reply, one at a time (RFC 7915 §4.1). */
const fragBuf = new Uint8Array(ETH_HLEN + NAT64_FRAG_MTU);

/** NAT64's reply: IPv4 from the RIP to the LIP, out as IPv6 from the VIP6 to the client. */
function outbound64(e: XmitEngine, c: number, f: Flow, now: number): number {
  const t = e.conns;
  const a = t.addr6Words;
  if (a === null) return Verdict.Drop;
  if (f.fragment) return e.drop(R.nat64_fragment);
  if ((t.flagsOf(c) & CONN_F_PP) !== 0) ppOutbound(t, c, f);
  const at = c << 4;
  // The IPv6 packet: the transport segment behind 40 bytes (IPv4 options are dropped); for an
  // aggregate, its largest segment.
  let len6 = f.l3End - f.l4Off + IPV6_HLEN;
  if (f.gsoType !== 0 && f.gsoSize !== 0)
    len6 = Math.min(len6, f.payloadOff - f.l4Off + f.gsoSize + IPV6_HLEN);
  let frags = false;
  if (f.df) {
    // RFC 7915 §4.1: DF and over the IPv6 next hop's MTU: frag-needed to the sender with that MTU
    // less the 20 bytes the header grows by, from the LIP it sent to. Up to 1280 bytes fit any
    // IPv6 link: no route lookup for those.
    const mtu6 = len6 > NAT64_FRAG_MTU ? e.routeMtu6(a, at + A6_CADDR) : 0;
    if (mtu6 !== 0 && len6 > mtu6) return e.fragNeeded(f, mtu6 - IPV4_HLEN, t.laddrOf(c) | 0, now);
  } else if (len6 > NAT64_FRAG_MTU) {
    // Without DF, over 1280 bytes: IPv6 fragments of 1280. An aggregate would have to be finished
    // and cut first; the kernel never hands one without DF here (TCP sets DF).
    if (f.gsoType !== 0) return e.drop(R.too_big);
    frags = true;
  }
  const syn = f.proto === IPPROTO_TCP && (f.tcpFlags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK);
  const id = f.ipId;
  if (!nat64ToIpv6(f, e.scratch, a, at + A6_VADDR, t.vportOf(c), a, at + A6_CADDR, t.cportOf(c)))
    return e.drop(R.unsupported);
  if (syn) nat64ClampMss(f);
  if (!frags) return e.emitIp6(f.buf, f.l3Off, f.l3End - f.l3Off, a, at + A6_CADDR, 0, now);
  const n = nat64FragmentCount(f.l3Off, f.l3End);
  let v: number = Verdict.Drop;
  for (let k = 0; k < n; k++) {
    const len = nat64Fragment6(fragBuf, ETH_HLEN, f.buf, f.l3Off, f.l3End, id, k);
    if (len === 0) return e.drop(R.unsupported);
    v = e.emitIp6(fragBuf, ETH_HLEN, len, a, at + A6_CADDR, 0, now);
    if (v !== Verdict.Sent) break;
  }
  return v;
}

/** A translation's failure as its drop reason (nat64.ts NAT64_ICMP_*). */
function icmpDrop(e: XmitEngine, r: number): number {
  if (r === NAT64_ICMP_UNTRANSLATABLE) return e.drop(R.nat64_icmp_untranslatable);
  return e.drop(r === NAT64_ICMP_CSUM ? R.nat64_icmp_csum : R.icmp_unrelated);
}

/**
 * An ICMPv4 error from the real server's side about a NAT64 request (LIP:lport → RIP:rport): the
 * client gets the ICMPv6 error about [CIP]:cport → [VIP]:vport, from the VIP (RFC 7915 §4.2).
 */
function icmpOutbound64(e: XmitEngine, c: number, f: Flow, now: number): number {
  const t = e.conns;
  const a = t.addr6Words;
  if (a === null) return Verdict.Drop;
  // The translation verifies the ICMPv4 checksum: kept right.
  ppQuoteBack(t, c, f, f.l4Off + 2);
  const at = c << 4;
  const n = nat64IcmpToIcmpv6(
    f,
    e.scratch,
    ETH_HLEN,
    a,
    at + A6_VADDR,
    t.vportOf(c),
    a,
    at + A6_CADDR,
    t.cportOf(c),
    e.routeMtu6(a, at + A6_CADDR),
    e.destMtuOf(t.destOf(c)),
  );
  if (n <= 0) return icmpDrop(e, n);
  return e.emitIp6(e.scratch, ETH_HLEN, n, a, at + A6_CADDR, 0, now);
}

/**
 * An ICMPv6 error from the client's side about a NAT64 reply ([VIP]:vport → [CIP]:cport): the real
 * server gets the ICMPv4 error about RIP:rport → LIP:lport, from the LIP (RFC 7915 §5.2).
 */
function icmpInbound64(e: XmitEngine, c: number, f: Flow, now: number): number {
  const t = e.conns;
  const a = t.addr6Words;
  const p = e.destPath(t.destOf(c));
  if (p === null || a === null) return Verdict.Drop;
  const n = nat64IcmpToIcmpv4(
    f,
    t.laddrOf(c) | 0,
    t.lportOf(c),
    t.daddrOf(c) | 0,
    t.dportOf(c),
    p.iface.mtu,
    e.routeMtu6(a, (c << 4) + A6_CADDR),
  );
  if (n <= 0) return icmpDrop(e, n);
  return e.emitToDest(f.buf, f.l3Off, n, p, now);
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
  icmpInbound: icmpInbound64,
  icmpOutbound: icmpOutbound64,
};
