import type { Fwd, TunType } from "./dest.js";

// The user-facing shapes of the control API, as ipvsadm hands them to libipvs
// (struct ip_vs_service_user / ip_vs_dest_user). The ipvsadm parser produces them, the
// control core (ctl.ts) validates and applies them, and the daemon socket carries them as JSON.

/** Identifies a service: either proto+addr+port (fwmark 0) or a fwmark (protocol 0, addr 0, port 0). */
export interface ServiceKey {
  af: 4 | 6;
  protocol: number;
  addr: number;
  port: number;
  fwmark: number;
}

export interface ServiceSpec extends ServiceKey {
  schedName: string;
  /** SVC_F_* bits: PERSISTENT, ONEPACKET, SCHED1..3. */
  flags: number;
  /** Persistence timeout, seconds. */
  timeout: number;
  /** Persistence granularity (host-order u32 mask). */
  netmask: number;
  /** Persistence engine name, "" for none. */
  peName: string;
}

export interface DestSpec {
  af: 4 | 6;
  addr: number;
  port: number;
  fwd: Fwd;
  weight: number;
  uThreshold: number;
  lThreshold: number;
  tunType: TunType;
  tunPort: number;
  tunFlags: number;
}

/** `--set tcp tcpfin udp` in seconds; 0 keeps the current value. */
export interface TimeoutSpec {
  tcp: number;
  tcpFin: number;
  udp: number;
}

/** One atomic control change (one ipvsadm invocation). */
export type CtlCommand =
  | { op: "add-service"; svc: ServiceSpec }
  | { op: "edit-service"; svc: ServiceSpec }
  | { op: "del-service"; key: ServiceKey }
  | { op: "clear" }
  | { op: "zero"; key: ServiceKey | null }
  | { op: "add-dest"; key: ServiceKey; dest: DestSpec }
  | { op: "edit-dest"; key: ServiceKey; dest: DestSpec }
  | { op: "del-dest"; key: ServiceKey; addr: number; port: number }
  | { op: "set-timeout"; timeouts: TimeoutSpec }
  /** DPVS's `ipvsadm -P`: a FULLNAT local address for the service (host-order u32). */
  | { op: "add-laddr"; key: ServiceKey; addr: number }
  /** DPVS's `ipvsadm -Q`. */
  | { op: "del-laddr"; key: ServiceKey; addr: number };

/** One row of `ipvsadm -L -c` (ip_vs_conn_seq_show). */
export interface ConnView {
  protocol: number;
  /** Milliseconds until expiry. */
  expiresMs: number;
  /** State name as the kernel prints it (ESTABLISHED, SYN_RECV, NONE, ...; UDP and templates print their proto's state name). */
  state: string;
  caddr: number;
  cport: number;
  vaddr: number;
  vport: number;
  daddr: number;
  dport: number;
  /** FULLNAT local address/port, 0 otherwise (tsvs-only). */
  laddr: number;
  lport: number;
  template: boolean;
  fwmark: number;
}
