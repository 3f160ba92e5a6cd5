// IPVS connection synchronisation as data (net/netfilter/ipvs/ip_vs_sync.c): a synced connection,
// a sync daemon's settings as `ipvsadm --start-daemon` gives them, and the sync sysctls with the
// kernel's defaults (Documentation/networking/ipvs-sysctl.rst). Addresses are u32 (IPv4); an
// IPv6 entry (struct ip_vs_sync_v6) has its words in a6 and their folds where the u32s would be,
// as the connection table keeps them.

/** One connection (or persistence template) as the sync protocol carries it. */
export interface SyncConn {
  /** 6: the kernel's cp->af is AF_INET6 (the client side is IPv6). */
  af: 4 | 6;
  /**
   * The real server's family (the kernel's cp->daf): af, except for tsvs's NAT64 entries (an IPv6
   * client side, an IPv4 real server and local address), which codec.ts carries in its own way.
   */
  daf: 4 | 6;
  proto: number;
  caddr: number;
  cport: number;
  vaddr: number;
  vport: number;
  daddr: number;
  dport: number;
  /** IP_VS_CONN_F_* (cp->flags & ~HASHED); tsvs's FULLNAT is FWD 5 and TOA_SENT 0x8000. */
  flags: number;
  /** IP_VS_TCP_S_* number (UDP: 0), or the template state. */
  state: number;
  fwmark: number;
  /** Seconds (v1); v0 carries none (null: the backup uses the protocol's table). */
  timeoutS: number | null;
  /**
   * FULLNAT: the local address and port the connection left from (tsvs option); 0 when none. An
   * IPv6 local address has its words in a6 (SA6_LADDR) and its fold here.
   */
  laddr: number;
  lport: number;
  /**
   * FULLNAT with the PROXY protocol: the connection's sequence state (conn/table.ts ppIsnOf,
   * ppWordOf), carried in tsvs's option; pp false when the connection has none.
   */
  pp: boolean;
  ppIsn: number;
  ppWord: number;
  /**
   * A SYN-proxy connection whose handshake with its real server is done: the translation every
   * later packet needs (synproxy.ts syncState: seq delta, TSval delta, option bits), carried in
   * tsvs's option; sp false when the connection has none.
   */
  sp: boolean;
  spSeqd: number;
  spTsd: number;
  spOpt: number;
  /**
   * af 6: the words (addr.ts ipv6ToWords) of caddr (0..3), vaddr (4..7), daddr (8..11, when daf
   * is 6) and an IPv6 FULLNAT laddr (12..15); the u32 fields then hold their folds (ipv6Fold).
   * Unread for af 4.
   */
  a6: Int32Array;
}

/** Word offsets of the three addresses in SyncConn.a6. */
export const SA6_CADDR = 0;
export const SA6_VADDR = 4;
export const SA6_DADDR = 8;
export const SA6_LADDR = 12;

export type SyncRole = "master" | "backup";

/** One sync daemon (`ipvsadm --start-daemon ROLE ...`, struct ip_vs_daemon_user). */
export interface SyncDaemonConfig {
  role: SyncRole;
  /** --mcast-interface (ipvsadm's default "eth0"). */
  iface: string;
  /** --syncid 0..255; 0 on a backup accepts every syncid. */
  syncid: number;
  /** --sync-maxlen: the largest message, UDP payload bytes. */
  maxlen: number;
  /** --mcast-group (u32). */
  group: number;
  /** --mcast-port. */
  port: number;
  /** --mcast-ttl. */
  ttl: number;
}

export const SYNC_DEFAULTS = {
  iface: "eth0",
  syncid: 0,
  /** mtu 1500 − IPv4 (20) − UDP (8): start_sync_thread's default. */
  maxlen: 1472,
  group: 0xe0000051,
  port: 8848,
  ttl: 1,
};

/** The sync sysctls (/proc/sys/net/ipv4/vs/sync_*), the kernel's defaults. */
export interface SyncSysctls {
  /** sync_threshold's first value: sync when a connection's packet count reaches it. */
  syncThreshold: number;
  /** sync_threshold's second value (sync_period): and every this many packets after; 0 = once. */
  syncPeriod: number;
  /** Seconds; 0 = off. */
  syncRefreshPeriod: number;
  /** 0..3 */
  syncRetries: number;
  /** 0 or 1: the message format the master sends. */
  syncVersion: number;
  /** 1: only templates of persistent services are synced. */
  syncPersistMode: number;
  /**
   * tsvs (core/sync/refresh.ts): the master re-sends its whole table when a peer joins. 0 off, 1
   * when master and backup run together (active-active), 2 also with a master alone.
   */
  syncTableRefresh: number;
  /** tsvs: the refresh's bound, messages per second per worker. */
  syncTableRate: number;
}

export const SYNC_SYSCTL_DEFAULTS: SyncSysctls = {
  syncThreshold: 3,
  syncPeriod: 50,
  syncRefreshPeriod: 0,
  syncRetries: 0,
  syncVersion: 1,
  syncPersistMode: 0,
  syncTableRefresh: 1,
  syncTableRate: 4000,
};
