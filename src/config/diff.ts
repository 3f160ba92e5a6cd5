// Reload without dropping connections: the commands that turn one table into another.
//
// A service whose key stays is edited (-E), never deleted and re-added: deleting it would
// drop its connections and persistence templates. A destination that stays is edited
// (-e) when its weight, method or thresholds change. Only what disappeared is deleted.

import type { CtlCommand, DestSpec, ServiceKey, ServiceSpec } from "../core/ctl-types.js";
import { type ConfigModel, serviceKeyString, toCommands } from "./model.js";

export interface TableEntry {
  svc: ServiceSpec;
  /** By destKey. */
  dests: Map<string, DestSpec>;
  /** FULLNAT local addresses, in order (u32). */
  laddrs: number[];
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
        table.set(k, { svc: { ...c.svc }, dests: prev?.dests ?? new Map(), laddrs: prev?.laddrs ?? [] });
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
        if (e !== undefined && !e.laddrs.includes(c.addr >>> 0)) e.laddrs.push(c.addr >>> 0);
        break;
      }
      case "del-laddr": {
        const e = table.get(serviceKeyString(c.key));
        if (e !== undefined) e.laddrs = e.laddrs.filter((a) => a !== c.addr >>> 0);
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
    a.peName === b.peName
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
    // Local addresses: the ones that went are deleted (their connections keep them until they end).
    for (const a of na.laddrs) if (!nb.laddrs.includes(a)) out.push({ op: "del-laddr", key, addr: a });
    for (const a of nb.laddrs) if (!na.laddrs.includes(a)) out.push({ op: "add-laddr", key, addr: a });
  }
  for (const [k, nb] of b) {
    if (a.has(k)) continue;
    const key = keyOf(nb.svc);
    out.push({ op: "add-service", svc: { ...nb.svc } });
    for (const d of nb.dests.values()) out.push({ op: "add-dest", key, dest: { ...d } });
    for (const a of nb.laddrs) out.push({ op: "add-laddr", key, addr: a });
  }
  return out;
}

/** Commands that turn the table of `oldModel` into that of `newModel` (both fully up). */
export function diff(oldModel: ConfigModel, newModel: ConfigModel): CtlCommand[] {
  return diffTables(tableOf(toCommands(oldModel)), tableOf(toCommands(newModel)));
}
