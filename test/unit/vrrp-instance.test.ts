// The VRRP state machine against a fake clock: each test is a script of (time, event) steps and
// the sink calls expected at each, worked out by hand from keepalived's timers (vrrp.h:
// skew v2 = (256 − p)/256 s, v3 = (256 − p) × master_adver_int/256; master_down =
// 3 × master_adver_int + skew) and its vrrp_state_backup / vrrp_state_master_rx rules.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type VrrpInstanceConfig, vrrpInstanceDefaults } from "../../src/core/vrrp/config.js";
import { VrrpSyncGroup } from "../../src/core/vrrp/group.js";
import { type VrrpAdvertIn, VrrpInstance } from "../../src/core/vrrp/instance.js";
import { ip } from "../support/packet-builder.js";
import { VrrpClock } from "../support/vrrp-clock.js";

const ME = ip("10.0.0.2");
const LOWER = ip("10.0.0.1");
const HIGHER = ip("10.0.0.3");
const VIP = ip("10.0.0.100");

/** One or more instances on a shared fake clock; every sink call is logged as "t name event". */
class Bench extends VrrpClock {
  readonly insts: VrrpInstance[] = [];

  add(o: Partial<VrrpInstanceConfig> = {}): VrrpInstance {
    const cfg = vrrpInstanceDefaults({
      name: o.name ?? "A",
      iface: "eth0",
      vrid: 1,
      addrs: [{ addr: VIP, prefix: 24 }],
      garpMasterRepeat: 1,
      garpLowerPrioRepeat: 0,
      ...o,
    });
    const inst = new VrrpInstance(cfg, this.sink);
    inst.primaryAddr = ME;
    this.insts.push(inst);
    return inst;
  }

  start(): this {
    for (const i of this.insts) i.start(this.now);
    return this;
  }

  /** Runs every deadline up to and including t, then sets the clock to t. */
  until(t: number): this {
    for (let guard = 0; guard < 10_000; guard++) {
      let next = Number.POSITIVE_INFINITY;
      let who: VrrpInstance | null = null;
      for (const i of this.insts) {
        const d = i.nextDeadline();
        if (d < next) {
          next = d;
          who = i;
        }
      }
      if (who === null || next > t) {
        this.now = t;
        return this;
      }
      this.now = next;
      who.tick(next);
    }
    throw new Error("the deadlines never passed t");
  }

  rx(inst: VrrpInstance, a: Partial<VrrpAdvertIn>): this {
    this.receive(inst, HIGHER, a);
    return this;
  }
}

describe("BACKUP → MASTER timing", () => {
  it("takes over after 3 × advert_int + skew: advert_int 1, priority 128 → 3.5 s (the man page's example)", () => {
    const b = new Bench();
    const a = b.add({ priority: 128 });
    b.start();
    assert.deepEqual(b.take(), ["0 A INIT->BACKUP"]);
    assert.equal(a.nextDeadline(), 3500);
    b.until(3499);
    assert.deepEqual(b.take(), []);
    b.until(3500);
    // The advert goes first (the old master must drop the addresses before our GARPs).
    assert.deepEqual(b.take(), ["3500 A advert 128", "3500 A BACKUP->MASTER", "3500 A garp"]);
    assert.equal(a.masterAddr, ME);
    // Adverts every advert_int; the delayed GARP garp_master_delay (5 s) later.
    b.until(8500);
    assert.deepEqual(b.take(), [
      "4500 A advert 128",
      "5500 A advert 128",
      "6500 A advert 128",
      "7500 A advert 128",
      "8500 A advert 128",
      "8500 A garp",
    ]);
    assert.equal(a.stats.becameMaster, 1);
    assert.equal(a.stats.advertsTx, 6);
  });

  it("each accepted advert restarts master_down; silence after the last one takes over", () => {
    const b = new Bench();
    const a = b.add({ priority: 128 });
    b.start().take();
    for (let t = 1000; t <= 5000; t += 1000) b.until(t).rx(a, { priority: 150 });
    assert.equal(a.state, "BACKUP");
    assert.equal(a.masterAddr, HIGHER);
    b.until(8499);
    assert.deepEqual(b.take(), []);
    b.until(8500);
    assert.deepEqual(b.take(), ["8500 A advert 128", "8500 A BACKUP->MASTER", "8500 A garp"]);
  });

  it("priority 0 from the master: down timer = skew only ((256 − 100)/256 s = 609.375 ms)", () => {
    const b = new Bench();
    const a = b.add({ priority: 100 });
    b.start().take();
    b.until(1000).rx(a, { priority: 150 });
    b.until(1500).rx(a, { priority: 0 });
    assert.equal(a.nextDeadline(), 1500 + 609.375);
    assert.equal(a.stats.priZeroRx, 1);
    b.until(2109.375);
    assert.deepEqual(b.take(), ["2109.375 A advert 100", "2109.375 A BACKUP->MASTER", "2109.375 A garp"]);
  });

  it("an equal priority advert is accepted by a BACKUP (equal counts as higher)", () => {
    const b = new Bench();
    const a = b.add({ priority: 100 });
    b.start().take();
    b.until(3000).rx(a, { priority: 100, srcIp: LOWER });
    assert.equal(a.nextDeadline(), 3000 + 3609.375);
    assert.equal(a.stats.drops.lower_prio, undefined);
  });

  it("a lower priority advert is discarded and counted; the down timer runs on", () => {
    const b = new Bench();
    const a = b.add({ priority: 200 });
    b.start().take();
    // master_down = 3000 + 56/256 s = 3218.75
    for (const t of [500, 1500, 2500]) b.until(t).rx(a, { priority: 100 });
    assert.equal(a.stats.drops.lower_prio, 3);
    b.until(3218.75);
    assert.deepEqual(b.take(), ["3218.75 A advert 200", "3218.75 A BACKUP->MASTER", "3218.75 A garp"]);
  });

  it("nopreempt: a higher priority BACKUP accepts a lower master's adverts and stays BACKUP", () => {
    const b = new Bench();
    const a = b.add({ priority: 200, nopreempt: true });
    b.start().take();
    for (let t = 500; t <= 20500; t += 1000) b.until(t).rx(a, { priority: 100 });
    b.until(21000);
    assert.equal(a.state, "BACKUP");
    assert.deepEqual(b.take(), []);
  });

  it("preempt_delay: lower adverts are accepted until the delay ends, then master_down after the last one", () => {
    const b = new Bench();
    const a = b.add({ priority: 200, preemptDelayMs: 5000 });
    b.start().take();
    // The first lower advert (500) starts the delay, to 5500; 500..4500 accepted, 5500 on discarded.
    for (const t of [500, 1500, 2500, 3500, 4500, 5500, 6500, 7500]) b.until(t).rx(a, { priority: 100 });
    assert.equal(a.stats.drops.lower_prio, 3);
    // 4500 + 3218.75
    b.until(7718.75);
    assert.deepEqual(b.take(), ["7718.75 A advert 200", "7718.75 A BACKUP->MASTER", "7718.75 A garp"]);
  });

  it("preempt_delay stops when a higher priority advert comes", () => {
    const b = new Bench();
    const a = b.add({ priority: 200, preemptDelayMs: 2000 });
    b.start().take();
    b.until(500).rx(a, { priority: 100 }); // delay to 2500
    b.until(1000).rx(a, { priority: 250 }); // stopped
    b.until(1500).rx(a, { priority: 100 }); // starts again: to 3500
    b.until(3000).rx(a, { priority: 100 }); // still accepted
    assert.equal(a.stats.drops.lower_prio, undefined);
    b.until(3500).rx(a, { priority: 100 }); // discarded
    assert.equal(a.stats.drops.lower_prio, 1);
    b.until(6218.75);
    assert.equal(a.state, "MASTER");
  });

  it("v3: the backup adopts the master's interval (500 ms → 1500 + 156 × 500/256 = 1804.6875)", () => {
    const b = new Bench();
    const a = b.add({ version: 3, priority: 100, advertIntMs: 1000 });
    b.start().take();
    assert.equal(a.nextDeadline(), 3000 + (156 * 1000) / 256);
    b.rx(a, { priority: 150, advertIntMs: 500 });
    assert.equal(a.masterAdverIntMs, 500);
    assert.equal(a.stats.v3IntervalMismatch, 1);
    b.until(1804.6875);
    assert.deepEqual(b.take(), ["1804.6875 A advert 100", "1804.6875 A BACKUP->MASTER", "1804.6875 A garp"]);
    // As MASTER it advertises at its own interval.
    assert.equal(a.masterAdverIntMs, 1000);
    assert.equal(a.nextDeadline(), 2804.6875);
  });
});

describe("address owner (priority 255)", () => {
  it("state MASTER + priority 255: MASTER at start, advert then GARPs", () => {
    const b = new Bench();
    const a = b.add({ initialState: "MASTER", priority: 255 });
    b.start();
    assert.deepEqual(b.take(), ["0 A advert 255", "0 A INIT->MASTER", "0 A garp"]);
    b.until(1000);
    assert.deepEqual(b.take(), ["1000 A advert 255"]);
    assert.equal(a.state, "MASTER");
  });

  it("state MASTER below 255 still starts BACKUP and waits master_down", () => {
    const b = new Bench();
    const a = b.add({ initialState: "MASTER", priority: 200 });
    b.start();
    assert.deepEqual(b.take(), ["0 A INIT->BACKUP"]);
    assert.equal(a.nextDeadline(), 3218.75);
  });

  it("priority 255 with state BACKUP: skew uses 255 → 3000 + 1000/256", () => {
    const b = new Bench();
    const a = b.add({ priority: 255 });
    b.start().take();
    assert.equal(a.nextDeadline(), 3000 + 1000 / 256);
  });

  it("trackers do not change an owner's priority", () => {
    const b = new Bench();
    const a = b.add({
      initialState: "MASTER",
      priority: 255,
      trackScripts: [{ name: "chk", weight: -50, reverse: false }],
    });
    b.start().take();
    a.setTracked("script", "chk", false, 10);
    assert.equal(a.effectivePriority, 255);
  });

  it("two owners: the lower address backs off at once", () => {
    const b = new Bench();
    const a = b.add({ initialState: "MASTER", priority: 255 });
    b.start().take();
    b.until(100).rx(a, { priority: 255, srcIp: HIGHER });
    assert.deepEqual(b.take(), ["100 A MASTER->BACKUP"]);
  });

  it("two owners: the higher address counts two adverts, then drops to 254 if the other still claims", () => {
    const b = new Bench();
    const a = b.add({ initialState: "MASTER", priority: 255 });
    b.start().take();
    b.until(100).rx(a, { priority: 255, srcIp: LOWER });
    assert.deepEqual(b.take(), ["100 A advert 255"], "treated as lower: re-advertise");
    // Adverts at 1100 and 2100; the rogue window then runs to 2100 + 1.2 × 1000.
    b.until(2500).rx(a, { priority: 255, srcIp: LOWER });
    assert.deepEqual(b.take(), ["1100 A advert 255", "2100 A advert 255", "2500 A MASTER->BACKUP"]);
    assert.equal(a.effectivePriority, 254);
    // The other owner goes quiet: back to MASTER at 255.
    b.until(2500 + 3000 + (2 * 1000) / 256);
    assert.equal(a.state, "MASTER");
    assert.equal(a.effectivePriority, 255);
  });
});

describe("MASTER receiving adverts", () => {
  function master(o: Partial<VrrpInstanceConfig> = {}): { b: Bench; a: VrrpInstance } {
    const b = new Bench();
    const a = b.add({ priority: 100, ...o });
    b.start().until(3609.375).take();
    b.until(4000);
    assert.equal(a.state, "MASTER");
    b.take();
    return { b, a };
  }

  it("priority 0: an advert at once, stays MASTER, the advert timer restarts", () => {
    const { b, a } = master();
    b.rx(a, { priority: 0, srcIp: LOWER });
    assert.deepEqual(b.take(), ["4000 A advert 100"]);
    assert.equal(a.state, "MASTER");
    assert.equal(a.nextDeadline(), 5000);
  });

  it("higher priority: BACKUP without an advert; master_down from then", () => {
    const { b, a } = master();
    b.rx(a, { priority: 150, srcIp: LOWER });
    assert.deepEqual(b.take(), ["4000 A MASTER->BACKUP"]);
    assert.equal(a.masterAddr, LOWER);
    assert.equal(a.nextDeadline(), 4000 + 3609.375);
    assert.equal(a.stats.releasedMaster, 1);
  });

  it("higher priority with higher_prio_send_advert: one advert, then BACKUP", () => {
    const { b, a } = master({ higherPrioSendAdvert: true });
    b.rx(a, { priority: 150, srcIp: LOWER });
    assert.deepEqual(b.take(), ["4000 A advert 100", "4000 A MASTER->BACKUP"]);
  });

  it("equal priority from a higher address: BACKUP", () => {
    const { b, a } = master();
    b.rx(a, { priority: 100, srcIp: HIGHER });
    assert.deepEqual(b.take(), ["4000 A MASTER->BACKUP"]);
  });

  it("equal priority from a lower address: re-advertise and stay", () => {
    const { b, a } = master();
    b.rx(a, { priority: 100, srcIp: LOWER });
    assert.deepEqual(b.take(), ["4000 A advert 100"]);
    assert.equal(a.state, "MASTER");
  });

  it("lower priority: re-advertise (forcing a new election) and garp_lower_prio_repeat GARPs, again after the delay", () => {
    const { b, a } = master({ garpLowerPrioRepeat: 2, garpLowerPrioDelayMs: 500 });
    b.rx(a, { priority: 50, srcIp: HIGHER });
    assert.deepEqual(b.take(), ["4000 A advert 100", "4000 A garp", "4000 A garp"]);
    b.until(4500);
    assert.deepEqual(b.take(), ["4500 A garp", "4500 A garp"]);
    assert.equal(a.nextDeadline(), 5000);
  });

  it("lower priority with lower_prio_no_advert: no advert, the advert timer is not restarted", () => {
    const { b, a } = master({ lowerPrioNoAdvert: true });
    b.until(4100).rx(a, { priority: 50, srcIp: HIGHER });
    assert.deepEqual(b.take(), []);
    assert.equal(a.nextDeadline(), 4609.375);
  });
});

describe("GARP rounds", () => {
  it("garp_master_repeat rounds at once and after garp_master_delay, then garp_master_refresh", () => {
    const b = new Bench();
    b.add({
      initialState: "MASTER",
      priority: 255,
      advertIntMs: 10_000,
      garpMasterRepeat: 3,
      garpMasterDelayMs: 2000,
      garpMasterRefreshMs: 4000,
      garpMasterRefreshRepeat: 2,
    });
    b.start();
    b.until(10_000);
    assert.deepEqual(b.take(), [
      "0 A advert 255",
      "0 A INIT->MASTER",
      "0 A garp",
      "0 A garp",
      "0 A garp",
      "2000 A garp",
      "2000 A garp",
      "2000 A garp",
      "6000 A garp",
      "6000 A garp",
      "10000 A advert 255",
      "10000 A garp",
      "10000 A garp",
    ]);
  });

  it("no GARP timers survive leaving MASTER", () => {
    const b = new Bench();
    const a = b.add({ initialState: "MASTER", priority: 255, garpMasterDelayMs: 2000 });
    b.start().take();
    b.until(500).rx(a, { priority: 255, srcIp: HIGHER });
    b.until(2500);
    assert.deepEqual(b.take(), ["500 A MASTER->BACKUP"]);
  });
});

describe("tracking", () => {
  it("weights move the effective priority (up: +w for w > 0; down: w for w < 0), clamped to 1..254", () => {
    const b = new Bench();
    const a = b.add({
      priority: 100,
      trackInterfaces: [{ name: "eth1", weight: 20, reverse: false }],
      trackScripts: [
        { name: "chk", weight: -30, reverse: false },
        { name: "big", weight: -200, reverse: false },
        { name: "rev", weight: 10, reverse: true },
      ],
    });
    // eth1 up +20, rev up (reverse) −10.
    assert.equal(a.effectivePriority, 110);
    b.start().take();
    a.setTracked("script", "chk", false, 0);
    assert.equal(a.effectivePriority, 80);
    a.setTracked("interface", "eth1", false, 0);
    assert.equal(a.effectivePriority, 60);
    a.setTracked("script", "rev", false, 0);
    assert.equal(a.effectivePriority, 70);
    a.setTracked("script", "big", false, 0);
    assert.equal(a.effectivePriority, 1);
    a.setTracked("script", "big", true, 0);
    a.setTracked("script", "unknown", false, 0);
    assert.equal(a.effectivePriority, 70);
    assert.equal(a.state, "BACKUP");
  });

  it("a BACKUP's down deadline moves with master_down when the priority changes", () => {
    const b = new Bench();
    const a = b.add({ priority: 100, trackScripts: [{ name: "chk", weight: -56, reverse: false }] });
    b.start().take();
    assert.equal(a.nextDeadline(), 3609.375);
    b.until(1000);
    a.setTracked("script", "chk", false, 1000);
    // Priority 44: skew 212/256 s.
    assert.equal(a.nextDeadline(), 3000 + 828.125);
  });

  it("weight 0: a MASTER goes FAULT with a priority-0 advert, and back to BACKUP when it recovers", () => {
    const b = new Bench();
    const a = b.add({ priority: 100, trackScripts: [{ name: "chk", weight: 0, reverse: false }] });
    b.start().until(3609.375).take();
    b.until(4000);
    b.take();
    a.setTracked("script", "chk", false, 4000);
    assert.deepEqual(b.take(), ["4000 A advert 0", "4000 A MASTER->FAULT"]);
    assert.equal(a.nextDeadline(), Number.POSITIVE_INFINITY);
    b.rx(a, { priority: 50 });
    assert.equal(a.stats.advertsRx, 0, "adverts are ignored in FAULT");
    b.until(6000);
    a.setTracked("script", "chk", true, 6000);
    assert.deepEqual(b.take(), ["6000 A FAULT->BACKUP"]);
    assert.equal(a.nextDeadline(), 6000 + 3609.375);
  });

  it("the instance's own interface is tracked with weight 0; two faults need two recoveries", () => {
    const b = new Bench();
    const a = b.add({ trackInterfaces: [{ name: "eth1", weight: 0, reverse: false }] });
    b.start().take();
    a.setTracked("interface", "eth0", false, 10);
    a.setTracked("interface", "eth1", false, 20);
    a.setTracked("interface", "eth0", true, 30);
    assert.equal(a.state, "FAULT");
    a.setTracked("interface", "eth1", true, 40);
    assert.deepEqual(b.take(), ["0 A BACKUP->FAULT", "0 A FAULT->BACKUP"]);
  });

  it("weight 0 reverse: FAULT while the tracked thing is up", () => {
    const b = new Bench();
    const a = b.add({ trackScripts: [{ name: "maint", weight: 0, reverse: true }] });
    b.start().take();
    a.setTracked("script", "maint", false, 0);
    assert.equal(a.state, "BACKUP");
    a.setTracked("script", "maint", true, 0);
    assert.equal(a.state, "FAULT");
  });

  it("a tracker down before start: the instance starts in FAULT", () => {
    const b = new Bench();
    const a = b.add({});
    a.setTracked("interface", "eth0", false, 0);
    b.start();
    assert.deepEqual(b.take(), ["0 A INIT->FAULT"]);
    a.setTracked("interface", "eth0", true, 0);
    assert.deepEqual(b.take(), ["0 A FAULT->BACKUP"]);
  });

  it("an owner (state MASTER) down since before start goes MASTER as soon as it recovers", () => {
    const b = new Bench();
    const a = b.add({ initialState: "MASTER", priority: 255 });
    a.setTracked("interface", "eth0", false, 0);
    b.start();
    b.until(700);
    a.setTracked("interface", "eth0", true, 700);
    assert.deepEqual(b.take(), ["0 A INIT->FAULT", "700 A advert 255", "700 A FAULT->MASTER", "700 A garp"]);
    // Once it has been MASTER, a fault and recovery go through BACKUP like anyone else.
    a.setTracked("interface", "eth0", false, 700);
    a.setTracked("interface", "eth0", true, 700);
    assert.deepEqual(b.take(), ["700 A advert 0", "700 A MASTER->FAULT", "700 A FAULT->BACKUP"]);
  });
});

describe("stop", () => {
  it("a MASTER sends priority 0, then STOP", () => {
    const b = new Bench();
    const a = b.add({ initialState: "MASTER", priority: 255 });
    b.start().take();
    b.until(1500);
    b.take();
    a.stop(1500);
    assert.deepEqual(b.take(), ["1500 A advert 0", "1500 A MASTER->STOP"]);
    assert.equal(a.stats.priZeroTx, 1);
    assert.equal(a.nextDeadline(), Number.POSITIVE_INFINITY);
  });

  it("a BACKUP just stops", () => {
    const b = new Bench();
    const a = b.add({});
    b.start().take();
    a.stop(10);
    assert.deepEqual(b.take(), ["0 A BACKUP->STOP"]);
  });
});

describe("vrrp_sync_group", () => {
  function pair(): { b: Bench; a: VrrpInstance; c: VrrpInstance; g: VrrpSyncGroup; glog: string[] } {
    const b = new Bench();
    const a = b.add({ name: "A", vrid: 1, priority: 100 });
    const c = b.add({ name: "C", vrid: 2, priority: 100 });
    const glog: string[] = [];
    const g = new VrrpSyncGroup(
      {
        name: "G",
        members: ["A", "C"],
        trackInterfaces: [],
        trackScripts: [{ name: "gchk", weight: 0, reverse: false }],
        notifyMaster: null,
        notifyBackup: null,
        notifyFault: null,
        notifyStop: null,
        notify: null,
      },
      [a, c],
      { transition: (_g, f, t) => glog.push(`${b.now} G ${f}->${t}`) },
    );
    b.start().take();
    return { b, a, c, g, glog };
  }

  it("a member whose master is gone waits while another member still hears its master; then both go MASTER", () => {
    const { b, a, c, g, glog } = pair();
    // C keeps hearing its master until 4000; A hears nothing.
    for (const t of [1000, 2000, 3000, 4000]) b.until(t).rx(c, { priority: 150 });
    // A's master_down (3609.375) passes: held in BACKUP, wanting MASTER, timer re-armed.
    assert.equal(a.state, "BACKUP");
    assert.equal(a.wantState, "MASTER");
    assert.equal(a.nextDeadline(), 3609.375 + 3609.375);
    // C's master_down: 4000 + 3609.375; A already wants MASTER, so C goes and takes A along.
    b.until(7609.375);
    assert.deepEqual(b.take(), [
      "7609.375 C advert 100",
      "7609.375 C BACKUP->MASTER",
      "7609.375 C garp",
      "7609.375 A advert 100",
      "7609.375 A BACKUP->MASTER",
      "7609.375 A garp",
    ]);
    assert.equal(g.state, "MASTER");
    assert.deepEqual(glog, ["7609.375 G BACKUP->MASTER"]);
  });

  it("one member going BACKUP takes the other to BACKUP without a priority-0 advert", () => {
    const { b, a, c, g } = pair();
    b.until(3609.375).take();
    assert.equal(g.state, "MASTER");
    b.until(3700).rx(c, { priority: 200 });
    assert.deepEqual(b.take(), ["3700 C MASTER->BACKUP", "3700 A MASTER->BACKUP"]);
    assert.equal(a.state, "BACKUP");
    assert.equal(g.state, "BACKUP");
  });

  it("one member's fault takes the group to FAULT (a MASTER sends priority 0); the group comes back to BACKUP", () => {
    const { b, a, c, g, glog } = pair();
    b.until(3609.375).take();
    a.setTracked("interface", "eth0", false, 3609.375);
    assert.deepEqual(b.take(), [
      "3609.375 A advert 0",
      "3609.375 A MASTER->FAULT",
      "3609.375 C advert 0",
      "3609.375 C MASTER->FAULT",
    ]);
    assert.equal(g.state, "FAULT");
    b.until(5000);
    a.setTracked("interface", "eth0", true, 5000);
    assert.deepEqual(b.take(), ["5000 A FAULT->BACKUP", "5000 C FAULT->BACKUP"]);
    assert.equal(c.nextDeadline(), 5000 + 3609.375);
    assert.deepEqual(glog, ["3609.375 G BACKUP->MASTER", "3609.375 G MASTER->FAULT", "5000 G FAULT->BACKUP"]);
  });

  it("the group stays in FAULT until every member with a fault of its own recovers", () => {
    const { a, c, g } = pair();
    a.setTracked("interface", "eth0", false, 100);
    c.setTracked("interface", "eth0", false, 200);
    a.setTracked("interface", "eth0", true, 300);
    assert.equal(a.state, "FAULT");
    c.setTracked("interface", "eth0", true, 400);
    assert.equal(a.state, "BACKUP");
    assert.equal(c.state, "BACKUP");
    assert.equal(g.state, "BACKUP");
  });

  it("the group's own trackers apply to every member", () => {
    const { b, a, c, g } = pair();
    g.setTracked("script", "gchk", false, 100);
    assert.equal(a.state, "FAULT");
    assert.equal(c.state, "FAULT");
    g.setTracked("script", "gchk", true, 200);
    assert.equal(a.state, "BACKUP");
    assert.equal(c.state, "BACKUP");
    b.take();
  });
});
