// TUN (LVS-TUN, "Tunnel"): net/netfilter/ipvs/ip_vs_xmit.c ip_vs_tunnel_xmit, IPIP
// encapsulation (RFC 2003) from the DIP to the RIP. The outer header copies the inner
// TOS, TTL and DF bit. When the encapsulated datagram would exceed the path MTU and the
// client set DF, the client gets fragmentation-needed with MTU - 20 (ensure_mtu_is_adequate
// with the tunnel's overhead), so its TCP lowers its segment size.
//
// A GSO aggregate is cut into segments before it is encapsulated (the engine does it:
// segmentsInbound): a virtio_net_hdr has no gso_type for IPIP (SKB_GSO_IPXIP4), so the kernel
// could not segment an encapsulated aggregate.

import type { DestPath } from "../output.js";
import type { Flow } from "../packet/flow.js";
import { ipipEncap } from "../packet/ipip.js";
import { Verdict, type XmitEngine, type XmitMethod } from "./types.js";

const IPIP_OVERHEAD = 20;
const ETH_HLEN = 14;

function encapsulate(e: XmitEngine, p: DestPath, c: number, f: Flow, now: number): number {
  const out = e.scratch;
  const len = ipipEncap(
    out,
    ETH_HLEN,
    f.buf,
    f.l3Off,
    f.l3End - f.l3Off,
    p.src,
    e.conns.daddrOf(c),
    f.ttl,
    f.tos,
    f.df,
  );
  return e.emitToDest(out, ETH_HLEN, len, p, now);
}

export const tun: XmitMethod = {
  name: "tun",

  inbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const p = e.destPath(e.conns.destOf(c));
    if (p === null) return Verdict.Drop;
    if (!e.fitsPath(p, f.l3End - f.l3Off, IPIP_OVERHEAD, f, f.daddr | 0, now)) return Verdict.Drop;
    return encapsulate(e, p, c, f, now);
  },

  segmentsInbound(): boolean {
    return true;
  },

  // Replies never come back through the director (same shape as nat/fullnat: one call site).
  outbound: undefined,

  icmpInbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const p = e.destPath(e.conns.destOf(c));
    if (p === null) return Verdict.Drop;
    if (!e.fitsPath(p, f.l3End - f.l3Off, IPIP_OVERHEAD, f, 0, now)) return Verdict.Drop;
    return encapsulate(e, p, c, f, now);
  },

  icmpOutbound: undefined,
};
