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
}
