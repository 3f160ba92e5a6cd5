// The IPv6 half of frames.ts: an independent decoder that re-reads every IPv6 header from the
// bytes and recomputes every TCP/UDP/ICMPv6 checksum from scratch with the pseudo-header (throwing
// on the first mismatch), IPv6-in-IPv6 included, and a dual-stack director topology for the IPv6
// data-path tests.

import assert from "node:assert/strict";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { ipv6TextWords } from "../../src/core/addr.js";
import { Engine, type Sysctls } from "../../src/core/engine.js";
import { get16, get32, inetChecksum, ip, mac as macBytes, macStr } from "./packet-builder.js";
import {
  a6Str,
  NH_DEST,
  NH_FRAGMENT,
  NH_HOP,
  NH_ICMPV6,
  NH_IPV6,
  NH_ROUTING,
  NH_TCP,
  NH_UDP,
  pseudoHeader6,
} from "./packet6.js";

export interface Decoded6 {
  src: string;
  dst: string;
  hl: number;
  tc: number;
  flow: number;
  plen: number;
  /** The upper-layer protocol after the extension headers. */
  nh: number;
  sport: number;
  dport: number;
  tcp: { seq: number; ack: number; flags: number; payload: Uint8Array } | null;
  udp: { checksum: number; payload: Uint8Array } | null;
  icmp: { type: number; code: number; rest: number; data: Uint8Array; quoted: Decoded6 | null } | null;
  /** Next header 41: the encapsulated packet. */
  inner: Decoded6 | null;
}

/**
 * Decodes and verifies an IPv6 packet: version, payload length (exactly the bytes given, unless
 * `quoted`: inside an ICMPv6 error, cut anywhere), and the upper-layer checksum.
 */
export function decode6(b: Uint8Array, quoted = false): Decoded6 {
  assert.ok(b.length >= 40, `IPv6 packet shorter than 40 bytes (${b.length})`);
  assert.equal(b[0] >> 4, 6, "IPv6 version");
  const plen = get16(b, 4);
  if (!quoted) assert.equal(plen, b.length - 40, "IPv6 payload length != packet length - 40");
  const end = quoted ? b.length : 40 + plen;
  let nh = b[6];
  let off = 40;
  let fragment = false;
  while ((nh === NH_HOP || nh === NH_DEST || nh === NH_ROUTING || nh === NH_FRAGMENT) && off + 8 <= end) {
    if (nh === NH_FRAGMENT) fragment = fragment || (get16(b, off + 2) & 0xfff9) !== 0;
    const next = b[off];
    off += nh === NH_FRAGMENT ? 8 : (b[off + 1] + 1) * 8;
    nh = next;
  }
  const src = b.subarray(8, 24);
  const dst = b.subarray(24, 40);
  const d: Decoded6 = {
    src: a6Str(b, 8),
    dst: a6Str(b, 24),
    hl: b[7],
    tc: ((b[0] & 15) << 4) | (b[1] >> 4),
    flow: ((b[1] & 15) << 16) | get16(b, 2),
    plen,
    nh,
    sport: 0,
    dport: 0,
    tcp: null,
    udp: null,
    icmp: null,
    inner: null,
  };
  const l4 = b.subarray(off, end);
  if ((nh === NH_TCP || nh === NH_UDP) && l4.length >= 4) {
    d.sport = get16(l4, 0);
    d.dport = get16(l4, 2);
  }
  if (quoted || fragment) return d;
  const sum = (what: string): void =>
    assert.equal(inetChecksum(pseudoHeader6(src, dst, nh, l4.length), l4), 0, `${what} checksum wrong`);
  if (nh === NH_TCP) {
    assert.ok(l4.length >= 20, "TCP header truncated");
    sum("TCP");
    const thlen = (l4[12] >> 4) * 4;
    d.tcp = { seq: get32(l4, 4), ack: get32(l4, 8), flags: l4[13], payload: l4.slice(thlen) };
  } else if (nh === NH_UDP) {
    assert.ok(l4.length >= 8, "UDP header truncated");
    assert.equal(get16(l4, 4), l4.length, "UDP length");
    assert.notEqual(get16(l4, 6), 0, "UDP checksum 0 over IPv6");
    sum("UDP");
    d.udp = { checksum: get16(l4, 6), payload: l4.slice(8) };
  } else if (nh === NH_ICMPV6) {
    assert.ok(l4.length >= 8, "ICMPv6 header truncated");
    sum("ICMPv6");
    const type = l4[0];
    d.icmp = {
      type,
      code: l4[1],
      rest: get32(l4, 4),
      data: l4.slice(8),
      quoted: type < 128 && l4.length >= 48 ? decode6(l4.subarray(8), true) : null,
    };
  } else if (nh === NH_IPV6) d.inner = decode6(l4);
  return d;
}

/** A flat view for table assertions (as frames.ts flat): only the keys a test names are compared. */
export function flat6(frame: Uint8Array): Record<string, string | number | boolean | null> {
  assert.equal(get16(frame, 12), 0x86dd, "ethertype");
  const d = decode6(frame.subarray(14));
  const r: Record<string, string | number | boolean | null> = {
    dmac: macStr(frame, 0),
    smac: macStr(frame, 6),
    src: d.src,
    dst: d.dst,
    hl: d.hl,
    tc: d.tc,
    flow: d.flow,
    nh: d.nh,
    plen: d.plen,
  };
  if (d.tcp !== null || d.udp !== null) {
    r.sport = d.sport;
    r.dport = d.dport;
  }
  if (d.tcp !== null) {
    r.seq = d.tcp.seq;
    r.ackno = d.tcp.ack;
    r.flags = d.tcp.flags;
    r.payload = new TextDecoder().decode(d.tcp.payload);
  }
  if (d.udp !== null) r.payload = new TextDecoder().decode(d.udp.payload);
  if (d.icmp !== null) {
    Object.assign(r, { icmpType: d.icmp.type, icmpCode: d.icmp.code, icmpRest: d.icmp.rest });
    const q = d.icmp.quoted;
    if (q !== null)
      Object.assign(r, { qsrc: q.src, qdst: q.dst, qsport: q.sport, qdport: q.dport, qhl: q.hl });
  }
  const i = d.inner;
  if (i !== null) {
    Object.assign(r, {
      isrc: i.src,
      idst: i.dst,
      ihl: i.hl,
      itc: i.tc,
      inh: i.nh,
      isport: i.sport,
      idport: i.dport,
    });
  }
  return r;
}

// ------------------------------------------------------------------------------- topology

export const MAC6 = {
  dir0: "02:00:00:00:00:01",
  dir1: "02:00:00:00:00:02",
  router: "02:00:00:00:fe:00",
  gw1: "02:00:00:00:fe:01",
  rs1: "02:00:00:00:01:11",
  rs2: "02:00:00:00:01:12",
  rs3: "02:00:00:00:01:13",
} as const;

/** The addresses as the decoder prints them (uncompressed groups). */
export const IP6 = {
  dir0: "2001:db8:0:0:0:0:0:1",
  dir1: "2001:db8:1:0:0:0:0:1",
  router: "2001:db8:0:0:0:0:0:fe",
  gw1: "2001:db8:1:0:0:0:0:fe",
  vip: "2001:db8:0:0:0:0:0:100",
  rs1: "2001:db8:1:0:0:0:0:11",
  rs2: "2001:db8:1:0:0:0:0:12",
  rs3: "2001:db8:1:0:0:0:0:13",
  far: "2001:db8:2:0:0:0:0:21",
  client1: "2001:db8:ff:0:0:0:0:10",
  client2: "2001:db8:ff:0:0:0:0:20",
} as const;

export interface Sent6 {
  ifindex: number;
  frame: Uint8Array;
  /** The virtio_net_hdr an aggregate left with (a copy), or null. */
  vnet: Uint8Array | null;
}

export interface Director6Options {
  sysctls?: Partial<Sysctls>;
  seedNeigh?: boolean;
  /** The MTU of eth0 (the clients' side) and eth1 (the real servers' LAN), 1500 by default. */
  mtu0?: number;
  mtu1?: number;
  /** The engine's own generator with this seed (readable ahead, as explain reads it); default an injected LCG. */
  seed?: number;
}

/**
 * A dual-stack director: eth0 (ifindex 1) 198.18.0.1/24 and 2001:db8::1/64 toward the clients'
 * router 2001:db8::fe (the IPv6 default route), eth1 (ifindex 2) 198.18.1.1/24 and
 * 2001:db8:1::1/64 on the real servers' LAN, 2001:db8:2::/64 via 2001:db8:1::fe.
 */
export class Director6 {
  readonly engine: Engine;
  out: Sent6[] = [];
  now = 1000;

  constructor(o: Director6Options = {}) {
    let seed = 12345;
    this.engine = new Engine({
      interfaces: [
        {
          ifindex: 1,
          name: "eth0",
          mac: macBytes(MAC6.dir0),
          addrs: [{ addr: ip("198.18.0.1"), prefix: 24 }],
          addrs6: [
            { addr6: "2001:db8::1", prefix: 64 },
            { addr6: "fe80::1", prefix: 64 },
          ],
          mtu: o.mtu0 ?? 1500,
        },
        {
          ifindex: 2,
          name: "eth1",
          mac: macBytes(MAC6.dir1),
          addrs: [{ addr: ip("198.18.1.1"), prefix: 24 }],
          addrs6: [
            { addr6: "2001:db8:1::1", prefix: 64 },
            { addr6: "fe80::2", prefix: 64 },
          ],
          mtu: o.mtu1 ?? 1500,
        },
      ],
      routes: [
        { dst: 0, prefix: 64, via: 0, ifindex: 2, dst6: "2001:db8:2::", via6: "2001:db8:1::fe" },
        { dst: 0, prefix: 0, via: 0, ifindex: 1, dst6: "::", via6: "2001:db8::fe" },
        { dst: 0, prefix: 0, via: ip("198.18.0.254"), ifindex: 1 },
      ],
      sysctls: o.sysctls,
      ...(o.seed !== undefined
        ? { seed: o.seed }
        : {
            random: () => {
              seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
              return seed;
            },
          }),
      send: (ifindex, buf, off, len, vnet) => {
        this.out.push({
          ifindex,
          frame: buf.slice(off, off + len),
          vnet: vnet === null ? null : vnet.slice(),
        });
      },
    });
    if (o.seedNeigh ?? true) this.seedNeighbours(this.now);
  }

  /** The router, the gateway and the real servers as their NAs would make them: REACHABLE. */
  seedNeighbours(now: number): void {
    const n = this.engine.neigh;
    const seed = (ifindex: number, a: string, m: string): void => {
      const w = ipv6TextWords(a);
      assert.ok(w !== null);
      const mb = macBytes(m);
      n.learnFromNs(ifindex, w, 0, mb, 0, now);
      n.learnFromNa(ifindex, w, 0, 0x60, mb, 0, now);
    };
    seed(1, IP6.router, MAC6.router);
    seed(2, IP6.gw1, MAC6.gw1);
    seed(2, IP6.rs1, MAC6.rs1);
    seed(2, IP6.rs2, MAC6.rs2);
    seed(2, IP6.rs3, MAC6.rs3);
  }

  ipvsadm(line: string): void {
    const r = parseIpvsadm(line.trim().split(/\s+/));
    if (r.kind !== "ctl") throw new Error(`not a control command: ${line}`);
    this.engine.apply(r.cmd);
  }

  /** Feeds a frame (copied), with the link's offload word for an aggregate. */
  input(ifindex: number, frame: Uint8Array, now = this.now, offload = 0): { verdict: number; out: Sent6[] } {
    this.now = now;
    const buf = new Uint8Array(frame.length + 64);
    buf.set(frame);
    this.out = [];
    const verdict = this.engine.input(ifindex, buf, frame.length, now, offload);
    const out = this.out;
    this.out = [];
    return { verdict, out };
  }

  /** A frame that must produce exactly one IPv6 frame: it, flat and verified. */
  one(
    ifindex: number,
    frame: Uint8Array,
    now = this.now,
  ): { ifindex: number; f: Record<string, unknown>; raw: Uint8Array } {
    const r = this.input(ifindex, frame, now);
    assert.equal(r.out.length, 1, `expected one output frame, got ${r.out.length} (verdict ${r.verdict})`);
    return { ifindex: r.out[0].ifindex, f: flat6(r.out[0].frame), raw: r.out[0].frame };
  }

  /** Time passes with the neighbours kept fresh. */
  advance(now: number): void {
    this.seedNeighbours(now);
    this.out = [];
    this.engine.tick(now);
    this.out = [];
    this.now = now;
  }
}

export const L2_6_FROM_ROUTER = { dmac: macBytes(MAC6.dir0), smac: macBytes(MAC6.router) };
export function l2_6FromLan(srcMac: string): { dmac: Uint8Array; smac: Uint8Array } {
  return { dmac: macBytes(MAC6.dir1), smac: macBytes(srcMac) };
}
