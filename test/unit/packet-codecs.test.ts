// Packet codecs: fixtures built by test/support/packet-builder (independent of the codecs), parse
// fields, and every rewrite checked against a full checksum recomputation.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ARP_LEN, ARP_REPLY, ARP_REQUEST, writeArp } from "../../src/core/packet/arp.js";
import {
  csumAdd,
  csumAdd16,
  csumAdd32,
  csumFinish,
  csumFold,
  csumReplace16,
  csumReplace32,
  ipv4HeaderChecksum,
  l4ChecksumV4,
  verifyIpv4Header,
  verifyL4V4,
} from "../../src/core/packet/csum.js";
import {
  BROADCAST_MAC,
  copyMac,
  ETH_HLEN,
  formatMac,
  macEquals,
  parseMac,
  writeEthHeader,
} from "../../src/core/packet/eth.js";
import { Flow } from "../../src/core/packet/flow.js";
import {
  buildIcmpError,
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  ICMP_PORT_UNREACH,
  icmpEchoReplyInPlace,
  icmpInnerSetDaddr,
  icmpInnerSetDport,
  icmpInnerSetSaddr,
  icmpInnerSetSport,
  icmpIsError,
  icmpRecomputeChecksum,
} from "../../src/core/packet/icmp.js";
import { ipipEncap } from "../../src/core/packet/ipip.js";
import {
  ipv4DecTtl,
  ipv4SetDaddr,
  ipv4SetDaddrDport,
  ipv4SetSaddr,
  ipv4SetSaddrSport,
  writeIpv4Header,
} from "../../src/core/packet/ipv4.js";
import { l4SetDport, l4SetSport } from "../../src/core/packet/l4.js";
import {
  PARSE_ARP,
  PARSE_ERR_ARP_TRUNC,
  PARSE_ERR_ETH_TRUNC,
  PARSE_ERR_ICMP_TRUNC,
  PARSE_ERR_IP_CSUM,
  PARSE_ERR_IP_IHL,
  PARSE_ERR_IP_TOTLEN,
  PARSE_ERR_IP_TRUNC,
  PARSE_ERR_IP_VERSION,
  PARSE_ERR_TCP_DOFF,
  PARSE_ERR_TCP_TRUNC,
  PARSE_ERR_UDP_LEN,
  PARSE_ERR_UDP_TRUNC,
  PARSE_ERR_VLAN_TRUNC,
  PARSE_OK,
  PARSE_OTHER,
  PARSE_RESULT_NAMES,
  parseFrame,
} from "../../src/core/packet/parse.js";
import {
  TCPOLEN_TOA,
  TCPOPT_EOL,
  TCPOPT_MSS,
  TCPOPT_NOP,
  TCPOPT_TOA,
  tcpFindOption,
  tcpGetMss,
  tcpInsertOption,
  tcpSetMss,
  writeToaOption,
} from "../../src/core/packet/tcp.js";

import {
  be16,
  be32,
  ETH_P_ARP,
  ETH_P_IP,
  ethTaggedFrame,
  get16,
  get32,
  type Ipv4Overrides,
  type Ipv4Spec,
  icmpMessage,
  inetChecksum,
  ip,
  ipv4HeaderOk,
  ipv4WithOverrides,
  l4ChecksumOk,
  mac,
  onesSum,
  PROTO_TCP,
  PROTO_UDP,
  pseudoHeader,
  type TcpSpec,
  tcpSegment,
  tcpSegmentWithDoff,
  type UdpSpec,
  udpDatagram,
  udpDatagramWithLength,
} from "../support/packet-builder.js";

const CIP = ip("192.0.2.10");
const VIP = ip("10.0.0.100");
const RIP = ip("10.0.1.11");
const LIP = ip("10.0.1.250");

function parsed(frame: Uint8Array, len = frame.length): { f: Flow; r: number } {
  const f = new Flow();
  const r = parseFrame(frame, len, f, 3);
  return { f, r };
}
const MAC_A = mac("02:00:00:00:00:0a");
const MAC_B = mac("02:00:00:00:00:0b");

/** Ethernet MAC_B → MAC_A around `payload`, with VLAN tags (outermost first) and padding. */
function eth(
  type: number,
  payload: ArrayLike<number>,
  tags: ReadonlyArray<readonly [number, number]> = [],
  pad = 0,
): Uint8Array {
  return ethTaggedFrame(MAC_A, MAC_B, tags, type, Uint8Array.from(payload), pad);
}

interface IpOpts extends Partial<Omit<Ipv4Spec, "payload" | "options">>, Ipv4Overrides {
  options?: ArrayLike<number>;
}

/** An IPv4 datagram, DF set unless `o` says otherwise (as most senders do). */
function dgram(
  o: IpOpts & { proto: number; src: number; dst: number },
  payload: ArrayLike<number> = [],
): Uint8Array {
  const options = Uint8Array.from(o.options ?? []);
  return ipv4WithOverrides({ df: true, ...o, options, payload: Uint8Array.from(payload) }, o);
}

function icmp(type: number, code: number, rest: number, data: ArrayLike<number> = []): Uint8Array {
  return icmpMessage({ type, code, rest, data: Uint8Array.from(data) });
}

interface TcpOpts extends Partial<Omit<TcpSpec, "options" | "payload">> {
  options?: ArrayLike<number>;
  payload?: ArrayLike<number>;
  /** Data offset field (words) written over the true one. */
  doff?: number;
}

function tcpFrame(t: TcpOpts = {}, o: IpOpts = {}, pad = 0): Uint8Array {
  const src = o.src ?? CIP;
  const dst = o.dst ?? VIP;
  const spec: TcpSpec = {
    sport: 40000,
    dport: 80,
    seq: 0,
    flags: 0,
    ...t,
    options: Uint8Array.from(t.options ?? []),
    payload: Uint8Array.from(t.payload ?? []),
  };
  const seg = t.doff === undefined ? tcpSegment(src, dst, spec) : tcpSegmentWithDoff(src, dst, spec, t.doff);
  return eth(ETH_P_IP, dgram({ ...o, proto: PROTO_TCP, src, dst }, seg), [], pad);
}

interface UdpOpts extends Partial<Omit<UdpSpec, "payload">> {
  payload?: ArrayLike<number>;
  /** UDP length field written over the true one. */
  len?: number;
}

function udpFrame(u: UdpOpts = {}, o: IpOpts = {}): Uint8Array {
  const src = o.src ?? CIP;
  const dst = o.dst ?? VIP;
  const spec: UdpSpec = { sport: 5353, dport: 53, ...u, payload: Uint8Array.from(u.payload ?? []) };
  const seg =
    u.len === undefined ? udpDatagram(src, dst, spec) : udpDatagramWithLength(src, dst, spec, u.len);
  return eth(ETH_P_IP, dgram({ ...o, proto: PROTO_UDP, src, dst }, seg));
}

describe("csum", () => {
  it("sums the RFC 1071 example words", () => {
    const b = Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
    assert.equal(csumAdd(b, 0, 8), 0x2ddf0);
    assert.equal(csumFold(csumAdd(b, 0, 8)), 0xddf2);
    assert.equal(csumFinish(csumAdd(b, 0, 8)), 0x220d);
  });

  it("pads an odd tail byte with zero and reads nothing past the buffer", () => {
    const b = Uint8Array.from([0x12, 0x34, 0x56]);
    assert.equal(csumAdd(b, 0, 3), 0x1234 + 0x5600);
    assert.equal(csumAdd(b, 1, 2), 0x3456);
    assert.equal(csumAdd(b, 0, 100), 0x1234 + 0x5600);
  });

  it("folds sums beyond 32 bits", () => {
    const big = 0xffff * 100000 + 0x1234;
    const want = (() => {
      let s = big;
      while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
      return s;
    })();
    assert.equal(csumFold(big), want);
    assert.equal(csumFinish(big), 0xffff - want);
    assert.equal(csumAdd32(csumAdd16(0, 0x1_0001), 0xdeadbeef), 0x0001 + 0xdead + 0xbeef);
  });

  it("computes the classic IPv4 header example checksum (0xb861)", () => {
    const h = Uint8Array.from([
      0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0,
      0xa8, 0x00, 0xc7,
    ]);
    assert.equal(ipv4HeaderChecksum(h, 0), 0xb861);
    h[10] = 0xb8;
    h[11] = 0x61;
    assert.equal(ipv4HeaderChecksum(h, 0), 0xb861, "the checksum field is taken as 0");
    assert.ok(verifyIpv4Header(h, 0));
    h[8] = 0x3f;
    assert.ok(!verifyIpv4Header(h, 0));
  });

  it("replaces 16/32-bit words like a full recomputation (RFC 1624 eqn. 3), corner values included", () => {
    const words = [0x0000, 0xffff, 0x0001, 0xfffe, 0x8000, 0x1234, 0xedcb];
    for (const a of words)
      for (const b of words)
        for (const other of [0x0000, 0xffff, 0x5555, 0x0001]) {
          const before = Uint8Array.from([...be16(a), ...be16(other)]);
          const after = Uint8Array.from([...be16(b), ...be16(other)]);
          // All-zero data is the one case where eqn. 3 yields +0 for a -0 sum; no IPv4/L4 header
          // (version byte, pseudo-header protocol) can be all zeros.
          if (b === 0 && other === 0) continue;
          const c0 = inetChecksum(before);
          const c1 = csumReplace16(c0, a, b);
          // One's complement: 0x0000 and 0xffff are the same value; both must verify.
          assert.equal(onesSum(after, be16(c1)), 0xffff, `16 ${a} -> ${b} (${other})`);
        }
    const addrs = [0, 0xffffffff, 0x0a000064, 0xc000020a, 0x0000ffff, 0xffff0000];
    for (const a of addrs)
      for (const b of addrs) {
        const c0 = inetChecksum(be32(a), Uint8Array.of(0x12, 0x34));
        const c1 = csumReplace32(c0, a, b);
        assert.equal(onesSum(be32(b), Uint8Array.of(0x12, 0x34), be16(c1)), 0xffff, `32 ${a} -> ${b}`);
      }
  });

  it("computes L4 checksums with the pseudo-header (and none for ICMP)", () => {
    const fr = tcpFrame({ payload: [1, 2, 3] });
    assert.equal(l4ChecksumV4(fr, 14, 34, fr.length - 34, 6), get16(fr, 34 + 16));
    assert.ok(verifyL4V4(fr, 14, 34, fr.length - 34, 6));
    fr[fr.length - 1] ^= 1;
    assert.ok(!verifyL4V4(fr, 14, 34, fr.length - 34, 6));
    const ic = eth(ETH_P_IP, dgram({ proto: 1, src: CIP, dst: VIP }, icmp(8, 0, 0x00070001, [9, 9])));
    assert.equal(l4ChecksumV4(ic, 14, 34, ic.length - 34, 1), get16(ic, 36));
    assert.ok(verifyL4V4(ic, 14, 34, ic.length - 34, 1));
    assert.ok(!verifyL4V4(ic, 14, 34, ic.length - 33, 1), "segment beyond the buffer");
  });

  it("returns 0xffff for a UDP checksum that computes to 0, and accepts UDP checksum 0 as none", () => {
    // Choose the last payload word so that the sum of everything but the checksum is 0xffff.
    const base = udpFrame({ payload: [0, 0] });
    const ph = pseudoHeader(CIP, VIP, PROTO_UDP, base.length - 34);
    const seg = base.slice(34);
    seg[6] = 0;
    seg[7] = 0;
    const s = onesSum(ph, seg);
    const w = 0xffff - s;
    base[base.length - 2] = w >>> 8;
    base[base.length - 1] = w & 255;
    assert.equal(l4ChecksumV4(base, 14, 34, base.length - 34, 17), 0xffff);
    const nocs = udpFrame({ noChecksum: true, payload: [1, 2, 3] });
    assert.equal(get16(nocs, 40), 0);
    assert.ok(verifyL4V4(nocs, 14, 34, nocs.length - 34, 17));
  });
});

describe("ipv4SetSaddrSport / ipv4SetDaddrDport", () => {
  const frames: Array<[string, () => Uint8Array]> = [
    ["TCP", () => tcpFrame({ payload: [1, 2, 3] })],
    ["UDP", () => udpFrame({ payload: [1, 2, 3, 4] })],
    ["UDP without checksum", () => udpFrame({ noChecksum: true, payload: [1, 2] })],
  ];
  for (const [name, make] of frames) {
    it(`gives the bytes and flow of the two separate rewrites (${name})`, () => {
      // Addresses above and below 2^31, passed as u32 and as int32 bits.
      for (const [addr, port] of [
        [RIP, 8080],
        [ip("203.0.113.7"), 1],
        [CIP | 0, 65535],
      ]) {
        const a = parsed(make());
        const b = parsed(make());
        ipv4SetDaddr(a.f.buf, a.f, addr);
        l4SetDport(a.f.buf, a.f, port);
        ipv4SetDaddrDport(b.f.buf, b.f, addr, port);
        assert.deepEqual(b.f.buf, a.f.buf, `${name} dst ${addr}:${port}`);
        assert.deepEqual([b.f.daddr, b.f.dport], [a.f.daddr, a.f.dport]);
        ipv4SetSaddr(a.f.buf, a.f, addr);
        l4SetSport(a.f.buf, a.f, port);
        ipv4SetSaddrSport(b.f.buf, b.f, addr, port);
        assert.deepEqual(b.f.buf, a.f.buf, `${name} src ${addr}:${port}`);
        assert.deepEqual([b.f.saddr, b.f.sport], [a.f.saddr, a.f.sport]);
        const len = b.f.l3End - b.f.l4Off;
        assert.ok(verifyIpv4Header(b.f.buf, 14));
        assert.ok(verifyL4V4(b.f.buf, 14, b.f.l4Off, len, b.f.proto), `${name}: L4 checksum`);
      }
    });
  }
});

describe("eth", () => {
  it("parses and formats MAC addresses", () => {
    assert.deepEqual(parseMac("02:00:5e:10:0a:FF"), Uint8Array.from([2, 0, 0x5e, 0x10, 0x0a, 0xff]));
    assert.deepEqual(parseMac("2-0-5e-10-a-ff"), Uint8Array.from([2, 0, 0x5e, 0x10, 0x0a, 0xff]));
    for (const bad of [
      "",
      "02:00:5e:10:0a",
      "02:00:5e:10:0a:ff:01",
      "02:00:5e:10:0a:fg",
      "020:0:5e:10:0a:ff",
    ]) {
      assert.equal(parseMac(bad), null, bad);
    }
    assert.equal(formatMac(Uint8Array.from([0, 0, 2, 0, 0, 0x5e, 0x10, 0x0a, 0xff]), 3), "00:00:5e:10:0a:ff");
    assert.equal(formatMac(BROADCAST_MAC), "ff:ff:ff:ff:ff:ff");
  });

  it("writes the header and compares/copies MACs", () => {
    const b = new Uint8Array(20);
    writeEthHeader(b, 2, BROADCAST_MAC, MAC_A, 0x0806);
    assert.deepEqual(Array.from(b.subarray(2, 16)), [255, 255, 255, 255, 255, 255, ...MAC_A, 0x08, 0x06]);
    assert.ok(macEquals(b, 8, MAC_A, 0));
    assert.ok(!macEquals(b, 2, MAC_A, 0));
    assert.ok(!macEquals(b, 16, b, 2), "out of bounds is not equal");
    copyMac(b, 3, b, 8);
    assert.deepEqual(Array.from(b.subarray(3, 9)), [...MAC_A]);
  });
});

describe("parseFrame", () => {
  it("names every result code, errors with an err_ prefix", () => {
    assert.equal(PARSE_RESULT_NAMES[PARSE_OK], "ok");
    assert.equal(PARSE_RESULT_NAMES[PARSE_ARP], "arp");
    assert.equal(PARSE_RESULT_NAMES[PARSE_OTHER], "other");
    for (let i = 3; i < PARSE_RESULT_NAMES.length; i++) assert.match(PARSE_RESULT_NAMES[i], /^err_/);
    assert.equal(new Set(PARSE_RESULT_NAMES).size, PARSE_RESULT_NAMES.length);
  });

  it("parses a TCP SYN with options", () => {
    const fr = tcpFrame(
      {
        sport: 40000,
        dport: 80,
        seq: 0xfeedf00d,
        ack: 7,
        flags: 0x02,
        options: [2, 4, 0x05, 0xb4, 1, 1, 4, 2],
      },
      { tos: 0x10, id: 0xabcd, ttl: 63 },
    );
    const { f, r } = parsed(fr);
    assert.equal(r, PARSE_OK);
    assert.equal(f.buf, fr);
    assert.equal(f.len, fr.length);
    assert.equal(f.ifindex, 3);
    assert.equal(f.ethType, 0x0800);
    assert.equal(f.vlan, -1);
    assert.equal(f.l3Off, 14);
    assert.equal(f.l4Off, 34);
    assert.equal(f.payloadOff, 34 + 28);
    assert.equal(f.l3End, fr.length);
    assert.equal(f.proto, 6);
    assert.equal(f.saddr, CIP);
    assert.equal(f.daddr, VIP);
    assert.equal(f.ttl, 63);
    assert.equal(f.tos, 0x10);
    assert.equal(f.ipId, 0xabcd);
    assert.equal(f.df, true);
    assert.equal(f.fragment, false);
    assert.equal(f.firstFragment, false);
    assert.equal(f.sport, 40000);
    assert.equal(f.dport, 80);
    assert.equal(f.tcpSeq, 0xfeedf00d);
    assert.equal(f.tcpAck, 7);
    assert.equal(f.tcpFlags, 0x02);
    assert.equal(f.hasInner, false);
  });

  it("allows Ethernet padding after the datagram (l3End < len)", () => {
    const fr = tcpFrame({ flags: 0x10 }, {}, 6);
    assert.equal(fr.length, 60);
    const { f, r } = parsed(fr);
    assert.equal(r, PARSE_OK);
    assert.equal(f.l3End, 54);
    assert.equal(f.len, 60);
    assert.equal(f.payloadOff, 54);
  });

  it("skips 802.1Q and 802.1ad tags and keeps the outer TCI", () => {
    const seg = udpDatagram(CIP, VIP, { sport: 1, dport: 2, payload: Uint8Array.of(7) });
    const dg = dgram({ proto: 17, src: CIP, dst: VIP }, seg);
    const one = parsed(eth(ETH_P_IP, dg, [[0x8100, 0x2064]]));
    assert.equal(one.r, PARSE_OK);
    assert.equal(one.f.vlan, 0x2064);
    assert.equal(one.f.l3Off, 18);
    assert.equal(one.f.dport, 2);
    const two = parsed(
      eth(ETH_P_IP, dg, [
        [0x88a8, 0x0123],
        [0x8100, 0x0064],
      ]),
    );
    assert.equal(two.r, PARSE_OK);
    assert.equal(two.f.vlan, 0x0123);
    assert.equal(two.f.l3Off, 22);
    assert.equal(two.f.l4Off, 42);
    assert.equal(two.f.sport, 1);
  });

  it("parses IPv4 options (IHL 6) and finds the transport header after them", () => {
    const seg = udpDatagram(CIP, VIP, { sport: 9, dport: 10 });
    const fr = eth(ETH_P_IP, dgram({ proto: 17, src: CIP, dst: VIP, options: [1, 1, 1, 0] }, seg));
    const { f, r } = parsed(fr);
    assert.equal(r, PARSE_OK);
    assert.equal(f.l4Off, 14 + 24);
    assert.equal(f.payloadOff, 14 + 24 + 8);
    assert.equal(f.sport, 9);
  });

  it("recognises fragments: ports from the first one only", () => {
    const first = parsed(tcpFrame({ sport: 1111, dport: 80 }, { mf: true, df: false }));
    assert.equal(first.r, PARSE_OK);
    assert.equal(first.f.fragment, true);
    assert.equal(first.f.firstFragment, true);
    assert.equal(first.f.sport, 1111);
    assert.equal(first.f.df, false);
    // A non-first fragment's bytes are payload: even garbage where a header would be is fine.
    const later = eth(ETH_P_IP, dgram({ proto: 6, src: CIP, dst: VIP, fragOff: 185, df: false }, [1, 2, 3]));
    const l = parsed(later);
    assert.equal(l.r, PARSE_OK);
    assert.equal(l.f.fragment, true);
    assert.equal(l.f.firstFragment, false);
    assert.equal(l.f.sport, 0);
    assert.equal(l.f.dport, 0);
    assert.equal(l.f.l4Off, 34);
    assert.equal(l.f.payloadOff, 34);
    // A first UDP fragment's length covers the whole datagram.
    const ufrag = parsed(udpFrame({ len: 3000, payload: [1, 2, 3, 4] }, { mf: true, df: false }));
    assert.equal(ufrag.r, PARSE_OK);
    assert.equal(ufrag.f.dport, 53);
  });

  it("parses ARP (Ethernet/IPv4) and sets its fields", () => {
    const body = new Uint8Array(ARP_LEN);
    writeArp(body, 0, ARP_REQUEST, MAC_B, CIP, new Uint8Array(6), VIP);
    const { f, r } = parsed(eth(ETH_P_ARP, Array.from(body), [], 18));
    assert.equal(r, PARSE_ARP);
    assert.equal(f.arpOp, ARP_REQUEST);
    assert.equal(f.arpSpa, CIP);
    assert.equal(f.arpTpa, VIP);
    assert.equal(f.l3Off, 14);
    assert.deepEqual(Array.from(f.buf.subarray(f.l3Off + 8, f.l3Off + 14)), [...MAC_B]);
  });

  it("resets every field between frames", () => {
    const f = new Flow();
    parseFrame(tcpFrame({ sport: 1, dport: 2, flags: 0x12, seq: 5 }), 60, f, 1);
    f.fwmark = 99;
    const body = new Uint8Array(ARP_LEN);
    writeArp(body, 0, ARP_REPLY, MAC_B, CIP, MAC_A, VIP);
    const fr = eth(ETH_P_ARP, Array.from(body));
    assert.equal(parseFrame(fr, fr.length, f, 2), PARSE_ARP);
    const fresh = new Flow();
    parseFrame(fr, fr.length, fresh, 2);
    assert.deepEqual({ ...f }, { ...fresh });
  });

  it("parses ICMP echo ids and the header embedded in errors", () => {
    const echo = parsed(
      eth(ETH_P_IP, dgram({ proto: 1, src: CIP, dst: VIP }, icmp(8, 0, 0x04d20001, [1, 2]))),
    );
    assert.equal(echo.r, PARSE_OK);
    assert.equal(echo.f.icmpType, 8);
    assert.equal(echo.f.icmpId, 0x04d2);
    assert.equal(echo.f.hasInner, false);

    const orig = dgram({ proto: 17, src: VIP, dst: CIP }, udpDatagram(VIP, CIP, { sport: 53, dport: 5353 }));
    const err = eth(ETH_P_IP, dgram({ proto: 1, src: CIP, dst: VIP }, icmp(3, 3, 0, orig)));
    const e = parsed(err);
    assert.equal(e.r, PARSE_OK);
    assert.equal(e.f.icmpType, 3);
    assert.equal(e.f.icmpCode, 3);
    assert.equal(e.f.hasInner, true);
    assert.equal(e.f.innerL3Off, 42);
    assert.equal(e.f.innerL4Off, 62);
    assert.equal(e.f.innerProto, 17);
    assert.equal(e.f.innerSaddr, VIP);
    assert.equal(e.f.innerDaddr, CIP);
    assert.equal(e.f.innerHasPorts, true);
    assert.equal(e.f.innerSport, 53);
    assert.equal(e.f.innerDport, 5353);

    const short = eth(ETH_P_IP, dgram({ proto: 1, src: CIP, dst: VIP }, icmp(11, 0, 0, orig.slice(0, 24))));
    const s = parsed(short);
    assert.equal(s.r, PARSE_OK);
    assert.equal(s.f.hasInner, true);
    assert.equal(s.f.innerHasPorts, false, "only 4 bytes of L4 quoted");
    assert.equal(s.f.innerSport, 0);

    const junk = eth(ETH_P_IP, dgram({ proto: 1, src: CIP, dst: VIP }, icmp(3, 1, 0, [0x60, 1, 2, 3])));
    const j = parsed(junk);
    assert.equal(j.r, PARSE_OK);
    assert.equal(j.f.hasInner, false);
  });

  const fixtures: Array<{ name: string; frame: () => Uint8Array; len?: number; code: number }> = [
    { name: "frame shorter than Ethernet", frame: () => new Uint8Array(13), code: PARSE_ERR_ETH_TRUNC },
    { name: "empty frame", frame: () => new Uint8Array(0), code: PARSE_ERR_ETH_TRUNC },
    { name: "VLAN tag cut", frame: () => eth(0x8100, [0, 1]), code: PARSE_ERR_VLAN_TRUNC },
    { name: "IPv6 is other", frame: () => eth(0x86dd, new Array(40).fill(0x60)), code: PARSE_OTHER },
    {
      name: "802.3 length/LLC is other",
      frame: () => eth(0x0026, new Array(38).fill(0x42)),
      code: PARSE_OTHER,
    },
    { name: "LLDP is other", frame: () => eth(0x88cc, [2, 7]), code: PARSE_OTHER },
    { name: "IP header cut", frame: () => eth(ETH_P_IP, [0x45, 0, 0, 20]), code: PARSE_ERR_IP_TRUNC },
    {
      name: "IP version 6 in an IPv4 frame",
      frame: () => eth(ETH_P_IP, dgram({ version: 6, proto: 6, src: CIP, dst: VIP }, [])),
      code: PARSE_ERR_IP_VERSION,
    },
    {
      name: "IHL 4",
      frame: () => eth(ETH_P_IP, dgram({ ihl: 4, proto: 6, src: CIP, dst: VIP }, [0, 0, 0, 0])),
      code: PARSE_ERR_IP_IHL,
    },
    {
      name: "IHL beyond the frame",
      frame: () => eth(ETH_P_IP, dgram({ ihl: 15, proto: 6, src: CIP, dst: VIP }, [0, 0, 0, 0])),
      code: PARSE_ERR_IP_TRUNC,
    },
    {
      name: "bad header checksum",
      frame: () => tcpFrame({}, { badChecksum: true }),
      code: PARSE_ERR_IP_CSUM,
    },
    {
      name: "total length beyond the frame",
      frame: () => tcpFrame({}, { totLen: 41 }),
      code: PARSE_ERR_IP_TOTLEN,
    },
    {
      name: "total length below the header",
      frame: () => tcpFrame({}, { totLen: 19 }),
      code: PARSE_ERR_IP_TOTLEN,
    },
    {
      name: "frame length argument shorter than the datagram",
      frame: () => tcpFrame(),
      len: 53,
      code: PARSE_ERR_IP_TOTLEN,
    },
    {
      name: "TCP header cut by the total length",
      frame: () => tcpFrame({}, { totLen: 39 }),
      code: PARSE_ERR_TCP_TRUNC,
    },
    { name: "TCP data offset 4", frame: () => tcpFrame({ doff: 4 }), code: PARSE_ERR_TCP_DOFF },
    {
      name: "TCP data offset beyond the datagram",
      frame: () => tcpFrame({ doff: 6 }),
      code: PARSE_ERR_TCP_DOFF,
    },
    { name: "UDP header cut", frame: () => udpFrame({}, { totLen: 27 }), code: PARSE_ERR_UDP_TRUNC },
    { name: "UDP length 7", frame: () => udpFrame({ len: 7 }), code: PARSE_ERR_UDP_LEN },
    { name: "UDP length beyond the datagram", frame: () => udpFrame({ len: 9 }), code: PARSE_ERR_UDP_LEN },
    {
      name: "ICMP header cut",
      frame: () => eth(ETH_P_IP, dgram({ proto: 1, src: CIP, dst: VIP }, [8, 0, 0, 0, 0, 0, 0])),
      code: PARSE_ERR_ICMP_TRUNC,
    },
    {
      name: "ARP cut",
      frame: () => eth(ETH_P_ARP, [0, 1, 8, 0, 6, 4, 0, 1, 2]),
      code: PARSE_ERR_ARP_TRUNC,
    },
    { name: "ARP head cut", frame: () => eth(ETH_P_ARP, [0, 1, 8, 0]), code: PARSE_ERR_ARP_TRUNC },
    {
      name: "non-Ethernet ARP is other",
      frame: () => eth(ETH_P_ARP, [0, 6, 8, 0, 6, 4, 0, 1, ...new Array(20).fill(0)]),
      code: PARSE_OTHER,
    },
    {
      name: "other IP protocols parse without ports",
      frame: () => eth(ETH_P_IP, dgram({ proto: 47, src: CIP, dst: VIP }, [0, 0, 8, 0])),
      code: PARSE_OK,
    },
  ];
  for (const fx of fixtures) {
    it(`returns ${PARSE_RESULT_NAMES[fx.code]} for: ${fx.name}`, () => {
      const fr = fx.frame();
      assert.equal(parsed(fr, fx.len ?? fr.length).r, fx.code);
    });
  }

  it("clamps odd len arguments instead of reading past the buffer", () => {
    const fr = tcpFrame();
    const f = new Flow();
    assert.equal(parseFrame(fr, fr.length + 100, f, 0), PARSE_OK);
    assert.equal(f.len, fr.length);
    assert.equal(parseFrame(fr, Number.NaN, f, 0), PARSE_ERR_ETH_TRUNC);
    assert.equal(parseFrame(fr, -5, f, 0), PARSE_ERR_ETH_TRUNC);
    assert.equal(parseFrame(fr, fr.length + 0.5, f, 0), PARSE_OK);
  });
});

describe("IPv4 and L4 rewrites", () => {
  function assertValid(fr: Uint8Array, f: Flow): void {
    assert.ok(ipv4HeaderOk(fr, f.l3Off), "IP header checksum");
    assert.ok(l4ChecksumOk(fr, f.l3Off), "L4 checksum");
    // And the codec's own parse of the result agrees with the flow.
    const g = new Flow();
    assert.equal(parseFrame(fr, f.len, g, f.ifindex), PARSE_OK);
    assert.equal(g.saddr, f.saddr);
    assert.equal(g.daddr, f.daddr);
    assert.equal(g.sport, f.sport);
    assert.equal(g.dport, f.dport);
    assert.equal(g.ttl, f.ttl);
  }

  it("NAT-rewrites a TCP segment (daddr, dport, then the reply saddr, sport, ttl)", () => {
    const fr = tcpFrame({ sport: 40000, dport: 80, payload: [1, 2, 3, 4, 5], flags: 0x18 });
    const { f } = parsed(fr);
    ipv4SetDaddr(fr, f, RIP);
    l4SetDport(fr, f, 8080);
    ipv4DecTtl(fr, f);
    assert.equal(get32(fr, 30), RIP);
    assert.equal(get16(fr, 36), 8080);
    assert.equal(fr[22], 63);
    assert.equal(f.daddr, RIP);
    assert.equal(f.dport, 8080);
    assert.equal(f.ttl, 63);
    assertValid(fr, f);
    ipv4SetSaddr(fr, f, LIP);
    l4SetSport(fr, f, 1025);
    assert.equal(get32(fr, 26), LIP);
    assert.equal(get16(fr, 34), 1025);
    assertValid(fr, f);
  });

  it("NAT-rewrites UDP; a checksum of 0 stays 0", () => {
    const fr = udpFrame({ payload: [1, 2, 3] });
    const { f } = parsed(fr);
    ipv4SetDaddr(fr, f, RIP);
    l4SetDport(fr, f, 5300);
    ipv4SetSaddr(fr, f, LIP);
    l4SetSport(fr, f, 1);
    assertValid(fr, f);
    assert.notEqual(get16(fr, 40), 0);
    const z = udpFrame({ noChecksum: true, payload: [9] });
    const p = parsed(z);
    ipv4SetDaddr(z, p.f, RIP);
    l4SetDport(z, p.f, 5300);
    ipv4SetSaddr(z, p.f, LIP);
    l4SetSport(z, p.f, 1);
    assert.equal(get16(z, 40), 0);
    assert.ok(ipv4HeaderOk(z, 14));
    assert.equal(p.f.dport, 5300);
  });

  it("stores a rewritten UDP checksum that comes out 0 as 0xffff", () => {
    // Pick the payload so that after dport -> 5300 everything but the checksum sums to 0xffff.
    const fr = udpFrame({ payload: [0, 0], dport: 53 });
    const after = fr.slice(34);
    after[2] = 5300 >>> 8;
    after[3] = 5300 & 255;
    after[6] = 0;
    after[7] = 0;
    const w = 0xffff - onesSum(pseudoHeader(CIP, VIP, PROTO_UDP, after.length), after);
    fr[fr.length - 2] = w >>> 8;
    fr[fr.length - 1] = w & 255;
    let c = inetChecksum(
      pseudoHeader(CIP, VIP, PROTO_UDP, after.length),
      fr.subarray(34, 40),
      Uint8Array.of(0, 0),
      be16(w),
    );
    if (c === 0) c = 0xffff;
    fr[40] = c >>> 8;
    fr[41] = c & 255;
    assert.ok(l4ChecksumOk(fr, 14));
    const { f } = parsed(fr);
    l4SetDport(fr, f, 5300);
    assert.equal(get16(fr, 40), 0xffff);
    assert.ok(l4ChecksumOk(fr, 14));
  });

  it("leaves ICMP checksums alone on address rewrites, and non-first fragments' bytes untouched", () => {
    const ic = eth(ETH_P_IP, dgram({ proto: 1, src: CIP, dst: VIP }, icmp(8, 0, 0x00010001, [1])));
    const p = parsed(ic);
    const icmpBefore = Array.from(ic.subarray(34));
    ipv4SetDaddr(ic, p.f, RIP);
    l4SetDport(ic, p.f, 99);
    assert.deepEqual(Array.from(ic.subarray(34)), icmpBefore);
    assert.ok(ipv4HeaderOk(ic, 14));
    assert.ok(l4ChecksumOk(ic, 14));

    const frag = eth(
      ETH_P_IP,
      dgram({ proto: 6, src: CIP, dst: VIP, fragOff: 100, df: false }, new Array(24).fill(7)),
    );
    const q = parsed(frag);
    ipv4SetDaddr(frag, q.f, RIP);
    l4SetDport(frag, q.f, 99);
    l4SetSport(frag, q.f, 98);
    assert.deepEqual(Array.from(frag.subarray(34)), new Array(24).fill(7));
    assert.ok(ipv4HeaderOk(frag, 14));
    assert.equal(q.f.dport, 0);
  });

  it("decrements the TTL with an incremental header checksum, and not below 0", () => {
    for (const ttl of [1, 2, 64, 255]) {
      const fr = tcpFrame({}, { ttl, options: [0x94, 4, 0, 0] });
      const { f } = parsed(fr);
      ipv4DecTtl(fr, f);
      assert.equal(fr[22], ttl - 1);
      assert.equal(f.ttl, ttl - 1);
      assert.ok(ipv4HeaderOk(fr, 14));
    }
    const fr = tcpFrame({}, { ttl: 0 });
    const { f } = parsed(fr);
    ipv4DecTtl(fr, f);
    assert.equal(fr[22], 0);
    assert.ok(ipv4HeaderOk(fr, 14));
  });

  it("writes a 20-byte header with a correct checksum", () => {
    const b = new Uint8Array(24);
    writeIpv4Header(b, 2, 0xb8, 1500, 0xbeef, 0x4000, 64, 4, RIP, LIP);
    assert.deepEqual(
      Array.from(b.subarray(2, 22)),
      Array.from(dgram({ tos: 0xb8, totLen: 1500, id: 0xbeef, proto: 4, src: RIP, dst: LIP })),
    );
  });
});

describe("tcp options", () => {
  it("finds options across NOPs and stops at EOL or malformed lengths", () => {
    const fr = tcpFrame({ options: [1, 1, 4, 2, 2, 4, 0x05, 0xb4, 0, 0, 0, 0] });
    const l4 = 34;
    assert.equal(tcpFindOption(fr, l4, TCPOPT_MSS), l4 + 24);
    assert.equal(tcpFindOption(fr, l4, 4), l4 + 22);
    assert.equal(tcpFindOption(fr, l4, TCPOPT_NOP), l4 + 20);
    assert.equal(tcpFindOption(fr, l4, 8), -1);
    assert.equal(tcpGetMss(fr, l4), 1460);
    const afterEol = tcpFrame({ options: [0, 0, 0, 0, 2, 4, 5, 0xb4] });
    assert.equal(tcpFindOption(afterEol, l4, TCPOPT_MSS), -1);
    assert.equal(tcpFindOption(afterEol, l4, TCPOPT_EOL), l4 + 20);
    for (const opts of [
      [3, 0, 2, 4, 5, 0xb4, 1, 1],
      [3, 1, 2, 4, 5, 0xb4, 1, 1],
      [1, 1, 1, 3, 9, 9, 9, 9],
      [1, 1, 1, 1, 1, 2, 4, 5],
    ]) {
      assert.equal(tcpFindOption(tcpFrame({ options: opts }), l4, TCPOPT_MSS), -1, String(opts));
    }
    assert.equal(tcpGetMss(tcpFrame({ options: [2, 3, 5, 1] }), l4), 0, "MSS with length 3");
    assert.equal(tcpFindOption(fr, fr.length - 10, TCPOPT_MSS), -1, "header beyond the buffer");
  });

  it("sets the MSS with a checksum equal to a recomputation, aligned or not", () => {
    for (const opts of [
      [2, 4, 0x05, 0xb4],
      [1, 2, 4, 0x05, 0xb4, 1, 1, 1],
      [1, 1, 1, 2, 4, 0x05, 0xb4, 0],
    ]) {
      const fr = tcpFrame({ flags: 2, options: opts, payload: [1, 2, 3] });
      const { f } = parsed(fr);
      assert.ok(tcpSetMss(fr, f, 1400));
      assert.equal(tcpGetMss(fr, 34), 1400);
      assert.ok(l4ChecksumOk(fr, 14), String(opts));
    }
    const none = tcpFrame({ flags: 2 });
    assert.equal(tcpSetMss(none, parsed(none).f, 1400), false);
  });

  it("writes the TOA option layout", () => {
    const o = new Uint8Array(10);
    writeToaOption(o, 1, 40000, CIP);
    assert.deepEqual(Array.from(o), [0, TCPOPT_TOA, TCPOLEN_TOA, ...be16(40000), ...be32(CIP), 0]);
  });

  it("inserts TOA after the fixed header, keeping options, payload and valid checksums", () => {
    const opts = [2, 4, 0x05, 0xb4, 1, 3, 3, 7];
    const payload = Array.from({ length: 33 }, (_, i) => i * 7);
    const fr = tcpFrame({ flags: 0x10, options: opts, payload });
    const buf = new Uint8Array(fr.length + 20);
    buf.set(fr);
    const f = new Flow();
    parseFrame(buf, fr.length, f, 0);
    const toa = new Uint8Array(TCPOLEN_TOA);
    writeToaOption(toa, 0, 40000, CIP);
    assert.ok(tcpInsertOption(buf, f, toa, TCPOLEN_TOA, buf.length));
    assert.equal(f.l3End, fr.length + 8);
    assert.equal(f.len, fr.length + 8);
    assert.equal(f.payloadOff, 34 + 20 + 8 + 8);
    assert.equal(buf[34 + 12] >>> 4, 9);
    assert.equal(get16(buf, 16), fr.length - 14 + 8);
    assert.deepEqual(Array.from(buf.subarray(54, 62)), Array.from(toa));
    assert.deepEqual(Array.from(buf.subarray(62, 70)), opts);
    assert.deepEqual(Array.from(buf.subarray(70, f.l3End)), payload);
    assert.ok(ipv4HeaderOk(buf, 14));
    assert.ok(l4ChecksumOk(buf, 14));
    const g = new Flow();
    assert.equal(parseFrame(buf, f.len, g, 0), PARSE_OK);
    assert.equal(tcpFindOption(buf, 34, TCPOPT_TOA), 54);
    assert.equal(tcpGetMss(buf, 34), 1460);
  });

  it("refuses an insertion that does not fit, leaving the frame unchanged", () => {
    const toa = new Uint8Array(TCPOLEN_TOA);
    const full = tcpFrame({ options: new Array(36).fill(1) });
    const big = new Uint8Array(full.length + 40);
    big.set(full);
    const f = new Flow();
    parseFrame(big, full.length, f, 0);
    assert.equal(tcpInsertOption(big, f, toa, 8, big.length), false, "header would exceed 60");
    assert.ok(tcpInsertOption(big, f, toa, 4, big.length), "exactly 60 is fine");
    const small = tcpFrame({ payload: [1] });
    const s = parsed(small);
    const before = Array.from(small);
    assert.equal(tcpInsertOption(small, s.f, toa, 8, small.length), false, "no room");
    assert.equal(tcpInsertOption(small, s.f, toa, 6, 1000), false, "not a multiple of 4");
    assert.deepEqual(Array.from(small), before);
    const udp = udpFrame();
    assert.equal(tcpInsertOption(udp, parsed(udp).f, toa, 8, 1000), false, "not TCP");
  });
});

describe("icmp", () => {
  it("classifies error types", () => {
    assert.deepEqual(
      [0, 3, 4, 5, 8, 11, 12, 13].map((t) => icmpIsError(t)),
      [false, true, true, true, false, true, true, false],
    );
  });

  it("turns an echo request into its reply in place", () => {
    const fr = eth(
      ETH_P_IP,
      dgram({ proto: 1, src: CIP, dst: VIP, ttl: 5 }, icmp(8, 0, 0x12340001, [1, 2, 3])),
    );
    const { f } = parsed(fr);
    icmpEchoReplyInPlace(fr, f, 64);
    assert.equal(get32(fr, 26), VIP);
    assert.equal(get32(fr, 30), CIP);
    assert.equal(fr[22], 64);
    assert.equal(fr[34], 0);
    assert.equal(get32(fr, 38), 0x12340001);
    assert.equal(f.saddr, VIP);
    assert.equal(f.daddr, CIP);
    assert.equal(f.icmpType, 0);
    assert.ok(ipv4HeaderOk(fr, 14));
    assert.ok(l4ChecksumOk(fr, 14));
  });

  it("builds an error quoting a short datagram whole (TOS & 0x1e | 0xc0, DF clear)", () => {
    const orig = tcpFrame({ payload: [1, 2, 3] }, { tos: 0x13 });
    const origLen = orig.length - 14;
    const out = new Uint8Array(600);
    const n = buildIcmpError(
      out,
      14,
      ICMP_DEST_UNREACH,
      ICMP_FRAG_NEEDED,
      1400,
      orig,
      14,
      origLen,
      VIP,
      CIP,
      64,
    );
    assert.equal(n, 28 + origLen);
    assert.equal(out[14], 0x45);
    assert.equal(out[15], 0xd2);
    assert.equal(get16(out, 16), n);
    assert.equal(get16(out, 20) & 0x4000, 0);
    assert.equal(out[22], 64);
    assert.equal(out[23], 1);
    assert.equal(get32(out, 26), VIP);
    assert.equal(get32(out, 30), CIP);
    assert.deepEqual([out[34], out[35], get32(out, 38)], [3, 4, 1400]);
    assert.deepEqual(Array.from(out.subarray(42, 14 + n)), Array.from(orig.subarray(14)));
    assert.ok(ipv4HeaderOk(out, 14));
    assert.ok(l4ChecksumOk(out, 14));
  });

  it("limits the whole error to 576 bytes, also when built over the original", () => {
    const payload = Array.from({ length: 1400 }, (_, i) => i & 255);
    const orig = tcpFrame({ payload });
    const ref = Array.from(orig.subarray(14, 14 + 548));
    const n = buildIcmpError(orig, 14, 11, 0, 0, orig, 14, orig.length - 14, VIP, CIP, 64);
    assert.equal(n, 576);
    assert.deepEqual(Array.from(orig.subarray(42, 14 + 576)), ref);
    assert.ok(ipv4HeaderOk(orig, 14));
    assert.ok(l4ChecksumOk(orig, 14));
    assert.equal(
      buildIcmpError(new Uint8Array(100), 14, 11, 0, 0, orig, 14, 1454, VIP, CIP, 64),
      0,
      "out too small",
    );
    assert.equal(
      buildIcmpError(new Uint8Array(100), 14, 11, 0, 0, orig, 14, 19, VIP, CIP, 64),
      0,
      "no IP header",
    );
  });

  it("rewrites the embedded header like ip_vs_nat_icmp (inner IP csum, ports, full ICMP csum)", () => {
    const inner = dgram(
      { proto: 6, src: RIP, dst: CIP },
      tcpSegment(RIP, CIP, { sport: 8080, dport: 40000, seq: 0, flags: 0 }),
    );
    const fr = eth(
      ETH_P_IP,
      dgram(
        { proto: 1, src: ip("10.0.1.1"), dst: RIP },
        icmp(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, inner),
      ),
    );
    const { f } = parsed(fr);
    assert.ok(f.hasInner && f.innerHasPorts);
    icmpInnerSetSaddr(fr, f, VIP);
    icmpInnerSetSport(fr, f, 80);
    icmpInnerSetDaddr(fr, f, LIP);
    icmpInnerSetDport(fr, f, 1025);
    icmpRecomputeChecksum(fr, f);
    assert.equal(get32(fr, f.innerL3Off + 12), VIP);
    assert.equal(get32(fr, f.innerL3Off + 16), LIP);
    assert.equal(get16(fr, f.innerL4Off), 80);
    assert.equal(get16(fr, f.innerL4Off + 2), 1025);
    assert.ok(ipv4HeaderOk(fr, f.innerL3Off));
    assert.ok(l4ChecksumOk(fr, 14));
    const g = parsed(fr).f;
    assert.deepEqual(
      [g.innerSaddr, g.innerDaddr, g.innerSport, g.innerDport],
      [f.innerSaddr, f.innerDaddr, f.innerSport, f.innerDport],
    );
    assert.deepEqual([g.innerSaddr, g.innerSport], [VIP, 80]);
  });

  it("leaves inner ports alone when fewer than 8 bytes of L4 are quoted", () => {
    const inner = dgram(
      { proto: 17, src: RIP, dst: CIP },
      udpDatagram(RIP, CIP, { sport: 1, dport: 2 }),
    ).slice(0, 24);
    const fr = eth(ETH_P_IP, dgram({ proto: 1, src: CIP, dst: RIP }, icmp(3, 3, 0, inner)));
    const { f } = parsed(fr);
    icmpInnerSetSport(fr, f, 999);
    icmpInnerSetDport(fr, f, 999);
    assert.equal(get16(fr, f.innerL4Off), 1);
    assert.equal(f.innerSport, 0);
  });
});

describe("ipip and arp", () => {
  it("encapsulates into a separate buffer and in place", () => {
    const orig = udpFrame({ payload: [1, 2, 3, 4, 5] }, { tos: 0x28 });
    const dg = Array.from(orig.subarray(14));
    const out = new Uint8Array(200);
    const n = ipipEncap(out, 14, orig, 14, dg.length, LIP, RIP, 63, 0x28, true);
    assert.equal(n, 20 + dg.length);
    assert.deepEqual(
      Array.from(out.subarray(14, 34)),
      Array.from(dgram({ tos: 0x28, totLen: n, id: 0, df: true, ttl: 63, proto: 4, src: LIP, dst: RIP })),
    );
    assert.deepEqual(Array.from(out.subarray(34, 14 + n)), dg);

    const inPlace = new Uint8Array(orig.length + 20);
    inPlace.set(orig);
    assert.equal(ipipEncap(inPlace, 14, inPlace, 14, dg.length, LIP, RIP, 64, 0, false, 77), n);
    assert.deepEqual(Array.from(inPlace.subarray(34, 14 + n)), dg);
    assert.equal(get16(inPlace, 18), 77);
    assert.equal(get16(inPlace, 20), 0);
    assert.ok(ipv4HeaderOk(inPlace, 14));
    assert.equal(ipipEncap(new Uint8Array(40), 14, orig, 14, dg.length, LIP, RIP, 64, 0, false), 0);
  });

  it("writes an ARP reply body", () => {
    const b = new Uint8Array(ARP_LEN + 2);
    writeArp(b, 2, ARP_REPLY, MAC_A, VIP, MAC_B, CIP);
    assert.deepEqual(Array.from(b.subarray(2)), [
      0,
      1,
      8,
      0,
      6,
      4,
      0,
      2,
      ...MAC_A,
      ...be32(VIP),
      ...MAC_B,
      ...be32(CIP),
    ]);
    assert.equal(ETH_HLEN, 14);
    copyMac(b, 0, BROADCAST_MAC, 0);
  });
});
