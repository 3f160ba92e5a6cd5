// The refresh's trigger and the warm-up (core/sync/peers.ts): a backup asks its master for a
// refresh when it hears a master it has not heard for PEER_LOST_MS (joined, restarted, back from
// a partition), not for one that keeps talking (its keepalive every SYNC_HELLO_MS); a warming
// director is done once every live master heard has sent the marker from each of its workers,
// and no sooner than PEER_LOST_MS (so that every live master has been heard), or at the bound.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PEER_LOST_MS, SYNC_HELLO_MS, SyncPeers } from "../../src/core/sync/peers.js";
import { writeRefreshMarker, writeSyncHello } from "../../src/core/sync/refresh.js";

const hello = (): Uint8Array => {
  const b = new Uint8Array(8);
  writeSyncHello(b, 17);
  return b;
};
const marker = (worker: number, workers: number): Uint8Array => {
  const b = new Uint8Array(64);
  return b.slice(0, writeRefreshMarker(b, 17, worker, workers));
};
const entries = new Uint8Array(100);

describe("the refresh's trigger", () => {
  it("is a master heard for the first time, or again after PEER_LOST_MS of silence", () => {
    const p = new SyncPeers();
    const rows: [string, number, boolean][] = [
      ["198.18.3.11", 0, true],
      ["198.18.3.11", SYNC_HELLO_MS, false],
      ["198.18.3.12", SYNC_HELLO_MS, true],
      // keepalives every second: never new again
      ["198.18.3.11", 2 * SYNC_HELLO_MS, false],
      ["198.18.3.11", 3 * SYNC_HELLO_MS, false],
      ["198.18.3.11", 4 * SYNC_HELLO_MS, false],
      // .12 silent (restarted): new when it talks again
      ["198.18.3.12", SYNC_HELLO_MS + PEER_LOST_MS, true],
      ["198.18.3.12", SYNC_HELLO_MS + PEER_LOST_MS + 10, false],
    ];
    for (const [from, at, fresh] of rows)
      assert.equal(p.heard(from, hello(), 0, at), fresh, `${from} at ${at}`);
  });

  it("forgets every master when the backup stops", () => {
    const p = new SyncPeers();
    assert.equal(p.heard("198.18.3.11", hello(), 0, 0), true);
    p.clear();
    assert.equal(p.heard("198.18.3.11", hello(), 0, 10), true);
  });
});

describe("the warm-up", () => {
  it("ends when every live master has sent each worker's marker, not before PEER_LOST_MS", () => {
    const p = new SyncPeers();
    p.beginWarmup(0, 10_000);
    p.heard("198.18.3.11", hello(), 0, 100);
    p.heard("198.18.3.12", entries, 40, 200);
    p.heard("198.18.3.11", entries, 40, 300);
    p.heard("198.18.3.11", marker(0, 1), 0, 400);
    p.heard("198.18.3.12", marker(1, 2), 0, 500);
    assert.equal(p.warmState(600, true), "warming", "a marker from one worker of two");
    p.heard("198.18.3.12", marker(0, 2), 0, 700);
    assert.equal(
      p.warmState(800, true),
      "warming",
      "before PEER_LOST_MS a master may not have been heard yet",
    );
    p.heard("198.18.3.11", hello(), 0, 1400);
    p.heard("198.18.3.12", hello(), 0, 1500);
    p.heard("198.18.3.11", hello(), 0, 2400);
    p.heard("198.18.3.12", hello(), 0, 2500);
    assert.equal(p.warmState(PEER_LOST_MS, true), "complete");
    assert.equal(p.entries, 80);
    assert.equal(p.warmState(PEER_LOST_MS + 1, true), "complete", "final");
  });

  it("waits for a master heard late, and ignores one that went silent", () => {
    const p = new SyncPeers();
    p.beginWarmup(0, 10_000);
    p.heard("198.18.3.11", marker(0, 1), 0, 100);
    p.heard("198.18.3.13", entries, 40, 200);
    // .13 sends no marker and goes silent (its director died): it stops holding the warm-up.
    for (let t = 1100; t < 5000; t += SYNC_HELLO_MS) p.heard("198.18.3.11", hello(), 0, t);
    assert.equal(p.warmState(PEER_LOST_MS, true), "warming");
    assert.equal(p.warmState(200 + PEER_LOST_MS, true), "complete");
  });

  it("ends at the bound when a master never finishes, and never without the backup listening", () => {
    const p = new SyncPeers();
    p.beginWarmup(0, 5000);
    for (let t = 0; t < 6000; t += SYNC_HELLO_MS) p.heard("198.18.3.11", hello(), 0, t);
    assert.equal(p.warmState(4999, true), "warming");
    assert.equal(p.warmState(5000, true), "bound");
    const q = new SyncPeers();
    q.beginWarmup(0, 5000);
    assert.equal(q.warmState(PEER_LOST_MS, false), "warming", "no backup: nothing was heard");
    assert.equal(q.warmState(PEER_LOST_MS, true), "complete", "alone in the farm: nothing to wait for");
  });

  it("is off unless begun, and takes a restarted master's markers afresh", () => {
    const p = new SyncPeers();
    assert.equal(p.warmState(100_000, true), "off");
    p.beginWarmup(0, 20_000);
    p.heard("198.18.3.11", marker(0, 1), 0, 100);
    // Restarted with two workers: the old marker is of the table it had then.
    p.heard("198.18.3.11", marker(0, 2), 0, 100 + PEER_LOST_MS);
    assert.equal(p.warmState(200 + PEER_LOST_MS, true), "warming");
    p.heard("198.18.3.11", marker(1, 2), 0, 300 + PEER_LOST_MS);
    assert.equal(p.warmState(400 + PEER_LOST_MS, true), "complete");
  });
});
