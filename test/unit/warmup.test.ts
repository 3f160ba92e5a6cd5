// The data path's warm-up (src/daemon/warmup.ts): every method's traffic through a throwaway engine
// on the in-memory lab gets its answers, and the budget bounds the time it takes.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { warmUp } from "../../src/daemon/warmup.js";

describe("data path warm-up", () => {
  it("runs whole rounds of every method, each request answered", () => {
    const r = warmUp(1);
    assert.equal(r.rounds, 1, "a budget shorter than a round still runs one");
    assert.equal(r.failed, 0);
    // NAT, DR, TUN, FULLNAT: 12 requests, 21 keep-alive ones, 256 KiB, 8 datagrams and a ping each.
    assert.ok(r.frames > 1000, `${r.frames} frames`);
  });

  it("no budget, no rounds", () => {
    assert.deepEqual({ ...warmUp(0), ms: 0 }, { rounds: 0, frames: 0, failed: 0, ms: 0 });
  });

  it("keeps going for its budget", () => {
    const r = warmUp(150);
    assert.ok(r.ms >= 150 && r.rounds >= 2, `${r.rounds} rounds in ${r.ms} ms`);
    assert.equal(r.failed, 0);
  });
});
