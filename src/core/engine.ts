// The director's data path: frames and a clock in, frames and events out.
//
// For every frame (net/netfilter/ipvs/ip_vs_core.c is the reference: ip_vs_in, ip_vs_out,
// ip_vs_in_icmp, ip_vs_out_icmp): parse once into the Flow descriptor → classify (fwmark) →
// reply direction lookup (NAT/FULLNAT) → request direction lookup → else find the service and
// schedule a destination, create a connection → state transition → transmit with the method
// bound to the connection → counters.
//
// The data path is split by purpose, as the kernel splits it:
//   engine.ts     input and dispatch (ip_vs_core.c's hooks), control entry points, the clock
//   conn/life.ts  scheduling, persistence templates, new/state/expiry/unlink, statistics
//                 (ip_vs_conn.c and ip_vs_schedule / ip_vs_sched_persist of ip_vs_core.c)
//   output.ts     what the methods call: routes to destinations, MTU, neighbour, the link, GSO
//                 (the tail of ip_vs_xmit.c)
//   local.ts      replies the director makes itself: ARP, echo, ICMP errors, TCP reset
//   xmit/*.ts     one forwarding method each (ip_vs_nat_xmit, ip_vs_dr_xmit, ...)
// They are small classes the Engine holds (composition, no back-and-forth per packet beyond
// the calls the kernel makes too); each keeps its own references to the shared tables.
//
// One address form: an IPv4 address that crosses a call in the data path is passed as int32
// bits (`addr | 0`). A u32 above 2^31 passed to a function TurboFan does not inline is boxed (a
// heap number, one allocation per packet); int32 is a small integer. The Flow and the
// connection table's getters hand out u32 (addr.ts: the control plane's form); the data path
// converts with `| 0` where it passes one on, and callees that compare or hash treat both forms
// alike (`| 0` or `>>> 0` first).
//
// IPv6 (issue 14) takes the same steps in input6: the Flow carries the addresses' words (s6, d6)
// and their folds (saddr, daddr, the kernel's addr_fold), the connection table keys IPv6 entries
// by the folds and confirms them by the words, the service index likewise, and the methods for
// IPv6 are XMIT6's (NAT, DR, TUN). The director's own NDP and ICMPv6 answers are local.ts's.
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
// every segment) gets it cut in software first (output.ts), one segment at a time.

import { ACL_DENY, ACL_PASS } from "./acl.js";
import { type InetAddr, ipv6Fold, ipv6WordsText, readU32, writeU16 } from "./addr.js";
import { ConnLife } from "./conn/life.js";
import {
  A6_CADDR,
  A6_DADDR,
  A6_LADDR,
  A6_VADDR,
  CONN_F_FWD_MASK,
  CONN_F_NOOUTPUT,
  CONN_F_ONE_PACKET,
  CONN_F_SYNPROXY,
  CONN_F_TEMPLATE,
  ConnTable,
  type TableAlloc,
} from "./conn/table.js";
import { EngineCounters, R } from "./counters.js";
import { IpvsCtl } from "./ctl.js";
import type { ConnView, CtlCommand } from "./ctl-types.js";
import {
  DEFENSE_PERIOD_MS,
  DEFENSE_SYSCTL_DEFAULTS,
  Defense,
  type DefenseSysctls,
  randomDropentry,
  tableAvailmem,
} from "./defense.js";
import { DEST_F_AVAILABLE, type Dest, Fwd } from "./dest.js";
import { FwmarkClassifier } from "./fwmark.js";
import { LipTable } from "./lip.js";
import { LocalReplies } from "./local.js";
import { NeighCache, type NeighTickOut } from "./neigh.js";
import { Output } from "./output.js";
import { l4ChecksumV4, l4ChecksumV6 } from "./packet/csum.js";
import { ETH_HLEN } from "./packet/eth.js";
import {
  ETH_P_IP,
  ETH_P_IPV6,
  Flow,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
} from "./packet/flow.js";
import { ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_SOURCE_QUENCH, ICMP_TIME_EXCEEDED } from "./packet/icmp.js";
import {
  ICMPV6_DEST_UNREACH,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_PKT_TOOBIG,
  ICMPV6_TIME_EXCEED,
  NDISC_NEIGHBOUR_ADVERTISEMENT,
  NDISC_NEIGHBOUR_SOLICITATION,
} from "./packet/icmpv6.js";
import { ipv4DecTtl } from "./packet/ipv4.js";
import { IPV6_HLEN, ipv6DecHopLimit, NEXTHDR_ICMPV6 } from "./packet/ipv6.js";
import { PARSE_ARP, PARSE_OK, PARSE_RESULT_NAMES, parseFrame } from "./packet/parse.js";
import { TCP_CHECK } from "./packet/tcp.js";
import { UDP_CHECK } from "./packet/udp.js";
import {
  offloadGsoType,
  VNET_F_NEEDS_CSUM,
  VNET_GSO_TCPV4,
  VNET_GSO_TCPV6,
  VNET_GSO_UDP_L4,
} from "./packet/vnet.js";
import { DIR_INPUT, DIR_OUTPUT, TCP_S_FIN_WAIT, TCP_S_TIME_WAIT, TCP_STATE_NAMES } from "./proto/tcp.js";
import { Timeouts } from "./proto/timeouts.js";
import { UDP_STATE_NAME } from "./proto/udp.js";
import { Xorshift32 } from "./random.js";
import { estimatorTick } from "./rate.js";
import { type IfaceAddr, type IfaceConfig, type RouteConfig, RouteTable, sameWords6 } from "./route.js";
import { type Service, SVC_F_SYNPROXY } from "./service.js";
import { Stats } from "./stats.js";
import { SyncInstaller, type SyncInstallResult } from "./sync/install.js";
import type { SyncSender } from "./sync/sender.js";
import { SYNC_SYSCTL_DEFAULTS, type SyncConn, type SyncSysctls } from "./sync/types.js";
import { SYNPROXY_REOPEN, Synproxy } from "./synproxy.js";
import { XMIT, XMIT6 } from "./xmit/index.js";
import { Verdict } from "./xmit/types.js";

export { DROP_REASONS, type DropReason, EngineCounters } from "./counters.js";
export { Verdict };

/** The kernel's per-netns IPVS sysctls that change data-path behaviour (and connection sync's). */
export interface Sysctls extends SyncSysctls, DefenseSysctls {
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
  ...SYNC_SYSCTL_DEFAULTS,
  ...DEFENSE_SYSCTL_DEFAULTS,
};

export interface EngineOptions {
  /** Maximum connection entries (templates included). */
  connCapacity?: number;
  /** Memory for the connection table's big arrays (default: V8's); the daemon asks for huge pages. */
  tableAlloc?: TableAlloc;
  /** The table size from which readAheadWorthIt() says yes (default AHEAD_MIN_CONNS). */
  readAheadMinConns?: number;
  /** The size ipvsadm reports as "(size=N)": the kernel's connection hash size. */
  connTabSize?: number;
  interfaces: IfaceConfig[];
  routes?: RouteConfig[];
  /** FULLNAT local addresses (the LIP pool: every worker's; services may add their own, lip.ts). */
  lips?: number[];
  /** This engine's place among the daemon's workers: it takes LIP k only when k % count === index. */
  worker?: { index: number; count: number };
  sysctls?: Partial<Sysctls>;
  /**
   * The defence's availmem in pages (defense.ts), read once a second; default: the connection
   * table's free entries (tableAvailmem). Tests drive it.
   */
  availmem?: () => number;
  /** Answer ARP and ping for the interfaces' own addresses too (the simulation has no kernel). */
  ownInterfaceAddresses?: boolean;
  /**
   * Uniform random u32, injected (tests, simulation). Without it the engine draws from its own
   * xorshift32 (random.ts) seeded with `seed`, whose next values `tsvs explain` can read ahead.
   */
  random?: () => number;
  /** Seed of the engine's own generator (default: a constant, so an engine is deterministic). */
  seed?: number;
  /**
   * The SYN proxy's cookie secret (synproxy.ts): 4 words, 128 bits, from a real random source in
   * the daemon. Default: drawn from a generator seeded with `seed` (deterministic).
   */
  synproxySecret?: ArrayLike<number>;
  /**
   * Where finished frames go: (ifindex, buffer, offset, length, vnet); must not keep the buffer.
   * vnet is null for a plain frame, or the 10-byte virtio_net_hdr an aggregate must be sent with
   * (valid until the next frame).
   */
  send: (ifindex: number, buf: Uint8Array, off: number, len: number, vnet: Uint8Array | null) => void;
}

/**
 * V8 flags the process that runs the engine on its hot path should set (v8.setFlagsFromString,
 * before the first packet): Engine.input spends V8's default cumulative inlining budget (920 bytes
 * of bytecode) on the parser and the VIP check, leaving ~20 calls per packet out of line; 5000
 * inlines them (bench:core, 100k connections: established NAT ~685 → ~525 ns, DR ~585 → ~330).
 */
export const ENGINE_V8_FLAGS = "--max-inlined-bytecode-size-cumulative=5000";

const ESTIMATOR_INTERVAL_MS = 2000;
const TIMER_CHECK_MS = 100;
/** The most frames of one batch aheadFrame reads ahead for (the io batches are 64 at most). */
export const AHEAD_MAX = 256;
/**
 * Reading ahead pays once the table outgrows the last-level cache: 64 bytes of hot line per
 * entry, so 512k entries fill 32 MiB (docs/bench.md "Reading a batch ahead": below that the daemon
 * measured a small loss). EngineOptions.readAheadMinConns sets it from the machine's cache.
 */
export const AHEAD_MIN_CONNS = 524288;

export class Engine {
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
  readonly connTabSize: number;
  /** This worker's share of the `--lip` pool. */
  readonly lips: number[];
  /** Every LIP (pool and services' laddrs), their owners and their use (lip.ts). */
  readonly lipTable: LipTable;
  /** What the forwarding methods call (their XmitEngine): routes, MTU, neighbours, the link. */
  readonly out: Output;
  /** Replies the director makes itself. */
  readonly local: LocalReplies;
  /** Scheduling and the connection life cycle. */
  readonly life: ConnLife;
  /** The defence against table exhaustion (drop_entry, drop_packet, secure_tcp). */
  readonly defense = new Defense();
  /** The SYN proxy of the services that ask for it (synproxy.ts). */
  readonly synproxy: Synproxy;
  private readonly availmem: () => number;
  /** drop_entry's random start; its own generator, so that explain's read-ahead stays exact. */
  private readonly defenseRng: Xorshift32;
  private nextDefense = 0;
  /**
   * The master sync daemon's writer (sync/sender.ts), null when none runs: every request of a
   * connection is offered to it after it was forwarded (ip_vs_in's ip_vs_sync_conn).
   */
  syncMaster: SyncSender | null = null;
  private readonly syncInstaller: SyncInstaller;
  private readonly flow = new Flow();
  private readonly lipCb = (a: number | string): void =>
    void (typeof a === "string" ? this.lipTable.register6(a) : this.lipTable.register(a));
  private nextTimerCheck = 0;
  private nextEstimate = 0;
  /**
   * Service VIPs (not LIPs), open addressing over int32 (0 = empty slot): a packet to one of
   * them is a request, so the reply-direction lookup is skipped (see input()).
   */
  private vipSet = new Int32Array(8);
  /** aheadFrame's bucket heads, two per frame (OUT, IN; -1 for none). */
  private readonly ahead = new Int32Array(2 * AHEAD_MAX);
  /** The IPv6 frames of the batch being read ahead (their entries' IPv6 words are read too). */
  private readonly ahead6 = new Int32Array(AHEAD_MAX);
  private ahead6Count = 0;
  private aheadSink = 0;
  private readonly readAheadMin: number;
  /**
   * The same for IPv6 VIPs, by fold, each slot confirmed by its four words (vip6Words[4i..]):
   * slot i is used when vip6Used[i] is 1.
   */
  private vip6Used = new Uint8Array(8);
  private vip6Words = new Int32Array(32);
  /** hit()'s second answer: the destination of the entry a request hit. */
  private hitDest: Dest | undefined = undefined;
  now = 0;

  constructor(opts: EngineOptions) {
    this.conns = new ConnTable(opts.connCapacity ?? 1 << 16, 0, opts.tableAlloc);
    this.readAheadMin = opts.readAheadMinConns ?? AHEAD_MIN_CONNS;
    this.connTabSize = opts.connTabSize ?? 4096;
    this.sysctls = { ...DEFAULT_SYSCTLS, ...opts.sysctls };
    this.lipTable = new LipTable(opts.lips ?? [], opts.worker?.index ?? 0, opts.worker?.count ?? 1);
    this.lips = Array.from(this.lipTable.poolShare, (a) => a >>> 0);
    for (const i of opts.interfaces) this.routes.addIface(i);
    for (const r of opts.routes ?? []) this.routes.addRoute(r);
    this.ctl = new IpvsCtl({
      onSetTimeout: (t) => this.timeouts.set(t),
      // expire_nodest_conn acts on the connections' next packet; their paths go now.
      onDestRemoved: () => this.out.forgetDests(),
      onServiceRemoved: () => {},
      onDestQuiesced: () => {},
      onLaddrAdded: this.lipCb,
    });
    this.flow.acceptIpv6 = true;
    this.out = new Output(this, this.flow, opts.send);
    this.local = new LocalReplies(this, this.out, opts.ownInterfaceAddresses ?? false);
    this.life = new ConnLife(this, opts.random ?? new Xorshift32(opts.seed));
    let secret = opts.synproxySecret;
    if (secret === undefined) {
      // Not from `random`: the schedulers' draws stay what they were.
      const g = new Xorshift32(((opts.seed ?? 0) ^ 0x2545f491) >>> 0);
      secret = [g.next(), g.next(), g.next(), g.next()];
    }
    this.synproxy = new Synproxy(
      {
        conns: this.conns,
        out: this.out,
        counters: this.counters,
        life: this.life,
        ctl: this.ctl,
        forward: (cx, dest, f, now) =>
          f.af === 6 ? this.inbound6(cx, dest, f, now) : this.inbound(cx, dest, f, now),
      },
      secret,
    );
    this.life.synproxy = this.synproxy;
    this.availmem = opts.availmem ?? (() => tableAvailmem(this.conns));
    this.defenseRng = new Xorshift32(((opts.seed ?? 0) ^ 0x5bd1e995) >>> 0);
    this.syncInstaller = new SyncInstaller(this);
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
    this.out.forgetDests();
    const lt = this.lipTable;
    const laddrs: number[] = [];
    const laddrs6: string[] = [];
    for (const s of this.ctl.services()) {
      laddrs.push(...s.laddrs);
      s.laddrShare = lt.share(s.laddrs);
      if (s.laddrCursor >= s.laddrShare.length) s.laddrCursor = 0;
      laddrs6.push(...s.laddrs6);
      s.laddr6Share = lt.share6(s.laddrs6);
      if (s.laddr6Cursor >= s.laddr6Share.length >> 2) s.laddr6Cursor = 0;
    }
    lt.setInUse(laddrs, laddrs6);
    const vips: number[] = [];
    for (const s of this.ctl.services()) {
      const a = s.addr >>> 0;
      // An IPv6 service's addr is a fold: equal to some IPv4 address, it must not hide its replies.
      if (s.af === 4 && s.fwmark === 0 && a !== 0 && !lt.isLip(a)) vips.push(a);
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
    const vips6: Int32Array[] = [];
    for (const s of this.ctl.services())
      if (s.af === 6 && s.fwmark === 0 && s.addr6 !== null) vips6.push(s.addr6);
    n = 8;
    while (n < vips6.length * 4) n *= 2;
    const used = new Uint8Array(n);
    const words = new Int32Array(n * 4);
    for (const w of vips6) {
      let i = vipSlot(ipv6Fold(w), n - 1);
      while (used[i] !== 0 && !sameWords6(words, i * 4, w, 0)) i = (i + 1) & (n - 1);
      used[i] = 1;
      words.set(w.subarray(0, 4), i * 4);
    }
    this.vip6Used = used;
    this.vip6Words = words;
  }

  /** isVip for IPv6: are the words w those of an IPv6 (non-fwmark) service's VIP? */
  isVip6(w: Int32Array): boolean {
    const used = this.vip6Used;
    const words = this.vip6Words;
    const m = used.length - 1;
    for (let i = vipSlot(w[0] ^ w[1] ^ w[2] ^ w[3], m); ; i = (i + 1) & m) {
      if (used[i] === 0) return false;
      const k = i * 4;
      if (words[k] === w[0] && words[k + 1] === w[1] && words[k + 2] === w[2] && words[k + 3] === w[3])
        return true;
    }
  }

  /** Is addr the address of a (non-fwmark) virtual service, and not a LIP? */
  isVip(addr: number): boolean {
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

  /** VRRP moved addresses (RouteTable.setVrrp): held as MASTER (with use_vmac's MAC), held back as BACKUP. */
  setVrrp(
    master: readonly number[],
    standby: readonly number[],
    macs: readonly { addr: number; mac: readonly number[] }[] = [],
  ): void {
    this.routes.setVrrp(master, standby, macs);
  }

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
    this.out.forget();
  }

  // ---------------------------------------------------------------- time

  /** Expires connections and runs the rate estimator; the I/O loop calls it periodically. */
  tick(now: number): void {
    this.now = now;
    if (now >= this.nextTimerCheck) {
      this.nextTimerCheck = now + TIMER_CHECK_MS;
      this.conns.advance(now, this.life.expireCb);
      const t: NeighTickOut = { requests: [], solicits: [], dropped: 0 };
      this.neigh.tick(now, t);
      for (const r of t.requests) this.local.sendArpRequest(r.ifindex, r.ip);
      for (const s of t.solicits ?? []) this.local.solicit(s);
      if (t.dropped > 0) this.counters.drops[R.neigh_failed] += t.dropped;
    }
    if (now >= this.nextEstimate) {
      if (this.nextEstimate !== 0) this.estimate();
      this.nextEstimate = now + ESTIMATOR_INTERVAL_MS;
    }
    if (now >= this.nextDefense) {
      this.nextDefense = now + DEFENSE_PERIOD_MS;
      this.defenseWork(now);
    }
  }

  /** defense_work_handler: the defence levels, then drop_entry's scan while it is active. */
  private defenseWork(now: number): void {
    this.updateDefense();
    if (this.defense.dropEntryActive)
      randomDropentry(this.conns, this.defense, this.defenseRng.next(), now, (cx) =>
        this.life.expireNow(cx, now),
      );
  }

  /** update_defense_level; also run when a defence sysctl is written, as proc_do_defense_mode does. */
  updateDefense(): void {
    this.defense.update(this.sysctls, this.availmem());
  }

  private estimate(): void {
    estimatorTick(this.totalStats);
    for (const s of this.ctl.services()) {
      estimatorTick(s.stats);
      for (const d of s.dests) estimatorTick(d.stats);
    }
  }

  /**
   * CHECKSUM_PARTIAL (veth, local senders, virtio with offloads): the TCP/UDP field holds only the
   * pseudo-header sum, for a device that will never see this frame. The methods' incremental
   * rewrites need the full sum, so it is computed once over pseudo-header + segment (the IP total
   * length, not the frame: Ethernet padding is not part of it). A fragment never arrives partial
   * (ip_fragment finishes the sum before it splits); SCTP's CRC32c is not the Internet checksum.
   */
  private completePartial(f: Flow): void {
    f.csumPartial = false;
    const p = f.proto;
    if (f.fragment || (p !== IPPROTO_TCP && p !== IPPROTO_UDP)) return;
    const b = f.buf;
    const sum =
      f.af === 6
        ? l4ChecksumV6(b, f.l3Off, f.l4Off, f.l3End - f.l4Off, p)
        : l4ChecksumV4(b, f.l3Off, f.l4Off, f.l3End - f.l4Off, p);
    writeU16(b, f.l4Off + (p === IPPROTO_TCP ? TCP_CHECK : UDP_CHECK), sum);
    this.counters.csumCompleted++;
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
    // Written for every frame (output.ts reads them for whatever leaves from f.buf).
    const gt = (offload >>> 16) & 0xff;
    f.gsoType = gt;
    f.gsoSize = offload & 0xffff;
    f.csumPartial = (offload & (VNET_F_NEEDS_CSUM << 24)) !== 0;
    if (gt !== 0) c.gsoIn++;
    const r = parseFrame(buf, len, f, ifindex);
    if (r === PARSE_ARP) return this.local.arpInput(f, now);
    if (f.af === 6) return this.input6(f, r, gt, now);
    // A plain frame's partial checksum is finished here, from the offsets just parsed (io leaves
    // it: one parse per frame); an aggregate's stays partial for the kernel to finish per segment.
    if (f.csumPartial && gt === 0 && r === PARSE_OK) this.completePartial(f);
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
    if (f.proto !== IPPROTO_TCP && f.proto !== IPPROTO_UDP) return this.pass();
    if (f.fragment && !f.firstFragment) return this.drop(R.fragment);
    // Only a TCP (TCPV4) or UDP (UDP_L4) aggregate of this protocol can go out as one.
    if (gt !== 0 && !this.gsoMatches(f)) f.csumPartial = false;

    const t = this.conns;
    let cx: number;
    // Reply direction first (ip_vs_out): only entries whose replies cross the director. A
    // packet to a VIP is a request: NAT replies go to clients and FULLNAT replies to LIPs
    // (never in the VIP set), so the reply lookup can only miss and is skipped.
    const saddr = f.saddr | 0;
    const daddr = f.daddr | 0;
    if (!this.isVip(daddr)) {
      cx = t.lookupOut(f.proto, saddr, f.sport, daddr, f.dport);
      if (cx >= 0) return this.outbound(cx, f, now);
    }

    cx = t.lookupIn(f.proto, saddr, f.sport, daddr, f.dport);
    let dest: Dest | undefined;
    if (cx >= 0) {
      cx = this.hit(cx, f, now);
      if (cx === -2) return Verdict.Drop;
      dest = this.hitDest;
    }
    if (cx < 0) {
      const svc = this.ctl.findService(f);
      // --host-vips: a VIP the host does not have (VRRP moved it away) is not ours right now.
      if (svc === null || !this.routes.hostDelivers(daddr)) return this.local.notForUs(f, now);
      if ((svc.flags & SVC_F_SYNPROXY) !== 0 && f.proto === IPPROTO_TCP) {
        const v = this.synproxyIn(svc, f, now);
        if (v >= 0) return v;
      }
      // tcp_conn_schedule declines: the packet goes to the local stack, which has no socket on
      // the VIP — it answers with a reset.
      if (this.tcpDeclines(f)) return this.local.tcpReset(f, now);
      if ((svc.acl !== null || svc.connLimit !== null) && !this.admits(svc, f, now)) return Verdict.Drop;
      if (this.defense.dropRate !== 0 && this.defense.todrop()) return this.defenseDrop();
      cx = this.life.schedule(svc, f, now);
      if (cx < 0) return cx === -2 ? this.drop(R.table_full) : this.local.leave(f, now);
      dest = this.ctl.destById(t.destOf(cx));
    }
    return this.inbound(cx, dest, f, now);
  }

  /**
   * Whether a batch is worth reading ahead (aheadFrame): only when the table is too large to stay
   * in the caches, where each lookup would otherwise wait for memory in turn.
   */
  readAheadWorthIt(): boolean {
    return this.conns.size >= this.readAheadMin;
  }

  /**
   * Frame k (< AHEAD_MAX) of a batch that input() takes next, in order: finds where the bucket
   * heads its lookups will walk are; aheadRecords(n) then loads the heads, then the entries they
   * point to. Passes of independent loads let a batch's cache misses overlap instead of queueing
   * one per packet (docs/bench.md "Reading a batch ahead"). Reads only: input() does not depend on it. Untagged IPv4
   * and IPv6 TCP/UDP (IPv6 without extension headers); anything else is left to input().
   */
  aheadFrame(k: number, buf: Uint8Array, len: number): void {
    const a = this.ahead;
    a[2 * k] = -1;
    a[2 * k + 1] = -1;
    if (k === 0) this.ahead6Count = 0;
    const type = (buf[12] << 8) | buf[13];
    if (type === ETH_P_IPV6) {
      this.aheadFrame6(k, buf, len);
      return;
    }
    if (type !== ETH_P_IP || len < ETH_HLEN + 20 + 4) return;
    const proto = buf[ETH_HLEN + 9];
    if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return;
    const l4 = ETH_HLEN + ((buf[ETH_HLEN] & 0x0f) << 2);
    if (l4 + 4 > len) return;
    const saddr = readU32(buf, ETH_HLEN + 12) | 0;
    const daddr = readU32(buf, ETH_HLEN + 16) | 0;
    const sport = (buf[l4] << 8) | buf[l4 + 1];
    const dport = (buf[l4 + 2] << 8) | buf[l4 + 3];
    const t = this.conns;
    // As input(): a packet to a VIP is a request, so only its IN bucket is walked.
    if (!this.isVip(daddr)) a[2 * k] = t.outAt(proto, saddr, sport, daddr, dport);
    a[2 * k + 1] = t.inAt(proto, saddr, sport);
  }

  /** aheadFrame for IPv6 with the transport header first (no extension headers): both buckets, by the folds. */
  private aheadFrame6(k: number, buf: Uint8Array, len: number): void {
    if (len < ETH_HLEN + IPV6_HLEN + 4) return;
    const proto = buf[ETH_HLEN + 6];
    if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return;
    const s = ETH_HLEN + 8;
    const d = ETH_HLEN + 24;
    const sf = readU32(buf, s) ^ readU32(buf, s + 4) ^ readU32(buf, s + 8) ^ readU32(buf, s + 12);
    const df = readU32(buf, d) ^ readU32(buf, d + 4) ^ readU32(buf, d + 8) ^ readU32(buf, d + 12);
    const l4 = ETH_HLEN + IPV6_HLEN;
    const sport = (buf[l4] << 8) | buf[l4 + 1];
    const dport = (buf[l4 + 2] << 8) | buf[l4 + 3];
    const t = this.conns;
    const a = this.ahead;
    a[2 * k] = t.outAt(proto, sf, sport, df, dport);
    a[2 * k + 1] = t.inAt(proto, sf, sport);
    if (this.ahead6Count < AHEAD_MAX) this.ahead6[this.ahead6Count++] = k;
  }

  /** The passes after aheadFrame for frames 0..n-1: the bucket heads, then their first entries. */
  aheadRecords(n: number): void {
    const a = this.ahead;
    const t = this.conns;
    let x = this.aheadSink;
    for (let i = 0; i < 2 * n; i++) a[i] = t.headAt(a[i]);
    for (let i = 0; i < 2 * n; i++) x ^= t.touch(a[i]);
    // An IPv6 lookup also compares the entry's IPv6 words.
    const m = this.ahead6Count;
    if (m !== 0) {
      const v6 = this.ahead6;
      for (let j = 0; j < m; j++) {
        const k = v6[j];
        x ^= t.touch6(a[2 * k]) ^ t.touch6(a[2 * k + 1]);
      }
      this.ahead6Count = 0;
    }
    // Kept, so that the compiler cannot drop the loads.
    this.aheadSink = x;
  }

  /**
   * The entry cx a request hit, as ip_vs_in takes it: a SYN may reschedule (reuseCheck), and the
   * connection's destination, looked up once for the packet (stats, state, availability), goes to
   * hitDest. Returns cx, -1 to schedule anew, or -2 when the destination is unavailable and the
   * packet was dropped (counted).
   */
  private hit(cx: number, f: Flow, now: number): number {
    this.hitDest = undefined;
    if (f.proto === IPPROTO_TCP && (f.tcpFlags & TCP_SYN) !== 0) cx = this.reuseCheck(cx, now);
    if (cx < 0) return -1;
    const dest = this.ctl.destById(this.conns.destOf(cx));
    this.hitDest = dest;
    if (dest !== undefined && (dest.flags & DEST_F_AVAILABLE) === 0) {
      if (!this.sysctls.expireNodestConn) {
        this.drop(R.dest_unavailable);
        return -2;
      }
      this.life.expireNow(cx, now);
      return -1;
    }
    return cx;
  }

  /**
   * A packet that would create a connection of svc: the deny list, then the allow list (DPVS's
   * dp_vs_blklst_filtered then dp_vs_whtlst_filtered in tcp_conn_lookup), then the source's
   * new-connection bucket. False when dropped (counted).
   */
  private admits(svc: Service, f: Flow, now: number): boolean {
    const acl = svc.acl;
    if (acl !== null) {
      const v = f.af === 6 ? acl.check6(f.s6) : acl.check4(f.saddr);
      if (v !== ACL_PASS) {
        this.drop(v === ACL_DENY ? R.acl_deny : R.acl_not_allowed);
        return false;
      }
    }
    const lim = svc.connLimit;
    if (lim !== null && !(f.af === 6 ? lim.take6(f.s6, now) : lim.take4(f.saddr, now))) {
      this.drop(R.conn_rate_limited);
      return false;
    }
    return true;
  }

  /**
   * A TCP segment to a SYN-proxy service that no connection has (synproxy.ts): a SYN is answered
   * with a cookie once the deny and allow lists let it by (DPVS's syn_rcv checks them there); an
   * ACK with a valid cookie makes the connection as a SYN would (the rate limit, the defence, the
   * scheduler) and opens it to the real server; a bad one gets a reset. -1 for anything else (the
   * usual path: a reset from the local stack).
   */
  private synproxyIn(svc: Service, f: Flow, now: number): number {
    const fl = f.tcpFlags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN);
    const sp = this.synproxy;
    if (fl === TCP_SYN) {
      const acl = svc.acl;
      if (acl !== null) {
        const v = f.af === 6 ? acl.check6(f.s6) : acl.check4(f.saddr);
        if (v !== ACL_PASS) return this.drop(v === ACL_DENY ? R.acl_deny : R.acl_not_allowed);
      }
      return sp.answerSyn(f, now);
    }
    if (fl !== TCP_ACK) return -1;
    const data = sp.checkAck(f, now);
    if (data < 0) return f.af === 6 ? this.local.tcpReset6(f, now) : this.local.tcpReset(f, now);
    const lim = svc.connLimit;
    if (lim !== null && !(f.af === 6 ? lim.take6(f.s6, now) : lim.take4(f.saddr, now)))
      return this.drop(R.conn_rate_limited);
    if (this.defense.dropRate !== 0 && this.defense.todrop()) return this.defenseDrop();
    const cx = this.life.schedule(svc, f, now);
    if (cx < 0) {
      if (cx === -2) return this.drop(R.table_full);
      if (f.af !== 6) return this.local.leave(f, now);
      return cx === -3 ? this.drop(R.unsupported) : this.local.leave6(f, now);
    }
    return sp.open(cx, this.ctl.destById(this.conns.destOf(cx)), f, data, now);
  }

  /** A closed SYN-proxy entry gives way to the new handshake whose ACK hit it (synproxy.ts reopens). */
  private synproxyReopen(cx: number, f: Flow, now: number): Verdict {
    this.life.expireNow(cx, now);
    const svc = f.af === 6 ? this.ctl.findService6(f) : this.ctl.findService(f);
    if (svc === null || (svc.flags & SVC_F_SYNPROXY) === 0) return this.drop(R.unsupported);
    const v = this.synproxyIn(svc, f, now);
    return v >= 0 ? v : this.drop(R.unsupported);
  }

  /** drop_packet: *_conn_schedule's ip_vs_todrop dropped a packet that would create a connection. */
  private defenseDrop(): Verdict {
    this.defense.packetsDropped++;
    return this.drop(R.defense_drop_packet);
  }

  /** A TCP segment that schedules no connection: a RST, or no SYN (unless sloppy_tcp). */
  private tcpDeclines(f: Flow): boolean {
    if (f.proto !== IPPROTO_TCP) return false;
    const fl = f.tcpFlags;
    return (fl & TCP_RST) !== 0 || ((fl & TCP_SYN) === 0 && !this.sysctls.sloppyTcp);
  }

  /**
   * ip_vs_in's accounting of a request of connection cx (its destination `dest`): the stats and
   * the state transition come first; the TTL is checked by the method's route lookup
   * (decrement_ttl in __ip_vs_get_out_rt), so a request that dies of its TTL still counts and
   * still moves the connection's state.
   */
  private countRequest(cx: number, dest: Dest | undefined, f: Flow, now: number): void {
    const t = this.conns;
    this.life.inStats(dest, f.l3End - f.l3Off);
    if (f.proto === IPPROTO_TCP) this.life.setTcpState(cx, dest, DIR_INPUT, f.tcpFlags, now);
    else t.arm(cx, this.timeouts.udpMs(), now);
    t.countIn(cx);
  }

  /** ip_vs_out's accounting of a reply of connection cx. */
  private countReply(cx: number, f: Flow, now: number): void {
    const t = this.conns;
    const dest = this.ctl.destById(t.destOf(cx));
    this.life.outStats(dest, f.l3End - f.l3Off);
    if (f.proto === IPPROTO_TCP) this.life.setTcpState(cx, dest, DIR_OUTPUT, f.tcpFlags, now);
    else t.arm(cx, this.timeouts.udpMs(), now);
    t.countOut(cx);
  }

  /** ip_vs_in for a request of connection cx (its destination `dest`). */
  private inbound(cx: number, dest: Dest | undefined, f: Flow, now: number): Verdict {
    const t = this.conns;
    if ((t.flagsOf(cx) & CONN_F_SYNPROXY) !== 0) {
      const v = this.synproxy.request(cx, f, now);
      if (v >= 0) return v;
      if (v === SYNPROXY_REOPEN) return this.synproxyReopen(cx, f, now);
    }
    this.countRequest(cx, dest, f, now);
    let v: Verdict;
    if (f.ttl <= 1) v = this.local.ttlExceeded(f, f.daddr | 0, now);
    else {
      ipv4DecTtl(f.buf, f);
      const m = XMIT[t.flagsOf(cx) & CONN_F_FWD_MASK];
      const out = this.out;
      v =
        f.gsoType !== 0 && (!f.csumPartial || m.segmentsInbound?.(out, cx, f) === true)
          ? out.segmented(m.inbound, cx, f, now)
          : m.inbound(out, cx, f, now);
    }
    const sm = this.syncMaster;
    if (sm !== null) sm.connIn(cx, now);
    if ((t.flagsOf(cx) & CONN_F_ONE_PACKET) !== 0) this.life.expireNow(cx, now);
    return v;
  }

  /** ip_vs_out for a reply of connection cx. */
  private outbound(cx: number, f: Flow, now: number): Verdict {
    const t = this.conns;
    const fl = t.flagsOf(cx);
    const m = XMIT[fl & CONN_F_FWD_MASK];
    if (m.outbound === undefined) return this.drop(R.unsupported);
    if ((fl & CONN_F_SYNPROXY) !== 0) {
      const v = this.synproxy.reply(cx, f, now);
      if (v >= 0) return v;
    }
    if (f.ttl <= 1) return this.local.ttlExceeded(f, 0, now);
    this.countReply(cx, f, now);
    ipv4DecTtl(f.buf, f);
    if (f.gsoType !== 0 && !f.csumPartial) return this.out.segmented(m.outbound, cx, f, now);
    return m.outbound(this.out, cx, f, now);
  }

  /**
   * Is the aggregate's gso_type the one of its transport protocol (TCPV4 or TCPV6 for TCP by the
   * family, UDP_L4 for UDP)?
   */
  private gsoMatches(f: Flow): boolean {
    const t = offloadGsoType(f.gsoType << 16);
    if (f.proto !== IPPROTO_TCP) return t === VNET_GSO_UDP_L4;
    return t === (f.af === 6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4);
  }

  // ---------------------------------------------------------------- IPv6

  /**
   * input() for an IPv6 frame: ip_vs_in / ip_vs_out for AF_INET6, the lookups and methods of
   * IPv6, the director's own NDP and ICMPv6 (local.ts). Every parse result but OK is a malformed
   * packet, dropped with its reason.
   */
  private input6(f: Flow, r: number, gt: number, now: number): Verdict {
    if (r !== PARSE_OK) {
      this.counters.parseErrors[r]++;
      return Verdict.Drop;
    }
    if (f.csumPartial && gt === 0) this.completePartial(f);
    f.fwmark = this.fwmarks.size === 0 ? 0 : this.fwmarks.classify(f);
    const proto = f.proto;
    if (proto === NEXTHDR_ICMPV6) return this.icmp6Input(f, now);
    if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return this.pass();
    if (f.fragment && !f.firstFragment) return this.drop(R.fragment);
    if (gt !== 0 && !this.gsoMatches(f)) f.csumPartial = false;

    const t = this.conns;
    // Reply direction first (ip_vs_out), skipped for a packet to a VIP as in input().
    let cx: number;
    if (!this.isVip6(f.d6)) {
      cx = t.lookupOut6(proto, f.s6, f.sport, f.d6, f.dport);
      if (cx >= 0) return this.outbound6(cx, f, now);
    }
    cx = t.lookupIn6(proto, f.s6, f.sport, f.d6, f.dport);
    let dest: Dest | undefined;
    if (cx >= 0) {
      cx = this.hit(cx, f, now);
      if (cx === -2) return Verdict.Drop;
      dest = this.hitDest;
    }
    if (cx < 0) {
      const svc = this.ctl.findService6(f);
      if (svc === null || !this.routes.hostDelivers6(f.d6, 0)) return this.local.notForUs6(f, now);
      if ((svc.flags & SVC_F_SYNPROXY) !== 0 && proto === IPPROTO_TCP) {
        const v = this.synproxyIn(svc, f, now);
        if (v >= 0) return v;
      }
      if (this.tcpDeclines(f)) return this.local.tcpReset6(f, now);
      if ((svc.acl !== null || svc.connLimit !== null) && !this.admits(svc, f, now)) return Verdict.Drop;
      if (this.defense.dropRate !== 0 && this.defense.todrop()) return this.defenseDrop();
      cx = this.life.schedule(svc, f, now);
      if (cx < 0) {
        if (cx === -2) return this.drop(R.table_full);
        return cx === -3 ? this.drop(R.unsupported) : this.local.leave6(f, now);
      }
      dest = this.ctl.destById(t.destOf(cx));
    }
    return this.inbound6(cx, dest, f, now);
  }

  /** The forwarding step of a request or reply: false when the hop limit ran out (ip6_forward). */
  private decHopLimit(f: Flow): boolean {
    if (!ipv6DecHopLimit(f.buf, f.l3Off)) return false;
    f.ttl--;
    return true;
  }

  /** inbound() for IPv6: time exceeded from the VIP when the hop limit runs out. */
  private inbound6(cx: number, dest: Dest | undefined, f: Flow, now: number): Verdict {
    const t = this.conns;
    if ((t.flagsOf(cx) & CONN_F_SYNPROXY) !== 0) {
      const v = this.synproxy.request(cx, f, now);
      if (v >= 0) return v;
      if (v === SYNPROXY_REOPEN) return this.synproxyReopen(cx, f, now);
    }
    this.countRequest(cx, dest, f, now);
    let v: Verdict;
    if (!this.decHopLimit(f)) v = this.local.ttlExceeded6(f, f.d6, now);
    else {
      const m = XMIT6[t.flagsOf(cx) & CONN_F_FWD_MASK];
      const out = this.out;
      v =
        f.gsoType !== 0 && (!f.csumPartial || m.segmentsInbound?.(out, cx, f) === true)
          ? out.segmented(m.inbound, cx, f, now)
          : m.inbound(out, cx, f, now);
    }
    const sm = this.syncMaster;
    if (sm !== null) sm.connIn(cx, now);
    if ((t.flagsOf(cx) & CONN_F_ONE_PACKET) !== 0) this.life.expireNow(cx, now);
    return v;
  }

  /** outbound() for IPv6. */
  private outbound6(cx: number, f: Flow, now: number): Verdict {
    const fl = this.conns.flagsOf(cx);
    const m = XMIT6[fl & CONN_F_FWD_MASK];
    if (m.outbound === undefined) return this.drop(R.unsupported);
    if ((fl & CONN_F_SYNPROXY) !== 0) {
      const v = this.synproxy.reply(cx, f, now);
      if (v >= 0) return v;
    }
    if (f.ttl <= 1) return this.local.ttlExceeded6(f, null, now);
    this.countReply(cx, f, now);
    this.decHopLimit(f);
    if (f.gsoType !== 0 && !f.csumPartial) return this.out.segmented(m.outbound, cx, f, now);
    return m.outbound(this.out, cx, f, now);
  }

  /**
   * ICMPv6: echo requests and NDP to the director's own answers (local.ts); destination
   * unreachable, packet too big and time exceeded about a connection relayed as ip_vs_out_icmp_v6 /
   * ip_vs_in_icmp_v6 do; the rest is the kernel's.
   */
  private icmp6Input(f: Flow, now: number): Verdict {
    const type = f.icmpType;
    if (
      type === ICMPV6_ECHO_REQUEST ||
      type === NDISC_NEIGHBOUR_SOLICITATION ||
      type === NDISC_NEIGHBOUR_ADVERTISEMENT
    )
      return this.local.icmpv6Input(f, now);
    if (!f.hasInner) return this.pass();
    if (type !== ICMPV6_DEST_UNREACH && type !== ICMPV6_PKT_TOOBIG && type !== ICMPV6_TIME_EXCEED)
      return this.pass();
    const t = this.conns;
    const p = f.innerProto;
    if (p !== IPPROTO_TCP && p !== IPPROTO_UDP) return this.pass();
    // The quoted packet went toward a real server (CIP → RIP): its reply key is RIP → CIP.
    let cx = t.lookupOut6(p, f.innerD6, f.innerDport, f.innerS6, f.innerSport);
    if (cx >= 0) {
      const m = XMIT6[t.flagsOf(cx) & CONN_F_FWD_MASK];
      if (m.icmpOutbound === undefined) return this.drop(R.icmp_unrelated);
      if (!this.decHopLimit(f)) return this.drop(R.ttl_exceeded);
      this.life.outStats(this.ctl.destById(t.destOf(cx)), f.l3End - f.l3Off);
      return m.icmpOutbound(this.out, cx, f, now);
    }
    // The quoted packet is a reply to the client (VIP → CIP): looked up as the client's request.
    cx = t.lookupIn6(p, f.innerD6, f.innerDport, f.innerS6, f.innerSport);
    if (cx >= 0) {
      if (!this.decHopLimit(f)) return this.drop(R.ttl_exceeded);
      this.life.inStats(this.ctl.destById(t.destOf(cx)), f.l3End - f.l3Off);
      return XMIT6[t.flagsOf(cx) & CONN_F_FWD_MASK].icmpInbound(this.out, cx, f, now);
    }
    return this.pass();
  }

  /**
   * conn_reuse_mode and expire_nodest_conn for a SYN that hits an existing entry
   * (ip_vs_in: is_new_conn && cp). Returns the entry to use, or -1 to schedule anew.
   */
  private reuseCheck(cx: number, now: number): number {
    if (!this.synReschedules(cx)) return cx;
    if (this.conns.nControlOf(cx) === 0) this.life.expireNow(cx, now);
    return -1;
  }

  /** Would a SYN that hits entry cx be scheduled anew (reuseCheck's test; changes nothing)? */
  synReschedules(cx: number): boolean {
    const t = this.conns;
    const sc = this.sysctls;
    if (sc.expireNodestConn && this.ctl.destById(t.destOf(cx))?.weight === 0) return true;
    if (sc.connReuseMode === 0 || t.controlOf(cx) >= 0) return false;
    const st = t.stateOf(cx);
    return (
      t.protoOf(cx) === IPPROTO_TCP &&
      (st === TCP_S_TIME_WAIT ||
        ((sc.connReuseMode & 2) !== 0 && st === TCP_S_FIN_WAIT && (t.flagsOf(cx) & CONN_F_NOOUTPUT) !== 0))
    );
  }

  // ---------------------------------------------------------------- connection sync

  /**
   * A backup sync daemon's entry (one SyncConn of a decoded message, sync/codec.ts): installed
   * as ip_vs_proc_conn does (sync/install.ts). The next request of that connection goes to the
   * same real server, and NAT/FULLNAT replies find it.
   */
  installSynced(c: SyncConn, now: number): SyncInstallResult {
    if (now >= this.nextTimerCheck) this.tick(now);
    this.now = now;
    return this.syncInstaller.install(c, now);
  }

  // ---------------------------------------------------------------- ICMP

  /** ip_vs_in_icmp / ip_vs_out_icmp, and echo requests to addresses tsvs owns. */
  private icmpInput(f: Flow, now: number): Verdict {
    if (f.icmpType === ICMP_ECHO) return this.local.echo(f, now);
    if (!f.hasInner) return this.pass();
    const type = f.icmpType;
    if (type !== ICMP_DEST_UNREACH && type !== ICMP_SOURCE_QUENCH && type !== ICMP_TIME_EXCEEDED) {
      return this.pass();
    }
    const t = this.conns;
    const p = f.innerProto;
    if (p !== IPPROTO_TCP && p !== IPPROTO_UDP) return this.pass();
    // ip_vs_out_icmp: the embedded packet is one we forwarded toward a real server
    // (src CIP|LIP, dst RIP): its reply key is <RIP:rport → LIP|CIP:lport>.
    let cx = t.lookupOut(p, f.innerDaddr | 0, f.innerDport, f.innerSaddr | 0, f.innerSport);
    if (cx >= 0) {
      const m = XMIT[t.flagsOf(cx) & CONN_F_FWD_MASK];
      if (m.icmpOutbound === undefined) return this.drop(R.icmp_unrelated);
      if (f.ttl <= 1) return this.drop(R.ttl_exceeded);
      ipv4DecTtl(f.buf, f);
      this.life.outStats(this.ctl.destById(t.destOf(cx)), f.l3End - f.l3Off);
      return m.icmpOutbound(this.out, cx, f, now);
    }
    // ip_vs_in_icmp: the embedded packet is a reply we (or the real server) sent to the
    // client (src VIP:vport, dst CIP:cport): look it up inverted, as the client's request.
    cx = t.lookupIn(p, f.innerDaddr | 0, f.innerDport, f.innerSaddr | 0, f.innerSport);
    if (cx >= 0) {
      if (f.ttl <= 1) return this.drop(R.ttl_exceeded);
      ipv4DecTtl(f.buf, f);
      this.life.inStats(this.ctl.destById(t.destOf(cx)), f.l3End - f.l3Off);
      return XMIT[t.flagsOf(cx) & CONN_F_FWD_MASK].icmpInbound(this.out, cx, f, now);
    }
    return this.pass();
  }

  // ---------------------------------------------------------------- local addresses

  /**
   * Addresses tsvs answers for: VIPs (of services, and the hosts fwmark rules match with
   * `-d A[/32]`), LIPs, and (simulation) the interfaces' own.
   */
  ownsLocal(addr: number): boolean {
    return this.local.ownsLocal(addr);
  }

  /** Traffic not addressed to tsvs: the kernel's business (or the simulation's). */
  private pass(): Verdict {
    this.counters.passed++;
    return Verdict.Pass;
  }

  private drop(reason: number): Verdict {
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
      if (t.isIpv6(cx)) {
        const v = out[out.length - 1];
        v.caddr6 = this.addr6Text(cx, A6_CADDR);
        v.vaddr6 = this.addr6Text(cx, A6_VADDR);
        if (t.isDestIpv6(cx)) {
          v.daddr6 = this.addr6Text(cx, A6_DADDR);
          if (v.lport !== 0) v.laddr6 = this.addr6Text(cx, A6_LADDR);
        }
      } else if (t.isDestIpv6(cx)) out[out.length - 1].daddr6 = this.addr6Text(cx, A6_DADDR); // TUN 4 → 6
    });
    return out;
  }

  /** Address `which` (A6_*) of IPv6 entry cx as inet_ntop text (listings). */
  private addr6Text(cx: number, which: number): string {
    const w = new Int32Array(4);
    this.conns.addr6Of(cx, which, w);
    return ipv6WordsText(w);
  }

  /** How many entries the connection table holds (templates included). */
  connCount(): number {
    return this.conns.size;
  }
}

function vipSlot(addr: number, mask: number): number {
  return (Math.imul(addr | 0, 0x9e3779b1) >>> 16) & mask;
}

export type { InetAddr };
