// The rate estimator of net/netfilter/ipvs/ip_vs_est.c.
//
// Every 2 seconds the kernel folds the counter deltas of each ip_vs_stats into
// exponentially weighted moving averages (weight 1/4 for the new sample):
//
//   rate = (n - last) << 9        per second, scaled by 2^10 (<< 10, halved: 2 s tick)
//   avg += (rate - avg) >> 2      (s64 arithmetic: the shift floors negative deltas)
//
// Byte rates use << 4 (per second, scaled by 2^5). ip_vs_read_estimator rounds back:
// (cps + 0x1FF) >> 10 and (bps + 0xF) >> 5.
//
// Counters are u64 in the kernel and may pass 2^32 here (bytes), so the arithmetic is
// done with multiplications and Math.floor, never with 32-bit bitwise operators. Values
// stay exact while below 2^53 (byte counters scaled by 2^4: 2^49 bytes = 512 TiB).

import type { Stats } from "./stats.js";

/** Estimator period in milliseconds (the kernel's 2*HZ). */
export const ESTIMATOR_TICK_MS = 2000;

/** Scales of the stored averages (ip_vs_est.c): packets/conns 2^10, bytes 2^5. */
const PKT_SAMPLE_MUL = 512; // << 9
const BYTE_SAMPLE_MUL = 16; // << 4
const PKT_SCALE = 1024; // >> 10
const BYTE_SCALE = 32; // >> 5

/** avg + ((rate - avg) >> 2) with the s64 arithmetic shift (floor division by 4). */
function ewma(avg: number, rate: number): number {
  return avg + Math.floor((rate - avg) / 4);
}

/**
 * One estimation tick for one Stats (the body of the kernel's estimation loop,
 * ip_vs_chain_estimation / estimation_timer). Call every ESTIMATOR_TICK_MS.
 */
export function estimatorTick(s: Stats): void {
  s.cps = ewma(s.cps, (s.conns - s.lastConns) * PKT_SAMPLE_MUL);
  s.lastConns = s.conns;
  s.inpps = ewma(s.inpps, (s.inpkts - s.lastInpkts) * PKT_SAMPLE_MUL);
  s.lastInpkts = s.inpkts;
  s.outpps = ewma(s.outpps, (s.outpkts - s.lastOutpkts) * PKT_SAMPLE_MUL);
  s.lastOutpkts = s.outpkts;
  s.inbps = ewma(s.inbps, (s.inbytes - s.lastInbytes) * BYTE_SAMPLE_MUL);
  s.lastInbytes = s.inbytes;
  s.outbps = ewma(s.outbps, (s.outbytes - s.lastOutbytes) * BYTE_SAMPLE_MUL);
  s.lastOutbytes = s.outbytes;
}

/** Per-second rates as ipvsadm --rate shows them. */
export interface Rates {
  cps: number;
  inpps: number;
  outpps: number;
  inbps: number;
  outbps: number;
}

/** ip_vs_read_estimator: the averages unscaled with rounding. */
export function rateOf(s: Stats): Rates {
  return {
    cps: Math.floor((s.cps + 0x1ff) / PKT_SCALE),
    inpps: Math.floor((s.inpps + 0x1ff) / PKT_SCALE),
    outpps: Math.floor((s.outpps + 0x1ff) / PKT_SCALE),
    inbps: Math.floor((s.inbps + 0xf) / BYTE_SCALE),
    outbps: Math.floor((s.outbps + 0xf) / BYTE_SCALE),
  };
}

/**
 * ip_vs_zero_estimator: restart the averages from the current counters (used when
 * the counters are kept but the rates must restart, e.g. after a table change).
 */
export function estimatorZero(s: Stats): void {
  s.lastConns = s.conns;
  s.lastInpkts = s.inpkts;
  s.lastOutpkts = s.outpkts;
  s.lastInbytes = s.inbytes;
  s.lastOutbytes = s.outbytes;
  s.cps = s.inpps = s.outpps = s.inbps = s.outbps = 0;
}
