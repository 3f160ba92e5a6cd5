// The fuzz run's sender: a process in the sender namespace that writes frames [start, start +
// count) of a seed (frames.ts) to two AF_PACKET sockets, one per link of the director (the
// clients' link, and a port of the real servers' bridge), in sendmmsg batches, as fast as the
// kernel takes them or at most --rate frames a second, bounded by --seconds. Its sockets have
// PACKET_VNET_HDR, so that GSO aggregates go out with their virtio_net_hdr (plain frames with an
// all-zero one), and a filter that accepts nothing: it only sends.
//
//   node dist/src/fuzz/sender.js --target FILE --seed S [--start I] --count N [--rate PPS]
//        [--seconds T] --ifaces eth0,lan0
//
// stdout: a JSON line every second ({"progress":…}) and a last one with the totals: frames sent
// per link, refused by the kernel (errors, with the last errno) and dropped (ENOBUFS), per kind and
// mutation, and the time taken.

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { openPacketSocket, type PacketSocket } from "../io/afpacket.js";
import {
  FrameGen,
  FUZZ_KINDS,
  FUZZ_MAX_FRAME,
  FUZZ_MUTATIONS,
  FuzzFrame,
  type FuzzTarget,
} from "./frames.js";

/** The target as JSON: byte arrays as arrays of numbers. */
export function targetToJson(t: FuzzTarget): string {
  return JSON.stringify(t, (_k, v) => (v instanceof Uint8Array ? { u8: Array.from(v) } : v));
}

export function targetFromJson(s: string): FuzzTarget {
  return JSON.parse(s, (_k, v) =>
    v !== null && typeof v === "object" && Array.isArray((v as { u8?: unknown }).u8)
      ? Uint8Array.from((v as { u8: number[] }).u8)
      : v,
  ) as FuzzTarget;
}

export interface SenderTotals {
  sent: number;
  /** Per link: frames the kernel took. */
  sentBySide: [number, number];
  /** Refused by sendmmsg (EINVAL for a virtio_net_hdr the kernel would not take, EMSGSIZE…). */
  errors: number;
  lastErrno: number;
  /** ENOBUFS / EAGAIN: the device queue was full. */
  dropped: number;
  /** Frames generated (sent + errors + dropped, unless the run was cut short). */
  generated: number;
  /**
   * Frames whose VLAN tag is cut short (an 802.1Q or 802.1ad ethertype, under 18 bytes): the
   * receiving kernel drops them in skb_vlan_untag, before any packet socket sees them.
   */
  untagDiscards: number;
  byKind: Record<string, number>;
  byMutation: Record<string, number>;
  seconds: number;
  /** True when --seconds ended the run before --count. */
  timedOut: boolean;
}

/** A classic BPF program that accepts nothing (RET #0): the sender's sockets never queue a frame. */
const DROP_ALL = new Uint8Array([0x06, 0, 0, 0, 0, 0, 0, 0]);

function arg(argv: readonly string[], name: string, def?: string): string {
  const i = argv.indexOf(name);
  if (i >= 0 && i + 1 < argv.length) return argv[i + 1];
  if (def === undefined) throw new Error(`fuzz sender: ${name} is required`);
  return def;
}

export function runSender(argv: readonly string[]): SenderTotals {
  const target = targetFromJson(readFileSync(arg(argv, "--target"), "utf8"));
  const seed = Number(arg(argv, "--seed"));
  const start = Number(arg(argv, "--start", "0"));
  const count = Number(arg(argv, "--count"));
  const rate = Number(arg(argv, "--rate", "0"));
  const seconds = Number(arg(argv, "--seconds", "3600"));
  const ifaces = arg(argv, "--ifaces").split(",");
  const socks: PacketSocket[] = ifaces.map((name) => {
    const s = openPacketSocket(name, {
      batch: 64,
      vnetHdr: target.gso,
      txFrameSize: FUZZ_MAX_FRAME,
      snaplen: 256,
      rcvbuf: 0,
      auxdata: false,
    });
    s.attachFilter(DROP_ALL);
    return s;
  });
  const gen = new FrameGen(target, seed);
  const f = new FuzzFrame();
  const frame = new Uint8Array(FUZZ_MAX_FRAME);
  const byKind = new Float64Array(FUZZ_KINDS.length);
  const byMutation = new Float64Array(FUZZ_MUTATIONS.length);
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let nextReport = t0 + 1000;
  let i = start;
  const end = start + count;
  let timedOut = false;
  let untagDiscards = 0;
  const totals = (): { sent: number; errors: number; dropped: number } => {
    let sent = 0;
    let errors = 0;
    let dropped = 0;
    for (const s of socks) {
      sent += s.counters.txFrames;
      errors += s.counters.txErrors;
      dropped += s.counters.txDropped;
    }
    return { sent, errors, dropped };
  };
  while (i < end) {
    const batchEnd = Math.min(end, i + 64);
    for (; i < batchEnd; i++) {
      gen.frame(i, frame, f);
      byKind[f.kind]++;
      byMutation[f.mutation]++;
      const et = (frame[12] << 8) | frame[13];
      if ((et === 0x8100 || et === 0x88a8) && f.len < 18) untagDiscards++;
      socks[f.side < socks.length ? f.side : 0].send(frame, 0, f.len, f.hasVnet ? f.vnet : null);
    }
    for (const s of socks) s.flush();
    const now = performance.now();
    if (now > deadline) {
      timedOut = i < end;
      break;
    }
    if (rate > 0) {
      // Paced: the frames so far may not be ahead of rate × elapsed.
      const due = t0 + ((i - start) / rate) * 1000;
      if (due > now + 1) sleepMs(due - now);
    }
    if (now >= nextReport) {
      nextReport = now + 1000;
      const t = totals();
      process.stdout.write(
        `${JSON.stringify({ progress: { generated: i - start, ...t, seconds: (now - t0) / 1000 } })}\n`,
      );
    }
  }
  for (const s of socks) s.flush();
  const t = totals();
  const out: SenderTotals = {
    sent: t.sent,
    sentBySide: [socks[0]?.counters.txFrames ?? 0, socks[1]?.counters.txFrames ?? 0],
    errors: t.errors,
    lastErrno: Math.max(0, ...socks.map((s) => s.counters.lastTxErrno ?? 0)),
    dropped: t.dropped,
    generated: i - start,
    untagDiscards,
    byKind: Object.fromEntries(FUZZ_KINDS.map((k, j) => [k, byKind[j]])),
    byMutation: Object.fromEntries(FUZZ_MUTATIONS.map((k, j) => [k, byMutation[j]])),
    seconds: (performance.now() - t0) / 1000,
    timedOut,
  };
  for (const s of socks) s.close();
  return out;
}

/** Blocks the thread (the sender has nothing else to do; Atomics.wait sleeps without spinning). */
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, Math.min(ms, 1000));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const totals = runSender(process.argv.slice(2));
  process.stdout.write(`${JSON.stringify({ totals })}\n`);
}
