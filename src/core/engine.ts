// The director's data path: frames and a clock in, frames and events out.
//
// For every frame (net/netfilter/ipvs/ip_vs_core.c is the reference: ip_vs_in, ip_vs_out,
// ip_vs_in_icmp, ip_vs_out_icmp, ip_vs_schedule, ip_vs_sched_persist; ip_vs_conn.c for the
// connection life cycle): parse once into the Flow descriptor → classify (fwmark) → reply
// direction lookup (NAT/FULLNAT) → request direction lookup → else find the service and
// schedule a destination (persistence templates first), create a connection → state
// transition → transmit with the method bound to the connection → counters.
//
// The engine owns nothing that is I/O: a `send` callback takes finished frames, the caller
// supplies `now` (ms) with every call, and randomness is injected.
//
// GSO/GRO aggregates (a TCP or UDP datagram of up to 64 KiB that the kernel will cut in gso_size
// segments): the link hands their metadata in as an offload word (packet/vnet.ts). An aggregate
// is rewritten once and sent back whole with a virtio_net_hdr (NEEDS_CSUM, gso_type, gso_size),
// its partial checksum field reset to the pseudo-header sum of the rewritten addresses, so the
// kernel segments it and finishes each segment's checksum. A method that cannot send it whole
// (TUN: no IPIP GSO type in virtio_net_hdr; FULLNAT adding TOA: the option would be copied into
// every segment) gets it cut in software first (packet/gso.ts), one segment at a time.

import type { InetAddr } from "./addr.js";
import { readU32 } from "./addr.js";
import {
  CONN_F_FWD_MASK,
  CONN_F_INACTIVE,
  CONN_F_NOOUTPUT,
  CONN_F_ONE_PACKET,
  CONN_F_TEMPLATE,
  ConnTable,
} from "./conn/table.js";
import { IpvsCtl } from "./ctl.js";
import type { ConnView, CtlCommand } from "./ctl-types.js";
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD, type Dest, Fwd } from "./dest.js";
import { FwmarkClassifier } from "./fwmark.js";
import { LipTable } from "./lip.js";
import { type Neigh, NeighCache } from "./neigh.js";
import { ARP_REPLY, ARP_REQUEST, writeArp } from "./packet/arp.js";
import { csumAdd, csumFinish } from "./packet/csum.js";
import { BROADCAST_MAC, copyMac, ETH_HLEN, writeEthHeader } from "./packet/eth.js";
import {
  ETH_P_ARP,
  ETH_P_IP,
  Flow,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  TCP_ACK,
  TCP_RST,
  TCP_SYN,
} from "./packet/flow.js";
import { gsoBuildSegment, gsoSegmentCount, writePseudoHeaderSum } from "./packet/gso.js";
import {
  buildIcmpError,
  ICMP_DEST_UNREACH,
  ICMP_ECHO,
  ICMP_EXC_TTL,
  ICMP_FRAG_NEEDED,
  ICMP_PORT_UNREACH,
  ICMP_SOURCE_QUENCH,
  ICMP_TIME_EXCEEDED,
  icmpEchoReplyInPlace,
} from "./packet/icmp.js";
import { ipv4DecTtl, writeIpv4Header } from "./packet/ipv4.js";
import { PARSE_ARP, PARSE_OK, PARSE_RESULT_NAMES, parseFrame } from "./packet/parse.js";
import { TCP_HLEN } from "./packet/tcp.js";
import {
  offloadGsoType,
  VNET_F_NEEDS_CSUM,
  VNET_GSO_TCPV4,
  VNET_GSO_UDP_L4,
  VNET_HDR_LEN,
  writeVnetHdr,
} from "./packet/vnet.js";
import {
  DIR_INPUT,
  DIR_OUTPUT,
  TCP_S_CLOSE,
  TCP_S_ESTABLISHED,
  TCP_S_FIN_WAIT,
  TCP_S_NONE,
  TCP_S_SYN_RECV,
  TCP_S_SYNACK,
  TCP_S_TIME_WAIT,
  TCP_STATE_NAMES,
  tcpNextState,
} from "./proto/tcp.js";
import { Timeouts } from "./proto/timeouts.js";
import { UDP_STATE_NAME } from "./proto/udp.js";
import { estimatorTick } from "./rate.js";
import {
  type Iface,
  type IfaceAddr,
  type IfaceConfig,
  type RouteConfig,
  RouteResult,
  RouteTable,
} from "./route.js";
import type { SchedContext } from "./sched/types.js";
import type { Service } from "./service.js";
import { SVC_F_ONEPACKET } from "./service.js";
import { Stats } from "./stats.js";
import { XMIT } from "./xmit/index.js";
import { Verdict, type XmitEngine } from "./xmit/types.js";

export { Verdict };

/** The kernel's per-netns IPVS sysctls that change data-path behaviour. */
export interface Sysctls {
  /** 1 (default): a SYN that hits a TIME_WAIT entry (not controlled) reschedules. Bit 2: also FIN_WAIT w/o output. */
  connReuseMode: number;
  /** Expire a connection whose destination is gone (or weight 0 on a new SYN) instead of dropping its packets. */
  expireNodestConn: boolean;
  /** A persistence template whose destination has weight 0 is invalid for new connections. */
  expireQuiescentTemplate: boolean;
  /** Create TCP connections from any packet, not only SYN. */
  sloppyTcp: boolean;
}

export const DEFAULT_SYSCTLS: Sysctls = {
  connReuseMode: 1,
  expireNodestConn: false,
  expireQuiescentTemplate: false,
  sloppyTcp: false,
};

export interface EngineOptions {
  /** Maximum connection entries (templates included). */
  connCapacity?: number;
  /** The size ipvsadm reports as "(size=N)": the kernel's connection hash size. */
  connTabSize?: number;
  interfaces: IfaceConfig[];
  routes?: RouteConfig[];
  /** FULLNAT local addresses (the LIP pool: every worker's; services may add their own, lip.ts). */
  lips?: number[];
  /** This engine's place among the daemon's workers: it takes LIP k only when k % count === index. */
  worker?: { index: number; count: number };
  sysctls?: Partial<Sysctls>;
  /** Answer ARP and ping for the interfaces' own addresses too (the simulation has no kernel). */
  ownInterfaceAddresses?: boolean;
  /** Uniform random u32; injected for deterministic simulation. */
  random?: () => number;
  /**
   * Where finished frames go: (ifindex, buffer, offset, length, vnet); must not keep the buffer.
   * vnet is null for a plain frame, or the 10-byte virtio_net_hdr an aggregate must be sent with
   * (valid until the next frame).
   */
  send: (ifindex: number, buf: Uint8Array, off: number, len: number, vnet: Uint8Array | null) => void;
}

/** Why frames were dropped, besides the parser's own reasons. */
export const DROP_REASONS = [
  "no_route",
  "neigh_failed",
  "ttl_exceeded",
  "frag_needed",
  "too_big",
  "no_dest",
  "dest_unavailable",
  "table_full",
  "not_syn",
  "fragment",
  "icmp_unrelated",
  "closed_port",
  "arp_ignored",
  "unsupported",
] as const;
export type DropReason = (typeof DROP_REASONS)[number];
const R: Record<DropReason, number> = Object.fromEntries(DROP_REASONS.map((n, i) => [n, i])) as Record<
  DropReason,
  number
>;

/**
 * V8 flags the process that runs the engine on its hot path should set (v8.setFlagsFromString,
 * before the first packet): Engine.input spends V8's default cumulative inlining budget (920 bytes
 * of bytecode) on the parser and the VIP check, leaving ~20 calls per packet out of line; 5000
 * inlines them (bench:core, 100k connections: established NAT ~685 → ~525 ns, DR ~585 → ~330).
 */
export const ENGINE_V8_FLAGS = "--max-inlined-bytecode-size-cumulative=5000";

export class EngineCounters {
  rxFrames = 0;
  txFrames = 0;
  passed = 0;
  arpReplies = 0;
  arpRequests = 0;
  echoReplies = 0;
  icmpErrorsSent = 0;
  connsCreated = 0;
  connsExpired = 0;
  connsDropped = 0;
  /** GSO/GRO aggregates received (offload word with a gso_type). */
  gsoIn = 0;
  /** Aggregates sent whole with a virtio_net_hdr (the kernel segments them). */
  gsoOut = 0;
  /** Aggregates cut in software (TUN, FULLNAT with TOA, no partial checksum), and the segments made. */
  gsoSegmented = 0;
  gsoSegments = 0;
  readonly parseErrors = new Float64Array(PARSE_RESULT_NAMES.length);
  readonly drops = new Float64Array(DROP_REASONS.length);

  /** Non-zero drop counters by name (parser reasons prefixed "parse_"). */
  dropTable(): Record<string, number> {
    const out: Record<string, number> = {};
    PARSE_RESULT_NAMES.forEach((n, i) => {
      if (this.parseErrors[i] > 0) out[`parse_${n}`] = this.parseErrors[i];
    });
    DROP_REASONS.forEach((n, i) => {
      if (this.drops[i] > 0) out[n] = this.drops[i];
    });
    return out;
  }
}

const ESTIMATOR_INTERVAL_MS = 2000;
const TIMER_CHECK_MS = 100;
const FIRST_LPORT = 1024;
const TEMPLATE_EXPIRE_LATER_MS = 60_000;
const ICMP_ERR_TTL = 64;
/** Port value the kernel writes into an invalidated template so that it is never found again. */
const INVALID_PORT = 0xffff;

export class Engine implements XmitEngine {
  readonly conns: ConnTable;
  readonly ctl: IpvsCtl;
  readonly routes = new RouteTable();
  readonly neigh = new NeighCache();
  readonly fwmarks = new FwmarkClassifier();
  readonly timeouts = new Timeouts();
  readonly sysctls: Sysctls;
  readonly totalStats = new Stats();
  readonly counters = new EngineCounters();
  readonly scratch = new Uint8Array(65536 + 256);
  /** Where an aggregate's segments are built, one at a time (the methods may then use scratch). */
  private readonly segBuf = new Uint8Array(65536 + 256);
  /** The virtio_net_hdr handed to `send` with an aggregate. */
  private readonly txVnet = new Uint8Array(VNET_HDR_LEN);
  readonly connTabSize: number;
  /** This worker's share of the `--lip` pool. */
  readonly lips: number[];
  /** Every LIP (pool and services' laddrs), their owners and their use (lip.ts). */
  readonly lipTable: LipTable;
  private readonly ownIfaceAddrs: boolean;
  private readonly sendFrame: EngineOptions["send"];
  private readonly flow = new Flow();
  private readonly rt = new RouteResult();
  private readonly schedCtx: SchedContext;
  private lipCursor = 0;
  private readonly lipCb = (a: number): void => void this.lipTable.register(a);
  private lportCursor = FIRST_LPORT;
  private nextTimerCheck = 0;
  private nextEstimate = 0;
  /** Per destination id: cached route and neighbour (cleared on every control change). */
  private destRoute: Array<DestPath | undefined> = [];
  /**
   * Service VIPs (not LIPs), open addressing over int32 (0 = empty slot): a packet to one of
   * them is a request, so the reply-direction lookup is skipped (see input()).
   */
  private vipSet = new Int32Array(8);
  private readonly ipScratch = new Uint8Array(1600);
  /** emitIp's last next hop (interface, int32 address) and its neighbour entry, or null. */
  private hopNeigh: Neigh | null = null;
  private hopIface: Iface | null = null;
  private hopAddr = 0;
  now = 0;

  constructor(opts: EngineOptions) {
    this.conns = new ConnTable(opts.connCapacity ?? 1 << 16);
    this.connTabSize = opts.connTabSize ?? 4096;
    this.sysctls = { ...DEFAULT_SYSCTLS, ...opts.sysctls };
    this.ownIfaceAddrs = opts.ownInterfaceAddresses ?? false;
    this.sendFrame = opts.send;
    this.lipTable = new LipTable(opts.lips ?? [], opts.worker?.index ?? 0, opts.worker?.count ?? 1);
    this.lips = Array.from(this.lipTable.poolShare, (a) => a >>> 0);
    for (const i of opts.interfaces) this.routes.addIface(i);
    for (const r of opts.routes ?? []) this.routes.addRoute(r);
    const random = opts.random ?? defaultRandom();
    this.schedCtx = { now: 0, random };
    this.ctl = new IpvsCtl({
      onSetTimeout: (t) => this.timeouts.set(t),
      onDestRemoved: (d) => this.destRemoved(d),
      onServiceRemoved: () => {},
      onDestQuiesced: () => {},
      onLaddrAdded: this.lipCb,
    });
  }

  // ---------------------------------------------------------------- control

  /** One atomic control change (an ipvsadm command). Throws TsvsError with ipvsadm's message. */
  apply(cmd: CtlCommand): void {
    try {
      this.ctl.apply(cmd);
    } finally {
      this.controlChanged();
    }
  }

  applyAll(cmds: CtlCommand[]): void {
    try {
      this.ctl.applyAll(cmds);
    } finally {
      this.controlChanged();
    }
  }

  private controlChanged(): void {
    this.destRoute.length = 0;
    const lt = this.lipTable;
    const laddrs: number[] = [];
    for (const s of this.ctl.services()) {
      laddrs.push(...s.laddrs);
      s.laddrShare = lt.share(s.laddrs);
      if (s.laddrCursor >= s.laddrShare.length) s.laddrCursor = 0;
    }
    lt.setInUse(laddrs);
    const vips: number[] = [];
    for (const s of this.ctl.services()) {
      const a = s.addr >>> 0;
      if (s.fwmark === 0 && a !== 0 && !lt.isLip(a)) vips.push(a);
    }
    let n = 8;
    while (n < vips.length * 4) n *= 2;
    const set = new Int32Array(n);
    for (const a of vips) {
      let i = vipSlot(a, n - 1);
      while (set[i] !== 0 && set[i] !== (a | 0)) i = (i + 1) & (n - 1);
      set[i] = a | 0;
    }
    this.vipSet = set;
  }

  /** Is addr the address of a (non-fwmark) virtual service, and not a LIP? */
  private isVip(addr: number): boolean {
    const set = this.vipSet;
    const m = set.length - 1;
    const a = addr | 0;
    if (a === 0) return false;
    for (let i = vipSlot(addr, m); ; i = (i + 1) & m) {
      const v = set[i];
      if (v === a) return true;
      if (v === 0) return false;
    }
  }

  services(): readonly Service[] {
    return this.ctl.services();
  }

  // ---------------------------------------------------------------- host changes

  /**
   * The host's interfaces or routes changed (the daemon follows rtnetlink): the table is replaced
   * whole, the per-destination paths and emitIp's last hop are forgotten, and the neighbours of an
   * interface that went away or took another MAC are flushed. `hostLocal` (--host-vips): the
   * addresses the host delivers locally, outside which no VIP is served; null = every VIP.
   */
  setHost(interfaces: IfaceConfig[], routes: RouteConfig[], hostLocal: IfaceAddr[] | null = null): void {
    const before = this.routes.ifaces.map((i) => ({ ifindex: i.ifindex, mac: i.mac }));
    this.routes.replace(interfaces, routes);
    this.routes.setHostLocal(hostLocal);
    for (const b of before) {
      const now = this.routes.iface(b.ifindex);
      let same = now !== undefined;
      for (let k = 0; same && now !== undefined && k < 6; k++) same = now.mac[k] === b.mac[k];
      if (!same) this.neigh.flushIface(b.ifindex);
    }
    this.destRoute.length = 0;
    this.hopNeigh = null;
    this.hopIface = null;
    this.hopAddr = 0;
  }

  // ---------------------------------------------------------------- time

  /** Expires connections and runs the rate estimator; the I/O loop calls it periodically. */
  tick(now: number): void {
    this.now = now;
    if (now >= this.nextTimerCheck) {
      this.nextTimerCheck = now + TIMER_CHECK_MS;
      this.conns.advance(now, this.expireCb);
      this.now = now;
      const t: { requests: { ifindex: number; ip: number }[]; dropped: number } = {
        requests: [],
        dropped: 0,
      };
      this.neigh.tick(now, t);
      for (const r of t.requests) this.sendArpRequest(r.ifindex, r.ip);
      if (t.dropped > 0) this.counters.drops[R.neigh_failed] += t.dropped;
    }
    if (now >= this.nextEstimate) {
      if (this.nextEstimate !== 0) this.estimate();
      this.nextEstimate = now + ESTIMATOR_INTERVAL_MS;
    }
  }

  private estimate(): void {
    estimatorTick(this.totalStats);
    for (const s of this.ctl.services()) {
      estimatorTick(s.stats);
      for (const d of s.dests) estimatorTick(d.stats);
    }
  }

  // ---------------------------------------------------------------- input

  /**
   * One frame from link `ifindex`. The frame may be rewritten in place; output frames are
   * handed to `send` before this returns. Never throws on malformed input: counts and drops.
   * offload: the link's offload word for the frame (packet/vnet.ts), 0 for a plain frame.
   */
  input(ifindex: number, buf: Uint8Array, len: number, now: number, offload = 0): Verdict {
    if (now >= this.nextTimerCheck) this.tick(now);
    this.now = now;
    const c = this.counters;
    c.rxFrames++;
    const f = this.flow;
    // Written for every frame (transmit() reads them for whatever leaves from f.buf).
    const gt = (offload >>> 16) & 0xff;
    f.gsoType = gt;
    f.gsoSize = offload & 0xffff;
    f.csumPartial = (offload & (VNET_F_NEEDS_CSUM << 24)) !== 0;
    if (gt !== 0) c.gsoIn++;
    const r = parseFrame(buf, len, f, ifindex);
    if (r === PARSE_ARP) return this.arpInput(f, now);
    if (r !== PARSE_OK) {
      if (r < c.parseErrors.length && PARSE_RESULT_NAMES[r].startsWith("err")) {
        c.parseErrors[r]++;
        return Verdict.Drop;
      }
      c.passed++;
      return Verdict.Pass;
    }
    // Without rules no mark is set (the usual case): spare the call.
    f.fwmark = this.fwmarks.size === 0 ? 0 : this.fwmarks.classify(f);
    if (f.proto === IPPROTO_ICMP) return this.icmpInput(f, now);
    if (f.proto !== IPPROTO_TCP && f.proto !== IPPROTO_UDP) return this.otherProto(f, now);
    if (f.fragment && !f.firstFragment) return this.drop(R.fragment);
    // Only a TCP (TCPV4) or UDP (UDP_L4) aggregate of this protocol can go out as one.
    if (gt !== 0 && !this.gsoMatches(f)) f.csumPartial = false;

    const t = this.conns;
    let cx: number;
    // Reply direction first (ip_vs_out): only entries whose replies cross the director. A
    // packet to a VIP is a request: NAT replies go to clients and FULLNAT replies to LIPs
    // (never in the VIP set), so the reply lookup can only miss and is skipped.
    // Addresses go to the table as int32 (small integers: no boxing when a call is not inlined).
    const saddr = f.saddr | 0;
    const daddr = f.daddr | 0;
    if (!this.isVip(daddr)) {
      cx = t.lookupOut(f.proto, saddr, f.sport, daddr, f.dport);
      if (cx >= 0) return this.outbound(cx, f, now);
    }

    cx = t.lookupIn(f.proto, saddr, f.sport, daddr, f.dport);
    if (cx >= 0 && f.proto === IPPROTO_TCP && (f.tcpFlags & TCP_SYN) !== 0) cx = this.reuseCheck(cx);
    if (cx >= 0) {
      const dest = this.ctl.destById(t.destOf(cx));
      if (dest !== undefined && (dest.flags & DEST_F_AVAILABLE) === 0) {
        if (!this.sysctls.expireNodestConn) return this.drop(R.dest_unavailable);
        this.expireNow(cx);
        cx = -1;
      }
    }
    if (cx < 0) {
      const svc = this.ctl.findService(f);
      // --host-vips: a VIP the host does not have (VRRP moved it away) is not ours right now.
      if (svc === null || !this.routes.hostDelivers(f.daddr)) return this.notForUs(f, now);
      if (f.proto === IPPROTO_TCP) {
        const fl = f.tcpFlags;
        if ((fl & TCP_RST) !== 0 || ((fl & TCP_SYN) === 0 && !this.sysctls.sloppyTcp)) {
          // tcp_conn_schedule declines: the packet goes to the local stack, which has no
          // socket on the VIP — it answers with a reset.
          return this.localTcpReset(f, now);
        }
      }
      cx = this.schedule(svc, f, now);
      if (cx < 0) return cx === -2 ? this.drop(R.table_full) : this.leave(f, now);
    }
    return this.inbound(cx, f, now);
  }

  private inbound(cx: number, f: Flow, now: number): Verdict {
    const t = this.conns;
    // ip_vs_in: the stats and the state transition come first; the TTL is checked by the
    // method's route lookup (decrement_ttl in __ip_vs_get_out_rt), so a request that dies of
    // its TTL still counts and still moves the connection's state.
    this.inStats(cx, f.l3End - f.l3Off);
    if (f.proto === IPPROTO_TCP) this.setTcpState(cx, DIR_INPUT, f.tcpFlags);
    else t.arm(cx, this.timeouts.udpMs(), now);
    t.countIn(cx);
    let v: Verdict;
    if (f.ttl <= 1) v = this.ttlExceeded(f, f.daddr, now);
    else {
      ipv4DecTtl(f.buf, f);
      const m = XMIT[t.flagsOf(cx) & CONN_F_FWD_MASK];
      v =
        f.gsoType !== 0 && (!f.csumPartial || m.segmentsInbound?.(this, cx, f) === true)
          ? this.segmented(m.inbound, cx, f, now)
          : m.inbound(this, cx, f, now);
    }
    if ((t.flagsOf(cx) & CONN_F_ONE_PACKET) !== 0) this.expireNow(cx);
    return v;
  }

  private outbound(cx: number, f: Flow, now: number): Verdict {
    const t = this.conns;
    const m = XMIT[t.flagsOf(cx) & CONN_F_FWD_MASK];
    if (m.outbound === undefined) return this.drop(R.unsupported);
    if (f.ttl <= 1) return this.ttlExceeded(f, 0, now);
    this.outStats(cx, f.l3End - f.l3Off);
    if (f.proto === IPPROTO_TCP) this.setTcpState(cx, DIR_OUTPUT, f.tcpFlags);
    else t.arm(cx, this.timeouts.udpMs(), now);
    t.countOut(cx);
    ipv4DecTtl(f.buf, f);
    if (f.gsoType !== 0 && !f.csumPartial) return this.segmented(m.outbound, cx, f, now);
    return m.outbound(this, cx, f, now);
  }

  /** Is the aggregate's gso_type the one of its transport protocol (TCPV4 for TCP, UDP_L4 for UDP)? */
  private gsoMatches(f: Flow): boolean {
    const t = offloadGsoType(f.gsoType << 16);
    return f.proto === IPPROTO_TCP ? t === VNET_GSO_TCPV4 : t === VNET_GSO_UDP_L4;
  }

  /**
   * Software GSO: cuts the aggregate in f into gso_size segments (packet/gso.ts), points f at each
   * in turn (in segBuf) and hands it to the method as a plain packet. Stops at the first segment
   * the method does not send (it counted why; the rest would fare the same).
   */
  private segmented(
    fn: (e: Engine, c: number, f: Flow, now: number) => number,
    cx: number,
    f: Flow,
    now: number,
  ): Verdict {
    const src = f.buf;
    const l3 = f.l3Off;
    const l4 = f.l4Off;
    const pay = f.payloadOff;
    const end = f.l3End;
    const mss = f.gsoSize;
    const ipId = f.ipId;
    const n = gsoSegmentCount(end - pay, mss);
    const out = this.segBuf;
    const o3 = ETH_HLEN;
    f.gsoType = 0;
    f.gsoSize = 0;
    f.csumPartial = false;
    const c = this.counters;
    c.gsoSegmented++;
    let v: number = Verdict.Drop;
    for (let k = 0; k < n; k++) {
      const len = gsoBuildSegment(out, o3, src, l3, l4, pay, end, mss, k);
      if (len === 0) return this.drop(R.unsupported);
      c.gsoSegments++;
      f.buf = out;
      f.len = o3 + len;
      f.l3Off = o3;
      f.l4Off = o3 + (l4 - l3);
      f.payloadOff = o3 + (pay - l3);
      f.l3End = o3 + len;
      f.ipId = (ipId + k) & 0xffff;
      if (f.proto === IPPROTO_TCP) {
        f.tcpSeq = readU32(out, f.l4Off + 4);
        f.tcpFlags = out[f.l4Off + 13];
      }
      v = fn(this, cx, f, now);
      if (v !== Verdict.Sent) break;
    }
    return v;
  }

  /**
   * conn_reuse_mode and expire_nodest_conn for a SYN that hits an existing entry
   * (ip_vs_in: is_new_conn && cp). Returns the entry to use, or -1 to schedule anew.
   */
  private reuseCheck(cx: number): number {
    const t = this.conns;
    const dest = this.ctl.destById(t.destOf(cx));
    let resched = false;
    if (this.sysctls.expireNodestConn && dest !== undefined && dest.weight === 0) resched = true;
    else if (this.sysctls.connReuseMode !== 0 && t.controlOf(cx) < 0) {
      const st = t.stateOf(cx);
      resched =
        t.protoOf(cx) === IPPROTO_TCP &&
        (st === TCP_S_TIME_WAIT ||
          ((this.sysctls.connReuseMode & 2) !== 0 &&
            st === TCP_S_FIN_WAIT &&
            (t.flagsOf(cx) & CONN_F_NOOUTPUT) !== 0));
    }
    if (!resched) return cx;
    if (t.nControlOf(cx) === 0) this.expireNow(cx);
    return -1;
  }

  // ---------------------------------------------------------------- scheduling

  /**
   * ip_vs_schedule: returns the new connection's index, -1 when no destination can be
   * found (the caller answers as ip_vs_leave does), -2 when the table is full.
   */
  private schedule(svc: Service, f: Flow, now: number): number {
    this.schedCtx.now = now;
    if (svc.persistent) return this.schedulePersist(svc, f, now);
    if (svc.fwmark === 0 && f.dport !== svc.port) return -1;
    const dest = svc.sched.schedule(svc, f, this.schedCtx);
    if (dest === null) return -1;
    const flags = (svc.flags & SVC_F_ONEPACKET) !== 0 && f.proto === IPPROTO_UDP ? CONN_F_ONE_PACKET : 0;
    const dport = dest.port !== 0 ? dest.port : f.dport;
    // Addresses as int32 bits (the table stores int32): a u32 above 2^31 passed to a call that
    // is not inlined is boxed, an allocation per new connection.
    const cx = this.newConn(f.proto, f.saddr | 0, f.sport, f.daddr | 0, f.dport, dest, dport, flags, now);
    if (cx >= 0) this.connStats(svc, dest);
    return cx;
  }

  /** ip_vs_sched_persist: find or create the template, then the connection under it. */
  private schedulePersist(svc: Service, f: Flow, now: number): number {
    const t = this.conns;
    // int32 bits, as in schedule(): no boxing on the calls below.
    const snet = f.saddr & svc.netmask;
    // Template keys, as the kernel fills ip_vs_conn_param for them:
    //   port-specific (PPC):      <proto, snet, 0, vaddr, vport>
    //   port zero (PCC):          <proto, snet, 0, vaddr, 0>
    //   fwmark:                   <IPPROTO_IP, snet, 0, fwmark, 0>
    const portMatch = f.dport === svc.port;
    const tproto = svc.fwmark !== 0 ? 0 : f.proto;
    const tvaddr = (svc.fwmark !== 0 ? svc.fwmark : f.daddr) | 0;
    const tvport = svc.fwmark === 0 && portMatch ? f.dport : 0;
    let ct = t.lookupTemplate(tproto, snet, tvaddr, tvport);
    let dest: Dest | undefined;
    if (ct >= 0 && this.checkTemplate(ct)) {
      dest = this.ctl.destById(t.destOf(ct));
    } else {
      const d = svc.sched.schedule(svc, f, this.schedCtx);
      if (d === null) return -1;
      dest = d;
      const tdport = portMatch ? d.port : 0;
      ct = this.newConn(tproto, snet, 0, tvaddr, tvport, d, tdport, CONN_F_TEMPLATE, now);
      if (ct < 0) return -2;
      t.setTimeout(ct, svc.timeout * 1000);
    }
    if (dest === undefined) return -1;
    let dport = f.dport;
    if (dport === svc.port && dest.port !== 0) dport = dest.port;
    const flags = (svc.flags & SVC_F_ONEPACKET) !== 0 && f.proto === IPPROTO_UDP ? CONN_F_ONE_PACKET : 0;
    const cx = this.newConn(f.proto, f.saddr | 0, f.sport, f.daddr | 0, f.dport, dest, dport, flags, now);
    if (cx < 0) return -2;
    t.setControl(cx, ct);
    t.setNControl(ct, t.nControlOf(ct) + 1);
    // ip_vs_conn_put(ct): every new connection restarts the template's timer.
    t.arm(ct, t.timeoutOf(ct), now);
    this.connStats(svc, dest);
    return cx;
  }

  /** ip_vs_check_template: is the template's destination still fit for new connections? */
  private checkTemplate(ct: number): boolean {
    const t = this.conns;
    const dest = this.ctl.destById(t.destOf(ct));
    if (
      dest === undefined ||
      dest.svc === null ||
      (dest.flags & DEST_F_AVAILABLE) === 0 ||
      (this.sysctls.expireQuiescentTemplate && dest.weight === 0)
    ) {
      // Invalidate: re-key so that it is never found again; it lives on while it controls.
      if (t.vportOf(ct) !== INVALID_PORT) {
        t.unhash(ct);
        t.setDport(ct, INVALID_PORT);
        t.setVport(ct, INVALID_PORT);
        t.setCport(ct, 0);
        t.hash(ct);
      }
      return false;
    }
    return true;
  }

  /** ip_vs_conn_new + ip_vs_bind_dest. Returns the index, or -1 when the table is full. */
  private newConn(
    proto: number,
    caddr: number,
    cport: number,
    vaddr: number,
    vport: number,
    dest: Dest,
    dport: number,
    flags: number,
    now: number,
  ): number {
    const t = this.conns;
    let cx = t.alloc();
    if (cx < 0) {
      // The kernel's defense (ip_vs_random_dropentry) frees embryonic entries when memory
      // is short; here the table is the bound, so the oldest embryonic entry makes room.
      const victim = t.oldestEmbryonic();
      if (victim < 0) return -1;
      this.counters.connsDropped++;
      this.expireNow(victim);
      cx = t.alloc();
      if (cx < 0) return -1;
    }
    const template = (flags & CONN_F_TEMPLATE) !== 0;
    let fl = flags | dest.fwd | CONN_F_INACTIVE;
    if (dest.fwd !== Fwd.Masq && dest.fwd !== Fwd.FullNat) fl |= CONN_F_NOOUTPUT;
    // alloc() cleared state, control, counters. The real server replies to the client itself
    // (NAT): the reply key is <RIP:rport → CIP:cport>; FULLNAT picks laddr:lport below.
    const daddr = dest.addr | 0;
    t.setEntry(cx, proto, caddr, cport, vaddr, vport, daddr, dport, caddr, cport, fl, dest.id);
    if (dest.fwd === Fwd.FullNat && !template) {
      if (!this.allocLocal(cx, proto, daddr, dport, dest.svc)) {
        t.free(cx);
        return -1;
      }
    }
    t.hash(cx);
    this.ctl.destRef(dest.id);
    if (!template) dest.inactConns++;
    else dest.persistConns++;
    if (dest.uThreshold !== 0 && dest.activeConns + dest.inactConns >= dest.uThreshold)
      dest.flags |= DEST_F_OVERLOAD;
    t.arm(cx, template ? 0 : this.initialTimeout(proto), now);
    this.counters.connsCreated++;
    return cx;
  }

  private initialTimeout(proto: number): number {
    return proto === IPPROTO_UDP ? this.timeouts.udpMs() : this.timeouts.tcpMs(TCP_S_NONE);
  }

  /**
   * FULLNAT: a LIP and a free local port toward RIP:rport. The LIP comes from the service's own
   * local addresses when it has any (round robin over this worker's share, as DPVS's __get_laddr
   * walks svc->laddr_list), else from this worker's share of the --lip pool. A service whose
   * laddrs all belong to other workers gets nothing here: the connection fails (no_dest).
   */
  private allocLocal(cx: number, proto: number, raddr: number, rport: number, svc: Service | null): boolean {
    const own = svc !== null && svc.laddrs.length > 0;
    const lips = own ? svc.laddrShare : this.lipTable.poolShare;
    const n = lips.length;
    if (n === 0) return false;
    const t = this.conns;
    const lt = this.lipTable;
    for (let l = 0; l < n; l++) {
      let at: number;
      if (own) {
        at = svc.laddrCursor < n ? svc.laddrCursor : 0;
        svc.laddrCursor = (at + 1) % n;
      } else {
        at = this.lipCursor < n ? this.lipCursor : 0;
        this.lipCursor = (at + 1) % n;
      }
      const lip = lips[at];
      for (let k = 0; k < 65536 - FIRST_LPORT; k++) {
        const p = this.lportCursor;
        this.lportCursor = p === 65535 ? FIRST_LPORT : p + 1;
        if (t.lookupOut(proto, raddr, rport, lip, p) < 0) {
          t.setLaddr(cx, lip);
          t.setLport(cx, p);
          lt.acquire(lip);
          return true;
        }
        lt.conflict(lip);
      }
    }
    return false;
  }

  /** set_tcp_state with the kernel's active/inactive accounting. */
  private setTcpState(cx: number, dir: number, tcpFlags: number): void {
    const t = this.conns;
    const fl0 = t.flagsOf(cx);
    let fl = fl0;
    const noOutput = (fl & CONN_F_NOOUTPUT) !== 0;
    if (noOutput && dir === DIR_OUTPUT) {
      fl &= ~CONN_F_NOOUTPUT;
    }
    const old = t.stateOf(cx);
    const next = tcpNextState(old, dir, tcpFlags, noOutput);
    if (next !== old) {
      const dest = this.ctl.destById(t.destOf(cx));
      if (dest !== undefined) {
        if ((fl & CONN_F_INACTIVE) === 0 && next !== TCP_S_ESTABLISHED) {
          dest.activeConns--;
          dest.inactConns++;
          fl |= CONN_F_INACTIVE;
        } else if ((fl & CONN_F_INACTIVE) !== 0 && next === TCP_S_ESTABLISHED) {
          dest.activeConns++;
          dest.inactConns--;
          fl &= ~CONN_F_INACTIVE;
        }
      }
      t.setStateFlags(cx, next, fl);
      if (next === TCP_S_SYN_RECV || next === TCP_S_SYNACK) t.noteEmbryonic(cx);
    } else if (fl !== fl0) t.setFlags(cx, fl);
    t.arm(cx, this.timeouts.tcpMs(next), this.now);
  }

  // ---------------------------------------------------------------- expiry

  private readonly expireCb = (cx: number, at: number): void => {
    this.now = at;
    this.expire(cx);
  };

  /** ip_vs_conn_expire: entries that still control others wait another 60 s. */
  private expire(cx: number): void {
    const t = this.conns;
    if (t.nControlOf(cx) > 0) {
      t.arm(cx, TEMPLATE_EXPIRE_LATER_MS, this.now);
      return;
    }
    this.unlink(cx);
    this.counters.connsExpired++;
  }

  /** ip_vs_conn_expire_now. */
  private expireNow(cx: number): void {
    const t = this.conns;
    if (t.nControlOf(cx) > 0) {
      t.arm(cx, 0, this.now);
      return;
    }
    this.unlink(cx);
  }

  /** Unhash, detach from the template, ip_vs_unbind_dest, free. */
  private unlink(cx: number): void {
    const t = this.conns;
    const ct = t.controlOf(cx);
    if (ct >= 0) {
      t.setNControl(ct, t.nControlOf(ct) - 1);
      t.setControl(cx, -1);
    }
    const id = t.destOf(cx);
    const dest = this.ctl.destById(id);
    if (dest !== undefined) {
      if ((t.flagsOf(cx) & CONN_F_TEMPLATE) === 0) {
        if ((t.flagsOf(cx) & CONN_F_INACTIVE) !== 0) dest.inactConns--;
        else dest.activeConns--;
      } else dest.persistConns--;
      const total = dest.activeConns + dest.inactConns;
      if (dest.lThreshold !== 0) {
        if (total < dest.lThreshold) dest.flags &= ~DEST_F_OVERLOAD;
      } else if (dest.uThreshold !== 0) {
        if (total * 4 < dest.uThreshold * 3) dest.flags &= ~DEST_F_OVERLOAD;
      } else dest.flags &= ~DEST_F_OVERLOAD;
      this.ctl.destUnref(id);
    }
    // A FULLNAT connection held its LIP (the hash key <RIP:rport → LIP:lport> dies with it).
    if ((t.flagsOf(cx) & (CONN_F_FWD_MASK | CONN_F_TEMPLATE)) === Fwd.FullNat)
      this.lipTable.release(t.laddrOf(cx));
    t.free(cx);
  }

  /** A destination left its service: expire_nodest_conn acts on its connections' next packet. */
  private destRemoved(_d: Dest): void {
    this.destRoute.length = 0;
  }

  // ---------------------------------------------------------------- statistics

  private connStats(svc: Service, dest: Dest): void {
    dest.stats.conns++;
    svc.stats.conns++;
    this.totalStats.conns++;
  }

  private inStats(cx: number, bytes: number): void {
    const dest = this.ctl.destById(this.conns.destOf(cx));
    if (dest === undefined) return;
    dest.stats.inpkts++;
    dest.stats.inbytes += bytes;
    const svc = dest.svc;
    if (svc !== null) {
      svc.stats.inpkts++;
      svc.stats.inbytes += bytes;
    }
    this.totalStats.inpkts++;
    this.totalStats.inbytes += bytes;
  }

  private outStats(cx: number, bytes: number): void {
    const dest = this.ctl.destById(this.conns.destOf(cx));
    if (dest === undefined) return;
    dest.stats.outpkts++;
    dest.stats.outbytes += bytes;
    const svc = dest.svc;
    if (svc !== null) {
      svc.stats.outpkts++;
      svc.stats.outbytes += bytes;
    }
    this.totalStats.outpkts++;
    this.totalStats.outbytes += bytes;
  }

  // ---------------------------------------------------------------- ICMP

  private icmpInput(f: Flow, now: number): Verdict {
    if (f.icmpType === ICMP_ECHO) {
      if (!this.ownsLocal(f.daddr)) return this.passOrDrop(f);
      icmpEchoReplyInPlace(f.buf, f, 64);
      this.counters.echoReplies++;
      return this.emitIp(f.buf, f.l3Off, f.l3End - f.l3Off, f.daddr, f, now);
    }
    if (!f.hasInner) return this.passOrDrop(f);
    const type = f.icmpType;
    if (type !== ICMP_DEST_UNREACH && type !== ICMP_SOURCE_QUENCH && type !== ICMP_TIME_EXCEEDED) {
      return this.passOrDrop(f);
    }
    const t = this.conns;
    const p = f.innerProto;
    if (p !== IPPROTO_TCP && p !== IPPROTO_UDP) return this.passOrDrop(f);
    // ip_vs_out_icmp: the embedded packet is one we forwarded toward a real server
    // (src CIP|LIP, dst RIP): its reply key is <RIP:rport → LIP|CIP:lport>.
    let cx = t.lookupOut(p, f.innerDaddr, f.innerDport, f.innerSaddr, f.innerSport);
    if (cx >= 0) {
      const m = XMIT[t.flagsOf(cx) & CONN_F_FWD_MASK];
      if (m.icmpOutbound === undefined) return this.drop(R.icmp_unrelated);
      if (f.ttl <= 1) return this.drop(R.ttl_exceeded);
      ipv4DecTtl(f.buf, f);
      this.outStats(cx, f.l3End - f.l3Off);
      return m.icmpOutbound(this, cx, f, now);
    }
    // ip_vs_in_icmp: the embedded packet is a reply we (or the real server) sent to the
    // client (src VIP:vport, dst CIP:cport): look it up inverted, as the client's request.
    cx = t.lookupIn(p, f.innerDaddr, f.innerDport, f.innerSaddr, f.innerSport);
    if (cx >= 0) {
      if (f.ttl <= 1) return this.drop(R.ttl_exceeded);
      ipv4DecTtl(f.buf, f);
      this.inStats(cx, f.l3End - f.l3Off);
      return XMIT[t.flagsOf(cx) & CONN_F_FWD_MASK].icmpInbound(this, cx, f, now);
    }
    return this.passOrDrop(f);
  }

  /** ICMP error about `f` (the packet still as received) from `src` (0: the outgoing interface's address). */
  icmpError(f: Flow, type: number, code: number, info: number, src: number, now: number): number {
    // Never answer an ICMP error with an ICMP error (RFC 1122 3.2.2), nor a non-first fragment.
    if (f.proto === IPPROTO_ICMP && f.hasInner) return Verdict.Drop;
    if (f.fragment && !f.firstFragment) return Verdict.Drop;
    const rt = this.rt;
    if (!this.routes.lookup(f.saddr, rt) || rt.iface === null) return this.drop(R.no_route);
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
    return this.emitIp(out, ETH_HLEN, len, f.saddr, f, now);
  }

  private ttlExceeded(f: Flow, src: number, now: number): Verdict {
    this.counters.drops[R.ttl_exceeded]++;
    this.icmpError(f, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0, src, now);
    return Verdict.Drop;
  }

  /** ip_vs_leave for a service without an available destination: port unreachable. */
  private leave(f: Flow, now: number): Verdict {
    this.counters.drops[R.no_dest]++;
    this.icmpError(f, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, f.daddr, now);
    return Verdict.Drop;
  }

  /**
   * A packet to an address tsvs owns with no service behind it: answer as the kernel's own
   * stack would for an address without a listener (TCP reset, UDP port unreachable).
   */
  private notForUs(f: Flow, now: number): Verdict {
    if (!this.ownsLocal(f.daddr)) return this.passOrDrop(f);
    if (f.proto === IPPROTO_TCP) return this.localTcpReset(f, now);
    this.counters.drops[R.closed_port]++;
    this.icmpError(f, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, f.daddr, now);
    return Verdict.Drop;
  }

  private otherProto(f: Flow, _now: number): Verdict {
    return this.passOrDrop(f);
  }

  /** tcp_v4_send_reset: RST for a segment that reached no socket (never answers a RST). */
  private localTcpReset(f: Flow, now: number): Verdict {
    this.counters.drops[R.closed_port]++;
    if ((f.tcpFlags & TCP_RST) !== 0) return Verdict.Drop;
    const out = this.ipScratch;
    const l3 = ETH_HLEN;
    const l4 = l3 + 20;
    writeIpv4Header(out, l3, 0, 20 + TCP_HLEN, 0, 0x4000, 64, IPPROTO_TCP, f.daddr, f.saddr);
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
    return this.emitIp(out, l3, 20 + TCP_HLEN, f.saddr, f, now) === Verdict.Sent
      ? Verdict.Sent
      : Verdict.Drop;
  }

  /** Traffic not addressed to tsvs: the kernel's business (or the simulation's). */
  private passOrDrop(_f: Flow): Verdict {
    this.counters.passed++;
    return Verdict.Pass;
  }

  // ---------------------------------------------------------------- ARP and ownership

  /**
   * Addresses tsvs answers for: VIPs (of services, and the hosts fwmark rules match with
   * `-d A[/32]`), LIPs, and (simulation) the interfaces' own.
   */
  ownsLocal(addr: number): boolean {
    if ((this.ctl.ownsAddress(addr) || this.fwmarks.matchesHost(addr)) && this.routes.hostDelivers(addr))
      return true;
    if (this.lipTable.owns(addr)) return true;
    return this.ownIfaceAddrs && this.routes.isLocal(addr);
  }

  private arpInput(f: Flow, now: number): Verdict {
    const iface = this.routes.iface(f.ifindex);
    if (iface === undefined) return this.passOrDrop(f);
    const buf = f.buf;
    const shaOff = f.l3Off + 8;
    const forUs = this.ownsLocal(f.arpTpa);
    if (f.arpOp === ARP_REPLY || forUs) {
      const sha = buf.slice(shaOff, shaOff + 6);
      const queued = this.neigh.confirm(f.ifindex, f.arpSpa, sha, now);
      for (const q of queued) {
        copyMac(q.frame, 0, sha, 0);
        this.counters.txFrames++;
        this.sendFrame(f.ifindex, q.frame, 0, q.len, q.vnet);
      }
    }
    if (f.arpOp !== ARP_REQUEST || !forUs) return f.arpOp === ARP_REPLY ? Verdict.Sent : this.passOrDrop(f);
    // Reply in place: ARP body then Ethernet header.
    const l3 = f.l3Off;
    const sha = this.ipScratch;
    copyMac(sha, 0, buf, shaOff);
    const spa = f.arpSpa;
    const tpa = f.arpTpa;
    writeArp(buf, l3, ARP_REPLY, iface.mac, tpa, sha.subarray(0, 6), spa);
    writeEthHeader(buf, l3 - ETH_HLEN, sha.subarray(0, 6), iface.mac, ETH_P_ARP);
    this.counters.arpReplies++;
    this.transmit(f.ifindex, buf, l3 - ETH_HLEN, ETH_HLEN + 28);
    return Verdict.Sent;
  }

  private readonly zeroMac = new Uint8Array(6);

  private sendArpRequest(ifindex: number, ip: number): void {
    const iface = this.routes.iface(ifindex);
    if (iface === undefined) return;
    const out = this.ipScratch;
    writeEthHeader(out, 0, BROADCAST_MAC, iface.mac, ETH_P_ARP);
    const rt = this.rt;
    const src = this.routes.lookup(ip, rt) && rt.iface === iface ? rt.src : iface.primary;
    writeArp(out, ETH_HLEN, ARP_REQUEST, iface.mac, src, this.zeroMac, ip);
    this.counters.arpRequests++;
    this.transmit(ifindex, out, 0, ETH_HLEN + 28);
  }

  // ---------------------------------------------------------------- output

  private transmit(ifindex: number, buf: Uint8Array, off: number, len: number): void {
    this.counters.txFrames++;
    this.sendFrame(ifindex, buf, off, len, this.vnetFor(buf, off));
  }

  /** The virtio_net_hdr a frame at buf[off] leaves with: an aggregate sent whole needs one, others none. */
  private vnetFor(buf: Uint8Array, off: number): Uint8Array | null {
    const f = this.flow;
    return f.gsoType !== 0 && buf === f.buf && f.csumPartial ? this.aggregateHeader(f, off) : null;
  }

  /**
   * The aggregate in f leaves as one frame starting at f.buf[off]: its checksum field gets the
   * pseudo-header sum of the addresses it now carries (whatever the rewriters' incremental
   * updates left there is moot: ports are not in the pseudo-header, and the kernel sums the
   * transport header itself), and the virtio_net_hdr asks for segmentation and checksums.
   */
  private aggregateHeader(f: Flow, off: number): Uint8Array {
    const field = f.proto === IPPROTO_TCP ? 16 : 6;
    writePseudoHeaderSum(f.buf, f.l3Off, f.l4Off, f.l3End, field);
    writeVnetHdr(
      this.txVnet,
      0,
      VNET_F_NEEDS_CSUM,
      f.gsoType,
      f.payloadOff - off,
      f.gsoSize,
      f.l4Off - off,
      field,
    );
    this.counters.gsoOut++;
    return this.txVnet;
  }

  emitIp(buf: Uint8Array, l3Off: number, l3Len: number, daddr: number, _f: Flow, now: number): number {
    const rt = this.rt;
    // int32 bits (callers pass `f.daddr | 0`): a u32 above 2^31 crossing into routes.lookup is
    // boxed, an allocation per reply packet.
    daddr |= 0;
    if (!this.routes.lookup(daddr, rt) || rt.iface === null) return this.drop(R.no_route);
    const iface = rt.iface;
    // int32: a u32 next hop above 2^31 passed to emitVia would be boxed (an allocation).
    const nexthop = rt.nexthop | 0;
    // Replies to many clients mostly leave through one gateway: the neighbour entry of the
    // last next hop is kept as a handle (as DestPath does per destination), which spares the
    // two map lookups of neigh.lookup. A removed entry is dead and is looked up again.
    let n = this.hopNeigh;
    if (n === null || n.dead || this.hopIface !== iface || this.hopAddr !== nexthop) {
      n = this.neigh.entry(iface.ifindex, nexthop);
      this.hopNeigh = n;
      this.hopIface = iface;
      this.hopAddr = nexthop;
    }
    if (n !== null) {
      const mac = this.neigh.use(n, now);
      if (mac !== null) {
        const off = l3Off - ETH_HLEN;
        writeEthHeader(buf, off, mac, iface.mac, ETH_P_IP);
        this.transmit(iface.ifindex, buf, off, ETH_HLEN + l3Len);
        return Verdict.Sent;
      }
    }
    // Unresolved (or INCOMPLETE): emitVia queues the frame and asks ARP, as before.
    return this.emitVia(iface, nexthop, buf, l3Off, l3Len, now);
  }

  emitToDest(buf: Uint8Array, l3Off: number, l3Len: number, destId: number, _f: Flow, now: number): number {
    const r = this.routeToDest(destId);
    if (r === null) return this.drop(R.no_route);
    const n = r.neigh;
    if (n !== null) {
      const mac = this.neigh.use(n, now);
      if (mac !== null) {
        const off = l3Off - ETH_HLEN;
        writeEthHeader(buf, off, mac, r.iface.mac, ETH_P_IP);
        this.transmit(r.iface.ifindex, buf, off, ETH_HLEN + l3Len);
        return Verdict.Sent;
      }
    }
    const v = this.emitVia(r.iface, r.nexthop | 0, buf, l3Off, l3Len, now);
    r.neigh = this.neigh.entry(r.iface.ifindex, r.nexthop);
    return v;
  }

  private emitVia(
    iface: Iface,
    nexthop: number,
    buf: Uint8Array,
    l3Off: number,
    l3Len: number,
    now: number,
  ): number {
    const off = l3Off - ETH_HLEN;
    const mac = this.neigh.lookup(iface.ifindex, nexthop, now);
    if (mac === null) {
      writeEthHeader(buf, off, this.zeroMac, iface.mac, ETH_P_IP);
      // An aggregate waits with its virtio_net_hdr (made now, while the flow still describes it).
      const act = this.neigh.enqueue(
        iface.ifindex,
        nexthop,
        buf.subarray(off, l3Off + l3Len),
        ETH_HLEN + l3Len,
        now,
        this.vnetFor(buf, off),
      );
      if (act.sendRequest) this.sendArpRequest(iface.ifindex, nexthop);
      return act.queued ? Verdict.Sent : this.drop(R.neigh_failed);
    }
    writeEthHeader(buf, off, mac, iface.mac, ETH_P_IP);
    this.transmit(iface.ifindex, buf, off, ETH_HLEN + l3Len);
    return Verdict.Sent;
  }

  private routeToDest(destId: number): DestPath | null {
    const r = this.destRoute[destId];
    if (r !== undefined) return r;
    const d = this.ctl.destById(destId);
    const rt = this.rt;
    if (d === undefined || !this.routes.lookup(d.addr, rt) || rt.iface === null) return null;
    const p = new DestPath(rt.iface, rt.nexthop, rt.src);
    this.destRoute[destId] = p;
    return p;
  }

  fitsDest(destId: number, l3Len: number, overhead: number, f: Flow, errSrc: number, now: number): boolean {
    const r = this.routeToDest(destId);
    if (r === null) return true; // emit will count no_route
    const mtu = r.iface.mtu - overhead;
    // An aggregate leaves as segments of gso_size payload: those must fit, not the whole.
    if (f.gsoType !== 0 && f.gsoSize !== 0 && l3Len === f.l3End - f.l3Off) {
      const seg = f.payloadOff - f.l3Off + f.gsoSize;
      if (seg < l3Len) l3Len = seg;
    }
    if (l3Len <= mtu) return true;
    if (f.df) {
      this.counters.drops[R.frag_needed]++;
      this.icmpError(f, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu & 0xffff, errSrc, now);
    } else this.counters.drops[R.too_big]++;
    return false;
  }

  destMtuOf(destId: number): number {
    const r = this.routeToDest(destId);
    return r === null ? 1500 : r.iface.mtu;
  }

  destSrc(destId: number): number {
    const r = this.routeToDest(destId);
    return r === null ? 0 : r.src;
  }

  drop(reason: number): number {
    this.counters.drops[reason]++;
    return Verdict.Drop;
  }

  // ---------------------------------------------------------------- listings

  /** Rows of `ipvsadm -L -c`. */
  connections(now: number): ConnView[] {
    const t = this.conns;
    const out: ConnView[] = [];
    t.forEach((cx) => {
      const template = (t.flagsOf(cx) & CONN_F_TEMPLATE) !== 0;
      const proto = t.protoOf(cx);
      let state: string;
      if (proto === IPPROTO_TCP) state = TCP_STATE_NAMES[template ? 0 : t.stateOf(cx)];
      else if (proto === IPPROTO_UDP) state = UDP_STATE_NAME;
      else state = "NONE";
      out.push({
        protocol: proto,
        expiresMs: Math.max(0, t.expiresAt(cx) - now),
        state,
        caddr: t.caddrOf(cx),
        cport: t.cportOf(cx),
        vaddr: t.vaddrOf(cx),
        vport: t.vportOf(cx),
        daddr: t.daddrOf(cx),
        dport: t.dportOf(cx),
        laddr: (t.flagsOf(cx) & CONN_F_FWD_MASK) === Fwd.FullNat ? t.laddrOf(cx) : 0,
        lport: (t.flagsOf(cx) & CONN_F_FWD_MASK) === Fwd.FullNat ? t.lportOf(cx) : 0,
        template,
        fwmark: template && proto === 0 ? t.vaddrOf(cx) : 0,
      });
    });
    return out;
  }

  /** Does some connection use this destination (for listings and tests)? */
  connCount(): number {
    return this.conns.size;
  }

  static closeState(): number {
    return TCP_S_CLOSE;
  }
}

/** The cached way to a destination: route, and the neighbour entry once one exists. */
class DestPath {
  neigh: Neigh | null = null;
  constructor(
    readonly iface: Iface,
    readonly nexthop: number,
    readonly src: number,
  ) {}
}

function vipSlot(addr: number, mask: number): number {
  return (Math.imul(addr | 0, 0x9e3779b1) >>> 16) & mask;
}

function writeBe32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 255;
  b[off + 2] = (v >>> 8) & 255;
  b[off + 3] = v & 255;
}

/** xorshift32 seeded from a constant: deterministic unless the caller injects randomness. */
function defaultRandom(): () => number {
  let s = 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

export type { InetAddr };
