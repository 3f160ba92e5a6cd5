// TUN (LVS-TUN, "Tunnel"): net/netfilter/ipvs/ip_vs_xmit.c ip_vs_tunnel_xmit. The client's
// datagram goes from the DIP to the RIP inside one of the kernel's three encapsulations, chosen by
// the destination's --tun-type:
//   ipip  RFC 2003, outer IPv4 proto 4                               (packet/ipip.ts)  +20 bytes
//   gue   outer IPv4 + UDP to --tun-port + GUE header, proto_ctype 4  (packet/gue.ts)   +32 (+8)
//   gre   outer IPv4 proto 47 + GRE, protocol 0x0800                  (packet/gre.ts)   +24 (+4)
// The outer header copies the inner TTL and DF bit, and the inner TOS with ECN encapsulated
// (packet/ipip.ts tunnelTos). When the encapsulated datagram would exceed the path MTU and the
// client set DF, the client gets fragmentation-needed with the link MTU minus the type's overhead
// (__ip_vs_get_out_rt in tunnel mode: 1480 for IPIP, 1468 for GUE, 1476 for GRE, 1472 for GRE with
// checksum, on a 1500-byte link), so its TCP lowers its segment size.
//
// Flags (include/uapi/linux/ip_vs.h IP_VS_TUNNEL_ENCAP_FLAG_*): GUE computes its UDP checksum with
// CSUM or REMCSUM (else 0); GRE carries a checksum with CSUM. REMCSUM adds GUE's remote-checksum
// option only for a datagram whose transport checksum is still partial (the kernel's
// skb->ip_summed == CHECKSUM_PARTIAL; here f.csumPartial on a plain frame): its checksum stays
// partial for the real server to finish, and the option's 8 bytes count in the MTU. Frames from
// the AF_PACKET links arrive complete (the link finishes partial checksums), so on the wire
// REMCSUM then looks like CSUM, as it does from a kernel director fed by a NIC.
//
// The outer UDP source port of GUE is udp_flow_src_port's: a flow hash scaled into the local port
// range 32768-60999 (packet/gue.ts), so one connection keeps one port.
//
// A GSO aggregate is cut into segments before it is encapsulated (the engine does it:
// segmentsInbound): a virtio_net_hdr has no gso_type for these tunnels (SKB_GSO_IPXIP4,
// SKB_GSO_UDP_TUNNEL, SKB_GSO_GRE), so the kernel could not segment an encapsulated aggregate.
//
// IPv6 (tun6: ip_vs_tunnel_xmit_v6 toward an IPv6 real server): the datagram goes inside an outer
// IPv6 header, next header 41 (IPv6-in-IPv6), from the director's address toward the real server,
// with the inner hop limit (already decremented), the inner traffic class with ECN encapsulated,
// and flow label 0. The MTU less the 40 outer bytes must stay at least IPV6_MIN_MTU, else the
// packet is dropped; past it the client gets packet too big. GUE and GRE over IPv6 are not built
// yet: those destinations drop their packets (unsupported).

import { ipv6FromWords } from "../addr.js";
import { A6_DADDR } from "../conn/table.js";
import { R } from "../counters.js";
import { type Dest, TunType } from "../dest.js";
import type { DestPath } from "../output.js";
import { l4ChecksumV4 } from "../packet/csum.js";
import { type Flow, IPPROTO_TCP, IPPROTO_UDP } from "../packet/flow.js";
import { GRE_CSUM_OVERHEAD, GRE_OVERHEAD, greEncap } from "../packet/gre.js";
import {
  GUE_OVERHEAD,
  GUE_REMCSUM_OVERHEAD,
  gueEncap,
  gueFlowHash,
  udpSrcPortFromHash,
} from "../packet/gue.js";
import { IPIP_OVERHEAD, ipipEncap, placeInner, tunnelTos } from "../packet/ipip.js";
import { IPV6_HLEN, NEXTHDR_IPV6, writeIpv6Header } from "../packet/ipv6.js";
import { Verdict, type XmitEngine, type XmitMethod } from "./types.js";

/** IP_VS_TUNNEL_ENCAP_FLAG_CSUM / _REMCSUM (NOCSUM is 0). */
export const TUN_F_CSUM = 1;
export const TUN_F_REMCSUM = 2;

const ETH_HLEN = 14;

/** GUE with REMCSUM, and a datagram whose TCP/UDP checksum the receiver is to finish. */
function remcsum(d: Dest, f: Flow): boolean {
  return (
    (d.tunFlags & TUN_F_REMCSUM) !== 0 &&
    f.csumPartial &&
    f.gsoType === 0 &&
    !f.fragment &&
    (f.proto === IPPROTO_TCP || f.proto === IPPROTO_UDP)
  );
}

/** The bytes the destination's encapsulation adds to a datagram (the MTU check's overhead). */
export function tunOverhead(d: Dest, f: Flow): number {
  const t = d.tunType;
  if (t === TunType.Gue) return GUE_OVERHEAD + (remcsum(d, f) ? GUE_REMCSUM_OVERHEAD : 0);
  if (t === TunType.Gre) return (d.tunFlags & TUN_F_CSUM) !== 0 ? GRE_CSUM_OVERHEAD : GRE_OVERHEAD;
  return IPIP_OVERHEAD;
}

/**
 * A plain frame whose transport checksum is partial leaves encapsulated with it finished (the
 * kernel's device or skb_checksum_help would finish it; the tunnel hides it from any offload).
 */
function finishChecksum(f: Flow): void {
  if (!f.csumPartial || f.gsoType !== 0 || f.fragment) return;
  const field = f.proto === IPPROTO_TCP ? 16 : f.proto === IPPROTO_UDP ? 6 : -1;
  if (field < 0) return;
  const c = l4ChecksumV4(f.buf, f.l3Off, f.l4Off, f.l3End - f.l4Off, f.proto);
  f.buf[f.l4Off + field] = c >>> 8;
  f.buf[f.l4Off + field + 1] = c & 255;
  f.csumPartial = false;
}

function encapsulate(e: XmitEngine, p: DestPath, c: number, f: Flow, now: number): number {
  const d = p.dest;
  const out = e.scratch;
  const l3Len = f.l3End - f.l3Off;
  const daddr = e.conns.daddrOf(c);
  const tos = tunnelTos(f.tos);
  const t = d.tunType;
  let len: number;
  if (t === TunType.Gue) {
    const rem = remcsum(d, f);
    if (!rem) finishChecksum(f);
    const sport = udpSrcPortFromHash(gueFlowHash(f.saddr, f.daddr, f.sport, f.dport, f.proto));
    len = gueEncap(
      out,
      ETH_HLEN,
      f.buf,
      f.l3Off,
      l3Len,
      p.src,
      daddr,
      f.ttl,
      tos,
      f.df,
      sport,
      d.tunPort,
      (d.tunFlags & (TUN_F_CSUM | TUN_F_REMCSUM)) !== 0,
      rem ? f.l4Off - f.l3Off : -1,
      f.proto === IPPROTO_TCP ? 16 : 6,
    );
  } else {
    finishChecksum(f);
    len =
      t === TunType.Gre
        ? greEncap(
            out,
            ETH_HLEN,
            f.buf,
            f.l3Off,
            l3Len,
            p.src,
            daddr,
            f.ttl,
            tos,
            f.df,
            (d.tunFlags & TUN_F_CSUM) !== 0,
          )
        : ipipEncap(out, ETH_HLEN, f.buf, f.l3Off, l3Len, p.src, daddr, f.ttl, tos, f.df);
  }
  if (len === 0) return e.drop(R.too_big);
  return e.emitToDest(out, ETH_HLEN, len, p, now);
}

export const tun: XmitMethod = {
  name: "tun",

  inbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const p = e.destPath(e.conns.destOf(c));
    if (p === null) return Verdict.Drop;
    if (!e.fitsPath(p, f.l3End - f.l3Off, tunOverhead(p.dest, f), f, f.daddr | 0, now)) return Verdict.Drop;
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
    if (!e.fitsPath(p, f.l3End - f.l3Off, tunOverhead(p.dest, f), f, 0, now)) return Verdict.Drop;
    return encapsulate(e, p, c, f, now);
  },

  icmpOutbound: undefined,
};

/** The outer source and destination of an IPv6 tunnel, as 16 bytes each. */
const outerAddrs = new Uint8Array(32);

/** The IPv6-in-IPv6 packet toward the connection's real server, built in scratch and sent. */
function encapsulate6(e: XmitEngine, p: DestPath, c: number, f: Flow, now: number): number {
  const a = e.conns.addr6Words;
  const src = p.src6;
  if (a === null || src === null) return e.drop(R.no_route);
  const out = e.scratch;
  const len = placeInner(out, ETH_HLEN, f.buf, f.l3Off, f.l3End - f.l3Off, IPV6_HLEN);
  if (len === 0) return e.drop(R.too_big);
  ipv6FromWords(src, 0, outerAddrs, 0);
  ipv6FromWords(a, (c << 4) + A6_DADDR, outerAddrs, 16);
  writeIpv6Header(
    out,
    ETH_HLEN,
    tunnelTos(f.tos),
    0,
    len - IPV6_HLEN,
    NEXTHDR_IPV6,
    f.ttl,
    outerAddrs,
    0,
    outerAddrs,
    16,
  );
  return e.emitToDest6(out, ETH_HLEN, len, p, now);
}

/**
 * A packet of connection c (a request, or an error from the client's side) through the tunnel:
 * over the MTU, packet too big from errSrc (the VIP for a request; none for a relayed error).
 */
function tunnel6(e: XmitEngine, c: number, f: Flow, errSrc: Int32Array | null, now: number): number {
  const p = e.destPath(e.conns.destOf(c));
  if (p === null) return Verdict.Drop;
  if (p.dest.tunType !== TunType.Ipip) return e.drop(R.unsupported);
  if (!e.fitsPath6(p, f.l3End - f.l3Off, IPV6_HLEN, f, errSrc, now)) return Verdict.Drop;
  return encapsulate6(e, p, c, f, now);
}

export const tun6: XmitMethod = {
  name: "tun",

  inbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    return tunnel6(e, c, f, f.d6, now);
  },

  segmentsInbound(): boolean {
    return true;
  },

  outbound: undefined,

  icmpInbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    return tunnel6(e, c, f, null, now);
  },

  icmpOutbound: undefined,
};
