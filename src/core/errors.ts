// Stable error codes. The control plane throws TsvsError; the data path never throws,
// it counts drops by reason (see DropReason in stats.ts).

export type TsvsErrorCode =
  | "TSVS_ERR_SERVICE_EXISTS"
  | "TSVS_ERR_NO_SERVICE"
  | "TSVS_ERR_SERVICE_NOT_DEFINED"
  | "TSVS_ERR_DEST_EXISTS"
  | "TSVS_ERR_NO_DEST"
  | "TSVS_ERR_SCHED_NOT_FOUND"
  | "TSVS_ERR_PE_NOT_FOUND"
  | "TSVS_ERR_INVALID"
  | "TSVS_ERR_NOMEM"
  | "TSVS_ERR_PERM"
  | "TSVS_ERR_USAGE"
  | "TSVS_ERR_PARSE"
  | "TSVS_ERR_SCENARIO"
  | "TSVS_ERR_INTERNAL";

export class TsvsError extends Error {
  readonly code: TsvsErrorCode;
  constructor(code: TsvsErrorCode, message: string) {
    super(message);
    this.name = "TsvsError";
    this.code = code;
  }
}

/** libipvs's messages (ipvs_strerror), which ipvsadm prints verbatim. */
export const IPVS_MESSAGES = {
  serviceExists: "Service already exists",
  noService: "No such service",
  serviceNotDefined: "Service not defined",
  destExists: "Destination already exists",
  noDest: "No such destination",
  schedNotFound: "Scheduler not found",
  schedOrPeNotFound: "Scheduler or persistence engine not found",
  nomem: "Memory allocation problem",
  invalid: "Invalid operation.  Possibly wrong module version, address not unicast, ...",
  perm: "Permission denied (you must be root)",
} as const;
