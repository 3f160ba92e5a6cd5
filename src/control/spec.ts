// Services and destinations as a user describes them, turned into the specs the control core
// takes, with the rules ipvsadm applies before it calls libipvs (ipvsadm.c process_options): the
// default scheduler, "Zero port specified for non-persistent service", one-packet scheduling for
// UDP only, and DR/TUN destinations taking the service port. The ipvsadm parser and the
// configuration files both build through here, so a rule means the same whichever way it came.
//
// Addresses come as text of either family (or an IPv4 u32) and leave in the control plane's form
// (docs/dev-notes.md "IPv6 design"): IPv4 in `addr`, IPv6 as inet_ntop's text in `addr6` with
// `addr` 0. An IPv6 service's persistence granularity is a prefix length, 128 unless given (as
// ipvsadm's parse_service and keepalived's ipvswrapper.c set it).

import { canonicalIPv6, parseIPv4 } from "../core/addr.js";
import type { DestSpec, ServiceKey, ServiceSpec } from "../core/ctl-types.js";
import { Fwd, TunType } from "../core/dest.js";
import { TsvsError } from "../core/errors.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../core/packet/flow.js";
import { PP_DISABLE, ppName, ppRefusal, ppValue } from "../core/packet/proxy-proto.js";
import { SVC_F_ONEPACKET, SVC_F_PERSISTENT, SVC_F_SYNPROXY } from "../core/service.js";

export { IPPROTO_TCP, IPPROTO_UDP };
export const IPPROTO_SCTP = 132;

/** ipvsadm's DEF_SCHED. */
export const DEFAULT_SCHEDULER = "wlc";
/** ipvsadm's DEF_PERSISTENCE_TIMEOUT, seconds. */
export const DEFAULT_PERSISTENCE_TIMEOUT = 300;
const INT_MAX = 0x7fffffff;

/** A rule ipvsadm refuses before calling libipvs: its fail() message, exit status 2. */
export class SpecError extends TsvsError {
  constructor(message: string) {
    super("TSVS_ERR_USAGE", message);
    this.name = "SpecError";
  }
}

/** An address as the control plane carries it: IPv4 in `addr`, IPv6 as text in `addr6`. */
export interface InetFields {
  af: 4 | 6;
  /** IPv4 (host-order u32); 0 for IPv6. */
  addr: number;
  /** IPv6: inet_ntop's text; absent for IPv4. */
  addr6?: string;
}

/**
 * A dotted quad, or IPv6 in any form inet_pton takes (then canonicalised); null for anything
 * else. A ':' decides the family, as keepalived's inet_stosockaddr does.
 */
export function inetFields(text: string): InetFields | null {
  if (text.includes(":")) {
    const addr6 = canonicalIPv6(text);
    return addr6 === null ? null : { af: 6, addr: 0, addr6 };
  }
  const addr = parseIPv4(text);
  return addr === null ? null : { af: 4, addr };
}

/**
 * An endpoint as ipvsadm writes one: "ADDR", "ADDR:PORT", a bare IPv6 address, or "[IPv6]" with
 * ":PORT"; `port` null when none is given. Null for anything else (brackets round IPv4 too).
 */
export function inetEndpoint(text: string): { a: InetFields; port: number | null } | null {
  let host = text;
  let portText: string | undefined;
  const br = /^\[([^\]]*)\](?::(\d{1,5}))?$/.exec(text);
  if (br !== null) [, host, portText] = br;
  else if (text.indexOf(":") === text.lastIndexOf(":")) {
    const m = /^([^:]*)(?::(\d{1,5}))?$/.exec(text);
    if (m === null) return null;
    [, host, portText] = m;
  }
  const a = inetFields(host);
  const port = portText === undefined ? null : Number(portText);
  if (a === null || (br !== null && a.af !== 6) || (port !== null && port > 65535)) return null;
  return { a, port };
}

/** An address given as text or as an IPv4 u32; null when the text is not an address. */
function fieldsOf(a: number | string): InetFields | null {
  return typeof a === "number" ? { af: 4, addr: a >>> 0 } : inetFields(a);
}

export function serviceKeyOf(s: ServiceKey): ServiceKey {
  if (s.fwmark !== 0) return { af: s.af, protocol: 0, addr: 0, port: 0, fwmark: s.fwmark };
  const k: ServiceKey = { af: s.af, protocol: s.protocol, addr: s.addr >>> 0, port: s.port, fwmark: 0 };
  if (s.addr6 !== undefined) k.addr6 = s.addr6;
  return k;
}

/** The longest IPv6 persistence granularity: one client address (ipvsadm's -M for -6). */
export const IPV6_FULL_PREFIX = 128;

export interface ServiceDesc {
  protocol: number;
  /** IPv4 as a host-order u32, or the VIP as text of either family. */
  addr: number | string;
  port: number;
  /** Non-zero: a firewall-mark service (protocol, addr and port are then 0). */
  fwmark?: number;
  /** A fwmark service's family (ipvsadm -f MARK -6), default 4; an address service has its VIP's. */
  af?: 4 | 6;
  /** "" or absent: ipvsadm's default (wlc). */
  scheduler?: string;
  /** Seconds; 0 or absent: not persistent. */
  persistence?: number;
  /**
   * Persistence granularity: IPv4 a host-order u32 mask (default 255.255.255.255), IPv6 a prefix
   * length 1..128 (default 128).
   */
  netmask?: number;
  onePacket?: boolean;
  /** SVC_F_SCHED1..3. */
  schedFlags?: number;
  peName?: string;
  /** DPVS's --proxy-protocol (packet/proxy-proto.ts PP_NAMES); absent: disable. */
  proxyProtocol?: string;
  /** DPVS's --synproxy: the director answers the handshake with SYN cookies (TCP, NAT and FULLNAT). */
  synproxy?: boolean;
}

/** The checks ipvsadm makes on -A/-E; fills the default scheduler in. Throws SpecError. */
export function checkService(svc: ServiceSpec): ServiceSpec {
  if (svc.fwmark === 0 && svc.port === 0 && (svc.flags & SVC_F_PERSISTENT) === 0)
    throw new SpecError("Zero port specified for non-persistent service");
  if ((svc.flags & SVC_F_ONEPACKET) !== 0 && svc.fwmark === 0 && svc.protocol !== IPPROTO_UDP)
    throw new SpecError("One-Packet Scheduling is only for UDP virtual services");
  if (svc.schedName === "") svc.schedName = DEFAULT_SCHEDULER;
  return svc;
}

export function serviceSpec(d: ServiceDesc): ServiceSpec {
  const fwmark = d.fwmark ?? 0;
  const vip: InetFields | null = fwmark !== 0 ? { af: d.af ?? 4, addr: 0 } : fieldsOf(d.addr);
  if (vip === null || (fwmark === 0 && (d.port < 0 || d.port > 65535 || !Number.isInteger(d.port))))
    throw new SpecError("illegal virtual server address[:port] specified");
  if (d.af !== undefined && d.af !== vip.af) throw new SpecError(`the address ${d.addr} is not IPv${d.af}`);
  let netmask = 0xffffffff;
  if (vip.af === 6) {
    netmask = d.netmask ?? IPV6_FULL_PREFIX;
    if (!Number.isInteger(netmask) || netmask < 1 || netmask > IPV6_FULL_PREFIX)
      throw new SpecError("illegal ipv6 netmask specified");
  } else if (d.netmask !== undefined) netmask = d.netmask >>> 0;
  let flags = d.schedFlags ?? 0;
  const persistence = d.persistence ?? 0;
  if (persistence > 0) flags |= SVC_F_PERSISTENT;
  if (d.onePacket) flags |= SVC_F_ONEPACKET;
  if (d.synproxy === true) flags |= SVC_F_SYNPROXY;
  const svc: ServiceSpec = {
    af: vip.af,
    protocol: fwmark !== 0 ? 0 : d.protocol,
    addr: vip.addr,
    port: fwmark !== 0 ? 0 : d.port,
    fwmark,
    schedName: (d.scheduler ?? "").slice(0, 15),
    flags,
    timeout: persistence,
    netmask,
    peName: d.peName ?? "",
  };
  if (vip.addr6 !== undefined) svc.addr6 = vip.addr6;
  if (d.proxyProtocol !== undefined) {
    const why = ppRefusal(d.proxyProtocol, svc.protocol, fwmark);
    if (why !== null) throw new SpecError(why);
    if (ppValue(d.proxyProtocol) !== PP_DISABLE) svc.proxyProtocol = ppName(ppValue(d.proxyProtocol));
  }
  return checkService(svc);
}

export interface DestDesc {
  /**
   * IPv4 as a host-order u32, or text of either family. The family may differ from the service's
   * only for TUN (the kernel's rule, which the control core applies).
   */
  addr: number | string;
  /** 0 / absent: the service's port (as `-r ADDR` without a port). */
  port?: number;
  fwd: Fwd;
  weight?: number;
  uThreshold?: number;
  lThreshold?: number;
}

/** ipvsadm's rule for -a/-e: DR and TUN cannot map ports, the real server sees the service port. */
export function checkDest(key: ServiceKey, dest: DestSpec): DestSpec {
  if (key.fwmark === 0 && (dest.fwd === Fwd.Tunnel || dest.fwd === Fwd.Route)) dest.port = key.port;
  return dest;
}

export function destSpec(key: ServiceKey, d: DestDesc): DestSpec {
  const weight = d.weight ?? 1;
  if (!Number.isInteger(weight) || weight < 0 || weight > 65535)
    throw new SpecError("illegal weight specified");
  const u = d.uThreshold ?? 0;
  if (!Number.isInteger(u) || u < 0 || u > INT_MAX) throw new SpecError("illegal u_threshold specified");
  const l = d.lThreshold ?? 0;
  if (!Number.isInteger(l) || l < 0 || l > INT_MAX) throw new SpecError("illegal l_threshold specified");
  const port = d.port === undefined || d.port === 0 ? key.port : d.port;
  const rs = fieldsOf(d.addr);
  if (rs === null || port < 0 || port > 65535 || !Number.isInteger(port))
    throw new SpecError("illegal real server address[:port] specified");
  const dest: DestSpec = {
    af: rs.af,
    addr: rs.addr,
    port,
    fwd: d.fwd,
    weight,
    uThreshold: u,
    lThreshold: l,
    tunType: TunType.Ipip,
    tunPort: 0,
    tunFlags: 0,
  };
  if (rs.addr6 !== undefined) dest.addr6 = rs.addr6;
  return checkDest(key, dest);
}
