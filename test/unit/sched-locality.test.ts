// lblc and lblcr: cache reuse keyed by destination address, lblc's own "overloaded" test,
// replication sets, and the lazily-run expiry timer (60 s ticks, 6 min / 24 h).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD, Dest } from "../../src/core/dest.js";
import { Flow, IPPROTO_TCP } from "../../src/core/packet/flow.js";
import { findScheduler } from "../../src/core/sched/index.js";
import { LBLC_MAX_SIZE } from "../../src/core/sched/lblc.js";
import type { SchedContext, Scheduler } from "../../src/core/sched/types.js";
import { Service } from "../../src/core/service.js";

const MIN = 60_000;
const HOUR = 60 * MIN;

function setup(sched: string, weights: number[]): { svc: Service; s: Scheduler; ds: Dest[] } {
  const svc = new Service(IPPROTO_TCP, 0x0a000001, 80);
  const ds = weights.map((w, i) => {
    const d = new Dest(0x0a000101 + i, 80);
    d.weight = w;
    return d;
  });
  svc.dests = ds.slice();
  const s = findScheduler(sched)!;
  svc.sched = s;
  s.initService?.(svc);
  return { svc, s, ds };
}

const flow = new Flow();
function to(daddr: number): Flow {
  flow.proto = IPPROTO_TCP;
  flow.saddr = 0xc0a80001;
  flow.daddr = daddr >>> 0;
  return flow;
}
function at(now: number): SchedContext {
  return { now, random: () => 0 };
}
function tableSize(svc: Service): number {
  return (svc.schedData as { entries: number }).entries;
}

describe("lblc", () => {
  it("caches the weighted-least-connection pick per destination address and reuses it", () => {
    const { svc, s, ds } = setup("lblc", [10, 10]);
    assert.equal(s.schedule(svc, to(1), at(0)), ds[0]); // tie → first
    ds[0].inactConns = 50; // wlc would now pick B
    assert.equal(s.schedule(svc, to(1), at(1)), ds[0]);
    assert.equal(s.schedule(svc, to(2), at(2)), ds[1]); // another address, fresh wlc pick
    assert.equal(s.schedule(svc, to(2), at(3)), ds[1]);
  });
  it("leaves a cached dest that is busy beyond its weight only when some dest is under half its weight", () => {
    const { svc, s, ds } = setup("lblc", [1, 1]);
    assert.equal(s.schedule(svc, to(1), at(0)), ds[0]);
    ds[0].activeConns = 5;
    ds[1].activeConns = 1; // 1*2 < 1 is false: nobody is lightly loaded
    assert.equal(s.schedule(svc, to(1), at(1)), ds[0]);
    ds[1].activeConns = 0;
    assert.equal(s.schedule(svc, to(1), at(2)), ds[1]);
    assert.equal(s.schedule(svc, to(1), at(3)), ds[1]); // the entry now names B
  });
  it("reschedules when the cached dest is quiesced or removed, but not for the threshold flag", () => {
    const { svc, s, ds } = setup("lblc", [1, 1]);
    assert.equal(s.schedule(svc, to(1), at(0)), ds[0]);
    ds[0].flags |= DEST_F_OVERLOAD; // ip_vs_lblc_schedule does not look at it for a cache hit
    assert.equal(s.schedule(svc, to(1), at(1)), ds[0]);
    ds[0].flags &= ~DEST_F_OVERLOAD;
    ds[0].weight = 0;
    assert.equal(s.schedule(svc, to(1), at(2)), ds[1]);
    ds[0].weight = 1;
    ds[1].flags &= ~DEST_F_AVAILABLE;
    svc.dests.splice(1, 1);
    assert.equal(s.schedule(svc, to(1), at(3)), ds[0]);
  });
  it("returns null when no dest is usable", () => {
    const { svc, s } = setup("lblc", [0]);
    assert.equal(s.schedule(svc, to(1), at(0)), null);
  });
  it("expires entries unused for 24 h at the full check, not before", () => {
    const { svc, s, ds } = setup("lblc", [10, 10]);
    assert.equal(s.schedule(svc, to(1), at(0)), ds[0]);
    ds[0].inactConns = 50;
    assert.equal(s.schedule(svc, to(1), at(23 * HOUR)), ds[0]); // lastuse now 23 h
    assert.equal(s.schedule(svc, to(2), at(46 * HOUR)), ds[1]); // 23 h later: entry 1 kept
    assert.equal(s.schedule(svc, to(1), at(46 * HOUR + MIN)), ds[0]);
    assert.equal(s.schedule(svc, to(2), at(71 * HOUR)), ds[1]); // 25 h since entry 1 was used
    assert.equal(tableSize(svc), 1);
    assert.equal(s.schedule(svc, to(1), at(71 * HOUR + 1)), ds[1]);
  });
  it("above 16384 entries, drops entries idle for 6 min, at most (excess*4/3) per tick", () => {
    const { svc, s } = setup("lblc", [1]);
    const n = LBLC_MAX_SIZE + 10;
    for (let i = 0; i < n; i++) s.schedule(svc, to(i + 1), at(0));
    assert.equal(tableSize(svc), n);
    s.schedule(svc, to(n), at(5 * MIN + 59_999)); // ticks at 1..5 min: nothing is 6 min old
    assert.equal(tableSize(svc), n);
    s.schedule(svc, to(n), at(7 * MIN)); // tick at 6 min: goal = trunc(10*4/3) = 13
    assert.equal(tableSize(svc), n - 13);
  });
});

describe("lblcr", () => {
  it("starts a set with the wlc pick and keeps using its least-loaded member", () => {
    const { svc, s, ds } = setup("lblcr", [10, 10]);
    assert.equal(s.schedule(svc, to(1), at(0)), ds[0]);
    ds[0].inactConns = 50;
    assert.equal(s.schedule(svc, to(1), at(1)), ds[0]); // only member
  });
  it("adds the service-wide wlc pick when the set's best member is overloaded, then picks within the set", () => {
    const { svc, s, ds } = setup("lblcr", [1, 1, 1]);
    assert.equal(s.schedule(svc, to(1), at(0)), ds[0]);
    ds[0].activeConns = 2; // > weight, and B/C have active*2 < weight
    assert.equal(s.schedule(svc, to(1), at(1)), ds[1]); // wlc over the service: B (tie with C, first)
    ds[1].activeConns = 1;
    ds[2].activeConns = 0;
    // set {B, A}: B (256) beats A (512), B is not overloaded (1 > 1 is false)
    assert.equal(s.schedule(svc, to(1), at(2)), ds[1]);
  });
  it("skips members that were removed from the service or are overloaded", () => {
    const { svc, s, ds } = setup("lblcr", [1, 1]);
    assert.equal(s.schedule(svc, to(1), at(0)), ds[0]);
    ds[0].flags &= ~DEST_F_AVAILABLE;
    svc.dests.splice(0, 1);
    assert.equal(s.schedule(svc, to(1), at(1)), ds[1]);
    ds[0].flags |= DEST_F_AVAILABLE;
    svc.dests.unshift(ds[0]);
    ds[1].flags |= DEST_F_OVERLOAD;
    assert.equal(s.schedule(svc, to(1), at(2)), ds[0]); // set {B, A}: B overloaded → A
  });
  it("drops the most loaded member once the set was unchanged for 24 h", () => {
    const { svc, s, ds } = setup("lblcr", [1, 1, 1]);
    assert.equal(s.schedule(svc, to(1), at(0)), ds[0]);
    ds[0].activeConns = 2;
    assert.equal(s.schedule(svc, to(1), at(1)), ds[1]); // set {B, A}, lastmod 1
    ds[0].activeConns = 0;
    ds[1].activeConns = 1;
    // 24 h + 2 ms later: min is A (0) and is returned; max (B) is erased from the set
    assert.equal(s.schedule(svc, to(1), at(24 * HOUR + 1)), ds[0]);
    ds[0].activeConns = 3;
    ds[1].activeConns = 0;
    ds[2].activeConns = 1;
    // set {A} only: A is overloaded (3 > 1, B has 0*2 < 1) → wlc over the service → B
    assert.equal(s.schedule(svc, to(1), at(24 * HOUR + 2)), ds[1]);
  });
});
