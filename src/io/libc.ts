// Linux libc bindings for the packet I/O backends, through koffi (prebuilt N-API binaries, no
// install script). Loaded lazily: importing this module costs nothing until libc() is first called,
// so the in-memory network and the CLI's commands touch FFI only where they need the kernel (e.g.
// `tsvs realserver`'s netns cookie).
//
// Every function is declared with plain integer and `void *` parameters: the caller owns the memory
// (koffi.alloc for anything the kernel reads after the call returns, or a Buffer for the duration of
// one call) and lays out the C structs itself with DataView (layouts below are the LP64 ones of
// x86_64 and aarch64; other ABIs are refused in libc()).

import { createRequire } from "node:module";
import { arch, platform } from "node:os";
import type * as Koffi from "koffi";
import { TsvsError } from "../core/errors.js";

export type KoffiModule = typeof Koffi;
/** An opaque native pointer as koffi hands it out (koffi.alloc) or accepts it (Buffer, pointer). */
export type NativePtr = unknown;

// <linux/socket.h>, <linux/if_packet.h>, <linux/if_ether.h>, <bits/poll.h>, <asm-generic/errno-base.h>
export const AF_PACKET = 17;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const SO_ERROR = 4;
/** The socket's network namespace's cookie, a u64 never reused before reboot (Linux 5.14). */
export const SO_NETNS_COOKIE = 71;
export const AF_UNIX = 1;
export const SOCK_DGRAM = 2;
export const SOL_PACKET = 263;
export const PACKET_ADD_MEMBERSHIP = 1;
export const PACKET_STATISTICS = 6;
export const PACKET_AUXDATA = 8;
export const PACKET_IGNORE_OUTGOING = 23;
export const PACKET_RX_RING = 5;
export const PACKET_VERSION = 10;
export const PACKET_TX_RING = 13;
/** Every frame received or sent is preceded by a struct virtio_net_hdr (src/core/packet/vnet.ts). */
export const PACKET_VNET_HDR = 15;
export const PACKET_FANOUT = 18;
export const PACKET_QDISC_BYPASS = 20;
export const PACKET_FANOUT_DATA = 22;
export const TPACKET_V2 = 1;
export const TPACKET_V3 = 2;
// PACKET_FANOUT modes and flags (<linux/if_packet.h>; the mode is the low byte of the option's upper
// half, flags above it): the group id is the low 16 bits.
export const PACKET_FANOUT_HASH = 0;
export const PACKET_FANOUT_LB = 1;
export const PACKET_FANOUT_CPU = 2;
export const PACKET_FANOUT_CBPF = 6;
export const PACKET_FANOUT_FLAG_DEFRAG = 0x8000;
export const SO_ATTACH_FILTER = 26;
export const SO_DETACH_FILTER = 27;
export const SO_LOCK_FILTER = 44;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_LOCKED = 0x2000;
export const MAP_POPULATE = 0x8000;
export const PACKET_MR_MULTICAST = 0;
export const PACKET_MR_PROMISC = 1;
export const PACKET_MR_UNICAST = 3;
export const PACKET_HOST = 0;
export const PACKET_BROADCAST = 1;
export const PACKET_MULTICAST = 2;
export const PACKET_OTHERHOST = 3;
export const PACKET_OUTGOING = 4;
export const ETH_P_ALL = 0x0003;
export const MSG_DONTWAIT = 0x40;
export const MSG_TRUNC = 0x20;
export const MSG_CTRUNC = 0x08;
export const POLLIN = 0x001;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;
export const EINTR = 4;
export const EAGAIN = 11;
export const EINVAL = 22;
export const ENOBUFS = 105;
/** A bound packet socket's device went down (packet_notifier sets it once in sk_err). */
export const ENETDOWN = 100;
export const SCHED_OTHER = 0;
export const SCHED_RR = 2;
/** sizeof(cpu_set_t) in glibc: 1024 CPUs. */
export const SIZEOF_CPU_SET = 128;
export const SIOCGIFMTU = 0x8921;
export const SIOCGIFHWADDR = 0x8927;
export const IFNAMSIZ = 16;

// struct layouts (LP64)
export const SIZEOF_IOVEC = 16; // { void *iov_base; size_t iov_len; }
export const SIZEOF_MMSGHDR = 64; // { struct msghdr msg_hdr (56); unsigned int msg_len; } padded to 8
export const MSG_NAME = 0;
export const MSG_NAMELEN = 8;
export const MSG_IOV = 16;
export const MSG_IOVLEN = 24;
export const MSG_CONTROL = 32;
export const MSG_CONTROLLEN = 40;
export const MSG_FLAGS = 48;
export const MMSG_LEN = 56;
export const SIZEOF_SOCKADDR_LL = 20; // family u16, protocol be16, ifindex s32, hatype u16, pkttype u8, halen u8, addr[8]
export const SLL_PROTOCOL = 2;
export const SLL_IFINDEX = 4;
export const SLL_PKTTYPE = 10;
// struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; } then data at CMSG_ALIGN(16).
export const SIZEOF_CMSGHDR = 16;
export const CMSG_LEN_OFF = 0;
export const CMSG_LEVEL = 8;
export const CMSG_TYPE = 12;
// struct tpacket_auxdata { u32 tp_status, tp_len, tp_snaplen; u16 tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid; }
export const SIZEOF_TPACKET_AUXDATA = 20;
export const AUX_STATUS = 0;
export const AUX_LEN = 4;
export const AUX_SNAPLEN = 8;
export const AUX_MAC = 12;
export const AUX_NET = 14;
export const AUX_VLAN_TCI = 16;
export const AUX_VLAN_TPID = 18;
/** CMSG_LEN(sizeof(struct tpacket_auxdata)): the smallest cmsg_len that holds the whole struct. */
export const AUXDATA_CMSG_LEN = SIZEOF_CMSGHDR + SIZEOF_TPACKET_AUXDATA;
/** CMSG_SPACE(sizeof(struct tpacket_auxdata)): 16 + 24, the control buffer per received message. */
export const AUXDATA_CMSG_SPACE = SIZEOF_CMSGHDR + ((SIZEOF_TPACKET_AUXDATA + 7) & ~7);
// tp_status bits (<linux/if_packet.h>), as packet_recvmsg() in net/packet/af_packet.c sets them.
export const TP_STATUS_CSUMNOTREADY = 1 << 3; // skb->ip_summed == CHECKSUM_PARTIAL
export const TP_STATUS_VLAN_VALID = 1 << 4; // tp_vlan_tci holds a tag taken out of the frame
export const TP_STATUS_VLAN_TPID_VALID = 1 << 6;
export const TP_STATUS_CSUM_VALID = 1 << 7;
export const SIZEOF_POLLFD = 8; // { int fd; short events; short revents; }
export const SIZEOF_IFREQ = 40; // name[16] + union (sockaddr / int)
export const SIZEOF_PACKET_MREQ = 16; // { int ifindex; u16 type; u16 alen; u8 address[8]; }

export interface Libc {
  readonly koffi: KoffiModule;
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: NativePtr, addrlen: number): number;
  setsockopt(fd: number, level: number, name: number, val: NativePtr, len: number): number;
  getsockopt(fd: number, level: number, name: number, val: NativePtr, lenp: NativePtr): number;
  /** Hot path: msgvec is a plain address (see addressOf), so a batch can start at any entry. */
  recvmmsg(fd: number, msgvec: number, vlen: number, flags: number, timeout: null): number;
  sendmmsg(fd: number, msgvec: number, vlen: number, flags: number): number;
  poll(fds: number, nfds: number, timeoutMs: number): number;
  close(fd: number): number;
  /** mmap(2) of a packet socket's ring: the returned pointer is koffi's (view it with koffi.view). */
  mmap(len: number, prot: number, flags: number, fd: number): NativePtr;
  munmap(addr: NativePtr, len: number): number;
  /**
   * mmap(2) in full, the address as an integer (0n: the kernel's choice): for a mapping placed
   * inside a reservation (MAP_FIXED) or at a page offset (AF_XDP's rings). The returned pointer is
   * koffi's; compare koffi.address(p) with MAP_FAILED.
   */
  mmapAt(addr: bigint, len: number, prot: number, flags: number, fd: number, off: number): NativePtr;
  munmapAt(addr: bigint, len: number): number;
  madvise(addr: bigint, len: number, advice: number): number;
  /** send(2) with a plain address: (fd, 0, 0, 0) is the kick of a PACKET_TX_RING. */
  send(fd: number, buf: number, len: number, flags: number): number;
  /** recv(2) into a plain address (the rtnetlink socket reads its notifications with MSG_DONTWAIT). */
  recv(fd: number, buf: number, len: number, flags: number): number;
  if_nametoindex(name: string): number;
  ioctlPtr(fd: number, request: number, arg: NativePtr): number;
  strerror(errnum: number): string;
  errno(): number;
  /**
   * sched_setaffinity(2)/sched_getaffinity(2) of the calling *thread* (pid 0: on Linux the call
   * acts on one task, i.e. the thread that makes it — what a worker_thread needs to place itself).
   * mask: a cpu_set_t-like byte buffer, bit n = CPU n.
   */
  sched_setaffinity(pid: number, size: number, mask: NativePtr): number;
  sched_getaffinity(pid: number, size: number, mask: NativePtr): number;
  gettid(): number;
  /** malloc_trim(3): gives the allocator's free memory back to the kernel. */
  malloc_trim(pad: number): number;
}

let cached: Libc | null = null;

export function libc(): Libc {
  if (cached !== null) return cached;
  if (platform() !== "linux")
    throw new TsvsError("TSVS_ERR_PLATFORM", `tsvs packet I/O needs Linux (this is ${platform()})`);
  if (arch() !== "x64" && arch() !== "arm64") {
    throw new TsvsError(
      "TSVS_ERR_PLATFORM",
      `tsvs packet I/O struct layouts are written for x64/arm64 (this is ${arch()})`,
    );
  }
  const koffi = createRequire(import.meta.url)("koffi") as KoffiModule;
  const lib = koffi.load("libc.so.6");
  const ioctl = lib.func("int ioctl(int fd, unsigned long request, ...)");
  const raw = {
    socket: lib.func("int socket(int domain, int type, int protocol)"),
    bind: lib.func("int bind(int fd, void *addr, uint32_t addrlen)"),
    setsockopt: lib.func("int setsockopt(int fd, int level, int name, void *val, uint32_t len)"),
    getsockopt: lib.func("int getsockopt(int fd, int level, int name, void *val, void *lenp)"),
    recvmmsg: lib.func("int recvmmsg(int fd, uintptr_t msgvec, unsigned int vlen, int flags, void *timeout)"),
    sendmmsg: lib.func("int sendmmsg(int fd, uintptr_t msgvec, unsigned int vlen, int flags)"),
    poll: lib.func("int poll(uintptr_t fds, unsigned long nfds, int timeout)"),
    close: lib.func("int close(int fd)"),
    mmap: lib.func("void *mmap(void *addr, size_t len, int prot, int flags, int fd, intptr_t off)"),
    munmap: lib.func("int munmap(void *addr, size_t len)"),
    mmapAt: lib.func("void *mmap(uint64_t addr, size_t len, int prot, int flags, int fd, intptr_t off)"),
    munmapAt: lib.func("int munmap(uint64_t addr, size_t len)"),
    madvise: lib.func("int madvise(uint64_t addr, size_t len, int advice)"),
    send: lib.func("intptr_t send(int fd, uintptr_t buf, size_t len, int flags)"),
    recv: lib.func("intptr_t recv(int fd, uintptr_t buf, size_t len, int flags)"),
    if_nametoindex: lib.func("unsigned int if_nametoindex(const char *name)"),
    strerror: lib.func("const char *strerror(int errnum)"),
    sched_setaffinity: lib.func("int sched_setaffinity(int pid, size_t size, void *mask)"),
    sched_getaffinity: lib.func("int sched_getaffinity(int pid, size_t size, void *mask)"),
    gettid: lib.func("int gettid(void)"),
    malloc_trim: lib.func("int malloc_trim(size_t pad)"),
  };
  cached = {
    koffi,
    socket: raw.socket,
    bind: raw.bind,
    setsockopt: raw.setsockopt,
    getsockopt: raw.getsockopt,
    recvmmsg: raw.recvmmsg,
    sendmmsg: raw.sendmmsg,
    poll: raw.poll,
    close: raw.close,
    mmap: (len, prot, flags, fd) => raw.mmap(null, len, prot, flags, fd, 0),
    munmap: raw.munmap,
    mmapAt: raw.mmapAt,
    munmapAt: raw.munmapAt,
    madvise: raw.madvise,
    send: raw.send,
    recv: raw.recv,
    if_nametoindex: raw.if_nametoindex,
    ioctlPtr: (fd, request, arg) => ioctl(fd, request, "void *", arg),
    strerror: raw.strerror,
    errno: () => koffi.errno(),
    sched_setaffinity: raw.sched_setaffinity,
    sched_getaffinity: raw.sched_getaffinity,
    gettid: raw.gettid,
    malloc_trim: raw.malloc_trim,
  };
  return cached;
}

/**
 * The address of koffi-allocated memory as a number. User-space addresses on x86_64 and aarch64 fit
 * in 48 bits, far below 2^53, so a double holds them exactly and the hot path never builds a BigInt.
 */
export function addressOf(ptr: NativePtr): number {
  const a = libc().koffi.address(ptr);
  if (a > BigInt(Number.MAX_SAFE_INTEGER))
    throw new TsvsError("TSVS_ERR_PLATFORM", "native address beyond 2^53");
  return Number(a);
}

/** An Error carrying the errno of a failed call, e.g. "socket(AF_PACKET): Operation not permitted". */
export class SyscallError extends Error {
  readonly errno: number;
  constructor(what: string, errno: number) {
    super(`${what}: ${libc().strerror(errno)} (errno ${errno})`);
    this.name = "SyscallError";
    this.errno = errno;
  }
}

/** The CPUs the calling thread may run on (sched_getaffinity of pid 0), ascending. */
export function threadAffinity(): number[] {
  const c = libc();
  const mask = Buffer.alloc(SIZEOF_CPU_SET);
  if (c.sched_getaffinity(0, SIZEOF_CPU_SET, mask) !== 0)
    throw new SyscallError("sched_getaffinity", c.errno());
  const cpus: number[] = [];
  for (let i = 0; i < SIZEOF_CPU_SET * 8; i++) if ((mask[i >> 3] >> (i & 7)) & 1) cpus.push(i);
  return cpus;
}

/** Restricts the calling thread to `cpus` (sched_setaffinity of pid 0: this thread only). */
export function setThreadAffinity(cpus: readonly number[]): void {
  const c = libc();
  const mask = Buffer.alloc(SIZEOF_CPU_SET);
  for (const n of cpus) {
    if (!Number.isInteger(n) || n < 0 || n >= SIZEOF_CPU_SET * 8) throw new RangeError(`bad CPU ${n}`);
    mask[n >> 3] |= 1 << (n & 7);
  }
  if (c.sched_setaffinity(0, SIZEOF_CPU_SET, mask) !== 0)
    throw new SyscallError("sched_setaffinity", c.errno());
}
