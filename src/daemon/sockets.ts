// A worker's packet sockets: one per served interface (in its fanout group when there are several
// workers), an ARP-only twin per interface with several workers (so that every worker's neighbour
// cache sees every ARP reply: the fanout would give each reply to one worker), the pollfd array
// over all of them, and the set following the host as interfaces come and go.
//
// With --io xdp an interface gets instead an XDP program and one AF_XDP socket per rx queue, all in
// the worker's UMEM (src/io/xdp.ts), plus an ARP/NDP packet socket: the program passes ARP and NDP
// for the director's own addresses to the kernel, and the engine needs its copy of the replies to
// its own requests (a redirect cannot clone). With several workers there is one UMEM and one
// program for the process: worker 0 opens the interface (program, socket map, a socket per queue
// with the queue's fill and completion rings) and publishes it in the share the main thread gave
// every worker (src/io/xdp-share.ts); each other worker binds its own socket per queue onto worker
// 0's, and the program picks the worker as the fanout would. Where the program cannot be attached,
// the interface gets an mmsg socket (in the fanout group with several workers) and the reason is
// kept in `fallbacks` for the worker to log.

import type { IfaceConfig } from "../core/route.js";
import { openPacketSocket } from "../io/afpacket.js";
import { compileFanoutProgram, compileOwnedFilter, joinFanout } from "../io/bpf.js";
import type { FrameIo, IoBackend } from "../io/frame-io.js";
import type { NativePtr } from "../io/libc.js";
import {
  addressOf,
  libc,
  PACKET_FANOUT_CBPF,
  POLLERR,
  POLLIN,
  SIZEOF_POLLFD,
  SO_ERROR,
  SOL_SOCKET,
} from "../io/libc.js";
import { openRingSocket } from "../io/ring.js";
import { Umem, XdpLink, type XdpWorkers } from "../io/xdp.js";
import { createXskMap, XdpSets, type XdpSetsSpec } from "../io/xdp-prog.js";
import { XDP_FRAMES, XdpShare } from "../io/xdp-share.js";
import type { HostApplied, HostUpdate } from "./worker.js";

export interface SocketSetOptions {
  io: IoBackend;
  batch: number;
  qdiscBypass?: boolean;
  /** --rx-kib: SO_RCVBUF (mmsg) or ring size in 128 KiB blocks (ring). */
  rxKib?: number;
  workers: number;
  /** Fanout group id of the first interface (the n-th interface's group is base + its offset). */
  fanoutGroup: number;
  /** Every LIP, in order (LIP k belongs to worker k % workers): the first fanout program. */
  lips: readonly number[];
  /**
   * --io xdp: UMEM frames of the worker. Default 16384 of 2 KiB (32 MiB, pinned), 4 KiB frames
   * (64 MiB) when the first interface's MTU is above 1500.
   */
  xdpFrames?: number;
  /** This worker's index (worker 0 opens the XDP interfaces the others join). */
  worker?: number;
  /** --io xdp with several workers: the process's XdpShare (XDP_FRAMES frames), from the main thread. */
  xdpShare?: SharedArrayBuffer;
}

/** Frames of the ARP/NDP socket beside a data socket: ARP and NDP only, never an aggregate. */
function arpOnlySocket(name: string): FrameIo {
  const a = openPacketSocket(name, { batch: 16, rcvbuf: 0, sndbuf: 0, vnetHdr: false });
  try {
    a.attachFilter(
      compileOwnedFilter({ owned: [], locals: [], rips: [], ipv4: false, snaplen: 2048, allArp: true }),
    );
  } catch (e) {
    a.close();
    throw e;
  }
  return a;
}

/** A link that went down raises a pending socket error poll(2) reports until it is read. */
function clearSocketError(fd: number): void {
  const c = libc();
  const v = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4, 0);
  c.getsockopt(fd, SOL_SOCKET, SO_ERROR, v, len);
}

export class SocketSet {
  /** The data sockets, one per served interface. */
  readonly sockets: FrameIo[] = [];
  /**
   * Per data socket, the sockets that receive beside it: the ARP-only twin (several workers), or
   * with XDP the sockets of the other rx queues and the ARP/NDP socket.
   */
  private readonly extras: FrameIo[][] = [];
  /** Per data socket: its XDP program and sockets, or null (a packet socket). */
  private readonly links: (XdpLink | null)[] = [];
  /** Per data socket: the backend that serves it (`mmsg`, `ring`, `xdp-native`, `xdp-generic`). */
  readonly backends: string[] = [];
  /** Interfaces that asked for XDP and got mmsg instead, and why (the worker logs and clears them). */
  readonly fallbacks: { name: string; reason: string }[] = [];
  private umem: Umem | null = null;
  private xdpSets: XdpSets | null = null;
  private xdpSpec: XdpSetsSpec | null = null;
  /** --io xdp with several workers: the share, and this worker's place (null: one worker). */
  private readonly xdpWorkers: XdpWorkers | null;
  /** Per data socket: the interface as last given, and the kernel drops counted so far. */
  readonly configs: IfaceConfig[] = [];
  readonly kernelDrops: number[] = [];
  private readonly byIfindex: (FrameIo | undefined)[] = [];
  /** Every socket that receives: data sockets, then the ARP-only ones. */
  rx: FrameIo[] = [];
  /** Per rx socket: read it in this pass (all, except right after poll, when only the readable). */
  readable = new Uint8Array(0);
  private pollMem: NativePtr | null = null;
  private pollAddr = 0;
  private pollDv = new DataView(new ArrayBuffer(0));

  constructor(
    private readonly opts: SocketSetOptions,
    interfaces: readonly IfaceConfig[],
  ) {
    this.xdpWorkers =
      opts.workers > 1 && opts.xdpShare !== undefined
        ? {
            share: new XdpShare(opts.xdpFrames ?? XDP_FRAMES, opts.xdpShare),
            workers: opts.workers,
            worker: opts.worker ?? 0,
          }
        : null;
    try {
      interfaces.forEach((c, k) => {
        this.open(c, k);
      });
    } catch (e) {
      this.close();
      throw e;
    }
    this.rebuildPoll();
  }

  /** The socket of an interface, or undefined when it is not served. */
  of(ifindex: number): FrameIo | undefined {
    return this.byIfindex[ifindex];
  }

  /** One interface's sockets; `group` its fanout group offset. */
  private open(c: IfaceConfig, group: number): void {
    const o = this.opts;
    if (o.io === "xdp") {
      let reason = "several workers without a shared UMEM";
      if (o.workers <= 1 || o.xdpShare !== undefined) {
        try {
          this.openXdp(c);
          return;
        } catch (e) {
          reason = e instanceof Error ? (e.message.split("\n")[0] ?? e.message) : String(e);
        }
      }
      this.fallbacks.push({ name: c.name, reason });
    }
    const rx = o.rxKib;
    const s =
      o.io === "ring"
        ? openRingSocket(c.name, {
            batch: o.batch,
            // The engine finishes partial checksums after its parse (no second parse here).
            partialToConsumer: true,
            qdiscBypass: o.qdiscBypass,
            // --rx-kib in 128 KiB blocks (a block holds one 64 KiB aggregate).
            blocks: rx === undefined ? undefined : Math.max(2, Math.round(rx / 128)),
          })
        : openPacketSocket(c.name, {
            batch: o.batch,
            partialToConsumer: true,
            qdiscBypass: o.qdiscBypass,
            rcvbuf: rx === undefined ? undefined : rx * 1024,
          });
    const extra: FrameIo[] = [];
    this.push(c, s, extra, null, o.io === "ring" ? "ring" : "mmsg");
    if (o.workers <= 1) return;
    joinFanout(
      s.fd,
      (o.fanoutGroup + group) & 0xffff,
      PACKET_FANOUT_CBPF,
      compileFanoutProgram({ lips: o.lips.map((a, i) => ({ addr: a, worker: i % o.workers })), rips: [] }),
    );
    // Never sends and never sees an aggregate: plain 2 KiB slots.
    extra.push(arpOnlySocket(c.name));
  }

  private push(c: IfaceConfig, s: FrameIo, extra: FrameIo[], link: XdpLink | null, backend: string): void {
    this.sockets.push(s);
    this.extras.push(extra);
    this.links.push(link);
    this.backends.push(backend);
    this.configs.push(c);
    this.kernelDrops.push(0);
    this.byIfindex[s.ifindex] = s;
  }

  /**
   * The interface on AF_XDP: program, one socket per rx queue, and the ARP/NDP packet socket. With
   * several workers, worker 0 opens it and the others join its sockets (sockets.ts header).
   */
  private openXdp(c: IfaceConfig): void {
    const o = this.opts;
    const w = this.xdpWorkers;
    if (this.umem === null) {
      const size = c.mtu <= 1500 ? 2048 : 4096;
      this.umem = new Umem(o.xdpFrames ?? XDP_FRAMES, size, w?.share ?? null);
    }
    let link: XdpLink;
    if (w !== null && w.worker > 0) link = XdpLink.join(c.name, this.umem, w, { batch: o.batch });
    else {
      if (this.xdpSets === null) {
        this.xdpSets = new XdpSets();
        if (this.xdpSpec !== null) this.xdpSets.update(this.xdpSpec);
      }
      const sets = this.xdpSets;
      const workers = w?.workers ?? 1;
      link = XdpLink.open(
        c.name,
        { program: (x) => sets.program(x, undefined, { workers }) },
        (queues) => createXskMap(queues, workers),
        this.umem,
        { batch: o.batch },
        w,
      );
    }
    let arp: FrameIo;
    try {
      arp = arpOnlySocket(c.name);
    } catch (e) {
      link.close();
      throw e;
    }
    const [first, ...rest] = link.sockets;
    this.push(c, first, [...rest, arp], link, `xdp-${link.mode}${first.zeroCopy ? "-zerocopy" : ""}`);
  }

  /**
   * The fd that joins link-layer memberships for data socket i: the socket itself, or for an
   * AF_XDP socket (which has none) the interface's ARP/NDP packet socket.
   */
  membershipFd(i: number): number {
    if (this.links[i] === null) return this.sockets[i].fd;
    const e = this.extras[i];
    return e[e.length - 1].fd;
  }

  /** XDP_STATISTICS of data socket i's queues, summed (undefined for a packet socket). */
  xdpStatistics(i: number): Record<string, number> | undefined {
    const link = this.links[i];
    if (link === null || link === undefined) return undefined;
    const out: Record<string, number> = {};
    for (const s of link.sockets)
      for (const [k, v] of Object.entries(s.xdpStatistics())) out[k] = (out[k] ?? 0) + v;
    return out;
  }

  /** Is data socket i an AF_XDP socket (no packet-socket filter or fanout to set)? */
  isXdp(i: number): boolean {
    return this.links[i] !== null && this.links[i] !== undefined;
  }

  /**
   * The guard's sets for the XDP programs (kept for interfaces opened later). With several workers
   * only worker 0 holds the maps (every worker computes the same sets).
   */
  updateXdp(spec: XdpSetsSpec): void {
    this.xdpSpec = spec;
    this.xdpSets?.update(spec);
  }

  /** Closes data socket i and what belongs to it (not the arrays: the caller splices). */
  private closeAt(i: number): void {
    const link = this.links[i];
    if (link !== null && link !== undefined) link.close();
    else this.sockets[i].close();
    for (const e of this.extras[i] ?? []) e.close();
  }

  /**
   * The host changed. Sockets of interfaces no longer served are closed; new ones are opened (a
   * deleted interface's socket is dead for good: packet_notifier unbinds it on NETDEV_UNREGISTER,
   * and a re-created link is a new ifindex). A link that only goes down keeps its socket: the
   * kernel unhooks it on NETDEV_DOWN and hooks it again on NETDEV_UP (af_packet.c packet_notifier).
   */
  follow(u: HostUpdate): HostApplied {
    const r: HostApplied = { opened: [], closed: [], errors: [] };
    const want = new Map(u.interfaces.map((cfg, k) => [cfg.ifindex, { cfg, group: u.fanout[k] ?? k }]));
    for (let i = this.sockets.length - 1; i >= 0; i--) {
      const s = this.sockets[i];
      const w = want.get(s.ifindex);
      if (w !== undefined) {
        this.configs[i] = w.cfg;
        continue;
      }
      r.closed.push(s.ifname);
      this.closeAt(i);
      this.spliceFrom(i, 1);
      this.byIfindex[s.ifindex] = undefined;
    }
    for (const { cfg, group } of want.values()) {
      if (this.byIfindex[cfg.ifindex] !== undefined) continue;
      const n = this.sockets.length;
      try {
        // u.fanout holds absolute group ids: open() adds them to the base, so pass the offset.
        this.open(cfg, (group - this.opts.fanoutGroup) & 0xffff);
        r.opened.push(cfg.name);
      } catch (e) {
        // Gone again, or not ready: the next host change tries again.
        for (let i = n; i < this.sockets.length; i++) this.closeAt(i);
        this.spliceFrom(n, this.sockets.length - n);
        this.byIfindex[cfg.ifindex] = undefined;
        r.errors.push({ name: cfg.name, err: e instanceof Error ? e.message : String(e) });
      }
    }
    if (r.opened.length > 0 || r.closed.length > 0) this.rebuildPoll();
    return r;
  }

  private spliceFrom(i: number, n: number): void {
    for (const a of [this.sockets, this.extras, this.links, this.backends, this.configs, this.kernelDrops])
      a.splice(i, n);
  }

  /** The pollfd array over every receiving socket; every socket readable for the next pass. */
  private rebuildPoll(): void {
    const c = libc();
    this.rx = [...this.sockets, ...this.extras.flat()];
    if (this.pollMem !== null) c.koffi.free(this.pollMem);
    const size = SIZEOF_POLLFD * Math.max(1, this.rx.length);
    this.pollMem = c.koffi.alloc("uint8_t", size);
    this.pollAddr = addressOf(this.pollMem);
    this.pollDv = new DataView(c.koffi.view(this.pollMem, size));
    this.rx.forEach((s, i) => {
      this.pollDv.setInt32(i * SIZEOF_POLLFD, s.fd, true);
      this.pollDv.setInt16(i * SIZEOF_POLLFD + 4, POLLIN, true);
    });
    this.readable = new Uint8Array(this.rx.length).fill(1);
  }

  /**
   * Sleeps in poll(2) up to timeoutMs; afterwards only the sockets it reported are read (an empty
   * recvmmsg is a syscall for nothing). Returns poll's result (-1 with errno EINTR is not an error).
   */
  poll(timeoutMs: number): number {
    const c = libc();
    const p = c.poll(this.pollAddr, this.rx.length, timeoutMs);
    if (p > 0) {
      for (let i = 0; i < this.rx.length; i++) {
        const rev = this.pollDv.getInt16(i * SIZEOF_POLLFD + 6, true);
        this.readable[i] = rev === 0 ? 0 : 1;
        if ((rev & POLLERR) !== 0) clearSocketError(this.rx[i].fd);
      }
    }
    return p;
  }

  flush(): void {
    const s = this.sockets;
    for (let i = 0; i < s.length; i++) s[i].flush();
  }

  /** The kernel's drops per data socket since the last call, added up (PACKET_STATISTICS resets). */
  countKernelDrops(): void {
    this.sockets.forEach((s, i) => {
      try {
        this.kernelDrops[i] += s.kernelStats().drops;
      } catch {
        // socket error: reported by the loop
      }
    });
  }

  close(): void {
    for (let i = 0; i < this.sockets.length; i++) this.closeAt(i);
    this.spliceFrom(0, this.sockets.length);
    this.xdpSets?.close();
    this.xdpSets = null;
    if (this.umem !== null && this.umem.sockets === 0) this.umem.free();
    this.umem = null;
    if (this.pollMem !== null) libc().koffi.free(this.pollMem);
    this.pollMem = null;
  }
}
