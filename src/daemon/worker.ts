// The data plane: one worker_thread owning one AF_PACKET socket per interface and the engine.
// A synchronous loop (docs/daemon.md, docs/io.md): receive a batch on every socket → engine.input
// per frame → the engine's frames go out through the socket of the interface it names → flush
// → engine.tick → control messages. It never returns to the event loop while running: control
// messages are pulled with receiveMessageOnPort between batches, and the only blocking call is
// one poll(2) over all sockets with a short timeout when every socket was empty.

import { type MessagePort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { runIpvsadm } from "../cli/ipvsadm/run.js";
import { formatIPv4, parseIPv4 } from "../core/addr.js";
import { Fwd } from "../core/dest.js";
import { Engine, type Sysctls } from "../core/engine.js";
import { TsvsError } from "../core/errors.js";
import { FwmarkClassifier } from "../core/fwmark.js";
import type { IfaceConfig, RouteConfig } from "../core/route.js";
import { engineBackend } from "../director/ipvsadm-backend.js";
import { openPacketSocket } from "../io/afpacket.js";
import { compileFanoutProgram, compileOwnedFilter, joinFanout, setFanoutProgram } from "../io/bpf.js";
import type { FrameIo, IoBackend } from "../io/frame-io.js";
import {
  addressOf,
  libc,
  PACKET_FANOUT_CBPF,
  PACKET_OTHERHOST,
  POLLIN,
  PRIO_PROCESS,
  SCHED_FIFO,
  SIZEOF_POLLFD,
  setThreadAffinity,
  threadAffinity,
} from "../io/libc.js";
import { openRingSocket } from "../io/ring.js";
import {
  type FwmarkAction,
  type IfaceStatus,
  type IpvsadmReply,
  type Response,
  SYSCTLS,
  type WorkerStatus,
} from "./protocol.js";

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
  /** Nice value of this thread (setpriority acts on one thread on Linux). */
  nice?: number;
  /** SCHED_FIFO priority of this thread. */
  rtPrio?: number;
  /** Receive buffer per socket, KiB: SO_RCVBUF (mmsg) or ring size (ring, 64 KiB blocks). */
  rxKib?: number;
}

/**
 * Places and prioritises the calling thread as `init` asks; returns what it got, for the log.
 * Runs in the worker thread itself: affinity, nice and policy are per thread (pid 0 = the caller),
 * so the main thread and libuv's pool keep the process's placement.
 */
export function placeThread(init: Pick<WorkerInit, "cpus" | "nice" | "rtPrio">): Record<string, unknown> {
  const c = libc();
  const out: Record<string, unknown> = { tid: c.gettid() };
  if (init.cpus !== undefined && init.cpus.length > 0) setThreadAffinity(init.cpus);
  out.cpus = threadAffinity();
  if (init.nice !== undefined) {
    if (c.setpriority(PRIO_PROCESS, 0, init.nice) !== 0) out.niceErrno = c.errno();
    else out.nice = init.nice;
  }
  if (init.rtPrio !== undefined) {
    const param = Buffer.alloc(4);
    param.writeInt32LE(init.rtPrio, 0);
    if (c.sched_setscheduler(0, SCHED_FIFO, param) !== 0) out.rtErrno = c.errno();
    else out.rtPrio = init.rtPrio;
  }
  return out;
}

/** LIPs of worker `w` of `n`: every n-th one, so a FULLNAT reply's LIP names the worker that chose it. */
export function lipsOfWorker(lips: readonly number[], w: number, n: number): number[] {
  return lips.filter((_, i) => i % n === w);
}

/** A NAT/FULLNAT destination whose replies tsvs consumes: proto 0 = TCP and UDP (fwmark services). */
export interface GuardDest {
  addr: number;
  proto: number;
  port: number;
}

/** What the kernel must not see (nft.ts turns it into rules). */
export interface Guard {
  owned: number[];
  nat: GuardDest[];
}

export type ToWorker =
  | { type: "ipvsadm"; id: number; argv: string[]; stdin?: string }
  | { type: "status"; id: number }
  | { type: "sysctl"; id: number; name?: string; value?: number }
  | { type: "fwmark"; id: number; action: FwmarkAction; rule?: string }
  | { type: "stop" };

export type FromWorker =
  | { type: "ready"; guard: Guard }
  | { type: "reply"; id: number; result: IpvsadmReply; guard: Guard }
  | { type: "status"; id: number; status: WorkerStatus }
  | { type: "result"; id: number; response: Response; guard: Guard }
  | { type: "log"; level: "info" | "warn" | "error"; msg: string; data?: Record<string, unknown> }
  | { type: "stopped" };

/**
 * VIPs and LIPs (and the addresses fwmark rules made the director's), and the NAT/FULLNAT
 * destinations, sorted so that equal guards compare equal.
 */
export function guardOf(engine: Engine, extraOwned: Iterable<number> = []): Guard {
  const owned = new Set<number>(engine.lips);
  for (const a of extraOwned) owned.add(a >>> 0);
  const nat = new Map<string, GuardDest>();
  for (const s of engine.services()) {
    if (s.fwmark === 0) owned.add(s.addr >>> 0);
    for (const d of s.dests) {
      if (d.fwd !== Fwd.Masq && d.fwd !== Fwd.FullNat) continue;
      const g = { addr: d.addr >>> 0, proto: s.fwmark === 0 ? s.protocol : 0, port: d.port };
      nat.set(`${g.addr}/${g.proto}/${g.port}`, g);
    }
  }
  return {
    owned: [...owned].sort((a, b) => a - b),
    nat: [...nat.values()].sort((a, b) => a.addr - b.addr || a.proto - b.proto || a.port - b.port),
  };
}

/**
 * The destination address of a rule that names one host (`-d ADDR` or `-d ADDR/32`, not negated),
 * read from the classifier's canonical text: the director must own it (answer ARP, keep the
 * kernel out) for the fwmark service to see its packets, as the VIP of a fwmark service sits on
 * the director's lo in a kernel setup. Null for a network or no -d.
 */
export function ruleHostDst(canonical: string): number | null {
  const tok = canonical.split(/\s+/);
  for (let i = 0; i + 1 < tok.length; i++) {
    if (tok[i] !== "-d" || (i > 0 && tok[i - 1] === "!")) continue;
    const m = /^(\d+\.\d+\.\d+\.\d+)\/32$/.exec(tok[i + 1]);
    return m === null ? null : (parseIPv4(m[1]) ?? null);
  }
  return null;
}

/** The engine's sysctls by their /proc names, as numbers. */
function sysctlValues(engine: Engine, only?: string): Record<string, number> {
  const out: Record<string, number> = {};
  const values = engine.sysctls as unknown as Record<string, number | boolean>;
  for (const [name, { field }] of Object.entries(SYSCTLS)) {
    if (only !== undefined && name !== only) continue;
    out[name] = Number(values[field]);
  }
  return out;
}

/** Applies a `tsvs sysctl`/`tsvs fwmark` request to the engine; fwOwned maps rule id → owned address. */
export function controlRequest(
  engine: Engine,
  fwOwned: Map<number, number>,
  msg:
    | { type: "sysctl"; name?: string; value?: number }
    | { type: "fwmark"; action: FwmarkAction; rule?: string },
): Response {
  if (msg.type === "sysctl") {
    const spec = msg.name === undefined ? undefined : SYSCTLS[msg.name];
    if (msg.name !== undefined && spec === undefined) return { error: `unknown sysctl ${msg.name}` };
    if (spec !== undefined && msg.value !== undefined) {
      const values = engine.sysctls as unknown as Record<string, number | boolean>;
      values[spec.field] = spec.max === 1 ? msg.value !== 0 : msg.value;
    }
    return { sysctls: sysctlValues(engine, msg.name) };
  }
  const fw = engine.fwmarks;
  const release = (id: number): void => {
    const a = fwOwned.get(id);
    if (a === undefined) return;
    fwOwned.delete(id);
    engine.ctl.removeOwnedAddress(a);
  };
  try {
    switch (msg.action) {
      case "list":
        return { fwmarks: fw.list() };
      case "flush":
        for (const id of [...fwOwned.keys()]) release(id);
        fw.clear();
        return { fwmarks: [] };
      case "add": {
        const id = fw.add(msg.rule ?? "");
        const view = fw.list().find((r) => r.id === id);
        const host = view === undefined ? null : ruleHostDst(view.rule);
        if (host !== null) {
          engine.ctl.addOwnedAddress(host);
          fwOwned.set(id, host);
        }
        return { fwmarks: view === undefined ? [] : [view] };
      }
      case "del": {
        const text = (msg.rule ?? "").trim();
        let id: number | undefined;
        if (/^\d+$/.test(text)) id = Number(text);
        else {
          // As iptables -D RULE: the first rule that is the same once both are canonical.
          const probe = new FwmarkClassifier();
          probe.add(text);
          const want = probe.list()[0]?.rule;
          id = fw.list().find((r) => r.rule === want)?.id;
        }
        const view = fw.list().find((r) => r.id === id);
        if (id === undefined || view === undefined || !fw.remove(id))
          return { error: "fwmark del: no such rule (does a matching rule exist?)" };
        release(id);
        return { fwmarks: [view] };
      }
    }
  } catch (e) {
    if (e instanceof TsvsError) return { error: `fwmark ${msg.action}: ${e.message}` };
    throw e;
  }
  return { error: "unknown request" };
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
  const locals = init.interfaces.flatMap((c) => c.addrs.map((a) => a.addr));
  let noSocket = 0;
  let otherHost = 0;
  let filterUpdates = 0;
  const placed = placeThread(init);
  post({ type: "log", level: "info", msg: "worker placed", data: { index: init.index ?? 0, ...placed } });
  const rx = init.rxKib;
  try {
    init.interfaces.forEach((c, k) => {
      const s =
        io === "ring"
          ? openRingSocket(c.name, {
              batch: init.batch,
              qdiscBypass: init.qdiscBypass,
              blocks: rx === undefined ? undefined : Math.max(2, Math.round(rx / 64)),
            })
          : openPacketSocket(c.name, {
              batch: init.batch,
              qdiscBypass: init.qdiscBypass,
              rcvbuf: rx === undefined ? undefined : rx * 1024,
            });
      sockets.push(s);
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
        const a = openPacketSocket(c.name, { batch: 16, rcvbuf: 0, sndbuf: 0 });
        arpSockets.push(a);
        a.attachFilter(
          compileOwnedFilter({ owned: [], locals: [], rips: [], ipv4: false, snaplen: 2048, allArp: true }),
        );
      }
    });
  } catch (e) {
    for (const s of [...sockets, ...arpSockets]) s.close();
    throw e;
  }
  const rxSockets = [...sockets, ...arpSockets];
  // The frame being handed to the engine: when the engine sends it back out (rewritten in place),
  // the frame is queued by address, without a copy (ring or rx slot stay valid until the flush at
  // the end of the loop).
  let curFrame: Uint8Array | null = null;
  let curAddr = 0;
  let zeroCopy = 0;
  const engine = new Engine({
    interfaces: init.interfaces,
    routes: init.routes,
    lips: init.lips,
    sysctls: init.sysctls,
    ownInterfaceAddresses: false,
    random: () => (Math.random() * 0x100000000) >>> 0,
    send: (ifindex, buf, off, len) => {
      const s = byIfindex[ifindex];
      if (s === undefined) noSocket++;
      else if (buf === curFrame) {
        s.queueAddress(curAddr + off, len);
        zeroCopy++;
      } else s.send(buf, off, len);
    },
  });
  const now = (): number => performance.now();
  const backend = engineBackend(engine, now);
  const fwOwned = new Map<number, number>();
  const c = libc();
  const pollMem = c.koffi.alloc("uint8_t", SIZEOF_POLLFD * rxSockets.length);
  const pollAddr = addressOf(pollMem);
  const pollDv = new DataView(c.koffi.view(pollMem, SIZEOF_POLLFD * rxSockets.length));
  rxSockets.forEach((s, i) => {
    pollDv.setInt32(i * SIZEOF_POLLFD, s.fd, true);
    pollDv.setInt16(i * SIZEOF_POLLFD + 4, POLLIN, true);
  });
  const kernelDrops = new Float64Array(sockets.length);
  const started = now();
  let loops = 0;
  let batches = 0;
  let busyMs = 0;
  const spinMs = (init.spinUs ?? 0) / 1000;
  let lastFrameAt = 0;
  // Which sockets to read in this pass: all of them, except right after poll(2) returned, when
  // only the ones it reported readable (an empty recvmmsg is a syscall for nothing).
  const readable = new Uint8Array(rxSockets.length).fill(1);
  // recvmmsg(MSG_DONTWAIT) returns what is queued: fewer than a batch means the socket was empty a
  // moment ago, so the next pass may go straight to poll(2), which returns at once if frames came
  // in meanwhile: at low rates that is poll, recvmmsg, sendmmsg per frame instead of two more
  // empty recvmmsg. A ring's partial block says nothing of the kind.
  const drainable = io === "mmsg";

  // The kernel filter and the fanout program follow the owned addresses and the NAT destinations:
  // recompiled and re-attached (atomically: SO_ATTACH_FILTER replaces) when they change.
  let filterKey = "";
  const refilter = (): void => {
    const g = guardOf(engine, fwOwned.values());
    // A fwmark rule on a network (not one host) owns addresses we cannot list: let all IPv4 in.
    const allIpv4 = engine.fwmarks.list().some((r) => ruleHostDst(r.rule) === null);
    const rips = g.nat.map((d) => d.addr);
    const key = JSON.stringify([g.owned, rips, allIpv4]);
    if (key === filterKey) return;
    filterKey = key;
    if (init.filter !== false || nWorkers > 1) {
      const prog = compileOwnedFilter({
        owned: g.owned,
        locals,
        rips,
        allIpv4: allIpv4 || init.filter === false,
        arp: nWorkers === 1,
        snaplen: 2048,
      });
      for (const s of sockets) s.attachFilter(prog);
    }
    if (nWorkers > 1) {
      const fp = compileFanoutProgram({
        lips: allLips.map((a, i) => ({ addr: a, worker: i % nWorkers })),
        rips,
      });
      for (const s of sockets) setFanoutProgram(s.fd, fp);
    }
    filterUpdates++;
  };
  refilter();
  post({ type: "ready", guard: guardOf(engine, fwOwned.values()) });

  const status = (): WorkerStatus => {
    const ifs: IfaceStatus[] = sockets.map((s, i) => {
      try {
        kernelDrops[i] += s.kernelStats().drops;
      } catch {
        // socket error: reported by the loop
      }
      const cfg = init.interfaces[i];
      return {
        name: s.ifname,
        ifindex: s.ifindex,
        mac: [...s.mac].map((b) => b.toString(16).padStart(2, "0")).join(":"),
        mtu: s.mtu,
        addrs: cfg.addrs.map((a) => `${formatIPv4(a.addr)}/${a.prefix}`),
        rxFrames: s.counters.rxFrames,
        txFrames: s.counters.txFrames,
        rxTruncated: s.counters.rxTruncated,
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
        otherHost,
        noSocket,
        zeroCopy,
        filterUpdates,
        workers: nWorkers,
      },
      drops: k.dropTable(),
    };
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
        case "ipvsadm": {
          let result: IpvsadmReply;
          try {
            result = runIpvsadm(msg.argv, backend, msg.stdin ?? "");
          } catch (e) {
            // runIpvsadm answers every ipvsadm error itself; anything else is a tsvs bug.
            result = {
              code: 255,
              stdout: "",
              stderr: `tsvs: internal error: ${e instanceof Error ? e.message : String(e)}\n`,
            };
            post({
              type: "log",
              level: "error",
              msg: "ipvsadm command failed",
              data: { argv: msg.argv, err: String(e) },
            });
          }
          refilter();
          post({ type: "reply", id: msg.id, result, guard: guardOf(engine, fwOwned.values()) });
          break;
        }
        case "sysctl":
        case "fwmark": {
          let response: Response;
          try {
            response = controlRequest(engine, fwOwned, msg);
          } catch (e) {
            response = { error: `internal error: ${e instanceof Error ? e.message : String(e)}` };
          }
          refilter();
          post({ type: "result", id: msg.id, response, guard: guardOf(engine, fwOwned.values()) });
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
          engine.input(s.ifindex, curFrame, s.length(i), t);
        }
        curFrame = null;
        got += n;
        if (n >= s.batch) full = true;
        batches++;
        busyMs += now() - t;
      }
      engine.tick(now());
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
        if (p < 0 && c.errno() !== 4 /* EINTR */) throw new Error(`poll: errno ${c.errno()}`);
        if (p > 0) {
          for (let i = 0; i < rxSockets.length; i++)
            readable[i] = pollDv.getInt16(i * SIZEOF_POLLFD + 6, true) === 0 ? 0 : 1;
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
