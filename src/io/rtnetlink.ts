// Route netlink (rtnetlink, rtnetlink(7)): the kernel's notifications of link, address and route
// changes (IPv4 and IPv6), so that the daemon follows a host whose interfaces, addresses and routes
// change at run time (DHCP, SLAAC, a link going down, VRRP moving a VIP).
//
// Two parts:
//   decodeRtnl()  a pure codec over one received datagram: nlmsghdr, then per type ifinfomsg,
//                 ifaddrmsg or rtmsg and their attributes (include/uapi/linux/netlink.h,
//                 rtnetlink.h, if_link.h, if_addr.h). It never throws: a message whose lengths do
//                 not add up is counted as malformed and skipped; a header that cannot be trusted
//                 ends the datagram (the next message's position depends on it).
//   RtnlSocket    a NETLINK_ROUTE socket bound to RTMGRP_LINK and the address and route groups
//                 of both families (RTMGRP_IPV4_IFADDR, _ROUTE, RTMGRP_IPV6_IFADDR, _ROUTE), non-blocking; read() drains what is queued. The kernel drops
//                 notifications when the receive buffer is full and reports it once as ENOBUFS
//                 (netlink_overrun): read() says so (`lost`), and the caller re-reads the whole
//                 state, which it does after any event anyway.
//
// Layouts: host byte order for the header and struct fields (netlink is a local protocol), network
// order for the addresses in IFA_*/RTA_* attributes; attributes are 4-byte aligned (NLA_ALIGNTO).

import { formatIPv6 } from "../core/addr.js";
import { addressOf, libc, MSG_DONTWAIT, type NativePtr, SOL_SOCKET, SyscallError } from "./libc.js";

export const AF_NETLINK = 16;
export const NETLINK_ROUTE = 0;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const EAGAIN = 11;
const EINTR = 4;
const ENOBUFS = 105;
const MSG_TRUNC = 0x20;

/** Multicast group bits of sockaddr_nl.nl_groups (1 << (RTNLGRP_x - 1)). */
export const RTMGRP_LINK = 0x1;
export const RTMGRP_IPV4_IFADDR = 0x10;
export const RTMGRP_IPV4_ROUTE = 0x40;
export const RTMGRP_IPV6_IFADDR = 0x100;
export const RTMGRP_IPV6_ROUTE = 0x400;

// nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid }
export const NLMSG_HDRLEN = 16;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;

// ifinfomsg { u8 family; u8 pad; u16 type (ARPHRD_*); s32 index; u32 flags (IFF_*); u32 change }
export const IFINFOMSG_LEN = 16;
export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_OPERSTATE = 16;
export const IFF_UP = 0x1;
export const IFF_LOOPBACK = 0x8;
export const IFF_RUNNING = 0x40;
export const IFF_LOWER_UP = 0x10000;
export const ARPHRD_ETHER = 1;
/** RFC 2863 operational states, as IFLA_OPERSTATE carries them (IF_OPER_*). */
export const OPERSTATES = ["UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"];

// ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index }
export const IFADDRMSG_LEN = 8;
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;

// rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags }
export const RTMSG_LEN = 12;
export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PREFSRC = 7;
export const RTA_TABLE = 15;
export const RT_TABLE_MAIN = 254;
export const RT_TABLE_LOCAL = 255;
export const RTN_UNICAST = 1;
export const RTN_LOCAL = 2;

export const AF_INET = 2;
export const AF_INET6 = 10;

export interface LinkEvent {
  kind: "link";
  op: "new" | "del";
  ifindex: number;
  /** ARPHRD_* (1 = Ethernet). */
  type: number;
  /** IFF_* flags. */
  flags: number;
  name: string | null;
  mtu: number | null;
  /** Link-layer address as "aa:bb:…", null when absent. */
  mac: string | null;
  /** OPERSTATES name, null when absent. */
  operstate: string | null;
}

export interface AddrEvent {
  kind: "addr";
  op: "new" | "del";
  ifindex: number;
  prefix: number;
  /** IFA_LOCAL (the interface's own address), else IFA_ADDRESS; as a u32. null when neither, or IPv6. */
  addr: number | null;
  /** IPv6 only: the address (IFA_LOCAL, else IFA_ADDRESS) as inet_ntop prints it, null when absent. */
  addr6?: string | null;
}

export interface RouteEvent {
  kind: "route";
  op: "new" | "del";
  /** RTA_TABLE when present (ids above 255), else rtm_table. */
  table: number;
  /** RTN_* (1 unicast, 2 local, …). */
  type: number;
  dst: number;
  prefix: number;
  /** 0 when the route has no gateway (connected). */
  gateway: number;
  /** 0 when absent (multipath routes carry their hops in RTA_MULTIPATH). */
  oif: number;
  prefsrc: number;
  /**
   * IPv6 only (dst, gateway and prefsrc are then 0): the destination ("::" for a default route),
   * the gateway and the preferred source as text; gateway6/prefsrc6 null when absent.
   */
  dst6?: string;
  gateway6?: string | null;
  prefsrc6?: string | null;
}

export type RtnlEvent = LinkEvent | AddrEvent | RouteEvent;

export interface RtnlDecoded {
  events: RtnlEvent[];
  /** Messages whose lengths did not add up (skipped), plus a trailing piece too short for a header. */
  malformed: number;
  /** Well-formed messages of no interest: other families, other types, NOOP/DONE/ERROR. */
  ignored: number;
  /** NLMSG_OVERRUN seen: notifications were lost, the whole state must be read again. */
  overrun: boolean;
}

const NLA_ALIGN = (n: number): number => (n + 3) & ~3;

/**
 * One datagram's messages (buf[0, len)). Never throws. A message is decoded only when its fixed
 * struct and every attribute header fit inside its nlmsg_len; otherwise it is counted as malformed.
 * A header whose nlmsg_len is below 16 or past the end stops the walk (counted once).
 */
export function decodeRtnl(buf: Uint8Array, len: number): RtnlDecoded {
  const out: RtnlDecoded = { events: [], malformed: 0, ignored: 0, overrun: false };
  const end = Math.min(len, buf.length);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off < end) {
    if (end - off < NLMSG_HDRLEN) {
      out.malformed++;
      break;
    }
    const mlen = dv.getUint32(off, true);
    const type = dv.getUint16(off + 4, true);
    if (mlen < NLMSG_HDRLEN || mlen > end - off) {
      out.malformed++;
      break;
    }
    const body = off + NLMSG_HDRLEN;
    const bodyEnd = off + mlen;
    let ev: RtnlEvent | null | undefined;
    switch (type) {
      case RTM_NEWLINK:
      case RTM_DELLINK:
        ev = decodeLink(dv, body, bodyEnd, type === RTM_NEWLINK ? "new" : "del");
        break;
      case RTM_NEWADDR:
      case RTM_DELADDR:
        ev = decodeAddr(dv, body, bodyEnd, type === RTM_NEWADDR ? "new" : "del");
        break;
      case RTM_NEWROUTE:
      case RTM_DELROUTE:
        ev = decodeRoute(dv, body, bodyEnd, type === RTM_NEWROUTE ? "new" : "del");
        break;
      case NLMSG_OVERRUN:
        out.overrun = true;
        ev = null;
        break;
      default:
        ev = null;
    }
    if (ev === undefined) out.malformed++;
    else if (ev === null) out.ignored++;
    else out.events.push(ev);
    off += NLA_ALIGN(mlen);
  }
  return out;
}

/**
 * Calls `each(type, start, length)` for every attribute in [off, end); false when an attribute's
 * length is below its 4-byte header or runs past `end` (the message is then malformed).
 */
function walkAttrs(
  dv: DataView,
  off: number,
  end: number,
  each: (type: number, start: number, length: number) => boolean,
): boolean {
  while (off < end) {
    if (end - off < 4) return false;
    const alen = dv.getUint16(off, true);
    // NLA_TYPE_MASK: the top two bits are NLA_F_NESTED / NLA_F_NET_BYTEORDER.
    const atype = dv.getUint16(off + 2, true) & 0x3fff;
    if (alen < 4 || alen > end - off) return false;
    if (!each(atype, off + 4, alen - 4)) return false;
    off += NLA_ALIGN(alen);
  }
  return true;
}

function be32(dv: DataView, off: number): number {
  return dv.getUint32(off, false);
}

/** undefined = malformed. */
function decodeLink(dv: DataView, off: number, end: number, op: "new" | "del"): LinkEvent | undefined {
  if (end - off < IFINFOMSG_LEN) return undefined;
  const ev: LinkEvent = {
    kind: "link",
    op,
    type: dv.getUint16(off + 2, true),
    ifindex: dv.getInt32(off + 4, true),
    flags: dv.getUint32(off + 8, true),
    name: null,
    mtu: null,
    mac: null,
    operstate: null,
  };
  const ok = walkAttrs(dv, off + IFINFOMSG_LEN, end, (t, s, n) => {
    switch (t) {
      case IFLA_IFNAME: {
        // NUL-terminated, at most IFNAMSIZ (16) with the NUL.
        if (n < 1 || n > 16) return false;
        let name = "";
        for (let i = 0; i < n; i++) {
          const c = dv.getUint8(s + i);
          if (c === 0) break;
          name += String.fromCharCode(c);
        }
        if (name === "") return false;
        ev.name = name;
        return true;
      }
      case IFLA_MTU:
        if (n !== 4) return false;
        ev.mtu = dv.getUint32(s, true);
        return true;
      case IFLA_ADDRESS: {
        if (n < 1 || n > 32) return false;
        const bytes: string[] = [];
        for (let i = 0; i < n; i++)
          bytes.push(
            dv
              .getUint8(s + i)
              .toString(16)
              .padStart(2, "0"),
          );
        ev.mac = bytes.join(":");
        return true;
      }
      case IFLA_OPERSTATE: {
        if (n !== 1) return false;
        const v = dv.getUint8(s);
        ev.operstate = OPERSTATES[v] ?? `STATE_${v}`;
        return true;
      }
      default:
        return true;
    }
  });
  return ok && ev.ifindex > 0 ? ev : undefined;
}

/** The attribute at s (n bytes) as an address of the family: a u32, or IPv6 text; undefined when its length is wrong. */
function addrAttr(dv: DataView, s: number, n: number, family: number): number | string | undefined {
  if (family === AF_INET) return n === 4 ? be32(dv, s) : undefined;
  if (n !== 16) return undefined;
  return formatIPv6(new Uint8Array(dv.buffer, dv.byteOffset + s, 16));
}

/** undefined = malformed, null = neither IPv4 nor IPv6. */
function decodeAddr(dv: DataView, off: number, end: number, op: "new" | "del"): AddrEvent | null | undefined {
  if (end - off < IFADDRMSG_LEN) return undefined;
  const family = dv.getUint8(off);
  const prefix = dv.getUint8(off + 1);
  const ifindex = dv.getUint32(off + 4, true);
  let local: number | string | null = null;
  let address: number | string | null = null;
  const known = family === AF_INET || family === AF_INET6;
  const ok = walkAttrs(dv, off + IFADDRMSG_LEN, end, (t, s, n) => {
    if (!known || (t !== IFA_LOCAL && t !== IFA_ADDRESS)) return true;
    const a = addrAttr(dv, s, n, family);
    if (a === undefined) return false;
    if (t === IFA_LOCAL) local = a;
    else address = a;
    return true;
  });
  if (!ok || ifindex === 0) return undefined;
  if (!known) return null;
  if (prefix > (family === AF_INET ? 32 : 128)) return undefined;
  const a = local ?? address;
  if (family === AF_INET6)
    return { kind: "addr", op, ifindex, prefix, addr: null, addr6: a as string | null };
  return { kind: "addr", op, ifindex, prefix, addr: a as number | null };
}

/** undefined = malformed, null = neither IPv4 nor IPv6. */
function decodeRoute(
  dv: DataView,
  off: number,
  end: number,
  op: "new" | "del",
): RouteEvent | null | undefined {
  if (end - off < RTMSG_LEN) return undefined;
  const family = dv.getUint8(off);
  const ev: RouteEvent = {
    kind: "route",
    op,
    table: dv.getUint8(off + 4),
    type: dv.getUint8(off + 7),
    dst: 0,
    prefix: dv.getUint8(off + 1),
    gateway: 0,
    oif: 0,
    prefsrc: 0,
  };
  const v6 = family === AF_INET6;
  if (v6) {
    ev.dst6 = "::";
    ev.gateway6 = null;
    ev.prefsrc6 = null;
  }
  const ok = walkAttrs(dv, off + RTMSG_LEN, end, (t, s, n) => {
    if (family !== AF_INET && !v6) return true;
    switch (t) {
      case RTA_DST:
      case RTA_GATEWAY:
      case RTA_PREFSRC: {
        const a = addrAttr(dv, s, n, family);
        if (a === undefined) return false;
        if (typeof a === "string") {
          if (t === RTA_DST) ev.dst6 = a;
          else if (t === RTA_GATEWAY) ev.gateway6 = a;
          else ev.prefsrc6 = a;
        } else if (t === RTA_DST) ev.dst = a;
        else if (t === RTA_GATEWAY) ev.gateway = a;
        else ev.prefsrc = a;
        return true;
      }
      case RTA_OIF:
      case RTA_TABLE:
        if (n !== 4) return false;
        if (t === RTA_OIF) ev.oif = dv.getUint32(s, true);
        else ev.table = dv.getUint32(s, true);
        return true;
      default:
        return true;
    }
  });
  if (!ok) return undefined;
  if (family !== AF_INET && !v6) return null;
  if (ev.prefix > (v6 ? 128 : 32)) return undefined;
  return ev;
}

/** What one read() found. */
export interface RtnlRead {
  events: RtnlEvent[];
  datagrams: number;
  malformed: number;
  /** The kernel dropped notifications (ENOBUFS, NLMSG_OVERRUN, or a datagram larger than the buffer). */
  lost: boolean;
}

export interface RtnlCounters {
  datagrams: number;
  events: number;
  malformed: number;
  ignored: number;
  lost: number;
}

/** sockaddr_nl { u16 family; u16 pad; u32 pid; u32 groups }. */
const SIZEOF_SOCKADDR_NL = 12;
/** Notifications are at most a page or two (NLMSG_GOODSIZE); room for a dump-sized datagram too. */
const RECV_BYTES = 64 * 1024;

export class RtnlSocket {
  readonly fd: number;
  readonly counters: RtnlCounters = { datagrams: 0, events: 0, malformed: 0, ignored: 0, lost: 0 };
  private readonly mem: NativePtr;
  private readonly addr: number;
  private readonly view: Uint8Array;
  private closed = false;

  private constructor(fd: number) {
    this.fd = fd;
    const c = libc();
    this.mem = c.koffi.alloc("uint8_t", RECV_BYTES);
    this.addr = addressOf(this.mem);
    this.view = new Uint8Array(c.koffi.view(this.mem, RECV_BYTES) as ArrayBuffer);
  }

  /** A non-blocking NETLINK_ROUTE socket subscribed to `groups` (default: links, addresses and routes of both families). */
  static open(
    groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE,
    rcvbuf = 1 << 20,
  ): RtnlSocket {
    const c = libc();
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) throw new SyscallError("socket(AF_NETLINK)", c.errno());
    // A burst (an interface deleted takes its addresses and routes with it) must not overflow the
    // default buffer; FORCE works as root, else the plain option up to rmem_max.
    const v = Buffer.alloc(4);
    v.writeInt32LE(rcvbuf, 0);
    if (c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, v, 4) !== 0)
      c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, v, 4);
    const sa = Buffer.alloc(SIZEOF_SOCKADDR_NL);
    sa.writeUInt16LE(AF_NETLINK, 0);
    sa.writeUInt32LE(groups >>> 0, 8);
    if (c.bind(fd, sa, SIZEOF_SOCKADDR_NL) !== 0) {
      const e = c.errno();
      c.close(fd);
      throw new SyscallError("bind(AF_NETLINK)", e);
    }
    return new RtnlSocket(fd);
  }

  /** Drains the socket (at most `max` datagrams) without blocking. */
  read(max = 256): RtnlRead {
    const r: RtnlRead = { events: [], datagrams: 0, malformed: 0, lost: false };
    if (this.closed) return r;
    const c = libc();
    for (let i = 0; i < max; i++) {
      // MSG_TRUNC: the datagram's real length, even when it did not fit.
      const n = c.recv(this.fd, this.addr, RECV_BYTES, MSG_DONTWAIT | MSG_TRUNC);
      if (n < 0) {
        const e = c.errno();
        if (e === EINTR) continue;
        if (e === EAGAIN) break;
        if (e === ENOBUFS) {
          r.lost = true;
          continue;
        }
        throw new SyscallError("recv(AF_NETLINK)", e);
      }
      r.datagrams++;
      if (n > RECV_BYTES) r.lost = true;
      const d = decodeRtnl(this.view, Math.min(n, RECV_BYTES));
      for (const ev of d.events) r.events.push(ev);
      r.malformed += d.malformed;
      this.counters.ignored += d.ignored;
      if (d.overrun) r.lost = true;
    }
    this.counters.datagrams += r.datagrams;
    this.counters.events += r.events.length;
    this.counters.malformed += r.malformed;
    if (r.lost) this.counters.lost++;
    return r;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const c = libc();
    c.close(this.fd);
    c.koffi.free(this.mem);
  }
}
