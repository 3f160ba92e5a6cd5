// Child process for test/e2e/afpacket.test.ts, run as `ip netns exec NS node afpacket-helper.js MODE …`
// so that the packet socket lives in the namespace (the way `tsvs daemon` runs). Prints one JSON line.
// Frames are built here by hand, independently of src/core/packet, so a codec bug cannot hide itself.
//
//   arp   IFNAME SENDER_IP TARGET_IP          → ARP request out, the kernel's reply back
//   icmp  IFNAME SRC_IP DST_IP DST_MAC        → ICMP echo request out, the peer kernel's echo reply back
//   burst IFNAME DST_MAC COUNT                → COUNT frames in batches; pps and heap growth per frame
//
// Run without arguments (e.g. picked up by `node --test dist/test/`), it does nothing.

import { getHeapSpaceStatistics } from "node:v8";
import { openPacketSocket, type PacketSocket } from "../../src/io/afpacket.js";

const ETHERTYPE_ARP = 0x0806;
const ETHERTYPE_IPV4 = 0x0800;
// IEEE 802 "local experimental" ethertype: no kernel protocol handles it, so the burst stays silent.
const ETHERTYPE_EXPERIMENTAL = 0x88b5;

function ipBytes(s: string): number[] {
  return s.split(".").map((p) => Number.parseInt(p, 10));
}

function macBytes(s: string): number[] {
  return s.split(":").map((p) => Number.parseInt(p, 16));
}

function hex(b: Uint8Array, off: number, len: number): string {
  return Array.from(b.subarray(off, off + len), (x) => x.toString(16).padStart(2, "0")).join(":");
}

function dotted(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

function be16(b: Uint8Array, off: number): number {
  return (b[off] << 8) | b[off + 1];
}

function inetChecksum(b: Uint8Array, off: number, len: number): number {
  let sum = 0;
  for (let i = 0; i < len; i += 2) sum += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function arpRequest(srcMac: Uint8Array, senderIp: string, targetIp: string): Uint8Array {
  const f = new Uint8Array(60); // minimum Ethernet payload, zero padded
  f.fill(0xff, 0, 6);
  f.set(srcMac, 6);
  f.set([ETHERTYPE_ARP >> 8, ETHERTYPE_ARP & 0xff], 12);
  // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4, op 1 (request)
  f.set([0, 1, 8, 0, 6, 4, 0, 1], 14);
  f.set(srcMac, 22);
  f.set(ipBytes(senderIp), 28);
  f.set(ipBytes(targetIp), 38); // target MAC (32..37) stays zero
  return f;
}

function echoRequest(
  srcMac: Uint8Array,
  dstMac: number[],
  src: string,
  dst: string,
  id: number,
  seq: number,
): Uint8Array {
  const payload = 32;
  const f = new Uint8Array(14 + 20 + 8 + payload);
  f.set(dstMac, 0);
  f.set(srcMac, 6);
  f.set([ETHERTYPE_IPV4 >> 8, ETHERTYPE_IPV4 & 0xff], 12);
  const ipLen = 20 + 8 + payload;
  // version 4, IHL 5, tos 0, total length, id 0x1234, DF, TTL 64, proto 1 (ICMP)
  f.set([0x45, 0, ipLen >> 8, ipLen & 0xff, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0], 14);
  f.set(ipBytes(src), 26);
  f.set(ipBytes(dst), 30);
  const ipc = inetChecksum(f, 14, 20);
  f[24] = ipc >> 8;
  f[25] = ipc & 0xff;
  f.set([8, 0, 0, 0, id >> 8, id & 0xff, seq >> 8, seq & 0xff], 34);
  for (let i = 0; i < payload; i++) f[42 + i] = i;
  const ic = inetChecksum(f, 34, 8 + payload);
  f[36] = ic >> 8;
  f[37] = ic & 0xff;
  return f;
}

/** Receives until match() accepts a frame or the deadline passes; returns that frame's index or -1. */
function await1(
  s: PacketSocket,
  ms: number,
  match: (f: Uint8Array, len: number, i: number) => boolean,
  seen: (f: Uint8Array, len: number) => void,
): number {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return -1;
    const n = s.recvBatch(left);
    for (let i = 0; i < n; i++) {
      seen(s.frame(i), s.length(i));
      if (match(s.frame(i), s.length(i), i)) return i;
    }
  }
}

function modeArp(ifname: string, senderIp: string, targetIp: string): object {
  const s = openPacketSocket(ifname);
  try {
    const req = arpRequest(s.mac, senderIp, targetIp);
    let sawOwnRequest = false;
    // Built in place in the tx slot (txBuffer/commit), the path an engine writing whole frames uses.
    s.txBuffer().set(req);
    s.commit(req.length);
    const sent = s.flush();
    const sender = ipBytes(senderIp);
    const i = await1(
      s,
      3000,
      (f, len) =>
        len >= 42 &&
        be16(f, 12) === ETHERTYPE_ARP &&
        be16(f, 20) === 2 &&
        dotted(f, 28) === targetIp &&
        dotted(f, 38) === sender.join("."),
      (f, len) => {
        if (
          len >= 42 &&
          be16(f, 12) === ETHERTYPE_ARP &&
          be16(f, 20) === 1 &&
          hex(f, 22, 6) === hex(s.mac, 0, 6)
        ) {
          sawOwnRequest = true;
        }
      },
    );
    if (i < 0) return { ok: false, sent, sawOwnRequest, error: "no ARP reply within 3 s" };
    const f = s.frame(i);
    return {
      ok: true,
      sent,
      sawOwnRequest,
      ourMac: hex(s.mac, 0, 6),
      replyDstMac: hex(f, 0, 6),
      replySenderMac: hex(f, 22, 6),
      replyTargetMac: hex(f, 32, 6),
      pktType: s.pktType(i),
      mtu: s.mtu,
      ifindex: s.ifindex,
    };
  } finally {
    s.close();
  }
}

function modeIcmp(ifname: string, src: string, dst: string, dstMac: string): object {
  const s = openPacketSocket(ifname);
  try {
    const id = process.pid & 0xffff;
    const seq = 7;
    const req = echoRequest(s.mac, macBytes(dstMac), src, dst, id, seq);
    s.send(req, 0, req.length);
    const sent = s.flush();
    const i = await1(
      s,
      3000,
      (f, len) =>
        len >= 42 &&
        be16(f, 12) === ETHERTYPE_IPV4 &&
        f[23] === 1 &&
        dotted(f, 26) === dst &&
        dotted(f, 30) === src &&
        f[34] === 0 &&
        be16(f, 38) === id &&
        be16(f, 40) === seq,
      () => {},
    );
    if (i < 0) return { ok: false, sent, error: "no echo reply within 3 s" };
    const f = s.frame(i);
    const len = s.length(i);
    const ipLen = be16(f, 16);
    return {
      ok: true,
      sent,
      replyDstMac: hex(f, 0, 6),
      ourMac: hex(s.mac, 0, 6),
      ipChecksumOk: inetChecksum(f, 14, 20) === 0,
      icmpChecksumOk: inetChecksum(f, 34, ipLen - 20) === 0,
      payloadEchoed: hex(f, 42, 32) === hex(req, 42, 32),
      frameLen: len,
    };
  } finally {
    s.close();
  }
}

// Separate functions called many times, so that they are optimized before the measured rounds and
// the heap delta shows allocation by the data path, not by the JIT.
function sendRound(s: PacketSocket, f: Uint8Array, n: number, tag: number): void {
  for (let k = 0; k < n; k++) {
    f[14] = (tag + k) & 0xff; // vary the payload: the copy path is exercised, not a cached frame
    s.send(f, 0, f.length); // flushes by itself every `batch` frames
  }
  s.flush();
}

function emptyRecvRound(s: PacketSocket, n: number): number {
  let got = 0;
  for (let k = 0; k < n; k++) got += s.recvBatch(0);
  return got;
}

/**
 * Bytes in V8's young generation: short-lived JS objects (what a per-packet allocation would be)
 * land there, while JIT code and feedback go to other spaces and do not blur the figure.
 */
function newSpaceUsed(): number {
  for (const sp of getHeapSpaceStatistics()) if (sp.space_name === "new_space") return sp.space_used_size;
  return Number.NaN;
}

function modeBurst(ifname: string, dstMac: string, count: number): object {
  const s = openPacketSocket(ifname);
  try {
    const f = new Uint8Array(60);
    f.set(macBytes(dstMac), 0);
    f.set(s.mac, 6);
    f.set([ETHERTYPE_EXPERIMENTAL >> 8, ETHERTYPE_EXPERIMENTAL & 0xff], 12);
    const round = 500;
    const gc = (globalThis as { gc?: () => void }).gc;
    // Warm-up: the first quarter of the burst (these frames are sent and counted too).
    let sent = 0;
    for (; sent + round <= count / 4; sent += round) sendRound(s, f, round, sent);
    gc?.();
    const heap0 = newSpaceUsed();
    const t0 = process.hrtime.bigint();
    const measuredFrom = sent;
    for (; sent < count; sent += round) sendRound(s, f, Math.min(round, count - sent), sent);
    const t1 = process.hrtime.bigint();
    const heap1 = newSpaceUsed();
    const measured = count - measuredFrom;

    for (let k = 0; k < 40; k++) emptyRecvRound(s, 1000);
    gc?.();
    const rx0 = newSpaceUsed();
    const polls = 20_000;
    for (let k = 0; k < polls / 1000; k++) emptyRecvRound(s, 1000);
    const rx1 = newSpaceUsed();
    const secs = Number(t1 - t0) / 1e9;
    return {
      ok: true,
      counters: s.counters,
      measured,
      seconds: secs,
      pps: Math.round(measured / secs),
      heapBytesPerTxFrame: (heap1 - heap0) / measured,
      heapBytesPerEmptyRecv: (rx1 - rx0) / polls,
      gcExposed: gc !== undefined,
    };
  } finally {
    s.close();
  }
}

function main(argv: string[]): void {
  const [mode, ...a] = argv;
  if (mode === undefined) return;
  let out: object;
  try {
    if (mode === "arp") out = modeArp(a[0], a[1], a[2]);
    else if (mode === "icmp") out = modeIcmp(a[0], a[1], a[2], a[3]);
    else if (mode === "burst") out = modeBurst(a[0], a[1], Number(a[2]));
    else out = { ok: false, error: `unknown mode ${mode}` };
  } catch (e) {
    out = { ok: false, error: String(e) };
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main(process.argv.slice(2));
