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

import { formatMac } from "./packet/eth.js";

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

export interface NeighTickOut {
  /** Requests to send now (appended). */
  requests: { ifindex: number; ip: number }[];
  /** Queued frames dropped because their neighbour failed (added to). */
  dropped: number;
}

export interface NeighEntryView {
  ifindex: number;
  ip: number;
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
  constructor(
    readonly ifindex: number,
    readonly ip: number,
  ) {}
}

const NO_FRAMES: readonly QueuedFrame[] = Object.freeze([]);

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

  get size(): number {
    let n = 0;
    for (const m of this.maps.values()) n += m.size;
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
    const r = this.result;
    r.sendRequest = false;
    r.queued = false;
    r.dropped = 0;
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
  }

  private tickMap(m: Map<number, Neigh>, now: number, out: NeighTickOut): void {
    for (const [key, n] of m) {
      switch (n.state) {
        case INCOMPLETE:
        case PROBE:
          if (now < n.timer) break;
          if (n.probes >= this.maxProbes) {
            // NUD_FAILED: neigh_invalidate drops the queue (arp_error_report for each frame).
            out.dropped += n.queue.length;
            n.queue.length = 0;
            n.dead = true;
            m.delete(key);
            break;
          }
          n.probes++;
          n.timer = now + this.retransMs;
          out.requests.push({ ifindex: n.ifindex, ip: n.ip });
          break;
        case REACHABLE:
          if (now - n.confirmed >= this.reachableMs) n.state = STALE;
          break;
        case STALE:
          if (now - n.used >= this.staleMs) {
            n.dead = true;
            m.delete(key);
          }
          break;
        case DELAY:
          if (now < n.timer) break;
          n.state = PROBE;
          n.probes = 1;
          n.timer = now + this.retransMs;
          out.requests.push({ ifindex: n.ifindex, ip: n.ip });
          break;
      }
    }
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
    const m = this.maps.get(ifindex);
    if (m === undefined) return 0;
    for (const n of m.values()) {
      n.dead = true;
      n.queue.length = 0;
    }
    this.maps.delete(ifindex);
    return m.size;
  }

  clear(): void {
    for (const m of this.maps.values()) for (const n of m.values()) n.dead = true;
    this.maps.clear();
  }

  entries(): NeighEntryView[] {
    const v: NeighEntryView[] = [];
    for (const n of [...this.maps.values()].flatMap((m) => [...m.values()])) {
      v.push({
        ifindex: n.ifindex,
        ip: n.ip,
        mac: n.state === INCOMPLETE ? null : formatMac(n.mac),
        state: STATE_NAMES[n.state],
      });
    }
    return v;
  }
}
