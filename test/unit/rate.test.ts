import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { estimatorTick, estimatorZero, rateOf } from "../../src/core/rate.js";
import { Stats } from "../../src/core/stats.js";

describe("rate estimator (ip_vs_est.c)", () => {
  it("folds a steady 5 conn/s into cps with the kernel's 1/4 EWMA, scaled by 2^10", () => {
    const s = new Stats();
    // Hand-computed: rate = 10 << 9 = 5120 per tick; cps += (rate - cps) >> 2.
    const expectedScaled = [1280, 2240, 2960, 3500, 3905];
    const expectedRead = [1, 2, 3, 3, 4]; // (cps + 0x1FF) >> 10
    for (let t = 0; t < expectedScaled.length; t++) {
      s.conns += 10;
      estimatorTick(s);
      assert.equal(s.cps, expectedScaled[t], `tick ${t + 1}`);
      assert.equal(rateOf(s).cps, expectedRead[t], `tick ${t + 1}`);
      assert.equal(s.lastConns, s.conns);
    }
    for (let t = 0; t < 100; t++) {
      s.conns += 10;
      estimatorTick(s);
    }
    // Fixed point of avg += floor((5120 - avg) / 4) is the first avg with 5120 - avg < 4.
    assert.equal(s.cps, 5117);
    assert.equal(rateOf(s).cps, 5);
  });

  it("decays to exactly 0 when traffic stops (the s64 shift floors negative deltas)", () => {
    const s = new Stats();
    s.inpkts = 1000;
    estimatorTick(s);
    assert.equal(s.inpps, 128000); // (1000 << 9) >> 2
    for (let t = 0; t < 60; t++) estimatorTick(s);
    assert.equal(s.inpps, 0);
    assert.equal(rateOf(s).inpps, 0);
  });

  it("scales byte rates by 2^5 and reads them with (bps + 0xF) >> 5", () => {
    const s = new Stats();
    s.inbytes = 1000;
    s.outbytes = 3000;
    estimatorTick(s);
    assert.equal(s.inbps, 4000); // (1000 << 4) >> 2
    assert.equal(s.outbps, 12000);
    assert.deepEqual(rateOf(s), { cps: 0, inpps: 0, outpps: 0, inbps: 125, outbps: 375 });
    for (let t = 0; t < 100; t++) {
      s.inbytes += 1000;
      s.outbytes += 3000;
      estimatorTick(s);
    }
    const r = rateOf(s);
    assert.equal(r.inbps, 500); // 1000 bytes per 2 s
    assert.equal(r.outbps, 1500);
  });

  it("stays exact for byte counters past 2^32", () => {
    const s = new Stats();
    const delta = 2 ** 40;
    s.outbytes = delta;
    estimatorTick(s);
    assert.equal(s.outbps, delta * 4); // (delta << 4) >> 2
    for (let t = 0; t < 200; t++) {
      s.outbytes += delta;
      estimatorTick(s);
    }
    assert.equal(rateOf(s).outbps, delta / 2);
  });

  it("estimatorZero restarts the averages from the current counters", () => {
    const s = new Stats();
    s.conns = 50;
    s.outpkts = 70;
    estimatorTick(s);
    assert.ok(s.cps > 0 && s.outpps > 0);
    estimatorZero(s);
    assert.equal(s.cps, 0);
    assert.equal(s.outpps, 0);
    estimatorTick(s); // no new traffic since the reset: still 0
    assert.deepEqual(rateOf(s), { cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });
  });
});
