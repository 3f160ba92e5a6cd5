// Health state of one virtual server's real servers, and the table it implies.
// keepalived's semantics (check/ipwrapper.c: update_svr_checker_state, update_quorum_state,
// perform_quorum_state), with no clock and no I/O: results go in, control commands and
// log events come out, along with the delay before the next check.
//
// - A failed check is retried `retry` times, `delay_before_retry` apart, before the server
//   is declared down; one success brings it back up. A down server is checked every
//   delay_loop.
// - alpha: servers start down and join on their first success; without it they start up.
// - A down server leaves the table, or stays at weight 0 with inhibit_on_failure
//   (its established connections continue, new ones go elsewhere).
// - Quorum: the sum of the live servers' weights. It is lost when that sum is 0 or falls
//   below quorum - hysteresis and regained at quorum + hysteresis or more (the gap keeps
//   a flapping server from toggling the service). While it is lost and a sorry server is
//   configured, the sorry server is the only destination (the live servers leave the
//   table, or go to weight 0 with inhibit_on_failure); when it is regained they come back
//   before the sorry server goes.
// - omega: on shutdown, the live servers and the quorum are reported as going down.

import { delDest, destKey, type Laddr, laddrKey, sameDest, sameLimit, sameService } from "../config/diff.js";
import {
  type CheckSpec,
  type ConfigModel,
  destCommand,
  laddrCommand,
  type RealServerConfig,
  serviceCommand,
  serviceKeyOf,
  serviceKeyString,
  sorryCommand,
  type VirtualServerConfig,
} from "../config/model.js";
import { addrPortText } from "../control/snapshot.js";
import type { ConnLimitSpec } from "../core/conn-limit.js";
import type { CtlCommand, DestSpec, ServiceKey, ServiceSpec } from "../core/ctl-types.js";

/**
 * What happened, for the log; `script` is the keepalived notify_up/notify_down or
 * quorum_up/quorum_down command line the event runs (do_rs_notifies, do_vs_notifies).
 */
export type HealthEvent =
  | { kind: "rs-up" | "rs-down"; vs: string; rs: string; detail: string; script?: string }
  | { kind: "rs-retry"; vs: string; rs: string; attempt: number; retries: number; detail: string }
  | { kind: "quorum-lost" | "quorum-gained"; vs: string; weightSum: number; quorum: number; script?: string }
  | { kind: "sorry-server-on" | "sorry-server-off"; vs: string; rs: string };

/** `{ script }` when the keyword is set, else nothing (events stay as they were without scripts). */
function scriptOf(script: string | undefined): { script?: string } {
  return script === undefined ? {} : { script };
}

export interface Step {
  commands: CtlCommand[];
  events: HealthEvent[];
}

export interface CheckOutcome extends Step {
  /** Milliseconds until this server's next check. */
  nextCheckMs: number;
}

export class RealServerHealth {
  readonly config: RealServerConfig;
  /** add-dest spec with the configured weight (ipvsadm's rules applied). */
  readonly spec: DestSpec;
  readonly name: string;
  alive: boolean;
  /** Consecutive failures while alive (retries used so far + 1). */
  failures = 0;
  /** Counters since the daemon started (kept across reloads): checks by result, and verdict changes. */
  checksOk = 0;
  checksFailed = 0;
  wentUp = 0;
  wentDown = 0;

  constructor(config: RealServerConfig, spec: DestSpec, alive: boolean) {
    this.config = config;
    this.spec = spec;
    this.name = addrPortText(spec, spec.port);
    this.alive = alive;
  }

  /** Identity across reloads: same place and same checker keeps the state. */
  get identity(): string {
    return `${destKey(this.spec)}|${JSON.stringify(this.config.check)}`;
  }
}

function checkRetry(c: CheckSpec | null): { retry: number; delayBeforeRetry: number } {
  return c === null
    ? { retry: 0, delayBeforeRetry: 0 }
    : { retry: c.retry, delayBeforeRetry: c.delayBeforeRetry };
}

export class VirtualServerHealth {
  readonly config: VirtualServerConfig;
  readonly key: ServiceKey;
  readonly name: string;
  readonly svc: ServiceSpec;
  readonly servers: RealServerHealth[];
  readonly sorry: DestSpec | null;
  quorumUp = true;
  /** What this virtual server has put in the table, by destKey. */
  readonly installed = new Map<string, DestSpec>();
  /** Whether the service itself is in the table. */
  serviceInstalled = false;
  /** The FULLNAT local addresses this virtual server has put in the table (-P), in order. */
  readonly installedLaddrs: Laddr[] = [];
  /** The access-list rules ("deny RULE", "allow RULE") and the rate limit it has put there. */
  readonly installedAcl = new Set<string>();
  installedLimit: ConnLimitSpec | undefined = undefined;

  /**
   * `previous` carries state across a reload: servers with the same address, port and
   * checker keep their health, and the table this virtual server had installed is the
   * starting point of the next sync (so a reload emits only the difference).
   */
  constructor(config: VirtualServerConfig, previous?: VirtualServerHealth) {
    this.config = config;
    this.key = serviceKeyOf(config);
    this.name = serviceKeyString(this.key);
    this.svc = serviceCommand(config).svc;
    const old = new Map<string, RealServerHealth>();
    for (const s of previous?.servers ?? []) old.set(s.identity, s);
    this.servers = config.realServers.map((rs) => {
      const h = new RealServerHealth(rs, destCommand(config, rs).dest, rs.check === null || !config.alpha);
      const prev = old.get(h.identity);
      if (prev !== undefined) {
        h.alive = prev.alive;
        h.failures = prev.failures;
        h.checksOk = prev.checksOk;
        h.checksFailed = prev.checksFailed;
        h.wentUp = prev.wentUp;
        h.wentDown = prev.wentDown;
      }
      return h;
    });
    this.sorry = sorryCommand(config)?.dest ?? null;
    if (previous !== undefined) {
      this.quorumUp = previous.quorumUp;
      this.serviceInstalled = previous.serviceInstalled;
      for (const [k, d] of previous.installed) this.installed.set(k, d);
      this.installedLaddrs.push(...previous.installedLaddrs);
      for (const k of previous.installedAcl) this.installedAcl.add(k);
      this.installedLimit = previous.installedLimit;
    }
  }

  weightSum(): number {
    let sum = 0;
    for (const s of this.servers) if (s.alive) sum += s.spec.weight;
    return sum;
  }

  /** The destinations the current health state calls for, by destKey. */
  desired(): Map<string, DestSpec> {
    const out = new Map<string, DestSpec>();
    const sorryOn = !this.quorumUp && this.sorry !== null;
    for (const s of this.servers) {
      const k = destKey(s.spec);
      if (s.alive && !sorryOn) out.set(k, s.spec);
      else if (s.config.inhibitOnFailure) out.set(k, { ...s.spec, weight: 0 });
    }
    if (sorryOn && this.sorry !== null) out.set(destKey(this.sorry), this.sorry);
    return out;
  }

  /** Re-evaluates the quorum (after a reload changed weights or thresholds). */
  requorum(events: HealthEvent[]): void {
    this.updateQuorum(events);
  }

  private updateQuorum(events: HealthEvent[]): void {
    const sum = this.weightSum();
    const { quorum, hysteresis } = this.config;
    if (this.quorumUp && (sum === 0 || sum < quorum - hysteresis)) {
      this.quorumUp = false;
      events.push({
        kind: "quorum-lost",
        vs: this.name,
        weightSum: sum,
        quorum,
        ...scriptOf(this.config.quorumDown),
      });
      if (this.sorry !== null)
        events.push({ kind: "sorry-server-on", vs: this.name, rs: sorryName(this.sorry) });
    } else if (!this.quorumUp && sum > 0 && sum >= quorum + hysteresis) {
      this.quorumUp = true;
      events.push({
        kind: "quorum-gained",
        vs: this.name,
        weightSum: sum,
        quorum,
        ...scriptOf(this.config.quorumUp),
      });
      if (this.sorry !== null)
        events.push({ kind: "sorry-server-off", vs: this.name, rs: sorryName(this.sorry) });
    }
  }

  /**
   * Brings the table in line with the health state. Additions and weight increases come
   * first, removals and weight decreases last, so the service is never left without a
   * destination in between (sorry server in before the last real server out, real servers
   * back before the sorry server goes).
   */
  sync(): CtlCommand[] {
    const out: CtlCommand[] = [];
    if (!this.serviceInstalled) {
      out.push({ op: "add-service", svc: { ...this.svc } });
      this.serviceInstalled = true;
    }
    const want = this.desired();
    const key = { ...this.key };
    const later: CtlCommand[] = [];
    for (const [k, d] of want) {
      const have = this.installed.get(k);
      if (have === undefined) out.push({ op: "add-dest", key, dest: { ...d } });
      else if (!sameDest(have, d))
        (d.weight >= have.weight ? out : later).push({ op: "edit-dest", key, dest: { ...d } });
    }
    for (const [k, d] of this.installed) if (!want.has(k)) later.push(delDest(key, d));
    this.installed.clear();
    for (const [k, d] of want) this.installed.set(k, d);
    // The local addresses (DPVS's laddr_group_name): new ones with the additions, gone ones last.
    const laddrs: readonly Laddr[] = this.config.localAddresses ?? [];
    const wanted = new Set(laddrs.map(laddrKey));
    const installed = new Set(this.installedLaddrs.map(laddrKey));
    for (const a of laddrs) if (!installed.has(laddrKey(a))) out.push(laddrCommand("add-laddr", key, a));
    for (const a of this.installedLaddrs)
      if (!wanted.has(laddrKey(a))) later.push(laddrCommand("del-laddr", key, a));
    this.installedLaddrs.length = 0;
    this.installedLaddrs.push(...laddrs);
    // Access lists and the rate limit (docs/acl.md): new rules with the additions, gone ones last.
    const acl = [
      ...(this.config.deny ?? []).map((r) => `deny ${r}`),
      ...(this.config.allow ?? []).map((r) => `allow ${r}`),
    ];
    const aclCmd = (op: "add-acl" | "del-acl", k: string): CtlCommand => {
      const sp = k.indexOf(" ");
      return { op, key, list: k.slice(0, sp) as "deny" | "allow", rule: k.slice(sp + 1) };
    };
    for (const k of acl) if (!this.installedAcl.has(k)) out.push(aclCmd("add-acl", k));
    const wantAcl = new Set(acl);
    for (const k of this.installedAcl) if (!wantAcl.has(k)) later.push(aclCmd("del-acl", k));
    this.installedAcl.clear();
    for (const k of acl) this.installedAcl.add(k);
    const lim = this.config.connLimit?.rate ? this.config.connLimit : undefined;
    if (!sameLimit(this.installedLimit, lim))
      out.push({ op: "set-conn-limit", key, limit: lim ?? { rate: 0, burst: 1, prefix4: 32, prefix6: 64 } });
    this.installedLimit = lim;
    return out.concat(later);
  }

  /** The initial table (quorum evaluated once: with alpha every checked server starts down). */
  start(): Step {
    const events: HealthEvent[] = [];
    this.updateQuorum(events);
    return { commands: this.sync(), events };
  }

  /** The milliseconds before the first check of server i (0: check at once). */
  firstCheckMs(i: number): number {
    return this.servers[i].config.check === null ? -1 : 0;
  }

  /** A check result for server i. */
  result(i: number, ok: boolean, detail: string): CheckOutcome {
    const s = this.servers[i];
    const events: HealthEvent[] = [];
    const delayLoopMs = this.config.delayLoop * 1000;
    const { retry, delayBeforeRetry } = checkRetry(s.config.check);
    let nextCheckMs = delayLoopMs;
    if (ok) s.checksOk++;
    else s.checksFailed++;
    if (ok) {
      s.failures = 0;
      if (!s.alive) {
        s.alive = true;
        s.wentUp++;
        events.push({ kind: "rs-up", vs: this.name, rs: s.name, detail, ...scriptOf(s.config.notifyUp) });
      }
    } else if (s.alive) {
      s.failures++;
      if (s.failures <= retry) {
        events.push({
          kind: "rs-retry",
          vs: this.name,
          rs: s.name,
          attempt: s.failures,
          retries: retry,
          detail,
        });
        nextCheckMs = delayBeforeRetry * 1000;
      } else {
        s.alive = false;
        s.failures = 0;
        s.wentDown++;
        events.push({ kind: "rs-down", vs: this.name, rs: s.name, detail, ...scriptOf(s.config.notifyDown) });
      }
    }
    if (events.length === 0 || events[0].kind === "rs-retry") return { commands: [], events, nextCheckMs };
    this.updateQuorum(events);
    return { commands: this.sync(), events, nextCheckMs };
  }

  /** Shutdown: with omega, the live servers and the quorum are reported down (no commands). */
  stop(): Step {
    const events: HealthEvent[] = [];
    if (!this.config.omega) return { commands: [], events };
    for (const s of this.servers)
      if (s.alive)
        events.push({
          kind: "rs-down",
          vs: this.name,
          rs: s.name,
          detail: "shutdown",
          ...scriptOf(s.config.notifyDown),
        });
    if (this.quorumUp)
      events.push({
        kind: "quorum-lost",
        vs: this.name,
        weightSum: 0,
        quorum: this.config.quorum,
        ...scriptOf(this.config.quorumDown),
      });
    return { commands: [], events };
  }
}

function sorryName(d: DestSpec): string {
  return addrPortText(d, d.port);
}

/** The health state of a whole configuration. */
export class HealthState {
  readonly virtualServers: VirtualServerHealth[];

  constructor(model: ConfigModel, previous?: HealthState) {
    const old = new Map<string, VirtualServerHealth>();
    for (const v of previous?.virtualServers ?? []) old.set(v.name, v);
    this.virtualServers = model.virtualServers.map((vs) => {
      const prev = old.get(serviceKeyString(serviceKeyOf(vs)));
      return new VirtualServerHealth(vs, prev);
    });
  }

  /** The commands that build the initial table from an empty one. */
  start(): Step {
    const step: Step = { commands: [], events: [] };
    for (const v of this.virtualServers) {
      const s = v.start();
      step.commands.push(...s.commands);
      step.events.push(...s.events);
    }
    return step;
  }

  /**
   * A new configuration, keeping the health of servers that did not change. Returns the
   * next state and the commands from the current table to its table: removed services
   * deleted, kept ones edited (-E) and their destinations synced, new ones added. Nothing
   * that stays is deleted, so connections survive the reload.
   */
  reload(model: ConfigModel): { state: HealthState; step: Step } {
    const next = new HealthState(model, this);
    const step: Step = { commands: [], events: [] };
    const names = new Set(next.virtualServers.map((v) => v.name));
    for (const v of this.virtualServers)
      if (!names.has(v.name) && v.serviceInstalled)
        step.commands.push({ op: "del-service", key: { ...v.key } });
    const before = new Map(this.virtualServers.map((v) => [v.name, v]));
    for (const v of next.virtualServers) {
      const prev = before.get(v.name);
      if (prev?.serviceInstalled && !sameService(prev.svc, v.svc))
        step.commands.push({ op: "edit-service", svc: { ...v.svc } });
      // Quorum is re-evaluated with the new weights and thresholds.
      if (prev === undefined) {
        const s = v.start();
        step.commands.push(...s.commands);
        step.events.push(...s.events);
        continue;
      }
      v.requorum(step.events);
      step.commands.push(...v.sync());
    }
    return { state: next, step };
  }

  stop(): Step {
    const step: Step = { commands: [], events: [] };
    for (const v of this.virtualServers) step.events.push(...v.stop().events);
    return step;
  }
}
