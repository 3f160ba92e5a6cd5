// The masters a sync backup hears, for the table refresh (refresh.ts, docs/ha.md "Table
// refresh"): which one is new (a master never heard, or silent for PEER_LOST_MS: it joined,
// restarted or comes back from a partition, and needs this director's table), and, while this
// director warms up, whether every master heard has sent the marker that ends its refresh from
// each of its workers. Pure: the daemon (daemon/sync.ts) gives the clock and the datagrams.

import { readRefreshMarker } from "./refresh.js";

/** A master that says nothing else sends an empty message this often (ms). */
export const SYNC_HELLO_MS = 1000;
/** A master not heard for this long is new again when it is next heard (ms). */
export const PEER_LOST_MS = 3 * SYNC_HELLO_MS;
/** Workers a marker may name (a bit each). */
const MAX_WORKERS = 30;

interface Peer {
  last: number;
  /** Workers whose marker arrived since the warm-up began or the peer was new (bit per worker). */
  marked: number;
  /** The number of workers its markers say; 0 before the first. */
  workers: number;
}

export type WarmState = "off" | "warming" | "complete" | "bound";

export class SyncPeers {
  /** Connections received during the warm-up. */
  entries = 0;
  private readonly peers = new Map<string, Peer>();
  private since = -1;
  private boundMs = 0;
  private ended: WarmState = "off";

  /**
   * A message from `from` (its source address) with `conns` connections: returns whether the
   * master is new (this director's refresh is due).
   */
  heard(from: string, msg: Uint8Array, conns: number, now: number): boolean {
    let p = this.peers.get(from);
    const fresh = p === undefined || now - p.last >= PEER_LOST_MS;
    if (p === undefined) {
      p = { last: now, marked: 0, workers: 0 };
      this.peers.set(from, p);
    } else if (fresh) {
      // Restarted: its markers so far were of the tables it had then.
      p.marked = 0;
      p.workers = 0;
    }
    p.last = now;
    if (this.ended === "warming") {
      this.entries += conns;
      const mark = readRefreshMarker(msg);
      const workers = mark >>> 8;
      if (mark >= 0 && workers > 0 && workers <= MAX_WORKERS && (mark & 0xff) < workers) {
        if (workers !== p.workers) p.marked = 0;
        p.workers = workers;
        p.marked |= 1 << (mark & 0xff);
      }
    }
    return fresh;
  }

  /** The warm-up begins (the daemons are about to start together). */
  beginWarmup(now: number, boundMs: number): void {
    if (this.ended !== "off") return;
    this.since = now;
    this.boundMs = boundMs;
    this.entries = 0;
    this.ended = "warming";
  }

  /**
   * Where the warm-up is: "complete" once PEER_LOST_MS have passed (every live master has been
   * heard: each sends at least every SYNC_HELLO_MS) with the backup listening, and every master
   * heard lately has sent its markers; "bound" when boundMs passed first. Both are final.
   */
  warmState(now: number, listening: boolean): WarmState {
    if (this.ended !== "warming") return this.ended;
    const age = now - this.since;
    let complete = listening && age >= PEER_LOST_MS;
    for (const p of this.peers.values()) {
      if (now - p.last >= PEER_LOST_MS) continue; // gone: nothing more will come from it
      if (p.workers === 0 || p.marked !== 2 ** p.workers - 1) complete = false;
    }
    if (complete) this.ended = "complete";
    else if (age >= this.boundMs) this.ended = "bound";
    return this.ended;
  }

  /** Masters heard (not lost). */
  live(now: number): number {
    let n = 0;
    for (const p of this.peers.values()) if (now - p.last < PEER_LOST_MS) n++;
    return n;
  }

  /** The backup stopped: whoever is heard next is new. */
  clear(): void {
    this.peers.clear();
  }
}
