// The ipvsadm command set over an in-process engine: what `tsvs sim` uses, and what the
// daemon's control socket serves.

import type { IpvsadmBackend } from "../cli/ipvsadm/run.js";
import type { Engine } from "../core/engine.js";

export function engineBackend(engine: Engine, now: () => number): IpvsadmBackend {
  return {
    apply: (cmd) => engine.apply(cmd),
    applyAll: (cmds) => engine.applyAll(cmds),
    snapshot: (withConns) => ({
      services: engine.services(),
      connTabSize: engine.connTabSize,
      timeouts: engine.timeouts.get(),
      conns: withConns ? engine.connections(now()) : undefined,
    }),
  };
}
