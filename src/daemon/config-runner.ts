// `tsvs daemon --config FILE`: the configuration file's services and the health checks that
// keep them true, applied through the daemon's ordinary control path (one atomic control batch
// per change), and SIGHUP / `tsvs reload` as a difference that keeps connections. A reload applies
// the file's VRRP part too (daemon/ha.ts), first: the file is taken whole or not at all.

import { loadConfigFile } from "../config/load.js";
import { ConfigError, type ConfigModel, commandToIpvsadm, formatDiagnostic } from "../config/model.js";
import type { CtlCommand } from "../core/ctl-types.js";
import { TsvsError } from "../core/errors.js";
import type { HaConfig } from "../core/vrrp/config.js";
import { HealthRunner, type HealthRunnerOptions } from "../health/runner.js";
import type { HealthEvent } from "../health/state.js";
import { type ServiceQuorum, vipText } from "./bgp.js";
import { runScript, splitScript } from "./scripts.js";

export interface ConfigLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ConfigDeps {
  /** Applies the commands as one atomic batch (src/control/api.ts); rejects with the reason. */
  apply(cmds: CtlCommand[]): Promise<void>;
  log: ConfigLog;
  /** For tests: the runner's timers and checker. */
  runner?: Pick<HealthRunnerOptions, "timers" | "runCheck">;
  /** After the start, a reload and every health event: quorum may have changed (daemon/bgp.ts). */
  onChange?: (why: "start" | "reload" | "health") => void;
  /** Runs a notify_up/down or quorum_up/down script (default: spawned detached, scripts.ts). */
  runScript?: (argv: string[]) => void;
  /**
   * A reload's VRRP part (daemon/ha.ts), applied before the virtual servers. It rejects with a
   * TsvsError only before it changed anything (an instance's interface is missing): the reload
   * then applies nothing, as for a file with errors.
   */
  reloadHa?: (ha: HaConfig) => Promise<void>;
}

/** One real server's health, for `tsvs status`. */
export interface HealthRow {
  service: string;
  server: string;
  alive: boolean;
  failures: number;
  /** Since the daemon started: checks by result, and the verdict's changes (up, down). */
  checksOk: number;
  checksFailed: number;
  wentUp: number;
  wentDown: number;
}

export class DaemonConfig {
  private runner: HealthRunner | null = null;
  /** The first reading of the file (peek), which start() applies. */
  private first: Promise<ConfigModel> | null = null;
  /** Reloads run one after the other: two SIGHUPs in a row must not interleave their steps. */
  private reloading: Promise<unknown> = Promise.resolve();
  /** The configuration in force: the last reading that was applied. */
  private current: ConfigModel | null = null;
  reloads = 0;

  constructor(
    readonly path: string,
    private readonly deps: ConfigDeps,
  ) {}

  /**
   * Reads the file once, ahead of start() (the daemon needs its VRRP part before the workers
   * start); start() applies that same reading, or throws its error.
   */
  peek(): Promise<ConfigModel> {
    this.first ??= this.load();
    return this.first;
  }

  /** Loads the file (throws ConfigError with file:line:col diagnostics) and starts checking. */
  async start(): Promise<void> {
    const model = await this.peek();
    this.runner = new HealthRunner(model, {
      apply: (cmds) => this.apply(cmds),
      log: (ev) => this.event(ev),
      onError: (err, cmds) =>
        this.deps.log.error(
          { err: String(err), commands: cmds.map(commandToIpvsadm) },
          "health change refused",
        ),
      ...this.deps.runner,
    });
    await this.runner.start();
    this.current = model;
    this.deps.onChange?.("start");
    this.deps.log.info({ file: this.path, services: model.virtualServers.length }, "configuration applied");
  }

  /**
   * Re-reads the file and applies the difference: its VRRP part, then its virtual servers. A file
   * with errors, or a VRRP part the host cannot take, changes nothing: the running configuration
   * stays and the diagnostics are logged. Returns the diagnostics text ("" when applied).
   */
  reload(): Promise<string> {
    const next = this.reloading.then(() => this.reloadNow());
    this.reloading = next.catch(() => {});
    return next;
  }

  private async reloadNow(): Promise<string> {
    let model: ConfigModel;
    try {
      model = await this.load();
      await this.deps.reloadHa?.(model.ha);
    } catch (e) {
      if (!(e instanceof TsvsError)) throw e;
      const text = e instanceof ConfigError ? e.diagnostics.map(formatDiagnostic).join("\n") : e.message;
      this.deps.log.error({ file: this.path, errors: text }, "configuration not reloaded");
      return text;
    }
    this.reloads++;
    await this.runner?.reload(model);
    this.current = model;
    this.deps.onChange?.("reload");
    this.deps.log.info({ file: this.path, services: model.virtualServers.length }, "configuration reloaded");
    return "";
  }

  async stop(): Promise<void> {
    await this.runner?.stop();
  }

  get model(): ConfigModel | null {
    return this.current;
  }

  /** Each virtual service's address and quorum (keepalived's, health/state.ts), for daemon/bgp.ts. */
  quorum(): ServiceQuorum[] {
    return (this.runner?.health.virtualServers ?? []).map((vs) => ({
      name: vs.name,
      vip: vs.config.fwmark !== 0 ? null : vipText(vs.config.addr, vs.config.addr6),
      quorumUp: vs.quorumUp,
      weightSum: vs.weightSum(),
      quorum: vs.config.quorum,
    }));
  }

  health(): HealthRow[] {
    const rows: HealthRow[] = [];
    const state = this.runner?.health;
    if (state === undefined) return rows;
    for (const vs of state.virtualServers)
      for (const s of vs.servers)
        rows.push({
          service: vs.name,
          server: s.name,
          alive: s.alive,
          failures: s.failures,
          checksOk: s.checksOk,
          checksFailed: s.checksFailed,
          wentUp: s.wentUp,
          wentDown: s.wentDown,
        });
    return rows;
  }

  private async load(): Promise<ConfigModel> {
    const { model, warnings } = await loadConfigFile(this.path);
    for (const w of warnings) this.deps.log.warn({ file: this.path }, formatDiagnostic(w));
    return model;
  }

  private async apply(cmds: CtlCommand[]): Promise<void> {
    await this.deps.apply(cmds);
  }

  private event(ev: HealthEvent): void {
    this.deps.log.info(ev, ev.kind);
    if ("script" in ev && ev.script !== undefined) (this.deps.runScript ?? runScript)(splitScript(ev.script));
    if (ev.kind === "quorum-lost" || ev.kind === "quorum-gained") this.deps.onChange?.("health");
  }
}
