import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NeighCache, type NeighTickOut } from "../../src/core/neigh.js";

const IF = 2;
const IP = 0x0a000001; // 10.0.0.1
const MAC = new Uint8Array([0x02, 0, 0, 0, 0, 0x01]);
const MAC2 = new Uint8Array([0x02, 0, 0, 0, 0, 0x02]);

function frame(tag: number, len = 20): Uint8Array {
  const b = new Uint8Array(len + 8); // room after len: only [0, len) may be copied
  b.fill(tag);
  return b;
}

function tickOut(): NeighTickOut {
  return { requests: [], dropped: 0 };
}

function stateOf(c: NeighCache, ip = IP): string | undefined {
  return c.entries().find((e) => e.ifindex === IF && e.ip === ip)?.state;
}

describe("NeighCache (net/core/neighbour.c state machine)", () => {
  it("asks for a request only for the first frame to an unknown neighbour", () => {
    const c = new NeighCache();
    const r1 = c.enqueue(IF, IP, frame(1), 20, 0);
    assert.deepEqual({ ...r1 }, { sendRequest: true, queued: true, dropped: 0 });
    const r2 = c.enqueue(IF, IP, frame(2), 20, 10);
    assert.deepEqual({ ...r2 }, { sendRequest: false, queued: true, dropped: 0 });
    assert.equal(c.lookup(IF, IP, 20), null);
    assert.deepEqual(c.entries(), [{ ifindex: IF, ip: IP, mac: null, state: "INCOMPLETE" }]);
  });

  it("releases queued frames in order on confirm, as private copies of [0, len)", () => {
    const c = new NeighCache();
    const buf = frame(0);
    const lens = [20, 14, 18];
    for (let i = 0; i < 3; i++) {
      buf.fill(i + 1);
      c.enqueue(IF, IP, buf, lens[i], i);
    }
    buf.fill(0xee); // the caller reuses its buffer: the queue must not see it
    const out = c.confirm(IF, IP, MAC, 100);
    assert.equal(out.length, 3);
    for (let i = 0; i < 3; i++) {
      assert.equal(out[i].len, lens[i]);
      assert.equal(out[i].frame.length, lens[i]);
      assert.ok(
        out[i].frame.every((b) => b === i + 1),
        `frame ${i}`,
      );
    }
    assert.equal(c.confirm(IF, IP, MAC, 101).length, 0, "the queue is emptied once");
  });

  it("keeps the newest queueLen frames when the queue overflows (oldest dropped first)", () => {
    const cases = [
      { queueLen: 3, sent: 5, kept: [3, 4, 5], drops: [0, 0, 0, 1, 1] },
      { queueLen: 1, sent: 3, kept: [3], drops: [0, 1, 1] },
      { queueLen: 0, sent: 2, kept: [], drops: [0, 0] },
    ];
    for (const t of cases) {
      const c = new NeighCache({ queueLen: t.queueLen });
      const drops: number[] = [];
      for (let i = 1; i <= t.sent; i++) {
        const r = c.enqueue(IF, IP, frame(i), 20, i);
        assert.equal(r.queued, t.queueLen > 0, `queueLen ${t.queueLen} frame ${i}`);
        drops.push(r.dropped);
      }
      assert.deepEqual(drops, t.drops, `queueLen ${t.queueLen}`);
      const out = c.confirm(IF, IP, MAC, 100);
      assert.deepEqual(
        out.map((q) => q.frame[0]),
        t.kept,
        `queueLen ${t.queueLen}`,
      );
    }
  });

  it("retransmits every retransMs and fails after maxProbes, dropping the queue", () => {
    const c = new NeighCache({ retransMs: 1000, maxProbes: 3 });
    c.enqueue(IF, IP, frame(1), 20, 0); // request #1 (sendRequest)
    c.enqueue(IF, IP, frame(2), 20, 5);
    const schedule = [
      { now: 500, requests: 0, dropped: 0, size: 1 },
      { now: 999, requests: 0, dropped: 0, size: 1 },
      { now: 1000, requests: 1, dropped: 0, size: 1 }, // #2
      { now: 1500, requests: 0, dropped: 0, size: 1 },
      { now: 2000, requests: 1, dropped: 0, size: 1 }, // #3
      { now: 2999, requests: 0, dropped: 0, size: 1 },
      { now: 3000, requests: 0, dropped: 2, size: 0 }, // FAILED: forgotten with its 2 frames
    ];
    for (const s of schedule) {
      const o = tickOut();
      c.tick(s.now, o);
      assert.equal(o.requests.length, s.requests, `requests at ${s.now}`);
      for (const r of o.requests) assert.deepEqual(r, { ifindex: IF, ip: IP });
      assert.equal(o.dropped, s.dropped, `dropped at ${s.now}`);
      assert.equal(c.size, s.size, `size at ${s.now}`);
    }
    // A new frame after the failure starts a fresh resolution.
    assert.equal(c.enqueue(IF, IP, frame(3), 20, 3100).sendRequest, true);
  });

  it("honours maxProbes = 1: no retransmission, failure after one retransMs", () => {
    const c = new NeighCache({ retransMs: 200, maxProbes: 1 });
    c.enqueue(IF, IP, frame(1), 20, 0);
    const o = tickOut();
    c.tick(200, o);
    assert.deepEqual(o, { requests: [], dropped: 1 });
    assert.equal(c.size, 0);
  });

  it("hits after confirm with the learned MAC, and a later confirm replaces it", () => {
    const c = new NeighCache();
    assert.equal(c.lookup(IF, IP, 0), null, "unknown");
    c.enqueue(IF, IP, frame(1), 20, 0);
    c.confirm(IF, IP, MAC, 10);
    assert.deepEqual(c.lookup(IF, IP, 20), MAC);
    assert.equal(c.lookup(IF + 1, IP, 20), null, "keyed by interface too");
    assert.equal(c.lookup(IF, IP + 1, 20), null);
    c.confirm(IF, IP, MAC2, 30);
    assert.deepEqual(c.lookup(IF, IP, 40), MAC2);
    assert.deepEqual(c.entries(), [{ ifindex: IF, ip: IP, mac: "02:00:00:00:00:02", state: "REACHABLE" }]);
  });

  it("copies the MAC it is given", () => {
    const c = new NeighCache();
    const m = MAC.slice();
    c.confirm(IF, IP, m, 0);
    m.fill(0);
    assert.deepEqual(c.lookup(IF, IP, 1), MAC);
  });

  it("handles addresses with the top bit set (key ifindex * 2^32 + ip)", () => {
    const c = new NeighCache();
    const ip = 0xc0a80001; // 192.168.0.1
    c.confirm(IF, ip, MAC, 0);
    c.confirm(IF + 1, ip, MAC2, 0);
    assert.deepEqual(c.lookup(IF, ip, 1), MAC);
    assert.deepEqual(c.lookup(IF + 1, ip, 1), MAC2);
    assert.equal(c.entries()[0].ip, ip);
  });

  it("learns an unsolicited neighbour as STALE, usable at once", () => {
    const c = new NeighCache();
    assert.equal(c.confirm(IF, IP, MAC, 0).length, 0);
    assert.equal(stateOf(c), "STALE");
    assert.deepEqual(c.lookup(IF, IP, 1), MAC);
    assert.equal(stateOf(c), "DELAY");
  });

  it("ages REACHABLE to STALE after reachableMs, still usable; a use moves it to DELAY", () => {
    const c = new NeighCache({ reachableMs: 30_000 });
    c.enqueue(IF, IP, frame(1), 20, 0);
    c.confirm(IF, IP, MAC, 0);
    const steps = [
      { now: 29_999, state: "REACHABLE" },
      { now: 30_000, state: "STALE" },
    ];
    for (const s of steps) {
      c.tick(s.now, tickOut());
      assert.equal(stateOf(c), s.state, `at ${s.now}`);
    }
    assert.deepEqual(c.lookup(IF, IP, 30_001), MAC, "STALE is still used");
    assert.equal(stateOf(c), "DELAY");
  });

  it("treats an aged REACHABLE entry as STALE on lookup even without a tick", () => {
    const c = new NeighCache({ reachableMs: 1000 });
    c.confirm(IF, IP, MAC, 0);
    c.confirm(IF, IP, MAC, 0); // known now: REACHABLE
    assert.equal(stateOf(c), "REACHABLE");
    assert.deepEqual(c.lookup(IF, IP, 500), MAC);
    assert.equal(stateOf(c), "REACHABLE");
    assert.deepEqual(c.lookup(IF, IP, 1000), MAC);
    assert.equal(stateOf(c), "DELAY");
  });

  it("probes a used STALE entry after delayMs and forgets it when probes go unanswered", () => {
    const c = new NeighCache({ delayMs: 5000, retransMs: 1000, maxProbes: 3 });
    c.confirm(IF, IP, MAC, 0); // STALE
    c.lookup(IF, IP, 100); // DELAY until 5100
    const schedule = [
      { now: 5099, requests: 0, state: "DELAY", usable: true },
      { now: 5100, requests: 1, state: "PROBE", usable: true },
      { now: 6100, requests: 1, state: "PROBE", usable: true },
      { now: 7100, requests: 1, state: "PROBE", usable: true },
      { now: 8100, requests: 0, state: undefined, usable: false },
    ];
    for (const s of schedule) {
      const o = tickOut();
      c.tick(s.now, o);
      assert.equal(o.requests.length, s.requests, `requests at ${s.now}`);
      assert.equal(o.dropped, 0);
      assert.equal(stateOf(c), s.state, `state at ${s.now}`);
    }
    assert.equal(c.lookup(IF, IP, 8200), null);
  });

  it("returns to REACHABLE when a probe is answered", () => {
    const c = new NeighCache({ delayMs: 5000 });
    c.confirm(IF, IP, MAC, 0);
    c.lookup(IF, IP, 0);
    const o = tickOut();
    c.tick(5000, o);
    assert.equal(stateOf(c), "PROBE");
    c.confirm(IF, IP, MAC2, 5100);
    assert.equal(stateOf(c), "REACHABLE");
    assert.deepEqual(c.lookup(IF, IP, 5200), MAC2);
  });

  it("forgets STALE entries unused for staleMs", () => {
    const c = new NeighCache({ staleMs: 60_000 });
    c.confirm(IF, IP, MAC, 0);
    c.tick(59_999, tickOut());
    assert.equal(c.size, 1);
    c.tick(60_000, tickOut());
    assert.equal(c.size, 0);
  });

  it("does not queue for a resolved neighbour", () => {
    const c = new NeighCache();
    c.confirm(IF, IP, MAC, 0);
    const r = c.enqueue(IF, IP, frame(1), 20, 1);
    assert.deepEqual({ ...r }, { sendRequest: false, queued: false, dropped: 0 });
  });

  it("lists, deletes and clears entries", () => {
    const c = new NeighCache();
    c.enqueue(IF, IP, frame(1), 20, 0);
    c.confirm(IF, IP + 1, MAC, 0);
    assert.deepEqual(
      c.entries().map((e) => e.state),
      ["INCOMPLETE", "STALE"],
    );
    assert.equal(c.delete(IF, IP), true);
    assert.equal(c.delete(IF, IP), false);
    assert.equal(c.size, 1);
    c.clear();
    assert.equal(c.size, 0);
  });
});
