// The daemon's control protocol: JSON lines over a unix stream socket (docs/control-protocol.md).
// One request per line, one response line per request, in order. Pure data: shared by the
// daemon (control.ts), the worker and the clients.

import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { type ControlCommand, parseCommands, parseSysctlArg, type SysctlValue } from "../control/commands.js";
import type { TableSnapshot } from "../control/snapshot.js";
import type { SyncDaemonStatus } from "../control/sync.js";
import { canonicalIPv6, parseIPv4 } from "../core/addr.js";
import { TsvsError, type TsvsErrorCode } from "../core/errors.js";
import type { Explanation } from "../core/explain.js";
import type { BgpStatus } from "./bgp.js";
import type { HealthRow } from "./config-runner.js";
import type { VrrpInstanceStatus, VrrpScriptStatus } from "./vrrp.js";

export { parseSysctlArg, SYSCTLS, type SysctlValue } from "../control/commands.js";
export type { SyncDaemonStatus } from "../control/sync.js";

/** 2: the table travels as commands and snapshots (`apply`, `table`); ipvsadm's text stays in the CLI. */
export const PROTOCOL_VERSION = 2;
/** Longest request line accepted (a -R restore carries the whole rule set). */
export const MAX_REQUEST_BYTES = 8 << 20;
export const RUN_DIR = "/run/tsvs";

export type FwmarkAction = "add" | "del" | "list" | "flush";

export type Request =
  | { op: "apply"; commands: ControlCommand[] }
  | { op: "table"; conns?: boolean }
  | { op: "status" }
  /** `value2`: a vector sysctl's second int (sync_threshold's period). */
  | { op: "sysctl"; name?: string; value?: number; value2?: number }
  | { op: "fwmark"; action: FwmarkAction; rule?: string }
  | { op: "reload" }
  /** The connection sync daemons running (ipvsadm -L --daemon). */
  | { op: "daemons" }
  | ExplainRequest;

/**
 * `tsvs explain` (docs/explain.md): what the director would do with the first packet of a
 * connection from client:cport to vip:port, read from the live tables without changing them. vip
 * and client are both IPv4 or both IPv6 (any form inet_pton takes; the answer prints inet_ntop's).
 * fwmark: the mark the packet carries (as if the mangle table set it); absent: tsvs's rules decide.
 */
export interface ExplainRequest {
  op: "explain";
  proto: "tcp" | "udp" | "sctp";
  vip: string;
  port: number;
  client: string;
  cport: number;
  fwmark?: number;
}

/**
 * `explain`'s answer: the core's Explanation, and the worker that gave it. With several workers
 * each schedules on its own state; the daemon asks the one the fanout hands the client's packets
 * to (io/bpf.ts fanoutHash of the client address, modulo the workers).
 */
export interface ExplainAnswer extends Explanation {
  worker: { index: number; of: number };
}

export interface IfaceStatus {
  name: string;
  /** The backend serving it: mmsg, ring, xdp-native, xdp-generic (…-zerocopy). */
  io?: string;
  /** AF_XDP sockets' XDP_STATISTICS (rxDropped, rxRingFull, rxFillRingEmpty…), summed over queues. */
  xdp?: Record<string, number>;
  ifindex: number;
  mac: string;
  mtu: number;
  addrs: string[];
  rxFrames: number;
  txFrames: number;
  rxTruncated: number;
  /** GSO/GRO aggregates received whole, and frames sent as aggregates (the kernel segments them). */
  rxAggregates?: number;
  txAggregates?: number;
  /** Frames over the MTU that came without GSO metadata. */
  rxOversize?: number;
  txDropped: number;
  txErrors: number;
  kernelDrops: number;
}

export interface WorkerStatus {
  interfaces: IfaceStatus[];
  loops: number;
  batches: number;
  busyMs: number;
  uptimeMs: number;
  services: number;
  dests: number;
  connections: number;
  counters: Record<string, number>;
  drops: Record<string, number>;
  /** The defence against table exhaustion (core/defense.ts; docs/daemon.md). */
  defense?: DefenseStatus;
}

/**
 * The defence strategies' current modes (0 off, 1 auto idle, 2 auto active, 3 always) and what
 * drives them: availmem against amemthresh, in pages. With several workers: the lowest availmem,
 * the highest modes, the counters summed.
 */
export interface DefenseStatus {
  dropEntry: number;
  dropPacket: number;
  secureTcp: number;
  availmem: number;
  amemthresh: number;
  /** drop_packet drops 1 packet in this many that would create a connection (0: none). */
  dropRate: number;
  /** The TCP transitions in use are tcp_states_dos. */
  secureTcpTable: boolean;
  /** Entries drop_entry removed; packets drop_packet dropped. */
  entriesDropped: number;
  packetsDropped: number;
}

export interface DaemonStatus extends WorkerStatus {
  version: number;
  pid: number;
  control: string;
  netns: string;
  nft: { table: string; vips: number; natDests: number; updates: number };
  worker: { alive: boolean; restarts: number };
  /** The host as the daemon follows it (rtnetlink): every link, and what changed. */
  host?: HostStatus;
  /** VRRP instances (--config with vrrp_instance sections): state, priorities, master, counters. */
  vrrp?: VrrpInstanceStatus[];
  /** The vrrp_scripts the instances track. */
  vrrpScripts?: VrrpScriptStatus[];
  /** The connection sync daemons running (ipvsadm --start-daemon, lvs_sync_daemon). */
  sync?: SyncDaemonStatus[];
  /** The VIPs' BGP announcement through BIRD: each VIP's state and why, BIRD's sessions. */
  bgp?: BgpStatus;
  /** With --config: the file, its reloads, and every checked real server's health. */
  config?: {
    file: string;
    reloads: number;
    health: HealthRow[];
  };
}

export interface HostStatus {
  /** Whether rtnetlink is followed (false: the host was read once, at start). */
  following: boolean;
  /** --host-vips: VIPs served only while the host has them. */
  hostVips: boolean;
  /** Every link of the namespace: operational state, admin up, carrier, served, addresses. */
  interfaces: Array<{
    name: string;
    ifindex: number;
    state: string;
    up: boolean;
    carrier: boolean;
    served: boolean;
    /** IPv4 addresses, addr/prefix. */
    addrs: string[];
    /** IPv6 addresses, addr/prefix, link-local ones included (not those still tentative). */
    addrs6: string[];
  }>;
  /** Main-table IPv4 routes through served interfaces. */
  routes: number;
  /** Main-table IPv6 routes through served interfaces. */
  routes6: number;
  /** Readings that found a difference, and updates sent to the data plane. */
  changes: number;
  updates: number;
  /** ISO time of the last change, null when none since start. */
  lastChange: string | null;
  rtnetlink: { datagrams: number; events: number; malformed: number; lost: number; runs: number } | null;
}

export interface FwmarkRuleLine {
  id: number;
  rule: string;
}

export type Response =
  | { applied: number; warning?: string }
  | { table: TableSnapshot }
  | { error: string; code: TsvsErrorCode; index?: number }
  | { status: DaemonStatus }
  /** A vector sysctl (sync_threshold) reads as its two ints. */
  | { sysctls: Record<string, SysctlValue> }
  | { fwmarks: FwmarkRuleLine[] }
  | { reloaded: string }
  /** Master first, then backup; empty when none runs. */
  | { daemons: SyncDaemonStatus[] }
  | { explain: ExplainAnswer }
  /** A worker to the main thread only, never on the socket: explain this flow on worker N (it owns it). */
  | { explainAt: number }
  | { error: string };

/** Validates one request line; returns the request or the reason it is refused. */
export function parseRequest(line: string): Request | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { error: "request is not JSON" };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    return { error: "request must be a JSON object" };
  const o = v as Record<string, unknown>;
  switch (o.op) {
    case "apply":
      try {
        return { op: "apply", commands: parseCommands(o.commands) };
      } catch (e) {
        if (e instanceof TsvsError) return { error: `apply: ${e.message}` };
        throw e;
      }
    case "table":
      if (o.conns !== undefined && typeof o.conns !== "boolean")
        return { error: "table: conns must be a boolean" };
      return o.conns === true ? { op: "table", conns: true } : { op: "table" };
    case "status":
      return { op: "status" };
    case "sysctl": {
      if (o.name === undefined) {
        if (o.value !== undefined) return { error: "sysctl: a value needs a name" };
        return { op: "sysctl" };
      }
      if (typeof o.name !== "string") return { error: "sysctl: name must be a string" };
      if (o.value !== undefined && typeof o.value !== "number")
        return { error: "sysctl: value must be a number" };
      if (o.value2 !== undefined && (typeof o.value2 !== "number" || o.value === undefined))
        return { error: "sysctl: value2 must be a number, with a value" };
      const text =
        o.value === undefined ? "" : o.value2 === undefined ? `=${o.value}` : `=${o.value},${o.value2}`;
      const p = parseSysctlArg(`${o.name}${text}`);
      if ("error" in p) return p;
      return p.value === undefined ? { op: "sysctl", name: p.name } : { op: "sysctl", ...p };
    }
    case "fwmark": {
      const a = o.action;
      if (a !== "add" && a !== "del" && a !== "list" && a !== "flush")
        return { error: "fwmark: action must be add, del, list or flush" };
      if (a === "add" || a === "del") {
        if (typeof o.rule !== "string" || o.rule.trim() === "")
          return { error: `fwmark ${a}: rule must be a non-empty string` };
        return { op: "fwmark", action: a, rule: o.rule };
      }
      return { op: "fwmark", action: a };
    }
    case "reload":
      return { op: "reload" };
    case "daemons":
      return { op: "daemons" };
    case "explain":
      return parseExplain(o);
    default:
      return { error: `unknown op ${JSON.stringify(o.op)}` };
  }
}

/** An address of explain: a dotted quad as it is, IPv6 as inet_ntop writes it; null when neither. */
function explainAddr(s: string): string | null {
  return s.includes(":") ? canonicalIPv6(s) : parseIPv4(s) !== null ? s : null;
}

const isPort = (v: unknown): v is number =>
  Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535;

function parseExplain(o: Record<string, unknown>): ExplainRequest | { error: string } {
  const proto = o.proto;
  if (proto !== "tcp" && proto !== "udp" && proto !== "sctp")
    return { error: "explain: proto must be tcp, udp or sctp" };
  const vip = typeof o.vip === "string" ? explainAddr(o.vip) : null;
  if (vip === null) return { error: "explain: vip must be an IPv4 or IPv6 address" };
  const client = typeof o.client === "string" ? explainAddr(o.client) : null;
  if (client === null) return { error: "explain: client must be an IPv4 or IPv6 address" };
  if (vip.includes(":") !== client.includes(":"))
    return { error: "explain: vip and client must be of one family (NAT64 is a service's, not a packet's)" };
  if (!isPort(o.port)) return { error: "explain: port must be an integer 0..65535" };
  if (!isPort(o.cport)) return { error: "explain: cport must be an integer 0..65535" };
  const req: ExplainRequest = {
    op: "explain",
    proto,
    vip,
    port: o.port,
    client,
    cport: o.cport,
  };
  if (o.fwmark !== undefined) {
    const m = o.fwmark;
    if (!Number.isInteger(m) || (m as number) < 0 || (m as number) > 0xffffffff)
      return { error: "explain: fwmark must be an integer 0..4294967295" };
    req.fwmark = m as number;
  }
  return req;
}

/**
 * The network namespace's identity: the inode of /proc/self/ns/net ("net:[4026531840]" in
 * /proc/PID/ns terms). Two processes see the same value exactly when they share the namespace.
 */
export function netnsId(): string {
  try {
    return String(statSync("/proc/self/ns/net").ino);
  } catch {
    return "unknown";
  }
}

function inode(path: string): string | null {
  try {
    return String(statSync(path).ino);
  } catch {
    return null;
  }
}

/** The `ip netns` name of this namespace (a bind mount under /run/netns with our inode), or null. */
export function netnsName(self = netnsId()): string | null {
  let names: string[];
  try {
    names = readdirSync("/run/netns");
  } catch {
    return null;
  }
  for (const n of names.sort()) if (inode(join("/run/netns", n)) === self) return n;
  return null;
}

/**
 * Where the daemon of this network namespace listens unless told otherwise. A daemon belongs to one
 * namespace as the kernel's IPVS table does, and `ip netns exec NS tsvs ipvsadm` must reach the
 * daemon of NS; /run is shared between namespaces, so the namespace goes into the path:
 *   a namespace named by `ip netns` (as `ip netns identify` finds it): /run/tsvs/netns-NAME/control.sock
 *   another namespace than PID 1's, when that can be read:              /run/tsvs/netns-INODE/control.sock
 *   otherwise (the host's namespace, or a container's own /run):        /run/tsvs/control.sock
 */
export function defaultControlPath(): string {
  const self = netnsId();
  const name = netnsName(self);
  if (name !== null) return join(RUN_DIR, `netns-${name}`, "control.sock");
  const init = inode("/proc/1/ns/net");
  if (init !== null && self !== "unknown" && init !== self)
    return join(RUN_DIR, `netns-${self}`, "control.sock");
  return join(RUN_DIR, "control.sock");
}

/** --control PATH, else $TSVS_CONTROL, else the namespace's default. */
export function resolveControlPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag !== undefined && flag !== "") return flag;
  const e = env.TSVS_CONTROL;
  if (e !== undefined && e !== "") return e;
  return defaultControlPath();
}
