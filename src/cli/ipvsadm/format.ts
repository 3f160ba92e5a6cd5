// ipvsadm 1.31's output formats (ipvsadm.c: list_all, print_title, print_service_entry,
// print_largenum, print_sched_flags, list_conn/print_conn, list_timeout), character for
// character, over a snapshot of the table.
//
// Without -n ipvsadm resolves addresses (gethostbyaddr) and ports (getservbyport). tsvs
// has no resolver: addresses always print numerically, ports print by name when they
// are in parse.ts's SERVICE_PORTS table (80 -> http, ...), otherwise as numbers, which is
// what ipvsadm prints for names it cannot resolve.

import type {
  DestSnapshot as Dest,
  ServiceSnapshot as Service,
  StatsSnapshot as Stats,
  TableSnapshot,
} from "../../control/snapshot.js";
import { addrText } from "../../control/snapshot.js";
import { daemonsInKernelOrder } from "../../control/sync.js";
import { formatIPv4, ipv6TextWords } from "../../core/addr.js";
import type { ConnView, ServiceKey, TimeoutSpec } from "../../core/ctl-types.js";
import { Fwd, TunType } from "../../core/dest.js";
import { IPVS_MESSAGES, TsvsError } from "../../core/errors.js";
import {
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
  SVC_F_SCHED3,
  SVC_F_SYNPROXY,
} from "../../core/service.js";
import type { SyncDaemonConfig } from "../../core/sync/types.js";
import { IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, type ListOptions, portName } from "./parse.js";

/** The IPVS version ipvsadm prints (the kernel's IP_VS_VERSION_CODE). */
export const IPVS_VERSION = "1.2.1";

/** What the formats read: the table as plain data (src/control/snapshot.ts). */
export type IpvsSnapshot = TableSnapshot;

// --- printf helpers -----------------------------------------------------------------

/** %-Ns */
function left(s: string | number, w: number): string {
  return String(s).padEnd(w);
}

/** %Ns / %Nllu */
function right(s: string | number, w: number): string {
  return String(s).padStart(w);
}

/** print_largenum: 9 columns, K/M/G/T past 10^8 unless --exact. */
export function largeNum(n: number, exact: boolean): string {
  const s = String(n);
  if (exact) return right(s, s.length <= 8 ? 9 : s.length + 1);
  if (n < 1e8) return right(s, 9);
  if (n < 1e9) return `${right(Math.floor(n / 1e3), 8)}K`;
  if (n < 1e11) return `${right(Math.floor(n / 1e6), 8)}M`;
  if (n < 1e14) return `${right(Math.floor(n / 1e9), 8)}G`;
  return `${right(Math.floor(n / 1e12), 8)}T`;
}

function protocolName(p: number): string {
  if (p === IPPROTO_TCP) return "TCP";
  if (p === IPPROTO_UDP) return "UDP";
  if (p === IPPROTO_SCTP) return "SCTP";
  return "?";
}

function protocolOption(p: number): string {
  if (p === IPPROTO_TCP) return "-t";
  if (p === IPPROTO_UDP) return "-u";
  if (p === IPPROTO_SCTP) return "--sctp-service";
  return "--xxx-service";
}

/** addrport_to_anyname. */
function addrPort(addr: number, port: number, protocol: number, numeric: boolean, addr6?: string): string {
  const p = numeric ? null : portName(port, protocol);
  // inet_ntop's text in brackets for IPv6 (no resolver: a name is the address, as with -n).
  return `${addr6 !== undefined ? `[${addr6}]` : formatIPv4(addr)}:${p ?? port}`;
}

/** A destination's name in listings: IPv4 names are cut at 28 characters, IPv6 ones never. */
function destName(d: Dest, protocol: number, numeric: boolean): string {
  const name = addrPort(d.addr, d.port, protocol, numeric, d.addr6);
  return d.addr6 !== undefined ? name : name.slice(0, 28);
}

/** The persistence granularity as listings (" mask X") and rules (" -M X") print it, "" when the default. */
function persistMask(svc: Service): string {
  if (svc.af === 6) return svc.netmask !== 128 ? String(svc.netmask) : "";
  return svc.netmask >>> 0 !== 0xffffffff ? formatIPv4(svc.netmask >>> 0) : "";
}

/** fwd_name: the Forward column. FullNat is tsvs's own. */
function fwdName(fwd: Fwd): string {
  switch (fwd) {
    case Fwd.Masq:
      return "Masq";
    case Fwd.Local:
      return "Local";
    case Fwd.Tunnel:
      return "Tunnel";
    case Fwd.Route:
      return "Route";
    case Fwd.FullNat:
      return "FullNat";
    default:
      return "(null)"; // ipvsadm passes NULL to printf for unknown methods
  }
}

/** fwd_switch: the save-format switch. */
function fwdSwitch(fwd: Fwd): string {
  switch (fwd) {
    case Fwd.Masq:
      return "-m";
    case Fwd.Tunnel:
      return "-i";
    case Fwd.FullNat:
      return "--fullnat";
    default:
      return "-g"; // Route and Local
  }
}

const TUN_NAMES = ["ipip", "gue", "gre"];
const TUN_FLAG_NAMES = ["-c", "+c", "r+c"];
const TUN_FLAG_OPTS = ["--tun-nocsum", "--tun-csum", "--tun-remcsum"];

/** fwd_tun_info for --tun-info. */
function tunInfo(d: Dest): string {
  if (d.fwd !== Fwd.Tunnel) return "n/a";
  const flags = TUN_FLAG_NAMES[d.tunFlags] ?? "";
  if (d.tunType === TunType.Ipip) return "ipip";
  if (d.tunType === TunType.Gue) return `gue:${d.tunPort}:${flags}`;
  if (d.tunType === TunType.Gre) return `gre:${flags}`;
  return "n/a";
}

/** print_sched_flags: names depend on the scheduler. */
function schedFlags(svc: Service): string {
  const out: string[] = [];
  const name = svc.schedName;
  if (name === "sh" || name === "mh") {
    if (svc.flags & SVC_F_SCHED1) out.push(`${name}-fallback`);
    if (svc.flags & SVC_F_SCHED2) out.push(`${name}-port`);
  } else {
    if (svc.flags & SVC_F_SCHED1) out.push("flag-1");
    if (svc.flags & SVC_F_SCHED2) out.push("flag-2");
    if (svc.flags & SVC_F_SCHED3) out.push("flag-3");
  }
  return out.join(",");
}

function schedName(svc: Service): string {
  return svc.schedName;
}

// --- sorting (libipvs ipvs_cmp_services / ipvs_cmp_dests, glibc qsort) ---------------
//
// libipvs compares u32 fields by subtracting them into an int: `ntohl(a) - ntohl(b)` wraps,
// so two addresses (or fwmarks) 2^31 or more apart compare the "wrong" way round (10.0.0.1
// sorts after 200.0.0.1). `(a - b) | 0` is that int. The comparison is then not transitive,
// so the order also depends on the sort algorithm: glibc's qsort is a top-down merge sort
// (msort.c), reproduced by mergeSort below.

function cmpServices(a: Service, b: Service): number {
  return (
    (a.fwmark - b.fwmark) | 0 ||
    a.af - b.af ||
    a.protocol - b.protocol ||
    cmpAddr(a.addr, a.addr6, b.addr, b.addr6) ||
    a.port - b.port
  );
}

function cmpDests(a: Dest, b: Dest): number {
  return cmpAddr(a.addr, a.addr6, b.addr, b.addr6) || a.port - b.port;
}

/**
 * ipvs_cmp_services / ipvs_cmp_dests: IPv4 as ntohl(a) - ntohl(b) in an int; IPv6 word by word
 * (s6_addr32, ntohl) the same way, the first non-zero difference deciding.
 */
function cmpAddr(a: number, a6: string | undefined, b: number, b6: string | undefined): number {
  if (a6 === undefined || b6 === undefined) return ((a >>> 0) - (b >>> 0)) | 0;
  const x = ipv6TextWords(a6)!;
  const y = ipv6TextWords(b6)!;
  for (let k = 0; k < 4; k++) {
    const r = ((x[k] >>> 0) - (y[k] >>> 0)) | 0;
    if (r !== 0) return r;
  }
  return 0;
}

/** glibc msort_with_tmp: first half n/2, merge taking the left element on ties. */
export function mergeSort<T>(items: readonly T[], cmp: (a: T, b: T) => number): T[] {
  const n = items.length;
  if (n <= 1) return [...items];
  const n1 = n >>> 1;
  const left = mergeSort(items.slice(0, n1), cmp);
  const right = mergeSort(items.slice(n1), cmp);
  const out: T[] = [];
  let i = 0;
  let j = 0;
  while (i < left.length && j < right.length) out.push(cmp(left[i], right[j]) <= 0 ? left[i++] : right[j++]);
  while (i < left.length) out.push(left[i++]);
  while (j < right.length) out.push(right[j++]);
  return out;
}

// --- listing ----------------------------------------------------------------------------

function title(opts: ListOptions): string {
  const first = left("Prot LocalAddress:Port", 33);
  if (opts.stats)
    return `${first} ${["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"].map((s) => right(s, 8)).join(" ")}\n  -> RemoteAddress:Port\n`;
  if (opts.rate)
    return `${first} ${["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"].map((s) => right(s, 8)).join(" ")}\n  -> RemoteAddress:Port\n`;
  if (opts.thresholds)
    return `${first} ${["Uthreshold", "Lthreshold", "ActiveConn", "InActConn"].map((s) => left(s, 10)).join(" ")}\n  -> RemoteAddress:Port\n`;
  if (opts.persistentConn)
    return `${first} ${left("Weight", 9)} ${left("PersistConn", 11)} ${left("ActiveConn", 10)} ${left("InActConn", 10)}\n  -> RemoteAddress:Port\n`;
  if (opts.tunInfo)
    return "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n";
  return "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";
}

function statsNums(s: Stats, exact: boolean): string {
  return (
    largeNum(s.conns, exact) +
    largeNum(s.inpkts, exact) +
    largeNum(s.outpkts, exact) +
    largeNum(s.inbytes, exact) +
    largeNum(s.outbytes, exact)
  );
}

/** The service part of a line: "-t VIP:port" in rules, "TCP  VIP:port" (cut at 33) in listings. */
function serviceName(svc: Service, numeric: boolean, rule: boolean): string {
  if (svc.fwmark !== 0) {
    const v6 = svc.af === 6;
    return rule ? `-f ${svc.fwmark}${v6 ? " -6" : ""}` : `FWM  ${svc.fwmark}${v6 ? " IPv6" : ""}`;
  }
  const v = addrPort(svc.addr, svc.port, svc.protocol, numeric, svc.addr6);
  if (rule) return `${protocolOption(svc.protocol)} ${v}`;
  const name = `${left(protocolName(svc.protocol), 4)} ${v}`;
  return svc.af === 6 ? name : name.slice(0, 33);
}

function sortedDests(svc: Service, sort: boolean): readonly Dest[] {
  return sort ? mergeSort(svc.dests, cmpDests) : svc.dests;
}

function serviceEntry(svc: Service, opts: ListOptions): string {
  const name = serviceName(svc, opts.numeric, false);
  let line: string;
  if (opts.stats) line = left(name, 33) + statsNums(svc.stats, opts.exact);
  else if (opts.rate) {
    const r = svc.stats;
    line =
      left(name, 33) +
      largeNum(r.cps, opts.exact) +
      largeNum(r.inpps, opts.exact) +
      largeNum(r.outpps, opts.exact) +
      largeNum(r.inbps, opts.exact) +
      largeNum(r.outbps, opts.exact);
  } else {
    line = `${name} ${schedName(svc)}`;
    // ipvsadm tests the bits, not the names: sh/mh with only flag-3 print " ()".
    if (svc.flags & (SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3)) line += ` (${schedFlags(svc)})`;
    if (svc.flags & SVC_F_PERSISTENT) {
      line += ` persistent ${svc.timeout}`;
      const mask = persistMask(svc);
      if (mask !== "") line += ` mask ${mask}`;
      if (svc.peName !== "") line += ` pe ${svc.peName}`;
    }
    if (svc.flags & SVC_F_ONEPACKET) line += " ops";
    if (svc.flags & SVC_F_SYNPROXY) line += " synproxy";
    // DPVS's ipvsadm print_service_entry: " pp<name>" after ops (and synproxy, conn-timeout).
    if (svc.proxyProtocol !== undefined && svc.proxyProtocol !== "disable") line += ` pp${svc.proxyProtocol}`;
  }
  let out = `${line}\n`;
  for (const d of sortedDests(svc, opts.sort)) {
    const dname = destName(d, svc.protocol, opts.numeric);
    if (opts.stats) out += `  -> ${left(dname, 28)}${statsNums(d.stats, opts.exact)}\n`;
    else if (opts.rate) {
      const r = d.stats;
      out += `  -> ${left(dname, 28)} ${right(r.cps, 8)} ${right(r.inpps, 8)} ${right(r.outpps, 8)}`;
      out += `${largeNum(r.inbps, opts.exact)}${largeNum(r.outbps, opts.exact)}\n`;
    } else if (opts.thresholds)
      out += `  -> ${left(dname, 28)} ${left(d.uThreshold, 10)} ${left(d.lThreshold, 10)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}\n`;
    else if (opts.persistentConn)
      out += `  -> ${left(dname, 28)} ${left(d.weight, 9)} ${left(d.persistConns, 11)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}\n`;
    else if (opts.tunInfo)
      out += `  -> ${left(dname, 28)} ${left(fwdName(d.fwd), 7)} ${left(tunInfo(d), 13)} ${left(d.weight, 6)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}\n`;
    else
      out += `  -> ${left(dname, 28)} ${left(fwdName(d.fwd), 7)} ${left(d.weight, 6)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}\n`;
  }
  return out;
}

function keyMatches(svc: Service, key: ServiceKey): boolean {
  if (key.fwmark !== 0) return svc.fwmark === key.fwmark && svc.af === key.af;
  return (
    svc.fwmark === 0 &&
    svc.af === key.af &&
    svc.protocol === key.protocol &&
    svc.addr >>> 0 === key.addr >>> 0 &&
    svc.addr6 === key.addr6 &&
    svc.port === key.port
  );
}

function sortedServices(snap: IpvsSnapshot, sort: boolean): readonly Service[] {
  return sort ? mergeSort(snap.services, cmpServices) : snap.services;
}

/**
 * `ipvsadm -L` with its options (process_options' CMD_LIST dispatch: -c, then one
 * service, then --timeout, then --daemon, else the whole table). Throws
 * TsvsError(TSVS_ERR_NO_SERVICE, "No such service") for an unknown service.
 */
export function formatList(snap: IpvsSnapshot, key: ServiceKey | null, opts: ListOptions): string {
  if (opts.conns) return formatConns(snap.conns ?? [], opts);
  if (key !== null) {
    const svc = snap.services.find((s) => keyMatches(s, key));
    if (svc === undefined) throw new TsvsError("TSVS_ERR_NO_SERVICE", IPVS_MESSAGES.noService);
    // list_service prints no version header.
    return title(opts) + serviceEntry(svc, opts);
  }
  if (opts.timeout) return formatTimeout(snap.timeouts);
  if (opts.daemon) return ""; // the daemons are not in the table: formatDaemons prints them
  let out = `IP Virtual Server version ${IPVS_VERSION} (size=${snap.connTabSize})\n${title(opts)}`;
  for (const svc of sortedServices(snap, opts.sort)) out += serviceEntry(svc, opts);
  return out;
}

/**
 * `ipvsadm -L --daemon` (list_daemon): one line per running sync daemon, master first; nothing
 * when none runs. A field the kernel left 0 (an older kernel's maxlen, port, ttl; no group) is
 * not printed. -n changes nothing: the interface is a name and the group is printed as numbers.
 */
export function formatDaemons(daemons: readonly SyncDaemonConfig[]): string {
  let out = "";
  for (const d of daemonsInKernelOrder(daemons)) {
    out += `${d.role} sync daemon (mcast=${d.iface}, syncid=${d.syncid}`;
    if (d.maxlen) out += `, maxlen=${d.maxlen}`;
    if (d.group) out += `, group=${formatIPv4(d.group >>> 0)}`;
    if (d.port) out += `, port=${d.port}`;
    if (d.ttl) out += `, ttl=${d.ttl}`;
    out += ")\n";
  }
  return out;
}

/** `ipvsadm -S [-n]`: the rules, one command a line, as -R reads them. */
export function formatSave(snap: IpvsSnapshot, numeric: boolean): string {
  let out = "";
  for (const svc of sortedServices(snap, true)) {
    const name = serviceName(svc, numeric, true);
    out += `-A ${name} -s ${schedName(svc)}`;
    if (svc.flags & SVC_F_PERSISTENT) {
      out += ` -p ${svc.timeout}`;
      const mask = persistMask(svc);
      if (mask !== "") out += ` -M ${mask}`;
    }
    if (svc.peName !== "") out += ` --pe ${svc.peName}`;
    if (svc.flags & SVC_F_ONEPACKET) out += " -o";
    if (svc.flags & (SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3)) out += ` -b ${schedFlags(svc)}`;
    // DPVS's -S leaves these out (its restore would lose them); tsvs writes them so -S | -R round-trips.
    if (svc.flags & SVC_F_SYNPROXY) out += " --synproxy enable";
    if (svc.proxyProtocol !== undefined && svc.proxyProtocol !== "disable")
      out += ` --proxy-protocol ${svc.proxyProtocol}`;
    out += "\n";
    for (const d of sortedDests(svc, true)) {
      const head = `-a ${name} -r ${addrPort(d.addr, d.port, svc.protocol, numeric, d.addr6)} ${fwdSwitch(d.fwd)} -w ${d.weight}`;
      if (d.fwd !== Fwd.Tunnel) out += `${head}\n`;
      else if (d.tunType === TunType.Gre) out += `${head} --tun-type gre ${TUN_FLAG_OPTS[d.tunFlags]}\n`;
      else if (d.tunType === TunType.Gue)
        out += `${head} --tun-type gue --tun-port ${d.tunPort} ${TUN_FLAG_OPTS[d.tunFlags]}\n`;
      else out += `${head} --tun-type ${TUN_NAMES[d.tunType] ?? "ipip"}\n`;
    }
    // FULLNAT local addresses (DPVS's -P), after the destinations, in the order they were added.
    for (const l of svc.laddrs ?? []) out += `-P ${name} -z ${addrText(l)}\n`;
    // Access lists (DPVS's -U/-O) and tsvs's rate limit, so that -S | -R recreates them.
    for (const r of svc.deny ?? []) out += `-U ${name} -k ${r.rule}\n`;
    for (const r of svc.allow ?? []) out += `-O ${name} -2 ${r.rule}\n`;
    const l = svc.connLimit;
    if (l !== undefined)
      out += `--conn-limit ${name} --conn-rate ${l.rate} --conn-burst ${l.burst} --conn-rate-prefix ${l.prefix4},${l.prefix6}\n`;
  }
  return out;
}

/**
 * DPVS's `ipvsadm -B|-W [service]` (list_blklsts_print_title, print_service_and_blklsts): the title,
 * then one line per rule: protocol, VIP:VPORT, the address (or ADDR/LEN); tsvs adds a fourth
 * column, the new connections the rule matched. Throws TsvsError(TSVS_ERR_NO_SERVICE) for an
 * unknown service.
 */
export function formatAcl(snap: IpvsSnapshot, list: "deny" | "allow", key: ServiceKey | null): string {
  let services: readonly Service[] = snap.services;
  if (key !== null) {
    const svc = snap.services.find((s) => keyMatches(s, key));
    if (svc === undefined) throw new TsvsError("TSVS_ERR_NO_SERVICE", IPVS_MESSAGES.noService);
    services = [svc];
  }
  let out = `${left("PROTO", 8)} ${left("VIP:VPORT", 30)} ${left(list === "deny" ? "BLACKLIST" : "WHITELIST", 30)} HITS\n`;
  for (const svc of services) {
    const proto = svc.fwmark !== 0 ? "FWM" : (ACL_PROTO_NAMES[svc.protocol] ?? String(svc.protocol));
    const vip =
      svc.fwmark !== 0 ? String(svc.fwmark) : addrPort(svc.addr, svc.port, svc.protocol, true, svc.addr6);
    for (const r of svc[list] ?? [])
      out += `${left(proto, 8)} ${left(vip, 30)} ${left(r.rule, 30)} ${r.hits}\n`;
  }
  return out;
}

/** print_service_and_blklsts's protocol names. */
const ACL_PROTO_NAMES: Readonly<Record<number, string>> = { 6: "TCP", 17: "UDP", 132: "SCTP" };

/** The service column of `-G` (addrport_to_anyname with FMT_NUMERIC; tsvs names fwmark services). */
function laddrServiceName(svc: Service): string {
  return svc.fwmark !== 0 ? `FWM ${svc.fwmark}` : addrPort(svc.addr, svc.port, svc.protocol, true, svc.addr6);
}

/**
 * DPVS's `ipvsadm -G [service]` (print_service_and_laddrs): the title once, then per service its
 * address and number of local addresses, then one line per address with its port conflicts and
 * connections. Without a service every service is listed, those without local addresses too.
 * Throws TsvsError(TSVS_ERR_NO_SERVICE) for an unknown service.
 */
export function formatLaddrs(snap: IpvsSnapshot, key: ServiceKey | null): string {
  let services: readonly Service[] = snap.services;
  if (key !== null) {
    const svc = snap.services.find((s) => keyMatches(s, key));
    if (svc === undefined) throw new TsvsError("TSVS_ERR_NO_SERVICE", IPVS_MESSAGES.noService);
    services = [svc];
  }
  let out = "";
  services.forEach((svc, i) => {
    if (i === 0)
      out += `${left("VIP:VPORT", 20)} ${left("TOTAL", 8)} ${left("SNAT_IP", 20)} ${left("CONFLICTS", 10)} ${left("CONNS", 10)}\n`;
    const laddrs = svc.laddrs ?? [];
    out += `${left(laddrServiceName(svc), 20)} ${left(laddrs.length, 8)} \n`;
    for (const l of laddrs)
      out += `${left("", 20)} ${left("", 8)} ${left(addrText(l), 20)} ${left(l.conflicts, 10)} ${left(l.conns, 10)}\n`;
  });
  return out;
}

/** `ipvsadm -L --timeout` (list_timeout). */
export function formatTimeout(t: TimeoutSpec): string {
  return `Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpFin} ${t.udp}\n`;
}

/** The kernel's ip_vs_proto_name, as /proc/net/ip_vs_conn prints the protocol. */
function connProtoName(p: number): string {
  switch (p) {
    case 0:
      return "IP";
    case IPPROTO_TCP:
      return "TCP";
    case IPPROTO_UDP:
      return "UDP";
    case IPPROTO_SCTP:
      return "SCTP";
    case 1:
      return "ICMP";
    default:
      return `IP_${p}`;
  }
}

/** `ipvsadm -L -c` (list_conn / print_conn), in the order given. */
export function formatConns(
  conns: readonly ConnView[],
  opts: { numeric: boolean; persistentConn?: boolean },
): string {
  let out = "IPVS connection entries\n";
  if (opts.persistentConn)
    out += `pro expire ${left("state", 11)} ${left("source", 18)} ${left("virtual", 18)} ${left("destination", 18)} ${left("pe name", 16)} pe_data\n`;
  else out += `pro expire ${left("state", 11)} ${left("source", 18)} ${left("virtual", 18)} destination\n`;
  for (const c of conns) {
    // The kernel prints whole seconds left ((expires - jiffies) / HZ).
    const secs = Math.max(0, Math.floor(c.expiresMs / 1000));
    const expire = `${String(Math.floor(secs / 60)).padStart(2, "0")}:${String(secs % 60).padStart(2, "0")}`;
    // addrport_to_anyname: an IPv6 end is "[addr]:port", which overruns the %-18s columns.
    const src = addrPort(c.caddr, c.cport, c.protocol, opts.numeric, c.caddr6);
    const vip = addrPort(c.vaddr, c.vport, c.protocol, opts.numeric, c.vaddr6);
    const dst = addrPort(c.daddr, c.dport, c.protocol, opts.numeric, c.daddr6);
    out += `${left(connProtoName(c.protocol), 3)} ${left(expire, 6)} ${left(c.state, 11)} ${left(src, 18)} ${left(vip, 18)} ${dst}\n`;
  }
  return out;
}
