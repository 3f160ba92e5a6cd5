// bench:core — the pure engine in-process, with realistic frames and a table holding 1M
// connections. Not a test: it prints figures (a table, or one JSON line with --json).
//
//   established_ns_nat / _dr  ns per packet of an established TCP connection (64-byte payload)
//   established_ns_nat_reply  the same for the real server's replies of NAT connections
//   new_conn_ns               ns per new connection: lookup miss + schedule + insert (+ xmit)
//   bytes_per_conn            connection-table bytes per entry (typed arrays, links and buckets)
//   alloc_bytes_per_pkt       JS heap bytes allocated per packet in the steady state (heap growth
//                             plus what every GC in between collected, from v8.GCProfiler)
//   alloc_bytes_per_new_conn  the same for the new connections
//
// Frames are restored from pristine copies before each input (the engine rewrites in place);
// the restore is a copyWithin inside one ArrayBuffer, the same work a receive ring does, and
// its own cost is measured and reported separately as copy_ns.

import { GCProfiler, setFlagsFromString } from "node:v8";
import { parseIPv4 } from "../src/core/addr.js";
import { ConnTable } from "../src/core/conn/table.js";
import type { CtlCommand, DestSpec, ServiceKey } from "../src/core/ctl-types.js";
import { Fwd } from "../src/core/dest.js";
import { ENGINE_V8_FLAGS, Engine } from "../src/core/engine.js";
import { csumAdd, csumFinish, ipv4HeaderChecksum } from "../src/core/packet/csum.js";
import { ETH_HLEN, writeEthHeader } from "../src/core/packet/eth.js";
import { ETH_P_IP, IPPROTO_TCP, TCP_ACK, TCP_PSH, TCP_SYN } from "../src/core/packet/flow.js";

// As the daemon does: the figures are of the engine as it runs there.
setFlagsFromString(ENGINE_V8_FLAGS);

const json = process.argv.includes("--json");
const CONNS = Number(process.env.TSVS_BENCH_CONNS ?? 1_000_000);
const ROUNDS = 5;

const VIP_NAT = parseIPv4("198.18.0.100")!;
const VIP_DR = parseIPv4("198.18.0.101")!;
const RIPS = ["198.18.1.11", "198.18.1.12", "198.18.1.13", "198.18.1.14"].map((a) => parseIPv4(a)!);
const DMAC = Uint8Array.from([2, 0, 0, 0, 0, 1]);
const CMAC = Uint8Array.from([2, 0, 0, 0, 0, 2]);
const FRAME_LEN = ETH_HLEN + 20 + 20 + 64;
const SLOT = 128;

function makeEngine(capacity: number): Engine {
  let sent = 0;
  const e = new Engine({
    connCapacity: capacity,
    interfaces: [
      {
        ifindex: 1,
        name: "eth0",
        mac: DMAC,
        addrs: [{ addr: parseIPv4("198.18.0.1")!, prefix: 24 }],
        mtu: 1500,
      },
      {
        ifindex: 2,
        name: "eth1",
        mac: DMAC,
        addrs: [{ addr: parseIPv4("198.18.1.1")!, prefix: 24 }],
        mtu: 1500,
      },
    ],
    // Clients come from all of 198.18.0.0/15 (1M distinct tuples): route them back via eth0.
    routes: [{ dst: parseIPv4("198.18.128.0")!, prefix: 17, via: parseIPv4("198.18.0.254")!, ifindex: 1 }],
    send: () => {
      sent++;
    },
  });
  const cmds: CtlCommand[] = [];
  for (const [vip, fwd] of [
    [VIP_NAT, Fwd.Masq],
    [VIP_DR, Fwd.Route],
  ] as const) {
    const key: ServiceKey = { af: 4, protocol: IPPROTO_TCP, addr: vip, port: 80, fwmark: 0 };
    cmds.push({
      op: "add-service",
      svc: { ...key, schedName: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff, peName: "" },
    });
    for (const rip of RIPS) {
      const dest: DestSpec = {
        af: 4,
        addr: rip,
        port: 80,
        fwd,
        weight: 1,
        uThreshold: 0,
        lThreshold: 0,
        tunType: 0,
        tunPort: 0,
        tunFlags: 0,
      };
      cmds.push({ op: "add-dest", key, dest });
    }
  }
  e.applyAll(cmds);
  for (const rip of RIPS) e.neigh.confirm(2, rip, CMAC, 0);
  e.neigh.confirm(1, parseIPv4("198.18.0.254")!, CMAC, 0);
  void sent;
  return e;
}

/** Writes a TCP/IPv4 frame (64-byte payload) at buf[off]. */
function writeTcpFrame(
  buf: Uint8Array,
  off: number,
  saddr: number,
  sport: number,
  daddr: number,
  flags: number,
  dport = 80,
): void {
  writeEthHeader(buf, off, DMAC, CMAC, ETH_P_IP);
  const l3 = off + ETH_HLEN;
  const l4 = l3 + 20;
  const dv = new DataView(buf.buffer, buf.byteOffset);
  buf.fill(0, l3, l3 + 40);
  buf[l3] = 0x45;
  dv.setUint16(l3 + 2, 20 + 20 + 64);
  dv.setUint16(l3 + 6, 0x4000);
  buf[l3 + 8] = 64;
  buf[l3 + 9] = IPPROTO_TCP;
  dv.setUint32(l3 + 12, saddr);
  dv.setUint32(l3 + 16, daddr);
  dv.setUint16(l3 + 10, ipv4HeaderChecksum(buf, l3));
  dv.setUint16(l4, sport);
  dv.setUint16(l4 + 2, dport);
  dv.setUint32(l4 + 4, 1000);
  dv.setUint32(l4 + 8, flags & TCP_ACK ? 1 : 0);
  buf[l4 + 12] = 5 << 4;
  buf[l4 + 13] = flags;
  dv.setUint16(l4 + 14, 65535);
  for (let i = 0; i < 64; i++) buf[l4 + 20 + i] = i;
  let sum = csumAdd(buf, l3 + 12, 8);
  sum += IPPROTO_TCP + 20 + 64;
  sum = csumAdd(buf, l4, 20 + 64, sum);
  dv.setUint16(l4 + 16, csumFinish(sum));
}

/** Client tuple i: addresses across 198.18.0.0/15 above .1.x, ports 1024.. */
function client(i: number): { addr: number; port: number } {
  const base = parseIPv4("198.18.128.0")!;
  return { addr: (base + (i % 32000)) >>> 0, port: 1024 + Math.floor(i / 32000) };
}

interface Ring {
  mem: Uint8Array;
  work: Uint8Array;
  count: number;
}

/** Pristine frames in one buffer after a 2 KiB work area that aliases its start. */
function ring(count: number, fill: (buf: Uint8Array, off: number, i: number) => void): Ring {
  const mem = new Uint8Array(2048 + count * SLOT);
  for (let i = 0; i < count; i++) fill(mem, 2048 + i * SLOT, i);
  return { mem, work: new Uint8Array(mem.buffer, 0, 2048), count };
}

function runRing(e: Engine, r: Ring, packets: number, now: number, input: boolean): number {
  const { mem, work, count } = r;
  const t0 = process.hrtime.bigint();
  for (let p = 0; p < packets; p++) {
    const src = 2048 + (p % count) * SLOT;
    mem.copyWithin(0, src, src + FRAME_LEN);
    if (input) e.input(1, work, FRAME_LEN, now);
  }
  return Number(process.hrtime.bigint() - t0) / packets;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function gcNow(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) g();
}

function main(): void {
  const capacity = CONNS + (CONNS >> 2);
  const e = makeEngine(capacity);
  const now = 1000;
  // Fill: CONNS connections through NAT (SYN + ACK makes them ESTABLISHED on the client side).
  const fillStart = process.hrtime.bigint();
  const one = new Uint8Array(2048);
  for (let i = 0; i < CONNS; i++) {
    const c = client(i);
    const vip = i % 2 === 0 ? VIP_NAT : VIP_DR;
    writeTcpFrame(one, 0, c.addr, c.port, vip, TCP_SYN);
    e.input(1, one, FRAME_LEN, now);
    writeTcpFrame(one, 0, c.addr, c.port, vip, TCP_ACK);
    e.input(1, one, FRAME_LEN, now);
  }
  const fillNs = Number(process.hrtime.bigint() - fillStart) / CONNS;
  const live = e.conns.size;

  // Established packets over 8192 connections of each method (spread over the table).
  const pick = 8192;
  const stride = Math.max(2, Math.floor(CONNS / pick) & ~1);
  const nat = ring(pick, (b, off, i) => {
    const c = client((i * stride) % CONNS);
    writeTcpFrame(b, off, c.addr, c.port, VIP_NAT, TCP_ACK | TCP_PSH);
  });
  const dr = ring(pick, (b, off, i) => {
    const c = client(((i * stride) % CONNS) + 1);
    writeTcpFrame(b, off, c.addr, c.port, VIP_DR, TCP_ACK | TCP_PSH);
  });
  // Replies of the same NAT connections: RIP:rport → CIP:cport, as the table bound them.
  const rep = ring(pick, (b, off, i) => {
    const c = client((i * stride) % CONNS);
    const cx = e.conns.lookupIn(IPPROTO_TCP, c.addr, c.port, VIP_NAT, 80);
    writeTcpFrame(b, off, e.conns.daddrOf(cx), e.conns.dportOf(cx), c.addr, TCP_ACK | TCP_PSH, c.port);
  });
  const N = 2_000_000;
  const copyNs: number[] = [];
  const natNs: number[] = [];
  const drNs: number[] = [];
  const repNs: number[] = [];
  runRing(e, nat, N, now, true); // warm up
  runRing(e, dr, N, now, true);
  runRing(e, rep, N, now, true);
  for (let r = 0; r < ROUNDS; r++) {
    copyNs.push(runRing(e, nat, N, now, false));
    natNs.push(runRing(e, nat, N, now, true));
    drNs.push(runRing(e, dr, N, now, true));
    repNs.push(runRing(e, rep, N, now, true));
  }

  // Allocation in the steady state: 1.5M packets.
  const AP = 1_500_000;
  const [allocated, gcs] = heapAllocated(() => {
    runRing(e, nat, AP / 3, now, true);
    runRing(e, dr, AP / 3, now, true);
    runRing(e, rep, AP / 3, now, true);
  });
  const allocPerPkt = Math.max(0, allocated / AP);

  // New connections: SYNs from fresh tuples into the full table, timed; their heap allocation
  // is measured over the same run, as for established packets.
  const NEW = Math.min(200_000, capacity - live - 16);
  const fresh = ring(NEW, (b, off, i) => {
    const c = client(CONNS + i);
    writeTcpFrame(b, off, c.addr, c.port, VIP_NAT, TCP_SYN);
  });
  let newNs = 0;
  const [newAllocated] = heapAllocated(() => {
    newNs = runRing(e, fresh, NEW, now, true);
  });
  const created = e.conns.size - live;
  const allocPerConn = Math.max(0, newAllocated / NEW);

  // Table bytes per connection: array-buffer memory of a table of CONNS entries.
  gcNow();
  const ab0 = process.memoryUsage().arrayBuffers;
  const probe = new ConnTable(CONNS);
  const ab1 = process.memoryUsage().arrayBuffers;
  const bytesPerConn = (ab1 - ab0) / CONNS;
  void probe;

  const copy = median(copyNs);
  const fig = {
    established_ns_nat: round(median(natNs)),
    established_ns_dr: round(median(drNs)),
    established_ns_nat_reply: round(median(repNs)),
    new_conn_ns: round(newNs),
    bytes_per_conn: round(bytesPerConn),
    alloc_bytes_per_pkt: round(allocPerPkt),
    alloc_bytes_per_new_conn: round(allocPerConn),
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(fig)}\n`);
    return;
  }
  const rows: Array<[string, string, string]> = [
    ["connections in table", String(live), ""],
    ["fill (SYN+ACK per conn)", `${round(fillNs)} ns/conn`, ""],
    ["established NAT", `${fig.established_ns_nat} ns/pkt`, "goal <= 100"],
    ["established DR", `${fig.established_ns_dr} ns/pkt`, "goal <= 100"],
    ["established NAT reply", `${fig.established_ns_nat_reply} ns/pkt`, "goal <= 100"],
    ["  (frame restore, included)", `${round(copy)} ns/pkt`, ""],
    ["new connection", `${fig.new_conn_ns} ns/conn`, `goal <= 400 (${created} created)`],
    ["table bytes per connection", `${fig.bytes_per_conn} B`, "goal <= 128"],
    ["allocated per packet", `${fig.alloc_bytes_per_pkt} B (${gcs} GCs)`, "goal ~0"],
    ["allocated per new connection", `${fig.alloc_bytes_per_new_conn} B`, "goal ~0"],
  ];
  process.stdout.write(
    `bench:core — ${CONNS} connections, node ${process.version}, ${ROUNDS} rounds of ${N} packets, medians\n`,
  );
  for (const [a, b, c] of rows) process.stdout.write(`${a.padEnd(30)} ${b.padEnd(24)} ${c}\n`);
}

/**
 * JS heap bytes allocated while fn runs, and the number of GCs: heap growth plus what each GC
 * in between freed (a scavenge hides the garbage from a plain before/after difference).
 */
function heapAllocated(fn: () => void): [number, number] {
  gcNow();
  const prof = new GCProfiler();
  const h0 = process.memoryUsage().heapUsed;
  prof.start();
  fn();
  const h1 = process.memoryUsage().heapUsed;
  const gcStats = prof.stop()?.statistics ?? [];
  let allocated = 0;
  let last = h0;
  for (const g of gcStats) {
    allocated += g.beforeGC.heapStatistics.usedHeapSize - last;
    last = g.afterGC.heapStatistics.usedHeapSize;
  }
  allocated += h1 - last;
  return [allocated, gcStats.length];
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

main();
