// An independent frame decoder for data-path tests: it re-reads every header from the bytes,
// recomputes every checksum from scratch (IP header, TCP/UDP with the pseudo-header, ICMP over
// the whole message) and throws on the first mismatch, so each output frame of the engine is
// checked without trusting the product's incremental updates. Also decodes IPIP (the inner
// datagram is checked the same way), the TOA option (kind 254) and ICMP errors' quoted header.
// Plus the test topology: one director between a client-side router and a real-server LAN.

import assert from "node:assert/strict";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { Engine, type Sysctls } from "../../src/core/engine.js";
import {
  inetChecksum,
  ip,
  ipStr,
  macStr,
  PROTO_ICMP,
  PROTO_IPIP,
  PROTO_TCP,
  PROTO_UDP,
  pseudoHeader,
} from "./packet-builder.js";

function u16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export interface TcpOption {
  kind: number;
  data: Uint8Array;
}

export interface DecodedTcp {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  win: number;
  hlen: number;
  options: TcpOption[];
  /** TOA option (kind 254, length 8): client port and address. */
  toa: { port: number; addr: string } | null;
  payload: Uint8Array;
}

export interface DecodedUdp {
  sport: number;
  dport: number;
  len: number;
  checksum: number;
  payload: Uint8Array;
}

export interface DecodedIcmp {
  type: number;
  code: number;
  rest: number;
  data: Uint8Array;
  /** The quoted datagram of an error (header checksum verified; L4 only read, it is truncated). */
  inner: DecodedIp | null;
}

export interface DecodedIp {
  src: string;
  dst: string;
  ttl: number;
  tos: number;
  id: number;
  df: boolean;
  mf: boolean;
  fragOff: number;
  proto: number;
  totalLen: number;
  hlen: number;
  tcp: DecodedTcp | null;
  udp: DecodedUdp | null;
  icmp: DecodedIcmp | null;
  /** IPIP: the encapsulated datagram. */
  ipip: DecodedIp | null;
  /** Quoted datagram only: the first ports of TCP/UDP. */
  sport: number;
  dport: number;
}

export interface DecodedArp {
  op: number;
  sha: string;
  spa: string;
  tha: string;
  tpa: string;
}

export interface DecodedFrame {
  dmac: string;
  smac: string;
  ethType: number;
  ip: DecodedIp | null;
  arp: DecodedArp | null;
}

const ICMP_ERRORS = new Set([3, 4, 5, 11, 12]);

/** Decodes and verifies an IPv4 datagram; `quoted` = inside an ICMP error (may be truncated). */
export function decodeIp(b: Uint8Array, quoted = false): DecodedIp {
  assert.ok(b.length >= 20, `IP datagram shorter than 20 bytes (${b.length})`);
  assert.equal(b[0] >> 4, 4, "IP version");
  const hlen = (b[0] & 15) * 4;
  assert.ok(hlen >= 20 && hlen <= b.length, `bad IHL ${hlen}`);
  const totalLen = u16(b, 2);
  const hdrSum = inetChecksum(b.subarray(0, hlen));
  assert.equal(
    hdrSum,
    0,
    `IP header checksum wrong (${quoted ? "quoted " : ""}${ipStr(u32(b, 12))} > ${ipStr(u32(b, 16))})`,
  );
  if (!quoted) assert.equal(totalLen, b.length, "IP total length != datagram length");
  const frag = u16(b, 6);
  const d: DecodedIp = {
    src: ipStr(u32(b, 12)),
    dst: ipStr(u32(b, 16)),
    ttl: b[8],
    tos: b[1],
    id: u16(b, 4),
    df: (frag & 0x4000) !== 0,
    mf: (frag & 0x2000) !== 0,
    fragOff: frag & 0x1fff,
    proto: b[9],
    totalLen,
    hlen,
    tcp: null,
    udp: null,
    icmp: null,
    ipip: null,
    sport: 0,
    dport: 0,
  };
  const l4 = b.subarray(hlen, quoted ? b.length : totalLen);
  if (quoted) {
    if ((d.proto === PROTO_TCP || d.proto === PROTO_UDP) && l4.length >= 4) {
      d.sport = u16(l4, 0);
      d.dport = u16(l4, 2);
    }
    return d;
  }
  if (d.fragOff !== 0) return d;
  const src = u32(b, 12);
  const dst = u32(b, 16);
  if (d.proto === PROTO_TCP) {
    assert.ok(l4.length >= 20, "TCP header truncated");
    const thlen = (l4[12] >> 4) * 4;
    assert.ok(thlen >= 20 && thlen <= l4.length, `bad TCP data offset ${thlen}`);
    assert.equal(inetChecksum(pseudoHeader(src, dst, PROTO_TCP, l4.length), l4), 0, "TCP checksum wrong");
    const options: TcpOption[] = [];
    let toa: DecodedTcp["toa"] = null;
    for (let o = 20; o < thlen; ) {
      const kind = l4[o];
      if (kind === 0) break;
      if (kind === 1) {
        o++;
        continue;
      }
      assert.ok(o + 1 < thlen, "TCP option length missing");
      const len = l4[o + 1];
      assert.ok(len >= 2 && o + len <= thlen, `bad TCP option length ${len}`);
      options.push({ kind, data: l4.slice(o + 2, o + len) });
      if (kind === 254 && len === 8) toa = { port: u16(l4, o + 2), addr: ipStr(u32(l4, o + 4)) };
      o += len;
    }
    d.tcp = {
      sport: u16(l4, 0),
      dport: u16(l4, 2),
      seq: u32(l4, 4),
      ack: u32(l4, 8),
      flags: l4[13],
      win: u16(l4, 14),
      hlen: thlen,
      options,
      toa,
      payload: l4.slice(thlen),
    };
    d.sport = d.tcp.sport;
    d.dport = d.tcp.dport;
  } else if (d.proto === PROTO_UDP) {
    assert.ok(l4.length >= 8, "UDP header truncated");
    assert.equal(u16(l4, 4), l4.length, "UDP length");
    const ck = u16(l4, 6);
    if (ck !== 0)
      assert.equal(inetChecksum(pseudoHeader(src, dst, PROTO_UDP, l4.length), l4), 0, "UDP checksum wrong");
    d.udp = { sport: u16(l4, 0), dport: u16(l4, 2), len: l4.length, checksum: ck, payload: l4.slice(8) };
    d.sport = d.udp.sport;
    d.dport = d.udp.dport;
  } else if (d.proto === PROTO_ICMP) {
    assert.ok(l4.length >= 8, "ICMP header truncated");
    assert.equal(inetChecksum(l4), 0, "ICMP checksum wrong");
    const type = l4[0];
    d.icmp = {
      type,
      code: l4[1],
      rest: u32(l4, 4),
      data: l4.slice(8),
      inner: ICMP_ERRORS.has(type) ? decodeIp(l4.subarray(8), true) : null,
    };
  } else if (d.proto === PROTO_IPIP) {
    d.ipip = decodeIp(l4);
  }
  return d;
}

/** Decodes and verifies a whole Ethernet frame (throws an assertion error on any bad checksum). */
export function decodeFrame(frame: Uint8Array): DecodedFrame {
  assert.ok(frame.length >= 14, "frame shorter than Ethernet header");
  const ethType = u16(frame, 12);
  const f: DecodedFrame = { dmac: macStr(frame, 0), smac: macStr(frame, 6), ethType, ip: null, arp: null };
  if (ethType === 0x0800) f.ip = decodeIp(frame.subarray(14));
  else if (ethType === 0x0806) {
    const a = frame.subarray(14);
    assert.ok(a.length >= 28, "ARP truncated");
    assert.equal(u16(a, 0), 1, "ARP htype");
    assert.equal(u16(a, 2), 0x0800, "ARP ptype");
    f.arp = {
      op: u16(a, 6),
      sha: macStr(a, 8),
      spa: ipStr(u32(a, 14)),
      tha: macStr(a, 18),
      tpa: ipStr(u32(a, 24)),
    };
  }
  return f;
}

/** TCP flags as tcpdump letters (S, F, R, P, . for ACK). */
export function flagStr(fl: number): string {
  let s = "";
  if (fl & 0x02) s += "S";
  if (fl & 0x01) s += "F";
  if (fl & 0x04) s += "R";
  if (fl & 0x08) s += "P";
  if (fl & 0x10) s += ".";
  return s;
}

/** A flat view of a frame for table assertions: only the keys a test names are compared. */
export function flat(f: DecodedFrame): Record<string, string | number | boolean | null> {
  const r: Record<string, string | number | boolean | null> = { dmac: f.dmac, smac: f.smac };
  if (f.arp !== null) {
    r.arp = f.arp.op;
    r.spa = f.arp.spa;
    r.tpa = f.arp.tpa;
    r.sha = f.arp.sha;
    r.tha = f.arp.tha;
  }
  const i = f.ip;
  if (i !== null) {
    Object.assign(r, {
      src: i.src,
      dst: i.dst,
      ttl: i.ttl,
      df: i.df,
      proto: i.proto,
      len: i.totalLen,
      tos: i.tos,
    });
    if (i.tcp !== null) {
      Object.assign(r, {
        sport: i.tcp.sport,
        dport: i.tcp.dport,
        flags: flagStr(i.tcp.flags),
        seq: i.tcp.seq,
      });
      r.ackno = i.tcp.ack;
      r.toa = i.tcp.toa === null ? null : `${i.tcp.toa.addr}:${i.tcp.toa.port}`;
      r.payload = new TextDecoder().decode(i.tcp.payload);
    }
    if (i.udp !== null) {
      Object.assign(r, { sport: i.udp.sport, dport: i.udp.dport });
      r.payload = new TextDecoder().decode(i.udp.payload);
    }
    if (i.icmp !== null) {
      Object.assign(r, { icmpType: i.icmp.type, icmpCode: i.icmp.code, icmpRest: i.icmp.rest });
      const q = i.icmp.inner;
      if (q !== null) {
        Object.assign(r, {
          qsrc: q.src,
          qdst: q.dst,
          qsport: q.sport,
          qdport: q.dport,
          qproto: q.proto,
          qttl: q.ttl,
        });
      }
    }
    if (i.ipip !== null) {
      const q = i.ipip;
      Object.assign(r, { isrc: q.src, idst: q.dst, ittl: q.ttl, idf: q.df, ilen: q.totalLen });
      if (q.tcp !== null)
        Object.assign(r, { isport: q.tcp.sport, idport: q.tcp.dport, iflags: flagStr(q.tcp.flags) });
      if (q.udp !== null) Object.assign(r, { isport: q.udp.sport, idport: q.udp.dport });
    }
  }
  return r;
}

/** Compares the named fields, reporting every differing field at once. */
export function assertFields(
  actual: Record<string, unknown>,
  expected: Record<string, unknown>,
  what = "frame",
): void {
  const diffs: string[] = [];
  for (const [k, v] of Object.entries(expected)) {
    if (actual[k] !== v)
      diffs.push(`  ${k}: expected ${JSON.stringify(v)}, got ${JSON.stringify(actual[k])}`);
  }
  if (diffs.length > 0) assert.fail(`${what} differs:\n${diffs.join("\n")}`);
}

// ------------------------------------------------------------------------------- topology

export const MAC = {
  dir0: "02:00:00:00:00:01",
  dir1: "02:00:00:00:00:02",
  router: "02:00:00:00:fe:00",
  gw1: "02:00:00:00:fe:01",
  rs1: "02:00:00:00:01:11",
  rs2: "02:00:00:00:01:12",
  rs3: "02:00:00:00:01:13",
} as const;

export const IP = {
  dir0: "198.18.0.1",
  dir1: "198.18.1.1",
  router: "198.18.0.254",
  gw1: "198.18.1.254",
  vip: "198.18.0.100",
  lip: "198.18.1.100",
  rs1: "198.18.1.11",
  rs2: "198.18.1.12",
  rs3: "198.18.1.13",
  /** A real server behind the gateway on the real-server side (198.18.2.0/24). */
  far: "198.18.2.21",
  client1: "203.0.113.10",
  client2: "203.0.113.20",
} as const;

export interface Sent {
  ifindex: number;
  frame: Uint8Array;
}

export interface DirectorOptions {
  sysctls?: Partial<Sysctls>;
  /** Pre-seed the neighbours (router, gateway, real servers); default true. */
  seedNeigh?: boolean;
  mtu1?: number;
  connCapacity?: number;
  /** The defence's availmem provider (pages; default: the table's free entries). */
  availmem?: () => number;
}

function parseMacStr(s: string): Uint8Array {
  return Uint8Array.from(s.split(":").map((x) => Number.parseInt(x, 16)));
}

/**
 * The director of the tests: eth0 (ifindex 1, 198.18.0.1/24) toward the clients' router
 * 198.18.0.254 (default route), eth1 (ifindex 2, 198.18.1.1/24) on the real servers' LAN,
 * 198.18.2.0/24 via 198.18.1.254; LIP 198.18.1.100; deterministic randomness.
 */
export class Director {
  readonly engine: Engine;
  out: Sent[] = [];
  now = 1000;

  constructor(o: DirectorOptions = {}) {
    let seed = 12345;
    this.engine = new Engine({
      connCapacity: o.connCapacity,
      availmem: o.availmem,
      interfaces: [
        {
          ifindex: 1,
          name: "eth0",
          mac: parseMacStr(MAC.dir0),
          addrs: [{ addr: ip(IP.dir0), prefix: 24 }],
          mtu: 1500,
        },
        {
          ifindex: 2,
          name: "eth1",
          mac: parseMacStr(MAC.dir1),
          addrs: [{ addr: ip(IP.dir1), prefix: 24 }],
          mtu: o.mtu1 ?? 1500,
        },
      ],
      routes: [
        { dst: ip("198.18.2.0"), prefix: 24, via: ip(IP.gw1), ifindex: 2 },
        { dst: 0, prefix: 0, via: ip(IP.router), ifindex: 1 },
      ],
      lips: [ip(IP.lip)],
      sysctls: o.sysctls,
      random: () => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed;
      },
      send: (ifindex, buf, off, len) => {
        this.out.push({ ifindex, frame: buf.slice(off, off + len) });
      },
    });
    if (o.seedNeigh ?? true) this.seedNeighbours(this.now);
  }

  /** Confirms the router, the gateway and the real servers (as their ARP replies would). */
  seedNeighbours(now: number): void {
    const n = this.engine.neigh;
    n.confirm(1, ip(IP.router), parseMacStr(MAC.router), now);
    n.confirm(2, ip(IP.gw1), parseMacStr(MAC.gw1), now);
    n.confirm(2, ip(IP.rs1), parseMacStr(MAC.rs1), now);
    n.confirm(2, ip(IP.rs2), parseMacStr(MAC.rs2), now);
    n.confirm(2, ip(IP.rs3), parseMacStr(MAC.rs3), now);
  }

  /** Time passes with the neighbours kept fresh: expiry runs, no ARP traffic gets in the way. */
  advance(now: number): void {
    this.seedNeighbours(now);
    this.out = [];
    this.engine.tick(now);
    this.out = [];
    this.now = now;
  }

  /** One ipvsadm command line, e.g. "-A -t 198.18.0.100:80 -s rr". */
  ipvsadm(line: string): void {
    const r = parseIpvsadm(line.trim().split(/\s+/));
    if (r.kind !== "ctl") throw new Error(`not a control command: ${line}`);
    this.engine.apply(r.cmd);
  }

  /** Feeds a frame (copied: the engine rewrites in place); returns the verdict and what was sent. */
  input(ifindex: number, frame: Uint8Array, now = this.now): { verdict: number; out: Sent[] } {
    this.now = now;
    const buf = new Uint8Array(frame.length + 64);
    buf.set(frame);
    this.out = [];
    const verdict = this.engine.input(ifindex, buf, frame.length, now);
    const out = this.out;
    this.out = [];
    return { verdict, out };
  }

  /** Feeds a frame that must produce exactly one frame; returns it decoded (checksums verified). */
  one(
    ifindex: number,
    frame: Uint8Array,
    now = this.now,
  ): { ifindex: number; f: Record<string, unknown>; d: DecodedFrame; raw: Uint8Array } {
    const r = this.input(ifindex, frame, now);
    assert.equal(r.out.length, 1, `expected one output frame, got ${r.out.length} (verdict ${r.verdict})`);
    const d = decodeFrame(r.out[0].frame);
    return { ifindex: r.out[0].ifindex, f: flat(d), d, raw: r.out[0].frame };
  }
}

export const L2_FROM_ROUTER = { dmac: parseMacStr(MAC.dir0), smac: parseMacStr(MAC.router) };
export function l2FromLan(srcMac: string): { dmac: Uint8Array; smac: Uint8Array } {
  return { dmac: parseMacStr(MAC.dir1), smac: parseMacStr(srcMac) };
}

/** What a batch should leave in the engine's counters (ipvsadm --stats totals and the drop table). */
export interface EngineCounts {
  rx: number;
  tx: number;
  conns: number;
  inpkts: number;
  inbytes: number;
  /** Default 0 (DR and TUN: replies never cross the director). */
  outpkts?: number;
  outbytes?: number;
  /** Frames left to the kernel; default 0. */
  passed?: number;
  icmpErrors?: number;
  drops?: Record<string, number>;
}

/** Checks the engine's counters after a batch, every field at once (a diff names what differs). */
export function assertEngineCounts(d: Director, e: EngineCounts, what: string): void {
  const c = d.engine.counters;
  const s = d.engine.totalStats;
  assert.deepEqual(
    {
      rx: c.rxFrames,
      tx: c.txFrames,
      conns: c.connsCreated,
      statsConns: s.conns,
      inpkts: s.inpkts,
      inbytes: s.inbytes,
      outpkts: s.outpkts,
      outbytes: s.outbytes,
      passed: c.passed,
      icmpErrors: c.icmpErrorsSent,
      drops: c.dropTable(),
    },
    {
      rx: e.rx,
      tx: e.tx,
      conns: e.conns,
      statsConns: e.conns,
      inpkts: e.inpkts,
      inbytes: e.inbytes,
      outpkts: e.outpkts ?? 0,
      outbytes: e.outbytes ?? 0,
      passed: e.passed ?? 0,
      icmpErrors: e.icmpErrors ?? 0,
      drops: e.drops ?? {},
    },
    what,
  );
}

/**
 * A director with a service of each method on IP.vip: TCP 80 NAT (rs1:8080), 81 DR (rs2), 82 TUN
 * (far), 83 FULLNAT (rs3:9000); UDP 53 NAT (rs1:5353), 54 FULLNAT (rs3:5454).
 */
export function everyMethodDirector(): Director {
  const d = new Director();
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`);
  d.ipvsadm(`-A -t ${IP.vip}:81 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:81 -r ${IP.rs2} -g`);
  d.ipvsadm(`-A -t ${IP.vip}:82 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:82 -r ${IP.far} -i`);
  d.ipvsadm(`-A -t ${IP.vip}:83 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:83 -r ${IP.rs3}:9000 --fullnat`);
  d.ipvsadm(`-A -u ${IP.vip}:53 -s rr`);
  d.ipvsadm(`-a -u ${IP.vip}:53 -r ${IP.rs1}:5353 -m`);
  d.ipvsadm(`-A -u ${IP.vip}:54 -s rr`);
  d.ipvsadm(`-a -u ${IP.vip}:54 -r ${IP.rs3}:5454 --fullnat`);
  return d;
}
