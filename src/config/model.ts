// The configuration model both file formats (tsvs YAML, keepalived.conf's LVS part) turn
// into, and its translation into control commands.
//
// toCommands builds ServiceSpec/DestSpec through src/control/spec.ts, as the ipvsadm parser
// does, so a configuration means exactly what the same rules typed at ipvsadm would mean
// (defaults, DR/TUN taking the service port, "Zero port specified for non-persistent
// service", ...). Errors quote the ipvsadm command line the entry stands for.
//
// Addresses are the control plane's (docs/dev-notes.md "IPv6 design"): IPv4 in `addr`, IPv6 as
// inet_ntop's text in `addr6` with `addr` 0, so a model compares and prints as the table does.

import { addrPortText, addrText } from "../control/snapshot.js";
import {
  destSpec,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV6_FULL_PREFIX,
  SpecError,
  serviceSpec,
} from "../control/spec.js";
import { formatIPv4, ipv6TextWords, ipv6UsableUnicast, parseIPv4 } from "../core/addr.js";
import type { ConnLimitSpec } from "../core/conn-limit.js";
import type { CtlCommand, DestSpec, ServiceKey } from "../core/ctl-types.js";
import { Fwd } from "../core/dest.js";
import { TsvsError } from "../core/errors.js";
import { SCHEDULER_NAMES } from "../core/sched/index.js";
import {
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
  SVC_F_SCHED_BITS,
  SVC_F_SYNPROXY,
  schedFlagNames,
} from "../core/service.js";
import type { HaConfig } from "../core/vrrp/config.js";
import type { BgpNeighbor } from "./bird.js";

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

export interface CheckCommon {
  /** Seconds; keepalived's connect_timeout (default 5). */
  connectTimeout: number;
  /** Port to probe, 0 = the real server's port. */
  connectPort: number;
  /** Address to probe, 0 = the real server's address. */
  connectIp: number;
  /** An IPv6 connect_ip as inet_ntop's text (connectIp is then 0). */
  connectIp6?: string;
  /** keepalived's bindto: the checker's source address, canonical text of either family. */
  bindTo?: string;
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
  /** IPv4; 0 for IPv6. */
  addr: number;
  /** IPv6: inet_ntop's text; absent for IPv4. */
  addr6?: string;
  /** 0 when not given (fwmark services). */
  port: number;
  weight: number;
  inhibitOnFailure: boolean;
  uThreshold: number;
  lThreshold: number;
  check: CheckSpec | null;
  /** keepalived's notify_up / notify_down: run (no arguments added) when the server's verdict changes. */
  notifyUp?: string;
  notifyDown?: string;
  pos: SourcePos;
}

export interface VirtualServerConfig {
  /** The VIP's family; a fwmark service's is keepalived's ip_family, or its servers' (vsFamily). */
  af: 4 | 6;
  /** IPPROTO_*; 0 for fwmark services. */
  protocol: number;
  /** IPv4 VIP; 0 for IPv6 and fwmark services. */
  addr: number;
  /** IPv6 VIP as inet_ntop's text; absent otherwise. */
  addr6?: string;
  port: number;
  fwmark: number;
  scheduler: string;
  /** Seconds, 0 = not persistent. */
  persistenceTimeout: number;
  /** IPv4: a host-order netmask (default 255.255.255.255); IPv6: a prefix length (default 128). */
  persistenceGranularity: number;
  lbKind: LbKind;
  /** One-packet scheduling (-o). */
  onePacket: boolean;
  /** ipvsadm -b: SVC_F_SCHED1..3 (flag-N, sh-/mh-fallback and -port); absent: none. */
  schedFlags?: number;
  /** DPVS's `proxy_protocol` (ipvsadm --proxy-protocol): v1 or v2; absent: disable (TOA). */
  proxyProtocol?: string;
  /** DPVS keepalived's `syn_proxy` (ipvsadm --synproxy): SYN cookies for a TCP NAT/FULLNAT service. */
  synproxy?: boolean;
  sorryServer: { addr: number; addr6?: string; port: number } | null;
  /** Sum of the live servers' weights below which the service has lost quorum (keepalived default 1). */
  quorum: number;
  hysteresis: number;
  /** Real servers start down until their first successful check. */
  alpha: boolean;
  /** On shutdown, report servers and quorum as going down. */
  omega: boolean;
  /** keepalived's quorum_up / quorum_down: run (no arguments added) when the quorum is gained or lost. */
  quorumUp?: string;
  quorumDown?: string;
  /** Seconds between checks. */
  delayLoop: number;
  realServers: RealServerConfig[];
  /**
   * FULLNAT local addresses of this service (`ipvsadm -P ... -z LIP`): DPVS keepalived's
   * `laddr_group_name` (a `local_address_group`), YAML's `local_addresses`. Absent or empty: the
   * daemon's `--lip` pool (IPv4 real servers only).
   */
  localAddresses?: LocalAddress[];
  /**
   * Access lists (docs/acl.md): DPVS keepalived's `daddr_group_name` (a `deny_address_group`) and
   * `waddr_group_name` (an `allow_address_group`), YAML's `deny` and `allow`: canonical rule texts
   * ("ADDR" or "ADDR/LEN", acl.ts parseAclPrefix).
   */
  deny?: string[];
  allow?: string[];
  /** The per-source new-connection rate limit (YAML's `conn_limit`, keepalived's `conn_limit`). */
  connLimit?: ConnLimitSpec;
  pos: SourcePos;
}

/**
 * A FULLNAT local address, in the model's address form (IPv4 in `addr`; IPv6 as inet_ntop's text in
 * `addr6`, `addr` 0), and where it was written. The family rules are DPVS's (ip_vs_laddr.c): an IPv4
 * service takes IPv4 ones; an IPv6 service IPv6 ones for its IPv6 real servers and IPv4 ones for its
 * IPv4 real servers (NAT64).
 */
export interface LocalAddress {
  addr: number;
  addr6?: string;
  pos: SourcePos;
}

export interface ConfigModel {
  virtualServers: VirtualServerConfig[];
  /** VRRP instances, sync groups, scripts and the sync daemon (config/vrrp.ts); empty when none. */
  ha: HaConfig;
  /** The VIPs' announcement over BGP through BIRD (YAML's bgp section, docs/scale-out.md). */
  bgp?: BgpConfig;
}

/**
 * YAML's `bgp` section: the director's BGP speaker (BIRD) and its sessions. The VIPs it announces
 * are the virtual servers' addresses (fwmark services have none), each while one of its services
 * has quorum (src/daemon/bgp.ts).
 */
export interface BgpConfig {
  /** BGP identifier; null: the source address toward the first neighbour, chosen at start. */
  routerId: string | null;
  localAs: number;
  neighbors: BgpNeighbor[];
  /** Seconds (BIRD negotiates the smaller of the two sides'). */
  holdTime: number;
  keepaliveTime: number;
  connectRetryTime: number;
  bfd: boolean;
  /** The TUN device whose life is the daemon's (src/config/bird.ts, "liveness"). */
  livenessIfname: string;
  /**
   * Seconds a director whose sync daemons start together waits at most for its peers' tables
   * before it announces (daemon/sync.ts warm-up); absent: BGP_DEFAULTS.warmup.
   */
  warmup?: number;
  bird: {
    binary: string;
    /** Control socket, configuration and log files; null: next to the daemon's control socket. */
    socket: string | null;
    config: string | null;
    log: string | null;
    /** Leave a BIRD that tsvs started running when the daemon stops (SIGTERM), its VIPs withdrawn. */
    keepRunning: boolean;
  };
  pos: SourcePos;
}

export const BGP_DEFAULTS = {
  holdTime: 3,
  keepaliveTime: 1,
  connectRetryTime: 5,
  livenessIfname: "tsvs-bgp0",
  birdBinary: "bird",
  /**
   * The sync refresh's bound: 3 s to hear every peer (core/sync/peers.ts PEER_LOST_MS), then 7 s of
   * refresh at sync_table_rate's default (4000 messages/s of ~40 entries per worker: ~1.1M entries).
   */
  warmup: 10,
};

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

/**
 * A persistence granularity. IPv4: a dotted mask, "/N" or "N" (prefix length), as a mask; IPv6:
 * a prefix length 1..128 ("N" as keepalived's pgr_handler reads it, or "/N"). Null if invalid.
 */
export function parseNetmask(s: string, af: 4 | 6 = 4): number | null {
  const p = /^\/?(\d{1,3})$/.exec(s);
  if (af === 6) {
    const n = p === null ? 0 : Number(p[1]);
    return n >= 1 && n <= IPV6_FULL_PREFIX ? n : null;
  }
  if (p !== null) {
    const n = Number(p[1]);
    return n <= 32 ? (n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0) : null;
  }
  return parseIPv4(s);
}

/** The granularity a service has when none is given: one client address. */
export function fullGranularity(af: 4 | 6): number {
  return af === 6 ? IPV6_FULL_PREFIX : 0xffffffff;
}

/**
 * Methods whose real servers may have the other family: TUN (the kernel's ip_vs_genl_set_cmd,
 * keepalived's rs_end_handler) and FULLNAT (DPVS's NAT64). The control core has the last word.
 */
export function crossesFamilies(k: LbKind): boolean {
  return k === "TUN" || k === "FULLNAT";
}

/**
 * A fwmark virtual server's family when ip_family does not say (keepalived's vs_end_handler and
 * pgr_handler): the family of its real and sorry servers when they cannot cross families (they
 * must all have it); others give theirs when they all agree. Then a granularity without a '.'
 * (keepalived reads it as an IPv6 prefix length), else IPv4.
 */
export function vsFamily(
  lbKind: LbKind,
  servers: ReadonlyArray<{ addr6?: string }>,
  granularity: string | null,
): 4 | 6 {
  const fams = new Set(servers.map((s) => (s.addr6 !== undefined ? 6 : 4)));
  if (!crossesFamilies(lbKind) && servers.length > 0) return servers[0].addr6 !== undefined ? 6 : 4;
  if (granularity !== null) return granularity.includes(".") ? 4 : 6;
  return fams.size === 1 && fams.has(6) ? 6 : 4;
}

/** "IPv4" or "IPv6". */
export function familyName(af: 4 | 6): string {
  return `IPv${af}`;
}

export function isScheduler(name: string): boolean {
  return SCHEDULER_NAMES.includes(name);
}

/** `-t VIP:PORT` (`-t [V6]:PORT`), `-u ...`, `--sctp-service ...`, `-f MARK` or `-f MARK -6`. */
export function serviceArgs(vs: ServiceKey): string[] {
  if (vs.fwmark !== 0) return vs.af === 6 ? ["-f", String(vs.fwmark), "-6"] : ["-f", String(vs.fwmark)];
  const flag = vs.protocol === IPPROTO_UDP ? "-u" : vs.protocol === IPPROTO_SCTP ? "--sctp-service" : "-t";
  return [flag, addrPortText(vs, vs.port)];
}

/** ipvsadm's -M text of a granularity: a dotted mask, an IPv6 prefix length; "" for the full one. */
function granularityArg(af: 4 | 6, g: number): string {
  if (g >>> 0 === fullGranularity(af)) return "";
  return af === 6 ? String(g) : formatIPv4(g);
}

/** ipvsadm -b's argument for scheduler flags: their names for the scheduler, comma-separated. */
export function schedFlagsText(sched: string, flags: number): string {
  const names = schedFlagNames(sched);
  return SVC_F_SCHED_BITS.flatMap((b, i) => ((flags & b) !== 0 ? [names[i]] : [])).join(",");
}

/** The `ipvsadm -A` argv of a virtual server. */
export function serviceArgv(vs: VirtualServerConfig): string[] {
  const a = ["-A", ...serviceArgs(serviceKeyOf(vs)), "-s", vs.scheduler];
  if (vs.persistenceTimeout > 0) {
    a.push("-p", String(vs.persistenceTimeout));
    const m = granularityArg(vs.af, vs.persistenceGranularity);
    if (m !== "") a.push("-M", m);
  }
  if (vs.onePacket) a.push("-o");
  const flags = schedFlagsText(vs.scheduler, vs.schedFlags ?? 0);
  if (flags !== "") a.push("-b", flags);
  if (vs.synproxy === true) a.push("--synproxy", "enable");
  if (vs.proxyProtocol !== undefined) a.push("--proxy-protocol", vs.proxyProtocol);
  return a;
}

/** The `ipvsadm -a` argv of a real server (or the sorry server) of a virtual server. */
export function destArgv(vs: VirtualServerConfig, rs: RealServerDesc): string[] {
  const a = [
    "-a",
    ...serviceArgs(serviceKeyOf(vs)),
    "-r",
    rs.port !== 0 ? addrPortText(rs, rs.port) : addrText(rs),
  ];
  a.push(FWD_SWITCH[vs.lbKind], "-w", String(rs.weight));
  if (rs.uThreshold) a.push("-x", String(rs.uThreshold));
  if (rs.lThreshold) a.push("-y", String(rs.lThreshold));
  return a;
}

export function serviceKeyOf(
  vs: Pick<VirtualServerConfig, "af" | "protocol" | "addr" | "addr6" | "port" | "fwmark">,
): ServiceKey {
  if (vs.fwmark !== 0) return { af: vs.af, protocol: 0, addr: 0, port: 0, fwmark: vs.fwmark };
  const k: ServiceKey = { af: vs.af, protocol: vs.protocol, addr: vs.addr >>> 0, port: vs.port, fwmark: 0 };
  if (vs.addr6 !== undefined) k.addr6 = vs.addr6;
  return k;
}

/** "TCP 10.0.0.1:80", "TCP [2001:db8::1]:80", "FWM 5", "FWM 5 IPv6" (as ipvsadm -L names them). */
export function serviceKeyString(k: ServiceKey): string {
  if (k.fwmark !== 0) return k.af === 6 ? `FWM ${k.fwmark} IPv6` : `FWM ${k.fwmark}`;
  return `${protoName(k.protocol)} ${addrPortText(k, k.port)}`;
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
        addr: vs.addr6 ?? vs.addr,
        port: vs.port,
        fwmark: vs.fwmark,
        af: vs.af,
        scheduler: vs.scheduler,
        persistence: vs.persistenceTimeout,
        // As ipvsadm -M: only with -p does the granularity go in.
        netmask: vs.persistenceTimeout > 0 ? vs.persistenceGranularity : undefined,
        onePacket: vs.onePacket,
        schedFlags: vs.schedFlags,
        proxyProtocol: vs.proxyProtocol,
        synproxy: vs.synproxy,
      }),
    serviceArgv(vs),
    vs.pos,
    errors,
  );
  return svc === null ? null : { op: "add-service", svc };
}

interface RealServerDesc {
  addr: number;
  addr6?: string;
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
        addr: rs.addr6 ?? rs.addr,
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
      familyErrors(vs, rs, "real server", rs.pos, errors);
      checkerErrors(rs, errors);
      const cmd = buildDest(vs, rs, rs.pos, errors);
      if (cmd === null) continue;
      const dk = addrPortText(cmd.dest, cmd.dest.port);
      if (dests.has(dk)) errors.push({ ...rs.pos, message: `real server ${dk} appears twice in ${k}` });
      dests.add(dk);
    }
    if (vs.sorryServer !== null) familyErrors(vs, vs.sorryServer, "sorry server", vs.pos, errors);
    laddrErrors(vs, k, errors);
    buildService(vs, errors);
  }
  // A virtual_server_group repeats its block for every member: one error is enough.
  return errors.filter((e, i) => errors.findIndex((x) => formatDiagnostic(x) === formatDiagnostic(e)) === i);
}

/**
 * A virtual server's local addresses, each at the line that wrote it: unicast (ipvsadm's -z checks,
 * ctl.ts checkLaddr: not 0, broadcast or multicast; IPv6 not ::, multicast or link-local), listed
 * once, and of a family the service can use (LocalAddress).
 */
function laddrErrors(vs: VirtualServerConfig, k: string, errors: Diagnostic[]): void {
  const seen = new Set<string>();
  for (const a of vs.localAddresses ?? []) {
    const text = addrText(a);
    const u = a.addr >>> 0;
    const w = a.addr6 !== undefined ? ipv6TextWords(a.addr6) : null;
    if (a.addr6 !== undefined && vs.af === 4)
      errors.push({
        ...a.pos,
        message: `local address ${text} is IPv6, ${k} IPv4: an IPv4 service takes IPv4 local addresses (an IPv6 service takes both: IPv6 ones for IPv6 real servers, IPv4 ones for NAT64)`,
      });
    else if (w !== null ? !ipv6UsableUnicast(w) : u === 0 || u === 0xffffffff || u >>> 28 === 0xe)
      errors.push({
        ...a.pos,
        message: `local address ${text} of ${k} is not a unicast address${w !== null && w[0] >>> 22 === 0x3fa ? " (link-local)" : ""}`,
      });
    else if (seen.has(text))
      errors.push({ ...a.pos, message: `local address ${text} appears twice in ${k}` });
    seen.add(text);
  }
}

/**
 * keepalived's rs_end_handler / vs_end_handler rule, which is the kernel's: a real or sorry server
 * has the virtual server's family unless it is tunnelled (or behind FULLNAT: crossesFamilies).
 */
function familyErrors(
  vs: VirtualServerConfig,
  rs: { addr: number; addr6?: string },
  what: string,
  pos: SourcePos,
  errors: Diagnostic[],
): void {
  const af = rs.addr6 !== undefined ? 6 : 4;
  if (af === vs.af || vs.lbKind === "TUN") return;
  // DPVS's FULLNAT crosses one way: an IPv6 service to IPv4 servers (NAT64), as ctl's checkDest.
  if (vs.lbKind === "FULLNAT") {
    if (vs.af === 6) return;
    errors.push({
      ...pos,
      message: `${what} ${addrText(rs)} is IPv6, ${serviceKeyString(serviceKeyOf(vs))} IPv4: FULLNAT crosses families only from an IPv6 service to IPv4 servers (NAT64)`,
    });
    return;
  }
  errors.push({
    ...pos,
    message: `${what} ${addrText(rs)} is ${familyName(af)}, ${serviceKeyString(serviceKeyOf(vs))} ${familyName(vs.af)}: only TUN and FULLNAT cross families`,
  });
}

/**
 * keepalived's co_ip_handler / co_srcip_handler and check_conn_opts: connect_ip and bindto of one
 * family, the one the check connects to; a link-local one would need bind_if, which tsvs lacks.
 */
function checkerErrors(rs: RealServerConfig, errors: Diagnostic[]): void {
  const c = rs.check;
  if (c === null || c.type === "misc") return;
  const dst = c.connectIp6 ?? (c.connectIp !== 0 ? formatIPv4(c.connectIp) : addrText(rs));
  for (const a of [c.connectIp6, c.bindTo])
    if (a !== undefined && (ipv6TextWords(a)?.[0] ?? 0) >>> 22 === 0x3fa /* fe80::/10 */)
      errors.push({
        ...rs.pos,
        message: `the checker's link-local address ${a} needs bind_if (not in tsvs)`,
      });
  if (c.bindTo !== undefined && c.bindTo.includes(":") !== dst.includes(":"))
    errors.push({
      ...rs.pos,
      message: `the checker's bindto ${c.bindTo} is not of the family of ${dst}, where it connects`,
    });
}

/**
 * What the configuration asks for that ipvsadm's rules would quietly change or drop:
 * reported so that nothing is lost without a word.
 */
export function modelWarnings(model: ConfigModel): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const vs of model.virtualServers) {
    if (vs.persistenceTimeout === 0 && vs.persistenceGranularity >>> 0 !== fullGranularity(vs.af))
      out.push({ ...vs.pos, message: "persistence_granularity without persistence_timeout has no effect" });
    if (vs.lbKind === "FULLNAT" && !(vs.localAddresses ?? []).some((a) => a.addr6 !== undefined))
      for (const rs of vs.realServers)
        if (rs.addr6 !== undefined)
          out.push({
            ...rs.pos,
            message: `FULLNAT to the IPv6 real server ${rs.addr6} takes an IPv6 local address of the service (the --lip pool is IPv4): ${serviceKeyString(serviceKeyOf(vs))} has none, its connections to this server fail`,
          });
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
    const key = serviceKeyOf(vs);
    for (const rule of vs.deny ?? []) out.push({ op: "add-acl", key, list: "deny", rule });
    for (const rule of vs.allow ?? []) out.push({ op: "add-acl", key, list: "allow", rule });
    if (vs.connLimit !== undefined && vs.connLimit.rate > 0)
      out.push({ op: "set-conn-limit", key, limit: { ...vs.connLimit } });
  }
  return out;
}

/** The add-laddr commands of a virtual server's local addresses, in order. */
export function laddrCommands(vs: VirtualServerConfig): CtlCommand[] {
  const key = serviceKeyOf(vs);
  return (vs.localAddresses ?? []).map((a) => laddrCommand("add-laddr", key, a));
}

/** The add-laddr / del-laddr command of one local address (`-P|-Q ... -z LIP`). */
export function laddrCommand(
  op: "add-laddr" | "del-laddr",
  key: ServiceKey,
  a: { addr: number; addr6?: string },
): Extract<CtlCommand, { op: "add-laddr" | "del-laddr" }> {
  return a.addr6 !== undefined ? { op, key, addr: 0, addr6: a.addr6 } : { op, key, addr: a.addr >>> 0 };
}

/** A destination's ipvsadm -S line for a command (config check, logs). */
export function commandToIpvsadm(cmd: CtlCommand): string {
  const svc = (k: ServiceKey): string => serviceArgs(k).join(" ");
  const dest = (d: DestSpec): string => {
    const fwd =
      d.fwd === Fwd.Masq ? "-m" : d.fwd === Fwd.Tunnel ? "-i" : d.fwd === Fwd.FullNat ? "--fullnat" : "-g";
    let s = `-r ${addrPortText(d, d.port)} ${fwd} -w ${d.weight}`;
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
        const m = granularityArg(s.af, s.netmask);
        if (m !== "") line += ` -M ${m}`;
      }
      if (s.flags & SVC_F_ONEPACKET) line += " -o";
      const flags = schedFlagsText(s.schedName, s.flags);
      if (flags !== "") line += ` -b ${flags}`;
      if (s.flags & SVC_F_SYNPROXY) line += " --synproxy enable";
      if (s.proxyProtocol !== undefined) line += ` --proxy-protocol ${s.proxyProtocol}`;
      return line;
    }
    case "del-service":
      return `-D ${svc(cmd.key)}`;
    case "add-dest":
      return `-a ${svc(cmd.key)} ${dest(cmd.dest)}`;
    case "edit-dest":
      return `-e ${svc(cmd.key)} ${dest(cmd.dest)}`;
    case "del-dest":
      return `-d ${svc(cmd.key)} -r ${addrPortText(cmd, cmd.port)}`;
    case "clear":
      return "-C";
    case "zero":
      return cmd.key === null ? "-Z" : `-Z ${svc(cmd.key)}`;
    case "set-timeout":
      return `--set ${cmd.timeouts.tcp} ${cmd.timeouts.tcpFin} ${cmd.timeouts.udp}`;
    case "add-laddr":
      return `-P ${svc(cmd.key)} -z ${addrText(cmd)}`;
    case "del-laddr":
      return `-Q ${svc(cmd.key)} -z ${addrText(cmd)}`;
    case "add-acl":
    case "del-acl": {
      const o =
        cmd.list === "deny" ? (cmd.op === "add-acl" ? "-U" : "-V") : cmd.op === "add-acl" ? "-O" : "-Y";
      return `${o} ${svc(cmd.key)} ${cmd.list === "deny" ? "-k" : "-2"} ${cmd.rule}`;
    }
    case "set-conn-limit":
      return `--conn-limit ${svc(cmd.key)} ${connLimitArgs(cmd.limit)}`;
  }
}

/** The ipvsadm options of a per-source rate limit (tsvs's extension; "--conn-rate 0" = off). */
export function connLimitArgs(l: ConnLimitSpec): string {
  if (l.rate === 0) return "--conn-rate 0";
  return `--conn-rate ${l.rate} --conn-burst ${l.burst} --conn-rate-prefix ${l.prefix4},${l.prefix6}`;
}
