// Scheduler registry: name → factory. Each call builds a fresh scheduler object; per-service
// state lives in svc.schedData, set up by initService (the kernel's ip_vs_bind_scheduler).
import { createDh } from "./dh.js";
import { createFo } from "./fo.js";
import { createLblc } from "./lblc.js";
import { createLblcr } from "./lblcr.js";
import { createLc } from "./lc.js";
import { createMh } from "./mh.js";
import { createNq } from "./nq.js";
import { createOvf } from "./ovf.js";
import { createRr } from "./rr.js";
import { createSed } from "./sed.js";
import { createSh } from "./sh.js";
import { createTwos } from "./twos.js";
import type { Scheduler } from "./types.js";
import { createWlc } from "./wlc.js";
import { createWrr } from "./wrr.js";

const FACTORIES: Record<string, () => Scheduler> = {
  rr: createRr,
  wrr: createWrr,
  lc: createLc,
  wlc: createWlc,
  lblc: () => createLblc(),
  lblcr: () => createLblcr(),
  dh: createDh,
  sh: createSh,
  sed: createSed,
  nq: createNq,
  fo: createFo,
  ovf: createOvf,
  mh: createMh,
  twos: createTwos,
};

/** The kernel's schedulers, in the order SPEC.md lists them. */
export const SCHEDULER_NAMES: readonly string[] = Object.freeze(Object.keys(FACTORIES));

export function findScheduler(name: string): Scheduler | null {
  const f = Object.hasOwn(FACTORIES, name) ? FACTORIES[name] : undefined;
  return f === undefined ? null : f();
}
