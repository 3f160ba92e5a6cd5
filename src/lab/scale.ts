// The scale-out lab (`tsvs lab up --directors N [--bgp]`, docs/lab.md "Scale-out", docs/scale-out.md):
// N active directors behind one upstream router that spreads the VIP's flows over them by ECMP.
//
//   client net  198.18.80.0/24  (veth c–x):   x .1; c .2–.9 (eight client addresses)
//   uplink      198.18.81.0/24  (bridge bru): x .1; dK .(10+K)       BGP sessions, ECMP next hops
//   server LAN  198.18.82.0/24  (bridge brs): x .1; dK .(10+K) (DIP); r1–r3 .21–.23;
//                                             NAT: dK's return gateway .(200+K) (VRRP);
//                                             FULLNAT: dK's local address .(110+K)
//   VIP 198.18.83.100/32 on no link: the router reaches it only through its route to the directors
//
// Every director runs `tsvs daemon --config dK.yaml`: the same service (the same real servers in
// the same order, so that mh builds the same table everywhere), the connection sync daemon as
// master and backup at once (an lvs_sync_daemon tied to no VRRP instance), and with --bgp the
// announcement of the VIP to the router over BGP. The router runs BIRD with `merge paths` into
// its kernel table (one multipath route, one next hop per director announcing) and
// fib_multipath_hash_policy=1, so the 5-tuple picks the director. Without --bgp the lab writes that
// multipath route itself, statically (no failover: a smoke test of the plumbing).
//
// Return paths (docs/scale-out.md "ECMP and the return path"):
//   DR, TUN   the real servers answer from the VIP straight to the router (default route via x);
//   NAT       a reply must reach a director that knows the connection. Each real server marks a
//             connection with the director whose MAC its last packet came from (nft: ct mark from
//             a map of director MACs) and routes the replies of mark K via dK's return gateway
//             .(200+K). That address is a VRRP instance that dK is master of and the other
//             directors back up, so when dK dies its connections' replies go to a live director,
//             which knows them through sync;
//   FULLNAT   the replies go to the local address of the director that made the connection.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { routerBirdConf } from "../config/bird.js";
import { TsvsError } from "../core/errors.js";
import {
  addNetns,
  delNetns,
  ip,
  linkMac,
  namespacesWith,
  netnsPids,
  nsExec,
  nsExecStatus,
} from "../io/netns.js";
import { startDaemonIn, tsvsCtlIn } from "./daemon.js";
import { realserverArgv } from "./lab.js";
import { commandPath, ensurePackages } from "./packages.js";
import { type ProcRef, procAlive, spawnInNs, stopProc, waitFor } from "./proc.js";
import { nginxAvailable, type ServerKind, startServer } from "./servers.js";
import {
  type LabMethod,
  type LabServerSpec,
  labDown,
  labNames,
  namespaceControlPath,
  RUN_ROOT,
  type ServerProc,
} from "./topology.js";

export const SCALE_ADDR = {
  CLIENT_NET: "198.18.80.0/24",
  X_CLIENT: "198.18.80.1",
  UPLINK_NET: "198.18.81.0/24",
  X_UPLINK: "198.18.81.1",
  LAN_NET: "198.18.82.0/24",
  X_LAN: "198.18.82.1",
  VIP: "198.18.83.100",
  ROUTER_AS: 65000,
  /** Director K is AS 65010+K: eBGP to the router; BIRD merges paths of different neighbour ASes. */
  DIRECTOR_AS_BASE: 65010,
  /** The sync daemons' id (every director sends and accepts this one). */
  SYNC_ID: 17,
  /** NAT: VRRP VRID of dK's return gateway is VRID_BASE + K. */
  VRID_BASE: 80,
  /** NAT: the real servers' routing table for the replies of director K is TABLE_BASE + K. */
  TABLE_BASE: 100,
} as const;

/** The client's addresses: .2 to .9 of the client net. */
export const SCALE_CLIENTS: readonly string[] = [2, 3, 4, 5, 6, 7, 8, 9].map((i) => `198.18.80.${i}`);
export const SCALE_MAX_DIRECTORS = 8;
/** BGP timers of the lab: a dead director's session ends within the hold time. */
export const SCALE_BGP = { HOLD: 3, KEEPALIVE: 1 } as const;

/** Director K's addresses and numbers. */
export interface DirectorPlan {
  k: number;
  ns: string;
  uplink: string;
  dip: string;
  /** NAT: the real servers' gateway for this director's replies (VRRP, this director master). */
  returnGw: string;
  /** FULLNAT: this director's local address. */
  lip: string;
  as: number;
}

export interface ScaleNames {
  prefix: string;
  client: string;
  router: string;
  bridge: string;
  servers: LabServerSpec[];
  runDir: string;
  /** The scale lab's files: state, director configurations and logs, BIRD's files. */
  dir: string;
  stateFile: string;
  routerBirdConf: string;
  routerBirdSock: string;
  routerBirdLog: string;
}

export function scaleNames(prefix?: string): ScaleNames {
  const lab = labNames(prefix);
  const servers = [1, 2, 3].map((i) => ({
    name: `r${i}`,
    ns: `${lab.prefix}-r${i}`,
    rip: `198.18.82.${20 + i}`,
    rip6: "",
    onLan: true,
  }));
  const dir = join(lab.runDir, "scale");
  return {
    prefix: lab.prefix,
    client: lab.client,
    router: lab.router,
    bridge: lab.bridge,
    servers,
    runDir: lab.runDir,
    dir,
    stateFile: join(dir, "state.json"),
    routerBirdConf: join(dir, "router-bird.conf"),
    routerBirdSock: join(dir, "router-bird.ctl"),
    routerBirdLog: join(dir, "router-bird.log"),
  };
}

export function directorPlan(names: ScaleNames, k: number): DirectorPlan {
  return {
    k,
    ns: `${names.prefix}-d${k}`,
    uplink: `198.18.81.${10 + k}`,
    dip: `198.18.82.${10 + k}`,
    returnGw: `198.18.82.${200 + k}`,
    lip: `198.18.82.${110 + k}`,
    as: SCALE_ADDR.DIRECTOR_AS_BASE + k,
  };
}

/** The files of director K: its configuration, its daemon's log, its BIRD's socket and file. */
export function directorFiles(names: ScaleNames, k: number) {
  const d = join(names.dir, `d${k}`);
  return {
    dir: d,
    config: join(d, "tsvs.yaml"),
    log: join(d, "daemon.log"),
    birdSock: join(d, "bird.ctl"),
    birdConf: join(d, "bird.conf"),
    birdLog: join(d, "bird.log"),
    control: namespaceControlPath(`${names.prefix}-d${k}`),
  };
}

export interface ScaleDirectorState {
  k: number;
  ns: string;
  daemon: ProcRef | null;
  status: string;
}

export interface ScaleState {
  version: 1;
  prefix: string;
  method: LabMethod;
  scheduler: string;
  sync: boolean;
  sloppyTcp: boolean;
  bgp: boolean;
  servers: ServerKind;
  directors: ScaleDirectorState[];
  /** BIRD on the router (with --bgp). */
  routerBird: ProcRef | null;
  procs: ServerProc[];
  createdAt: string;
}

export interface ScaleOptions {
  directors: number;
  method: LabMethod;
  /** The service's scheduler (default mh: every director picks the same real server for a flow). */
  scheduler?: string;
  /** Connection sync, master and backup on every director (default on). */
  sync?: boolean;
  /**
   * sloppy_tcp=1 on the directors (default on): a director that gets a flow in the middle (ECMP
   * moved it) schedules it from any packet, not only a SYN — what lets mh carry on without sync.
   */
  sloppyTcp?: boolean;
  /** BGP (BIRD on the router and in every director) instead of a static multipath route. */
  bgp?: boolean;
  servers?: ServerKind | "auto";
  /** Start the daemons (default true). */
  daemon?: boolean;
  log?: (line: string) => void;
}

export function readScaleState(names: ScaleNames): ScaleState | null {
  try {
    return JSON.parse(readFileSync(names.stateFile, "utf8")) as ScaleState;
  } catch {
    return null;
  }
}

export function writeScaleState(names: ScaleNames, st: ScaleState): void {
  mkdirSync(names.dir, { recursive: true });
  writeFileSync(names.stateFile, `${JSON.stringify(st, null, 2)}\n`);
}

function sysctl(ns: string, key: string, value: string | number): void {
  nsExec(ns, ["sysctl", "-q", "-w", `${key}=${value}`]);
}

/** A veth pair between two namespaces (created directly in them), optional addresses, both up. */
function veth(aNs: string, aIf: string, aCidr: string | null, bNs: string, bIf: string): void {
  ip("link", "add", aIf, "netns", aNs, "type", "veth", "peer", "name", bIf, "netns", bNs);
  if (aCidr !== null) ip("-n", aNs, "addr", "add", aCidr, "dev", aIf);
  ip("-n", aNs, "link", "set", aIf, "up");
  ip("-n", bNs, "link", "set", bIf, "up");
}

function bridgePort(
  names: ScaleNames,
  bridge: string,
  port: string,
  ns: string,
  ifname: string,
  cidr: string,
) {
  veth(ns, ifname, cidr, names.bridge, port);
  ip("-n", names.bridge, "link", "set", port, "master", bridge);
}

function newNamespace(ns: string): void {
  addNetns(ns);
  // IPv4 only: router and neighbour solicitations would only add noise to the daemons' links.
  sysctl(ns, "net.ipv6.conf.all.disable_ipv6", 1);
  sysctl(ns, "net.ipv6.conf.default.disable_ipv6", 1);
}

/** Namespaces, bridges, the client, the router and the real servers (the directors come after). */
function buildBase(names: ScaleNames, method: LabMethod): void {
  const A = SCALE_ADDR;
  for (const ns of [names.bridge, names.client, names.router, ...names.servers.map((s) => s.ns)])
    newNamespace(ns);
  for (const br of ["bru", "brs"]) {
    ip("-n", names.bridge, "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0");
    ip("-n", names.bridge, "link", "set", br, "up");
  }
  veth(names.client, "eth0", `${SCALE_CLIENTS[0]}/24`, names.router, "eth0");
  for (const c of SCALE_CLIENTS.slice(1)) ip("-n", names.client, "addr", "add", `${c}/24`, "dev", "eth0");
  ip("-n", names.router, "addr", "add", `${A.X_CLIENT}/24`, "dev", "eth0");
  ip("-n", names.client, "route", "add", "default", "via", A.X_CLIENT);
  bridgePort(names, "bru", "xu", names.router, "eth1", `${A.X_UPLINK}/24`);
  bridgePort(names, "brs", "xs", names.router, "eth2", `${A.X_LAN}/24`);
  sysctl(names.router, "net.ipv4.ip_forward", 1);
  // The 5-tuple picks the director (D.6: policy 1 = L4), not only the addresses.
  sysctl(names.router, "net.ipv4.fib_multipath_hash_policy", 1);
  // DR and TUN replies come from the VIP on the server LAN while the route to the VIP points up.
  for (const c of ["all", "default", "eth2"]) sysctl(names.router, `net.ipv4.conf.${c}.rp_filter`, 0);
  for (const s of names.servers) {
    bridgePort(names, "brs", s.name, s.ns, "eth0", `${s.rip}/24`);
    ip("-n", s.ns, "route", "add", "default", "via", A.X_LAN);
  }
  if (method === "nat") for (const s of names.servers) natReturnBase(names, s);
}

/**
 * NAT's return path on a real server: a connection's mark is set, on every packet a director sends
 * it, to that director's number (the map of director MACs); its replies carry the mark and an
 * ip rule per director sends them to that director's return gateway. Every packet, not only the
 * first: when ECMP moves a flow to another director, its replies follow.
 */
function natReturnBase(names: ScaleNames, s: LabServerSpec): void {
  const file = join(names.dir, s.name, "return.nft");
  mkdirSync(join(names.dir, s.name), { recursive: true });
  writeFileSync(
    file,
    `table ip tsvs_scale {
  map director {
    type ether_addr : mark
  }
  chain pre {
    type filter hook prerouting priority mangle; policy accept;
    iifname "eth0" ct mark set ether saddr map @director
  }
  chain out {
    type route hook output priority mangle; policy accept;
    ct mark != 0 meta mark set ct mark
  }
}
`,
  );
  const r = nsExecStatus(s.ns, ["nft", "-f", file]);
  if (r.status !== 0) throw new TsvsError("TSVS_ERR_LAB", `${s.ns}: nft -f ${file}: ${r.stderr.trim()}`);
}

/** A director's place in a real server's NAT return path: its MAC in the map, its table and rule. */
function natReturnDirector(ns: string, d: DirectorPlan, mac: string): void {
  const table = String(SCALE_ADDR.TABLE_BASE + d.k);
  nsExec(ns, ["nft", "add", "element", "ip", "tsvs_scale", "director", `{ ${mac} : ${d.k} }`]);
  ip("-n", ns, "route", "replace", "default", "via", d.returnGw, "dev", "eth0", "table", table);
  // The LAN stays on-link: a health check's answer goes to the director that asked, whoever holds
  // its return gateway at the time.
  ip("-n", ns, "route", "replace", SCALE_ADDR.LAN_NET, "dev", "eth0", "table", table);
  ip("-n", ns, "rule", "add", "fwmark", String(d.k), "table", table, "priority", String(1000 + d.k));
}

/** Director K's namespace and links; for NAT, its place in every real server's return path. */
function buildDirector(names: ScaleNames, method: LabMethod, k: number): DirectorPlan {
  const d = directorPlan(names, k);
  newNamespace(d.ns);
  bridgePort(names, "bru", `d${k}u`, d.ns, "eth0", `${d.uplink}/24`);
  bridgePort(names, "brs", `d${k}s`, d.ns, "eth1", `${d.dip}/24`);
  ip("-n", d.ns, "route", "add", "default", "via", SCALE_ADDR.X_UPLINK);
  if (method === "nat") {
    const mac = linkMac(d.ns, "eth1");
    for (const s of names.servers) natReturnDirector(s.ns, d, mac);
  }
  return d;
}

const LB_KIND: Record<LabMethod, string> = { nat: "NAT", dr: "DR", tun: "TUN", fullnat: "FULLNAT" };

export interface DirectorYamlOptions {
  method: LabMethod;
  scheduler: string;
  sync: boolean;
  bgp: boolean;
  /** The directors there are (NAT: one VRRP instance each, for their return gateways). */
  directors: readonly number[];
}

/**
 * Director K's tsvs YAML: the service with health checks (inhibit_on_failure keeps a failed server
 * in the list with weight 0, so the list order, which mh's table depends on, never changes), the
 * sync daemons, the NAT return gateways, and with bgp the announcement.
 */
export function directorYaml(names: ScaleNames, k: number, o: DirectorYamlOptions): string {
  const d = directorPlan(names, k);
  const f = directorFiles(names, k);
  const out: string[] = [
    `# generated by tsvs lab (--directors, ${o.method}) for ${d.ns}`,
    "virtual_servers:",
    `  - address: ${SCALE_ADDR.VIP}`,
    "    port: 80",
    "    protocol: tcp",
    `    scheduler: ${o.scheduler}`,
    `    lb_kind: ${LB_KIND[o.method]}`,
    "    delay_loop: 1",
  ];
  if (o.method === "fullnat") out.push(`    local_addresses: [${d.lip}]`);
  out.push("    real_servers:");
  for (const s of names.servers)
    out.push(
      `      - { address: ${s.rip}, port: 80, inhibit_on_failure: true, check: { type: tcp, connect_timeout: 1 } }`,
    );
  const vrrp: string[] = [];
  if (o.sync)
    // No instance: master and backup at once (active-active), as keepalived's vrrp_scheduler.
    vrrp.push(`  lvs_sync_daemon: { interface: eth1, id: ${SCALE_ADDR.SYNC_ID} }`);
  if (o.method === "nat") {
    vrrp.push("  instances:");
    for (const j of o.directors) {
      const g = directorPlan(names, j);
      // dJ is master of its own gateway; the others back it up at priorities that never tie.
      const prio = j === k ? 150 : 100 - ((k - j + SCALE_MAX_DIRECTORS) % SCALE_MAX_DIRECTORS);
      vrrp.push(
        `    - { name: RET_${j}, state: BACKUP, interface: eth1, virtual_router_id: ${SCALE_ADDR.VRID_BASE + j}, priority: ${prio}, advert_int: 1, virtual_ipaddress: [${g.returnGw}/24] }`,
      );
    }
  }
  if (vrrp.length > 0) out.push("vrrp:", `  router_id: ${d.ns}`, ...vrrp);
  if (o.bgp)
    out.push(
      "bgp:",
      `  router_id: ${d.uplink}`,
      `  local_as: ${d.as}`,
      `  neighbors: [{ address: ${SCALE_ADDR.X_UPLINK}, as: ${SCALE_ADDR.ROUTER_AS} }]`,
      `  hold_time: ${SCALE_BGP.HOLD}`,
      `  keepalive_time: ${SCALE_BGP.KEEPALIVE}`,
      "  connect_retry_time: 1",
      `  bird: { socket: ${f.birdSock}, config: ${f.birdConf}, log: ${f.birdLog} }`,
    );
  return `${out.join("\n")}\n`;
}

/** The real servers' applications and, for DR and TUN, their VIP on lo with ARP suppressed. */
async function startServers(names: ScaleNames, st: ScaleState, method: LabMethod): Promise<void> {
  for (const s of names.servers) {
    st.procs.push(...(await startServer(s, st.servers, join(names.dir, s.name))));
    writeScaleState(names, st);
  }
  if (method === "dr" || method === "tun") {
    for (const s of names.servers) {
      const r = nsExecStatus(
        s.ns,
        realserverArgv(["setup", "--vip", SCALE_ADDR.VIP, "--method", method, "--iface", "eth0"]),
      );
      if (r.status !== 0)
        throw new TsvsError("TSVS_ERR_LAB", `${s.name}: tsvs realserver setup failed: ${r.stderr.trim()}`);
    }
  }
}

/** Writes director K's configuration and starts its daemon (≤ 8 s for its control socket). */
export async function startScaleDirector(names: ScaleNames, st: ScaleState, k: number): Promise<void> {
  const f = directorFiles(names, k);
  mkdirSync(f.dir, { recursive: true });
  writeFileSync(
    f.config,
    directorYaml(names, k, {
      method: st.method,
      scheduler: st.scheduler,
      sync: st.sync,
      bgp: st.bgp,
      directors: st.directors.map((x) => x.k),
    }),
  );
  const args = ["--config", f.config];
  if (st.sloppyTcp) args.push("--sysctl", "sloppy_tcp=1");
  const d = st.directors.find((x) => x.k === k);
  if (d === undefined) throw new TsvsError("TSVS_ERR_LAB", `no director d${k} in this lab`);
  const r = await startDaemonIn(d.ns, f.control, f.log, args);
  d.daemon = r.proc;
  d.status = r.status;
  writeScaleState(names, st);
}

/** The router's route to the VIP: its next hops (directors' uplink addresses), in the kernel's order. */
export function routerNexthops(names: ScaleNames): string[] {
  const r = nsExecStatus(names.router, ["ip", "-j", "route", "show", `${SCALE_ADDR.VIP}/32`]);
  if (r.status !== 0) return [];
  try {
    const routes = JSON.parse(r.stdout) as { gateway?: string; nexthops?: { gateway?: string }[] }[];
    const out: string[] = [];
    for (const rt of routes) {
      if (rt.gateway !== undefined) out.push(rt.gateway);
      for (const nh of rt.nexthops ?? []) if (nh.gateway !== undefined) out.push(nh.gateway);
    }
    return out;
  } catch {
    return [];
  }
}

/** `ip route show VIP` in the router, as an operator reads it. */
export function routerRouteText(names: ScaleNames): string {
  const r = nsExecStatus(names.router, ["ip", "route", "show", `${SCALE_ADDR.VIP}/32`]);
  return r.status === 0 ? r.stdout.trim() : `(${r.stderr.trim()})`;
}

/** Without BGP: one static multipath route to the VIP over the given directors. */
function staticRoute(names: ScaleNames, ks: readonly number[]): void {
  const hops = ks.flatMap((k) => ["nexthop", "via", directorPlan(names, k).uplink, "dev", "eth1"]);
  ip("-n", names.router, "route", "replace", `${SCALE_ADDR.VIP}/32`, ...hops);
}

/**
 * Waits until the router's route to the VIP has exactly `want` next hops (the directors that
 * announce it); returns the time it took, or null after timeoutMs.
 */
export async function waitNexthops(
  names: ScaleNames,
  want: (hops: string[]) => boolean,
  timeoutMs: number,
  stepMs = 50,
): Promise<number | null> {
  const t0 = Date.now();
  const ok = await waitFor(() => want(routerNexthops(names)), timeoutMs, stepMs);
  return ok ? Date.now() - t0 : null;
}

/**
 * Brings the scale-out lab up from scratch (any lab of the same prefix is removed first). On a
 * failure before the daemons start, everything is torn down and the error rethrown.
 */
export async function scaleUp(names: ScaleNames, o: ScaleOptions): Promise<ScaleState> {
  const log = o.log ?? (() => {});
  // One director is allowed here (bench:scale's baseline); the CLI asks for two or more.
  if (!Number.isInteger(o.directors) || o.directors < 1 || o.directors > SCALE_MAX_DIRECTORS)
    throw new TsvsError("TSVS_ERR_USAGE", `--directors must be 1..${SCALE_MAX_DIRECTORS}`);
  const want = o.servers ?? "auto";
  const pkgs = ["iproute2", "curl", "nftables"];
  if (want !== "node") pkgs.push("nginx");
  if (o.bgp === true) pkgs.push("bird2");
  const missing = ensurePackages(pkgs, log);
  if (missing.includes("iproute2")) throw new TsvsError("TSVS_ERR_DEPENDENCY", "iproute2 (`ip`) is missing");
  if (missing.includes("nftables")) throw new TsvsError("TSVS_ERR_DEPENDENCY", "nftables (`nft`) is missing");
  if (o.bgp === true && commandPath("bird") === null)
    throw new TsvsError("TSVS_ERR_DEPENDENCY", "--bgp needs BIRD 2 (Debian bird2), which is missing");
  let kind: ServerKind = want === "auto" ? (nginxAvailable() ? "nginx" : "node") : want;
  if (kind === "nginx" && !nginxAvailable()) {
    if (want === "nginx")
      throw new TsvsError("TSVS_ERR_DEPENDENCY", "nginx is not installed and could not be installed");
    kind = "node";
  }
  await scaleDown(names);
  const st: ScaleState = {
    version: 1,
    prefix: names.prefix,
    method: o.method,
    scheduler: o.scheduler ?? "mh",
    sync: o.sync ?? true,
    sloppyTcp: o.sloppyTcp ?? true,
    bgp: o.bgp ?? false,
    servers: kind,
    directors: [],
    routerBird: null,
    procs: [],
    createdAt: new Date().toISOString(),
  };
  try {
    writeScaleState(names, st);
    buildBase(names, o.method);
    for (let k = 1; k <= o.directors; k++) {
      const d = buildDirector(names, o.method, k);
      st.directors.push({ k, ns: d.ns, daemon: null, status: "not started" });
    }
    writeScaleState(names, st);
    log(
      `topology ${names.prefix}: client, router, ${o.directors} directors, ${names.servers.length} real servers (${o.method}, ${st.scheduler}, sync ${st.sync ? "on" : "off"}, ${st.bgp ? "BGP" : "static ECMP route"})`,
    );
    await startServers(names, st, o.method);
    log(`servers: ${kind} on ${names.servers.map((s) => `${s.name} ${s.rip}`).join(", ")}`);
    if (st.bgp) await startRouterBird(names, st);
    else
      staticRoute(
        names,
        st.directors.map((d) => d.k),
      );
  } catch (e) {
    await scaleDown(names);
    throw e;
  }
  if (o.daemon !== false) {
    for (const d of st.directors) {
      await startScaleDirector(names, st, d.k);
      log(`${d.ns}: ${d.status}`);
    }
    if (st.bgp) {
      const n = st.directors.length;
      const took = await waitNexthops(names, (h) => h.length === n, 20_000);
      log(
        took !== null
          ? `router: ${n} next hops for ${SCALE_ADDR.VIP} after ${(took / 1000).toFixed(1)} s`
          : `router: ${routerNexthops(names).length} of ${n} next hops for ${SCALE_ADDR.VIP} after 20 s`,
      );
    }
  }
  return st;
}

/** BIRD on the router: its configuration from the directors there are, started in the foreground. */
async function startRouterBird(names: ScaleNames, st: ScaleState): Promise<void> {
  writeFileSync(
    names.routerBirdConf,
    routerBird(
      names,
      st.directors.map((d) => d.k),
    ),
  );
  rmSync(names.routerBirdSock, { force: true });
  st.routerBird = spawnInNs(
    names.router,
    ["bird", "-f", "-c", names.routerBirdConf, "-s", names.routerBirdSock],
    join(names.dir, "router-bird.out"),
    "bird (router)",
  );
  writeScaleState(names, st);
  const ok = await waitFor(
    () => existsSync(names.routerBirdSock) || !procAlive(st.routerBird as ProcRef),
    5000,
  );
  if (!ok || !procAlive(st.routerBird)) {
    const out = join(names.dir, "router-bird.out");
    const tail = existsSync(out) ? readFileSync(out, "utf8").trim() : "";
    throw new TsvsError("TSVS_ERR_LAB", `BIRD did not start on the router${tail !== "" ? `: ${tail}` : ""}`);
  }
}

/** Tells the router's BIRD about the directors there are now (a new configuration, `birdc configure`). */
function reconfigureRouterBird(names: ScaleNames, ks: readonly number[]): void {
  writeFileSync(names.routerBirdConf, routerBird(names, ks));
  const r = nsExecStatus(names.router, ["birdc", "-s", names.routerBirdSock, "configure"]);
  if (r.status !== 0 || !/Reconfigur/.test(r.stdout))
    throw new TsvsError("TSVS_ERR_LAB", `birdc configure on the router: ${(r.stderr || r.stdout).trim()}`);
}

/**
 * The router's BIRD configuration (config/bird.ts): one eBGP session per director, import all,
 * export none, the equal routes merged into one multipath kernel route.
 */
export function routerBird(names: ScaleNames, ks: readonly number[]): string {
  return routerBirdConf(
    {
      routerId: SCALE_ADDR.X_UPLINK,
      localAs: SCALE_ADDR.ROUTER_AS,
      neighbors: ks.map((k) => {
        const d = directorPlan(names, k);
        return { address: d.uplink, as: d.as };
      }),
      holdTime: SCALE_BGP.HOLD,
      keepaliveTime: SCALE_BGP.KEEPALIVE,
      ecmpLimit: SCALE_MAX_DIRECTORS * 2,
      connectRetryTime: 1,
    },
    { logFile: names.routerBirdLog },
  );
}

/** SIGKILL to director K's daemon (nothing said to anyone); returns the time of the kill. */
export function killScaleDirector(names: ScaleNames, st: ScaleState, k: number): number {
  const d = st.directors.find((x) => x.k === k);
  if (d?.daemon == null || !procAlive(d.daemon))
    throw new TsvsError("TSVS_ERR_LAB", `the daemon of ${names.prefix}-d${k} is not running`);
  process.kill(d.daemon.pid, "SIGKILL");
  const at = Date.now();
  d.status = "killed";
  writeScaleState(names, st);
  return at;
}

/**
 * Adds director N+1 while the others run (N → N+1): its namespace and links, its place in the real
 * servers' return paths, the router's session with it, its daemon. The running directors keep
 * their configuration: under NAT nobody backs up the new director's return gateway until they
 * are reloaded (docs/scale-out.md).
 */
export async function addScaleDirector(names: ScaleNames, st: ScaleState): Promise<ScaleDirectorState> {
  const k = Math.max(0, ...st.directors.map((d) => d.k)) + 1;
  if (k > SCALE_MAX_DIRECTORS)
    throw new TsvsError("TSVS_ERR_USAGE", `at most ${SCALE_MAX_DIRECTORS} directors`);
  const d = buildDirector(names, st.method, k);
  const ds: ScaleDirectorState = { k, ns: d.ns, daemon: null, status: "not started" };
  st.directors.push(ds);
  writeScaleState(names, st);
  const ks = st.directors.map((x) => x.k);
  if (st.bgp) reconfigureRouterBird(names, ks);
  await startScaleDirector(names, st, k);
  if (!st.bgp) staticRoute(names, ks);
  return ds;
}

/** Per director: the connections its daemon scheduled (the service's Conns, `ipvsadm -Ln --stats`). */
export function directorConns(ns: string): number | null {
  const r = tsvsCtlIn(ns, "ipvsadm", ["-Ln", "--stats", "--exact"], 5000);
  if (r.status !== 0) return null;
  const line = r.stdout.split("\n").find((l) => l.startsWith("TCP "));
  if (line === undefined) return null;
  const n = Number(line.trim().split(/\s+/)[2]);
  return Number.isFinite(n) ? n : null;
}

export interface ScaleStatus {
  prefix: string;
  up: boolean;
  method: LabMethod | null;
  scheduler: string | null;
  sync: boolean | null;
  bgp: boolean | null;
  routerBird: { pid: number; alive: boolean } | null;
  route: string;
  nexthops: string[];
  directors: {
    ns: string;
    uplink: string;
    pid: number | null;
    alive: boolean;
    status: string;
    conns: number | null;
  }[];
}

export function scaleStatus(names: ScaleNames): ScaleStatus | null {
  const st = readScaleState(names);
  if (st === null) return null;
  const present = new Set(listNamespaces());
  const all = [
    names.bridge,
    names.client,
    names.router,
    ...names.servers.map((s) => s.ns),
    ...st.directors.map((d) => d.ns),
  ];
  return {
    prefix: names.prefix,
    up: all.every((n) => present.has(n)),
    method: st.method,
    scheduler: st.scheduler,
    sync: st.sync,
    bgp: st.bgp,
    routerBird: st.routerBird === null ? null : { pid: st.routerBird.pid, alive: procAlive(st.routerBird) },
    route: present.has(names.router) ? routerRouteText(names) : "",
    nexthops: present.has(names.router) ? routerNexthops(names) : [],
    directors: st.directors.map((d) => {
      const alive = d.daemon !== null && procAlive(d.daemon);
      return {
        ns: d.ns,
        uplink: directorPlan(names, d.k).uplink,
        pid: d.daemon?.pid ?? null,
        alive,
        status: alive ? d.status : d.status === "running" ? "not running" : d.status,
        conns: alive ? directorConns(d.ns) : null,
      };
    }),
  };
}

export function formatScaleStatus(s: ScaleStatus): string {
  const out: string[] = [];
  out.push(`lab ${s.prefix} (scale-out): ${s.up ? "up" : "partial"}`);
  out.push(
    `method ${s.method}, scheduler ${s.scheduler}, sync ${s.sync === true ? "master+backup on every director" : "off"}, ${s.bgp === true ? "BGP (BIRD)" : "static ECMP route"}`,
  );
  if (s.routerBird !== null)
    out.push(`  router BIRD pid ${s.routerBird.pid} ${s.routerBird.alive ? "alive" : "dead"}`);
  out.push(`  router: ip route show ${SCALE_ADDR.VIP}`);
  for (const l of (s.route === "" ? "(no route)" : s.route).split("\n")) out.push(`    ${l}`);
  const hops = new Set(s.nexthops);
  for (const d of s.directors)
    out.push(
      `  ${d.ns.padEnd(16)} ${d.uplink.padEnd(14)} ${hops.has(d.uplink) ? "next hop" : "no route"}  daemon ${d.status}${d.pid !== null ? ` (pid ${d.pid})` : ""}${d.conns !== null ? `, ${d.conns} connections scheduled` : ""}`,
    );
  return `${out.join("\n")}\n`;
}

function listNamespaces(): string[] {
  try {
    return namespacesWith();
  } catch {
    return [];
  }
}

/**
 * Removes a scale-out lab: recorded processes (by pid and start time), every process left in its
 * namespaces, the namespaces (the directors found by name, P-d1…, also without a state file),
 * the daemons' control directories and the lab's files. Idempotent; also removes a classic lab of
 * the same prefix (they share the client, router and server names).
 */
export async function scaleDown(names: ScaleNames): Promise<string[]> {
  const done: string[] = [];
  const st = readScaleState(names);
  if (st !== null) {
    const recorded: ProcRef[] = [
      ...st.directors.flatMap((d) => (d.daemon !== null ? [d.daemon] : [])),
      ...(st.routerBird !== null ? [st.routerBird] : []),
      ...st.procs,
    ];
    for (const p of recorded) {
      if (procAlive(p)) {
        await stopProc(p);
        done.push(`stopped ${p.what} (pid ${p.pid})`);
      }
    }
  }
  const dirRe = new RegExp(`^${names.prefix.replace(/[.]/g, "\\.")}-d[1-9][0-9]*$`);
  const directors = listNamespaces().filter((n) => dirRe.test(n));
  for (const ns of directors) {
    for (const pid of netnsPids(ns)) {
      await stopProc({ pid, start: 0, what: `process in ${ns}` }, 1000);
      done.push(`stopped pid ${pid} in ${ns}`);
    }
  }
  for (const ns of directors) {
    delNetns(ns);
    done.push(`deleted namespace ${ns}`);
    rmSync(join(RUN_ROOT, `netns-${ns}`), { recursive: true, force: true });
  }
  // The client, router, servers and bridges have the classic lab's names: its teardown.
  done.push(...(await labDown(labNames(names.prefix))));
  if (existsSync(names.dir)) {
    rmSync(names.dir, { recursive: true, force: true });
    done.push(`removed ${names.dir}`);
  }
  return done;
}

/** Whether a scale-out lab of this prefix has a state file (`lab status` and `lab down` dispatch on it). */
export function isScaleLab(names: ScaleNames): boolean {
  return existsSync(names.stateFile);
}
