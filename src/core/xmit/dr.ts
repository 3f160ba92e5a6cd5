// DR (LVS-DR, "Route"): net/netfilter/ipvs/ip_vs_xmit.c ip_vs_dr_xmit. The IP packet is
// left as the client sent it (TTL aside); the frame goes to the real server's MAC on the
// shared segment. The real server holds the VIP on lo (ARP suppressed) and answers the
// client directly, so replies never come back here (the connection is NOOUTPUT, and the
// TCP state machine uses the INPUT_ONLY rows).
//
// IPv6 (dr6: ip_vs_dr_xmit_v6): the same, through the IPv6 route and NDP; the hop limit was
// decremented by the engine (decrement_ttl in __ip_vs_get_out_rt_v6), the MTU answered with packet
// too big.

import type { Flow } from "../packet/flow.js";
import { Verdict, type XmitEngine, type XmitMethod } from "./types.js";

export const dr: XmitMethod = {
  name: "dr",

  inbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const p = e.destPath(e.conns.destOf(c));
    if (p === null) return Verdict.Drop;
    const len = f.l3End - f.l3Off;
    if (!e.fitsPath(p, len, 0, f, f.daddr | 0, now)) return Verdict.Drop;
    return e.emitToDest(f.buf, f.l3Off, len, p, now);
  },

  // Replies never come back through the director (same shape as nat/fullnat: one call site).
  outbound: undefined,

  // Errors from the client side about our (the real server's) replies go to the real
  // server unchanged, as the kernel's ip_vs_icmp_xmit does for DR.
  icmpInbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const p = e.destPath(e.conns.destOf(c));
    if (p === null) return Verdict.Drop;
    return e.emitToDest(f.buf, f.l3Off, f.l3End - f.l3Off, p, now);
  },

  icmpOutbound: undefined,
};

export const dr6: XmitMethod = {
  name: "dr",

  inbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const p = e.destPath(e.conns.destOf(c));
    if (p === null) return Verdict.Drop;
    const len = f.l3End - f.l3Off;
    if (!e.fitsPath6(p, len, 0, f, f.d6, now)) return Verdict.Drop;
    return e.emitToDest6(f.buf, f.l3Off, len, p, now);
  },

  outbound: undefined,

  icmpInbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const p = e.destPath(e.conns.destOf(c));
    if (p === null) return Verdict.Drop;
    return e.emitToDest6(f.buf, f.l3Off, f.l3End - f.l3Off, p, now);
  },

  icmpOutbound: undefined,
};
