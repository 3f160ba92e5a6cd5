// One vrrp_instance: keepalived's VRRP state machine (keepalived/vrrp/vrrp.c vrrp_state_backup,
// vrrp_state_master_rx/_tx, vrrp_state_goto_master, vrrp_state_leave_master/_fault;
// vrrp_scheduler.c vrrp_init_state, try_up_instance, the read/timeout dispatchers;
// vrrp_track.c down_instance, vrrp_set_effective_priority), after RFC 3768 / RFC 5798 §6.
//
// Pure: adverts, tracker changes and the clock (`now`, ms) come in; sends and transitions go out
// through a VrrpSink. The daemon calls tick(now) when nextDeadline() has passed.
//
// Timers, as keepalived computes them (vrrp.h VRRP_TIMER_SKEW, VRRP_MS_DOWN_TIMER):
//   skew        v2: (256 − p)/256 s; v3: (256 − p) × master_adver_int / 256,
//               p = 255 for an owner (base priority 255), else the effective priority
//   master_down down_timer_adverts × master_adver_int + skew (advert_int 1 s, priority 128 → 3.5 s)
// A BACKUP's one timer (`sands`) is the master-down deadline; a MASTER's is the next advert.
//
// Tie-breaks and quirks kept from keepalived:
//   - BACKUP accepts an advert when nopreempt, or its priority ≥ ours (equal counts as higher, as
//     the maintainer confirmed against the RFC, keepalived issue #1440), or preempt_delay is
//     running; it discards a lower one and the down timer runs on from the last accepted advert
//   - priority 0 to a BACKUP: down timer = skew only; to a MASTER: an advert at once, stays MASTER
//   - MASTER vs equal priority: the higher primary address wins (unsigned compare of the u32s;
//     over IPv6 of the 16 bytes, memcmp as inet_inaddrcmp does: link-local against link-local)
//   - MASTER vs lower priority: re-advertise ("forcing new election") unless lower_prio_no_advert,
//     plus garp_lower_prio_repeat rounds of GARP now and again after garp_lower_prio_delay
//   - leaving MASTER for FAULT or STOP sends a priority-0 advert; for BACKUP it does not
//   - two owners (255): the lower address backs off at once; the higher one counts two of its own
//     adverts, then waits 1.2 × max(both intervals) ("rogue timer"): an owner advert inside that
//     window drops it to 254 (restored when the other owner is gone)
//   - a change of effective priority while BACKUP moves the down deadline by the change of
//     master_down (vrrp_set_effective_priority), even right after a priority-0 advert
//
// GARP: the sink's garp() sends one round (one GARP per address); keepalived's "repeat N" is N
// calls in a row. On becoming MASTER: garp_master_repeat rounds at once, again after
// garp_master_delay, and garp_master_refresh_repeat rounds every garp_master_refresh after that.

import { formatIPv4, parseIPv6 } from "../addr.js";
import type { VrrpInstanceConfig, VrrpStateName } from "./config.js";
import type { VrrpAdvertIn } from "./packet.js";

export type { VrrpAdvertIn } from "./packet.js";

export interface VrrpSink {
  /** Send one advert now with this priority (0 = resigning). */
  advert(inst: VrrpInstance, priority: number): void;
  /** The state changed (inst.state is already `to`): own or release addresses, notify. */
  transition(inst: VrrpInstance, from: VrrpStateName, to: VrrpStateName, reason: string): void;
  /** Send one round of gratuitous ARPs for the instance's addresses (called N times for repeat N). */
  garp(inst: VrrpInstance): void;
}

/** How a vrrp_sync_group (group.ts) hooks into its members; set by the group on its members. */
export interface VrrpSyncHook {
  /** The group's state: members start as it says (an owner goes MASTER at start only if it is MASTER). */
  groupState(): VrrpStateName;
  /** keepalived vrrp_sync_can_goto_master: the group is MASTER, or every other member wants MASTER. */
  canGotoMaster(inst: VrrpInstance): boolean;
  /** A member changed state on its own (timer, advert, recovery); the group brings the others along. */
  changed(inst: VrrpInstance, from: VrrpStateName, now: number): void;
  /** A member's own fault began (a weight-0 tracker failed). */
  memberFault(inst: VrrpInstance, now: number): void;
  /** A member's own faults all cleared; false while another member is still down (stay FAULT). */
  memberRecovered(inst: VrrpInstance, now: number): boolean;
  /** A MASTER member re-asserted itself against a lower priority: the others send their lower-prio GARPs. */
  lowerPrio(inst: VrrpInstance, now: number): void;
}

export interface VrrpInstanceStats {
  advertsRx: number;
  advertsTx: number;
  priZeroRx: number;
  priZeroTx: number;
  becameMaster: number;
  releasedMaster: number;
  /** By reason: the packet checks' names (counted by the daemon) and "lower_prio" (a BACKUP discarding). */
  drops: Record<string, number>;
  /** v3 adverts whose interval differs from ours (keepalived only logs it). */
  v3IntervalMismatch: number;
  /** Adverts whose address list differs from ours (keepalived only logs it). */
  addrListErrors: number;
}

interface Tracker {
  weight: number;
  reverse: boolean;
  up: boolean;
}

const PRIO_OWNER = 255;

/** The weight a tracker adds in a state (keepalived: +w when up for w > 0, w when down for w < 0; reverse flips the sign). */
function contribution(t: Tracker, up: boolean): number {
  const m = t.reverse ? -1 : 1;
  if (t.weight > 0) return up ? t.weight * m : 0;
  return up ? 0 : t.weight * m;
}

export class VrrpInstance {
  /** Set by the daemon: our advert source, and the address compared on equal priority. */
  primaryAddr = 0;
  /** The same over IPv6 (family 6): the interface's link-local address or unicast_src_ip, formatIPv6's text. */
  primaryAddr6: string | null = null;
  state: VrrpStateName = "INIT";
  /** The state keepalived would want disregarding the sync group (wantstate). */
  wantState: VrrpStateName;
  effectivePriority: number;
  /** u32 of the current master (ours while MASTER); 0 unknown. */
  masterAddr = 0;
  /** IPv6: the current master's address (text); null unknown. */
  masterAddr6: string | null = null;
  masterPriority = 0;
  masterAdverIntMs: number;
  transitions = 0;
  lastReason = "";
  readonly stats: VrrpInstanceStats = {
    advertsRx: 0,
    advertsTx: 0,
    priZeroRx: 0,
    priZeroTx: 0,
    becameMaster: 0,
    releasedMaster: 0,
    drops: {},
    v3IntervalMismatch: 0,
    addrListErrors: 0,
  };
  /** The sync group, when the instance is in one (set by VrrpSyncGroup). */
  sync: VrrpSyncHook | null = null;

  /** base + tracker weights, before clamping to 1..254. */
  private totalPriority: number;
  private readonly trackers = new Map<string, Tracker>();
  /** Weight-0 trackers failing now (keepalived flags_if_fault / num_track_fault). */
  private ownFaults = 0;
  /** Duration of the master-down timer to arm next (ms_down_timer). */
  private msDownTimer = 0;
  /** BACKUP: master-down deadline; MASTER: next advert. */
  private sands = Number.POSITIVE_INFINITY;
  private garpAt = Number.POSITIVE_INFINITY;
  private garpRefreshAt = Number.POSITIVE_INFINITY;
  private garpLowerAt = Number.POSITIVE_INFINITY;
  /** preempt_delay deadline; null = not running. */
  private preemptUntil: number | null = null;
  /** Why the down timer will make us MASTER (keepalived's next_master_reason). */
  private nextMasterReason = "master down timer expired";
  private rogueCounter = 0;
  private rogueAdverIntMs = 0;
  private rogueUntil = Number.NEGATIVE_INFINITY;

  constructor(
    readonly cfg: VrrpInstanceConfig,
    private readonly sink: VrrpSink,
  ) {
    this.totalPriority = cfg.priority;
    this.effectivePriority = cfg.priority;
    this.masterAdverIntMs = cfg.advertIntMs;
    this.wantState = cfg.initialState === "MASTER" && cfg.priority === PRIO_OWNER ? "MASTER" : "BACKUP";
    for (const t of cfg.trackInterfaces) this.addTracker(`interface:${t.name}`, t.weight, t.reverse);
    for (const t of cfg.trackScripts) this.addTracker(`script:${t.name}`, t.weight, t.reverse);
    // keepalived tracks the instance's own interface (down = FAULT) unless track_interface weights it.
    if (!this.trackers.has(`interface:${cfg.iface}`)) this.addTracker(`interface:${cfg.iface}`, 0, false);
    this.msDownTimer = this.masterDownMs();
  }

  /** A weight-0 tracker of its own (or of its sync group) is failing: it is, or will start, in FAULT. */
  get faulty(): boolean {
    return this.ownFaults > 0;
  }

  get isOwner(): boolean {
    return this.cfg.priority === PRIO_OWNER;
  }

  /** Skew_Time, ms. */
  skewMs(): number {
    return this.skewFor(256 - (this.isOwner ? PRIO_OWNER : this.effectivePriority));
  }

  /** Master_Down_Interval, ms. */
  masterDownMs(): number {
    return this.cfg.downTimerAdverts * this.masterAdverIntMs + this.skewMs();
  }

  /**
   * Registers a tracker (assumed up) and its weight's share of the priority. The constructor adds
   * the instance's own; a sync group adds its trackers to each member under its own keys.
   */
  addTracker(key: string, weight: number, reverse: boolean): void {
    const t: Tracker = { weight, reverse, up: true };
    this.trackers.set(key, t);
    if (!this.isOwner) this.totalPriority += contribution(t, true);
    this.effectivePriority = this.clampedPriority();
  }

  /** INIT → BACKUP (MASTER at once for an owner with `state MASTER`), FAULT if a tracker is down. */
  start(now: number): void {
    if (this.state !== "INIT") return;
    const group = this.sync?.groupState() ?? this.wantState;
    if (this.ownFaults > 0) {
      // wantState stays: an owner wanting MASTER goes MASTER when the tracker recovers.
      this.enterFault(this.lastReason || "tracked object down at start");
      this.sync?.memberFault(this, now);
      return;
    }
    if (group === "FAULT") {
      this.enterFault("sync group in FAULT at start");
      return;
    }
    this.masterAdverIntMs = this.cfg.advertIntMs;
    if (this.isOwner && this.wantState === "MASTER" && group === "MASTER") {
      this.nextMasterReason = "address owner";
      this.gotoMaster("address owner (priority 255, state MASTER)", now, true);
      return;
    }
    // An owner held back by its sync group waits one interval for another master (vrrp_init_state).
    this.msDownTimer =
      this.wantState === "MASTER" ? this.masterAdverIntMs + this.skewFor(1) : this.masterDownMs();
    this.setState("BACKUP", "init");
    this.sands = now + this.msDownTimer;
  }

  /** An advert that passed checkAdvert. Ignored in INIT, FAULT and STOP, as keepalived does. */
  receive(adv: VrrpAdvertIn, now: number): void {
    if (this.state !== "BACKUP" && this.state !== "MASTER") return;
    const prev = this.state;
    this.stats.advertsRx++;
    if (adv.priority === 0) this.stats.priZeroRx++;
    if (adv.version === 3 && adv.advertIntMs !== this.cfg.advertIntMs) this.stats.v3IntervalMismatch++;
    if (!this.sameAddrs(adv)) this.stats.addrListErrors++;
    if (this.state === "BACKUP") this.backupRx(adv, now);
    else this.masterRx(adv, now);
    if (this.state !== prev) this.sync?.changed(this, prev, now);
  }

  /** Runs what is due: master-down takeover, the advert timer, delayed and refresh GARPs. */
  tick(now: number): void {
    const prev = this.state;
    if (this.state === "BACKUP" && this.sands <= now) {
      this.gotoMaster(this.nextMasterReason, now, false);
    } else if (this.state === "MASTER" && this.sands <= now) {
      this.masterTx(now);
    }
    if (this.state === "MASTER") {
      if (this.garpAt <= now) {
        this.garpAt = Number.POSITIVE_INFINITY;
        this.garps(this.cfg.garpMasterRepeat);
      }
      if (this.garpRefreshAt <= now) {
        this.garpRefreshAt = now + this.cfg.garpMasterRefreshMs;
        this.garps(this.cfg.garpMasterRefreshRepeat);
      }
      if (this.garpLowerAt <= now) {
        this.garpLowerAt = Number.POSITIVE_INFINITY;
        this.garps(this.cfg.garpLowerPrioRepeat);
      }
    }
    if (this.state !== prev) this.sync?.changed(this, prev, now);
  }

  /** Absolute ms of the next thing tick must do; Infinity if none. */
  nextDeadline(): number {
    if (this.state === "BACKUP") return this.sands;
    if (this.state === "MASTER")
      return Math.min(this.sands, this.garpAt, this.garpRefreshAt, this.garpLowerAt);
    return Number.POSITIVE_INFINITY;
  }

  /**
   * A tracked interface or vrrp_script changed. Weighted: the effective priority moves; weight 0:
   * FAULT while it is down (up, with `reverse`). Names the instance does not track are ignored;
   * the instance's own interface is tracked with weight 0 unless track_interface gives a weight.
   */
  setTracked(kind: "interface" | "script", name: string, up: boolean, now: number): void {
    this.setTrackerState(`${kind}:${name}`, up, now);
  }

  /** setTracked by key (`interface:NAME`, `script:NAME`, or a sync group's `group:…` keys). */
  setTrackerState(key: string, up: boolean, now: number): void {
    const t = this.trackers.get(key);
    if (t === undefined || t.up === up) return;
    const before = contribution(t, t.up);
    t.up = up;
    const what = `${key.replace(/^group:/, "sync group ").replace(":", " ")} ${up ? "up" : "down"}`;
    if (t.weight !== 0) {
      if (this.isOwner) return;
      this.totalPriority += contribution(t, up) - before;
      this.updateEffectivePriority();
      return;
    }
    if (up === t.reverse) this.downInstance(what, now);
    else this.tryUp(what, now);
  }

  /**
   * Takes over from `prev`, the instance a reload replaces (keepalived restore_vrrp_state, then
   * vrrp_init_state with reload_master): called instead of start(), once the trackers are told
   * what is down. The counters carry over; then
   *   - MASTER or BACKUP before and no fault of its own now: the same state, entered without a
   *     transition (no log, no notify: keepalived's begin state is the state). A MASTER advertises
   *     at once, with its new priority, so that a backup now above it preempts as the protocol
   *     says; it sends garp_master_repeat rounds of GARPs (and again after garp_master_delay) when
   *     it lists addresses it did not, or when it refreshes them periodically. A BACKUP arms a
   *     whole master-down time, as keepalived's new instance does
   *   - otherwise as at start (FAULT; or out of FAULT to BACKUP). A MASTER that is in FAULT now
   *     sends priority 0 first, as leaving MASTER for FAULT always does here (keepalived's init
   *     only drops the addresses); one that was in FAULT already enters it without a notify
   */
  resume(prev: VrrpInstance, addedAddrs: boolean, now: number): void {
    if (this.state !== "INIT") return;
    Object.assign(this.stats, prev.stats, { drops: { ...prev.stats.drops } });
    this.transitions = prev.transitions;
    const was = prev.state;
    if (this.ownFaults > 0 || (was !== "MASTER" && was !== "BACKUP")) {
      if (was === "MASTER") this.releaseByAdvert();
      if (was === "FAULT" && this.ownFaults > 0) {
        this.enterFault(this.lastReason || prev.lastReason, true);
        this.sync?.memberFault(this, now);
      } else this.start(now);
      return;
    }
    this.lastReason = prev.lastReason;
    this.wantState = was;
    this.state = was;
    this.masterAdverIntMs = this.cfg.advertIntMs;
    this.msDownTimer = this.masterDownMs();
    if (was === "BACKUP") {
      this.masterAddr = prev.masterAddr;
      this.masterAddr6 = prev.masterAddr6;
      this.masterPriority = prev.masterPriority;
      this.sands = now + this.msDownTimer;
      return;
    }
    this.masterAddr = this.primaryAddr;
    this.masterAddr6 = this.primaryAddr6;
    this.masterPriority = this.effectivePriority;
    this.masterTx(now);
    const delay = this.cfg.garpMasterDelayMs;
    const refresh = this.cfg.garpMasterRefreshMs;
    if (addedAddrs || refresh > 0) this.garps(this.cfg.garpMasterRepeat);
    if (addedAddrs && delay > 0) this.garpAt = now + delay;
    if (refresh > 0) this.garpRefreshAt = now + (addedAddrs ? delay : 0) + refresh;
  }

  /**
   * Gone from the configuration at a reload (keepalived clear_diff_vrrp): a MASTER sends priority
   * 0, so that the backup takes over after its skew time, and the instance runs no more. No
   * transition: the daemon tells what keepalived tells of a deleted instance. Returns the state
   * it was in.
   */
  remove(_now: number): VrrpStateName {
    const was = this.state;
    this.halt();
    this.state = "STOP";
    return was;
  }

  /** Leaves MASTER with a priority-0 advert (the backup takes over after its skew) and stops. */
  stop(_now: number): void {
    if (this.state === "STOP") return;
    this.halt();
    this.setState("STOP", "stop");
  }

  /** What stopping and removal share: a MASTER's priority-0 advert, then no timer and no master. */
  private halt(): void {
    if (this.state === "MASTER") this.releaseByAdvert();
    this.cancelTimers();
    this.sands = Number.POSITIVE_INFINITY;
    this.clearMaster();
  }

  /** A MASTER lets go: priority 0, so that the backup takes over after its skew time. */
  private releaseByAdvert(): void {
    this.sendAdvert(0);
    this.stats.releasedMaster++;
  }

  /**
   * Moves the instance as its sync group says (keepalived vrrp_sync_master/_backup/_fault). Does
   * not call back into the group. An instance with a fault of its own stays in FAULT.
   */
  forceState(to: "BACKUP" | "FAULT" | "MASTER", reason: string, now: number): void {
    if (this.state === "STOP") return;
    if (to === "MASTER") {
      if (this.state === "MASTER" || this.ownFaults > 0) return;
      this.gotoMaster(reason, now, true);
    } else if (to === "BACKUP") {
      this.wantState = "BACKUP";
      if (this.ownFaults > 0 || this.state === "BACKUP") return;
      if (this.state === "MASTER") this.leaveMaster("BACKUP", reason, now);
      else this.enterBackup(reason, now);
    } else {
      this.wantState = "FAULT";
      if (this.state === "FAULT") return;
      if (this.state === "MASTER") this.leaveMaster("FAULT", reason, now);
      else this.enterFault(reason);
    }
  }

  // --- receive --------------------------------------------------------------------------------

  /** vrrp_state_backup. */
  private backupRx(adv: VrrpAdvertIn, now: number): void {
    const masterChange = !this.fromMaster(adv);
    // Another owner made us step down to 254; it is gone once adverts come from elsewhere or lower.
    if (
      this.isOwner &&
      this.effectivePriority === PRIO_OWNER - 1 &&
      (masterChange || adv.priority !== PRIO_OWNER)
    ) {
      this.effectivePriority = PRIO_OWNER;
    }
    if (adv.priority === 0) {
      this.msDownTimer = this.skewMs();
      this.nextMasterReason = `priority 0 advert from ${srcText(adv)}`;
      this.sands = now + this.msDownTimer;
      return;
    }
    const delayRunning =
      this.cfg.preemptDelayMs > 0 && (this.preemptUntil === null || this.preemptUntil > now);
    if (this.cfg.nopreempt || adv.priority >= this.effectivePriority || delayRunning) {
      if (adv.version === 3) this.masterAdverIntMs = adv.advertIntMs;
      this.msDownTimer = this.masterDownMs();
      this.setMaster(adv);
      this.masterPriority = adv.priority;
      this.nextMasterReason = "master down timer expired";
      if (this.cfg.preemptDelayMs > 0) {
        if (adv.priority >= this.effectivePriority) this.preemptUntil = null;
        else if (this.preemptUntil === null) this.preemptUntil = now + this.cfg.preemptDelayMs;
      }
      this.wantState = "BACKUP";
      this.sands = now + this.msDownTimer;
      return;
    }
    // "received lower priority (%d) advert from %s - discarding": the down timer runs on.
    this.stats.drops.lower_prio = (this.stats.drops.lower_prio ?? 0) + 1;
    this.setMaster(adv);
    this.nextMasterReason = `preempting lower priority ${adv.priority} master ${srcText(adv)}`;
  }

  /** vrrp_state_master_rx, then the dispatcher's timer reset. */
  private masterRx(adv: VrrpAdvertIn, now: number): void {
    const eff = this.effectivePriority;
    const addrCmp = this.compareToOurs(adv);
    const higher = adv.priority > eff || (adv.priority === eff && addrCmp > 0);
    if (adv.priority === 0 || (this.cfg.higherPrioSendAdvert && higher)) {
      this.sendAdvert(eff);
      if (adv.priority === 0) {
        this.resetAdvertTimer(now);
        return;
      }
    }
    if (adv.priority === eff && eff === PRIO_OWNER && addrCmp < 0) {
      // Both of us claim to own the addresses and ours is the higher address.
      if (this.rogueUntil > now) {
        this.effectivePriority = PRIO_OWNER - 1;
        this.totalPriority = PRIO_OWNER - 1;
      } else {
        this.rogueAdverIntMs = adv.advertIntMs;
        if (this.rogueCounter === 0) this.rogueCounter = 2;
      }
    }
    const e = this.effectivePriority;
    if (adv.priority < e || (adv.priority === e && addrCmp < 0)) {
      // "Received advert from %s with lower priority %d, ours %d, forcing new election"
      if (!this.cfg.lowerPrioNoAdvert) this.sendAdvert(e);
      this.lowerPrioGarps(now);
      this.sync?.lowerPrio(this, now);
      this.resetAdvertTimer(now);
      return;
    }
    if (adv.priority > e || (adv.priority === e && addrCmp > 0)) {
      if (adv.version === 3) this.masterAdverIntMs = adv.advertIntMs;
      this.setMaster(adv);
      this.masterPriority = adv.priority;
      this.wantState = "BACKUP";
      const why =
        adv.priority > e
          ? `higher priority ${adv.priority} advert from ${srcText(adv)}`
          : `equal priority ${adv.priority} advert from higher address ${srcText(adv)}`;
      this.leaveMaster("BACKUP", why, now);
      return;
    }
    // Equal priority from our own primary address: keepalived warns and carries on.
    this.resetAdvertTimer(now);
  }

  /** keepalived re-arms a MASTER's advert timer after any advert it received, unless lower_prio_no_advert. */
  private resetAdvertTimer(now: number): void {
    if (!this.cfg.lowerPrioNoAdvert) this.sands = now + this.cfg.advertIntMs;
  }

  /** garp_lower_prio_repeat rounds now, again after garp_lower_prio_delay. Also called by the sync group. */
  lowerPrioGarps(now: number): void {
    if (this.state !== "MASTER" || this.cfg.garpLowerPrioRepeat <= 0) return;
    this.garps(this.cfg.garpLowerPrioRepeat);
    if (this.cfg.garpLowerPrioDelayMs > 0) this.garpLowerAt = now + this.cfg.garpLowerPrioDelayMs;
  }

  // --- transitions ------------------------------------------------------------------------------

  /** vrrp_state_goto_master + vrrp_state_master_tx + vrrp_state_become_master. */
  private gotoMaster(reason: string, now: number, force: boolean): void {
    if (!force && this.sync !== null && !this.sync.canGotoMaster(this)) {
      // Held in BACKUP by the group until every member wants MASTER; try again after master_down.
      this.wantState = "MASTER";
      this.msDownTimer = this.masterDownMs();
      this.sands = now + this.msDownTimer;
      return;
    }
    this.wantState = "MASTER";
    // The other owner is gone: back to 255.
    if (this.isOwner) this.effectivePriority = PRIO_OWNER;
    // The interval we advertise is ours again (keepalived resets it only when logging details).
    this.masterAdverIntMs = this.cfg.advertIntMs;
    this.preemptUntil = null;
    // The old master must drop the addresses before our GARPs: the advert goes first.
    this.sendAdvert(this.effectivePriority);
    this.masterAddr = this.primaryAddr;
    this.masterAddr6 = this.primaryAddr6;
    this.masterPriority = this.effectivePriority;
    this.stats.becameMaster++;
    this.setState("MASTER", reason);
    this.sands = now + this.cfg.advertIntMs;
    this.garps(this.cfg.garpMasterRepeat);
    const delay = this.cfg.garpMasterDelayMs;
    this.garpAt = delay > 0 ? now + delay : Number.POSITIVE_INFINITY;
    this.garpRefreshAt =
      this.cfg.garpMasterRefreshMs > 0
        ? now + delay + this.cfg.garpMasterRefreshMs
        : Number.POSITIVE_INFINITY;
    this.garpLowerAt = Number.POSITIVE_INFINITY;
  }

  /** A periodic advert (vrrp_state_master_tx), with the two-owner count-down. */
  private masterTx(now: number): void {
    this.sendAdvert(this.effectivePriority);
    this.sands = now + this.cfg.advertIntMs;
    if (this.isOwner && this.rogueCounter > 0 && --this.rogueCounter === 0) {
      this.rogueUntil = now + 1.2 * Math.max(this.rogueAdverIntMs, this.cfg.advertIntMs);
    }
  }

  /** vrrp_state_leave_master: to BACKUP (no advert) or FAULT (a priority-0 advert). */
  private leaveMaster(to: "BACKUP" | "FAULT", reason: string, now: number): void {
    if (to === "FAULT") this.sendAdvert(0);
    this.cancelTimers();
    if (this.rogueUntil > now) this.rogueUntil = Number.NEGATIVE_INFINITY;
    else this.rogueCounter = 0;
    this.stats.releasedMaster++;
    if (to === "BACKUP") {
      this.preemptUntil = null;
      if (this.masterAddr === this.primaryAddr && this.masterAddr6 === this.primaryAddr6) this.clearMaster();
      this.msDownTimer = this.masterDownMs();
      this.setState("BACKUP", reason);
      this.sands = now + this.msDownTimer;
    } else {
      this.clearMaster();
      this.msDownTimer = this.masterDownMs();
      this.setState("FAULT", reason);
      this.sands = Number.POSITIVE_INFINITY;
    }
  }

  /** FAULT/INIT → BACKUP (vrrp_state_leave_fault with wantstate BACKUP). */
  private enterBackup(reason: string, now: number): void {
    this.preemptUntil = null;
    this.clearMaster();
    this.masterAdverIntMs = this.cfg.advertIntMs;
    this.msDownTimer = this.masterDownMs();
    this.nextMasterReason = "master down timer expired";
    this.setState("BACKUP", reason);
    this.sands = now + this.msDownTimer;
  }

  /** BACKUP/INIT → FAULT; `quiet`: a reload found it in FAULT already (no transition). */
  private enterFault(reason: string, quiet = false): void {
    this.clearMaster();
    this.masterAdverIntMs = this.cfg.advertIntMs;
    this.msDownTimer = this.masterDownMs();
    this.sands = Number.POSITIVE_INFINITY;
    if (!quiet) this.setState("FAULT", reason);
    else {
      this.state = "FAULT";
      this.lastReason = reason;
    }
  }

  /** down_instance: the first own fault takes the instance (and its sync group) to FAULT. */
  private downInstance(reason: string, now: number): void {
    const already = this.ownFaults > 0;
    this.ownFaults++;
    if (this.state === "INIT") {
      // Down before start: start() enters FAULT (keepalived's initialise_tracking_priorities).
      if (!already) this.lastReason = reason;
      return;
    }
    this.wantState = "FAULT";
    if (already || this.state === "STOP") return;
    if (this.state === "MASTER") this.leaveMaster("FAULT", reason, now);
    else if (this.state !== "FAULT") this.enterFault(reason);
    this.sync?.memberFault(this, now);
  }

  /**
   * try_up_instance: the last own fault cleared; BACKUP again (unless the group still has a member
   * down). Only an owner that was down since before start still wants MASTER, and goes at once.
   */
  private tryUp(reason: string, now: number): void {
    if (this.ownFaults > 0) this.ownFaults--;
    if (this.ownFaults > 0) return;
    const wantMaster = this.wantState === "MASTER" && this.isOwner;
    this.wantState = wantMaster ? "MASTER" : "BACKUP";
    if (this.state !== "FAULT") return;
    if (this.sync !== null && !this.sync.memberRecovered(this, now)) return;
    if (wantMaster && (this.sync === null || this.sync.canGotoMaster(this)))
      this.gotoMaster(reason, now, true);
    else this.enterBackup(reason, now);
    this.sync?.changed(this, "FAULT", now);
  }

  private setState(to: VrrpStateName, reason: string): void {
    const from = this.state;
    this.state = to;
    this.transitions++;
    this.lastReason = reason;
    this.sink.transition(this, from, to, reason);
  }

  // --- helpers ----------------------------------------------------------------------------------

  private sendAdvert(priority: number): void {
    this.stats.advertsTx++;
    if (priority === 0) this.stats.priZeroTx++;
    this.sink.advert(this, priority);
  }

  private garps(rounds: number): void {
    if (this.cfg.addrs.length === 0 && this.cfg.excludedAddrs.length === 0) return;
    for (let i = 0; i < rounds; i++) this.sink.garp(this);
  }

  private cancelTimers(): void {
    this.garpAt = Number.POSITIVE_INFINITY;
    this.garpRefreshAt = Number.POSITIVE_INFINITY;
    this.garpLowerAt = Number.POSITIVE_INFINITY;
  }

  /** VRRP_TIMER_SKEW_CALC for a priority value p (256 − priority). */
  private skewFor(p: number): number {
    return this.cfg.version === 3 ? (p * this.masterAdverIntMs) / 256 : (p * 1000) / 256;
  }

  private clampedPriority(): number {
    if (this.isOwner) return PRIO_OWNER;
    const t = this.totalPriority;
    return t < 1 ? 1 : t >= PRIO_OWNER ? PRIO_OWNER - 1 : t;
  }

  /** vrrp_set_effective_priority: a BACKUP's down deadline moves with master_down. */
  private updateEffectivePriority(): void {
    const p = this.clampedPriority();
    if (p === this.effectivePriority) return;
    this.effectivePriority = p;
    const old = this.msDownTimer;
    this.msDownTimer = this.masterDownMs();
    if (this.state === "BACKUP") this.sands += this.msDownTimer - old;
  }

  private sameAddrs(adv: VrrpAdvertIn): boolean {
    const mine = this.cfg.addrs;
    if (this.cfg.family === 6) {
      const theirs = adv.addrs6 ?? [];
      if (theirs.length !== mine.length) return false;
      for (const a of mine) if (a.addr6 === undefined || !theirs.includes(a.addr6)) return false;
      return true;
    }
    const addrs = adv.addrs;
    if (addrs.length !== mine.length) return false;
    for (const a of mine) if (!addrs.includes(a.addr >>> 0)) return false;
    return true;
  }

  /** The master's address as text (status, logs); null unknown. */
  masterText(): string | null {
    if (this.cfg.family === 6) return this.masterAddr6;
    return this.masterAddr === 0 ? null : formatIPv4(this.masterAddr);
  }

  private setMaster(adv: VrrpAdvertIn): void {
    this.masterAddr = adv.srcIp;
    this.masterAddr6 = adv.src6 ?? null;
  }

  private clearMaster(): void {
    this.masterAddr = 0;
    this.masterAddr6 = null;
  }

  /** Is the advert from the master we know? */
  private fromMaster(adv: VrrpAdvertIn): boolean {
    return this.cfg.family === 6 ? (adv.src6 ?? null) === this.masterAddr6 : adv.srcIp === this.masterAddr;
  }

  /** vrrp_saddr_cmp: the sender's address against ours, unsigned (1: theirs is higher). */
  private compareToOurs(adv: VrrpAdvertIn): number {
    if (this.cfg.family === 6) {
      const theirs = parseIPv6(adv.src6 ?? "::") ?? new Uint8Array(16);
      const ours = parseIPv6(this.primaryAddr6 ?? "::") ?? new Uint8Array(16);
      for (let i = 0; i < 16; i++) if (theirs[i] !== ours[i]) return theirs[i] > ours[i] ? 1 : -1;
      return 0;
    }
    const src = adv.srcIp >>> 0;
    const ours = this.primaryAddr >>> 0;
    return src > ours ? 1 : src < ours ? -1 : 0;
  }
}

/** The sender of an advert, for reasons and logs. */
function srcText(adv: VrrpAdvertIn): string {
  return adv.src6 ?? formatIPv4(adv.srcIp);
}
