// ip_vs_sync_conn_needed as a pure function (sync/policy.ts): the packet-count rule, the TCP
// states and forced syncs, templates, sync_persist_mode, sync_refresh_period with sync_retries.

import assert from "node:assert/strict";
import { test } from "node:test";
import { syncNeeded, syncOldState, syncWordInstalled } from "../../src/core/sync/policy.js";
import { SYNC_SYSCTL_DEFAULTS, type SyncSysctls } from "../../src/core/sync/types.js";

const TCP = 6;
const UDP = 17;
const TEMPLATE = 0x1000;
const ONE_PACKET = 0x2000;
const T0 = 1_000_000;

function sc(o: Partial<SyncSysctls> = {}): SyncSysctls {
  return { ...SYNC_SYSCTL_DEFAULTS, ...o };
}

/** The packet numbers in 1..n at which a connection in a fixed state is synced. */
function syncedAt(s: SyncSysctls, proto: number, flags: number, state: number, n: number): number[] {
  let w = 0;
  const at: number[] = [];
  for (let pkts = 1; pkts <= n; pkts++) {
    const r = syncNeeded(s, proto, flags, state, pkts, false, 300_000, T0 + pkts, w);
    if (r >= 0) {
      at.push(pkts);
      w = r;
    }
  }
  return at;
}

test("packet counts: threshold + k*period; period 0 once; templates always; ONE_PACKET never", () => {
  assert.deepEqual(syncedAt(sc(), UDP, 0, 0, 160), [3, 53, 103, 153]);
  assert.deepEqual(syncedAt(sc({ syncThreshold: 10, syncPeriod: 20 }), UDP, 0, 0, 60), [10, 30, 50]);
  assert.deepEqual(syncedAt(sc({ syncPeriod: 0 }), UDP, 0, 0, 100), [3]);
  assert.deepEqual(syncedAt(sc(), TCP, TEMPLATE, 0, 5), [1, 2, 3, 4, 5]);
  assert.deepEqual(syncedAt(sc({ syncPeriod: 0 }), TCP, TEMPLATE, 0, 5), [3]);
  assert.deepEqual(syncedAt(sc(), UDP, ONE_PACKET, 0, 60), []);
});

test("TCP: only ES, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT; a change to any but ES forces", () => {
  for (const st of [0, 2, 3, 8, 9, 10]) assert.deepEqual(syncedAt(sc(), TCP, 0, st, 60), [], `state ${st}`);
  // ES from NONE: a change, but to ES: the count decides.
  assert.equal(syncNeeded(sc(), TCP, 0, 1, 2, false, 900_000, T0, 0), -1);
  const w = syncNeeded(sc(), TCP, 0, 1, 3, false, 900_000, T0, 0);
  assert.ok(w >= 0);
  assert.equal(syncOldState(w), 1);
  // ES → CLOSE_WAIT at packet 4: at once, then not again in that state until the count.
  const cw = syncNeeded(sc(), TCP, 0, 7, 4, false, 60_000, T0, w);
  assert.ok(cw >= 0);
  assert.equal(syncOldState(cw), 7);
  assert.equal(syncNeeded(sc(), TCP, 0, 7, 5, false, 60_000, T0, cw), -1);
  // An installed entry starts with old_state = its state: no forced sync for it.
  assert.equal(syncNeeded(sc(), TCP, 0, 7, 4, false, 60_000, T0, syncWordInstalled(7)), -1);
});

test("sync_persist_mode: connections under a template are not synced", () => {
  assert.equal(syncNeeded(sc({ syncPersistMode: 1 }), UDP, 0, 0, 3, true, 300_000, T0, 0), -1);
  assert.ok(syncNeeded(sc({ syncPersistMode: 1 }), UDP, 0, 0, 3, false, 300_000, T0, 0) >= 0);
  assert.ok(syncNeeded(sc(), UDP, 0, 0, 3, true, 300_000, T0, 0) >= 0);
});

test("sync_refresh_period: no re-sync within min(refresh, max(timeout/2, 10 s)); retries every refresh/8", () => {
  const s = sc({ syncPeriod: 0, syncRefreshPeriod: 60 });
  const at = (word: number, dt: number, pkts = 7) =>
    syncNeeded(s, UDP, 0, 0, pkts, false, 300_000, T0 + dt, word);
  const w1 = at(0, 0);
  assert.ok(w1 >= 0, "first sync: any packet (period 0, refresh set)");
  assert.equal(at(w1, 1000), -1, "1 s later");
  assert.equal(at(w1, 59_000), -1, "59 s later");
  assert.ok(at(w1, 60_000) >= 0, "60 s later");
  // A short timeout shrinks the window to max(timeout/2, 10 s).
  const short = (word: number, dt: number) => syncNeeded(s, UDP, 0, 0, 1, false, 8_000, T0 + dt, word);
  const w2 = short(0, 0);
  assert.equal(short(w2, 9_000), -1);
  assert.ok(short(w2, 10_000) >= 0);
  // sync_retries 1: one more sync, refresh/8 (7.5 s) after the last one.
  const r = sc({ syncPeriod: 0, syncRefreshPeriod: 60, syncRetries: 1 });
  const rt = (word: number, dt: number) => syncNeeded(r, UDP, 0, 0, 1, false, 300_000, T0 + dt, word);
  const w3 = rt(0, 0);
  assert.equal(rt(w3, 7_000), -1, "before refresh/8");
  const w4 = rt(w3, 8_000);
  assert.ok(w4 >= 0, "the retry");
  assert.equal(rt(w4, 20_000), -1, "retries used up");
  // With sync_period too, the count still filters.
  const both = sc({ syncRefreshPeriod: 60 });
  assert.equal(syncNeeded(both, UDP, 0, 0, 4, false, 300_000, T0, 0), -1);
  assert.ok(syncNeeded(both, UDP, 0, 0, 53, false, 300_000, T0, 0) >= 0);
});
