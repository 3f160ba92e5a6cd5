// Local replies: the frames the director makes itself, as the host's own stack would for the
// addresses it holds. The kernel spreads these over its stack, not IPVS: ARP (net/ipv4/arp.c
// arp_process, arp_solicit), ICMP echo and errors (net/ipv4/icmp.c icmp_echo, __icmp_send), the
// TCP reset for a segment that reaches no socket (net/ipv4/tcp_ipv4.c tcp_v4_send_reset); and
// from IPVS itself ip_vs_leave's port unreachable (ip_vs_core.c) and the time exceeded of
// decrement_ttl (ip_vs_xmit.c). Everything leaves through output.ts.

import { type EngineCounters, R } from "./counters.js";
import type { IpvsCtl } from "./ctl.js";
import type { Engine } from "./engine.js";
import type { FwmarkClassifier } from "./fwmark.js";
import type { LipTable } from "./lip.js";
import type { NeighCache } from "./neigh.js";
import type { Output } from "./output.js";
import { ARP_REPLY, ARP_REQUEST, writeArp } from "./packet/arp.js";
import { csumAdd, csumFinish } from "./packet/csum.js";
import { BROADCAST_MAC, copyMac, ETH_HLEN, writeEthHeader } from "./packet/eth.js";
import { ETH_P_ARP, type Flow, IPPROTO_ICMP, IPPROTO_TCP, TCP_ACK, TCP_RST, TCP_SYN } from "./packet/flow.js";
import {
  buildIcmpError,
  ICMP_DEST_UNREACH,
  ICMP_EXC_TTL,
  ICMP_PORT_UNREACH,
  ICMP_TIME_EXCEEDED,
  icmpEchoReplyInPlace,
} from "./packet/icmp.js";
import { writeIpv4Header } from "./packet/ipv4.js";
import { TCP_HLEN } from "./packet/tcp.js";
import { RouteResult, type RouteTable } from "./route.js";
import { Verdict } from "./xmit/types.js";

const ICMP_ERR_TTL = 64;
const LOCAL_TTL = 64;

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
}

function writeBe32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 255;
  b[off + 2] = (v >>> 8) & 255;
  b[off + 3] = v & 255;
}
