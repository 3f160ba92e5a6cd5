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
// (An AF_PACKET socket on the RIP interface would see the frames too, but would need its own
// address/fragment/checksum checks and would not stop the ICMP errors.)
// Deliver: the inner datagram is written to a tun device (IFF_TUN | IFF_NO_PI), so the kernel
// receives it as if it arrived on that interface: VIP on lo → local socket. rp_filter must be off
// on the tun device (the client's address is routed elsewhere): set here and by `realserver setup`.
//
// One native buffer, read through one typed-array view: nothing is allocated per packet.

import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { TsvsError } from "../core/errors.js";
import { greDecap, IPPROTO_GRE } from "../core/packet/gre.js";
import { gueDecap } from "../core/packet/gue.js";
import {
  addressOf,
  EAGAIN,
  EINTR,
  libc,
  MMSG_LEN,
  MSG_CONTROL,
  MSG_CONTROLLEN,
  MSG_IOV,
  MSG_IOVLEN,
  MSG_NAME,
  MSG_NAMELEN,
  SIZEOF_CMSGHDR,
  SIZEOF_IOVEC,
  SIZEOF_MMSGHDR,
  SOL_SOCKET,
  SyscallError,
} from "../io/libc.js";
import { RTMGRP_IPV4_IFADDR, RtnlSocket } from "../io/rtnetlink.js";

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_RAW = 3;
const IPPROTO_IP = 0;
const IPPROTO_IPIP = 4;
const IP_PKTINFO = 8;
const SO_RCVTIMEO = 20;
const SIZEOF_SOCKADDR_IN = 16;
/** CMSG_SPACE(sizeof(struct in_pktinfo)): { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }. */
const PKTINFO_CMSG_SPACE = SIZEOF_CMSGHDR + 16;
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

export interface DecapCounters {
  received: number;
  delivered: number;
  /**
   * Outer packet unusable: too short, not IPv4, or a tunnel header the kernel would drop too (GRE:
   * version/routing bits, a checksum that does not verify; GUE: version, unknown flags, control
   * message, a remote-checksum option out of range).
   */
  badOuter: number;
  /** Inner datagram not IPv4 (GRE protocol, GUE proto_ctype) or its total length beyond what arrived. */
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

/** A raw IPv4 socket for protocol `proto` (4 IPIP, 47 GRE), with a receive timeout. */
export function openRawSocket(proto: number, name: string, timeoutMs: number): number {
  const c = libc();
  const fd = c.socket(AF_INET, SOCK_RAW | O_CLOEXEC, proto);
  if (fd < 0) throw new SyscallError(`socket(AF_INET, SOCK_RAW, ${name})`, c.errno());
  setRecvTimeout(fd, timeoutMs);
  return fd;
}

/**
 * A UDP socket bound to 0.0.0.0:port (as fou's encapsulation socket), reporting each datagram's
 * destination address (IP_PKTINFO), with a receive timeout.
 */
export function openGueSocket(port: number, timeoutMs: number): number {
  const c = libc();
  const fd = c.socket(AF_INET, SOCK_DGRAM | O_CLOEXEC, 0);
  if (fd < 0) throw new SyscallError("socket(AF_INET, SOCK_DGRAM)", c.errno());
  const on = Buffer.alloc(4);
  on.writeInt32LE(1, 0);
  if (c.setsockopt(fd, IPPROTO_IP, IP_PKTINFO, on, 4) < 0) {
    const e = c.errno();
    c.close(fd);
    throw new SyscallError("setsockopt(IP_PKTINFO)", e);
  }
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

/** The same for a GRE datagram (outer header included), its GRE header checked (packet/gre.ts). */
export function greInnerOffset(buf: Uint8Array, len: number, accept: Uint32Array): number {
  const ihl = outerIpv4(buf, len, IPPROTO_GRE);
  if (ihl < 0) return DECAP_BAD_OUTER;
  if (accept.length > 0 && !hasAddr(accept, readU32be(buf, 16))) return DECAP_NOT_LOCAL;
  const off = greDecap(buf, ihl, len - ihl);
  if (off < 0) return off === -4 ? DECAP_BAD_INNER : DECAP_BAD_OUTER;
  return innerIpv4(buf, off, len);
}

/**
 * The same for a GUE datagram as a UDP socket hands it over (buf[0, len) = the UDP payload; dst =
 * the outer destination address from IP_PKTINFO). A remote-checksum option is applied in place,
 * after the address check (so a second call after an address refresh does not apply it twice).
 */
export function gueInnerOffset(buf: Uint8Array, len: number, dst: number, accept: Uint32Array): number {
  if (accept.length > 0 && !hasAddr(accept, dst >>> 0)) return DECAP_NOT_LOCAL;
  const off = gueDecap(buf, 0, len);
  if (off < 0) return off === -5 ? DECAP_BAD_INNER : DECAP_BAD_OUTER;
  return innerIpv4(buf, off, len);
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

  account(off: number, src: number, dst: number): void {
    const cnt = this.cnt;
    cnt.received++;
    if (off >= 0 || off === DECAP_NOT_LOCAL) {
      src >>>= 0;
      if (this.nSources < MAX_SOURCES && !hasAddr(this.sources, src, this.nSources))
        this.sources[this.nSources++] = src;
    }
    if (off === DECAP_BAD_OUTER) cnt.badOuter++;
    else if (off === DECAP_BAD_INNER) cnt.badInner++;
    else if (off === DECAP_NOT_LOCAL) {
      cnt.notLocal++;
      this.lastNotLocal = dst >>> 0;
    }
  }
}

function readU32be(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

function hasAddr(set: Uint32Array, a: number, n = set.length): boolean {
  for (let i = 0; i < n; i++) if (set[i] === a) return true;
  return false;
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
  const links = JSON.parse(
    execFileSync("ip", ["-j", "-4", "addr", "show"], { encoding: "utf8" }) || "[]",
  ) as {
    addr_info?: { family?: string; local?: string }[];
  }[];
  const out: number[] = [];
  for (const l of links) {
    for (const a of l.addr_info ?? []) {
      if (a.local !== undefined && (a.family === undefined || a.family === "inet"))
        out.push(parseIPv4u32(a.local));
    }
  }
  return Uint32Array.from(new Set(out));
}

/** How often the host's addresses are re-read without rtnetlink. */
export const ADDR_REFRESH_MS = 2000;
/** How often the rtnetlink socket is drained while packets flow (one non-blocking recv). */
export const RTNL_CHECK_MS = 100;
/** A packet to an address not (yet) known re-reads them at once, at most this often. */
export const ADDR_MISS_REFRESH_MS = 200;

export interface DecapOptions {
  /** The director's tunnel type (default ipip). */
  type?: DecapType;
  /** GUE: the UDP port (the director's --tun-port). */
  port?: number;
  tun: string;
  /** Accept only these outer destinations (host-order u32, like `ip tunnel add … local A`); null = every local address, followed. */
  local: Uint32Array | null;
  statsFile: string | null;
  /** Called once the socket and the tun device are ready. */
  onReady?: () => void;
  /** Stop after this many ms (tests); 0 = forever. */
  durationMs?: number;
}

/** What the stats file holds (read by `tsvs realserver doctor`, checks.ts DecapStatsView). */
export interface DecapStats extends DecapCounters {
  pid: number;
  type: DecapType;
  /** GUE: the UDP port; 0 otherwise. */
  port: number;
  tun: string;
  startedAt: string;
  accept: "host" | "fixed";
  /** How the host's addresses are followed ("host" only). */
  follow: "rtnetlink" | "poll" | null;
  addresses: string[];
  sources: string[];
  lastNotLocal: string | null;
}

/**
 * The receiving end for one tunnel type: recv() fills the shared buffer and returns the length
 * (or -1 with errno set), src/dst are the outer addresses of the last datagram.
 */
interface Receiver {
  fd: number;
  recv(): number;
  src(): number;
  dst(): number;
}

function rawReceiver(fd: number, base: number, buf: Uint8Array): Receiver {
  const n = nat();
  return {
    fd,
    recv: () => Number(n.recv(fd, base, BUF_SIZE, 0)),
    src: () => readU32be(buf, 12),
    dst: () => readU32be(buf, 16),
  };
}

/** recvmmsg of one datagram with its source (msg_name) and IP_PKTINFO destination. */
function gueReceiver(fd: number, base: number): Receiver {
  const c = libc();
  const k = c.koffi;
  const size = SIZEOF_MMSGHDR + SIZEOF_IOVEC + SIZEOF_SOCKADDR_IN + PKTINFO_CMSG_SPACE;
  const mem = k.alloc("uint8_t", size);
  const at = addressOf(mem);
  const dv = new DataView(k.view(mem, size) as ArrayBuffer);
  const iov = SIZEOF_MMSGHDR;
  const name = iov + SIZEOF_IOVEC;
  const ctl = name + SIZEOF_SOCKADDR_IN;
  dv.setBigUint64(iov, BigInt(base), true);
  dv.setBigUint64(iov + 8, BigInt(BUF_SIZE), true);
  dv.setBigUint64(MSG_NAME, BigInt(at + name), true);
  dv.setBigUint64(MSG_IOV, BigInt(at + iov), true);
  dv.setBigUint64(MSG_IOVLEN, 1n, true);
  dv.setBigUint64(MSG_CONTROL, BigInt(at + ctl), true);
  let dst = 0;
  return {
    fd,
    recv: () => {
      dv.setUint32(MSG_NAMELEN, SIZEOF_SOCKADDR_IN, true);
      dv.setBigUint64(MSG_CONTROLLEN, BigInt(PKTINFO_CMSG_SPACE), true);
      const r = c.recvmmsg(fd, at, 1, 0, null);
      if (r < 1) return -1;
      dst = 0;
      // One cmsg asked for: IP_PKTINFO (level IPPROTO_IP), ipi_addr = the header's destination.
      if (
        Number(dv.getBigUint64(MSG_CONTROLLEN, true)) >= SIZEOF_CMSGHDR + 12 &&
        dv.getInt32(ctl + 8, true) === IPPROTO_IP &&
        dv.getInt32(ctl + 12, true) === IP_PKTINFO
      )
        dst = dv.getUint32(ctl + SIZEOF_CMSGHDR + 8, false);
      return dv.getUint32(MMSG_LEN, true);
    },
    src: () => dv.getUint32(name + 4, false),
    dst: () => dst,
  };
}

/** Runs the decapsulator loop (blocking: meant for its own process). Returns the counters. */
export function runDecap(opts: DecapOptions): DecapCounters {
  const type = opts.type ?? "ipip";
  const port = opts.port ?? 0;
  if (type === "gue" && (port < 1 || port > 65535))
    throw new TsvsError("TSVS_ERR_USAGE", "GUE needs the UDP port (--port 1..65535)");
  const c = libc();
  const n = nat();
  const tunFd = openTun(opts.tun);
  execFileSync("ip", ["link", "set", opts.tun, "up"], { stdio: "ignore" });
  try {
    writeFileSync(`/proc/sys/net/ipv4/conf/${opts.tun}/rp_filter`, "0");
  } catch {
    // best effort; realserver doctor reports the effective value
  }
  const mem = c.koffi.alloc("uint8_t", BUF_SIZE);
  const base = addressOf(mem);
  const buf = new Uint8Array(c.koffi.view(mem, BUF_SIZE));
  const rx =
    type === "gue"
      ? gueReceiver(openGueSocket(port, 1000), base)
      : rawReceiver(
          type === "gre"
            ? openRawSocket(IPPROTO_GRE, "IPPROTO_GRE", 1000)
            : openRawSocket(IPPROTO_IPIP, "IPPROTO_IPIP", 1000),
          base,
          buf,
        );
  const tally = new DecapTally();
  const cnt = tally.cnt;
  const follow = opts.local === null;
  let accept = opts.local ?? hostAddresses();
  let refreshedAt = Date.now();
  let rtnl: RtnlSocket | null = null;
  if (follow) {
    try {
      rtnl = RtnlSocket.open(RTMGRP_IPV4_IFADDR);
    } catch {
      rtnl = null; // polled instead
    }
  }
  let rtnlCheckedAt = 0;
  const refresh = (now: number): void => {
    refreshedAt = now;
    try {
      accept = hostAddresses();
    } catch {
      // keep the last list; the next refresh tries again
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
      port: type === "gue" ? port : 0,
      tun: opts.tun,
      startedAt,
      accept: follow ? "host" : "fixed",
      follow: !follow ? null : rtnl !== null ? "rtnetlink" : "poll",
      addresses: Array.from(accept, fmtU32),
      ...cnt,
      sources: Array.from(tally.sources.subarray(0, tally.nSources), fmtU32),
      lastNotLocal: tally.lastNotLocal < 0 ? null : fmtU32(tally.lastNotLocal),
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
    const len = rx.recv();
    // errno first: the refresh below runs a process, which overwrites it.
    const e = len < 0 ? c.errno() : 0;
    const now = Date.now();
    if (rtnl !== null) {
      if (len < 0 || now - rtnlCheckedAt >= RTNL_CHECK_MS) {
        rtnlCheckedAt = now;
        const r = rtnl.read();
        if (r.datagrams > 0 || r.lost) refresh(now);
      }
    } else if (follow && now - refreshedAt >= ADDR_REFRESH_MS) refresh(now);
    if (len < 0) {
      if (e !== EAGAIN && e !== EINTR) throw new SyscallError(`recv(${type.toUpperCase()})`, e);
      writeStats(now);
      if (end !== 0 && now > end) break;
      continue;
    }
    const dst = rx.dst();
    let off = classify(type, buf, len, dst, accept);
    if (off === DECAP_NOT_LOCAL && follow && now - refreshedAt >= ADDR_MISS_REFRESH_MS) {
      // An address added since the last read: read them again before refusing.
      refresh(now);
      off = classify(type, buf, len, dst, accept);
    }
    tally.account(off, rx.src(), dst);
    if (off >= 0) {
      const innerLen = (buf[off + 2] << 8) | buf[off + 3];
      if (Number(n.write(tunFd, base + off, innerLen)) === innerLen) cnt.delivered++;
      else cnt.writeErrors++;
    }
    if (now - writtenAt >= 1000) writeStats(now);
    if (end !== 0 && now > end) break;
  }
  writeStats(Date.now());
  rtnl?.close();
  c.close(rx.fd);
  c.close(tunFd);
  c.koffi.free(mem);
  return cnt;
}

function parseIPv4u32(s: string): number {
  const p = s.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new TsvsError("TSVS_ERR_USAGE", `bad address '${s}'`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let tun = "tsvsipip0";
  let type: DecapType = "ipip";
  let port = 0;
  let local: number[] | null = null;
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
      } else if (argv[i] === "--port") port = Number(v);
      else if (argv[i] === "--local")
        local = v
          .split(",")
          .filter((x) => x !== "")
          .map(parseIPv4u32);
      else if (argv[i] === "--stats") statsFile = v;
      else throw new TsvsError("TSVS_ERR_USAGE", `unknown argument '${argv[i]}'`);
    }
    runDecap({
      type,
      port,
      tun,
      local: local === null ? null : Uint32Array.from(local),
      statsFile,
      onReady: () => process.stdout.write(`ready ${tun}\n`),
    });
  } catch (e) {
    process.stderr.write(`tsvs decap: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
