// ARP neighbour cache: the state machine of net/core/neighbour.c (neigh_timer_handler,
// __neigh_event_send, neigh_update) with the ARP specifics of net/ipv4/arp.c, per
// (ifindex, IPv4 address). Pure: the caller supplies `now` (ms), sends the requests the cache
// asks for, and hands every ARP reply (or request for one of our addresses) to confirm().
//
// States, as `ip neigh` names them:
//   INCOMPLETE  request sent, no answer yet; frames wait in a small queue (unres_qlen)
//   REACHABLE   confirmed less than reachableMs ago
//   STALE       not confirmed lately, still used; learned from someone else's request, or
//               REACHABLE that aged out
//   DELAY       a STALE entry was used: keep sending to it, probe after delayMs unless something
//               confirms it meanwhile (delay_first_probe_time)
//   PROBE       requests every retransMs, still sending to the old MAC; after maxProbes
//               unanswered requests the entry FAILS and is forgotten
// FAILED is not kept: an entry that fails is dropped with its queue, and the next frame to that
// neighbour starts a fresh resolution, which is what __neigh_event_send does for NUD_FAILED.
//
// Simplifications, deliberate: reachable time is exactly reachableMs (the kernel randomises
// base_reachable_time between 1/2 and 3/2); PROBE requests are whatever the caller sends
// (the engine broadcasts; the kernel unicasts to the cached MAC first); the queue is counted in
// frames, not bytes (unres_qlen rather than unres_qlen_bytes); there is no size limit other than
// the garbage collection of STALE entries unused for staleMs (gc_staletime).
//
// IPv6 neighbours (NDP, RFC 4861 §7.3, net/ipv6/ndisc.c) live in the same cache with the same
// states, timers, queue and options (the kernel's nd_tbl defaults are arp_tbl's: 3 multicast
// solicitations 1 s apart, 30 s reachable, 5 s delay, 60 s gc_staletime). They differ where NDP
// does: the solicitations an INCOMPLETE entry asks for go to the solicited-node group and those of
// PROBE are unicast to the cached MAC (ndisc_solicit: ucast_solicit first); a neighbour is learned
// from an NA for its address as neigh_update weighs it (S, O, and whether the MAC changed), and
// from the source link-layer option of its NS for one of ours (STALE). An entry is keyed by
// (ifindex, address): per interface a map keyed by the address's fold (XOR of its words, as int32)
// to a chain of entries compared word by word, so a lookup allocates nothing.

import { ipv6Fold, ipv6WordsText } from "./addr.js";
import { formatMac } from "./packet/eth.js";
import { sameWords6 } from "./route.js";

export interface NeighOptions {
  /** REACHABLE lasts this long after a confirmation (base_reachable_time, 30 s). */
  reachableMs?: number;
  /** Interval between requests while INCOMPLETE or PROBE (retrans_time, 1 s). */
  retransMs?: number;
  /** Requests sent before an entry fails (mcast_solicit / ucast_solicit, 3). */
  maxProbes?: number;
  /** Frames kept per unresolved neighbour; the oldest is dropped first (unres_qlen, 3). */
  queueLen?: number;
  /** A STALE entry not used for this long is forgotten (gc_staletime, 60 s). */
  staleMs?: number;
  /** A used STALE entry waits this long for a confirmation before probing (delay_first_probe_time, 5 s). */
  delayMs?: number;
}

export interface QueuedFrame {
  /** A private copy of the frame as enqueued; the caller writes the destination MAC at offset 0. */
  frame: Uint8Array;
  len: number;
  /** A copy of the virtio_net_hdr a GSO aggregate must leave with (the kernel refuses it without), or null. */
  vnet: Uint8Array | null;
}

export interface EnqueueResult {
  /** The caller must send an ARP request now (the entry was just created). */
  sendRequest: boolean;
  /** The frame was kept; false when the neighbour is not being resolved (see enqueue). */
  queued: boolean;
  /** Older frames dropped from the queue to make room for this one. */
  dropped: number;
}

/** A neighbour solicitation the cache asks for (IPv6). */
export interface NeighSolicit {
  ifindex: number;
  /** The target's four words (the entry's own array: read it, do not keep or modify it). */
  ip6: Int32Array;
  /** PROBE: unicast to this MAC (a copy); null: to the target's solicited-node group. */
  mac: Uint8Array | null;
  /**
   * The newest frame waiting for the neighbour, or null: ndisc_solicit sends from its source when
   * that is an address of the interface (else from the link-local address).
   */
  frame: QueuedFrame | null;
}

export interface NeighTickOut {
  /** ARP requests to send now (appended). */
  requests: { ifindex: number; ip: number }[];
  /** IPv6 solicitations to send now (appended); absent: IPv6 entries time out without them. */
  solicits?: NeighSolicit[];
  /** Queued frames dropped because their neighbour failed (added to). */
  dropped: number;
}

export interface NeighEntryView {
  ifindex: number;
  /** IPv4: the address; IPv6: its fold. */
  ip: number;
  /** IPv6 only: the address as inet_ntop prints it. */
  ip6?: string;
  mac: string | null;
  state: string;
}

const INCOMPLETE = 0;
const REACHABLE = 1;
const STALE = 2;
const DELAY = 3;
const PROBE = 4;
const STATE_NAMES = ["INCOMPLETE", "REACHABLE", "STALE", "DELAY", "PROBE"] as const;

/** A cache entry; opaque to callers, who may hold one as a handle (entry(), use()). */
export class Neigh {
  state = INCOMPLETE;
  readonly mac = new Uint8Array(6);
  /** Last confirmation (REACHABLE ages from here). */
  confirmed = 0;
  /** Last use by lookup (STALE garbage collection). */
  used = 0;
  /** Next timer event: retransmission (INCOMPLETE, PROBE) or first probe (DELAY). */
  timer = 0;
  probes = 0;
  /** Removed from the cache: a handle held by a caller (see entry()) is no longer valid. */
  dead = false;
  readonly queue: QueuedFrame[] = [];
  /** IPv6: the next entry of the same interface whose address has the same fold. */
  next6: Neigh | null = null;
  constructor(
    readonly ifindex: number,
    /** IPv4: the address (u32); IPv6: the fold of ip6. */
    readonly ip: number,
    /** IPv6: the address's four words (a private copy); null for IPv4. */
    readonly ip6: Int32Array | null = null,
  ) {}
}

const NO_FRAMES: readonly QueuedFrame[] = Object.freeze([]);

/** What the timer step asks of the walk over a map (see step()). */
const STEP_NONE = 0;
const STEP_SOLICIT = 1;
const STEP_GONE = 2;

/** NA flags (RFC 4861 §4.4), as ndp.ts's NDP_NA_*. */
const NA_SOLICITED = 0x40;
const NA_OVERRIDE = 0x20;

export class NeighCache {
  private readonly reachableMs: number;
  private readonly retransMs: number;
  private readonly maxProbes: number;
  private readonly queueLen: number;
  private readonly staleMs: number;
  private readonly delayMs: number;
  /**
   * Per ifindex, keyed by the address as int32: a small integer for V8, so that a lookup
   * allocates nothing (a u32 above 2^31, or ifindex * 2^32 + ip, is a boxed heap number).
   */
  private readonly maps = new Map<number, Map<number, Neigh>>();
  /** IPv6: per ifindex, the fold of the address (int32) → the chain of entries with that fold. */
  private readonly maps6 = new Map<number, Map<number, Neigh>>();
  private readonly result: EnqueueResult = { sendRequest: false, queued: false, dropped: 0 };

  constructor(opts: NeighOptions = {}) {
    this.reachableMs = opts.reachableMs ?? 30_000;
    this.retransMs = opts.retransMs ?? 1000;
    this.maxProbes = Math.max(1, opts.maxProbes ?? 3);
    this.queueLen = Math.max(0, opts.queueLen ?? 3);
    this.staleMs = opts.staleMs ?? 60_000;
    this.delayMs = opts.delayMs ?? 5000;
  }

  private mapOf(ifindex: number): Map<number, Neigh> {
    let m = this.maps.get(ifindex);
    if (m === undefined) {
      m = new Map();
      this.maps.set(ifindex, m);
    }
    return m;
  }

  /** The interface's IPv6 map, created when missing (cold paths: creation and deletion). */
  private map6Of(ifindex: number): Map<number, Neigh> {
    const m = this.maps6.get(ifindex) ?? new Map<number, Neigh>();
    this.maps6.set(ifindex, m);
    return m;
  }

  get size(): number {
    let n = 0;
    for (const m of this.maps.values()) n += m.size;
    for (const m of this.maps6.values())
      for (const h of m.values()) for (let c: Neigh | null = h; c !== null; c = c.next6) n++;
    return n;
  }

  /**
   * The neighbour's MAC when it may be used now (REACHABLE, STALE, DELAY, PROBE), else null.
   * The returned array belongs to the cache: read it, do not keep or modify it.
   * Using a STALE entry arms its DELAY timer, as neigh_event_send does.
   */
  lookup(ifindex: number, ip: number, now: number): Uint8Array | null {
    const n = this.mapOf(ifindex).get(ip | 0);
    if (n === undefined) return null;
    return this.use(n, now);
  }

  /**
   * The entry for (ifindex, ip) if there is one, as a handle the caller may keep (a per
   * destination cache) and pass to use() instead of looking the neighbour up per frame.
   */
  entry(ifindex: number, ip: number): Neigh | null {
    return this.mapOf(ifindex).get(ip | 0) ?? null;
  }

  /**
   * lookup() on a handle from entry(): the MAC when usable now, null when the entry is
   * INCOMPLETE or was removed from the cache (then look it up again).
   */
  use(n: Neigh, now: number): Uint8Array | null {
    if (n.dead || n.state === INCOMPLETE) return null;
    n.used = now;
    if (n.state === REACHABLE) {
      if (now - n.confirmed < this.reachableMs) return n.mac;
      n.state = STALE;
    }
    if (n.state === STALE) {
      n.state = DELAY;
      n.timer = now + this.delayMs;
    }
    return n.mac;
  }

  /**
   * Queues a copy of frame[0, len) for a neighbour that lookup() did not resolve. Creates an
   * INCOMPLETE entry (sendRequest = true) when none exists. For a neighbour that is already
   * resolved nothing is queued (queued = false): the caller should have used lookup().
   * The result object is reused by the next call.
   */
  enqueue(
    ifindex: number,
    ip: number,
    frame: Uint8Array,
    len: number,
    now: number,
    vnet: Uint8Array | null = null,
  ): EnqueueResult {
    const r = this.freshResult();
    ip >>>= 0;
    const m = this.mapOf(ifindex);
    const key = ip | 0;
    let n = m.get(key);
    if (n === undefined) {
      n = new Neigh(ifindex, ip);
      n.used = now;
      n.probes = 1;
      n.timer = now + this.retransMs;
      m.set(key, n);
      r.sendRequest = true;
    } else if (n.state !== INCOMPLETE) {
      return r;
    }
    return this.queueFrame(n, frame, len, vnet);
  }

  private freshResult(): EnqueueResult {
    const r = this.result;
    r.sendRequest = false;
    r.queued = false;
    r.dropped = 0;
    return r;
  }

  /** Fills this.result for a frame that waits for the INCOMPLETE entry n. */
  private queueFrame(n: Neigh, frame: Uint8Array, len: number, vnet: Uint8Array | null): EnqueueResult {
    const r = this.result;
    if (this.queueLen === 0) return r;
    const q = n.queue;
    // __neigh_event_send drops from the head until the new packet fits.
    while (q.length >= this.queueLen) {
      q.shift();
      r.dropped++;
    }
    q.push({ frame: frame.slice(0, len), len, vnet: vnet === null ? null : vnet.slice() });
    r.queued = true;
    return r;
  }

  // ---------------------------------------------------------------- IPv6

  /** The IPv6 entry for (ifindex, w[off..+4]) if there is one, as a handle for use(). */
  entry6(ifindex: number, w: Int32Array, off: number): Neigh | null {
    const m = this.maps6.get(ifindex);
    if (m === undefined) return null;
    let n = m.get((w[off] ^ w[off + 1] ^ w[off + 2] ^ w[off + 3]) | 0) ?? null;
    while (n !== null && !sameWords6(n.ip6 as Int32Array, 0, w, off)) n = n.next6;
    return n;
  }

  /** lookup() for an IPv6 neighbour. */
  lookup6(ifindex: number, w: Int32Array, off: number, now: number): Uint8Array | null {
    const n = this.entry6(ifindex, w, off);
    return n === null ? null : this.use(n, now);
  }

  private create6(ifindex: number, w: Int32Array, off: number): Neigh {
    const ip6 = w.slice(off, off + 4);
    const fold = ipv6Fold(ip6);
    const n = new Neigh(ifindex, fold, ip6);
    const m = this.map6Of(ifindex);
    n.next6 = m.get(fold | 0) ?? null;
    m.set(fold | 0, n);
    return n;
  }

  /**
   * enqueue() for an IPv6 neighbour: sendRequest asks the caller for a multicast solicitation
   * (the entry was just created; the frame just queued says where from, see NeighSolicit.frame).
   */
  enqueue6(
    ifindex: number,
    w: Int32Array,
    off: number,
    frame: Uint8Array,
    len: number,
    now: number,
    vnet: Uint8Array | null = null,
  ): EnqueueResult {
    const r = this.freshResult();
    let n = this.entry6(ifindex, w, off);
    if (n === null) {
      n = this.create6(ifindex, w, off);
      n.used = now;
      n.probes = 1;
      n.timer = now + this.retransMs;
      r.sendRequest = true;
    } else if (n.state !== INCOMPLETE) {
      return r;
    }
    return this.queueFrame(n, frame, len, vnet);
  }

  /**
   * An NA for the neighbour w[off..+4] (its target), with NDP_NA_* `flags` and its target
   * link-layer address at mac[macOff..+6] (macOff < 0: none), as ndisc_recv_na → neigh_update
   * (WEAK_OVERRIDE, OVERRIDE when O is set) weighs it:
   *
   *   entry        NA                                  afterwards
   *   none         any                                 still none (an NA creates nothing)
   *   INCOMPLETE   no address                          unchanged
   *   INCOMPLETE   address, S / no S                   REACHABLE / STALE, queued frames returned
   *   valid        same or no address, S               REACHABLE (confirmed)
   *   valid        same or no address, no S            unchanged
   *   valid        new address, O                      new MAC; REACHABLE with S, else STALE
   *   REACHABLE    new address, no O                   STALE, MAC kept
   *   other valid  new address, no O                   unchanged
   *
   * Returns the frames to send now, oldest first (the caller writes the MAC at offset 0).
   */
  learnFromNa(
    ifindex: number,
    w: Int32Array,
    off: number,
    flags: number,
    mac: Uint8Array,
    macOff: number,
    now: number,
  ): readonly QueuedFrame[] {
    const n = this.entry6(ifindex, w, off);
    if (n === null) return NO_FRAMES;
    const solicited = (flags & NA_SOLICITED) !== 0;
    if (n.state === INCOMPLETE) {
      if (macOff < 0) return NO_FRAMES;
      return this.resolve(n, mac, macOff, solicited ? REACHABLE : STALE, now);
    }
    const differs = macOff >= 0 && !sameMac(n.mac, mac, macOff);
    if (differs && (flags & NA_OVERRIDE) === 0) {
      if (n.state === REACHABLE) n.state = STALE;
      return NO_FRAMES;
    }
    if (differs) n.mac.set(mac.subarray(macOff, macOff + 6));
    if (solicited) {
      n.state = REACHABLE;
      n.confirmed = now;
      n.probes = 0;
    } else if (differs) n.state = STALE;
    return NO_FRAMES;
  }

  /**
   * An NS from the neighbour w[off..+4] for one of our addresses, with its source link-layer
   * address at mac[macOff..]: ndisc_recv_ns creates the entry or updates it as STALE (an unchanged
   * MAC leaves a valid entry as it was); an INCOMPLETE entry is resolved by it and its queued
   * frames are returned. The caller skips DAD probes (source ::) and NSs without the option.
   */
  learnFromNs(
    ifindex: number,
    w: Int32Array,
    off: number,
    mac: Uint8Array,
    macOff: number,
    now: number,
  ): readonly QueuedFrame[] {
    let n = this.entry6(ifindex, w, off);
    if (n === null) {
      n = this.create6(ifindex, w, off);
      n.state = STALE;
      n.used = now;
      n.mac.set(mac.subarray(macOff, macOff + 6));
      return NO_FRAMES;
    }
    if (n.state === INCOMPLETE) return this.resolve(n, mac, macOff, STALE, now);
    if (!sameMac(n.mac, mac, macOff)) {
      n.mac.set(mac.subarray(macOff, macOff + 6));
      n.state = STALE;
    }
    return NO_FRAMES;
  }

  /** INCOMPLETE → state with the MAC at mac[macOff]; its queue is handed back. */
  private resolve(
    n: Neigh,
    mac: Uint8Array,
    macOff: number,
    state: number,
    now: number,
  ): readonly QueuedFrame[] {
    n.mac.set(mac.subarray(macOff, macOff + 6));
    n.state = state;
    n.probes = 0;
    if (state === REACHABLE) n.confirmed = now;
    else n.used = now;
    if (n.queue.length === 0) return NO_FRAMES;
    return n.queue.splice(0, n.queue.length);
  }

  /** Forgets one IPv6 neighbour (its queued frames are discarded); false when unknown. */
  delete6(ifindex: number, w: Int32Array, off = 0): boolean {
    const n = this.entry6(ifindex, w, off);
    if (n === null) return false;
    this.unlink6(this.map6Of(ifindex), n);
    return true;
  }

  private unlink6(m: Map<number, Neigh>, n: Neigh): void {
    n.dead = true;
    const key = n.ip | 0;
    const head = m.get(key);
    if (head === n) {
      if (n.next6 === null) m.delete(key);
      else m.set(key, n.next6);
      return;
    }
    for (let p = head ?? null; p !== null; p = p.next6)
      if (p.next6 === n) {
        p.next6 = n.next6;
        return;
      }
  }

  /**
   * An ARP packet from `ip` on `ifindex` says its MAC is `mac` (copied). A known entry becomes
   * REACHABLE and its queued frames are returned, oldest first, for the caller to send; an
   * unknown neighbour is learned as STALE (neigh_event_ns: learned, not confirmed by us).
   */
  confirm(ifindex: number, ip: number, mac: Uint8Array, now: number): readonly QueuedFrame[] {
    ip >>>= 0;
    const m = this.mapOf(ifindex);
    const key = ip | 0;
    let n = m.get(key);
    if (n === undefined) {
      n = new Neigh(ifindex, ip);
      n.state = STALE;
      n.used = now;
      n.mac.set(mac.subarray(0, 6));
      m.set(key, n);
      return NO_FRAMES;
    }
    n.mac.set(mac.subarray(0, 6));
    n.state = REACHABLE;
    n.confirmed = now;
    n.probes = 0;
    if (n.queue.length === 0) return NO_FRAMES;
    const out = n.queue.splice(0, n.queue.length);
    return out;
  }

  /** Timers: retransmissions, failures, ageing. Call it periodically; see NeighTickOut. */
  tick(now: number, out: NeighTickOut): void {
    for (const m of this.maps.values()) this.tickMap(m, now, out);
    for (const m of this.maps6.values()) this.tickMap6(m, now, out);
  }

  private tickMap(m: Map<number, Neigh>, now: number, out: NeighTickOut): void {
    for (const [key, n] of m) {
      const s = this.step(n, now, out);
      if (s === STEP_SOLICIT) out.requests.push({ ifindex: n.ifindex, ip: n.ip });
      else if (s === STEP_GONE) m.delete(key);
    }
  }

  private tickMap6(m: Map<number, Neigh>, now: number, out: NeighTickOut): void {
    const chains = [...m.values()];
    for (const h of chains)
      for (let n: Neigh | null = h; n !== null; n = n.next6) {
        const s = this.step(n, now, out);
        if (s === STEP_SOLICIT)
          out.solicits?.push({
            ifindex: n.ifindex,
            ip6: n.ip6 as Int32Array,
            mac: n.state === PROBE ? n.mac.slice() : null,
            frame: n.queue.length === 0 ? null : n.queue[n.queue.length - 1],
          });
        else if (s === STEP_GONE) this.unlink6(m, n);
      }
  }

  /** One entry's timers (neigh_timer_handler); STEP_GONE: the caller removes it (already marked dead). */
  private step(n: Neigh, now: number, out: NeighTickOut): number {
    switch (n.state) {
      case INCOMPLETE:
      case PROBE:
        if (now < n.timer) return STEP_NONE;
        if (n.probes >= this.maxProbes) {
          // NUD_FAILED: neigh_invalidate drops the queue (arp_error_report for each frame).
          out.dropped += n.queue.length;
          n.queue.length = 0;
          n.dead = true;
          return STEP_GONE;
        }
        n.probes++;
        n.timer = now + this.retransMs;
        return STEP_SOLICIT;
      case REACHABLE:
        if (now - n.confirmed >= this.reachableMs) n.state = STALE;
        return STEP_NONE;
      case STALE:
        if (now - n.used < this.staleMs) return STEP_NONE;
        n.dead = true;
        return STEP_GONE;
      case DELAY:
        if (now < n.timer) return STEP_NONE;
        n.state = PROBE;
        n.probes = 1;
        n.timer = now + this.retransMs;
        return STEP_SOLICIT;
    }
    return STEP_NONE;
  }

  /** Forgets one neighbour (its queued frames are discarded); false when unknown. */
  delete(ifindex: number, ip: number): boolean {
    const m = this.mapOf(ifindex);
    const n = m.get(ip | 0);
    if (n === undefined) return false;
    n.dead = true;
    return m.delete(ip | 0);
  }

  /**
   * Forgets every neighbour of one interface, with the frames queued for them: the interface went
   * away or took another MAC (what was learned there may no longer hold). Returns how many.
   */
  flushIface(ifindex: number): number {
    const gone = this.all().filter((n) => n.ifindex === ifindex);
    for (const n of gone) {
      n.dead = true;
      n.queue.length = 0;
    }
    this.maps.delete(ifindex);
    this.maps6.delete(ifindex);
    return gone.length;
  }

  clear(): void {
    for (const n of this.all()) n.dead = true;
    this.maps.clear();
    this.maps6.clear();
  }

  /** Every entry, IPv4 then IPv6 (cold paths only: it allocates). */
  private all(): Neigh[] {
    const v = [...this.maps.values()].flatMap((m) => [...m.values()]);
    for (const m of this.maps6.values())
      for (const h of m.values()) for (let c: Neigh | null = h; c !== null; c = c.next6) v.push(c);
    return v;
  }

  entries(): NeighEntryView[] {
    return this.all().map((n) => {
      const mac = n.state === INCOMPLETE ? null : formatMac(n.mac);
      const state = STATE_NAMES[n.state];
      return n.ip6 === null
        ? { ifindex: n.ifindex, ip: n.ip, mac, state }
        : { ifindex: n.ifindex, ip: n.ip, ip6: ipv6WordsText(n.ip6), mac, state };
    });
  }
}

function sameMac(a: Uint8Array, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 6; i++) if (a[i] !== b[bOff + i]) return false;
  return true;
}
