// AF_XDP: frames move between the driver and our memory through four single-producer/single-consumer
// rings over a UMEM, memory we register once (Documentation/networking/af_xdp.rst; layouts from
// include/uapi/linux/if_xdp.h):
//
//   fill ring        we → kernel   UMEM frames the kernel may receive into      (u64 addr)
//   rx ring          kernel → we   received frames                               (struct xdp_desc)
//   tx ring          we → kernel   frames to send                                (struct xdp_desc)
//   completion ring  kernel → we   frames sent, free again                       (u64 addr)
//
//   struct xdp_desc { u64 addr; u32 len; u32 options; }  — addr is an offset into the UMEM
//   struct xdp_ring_offset { u64 producer, consumer, desc, flags; }, four of them (rx, tx, fr, cr)
//     in struct xdp_mmap_offsets (getsockopt XDP_MMAP_OFFSETS); each ring is mmapped at its pgoff.
//
// Producer and consumer are free-running u32 indices; an entry is at index & (size - 1). A producer
// writes entries, then publishes the new producer index; a consumer reads the producer index,
// then the entries, then publishes its consumer index. The kernel pairs these with
// smp_load_acquire/smp_store_release (xsk_queue.h); here the indices are read and written with
// Atomics.load/Atomics.store on a Uint32Array over the mapped ring (sequentially consistent: at
// least the acquire/release the protocol needs, on x86_64 and aarch64 alike; Atomics work on a
// non-shared buffer, which is what koffi.view returns). Entries are plain typed-array accesses.
//
// One UMEM per worker (class Umem), shared by all its sockets (XDP_SHARED_UMEM: each socket on
// another interface or queue has its own fill and completion rings, Linux ≥ 5.10), so a frame
// received on one interface is sent from another by putting its address on that socket's tx ring:
// no copy in user space. The frame's bookkeeping (Umem.state) says who holds it: free, the kernel
// (fill ring, tx ring), or the worker (the last rx batch).
//
// The engine receives frames in place in the UMEM, rewrites them there, and they leave from the
// same UMEM frame (forward/queueAddress); a frame the engine builds is copied into a free UMEM
// frame (send, txBuffer/commit). Nothing is allocated per packet.

import { existsSync, readdirSync } from "node:fs";
import { TsvsError } from "../core/errors.js";
import type { BpfProgram } from "./bpf.js";
import { attachXdpAuto, attachXdpLink, BpfMap, loadXdpProgram, type XdpMode } from "./ebpf.js";
import type { FrameIo, PacketSocketCounters } from "./frame-io.js";
import {
  addressOf,
  EAGAIN,
  EINTR,
  ENOBUFS,
  libc,
  MSG_DONTWAIT,
  type NativePtr,
  SyscallError,
} from "./libc.js";
import { PLAIN_PARTIAL_WORD } from "./packet-base.js";
import { checkIfname, freeRegions, ifIndex, newCounters, pollIn, type Region } from "./packet-common.js";
import type { XdpShare } from "./xdp-share.js";

// <linux/socket.h>, <linux/if_xdp.h>
export const AF_XDP = 44;
export const SOL_XDP = 283;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const XDP_SHARED_UMEM = 1 << 0;
const XDP_USE_NEED_WAKEUP = 1 << 3;
const XDP_MMAP_OFFSETS = 1;
const XDP_RX_RING = 2;
const XDP_TX_RING = 3;
const XDP_UMEM_REG = 4;
const XDP_UMEM_FILL_RING = 5;
const XDP_UMEM_COMPLETION_RING = 6;
const XDP_STATISTICS = 7;
const XDP_OPTIONS = 8;
const XDP_OPTIONS_ZEROCOPY = 1;
const XDP_RING_NEED_WAKEUP = 1;
const XDP_PGOFF_RX_RING = 0;
const XDP_PGOFF_TX_RING = 0x80000000;
const XDP_UMEM_PGOFF_FILL_RING = 0x100000000;
const XDP_UMEM_PGOFF_COMPLETION_RING = 0x180000000;
const SIZEOF_SOCKADDR_XDP = 16; // u16 family, u16 flags, u32 ifindex, u32 queue_id, u32 shared_umem_fd
const SIZEOF_UMEM_REG = 32; // u64 addr, u64 len, u32 chunk_size, u32 headroom, u32 flags, u32 tx_metadata_len
const SIZEOF_MMAP_OFFSETS = 128;
const SIZEOF_XDP_STATISTICS = 48;
const PROT_RW = 3;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
const MAP_POPULATE = 0x8000;
const SIOCGIFHWADDR = 0x8927;
const SIOCGIFMTU = 0x8921;

// frame states (Umem.state)
const F_FREE = 0;
const F_KERNEL_RX = 1; // on a fill ring, or received and not yet taken from the rx ring
const F_USER = 2; // in the last rx batch of a socket, or taken for building (txBuffer)
const F_TX = 3; // on a tx ring until its completion

interface Mmap {
  ptr: NativePtr;
  addr: number;
  len: number;
  u32: Uint32Array;
}

// The rings live at page offsets up to 0x180000000: libc's mmapAt (libc.ts's mmap passes offset 0).
function mapRegion(len: number, flags: number, fd: number, off: number, what: string): Mmap {
  const c = libc();
  const p = c.mmapAt(0n, len, PROT_RW, flags, fd, off);
  if (p === null || c.koffi.address(p) === 0xffffffffffffffffn)
    throw new SyscallError(`mmap(${what})`, c.errno());
  return { ptr: p, addr: addressOf(p), len, u32: new Uint32Array(c.koffi.view(p, len)) };
}

function unmap(m: Mmap | null): void {
  if (m !== null) libc().munmapAt(BigInt(m.addr), m.len);
}

/** A native pointer to a process address (koffi takes pointers, not numbers). */
function pointerAt(addr: number): NativePtr {
  const pb = Buffer.alloc(8);
  pb.writeBigUInt64LE(BigInt(addr), 0);
  return libc().koffi.decode(pb, "void *") as NativePtr;
}

/** A view of memory mapped elsewhere in the process (another worker's mapping), by its address. */
function viewOf(addr: number, len: number): Mmap {
  const ptr = pointerAt(addr);
  return { ptr, addr, len, u32: new Uint32Array(libc().koffi.view(ptr, len)) };
}

/**
 * The frames of a worker's sockets: page-aligned memory (an anonymous mmap) registered with the
 * first socket, shared by the others. Frames are `frameSize` bytes (2048 or 4096: a frame holds a
 * whole packet, no multi-buffer). With several workers (`share`, xdp-share.ts) the memory, the
 * frames' states and the free list are the process's: worker 0's Umem maps the memory, the others
 * view it, and take/put run under the share's lock (lock()/unlock(), no-ops with one worker).
 */
export class Umem {
  readonly frames: number;
  readonly frameSize: number;
  readonly #shift: number;
  readonly bytes: Uint8Array;
  readonly addr: number;
  readonly len: number;
  /** Per frame: F_FREE, F_KERNEL_RX, F_USER, F_TX. */
  readonly state: Uint8Array;
  readonly #free: Uint32Array;
  readonly #share: XdpShare | null;
  #top = 0;
  #mem: Mmap | null;
  /** Live sockets bound to this UMEM: the first registered it, any of them can be shared from. */
  readonly #sockets = new Set<XdpSocket>();
  // Views for frame(i), one per frame at the offset the kernel last used (the rx headroom is the
  // same for every frame of a socket, so they are made once and reused).
  readonly #views: (Uint8Array | undefined)[];

  constructor(frames = 4096, frameSize = 4096, share: XdpShare | null = null) {
    if (frameSize !== 2048 && frameSize !== 4096) throw new RangeError("frameSize must be 2048 or 4096");
    if (!Number.isInteger(frames) || frames < 64 || frames > 1 << 20)
      throw new RangeError("frames: 64..2^20");
    if (share !== null && share.frames !== frames)
      throw new RangeError("Umem: the share holds another frame count");
    this.frames = frames;
    this.#share = share;
    this.#views = new Array(frames);
    if (share === null) {
      this.frameSize = frameSize;
      this.len = frames * frameSize;
      this.#mem = mapRegion(this.len, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0, "UMEM");
      this.state = new Uint8Array(frames);
      this.#free = new Uint32Array(frames);
      for (let i = frames - 1; i >= 0; i--) this.#free[this.#top++] = i;
    } else {
      this.#mem = share.locked(() => {
        let m: Mmap;
        if (share.ready) m = viewOf(share.addr, share.len);
        else {
          m = mapRegion(frames * frameSize, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0, "UMEM");
          share.init(m.addr, m.len, frameSize);
        }
        share.users(1);
        return m;
      });
      this.frameSize = share.frameSize;
      this.len = share.len;
      this.state = share.state;
      this.#free = share.free;
    }
    this.#shift = this.frameSize === 4096 ? 12 : 11;
    this.addr = this.#mem.addr;
    this.bytes = new Uint8Array(this.#mem.u32.buffer);
  }

  /** Several workers share these frames (and the fill and completion rings of their queues). */
  get shared(): boolean {
    return this.#share !== null;
  }

  /** Around take/put and the shared rings' indices; no-ops with one worker. */
  lock(): void {
    this.#share?.lock();
  }

  unlock(): void {
    this.#share?.unlock();
  }

  get freeFrames(): number {
    return this.#share === null ? this.#top : this.#share.top;
  }

  /** A free frame's index, or -1 (shared: under lock()). */
  take(): number {
    const sh = this.#share;
    if (sh === null) {
      if (this.#top === 0) return -1;
      return this.#free[--this.#top];
    }
    const t = sh.top;
    if (t === 0) return -1;
    sh.top = t - 1;
    return this.#free[t - 1];
  }

  /** Shared: under lock(). */
  put(frame: number): void {
    this.state[frame] = F_FREE;
    const sh = this.#share;
    if (sh === null) this.#free[this.#top++] = frame;
    else {
      const t = sh.top;
      this.#free[t] = frame;
      sh.top = t + 1;
    }
  }

  /** take() under the lock, for a single frame outside a locked section. */
  takeOne(): number {
    this.lock();
    try {
      return this.take();
    } finally {
      this.unlock();
    }
  }

  /** put() under the lock, for a single frame outside a locked section. */
  putOne(frame: number): void {
    this.lock();
    this.put(frame);
    this.unlock();
  }

  frameOf(off: number): number {
    return off >>> this.#shift;
  }

  offsetOf(frame: number): number {
    return frame << this.#shift;
  }

  /** A view from UMEM offset `off` to the end of its frame (reused while the offset repeats). */
  view(off: number): Uint8Array {
    const f = off >>> this.#shift;
    let v = this.#views[f];
    if (v === undefined || v.byteOffset !== off) {
      v = this.bytes.subarray(off, (f + 1) << this.#shift);
      this.#views[f] = v;
    }
    return v;
  }

  /** The fd new sockets share the UMEM through (-1: none yet, the next socket registers it). */
  shareFd(): number {
    for (const s of this.#sockets) return s.fd;
    return -1;
  }

  attach(s: XdpSocket): void {
    this.#sockets.add(s);
  }

  detach(s: XdpSocket): void {
    this.#sockets.delete(s);
  }

  get sockets(): number {
    return this.#sockets.size;
  }

  /**
   * Unmaps the memory; only once no socket uses it (the kernel holds its own pin until then).
   * Shared: the last worker's Umem unmaps it.
   */
  free(): void {
    if (this.#sockets.size > 0) throw new TsvsError("TSVS_ERR_INTERNAL", "Umem.free with sockets bound");
    const sh = this.#share;
    if (sh !== null) {
      if (sh.locked(() => sh.users(-1)) > 0) {
        this.#mem = null;
        return;
      }
    }
    unmap(this.#mem);
    this.#mem = null;
  }
}

/** One ring as mapped: producer/consumer word indices, entries (as u32 words), its size. */
class Ring {
  readonly size: number;
  readonly mask: number;
  readonly u32: Uint32Array;
  readonly prodIdx: number;
  readonly consIdx: number;
  readonly flagsIdx: number;
  readonly descIdx: number;
  /** Our cached producer (producer rings) or consumer (consumer rings). */
  cached = 0;
  constructor(
    readonly map: Mmap,
    off: DataView,
    base: number,
    size: number,
  ) {
    this.size = size;
    this.mask = size - 1;
    this.u32 = map.u32;
    this.prodIdx = Number(off.getBigUint64(base, true)) / 4;
    this.consIdx = Number(off.getBigUint64(base + 8, true)) / 4;
    this.descIdx = Number(off.getBigUint64(base + 16, true)) / 4;
    this.flagsIdx = Number(off.getBigUint64(base + 24, true)) / 4;
  }
  producer(): number {
    return Atomics.load(this.u32, this.prodIdx);
  }
  consumer(): number {
    return Atomics.load(this.u32, this.consIdx);
  }
  publishProducer(v: number): void {
    Atomics.store(this.u32, this.prodIdx, v);
  }
  publishConsumer(v: number): void {
    Atomics.store(this.u32, this.consIdx, v);
  }
  needWakeup(): boolean {
    return (Atomics.load(this.u32, this.flagsIdx) & XDP_RING_NEED_WAKEUP) !== 0;
  }
}

export interface XdpSocketOptions {
  /** The worker's UMEM (shared by its sockets). */
  umem: Umem;
  /** Interface rx queue this socket is bound to. Default 0. */
  queue?: number;
  /** Most frames per recvBatch. Default 64. */
  batch?: number;
  /**
   * Entries per ring (a power of two). Default 2048: ~8 ms at 250k pps of frames the kernel can
   * put aside while the worker is not running (a TPACKET_V3 ring of 8 MiB holds more).
   */
  ringSize?: number;
  /**
   * Hand every frame over with the offload word "checksum not finished" (PLAIN_PARTIAL_WORD), so
   * that the engine computes TCP/UDP checksums from scratch. XDP has no checksum status for a
   * frame, and a veth peer's (or a local sender's) frames carry only the pseudo-header sum
   * (CHECKSUM_PARTIAL, which the XDP path does not finish). Default: true on a virtual interface
   * (no /sys/class/net/IF/device), false on a NIC, whose received frames are complete.
   */
  finishChecksums?: boolean;
  /**
   * Several workers: bind onto worker 0's socket of the same interface queue (XDP_SHARED_UMEM),
   * using its fill and completion rings, mapped at these addresses, instead of rings of our own.
   */
  join?: { fd: number; fillAddr: number; fillLen: number; compAddr: number; compLen: number };
  /**
   * Several workers: called once at close; true when this was the last socket on its queue, which
   * then takes back what the shared fill and completion rings hold and unmaps them.
   */
  leave?: () => boolean;
}

const PKT_HOST = 0;
const PKT_BROADCAST = 1;
const PKT_MULTICAST = 2;
const PKT_OTHERHOST = 3;

/** Is ifname a virtual device (veth, tap…: no bus device behind it)? */
export function isVirtualInterface(ifname: string): boolean {
  return !existsSync(`/sys/class/net/${ifname}/device`);
}

/** The interface's rx queues (/sys/class/net/IF/queues/rx-N; 1 when sysfs does not say). */
export function rxQueueCount(ifname: string): number {
  try {
    const n = readdirSync(`/sys/class/net/${ifname}/queues`).filter((q) => q.startsWith("rx-")).length;
    return n > 0 ? n : 1;
  } catch {
    return 1;
  }
}

/** An AF_XDP socket on one rx queue of one interface, as a FrameIo. */
export class XdpSocket implements FrameIo {
  readonly ifname: string;
  readonly ifindex: number;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly batch: number;
  readonly queue: number;
  readonly counters: PacketSocketCounters = newCounters();
  readonly vnetHdr = false;
  /** Bound in zero-copy mode (the driver's own memory is the UMEM) rather than copy mode. */
  readonly zeroCopy: boolean;
  readonly finishChecksums: boolean;
  readonly umem: Umem;
  /** Frames sent: completions reaped. */
  completions = 0;
  /** Frames that found no free UMEM frame to be copied into (send/txBuffer). */
  txNoFrame = 0;
  /** sendto kicks of the tx ring. */
  txKicks = 0;
  #fd: number;
  #closed = false;
  readonly #fill: Ring;
  readonly #comp: Ring;
  readonly #rx: Ring;
  readonly #tx: Ring;
  /** The rx and tx rings' mappings (ours). */
  readonly #maps: Mmap[];
  /** The fill and completion rings' mappings: ours, or worker 0's (shared: the last one unmaps). */
  readonly #fcMaps: Mmap[] = [];
  readonly #leave: (() => boolean) | null;
  /** The fill and completion rings are shared with other workers' sockets (read their indices under the lock). */
  readonly #sharedRings: boolean;
  readonly #pollfd: Region;
  // The last batch: UMEM offsets and lengths.
  readonly #curOff: Float64Array;
  readonly #curLen: Int32Array;
  #count = 0;
  /** Descriptors written to the tx ring and not yet published (flush). */
  #txQueued = 0;
  /** Free tx ring entries known without reading the consumer index again. */
  #txSpace = 0;
  /** A frame taken by txBuffer() and not yet committed (-1: none). */
  #building = -1;
  readonly #word: number;
  #stats = new Float64Array(6);

  constructor(ifname: string, opts: XdpSocketOptions) {
    checkIfname(ifname);
    const c = libc();
    const batch = opts.batch ?? 64;
    const size = opts.ringSize ?? 2048;
    if (!Number.isInteger(batch) || batch < 1 || batch > 4096) throw new RangeError("batch must be 1..4096");
    if (size < 64 || size > 16384 || (size & (size - 1)) !== 0)
      throw new RangeError("ringSize must be a power of two, 64..16384");
    this.ifname = ifname;
    this.ifindex = ifIndex(ifname);
    this.batch = batch;
    this.queue = opts.queue ?? 0;
    this.umem = opts.umem;
    this.#leave = opts.leave ?? null;
    this.#sharedRings = opts.umem.shared;
    this.finishChecksums = opts.finishChecksums ?? isVirtualInterface(ifname);
    this.#word = this.finishChecksums ? PLAIN_PARTIAL_WORD : 0;
    this.#curOff = new Float64Array(batch);
    this.#curLen = new Int32Array(batch);
    const fd = c.socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new SyscallError("socket(AF_XDP)", c.errno());
    this.#fd = fd;
    const maps: Mmap[] = [];
    this.#maps = maps;
    let pollfd: Region | undefined;
    try {
      const hw = this.#hwInfo();
      this.mac = hw.mac;
      this.mtu = hw.mtu;
      // A frame lands after XDP_PACKET_HEADROOM (256) in its UMEM frame: it must fit behind it,
      // with an Ethernet header and a tag (no multi-buffer here).
      if (hw.mtu + 18 + 256 > opts.umem.frameSize)
        throw new TsvsError(
          "TSVS_ERR_INTERNAL",
          `${ifname}: MTU ${hw.mtu} does not fit a ${opts.umem.frameSize}-byte UMEM frame`,
        );
      const umem = this.umem;
      const join = opts.join;
      const share = join !== undefined ? join.fd : umem.shareFd();
      if (share < 0) {
        const reg = Buffer.alloc(SIZEOF_UMEM_REG);
        reg.writeBigUInt64LE(BigInt(umem.addr), 0);
        reg.writeBigUInt64LE(BigInt(umem.len), 8);
        reg.writeUInt32LE(umem.frameSize, 16);
        this.#setopt(XDP_UMEM_REG, reg, "XDP_UMEM_REG");
      }
      const int = Buffer.alloc(4);
      int.writeUInt32LE(size, 0);
      // A socket joining another on the same queue must not have fill or completion rings of its
      // own (xsk_bind: EINVAL): it uses that socket's.
      for (const [opt, name] of [
        ...(join === undefined
          ? ([
              [XDP_UMEM_FILL_RING, "XDP_UMEM_FILL_RING"],
              [XDP_UMEM_COMPLETION_RING, "XDP_UMEM_COMPLETION_RING"],
            ] as const)
          : []),
        [XDP_RX_RING, "XDP_RX_RING"],
        [XDP_TX_RING, "XDP_TX_RING"],
      ] as const)
        this.#setopt(opt, int, name);
      const offs = Buffer.alloc(SIZEOF_MMAP_OFFSETS);
      const olen = Buffer.alloc(4);
      olen.writeUInt32LE(SIZEOF_MMAP_OFFSETS, 0);
      if (c.getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, offs, olen) < 0)
        throw new SyscallError("getsockopt(XDP_MMAP_OFFSETS)", c.errno());
      const odv = new DataView(offs.buffer, offs.byteOffset, SIZEOF_MMAP_OFFSETS);
      const ring = (base: number, pgoff: number, entry: number, what: string): Ring => {
        const descOff = Number(odv.getBigUint64(base + 16, true));
        const m = mapRegion(descOff + size * entry, MAP_SHARED | MAP_POPULATE, fd, pgoff, what);
        maps.push(m);
        return new Ring(m, odv, base, size);
      };
      this.#rx = ring(0, XDP_PGOFF_RX_RING, 16, "rx ring");
      this.#tx = ring(32, XDP_PGOFF_TX_RING, 16, "tx ring");
      if (join === undefined) {
        this.#fill = ring(64, XDP_UMEM_PGOFF_FILL_RING, 8, "fill ring");
        this.#comp = ring(96, XDP_UMEM_PGOFF_COMPLETION_RING, 8, "completion ring");
        this.#fcMaps.push(maps.pop() as Mmap, maps.pop() as Mmap);
        // The fill ring is filled before bind: frames are there when the first packet comes.
        this.#refill();
      } else {
        const fill = viewOf(join.fillAddr, join.fillLen);
        const comp = viewOf(join.compAddr, join.compLen);
        this.#fill = new Ring(fill, odv, 64, size);
        this.#comp = new Ring(comp, odv, 96, size);
        this.#fcMaps.push(fill, comp);
      }
      const sa = Buffer.alloc(SIZEOF_SOCKADDR_XDP);
      sa.writeUInt16LE(AF_XDP, 0);
      // Shared: no mode flags allowed (the UMEM's first socket chose them, xsk_bind).
      sa.writeUInt16LE(share < 0 ? XDP_USE_NEED_WAKEUP : XDP_SHARED_UMEM, 2);
      sa.writeUInt32LE(this.ifindex, 4);
      sa.writeUInt32LE(this.queue, 8);
      sa.writeUInt32LE(share < 0 ? 0 : share, 12);
      if (c.bind(fd, sa, SIZEOF_SOCKADDR_XDP) < 0)
        throw new SyscallError(`bind(AF_XDP ${ifname} queue ${this.queue})`, c.errno());
      const ov = Buffer.alloc(4);
      const ol = Buffer.alloc(4);
      ol.writeUInt32LE(4, 0);
      this.zeroCopy =
        c.getsockopt(fd, SOL_XDP, XDP_OPTIONS, ov, ol) === 0 &&
        (ov.readUInt32LE(0) & XDP_OPTIONS_ZEROCOPY) !== 0;
      pollfd = pollIn(fd);
      this.#pollfd = pollfd;
      umem.attach(this);
    } catch (e) {
      // A joining socket never unmaps worker 0's rings (nor takes back what they hold).
      const own = opts.join === undefined;
      this.#reclaim(own);
      for (const m of maps) unmap(m);
      if (own) for (const m of this.#fcMaps) unmap(m);
      if (pollfd !== undefined) freeRegions(pollfd);
      c.close(fd);
      this.#fd = -1;
      this.#closed = true;
      throw e;
    }
  }

  /** The fill and completion rings' mappings, for the workers that join this socket's queue. */
  sharedRings(): { fillAddr: number; fillLen: number; compAddr: number; compLen: number } {
    const [fill, comp] = [this.#fill.map, this.#comp.map];
    return { fillAddr: fill.addr, fillLen: fill.len, compAddr: comp.addr, compLen: comp.len };
  }

  #setopt(opt: number, val: Buffer, what: string): void {
    const c = libc();
    if (c.setsockopt(this.#fd, SOL_XDP, opt, val, val.length) < 0)
      throw new SyscallError(`setsockopt(${what})`, c.errno());
  }

  /** MAC and MTU, through a throwaway UDP socket: AF_XDP sockets refuse these ioctls (EOPNOTSUPP). */
  #hwInfo(): { mac: Uint8Array; mtu: number } {
    const c = libc();
    const fd = c.socket(2 /* AF_INET */, 2 /* SOCK_DGRAM */ | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new SyscallError("socket(AF_INET)", c.errno());
    try {
      const ifr = Buffer.alloc(40);
      ifr.write(this.ifname, 0, "utf8");
      if (c.ioctlPtr(fd, SIOCGIFHWADDR, ifr) < 0) throw new SyscallError("ioctl(SIOCGIFHWADDR)", c.errno());
      const mac = Uint8Array.from(ifr.subarray(18, 24));
      ifr.fill(0, 16);
      if (c.ioctlPtr(fd, SIOCGIFMTU, ifr) < 0) throw new SyscallError("ioctl(SIOCGIFMTU)", c.errno());
      return { mac, mtu: ifr.readInt32LE(16) };
    } finally {
      c.close(fd);
    }
  }

  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get pending(): number {
    return this.#txQueued;
  }

  /**
   * Free UMEM frames go to the fill ring, keeping some back for frames the engine builds. Shared
   * with other workers' sockets, the ring's producer index is theirs too: read under the lock.
   */
  #refill(): void {
    const umem = this.umem;
    umem.lock();
    try {
      this.#refillLocked();
    } finally {
      umem.unlock();
    }
  }

  #refillLocked(): void {
    const r = this.#fill;
    const umem = this.umem;
    if (this.#sharedRings) r.cached = r.producer();
    const reserve = this.batch * 2;
    let space = r.size - ((r.cached - r.consumer()) >>> 0);
    const u32 = r.u32;
    let n = 0;
    while (space > 0 && umem.freeFrames > reserve) {
      const f = umem.take();
      umem.state[f] = F_KERNEL_RX;
      const i = r.descIdx + ((r.cached + n) & r.mask) * 2;
      u32[i] = umem.offsetOf(f);
      u32[i + 1] = 0;
      n++;
      space--;
    }
    if (n > 0) {
      r.cached = (r.cached + n) >>> 0;
      r.publishProducer(r.cached);
    }
  }

  /**
   * Sent frames come back free. A shared completion ring also brings other workers' frames back:
   * they go to the same free list.
   */
  #reap(): void {
    const r = this.#comp;
    const shared = this.#sharedRings;
    // Nothing new: no lock (the kernel's producer index only grows; a stale read is only late).
    if (!shared && r.producer() === r.cached) return;
    const umem = this.umem;
    umem.lock();
    try {
      if (shared) r.cached = r.consumer();
      const prod = r.producer();
      let cons = r.cached;
      if (prod === cons) return;
      const u32 = r.u32;
      let n = 0;
      while (cons !== prod) {
        const off = u32[r.descIdx + (cons & r.mask) * 2];
        umem.put(umem.frameOf(off));
        cons = (cons + 1) >>> 0;
        n++;
      }
      r.cached = cons;
      r.publishConsumer(cons);
      this.completions += n;
    } finally {
      umem.unlock();
    }
  }

  /** The last batch's frames that did not leave on a tx ring are free again. */
  #release(): void {
    const n = this.#count;
    if (n === 0) return;
    const umem = this.umem;
    const st = umem.state;
    umem.lock();
    for (let i = 0; i < n; i++) {
      const f = umem.frameOf(this.#curOff[i]);
      if (st[f] === F_USER) umem.put(f);
    }
    umem.unlock();
    this.#count = 0;
  }

  #take(): number {
    const rx = this.#rx;
    const prod = rx.producer();
    let cons = rx.cached;
    const avail = (prod - cons) >>> 0;
    if (avail === 0) return 0;
    const n = avail < this.batch ? avail : this.batch;
    const u32 = rx.u32;
    const umem = this.umem;
    const cnt = this.counters;
    for (let i = 0; i < n; i++) {
      const d = rx.descIdx + (cons & rx.mask) * 4;
      // UMEM offsets stay below 2^32 (u32[d + 1], the high half, is 0).
      const off = u32[d];
      const len = u32[d + 2];
      this.#curOff[i] = off;
      this.#curLen[i] = len;
      umem.state[umem.frameOf(off)] = F_USER;
      cnt.rxBytes += len;
      cons = (cons + 1) >>> 0;
    }
    rx.cached = cons;
    rx.publishConsumer(cons);
    cnt.rxFrames += n;
    this.#count = n;
    return n;
  }

  recvBatch(timeoutMs: number): number {
    if (this.#closed) throw new TsvsError("TSVS_ERR_INTERNAL", "recvBatch on a closed XdpSocket");
    if (this.#txQueued > 0) this.flush();
    this.#release();
    this.#reap();
    this.#refill();
    let n = this.#take();
    if (n > 0) return n;
    const c = libc();
    // Zero-copy drivers with need_wakeup stop filling until user space kicks them.
    if (this.#fill.needWakeup()) c.recv(this.#fd, 0, 0, MSG_DONTWAIT);
    if (timeoutMs === 0) return 0;
    const p = c.poll(this.#pollfd.addr, 1, timeoutMs < 0 ? -1 : Math.ceil(timeoutMs));
    if (p < 0 && c.errno() !== EINTR) throw new SyscallError("poll", c.errno());
    if (p > 0) n = this.#take();
    return n;
  }

  frame(i: number): Uint8Array {
    return this.umem.view(this.#curOff[i]);
  }

  length(i: number): number {
    return this.#curLen[i];
  }

  /** What AF_PACKET's sll_pkttype says, from the destination MAC (XDP has no skb to say it). */
  pktType(i: number): number {
    const b = this.umem.bytes;
    const o = this.#curOff[i];
    if ((b[o] & 1) !== 0) {
      return b[o] === 0xff && b[o + 1] === 0xff && b[o + 2] === 0xff && b[o + 3] === 0xff
        ? PKT_BROADCAST
        : PKT_MULTICAST;
    }
    const m = this.mac;
    return b[o] === m[0] &&
      b[o + 1] === m[1] &&
      b[o + 2] === m[2] &&
      b[o + 3] === m[3] &&
      b[o + 4] === m[4] &&
      b[o + 5] === m[5]
      ? PKT_HOST
      : PKT_OTHERHOST;
  }

  offload(_i: number): number {
    return this.#word;
  }

  /** Puts a descriptor on the tx ring (published by flush). False when the ring is full. */
  #queue(off: number, len: number): boolean {
    const t = this.#tx;
    if (this.#txSpace === 0) {
      this.#txSpace = t.size - ((t.cached + this.#txQueued - t.consumer()) >>> 0);
      if (this.#txSpace <= 0) {
        this.flush();
        this.#txSpace = t.size - ((t.cached - t.consumer()) >>> 0);
        if (this.#txSpace <= 0) {
          this.#txSpace = 0;
          this.counters.txDropped++;
          return false;
        }
      }
    }
    this.#txSpace--;
    const d = t.descIdx + ((t.cached + this.#txQueued) & t.mask) * 4;
    const u32 = t.u32;
    u32[d] = off;
    u32[d + 1] = 0;
    u32[d + 2] = len;
    u32[d + 3] = 0;
    this.#txQueued++;
    this.counters.txBytes += len;
    return true;
  }

  /** Sends len bytes at UMEM offset off: from the frame itself when it is still the worker's. */
  #queueUmem(off: number, len: number): boolean {
    const umem = this.umem;
    const f = umem.frameOf(off);
    if (umem.state[f] !== F_USER || f === this.#building) {
      // Queued once already (a second copy of a frame) or not ours: copy it.
      return this.#copy(umem.bytes, off, len);
    }
    if (!this.#queue(off, len)) return false;
    umem.state[f] = F_TX;
    return true;
  }

  #copy(src: Uint8Array, off: number, len: number): boolean {
    const umem = this.umem;
    if (len > umem.frameSize || len <= 0) {
      this.counters.txOversize++;
      return false;
    }
    let f = umem.takeOne();
    if (f < 0) {
      this.#reap();
      f = umem.takeOne();
      if (f < 0) {
        this.txNoFrame++;
        this.counters.txDropped++;
        return false;
      }
    }
    const base = umem.offsetOf(f);
    umem.bytes.set(src.subarray(off, off + len), base);
    umem.state[f] = F_TX;
    if (!this.#queue(base, len)) {
      umem.putOne(f);
      return false;
    }
    return true;
  }

  send(buf: Uint8Array, off: number, len: number, vnet: Uint8Array | null = null): boolean {
    if (vnet !== null) {
      // No aggregate comes from an XDP socket (one frame per packet): nothing to send one with.
      this.counters.txOversize++;
      return false;
    }
    return this.#copy(buf, off, len);
  }

  txBuffer(): Uint8Array {
    const umem = this.umem;
    if (this.#building < 0) {
      let f = umem.takeOne();
      if (f < 0) {
        this.#reap();
        f = umem.takeOne();
      }
      if (f < 0) {
        // Nothing free: a scratch view the commit will drop (the caller writes, commit refuses).
        this.txNoFrame++;
        return umem.view(0).subarray(0, 0);
      }
      umem.state[f] = F_USER;
      this.#building = f;
    }
    return umem.view(umem.offsetOf(this.#building));
  }

  commit(len: number, vnet: Uint8Array | null = null): boolean {
    const f = this.#building;
    if (f < 0 || vnet !== null || len <= 0 || len > this.umem.frameSize) {
      if (f >= 0) this.umem.putOne(f);
      this.#building = -1;
      this.counters.txDropped++;
      return false;
    }
    this.#building = -1;
    if (!this.#queue(this.umem.offsetOf(f), len)) {
      this.umem.putOne(f);
      return false;
    }
    this.umem.state[f] = F_TX;
    return true;
  }

  forward(i: number, off: number, len: number, vnet: Uint8Array | null = null): boolean {
    if (i < 0 || i >= this.#count || off < 0 || len <= 0 || vnet !== null) return false;
    return this.#queueUmem(this.#curOff[i] + off, len);
  }

  frameAddress(i: number): number {
    return this.umem.addr + this.#curOff[i];
  }

  /**
   * Queues len bytes at a native address: within the UMEM (a frame of any socket of this worker)
   * without a copy; elsewhere (a frame of the ARP/NDP packet socket beside it: rare) copied.
   */
  queueAddress(addr: number, len: number, vnet: Uint8Array | null = null): void {
    const umem = this.umem;
    const off = addr - umem.addr;
    if (vnet === null && off >= 0 && off + len <= umem.len) {
      this.#queueUmem(off, len);
      return;
    }
    if (vnet !== null) {
      this.counters.txOversize++;
      return;
    }
    const src = new Uint8Array(libc().koffi.view(pointerAt(addr), len));
    this.#copy(src, 0, len);
  }

  /**
   * Publishes the queued descriptors and kicks the kernel (sendto). In copy mode the kernel sends
   * at most 32 frames per call (xsk_generic_xmit's budget) and answers EAGAIN when more are left,
   * so it is kicked until the ring is drained or a kick makes no progress. Returns frames published.
   */
  flush(): number {
    const n = this.#txQueued;
    const t = this.#tx;
    if (n > 0) {
      if (this.#closed) throw new TsvsError("TSVS_ERR_INTERNAL", "flush on a closed XdpSocket");
      t.cached = (t.cached + n) >>> 0;
      t.publishProducer(t.cached);
      this.#txQueued = 0;
      this.counters.txFrames += n;
    }
    if (t.consumer() !== t.cached && (this.zeroCopy === false || t.needWakeup())) this.#kick();
    this.#reap();
    return n;
  }

  #kick(): void {
    const c = libc();
    const t = this.#tx;
    for (let k = 0; k < 64; k++) {
      const before = t.consumer();
      if (before === t.cached) return;
      this.txKicks++;
      if (c.send(this.#fd, 0, 0, MSG_DONTWAIT) >= 0) continue;
      const e = c.errno();
      if (e === EINTR) continue;
      // EAGAIN also means "budget spent" (xsk_generic_xmit sends 32 per call and says EAGAIN when
      // more are left): go on while the kernel takes frames. No progress, or ENOBUFS/EBUSY: the
      // device is full; the next flush kicks again.
      if (e === EAGAIN && t.consumer() !== before) continue;
      if (e !== EAGAIN && e !== ENOBUFS && e !== 16) {
        this.counters.txErrors++;
        this.counters.lastTxErrno = e;
      }
      return;
    }
  }

  /**
   * XDP_STATISTICS since the last call: packets received, and frames the kernel dropped for this
   * socket (rx ring full, fill ring empty, invalid descriptors, no room).
   */
  kernelStats(): { packets: number; drops: number } {
    const c = libc();
    const v = Buffer.alloc(SIZEOF_XDP_STATISTICS);
    const l = Buffer.alloc(4);
    l.writeUInt32LE(SIZEOF_XDP_STATISTICS, 0);
    if (c.getsockopt(this.#fd, SOL_XDP, XDP_STATISTICS, v, l) < 0)
      throw new SyscallError("getsockopt(XDP_STATISTICS)", c.errno());
    // rx_dropped, rx_invalid_descs, tx_invalid_descs, rx_ring_full, rx_fill_ring_empty_descs, tx_ring_empty_descs
    let drops = 0;
    for (const k of [0, 1, 3]) {
      const x = Number(v.readBigUInt64LE(k * 8));
      drops += x - this.#stats[k];
      this.#stats[k] = x;
    }
    const packets = this.counters.rxFrames - this.#stats[5];
    this.#stats[5] = this.counters.rxFrames;
    return { packets, drops };
  }

  /** The raw XDP_STATISTICS counters (monotonic). */
  xdpStatistics(): Record<string, number> {
    const c = libc();
    const v = Buffer.alloc(SIZEOF_XDP_STATISTICS);
    const l = Buffer.alloc(4);
    l.writeUInt32LE(SIZEOF_XDP_STATISTICS, 0);
    if (c.getsockopt(this.#fd, SOL_XDP, XDP_STATISTICS, v, l) < 0) return {};
    const names = [
      "rxDropped",
      "rxInvalidDescs",
      "txInvalidDescs",
      "rxRingFull",
      "rxFillRingEmpty",
      "txRingEmpty",
    ];
    return Object.fromEntries(names.map((n, k) => [n, Number(v.readBigUInt64LE(k * 8))]));
  }

  /** The XDP program selects what comes here; a classic socket filter has nothing to do. */
  attachFilter(_prog: BpfProgram): void {}

  /**
   * Frames we handed to the kernel and can still see go back to the free list (then unmapped):
   * our rx ring's, and with `rings` what the fill and completion rings hold (shared ones: only
   * when this was the last socket on them).
   */
  #reclaim(rings: boolean): void {
    const umem = this.umem;
    umem.lock();
    try {
      const fill = this.#fill;
      if (rings && fill !== undefined) {
        if (this.#sharedRings) fill.cached = fill.producer();
        for (let i = fill.consumer(); i !== fill.cached; i = (i + 1) >>> 0)
          umem.put(umem.frameOf(fill.u32[fill.descIdx + (i & fill.mask) * 2]));
      }
      const rx = this.#rx;
      if (rx !== undefined) {
        const prod = rx.producer();
        for (let i = rx.cached; i !== prod; i = (i + 1) >>> 0)
          umem.put(umem.frameOf(rx.u32[rx.descIdx + (i & rx.mask) * 4]));
        rx.cached = prod;
      }
    } finally {
      umem.unlock();
    }
    if (rings && this.#comp !== undefined) this.#reap();
  }

  close(): void {
    if (this.#closed) return;
    this.#release();
    if (this.#building >= 0) this.umem.putOne(this.#building);
    this.#building = -1;
    this.#txQueued = 0;
    const c = libc();
    // Closing first: the kernel stops using the rings, then what it left in them is reclaimed.
    c.close(this.#fd);
    this.#fd = -1;
    this.#closed = true;
    this.umem.detach(this);
    const last = this.#leave === null || this.#leave();
    this.#reclaim(last);
    for (const m of this.#maps) unmap(m);
    if (last) for (const m of this.#fcMaps) unmap(m);
    freeRegions(this.#pollfd);
  }
}

export interface XdpLinkOptions {
  /** Most frames per recvBatch, per socket. */
  batch?: number;
  ringSize?: number;
  finishChecksums?: boolean;
  /** Force a mode (default: native, else generic). */
  mode?: XdpMode;
}

/** What openXdpLink needs from the program side: the set maps and a program builder (xdp-prog.ts). */
export interface XdpProgramSource {
  program(xsks: BpfMap): Uint8Array;
}

/**
 * Several workers (xdp-share.ts): `workers` sockets per rx queue, the socket map keyed by
 * queue × workers + worker; worker 0 opens the link and publishes it in `share`, the others join.
 */
export interface XdpWorkers {
  share: XdpShare;
  workers: number;
  worker: number;
}

function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

/**
 * One interface on AF_XDP: its socket map, the program attached through a bpf_link, and one socket
 * per rx queue (all in the worker's UMEM). Closing it closes the sockets and the link (the kernel
 * detaches the program when the link's last fd goes). With several workers, worker 0's link holds
 * the program and the map, and every other worker's (XdpLink.join) only its sockets, which it puts
 * in worker 0's map.
 */
export class XdpLink {
  readonly ifname: string;
  readonly mode: XdpMode;
  readonly sockets: XdpSocket[] = [];
  #xsks: BpfMap;
  /** The map is worker 0's (a joined link): its fd is not ours to close. */
  readonly #borrowed: boolean;
  /** The map's keys of our sockets (deleted at close, so the program passes instead of filling a dead ring). */
  readonly #keys: number[] = [];
  #progFd: number;
  #linkFd: number;

  private constructor(
    ifname: string,
    mode: XdpMode,
    xsks: BpfMap,
    progFd: number,
    linkFd: number,
    borrowed = false,
  ) {
    this.ifname = ifname;
    this.mode = mode;
    this.#xsks = xsks;
    this.#progFd = progFd;
    this.#linkFd = linkFd;
    this.#borrowed = borrowed;
  }

  static open(
    ifname: string,
    source: XdpProgramSource,
    createXsks: (queues: number) => BpfMap,
    umem: Umem,
    opts: XdpLinkOptions = {},
    w: XdpWorkers | null = null,
  ): XdpLink {
    const c = libc();
    const ifindex = ifIndex(ifname);
    const queues = rxQueueCount(ifname);
    const xsks = createXsks(queues);
    let progFd = -1;
    let link: XdpLink | null = null;
    try {
      progFd = loadXdpProgram(source.program(xsks), "tsvs_xdp");
      const at =
        opts.mode === undefined
          ? attachXdpAuto(progFd, ifindex)
          : { fd: attachXdpLink(progFd, ifindex, opts.mode), mode: opts.mode };
      link = new XdpLink(ifname, at.mode, xsks, progFd, at.fd);
      for (let q = 0; q < queues; q++) {
        const s = new XdpSocket(ifname, {
          ...socketOptions(umem, q, opts),
          leave: w === null ? undefined : leaver(w.share, ifindex, q),
        });
        link.sockets.push(s);
        link.#put(w === null ? q : q * w.workers, s);
      }
      if (w !== null) {
        const queues = link.sockets.map((s) => ({ fd: s.fd, ...s.sharedRings() }));
        w.share.locked(() =>
          w.share.publish(ifindex, { xsks: xsks.fd, generic: at.mode === "generic", queues }),
        );
      }
      return link;
    } catch (e) {
      if (link !== null) link.close();
      else {
        if (progFd >= 0) c.close(progFd);
        xsks.close();
      }
      throw e;
    }
  }

  /** Worker w (≥ 1) on an interface worker 0 opened: a socket per queue, bound onto worker 0's. */
  static join(ifname: string, umem: Umem, w: XdpWorkers, opts: XdpLinkOptions = {}): XdpLink {
    const ifindex = ifIndex(ifname);
    const sh = w.share;
    const shared = sh.locked(() => {
      const l = sh.link(ifindex);
      if (l !== null) for (let q = 0; q < l.queues.length; q++) sh.ref(ifindex, q, 1);
      return l;
    });
    if (shared === null)
      throw new TsvsError("TSVS_ERR_INTERNAL", `${ifname}: worker 0 has no XDP sockets here`);
    const n = shared.queues.length;
    const map = new BpfMap(shared.xsks, 4, 4, n * w.workers);
    const link = new XdpLink(ifname, shared.generic ? "generic" : "native", map, -1, -1, true);
    let q = 0;
    try {
      for (; q < n; q++) {
        const s = new XdpSocket(ifname, {
          ...socketOptions(umem, q, opts),
          join: shared.queues[q],
          leave: leaver(sh, ifindex, q),
        });
        link.sockets.push(s);
        link.#put(q * w.workers + w.worker, s);
      }
      return link;
    } catch (e) {
      // The queues whose socket was never made give their reference back here (the made ones at close).
      sh.locked(() => {
        for (let k = q; k < n; k++) sh.ref(ifindex, k, -1);
      });
      link.close();
      throw e;
    }
  }

  #put(key: number, s: XdpSocket): void {
    this.#xsks.update(u32le(key), u32le(s.fd));
    this.#keys.push(key);
  }

  close(): void {
    const c = libc();
    for (const k of this.#keys) {
      try {
        this.#xsks.delete(u32le(k));
      } catch {
        // the map is gone with worker 0's link: nothing redirects here any more
      }
    }
    this.#keys.length = 0;
    for (const s of this.sockets) s.close();
    this.sockets.length = 0;
    if (this.#linkFd >= 0) c.close(this.#linkFd);
    if (this.#progFd >= 0) c.close(this.#progFd);
    this.#linkFd = -1;
    this.#progFd = -1;
    if (!this.#borrowed) this.#xsks.close();
  }
}

/** What every socket of a link is opened with. */
function socketOptions(umem: Umem, queue: number, o: XdpLinkOptions): XdpSocketOptions {
  return { umem, queue, batch: o.batch, ringSize: o.ringSize, finishChecksums: o.finishChecksums };
}

/** A socket's leave(): its queue's reference goes; true when it was the last. */
function leaver(sh: XdpShare, ifindex: number, queue: number): () => boolean {
  return () => sh.locked(() => sh.ref(ifindex, queue, -1) <= 0);
}
