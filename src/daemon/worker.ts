// The data plane: one worker_thread owning one AF_PACKET socket per interface and the engine.
// A synchronous loop (docs/daemon.md, docs/io.md): receive a batch on every socket → engine.input
// per frame → the engine's frames go out through the socket of the interface it names → flush
// → engine.tick → control messages. It never returns to the event loop while running: control
// messages are pulled with receiveMessageOnPort between batches, and the only blocking call is
// one poll(2) over all sockets with a short timeout when every socket was empty.

import { type MessagePort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { ControlApi, type Guard } from "../control/api.js";
import type { ControlCommand } from "../control/commands.js";
import type { TableSnapshot } from "../control/snapshot.js";
import { formatIPv4 } from "../core/addr.js";
import { Engine, type Sysctls } from "../core/engine.js";
import { TsvsError, type TsvsErrorCode } from "../core/errors.js";
import type { IfaceAddr, IfaceConfig, RouteConfig } from "../core/route.js";
import { openPacketSocket } from "../io/afpacket.js";
import { compileFanoutProgram, compileOwnedFilter, joinFanout, setFanoutProgram } from "../io/bpf.js";
import type { FrameIo, IoBackend } from "../io/frame-io.js";
import {
  addressOf,
  libc,
  PACKET_FANOUT_CBPF,
  PACKET_OTHERHOST,
  POLLERR,
  POLLIN,
  SIZEOF_POLLFD,
  SO_ERROR,
  SOL_SOCKET,
  setThreadAffinity,
  threadAffinity,
} from "../io/libc.js";
import { openRingSocket } from "../io/ring.js";
import type { FwmarkAction, IfaceStatus, Response, WorkerStatus } from "./protocol.js";

export type { Guard, GuardDest } from "../control/api.js";
export { ruleHostDst } from "../control/api.js";

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
  /** --host-vips: the host's locally delivered addresses, outside which no VIP is served. */
  hostLocal?: IfaceAddr[] | null;
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

export type ToWorker =
  | { type: "apply"; id: number; cmds: ControlCommand[] }
  | { type: "snapshot"; id: number; conns: boolean }
  | { type: "status"; id: number }
  | { type: "sysctl"; id: number; name?: string; value?: number }
  | { type: "fwmark"; id: number; action: FwmarkAction; rule?: string }
  | ({ type: "host"; id: number } & HostUpdate)
  | { type: "stop" };

export type FromWorker =
  | { type: "ready"; guard: Guard }
  | { type: "applied"; id: number; error?: ApplyError; guard: Guard }
  | { type: "snapshot"; id: number; table: TableSnapshot }
  | { type: "status"; id: number; status: WorkerStatus }
  | { type: "result"; id: number; response: Response; guard: Guard }
  | ({ type: "host"; id: number } & HostApplied)
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
    | { type: "sysctl"; name?: string; value?: number }
    | { type: "fwmark"; action: FwmarkAction; rule?: string },
): Response {
  try {
    if (msg.type === "sysctl") {
      if (msg.name !== undefined && msg.value !== undefined)
        api.apply([{ op: "set-sysctl", name: msg.name, value: msg.value }]);
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
function clearSocketError(fd: number): void {
  const c = libc();
  const v = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4, 0);
  c.getsockopt(fd, SOL_SOCKET, SO_ERROR, v, len);
}

function run(init: WorkerInit): void {
  const port = init.port;
  const post = (m: FromWorker): void => port.postMessage(m);
  const sockets: FrameIo[] = [];
  // Multi-worker: per interface, an extra ARP-only socket outside the fanout group, so that every
  // worker's neighbour cache sees every ARP reply (the fanout would give each to one worker).
  const arpSockets: FrameIo[] = [];
  const byIfindex: (FrameIo | undefined)[] = [];
  const nWorkers = init.workers ?? 1;
  const io: IoBackend = init.io ?? "ring";
  const allLips = init.allLips ?? init.lips;
  let locals = init.interfaces.flatMap((c) => c.addrs.map((a) => a.addr));
  // Per socket (same order as `sockets`): the interface as last given, and its ARP-only twin.
  const ifConfigs: IfaceConfig[] = [];
  let noSocket = 0;
  let otherHost = 0;
  let filterUpdates = 0;
  const placed = placeThread(init);
  post({ type: "log", level: "info", msg: "worker placed", data: { index: init.index ?? 0, ...placed } });
  const rx = init.rxKib;
  // One interface's sockets, k its fanout group offset; also run when the host gains an interface.
  let openIface: (c: IfaceConfig, k: number) => void = () => {};
  try {
    openIface = (c, k) => {
      const s =
        io === "ring"
          ? openRingSocket(c.name, {
              batch: init.batch,
              qdiscBypass: init.qdiscBypass,
              // --rx-kib in 128 KiB blocks (a block holds one 64 KiB aggregate).
              blocks: rx === undefined ? undefined : Math.max(2, Math.round(rx / 128)),
            })
          : openPacketSocket(c.name, {
              batch: init.batch,
              qdiscBypass: init.qdiscBypass,
              rcvbuf: rx === undefined ? undefined : rx * 1024,
            });
      sockets.push(s);
      ifConfigs.push(c);
      byIfindex[s.ifindex] = s;
      if (nWorkers > 1) {
        joinFanout(
          s.fd,
          (init.fanoutGroup ?? 0) + k,
          PACKET_FANOUT_CBPF,
          compileFanoutProgram({
            lips: allLips.map((a, i) => ({ addr: a, worker: i % nWorkers })),
            rips: [],
          }),
        );
        // Never sends and never sees an aggregate: plain 2 KiB slots.
        const a = openPacketSocket(c.name, { batch: 16, rcvbuf: 0, sndbuf: 0, vnetHdr: false });
        arpSockets.push(a);
        a.attachFilter(
          compileOwnedFilter({ owned: [], locals: [], rips: [], ipv4: false, snaplen: 2048, allArp: true }),
        );
      }
    };
    init.interfaces.forEach(openIface);
  } catch (e) {
    for (const s of [...sockets, ...arpSockets]) s.close();
    throw e;
  }
  let rxSockets = [...sockets, ...arpSockets];
  // The frame being handed to the engine: when the engine sends it back out (rewritten in place),
  // the frame is queued by address, without a copy (ring or rx slot stay valid until the flush at
  // the end of the loop).
  let curFrame: Uint8Array | null = null;
  let curAddr = 0;
  let zeroCopy = 0;
  const engine = new Engine({
    interfaces: init.interfaces,
    routes: init.routes,
    // Every LIP: the engine takes its own share of them, and of the services' laddrs (core/lip.ts).
    lips: allLips,
    worker: { index: init.index ?? 0, count: nWorkers },
    sysctls: init.sysctls,
    ownInterfaceAddresses: false,
    random: () => (Math.random() * 0x100000000) >>> 0,
    // vnet: the virtio_net_hdr of an aggregate sent whole (null for a plain frame).
    send: (ifindex, buf, off, len, vnet) => {
      const s = byIfindex[ifindex];
      if (s === undefined) noSocket++;
      else if (buf === curFrame) {
        s.queueAddress(curAddr + off, len, vnet);
        zeroCopy++;
      } else s.send(buf, off, len, vnet);
    },
  });
  if (init.hostLocal !== undefined && init.hostLocal !== null) engine.routes.setHostLocal(init.hostLocal);
  const now = (): number => performance.now();
  const api = new ControlApi(engine, now);
  const c = libc();
  // The pollfd array over rxSockets; rebuilt when the host gains or loses an interface.
  let pollMem = c.koffi.alloc("uint8_t", SIZEOF_POLLFD * Math.max(1, rxSockets.length));
  let pollAddr = addressOf(pollMem);
  let pollDv = new DataView(c.koffi.view(pollMem, SIZEOF_POLLFD * Math.max(1, rxSockets.length)));
  rxSockets.forEach((s, i) => {
    pollDv.setInt32(i * SIZEOF_POLLFD, s.fd, true);
    pollDv.setInt16(i * SIZEOF_POLLFD + 4, POLLIN, true);
  });
  const kernelDrops: number[] = sockets.map(() => 0);
  const started = now();
  let loops = 0;
  let batches = 0;
  let busyMs = 0;
  const spinMs = (init.spinUs ?? 0) / 1000;
  let lastFrameAt = 0;
  // Which sockets to read in this pass: all of them, except right after poll(2) returned, when
  // only the ones it reported readable (an empty recvmmsg is a syscall for nothing).
  let readable = new Uint8Array(rxSockets.length).fill(1);
  // recvmmsg(MSG_DONTWAIT) returns what is queued: fewer than a batch means the socket was empty a
  // moment ago, so the next pass may go straight to poll(2), which returns at once if frames came
  // in meanwhile: at low rates that is poll, recvmmsg, sendmmsg per frame instead of two more
  // empty recvmmsg. A ring's partial block says nothing of the kind.
  const drainable = io === "mmsg";

  // The kernel filter and the fanout program follow the owned addresses and the NAT destinations:
  // recompiled and re-attached (atomically: SO_ATTACH_FILTER replaces) when they change.
  let filterKey = "";
  // The LIP list and the owned LIPs change with laddr commands, and when the last connection on a
  // deleted laddr ends (engine.tick): lipVersion tells the loop when to look again.
  let lipVersion = -1;
  const refilter = (): void => {
    lipVersion = engine.lipTable.version;
    const g = api.guard();
    // A fwmark rule on a network (not one host) owns addresses we cannot list: let all IPv4 in.
    const allIpv4 = api.hasNetworkFwmark();
    const rips = g.nat.map((d) => d.addr);
    const lipList = engine.lipTable.all();
    const key = JSON.stringify([g.owned, rips, allIpv4, locals, lipList.length]);
    if (key === filterKey) return;
    filterKey = key;
    if (init.filter !== false || nWorkers > 1) {
      const prog = compileOwnedFilter({
        owned: g.owned,
        locals,
        rips,
        allIpv4: allIpv4 || init.filter === false,
        arp: nWorkers === 1,
        // The filter's return value cuts the frame: an aggregate (up to 64 KiB) must pass whole.
        snaplen: 0x40000,
      });
      for (const s of sockets) s.attachFilter(prog);
    }
    if (nWorkers > 1) {
      const fp = compileFanoutProgram({
        lips: lipList.map((a, i) => ({ addr: a, worker: i % nWorkers })),
        rips,
      });
      for (const s of sockets) setFanoutProgram(s.fd, fp);
    }
    filterUpdates++;
  };
  refilter();
  post({ type: "ready", guard: api.guard() });

  const status = (): WorkerStatus => {
    const ifs: IfaceStatus[] = sockets.map((s, i) => {
      try {
        kernelDrops[i] += s.kernelStats().drops;
      } catch {
        // socket error: reported by the loop
      }
      const cfg = ifConfigs[i];
      return {
        name: s.ifname,
        ifindex: s.ifindex,
        mac: [...s.mac].map((b) => b.toString(16).padStart(2, "0")).join(":"),
        mtu: s.mtu,
        addrs: cfg.addrs.map((a) => `${formatIPv4(a.addr)}/${a.prefix}`),
        rxFrames: s.counters.rxFrames,
        txFrames: s.counters.txFrames,
        rxTruncated: s.counters.rxTruncated,
        rxAggregates: s.counters.rxAggregates,
        txAggregates: s.counters.txAggregates,
        rxOversize: s.counters.rxOversize,
        txDropped: s.counters.txDropped,
        txErrors: s.counters.txErrors,
        kernelDrops: kernelDrops[i],
      };
    });
    const k = engine.counters;
    let dests = 0;
    for (const s of engine.services()) dests += s.dests.length;
    return {
      interfaces: ifs,
      loops,
      batches,
      busyMs,
      uptimeMs: now() - started,
      services: engine.services().length,
      dests,
      connections: engine.connCount(),
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
        otherHost,
        noSocket,
        zeroCopy,
        filterUpdates,
        workers: nWorkers,
      },
      drops: k.dropTable(),
    };
  };

  // ------------------------------------------------------------ host changes
  // Sockets of interfaces no longer served are closed; new ones are opened (a deleted interface's
  // socket is dead for good: packet_notifier unbinds it on NETDEV_UNREGISTER, and a re-created
  // link is a new ifindex). A link that only goes down keeps its socket: the kernel unhooks it on
  // NETDEV_DOWN and hooks it again on NETDEV_UP (net/packet/af_packet.c, packet_notifier).
  const applyHost = (u: HostUpdate): HostApplied => {
    const r: HostApplied = { opened: [], closed: [], errors: [] };
    const want = new Map(u.interfaces.map((cfg, k) => [cfg.ifindex, { cfg, group: u.fanout[k] ?? k }]));
    for (let i = sockets.length - 1; i >= 0; i--) {
      const s = sockets[i];
      const w = want.get(s.ifindex);
      if (w !== undefined) {
        ifConfigs[i] = w.cfg;
        continue;
      }
      r.closed.push(s.ifname);
      s.close();
      arpSockets[i]?.close();
      if (nWorkers > 1) arpSockets.splice(i, 1);
      sockets.splice(i, 1);
      ifConfigs.splice(i, 1);
      kernelDrops.splice(i, 1);
      byIfindex[s.ifindex] = undefined;
    }
    for (const { cfg, group } of want.values()) {
      if (byIfindex[cfg.ifindex] !== undefined) continue;
      const n = sockets.length;
      try {
        openIface(cfg, group);
        kernelDrops.push(0);
        r.opened.push(cfg.name);
      } catch (e) {
        // Gone again, or not ready: the next host change tries again.
        for (const s of sockets.splice(n)) s.close();
        for (const s of arpSockets.splice(n)) s.close();
        ifConfigs.splice(n);
        byIfindex[cfg.ifindex] = undefined;
        r.errors.push({ name: cfg.name, err: e instanceof Error ? e.message : String(e) });
      }
    }
    engine.setHost(u.interfaces, u.routes, u.hostLocal);
    locals = u.interfaces.flatMap((cfg) => cfg.addrs.map((a) => a.addr));
    if (r.opened.length > 0) filterKey = ""; // new sockets start without the filter
    refilter();
    if (r.opened.length > 0 || r.closed.length > 0) {
      rxSockets = [...sockets, ...arpSockets];
      c.koffi.free(pollMem);
      pollMem = c.koffi.alloc("uint8_t", SIZEOF_POLLFD * Math.max(1, rxSockets.length));
      pollAddr = addressOf(pollMem);
      pollDv = new DataView(c.koffi.view(pollMem, SIZEOF_POLLFD * Math.max(1, rxSockets.length)));
      rxSockets.forEach((s, i) => {
        pollDv.setInt32(i * SIZEOF_POLLFD, s.fd, true);
        pollDv.setInt16(i * SIZEOF_POLLFD + 4, POLLIN, true);
      });
      readable = new Uint8Array(rxSockets.length).fill(1);
    }
    return r;
  };

  // Returns false when asked to stop.
  const control = (): boolean => {
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
      const msg = m.message as ToWorker;
      switch (msg.type) {
        case "stop":
          return false;
        case "status":
          post({ type: "status", id: msg.id, status: status() });
          break;
        case "apply": {
          let error: ApplyError | undefined;
          try {
            api.apply(msg.cmds);
          } catch (e) {
            if (!(e instanceof TsvsError)) {
              post({ type: "log", level: "error", msg: "control batch failed", data: { err: String(e) } });
              error = { code: "TSVS_ERR_INTERNAL", message: `internal error: ${String(e)}` };
            } else {
              const index = (e as TsvsError & { index?: unknown }).index;
              error = {
                code: e.code,
                message: e.message,
                index: typeof index === "number" ? index : undefined,
              };
            }
          }
          refilter();
          post({ type: "applied", id: msg.id, error, guard: api.guard() });
          break;
        }
        case "snapshot":
          post({ type: "snapshot", id: msg.id, table: api.snapshot(msg.conns) });
          break;
        case "host":
          post({ type: "host", id: msg.id, ...applyHost(msg) });
          break;
        case "sysctl":
        case "fwmark": {
          let response: Response;
          try {
            response = controlRequest(api, msg);
          } catch (e) {
            response = { error: `internal error: ${e instanceof Error ? e.message : String(e)}` };
          }
          refilter();
          post({ type: "result", id: msg.id, response, guard: api.guard() });
          break;
        }
      }
    }
    return true;
  };

  try {
    for (;;) {
      loops++;
      let got = 0;
      let full = false;
      for (let si = 0; si < rxSockets.length; si++) {
        if (readable[si] === 0) continue;
        const s = rxSockets[si];
        const n = s.recvBatch(0);
        if (n === 0) continue;
        const t = now();
        for (let i = 0; i < n; i++) {
          // Unicast for another host (a bridge flooding, promiscuous peers): not ours, as in ip_rcv.
          if (s.pktType(i) === PACKET_OTHERHOST) {
            otherHost++;
            continue;
          }
          curFrame = s.frame(i);
          curAddr = s.frameAddress(i);
          engine.input(s.ifindex, curFrame, s.length(i), t, s.offload(i));
        }
        curFrame = null;
        got += n;
        if (n >= s.batch) full = true;
        batches++;
        busyMs += now() - t;
      }
      engine.tick(now());
      if (engine.lipTable.version !== lipVersion) refilter();
      for (let si = 0; si < sockets.length; si++) sockets[si].flush();
      if (!control()) break;
      readable.fill(1);
      let idle: boolean;
      if (spinMs === 0) idle = got === 0 || (drainable && !full);
      else {
        const t = now();
        if (got > 0) lastFrameAt = t;
        idle = t - lastFrameAt >= spinMs;
      }
      if (idle && init.idleMs > 0) {
        const p = c.poll(pollAddr, rxSockets.length, init.idleMs);
        if (p < 0 && c.errno() !== 4 /* EINTR */)
          throw new TsvsError("TSVS_ERR_INTERNAL", `poll: errno ${c.errno()}`);
        if (p > 0) {
          for (let i = 0; i < rxSockets.length; i++) {
            const rev = pollDv.getInt16(i * SIZEOF_POLLFD + 6, true);
            readable[i] = rev === 0 ? 0 : 1;
            if ((rev & POLLERR) !== 0) clearSocketError(rxSockets[i].fd);
          }
        }
      }
    }
  } finally {
    for (const s of rxSockets) s.close();
    c.koffi.free(pollMem);
  }
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
