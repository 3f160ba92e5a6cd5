// The table refresh: a sync master re-sends every live entry of its connection table, so that a
// director joining an active-active farm learns the connections it may be handed before it
// announces the VIPs (docs/ha.md "Table refresh", docs/scale-out.md). A tsvs extension: the
// kernel's master sends a connection only when its packets make ip_vs_sync_conn_needed say so,
// and an idle or slow connection may never be sent again.
//
// The entries go out as ordinary sync messages (v1, or v0 with sync_version=0), written by the
// sender exactly as connIn writes them, so a kernel backup understands every one. A refresh ends
// with a marker message (an empty v1 message with a tsvs trailer, which a kernel backup reads as
// a message of no connection) that tells a warming-up director this worker's table is done.
//
// Bounded: the walk runs from the worker's tick in slices (at most `slots` indices looked at and
// `msgs` messages finished per step), so a table of a million entries costs a few milliseconds
// per tick, never one long stall. Two passes, templates first, so that a tsvs backup finds the
// template when a connection it controls arrives. Each live entry is written once per pass that
// takes it. A refresh asked while one runs is not merged into it (the joiner that asked needs the
// part already walked too): another whole walk follows, and only the last one ends with the
// marker. At most one walk at a time, each finishes. Nothing is allocated per entry. An entry
// created behind the cursor during a walk is not in it: a new connection is sent by the policy
// at its third packet anyway.

import type { ConnTable } from "../conn/table.js";
import { SYNC_F_TEMPLATE } from "./codec.js";

/** What the refresh writes through (sender.ts SyncSender). */
export interface RefreshWriter {
  /** Writes entry cx whatever the policy says; false when the entry has no sync form. */
  writeEntry(cx: number, now: number): boolean;
  /** Messages finished so far (a counter that only grows). */
  readonly messagesQueued: number;
  /** Finishes the message being built and queues the refresh's end marker. */
  queueRefreshMarker(worker: number, workers: number, now: number): void;
}

/** Indices looked at per step at most (a bitmap test each: a few hundred µs). */
export const REFRESH_SLOTS_PER_STEP = 65536;

const IDLE = 0;
const TEMPLATES = 1;
const CONNS = 2;

export class TableRefresh {
  /** Walks completed, entries written by them, and refreshes asked while a walk ran. */
  done = 0;
  entries = 0;
  again = 0;

  private phase = IDLE;
  private cursor = 0;
  /** Another walk follows this one (asked while it ran). */
  private more = false;
  /** Credit in messages (rate × elapsed), carried between steps up to one step's worth. */
  private credit = 0;
  private last = 0;

  constructor(
    private readonly t: ConnTable,
    private readonly w: RefreshWriter,
    /** This worker's index and the number of workers (the marker says both). */
    private readonly worker = 0,
    private readonly workers = 1,
  ) {}

  get running(): boolean {
    return this.phase !== IDLE;
  }

  /** Starts a refresh, or asks for another whole walk after the one running. */
  start(now: number): void {
    if (this.phase !== IDLE) {
      this.again++;
      this.more = true;
      return;
    }
    this.phase = TEMPLATES;
    this.cursor = 0;
    this.last = now;
    this.credit = 0;
  }

  /**
   * One slice of the walk: as many entries as `rate` messages per second allow since the last
   * step (at most `maxMsgs`), looking at no more than `maxSlots` indices. Returns whether a
   * refresh still runs.
   */
  step(now: number, rate: number, maxMsgs: number, maxSlots = REFRESH_SLOTS_PER_STEP): boolean {
    if (this.phase === IDLE) return false;
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.credit = Math.min(maxMsgs, this.credit + (rate * elapsed) / 1000);
    if (this.credit < 1) return true;
    const w = this.w;
    const t = this.t;
    const start = w.messagesQueued;
    const budget = Math.floor(this.credit);
    const end = slotBound(t);
    let cx = this.cursor;
    let looked = 0;
    while (looked < maxSlots && w.messagesQueued - start < budget) {
      if (cx >= end) {
        if (this.phase === TEMPLATES) {
          this.phase = CONNS;
          cx = 0;
          continue;
        }
        this.done++;
        if (this.more) {
          this.more = false;
          this.phase = TEMPLATES;
          cx = 0;
          continue;
        }
        w.queueRefreshMarker(this.worker, this.workers, now);
        this.phase = IDLE;
        break;
      }
      looked++;
      if (t.isAllocated(cx)) {
        const template = (t.flagsOf(cx) & SYNC_F_TEMPLATE) !== 0;
        if (template === (this.phase === TEMPLATES) && w.writeEntry(cx, now)) this.entries++;
      }
      cx++;
    }
    this.cursor = cx;
    this.credit -= w.messagesQueued - start;
    if (this.credit < 0) this.credit = 0;
    return this.phase !== IDLE;
  }
}

/**
 * The table's index space: its slots where it has more slots than entries (an open-addressed
 * layout), else its capacity. Read through the public fields only.
 */
function slotBound(t: ConnTable): number {
  return (t as { readonly capacity: number; readonly slots?: number }).slots ?? t.capacity;
}

/** The marker's trailer after the empty v1 header: "TSRF", the worker, the number of workers. */
export const REFRESH_MARKER_LEN = 8 + 6;
const MARK = [0x54, 0x53, 0x52, 0x46];

/** Writes the marker into buf (REFRESH_MARKER_LEN bytes): an empty v1 message with the trailer. */
export function writeRefreshMarker(buf: Uint8Array, syncid: number, worker: number, workers: number): number {
  const n = REFRESH_MARKER_LEN;
  buf[0] = 0;
  buf[1] = syncid & 0xff;
  buf[2] = n >>> 8;
  buf[3] = n & 0xff;
  buf[4] = 0;
  buf[5] = 1;
  buf[6] = 0;
  buf[7] = 0;
  for (let i = 0; i < 4; i++) buf[8 + i] = MARK[i];
  buf[12] = worker & 0xff;
  buf[13] = workers & 0xff;
  return n;
}

/** A received marker's worker and worker count (worker | workers << 8), or -1 if it is not one. */
export function readRefreshMarker(buf: Uint8Array): number {
  if (buf.length !== REFRESH_MARKER_LEN || buf[0] !== 0 || buf[4] !== 0 || buf[5] !== 1) return -1;
  for (let i = 0; i < 4; i++) if (buf[8 + i] !== MARK[i]) return -1;
  return buf[12] | (buf[13] << 8);
}

/** An empty v1 message (the master's keepalive, so that peers know it is there): 8 bytes. */
export function writeSyncHello(buf: Uint8Array, syncid: number): number {
  buf.fill(0, 0, 8);
  buf[1] = syncid & 0xff;
  buf[3] = 8;
  buf[5] = 1;
  return 8;
}
