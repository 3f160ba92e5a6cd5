import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  CONN_F_FWD_MASK,
  CONN_F_INACTIVE,
  CONN_F_NOOUTPUT,
  CONN_F_ONE_PACKET,
  CONN_F_TEMPLATE,
  CONN_F_TOA_SENT,
  ConnTable,
  TIMER_SLOTS,
  TIMER_TICK_MS,
} from "../../src/core/conn/table.js";

const TCP = 6;
const UDP = 17;
// Forwarding methods as the kernel's IP_VS_CONN_F_* low bits (FullNat = tsvs's 5).
const MASQ = 0;
const TUNNEL = 2;
const ROUTE = 3;
const FULLNAT = 5;

const ip = (a: number, b: number, c: number, d: number): number =>
  ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
const CIP = ip(192, 0, 2, 10);
const VIP = ip(10, 0, 0, 100);
const RIP = ip(10, 0, 1, 11);
const LIP = ip(10, 0, 1, 250);

interface Entry {
  proto?: number;
  caddr?: number;
  cport?: number;
  vaddr?: number;
  vport?: number;
  daddr?: number;
  dport?: number;
  laddr?: number;
  lport?: number;
  flags?: number;
}

/** Fills an entry the way the engine's newConn does (Masq: laddr:lport = caddr:cport) and hashes it. */
function add(t: ConnTable, e: Entry = {}): number {
  const cx = t.alloc();
  assert.ok(cx >= 0, "table full");
  t.setProto(cx, e.proto ?? TCP);
  t.setCaddr(cx, e.caddr ?? CIP);
  t.setCport(cx, e.cport ?? 40000);
  t.setVaddr(cx, e.vaddr ?? VIP);
  t.setVport(cx, e.vport ?? 80);
  t.setDaddr(cx, e.daddr ?? RIP);
  t.setDport(cx, e.dport ?? 8080);
  t.setLaddr(cx, e.laddr ?? t.caddrOf(cx));
  t.setLport(cx, e.lport ?? t.cportOf(cx));
  t.setFlags(cx, e.flags ?? MASQ);
  t.hash(cx);
  return cx;
}

describe("connection flags (IP_VS_CONN_F_*)", () => {
  it("has the kernel's values", () => {
    assert.deepEqual(
      [
        CONN_F_FWD_MASK,
        CONN_F_NOOUTPUT,
        CONN_F_INACTIVE,
        CONN_F_TEMPLATE,
        CONN_F_ONE_PACKET,
        CONN_F_TOA_SENT,
      ],
      [7, 0x80, 0x100, 0x1000, 0x2000, 0x8000],
    );
  });
});

describe("ConnTable lookups", () => {
  it("finds a Masq entry by the client's tuple and by the real server's reply", () => {
    const t = new ConnTable(16);
    const cx = add(t);
    assert.equal(t.lookupIn(TCP, CIP, 40000, VIP, 80), cx);
    // Reply RIP:8080 → CIP:40000.
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 40000), cx);
  });

  it("misses when any key field differs", () => {
    const t = new ConnTable(16);
    add(t);
    assert.equal(t.lookupIn(UDP, CIP, 40000, VIP, 80), -1);
    assert.equal(t.lookupIn(TCP, CIP + 1, 40000, VIP, 80), -1);
    assert.equal(t.lookupIn(TCP, CIP, 40001, VIP, 80), -1);
    assert.equal(t.lookupIn(TCP, CIP, 40000, VIP + 1, 80), -1);
    assert.equal(t.lookupIn(TCP, CIP, 40000, VIP, 81), -1);
    assert.equal(t.lookupOut(UDP, RIP, 8080, CIP, 40000), -1);
    assert.equal(t.lookupOut(TCP, RIP + 1, 8080, CIP, 40000), -1);
    assert.equal(t.lookupOut(TCP, RIP, 8081, CIP, 40000), -1);
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP + 1, 40000), -1);
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 40001), -1);
    // The request's own tuple is not a reply.
    assert.equal(t.lookupOut(TCP, CIP, 40000, VIP, 80), -1);
  });

  it("finds a FullNat entry's reply by <RIP:rport → LIP:lport>", () => {
    const t = new ConnTable(16);
    const cx = add(t, { flags: FULLNAT, laddr: LIP, lport: 5000 });
    assert.equal(t.lookupIn(TCP, CIP, 40000, VIP, 80), cx);
    assert.equal(t.lookupOut(TCP, RIP, 8080, LIP, 5000), cx);
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 40000), -1);
  });

  it("keeps DR and TUN entries out of the reply table (their replies bypass the director)", () => {
    const t = new ConnTable(16);
    const dr = add(t, { flags: ROUTE | CONN_F_NOOUTPUT, dport: 80, cport: 1 });
    const tun = add(t, { flags: TUNNEL | CONN_F_NOOUTPUT, dport: 80, cport: 2 });
    assert.equal(t.lookupIn(TCP, CIP, 1, VIP, 80), dr);
    assert.equal(t.lookupIn(TCP, CIP, 2, VIP, 80), tun);
    assert.equal(t.lookupOut(TCP, RIP, 80, CIP, 1), -1);
    assert.equal(t.lookupOut(TCP, RIP, 80, CIP, 2), -1);
  });

  it("separates templates from connections", () => {
    const t = new ConnTable(16);
    const ct = add(t, { cport: 0, dport: 8080, flags: MASQ | CONN_F_TEMPLATE });
    const cx = add(t, { cport: 0 });
    assert.equal(t.lookupTemplate(TCP, CIP, VIP, 80), ct);
    assert.equal(t.lookupIn(TCP, CIP, 0, VIP, 80), cx);
    t.free(cx);
    assert.equal(t.lookupIn(TCP, CIP, 0, VIP, 80), -1, "a template is never a connection");
    assert.equal(t.lookupTemplate(TCP, CIP, VIP, 80), ct);
    // Templates are not in the reply table even for Masq.
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 0), -1);
    t.free(ct);
    assert.equal(t.lookupTemplate(TCP, CIP, VIP, 80), -1);
  });

  it("finds fwmark templates <IPPROTO_IP, snet, fwmark, 0>", () => {
    const t = new ConnTable(16);
    const ct = add(t, {
      proto: 0,
      caddr: ip(192, 0, 2, 0),
      cport: 0,
      vaddr: 10,
      vport: 0,
      flags: CONN_F_TEMPLATE,
    });
    assert.equal(t.lookupTemplate(0, ip(192, 0, 2, 0), 10, 0), ct);
    assert.equal(t.lookupTemplate(TCP, ip(192, 0, 2, 0), 10, 0), -1);
  });

  it("rehashes after the key changed (template invalidation)", () => {
    const t = new ConnTable(16);
    const ct = add(t, { cport: 0, flags: CONN_F_TEMPLATE });
    t.unhash(ct);
    assert.equal(t.lookupTemplate(TCP, CIP, VIP, 80), -1);
    t.setVport(ct, 0xffff);
    t.setDport(ct, 0xffff);
    t.hash(ct);
    assert.equal(t.lookupTemplate(TCP, CIP, VIP, 80), -1);
    assert.equal(t.lookupTemplate(TCP, CIP, VIP, 0xffff), ct);
  });

  it("unhashes from the buckets it was hashed into even if the key changed meanwhile", () => {
    const t = new ConnTable(16);
    const a = add(t, { cport: 1 });
    const b = add(t, { cport: 2 });
    t.setCport(a, 999);
    t.setLport(a, 999);
    t.unhash(a);
    assert.equal(t.lookupIn(TCP, CIP, 1, VIP, 80), -1);
    assert.equal(t.lookupIn(TCP, CIP, 999, VIP, 80), -1);
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 1), -1);
    assert.equal(t.lookupIn(TCP, CIP, 2, VIP, 80), b);
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 2), b);
  });

  it("treats hash() of a hashed entry as a re-key", () => {
    const t = new ConnTable(16);
    const cx = add(t, { cport: 1 });
    t.setCport(cx, 2);
    t.setLport(cx, 2);
    t.hash(cx);
    assert.equal(t.lookupIn(TCP, CIP, 1, VIP, 80), -1);
    assert.equal(t.lookupIn(TCP, CIP, 2, VIP, 80), cx);
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 2), cx);
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 1), -1);
  });

  it("accepts addresses given as signed 32-bit integers", () => {
    const t = new ConnTable(16);
    const hi = ip(200, 1, 2, 3);
    const cx = add(t, { caddr: hi, laddr: hi });
    assert.equal(t.lookupIn(TCP, hi | 0, 40000, VIP, 80), cx);
    assert.equal(t.lookupOut(TCP, RIP, 8080, hi | 0, 40000), cx);
  });

  it("keeps every entry reachable with many entries in few buckets", () => {
    const t = new ConnTable(4096);
    const ids: number[] = [];
    for (let i = 0; i < 4096; i++) ids.push(add(t, { cport: 1024 + i, lport: 1024 + i }));
    assert.equal(t.alloc(), -1);
    for (let i = 0; i < 4096; i++) {
      assert.equal(t.lookupIn(TCP, CIP, 1024 + i, VIP, 80), ids[i]);
      assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 1024 + i), ids[i]);
    }
    // Remove every other one; the rest stay reachable.
    for (let i = 0; i < 4096; i += 2) t.free(ids[i]);
    for (let i = 0; i < 4096; i++) {
      const want = i % 2 === 0 ? -1 : ids[i];
      assert.equal(t.lookupIn(TCP, CIP, 1024 + i, VIP, 80), want);
      assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 1024 + i), want);
    }
  });
});

describe("ConnTable lookups against a model (property)", () => {
  it("agrees with a map of keys under random add, free and re-key", () => {
    const op = fc.oneof(
      fc.record({
        op: fc.constant("add" as const),
        proto: fc.constantFrom(TCP, UDP),
        c: fc.nat(3),
        cport: fc.nat(3),
        fwd: fc.constantFrom(MASQ, ROUTE, FULLNAT),
        tmpl: fc.boolean(),
      }),
      fc.record({ op: fc.constant("free" as const), i: fc.nat(31) }),
      fc.record({ op: fc.constant("rekey" as const), i: fc.nat(31), cport: fc.nat(3) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const t = new ConnTable(32);
        const live = new Set<number>();
        let lport = 1;
        for (const o of ops) {
          if (o.op === "add") {
            const cport = o.tmpl ? 0 : o.cport;
            const cx = t.alloc();
            if (cx < 0) continue;
            const fl = o.fwd | (o.tmpl ? CONN_F_TEMPLATE : 0);
            t.setProto(cx, o.proto);
            t.setCaddr(cx, CIP + o.c);
            t.setCport(cx, cport);
            t.setVaddr(cx, VIP);
            t.setVport(cx, 80);
            t.setDaddr(cx, RIP);
            t.setDport(cx, 8080);
            t.setLaddr(cx, o.fwd === FULLNAT ? LIP : CIP + o.c);
            t.setLport(cx, o.fwd === FULLNAT ? lport++ : cport);
            t.setFlags(cx, fl);
            t.hash(cx);
            live.add(cx);
          } else if (o.op === "free") {
            t.free(o.i);
            live.delete(o.i);
          } else if (live.has(o.i)) {
            t.unhash(o.i);
            t.setCport(o.i, (t.flagsOf(o.i) & CONN_F_TEMPLATE) !== 0 ? 0 : o.cport);
            if ((t.flagsOf(o.i) & CONN_F_FWD_MASK) === MASQ) t.setLport(o.i, t.cportOf(o.i));
            t.hash(o.i);
          }
          // Every live entry's key finds a live entry with that same key (duplicates allowed).
          for (const cx of live) {
            const tmpl = (t.flagsOf(cx) & CONN_F_TEMPLATE) !== 0;
            const k = [t.protoOf(cx), t.caddrOf(cx), t.cportOf(cx), t.vaddrOf(cx), t.vportOf(cx)] as const;
            const hit = tmpl
              ? t.lookupTemplate(k[0], k[1], k[3], k[4])
              : t.lookupIn(k[0], k[1], k[2], k[3], k[4]);
            assert.ok(live.has(hit), `in ${cx}`);
            assert.deepEqual(
              [t.protoOf(hit), t.caddrOf(hit), t.cportOf(hit), t.vaddrOf(hit), t.vportOf(hit)],
              [...k],
            );
            assert.equal((t.flagsOf(hit) & CONN_F_TEMPLATE) !== 0, tmpl);
            const out = t.lookupOut(
              t.protoOf(cx),
              t.daddrOf(cx),
              t.dportOf(cx),
              t.laddrOf(cx),
              t.lportOf(cx),
            );
            const fwd = t.flagsOf(cx) & CONN_F_FWD_MASK;
            if (!tmpl && (fwd === MASQ || fwd === FULLNAT)) {
              assert.ok(live.has(out), `out ${cx}`);
              assert.equal(t.lportOf(out), t.lportOf(cx));
              assert.equal(t.laddrOf(out), t.laddrOf(cx));
            }
          }
          // Nothing freed is ever found.
          for (let cx = 0; cx < 32; cx++) {
            if (live.has(cx) || !t.isAllocated(cx)) continue;
            assert.fail(`entry ${cx} allocated but not live`);
          }
          assert.equal(t.size, live.size);
        }
        // And a key nobody has misses.
        assert.equal(t.lookupIn(TCP, CIP + 9, 9, VIP, 80), -1);
        assert.equal(t.lookupOut(TCP, RIP, 8080, CIP + 9, 9), -1);
      }),
      { numRuns: 300 },
    );
  });
});

describe("ConnTable hash spread", () => {
  it("keeps chains short for 100k clients behind one VIP (sequential addresses and ports)", () => {
    const n = 100_000;
    const t = new ConnTable(n);
    for (let i = 0; i < n; i++) add(t, { caddr: ip(10, 1, 0, 0) + (i >>> 8), cport: 32768 + (i & 255) });
    // 100k keys in 131072 buckets: a uniform hash gives a longest chain around 8.
    const m = t.maxChain();
    assert.ok(m.in <= 12 && m.out <= 12, `longest chains in ${m.in} out ${m.out}`);
  });

  it("hashes a Masq entry's IN and OUT under one bucket number (ip_vs_conn_hashkey_param's two keys)", () => {
    const t = new ConnTable(1024);
    for (let i = 0; i < 64; i++) {
      const cx = add(t, { caddr: CIP + i, cport: 40000 + i, daddr: RIP + (i & 3) });
      const b = t.bucketsOf(cx);
      assert.equal(b.in, b.out, `entry ${i}`);
    }
  });

  it("spreads FULLNAT entries that share a LIP:lport across real servers (the whole reply tuple)", () => {
    const t = new ConnTable(1024);
    for (let i = 0; i < 256; i++)
      add(t, { flags: FULLNAT, caddr: CIP + i, daddr: RIP + i, laddr: LIP, lport: 5000 });
    const m = t.maxChain();
    // 256 keys in 1024 buckets: a uniform hash gives a longest chain around 3.
    assert.ok(m.out <= 6, `longest OUT chain ${m.out}`);
    for (let i = 0; i < 256; i++) assert.equal(t.lookupOut(TCP, RIP + i, 8080, LIP, 5000), i);
  });

  it("finds either method's reply while the table holds both, and each alone after the other goes", () => {
    const t = new ConnTable(64);
    const nat = add(t, { caddr: CIP, cport: 40000 });
    const fnat = add(t, { flags: FULLNAT, caddr: CIP + 1, cport: 40001, laddr: LIP, lport: 5000 });
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 40000), nat);
    assert.equal(t.lookupOut(TCP, RIP, 8080, LIP, 5000), fnat);
    assert.equal(t.headOut(TCP, RIP, 8080, CIP, 40000), nat);
    t.free(nat);
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 40000), -1);
    assert.equal(t.lookupOut(TCP, RIP, 8080, LIP, 5000), fnat);
    assert.equal(t.headOut(TCP, RIP, 8080, LIP, 5000), fnat);
    t.free(fnat);
    assert.equal(t.lookupOut(TCP, RIP, 8080, LIP, 5000), -1);
    assert.equal(t.headOut(TCP, RIP, 8080, LIP, 5000), -1);
    const again = add(t, { caddr: CIP + 2, cport: 40002 });
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP + 2, 40002), again);
  });

  it("spreads differently with another seed", () => {
    const a = new ConnTable(1024, 1);
    const b = new ConnTable(1024, 2);
    for (const t of [a, b]) for (let i = 0; i < 8; i++) add(t, { cport: 1000 + i });
    assert.notDeepEqual(a.bucketsOf(0), b.bucketsOf(0));
  });
});

describe("ConnTable allocation", () => {
  it("returns -1 when full and counts its entries", () => {
    const t = new ConnTable(3);
    assert.deepEqual([t.alloc(), t.alloc(), t.alloc()], [0, 1, 2]);
    assert.equal(t.size, 3);
    assert.equal(t.alloc(), -1);
    assert.equal(t.size, 3);
  });

  it("reuses freed entries, last freed first", () => {
    const t = new ConnTable(4);
    for (let i = 0; i < 4; i++) t.alloc();
    t.free(1);
    t.free(3);
    assert.equal(t.size, 2);
    assert.equal(t.alloc(), 3);
    assert.equal(t.alloc(), 1);
    assert.equal(t.alloc(), -1);
  });

  it("ignores a double free and out-of-range indices", () => {
    const t = new ConnTable(2);
    const a = t.alloc();
    t.free(a);
    t.free(a);
    t.free(-1);
    t.free(99);
    assert.equal(t.size, 0);
    assert.equal(t.alloc(), a);
    assert.equal(t.alloc(), 1);
    assert.equal(t.alloc(), -1);
  });

  it("free unhashes and disarms", () => {
    const t = new ConnTable(4);
    const cx = add(t);
    t.arm(cx, 1000, 0);
    t.free(cx);
    assert.equal(t.lookupIn(TCP, CIP, 40000, VIP, 80), -1);
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 40000), -1);
    assert.equal(t.isArmed(cx), false);
    const fired: number[] = [];
    t.advance(10_000, (c) => fired.push(c));
    assert.deepEqual(fired, []);
  });

  it("hands out a reset entry", () => {
    const t = new ConnTable(1);
    const cx = add(t, { flags: CONN_F_TEMPLATE });
    t.setState(cx, 5);
    t.setControl(cx, 7);
    t.setNControl(cx, 3);
    t.setInPkts(cx, 9);
    t.setOutPkts(cx, 9);
    t.free(cx);
    const again = t.alloc();
    assert.equal(again, cx);
    assert.deepEqual(
      [
        t.stateOf(cx),
        t.flagsOf(cx),
        t.controlOf(cx),
        t.nControlOf(cx),
        t.inPktsOf(cx),
        t.outPktsOf(cx),
        t.destOf(cx),
      ],
      [0, 0, -1, 0, 0, 0, -1],
    );
    assert.equal(t.isHashed(cx), false);
    assert.equal(t.isArmed(cx), false);
  });

  it("visits every allocated entry with forEach, even when the callback frees", () => {
    const t = new ConnTable(8);
    for (let i = 0; i < 8; i++) t.alloc();
    t.free(2);
    t.free(5);
    const seen: number[] = [];
    t.forEach((cx) => {
      seen.push(cx);
      t.free(cx);
    });
    assert.deepEqual(seen, [0, 1, 3, 4, 6, 7]);
    assert.equal(t.size, 0);
  });

  it("rejects a capacity that is not a positive integer", () => {
    assert.throws(() => new ConnTable(0), RangeError);
    assert.throws(() => new ConnTable(1.5), RangeError);
  });
});

describe("ConnTable timers", () => {
  /** Advances in `step` ms increments from `from` to `to`, recording [cx, now] for each firing. */
  function run(
    t: ConnTable,
    from: number,
    to: number,
    step: number,
    onFire?: (cx: number, now: number) => void,
  ) {
    const fired: Array<[number, number]> = [];
    for (let now = from; now <= to; now += step) {
      t.advance(now, (cx) => {
        fired.push([cx, now]);
        onFire?.(cx, now);
      });
    }
    return fired;
  }

  it("fires exactly the expired entries, each at its time", () => {
    const t = new ConnTable(16);
    const a = t.alloc();
    const b = t.alloc();
    const c = t.alloc();
    t.arm(a, 1000, 0);
    t.arm(b, 1050, 0);
    t.arm(c, 2000, 0);
    assert.equal(t.timeoutOf(a), 1000);
    assert.equal(t.expiresAt(b), 1050);
    assert.deepEqual(run(t, 0, 3000, 10), [
      [a, 1000],
      [b, 1050],
      [c, 2000],
    ]);
    assert.equal(t.isArmed(a), false, "disarmed before the callback");
  });

  it("never fires early within a tick: expiry is compared exactly", () => {
    const t = new ConnTable(4);
    const a = t.alloc();
    t.arm(a, 1, 1000); // expires at 1001, inside the tick [1000, 1100)
    assert.deepEqual(run(t, 1000, 1000, 1), []);
    assert.deepEqual(run(t, 1001, 1001, 1), [[a, 1001]]);
  });

  it("fires a 0 ms timer on the next advance at the same time", () => {
    const t = new ConnTable(4);
    const a = t.alloc();
    t.arm(a, 0, 5000);
    assert.deepEqual(run(t, 5000, 5000, 1), [[a, 5000]]);
  });

  const long: Array<[string, number]> = [
    ["15 min (ESTABLISHED)", 900_000],
    ["300 s (UDP, persistence)", 300_000],
    ["one wheel turn exactly", TIMER_SLOTS * TIMER_TICK_MS],
    ["one turn and a tick", TIMER_SLOTS * TIMER_TICK_MS + TIMER_TICK_MS],
    ["10 h", 36_000_000],
  ];
  for (const [label, ms] of long) {
    it(`fires a ${label} timeout at its time, not a wheel turn early`, () => {
      const t = new ConnTable(4);
      const a = t.alloc();
      const t0 = 1_700_000_000_000; // a wall-clock-sized epoch
      t.arm(a, ms, t0);
      // Step 100 ms: every slot is visited many times before the expiry.
      const fired = run(t, t0, t0 + ms + 1000, TIMER_TICK_MS);
      assert.deepEqual(fired, [[a, t0 + ms]]);
    });
  }

  it("fires everything due after a jump longer than a wheel turn", () => {
    const t = new ConnTable(64);
    const due: number[] = [];
    for (let i = 0; i < 50; i++) {
      const cx = t.alloc();
      t.arm(cx, i * 7919, 0); // spread over ~390 s, several turns
      due.push(cx);
    }
    const late = t.alloc();
    t.arm(late, 1_000_000, 0);
    const fired = run(t, 500_000, 500_000, 1).map(([cx]) => cx);
    assert.deepEqual(
      [...fired].sort((x, y) => x - y),
      due,
    );
    assert.equal(t.isArmed(late), true);
    assert.deepEqual(run(t, 999_999, 1_000_000, 1), [[late, 1_000_000]]);
  });

  it("re-arming replaces the previous expiry (earlier and later)", () => {
    const t = new ConnTable(4);
    const a = t.alloc();
    const b = t.alloc();
    t.arm(a, 900_000, 0); // ESTABLISHED ...
    t.arm(a, 10_000, 5000); // ... then CLOSE: now due at 15 s
    t.arm(b, 1000, 0);
    t.arm(b, 120_000, 500); // later instead
    const fired = run(t, 0, 200_000, 100);
    assert.deepEqual(fired, [
      [a, 15_000],
      [b, 120_500],
    ]);
    assert.equal(t.timeoutOf(a), 10_000);
    assert.equal(t.expiresAt(b), 120_500);
  });

  it("disarm stops a timer", () => {
    const t = new ConnTable(4);
    const a = t.alloc();
    t.arm(a, 100, 0);
    t.disarm(a);
    assert.deepEqual(run(t, 0, 10_000, 100), []);
  });

  it("lets the callback re-arm the entry it is given (a template waiting for its connections)", () => {
    const t = new ConnTable(4);
    const ct = t.alloc();
    t.arm(ct, 300_000, 0);
    let rounds = 0;
    const fired = run(t, 0, 1_000_000, 100, (cx, now) => {
      if (++rounds < 3) t.arm(cx, 60_000, now);
      else t.free(cx);
    });
    assert.deepEqual(fired, [
      [ct, 300_000],
      [ct, 360_000],
      [ct, 420_000],
    ]);
    assert.equal(t.size, 0);
  });

  it("does not loop when the callback re-arms with 0 ms: the entry fires again on the next advance", () => {
    const t = new ConnTable(4);
    const a = t.alloc();
    t.arm(a, 0, 100);
    let calls = 0;
    t.advance(100, (cx) => {
      calls++;
      t.arm(cx, 0, 100);
    });
    assert.equal(calls, 1);
    t.advance(100, (cx) => {
      calls++;
      t.free(cx);
    });
    assert.equal(calls, 2);
  });

  it("lets the callback free other entries due in the same walk (they do not fire)", () => {
    const t = new ConnTable(8);
    const ids = [t.alloc(), t.alloc(), t.alloc(), t.alloc()];
    for (const cx of ids) t.arm(cx, 1000, 0);
    const fired: number[] = [];
    t.advance(1000, (cx) => {
      fired.push(cx);
      t.free(cx);
      // Free the next one still pending, as the engine does when an entry takes another down.
      for (const o of ids) if (o !== cx && t.isAllocated(o) && t.isArmed(o)) return t.free(o);
    });
    assert.equal(fired.length, 2);
    assert.equal(t.size, 0);
  });

  it("lets the callback arm other entries, pending or not, into any slot", () => {
    const t = new ConnTable(8);
    const a = t.alloc();
    const b = t.alloc();
    const c = t.alloc();
    t.arm(a, 1000, 0);
    t.arm(b, 1000, 0);
    t.arm(c, 50_000, 0);
    const fired: Array<[number, number]> = [];
    const step = (now: number) =>
      t.advance(now, (cx) => {
        fired.push([cx, now]);
        if (cx === a || cx === b) {
          const other = cx === a ? b : a;
          if (t.isArmed(other)) t.arm(other, 2000, now); // postpone the pending sibling
          t.arm(c, 500, now); // pull a far one in
        }
      });
    for (let now = 0; now <= 60_000; now += 100) step(now);
    const first = fired[0][0];
    const other = first === a ? b : a;
    assert.deepEqual(fired, [
      [first, 1000],
      [c, 1500],
      [other, 3000],
      [c, 3500],
    ]);
  });

  it("an entry armed into the past fires on the next advance", () => {
    const t = new ConnTable(4);
    t.advance(10_000, () => {});
    const a = t.alloc();
    t.arm(a, 0, 2000); // the caller's now is behind the wheel
    assert.deepEqual(run(t, 10_000, 10_000, 1), [[a, 10_000]]);
  });

  it("keeps the wheel intact when a callback throws", () => {
    const t = new ConnTable(8);
    const ids = [t.alloc(), t.alloc(), t.alloc()];
    for (const cx of ids) t.arm(cx, 100, 0);
    assert.throws(() =>
      t.advance(100, () => {
        throw new Error("boom");
      }),
    );
    const fired: number[] = [];
    t.advance(100, (cx) => fired.push(cx));
    assert.equal(fired.length, 2, "the two that did not get their callback fire next time");
  });

  it("ignores advance() called from inside a callback", () => {
    const t = new ConnTable(4);
    const a = t.alloc();
    const b = t.alloc();
    t.arm(a, 100, 0);
    t.arm(b, 100, 0);
    const fired: number[] = [];
    t.advance(100, (cx) => {
      fired.push(cx);
      t.advance(200, (x) => fired.push(-x - 1));
    });
    assert.deepEqual([...fired].sort(), [a, b].sort());
  });

  it("survives a clock that goes back or is NaN", () => {
    const t = new ConnTable(4);
    const a = t.alloc();
    t.arm(a, 1000, 10_000);
    t.advance(5000, () => assert.fail("nothing is due"));
    t.advance(Number.NaN, () => assert.fail("nothing is due"));
    assert.deepEqual(run(t, 10_999, 11_000, 1), [[a, 11_000]]);
  });

  it("matches a model under random arms, frees and advances (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant("arm" as const), i: fc.nat(15), ms: fc.nat(400_000) }),
            fc.record({ op: fc.constant("free" as const), i: fc.nat(15) }),
            fc.record({ op: fc.constant("advance" as const), dt: fc.nat(250_000) }),
          ),
          { maxLength: 120 },
        ),
        (ops) => {
          const t = new ConnTable(16);
          const model = new Map<number, number>(); // cx -> expiry
          let now = 1_000_000;
          for (const o of ops) {
            if (o.op === "arm") {
              if (!t.isAllocated(o.i)) {
                // allocate until we get it (free list order is an implementation detail)
                while (!t.isAllocated(o.i)) if (t.alloc() < 0) break;
              }
              t.arm(o.i, o.ms, now);
              model.set(o.i, now + o.ms);
            } else if (o.op === "free") {
              t.free(o.i);
              model.delete(o.i);
            } else {
              now += o.dt;
              const fired: number[] = [];
              t.advance(now, (cx) => fired.push(cx));
              const want = [...model].filter(([, e]) => e <= now).map(([cx]) => cx);
              for (const cx of want) model.delete(cx);
              assert.deepEqual(
                [...fired].sort((x, y) => x - y),
                want.sort((x, y) => x - y),
              );
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("ConnTable timers with busy callbacks (property)", () => {
  it("fires exactly the due entries while callbacks free and re-arm themselves and others", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(20), fc.nat(200_000)), { minLength: 1, maxLength: 20 }),
        fc.array(fc.tuple(fc.nat(3), fc.nat(19), fc.integer({ min: 1, max: 300_000 })), {
          minLength: 1,
          maxLength: 40,
        }),
        fc.array(fc.nat(150_000), { minLength: 1, maxLength: 30 }),
        (arms, actions, steps) => {
          const cap = 20;
          const t = new ConnTable(cap);
          for (let i = 0; i < cap; i++) t.alloc();
          const model = new Map<number, number>();
          let now = 0;
          for (const [i, ms] of arms) {
            if (i >= cap) continue;
            t.arm(i, ms, now);
            model.set(i, ms);
          }
          let a = 0;
          for (const dt of steps) {
            now += dt;
            t.advance(now, (cx) => {
              const e = model.get(cx);
              assert.ok(e !== undefined && e <= now, `entry ${cx} fired at ${now}, model says ${e}`);
              model.delete(cx);
              const [kind, j, ms] = actions[a++ % actions.length];
              if (kind === 0) {
                t.free(cx);
              } else if (kind === 1) {
                t.arm(cx, ms, now);
                model.set(cx, now + ms);
              } else if (kind === 2 && t.isAllocated(j)) {
                t.free(j);
                model.delete(j);
              } else if (kind === 3 && t.isAllocated(j)) {
                t.arm(j, ms, now);
                model.set(j, now + ms);
              }
            });
            for (const [cx, e] of model) assert.ok(e > now, `entry ${cx} due at ${e} not fired by ${now}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("ConnTable embryonic entries (drop_entry's victims)", () => {
  const SYN_RECV = 3;
  const SYNACK = 10;
  const ESTABLISHED = 1;

  it("returns -1 when there is none", () => {
    const t = new ConnTable(4);
    assert.equal(t.oldestEmbryonic(), -1);
    t.alloc();
    assert.equal(t.oldestEmbryonic(), -1);
  });

  it("returns the oldest entry still in SYN_RECV or SYNACK, in note order", () => {
    const t = new ConnTable(8);
    const ids = [t.alloc(), t.alloc(), t.alloc(), t.alloc()];
    // Notes out of index order: 2, 0, 3, 1.
    for (const cx of [2, 0, 3, 1]) {
      t.setState(ids[cx], cx === 3 ? SYNACK : SYN_RECV);
      t.noteEmbryonic(ids[cx]);
    }
    assert.equal(t.oldestEmbryonic(), ids[2]);
    assert.equal(t.oldestEmbryonic(), ids[2], "asking does not consume");
    t.setState(ids[2], ESTABLISHED); // handshake completed
    assert.equal(t.oldestEmbryonic(), ids[0]);
    t.free(ids[0]); // dropped
    assert.equal(t.oldestEmbryonic(), ids[3]);
    t.free(ids[3]);
    assert.equal(t.oldestEmbryonic(), ids[1]);
    t.setState(ids[1], 6);
    assert.equal(t.oldestEmbryonic(), -1);
  });

  it("orders an entry by its latest note", () => {
    const t = new ConnTable(4);
    const a = t.alloc();
    const b = t.alloc();
    t.setState(a, SYN_RECV);
    t.noteEmbryonic(a);
    t.setState(b, SYN_RECV);
    t.noteEmbryonic(b);
    t.setState(a, SYNACK);
    t.noteEmbryonic(a); // a again: now newer than b
    assert.equal(t.oldestEmbryonic(), b);
    t.setState(b, ESTABLISHED);
    assert.equal(t.oldestEmbryonic(), a);
  });

  it("does not mistake a reused index for the old embryonic entry", () => {
    const t = new ConnTable(2);
    const a = t.alloc();
    t.setState(a, SYN_RECV);
    t.noteEmbryonic(a);
    t.free(a);
    const again = t.alloc();
    assert.equal(again, a);
    t.setState(again, SYN_RECV); // set without a note (e.g. by a sync message)
    assert.equal(t.oldestEmbryonic(), -1);
  });

  it("serves a SYN flood: the table full of SYN_RECV, each new entry evicting the oldest", () => {
    const cap = 64;
    const t = new ConnTable(cap);
    const order: number[] = [];
    for (let i = 0; i < cap; i++) {
      const cx = t.alloc();
      t.setState(cx, SYN_RECV);
      t.noteEmbryonic(cx);
      order.push(cx);
    }
    for (let n = 0; n < 50 * cap; n++) {
      assert.equal(t.alloc(), -1);
      const victim = t.oldestEmbryonic();
      assert.equal(victim, order.shift());
      t.free(victim);
      const cx = t.alloc();
      t.setState(cx, SYN_RECV);
      t.noteEmbryonic(cx);
      order.push(cx);
    }
  });

  it("keeps the order across ring compactions with repeated notes", () => {
    const cap = 8;
    const t = new ConnTable(cap);
    const ids: number[] = [];
    for (let i = 0; i < cap; i++) ids.push(t.alloc());
    // Many re-notes of the same entries overflow the ring (2 x capacity) many times.
    const lastNote = new Map<number, number>();
    let clock = 0;
    for (let n = 0; n < 1000; n++) {
      const cx = ids[(n * 5) % cap];
      t.setState(cx, n % 2 === 0 ? SYN_RECV : SYNACK);
      t.noteEmbryonic(cx);
      lastNote.set(cx, clock++);
    }
    const expected = [...lastNote].sort((x, y) => x[1] - y[1]).map(([cx]) => cx);
    for (const cx of expected) {
      assert.equal(t.oldestEmbryonic(), cx);
      t.setState(cx, ESTABLISHED);
    }
    assert.equal(t.oldestEmbryonic(), -1);
  });
});

describe("ConnTable memory", () => {
  it("costs at most 128 bytes per entry at 100k entries", () => {
    const t = new ConnTable(100_000);
    assert.ok(t.bytesPerEntry <= 128, `${t.bytesPerEntry} bytes per entry`);
    assert.ok(t.bytes > 0);
  });
});

describe("read-ahead heads (headIn, headOut, touch)", () => {
  it("name the first entry of the bucket each lookup walks, -1 for an empty bucket", () => {
    const t = new ConnTable(64, 7);
    assert.equal(t.headIn(TCP, CIP, 40000, VIP, 80), -1);
    const a = add(t);
    // Hashed last, an entry heads its bucket in both directions (NAT replies are hashed OUT).
    assert.equal(t.headIn(TCP, CIP, 40000, VIP, 80), a);
    assert.equal(t.lookupIn(TCP, CIP, 40000, VIP, 80), a);
    assert.equal(t.headOut(TCP, RIP, 8080, CIP, 40000), a);
    assert.equal(t.lookupOut(TCP, RIP, 8080, CIP, 40000), a);
    const b = add(t, { cport: 40001 });
    assert.equal(t.headIn(TCP, CIP, 40001, VIP, 80), b);
    // A DR entry has no OUT bucket: its reply tuple's bucket stays as it was.
    const before = t.headOut(TCP, RIP, 80, CIP, 40002);
    add(t, { cport: 40002, dport: 80, flags: ROUTE });
    assert.equal(t.headOut(TCP, RIP, 80, CIP, 40002), before);
  });

  it("touch reads a word of the entry, 0 for none", () => {
    const t = new ConnTable(64, 7);
    const a = add(t);
    assert.equal(t.touch(-1), 0);
    assert.equal(t.touch(a) >>> 0, CIP);
  });
});
