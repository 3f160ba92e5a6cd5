// `tsvs daemon`: the director in the current network namespace (docs/daemon.md).
//
//   main thread: arguments, kernel facts (ip -j), the nft guard, the control socket, signals, logs
//   worker:      the packet sockets and the engine (worker.ts), in a loop that never yields
//
// The main thread never touches a packet and the worker never waits on the event loop; they talk
// through one MessagePort: requests in (pulled by the worker between batches), replies and log
// records out.

import { MessageChannel, Worker } from "node:worker_threads";
import pino from "pino";
import { parseIPv4 } from "../core/addr.js";
import type { Sysctls } from "../core/engine.js";
import type { IfaceConfig } from "../core/route.js";
import { ControlServer, type Handler } from "./control.js";
import { defaultInterfaces, ipForward, readInterface, readRoutes } from "./kernel.js";
import { applyGuard, checkNft, NFT_FAMILY, NFT_TABLE, removeGuard } from "./nft.js";
import {
  type DaemonStatus,
  type FwmarkAction,
  netnsId,
  PROTOCOL_VERSION,
  parseSysctlArg,
  type Request,
  type Response,
  resolveControlPath,
  SYSCTLS,
  type WorkerStatus,
} from "./protocol.js";
import type { FromWorker, Guard, ToWorker, WorkerInit } from "./worker.js";

export const DAEMON_USAGE = `Usage: tsvs daemon [--iface IF]... [--lip ADDR]... [--sysctl NAME=VALUE]... [--control PATH]
                   [--log-level LEVEL] [--idle-ms N]

Runs the director in the foreground, in the current network namespace.
  --iface IF         an interface to serve (repeatable; default: every up, non-loopback Ethernet one)
  --lip ADDR         a FULLNAT local address (repeatable)
  --sysctl NAME=V    a director sysctl, as /proc/sys/net/ipv4/vs names it (repeatable): conn_reuse_mode,
                     expire_nodest_conn, expire_quiescent_template, sloppy_tcp; at run time: tsvs sysctl
  --control PATH     control socket (default: $TSVS_CONTROL, else /run/tsvs/control.sock in the
                     host namespace, /run/tsvs/netns-<inode>/control.sock in others)
  --log-level LEVEL  trace|debug|info|warn|error|fatal|silent (default info)
  --idle-ms N        poll timeout of the data-plane loop when idle (default 10; 0 = busy-poll,
                     never sleep: lowest latency, one core at 100 %)
`;

export interface DaemonOptions {
  ifaces: string[];
  lips: number[];
  control: string | undefined;
  logLevel: string;
  idleMs: number;
  /** Engine field → value, from --sysctl. */
  sysctls: Partial<Sysctls>;
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
    sysctls: {},
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
      case "--idle-ms": {
        const v = Number(value());
        if (!Number.isInteger(v) || v < 0 || v > 1000)
          throw new DaemonUsageError("--idle-ms must be 0..1000");
        o.idleMs = v;
        break;
      }
      default:
        throw new DaemonUsageError(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  return o;
}

function sameGuard(a: Guard | null, b: Guard): boolean {
  return a !== null && JSON.stringify(a) === JSON.stringify(b);
}

/** Runs until SIGINT/SIGTERM (exit 0) or a fatal error (exit 1). */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
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

  let ifaces: IfaceConfig[];
  try {
    const names = opts.ifaces.length > 0 ? opts.ifaces : defaultInterfaces();
    if (names.length === 0) throw new Error("no interface to serve (none up; give --iface)");
    ifaces = names.map(readInterface);
  } catch (e) {
    log.fatal({ err: (e as Error).message }, "cannot read the interfaces");
    return 1;
  }
  const routes = readRoutes(ifaces);
  const ifnames = ifaces.map((i) => i.name);
  const locals = ifaces.flatMap((i) => i.addrs.map((a) => a.addr));
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
    started(false);
    await server.close();
    return 1;
  }

  const { port1, port2 } = new MessageChannel();
  const init: WorkerInit & { tsvsWorker: true } = {
    tsvsWorker: true,
    interfaces: ifaces,
    routes,
    lips: opts.lips,
    port: port2,
    idleMs: opts.idleMs,
    batch: 64,
    sysctls: opts.sysctls,
  };
  const worker = new Worker(new URL("./worker.js", import.meta.url), {
    workerData: init,
    transferList: [port2],
  });
  let workerAlive = true;
  let nextId = 1;
  const pending = new Map<number, (m: FromWorker) => void>();
  let readyResolve: (g: Guard) => void = () => {};
  let fatal: (e: Error) => void = () => {};
  const ready = new Promise<Guard>((resolve, reject) => {
    readyResolve = resolve;
    fatal = reject;
  });
  let stopped: () => void = () => {};
  const workerDone = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  let onFatal: (e: Error) => void = () => {};

  port1.on("message", (m: FromWorker) => {
    switch (m.type) {
      case "ready":
        readyResolve(m.guard);
        break;
      case "log":
        log[m.level](m.data ?? {}, m.msg);
        break;
      case "reply":
      case "result":
      case "status": {
        const cb = pending.get(m.id);
        pending.delete(m.id);
        cb?.(m);
        break;
      }
      case "stopped":
        break;
    }
  });
  worker.on("error", (e) => {
    log.error({ err: e.message, stack: e.stack }, "data plane worker failed");
    fatal(e);
    onFatal(e);
  });
  worker.on("exit", (code) => {
    workerAlive = false;
    for (const cb of pending.values()) cb({ type: "log", level: "error", msg: "worker gone" });
    pending.clear();
    stopped();
    if (code !== 0) onFatal(new Error(`data plane worker exited with code ${code}`));
  });

  const toWorker = (msg: ToWorker): void => port1.postMessage(msg);
  const ask = (
    msg:
      | { type: "ipvsadm"; argv: string[]; stdin?: string }
      | { type: "status" }
      | { type: "sysctl"; name?: string; value?: number }
      | { type: "fwmark"; action: FwmarkAction; rule?: string },
  ): Promise<FromWorker> =>
    new Promise((resolve, reject) => {
      if (!workerAlive) {
        reject(new Error("the data plane is not running"));
        return;
      }
      const id = nextId++;
      pending.set(id, resolve);
      toWorker({ ...msg, id });
    });

  const cleanup = async (server: ControlServer | null): Promise<void> => {
    if (server !== null) await server.close();
    if (workerAlive) {
      toWorker({ type: "stop" });
      const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 2000).unref());
      if ((await Promise.race([workerDone.then(() => "done" as const), timeout])) === "timeout") {
        log.warn("the data plane did not stop within 2 s: terminating it");
        await worker.terminate();
      }
    }
    port1.close();
    removeGuard();
  };

  try {
    guard = await ready;
  } catch (e) {
    log.fatal({ err: (e as Error).message }, "the data plane did not start");
    started(false);
    await cleanup(server);
    return 1;
  }

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

  handler = async (req: Request): Promise<Response> => {
    if (req.op === "ipvsadm") {
      const m = await ask({ type: "ipvsadm", argv: req.argv, stdin: req.stdin });
      if (m.type !== "reply") return { error: "the data plane stopped" };
      const gErr = updateGuard(m.guard);
      log.debug({ argv: req.argv, code: m.result.code }, "ipvsadm");
      if (gErr !== null) {
        return {
          ...m.result,
          stderr: `${m.result.stderr}tsvs: warning: the kernel guard was not updated: ${gErr}\n`,
        };
      }
      return m.result;
    }
    if (req.op === "sysctl" || req.op === "fwmark") {
      const m = await ask(
        req.op === "sysctl"
          ? { type: "sysctl", name: req.name, value: req.value }
          : { type: "fwmark", action: req.action, rule: req.rule },
      );
      if (m.type !== "result") return { error: "the data plane stopped" };
      log.info({ req }, req.op);
      const gErr = updateGuard(m.guard);
      if (gErr !== null && !("error" in m.response))
        return { error: `applied, but the kernel guard was not updated: ${gErr}` };
      return m.response;
    }
    const m = await ask({ type: "status" });
    if (m.type !== "status") return { error: "the data plane stopped" };
    const ws: WorkerStatus = m.status;
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
      worker: { alive: workerAlive, restarts: 0 },
    };
    return { status };
  };

  started(true);
  log.info({ control, interfaces: ifnames }, "ready");

  return await new Promise<number>((resolve) => {
    let exiting = false;
    const exit = (code: number, why: string): void => {
      if (exiting) return;
      exiting = true;
      log.info({ why }, "stopping");
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      cleanup(server).then(
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
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    onFatal = (e) => exit(1, e.message);
    if (!workerAlive) exit(1, "data plane worker exited");
  });
}
