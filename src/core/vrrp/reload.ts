// What a reload (SIGHUP, `tsvs reload`) does to the VRRP part of the configuration, as keepalived's
// reload does it (vrrp_daemon.c reload_vrrp_thread → start_vrrp; vrrp.c vrrp_exist, clear_diff_vrrp,
// clear_diff_vrrp_vip, restore_vrrp_state, clear_diff_script; vrrp_scheduler.c vrrp_init_state):
//
//   - an old instance and a new one are the same virtual router when vrrp_exist says so: the same
//     interface, VRID and family, both unicast or both multicast, then the same unicast_src_ip
//     (unicast) or use_vmac and multicast group (multicast). The name does not count: a renamed
//     instance goes on; one whose VRID or interface changed is removed and another added
//   - such a pair is kept (its section is the same) or updated (something else changed): either
//     way the new settings run from the old state (a MASTER stays MASTER, a BACKUP BACKUP); the
//     addresses the old one listed and the new one does not are dropped, the new ones added
//     (clear_diff_vrrp_vip / get_diff_address: an address is its family, prefix, interface and
//     value, in virtual_ipaddress or virtual_ipaddress_excluded alike)
//   - an old instance with no new one is removed (a MASTER sends priority 0 and releases its
//     addresses); a new one with no old one is added and starts as at daemon start
//   - a vrrp_script of the same name and command keeps its result (clear_diff_script)
//
// Pure: two HaConfigs in, a plan out; the daemon (daemon/vrrp.ts) carries it out.

import { formatIPv4 } from "../addr.js";
import type { HaConfig, VrrpAddr, VrrpInstanceConfig } from "./config.js";

export type VrrpReloadAction = "keep" | "update" | "remove" | "add";

export interface VrrpInstancePlan {
  action: VrrpReloadAction;
  /** The new section's name; the old one's for a removal. */
  name: string;
  /** The running instance's configuration; null when added. */
  old: VrrpInstanceConfig | null;
  /** The configuration it runs from now on; null when removed. */
  cfg: VrrpInstanceConfig | null;
  /** The settings (VrrpInstanceConfig keys) that differ, for an update; empty otherwise. */
  changed: string[];
  /** An update's addresses no longer listed, and newly listed (either list, as keepalived looks). */
  dropAddrs: VrrpAddr[];
  addAddrs: VrrpAddr[];
}

export interface VrrpReloadPlan {
  /** The new file's instances in its order (keep, update, add), then the removed ones in the old order. */
  instances: VrrpInstancePlan[];
  /** vrrp_scripts of the same name and command on both sides: their GOOD/BAD carries over. */
  keptScripts: string[];
  /** global_defs vrrp_garp_interval / vrrp_gna_interval changed. */
  garpIntervals: boolean;
  /** global_defs lvs_sync_daemon changed (keepalived's ipvs_syncd_changed): the daemons restart. */
  syncDaemon: boolean;
  /** The VRRP part is the same as before, to the byte of its model. */
  unchanged: boolean;
}

/** vrrp_exist: the same virtual router on both sides of a reload. */
export function sameVirtualRouter(a: VrrpInstanceConfig, b: VrrpInstanceConfig): boolean {
  if (a.iface !== b.iface || a.vrid !== b.vrid || a.family !== b.family) return false;
  const ua = a.family === 6 ? a.unicastPeers6.length > 0 : a.unicastPeers.length > 0;
  const ub = b.family === 6 ? b.unicastPeers6.length > 0 : b.unicastPeers.length > 0;
  if (ua !== ub) return false;
  // keepalived compares the source unicast adverts go from; unset here means the interface's.
  if (ua) return a.family === 6 ? a.unicastSrc6 === b.unicastSrc6 : a.unicastSrc === b.unicastSrc;
  if (a.useVmac !== b.useVmac) return false;
  return a.family === 6 ? a.mcastDst6 === b.mcastDst6 : a.mcastDst === b.mcastDst;
}

/** compare_ipaddress's identity of an address: family, value, prefix, interface. */
function addrKey(a: VrrpAddr, iface: string): string {
  return `${a.addr6 ?? formatIPv4(a.addr)}/${a.prefix}%${a.dev ?? iface}`;
}

/** Addresses of `from` (both lists) that `to` does not list, in from's order. */
function addrsMissing(from: VrrpInstanceConfig, to: VrrpInstanceConfig): VrrpAddr[] {
  const have = new Set([...to.addrs, ...to.excludedAddrs].map((a) => addrKey(a, to.iface)));
  return [...from.addrs, ...from.excludedAddrs].filter((a) => !have.has(addrKey(a, from.iface)));
}

function changedKeys(a: VrrpInstanceConfig, b: VrrpInstanceConfig): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as (keyof VrrpInstanceConfig)[]);
  return [...keys].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).sort();
}

export function planVrrpReload(old: HaConfig, next: HaConfig): VrrpReloadPlan {
  const matched = new Map<VrrpInstanceConfig, VrrpInstanceConfig>();
  const taken = new Set<VrrpInstanceConfig>();
  // The parser refuses two instances of one VRID, family and interface, so each old instance
  // matches at most one new one; `taken` keeps that true for any input.
  for (const o of old.instances) {
    const n = next.instances.find((c) => !taken.has(c) && sameVirtualRouter(o, c));
    if (n === undefined) continue;
    matched.set(n, o);
    taken.add(n);
  }
  const instances: VrrpInstancePlan[] = [];
  for (const cfg of next.instances) {
    const o = matched.get(cfg) ?? null;
    if (o === null) {
      instances.push({
        action: "add",
        name: cfg.name,
        old: null,
        cfg,
        changed: [],
        dropAddrs: [],
        addAddrs: [],
      });
      continue;
    }
    const changed = changedKeys(o, cfg);
    instances.push({
      action: changed.length === 0 ? "keep" : "update",
      name: cfg.name,
      old: o,
      cfg,
      changed,
      dropAddrs: addrsMissing(o, cfg),
      addAddrs: addrsMissing(cfg, o),
    });
  }
  const kept = new Set(matched.values());
  for (const o of old.instances)
    if (!kept.has(o))
      instances.push({
        action: "remove",
        name: o.name,
        old: o,
        cfg: null,
        changed: [],
        dropAddrs: [],
        addAddrs: [],
      });
  const oldScripts = new Map(old.scripts.map((s) => [s.name, s.script]));
  return {
    instances,
    keptScripts: next.scripts.filter((s) => oldScripts.get(s.name) === s.script).map((s) => s.name),
    garpIntervals:
      (old.garpIntervalMs ?? 0) !== (next.garpIntervalMs ?? 0) ||
      (old.gnaIntervalMs ?? 0) !== (next.gnaIntervalMs ?? 0),
    syncDaemon: JSON.stringify(old.lvsSyncDaemon) !== JSON.stringify(next.lvsSyncDaemon),
    unchanged: JSON.stringify(old) === JSON.stringify(next),
  };
}
