// The public surface of tsvs as a library: the pure engine and its control types.
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
