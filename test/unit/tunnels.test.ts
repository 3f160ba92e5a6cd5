// The TUN method's three encapsulations (--tun-type ipip|gue|gre), byte for byte against frames laid
// out here from the kernel's code (net/netfilter/ipvs/ip_vs_xmit.c ipvs_gue_encap, ipvs_gre_encap,
// ip_vs_tunnel_xmit; include/net/gue.h; include/net/gre.h gre_build_header) with the independent
// test builder, never with the product's codecs:
//
//   IPIP  outer IPv4 proto 4 | inner
//   GUE   outer IPv4 proto 17 | UDP sport (flow hash, 32768..60998) dport=--tun-port len csum |
//         00 04 00 00 (version 0, hlen 0, proto_ctype 4, flags 0) | inner
//         REMCSUM on a partial datagram: 02 04 00 01 | 80 00 00 00 | csum_start csum_start+off |
//         inner with its checksum left partial
//   GRE   outer IPv4 proto 47 | 00 00 08 00 | inner; with CSUM 80 00 08 00 | csum 00 00 | inner
//
// The outer header: TOS = the inner's with ECN encapsulated (CE → ECT(0)), ID 0 with DF, DF and TTL
// copied from the (decremented) inner datagram. The UDP checksum of GUE exists with CSUM or
// REMCSUM, else 0; the GRE checksum with CSUM. Then: the fragmentation-needed MTU per type, the
// outer source port, the receive-side codecs and what the real server's decapsulator counts and
// drops, and the choice between the kernel's devices and the user-space decapsulator.

import assert from "node:assert/strict";
import { describe, it, test } from "node:test";
import { Dest, Fwd, TunType } from "../../src/core/dest.js";
import { DestPath } from "../../src/core/output.js";
import { Flow } from "../../src/core/packet/flow.js";
import {
  GRE_ERR_CSUM,
  GRE_ERR_HEADER,
  GRE_ERR_PROTO,
  GRE_ERR_SHORT,
  greDecap,
  greEncap,
} from "../../src/core/packet/gre.js";
import {
  GUE_ERR_CONTROL,
  GUE_ERR_HEADER,
  GUE_ERR_PROTO,
  GUE_ERR_REMCSUM,
  GUE_ERR_SHORT,
  gueDecap,
  gueEncap,
  udpSrcPortFromHash,
} from "../../src/core/packet/gue.js";
import { PARSE_OK, parseFrame } from "../../src/core/packet/parse.js";
import { TUN_F_CSUM, TUN_F_REMCSUM, tun } from "../../src/core/xmit/tun.js";
import type { XmitEngine } from "../../src/core/xmit/types.js";
import {
  chooseDecap,
  type DecapStatsView,
  decapFindings,
  type KernelTunnels,
  type TunnelType,
} from "../../src/realserver/checks.js";
import {
  classify,
  DECAP_BAD_INNER,
  DECAP_BAD_OUTER,
  DECAP_NOT_LOCAL,
  DecapTally,
  type DecapType,
} from "../../src/realserver/decap.js";
import { Director, IP, L2_FROM_ROUTER, MAC } from "../support/frames.js";
import {
  asPartial,
  be16,
  be32,
  concat,
  ETH_P_IP,
  ethFrame,
  get16,
  inetChecksum,
  ip,
  ipv4Datagram,
  l4ChecksumOk,
  mac,
  PROTO_IPIP,
  PROTO_TCP,
  PROTO_UDP,
  pseudoHeader,
  pseudoHeaderSum,
  SYN,
  tcpSegment,
  udpDatagram,
} from "../support/packet-builder.js";

const PROTO_GRE = 47;
const CLIENT = ip(IP.client1);
const VIP = ip(IP.vip);
const DIP = ip(IP.dir1);
const RIP = ip(IP.rs1);

function director(dest: string): Director {
  const d = new Director();
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1} -i ${dest}`.trim());
  return d;
}

/** The client's SYN as an IPv4 datagram of `size` bytes (TTL `ttl`, TOS `tos`). */
function synDgram(size: number, ttl: number, tos = 0, sport = 40000, df = true): Uint8Array {
  const seg = tcpSegment(CLIENT, VIP, {
    sport,
    dport: 80,
    flags: SYN,
    seq: 7,
    payload: new Uint8Array(size - 40).fill(0x5a),
  });
  return ipv4Datagram({ src: CLIENT, dst: VIP, proto: PROTO_TCP, payload: seg, ttl, tos, df, id: 0x4242 });
}

function synFrame(size: number, tos = 0, sport = 40000, df = true): Uint8Array {
  return ethFrame(L2_FROM_ROUTER.dmac, L2_FROM_ROUTER.smac, ETH_P_IP, synDgram(size, 64, tos, sport, df));
}

/** INET_ECN_encapsulate(tos, tos): CE inside is ECT(0) outside. */
function outerTos(tos: number): number {
  return (tos & 3) === 3 ? (tos & 0xfc) | 2 : tos;
}

/** The kernel's frame toward rs1: Ethernet, outer IPv4 (ID 0, DF and TTL as the inner's), payload. */
function toRs1(proto: number, payload: Uint8Array, ttl: number, tos: number, df = true): Uint8Array {
  const outer = ipv4Datagram({ src: DIP, dst: RIP, proto, payload, ttl, tos: outerTos(tos), df, id: 0 });
  return ethFrame(mac(MAC.rs1), mac(MAC.dir1), ETH_P_IP, outer);
}

/** UDP header + payload; the checksum computed (0 → 0xffff) or left 0. */
function udpWith(sport: number, dport: number, payload: Uint8Array, csum: boolean): Uint8Array {
  const u = concat(be16(sport), be16(dport), be16(8 + payload.length), be16(0), payload);
  if (csum) {
    const c = inetChecksum(pseudoHeader(DIP, RIP, PROTO_UDP, u.length), u);
    u.set(be16(c === 0 ? 0xffff : c), 6);
  }
  return u;
}

/** GRE base header (flags 0 or C), protocol 0x0800, [checksum, reserved1], inner. */
function greWith(inner: Uint8Array, csum: boolean): Uint8Array {
  if (!csum) return concat(be16(0), be16(0x0800), inner);
  const g = concat(be16(0x8000), be16(0x0800), be16(0), be16(0), inner);
  g.set(be16(inetChecksum(g)), 4);
  return g;
}

const GUE_PLAIN = Uint8Array.of(0x00, PROTO_IPIP, 0x00, 0x00);

/** The outer UDP source port of a GUE frame (eth 14 + IP 20). */
function sportOf(frame: Uint8Array): number {
  return get16(frame, 34);
}

interface Case {
  description: string;
  dest: string;
  tos?: number;
  /** The expected frame, given the inner datagram as forwarded (TTL 63) and the outer UDP sport seen. */
  expect: (inner: Uint8Array, sport: number) => Uint8Array;
}

const cases: Case[] = [
  {
    description: "ipip: outer proto 4, inner as forwarded",
    dest: "",
    expect: (inner) => toRs1(PROTO_IPIP, inner, 63, 0),
  },
  {
    description: "ipip, inner CE-marked: outer TOS carries ECT(0) instead (INET_ECN_encapsulate)",
    dest: "--tun-type ipip",
    tos: 0xbb,
    expect: (inner) => toRs1(PROTO_IPIP, inner, 63, 0xbb),
  },
  {
    description: "gue --tun-nocsum, port 6080: UDP checksum 0, GUE 00 04 00 00",
    dest: "--tun-type gue --tun-port 6080 --tun-nocsum",
    expect: (inner, sport) => toRs1(PROTO_UDP, udpWith(sport, 6080, concat(GUE_PLAIN, inner), false), 63, 0),
  },
  {
    description: "gue --tun-csum, port 6080: the UDP checksum computed",
    dest: "--tun-type gue --tun-port 6080 --tun-csum",
    tos: 0x10,
    expect: (inner, sport) =>
      toRs1(PROTO_UDP, udpWith(sport, 6080, concat(GUE_PLAIN, inner), true), 63, 0x10),
  },
  {
    description:
      "gue --tun-remcsum on a complete datagram: no option (not CHECKSUM_PARTIAL), UDP checksum computed",
    dest: "--tun-type gue --tun-port 5555 --tun-remcsum",
    expect: (inner, sport) => toRs1(PROTO_UDP, udpWith(sport, 5555, concat(GUE_PLAIN, inner), true), 63, 0),
  },
  {
    description: "gue to another port (7777), no flag given: nocsum",
    dest: "--tun-type gue --tun-port 7777",
    expect: (inner, sport) => toRs1(PROTO_UDP, udpWith(sport, 7777, concat(GUE_PLAIN, inner), false), 63, 0),
  },
  {
    description: "gre --tun-nocsum: 00 00 08 00",
    dest: "--tun-type gre --tun-nocsum",
    expect: (inner) => toRs1(PROTO_GRE, greWith(inner, false), 63, 0),
  },
  {
    description: "gre, no flag given: no checksum",
    dest: "--tun-type gre",
    expect: (inner) => toRs1(PROTO_GRE, greWith(inner, false), 63, 0),
  },
  {
    description: "gre --tun-csum: 80 00 08 00, checksum over GRE header and payload, reserved 0",
    dest: "--tun-type gre --tun-csum",
    tos: 0x03,
    expect: (inner) => toRs1(PROTO_GRE, greWith(inner, true), 63, 0x03),
  },
];

describe("TUN encapsulations, packet in → frame out, byte for byte", () => {
  for (const c of cases) {
    it(c.description, () => {
      const d = director(c.dest);
      const tos = c.tos ?? 0;
      const r = d.input(1, synFrame(100, tos));
      assert.equal(r.out.length, 1, `one frame out (verdict ${r.verdict})`);
      assert.equal(r.out[0].ifindex, 2);
      const got = r.out[0].frame;
      const want = c.expect(synDgram(100, 63, tos), sportOf(got));
      assert.deepEqual(Buffer.from(got), Buffer.from(want));
      assert.deepEqual(d.engine.counters.dropTable(), {});
    });
  }
});

test("GUE source port: udp_flow_src_port's scaling into 32768..60999, one port per flow", () => {
  // The kernel's arithmetic, written out independently: hash ^= hash << 16 (32 bits), then
  // ((u64)hash * (60999 - 32768)) >> 32, + 32768.
  const kernel = (h: number): number => {
    const x = BigInt((h ^ (h << 16)) >>> 0);
    return Number(((x * 28231n) >> 32n) + 32768n);
  };
  for (const h of [0, 1, 0xffff, 0x10000, 0x12345678, 0x80000000, 0xdeadbeef, 0xffffffff, 0x7fff8000]) {
    assert.equal(udpSrcPortFromHash(h), kernel(h), `hash ${h.toString(16)}`);
  }
  assert.equal(udpSrcPortFromHash(0), 32768);
  assert.equal(udpSrcPortFromHash(0x80000000), 46883);

  const d = director("--tun-type gue --tun-port 6080");
  const ports = new Set<number>();
  for (let i = 0; i < 32; i++) {
    const a = d.input(1, synFrame(60, 0, 41000 + i)).out[0].frame;
    const b = d.input(1, synFrame(60, 0, 41000 + i)).out[0].frame; // same connection again
    assert.equal(sportOf(a), sportOf(b), "one flow, one source port");
    assert.ok(sportOf(a) >= 32768 && sportOf(a) <= 60998, `port ${sportOf(a)} in range`);
    ports.add(sportOf(a));
  }
  assert.ok(ports.size >= 16, `32 flows spread over ${ports.size} source ports`);
});

describe("path MTU per type: the largest datagram that fits, and fragmentation-needed with the link MTU less the overhead", () => {
  const mtus: { dest: string; mtu: number }[] = [
    { dest: "", mtu: 1480 },
    { dest: "--tun-type gue --tun-port 6080", mtu: 1468 },
    { dest: "--tun-type gue --tun-port 6080 --tun-csum", mtu: 1468 },
    { dest: "--tun-type gue --tun-port 6080 --tun-remcsum", mtu: 1468 },
    { dest: "--tun-type gre", mtu: 1476 },
    { dest: "--tun-type gre --tun-csum", mtu: 1472 },
  ];
  for (const m of mtus) {
    it(`${m.dest || "ipip"}: ${m.mtu}`, () => {
      const d = director(m.dest);
      const fits = d.one(1, synFrame(m.mtu, 0, 40001));
      assert.equal(fits.ifindex, 2);
      assert.equal(fits.f.len, 1500, "outer datagram fills the link");
      const big = d.one(1, synFrame(m.mtu + 1, 0, 40002));
      assert.equal(big.ifindex, 1);
      assert.equal(big.f.icmpType, 3);
      assert.equal(big.f.icmpCode, 4);
      assert.equal(big.f.icmpRest, m.mtu, "next-hop MTU");
      assert.equal(big.f.dst, IP.client1);
      assert.equal(d.engine.counters.dropTable().frag_needed, 1);
      const noDf = d.input(1, synFrame(m.mtu + 1, 0, 40003, false));
      assert.equal(noDf.out.length, 0);
      assert.equal(d.engine.counters.dropTable().too_big, 1);
    });
  }
});

describe("GUE remote checksum offload on a datagram whose checksum is partial (CHECKSUM_PARTIAL)", () => {
  // The method itself, fed a flow whose TCP checksum is still partial (the kernel's
  // skb->ip_summed == CHECKSUM_PARTIAL), through a minimal engine: one destination on a 1500-byte
  // link. (The engine finishes partial checksums of the frames it receives, so through it the
  // option does not appear: as from a kernel director fed by a NIC.)
  function run(
    dest: { tunType: number; tunPort: number; tunFlags: number },
    frame: Uint8Array,
  ): { sent: Uint8Array | null; fragNeeded: number; drops: number[] } {
    const f = new Flow();
    const buf = new Uint8Array(frame.length + 64);
    buf.set(frame);
    assert.equal(parseFrame(buf, frame.length, f, 1), PARSE_OK);
    f.csumPartial = true;
    const d = new Dest(RIP, 80);
    d.fwd = Fwd.Tunnel;
    d.tunType = dest.tunType;
    d.tunPort = dest.tunPort;
    d.tunFlags = dest.tunFlags;
    const iface = { mtu: 1500 } as unknown as DestPath["iface"];
    const path = new DestPath(iface, RIP, DIP, d);
    let sent: Uint8Array | null = null;
    let fragNeeded = 0;
    const drops: number[] = [];
    const e = {
      conns: { destOf: () => 0, daddrOf: () => RIP | 0 },
      scratch: new Uint8Array(65536 + 256),
      destPath: () => path,
      fitsPath: (p: DestPath, l3Len: number, overhead: number): boolean => {
        if (l3Len <= p.iface.mtu - overhead) return true;
        fragNeeded = p.iface.mtu - overhead;
        return false;
      },
      emitToDest: (b: Uint8Array, l3Off: number, l3Len: number): number => {
        sent = b.slice(l3Off, l3Off + l3Len);
        return 1;
      },
      drop: (r: number): number => {
        drops.push(r);
        return 2;
      },
    } as unknown as XmitEngine;
    tun.inbound(e, 0, f, 0);
    return { sent, fragNeeded, drops };
  }
  const GUE_REMCSUM = { tunType: TunType.Gue, tunPort: 6080, tunFlags: TUN_F_REMCSUM };

  it("--tun-remcsum: 02 04 00 01 | 80 00 00 00 | 00 14 00 24, inner checksum left partial, UDP checksum over it", () => {
    const r = run(GUE_REMCSUM, asPartial(synFrame(100)));
    assert.ok(r.sent !== null);
    const got: Uint8Array = r.sent;
    const inner = synDgram(100, 64);
    // The partial field: the pseudo-header sum (addresses, protocol, TCP length).
    inner.set(be16(pseudoHeaderSum(CLIENT, VIP, PROTO_TCP, 80)), 20 + 16);
    const gue = concat(
      Uint8Array.of(0x02, PROTO_IPIP, 0x00, 0x01), // hlen 2 words, GUE_FLAG_PRIV
      be32(0x80000000), // GUE_PFLAG_REMCSUM
      be16(20), // csum_start: the TCP header, from the inner datagram's start
      be16(20 + 16), // csum_start + csum_offset: the TCP checksum field
      inner,
    );
    const outer = ipv4Datagram({
      src: DIP,
      dst: RIP,
      proto: PROTO_UDP,
      payload: udpWith(get16(got, 20), 6080, gue, true),
      ttl: 64,
      df: true,
      id: 0,
    });
    assert.deepEqual(Buffer.from(got), Buffer.from(outer));
    // What the real server's fou (or decapsulator) makes of it: the client's datagram, checksum whole.
    const udp = got.slice(20);
    const off = gueDecap(udp, 8, udp.length - 8);
    assert.deepEqual(Buffer.from(udp.subarray(off)), Buffer.from(synDgram(100, 64)));
  });

  it("the option's 8 bytes count in the MTU: 1460 fits, 1461 gets fragmentation-needed 1460", () => {
    assert.notEqual(run(GUE_REMCSUM, asPartial(synFrame(1460))).sent, null);
    const r = run(GUE_REMCSUM, asPartial(synFrame(1461)));
    assert.equal(r.sent, null);
    assert.equal(r.fragNeeded, 1460);
  });

  for (const dest of [
    { name: "gue --tun-csum", tunType: TunType.Gue, tunPort: 6080, tunFlags: TUN_F_CSUM, at: 32 },
    { name: "gre --tun-csum", tunType: TunType.Gre, tunPort: 0, tunFlags: TUN_F_CSUM, at: 28 },
    { name: "ipip", tunType: TunType.Ipip, tunPort: 0, tunFlags: 0, at: 20 },
  ]) {
    it(`${dest.name}: no option, the inner checksum finished before the tunnel hides it`, () => {
      const r = run(dest, asPartial(synFrame(100)));
      assert.ok(r.sent !== null);
      const got: Uint8Array = r.sent;
      assert.deepEqual(Buffer.from(got.subarray(dest.at)), Buffer.from(synDgram(100, 64)));
    });
  }
});

describe("receive-side codecs: encapsulation and decapsulation round trip", () => {
  const inner = synDgram(120, 63);
  const out = new Uint8Array(2048);

  it("GUE without and with checksum: the inner datagram comes back from its offset", () => {
    for (const csum of [false, true]) {
      const n = gueEncap(out, 0, inner, 0, inner.length, DIP, RIP, 63, 0, true, 40000, 6080, csum);
      assert.equal(n, 20 + 8 + 4 + inner.length);
      const udp = out.subarray(20, n);
      const off = gueDecap(udp, 8, udp.length - 8);
      assert.equal(off, 12);
      assert.deepEqual(Buffer.from(udp.subarray(off)), Buffer.from(inner));
    }
  });

  it("GUE remote checksum: the receiver finishes the partial inner checksum", () => {
    const partial = inner.slice();
    partial.set(be16(pseudoHeaderSum(CLIENT, VIP, PROTO_TCP, inner.length - 20)), 36);
    assert.ok(!l4ChecksumOk(partial, 0));
    const n = gueEncap(out, 0, partial, 0, partial.length, DIP, RIP, 63, 0, true, 40000, 6080, true, 20, 16);
    const udp = out.slice(20, n);
    const off = gueDecap(udp, 8, udp.length - 8);
    assert.equal(off, 8 + 12);
    assert.deepEqual(
      Buffer.from(udp.subarray(off)),
      Buffer.from(inner),
      "inner as the client sent it (TTL - 1)",
    );
    assert.ok(l4ChecksumOk(udp, off));
  });

  it("GRE without and with checksum; a corrupted byte fails only the checksummed one", () => {
    for (const csum of [false, true]) {
      const n = greEncap(out, 0, inner, 0, inner.length, DIP, RIP, 63, 0, true, csum);
      assert.equal(n, 20 + (csum ? 8 : 4) + inner.length);
      const gre = out.slice(20, n);
      const off = greDecap(gre, 0, gre.length);
      assert.equal(off, csum ? 8 : 4);
      assert.deepEqual(Buffer.from(gre.subarray(off)), Buffer.from(inner));
      gre[gre.length - 1] ^= 0x40;
      assert.equal(greDecap(gre, 0, gre.length), csum ? GRE_ERR_CSUM : off);
    }
  });

  it("an encapsulation that would pass 65535 bytes or the buffer is refused (0)", () => {
    const big = new Uint8Array(65515);
    assert.equal(
      gueEncap(new Uint8Array(70000), 0, big, 0, big.length, DIP, RIP, 1, 0, false, 1, 2, false),
      0,
    );
    assert.equal(greEncap(new Uint8Array(70000), 0, big, 0, 65512, DIP, RIP, 1, 0, false, false), 0);
    assert.equal(greEncap(new Uint8Array(100), 0, inner, 0, inner.length, DIP, RIP, 1, 0, false, false), 0);
  });
});

describe("malformed GUE and GRE headers are refused as the kernel refuses them", () => {
  const inner = synDgram(60, 63);
  const gue = (head: number[], opts: number[] = []): Uint8Array =>
    concat(Uint8Array.from(head), Uint8Array.from(opts), inner);
  const gueCases: { description: string; b: Uint8Array; want: number }[] = [
    { description: "well formed", b: gue([0x00, 4, 0, 0]), want: 4 },
    { description: "shorter than the base header", b: Uint8Array.of(0, 4, 0), want: GUE_ERR_SHORT },
    {
      description: "hlen beyond the datagram",
      b: Uint8Array.of(0x1f, 4, 0, 0, 1, 2, 3, 4),
      want: GUE_ERR_SHORT,
    },
    { description: "version 1", b: gue([0x40, 4, 0, 0]), want: GUE_ERR_HEADER },
    { description: "unknown standard flag", b: gue([0x00, 4, 0x80, 0]), want: GUE_ERR_HEADER },
    { description: "private flag without room for its word", b: gue([0x00, 4, 0, 1]), want: GUE_ERR_HEADER },
    { description: "unknown private flag", b: gue([0x01, 4, 0, 1], [0x40, 0, 0, 0]), want: GUE_ERR_HEADER },
    { description: "private word 0: nothing to do", b: gue([0x01, 4, 0, 1], [0, 0, 0, 0]), want: 8 },
    {
      description: "remote checksum without its 4 bytes",
      b: gue([0x01, 4, 0, 1], [0x80, 0, 0, 0]),
      want: GUE_ERR_REMCSUM,
    },
    {
      description: "remote checksum field past the inner datagram",
      b: gue([0x02, 4, 0, 1], [0x80, 0, 0, 0, 0, 20, 0xff, 0xf0]),
      want: GUE_ERR_REMCSUM,
    },
    { description: "control message", b: gue([0x20, 4, 0, 0]), want: GUE_ERR_CONTROL },
    { description: "proto_ctype 0", b: gue([0x00, 0, 0, 0]), want: GUE_ERR_PROTO },
    // proto_ctype 41: an IPv6 datagram inside (an IPv6 service's tunnel), delivered by offset (the
    // decapsulator checks the inner header against it).
    { description: "proto_ctype 41 (IPv6)", b: gue([0x00, 41, 0, 0]), want: 4 },
    { description: "proto_ctype 47", b: gue([0x00, 47, 0, 0]), want: GUE_ERR_PROTO },
  ];
  for (const c of gueCases) {
    it(`GUE: ${c.description}`, () => assert.equal(gueDecap(c.b, 0, c.b.length), c.want));
  }
  const gre = (flags: number, proto: number, extra: number[] = []): Uint8Array =>
    concat(be16(flags), be16(proto), Uint8Array.from(extra), inner);
  const greCases: { description: string; b: Uint8Array; want: number }[] = [
    { description: "well formed", b: gre(0, 0x0800), want: 4 },
    { description: "shorter than the base header", b: Uint8Array.of(0, 0, 8), want: GRE_ERR_SHORT },
    { description: "version 1 (PPTP)", b: gre(1, 0x0800), want: GRE_ERR_HEADER },
    { description: "routing bit", b: gre(0x4000, 0x0800), want: GRE_ERR_HEADER },
    {
      description: "key and sequence number skipped",
      b: gre(0x3000, 0x0800, [0, 0, 0, 9, 0, 0, 0, 1]),
      want: 12,
    },
    {
      description: "key flag, datagram too short for it",
      b: Uint8Array.of(0x20, 0, 8, 0, 1),
      want: GRE_ERR_SHORT,
    },
    {
      description: "checksum bit with a wrong checksum",
      b: gre(0x8000, 0x0800, [0x12, 0x34, 0, 0]),
      want: GRE_ERR_CSUM,
    },
    { description: "protocol 0x86dd (IPv6)", b: gre(0, 0x86dd), want: 4 },
    { description: "protocol 0x6558 (Ethernet)", b: gre(0, 0x6558), want: GRE_ERR_PROTO },
  ];
  for (const c of greCases) {
    it(`GRE: ${c.description}`, () => assert.equal(greDecap(c.b, 0, c.b.length), c.want));
  }
});

describe("the real server's decapsulator: what it delivers, counts and drops, per type", () => {
  const inner = ipv4Datagram({
    src: ip("198.18.20.2"),
    dst: VIP,
    proto: PROTO_UDP,
    payload: udpDatagram(ip("198.18.20.2"), VIP, { sport: 40000, dport: 53, payload: new Uint8Array(4) }),
  });
  const host = Uint32Array.from(["127.0.0.1", IP.rs1].map(ip));
  const outer = (proto: number, payload: Uint8Array, dst = RIP): Uint8Array =>
    ipv4Datagram({ src: DIP, dst, proto, payload });
  interface D {
    description: string;
    type: DecapType;
    /** IPIP/GRE: the outer datagram; GUE: the UDP payload. */
    b: Uint8Array;
    len?: number;
    /** GUE: the outer destination (IP_PKTINFO). */
    dst?: number;
    want: number;
  }
  const cases: D[] = [
    { description: "IPIP delivered", type: "ipip", b: outer(PROTO_IPIP, inner), want: 20 },
    { description: "GRE delivered", type: "gre", b: outer(PROTO_GRE, greWith(inner, false)), want: 24 },
    {
      description: "GRE with checksum delivered",
      type: "gre",
      b: outer(PROTO_GRE, greWith(inner, true)),
      want: 28,
    },
    { description: "GUE delivered", type: "gue", b: concat(GUE_PLAIN, inner), dst: RIP, want: 4 },
    {
      description: "GRE: bad checksum",
      type: "gre",
      b: outer(PROTO_GRE, concat(be16(0x8000), be16(0x0800), be16(1), be16(0), inner)),
      want: DECAP_BAD_OUTER,
    },
    {
      description: "GRE: version 1",
      type: "gre",
      b: outer(PROTO_GRE, concat(be16(1), be16(0x0800), inner)),
      want: DECAP_BAD_OUTER,
    },
    {
      description: "GRE: outer protocol not 47",
      type: "gre",
      b: outer(PROTO_IPIP, greWith(inner, false)),
      want: DECAP_BAD_OUTER,
    },
    {
      description: "GRE: outer cut short",
      type: "gre",
      b: outer(PROTO_GRE, greWith(inner, false)),
      len: 22,
      want: DECAP_BAD_OUTER,
    },
    {
      description: "GRE: inner IPv6",
      type: "gre",
      b: outer(PROTO_GRE, concat(be16(0), be16(0x86dd), inner)),
      want: DECAP_BAD_INNER,
    },
    {
      description: "GRE: inner total length beyond what arrived",
      type: "gre",
      b: outer(PROTO_GRE, greWith(inner, false)),
      len: 24 + inner.length - 1,
      want: DECAP_BAD_INNER,
    },
    {
      description: "GRE: to an address that is not local",
      type: "gre",
      b: outer(PROTO_GRE, greWith(inner, false), ip("198.18.1.99")),
      want: DECAP_NOT_LOCAL,
    },
    {
      description: "GUE: control message",
      type: "gue",
      b: concat(Uint8Array.of(0x20, 4, 0, 0), inner),
      dst: RIP,
      want: DECAP_BAD_OUTER,
    },
    {
      description: "GUE: version 1",
      type: "gue",
      b: concat(Uint8Array.of(0x40, 4, 0, 0), inner),
      dst: RIP,
      want: DECAP_BAD_OUTER,
    },
    { description: "GUE: 3 bytes", type: "gue", b: Uint8Array.of(0, 4, 0), dst: RIP, want: DECAP_BAD_OUTER },
    {
      description: "GUE: proto_ctype 17",
      type: "gue",
      b: concat(Uint8Array.of(0, 17, 0, 0), inner),
      dst: RIP,
      want: DECAP_BAD_INNER,
    },
    {
      description: "GUE: inner not IPv4",
      type: "gue",
      b: concat(GUE_PLAIN, Uint8Array.from([0x60, ...inner.subarray(1)])),
      dst: RIP,
      want: DECAP_BAD_INNER,
    },
    {
      description: "GUE: to an address that is not local",
      type: "gue",
      b: concat(GUE_PLAIN, inner),
      dst: ip("198.18.1.99"),
      want: DECAP_NOT_LOCAL,
    },
  ];
  for (const c of cases) {
    it(c.description, () => {
      assert.equal(classify(c.type, c.b.slice(), c.len ?? c.b.length, c.dst ?? 0, host), c.want);
    });
  }

  it("counts every datagram once, by its fate, and remembers the usable tunnel sources", () => {
    const t = new DecapTally();
    for (const c of cases) {
      const off = classify(c.type, c.b.slice(), c.len ?? c.b.length, c.dst ?? 0, host);
      t.account(off, c.type === "gue" ? ip("198.18.1.2") : DIP, c.dst ?? RIP);
    }
    assert.deepEqual(
      { ...t.cnt },
      { received: cases.length, delivered: 0, badOuter: 7, badInner: 4, notLocal: 2, writeErrors: 0 },
    );
    assert.deepEqual(Array.from(t.sources.subarray(0, t.nSources)), [DIP, ip("198.18.1.2")]);
    assert.equal(t.lastNotLocal, ip("198.18.1.99"));
  });
});

describe("kernel devices or the user-space decapsulator", () => {
  const none: KernelTunnels = { ipip: false, gre: false, fou: false };
  const all: KernelTunnels = { ipip: true, gre: true, fou: true };
  const table: { type: TunnelType; k: KernelTunnels; want: "kernel" | "user" }[] = [
    { type: "ipip", k: none, want: "user" },
    { type: "gre", k: none, want: "user" },
    { type: "gue", k: none, want: "user" },
    { type: "ipip", k: all, want: "kernel" },
    { type: "gre", k: all, want: "kernel" },
    { type: "gue", k: all, want: "kernel" },
    { type: "gue", k: { ipip: false, gre: true, fou: true }, want: "user" },
    { type: "gue", k: { ipip: true, gre: false, fou: false }, want: "user" },
    { type: "gre", k: { ipip: true, gre: false, fou: true }, want: "user" },
  ];
  for (const c of table) {
    it(`${c.type} with ${JSON.stringify(c.k)}: ${c.want}`, () => {
      assert.equal(chooseDecap(c.type, "auto", c.k).how, c.want);
      assert.equal(chooseDecap(c.type, "user", c.k).how, "user");
    });
  }
  it("--decap kernel without the module is an error naming it", () => {
    assert.throws(() => chooseDecap("gue", "kernel", { ipip: true, gre: true, fou: false }), /fou and ipip/);
    assert.equal(chooseDecap("gre", "kernel", all).how, "kernel");
  });
});

describe("doctor's verdict on the decapsulator, per type", () => {
  const stats = (type: TunnelType, port: number): DecapStatsView => ({
    received: 4,
    delivered: 4,
    badOuter: 0,
    badInner: 0,
    notLocal: 0,
    writeErrors: 0,
    accept: "host",
    addresses: [IP.rs1],
    sources: [IP.dir1],
    lastNotLocal: null,
    type,
    port,
  });
  const up = { alive: true, pid: 42, hasTun: true, directorSrc: [] as string[] };
  it("GUE on the right port: ok, named with its port and device", () => {
    const f = decapFindings({ ...up, type: "gue", port: 6080, tun: "tsvsgue0", stats: stats("gue", 6080) });
    assert.equal(f.length, 1);
    assert.equal(f[0].level, "ok");
    assert.equal(f[0].what, "GUE decapsulator pid 42 (UDP port 6080), tsvsgue0 present");
    assert.match(f[0].detail, /received 4, delivered 4, bad 0/);
  });
  it("GRE wanted, a GUE decapsulator running: FAIL, naming the setup to run", () => {
    const f = decapFindings({ ...up, type: "gre", tun: "tsvsgre0", stats: stats("gue", 6080) });
    assert.equal(f[0].level, "FAIL");
    assert.equal(f[0].what, "GRE decapsulator: the one running (pid 42) takes GUE on UDP port 6080");
    assert.match(f[0].detail, /run tsvs realserver setup --method tun --tun-type gre$/);
  });
  it("GUE on another port than the director's: FAIL", () => {
    const f = decapFindings({ ...up, type: "gue", port: 6080, tun: "tsvsgue0", stats: stats("gue", 7000) });
    assert.equal(f[0].level, "FAIL");
    assert.match(f[0].detail, /--tun-type gue --tun-port 6080$/);
  });
  it("stats of an older decapsulator (no type): IPIP, as before", () => {
    const s = stats("ipip", 0);
    delete s.type;
    const f = decapFindings({ ...up, tun: "tsvsipip0", stats: s });
    assert.equal(f[0].what, "IPIP decapsulator pid 42, tsvsipip0 present");
  });
});
