import type { Dest } from "./dest.js";
import type { Scheduler } from "./sched/types.js";
import { Stats } from "./stats.js";

// svc->flags, as the kernel's IP_VS_SVC_F_*.
export const SVC_F_PERSISTENT = 0x0001;
export const SVC_F_HASHED = 0x0002;
export const SVC_F_ONEPACKET = 0x0004;
export const SVC_F_SCHED1 = 0x0008;
export const SVC_F_SCHED2 = 0x0010;
export const SVC_F_SCHED3 = 0x0020;
// Scheduler-specific names of the three scheduler flags.
export const SVC_F_SCHED_SH_FALLBACK = SVC_F_SCHED1;
export const SVC_F_SCHED_SH_PORT = SVC_F_SCHED2;
export const SVC_F_SCHED_MH_FALLBACK = SVC_F_SCHED1;
export const SVC_F_SCHED_MH_PORT = SVC_F_SCHED2;

export const DEFAULT_PERSISTENCE_TIMEOUT = 300;

/**
 * A virtual service: proto VIP:port, or a firewall mark. Control-plane object.
 * `dests` is kept in the kernel's svc->destinations list order: the kernel adds a new
 * destination with list_add_rcu at the head, so the newest destination comes first, and
 * schedulers that scan the list (rr, lc, wlc, ...) break ties in that order.
 */
export class Service {
  id = -1;
  af: 4 | 6 = 4;
  /** IPPROTO_TCP / IPPROTO_UDP; for fwmark services the protocol is 0 in listings. */
  protocol: number;
  /** IPv4: the VIP; IPv6: the fold of addr6 (ipv6Fold), as the kernel hashes an IPv6 VIP. */
  addr: number;
  /** IPv6: the VIP's four words (int32 bits); null for IPv4 and fwmark services. */
  addr6: Int32Array | null = null;
  port: number;
  fwmark: number;
  flags = 0;
  /** Persistence timeout in seconds (meaningful with SVC_F_PERSISTENT). */
  timeout = 0;
  /** Persistence granularity: IPv4 a netmask (host-order u32), IPv6 a prefix length (the kernel's). */
  netmask = 0xffffffff;
  sched!: Scheduler;
  schedData: unknown = undefined;
  /** Persistence engine name ("sip"), empty when none. */
  peName = "";
  dests: Dest[] = [];
  /**
   * FULLNAT local addresses of this service (`ipvsadm -P`), in the order added; empty = the
   * daemon's `--lip` pool. DPVS keeps one such list per service (svc->laddr_list).
   */
  laddrs: number[] = [];
  /** This worker's share of `laddrs` (int32 bits; see lip.ts), set by the engine on every change. */
  laddrShare: Int32Array = new Int32Array(0);
  /** Round-robin position in laddrShare (DPVS's svc->laddr_curr). */
  laddrCursor = 0;
  /**
   * IPv6 local addresses (inet_ntop text), in the order added, and their words (4 each) for the
   * data path. No share per worker: the fanout sends a service with IPv6 local addresses to the
   * first worker, which takes them all (docs/daemon.md "Several workers").
   */
  laddrs6: string[] = [];
  laddr6Words: Int32Array = new Int32Array(0);
  laddr6Cursor = 0;
  readonly stats = new Stats();

  constructor(protocol: number, addr: number, port: number, fwmark = 0) {
    this.protocol = protocol;
    this.addr = addr >>> 0;
    this.port = port;
    this.fwmark = fwmark;
  }

  get persistent(): boolean {
    return (this.flags & SVC_F_PERSISTENT) !== 0;
  }
}
