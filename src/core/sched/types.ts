import type { Dest } from "../dest.js";
import type { Flow } from "../packet/flow.js";
import type { Service } from "../service.js";

/** What a scheduler may read besides the service and the packet. */
export interface SchedContext {
  /** Current time, milliseconds (the engine's injected clock). */
  now: number;
  /** Uniform random u32 (injected, so simulations are deterministic). */
  random(): number;
}

/** One number, word or flag of an explanation (JSON as it is). */
export type Figure = number | string | boolean | null;

/**
 * What a scheduler decided on, for `tsvs explain` (src/core/explain.ts): the rule in a few words,
 * the scheduler's own figures (cursor, current weight, hash and slot, table entry, random draws)
 * and per destination, in list order, the figures it compared. Destinations are Dest objects here;
 * explain.ts names them ADDR:PORT.
 */
export interface SchedDetail {
  rule: string;
  figures: Record<string, Figure | Dest>;
  dests: Array<{ dest: Dest; figures: Record<string, Figure> }>;
}

/**
 * One scheduler = one module filling in the kernel's struct ip_vs_scheduler hooks it needs.
 * Per-service state lives in svc.schedData, owned by the scheduler.
 */
export interface Scheduler {
  readonly name: string;
  initService?(svc: Service): void;
  doneService?(svc: Service): void;
  addDest?(svc: Service, dest: Dest): void;
  delDest?(svc: Service, dest: Dest): void;
  updDest?(svc: Service, dest: Dest): void;
  /** Picks a destination for a new connection, or null (the kernel logs "no destination available"). */
  schedule(svc: Service, flow: Flow, ctx: SchedContext): Dest | null;
  /**
   * Control plane (explain): a copy of svc.schedData that schedule() may change without touching
   * the live one (cursors, current weight, locality tables). Absent: schedule() changes no state.
   * explain's prediction is schedule() itself run over this copy (peekSchedule in util.ts), so the
   * prediction and the data path share one piece of code.
   */
  cloneState?(data: unknown): unknown;
  /**
   * Control plane (explain): the figures schedule() decides on for this flow, read without
   * changing anything. `after` is the copy of the state that schedule() ran over (what the live
   * state becomes once the connection is made; svc.schedData itself when there is no cloneState).
   * ctx draws the same random values that schedule() drew.
   */
  explain?(svc: Service, flow: Flow, ctx: SchedContext, after: unknown): SchedDetail;
}
