// User-space IPIP decapsulator for real servers of the TUN method on kernels without the `ipip`
// module (RFC 2003: the inner datagram is delivered as it is, TTL untouched).
//
//   node dist/src/realserver/decap.js --tun tsvsipip0 [--rip 198.18.1.11,…] [--stats FILE]
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
import { addressOf, EAGAIN, EINTR, libc, SOL_SOCKET, SyscallError } from "../io/libc.js";

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
  /** Outer destination not one of the --rip addresses. */
  notForRip: number;
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
  if (name.length === 0 || name.length > 15) throw new Error(`bad tun name '${name}'`);
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
  return { received: 0, delivered: 0, badOuter: 0, badInner: 0, notForRip: 0, writeErrors: 0 };
}

/**
 * Checks one received outer datagram in buf[0, len) and returns the inner datagram's offset, or a
 * negative code (-1 bad outer, -2 bad inner, -3 not for a RIP). rips: host-order u32 addresses;
 * empty = any local address.
 */
export function innerOffset(buf: Uint8Array, len: number, rips: Uint32Array): number {
  if (len < 20 || buf[0] >> 4 !== 4) return -1;
  const ihl = (buf[0] & 0x0f) * 4;
  if (ihl < 20 || len < ihl + 20 || buf[9] !== IPPROTO_IPIP) return -1;
  if (rips.length > 0) {
    const dst = ((buf[16] << 24) | (buf[17] << 16) | (buf[18] << 8) | buf[19]) >>> 0;
    let found = false;
    for (let i = 0; i < rips.length; i++) if (rips[i] === dst) found = true;
    if (!found) return -3;
  }
  if (buf[ihl] >> 4 !== 4) return -2;
  const innerLen = (buf[ihl + 2] << 8) | buf[ihl + 3];
  if (innerLen < 20 || innerLen > len - ihl) return -2;
  return ihl;
}

export interface DecapOptions {
  tun: string;
  rips: Uint32Array;
  statsFile: string | null;
  /** Called once the socket and the tun device are ready. */
  onReady?: () => void;
  /** Stop after this many ms (tests); 0 = forever. */
  durationMs?: number;
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
  let lastWritten = -1;
  const writeStats = (): void => {
    const total = cnt.received + cnt.writeErrors;
    if (opts.statsFile === null || total === lastWritten) return;
    lastWritten = total;
    writeFileSync(opts.statsFile, `${JSON.stringify({ pid: process.pid, tun: opts.tun, ...cnt })}\n`);
  };
  writeStats();
  opts.onReady?.();
  const end = opts.durationMs !== undefined && opts.durationMs > 0 ? Date.now() + opts.durationMs : 0;
  let sinceStats = 0;
  for (;;) {
    const len = Number(n.recv(sock, base, BUF_SIZE, 0));
    if (len < 0) {
      const e = c.errno();
      if (e !== EAGAIN && e !== EINTR) throw new SyscallError("recv(IPIP)", e);
      writeStats();
      if (end !== 0 && Date.now() > end) break;
      continue;
    }
    cnt.received++;
    const off = innerOffset(buf, len, opts.rips);
    if (off < 0) {
      if (off === -1) cnt.badOuter++;
      else if (off === -2) cnt.badInner++;
      else cnt.notForRip++;
    } else {
      const innerLen = (buf[off + 2] << 8) | buf[off + 3];
      if (Number(n.write(tunFd, base + off, innerLen)) === innerLen) cnt.delivered++;
      else cnt.writeErrors++;
    }
    if (++sinceStats >= 1024) {
      sinceStats = 0;
      writeStats();
    }
    if (end !== 0 && Date.now() > end) break;
  }
  writeStats();
  c.close(sock);
  c.close(tunFd);
  c.koffi.free(mem);
  return cnt;
}

function parseIPv4u32(s: string): number {
  const p = s.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new Error(`bad address '${s}'`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let tun = "tsvsipip0";
  let rips: number[] = [];
  let statsFile: string | null = null;
  const argv = process.argv.slice(2);
  try {
    for (let i = 0; i < argv.length; i += 2) {
      const v = argv[i + 1] ?? "";
      if (argv[i] === "--tun") tun = v;
      else if (argv[i] === "--rip")
        rips = v
          .split(",")
          .filter((x) => x !== "")
          .map(parseIPv4u32);
      else if (argv[i] === "--stats") statsFile = v;
      else throw new Error(`unknown argument '${argv[i]}'`);
    }
    runDecap({
      tun,
      rips: Uint32Array.from(rips),
      statsFile,
      onReady: () => process.stdout.write(`ready ${tun}\n`),
    });
  } catch (e) {
    process.stderr.write(`tsvs decap: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
