// vrrp_sync_group: instances that change state together (keepalived/vrrp/vrrp_sync.c, the TSM
// table in vrrp_scheduler.c, down_instance/try_up_instance in vrrp_track.c/vrrp_scheduler.c).
//
//   - a member going MASTER (its down timer ran out) takes the others to MASTER; it may only go
//     when the group is MASTER already or every other member wants MASTER too (its own master is
//     gone as well): "prefer backup state to avoid thrashing". A member held back stays BACKUP,
//     wanting MASTER, and re-arms its master-down timer
//   - a MASTER member going BACKUP (a higher-priority advert) takes the others to BACKUP, without
//     priority-0 adverts
//   - a member's own fault (a weight-0 tracker down) takes the others to FAULT (a MASTER among them
//     sends a priority-0 advert); the group leaves FAULT, all members to BACKUP, only when the
//     last member with a fault of its own recovers
//   - a MASTER member re-asserting itself against a lower priority makes the other MASTER members
//     send their garp_lower_prio_repeat GARPs too
//   - the group's own track_interface/track_script apply to every member as if each tracked them
//
// Wiring: construct the instances with the daemon's sink, then the group over them; the group sets
// itself as each member's `sync` hook. Optional group sink for the group's notify scripts.

import { TsvsError } from "../errors.js";
import type { VrrpStateName, VrrpSyncGroupConfig } from "./config.js";
import type { VrrpInstance, VrrpSyncHook } from "./instance.js";

export interface VrrpSyncGroupSink {
  /** The group's state changed (notify_master/backup/fault of the vrrp_sync_group, `notify … GROUP`). */
  transition(group: VrrpSyncGroup, from: VrrpStateName, to: VrrpStateName, reason: string): void;
}

export class VrrpSyncGroup implements VrrpSyncHook {
  state: VrrpStateName;
  transitions = 0;
  lastReason = "";
  /** Members down on their own account (keepalived num_member_fault). */
  private numMemberFault = 0;

  constructor(
    readonly cfg: VrrpSyncGroupConfig,
    readonly members: readonly VrrpInstance[],
    private readonly sink: VrrpSyncGroupSink | null = null,
  ) {
    for (const m of members) {
      if (m.sync !== null)
        throw new TsvsError(
          "TSVS_ERR_INVALID",
          `vrrp_sync_group ${cfg.name}: instance ${m.cfg.name} is already in a sync group`,
        );
    }
    // MASTER only when every member is an owner starting MASTER (vrrp_sync_set_group).
    const allOwners =
      members.length > 0 && members.every((m) => m.cfg.initialState === "MASTER" && m.cfg.priority === 255);
    this.state = allOwners ? "MASTER" : "BACKUP";
    for (const m of members) {
      m.sync = this;
      for (const t of cfg.trackInterfaces) m.addTracker(`group:interface:${t.name}`, t.weight, t.reverse);
      for (const t of cfg.trackScripts) m.addTracker(`group:script:${t.name}`, t.weight, t.reverse);
    }
  }

  /** A tracker of the group's own changed: every member applies it. */
  setTracked(kind: "interface" | "script", name: string, up: boolean, now: number): void {
    const list = kind === "interface" ? this.cfg.trackInterfaces : this.cfg.trackScripts;
    if (!list.some((t) => t.name === name)) return;
    for (const m of this.members) m.setTrackerState(`group:${kind}:${name}`, up, now);
  }

  groupState(): VrrpStateName {
    return this.state;
  }

  canGotoMaster(inst: VrrpInstance): boolean {
    if (this.state === "MASTER") return true;
    for (const m of this.members) if (m !== inst && m.wantState !== "MASTER") return false;
    return true;
  }

  changed(inst: VrrpInstance, from: VrrpStateName, now: number): void {
    if (inst.state === "MASTER") this.syncMaster(inst, now);
    else if (inst.state === "BACKUP" && (from === "MASTER" || from === "FAULT")) this.syncBackup(inst, now);
  }

  memberFault(inst: VrrpInstance, now: number): void {
    if (this.numMemberFault++ === 0) this.syncFault(inst, now);
  }

  memberRecovered(_inst: VrrpInstance, _now: number): boolean {
    if (this.numMemberFault > 0) this.numMemberFault--;
    return this.numMemberFault === 0;
  }

  lowerPrio(inst: VrrpInstance, now: number): void {
    for (const m of this.members) if (m !== inst) m.lowerPrioGarps(now);
  }

  /**
   * After a reload rebuilt the group over members that took their old states (vrrp_complete_init,
   * then vrrp_init_state): MASTER when every member is; FAULT when a member's fault made it so
   * already; otherwise BACKUP, and a member still MASTER goes BACKUP with it, without priority 0
   * (a group is never half MASTER; the election then runs as the protocol says).
   */
  resume(now: number): void {
    if (this.state === "FAULT" || this.numMemberFault > 0) return;
    if (this.members.length > 0 && this.members.every((m) => m.state === "MASTER")) {
      if (this.state !== "MASTER") this.setState("MASTER", "reload");
      return;
    }
    if (this.state !== "BACKUP") this.setState("BACKUP", "reload");
    const why = `sync group ${this.cfg.name}: not every member MASTER after the reload`;
    for (const m of this.members) if (m.state === "MASTER") m.forceState("BACKUP", why, now);
  }

  /** vrrp_sync_master. */
  private syncMaster(inst: VrrpInstance, now: number): void {
    if (this.state === "MASTER" || !this.canGotoMaster(inst)) return;
    const why = `sync group ${this.cfg.name}: ${inst.cfg.name} became MASTER`;
    for (const m of this.members) if (m !== inst && m.state !== "MASTER") m.forceState("MASTER", why, now);
    this.setState("MASTER", why);
  }

  /** vrrp_sync_backup. */
  private syncBackup(inst: VrrpInstance, now: number): void {
    if (this.state === "BACKUP") return;
    const why = `sync group ${this.cfg.name}: ${inst.cfg.name} went BACKUP`;
    for (const m of this.members) if (m !== inst && m.state !== "BACKUP") m.forceState("BACKUP", why, now);
    this.setState("BACKUP", why);
  }

  /** vrrp_sync_fault. */
  private syncFault(inst: VrrpInstance, now: number): void {
    if (this.state === "FAULT") return;
    const why = `sync group ${this.cfg.name}: ${inst.cfg.name} in FAULT`;
    for (const m of this.members) if (m !== inst && m.state !== "FAULT") m.forceState("FAULT", why, now);
    this.setState("FAULT", why);
  }

  private setState(to: VrrpStateName, reason: string): void {
    const from = this.state;
    this.state = to;
    this.transitions++;
    this.lastReason = reason;
    this.sink?.transition(this, from, to, reason);
  }
}
