// A reload's VRRP part (core/vrrp/reload.ts, VrrpInstance.resume/remove, VrrpSyncGroup.resume),
// checked against keepalived's reload (vrrp.c vrrp_exist, clear_diff_vrrp, clear_diff_vrrp_vip,
// restore_vrrp_state, clear_diff_script; vrrp_scheduler.c vrrp_init_state with reload_master):
// first the plan from two configurations, then what a replaced instance does on a fake clock.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type HaConfig,
  type VrrpInstanceConfig,
  type VrrpScriptConfig,
  vrrpInstanceDefaults,
} from "../../src/core/vrrp/config.js";
import { VrrpSyncGroup } from "../../src/core/vrrp/group.js";
import { type VrrpAdvertIn, VrrpInstance } from "../../src/core/vrrp/instance.js";
import { planVrrpReload, type VrrpReloadPlan } from "../../src/core/vrrp/reload.js";
import { ip } from "../support/packet-builder.js";
import { VrrpClock } from "../support/vrrp-clock.js";

const VIP = ip("198.18.72.100");
const VIP2 = ip("198.18.72.101");
const ME = ip("198.18.72.11");
const PEER = ip("198.18.72.12");

function inst(o: Partial<VrrpInstanceConfig> = {}): VrrpInstanceConfig {
  return vrrpInstanceDefaults({
    name: "VI_1",
    iface: "eth0",
    vrid: 51,
    priority: 150,
    addrs: [{ addr: VIP, prefix: 24 }],
    ...o,
  });
}

function script(o: Partial<VrrpScriptConfig> = {}): VrrpScriptConfig {
  return {
    name: "chk",
    script: "/bin/true",
    intervalMs: 1000,
    timeoutMs: 1000,
    weight: 0,
    reverse: false,
    rise: 1,
    fall: 1,
    initFail: false,
    ...o,
  };
}

function ha(instances: VrrpInstanceConfig[], o: Partial<HaConfig> = {}): HaConfig {
  return { routerId: null, instances, syncGroups: [], scripts: [], lvsSyncDaemon: null, ...o };
}

/** The plan as "action name [changed] -dropped +added" lines, addresses as keepalived prints them. */
function lines(p: VrrpReloadPlan): string[] {
  const text = (a: { addr: number; addr6?: string; prefix: number }): string =>
    `${a.addr6 ?? [a.addr >>> 24, (a.addr >>> 16) & 255, (a.addr >>> 8) & 255, a.addr & 255].join(".")}/${a.prefix}`;
  return p.instances.map((i) =>
    [
      i.action,
      i.name,
      ...(i.changed.length > 0 ? [`[${i.changed.join(",")}]`] : []),
      ...i.dropAddrs.map((a) => `-${text(a)}`),
      ...i.addAddrs.map((a) => `+${text(a)}`),
    ].join(" "),
  );
}

describe("the reload plan (keepalived's vrrp_exist and clear_diff_vrrp)", () => {
  it("keeps every instance of an unchanged file, and says the file is unchanged", () => {
    const a = ha([inst(), inst({ name: "VI_2", iface: "eth1", vrid: 52 })]);
    const p = planVrrpReload(a, structuredClone(a));
    assert.deepEqual(lines(p), ["keep VI_1", "keep VI_2"]);
    assert.equal(p.unchanged, true);
  });

  it("updates an instance whose priority, advert_int, nopreempt or track_script changed", () => {
    const p = planVrrpReload(
      ha([inst()]),
      ha([
        inst({
          priority: 90,
          advertIntMs: 200,
          nopreempt: true,
          trackScripts: [{ name: "chk", weight: 0, reverse: false }],
        }),
      ]),
    );
    assert.deepEqual(lines(p), ["update VI_1 [advertIntMs,nopreempt,priority,trackScripts]"]);
    assert.equal(p.unchanged, false);
    assert.equal(p.instances[0].old?.priority, 150);
    assert.equal(p.instances[0].cfg?.priority, 90);
  });

  it("lists the addresses no longer listed and the new ones; either list counts (get_diff_address)", () => {
    const old = inst({
      addrs: [
        { addr: VIP, prefix: 24 },
        { addr: VIP2, prefix: 24 },
      ],
      excludedAddrs: [{ addr: ip("198.18.73.1"), prefix: 24 }],
    });
    const next = inst({
      addrs: [
        { addr: VIP, prefix: 24 },
        // moved to the other list: neither dropped nor added
        { addr: ip("198.18.73.1"), prefix: 24 },
        { addr: ip("198.18.72.102"), prefix: 24 },
      ],
      excludedAddrs: [{ addr: 0, prefix: 64, addr6: "2001:db8::100" }],
    });
    assert.deepEqual(lines(planVrrpReload(ha([old]), ha([next]))), [
      "update VI_1 [addrs,excludedAddrs] -198.18.72.101/24 +198.18.72.102/24 +2001:db8::100/64",
    ]);
  });

  it("treats a new prefix or another `dev` as another address", () => {
    const p = planVrrpReload(
      ha([
        inst({
          addrs: [
            { addr: VIP, prefix: 24 },
            { addr: VIP2, prefix: 24 },
          ],
        }),
      ]),
      ha([
        inst({
          addrs: [
            { addr: VIP, prefix: 32 },
            { addr: VIP2, prefix: 24, dev: "eth1" },
          ],
        }),
      ]),
    );
    assert.deepEqual(lines(p), [
      "update VI_1 [addrs] -198.18.72.100/24 -198.18.72.101/24 +198.18.72.100/32 +198.18.72.101/24",
    ]);
  });

  it("removes what went and adds what came: the new file's order, then the removed ones", () => {
    const p = planVrrpReload(
      ha([inst({ name: "A", vrid: 1 }), inst({ name: "B", vrid: 2 }), inst({ name: "C", vrid: 3 })]),
      ha([inst({ name: "D", vrid: 4 }), inst({ name: "B", vrid: 2 })]),
    );
    assert.deepEqual(lines(p), ["add D", "keep B", "remove A", "remove C"]);
    assert.equal(p.instances[2].cfg, null);
    assert.equal(p.instances[0].old, null);
  });

  it("matches by virtual router, not by name: a renamed instance goes on, a new VRID or interface is another router", () => {
    assert.deepEqual(lines(planVrrpReload(ha([inst()]), ha([inst({ name: "VIP_FRONT" })]))), [
      "update VIP_FRONT [name]",
    ]);
    assert.deepEqual(lines(planVrrpReload(ha([inst()]), ha([inst({ vrid: 61 })]))), [
      "add VI_1",
      "remove VI_1",
    ]);
    assert.deepEqual(lines(planVrrpReload(ha([inst()]), ha([inst({ iface: "eth1" })]))), [
      "add VI_1",
      "remove VI_1",
    ]);
  });

  it("an IPv6 instance on the same VRID and interface is another router (the family counts)", () => {
    const v6 = inst({ family: 6, version: 3, addrs: [{ addr: 0, prefix: 64, addr6: "2001:db8::100" }] });
    assert.deepEqual(lines(planVrrpReload(ha([inst()]), ha([v6]))), ["add VI_1", "remove VI_1"]);
    const v6b = { ...v6, priority: 200 };
    assert.deepEqual(lines(planVrrpReload(ha([v6]), ha([v6b]))), ["update VI_1 [priority]"]);
  });

  it("unicast: new peers are an update; multicast ↔ unicast or another unicast_src_ip is another router", () => {
    const uni = (o: Partial<VrrpInstanceConfig> = {}) => inst({ unicastSrc: ME, unicastPeers: [PEER], ...o });
    assert.deepEqual(
      lines(planVrrpReload(ha([uni()]), ha([uni({ unicastPeers: [PEER, ip("198.18.72.13")] })]))),
      ["update VI_1 [unicastPeers]"],
    );
    assert.deepEqual(lines(planVrrpReload(ha([inst()]), ha([uni()]))), ["add VI_1", "remove VI_1"]);
    assert.deepEqual(lines(planVrrpReload(ha([uni()]), ha([uni({ unicastSrc: ip("198.18.72.21") })]))), [
      "add VI_1",
      "remove VI_1",
    ]);
    // Unicast adverts go to the peers whatever the multicast group says.
    assert.deepEqual(lines(planVrrpReload(ha([uni()]), ha([uni({ mcastDst: ip("224.0.0.19") })]))), [
      "update VI_1 [mcastDst]",
    ]);
  });

  it("multicast: use_vmac or another group is another router", () => {
    assert.deepEqual(lines(planVrrpReload(ha([inst()]), ha([inst({ useVmac: true })]))), [
      "add VI_1",
      "remove VI_1",
    ]);
    assert.deepEqual(lines(planVrrpReload(ha([inst()]), ha([inst({ mcastDst: ip("224.0.0.19") })]))), [
      "add VI_1",
      "remove VI_1",
    ]);
  });

  it("keeps a vrrp_script's result when its name and command stay (clear_diff_script)", () => {
    const p = planVrrpReload(
      ha([inst()], {
        scripts: [script(), script({ name: "other" }), script({ name: "gone" })],
      }),
      ha([inst()], {
        scripts: [script({ intervalMs: 2000, fall: 3 }), script({ name: "other", script: "/bin/false" })],
      }),
    );
    assert.deepEqual(p.keptScripts, ["chk"]);
    assert.deepEqual(lines(p), ["keep VI_1"]);
    assert.equal(p.unchanged, false);
  });

  it("flags the global_defs a reload must act on: GARP/NA spacing and lvs_sync_daemon", () => {
    const sd = {
      iface: "eth1",
      instance: "VI_1",
      syncid: 7,
      maxlen: null,
      port: null,
      ttl: null,
      group: null,
    };
    const p0 = planVrrpReload(
      ha([inst()], { lvsSyncDaemon: sd }),
      ha([inst()], { lvsSyncDaemon: sd, garpIntervalMs: 10 }),
    );
    assert.deepEqual([p0.garpIntervals, p0.syncDaemon], [true, false]);
    const p1 = planVrrpReload(
      ha([inst()], { lvsSyncDaemon: sd }),
      ha([inst()], { lvsSyncDaemon: { ...sd, syncid: 8 } }),
    );
    assert.deepEqual([p1.garpIntervals, p1.syncDaemon], [false, true]);
    const p2 = planVrrpReload(ha([inst()], { gnaIntervalMs: 5 }), ha([inst()]));
    assert.deepEqual([p2.garpIntervals, p2.syncDaemon], [true, false]);
  });
});

/** Instances on a fake clock; every sink call logged as "t name event". */
class Bench extends VrrpClock {
  make(o: Partial<VrrpInstanceConfig> = {}): VrrpInstance {
    const i = new VrrpInstance(inst({ garpMasterRepeat: 1, garpMasterDelayMs: 5000, ...o }), this.sink);
    i.primaryAddr = ME;
    return i;
  }

  /** An instance that ran until `state` (MASTER: it took over after its master-down time). */
  running(state: "MASTER" | "BACKUP", o: Partial<VrrpInstanceConfig> = {}): VrrpInstance {
    const i = this.make(o);
    i.start(this.now);
    if (state === "MASTER") this.until(i, i.nextDeadline());
    else this.rx(i, { priority: 254 });
    this.log = [];
    return i;
  }

  until(i: VrrpInstance | VrrpInstance[], t: number): void {
    const all = Array.isArray(i) ? i : [i];
    for (;;) {
      const next = Math.min(...all.map((x) => x.nextDeadline()));
      if (next > t) break;
      this.now = next;
      for (const x of all) if (x.nextDeadline() <= next) x.tick(next);
    }
    this.now = t;
  }

  rx(i: VrrpInstance, a: Partial<VrrpAdvertIn>): void {
    this.receive(i, PEER, a);
  }
}

describe("an instance a reload replaces (restore_vrrp_state, reload_master)", () => {
  it("MASTER unchanged: stays MASTER without a transition, advertises at once, sends no GARP", () => {
    const b = new Bench();
    const old = b.running("MASTER");
    b.now = 10_000;
    const next = b.make();
    next.resume(old, false, b.now);
    assert.equal(next.state, "MASTER");
    assert.deepEqual(b.take(), ["10000 VI_1 advert 150"]);
    assert.equal(next.transitions, old.transitions);
    assert.equal(next.stats.becameMaster, 1, "the counters carry over");
    assert.equal(next.masterAddr, ME);
    b.until(next, 12_000);
    assert.deepEqual(b.take(), ["11000 VI_1 advert 150", "12000 VI_1 advert 150"]);
  });

  it("MASTER with a new priority and advert_int: the next adverts carry them", () => {
    const b = new Bench();
    const old = b.running("MASTER");
    b.now = 10_000;
    const next = b.make({ priority: 90, advertIntMs: 500 });
    next.resume(old, false, b.now);
    b.until(next, 11_000);
    assert.deepEqual(b.take(), ["10000 VI_1 advert 90", "10500 VI_1 advert 90", "11000 VI_1 advert 90"]);
  });

  it("MASTER now below its peer: the peer's advert takes it to BACKUP (preemption as the protocol says)", () => {
    const b = new Bench();
    const old = b.running("MASTER");
    b.now = 10_000;
    const next = b.make({ priority: 90 });
    next.resume(old, false, b.now);
    b.take();
    // The peer (priority 100) took our priority-90 advert as lower and its down timer expired.
    b.now = 13_600;
    b.rx(next, { priority: 100 });
    assert.deepEqual(b.take(), ["13600 VI_1 MASTER->BACKUP"]);
  });

  it("MASTER listing new addresses: GARP rounds at once and after garp_master_delay", () => {
    const b = new Bench();
    const old = b.running("MASTER");
    b.now = 10_000;
    const next = b.make({
      addrs: [
        { addr: VIP, prefix: 24 },
        { addr: VIP2, prefix: 24 },
      ],
    });
    next.resume(old, true, b.now);
    assert.deepEqual(b.take(), ["10000 VI_1 advert 150", "10000 VI_1 garp"]);
    b.until(next, 15_000);
    assert.ok(b.take().includes("15000 VI_1 garp"));
  });

  it("MASTER with garp_master_refresh: a round at once, then every refresh", () => {
    const b = new Bench();
    const old = b.running("MASTER");
    b.now = 10_000;
    const next = b.make({ garpMasterRefreshMs: 3000 });
    next.resume(old, false, b.now);
    assert.deepEqual(b.take(), ["10000 VI_1 advert 150", "10000 VI_1 garp"]);
    b.until(next, 13_000);
    assert.deepEqual(
      b.take().filter((l) => l.endsWith("garp")),
      ["13000 VI_1 garp"],
    );
  });

  it("BACKUP stays BACKUP without a transition, with a whole master-down time at its new priority", () => {
    const b = new Bench();
    const old = b.running("BACKUP", { priority: 100 });
    b.now = 10_000;
    const next = b.make({ priority: 200 });
    next.resume(old, false, b.now);
    assert.equal(next.state, "BACKUP");
    assert.deepEqual(b.take(), []);
    assert.equal(next.masterAddr, PEER, "the master it knew");
    // 3 × 1 s + (256 − 200)/256 s
    assert.equal(next.nextDeadline(), 10_000 + 3000 + (56 * 1000) / 256);
    // Its master (priority 100 < 200 now) is discarded: it takes over when the timer runs out.
    b.now = 10_500;
    b.rx(next, { priority: 100 });
    b.until(next, 13_300);
    assert.deepEqual(b.take(), [
      "13218.75 VI_1 advert 200",
      "13218.75 VI_1 BACKUP->MASTER",
      "13218.75 VI_1 garp",
    ]);
  });

  it("MASTER in FAULT now (a weight-0 tracker down): priority 0, then FAULT", () => {
    const b = new Bench();
    const old = b.running("MASTER");
    b.now = 10_000;
    const next = b.make({ trackScripts: [{ name: "chk", weight: 0, reverse: false }] });
    next.setTracked("script", "chk", false, b.now);
    next.resume(old, false, b.now);
    assert.equal(next.state, "FAULT");
    assert.deepEqual(b.take(), ["10000 VI_1 advert 0", "10000 VI_1 INIT->FAULT"]);
    assert.equal(next.stats.priZeroTx, 1);
  });

  it("FAULT and still in FAULT: no transition again (keepalived sends no second notify)", () => {
    const b = new Bench();
    const old = b.make({ trackScripts: [{ name: "chk", weight: 0, reverse: false }] });
    old.setTracked("script", "chk", false, 0);
    old.start(0);
    b.take();
    const next = b.make({ priority: 120, trackScripts: [{ name: "chk", weight: 0, reverse: false }] });
    next.setTracked("script", "chk", false, 10_000);
    next.resume(old, false, 10_000);
    assert.equal(next.state, "FAULT");
    assert.deepEqual(b.take(), []);
    // and it recovers as usual
    next.setTracked("script", "chk", true, 11_000);
    assert.equal(next.state, "BACKUP");
  });

  it("FAULT, fault gone with the new file: BACKUP as at start", () => {
    const b = new Bench();
    const old = b.make({ trackScripts: [{ name: "chk", weight: 0, reverse: false }] });
    old.setTracked("script", "chk", false, 0);
    old.start(0);
    b.take();
    b.now = 10_000;
    const next = b.make();
    next.resume(old, false, b.now);
    assert.deepEqual(b.take(), ["10000 VI_1 INIT->BACKUP"]);
  });

  it("a removed MASTER sends priority 0 and runs no more; a removed BACKUP sends nothing", () => {
    const b = new Bench();
    const m = b.running("MASTER");
    assert.equal(m.remove(b.now), "MASTER");
    assert.deepEqual(b.take(), [`${b.now} VI_1 advert 0`]);
    assert.equal(m.state, "STOP");
    assert.equal(m.nextDeadline(), Number.POSITIVE_INFINITY);
    const k = b.running("BACKUP");
    assert.equal(k.remove(b.now), "BACKUP");
    assert.deepEqual(b.take(), []);
  });
});

describe("a sync group a reload rebuilds (vrrp_complete_init, vrrp_init_state)", () => {
  const group = (members: string[]) => ({
    name: "G1",
    members,
    trackInterfaces: [],
    trackScripts: [],
    notifyMaster: null,
    notifyBackup: null,
    notifyFault: null,
    notifyStop: null,
    notify: null,
  });

  it("is MASTER when every member went on as MASTER: nothing moves", () => {
    const b = new Bench();
    const o1 = b.running("MASTER");
    const o2 = b.running("MASTER", { name: "VI_2", iface: "eth1", vrid: 52 });
    const n1 = b.make();
    const n2 = b.make({ name: "VI_2", iface: "eth1", vrid: 52 });
    const g = new VrrpSyncGroup(group(["VI_1", "VI_2"]), [n1, n2]);
    b.now = 10_000;
    n1.resume(o1, false, b.now);
    n2.resume(o2, false, b.now);
    g.resume(b.now);
    assert.equal(g.state, "MASTER");
    assert.deepEqual(b.take(), ["10000 VI_1 advert 150", "10000 VI_2 advert 150"]);
  });

  it("is BACKUP when a new member joins MASTER ones: they go BACKUP with it, without priority 0", () => {
    const b = new Bench();
    const o1 = b.running("MASTER");
    const n1 = b.make();
    const n2 = b.make({ name: "VI_2", iface: "eth1", vrid: 52 });
    const g = new VrrpSyncGroup(group(["VI_1", "VI_2"]), [n1, n2]);
    b.now = 10_000;
    n1.resume(o1, false, b.now);
    n2.start(b.now);
    g.resume(b.now);
    assert.equal(g.state, "BACKUP");
    assert.deepEqual([n1.state, n2.state], ["BACKUP", "BACKUP"]);
    assert.deepEqual(b.take(), [
      "10000 VI_1 advert 150",
      "10000 VI_2 INIT->BACKUP",
      "10000 VI_1 MASTER->BACKUP",
    ]);
  });
});
