// Several workers on AF_XDP share one UMEM and, per interface queue, one fill and one completion
// ring: every worker binds a socket on every queue, the first (worker 0's) with its own fill and
// completion rings, the others with XDP_SHARED_UMEM onto it (Documentation/networking/af_xdp.rst,
// "XDP_SHARED_UMEM bind flag": sockets on the same device and queue share the first one's fill
// and completion rings, each keeps its rx and tx rings). Those two rings are single-producer and
// single-consumer, and a frame received by one worker may complete on another's transmit, so
// what the workers share lives here, in one SharedArrayBuffer the main thread hands to each:
//
//   header      lock, free-list top, Umem users, frame size, ready
//   memory      the UMEM's address and length (worker 0 maps it, the others view it)
//   state       per frame: free, the kernel's, a worker's, on a tx ring (xdp.ts F_*)
//   free        the free frames, a stack
//   links       per interface (by ifindex): its queues, the socket map's fd, and per queue worker
//               0's socket fd and the address and length of its fill and completion mappings
//   refs        per interface queue: the sockets still bound there (the last one unmaps the
//               shared rings: a mapping outlives any one worker's socket)
//
// One lock (a spin on Atomics.compareExchange, sleeping 20 µs between rounds when it is held
// long, as when its holder was descheduled) covers the free list, every shared fill and
// completion ring, and the links. It is taken a few times per received batch, never per frame.

/** UMEM frames by default (every worker's Umem of a share has the share's count). */
export const XDP_FRAMES = 16384;

const H_LOCK = 0;
const H_TOP = 1;
const H_USERS = 2;
const H_FRAME_SIZE = 3;
const H_READY = 4;
const HEADER_BYTES = 64;
const MEMORY_BYTES = 16;
/** Interfaces the links table holds, and queues per interface. */
export const SHARE_LINKS = 32;
export const SHARE_QUEUES = 16;
const L_IFINDEX = 0;
const L_QUEUES = 1;
const L_XSKS = 2;
const L_MODE = 3;
const L_QUEUE0 = 4;
const Q_WORDS = 5;
const LINK_WORDS = L_QUEUE0 + SHARE_QUEUES * Q_WORDS;

/** Where worker 0's fill and completion rings of one queue are mapped, and its socket. */
export interface SharedQueue {
  fd: number;
  fillAddr: number;
  fillLen: number;
  compAddr: number;
  compLen: number;
}

/** One interface as worker 0 opened it. */
export interface SharedLink {
  xsks: number;
  /** 0 native, 1 generic (XdpMode). */
  generic: boolean;
  queues: SharedQueue[];
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

export class XdpShare {
  readonly sab: SharedArrayBuffer;
  readonly frames: number;
  readonly hdr: Int32Array;
  readonly mem: Float64Array;
  readonly state: Uint8Array;
  readonly free: Uint32Array;
  readonly links: Float64Array;
  readonly refs: Int32Array;

  /** The bytes a share of `frames` frames needs. */
  static bytes(frames: number): number {
    const stateAt = HEADER_BYTES + MEMORY_BYTES;
    const freeAt = align8(stateAt + frames);
    const linksAt = align8(freeAt + 4 * frames);
    return linksAt + SHARE_LINKS * LINK_WORDS * 8 + SHARE_LINKS * SHARE_QUEUES * 4;
  }

  /** A new share (main thread), or a worker's view of one it was given (`sab`). */
  constructor(frames: number, sab?: SharedArrayBuffer) {
    const size = XdpShare.bytes(frames);
    this.sab = sab ?? new SharedArrayBuffer(size);
    if (this.sab.byteLength !== size) throw new RangeError(`XDP share of ${frames} frames is ${size} bytes`);
    this.frames = frames;
    const stateAt = HEADER_BYTES + MEMORY_BYTES;
    const freeAt = align8(stateAt + frames);
    const linksAt = align8(freeAt + 4 * frames);
    this.hdr = new Int32Array(this.sab, 0, HEADER_BYTES / 4);
    this.mem = new Float64Array(this.sab, HEADER_BYTES, 2);
    this.state = new Uint8Array(this.sab, stateAt, frames);
    this.free = new Uint32Array(this.sab, freeAt, frames);
    this.links = new Float64Array(this.sab, linksAt, SHARE_LINKS * LINK_WORDS);
    this.refs = new Int32Array(this.sab, linksAt + SHARE_LINKS * LINK_WORDS * 8, SHARE_LINKS * SHARE_QUEUES);
  }

  lock(): void {
    const h = this.hdr;
    for (let spins = 0; Atomics.compareExchange(h, H_LOCK, 0, 1) !== 0; spins++)
      if (spins >= 200) Atomics.wait(h, H_LOCK, 1, 0.02);
  }

  unlock(): void {
    Atomics.store(this.hdr, H_LOCK, 0);
  }

  /** f under the lock (the cold paths: opening, joining, leaving; the per-batch ones lock inline). */
  locked<T>(f: () => T): T {
    this.lock();
    try {
      return f();
    } finally {
      this.unlock();
    }
  }

  // ---- the UMEM (under the lock)

  get ready(): boolean {
    return this.hdr[H_READY] === 1;
  }

  /** The first Umem: the memory it mapped, and the free list with every frame. */
  init(addr: number, len: number, frameSize: number): void {
    this.mem[0] = addr;
    this.mem[1] = len;
    this.hdr[H_FRAME_SIZE] = frameSize;
    this.hdr[H_TOP] = 0;
    for (let i = this.frames - 1; i >= 0; i--) this.free[this.hdr[H_TOP]++] = i;
    this.state.fill(0);
    this.hdr[H_READY] = 1;
  }

  get addr(): number {
    return this.mem[0];
  }

  get len(): number {
    return this.mem[1];
  }

  get frameSize(): number {
    return this.hdr[H_FRAME_SIZE];
  }

  /** Umem users: +1 or −1; returns the count after. At 0 the memory is unmapped and the share reset. */
  users(delta: number): number {
    const n = this.hdr[H_USERS] + delta;
    this.hdr[H_USERS] = n;
    if (n === 0) this.hdr[H_READY] = 0;
    return n;
  }

  /** The free list's top, kept in the header (Umem.take/put). */
  get top(): number {
    return this.hdr[H_TOP];
  }

  set top(v: number) {
    this.hdr[H_TOP] = v;
  }

  // ---- the links (under the lock)

  #slot(ifindex: number): number {
    for (let s = 0; s < SHARE_LINKS; s++) if (this.links[s * LINK_WORDS + L_IFINDEX] === ifindex) return s;
    return -1;
  }

  /** Worker 0 publishes an interface it opened; throws when the table or the queues run out. */
  publish(ifindex: number, link: SharedLink): void {
    if (link.queues.length > SHARE_QUEUES)
      throw new RangeError(`XDP with several workers: at most ${SHARE_QUEUES} rx queues`);
    let s = this.#slot(ifindex);
    if (s < 0) s = this.#slot(0);
    if (s < 0) throw new RangeError(`XDP with several workers: at most ${SHARE_LINKS} interfaces`);
    const l = this.links;
    const b = s * LINK_WORDS;
    l[b + L_IFINDEX] = ifindex;
    l[b + L_QUEUES] = link.queues.length;
    l[b + L_XSKS] = link.xsks;
    l[b + L_MODE] = link.generic ? 1 : 0;
    link.queues.forEach((q, i) => {
      const o = b + L_QUEUE0 + i * Q_WORDS;
      l[o] = q.fd;
      l[o + 1] = q.fillAddr;
      l[o + 2] = q.fillLen;
      l[o + 3] = q.compAddr;
      l[o + 4] = q.compLen;
      this.refs[s * SHARE_QUEUES + i] = 1;
    });
  }

  /** The interface as worker 0 published it, or null. */
  link(ifindex: number): SharedLink | null {
    const s = this.#slot(ifindex);
    if (s < 0) return null;
    const l = this.links;
    const b = s * LINK_WORDS;
    const queues: SharedQueue[] = [];
    for (let i = 0; i < l[b + L_QUEUES]; i++) {
      const o = b + L_QUEUE0 + i * Q_WORDS;
      queues.push({ fd: l[o], fillAddr: l[o + 1], fillLen: l[o + 2], compAddr: l[o + 3], compLen: l[o + 4] });
    }
    return { xsks: l[b + L_XSKS], generic: l[b + L_MODE] === 1, queues };
  }

  /**
   * Sockets bound on the interface's queue: +1 (a worker joined) or −1 (one closed); returns the
   * count after. At 0 the interface's entry goes once its last queue is empty.
   */
  ref(ifindex: number, queue: number, delta: number): number {
    const s = this.#slot(ifindex);
    if (s < 0) return 0;
    const i = s * SHARE_QUEUES + queue;
    const n = this.refs[i] + delta;
    this.refs[i] = n;
    let any = false;
    for (let q = 0; q < SHARE_QUEUES; q++) any ||= this.refs[s * SHARE_QUEUES + q] > 0;
    if (!any) this.links.fill(0, s * LINK_WORDS, (s + 1) * LINK_WORDS);
    return n;
  }
}
