import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SimClock } from "../../src/sim/clock.js";
import { Link, type NetPort } from "../../src/sim/net.js";

describe("SimClock", () => {
  it("runs events in time order, equal times in insertion order", () => {
    const c = new SimClock();
    const seen: string[] = [];
    c.at(5, () => seen.push("a5"));
    c.at(1, () => seen.push("b1"));
    c.at(5, () => seen.push("c5"));
    c.after(0, () => seen.push("d0"));
    c.at(3, () => c.after(2, () => seen.push("e5")));
    assert.equal(c.runUntilIdle(), true);
    assert.deepEqual(seen, ["d0", "b1", "a5", "c5", "e5"]);
    assert.equal(c.now, 5);
  });

  it("cancelled events never run and runUntil stops at the deadline", () => {
    const c = new SimClock();
    const seen: number[] = [];
    const h = c.at(2, () => seen.push(2));
    c.at(4, () => seen.push(4));
    c.at(9, () => seen.push(9));
    c.cancel(h);
    c.runUntil(5);
    assert.deepEqual(seen, [4]);
    assert.equal(c.now, 5);
    assert.equal(c.pending, 1);
  });

  it("runUntilIdle gives up after maxMs of simulated time", () => {
    const c = new SimClock();
    const tick = (): void => {
      c.after(10, tick);
    };
    tick();
    assert.equal(c.runUntilIdle(100), false);
    assert.equal(c.now, 100);
  });
});

function port(mac: number, got: Array<[number, number]>): NetPort {
  return {
    mac: new Uint8Array([2, 0, 0, 0, 0, mac]),
    deliver: (buf, len) => got.push([mac, buf[len - 1]]),
  };
}

function frame(dst: number, src: number, tag: number, size = 60): Uint8Array {
  const f = new Uint8Array(size);
  f.set([2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src]);
  if (dst === 255) f.fill(0xff, 0, 6);
  f[size - 1] = tag;
  return f;
}

describe("Link", () => {
  it("floods unknown and broadcast frames, then forwards learned unicast to one port", () => {
    const c = new SimClock();
    const l = new Link(c, { latencyMs: 0.05 });
    const got: Array<[number, number]> = [];
    const s1 = l.attach(port(1, got));
    const s2 = l.attach(port(2, got));
    l.attach(port(3, got));
    s1(frame(255, 1, 10), 0, 60);
    c.runUntilIdle();
    assert.deepEqual(got, [
      [2, 10],
      [3, 10],
    ]);
    got.length = 0;
    s2(frame(1, 2, 11), 0, 60); // 1 was learned from the broadcast
    c.runUntilIdle();
    assert.deepEqual(got, [[1, 11]]);
    assert.equal(c.now, 0.1);
  });

  it("delivers copies, so the sender may reuse its buffer at once", () => {
    const c = new SimClock();
    const l = new Link(c);
    const got: Array<[number, number]> = [];
    const s1 = l.attach(port(1, got));
    l.attach(port(2, got));
    const f = frame(255, 1, 7);
    s1(f, 0, 60);
    f[59] = 99;
    c.runUntilIdle();
    assert.deepEqual(got, [[2, 7]]);
  });

  it("drops and counts frames above the link MTU", () => {
    const c = new SimClock();
    const l = new Link(c, { mtu: 1500 });
    const got: Array<[number, number]> = [];
    const s1 = l.attach(port(1, got));
    l.attach(port(2, got));
    s1(frame(255, 1, 1, 1514), 0, 1514);
    s1(frame(255, 1, 2, 1515), 0, 1515);
    c.runUntilIdle();
    assert.deepEqual(got, [[2, 1]]);
    assert.equal(l.stats.dropsMtu, 1);
  });
});
