// `tsvs daemon`: the director in the current network namespace (docs/daemon.md).
//
//   main thread: arguments, kernel facts (ip -j), the nft guard, the control socket, signals, logs
//   worker:      the packet sockets and the engine (worker.ts), in a loop that never yields
//
// The main thread never touches a packet and the worker never waits on the event loop; they talk
// through one MessagePort: requests in (pulled by the worker between batches), replies and log
// records out.

import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { basename } from "node:path";
import { setFlagsFromString } from "node:v8";
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import pino from "pino";
import type { ControlCommand } from "../control/commands.js";
import { mergeTables } from "../control/snapshot.js";
import { formatIPv4, parseIPv4 } from "../core/addr.js";
import { ENGINE_V8_FLAGS, type Sysctls } from "../core/engine.js";
import { IO_BACKENDS, type IoBackend } from "../io/frame-io.js";
import { threadAffinity } from "../io/libc.js";
import { DaemonConfig } from "./config-runner.js";
import { ControlServer, type Handler } from "./control.js";
import { chooseServed, diffHost, type HostView, HostWatcher, hostView, viewKey } from "./host.js";
import { type HostState, ipForward, readHost } from "./kernel.js";
import { applyGuard, checkNft, NFT_FAMILY, NFT_TABLE, removeGuard } from "./nft.js";
import {
  type DaemonStatus,
  type FwmarkAction,
  type HostStatus,
  netnsId,
  PROTOCOL_VERSION,
  parseSysctlArg,
  type Request,
  type Response,
  resolveControlPath,
  SYSCTLS,
  type WorkerStatus,
} from "./protocol.js";
import {
  type FromWorker,
  type Guard,
  type HostApplied,
  type HostUpdate,
  lipsOfWorker,
  type ToWorker,
  type WorkerInit,
} from "./worker.js";

/** --spin-us default (docs/daemon.md "Latency": measured on the bench topology). */
export const DEFAULT_SPIN_US = 0;

export const DAEMON_USAGE = `Usage: tsvs daemon [--iface IF]... [--lip ADDR]... [--sysctl NAME=VALUE]... [--control PATH]
                   [--log-level LEVEL] [--idle-ms N] [--spin-us N] [--io ring|mmsg] [--workers N]
                   [--no-filter] [--qdisc-bypass] [--config FILE] [--cpus LIST | --no-pin] [--nice N]
                   [--rt-prio N] [--batch N] [--rx-kib N] [--host-vips]

Runs the director in the foreground, in the current network namespace. With no argument it serves
every Ethernet interface that is up (not lo, not a bridge or bond port) and follows the host:
interfaces that come up or go away, addresses and routes that change (docs/daemon.md).
  --iface IF         an interface to serve (repeatable; default: every up, non-loopback Ethernet one,
                     followed as interfaces come and go)
  --lip ADDR         a FULLNAT local address (repeatable)
  --sysctl NAME=V    a director sysctl, as /proc/sys/net/ipv4/vs names it (repeatable): conn_reuse_mode,
                     expire_nodest_conn, expire_quiescent_template, sloppy_tcp; at run time: tsvs sysctl
  --control PATH     control socket (default: $TSVS_CONTROL, else /run/tsvs/control.sock in the
                     host namespace, /run/tsvs/netns-<inode>/control.sock in others)
  --log-level LEVEL  trace|debug|info|warn|error|fatal|silent (default info)
  --idle-ms N        poll timeout of the data-plane loop when idle (default 10; 0 = busy-poll,
                     never sleep: lowest latency, one core at 100 %)
  --spin-us N        keep receiving this long after the last frame before sleeping in poll(2)
                     (default ${DEFAULT_SPIN_US}; 0 = sleep at once): spares the wake-up of a sleeping
                     thread at low rates, for at most N µs of CPU per quiet spell
  --io mmsg|ring     receive backend: recvmmsg batches (default: lowest latency) or the TPACKET_V3
                     mmap ring (more packets per second under load, ~1 ms added at low rates)
  --workers N        data-plane threads (default 1), one PACKET_FANOUT member each per interface;
                     both directions of a connection reach the same worker (docs/daemon.md)
  --no-filter        do not attach the kernel socket filter (every frame crosses to user space)
  --qdisc-bypass     PACKET_QDISC_BYPASS: frames go straight to the driver, no qdisc (docs/io.md)
  --config FILE      services and health checks from a keepalived.conf or tsvs YAML file
                     (docs/config.md); SIGHUP or \`tsvs reload\` applies a changed file as a difference
  --cpus LIST        CPUs for the workers (e.g. 2,3 or 2-5; worker w takes the w-th, round robin).
                     Default: the CPUs this process may use minus those that take the interfaces'
                     receive work (RPS masks, IRQ affinity): a softirq on a worker's core starves it
                     (receive livelock, docs/io.md); unpinned, with a warning, when there are none
  --no-pin           leave the workers where the scheduler puts them
  --nice N           nice value of the worker threads (-20..19; default: unchanged)
  --rt-prio N        SCHED_FIFO priority 1..99 for the worker threads (default: SCHED_OTHER)
  --batch N          most frames per receive call (default 64 for mmsg, 256 for ring)
  --rx-kib N         receive buffer per socket in KiB (mmsg: SO_RCVBUF, default 4096; ring: the
                     ring size, default 4096, in 64 KiB blocks)
  --host-vips        serve a virtual service's address only while the host has it (an address of
                     one of its interfaces, or a local route), as the kernel's IPVS does: for VIPs
                     that VRRP (keepalived) moves between directors. Default: every VIP, anywhere
`;

export interface DaemonOptions {
  ifaces: string[];
  lips: number[];
  control: string | undefined;
  logLevel: string;
  idleMs: number;
  spinUs: number;
  /** Engine field → value, from --sysctl. */
  sysctls: Partial<Sysctls>;
  io: IoBackend;
  workers: number;
  filter: boolean;
  qdiscBypass: boolean;
  config: string | undefined;
  /** --cpus: explicit worker CPUs; null = choose (or not, with --no-pin). */
  cpus: number[] | null;
  pin: boolean;
  nice: number | undefined;
  rtPrio: number | undefined;
  batch: number | undefined;
  rxKib: number | undefined;
  /** --host-vips: a VIP is served only while it is one of the host's local addresses. */
  hostVips: boolean;
}

const LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

export class DaemonUsageError extends Error {}

export function parseDaemonArgs(args: readonly string[]): DaemonOptions {
  const o: DaemonOptions = {
    ifaces: [],
    lips: [],
    control: undefined,
    logLevel: "info",
    idleMs: 10,
    spinUs: DEFAULT_SPIN_US,
    sysctls: {},
    io: "mmsg",
    workers: 1,
    filter: true,
    qdiscBypass: false,
    config: undefined,
    cpus: null,
    pin: true,
    nice: undefined,
    rtPrio: undefined,
    batch: undefined,
    rxKib: undefined,
    hostVips: false,
  };
  const int = (name: string, v: string, lo: number, hi: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new DaemonUsageError(`${name} must be ${lo}..${hi}`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const eq = a.indexOf("=");
    const name = a.startsWith("--") && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith("--") && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      if (i + 1 >= args.length) throw new DaemonUsageError(`${name} needs a value`);
      return args[++i];
    };
    switch (name) {
      case "--iface":
      case "-i":
        o.ifaces.push(value());
        break;
      case "--lip": {
        const v = value();
        const addr = parseIPv4(v);
        if (addr === null) throw new DaemonUsageError(`--lip: bad IPv4 address ${JSON.stringify(v)}`);
        o.lips.push(addr);
        break;
      }
      case "--control":
        o.control = value();
        break;
      case "--config":
        o.config = value();
        break;
      case "--sysctl": {
        const p = parseSysctlArg(value());
        if ("error" in p) throw new DaemonUsageError(`--sysctl: ${p.error}`);
        if (p.value === undefined) throw new DaemonUsageError(`--sysctl: ${p.name} needs =VALUE`);
        const spec = SYSCTLS[p.name];
        (o.sysctls as Record<string, number | boolean>)[spec.field] =
          spec.max === 1 ? p.value !== 0 : p.value;
        break;
      }
      case "--log-level": {
        const v = value();
        if (!LEVELS.has(v)) throw new DaemonUsageError(`--log-level: unknown level ${JSON.stringify(v)}`);
        o.logLevel = v;
        break;
      }
      case "--idle-ms":
        o.idleMs = int(name, value(), 0, 1000);
        break;
      case "--spin-us":
        o.spinUs = int(name, value(), 0, 100000);
        break;
      case "--io": {
        const v = value();
        if (!IO_BACKENDS.includes(v as IoBackend))
          throw new DaemonUsageError(`--io: ring or mmsg, not ${JSON.stringify(v)}`);
        o.io = v as IoBackend;
        break;
      }
      case "--workers":
        o.workers = int(name, value(), 1, 64);
        break;
      case "--no-filter":
        o.filter = false;
        break;
      case "--qdisc-bypass":
        o.qdiscBypass = true;
        break;
      case "--cpus": {
        const v = value();
        const cpus = parseCpuList(v);
        if (cpus === null || cpus.length === 0)
          throw new DaemonUsageError(`--cpus: a CPU list such as 0,2-3, not ${JSON.stringify(v)}`);
        o.cpus = cpus;
        break;
      }
      case "--no-pin":
        o.pin = false;
        break;
      case "--nice":
        o.nice = int(name, value(), -20, 19);
        break;
      case "--rt-prio":
        o.rtPrio = int(name, value(), 1, 99);
        break;
      case "--batch":
        o.batch = int(name, value(), 1, 4096);
        break;
      case "--rx-kib":
        o.rxKib = int(name, value(), 128, 1 << 20);
        break;
      case "--host-vips":
        o.hostVips = true;
        break;
      default:
        throw new DaemonUsageError(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  if (o.cpus !== null && !o.pin) throw new DaemonUsageError("--cpus and --no-pin exclude each other");
  return o;
}

/** A kernel CPU list ("0-3,6", as in *_list files and taskset -c); null when malformed. */
export function parseCpuList(s: string): number[] | null {
  const out = new Set<number>();
  const t = s.trim();
  if (t === "") return [];
  for (const part of t.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (m === null) return null;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b > 4095) return null;
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

/** A kernel CPU mask ("00000002", "ff,ffffffff": 32-bit hex groups, most significant first). */
export function parseCpuMask(s: string): number[] | null {
  const hex = s.trim().replace(/,/g, "");
  if (!/^[0-9a-fA-F]*$/.test(hex)) return null;
  const out: number[] = [];
  for (let i = 0; i < hex.length; i++) {
    const nib = Number.parseInt(hex[hex.length - 1 - i], 16);
    for (let b = 0; b < 4; b++) if ((nib >> b) & 1) out.push(i * 4 + b);
  }
  return out;
}

/** Where an interface's receive work runs: RPS masks of its queues, and its IRQs' affinity. */
export interface RxCpus {
  rps: number[];
  irq: number[];
}

function readOr(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/**
 * Reads /sys/class/net/IF/queues/rx-N/rps_cpus (the CPUs RPS hands the interface's frames to:
 * their softirq — the packet taps, our ring copy — runs there, net/core/dev.c get_rps_cpu) and the
 * affinity of the interface's IRQs (/proc/irq/N/effective_affinity_list, else smp_affinity_list;
 * without RPS the receive softirq runs where the IRQ lands). IRQs: the device's msi_irqs, its
 * legacy irq, and /proc/interrupts lines named after the interface (eth0-TxRx-0) or a virtio
 * device's input queues (virtio3-input.0). A veth has neither: its receive work runs on the
 * sending CPU, which nobody can know in advance.
 */
export function readRxCpus(ifname: string, sys = "/sys", proc = "/proc"): RxCpus {
  const rps = new Set<number>();
  const irqs = new Set<number>();
  let queues: string[] = [];
  try {
    queues = readdirSync(`${sys}/class/net/${ifname}/queues`).filter((q) => q.startsWith("rx-"));
  } catch {
    // no such interface here: nothing to avoid
  }
  for (const q of queues) {
    for (const c of parseCpuMask(readOr(`${sys}/class/net/${ifname}/queues/${q}/rps_cpus`) ?? "") ?? [])
      rps.add(c);
  }
  const dev = `${sys}/class/net/${ifname}/device`;
  for (const d of [dev, `${dev}/..`]) {
    try {
      for (const n of readdirSync(`${d}/msi_irqs`)) if (/^\d+$/.test(n)) irqs.add(Number(n));
    } catch {
      // not a PCI device
    }
  }
  const legacy = Number((readOr(`${dev}/irq`) ?? "").trim());
  if (Number.isInteger(legacy) && legacy > 0) irqs.add(legacy);
  let devName = "";
  try {
    devName = basename(readlinkSync(dev));
  } catch {
    // virtual interface
  }
  // msi_irqs of a PCI function also list its config/control vectors: keep those named for rx.
  const named = new Set<number>();
  for (const line of (readOr(`${proc}/interrupts`) ?? "").split("\n")) {
    const m = /^\s*(\d+):.*\s(\S+)\s*$/.exec(line);
    if (m === null) continue;
    const name = m[2];
    if (
      name.startsWith(`${ifname}-`) ||
      name === ifname ||
      (devName !== "" && name.startsWith(`${devName}-input`))
    )
      named.add(Number(m[1]));
  }
  const use = named.size > 0 ? named : irqs;
  const irq = new Set<number>();
  for (const n of use) {
    const list =
      readOr(`${proc}/irq/${n}/effective_affinity_list`) ?? readOr(`${proc}/irq/${n}/smp_affinity_list`);
    for (const c of parseCpuList(list ?? "") ?? []) irq.add(c);
  }
  return { rps: [...rps].sort((a, b) => a - b), irq: [...irq].sort((a, b) => a - b) };
}

/** Where the workers go: one CPU each, or null = not pinned. */
export interface CpuPlan {
  /** Per worker: the CPUs it is restricted to, or null (left to the scheduler). */
  cpus: (number[] | null)[];
  /** CPUs that take receive work, among those the process may use. */
  rx: number[];
  /** Whether some worker shares its CPU(s) with receive work. */
  shared: boolean;
  why: string;
}

/**
 * Worker w gets the w-th CPU (round robin) of: --cpus when given, else the CPUs this process may
 * use (its affinity at start: taskset/cpuset are respected) without those that take receive work.
 * When receive work covers every usable CPU there is nowhere to hide: workers stay unpinned (the
 * scheduler can at least move them off a CPU whose softirq load peaks) and the plan says shared.
 */
export function planCpus(
  allowed: readonly number[],
  rxWork: readonly number[],
  workers: number,
  opts: { cpus: number[] | null; pin: boolean },
): CpuPlan {
  const rxSet = new Set(rxWork);
  const rx = allowed.filter((c) => rxSet.has(c));
  const none = (why: string, shared: boolean): CpuPlan => ({
    cpus: Array.from({ length: workers }, () => null),
    rx,
    shared,
    why,
  });
  const each = (list: readonly number[]): (number[] | null)[] =>
    Array.from({ length: workers }, (_, w) => [list[w % list.length]]);
  if (opts.cpus !== null) {
    const cpus = each(opts.cpus);
    return { cpus, rx, shared: cpus.some((c) => c !== null && rxSet.has(c[0])), why: "--cpus" };
  }
  if (!opts.pin) return none("--no-pin", rx.length > 0);
  if (rx.length === 0) return none("no receive work pinned to known CPUs (RPS off, no IRQ found)", false);
  const free = allowed.filter((c) => !rxSet.has(c));
  if (free.length === 0) return none("receive work on every usable CPU", true);
  return { cpus: each(free), rx, shared: false, why: "CPUs without receive work" };
}

function sameGuard(a: Guard | null, b: Guard): boolean {
  return a !== null && JSON.stringify(a) === JSON.stringify(b);
}

/** Runs until SIGINT/SIGTERM (exit 0) or a fatal error (exit 1). */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  // Process-wide, so the workers' isolates compile the engine with it.
  setFlagsFromString(ENGINE_V8_FLAGS);
  const log = pino(
    { level: opts.logLevel, base: { pid: process.pid } },
    pino.destination({ fd: 2, sync: true }),
  );
  const control = resolveControlPath(opts.control);

  let nftVersion: string;
  try {
    nftVersion = checkNft();
  } catch (e) {
    log.fatal({ err: (e as Error).message }, "cannot start");
    return 1;
  }

  // The host is followed from the start: the netlink socket opens before the first reading, so a
  // change between the two is seen (host.ts). Without it (no netlink here) the reading stays as is.
  let watcher: HostWatcher | null = null;
  let applyHostChange: () => Promise<void> = async () => {};
  try {
    watcher = new HostWatcher({
      onSettled: () => applyHostChange(),
      onEvents: (events, lost) => log.debug({ events: events.length, lost }, "rtnetlink events"),
      onError: (e) => log.error({ err: e instanceof Error ? e.message : String(e) }, "host change failed"),
    });
  } catch (e) {
    log.warn(
      { err: (e as Error).message },
      "cannot watch the host (rtnetlink): interfaces, addresses and routes are read once",
    );
  }
  let host: HostState;
  let view: HostView;
  try {
    host = readHost();
    const pick = chooseServed(host.links, opts.ifaces, new Set());
    if (pick.skipped.length > 0)
      throw new Error(pick.skipped.map((x) => `interface ${x.name}: ${x.why}`).join("; "));
    view = hostView(host, pick.links);
  } catch (e) {
    watcher?.stop();
    log.fatal({ err: (e as Error).message }, "cannot read the interfaces");
    return 1;
  }
  if (view.interfaces.length === 0) {
    if (watcher === null) {
      log.fatal("no interface to serve (none up; give --iface)");
      return 1;
    }
    log.warn("no interface up yet: serving none until one comes up");
  }
  const ifaces = view.interfaces;
  const routes = view.routes;
  let ifnames = ifaces.map((i) => i.name);
  /** Served interfaces (ifindex) and their fanout group offsets, stable while they are served. */
  const served = new Map<number, number>(ifaces.map((i, k) => [i.ifindex, k]));
  let nextFanout = ifaces.length;
  let lastView = viewKey(view);
  let hostChanges = 0;
  let lastHostChange: number | null = null;
  const rxByIf = ifnames.map((n) => ({ name: n, ...readRxCpus(n) }));
  let allowed: number[] = [];
  try {
    allowed = threadAffinity();
  } catch (e) {
    log.warn({ err: (e as Error).message }, "cannot read the CPU affinity: workers not pinned");
  }
  const plan =
    allowed.length === 0
      ? planCpus([], [], opts.workers, { cpus: opts.cpus, pin: false })
      : planCpus(
          allowed,
          rxByIf.flatMap((r) => [...r.rps, ...r.irq]),
          opts.workers,
          opts,
        );
  log[plan.shared ? "warn" : "info"](
    { allowed, receive: rxByIf, workers: plan.cpus, why: plan.why },
    plan.shared
      ? "workers share CPUs with receive work (softirq): expect a receive livelock under overload"
      : "worker CPUs",
  );
  let locals = view.locals;
  log.info(
    {
      netns: netnsId(),
      interfaces: ifaces.map((i) => ({
        name: i.name,
        ifindex: i.ifindex,
        mtu: i.mtu,
        addrs: i.addrs.length,
      })),
      routes: routes.length,
      following: watcher !== null,
      hostVips: opts.hostVips,
      lips: opts.lips.length,
      ipForward: ipForward(),
      nft: nftVersion,
    },
    "starting",
  );

  // The control socket first: it is also the lock that keeps a second daemon of this namespace
  // away from the first one's guard and interfaces. Requests that arrive before the data plane is
  // up wait for it (a client may connect as soon as the socket file exists).
  const server = new ControlServer(control);
  let started: (ok: boolean) => void = () => {};
  const startedP = new Promise<boolean>((resolve) => {
    started = resolve;
  });
  let handler: Handler = async (req) =>
    (await startedP) ? handler(req) : { error: "the daemon failed to start" };
  try {
    await server.listen((req) => handler(req));
  } catch (e) {
    log.fatal({ err: (e as Error).message, control }, "cannot open the control socket");
    watcher?.stop();
    return 1;
  }

  // The guard goes in before the first packet socket opens: a table left by a crashed daemon is
  // replaced, and the LIPs are guarded from the start.
  let guard: Guard = { owned: [...new Set(opts.lips)].sort((a, b) => a - b), nat: [] };
  let nftUpdates = 0;
  try {
    applyGuard(ifnames, locals, guard);
    nftUpdates++;
  } catch (e) {
    log.fatal({ err: (e as Error).message }, "cannot install the nft guard");
    watcher?.stop();
    started(false);
    await server.close();
    return 1;
  }

  // Workers start one after the other: each joins the interfaces' fanout groups when it opens its
  // sockets, and a member's index in a group is its join order, which the fanout program relies on.
  const fanoutGroup = (process.pid * 8) & 0xfff8;
  const handles: WorkerHandle[] = [];
  const startWorker = (index: number): WorkerHandle => {
    const { port1, port2 } = new MessageChannel();
    const init: WorkerInit & { tsvsWorker: true } = {
      tsvsWorker: true,
      interfaces: ifaces,
      routes,
      hostLocal: opts.hostVips ? view.hostLocal : null,
      lips: lipsOfWorker(opts.lips, index, opts.workers),
      allLips: opts.lips,
      port: port2,
      idleMs: opts.idleMs,
      spinUs: opts.spinUs,
      batch: opts.batch ?? (opts.io === "ring" ? 256 : 64),
      cpus: plan.cpus[index] ?? undefined,
      nice: opts.nice,
      rtPrio: opts.rtPrio,
      rxKib: opts.rxKib,
      sysctls: opts.sysctls,
      io: opts.io,
      filter: opts.filter,
      qdiscBypass: opts.qdiscBypass,
      index,
      workers: opts.workers,
      fanoutGroup,
    };
    const worker = new Worker(new URL("./worker.js", import.meta.url), {
      workerData: init,
      transferList: [port2],
    });
    const h: WorkerHandle = {
      index,
      worker,
      port: port1,
      alive: true,
      pending: new Map(),
      ready: Promise.resolve({ owned: [], nat: [] }),
      done: Promise.resolve(),
    };
    let readyResolve: (g: Guard) => void = () => {};
    let fatal: (e: Error) => void = () => {};
    h.ready = new Promise<Guard>((resolve, reject) => {
      readyResolve = resolve;
      fatal = reject;
    });
    let stopped: () => void = () => {};
    h.done = new Promise<void>((resolve) => {
      stopped = resolve;
    });
    port1.on("message", (m: FromWorker) => {
      switch (m.type) {
        case "ready":
          readyResolve(m.guard);
          break;
        case "log":
          log[m.level]({ worker: index, ...(m.data ?? {}) }, m.msg);
          break;
        case "applied":
        case "snapshot":
        case "result":
        case "host":
        case "status": {
          const cb = h.pending.get(m.id);
          h.pending.delete(m.id);
          cb?.(m);
          break;
        }
        case "stopped":
          break;
      }
    });
    worker.on("error", (e) => {
      log.error({ worker: index, err: e.message, stack: e.stack }, "data plane worker failed");
      fatal(e);
      onFatal(e);
    });
    worker.on("exit", (code) => {
      h.alive = false;
      for (const cb of h.pending.values()) cb({ type: "log", level: "error", msg: "worker gone" });
      h.pending.clear();
      stopped();
      fatal(new Error(`data plane worker ${index} exited with code ${code}`));
      if (code !== 0) onFatal(new Error(`data plane worker ${index} exited with code ${code}`));
    });
    return h;
  };
  let nextId = 1;
  let onFatal: (e: Error) => void = () => {};
  const workersAlive = (): boolean => handles.length > 0 && handles.every((h) => h.alive);

  const askOne = (h: WorkerHandle, msg: WorkerRequest): Promise<FromWorker> =>
    new Promise((resolve, reject) => {
      if (!h.alive) {
        reject(new Error("the data plane is not running"));
        return;
      }
      const id = nextId++;
      h.pending.set(id, resolve);
      h.port.postMessage({ ...msg, id } satisfies ToWorker);
    });
  /** The same request to every worker (commands apply to all; listings are merged). */
  const ask = (msg: WorkerRequest): Promise<FromWorker[]> => Promise.all(handles.map((h) => askOne(h, msg)));

  const cleanup = async (server: ControlServer | null): Promise<void> => {
    watcher?.stop();
    if (server !== null) await server.close();
    await Promise.all(
      handles.map(async (h) => {
        if (h.alive) {
          h.port.postMessage({ type: "stop" } satisfies ToWorker);
          const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 2000).unref());
          if ((await Promise.race([h.done.then(() => "done" as const), timeout])) === "timeout") {
            log.warn({ worker: h.index }, "the data plane did not stop within 2 s: terminating it");
            await h.worker.terminate();
          }
        }
        h.port.close();
      }),
    );
    removeGuard();
  };

  try {
    const guards: Guard[] = [];
    for (let w = 0; w < opts.workers; w++) {
      const h = startWorker(w);
      handles.push(h);
      guards.push(await h.ready);
    }
    guard = mergeGuards(guards);
  } catch (e) {
    log.fatal({ err: (e as Error).message }, "the data plane did not start");
    started(false);
    await cleanup(server);
    return 1;
  }

  const hostStatus = (): HostStatus => ({
    following: watcher !== null,
    hostVips: opts.hostVips,
    interfaces: host.links.map((l) => ({
      name: l.name,
      ifindex: l.ifindex,
      state: l.operstate,
      up: l.up,
      carrier: l.lowerUp,
      served: served.has(l.ifindex),
      addrs: l.addrs.map((a) => `${formatIPv4(a.addr)}/${a.prefix}`),
    })),
    routes: routeCount,
    changes: hostChanges,
    updates: hostUpdates,
    lastChange: lastHostChange === null ? null : new Date(lastHostChange).toISOString(),
    rtnetlink: watcher === null ? null : { ...watcher.counters },
  });

  const updateGuard = (g: Guard): string | null => {
    if (sameGuard(guard, g)) return null;
    try {
      applyGuard(ifnames, locals, g);
      guard = g;
      nftUpdates++;
      log.info({ owned: g.owned.length, nat: g.nat.length }, "nft guard updated");
      return null;
    } catch (e) {
      log.error({ err: (e as Error).message }, "nft guard update failed");
      return (e as Error).message;
    }
  };

  // ------------------------------------------------------------------ host changes (host.ts)
  // After a burst of rtnetlink events has settled: read the host again, log what changed, and
  // bring the guard and every worker to the new view. The guard goes first, so that a new
  // interface's ingress chain exists before its packet socket takes frames; workers are updated
  // one after the other, as they started, so that new fanout groups keep the members' order.
  let hostUpdates = 0;
  let routeCount = routes.length;
  const hostUpdate = (v: HostView, without: ReadonlySet<number>): HostUpdate => {
    const interfaces = v.interfaces.filter((i) => !without.has(i.ifindex));
    const idx = new Set(interfaces.map((i) => i.ifindex));
    return {
      interfaces,
      routes: v.routes.filter((r) => idx.has(r.ifindex)),
      hostLocal: opts.hostVips ? v.hostLocal : null,
      fanout: interfaces.map((i) => (fanoutGroup + (served.get(i.ifindex) ?? 0)) & 0xffff),
    };
  };
  const sendHost = async (u: HostUpdate): Promise<boolean> => {
    let ok = true;
    for (const h of handles) {
      const m = await askOne(h, { type: "host", ...u }).catch(() => null);
      if (m === null || m.type !== "host") {
        ok = false;
        continue;
      }
      const r: HostApplied = m;
      if (r.opened.length > 0 || r.closed.length > 0)
        log.info({ worker: h.index, opened: r.opened, closed: r.closed }, "packet sockets follow the host");
      for (const e of r.errors) log.warn({ worker: h.index, ...e }, "cannot open a packet socket (retrying)");
      if (r.errors.length > 0) ok = false;
    }
    return ok;
  };
  applyHostChange = async (): Promise<void> => {
    let next: HostState;
    try {
      next = readHost();
    } catch (e) {
      log.error({ err: (e as Error).message }, "cannot read the host (retrying)");
      watcher?.poke(1000);
      return;
    }
    const changes = diffHost(host, next);
    const before = new Map(view.interfaces.map((i) => [i.ifindex, i]));
    const pick = chooseServed(next.links, opts.ifaces, new Set(served.keys()));
    const nextView = hostView(next, pick.links);
    host = next;
    for (const c of changes) log.info(c, `host: ${c.what}`);
    if (changes.length > 0) {
      hostChanges++;
      lastHostChange = Date.now();
    }
    const key = viewKey(nextView);
    if (key === lastView) return;
    const now = new Set(nextView.interfaces.map((i) => i.ifindex));
    for (const i of nextView.interfaces)
      if (!served.has(i.ifindex)) {
        served.set(i.ifindex, nextFanout++);
        log.info({ name: i.name, ifindex: i.ifindex }, "serving a new interface");
      }
    for (const [ifindex] of served)
      if (!now.has(ifindex)) {
        served.delete(ifindex);
        log.info({ name: before.get(ifindex)?.name, ifindex }, "no longer serving an interface");
      }
    // A socket learns its interface's MAC and MTU when it opens (its transmit slots are sized from
    // the MTU): an interface whose MAC or MTU changed is closed and opened again, by every worker
    // in turn and in two steps, so that the fanout group is rebuilt in the workers' order.
    const reopen = new Set<number>();
    for (const i of nextView.interfaces) {
      const o = before.get(i.ifindex);
      if (o !== undefined && (o.mtu !== i.mtu || o.mac.some((b, k) => b !== i.mac[k]))) reopen.add(i.ifindex);
    }
    view = nextView;
    ifnames = nextView.interfaces.map((i) => i.name);
    locals = nextView.locals;
    routeCount = nextView.routes.length;
    try {
      applyGuard(ifnames, locals, guard);
      nftUpdates++;
    } catch (e) {
      // Most likely an interface went away between the reading and nft: read again shortly.
      log.error({ err: (e as Error).message }, "nft guard update failed (retrying)");
      lastView = "";
      watcher?.poke(1000);
      return;
    }
    let ok = true;
    if (reopen.size > 0) ok = await sendHost(hostUpdate(nextView, reopen));
    ok = (await sendHost(hostUpdate(nextView, new Set()))) && ok;
    hostUpdates++;
    lastHostChange = Date.now();
    log.info(
      { interfaces: ifnames, locals: locals.length, routes: routeCount, hostVips: opts.hostVips },
      "host change applied",
    );
    lastView = ok ? key : "";
    if (!ok) watcher?.poke(1000);
  };

  handler = async (req: Request): Promise<Response> => {
    if (req.op === "apply") {
      const ms = await ask({ type: "apply", cmds: req.commands });
      const rs = ms.flatMap((m) => (m.type === "applied" ? [m] : []));
      if (rs.length !== ms.length) return { error: "the data plane stopped" };
      const first = rs[0].error;
      if (rs.some((r) => r.error?.code !== first?.code))
        log.error({ codes: rs.map((r) => r.error?.code ?? "ok") }, "workers disagree");
      const gErr = updateGuard(mergeGuards(rs.map((r) => r.guard)));
      log.debug({ commands: req.commands.length, error: first?.message }, "apply");
      if (first !== undefined) return { error: first.message, code: first.code, index: first.index };
      return gErr === null
        ? { applied: req.commands.length }
        : { applied: req.commands.length, warning: `the kernel guard was not updated: ${gErr}` };
    }
    if (req.op === "table") {
      const ms = await ask({ type: "snapshot", conns: req.conns === true });
      const ts = ms.flatMap((m) => (m.type === "snapshot" ? [m.table] : []));
      if (ts.length !== ms.length) return { error: "the data plane stopped" };
      return { table: mergeTables(ts) };
    }
    if (req.op === "reload") {
      if (config === null) return { error: "the daemon runs without --config: nothing to reload" };
      const errors = await config.reload();
      return errors === "" ? { reloaded: config.path } : { error: errors };
    }
    if (req.op === "sysctl" || req.op === "fwmark") {
      const ms = await ask(
        req.op === "sysctl"
          ? { type: "sysctl", name: req.name, value: req.value }
          : { type: "fwmark", action: req.action, rule: req.rule },
      );
      const results = ms.flatMap((m) => (m.type === "result" ? [m] : []));
      if (results.length !== ms.length) return { error: "the data plane stopped" };
      const m = results[0];
      log.info({ req }, req.op);
      const gErr = updateGuard(mergeGuards(results.map((r) => r.guard)));
      if (gErr !== null && !("error" in m.response))
        return { error: `applied, but the kernel guard was not updated: ${gErr}` };
      return m.response;
    }
    const ms = await ask({ type: "status" });
    const sts = ms.flatMap((m) => (m.type === "status" ? [m.status] : []));
    if (sts.length !== ms.length) return { error: "the data plane stopped" };
    const ws: WorkerStatus = mergeStatus(sts);
    const status: DaemonStatus = {
      ...ws,
      version: PROTOCOL_VERSION,
      pid: process.pid,
      control,
      netns: netnsId(),
      nft: {
        table: `${NFT_FAMILY} ${NFT_TABLE}`,
        vips: guard.owned.length,
        natDests: guard.nat.length,
        updates: nftUpdates,
      },
      worker: { alive: workersAlive(), restarts: 0 },
      host: hostStatus(),
    };
    if (config !== null)
      status.config = { file: config.path, reloads: config.reloads, health: config.health() };
    return { status };
  };

  // --config: the file's services go in through the same path as any control batch (atomic,
  // guard kept up to date); its health checks keep them true from now on.
  let config: DaemonConfig | null = null;
  if (opts.config !== undefined) {
    const apply = async (commands: ControlCommand[]): Promise<void> => {
      const r = await handler({ op: "apply", commands });
      if ("error" in r) throw new Error(r.error);
    };
    const cfg = new DaemonConfig(opts.config, { apply, log });
    try {
      await cfg.start();
      config = cfg;
    } catch (e) {
      log.fatal({ err: (e as Error).message, file: opts.config }, "cannot apply the configuration");
      started(false);
      await cleanup(server);
      return 1;
    }
  }

  started(true);
  watcher?.start();
  log.info(
    { control, interfaces: ifnames, io: opts.io, workers: opts.workers, filter: opts.filter },
    "ready",
  );

  return await new Promise<number>((resolve) => {
    let exiting = false;
    const exit = (code: number, why: string): void => {
      if (exiting) return;
      exiting = true;
      log.info({ why }, "stopping");
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      process.off("SIGHUP", onHup);
      (config?.stop() ?? Promise.resolve())
        .then(() => cleanup(server))
        .then(
          () => {
            log.info("stopped; nft guard removed");
            resolve(code);
          },
          (e) => {
            log.error({ err: String(e) }, "cleanup failed");
            resolve(1);
          },
        );
    };
    const onInt = (): void => exit(0, "SIGINT");
    const onTerm = (): void => exit(0, "SIGTERM");
    // SIGHUP: re-read --config; a broken file is logged and changes nothing.
    const onHup = (): void => {
      if (config === null) log.warn("SIGHUP without --config: nothing to reload");
      else config.reload().catch((e) => log.error({ err: String(e) }, "reload failed"));
    };
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    process.on("SIGHUP", onHup);
    onFatal = (e) => exit(1, e.message);
    if (!workersAlive()) exit(1, "data plane worker exited");
  });
}

type WorkerRequest =
  | { type: "apply"; cmds: ControlCommand[] }
  | { type: "snapshot"; conns: boolean }
  | { type: "status" }
  | { type: "sysctl"; name?: string; value?: number }
  | { type: "fwmark"; action: FwmarkAction; rule?: string }
  | ({ type: "host" } & HostUpdate);

interface WorkerHandle {
  index: number;
  worker: Worker;
  port: MessagePort;
  alive: boolean;
  pending: Map<number, (m: FromWorker) => void>;
  ready: Promise<Guard>;
  done: Promise<void>;
}

/** The union of the workers' guards (each owns its share of the LIPs), sorted as guardOf sorts. */
export function mergeGuards(gs: readonly Guard[]): Guard {
  const owned = new Set<number>();
  const nat = new Map<string, Guard["nat"][number]>();
  for (const g of gs) {
    for (const a of g.owned) owned.add(a);
    for (const d of g.nat) nat.set(`${d.addr}/${d.proto}/${d.port}`, d);
  }
  return {
    owned: [...owned].sort((a, b) => a - b),
    nat: [...nat.values()].sort((a, b) => a.addr - b.addr || a.proto - b.proto || a.port - b.port),
  };
}

/** The daemon's status over all workers: counters, drops and interface figures summed. */
export function mergeStatus(sts: readonly WorkerStatus[]): WorkerStatus {
  if (sts.length === 1) return sts[0];
  const base = structuredClone(sts[0]);
  for (const st of sts.slice(1)) {
    base.loops += st.loops;
    base.batches += st.batches;
    base.busyMs += st.busyMs;
    base.connections += st.connections;
    for (const [k, v] of Object.entries(st.counters)) {
      if (k !== "workers") base.counters[k] = (base.counters[k] ?? 0) + v;
    }
    for (const [k, v] of Object.entries(st.drops)) base.drops[k] = (base.drops[k] ?? 0) + v;
    st.interfaces.forEach((ifs) => {
      // By ifindex: a worker that could not open one interface's socket lists one fewer.
      const b = base.interfaces.find((x) => x.ifindex === ifs.ifindex);
      if (b === undefined) return;
      b.rxFrames += ifs.rxFrames;
      b.txFrames += ifs.txFrames;
      b.rxTruncated += ifs.rxTruncated;
      if (b.rxAggregates !== undefined) b.rxAggregates += ifs.rxAggregates ?? 0;
      if (b.txAggregates !== undefined) b.txAggregates += ifs.txAggregates ?? 0;
      if (b.rxOversize !== undefined) b.rxOversize += ifs.rxOversize ?? 0;
      b.txDropped += ifs.txDropped;
      b.txErrors += ifs.txErrors;
      b.kernelDrops += ifs.kernelDrops;
    });
  }
  return base;
}
