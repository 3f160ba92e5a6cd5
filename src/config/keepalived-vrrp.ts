// keepalived.conf, the VRRP part (keepalived's vrrp/vrrp_parser.c and core/global_parser.c):
// global_defs (router_id, the vrrp_* defaults, lvs_sync_daemon), vrrp_instance,
// vrrp_sync_group and vrrp_script. Each function writes what a section says into an HaDraft;
// buildHa (vrrp.ts) applies the defaults and the rules that span sections.
//
// Every keyword keepalived accepts is accepted. Those that change nothing in tsvs (smtp_alert,
// dont_track_primary, old_unicast_checksum, label/brd/scope of an address, ...) are read
// silently; those tsvs does not do and that would change what the director does (vrrp_strict,
// track_file, virtual_routes, ...) are named in a warning; a keyword keepalived does not know
// is a warning too, as for virtual_server.

import { formatIPv6, parseIPv4, parseIPv6 } from "../core/addr.js";
import type { VrrpAddr } from "../core/vrrp/config.js";
import {
  arg,
  type Ctx,
  error,
  flag,
  int,
  ip,
  type KaStatement,
  type KaToken,
  notifyScript,
  num,
  pos,
  unknown,
  warn,
} from "./keepalived-syntax.js";
import {
  claimedFamily,
  emptyInstanceDraft,
  type HaDraft,
  type HaGlobals,
  type InstanceDraft,
  isLinkLocalMulticast6,
  type NameRef,
  type ScriptDraft,
  type SyncGroupDraft,
  type TrackDraft,
} from "./vrrp.js";

/** global_defs keys read and ignored: they change nothing tsvs does. */
const GLOBAL_SILENT = new Set([
  "notification_email",
  "notification_email_from",
  "smtp_server",
  "smtp_helo_name",
  "smtp_connect_timeout",
  "smtp_alert",
  "smtp_alert_vrrp",
  "smtp_alert_checker",
  "no_email_faults",
  "no_checker_emails",
  "checker_log_all_failures",
  "enable_script_security",
  "vrrp_skip_check_adv_addr",
  "vrrp_check_unicast_src",
  "vrrp_iptables",
  "vrrp_ipsets",
  "nftables",
  "nftables_priority",
  "nftables_ifindex",
  "nftables_counters",
  "nftables_ipvs",
  "nftables_ipvs_priority",
  "nftables_ipvs_start_fwmark",
  "vrrp_priority",
  "vrrp_no_swap",
  "vrrp_rt_priority",
  "vrrp_cpu_affinity",
  "vrrp_rlimit_rttime",
  "vrrp_rlimit_rtime",
  "checker_priority",
  "checker_no_swap",
  "checker_rt_priority",
  "checker_cpu_affinity",
  "checker_rlimit_rttime",
  "checker_rlimit_rtime",
  "bfd_priority",
  "bfd_no_swap",
  "bfd_rt_priority",
  "bfd_cpu_affinity",
  "bfd_rlimit_rttime",
  "bfd_rlimit_rtime",
  "max_auto_priority",
  "min_auto_priority_delay",
  "default_interface",
  "dynamic_interfaces",
  "disable_local_igmp",
  "lvs_flush",
  "lvs_flush_on_stop",
  "lvs_flush_onstop",
  "linkbeat_use_polling",
  "use_pid_dir",
  "instance",
  "child_wait_time",
  "process_names",
  "process_name",
  "vrrp_process_name",
  "checker_process_name",
  "lvs_process_name",
  "bfd_process_name",
  "use_symlink_paths",
  "set_supplementary_groups",
  "snmp_socket",
  "enable_traps",
  "enable_snmp_vrrp",
  "enable_snmp_keepalived",
  "enable_snmp_rfc",
  "enable_snmp_rfcv2",
  "enable_snmp_rfcv3",
  "enable_snmp_checker",
  "snmp_vs_stats_update_interval",
  "snmp_rs_stats_update_interval",
  "enable_dbus",
  "dbus_service_name",
  "dbus_no_interface_name",
  "vrrp_netlink_cmd_rcv_bufs",
  "vrrp_netlink_cmd_rcv_bufs_force",
  "vrrp_netlink_monitor_rcv_bufs",
  "vrrp_netlink_monitor_rcv_bufs_force",
  "process_monitor_rcv_bufs",
  "process_monitor_rcv_bufs_force",
  "lvs_netlink_cmd_rcv_bufs",
  "lvs_netlink_cmd_rcv_bufs_force",
  "lvs_netlink_monitor_rcv_bufs",
  "lvs_netlink_monitor_rcv_bufs_force",
  "rs_init_notifies",
  "vrrp_rx_bufs_policy",
  "vrrp_rx_bufs_multiplier",
  "log_unknown_vrids",
  "vmac_prefix",
  "vmac_addr_prefix",
  "umask",
  "random_seed",
  "reload_check_config",
  "reload_time_file",
  "reload_repeat",
  "reload_file",
  "include_check",
  "config_save_dir",
  "tmp_config_directory",
  "data_use_instance",
  "json_version",
  "iproute_usr_dir",
  "iproute_etc_dir",
  "state_dump_file",
  "stats_dump_file",
  "json_dump_file",
  "vrrp_notify_priority_changes",
  "fifo_write_vrrp_states_on_reload",
  "namespace_with_ipsets",
]);

/** global_defs keys tsvs does not act on although keepalived would: a warning says what is lost. */
const GLOBAL_WARN: Record<string, string> = {
  vrrp_strict: "strict mode (RFC-only behaviour, no authentication, firewall rules) is not implemented",
  lvs_timeouts: "set the IPVS timeouts with `tsvs ipvsadm --set`",
  script_user: "scripts run as the daemon's user",
  startup_script: "not run",
  startup_script_timeout: "not run",
  shutdown_script: "not run",
  shutdown_script_timeout: "not run",
  notify_fifo: "no notify FIFO is written",
  notify_fifo_script: "no notify FIFO is written",
  vrrp_notify_fifo: "no notify FIFO is written",
  vrrp_notify_fifo_script: "no notify FIFO is written",
  lvs_notify_fifo: "no notify FIFO is written",
  lvs_notify_fifo_script: "no notify FIFO is written",
  vrrp_min_garp: "tsvs sends the configured gratuitous ARP bursts",
  vrrp_garp_extra_if: "no extra gratuitous ARPs on other interfaces",
  vrrp_vmac_garp_intvl: "no extra gratuitous ARPs on other interfaces",
  vrrp_owner_ignore_adverts: "the address owner processes adverts",
  vrrp_startup_delay: "instances start at once",
  vrrp_delay_after_boot: "instances start at once",
  net_namespace: "tsvs runs in the namespace it is started in",
  net_namespace_ipvs: "tsvs runs in the namespace it is started in",
};

/** vrrp_instance keywords read and ignored: they change nothing tsvs does. */
const INSTANCE_SILENT = new Set([
  "old_unicast_checksum",
  "dont_track_primary",
  "smtp_alert",
  "accept",
  "no_accept",
  "debug",
  "unicast_ttl",
  "check_unicast_src",
  "unicast_fault_no_peer",
  "track_src_ip",
  "promote_secondaries",
  "skip_check_adv_addr",
  "notify_priority_changes",
  "kernel_rx_buf_size",
  "no_virtual_ipaddress",
  "linkbeat_use_polling",
  "vmac_xmit_base",
  "use_vmac_addr",
]);

/** vrrp_instance keywords tsvs does not act on although keepalived would. */
const INSTANCE_WARN: Record<string, string> = {
  strict_mode: "strict mode is not implemented",
  track_file: "not supported by tsvs",
  track_process: "not supported by tsvs",
  track_bfd: "not supported by tsvs",
  virtual_routes: "not supported by tsvs (no routes are added)",
  virtual_rules: "not supported by tsvs (no rules are added)",
  use_ipvlan: "not supported by tsvs",
  vrf: "not supported by tsvs",
  notify_master_rx_lower_pri: "not supported by tsvs (not run)",
  owner_ignore_adverts: "not supported by tsvs",
  timer_expired_backup: "not supported by tsvs",
  garp_extra_if: "no extra gratuitous ARPs on other interfaces",
  vmac_garp_intvl: "no extra gratuitous ARPs on other interfaces",
};

/** Address options of virtual_ipaddress entries that take a value (vrrp_ipaddress.c). */
const ADDR_OPTS_VALUE = new Set(["dev", "scope", "broadcast", "brd", "label", "peer", "preferred_lft"]);
const ADDR_OPTS_FLAG = new Set([
  "home",
  "-nodad",
  "mngtmpaddr",
  "noprefixroute",
  "autojoin",
  "no_track",
  "use_vmac",
]);

function sint(ctx: Ctx, t: KaToken | null, what: string, lo: number, hi: number): number | null {
  if (t === null) return null;
  const v = /^[-+]?\d+$/.test(t.text) ? Number(t.text) : Number.NaN;
  if (!(v >= lo && v <= hi)) {
    error(ctx, t, `${what} must be ${lo}..${hi}, not "${t.text}"`);
    return null;
  }
  return v;
}

/** Seconds with decimals, as keepalived's read_decimal_unsigned_strvec, to ms. */
function ms(ctx: Ctx, st: KaStatement, lo: number, hi: number): number | null {
  const v = num(ctx, st, lo, hi);
  return v === null ? null : Math.round(v * 1000);
}

/** keepalived's repeat counts: 0 is taken as 1, with a warning (vrrp_parser.c). */
function repeat(ctx: Ctx, st: KaStatement): number | null {
  const v = int(ctx, st, 0, 4294967295);
  if (v === 0) {
    warn(ctx, st.keyword, `${st.keyword.text} must be greater than 0: set to 1`);
    return 1;
  }
  return v;
}

function isIPv6(t: KaToken): boolean {
  return t.text.includes(":");
}

/**
 * One address of either family as keepalived's parse_ipaddress reads it: a ':' makes it IPv6, the
 * prefix defaults to the host's (/32, /128). Null (with an error) when it is not one.
 */
function vrrpAddr(ctx: Ctx, t: KaToken): VrrpAddr | null {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(t.text);
  if (isIPv6(t)) {
    const b = m !== null ? parseIPv6(m[1]) : null;
    const prefix = m?.[2] !== undefined ? Number(m[2]) : 128;
    if (b === null || prefix > 128) {
      error(ctx, t, `"${t.text}" is not an address (A.B.C.D[/PREFIX] or an IPv6 address[/PREFIX])`);
      return null;
    }
    return { addr: 0, prefix, addr6: formatIPv6(b) };
  }
  const addr = m !== null && /^[\d.]+$/.test(m[1]) ? parseIPv4(m[1]) : null;
  const prefix = m?.[2] !== undefined ? Number(m[2]) : 32;
  if (addr === null || prefix > 32) {
    error(ctx, t, `"${t.text}" is not an address (A.B.C.D[/PREFIX] or an IPv6 address[/PREFIX])`);
    return null;
  }
  return { addr, prefix };
}

/**
 * `virtual_ipaddress { A[/M] [dev IF] [label L] [brd B] [scope S] ... }`, either family. The
 * virtual_ipaddress entries decide the instance's family (d.families); the excluded ones may mix.
 */
function parseAddrs(ctx: Ctx, st: KaStatement, d: InstanceDraft, claim: boolean): VrrpAddr[] {
  const out: VrrpAddr[] = [];
  if (st.block === null) {
    error(ctx, st.keyword, `${st.keyword.text} needs a block { address ... }`);
    return out;
  }
  for (const s of st.block) {
    const t = s.keyword;
    const a = vrrpAddr(ctx, t);
    if (a === null) continue;
    if (claim)
      d.families.push({ family: a.addr6 !== undefined ? 6 : 4, kind: "vip", text: t.text, pos: pos(ctx, t) });
    for (let k = 0; k < s.args.length; k++) {
      const o = s.args[k];
      if (ADDR_OPTS_VALUE.has(o.text)) {
        const v = s.args[k + 1];
        if (v === undefined) {
          error(ctx, o, `${o.text} needs a value`);
          break;
        }
        if (o.text === "dev") a.dev = v.text;
        k++;
      } else if (!ADDR_OPTS_FLAG.has(o.text)) warn(ctx, o, `unknown address option ${o.text} (ignored)`);
    }
    out.push(a);
  }
  return out;
}

/** A unicast or multicast address of an instance, either family: IPv4 u32 or IPv6 text. */
function instanceIp(ctx: Ctx, t: KaToken): { v4: number } | { v6: string } | null {
  if (isIPv6(t)) {
    const b = parseIPv6(t.text);
    if (b === null) {
      error(ctx, t, `"${t.text}" is not an IPv4 or IPv6 address`);
      return null;
    }
    return { v6: formatIPv6(b) };
  }
  const v = parseIPv4(t.text);
  if (v === null) {
    error(ctx, t, `"${t.text}" is not an IPv4 or IPv6 address`);
    return null;
  }
  return { v4: v };
}

/** `track_interface { IF [weight W [reverse]] }` and `track_script { NAME [weight W [reverse]] }`. */
function parseTracks(ctx: Ctx, st: KaStatement): TrackDraft[] {
  const out: TrackDraft[] = [];
  if (st.block === null) {
    error(ctx, st.keyword, `${st.keyword.text} needs a block { name ... }`);
    return out;
  }
  for (const s of st.block) {
    const t: TrackDraft = { name: s.keyword.text, weight: null, reverse: null, pos: pos(ctx, s.keyword) };
    const [w, v, r] = s.args;
    if (w !== undefined) {
      if (w.text !== "weight") {
        error(ctx, w, `${st.keyword.text} ${t.name}: unknown option "${w.text}" (weight W [reverse])`);
        continue;
      }
      let weight = sint(ctx, v ?? null, "weight", -254, 254);
      if (v === undefined) error(ctx, w, `${st.keyword.text} ${t.name}: weight needs a value`);
      if (weight === null) continue;
      // vrrp_track.c: ±254 is taken as ±253 (an old configuration's value).
      if (Math.abs(weight) === 254) {
        warn(ctx, v, `weight cannot be ${weight}: set to ${Math.sign(weight) * 253}`);
        weight = Math.sign(weight) * 253;
      }
      t.weight = weight;
      t.reverse = false;
      if (r !== undefined) {
        if (r.text === "reverse") t.reverse = true;
        else if (r.text !== "noreverse") error(ctx, r, `unknown weight option "${r.text}" (reverse)`);
      }
    }
    out.push(t);
  }
  return out;
}

/** The deprecated per-instance lvs_sync_daemon_interface, kept aside for finishKeepalivedHa. */
const lvsSyncIfaces = new WeakMap<InstanceDraft, NameRef>();

/** `vrrp_instance NAME { ... }`. */
export function parseVrrpInstance(ctx: Ctx, st: KaStatement): InstanceDraft | null {
  const name = arg(ctx, st, 0, "instance name");
  if (name === null) return null;
  const d = emptyInstanceDraft(name.text, pos(ctx, st.keyword));
  const s = d.set;
  for (const k of st.block ?? []) {
    const kw = k.keyword.text;
    if (INSTANCE_SILENT.has(kw)) continue;
    if (kw in INSTANCE_WARN) {
      warn(ctx, k.keyword, `${kw} in vrrp_instance: ${INSTANCE_WARN[kw]} (ignored)`);
      continue;
    }
    switch (kw) {
      case "state": {
        const a = arg(ctx, k, 0, "MASTER or BACKUP");
        if (a === null) break;
        if (a.text === "MASTER" || a.text === "BACKUP") s.initialState = a.text;
        else error(ctx, a, `state must be MASTER or BACKUP, not "${a.text}"`);
        break;
      }
      case "interface": {
        const a = arg(ctx, k, 0, "interface name");
        if (a !== null) s.iface = a.text;
        break;
      }
      case "virtual_router_id": {
        const v = int(ctx, k, 1, 255);
        if (v !== null) s.vrid = v;
        d.at.vrid = pos(ctx, k.args[0] ?? k.keyword);
        break;
      }
      case "priority": {
        const v = int(ctx, k, 1, 255);
        if (v !== null) s.priority = v;
        break;
      }
      case "advert_int": {
        const v = ms(ctx, k, 0.01, 255);
        if (v !== null) s.advertIntMs = v;
        d.at.advertInt = pos(ctx, k.args[0] ?? k.keyword);
        break;
      }
      case "version": {
        const v = int(ctx, k, 2, 3);
        if (v === null) break;
        // keepalived ignores a version 2 once the instance is IPv6 (buildHa says so).
        d.families.push({
          family: 4,
          kind: "version",
          text: String(v),
          pos: pos(ctx, k.args[0] ?? k.keyword),
        });
        if (!(v === 2 && claimedFamily(d) === 6)) s.version = v as 2 | 3;
        break;
      }
      case "native_ipv6":
        // An IPv6 instance (VRRPv3) even before its addresses say so; after IPv4 ones, an error.
        d.families.push({ family: 6, kind: "native_ipv6", text: "native_ipv6", pos: pos(ctx, k.keyword) });
        break;
      case "authentication":
        parseAuth(ctx, k, d);
        break;
      case "auth_hmac":
        error(ctx, k.keyword, "auth_hmac (keepalived's HMAC-SHA256 extension) is not supported by tsvs");
        break;
      case "virtual_ipaddress":
        s.addrs = [...(s.addrs ?? []), ...parseAddrs(ctx, k, d, true)];
        break;
      case "virtual_ipaddress_excluded":
        s.excludedAddrs = [...(s.excludedAddrs ?? []), ...parseAddrs(ctx, k, d, false)];
        break;
      case "unicast_src_ip":
      case "mcast_src_ip": {
        // Both set the advert's source address (vrrp_parser.c vrrp_srcip_handler).
        const a = arg(ctx, k, 0, "address");
        const v = a === null ? null : instanceIp(ctx, a);
        if (a === null || v === null) break;
        d.families.push({ family: "v6" in v ? 6 : 4, kind: "src", text: a.text, pos: pos(ctx, a) });
        if ("v6" in v) s.unicastSrc6 = v.v6;
        else s.unicastSrc = v.v4;
        break;
      }
      case "unicast_peer": {
        const peers = s.unicastPeers ?? [];
        const peers6 = s.unicastPeers6 ?? [];
        for (const p of k.block ?? []) {
          const v = instanceIp(ctx, p.keyword);
          if (v !== null) {
            const family = "v6" in v ? 6 : 4;
            d.families.push({ family, kind: "peer", text: p.keyword.text, pos: pos(ctx, p.keyword) });
            if ("v6" in v) peers6.push(v.v6);
            else peers.push(v.v4);
          }
          for (let j = 0; j < p.args.length; j += 2)
            if (p.args[j].text !== "min_ttl" && p.args[j].text !== "max_ttl")
              warn(ctx, p.args[j], `unknown unicast_peer option ${p.args[j].text} (ignored)`);
        }
        if (peers.length > 0) s.unicastPeers = peers;
        if (peers6.length > 0) s.unicastPeers6 = peers6;
        break;
      }
      case "mcast_dst_ip": {
        const a = arg(ctx, k, 0, "address");
        const v = a === null ? null : instanceIp(ctx, a);
        if (a === null || v === null) break;
        d.families.push({ family: "v6" in v ? 6 : 4, kind: "mcast_dst", text: a.text, pos: pos(ctx, a) });
        if ("v6" in v) {
          if (!isLinkLocalMulticast6(v.v6))
            error(ctx, a, `(${d.name}) mcast_dst_ip ${a.text} not link-local multicast`);
          else s.mcastDst6 = v.v6;
        } else if (v.v4 >>> 28 !== 0xe) error(ctx, a, `mcast_dst_ip ${a.text} is not a multicast address`);
        else s.mcastDst = v.v4;
        break;
      }
      case "nopreempt":
        s.nopreempt = true;
        d.at.nopreempt = pos(ctx, k.keyword);
        break;
      case "preempt":
        s.nopreempt = false;
        break;
      case "preempt_delay": {
        const v = ms(ctx, k, 0, 1000);
        if (v !== null) s.preemptDelayMs = v;
        d.at.preemptDelay = pos(ctx, k.keyword);
        break;
      }
      case "track_interface":
        d.trackInterfaces.push(...parseTracks(ctx, k));
        break;
      case "track_script":
        d.trackScripts.push(...parseTracks(ctx, k));
        break;
      case "notify_master":
        s.notifyMaster = notifyScript(ctx, k) ?? s.notifyMaster;
        break;
      case "notify_backup":
        s.notifyBackup = notifyScript(ctx, k) ?? s.notifyBackup;
        break;
      case "notify_fault":
        s.notifyFault = notifyScript(ctx, k) ?? s.notifyFault;
        break;
      case "notify_stop":
        s.notifyStop = notifyScript(ctx, k) ?? s.notifyStop;
        break;
      case "notify":
        s.notify = notifyScript(ctx, k) ?? s.notify;
        break;
      case "notify_deleted":
        // A flag, with an optional script of its own (vrrp_notify_deleted_handler); the first wins.
        if (s.notifyDeleted === true) {
          warn(ctx, k.keyword, `(${name.text}) notify_deleted already specified - ignoring`);
          break;
        }
        s.notifyDeleted = true;
        if (k.args.length > 0) s.notifyDeletedScript = notifyScript(ctx, k);
        break;
      case "garp_master_delay": {
        const v = int(ctx, k, 0, 4294);
        if (v !== null) s.garpMasterDelayMs = v * 1000;
        break;
      }
      case "garp_master_repeat": {
        const v = repeat(ctx, k);
        if (v !== null) s.garpMasterRepeat = v;
        break;
      }
      case "garp_master_refresh": {
        const v = int(ctx, k, 0, 4294967);
        if (v !== null) s.garpMasterRefreshMs = v * 1000;
        break;
      }
      case "garp_master_refresh_repeat": {
        const v = repeat(ctx, k);
        if (v !== null) s.garpMasterRefreshRepeat = v;
        break;
      }
      case "garp_lower_prio_delay": {
        const v = int(ctx, k, 0, 4294);
        if (v !== null) s.garpLowerPrioDelayMs = v * 1000;
        break;
      }
      case "garp_lower_prio_repeat": {
        const v = int(ctx, k, 0, 2147483647);
        if (v !== null) s.garpLowerPrioRepeat = v;
        break;
      }
      case "down_timer_adverts": {
        const v = int(ctx, k, 1, 100);
        if (v !== null) s.downTimerAdverts = v;
        break;
      }
      case "lower_prio_no_advert":
        s.lowerPrioNoAdvert = flag(ctx, k);
        break;
      case "higher_prio_send_advert":
        s.higherPrioSendAdvert = flag(ctx, k);
        break;
      case "use_vmac":
        // `use_vmac [NAME] [MAC]`: the interface name and MAC are keepalived's macvlan's.
        s.useVmac = true;
        break;
      case "v3_checksum_as_v2":
        s.v3ChecksumAsV2 = flag(ctx, k);
        break;
      case "lvs_sync_daemon_interface": {
        const a = arg(ctx, k, 0, "interface");
        if (a === null) break;
        warn(
          ctx,
          k.keyword,
          "lvs_sync_daemon_interface in vrrp_instance is deprecated: use global_defs lvs_sync_daemon",
        );
        lvsSyncIfaces.set(d, { name: a.text, pos: pos(ctx, k.keyword) });
        break;
      }
      default:
        unknown(ctx, k, "vrrp_instance");
    }
  }
  return d;
}

function parseAuth(ctx: Ctx, st: KaStatement, d: InstanceDraft): void {
  d.at.auth = pos(ctx, st.keyword);
  let type: KaToken | null = null;
  let pass: KaToken | null = null;
  for (const k of st.block ?? []) {
    if (k.keyword.text === "auth_type") type = arg(ctx, k, 0, "PASS or AH");
    else if (k.keyword.text === "auth_pass") pass = arg(ctx, k, 0, "password");
    else unknown(ctx, k, "authentication");
  }
  if (type === null) {
    if (pass !== null) warn(ctx, pass, "auth_pass without auth_type PASS: no authentication (as keepalived)");
    return;
  }
  if (type.text === "AH") {
    error(ctx, type, "auth_type AH (IPsec AH authentication) is not supported by tsvs");
    return;
  }
  if (type.text !== "PASS") {
    error(ctx, type, `auth_type must be PASS or AH, not "${type.text}"`);
    return;
  }
  if (pass === null || pass.text === "") {
    warn(ctx, type, "auth_type PASS without auth_pass: no authentication (as keepalived)");
    return;
  }
  // vrrp_parser.c: the field is 8 bytes; longer passwords are truncated.
  if (pass.text.length > 8)
    warn(ctx, pass, "auth_pass is longer than 8 characters: only the first 8 are used");
  d.set.authPass = pass.text.slice(0, 8);
}

/** `vrrp_sync_group NAME { group { I1 I2 } notify_* track_* }`. */
export function parseSyncGroup(ctx: Ctx, st: KaStatement): SyncGroupDraft | null {
  const name = arg(ctx, st, 0, "group name");
  if (name === null) return null;
  const g: SyncGroupDraft = {
    name: name.text,
    pos: pos(ctx, st.keyword),
    members: [],
    trackInterfaces: [],
    trackScripts: [],
    trackingWeight: false,
    notifyMaster: null,
    notifyBackup: null,
    notifyFault: null,
    notifyStop: null,
    notify: null,
  };
  for (const k of st.block ?? []) {
    const kw = k.keyword.text;
    switch (kw) {
      case "group":
        // One name a line, or several on a line ("group { VI_1 VI_2 }").
        for (const m of k.block ?? [])
          for (const t of [m.keyword, ...m.args]) g.members.push({ name: t.text, pos: pos(ctx, t) });
        break;
      case "track_interface":
        g.trackInterfaces.push(...parseTracks(ctx, k));
        break;
      case "track_script":
        g.trackScripts.push(...parseTracks(ctx, k));
        break;
      case "notify_master":
        g.notifyMaster = notifyScript(ctx, k) ?? g.notifyMaster;
        break;
      case "notify_backup":
        g.notifyBackup = notifyScript(ctx, k) ?? g.notifyBackup;
        break;
      case "notify_fault":
        g.notifyFault = notifyScript(ctx, k) ?? g.notifyFault;
        break;
      case "notify_stop":
        g.notifyStop = notifyScript(ctx, k) ?? g.notifyStop;
        break;
      case "notify":
        g.notify = notifyScript(ctx, k) ?? g.notify;
        break;
      case "global_tracking":
      case "sync_group_tracking_weight":
        g.trackingWeight = true;
        break;
      case "smtp_alert":
      case "notify_priority_changes":
        break;
      case "track_file":
      case "track_process":
      case "track_bfd":
        warn(ctx, k.keyword, `${kw} in vrrp_sync_group: not supported by tsvs (ignored)`);
        break;
      default:
        unknown(ctx, k, "vrrp_sync_group");
    }
  }
  return g;
}

/** `vrrp_script NAME { script "..." interval timeout weight [reverse] rise fall user init_fail }`. */
export function parseVrrpScript(ctx: Ctx, st: KaStatement): ScriptDraft | null {
  const name = arg(ctx, st, 0, "script name");
  if (name === null) return null;
  const d: ScriptDraft = {
    cfg: {
      name: name.text,
      script: "",
      intervalMs: 1000,
      timeoutMs: null,
      weight: 0,
      reverse: false,
      rise: 1,
      fall: 1,
      initFail: false,
    },
    pos: pos(ctx, st.keyword),
  };
  const c = d.cfg;
  for (const k of st.block ?? []) {
    switch (k.keyword.text) {
      case "script": {
        const a = arg(ctx, k, 0, "command line");
        if (a === null) break;
        c.script = a.text;
        // keepalived reads the first word only (the quoted command line): the rest is lost there.
        if (k.args.length > 1)
          warn(ctx, k.args[1], `script: keepalived runs only "${a.text}"; quote the whole command line`);
        break;
      }
      case "interval":
        c.intervalMs = ms(ctx, k, 0.001, 4294967) ?? c.intervalMs;
        break;
      case "timeout":
        c.timeoutMs = ms(ctx, k, 0.001, 4294967) ?? c.timeoutMs;
        break;
      case "weight": {
        const w = sint(ctx, arg(ctx, k, 0, "weight"), "weight", -253, 253);
        if (w !== null) c.weight = w;
        const r = k.args[1];
        if (r !== undefined) {
          if (r.text === "reverse") c.reverse = true;
          else error(ctx, r, `unknown weight option "${r.text}" (reverse)`);
        }
        break;
      }
      case "rise":
        c.rise = int(ctx, k, 1, 2147483647) ?? c.rise;
        break;
      case "fall":
        c.fall = int(ctx, k, 1, 2147483647) ?? c.fall;
        break;
      case "user":
        break;
      case "init_fail":
        c.initFail = true;
        break;
      default:
        unknown(ctx, k, "vrrp_script");
    }
  }
  if (c.script === "") {
    error(ctx, st.keyword, `vrrp_script ${c.name} needs a script`);
    return null;
  }
  return d;
}

/** `lvs_sync_daemon IF [[inst] INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group A]`. */
function parseLvsSyncDaemon(ctx: Ctx, st: KaStatement, d: HaDraft): void {
  const iface = arg(ctx, st, 0, "interface");
  if (iface === null) return;
  if (d.lvsSyncDaemon !== null) {
    warn(ctx, st.keyword, "lvs_sync_daemon is already given (ignored, as keepalived)");
    return;
  }
  const sd: NonNullable<HaDraft["lvsSyncDaemon"]> = {
    cfg: { iface: iface.text, syncid: null, maxlen: null, port: null, ttl: null, group: null },
    instance: null,
    pos: pos(ctx, st.keyword),
  };
  const a = st.args;
  for (let i = 1; i < a.length; i++) {
    const t = a[i];
    const v = a[i + 1];
    const need = (): KaToken | null => {
      if (v === undefined) error(ctx, t, `lvs_sync_daemon ${t.text} needs a value`);
      i++;
      return v ?? null;
    };
    switch (t.text) {
      case "inst": {
        const n = need();
        if (n !== null) sd.instance = { name: n.text, pos: pos(ctx, n) };
        break;
      }
      case "id":
        sd.cfg.syncid = sint(ctx, need(), "lvs_sync_daemon id", 0, 255) ?? sd.cfg.syncid;
        break;
      case "maxlen":
        sd.cfg.maxlen = sint(ctx, need(), "lvs_sync_daemon maxlen", 1, 65535 - 20 - 8) ?? sd.cfg.maxlen;
        break;
      case "port":
        sd.cfg.port = sint(ctx, need(), "lvs_sync_daemon port", 1, 65535) ?? sd.cfg.port;
        break;
      case "ttl":
        sd.cfg.ttl = sint(ctx, need(), "lvs_sync_daemon ttl", 1, 255) ?? sd.cfg.ttl;
        break;
      case "group": {
        const n = need();
        if (n === null) break;
        if (isIPv6(n)) {
          error(ctx, n, `${n.text}: IPv6 sync groups come with the IPv6 issue`);
          break;
        }
        const g = ip(ctx, n);
        if (g !== null && g >>> 28 !== 0xe) error(ctx, n, `lvs_sync_daemon group ${n.text} is not multicast`);
        else if (g !== null) sd.cfg.group = g;
        break;
      }
      default:
        // Backward compatibility (global_parser.c): `lvs_sync_daemon IF INSTANCE [SYNCID]`.
        if (i === 1) sd.instance = { name: t.text, pos: pos(ctx, t) };
        else if (i === 2 && /^\d+$/.test(t.text)) {
          warn(ctx, t, 'write "id" before the lvs_sync_daemon sync id');
          sd.cfg.syncid = sint(ctx, t, "lvs_sync_daemon id", 0, 255) ?? sd.cfg.syncid;
        } else error(ctx, t, `unknown lvs_sync_daemon option "${t.text}"`);
    }
  }
  d.lvsSyncDaemon = sd;
}

/** `global_defs { ... }`: router_id, the vrrp_* instance defaults and lvs_sync_daemon. */
export function parseGlobalDefs(ctx: Ctx, st: KaStatement, d: HaDraft): void {
  const g: HaGlobals = d.globals;
  for (const k of st.block ?? []) {
    const kw = k.keyword.text;
    if (GLOBAL_SILENT.has(kw)) continue;
    if (kw in GLOBAL_WARN) {
      warn(ctx, k.keyword, `${kw} in global_defs: ${GLOBAL_WARN[kw]} (ignored)`);
      continue;
    }
    switch (kw) {
      case "router_id":
        d.routerId = arg(ctx, k, 0, "name")?.text ?? d.routerId;
        break;
      case "vrrp_version": {
        const v = int(ctx, k, 2, 3);
        if (v !== null) g.version = v as 2 | 3;
        break;
      }
      case "vrrp_garp_master_delay": {
        const v = int(ctx, k, 0, 4294);
        if (v !== null) g.garpMasterDelayMs = v * 1000;
        break;
      }
      case "vrrp_garp_master_repeat":
        g.garpMasterRepeat = repeat(ctx, k) ?? g.garpMasterRepeat;
        break;
      case "vrrp_garp_master_refresh": {
        const v = int(ctx, k, 0, 4294967);
        if (v !== null) g.garpMasterRefreshMs = v * 1000;
        break;
      }
      case "vrrp_garp_master_refresh_repeat":
        g.garpMasterRefreshRepeat = repeat(ctx, k) ?? g.garpMasterRefreshRepeat;
        break;
      case "vrrp_garp_lower_prio_delay": {
        const v = int(ctx, k, 0, 4294);
        if (v !== null) g.garpLowerPrioDelayMs = v * 1000;
        break;
      }
      case "vrrp_garp_lower_prio_repeat":
        g.garpLowerPrioRepeat = int(ctx, k, 0, 2147483647) ?? g.garpLowerPrioRepeat;
        break;
      case "vrrp_down_timer_adverts":
        g.downTimerAdverts = int(ctx, k, 1, 100) ?? g.downTimerAdverts;
        break;
      case "vrrp_lower_prio_no_advert":
        g.lowerPrioNoAdvert = flag(ctx, k);
        break;
      case "vrrp_higher_prio_send_advert":
        g.higherPrioSendAdvert = flag(ctx, k);
        break;
      case "v3_checksum_as_v2":
        g.v3ChecksumAsV2 = flag(ctx, k);
        break;
      case "vrrp_mcast_group4": {
        const v = ip(ctx, arg(ctx, k, 0, "address"));
        if (v !== null && v >>> 28 !== 0xe)
          error(ctx, k.args[0], "vrrp_mcast_group4 must be a multicast address");
        else if (v !== null) g.mcastDst = v;
        break;
      }
      case "vrrp_mcast_group6": {
        const a = arg(ctx, k, 0, "address");
        if (a === null) break;
        const b = parseIPv6(a.text);
        if (b === null) error(ctx, a, `vrrp_mcast_group6 [${a.text}] is not IPv6`);
        else if (b[0] !== 0xff) error(ctx, a, `vrrp_mcast_group6 [${a.text}] is not multicast`);
        else {
          if (!isLinkLocalMulticast6(a.text))
            warn(ctx, a, `vrrp_mcast_group6 [${a.text}] should be link-local multicast`);
          g.mcastDst6 = formatIPv6(b);
        }
        break;
      }
      case "vrrp_garp_interval":
      case "vrrp_gna_interval": {
        // Seconds with up to 6 decimals (read_decimal_unsigned_strvec, TIMER_HZ_DIGITS), at least 1 µs.
        const v = num(ctx, k, 0.000001, 4294.967295);
        if (v === null) break;
        if (v >= 1) warn(ctx, k.keyword, `The ${kw} is very large - ${k.args[0]?.text} seconds`);
        if (kw === "vrrp_garp_interval") d.garpIntervalMs = v * 1000;
        else d.gnaIntervalMs = v * 1000;
        break;
      }
      case "lvs_sync_daemon":
        parseLvsSyncDaemon(ctx, k, d);
        break;
      default:
        unknown(ctx, k, "global_defs");
    }
  }
}

/** After every section is read: the deprecated per-instance sync interface, if no global one. */
export function finishKeepalivedHa(ctx: Ctx, d: HaDraft): void {
  for (const inst of d.instances) {
    const sd = lvsSyncIfaces.get(inst);
    if (sd === undefined) continue;
    if (d.lvsSyncDaemon !== null) {
      ctx.warnings.push({ ...sd.pos, message: "lvs_sync_daemon is already given (ignored, as keepalived)" });
      continue;
    }
    d.lvsSyncDaemon = {
      cfg: { iface: sd.name, syncid: null, maxlen: null, port: null, ttl: null, group: null },
      instance: { name: inst.name, pos: inst.pos },
      pos: sd.pos,
    };
  }
}
