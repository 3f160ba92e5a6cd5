// What the director's table looks like, as plain data: numbers and strings only, so that a snapshot
// crosses a worker boundary or the control socket as it is, several workers' snapshots add up field
// by field, and every front end (ipvsadm text, JSON, metrics) formats the same thing. A snapshot is
// taken between packets; taking one never touches the data path.

import { formatIPv4, ipv6WordsText } from "../core/addr.js";
import type { ConnView, TimeoutSpec } from "../core/ctl-types.js";
import type { Dest } from "../core/dest.js";
import { DEST_F_AVAILABLE } from "../core/dest.js";
import { ppName } from "../core/packet/proxy-proto.js";
import { rateOf } from "../core/rate.js";
import type { Service } from "../core/service.js";
import type { Stats } from "../core/stats.js";

/** Counters (since the last zero) and the estimator's per-second rates (ip_vs_read_estimator). */
export interface StatsSnapshot {
  conns: number;
  inpkts: number;
  outpkts: number;
  inbytes: number;
  outbytes: number;
  cps: number;
  inpps: number;
  outpps: number;
  inbps: number;
  outbps: number;
}

export interface DestSnapshot {
  af: 4 | 6;
  /** IPv4 as a host-order u32 (0 for IPv6). */
  addr: number;
  /** IPv6: the address as inet_ntop prints it; absent for IPv4. */
  addr6?: string;
  port: number;
  /** Fwd: 0 Masq, 1 Local, 2 Tunnel, 3 Route, 5 FullNat. */
  fwd: number;
  weight: number;
  uThreshold: number;
  lThreshold: number;
  activeConns: number;
  inactConns: number;
  persistConns: number;
  /** TunType: 0 ipip, 1 gue, 2 gre. */
  tunType: number;
  tunPort: number;
  tunFlags: number;
  /** False while the upper threshold holds it back (IP_VS_DEST_F_OVERLOAD) or it is being removed. */
  available: boolean;
  stats: StatsSnapshot;
}

/** A FULLNAT local address of a service (DPVS's ip_vs_laddr_entry). */
export interface LaddrSnapshot {
  af: 4 | 6;
  /** IPv4: the address (host-order u32); IPv6: 0, the address being addr6. */
  addr: number;
  /** An IPv6 local address as inet_ntop prints it. */
  addr6?: string;
  /** Connections bound to the address now (of every service that lists it). */
  conns: number;
  /** Local ports found taken while allocating on it (DPVS's port_conflict). */
  conflicts: number;
}

/** A rule of a service's deny or allow list (acl.ts) and the new connections it matched. */
export interface AclRuleSnapshot {
  /** "ADDR" or "ADDR/LEN", canonical. */
  rule: string;
  hits: number;
}

/** A service's per-source new-connection limit (conn-limit.ts) and the packets it refused. */
export interface ConnLimitSnapshot {
  rate: number;
  burst: number;
  prefix4: number;
  prefix6: number;
  limited: number;
}

export interface ServiceSnapshot {
  af: 4 | 6;
  protocol: number;
  /** IPv4 VIP as a host-order u32 (0 for IPv6 and fwmark services). */
  addr: number;
  /** IPv6: the VIP as inet_ntop prints it; absent for IPv4 and fwmark services. */
  addr6?: string;
  port: number;
  fwmark: number;
  schedName: string;
  /** SVC_F_* bits. */
  flags: number;
  /** Persistence timeout, seconds. */
  timeout: number;
  /** Persistence granularity: IPv4 a host-order u32 mask, IPv6 a prefix length. */
  netmask: number;
  peName: string;
  /** DPVS's proxy_protocol name ("v1", "v2"); absent when disabled. */
  proxyProtocol?: string;
  stats: StatsSnapshot;
  /** In the kernel's list order (newest first), which is the order schedulers break ties in. */
  dests: DestSnapshot[];
  /** FULLNAT local addresses (`ipvsadm -P`), in the order they were added; absent = none. */
  laddrs?: LaddrSnapshot[];
  /** DPVS's blacklist (deny) and whitelist (allow), in the order added; absent = empty. */
  deny?: AclRuleSnapshot[];
  allow?: AclRuleSnapshot[];
  /** New connections refused because the allow list did not hold the source. */
  notAllowed?: number;
  connLimit?: ConnLimitSnapshot;
}

export interface TableSnapshot {
  /** The connection hash size ipvsadm prints as "(size=N)". */
  connTabSize: number;
  timeouts: TimeoutSpec;
  /** In the kernel's listing order (hash bucket walk). */
  services: ServiceSnapshot[];
  /** Every service's traffic together: the kernel's ipvs->tot_stats (/proc/net/ip_vs_stats). */
  total: StatsSnapshot;
  /** Present when asked for (ipvsadm -Lc). */
  conns?: ConnView[];
}

/** What a snapshot is taken from: the engine, or anything with the same table (tests, the simulation). */
export interface TableSource {
  services(): readonly Service[];
  /** Connections and conflicts per local address (the engine's LipTable); absent = zeros. */
  readonly lipTable?: {
    usage(addr: number): { conns: number; conflicts: number };
    usage6(addr6: string): { conns: number; conflicts: number };
  };
  readonly connTabSize: number;
  readonly totalStats: Stats;
  readonly timeouts: { get(): TimeoutSpec };
  connections(now: number): ConnView[];
}

export function statsSnapshot(s: Stats): StatsSnapshot {
  const r = rateOf(s);
  return {
    conns: s.conns,
    inpkts: s.inpkts,
    outpkts: s.outpkts,
    inbytes: s.inbytes,
    outbytes: s.outbytes,
    cps: r.cps,
    inpps: r.inpps,
    outpps: r.outpps,
    inbps: r.inbps,
    outbps: r.outbps,
  };
}

export function destSnapshot(d: Dest): DestSnapshot {
  const snap: DestSnapshot = {
    af: d.af,
    addr: d.addr6 !== null ? 0 : d.addr >>> 0,
    port: d.port,
    fwd: d.fwd,
    weight: d.weight,
    uThreshold: d.uThreshold,
    lThreshold: d.lThreshold,
    activeConns: d.activeConns,
    inactConns: d.inactConns,
    persistConns: d.persistConns,
    tunType: d.tunType,
    tunPort: d.tunPort,
    tunFlags: d.tunFlags,
    available: (d.flags & DEST_F_AVAILABLE) !== 0,
    stats: statsSnapshot(d.stats),
  };
  if (d.addr6 !== null) snap.addr6 = ipv6WordsText(d.addr6);
  return snap;
}

export function serviceSnapshot(s: Service): ServiceSnapshot {
  return serviceSnapshotOf(s, undefined);
}

function serviceSnapshotOf(s: Service, lips: TableSource["lipTable"]): ServiceSnapshot {
  const snap: ServiceSnapshot = {
    af: s.af,
    protocol: s.protocol,
    addr: s.addr6 !== null ? 0 : s.addr >>> 0,
    port: s.port,
    fwmark: s.fwmark,
    schedName: s.sched?.name ?? "",
    flags: s.flags,
    timeout: s.timeout,
    netmask: s.netmask >>> 0,
    peName: s.peName,
    stats: statsSnapshot(s.stats),
    dests: s.dests.map(destSnapshot),
  };
  if (s.addr6 !== null) snap.addr6 = ipv6WordsText(s.addr6);
  if (s.proxyProtocol !== 0) snap.proxyProtocol = ppName(s.proxyProtocol);
  if (s.laddrs.length > 0) {
    snap.laddrs = s.laddrs.map((addr) => {
      const u = lips?.usage(addr) ?? { conns: 0, conflicts: 0 };
      return { af: 4, addr: addr >>> 0, conns: u.conns, conflicts: u.conflicts };
    });
  }
  if (s.laddrs6.length > 0) {
    const l6 = s.laddrs6.map((addr6): LaddrSnapshot => {
      const u = lips?.usage6(addr6) ?? { conns: 0, conflicts: 0 };
      return { af: 6, addr: 0, addr6, conns: u.conns, conflicts: u.conflicts };
    });
    snap.laddrs = [...(snap.laddrs ?? []), ...l6];
  }
  if (s.acl !== null) {
    if (s.acl.deny.size > 0) snap.deny = s.acl.deny.rules().map((r) => ({ rule: r.text, hits: r.hits }));
    if (s.acl.allow.size > 0) {
      snap.allow = s.acl.allow.rules().map((r) => ({ rule: r.text, hits: r.hits }));
      snap.notAllowed = s.acl.allow.misses;
    }
  }
  if (s.connLimit !== null) snap.connLimit = { ...s.connLimit.spec, limited: s.connLimit.limited };
  return snap;
}

export function tableSnapshot(src: TableSource, now: number, withConns: boolean): TableSnapshot {
  const snap: TableSnapshot = {
    connTabSize: src.connTabSize,
    timeouts: src.timeouts.get(),
    services: src.services().map((s) => serviceSnapshotOf(s, src.lipTable)),
    total: statsSnapshot(src.totalStats),
  };
  if (withConns) snap.conns = src.connections(now);
  return snap;
}

function addStats(into: StatsSnapshot, s: StatsSnapshot): void {
  into.conns += s.conns;
  into.inpkts += s.inpkts;
  into.outpkts += s.outpkts;
  into.inbytes += s.inbytes;
  into.outbytes += s.outbytes;
  into.cps += s.cps;
  into.inpps += s.inpps;
  into.outpps += s.outpps;
  into.inbps += s.inbps;
  into.outbps += s.outbps;
}

/** An address of a snapshot as text: dotted quad, or inet_ntop's IPv6 form. */
export function addrText(a: { addr: number; addr6?: string }): string {
  return a.addr6 ?? formatIPv4(a.addr);
}

/** "ADDR:PORT", with the IPv6 address in brackets ("[2001:db8::1]:80"), as ipvsadm -n prints it. */
export function addrPortText(a: { addr: number; addr6?: string }, port: number): string {
  return a.addr6 !== undefined ? `[${a.addr6}]:${port}` : `${formatIPv4(a.addr)}:${port}`;
}

export function serviceKeyOfSnapshot(s: ServiceSnapshot): string {
  return s.fwmark !== 0 ? `f${s.af}/${s.fwmark}` : `${s.af}/${s.protocol}/${s.addr6 ?? s.addr}/${s.port}`;
}

/**
 * Several workers' tables as one: every worker holds the same services and destinations (commands
 * go to all of them) and its own share of the connections, so counters, rates and connection
 * counts add up, and the structure is the first worker's. A service or destination missing from a
 * worker (a command half way through the workers) contributes nothing from that worker.
 */
export function mergeTables(tables: readonly TableSnapshot[]): TableSnapshot {
  if (tables.length === 0) throw new RangeError("mergeTables: no table");
  const first = tables[0];
  const out: TableSnapshot = structuredClone(first);
  if (tables.length === 1) return out;
  const byKey = new Map<string, ServiceSnapshot>();
  for (const s of out.services) byKey.set(serviceKeyOfSnapshot(s), s);
  for (const t of tables.slice(1)) {
    addStats(out.total, t.total);
    for (const s of t.services) {
      const into = byKey.get(serviceKeyOfSnapshot(s));
      if (into === undefined) continue;
      addStats(into.stats, s.stats);
      for (const d of s.dests) {
        const dd = into.dests.find((x) => x.addr === d.addr && x.addr6 === d.addr6 && x.port === d.port);
        if (dd === undefined) continue;
        dd.activeConns += d.activeConns;
        dd.inactConns += d.inactConns;
        dd.persistConns += d.persistConns;
        addStats(dd.stats, d.stats);
      }
      for (const l of s.laddrs ?? []) {
        const ll = into.laddrs?.find((x) => x.addr === l.addr && x.addr6 === l.addr6);
        if (ll === undefined) continue;
        ll.conns += l.conns;
        ll.conflicts += l.conflicts;
      }
      addHits(into.deny, s.deny);
      addHits(into.allow, s.allow);
      if (into.notAllowed !== undefined) into.notAllowed += s.notAllowed ?? 0;
      if (into.connLimit !== undefined) into.connLimit.limited += s.connLimit?.limited ?? 0;
    }
    if (out.conns !== undefined && t.conns !== undefined) out.conns.push(...t.conns);
  }
  return out;
}

function addHits(into: AclRuleSnapshot[] | undefined, from: AclRuleSnapshot[] | undefined): void {
  if (into === undefined || from === undefined) return;
  const byRule = new Map(into.map((r) => [r.rule, r]));
  for (const r of from) {
    const x = byRule.get(r.rule);
    if (x !== undefined) x.hits += r.hits;
  }
}

/** Counters and rates all zero (a table with no traffic yet). */
export function zeroStats(): StatsSnapshot {
  return {
    conns: 0,
    inpkts: 0,
    outpkts: 0,
    inbytes: 0,
    outbytes: 0,
    cps: 0,
    inpps: 0,
    outpps: 0,
    inbps: 0,
    outbps: 0,
  };
}
