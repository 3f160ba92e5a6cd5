// bench:core — the pure engine in-process, with realistic frames and a table holding 1M
// connections. Not a test: it prints figures (a table, or one JSON line with --json).
//
//   established_ns_nat / _dr  ns per packet of an established TCP connection (64-byte payload)
//   established_ns_nat_reply  the same for the real server's replies of NAT connections
//   established_ns_nat_all    established NAT packets over every NAT connection of the table, in a
//                             shuffled order (the rows above cycle over 8192 connections of each
//                             kind, whose records stay in the caches; this one reads from memory)
//   new_conn_ns               ns per new connection: lookup miss + schedule + insert (+ xmit)
//   bytes_per_conn            connection-table bytes per entry (typed arrays, links and buckets)
//   alloc_bytes_per_pkt       JS heap bytes allocated per packet in the steady state (heap growth
//                             plus what every GC in between collected, from v8.GCProfiler)
//   alloc_bytes_per_new_conn  the same for the new connections
//   acl_lookup_ns_100k        ns per ACL check of a new connection's source (acl.ts) against a deny
//                             list of 100k random prefixes (IPv4 /8../32, IPv6 /16../128) and an
//                             allow list of 100k more: both tries walked, half the sources inside
//
// The same figures follow for IPv6 entries (suffix _v6: TCP/IPv6 frames, 138 bytes with the same
// 64-byte payload) on an engine of their own, built and filled after the IPv4 one is dropped, so
// that neither family's table shares caches or the side record with the other. An IPv6 entry's
// bytes_per_conn_v6 adds the side record (16 words per slot, allocated with the first IPv6 entry).
// --ipv4-only leaves the IPv6 half out; --no-acl the ACL rows; --min reports each row's fastest
// round instead of the median, --cpu times rounds by the process's CPU time instead of the wall
// clock (on a shared machine: time spent descheduled is not the engine's).
//
// Frames are restored from pristine copies before each input (the engine rewrites in place);
// the restore is a copyWithin inside one ArrayBuffer, the same work a receive ring does, and
// its own cost is measured and reported separately as copy_ns.

import { GCProfiler, setFlagsFromString } from "node:v8";
import { parseAclPrefix, ServiceAcl } from "../src/core/acl.js";
import { formatIPv4, ipv6TextWords, ipv6WordsText, parseIPv4 } from "../src/core/addr.js";
import { A6_DADDR, ConnTable, type TableAlloc } from "../src/core/conn/table.js";
import type { CtlCommand, DestSpec, ServiceKey } from "../src/core/ctl-types.js";
import { Fwd } from "../src/core/dest.js";
import { ENGINE_V8_FLAGS, Engine } from "../src/core/engine.js";
import { csumAdd, csumFinish, ipv4HeaderChecksum } from "../src/core/packet/csum.js";
import { ETH_HLEN, writeEthHeader } from "../src/core/packet/eth.js";
import { ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, TCP_ACK, TCP_PSH, TCP_SYN } from "../src/core/packet/flow.js";
import { anonHugeBytes, hugePageAlloc } from "../src/io/hugepages.js";

// As the daemon does: the figures are of the engine as it runs there.
setFlagsFromString(ENGINE_V8_FLAGS);

const json = process.argv.includes("--json");
/** --min: the fastest round of each row instead of the median (a shared machine's stable figure). */
const pick = process.argv.includes("--min") ? (xs: number[]): number => Math.min(...xs) : median;
const CONNS = Number(process.env.TSVS_BENCH_CONNS ?? 1_000_000);
/** The daemon's table memory (huge pages where the kernel gives them) unless --no-huge. */
const tableAlloc: TableAlloc | undefined = process.argv.includes("--no-huge") ? undefined : hugePageAlloc;
const ROUNDS = 5;

const VIP_NAT = parseIPv4("198.18.0.100")!;
const VIP_DR = parseIPv4("198.18.0.101")!;
const RIPS = ["198.18.1.11", "198.18.1.12", "198.18.1.13", "198.18.1.14"].map((a) => parseIPv4(a)!);
const DMAC = Uint8Array.from([2, 0, 0, 0, 0, 1]);
const CMAC = Uint8Array.from([2, 0, 0, 0, 0, 2]);
const FRAME_LEN = ETH_HLEN + 20 + 20 + 64;
const FRAME_LEN6 = ETH_HLEN + 40 + 20 + 64;

/** The most anonymous memory seen in huge pages (the tables', V8 uses none). */
let hugeSeen = 0;

/** Frames the engines sent: every ring's first frame must leave, or the figure is a drop path's. */
let sent = 0;

function makeEngine(capacity: number): Engine {
  const e = new Engine({
    connCapacity: capacity,
    tableAlloc,
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

// ------------------------------------------------------------------ IPv6

const VIP6_NAT = w6("2001:db8::100");
const VIP6_DR = w6("2001:db8::101");
const RIPS6 = ["2001:db8:1::11", "2001:db8:1::12", "2001:db8:1::13", "2001:db8:1::14"];
const ROUTER6 = "2001:db8::fe";

function w6(s: string): Int32Array {
  const w = ipv6TextWords(s);
  if (w === null) throw new Error(`bad IPv6 address ${s}`);
  return w;
}

/** The IPv4 engine's layout with IPv6 addresses: clients via the router on eth0, servers on eth1. */
function makeEngine6(capacity: number): Engine {
  const e = new Engine({
    connCapacity: capacity,
    tableAlloc,
    interfaces: [
      {
        ifindex: 1,
        name: "eth0",
        mac: DMAC,
        addrs: [],
        addrs6: [{ addr6: "2001:db8::1", prefix: 64 }],
        mtu: 1500,
      },
      {
        ifindex: 2,
        name: "eth1",
        mac: DMAC,
        addrs: [],
        addrs6: [{ addr6: "2001:db8:1::1", prefix: 64 }],
        mtu: 1500,
      },
    ],
    routes: [{ dst: 0, prefix: 0, via: 0, ifindex: 1, dst6: "::", via6: ROUTER6 }],
    send: () => {
      sent++;
    },
  });
  const cmds: CtlCommand[] = [];
  for (const [vip, fwd] of [
    ["2001:db8::100", Fwd.Masq],
    ["2001:db8::101", Fwd.Route],
  ] as const) {
    const key: ServiceKey = { af: 6, protocol: IPPROTO_TCP, addr: 0, addr6: vip, port: 80, fwmark: 0 };
    cmds.push({
      op: "add-service",
      svc: { ...key, schedName: "wlc", flags: 0, timeout: 0, netmask: 128, peName: "" },
    });
    for (const rip of RIPS6) {
      const dest: DestSpec = {
        af: 6,
        addr: 0,
        addr6: rip,
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
  // REACHABLE, as a solicited NA after the neighbour's own NS leaves them (no NDP on the clock).
  const reach = (ifindex: number, a: string): void => {
    e.neigh.learnFromNs(ifindex, w6(a), 0, CMAC, 0, 0);
    e.neigh.learnFromNa(ifindex, w6(a), 0, 0x60, CMAC, 0, 0);
  };
  for (const rip of RIPS6) reach(2, rip);
  reach(1, ROUTER6);
  return e;
}

/** Writes a TCP/IPv6 frame (64-byte payload) at buf[off]; addresses as the core's four words. */
function writeTcpFrame6(
  buf: Uint8Array,
  off: number,
  s6: Int32Array,
  sport: number,
  d6: Int32Array,
  flags: number,
  dport = 80,
): void {
  writeEthHeader(buf, off, DMAC, CMAC, ETH_P_IPV6);
  const l3 = off + ETH_HLEN;
  const l4 = l3 + 40;
  const dv = new DataView(buf.buffer, buf.byteOffset);
  buf.fill(0, l3, l4 + 20);
  dv.setUint32(l3, 0x60000000);
  dv.setUint16(l3 + 4, 20 + 64);
  buf[l3 + 6] = IPPROTO_TCP;
  buf[l3 + 7] = 64;
  for (let k = 0; k < 4; k++) {
    dv.setInt32(l3 + 8 + 4 * k, s6[k]);
    dv.setInt32(l3 + 24 + 4 * k, d6[k]);
  }
  dv.setUint16(l4, sport);
  dv.setUint16(l4 + 2, dport);
  dv.setUint32(l4 + 4, 1000);
  dv.setUint32(l4 + 8, flags & TCP_ACK ? 1 : 0);
  buf[l4 + 12] = 5 << 4;
  buf[l4 + 13] = flags;
  dv.setUint16(l4 + 14, 65535);
  for (let i = 0; i < 64; i++) buf[l4 + 20 + i] = i;
  let sum = csumAdd(buf, l3 + 8, 32);
  sum += IPPROTO_TCP + 20 + 64;
  sum = csumAdd(buf, l4, 20 + 64, sum);
  dv.setUint16(l4 + 16, csumFinish(sum));
}

/** Client tuple i over IPv6: 2001:db8:8000::/48, the IPv4 tuples' spread of addresses and ports. */
function client6(i: number): { addr: Int32Array; port: number } {
  const addr = w6("2001:db8:8000::");
  addr[3] = 0x1000 + (i % 32000);
  return { addr, port: 1024 + Math.floor(i / 32000) };
}

// ------------------------------------------------------------------ driving

interface Ring {
  mem: Uint8Array;
  work: Uint8Array;
  /** BATCH views of BATCH_SLOT bytes over the work area (runBatch). */
  batch: Uint8Array[];
  count: number;
  len: number;
  slot: number;
}

/** Frames per batch in runBatch: what a receive of the daemon's io hands the engine at a time. */
const BATCH = 32;
const BATCH_SLOT = 192;
/** The work area at the start of a ring's buffer: one frame (runRing) or a batch (runBatch). */
const WORK = BATCH * BATCH_SLOT;

/** Pristine frames of `len` bytes in one buffer after a work area that aliases its start. */
function ring(count: number, len: number, fill: (buf: Uint8Array, off: number, i: number) => void): Ring {
  const slot = len <= 128 ? 128 : 192;
  const mem = new Uint8Array(WORK + count * slot);
  for (let i = 0; i < count; i++) fill(mem, WORK + i * slot, i);
  const batch = Array.from(
    { length: BATCH },
    (_, k) => new Uint8Array(mem.buffer, k * BATCH_SLOT, BATCH_SLOT),
  );
  return { mem, work: new Uint8Array(mem.buffer, 0, 2048), batch, count, len, slot };
}

/** --cpu: the process's CPU time (user + system) instead of the wall clock, in ns. */
const cpuClock = process.argv.includes("--cpu");

function clockNs(): number {
  if (!cpuClock) return Number(process.hrtime.bigint());
  const c = process.cpuUsage();
  return (c.user + c.system) * 1000;
}

function runRing(e: Engine, r: Ring, packets: number, now: number, input: boolean, start = 0): number {
  const { mem, work, count, len, slot } = r;
  const t0 = clockNs();
  for (let p = start; p < start + packets; p++) {
    const src = WORK + (p % count) * slot;
    mem.copyWithin(0, src, src + len);
    if (input) e.input(1, work, len, now);
  }
  return (clockNs() - t0) / packets;
}

/**
 * runRing in batches of BATCH frames, as the daemon's receive loop takes them: each batch copied
 * into its own buffers, then (ahead) read ahead by the engine (Engine.aheadFrame), then input().
 */
function runBatch(e: Engine, r: Ring, packets: number, now: number, ahead: boolean, start = 0): number {
  const { mem, batch, count, len, slot } = r;
  const t0 = clockNs();
  let p = start;
  while (p < start + packets) {
    const n = Math.min(BATCH, start + packets - p);
    for (let k = 0; k < n; k++) {
      const src = WORK + ((p + k) % count) * slot;
      mem.copyWithin(k * BATCH_SLOT, src, src + len);
    }
    if (ahead) {
      for (let k = 0; k < n; k++) e.aheadFrame(k, batch[k], len);
      e.aheadRecords(n);
    }
    for (let k = 0; k < n; k++) e.input(1, batch[k], len, now);
    p += n;
  }
  return (clockNs() - t0) / packets;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function gcNow(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) g();
}

/** One family's engine, its frames (prebuilt), and the ring of fresh SYNs for new connections. */
interface FamilySetup {
  engine: Engine;
  fillNs: number;
  live: number;
  nat: Ring;
  natAll: Ring;
  dr: Ring;
  rep: Ring;
  fresh: Ring;
}

interface Figures {
  live: number;
  fillNs: number;
  copyNs: number;
  nat: number;
  dr: number;
  rep: number;
  natAll: number;
  natAllBatch: number;
  natAllAhead: number;
  natBatch: number;
  natAhead: number;
  newConn: number;
  newConnAhead: number;
  created: number;
  bytesPerConn: number;
  allocPerPkt: number;
  gcs: number;
  allocPerConn: number;
  aclNs: number;
}

const PICK = 8192;
const N = 2_000_000;

/** What differs between the families when a setup builds its table and frames. */
interface Family<A> {
  makeEngine(capacity: number): Engine;
  client(i: number): { addr: A; port: number };
  write(buf: Uint8Array, off: number, saddr: A, sport: number, daddr: A, flags: number, dport?: number): void;
  vipNat: A;
  vipDr: A;
  frameLen: number;
  /** The real server (address and port) the NAT connection of this client was bound to. */
  rip(e: Engine, c: { addr: A; port: number }, i: number): { addr: A; port: number };
}

const IPV4: Family<number> = {
  makeEngine,
  client,
  write: writeTcpFrame,
  vipNat: VIP_NAT,
  vipDr: VIP_DR,
  frameLen: FRAME_LEN,
  rip: (e, c) => {
    const cx = e.conns.lookupIn(IPPROTO_TCP, c.addr, c.port, VIP_NAT, 80);
    return { addr: e.conns.daddrOf(cx), port: e.conns.dportOf(cx) };
  },
};

const ripWords = new Int32Array(4);
const IPV6: Family<Int32Array> = {
  makeEngine: makeEngine6,
  client: client6,
  write: writeTcpFrame6,
  vipNat: VIP6_NAT,
  vipDr: VIP6_DR,
  frameLen: FRAME_LEN6,
  rip: (e, c, i) => {
    const cx = e.conns.lookupIn6(IPPROTO_TCP, c.addr, c.port, VIP6_NAT, 80);
    if (cx < 0) throw new Error(`IPv6 connection ${i} is not in the table`);
    e.conns.addr6Of(cx, A6_DADDR, ripWords);
    return { addr: ripWords, port: e.conns.dportOf(cx) };
  },
};

function setup<A>(fam: Family<A>, capacity: number, now: number): FamilySetup {
  const e = fam.makeEngine(capacity);
  const len = fam.frameLen;
  // Fill: CONNS connections through NAT (SYN + ACK makes them ESTABLISHED on the client side).
  const fillStart = process.hrtime.bigint();
  const one = new Uint8Array(2048);
  for (let i = 0; i < CONNS; i++) {
    const c = fam.client(i);
    const vip = i % 2 === 0 ? fam.vipNat : fam.vipDr;
    fam.write(one, 0, c.addr, c.port, vip, TCP_SYN);
    e.input(1, one, len, now);
    fam.write(one, 0, c.addr, c.port, vip, TCP_ACK);
    e.input(1, one, len, now);
  }
  const fillNs = Number(process.hrtime.bigint() - fillStart) / CONNS;
  hugeSeen = Math.max(hugeSeen, anonHugeBytes() ?? 0);
  const live = e.conns.size;
  // Established packets over 8192 connections of each method (spread over the table).
  const stride = Math.max(2, Math.floor(CONNS / PICK) & ~1);
  const nat = ring(PICK, len, (b, off, i) => {
    const c = fam.client((i * stride) % CONNS);
    fam.write(b, off, c.addr, c.port, fam.vipNat, TCP_ACK | TCP_PSH);
  });
  const dr = ring(PICK, len, (b, off, i) => {
    const c = fam.client(((i * stride) % CONNS) + 1);
    fam.write(b, off, c.addr, c.port, fam.vipDr, TCP_ACK | TCP_PSH);
  });
  // Replies of the same NAT connections: RIP:rport → CIP:cport, as the table bound them.
  const rep = ring(PICK, len, (b, off, i) => {
    const c = fam.client((i * stride) % CONNS);
    const r = fam.rip(e, c, i);
    fam.write(b, off, r.addr, r.port, c.addr, TCP_ACK | TCP_PSH, c.port);
  });
  // Every NAT connection (the even clients) once a pass, in a shuffled order: no layout of the
  // table (creation order, hash order) walks its records in sequence.
  const order = shuffled(CONNS >> 1);
  const natAll = ring(CONNS >> 1, len, (b, off, i) => {
    const c = fam.client(2 * order[i]);
    fam.write(b, off, c.addr, c.port, fam.vipNat, TCP_ACK | TCP_PSH);
  });
  const fresh = ring(newCount(capacity, live), len, (b, off, i) => {
    const c = fam.client(CONNS + i);
    fam.write(b, off, c.addr, c.port, fam.vipNat, TCP_SYN);
  });
  return { engine: e, fillNs, live, nat, dr, rep, natAll, fresh };
}

/** 0..n-1 in a fixed pseudo-random order (Fisher-Yates over an LCG: the same in every run). */
function shuffled(n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  let s = 12345;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) | 0;
    const j = (s >>> 1) % (i + 1);
    const x = a[i];
    a[i] = a[j];
    a[j] = x;
  }
  return a;
}

function newCount(capacity: number, live: number): number {
  return Math.min(200_000, capacity - live - 16);
}

/** Established rounds, allocation in the steady state, then new connections into the full table. */
function measure(f: FamilySetup, now: number, bytesPerConn: number, af: 4 | 6): Figures {
  const { engine: e, nat, dr, rep, natAll, fresh } = f;
  for (const [name, r] of [
    ["NAT", nat],
    ["DR", dr],
    ["NAT reply", rep],
  ] as const) {
    const before = sent;
    runRing(e, r, 1, now, true);
    if (sent !== before + 1) throw new Error(`bench:core: an established ${name} frame did not leave`);
  }
  const copyNs: number[] = [];
  const natNs: number[] = [];
  const drNs: number[] = [];
  const repNs: number[] = [];
  const allNs: number[] = [];
  const allBatchNs: number[] = [];
  const allAheadNs: number[] = [];
  const natBatchNs: number[] = [];
  const natAheadNs: number[] = [];
  runRing(e, nat, N, now, true); // warm up
  runRing(e, dr, N, now, true);
  runRing(e, rep, N, now, true);
  for (let r = 0; r < ROUNDS; r++) {
    copyNs.push(runRing(e, nat, N, now, false));
    natNs.push(runRing(e, nat, N, now, true));
    drNs.push(runRing(e, dr, N, now, true));
    repNs.push(runRing(e, rep, N, now, true));
    allNs.push(runRing(e, natAll, natAll.count, now, true));
    allBatchNs.push(runBatch(e, natAll, natAll.count, now, false));
    allAheadNs.push(runBatch(e, natAll, natAll.count, now, true));
    natBatchNs.push(runBatch(e, nat, N, now, false));
    natAheadNs.push(runBatch(e, nat, N, now, true));
  }

  // Allocation in the steady state: 1.5M packets.
  const AP = 1_500_000;
  const [allocated, gcs] = heapAllocated(() => {
    runRing(e, nat, AP / 3, now, true);
    runRing(e, dr, AP / 3, now, true);
    runRing(e, rep, AP / 3, now, true);
  });

  // New connections: SYNs from fresh tuples into the full table, timed; their heap allocation
  // is measured over the same run, as for established packets. Chunks of them alternate between
  // one at a time and batches read ahead, so that both meet the same table as it fills.
  const CHUNK = 1024;
  let plain = 0;
  let plainN = 0;
  let ahead = 0;
  let aheadN = 0;
  const [newAllocated] = heapAllocated(() => {
    for (let at = 0, k = 0; at < fresh.count; at += CHUNK, k++) {
      const n = Math.min(CHUNK, fresh.count - at);
      if (k % 2 === 0) {
        plain += runRing(e, fresh, n, now, true, at) * n;
        plainN += n;
      } else {
        ahead += runBatch(e, fresh, n, now, true, at) * n;
        aheadN += n;
      }
    }
  });
  const newNs = plain / plainN;
  const newAheadNs = ahead / aheadN;
  // --no-acl: the table's rows alone (the ACL rows build 200k prefixes first).
  const aclNs = process.argv.includes("--no-acl") ? Number.NaN : aclLookupNs(af);
  return {
    aclNs,
    live: f.live,
    fillNs: f.fillNs,
    copyNs: pick(copyNs),
    nat: pick(natNs),
    dr: pick(drNs),
    rep: pick(repNs),
    natAll: pick(allNs),
    natAllBatch: pick(allBatchNs),
    natAllAhead: pick(allAheadNs),
    natBatch: pick(natBatchNs),
    natAhead: pick(natAheadNs),
    newConn: newNs,
    newConnAhead: newAheadNs,
    created: e.conns.size - f.live,
    bytesPerConn,
    allocPerPkt: Math.max(0, allocated / AP),
    gcs,
    allocPerConn: Math.max(0, newAllocated / fresh.count),
  };
}

/**
 * Bytes per connection of a table of CONNS entries: its typed arrays (records, links, buckets,
 * timers) as the table counts them; `ipv6` adds the side record, allocated with the first IPv6
 * entry. (The process's array-buffer total would count the other family's engine as it is freed.)
 */
/**
 * ns per ServiceAcl check (deny then allow, as the engine calls it for a new connection) with
 * 100k prefixes on each list; the sources cycle through 64k, half of them inside a deny prefix.
 */
function aclLookupNs(af: 4 | 6): number {
  let seed = 0x2545f491;
  const rnd = (): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed | 0;
  };
  const acl = new ServiceAcl();
  const RULES = 100_000;
  const SRC = 65_536;
  const words = af === 4 ? 1 : 4;
  const src = new Int32Array(SRC * 4);
  const w = new Int32Array(4);
  let inside = 0;
  for (const list of [acl.deny, acl.allow]) {
    while (list.size < RULES) {
      const len = af === 4 ? 8 + ((rnd() >>> 0) % 25) : 16 + ((rnd() >>> 0) % 113);
      w.fill(0);
      for (let i = 0; i < words; i++) {
        const bits = len - 32 * i;
        w[i] = bits >= 32 ? rnd() : bits <= 0 ? 0 : (rnd() >>> (32 - bits)) << (32 - bits);
      }
      const text = af === 4 ? formatIPv4(w[0] >>> 0) : ipv6WordsText(w);
      const p = parseAclPrefix(len === 32 * words ? text : `${text}/${len}`);
      if (typeof p === "string") throw new Error(`bench:core: ${p}`);
      if (list.has(p)) continue;
      list.add(p);
      // Even sources: inside this deny rule (its prefix, random host bits).
      if (list === acl.deny && inside < SRC / 2) {
        for (let i = 0; i < 4; i++) {
          const bits = len - 32 * i;
          const host = bits >= 32 ? 0 : bits <= 0 ? -1 : -1 >>> bits;
          src[inside * 8 + i] = w[i] | (rnd() & host);
        }
        inside++;
      }
    }
  }
  // Odd sources: random (almost always on neither list: denied by the allow list).
  for (let k = 1; k < SRC; k += 2) for (let i = 0; i < 4; i++) src[k * 4 + i] = rnd();
  const s6 = new Int32Array(4);
  let sink = 0;
  const run = (n: number): number => {
    const t0 = process.hrtime.bigint();
    for (let j = 0; j < n; j++) {
      const o = (j & (SRC - 1)) * 4;
      if (af === 4) sink += acl.check4(src[o]);
      else {
        s6[0] = src[o];
        s6[1] = src[o + 1];
        s6[2] = src[o + 2];
        s6[3] = src[o + 3];
        sink += acl.check6(s6);
      }
    }
    return Number(process.hrtime.bigint() - t0) / n;
  };
  run(200_000);
  const xs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) xs.push(run(1_000_000));
  if (sink === 0) throw new Error("bench:core: no ACL verdict");
  return median(xs);
}

function tableBytesPerConn(ipv6: boolean): number {
  const probe = new ConnTable(CONNS);
  if (ipv6) {
    const w = w6("2001:db8::1");
    probe.setClient6(probe.alloc(), w, w);
  }
  return probe.bytes / CONNS;
}

function main(): void {
  const capacity = CONNS + (CONNS >> 2);
  const now = 1000;
  const v6 = !process.argv.includes("--ipv4-only");
  const bytes4 = tableBytesPerConn(false);
  const bytes6 = tableBytesPerConn(true);
  // One family at a time: the IPv4 engine is unreachable (and collected) before the IPv6 one fills.
  const f4 = measure(setup(IPV4, capacity, now), now, bytes4, 4);
  gcNow();
  const f6 = v6 ? measure(setup(IPV6, capacity, now), now, bytes6, 6) : null;

  const fig: Record<string, number> = {
    established_ns_nat: round(f4.nat),
    established_ns_dr: round(f4.dr),
    established_ns_nat_reply: round(f4.rep),
    established_ns_nat_all: round(f4.natAll),
    established_ns_nat_all_batch: round(f4.natAllBatch),
    established_ns_nat_all_ahead: round(f4.natAllAhead),
    established_ns_nat_batch: round(f4.natBatch),
    established_ns_nat_ahead: round(f4.natAhead),
    new_conn_ns: round(f4.newConn),
    new_conn_ns_ahead: round(f4.newConnAhead),
    bytes_per_conn: round(f4.bytesPerConn),
    alloc_bytes_per_pkt: round(f4.allocPerPkt),
    alloc_bytes_per_new_conn: round(f4.allocPerConn),
    acl_lookup_ns_100k: round(f4.aclNs),
    huge_page_mib: round(hugeSeen / 1048576),
  };
  if (f6 !== null) {
    Object.assign(fig, {
      established_ns_nat_v6: round(f6.nat),
      established_ns_dr_v6: round(f6.dr),
      established_ns_nat_reply_v6: round(f6.rep),
      established_ns_nat_all_v6: round(f6.natAll),
      established_ns_nat_all_batch_v6: round(f6.natAllBatch),
      established_ns_nat_all_ahead_v6: round(f6.natAllAhead),
      new_conn_ns_v6: round(f6.newConn),
      new_conn_ns_ahead_v6: round(f6.newConnAhead),
      bytes_per_conn_v6: round(f6.bytesPerConn),
      alloc_bytes_per_pkt_v6: round(f6.allocPerPkt),
      alloc_bytes_per_new_conn_v6: round(f6.allocPerConn),
      acl_lookup_ns_100k_v6: round(f6.aclNs),
    });
  }
  if (json) {
    process.stdout.write(`${JSON.stringify(fig)}\n`);
    return;
  }
  const col = (f: Figures | null, cell: (x: Figures) => string): string => (f === null ? "" : cell(f));
  const rows: Array<[string, (x: Figures) => string, string]> = [
    ["connections in table", (x) => String(x.live), ""],
    ["fill (SYN+ACK per conn)", (x) => `${round(x.fillNs)} ns/conn`, ""],
    ["established NAT", (x) => `${round(x.nat)} ns/pkt`, "goal <= 100"],
    ["established DR", (x) => `${round(x.dr)} ns/pkt`, "goal <= 100"],
    ["established NAT reply", (x) => `${round(x.rep)} ns/pkt`, "goal <= 100"],
    ["established NAT, every conn", (x) => `${round(x.natAll)} ns/pkt`, "records from memory"],
    [`  in batches of ${BATCH}`, (x) => `${round(x.natAllBatch)} ns/pkt`, ""],
    [`  in batches, read ahead`, (x) => `${round(x.natAllAhead)} ns/pkt`, "Engine.aheadFrame"],
    [`established NAT, batches of ${BATCH}`, (x) => `${round(x.natBatch)} ns/pkt`, ""],
    ["  read ahead", (x) => `${round(x.natAhead)} ns/pkt`, "its cost when cached"],
    ["  (frame restore, included)", (x) => `${round(x.copyNs)} ns/pkt`, ""],
    ["new connection", (x) => `${round(x.newConn)} ns/conn (${x.created})`, "goal <= 400"],
    ["  in batches, read ahead", (x) => `${round(x.newConnAhead)} ns/conn`, "Engine.aheadFrame"],
    ["table bytes per connection", (x) => `${round(x.bytesPerConn)} B`, "goal <= 128 (IPv4)"],
    ["allocated per packet", (x) => `${round(x.allocPerPkt)} B (${x.gcs} GCs)`, "goal ~0"],
    ["allocated per new connection", (x) => `${round(x.allocPerConn)} B`, "goal ~0"],
    ["ACL check, 100k+100k prefixes", (x) => `${round(x.aclNs)} ns/conn`, "O(prefix length)"],
  ];
  process.stdout.write(
    `bench:core — ${CONNS} connections per family, node ${process.version}, ${ROUNDS} rounds of ${N} packets, ${pick === median ? "medians" : "minimum"}\n`,
  );
  process.stdout.write(
    `connection tables: ${tableAlloc === undefined ? "V8's memory (--no-huge)" : `huge pages where the kernel gives them (${round(hugeSeen / 1048576)} MiB seen)`}\n`,
  );
  process.stdout.write(`${"".padEnd(30)} ${"IPv4".padEnd(26)} ${(f6 === null ? "" : "IPv6").padEnd(26)}\n`);
  for (const [a, cell, goal] of rows)
    process.stdout.write(`${a.padEnd(30)} ${cell(f4).padEnd(26)} ${col(f6, cell).padEnd(26)} ${goal}\n`);
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
