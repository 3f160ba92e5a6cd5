// The connection sync daemons as the control plane sees them (`ipvsadm --start-daemon`, `-L
// --daemon`): a daemon's settings (core/sync/types.ts) with its counters, as plain data for the
// control socket's `daemons` and `status` answers. The kernel keeps one master and one backup per
// network namespace (ip_vs_genl_dump_daemons lists the master first); so does tsvs.

import type { SyncDaemonConfig, SyncRole } from "../core/sync/types.js";

export type { SyncDaemonConfig, SyncRole };

/** One running sync daemon: its settings and what it has done since it started. */
export interface SyncDaemonStatus extends SyncDaemonConfig {
  /** Sync messages sent (master) to group:port. */
  messagesSent: number;
  /** Sync messages received (backup), well-formed or not. */
  messagesReceived: number;
  /** Connections carried in the messages sent / received. */
  connsSent: number;
  connsReceived: number;
  /** Socket errors (send or receive). */
  errors: number;
  /** Messages dropped by reason (malformed, wrong syncid, …); only non-zero reasons. */
  drops: Record<string, number>;
}

/** Master before backup, as the kernel lists them (and ipvsadm's list_daemon prints them). */
export function daemonsInKernelOrder<T extends { role: SyncRole }>(list: readonly T[]): T[] {
  const rank = (r: SyncRole): number => (r === "master" ? 0 : 1);
  return [...list].sort((a, b) => rank(a.role) - rank(b.role));
}
