// The data-plane workers seen from the main thread: started one after the other (a member's index
// in a fanout group is its join order, which the fanout program relies on), asked over their
// MessagePorts (one request id per question, answers matched by id), and stopped.

import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import type { Logger } from "pino";
import { type GuardDest6, sortGuard } from "../control/api.js";
import type { ControlCommand } from "../control/commands.js";
import type { ExplainQuery } from "../core/explain.js";
import type { FwmarkAction } from "./protocol.js";
import type { FromWorker, Guard, HostUpdate, ToWorker, WorkerInit } from "./worker.js";

/** What the main thread asks a worker (ToWorker without the id, which the pool assigns). */
export type WorkerRequest =
  | { type: "apply"; cmds: ControlCommand[] }
  | { type: "snapshot"; conns: boolean }
  | { type: "status" }
  | { type: "sysctl"; name?: string; value?: number; value2?: number }
  | { type: "fwmark"; action: FwmarkAction; rule?: string }
  | ({ type: "host" } & HostUpdate)
  /** `tsvs explain`, asked of the one worker the client's packets reach (answered as a "result"). */
  | { type: "explain"; query: ExplainQuery }
  /** A sync daemon runs or none does any more (answered as a "result"). */
  | { type: "sync-state"; running: boolean };

/** What the main thread tells a worker without waiting for an answer (VRRP, connection sync). */
export type WorkerNotice = Extract<ToWorker, { type: "vrrp" | "sync-master" | "sync-in" | "sync-refresh" }>;

interface WorkerHandle {
  index: number;
  worker: Worker;
  port: MessagePort;
  alive: boolean;
  pending: Map<number, (m: FromWorker) => void>;
  ready: Promise<Guard>;
  done: Promise<void>;
}

/** How long a worker may take to leave its loop before it is terminated. */
const STOP_GRACE_MS = 2000;

/** The data-plane worker's young generation (semi-spaces and the large-object part), MiB. */
const WORKER_YOUNG_GEN_MB = 8;

export class WorkerPool {
  private readonly handles: WorkerHandle[] = [];
  private nextId = 1;
  /** Called once when a worker fails or exits with an error after the start (the daemon exits). */
  onFatal: (e: Error) => void = () => {};
  /** Finished sync messages from a master sync daemon's workers (daemon/sync.ts sends them). */
  onSyncOut: (msgs: Uint8Array[]) => void = () => {};

  constructor(private readonly log: Logger) {}

  get size(): number {
    return this.handles.length;
  }

  /** Starts workers 0..n-1 in order, each after the previous one is ready; their first guards. */
  async start(n: number, init: (index: number) => Omit<WorkerInit, "port">): Promise<Guard[]> {
    const guards: Guard[] = [];
    for (let w = 0; w < n; w++) {
      const h = this.spawn(w, init(w));
      this.handles.push(h);
      guards.push(await h.ready);
    }
    return guards;
  }

  alive(): boolean {
    return this.handles.length > 0 && this.handles.every((h) => h.alive);
  }

  /** One worker's answer to one request. */
  askOne(index: number, msg: WorkerRequest): Promise<FromWorker> {
    const h = this.handles[index];
    return new Promise((resolve, reject) => {
      if (h === undefined || !h.alive) {
        reject(new Error("the data plane is not running"));
        return;
      }
      const id = this.nextId++;
      h.pending.set(id, resolve);
      h.port.postMessage({ ...msg, id } satisfies ToWorker);
    });
  }

  /** The same request to every worker (commands apply to all; snapshots are merged by the caller). */
  ask(msg: WorkerRequest): Promise<FromWorker[]> {
    return Promise.all(this.handles.map((h) => this.askOne(h.index, msg)));
  }

  /** A notice to one worker (index) or to every worker (index null); dead workers are skipped. */
  notify(msg: WorkerNotice, index: number | null = null): void {
    for (const h of this.handles)
      if (h.alive && (index === null || h.index === index)) h.port.postMessage(msg);
  }

  /** Asks every worker to leave its loop; terminates the ones that do not within the grace time. */
  async stop(): Promise<void> {
    await Promise.all(
      this.handles.map(async (h) => {
        if (h.alive) {
          h.port.postMessage({ type: "stop" } satisfies ToWorker);
          const timeout = new Promise<"timeout">((r) =>
            setTimeout(() => r("timeout"), STOP_GRACE_MS).unref(),
          );
          if ((await Promise.race([h.done.then(() => "done" as const), timeout])) === "timeout") {
            this.log.warn({ worker: h.index }, "the data plane did not stop within 2 s: terminating it");
            await h.worker.terminate();
          }
        }
        h.port.close();
      }),
    );
  }

  private spawn(index: number, init: Omit<WorkerInit, "port">): WorkerHandle {
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(new URL("./worker.js", import.meta.url), {
      workerData: { ...init, port: port2, tsvsWorker: true },
      transferList: [port2],
      // The data path allocates nothing per packet, so a small young generation costs it nothing;
      // V8's default (48 MiB) would fill with the warm-up's garbage and stay in the RSS.
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GEN_MB },
    });
    let readyResolve: (g: Guard) => void = () => {};
    let fatal: (e: Error) => void = () => {};
    let stopped: () => void = () => {};
    const h: WorkerHandle = {
      index,
      worker,
      port: port1,
      alive: true,
      pending: new Map(),
      ready: new Promise<Guard>((resolve, reject) => {
        readyResolve = resolve;
        fatal = reject;
      }),
      done: new Promise<void>((resolve) => {
        stopped = resolve;
      }),
    };
    port1.on("message", (m: FromWorker) => {
      switch (m.type) {
        case "ready":
          readyResolve(m.guard);
          break;
        case "log":
          this.log[m.level]({ worker: index, ...(m.data ?? {}) }, m.msg);
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
        case "sync-out":
          this.onSyncOut(m.msgs);
          break;
        case "stopped":
          break;
      }
    });
    worker.on("error", (e) => {
      this.log.error({ worker: index, err: e.message, stack: e.stack }, "data plane worker failed");
      fatal(e);
      this.onFatal(e);
    });
    worker.on("exit", (code) => {
      h.alive = false;
      for (const cb of h.pending.values()) cb({ type: "log", level: "error", msg: "worker gone" });
      h.pending.clear();
      stopped();
      const e = new Error(`data plane worker ${index} exited with code ${code}`);
      fatal(e);
      if (code !== 0) this.onFatal(e);
    });
    return h;
  }
}

/** The union of the workers' guards (each owns its share of the LIPs), sorted as ControlApi.guard sorts. */
export function mergeGuards(gs: readonly Guard[]): Guard {
  const nat = new Map<string, Guard["nat"][number]>();
  const nat6 = new Map<string, GuardDest6>();
  for (const g of gs) {
    for (const d of g.nat) nat.set(`${d.addr}/${d.proto}/${d.port}`, d);
    for (const d of g.nat6 ?? []) nat6.set(`${d.addr6}/${d.proto}/${d.port}`, d);
  }
  return sortGuard({
    owned: gs.flatMap((g) => g.owned),
    nat: [...nat.values()],
    owned6: gs.flatMap((g) => g.owned6 ?? []),
    nat6: [...nat6.values()],
  });
}
