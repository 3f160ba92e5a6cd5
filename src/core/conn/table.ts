// The connection table (net/netfilter/ipvs/ip_vs_conn.c), as a struct of typed arrays.
//
// One connection = one index `cx` into parallel typed arrays; nothing is allocated per
// connection or per packet. Three structures hang off the same indices:
//
// - Two chained hash tables with Int32Array next-links. IN holds every entry under
//   <proto, caddr, cport, vaddr, vport> (ip_vs_conn_hashkey_conn of the client's packet);
//   OUT holds the entries whose replies cross the director — non-templates forwarded by
//   Masq or FullNat — under <proto, daddr, dport, laddr, lport>, the tuple of the real
//   server's reply seen from the director (for Masq, laddr:lport is caddr:cport). The kernel
//   keys both directions into one table; two tables keep each chain walk to one compare set.
//   Every entry remembers the bucket it was hashed into, so unhash never depends on the key
//   fields staying untouched while it is hashed.
// - A hashed timer wheel (Varghese & Lauck): TIMER_SLOTS circular doubly linked lists of
//   TIMER_TICK_MS each, sentinels at indices capacity..capacity+TIMER_SLOTS-1, the exact expiry
//   kept per entry. An entry sits in the slot of its expiry tick (never behind the wheel's
//   position); entries more than one turn ahead are simply skipped until their turn comes, so
//   arm is O(1) and advance is O(entries in the visited slots).
// - A FIFO ring of entries that entered SYN_RECV/SYNACK, validated lazily, to find the oldest
//   embryonic entry when the table is full (the kernel's ip_vs_random_dropentry targets the
//   same victims).
//
// The free list reuses the IN next-links (a free entry is never hashed).

import { TCP_S_SYN_RECV, TCP_S_SYNACK } from "../proto/tcp.js";

// IP_VS_CONN_F_* (include/uapi/linux/ip_vs.h); FWD values are dest.ts's Fwd.
export const CONN_F_FWD_MASK = 0x0007;
export const CONN_F_NOOUTPUT = 0x0080;
export const CONN_F_INACTIVE = 0x0100;
export const CONN_F_TEMPLATE = 0x1000;
export const CONN_F_ONE_PACKET = 0x2000;
/** tsvs: the TOA option went out with the handshake-completing ACK (FULLNAT). */
export const CONN_F_TOA_SENT = 0x8000;

const FWD_MASQ = 0;
const FWD_FULLNAT = 5;

export const TIMER_TICK_MS = 100;
export const TIMER_SLOTS = 1024;
const SLOT_MASK = TIMER_SLOTS - 1;

const MAX_CAPACITY = 1 << 28;

// murmur3's 32-bit block round and finaliser: cheap, and every key bit reaches every bucket bit.
function round(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function hashKey(seed: number, proto: number, a1: number, p1: number, a2: number, p2: number): number {
  let h = round(seed ^ proto, a1);
  h = round(h, a2);
  h = round(h, (p1 << 16) | p2);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

function isMasqOrFullNat(flags: number): boolean {
  const fwd = flags & CONN_F_FWD_MASK;
  return fwd === FWD_MASQ || fwd === FWD_FULLNAT;
}

export class ConnTable {
  readonly capacity: number;
  /** Allocated entries. */
  size = 0;

  readonly proto: Uint8Array;
  /** TCP_S_* for TCP; 0 otherwise. */
  readonly state: Uint8Array;
  /** CONN_F_* and the forwarding method in the low bits. */
  readonly flags: Uint16Array;
  readonly caddr: Uint32Array;
  readonly vaddr: Uint32Array;
  readonly daddr: Uint32Array;
  /** FULLNAT: the LIP; Masq: caddr (the reply's destination). */
  readonly laddr: Uint32Array;
  readonly cport: Uint16Array;
  readonly vport: Uint16Array;
  readonly dport: Uint16Array;
  readonly lport: Uint16Array;
  /** Destination id. */
  readonly dest: Int32Array;
  /** Controlling template index, -1 for none. */
  readonly control: Int32Array;
  /** How many entries this one controls (templates). */
  readonly nControl: Int32Array;
  /** The timeout (ms) of the last arm. */
  readonly timeout: Uint32Array;
  readonly inPkts: Uint32Array;
  readonly outPkts: Uint32Array;

  private readonly seed: number;
  private readonly alive: Uint8Array;
  private readonly bucketMask: number;
  private readonly inHead: Int32Array;
  private readonly inNext: Int32Array;
  private readonly inBkt: Int32Array;
  private readonly outHead: Int32Array;
  private readonly outNext: Int32Array;
  private readonly outBkt: Int32Array;
  private freeHead: number;

  private readonly expiry: Float64Array;
  private readonly tNext: Int32Array;
  private readonly tPrev: Int32Array;
  /** Index of the list that advance() drains; capacity + TIMER_SLOTS. */
  private readonly pending: number;
  /** The wheel's position: no entry is linked behind this tick. */
  private wheelTick = 0;
  private advancing = false;

  private readonly embRing: Int32Array;
  /** Ring slot of an entry's latest note, -1 for none. */
  private readonly embPos: Int32Array;
  private embTail = 0;
  private embCount = 0;

  /** `seed` perturbs the hash (the kernel's ip_vs_conn_rnd); inject randomness to resist flooding. */
  constructor(capacity: number, seed = 0) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY) {
      throw new RangeError(`connection table capacity must be an integer in 1..${MAX_CAPACITY}`);
    }
    this.capacity = capacity;
    this.seed = seed | 0;
    this.proto = new Uint8Array(capacity);
    this.state = new Uint8Array(capacity);
    this.flags = new Uint16Array(capacity);
    this.caddr = new Uint32Array(capacity);
    this.vaddr = new Uint32Array(capacity);
    this.daddr = new Uint32Array(capacity);
    this.laddr = new Uint32Array(capacity);
    this.cport = new Uint16Array(capacity);
    this.vport = new Uint16Array(capacity);
    this.dport = new Uint16Array(capacity);
    this.lport = new Uint16Array(capacity);
    this.dest = new Int32Array(capacity).fill(-1);
    this.control = new Int32Array(capacity).fill(-1);
    this.nControl = new Int32Array(capacity);
    this.timeout = new Uint32Array(capacity);
    this.inPkts = new Uint32Array(capacity);
    this.outPkts = new Uint32Array(capacity);

    this.alive = new Uint8Array(capacity);
    let buckets = 1;
    while (buckets < capacity) buckets *= 2;
    this.bucketMask = buckets - 1;
    this.inHead = new Int32Array(buckets).fill(-1);
    this.outHead = new Int32Array(buckets).fill(-1);
    this.inNext = new Int32Array(capacity);
    this.outNext = new Int32Array(capacity).fill(-1);
    this.inBkt = new Int32Array(capacity).fill(-1);
    this.outBkt = new Int32Array(capacity).fill(-1);
    // Free list in index order, so that a fresh table hands out 0, 1, 2, ...
    for (let i = 0; i < capacity; i++) this.inNext[i] = i + 1 < capacity ? i + 1 : -1;
    this.freeHead = 0;

    this.expiry = new Float64Array(capacity);
    const nodes = capacity + TIMER_SLOTS + 1;
    this.tNext = new Int32Array(nodes).fill(-1);
    this.tPrev = new Int32Array(nodes).fill(-1);
    for (let s = capacity; s < nodes; s++) {
      this.tNext[s] = s;
      this.tPrev[s] = s;
    }
    this.pending = capacity + TIMER_SLOTS;

    // Twice the capacity: at most `capacity` notes are valid at once, so a compaction of a full
    // ring frees at least half of it and its cost is amortised over that many notes.
    this.embRing = new Int32Array(2 * capacity);
    this.embPos = new Int32Array(capacity).fill(-1);
  }

  // ------------------------------------------------------------ allocation

  /** A fresh entry (not hashed, no timer), or -1 when the table is full. */
  alloc(): number {
    const cx = this.freeHead;
    if (cx < 0) return -1;
    this.freeHead = this.inNext[cx];
    this.inNext[cx] = -1;
    this.alive[cx] = 1;
    this.size++;
    this.state[cx] = 0;
    this.flags[cx] = 0;
    this.dest[cx] = -1;
    this.control[cx] = -1;
    this.nControl[cx] = 0;
    this.timeout[cx] = 0;
    this.inPkts[cx] = 0;
    this.outPkts[cx] = 0;
    this.expiry[cx] = 0;
    return cx;
  }

  /** Unhash, disarm and return the entry to the free list; freeing a free entry does nothing. */
  free(cx: number): void {
    if (!this.isAllocated(cx)) return;
    this.unhash(cx);
    this.disarm(cx);
    this.embPos[cx] = -1;
    this.alive[cx] = 0;
    this.size--;
    this.inNext[cx] = this.freeHead;
    this.freeHead = cx;
  }

  isAllocated(cx: number): boolean {
    return cx >= 0 && cx < this.capacity && this.alive[cx] === 1;
  }

  /** Calls cb for every allocated entry, in index order; cb may free the entry it is given. */
  forEach(cb: (cx: number) => void): void {
    const alive = this.alive;
    for (let cx = 0; cx < this.capacity; cx++) if (alive[cx] === 1) cb(cx);
  }

  // ------------------------------------------------------------ hashing

  /**
   * Links the entry into IN (always) and OUT (non-templates forwarded by Masq or FullNat) under
   * its current key fields. An entry already hashed is first unhashed (a re-key).
   */
  hash(cx: number): void {
    if (!this.isAllocated(cx)) return;
    if (this.inBkt[cx] >= 0 || this.outBkt[cx] >= 0) this.unhash(cx);
    const m = this.bucketMask;
    const bi =
      hashKey(this.seed, this.proto[cx], this.caddr[cx], this.cport[cx], this.vaddr[cx], this.vport[cx]) & m;
    this.inNext[cx] = this.inHead[bi];
    this.inHead[bi] = cx;
    this.inBkt[cx] = bi;
    const fl = this.flags[cx];
    if ((fl & CONN_F_TEMPLATE) === 0 && isMasqOrFullNat(fl)) {
      const bo =
        hashKey(this.seed, this.proto[cx], this.daddr[cx], this.dport[cx], this.laddr[cx], this.lport[cx]) &
        m;
      this.outNext[cx] = this.outHead[bo];
      this.outHead[bo] = cx;
      this.outBkt[cx] = bo;
    }
  }

  /** Removes the entry from both tables (from the buckets it was hashed into). */
  unhash(cx: number): void {
    if (cx < 0 || cx >= this.capacity) return;
    const bi = this.inBkt[cx];
    if (bi >= 0) {
      unlinkChain(this.inHead, this.inNext, bi, cx);
      this.inBkt[cx] = -1;
      this.inNext[cx] = -1;
    }
    const bo = this.outBkt[cx];
    if (bo >= 0) {
      unlinkChain(this.outHead, this.outNext, bo, cx);
      this.outBkt[cx] = -1;
      this.outNext[cx] = -1;
    }
  }

  isHashed(cx: number): boolean {
    return cx >= 0 && cx < this.capacity && this.inBkt[cx] >= 0;
  }

  /** The client's packet <proto, caddr:cport → vaddr:vport>; non-template entries only. */
  lookupIn(proto: number, caddr: number, cport: number, vaddr: number, vport: number): number {
    proto &= 0xff;
    caddr >>>= 0;
    cport &= 0xffff;
    vaddr >>>= 0;
    vport &= 0xffff;
    let i = this.inHead[hashKey(this.seed, proto, caddr, cport, vaddr, vport) & this.bucketMask];
    while (i >= 0) {
      if (
        this.caddr[i] === caddr &&
        this.cport[i] === cport &&
        this.vaddr[i] === vaddr &&
        this.vport[i] === vport &&
        this.proto[i] === proto &&
        (this.flags[i] & CONN_F_TEMPLATE) === 0
      ) {
        return i;
      }
      i = this.inNext[i];
    }
    return -1;
  }

  /** A persistence template <proto, caddr, 0, vaddr, vport> (ip_vs_ct_in_get); templates only. */
  lookupTemplate(proto: number, caddr: number, vaddr: number, vport: number): number {
    proto &= 0xff;
    caddr >>>= 0;
    vaddr >>>= 0;
    vport &= 0xffff;
    let i = this.inHead[hashKey(this.seed, proto, caddr, 0, vaddr, vport) & this.bucketMask];
    while (i >= 0) {
      if (
        this.caddr[i] === caddr &&
        this.cport[i] === 0 &&
        this.vaddr[i] === vaddr &&
        this.vport[i] === vport &&
        this.proto[i] === proto &&
        (this.flags[i] & CONN_F_TEMPLATE) !== 0
      ) {
        return i;
      }
      i = this.inNext[i];
    }
    return -1;
  }

  /**
   * A real server's reply <proto, saddr:sport → daddr:dport> as it reaches the director:
   * matches entries with daddr:dport = saddr:sport and laddr:lport = daddr:dport.
   */
  lookupOut(proto: number, saddr: number, sport: number, daddr: number, dport: number): number {
    proto &= 0xff;
    saddr >>>= 0;
    sport &= 0xffff;
    daddr >>>= 0;
    dport &= 0xffff;
    let i = this.outHead[hashKey(this.seed, proto, saddr, sport, daddr, dport) & this.bucketMask];
    while (i >= 0) {
      if (
        this.daddr[i] === saddr &&
        this.dport[i] === sport &&
        this.laddr[i] === daddr &&
        this.lport[i] === dport &&
        this.proto[i] === proto
      ) {
        return i;
      }
      i = this.outNext[i];
    }
    return -1;
  }

  // ------------------------------------------------------------ timers

  /** (Re)starts the entry's timer: it expires at now + ms; timeout[cx] = ms. */
  arm(cx: number, ms: number, now: number): void {
    this.timeout[cx] = ms;
    const e = now + ms;
    // Pushing an armed entry's expiry later (every packet of a live connection) leaves it
    // where it is: its slot comes up no later than the old expiry, and the walk then relinks
    // it by its exact expiry. Only an earlier expiry has to move now.
    if (this.tNext[cx] >= 0 && e >= this.expiry[cx]) {
      this.expiry[cx] = e;
      return;
    }
    this.expiry[cx] = e;
    this.unlinkTimer(cx);
    this.linkTimer(cx, this.slotOf(e));
  }

  /** Stops the entry's timer (expiresAt keeps the last expiry). */
  disarm(cx: number): void {
    this.unlinkTimer(cx);
  }

  isArmed(cx: number): boolean {
    return cx >= 0 && cx < this.capacity && this.tNext[cx] >= 0;
  }

  /** Absolute expiry (ms, the caller's clock) of the last arm. */
  expiresAt(cx: number): number {
    return this.expiry[cx];
  }

  /**
   * Calls cb for every armed entry whose expiry is ≤ now, disarmed before the call. The
   * callback may free or re-arm that entry or any other; an entry armed from inside a callback
   * to expire at or before `now` may fire in this call or in the next one. Not reentrant:
   * advance() called from a callback does nothing.
   */
  advance(now: number, cb: (cx: number) => void): void {
    if (this.advancing) return;
    this.advancing = true;
    try {
      const from = this.wheelTick;
      let target = Math.floor(now / TIMER_TICK_MS);
      if (!(target >= from)) target = from; // a clock that went back, or NaN
      // Move the wheel first, so that whatever the callbacks arm lands at or after `target`,
      // in a slot that is visited again (this turn or the next advance).
      this.wheelTick = target;
      const first = target - from >= TIMER_SLOTS ? target - TIMER_SLOTS + 1 : from;
      for (let t = first; t <= target; t++) this.runSlot(this.capacity + (t & SLOT_MASK), now, cb);
    } finally {
      this.advancing = false;
      this.restorePending();
    }
  }

  private slotOf(expiry: number): number {
    let t = Math.floor(expiry / TIMER_TICK_MS);
    if (!(t >= this.wheelTick)) t = this.wheelTick; // also catches NaN
    return this.capacity + (t & SLOT_MASK);
  }

  private runSlot(slot: number, now: number, cb: (cx: number) => void): void {
    const next = this.tNext;
    const prev = this.tPrev;
    const p = this.pending;
    const head = next[slot];
    if (head === slot) return;
    // Splice the whole slot onto the (empty) pending list, so that callbacks arming entries
    // into this same slot never feed the walk below.
    const tail = prev[slot];
    next[p] = head;
    prev[head] = p;
    prev[p] = tail;
    next[tail] = p;
    next[slot] = slot;
    prev[slot] = slot;
    for (let cx = next[p]; cx !== p; cx = next[p]) {
      this.unlinkTimer(cx);
      if (this.expiry[cx] <= now) cb(cx);
      else this.linkTimer(cx, this.slotOf(this.expiry[cx]));
    }
  }

  /** After a callback threw: put what was left on the pending list back on the wheel. */
  private restorePending(): void {
    const p = this.pending;
    for (let cx = this.tNext[p]; cx !== p; cx = this.tNext[p]) {
      this.unlinkTimer(cx);
      this.linkTimer(cx, this.slotOf(this.expiry[cx]));
    }
  }

  private linkTimer(cx: number, list: number): void {
    const prev = this.tPrev;
    const last = prev[list];
    this.tNext[last] = cx;
    prev[cx] = last;
    this.tNext[cx] = list;
    prev[list] = cx;
  }

  private unlinkTimer(cx: number): void {
    const next = this.tNext;
    const n = next[cx];
    if (n < 0) return;
    const p = this.tPrev[cx];
    next[p] = n;
    this.tPrev[n] = p;
    next[cx] = -1;
    this.tPrev[cx] = -1;
  }

  // ------------------------------------------------------------ embryonic entries

  /** The entry just entered SYN_RECV or SYNACK: it becomes the newest embryonic candidate. */
  noteEmbryonic(cx: number): void {
    if (!this.isAllocated(cx)) return;
    const ring = this.embRing;
    if (this.embCount === ring.length) this.compactEmbryonic();
    const pos = (this.embTail + this.embCount) % ring.length;
    ring[pos] = cx;
    this.embPos[cx] = pos;
    this.embCount++;
  }

  /** The oldest allocated entry still in SYN_RECV or SYNACK, by the order of its last note; -1 if none. */
  oldestEmbryonic(): number {
    const ring = this.embRing;
    while (this.embCount > 0) {
      const pos = this.embTail;
      const cx = ring[pos];
      if (this.embValid(cx, pos)) return cx;
      if (this.embPos[cx] === pos) this.embPos[cx] = -1;
      this.embTail = pos + 1 === ring.length ? 0 : pos + 1;
      this.embCount--;
    }
    return -1;
  }

  private embValid(cx: number, pos: number): boolean {
    const st = this.state[cx];
    return this.embPos[cx] === pos && this.alive[cx] === 1 && (st === TCP_S_SYN_RECV || st === TCP_S_SYNACK);
  }

  /** Drops stale notes from a full ring, keeping the order of the valid ones. */
  private compactEmbryonic(): void {
    const ring = this.embRing;
    const n = ring.length;
    let w = this.embTail;
    let kept = 0;
    for (let k = 0, r = this.embTail; k < this.embCount; k++, r = r + 1 === n ? 0 : r + 1) {
      const cx = ring[r];
      if (this.embValid(cx, r)) {
        ring[w] = cx;
        this.embPos[cx] = w;
        w = w + 1 === n ? 0 : w + 1;
        kept++;
      } else if (this.embPos[cx] === r) this.embPos[cx] = -1;
    }
    this.embCount = kept;
  }

  // ------------------------------------------------------------ diagnostics

  /** Longest chain of each hash table (O(buckets); for tests and benchmarks). */
  maxChain(): { in: number; out: number } {
    return { in: longestChain(this.inHead, this.inNext), out: longestChain(this.outHead, this.outNext) };
  }

  /** The buckets an entry is hashed into, -1 when not hashed there. */
  bucketsOf(cx: number): { in: number; out: number } {
    return { in: this.inBkt[cx], out: this.outBkt[cx] };
  }

  // ------------------------------------------------------------ memory

  /** Bytes of all typed arrays of the table. */
  get bytes(): number {
    return (
      this.proto.byteLength +
      this.state.byteLength +
      this.flags.byteLength +
      this.caddr.byteLength +
      this.vaddr.byteLength +
      this.daddr.byteLength +
      this.laddr.byteLength +
      this.cport.byteLength +
      this.vport.byteLength +
      this.dport.byteLength +
      this.lport.byteLength +
      this.dest.byteLength +
      this.control.byteLength +
      this.nControl.byteLength +
      this.timeout.byteLength +
      this.inPkts.byteLength +
      this.outPkts.byteLength +
      this.alive.byteLength +
      this.inHead.byteLength +
      this.inNext.byteLength +
      this.inBkt.byteLength +
      this.outHead.byteLength +
      this.outNext.byteLength +
      this.outBkt.byteLength +
      this.expiry.byteLength +
      this.tNext.byteLength +
      this.tPrev.byteLength +
      this.embRing.byteLength +
      this.embPos.byteLength
    );
  }

  /** bytes / capacity: the memory cost of one connection slot, hash buckets and timers included. */
  get bytesPerEntry(): number {
    return this.bytes / this.capacity;
  }
}

function unlinkChain(head: Int32Array, next: Int32Array, bucket: number, cx: number): void {
  let i = head[bucket];
  if (i === cx) {
    head[bucket] = next[cx];
    return;
  }
  while (i >= 0) {
    const n = next[i];
    if (n === cx) {
      next[i] = next[cx];
      return;
    }
    i = n;
  }
}

function longestChain(head: Int32Array, next: Int32Array): number {
  let worst = 0;
  for (let b = 0; b < head.length; b++) {
    let n = 0;
    for (let i = head[b]; i >= 0; i = next[i]) n++;
    if (n > worst) worst = n;
  }
  return worst;
}
