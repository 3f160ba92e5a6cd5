// The public surface of tsvs as a library: the pure engine, its control API and types.

export { ControlApi, type Guard } from "./control/api.js";
export { type ControlCommand, parseCommands } from "./control/commands.js";
export type { DestSnapshot, ServiceSnapshot, StatsSnapshot, TableSnapshot } from "./control/snapshot.js";
export { destSpec, serviceSpec } from "./control/spec.js";
export { formatIPv4, parseIPv4 } from "./core/addr.js";
export type {
  ConnView,
  CtlCommand,
  DestSpec,
  ServiceKey,
  ServiceSpec,
  TimeoutSpec,
} from "./core/ctl-types.js";
export { Dest, Fwd } from "./core/dest.js";
export { DEFAULT_SYSCTLS, Engine, type EngineOptions, type Sysctls, Verdict } from "./core/engine.js";
export { TsvsError } from "./core/errors.js";
export { Service } from "./core/service.js";
