// The connection table in memory of its own (src/io/hugepages.ts): 2 MiB-rounded, zeroed, and a
// table there behaves as one in V8's memory.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ConnTable } from "../../src/core/conn/table.js";
import { anonHugeBytes, hugePageAlloc, hugePageBuffer } from "../../src/io/hugepages.js";

const TCP = 6;
const MIB = 1024 * 1024;

/** n NAT entries, client i at 198.18.(i >> 8).(i & 255):(1024 + i % 60000). */
function fill(t: ConnTable, n: number): void {
  for (let i = 0; i < n; i++) {
    const cx = t.alloc();
    assert.ok(cx >= 0);
    t.setProto(cx, TCP);
    t.setCaddr(cx, (0xc6120000 | i) >>> 0);
    t.setCport(cx, 1024 + (i % 60000));
    t.setVaddr(cx, 0xc6120064);
    t.setVport(cx, 80);
    t.setDaddr(cx, 0xc612010b + (i % 3));
    t.setDport(cx, 80);
    t.setLaddr(cx, t.caddrOf(cx));
    t.setLport(cx, t.cportOf(cx));
    t.setFlags(cx, 0);
    t.hash(cx);
  }
}

describe("huge-page table memory", () => {
  it("rounds to 2 MiB and hands out zeroed, writable memory", () => {
    const ab = hugePageBuffer(3 * MIB + 5);
    assert.equal(ab.byteLength, 4 * MIB);
    const w = new Int32Array(ab);
    assert.equal(
      w.every((x) => x === 0),
      true,
    );
    w[0] = -1;
    w[w.length - 1] = 7;
    assert.deepEqual([w[0], w[w.length - 1]], [-1, 7]);
  });

  it("leaves arrays under 2 MiB in V8's memory", () => {
    assert.equal(hugePageAlloc(4096).byteLength, 4096);
  });

  it("holds a table that finds what a table in V8's memory finds", () => {
    const n = 100_000;
    const before = anonHugeBytes() ?? 0;
    const huge = new ConnTable(n, 7, hugePageAlloc);
    const plain = new ConnTable(n, 7);
    fill(huge, n);
    fill(plain, n);
    assert.equal(huge.size, n);
    for (let i = 0; i < n; i += 97) {
      const c = (0xc6120000 | i) >>> 0;
      const p = 1024 + (i % 60000);
      const cx = huge.lookupIn(TCP, c, p, 0xc6120064, 80);
      assert.equal(cx, plain.lookupIn(TCP, c, p, 0xc6120064, 80));
      assert.ok(cx >= 0);
      assert.equal(huge.lookupOut(TCP, 0xc612010b + (i % 3), 80, c, p), cx);
    }
    // The records (6.4 MB) went to huge pages, unless the kernel's THP is off.
    if (!/\[never\]/.test(readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8"))) {
      const grown = (anonHugeBytes() ?? 0) - before;
      assert.ok(grown >= 4 * MIB, `${grown} bytes more in huge pages`);
    }
  });
});
