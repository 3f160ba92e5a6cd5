// The ipvsadm command set over an in-process engine: the control API (src/control/api.ts).

import { ControlApi } from "../control/api.js";
import type { Engine } from "../core/engine.js";

export function engineBackend(engine: Engine, now: () => number): ControlApi {
  return new ControlApi(engine, now);
}
