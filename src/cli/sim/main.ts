// `tsvs sim`: runs scenario files (docs/sim.md) with the real director engine on the
// in-memory lab network (src/sim), on a simulated clock. Everything is deterministic: the
// same file prints the same text on every run.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ControlApi } from "../../control/api.js";
import { parseFwmarkRule } from "../../control/fwmark-rule.js";
import { formatIPv4, parseIPv4 } from "../../core/addr.js";
import { Engine, type Sysctls } from "../../core/engine.js";
import { TsvsError } from "../../core/errors.js";
import { httpGet, patternBytes, udpRequest } from "../../sim/apps.js";
import { SimClock } from "../../sim/clock.js";
import type { Host } from "../../sim/host.js";
import type { TcpSocket } from "../../sim/tcp.js";
import { buildLab, type Lab, type LabMethod } from "../../sim/topology.js";
import type { IpvsadmBackend } from "../ipvsadm/run.js";
import { runIpvsadm } from "../ipvsadm/run.js";
import { parseScenario, type Scenario, type Step } from "./scenario.js";

/** How often the runner lets the engine run its timers while the network is quiet. */
const TICK_MS = 100;
/** A traffic step that has not finished after this much simulated time failed. */
const STEP_LIMIT_MS = 120_000;
const ENGINE_SEED = 0x7a5e_5eed;

const SYSCTL_NAMES: Record<string, keyof Sysctls> = {
  conn_reuse_mode: "connReuseMode",
  expire_nodest_conn: "expireNodestConn",
  expire_quiescent_template: "expireQuiescentTemplate",
  sloppy_tcp: "sloppyTcp",
};

export interface ScenarioResult {
  output: string;
  failures: number;
}

/** xorshift32: the engine's injected randomness (twos, hash seeds), fixed per run. */
function seededRandom(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

type Done = (ok: boolean, detail: string) => void;

class Runner {
  readonly clock = new SimClock();
  readonly lab: Lab;
  readonly engine: Engine;
  readonly backend: IpvsadmBackend;
  private readonly clients = new Map<string, Host>();
  private readonly dist = new Map<string, number>();
  private readonly keep = new Map<
    string,
    { from: Host; target: [number, number]; socket: TcpSocket | null }
  >();
  private nextTick = 0;
  /** Whether the last traffic step or ipvsadm command succeeded (`expect result`). */
  lastOk = true;
  private out = "";
  failures = 0;

  constructor(method: LabMethod) {
    this.lab = buildLab(this.clock, method);
    const send = this.lab.attachDirector((i, b, l, now) => {
      this.engine.input(i, b, l, now);
    });
    this.engine = new Engine({
      interfaces: this.lab.directorIfaces,
      routes: this.lab.directorRoutes,
      lips: method === "fullnat" ? [this.lab.lip] : [],
      ownInterfaceAddresses: true,
      random: seededRandom(ENGINE_SEED),
      send,
    });
    this.backend = new ControlApi(this.engine, () => this.clock.now);
    this.clients.set("c1", this.lab.hosts.client);
  }

  print(s: string): void {
    this.out += s.endsWith("\n") ? s : `${s}\n`;
  }

  output(): string {
    return this.out;
  }

  /** Runs the network until `done()` or the time limit; the engine ticks on the way. */
  private runUntil(done: () => boolean, limitMs: number): boolean {
    const c = this.clock;
    const deadline = c.now + limitMs;
    while (!done()) {
      if (c.now >= deadline) return false;
      c.runUntil(Math.min(c.nextTime(), this.nextTick, deadline));
      if (c.now >= this.nextTick) {
        this.engine.tick(c.now);
        this.nextTick = c.now + TICK_MS;
      }
    }
    return true;
  }

  /** One asynchronous traffic action, run to completion. */
  private drive(what: string, start: (done: Done) => void): void {
    let finished = false;
    let ok = false;
    let detail = "";
    start((o, d) => {
      if (finished) return;
      finished = true;
      ok = o;
      detail = d;
    });
    if (!this.runUntil(() => finished, STEP_LIMIT_MS)) detail = "no answer within 120 s";
    this.lastOk = finished && ok;
    this.print(`${what}: ${detail}`);
  }

  private client(name: string): Host {
    const h = this.clients.get(name);
    if (h === undefined) throw new TsvsError("TSVS_ERR_SCENARIO", `unknown client '${name}'`);
    return h;
  }

  private count(name: string): void {
    this.dist.set(name, (this.dist.get(name) ?? 0) + 1);
  }

  step(s: Step): void {
    switch (s.kind) {
      case "title":
        this.print(`== ${s.text}`);
        return;
      case "ipvsadm": {
        const r = runIpvsadm(s.argv, this.backend);
        this.print(`# ipvsadm ${s.argv.join(" ")}${r.code === 0 ? "" : ` -> exit ${r.code}`}`);
        if (r.stdout !== "") this.print(r.stdout);
        if (r.stderr !== "") this.print(r.stderr);
        this.lastOk = r.code === 0;
        return;
      }
      case "fwmark": {
        this.engine.fwmarks.add(parseFwmarkRule(s.rule));
        // A fwmark service has no VIP of its own: the rule's destination is the address the
        // director must answer for (what `ip addr add VIP` does on a kernel director).
        const m = /(?:^|\s)(?:-d|--destination)\s+(\d+\.\d+\.\d+\.\d+)(?:\/32)?(?:\s|$)/.exec(s.rule);
        const vip = m === null ? null : parseIPv4(m[1]);
        if (vip !== null) this.engine.ctl.addOwnedAddress(vip);
        this.print(`# fwmark ${s.rule}`);
        this.lastOk = true;
        return;
      }
      case "sysctl": {
        const key = SYSCTL_NAMES[s.name];
        if (key === undefined) throw new TsvsError("TSVS_ERR_SCENARIO", `unknown sysctl '${s.name}'`);
        const sys = this.engine.sysctls as unknown as Record<string, number | boolean>;
        sys[key] = typeof sys[key] === "boolean" ? s.value !== 0 : s.value;
        this.print(`# sysctl net.ipv4.vs.${s.name}=${s.value}`);
        return;
      }
      case "client":
        this.clients.set(s.name, this.lab.addClient(s.name, s.addr));
        return;
      case "http":
        return this.http(s.count, target(s.target), s.from, s.keepalive, s.path);
      case "udp":
        return this.udp(s.count, target(s.target), s.from);
      case "ping": {
        const host = this.client(s.from);
        const dst = address(s.target);
        this.drive(`ping ${s.target} from ${s.from}`, (done) =>
          host.ping(dst, (err, r) =>
            err !== null ? done(false, err.message) : done(true, `reply from ${formatIPv4(r!.from)}`),
          ),
        );
        return;
      }
      case "download":
        return this.download(s.bytes, target(s.target), s.from);
      case "open": {
        this.keep.set(s.name, { from: this.client(s.from), target: target(s.target), socket: null });
        this.print(`# open ${s.name} to ${s.target} from ${s.from}`);
        return;
      }
      case "request":
        return this.request(s.name);
      case "close":
        return this.closeKeep(s.name);
      case "stop":
      case "start": {
        const srv = this.lab.servers.find((x) => x.name === s.server);
        if (srv === undefined) throw new TsvsError("TSVS_ERR_SCENARIO", `unknown server '${s.server}'`);
        const app = s.port === 80 ? srv.apps.http80 : s.port === 8080 ? srv.apps.http8080 : null;
        if (app === null) throw new TsvsError("TSVS_ERR_SCENARIO", `${s.server} serves HTTP on 80 and 8080`);
        if (s.kind === "stop") app.stop();
        else app.start();
        this.print(`# ${s.kind} ${s.server}:${s.port}`);
        return;
      }
      case "wait": {
        const until = this.clock.now + s.ms;
        this.runUntil(() => this.clock.now >= until, s.ms + 1);
        this.print(`# wait ${s.ms / 1000} s`);
        return;
      }
      case "show":
        return this.show(s.what, s.argv);
      case "expect":
        return this.expect(s.what, s.args);
    }
  }

  private http(
    n: number,
    [dst, port]: [number, number],
    from: string,
    keepalive: boolean,
    path: string,
  ): void {
    const host = this.client(from);
    this.drive(
      `http ${n} ${formatIPv4(dst)}:${port}${keepalive ? " keepalive" : ""} from ${from}`,
      (done) => {
        let left = n;
        let okCount = 0;
        let socket: TcpSocket | undefined;
        let firstErr = "";
        const next = (): void => {
          if (left === 0) {
            if (socket !== undefined && socket.state === "ESTABLISHED") socket.end();
            done(okCount === n, `${okCount}/${n} answered${firstErr === "" ? "" : ` (${firstErr})`}`);
            return;
          }
          left--;
          httpGet(host, dst, port, path, { keepalive, socket }, (err, res) => {
            if (err === null && res !== null && res.status === 200) {
              okCount++;
              this.count(new TextDecoder().decode(res.body).trim());
              socket = keepalive && res.keepalive ? res.socket : undefined;
            } else if (firstErr === "") firstErr = err !== null ? err.message : `status ${res?.status}`;
            next();
          });
        };
        next();
      },
    );
  }

  private udp(n: number, [dst, port]: [number, number], from: string): void {
    const host = this.client(from);
    this.drive(`udp ${n} ${formatIPv4(dst)}:${port} from ${from}`, (done) => {
      let left = n;
      let okCount = 0;
      let firstErr = "";
      const next = (): void => {
        if (left === 0) {
          done(okCount === n, `${okCount}/${n} answered${firstErr === "" ? "" : ` (${firstErr})`}`);
          return;
        }
        left--;
        udpRequest(host, dst, port, "query", { timeoutMs: 1000 }, (err, answer) => {
          if (err === null && answer !== null) {
            okCount++;
            this.count(new TextDecoder().decode(answer).trim());
          } else if (firstErr === "") firstErr = err?.message ?? "no answer";
          next();
        });
      };
      next();
    });
  }

  private download(bytes: number, [dst, port]: [number, number], from: string): void {
    const host = this.client(from);
    this.drive(`download ${bytes} bytes from ${formatIPv4(dst)}:${port}`, (done) => {
      httpGet(host, dst, port, `/bytes/${bytes}`, { timeoutMs: STEP_LIMIT_MS }, (err, res) => {
        if (err !== null || res === null) return done(false, err?.message ?? "no response");
        const want = patternBytes(bytes);
        const got = res.body;
        if (got.length !== want.length) return done(false, `got ${got.length} bytes`);
        for (let i = 0; i < want.length; i++) {
          if (got[i] !== want[i]) return done(false, `byte ${i} differs`);
        }
        done(true, `${got.length} bytes verified`);
      });
    });
  }

  private request(name: string): void {
    const k = this.keep.get(name);
    if (k === undefined) throw new TsvsError("TSVS_ERR_SCENARIO", `no connection named '${name}'`);
    const [dst, port] = k.target;
    this.drive(`request on ${name}`, (done) => {
      httpGet(k.from, dst, port, "/", { keepalive: true, socket: k.socket ?? undefined }, (err, res) => {
        if (err !== null || res === null) return done(false, err?.message ?? "no response");
        const who = new TextDecoder().decode(res.body).trim();
        this.count(who);
        k.socket = res.keepalive ? res.socket : null;
        done(true, `answered by ${who}`);
      });
    });
  }

  private closeKeep(name: string): void {
    const k = this.keep.get(name);
    if (k === undefined) throw new TsvsError("TSVS_ERR_SCENARIO", `no connection named '${name}'`);
    this.keep.delete(name);
    const s = k.socket;
    if (s === null) {
      this.print(`close ${name}: was not open`);
      return;
    }
    this.drive(`close ${name}`, (done) => {
      s.onClose = (hadError) => done(!hadError, hadError ? "reset" : "closed");
      s.end();
    });
  }

  private show(what: string, argv: string[]): void {
    switch (what) {
      case "distribution":
        this.print(`distribution: ${this.distText()}`);
        return;
      case "conns":
        this.print(runIpvsadm(["-L", "-n", "-c"], this.backend).stdout);
        return;
      case "counters":
        this.print(this.countersText());
        return;
      case "ipvsadm": {
        const r = runIpvsadm(argv, this.backend);
        this.print(`# ipvsadm ${argv.join(" ")}`);
        this.print(r.stdout + r.stderr);
        return;
      }
    }
  }

  private expect(what: string, args: string[]): void {
    let want = "";
    let got = "";
    switch (what) {
      case "distribution": {
        const m = new Map<string, number>();
        for (const a of args) {
          const p = /^([A-Za-z0-9_-]+)=(\d+)$/.exec(a);
          if (p === null)
            throw new TsvsError("TSVS_ERR_SCENARIO", `expect distribution takes NAME=N, not '${a}'`);
          m.set(p[1], Number(p[2]));
        }
        want = distText(m);
        got = this.distText();
        this.dist.clear();
        break;
      }
      case "result":
        want = args[0] ?? "ok";
        got = this.lastOk ? "ok" : "error";
        break;
      case "conns":
        want = String(Number(args[0]));
        got = String(this.engine.conns.size);
        break;
    }
    if (want === got) this.print(`expect ${what} ${want}: ok`);
    else {
      this.failures++;
      this.print(`expect ${what} ${want}: FAILED, got ${got}`);
    }
  }

  private distText(): string {
    return distText(this.dist);
  }

  private countersText(): string {
    const c = this.engine.counters;
    const lines = [
      `frames in ${c.rxFrames}, out ${c.txFrames}, passed ${c.passed}`,
      `arp replies ${c.arpReplies}, arp requests ${c.arpRequests}, echo replies ${c.echoReplies}, icmp errors ${c.icmpErrorsSent}`,
      `connections created ${c.connsCreated}, expired ${c.connsExpired}, dropped ${c.connsDropped}`,
    ];
    const drops = Object.entries(c.dropTable());
    lines.push(`drops: ${drops.length === 0 ? "none" : drops.map(([k, v]) => `${k}=${v}`).join(" ")}`);
    return lines.join("\n");
  }
}

function distText(m: Map<string, number>): string {
  const parts = [...m.entries()].filter(([, v]) => v > 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return parts.length === 0 ? "(none)" : parts.map(([k, v]) => `${k}=${v}`).join(" ");
}

function address(s: string): number {
  const a = parseIPv4(s);
  if (a === null) throw new TsvsError("TSVS_ERR_SCENARIO", `bad address '${s}'`);
  return a;
}

function target(s: string): [number, number] {
  const i = s.lastIndexOf(":");
  const port = Number(s.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new TsvsError("TSVS_ERR_SCENARIO", `target must be ADDRESS:PORT, not '${s}'`);
  return [address(s.slice(0, i)), port];
}

/**
 * Runs one scenario. A failing ipvsadm command stops the scenario unless the next step is
 * `expect result error`; a step that cannot run (unknown client, bad target) stops it too.
 */
export function runScenario(scn: Scenario): ScenarioResult {
  const r = new Runner((scn.method ?? "nat") as LabMethod);
  r.print(`### ${scn.file} (method ${scn.method ?? "nat"})`);
  const steps = scn.steps;
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i];
    try {
      r.step(s);
    } catch (e) {
      if (!(e instanceof TsvsError)) throw e;
      r.failures++;
      r.print(`${scn.file}:${s.line}: ${e.message}; scenario stopped`);
      break;
    }
    if (s.kind === "ipvsadm" && !r.lastOk) {
      const next = steps[i + 1];
      if (next?.kind !== "expect" || next.what !== "result" || next.args[0] !== "error") {
        r.failures++;
        r.print(`${scn.file}:${s.line}: ipvsadm failed; scenario stopped`);
        break;
      }
    }
  }
  return { output: r.output(), failures: r.failures };
}

function scenarioFiles(args: string[]): string[] {
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--all") {
      const dir = args[++i];
      if (dir === undefined) throw new TsvsError("TSVS_ERR_USAGE", "sim --all needs a directory");
      const names = readdirSync(dir)
        .filter((n) => n.endsWith(".tsvs"))
        .sort();
      if (names.length === 0) throw new TsvsError("TSVS_ERR_USAGE", `no *.tsvs files in ${dir}`);
      for (const n of names) files.push(join(dir, n));
    } else if (args[i].startsWith("-")) {
      throw new TsvsError("TSVS_ERR_USAGE", `sim: unknown option '${args[i]}'`);
    } else files.push(args[i]);
  }
  if (files.length === 0)
    throw new TsvsError("TSVS_ERR_USAGE", "usage: tsvs sim FILE... | tsvs sim --all DIR");
  return files;
}

export async function simMain(args: string[]): Promise<number> {
  let scenarios: Scenario[];
  try {
    scenarios = scenarioFiles(args).map((f) => {
      let text: string;
      try {
        if (!statSync(f).isFile()) throw new TsvsError("TSVS_ERR_USAGE", "not a file");
        text = readFileSync(f, "utf8");
      } catch (e) {
        throw new TsvsError("TSVS_ERR_SCENARIO", `${f}: ${(e as Error).message}`);
      }
      return parseScenario(text, f);
    });
  } catch (e) {
    if (e instanceof TsvsError) {
      process.stderr.write(`tsvs: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  let failed = 0;
  for (const scn of scenarios) {
    const r = runScenario(scn);
    process.stdout.write(`${r.output}\n`);
    if (r.failures > 0) failed++;
  }
  const n = scenarios.length;
  process.stdout.write(
    failed === 0
      ? `${n} scenario${n === 1 ? "" : "s"}: all expectations met\n`
      : `${failed} of ${n} scenarios failed\n`,
  );
  return failed === 0 ? 0 : 1;
}
