// Services and destinations as a user describes them, turned into the specs the control core
// takes, with the rules ipvsadm applies before it calls libipvs (ipvsadm.c process_options): the
// default scheduler, "Zero port specified for non-persistent service", one-packet scheduling for
// UDP only, and DR/TUN destinations taking the service port. The ipvsadm parser and the
// configuration files both build through here, so a rule means the same whichever way it came.

import type { DestSpec, ServiceKey, ServiceSpec } from "../core/ctl-types.js";
import { Fwd, TunType } from "../core/dest.js";
import { TsvsError } from "../core/errors.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../core/packet/flow.js";
import { SVC_F_ONEPACKET, SVC_F_PERSISTENT } from "../core/service.js";

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

export function serviceKeyOf(s: ServiceKey): ServiceKey {
  return s.fwmark !== 0
    ? { af: s.af, protocol: 0, addr: 0, port: 0, fwmark: s.fwmark }
    : { af: s.af, protocol: s.protocol, addr: s.addr >>> 0, port: s.port, fwmark: 0 };
}

export interface ServiceDesc {
  protocol: number;
  addr: number;
  port: number;
  /** Non-zero: a firewall-mark service (protocol, addr and port are then 0). */
  fwmark?: number;
  /** "" or absent: ipvsadm's default (wlc). */
  scheduler?: string;
  /** Seconds; 0 or absent: not persistent. */
  persistence?: number;
  /** Persistence granularity, host-order u32 (default 255.255.255.255). */
  netmask?: number;
  onePacket?: boolean;
  /** SVC_F_SCHED1..3. */
  schedFlags?: number;
  peName?: string;
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
  if (fwmark === 0 && (d.port < 0 || d.port > 65535 || !Number.isInteger(d.port)))
    throw new SpecError("illegal virtual server address[:port] specified");
  let flags = d.schedFlags ?? 0;
  const persistence = d.persistence ?? 0;
  if (persistence > 0) flags |= SVC_F_PERSISTENT;
  if (d.onePacket) flags |= SVC_F_ONEPACKET;
  return checkService({
    af: 4,
    protocol: fwmark !== 0 ? 0 : d.protocol,
    addr: fwmark !== 0 ? 0 : d.addr >>> 0,
    port: fwmark !== 0 ? 0 : d.port,
    fwmark,
    schedName: (d.scheduler ?? "").slice(0, 15),
    flags,
    timeout: persistence,
    netmask: (d.netmask ?? 0xffffffff) >>> 0,
    peName: d.peName ?? "",
  });
}

export interface DestDesc {
  addr: number;
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
  if (port < 0 || port > 65535 || !Number.isInteger(port))
    throw new SpecError("illegal real server address[:port] specified");
  return checkDest(key, {
    af: 4,
    addr: d.addr >>> 0,
    port,
    fwd: d.fwd,
    weight,
    uThreshold: u,
    lThreshold: l,
    tunType: TunType.Ipip,
    tunPort: 0,
    tunFlags: 0,
  });
}
