// Child process for test/e2e/ring*.test.ts, run as `ip netns exec NS node ring-helper.js MODE …`.
// Prints JSON lines: {"ready":true} once the socket is open, then one result line.
//
//   recv IO IFNAME SECONDS [FILTER_JSON]   → counts frames for SECONDS (IO = mmsg|ring), checks UDP
//                                            checksums, optional owned filter {owned, locals, rips}
//   gen  IFNAME DST_MAC SRC_IP DST_IP DPORT SECONDS PPS [FLOWS [VLAN [TX]]]   TX = mmsg | txring
//                                          → 64-byte UDP frames (60 on the wire before FCS) from FLOWS
//                                            source ports, paced to PPS (0 = as fast as possible)
//
// The generator fills every tx slot once and then only commits lengths: the per-frame JS work is a
// few stores, so a Node process pushes several hundred kpps through sendmmsg.

import { openPacketSocket } from "../../src/io/afpacket.js";
import { compileOwnedFilter } from "../../src/io/bpf.js";
import type { FrameIo } from "../../src/io/frame-io.js";
import { openRingSocket } from "../../src/io/ring.js";
import { TxRing } from "../../src/io/txring.js";

function ip(s: string): number {
  return s.split(".").reduce((a, p) => ((a << 8) | Number(p)) >>> 0, 0);
}

function csum(b: Uint8Array, off: number, len: number, init = 0): number {
  let sum = init;
  for (let i = 0; i < len; i += 2) sum += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

function udpFrame(
  f: Uint8Array,
  srcMac: Uint8Array,
  dstMac: number[],
  src: number,
  dst: number,
  sport: number,
  dport: number,
): number {
  const payload = 18; // 14 + 20 + 8 + 18 = 60 bytes: the Ethernet minimum, 64 with the FCS
  f.set(dstMac, 0);
  f.set(srcMac, 6);
  f[12] = 0x08;
  f[13] = 0;
  const ipLen = 20 + 8 + payload;
  f.set([0x45, 0, ipLen >> 8, ipLen & 0xff, 0, 1, 0x40, 0, 64, 17, 0, 0], 14);
  for (let i = 0; i < 4; i++) {
    f[26 + i] = (src >>> (24 - 8 * i)) & 0xff;
    f[30 + i] = (dst >>> (24 - 8 * i)) & 0xff;
  }
  const ic = ~csum(f, 14, 20) & 0xffff;
  f[24] = ic >> 8;
  f[25] = ic & 0xff;
  f.set([sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, 0, 8 + payload, 0, 0], 34);
  for (let i = 0; i < payload; i++) f[42 + i] = i;
  let ps = csum(f, 26, 8) + 17 + 8 + payload;
  ps = csum(f, 34, 8 + payload, ps);
  const uc = ~ps & 0xffff || 0xffff;
  f[40] = uc >> 8;
  f[41] = uc & 0xff;
  return 60;
}

/** UDP checksum check of an IPv4 frame (one 802.1Q tag skipped); null when it is not UDP. */
function udpChecksumOk(f: Uint8Array, len: number): boolean | null {
  const l3 = f[12] === 0x81 && f[13] === 0 ? 18 : 14;
  if (len < l3 + 28 || f[l3 - 2] !== 8 || f[l3 - 1] !== 0 || f[l3 + 9] !== 17) return null;
  const u = l3 + 20;
  const ulen = (f[u + 4] << 8) | f[u + 5];
  if ((f[u + 6] | f[u + 7]) === 0) return true;
  const ps = csum(f, l3 + 12, 8) + 17 + ulen;
  return csum(f, u, ulen, ps) === 0xffff;
}

function modeRecv(io: string, ifname: string, seconds: number, filterJson?: string): object {
  const spec =
    filterJson === undefined
      ? undefined
      : (JSON.parse(filterJson) as Record<"owned" | "locals" | "rips", string[]>);
  const filter =
    spec === undefined
      ? undefined
      : compileOwnedFilter({
          owned: spec.owned.map(ip),
          locals: spec.locals.map(ip),
          rips: spec.rips.map(ip),
          snaplen: 2048,
        });
  let s: FrameIo;
  if (io === "ring") s = openRingSocket(ifname, { filter });
  else {
    const p = openPacketSocket(ifname);
    if (filter !== undefined) p.attachFilter(filter);
    s = p;
  }
  console.log(JSON.stringify({ ready: true }));
  const end = performance.now() + seconds * 1000;
  let udp = 0;
  let udpBad = 0;
  const dsts = new Map<string, number>();
  const tagged = new Map<number, number>();
  while (performance.now() < end) {
    const n = s.recvBatch(20);
    for (let i = 0; i < n; i++) {
      const f = s.frame(i);
      const ok = udpChecksumOk(f, s.length(i));
      if (ok === null) continue;
      udp++;
      if (!ok) udpBad++;
      const o = f[12] === 0x81 ? 34 : 30;
      if (o === 34) tagged.set((f[14] << 8) | f[15], (tagged.get((f[14] << 8) | f[15]) ?? 0) + 1);
      const d = `${f[o]}.${f[o + 1]}.${f[o + 2]}.${f[o + 3]}`;
      dsts.set(d, (dsts.get(d) ?? 0) + 1);
    }
  }
  const out = {
    ok: true,
    counters: s.counters,
    udp,
    udpBad,
    dsts: Object.fromEntries(dsts),
    tagged: Object.fromEntries(tagged),
    kernel: s.kernelStats(),
  };
  s.close();
  return out;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Waits until the next batch is due instead of spinning: a paced generator then leaves its CPU to
 * whatever shares it (the livelock figures put the daemon's worker beside it), as an outside
 * sender would. Atomics.wait sleeps in the kernel (futex) with ~50–100 µs of timer slack, so
 * short gaps are still spun.
 */
function pace(ms: number): void {
  if (ms > 0.1) Atomics.wait(sleeper, 0, 0, ms - 0.05);
}

function modeGen(
  ifname: string,
  dstMac: string,
  src: string,
  dst: string,
  dport: number,
  seconds: number,
  pps: number,
  flows: number,
  vlan: number,
  tx: string,
): object {
  if (tx === "txring") return genTxRing(ifname, dstMac, src, dst, dport, seconds, pps, flows);
  const s = openPacketSocket(ifname, { batch: 64, rcvbuf: 0 });
  let frameLen = 60;
  const mac = dstMac.split(":").map((x) => Number.parseInt(x, 16));
  // One frame per tx slot, each a different flow (source port), written once.
  for (let i = 0; i < s.batch; i++) {
    const f = s.txBuffer();
    let len = udpFrame(f, s.mac, mac, ip(src), ip(dst), 10000 + (i % flows), dport);
    if (vlan > 0) {
      f.copyWithin(16, 12, len);
      f.set([0x81, 0, vlan >> 8, vlan & 0xff], 12);
      len += 4;
    }
    frameLen = len;
    s.commit(len);
  }
  s.flush();
  console.log(JSON.stringify({ ready: true }));
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let sent = 0;
  for (;;) {
    const now = performance.now();
    if (now >= end) break;
    if (pps > 0 && sent > ((now - t0) / 1000) * pps) {
      pace(t0 + (sent / pps) * 1000 - now);
      continue;
    }
    for (let i = 0; i < s.batch; i++) s.commit(frameLen);
    sent += s.flush();
  }
  const secs = (performance.now() - t0) / 1000;
  const out = { ok: true, sent, seconds: secs, pps: Math.round(sent / secs), counters: s.counters };
  s.close();
  return out;
}

/** The same load through a TPACKET_V2 tx ring: slots written once per lap, one kick per 64 frames. */
function genTxRing(
  ifname: string,
  dstMac: string,
  src: string,
  dst: string,
  dport: number,
  seconds: number,
  pps: number,
  flows: number,
): object {
  const r = new TxRing(ifname, { frames: 1024 });
  const p = openPacketSocket(ifname, { batch: 1, rcvbuf: 0, sndbuf: 0 });
  const mac = dstMac.split(":").map((x) => Number.parseInt(x, 16));
  const srcMac = p.mac;
  p.close();
  for (let k = 0; k < r.frames; k++)
    udpFrame(r.view(k), srcMac, mac, ip(src), ip(dst), 10000 + (k % flows), dport);
  console.log(JSON.stringify({ ready: true }));
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let sent = 0;
  for (;;) {
    const now = performance.now();
    if (now >= end) break;
    if (pps > 0 && sent > ((now - t0) / 1000) * pps) continue;
    for (let k = 0; k < 64; k++) {
      if (r.slot() === null) break;
      r.commit(60);
    }
    sent += r.flush();
  }
  const secs = (performance.now() - t0) / 1000;
  const out = {
    ok: true,
    sent,
    seconds: secs,
    pps: Math.round(sent / secs),
    full: r.full,
    wrongFormat: r.wrongFormat,
  };
  r.close();
  return out;
}

function main(argv: string[]): void {
  const [mode, ...a] = argv;
  if (mode === undefined) return;
  let out: object;
  try {
    if (mode === "recv") out = modeRecv(a[0], a[1], Number(a[2]), a[3]);
    else if (mode === "gen")
      out = modeGen(
        a[0],
        a[1],
        a[2],
        a[3],
        Number(a[4]),
        Number(a[5]),
        Number(a[6]),
        Number(a[7] ?? 64),
        Number(a[8] ?? 0),
        a[9] ?? "mmsg",
      );
    else out = { ok: false, error: `unknown mode ${mode}` };
  } catch (e) {
    out = { ok: false, error: String(e) };
  }
  console.log(JSON.stringify(out));
}

main(process.argv.slice(2));
