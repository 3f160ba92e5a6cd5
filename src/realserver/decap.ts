// User-space decapsulator for real servers of the TUN method on kernels without the module for the
// director's tunnel type (net/netfilter/ipvs/ip_vs_xmit.c builds three): IPIP (RFC 2003), GUE
// (UDP to a port, src/core/packet/gue.ts) and GRE (RFC 2784, src/core/packet/gre.ts). The inner
// datagram is delivered as it is, TTL untouched.
//
//   node dist/src/realserver/decap.js [--type ipip|gue|gre] [--port N] --tun tsvsipip0
//                                     [--local 198.18.1.11,…] [--stats FILE]
//
// Accepts tunnelled datagrams addressed to any local address of the host, on any interface, as
// the kernel's fallback tunnels tunl0/gre0 and a fou port do: a real server with a link toward the
// director and another toward the clients is tunnelled to the first link's address, which is not
// the default route's (issue 10). The addresses are read (`ip -j -4 addr`) at start and again
// whenever rtnetlink reports an IPv4 address change (RTMGRP_IPV4_IFADDR, looked at every
// RTNL_CHECK_MS while packets flow and on each idle receive timeout; every ADDR_REFRESH_MS instead
// when no netlink socket can be had), and at once (at most every ADDR_MISS_REFRESH_MS) when a
// datagram comes for one not known yet. --local restricts it to a fixed list, as `ip tunnel add …
// local A` would.
//
// Receive, per type:
//   - IPIP: a raw IPv4 socket for protocol 4; GRE: one for protocol 47. Linux hands such a socket
//     every datagram of its protocol addressed to a local address, reassembled and past the INPUT
//     hook, with its outer header. It also matters that it exists: with no handler for the
//     protocol, ip_protocol_deliver_rcu (net/ipv4/ip_input.c) answers ICMP protocol-unreachable
//     unless a raw socket took the datagram, so without it every tunnelled packet would draw an
//     ICMP error back to the director. The GRE header is checked as gre_parse_header does
//     (version and routing refused, checksum verified when present, key/sequence skipped).
//   - GUE: a UDP socket bound to the port on every address, as fou binds its encapsulation socket
//     (`ip fou add port N gue`). The kernel checks the outer UDP checksum before queueing (as it
//     does before fou's encap_rcv) and hands over the UDP payload: the GUE header and the inner
//     datagram. The outer source comes with the datagram (msg_name) and the outer destination
//     from IP_PKTINFO, for the address check. The GUE header is checked as gue_udp_recv does
//     (version 0, known flags only, no control messages, proto_ctype 4), and a remote-checksum
//     option is applied to the inner datagram before it is delivered. A socket on the port also
//     spares the director ICMP port-unreachable errors.
//   - IPv6 (issue 14): the kernel's tunnel method puts an IPv6 datagram behind next header 41 and
//     an IPv4 one behind 4 (GUE: proto_ctype 41 or 4; GRE: protocol 0x86DD or 0x0800), inside
//     IPv6 or IPv4 as the destination's family says (ip_vs_xmit.c: ip_vs_bind_xmit picks
//     ip_vs_tunnel_xmit_v6 by the destination's family, ip_vs_prepare_tunneled_skb the inner
//     protocol by the service's), so a decapsulator takes every outer family. IPIP, for its inner
//     family (--family, the VIP's): inner IPv4 = raw IPv4 socket for 4 and raw IPv6 socket for 4;
//     inner IPv6 = raw IPv6 socket for 41 and raw IPv4 socket for 41 — the two processes of a
//     dual-stack server hold disjoint protocols, so no datagram is taken twice. GUE and GRE name
//     the inner family in their own header, so their decapsulator delivers both, as fou and the
//     gre0/ip6gre0 devices do: GUE = the UDP port over IPv4 and over IPv6 (a second socket,
//     IPV6_V6ONLY as fou's, with UDP_NO_CHECK6_RX: the director sends GUE over IPv6 with a zero
//     UDP checksum unless --tun-csum, udp6_set_csum(nocheck), and a UDPv6 socket drops those
//     without the option); GRE = raw sockets for 47 over IPv4 and IPv6. One serves both VIPs of a
//     dual-stack server (realserver setup shares it). A raw IPv6 socket is handed
//     the payload only (RFC 3542 §3: no IPv6 header on input; the kernel has walked the outer
//     header and its extension headers and reassembled fragments): the inner datagram starts at
//     byte 0, the outer source comes as msg_name and the outer destination as IPV6_PKTINFO. Without
//     such a socket ip6_protocol_deliver_rcu answers every datagram with ICMPv6 parameter problem
//     "unrecognized next header" to the director (seen on this kernel, which has no ip6_tunnel).
// (An AF_PACKET socket on the RIP interface would see the frames too, but would need its own
// address/fragment/checksum checks and would not stop the ICMP errors.)
// Deliver: the inner datagram is written to a tun device (IFF_TUN | IFF_NO_PI), so the kernel
// receives it as if it arrived on that interface: VIP on lo → local socket. Without packet
// information, tun_get_user takes the family from the first nibble (4 → ETH_P_IP, 6 → ETH_P_IPV6),
// so one device carries either. rp_filter must be off on the tun device (the client's address is
// routed elsewhere), and IPv6 on (disable_ipv6 0: ipv6_rcv drops everything on a device where it is
// disabled): both set here and by `realserver setup`.
//
// One native buffer, read through one typed-array view: nothing is allocated per packet.

import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { formatIPv6, parseIPv6 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import { greDecap, IPPROTO_GRE } from "../core/packet/gre.js";
import { GUE_PROTO_CTYPE, gueDecap } from "../core/packet/gue.js";
import {
  addressOf,
  EAGAIN,
  EINTR,
  libc,
  MMSG_LEN,
  MSG_CONTROL,
  MSG_CONTROLLEN,
  MSG_DONTWAIT,
  MSG_IOV,
  MSG_IOVLEN,
  MSG_NAME,
  MSG_NAMELEN,
  POLLIN,
  SIZEOF_CMSGHDR,
  SIZEOF_IOVEC,
  SIZEOF_MMSGHDR,
  SIZEOF_POLLFD,
  SOL_SOCKET,
  SyscallError,
} from "../io/libc.js";
import { RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR, RtnlSocket } from "../io/rtnetlink.js";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOCK_RAW = 3;
const IPPROTO_IP = 0;
const IPPROTO_IPIP = 4;
/** IPv6 inside (IPv4 or IPv6): protocol / next header 41; also the IPv6 socket option level. */
const IPPROTO_IPV6 = 41;
const IP_PKTINFO = 8;
/** IPV6_V6ONLY: the IPv6 GUE socket takes IPv6 only (the IPv4 one has the port over IPv4). */
const IPV6_V6ONLY = 26;
/** SOL_UDP and UDP_NO_CHECK6_RX (include/uapi/linux/udp.h): accept a zero UDP checksum over IPv6. */
const SOL_UDP = 17;
const UDP_NO_CHECK6_RX = 102;
/** GRE's protocol for an IPv6 datagram inside (ETH_P_IPV6). */
const ETH_P_IPV6 = 0x86dd;
const IPV6_RECVPKTINFO = 49;
const IPV6_PKTINFO = 50;
const SO_RCVTIMEO = 20;
const EAFNOSUPPORT = 97;
const SIZEOF_SOCKADDR_IN = 16;
/** struct sockaddr_in6: family, port, flowinfo, sin6_addr at 8, scope id. */
const SIZEOF_SOCKADDR_IN6 = 28;
const SIN6_ADDR = 8;
/** CMSG_SPACE(sizeof(struct in_pktinfo)): { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }. */
const PKTINFO_CMSG_SPACE = SIZEOF_CMSGHDR + 16;
/** CMSG_SPACE(sizeof(struct in6_pktinfo)): { in6_addr ipi6_addr; int ipi6_ifindex; }, padded to 8. */
const PKTINFO6_CMSG_SPACE = SIZEOF_CMSGHDR + 24;
/** At most this many datagrams are taken from one socket per poll, so that none starves the others. */
const DRAIN_MAX = 64;
const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
// <linux/if_tun.h>: TUNSETIFF = _IOW('T', 202, int)
const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const BUF_SIZE = 65536;

/** The tunnel types, numbered as the destination's tunType (src/core/dest.ts TunType). */
export type DecapType = "ipip" | "gue" | "gre";
export const DECAP_TYPES: readonly DecapType[] = ["ipip", "gue", "gre"];
/** The inner datagrams' family (the VIP's). */
export type DecapFamily = 4 | 6;

export interface DecapCounters {
  received: number;
  delivered: number;
  /**
   * Outer packet unusable: too short, not IPv4, or a tunnel header the kernel would drop too (GRE:
   * version/routing bits, a checksum that does not verify; GUE: version, unknown flags, control
   * message, a remote-checksum option out of range).
   */
  badOuter: number;
  /**
   * Inner datagram not of the family its protocol number says (4: IPv4, 41: IPv6; GRE protocol, GUE
   * proto_ctype), shorter than its header, or its length beyond what arrived.
   */
  badInner: number;
  /** Outer destination not among the accepted addresses (the host's, or --local). */
  notLocal: number;
  writeErrors: number;
}

interface Native {
  open(path: string, flags: number): number;
  recv(fd: number, buf: number, len: number, flags: number): number;
  write(fd: number, buf: number, len: number): number;
}

let native: Native | null = null;

function nat(): Native {
  if (native !== null) return native;
  const lib = libc().koffi.load("libc.so.6");
  native = {
    open: lib.func("int open(const char *path, int flags)"),
    recv: lib.func("long recv(int fd, uintptr_t buf, size_t len, int flags)"),
    write: lib.func("long write(int fd, uintptr_t buf, size_t len)"),
  };
  return native;
}

/** Creates (or attaches to) tun device `name` in the current namespace; returns its fd. */
export function openTun(name: string): number {
  if (name.length === 0 || name.length > 15) throw new TsvsError("TSVS_ERR_USAGE", `bad tun name '${name}'`);
  const c = libc();
  const fd = nat().open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) throw new SyscallError("open(/dev/net/tun)", c.errno());
  const ifr = Buffer.alloc(40);
  ifr.write(name, 0, "latin1");
  ifr.writeUInt16LE(IFF_TUN | IFF_NO_PI, 16);
  if (c.ioctlPtr(fd, TUNSETIFF, ifr) < 0) {
    const e = c.errno();
    c.close(fd);
    throw new SyscallError(`ioctl(TUNSETIFF ${name})`, e);
  }
  return fd;
}

function setRecvTimeout(fd: number, timeoutMs: number): void {
  const c = libc();
  const tv = Buffer.alloc(16);
  tv.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
  tv.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1000), 8);
  if (c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16) < 0)
    throw new SyscallError("setsockopt(SO_RCVTIMEO)", c.errno());
}

/** A raw IPv4 socket receiving IPIP (protocol 4) datagrams for local addresses. */
export function openIpipSocket(timeoutMs: number): number {
  return openRawSocket(IPPROTO_IPIP, "IPPROTO_IPIP", timeoutMs);
}

/** A raw IPv4 socket for protocol `proto` (4 IPIP, 47 GRE, 41 IPv6-in-IPv4), with a receive timeout. */
export function openRawSocket(proto: number, name: string, timeoutMs: number): number {
  const c = libc();
  const fd = c.socket(AF_INET, SOCK_RAW | O_CLOEXEC, proto);
  if (fd < 0) throw new SyscallError(`socket(AF_INET, SOCK_RAW, ${name})`, c.errno());
  setRecvTimeout(fd, timeoutMs);
  return fd;
}

/**
 * A raw IPv6 socket for next header `proto` (41 IPv6-in-IPv6, 4 IPv4-in-IPv6, 47 GRE) reporting each
 * datagram's destination (IPV6_RECVPKTINFO); null when the kernel has no IPv6 (EAFNOSUPPORT).
 */
export function openRawSocket6(proto: number, name: string, timeoutMs: number): number | null {
  const c = libc();
  const fd = c.socket(AF_INET6, SOCK_RAW | O_CLOEXEC, proto);
  if (fd < 0) {
    const e = c.errno();
    if (e === EAFNOSUPPORT) return null;
    throw new SyscallError(`socket(AF_INET6, SOCK_RAW, ${name})`, e);
  }
  setFlag(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO");
  setRecvTimeout(fd, timeoutMs);
  return fd;
}

/** setsockopt(fd, level, opt, int 1); on failure the socket is closed and the error thrown. */
function setFlag(fd: number, level: number, opt: number, name: string): void {
  const c = libc();
  const on = Buffer.alloc(4);
  on.writeInt32LE(1, 0);
  if (c.setsockopt(fd, level, opt, on, 4) < 0) {
    const e = c.errno();
    c.close(fd);
    throw new SyscallError(`setsockopt(${name})`, e);
  }
}

/**
 * A UDP socket bound to 0.0.0.0:port (as fou's encapsulation socket), reporting each datagram's
 * destination address (IP_PKTINFO), with a receive timeout.
 */
export function openGueSocket(port: number, timeoutMs: number): number {
  const c = libc();
  const fd = c.socket(AF_INET, SOCK_DGRAM | O_CLOEXEC, 0);
  if (fd < 0) throw new SyscallError("socket(AF_INET, SOCK_DGRAM)", c.errno());
  setFlag(fd, IPPROTO_IP, IP_PKTINFO, "IP_PKTINFO");
  const sa = Buffer.alloc(SIZEOF_SOCKADDR_IN);
  sa.writeUInt16LE(AF_INET, 0);
  sa.writeUInt16BE(port, 2);
  if (c.bind(fd, sa, SIZEOF_SOCKADDR_IN) < 0) {
    const e = c.errno();
    c.close(fd);
    throw new SyscallError(`bind(UDP port ${port})`, e);
  }
  setRecvTimeout(fd, timeoutMs);
  return fd;
}

/**
 * The GUE socket over IPv6: bound to [::]:port with IPV6_V6ONLY (as fou's IPv6 socket), reporting
 * each datagram's destination (IPV6_PKTINFO), taking a zero UDP checksum (UDP_NO_CHECK6_RX: fou's
 * socket has no_check6_rx, udp_sock_create6), with a receive timeout; null when the kernel has no
 * IPv6 (EAFNOSUPPORT).
 */
export function openGueSocket6(port: number, timeoutMs: number): number | null {
  const c = libc();
  const fd = c.socket(AF_INET6, SOCK_DGRAM | O_CLOEXEC, 0);
  if (fd < 0) {
    const e = c.errno();
    if (e === EAFNOSUPPORT) return null;
    throw new SyscallError("socket(AF_INET6, SOCK_DGRAM)", e);
  }
  setFlag(fd, IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY");
  setFlag(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO");
  setFlag(fd, SOL_UDP, UDP_NO_CHECK6_RX, "UDP_NO_CHECK6_RX");
  const sa = Buffer.alloc(SIZEOF_SOCKADDR_IN6);
  sa.writeUInt16LE(AF_INET6, 0);
  sa.writeUInt16BE(port, 2);
  if (c.bind(fd, sa, SIZEOF_SOCKADDR_IN6) < 0) {
    const e = c.errno();
    c.close(fd);
    throw new SyscallError(`bind(UDP port ${port}, IPv6)`, e);
  }
  setRecvTimeout(fd, timeoutMs);
  return fd;
}

export function newCounters(): DecapCounters {
  return { received: 0, delivered: 0, badOuter: 0, badInner: 0, notLocal: 0, writeErrors: 0 };
}

/** At most this many distinct tunnel sources are remembered (doctor finds the director from them). */
const MAX_SOURCES = 8;

/** classify results below 0: the datagram is dropped and counted under that reason. */
export const DECAP_BAD_OUTER = -1;
export const DECAP_BAD_INNER = -2;
export const DECAP_NOT_LOCAL = -3;

/** The inner IPv4 datagram at buf[off] within len: its offset, or DECAP_BAD_INNER. */
function innerIpv4(buf: Uint8Array, off: number, len: number): number {
  if (len - off < 20 || buf[off] >> 4 !== 4) return DECAP_BAD_INNER;
  const innerLen = (buf[off + 2] << 8) | buf[off + 3];
  if (innerLen < 20 || innerLen > len - off) return DECAP_BAD_INNER;
  return off;
}

/**
 * The inner IPv6 datagram at buf[off] within len: its offset, or DECAP_BAD_INNER (shorter than the
 * fixed header, not version 6, or a payload length beyond what arrived; a jumbogram cannot arrive
 * in a 64 KiB datagram).
 */
function innerIpv6(buf: Uint8Array, off: number, len: number): number {
  if (len - off < IPV6_HDR_LEN || buf[off] >> 4 !== 6) return DECAP_BAD_INNER;
  if (IPV6_HDR_LEN + ((buf[off + 4] << 8) | buf[off + 5]) > len - off) return DECAP_BAD_INNER;
  return off;
}

const IPV6_HDR_LEN = 40;

/** The length of the inner datagram at buf[off], checked by innerIpv4 or innerIpv6. */
export function innerLength(buf: Uint8Array, off: number): number {
  return buf[off] >> 4 === 6
    ? IPV6_HDR_LEN + ((buf[off + 4] << 8) | buf[off + 5])
    : (buf[off + 2] << 8) | buf[off + 3];
}

/** The outer IPv4 header of a raw-socket datagram carrying `proto`: its length, or DECAP_BAD_OUTER. */
function outerIpv4(buf: Uint8Array, len: number, proto: number): number {
  if (len < 20 || buf[0] >> 4 !== 4) return DECAP_BAD_OUTER;
  const ihl = (buf[0] & 0x0f) * 4;
  if (ihl < 20 || len < ihl || buf[9] !== proto) return DECAP_BAD_OUTER;
  return ihl;
}

/**
 * Checks one received IPIP datagram in buf[0, len) (outer header included) and returns the inner
 * datagram's offset, or a negative code (DECAP_BAD_OUTER, DECAP_BAD_INNER, DECAP_NOT_LOCAL: outer
 * destination not accepted). accept: host-order u32 addresses; empty = any.
 */
export function innerOffset(buf: Uint8Array, len: number, accept: Uint32Array): number {
  const ihl = outerIpv4(buf, len, IPPROTO_IPIP);
  if (ihl < 0 || len < ihl + 20) return DECAP_BAD_OUTER;
  if (accept.length > 0 && !hasAddr(accept, readU32be(buf, 16))) return DECAP_NOT_LOCAL;
  return innerIpv4(buf, ihl, len);
}

/** The inner datagram at buf[off] of family `af` (the tunnel header's word for it). */
function innerOf(af: DecapFamily, buf: Uint8Array, off: number, len: number): number {
  return af === 6 ? innerIpv6(buf, off, len) : innerIpv4(buf, off, len);
}

/**
 * The inner datagram of the GRE packet at buf[off, len): its offset (the protocol says its family:
 * 0x0800 IPv4, 0x86DD IPv6), or DECAP_BAD_OUTER / DECAP_BAD_INNER.
 */
function greInner(buf: Uint8Array, off: number, len: number): number {
  const at = greDecap(buf, off, len - off);
  if (at < 0) return at === -4 ? DECAP_BAD_INNER : DECAP_BAD_OUTER;
  return innerOf(((buf[off + 2] << 8) | buf[off + 3]) === ETH_P_IPV6 ? 6 : 4, buf, at, len);
}

/** The inner datagram of the GUE datagram at buf[0, len) (a UDP payload), as greInner (proto_ctype 4 or 41). */
function gueInner(buf: Uint8Array, len: number): number {
  const at = gueDecap(buf, 0, len);
  if (at < 0) return at === -5 ? DECAP_BAD_INNER : DECAP_BAD_OUTER;
  return innerOf(buf[GUE_PROTO_CTYPE] === IPPROTO_IPV6 ? 6 : 4, buf, at, len);
}

/**
 * The same for a GRE datagram over IPv4 (outer header included), its GRE header checked
 * (packet/gre.ts); the inner datagram of either family.
 */
export function greInnerOffset(buf: Uint8Array, len: number, accept: Uint32Array): number {
  const ihl = outerIpv4(buf, len, IPPROTO_GRE);
  if (ihl < 0) return DECAP_BAD_OUTER;
  if (accept.length > 0 && !hasAddr(accept, readU32be(buf, 16))) return DECAP_NOT_LOCAL;
  return greInner(buf, ihl, len);
}

/**
 * The same for a GUE datagram over IPv4 as a UDP socket hands it over (buf[0, len) = the UDP
 * payload; dst = the outer destination address from IP_PKTINFO). A remote-checksum option is
 * applied in place, after the address check (so a second call after an address refresh does not
 * apply it twice).
 */
export function gueInnerOffset(buf: Uint8Array, len: number, dst: number, accept: Uint32Array): number {
  if (accept.length > 0 && !hasAddr(accept, dst >>> 0)) return DECAP_NOT_LOCAL;
  return gueInner(buf, len);
}

/**
 * GRE over IPv6, as a raw IPv6 socket for next header 47 hands it over: buf[0, len) is the GRE
 * packet (the kernel consumed the outer header); the outer destination is dst[dstOff, +16)
 * (IPV6_PKTINFO); accept6 as ipxip6InnerOffset.
 */
export function gre6InnerOffset(
  buf: Uint8Array,
  len: number,
  dst: Uint8Array,
  dstOff: number,
  accept6: Uint8Array,
): number {
  if (accept6.length > 0 && !hasAddr6(accept6, dst, dstOff)) return DECAP_NOT_LOCAL;
  if (len < 4) return DECAP_BAD_OUTER;
  return greInner(buf, 0, len);
}

/** GUE over IPv6, as the IPv6 UDP socket hands it over (the UDP payload; destination from IPV6_PKTINFO). */
export function gue6InnerOffset(
  buf: Uint8Array,
  len: number,
  dst: Uint8Array,
  dstOff: number,
  accept6: Uint8Array,
): number {
  if (accept6.length > 0 && !hasAddr6(accept6, dst, dstOff)) return DECAP_NOT_LOCAL;
  return gueInner(buf, len);
}

/**
 * IPv6 inside IPv4 (protocol 41, as sit carries it) as a raw IPv4 socket hands it over, outer header
 * included: the inner IPv6 datagram's offset, or a negative code as innerOffset.
 */
export function ip6in4InnerOffset(buf: Uint8Array, len: number, accept: Uint32Array): number {
  const ihl = outerIpv4(buf, len, IPPROTO_IPV6);
  if (ihl < 0) return DECAP_BAD_OUTER;
  if (accept.length > 0 && !hasAddr(accept, readU32be(buf, 16))) return DECAP_NOT_LOCAL;
  return innerIpv6(buf, ihl, len);
}

/**
 * IPv6 (next header 41) or IPv4 (4) inside IPv6, as a raw IPv6 socket hands it over: the kernel has
 * consumed the outer header and its extension headers, so buf[0, len) is the inner datagram; the
 * outer destination is dst[dstOff, +16) (IPV6_PKTINFO). accept6: 16 bytes per address; empty = any.
 * Returns 0 (the inner datagram's offset), DECAP_NOT_LOCAL or DECAP_BAD_INNER.
 */
export function ipxip6InnerOffset(
  inner: DecapFamily,
  buf: Uint8Array,
  len: number,
  dst: Uint8Array,
  dstOff: number,
  accept6: Uint8Array,
): number {
  if (accept6.length > 0 && !hasAddr6(accept6, dst, dstOff)) return DECAP_NOT_LOCAL;
  return inner === 6 ? innerIpv6(buf, 0, len) : innerIpv4(buf, 0, len);
}

/** One received datagram of `type` (see innerOffset, greInnerOffset, gueInnerOffset). */
export function classify(
  type: DecapType,
  buf: Uint8Array,
  len: number,
  dst: number,
  accept: Uint32Array,
): number {
  if (type === "gue") return gueInnerOffset(buf, len, dst, accept);
  if (type === "gre") return greInnerOffset(buf, len, accept);
  return innerOffset(buf, len, accept);
}

/**
 * Counts one classified datagram (received, and delivered or the drop reason; a delivery is
 * counted by the caller once the write succeeded) and remembers its outer source (when it was
 * usable) and a refused destination.
 */
export class DecapTally {
  readonly cnt = newCounters();
  readonly sources = new Uint32Array(MAX_SOURCES);
  nSources = 0;
  lastNotLocal = -1;
  /** IPv6 tunnel sources, 16 bytes each, and the last refused IPv6 destination. */
  readonly sources6 = new Uint8Array(MAX_SOURCES * 16);
  nSources6 = 0;
  readonly lastNotLocal6 = new Uint8Array(16);
  /** The family of the last refused destination (0: none yet). */
  lastNotLocalFamily: 0 | 4 | 6 = 0;

  /** A datagram whose outer header was IPv4 (src, dst: host-order u32). */
  account(off: number, src: number, dst: number): void {
    this.count(off);
    if (off >= 0 || off === DECAP_NOT_LOCAL) {
      src >>>= 0;
      if (this.nSources < MAX_SOURCES && !hasAddr(this.sources, src, this.nSources))
        this.sources[this.nSources++] = src;
    }
    if (off === DECAP_NOT_LOCAL) {
      this.lastNotLocal = dst >>> 0;
      this.lastNotLocalFamily = 4;
    }
  }

  /** A datagram whose outer header was IPv6 (addresses of 16 bytes at src[srcOff], dst[dstOff]). */
  account6(off: number, src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
    this.count(off);
    if (off >= 0 || off === DECAP_NOT_LOCAL) {
      if (this.nSources6 < MAX_SOURCES && !hasAddr6(this.sources6, src, srcOff, this.nSources6)) {
        copy16(src, srcOff, this.sources6, this.nSources6 * 16);
        this.nSources6++;
      }
    }
    if (off === DECAP_NOT_LOCAL) {
      copy16(dst, dstOff, this.lastNotLocal6, 0);
      this.lastNotLocalFamily = 6;
    }
  }

  private count(off: number): void {
    const cnt = this.cnt;
    cnt.received++;
    if (off === DECAP_BAD_OUTER) cnt.badOuter++;
    else if (off === DECAP_BAD_INNER) cnt.badInner++;
    else if (off === DECAP_NOT_LOCAL) cnt.notLocal++;
  }

  /** Every tunnel source seen, as text (IPv4 first). */
  sourceList(): string[] {
    const out = Array.from(this.sources.subarray(0, this.nSources), fmtU32);
    for (let i = 0; i < this.nSources6; i++) out.push(formatIPv6(this.sources6, i * 16));
    return out;
  }

  lastNotLocalText(): string | null {
    if (this.lastNotLocalFamily === 4) return fmtU32(this.lastNotLocal);
    if (this.lastNotLocalFamily === 6) return formatIPv6(this.lastNotLocal6);
    return null;
  }
}

function readU32be(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

function hasAddr(set: Uint32Array, a: number, n = set.length): boolean {
  for (let i = 0; i < n; i++) if (set[i] === a) return true;
  return false;
}

/** Is the 16-byte address b[off] among the first n of set (16 bytes each)? */
function hasAddr6(set: Uint8Array, b: Uint8Array, off: number, n = set.length >> 4): boolean {
  for (let i = 0; i < n; i++) {
    const at = i * 16;
    let k = 0;
    while (k < 16 && set[at + k] === b[off + k]) k++;
    if (k === 16) return true;
  }
  return false;
}

function copy16(from: Uint8Array, fromOff: number, to: Uint8Array, toOff: number): void {
  for (let k = 0; k < 16; k++) to[toOff + k] = from[fromOff + k];
}

function fmtU32(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/**
 * Every IPv4 address of this network namespace, every interface (lo included: the VIP), as the
 * kernel's fallback tunnel tunl0 accepts IPIP to any of them (net/ipv4/ipip.c, ipip_rcv →
 * ip_tunnel_lookup falls back to the wildcard device). Read with `ip -j -4 addr show`.
 */
export function hostAddresses(): Uint32Array {
  return Uint32Array.from(new Set(addrTexts("-4", "inet").map(parseIPv4u32)));
}

/**
 * Every IPv6 address of this network namespace, 16 bytes each, as the kernel's fallback ip6tnl0
 * (IP6_TNL_F_CAP_PER_PACKET) takes IPv6-in-IPv6 to any local address. Read with `ip -j -6 addr show`.
 */
export function hostAddresses6(): Uint8Array {
  return packAddrs6([...new Set(addrTexts("-6", "inet6"))].map(parseIPv6Strict), 0);
}

/** IPv6 addresses one after the other, 16 bytes each, in at least `min` slots (zeros: ::). */
function packAddrs6(addrs: Uint8Array[], min: number): Uint8Array {
  const out = new Uint8Array(Math.max(addrs.length, min) * 16);
  for (let i = 0; i < addrs.length; i++) out.set(addrs[i], i * 16);
  return out;
}

function addrTexts(flag: "-4" | "-6", family: string): string[] {
  const links = JSON.parse(
    execFileSync("ip", ["-j", flag, "addr", "show"], { encoding: "utf8" }) || "[]",
  ) as {
    addr_info?: { family?: string; local?: string }[];
  }[];
  return links.flatMap((l) =>
    (l.addr_info ?? [])
      .filter((a) => a.local !== undefined && (a.family === undefined || a.family === family))
      .map((a) => a.local as string),
  );
}

/** How often the host's addresses are re-read without rtnetlink. */
export const ADDR_REFRESH_MS = 2000;
/** How often the rtnetlink socket is drained while packets flow (one non-blocking recv). */
export const RTNL_CHECK_MS = 100;
/** A packet to an address not (yet) known re-reads them at once, at most this often. */
export const ADDR_MISS_REFRESH_MS = 200;

/** The outer destinations accepted, per outer family (replaced whole when the host's addresses change). */
export interface DecapAccept {
  /** Host-order u32 addresses; empty = any. */
  v4: Uint32Array;
  /** 16 bytes per address; empty = any. */
  v6: Uint8Array;
}

/**
 * A fixed --local list split by family. A family absent from it accepts nothing: its list holds the
 * unspecified address alone (0.0.0.0, ::), which is never a datagram's destination.
 */
export function fixedAccept(addrs: readonly string[]): DecapAccept {
  const v4 = addrs.filter((a) => !a.includes(":")).map(parseIPv4u32);
  const v6 = addrs.filter((a) => a.includes(":")).map(parseIPv6Strict);
  return { v4: v4.length > 0 ? Uint32Array.from(v4) : Uint32Array.of(0), v6: packAddrs6(v6, 1) };
}

export interface DecapOptions {
  /** The director's tunnel type (default ipip). */
  type?: DecapType;
  /** The inner datagrams' family, the VIP's (default 4). */
  family?: DecapFamily;
  /** GUE: the UDP port (the director's --tun-port). */
  port?: number;
  tun: string;
  /** Accept only these outer destinations (like `ip tunnel add … local A`); null = every local address, followed. */
  local: DecapAccept | null;
  statsFile: string | null;
  /** Called once the sockets and the tun device are ready. */
  onReady?: () => void;
  /** Stop after this many ms (tests); 0 = forever. */
  durationMs?: number;
}

/** What the stats file holds (read by `tsvs realserver doctor`, checks.ts DecapStatsView). */
export interface DecapStats extends DecapCounters {
  pid: number;
  type: DecapType;
  /** The inner family (the VIP's). */
  family: DecapFamily;
  /** GUE: the UDP port; 0 otherwise. */
  port: number;
  tun: string;
  /** The sockets it reads, in words ("IPv6 next header 41"). */
  receivers: string[];
  startedAt: string;
  accept: "host" | "fixed";
  /** How the host's addresses are followed ("host" only). */
  follow: "rtnetlink" | "poll" | null;
  addresses: string[];
  sources: string[];
  lastNotLocal: string | null;
}

/**
 * One receiving socket, bound to its codec once (the datagram's path never branches on the
 * socket's kind): recv() fills the shared buffer without waiting and returns the length (or -1
 * with errno set); classify() checks it (see innerOffset) and account() counts it in the tally.
 */
interface Receiver {
  fd: number;
  label: string;
  recv(): number;
  classify(len: number): number;
  account(off: number): void;
}

/** A raw IPv4 socket: the datagram comes with its outer header (addresses at 12 and 16). */
function rawReceiver(
  fd: number,
  label: string,
  base: number,
  buf: Uint8Array,
  tally: DecapTally,
  classify: (len: number) => number,
): Receiver {
  const n = nat();
  return {
    fd,
    label,
    recv: () => Number(n.recv(fd, base, BUF_SIZE, MSG_DONTWAIT)),
    classify,
    account: (off) => tally.account(off, readU32be(buf, 12), readU32be(buf, 16)),
  };
}

/**
 * One recvmmsg of one datagram into the shared buffer, with its source (msg_name, nameLen bytes at
 * `name`) and one control message of (level, type) carrying at least dataLen bytes at `data`:
 * recv() returns the length or -1 (errno set), cmsg() whether that control message came. `meta`
 * views the native msghdr, name and control area.
 */
function msgReceiver(
  fd: number,
  base: number,
  nameLen: number,
  cmsg: { level: number; type: number; dataLen: number; space: number },
): { recv(): number; cmsg(): boolean; dv: DataView; meta: Uint8Array; name: number; data: number } {
  const c = libc();
  const k = c.koffi;
  const size = SIZEOF_MMSGHDR + SIZEOF_IOVEC + nameLen + cmsg.space;
  const mem = k.alloc("uint8_t", size);
  const at = addressOf(mem);
  const ab = k.view(mem, size) as ArrayBuffer;
  const dv = new DataView(ab);
  const iov = SIZEOF_MMSGHDR;
  const name = iov + SIZEOF_IOVEC;
  const ctl = name + nameLen;
  dv.setBigUint64(iov, BigInt(base), true);
  dv.setBigUint64(iov + 8, BigInt(BUF_SIZE), true);
  dv.setBigUint64(MSG_NAME, BigInt(at + name), true);
  dv.setBigUint64(MSG_IOV, BigInt(at + iov), true);
  dv.setBigUint64(MSG_IOVLEN, 1n, true);
  dv.setBigUint64(MSG_CONTROL, BigInt(at + ctl), true);
  return {
    recv: () => {
      dv.setUint32(MSG_NAMELEN, nameLen, true);
      dv.setBigUint64(MSG_CONTROLLEN, BigInt(cmsg.space), true);
      return c.recvmmsg(fd, at, 1, MSG_DONTWAIT, null) < 1 ? -1 : dv.getUint32(MMSG_LEN, true);
    },
    // One control message asked for; the kernel writes it first.
    cmsg: () =>
      Number(dv.getBigUint64(MSG_CONTROLLEN, true)) >= SIZEOF_CMSGHDR + cmsg.dataLen &&
      dv.getInt32(ctl + 8, true) === cmsg.level &&
      dv.getInt32(ctl + 12, true) === cmsg.type,
    dv,
    meta: new Uint8Array(ab),
    name,
    data: ctl + SIZEOF_CMSGHDR,
  };
}

/** The GUE socket: the UDP payload, source from msg_name, destination from IP_PKTINFO (ipi_addr). */
function gueReceiver(
  fd: number,
  base: number,
  buf: Uint8Array,
  tally: DecapTally,
  acc: DecapAccept,
): Receiver {
  const m = msgReceiver(fd, base, SIZEOF_SOCKADDR_IN, {
    level: IPPROTO_IP,
    type: IP_PKTINFO,
    dataLen: 12,
    space: PKTINFO_CMSG_SPACE,
  });
  let dst = 0;
  return {
    fd,
    label: "UDP (GUE)",
    recv: () => {
      const len = m.recv();
      dst = len >= 0 && m.cmsg() ? m.dv.getUint32(m.data + 8, false) : 0;
      return len;
    },
    classify: (len) => gueInnerOffset(buf, len, dst, acc.v4),
    account: (off) => tally.account(off, m.dv.getUint32(m.name + 4, false), dst),
  };
}

/**
 * A raw IPv6 socket (next header 41, 4 or 47) or the IPv6 GUE socket: the datagram's payload at
 * buf[0], the outer source from msg_name (sin6_addr), the outer destination from IPV6_PKTINFO
 * (ipi6_addr), classified by `classify(len, dst, dstOff)`. A datagram without the control message
 * (never seen) is checked against ::, which no list holds.
 */
function raw6Receiver(
  fd: number,
  label: string,
  base: number,
  tally: DecapTally,
  classify: (len: number, dst: Uint8Array, dstOff: number) => number,
): Receiver {
  const m = msgReceiver(fd, base, SIZEOF_SOCKADDR_IN6, {
    level: IPPROTO_IPV6,
    type: IPV6_PKTINFO,
    dataLen: 16,
    space: PKTINFO6_CMSG_SPACE,
  });
  return {
    fd,
    label,
    recv: () => {
      const len = m.recv();
      if (len >= 0 && !m.cmsg()) m.meta.fill(0, m.data, m.data + 16);
      return len;
    },
    classify: (len) => classify(len, m.meta, m.data),
    account: (off) => tally.account6(off, m.meta, m.name + SIN6_ADDR, m.meta, m.data),
  };
}

/**
 * The sockets for a tunnel type and inner family. IPIP: inner IPv4 = protocol 4 over IPv4 and over
 * IPv6; inner IPv6 = next header 41 over IPv6 and over IPv4. GUE and GRE, whatever the family (their
 * header names the inner one, both are delivered): the UDP port or protocol 47, over IPv4 and over
 * IPv6. An IPv6 socket is skipped where the kernel has no IPv6, except for an IPv6 VIP's IPIP.
 */
function openReceivers(
  type: DecapType,
  family: DecapFamily,
  port: number,
  base: number,
  buf: Uint8Array,
  tally: DecapTally,
  acc: DecapAccept,
): Receiver[] {
  const raw4 = (proto: number, name: string, classify: (len: number) => number): Receiver =>
    rawReceiver(openRawSocket(proto, name, 1000), `IPv4 protocol ${proto}`, base, buf, tally, classify);
  const raw6 = (
    fd: number | null,
    label: string,
    classify: (len: number, dst: Uint8Array, dstOff: number) => number,
  ): Receiver[] => (fd === null ? [] : [raw6Receiver(fd, label, base, tally, classify)]);
  if (type === "gue")
    return [
      gueReceiver(openGueSocket(port, 1000), base, buf, tally, acc),
      ...raw6(openGueSocket6(port, 1000), "UDP over IPv6 (GUE)", (len, dst, at) =>
        gue6InnerOffset(buf, len, dst, at, acc.v6),
      ),
    ];
  if (type === "gre")
    return [
      raw4(IPPROTO_GRE, "IPPROTO_GRE", (len) => greInnerOffset(buf, len, acc.v4)),
      ...raw6(
        openRawSocket6(IPPROTO_GRE, "IPPROTO_GRE", 1000),
        `IPv6 next header ${IPPROTO_GRE}`,
        (len, dst, at) => gre6InnerOffset(buf, len, dst, at, acc.v6),
      ),
    ];
  const nh = family === 6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
  const ipxip6 = (len: number, dst: Uint8Array, at: number): number =>
    ipxip6InnerOffset(family, buf, len, dst, at, acc.v6);
  const fd6 = openRawSocket6(nh, family === 6 ? "IPPROTO_IPV6" : "IPPROTO_IPIP", 1000);
  if (family === 6) {
    if (fd6 === null)
      throw new TsvsError("TSVS_ERR_HOST", "this kernel has no IPv6 (socket(AF_INET6): EAFNOSUPPORT)");
    return [
      ...raw6(fd6, `IPv6 next header ${nh}`, ipxip6),
      raw4(IPPROTO_IPV6, "IPPROTO_IPV6", (len) => ip6in4InnerOffset(buf, len, acc.v4)),
    ];
  }
  return [
    raw4(IPPROTO_IPIP, "IPPROTO_IPIP", (len) => classify("ipip", buf, len, 0, acc.v4)),
    ...raw6(fd6, `IPv6 next header ${nh}`, ipxip6),
  ];
}

/** Runs the decapsulator loop (blocking: meant for its own process). Returns the counters. */
export function runDecap(opts: DecapOptions): DecapCounters {
  const type = opts.type ?? "ipip";
  const family = opts.family ?? 4;
  const port = opts.port ?? 0;
  if (type === "gue" && (port < 1 || port > 65535))
    throw new TsvsError("TSVS_ERR_USAGE", "GUE needs the UDP port (--port 1..65535)");
  const c = libc();
  const n = nat();
  const follow = opts.local === null;
  const acc: DecapAccept = opts.local ?? { v4: hostAddresses(), v6: hostAddresses6() };
  const mem = c.koffi.alloc("uint8_t", BUF_SIZE);
  const base = addressOf(mem);
  const buf = new Uint8Array(c.koffi.view(mem, BUF_SIZE));
  const tally = new DecapTally();
  const cnt = tally.cnt;
  const rx = openReceivers(type, family, port, base, buf, tally, acc);
  const tunFd = openTun(opts.tun);
  execFileSync("ip", ["link", "set", opts.tun, "up"], { stdio: "ignore" });
  for (const [key, v] of [
    [`ipv4/conf/${opts.tun}/rp_filter`, "0"],
    [`ipv6/conf/${opts.tun}/disable_ipv6`, "0"],
  ]) {
    try {
      writeFileSync(`/proc/sys/net/${key}`, v);
    } catch {
      // best effort; realserver doctor reports the effective value
    }
  }
  const pollMem = c.koffi.alloc("uint8_t", SIZEOF_POLLFD * rx.length);
  const pollAt = addressOf(pollMem);
  const pollDv = new DataView(c.koffi.view(pollMem, SIZEOF_POLLFD * rx.length) as ArrayBuffer);
  rx.forEach((r, i) => {
    pollDv.setInt32(i * SIZEOF_POLLFD, r.fd, true);
    pollDv.setInt16(i * SIZEOF_POLLFD + 4, POLLIN, true);
  });
  let refreshedAt = Date.now();
  let rtnl: RtnlSocket | null = null;
  if (follow) {
    try {
      rtnl = RtnlSocket.open(RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR);
    } catch {
      rtnl = null; // polled instead
    }
  }
  let rtnlCheckedAt = 0;
  const refresh = (now: number): void => {
    refreshedAt = now;
    try {
      acc.v4 = hostAddresses();
      acc.v6 = hostAddresses6();
    } catch {
      // keep the last lists; the next refresh tries again
    }
  };
  const startedAt = new Date().toISOString();
  // Written when something changed, at most once a second while packets flow, and when idle.
  let written = "";
  let writtenAt = 0;
  const writeStats = (now: number): void => {
    if (opts.statsFile === null) return;
    const st: DecapStats = {
      pid: process.pid,
      type,
      family,
      port: type === "gue" ? port : 0,
      tun: opts.tun,
      receivers: rx.map((r) => r.label),
      startedAt,
      accept: follow ? "host" : "fixed",
      follow: !follow ? null : rtnl !== null ? "rtnetlink" : "poll",
      addresses: acceptTexts(acc),
      ...cnt,
      sources: tally.sourceList(),
      lastNotLocal: tally.lastNotLocalText(),
    };
    const text = `${JSON.stringify(st)}\n`;
    writtenAt = now;
    if (text === written) return;
    written = text;
    writeFileSync(opts.statsFile, text);
  };
  writeStats(Date.now());
  opts.onReady?.();
  const end = opts.durationMs !== undefined && opts.durationMs > 0 ? Date.now() + opts.durationMs : 0;
  for (;;) {
    const ready = c.poll(pollAt, rx.length, 1000);
    // errno first: the refresh below runs a process, which overwrites it.
    const e = ready < 0 ? c.errno() : 0;
    let now = Date.now();
    if (rtnl !== null) {
      if (ready <= 0 || now - rtnlCheckedAt >= RTNL_CHECK_MS) {
        rtnlCheckedAt = now;
        const r = rtnl.read();
        if (r.datagrams > 0 || r.lost) refresh(now);
      }
    } else if (follow && now - refreshedAt >= ADDR_REFRESH_MS) refresh(now);
    if (ready < 0 && e !== EINTR) throw new SyscallError("poll", e);
    if (ready <= 0) {
      writeStats(now);
      if (end !== 0 && now > end) break;
      continue;
    }
    for (let i = 0; i < rx.length; i++) {
      if ((pollDv.getInt16(i * SIZEOF_POLLFD + 6, true) & POLLIN) === 0) continue;
      const r = rx[i];
      for (let k = 0; k < DRAIN_MAX; k++) {
        const len = r.recv();
        if (len < 0) {
          const err = c.errno();
          if (err !== EAGAIN && err !== EINTR) throw new SyscallError(`recv(${r.label})`, err);
          break;
        }
        let off = r.classify(len);
        if (off === DECAP_NOT_LOCAL && follow && now - refreshedAt >= ADDR_MISS_REFRESH_MS) {
          // An address added since the last read: read them again before refusing.
          refresh(now);
          off = r.classify(len);
        }
        r.account(off);
        if (off >= 0) {
          const innerLen = innerLength(buf, off);
          if (Number(n.write(tunFd, base + off, innerLen)) === innerLen) cnt.delivered++;
          else cnt.writeErrors++;
        }
      }
    }
    now = Date.now();
    if (now - writtenAt >= 1000) writeStats(now);
    if (end !== 0 && now > end) break;
  }
  writeStats(Date.now());
  rtnl?.close();
  for (const r of rx) c.close(r.fd);
  c.close(tunFd);
  c.koffi.free(mem);
  c.koffi.free(pollMem);
  return cnt;
}

/** The accepted addresses as text (IPv4 first); the unspecified placeholders of fixedAccept left out. */
function acceptTexts(acc: DecapAccept): string[] {
  const out = Array.from(acc.v4, fmtU32).filter((a) => a !== "0.0.0.0");
  for (let i = 0; i < acc.v6.length; i += 16) out.push(formatIPv6(acc.v6, i));
  return out.filter((a) => a !== "::");
}

function parseIPv4u32(s: string): number {
  const p = s.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new TsvsError("TSVS_ERR_USAGE", `bad address '${s}'`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

function parseIPv6Strict(s: string): Uint8Array {
  const b = parseIPv6(s);
  if (b === null) throw new TsvsError("TSVS_ERR_USAGE", `bad address '${s}'`);
  return b;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let tun = "tsvsipip0";
  let type: DecapType = "ipip";
  let family: DecapFamily = 4;
  let port = 0;
  let local: DecapAccept | null = null;
  let statsFile: string | null = null;
  const argv = process.argv.slice(2);
  try {
    for (let i = 0; i < argv.length; i += 2) {
      const v = argv[i + 1] ?? "";
      if (argv[i] === "--tun") tun = v;
      else if (argv[i] === "--type") {
        if (!(DECAP_TYPES as readonly string[]).includes(v))
          throw new TsvsError("TSVS_ERR_USAGE", `--type must be ipip, gue or gre, not '${v}'`);
        type = v as DecapType;
      } else if (argv[i] === "--family") {
        if (v !== "4" && v !== "6")
          throw new TsvsError("TSVS_ERR_USAGE", `--family must be 4 or 6, not '${v}'`);
        family = v === "6" ? 6 : 4;
      } else if (argv[i] === "--port") port = Number(v);
      else if (argv[i] === "--local") local = fixedAccept(v.split(",").filter((x) => x !== ""));
      else if (argv[i] === "--stats") statsFile = v;
      else throw new TsvsError("TSVS_ERR_USAGE", `unknown argument '${argv[i]}'`);
    }
    runDecap({
      type,
      family,
      port,
      tun,
      local,
      statsFile,
      onReady: () => process.stdout.write(`ready ${tun}\n`),
    });
  } catch (e) {
    process.stderr.write(`tsvs decap: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
