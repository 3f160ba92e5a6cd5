// The state several AF_XDP workers share (src/io/xdp-share.ts): the links table worker 0
// publishes and the others join, the per-queue references whose last one unmaps the shared
// rings, and the lock around the UMEM's free list, hammered by two threads at once (no root: the
// UMEM is anonymous memory; no socket is bound).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { Umem } from "../../src/io/xdp.js";
import { XdpShare } from "../../src/io/xdp-share.js";

const FRAMES = 256;

describe("XdpShare", () => {
  it("publishes worker 0's interface for the others; references per queue, the entry gone with the last", () => {
    const sh = new XdpShare(FRAMES);
    const view = new XdpShare(FRAMES, sh.sab);
    const queues = [0, 1].map((q) => ({
      fd: 10 + q,
      fillAddr: 4096 * (q + 1),
      fillLen: 8192,
      compAddr: 65536 * (q + 1),
      compLen: 8192,
    }));
    sh.publish(7, { xsks: 42, generic: false, queues });
    assert.deepEqual(view.link(7), { xsks: 42, generic: false, queues }, "seen through another view");
    assert.equal(view.link(8), null);
    assert.equal(view.ref(7, 0, 1), 2, "worker 1 joined queue 0");
    assert.equal(view.ref(7, 1, 1), 2);
    assert.equal(sh.ref(7, 0, -1), 1, "worker 0 closed: not the last");
    assert.equal(sh.ref(7, 1, -1), 1);
    assert.equal(view.ref(7, 0, -1), 0, "the last on queue 0");
    assert.notEqual(view.link(7), null, "queue 1 still has a socket");
    assert.equal(view.ref(7, 1, -1), 0);
    assert.equal(view.link(7), null, "the entry goes with the last socket");
    // A free slot is taken again; the table refuses what does not fit.
    sh.publish(9, { xsks: 1, generic: true, queues: [queues[0]] });
    assert.equal(sh.link(9)?.generic, true);
    assert.throws(
      () => sh.publish(10, { xsks: 1, generic: false, queues: Array(17).fill(queues[0]) }),
      /at most 16 rx queues/,
    );
  });

  it("one UMEM for every worker: the first maps it, the others view it, the last one's free() unmaps", () => {
    const sh = new XdpShare(FRAMES);
    const u0 = new Umem(FRAMES, 2048, sh);
    const u1 = new Umem(FRAMES, 4096, new XdpShare(FRAMES, sh.sab));
    assert.equal(u1.addr, u0.addr);
    assert.equal(u1.frameSize, 2048, "the first one's frame size");
    u0.bytes[5000] = 0x5a;
    assert.equal(u1.bytes[5000], 0x5a, "the same memory");
    assert.equal(u1.freeFrames, FRAMES);
    u0.lock();
    const f = u0.take();
    u0.unlock();
    assert.equal(u1.freeFrames, FRAMES - 1, "one free list");
    u1.putOne(f);
    u0.free();
    assert.equal(u1.bytes[5000], 0x5a, "still mapped for the other worker");
    u1.free();
    assert.equal(sh.ready, false);
  });

  it("keeps the free list whole while two threads take and put frames under the lock", async () => {
    const sh = new XdpShare(FRAMES);
    const u = new Umem(FRAMES, 2048, sh);
    const xdp = new URL("../../src/io/xdp.js", import.meta.url).href;
    const share = new URL("../../src/io/xdp-share.js", import.meta.url).href;
    const code = `
      const { workerData, parentPort } = require("node:worker_threads");
      (async () => {
        const { Umem } = await import(${JSON.stringify(xdp)});
        const { XdpShare } = await import(${JSON.stringify(share)});
        const u = new Umem(${FRAMES}, 2048, new XdpShare(${FRAMES}, workerData.sab));
        let seed = workerData.seed, held = [];
        for (let i = 0; i < 20000; i++) {
          seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
          u.lock();
          for (let k = 0; k < 1 + (seed % 8); k++) { const f = u.take(); if (f >= 0) held.push(f); }
          u.unlock();
          for (const f of held) u.state[f] = 2;
          u.lock();
          for (const f of held) u.put(f);
          u.unlock();
          held = [];
        }
        u.free();
        parentPort.postMessage("done");
      })();
    `;
    const run = (seed: number): Promise<void> =>
      new Promise((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { sab: sh.sab, seed } });
        w.once("message", () => resolve());
        w.once("error", reject);
      });
    await Promise.all([run(1), run(2)]);
    assert.equal(u.freeFrames, FRAMES);
    const seen = new Set<number>();
    u.lock();
    for (let f = u.take(); f >= 0; f = u.take()) seen.add(f);
    u.unlock();
    assert.equal(seen.size, FRAMES, "every frame once: none lost, none twice");
    u.free();
  });
});
