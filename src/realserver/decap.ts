// User-space IPIP decapsulator for real servers of the TUN method on kernels without the `ipip`
// module (RFC 2003: the inner datagram is delivered as it is, TTL untouched).
//
//   node dist/src/realserver/decap.js --tun tsvsipip0 [--local 198.18.1.11,…] [--stats FILE]
//
// Accepts IPIP addressed to any local address of the host, on any interface, as the kernel's
// fallback tunnel tunl0 does: a real server with a link toward the director and another toward the
// clients is tunnelled to the first link's address, which is not the default route's (issue 10).
// The addresses are read (`ip -j -4 addr`) at start and again whenever rtnetlink reports an IPv4
// address change (RTMGRP_IPV4_IFADDR, looked at every RTNL_CHECK_MS while packets flow and on each
// idle receive timeout; every ADDR_REFRESH_MS instead when no netlink socket can be had), and at
// once (at most every ADDR_MISS_REFRESH_MS) when a datagram comes for one not known yet. --local
// restricts it to a fixed list, as `ip tunnel add … local A` would.
//
// Receive: a raw IPv4 socket for protocol 4. Linux hands it every IPIP datagram addressed to a
// local address, reassembled and past the INPUT hook, with its outer header. It also matters that
// it exists: with no handler for protocol 4, ip_protocol_deliver_rcu (net/ipv4/ip_input.c) answers
// ICMP protocol-unreachable unless a raw socket took the datagram, so without it every tunnelled
// packet would draw an ICMP error back to the director. (An AF_PACKET socket on the RIP interface
// would see the frames too, but would need its own address/fragment checks and would not stop the
// ICMP errors.)
// Deliver: the inner datagram is written to a tun device (IFF_TUN | IFF_NO_PI), so the kernel
// receives it as if it arrived on that interface: VIP on lo → local socket. rp_filter must be off
// on the tun device (the client's address is routed elsewhere): set here and by `realserver setup`.
//
// One native buffer, read through one typed-array view: nothing is allocated per packet.

import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { TsvsError } from "../core/errors.js";
import { addressOf, EAGAIN, EINTR, libc, SOL_SOCKET, SyscallError } from "../io/libc.js";
import { RTMGRP_IPV4_IFADDR, RtnlSocket } from "../io/rtnetlink.js";

const AF_INET = 2;
const SOCK_RAW = 3;
const IPPROTO_IPIP = 4;
const SO_RCVTIMEO = 20;
const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
// <linux/if_tun.h>: TUNSETIFF = _IOW('T', 202, int)
const TUNSETIFF = 0x400454ca;
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const BUF_SIZE = 65536;

export interface DecapCounters {
  received: number;
  delivered: number;
  /** Outer header unusable (too short, not IPv4). */
  badOuter: number;
  /** Inner datagram not IPv4 or its total length beyond what arrived. */
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

/** A raw IPv4 socket receiving IPIP (protocol 4) datagrams for local addresses. */
export function openIpipSocket(timeoutMs: number): number {
  const c = libc();
  const fd = c.socket(AF_INET, SOCK_RAW | O_CLOEXEC, IPPROTO_IPIP);
  if (fd < 0) throw new SyscallError("socket(AF_INET, SOCK_RAW, IPPROTO_IPIP)", c.errno());
  const tv = Buffer.alloc(16);
  tv.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
  tv.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1000), 8);
  if (c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16) < 0)
    throw new SyscallError("setsockopt(SO_RCVTIMEO)", c.errno());
  return fd;
}

export function newCounters(): DecapCounters {
  return { received: 0, delivered: 0, badOuter: 0, badInner: 0, notLocal: 0, writeErrors: 0 };
}

/**
 * Checks one received outer datagram in buf[0, len) and returns the inner datagram's offset, or a
 * negative code (-1 bad outer, -2 bad inner, -3 outer destination not accepted). accept: host-order
 * u32 addresses; empty = any.
 */
export function innerOffset(buf: Uint8Array, len: number, accept: Uint32Array): number {
  if (len < 20 || buf[0] >> 4 !== 4) return -1;
  const ihl = (buf[0] & 0x0f) * 4;
  if (ihl < 20 || len < ihl + 20 || buf[9] !== IPPROTO_IPIP) return -1;
  if (accept.length > 0 && !hasAddr(accept, readU32be(buf, 16))) return -3;
  if (buf[ihl] >> 4 !== 4) return -2;
  const innerLen = (buf[ihl + 2] << 8) | buf[ihl + 3];
  if (innerLen < 20 || innerLen > len - ihl) return -2;
  return ihl;
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
/** At most this many distinct tunnel sources are remembered (doctor finds the director from them). */
const MAX_SOURCES = 8;

export interface DecapOptions {
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
  tun: string;
  startedAt: string;
  accept: "host" | "fixed";
  /** How the host's addresses are followed ("host" only). */
  follow: "rtnetlink" | "poll" | null;
  addresses: string[];
  sources: string[];
  lastNotLocal: string | null;
}

/** Runs the decapsulator loop (blocking: meant for its own process). Returns the counters. */
export function runDecap(opts: DecapOptions): DecapCounters {
  const c = libc();
  const n = nat();
  const tunFd = openTun(opts.tun);
  execFileSync("ip", ["link", "set", opts.tun, "up"], { stdio: "ignore" });
  try {
    writeFileSync(`/proc/sys/net/ipv4/conf/${opts.tun}/rp_filter`, "0");
  } catch {
    // best effort; realserver doctor reports the effective value
  }
  const sock = openIpipSocket(1000);
  const mem = c.koffi.alloc("uint8_t", BUF_SIZE);
  const base = addressOf(mem);
  const buf = new Uint8Array(c.koffi.view(mem, BUF_SIZE));
  const cnt = newCounters();
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
  const sources = new Uint32Array(MAX_SOURCES);
  let nSources = 0;
  let lastNotLocal = -1;
  const startedAt = new Date().toISOString();
  // Written when something changed, at most once a second while packets flow, and when idle.
  let written = "";
  let writtenAt = 0;
  const writeStats = (now: number): void => {
    if (opts.statsFile === null) return;
    const st: DecapStats = {
      pid: process.pid,
      tun: opts.tun,
      startedAt,
      accept: follow ? "host" : "fixed",
      follow: !follow ? null : rtnl !== null ? "rtnetlink" : "poll",
      addresses: Array.from(accept, fmtU32),
      ...cnt,
      sources: Array.from(sources.subarray(0, nSources), fmtU32),
      lastNotLocal: lastNotLocal < 0 ? null : fmtU32(lastNotLocal),
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
    const len = Number(n.recv(sock, base, BUF_SIZE, 0));
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
      if (e !== EAGAIN && e !== EINTR) throw new SyscallError("recv(IPIP)", e);
      writeStats(now);
      if (end !== 0 && now > end) break;
      continue;
    }
    cnt.received++;
    let off = innerOffset(buf, len, accept);
    if (off === -3 && follow && now - refreshedAt >= ADDR_MISS_REFRESH_MS) {
      // An address added since the last read: read them again before refusing.
      refresh(now);
      off = innerOffset(buf, len, accept);
    }
    if (off >= 0 || off === -3) {
      const src = readU32be(buf, 12);
      if (nSources < MAX_SOURCES && !hasAddr(sources, src, nSources)) sources[nSources++] = src;
    }
    if (off < 0) {
      if (off === -1) cnt.badOuter++;
      else if (off === -2) cnt.badInner++;
      else {
        cnt.notLocal++;
        lastNotLocal = readU32be(buf, 16);
      }
    } else {
      const innerLen = (buf[off + 2] << 8) | buf[off + 3];
      if (Number(n.write(tunFd, base + off, innerLen)) === innerLen) cnt.delivered++;
      else cnt.writeErrors++;
    }
    if (now - writtenAt >= 1000) writeStats(now);
    if (end !== 0 && now > end) break;
  }
  writeStats(Date.now());
  rtnl?.close();
  c.close(sock);
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
  let local: number[] | null = null;
  let statsFile: string | null = null;
  const argv = process.argv.slice(2);
  try {
    for (let i = 0; i < argv.length; i += 2) {
      const v = argv[i + 1] ?? "";
      if (argv[i] === "--tun") tun = v;
      else if (argv[i] === "--local")
        local = v
          .split(",")
          .filter((x) => x !== "")
          .map(parseIPv4u32);
      else if (argv[i] === "--stats") statsFile = v;
      else throw new TsvsError("TSVS_ERR_USAGE", `unknown argument '${argv[i]}'`);
    }
    runDecap({
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
