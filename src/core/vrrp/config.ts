// VRRP configuration as data: what a keepalived.conf `vrrp_instance`, `vrrp_sync_group`,
// `vrrp_script` and the `global_defs` keys that matter say, with keepalived's defaults applied by
// the parser (src/config). The state machine (instance.ts) and the daemon read only this.
// An instance is IPv4 or IPv6 (`family`, from its virtual_ipaddress or native_ipv6, as keepalived
// decides it): IPv4 addresses are u32, IPv6 ones text as formatIPv6 prints them (docs/ipv6.md's
// convention: `addr6` beside an `addr` of 0). virtual_ipaddress_excluded may mix the two.

export type VrrpStateName = "INIT" | "BACKUP" | "MASTER" | "FAULT" | "STOP";

/** keepalived's numbering (vrrp.h; keepalived-exporter's VRRPStates). */
export const VRRP_STATE_NUM: Readonly<Record<VrrpStateName, number>> = {
  INIT: 0,
  BACKUP: 1,
  MASTER: 2,
  FAULT: 3,
  STOP: 4,
};

export interface VrrpAddr {
  /** IPv4 (u32); 0 for an IPv6 address. */
  addr: number;
  /** 0..32, or 0..128 for an IPv6 address. */
  prefix: number;
  /** An IPv6 address (formatIPv6's text); absent for IPv4. */
  addr6?: string;
  /** `dev X`: the interface the address lives on; default the instance's interface. */
  dev?: string;
}

export interface VrrpTrack {
  /** Interface name (track_interface) or vrrp_script name (track_script). */
  name: string;
  /** -253..253; 0: a failure puts the instance in FAULT. */
  weight: number;
  /** `reverse`: the weight applies when the tracked thing is up (and FAULT when it is up, weight 0). */
  reverse: boolean;
}

export interface VrrpInstanceConfig {
  name: string;
  /** `interface`: where adverts go and the addresses live. */
  iface: string;
  vrid: number;
  /**
   * 6: VRRPv3 over IPv6 (RFC 5798 §5.1.2: next header 112 to ff02::12, hop limit 255, the
   * interface's link-local source), decided by the first virtual_ipaddress, unicast or multicast
   * address, or native_ipv6. IPv4 and IPv6 instances are separate virtual routers, even on one
   * VRID and interface.
   */
  family: 4 | 6;
  /** Configured (base) priority 1..255; 255 = address owner. */
  priority: number;
  version: 2 | 3;
  /** Advert interval, ms (v2: whole seconds; v3: 10 ms steps, 10..40950). */
  advertIntMs: number;
  /** `state MASTER|BACKUP`: the initial state wanted. */
  initialState: "MASTER" | "BACKUP";
  nopreempt: boolean;
  /** preempt_delay in ms (0..1000 s). */
  preemptDelayMs: number;
  /** PASS authentication (v2 only); null = none. Only the first 8 characters count. */
  authPass: string | null;
  /** `virtual_ipaddress`: carried in adverts, owned while MASTER. */
  addrs: VrrpAddr[];
  /** `virtual_ipaddress_excluded`: owned while MASTER, not in adverts. */
  excludedAddrs: VrrpAddr[];
  /** unicast_src_ip: the advert's source (default: the interface's primary address). */
  unicastSrc: number | null;
  /** unicast_peer: adverts go to each peer instead of 224.0.0.18. */
  unicastPeers: number[];
  /** mcast_dst_ip (default 224.0.0.18). */
  mcastDst: number;
  /** IPv6: unicast_src_ip (default: the interface's link-local address). */
  unicastSrc6: string | null;
  /** IPv6: unicast_peer addresses (text). */
  unicastPeers6: string[];
  /** IPv6: mcast_dst_ip, a link-local multicast group (default ff02::12, global vrrp_mcast_group6). */
  mcastDst6: string;
  /** v3_checksum_as_v2: v3 IPv4 checksum without the pseudo-header. */
  v3ChecksumAsV2: boolean;
  garpMasterDelayMs: number;
  garpMasterRepeat: number;
  /** 0 = off. */
  garpMasterRefreshMs: number;
  garpMasterRefreshRepeat: number;
  garpLowerPrioDelayMs: number;
  garpLowerPrioRepeat: number;
  downTimerAdverts: number;
  lowerPrioNoAdvert: boolean;
  higherPrioSendAdvert: boolean;
  /** use_vmac: adverts from 00:00:5e:00:01:VRID, and the addresses answered with it. */
  useVmac: boolean;
  trackInterfaces: VrrpTrack[];
  trackScripts: VrrpTrack[];
  notifyMaster: string | null;
  notifyBackup: string | null;
  notifyFault: string | null;
  notifyStop: string | null;
  notify: string | null;
  /**
   * notify_deleted: an instance a reload removes is announced as DELETED (its own script, when
   * given, and `notify`) rather than as FAULT, and even when it was in FAULT.
   */
  notifyDeleted: boolean;
  notifyDeletedScript: string | null;
}

export interface VrrpSyncGroupConfig {
  name: string;
  /** Instance names. */
  members: string[];
  trackInterfaces: VrrpTrack[];
  trackScripts: VrrpTrack[];
  notifyMaster: string | null;
  notifyBackup: string | null;
  notifyFault: string | null;
  notifyStop: string | null;
  notify: string | null;
}

export interface VrrpScriptConfig {
  name: string;
  script: string;
  intervalMs: number;
  timeoutMs: number;
  /** 0: failure = FAULT of the instances tracking it (unless they give their own weight). */
  weight: number;
  /** weight reverse */
  reverse: boolean;
  rise: number;
  fall: number;
  /** init_fail: starts failed. */
  initFail: boolean;
}

/** global_defs `lvs_sync_daemon IF [inst] INSTANCE [id N] [maxlen N] [port N] [ttl N] [group A]`. */
export interface LvsSyncDaemonConfig {
  iface: string;
  /** The VRRP instance whose state the sync daemon follows; null: both daemons run. */
  instance: string | null;
  /** Default: the instance's VRID (0 without an instance). */
  syncid: number;
  maxlen: number | null;
  port: number | null;
  ttl: number | null;
  group: number | null;
}

export interface HaConfig {
  routerId: string | null;
  instances: VrrpInstanceConfig[];
  syncGroups: VrrpSyncGroupConfig[];
  scripts: VrrpScriptConfig[];
  lvsSyncDaemon: LvsSyncDaemonConfig | null;
  /**
   * global_defs vrrp_garp_interval / vrrp_gna_interval (ms, fractions kept): the least time between
   * two gratuitous ARPs (unsolicited NAs) on one interface; 0 (the default) sends a burst at once.
   */
  garpIntervalMs?: number;
  gnaIntervalMs?: number;
}

export const VRRP_DEFAULTS = {
  priority: 100,
  ownerPriority: 255,
  version: 2 as 2 | 3,
  advertIntMs: 1000,
  mcastDst: 0xe0000012,
  /** INADDR6_VRRP_GROUP */
  mcastDst6: "ff02::12",
  garpMasterDelayMs: 5000,
  garpMasterRepeat: 5,
  garpMasterRefreshMs: 0,
  garpMasterRefreshRepeat: 1,
  downTimerAdverts: 3,
  scriptIntervalMs: 1000,
  scriptRise: 1,
  scriptFall: 1,
};

/** An instance config with every default, for tests and the YAML form. */
export function vrrpInstanceDefaults(
  o: Pick<VrrpInstanceConfig, "name" | "iface" | "vrid"> & Partial<VrrpInstanceConfig>,
): VrrpInstanceConfig {
  const initialState = o.initialState ?? "BACKUP";
  return {
    priority:
      initialState === "MASTER" && o.priority === undefined
        ? VRRP_DEFAULTS.ownerPriority
        : VRRP_DEFAULTS.priority,
    family: 4,
    // keepalived: an IPv6 instance is VRRPv3 whatever vrrp_version says.
    version: o.family === 6 ? 3 : VRRP_DEFAULTS.version,
    advertIntMs: VRRP_DEFAULTS.advertIntMs,
    initialState,
    nopreempt: false,
    preemptDelayMs: 0,
    authPass: null,
    addrs: [],
    excludedAddrs: [],
    unicastSrc: null,
    unicastPeers: [],
    mcastDst: VRRP_DEFAULTS.mcastDst,
    unicastSrc6: null,
    unicastPeers6: [],
    mcastDst6: VRRP_DEFAULTS.mcastDst6,
    v3ChecksumAsV2: false,
    garpMasterDelayMs: VRRP_DEFAULTS.garpMasterDelayMs,
    garpMasterRepeat: VRRP_DEFAULTS.garpMasterRepeat,
    garpMasterRefreshMs: VRRP_DEFAULTS.garpMasterRefreshMs,
    garpMasterRefreshRepeat: VRRP_DEFAULTS.garpMasterRefreshRepeat,
    garpLowerPrioDelayMs: o.garpMasterDelayMs ?? VRRP_DEFAULTS.garpMasterDelayMs,
    garpLowerPrioRepeat: o.garpMasterRepeat ?? VRRP_DEFAULTS.garpMasterRepeat,
    downTimerAdverts: VRRP_DEFAULTS.downTimerAdverts,
    lowerPrioNoAdvert: false,
    higherPrioSendAdvert: false,
    useVmac: false,
    trackInterfaces: [],
    trackScripts: [],
    notifyMaster: null,
    notifyBackup: null,
    notifyFault: null,
    notifyStop: null,
    notify: null,
    notifyDeleted: false,
    notifyDeletedScript: null,
    ...o,
  };
}
