// In-memory Ethernet segments. A Link is a learning bridge: it floods broadcast, multicast and
// unknown unicast to every other port and sends known unicast only to the port that MAC was
// last seen on (as a real switch does, so a director port does not see the real servers'
// replies to a router). Every delivery is a fresh copy, scheduled on the SimClock after a fixed
// latency: a receiver may rewrite its frame in place and a sender may reuse its buffer at once.

import { formatMac } from "../core/packet/eth.js";
import type { SimClock } from "./clock.js";

export interface NetPort {
  mac: Uint8Array;
  /** A frame for this port: buf[0, len); buf is the port's own copy (with spare capacity). */
  deliver(buf: Uint8Array, len: number): void;
}

export type FrameSender = (buf: Uint8Array, off: number, len: number) => void;

export interface LinkOptions {
  name?: string;
  /** One-way latency in ms (default 0.05). */
  latencyMs?: number;
  /** Frames with an IP part larger than mtu (len > mtu + 14) are dropped and counted. */
  mtu?: number;
  /** Forward known unicast to its port only (default true); false = a hub. */
  learning?: boolean;
  /** Spare bytes after each delivered copy, for receivers that grow frames in place (default 128). */
  headroom?: number;
}

export interface LinkStats {
  frames: number;
  bytes: number;
  deliveries: number;
  dropsMtu: number;
  dropsFilter: number;
}

/** Called for every frame sent on the link (a capture point: `tsvs sim` traces, tests). */
export type LinkTap = (from: number, buf: Uint8Array, len: number, t: number) => void;

export class Link {
  readonly name: string;
  readonly latencyMs: number;
  readonly mtu: number;
  readonly learning: boolean;
  readonly headroom: number;
  readonly stats: LinkStats = { frames: 0, bytes: 0, deliveries: 0, dropsMtu: 0, dropsFilter: 0 };
  private ports: Array<NetPort | null> = [];
  private fdb = new Map<string, number>();
  private taps: LinkTap[] = [];
  /** Loss injection: return true to drop a frame (counted in stats.dropsFilter). */
  dropIf: ((buf: Uint8Array, len: number, from: number) => boolean) | null = null;

  constructor(
    private readonly clock: SimClock,
    opts: LinkOptions = {},
  ) {
    this.name = opts.name ?? "link";
    this.latencyMs = opts.latencyMs ?? 0.05;
    this.mtu = opts.mtu ?? 0;
    this.learning = opts.learning ?? true;
    this.headroom = opts.headroom ?? 128;
  }

  /** Joins a port to the segment; returns the function that sends frames from it. */
  attach(port: NetPort): FrameSender {
    const idx = this.ports.length;
    this.ports.push(port);
    return (buf, off, len) => this.send(idx, buf, off, len);
  }

  /** Unplugs a port (frames already in flight to it are discarded). */
  detach(port: NetPort): void {
    const i = this.ports.indexOf(port);
    if (i < 0) return;
    this.ports[i] = null;
    for (const [k, v] of this.fdb) if (v === i) this.fdb.delete(k);
  }

  tap(fn: LinkTap): void {
    this.taps.push(fn);
  }

  private send(from: number, buf: Uint8Array, off: number, len: number): void {
    if (this.ports[from] === null || len < 14) return;
    if (this.mtu > 0 && len > this.mtu + 14) {
      this.stats.dropsMtu++;
      return;
    }
    if (this.dropIf?.(buf.subarray(off, off + len), len, from)) {
      this.stats.dropsFilter++;
      return;
    }
    this.stats.frames++;
    this.stats.bytes += len;
    const frame = buf.slice(off, off + len);
    for (const t of this.taps) t(from, frame, len, this.clock.now);
    // Learn the source at send time: the bridge sees the frame when it enters.
    if (this.learning && (frame[6] & 1) === 0) this.fdb.set(formatMac(frame, 6), from);
    let only = -1;
    if (this.learning && (frame[0] & 1) === 0) {
      const p = this.fdb.get(formatMac(frame, 0));
      if (p !== undefined) only = p;
    }
    this.clock.after(this.latencyMs, () => {
      for (let i = 0; i < this.ports.length; i++) {
        if (i === from || (only >= 0 && i !== only)) continue;
        const p = this.ports[i];
        if (p === null) continue;
        const copy = new Uint8Array(len + this.headroom);
        copy.set(frame);
        this.stats.deliveries++;
        p.deliver(copy, len);
      }
    });
  }
}
