// The lab: a client, a director, four real servers and a router in network namespaces, wired with
// veth pairs and two bridges (docs/lab.md has the picture). Names derive from a prefix ("tsvs" by
// default, tests use their own), addresses are fixed:
//
//   client net 198.18.0.0/24  (bridge brc):  c 198.18.0.2, d 198.18.0.1, x 198.18.0.254, VIP 198.18.0.100
//   server LAN 198.18.1.0/24  (bridge brl):  d 198.18.1.1 (DIP), r1-r3 .11-.13, x .254, LIP .100
//   routed net 198.18.2.0/24  (veth x-r4):   x 198.18.2.1, r4 198.18.2.14
//
// Return paths: NAT replies must cross the director, so r1-r3 route by default via the DIP and x
// (for r4) sends 198.18.0.0/24 to the DIP, its own client-net interface being down. DR and TUN
// replies must not: r1-r3 route by default via x (198.18.1.254), which reaches the client directly
// on the client net. FULLNAT replies go to the LIP, on-link for r1-r3 and via x for r4.
//
// HA (`lab up --ha`, docs/lab.md "HA"): a second director d2 (198.18.0.3, 198.18.1.3) on the same
// two bridges. The VIP floats between the directors by VRRP, and so does, for NAT, the real
// servers' gateway 198.18.1.250 (GW): with two directors the DIP of one of them cannot be the
// gateway, so NAT routes (r1-r3 default, x's route to the client net) go via GW instead.
//
// Dual stack (`lab up --ipv6`, docs/lab.md "IPv6"): the same plan in the ULA /48 fd74:7376::/48
// ("tsv" in ASCII), one /64 per net with the IPv4 address's last number as the interface id:
//   client net fd74:7376:0:0::/64:  c ::2, d ::1, x ::fe, VIP6 ::100
//   server LAN fd74:7376:0:1::/64:  d ::1 (DIP6), r1-r3 ::11-::13, x ::fe, LIP6 ::100
//   routed net fd74:7376:0:2::/64:  x ::1, r4 ::14
// and the same return paths. Addresses are added `nodad` and router advertisements are ignored,
// so the lab's IPv6 is there at once and stays what this file says.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { TsvsError } from "../core/errors.js";
import { addNetns, delNetns, ip, namespacesWith, netnsPids, nsExec, nsExecStatus } from "../io/netns.js";
import { commandPath } from "./packages.js";
import { type ProcRef, procAlive, stopProc } from "./proc.js";

export type LabMethod = "nat" | "dr" | "tun" | "fullnat";
export const LAB_METHODS: readonly LabMethod[] = ["nat", "dr", "tun", "fullnat"];

export const LAB_ADDR = {
  CIP: "198.18.0.2",
  DIR_CLIENT: "198.18.0.1",
  X_CLIENT: "198.18.0.254",
  VIP: "198.18.0.100",
  DIP: "198.18.1.1",
  /** HA: the second director's own addresses, on the client net and on the server LAN. */
  DIR2_CLIENT: "198.18.0.3",
  DIP2: "198.18.1.3",
  /** HA, NAT: the real servers' floating gateway (VRRP instance VI_2 on eth1). */
  GW: "198.18.1.250",
  X_LAN: "198.18.1.254",
  LIP: "198.18.1.100",
  X_ROUTED: "198.18.2.1",
  CLIENT_NET: "198.18.0.0/24",
  LAN_NET: "198.18.1.0/24",
  ROUTED_NET: "198.18.2.0/24",
} as const;

/** The dual-stack lab's IPv6 plan (see the header): LAB_ADDR's layout in fd74:7376::/48. */
export const LAB_ADDR6 = {
  CIP: "fd74:7376::2",
  DIR_CLIENT: "fd74:7376::1",
  X_CLIENT: "fd74:7376::fe",
  VIP: "fd74:7376::100",
  DIP: "fd74:7376:0:1::1",
  DIR2_CLIENT: "fd74:7376::3",
  DIP2: "fd74:7376:0:1::3",
  GW: "fd74:7376:0:1::fa",
  X_LAN: "fd74:7376:0:1::fe",
  LIP: "fd74:7376:0:1::100",
  X_ROUTED: "fd74:7376:0:2::1",
  CLIENT_NET: "fd74:7376::/64",
  LAN_NET: "fd74:7376:0:1::/64",
  ROUTED_NET: "fd74:7376:0:2::/64",
} as const;

export interface LabServerSpec {
  /** "r1" … "r4": the name the server answers with. */
  name: string;
  ns: string;
  rip: string;
  /** Its IPv6 address in the dual-stack lab (LAB_ADDR6's plan). */
  rip6: string;
  /** On the director's LAN (r1-r3), or behind the router x (r4). */
  onLan: boolean;
}

export interface LabNames {
  prefix: string;
  client: string;
  director: string;
  /** HA: the second director (`lab up --ha`); not in `all`, which is the single-director lab. */
  director2: string;
  bridge: string;
  router: string;
  servers: LabServerSpec[];
  /** Every namespace of the lab, in creation order. */
  all: string[];
  /** Director interfaces: toward the client net and toward the server LAN. */
  dirClientIf: string;
  dirLanIf: string;
  runDir: string;
  stateFile: string;
  /**
   * The daemon's control socket: the director namespace's default one, where `ip netns exec
   * P-d tsvs ipvsadm` looks without --control (src/daemon/protocol.ts, defaultControlPath).
   */
  controlSock: string;
  /** `lab.sock` in the run directory: a symlink to controlSock, for scripts written before. */
  controlAlias: string;
  daemonLog: string;
  /** HA: the second director's control socket (its namespace's default) and log. */
  controlSock2: string;
  daemon2Log: string;
  /** HA: the directors' keepalived.conf files, keepalived's log, pid and notify files. */
  haDir: string;
}

export const DEFAULT_PREFIX = "tsvs";
export const RUN_ROOT = "/run/tsvs";

/**
 * Where a daemon started without --control listens inside the namespace `ip netns` calls ns: the
 * rule of defaultControlPath (src/daemon/protocol.ts) for a named namespace, seen from outside it.
 */
export function namespaceControlPath(ns: string): string {
  return join(RUN_ROOT, `netns-${ns}`, "control.sock");
}

export function labNames(prefix = DEFAULT_PREFIX): LabNames {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$/.test(prefix))
    throw new TsvsError("TSVS_ERR_USAGE", `bad lab prefix '${prefix}'`);
  const servers: LabServerSpec[] = [
    { name: "r1", ns: `${prefix}-r1`, rip: "198.18.1.11", rip6: "fd74:7376:0:1::11", onLan: true },
    { name: "r2", ns: `${prefix}-r2`, rip: "198.18.1.12", rip6: "fd74:7376:0:1::12", onLan: true },
    { name: "r3", ns: `${prefix}-r3`, rip: "198.18.1.13", rip6: "fd74:7376:0:1::13", onLan: true },
    { name: "r4", ns: `${prefix}-r4`, rip: "198.18.2.14", rip6: "fd74:7376:0:2::14", onLan: false },
  ];
  const runDir = prefix === DEFAULT_PREFIX ? RUN_ROOT : join(RUN_ROOT, prefix);
  const n = {
    prefix,
    client: `${prefix}-c`,
    director: `${prefix}-d`,
    director2: `${prefix}-d2`,
    bridge: `${prefix}-br`,
    router: `${prefix}-x`,
    servers,
    dirClientIf: "eth0",
    dirLanIf: "eth1",
    runDir,
    stateFile: join(runDir, "lab.json"),
    controlSock: namespaceControlPath(`${prefix}-d`),
    controlAlias: join(runDir, "lab.sock"),
    daemonLog: join(runDir, "daemon.log"),
    controlSock2: namespaceControlPath(`${prefix}-d2`),
    daemon2Log: join(runDir, "daemon2.log"),
    haDir: join(runDir, "ha"),
  };
  return { ...n, all: [n.bridge, n.client, n.director, n.router, ...servers.map((s) => s.ns)] };
}

/** The namespaces of a lab: `all`, and the second director after the first one with --ha. */
export function labNamespaces(names: LabNames, ha: boolean): string[] {
  if (!ha) return names.all;
  const at = names.all.indexOf(names.director) + 1;
  return [...names.all.slice(0, at), names.director2, ...names.all.slice(at)];
}

/** The servers a method's service uses: r4 is reachable only through a router (TUN, FULLNAT). */
export function methodServers(names: LabNames, method: LabMethod): LabServerSpec[] {
  return names.servers.filter((s) => s.onLan || method === "tun" || method === "fullnat");
}

export interface ServerProc extends ProcRef {
  ns: string;
}

export interface LabState {
  version: 1;
  prefix: string;
  method: LabMethod;
  /** "nginx" or "node": what answers HTTP on the servers. */
  servers: "nginx" | "node";
  /** Offloads on the lab's links (absent in state files of labs that always turned them off). */
  offloads?: LabOffloads;
  /** The dual-stack lab (LAB_ADDR6); absent: IPv4 only. */
  ipv6?: boolean;
  namespaces: string[];
  procs: ServerProc[];
  daemon: ProcRef | null;
  /** "running", or why the daemon is not (e.g. not built yet). */
  daemonStatus: string;
  /** `lab up --ha`: the second director and what runs on it (absent: one director). */
  ha?: LabHaState;
  createdAt: string;
}

/** What runs on the second director of an HA lab. */
export type LabBackup = "tsvs" | "keepalived";
export const LAB_BACKUPS: readonly LabBackup[] = ["tsvs", "keepalived"];

export interface LabHaState {
  backup: LabBackup;
  /** `tsvs daemon --config` on d2 (backup tsvs), or keepalived's main process (backup keepalived). */
  daemon2: ProcRef | null;
  daemon2Status: string;
  /** The keepalived.conf of each director, in the run directory. */
  confs: { director: string; director2: string };
  /** keepalived: its notify script writes "INSTANCE STATE" lines here (time in ms first). */
  notifyLog: string | null;
}

export function readState(names: LabNames): LabState | null {
  try {
    return JSON.parse(readFileSync(names.stateFile, "utf8")) as LabState;
  } catch {
    return null;
  }
}

export function writeState(names: LabNames, st: LabState): void {
  mkdirSync(names.runDir, { recursive: true });
  writeFileSync(names.stateFile, `${JSON.stringify(st, null, 2)}\n`);
}

/** Namespaces whose name is one of the lab's, HA's second director included (from `ip netns list`). */
export function existingNamespaces(names: LabNames): string[] {
  const have = new Set(namespacesWith());
  return labNamespaces(names, true).filter((n) => have.has(n));
}

function sysctl(ns: string, key: string, value: string | number): void {
  nsExec(ns, ["sysctl", "-q", "-w", `${key}=${value}`]);
}

/**
 * "on" (the default): every veth keeps the offloads veth has when created (tx checksum, TSO, GSO,
 * GRO as the kernel sets them), as a user's host has them, so the director must live with
 * CHECKSUM_PARTIAL frames and aggregates bigger than the MTU (docs/io.md, Receive offloads).
 * "off": `ethtool -K IF tx off tso off gso off gro off` on every link, only to compare.
 */
export type LabOffloads = "on" | "off";
export const LAB_OFFLOADS: readonly LabOffloads[] = ["on", "off"];

/** Turns checksum and segmentation offloads off on one link (for --offloads off). */
function offloadsOff(ns: string, ifname: string): void {
  if (commandPath("ethtool") === null)
    throw new TsvsError("TSVS_ERR_DEPENDENCY", "--offloads off needs ethtool, which is missing");
  const r = nsExecStatus(ns, [
    "ethtool",
    "-K",
    ifname,
    "tx",
    "off",
    "tso",
    "off",
    "gso",
    "off",
    "gro",
    "off",
  ]);
  if (r.status !== 0)
    throw new TsvsError("TSVS_ERR_LAB", `ethtool -K ${ifname} in ${ns}: ${(r.stderr || r.stdout).trim()}`);
}

/** A veth pair between two namespaces, addresses optional, both ends up. */
function veth(
  offloads: LabOffloads,
  aNs: string,
  aIf: string,
  aCidr: string | null,
  bNs: string,
  bIf: string,
  bCidr: string | null,
): void {
  ip("link", "add", aIf, "netns", aNs, "type", "veth", "peer", "name", bIf, "netns", bNs);
  for (const [ns, ifname, cidr] of [
    [aNs, aIf, aCidr],
    [bNs, bIf, bCidr],
  ] as const) {
    if (cidr !== null) ip("-n", ns, "addr", "add", cidr, "dev", ifname);
    ip("-n", ns, "link", "set", ifname, "up");
    if (offloads === "off") offloadsOff(ns, ifname);
  }
}

/** A veth from namespace ns (interface ifname, address cidr) to a port of a bridge in the bridge ns. */
function bridgePort(
  names: LabNames,
  offloads: LabOffloads,
  bridge: string,
  port: string,
  ns: string,
  ifname: string,
  cidr: string,
): void {
  veth(offloads, ns, ifname, cidr, names.bridge, port, null);
  ip("-n", names.bridge, "link", "set", port, "master", bridge);
}

/**
 * Builds namespaces, bridges, links, addresses and the method's routes (no processes). Any earlier
 * lab with the same prefix must be gone (labDown) first. On failure the caller tears down.
 */
export function buildTopology(
  names: LabNames,
  method: LabMethod,
  offloads: LabOffloads = "on",
  ha = false,
  ipv6 = false,
): void {
  const A = LAB_ADDR;
  const port = (br: string, p: string, ns: string, ifname: string, cidr: string): void =>
    bridgePort(names, offloads, br, p, ns, ifname, cidr);
  for (const ns of labNamespaces(names, ha)) {
    addNetns(ns);
    if (ipv6) {
      // Set before any link exists, so that every link inherits them from "default".
      for (const c of ["all", "default"]) {
        sysctl(ns, `net.ipv6.conf.${c}.disable_ipv6`, 0);
        sysctl(ns, `net.ipv6.conf.${c}.accept_ra`, 0);
        sysctl(ns, `net.ipv6.conf.${c}.accept_dad`, 0);
      }
    } else {
      // No IPv6: router and neighbour solicitations would only add noise to the daemon's links.
      sysctl(ns, "net.ipv6.conf.all.disable_ipv6", 1);
      sysctl(ns, "net.ipv6.conf.default.disable_ipv6", 1);
    }
  }
  for (const br of ["brc", "brl"]) {
    ip("-n", names.bridge, "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0");
    ip("-n", names.bridge, "link", "set", br, "up");
  }
  port("brc", "c", names.client, "eth0", `${A.CIP}/24`);
  port("brc", "d0", names.director, names.dirClientIf, `${A.DIR_CLIENT}/24`);
  port("brc", "x0", names.router, "eth0", `${A.X_CLIENT}/24`);
  port("brl", "d1", names.director, names.dirLanIf, `${A.DIP}/24`);
  if (ha) {
    port("brc", "e0", names.director2, names.dirClientIf, `${A.DIR2_CLIENT}/24`);
    port("brl", "e1", names.director2, names.dirLanIf, `${A.DIP2}/24`);
  }
  port("brl", "x1", names.router, "eth1", `${A.X_LAN}/24`);
  for (const s of names.servers) {
    if (s.onLan) port("brl", s.name, s.ns, "eth0", `${s.rip}/24`);
  }
  const r4 = names.servers.find((s) => !s.onLan);
  if (r4 !== undefined)
    veth(offloads, names.router, "eth2", `${A.X_ROUTED}/24`, r4.ns, "eth0", `${r4.rip}/24`);

  ip("-n", names.client, "route", "add", "default", "via", A.DIR_CLIENT);
  ip("-n", names.director, "route", "add", A.ROUTED_NET, "via", A.X_LAN);
  if (ha) ip("-n", names.director2, "route", "add", A.ROUTED_NET, "via", A.X_LAN);
  sysctl(names.router, "net.ipv4.ip_forward", 1);
  if (r4 !== undefined) ip("-n", r4.ns, "route", "add", "default", "via", A.X_ROUTED);
  // NAT: the director's side of the server LAN; with two directors, the address that floats.
  const natGw = ha ? A.GW : A.DIP;
  const gw = method === "nat" ? natGw : A.X_LAN;
  for (const s of names.servers) {
    if (s.onLan) ip("-n", s.ns, "route", "add", "default", "via", gw);
  }
  if (ipv6) addIpv6(names, method, ha);
  if (method === "nat") {
    // The router's own client-net route would win over a route via the DIP: take the link down.
    ip("-n", names.router, "link", "set", "eth0", "down");
    ip("-n", names.router, "route", "add", A.CLIENT_NET, "via", natGw);
    if (ipv6)
      ip(
        "-n",
        names.router,
        "-6",
        "route",
        "add",
        LAB_ADDR6.CLIENT_NET,
        "via",
        ha ? LAB_ADDR6.GW : LAB_ADDR6.DIP,
      );
  }
}

/** The dual-stack lab's addresses and routes: the IPv4 plan's, in LAB_ADDR6 (links already up). */
function addIpv6(names: LabNames, method: LabMethod, ha: boolean): void {
  const A = LAB_ADDR6;
  const add = (ns: string, ifname: string, addr: string): void => {
    ip("-n", ns, "-6", "addr", "add", `${addr}/64`, "dev", ifname, "nodad");
  };
  add(names.client, "eth0", A.CIP);
  add(names.director, names.dirClientIf, A.DIR_CLIENT);
  add(names.director, names.dirLanIf, A.DIP);
  if (ha) {
    add(names.director2, names.dirClientIf, A.DIR2_CLIENT);
    add(names.director2, names.dirLanIf, A.DIP2);
  }
  add(names.router, "eth0", A.X_CLIENT);
  add(names.router, "eth1", A.X_LAN);
  const r4 = names.servers.find((s) => !s.onLan);
  if (r4 !== undefined) {
    add(names.router, "eth2", A.X_ROUTED);
    add(r4.ns, "eth0", r4.rip6);
    ip("-n", r4.ns, "-6", "route", "add", "default", "via", A.X_ROUTED);
  }
  for (const s of names.servers) if (s.onLan) add(s.ns, "eth0", s.rip6);
  ip("-n", names.client, "-6", "route", "add", "default", "via", A.DIR_CLIENT);
  ip("-n", names.director, "-6", "route", "add", A.ROUTED_NET, "via", A.X_LAN);
  if (ha) ip("-n", names.director2, "-6", "route", "add", A.ROUTED_NET, "via", A.X_LAN);
  sysctl(names.router, "net.ipv6.conf.all.forwarding", 1);
  const gw = method === "nat" ? (ha ? A.GW : A.DIP) : A.X_LAN;
  for (const s of names.servers) if (s.onLan) ip("-n", s.ns, "-6", "route", "add", "default", "via", gw);
}

/**
 * Removes the lab: processes recorded in the state file (by pid and start time), then every process
 * still inside a lab namespace (`ip netns pids`, i.e. by pid again), then the namespaces (their
 * links, bridges and nft tables go with them), then the run directory. Works with no state file
 * (after a crash) and when nothing is left (idempotent). Returns what it removed, for the log.
 */
export async function labDown(names: LabNames): Promise<string[]> {
  const done: string[] = [];
  const st = readState(names);
  if (st !== null) {
    const recorded: ProcRef[] = [
      ...(st.daemon !== null ? [st.daemon] : []),
      ...(st.ha?.daemon2 != null ? [st.ha.daemon2] : []),
      ...st.procs,
    ];
    for (const p of recorded) {
      if (procAlive(p)) {
        await stopProc(p);
        done.push(`stopped ${p.what} (pid ${p.pid})`);
      }
    }
  }
  const present = existingNamespaces(names);
  for (const ns of present) {
    const pids = netnsPids(ns);
    for (const pid of pids) {
      await stopProc({ pid, start: 0, what: `process in ${ns}` }, 1000);
      done.push(`stopped pid ${pid} in ${ns}`);
    }
  }
  for (const ns of present) {
    // With its `tsvs realserver` state (per namespace inode).
    delNetns(ns);
    done.push(`deleted namespace ${ns}`);
  }
  // The daemon removes its socket when it exits; after a crash the directory is left behind.
  for (const ctlDir of [dirname(names.controlSock), dirname(names.controlSock2)]) {
    if (existsSync(ctlDir)) {
      rmSync(ctlDir, { recursive: true, force: true });
      done.push(`removed ${ctlDir}`);
    }
  }
  if (existsSync(names.runDir)) {
    if (names.runDir === RUN_ROOT) {
      // The default lab shares /run/tsvs with other tools (realserver pid files): remove only its own.
      for (const f of ["lab.json", "lab.sock", "daemon.log", "daemon2.log"])
        rmSync(join(names.runDir, f), { force: true });
      rmSync(names.haDir, { recursive: true, force: true });
      for (const s of names.servers) rmSync(join(names.runDir, s.name), { recursive: true, force: true });
    } else {
      rmSync(names.runDir, { recursive: true, force: true });
    }
  }
  return done;
}
