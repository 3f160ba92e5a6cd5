// When a connection is synced: ip_vs_sync_conn_needed (net/netfilter/ipvs/ip_vs_sync.c).
//
//   - ONE_PACKET connections never; with sync_persist_mode, connections under a persistence
//     template never (only the templates are synced);
//   - TCP only in ESTABLISHED, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT; a state change to any of
//     them but ESTABLISHED is synced at once (forced: no refresh or packet-count filter);
//   - sync_refresh_period > 0: no re-sync while the new end time (now + timeout) differs from
//     the last synced one by less than min(refresh, max(timeout/2, 10 s)), except sync_retries
//     retries, each at least refresh/8 after the last sync;
//   - sync_period > 0: when pkts % period == threshold (3, 53, 103, ... by default), templates
//     always; sync_period 0 with sync_refresh_period 0: once, when pkts == threshold.
//
// The kernel keeps cp->old_state and cp->sync_endtime (jiffies, retries in its low 2 bits); tsvs
// packs both in one word of the connection's cold record (ConnTable.syncWordOf), kept below 2^30
// so that it stays a small integer:
//
//   bits 0-3   old_state (the state last synced; TCP states are < 16)
//   bit  4     an end time was recorded (the connection was synced at least once)
//   bits 5-6   retries done at the recorded end time
//   bits 7-29  end time, in 100 ms ticks modulo 2^23 (9.7 days; compared as a signed difference)
//
// A word of 0 is a fresh connection: old state NONE, never synced (the kernel starts sync_endtime
// at the creation time, which the refresh filter lets through the same way).

import type { SyncSysctls } from "./types.js";

const IPPROTO_TCP = 6;
// IP_VS_CONN_F_* and IP_VS_TCP_S_* (include/uapi/linux/ip_vs.h, include/net/ip_vs.h).
const F_TEMPLATE = 0x1000;
const F_ONE_PACKET = 0x2000;
const TCP_S_ESTABLISHED = 1;
/** ESTABLISHED, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT as a bit set by state number. */
const TCP_SYNC_STATES = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7);

export const SYNC_TICK_MS = 100;
const OLD_STATE_MASK = 0xf;
const W_SYNCED = 0x10;
const RETRIES_SHIFT = 5;
const END_SHIFT = 7;
const END_MASK = (1 << 23) - 1;
/** The kernel's floor of the half-timeout window: 10 s. */
const MIN_REFRESH_WINDOW = 10_000 / SYNC_TICK_MS;

/** A 23-bit tick difference as a signed number. */
function wrap(d: number): number {
  return (d << 9) >> 9;
}

/** The sync word of an entry a backup just installed: old_state = state (ip_vs_proc_conn). */
export function syncWordInstalled(state: number): number {
  return state & OLD_STATE_MASK;
}

/** The state the entry was last synced in (cp->old_state). */
export function syncOldState(word: number): number {
  return word & OLD_STATE_MASK;
}

/**
 * ip_vs_sync_conn_needed for one entry. pkts: its incremented in_pkts (the threshold for a
 * ONE_PACKET connection, a non-template controller); inPersistence: it is controlled by a
 * template (only read with sync_persist_mode); timeoutMs: its current timeout; word: its sync
 * word. Returns the word to store when the entry is to be synced now, -1 when it is not (the
 * word then stays as it was, as the kernel leaves old_state and sync_endtime).
 */
export function syncNeeded(
  sc: SyncSysctls,
  proto: number,
  flags: number,
  state: number,
  pkts: number,
  inPersistence: boolean,
  timeoutMs: number,
  now: number,
  word: number,
): number {
  if ((flags & F_ONE_PACKET) !== 0) return -1;
  const template = (flags & F_TEMPLATE) !== 0;
  const timeoutT = Math.floor(timeoutMs / SYNC_TICK_MS);
  const nowT = Math.floor(now / SYNC_TICK_MS);
  const end = (nowT + timeoutT) & END_MASK;
  const st = state & OLD_STATE_MASK;
  if (!template) {
    if (sc.syncPersistMode !== 0 && inPersistence) return -1;
    if (proto === IPPROTO_TCP) {
      if (((1 << state) & TCP_SYNC_STATES) === 0) return -1;
      if (st !== (word & OLD_STATE_MASK) && state !== TCP_S_ESTABLISHED) {
        return (end << END_SHIFT) | W_SYNCED | st;
      }
    }
  }
  let retries = 0;
  const refresh = sc.syncRefreshPeriod;
  if (refresh > 0 && (word & W_SYNCED) !== 0) {
    const orig = (word >>> END_SHIFT) & END_MASK;
    const refreshT = Math.floor((refresh * 1000) / SYNC_TICK_MS);
    const window = Math.min(refreshT, Math.max(timeoutT >> 1, MIN_REFRESH_WINDOW));
    if (Math.abs(wrap(end - orig)) < window) {
      const done = (word >>> RETRIES_SHIFT) & 3;
      if (done >= sc.syncRetries) return -1;
      // time_before(now, orig - timeout + refresh/8): a retry waits refresh/8 after the sync.
      if (wrap(nowT - orig + timeoutT - (refreshT >> 3)) < 0) return -1;
      retries = done + 1;
    }
  }
  const period = sc.syncPeriod;
  if (period > 0) {
    if (!template && pkts % period !== sc.syncThreshold) return -1;
  } else if (refresh === 0 && pkts !== sc.syncThreshold) return -1;
  return (end << END_SHIFT) | (retries << RETRIES_SHIFT) | W_SYNCED | st;
}
