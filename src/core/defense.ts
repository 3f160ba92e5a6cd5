// The kernel's defence strategies against connection-table exhaustion (net/netfilter/ipvs/
// ip_vs_ctl.c update_defense_level and defense_work_handler, ip_vs_conn.c ip_vs_random_dropentry
// and todrop_entry, include/net/ip_vs.h ip_vs_todrop; Documentation/networking/ipvs-sysctl.rst).
//
// Three strategies, each a sysctl taking modes 0..3 (0 off, 1 auto and idle, 2 auto and active,
// 3 always on), all driven once a second by "is memory short": availmem < amemthresh.
//   drop_entry   every second, 1/32 of the connection table scanned from a random start;
//                embryonic TCP entries dropped, established and UDP ones by todrop_entry's rule.
//   drop_packet  1 packet in `rate` that would create a connection is dropped: in auto mode
//                rate = amemthresh / (amemthresh - availmem), in mode 3 rate = am_droprate.
//   secure_tcp   the TCP state machine runs on tcp_states_dos (proto/tcp.ts) while active.
//
// What "memory" is here (docs/daemon.md "Defence against table exhaustion"): the kernel counts the
// host's free and buffer pages; tsvs's connections live in a table allocated once, so what runs out
// is the table's free entries. availmem is those entries' bytes (ConnTable.bytesPerEntry: hot and
// cold records, hash buckets, embryonic ring) in 4096-byte pages, so amemthresh keeps its unit.
// The engine takes availmem from a provider (EngineOptions.availmem) that tests drive.

import { CONN_F_TEMPLATE, type ConnTable } from "./conn/table.js";
import { IPPROTO_TCP } from "./packet/flow.js";
import { TCP_S_ESTABLISHED, TCP_S_SYN_RECV, TCP_S_SYNACK } from "./proto/tcp.js";

/** The defence sysctls (engine fields; /proc names amemthresh, am_droprate, drop_entry, drop_packet, secure_tcp). */
export interface DefenseSysctls {
  /** Pages: memory is short below this (default 1024). */
  amemthresh: number;
  /** drop_packet's rate in mode 3: 1 packet in this many (default 10). */
  amDroprate: number;
  /** Modes 0..3; the defence itself moves 1 → 2 and 2 → 1. */
  dropEntry: number;
  dropPacket: number;
  secureTcp: number;
}

/** ip_vs_control_net_init_sysctl's values. */
export const DEFENSE_SYSCTL_DEFAULTS: DefenseSysctls = {
  amemthresh: 1024,
  amDroprate: 10,
  dropEntry: 0,
  dropPacket: 0,
  secureTcp: 0,
};

/** DEFENSE_TIMER_PERIOD (1*HZ). */
export const DEFENSE_PERIOD_MS = 1000;

/** The unit of availmem and amemthresh (PAGE_SIZE on the architectures IPVS documents). */
export const PAGE_BYTES = 4096;

/** todrop_entry leaves alone an entry whose timer was (re)started less than this ago (60*HZ). */
const TODROP_IDLE_MS = 60_000;

/** todrop_entry's todrop_rate: of the entries with i incoming packets, 1 in todrop_rate[i] goes. */
const TODROP_RATE = [0, 1, 2, 3, 4, 5, 6, 7, 8] as const;

/**
 * availmem of a connection table: its free entries' bytes in pages (rounded down).
 * bytesPerEntry is the table's memory over its capacity, so a full table has 0 and an empty one
 * its whole size.
 */
export function tableAvailmem(t: ConnTable): number {
  return Math.floor(((t.capacity - t.size) * t.bytesPerEntry) / PAGE_BYTES);
}

/** The state of the defence between two updates (the kernel keeps it in struct netns_ipvs). */
export class Defense {
  /** ipvs->dropentry: ip_vs_random_dropentry runs at the next period. */
  dropEntryActive = false;
  /** ipvs->drop_rate: 0 = drop_packet drops nothing. */
  dropRate = 0;
  /** ipvs->drop_counter: packets left until the next drop. */
  dropCounter = 0;
  /** The TCP transitions in use are tcp_states_dos (ip_vs_protocol_timeout_change's flag). */
  secureTcpTable = false;
  /** availmem at the last update, in pages. */
  availmem = 0;
  /** Entries ip_vs_random_dropentry removed, packets ip_vs_todrop dropped. */
  entriesDropped = 0;
  packetsDropped = 0;
  /** update_defense_level's `static int old_secure_tcp` (one per engine here, not per host). */
  private oldSecureTcp = 0;
  /** todrop_entry's `static char todrop_counter[9]`. */
  private readonly todropCounter = new Int8Array(9);

  /**
   * update_defense_level: compares availmem with amemthresh and moves each strategy's mode as the
   * kernel does (writing modes 1 ↔ 2 back into `sc`, as the kernel writes its sysctls).
   */
  update(sc: DefenseSysctls, availmem: number): void {
    this.availmem = availmem;
    const nomem = availmem < sc.amemthresh;
    // The rate the kernel computes in auto mode: int division, >= 1 since availmem < amemthresh.
    const autoRate = (): number => Math.trunc(sc.amemthresh / (sc.amemthresh - availmem));

    switch (sc.dropEntry) {
      case 1:
        this.dropEntryActive = nomem;
        if (nomem) sc.dropEntry = 2;
        break;
      case 2:
        this.dropEntryActive = nomem;
        if (!nomem) sc.dropEntry = 1;
        break;
      case 3:
        this.dropEntryActive = true;
        break;
      default:
        this.dropEntryActive = false;
    }

    switch (sc.dropPacket) {
      case 1:
        if (nomem) {
          this.dropRate = this.dropCounter = autoRate();
          sc.dropPacket = 2;
        } else this.dropRate = 0;
        break;
      case 2:
        if (nomem) this.dropRate = this.dropCounter = autoRate();
        else {
          this.dropRate = 0;
          sc.dropPacket = 1;
        }
        break;
      case 3:
        // Mode 3 sets the rate only: the counter runs on from where it is.
        this.dropRate = sc.amDroprate;
        break;
      default:
        this.dropRate = 0;
    }

    let toChange = -1;
    const old = this.oldSecureTcp;
    switch (sc.secureTcp) {
      case 0:
        if (old >= 2) toChange = 0;
        break;
      case 1:
        if (nomem) {
          if (old < 2) toChange = 1;
          sc.secureTcp = 2;
        } else if (old >= 2) toChange = 0;
        break;
      case 2:
        if (nomem) {
          if (old < 2) toChange = 1;
        } else {
          if (old >= 2) toChange = 0;
          sc.secureTcp = 1;
        }
        break;
      case 3:
        if (old < 2) toChange = 1;
        break;
    }
    this.oldSecureTcp = sc.secureTcp;
    if (toChange >= 0) this.secureTcpTable = sc.secureTcp > 1;
  }

  /** ip_vs_todrop: should this packet, which would create a connection, be dropped? */
  todrop(): boolean {
    if (this.dropRate === 0) return false;
    if (--this.dropCounter > 0) return false;
    this.dropCounter = this.dropRate;
    return true;
  }

  /**
   * todrop_entry: may an established TCP (or a UDP) entry go? Only when its timer was last started
   * 60 s ago or more (`idleMs`: the kernel's cp->timeout + jiffies >= cp->timer.expires + 60*HZ),
   * and it has 1..8 incoming packets; then 1 in i of those with i packets goes, the first one first.
   */
  todropEntry(inPkts: number, idleMs: number): boolean {
    if (idleMs < TODROP_IDLE_MS) return false;
    if (inPkts > 8 || inPkts < 0) return false;
    const rate = TODROP_RATE[inPkts];
    if (rate === 0) return false;
    if (--this.todropCounter[inPkts] > 0) return false;
    this.todropCounter[inPkts] = rate;
    return true;
  }
}

/** Slots ip_vs_random_dropentry visits per run: 1/32 of the table (at least one). */
export function dropentryScanSize(capacity: number): number {
  return Math.max(1, capacity >>> 5);
}

/**
 * ip_vs_random_dropentry over a table of slots instead of hash buckets: the slots start, start+1,
 * … (dropentryScanSize of them, wrapping) are visited, as the kernel visits tab_size/32 buckets
 * from a random one. Victims, as there: TCP entries in SYN_RECV or SYNACK; established TCP and UDP
 * entries that todropEntry lets go. Entries that control others (n_control) are left alone, and so
 * are persistence templates (tsvs has no IP_VS_CTPL_S_ASSURED mark, which the kernel's test for
 * templates reads). `drop(cx)` removes one (the engine's ip_vs_conn_expire_now). Returns how many
 * went.
 */
export function randomDropentry(
  t: ConnTable,
  d: Defense,
  start: number,
  now: number,
  drop: (cx: number) => void,
): number {
  const cap = t.capacity;
  const n = dropentryScanSize(cap);
  let dropped = 0;
  for (let k = 0, cx = (start >>> 0) % cap; k < n; k++, cx = cx + 1 === cap ? 0 : cx + 1) {
    if (!t.isAllocated(cx) || t.nControlOf(cx) > 0) continue;
    if ((t.flagsOf(cx) & CONN_F_TEMPLATE) !== 0) continue;
    if (t.protoOf(cx) === IPPROTO_TCP) {
      const st = t.stateOf(cx);
      if (st === TCP_S_ESTABLISHED) {
        if (!d.todropEntry(t.inPktsOf(cx), now - (t.expiresAt(cx) - t.timeoutOf(cx)))) continue;
      } else if (st !== TCP_S_SYN_RECV && st !== TCP_S_SYNACK) continue;
    } else if (!d.todropEntry(t.inPktsOf(cx), now - (t.expiresAt(cx) - t.timeoutOf(cx)))) continue;
    drop(cx);
    dropped++;
  }
  d.entriesDropped += dropped;
  return dropped;
}
