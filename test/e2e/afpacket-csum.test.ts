// CHECKSUM_PARTIAL frames on an AF_PACKET socket, with the offloads veth has by default left ON:
//
//   ns A (tsvs-afc-PID-a)  ifA 198.18.0.1/24  ⇄  ifB 198.18.0.2/24  ns B (tsvs-afc-PID-b)
//
// ns B routes 198.18.1.0/24 via ns A, as a client routes a VIP via the director. Its kernel sends
// UDP datagrams and a TCP SYN there, and a bulk TCP stream to a listener in ns A (TSO super-frames);
// veth hands them over CHECKSUM_PARTIAL. A packet socket in ns B also sends two tagged frames
// (802.1Q, and 802.1ad+802.1Q): the receiving side moves the outer tag into skb metadata
// (skb_vlan_untag in __netif_receive_skb_core, before the packet taps), which is what a NIC with
// rx-vlan-offload does too; no 8021q module is needed. The packet socket lives in ns A in a child process (this
// file re-run as `ip netns exec A node afpacket-csum.test.js child …`), which verifies each L4
// checksum with its own code, independent of src/core/packet, and prints one JSON line.
// The first describe (pure functions) runs without root.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { performance } from "node:perf_hooks";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { completeL4Checksum, insertVlanTag, openPacketSocket } from "../../src/io/afpacket.js";
import { addNetns, addVethPair, delNetns, ip, linkMac, nsExec, nsExecStatus } from "../../src/io/netns.js";
import { e2eSkip } from "../support/e2e-env.js";

// ---------------------------------------------------------------- independent frame helpers

function be16(b: Uint8Array, off: number): number {
  return (b[off] << 8) | b[off + 1];
}

function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 8) & 0xff;
  b[off + 1] = v & 0xff;
}

function sum16(b: Uint8Array, off: number, len: number, s: number): number {
  for (let i = 0; i < len; i += 2) s += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  return s;
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

interface L4Info {
  tags: number;
  l3: number;
  proto: number;
  l4: number;
  l4Len: number;
}

/** Ethernet (+ up to two tags) / IPv4 / TCP or UDP, or null. */
function l4Of(f: Uint8Array, len: number): L4Info | null {
  let off = 12;
  let tags = 0;
  while (off + 2 <= len && (be16(f, off) === 0x8100 || be16(f, off) === 0x88a8) && tags < 2) {
    off += 4;
    tags++;
  }
  if (off + 2 > len || be16(f, off) !== 0x0800) return null;
  const l3 = off + 2;
  const ihl = (f[l3] & 15) * 4;
  const tot = be16(f, l3 + 2);
  const proto = f[l3 + 9];
  if (proto !== 6 && proto !== 17) return null;
  if (l3 + tot > len) return null;
  return { tags, l3, proto, l4: l3 + ihl, l4Len: tot - ihl };
}

/** The whole segment plus pseudo-header sums to 0xffff (or UDP says "no checksum"). */
function l4Verifies(f: Uint8Array, x: L4Info): boolean {
  if (x.proto === 17 && be16(f, x.l4 + 6) === 0) return true;
  let s = sum16(f, x.l3 + 12, 8, 0) + x.proto + x.l4Len;
  s = sum16(f, x.l4, x.l4Len, s);
  return fold(s) === 0xffff;
}

/** The L4 checksum field holds the folded pseudo-header sum (a partial checksum left for GSO). */
function l4HoldsPseudoSum(f: Uint8Array, x: L4Info): boolean {
  const field = x.proto === 6 ? 16 : 6;
  return be16(f, x.l4 + field) === fold(sum16(f, x.l3 + 12, 8, 0) + x.proto + x.l4Len);
}

/** A frame as a sender with tx checksum offload hands it over: L4 field = folded pseudo-header sum. */
function partialFrame(proto: 6 | 17, payload: number, tags: number[] = []): { f: Uint8Array; len: number } {
  const hl = proto === 6 ? 20 : 8;
  const l3 = 14 + tags.length * 4;
  const len = l3 + 20 + hl + payload;
  const f = new Uint8Array(len + 4 + 8); // room for a tag + trailing garbage that must not count
  f.fill(0xee, len);
  f.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2], 0);
  let off = 12;
  for (const t of tags) {
    put16(f, off, 0x8100);
    put16(f, off + 2, t);
    off += 4;
  }
  put16(f, off, 0x0800);
  f.set([0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0, 198, 18, 0, 2, 198, 18, 1, 5], l3);
  put16(f, l3 + 2, 20 + hl + payload);
  put16(f, l3 + 10, ~fold(sum16(f, l3, 20, 0)) & 0xffff);
  const l4 = l3 + 20;
  put16(f, l4, 40000);
  put16(f, l4 + 2, 80);
  if (proto === 6) {
    f[l4 + 12] = 0x50;
    f[l4 + 13] = 0x02;
  } else put16(f, l4 + 4, hl + payload);
  for (let k = 0; k < payload; k++) f[l4 + hl + k] = (k * 7 + 3) & 0xff;
  const pseudo = fold(sum16(f, l3 + 12, 8, 0) + proto + hl + payload);
  put16(f, l4 + (proto === 6 ? 16 : 6), pseudo);
  return { f, len };
}

/** A frame as it is on the wire: the L4 checksum filled in, computed here. */
function wireFrame(proto: 6 | 17, payload: number, tags: number[], tpids: number[], dport: number) {
  const { f, len } = partialFrame(proto, payload, tags);
  for (let k = 0; k < tpids.length; k++) put16(f, 12 + 4 * k, tpids[k]);
  const x = l4Of(f, len);
  if (x === null) throw new Error("wireFrame: not TCP/UDP");
  put16(f, x.l3 + 12, 0xc612_6402 >>> 16); // 198.18.100.2 → 198.18.100.1
  put16(f, x.l3 + 14, 0x6402);
  put16(f, x.l3 + 18, 0x6401);
  put16(f, x.l3 + 10, 0);
  put16(f, x.l3 + 10, ~fold(sum16(f, x.l3, 20, 0)) & 0xffff);
  put16(f, x.l4 + 2, dport);
  const field = x.l4 + (proto === 6 ? 16 : 6);
  put16(f, field, 0);
  put16(f, field, ~fold(sum16(f, x.l3 + 12, 8, proto + x.l4Len) + sum16(f, x.l4, x.l4Len, 0)) & 0xffff);
  return { f, len };
}

function hex(b: Uint8Array, off: number, len: number): string {
  return Array.from(b.subarray(off, off + len), (v) => v.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------- child (inside ns A or B)

/** From ns B: tagged frames, which the receiving veth untags into skb metadata (skb_vlan_untag). */
function childVlanSend(ifname: string, dstMac: string): void {
  const s = openPacketSocket(ifname, { batch: 4 });
  const mac = dstMac.split(":").map((h) => Number.parseInt(h, 16));
  for (const w of [
    wireFrame(17, 33, [100], [0x8100], 7100),
    wireFrame(17, 5, [10, 20], [0x88a8, 0x8100], 7101),
  ]) {
    w.f.set(mac, 0);
    w.f.set(s.mac, 6);
    s.send(w.f, 0, w.len);
  }
  s.flush();
  process.stdout.write(`${JSON.stringify({ ok: true, counters: s.counters })}\n`);
  s.close();
}

interface RxReport {
  ok: boolean;
  frames: number;
  udp: { dport: number; vlan: number; len: number; csumOk: boolean; head: string }[];
  syn: { dport: number; csumOk: boolean }[];
  bulkSegments: number;
  bulkChecked: number;
  bulkBad: number;
  /** Bulk frames that came as aggregates (offload word with a gso_type), and those whose field was not the pseudo sum. */
  bulkAggregates: number;
  bulkAggregateLargest: number;
  bulkAggregateBad: number;
  counters: Record<string, number>;
}

async function childRx(ifname: string, ms: number, listenPort: number): Promise<void> {
  // The kernel completes handshakes and queues data for this listener; nobody needs to read it.
  const server = createServer(() => {});
  server.listen(listenPort, "198.18.0.1");
  await once(server, "listening");
  const s = openPacketSocket(ifname, { batch: 64 });
  const rep: RxReport = {
    ok: true,
    frames: 0,
    udp: [],
    syn: [],
    bulkSegments: 0,
    bulkChecked: 0,
    bulkBad: 0,
    bulkAggregates: 0,
    bulkAggregateLargest: 0,
    bulkAggregateBad: 0,
    counters: {},
  };
  process.stdout.write("ready\n");
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const n = s.recvBatch(20);
    for (let i = 0; i < n; i++) {
      rep.frames++;
      const f = s.frame(i);
      const len = s.length(i);
      const x = l4Of(f, len);
      if (x === null) continue;
      const dport = be16(f, x.l4 + 2);
      const vlan = x.tags > 0 ? be16(f, 14) & 0xfff : -1;
      if (x.proto === 17 && dport >= 7000 && dport < 7200) {
        rep.udp.push({ dport, vlan, len, csumOk: l4Verifies(f, x), head: hex(f, 12, 2 + 4 * x.tags) });
      } else if (x.proto === 6 && dport === 8080 && f[x.l4 + 13] === 0x02) {
        rep.syn.push({ dport, csumOk: l4Verifies(f, x) });
      } else if (x.proto === 6 && dport === listenPort && x.l4Len > 20 + ((f[x.l4 + 12] >>> 4) - 5) * 4) {
        rep.bulkSegments++;
        if (s.offload(i) !== 0) {
          // An aggregate keeps its partial checksum: the kernel finishes it per segment on the way out.
          rep.bulkAggregates++;
          rep.bulkAggregateLargest = Math.max(rep.bulkAggregateLargest, len);
          if (!l4HoldsPseudoSum(f, x)) rep.bulkAggregateBad++;
        } else {
          rep.bulkChecked++;
          if (!l4Verifies(f, x)) rep.bulkBad++;
        }
      }
    }
  }
  rep.counters = { ...s.counters };
  s.close();
  server.close();
  process.stdout.write(`${JSON.stringify(rep)}\n`);
}

/**
 * Per-frame cost of PACKET_AUXDATA (kernel cmsg + our parse): two receivers on one interface, one
 * with auxdata and one without, drain the same frames; plus the JS cost of completing a checksum.
 */
function childCost(txIf: string, rxIf: string, count: number): void {
  const tx = openPacketSocket(txIf, { batch: 64 });
  const on = openPacketSocket(rxIf, { batch: 64, auxdata: true });
  const off = openPacketSocket(rxIf, { batch: 64, auxdata: false });
  const frame = new Uint8Array(60);
  frame.fill(0xff, 0, 6); // broadcast: no MAC filter question
  frame.set(tx.mac, 6);
  put16(frame, 12, 0x88b5);
  let tOn = 0;
  let tOff = 0;
  let nOn = 0;
  let nOff = 0;
  const drain = (s: typeof on, want: number): number => {
    let got = 0;
    for (let tries = 0; got < want && tries < 1000; tries++) got += s.recvBatch(tries === 0 ? 0 : 5);
    return got;
  };
  for (let sent = 0, round = 0; sent < count; sent += 64, round++) {
    for (let k = 0; k < 64; k++) tx.send(frame, 0, 60);
    tx.flush();
    // Alternate who goes first: the second one may find its frames already queued longer.
    if (round % 2 === 0) {
      let t = performance.now();
      nOn += drain(on, 64);
      tOn += performance.now() - t;
      t = performance.now();
      nOff += drain(off, 64);
      tOff += performance.now() - t;
    } else {
      let t = performance.now();
      nOff += drain(off, 64);
      tOff += performance.now() - t;
      t = performance.now();
      nOn += drain(on, 64);
      tOn += performance.now() - t;
    }
  }
  // Completion of one partial checksum, in JS, for a SYN-sized and a full-MTU TCP frame.
  const completion = (payload: number): number => {
    const { f, len } = partialFrame(6, payload);
    const iters = 200_000;
    for (let k = 0; k < 10_000; k++) completeL4Checksum(f, len);
    const t = performance.now();
    for (let k = 0; k < iters; k++) completeL4Checksum(f, len);
    return ((performance.now() - t) * 1e6) / iters;
  };
  const out = {
    ok: true,
    nOn,
    nOff,
    nsPerFrameAuxOn: (tOn * 1e6) / Math.max(1, nOn),
    nsPerFrameAuxOff: (tOff * 1e6) / Math.max(1, nOff),
    nsCompleteSyn: completion(0),
    nsComplete1500: completion(1460),
  };
  tx.close();
  on.close();
  off.close();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

const isChild = process.argv[2] === "child";
if (isChild) {
  const [mode, ...a] = process.argv.slice(3);
  if (mode === "rx") await childRx(a[0], Number(a[1]), Number(a[2]));
  else if (mode === "vlan-send") childVlanSend(a[0], a[1]);
  else if (mode === "cost") childCost(a[0], a[1], Number(a[2]));
  else throw new Error(`unknown child mode ${mode}`);
}

// ---------------------------------------------------------------- tests

if (!isChild) {
  describe("completing CHECKSUM_PARTIAL checksums and restoring VLAN tags (pure)", () => {
    const cases: { name: string; proto: 6 | 17; payload: number; tags?: number[] }[] = [
      { name: "TCP SYN", proto: 6, payload: 0 },
      { name: "UDP, odd payload", proto: 17, payload: 101 },
      { name: "TCP, full MTU", proto: 6, payload: 1460 },
      { name: "UDP behind an 802.1Q tag", proto: 17, payload: 18, tags: [100] },
      { name: "TCP behind QinQ", proto: 6, payload: 7, tags: [10, 20] },
    ];
    for (const c of cases) {
      it(`completes a partial ${c.name} checksum so that it verifies`, () => {
        const { f, len } = partialFrame(c.proto, c.payload, c.tags);
        const x = l4Of(f, len);
        assert.ok(x !== null);
        assert.equal(l4Verifies(f, x), false, "a pseudo-header-only checksum must not verify");
        assert.equal(completeL4Checksum(f, len), true);
        assert.equal(l4Verifies(f, x), true);
      });
    }

    it("ignores Ethernet padding beyond the IP total length", () => {
      const { f, len } = partialFrame(17, 1);
      assert.equal(completeL4Checksum(f, len + 8), true); // 0xee bytes after the datagram
      const x = l4Of(f, len);
      assert.ok(x !== null && l4Verifies(f, x));
    });

    const refused: { name: string; mutate: (f: Uint8Array) => void; cut?: number }[] = [
      { name: "a fragment (MF)", mutate: (f) => put16(f, 20, 0x2000) },
      { name: "a non-first fragment", mutate: (f) => put16(f, 20, 0x0010) },
      {
        name: "ICMP",
        mutate: (f) => {
          f[23] = 1;
        },
      },
      { name: "IPv6 ethertype", mutate: (f) => put16(f, 12, 0x86dd) },
      { name: "a total length beyond the frame", mutate: () => {}, cut: 1 },
      {
        name: "an IHL below 5",
        mutate: (f) => {
          f[14] = 0x44;
        },
      },
    ];
    for (const r of refused) {
      it(`leaves ${r.name} untouched`, () => {
        const { f, len } = partialFrame(17, 30);
        r.mutate(f);
        const copy = Uint8Array.from(f);
        assert.equal(completeL4Checksum(f, len - (r.cut ?? 0)), false);
        assert.deepEqual(f, copy);
      });
    }

    it("puts a stripped tag back between the MAC addresses and the ethertype", () => {
      const { f, len } = partialFrame(17, 5);
      const orig = Uint8Array.from(f.subarray(0, len));
      assert.equal(insertVlanTag(f, len, 0x8100, 0x2064), len + 4);
      assert.deepEqual(f.subarray(0, 12), orig.subarray(0, 12));
      assert.deepEqual([...f.subarray(12, 16)], [0x81, 0x00, 0x20, 0x64]);
      assert.deepEqual(f.subarray(16, len + 4), orig.subarray(12));
      assert.equal(insertVlanTag(f, f.length - 2, 0x8100, 1), f.length - 2, "no room: unchanged");
    });
  });

  const skip = e2eSkip("AF_PACKET checksum e2e");

  const SELF = fileURLToPath(import.meta.url);
  const NS_A = `tsvs-afc-${process.pid}-a`;
  const NS_B = `tsvs-afc-${process.pid}-b`;
  const tag = process.pid.toString(36);
  const IF_A = `tsvca${tag}`;
  const IF_B = `tsvcb${tag}`;
  const IF_C1 = `tsvc1${tag}`;
  const IF_C2 = `tsvc2${tag}`;
  const BULK_PORT = 5001;

  /** Runs this file as a child in ns; `onReady` runs once it printed "ready". Returns its JSON line. */
  async function child(ns: string, args: string[], onReady?: () => void): Promise<Record<string, unknown>> {
    const p = spawn("ip", ["netns", "exec", ns, process.execPath, SELF, "child", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    let readySeen = false;
    p.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (!readySeen && out.includes("ready\n")) {
        readySeen = true;
        onReady?.();
      }
    });
    const [code] = (await once(p, "exit")) as [number | null];
    assert.equal(code, 0, `child ${args[0]} exited ${code}: ${err}`);
    const line = out.trim().split("\n").pop() ?? "{}";
    return JSON.parse(line) as Record<string, unknown>;
  }

  // The kernel of ns B sends: UDP of several sizes and a SYN toward 198.18.1.5 (routed via ns A),
  // and 256 KiB over TCP to the listener in ns A (TSO super-frames).
  const SENDER = `
const dgram = require("node:dgram"), net = require("node:net");
const u = dgram.createSocket("udp4");
const sizes = [1, 18, 101, 1400];
let k = 0;
const next = () => {
  if (k < sizes.length) { u.send(Buffer.alloc(sizes[k], k + 1), 7000 + k, "198.18.1.5", next); k++; return; }
  u.close();
  {
    const c = net.connect({ host: "198.18.1.5", port: 8080 });
    c.on("error", () => {});
    setTimeout(() => c.destroy(), 300);
    const b = net.connect({ host: "198.18.0.1", port: ${BULK_PORT} }, () => b.end(Buffer.alloc(256 * 1024, 0x5a)));
    b.on("error", () => {});
    setTimeout(() => b.destroy(), 1200);
  }
};
next();
`;

  describe("AF_PACKET receive with veth offloads on (CHECKSUM_PARTIAL, stripped VLAN tags)", { skip }, () => {
    let macA = "";

    before(() => {
      delNetns(NS_A);
      delNetns(NS_B);
      addNetns(NS_A);
      addNetns(NS_B);
      addVethPair(
        { ns: NS_A, ifname: IF_A, cidr: "198.18.0.1/24" },
        { ns: NS_B, ifname: IF_B, cidr: "198.18.0.2/24" },
      );
      addVethPair({ ns: NS_A, ifname: IF_C1 }, { ns: NS_A, ifname: IF_C2 });
      for (const [ns, ifname] of [
        [NS_A, IF_A],
        [NS_B, IF_B],
        [NS_A, IF_C1],
        [NS_A, IF_C2],
      ]) {
        nsExec(ns, ["sysctl", "-q", "-w", `net.ipv6.conf.${ifname}.disable_ipv6=1`]);
      }
      macA = linkMac(NS_A, IF_A);
      ip("-n", NS_B, "route", "add", "198.18.1.0/24", "via", "198.18.0.1");
    });

    after(() => {
      delNetns(NS_A);
      delNetns(NS_B);
    });

    it("returns UDP, TCP SYN and bulk TCP frames whose checksums verify, tags restored", async () => {
      const k = nsExecStatus(NS_B, ["ethtool", "-k", IF_B]);
      const offloads = k.stdout
        .split("\n")
        .filter((l) =>
          /^(tx-checksumming|tcp-segmentation-offload|tx-vlan-offload|generic-segmentation)/.test(l),
        )
        .map((l) => l.trim())
        .join(", ");
      const rep = (await child(NS_A, ["rx", IF_A, "2500", String(BULK_PORT)], () => {
        const v = nsExecStatus(NS_B, [process.execPath, SELF, "child", "vlan-send", IF_B, macA], 10_000);
        assert.equal(v.status, 0, v.stderr);
        nsExecStatus(NS_B, [process.execPath, "-e", SENDER], 10_000);
      })) as unknown as RxReport;
      const c = rep.counters;
      console.log(
        `sender ${IF_B} offloads: ${offloads || "(ethtool missing)"}\n` +
          `received ${rep.frames} frames: ${c.rxCsumPartial} CHECKSUM_PARTIAL (TP_STATUS_CSUMNOTREADY), ` +
          `${c.rxCsumCompleted} completed, ${c.rxVlanRestored} VLAN tags restored, ${c.rxOversize} over the MTU ` +
          `(${c.rxTruncated} cut at snaplen); bulk data segments seen ${rep.bulkSegments}, bad checksums ${rep.bulkBad}; ` +
          `${rep.bulkAggregates} aggregates (largest ${rep.bulkAggregateLargest} bytes), ${rep.bulkAggregateBad} without the pseudo-header sum`,
      );
      const plain = rep.udp.filter((u) => u.vlan === -1).map((u) => u.dport);
      for (const port of [7000, 7001, 7002, 7003])
        assert.ok(plain.includes(port), `UDP to port ${port} seen`);
      const tagged = rep.udp.filter((u) => u.vlan !== -1);
      // The receiving veth moved the outer tag into skb metadata; the socket puts it back.
      assert.deepEqual(
        tagged.map((u) => [u.dport, u.head]),
        [
          [7100, "810000640800"],
          [7101, "88a8000a810000140800"],
        ],
      );
      for (const u of rep.udp) assert.equal(u.csumOk, true, `UDP to ${u.dport} (vlan ${u.vlan}) verifies`);
      assert.ok(rep.syn.length >= 1, "the SYN toward 198.18.1.5:8080 is seen");
      for (const s of rep.syn) assert.equal(s.csumOk, true, "SYN checksum verifies");
      assert.equal(rep.bulkBad, 0, "every whole bulk data segment that is not an aggregate verifies");
      assert.ok(c.rxCsumPartial >= 5, "veth with tx offload on hands the socket CHECKSUM_PARTIAL frames");
      assert.equal(c.rxVlanRestored, 2);
      // TSO on the peer: the bulk stream arrives as aggregates above the MTU, whole (PACKET_VNET_HDR:
      // 64 KiB slots), with gso metadata, their checksum field still the pseudo-header sum.
      assert.ok(c.rxAggregates >= 1, "TSO aggregates from the peer are received as aggregates");
      assert.ok(
        rep.bulkAggregateLargest > 1514,
        `an aggregate above the MTU arrives whole (${rep.bulkAggregateLargest})`,
      );
      assert.equal(rep.bulkAggregateBad, 0, "aggregates keep the pseudo-header sum in their checksum field");
      assert.equal(c.rxTruncated, 0, "nothing is cut at snaplen");
      assert.equal(c.rxOversize, 0, "no frame over the MTU without GSO metadata");
    });

    it("prints the per-frame cost of PACKET_AUXDATA and of completing a checksum", async () => {
      const r = await child(NS_A, ["cost", IF_C1, IF_C2, "64000"]);
      const f = (v: unknown): string => (v as number).toFixed(0);
      console.log(
        `PACKET_AUXDATA cost: recvBatch ${f(r.nsPerFrameAuxOn)} ns/frame with aux vs ${f(r.nsPerFrameAuxOff)} ` +
          `without (${r.nOn}/${r.nOff} frames of 60 bytes, batch 64, includes the kernel's cmsg; noisy); ` +
          `completing one checksum in JS: ${f(r.nsCompleteSyn)} ns (54-byte TCP SYN), ` +
          `${f(r.nsComplete1500)} ns (1514-byte TCP frame)`,
      );
      assert.ok((r.nOn as number) > 0 && (r.nOff as number) > 0);
    });
  });
}
