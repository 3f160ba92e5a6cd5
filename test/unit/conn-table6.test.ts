// The connection table with IPv6 entries (docs/dev-notes.md "IPv6 design"): folds in the hot
// record, the IPv6 flags of each side in H_META, the words in the side record. The entries here
// are chosen so that their folds collide on purpose — an IPv4 address equal to the folds of two
// IPv6 addresses — with the same ports, so every entry sits in one bucket and only the family flag
// and the words tell them apart: no lookup may ever match across families.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  A6_CADDR,
  A6_DADDR,
  A6_LADDR,
  A6_VADDR,
  CONN_F_DEST_IPV6,
  CONN_F_IPV6,
  CONN_F_TEMPLATE,
  ConnTable,
} from "../../src/core/conn/table.js";
import { fold6, w6 } from "../support/packet6.js";

const TCP = 6;
const UDP = 17;
const MASQ = 0;
const ROUTE = 3;
const FULLNAT = 5;

// Two clients, two VIPs, two real servers: each pair of IPv6 addresses has one fold, and the IPv4
// address of the same role is that fold.
const C6A = "2001:db8::1";
const C6B = "2001:db9::"; // [0x20010db9, 0, 0, 0]: the fold of C6A
const V6A = "2001:db8:f::80";
const V6B = "2001:db8:f:80::"; // words 0x20010db8, 0x000f0080, 0, 0 vs 0x20010db8, 0x000f0000, 0, 0x80
const R6A = "2001:db8:1::11";
const R6B = "2001:db8:1:11::";
const C4 = fold6(C6A);
const V4 = fold6(V6A);
const R4 = fold6(R6A);

type Side = { v4: number } | { v6: string };

interface Spec {
  proto?: number;
  c: Side;
  cport?: number;
  v: Side;
  vport?: number;
  d: Side;
  dport?: number;
  /** Default: the client (NAT). */
  l?: Side;
  lport?: number;
  flags?: number;
}

function addr4(s: Side): number {
  return "v4" in s ? s.v4 | 0 : fold6(s.v6) | 0;
}

/** An entry as life.ts makes one: setEntry, then the IPv6 sides, then hash. */
function add(t: ConnTable, s: Spec): number {
  const cx = t.alloc();
  assert.ok(cx >= 0, "table full");
  const l = s.l ?? s.c;
  const cport = s.cport ?? 40000;
  t.setEntry(
    cx,
    s.proto ?? TCP,
    addr4(s.c),
    cport,
    addr4(s.v),
    s.vport ?? 80,
    addr4(s.d),
    s.dport ?? 8080,
    addr4(l),
    s.lport ?? cport,
    s.flags ?? MASQ,
    7,
  );
  if ("v6" in s.c && "v6" in s.v) t.setClient6(cx, w6(s.c.v6), w6(s.v.v6));
  if ("v6" in s.d && "v6" in l) t.setServer6(cx, w6(s.d.v6), w6(l.v6));
  t.hash(cx);
  return cx;
}

/** The client's packet, in its family. */
function lookupIn(t: ConnTable, c: Side, v: Side, cport = 40000, vport = 80, proto = TCP): number {
  if ("v6" in c && "v6" in v) return t.lookupIn6(proto, w6(c.v6), cport, w6(v.v6), vport);
  return t.lookupIn(proto, addr4(c), cport, addr4(v), vport);
}

/** The real server's reply d:dport → l:lport, in its family. */
function lookupOut(t: ConnTable, d: Side, l: Side, dport = 8080, lport = 40000, proto = TCP): number {
  if ("v6" in d && "v6" in l) return t.lookupOut6(proto, w6(d.v6), dport, w6(l.v6), lport);
  return t.lookupOut(proto, addr4(d), dport, addr4(l), lport);
}

const c4 = { v4: C4 };
const v4 = { v4: V4 };
const r4 = { v4: R4 };
const c6a = { v6: C6A };
const c6b = { v6: C6B };
const v6a = { v6: V6A };
const v6b = { v6: V6B };
const r6a = { v6: R6A };
const r6b = { v6: R6B };

describe("conn table: IPv6 entries beside IPv4 ones whose folds collide", () => {
  it("the chosen addresses do collide (the test means what it says)", () => {
    assert.equal(fold6(C6B), C4);
    assert.equal(fold6(V6B), V4);
    assert.equal(fold6(R6B), R4);
    assert.notDeepEqual(w6(C6A), w6(C6B));
  });

  // One table holding, in one IN bucket: an IPv4 NAT entry, two IPv6 NAT entries and a NAT64-like
  // entry (IPv6 client side, IPv4 server side), all with the same folds and ports.
  const entries: Array<{ name: string; spec: Spec }> = [
    { name: "v4", spec: { c: c4, v: v4, d: r4 } },
    { name: "v6a", spec: { c: c6a, v: v6a, d: r6a } },
    { name: "v6b", spec: { c: c6b, v: v6b, d: r6b } },
    { name: "nat64", spec: { c: c6a, v: v6b, d: r4, l: { v4: C4 }, lport: 1025, flags: FULLNAT } },
  ];
  function table(): { t: ConnTable; ix: Record<string, number> } {
    const t = new ConnTable(64);
    const ix: Record<string, number> = {};
    for (const e of entries) ix[e.name] = add(t, e.spec);
    return { t, ix };
  }

  const inCases: Array<{ name: string; c: Side; v: Side; want: string | null }> = [
    { name: "IPv4 client → IPv4 VIP", c: c4, v: v4, want: "v4" },
    { name: "IPv6 client A → VIP A", c: c6a, v: v6a, want: "v6a" },
    { name: "IPv6 client B → VIP B", c: c6b, v: v6b, want: "v6b" },
    { name: "IPv6 client A → VIP B (the NAT64 entry)", c: c6a, v: v6b, want: "nat64" },
    { name: "IPv6 client B → VIP A (same folds, no entry)", c: c6b, v: v6a, want: null },
    { name: "an IPv4-mapped client with the same fold", c: { v6: "::ffff:2001:f246" }, v: v6a, want: null },
  ];
  for (const c of inCases) {
    it(`lookup IN: ${c.name} → ${c.want ?? "miss"}`, () => {
      const { t, ix } = table();
      assert.equal(lookupIn(t, c.c, c.v), c.want === null ? -1 : ix[c.want]);
    });
  }

  const outCases: Array<{ name: string; d: Side; l: Side; lport?: number; want: string | null }> = [
    { name: "IPv4 reply RIP → client", d: r4, l: c4, want: "v4" },
    { name: "IPv6 reply RIP A → client A", d: r6a, l: c6a, want: "v6a" },
    { name: "IPv6 reply RIP B → client B", d: r6b, l: c6b, want: "v6b" },
    { name: "IPv6 reply RIP A → client B (same folds)", d: r6a, l: c6b, want: null },
    {
      name: "IPv4 reply RIP → LIP:1025 (the NAT64 entry's server side)",
      d: r4,
      l: c4,
      lport: 1025,
      want: "nat64",
    },
  ];
  for (const c of outCases) {
    it(`lookup OUT: ${c.name} → ${c.want ?? "miss"}`, () => {
      const { t, ix } = table();
      assert.equal(lookupOut(t, c.d, c.l, 8080, c.lport ?? 40000), c.want === null ? -1 : ix[c.want]);
    });
  }

  it("every entry shares the one IN bucket (the collisions are real)", () => {
    const { t, ix } = table();
    const b = new Set(Object.values(ix).map((cx) => t.bucketsOf(cx).in));
    assert.equal(b.size, 1);
    assert.equal(t.maxChain().in, entries.length);
  });

  it("an IPv4 lookup misses once the IPv4 entry is gone, though IPv6 ones with its key remain", () => {
    const { t, ix } = table();
    t.free(ix.v4);
    assert.equal(lookupIn(t, c4, v4), -1);
    assert.equal(lookupOut(t, r4, c4), -1);
    assert.equal(lookupIn(t, c6a, v6a), ix.v6a);
  });

  it("an IPv6 lookup misses once its entry is gone, though the IPv4 one with its fold remains", () => {
    const { t, ix } = table();
    t.free(ix.v6a);
    assert.equal(lookupIn(t, c6a, v6a), -1);
    assert.equal(lookupOut(t, r6a, c6a), -1);
    assert.equal(lookupIn(t, c4, v4), ix.v4);
  });

  it("flags and getters say which side is IPv6 and hold its words", () => {
    const { t, ix } = table();
    const w = new Int32Array(4);
    const rows = [
      { name: "v4", c6: false, d6: false },
      { name: "v6a", c6: true, d6: true },
      { name: "nat64", c6: true, d6: false },
    ];
    for (const r of rows) {
      const cx = ix[r.name];
      assert.equal(t.isIpv6(cx), r.c6, r.name);
      assert.equal(t.isDestIpv6(cx), r.d6, r.name);
      assert.equal((t.flagsOf(cx) & CONN_F_IPV6) !== 0, r.c6);
      assert.equal((t.flagsOf(cx) & CONN_F_DEST_IPV6) !== 0, r.d6);
    }
    const cx = ix.v6b;
    assert.equal(t.caddrOf(cx), C4);
    assert.equal(t.vaddrOf(cx), V4);
    assert.equal(t.daddrOf(cx), R4);
    assert.equal(t.laddrOf(cx), C4);
    for (const [which, a] of [
      [A6_CADDR, C6B],
      [A6_VADDR, V6B],
      [A6_DADDR, R6B],
      [A6_LADDR, C6B],
    ] as const) {
      t.addr6Of(cx, which, w);
      assert.deepEqual(w, w6(a));
      const all = t.addr6Words;
      assert.ok(all !== null);
      assert.deepEqual(all.subarray((cx << 4) + which, (cx << 4) + which + 4), w6(a));
    }
  });

  it("the state and flag writes of the data path keep the IPv6 flags", () => {
    const { t, ix } = table();
    const cx = ix.v6a;
    t.setStateFlags(cx, 3, t.flagsOf(cx) | 0x100);
    t.setFlags(cx, t.flagsOf(cx) & ~0x100);
    t.setState(cx, 4);
    assert.equal(lookupIn(t, c6a, v6a), cx);
    assert.equal(lookupOut(t, r6a, c6a), cx);
  });
});

describe("conn table: IPv6 templates", () => {
  // Templates <proto, snet, 0, vaddr, vport>: the kernel's key, with the IPv6 snet already masked.
  const snet = "2001:db8::";
  const rows: Array<{ name: string; spec: Spec; lookup: (t: ConnTable) => number; hit: boolean }> = [
    {
      name: "an IPv6 template is found by its IPv6 key",
      spec: { c: { v6: snet }, cport: 0, v: v6a, d: r6a, flags: CONN_F_TEMPLATE | ROUTE },
      lookup: (t) => t.lookupTemplate6(TCP, w6(snet), w6(V6A), 80),
      hit: true,
    },
    {
      name: "not by the IPv4 key equal to its folds",
      spec: { c: { v6: snet }, cport: 0, v: v6a, d: r6a, flags: CONN_F_TEMPLATE | ROUTE },
      lookup: (t) => t.lookupTemplate(TCP, fold6(snet), V4, 80),
      hit: false,
    },
    {
      name: "an IPv4 template is not found by an IPv6 key with its folds",
      spec: { c: { v4: fold6(snet) }, cport: 0, v: v4, d: r4, flags: CONN_F_TEMPLATE | ROUTE },
      lookup: (t) => t.lookupTemplate6(TCP, w6(snet), w6(V6A), 80),
      hit: false,
    },
    {
      name: "an IPv6 fwmark template (the mark in word 0, as the kernel's union) under IPPROTO_IP",
      spec: {
        proto: 0,
        c: { v6: snet },
        cport: 0,
        v: { v6: "0:7::" },
        vport: 0,
        d: r6a,
        flags: CONN_F_TEMPLATE | ROUTE,
      },
      lookup: (t) => t.lookupTemplate6(0, w6(snet), Int32Array.of(7, 0, 0, 0), 0),
      hit: true,
    },
    {
      name: "an IPv6 connection is no template",
      spec: { c: { v6: snet }, cport: 0, v: v6a, d: r6a, flags: ROUTE },
      lookup: (t) => t.lookupTemplate6(TCP, w6(snet), w6(V6A), 80),
      hit: false,
    },
    {
      name: "an IPv6 template is no connection",
      spec: { c: { v6: snet }, cport: 0, v: v6a, d: r6a, flags: CONN_F_TEMPLATE | ROUTE },
      lookup: (t) => t.lookupIn6(TCP, w6(snet), 0, w6(V6A), 80),
      hit: false,
    },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const t = new ConnTable(16);
      const cx = add(t, r.spec);
      assert.equal(r.lookup(t), r.hit ? cx : -1);
    });
  }

  it("a template is not in OUT, an IPv6 DR connection neither", () => {
    const t = new ConnTable(16);
    const ct = add(t, { c: c6a, cport: 0, v: v6a, d: r6a, flags: CONN_F_TEMPLATE | MASQ });
    const dr = add(t, { c: c6b, v: v6a, d: r6a, flags: ROUTE });
    assert.equal(t.bucketsOf(ct).out, -1);
    assert.equal(t.bucketsOf(dr).out, -1);
  });
});

describe("conn table: IPv6 memory and expiry", () => {
  it("the IPv6 record (64 bytes an entry) is allocated with the first IPv6 entry only", () => {
    const t = new ConnTable(1024);
    const before = t.bytes;
    assert.equal(t.addr6Words, null);
    add(t, { c: c4, v: v4, d: r4 });
    assert.equal(t.bytes, before);
    assert.equal(t.lookupIn6(TCP, w6(C6A), 40000, w6(V6A), 80), -1);
    add(t, { c: c6a, v: v6a, d: r6a });
    assert.equal(t.bytes - before, 1024 * 64);
  });

  it("entries expire alike; an index reused by the other family matches only in it", () => {
    const t = new ConnTable(4);
    const a = add(t, { c: c6a, v: v6a, d: r6a, proto: UDP });
    const b = add(t, { c: c4, v: v4, d: r4, proto: UDP });
    t.arm(a, 1000, 0);
    t.arm(b, 2000, 0);
    const fired: number[] = [];
    const cb = (cx: number): void => {
      fired.push(cx);
      t.free(cx);
    };
    t.advance(1500, cb);
    assert.deepEqual(fired, [a]);
    assert.equal(lookupIn(t, c6a, v6a, 40000, 80, UDP), -1);
    assert.equal(lookupIn(t, c4, v4, 40000, 80, UDP), b);
    // The freed IPv6 index comes back for an IPv4 entry with the same folds: no IPv6 lookup sees it.
    const c = add(t, { c: c4, v: v4, d: r4, proto: UDP, cport: 1 });
    assert.equal(c, a);
    assert.equal(t.isIpv6(c), false);
    assert.equal(t.lookupIn6(UDP, w6(C6A), 1, w6(V6A), 80), -1);
    assert.equal(t.lookupIn(UDP, C4, 1, V4, 80), c);
    t.advance(2500, cb);
    assert.deepEqual(fired, [a, b]);
  });

  it("the table-full defence takes the oldest embryonic entry, IPv6 or not", () => {
    const t = new ConnTable(2);
    const a = add(t, { c: c6a, v: v6a, d: r6a });
    const b = add(t, { c: c4, v: v4, d: r4 });
    t.setState(a, 3);
    t.noteEmbryonic(a);
    t.setState(b, 3);
    t.noteEmbryonic(b);
    assert.equal(t.alloc(), -1);
    assert.equal(t.oldestEmbryonic(), a);
  });
});

describe("conn table: IPv4 and IPv6 lookups against a model (properties)", () => {
  // Addresses from a tiny pool whose folds collide a lot: the words are drawn from {0, 1, 2, 3}.
  const word = fc.constantFrom(0, 1, 2, 3);
  const a6 = fc.tuple(word, word, word, word).map((w) => Int32Array.from(w));
  const a4 = fc.constantFrom(0, 1, 2, 3);
  const key = fc.record({
    v6: fc.boolean(),
    c6: a6,
    v6a: a6,
    c4: a4,
    v4a: a4,
    cport: fc.constantFrom(1, 2),
  });

  it("a lookup finds exactly the entry with its family and key, whatever collides", () => {
    fc.assert(
      fc.property(
        fc.array(key, { minLength: 1, maxLength: 40 }),
        fc.array(key, { maxLength: 40 }),
        (adds, probes) => {
          const t = new ConnTable(64);
          const model = new Map<string, number>();
          const id = (k: (typeof adds)[number]): string =>
            k.v6 ? `6/${k.c6.join(",")}/${k.v6a.join(",")}/${k.cport}` : `4/${k.c4}/${k.v4a}/${k.cport}`;
          for (const k of adds) {
            if (model.has(id(k))) continue;
            const cx = t.alloc();
            if (k.v6) {
              t.setEntry(cx, TCP, 0, k.cport, 0, 80, 0, 80, 0, k.cport, MASQ, 0);
              t.setClient6(cx, k.c6, k.v6a);
              t.setServer6(cx, k.v6a, k.c6);
            } else t.setEntry(cx, TCP, k.c4, k.cport, k.v4a, 80, k.v4a, 80, k.c4, k.cport, MASQ, 0);
            t.hash(cx);
            model.set(id(k), cx);
          }
          for (const k of [...adds, ...probes]) {
            const want = model.get(id(k)) ?? -1;
            const gotIn = k.v6
              ? t.lookupIn6(TCP, k.c6, k.cport, k.v6a, 80)
              : t.lookupIn(TCP, k.c4, k.cport, k.v4a, 80);
            const gotOut = k.v6
              ? t.lookupOut6(TCP, k.v6a, 80, k.c6, k.cport)
              : t.lookupOut(TCP, k.v4a, 80, k.c4, k.cport);
            assert.equal(gotIn, want);
            assert.equal(gotOut, want);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("conn table: read-ahead heads for IPv6 entries", () => {
  it("headIn and headOut over the folds name an IPv6 entry's buckets, as lookupIn6/lookupOut6 walk them", () => {
    const t = new ConnTable(64, 3);
    const cx = add(t, { c: c6a, v: v6a, d: r6a });
    assert.equal(t.headIn(TCP, C4, 40000, V4, 80), cx);
    assert.equal(lookupIn(t, c6a, v6a), cx);
    assert.equal(t.headOut(TCP, R4, 8080, C4, 40000), cx);
    assert.equal(lookupOut(t, r6a, c6a), cx);
    // touch6 reads the IPv6 words (the client's first), touch the hot line (the fold).
    assert.equal(t.touch6(cx), w6(C6A)[0]);
    assert.equal(t.touch(cx), C4 | 0);
    assert.equal(t.touch6(-1), 0);
  });
});
