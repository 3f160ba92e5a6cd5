// TUN (LVS-TUN, "Tunnel"): net/netfilter/ipvs/ip_vs_xmit.c ip_vs_tunnel_xmit (toward an IPv4 real
// server) and ip_vs_tunnel_xmit_v6 (toward an IPv6 one). The client's datagram goes from the
// director to the RIP inside one of the kernel's three encapsulations, chosen by the destination's
// --tun-type:
//   ipip  outer IP only                                             (packet/ipip.ts)
//   gue   outer IP + UDP to --tun-port + GUE header                  (packet/gue.ts)   +12 (+8)
//   gre   outer IP + GRE header                                      (packet/gre.ts)   +4 (+4)
//
// One path for every family pair. The kernel binds a TUN connection to ip_vs_tunnel_xmit_v6 when
// its destination is IPv6 (ip_vs_bind_xmit: cp->daf), else ip_vs_tunnel_xmit, whatever the
// client's family; ip_vs_ctl.c lets a destination's family differ from its service's for TUN only
// (ip_vs_genl_set_cmd). So:
//   - the flow's family (the service's) decides the inner datagram: what the outer header says is
//     inside (ip_vs_prepare_tunneled_skb's next_protocol: IPPROTO_IPIP 4 for IPv4, IPPROTO_IPV6 41
//     for IPv6; GUE's proto_ctype; GRE's protocol 0x0800 / 0x86DD), and the MTU error the client
//     gets (ensure_mtu_is_adequate(skb_af): fragmentation needed for IPv4, packet too big for
//     IPv6);
//   - the destination's family decides the outer header and the output path: outer IPv4 from the
//     route's source (emitToDest), or outer IPv6 from the IPv6 route's source (emitToDest6), and
//     the smallest tunnel MTU that still carries anything (68 below IPv4, IPV6_MIN_MTU below IPv6:
//     __ip_vs_get_out_rt / _v6 drop every packet under it, without an error).
// The engine still indexes XMIT by the client's family (it parsed the flow as one); both tables
// hold this one method.
//
// The outer header, as the kernel fills it:
//   - TTL / hop limit: the inner one (already decremented by the engine: decrement_ttl(skb_af));
//   - TOS / traffic class: the inner DSCP and ECN with ECN encapsulated, CE → ECT(0)
//     (INET_ECN_encapsulate, packet/ipip.ts tunnelTos);
//   - IPv4 DF: the inner DF for an IPv4 datagram (net.ipv4.vs.pmtu_disc, on by default), never for an
//     IPv6 one (ip_vs_prepare_tunneled_skb sets *df = 0: an IPv6 datagram that does not fit was
//     already answered with packet too big, so the outer header may be fragmented on the way);
//     the ID 0 with DF (ip_select_ident: an atomic datagram), else a per-destination counter;
//   - IPv6: flow label 0 (ip_vs_tunnel_xmit_v6 clears it), payload length the rest.
//
// The MTU (__ip_vs_get_out_rt(_v6) in tunnel mode): the link MTU less the outer header and the
// type's header (GUE 12, +8 with the remote-checksum option; GRE 4, +4 with its checksum). Over it:
// an IPv4 datagram with DF gets fragmentation needed with that MTU (1480 IPIP, 1468 GUE, 1476 GRE
// over IPv4 on a 1500-byte link; 1460, 1448, 1456 over IPv6), an IPv6 one packet too big with it
// (it may be below 1280 when the outer header is IPv4: the kernel sends it as computed), so the
// client's TCP lowers its segment size. An IPv4 datagram without DF that does not fit is dropped
// and counted (too_big) where the kernel would fragment the outer datagram: tsvs fragments nothing.
//
// Flags (include/uapi/linux/ip_vs.h IP_VS_TUNNEL_ENCAP_FLAG_*): GUE computes its UDP checksum with
// CSUM or REMCSUM, else 0 — over IPv6 too (udp6_set_csum(nocheck): the zero checksum RFC 6935
// allows a tunnel; the receiver must accept it, as fou's IPv6 socket does); GRE carries a checksum
// with CSUM. REMCSUM adds GUE's remote-checksum option only for a datagram whose transport checksum
// is still partial (the kernel's skb->ip_summed == CHECKSUM_PARTIAL; here f.csumPartial on a plain
// frame): its checksum stays partial for the real server to finish, and the option's 8 bytes count
// in the MTU. Frames from the AF_PACKET links arrive complete (the engine finishes partial
// checksums of plain frames), so on the wire REMCSUM then looks like CSUM, as it does from a kernel
// director fed by a NIC.
//
// The outer UDP source port of GUE is udp_flow_src_port's: a flow hash scaled into the local port
// range 32768-60999 (packet/gue.ts), so one connection keeps one port (an IPv6 flow hashes its
// addresses' folds).
//
// A GSO aggregate is cut into segments before it is encapsulated (the engine does it:
// segmentsInbound): a virtio_net_hdr has no gso_type for these tunnels (SKB_GSO_IPXIP4/6,
// SKB_GSO_UDP_TUNNEL, SKB_GSO_GRE), so the kernel could not segment an encapsulated aggregate.

import { ipv6FromWords } from "../addr.js";
import { A6_DADDR } from "../conn/table.js";
import { R } from "../counters.js";
import { type Dest, TunType } from "../dest.js";
import type { DestPath } from "../output.js";
import { l4ChecksumV4, l4ChecksumV6 } from "../packet/csum.js";
import { type Flow, IPPROTO_TCP, IPPROTO_UDP } from "../packet/flow.js";
import { GRE_CSUM_LEN, GRE_HLEN, greEncap, greEncap6, greProtocol } from "../packet/gre.js";
import {
  GUE_ENCAP_HLEN,
  GUE_REMCSUM_OVERHEAD,
  gueEncap,
  gueEncap6,
  gueFlowHash,
  udpSrcPortFromHash,
} from "../packet/gue.js";
import { innerProtocol, ipip6Encap, ipipEncap, tunnelTos } from "../packet/ipip.js";
import { IPV4_HLEN } from "../packet/ipv4.js";
import { IPV6_HLEN, IPV6_MIN_MTU } from "../packet/ipv6.js";
import { Verdict, type XmitEngine, type XmitMethod } from "./types.js";

/** IP_VS_TUNNEL_ENCAP_FLAG_CSUM / _REMCSUM (NOCSUM is 0). */
export const TUN_F_CSUM = 1;
export const TUN_F_REMCSUM = 2;

/** The smallest tunnel MTU over IPv4 (__ip_vs_get_out_rt: "mtu less than 68"). */
export const IPV4_TUN_MIN_MTU = 68;

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

/**
 * The bytes the destination's encapsulation adds to a datagram (the MTU check's overhead): the
 * outer header of the destination's family and the type's own header.
 */
export function tunOverhead(d: Dest, f: Flow): number {
  const outer = d.addr6 !== null ? IPV6_HLEN : IPV4_HLEN;
  const t = d.tunType;
  if (t === TunType.Gue) return outer + GUE_ENCAP_HLEN + (remcsum(d, f) ? GUE_REMCSUM_OVERHEAD : 0);
  if (t === TunType.Gre) return outer + GRE_HLEN + ((d.tunFlags & TUN_F_CSUM) !== 0 ? GRE_CSUM_LEN : 0);
  return outer;
}

/**
 * A plain frame whose transport checksum is partial leaves encapsulated with it finished (the
 * kernel's device or skb_checksum_help would finish it; the tunnel hides it from any offload).
 */
function finishChecksum(f: Flow): void {
  if (!f.csumPartial || f.gsoType !== 0 || f.fragment) return;
  const field = f.proto === IPPROTO_TCP ? 16 : f.proto === IPPROTO_UDP ? 6 : -1;
  if (field < 0) return;
  const len = f.l3End - f.l4Off;
  const c =
    f.af === 6
      ? l4ChecksumV6(f.buf, f.l3Off, f.l4Off, len, f.proto)
      : l4ChecksumV4(f.buf, f.l3Off, f.l4Off, len, f.proto);
  f.buf[f.l4Off + field] = c >>> 8;
  f.buf[f.l4Off + field + 1] = c & 255;
  f.csumPartial = false;
}

/** The UDP source port of a GUE flow (udp_flow_src_port). */
function gueSport(f: Flow): number {
  return udpSrcPortFromHash(gueFlowHash(f.saddr, f.daddr, f.sport, f.dport, f.proto));
}

/** The outer source and destination of an IPv6 tunnel, as 16 bytes each. */
const outerAddrs = new Uint8Array(32);

/**
 * The outer IPv4 datagram toward an IPv4 real server (ip_vs_tunnel_xmit), built in scratch and
 * sent through the destination's path. DF and ID as the header comment says.
 */
function encapsulate4(e: XmitEngine, p: DestPath, c: number, f: Flow, now: number): number {
  const d = p.dest;
  const out = e.scratch;
  const l3Len = f.l3End - f.l3Off;
  const daddr = e.conns.daddrOf(c);
  const tos = tunnelTos(f.tos);
  const inner = innerProtocol(f.af);
  const df = f.af === 4 && f.df;
  let id = 0;
  if (!df) {
    id = (p.ipId + 1) & 0xffff;
    p.ipId = id;
  }
  const t = d.tunType;
  let len: number;
  if (t === TunType.Gue) {
    const rem = remcsum(d, f);
    if (!rem) finishChecksum(f);
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
      df,
      gueSport(f),
      d.tunPort,
      (d.tunFlags & (TUN_F_CSUM | TUN_F_REMCSUM)) !== 0,
      rem ? f.l4Off - f.l3Off : -1,
      f.proto === IPPROTO_TCP ? 16 : 6,
      inner,
      id,
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
            df,
            (d.tunFlags & TUN_F_CSUM) !== 0,
            greProtocol(f.af),
            id,
          )
        : ipipEncap(out, ETH_HLEN, f.buf, f.l3Off, l3Len, p.src, daddr, f.ttl, tos, df, id, inner);
  }
  if (len === 0) return e.drop(R.too_big);
  return e.emitToDest(out, ETH_HLEN, len, p, now);
}

/**
 * The outer IPv6 packet toward an IPv6 real server (ip_vs_tunnel_xmit_v6): from the director's
 * address toward it, built in scratch and sent through the destination's IPv6 path.
 */
function encapsulate6(e: XmitEngine, p: DestPath, c: number, f: Flow, now: number): number {
  const a = e.conns.addr6Words;
  const src = p.src6;
  if (a === null || src === null) return e.drop(R.no_route);
  const d = p.dest;
  const out = e.scratch;
  const l3Len = f.l3End - f.l3Off;
  ipv6FromWords(src, 0, outerAddrs, 0);
  ipv6FromWords(a, (c << 4) + A6_DADDR, outerAddrs, 16);
  const tc = tunnelTos(f.tos);
  const inner = innerProtocol(f.af);
  const t = d.tunType;
  let len: number;
  if (t === TunType.Gue) {
    const rem = remcsum(d, f);
    if (!rem) finishChecksum(f);
    len = gueEncap6(
      out,
      ETH_HLEN,
      f.buf,
      f.l3Off,
      l3Len,
      outerAddrs,
      0,
      16,
      f.ttl,
      tc,
      gueSport(f),
      d.tunPort,
      (d.tunFlags & (TUN_F_CSUM | TUN_F_REMCSUM)) !== 0,
      inner,
      rem ? f.l4Off - f.l3Off : -1,
      f.proto === IPPROTO_TCP ? 16 : 6,
    );
  } else {
    finishChecksum(f);
    len =
      t === TunType.Gre
        ? greEncap6(
            out,
            ETH_HLEN,
            f.buf,
            f.l3Off,
            l3Len,
            outerAddrs,
            0,
            16,
            f.ttl,
            tc,
            (d.tunFlags & TUN_F_CSUM) !== 0,
            greProtocol(f.af),
          )
        : ipip6Encap(out, ETH_HLEN, f.buf, f.l3Off, l3Len, outerAddrs, 0, 16, f.ttl, tc, inner);
  }
  if (len === 0) return e.drop(R.too_big);
  return e.emitToDest6(out, ETH_HLEN, len, p, now);
}

/**
 * A packet of connection c through its tunnel: a request (its MTU error from the VIP), or an ICMP
 * error from the client's side (relayed, never answered: ensure_mtu_is_adequate skips ICMP).
 */
function tunnel(e: XmitEngine, c: number, f: Flow, request: boolean, now: number): number {
  const p = e.destPath(e.conns.destOf(c));
  if (p === null) return Verdict.Drop;
  const outer6 = p.dest.addr6 !== null;
  const overhead = tunOverhead(p.dest, f);
  const min = outer6 ? IPV6_MIN_MTU : IPV4_TUN_MIN_MTU;
  const len = f.l3End - f.l3Off;
  const fits =
    f.af === 6
      ? e.fitsPath6(p, len, overhead, f, request ? f.d6 : null, now, min)
      : e.fitsPath(p, len, overhead, f, request ? f.daddr | 0 : 0, now, min);
  if (!fits) return Verdict.Drop;
  return outer6 ? encapsulate6(e, p, c, f, now) : encapsulate4(e, p, c, f, now);
}

export const tun: XmitMethod = {
  name: "tun",

  inbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    return tunnel(e, c, f, true, now);
  },

  segmentsInbound(): boolean {
    return true;
  },

  // Replies never come back through the director (same shape as nat/fullnat: one call site).
  outbound: undefined,

  icmpInbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    return tunnel(e, c, f, false, now);
  },

  icmpOutbound: undefined,
};

/** The same method for IPv6 clients (XMIT6): the flow says the family, the path the outer one. */
export const tun6: XmitMethod = tun;
