// The fuzzer itself (src/fuzz): frame `index` of a seed is the same bytes whatever runs before it,
// every kind and mutation occurs, frames stay within what a packet socket sends, the valid ones are
// valid (their checksums by the fuzzer's own oracle, a sync message by the product's decoder), and
// a short in-process run through the whole director finds nothing.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { INPROC_MACS, runInproc } from "../../src/cli/fuzz/inproc.js";
import { decodeSyncMessage } from "../../src/core/sync/codec.js";
import { FrameGen, FUZZ_KINDS, FUZZ_MAX_FRAME, FUZZ_MUTATIONS, FuzzFrame } from "../../src/fuzz/frames.js";
import { checksumState, L4_OK } from "../../src/fuzz/oracle.js";
import { planTarget } from "../../src/fuzz/plan.js";
import { FuzzRng } from "../../src/fuzz/rng.js";

const target = planTarget(INPROC_MACS, {
  gso: true,
  vrrp: [
    { vrid: 51, version: 2, family: 4, pass: "fuzzpass" },
    { vrid: 53, version: 3, family: 6, pass: null },
  ],
});

function frameAt(gen: FrameGen, i: number): { bytes: Uint8Array; f: FuzzFrame } {
  const buf = new Uint8Array(FUZZ_MAX_FRAME);
  const f = new FuzzFrame();
  gen.frame(i, buf, f);
  return { bytes: buf.slice(0, f.len), f };
}

describe("fuzz: the frame generator", () => {
  it("gives frame i of a seed the same bytes in any order and from any generator", () => {
    const a = new FrameGen(target, 42);
    const b = new FrameGen(target, 42);
    const forward = [0, 1, 2, 3, 1000, 65537, 2 ** 32 + 5].map((i) => frameAt(a, i));
    const backward = [2 ** 32 + 5, 65537, 1000, 3, 2, 1, 0].map((i) => frameAt(b, i)).reverse();
    for (let k = 0; k < forward.length; k++) {
      assert.deepEqual(forward[k].bytes, backward[k].bytes);
      assert.equal(forward[k].f.side, backward[k].f.side);
      assert.equal(forward[k].f.kind, backward[k].f.kind);
      assert.deepEqual(forward[k].f.vnet, backward[k].f.vnet);
    }
    const other = frameAt(new FrameGen(target, 43), 1000).bytes;
    assert.notDeepEqual(other, forward[4].bytes);
  });

  it("makes every kind and every mutation, within the lengths a packet socket sends", () => {
    const gen = new FrameGen(target, 7);
    const buf = new Uint8Array(FUZZ_MAX_FRAME);
    const f = new FuzzFrame();
    const kinds = new Set<number>();
    const muts = new Set<number>();
    for (let i = 0; i < 20000; i++) {
      gen.frame(i, buf, f);
      kinds.add(f.kind);
      muts.add(f.mutation);
      assert.ok(f.len >= 14, `frame ${i}: ${f.len} bytes`);
      const tagged = ((buf[12] << 8) | buf[13]) === 0x8100;
      const max = f.hasVnet ? FUZZ_MAX_FRAME : target.maxFrame + (tagged ? 4 : 0);
      assert.ok(f.len <= max, `frame ${i} (${FUZZ_KINDS[f.kind]}): ${f.len} bytes`);
      assert.ok(f.side === 0 || f.side === 1);
      assert.equal(f.hasVnet, FUZZ_KINDS[f.kind] === "gso");
    }
    assert.deepEqual(
      [...kinds].sort((x, y) => x - y),
      FUZZ_KINDS.map((_k, i) => i),
    );
    assert.deepEqual(
      [...muts].sort((x, y) => x - y),
      FUZZ_MUTATIONS.map((_k, i) => i),
    );
  });

  it("builds unmutated requests and replies with right checksums, sync messages the decoder takes", () => {
    const gen = new FrameGen(target, 9);
    const buf = new Uint8Array(FUZZ_MAX_FRAME);
    const f = new FuzzFrame();
    let checked = 0;
    let synced = 0;
    for (let i = 0; i < 20000; i++) {
      gen.frame(i, buf, f);
      const kind = FUZZ_KINDS[f.kind];
      if (FUZZ_MUTATIONS[f.mutation] !== "none") continue;
      if (["tcp4", "udp4", "reply4", "tcp6", "udp6", "reply6", "icmp4", "icmp6"].includes(kind)) {
        const st = checksumState(buf, f.len);
        // 0: nothing to check (a UDP checksum of 0, a cut quote's ICMP error is still summed whole).
        if (st !== 0) {
          assert.equal(st, L4_OK, `frame ${i} (${kind})`);
          checked++;
        }
      }
      if (kind === "sync" && ((buf[12] << 8) | buf[13]) === 0x0800) {
        const u = 14 + (buf[14] & 15) * 4 + 8;
        const r = decodeSyncMessage(buf.subarray(u, f.len), f.len - u, 0, () => {});
        // A message the generator meant to be good (every entry within its size) decodes whole.
        if (r.ok) synced++;
      }
    }
    assert.ok(checked > 2000, `${checked} checksums checked`);
    assert.ok(synced > 50, `${synced} sync messages decoded`);
  });

  it("draws integers in range, evenly enough", () => {
    const r = new FuzzRng(1, 2);
    const hist = new Array(10).fill(0);
    for (let i = 0; i < 100000; i++) {
      const v = r.int(10);
      assert.ok(v >= 0 && v < 10);
      hist[v]++;
    }
    for (const h of hist) assert.ok(Math.abs(h - 10000) < 600, `bucket ${h}`);
  });
});

describe("fuzz: in process", () => {
  it("runs 30000 frames of every kind through the director without a throw or a broken output frame", () => {
    const r = runInproc({ seed: 1, count: 30000 });
    assert.deepEqual(
      r.findings.map((f) => `${f.stage} ${f.index}: ${f.error}`),
      [],
    );
    assert.deepEqual(
      r.anomalies.map((a) => `${a.index} ${a.kind}: ${a.why}`),
      [],
    );
    assert.equal(r.frames, 30000);
    assert.equal(r.counters.rxFrames, 30000);
    // The frames reached deep paths: connections of every service, synced entries, VRRP adverts.
    for (const [k, s] of Object.entries(r.services)) assert.ok(s.conns > 0, `${k}: no connection`);
    assert.ok(r.syncInstalled > 0);
    assert.ok(r.vrrpAccepted > 0);
  });
});
