import type { ConnLimitSpec } from "./conn-limit.js";
import type { Fwd, TunType } from "./dest.js";

// The user-facing shapes of the control API, as ipvsadm hands them to libipvs
// (struct ip_vs_service_user / ip_vs_dest_user). The ipvsadm parser produces them, the
// control core (ctl.ts) validates and applies them, and the daemon socket carries them as JSON.

/** Identifies a service: either proto+addr+port (fwmark 0) or a fwmark (protocol 0, addr 0, port 0). */
export interface ServiceKey {
  af: 4 | 6;
  protocol: number;
  /** IPv4 (host-order u32); 0 for IPv6 and fwmark services. */
  addr: number;
  /**
   * IPv6 (af 6, fwmark 0): the VIP as text, the form inet_ntop prints (canonicalIPv6); absent
   * for IPv4. The control plane's IPv6 form (docs/dev-notes.md "IPv6 design").
   */
  addr6?: string;
  port: number;
  fwmark: number;
}

export interface ServiceSpec extends ServiceKey {
  schedName: string;
  /** SVC_F_* bits: PERSISTENT, ONEPACKET, SCHED1..3. */
  flags: number;
  /** Persistence timeout, seconds. */
  timeout: number;
  /** Persistence granularity: IPv4 a host-order u32 mask, IPv6 a prefix length 1..128. */
  netmask: number;
  /** Persistence engine name, "" for none. */
  peName: string;
  /**
   * DPVS's --proxy-protocol: "v1", "v2" (or "v1-insecure", "v2-insecure": a client's own header is
   * kept) sends the client's address to FULLNAT real servers in a PROXY protocol header (TCP
   * only); absent or "disable": TOA.
   */
  proxyProtocol?: string;
}

export interface DestSpec {
  /** The service's family, or the other one for a TUN destination (the kernel's rule). */
  af: 4 | 6;
  /** IPv4 (host-order u32); 0 for IPv6. */
  addr: number;
  /** IPv6: the address as canonical text (see ServiceKey.addr6). */
  addr6?: string;
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
  | { op: "del-dest"; key: ServiceKey; addr: number; addr6?: string; port: number }
  | { op: "set-timeout"; timeouts: TimeoutSpec }
  /**
   * DPVS's `ipvsadm -P`: a FULLNAT local address for the service (host-order u32), or an IPv6 one
   * (addr6, inet_ntop text; addr 0) for an IPv6 service's IPv6 real servers.
   */
  | { op: "add-laddr"; key: ServiceKey; addr: number; addr6?: string }
  /** DPVS's `ipvsadm -Q`. */
  | { op: "del-laddr"; key: ServiceKey; addr: number; addr6?: string }
  /**
   * DPVS's `ipvsadm -U/-V` (list "deny", its blacklist) and `-O/-Y` (list "allow", its whitelist):
   * a source address or prefix ("ADDR" or "ADDR/LEN", acl.ts parseAclPrefix).
   */
  | { op: "add-acl"; key: ServiceKey; list: "deny" | "allow"; rule: string }
  | { op: "del-acl"; key: ServiceKey; list: "deny" | "allow"; rule: string }
  /** tsvs's per-source new-connection rate limit of a service (conn-limit.ts); rate 0 = off. */
  | { op: "set-conn-limit"; key: ServiceKey; limit: ConnLimitSpec };

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
  /**
   * IPv6 ends as inet_ntop text (the numeric field then holds the kernel's addr_fold): the client
   * and virtual side, and the destination and local side (NAT64 FULLNAT has IPv6 before the
   * director and IPv4 after it). Absent for IPv4.
   */
  caddr6?: string;
  vaddr6?: string;
  daddr6?: string;
  laddr6?: string;
}
