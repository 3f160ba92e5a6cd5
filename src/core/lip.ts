// FULLNAT local addresses (LIPs): the daemon's `--lip` pool and the services' own local
// addresses, as DPVS configures them per service (`ipvsadm -P -t VIP:PORT -z LIP`; DPVS's
// src/ipvs/ip_vs_laddr.c keeps a list per service and walks it round robin).
//
// Several workers share one director: every worker receives the same control commands in the same
// order, so each builds the same ordered list of every LIP ever seen (the pool first, then laddrs
// in the order they first appear), and LIP k belongs to worker k % N. A worker takes only its own
// LIPs for new connections, and the fanout program steers a reply to a LIP to its owner, where the
// connection lives. The list only grows: an address keeps its position (hence its owner) for the
// life of the process, so removing a laddr never moves another one to a different worker.
//
// An address is *owned* (ARP answered, kernel kept out, socket filter open) while it is in the
// pool or in some service's list, and after that for as long as connections of this worker still
// use it: DPVS refcounts a deleted laddr and frees it with its last connection, so connections
// bound to it keep working until they expire. `version` changes whenever the owned set or the
// list changes, so that the I/O side knows when to recompile its filters.
//
// IPv6 local addresses (a service's `-P … -z LIP6`) follow the same rules in a list of their own:
// IPv6 LIP k belongs to worker k % N, a worker uses only its share, the fanout program steers a
// frame to an IPv6 LIP to its owner, and an address stays owned while connections use it. The
// data path finds one by the fold of its words (the kernel's IPv6 hash start), confirmed by the
// words.

import { ipv6Fold, ipv6TextWords } from "./addr.js";

/** Open-addressing slot of an address (int32 bits) in a power-of-two table. */
function slotOf(a: number, mask: number): number {
  const h = Math.imul(a, 0x9e3779b1);
  return (h ^ (h >>> 16)) & mask;
}

export class LipTable {
  /** This worker's index and the number of workers. */
  readonly worker: number;
  readonly workers: number;
  /** Every LIP ever seen, in order (u32): position k belongs to worker k % workers. */
  private readonly list: number[] = [];
  /** Address (int32 bits) → position + 1; 0 = empty slot. */
  private keys = new Int32Array(16);
  private vals = new Int32Array(16);
  /** Per position: connections of this worker bound to it. */
  private refs = new Int32Array(16);
  /** Per position: local ports found taken while allocating (DPVS's port_conflict). */
  private conflicts = new Float64Array(16);
  /** Per position: 1 while in the pool or in a service's list. */
  private inUse = new Uint8Array(16);
  /** IPv6 LIPs ever seen, in order, as text and as words (4 per position). */
  private readonly list6: string[] = [];
  private words6 = new Int32Array(16 * 4);
  /** Fold → position + 1, open addressing (several positions may share a fold). */
  private keys6 = new Int32Array(16);
  private vals6 = new Int32Array(16);
  private refs6 = new Int32Array(16);
  private conflicts6 = new Float64Array(16);
  private inUse6 = new Uint8Array(16);
  /** The pool as given (every worker's). */
  readonly pool: readonly number[];
  /** This worker's share of the pool, int32 bits (the data path reads it). */
  readonly poolShare: Int32Array;
  version = 0;

  constructor(pool: readonly number[], worker = 0, workers = 1) {
    this.worker = worker;
    this.workers = Math.max(1, workers);
    const p: number[] = [];
    for (const a of pool) if (!p.includes(a >>> 0)) p.push(a >>> 0);
    this.pool = p;
    for (const a of p) {
      const k = this.register(a);
      this.inUse[k] = 1;
    }
    this.poolShare = this.share(p);
  }

  /** The position of addr in the list, adding it at the end when new. */
  register(addr: number): number {
    const a = addr >>> 0;
    const at = this.indexOf(a);
    if (at >= 0) return at;
    const k = this.list.length;
    if ((k + 1) * 2 > this.keys.length) this.rehash(this.keys.length * 2);
    if (k + 1 > this.inUse.length) this.grow();
    this.list.push(a);
    this.insert(a | 0, k);
    this.version++;
    return k;
  }

  /** The position of addr, or -1 (per packet: allocates nothing). */
  indexOf(addr: number): number {
    const keys = this.keys;
    const m = keys.length - 1;
    const a = addr | 0;
    for (let i = slotOf(a, m); ; i = (i + 1) & m) {
      const v = this.vals[i];
      if (v === 0) return -1;
      if (keys[i] === a) return v - 1;
    }
  }

  /** Is addr a LIP that is in use (configured, or still bound to connections)? */
  isLip(addr: number): boolean {
    const k = this.indexOf(addr);
    return k >= 0 && (this.inUse[k] === 1 || this.refs[k] > 0);
  }

  /** Does this worker answer for addr (a LIP in use that belongs to it)? */
  owns(addr: number): boolean {
    const k = this.indexOf(addr);
    return k >= 0 && k % this.workers === this.worker && (this.inUse[k] === 1 || this.refs[k] > 0);
  }

  /** The whole list, in order (the fanout program's table). */
  all(): readonly number[] {
    return this.list;
  }

  /** The addresses this worker owns now, in list order. */
  owned(): number[] {
    const out: number[] = [];
    for (let k = this.worker; k < this.list.length; k += this.workers) {
      if (this.inUse[k] === 1 || this.refs[k] > 0) out.push(this.list[k]);
    }
    return out;
  }

  /** This worker's share of a list of addresses (registered before), int32 bits, in order. */
  share(addrs: readonly number[]): Int32Array {
    let n = 0;
    for (const a of addrs) if (this.indexOf(a) % this.workers === this.worker) n++;
    const out = new Int32Array(n);
    n = 0;
    for (const a of addrs) if (this.indexOf(a) % this.workers === this.worker) out[n++] = a | 0;
    return out;
  }

  /**
   * The configured addresses now: the pool and every service's laddrs, IPv4 and IPv6 (text),
   * registered before.
   */
  setInUse(addrs: Iterable<number>, addrs6: Iterable<string> = []): void {
    const next = new Uint8Array(this.inUse.length);
    for (const a of this.pool) next[this.indexOf(a)] = 1;
    for (const a of addrs) {
      const k = this.indexOf(a);
      if (k >= 0) next[k] = 1;
    }
    const next6 = new Uint8Array(this.inUse6.length);
    for (const a of addrs6) {
      const k = this.list6.indexOf(a);
      if (k >= 0) next6[k] = 1;
    }
    if (!sameFlags(next, this.inUse, this.list.length) || !sameFlags(next6, this.inUse6, this.list6.length))
      this.version++;
    this.inUse = next;
    this.inUse6 = next6;
  }

  /** A connection took addr (data path). */
  acquire(addr: number): void {
    const k = this.indexOf(addr);
    if (k >= 0) this.refs[k]++;
  }

  /** A connection that had addr went away (data path); the last one releases a deleted laddr. */
  release(addr: number): void {
    const k = this.indexOf(addr);
    if (k < 0 || this.refs[k] === 0) return;
    if (--this.refs[k] === 0 && this.inUse[k] === 0) this.version++;
  }

  /** A local port of addr was found taken (data path). */
  conflict(addr: number): void {
    const k = this.indexOf(addr);
    if (k >= 0) this.conflicts[k]++;
  }

  /** This worker's connections on addr and the port conflicts met allocating on it. */
  usage(addr: number): { conns: number; conflicts: number } {
    const k = this.indexOf(addr);
    return k < 0 ? { conns: 0, conflicts: 0 } : { conns: this.refs[k], conflicts: this.conflicts[k] };
  }

  // ---------------------------------------------------------------- IPv6

  /** The position of an IPv6 LIP (canonical text), adding it at the end when new. */
  register6(text: string): number {
    const at = this.list6.indexOf(text);
    if (at >= 0) return at;
    const w = ipv6TextWords(text);
    if (w === null) return -1;
    const k = this.list6.length;
    if ((k + 1) * 2 > this.keys6.length) this.rehash6(this.keys6.length * 2);
    if (k + 1 > this.inUse6.length) this.grow6();
    this.list6.push(text);
    this.words6.set(w, k * 4);
    this.insert6(k);
    this.version++;
    return k;
  }

  /** The position of the IPv6 address at w[off..off+3], or -1 (per packet: allocates nothing). */
  indexOf6(w: Int32Array, off: number): number {
    const keys = this.keys6;
    const m = keys.length - 1;
    const f = ipv6Fold(w, off) | 0;
    const a = this.words6;
    for (let i = slotOf(f, m); ; i = (i + 1) & m) {
      const v = this.vals6[i];
      if (v === 0) return -1;
      const b = (v - 1) << 2;
      if (
        keys[i] === f &&
        a[b] === w[off] &&
        a[b + 1] === w[off + 1] &&
        a[b + 2] === w[off + 2] &&
        a[b + 3] === w[off + 3]
      )
        return v - 1;
    }
  }

  /** Does this worker answer for the IPv6 address at w[off] (a LIP in use that belongs to it)? */
  owns6(w: Int32Array, off: number): boolean {
    const k = this.indexOf6(w, off);
    return k >= 0 && k % this.workers === this.worker && (this.inUse6[k] === 1 || this.refs6[k] > 0);
  }

  /** Every IPv6 LIP, in order (the fanout program's table). */
  all6(): readonly string[] {
    return this.list6;
  }

  /** The IPv6 LIPs this worker owns now, in list order. */
  owned6(): string[] {
    const out: string[] = [];
    for (let k = this.worker; k < this.list6.length; k += this.workers) {
      if (this.inUse6[k] === 1 || this.refs6[k] > 0) out.push(this.list6[k]);
    }
    return out;
  }

  /** This worker's share of a list of IPv6 LIPs (registered before): their words, in order. */
  share6(texts: readonly string[]): Int32Array {
    const mine = texts
      .map((t) => this.list6.indexOf(t))
      .filter((k) => k >= 0 && k % this.workers === this.worker);
    const out = new Int32Array(mine.length * 4);
    for (let i = 0; i < mine.length; i++) out.set(this.words6.subarray(mine[i] * 4, mine[i] * 4 + 4), i * 4);
    return out;
  }

  /** A connection took the IPv6 LIP at w[off] (data path). */
  acquire6(w: Int32Array, off: number): void {
    const k = this.indexOf6(w, off);
    if (k >= 0) this.refs6[k]++;
  }

  /** A connection that had the IPv6 LIP at w[off] went away (data path). */
  release6(w: Int32Array, off: number): void {
    const k = this.indexOf6(w, off);
    if (k < 0 || this.refs6[k] === 0) return;
    if (--this.refs6[k] === 0 && this.inUse6[k] === 0) this.version++;
  }

  /** A local port of the IPv6 LIP at w[off] was found taken (data path). */
  conflict6(w: Int32Array, off: number): void {
    const k = this.indexOf6(w, off);
    if (k >= 0) this.conflicts6[k]++;
  }

  /** This worker's connections on an IPv6 LIP and the port conflicts met allocating on it. */
  usage6(text: string): { conns: number; conflicts: number } {
    const k = this.list6.indexOf(text);
    return k < 0 ? { conns: 0, conflicts: 0 } : { conns: this.refs6[k], conflicts: this.conflicts6[k] };
  }

  private insert6(k: number): void {
    const m = this.keys6.length - 1;
    const f = ipv6Fold(this.words6, k * 4) | 0;
    let i = slotOf(f, m);
    while (this.vals6[i] !== 0) i = (i + 1) & m;
    this.keys6[i] = f;
    this.vals6[i] = k + 1;
  }

  private rehash6(size: number): void {
    this.keys6 = new Int32Array(size);
    this.vals6 = new Int32Array(size);
    for (let k = 0; k < this.list6.length; k++) this.insert6(k);
  }

  private grow6(): void {
    const n = this.inUse6.length * 2;
    this.refs6 = grown(this.refs6, new Int32Array(n));
    this.conflicts6 = grown(this.conflicts6, new Float64Array(n));
    this.inUse6 = grown(this.inUse6, new Uint8Array(n));
    this.words6 = grown(this.words6, new Int32Array(n * 4));
  }

  // ---------------------------------------------------------------- IPv4 slots

  private insert(a: number, k: number): void {
    const m = this.keys.length - 1;
    let i = slotOf(a, m);
    while (this.vals[i] !== 0) i = (i + 1) & m;
    this.keys[i] = a;
    this.vals[i] = k + 1;
  }

  private rehash(size: number): void {
    this.keys = new Int32Array(size);
    this.vals = new Int32Array(size);
    for (let k = 0; k < this.list.length; k++) this.insert(this.list[k] | 0, k);
  }

  private grow(): void {
    const n = this.inUse.length * 2;
    this.refs = grown(this.refs, new Int32Array(n));
    this.conflicts = grown(this.conflicts, new Float64Array(n));
    this.inUse = grown(this.inUse, new Uint8Array(n));
  }
}

/** `to` with `from` copied into its start. */
function grown<T extends Int32Array | Float64Array | Uint8Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

/** Are the first n flags of a and b the same? */
function sameFlags(a: Uint8Array, b: Uint8Array, n: number): boolean {
  for (let k = 0; k < n; k++) if (a[k] !== b[k]) return false;
  return true;
}
