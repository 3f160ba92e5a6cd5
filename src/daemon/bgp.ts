// The VIPs' announcement over BGP, through BIRD (docs/scale-out.md "Announcing VIPs with BIRD").
//
// The daemon never speaks BGP: it writes BIRD's configuration (src/config/bird.ts) and drives BIRD.
//   - A VIP is announced while at least one of its virtual services has quorum, keepalived's
//     (health/state.ts: the live servers' weights against quorum ± hysteresis): a VIP's healthy
//     ports stay reachable when another port of it has none; withdrawn when none has.
//   - Each VIP is a static protocol of BIRD, switched by `enable NAME` / `disable NAME` on BIRD's
//     control socket; the file always says the same (`disabled` where withdrawn), so a BIRD that
//     restarts from it announces what the daemon does.
//   - Liveness: the VIP routes point to a TUN device this process holds open (src/io/tun.ts). When
//     the daemon dies, whatever the signal, the kernel deletes the device, BIRD sees the interface
//     go (netlink) and withdraws every VIP at once: no timer, no daemon needed.
//   - BIRD runs as its own process (it daemonizes and survives the daemon on purpose, so that the
//     BGP sessions stay up across a daemon restart). At start the daemon reuses a BIRD answering on
//     the socket (configure), else starts one. On SIGTERM the VIPs are withdrawn first; the BIRD
//     tsvs started (its pid file is tsvs's) is stopped unless bird.keep_running; one started by
//     somebody else is left running.
//
// BIRD's control socket is spoken directly (its text protocol, doc/reply_codes: NNNN-text lines,
// a final "NNNN text" line, codes 8xxx/9xxx for errors) rather than through birdc: no process per
// change, the reply code tells success, and a dead BIRD is an error on connect.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { dirname, join } from "node:path";
import { type DirectorBgp, directorBirdConf, neighborProtocolName, vipProtocolName } from "../config/bird.js";
import { type BgpConfig, ConfigError, type ConfigModel, formatDiagnostic } from "../config/model.js";
import { parseBgpYaml } from "../config/yaml.js";
import { canonicalIPv6, formatIPv4, parseIPv4, parseIPv6, prefixToMask } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import type { IfaceAddr } from "../core/route.js";
import { TunDevice } from "../io/tun.js";

export interface BgpLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** A virtual service as the announcement sees it (daemon/config-runner.ts quorum()). */
export interface ServiceQuorum {
  /** "TCP 198.18.0.10:80" */
  name: string;
  /** Canonical text of its address; null for a fwmark service. */
  vip: string | null;
  quorumUp: boolean;
  weightSum: number;
  quorum: number;
}

export interface BgpVipStatus {
  vip: string;
  announced: boolean;
  /** Why it is (or is not) announced. */
  why: string;
  changes: number;
}

export interface BgpSessionStatus {
  protocol: string;
  neighbor: string;
  /** BIRD's protocol state (up, start, down) and BGP state (Established, Active, ...). */
  state: string;
  info: string;
}

export interface BgpStatus {
  routerId: string;
  localAs: number;
  liveness: { ifname: string; up: boolean };
  bird: {
    socket: string;
    config: string;
    /** BIRD's pid (from its pid file) when tsvs started it, null otherwise. */
    pid: number | null;
    startedByTsvs: boolean;
    reachable: boolean;
    /** The last error talking to BIRD, "" when none. */
    error: string;
  };
  vips: BgpVipStatus[];
  sessions: BgpSessionStatus[];
}

export interface BirdReply {
  /** The final line's code (0xxx success, 8xxx/9xxx errors). */
  code: number;
  /** Every line's text, codes taken off. */
  lines: string[];
}

const CLI_TIMEOUT_MS = 5_000;

/**
 * Sends `commands` on one connection to BIRD's control socket, each after the previous reply;
 * resolves with the replies (the greeting left out). Rejects when BIRD does not answer.
 */
export function birdCommands(socket: string, commands: readonly string[]): Promise<BirdReply[]> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socket);
    const replies: BirdReply[] = [];
    let buf = "";
    let cur: string[] = [];
    let greeted = false;
    let next = 0;
    const timer = setTimeout(
      () => fail(new Error(`${socket}: no answer from BIRD in ${CLI_TIMEOUT_MS} ms`)),
      CLI_TIMEOUT_MS,
    );
    const fail = (e: Error): void => {
      clearTimeout(timer);
      conn.destroy();
      reject(e);
    };
    const send = (): void => {
      if (next === commands.length) {
        clearTimeout(timer);
        conn.end();
        resolve(replies);
        return;
      }
      conn.write(`${commands[next++]}\n`);
    };
    conn.setEncoding("utf8");
    conn.on("error", (e) => fail(new Error(`${socket}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
    conn.on("close", () => {
      if (next < commands.length || !greeted) fail(new Error(`${socket}: BIRD closed the connection`));
    });
    conn.on("data", (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^(\d{4})([ -])(.*)$/.exec(line);
        if (m === null) {
          // " text": a continuation of the current code.
          cur.push(line.startsWith(" ") ? line.slice(1) : line);
          continue;
        }
        cur.push(m[3]);
        if (m[2] === "-") continue;
        const reply = { code: Number(m[1]), lines: cur };
        cur = [];
        if (!greeted) greeted = true;
        else replies.push(reply);
        send();
      }
    });
  });
}

/** A reply's error text, or null when it succeeded. */
function replyError(r: BirdReply): string | null {
  return r.code >= 8000 ? `BIRD ${r.code}: ${r.lines.join(" ").trim()}` : null;
}

/**
 * BGP sessions from `show protocols` (1002 lines: name, protocol, table, state, since, info):
 * those of our neighbours.
 */
export function parseShowProtocols(r: BirdReply, names: ReadonlyMap<string, string>): BgpSessionStatus[] {
  const out: BgpSessionStatus[] = [];
  for (const line of r.lines) {
    const f = line.trim().split(/\s+/);
    const neighbor = names.get(f[0] ?? "");
    if (neighbor === undefined || f[1] !== "BGP") continue;
    // Since is one or two words (time, or date and time); the BGP state is the word after it.
    const info = f
      .slice(5)
      .filter((w) => !/^\d/.test(w))
      .join(" ");
    out.push({ protocol: f[0], neighbor, state: f[3] ?? "", info });
  }
  return out;
}

/**
 * Whether `vip` (canonical text) lies in one of `prefixes` (the host's local table, --host-vips):
 * an address of the host, or inside a local route.
 */
export function inPrefixes(vip: string, prefixes: readonly IfaceAddr[]): boolean {
  const b6 = vip.includes(":") ? parseIPv6(vip) : null;
  const a4 = b6 === null ? parseIPv4(vip) : null;
  for (const p of prefixes) {
    if (p.addr6 === undefined) {
      if (a4 === null) continue;
      const mask = prefixToMask(p.prefix);
      if (((a4 ^ p.addr) & mask) === 0) return true;
      continue;
    }
    const n = b6 === null ? null : parseIPv6(p.addr6);
    if (b6 === null || n === null) continue;
    let bits = p.prefix;
    let i = 0;
    for (; bits >= 8; i++, bits -= 8) if (b6[i] !== n[i]) break;
    if (bits >= 8) continue;
    if (bits === 0 || ((b6[i] ^ n[i]) & (0xff << (8 - bits)) & 0xff) === 0) return true;
  }
  return false;
}

/**
 * The VIPs to announce now, and why each is or is not. `hostHas`: with --host-vips, whether the
 * host has the VIP now (the daemon serves it only then); absent, every VIP is served.
 */
export function announcement(
  vips: readonly string[],
  services: readonly ServiceQuorum[],
  hostHas?: (vip: string) => boolean,
): Map<string, { announce: boolean; why: string }> {
  const out = new Map<string, { announce: boolean; why: string }>();
  for (const vip of vips) {
    if (hostHas !== undefined && !hostHas(vip)) {
      out.set(vip, { announce: false, why: "not served: --host-vips, and the host does not have it" });
      continue;
    }
    const mine = services.filter((s) => s.vip === vip);
    const up = mine.filter((s) => s.quorumUp);
    if (up.length > 0)
      out.set(vip, {
        announce: true,
        why: `quorum: ${up.map((s) => `${s.name} (weight ${s.weightSum}, quorum ${s.quorum})`).join(", ")}`,
      });
    else
      out.set(vip, {
        announce: false,
        why:
          mine.length === 0
            ? "no virtual service"
            : `no quorum: ${mine.map((s) => `${s.name} (weight ${s.weightSum}, quorum ${s.quorum})`).join(", ")}`,
      });
  }
  return out;
}

/** The source address toward `neighbor` (`ip route get`), IPv4, or null. */
function sourceToward(neighbor: string): string | null {
  const r = spawnSync("ip", ["-j", "route", "get", neighbor], { encoding: "utf8", timeout: 5_000 });
  if (r.status !== 0) return null;
  try {
    const routes = JSON.parse(r.stdout) as Array<{ prefsrc?: string }>;
    const src = routes[0]?.prefsrc;
    return src !== undefined && !src.includes(":") ? src : null;
  } catch {
    return null;
  }
}

/** Where BIRD's files go: next to the daemon's control socket unless the configuration says. */
export function birdPaths(
  cfg: BgpConfig,
  controlSocket: string,
): { socket: string; config: string; pid: string } {
  const dir = dirname(controlSocket);
  const config = cfg.bird.config ?? join(dir, "bird.conf");
  return {
    socket: cfg.bird.socket ?? join(dir, "bird.ctl"),
    config,
    pid: join(dirname(config), "bird.pid"),
  };
}

function readPid(file: string): number | null {
  try {
    const n = Number(readFileSync(file, "utf8").trim());
    if (!Number.isInteger(n) || n <= 0) return null;
    process.kill(n, 0);
    return n;
  } catch {
    return null;
  }
}

export interface BgpDeps {
  log: BgpLog;
  /** The daemon's control socket (BIRD's files go next to it by default). */
  control: string;
  /** The virtual services and their quorum, now. */
  services: () => ServiceQuorum[];
  /** The VIPs of the configuration, canonical text (config/bird.ts bgpVips). */
  vips: () => { vips4: string[]; vips6: string[] };
  /** --host-vips: the host's locally delivered prefixes now (a VIP is served only inside them). */
  hostLocal?: () => IfaceAddr[] | null;
  /**
   * The sync warm-up (daemon/sync.ts): "warming up (N entries received)" while this director
   * waits for its peers' connection tables, null once it has them; no VIP is announced before.
   */
  warming?: () => string | null;
}

/** How often BIRD is asked for its sessions (status) and checked alive (restarted if not). */
const POLL_MS = 2_000;

export class BgpAnnouncer {
  private cfg: BgpConfig;
  private readonly deps: BgpDeps;
  private director: DirectorBgp | null = null;
  private tun: TunDevice | null = null;
  /** VIP → announced now (as written to the file and told to BIRD). */
  private readonly announced = new Map<string, boolean>();
  private readonly why = new Map<string, string>();
  private readonly changes = new Map<string, number>();
  private sessions: BgpSessionStatus[] = [];
  private lastText = "";
  private lastStructure = "";
  private startedByTsvs = false;
  private reachable = false;
  private error = "";
  private queue: Promise<void> = Promise.resolve();
  private pending = false;
  private poller: ReturnType<typeof setInterval> | null = null;
  private stopping = false;

  constructor(cfg: BgpConfig, deps: BgpDeps) {
    this.cfg = cfg;
    this.deps = deps;
  }

  private get paths() {
    return birdPaths(this.cfg, this.deps.control);
  }

  /**
   * Writes BIRD's configuration with the VIPs that have quorum now, reuses the BIRD on the socket
   * (configure) or starts one, then opens the liveness device: only from then on can BIRD announce.
   */
  async start(): Promise<void> {
    // In the queue: a health change during the start waits for it.
    const run = this.queue.then(() => this.begin());
    this.queue = run.catch(() => {});
    await run;
  }

  private async begin(): Promise<void> {
    this.director = this.directorOf();
    this.decide();
    const p = this.paths;
    this.write();
    const pidBefore = readPid(p.pid);
    let reused = false;
    try {
      // BIRD's own file, which is this one when tsvs started it (or bird.config names BIRD's).
      const [r] = await birdCommands(p.socket, ["configure"]);
      const e = replyError(r);
      if (e !== null) throw new TsvsError("TSVS_ERR_INVALID", `${p.config}: ${e}`);
      reused = true;
      this.startedByTsvs = pidBefore !== null;
    } catch (e) {
      if (e instanceof TsvsError) throw e;
      await this.startBird();
    }
    this.reachable = true;
    try {
      this.tun = TunDevice.open(this.cfg.livenessIfname);
    } catch (e) {
      if (this.startedByTsvs && !reused) await birdCommands(p.socket, ["down"]).catch(() => []);
      throw e;
    }
    this.deps.log.info(
      {
        bird: p.socket,
        reused,
        pid: readPid(p.pid),
        liveness: this.cfg.livenessIfname,
        announced: [...this.announced].filter(([, a]) => a).map(([v]) => v),
      },
      "bgp: announcing through BIRD",
    );
    this.poller = setInterval(() => void this.poll(), POLL_MS);
    this.poller.unref();
    await this.poll();
  }

  /** The health or the configuration changed: announce, withdraw or reconfigure (serialised). */
  update(cfg?: BgpConfig): void {
    if (cfg !== undefined) this.cfg = cfg;
    if (this.stopping || this.pending) return;
    this.pending = true;
    this.queue = this.queue
      .then(() => {
        this.pending = false;
        return this.apply();
      })
      .catch((e) => {
        this.error = (e as Error).message;
        this.deps.log.error({ err: this.error }, "bgp: change not applied");
      });
  }

  /** Resolves when every change asked so far has been applied. */
  idle(): Promise<void> {
    return this.queue;
  }

  /**
   * SIGTERM: every VIP withdrawn (disabled in BIRD and in the file), the liveness device closed,
   * and BIRD stopped if tsvs started it and keep_running is off.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.poller !== null) clearInterval(this.poller);
    await this.queue;
    const up = [...this.announced].filter(([, a]) => a).map(([v]) => v);
    for (const v of this.announced.keys()) {
      this.announced.set(v, false);
      this.why.set(v, "daemon stopping");
    }
    const p = this.paths;
    try {
      this.write();
      if (up.length > 0)
        await birdCommands(
          p.socket,
          up.map((v) => `disable ${vipProtocolName(v)}`),
        );
    } catch (e) {
      this.deps.log.warn({ err: (e as Error).message }, "bgp: BIRD did not confirm the withdrawal");
    }
    this.tun?.close();
    this.tun = null;
    if (this.startedByTsvs && !this.cfg.bird.keepRunning) {
      try {
        await birdCommands(p.socket, ["down"]);
        this.deps.log.info({ bird: p.socket }, "bgp: BIRD stopped");
      } catch (e) {
        this.deps.log.warn({ err: (e as Error).message }, "bgp: BIRD did not stop");
      }
    } else this.deps.log.info({ bird: p.socket, withdrawn: up }, "bgp: VIPs withdrawn, BIRD left running");
  }

  status(): BgpStatus {
    const p = this.paths;
    return {
      routerId: this.director?.routerId ?? "",
      localAs: this.cfg.localAs,
      liveness: { ifname: this.cfg.livenessIfname, up: this.tun?.open ?? false },
      bird: {
        socket: p.socket,
        config: p.config,
        pid: this.startedByTsvs ? readPid(p.pid) : null,
        startedByTsvs: this.startedByTsvs,
        reachable: this.reachable,
        error: this.error,
      },
      vips: [...this.announced].map(([vip, a]) => ({
        vip,
        announced: a && (this.tun?.open ?? false),
        why: this.deps.warming?.() ?? this.why.get(vip) ?? "",
        changes: this.changes.get(vip) ?? 0,
      })),
      sessions: this.sessions,
    };
  }

  private directorOf(): DirectorBgp {
    const { vips4, vips6 } = this.deps.vips();
    // Chosen once: a router id that moves would reset every session.
    let routerId = this.cfg.routerId ?? this.director?.routerId ?? null;
    if (routerId === null) {
      for (const n of this.cfg.neighbors) {
        routerId = sourceToward(n.address);
        if (routerId !== null) break;
      }
    }
    if (routerId === null)
      throw new TsvsError(
        "TSVS_ERR_HOST",
        "bgp: no IPv4 source address toward the neighbours to take as router_id: give bgp.router_id",
      );
    return {
      routerId,
      localAs: this.cfg.localAs,
      neighbors: this.cfg.neighbors,
      holdTime: this.cfg.holdTime,
      keepaliveTime: this.cfg.keepaliveTime,
      connectRetryTime: this.cfg.connectRetryTime,
      bfd: this.cfg.bfd,
      vips4,
      vips6,
      livenessIfname: this.cfg.livenessIfname,
    };
  }

  /** Sets `announced` and `why` from the services' quorum; returns the VIPs whose state changed. */
  private decide(): string[] {
    const d = this.director;
    if (d === null) return [];
    const vips = [...d.vips4, ...d.vips6];
    const local = this.deps.hostLocal?.() ?? null;
    const want = announcement(
      vips,
      this.deps.services(),
      local === null ? undefined : (vip) => inPrefixes(vip, local),
    );
    const warming = this.deps.warming?.() ?? null;
    if (warming !== null) for (const w of want.values()) Object.assign(w, { announce: false, why: warming });
    const changed: string[] = [];
    for (const v of [...this.announced.keys()]) if (!want.has(v)) this.announced.delete(v);
    for (const [v, w] of want) {
      const before = this.announced.get(v);
      if (before !== w.announce) {
        if (before !== undefined) {
          changed.push(v);
          this.changes.set(v, (this.changes.get(v) ?? 0) + 1);
        }
        this.announced.set(v, w.announce);
      }
      this.why.set(v, w.why);
    }
    return changed;
  }

  /** The file as the state says; returns whether it changed (and whether more than switches did). */
  private write(): { changed: boolean; structure: boolean } {
    const d = this.director;
    if (d === null) return { changed: false, structure: false };
    const p = this.paths;
    const on = new Set([...this.announced].filter(([, a]) => a).map(([v]) => v));
    const text = directorBirdConf(d, {
      announced: on,
      ...(this.cfg.bird.log !== null ? { logFile: this.cfg.bird.log } : {}),
    });
    const structure = text.replace(/^ {2}disabled;\n/gm, "");
    const out = { changed: text !== this.lastText, structure: structure !== this.lastStructure };
    if (out.changed) {
      mkdirSync(dirname(p.config), { recursive: true, mode: 0o755 });
      const tmp = `${p.config}.tmp`;
      writeFileSync(tmp, text, { mode: 0o600 });
      renameSync(tmp, p.config);
      this.lastText = text;
      this.lastStructure = structure;
    }
    return out;
  }

  private async apply(): Promise<void> {
    if (this.stopping) return;
    const before = this.director;
    this.director = this.directorOf();
    const changed = this.decide();
    const w = this.write();
    if (!w.changed) return;
    const p = this.paths;
    let commands: string[];
    if (w.structure || before === null) commands = ["configure"];
    else
      commands = changed.map((v) => `${this.announced.get(v) ? "enable" : "disable"} ${vipProtocolName(v)}`);
    if (commands.length === 0) return;
    const replies = await birdCommands(p.socket, commands);
    const errors = replies.flatMap((r) => replyError(r) ?? []);
    if (errors.length > 0) throw new Error(errors.join("; "));
    this.error = "";
    for (const v of changed)
      this.deps.log.info(
        { vip: v, why: this.why.get(v) },
        this.announced.get(v) ? "bgp: VIP announced" : "bgp: VIP withdrawn",
      );
    if (w.structure) this.deps.log.info({ config: p.config }, "bgp: BIRD reconfigured");
  }

  /** `bird -c CONF -s SOCKET -P PIDFILE`: BIRD daemonizes; waits until its socket answers. */
  private async startBird(): Promise<void> {
    const p = this.paths;
    mkdirSync(dirname(p.socket), { recursive: true, mode: 0o755 });
    const r = spawnSync(birdBinary(this.cfg.bird.binary), ["-c", p.config, "-s", p.socket, "-P", p.pid], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 10_000,
    });
    if (r.error !== undefined)
      throw new TsvsError(
        "TSVS_ERR_DEPENDENCY",
        `bgp: cannot run ${this.cfg.bird.binary}: ${r.error.message}`,
      );
    if (r.status !== 0)
      throw new TsvsError(
        "TSVS_ERR_DEPENDENCY",
        `bgp: ${this.cfg.bird.binary} exited with ${r.status}: ${(r.stderr || r.stdout).trim()}`,
      );
    const deadline = Date.now() + 5_000;
    for (;;) {
      try {
        await birdCommands(p.socket, []);
        break;
      } catch (e) {
        if (Date.now() > deadline)
          throw new TsvsError("TSVS_ERR_DEPENDENCY", `bgp: BIRD started but ${(e as Error).message}`);
        await new Promise((res) => setTimeout(res, 50));
      }
    }
    this.startedByTsvs = true;
    this.deps.log.info({ bird: p.socket, pid: readPid(p.pid) }, "bgp: BIRD started");
  }

  /** Sessions for status; a BIRD that stopped answering is started again from the file. */
  private async poll(): Promise<void> {
    if (this.stopping) return;
    const p = this.paths;
    const names = new Map(this.cfg.neighbors.map((n) => [neighborProtocolName(n), n.address]));
    try {
      const [r] = await birdCommands(p.socket, ["show protocols"]);
      this.sessions = parseShowProtocols(r, names);
      this.reachable = true;
    } catch (e) {
      if (this.stopping) return;
      this.reachable = false;
      this.sessions = [];
      this.error = (e as Error).message;
      this.deps.log.warn({ err: this.error }, "bgp: BIRD does not answer: starting it again");
      this.queue = this.queue.then(() =>
        this.startBird().catch((err: Error) => {
          this.error = err.message;
          this.deps.log.error({ err: err.message }, "bgp: BIRD could not be started");
        }),
      );
    }
  }
}

/** A bare command name looked up in PATH, then in /usr/sbin and /sbin (Debian's bird is in /usr/sbin). */
function birdBinary(name: string): string {
  if (name.includes("/")) return name;
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/sbin"];
  for (const d of dirs) if (d !== "" && existsSync(join(d, name))) return join(d, name);
  return name;
}

/** The canonical text of a model VIP (IPv4 as dotted quad). */
export function vipText(addr: number, addr6: string | undefined): string {
  return addr6 !== undefined ? (canonicalIPv6(addr6) ?? addr6) : formatIPv4(addr >>> 0);
}

/** `--bgp FILE`: its bgp section (throws ConfigError, or TsvsError when it cannot be read). */
export function loadBgpFile(path: string, log: BgpLog | null): BgpConfig {
  let src: string;
  try {
    src = readFileSync(path, "utf8");
  } catch (e) {
    throw new TsvsError("TSVS_ERR_PARSE", `${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const { bgp, warnings } = parseBgpYaml(src, path);
  for (const w of warnings) log?.warn({ file: path }, formatDiagnostic(w));
  return bgp;
}

/**
 * The bgp settings in force: the --config file's bgp section, or --bgp FILE's (one of the two).
 * At start (log null) a problem throws; at a reload it is logged and undefined keeps the settings.
 */
export function bgpConfigOf(
  config: { readonly model: ConfigModel | null; readonly path: string },
  bgpFile: string | undefined,
  log: BgpLog | null,
): BgpConfig | undefined {
  try {
    const fromFlag = bgpFile !== undefined ? loadBgpFile(bgpFile, log) : undefined;
    const inFile = config.model?.bgp;
    if (inFile !== undefined && fromFlag !== undefined)
      throw new TsvsError(
        "TSVS_ERR_USAGE",
        `${config.path} has a bgp section and --bgp ${bgpFile} another: give one of them`,
      );
    return inFile ?? fromFlag;
  } catch (e) {
    if (log === null) throw e;
    const text =
      e instanceof ConfigError ? e.diagnostics.map(formatDiagnostic).join("\n") : (e as Error).message;
    log.error({ errors: text }, "bgp: settings not reloaded");
    return undefined;
  }
}

/**
 * Whether the daemon will announce over BGP (--bgp, or a YAML --config with a bgp section): read
 * before anything else, to keep the capability BIRD needs (daemon/privileges.ts).
 */
export function announcesBgp(opts: { bgp?: string; config?: string }): boolean {
  if (opts.bgp !== undefined) return true;
  if (opts.config === undefined || !/\.ya?ml$/i.test(opts.config)) return false;
  try {
    return /^bgp[ \t]*:/m.test(readFileSync(opts.config, "utf8"));
  } catch {
    return false;
  }
}
