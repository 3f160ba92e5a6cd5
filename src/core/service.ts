import type { ServiceAcl } from "./acl.js";
import type { ConnLimiter } from "./conn-limit.js";
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
/**
 * tsvs: DPVS's IP_VS_SVC_F_SYNPROXY (ipvsadm --synproxy): the director answers the handshake with
 * SYN cookies (synproxy.ts). DPVS's value (0x0008) is the kernel's SCHED1 here: a bit of its own.
 */
export const SVC_F_SYNPROXY = 0x10000;
// Scheduler-specific names of the three scheduler flags.
export const SVC_F_SCHED_SH_FALLBACK = SVC_F_SCHED1;
export const SVC_F_SCHED_SH_PORT = SVC_F_SCHED2;
export const SVC_F_SCHED_MH_FALLBACK = SVC_F_SCHED1;
export const SVC_F_SCHED_MH_PORT = SVC_F_SCHED2;
/** The three scheduler flags (SCHED1..3) as ipvsadm and keepalived name them for a scheduler. */
export function schedFlagNames(sched: string): readonly [string, string, string] {
  if (sched === "sh") return ["sh-fallback", "sh-port", "flag-3"];
  if (sched === "mh") return ["mh-fallback", "mh-port", "flag-3"];
  return ["flag-1", "flag-2", "flag-3"];
}
/** ipvsadm -b's flag names (keepalived's keywords of the same names) and the bit each sets. */
export const SCHED_FLAG_BITS: Readonly<Record<string, number>> = {
  "flag-1": SVC_F_SCHED1,
  "flag-2": SVC_F_SCHED2,
  "flag-3": SVC_F_SCHED3,
  "sh-fallback": SVC_F_SCHED_SH_FALLBACK,
  "sh-port": SVC_F_SCHED_SH_PORT,
  "mh-fallback": SVC_F_SCHED_MH_FALLBACK,
  "mh-port": SVC_F_SCHED_MH_PORT,
};
/** SVC_F_SCHED1..3, in the order of schedFlagNames. */
export const SVC_F_SCHED_BITS: readonly number[] = [SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3];

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
  /** IPv6 local addresses (inet_ntop text), in the order added. */
  laddrs6: string[] = [];
  /** This worker's share of `laddrs6` as words (4 each; lip.ts), set by the engine on every change. */
  laddr6Share: Int32Array = new Int32Array(0);
  laddr6Cursor = 0;
  /**
   * DPVS's svc->proxy_protocol (packet/proxy-proto.ts PP_*): FULLNAT destinations get the client's
   * address in a PROXY protocol header instead of TOA; 0 = disable.
   */
  proxyProtocol = 0;
  /** DPVS's blacklist/whitelist, with prefixes (acl.ts); null = no rule. */
  acl: ServiceAcl | null = null;
  /** Per-source new-connection rate limit (conn-limit.ts); null = off (the default). */
  connLimit: ConnLimiter | null = null;
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
