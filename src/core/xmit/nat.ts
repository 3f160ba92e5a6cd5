// NAT (LVS-NAT, "Masq"): net/netfilter/ipvs/ip_vs_xmit.c ip_vs_nat_xmit and the
// tcp/udp dnat/snat handlers. Request: dst VIP:vport → RIP:rport. Reply (real server's
// default gateway is the director): src RIP:rport → VIP:vport. Checksums are updated
// incrementally (RFC 1624) by the codecs. Addresses are passed as int32 (`| 0`): a u32 above
// 2^31 crossing a call is a boxed heap number, one allocation per packet.

import type { Flow } from "../packet/flow.js";
import {
  icmpInnerSetDaddr,
  icmpInnerSetDport,
  icmpInnerSetSaddr,
  icmpInnerSetSport,
  icmpRecomputeChecksum,
} from "../packet/icmp.js";
import { ipv4SetDaddr, ipv4SetDaddrDport, ipv4SetSaddr, ipv4SetSaddrSport } from "../packet/ipv4.js";
import { Verdict, type XmitEngine, type XmitMethod } from "./types.js";

export const nat: XmitMethod = {
  name: "nat",

  inbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    const p = e.destPath(t.destOf(c));
    if (p === null) return Verdict.Drop;
    const len = f.l3End - f.l3Off;
    if (!e.fitsPath(p, len, 0, f, f.daddr | 0, now)) return Verdict.Drop;
    ipv4SetDaddrDport(f.buf, f, t.daddrOf(c) | 0, t.dportOf(c));
    return e.emitToDest(f.buf, f.l3Off, len, p, now);
  },

  outbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    ipv4SetSaddrSport(f.buf, f, t.vaddrOf(c) | 0, t.vportOf(c));
    return e.emitIp(f.buf, f.l3Off, f.l3End - f.l3Off, f.daddr | 0, now);
  },

  // ip_vs_nat_icmp(inout = 0): the client reports an error about a reply it got from
  // VIP:vport; the real server must see it about RIP:rport.
  icmpInbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    const p = e.destPath(t.destOf(c));
    if (p === null) return Verdict.Drop;
    ipv4SetDaddr(f.buf, f, t.daddrOf(c) | 0);
    icmpInnerSetSaddr(f.buf, f, t.daddrOf(c));
    icmpInnerSetSport(f.buf, f, t.dportOf(c));
    icmpRecomputeChecksum(f.buf, f);
    return e.emitToDest(f.buf, f.l3Off, f.l3End - f.l3Off, p, now);
  },

  // ip_vs_nat_icmp(inout = 1): an error about a request we forwarded (CIP → RIP:rport) goes
  // back to the client as if it were about CIP → VIP:vport, from the VIP.
  icmpOutbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    ipv4SetSaddr(f.buf, f, t.vaddrOf(c) | 0);
    icmpInnerSetDaddr(f.buf, f, t.vaddrOf(c));
    icmpInnerSetDport(f.buf, f, t.vportOf(c));
    icmpRecomputeChecksum(f.buf, f);
    return e.emitIp(f.buf, f.l3Off, f.l3End - f.l3Off, f.daddr | 0, now);
  },
};
