// rr, wrr, lc, wlc, sed, nq, fo, ovf, twos and the registry. Expected sequences are worked out
// by hand from the kernel's ip_vs_<name>.c, not recorded from the implementation.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEST_F_OVERLOAD, Dest } from "../../src/core/dest.js";
import { Flow } from "../../src/core/packet/flow.js";
import { findScheduler, SCHEDULER_NAMES } from "../../src/core/sched/index.js";
import type { SchedContext, Scheduler } from "../../src/core/sched/types.js";
import { Service } from "../../src/core/service.js";

interface Spec {
  name: string;
  weight?: number;
  active?: number;
  inactive?: number;
  overload?: boolean;
}

const names = new Map<Dest, string>();

function mkDest(s: Spec, i: number): Dest {
  const d = new Dest(0x0a000100 + i + 1, 80);
  d.weight = s.weight ?? 1;
  d.activeConns = s.active ?? 0;
  d.inactConns = s.inactive ?? 0;
  if (s.overload === true) d.flags |= DEST_F_OVERLOAD;
  names.set(d, s.name);
  return d;
}

/** A service whose dests are exactly `list`, in that (kernel list) order, scheduler bound. */
function svcWith(sched: string, list: Spec[]): { svc: Service; s: Scheduler; by: (n: string) => Dest } {
  const svc = new Service(6, 0x0a000001, 80);
  svc.dests = list.map(mkDest);
  const s = findScheduler(sched);
  assert.ok(s !== null);
  svc.sched = s;
  s.initService?.(svc);
  const by = (n: string): Dest => {
    const d = svc.dests.find((x) => names.get(x) === n);
    assert.ok(d !== undefined, n);
    return d;
  };
  return { svc, s, by };
}

/** As the control plane does it: list_add_rcu at the head, then add_dest. */
function addDest(svc: Service, s: Scheduler, spec: Spec): Dest {
  const d = mkDest(spec, 100 + svc.dests.length);
  svc.dests.unshift(d);
  s.addDest?.(svc, d);
  return d;
}

function delDest(svc: Service, s: Scheduler, d: Dest): void {
  svc.dests.splice(svc.dests.indexOf(d), 1);
  s.delDest?.(svc, d);
}

const flow = new Flow();
const ctx: SchedContext = { now: 0, random: () => 0 };

function pick(svc: Service, s: Scheduler, c: SchedContext = ctx): string | null {
  const d = s.schedule(svc, flow, c);
  return d === null ? null : (names.get(d) ?? "?");
}

function seq(svc: Service, s: Scheduler, n: number): (string | null)[] {
  const out: (string | null)[] = [];
  for (let i = 0; i < n; i++) out.push(pick(svc, s));
  return out;
}

describe("scheduler registry", () => {
  it("knows every kernel scheduler name and builds a fresh object per call", () => {
    assert.deepEqual(
      [...SCHEDULER_NAMES],
      ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"],
    );
    for (const n of SCHEDULER_NAMES) {
      const a = findScheduler(n);
      const b = findScheduler(n);
      assert.ok(a !== null && b !== null, n);
      assert.equal(a.name, n);
      assert.notEqual(a, b);
    }
  });
  it("returns null for an unknown name", () => {
    assert.equal(findScheduler("nope"), null);
    assert.equal(findScheduler("toString"), null);
  });
});

describe("rr", () => {
  it("starts at the list head (newest dest) and cycles in list order", () => {
    const svc = new Service(6, 1, 80);
    const s = findScheduler("rr")!;
    svc.sched = s;
    s.initService?.(svc);
    for (const n of ["A", "B", "C"]) addDest(svc, s, { name: n });
    assert.deepEqual(seq(svc, s, 7), ["C", "B", "A", "C", "B", "A", "C"]);
  });
  it("skips quiesced and overloaded dests, and returns null when none is usable", () => {
    const { svc, s, by } = svcWith("rr", [
      { name: "A" },
      { name: "B", weight: 0 },
      { name: "C", overload: true },
      { name: "D" },
    ]);
    assert.deepEqual(seq(svc, s, 4), ["A", "D", "A", "D"]);
    by("A").weight = 0;
    by("D").flags |= DEST_F_OVERLOAD;
    assert.equal(pick(svc, s), null);
  });
  it("moves a cursor on a removed dest to its predecessor, so the next pick is the dest after it", () => {
    const { svc, s, by } = svcWith("rr", [{ name: "A" }, { name: "B" }, { name: "C" }, { name: "D" }]);
    assert.deepEqual(seq(svc, s, 2), ["A", "B"]);
    delDest(svc, s, by("B"));
    assert.deepEqual(seq(svc, s, 4), ["C", "D", "A", "C"]);
  });
  it("restarts from the head when the removed cursor dest was first in the list", () => {
    const { svc, s, by } = svcWith("rr", [{ name: "A" }, { name: "B" }, { name: "C" }]);
    assert.deepEqual(seq(svc, s, 1), ["A"]);
    delDest(svc, s, by("A"));
    assert.deepEqual(seq(svc, s, 3), ["B", "C", "B"]);
  });
  it("keeps its place when another dest is removed or a new one is added at the head", () => {
    const { svc, s, by } = svcWith("rr", [{ name: "A" }, { name: "B" }, { name: "C" }]);
    assert.deepEqual(seq(svc, s, 2), ["A", "B"]);
    delDest(svc, s, by("A"));
    assert.deepEqual(seq(svc, s, 1), ["C"]);
    addDest(svc, s, { name: "N" });
    assert.deepEqual(seq(svc, s, 4), ["N", "B", "C", "N"]);
  });
});

describe("wrr", () => {
  it("weights 4:3:2 give the kernel's interleaved order A A B A B C A B C", () => {
    const { svc, s } = svcWith("wrr", [
      { name: "A", weight: 4 },
      { name: "B", weight: 3 },
      { name: "C", weight: 2 },
    ]);
    const period = ["A", "A", "B", "A", "B", "C", "A", "B", "C"];
    assert.deepEqual(seq(svc, s, 18), [...period, ...period]);
  });
  it("steps cw by the gcd: weights 4:2 give A A B", () => {
    const { svc, s } = svcWith("wrr", [
      { name: "A", weight: 4 },
      { name: "B", weight: 2 },
    ]);
    assert.deepEqual(seq(svc, s, 6), ["A", "A", "B", "A", "A", "B"]);
  });
  it("skips overloaded dests and returns null when all are overloaded or quiesced", () => {
    const { svc, s, by } = svcWith("wrr", [
      { name: "A", weight: 2, overload: true },
      { name: "B", weight: 1 },
    ]);
    assert.deepEqual(seq(svc, s, 3), ["B", "B", "B"]);
    by("B").flags |= DEST_F_OVERLOAD;
    assert.equal(pick(svc, s), null);
    const q = svcWith("wrr", [{ name: "Z", weight: 0 }]);
    assert.equal(pick(q.svc, q.s), null);
  });
  it("restarts from the head after a dest change", () => {
    const { svc, s, by } = svcWith("wrr", [
      { name: "A", weight: 1 },
      { name: "B", weight: 1 },
      { name: "C", weight: 1 },
    ]);
    assert.deepEqual(seq(svc, s, 2), ["A", "B"]);
    by("C").weight = 1;
    s.updDest?.(svc, by("C"));
    assert.deepEqual(seq(svc, s, 2), ["A", "B"]);
  });
});

type Row = { why: string; list: Spec[]; want: string | null };

function runTable(sched: string, rows: Row[]): void {
  describe(sched, () => {
    for (const r of rows) {
      it(r.why, () => {
        const { svc, s } = svcWith(sched, r.list);
        assert.equal(pick(svc, s), r.want);
      });
    }
  });
}

runTable("lc", [
  { why: "ties keep the first in list order", list: [{ name: "A" }, { name: "B" }], want: "A" },
  {
    why: "overhead is active*256 + inactive (300 inactive > 1 active)",
    list: [
      { name: "A", inactive: 300 },
      { name: "B", active: 1 },
    ],
    want: "B",
  },
  {
    why: "ignores weight beyond quiescing",
    list: [
      { name: "A", weight: 100, active: 2 },
      { name: "B", weight: 1, active: 1 },
    ],
    want: "B",
  },
  {
    why: "skips weight 0 and overloaded dests",
    list: [
      { name: "A", weight: 0 },
      { name: "B", overload: true },
      { name: "C", active: 5 },
    ],
    want: "C",
  },
  { why: "null when nothing is usable", list: [{ name: "A", weight: 0 }], want: null },
]);

runTable("wlc", [
  { why: "ties keep the first in list order", list: [{ name: "A" }, { name: "B" }], want: "A" },
  {
    why: "overhead/weight: 256/1 > 256/2",
    list: [
      { name: "A", weight: 1, active: 1 },
      { name: "B", weight: 2, active: 1 },
    ],
    want: "B",
  },
  {
    why: "equal ratios are a tie (512/2 = 256/1): first wins",
    list: [
      { name: "A", weight: 2, active: 2 },
      { name: "B", weight: 1, active: 1 },
    ],
    want: "A",
  },
  {
    why: "inactive connections count 1/256 of an active one",
    list: [
      { name: "A", active: 1 },
      { name: "B", inactive: 255 },
    ],
    want: "B",
  },
  {
    why: "skips weight 0 and overloaded dests, even idle ones",
    list: [
      { name: "A", weight: 0 },
      { name: "B", overload: true },
      { name: "C", active: 9 },
      { name: "D", weight: 0 },
    ],
    want: "C",
  },
  { why: "null when nothing is usable", list: [{ name: "A", overload: true }], want: null },
]);

runTable("sed", [
  {
    why: "(active+1)/weight: 1/1 > 2/3 picks the heavier busy dest where wlc would not",
    list: [
      { name: "A", weight: 1 },
      { name: "B", weight: 3, active: 1 },
    ],
    want: "B",
  },
  {
    why: "inactive connections are ignored",
    list: [
      { name: "A", inactive: 1000 },
      { name: "B", active: 1 },
    ],
    want: "A",
  },
  {
    why: "equal expected delay keeps the first (2/2 = 1/1)",
    list: [
      { name: "A", weight: 2, active: 1 },
      { name: "B", weight: 1 },
    ],
    want: "A",
  },
  {
    why: "skips quiesced dests",
    list: [
      { name: "A", weight: 0 },
      { name: "B", active: 3 },
    ],
    want: "B",
  },
]);

runTable("nq", [
  {
    why: "the first idle dest wins at once, whatever the weights",
    list: [
      { name: "A", weight: 9, active: 1 },
      { name: "B", weight: 1, inactive: 50 },
      { name: "C", weight: 5 },
    ],
    want: "B",
  },
  {
    why: "with nobody idle, the shortest expected delay: 2/1 > 3/3",
    list: [
      { name: "A", weight: 1, active: 1 },
      { name: "B", weight: 3, active: 2 },
    ],
    want: "B",
  },
  {
    why: "ties keep the first",
    list: [
      { name: "A", weight: 1, active: 1 },
      { name: "B", weight: 1, active: 1 },
    ],
    want: "A",
  },
  {
    why: "an idle but quiesced or overloaded dest is not taken",
    list: [
      { name: "A", weight: 0 },
      { name: "B", overload: true },
      { name: "C", active: 4 },
    ],
    want: "C",
  },
]);

runTable("fo", [
  {
    why: "highest weight; equal weights keep the first",
    list: [
      { name: "A", weight: 2 },
      { name: "B", weight: 5 },
      { name: "C", weight: 5 },
    ],
    want: "B",
  },
  {
    why: "connections do not matter",
    list: [
      { name: "A", weight: 5, active: 1000 },
      { name: "B", weight: 4 },
    ],
    want: "A",
  },
  {
    why: "fails over past an overloaded top dest",
    list: [
      { name: "A", weight: 5, overload: true },
      { name: "B", weight: 4 },
    ],
    want: "B",
  },
  { why: "null when all are quiesced", list: [{ name: "A", weight: 0 }], want: null },
]);

runTable("ovf", [
  {
    why: "highest weight while active <= weight",
    list: [
      { name: "A", weight: 2 },
      { name: "B", weight: 3, active: 3 },
    ],
    want: "B",
  },
  {
    why: "overflows when active exceeds weight; ties keep the first",
    list: [
      { name: "A", weight: 3, active: 4 },
      { name: "B", weight: 2, active: 2 },
      { name: "C", weight: 2 },
    ],
    want: "B",
  },
  {
    why: "skips quiesced and overloaded dests",
    list: [
      { name: "A", weight: 0 },
      { name: "B", weight: 9, overload: true },
      { name: "C", weight: 1 },
    ],
    want: "C",
  },
  { why: "null when everybody overflowed", list: [{ name: "A", weight: 1, active: 2 }], want: null },
]);

describe("twos", () => {
  function withRandom(values: number[]): SchedContext {
    let i = 0;
    return { now: 0, random: () => values[i++] };
  }
  const list: Spec[] = [
    { name: "A", weight: 1, active: 1 },
    { name: "B", weight: 2 },
    { name: "C", weight: 3 },
  ];
  // total = 1 + 2 + 3 + 1 = 7; r -= weight along the list, picked at r <= 0.
  const rows: { r: [number, number]; want: string; why: string }[] = [
    { r: [0, 6], want: "C", why: "r1=0 → A, r2=6 → C (6-1-2-3=0); C is less loaded" },
    { r: [7, 13], want: "C", why: "values are taken modulo the total (7→0, 13→6)" },
    { r: [3, 2], want: "B", why: "r1=3 → B (3-1-2=0), r2=2 → B" },
    { r: [1, 0], want: "A", why: "both land on A" },
    { r: [2, 4], want: "B", why: "B (2-1-2<0) vs C (4-1-2-3<0), both idle: no strict win, first choice" },
  ];
  for (const row of rows) {
    it(row.why, () => {
      const { svc, s } = svcWith("twos", list);
      assert.equal(pick(svc, s, withRandom(row.r)), row.want);
    });
  }
  it("compares overhead normalised by weight: w2*oh1 > w1*oh2", () => {
    const { svc, s } = svcWith("twos", [
      { name: "A", weight: 1, active: 1 },
      { name: "B", weight: 3, active: 2 },
    ]);
    // total 5: r1=0 → A (oh 256, w 1), r2=4 → B (oh 512, w 3): 3*256 > 1*512 → B.
    assert.equal(pick(svc, s, withRandom([0, 4])), "B");
  });
  it("ignores quiesced and overloaded dests and returns null without any usable", () => {
    const { svc, s, by } = svcWith("twos", [
      { name: "A", weight: 0 },
      { name: "B", weight: 1, overload: true },
      { name: "C", weight: 1 },
    ]);
    assert.equal(pick(svc, s, withRandom([1, 1])), "C");
    by("C").weight = 0;
    assert.equal(pick(svc, s, withRandom([1, 1])), null);
  });
});
