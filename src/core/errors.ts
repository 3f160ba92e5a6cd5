// Stable error codes. The control plane throws TsvsError; the data path never throws,
// it counts drops by reason (see DropReason in stats.ts).

export type TsvsErrorCode =
  | "TSVS_ERR_SERVICE_EXISTS"
  | "TSVS_ERR_NO_SERVICE"
  | "TSVS_ERR_SERVICE_NOT_DEFINED"
  | "TSVS_ERR_DEST_EXISTS"
  | "TSVS_ERR_NO_DEST"
  | "TSVS_ERR_LADDR_EXISTS"
  | "TSVS_ERR_NO_LADDR"
  /** An ACL rule already on (add) or not on (del) the service's list (DPVS's EEXIST/ENOENT). */
  | "TSVS_ERR_ACL_EXISTS"
  | "TSVS_ERR_NO_ACL"
  | "TSVS_ERR_SCHED_NOT_FOUND"
  | "TSVS_ERR_PE_NOT_FOUND"
  | "TSVS_ERR_INVALID"
  | "TSVS_ERR_NOMEM"
  | "TSVS_ERR_PERM"
  | "TSVS_ERR_USAGE"
  | "TSVS_ERR_PARSE"
  | "TSVS_ERR_SCENARIO"
  | "TSVS_ERR_INTERNAL"
  /** Another daemon serves this namespace already. */
  | "TSVS_ERR_BUSY"
  /** The host's interfaces, addresses or routes could not be read or used (ip, sysctl, netns). */
  | "TSVS_ERR_HOST"
  /** nft refused the guard table. */
  | "TSVS_ERR_NFT"
  /** A program or package tsvs needs is missing and could not be installed. */
  | "TSVS_ERR_DEPENDENCY"
  /** The lab could not be built or run. */
  | "TSVS_ERR_LAB"
  /** Not Linux, or an architecture whose struct layouts tsvs does not know. */
  | "TSVS_ERR_PLATFORM"
  /** A connection sync daemon of that role runs already (the kernel's -EEXIST on IPVS_CMD_NEW_DAEMON). */
  | "TSVS_ERR_DAEMON_EXISTS"
  /** No connection sync daemon of that role runs (the kernel's -ESRCH on IPVS_CMD_DEL_DAEMON). */
  | "TSVS_ERR_NO_DAEMON"
  /** The sync daemon's --mcast-interface does not exist or cannot be used (the kernel's -ENODEV). */
  | "TSVS_ERR_NO_DEVICE";

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
  /** DPVS's libipvs (dpvs_add_laddr EEXIST, dpvs_del_laddr ENOENT), spelled as it spells them. */
  laddrExists: "Local address already exists",
  noLaddr: "No such Local address",
  /** DPVS's libipvs for dpvs_add_blklst/whtlst EEXIST and dpvs_del_blklst/whtlst ENOENT (both "deny", sic). */
  blklstExists: "blacklist address already exists",
  whtlstExists: "whitelist address already exists",
  noAclAddress: "No such deny address",
  schedNotFound: "Scheduler not found",
  schedOrPeNotFound: "Scheduler or persistence engine not found",
  nomem: "Memory allocation problem",
  invalid: "Invalid operation.  Possibly wrong module version, address not unicast, ...",
  perm: "Permission denied (you must be root)",
  /** ipvs_start_daemon's EEXIST. */
  daemonExists: "Daemon has already run",
  /** ipvs_stop_daemon's ESRCH. */
  noDaemon: "No daemon is running",
  /** ENODEV has no entry in ipvs_strerror's table: strerror(ENODEV). */
  noDevice: "No such device",
} as const;
