// Local replies: the frames the director makes itself, as the host's own stack would for the
// addresses it holds. The kernel spreads these over its stack, not IPVS: ARP (net/ipv4/arp.c
// arp_process, arp_solicit), ICMP echo and errors (net/ipv4/icmp.c icmp_echo, __icmp_send), the
// TCP reset for a segment that reaches no socket (net/ipv4/tcp_ipv4.c tcp_v4_send_reset); and
// from IPVS itself ip_vs_leave's port unreachable (ip_vs_core.c) and the time exceeded of
// decrement_ttl (ip_vs_xmit.c). Everything leaves through output.ts.
//
// IPv6 (the second half): NDP for the owned addresses (net/ipv6/ndisc.c ndisc_recv_ns/_na,
// ndisc_solicit), echo (icmpv6_echo_reply), the errors (icmp6_send: port unreachable from
// ip_vs_leave and the stack, time exceeded from IPVS's decrement_ttl and ip6_forward, packet too big
// from ensure_mtu_is_adequate, parameter problem for an unknown next header from ip6_input_finish),
// the TCP reset (tcp_v6_send_reset) and keepalived's unsolicited NAs. They take the parsed frame as
// Ipv6Frame: the extension-header walk plus the addresses' words, which the Flow carries under the
// same names. No ICMPv6 error is rate limited, as no ICMP error is (the kernel's
// net.ipv6.icmp.ratelimit is not modelled).

import { ipv6FromWords, ipv6ToWords, parseIPv6 } from "./addr.js";
import { type EngineCounters, R } from "./counters.js";
import type { IpvsCtl } from "./ctl.js";
import type { Engine } from "./engine.js";
import { TsvsError } from "./errors.js";
import type { FwmarkClassifier } from "./fwmark.js";
import type { LipTable } from "./lip.js";
import type { NeighCache, NeighSolicit, QueuedFrame } from "./neigh.js";
import type { Output } from "./output.js";
import { ARP_REPLY, ARP_REQUEST, writeArp } from "./packet/arp.js";
import { csumAdd, csumFinish, l4ChecksumV6 } from "./packet/csum.js";
import { BROADCAST_MAC, copyMac, ETH_HLEN, writeEthHeader } from "./packet/eth.js";
import {
  ETH_P_ARP,
  ETH_P_IPV6,
  type Flow,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  TCP_ACK,
  TCP_RST,
  TCP_SYN,
} from "./packet/flow.js";
import {
  buildIcmpError,
  ICMP_DEST_UNREACH,
  ICMP_EXC_TTL,
  ICMP_PORT_UNREACH,
  ICMP_TIME_EXCEEDED,
  icmpEchoReplyInPlace,
} from "./packet/icmp.js";
import {
  buildIcmpv6EchoReply,
  buildIcmpv6Error,
  ICMPV6_DEST_UNREACH,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_EXC_HOPLIMIT,
  ICMPV6_PARAMPROB,
  ICMPV6_PKT_TOOBIG,
  ICMPV6_PORT_UNREACH,
  ICMPV6_TIME_EXCEED,
  ICMPV6_UNK_NEXTHDR,
  icmpv6ErrorAllowed,
  NDISC_NEIGHBOUR_ADVERTISEMENT,
  NDISC_NEIGHBOUR_SOLICITATION,
} from "./packet/icmpv6.js";
import { writeIpv4Header } from "./packet/ipv4.js";
import {
  IP6_DADDR,
  IP6_SADDR,
  IPV6_HLEN,
  type Ipv6Walk,
  ipv6TrafficClass,
  NEXTHDR_ICMPV6,
  writeIpv6Header,
} from "./packet/ipv6.js";
import {
  ALL_NODES_MAC,
  ipv6MulticastMac,
  NDP_OK,
  NDP_OTHER,
  NdpMsg,
  ndpAnswerNs,
  ndpParse,
  ndpSolicitedNode,
  UNSOLICITED_NA_FRAME_LEN,
  writeNdp,
  writeUnsolicitedNa,
} from "./packet/ndp.js";
import { TCP_HLEN } from "./packet/tcp.js";
import { Route6Result, RouteResult, type RouteTable, sameWords6 } from "./route.js";
import { Verdict } from "./xmit/types.js";

const ICMP_ERR_TTL = 64;
const LOCAL_TTL = 64;

/**
 * What the IPv6 replies read of a parsed frame: its extension-header walk (IPv6 header at l3Off,
 * upper layer `proto` at l4Off, payload to l3End), the addresses' four words (s6, d6), the
 * interface it came in on, and for a TCP reset the ports, flags and sequence numbers. The Flow has
 * every field under these names.
 */
export interface Ipv6Frame extends Ipv6Walk {
  buf: Uint8Array;
  ifindex: number;
  readonly s6: Int32Array;
  readonly d6: Int32Array;
  payloadOff: number;
  sport: number;
  dport: number;
  tcpFlags: number;
  tcpSeq: number;
  tcpAck: number;
}

export class LocalReplies {
  private readonly counters: EngineCounters;
  private readonly routes: RouteTable;
  private readonly neigh: NeighCache;
  private readonly ctl: IpvsCtl;
  private readonly fwmarks: FwmarkClassifier;
  private readonly lipTable: LipTable;
  private readonly rt = new RouteResult();
  /** Where replies are built (an ICMP error quotes the packet, which stays where it is). */
  private readonly ipScratch = new Uint8Array(1600);
  private readonly zeroMac = new Uint8Array(6);
  private readonly rt6 = new Route6Result();
  private readonly ndp = new NdpMsg();
  /** An address's words (an NS's target, a source), and 16-byte forms: source, destination, target, and a MAC. */
  private readonly w6 = new Int32Array(4);
  private readonly a6 = new Uint8Array(16 * 3 + 6);

  constructor(
    e: Engine,
    private readonly out: Output,
    /** Answer ARP and ping for the interfaces' own addresses too (the simulation has no kernel). */
    private readonly ownIfaceAddrs: boolean,
  ) {
    this.counters = e.counters;
    this.routes = e.routes;
    this.neigh = e.neigh;
    this.ctl = e.ctl;
    this.fwmarks = e.fwmarks;
    this.lipTable = e.lipTable;
  }

  /**
   * Addresses tsvs answers for: VIPs (of services, and the hosts fwmark rules match with
   * `-d A[/32]`), LIPs, VRRP addresses while MASTER (a NAT gateway address too), and
   * (simulation) the interfaces' own.
   */
  ownsLocal(addr: number): boolean {
    if ((this.ctl.ownsAddress(addr) || this.fwmarks.matchesHost(addr)) && this.routes.hostDelivers(addr))
      return true;
    // A LIP that VRRP moves (FULLNAT behind a pair) is answered by the master only.
    if (this.lipTable.owns(addr)) return !this.routes.vrrpHoldsBack(addr);
    if (this.routes.vrrpOwns(addr)) return true;
    return this.ownIfaceAddrs && this.routes.isLocal(addr);
  }

  /** Traffic not addressed to tsvs: the kernel's business (or the simulation's). */
  private pass(): Verdict {
    this.counters.passed++;
    return Verdict.Pass;
  }

  // ---------------------------------------------------------------- ARP

  arpInput(f: Flow, now: number): Verdict {
    const iface = this.routes.iface(f.ifindex);
    if (iface === undefined) return this.pass();
    const buf = f.buf;
    const shaOff = f.l3Off + 8;
    const forUs = this.ownsLocal(f.arpTpa);
    if (f.arpOp === ARP_REPLY || forUs) {
      const sha = buf.slice(shaOff, shaOff + 6);
      const queued = this.neigh.confirm(f.ifindex, f.arpSpa, sha, now);
      for (const q of queued) {
        copyMac(q.frame, 0, sha, 0);
        this.out.sendQueued(f.ifindex, q.frame, q.len, q.vnet);
      }
    }
    if (f.arpOp !== ARP_REQUEST || !forUs) return f.arpOp === ARP_REPLY ? Verdict.Sent : this.pass();
    // Reply in place: ARP body then Ethernet header.
    const l3 = f.l3Off;
    const sha = this.ipScratch;
    copyMac(sha, 0, buf, shaOff);
    const spa = f.arpSpa;
    const tpa = f.arpTpa;
    // use_vmac: a VRRP address is answered with its instance's virtual MAC.
    const mac = this.routes.vrrpMacOf(tpa) ?? iface.mac;
    writeArp(buf, l3, ARP_REPLY, mac, tpa, sha.subarray(0, 6), spa);
    writeEthHeader(buf, l3 - ETH_HLEN, sha.subarray(0, 6), mac, ETH_P_ARP);
    this.counters.arpReplies++;
    this.out.transmit(f.ifindex, buf, l3 - ETH_HLEN, ETH_HLEN + 28);
    return Verdict.Sent;
  }

  sendArpRequest(ifindex: number, ip: number): void {
    const iface = this.routes.iface(ifindex);
    if (iface === undefined) return;
    const out = this.ipScratch;
    writeEthHeader(out, 0, BROADCAST_MAC, iface.mac, ETH_P_ARP);
    const rt = this.rt;
    const src = this.routes.lookup(ip | 0, rt) && rt.iface === iface ? rt.src : iface.primary;
    writeArp(out, ETH_HLEN, ARP_REQUEST, iface.mac, src, this.zeroMac, ip);
    this.counters.arpRequests++;
    this.out.transmit(ifindex, out, 0, ETH_HLEN + 28);
  }

  // ---------------------------------------------------------------- ICMP

  /** icmp_echo for an address tsvs owns: the request is turned into its reply in place. */
  echo(f: Flow, now: number): Verdict {
    if (!this.ownsLocal(f.daddr)) return this.pass();
    icmpEchoReplyInPlace(f.buf, f, LOCAL_TTL);
    this.counters.echoReplies++;
    // After the swap f.daddr is the requester.
    return this.out.emitIp(f.buf, f.l3Off, f.l3End - f.l3Off, f.daddr | 0, now);
  }

  /** ICMP error about `f` (the packet still as received) from `src` (0: the outgoing interface's address). */
  icmpError(f: Flow, type: number, code: number, info: number, src: number, now: number): number {
    // Never answer an ICMP error with an ICMP error (RFC 1122 3.2.2), nor a non-first fragment.
    if (f.proto === IPPROTO_ICMP && f.hasInner) return Verdict.Drop;
    if (f.fragment && !f.firstFragment) return Verdict.Drop;
    const rt = this.rt;
    const to = f.saddr | 0;
    if (!this.routes.lookup(to, rt) || rt.iface === null) {
      this.counters.drops[R.no_route]++;
      return Verdict.Drop;
    }
    const out = this.ipScratch;
    const saddr = src !== 0 ? src : rt.src;
    const len = buildIcmpError(
      out,
      ETH_HLEN,
      type,
      code,
      info,
      f.buf,
      f.l3Off,
      f.l3End - f.l3Off,
      saddr,
      f.saddr,
      ICMP_ERR_TTL,
    );
    this.counters.icmpErrorsSent++;
    return this.out.emitIp(out, ETH_HLEN, len, to, now);
  }

  /** decrement_ttl: the packet dies here and its sender hears of it from `src`. */
  ttlExceeded(f: Flow, src: number, now: number): Verdict {
    this.counters.drops[R.ttl_exceeded]++;
    this.icmpError(f, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0, src, now);
    return Verdict.Drop;
  }

  /** ip_vs_leave for a service without an available destination: port unreachable. */
  leave(f: Flow, now: number): Verdict {
    this.counters.drops[R.no_dest]++;
    this.icmpError(f, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, f.daddr | 0, now);
    return Verdict.Drop;
  }

  /**
   * A packet to an address tsvs owns with no service behind it: answer as the kernel's own
   * stack would for an address without a listener (TCP reset, UDP port unreachable).
   */
  notForUs(f: Flow, now: number): Verdict {
    if (!this.ownsLocal(f.daddr)) return this.pass();
    if (f.proto === IPPROTO_TCP) return this.tcpReset(f, now);
    this.counters.drops[R.closed_port]++;
    this.icmpError(f, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, f.daddr | 0, now);
    return Verdict.Drop;
  }

  /** tcp_v4_send_reset: RST for a segment that reached no socket (never answers a RST). */
  tcpReset(f: Flow, now: number): Verdict {
    this.counters.drops[R.closed_port]++;
    if ((f.tcpFlags & TCP_RST) !== 0) return Verdict.Drop;
    const out = this.ipScratch;
    const l3 = ETH_HLEN;
    const l4 = l3 + 20;
    writeIpv4Header(out, l3, 0, 20 + TCP_HLEN, 0, 0x4000, LOCAL_TTL, IPPROTO_TCP, f.daddr, f.saddr);
    writeRst(out, l4, f);
    // Checksum with the pseudo-header: saddr, daddr, proto, TCP length.
    let sum = csumAdd(out, l3 + 12, 8);
    sum += IPPROTO_TCP + TCP_HLEN;
    sum = csumAdd(out, l4, TCP_HLEN, sum);
    const ck = csumFinish(sum);
    out[l4 + 16] = ck >>> 8;
    out[l4 + 17] = ck & 255;
    return this.out.emitIp(out, l3, 20 + TCP_HLEN, f.saddr | 0, now) === Verdict.Sent
      ? Verdict.Sent
      : Verdict.Drop;
  }

  // ---------------------------------------------------------------- IPv6

  /**
   * ownsLocal for IPv6 (the four words at w[off]): the VIPs of IPv6 services (and the hosts
   * IPv6 fwmark rules match with `-d A[/128]`) while the host delivers them, VRRP's IPv6 addresses
   * while MASTER, and (simulation) the interfaces' own.
   */
  ownsLocal6(w: Int32Array, off = 0): boolean {
    if (
      (this.ctl.ownsAddress6(w, off) || this.fwmarks.matchesHost6(w, off)) &&
      this.routes.hostDelivers6(w, off)
    )
      return true;
    // A deleted IPv6 laddr that this worker's connections still use (lip.ts).
    if (this.lipTable.owns6(w, off)) return true;
    if (this.routes.vrrpOwns6(w, off)) return true;
    return this.ownIfaceAddrs && this.routes.isLocal6(w, off);
  }

  /** The director's own ICMPv6: NDP, and echo requests to owned addresses; other types pass. */
  icmpv6Input(f: Ipv6Frame, now: number): Verdict {
    if (f.proto !== NEXTHDR_ICMPV6 || f.l4Off >= f.l3End) return this.pass();
    const type = f.buf[f.l4Off];
    if (type === NDISC_NEIGHBOUR_SOLICITATION || type === NDISC_NEIGHBOUR_ADVERTISEMENT)
      return this.ndpInput(f, now);
    if (type === ICMPV6_ECHO_REQUEST) return this.echo6(f, now);
    return this.pass();
  }

  /**
   * An NS or NA (ndisc_rcv). An NA teaches the neighbour it names (and releases what waited for
   * it). An NS for an owned address is answered with ndpAnswerNs (S, O and the target link-layer
   * option as ndisc_recv_ns sets them; R when the interface forwards; a VRRP address with its
   * virtual MAC), to the link-layer address it gave, else to its frame's source, or to all nodes
   * for a DAD probe; its source link-layer option teaches the neighbour (STALE). An NS for one of
   * the interfaces' own addresses only teaches: the kernel answers it. Others pass.
   */
  ndpInput(f: Ipv6Frame, now: number): Verdict {
    const iface = this.routes.iface(f.ifindex);
    if (iface === undefined) return this.pass();
    const m = this.ndp;
    const r = ndpParse(f.buf, f, m);
    if (r === NDP_OTHER) return this.pass();
    if (r !== NDP_OK) {
      this.counters.drops[R.ndp_invalid]++;
      return Verdict.Drop;
    }
    const buf = f.buf;
    const target = this.w6;
    ipv6ToWords(buf, m.targetOff, target, 0);
    if (m.type === NDISC_NEIGHBOUR_ADVERTISEMENT) {
      this.release(
        f.ifindex,
        this.neigh.learnFromNa(f.ifindex, target, 0, m.flags, buf, m.lladdrOff, now),
        buf,
        m.lladdrOff,
      );
      return Verdict.Sent;
    }
    const owned = this.ownsLocal6(target, 0);
    if (!owned && !this.routes.isLocal6(target, 0)) return this.pass();
    // ndisc_recv_ns learns before it answers: the NA then goes to a known neighbour.
    if (!m.dad && m.lladdrOff >= 0)
      this.release(
        f.ifindex,
        this.neigh.learnFromNs(f.ifindex, f.s6, 0, buf, m.lladdrOff, now),
        buf,
        m.lladdrOff,
      );
    if (!owned) return this.pass();
    const mac = this.routes.vrrpMacOf6(target, 0) ?? iface.mac;
    const dst = this.a6;
    const dOff = 48;
    if (m.dad) copyMac(dst, dOff, ALL_NODES_MAC, 0);
    else copyMac(dst, dOff, buf, m.lladdrOff >= 0 ? m.lladdrOff : 6);
    const out = this.ipScratch;
    const len = ndpAnswerNs(out, ETH_HLEN, buf, f, m, mac, iface.forwarding6);
    writeEthHeader(out, 0, dst.subarray(dOff, dOff + 6), mac, ETH_P_IPV6);
    this.counters.ndpAdverts++;
    this.out.transmit(f.ifindex, out, 0, ETH_HLEN + len);
    return Verdict.Sent;
  }

  /** Frames that waited for a neighbour now resolved to the MAC at mac[macOff]. */
  private release(ifindex: number, frames: readonly QueuedFrame[], mac: Uint8Array, macOff: number): void {
    for (const q of frames) {
      copyMac(q.frame, 0, mac, macOff);
      this.out.sendQueued(ifindex, q.frame, q.len, q.vnet);
    }
  }

  /**
   * ndisc_solicit: an NS for the target at t[tOff..+4] on ifindex, to its solicited-node group, or
   * unicast to `mac` (PROBE). Its source is the source of `frame` (the packet waiting for the
   * neighbour, IPv6 header at frame[l3Off]) when that is an address of the interface, else the
   * interface's link-local address (ndisc_send_ns: ipv6_get_lladdr); an interface without one
   * solicits from the address lookup6 would choose (its first address toward a link-local
   * target), where the kernel would not solicit at all; one without any IPv6 address does not.
   */
  sendNs(
    ifindex: number,
    t: Int32Array,
    tOff: number,
    mac: Uint8Array | null,
    frame: Uint8Array | null,
    l3Off: number,
  ): void {
    const iface = this.routes.iface(ifindex);
    if (iface === undefined) return;
    const src = this.w6;
    let ok = false;
    if (frame !== null && l3Off + IPV6_HLEN <= frame.length) {
      ipv6ToWords(frame, l3Off + IP6_SADDR, src, 0);
      for (let i = 0; !ok && i < iface.ip6.length; i++) ok = sameWords6(iface.ip6[i].words, 0, src, 0);
    }
    if (!ok) {
      if (iface.linkLocal6 !== null) src.set(iface.linkLocal6);
      else {
        this.routes.source6(iface, t, tOff, src);
        // Toward a link-local target source6 wants a link-local address: the interface's first then.
        if ((src[0] | src[1] | src[2] | src[3]) === 0 && iface.ip6.length > 0) src.set(iface.ip6[0].words);
      }
      // No address at all: an NS from :: would be a DAD probe, not a solicitation.
      if ((src[0] | src[1] | src[2] | src[3]) === 0) return;
    }
    const a = this.a6;
    ipv6FromWords(src, 0, a, 0);
    ipv6FromWords(t, tOff, a, 32);
    const out = this.ipScratch;
    if (mac === null) {
      ndpSolicitedNode(a, 32, a, 16);
      ipv6MulticastMac(a, 16, out, 0);
    } else {
      ipv6FromWords(t, tOff, a, 16);
      copyMac(out, 0, mac, 0);
    }
    const len = writeNdp(out, ETH_HLEN, NDISC_NEIGHBOUR_SOLICITATION, 0, a, 0, a, 16, a, 32, iface.mac);
    writeEthHeader(out, 0, out.subarray(0, 6), iface.mac, ETH_P_IPV6);
    this.counters.ndpSolicits++;
    this.out.transmit(ifindex, out, 0, ETH_HLEN + len);
  }

  /** A solicitation the neighbour cache's timers asked for (NeighTickOut.solicits). */
  solicit(s: NeighSolicit): void {
    this.sendNs(s.ifindex, s.ip6, 0, s.mac, s.frame === null ? null : s.frame.frame, ETH_HLEN);
  }

  /** keepalived's unsolicited NAs for `addrs` (text) on ifindex, with `mac` (default: the interface's). */
  sendUnsolicitedNas(ifindex: number, addrs: readonly string[], mac?: Uint8Array): number {
    const iface = this.routes.iface(ifindex);
    if (iface === undefined) return 0;
    for (const f of unsolicitedNaFrames(mac ?? iface.mac, addrs, iface.forwarding6)) {
      this.counters.unsolicitedNas++;
      this.out.transmit(ifindex, f, 0, f.length);
    }
    return addrs.length;
  }

  /** icmpv6_echo_reply for an owned address: the reply is built over the request and routed back. */
  echo6(f: Ipv6Frame, now: number): Verdict {
    if (!this.ownsLocal6(f.d6, 0)) return this.pass();
    const len = buildIcmpv6EchoReply(f.buf, f.l3Off, f.buf, f, f.buf, f.l3Off + IP6_DADDR, LOCAL_TTL);
    if (len === 0) return this.out.drop(R.unsupported);
    this.counters.echoReplies++;
    return this.out.emitIp6(f.buf, f.l3Off, len, f.s6, 0, f.ifindex, now);
  }

  /**
   * icmp6_send about f (still as received) from `src` (four words; null: the source lookup6 picks
   * toward the sender), when icmpv6ErrorAllowed says it may be sent and f is no non-first fragment.
   */
  icmp6Error(
    f: Ipv6Frame,
    type: number,
    code: number,
    info: number,
    src: Int32Array | null,
    now: number,
  ): number {
    if (f.fragment && !f.firstFragment) return Verdict.Drop;
    if (!icmpv6ErrorAllowed(f.buf, f, type, code)) return Verdict.Drop;
    const rt = this.rt6;
    if (!this.routes.lookup6(f.s6, 0, f.ifindex, rt) || rt.iface === null) return this.out.drop(R.no_route);
    const a = this.a6;
    ipv6FromWords(src ?? rt.src, 0, a, 0);
    const out = this.ipScratch;
    const len = buildIcmpv6Error(
      out,
      ETH_HLEN,
      type,
      code,
      info,
      f.buf,
      f.l3Off,
      f.l3End - f.l3Off,
      a,
      0,
      f.buf,
      f.l3Off + IP6_SADDR,
      ICMP_ERR_TTL,
    );
    if (len === 0) return Verdict.Drop;
    this.counters.icmpErrorsSent++;
    return this.out.emitIp6(out, ETH_HLEN, len, f.s6, 0, f.ifindex, now);
  }

  /** The hop limit ran out in forwarding (decrement_ttl, ip6_forward): time exceeded from `src`. */
  ttlExceeded6(f: Ipv6Frame, src: Int32Array | null, now: number): Verdict {
    this.counters.drops[R.ttl_exceeded]++;
    this.icmp6Error(f, ICMPV6_TIME_EXCEED, ICMPV6_EXC_HOPLIMIT, 0, src, now);
    return Verdict.Drop;
  }

  /**
   * ensure_mtu_is_adequate for IPv6: the packet does not fit the path's `mtu` and IPv6 is never
   * fragmented on the way: packet too big from `src`.
   */
  tooBig6(f: Ipv6Frame, mtu: number, src: Int32Array | null, now: number): Verdict {
    this.counters.drops[R.frag_needed]++;
    this.icmp6Error(f, ICMPV6_PKT_TOOBIG, 0, mtu, src, now);
    return Verdict.Drop;
  }

  /** ip_vs_leave for an IPv6 service without an available destination: port unreachable from the VIP. */
  leave6(f: Ipv6Frame, now: number): Verdict {
    this.counters.drops[R.no_dest]++;
    this.icmp6Error(f, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, 0, f.d6, now);
    return Verdict.Drop;
  }

  /**
   * A packet to an owned IPv6 address with no service behind it, answered as the kernel's stack
   * answers for an address without a listener: TCP reset, UDP port unreachable, nothing for
   * ICMPv6, parameter problem (unknown next header, pointing at it) for any other protocol.
   */
  notForUs6(f: Ipv6Frame, now: number): Verdict {
    if (!this.ownsLocal6(f.d6, 0)) return this.pass();
    if (f.proto === IPPROTO_TCP) return this.tcpReset6(f, now);
    if (f.proto === NEXTHDR_ICMPV6) return this.out.drop(R.unsupported);
    this.counters.drops[R.closed_port]++;
    if (f.proto === IPPROTO_UDP) this.icmp6Error(f, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, 0, f.d6, now);
    else this.icmp6Error(f, ICMPV6_PARAMPROB, ICMPV6_UNK_NEXTHDR, f.protoOff - f.l3Off, f.d6, now);
    return Verdict.Drop;
  }

  /**
   * tcp_v6_send_reset: RST for a segment that reached no socket (never for a RST), as tcpReset
   * builds it, with the request's traffic class less its ECN bits (tcp_v6_send_response) and hop
   * limit 64.
   */
  tcpReset6(f: Ipv6Frame, now: number): Verdict {
    this.counters.drops[R.closed_port]++;
    if ((f.tcpFlags & TCP_RST) !== 0) return Verdict.Drop;
    const out = this.ipScratch;
    const l3 = ETH_HLEN;
    const l4 = l3 + IPV6_HLEN;
    const tc = ipv6TrafficClass(f.buf, f.l3Off) & ~3;
    writeIpv6Header(
      out,
      l3,
      tc,
      0,
      TCP_HLEN,
      IPPROTO_TCP,
      LOCAL_TTL,
      f.buf,
      f.l3Off + IP6_DADDR,
      f.buf,
      f.l3Off + IP6_SADDR,
    );
    writeRst(out, l4, f);
    const ck = l4ChecksumV6(out, l3, l4, TCP_HLEN, IPPROTO_TCP);
    out[l4 + 16] = ck >>> 8;
    out[l4 + 17] = ck & 255;
    return this.out.emitIp6(out, l3, IPV6_HLEN + TCP_HLEN, f.s6, 0, f.ifindex, now) === Verdict.Sent
      ? Verdict.Sent
      : Verdict.Drop;
  }
}

/**
 * The TCP header of the reset answering f (checksum left 0): ports swapped; seq = the segment's
 * ACK when it has one, else ack = its sequence + length (SYN and FIN count one) with ACK set.
 */
function writeRst(
  out: Uint8Array,
  l4: number,
  f: Pick<Ipv6Frame, "l3End" | "payloadOff" | "sport" | "dport" | "tcpFlags" | "tcpSeq" | "tcpAck">,
): void {
  const seglen =
    f.l3End - f.payloadOff + ((f.tcpFlags & TCP_SYN) !== 0 ? 1 : 0) + ((f.tcpFlags & 1) !== 0 ? 1 : 0);
  let seq = 0;
  let ack = 0;
  let flags = TCP_RST;
  if ((f.tcpFlags & TCP_ACK) !== 0) seq = f.tcpAck;
  else {
    ack = (f.tcpSeq + seglen) >>> 0;
    flags |= TCP_ACK;
  }
  out.fill(0, l4, l4 + TCP_HLEN);
  out[l4] = f.dport >>> 8;
  out[l4 + 1] = f.dport & 255;
  out[l4 + 2] = f.sport >>> 8;
  out[l4 + 3] = f.sport & 255;
  writeBe32(out, l4 + 4, seq);
  writeBe32(out, l4 + 8, ack);
  out[l4 + 12] = (TCP_HLEN / 4) << 4;
  out[l4 + 13] = flags;
}

/**
 * keepalived's unsolicited NAs (vrrp_ndisc.c, ndp.ts writeUnsolicitedNa), one whole Ethernet frame
 * per address (text), from `mac`, with R when `router`: what a new VRRP master sends for its IPv6
 * addresses, as it sends gratuitous ARPs for the IPv4 ones.
 */
export function unsolicitedNaFrames(
  mac: Uint8Array,
  addrs: readonly string[],
  router: boolean,
): Uint8Array[] {
  return addrs.map((a) => {
    const b = parseIPv6(a);
    if (b === null) throw new TsvsError("TSVS_ERR_INVALID", `bad IPv6 address ${JSON.stringify(a)}`);
    const f = new Uint8Array(UNSOLICITED_NA_FRAME_LEN);
    writeUnsolicitedNa(f, 0, mac, b, 0, router);
    return f;
  });
}

function writeBe32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 255;
  b[off + 2] = (v >>> 8) & 255;
  b[off + 3] = v & 255;
}
