// The connection table (net/netfilter/ipvs/ip_vs_conn.c), as an array of fixed-size records.
//
// One connection = one index `cx`; its record is 16 int32 words (64 bytes, one cache line) in
// one shared buffer, holding everything an established packet reads or writes: the key of
// both directions, the method and state, the destination, both hash links, the expiry and the
// forward timer link, the packet counters. What only creation, expiry, persistence, the
// table-full defence and connection sync need sits in a second, 32-byte record per entry
// (`cold`). At a million entries a lookup-and-update touches the bucket head and one line per
// entry walked: the struct-of-arrays layout this replaces touched one line per field.
//
// Three structures hang off the same indices:
//
// - Two chained hash tables with next-links in the records. IN holds every entry, hashed as
//   ip_vs_conn_hashkey_conn hashes the client's packet: <proto, caddr, cport> (vaddr and vport
//   are compared, not hashed). OUT holds the entries whose replies cross the director —
//   non-templates forwarded by Masq or FullNat — and is walked with the tuple of the real
//   server's reply <proto, daddr:dport → laddr:lport>. A Masq entry hashes only its reply's
//   destination <proto, laddr, lport>, the kernel's inverse key; as laddr:lport is caddr:cport,
//   that is its IN bucket's number, and the heads of both tables are interleaved, so a new NAT
//   connection links both chains in one cache line, which the read-ahead of its SYN has loaded.
//   A FULLNAT reply goes to a LIP:lport that connections to several real servers may share, so
//   FULLNAT entries hash the whole tuple; a lookup walks the Masq bucket, then the FULLNAT one,
//   each only while the table holds entries of that kind. The kernel keys both directions into
//   one table; two keep each chain walk to one compare set. Every entry remembers the bucket it
//   was hashed into, so unhash never depends on the key fields staying untouched while hashed.
// - A hashed timer wheel (Varghese & Lauck): TIMER_SLOTS circular doubly linked lists of
//   TIMER_TICK_MS each, sentinels at indices capacity..capacity+TIMER_SLOTS-1, the exact expiry
//   kept per entry. An entry sits in the slot of its expiry tick (never behind the wheel's
//   position); entries more than one turn ahead are simply skipped until their turn comes, so
//   arm is O(1) and advance is O(entries in the visited slots). A later expiry (every packet of
//   a live connection) only rewrites the expiry: the entry is relinked when its old slot comes.
// - A FIFO ring of entries that entered SYN_RECV/SYNACK, validated lazily, to find the oldest
//   embryonic entry when the table is full (the kernel's ip_vs_random_dropentry targets the
//   same victims).
//
// The free list reuses the IN next-links (a free entry is never hashed). Addresses are stored
// as int32 (the bits of the u32) so that every word stays a small integer for V8.
//
// IPv6 (docs/dev-notes.md "IPv6 design"): the hot record is the same. An IPv6 entry keeps in its
// address words the kernel's addr_fold of each address (the XOR of its four words), so it hashes
// as the kernel's IPv6 entries do, and two tsvs-private flags say which side is IPv6: the client
// side (caddr, vaddr: the IN key) and the server side (daddr, laddr: the OUT key; NAT64 FULLNAT
// has an IPv6 client side and an IPv4 server side). Every lookup masks the flag of the side it
// compares into the test it already makes on H_META, so an IPv4 lookup never matches an IPv6
// entry and the other way round, at no extra read for IPv4. The full addresses sit in a side
// array of 16 words per entry (caddr, vaddr, daddr, laddr × 4), allocated with the first IPv6
// entry: an IPv6 lookup whose hot line matches reads one more line, IPv4 entries never touch it.
//
// PROXY protocol (packet/proxy-proto.ts): a connection whose FULLNAT service sends the header has
// CONN_F_PP in its hot flags and two words in a third side array (the client's first data sequence
// number; the header's length, version and state), allocated with the first such connection. Only
// those connections read it: other entries pay nothing but the flag test their method already makes.

import { TCP_S_SYN_RECV, TCP_S_SYNACK } from "../proto/tcp.js";

// IP_VS_CONN_F_* (include/uapi/linux/ip_vs.h); FWD values are dest.ts's Fwd.
export const CONN_F_FWD_MASK = 0x0007;
/** The entry came from a sync message (a backup's copy of its master's connection). */
export const CONN_F_SYNC = 0x0020;
export const CONN_F_NOOUTPUT = 0x0080;
export const CONN_F_INACTIVE = 0x0100;
export const CONN_F_TEMPLATE = 0x1000;
export const CONN_F_ONE_PACKET = 0x2000;
/** tsvs: the TOA option went out with the handshake-completing ACK (FULLNAT). */
export const CONN_F_TOA_SENT = 0x8000;
/** tsvs: the client side (caddr, vaddr) is IPv6; the hot record holds folds (bits the kernel leaves unused). */
export const CONN_F_IPV6 = 0x4000;
/** tsvs: the server side (daddr, laddr) is IPv6. */
export const CONN_F_DEST_IPV6 = 0x0010;
/**
 * tsvs: FULLNAT sends the PROXY protocol header on this connection (its service asked at the SYN);
 * the sequence state is in the PP record (ppIsnOf / ppWordOf). A bit the kernel leaves unused.
 */
export const CONN_F_PP = 0x0008;
/**
 * tsvs: the SYN proxy answered this connection's handshake (synproxy.ts keeps its sequence state in
 * a side record of its own). The kernel's HASHED bit, which tsvs entries never carry and sync masks.
 */
export const CONN_F_SYNPROXY = 0x0040;

/** Word offsets of the four addresses in an entry's IPv6 record (addr6Words). */
export const A6_CADDR = 0;
export const A6_VADDR = 4;
export const A6_DADDR = 8;
export const A6_LADDR = 12;

const FWD_MASQ = 0;
const FWD_FULLNAT = 5;

export const TIMER_TICK_MS = 100;
export const TIMER_SLOTS = 1024;
const SLOT_MASK = TIMER_SLOTS - 1;

const MAX_CAPACITY = 1 << 24;

// Hot record: 16 words, 64-byte aligned (the buffer starts aligned; 16 * 4 = 64).
const STRIDE = 16;
const SHIFT = 4;
const H_CADDR = 0;
const H_VADDR = 1;
/** cport << 16 | vport */
const H_CVPORT = 2;
/** proto | state << 8 | flags << 16 */
const H_META = 3;
const H_DADDR = 4;
const H_LADDR = 5;
/** dport << 16 | lport */
const H_DLPORT = 6;
const H_DEST = 7;
const H_INNEXT = 8;
const H_OUTNEXT = 9;
/** Words 10-11: the expiry as a float64 (ms, the caller's clock). */
const H_EXPIRY = 10;
/** Next timer link, -1 when not armed. */
const H_TNEXT = 12;
const H_TIMEOUT = 13;
const H_INPKTS = 14;
const H_OUTPKTS = 15;

// Cold record: 8 words.
const CSTRIDE = 8;
const CSHIFT = 3;
const C_CONTROL = 0;
const C_NCONTROL = 1;
const C_INBKT = 2;
/** The OUT bucket << 1, | 1 for FULLNAT's whole-tuple key; -1 when not in OUT. */
const C_OUTBKT = 3;
const C_TPREV = 4;
const C_EMBPOS = 5;
const C_ALIVE = 6;
/** Connection sync: the state last synced and when (sync/policy.ts packs it); 0 when new. */
const C_SYNC = 7;

const META_TEMPLATE = CONN_F_TEMPLATE << 16;
const META_IPV6 = CONN_F_IPV6 << 16;
const META_DEST_IPV6 = CONN_F_DEST_IPV6 << 16;
/** IPv6 record: 16 words per entry. */
const SHIFT6 = 4;

function fold(w: Int32Array): number {
  return w[0] ^ w[1] ^ w[2] ^ w[3];
}

/** Do the four words at a[ai] equal w[0..3]? */
function words4Equal(a: Int32Array, ai: number, w: Int32Array): boolean {
  return a[ai] === w[0] && a[ai + 1] === w[1] && a[ai + 2] === w[2] && a[ai + 3] === w[3];
}

// murmur3's 32-bit block round and finaliser: cheap, and every key bit reaches every bucket bit.
function round(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** One end of a tuple: ip_vs_conn_hashkey's <proto, addr, port>. */
function hashEnd(seed: number, proto: number, a: number, p: number): number {
  return finish(round(round(seed ^ proto, a), p));
}

/** Both ends: FULLNAT's reply tuple <proto, RIP:rport → LIP:lport>. */
function hashKey(seed: number, proto: number, a1: number, p1: number, a2: number, p2: number): number {
  return finish(round(round(round(seed ^ proto, a1), a2), (p1 << 16) | p2));
}

function finish(h: number): number {
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

/**
 * Where the table's big arrays live: an ArrayBuffer of at least `bytes` zeroed bytes. Injected (the
 * daemon's asks the kernel for huge pages, src/io/hugepages.ts); by default V8's own memory.
 */
export type TableAlloc = (bytes: number) => ArrayBuffer;

const plainAlloc: TableAlloc = (bytes) => new ArrayBuffer(bytes);

export class ConnTable {
  readonly capacity: number;
  /** Allocated entries. */
  size = 0;

  private readonly seed: number;
  /** Hot records of `capacity` entries and the timer sentinels after them. */
  private readonly h: Int32Array;
  /** The same buffer as float64 (the expiry words). */
  private readonly hf: Float64Array;
  private readonly cold: Int32Array;
  private readonly bucketMask: number;
  /**
   * The bucket heads of both tables, interleaved: heads[2b] starts IN bucket b, heads[2b + 1] OUT
   * bucket b. A Masq entry's two keys name the same b (see hash), so its heads share a line.
   */
  private readonly heads: Int32Array;
  /** Hashed OUT entries by key: Masq's <proto, laddr, lport>, FULLNAT's whole reply tuple. */
  private outOne = 0;
  private outBoth = 0;
  private freeHead: number;

  /** Index of the list that advance() drains; capacity + TIMER_SLOTS. */
  private readonly pending: number;
  /** The wheel's position: no entry is linked behind this tick. */
  private wheelTick = 0;
  private advancing = false;

  private readonly embRing: Int32Array;
  private embTail = 0;
  private embCount = 0;

  /** The IPv6 addresses of every entry (16 words each), allocated with the first IPv6 entry. */
  private a6: Int32Array | null = null;
  /** The PROXY protocol record of every entry (2 words), allocated with the first CONN_F_PP entry. */
  private pp: Int32Array | null = null;

  /** `seed` perturbs the hash (the kernel's ip_vs_conn_rnd); inject randomness to resist flooding. */
  constructor(capacity: number, seed = 0, alloc: TableAlloc = plainAlloc) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY) {
      throw new RangeError(`connection table capacity must be an integer in 1..${MAX_CAPACITY}`);
    }
    this.capacity = capacity;
    this.seed = seed | 0;
    const nodes = capacity + TIMER_SLOTS + 1;
    const buf = alloc(nodes * STRIDE * 4);
    this.h = new Int32Array(buf, 0, nodes * STRIDE);
    this.hf = new Float64Array(buf, 0, (nodes * STRIDE) >> 1);
    this.cold = new Int32Array(alloc(nodes * CSTRIDE * 4), 0, nodes * CSTRIDE);
    const h = this.h;
    const c = this.cold;
    let buckets = 1;
    while (buckets < capacity) buckets *= 2;
    this.bucketMask = buckets - 1;
    this.heads = new Int32Array(alloc(buckets * 8), 0, 2 * buckets).fill(-1);
    for (let i = 0; i < nodes; i++) {
      const b = i << SHIFT;
      h[b + H_DEST] = -1;
      h[b + H_OUTNEXT] = -1;
      h[b + H_TNEXT] = -1;
      // Free list in index order, so that a fresh table hands out 0, 1, 2, ...
      h[b + H_INNEXT] = i + 1 < capacity ? i + 1 : -1;
      const k = i << CSHIFT;
      c[k + C_CONTROL] = -1;
      c[k + C_INBKT] = -1;
      c[k + C_OUTBKT] = -1;
      c[k + C_TPREV] = -1;
      c[k + C_EMBPOS] = -1;
    }
    this.freeHead = 0;
    for (let s = capacity; s < nodes; s++) {
      h[(s << SHIFT) + H_TNEXT] = s;
      c[(s << CSHIFT) + C_TPREV] = s;
    }
    this.pending = capacity + TIMER_SLOTS;
    // Twice the capacity: at most `capacity` notes are valid at once, so a compaction of a full
    // ring frees at least half of it and its cost is amortised over that many notes.
    this.embRing = new Int32Array(2 * capacity);
  }

  // ------------------------------------------------------------ fields

  protoOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_META] & 0xff;
  }
  /** TCP_S_* for TCP; 0 otherwise. */
  stateOf(cx: number): number {
    return (this.h[(cx << SHIFT) + H_META] >>> 8) & 0xff;
  }
  /** CONN_F_* and the forwarding method in the low bits. */
  flagsOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_META] >>> 16;
  }
  caddrOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_CADDR] >>> 0;
  }
  cportOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_CVPORT] >>> 16;
  }
  vaddrOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_VADDR] >>> 0;
  }
  vportOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_CVPORT] & 0xffff;
  }
  daddrOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_DADDR] >>> 0;
  }
  dportOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_DLPORT] >>> 16;
  }
  /** FULLNAT: the LIP; Masq: caddr (the reply's destination). */
  laddrOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_LADDR] >>> 0;
  }
  lportOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_DLPORT] & 0xffff;
  }
  /** Is the client side (caddr, vaddr) IPv6? Then caddrOf/vaddrOf are folds and addr6Of has the words. */
  isIpv6(cx: number): boolean {
    return (this.h[(cx << SHIFT) + H_META] & META_IPV6) !== 0;
  }
  /** Is the server side (daddr, laddr) IPv6? */
  isDestIpv6(cx: number): boolean {
    return (this.h[(cx << SHIFT) + H_META] & META_DEST_IPV6) !== 0;
  }
  /**
   * The IPv6 record of every entry, null before the first IPv6 entry: the words of address `which`
   * (A6_CADDR, A6_VADDR, A6_DADDR, A6_LADDR) of entry cx are at (cx << 4) + which, +1, +2, +3.
   * Meaningful only for the sides isIpv6 / isDestIpv6 say are IPv6.
   */
  get addr6Words(): Int32Array | null {
    return this.a6;
  }
  /** Copies the four words of address `which` (A6_*) of entry cx into out[off..off+3]. */
  addr6Of(cx: number, which: number, out: Int32Array, off = 0): void {
    const a = this.a6;
    const i = (cx << SHIFT6) + which;
    if (a === null) out.fill(0, off, off + 4);
    else for (let k = 0; k < 4; k++) out[off + k] = a[i + k];
  }
  /** Destination id, -1 for none. */
  destOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_DEST];
  }
  /** The timeout (ms) of the last arm. */
  timeoutOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_TIMEOUT] >>> 0;
  }
  inPktsOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_INPKTS] >>> 0;
  }
  outPktsOf(cx: number): number {
    return this.h[(cx << SHIFT) + H_OUTPKTS] >>> 0;
  }
  /** Controlling template index, -1 for none. */
  controlOf(cx: number): number {
    return this.cold[(cx << CSHIFT) + C_CONTROL];
  }
  /** How many entries this one controls (templates). */
  nControlOf(cx: number): number {
    return this.cold[(cx << CSHIFT) + C_NCONTROL];
  }
  /** The sync word (sync/policy.ts: old state and last sync time), 0 for a new entry. */
  syncWordOf(cx: number): number {
    return this.cold[(cx << CSHIFT) + C_SYNC];
  }

  setProto(cx: number, v: number): void {
    const i = (cx << SHIFT) + H_META;
    this.h[i] = (this.h[i] & ~0xff) | (v & 0xff);
  }
  setState(cx: number, v: number): void {
    const i = (cx << SHIFT) + H_META;
    this.h[i] = (this.h[i] & ~0xff00) | ((v & 0xff) << 8);
  }
  setFlags(cx: number, v: number): void {
    const i = (cx << SHIFT) + H_META;
    this.h[i] = (this.h[i] & 0xffff) | (v << 16);
  }
  /** State and flags in one write (the per-packet state transition). */
  setStateFlags(cx: number, state: number, flags: number): void {
    const i = (cx << SHIFT) + H_META;
    this.h[i] = (this.h[i] & 0xff) | ((state & 0xff) << 8) | (flags << 16);
  }
  setCaddr(cx: number, v: number): void {
    this.h[(cx << SHIFT) + H_CADDR] = v;
  }
  setCport(cx: number, v: number): void {
    const i = (cx << SHIFT) + H_CVPORT;
    this.h[i] = (this.h[i] & 0xffff) | ((v & 0xffff) << 16);
  }
  setVaddr(cx: number, v: number): void {
    this.h[(cx << SHIFT) + H_VADDR] = v;
  }
  setVport(cx: number, v: number): void {
    const i = (cx << SHIFT) + H_CVPORT;
    this.h[i] = (this.h[i] & ~0xffff) | (v & 0xffff);
  }
  setDaddr(cx: number, v: number): void {
    this.h[(cx << SHIFT) + H_DADDR] = v;
  }
  setDport(cx: number, v: number): void {
    const i = (cx << SHIFT) + H_DLPORT;
    this.h[i] = (this.h[i] & 0xffff) | ((v & 0xffff) << 16);
  }
  setLaddr(cx: number, v: number): void {
    this.h[(cx << SHIFT) + H_LADDR] = v;
  }
  setLport(cx: number, v: number): void {
    const i = (cx << SHIFT) + H_DLPORT;
    this.h[i] = (this.h[i] & ~0xffff) | (v & 0xffff);
  }
  setDest(cx: number, v: number): void {
    this.h[(cx << SHIFT) + H_DEST] = v;
  }
  setTimeout(cx: number, ms: number): void {
    this.h[(cx << SHIFT) + H_TIMEOUT] = ms;
  }
  setInPkts(cx: number, v: number): void {
    this.h[(cx << SHIFT) + H_INPKTS] = v;
  }
  setOutPkts(cx: number, v: number): void {
    this.h[(cx << SHIFT) + H_OUTPKTS] = v;
  }
  countIn(cx: number): void {
    this.h[(cx << SHIFT) + H_INPKTS]++;
  }
  countOut(cx: number): void {
    this.h[(cx << SHIFT) + H_OUTPKTS]++;
  }
  setControl(cx: number, v: number): void {
    this.cold[(cx << CSHIFT) + C_CONTROL] = v;
  }
  setNControl(cx: number, v: number): void {
    this.cold[(cx << CSHIFT) + C_NCONTROL] = v;
  }
  setSyncWord(cx: number, v: number): void {
    this.cold[(cx << CSHIFT) + C_SYNC] = v;
  }

  /**
   * Every key field at once (a new connection): proto, client, virtual, destination and local
   * ends, flags, destination id; state 0. Not hashed: call hash() after.
   */
  setEntry(
    cx: number,
    proto: number,
    caddr: number,
    cport: number,
    vaddr: number,
    vport: number,
    daddr: number,
    dport: number,
    laddr: number,
    lport: number,
    flags: number,
    dest: number,
  ): void {
    const h = this.h;
    const b = cx << SHIFT;
    h[b + H_CADDR] = caddr;
    h[b + H_VADDR] = vaddr;
    h[b + H_CVPORT] = ((cport & 0xffff) << 16) | (vport & 0xffff);
    h[b + H_META] = (proto & 0xff) | (flags << 16);
    h[b + H_DADDR] = daddr;
    h[b + H_LADDR] = laddr;
    h[b + H_DLPORT] = ((dport & 0xffff) << 16) | (lport & 0xffff);
    h[b + H_DEST] = dest;
  }

  /**
   * Makes the client side of a set entry IPv6 (call after setEntry, before hash): caddr and vaddr
   * become the words c6 and v6 (their folds in the hot record).
   */
  setClient6(cx: number, c6: Int32Array, v6: Int32Array): void {
    const a = this.addr6Array();
    const h = this.h;
    const b = cx << SHIFT;
    const i = cx << SHIFT6;
    for (let k = 0; k < 4; k++) {
      a[i + A6_CADDR + k] = c6[k];
      a[i + A6_VADDR + k] = v6[k];
    }
    h[b + H_CADDR] = fold(c6);
    h[b + H_VADDR] = fold(v6);
    h[b + H_META] |= META_IPV6;
  }

  /** The same for the server side: daddr and laddr become d6 and l6 (for NAT, l6 is the client). */
  setServer6(cx: number, d6: Int32Array, l6: Int32Array): void {
    const a = this.addr6Array();
    const h = this.h;
    const b = cx << SHIFT;
    const i = cx << SHIFT6;
    for (let k = 0; k < 4; k++) {
      a[i + A6_DADDR + k] = d6[k];
      a[i + A6_LADDR + k] = l6[k];
    }
    h[b + H_DADDR] = fold(d6);
    h[b + H_LADDR] = fold(l6);
    h[b + H_META] |= META_DEST_IPV6;
  }

  /**
   * The destination alone becomes IPv6 (an IPv4 client tunnelled to an IPv6 real server, TUN across
   * families): daddr becomes d6 (its fold in the hot record). laddr is left as it is: such an entry
   * is never hashed in OUT (its replies do not cross the director), so it is never compared.
   */
  setDest6(cx: number, d6: Int32Array): void {
    const a = this.addr6Array();
    const i = cx << SHIFT6;
    for (let k = 0; k < 4; k++) a[i + A6_DADDR + k] = d6[k];
    const b = cx << SHIFT;
    this.h[b + H_DADDR] = fold(d6);
    this.h[b + H_META] |= META_DEST_IPV6;
  }

  /** PROXY protocol: the client's first data sequence number (ISN + 1), as int32 bits. */
  ppIsnOf(cx: number): number {
    const p = this.pp;
    return p === null ? 0 : p[cx << 1];
  }

  /** PROXY protocol: the header's length, version and state (fullnat.ts PPW_*). */
  ppWordOf(cx: number): number {
    const p = this.pp;
    return p === null ? 0 : p[(cx << 1) + 1];
  }

  /** Sets the PP record (the caller sets CONN_F_PP). */
  setPp(cx: number, isn1: number, word: number): void {
    let p = this.pp;
    if (p === null) {
      p = new Int32Array(this.capacity << 1);
      this.pp = p;
    }
    p[cx << 1] = isn1 | 0;
    p[(cx << 1) + 1] = word | 0;
  }

  private addr6Array(): Int32Array {
    let a = this.a6;
    if (a === null) {
      a = new Int32Array(this.capacity << SHIFT6);
      this.a6 = a;
    }
    return a;
  }

  // ------------------------------------------------------------ allocation

  /** A fresh entry (not hashed, no timer), or -1 when the table is full. */
  alloc(): number {
    const cx = this.freeHead;
    if (cx < 0) return -1;
    const h = this.h;
    const b = cx << SHIFT;
    this.freeHead = h[b + H_INNEXT];
    h[b + H_INNEXT] = -1;
    h[b + H_META] = 0;
    h[b + H_DEST] = -1;
    h[b + H_TIMEOUT] = 0;
    h[b + H_INPKTS] = 0;
    h[b + H_OUTPKTS] = 0;
    this.hf[(b + H_EXPIRY) >> 1] = 0;
    const k = cx << CSHIFT;
    const c = this.cold;
    c[k + C_ALIVE] = 1;
    c[k + C_CONTROL] = -1;
    c[k + C_NCONTROL] = 0;
    c[k + C_SYNC] = 0;
    this.size++;
    return cx;
  }

  /** Unhash, disarm and return the entry to the free list; freeing a free entry does nothing. */
  free(cx: number): void {
    if (!this.isAllocated(cx)) return;
    this.unhash(cx);
    this.disarm(cx);
    const k = cx << CSHIFT;
    this.cold[k + C_EMBPOS] = -1;
    this.cold[k + C_ALIVE] = 0;
    this.size--;
    this.h[(cx << SHIFT) + H_INNEXT] = this.freeHead;
    this.freeHead = cx;
  }

  isAllocated(cx: number): boolean {
    return cx >= 0 && cx < this.capacity && this.cold[(cx << CSHIFT) + C_ALIVE] === 1;
  }

  /** Calls cb for every allocated entry, in index order; cb may free the entry it is given. */
  forEach(cb: (cx: number) => void): void {
    const c = this.cold;
    for (let cx = 0; cx < this.capacity; cx++) if (c[(cx << CSHIFT) + C_ALIVE] === 1) cb(cx);
  }

  // ------------------------------------------------------------ hashing

  /**
   * Links the entry into IN (always) and OUT (non-templates forwarded by Masq or FullNat) under
   * its current key fields. An entry already hashed is first unhashed (a re-key).
   */
  hash(cx: number): void {
    if (!this.isAllocated(cx)) return;
    const c = this.cold;
    const k = cx << CSHIFT;
    if (c[k + C_INBKT] >= 0 || c[k + C_OUTBKT] >= 0) this.unhash(cx);
    const h = this.h;
    const b = cx << SHIFT;
    const proto = h[b + H_META] & 0xff;
    const cv = h[b + H_CVPORT];
    const heads = this.heads;
    // The lookups' own bucket functions, so that an entry is always where they look.
    const ai = this.inAt(proto, h[b + H_CADDR], cv >>> 16);
    h[b + H_INNEXT] = heads[ai];
    heads[ai] = cx;
    c[k + C_INBKT] = ai >> 1;
    const fl = h[b + H_META] >>> 16;
    if ((fl & CONN_F_TEMPLATE) === 0 && isMasqOrFullNat(fl)) {
      const dl = h[b + H_DLPORT];
      // Masq's reply goes to the client (laddr:lport = caddr:cport): the same end as its IN key.
      // FULLNAT's goes to a LIP:lport, which several real servers' connections may share.
      const both = (fl & CONN_F_FWD_MASK) === FWD_FULLNAT;
      const ao = both
        ? this.outBothAt(proto, h[b + H_DADDR], dl >>> 16, h[b + H_LADDR], dl & 0xffff)
        : this.outOneAt(proto, h[b + H_LADDR], dl & 0xffff);
      h[b + H_OUTNEXT] = heads[ao];
      heads[ao] = cx;
      // ao is 2 * bucket + 1: the bucket << 1 with the key's kind in the low bit.
      c[k + C_OUTBKT] = (ao - 1) | (both ? 1 : 0);
      if (both) this.outBoth++;
      else this.outOne++;
    }
  }

  /** Removes the entry from both tables (from the buckets it was hashed into). */
  unhash(cx: number): void {
    if (cx < 0 || cx >= this.capacity) return;
    const c = this.cold;
    const k = cx << CSHIFT;
    const bi = c[k + C_INBKT];
    if (bi >= 0) {
      this.unlinkChain(bi << 1, H_INNEXT, cx);
      c[k + C_INBKT] = -1;
      this.h[(cx << SHIFT) + H_INNEXT] = -1;
    }
    const bo = c[k + C_OUTBKT];
    if (bo >= 0) {
      this.unlinkChain(bo | 1, H_OUTNEXT, cx);
      if ((bo & 1) !== 0) this.outBoth--;
      else this.outOne--;
      c[k + C_OUTBKT] = -1;
      this.h[(cx << SHIFT) + H_OUTNEXT] = -1;
    }
  }

  /** Unlinks cx from the chain that starts at heads[at] and goes on through `link`. */
  private unlinkChain(at: number, link: number, cx: number): void {
    const h = this.h;
    const heads = this.heads;
    let i = heads[at];
    if (i === cx) {
      heads[at] = h[(cx << SHIFT) + link];
      return;
    }
    while (i >= 0) {
      const n = h[(i << SHIFT) + link];
      if (n === cx) {
        h[(i << SHIFT) + link] = h[(cx << SHIFT) + link];
        return;
      }
      i = n;
    }
  }

  isHashed(cx: number): boolean {
    return cx >= 0 && cx < this.capacity && this.cold[(cx << CSHIFT) + C_INBKT] >= 0;
  }

  /** The client's packet <proto, caddr:cport → vaddr:vport>; non-template entries only. */
  lookupIn(proto: number, caddr: number, cport: number, vaddr: number, vport: number): number {
    proto &= 0xff;
    caddr |= 0;
    cport &= 0xffff;
    vaddr |= 0;
    vport &= 0xffff;
    const ports = (cport << 16) | vport;
    const h = this.h;
    let i = this.headIn(proto, caddr, cport, vaddr, vport);
    while (i >= 0) {
      const b = i << SHIFT;
      if (
        h[b + H_CADDR] === caddr &&
        h[b + H_CVPORT] === ports &&
        h[b + H_VADDR] === vaddr &&
        (h[b + H_META] & (0xff | META_TEMPLATE | META_IPV6)) === proto
      ) {
        return i;
      }
      i = h[b + H_INNEXT];
    }
    return -1;
  }

  /**
   * The first entry of the bucket lookupIn(proto, …) walks, or -1 (for IPv6 the addresses are
   * the folds). The key is the client's end alone, as ip_vs_conn_hashkey's: vaddr and vport only
   * take part in the compare.
   */
  headIn(proto: number, caddr: number, cport: number, _vaddr: number, _vport: number): number {
    return this.heads[this.inAt(proto, caddr, cport)];
  }

  /** The same for the first bucket lookupOut walks (-1 when no entry is hashed in OUT). */
  headOut(proto: number, saddr: number, sport: number, daddr: number, dport: number): number {
    return this.headAt(this.outAt(proto, saddr, sport, daddr, dport));
  }

  /**
   * Where headIn's head is, for headAt. Engine.aheadFrame computes this for every frame of a batch
   * and loads the heads after, in a loop short enough for all of the batch's misses to be in flight
   * at once (computed and loaded in one pass, the hashing between them let two or three overlap).
   */
  inAt(proto: number, caddr: number, cport: number): number {
    return (hashEnd(this.seed, proto & 0xff, caddr | 0, cport & 0xffff) & this.bucketMask) << 1;
  }

  /** Where headOut's head is, -1 when no entry is hashed in OUT. */
  outAt(proto: number, saddr: number, sport: number, daddr: number, dport: number): number {
    if (this.outOne > 0) return this.outOneAt(proto, daddr, dport);
    if (this.outBoth > 0) return this.outBothAt(proto, saddr, sport, daddr, dport);
    return -1;
  }

  /** Does OUT hold both kinds of key? Then a reply that outAt's bucket misses is looked up in FULLNAT's too. */
  private outMixed(): boolean {
    return this.outOne > 0 && this.outBoth > 0;
  }

  /** The head at `at` (from inAt or outAt; -1 gives -1). */
  headAt(at: number): number {
    return at < 0 ? -1 : this.heads[at];
  }

  /** Where OUT's head for the reply's destination end (a Masq entry's laddr:lport) is. */
  private outOneAt(proto: number, daddr: number, dport: number): number {
    return ((hashEnd(this.seed, proto & 0xff, daddr | 0, dport & 0xffff) & this.bucketMask) << 1) + 1;
  }

  /** Where OUT's head for the whole reply tuple (a FULLNAT entry's) is. */
  private outBothAt(proto: number, saddr: number, sport: number, daddr: number, dport: number): number {
    const b = hashKey(this.seed, proto & 0xff, saddr | 0, sport & 0xffff, daddr | 0, dport & 0xffff);
    return ((b & this.bucketMask) << 1) + 1;
  }

  /** A word of entry cx's hot line (cx may be -1: 0), so that reading it loads the line. */
  touch(cx: number): number {
    return cx < 0 ? 0 : this.h[cx << SHIFT];
  }

  /** The same for the IPv6 words of entry cx, which an IPv6 lookup compares. */
  touch6(cx: number): number {
    const a = this.a6;
    return cx < 0 || a === null ? 0 : a[cx << SHIFT6];
  }

  /** lookupIn for an IPv6 client side: the folds find the hot line, the words confirm it. */
  lookupIn6(proto: number, c6: Int32Array, cport: number, v6: Int32Array, vport: number): number {
    return this.find6(true, proto & 0xff, c6, cport, v6, vport);
  }

  /** A persistence template <proto, caddr, 0, vaddr, vport> (ip_vs_ct_in_get); templates only. */
  lookupTemplate(proto: number, caddr: number, vaddr: number, vport: number): number {
    proto &= 0xff;
    caddr |= 0;
    vaddr |= 0;
    vport &= 0xffff;
    const h = this.h;
    let i = this.headIn(proto, caddr, 0, vaddr, vport);
    while (i >= 0) {
      const b = i << SHIFT;
      if (
        h[b + H_CADDR] === caddr &&
        h[b + H_CVPORT] === vport &&
        h[b + H_VADDR] === vaddr &&
        (h[b + H_META] & (0xff | META_TEMPLATE | META_IPV6)) === (proto | META_TEMPLATE)
      ) {
        return i;
      }
      i = h[b + H_INNEXT];
    }
    return -1;
  }

  /**
   * lookupTemplate for an IPv6 service: c6 is the client's address under the service's prefix
   * length, v6 the VIP (a fwmark service's: the mark in word 0, as the kernel's fwmark union).
   */
  lookupTemplate6(proto: number, c6: Int32Array, v6: Int32Array, vport: number): number {
    return this.find6(true, (proto & 0xff) | META_TEMPLATE, c6, 0, v6, vport);
  }

  /**
   * A real server's reply <proto, saddr:sport → daddr:dport> as it reaches the director:
   * matches entries with daddr:dport = saddr:sport and laddr:lport = daddr:dport.
   */
  lookupOut(proto: number, saddr: number, sport: number, daddr: number, dport: number): number {
    proto &= 0xff;
    saddr |= 0;
    sport &= 0xffff;
    daddr |= 0;
    dport &= 0xffff;
    const ports = (sport << 16) | dport;
    // A Masq entry's bucket first, then (when the table holds any) a FULLNAT entry's: a director
    // running one of the two methods walks one bucket.
    const at = this.outAt(proto, saddr, sport, daddr, dport);
    const i = this.walkOut(this.headAt(at), proto, saddr, ports, daddr);
    if (i >= 0 || !this.outMixed()) return i;
    return this.walkOut(
      this.heads[this.outBothAt(proto, saddr, sport, daddr, dport)],
      proto,
      saddr,
      ports,
      daddr,
    );
  }

  private walkOut(i: number, proto: number, saddr: number, ports: number, daddr: number): number {
    const h = this.h;
    while (i >= 0) {
      const b = i << SHIFT;
      if (
        h[b + H_DADDR] === saddr &&
        h[b + H_DLPORT] === ports &&
        h[b + H_LADDR] === daddr &&
        (h[b + H_META] & (0xff | META_DEST_IPV6)) === proto
      ) {
        return i;
      }
      i = h[b + H_OUTNEXT];
    }
    return -1;
  }

  /** lookupOut for an IPv6 server side (a reply RIP → client, or → LIP for FULLNAT). */
  lookupOut6(proto: number, s6: Int32Array, sport: number, d6: Int32Array, dport: number): number {
    return this.find6(false, proto & 0xff, s6, sport, d6, dport);
  }

  /**
   * The IPv6 lookups: in IN (`inSide`: caddr, vaddr; `meta` is proto with META_TEMPLATE for a
   * template) or OUT (daddr, laddr), the entry whose hot line has the folds, the ports and `meta`
   * under its side's IPv6 flag, and whose IPv6 record has the words x6 and y6.
   */
  private find6(
    inSide: boolean,
    meta: number,
    x6: Int32Array,
    xp: number,
    y6: Int32Array,
    yp: number,
  ): number {
    const a = this.a6;
    if (a === null) return -1;
    xp &= 0xffff;
    yp &= 0xffff;
    const x = fold(x6);
    const y = fold(y6);
    const ports = (xp << 16) | yp;
    const h = this.h;
    const wx = inSide ? H_CADDR : H_DADDR;
    const wy = inSide ? H_VADDR : H_LADDR;
    const wp = inSide ? H_CVPORT : H_DLPORT;
    const link = inSide ? H_INNEXT : H_OUTNEXT;
    const flag = inSide ? META_IPV6 : META_DEST_IPV6;
    const mask = 0xff | flag | (inSide ? META_TEMPLATE : 0);
    const ax = inSide ? A6_CADDR : A6_DADDR;
    const ay = inSide ? A6_VADDR : A6_LADDR;
    // IN has one bucket to walk; OUT the Masq one, then the FULLNAT one (as lookupOut).
    let at = inSide ? this.inAt(meta, x, xp) : this.outAt(meta, x, xp, y, yp);
    const second = !inSide && this.outMixed();
    meta |= flag;
    for (let probe = 0; probe < 2; probe++) {
      let i = this.headAt(at);
      while (i >= 0) {
        const b = i << SHIFT;
        if (
          h[b + wx] === x &&
          h[b + wp] === ports &&
          h[b + wy] === y &&
          (h[b + H_META] & mask) === meta &&
          words4Equal(a, (i << SHIFT6) + ax, x6) &&
          words4Equal(a, (i << SHIFT6) + ay, y6)
        ) {
          return i;
        }
        i = h[b + link];
      }
      if (!second) return -1;
      at = this.outBothAt(meta, x, xp, y, yp);
    }
    return -1;
  }

  // ------------------------------------------------------------ timers

  /** (Re)starts the entry's timer: it expires at now + ms; timeoutOf(cx) = ms. */
  arm(cx: number, ms: number, now: number): void {
    const h = this.h;
    const b = cx << SHIFT;
    h[b + H_TIMEOUT] = ms;
    const e = now + ms;
    const ei = (b + H_EXPIRY) >> 1;
    // Pushing an armed entry's expiry later (every packet of a live connection) leaves it
    // where it is: its slot comes up no later than the old expiry, and the walk then relinks
    // it by its exact expiry. Only an earlier expiry has to move now.
    if (h[b + H_TNEXT] >= 0 && e >= this.hf[ei]) {
      this.hf[ei] = e;
      return;
    }
    this.hf[ei] = e;
    this.unlinkTimer(cx);
    this.linkTimer(cx, this.slotOf(e));
  }

  /** Stops the entry's timer (expiresAt keeps the last expiry). */
  disarm(cx: number): void {
    this.unlinkTimer(cx);
  }

  isArmed(cx: number): boolean {
    return cx >= 0 && cx < this.capacity && this.h[(cx << SHIFT) + H_TNEXT] >= 0;
  }

  /** Absolute expiry (ms, the caller's clock) of the last arm. */
  expiresAt(cx: number): number {
    return this.hf[((cx << SHIFT) + H_EXPIRY) >> 1];
  }

  /**
   * Calls cb(cx, at) for every armed entry whose expiry is ≤ now, disarmed before the call, in
   * the order of their expiry ticks: a jump of more than one wheel turn is walked one turn at a
   * time, and `at` is the end of the turn being walked (≤ now), the time the entry would have
   * fired had advance been called on time (re-arm from `at`, not from `now`). The callback may
   * free or re-arm that entry or any other; an entry armed from inside a callback to expire at
   * or before `at` may fire in this call or in the next one. Not reentrant: advance() called
   * from a callback does nothing.
   */
  advance(now: number, cb: (cx: number, at: number) => void): void {
    if (this.advancing) return;
    this.advancing = true;
    try {
      let target = Math.floor(now / TIMER_TICK_MS);
      if (!(target >= this.wheelTick)) target = this.wheelTick; // a clock that went back, or NaN
      if (target - this.wheelTick >= TIMER_SLOTS) this.rewheel(target);
      while (target - this.wheelTick >= TIMER_SLOTS) {
        const from = this.wheelTick;
        const last = from + TIMER_SLOTS - 1;
        const at = last * TIMER_TICK_MS + (TIMER_TICK_MS - 1);
        // The last slot of the turn is visited again by the next step: what the callbacks
        // arm into the past lands there and still fires in this call.
        this.wheelTick = last;
        for (let t = from; t <= last; t++) this.runSlot(this.capacity + (t & SLOT_MASK), at, cb);
      }
      const from = this.wheelTick;
      // Move the wheel first, so that whatever the callbacks arm lands at or after `target`,
      // in a slot that is visited again (this turn or the next advance).
      this.wheelTick = target;
      for (let t = from; t <= target; t++) this.runSlot(this.capacity + (t & SLOT_MASK), now, cb);
    } finally {
      this.advancing = false;
      this.restorePending();
    }
  }

  /**
   * Before a jump of more than one turn: nothing fires before the earliest expiry, so the wheel
   * may start there; every armed entry is relinked into the slot of its exact expiry, which
   * keeps "never linked behind the wheel's position" true after the move. O(armed), and only
   * when the clock leapt ahead (or advance was not called for a wheel turn).
   */
  private rewheel(target: number): void {
    const h = this.h;
    const hf = this.hf;
    const p = this.pending;
    let min = Number.POSITIVE_INFINITY;
    for (let s = this.capacity; s < p; s++) {
      for (let cx = h[(s << SHIFT) + H_TNEXT]; cx !== s; cx = h[(cx << SHIFT) + H_TNEXT]) {
        const e = hf[((cx << SHIFT) + H_EXPIRY) >> 1];
        if (e < min) min = e;
      }
    }
    let start = Math.floor(min / TIMER_TICK_MS);
    if (!(start <= target)) start = target - TIMER_SLOTS + 1; // nothing armed (or NaN)
    if (!(start > this.wheelTick)) return;
    // Park every entry on the pending list, move the wheel, link each by its expiry.
    for (let s = this.capacity; s < p; s++) {
      for (let cx = h[(s << SHIFT) + H_TNEXT]; cx !== s; cx = h[(s << SHIFT) + H_TNEXT]) {
        this.unlinkTimer(cx);
        this.linkTimer(cx, p);
      }
    }
    this.wheelTick = start;
    this.restorePending();
  }

  private slotOf(expiry: number): number {
    let t = Math.floor(expiry / TIMER_TICK_MS);
    if (!(t >= this.wheelTick)) t = this.wheelTick; // also catches NaN
    return this.capacity + (t & SLOT_MASK);
  }

  private runSlot(slot: number, now: number, cb: (cx: number, at: number) => void): void {
    const h = this.h;
    const c = this.cold;
    const p = this.pending;
    const ss = slot << SHIFT;
    const head = h[ss + H_TNEXT];
    if (head === slot) return;
    // Splice the whole slot onto the (empty) pending list, so that callbacks arming entries
    // into this same slot never feed the walk below.
    const tail = c[(slot << CSHIFT) + C_TPREV];
    h[(p << SHIFT) + H_TNEXT] = head;
    c[(head << CSHIFT) + C_TPREV] = p;
    c[(p << CSHIFT) + C_TPREV] = tail;
    h[(tail << SHIFT) + H_TNEXT] = p;
    h[ss + H_TNEXT] = slot;
    c[(slot << CSHIFT) + C_TPREV] = slot;
    const pn = (p << SHIFT) + H_TNEXT;
    for (let cx = h[pn]; cx !== p; cx = h[pn]) {
      this.unlinkTimer(cx);
      const e = this.hf[((cx << SHIFT) + H_EXPIRY) >> 1];
      if (e <= now) cb(cx, now);
      else this.linkTimer(cx, this.slotOf(e));
    }
  }

  /** After a callback threw: put what was left on the pending list back on the wheel. */
  private restorePending(): void {
    const p = this.pending;
    const pn = (p << SHIFT) + H_TNEXT;
    for (let cx = this.h[pn]; cx !== p; cx = this.h[pn]) {
      this.unlinkTimer(cx);
      this.linkTimer(cx, this.slotOf(this.expiresAt(cx)));
    }
  }

  private linkTimer(cx: number, list: number): void {
    const h = this.h;
    const c = this.cold;
    const lp = (list << CSHIFT) + C_TPREV;
    const last = c[lp];
    h[(last << SHIFT) + H_TNEXT] = cx;
    c[(cx << CSHIFT) + C_TPREV] = last;
    h[(cx << SHIFT) + H_TNEXT] = list;
    c[lp] = cx;
  }

  private unlinkTimer(cx: number): void {
    const h = this.h;
    const c = this.cold;
    const ni = (cx << SHIFT) + H_TNEXT;
    const n = h[ni];
    if (n < 0) return;
    const pi = (cx << CSHIFT) + C_TPREV;
    const p = c[pi];
    h[(p << SHIFT) + H_TNEXT] = n;
    c[(n << CSHIFT) + C_TPREV] = p;
    h[ni] = -1;
    c[pi] = -1;
  }

  // ------------------------------------------------------------ embryonic entries

  /** The entry just entered SYN_RECV or SYNACK: it becomes the newest embryonic candidate. */
  noteEmbryonic(cx: number): void {
    if (!this.isAllocated(cx)) return;
    const ring = this.embRing;
    if (this.embCount === ring.length) this.compactEmbryonic();
    // embTail and embCount are each below the length: a subtraction, not a division, per SYN.
    let pos = this.embTail + this.embCount;
    if (pos >= ring.length) pos -= ring.length;
    ring[pos] = cx;
    this.cold[(cx << CSHIFT) + C_EMBPOS] = pos;
    this.embCount++;
  }

  /** The oldest allocated entry still in SYN_RECV or SYNACK, by the order of its last note; -1 if none. */
  oldestEmbryonic(): number {
    const ring = this.embRing;
    const c = this.cold;
    while (this.embCount > 0) {
      const pos = this.embTail;
      const cx = ring[pos];
      if (this.embValid(cx, pos)) return cx;
      if (c[(cx << CSHIFT) + C_EMBPOS] === pos) c[(cx << CSHIFT) + C_EMBPOS] = -1;
      this.embTail = pos + 1 === ring.length ? 0 : pos + 1;
      this.embCount--;
    }
    return -1;
  }

  private embValid(cx: number, pos: number): boolean {
    const k = cx << CSHIFT;
    if (this.cold[k + C_EMBPOS] !== pos || this.cold[k + C_ALIVE] !== 1) return false;
    const st = this.stateOf(cx);
    return st === TCP_S_SYN_RECV || st === TCP_S_SYNACK;
  }

  /** Drops stale notes from a full ring, keeping the order of the valid ones. */
  private compactEmbryonic(): void {
    const ring = this.embRing;
    const c = this.cold;
    const n = ring.length;
    let w = this.embTail;
    let kept = 0;
    for (let k = 0, r = this.embTail; k < this.embCount; k++, r = r + 1 === n ? 0 : r + 1) {
      const cx = ring[r];
      if (this.embValid(cx, r)) {
        ring[w] = cx;
        c[(cx << CSHIFT) + C_EMBPOS] = w;
        w = w + 1 === n ? 0 : w + 1;
        kept++;
      } else if (c[(cx << CSHIFT) + C_EMBPOS] === r) c[(cx << CSHIFT) + C_EMBPOS] = -1;
    }
    this.embCount = kept;
  }

  // ------------------------------------------------------------ diagnostics

  /** Longest chain of each hash table (O(buckets); for tests and benchmarks). */
  maxChain(): { in: number; out: number } {
    return { in: this.longestChain(0, H_INNEXT), out: this.longestChain(1, H_OUTNEXT) };
  }

  private longestChain(side: number, link: number): number {
    const heads = this.heads;
    let worst = 0;
    for (let at = side; at < heads.length; at += 2) {
      let n = 0;
      for (let i = heads[at]; i >= 0; i = this.h[(i << SHIFT) + link]) n++;
      if (n > worst) worst = n;
    }
    return worst;
  }

  /** The buckets an entry is hashed into, -1 when not hashed there. */
  bucketsOf(cx: number): { in: number; out: number } {
    const k = cx << CSHIFT;
    const out = this.cold[k + C_OUTBKT];
    return { in: this.cold[k + C_INBKT], out: out < 0 ? -1 : out >> 1 };
  }

  // ------------------------------------------------------------ memory

  /** Bytes of all typed arrays of the table. */
  get bytes(): number {
    return (
      this.h.byteLength +
      this.cold.byteLength +
      (this.a6 === null ? 0 : this.a6.byteLength) +
      (this.pp === null ? 0 : this.pp.byteLength) +
      this.heads.byteLength +
      this.embRing.byteLength
    );
  }

  /** bytes / capacity: the memory cost of one connection slot, hash buckets and timers included. */
  get bytesPerEntry(): number {
    return this.bytes / this.capacity;
  }
}
