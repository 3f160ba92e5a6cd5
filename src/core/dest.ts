import type { Service } from "./service.js";
import { Stats } from "./stats.js";

// Forwarding methods: kernel's IP_VS_CONN_F_FWD_MASK values, FULLNAT is tsvs's own.
export const enum Fwd {
  Masq = 0,
  Local = 1,
  Tunnel = 2,
  Route = 3,
  Bypass = 4,
  FullNat = 5,
}

export const FWD_NAMES: Record<number, string> = {
  0: "Masq",
  1: "Local",
  2: "Tunnel",
  3: "Route",
  4: "Bypass",
  5: "FullNat",
};

// dest->flags, as the kernel's IP_VS_DEST_F_*.
export const DEST_F_AVAILABLE = 0x0001;
export const DEST_F_OVERLOAD = 0x0002;

export const enum TunType {
  Ipip = 0,
  Gue = 1,
  Gre = 2,
}

/**
 * A real server of one service. Control-plane object (mutated by ipvsadm commands and by
 * connection accounting), never allocated per packet.
 */
export class Dest {
  /** Index in the engine's destination registry; connections refer to it. */
  id = -1;
  af: 4 | 6 = 4;
  /** IPv4: the address; IPv6: the fold of addr6 (ipv6Fold), so that address hashes work alike. */
  addr: number;
  /** IPv6: the address's four words (int32 bits); null for IPv4. */
  addr6: Int32Array | null = null;
  port: number;
  fwd: Fwd = Fwd.Route;
  /** 0..65535; 0 = quiescent (no new connections, existing ones continue). */
  weight = 1;
  /** Previous weight, for schedulers that need it (wrr gcd/max, mh). */
  lastWeight = 0;
  uThreshold = 0;
  lThreshold = 0;
  flags = DEST_F_AVAILABLE;
  activeConns = 0;
  inactConns = 0;
  /** Persistence templates pointing at this destination. */
  persistConns = 0;
  tunType: TunType = TunType.Ipip;
  tunPort = 0;
  tunFlags = 0;
  svc: Service | null = null;
  /** The service it last belonged to: the trash revives it only for that service. */
  lastSvc: Service | null = null;
  readonly stats = new Stats();
  /** Scheduler-private per-destination data (e.g. twos, mh). */
  schedData: unknown = undefined;

  constructor(addr: number, port: number) {
    this.addr = addr >>> 0;
    this.port = port;
  }

  /** Total connections as the threshold check counts them. */
  get conns(): number {
    return this.activeConns + this.inactConns;
  }
}

/**
 * The kernel's ip_vs_dest_conn_overhead: active connections weigh 256 inactive ones.
 * (Kernel: (atomic_read(&dest->activeconns) << 8) + atomic_read(&dest->inactconns).)
 */
export function destOverhead(d: Dest): number {
  return d.activeConns * 256 + d.inactConns;
}
