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
import pino, { type Logger } from "pino";
import { bgpVips } from "../config/bird.js";
import { BGP_DEFAULTS } from "../config/model.js";
import { type ControlCommand, sysctlError, sysctlFields } from "../control/commands.js";
import { parseIPv4 } from "../core/addr.js";
import { DEFAULT_SYSCTLS, ENGINE_V8_FLAGS, type Sysctls } from "../core/engine.js";
import { TsvsError } from "../core/errors.js";
import type { HaConfig } from "../core/vrrp/config.js";
import { IO_BACKENDS, type IoBackend } from "../io/frame-io.js";
import { threadAffinity } from "../io/libc.js";
import { XDP_FRAMES, XdpShare } from "../io/xdp-share.js";
import { BgpAnnouncer, bgpConfigOf } from "./bgp.js";
import { DaemonConfig } from "./config-runner.js";
import { ControlServer, type Handler } from "./control.js";
import { HostFollower } from "./follow.js";
import { HaDaemon } from "./ha.js";
import { HostWatcher } from "./host.js";
import { DEFAULT_HTTP, formatHttpAddr, type HttpAddr, HttpEndpoint, parseHttpAddr } from "./http.js";
import { ipForward } from "./kernel.js";
import { checkNft, NftGuard } from "./nft.js";
import { mergeGuards, WorkerPool } from "./pool.js";
import { logPrivileges } from "./privileges.js";
import { netnsId, parseSysctlArg, resolveControlPath } from "./protocol.js";
import { handleRequest, type RequestContext } from "./requests.js";
import { SyncDaemons } from "./sync.js";
import { initialOwnership } from "./vrrp.js";
import { lipsOfWorker, type ReadAhead, type VrrpOwnership, type WorkerInit } from "./worker.js";

/** --warmup-ms default (docs/bench.md "The latency tail": measured on the bench topology). */
export const DEFAULT_WARMUP_MS = 1000;

/** --spin-us default (docs/daemon.md "Latency": measured on the bench topology). */
export const DEFAULT_SPIN_US = 0;

export const DAEMON_USAGE = `Usage: tsvs daemon [--iface IF]... [--lip ADDR]... [--sysctl NAME=VALUE]... [--control PATH]
                   [--log-level LEVEL] [--idle-ms N] [--spin-us N] [--io mmsg|ring|xdp|auto]
                   [--workers N] [--warmup-ms N] [--read-ahead auto|on|off]
                   [--no-filter] [--qdisc-bypass] [--config FILE] [--cpus LIST | --no-pin]
                   [--rx-kib N] [--conn-capacity N] [--host-vips] [--http ADDR:PORT|off] [--http-token-file FILE]
                   [--keep-caps] [--bgp FILE]

Runs the director in the foreground, in the current network namespace. With no argument it serves
every Ethernet interface that is up (not lo, not a bridge or bond port) and follows the host:
interfaces that come up or go away, addresses and routes that change (docs/daemon.md).
  --iface IF         an interface to serve (repeatable; default: every up, non-loopback Ethernet one,
                     followed as interfaces come and go)
  --lip ADDR         a FULLNAT local address (repeatable)
  --sysctl NAME=V    a director sysctl, as /proc/sys/net/ipv4/vs names it (repeatable): conn_reuse_mode,
                     expire_nodest_conn, expire_quiescent_template, sloppy_tcp, sync_threshold (=3,50),
                     sync_refresh_period, sync_retries, sync_version, sync_persist_mode,
                     sync_table_refresh (=1), sync_table_rate (=4000), amemthresh,
                     am_droprate, drop_entry, drop_packet, secure_tcp; at run time: tsvs sysctl
  --control PATH     control socket (default: $TSVS_CONTROL, else /run/tsvs/control.sock in the
                     host namespace, /run/tsvs/netns-<inode>/control.sock in others)
  --log-level LEVEL  trace|debug|info|warn|error|fatal|silent (default info)
  --idle-ms N        poll timeout of the data-plane loop when idle (default 10; 0 = busy-poll,
                     never sleep: lowest latency, one core at 100 %)
  --spin-us N        keep receiving this long after the last frame before sleeping in poll(2)
                     (default ${DEFAULT_SPIN_US}; 0 = sleep at once): spares the wake-up of a sleeping
                     thread at low rates, for at most N µs of CPU per quiet spell
  --io mmsg|ring|xdp|auto
                     packet I/O (docs/io.md): recvmmsg batches (default: lowest latency), the
                     TPACKET_V3 mmap ring (more packets per second under load, ~1 ms added at low
                     rates), or AF_XDP (experimental: an XDP program hands the owned traffic to
                     AF_XDP sockets; an interface where it cannot attach gets mmsg, with a log
                     line); auto is mmsg for now
  --warmup-ms N      before reading its first frame, each worker runs traffic of every method
                     through a throwaway engine on the in-memory lab for N ms (default
                     ${DEFAULT_WARMUP_MS}; 0 = none), so that V8 compiles the data path before real
                     traffic needs it rather than during it (docs/bench.md "The latency tail")
  --read-ahead auto|on|off
                     before the engine takes a received batch, load the connection-table lines its
                     lookups will read, so that their cache misses overlap (docs/bench.md "Reading
                     a batch ahead"); auto (default): once a worker's table outgrows the CPU's
                     last-level cache (64 bytes an entry: 524288 entries for 32 MiB)
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
  --rx-kib N         receive buffer per socket in KiB (mmsg: SO_RCVBUF, default 4096; ring: the
                     ring size, default 8192, in 128 KiB blocks): room for bursts of aggregates
  --conn-capacity N  entries of each worker's connection table, allocated at start (default 65536):
                     the bound the defence's availmem is measured against (docs/daemon.md "Defence
                     against table exhaustion")
  --host-vips        serve a virtual service's address only while the host has it (an address of
                     one of its interfaces, or a local route), as the kernel's IPVS does: for VIPs
                     that VRRP (keepalived) moves between directors. Default: every VIP, anywhere
  --http ADDR:PORT   the HTTP endpoint: Prometheus /metrics and the REST API /api/v1 (default
                     ${DEFAULT_HTTP}, in the daemon's namespace; off = none)
  --http-token-file FILE
                     the REST API's bearer token (its first line); default: <control dir>/http.token,
                     created at first start (mode 0600); refused when others may read or write it
  --bgp FILE         announce the VIPs over BGP through BIRD with the bgp section of the YAML FILE
                     (for a keepalived.conf --config, which has no BGP; a YAML --config has its own
                     bgp section): docs/scale-out.md
  --keep-caps        keep every capability the daemon was started with. Default: it executes
                     itself again at once with only CAP_NET_ADMIN and CAP_NET_RAW (docs/daemon.md
                     "Privileges"), no_new_privs set
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
  rxKib: number | undefined;
  /** --conn-capacity: entries of each worker's connection table; undefined = the engine's default. */
  connCapacity: number | undefined;
  /** --host-vips: a VIP is served only while it is one of the host's local addresses. */
  hostVips: boolean;
  /** --http: where /metrics is served; null = off. */
  http: HttpAddr | null;
  /** --http-token-file: the REST API's token; undefined = <control dir>/http.token. */
  httpTokenFile: string | undefined;
  /** false with --keep-caps: the daemon keeps the capabilities it was started with. */
  dropCaps: boolean;
  /** --bgp: a YAML file whose bgp section announces the VIPs (daemon/bgp.ts). */
  bgp: string | undefined;
  /** --warmup-ms: each worker's warm-up before its first frame (warmup.ts). */
  warmupMs: number;
  /** --read-ahead: when a worker reads a received batch's table lines ahead (Engine.aheadFrame). */
  readAhead: ReadAhead;
}

const LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

export class DaemonUsageError extends Error {}

function defaultOptions(): DaemonOptions {
  return {
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
    rxKib: undefined,
    connCapacity: undefined,
    hostVips: false,
    http: parseHttpAddr(DEFAULT_HTTP),
    httpTokenFile: undefined,
    dropCaps: true,
    bgp: undefined,
    warmupMs: DEFAULT_WARMUP_MS,
    readAhead: "auto",
  };
}

function int(name: string, v: string, lo: number, hi: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new DaemonUsageError(`${name} must be ${lo}..${hi}`);
  return n;
}

/** One option: its spellings, and what it does to the options (`v` is its value when it takes one). */
interface DaemonFlag {
  names: readonly string[];
  takesValue: boolean;
  apply(o: DaemonOptions, v: string, name: string): void;
}

const DAEMON_FLAGS: readonly DaemonFlag[] = [
  {
    names: ["--iface", "-i"],
    takesValue: true,
    apply: (o, v) => {
      o.ifaces.push(v);
    },
  },
  {
    names: ["--lip"],
    takesValue: true,
    apply: (o, v) => {
      const addr = parseIPv4(v);
      if (addr === null) throw new DaemonUsageError(`--lip: bad IPv4 address ${JSON.stringify(v)}`);
      o.lips.push(addr);
    },
  },
  {
    names: ["--control"],
    takesValue: true,
    apply: (o, v) => {
      o.control = v;
    },
  },
  {
    names: ["--config"],
    takesValue: true,
    apply: (o, v) => {
      o.config = v;
    },
  },
  {
    names: ["--sysctl"],
    takesValue: true,
    apply: (o, v) => {
      const p = parseSysctlArg(v);
      if ("error" in p) throw new DaemonUsageError(`--sysctl: ${p.error}`);
      if (p.value === undefined) throw new DaemonUsageError(`--sysctl: ${p.name} needs =VALUE`);
      const current = { ...DEFAULT_SYSCTLS, ...o.sysctls } as unknown as Record<string, unknown>;
      const why = sysctlError(p.name, p.value, "value2" in p ? p.value2 : undefined, current);
      if (why !== null) throw new DaemonUsageError(`--sysctl: ${why}`);
      Object.assign(o.sysctls, sysctlFields(p.name, p.value, "value2" in p ? p.value2 : undefined));
    },
  },
  {
    names: ["--log-level"],
    takesValue: true,
    apply: (o, v) => {
      if (!LEVELS.has(v)) throw new DaemonUsageError(`--log-level: unknown level ${JSON.stringify(v)}`);
      o.logLevel = v;
    },
  },
  {
    names: ["--warmup-ms"],
    takesValue: true,
    apply: (o, v, n) => {
      o.warmupMs = int(n, v, 0, 60000);
    },
  },
  {
    names: ["--read-ahead"],
    takesValue: true,
    apply: (o, v) => {
      if (v !== "auto" && v !== "on" && v !== "off")
        throw new DaemonUsageError(`--read-ahead: auto, on or off, not ${JSON.stringify(v)}`);
      o.readAhead = v;
    },
  },
  {
    names: ["--idle-ms"],
    takesValue: true,
    apply: (o, v, n) => {
      o.idleMs = int(n, v, 0, 1000);
    },
  },
  {
    names: ["--spin-us"],
    takesValue: true,
    apply: (o, v, n) => {
      o.spinUs = int(n, v, 0, 100000);
    },
  },
  {
    names: ["--io"],
    takesValue: true,
    apply: (o, v) => {
      // auto: the packet socket, which forwards GSO/GRO aggregates whole; XDP gets MTU-sized frames
      // only and moves a tenth of the bulk TCP (docs/io.md, "Why `auto` is still `mmsg`").
      const io = v === "auto" ? "mmsg" : v;
      if (!IO_BACKENDS.includes(io as IoBackend))
        throw new DaemonUsageError(`--io: mmsg, ring, xdp or auto, not ${JSON.stringify(v)}`);
      o.io = io as IoBackend;
    },
  },
  {
    names: ["--workers"],
    takesValue: true,
    apply: (o, v, n) => {
      o.workers = int(n, v, 1, 64);
    },
  },
  {
    names: ["--no-filter"],
    takesValue: false,
    apply: (o) => {
      o.filter = false;
    },
  },
  {
    names: ["--qdisc-bypass"],
    takesValue: false,
    apply: (o) => {
      o.qdiscBypass = true;
    },
  },
  {
    names: ["--cpus"],
    takesValue: true,
    apply: (o, v) => {
      const cpus = parseCpuList(v);
      if (cpus === null || cpus.length === 0)
        throw new DaemonUsageError(`--cpus: a CPU list such as 0,2-3, not ${JSON.stringify(v)}`);
      o.cpus = cpus;
    },
  },
  {
    names: ["--no-pin"],
    takesValue: false,
    apply: (o) => {
      o.pin = false;
    },
  },
  {
    names: ["--rx-kib"],
    takesValue: true,
    apply: (o, v, n) => {
      o.rxKib = int(n, v, 128, 1 << 20);
    },
  },
  {
    names: ["--conn-capacity"],
    takesValue: true,
    apply: (o, v, n) => {
      o.connCapacity = int(n, v, 1, 1 << 24);
    },
  },
  {
    names: ["--host-vips"],
    takesValue: false,
    apply: (o) => {
      o.hostVips = true;
    },
  },
  {
    names: ["--http"],
    takesValue: true,
    apply: (o, v) => {
      if (v === "off") o.http = null;
      else {
        const a = parseHttpAddr(v);
        if (a === null) throw new DaemonUsageError(`--http: ADDR:PORT or off, not ${JSON.stringify(v)}`);
        o.http = a;
      }
    },
  },
  {
    names: ["--http-token-file"],
    takesValue: true,
    apply: (o, v) => {
      if (v === "") throw new DaemonUsageError("--http-token-file needs a file");
      o.httpTokenFile = v;
    },
  },
  {
    names: ["--bgp"],
    takesValue: true,
    apply: (o, v) => {
      if (v === "") throw new DaemonUsageError("--bgp needs a file");
      o.bgp = v;
    },
  },
  {
    names: ["--keep-caps"],
    takesValue: false,
    apply: (o) => {
      o.dropCaps = false;
    },
  },
];

const FLAG_BY_NAME = new Map(DAEMON_FLAGS.flatMap((f) => f.names.map((n) => [n, f] as const)));

/** `tsvs daemon` arguments (DAEMON_USAGE); throws DaemonUsageError naming the bad one. */
export function parseDaemonArgs(args: readonly string[]): DaemonOptions {
  const o = defaultOptions();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const eq = a.indexOf("=");
    const name = a.startsWith("--") && eq > 0 ? a.slice(0, eq) : a;
    const flag = FLAG_BY_NAME.get(name);
    if (flag === undefined) throw new DaemonUsageError(`unknown argument ${JSON.stringify(a)}`);
    let v = "";
    if (flag.takesValue) {
      if (a.startsWith("--") && eq > 0) v = a.slice(eq + 1);
      else if (i + 1 < args.length) v = args[++i];
      else throw new DaemonUsageError(`${name} needs a value`);
    } else if (eq > 0 && a.startsWith("--")) throw new DaemonUsageError(`${name} takes no value`);
    flag.apply(o, v, name);
  }
  if (o.cpus !== null && !o.pin) throw new DaemonUsageError("--cpus and --no-pin exclude each other");
  if (o.bgp !== undefined && o.config === undefined)
    throw new DaemonUsageError("--bgp needs --config: the VIPs and their quorum come from it");
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

/** The named steps of a daemon's life, in order; runDaemon strings them together. */

function openLog(opts: DaemonOptions): Logger {
  return pino({ level: opts.logLevel, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}

/**
 * The host is followed from the start: the netlink socket opens before the first reading, so a
 * change between the two is seen (host.ts). Without it (no netlink here) the reading stays as is.
 */
function openWatcher(log: Logger, onSettled: () => Promise<void>): HostWatcher | null {
  try {
    return new HostWatcher({
      onSettled,
      onEvents: (events, lost) => log.debug({ events: events.length, lost }, "rtnetlink events"),
      onError: (e) => log.error({ err: e instanceof Error ? e.message : String(e) }, "host change failed"),
    });
  } catch (e) {
    log.warn(
      { err: (e as Error).message },
      "cannot watch the host (rtnetlink): interfaces, addresses and routes are read once",
    );
    return null;
  }
}

/** Where the workers run (docs/daemon.md "CPU placement"): off the CPUs that take receive work. */
function placeWorkers(opts: DaemonOptions, ifnames: readonly string[], log: Logger): CpuPlan {
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
  return plan;
}

/** What worker `index` starts with. */
function workerInit(
  opts: DaemonOptions,
  host: HostFollower,
  plan: CpuPlan,
  fanoutGroup: number,
  index: number,
  vrrp: VrrpOwnership,
): Omit<WorkerInit, "port"> {
  return {
    vrrp,
    interfaces: host.view.interfaces,
    routes: host.view.routes,
    hostLocal: host.hostLocal,
    lips: lipsOfWorker(opts.lips, index, opts.workers),
    allLips: opts.lips,
    idleMs: opts.idleMs,
    spinUs: opts.spinUs,
    warmupMs: opts.warmupMs,
    readAhead: opts.readAhead,
    batch: opts.io === "ring" ? 256 : 64,
    cpus: plan.cpus[index] ?? undefined,
    rxKib: opts.rxKib,
    connCapacity: opts.connCapacity,
    sysctls: opts.sysctls,
    io: opts.io,
    filter: opts.filter,
    qdiscBypass: opts.qdiscBypass,
    index,
    workers: opts.workers,
    fanoutGroup,
  };
}

/**
 * SIGINT, SIGTERM and SIGHUP, caught from the daemon's first moment: a stop asked for while it
 * starts is kept until the start has ended, then runs the same cleanup as later (the nft guard, the
 * control socket). Uncaught, such a signal killed the process on the spot, with both left behind.
 */
class DaemonSignals {
  /** The stop asked for before untilExit took over, if any. */
  private pending: string | null = null;
  private onStop: ((why: string) => void) | null = null;
  /** SIGHUP's action; none while the daemon starts. */
  onHup: () => void = () => {};
  private readonly int = (): void => this.stop("SIGINT");
  private readonly term = (): void => this.stop("SIGTERM");
  private readonly hup = (): void => this.onHup();

  constructor() {
    process.on("SIGINT", this.int);
    process.on("SIGTERM", this.term);
    process.on("SIGHUP", this.hup);
  }

  private stop(why: string): void {
    if (this.onStop !== null) this.onStop(why);
    else this.pending ??= why;
  }

  /** From now on a stop calls cb, at once if one was asked for already. */
  whenStopped(cb: (why: string) => void): void {
    this.onStop = cb;
    if (this.pending !== null) cb(this.pending);
  }

  dispose(): void {
    process.off("SIGINT", this.int);
    process.off("SIGTERM", this.term);
    process.off("SIGHUP", this.hup);
  }
}

/**
 * Resolves with the exit code when a signal or a failed worker ends the daemon; `ready` runs once
 * the daemon answers to both, unless a stop was asked for while it started.
 */
function untilExit(
  pool: WorkerPool,
  config: () => DaemonConfig | null,
  log: Logger,
  signals: DaemonSignals,
  stop: () => Promise<void>,
  ready: () => void,
): Promise<number> {
  return new Promise<number>((resolve) => {
    let exiting = false;
    const exit = (code: number, why: string): void => {
      if (exiting) return;
      exiting = true;
      log.info({ why }, "stopping");
      signals.dispose();
      (config()?.stop() ?? Promise.resolve()).then(stop).then(
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
    // SIGHUP: re-read --config; a broken file is logged and changes nothing.
    signals.onHup = (): void => {
      const c = config();
      if (c === null) log.warn("SIGHUP without --config: nothing to reload");
      else c.reload().catch((e) => log.error({ err: String(e) }, "reload failed"));
    };
    pool.onFatal = (e) => exit(1, e.message);
    signals.whenStopped((why) => exit(0, why));
    if (!pool.alive()) exit(1, "data plane worker exited");
    if (!exiting) ready();
  });
}

export async function runDaemon(opts: DaemonOptions): Promise<number> {
  // Process-wide, so the workers' isolates compile the engine with it.
  setFlagsFromString(ENGINE_V8_FLAGS);
  // gc() in the workers' isolates (created after this): a worker collects its warm-up's garbage
  // before its first frame (warmup.ts).
  setFlagsFromString("--expose-gc");
  const signals = new DaemonSignals();
  try {
    return await startDaemon(opts, signals);
  } finally {
    signals.dispose();
  }
}

async function startDaemon(opts: DaemonOptions, signals: DaemonSignals): Promise<number> {
  const log = openLog(opts);
  logPrivileges(log, opts);
  const control = resolveControlPath(opts.control);
  let nftVersion: string;
  try {
    nftVersion = checkNft();
  } catch (e) {
    log.fatal({ err: (e as Error).message }, "cannot start");
    return 1;
  }

  let follower: HostFollower | null = null;
  let guard: NftGuard | null = null;
  const pool = new WorkerPool(log);
  const watcher = openWatcher(log, async () => {
    if (follower !== null && guard !== null) await follower.apply(guard, pool);
    // --host-vips: a VIP the host gained or lost is announced or withdrawn.
    if (opts.hostVips) bgp?.update();
  });
  try {
    follower = new HostFollower(
      { ifaces: opts.ifaces, hostVips: opts.hostVips, fanoutGroup: (process.pid * 8) & 0xfff8 },
      log,
      watcher,
    );
  } catch (e) {
    watcher?.stop();
    log.fatal({ err: (e as Error).message }, "cannot read the interfaces");
    return 1;
  }
  const host = follower;
  const view = host.view;
  if (view.interfaces.length === 0) {
    if (watcher === null) {
      log.fatal("no interface to serve (none up; give --iface)");
      return 1;
    }
    log.warn("no interface up yet: serving none until one comes up");
  }
  const plan = placeWorkers(opts, host.ifnames, log);
  // VRRP's addresses are held back from the first frame on (an instance starts in BACKUP): read
  // the file's vrrp sections before the workers start. Its errors are reported below, where the
  // file is applied.
  let ha: HaConfig | null = null;
  let bgp: BgpAnnouncer | null = null;
  const configFile =
    opts.config === undefined
      ? null
      : new DaemonConfig(opts.config, {
          apply: async (commands: ControlCommand[]): Promise<void> => {
            const r = await handleRequest(ctx, { op: "apply", commands });
            if ("error" in r) throw new TsvsError("code" in r ? r.code : "TSVS_ERR_INTERNAL", r.error);
          },
          log,
          // A reload may change the bgp settings (either file); health changes only quorum.
          onChange: (why) => {
            if (bgp !== null && configFile !== null)
              bgp.update(why === "reload" ? bgpConfigOf(configFile, opts.bgp, log) : undefined);
          },
          // VRRP before the virtual servers: an address a new instance holds back is never served
          // in between by a director that is its BACKUP.
          reloadHa: (next) => haDaemon.reload(next),
        });
  if (configFile !== null) {
    try {
      ha = (await configFile.peek()).ha;
    } catch {
      ha = null;
    }
  }
  log.info(
    {
      netns: netnsId(),
      interfaces: view.interfaces.map((i) => ({
        name: i.name,
        ifindex: i.ifindex,
        mtu: i.mtu,
        addrs: i.addrs.length,
      })),
      routes: view.routes.length,
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
  let config: DaemonConfig | null = null;
  const ctx: RequestContext = {
    pool,
    guard: new NftGuard(
      host.ifnames,
      view.locals,
      { owned: [...new Set(opts.lips)].sort((a, b) => a - b), nat: [] },
      view.locals6,
    ),
    host,
    log,
    control,
    config: () => config,
  };
  guard = ctx.guard;
  const handler: Handler = async (req) =>
    (await startedP) ? handleRequest(ctx, req) : { error: "the daemon failed to start" };
  try {
    await server.listen(handler);
  } catch (e) {
    log.fatal({ err: (e as Error).message, control }, "cannot open the control socket");
    watcher?.stop();
    return 1;
  }
  let http: HttpEndpoint | null = null;
  const sync = new SyncDaemons({ log, pool, links: () => host.host.links });
  const haDaemon = new HaDaemon({
    log,
    pool,
    host,
    sync,
    refreshGuard: async () => {
      const r = await handleRequest(ctx, { op: "apply", commands: [] });
      if ("error" in r) throw new Error(r.error);
    },
  });
  ctx.sync = sync;
  ctx.vrrp = () => haDaemon.vrrp;
  ctx.bgp = () => bgp;
  const stop = async (): Promise<void> => {
    // The VIPs' withdrawal first: the router moves the flows while this director still serves them.
    await bgp?.stop();
    // Priority 0 first: the backup takes over after its skew time instead of the master-down time.
    haDaemon.stop();
    sync.close();
    watcher?.stop();
    await http?.close();
    await server.close();
    await pool.stop();
    ctx.guard.remove();
  };

  // The guard goes in before the first packet socket opens: a table left by a crashed daemon is
  // replaced, and the LIPs are guarded from the start.
  try {
    ctx.guard.install();
  } catch (e) {
    log.fatal({ err: (e as Error).message }, "cannot install the nft guard");
    watcher?.stop();
    started(false);
    await server.close();
    return 1;
  }

  // Workers start one after the other: each joins the interfaces' fanout groups when it opens its
  // sockets, and a member's index in a group is its join order, which the fanout program relies on.
  try {
    const fanoutGroup = (process.pid * 8) & 0xfff8;
    const own = ha === null ? { master: [], standby: [] } : initialOwnership(ha);
    // --io xdp with several workers: one UMEM and one program for them all (src/io/xdp-share.ts).
    const xdpShare = opts.io === "xdp" && opts.workers > 1 ? new XdpShare(XDP_FRAMES).sab : undefined;
    const guards = await pool.start(opts.workers, (w) => ({
      ...workerInit(opts, host, plan, fanoutGroup, w, own),
      xdpShare,
    }));
    ctx.guard.update(mergeGuards(guards));
  } catch (e) {
    log.fatal({ err: (e as Error).message }, "the data plane did not start");
    started(false);
    await stop();
    return 1;
  }

  // --config: the file's services go in through the same path as any control batch (atomic,
  // guard kept up to date); its health checks keep them true from now on.
  if (configFile !== null) {
    try {
      await configFile.start();
      config = configFile;
    } catch (e) {
      log.fatal({ err: (e as Error).message, file: opts.config }, "cannot apply the configuration");
      started(false);
      await stop();
      return 1;
    }
  }

  // BGP once the services and their health run: a VIP is announced only with quorum.
  if (configFile !== null) {
    try {
      const cfg = bgpConfigOf(configFile, opts.bgp, null);
      if (cfg !== undefined) {
        const file = configFile;
        // Active-active sync (an lvs_sync_daemon on no instance): the VIPs wait for the peers' tables.
        if (ha?.lvsSyncDaemon != null && (ha.lvsSyncDaemon.instance ?? null) === null)
          sync.beginWarmup((cfg.warmup ?? BGP_DEFAULTS.warmup) * 1000, () => bgp?.update());
        const announcer = new BgpAnnouncer(cfg, {
          log,
          control,
          services: () => file.quorum(),
          vips: () => bgpVips(file.model?.virtualServers ?? []),
          hostLocal: () => host.hostLocal,
          warming: () => sync.warming(),
        });
        await announcer.start();
        bgp = announcer;
      }
    } catch (e) {
      log.fatal({ err: (e as Error).message }, "cannot announce the VIPs over BGP");
      started(false);
      await configFile.stop();
      await stop();
      return 1;
    }
  }

  if (ha !== null) {
    try {
      haDaemon.start(ha);
    } catch (e) {
      log.fatal({ err: (e as Error).message }, "cannot start VRRP");
      started(false);
      await stop();
      return 1;
    }
  }

  // The HTTP endpoint last: a scrape asks the workers, which run by now.
  if (opts.http !== null) {
    try {
      http = await HttpEndpoint.start(opts.http, ctx, log, { tokenFile: opts.httpTokenFile });
      log.info({ http: `http://${formatHttpAddr(http.address)}` }, "http listening");
    } catch (e) {
      log.fatal(
        { err: (e as Error).message, http: formatHttpAddr(opts.http) },
        "cannot open the HTTP endpoint",
      );
      started(false);
      await ctx.config()?.stop();
      await stop();
      return 1;
    }
  }

  return untilExit(
    pool,
    () => config,
    log,
    signals,
    stop,
    () => {
      started(true);
      watcher?.start();
      log.info(
        { control, interfaces: host.ifnames, io: opts.io, workers: opts.workers, filter: opts.filter },
        "ready",
      );
    },
  );
}
