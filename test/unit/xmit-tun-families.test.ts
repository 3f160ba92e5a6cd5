// TUN across address families and GUE/GRE over IPv6 (issue 14), packet in → frame out, byte for
// byte against frames laid out here with the test builders (never the product's codecs) from the
// kernel's code: net/netfilter/ipvs/ip_vs_xmit.c ip_vs_tunnel_xmit (outer IPv4) and
// ip_vs_tunnel_xmit_v6 (outer IPv6), picked by the destination's family (ip_vs_bind_xmit: daf);
// ip_vs_prepare_tunneled_skb (inner protocol 4 or 41, TTL/hop limit and DSCP copied with ECN
// encapsulated, DF copied from an IPv4 datagram and never set for an IPv6 one); ipvs_gue_encap
// (proto_ctype 4 or 41; udp6_set_csum(nocheck) leaves 0 over IPv6 too); ipvs_gre_encap (protocol
// 0x0800 or 0x86DD); __ip_vs_get_out_rt(_v6) in tunnel mode (the link MTU less the outer header and
// the type's; below 68 over IPv4 / 1280 over IPv6 nothing passes) and ensure_mtu_is_adequate by
// the client's family (fragmentation needed for IPv4, packet too big for IPv6).
//
// The dual-stack director of frames6.ts: eth0 toward the clients, eth1 198.18.1.1/24 and
// 2001:db8:1::1/64 toward the real servers 198.18.1.11 and 2001:db8:1::11.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatList, formatSave } from "../../src/cli/ipvsadm/format.js";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { serviceSnapshot, zeroStats } from "../../src/control/snapshot.js";
import { Dest, Fwd, TunType } from "../../src/core/dest.js";
import { IPVS_MESSAGES, TsvsError } from "../../src/core/errors.js";
import { DestPath } from "../../src/core/output.js";
import { Flow } from "../../src/core/packet/flow.js";
import { PARSE_OK, parseFrame } from "../../src/core/packet/parse.js";
import { TUN_F_REMCSUM, tun6 } from "../../src/core/xmit/tun.js";
import type { XmitEngine } from "../../src/core/xmit/types.js";
import { chooseDecap6 } from "../../src/realserver/checks6.js";
import {
  DECAP_BAD_INNER,
  DECAP_BAD_OUTER,
  DECAP_NOT_LOCAL,
  gre6InnerOffset,
  greInnerOffset,
  gue6InnerOffset,
  gueInnerOffset,
} from "../../src/realserver/decap.js";
import { Director6, L2_6_FROM_ROUTER, MAC6 } from "../support/frames6.js";
import {
  ACK,
  be16,
  be32,
  concat,
  ETH_P_IP,
  ethFrame,
  get16,
  inetChecksum,
  ip,
  ipv4Datagram,
  mac,
  PROTO_TCP,
  pseudoHeader,
  SYN,
  tcpFrame,
  tcpSegment,
} from "../support/packet-builder.js";
import { a6, ETH_P_IPV6, ipv6Packet, NH_TCP, pseudoHeader6, tcp6Segment, w6 } from "../support/packet6.js";

const VIP6 = "2001:db8::100";
const VIP4 = "198.18.0.100";
const CIP6 = "2001:db8:ff::10";
const CIP4 = "198.18.20.2";
const RIP4 = "198.18.1.11";
const RIP6 = "2001:db8:1::11";
const DIP4 = "198.18.1.1";
const DIP6 = "2001:db8:1::1";
const PROTO_IPV6 = 41;
const PROTO_UDP = 17;
const PROTO_GRE = 47;
const L2_V4_FROM_ROUTER = { dmac: mac(MAC6.dir0), smac: mac(MAC6.router) };

/** A dual-stack director with one service (VIP of `svcAf`) and one TUN real server of `dest`. */
function director(svcAf: 4 | 6, destAf: 4 | 6, opts = "", mtu1?: number): Director6 {
  const d = new Director6({ mtu1 });
  const n = d.engine.neigh;
  n.confirm(2, ip(RIP4), mac(MAC6.rs1), d.now);
  n.confirm(1, ip("198.18.0.254"), mac(MAC6.router), d.now);
  const svc = svcAf === 6 ? `[${VIP6}]:80` : `${VIP4}:80`;
  d.ipvsadm(`-A -t ${svc} -s rr`);
  d.ipvsadm(`-a -t ${svc} -r ${destAf === 6 ? `[${RIP6}]` : RIP4}:80 -i ${opts}`);
  return d;
}

/** The client's IPv6 TCP segment to the VIP as an IPv6 packet (hop limit hl, traffic class tc). */
function req6(hl: number, tc: number, size = 100, flags = SYN): Uint8Array {
  const seg = tcp6Segment(CIP6, VIP6, {
    sport: 42000,
    dport: 80,
    flags,
    seq: 7,
    payload: new Uint8Array(size - 60).fill(0x5a),
  });
  return ipv6Packet({ src: CIP6, dst: VIP6, hl, tc, flow: 0x12345 }, NH_TCP, seg);
}

/** The client's IPv4 TCP datagram to the VIP (TTL ttl, TOS tos, DF df). */
function req4(ttl: number, tos: number, size = 100, df = true, flags = SYN): Uint8Array {
  const seg = tcpSegment(ip(CIP4), ip(VIP4), {
    sport: 40000,
    dport: 80,
    flags,
    seq: 7,
    payload: new Uint8Array(size - 40).fill(0x5a),
  });
  return ipv4Datagram({
    src: ip(CIP4),
    dst: ip(VIP4),
    proto: PROTO_TCP,
    payload: seg,
    ttl,
    tos,
    df,
    id: 0x4242,
  });
}

function frame6(p: Uint8Array): Uint8Array {
  return ethFrame(L2_6_FROM_ROUTER.dmac, L2_6_FROM_ROUTER.smac, ETH_P_IPV6, p);
}
function frame4(p: Uint8Array): Uint8Array {
  return ethFrame(L2_V4_FROM_ROUTER.dmac, L2_V4_FROM_ROUTER.smac, ETH_P_IP, p);
}

/** INET_ECN_encapsulate(tos, tos): CE inside is ECT(0) outside. */
function outerTos(tos: number): number {
  return (tos & 3) === 3 ? (tos & 0xfc) | 2 : tos;
}

/** The GUE header: version 0, hlen 0, proto_ctype, flags 0. */
function gueHdr(proto: number): Uint8Array {
  return Uint8Array.of(0, proto, 0, 0);
}

/** UDP header + payload with the checksum over `ph` (a pseudo-header builder), or 0. */
function udp(sport: number, dport: number, payload: Uint8Array, ph: ((len: number) => Uint8Array) | null) {
  const u = concat(be16(sport), be16(dport), be16(8 + payload.length), be16(0), payload);
  if (ph !== null) {
    const c = inetChecksum(ph(u.length), u);
    u.set(be16(c === 0 ? 0xffff : c), 6);
  }
  return u;
}

/** GRE base header (C bit with csum), protocol, [checksum over GRE header and payload, reserved], inner. */
function gre(proto: number, inner: Uint8Array, csum: boolean): Uint8Array {
  if (!csum) return concat(be16(0), be16(proto), inner);
  const g = concat(be16(0x8000), be16(proto), be16(0), be16(0), inner);
  g.set(be16(inetChecksum(g)), 4);
  return g;
}

const ph4 = (len: number): Uint8Array => pseudoHeader(ip(DIP4), ip(RIP4), PROTO_UDP, len);
const ph6 = (len: number): Uint8Array => pseudoHeader6(a6(DIP6), a6(RIP6), PROTO_UDP, len);

interface Row {
  what: string;
  opts: string;
  /** The payload of the outer IP header, given the inner datagram as forwarded and the GUE sport seen. */
  payload: (inner: Uint8Array, sport: number) => Uint8Array;
  /** The outer protocol / next header. */
  proto: (innerProto: number) => number;
}

/** The same five encapsulations, by the outer family's pseudo-header (GUE's UDP checksum). */
function rows(innerProto: number, ph: (len: number) => Uint8Array): Row[] {
  const gp = innerProto === PROTO_IPV6 ? 0x86dd : 0x0800;
  return [
    { what: "ipip", opts: "", payload: (i) => i, proto: (p) => p },
    {
      what: "gue, no checksum (the default: 0, over IPv6 too)",
      opts: "--tun-type gue --tun-port 6080",
      payload: (i, s) => udp(s, 6080, concat(gueHdr(innerProto), i), null),
      proto: () => PROTO_UDP,
    },
    {
      what: "gue --tun-csum",
      opts: "--tun-type gue --tun-port 6081 --tun-csum",
      payload: (i, s) => udp(s, 6081, concat(gueHdr(innerProto), i), ph),
      proto: () => PROTO_UDP,
    },
    {
      what: "gre",
      opts: "--tun-type gre",
      payload: (i) => gre(gp, i, false),
      proto: () => PROTO_GRE,
    },
    {
      what: "gre --tun-csum",
      opts: "--tun-type gre --tun-csum",
      payload: (i) => gre(gp, i, true),
      proto: () => PROTO_GRE,
    },
  ];
}

describe("IPv6 service → IPv4 real server: the IPv6 datagram inside IPv4 (ip_vs_tunnel_xmit)", () => {
  for (const r of rows(PROTO_IPV6, ph4)) {
    for (const tc of [0x88, 0x2b]) {
      it(`${r.what}, traffic class ${tc.toString(16)}: outer IPv4 proto ${r.proto(PROTO_IPV6)}, DF clear, ID counted, TTL the hop limit, TOS with ECN encapsulated`, () => {
        const d = director(6, 4, r.opts);
        const o = d.input(1, frame6(req6(30, tc)));
        assert.equal(o.out.length, 1, `one frame (verdict ${o.verdict})`);
        assert.equal(o.out[0].ifindex, 2);
        const got = o.out[0].frame;
        const inner = req6(29, tc);
        const outer = ipv4Datagram({
          src: ip(DIP4),
          dst: ip(RIP4),
          proto: r.proto(PROTO_IPV6),
          payload: r.payload(inner, get16(got, 14 + 20)),
          ttl: 29,
          tos: outerTos(tc),
          df: false,
          id: 1,
        });
        assert.deepEqual(
          Buffer.from(got),
          Buffer.from(ethFrame(mac(MAC6.rs1), mac(MAC6.dir1), ETH_P_IP, outer)),
        );
        // The next datagram of the connection: the next ID (ip_select_ident counts; DF is clear).
        const next = d.input(1, frame6(req6(30, tc, 100, ACK))).out[0].frame;
        assert.equal(get16(next, 14 + 4), 2);
        assert.deepEqual(d.engine.counters.dropTable(), {});
      });
    }
  }
});

describe("an ICMPv6 error from the client's side about an IPv6 client's connection to an IPv4 real server", () => {
  it("is relayed through the same tunnel (ip_vs_in_icmp_v6 → cp->packet_xmit): inside IPv4, protocol 41", () => {
    const d = director(6, 4);
    d.input(1, frame6(req6(30, 0)));
    const reply = ipv6Packet(
      { src: VIP6, dst: CIP6, hl: 64 },
      NH_TCP,
      tcp6Segment(VIP6, CIP6, { sport: 80, dport: 42000, flags: SYN | ACK, seq: 1, ack: 8 }),
    );
    const router = "2001:db8::fe";
    const err = ipv6Packet(
      { src: router, dst: VIP6, hl: 40 },
      58,
      checksummedIcmp6(router, VIP6, concat(Uint8Array.of(1, 3, 0, 0, 0, 0, 0, 0), reply)),
    );
    const o = d.input(1, frame6(err));
    assert.equal(o.out.length, 1, `one frame (verdict ${o.verdict})`);
    const relayed = err.slice();
    relayed[7] = 39;
    const outer = ipv4Datagram({
      src: ip(DIP4),
      dst: ip(RIP4),
      proto: PROTO_IPV6,
      payload: relayed,
      ttl: 39,
      tos: 0,
      df: false,
      id: 2,
    });
    assert.deepEqual(
      Buffer.from(o.out[0].frame),
      Buffer.from(ethFrame(mac(MAC6.rs1), mac(MAC6.dir1), ETH_P_IP, outer)),
    );
  });
});

/** An ICMPv6 message with its checksum over the pseudo-header. */
function checksummedIcmp6(src: string, dst: string, m: Uint8Array): Uint8Array {
  const b = m.slice();
  b.set(be16(inetChecksum(pseudoHeader6(a6(src), a6(dst), 58, b.length), b)), 2);
  return b;
}

describe("IPv4 service → IPv6 real server: the IPv4 datagram inside IPv6 (ip_vs_tunnel_xmit_v6)", () => {
  for (const r of rows(4, ph6)) {
    for (const tos of [0x10, 0x03]) {
      it(`${r.what}, TOS ${tos.toString(16)}: outer IPv6 next header ${r.proto(4)}, hop limit the TTL, flow label 0`, () => {
        const d = director(4, 6, r.opts);
        const o = d.input(1, frame4(req4(30, tos)));
        assert.equal(o.out.length, 1, `one frame (verdict ${o.verdict})`);
        assert.equal(o.out[0].ifindex, 2);
        const got = o.out[0].frame;
        const inner = req4(29, tos);
        const outer = ipv6Packet(
          { src: DIP6, dst: RIP6, hl: 29, tc: outerTos(tos), flow: 0 },
          r.proto(4),
          r.payload(inner, get16(got, 14 + 40)),
        );
        assert.deepEqual(
          Buffer.from(got),
          Buffer.from(ethFrame(mac(MAC6.rs1), mac(MAC6.dir1), ETH_P_IPV6, outer)),
        );
        assert.deepEqual(d.engine.counters.dropTable(), {});
      });
    }
  }

  it("the entry keeps the IPv4 client and the IPv6 real server: -Lnc lists [RIP6]", () => {
    const d = director(4, 6);
    d.input(1, frame4(req4(30, 0)));
    const c = d.engine.connections(d.now);
    assert.equal(c.length, 1);
    assert.equal(c[0].daddr6, RIP6);
    assert.equal(c[0].caddr6, undefined);
    // The next packet of the connection finds it (an IPv4 lookup, an IPv6 destination).
    const o = d.input(1, frame4(req4(30, 0, 100, true, ACK)));
    assert.equal(o.out.length, 1);
    assert.equal(d.engine.connCount(), 1);
  });
});

describe("IPv6 service → IPv6 real server over GUE and GRE (ip_vs_tunnel_xmit_v6)", () => {
  for (const r of rows(PROTO_IPV6, ph6).slice(1)) {
    it(`${r.what}: outer IPv6 next header ${r.proto(PROTO_IPV6)}`, () => {
      const d = director(6, 6, r.opts);
      const o = d.input(1, frame6(req6(30, 0x2b)));
      assert.equal(o.out.length, 1, `one frame (verdict ${o.verdict})`);
      const got = o.out[0].frame;
      const outer = ipv6Packet(
        { src: DIP6, dst: RIP6, hl: 29, tc: 0x2a, flow: 0 },
        r.proto(PROTO_IPV6),
        r.payload(req6(29, 0x2b), get16(got, 14 + 40)),
      );
      assert.deepEqual(
        Buffer.from(got),
        Buffer.from(ethFrame(mac(MAC6.rs1), mac(MAC6.dir1), ETH_P_IPV6, outer)),
      );
      if (r.proto(PROTO_IPV6) === PROTO_UDP) {
        const sport = get16(got, 14 + 40);
        assert.ok(sport >= 32768 && sport <= 60998, `GUE source port ${sport} in the local port range`);
      }
    });
  }
});

describe("the tunnel MTU per family pair and type, and the client's error by its own family", () => {
  // [service, real server, type, the largest inner datagram that passes on a 1500-byte link]
  const table: [4 | 6, 4 | 6, string, number][] = [
    [6, 4, "", 1480],
    [6, 4, "--tun-type gue --tun-port 6080", 1468],
    [6, 4, "--tun-type gre", 1476],
    [6, 4, "--tun-type gre --tun-csum", 1472],
    [4, 6, "", 1460],
    [4, 6, "--tun-type gue --tun-port 6080 --tun-csum", 1448],
    [4, 6, "--tun-type gre", 1456],
    [4, 6, "--tun-type gre --tun-csum", 1452],
    [6, 6, "--tun-type gue --tun-port 6080", 1448],
    [6, 6, "--tun-type gre --tun-csum", 1452],
  ];
  for (const [s, r, opts, mtu] of table) {
    it(`IPv${s} in IPv${r}, ${opts || "ipip"}: ${mtu} fits, ${mtu + 1} gets ${s === 6 ? "packet too big" : "fragmentation needed"} ${mtu}`, () => {
      const d = director(s, r, opts);
      const fits = d.input(1, s === 6 ? frame6(req6(64, 0, mtu)) : frame4(req4(64, 0, mtu)));
      assert.equal(fits.out.length, 1);
      assert.equal(fits.out[0].ifindex, 2);
      assert.equal(fits.out[0].frame.length, 14 + 1500, "the outer datagram fills the link");
      const big = d.input(
        1,
        s === 6 ? frame6(req6(64, 0, mtu + 1, ACK)) : frame4(req4(64, 0, mtu + 1, true, ACK)),
      );
      assert.equal(big.out.length, 1);
      const e = big.out[0].frame;
      assert.equal(big.out[0].ifindex, 1, "the error goes back to the client");
      if (s === 6) {
        assert.equal(get16(e, 12), ETH_P_IPV6);
        assert.equal(e[14 + 40], 2, "ICMPv6 packet too big");
        assert.equal(get16(e, 14 + 40 + 6), mtu, "its MTU");
        assert.deepEqual([...e.subarray(14 + 8, 14 + 24)], [...a6(VIP6)], "from the VIP");
      } else {
        assert.equal(get16(e, 12), ETH_P_IP);
        assert.deepEqual([e[14 + 20], e[14 + 21]], [3, 4], "ICMP fragmentation needed");
        assert.equal(get16(e, 14 + 20 + 6), mtu, "next-hop MTU");
      }
      assert.deepEqual(d.engine.counters.dropTable(), { frag_needed: 1 });
    });
  }

  it("IPv4 without DF over the MTU: dropped and counted (tsvs fragments nothing)", () => {
    const d = director(4, 6);
    assert.equal(d.input(1, frame4(req4(64, 0, 1461, false))).out.length, 0);
    assert.deepEqual(d.engine.counters.dropTable(), { too_big: 1 });
  });

  it("over IPv4 the tunnel may leave less than 1280 for IPv6: packet too big with it (a 1200-byte link: 1180)", () => {
    const d = director(6, 4, "", 1200);
    assert.equal(d.input(1, frame6(req6(64, 0, 1180))).out[0].frame.length, 14 + 1200);
    const big = d.input(1, frame6(req6(64, 0, 1181, ACK))).out[0].frame;
    assert.equal(big[14 + 40], 2);
    assert.equal(get16(big, 14 + 40 + 6), 1180);
  });

  it("over IPv6 a tunnel below 1280 carries nothing, without an error (a 1300-byte link, IPv4 inside)", () => {
    const d = director(4, 6, "", 1300);
    assert.equal(d.input(1, frame4(req4(64, 0, 60))).out.length, 0);
    assert.deepEqual(d.engine.counters.dropTable(), { too_big: 1 });
  });
});

describe("ipvsadm: a tunnel destination of the other family, as the kernel takes it", () => {
  function ctlOf(lines: string[]): Director6 {
    const d = new Director6();
    for (const l of lines) d.ipvsadm(l);
    return d;
  }
  const refused: [string, string][] = [
    [`-a -t ${VIP4}:80 -r [${RIP6}]:80 -g`, "DR"],
    [`-a -t ${VIP4}:80 -r [${RIP6}]:80 -m`, "NAT"],
    [`-a -t ${VIP4}:80 -r [${RIP6}]:80 --fullnat`, "FULLNAT from IPv4 to IPv6"],
    [`-a -t [${VIP6}]:80 -r ${RIP4}:80 -g`, "DR from IPv6 to IPv4"],
  ];
  for (const [line, what] of refused) {
    it(`refuses ${what} across families with ipvsadm's message`, () => {
      const d = ctlOf([`-A -t ${VIP4}:80`, `-A -t [${VIP6}]:80`]);
      assert.throws(
        () => d.ipvsadm(line),
        (e: unknown) => e instanceof TsvsError && e.message === IPVS_MESSAGES.invalid,
      );
    });
  }

  it("takes TUN both ways; refuses it while a sync daemon runs (sync_state); counts mixed destinations", () => {
    const d = ctlOf([`-A -t ${VIP4}:80`, `-A -t [${VIP6}]:80`]);
    const ctl = d.engine.ctl;
    d.ipvsadm(`-a -t ${VIP4}:80 -r [${RIP6}]:80 -i`);
    d.ipvsadm(`-a -t [${VIP6}]:80 -r ${RIP4}:80 -i --tun-type gre`);
    assert.equal(ctl.mixedFamilyDests(), 2);
    ctl.syncRunning = true;
    assert.throws(() => d.ipvsadm(`-a -t ${VIP4}:80 -r [2001:db8:1::12]:80 -i`), /Invalid operation/);
    // An edit that would turn one into DR is refused as an add would be.
    ctl.syncRunning = false;
    assert.throws(() => d.ipvsadm(`-e -t ${VIP4}:80 -r [${RIP6}]:80 -g`), /Invalid operation/);
  });

  it("-Ln --tun-info and -S print them as ipvsadm 1.31 does (addrport_to_anyname with the entry's own af)", () => {
    const d = ctlOf([
      `-A -t ${VIP4}:80 -s rr`,
      `-a -t ${VIP4}:80 -r [${RIP6}]:80 -i --tun-type gue --tun-port 6080 --tun-csum`,
      `-A -t [${VIP6}]:80 -s rr`,
      `-a -t [${VIP6}]:80 -r ${RIP4}:80 -i -w 2`,
    ]);
    const snap = {
      services: d.engine.ctl.services().map(serviceSnapshot),
      connTabSize: 4096,
      total: zeroStats(),
      timeouts: { tcp: 900, tcpFin: 120, udp: 300 },
    };
    const req = parseIpvsadm(["-L", "-n", "--tun-info"]);
    assert.ok(req.kind === "list");
    assert.equal(
      formatList(snap, req.key, req.opts),
      [
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn",
        "TCP  198.18.0.100:80 rr",
        "  -> [2001:db8:1::11]:80          Tunnel  gue:6080:+c   1      0          0         ",
        "TCP  [2001:db8::100]:80 rr",
        "  -> 198.18.1.11:80               Tunnel  ipip          2      0          0         ",
        "",
      ].join("\n"),
    );
    assert.equal(
      formatSave(snap, true),
      [
        "-A -t 198.18.0.100:80 -s rr",
        "-a -t 198.18.0.100:80 -r [2001:db8:1::11]:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
        "-A -t [2001:db8::100]:80 -s rr",
        "-a -t [2001:db8::100]:80 -r 198.18.1.11:80 -i -w 2 --tun-type ipip",
        "",
      ].join("\n"),
    );
  });
});

describe("the real server's decapsulator: GUE and GRE over IPv6, either family inside", () => {
  const inner6 = req6(29, 0);
  const inner4 = req4(29, 0);
  const dst = a6(RIP6);
  const host6 = concat(a6("::1"), dst);
  const host4 = Uint32Array.from([ip(RIP4)]);
  const g6 = (b: Uint8Array): number => gre6InnerOffset(b, b.length, dst, 0, host6);
  const cases: [string, () => number, number][] = [
    ["GRE over IPv6, IPv6 inside (0x86DD), with checksum", () => g6(gre(0x86dd, inner6, true)), 8],
    [
      "GRE over IPv6, IPv4 inside (0x0800)",
      () => gre6InnerOffset(gre(0x0800, inner4, false), 4 + inner4.length, dst, 0, host6),
      4,
    ],
    [
      "GRE over IPv6 to an address not local",
      () => gre6InnerOffset(gre(0x86dd, inner6, false), 4 + inner6.length, a6("2001:db8:1::99"), 0, host6),
      DECAP_NOT_LOCAL,
    ],
    [
      "GRE over IPv6: 0x86DD with an IPv4 datagram inside",
      () => gre6InnerOffset(gre(0x86dd, inner4, false), 4 + inner4.length, dst, 0, host6),
      DECAP_BAD_INNER,
    ],
    [
      "GRE over IPv6: a checksum that does not verify",
      () => {
        const g = gre(0x86dd, inner6, true);
        g[g.length - 1] ^= 1;
        return gre6InnerOffset(g, g.length, dst, 0, host6);
      },
      DECAP_BAD_OUTER,
    ],
    [
      "GUE over IPv6, proto_ctype 41",
      () => gue6InnerOffset(concat(gueHdr(41), inner6), 4 + inner6.length, dst, 0, host6),
      4,
    ],
    [
      "GUE over IPv6, proto_ctype 4",
      () => gue6InnerOffset(concat(gueHdr(4), inner4), 4 + inner4.length, dst, 0, host6),
      4,
    ],
    [
      "GUE over IPv6, proto_ctype 41 with an IPv4 datagram",
      () => gue6InnerOffset(concat(gueHdr(41), inner4), 4 + inner4.length, dst, 0, host6),
      DECAP_BAD_INNER,
    ],
    [
      "GUE over IPv6, proto_ctype 47",
      () => gue6InnerOffset(concat(gueHdr(47), inner6), 4 + inner6.length, dst, 0, host6),
      DECAP_BAD_INNER,
    ],
    [
      "GUE over IPv4, proto_ctype 41 (IPv6 service, IPv4 real server)",
      () => gueInnerOffset(concat(gueHdr(41), inner6), 4 + inner6.length, ip(RIP4), host4),
      4,
    ],
    [
      "GRE over IPv4, 0x86DD",
      () => {
        const b = ipv4Datagram({
          src: ip(DIP4),
          dst: ip(RIP4),
          proto: PROTO_GRE,
          payload: gre(0x86dd, inner6, false),
        });
        return greInnerOffset(b, b.length, host4);
      },
      24,
    ],
  ];
  for (const [what, run, want] of cases) it(what, () => assert.equal(run(), want));

  it("kernel or user space for an IPv6 VIP, per type: every module the type needs over both families", () => {
    const all = { ip6tnl: true, sit: true, fou: true, gre: true, ip6gre: true };
    assert.equal(chooseDecap6("auto", all, "gue").how, "kernel");
    assert.equal(chooseDecap6("auto", { ...all, fou: false }, "gue").how, "user");
    assert.equal(chooseDecap6("auto", all, "gre").how, "kernel");
    assert.equal(chooseDecap6("auto", { ...all, ip6gre: false }, "gre").how, "user");
    assert.equal(
      chooseDecap6("auto", { ip6tnl: false, sit: false, gre: true, ip6gre: true }, "gre").how,
      "kernel",
    );
    assert.throws(() => chooseDecap6("kernel", { ...all, sit: false }, "gue"), /fou, ip6_tunnel and sit/);
  });
});

// The real server's side of a request: what the decapsulator hands the stack is the client's
// datagram as the director forwarded it (its transport checksum intact).
describe("round trip: the director's frame, decapsulated, is the client's datagram", () => {
  it("IPv6 in GUE over IPv6 with --tun-csum: UDP checksum verifies, the inner TCP checksum too", () => {
    const d = director(6, 6, "--tun-type gue --tun-port 6080 --tun-csum");
    const f = d.input(1, frame6(req6(30, 0))).out[0].frame;
    const u = f.subarray(14 + 40);
    assert.equal(inetChecksum(pseudoHeader6(a6(DIP6), a6(RIP6), PROTO_UDP, u.length), u), 0);
    const payload = u.slice(8);
    const off = gue6InnerOffset(payload, payload.length, a6(RIP6), 0, a6(RIP6));
    const inner = payload.subarray(off);
    assert.deepEqual(Buffer.from(inner), Buffer.from(req6(29, 0)));
    assert.equal(
      inetChecksum(pseudoHeader6(a6(CIP6), a6(VIP6), NH_TCP, inner.length - 40), inner.subarray(40)),
      0,
    );
  });

  it("IPv4 client frames of another form (tcpFrame) reach an IPv6 real server the same way", () => {
    const d = director(4, 6, "--tun-type gre --tun-csum");
    const fr = tcpFrame(
      L2_V4_FROM_ROUTER,
      { src: ip(CIP4), dst: ip(VIP4), ttl: 9 },
      { sport: 1, dport: 80, flags: SYN },
    );
    const f = d.input(1, fr).out[0].frame;
    const g = f.subarray(14 + 40);
    assert.equal(inetChecksum(g), 0, "GRE checksum over header and payload");
    assert.equal(f[14 + 7], 8, "hop limit: the TTL less one");
  });
});

describe("GUE remote checksum offload over IPv6, an IPv6 datagram inside (CHECKSUM_PARTIAL)", () => {
  // The method itself, fed a flow whose TCP checksum is still partial, through a minimal engine (as
  // tunnels.test.ts does for IPv4: the engine finishes partial checksums of the frames it receives).
  it("02 29 00 01 | 80 00 00 00 | 00 28 00 38: csum_start after the 40-byte header, the UDP checksum over IPv6", () => {
    const frame = frame6(req6(30, 0));
    const buf = new Uint8Array(frame.length + 64);
    buf.set(frame);
    const l4 = 14 + 40;
    const tcpLen = frame.length - l4;
    // What a sender with checksum offload leaves in the field: the pseudo-header sum.
    const partial = ~inetChecksum(pseudoHeader6(a6(CIP6), a6(VIP6), NH_TCP, tcpLen)) & 0xffff;
    buf.set(be16(partial), l4 + 16);
    const f = new Flow();
    f.acceptIpv6 = true;
    assert.equal(parseFrame(buf, frame.length, f, 1), PARSE_OK);
    f.csumPartial = true;
    const d = new Dest(0, 80);
    d.af = 6;
    d.addr6 = w6(RIP6);
    d.fwd = Fwd.Tunnel;
    d.tunType = TunType.Gue;
    d.tunPort = 6080;
    d.tunFlags = TUN_F_REMCSUM;
    const path = new DestPath({ mtu: 1500 } as unknown as DestPath["iface"], 0, 0, d);
    path.src6 = w6(DIP6);
    path.nexthop6 = w6(RIP6);
    const words = new Int32Array(16);
    words.set(w6(RIP6), 8); // A6_DADDR of entry 0
    let sent: Uint8Array | null = null;
    let overhead = 0;
    const e = {
      conns: { destOf: () => 0, addr6Words: words },
      scratch: new Uint8Array(65536 + 256),
      destPath: () => path,
      fitsPath6: (_p: DestPath, _l: number, o: number) => {
        overhead = o;
        return true;
      },
      emitToDest6: (b: Uint8Array, l3Off: number, l3Len: number): number => {
        sent = b.slice(l3Off, l3Off + l3Len);
        return 1;
      },
      drop: () => 2,
    } as unknown as XmitEngine;
    tun6.inbound(e, 0, f, 0);
    assert.equal(overhead, 40 + 8 + 4 + 8, "the option's 8 bytes count in the MTU");
    assert.ok(sent !== null);
    const got: Uint8Array = sent;
    const inner = req6(30, 0);
    inner.set(be16(partial), 40 + 16);
    const gue = concat(Uint8Array.of(0x02, 41, 0x00, 0x01), be32(0x80000000), be16(40), be16(40 + 16), inner);
    const want = ipv6Packet(
      { src: DIP6, dst: RIP6, hl: 30, tc: 0, flow: 0 },
      PROTO_UDP,
      udp(get16(got, 40), 6080, gue, ph6),
    );
    assert.deepEqual(Buffer.from(got), Buffer.from(want));
    // The real server's decapsulator finishes the inner checksum: the client's packet, whole.
    const payload = got.slice(40 + 8);
    const off = gue6InnerOffset(payload, payload.length, a6(RIP6), 0, a6(RIP6));
    assert.deepEqual(Buffer.from(payload.subarray(off)), Buffer.from(req6(30, 0)));
  });
});
