// The configuration model both file formats (tsvs YAML, keepalived.conf's LVS part) turn
// into, and its translation into control commands.
//
// toCommands builds ServiceSpec/DestSpec through src/control/spec.ts, as the ipvsadm parser
// does, so a configuration means exactly what the same rules typed at ipvsadm would mean
// (defaults, DR/TUN taking the service port, "Zero port specified for non-persistent
// service", ...). Errors quote the ipvsadm command line the entry stands for.

import { destSpec, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, SpecError, serviceSpec } from "../control/spec.js";
import { formatIPv4, parseIPv4 } from "../core/addr.js";
import type { CtlCommand, DestSpec, ServiceKey } from "../core/ctl-types.js";
import { Fwd } from "../core/dest.js";
import { TsvsError } from "../core/errors.js";
import { SCHEDULER_NAMES } from "../core/sched/index.js";
import { SVC_F_ONEPACKET, SVC_F_PERSISTENT } from "../core/service.js";
import type { HaConfig } from "../core/vrrp/config.js";

/** Where something was written: 1-based line and column. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

export interface Diagnostic extends SourcePos {
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}`;
}

/** A configuration that cannot be used; `diagnostics` holds every error found. */
export class ConfigError extends TsvsError {
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    super("TSVS_ERR_PARSE", diagnostics.map(formatDiagnostic).join("\n"));
    this.name = "ConfigError";
    this.diagnostics = diagnostics;
  }
}

export type LbKind = "NAT" | "DR" | "TUN" | "FULLNAT";
export const LB_KINDS: readonly LbKind[] = ["NAT", "DR", "TUN", "FULLNAT"];

export function lbKindToFwd(k: LbKind): Fwd {
  switch (k) {
    case "NAT":
      return Fwd.Masq;
    case "DR":
      return Fwd.Route;
    case "TUN":
      return Fwd.Tunnel;
    case "FULLNAT":
      return Fwd.FullNat;
  }
}

const FWD_SWITCH: Record<LbKind, string> = { NAT: "-m", DR: "-g", TUN: "-i", FULLNAT: "--fullnat" };

interface CheckCommon {
  /** Seconds; keepalived's connect_timeout (default 5). */
  connectTimeout: number;
  /** Port to probe, 0 = the real server's port. */
  connectPort: number;
  /** Address to probe, 0 = the real server's address. */
  connectIp: number;
  /** Further attempts after a failure before the server is declared down (keepalived's retry). */
  retry: number;
  /** Seconds between those attempts. */
  delayBeforeRetry: number;
}

export interface HttpUrl {
  path: string;
  /** Lower-case hex MD5 of the body, "" for none. */
  digest: string;
  /** Accepted status codes; empty = any 2xx (keepalived's default). */
  statusCodes: readonly number[];
}

export type CheckSpec =
  | ({ type: "tcp" } & CheckCommon)
  | ({ type: "http" | "https"; urls: readonly HttpUrl[]; virtualHost: string } & CheckCommon)
  | ({ type: "dns"; name: string; qtype: string } & CheckCommon)
  | {
      type: "misc";
      path: string /** seconds, 0 = delay_loop */;
      timeout: number;
      retry: number;
      delayBeforeRetry: number;
    };

export interface RealServerConfig {
  addr: number;
  /** 0 when not given (fwmark services). */
  port: number;
  weight: number;
  inhibitOnFailure: boolean;
  uThreshold: number;
  lThreshold: number;
  check: CheckSpec | null;
  pos: SourcePos;
}

export interface VirtualServerConfig {
  /** IPPROTO_*; 0 for fwmark services. */
  protocol: number;
  addr: number;
  port: number;
  fwmark: number;
  scheduler: string;
  /** Seconds, 0 = not persistent. */
  persistenceTimeout: number;
  /** Host-order netmask. */
  persistenceGranularity: number;
  lbKind: LbKind;
  /** One-packet scheduling (-o). */
  onePacket: boolean;
  sorryServer: { addr: number; port: number } | null;
  /** Sum of the live servers' weights below which the service has lost quorum (keepalived default 1). */
  quorum: number;
  hysteresis: number;
  /** Real servers start down until their first successful check. */
  alpha: boolean;
  /** On shutdown, report servers and quorum as going down. */
  omega: boolean;
  /** Seconds between checks. */
  delayLoop: number;
  realServers: RealServerConfig[];
  /**
   * FULLNAT local addresses of this service (`ipvsadm -P ... -z LIP`): DPVS keepalived's
   * `laddr_group_name` (a `local_address_group`), YAML's `local_addresses`. Absent or empty: the
   * daemon's `--lip` pool.
   */
  localAddresses?: number[];
  pos: SourcePos;
}

export interface ConfigModel {
  virtualServers: VirtualServerConfig[];
  /** VRRP instances, sync groups, scripts and the sync daemon (config/vrrp.ts); empty when none. */
  ha: HaConfig;
}

export interface ParsedConfig {
  model: ConfigModel;
  warnings: Diagnostic[];
}

export const DEFAULTS = {
  scheduler: "wlc",
  lbKind: "DR" as LbKind,
  weight: 1,
  quorum: 1,
  hysteresis: 0,
  delayLoop: 60,
  connectTimeout: 5,
  retry: 1,
  delayBeforeRetry: 1,
  persistenceTimeout: 300,
};

export function protoName(p: number): string {
  return p === IPPROTO_UDP ? "UDP" : p === IPPROTO_SCTP ? "SCTP" : "TCP";
}

export function parseProtocol(s: string): number | null {
  const u = s.toUpperCase();
  return u === "TCP" ? IPPROTO_TCP : u === "UDP" ? IPPROTO_UDP : u === "SCTP" ? IPPROTO_SCTP : null;
}

/** A persistence granularity: dotted mask, "/N" or "N" (prefix length); null if invalid. */
export function parseNetmask(s: string): number | null {
  const p = /^\/?(\d{1,2})$/.exec(s);
  if (p !== null) {
    const n = Number(p[1]);
    return n <= 32 ? (n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0) : null;
  }
  return parseIPv4(s);
}

export function isScheduler(name: string): boolean {
  return SCHEDULER_NAMES.includes(name);
}

/** `-t VIP:PORT`, `-u ...`, `--sctp-service ...` or `-f MARK`. */
export function serviceArgs(
  vs: Pick<VirtualServerConfig, "protocol" | "addr" | "port" | "fwmark">,
): string[] {
  if (vs.fwmark !== 0) return ["-f", String(vs.fwmark)];
  const flag = vs.protocol === IPPROTO_UDP ? "-u" : vs.protocol === IPPROTO_SCTP ? "--sctp-service" : "-t";
  return [flag, `${formatIPv4(vs.addr)}:${vs.port}`];
}

/** The `ipvsadm -A` argv of a virtual server. */
export function serviceArgv(vs: VirtualServerConfig): string[] {
  const a = ["-A", ...serviceArgs(vs), "-s", vs.scheduler];
  if (vs.persistenceTimeout > 0) {
    a.push("-p", String(vs.persistenceTimeout));
    if (vs.persistenceGranularity >>> 0 !== 0xffffffff) a.push("-M", formatIPv4(vs.persistenceGranularity));
  }
  if (vs.onePacket) a.push("-o");
  return a;
}

/** The `ipvsadm -a` argv of a real server (or the sorry server) of a virtual server. */
export function destArgv(
  vs: VirtualServerConfig,
  rs: { addr: number; port: number; weight: number; uThreshold?: number; lThreshold?: number },
): string[] {
  const a = [
    "-a",
    ...serviceArgs(vs),
    "-r",
    rs.port !== 0 ? `${formatIPv4(rs.addr)}:${rs.port}` : formatIPv4(rs.addr),
  ];
  a.push(FWD_SWITCH[vs.lbKind], "-w", String(rs.weight));
  if (rs.uThreshold) a.push("-x", String(rs.uThreshold));
  if (rs.lThreshold) a.push("-y", String(rs.lThreshold));
  return a;
}

export function serviceKeyOf(
  vs: Pick<VirtualServerConfig, "protocol" | "addr" | "port" | "fwmark">,
): ServiceKey {
  return vs.fwmark !== 0
    ? { af: 4, protocol: 0, addr: 0, port: 0, fwmark: vs.fwmark }
    : { af: 4, protocol: vs.protocol, addr: vs.addr >>> 0, port: vs.port, fwmark: 0 };
}

export function serviceKeyString(k: ServiceKey): string {
  return k.fwmark !== 0 ? `FWM ${k.fwmark}` : `${protoName(k.protocol)} ${formatIPv4(k.addr)}:${k.port}`;
}

/** Builds with `make`; a rule ipvsadm would refuse becomes a diagnostic quoting the ipvsadm line. */
function build<T>(make: () => T, argv: readonly string[], pos: SourcePos, errors: Diagnostic[]): T | null {
  try {
    return make();
  } catch (e) {
    if (!(e instanceof SpecError)) throw e;
    errors.push({ ...pos, message: `${e.message} (ipvsadm ${argv.join(" ")})` });
    return null;
  }
}

function buildService(
  vs: VirtualServerConfig,
  errors: Diagnostic[],
): Extract<CtlCommand, { op: "add-service" }> | null {
  const svc = build(
    () =>
      serviceSpec({
        protocol: vs.protocol,
        addr: vs.addr,
        port: vs.port,
        fwmark: vs.fwmark,
        scheduler: vs.scheduler,
        persistence: vs.persistenceTimeout,
        // As ipvsadm -M: only with -p does the granularity go in.
        netmask: vs.persistenceTimeout > 0 ? vs.persistenceGranularity : undefined,
        onePacket: vs.onePacket,
      }),
    serviceArgv(vs),
    vs.pos,
    errors,
  );
  return svc === null ? null : { op: "add-service", svc };
}

interface RealServerDesc {
  addr: number;
  port: number;
  weight: number;
  uThreshold?: number;
  lThreshold?: number;
}

function buildDest(
  vs: VirtualServerConfig,
  rs: RealServerDesc,
  pos: SourcePos,
  errors: Diagnostic[],
): Extract<CtlCommand, { op: "add-dest" }> | null {
  const key = serviceKeyOf(vs);
  const dest = build(
    () =>
      destSpec(key, {
        addr: rs.addr,
        port: rs.port,
        fwd: lbKindToFwd(vs.lbKind),
        weight: rs.weight,
        uThreshold: rs.uThreshold,
        lThreshold: rs.lThreshold,
      }),
    destArgv(vs, rs),
    pos,
    errors,
  );
  return dest === null ? null : { op: "add-dest", key, dest };
}

/** The add-service command of a virtual server (throws ConfigError). */
export function serviceCommand(vs: VirtualServerConfig): Extract<CtlCommand, { op: "add-service" }> {
  const errors: Diagnostic[] = [];
  const cmd = buildService(vs, errors);
  if (cmd === null) throw new ConfigError(errors);
  return cmd;
}

/** The add-dest command of a real server (throws ConfigError). */
export function destCommand(
  vs: VirtualServerConfig,
  rs: RealServerDesc & { pos?: SourcePos },
): Extract<CtlCommand, { op: "add-dest" }> {
  const errors: Diagnostic[] = [];
  const cmd = buildDest(vs, rs, rs.pos ?? vs.pos, errors);
  if (cmd === null) throw new ConfigError(errors);
  return cmd;
}

/** The sorry server's destination, forwarded like the virtual server's real servers. */
export function sorryCommand(vs: VirtualServerConfig): Extract<CtlCommand, { op: "add-dest" }> | null {
  if (vs.sorryServer === null) return null;
  return destCommand(vs, { ...vs.sorryServer, weight: 1 });
}

/**
 * Semantic checks both formats share (what ipvsadm cannot know): scheduler names,
 * duplicate services and real servers.
 */
export function validateModel(model: ConfigModel): Diagnostic[] {
  const errors: Diagnostic[] = [];
  const seen = new Map<string, SourcePos>();
  for (const vs of model.virtualServers) {
    if (!isScheduler(vs.scheduler))
      errors.push({
        ...vs.pos,
        message: `unknown scheduler "${vs.scheduler}" (${SCHEDULER_NAMES.join(", ")})`,
      });
    const k = serviceKeyString(serviceKeyOf(vs));
    const prev = seen.get(k);
    if (prev !== undefined)
      errors.push({ ...vs.pos, message: `${k} is already defined at line ${prev.line}` });
    else seen.set(k, vs.pos);
    const dests = new Set<string>();
    for (const rs of vs.realServers) {
      const cmd = buildDest(vs, rs, rs.pos, errors);
      if (cmd === null) continue;
      const dk = `${cmd.dest.addr}:${cmd.dest.port}`;
      if (dests.has(dk))
        errors.push({
          ...rs.pos,
          message: `real server ${formatIPv4(cmd.dest.addr)}:${cmd.dest.port} appears twice in ${k}`,
        });
      dests.add(dk);
    }
    const laddrs = new Set<number>();
    for (const a of vs.localAddresses ?? []) {
      const u = a >>> 0;
      if (u === 0 || u === 0xffffffff || u >>> 28 === 0xe)
        errors.push({
          ...vs.pos,
          message: `local address ${formatIPv4(u)} of ${k} is not a unicast address`,
        });
      else if (laddrs.has(u))
        errors.push({ ...vs.pos, message: `local address ${formatIPv4(u)} appears twice in ${k}` });
      laddrs.add(u);
    }
    buildService(vs, errors);
  }
  return errors;
}

/**
 * What the configuration asks for that ipvsadm's rules would quietly change or drop:
 * reported so that nothing is lost without a word.
 */
export function modelWarnings(model: ConfigModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const vs of model.virtualServers) {
    if (vs.persistenceTimeout === 0 && vs.persistenceGranularity >>> 0 !== 0xffffffff)
      out.push({ ...vs.pos, message: "persistence_granularity without persistence_timeout has no effect" });
    if (vs.fwmark !== 0 || (vs.lbKind !== "DR" && vs.lbKind !== "TUN")) continue;
    for (const rs of vs.realServers)
      if (rs.port !== 0 && rs.port !== vs.port)
        out.push({
          ...rs.pos,
          message: `${vs.lbKind} cannot map ports: real server port ${rs.port} becomes the service port ${vs.port}`,
        });
  }
  return out;
}

/**
 * The commands that build the configured table from an empty one, every real server
 * present with its configured weight (health checks start from this, see health/state.ts).
 */
export function toCommands(model: ConfigModel): CtlCommand[] {
  const errors = validateModel(model);
  if (errors.length > 0) throw new ConfigError(errors);
  const out: CtlCommand[] = [];
  for (const vs of model.virtualServers) {
    out.push(serviceCommand(vs));
    for (const rs of vs.realServers) out.push(destCommand(vs, rs));
    out.push(...laddrCommands(vs));
  }
  return out;
}

/** The add-laddr commands of a virtual server's local addresses, in order. */
export function laddrCommands(vs: VirtualServerConfig): CtlCommand[] {
  const key = serviceKeyOf(vs);
  return (vs.localAddresses ?? []).map((addr) => ({ op: "add-laddr", key, addr: addr >>> 0 }));
}

/** A destination's ipvsadm -S line for a command (config check, logs). */
export function commandToIpvsadm(cmd: CtlCommand): string {
  const svc = (k: ServiceKey): string => serviceArgs(k).join(" ");
  const dest = (d: DestSpec): string => {
    const fwd =
      d.fwd === Fwd.Masq ? "-m" : d.fwd === Fwd.Tunnel ? "-i" : d.fwd === Fwd.FullNat ? "--fullnat" : "-g";
    let s = `-r ${formatIPv4(d.addr)}:${d.port} ${fwd} -w ${d.weight}`;
    if (d.uThreshold) s += ` -x ${d.uThreshold}`;
    if (d.lThreshold) s += ` -y ${d.lThreshold}`;
    return s;
  };
  switch (cmd.op) {
    case "add-service":
    case "edit-service": {
      const s = cmd.svc;
      let line = `${cmd.op === "add-service" ? "-A" : "-E"} ${svc(s)} -s ${s.schedName}`;
      if (s.flags & SVC_F_PERSISTENT) {
        line += ` -p ${s.timeout}`;
        if (s.netmask >>> 0 !== 0xffffffff) line += ` -M ${formatIPv4(s.netmask)}`;
      }
      if (s.flags & SVC_F_ONEPACKET) line += " -o";
      return line;
    }
    case "del-service":
      return `-D ${svc(cmd.key)}`;
    case "add-dest":
      return `-a ${svc(cmd.key)} ${dest(cmd.dest)}`;
    case "edit-dest":
      return `-e ${svc(cmd.key)} ${dest(cmd.dest)}`;
    case "del-dest":
      return `-d ${svc(cmd.key)} -r ${formatIPv4(cmd.addr)}:${cmd.port}`;
    case "clear":
      return "-C";
    case "zero":
      return cmd.key === null ? "-Z" : `-Z ${svc(cmd.key)}`;
    case "set-timeout":
      return `--set ${cmd.timeouts.tcp} ${cmd.timeouts.tcpFin} ${cmd.timeouts.udp}`;
    case "add-laddr":
      return `-P ${svc(cmd.key)} -z ${formatIPv4(cmd.addr)}`;
    case "del-laddr":
      return `-Q ${svc(cmd.key)} -z ${formatIPv4(cmd.addr)}`;
  }
}
