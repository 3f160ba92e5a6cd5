// bench:locality — lblc's and lblcr's schedule() alone, ns per call, on a service of 8 real
// servers whose table already holds an entry for every destination address the loop sends to
// (the common case: a cache hit, the cached real server kept). Not a test: it prints a table.
//
//   ipv4        1024 IPv4 destination addresses
//   ipv6        1024 IPv6 destination addresses (a fwmark service with many), distinct folds
//   ipv6_fold   1024 IPv6 destination addresses in 256 groups of 4 sharing one fold, the case
//               the kernel's table tells apart by comparing the whole address
//
// The minimum of ROUNDS rounds of CALLS calls each is reported (the machine is shared). The cost
// of writing the address into the Flow (what the parser does) is in every figure.
//
//   node --expose-gc dist/bench/locality.js

import { ipv6Fold } from "../src/core/addr.js";
import { Dest } from "../src/core/dest.js";
import { Flow, IPPROTO_TCP } from "../src/core/packet/flow.js";
import { findScheduler } from "../src/core/sched/index.js";
import type { SchedContext } from "../src/core/sched/types.js";
import { Service } from "../src/core/service.js";

const ADDRS = 1024;
const CALLS = 4_000_000;
const ROUNDS = 7;

interface Case {
  af: 4 | 6;
  /** Destination address i's words (IPv6) or address (IPv4, word 3). */
  words(i: number): [number, number, number, number];
}

const CASES: Record<string, Case> = {
  ipv4: { af: 4, words: (i) => [0, 0, 0, (0x0a010000 + i) | 0] },
  ipv6: { af: 6, words: (i) => [0x20010db8 | 0, 0, 0, i + 1] },
  // Same fold within a group of 4: word 2 and word 3 change by the same xor mask.
  ipv6_fold: {
    af: 6,
    words: (i) => {
      const g = i >> 2;
      const m = (i & 3) << 8;
      return [0x20010db8 | 0, 0, m, (g + 1) ^ m];
    },
  },
};

function setup(sched: string): Service {
  const svc = new Service(IPPROTO_TCP, 0x0a000001, 80);
  svc.dests = Array.from({ length: 8 }, (_, i) => {
    const d = new Dest(0x0a000101 + i, 80);
    d.weight = 100;
    return d;
  });
  const s = findScheduler(sched);
  if (s === null) throw new Error(sched);
  svc.sched = s;
  s.initService?.(svc);
  return svc;
}

/** The destination words of a case, 4 per address (IPv4: the address in the last), and the folds. */
function addresses(c: Case): { words: Int32Array; keys: Uint32Array } {
  const words = new Int32Array(ADDRS * 4);
  const keys = new Uint32Array(ADDRS);
  for (let i = 0; i < ADDRS; i++) {
    words.set(c.words(i), i * 4);
    keys[i] = c.af === 6 ? ipv6Fold(words, i * 4) : words[i * 4 + 3] >>> 0;
  }
  return { words, keys };
}

/**
 * One Flow, as the engine has one: each call writes the next address into it as the parser would
 * (the words for IPv6, and the fold or the address), then schedules.
 */
function run(sched: string, c: Case): number {
  const svc = setup(sched);
  const { words, keys } = addresses(c);
  const f = new Flow();
  f.af = c.af;
  f.proto = IPPROTO_TCP;
  f.saddr = 0xc0a80001;
  const d6 = f.d6;
  const v6 = c.af === 6;
  const ctx: SchedContext = { now: 0, random: () => 0 };
  const call = (i: number): Dest | null => {
    const k = i & (ADDRS - 1);
    if (v6) {
      const o = k * 4;
      d6[0] = words[o];
      d6[1] = words[o + 1];
      d6[2] = words[o + 2];
      d6[3] = words[o + 3];
    }
    f.daddr = keys[k];
    return svc.sched.schedule(svc, f, ctx);
  };
  // Fill the table: every later call is a hit that keeps its entry (no load moves).
  for (let i = 0; i < ADDRS; i++) call(i);
  let best = Number.POSITIVE_INFINITY;
  let sink = 0;
  for (let r = 0; r < ROUNDS; r++) {
    (globalThis as { gc?: () => void }).gc?.();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) {
      // Under the 60 s timer: the clock moves, the garbage collection never runs.
      ctx.now = i >>> 16;
      const d = call(i);
      if (d !== null) sink += d.port;
    }
    const ns = Number(process.hrtime.bigint() - t0) / CALLS;
    if (ns < best) best = ns;
  }
  if (sink === 0) throw new Error("no destination");
  // Every address has its entry (before issue 14's change, one per fold: the table is smaller).
  const entries = (svc.schedData as { entries?: number }).entries;
  if (entries !== undefined && entries !== ADDRS) throw new Error(`${sched} ${entries} entries`);
  return best;
}

const rows: string[] = [];
for (const sched of ["lblc", "lblcr"])
  for (const [name, c] of Object.entries(CASES))
    rows.push(`${sched.padEnd(6)} ${name.padEnd(10)} ${run(sched, c).toFixed(1).padStart(7)} ns/call`);
console.log(rows.join("\n"));
