// The data plane: one worker_thread owning one AF_PACKET socket per interface and the engine.
// A synchronous loop (docs/daemon.md, docs/io.md): receive a batch on every socket → engine.input
// per frame → the engine's frames go out through the socket of the interface it names → flush
// → engine.tick → control messages. It never returns to the event loop while running: control
// messages are pulled with receiveMessageOnPort between batches, and the only blocking call is
// one poll(2) over all sockets with a short timeout when every socket was empty.

import { randomFillSync, randomInt } from "node:crypto";
import { type MessagePort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { ControlApi, type Guard } from "../control/api.js";
import type { ControlCommand } from "../control/commands.js";
import type { TableSnapshot } from "../control/snapshot.js";
import { formatIPv4 } from "../core/addr.js";
import { tableAvailmem } from "../core/defense.js";
import { AHEAD_MAX, Engine, type Sysctls } from "../core/engine.js";
import { IPVS_MESSAGES, TsvsError, type TsvsErrorCode } from "../core/errors.js";
import { type ExplainQuery, explainPacket } from "../core/explain.js";
import type { IfaceAddr, IfaceConfig, RouteConfig } from "../core/route.js";
import { decodeSyncMessage } from "../core/sync/codec.js";
import { TableRefresh } from "../core/sync/refresh.js";
import { SYNC_QUEUE_MAX, SYNC_SEND_DELAY_MS, SyncSender } from "../core/sync/sender.js";
import { SA6_LADDR, type SyncConn, type SyncDaemonConfig } from "../core/sync/types.js";
import {
  compileFanoutProgram,
  compileOwnedFilter,
  type FanoutSpec,
  fanoutHash,
  fanoutSpreadsIpv6,
  setFanoutProgram,
} from "../io/bpf.js";
import type { IoBackend } from "../io/frame-io.js";
import { anonHugeBytes, hugePageAlloc } from "../io/hugepages.js";
import { libc, PACKET_OTHERHOST, setThreadAffinity, threadAffinity } from "../io/libc.js";
import { SolicitedNodeMemberships } from "../io/packet-common.js";
import { lastLevelCacheBytes, processHeadroom } from "./memory.js";
import type { FwmarkAction, IfaceStatus, Response, WorkerStatus } from "./protocol.js";
import { SocketSet } from "./sockets.js";
import { warmUp } from "./warmup.js";

export type { Guard, GuardDest } from "../control/api.js";
export { ruleHostDst } from "../control/api.js";

/** --read-ahead: never, once the table outgrows the caches (Engine.readAheadWorthIt), always. */
export type ReadAhead = "auto" | "on" | "off";

export interface WorkerInit {
  interfaces: IfaceConfig[];
  routes: RouteConfig[];
  lips: number[];
  port: MessagePort;
  /** poll(2) timeout when idle: bounds the latency of control messages and ticks. */
  idleMs: number;
  /**
   * How long (µs) the loop keeps receiving without sleeping after the last frame, before poll(2)
   * blocks: a thread asleep in poll takes tens of µs to wake (much more on a VM, where the idle vCPU
   * halts), paid once per request and once per reply at low rates. 0 = sleep as soon as idle.
   */
  spinUs?: number;
  /** Wall time (ms) of the data path's warm-up before the first frame (warmup.ts); 0 = none. */
  warmupMs?: number;
  /** --read-ahead (default auto). */
  readAhead?: ReadAhead;
  batch: number;
  /** Director sysctls given at start (`tsvs daemon --sysctl NAME=VALUE`). */
  sysctls?: Partial<Sysctls>;
  /** Receive backend: TPACKET_V3 ring (default) or recvmmsg. */
  io?: IoBackend;
  /** Kernel socket filter from the owned addresses (default true). */
  filter?: boolean;
  /** This worker's index among `workers` (PACKET_FANOUT group members, joined in index order). */
  index?: number;
  workers?: number;
  /** Fanout group id of the first interface (the others follow), when workers > 1. */
  fanoutGroup?: number;
  /** PACKET_QDISC_BYPASS on the sockets' transmit side. */
  qdiscBypass?: boolean;
  /** Every LIP of the daemon (`lips` is this worker's share: replies to a LIP go to its owner). */
  allLips?: number[];
  /** CPUs this thread restricts itself to (main.ts planCpus); absent = where the scheduler puts it. */
  cpus?: number[];
  /** Receive buffer per socket, KiB: SO_RCVBUF (mmsg) or ring size (ring, 128 KiB blocks). */
  rxKib?: number;
  /** Entries of the connection table (--conn-capacity); absent = the engine's default. */
  connCapacity?: number;
  /** --host-vips: the host's locally delivered addresses, outside which no VIP is served. */
  hostLocal?: IfaceAddr[] | null;
  /** VRRP's addresses at start (every instance starts in BACKUP unless it owns its addresses). */
  vrrp?: VrrpOwnership;
  /** --io xdp with several workers: the UMEM and rings they share (src/io/xdp-share.ts). */
  xdpShare?: SharedArrayBuffer;
}

/** VRRP addresses (u32): those of instances in MASTER, and those of instances in any other state. */
export interface VrrpOwnership {
  master: number[];
  standby: number[];
  /** use_vmac: the virtual MAC of MASTER addresses whose instance has one. */
  macs?: { addr: number; mac: number[] }[];
  /** The same for IPv6 addresses (text; present when an instance has some): RouteTable.setVrrp6. */
  master6?: string[];
  standby6?: string[];
  macs6?: { addr6: string; mac: number[] }[];
}

/**
 * The host changed (main.ts follows rtnetlink): the interfaces to serve now, with their addresses,
 * the main-table routes through them, and (--host-vips) the host's local addresses. `fanout`: each
 * interface's fanout group id (multi-worker), stable for as long as the interface is served.
 */
export interface HostUpdate {
  interfaces: IfaceConfig[];
  routes: RouteConfig[];
  hostLocal: IfaceAddr[] | null;
  fanout: number[];
}

/** What a worker did with a HostUpdate: sockets opened and closed, and those it could not open. */
export interface HostApplied {
  opened: string[];
  closed: string[];
  errors: { name: string; err: string }[];
}

/**
 * Places the calling thread as `init` asks; returns where it runs, for the log. Runs in the worker
 * thread itself: affinity is per thread (pid 0 = the caller), so the main thread and libuv's pool
 * keep the process's placement. (Priority was measured and left out: nice -19 and SCHED_FIFO made
 * a worker that shares its CPU with receive softirqs forward less, docs/io.md.)
 */
export function placeThread(init: Pick<WorkerInit, "cpus">): Record<string, unknown> {
  const c = libc();
  const out: Record<string, unknown> = { tid: c.gettid() };
  if (init.cpus !== undefined && init.cpus.length > 0) setThreadAffinity(init.cpus);
  out.cpus = threadAffinity();
  return out;
}

/** LIPs of worker `w` of `n`: every n-th one, so a FULLNAT reply's LIP names the worker that chose it. */
export function lipsOfWorker(lips: readonly number[], w: number, n: number): number[] {
  return lips.filter((_, i) => i % n === w);
}

/** tsvs's FULLNAT forwarding value in connection flags (dest.ts Fwd.FullNat). */
const FWD_FULLNAT = 5;

export type ToWorker =
  | { type: "apply"; id: number; cmds: ControlCommand[] }
  | { type: "snapshot"; id: number; conns: boolean }
  | { type: "status"; id: number }
  | { type: "sysctl"; id: number; name?: string; value?: number; value2?: number }
  | { type: "fwmark"; id: number; action: FwmarkAction; rule?: string }
  | ({ type: "host"; id: number } & HostUpdate)
  /** `tsvs explain`: answered as a "result" with `{ explain }`. */
  | { type: "explain"; id: number; query: ExplainQuery }
  /**
   * A sync daemon starts (running) or the last one stopped: the kernel's ipvs->sync_state, which
   * refuses destinations of the other family than their service's. Answered as a "result":
   * applied, or refused while such (TUN) destinations exist (ip_vs_genl_new_daemon's EINVAL).
   */
  | { type: "sync-state"; id: number; running: boolean }
  /** VRRP's addresses (daemon/vrrp.ts): held as MASTER, held back as BACKUP. */
  | ({ type: "vrrp" } & VrrpOwnership)
  /** The master sync daemon started (its settings) or stopped (null). */
  | { type: "sync-master"; daemon: SyncDaemonConfig | null }
  /**
   * The master's table refresh is due (it started, or a peer joined): sync_table_refresh says
   * whether it runs; activeActive: a backup daemon runs beside the master.
   */
  | { type: "sync-refresh"; activeActive: boolean }
  /** A received sync message (already checked by the main thread): install this worker's share. */
  | { type: "sync-in"; data: Uint8Array; syncid: number }
  | { type: "stop" };

export type FromWorker =
  | { type: "ready"; guard: Guard }
  | { type: "applied"; id: number; error?: ApplyError; guard: Guard }
  | { type: "snapshot"; id: number; table: TableSnapshot }
  | { type: "status"; id: number; status: WorkerStatus }
  | { type: "result"; id: number; response: Response; guard: Guard }
  | ({ type: "host"; id: number } & HostApplied)
  /** Finished sync messages (a master sync daemon runs): the main thread sends them. */
  | { type: "sync-out"; msgs: Uint8Array[] }
  | { type: "log"; level: "info" | "warn" | "error"; msg: string; data?: Record<string, unknown> }
  | { type: "stopped" };

/** Why a batch was refused, as it crosses the port (an Error does not keep its fields). */
export interface ApplyError {
  code: TsvsErrorCode;
  message: string;
  /** The failing command's position in the batch. */
  index?: number;
}

/** A `tsvs sysctl` / `tsvs fwmark` request (structured already) through the control API. */
export function controlRequest(
  api: ControlApi,
  msg:
    | { type: "sysctl"; name?: string; value?: number; value2?: number }
    | { type: "fwmark"; action: FwmarkAction; rule?: string },
): Response {
  try {
    if (msg.type === "sysctl") {
      if (msg.name !== undefined && msg.value !== undefined)
        api.apply([{ op: "set-sysctl", name: msg.name, value: msg.value, value2: msg.value2 }]);
      else if (msg.name !== undefined && api.sysctls(msg.name)[msg.name] === undefined)
        return { error: `unknown sysctl ${msg.name}` };
      return { sysctls: api.sysctls(msg.name) };
    }
    switch (msg.action) {
      case "list":
        return { fwmarks: api.fwmarkRules() };
      case "flush":
        api.apply([{ op: "flush-fwmarks" }]);
        return { fwmarks: [] };
      case "add":
        return { fwmarks: api.apply([{ op: "add-fwmark", rule: msg.rule ?? "" }]) };
      case "del":
        return { fwmarks: api.apply([{ op: "del-fwmark", rule: msg.rule ?? "" }]) };
    }
  } catch (e) {
    if (e instanceof TsvsError) return { error: e.message };
    throw e;
  }
  return { error: "unknown request" };
}

/**
 * Reads (and so clears) a socket's pending error: a link going down leaves ENETDOWN in sk_err
 * (packet_notifier), which poll(2) reports as POLLERR until something reads it. recvmmsg does;
 * a ring socket never makes that call, so without this poll would return at once forever.
 */
/**
 * The data plane of one worker: its sockets, its engine and the control API over it, and the loop
 * that never returns to the event loop while it runs.
 */
class DataPlane {
  private readonly nWorkers: number;
  private readonly socks: SocketSet;
  readonly engine: Engine;
  private readonly api: ControlApi;
  private locals: number[];
  /** The interfaces' IPv6 addresses (text, link-local included). */
  private locals6: string[];
  /** Per socket (by fd): the solicited-node groups joined for the IPv6 VIPs, so the NIC passes their NSs. */
  private readonly groups6 = new Map<number, SolicitedNodeMemberships>();
  // The frame being handed to the engine: when the engine sends it back out (rewritten in place),
  // the frame is queued by address, without a copy (ring or rx slot stay valid until the flush at
  // the end of the loop).
  private curFrame: Uint8Array | null = null;
  private curAddr = 0;
  // Counters of the loop (status).
  private readonly started = performance.now();
  private loops = 0;
  private batches = 0;
  private busyMs = 0;
  private zeroCopy = 0;
  private noSocket = 0;
  private otherHost = 0;
  private filterUpdates = 0;
  private readonly readAhead: ReadAhead;
  // The kernel filter and the fanout program follow the owned addresses and the NAT destinations:
  // recompiled and re-attached (atomically: SO_ATTACH_FILTER replaces) when they change.
  private filterKey = "";
  // The LIP list and the owned LIPs change with laddr commands, and when the last connection on a
  // deleted laddr ends (engine.tick): lipVersion tells the loop when to look again.
  private lipVersion = -1;
  /** Whether the fanout program spreads IPv6 (false: its sets did not fit, all to worker 0); syncIn follows it. */
  private spreads6 = false;
  /** When syncOut last looked (ms). */
  private syncSent = 0;
  /** The master's table refresh (core/sync/refresh.ts), while a master runs. */
  private refresh: TableRefresh | null = null;
  /** VRRP's addresses (main thread's VrrpRunner): MASTER ones are owned like VIPs. */
  private vrrp: VrrpOwnership = { master: [], standby: [] };
  /** use_vmac: the virtual MACs of MASTER instances (frames to them arrive as PACKET_OTHERHOST). */
  private vmacs: Uint8Array[] = [];

  constructor(
    private readonly init: WorkerInit,
    private readonly post: (m: FromWorker) => void,
  ) {
    const nWorkers = init.workers ?? 1;
    this.nWorkers = nWorkers;
    this.readAhead = init.readAhead ?? "auto";
    const allLips = init.allLips ?? init.lips;
    this.locals = init.interfaces.flatMap((c) => c.addrs.map((a) => a.addr));
    this.locals6 = init.interfaces.flatMap((c) => (c.addrs6 ?? []).map((a) => a.addr6));
    this.socks = new SocketSet(
      {
        io: init.io ?? "ring",
        batch: init.batch,
        qdiscBypass: init.qdiscBypass,
        rxKib: init.rxKib,
        workers: nWorkers,
        fanoutGroup: init.fanoutGroup ?? 0,
        lips: allLips,
        worker: init.index ?? 0,
        xdpShare: init.xdpShare,
      },
      init.interfaces,
    );
    const headroom = processHeadroom();
    this.engine = new Engine({
      connCapacity: init.connCapacity,
      // Huge pages where the kernel gives them: a lookup at a million entries is then a cache miss
      // without a TLB miss (src/io/hugepages.ts, docs/bench.md "Huge pages").
      tableAlloc: hugePageAlloc,
      // Read a batch ahead only once the records outgrow the last-level cache (64 bytes each).
      readAheadMinConns: Math.floor((lastLevelCacheBytes() ?? 32 * 1024 * 1024) / 64),
      // The defence's availmem: the table's free entries, or the memory cgroup's headroom when
      // that is lower (daemon/memory.ts), both in pages, read once a second.
      availmem: () => {
        const t = tableAvailmem(this.engine.conns);
        const h = headroom();
        return h === null ? t : Math.min(t, h);
      },
      interfaces: init.interfaces,
      routes: init.routes,
      // Every LIP: the engine takes its own share of them, and of the services' laddrs (core/lip.ts).
      lips: allLips,
      worker: { index: init.index ?? 0, count: nWorkers },
      sysctls: init.sysctls,
      ownInterfaceAddresses: false,
      // The engine's own generator, seeded at random per worker: `tsvs explain` reads its next
      // draws ahead (twos), which an injected Math.random could not offer.
      seed: randomInt(1, 0x100000000),
      // The SYN proxy's cookie secret: 128 bits from the system's generator.
      synproxySecret: randomFillSync(new Uint32Array(4)),
      // vnet: the virtio_net_hdr of an aggregate sent whole (null for a plain frame).
      send: (ifindex, buf, off, len, vnet) => this.send(ifindex, buf, off, len, vnet),
    });
    if (init.hostLocal !== undefined && init.hostLocal !== null)
      this.engine.routes.setHostLocal(init.hostLocal);
    if (init.vrrp !== undefined) this.vrrp = init.vrrp;
    this.api = new ControlApi(this.engine, () => performance.now());
    this.applyVrrp(this.vrrp);
    this.refilter();
    this.logFallbacks();
  }

  /** Interfaces that asked for XDP and got a packet socket: one line each, with the reason. */
  private logFallbacks(): void {
    for (const f of this.socks.fallbacks.splice(0))
      this.post({
        type: "log",
        level: "warn",
        msg: `${f.name}: XDP not available, using mmsg: ${f.reason}`,
        data: { iface: f.name, reason: f.reason },
      });
  }

  private send(ifindex: number, buf: Uint8Array, off: number, len: number, vnet: Uint8Array | null): void {
    const s = this.socks.of(ifindex);
    if (s === undefined) this.noSocket++;
    else if (buf === this.curFrame) {
      s.queueAddress(this.curAddr + off, len, vnet);
      this.zeroCopy++;
    } else s.send(buf, off, len, vnet);
  }

  /** The connection table's capacity and memory, for the start-up log. */
  tableSize(): { entries: number; bytes: number } {
    return { entries: this.engine.conns.capacity, bytes: this.engine.conns.bytes };
  }

  guard(): Guard {
    return this.api.guard();
  }

  private refilter(): void {
    const engine = this.engine;
    const nWorkers = this.nWorkers;
    this.lipVersion = engine.lipTable.version;
    const g = this.api.guard();
    const owned = this.vrrp.master.length === 0 ? g.owned : [...g.owned, ...this.vrrp.master];
    // A fwmark rule on a network (not one host) owns addresses we cannot list: let all IPv4 in.
    const allIpv4 = this.api.hasNetworkFwmark();
    // The same for an IPv6 mark rule on a network, or one with no address (`-6 …`).
    const allIpv6 = this.api.hasNetworkFwmark6();
    const rips = g.nat.map((d) => d.addr);
    const owned6 = [...(g.owned6 ?? []), ...(this.vrrp.master6 ?? [])];
    const rips6 = (g.nat6 ?? []).map((d) => d.addr6);
    const lipList = engine.lipTable.all();
    const lipList6 = engine.lipTable.all6();
    const sockets = this.socks.sockets;
    const key = JSON.stringify([
      owned,
      rips,
      allIpv4,
      this.locals,
      lipList.length,
      owned6,
      rips6,
      this.locals6,
      lipList6.length,
      allIpv6,
      sockets.map((s) => s.fd),
      g.nat,
      g.nat6,
    ]);
    if (key === this.filterKey) return;
    this.filterKey = key;
    this.joinGroups6(owned6);
    // LIP k belongs to worker k % N: the XDP program's and the fanout program's rule alike.
    const lipOwners = lipList.map((addr, i) => ({ addr, worker: i % nWorkers }));
    const lipOwners6 = lipList6.map((addr6, i) => ({ addr6, worker: i % nWorkers }));
    // --io xdp: the program's sets are the guard's (src/io/xdp-prog.ts), updated in place; with
    // several workers the LIPs' owners too (the program sends a LIP's frames to its owner).
    this.socks.updateXdp({
      owned,
      locals: this.locals,
      nat: g.nat,
      owned6,
      locals6: this.locals6,
      nat6: g.nat6 ?? [],
      allIpv4,
      allIpv6,
      lipOwners: nWorkers > 1 ? lipOwners : undefined,
      lipOwners6: nWorkers > 1 ? lipOwners6 : undefined,
    });
    if (this.init.filter !== false || nWorkers > 1) {
      const prog = compileOwnedFilter({
        owned,
        locals: this.locals,
        rips,
        owned6,
        locals6: this.locals6,
        rips6,
        allIpv4: allIpv4 || this.init.filter === false,
        allIpv6: allIpv6 || this.init.filter === false,
        arp: nWorkers === 1,
        // The filter's return value cuts the frame: an aggregate (up to 64 KiB) must pass whole.
        snaplen: 0x40000,
      });
      sockets.forEach((s, i) => {
        if (!this.socks.isXdp(i)) s.attachFilter(prog);
      });
    }
    if (nWorkers > 1) {
      const spec: FanoutSpec = { lips: lipOwners, rips, rips6, lips6: lipOwners6 };
      const fp = compileFanoutProgram(spec);
      let packetSockets = false;
      sockets.forEach((s, i) => {
        if (this.socks.isXdp(i)) return;
        setFanoutProgram(s.fd, fp);
        packetSockets = true;
      });
      // The XDP program spreads IPv6 whatever the sets' size; a fanout program may not fit it.
      this.spreads6 = !packetSockets || fanoutSpreadsIpv6(spec);
    }
    this.filterUpdates++;
  }

  /** Every socket in the solicited-node groups of the IPv6 VIPs (closed sockets' entries go). */
  private joinGroups6(owned6: readonly string[]): void {
    const live = new Set<number>();
    this.socks.sockets.forEach((s, i) => {
      // An AF_XDP socket has no link memberships: its interface's ARP/NDP packet socket joins.
      const fd = this.socks.membershipFd(i);
      live.add(fd);
      let m = this.groups6.get(fd);
      if (m === undefined) {
        m = new SolicitedNodeMemberships(fd, s.ifindex);
        this.groups6.set(fd, m);
      }
      m.set(owned6);
    });
    for (const fd of [...this.groups6.keys()]) if (!live.has(fd)) this.groups6.delete(fd);
  }

  private status(): WorkerStatus {
    const socks = this.socks;
    socks.countKernelDrops();
    const ifs: IfaceStatus[] = socks.sockets.map((s, i) => ({
      name: s.ifname,
      io: socks.backends[i],
      xdp: socks.xdpStatistics(i),
      ifindex: s.ifindex,
      mac: [...s.mac].map((b) => b.toString(16).padStart(2, "0")).join(":"),
      mtu: s.mtu,
      addrs: socks.configs[i].addrs.map((a) => `${formatIPv4(a.addr)}/${a.prefix}`),
      rxFrames: s.counters.rxFrames,
      txFrames: s.counters.txFrames,
      rxTruncated: s.counters.rxTruncated,
      rxAggregates: s.counters.rxAggregates,
      txAggregates: s.counters.txAggregates,
      rxOversize: s.counters.rxOversize,
      txDropped: s.counters.txDropped,
      txErrors: s.counters.txErrors,
      kernelDrops: socks.kernelDrops[i],
    }));
    const e = this.engine;
    const k = e.counters;
    let dests = 0;
    for (const s of e.services()) dests += s.dests.length;
    return {
      interfaces: ifs,
      loops: this.loops,
      batches: this.batches,
      busyMs: this.busyMs,
      uptimeMs: performance.now() - this.started,
      services: e.services().length,
      dests,
      connections: e.connCount(),
      counters: {
        rxFrames: k.rxFrames,
        txFrames: k.txFrames,
        passed: k.passed,
        arpReplies: k.arpReplies,
        arpRequests: k.arpRequests,
        echoReplies: k.echoReplies,
        icmpErrorsSent: k.icmpErrorsSent,
        connsCreated: k.connsCreated,
        connsExpired: k.connsExpired,
        gsoIn: k.gsoIn,
        gsoOut: k.gsoOut,
        gsoSegmented: k.gsoSegmented,
        gsoSegments: k.gsoSegments,
        csumCompleted: k.csumCompleted,
        synproxySynAcks: k.synproxySynAcks,
        synproxyAcksValid: k.synproxyAcksValid,
        synproxyAcksInvalid: k.synproxyAcksInvalid,
        synproxyConnsOpened: k.synproxyConnsOpened,
        synproxySynRetries: k.synproxySynRetries,
        otherHost: this.otherHost,
        noSocket: this.noSocket,
        zeroCopy: this.zeroCopy,
        filterUpdates: this.filterUpdates,
        workers: this.nWorkers,
      },
      drops: k.dropTable(),
      defense: {
        dropEntry: e.sysctls.dropEntry,
        dropPacket: e.sysctls.dropPacket,
        secureTcp: e.sysctls.secureTcp,
        availmem: e.defense.availmem,
        amemthresh: e.sysctls.amemthresh,
        dropRate: e.defense.dropRate,
        secureTcpTable: e.defense.secureTcpTable,
        entriesDropped: e.defense.entriesDropped,
        packetsDropped: e.defense.packetsDropped,
      },
    };
  }

  /** The host changed: sockets follow, then the engine's interfaces and routes, then the filter. */
  private followHost(u: HostUpdate): HostApplied {
    const r = this.socks.follow(u);
    this.engine.setHost(u.interfaces, u.routes, u.hostLocal);
    this.locals = u.interfaces.flatMap((cfg) => cfg.addrs.map((a) => a.addr));
    this.locals6 = u.interfaces.flatMap((cfg) => (cfg.addrs6 ?? []).map((a) => a.addr6));
    if (r.opened.length > 0) this.filterKey = ""; // new sockets start without the filter
    this.refilter();
    this.logFallbacks();
    return r;
  }

  private apply(cmds: ControlCommand[]): ApplyError | undefined {
    try {
      this.api.apply(cmds);
      return undefined;
    } catch (e) {
      if (!(e instanceof TsvsError)) {
        this.post({ type: "log", level: "error", msg: "control batch failed", data: { err: String(e) } });
        return { code: "TSVS_ERR_INTERNAL", message: `internal error: ${String(e)}` };
      }
      const index = (e as TsvsError & { index?: unknown }).index;
      return { code: e.code, message: e.message, index: typeof index === "number" ? index : undefined };
    } finally {
      this.refilter();
    }
  }

  /** VRRP's addresses to the engine; use_vmac's MACs are frames this worker takes, though not its own MAC. */
  private applyVrrp(o: VrrpOwnership): void {
    this.vrrp = o;
    this.engine.setVrrp(o.master, o.standby, o.macs ?? []);
    this.engine.routes.setVrrp6(o.master6 ?? [], o.standby6 ?? [], o.macs6 ?? []);
    // The nft guard keeps the kernel away from them in every state (the set does not change).
    this.api.setVrrpAddresses([...o.master, ...o.standby], [...(o.master6 ?? []), ...(o.standby6 ?? [])]);
    // One entry per address: an instance's MAC may repeat, which only costs a compare.
    this.vmacs = [...(o.macs ?? []), ...(o.macs6 ?? [])].map((m) => Uint8Array.from(m.mac));
  }

  /** Is the frame's destination one of the virtual MACs (use_vmac) this director holds? */
  private toVmac(f: Uint8Array): boolean {
    for (const m of this.vmacs)
      if (f[0] === m[0] && f[1] === m[1] && f[2] === m[2] && f[3] === m[3] && f[4] === m[4] && f[5] === m[5])
        return true;
    return false;
  }

  /** The master sync daemon started (a writer on the engine) or stopped. */
  private syncMaster(d: SyncDaemonConfig | null): void {
    const e = this.engine;
    const sm = d === null ? null : new SyncSender(e, { syncid: d.syncid, maxlen: d.maxlen });
    e.syncMaster = sm;
    this.refresh = sm === null ? null : new TableRefresh(e.conns, sm, this.init.index ?? 0, this.nWorkers);
    this.syncSent = 0;
  }

  /** sync_table_refresh: 0 never, 1 when master and backup run together, 2 whenever a master runs. */
  private syncRefresh(activeActive: boolean): void {
    const mode = this.engine.sysctls.syncTableRefresh;
    if (this.refresh === null || mode === 0 || (mode === 1 && !activeActive)) return;
    this.refresh.start(performance.now());
  }

  /**
   * A backup's message: this worker installs the connections whose packets its fanout share
   * brings: for FULLNAT the worker owning the local address, else the client address's hash (all
   * IPv6 on worker 0 when the program could not spread it).
   */
  private syncIn(data: Uint8Array, syncid: number): void {
    const now = performance.now();
    const n = this.nWorkers;
    const w = this.init.index ?? 0;
    const e = this.engine;
    decodeSyncMessage(data, data.length, syncid, (c: SyncConn) => {
      if (n > 1 && this.workerOf(c) % n !== w) return;
      e.installSynced(c, now);
    });
  }

  /** The worker (before the modulo) the fanout program gives a synced connection's packets. */
  private workerOf(c: SyncConn): number {
    const lips = this.engine.lipTable;
    if ((c.flags & 7) === FWD_FULLNAT && (c.laddr !== 0 || c.lport !== 0))
      return c.af === 6 && c.daf === 6 ? lips.indexOf6(c.a6, SA6_LADDR) : lips.indexOf(c.laddr);
    if (c.af === 6 && !this.spreads6) return 0;
    // caddr: an IPv6 client's fold, as the program's key.
    return fanoutHash(c.caddr);
  }

  /** Every SYNC_SEND_DELAY_MS: partly filled messages old enough (2 s, as the kernel) and full ones go out. */
  private syncOut(now: number): void {
    const sm = this.engine.syncMaster;
    if (sm === null || now - this.syncSent < SYNC_SEND_DELAY_MS) return;
    this.syncSent = now;
    const rf = this.refresh;
    if (rf?.running === true) {
      // At most 50 ms of the rate per step, and never more than the queue has room for.
      const rate = this.engine.sysctls.syncTableRate;
      const room = SYNC_QUEUE_MAX - sm.pending - 1;
      if (room > 0 && rate > 0) rf.step(now, rate, Math.min(room, Math.max(1, Math.ceil(rate / 20))));
    }
    sm.flush(now);
    const msgs = sm.takeMessages();
    if (msgs.length > 0) this.post({ type: "sync-out", msgs: msgs.map((m) => m.slice()) });
  }

  /**
   * The worker the fanout program gives an explained request: the client's hash, as the daemon
   * asked (requests.ts explainWorker), but worker 0 for IPv6 when the program could not spread it.
   */
  private explainOwner(q: ExplainQuery): number {
    return q.caddr6 !== undefined && this.nWorkers > 1 && !this.spreads6 ? 0 : (this.init.index ?? 0);
  }

  /** `tsvs explain` from this worker's engine, at this moment, changing nothing. */
  private explain(q: ExplainQuery): Response {
    try {
      const owner = this.explainOwner(q);
      if (owner !== (this.init.index ?? 0)) return { explainAt: owner };
      const e = explainPacket(this.engine, q, performance.now());
      return { explain: { ...e, worker: { index: this.init.index ?? 0, of: this.nWorkers } } };
    } catch (err) {
      return { error: `internal error: ${err instanceof Error ? err.message : String(err)}` };
    }
  }

  /** The control messages waiting on the port; false when asked to stop. */
  private control(port: MessagePort): boolean {
    const post = this.post;
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
      const msg = m.message as ToWorker;
      switch (msg.type) {
        case "stop":
          return false;
        case "status":
          post({ type: "status", id: msg.id, status: this.status() });
          break;
        case "apply": {
          const error = this.apply(msg.cmds);
          post({ type: "applied", id: msg.id, error, guard: this.api.guard() });
          break;
        }
        case "snapshot":
          post({ type: "snapshot", id: msg.id, table: this.api.snapshot(msg.conns) });
          break;
        case "host":
          post({ type: "host", id: msg.id, ...this.followHost(msg) });
          break;
        case "vrrp":
          this.applyVrrp({
            master: msg.master,
            standby: msg.standby,
            macs: msg.macs,
            master6: msg.master6,
            standby6: msg.standby6,
            macs6: msg.macs6,
          });
          this.refilter();
          break;
        case "sync-master":
          this.syncMaster(msg.daemon);
          break;
        case "sync-state": {
          const ctl = this.engine.ctl;
          const refused = msg.running && ctl.mixedFamilyDests() > 0;
          if (!refused) ctl.syncRunning = msg.running;
          const response: Response = refused
            ? { error: IPVS_MESSAGES.invalid, code: "TSVS_ERR_INVALID" }
            : { applied: 0 };
          post({ type: "result", id: msg.id, response, guard: this.api.guard() });
          break;
        }
        case "sync-in":
          this.syncIn(msg.data, msg.syncid);
          break;
        case "sync-refresh":
          this.syncRefresh(msg.activeActive);
          break;
        case "explain":
          post({ type: "result", id: msg.id, response: this.explain(msg.query), guard: this.api.guard() });
          break;
        case "sysctl":
        case "fwmark": {
          let response: Response;
          try {
            response = controlRequest(this.api, msg);
          } catch (e) {
            response = { error: `internal error: ${e instanceof Error ? e.message : String(e)}` };
          }
          this.refilter();
          post({ type: "result", id: msg.id, response, guard: this.api.guard() });
          break;
        }
      }
    }
    return true;
  }

  /**
   * Receives one pass over the sockets marked readable. Returns frames received × 2, + 1 when a
   * batch came back full (one number: the loop allocates nothing per pass).
   */
  private receive(): number {
    const socks = this.socks;
    const rx = socks.rx;
    const readable = socks.readable;
    const engine = this.engine;
    let got = 0;
    let full = false;
    for (let si = 0; si < rx.length; si++) {
      if (readable[si] === 0) continue;
      const s = rx[si];
      const n = s.recvBatch(0);
      if (n === 0) continue;
      const t = performance.now();
      // A table larger than the caches: load the batch's lookups ahead, their misses overlapping.
      const ra = this.readAhead;
      if (ra === "on" || (ra === "auto" && engine.readAheadWorthIt())) {
        const m = n < AHEAD_MAX ? n : AHEAD_MAX;
        for (let i = 0; i < m; i++) engine.aheadFrame(i, s.frame(i), s.length(i));
        engine.aheadRecords(m);
      }
      for (let i = 0; i < n; i++) {
        // Unicast for another host (a bridge flooding, promiscuous peers): not ours, as in ip_rcv.
        const frame = s.frame(i);
        if (s.pktType(i) === PACKET_OTHERHOST && (this.vmacs.length === 0 || !this.toVmac(frame))) {
          this.otherHost++;
          continue;
        }
        this.curFrame = frame;
        this.curAddr = s.frameAddress(i);
        engine.input(s.ifindex, frame, s.length(i), t, s.offload(i));
      }
      this.curFrame = null;
      got += n;
      if (n >= s.batch) full = true;
      this.batches++;
      this.busyMs += performance.now() - t;
    }
    return got * 2 + (full ? 1 : 0);
  }

  /**
   * The loop: receive a pass, tick, flush, control; sleep in poll(2) when idle. recvmmsg
   * (MSG_DONTWAIT) returns what is queued: fewer than a batch means the socket was empty a moment
   * ago, so the next pass may go straight to poll(2), which returns at once if frames came in
   * meanwhile: at low rates that is poll, recvmmsg, sendmmsg per frame instead of two more empty
   * recvmmsg. A ring's partial block says nothing of the kind.
   */
  run(port: MessagePort): void {
    const init = this.init;
    const socks = this.socks;
    const engine = this.engine;
    // An XDP rx ring, like recvmmsg, returns what is there: fewer than a batch means empty.
    const drainable = (init.io ?? "ring") === "mmsg" || init.io === "xdp";
    const spinMs = (init.spinUs ?? 0) / 1000;
    let lastFrameAt = 0;
    const c = libc();
    try {
      for (;;) {
        this.loops++;
        const r = this.receive();
        const got = r >>> 1;
        const full = (r & 1) !== 0;
        const now = performance.now();
        engine.tick(now);
        if (engine.syncMaster !== null) this.syncOut(now);
        if (engine.lipTable.version !== this.lipVersion) this.refilter();
        socks.flush();
        if (!this.control(port)) break;
        socks.readable.fill(1);
        let idle: boolean;
        if (spinMs === 0) idle = got === 0 || (drainable && !full);
        else {
          const t = performance.now();
          if (got > 0) lastFrameAt = t;
          idle = t - lastFrameAt >= spinMs;
        }
        if (idle && init.idleMs > 0 && socks.poll(init.idleMs) < 0 && c.errno() !== 4 /* EINTR */)
          throw new TsvsError("TSVS_ERR_INTERNAL", `poll: errno ${c.errno()}`);
      }
    } finally {
      socks.close();
    }
  }
}

/**
 * The warm-up's garbage (its labs' frames, some 100 MiB over a second) collected now and the
 * allocator's free memory given back, so that the worker does not start with it in its RSS: the
 * warm-up then costs the daemon 10-16 MiB (V8's grown heap, the compiled code), not 50-100.
 */
function releaseGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    // V8 frees the dead buffers' memory on a helper thread after the collection: a moment for it,
    // and a second collection, before the allocator is trimmed (else ~40 MiB stay in the RSS).
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    gc();
  }
  libc().malloc_trim(0);
}

function run(init: WorkerInit): void {
  const port = init.port;
  const post = (m: FromWorker): void => port.postMessage(m);
  const placed = placeThread(init);
  post({ type: "log", level: "info", msg: "worker placed", data: { index: init.index ?? 0, ...placed } });
  const warmupMs = init.warmupMs ?? 0;
  if (warmupMs > 0) {
    const w = warmUp(warmupMs);
    releaseGarbage();
    post({
      type: "log",
      level: w.failed === 0 ? "info" : "warn",
      msg: "data path warmed up",
      data: {
        index: init.index ?? 0,
        ...w,
        ms: Math.round(w.ms),
        rssMiB: Math.round(process.memoryUsage.rss() / 1048576),
      },
    });
  }
  const dp = new DataPlane(init, post);
  post({
    type: "log",
    level: "info",
    msg: "connection table",
    data: {
      index: init.index ?? 0,
      ...dp.tableSize(),
      hugePageBytes: anonHugeBytes(),
    },
  });
  post({ type: "ready", guard: dp.guard() });
  dp.run(port);
  post({ type: "stopped" });
  port.close();
}

if (
  workerData !== null &&
  typeof workerData === "object" &&
  (workerData as { tsvsWorker?: boolean }).tsvsWorker
) {
  run(workerData as WorkerInit);
}
