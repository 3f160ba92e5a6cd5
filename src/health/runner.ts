// Runs the checks of a configuration on a timer interface and feeds their results to the
// health state (state.ts). Timers and the check function are injected: the daemon passes
// the real ones, tests a fake clock and scripted results.
//
// Commands are handed to `apply` strictly in the order they were produced (one promise
// chain), so a server that goes down then up is removed then re-added, never the reverse.

import type { CheckSpec, ConfigModel, VirtualServerConfig } from "../config/model.js";
import { addrText } from "../control/snapshot.js";
import { formatIPv4 } from "../core/addr.js";
import type { CtlCommand } from "../core/ctl-types.js";
import { PP_V1, PP_V2, PP_VERSION_MASK, PP1_CHECK, PP2_CHECK, ppValue } from "../core/packet/proxy-proto.js";
import { type CheckResult, type CheckTarget, runCheck as defaultRunCheck } from "./checkers.js";
import { type HealthEvent, HealthState, type Step, type VirtualServerHealth } from "./state.js";

export interface HealthTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export type RunCheck = (check: CheckSpec, target: CheckTarget, delayLoopSec: number) => Promise<CheckResult>;

export interface HealthRunnerOptions {
  /** Applies commands to the table (the daemon: through the worker). */
  apply: (cmds: CtlCommand[]) => void | Promise<void>;
  log?: (ev: HealthEvent) => void;
  /** An `apply` that threw or rejected. */
  onError?: (err: unknown, cmds: CtlCommand[]) => void;
  timers?: HealthTimers;
  runCheck?: RunCheck;
}

const realTimers: HealthTimers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * Where the checker connects: connect_ip / connect_port, else the real server's own; from bindto
 * when given. Addresses go to node as text of either family (net, http and dgram take both).
 */
export function checkTarget(vs: VirtualServerHealth, i: number): CheckTarget {
  const s = vs.servers[i];
  const c = s.config.check;
  if (c === null || c.type === "misc") return { host: addrText(s.spec), port: s.config.port || s.spec.port };
  const host = c.connectIp6 ?? (c.connectIp !== 0 ? formatIPv4(c.connectIp) : addrText(s.spec));
  const port = c.connectPort !== 0 ? c.connectPort : s.config.port || s.spec.port;
  const t: CheckTarget = c.bindTo !== undefined ? { host, port, localAddress: c.bindTo } : { host, port };
  const h = checkProxyHeader(vs.config);
  if (h !== null) t.proxyHeader = h;
  return t;
}

/**
 * The PROXY protocol header a check sends first (DPVS keepalived's http_send_proxy_protocol: v1
 * "PROXY UNKNOWN", v2 the LOCAL command), so that a real server expecting the protocol takes the
 * check's connection; only where the director sends the protocol, to FULLNAT real servers (DPVS's
 * keepalived sends it whatever the method, to servers the director never sends it to).
 */
export function checkProxyHeader(vs: VirtualServerConfig): Uint8Array | null {
  if (vs.lbKind !== "FULLNAT" || vs.proxyProtocol === undefined) return null;
  const v = ppValue(vs.proxyProtocol) & PP_VERSION_MASK;
  return v === PP_V1 ? PP1_CHECK : v === PP_V2 ? PP2_CHECK : null;
}

export class HealthRunner {
  private state: HealthState;
  private readonly opts: HealthRunnerOptions;
  private readonly timers: HealthTimers;
  private readonly check: RunCheck;
  private handles: unknown[] = [];
  /** Bumped on reload and stop: results of checks started before are dropped. */
  private generation = 0;
  private queue: Promise<void> = Promise.resolve();
  private running = false;

  constructor(model: ConfigModel, opts: HealthRunnerOptions) {
    this.state = new HealthState(model);
    this.opts = opts;
    this.timers = opts.timers ?? realTimers;
    this.check = opts.runCheck ?? defaultRunCheck;
  }

  get health(): HealthState {
    return this.state;
  }

  /** Installs the initial table and starts checking. Resolves once the table is applied. */
  start(): Promise<void> {
    this.running = true;
    this.emit(this.state.start());
    this.scheduleAll();
    return this.queue;
  }

  /** Switches to a new configuration without dropping what stays (see HealthState.reload). */
  reload(model: ConfigModel): Promise<void> {
    const { state, step } = this.state.reload(model);
    this.cancelAll();
    this.state = state;
    this.emit(step);
    if (this.running) this.scheduleAll();
    return this.queue;
  }

  /** Stops checking (omega events are logged); the table is left as it is. */
  stop(): Promise<void> {
    this.running = false;
    this.cancelAll();
    this.emit(this.state.stop());
    return this.queue;
  }

  /** Resolves when every command produced so far has been applied. */
  idle(): Promise<void> {
    return this.queue;
  }

  private emit(step: Step): void {
    for (const ev of step.events) this.opts.log?.(ev);
    if (step.commands.length === 0) return;
    const cmds = step.commands;
    this.queue = this.queue.then(() =>
      Promise.resolve()
        .then(() => this.opts.apply(cmds))
        .catch((err: unknown) => this.opts.onError?.(err, cmds)),
    );
  }

  private cancelAll(): void {
    this.generation++;
    for (const h of this.handles) if (h !== undefined) this.timers.clearTimeout(h);
    this.handles = [];
  }

  private scheduleAll(): void {
    const gen = this.generation;
    let slot = 0;
    for (const vs of this.state.virtualServers)
      for (let i = 0; i < vs.servers.length; i++) {
        const first = vs.firstCheckMs(i);
        if (first >= 0) this.schedule(gen, slot, vs, i, first);
        slot++;
      }
  }

  private schedule(gen: number, slot: number, vs: VirtualServerHealth, i: number, ms: number): void {
    this.handles[slot] = this.timers.setTimeout(() => {
      this.handles[slot] = undefined;
      void this.runOne(gen, slot, vs, i);
    }, ms);
  }

  private async runOne(gen: number, slot: number, vs: VirtualServerHealth, i: number): Promise<void> {
    const check = vs.servers[i].config.check;
    if (check === null) return;
    let r: CheckResult;
    try {
      r = await this.check(check, checkTarget(vs, i), vs.config.delayLoop);
    } catch (e) {
      r = { ok: false, detail: e instanceof Error ? e.message : String(e) };
    }
    if (gen !== this.generation) return;
    const out = vs.result(i, r.ok, r.detail);
    this.emit(out);
    this.schedule(gen, slot, vs, i, out.nextCheckMs);
  }
}
