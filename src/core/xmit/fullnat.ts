// FULLNAT (tsvs extension, after DPVS/Alibaba LVS FULLNAT): the director rewrites both
// ends, CIP:cport → LIP:lport and VIP:vport → RIP:rport, so real servers need no setup
// and may sit on any routed network: they answer the LIP, and the director rewrites the
// reply back to VIP:vport → CIP:cport. The client's address is handed to the real server
// in a TOA TCP option (kind 254: port + IPv4 address), the layout the TOA kernel module
// reads from the ACK that completes the handshake; tsvs adds it to the SYN and that ACK.

import { CONN_F_TOA_SENT } from "../conn/table.js";
import type { Flow } from "../packet/flow.js";
import { IPPROTO_TCP, TCP_ACK, TCP_RST, TCP_SYN } from "../packet/flow.js";
import {
  icmpInnerSetDaddr,
  icmpInnerSetDport,
  icmpInnerSetSaddr,
  icmpInnerSetSport,
  icmpRecomputeChecksum,
} from "../packet/icmp.js";
import { ipv4SetDaddr, ipv4SetDaddrDport, ipv4SetSaddr, ipv4SetSaddrSport } from "../packet/ipv4.js";
import { TCPOLEN_TOA, tcpInsertOption, writeToaOption } from "../packet/tcp.js";
import { Verdict, type XmitEngine, type XmitMethod } from "./types.js";

/** Preallocated option bytes (no allocation per packet). */
const toa = new Uint8Array(TCPOLEN_TOA);

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
  if (f.l3End - f.l3Off + TCPOLEN_TOA > mtu) return;
  // The frame is moved to the scratch buffer, which has room to grow the TCP header.
  const s = e.scratch;
  if (f.buf !== s) {
    s.set(f.buf.subarray(0, f.l3End), 0);
    f.buf = s;
  }
  writeToaOption(toa, 0, t.cportOf(c), t.caddrOf(c));
  if (tcpInsertOption(s, f, toa, TCPOLEN_TOA, s.length) && handshakeAck)
    t.setFlags(c, t.flagsOf(c) | CONN_F_TOA_SENT);
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

  // An aggregate that would get TOA is cut first: GSO would copy the option into every segment
  // (and past the MSS the sender chose); only the first segment gets it. When the first segment
  // has no room for it (maybeAddToa would skip it too), the aggregate goes out whole.
  segmentsInbound(e: XmitEngine, c: number, f: Flow): boolean {
    if (!wantsToa(e, c, f)) return false;
    const first = f.payloadOff - f.l3Off + Math.min(f.gsoSize, f.l3End - f.payloadOff);
    return first + TCPOLEN_TOA <= e.destMtuOf(e.conns.destOf(c));
  },

  outbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
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
