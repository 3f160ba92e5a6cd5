// IPv6 neighbours in the NeighCache (src/core/neigh.ts): NDP's life cycle (RFC 4861 §7.3 and the
// kernel's neighbour.c/ndisc.c): solicit → NA → REACHABLE → STALE → DELAY → PROBE (unicast) →
// forgotten; queued frames flushed in order or dropped and counted; what an NA or an NS does to
// an entry in every state (neigh_update's table); entries keyed by interface and address, with
// addresses of equal fold kept apart.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ipv6Fold, ipv6TextWords } from "../../src/core/addr.js";
import { NeighCache, type NeighTickOut } from "../../src/core/neigh.js";

const IF = 2;
const W = (s: string): Int32Array => ipv6TextWords(s) as Int32Array;
const GW = W("fe80::1");
const MAC = Uint8Array.from([0x02, 0, 0, 0, 0, 0x01]);
const MAC2 = Uint8Array.from([0x02, 0, 0, 0, 0, 0x02]);
const S = 0x40;
const O = 0x20;

function frame(tag: number, len = 20): Uint8Array {
  const b = new Uint8Array(len + 8);
  b.fill(tag);
  return b;
}

function tickOut(): Required<NeighTickOut> {
  return { requests: [], solicits: [], dropped: 0 };
}

function stateOf(c: NeighCache, w = GW): string | undefined {
  const fold = ipv6Fold(w);
  return c.entries().find((e) => e.ifindex === IF && e.ip === fold && e.ip6 !== undefined)?.state;
}

/** The MAC in a frame-sized buffer at an offset, as an NA carries it in its option. */
function inFrame(mac: Uint8Array, off = 10): [Uint8Array, number] {
  const b = new Uint8Array(off + 6 + 4).fill(0xee);
  b.set(mac, off);
  return [b, off];
}

function na(c: NeighCache, flags: number, mac: Uint8Array | null, now: number, w = GW): number {
  const [b, off] = mac === null ? [new Uint8Array(0), -1] : inFrame(mac);
  return c.learnFromNa(IF, w, 0, flags, b, off, now).length;
}

function ns(c: NeighCache, mac: Uint8Array, now: number, w = GW): number {
  const [b, off] = inFrame(mac);
  return c.learnFromNs(IF, w, 0, b, off, now).length;
}

describe("NeighCache IPv6: the NDP life cycle", () => {
  it("solicit → NA → REACHABLE → STALE → DELAY → PROBE (unicast) → forgotten", () => {
    const c = new NeighCache();
    const r1 = c.enqueue6(IF, GW, 0, frame(1), 20, 0);
    assert.deepEqual({ ...r1 }, { sendRequest: true, queued: true, dropped: 0 });
    assert.equal(c.enqueue6(IF, GW, 0, frame(2), 20, 5).sendRequest, false);
    assert.equal(stateOf(c), "INCOMPLETE");
    assert.equal(c.lookup6(IF, GW, 0, 10), null);
    const steps: Array<{
      now: number;
      solicit?: "mcast" | "ucast";
      state: string | undefined;
      act?: () => void;
    }> = [
      { now: 999, state: "INCOMPLETE" },
      { now: 1000, solicit: "mcast", state: "INCOMPLETE" },
      { now: 2000, solicit: "mcast", state: "INCOMPLETE" },
      { now: 31_999, state: "REACHABLE", act: () => assert.equal(na(c, S | O, MAC, 2100), 2) },
      { now: 32_100, state: "STALE" },
      { now: 32_200, state: "DELAY", act: () => assert.deepEqual(c.lookup6(IF, GW, 0, 32_200), MAC) },
      { now: 37_200, solicit: "ucast", state: "PROBE" },
      { now: 38_200, solicit: "ucast", state: "PROBE" },
      { now: 39_200, solicit: "ucast", state: "PROBE" },
      { now: 40_200, state: undefined },
    ];
    for (const s of steps) {
      s.act?.();
      const o = tickOut();
      c.tick(s.now, o);
      assert.equal(o.requests.length, 0, "no ARP for an IPv6 neighbour");
      assert.equal(o.solicits.length, s.solicit === undefined ? 0 : 1, `solicits at ${s.now}`);
      for (const q of o.solicits) {
        assert.deepEqual([...q.ip6], [...GW]);
        assert.equal(q.ifindex, IF);
        if (s.solicit === "ucast") assert.deepEqual(q.mac, MAC, "PROBE unicasts to the cached MAC");
        else assert.equal(q.mac, null, "INCOMPLETE solicits the group");
      }
      assert.equal(stateOf(c), s.state, `state at ${s.now}`);
    }
    assert.equal(c.size, 0);
  });

  it("hands the newest queued frame with each retransmission (its source picks the NS's)", () => {
    const c = new NeighCache();
    c.enqueue6(IF, GW, 0, frame(1), 20, 0);
    c.enqueue6(IF, GW, 0, frame(2), 20, 1);
    const o = tickOut();
    c.tick(1000, o);
    assert.equal(o.solicits[0].frame?.frame[0], 2);
  });

  it("flushes queued frames in order when the NA arrives, as private copies", () => {
    const c = new NeighCache();
    const buf = frame(0);
    for (let i = 0; i < 3; i++) {
      buf.fill(i + 1);
      c.enqueue6(IF, GW, 0, buf, 14 + i, i);
    }
    buf.fill(0xee);
    const [b, off] = inFrame(MAC);
    const out = c.learnFromNa(IF, GW, 0, S, b, off, 10);
    assert.deepEqual(
      out.map((q) => [q.frame[0], q.len]),
      [
        [1, 14],
        [2, 15],
        [3, 16],
      ],
    );
    b.fill(0);
    assert.deepEqual(c.lookup6(IF, GW, 0, 11), MAC, "the MAC was copied");
  });

  it("fails after maxProbes unanswered solicitations, dropping and counting the queue", () => {
    const c = new NeighCache({ queueLen: 3 });
    const held = () => c.entry6(IF, GW, 0);
    for (let i = 0; i < 5; i++) c.enqueue6(IF, GW, 0, frame(i), 20, i);
    const h = held();
    const schedule = [
      { now: 1000, solicits: 1, dropped: 0, size: 1 },
      { now: 2000, solicits: 1, dropped: 0, size: 1 },
      { now: 2999, solicits: 0, dropped: 0, size: 1 },
      { now: 3000, solicits: 0, dropped: 3, size: 0 },
    ];
    for (const s of schedule) {
      const o = tickOut();
      c.tick(s.now, o);
      assert.deepEqual(
        [o.solicits.length, o.dropped, c.size],
        [s.solicits, s.dropped, s.size],
        `at ${s.now}`,
      );
    }
    assert.equal(h?.dead, true, "a held handle knows it is gone");
    assert.equal(c.enqueue6(IF, GW, 0, frame(9), 20, 3100).sendRequest, true, "a new frame starts again");
  });

  it("counts the timers without solicits when the caller gives no solicits list", () => {
    const c = new NeighCache();
    c.enqueue6(IF, GW, 0, frame(1), 20, 0);
    const o: NeighTickOut = { requests: [], dropped: 0 };
    for (const now of [1000, 2000, 3000]) c.tick(now, o);
    assert.deepEqual(o, { requests: [], dropped: 1 });
  });
});

describe("NeighCache IPv6: neigh_update's table", () => {
  type Setup = "none" | "INCOMPLETE" | "REACHABLE" | "STALE" | "DELAY" | "PROBE";
  /** An entry in `state` with MAC (where it has one), at time 100. */
  function inState(state: Setup): NeighCache {
    const c = new NeighCache();
    if (state === "none") return c;
    if (state === "INCOMPLETE") {
      c.enqueue6(IF, GW, 0, frame(7), 20, 0);
      return c;
    }
    if (state === "REACHABLE") {
      c.enqueue6(IF, GW, 0, frame(7), 20, 0);
      na(c, S, MAC, 50);
    } else ns(c, MAC, 50);
    if (state === "DELAY" || state === "PROBE") c.lookup6(IF, GW, 0, 60);
    if (state === "PROBE") c.tick(60 + 5000, tickOut());
    return c;
  }

  const naCases: Array<[Setup, number, Uint8Array | null, string | undefined, Uint8Array | null, number]> = [
    // before, NA flags, its target link-layer address → state, MAC, frames released
    ["none", S | O, MAC, undefined, null, 0],
    ["INCOMPLETE", S, null, "INCOMPLETE", null, 0],
    ["INCOMPLETE", S, MAC, "REACHABLE", MAC, 1],
    ["INCOMPLETE", 0, MAC, "STALE", MAC, 1],
    ["INCOMPLETE", O, MAC, "STALE", MAC, 1],
    ["REACHABLE", S, MAC, "REACHABLE", MAC, 0],
    ["REACHABLE", S, null, "REACHABLE", MAC, 0],
    ["REACHABLE", 0, MAC, "REACHABLE", MAC, 0],
    ["REACHABLE", S | O, MAC2, "REACHABLE", MAC2, 0],
    ["REACHABLE", O, MAC2, "STALE", MAC2, 0],
    ["REACHABLE", S, MAC2, "STALE", MAC, 0],
    ["REACHABLE", 0, MAC2, "STALE", MAC, 0],
    ["STALE", S, MAC, "REACHABLE", MAC, 0],
    ["STALE", S, null, "REACHABLE", MAC, 0],
    ["STALE", 0, MAC, "STALE", MAC, 0],
    ["STALE", S, MAC2, "STALE", MAC, 0],
    ["STALE", O, MAC2, "STALE", MAC2, 0],
    ["DELAY", S, MAC, "REACHABLE", MAC, 0],
    ["DELAY", 0, MAC, "DELAY", MAC, 0],
    ["DELAY", S | O, MAC2, "REACHABLE", MAC2, 0],
    ["PROBE", S, MAC, "REACHABLE", MAC, 0],
    ["PROBE", S, MAC2, "PROBE", MAC, 0],
    ["PROBE", O, MAC2, "STALE", MAC2, 0],
  ];
  const flagText = (f: number): string => (f === 0 ? "-" : `${f & S ? "S" : ""}${f & O ? "O" : ""}`);
  const macText = (m: Uint8Array | null): string => (m === null ? "no address" : m === MAC ? "same" : "new");
  for (const [before, flags, mac, after, wantMac, released] of naCases)
    it(`${before} + NA ${flagText(flags)} ${macText(mac)} → ${after ?? "none"}`, () => {
      const c = inState(before);
      assert.equal(na(c, flags, mac, 100), released);
      assert.equal(stateOf(c), after);
      if (wantMac !== null) assert.deepEqual(c.entry6(IF, GW, 0)?.mac, wantMac);
    });

  const nsCases: Array<[Setup, Uint8Array, string, Uint8Array, number]> = [
    // before, the NS's source link-layer address → state, MAC, frames released
    ["none", MAC, "STALE", MAC, 0],
    ["INCOMPLETE", MAC, "STALE", MAC, 1],
    ["REACHABLE", MAC, "REACHABLE", MAC, 0],
    ["REACHABLE", MAC2, "STALE", MAC2, 0],
    ["DELAY", MAC, "DELAY", MAC, 0],
    ["PROBE", MAC2, "STALE", MAC2, 0],
  ];
  for (const [before, mac, after, wantMac, released] of nsCases)
    it(`${before} + NS from ${macText(mac)} → ${after}`, () => {
      const c = inState(before);
      assert.equal(ns(c, mac, 100), released);
      assert.equal(stateOf(c), after);
      assert.deepEqual(c.entry6(IF, GW, 0)?.mac, wantMac);
    });

  it("an entry learned from an NS is usable at once and probed when used", () => {
    const c = new NeighCache();
    ns(c, MAC, 0);
    assert.deepEqual(c.lookup6(IF, GW, 0, 1), MAC);
    assert.equal(stateOf(c), "DELAY");
  });
});

describe("NeighCache IPv6: keys", () => {
  // Same fold (the words of one are the other's, swapped), different addresses.
  const A1 = W("2001:db8::1");
  const A2 = Int32Array.from([A1[1], A1[0], A1[2], A1[3]]);

  it("keeps addresses of equal fold apart, and deletes either without losing the other", () => {
    assert.equal(ipv6Fold(A1), ipv6Fold(A2));
    for (const first of [0, 1]) {
      const c = new NeighCache();
      const [x, y] = first === 0 ? [A1, A2] : [A2, A1];
      ns(c, MAC, 0, x);
      ns(c, MAC2, 0, y);
      assert.equal(c.size, 2);
      assert.deepEqual(c.lookup6(IF, x, 0, 1), MAC);
      assert.deepEqual(c.lookup6(IF, y, 0, 1), MAC2);
      assert.ok(c.delete6(IF, x));
      assert.equal(c.lookup6(IF, x, 0, 2), null);
      assert.deepEqual(c.lookup6(IF, y, 0, 2), MAC2);
      assert.equal(c.delete6(IF, x), false);
      assert.equal(c.size, 1);
    }
  });

  it("forgets a STALE entry unused for staleMs in the middle of a chain", () => {
    const c = new NeighCache({ staleMs: 1000 });
    ns(c, MAC, 0, A1);
    ns(c, MAC2, 0, A2);
    c.lookup6(IF, A2, 0, 900); // DELAY: kept
    c.tick(1000, tickOut());
    assert.equal(c.entry6(IF, A1, 0), null);
    assert.deepEqual(c.lookup6(IF, A2, 0, 1001), MAC2);
  });

  it("is keyed by interface, apart from IPv4, reads the words at an offset", () => {
    const c = new NeighCache();
    ns(c, MAC, 0);
    assert.equal(c.lookup6(IF + 1, GW, 0, 1), null);
    assert.equal(c.lookup(IF, ipv6Fold(GW), 1), null, "the fold is no IPv4 address");
    c.confirm(IF, ipv6Fold(GW), MAC2, 1);
    const at = new Int32Array(7);
    at.set(GW, 3);
    assert.deepEqual(c.lookup6(IF, at, 3, 2), MAC);
    assert.equal(c.size, 2);
    assert.deepEqual(
      c.entries().map((e) => [e.ip6 ?? "v4", e.state]),
      [
        ["v4", "STALE"],
        ["fe80::1", "DELAY"],
      ],
    );
    assert.equal(c.flushIface(IF), 2);
    assert.equal(c.size, 0);
    ns(c, MAC, 0);
    c.clear();
    assert.equal(c.size, 0);
  });
});
