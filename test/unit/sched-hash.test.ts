// dh, sh, mh and their hash primitives. Bucket and slot expectations are computed by hand from
// hash_32 (GOLDEN_RATIO_32 = 0x61c88647) and the kernel's table-filling loops.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEST_F_AVAILABLE, Dest } from "../../src/core/dest.js";
import { Flow, IPPROTO_TCP, IPPROTO_UDP } from "../../src/core/packet/flow.js";
import { findScheduler } from "../../src/core/sched/index.js";
import { MH_TAB_SIZE } from "../../src/core/sched/mh.js";
import type { SchedContext, Scheduler } from "../../src/core/sched/types.js";
import { hash32, hsiphash1u32, sipHashU32 } from "../../src/core/sched/util.js";
import { Service, SVC_F_SCHED1, SVC_F_SCHED2 } from "../../src/core/service.js";

const ctx: SchedContext = { now: 0, random: () => 0 };

function setup(sched: string, weights: number[], flags = 0): { svc: Service; s: Scheduler; ds: Dest[] } {
  const svc = new Service(IPPROTO_TCP, 0x0a000001, 80);
  svc.flags = flags;
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

function flowFrom(saddr: number, sport = 1234, daddr = 0x0a000001, proto = IPPROTO_TCP): Flow {
  const f = new Flow();
  f.proto = proto;
  f.saddr = saddr >>> 0;
  f.daddr = daddr >>> 0;
  f.sport = sport;
  f.dport = 80;
  return f;
}

describe("hash primitives", () => {
  it("hash_32 multiplies by GOLDEN_RATIO_32 and keeps the top bits", () => {
    assert.equal(hash32(0, 8), 0);
    assert.equal(hash32(1, 8), 0x61);
    // 0x0a000001 * 0x61c88647 mod 2^32 = 0xc6000000 + 0x61c88647 = 0x27c88647
    assert.equal(hash32(0x0a000001, 8), 0x27);
    assert.equal(hash32(6, 8), 0x4a);
  });
  it("hsiphash_1u32 matches the kernel's 64-bit self-test vector", () => {
    // lib/siphash_kunit.c: key 00..0f, hsiphash_1u32(0x03020100) = test_vectors_hsiphash[4]
    assert.equal(hsiphash1u32(0x03020100, 0x07060504, 0x03020100, 0x0f0e0d0c, 0x0b0a0908), 0x88d38328);
  });
  it("the same core with 2-4 rounds gives the SipHash-2-4 reference vector (low 32 bits)", () => {
    // reference vectors[4] = 0xcf2794e0277187b7 for message 00 01 02 03
    assert.equal(sipHashU32(0x03020100, 0x07060504, 0x03020100, 0x0f0e0d0c, 0x0b0a0908, 2, 4), 0x277187b7);
  });
});

describe("dh", () => {
  // Buckets are dealt one per dest in list order: bucket b → dests[b % n].
  it("maps a destination address to bucket hash_32(daddr, 8) of the dealt table", () => {
    const { svc, s, ds } = setup("dh", [1, 1, 1]);
    assert.equal(s.schedule(svc, flowFrom(9, 1, 1), ctx), ds[97 % 3]);
    assert.equal(s.schedule(svc, flowFrom(9, 1, 0x0a000001), ctx), ds[0x27 % 3]);
    assert.equal(s.schedule(svc, flowFrom(9, 1, 6), ctx), ds[0x4a % 3]);
  });
  it("sends the same destination address to the same dest, whatever the source, ignoring weights", () => {
    const { svc, s, ds } = setup("dh", [1, 100]);
    for (let src = 0; src < 20; src++) assert.equal(s.schedule(svc, flowFrom(src, src, 1), ctx), ds[97 % 2]);
  });
  it("has no fallback: a quiesced, overloaded or removed bucket dest gives null", () => {
    const { svc, s, ds } = setup("dh", [1, 1, 1]);
    const f = flowFrom(9, 1, 1);
    ds[1].weight = 0;
    assert.equal(s.schedule(svc, f, ctx), null);
    ds[1].weight = 1;
    ds[1].flags &= ~DEST_F_AVAILABLE;
    assert.equal(s.schedule(svc, f, ctx), null);
  });
  it("re-deals the buckets when a dest is removed", () => {
    const { svc, s, ds } = setup("dh", [1, 1, 1]);
    svc.dests.splice(0, 1);
    s.delDest?.(svc, ds[0]);
    assert.equal(s.schedule(svc, flowFrom(9, 1, 1), ctx), svc.dests[97 % 2]);
  });
  it("returns null without dests", () => {
    const { svc, s } = setup("dh", []);
    assert.equal(s.schedule(svc, flowFrom(1), ctx), null);
  });
});

describe("sh", () => {
  it("deals `weight` consecutive buckets per dest: weights 2:1 → A A B A A B ...", () => {
    const { svc, s, ds } = setup("sh", [2, 1]);
    const want = (bucket: number): Dest => (bucket % 3 < 2 ? ds[0] : ds[1]);
    for (const [saddr, bucket] of [
      [1, 0x61],
      [0x0a000001, 0x27],
      [6, 0x4a],
      [0, 0],
    ]) {
      assert.equal(s.schedule(svc, flowFrom(saddr), ctx), want(bucket), `saddr ${saddr}`);
    }
  });
  it("sends the same source to the same dest across ports and destinations", () => {
    const { svc, s, ds } = setup("sh", [1, 1, 1]);
    for (let p = 1000; p < 1010; p++) assert.equal(s.schedule(svc, flowFrom(6, p, p), ctx), ds[0x4a % 3]);
  });
  it("gives a weight-0 dest one bucket, which then yields null", () => {
    const { svc, s, ds } = setup("sh", [0, 1]);
    assert.equal(s.schedule(svc, flowFrom(1), ctx), ds[1]); // bucket 97, odd
    assert.equal(s.schedule(svc, flowFrom(0), ctx), null); // bucket 0 → quiesced A
  });
  it("sh-port hashes source address + source port (TCP/UDP), not for other protocols", () => {
    const { svc, s, ds } = setup("sh", [1, 1, 1], SVC_F_SCHED2);
    // saddr 0 + sport 6 → hash_32(6) = 0x4a → 74 % 3 = 2
    assert.equal(s.schedule(svc, flowFrom(0, 6), ctx), ds[2]);
    assert.equal(s.schedule(svc, flowFrom(0, 6, 1, IPPROTO_UDP), ctx), ds[2]);
    assert.equal(s.schedule(svc, flowFrom(0, 6, 1, 1), ctx), ds[0]);
    const plain = setup("sh", [1, 1, 1]);
    assert.equal(plain.s.schedule(plain.svc, flowFrom(0, 6), ctx), plain.ds[0]);
  });
  it("without sh-fallback an unavailable bucket dest gives null", () => {
    const { svc, s, ds } = setup("sh", [1, 1, 1]);
    ds[2].weight = 0;
    s.updDest?.(svc, ds[2]);
    assert.equal(s.schedule(svc, flowFrom(6), ctx), null);
  });
  it("sh-fallback walks buckets (offset + 2*ihash) & 255 from offset 0, as the kernel does", () => {
    // saddr 6 → ihash 74 (dest C). C overloaded → first retry bucket 148 → 148 % 3 = 1 → B
    // (a plain "next bucket" walk would give 75 → A).
    const { svc, s, ds } = setup("sh", [1, 1, 1], SVC_F_SCHED1);
    ds[2].flags |= 0x0002;
    assert.equal(s.schedule(svc, flowFrom(6), ctx), ds[1]);
    ds[1].flags |= 0x0002;
    assert.equal(s.schedule(svc, flowFrom(6), ctx), ds[0]);
    ds[0].flags |= 0x0002;
    assert.equal(s.schedule(svc, flowFrom(6), ctx), null);
  });
});

function lookupOf(svc: Service): (Dest | null)[] {
  return (svc.schedData as { lookup: (Dest | null)[] }).lookup;
}

function counts(svc: Service, ds: Dest[]): number[] {
  const c = ds.map(() => 0);
  for (const d of lookupOf(svc)) {
    assert.ok(d !== null);
    c[ds.indexOf(d)]++;
  }
  return c;
}

describe("mh", () => {
  it("uses the default prime table size 4093 (CONFIG_IP_VS_MH_TAB_INDEX = 12)", () => {
    assert.equal(MH_TAB_SIZE, 4093);
  });
  it("fills the table in rounds of `turns` slots per dest, so shares follow the weights exactly", () => {
    // equal weights: 4093 = 3*1364 + 1, the first dest in list order takes the extra slot
    const e = setup("mh", [1, 1, 1]);
    assert.deepEqual(counts(e.svc, e.ds), [1365, 1364, 1364]);
    const a = setup("mh", [1, 3]);
    assert.deepEqual(counts(a.svc, a.ds), [1024, 3069]); // 4093 = 4*1023 + 1
    const g = setup("mh", [20, 30]); // gcd 10 → turns 2:3; 4093 = 5*818 + 3
    assert.deepEqual(counts(g.svc, g.ds), [818 * 2 + 2, 818 * 3 + 1]);
    // max/gcd = 256 needs 9 bits > IP_VS_MH_TAB_BITS 6: rshift 3 → turns 1 (0, but non-zero
    // weight) and 32; 4093 = 33*124 + 1
    const r = setup("mh", [1, 256]);
    assert.deepEqual(counts(r.svc, r.ds), [125, 3968]);
  });
  it("builds the same table for the same dests, and maps a source to one dest", () => {
    const a = setup("mh", [1, 2, 3]);
    const b = setup("mh", [1, 2, 3]);
    assert.deepEqual(
      lookupOf(a.svc).map((d) => a.ds.indexOf(d!)),
      lookupOf(b.svc).map((d) => b.ds.indexOf(d!)),
    );
    const first = a.s.schedule(a.svc, flowFrom(0xc0a80001, 1), ctx);
    assert.ok(first !== null);
    for (let p = 2; p < 30; p++) assert.equal(a.s.schedule(a.svc, flowFrom(0xc0a80001, p), ctx), first);
  });
  it("mh-port spreads one source over dests by source port", () => {
    const { svc, s } = setup("mh", [1, 1, 1], SVC_F_SCHED2);
    const seen = new Set<Dest | null>();
    for (let p = 1000; p < 1064; p++) seen.add(s.schedule(svc, flowFrom(0xc0a80001, p), ctx));
    assert.equal(seen.size, 3);
  });
  it("keeps a quiesced dest's slots: its sources get null, or another dest with mh-fallback", () => {
    const { svc, s, ds } = setup("mh", [1, 1, 1]);
    const before = lookupOf(svc).slice();
    const owner = new Map<number, Dest | null>();
    for (let a = 0; a < 200; a++) owner.set(a, s.schedule(svc, flowFrom(0xc0a80000 + a), ctx));
    ds[1].weight = 0;
    s.updDest?.(svc, ds[1]);
    assert.deepEqual(lookupOf(svc), before);
    let moved = 0;
    for (const [a, d] of owner) {
      const now = s.schedule(svc, flowFrom(0xc0a80000 + a), ctx);
      if (d === ds[1]) {
        assert.equal(now, null);
        moved++;
      } else assert.equal(now, d);
    }
    assert.ok(moved > 0);
    svc.flags |= SVC_F_SCHED1;
    for (const [a, d] of owner) {
      const now = s.schedule(svc, flowFrom(0xc0a80000 + a), ctx);
      if (d === ds[1]) assert.ok(now === ds[0] || now === ds[2]);
      else assert.equal(now, d);
    }
  });
  it("removing a dest moves only a minority of the other dests' slots (Maglev disruption bound)", () => {
    const { svc, s, ds } = setup("mh", [1, 1, 1, 1, 1]);
    const before = lookupOf(svc).slice();
    svc.dests.splice(svc.dests.indexOf(ds[4]), 1);
    s.delDest?.(svc, ds[4]);
    const after = lookupOf(svc);
    let kept = 0;
    let others = 0;
    for (let i = 0; i < MH_TAB_SIZE; i++) {
      if (before[i] === ds[4]) continue;
      others++;
      if (after[i] === before[i]) kept++;
    }
    assert.ok(kept / others > 0.8, `kept ${kept}/${others}`);
    assert.ok(!after.includes(ds[4]));
  });
  it("empties the table when no dest has a weight, and returns null", () => {
    const { svc, s } = setup("mh", [0, 0]);
    assert.ok(lookupOf(svc).every((d) => d === null));
    assert.equal(s.schedule(svc, flowFrom(1), ctx), null);
  });
});
