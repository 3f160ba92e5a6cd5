// The VRRP and sync-daemon part of the configuration, shared by both formats: each parser
// (keepalived-vrrp.ts, yaml.ts) writes down what the file says, with where it says it (an
// HaDraft); buildHa applies keepalived's defaults and its cross-section rules and returns the
// HaConfig of src/core/vrrp/config.ts, or diagnostics at the line and column concerned.
//
// The rules are keepalived's (vrrp/vrrp.c vrrp_complete_instance, vrrp_track.c, vrrp_sync.c),
// with two deliberate differences: what keepalived drops with a log line and runs without
// (a track_script naming no vrrp_script, a sync group member that does not exist, a priority
// out of range) is an error here, so that a director never runs a half-read configuration; and
// a vrrp_script may be defined after the instance that tracks it.
//
// An instance's family is keepalived's: the first virtual_ipaddress, unicast_src_ip/mcast_src_ip,
// unicast_peer or mcast_dst_ip, or native_ipv6, decides it (IPv4 when nothing does); a later one
// of the other family is keepalived's "MUST match" error (keepalived skips it and runs; tsvs
// refuses the file). virtual_ipaddress_excluded may mix families. An IPv6 instance is VRRPv3.

import { formatIPv4, parseIPv6 } from "../core/addr.js";
import {
  type HaConfig,
  type LvsSyncDaemonConfig,
  VRRP_DEFAULTS,
  type VrrpInstanceConfig,
  type VrrpScriptConfig,
  type VrrpSyncGroupConfig,
  type VrrpTrack,
  vrrpInstanceDefaults,
} from "../core/vrrp/config.js";
import type { Diagnostic, SourcePos } from "./model.js";

export function emptyHa(): HaConfig {
  return { routerId: null, instances: [], syncGroups: [], scripts: [], lvsSyncDaemon: null };
}

/**
 * Something that decides an instance's family, in the order the file gives it (keepalived sets
 * vrrp->family from the first one). `version` entries are there for their order only: a
 * `version 2` after IPv6 is keepalived's conflict.
 */
export interface FamilyClaim {
  family: 4 | 6;
  kind: "vip" | "native_ipv6" | "src" | "peer" | "mcast_dst" | "version";
  /** The address as written (or the version number). */
  text: string;
  pos: SourcePos;
}

/** Ports and group of the kernel's sync daemon (ip_vs_sync.c), for summaries. */
export const SYNC_DEFAULTS = { port: 8848, group: 0xe0000051, ttl: 1 };

export interface NameRef {
  name: string;
  pos: SourcePos;
}

export interface TrackDraft {
  name: string;
  /** null: not written (a track_script then takes the vrrp_script's weight). */
  weight: number | null;
  reverse: boolean | null;
  pos: SourcePos;
}

/** What a file set on an instance; a key is present only when written. */
export type InstanceSettings = Partial<Omit<VrrpInstanceConfig, "name" | "trackInterfaces" | "trackScripts">>;

export interface InstanceDraft {
  name: string;
  pos: SourcePos;
  set: InstanceSettings;
  /** Where some values were written (errors and warnings about them point there). */
  at: Partial<Record<"vrid" | "advertInt" | "auth" | "nopreempt" | "preemptDelay", SourcePos>>;
  trackInterfaces: TrackDraft[];
  trackScripts: TrackDraft[];
  /** What decides the family, in file order (FamilyClaim). */
  families: FamilyClaim[];
}

export interface SyncGroupDraft
  extends Omit<VrrpSyncGroupConfig, "members" | "trackInterfaces" | "trackScripts"> {
  pos: SourcePos;
  members: NameRef[];
  trackInterfaces: TrackDraft[];
  trackScripts: TrackDraft[];
  /** sync_group_tracking_weight / global_tracking: members keep their trackers' weights. */
  trackingWeight: boolean;
}

export interface ScriptDraft {
  cfg: Omit<VrrpScriptConfig, "timeoutMs"> & { timeoutMs: number | null };
  pos: SourcePos;
}

export interface SyncDaemonDraft {
  cfg: Omit<LvsSyncDaemonConfig, "instance" | "syncid"> & { syncid: number | null };
  instance: NameRef | null;
  pos: SourcePos;
}

/** global_defs values that are the default of every instance. */
export type HaGlobals = Pick<
  InstanceSettings,
  | "version"
  | "garpMasterDelayMs"
  | "garpMasterRepeat"
  | "garpMasterRefreshMs"
  | "garpMasterRefreshRepeat"
  | "garpLowerPrioDelayMs"
  | "garpLowerPrioRepeat"
  | "mcastDst"
  | "downTimerAdverts"
  | "lowerPrioNoAdvert"
  | "higherPrioSendAdvert"
  | "v3ChecksumAsV2"
  | "mcastDst6"
>;

export interface HaDraft {
  routerId: string | null;
  globals: HaGlobals;
  instances: InstanceDraft[];
  syncGroups: SyncGroupDraft[];
  scripts: ScriptDraft[];
  lvsSyncDaemon: SyncDaemonDraft | null;
  /** global_defs vrrp_garp_interval / vrrp_gna_interval, ms. */
  garpIntervalMs?: number;
  gnaIntervalMs?: number;
}

export function emptyDraft(): HaDraft {
  return { routerId: null, globals: {}, instances: [], syncGroups: [], scripts: [], lvsSyncDaemon: null };
}

export function emptyInstanceDraft(name: string, pos: SourcePos): InstanceDraft {
  return { name, pos, set: {}, at: {}, trackInterfaces: [], trackScripts: [], families: [] };
}

/** The family the claims so far give (the first address's), or null when none has. */
export function claimedFamily(d: InstanceDraft): 4 | 6 | null {
  return d.families.find((c) => c.kind !== "version")?.family ?? null;
}

/** Is the text an IPv6 link-local multicast group (ff02::/16, IN6_IS_ADDR_MC_LINKLOCAL)? */
export function isLinkLocalMulticast6(text: string): boolean {
  const b = parseIPv6(text);
  return b !== null && b[0] === 0xff && (b[1] & 15) === 2;
}

/** Is the text an IPv6 link-local unicast address (fe80::/10)? */
export function isLinkLocal6(text: string): boolean {
  const b = parseIPv6(text);
  return b !== null && b[0] === 0xfe && (b[1] & 0xc0) === 0x80;
}

/**
 * keepalived's family rule over an instance's claims: the first address decides (native_ipv6 too,
 * unless an IPv4 address came first), a later one of the other family is an error with
 * keepalived's message (vrrp_parser.c, vrrp_data.c), as is `version 2` once the instance is IPv6.
 */
function resolveFamily(inst: InstanceDraft, errors: Diagnostic[]): 4 | 6 {
  let family: 4 | 6 | null = null;
  const n = inst.name;
  for (const c of inst.families) {
    if (c.kind === "version") {
      if (family === 6 && c.text === "2")
        errors.push({
          ...c.pos,
          message: `(${n}) vrrp_version 2 conflicts with configured or deduced version 3`,
        });
      continue;
    }
    if (family === null || family === c.family) {
      family = c.family;
      continue;
    }
    const message = {
      vip: `(${n}): address family must match VRRP instance [${c.text}]`,
      native_ipv6: `(${n}) Cannot specify native_ipv6 with IPv4 addresses`,
      src: `Configuration error: VRRP instance[${n}] and src address[${c.text}] MUST be of the same family`,
      peer: `Configuration error: VRRP instance[${n}] and unicast peer address[${c.text}] MUST be of the same family`,
      mcast_dst: `(${n}) mcast dest address ${c.text} MUST match VRRP instance family`,
    }[c.kind];
    errors.push({ ...c.pos, message });
  }
  return family ?? 4;
}

export interface HaResult {
  ha: HaConfig;
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

/** Drops absent keys, so that spreading the result never overwrites a value with undefined. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** v2 advertises whole seconds, v3 centiseconds up to 40.95 s (vrrp.c: rounded with a warning). */
function advertInterval(
  ms: number,
  version: 2 | 3,
  at: SourcePos,
  errors: Diagnostic[],
  warnings: Diagnostic[],
): number {
  if (version === 2) {
    if (ms > 255_000) {
      errors.push({ ...at, message: `advert_int ${ms / 1000} is out of range for VRRPv2 (1..255 s)` });
      return VRRP_DEFAULTS.advertIntMs;
    }
    if (ms % 1000 === 0) return ms;
    const r = Math.max(1000, Math.round(ms / 1000) * 1000);
    warnings.push({
      ...at,
      message: `VRRPv2 advert_int must be whole seconds: ${ms / 1000} rounded to ${r / 1000}`,
    });
    return r;
  }
  if (ms > 40_950) {
    errors.push({ ...at, message: `advert_int ${ms / 1000} is out of range for VRRPv3 (0.01..40.95 s)` });
    return VRRP_DEFAULTS.advertIntMs;
  }
  if (ms % 10 === 0) return ms;
  const r = Math.min(40_950, Math.max(10, Math.round(ms / 10) * 10));
  warnings.push({
    ...at,
    message: `VRRPv3 advert_int is in units of 10 ms: ${ms / 1000} rounded to ${r / 1000}`,
  });
  return r;
}

/** Trackers as the state machine gets them: one per name, script weights resolved. */
function resolveTracks(
  owner: string,
  ifaces: readonly TrackDraft[],
  scriptRefs: readonly TrackDraft[],
  scripts: ReadonlyMap<string, ScriptDraft>,
  errors: Diagnostic[],
  warnings: Diagnostic[],
): { trackInterfaces: VrrpTrack[]; trackScripts: VrrpTrack[] } {
  const dedup = (list: readonly TrackDraft[], what: string): TrackDraft[] => {
    const seen = new Set<string>();
    return list.filter((t) => {
      if (!seen.has(t.name)) {
        seen.add(t.name);
        return true;
      }
      warnings.push({ ...t.pos, message: `${owner}: duplicate ${what} ${t.name} (ignored)` });
      return false;
    });
  };
  const trackInterfaces = dedup(ifaces, "track_interface").map((t) => ({
    name: t.name,
    weight: t.weight ?? 0,
    reverse: t.reverse ?? false,
  }));
  const trackScripts: VrrpTrack[] = [];
  for (const t of dedup(scriptRefs, "track_script")) {
    const s = scripts.get(t.name);
    if (s === undefined) {
      errors.push({ ...t.pos, message: `${owner}: track_script ${t.name}: no vrrp_script ${t.name}` });
      continue;
    }
    // vrrp_track.c: a track_script without its own weight takes the script's weight and reverse.
    trackScripts.push({
      name: t.name,
      weight: t.weight ?? s.cfg.weight,
      reverse: t.weight !== null ? (t.reverse ?? false) : s.cfg.reverse,
    });
  }
  return { trackInterfaces, trackScripts };
}

/** keepalived's defaults and cross-section rules over a draft. */
export function buildHa(d: HaDraft): HaResult {
  const errors: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];
  const ha = emptyHa();
  ha.routerId = d.routerId;
  const g = d.globals;

  const scripts = new Map<string, ScriptDraft>();
  for (const s of d.scripts) {
    const prev = scripts.get(s.cfg.name);
    if (prev !== undefined) {
      errors.push({
        ...s.pos,
        message: `vrrp_script ${s.cfg.name} is already defined at line ${prev.pos.line}`,
      });
      continue;
    }
    scripts.set(s.cfg.name, s);
    ha.scripts.push({ ...s.cfg, timeoutMs: s.cfg.timeoutMs ?? s.cfg.intervalMs });
  }

  // Sync groups first: membership changes how the members' trackers count.
  const groupOf = new Map<string, SyncGroupDraft>();
  const groupNames = new Map<string, SyncGroupDraft>();
  const instanceNames = new Set(d.instances.map((i) => i.name));
  for (const sg of d.syncGroups) {
    const prev = groupNames.get(sg.name);
    if (prev !== undefined) {
      errors.push({
        ...sg.pos,
        message: `vrrp_sync_group ${sg.name} is already defined at line ${prev.pos.line}`,
      });
      continue;
    }
    groupNames.set(sg.name, sg);
    const members: string[] = [];
    for (const m of sg.members) {
      if (!instanceNames.has(m.name)) {
        errors.push({ ...m.pos, message: `vrrp_sync_group ${sg.name}: no vrrp_instance ${m.name}` });
        continue;
      }
      const other = groupOf.get(m.name);
      if (other !== undefined) {
        errors.push({
          ...m.pos,
          message: `vrrp_sync_group ${sg.name}: ${m.name} is already in vrrp_sync_group ${other.name}`,
        });
        continue;
      }
      groupOf.set(m.name, sg);
      members.push(m.name);
    }
    if (sg.members.length === 0)
      errors.push({ ...sg.pos, message: `vrrp_sync_group ${sg.name} has no group { }` });
    else if (sg.members.length === 1)
      warnings.push({ ...sg.pos, message: `vrrp_sync_group ${sg.name} has only one member` });
    const tracks = resolveTracks(
      `vrrp_sync_group ${sg.name}`,
      sg.trackInterfaces,
      sg.trackScripts,
      scripts,
      errors,
      warnings,
    );
    ha.syncGroups.push({
      name: sg.name,
      members,
      ...tracks,
      notifyMaster: sg.notifyMaster,
      notifyBackup: sg.notifyBackup,
      notifyFault: sg.notifyFault,
      notifyStop: sg.notifyStop,
      notify: sg.notify,
    });
  }

  const byName = new Map<string, InstanceDraft>();
  const vrids = new Map<string, InstanceDraft>();
  for (const inst of d.instances) {
    const prev = byName.get(inst.name);
    if (prev !== undefined) {
      errors.push({
        ...inst.pos,
        message: `vrrp_instance ${inst.name} is already defined at line ${prev.pos.line}`,
      });
      continue;
    }
    byName.set(inst.name, inst);
    const s = inst.set;
    const who = `vrrp_instance ${inst.name}`;
    if (s.iface === undefined) errors.push({ ...inst.pos, message: `${who} needs an interface` });
    // A virtual_router_id written but out of range has its own error already.
    if (s.vrid === undefined && inst.at.vrid === undefined)
      errors.push({ ...inst.pos, message: `${who} needs a virtual_router_id` });
    if (s.iface === undefined || s.vrid === undefined) continue;
    const family = resolveFamily(inst, errors);
    // check_vrid_conflicts: an IPv4 and an IPv6 instance are two virtual routers on one VRID.
    const key = `${s.iface}/${s.vrid}/${family}`;
    const same = vrids.get(key);
    if (same !== undefined)
      errors.push({
        ...(inst.at.vrid ?? inst.pos),
        message: `virtual_router_id ${s.vrid} on ${s.iface} is already used by vrrp_instance ${same.name} (line ${same.pos.line})`,
      });
    else vrids.set(key, inst);
    if (family === 6) checkIpv6Instance(inst, errors, warnings);

    // vrrp_complete_instance: an IPv6 instance is VRRPv3 whatever vrrp_version says.
    const version = family === 6 ? 3 : (s.version ?? g.version ?? VRRP_DEFAULTS.version);
    const initialState = s.initialState ?? "BACKUP";
    // vrrp.c: no priority written → 255 (the owner) when the instance starts MASTER, else 100.
    const priority =
      s.priority ?? (initialState === "MASTER" ? VRRP_DEFAULTS.ownerPriority : VRRP_DEFAULTS.priority);
    const advertIntMs = advertInterval(
      s.advertIntMs ?? VRRP_DEFAULTS.advertIntMs,
      version,
      inst.at.advertInt ?? inst.pos,
      errors,
      warnings,
    );
    let authPass = s.authPass ?? null;
    if (authPass !== null && version === 3) {
      warnings.push({
        ...(inst.at.auth ?? inst.pos),
        message: `${who}: VRRP version 3 does not support authentication (ignored, as keepalived)`,
      });
      authPass = null;
    }
    let nopreempt = s.nopreempt ?? false;
    let preemptDelayMs = s.preemptDelayMs ?? 0;
    if (nopreempt && priority === VRRP_DEFAULTS.ownerPriority) {
      warnings.push({
        ...(inst.at.nopreempt ?? inst.pos),
        message: `${who}: nopreempt does not apply to the address owner (priority 255): cleared`,
      });
      nopreempt = false;
    } else if (nopreempt && initialState === "MASTER") {
      warnings.push({
        ...(inst.at.nopreempt ?? inst.pos),
        message: `${who}: nopreempt does not work with state MASTER: cleared (as keepalived; use state BACKUP)`,
      });
      nopreempt = false;
    }
    if (preemptDelayMs > 0 && initialState === "MASTER") {
      warnings.push({
        ...(inst.at.preemptDelay ?? inst.pos),
        message: `${who}: preempt_delay does not work with state MASTER: cleared (as keepalived)`,
      });
      preemptDelayMs = 0;
    } else if (preemptDelayMs > 0 && nopreempt) {
      warnings.push({
        ...(inst.at.preemptDelay ?? inst.pos),
        message: `${who}: preempt_delay does not apply with nopreempt: cleared (as keepalived)`,
      });
      preemptDelayMs = 0;
    }
    const garpMasterDelayMs = s.garpMasterDelayMs ?? g.garpMasterDelayMs ?? VRRP_DEFAULTS.garpMasterDelayMs;
    const garpMasterRepeat = s.garpMasterRepeat ?? g.garpMasterRepeat ?? VRRP_DEFAULTS.garpMasterRepeat;
    const tracks = resolveTracks(who, inst.trackInterfaces, inst.trackScripts, scripts, errors, warnings);
    // vrrp.c: in a sync group (without sync_group_tracking_weight) a failing tracker faults the
    // whole group, so weights become 0; the address owner ignores weighted trackers.
    const group = groupOf.get(inst.name);
    const zero = (t: VrrpTrack, what: string): VrrpTrack => {
      if (t.weight === 0) return t;
      const at =
        [...inst.trackInterfaces, ...inst.trackScripts].find((x) => x.name === t.name)?.pos ?? inst.pos;
      warnings.push({
        ...at,
        message: `${who}: weight of ${what} ${t.name} ignored (member of vrrp_sync_group ${group?.name}: a failure faults the group)`,
      });
      return { ...t, weight: 0 };
    };
    if (group !== undefined && !group.trackingWeight) {
      tracks.trackInterfaces = tracks.trackInterfaces.map((t) => zero(t, "track_interface"));
      tracks.trackScripts = tracks.trackScripts.map((t) => zero(t, "track_script"));
    } else if (priority === VRRP_DEFAULTS.ownerPriority) {
      const keep = (t: VrrpTrack, what: string): boolean => {
        if (t.weight === 0) return true;
        warnings.push({
          ...inst.pos,
          message: `${who}: ${what} ${t.name} with a weight ignored (the address owner's priority does not move)`,
        });
        return false;
      };
      tracks.trackInterfaces = tracks.trackInterfaces.filter((t) => keep(t, "track_interface"));
      tracks.trackScripts = tracks.trackScripts.filter((t) => keep(t, "track_script"));
    }
    const cfg: VrrpInstanceConfig = vrrpInstanceDefaults({
      ...defined(g),
      ...defined(s),
      name: inst.name,
      iface: s.iface,
      vrid: s.vrid,
      family,
      priority,
      version,
      advertIntMs,
      initialState,
      nopreempt,
      preemptDelayMs,
      authPass,
      garpMasterDelayMs,
      garpMasterRepeat,
      // vrrp.c: unset lower-priority values take the global ones, which default to the global
      // master values.
      garpLowerPrioDelayMs:
        s.garpLowerPrioDelayMs ??
        g.garpLowerPrioDelayMs ??
        g.garpMasterDelayMs ??
        VRRP_DEFAULTS.garpMasterDelayMs,
      garpLowerPrioRepeat:
        s.garpLowerPrioRepeat ??
        g.garpLowerPrioRepeat ??
        g.garpMasterRepeat ??
        VRRP_DEFAULTS.garpMasterRepeat,
      ...tracks,
    });
    ha.instances.push(cfg);
  }

  if (d.lvsSyncDaemon !== null) {
    const sd = d.lvsSyncDaemon;
    let instance: string | null = null;
    let vrid = 0;
    if (sd.instance !== null) {
      const inst = byName.get(sd.instance.name);
      if (inst === undefined)
        errors.push({ ...sd.instance.pos, message: `lvs_sync_daemon: no vrrp_instance ${sd.instance.name}` });
      else {
        instance = inst.name;
        vrid = inst.set.vrid ?? 0;
      }
    }
    // global_parser.c: the sync id defaults to the instance's VRID (0 = accept any on a backup).
    ha.lvsSyncDaemon = { ...sd.cfg, instance, syncid: sd.cfg.syncid ?? vrid };
  }
  if (d.garpIntervalMs !== undefined) ha.garpIntervalMs = d.garpIntervalMs;
  if (d.gnaIntervalMs !== undefined) ha.gnaIntervalMs = d.gnaIntervalMs;
  const byPos = (a: Diagnostic, b: Diagnostic) => a.line - b.line || a.col - b.col;
  return { ha, errors: errors.sort(byPos), warnings: warnings.sort(byPos) };
}

/**
 * What keepalived requires of an IPv6 instance beyond its family (vrrp_complete_instance): at least
 * one virtual_ipaddress, the first one link-local when multicasting (logged only, unless
 * vrrp_strict), and VRRPv3: keepalived ignores a `version 2` that comes after an IPv6 address
 * (resolveFamily) but keeps one that comes before and would send VRRPv2 over IPv6, which no
 * standard describes; tsvs refuses both.
 */
function checkIpv6Instance(inst: InstanceDraft, errors: Diagnostic[], warnings: Diagnostic[]): void {
  const s = inst.set;
  const n = inst.name;
  const addrs = s.addrs ?? [];
  if (addrs.length === 0)
    errors.push({ ...inst.pos, message: `(${n}) No VIP specified; at least one is required` });
  const unicast = (s.unicastPeers6 ?? []).length > 0;
  const first = addrs[0]?.addr6;
  if (!unicast && first !== undefined && !isLinkLocal6(first))
    warnings.push({
      ...(inst.families.find((c) => c.kind === "vip")?.pos ?? inst.pos),
      message: `(${n}) the first IPv6 VIP address should be link local`,
    });
  const v = inst.families.findIndex((c) => c.kind === "version" && c.text === "2");
  const v6 = inst.families.findIndex((c) => c.kind !== "version" && c.family === 6);
  if (v >= 0 && v < v6)
    errors.push({
      ...inst.families[v].pos,
      message: `(${n}) version 2 with IPv6 addresses: an IPv6 instance is VRRPv3 (keepalived would send VRRPv2 over IPv6 here); write version 3 or leave it out`,
    });
}

/** One line per instance, sync group and sync daemon (config check, logs). */
export function haSummary(ha: HaConfig): string[] {
  const out: string[] = [];
  for (const i of ha.instances) {
    let line =
      `vrrp_instance ${i.name}: ${i.iface} vrid ${i.vrid} ${i.initialState} priority ${i.priority}` +
      ` v${i.version}${i.family === 6 ? " IPv6" : ""} advert ${i.advertIntMs / 1000}s`;
    if (i.nopreempt) line += " nopreempt";
    if (i.preemptDelayMs > 0) line += ` preempt_delay ${i.preemptDelayMs / 1000}s`;
    if (i.authPass !== null) line += " auth PASS";
    const addrs = (list: typeof i.addrs) =>
      list
        .map((a) => `${a.addr6 ?? formatIPv4(a.addr)}/${a.prefix}${a.dev !== undefined ? `@${a.dev}` : ""}`)
        .join(",");
    line += ` vips ${addrs(i.addrs) || "-"}`;
    if (i.excludedAddrs.length > 0) line += ` excluded ${addrs(i.excludedAddrs)}`;
    if (i.trackInterfaces.length > 0)
      line += ` track_interface ${i.trackInterfaces.map((t) => t.name).join(",")}`;
    if (i.trackScripts.length > 0) line += ` track_script ${i.trackScripts.map((t) => t.name).join(",")}`;
    out.push(line);
  }
  for (const sg of ha.syncGroups) out.push(`vrrp_sync_group ${sg.name}: ${sg.members.join(" ")}`);
  for (const s of ha.scripts)
    out.push(`vrrp_script ${s.name}: interval ${s.intervalMs / 1000}s weight ${s.weight} "${s.script}"`);
  const sd = ha.lvsSyncDaemon;
  if (sd !== null)
    out.push(
      `lvs_sync_daemon: ${sd.iface} ${sd.instance !== null ? `follows ${sd.instance}` : "master and backup"}` +
        ` syncid ${sd.syncid} group ${formatIPv4(sd.group ?? SYNC_DEFAULTS.group)} port ${sd.port ?? SYNC_DEFAULTS.port}`,
    );
  return out;
}
