// The HA suites' topology (docs/ha.md): two directors on one client net and one server LAN, a
// client, two real servers and a router, in fresh namespaces tsvs-ha<tag><pid>-*:
//
//   b   bridges brc (client net 198.18.72.0/24) and brl (server LAN 198.18.73.0/24), one veth each
//   c   client 198.18.72.2; the VIP 198.18.72.100 is on-link
//   d1  director, eth0 198.18.72.11, eth1 198.18.73.11
//   d2  director, eth0 198.18.72.12, eth1 198.18.73.12       (tsvs, or keepalived for interop)
//   r1  real server 198.18.73.21, r2 198.18.73.22: the lab's HTTP server on :8080
//   x   router 198.18.72.254 / 198.18.73.254 (DR replies go through it)
//
// Floating: the VIP (VI_1 on eth0) and, for NAT, the real servers' gateway 198.18.73.1 (VI_2 on
// eth1), one vrrp_sync_group. Every veth keeps its default offloads.

import assert from "node:assert/strict";
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { delNetns, ip, netnsPids, nsExecStatus } from "../../src/io/netns.js";
import { keepalivedArgv, keepalivedLoggedState } from "../../src/lab/ha.js";
import { deadRuns, jsPath, sleep, stopProc, waitFor } from "../../src/lab/proc.js";
import { type Children, ENTRY } from "../support/e2e-daemon.js";

export const HA = {
  CIP: "198.18.72.2",
  VIP: "198.18.72.100",
  GW: "198.18.73.1",
  D1: { c: "198.18.72.11", l: "198.18.73.11" },
  D2: { c: "198.18.72.12", l: "198.18.73.12" },
  R1: "198.18.73.21",
  R2: "198.18.73.22",
  XC: "198.18.72.254",
  XL: "198.18.73.254",
  /** FULLNAT's local address: floats with VI_2. */
  LIP: "198.18.73.100",
  PORT: 8080,
} as const;

export interface HaNames {
  prefix: string;
  b: string;
  c: string;
  d1: string;
  d2: string;
  r1: string;
  r2: string;
  x: string;
  all: string[];
  /** Bridge-side veth of `ns:ifname` (in the bridge namespace b), filled by buildHa. */
  ports: Record<string, string>;
}

export function haNames(tag: string): HaNames {
  return haNamesOf(`tsvs-ha${tag}${process.pid}`);
}

/** The namespaces of a run whose names start with prefix. */
export function haNamesOf(prefix: string): HaNames {
  const all = ["b", "c", "d1", "d2", "r1", "r2", "x"].map((s) => `${prefix}-${s}`);
  const [b, c, d1, d2, r1, r2, x] = all;
  return { prefix, b, c, d1, d2, r1, r2, x, all, ports: {} };
}

let vethSeq = 0;

/** A veth from ns (named ifname there) to bridge br in the bridge namespace. */
function plug(n: HaNames, ns: string, ifname: string, br: string, addr: string): void {
  const peer = `hv${process.pid % 10000}x${vethSeq++}`;
  ip("link", "add", ifname, "netns", ns, "type", "veth", "peer", "name", peer, "netns", n.b);
  ip("-n", n.b, "link", "set", peer, "master", br);
  n.ports[`${ns}:${ifname}`] = peer;
  ip("-n", n.b, "link", "set", peer, "up");
  ip("-n", ns, "link", "set", ifname, "up");
  ip("-n", ns, "addr", "add", addr, "dev", ifname);
}

function sysctl(ns: string, kv: string): void {
  const r = nsExecStatus(ns, ["sysctl", "-qw", kv]);
  assert.equal(r.status, 0, `sysctl ${kv} in ${ns}: ${r.stderr}`);
}

export function buildHa(n: HaNames): void {
  for (const ns of n.all) {
    ip("netns", "add", ns);
    ip("-n", ns, "link", "set", "lo", "up");
  }
  for (const br of ["brc", "brl"]) {
    ip("-n", n.b, "link", "add", br, "type", "bridge");
    ip("-n", n.b, "link", "set", br, "up");
  }
  plug(n, n.c, "eth0", "brc", `${HA.CIP}/24`);
  plug(n, n.d1, "eth0", "brc", `${HA.D1.c}/24`);
  plug(n, n.d1, "eth1", "brl", `${HA.D1.l}/24`);
  plug(n, n.d2, "eth0", "brc", `${HA.D2.c}/24`);
  plug(n, n.d2, "eth1", "brl", `${HA.D2.l}/24`);
  plug(n, n.r1, "eth0", "brl", `${HA.R1}/24`);
  plug(n, n.r2, "eth0", "brl", `${HA.R2}/24`);
  plug(n, n.x, "eth0", "brc", `${HA.XC}/24`);
  plug(n, n.x, "eth1", "brl", `${HA.XL}/24`);
  sysctl(n.x, "net.ipv4.ip_forward=1");
}

/**
 * A partition between the two directors, and its end: their bridge ports on both nets become
 * isolated ports (a bridge forwards nothing between two isolated ports, everything between an
 * isolated port and the others), so each still reaches the client and the servers but neither
 * hears the other's adverts.
 */
export function partition(n: HaNames, on: boolean): void {
  for (const ns of [n.d1, n.d2])
    for (const ifname of ["eth0", "eth1"])
      ip(
        "-n",
        n.b,
        "link",
        "set",
        "dev",
        n.ports[`${ns}:${ifname}`],
        "type",
        "bridge_slave",
        "isolated",
        on ? "on" : "off",
      );
}

/** NAT: replies go back through the floating gateway; DR/TUN: through the router. */
export function serverRoutes(n: HaNames, method: HaMethod): void {
  for (const ns of [n.r1, n.r2])
    ip("-n", ns, "route", "replace", "default", "via", method === "nat" ? HA.GW : HA.XL);
}

/** `tsvs realserver setup --vip VIP --method dr` in r1 and r2 (VIP on lo, ARP sysctls). */
export function realserverDr(n: HaNames): void {
  for (const ns of [n.r1, n.r2]) {
    const r = nsExecStatus(ns, [
      process.execPath,
      ENTRY,
      "realserver",
      "setup",
      "--vip",
      HA.VIP,
      "--method",
      "dr",
    ]);
    assert.equal(r.status, 0, `realserver setup in ${ns}: ${r.stdout}${r.stderr}`);
  }
}

/** `ip netns exec ns ARGV…`, remembered by children (the suite's after() ends it). */
export function spawnIn(
  children: Children,
  ns: string,
  argv: string[],
  stdio: StdioOptions = "ignore",
): ChildProcess {
  return children.add(spawn("ip", ["netns", "exec", ns, ...argv], { stdio }));
}

/** The lab's HTTP server (GET /bytes/N: N pattern bytes) on :8080 in r1 and r2. */
export async function startServers(n: HaNames, children: Children): Promise<void> {
  for (const [ns, name] of [
    [n.r1, "r1"],
    [n.r2, "r2"],
  ] as const) {
    const p = spawnIn(children, ns, [
      process.execPath,
      jsPath("src/lab/server.js"),
      "--name",
      name,
      "--http",
      "8080",
    ]);
    assert.ok(p.pid !== undefined);
  }
  for (const addr of [HA.R1, HA.R2]) {
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      ok = nsExecStatus(n.x, ["curl", "-s", "-m", "1", `http://${addr}:${HA.PORT}/`]).status === 0;
      if (!ok) await sleep(50);
    }
    assert.ok(ok, `server ${addr} not answering`);
  }
}

export type HaMethod = "nat" | "dr" | "fullnat";

export interface DirectorOpts {
  /** Priority of VI_1/VI_2 on this director. */
  priority: number;
  version: 2 | 3;
  /** advert_int in seconds (v3 may be fractional). */
  advertInt: number;
  method: HaMethod;
  /** lvs_sync_daemon on eth1 tied to VI_1 (default true). */
  sync?: boolean;
  nopreempt?: boolean;
  state?: "MASTER" | "BACKUP";
  authPass?: string;
  /** A notify script (gets INSTANCE name state priority). */
  notify?: string;
  /** use_vmac on every instance: 00:00:5e:00:01:VRID answers for its addresses. */
  useVmac?: boolean;
  /** A vrrp_script `chk` (interval 1, weight 0: its failure is FAULT) tracked by VI_1. */
  trackScript?: string;
  /** Without the virtual_server (keepalived peers: no ip_vs here). */
  vrrpOnly?: boolean;
  /** Without the sync group and VI_2 (interop tests need one instance). */
  single?: boolean;
  /**
   * higher_prio_send_advert: a master that yields to a higher priority sends one advert first, so
   * the winner sees a lower priority and sends gratuitous ARPs (after a split brain).
   */
  higherPrioSendAdvert?: boolean;
  /** unicast_src_ip and unicast_peer (VI_1 only): adverts to the peer instead of 224.0.0.18. */
  unicast?: { src: string; peer: string };
}

/** A keepalived.conf for one director: runs unchanged on keepalived and on `tsvs daemon --config`. */
export function haConf(o: DirectorOpts): string {
  const auth =
    o.authPass === undefined
      ? ""
      : `    authentication {\n        auth_type PASS\n        auth_pass ${o.authPass}\n    }\n`;
  const common = (name: string, iface: string, vrid: number, ...vips: string[]): string =>
    `vrrp_instance ${name} {
    state ${o.state ?? "BACKUP"}
    interface ${iface}
    virtual_router_id ${vrid}
    priority ${o.priority}
    advert_int ${o.advertInt}
${o.version === 3 ? "    version 3\n" : ""}${o.higherPrioSendAdvert ? "    higher_prio_send_advert\n" : ""}${o.useVmac ? "    use_vmac\n" : ""}${
  o.unicast !== undefined && name === "VI_1"
    ? `    unicast_src_ip ${o.unicast.src}\n    unicast_peer {\n        ${o.unicast.peer}\n    }\n`
    : ""
}${o.nopreempt ? "    nopreempt\n" : ""}${auth}${o.notify ? `    notify ${o.notify}\n` : ""}${
  o.trackScript !== undefined && name === "VI_1" ? "    track_script {\n        chk\n    }\n" : ""
}    garp_master_delay 1
    virtual_ipaddress {
${vips.map((v) => `        ${v}/24\n`).join("")}    }
}
`;
  const lb = o.method === "nat" ? "NAT" : o.method === "fullnat" ? "FNAT" : "DR";
  const fnat = o.method === "fullnat";
  return `global_defs {
    router_id tsvs-ha
${o.sync === false ? "" : "    lvs_sync_daemon eth1 VI_1 id 7\n"}}

${o.trackScript === undefined ? "" : `vrrp_script chk {\n    script "${o.trackScript}"\n    interval 1\n    fall 1\n    rise 1\n}\n\n`}${o.single ? "" : "vrrp_sync_group G1 {\n    group {\n        VI_1\n        VI_2\n    }\n}\n\n"}${common("VI_1", "eth0", 51, HA.VIP)}
${o.single ? "" : fnat ? common("VI_2", "eth1", 52, HA.GW, HA.LIP) : common("VI_2", "eth1", 52, HA.GW)}
${fnat && !o.vrrpOnly ? `local_address_group lg1 {\n    ${HA.LIP}\n}\n\n` : ""}${
  o.vrrpOnly
    ? ""
    : `virtual_server ${HA.VIP} ${HA.PORT} {
    lb_algo rr
    lb_kind ${lb}
    protocol TCP
${fnat ? "    laddr_group_name lg1\n" : ""}
    real_server ${HA.R1} ${HA.PORT} {
        weight 1
    }
    real_server ${HA.R2} ${HA.PORT} {
        weight 1
    }
}
`
}`;
}

/** `tsvs status --json` of the daemon in ns (its namespace's default control socket). */
export function statusOf(ns: string): {
  vrrp?: Array<{
    name: string;
    state: string;
    effectivePriority: number;
    master: string | null;
    transitions: number;
  }>;
  sync?: Array<{
    role: string;
    connsSent: number;
    connsReceived: number;
    messagesReceived: number;
    drops: Record<string, number>;
  }>;
  connections: number;
} | null {
  const r = nsExecStatus(ns, [process.execPath, ENTRY, "status", "--json"], 10_000);
  if (r.status !== 0) return null;
  return JSON.parse(r.stdout);
}

export function stateOf(ns: string, inst = "VI_1"): string | null {
  return statusOf(ns)?.vrrp?.find((v) => v.name === inst)?.state ?? null;
}

/** Polls until instance `inst` of the daemon in ns is in `state`; the time it took (ms), or fails. */
export async function waitState(
  ns: string,
  state: string,
  timeoutMs: number,
  inst = "VI_1",
): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (stateOf(ns, inst) === state) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs)
      assert.fail(`${ns}: ${inst} not ${state} after ${timeoutMs} ms (now ${stateOf(ns, inst)})`);
    await sleep(50);
  }
}

/** The pino time (ms since the epoch) of the first log line matching re logged at or after `since`, or null. */
export function logTime(log: string, re: RegExp, since = 0): number | null {
  for (const line of log.split("\n")) {
    if (!re.test(line)) continue;
    try {
      const t = (JSON.parse(line) as { time: number }).time;
      if (t >= since) return t;
    } catch {
      // not JSON
    }
  }
  return null;
}

/** logTime, waiting up to ms for the line (the daemon's log reaches the pipe a little later). */
export async function waitLogTime(log: () => string, re: RegExp, since: number, ms = 3000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const t = logTime(log(), re, since);
    if (t !== null) return t;
    if (Date.now() - t0 > ms) assert.fail(`no log line ${re} since ${since}`);
    await sleep(50);
  }
}

/** Removes a run's namespaces, every process in them stopped by pid first. */
export async function removeHa(n: HaNames): Promise<void> {
  for (const ns of n.all) {
    for (const pid of safePids(ns)) await stopProc({ pid, start: 0, what: `process in ${ns}` }, 2000);
    rmSync(join("/run/tsvs", `netns-${ns}`), { recursive: true, force: true });
    delNetns(ns);
  }
}

function safePids(ns: string): number[] {
  try {
    return netnsPids(ns);
  } catch {
    return [];
  }
}

/** Runs of the HA suites killed before their cleanup: namespaces tsvs-ha<tag><pid>-* of dead pids. */
export async function removeStaleHa(tag: string): Promise<void> {
  for (const id of deadRuns(`tsvs-ha${tag}`)) await removeHa(haNamesOf(`tsvs-ha${tag}${id}`));
}

/** A work directory for one suite (config files, keepalived pid files, notify output). */
export function workDir(n: HaNames): string {
  const d = join("/tmp", `${n.prefix}`);
  mkdirSync(d, { recursive: true });
  return d;
}

export function writeFile(path: string, text: string, mode = 0o644): string {
  writeFileSync(path, text, { mode });
  return path;
}

export function readState(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "";
  }
}

/**
 * A keepalived running its VRRP subsystem only (-P), logging to the console (-l -D) into
 * `<dir>/ka.log`. Its state is read from that log, not from a notify script: keepalived forks
 * one script per transition and a loaded machine can finish MASTER's after BACKUP's, which
 * would leave the older state in the file. The VRRP process writes its log lines in order.
 */
export class Keepalived {
  readonly log: string;
  readonly vrrpPid: string;

  constructor(
    readonly dir: string,
    readonly instance: string,
  ) {
    this.log = join(dir, "ka.log");
    this.vrrpPid = join(dir, "ka-vrrp.pid");
  }

  start(children: Children, ns: string, conf: string, extra: readonly string[] = []): ChildProcess {
    rmSync(this.vrrpPid, { force: true });
    const out = openSync(this.log, "w");
    try {
      const argv = keepalivedArgv(conf, join(this.dir, "ka.pid"), this.vrrpPid, extra);
      return spawnIn(children, ns, argv, ["ignore", out, out]);
    } finally {
      closeSync(out);
    }
  }

  /** The state the VRRP instance last entered ("" before its first), as keepalived logged it. */
  state(): string {
    return keepalivedLoggedState(readState(this.log), this.instance) ?? "";
  }

  async wait(state: string, ms: number): Promise<void> {
    assert.ok(await waitFor(() => this.state() === state, ms), `keepalived not ${state} (${this.state()})`);
  }

  /** Forgets the last run's log, so that state() is "" until the next start logs. */
  reset(): void {
    rmSync(this.log, { force: true });
  }
}
