// A simulated end host or router: enough of the Linux IPv4 stack for LVS scenarios to behave as
// they do on real machines. Interfaces with addresses and MTUs, addresses on `lo`, a routing
// table (connected + gateway routes, longest prefix first), the neighbour table with ARP
// (net/ipv4/arp.c: arp_process, arp_ignore, arp_solicit with arp_announce), ip_forward with TTL
// and fragmentation-needed handling (net/ipv4/ip_forward.c), IPIP decapsulation
// (net/ipv4/ipip.c), ICMP echo, errors and path MTU (net/ipv4/icmp.c, route.c's PMTU cache).
// TCP and UDP live in tcp.ts and udp.ts. No IP fragmentation or reassembly: an oversized
// datagram without DF is dropped and counted (docs/sim-network.md).

import { formatIPv4, parseIPv4, prefixToMask, readU16, readU32, writeU16 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import { ARP_REPLY, ARP_REQUEST, ARP_SHA, writeArp } from "../core/packet/arp.js";
import { l4ChecksumV4, verifyL4V4 } from "../core/packet/csum.js";
import { BROADCAST_MAC, copyMac, ETH_HLEN, macEquals, parseMac, writeEthHeader } from "../core/packet/eth.js";
import {
  ETH_P_ARP,
  ETH_P_IP,
  Flow,
  IPPROTO_ICMP,
  IPPROTO_IPIP,
  IPPROTO_TCP,
  IPPROTO_UDP,
} from "../core/packet/flow.js";
import {
  buildIcmpError,
  ICMP_DEST_UNREACH,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
  ICMP_EXC_TTL,
  ICMP_FRAG_NEEDED,
  ICMP_HLEN,
  ICMP_NET_UNREACH,
  ICMP_PORT_UNREACH,
  ICMP_PROT_UNREACH,
  ICMP_TIME_EXCEEDED,
  icmpEchoReplyInPlace,
  icmpIsError,
} from "../core/packet/icmp.js";
import { IP_DF, ipv4DecTtl, writeIpv4Header } from "../core/packet/ipv4.js";
import { PARSE_ARP, PARSE_ERR_TCP_TRUNC, PARSE_OK, parseFrame } from "../core/packet/parse.js";
import type { SimClock, TimerHandle } from "./clock.js";
import type { FrameSender, Link, NetPort } from "./net.js";
import { TcpStack } from "./tcp.js";
import { UdpStack } from "./udp.js";

/** An IPv4 address as a dotted string or a host-order u32. */
export type IpLike = number | string;

export function ip(a: IpLike): number {
  if (typeof a === "number") return a >>> 0;
  const v = parseIPv4(a);
  if (v === null) throw new TsvsError("TSVS_ERR_INVALID", `bad IPv4 address: ${a}`);
  return v;
}

/** "198.18.1.11/24" → {addr, prefix}. */
export function cidr(s: string): { addr: number; prefix: number } {
  const [a, p] = s.split("/");
  const prefix = p === undefined ? 32 : Number(p);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32)
    throw new TsvsError("TSVS_ERR_INVALID", `bad prefix: ${s}`);
  return { addr: ip(a), prefix };
}

export interface HostAddr {
  addr: number;
  prefix: number;
}

export interface HostIfaceOptions {
  name: string;
  mac: Uint8Array | string;
  /** "a.b.c.d/len" strings or {addr, prefix}; the first is the primary address. */
  addrs: Array<string | HostAddr>;
  mtu?: number;
  /** Per-interface net.ipv4.conf.IF.arp_ignore / arp_announce (the effective value is max(all, IF)). */
  arpIgnore?: number;
  arpAnnounce?: number;
}

export interface HostOptions {
  /** Seeds the ephemeral port start and TCP initial sequence numbers (default: from the name). */
  seed?: number;
  /** net.ipv4.ip_forward */
  ipForward?: boolean;
  /** Decapsulate IPIP (proto 4) addressed to this host (the ipip module / a tunl0 device). */
  ipip?: boolean;
  /** net.ipv4.conf.all.arp_ignore / arp_announce */
  arpIgnore?: number;
  arpAnnounce?: number;
  /** TTL of locally generated datagrams (net.ipv4.ip_default_ttl, 64). */
  ttl?: number;
  /** TCP TIME_WAIT duration in ms (default 1000; Linux uses 60 s). */
  timeWaitMs?: number;
}

export class HostIface implements NetPort {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly addrs: HostAddr[];
  mtu: number;
  arpIgnore: number;
  arpAnnounce: number;
  up = true;
  /** Filled by attach: sends a frame on the link. */
  send: FrameSender | null = null;
  link: Link | null = null;
  constructor(
    readonly host: Host,
    readonly ifindex: number,
    o: HostIfaceOptions,
  ) {
    this.name = o.name;
    const mac = typeof o.mac === "string" ? parseMac(o.mac) : o.mac;
    if (mac === null) throw new TsvsError("TSVS_ERR_INVALID", `bad MAC ${String(o.mac)}`);
    this.mac = mac;
    this.addrs = o.addrs.map((a) =>
      typeof a === "string" ? cidr(a) : { addr: a.addr >>> 0, prefix: a.prefix },
    );
    this.mtu = o.mtu ?? 1500;
    this.arpIgnore = o.arpIgnore ?? 0;
    this.arpAnnounce = o.arpAnnounce ?? 0;
  }
  get primary(): number {
    return this.addrs.length > 0 ? this.addrs[0].addr : 0;
  }
  hasAddr(a: number): boolean {
    for (const x of this.addrs) if (x.addr === a) return true;
    return false;
  }
  deliver(buf: Uint8Array, len: number): void {
    this.host.receive(this, buf, len);
  }
}

interface Route {
  dst: number;
  mask: number;
  prefix: number;
  via: number;
  iface: HostIface;
}

export interface RouteLookup {
  iface: HostIface;
  nexthop: number;
  /** Preferred source (inet_select_addr: the interface address on the next hop's subnet, else primary). */
  src: number;
}

interface Neigh {
  mac: Uint8Array;
  iface: HostIface;
}

interface Unresolved {
  iface: HostIface;
  queue: Uint8Array[];
  probes: number;
  timer: TimerHandle | null;
}

/** A received ICMP message, as tests and ping see it. */
export interface IcmpEvent {
  type: number;
  code: number;
  from: number;
  /** Rest of header (frag needed: MTU in the low 16 bits). */
  info: number;
  innerProto: number;
  innerSaddr: number;
  innerDaddr: number;
  innerSport: number;
  innerDport: number;
}

export interface PingResult {
  from: number;
  ttl: number;
  rttMs: number;
}

export type PingCallback = (
  err: (Error & { code: string; from?: number }) | null,
  r: PingResult | null,
) => void;

export interface HostCounters {
  rxFrames: number;
  rxNotForUs: number;
  rxParseErrors: number;
  rxL4Csum: number;
  delivered: number;
  forwarded: number;
  notForwarded: number;
  ttlExceeded: number;
  fragNeeded: number;
  fragmentsDropped: number;
  tooBigNoDf: number;
  noRoute: number;
  arpRequestsSent: number;
  arpRepliesSent: number;
  arpIgnored: number;
  arpFailed: number;
  ipipDecap: number;
  ipipDropped: number;
  icmpSent: number;
  icmpReceived: number;
  txFrames: number;
}

/** Neighbour resolution retries as the kernel's defaults: 3 probes (mcast_solicit), 1 s apart (retrans_time). */
const ARP_PROBES = 3;
const ARP_RETRANS_MS = 1000;
/** unres_qlen: datagrams queued per unresolved neighbour. */
const ARP_QLEN = 101;

export class Host {
  readonly ifaces: HostIface[] = [];
  readonly loAddrs: HostAddr[] = [{ addr: 0x7f000001, prefix: 8 }];
  ipForward: boolean;
  ipip: boolean;
  arpIgnore: number;
  arpAnnounce: number;
  ttl: number;
  readonly seed: number;
  readonly tcp: TcpStack;
  readonly udp: UdpStack;
  readonly counters: HostCounters = {
    rxFrames: 0,
    rxNotForUs: 0,
    rxParseErrors: 0,
    rxL4Csum: 0,
    delivered: 0,
    forwarded: 0,
    notForwarded: 0,
    ttlExceeded: 0,
    fragNeeded: 0,
    fragmentsDropped: 0,
    tooBigNoDf: 0,
    noRoute: 0,
    arpRequestsSent: 0,
    arpRepliesSent: 0,
    arpIgnored: 0,
    arpFailed: 0,
    ipipDecap: 0,
    ipipDropped: 0,
    icmpSent: 0,
    icmpReceived: 0,
    txFrames: 0,
  };
  /** Neighbour table: IPv4 → MAC (entries do not age: scenarios are short). */
  readonly neigh = new Map<number, Neigh>();
  /** Learned path MTUs by destination (from ICMP fragmentation needed). */
  readonly pmtu = new Map<number, number>();
  private routes: Route[] = [];
  private unresolved = new Map<number, Unresolved>();
  private ipId = 1;
  private pingId: number;
  private pings = new Map<number, { cb: PingCallback; sent: number; timer: TimerHandle }>();
  private icmpListeners: Array<(e: IcmpEvent) => void> = [];

  constructor(
    readonly clock: SimClock,
    readonly name: string,
    o: HostOptions = {},
  ) {
    this.ipForward = o.ipForward ?? false;
    this.ipip = o.ipip ?? false;
    this.arpIgnore = o.arpIgnore ?? 0;
    this.arpAnnounce = o.arpAnnounce ?? 0;
    this.ttl = o.ttl ?? 64;
    this.seed = (o.seed ?? hashString(name)) >>> 0;
    this.pingId = (this.seed & 0x7fff) + 1;
    this.tcp = new TcpStack(this, { timeWaitMs: o.timeWaitMs ?? 1000 });
    this.udp = new UdpStack(this);
  }

  // ---- configuration ----

  /** Adds an interface plugged into link (connected routes for its addresses included). */
  addIface(link: Link, o: HostIfaceOptions): HostIface {
    const i = new HostIface(this, this.ifaces.length + 1, o);
    this.ifaces.push(i);
    i.link = link;
    i.send = link.attach(i);
    for (const a of i.addrs) this.insertRoute(a.addr, a.prefix, 0, i);
    return i;
  }

  iface(name: string): HostIface {
    const i = this.ifaces.find((x) => x.name === name);
    if (i === undefined) throw new TsvsError("TSVS_ERR_INVALID", `${this.name}: no interface ${name}`);
    return i;
  }

  /** An address on lo (the VIP of a DR/TUN real server): local, but never on a link. */
  addLoopbackAddr(a: IpLike, prefix = 32): void {
    this.loAddrs.push({ addr: ip(a), prefix });
  }

  removeLoopbackAddr(a: IpLike): void {
    const v = ip(a);
    const k = this.loAddrs.findIndex((x) => x.addr === v);
    if (k >= 0) this.loAddrs.splice(k, 1);
  }

  /** A route: dst "a.b.c.d/len" (or "default"), via a gateway (0/"" = connected on ifname). */
  addRoute(dst: string, via: IpLike | null, ifname?: string): void {
    const d = dst === "default" ? { addr: 0, prefix: 0 } : cidr(dst);
    const gw = via === null || via === "" ? 0 : ip(via);
    let iface: HostIface | undefined;
    if (ifname !== undefined) iface = this.iface(ifname);
    else if (gw !== 0) iface = this.lookup(gw)?.iface;
    if (iface === undefined)
      throw new TsvsError("TSVS_ERR_INVALID", `${this.name}: no interface for route ${dst}`);
    this.insertRoute(d.addr, d.prefix, gw, iface);
  }

  setDefaultRoute(via: IpLike): void {
    this.addRoute("default", via);
  }

  private insertRoute(dst: number, prefix: number, via: number, iface: HostIface): void {
    const mask = prefixToMask(prefix);
    this.routes.push({ dst: (dst & mask) >>> 0, mask, prefix, via, iface });
    this.routes.sort((a, b) => b.prefix - a.prefix);
  }

  /** Every address of the host, interfaces first, then lo. */
  addresses(): number[] {
    const out: number[] = [];
    for (const i of this.ifaces) for (const a of i.addrs) out.push(a.addr);
    for (const a of this.loAddrs) out.push(a.addr);
    return out;
  }

  /** Local delivery test (the weak host model: any address of any interface, lo included). */
  isLocal(a: number): boolean {
    a >>>= 0;
    for (const i of this.ifaces) if (i.hasAddr(a)) return true;
    for (const x of this.loAddrs) {
      if (x.addr === a) return true;
      // 127/8 is all local, as the kernel's local table has it.
      if (x.addr === 0x7f000001 && a >>> 24 === 127) return true;
    }
    return false;
  }

  lookup(daddr: number): RouteLookup | null {
    daddr >>>= 0;
    for (const r of this.routes) {
      if ((daddr & r.mask) >>> 0 !== r.dst || !r.iface.up) continue;
      const nexthop = r.via !== 0 ? r.via : daddr;
      return { iface: r.iface, nexthop, src: selectAddr(r.iface, nexthop) };
    }
    return null;
  }

  /** Path MTU toward daddr: the route's interface MTU lowered by any learned PMTU. */
  pathMtu(daddr: number): number {
    const r = this.lookup(daddr);
    let m = r === null ? 1500 : r.iface.mtu;
    if (this.isLocal(daddr)) m = 65535;
    const p = this.pmtu.get(daddr >>> 0);
    if (p !== undefined && p < m) m = p;
    return m;
  }

  /** Source address the host would use toward daddr (0 when unroutable). */
  sourceFor(daddr: number): number {
    if (this.isLocal(daddr)) return daddr >>> 0;
    const r = this.lookup(daddr);
    return r === null ? 0 : r.src;
  }

  onIcmp(fn: (e: IcmpEvent) => void): void {
    this.icmpListeners.push(fn);
  }

  // ---- output ----

  /**
   * Sends an IPv4 datagram: writes the header in front of `payload` (frame layout: 14 bytes of
   * Ethernet, 20 of IP, then the payload, written by `fill` at the given offset). saddr 0 = the
   * route's preferred source. Returns false when it could not be sent (no route, too big).
   */
  sendIp(
    proto: number,
    saddr: number,
    daddr: number,
    payloadLen: number,
    fill: (frame: Uint8Array, off: number) => void,
    o: { df?: boolean; ttl?: number; tos?: number } = {},
  ): boolean {
    daddr >>>= 0;
    const src = saddr !== 0 ? saddr >>> 0 : this.sourceFor(daddr);
    if (src === 0) {
      this.counters.noRoute++;
      return false;
    }
    const ipLen = 20 + payloadLen;
    const frame = new Uint8Array(ETH_HLEN + ipLen);
    fill(frame, ETH_HLEN + 20);
    writeIpv4Header(
      frame,
      ETH_HLEN,
      o.tos ?? 0,
      ipLen,
      this.ipId++,
      o.df ? IP_DF : 0,
      o.ttl ?? this.ttl,
      proto,
      src,
      daddr,
    );
    if (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_ICMP) {
      const ck = proto === IPPROTO_TCP ? 16 : proto === IPPROTO_UDP ? 6 : 2;
      writeU16(frame, ETH_HLEN + 20 + ck, l4ChecksumV4(frame, ETH_HLEN, ETH_HLEN + 20, payloadLen, proto));
    }
    return this.output(frame, ipLen);
  }

  /** Routes a finished datagram at frame[14, 14 + ipLen) and hands it to the link (or to lo). */
  output(frame: Uint8Array, ipLen: number): boolean {
    const daddr = readU32(frame, ETH_HLEN + 16);
    if (this.isLocal(daddr)) {
      writeEthHeader(frame, 0, BROADCAST_MAC, BROADCAST_MAC, ETH_P_IP);
      this.clock.after(0, () => this.input(null, frame, ETH_HLEN + ipLen));
      return true;
    }
    const r = this.lookup(daddr);
    if (r === null) {
      this.counters.noRoute++;
      return false;
    }
    if (ipLen > r.iface.mtu) {
      // No fragmentation here (documented limit); TCP always sends with DF and sizes to the PMTU.
      this.counters.tooBigNoDf++;
      return false;
    }
    this.toNeighbour(r.iface, r.nexthop, frame, ETH_HLEN + ipLen);
    return true;
  }

  private toNeighbour(iface: HostIface, nexthop: number, frame: Uint8Array, len: number): void {
    const n = this.neigh.get(nexthop);
    if (n !== undefined && n.iface === iface) {
      writeEthHeader(frame, 0, n.mac, iface.mac, ETH_P_IP);
      this.xmit(iface, frame, len);
      return;
    }
    let u = this.unresolved.get(nexthop);
    if (u === undefined) {
      u = { iface, queue: [], probes: 0, timer: null };
      this.unresolved.set(nexthop, u);
      u.queue.push(frame.subarray(0, len));
      this.solicit(nexthop, u);
      return;
    }
    if (u.queue.length >= ARP_QLEN) u.queue.shift();
    u.queue.push(frame.subarray(0, len));
  }

  private solicit(target: number, u: Unresolved): void {
    if (u.probes >= ARP_PROBES) {
      this.counters.arpFailed += u.queue.length;
      this.unresolved.delete(target);
      return;
    }
    u.probes++;
    const iface = u.iface;
    // arp_solicit: the queued datagram's source, if arp_announce allows it, else inet_select_addr.
    const q = u.queue[u.queue.length - 1];
    const pktSrc = q === undefined ? 0 : readU32(q, ETH_HLEN + 12);
    const level = Math.max(this.arpAnnounce, iface.arpAnnounce);
    let spa = 0;
    if (pktSrc !== 0 && this.isLocal(pktSrc)) {
      if (level === 0) spa = pktSrc;
      else if (level === 1 && onLink(iface, target, pktSrc)) spa = pktSrc;
    }
    if (spa === 0) spa = selectAddr(iface, target);
    const f = new Uint8Array(ETH_HLEN + 28);
    writeEthHeader(f, 0, BROADCAST_MAC, iface.mac, ETH_P_ARP);
    writeArp(f, ETH_HLEN, ARP_REQUEST, iface.mac, spa, ZERO_MAC, target);
    this.counters.arpRequestsSent++;
    this.xmit(iface, f, f.length);
    u.timer = this.clock.after(ARP_RETRANS_MS, () => this.solicit(target, u));
  }

  private xmit(iface: HostIface, frame: Uint8Array, len: number): void {
    if (!iface.up || iface.send === null) return;
    this.counters.txFrames++;
    iface.send(frame, 0, len);
  }

  // ---- input ----

  receive(iface: HostIface, buf: Uint8Array, len: number): void {
    if (!iface.up) return;
    this.counters.rxFrames++;
    if ((buf[0] & 1) === 0 && !macEquals(buf, 0, iface.mac, 0)) {
      this.counters.rxNotForUs++;
      return;
    }
    this.input(iface, buf, len);
  }

  /** A frame from iface (null = from lo). */
  private input(iface: HostIface | null, buf: Uint8Array, len: number): void {
    const f = new Flow();
    const r = parseFrame(buf, len, f, iface === null ? 0 : iface.ifindex);
    if (r === PARSE_ARP) {
      if (iface !== null) this.arpInput(iface, f, buf);
      return;
    }
    // A router does not look past the IP header: a bad transport header is forwarded anyway.
    const transit = r >= PARSE_ERR_TCP_TRUNC && iface !== null && this.ipForward && !this.isLocal(f.daddr);
    if (r !== PARSE_OK && !transit) {
      if (r > 2) this.counters.rxParseErrors++;
      return;
    }
    if (this.isLocal(f.daddr)) {
      this.localDeliver(iface, f, buf);
      return;
    }
    if (iface === null) return;
    if (!this.ipForward) {
      this.counters.notForwarded++;
      return;
    }
    this.forward(iface, f, buf);
  }

  private arpInput(iface: HostIface, f: Flow, buf: Uint8Array): void {
    const sha = buf.slice(f.l3Off + ARP_SHA, f.l3Off + ARP_SHA + 6);
    const sip = f.arpSpa;
    const tip = f.arpTpa;
    if (f.arpOp === ARP_REQUEST && this.isLocal(tip)) {
      // arp_process: a request for a local address is answered unless arp_ignore says not;
      // only then is the sender's entry created (neigh_event_ns).
      if (this.arpIgnoreSays(iface, sip, tip)) {
        this.counters.arpIgnored++;
        return;
      }
      this.learn(sip, sha, iface);
      const out = new Uint8Array(ETH_HLEN + 28);
      writeEthHeader(out, 0, sha, iface.mac, ETH_P_ARP);
      writeArp(out, ETH_HLEN, ARP_REPLY, iface.mac, tip, sha, sip);
      this.counters.arpRepliesSent++;
      this.xmit(iface, out, out.length);
      return;
    }
    // Otherwise only refresh an existing entry (or the one being resolved): no arp_accept.
    if (sip !== 0 && (this.neigh.has(sip) || this.unresolved.has(sip))) this.learn(sip, sha, iface);
  }

  /** net/ipv4/arp.c arp_ignore(): true = do not reply. Effective level = max(all, iface). */
  private arpIgnoreSays(iface: HostIface, sip: number, tip: number): boolean {
    const level = Math.max(this.arpIgnore, iface.arpIgnore);
    switch (level) {
      case 0:
        return false;
      case 1:
      case 3:
        return !iface.hasAddr(tip);
      case 2:
        for (const a of iface.addrs) {
          const m = prefixToMask(a.prefix);
          if (a.addr === tip && (a.addr & m) >>> 0 === (sip & m) >>> 0) return false;
        }
        return true;
      case 8:
        return true;
      default:
        return false;
    }
  }

  private learn(ipa: number, mac: Uint8Array, iface: HostIface): void {
    const m = new Uint8Array(6);
    copyMac(m, 0, mac, 0);
    this.neigh.set(ipa, { mac: m, iface });
    const u = this.unresolved.get(ipa);
    if (u === undefined || u.iface !== iface) return;
    this.unresolved.delete(ipa);
    this.clock.cancel(u.timer);
    for (const fr of u.queue) {
      writeEthHeader(fr, 0, m, iface.mac, ETH_P_IP);
      this.xmit(iface, fr, fr.length);
    }
  }

  private forward(_iface: HostIface, f: Flow, buf: Uint8Array): void {
    const ipLen = f.l3End - f.l3Off;
    if (f.ttl <= 1) {
      this.counters.ttlExceeded++;
      this.icmpError(buf, f, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0, false);
      return;
    }
    const r = this.lookup(f.daddr);
    if (r === null) {
      this.counters.noRoute++;
      this.icmpError(buf, f, ICMP_DEST_UNREACH, ICMP_NET_UNREACH, 0, false);
      return;
    }
    if (ipLen > r.iface.mtu) {
      if (f.df) {
        this.counters.fragNeeded++;
        this.icmpError(buf, f, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, r.iface.mtu & 0xffff, false);
      } else this.counters.tooBigNoDf++;
      return;
    }
    ipv4DecTtl(buf, f);
    this.counters.forwarded++;
    const out = buf.slice(0, f.l3End);
    this.toNeighbour(r.iface, r.nexthop, out, out.length);
  }

  private localDeliver(iface: HostIface | null, f: Flow, buf: Uint8Array): void {
    if (f.fragment) {
      this.counters.fragmentsDropped++;
      return;
    }
    this.counters.delivered++;
    const l4Len = f.l3End - f.l4Off;
    switch (f.proto) {
      case IPPROTO_ICMP:
        this.icmpInput(f, buf);
        return;
      case IPPROTO_TCP:
        if (!verifyL4V4(buf, f.l3Off, f.l4Off, l4Len, IPPROTO_TCP)) {
          this.counters.rxL4Csum++;
          return;
        }
        this.tcp.input(f, buf);
        return;
      case IPPROTO_UDP:
        if (!verifyL4V4(buf, f.l3Off, f.l4Off, l4Len, IPPROTO_UDP)) {
          this.counters.rxL4Csum++;
          return;
        }
        if (!this.udp.input(f, buf)) this.icmpError(buf, f, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, true);
        return;
      case IPPROTO_IPIP:
        if (!this.ipip) {
          this.icmpError(buf, f, ICMP_DEST_UNREACH, ICMP_PROT_UNREACH, 0, true);
          return;
        }
        this.ipipInput(iface, f, buf);
        return;
      default:
        this.icmpError(buf, f, ICMP_DEST_UNREACH, ICMP_PROT_UNREACH, 0, true);
    }
  }

  /** ipip_rcv: strip the outer header; the inner datagram is received as if on a tunl device. */
  private ipipInput(iface: HostIface | null, f: Flow, buf: Uint8Array): void {
    const innerLen = f.l3End - f.l4Off;
    const frame = new Uint8Array(ETH_HLEN + innerLen);
    frame.set(buf.subarray(f.l4Off, f.l3End), ETH_HLEN);
    writeEthHeader(frame, 0, BROADCAST_MAC, BROADCAST_MAC, ETH_P_IP);
    const g = new Flow();
    if (parseFrame(frame, frame.length, g, 0) !== PARSE_OK) {
      this.counters.ipipDropped++;
      return;
    }
    if (!this.isLocal(g.daddr)) {
      // A decapsulated datagram for elsewhere would be forwarded by a router; real servers drop it.
      if (this.ipForward && iface !== null) {
        this.counters.ipipDecap++;
        this.forward(iface, g, frame);
      } else this.counters.ipipDropped++;
      return;
    }
    this.counters.ipipDecap++;
    this.localDeliver(null, g, frame);
  }

  private icmpInput(f: Flow, buf: Uint8Array): void {
    this.counters.icmpReceived++;
    const l4 = f.l4Off;
    if (f.icmpType === ICMP_ECHO) {
      const out = buf.slice(0, f.l3End);
      icmpEchoReplyInPlace(out, f, this.ttl);
      this.counters.icmpSent++;
      this.output(out, f.l3End - f.l3Off);
      return;
    }
    const ev: IcmpEvent = {
      type: f.icmpType,
      code: f.icmpCode,
      from: f.saddr,
      info: readU32(buf, l4 + 4),
      innerProto: f.innerProto,
      innerSaddr: f.innerSaddr,
      innerDaddr: f.innerDaddr,
      innerSport: f.innerSport,
      innerDport: f.innerDport,
    };
    for (const fn of this.icmpListeners) fn(ev);
    if (f.icmpType === ICMP_ECHOREPLY) {
      this.pingDone(readU16(buf, l4 + 4), readU16(buf, l4 + 6), null, f);
      return;
    }
    if (!icmpIsError(f.icmpType) || !f.hasInner || !this.isLocal(f.innerSaddr)) return;
    if (f.icmpType === ICMP_DEST_UNREACH && f.icmpCode === ICMP_FRAG_NEEDED) {
      // ip_rt_update_pmtu: never below 68 (RFC 791 minimum), never raised by an ICMP.
      let mtu = ev.info & 0xffff;
      if (mtu < 68) mtu = 68;
      const cur = this.pathMtu(f.innerDaddr);
      if (mtu < cur) this.pmtu.set(f.innerDaddr, mtu);
    }
    if (f.innerProto === IPPROTO_TCP && f.innerHasPorts) this.tcp.icmpError(ev);
    else if (f.innerProto === IPPROTO_UDP && f.innerHasPorts) this.udp.icmpError(ev);
    else if (
      f.innerProto === IPPROTO_ICMP &&
      f.innerL4Off + 8 <= f.l3End &&
      buf[f.innerL4Off] === ICMP_ECHO
    ) {
      const code = f.icmpType === ICMP_TIME_EXCEEDED ? "ETIMEEXCEEDED" : "EHOSTUNREACH";
      this.pingDone(readU16(buf, f.innerL4Off + 4), readU16(buf, f.innerL4Off + 6), code, f);
    }
  }

  /**
   * icmp_send: an error about the datagram at f, to its source. Locally generated errors
   * (port/protocol unreachable) come from the address the datagram was sent to; forwarded ones
   * from the route's preferred source toward the sender. Never about an ICMP error.
   */
  private icmpError(
    buf: Uint8Array,
    f: Flow,
    type: number,
    code: number,
    info: number,
    local: boolean,
  ): void {
    if (f.proto === IPPROTO_ICMP && icmpIsError(f.icmpType)) return;
    if ((f.saddr & 0xff000000) >>> 0 === 0 || f.saddr === 0xffffffff) return;
    const src = local ? f.daddr : this.sourceFor(f.saddr);
    if (src === 0) return;
    const out = new Uint8Array(ETH_HLEN + 576);
    const n = buildIcmpError(
      out,
      ETH_HLEN,
      type,
      code,
      info,
      buf,
      f.l3Off,
      f.l3End - f.l3Off,
      src,
      f.saddr,
      this.ttl,
      this.ipId++,
    );
    if (n === 0) return;
    this.counters.icmpSent++;
    this.output(out.subarray(0, ETH_HLEN + n), n);
  }

  // ---- ping ----

  /** One ICMP echo to dst; cb once with the reply, an ICMP error, or ETIMEDOUT after timeoutMs. */
  ping(dst: IpLike, cb: PingCallback, o: { timeoutMs?: number; size?: number; ttl?: number } = {}): void {
    const d = ip(dst);
    const id = this.pingId;
    const seq = this.pings.size + 1;
    this.pingId = (this.pingId % 0xffff) + 1;
    const size = o.size ?? 56;
    const key = id * 65536 + seq;
    const timer = this.clock.after(o.timeoutMs ?? 1000, () => {
      if (!this.pings.delete(key)) return;
      cb(Object.assign(new Error(`ping ${formatIPv4(d)}: timeout`), { code: "ETIMEDOUT" }), null);
    });
    this.pings.set(key, { cb, sent: this.clock.now, timer });
    const ok = this.sendIp(
      IPPROTO_ICMP,
      0,
      d,
      ICMP_HLEN + size,
      (b, off) => {
        b[off] = ICMP_ECHO;
        writeU16(b, off + 4, id);
        writeU16(b, off + 6, seq);
        for (let i = 0; i < size; i++) b[off + ICMP_HLEN + i] = i & 255;
      },
      { ttl: o.ttl },
    );
    if (!ok) {
      this.pings.delete(key);
      this.clock.cancel(timer);
      cb(Object.assign(new Error(`ping ${formatIPv4(d)}: no route`), { code: "ENETUNREACH" }), null);
    }
  }

  private pingDone(id: number, seq: number, errCode: string | null, f: Flow): void {
    const key = id * 65536 + seq;
    const p = this.pings.get(key);
    if (p === undefined) return;
    this.pings.delete(key);
    this.clock.cancel(p.timer);
    if (errCode !== null) {
      p.cb(
        Object.assign(new Error(`ping: ${errCode} from ${formatIPv4(f.saddr)}`), {
          code: errCode,
          from: f.saddr,
        }),
        null,
      );
      return;
    }
    p.cb(null, { from: f.saddr, ttl: f.ttl, rttMs: this.clock.now - p.sent });
  }
}

const ZERO_MAC = new Uint8Array(6);

/** inet_select_addr: the interface address whose subnet holds dst, else the primary. */
function selectAddr(iface: HostIface, dst: number): number {
  for (const a of iface.addrs) {
    const m = prefixToMask(a.prefix);
    if ((a.addr & m) >>> 0 === (dst & m) >>> 0) return a.addr;
  }
  return iface.primary;
}

/** inet_addr_onlink: target and addr both inside one subnet of the interface. */
function onLink(iface: HostIface, target: number, addr: number): boolean {
  for (const a of iface.addrs) {
    const m = prefixToMask(a.prefix);
    const net = (a.addr & m) >>> 0;
    if ((target & m) >>> 0 === net && (addr & m) >>> 0 === net) return true;
  }
  return false;
}

/** FNV-1a, for default per-host seeds derived from the name. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
