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

  /** The configured addresses now: the pool and every service's laddrs (registered before). */
  setInUse(addrs: Iterable<number>): void {
    const next = new Uint8Array(this.inUse.length);
    for (const a of this.pool) next[this.indexOf(a)] = 1;
    for (const a of addrs) {
      const k = this.indexOf(a);
      if (k >= 0) next[k] = 1;
    }
    for (let k = 0; k < this.list.length; k++) {
      if (next[k] !== this.inUse[k]) {
        this.version++;
        break;
      }
    }
    this.inUse = next;
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
    const refs = new Int32Array(n);
    refs.set(this.refs);
    this.refs = refs;
    const conflicts = new Float64Array(n);
    conflicts.set(this.conflicts);
    this.conflicts = conflicts;
    const inUse = new Uint8Array(n);
    inUse.set(this.inUse);
    this.inUse = inUse;
  }
}
