// parseFrame for IPv6 (ethertype 0x86DD): the Flow's IPv6 facts — words and folds, hop limit,
// traffic class, the upper-layer protocol after the extension headers, fragments as ipv6_frag_rcv
// sees them, ports, TCP fields, ICMPv6 type/id and the packet quoted by an error — and the drop
// reasons of malformed packets. Frames come from test/support/packet6.ts (not the codecs).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Flow } from "../../src/core/packet/flow.js";
import {
  PARSE_ERR_ICMP6_TRUNC,
  PARSE_ERR_IP6_EXT_MANY,
  PARSE_ERR_IP6_EXT_TRUNC,
  PARSE_ERR_IP6_FRAG_HDRS,
  PARSE_ERR_IP6_FRAG_LEN,
  PARSE_ERR_IP6_HOP_ORDER,
  PARSE_ERR_IP6_PLEN,
  PARSE_ERR_IP6_TRUNC,
  PARSE_ERR_IP6_VERSION,
  PARSE_ERR_TCP_DOFF,
  PARSE_ERR_TCP_TRUNC,
  PARSE_ERR_UDP_LEN,
  PARSE_ERR_UDP_TRUNC,
  PARSE_OK,
  PARSE_OTHER,
  PARSE_RESULT_NAMES,
  parseFrame,
} from "../../src/core/packet/parse.js";
import {
  ACK,
  bytes,
  concat,
  ethFrame,
  ip,
  mac,
  PSH,
  put16,
  SYN,
  tcpFrame,
} from "../support/packet-builder.js";
import {
  ETH_P_IPV6,
  fold6,
  fragmentHdr,
  icmp6ErrorFrame,
  icmp6Frame,
  icmp6Message,
  ipv6Packet,
  ipv6WithExt,
  NH_DEST,
  NH_HOP,
  NH_ICMPV6,
  NH_NONE,
  NH_ROUTING,
  NH_TCP,
  NH_UDP,
  optionsHdr,
  tcp6Frame,
  tcp6Segment,
  udp6Datagram,
  udp6Frame,
  w6,
} from "../support/packet6.js";

const CIP = "2001:db8:c::a";
const VIP = "2001:db8:f::80";
const L2 = { dmac: mac("02:00:00:00:00:01"), smac: mac("02:00:00:00:00:02") };
const IP6 = { src: CIP, dst: VIP, hl: 61, tc: 0xb8, flow: 0x12345 };

function parse6(frame: Uint8Array, len = frame.length): { f: Flow; r: number } {
  const f = new Flow();
  f.acceptIpv6 = true;
  return { f, r: parseFrame(frame, len, f, 7) };
}

function eth6(pkt: Uint8Array): Uint8Array {
  return ethFrame(L2.dmac, L2.smac, ETH_P_IPV6, pkt);
}

/** The flow's facts that a test states (the rest is checked to be a fresh Flow's where it says so). */
interface Expect {
  proto?: number;
  l4Off?: number;
  l3End?: number;
  fragment?: boolean;
  firstFragment?: boolean;
  sport?: number;
  dport?: number;
  tcpFlags?: number;
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  hasInner?: boolean;
}

const udpMsg = udp6Datagram(CIP, VIP, { sport: 5353, dport: 53, payload: bytes("query") });

const okCases: Array<{ name: string; frame: () => Uint8Array; want: Expect }> = [
  {
    name: "TCP SYN",
    frame: () => tcp6Frame(L2, IP6, { sport: 40000, dport: 80, flags: SYN, seq: 0xdeadbeef, ack: 7 }),
    want: { proto: NH_TCP, l4Off: 54, l3End: 54 + 20, sport: 40000, dport: 80, tcpFlags: SYN },
  },
  {
    name: "TCP with payload and Ethernet padding after it",
    frame: () =>
      concat(
        tcp6Frame(L2, IP6, { sport: 1, dport: 443, flags: ACK | PSH, payload: bytes("hello") }),
        new Uint8Array(6),
      ),
    want: { proto: NH_TCP, l3End: 54 + 25, sport: 1, dport: 443, tcpFlags: ACK | PSH },
  },
  {
    name: "UDP",
    frame: () => udp6Frame(L2, IP6, { sport: 5353, dport: 53, payload: bytes("q") }),
    want: { proto: NH_UDP, l4Off: 54, sport: 5353, dport: 53, tcpFlags: 0 },
  },
  {
    name: "UDP behind hop-by-hop, destination options (16 bytes) and routing",
    frame: () =>
      eth6(
        ipv6WithExt(
          IP6,
          [optionsHdr(NH_HOP), optionsHdr(NH_DEST, 16), { type: NH_ROUTING, bytes: routing0() }],
          NH_UDP,
          udpMsg,
        ),
      ),
    want: { proto: NH_UDP, l4Off: 54 + 8 + 16 + 24, sport: 5353, dport: 53 },
  },
  {
    name: "a first fragment has ports",
    frame: () => eth6(ipv6WithExt(IP6, [fragmentHdr(0, true, 0x1234)], NH_UDP, udp6Head(64))),
    want: { proto: NH_UDP, l4Off: 62, fragment: true, firstFragment: true, sport: 5353, dport: 53 },
  },
  {
    name: "a later fragment has the datagram's protocol and no ports",
    frame: () => eth6(ipv6WithExt(IP6, [fragmentHdr(64, false, 0x1234)], NH_UDP, new Uint8Array(24))),
    want: { proto: NH_UDP, l4Off: 62, fragment: true, firstFragment: false, sport: 0, dport: 0 },
  },
  {
    name: "an atomic fragment (offset 0, M clear) is no fragment",
    frame: () => eth6(ipv6WithExt(IP6, [fragmentHdr(0, false, 9)], NH_UDP, udpMsg)),
    want: { proto: NH_UDP, fragment: false, firstFragment: false, sport: 5353, dport: 53 },
  },
  {
    name: "ICMPv6 echo request",
    frame: () => icmp6Frame(L2, IP6, { type: 128, rest: 0x04d20001, data: bytes("ping") }),
    want: { proto: NH_ICMPV6, icmpType: 128, icmpCode: 0, icmpId: 0x04d2, hasInner: false },
  },
  {
    name: "a neighbour solicitation is ICMPv6 type 135",
    frame: () => icmp6Frame(L2, IP6, { type: 135, data: new Uint8Array(16) }),
    want: { proto: NH_ICMPV6, icmpType: 135, hasInner: false, sport: 0, dport: 0 },
  },
  {
    name: "ESP is passed up as it is",
    frame: () => eth6(ipv6Packet(IP6, 50, new Uint8Array(16))),
    want: { proto: 50, l4Off: 54, sport: 0 },
  },
];

/** A routing header type 0 with no segments left (24 bytes). */
function routing0(): Uint8Array {
  const b = new Uint8Array(24);
  b[1] = 2;
  return b;
}

/** The first 8 + n bytes of a UDP datagram whose length says 8 + 2n (a first fragment's head). */
function udp6Head(n: number): Uint8Array {
  const b = new Uint8Array(8 + n);
  put16(b, 0, 5353);
  put16(b, 2, 53);
  put16(b, 4, 8 + 2 * n);
  return b;
}

describe("parseFrame: IPv6", () => {
  for (const c of okCases) {
    it(`parses ${c.name}`, () => {
      const fr = c.frame();
      const { f, r } = parse6(fr);
      assert.equal(PARSE_RESULT_NAMES[r], "ok");
      assert.equal(f.af, 6);
      assert.equal(f.ethType, ETH_P_IPV6);
      assert.equal(f.l3Off, 14);
      assert.deepEqual(f.s6, w6(CIP));
      assert.deepEqual(f.d6, w6(VIP));
      assert.equal(f.saddr, fold6(CIP));
      assert.equal(f.daddr, fold6(VIP));
      assert.equal(f.ttl, 61);
      assert.equal(f.tos, 0xb8);
      assert.equal(f.df, true);
      const got: Record<string, unknown> = {};
      const want = { fragment: false, firstFragment: false, ...c.want } as Record<string, unknown>;
      for (const k of Object.keys(want)) got[k] = (f as unknown as Record<string, unknown>)[k];
      assert.deepEqual(got, want);
    });
  }

  it("reads the TCP sequence and acknowledgement numbers as u32", () => {
    const { f } = parse6(
      tcp6Frame(L2, IP6, { sport: 1, dport: 2, flags: ACK, seq: 0xfffffffe, ack: 0x80000001 }),
    );
    assert.equal(f.tcpSeq, 0xfffffffe);
    assert.equal(f.tcpAck, 0x80000001);
    assert.equal(f.payloadOff, 74);
  });

  it("keeps the fragment header's facts (offset, M flag, identification)", () => {
    const { f } = parse6(
      eth6(ipv6WithExt(IP6, [fragmentHdr(1232, true, 0xcafef00d)], NH_UDP, new Uint8Array(16))),
    );
    assert.equal(f.fragHdrOff, 54);
    assert.equal(f.fragOffset, 1232);
    assert.equal(f.fragMore, true);
    assert.equal(f.fragId, 0xcafef00d);
    assert.equal(f.protoOff, 54);
  });

  it("an 802.1Q tag is skipped and kept", () => {
    const pkt = ipv6Packet(IP6, NH_UDP, udpMsg);
    const fr = concat(L2.dmac, L2.smac, Uint8Array.from([0x81, 0, 0, 42, 0x86, 0xdd]), pkt);
    const { f, r } = parse6(fr);
    assert.equal(r, PARSE_OK);
    assert.equal(f.vlan, 42);
    assert.equal(f.l3Off, 18);
    assert.equal(f.dport, 53);
  });

  it("without acceptIpv6 an IPv6 frame is other, and the Flow an IPv4 one (callers that handle IPv4 only)", () => {
    const f = new Flow();
    assert.equal(parseFrame(udp6Frame(L2, IP6, { sport: 1, dport: 2 }), 200, f, 1), PARSE_OTHER);
    assert.equal(f.af, 4);
    assert.equal(f.saddr, 0);
  });
});

describe("parseFrame: ICMPv6 errors quote the packet they are about", () => {
  // A reply VIP:80 → CIP:40000 that the client could not take: the error goes CIP → VIP.
  const reply = ipv6Packet(
    { src: VIP, dst: CIP },
    NH_TCP,
    tcp6Segment(VIP, CIP, { sport: 80, dport: 40000, flags: ACK }),
  );
  const cases: Array<{
    name: string;
    type: number;
    code: number;
    quote: number;
    inner: { proto: number; ports: boolean } | null;
  }> = [
    {
      name: "destination unreachable quoting it whole",
      type: 1,
      code: 4,
      quote: 60,
      inner: { proto: 6, ports: true },
    },
    {
      name: "packet too big quoting header + 4 bytes",
      type: 2,
      code: 0,
      quote: 44,
      inner: { proto: 6, ports: true },
    },
    {
      name: "time exceeded quoting header + 3 bytes (no ports)",
      type: 3,
      code: 0,
      quote: 43,
      inner: { proto: 6, ports: false },
    },
    {
      name: "parameter problem quoting a cut IPv6 header (ignored)",
      type: 4,
      code: 0,
      quote: 39,
      inner: null,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const fr = icmp6ErrorFrame(L2, IP6, c.type, c.code, c.type === 2 ? 1280 : 0, reply, c.quote);
      const { f, r } = parse6(fr);
      assert.equal(r, PARSE_OK);
      assert.equal(f.icmpType, c.type);
      assert.equal(f.icmpCode, c.code);
      assert.equal(f.hasInner, c.inner !== null);
      if (c.inner === null) {
        assert.deepEqual(f.innerS6, new Int32Array(4));
        return;
      }
      assert.equal(f.innerL3Off, 14 + 40 + 8);
      assert.equal(f.innerL4Off, 14 + 40 + 8 + 40);
      assert.equal(f.innerProto, c.inner.proto);
      assert.deepEqual(f.innerS6, w6(VIP));
      assert.deepEqual(f.innerD6, w6(CIP));
      assert.equal(f.innerSaddr, fold6(VIP));
      assert.equal(f.innerDaddr, fold6(CIP));
      assert.equal(f.innerHasPorts, c.inner.ports);
      assert.equal(f.innerSport, c.inner.ports ? 80 : 0);
      assert.equal(f.innerDport, c.inner.ports ? 40000 : 0);
    });
  }

  it("a fragmented ICMPv6 error has no quoted packet (errors are never fragmented)", () => {
    const msg = icmp6Message(CIP, VIP, { type: 1, code: 4, data: reply });
    const { f, r } = parse6(
      eth6(ipv6WithExt(IP6, [fragmentHdr(0, true, 1)], NH_ICMPV6, msg.subarray(0, 64))),
    );
    assert.equal(r, PARSE_OK);
    assert.equal(f.icmpType, 1);
    assert.equal(f.hasInner, false);
  });
});

describe("parseFrame: malformed IPv6 is dropped with a reason", () => {
  const hdr = (plen: number, nh: number): Uint8Array => {
    const p = ipv6Packet(IP6, nh, new Uint8Array(0));
    put16(p, 4, plen);
    return p;
  };
  const cases: Array<{ name: string; frame: () => Uint8Array; code: number; reason: string }> = [
    {
      name: "shorter than 40 bytes",
      frame: () => eth6(hdr(0, NH_NONE).subarray(0, 39)),
      code: PARSE_ERR_IP6_TRUNC,
      reason: "err_ip6_trunc",
    },
    {
      name: "version 4 under ethertype 0x86DD",
      frame: () => {
        const p = hdr(0, 59);
        p[0] = 0x45;
        return eth6(p);
      },
      code: PARSE_ERR_IP6_VERSION,
      reason: "err_ip6_version",
    },
    {
      name: "payload length past the frame",
      frame: () => eth6(concat(hdr(20, NH_UDP), new Uint8Array(19))),
      code: PARSE_ERR_IP6_PLEN,
      reason: "err_ip6_plen",
    },
    {
      name: "an extension header past the payload",
      frame: () => eth6(concat(hdr(8, NH_DEST), Uint8Array.from([NH_UDP, 1, 0, 0, 0, 0, 0, 0]))),
      code: PARSE_ERR_IP6_EXT_TRUNC,
      reason: "err_ip6_ext_trunc",
    },
    {
      name: "hop-by-hop after another header",
      frame: () => eth6(ipv6WithExt(IP6, [optionsHdr(NH_DEST), optionsHdr(NH_HOP)], NH_UDP, udpMsg)),
      code: PARSE_ERR_IP6_HOP_ORDER,
      reason: "err_ip6_hop_order",
    },
    {
      name: "nine extension headers",
      frame: () =>
        eth6(
          ipv6WithExt(
            IP6,
            Array.from({ length: 9 }, () => optionsHdr(NH_DEST)),
            NH_UDP,
            udpMsg,
          ),
        ),
      code: PARSE_ERR_IP6_EXT_MANY,
      reason: "err_ip6_ext_many",
    },
    {
      name: "a non-last fragment of 12 bytes (not a multiple of 8)",
      frame: () => eth6(ipv6WithExt(IP6, [fragmentHdr(0, true, 1)], NH_UDP, udp6Head(4))),
      code: PARSE_ERR_IP6_FRAG_LEN,
      reason: "err_ip6_frag_len",
    },
    {
      name: "a first fragment without the whole TCP header",
      frame: () => eth6(ipv6WithExt(IP6, [fragmentHdr(0, true, 1)], NH_TCP, new Uint8Array(16))),
      code: PARSE_ERR_IP6_FRAG_HDRS,
      reason: "err_ip6_frag_hdrs",
    },
    {
      name: "TCP header cut",
      frame: () => eth6(ipv6Packet(IP6, NH_TCP, new Uint8Array(19))),
      code: PARSE_ERR_TCP_TRUNC,
      reason: "err_tcp_trunc",
    },
    {
      name: "TCP data offset past the end",
      frame: () => {
        const t = tcp6Segment(CIP, VIP, { sport: 1, dport: 2, flags: SYN });
        t[12] = 0x60;
        return eth6(ipv6Packet(IP6, NH_TCP, t));
      },
      code: PARSE_ERR_TCP_DOFF,
      reason: "err_tcp_doff",
    },
    {
      name: "UDP header cut",
      frame: () => eth6(ipv6Packet(IP6, NH_UDP, new Uint8Array(7))),
      code: PARSE_ERR_UDP_TRUNC,
      reason: "err_udp_trunc",
    },
    {
      name: "UDP length past the payload",
      frame: () => {
        const u = udpMsg.slice();
        put16(u, 4, u.length + 1);
        return eth6(ipv6Packet(IP6, NH_UDP, u));
      },
      code: PARSE_ERR_UDP_LEN,
      reason: "err_udp_len",
    },
    {
      name: "ICMPv6 header cut",
      frame: () => eth6(ipv6Packet(IP6, NH_ICMPV6, new Uint8Array(7))),
      code: PARSE_ERR_ICMP6_TRUNC,
      reason: "err_icmp6_trunc",
    },
  ];
  for (const c of cases) {
    it(`${c.reason}: ${c.name}`, () => {
      const { f, r } = parse6(c.frame());
      assert.equal(r, c.code);
      assert.equal(PARSE_RESULT_NAMES[r], c.reason);
      assert.equal(f.af, 6);
    });
  }

  it("leaves every field as a fresh Flow's after an error, whatever came before", () => {
    for (const c of cases) {
      const f = new Flow();
      f.acceptIpv6 = true;
      parseFrame(icmp6ErrorFrame(L2, IP6, 1, 4, 0, ipv6Packet(IP6, NH_UDP, udpMsg)), 500, f, 7);
      const fr = c.frame();
      parseFrame(fr, fr.length, f, 7);
      const fresh = new Flow();
      fresh.acceptIpv6 = true;
      parseFrame(fr, fr.length, fresh, 7);
      assert.deepEqual({ ...f }, { ...fresh }, c.name);
    }
  });
});

describe("parseFrame: IPv4 and IPv6 frames on one Flow", () => {
  const v4 = tcpFrame(L2, { src: ip("192.0.2.1"), dst: ip("10.0.0.1") }, { sport: 1, dport: 80, flags: SYN });
  const frames = [
    tcp6Frame(L2, IP6, { sport: 1, dport: 80, flags: SYN }),
    icmp6ErrorFrame(L2, IP6, 1, 4, 0, ipv6Packet(IP6, NH_UDP, udpMsg)),
    eth6(ipv6WithExt(IP6, [fragmentHdr(64, false, 5)], NH_UDP, new Uint8Array(16))),
    v4,
  ];
  it("every field ends as a fresh Flow's, or as parsed, in any order", () => {
    for (const a of frames) {
      for (const b of frames) {
        const f = new Flow();
        f.acceptIpv6 = true;
        parseFrame(a, a.length, f, 1);
        parseFrame(b, b.length, f, 1);
        const fresh = new Flow();
        fresh.acceptIpv6 = true;
        parseFrame(b, b.length, fresh, 1);
        assert.deepEqual({ ...f }, { ...fresh });
      }
    }
  });
});

describe("parseFrame: IPv6 properties", () => {
  const valid = [
    tcp6Frame(L2, IP6, { sport: 1, dport: 80, flags: SYN, payload: bytes("x".repeat(40)) }),
    udp6Frame(L2, IP6, { sport: 1, dport: 53, payload: bytes("q") }),
    icmp6ErrorFrame(L2, IP6, 2, 0, 1280, ipv6Packet(IP6, NH_UDP, udpMsg)),
    eth6(ipv6WithExt(IP6, [optionsHdr(NH_HOP), fragmentHdr(0, true, 1)], NH_UDP, udp6Head(64))),
  ];
  const known = (r: number): boolean => Number.isInteger(r) && r >= 0 && r < PARSE_RESULT_NAMES.length;

  it("every truncation of a valid frame gets a known code and never throws", () => {
    for (const fr of valid) for (let n = 0; n <= fr.length; n++) assert.ok(known(parse6(fr, n).r));
  });

  it("random bytes after the IPv6 ethertype and random extension chains never throw", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 200 }),
        fc.integer({ min: 0, max: 255 }),
        (body, nh) => {
          const p = concat(
            Uint8Array.from([0x60, 0, 0, 0, 0, body.length, nh, 64]),
            new Uint8Array(32),
            body,
          );
          assert.ok(known(parse6(eth6(p)).r));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("a byte changed anywhere in a valid frame never throws", () => {
    fc.assert(
      fc.property(fc.constantFrom(...valid), fc.nat(), fc.integer({ min: 0, max: 255 }), (fr, at, v) => {
        const bad = fr.slice();
        bad[at % bad.length] = v;
        assert.ok(known(parse6(bad).r));
      }),
      { numRuns: 500 },
    );
  });
});
