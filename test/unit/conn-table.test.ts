import assert from "node:assert/strict";
import { describe, it } from "node:test";
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
  t.proto[cx] = e.proto ?? TCP;
  t.caddr[cx] = e.caddr ?? CIP;
  t.cport[cx] = e.cport ?? 40000;
  t.vaddr[cx] = e.vaddr ?? VIP;
  t.vport[cx] = e.vport ?? 80;
  t.daddr[cx] = e.daddr ?? RIP;
  t.dport[cx] = e.dport ?? 8080;
  t.laddr[cx] = e.laddr ?? t.caddr[cx];
  t.lport[cx] = e.lport ?? t.cport[cx];
  t.flags[cx] = e.flags ?? MASQ;
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
    t.vport[ct] = 0xffff;
    t.dport[ct] = 0xffff;
    t.hash(ct);
    assert.equal(t.lookupTemplate(TCP, CIP, VIP, 80), -1);
    assert.equal(t.lookupTemplate(TCP, CIP, VIP, 0xffff), ct);
  });

  it("unhashes from the buckets it was hashed into even if the key changed meanwhile", () => {
    const t = new ConnTable(16);
    const a = add(t, { cport: 1 });
    const b = add(t, { cport: 2 });
    t.cport[a] = 999;
    t.lport[a] = 999;
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
    t.cport[cx] = 2;
    t.lport[cx] = 2;
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
    t.state[cx] = 5;
    t.control[cx] = 7;
    t.nControl[cx] = 3;
    t.inPkts[cx] = 9;
    t.outPkts[cx] = 9;
    t.free(cx);
    const again = t.alloc();
    assert.equal(again, cx);
    assert.deepEqual(
      [t.state[cx], t.flags[cx], t.control[cx], t.nControl[cx], t.inPkts[cx], t.outPkts[cx], t.dest[cx]],
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
  it("fires exactly the expired entries, each at its time", () => {
    const t = new ConnTable(16);
    const a = t.alloc();
    const b = t.alloc();
    const c = t.alloc();
    t.arm(a, 1000, 0);
    t.arm(b, 1050, 0);
    t.arm(c, 2000, 0);
    assert.equal(t.timeout[a], 1000);
    assert.equal(t.expiresAt(b), 1050);
    const fired: Array<[number, number]> = [];
    for (let now = 0; now <= 3000; now += 10) t.advance(now, (cx) => fired.push([cx, now]));
    assert.deepEqual(fired, [
      [a, 1000],
      [b, 1050],
      [c, 2000],
    ]);
  });
});

describe("ConnTable memory", () => {
  it("costs at most 128 bytes per entry at 100k entries", () => {
    const t = new ConnTable(100_000);
    assert.ok(t.bytesPerEntry <= 128, `${t.bytesPerEntry} bytes per entry`);
    assert.ok(t.bytes > 0);
  });
});

void TIMER_SLOTS;
void TIMER_TICK_MS;
