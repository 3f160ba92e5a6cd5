// The --config file's VRRP part in the daemon (docs/ha.md): its instances (vrrp.ts) and its
// lvs_sync_daemon, at start and at each reload.
//
//   - an lvs_sync_daemon tied to an instance runs the role of that instance's state (MASTER:
//     master, any other state: backup); on no instance both roles run (keepalived's vrrp_scheduler)
//   - a reload applies the new VRRP part as keepalived's reload_vrrp_thread does: the instances
//     through VrrpRunner.reload (core/vrrp/reload.ts), then the sync daemon: a changed
//     lvs_sync_daemon stops the running daemons and starts the new ones (ipvs_syncd_changed),
//     an unchanged one is put back in the role its instance's state asks for
//   - the runner exists while there are instances: a reload may create it, or stop it when the
//     last instance goes

import type { Logger } from "pino";
import { SYNC_DEFAULTS, type SyncDaemonConfig, type SyncRole } from "../core/sync/types.js";
import type { HaConfig } from "../core/vrrp/config.js";
import { planVrrpReload } from "../core/vrrp/reload.js";
import type { HostFollower } from "./follow.js";
import type { WorkerPool } from "./pool.js";
import type { SyncDaemons } from "./sync.js";
import { VrrpRunner } from "./vrrp.js";

export interface HaDeps {
  log: Logger;
  pool: WorkerPool;
  host: HostFollower;
  sync: SyncDaemons;
  /**
   * After a reload changed the VRRP addresses: the nft guard takes the workers' new set (it holds
   * every VRRP address, in every state), as after a control batch.
   */
  refreshGuard: () => Promise<void>;
}

type SyncBase = Omit<SyncDaemonConfig, "role">;

function syncBase(ha: HaConfig): SyncBase | null {
  const sd = ha.lvsSyncDaemon;
  return sd === null
    ? null
    : {
        iface: sd.iface,
        syncid: sd.syncid,
        maxlen: sd.maxlen ?? SYNC_DEFAULTS.maxlen,
        group: sd.group ?? SYNC_DEFAULTS.group,
        port: sd.port ?? SYNC_DEFAULTS.port,
        ttl: sd.ttl ?? SYNC_DEFAULTS.ttl,
      };
}

export class HaDaemon {
  private runner: VrrpRunner | null = null;
  private ha: HaConfig | null = null;
  private base: SyncBase | null = null;

  constructor(private readonly deps: HaDeps) {}

  /** The instances, for status and metrics; null while there are none. */
  get vrrp(): VrrpRunner | null {
    return this.runner;
  }

  /** The file's instances and sync daemon at daemon start (throws when an interface cannot be used). */
  start(ha: HaConfig): void {
    if (ha.instances.length > 0) {
      const runner = this.newRunner(ha);
      runner.start();
      this.runner = runner;
    }
    this.ha = ha;
    this.startSync(ha);
  }

  /**
   * A reload's VRRP part. Throws (a TsvsError) only before anything changed: an instance's
   * interface is missing or its socket cannot be opened. What fails afterwards (a sync daemon that
   * does not start) is logged, as it is at start.
   */
  async reload(next: HaConfig): Promise<void> {
    const prev = this.ha;
    if (prev === null) return;
    const plan = planVrrpReload(prev, next);
    let runner = this.runner;
    if (runner === null && next.instances.length > 0) {
      runner = this.newRunner(next);
      runner.start();
      this.runner = runner;
    } else if (runner !== null) {
      runner.reload(next, plan);
      if (next.instances.length === 0) {
        runner.stop();
        this.runner = null;
      }
    }
    this.ha = next;
    if (plan.syncDaemon) {
      const sync = this.deps.sync;
      for (const role of ["master", "backup"] as const) if (sync.running(role)) sync.stop(role);
      this.startSync(next);
    } else if (this.base !== null && next.lvsSyncDaemon?.instance != null) this.follow(this.followedRole());
    // The guard holds every VRRP address: only a kept instance leaves them as they were.
    if (plan.instances.some((p) => p.action !== "keep"))
      await this.deps
        .refreshGuard()
        .catch((e) =>
          this.deps.log.error({ err: (e as Error).message }, "nft guard not updated after the VRRP reload"),
        );
  }

  /** Priority 0 from every MASTER (the backup takes over at once), sockets closed. */
  stop(): void {
    this.runner?.stop();
  }

  private newRunner(ha: HaConfig): VrrpRunner {
    const d = this.deps;
    return new VrrpRunner(ha, {
      log: d.log,
      links: () => d.host.host.links,
      own: (o) => d.pool.notify({ type: "vrrp", ...o }),
      syncRole: (role) => this.follow(role),
    });
  }

  /** The role the followed instance's state asks for (backup while it is missing or not MASTER). */
  private followedRole(): SyncRole {
    const name = this.ha?.lvsSyncDaemon?.instance ?? null;
    const state = name === null ? null : this.runner?.instances.find((i) => i.cfg.name === name)?.state;
    return state === "MASTER" ? "master" : "backup";
  }

  private follow(role: SyncRole): void {
    const base = this.base;
    if (base === null) return;
    this.deps.sync
      .follow(role, base)
      .catch((e) =>
        this.deps.log.error({ role, err: (e as Error).message }, "sync daemon did not follow VRRP"),
      );
  }

  private startSync(ha: HaConfig): void {
    this.base = syncBase(ha);
    const base = this.base;
    if (base === null) return;
    if ((ha.lvsSyncDaemon?.instance ?? null) !== null) {
      this.follow(this.followedRole());
      return;
    }
    for (const role of ["master", "backup"] as const)
      this.deps.sync
        .start({ ...base, role })
        .catch((e) =>
          this.deps.log.error({ role, err: (e as Error).message }, "cannot start the sync daemon"),
        );
  }
}
