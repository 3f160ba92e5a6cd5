// Reload without dropping connections: the commands that turn one table into another.
//
// A service whose key stays is edited (-E), never deleted and re-added: deleting it would
// drop its connections and persistence templates. A destination that stays is edited
// (-e) when its weight, method or thresholds change. Only what disappeared is deleted.

import { addrText } from "../control/snapshot.js";
import { parseAclPrefix } from "../core/acl.js";
import { canonicalIPv6 } from "../core/addr.js";
import type { ConnLimitSpec } from "../core/conn-limit.js";
import type { CtlCommand, DestSpec, ServiceKey, ServiceSpec } from "../core/ctl-types.js";
import { type ConfigModel, laddrCommand, serviceKeyString, toCommands } from "./model.js";

/** A FULLNAT local address as commands carry it: IPv4 in addr, IPv6 as text in addr6. */
export interface Laddr {
  addr: number;
  addr6?: string;
}

export interface TableEntry {
  svc: ServiceSpec;
  /** By destKey. */
  dests: Map<string, DestSpec>;
  /** FULLNAT local addresses, in order, by laddrKey. */
  laddrs: Map<string, Laddr>;
  /** Access-list rules (docs/acl.md), by "deny RULE" / "allow RULE", in order. */
  acl: Map<string, { list: "deny" | "allow"; rule: string }>;
  /** The per-source rate limit; absent = off. */
  limit?: ConnLimitSpec;
}

/** A desired table, by serviceKeyString, in insertion order. */
export type Table = Map<string, TableEntry>;

/** A destination's identity in its service: IPv6 by its canonical text, so spellings agree. */
export function destKey(d: { addr: number; addr6?: string; port: number }): string {
  return d.addr6 !== undefined ? `[${d.addr6}]:${d.port}` : `${d.addr >>> 0}:${d.port}`;
}

function keyOf(s: ServiceKey): ServiceKey {
  const k: ServiceKey = { af: s.af, protocol: s.protocol, addr: s.addr, port: s.port, fwmark: s.fwmark };
  if (s.addr6 !== undefined) k.addr6 = s.addr6;
  return k;
}

/** A local address's identity: its canonical text (one spelling of an IPv6 address). */
export function laddrKey(a: Laddr): string {
  return a.addr6 !== undefined ? (canonicalIPv6(a.addr6) ?? a.addr6) : addrText({ addr: a.addr >>> 0 });
}

/** The local address of a command (or a model), canonical. */
function laddrOf(a: Laddr): Laddr {
  return a.addr6 !== undefined ? { addr: 0, addr6: laddrKey(a) } : { addr: a.addr >>> 0 };
}

/** The del-dest command of a destination. */
export function delDest(key: ServiceKey, d: DestSpec): CtlCommand {
  return d.addr6 !== undefined
    ? { op: "del-dest", key, addr: 0, addr6: d.addr6, port: d.port }
    : { op: "del-dest", key, addr: d.addr, port: d.port };
}

/** Replays add/edit/del commands onto a table (other commands are ignored). */
export function applyToTable(table: Table, cmds: readonly CtlCommand[]): Table {
  for (const c of cmds) {
    switch (c.op) {
      case "add-service":
      case "edit-service": {
        const k = serviceKeyString(c.svc);
        const prev = table.get(k);
        table.set(k, {
          svc: { ...c.svc },
          dests: prev?.dests ?? new Map(),
          laddrs: prev?.laddrs ?? new Map(),
          acl: prev?.acl ?? new Map(),
          ...(prev?.limit !== undefined ? { limit: prev.limit } : {}),
        });
        break;
      }
      case "del-service":
        table.delete(serviceKeyString(c.key));
        break;
      case "add-dest":
      case "edit-dest":
        table.get(serviceKeyString(c.key))?.dests.set(destKey(c.dest), { ...c.dest });
        break;
      case "del-dest":
        table.get(serviceKeyString(c.key))?.dests.delete(destKey(c));
        break;
      case "clear":
        table.clear();
        break;
      case "add-laddr": {
        const e = table.get(serviceKeyString(c.key));
        const k = laddrKey(c);
        if (e !== undefined && !e.laddrs.has(k)) e.laddrs.set(k, laddrOf(c));
        break;
      }
      case "del-laddr":
        table.get(serviceKeyString(c.key))?.laddrs.delete(laddrKey(c));
        break;
      case "add-acl":
      case "del-acl": {
        const e = table.get(serviceKeyString(c.key));
        const p = parseAclPrefix(c.rule);
        const rule = typeof p === "string" ? c.rule : p.text;
        if (c.op === "add-acl") e?.acl.set(`${c.list} ${rule}`, { list: c.list, rule });
        else e?.acl.delete(`${c.list} ${rule}`);
        break;
      }
      case "set-conn-limit": {
        const e = table.get(serviceKeyString(c.key));
        if (e === undefined) break;
        if (c.limit.rate === 0) delete e.limit;
        else e.limit = { ...c.limit };
        break;
      }
      default:
        break;
    }
  }
  return table;
}

export function tableOf(cmds: readonly CtlCommand[]): Table {
  return applyToTable(new Map(), cmds);
}

/** Equal in everything -E (edit-service) changes. */
export function sameService(a: ServiceSpec, b: ServiceSpec): boolean {
  return (
    a.schedName === b.schedName &&
    a.flags === b.flags &&
    a.timeout === b.timeout &&
    a.netmask >>> 0 === b.netmask >>> 0 &&
    a.peName === b.peName &&
    (a.proxyProtocol ?? "disable") === (b.proxyProtocol ?? "disable")
  );
}

/** Equal in everything -e (edit-dest) changes. */
export function sameDest(a: DestSpec, b: DestSpec): boolean {
  return (
    a.fwd === b.fwd &&
    a.weight === b.weight &&
    a.uThreshold === b.uThreshold &&
    a.lThreshold === b.lThreshold &&
    a.tunType === b.tunType &&
    a.tunPort === b.tunPort &&
    a.tunFlags === b.tunFlags
  );
}

/**
 * Commands from table `a` to table `b`: deleted services first (frees their VIPs),
 * then per kept service -E, -d, -e, -a, then new services with their destinations.
 */
export function diffTables(a: Table, b: Table): CtlCommand[] {
  const out: CtlCommand[] = [];
  for (const [k, e] of a) if (!b.has(k)) out.push({ op: "del-service", key: keyOf(e.svc) });
  for (const [k, nb] of b) {
    const na = a.get(k);
    if (na === undefined) continue;
    const key = keyOf(nb.svc);
    if (!sameService(na.svc, nb.svc)) out.push({ op: "edit-service", svc: { ...nb.svc } });
    for (const [dk, d] of na.dests) if (!nb.dests.has(dk)) out.push(delDest(key, d));
    for (const [dk, d] of nb.dests) {
      const old = na.dests.get(dk);
      if (old !== undefined && !sameDest(old, d)) out.push({ op: "edit-dest", key, dest: { ...d } });
    }
    for (const [dk, d] of nb.dests) if (!na.dests.has(dk)) out.push({ op: "add-dest", key, dest: { ...d } });
    // Local addresses: the ones that went are deleted (an IPv4 one's connections keep it until they end).
    for (const [lk, a] of na.laddrs) if (!nb.laddrs.has(lk)) out.push(laddrCommand("del-laddr", key, a));
    for (const [lk, a] of nb.laddrs) if (!na.laddrs.has(lk)) out.push(laddrCommand("add-laddr", key, a));
    for (const [rk, r] of na.acl) if (!nb.acl.has(rk)) out.push({ op: "del-acl", key, ...r });
    for (const [rk, r] of nb.acl) if (!na.acl.has(rk)) out.push({ op: "add-acl", key, ...r });
    if (!sameLimit(na.limit, nb.limit))
      out.push({
        op: "set-conn-limit",
        key,
        limit: nb.limit ?? { rate: 0, burst: 1, prefix4: 32, prefix6: 64 },
      });
  }
  for (const [k, nb] of b) {
    if (a.has(k)) continue;
    const key = keyOf(nb.svc);
    out.push({ op: "add-service", svc: { ...nb.svc } });
    for (const d of nb.dests.values()) out.push({ op: "add-dest", key, dest: { ...d } });
    for (const a of nb.laddrs.values()) out.push(laddrCommand("add-laddr", key, a));
    for (const r of nb.acl.values()) out.push({ op: "add-acl", key, ...r });
    if (nb.limit !== undefined) out.push({ op: "set-conn-limit", key, limit: { ...nb.limit } });
  }
  return out;
}

/** Equal rate limits (undefined: off). */
export function sameLimit(a: ConnLimitSpec | undefined, b: ConnLimitSpec | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.rate === b.rate && a.burst === b.burst && a.prefix4 === b.prefix4 && a.prefix6 === b.prefix6;
}

/** Commands that turn the table of `oldModel` into that of `newModel` (both fully up). */
export function diff(oldModel: ConfigModel, newModel: ConfigModel): CtlCommand[] {
  return diffTables(tableOf(toCommands(oldModel)), tableOf(toCommands(newModel)));
}
