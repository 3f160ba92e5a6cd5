// `tsvs fuzz` against a real daemon: three network namespaces, the daemon built from this checkout
// in the middle, the generator's frames at full rate from the sender (sender.ts), and the checks
// after: is the daemon alive, does it answer its control socket and ipvsadm -Ln, does a real curl
// through its NAT service still work, how did its RSS move, what did it count.
//
//   P-c  sender and client   eth0 198.18.112.2/24 fd74:7376::2/64 ─── eth0  P-d (the director,
//                            lan0 (no address) ─┐                          tsvs daemon --no-filter)
//   P-r  real servers        br0 198.18.113.11-13/24, ::11-::13/64          eth1
//                              ├─ rc0 ─────────┘                            │
//                              └─ rd0 ──────────────────────────────────────┘
//
// The real servers (one namespace, three addresses on a bridge) run the lab's small server
// (src/lab/server.ts: HTTP on 80 and 8080, UDP 53, answering "r"); their default routes point at
// the director, so NAT replies cross it. The sender's lan0 is a port of the same bridge: frames from
// "the real servers' side" (replies, errors quoting forwarded packets, VRRP, sync) arrive on the
// director's eth1 as they would from there. The director routes the fuzz clients (plan.ts) back to
// the sender, whose kernel drops what it gets (not its addresses, no forwarding).
//
// The daemon gets every frame (--no-filter, unless --filter), the plan's services, two sync daemons,
// and with VRRP (the default) two instances on eth1 holding addresses of their own, so that adverts
// moving them cannot take the NAT service away from the check that follows.

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { ControlCommand } from "../../control/commands.js";
import { request } from "../../daemon/control.js";
import type { DaemonStatus, Response } from "../../daemon/protocol.js";
import type { FuzzVrrp } from "../../fuzz/frames.js";
import { FUZZ_ADDR, PLAN_SERVICES, PLAN_SYNC_LINES, planTarget } from "../../fuzz/plan.js";
import { type SenderTotals, targetToJson } from "../../fuzz/sender.js";
import { mac } from "../../fuzz/wire.js";
import { addNetns, addVethPair, delNetns, ip, linkMac, nsExec, nsExecStatus } from "../../io/netns.js";
import { tsvsArgv } from "../../lab/daemon.js";
import { jsPath, type ProcRef, procAlive, procStart, resetPeakRss, sleep, stopProc } from "../../lab/proc.js";
import { parseIpvsadm } from "../ipvsadm/parse.js";
import { ipvsadmRemote } from "../ipvsadm-client.js";

export const FUZZ_RUN_ROOT = "/run/tsvs/fuzz";

export interface NetnsFuzzOptions {
  /** Namespace prefix: P-c, P-d, P-r (at most 12 characters). */
  prefix: string;
  seed: number;
  count: number;
  /** First frame index. */
  start: number;
  /** Frames a second at most (0: as fast as the kernel takes them). */
  rate: number;
  /** The sending stops after this many seconds even if count frames were not sent. */
  seconds: number;
  /** Leave the namespaces and the daemon running afterwards. */
  keep: boolean;
  /** Use the namespaces and daemon a --keep run left (else they are made afresh). */
  reuse: boolean;
  /** Keep the daemon's kernel socket filter (by default every frame reaches the engine). */
  filter: boolean;
  /** VRRP instances on the director (default true). */
  vrrp: boolean;
  /** More arguments for `tsvs daemon` (--workers N, --io MODE…). */
  daemonArgs?: readonly string[];
  /** Progress lines (stderr in the CLI). */
  log: (line: string) => void;
}

/** A reading of the daemon. */
interface Reading {
  rxFrames: number;
  kernelDrops: number;
  counters: Record<string, number>;
  drops: Record<string, number>;
  connections: number;
  rssKiB: number;
  hwmKiB: number;
}

export interface CurlCheck {
  ok: boolean;
  attempts: number;
  /** What the last attempt printed (the real server's name) or its error. */
  answer: string;
}

export interface NetnsFuzzResult {
  seed: number;
  start: number;
  count: number;
  prefix: string;
  sender: SenderTotals;
  /** The sending's duration and rate (frames the kernel took a second). */
  seconds: number;
  rate: number;
  daemon: {
    pid: number;
    alive: boolean;
    /** Exit status and signal when it died (null when alive, or when it was not our child). */
    exitCode: number | null;
    signal: string | null;
    stderrTail: string;
    rssBeforeKiB: number;
    rssAfterKiB: number;
    /** VmHWM: the most it held. */
    rssPeakKiB: number;
    /** RSS while the frames went out: [seconds since the start of the sending, KiB], every 5 s. */
    rssSamples: [number, number][];
  };
  answers: {
    status: boolean;
    ipvsadm: boolean;
    ipvsadmLines: number;
    /** ipvsadm -Lnc: the connection listing (the fuzz frames' connections, in whatever state). */
    conns: boolean;
    connLines: number;
    curl: CurlCheck;
    curl6: CurlCheck;
  };
  /** Counter increases over the run (status --json: counters, drops by reason). */
  counters: Record<string, number>;
  drops: Record<string, number>;
  connectionsAfter: number;
  /**
   * Where the frames went: the sender's kernel took them (sent); its veths dropped some on the way
   * (senderLinkDropped: tx_dropped, a full backlog or a frame the peer cannot take) and the bridge
   * some (bridgeDropped: rx_dropped of its port, e.g. a multicast source MAC); the director's links
   * received the rest (linkRx, with the traffic the run causes besides: the real servers' answers,
   * ARP, the curls), of which their stack dropped linkStackDropped after the packet sockets had seen
   * them (an ethertype nobody handles); the daemon's sockets read daemonRx of them and the kernel
   * dropped daemonKernelDrops for want of room in them.
   */
  accounting: {
    sent: number;
    senderLinkDropped: number;
    bridgeDropped: number;
    linkRx: number;
    linkStackDropped: number;
    daemonRx: number;
    daemonKernelDrops: number;
  };
  vrrp: unknown;
  sync: unknown;
  /** Why the run failed (empty: it passed). */
  failures: string[];
}

interface Names {
  client: string;
  director: string;
  servers: string;
  dir: string;
  sock: string;
  log: string;
  state: string;
  target: string;
  conf: string;
  serverLog: string;
}

function names(prefix: string): Names {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,11}$/.test(prefix)) throw new Error(`bad fuzz prefix '${prefix}'`);
  const dir = join(FUZZ_RUN_ROOT, prefix);
  return {
    client: `${prefix}-c`,
    director: `${prefix}-d`,
    servers: `${prefix}-r`,
    dir,
    sock: join(dir, "control.sock"),
    log: join(dir, "daemon.log"),
    state: join(dir, "state.json"),
    target: join(dir, "target.json"),
    conf: join(dir, "vrrp.conf"),
    serverLog: join(dir, "servers.log"),
  };
}

interface State {
  daemon: ProcRef;
  server: ProcRef;
  vrrp: boolean;
  filter: boolean;
}

/** The VRRP instances of the director (keepalived.conf below) as the generator aims at them. */
const VRRP_INSTANCES: FuzzVrrp[] = [
  { vrid: 51, version: 2, family: 4, pass: "fuzzpass" },
  { vrid: 52, version: 3, family: 4, pass: null },
];

const VRRP_CONF = `! tsvs fuzz: VRRP instances on the real servers' link, with addresses of their own
global_defs {
   router_id tsvs_fuzz
}
vrrp_instance FZ_V2 {
    state BACKUP
    interface eth1
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass fuzzpass
    }
    virtual_ipaddress {
        198.18.113.250/24
    }
}
vrrp_instance FZ_V3 {
    state MASTER
    interface eth1
    virtual_router_id 52
    version 3
    priority 150
    advert_int 1
    virtual_ipaddress {
        198.18.113.251/24
    }
}
`;

/** Removes what a run with this prefix left: the daemon and servers, the namespaces, the run directory. */
export async function teardown(prefix: string): Promise<void> {
  const n = names(prefix);
  const st = readState(n);
  if (st !== null) {
    await stopProc(st.daemon, 3000);
    await stopProc(st.server, 1000);
  }
  for (const ns of [n.client, n.director, n.servers]) delNetns(ns);
  rmSync(n.dir, { recursive: true, force: true });
  // The root goes with the last run (another run's directory keeps it).
  try {
    rmdirSync(FUZZ_RUN_ROOT);
  } catch {
    // not empty, or gone
  }
}

function readState(n: Names): State | null {
  try {
    return JSON.parse(readFileSync(n.state, "utf8")) as State;
  } catch {
    return null;
  }
}

function sysctl(ns: string, ...kv: string[]): void {
  nsExec(ns, ["sysctl", "-q", "-w", ...kv]);
}

/** The three namespaces and their links (see the header). */
function buildTopology(n: Names): void {
  const a = FUZZ_ADDR;
  for (const ns of [n.client, n.director, n.servers]) delNetns(ns);
  for (const ns of [n.client, n.director, n.servers]) {
    addNetns(ns);
    sysctl(ns, "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0");
    sysctl(ns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0");
  }
  addVethPair(
    { ns: n.director, ifname: "eth0", cidr: `${a.DIR0}/24` },
    { ns: n.client, ifname: "eth0", cidr: `${a.CIP}/24` },
  );
  addVethPair({ ns: n.director, ifname: "eth1", cidr: `${a.DIR1}/24` }, { ns: n.servers, ifname: "rd0" });
  addVethPair({ ns: n.client, ifname: "lan0" }, { ns: n.servers, ifname: "rc0" });
  // Every frame crosses the bridge as it came: no br_netfilter (which drops a malformed IPv4 or IPv6
  // header before the director could see it) and no multicast snooping (which keeps ff02::12 and
  // other groups nobody joined from the director's port).
  ip("-n", n.servers, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0");
  for (const k of ["iptables", "ip6tables", "arptables"]) {
    try {
      sysctl(n.servers, `net.bridge.bridge-nf-call-${k}=0`);
    } catch {
      // br_netfilter is not loaded: nothing to turn off.
    }
  }
  for (const port of ["rd0", "rc0"]) ip("-n", n.servers, "link", "set", port, "master", "br0");
  ip("-n", n.servers, "link", "set", "br0", "up");
  for (const rip of a.RIPS) ip("-n", n.servers, "addr", "add", `${rip}/24`, "dev", "br0");
  for (const rip of a.RIPS6) ip("-n", n.servers, "addr", "add", `${rip}/64`, "dev", "br0", "nodad");
  ip("-n", n.director, "addr", "add", `${a.DIR0_6}/64`, "dev", "eth0", "nodad");
  ip("-n", n.director, "addr", "add", `${a.DIR1_6}/64`, "dev", "eth1", "nodad");
  ip("-n", n.client, "addr", "add", `${a.CIP6}/64`, "dev", "eth0", "nodad");
  // The sender's bridge port carries frames only: no address, no IPv6 of its own.
  sysctl(n.client, "net.ipv6.conf.lan0.disable_ipv6=1");
  ip("-n", n.client, "route", "add", "default", "via", a.DIR0);
  ip("-n", n.client, "-6", "route", "add", "default", "via", a.DIR0_6);
  ip("-n", n.servers, "route", "add", "default", "via", a.DIR1);
  ip("-n", n.servers, "-6", "route", "add", "default", "via", a.DIR1_6);
  ip("-n", n.director, "route", "add", "default", "via", a.CIP);
  ip("-n", n.director, "-6", "route", "add", "default", "via", a.CIP6);
}

function spawnLogged(
  ns: string,
  argv: readonly string[],
  logFile: string,
  what: string,
): { ref: ProcRef; child: ChildProcess } {
  const fd = openSync(logFile, "a");
  try {
    const child = spawn("ip", ["netns", "exec", ns, ...argv], { detached: true, stdio: ["ignore", fd, fd] });
    if (child.pid === undefined) throw new Error(`cannot start ${what}`);
    return { ref: { pid: child.pid, start: procStart(child.pid), what }, child };
  } finally {
    closeSync(fd);
  }
}

function curl(ns: string, url: string): { ok: boolean; out: string } {
  const r = nsExecStatus(ns, ["curl", "-g", "-s", "-S", "-m", "5", url], 10_000);
  return {
    ok: r.status === 0,
    out: r.status === 0 ? r.stdout.trim() : (r.stderr || `exit ${r.status}`).trim(),
  };
}

async function curlCheck(ns: string, url: string, tries: number): Promise<CurlCheck> {
  let last = { ok: false, out: "" };
  for (let i = 1; i <= tries; i++) {
    last = curl(ns, url);
    if (last.ok && last.out === "r") return { ok: true, attempts: i, answer: last.out };
    await sleep(500);
  }
  return { ok: false, attempts: tries, answer: last.out };
}

function memKiB(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const get = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(s)?.[1] ?? 0);
    return { rss: get("VmRSS"), hwm: get("VmHWM") };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

async function status(sock: string): Promise<DaemonStatus | null> {
  try {
    const r: Response = await request(sock, { op: "status" }, 10_000);
    return "status" in r ? r.status : null;
  } catch {
    return null;
  }
}

function reading(st: DaemonStatus, pid: number): Reading {
  const m = memKiB(pid);
  return {
    rxFrames: st.interfaces.reduce((s, i) => s + i.rxFrames, 0),
    kernelDrops: st.interfaces.reduce((s, i) => s + i.kernelDrops, 0),
    counters: { ...st.counters },
    drops: { ...st.drops },
    connections: st.connections,
    rssKiB: m.rss,
    hwmKiB: m.hwm,
  };
}

function delta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(b)) {
    const d = (b[k] ?? 0) - (a[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** The plan's services, fwmark rules and sync daemons, as one control batch each. */
async function configure(sock: string): Promise<void> {
  const cmds: ControlCommand[] = [];
  for (const p of PLAN_SERVICES) {
    if (p.rule !== undefined) cmds.push({ op: "add-fwmark", rule: p.rule });
    for (const line of p.lines) {
      const r = parseIpvsadm(line.split(/\s+/));
      if (r.kind !== "ctl") throw new Error(`plan: not a table command: ${line}`);
      cmds.push(r.cmd);
    }
  }
  const apply = async (c: ControlCommand[], what: string): Promise<void> => {
    const r = await request(sock, { op: "apply", commands: c });
    if ("error" in r) throw new Error(`${what}: ${r.error}`);
  };
  await apply(cmds, "services");
  for (const line of PLAN_SYNC_LINES) {
    const r = parseIpvsadm(line.split(/\s+/));
    if (r.kind !== "daemon") throw new Error(`plan: not a daemon command: ${line}`);
    await apply([r.cmd], line);
  }
}

function stderrTail(file: string, lines = 20): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/** The links' counters the accounting reads (see NetnsFuzzResult.accounting). */
function linkCounters(n: Names): {
  rx: number;
  stackDropped: number;
  senderDropped: number;
  bridgeDropped: number;
} {
  const one = (ns: string, dev: string): { rx: number; rxDropped: number; txDropped: number } => {
    const info = JSON.parse(ip("-n", ns, "-j", "-s", "link", "show", "dev", dev)) as {
      stats64: { rx: { packets: number; dropped: number }; tx: { dropped: number } };
    }[];
    const s = info[0].stats64;
    return { rx: s.rx.packets, rxDropped: s.rx.dropped, txDropped: s.tx.dropped };
  };
  const d0 = one(n.director, "eth0");
  const d1 = one(n.director, "eth1");
  return {
    rx: d0.rx + d1.rx,
    stackDropped: d0.rxDropped + d1.rxDropped,
    senderDropped: one(n.client, "eth0").txDropped + one(n.client, "lan0").txDropped,
    bridgeDropped: one(n.servers, "rc0").rxDropped,
  };
}

/** Sets up (or reuses), runs the sender, checks; never throws for a failing daemon (failures lists why). */
export async function runNetnsFuzz(o: NetnsFuzzOptions): Promise<NetnsFuzzResult> {
  const n = names(o.prefix);
  const a = FUZZ_ADDR;
  let st = o.reuse ? readState(n) : null;
  if (o.reuse && (st === null || !procAlive(st.daemon)))
    throw new Error(`--reuse: no running fuzz daemon for prefix ${o.prefix} (start one with --keep)`);
  let daemonChild: ChildProcess | null = null;
  let exit: { code: number | null; signal: string | null } | null = null;
  if (st === null) {
    o.log(`setting up ${n.client}, ${n.director}, ${n.servers}`);
    await teardown(o.prefix);
    mkdirSync(n.dir, { recursive: true, mode: 0o700 });
    buildTopology(n);
    const server = spawnLogged(
      n.servers,
      [process.execPath, jsPath("src/lab/server.js"), "--name", "r", "--http", "80,8080", "--udp", "53"],
      n.serverLog,
      "fuzz real servers",
    ).ref;
    const args = ["daemon", "--control", n.sock, "--lip", a.LIP, "--http", "off"];
    if (!o.filter) args.push("--no-filter");
    args.push(...(o.daemonArgs ?? []));
    if (o.vrrp) {
      writeFileSync(n.conf, VRRP_CONF);
      args.push("--config", n.conf);
    }
    const d = spawnLogged(n.director, ["env", "-u", "TSVS_CONTROL", ...tsvsArgv(args)], n.log, "fuzz daemon");
    daemonChild = d.child;
    st = { daemon: d.ref, server, vrrp: o.vrrp, filter: o.filter };
    writeFileSync(n.state, `${JSON.stringify(st)}\n`);
    for (let i = 0; i < 200 && (await status(n.sock)) === null; i++) {
      if (!procAlive(d.ref)) throw new Error(`the daemon exited at start:\n${stderrTail(n.log)}`);
      await sleep(50);
    }
    if ((await status(n.sock)) === null)
      throw new Error(`the daemon did not answer in 10 s:\n${stderrTail(n.log)}`);
    await configure(n.sock);
  } else {
    o.log(`reusing ${n.director} (daemon pid ${st.daemon.pid})`);
  }
  const state = st;
  const pid = state.daemon.pid;
  if (daemonChild !== null)
    daemonChild.once("exit", (code, signal) => {
      exit = { code, signal };
    });

  // The NAT service works before the run, or the run would prove nothing.
  let warm = await curlCheck(n.client, `http://${a.NAT_VIP}/`, 20);
  if (!warm.ok)
    throw new Error(`curl through NAT fails before the run: ${warm.answer}\n${stderrTail(n.log)}`);
  warm = await curlCheck(n.client, `http://[${a.NAT_VIP6}]/`, 10);

  const macs = {
    dir: [mac(linkMac(n.director, "eth0")), mac(linkMac(n.director, "eth1"))] as const,
    sender: [mac(linkMac(n.client, "eth0")), mac(linkMac(n.client, "lan0"))] as const,
  };
  const target = planTarget(macs, { gso: true, vrrp: state.vrrp ? VRRP_INSTANCES : [] });
  writeFileSync(n.target, targetToJson(target));

  const before0 = await status(n.sock);
  if (before0 === null) throw new Error("the daemon does not answer its control socket before the run");
  const before = reading(before0, pid);
  // The peak reported is the run's, not the start-up's (its warm-up peaks higher before the gc).
  resetPeakRss(pid);
  const linksBefore = linkCounters(n);

  o.log(
    `sending ${o.count} frames (seed ${o.seed}, from ${o.start}${o.rate > 0 ? `, at most ${o.rate}/s` : ""}, at most ${o.seconds} s)`,
  );
  const rssSamples: [number, number][] = [];
  const t0 = performance.now();
  const sampler = setInterval(() => {
    rssSamples.push([Math.round((performance.now() - t0) / 1000), memKiB(pid).rss]);
  }, 5000);
  let sender: SenderTotals;
  try {
    sender = await runSenderIn(n, o);
  } finally {
    clearInterval(sampler);
  }
  // The daemon drains what is queued for it.
  await sleep(1000);

  const failures: string[] = [];
  const alive = procAlive(state.daemon) && exit === null;
  if (!alive) failures.push("the daemon died");
  const after0 = alive ? await status(n.sock) : null;
  if (alive && after0 === null) failures.push("the daemon does not answer its control socket");
  const after = after0 !== null ? reading(after0, pid) : null;
  const linksAfter = linkCounters(n);
  let ipvsadmOk = false;
  let ipvsadmLines = 0;
  let connsOk = false;
  let connLines = 0;
  if (alive) {
    const l = await ipvsadmRemote(n.sock, ["-Ln"], "");
    ipvsadmOk = typeof l !== "number" && l.code === 0;
    if (typeof l !== "number")
      ipvsadmLines = l.stdout.split("\n").filter((x) => x.startsWith("  -> ")).length;
    if (!ipvsadmOk) failures.push("ipvsadm -Ln fails");
    const c = await ipvsadmRemote(n.sock, ["-Lnc"], "");
    connsOk = typeof c !== "number" && c.code === 0;
    if (typeof c !== "number") connLines = c.stdout.split("\n").length - 3;
    if (!connsOk) failures.push("ipvsadm -Lnc fails");
  }
  const c4 = alive
    ? await curlCheck(n.client, `http://${a.NAT_VIP}/`, 3)
    : { ok: false, attempts: 0, answer: "" };
  const c6 = alive
    ? await curlCheck(n.client, `http://[${a.NAT_VIP6}]/`, 3)
    : { ok: false, attempts: 0, answer: "" };
  if (alive && !c4.ok) failures.push(`curl through NAT fails after the run: ${c4.answer}`);
  if (alive && warm.ok && !c6.ok)
    failures.push(`curl through NAT over IPv6 fails after the run: ${c6.answer}`);
  const mem = memKiB(pid);
  const exitNow = exit as { code: number | null; signal: string | null } | null;
  const result: NetnsFuzzResult = {
    seed: o.seed,
    start: o.start,
    count: o.count,
    prefix: o.prefix,
    sender,
    seconds: sender.seconds,
    rate: sender.seconds > 0 ? Math.round(sender.sent / sender.seconds) : 0,
    daemon: {
      pid,
      alive,
      exitCode: exitNow?.code ?? null,
      signal: exitNow?.signal ?? null,
      stderrTail: alive ? "" : stderrTail(n.log, 40),
      rssBeforeKiB: before.rssKiB,
      rssAfterKiB: after?.rssKiB ?? mem.rss,
      rssPeakKiB: after?.hwmKiB ?? mem.hwm,
      rssSamples,
    },
    answers: {
      status: after0 !== null,
      ipvsadm: ipvsadmOk,
      ipvsadmLines,
      conns: connsOk,
      connLines,
      curl: c4,
      curl6: c6,
    },
    counters: after !== null ? delta(before.counters, after.counters) : {},
    drops: after !== null ? delta(before.drops, after.drops) : {},
    connectionsAfter: after?.connections ?? 0,
    accounting: {
      sent: sender.sent,
      senderLinkDropped: linksAfter.senderDropped - linksBefore.senderDropped,
      bridgeDropped: linksAfter.bridgeDropped - linksBefore.bridgeDropped,
      linkRx: linksAfter.rx - linksBefore.rx,
      linkStackDropped: linksAfter.stackDropped - linksBefore.stackDropped,
      daemonRx: after !== null ? after.rxFrames - before.rxFrames : 0,
      daemonKernelDrops: after !== null ? after.kernelDrops - before.kernelDrops : 0,
    },
    vrrp: after0?.vrrp ?? null,
    sync: after0?.sync ?? null,
    failures,
  };
  if (!o.keep) {
    o.log("tearing down");
    await teardown(o.prefix);
  } else daemonChild?.unref();
  return result;
}

/** The sender in the client namespace; its progress lines go to o.log. */
function runSenderIn(n: Names, o: NetnsFuzzOptions): Promise<SenderTotals> {
  const argv = [
    process.execPath,
    jsPath("src/fuzz/sender.js"),
    "--target",
    n.target,
    "--seed",
    String(o.seed),
    "--start",
    String(o.start),
    "--count",
    String(o.count),
    "--rate",
    String(o.rate),
    "--seconds",
    String(o.seconds),
    "--ifaces",
    "eth0,lan0",
  ];
  return new Promise((resolve, reject) => {
    const child = spawn("ip", ["netns", "exec", n.client, ...argv], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let totals: SenderTotals | null = null;
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (c: string) => {
      out += c;
      for (let nl = out.indexOf("\n"); nl >= 0; nl = out.indexOf("\n")) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        try {
          const m = JSON.parse(line) as {
            progress?: { generated: number; sent: number; seconds: number };
            totals?: SenderTotals;
          };
          if (m.totals !== undefined) totals = m.totals;
          else if (m.progress !== undefined)
            o.log(
              `  ${m.progress.sent} sent (${Math.round(m.progress.sent / Math.max(m.progress.seconds, 0.001))}/s)`,
            );
        } catch {
          err += `${line}\n`;
        }
      }
    });
    child.stderr.on("data", (c: string) => {
      err += c;
    });
    child.once("error", reject);
    child.once("exit", (code) => {
      if (totals !== null) resolve(totals);
      else reject(new Error(`the sender exited with ${code}: ${err.trim()}`));
    });
  });
}

/** Whether the commands a run needs are here (curl, ip). */
export function netnsFuzzMissing(): string | null {
  for (const c of ["ip", "curl"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${c}`], { stdio: "ignore" });
    } catch {
      return `${c} is missing`;
    }
  }
  return existsSync(jsPath("src/fuzz/sender.js")) ? null : "tsvs is not built (no src/fuzz/sender.js)";
}
