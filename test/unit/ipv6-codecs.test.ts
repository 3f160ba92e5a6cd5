// IPv6, ICMPv6 and NDP codecs (src/core/packet/ipv6.ts, icmpv6.ts, ndp.ts, csum.ts's IPv6 part).
// Packets come from two places, never from the codecs' own writers: a small builder in this file
// (with its own checksum), and frames the kernel (6.18) built in throwaway namespaces, captured
// with tcpdump: ping -6 through a router whose far link has MTU 1280, a UDP datagram to a closed
// port, neighbour discovery between veths, DAD and ndisc_notify's unsolicited advertisements
// (auto_flowlabels off, so flow labels are 0). Builders must reproduce the kernel's bytes exactly.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { readU16 } from "../../src/core/addr.js";
import { csumReplace128, ipv6PseudoSum, l4ChecksumV6, verifyL4V6 } from "../../src/core/packet/csum.js";
import {
  buildIcmpv6EchoReply,
  buildIcmpv6Error,
  ICMPV6_ADM_PROHIBITED,
  ICMPV6_DEST_UNREACH,
  ICMPV6_ERR_QUOTE_MAX,
  ICMPV6_EXC_HOPLIMIT,
  ICMPV6_INNER_BAD,
  ICMPV6_INNER_FRAGMENT,
  ICMPV6_INNER_NAMES,
  ICMPV6_INNER_NOT_ERROR,
  ICMPV6_INNER_NOT_ICMP,
  ICMPV6_INNER_OK,
  ICMPV6_INNER_TRUNC,
  ICMPV6_PARAMPROB,
  ICMPV6_PKT_TOOBIG,
  ICMPV6_PORT_UNREACH,
  ICMPV6_TIME_EXCEED,
  ICMPV6_UNK_OPTION,
  Icmpv6Inner,
  icmpv6ErrorAllowed,
  icmpv6Inner,
  icmpv6IsError,
  icmpv6NatRelay,
  icmpv6Verify,
} from "../../src/core/packet/icmpv6.js";
import {
  IP6_DADDR,
  IP6_ERR_EXT_MANY,
  IP6_ERR_EXT_TRUNC,
  IP6_ERR_FRAG_HDRS,
  IP6_ERR_FRAG_LEN,
  IP6_ERR_HOP_ORDER,
  IP6_ERR_PLEN,
  IP6_ERR_TRUNC,
  IP6_ERR_VERSION,
  IP6_OK,
  IP6_RESULT_NAMES,
  IP6_SADDR,
  IPV6_MAX_EXT_HDRS,
  Ipv6Walk,
  ipv6DecHopLimit,
  ipv6FlowLabel,
  ipv6L4CheckOffset,
  ipv6PayloadLen,
  ipv6SetAddr,
  ipv6SetTrafficClass,
  ipv6TrafficClass,
  ipv6Walk,
  ipv6WalkQuoted,
  writeIpv6Header,
} from "../../src/core/packet/ipv6.js";
import {
  ALL_NODES,
  ALL_NODES_MAC,
  ipv6IsSolicitedNode,
  ipv6MulticastMac,
  NDP_ERR_CODE,
  NDP_ERR_CSUM,
  NDP_ERR_DAD_DST,
  NDP_ERR_DAD_LLADDR,
  NDP_ERR_FRAG,
  NDP_ERR_HOPLIMIT,
  NDP_ERR_LLADDR,
  NDP_ERR_OPTION,
  NDP_ERR_SOLICITED_MCAST,
  NDP_ERR_TARGET,
  NDP_ERR_TRUNC,
  NDP_NA_OVERRIDE,
  NDP_NA_ROUTER,
  NDP_NA_SOLICITED,
  NDP_OK,
  NDP_OTHER,
  NDP_RESULT_NAMES,
  NdpMsg,
  ndpAnswerNs,
  ndpParse,
  ndpSolicitedNode,
  UNSOLICITED_NA_FRAME_LEN,
  writeNdp,
  writeUnsolicitedNa,
} from "../../src/core/packet/ndp.js";
import {
  K_DAD_NS,
  K_ECHO_REPLY,
  K_ECHO_REQUEST,
  K_MLD_REPORT,
  K_NA_SOLICITED,
  K_NA_UNICAST,
  K_NS_MCAST,
  K_NS_UNICAST,
  K_PORT_UNREACH,
  K_PTB,
  K_PTB_INVOKING,
  K_RS,
  K_TE,
  K_TE_INVOKING,
  K_UDP_AT_B,
  K_UNSOL_NA,
  K_UNSOL_NA_DAD,
} from "../support/kernel6.js";

// ---- a packet builder of the test's own ----------------------------------------------------------

function toHex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}
function cat(...parts: ReadonlyArray<Uint8Array | readonly number[]>): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
function be16(v: number): number[] {
  return [(v >>> 8) & 255, v & 255];
}
function be32(v: number): number[] {
  return [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
}
/** "2001:db8::1" → 16 bytes; the test's own expansion (one "::" at most, no dotted quad). */
function a6(s: string): Uint8Array {
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return Uint8Array.from(groups.flatMap((g) => be16(Number.parseInt(g, 16))));
}
function addr(a: string | Uint8Array): Uint8Array {
  return typeof a === "string" ? a6(a) : a;
}
function mac(s: string): Uint8Array {
  return Uint8Array.from(s.split(":").map((x) => Number.parseInt(x, 16)));
}
/** One's complement sum, the test's own (RFC 1071, word by word). */
function inetSum(...parts: Uint8Array[]): number {
  const all = cat(...parts);
  let s = 0;
  for (let i = 0; i < all.length; i += 2) s += (all[i] << 8) | (all[i + 1] ?? 0);
  return fold(s);
}
function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
function pseudo(src: Uint8Array, dst: Uint8Array, len: number, nh: number): Uint8Array {
  return cat(src, dst, be32(len), [0, 0, 0, nh]);
}
/** Stores the checksum of msg (field at `field`) under the pseudo-header of src → dst. */
function checksummed(
  msg: Uint8Array,
  src: Uint8Array,
  dst: Uint8Array,
  nh: number,
  field: number,
): Uint8Array {
  const m = msg.slice();
  m[field] = 0;
  m[field + 1] = 0;
  const c = ~inetSum(pseudo(src, dst, m.length, nh), m) & 0xffff;
  m.set(be16(nh === 17 && c === 0 ? 0xffff : c), field);
  return m;
}

interface Ip6Spec {
  tc?: number;
  fl?: number;
  nh: number;
  hl?: number;
  src?: string | Uint8Array;
  dst?: string | Uint8Array;
  /** Overrides the payload length field. */
  plen?: number;
}
const SRC = "2001:db8:1::a";
const DST = "2001:db8:2::b";
function ip6(s: Ip6Spec, ...payload: ReadonlyArray<Uint8Array | readonly number[]>): Uint8Array {
  const p = cat(...payload);
  const tc = s.tc ?? 0;
  const fl = s.fl ?? 0;
  const w0 = [0x60 | (tc >>> 4), ((tc & 15) << 4) | (fl >>> 16), (fl >>> 8) & 255, fl & 255];
  return cat(w0, be16(s.plen ?? p.length), [s.nh, s.hl ?? 64], addr(s.src ?? SRC), addr(s.dst ?? DST), p);
}
/** Hop-by-hop / destination options / routing header of `len` bytes (a multiple of 8), PadN-filled. */
function opts(nh: number, len: number): number[] {
  const h = [nh, len / 8 - 1];
  const pad = len - 2;
  return [...h, 1, pad - 2, ...Array(pad - 2).fill(0)];
}
function routing(nh: number, segLeft = 0): number[] {
  return [nh, 2, 4, segLeft, 0, 0, 0, 0, ...a6("2001:db8::99")];
}
function frag(nh: number, offset: number, more: boolean, id: number): number[] {
  return [nh, 0, ...be16(offset | (more ? 1 : 0)), ...be32(id)];
}
/** AH of `len` bytes (a multiple of 4, at least 12): payload length = len / 4 - 2. */
function ah(nh: number, len: number): number[] {
  return [nh, len / 4 - 2, 0, 0, ...be32(0x1234), ...be32(1), ...Array(len - 12).fill(0xab)];
}
function udp(sport: number, dport: number, data: readonly number[] = []): number[] {
  return [...be16(sport), ...be16(dport), ...be16(8 + data.length), 0, 0, ...data];
}
function tcp(sport: number, dport: number): number[] {
  return [...be16(sport), ...be16(dport), ...be32(1000), ...be32(0), 0x50, 0x02, ...be16(64240), 0, 0, 0, 0];
}
/** A checksummed UDP datagram over IPv6 (no extension headers). */
function udp6(s: Partial<Ip6Spec>, sport: number, dport: number, data: readonly number[]): Uint8Array {
  const src = addr(s.src ?? SRC);
  const dst = addr(s.dst ?? DST);
  return ip6({ ...s, nh: 17 }, checksummed(Uint8Array.from(udp(sport, dport, data)), src, dst, 17, 6));
}
function tcp6(s: Partial<Ip6Spec>, sport: number, dport: number): Uint8Array {
  const src = addr(s.src ?? SRC);
  const dst = addr(s.dst ?? DST);
  return ip6({ ...s, nh: 6 }, checksummed(Uint8Array.from(tcp(sport, dport)), src, dst, 6, 16));
}
/** A checksummed ICMPv6 message over IPv6. */
function icmp6(s: Partial<Ip6Spec>, body: readonly number[] | Uint8Array): Uint8Array {
  const src = addr(s.src ?? SRC);
  const dst = addr(s.dst ?? DST);
  return ip6({ ...s, nh: 58 }, checksummed(Uint8Array.from(body), src, dst, 58, 2));
}

function walk(buf: Uint8Array, l3Off = 0, end = buf.length): Ipv6Walk & { code: number } {
  const w = new Ipv6Walk();
  const code = ipv6Walk(buf, l3Off, end, w);
  return Object.assign(w, { code });
}

const A_MAC = "02:00:00:00:00:0a";
const R_MAC = "02:00:00:00:00:01";
const KERNEL_FRAMES: ReadonlyArray<readonly [string, Uint8Array]> = [
  ["MLD report", K_MLD_REPORT],
  ["NS multicast", K_NS_MCAST],
  ["NA solicited", K_NA_SOLICITED],
  ["echo request", K_ECHO_REQUEST],
  ["echo reply", K_ECHO_REPLY],
  ["PTB invoking", K_PTB_INVOKING],
  ["PTB", K_PTB],
  ["TE invoking", K_TE_INVOKING],
  ["TE", K_TE],
  ["unsolicited NA", K_UNSOL_NA],
  ["RS", K_RS],
  ["NS unicast", K_NS_UNICAST],
  ["NA unicast", K_NA_UNICAST],
  ["UDP at B", K_UDP_AT_B],
  ["port unreachable", K_PORT_UNREACH],
  ["DAD NS", K_DAD_NS],
  ["unsolicited NA after DAD", K_UNSOL_NA_DAD],
];
const L3 = 14;

// ---- the fixed header ----------------------------------------------------------------------------

describe("IPv6 fixed header", () => {
  const hdr = ip6({ tc: 0xb8, fl: 0xabcde, nh: 59, hl: 7, plen: 0 });

  it("reads traffic class, flow label and payload length across their nibble boundaries", () => {
    assert.equal(toHex(hdr.subarray(0, 8)), "6b8abcde00003b07");
    assert.equal(ipv6TrafficClass(hdr, 0), 0xb8);
    assert.equal(ipv6FlowLabel(hdr, 0), 0xabcde);
    assert.equal(ipv6PayloadLen(hdr, 0), 0);
  });

  it("writeIpv6Header writes the same 40 bytes as the builder", () => {
    const out = new Uint8Array(44).fill(0xee);
    writeIpv6Header(out, 2, 0xb8, 0xabcde, 0, 59, 7, a6(SRC), 0, a6(DST), 0);
    assert.equal(toHex(out.subarray(2, 42)), toHex(hdr));
    assert.equal(out[1], 0xee);
    assert.equal(out[42], 0xee);
  });

  it("ipv6SetTrafficClass keeps the version and the flow label", () => {
    const b = hdr.slice();
    ipv6SetTrafficClass(b, 0, 0x2e);
    assert.equal(ipv6TrafficClass(b, 0), 0x2e);
    assert.equal(ipv6FlowLabel(b, 0), 0xabcde);
    assert.equal(b[0] >>> 4, 6);
  });

  const hops: ReadonlyArray<readonly [number, boolean, number]> = [
    [64, true, 63],
    [2, true, 1],
    [1, false, 1],
    [0, false, 0],
  ];
  for (const [hl, ok, after] of hops) {
    it(`ipv6DecHopLimit: hop limit ${hl} → ${ok ? `forwarded with ${after}` : "time exceeded"}`, () => {
      const b = ip6({ nh: 59, hl });
      assert.equal(ipv6DecHopLimit(b, 0), ok);
      assert.equal(b[7], after);
    });
  }
});

// ---- the extension-header walk -------------------------------------------------------------------

interface WalkExpect {
  code: number;
  proto?: number;
  l4Off?: number;
  extCount?: number;
  fragment?: boolean;
  firstFragment?: boolean;
  fragOffset?: number;
  fragMore?: boolean;
  fragId?: number;
  fragHdrOff?: number;
  routingOff?: number;
  protoOff?: number;
  l3End?: number;
}
function picked(w: Ipv6Walk & { code: number }, e: WalkExpect): WalkExpect {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(e)) out[k] = (w as unknown as Record<string, unknown>)[k];
  return out as unknown as WalkExpect;
}

const WALKS: ReadonlyArray<{ name: string; pkt: Uint8Array; want: WalkExpect }> = [
  {
    name: "TCP, no extension headers",
    pkt: ip6({ nh: 6 }, tcp(1, 2)),
    want: { code: IP6_OK, proto: 6, l4Off: 40, extCount: 0, protoOff: 6, l3End: 60, fragHdrOff: -1 },
  },
  {
    name: "hop-by-hop, then UDP",
    pkt: ip6({ nh: 0 }, opts(17, 8), udp(1, 2)),
    want: { code: IP6_OK, proto: 17, l4Off: 48, extCount: 1, protoOff: 40 },
  },
  {
    name: "the RFC 8200 §4.1 order: HBH, dest, routing, fragment (first), AH, dest, UDP",
    pkt: ip6(
      { nh: 0 },
      opts(60, 8),
      opts(43, 16),
      routing(44),
      frag(51, 0, true, 0xdeadbeef),
      ah(60, 24),
      opts(17, 8),
      udp(7, 9, [1, 2, 3, 4, 5, 6, 7, 8]),
    ),
    want: {
      code: IP6_OK,
      proto: 17,
      l4Off: 40 + 8 + 16 + 24 + 8 + 24 + 8,
      extCount: 6,
      routingOff: 64,
      fragHdrOff: 88,
      fragment: true,
      firstFragment: true,
      fragOffset: 0,
      fragMore: true,
      fragId: 0xdeadbeef,
      protoOff: 120,
    },
  },
  {
    name: "AH by its own length rule ((len + 2) * 4)",
    pkt: ip6({ nh: 51 }, ah(6, 16), tcp(1, 2)),
    want: { code: IP6_OK, proto: 6, l4Off: 56, extCount: 1 },
  },
  {
    name: "a non-first fragment stops at its header: no ports after it",
    pkt: ip6({ nh: 44 }, frag(17, 1448, false, 7), Array(24).fill(0x55)),
    want: {
      code: IP6_OK,
      proto: 17,
      l4Off: 48,
      extCount: 1,
      fragment: true,
      firstFragment: false,
      fragOffset: 1448,
      fragMore: false,
      fragId: 7,
      protoOff: 40,
    },
  },
  {
    name: "a middle fragment (offset and M) with a whole number of 8-byte blocks",
    pkt: ip6({ nh: 0 }, opts(44, 8), frag(6, 8, true, 1), Array(16).fill(0)),
    want: { code: IP6_OK, proto: 6, l4Off: 56, fragment: true, firstFragment: false, fragMore: true },
  },
  {
    name: "an atomic fragment (offset 0, M clear) is no fragment: the walk goes on",
    pkt: ip6({ nh: 44 }, frag(17, 0, false, 9), udp(1, 2)),
    want: {
      code: IP6_OK,
      proto: 17,
      l4Off: 48,
      fragment: false,
      firstFragment: false,
      fragHdrOff: 40,
      fragId: 9,
    },
  },
  {
    name: "ESP ends the walk (its payload is opaque)",
    pkt: ip6({ nh: 60 }, opts(50, 8), be32(0x100), be32(1), Array(8).fill(0)),
    want: { code: IP6_OK, proto: 50, l4Off: 48, extCount: 1 },
  },
  {
    name: "no next header ends the walk",
    pkt: ip6({ nh: 0 }, opts(59, 8)),
    want: { code: IP6_OK, proto: 59, l4Off: 48, l3End: 48 },
  },
  {
    name: "link padding after the payload is not part of it",
    pkt: cat(ip6({ nh: 17 }, udp(1, 2)), [0, 0, 0, 0, 0, 0]),
    want: { code: IP6_OK, proto: 17, l3End: 48 },
  },
  {
    name: "exactly IPV6_MAX_EXT_HDRS destination options headers",
    pkt: ip6(
      { nh: 60 },
      ...Array.from({ length: IPV6_MAX_EXT_HDRS }, (_, i) => opts(i === IPV6_MAX_EXT_HDRS - 1 ? 6 : 60, 8)),
      tcp(1, 2),
    ),
    want: { code: IP6_OK, proto: 6, extCount: IPV6_MAX_EXT_HDRS },
  },
  {
    name: "one more than IPV6_MAX_EXT_HDRS",
    pkt: ip6(
      { nh: 60 },
      ...Array.from({ length: IPV6_MAX_EXT_HDRS + 1 }, (_, i) => opts(i === IPV6_MAX_EXT_HDRS ? 6 : 60, 8)),
      tcp(1, 2),
    ),
    want: { code: IP6_ERR_EXT_MANY },
  },
  {
    name: "hop-by-hop after another header",
    pkt: ip6({ nh: 60 }, opts(0, 8), opts(17, 8), udp(1, 2)),
    want: { code: IP6_ERR_HOP_ORDER },
  },
  {
    name: "hop-by-hop twice",
    pkt: ip6({ nh: 0 }, opts(0, 8), opts(17, 8), udp(1, 2)),
    want: { code: IP6_ERR_HOP_ORDER },
  },
  {
    name: "a two-block destination options header",
    pkt: ip6({ nh: 60 }, [17, 1, 1, 4, 0, 0, 0, 0], udp(1, 2)),
    want: { code: IP6_OK, proto: 17, l4Off: 56 },
  },
  {
    name: "an extension header running past the payload",
    pkt: ip6({ nh: 60 }, [17, 2, 1, 4, 0, 0, 0, 0], udp(1, 2)),
    want: { code: IP6_ERR_EXT_TRUNC },
  },
  {
    name: "fewer than 8 bytes where an extension header should be",
    pkt: ip6({ nh: 43 }, [17, 0, 0, 0]),
    want: { code: IP6_ERR_EXT_TRUNC },
  },
  {
    name: "a fragment with M whose data is not a multiple of 8",
    pkt: ip6({ nh: 44 }, frag(17, 0, true, 1), udp(1, 2, [1, 2, 3, 4, 5])),
    want: { code: IP6_ERR_FRAG_LEN },
  },
  {
    name: "a fragment ending past 65535",
    pkt: ip6({ nh: 44 }, frag(17, 65528, false, 1), Array(16).fill(0)),
    want: { code: IP6_ERR_FRAG_LEN },
  },
  {
    name: "a first fragment without its upper-layer header (RFC 7112)",
    pkt: ip6({ nh: 44 }, frag(60, 0, true, 1), opts(6, 8)),
    want: { code: IP6_ERR_FRAG_HDRS },
  },
  {
    name: "a first fragment with a whole TCP header",
    pkt: ip6({ nh: 44 }, frag(6, 0, true, 1), tcp(1, 2), Array(4).fill(0)),
    want: { code: IP6_OK, proto: 6, firstFragment: true },
  },
  { name: "39 bytes", pkt: ip6({ nh: 59 }).subarray(0, 39), want: { code: IP6_ERR_TRUNC } },
  {
    name: "version 4",
    pkt: (() => {
      const b = ip6({ nh: 59 });
      b[0] = 0x45;
      return b;
    })(),
    want: { code: IP6_ERR_VERSION },
  },
  {
    name: "payload length past the frame",
    pkt: ip6({ nh: 17, plen: 9 }, udp(1, 2)),
    want: { code: IP6_ERR_PLEN },
  },
];

describe("ipv6Walk: extension headers", () => {
  for (const { name, pkt, want } of WALKS) {
    it(`${name} → ${IP6_RESULT_NAMES[want.code]}`, () => {
      assert.deepEqual(picked(walk(pkt), want), want);
      // The same packet behind an Ethernet header: every offset moves by 14.
      const framed = cat(Array(L3).fill(0), pkt);
      const shifted: WalkExpect = { ...want };
      for (const k of ["l4Off", "protoOff", "l3End", "fragHdrOff", "routingOff"] as const) {
        const v = want[k];
        if (v !== undefined && v >= 0) shifted[k] = v + L3;
      }
      assert.deepEqual(picked(walk(framed, L3), shifted), shifted);
    });
  }

  it("the kernel's MLD report: hop-by-hop (router alert) before ICMPv6", () => {
    const w = walk(K_MLD_REPORT, L3);
    assert.deepEqual(picked(w, { code: 0, proto: 58, l4Off: L3 + 48, extCount: 1 }), {
      code: 0,
      proto: 58,
      l4Off: L3 + 48,
      extCount: 1,
    });
  });

  it("a quoted packet may stop anywhere after its header; a header cut by the quote is still an error", () => {
    const full = ip6({ nh: 60 }, opts(17, 16), udp(1000, 53, [1, 2, 3, 4]));
    const w = new Ipv6Walk();
    assert.equal(ipv6WalkQuoted(full, 0, 60, w), IP6_OK);
    assert.deepEqual([w.proto, w.l4Off, w.l3End], [17, 56, 60]);
    assert.equal(ipv6WalkQuoted(full, 0, 50, w), IP6_ERR_EXT_TRUNC);
    assert.equal(ipv6Walk(full, 0, 60, w), IP6_ERR_PLEN);
    // Fragment lengths are not judged from a quote.
    const f = ip6({ nh: 44 }, frag(17, 0, true, 3), udp(1, 2, [1, 2, 3]));
    assert.equal(ipv6WalkQuoted(f, 0, f.length, w), IP6_OK);
    assert.equal(w.firstFragment, true);
  });
});

// ---- checksums -----------------------------------------------------------------------------------

describe("IPv6 checksums", () => {
  it("ipv6PseudoSum sums src, dst, the 32-bit length and the next header (RFC 8200 §8.1)", () => {
    const p = ip6({ nh: 17, src: "fe80::1", dst: "ff02::1:ff00:1" }, udp(1, 2));
    const want = inetSum(pseudo(a6("fe80::1"), a6("ff02::1:ff00:1"), 0x1_0008, 17));
    assert.equal(fold(ipv6PseudoSum(p, 0, 0x1_0008, 17)), want);
    assert.equal(fold(ipv6PseudoSum(p, 0, 0x1_0008, 17, 0x1234)), fold(want + 0x1234));
  });

  it("every kernel frame's transport checksum verifies (except the veth's partial UDP one)", () => {
    assert.deepEqual([K_PTB_INVOKING.length, K_PTB.length], [1414, 1294]);
    for (const [name, f] of KERNEL_FRAMES) {
      const w = walk(f, L3);
      assert.equal(w.code, IP6_OK, name);
      const ok = verifyL4V6(f, L3, w.l4Off, w.l3End - w.l4Off, w.proto);
      assert.equal(ok, f !== K_UDP_AT_B, name);
    }
  });

  it("l4ChecksumV6 reproduces the kernel's ICMPv6 checksums", () => {
    for (const f of [K_ECHO_REQUEST, K_NA_SOLICITED, K_PTB, K_PORT_UNREACH, K_MLD_REPORT]) {
      const w = walk(f, L3);
      assert.equal(l4ChecksumV6(f, L3, w.l4Off, w.l3End - w.l4Off, 58), readU16(f, w.l4Off + 2));
    }
  });

  it("a UDP checksum of 0 does not verify over IPv6; a computed 0 is stored as 0xffff", () => {
    const p = udp6({}, 1, 2, [1, 2, 3]);
    assert.ok(verifyL4V6(p, 0, 40, 11, 17));
    const z = p.slice();
    z[46] = 0;
    z[47] = 0;
    assert.equal(verifyL4V6(z, 0, 40, 11, 17), false);
    // Data chosen so that the datagram sums to 0: the stored value must be 0xffff, and verify.
    const s0 = inetSum(pseudo(a6(SRC), a6(DST), 10, 17), Uint8Array.from(udp(1, 2, [0, 0])));
    const d = 0xffff - s0;
    const q = udp6({}, 1, 2, [d >>> 8, d & 255]);
    assert.equal(readU16(q, 46), 0xffff);
    assert.equal(l4ChecksumV6(q, 0, 40, 10, 17), 0xffff);
    assert.ok(verifyL4V6(q, 0, 40, 10, 17));
  });

  it("a flipped bit fails verification; out-of-bounds arguments are false, not a throw", () => {
    const p = tcp6({}, 80, 1234);
    p[50] ^= 4;
    assert.equal(verifyL4V6(p, 0, 40, 20, 6), false);
    assert.equal(verifyL4V6(p, 0, 40, 21, 6), false);
    assert.equal(verifyL4V6(p, -1, 40, 20, 6), false);
    assert.equal(verifyL4V6(p.subarray(0, 30), 0, 40, 20, 6), false);
  });

  const addr16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
  it("csumReplace128 = recomputation when an address changes (property)", () => {
    fc.assert(
      fc.property(addr16, addr16, fc.integer({ min: 0, max: 65535 }), (src, neu, port) => {
        const p = tcp6({ src }, port, 443);
        const inc = csumReplace128(readU16(p, 56), p, IP6_SADDR, neu, 0);
        p.set(neu, IP6_SADDR);
        const full = l4ChecksumV6(p, 0, 40, 20, 6);
        assert.ok(inc === full || ((inc | full) === 0xffff && (inc & full) === 0), `${inc} ${full}`);
        p.set(be16(inc), 56);
        assert.ok(verifyL4V6(p, 0, 40, 20, 6));
      }),
      { numRuns: 1000 },
    );
  });

  it("ipv6SetAddr keeps TCP, UDP and ICMPv6 checksums valid; a zero UDP checksum stays zero", () => {
    fc.assert(
      fc.property(addr16, fc.boolean(), fc.constantFrom(6, 17, 58), (neu, dst, proto) => {
        const p =
          proto === 6
            ? tcp6({}, 1, 2)
            : proto === 17
              ? udp6({}, 1, 2, [9, 9, 9])
              : icmp6({}, [128, 0, 0, 0, 0, 1, 0, 1, 0xaa]);
        const w = walk(p);
        const co = ipv6L4CheckOffset(p, w);
        ipv6SetAddr(p, dst ? IP6_DADDR : IP6_SADDR, neu, 0, co, proto);
        assert.equal(toHex(p.subarray(dst ? 24 : 8, dst ? 40 : 24)), toHex(neu));
        assert.ok(verifyL4V6(p, 0, 40, w.l3End - 40, proto));
      }),
      { numRuns: 500 },
    );
    const u = udp6({}, 1, 2, [1]);
    u[46] = 0;
    u[47] = 0;
    ipv6SetAddr(u, IP6_SADDR, a6("2001:db8::5"), 0, ipv6L4CheckOffset(u, walk(u)), 17);
    assert.equal(readU16(u, 46), 0);
  });

  it("ipv6L4CheckOffset: none for a non-first fragment, ESP, or a header cut short", () => {
    assert.equal(ipv6L4CheckOffset(WALKS[4].pkt, walk(WALKS[4].pkt)), -1);
    const esp = WALKS[7].pkt;
    assert.equal(ipv6L4CheckOffset(esp, walk(esp)), -1);
    const short = ip6({ nh: 6 }, [0, 1, 0, 2]);
    assert.equal(ipv6L4CheckOffset(short, walk(short)), -1);
    const first = WALKS[2].pkt;
    assert.equal(ipv6L4CheckOffset(first, walk(first)), 128 + 6);
  });
});

// ---- ICMPv6 -------------------------------------------------------------------------------------

describe("ICMPv6 builders reproduce the kernel's packets", () => {
  const R1 = a6("2001:db8:1::1");
  const A = a6("2001:db8:1::a");
  const B = a6("2001:db8:2::b");

  it("echo reply (icmpv6_echo_reply): request → reply, into another buffer and in place", () => {
    const w = walk(K_ECHO_REQUEST, L3);
    const out = new Uint8Array(200);
    const n = buildIcmpv6EchoReply(out, 4, K_ECHO_REQUEST, w, K_ECHO_REQUEST, L3 + IP6_DADDR, 64);
    assert.equal(toHex(out.subarray(4, 4 + n)), toHex(K_ECHO_REPLY.subarray(L3)));
    const inPlace = K_ECHO_REQUEST.slice();
    assert.equal(buildIcmpv6EchoReply(inPlace, L3, inPlace, w, inPlace, L3 + IP6_DADDR, 64), n);
    assert.equal(toHex(inPlace.subarray(L3)), toHex(K_ECHO_REPLY.subarray(L3)));
  });

  it("echo reply: the request's traffic class, the flow label given, nothing for other messages", () => {
    const req = icmp6({ tc: 0xb8 }, [128, 0, 0, 0, 0x12, 0x34, 0, 1, 7, 7, 7]);
    const out = new Uint8Array(100);
    const w = walk(req);
    const n = buildIcmpv6EchoReply(out, 0, req, w, req, IP6_DADDR, 255, 0x12345);
    const want = icmp6(
      { tc: 0xb8, fl: 0x12345, hl: 255, src: DST, dst: SRC },
      [129, 0, 0, 0, 0x12, 0x34, 0, 1, 7, 7, 7],
    );
    assert.equal(toHex(out.subarray(0, n)), toHex(want));
    assert.equal(buildIcmpv6EchoReply(out, 0, K_ECHO_REPLY, walk(K_ECHO_REPLY, L3), A, 0, 64), 0);
    assert.equal(buildIcmpv6EchoReply(new Uint8Array(50), 0, req, w, A, 0, 64), 0);
    const fragReq = ip6({ nh: 44 }, frag(58, 0, true, 1), [128, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(buildIcmpv6EchoReply(out, 0, fragReq, walk(fragReq), A, 0, 64), 0);
  });

  it("packet too big, MTU 1280, quoting 1232 bytes of a 1400-byte packet (RFC 4443 §2.4(c))", () => {
    const out = new Uint8Array(1400);
    const n = buildIcmpv6Error(
      out,
      0,
      ICMPV6_PKT_TOOBIG,
      0,
      1280,
      K_PTB_INVOKING,
      L3,
      K_PTB_INVOKING.length - L3,
      R1,
      0,
      K_PTB_INVOKING,
      L3 + IP6_SADDR,
      64,
    );
    assert.equal(n, 1280);
    assert.equal(ICMPV6_ERR_QUOTE_MAX, 1232);
    assert.equal(toHex(out.subarray(0, n)), toHex(K_PTB.subarray(L3)));
  });

  it("time exceeded in transit (hop limit)", () => {
    const out = new Uint8Array(200);
    const n = buildIcmpv6Error(
      out,
      0,
      ICMPV6_TIME_EXCEED,
      ICMPV6_EXC_HOPLIMIT,
      0,
      K_TE_INVOKING,
      L3,
      K_TE_INVOKING.length - L3,
      R1,
      0,
      A,
      0,
      64,
    );
    assert.equal(toHex(out.subarray(0, n)), toHex(K_TE.subarray(L3)));
  });

  it("port unreachable, built in place over the invoking datagram", () => {
    const buf = new Uint8Array(200);
    buf.set(K_UDP_AT_B);
    const n = buildIcmpv6Error(
      buf,
      L3,
      ICMPV6_DEST_UNREACH,
      ICMPV6_PORT_UNREACH,
      0,
      buf,
      L3,
      K_UDP_AT_B.length - L3,
      buf,
      L3 + IP6_DADDR,
      buf,
      L3 + IP6_SADDR,
      64,
    );
    assert.equal(toHex(buf.subarray(L3, L3 + n)), toHex(K_PORT_UNREACH.subarray(L3)));
  });

  it("administratively prohibited, against a packet written out by hand", () => {
    const syn = tcp6({}, 40000, 80);
    const out = new Uint8Array(200);
    const n = buildIcmpv6Error(
      out,
      0,
      ICMPV6_DEST_UNREACH,
      ICMPV6_ADM_PROHIBITED,
      0,
      syn,
      0,
      syn.length,
      B,
      0,
      A,
      0,
      64,
      0xbeef,
    );
    const want = icmp6({ src: DST, dst: SRC, fl: 0xbeef }, cat([1, 1, 0, 0, 0, 0, 0, 0], syn));
    assert.equal(toHex(out.subarray(0, n)), toHex(want));
  });

  it("no error when out is too small or the invoking packet is not an IPv6 header long", () => {
    const syn = tcp6({}, 40000, 80);
    assert.equal(buildIcmpv6Error(new Uint8Array(100), 0, 1, 4, 0, syn, 0, 60, B, 0, A, 0, 64), 0);
    assert.equal(buildIcmpv6Error(new Uint8Array(200), 0, 1, 4, 0, syn, 0, 39, B, 0, A, 0, 64), 0);
    assert.equal(buildIcmpv6Error(new Uint8Array(200), 0, 1, 4, 0, syn, 30, 60, B, 0, A, 0, 64), 0);
  });
});

describe("ICMPv6 builders: properties", () => {
  it("an error about any datagram fits in 1280 bytes, verifies, and quotes the datagram's ports", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1800 }),
        fc.integer({ min: 1, max: 65535 }),
        fc.constantFrom(ICMPV6_DEST_UNREACH, ICMPV6_PKT_TOOBIG, ICMPV6_TIME_EXCEED, ICMPV6_PARAMPROB),
        (len, sport, type) => {
          const dgram = udp6(
            {},
            sport,
            53,
            Array.from({ length: len }, (_, i) => i & 255),
          );
          const out = new Uint8Array(1400);
          const n = buildIcmpv6Error(
            out,
            0,
            type,
            0,
            1280,
            dgram,
            0,
            dgram.length,
            a6(DST),
            0,
            a6(SRC),
            0,
            64,
          );
          assert.equal(n, Math.min(1280, 48 + dgram.length));
          const w = walk(out.subarray(0, n));
          assert.equal(w.code, IP6_OK);
          assert.ok(icmpv6Verify(out, 0, 40, n - 40));
          const i = new Icmpv6Inner();
          assert.equal(icmpv6Inner(out.subarray(0, n), w, i), ICMPV6_INNER_OK);
          assert.deepEqual([i.hasPorts, i.sport, i.dport], [true, sport, 53]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("an echo reply to any request verifies and keeps identifier, sequence and data", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 4, maxLength: 1400 }),
        fc.integer({ min: 0, max: 255 }),
        (body, tc) => {
          const req = icmp6({ tc }, cat([128, 0, 0, 0], body));
          const out = new Uint8Array(1500);
          const n = buildIcmpv6EchoReply(out, 0, req, walk(req), req, IP6_DADDR, 64);
          assert.equal(n, req.length);
          assert.ok(icmpv6Verify(out, 0, 40, n - 40));
          assert.equal(out[40], 129);
          assert.equal(ipv6TrafficClass(out, 0), tc);
          assert.equal(toHex(out.subarray(44, n)), toHex(body));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("icmpv6ErrorAllowed (icmp6_send's rules)", () => {
  const rows: ReadonlyArray<readonly [string, Uint8Array, number, number, boolean]> = [
    ["UDP to a unicast address", udp6({}, 1, 2, []), ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, true],
    [
      "UDP to a multicast group",
      udp6({ dst: "ff02::1" }, 1, 2, []),
      ICMPV6_DEST_UNREACH,
      ICMPV6_PORT_UNREACH,
      false,
    ],
    [
      "packet too big about a multicast packet",
      udp6({ dst: "ff0e::1" }, 1, 2, []),
      ICMPV6_PKT_TOOBIG,
      0,
      true,
    ],
    [
      "unknown option about a multicast packet",
      udp6({ dst: "ff02::1" }, 1, 2, []),
      ICMPV6_PARAMPROB,
      ICMPV6_UNK_OPTION,
      true,
    ],
    [
      "from the unspecified address",
      udp6({ src: "::" }, 1, 2, []),
      ICMPV6_DEST_UNREACH,
      ICMPV6_PORT_UNREACH,
      false,
    ],
    [
      "from a multicast address",
      udp6({ src: "ff02::2" }, 1, 2, []),
      ICMPV6_DEST_UNREACH,
      ICMPV6_PORT_UNREACH,
      false,
    ],
    ["about an echo request", icmp6({}, [128, 0, 0, 0, 0, 1, 0, 1]), ICMPV6_TIME_EXCEED, 0, true],
    ["about an ICMPv6 error", K_PORT_UNREACH.subarray(L3), ICMPV6_TIME_EXCEED, 0, false],
    [
      "about a non-first fragment of ICMPv6",
      ip6({ nh: 44 }, frag(58, 8, false, 1), [1, 0, 0, 0, 0, 0, 0, 0]),
      ICMPV6_TIME_EXCEED,
      1,
      true,
    ],
    ["about an ICMPv6 packet too short to show its type", ip6({ nh: 58 }), ICMPV6_PARAMPROB, 0, false],
  ];
  for (const [name, pkt, type, code, want] of rows) {
    it(`${name} → ${want ? "allowed" : "not sent"}`, () => {
      assert.equal(icmpv6ErrorAllowed(pkt, walk(pkt), type, code), want);
    });
  }

  it("icmpv6IsError: types below 128", () => {
    assert.deepEqual([1, 2, 3, 4, 127, 128, 129, 135, 255].map(icmpv6IsError), [
      true,
      true,
      true,
      true,
      true,
      false,
      false,
      false,
      false,
    ]);
  });
});

describe("the packet quoted in an ICMPv6 error (ip_vs_in_icmp_v6)", () => {
  function inner(buf: Uint8Array, l3 = L3): Icmpv6Inner & { code: number } {
    const i = new Icmpv6Inner();
    const code = icmpv6Inner(buf, walk(buf, l3), i);
    return Object.assign(i, { code });
  }

  it("the kernel's port unreachable quotes UDP 2001:db8:1::a.40000 → 2001:db8:2::b.9", () => {
    const i = inner(K_PORT_UNREACH);
    assert.equal(i.code, ICMPV6_INNER_OK);
    assert.deepEqual(
      [i.l3Off, i.proto, i.l4Off, i.hasPorts, i.sport, i.dport],
      [L3 + 48, 17, L3 + 88, true, 40000, 9],
    );
  });

  it("the kernel's packet too big quotes an echo request: no ports", () => {
    const i = inner(K_PTB);
    assert.deepEqual([i.code, i.proto, i.hasPorts], [ICMPV6_INNER_OK, 58, false]);
    assert.equal(i.l3End, K_PTB.length);
  });

  const quoted = tcp6({ src: DST, dst: SRC }, 80, 40000);
  const rows: ReadonlyArray<readonly [string, Uint8Array, number, boolean]> = [
    ["an echo request is not an error", K_ECHO_REQUEST.subarray(L3), ICMPV6_INNER_NOT_ERROR, false],
    ["UDP is not ICMPv6", K_UDP_AT_B.subarray(L3), ICMPV6_INNER_NOT_ICMP, false],
    [
      "an error in fragments",
      ip6({ nh: 44 }, frag(58, 0, true, 5), [1, 4, 0, 0, 0, 0, 0, 0], quoted.subarray(0, 40)),
      ICMPV6_INNER_FRAGMENT,
      false,
    ],
    ["fewer than 8 bytes of ICMPv6", icmp6({}, [1, 4, 0, 0]), ICMPV6_INNER_TRUNC, false],
    [
      "a quote shorter than an IPv6 header",
      icmp6({}, cat([1, 4, 0, 0, 0, 0, 0, 0], quoted.subarray(0, 39))),
      ICMPV6_INNER_BAD,
      false,
    ],
    [
      "a quote with both ports",
      icmp6({}, cat([1, 4, 0, 0, 0, 0, 0, 0], quoted.subarray(0, 44))),
      ICMPV6_INNER_OK,
      true,
    ],
    [
      "a quote with 3 bytes of the ports",
      icmp6({}, cat([1, 4, 0, 0, 0, 0, 0, 0], quoted.subarray(0, 43))),
      ICMPV6_INNER_OK,
      false,
    ],
    [
      "a quoted non-first fragment has no ports",
      icmp6({}, cat([3, 1, 0, 0, 0, 0, 0, 0], ip6({ nh: 44 }, frag(6, 16, false, 1), tcp(1, 2)))),
      ICMPV6_INNER_OK,
      false,
    ],
    [
      "a quoted extension header cut by the quote",
      icmp6({}, cat([1, 4, 0, 0, 0, 0, 0, 0], ip6({ nh: 60, plen: 64 }, [6, 3, 0, 0, 0, 0, 0, 0]))),
      ICMPV6_INNER_BAD,
      false,
    ],
  ];
  for (const [name, pkt, code, ports] of rows) {
    it(`${name} → ${ICMPV6_INNER_NAMES[code]}${ports ? " with ports" : ""}`, () => {
      const i = inner(pkt, 0);
      assert.equal(i.code, code);
      assert.equal(i.hasPorts, ports);
      if (ports) assert.deepEqual([i.sport, i.dport], [80, 40000]);
    });
  }

  it("NAT relay outbound: outer source and quoted destination become the VIP, the quoted port the virtual port", () => {
    const f = K_PORT_UNREACH.slice();
    const outer = walk(f, L3);
    const i = new Icmpv6Inner();
    assert.equal(icmpv6Inner(f, outer, i), ICMPV6_INNER_OK);
    const vip = a6("2001:db8:ffff::80");
    icmpv6NatRelay(f, outer, i, true, vip, 0, 8080);
    assert.equal(toHex(f.subarray(L3 + IP6_SADDR, L3 + IP6_SADDR + 16)), toHex(vip));
    assert.equal(toHex(f.subarray(i.l3Off + IP6_DADDR, i.l3Off + IP6_DADDR + 16)), toHex(vip));
    assert.equal(readU16(f, i.l4Off + 2), 8080);
    assert.equal(readU16(f, i.l4Off), 40000);
    assert.ok(icmpv6Verify(f, L3, outer.l4Off, outer.l3End - outer.l4Off));
    // Relaying back with the original values restores the frame byte for byte.
    icmpv6NatRelay(f, outer, i, true, a6("2001:db8:2::b"), 0, 9);
    assert.equal(toHex(f), toHex(K_PORT_UNREACH));
  });

  it("NAT relay inbound: outer destination and quoted source become the real server, the quoted source port its port", () => {
    // An error from a router about a reply the director sent from VIP:80 to the client.
    const reply = tcp6({ src: "2001:db8:ffff::80", dst: SRC }, 80, 40000);
    const err = icmp6(
      { src: "2001:db8:1::1", dst: "2001:db8:ffff::80" },
      cat([1, 3, 0, 0, 0, 0, 0, 0], reply),
    );
    const outer = walk(err);
    const i = new Icmpv6Inner();
    assert.equal(icmpv6Inner(err, outer, i), ICMPV6_INNER_OK);
    const rs = a6("2001:db8:2::b");
    icmpv6NatRelay(err, outer, i, false, rs, 0, 8080);
    const want = icmp6(
      { src: "2001:db8:1::1", dst: DST },
      cat(
        [1, 3, 0, 0, 0, 0, 0, 0],
        (() => {
          const q = reply.slice();
          q.set(rs, IP6_SADDR);
          q.set(be16(8080), 40);
          return q;
        })(),
      ),
    );
    assert.equal(toHex(err), toHex(want));
  });
});

// ---- NDP ----------------------------------------------------------------------------------------

function ndp(s: Partial<Ip6Spec>, body: readonly number[]): Uint8Array {
  return icmp6({ hl: 255, ...s }, body);
}
function nsBody(target: string, opts: readonly number[] = []): number[] {
  return [135, 0, 0, 0, 0, 0, 0, 0, ...a6(target), ...opts];
}
function naBody(flags: number, target: string, opts: readonly number[] = []): number[] {
  return [136, 0, 0, 0, flags, 0, 0, 0, ...a6(target), ...opts];
}
const SLLA = [1, 1, ...mac(A_MAC)];
const TLLA = [2, 1, ...mac(R_MAC)];

function parsed(buf: Uint8Array, l3 = 0): NdpMsg & { code: number } {
  const m = new NdpMsg();
  const code = ndpParse(buf, walk(buf, l3), m);
  return Object.assign(m, { code });
}

describe("NDP parse: the kernel's messages", () => {
  it("multicast NS with a source link-layer address", () => {
    const m = parsed(K_NS_MCAST, L3);
    assert.deepEqual(
      [m.code, m.type, m.targetOff, m.dad, m.dstMulticast],
      [NDP_OK, 135, L3 + 48, false, true],
    );
    assert.equal(toHex(K_NS_MCAST.subarray(m.lladdrOff, m.lladdrOff + 6)), toHex(mac(A_MAC)));
  });

  it("solicited NA with R, S, O and a target link-layer address", () => {
    const m = parsed(K_NA_SOLICITED, L3);
    assert.equal(m.code, NDP_OK);
    assert.equal(m.flags, NDP_NA_ROUTER | NDP_NA_SOLICITED | NDP_NA_OVERRIDE);
    assert.equal(toHex(K_NA_SOLICITED.subarray(m.lladdrOff, m.lladdrOff + 6)), toHex(mac(R_MAC)));
  });

  it("DAD probe: from ::, to the solicited-node group, a nonce option skipped", () => {
    const m = parsed(K_DAD_NS, L3);
    assert.deepEqual([m.code, m.dad, m.lladdrOff], [NDP_OK, true, -1]);
  });

  it("unicast NS and its answer without options", () => {
    const ns = parsed(K_NS_UNICAST, L3);
    assert.deepEqual([ns.code, ns.dstMulticast, ns.dad], [NDP_OK, false, false]);
    const na = parsed(K_NA_UNICAST, L3);
    assert.deepEqual([na.code, na.flags, na.lladdrOff], [NDP_OK, NDP_NA_SOLICITED, -1]);
  });

  it("router solicitation, MLD, echo and UDP are not NS/NA", () => {
    for (const f of [K_RS, K_MLD_REPORT, K_ECHO_REQUEST, K_UDP_AT_B])
      assert.equal(parsed(f, L3).code, NDP_OTHER);
  });
});

describe("NDP validation (RFC 4861 §7.1.1, §7.1.2, RFC 6980)", () => {
  const mcastNs = { src: SRC, dst: "ff02::1:ff00:1" };
  const rows: ReadonlyArray<readonly [string, Uint8Array, number]> = [
    ["a good NS", ndp(mcastNs, nsBody("2001:db8:1::1", SLLA)), NDP_OK],
    ["hop limit 254", ndp({ ...mcastNs, hl: 254 }, nsBody("2001:db8:1::1", SLLA)), NDP_ERR_HOPLIMIT],
    ["code 1", ndp(mcastNs, [135, 1, ...nsBody("2001:db8:1::1").slice(2)]), NDP_ERR_CODE],
    ["20 bytes", ndp(mcastNs, nsBody("2001:db8:1::1").slice(0, 20)), NDP_ERR_TRUNC],
    [
      "a wrong checksum",
      (() => {
        const p = ndp(mcastNs, nsBody("2001:db8:1::1", SLLA));
        p[43] ^= 1;
        return p;
      })(),
      NDP_ERR_CSUM,
    ],
    ["a multicast target", ndp(mcastNs, nsBody("ff02::1")), NDP_ERR_TARGET],
    [
      "DAD not to a solicited-node group",
      ndp({ src: "::", dst: "ff02::1" }, nsBody("2001:db8:1::1")),
      NDP_ERR_DAD_DST,
    ],
    [
      "DAD with a source link-layer address",
      ndp({ src: "::", dst: "ff02::1:ff00:1" }, nsBody("2001:db8:1::1", SLLA)),
      NDP_ERR_DAD_LLADDR,
    ],
    [
      "an option of length 0",
      ndp(mcastNs, nsBody("2001:db8:1::1", [1, 0, 0, 0, 0, 0, 0, 0])),
      NDP_ERR_OPTION,
    ],
    [
      "an option running past the message",
      ndp(mcastNs, nsBody("2001:db8:1::1", [1, 2, 0, 0, 0, 0, 0, 0])),
      NDP_ERR_OPTION,
    ],
    ["half an option header", ndp(mcastNs, nsBody("2001:db8:1::1", [1])), NDP_ERR_OPTION],
    [
      "a 16-byte link-layer address option",
      ndp(mcastNs, nsBody("2001:db8:1::1", [1, 2, ...Array(14).fill(1)])),
      NDP_ERR_LLADDR,
    ],
    [
      "a bad duplicate after a good option is ignored",
      ndp(mcastNs, nsBody("2001:db8:1::1", [...SLLA, 1, 2, ...Array(14).fill(1)])),
      NDP_OK,
    ],
    [
      "an unknown option is skipped",
      ndp(mcastNs, nsBody("2001:db8:1::1", [99, 1, 0, 0, 0, 0, 0, 0, ...SLLA])),
      NDP_OK,
    ],
    [
      "a target link-layer option in an NS is ignored",
      ndp(mcastNs, nsBody("2001:db8:1::1", [2, 2, ...Array(14).fill(1)])),
      NDP_OK,
    ],
    [
      "a solicited NA to a multicast group",
      ndp({ dst: "ff02::1" }, naBody(NDP_NA_SOLICITED, SRC, TLLA)),
      NDP_ERR_SOLICITED_MCAST,
    ],
    ["an unsolicited NA to all nodes", ndp({ dst: "ff02::1" }, naBody(NDP_NA_OVERRIDE, SRC, TLLA)), NDP_OK],
    [
      "an NA with a 16-byte target link-layer option",
      ndp({}, naBody(NDP_NA_SOLICITED, SRC, [2, 2, ...Array(14).fill(1)])),
      NDP_ERR_LLADDR,
    ],
    [
      "an NS in a first fragment",
      (() => {
        const body = checksummed(
          Uint8Array.from(nsBody("2001:db8:1::1")),
          a6(SRC),
          a6("ff02::1:ff00:1"),
          58,
          2,
        );
        return ip6({ ...mcastNs, nh: 44, hl: 255 }, frag(58, 0, true, 1), body);
      })(),
      NDP_ERR_FRAG,
    ],
  ];
  for (const [name, pkt, code] of rows) {
    it(`${name} → ${NDP_RESULT_NAMES[code]}`, () => {
      assert.equal(parsed(pkt).code, code);
    });
  }
});

describe("NDP builders reproduce the kernel's packets", () => {
  it("writeNdp: the kernel's multicast NS", () => {
    const out = new Uint8Array(100);
    const target = a6("2001:db8:1::1");
    const group = new Uint8Array(16);
    ndpSolicitedNode(target, 0, group, 0);
    const n = writeNdp(out, 0, 135, 0, a6(SRC), 0, group, 0, target, 0, mac(A_MAC));
    assert.equal(toHex(out.subarray(0, n)), toHex(K_NS_MCAST.subarray(L3)));
  });

  it("writeNdp: a DAD probe never carries a source link-layer address", () => {
    const out = new Uint8Array(100);
    const n = writeNdp(
      out,
      0,
      135,
      0,
      a6("::"),
      0,
      a6("ff02::1:ff00:bb"),
      0,
      a6("2001:db8:2::bb"),
      0,
      mac(A_MAC),
    );
    assert.equal(
      toHex(out.subarray(0, n)),
      toHex(ndp({ src: "::", dst: "ff02::1:ff00:bb" }, nsBody("2001:db8:2::bb"))),
    );
  });

  it("ndpAnswerNs: a multicast NS gets S, O, R (forwarding) and the target link-layer address", () => {
    const out = new Uint8Array(100);
    const w = walk(K_NS_MCAST, L3);
    const m = new NdpMsg();
    assert.equal(ndpParse(K_NS_MCAST, w, m), NDP_OK);
    const n = ndpAnswerNs(out, 0, K_NS_MCAST, w, m, mac(R_MAC), true);
    assert.equal(toHex(out.subarray(0, n)), toHex(K_NA_SOLICITED.subarray(L3)));
  });

  it("ndpAnswerNs: a unicast NS (reachability probe) gets S only, no option, in place", () => {
    const buf = K_NS_UNICAST.slice();
    const w = walk(buf, L3);
    const m = new NdpMsg();
    assert.equal(ndpParse(buf, w, m), NDP_OK);
    const n = ndpAnswerNs(buf, L3, buf, w, m, mac("02:00:00:00:00:0c"), false);
    assert.equal(toHex(buf.subarray(L3, L3 + n)), toHex(K_NA_UNICAST.subarray(L3)));
  });

  it("ndpAnswerNs: a DAD probe for our address is answered to all nodes, O set, S clear", () => {
    const w = walk(K_DAD_NS, L3);
    const m = new NdpMsg();
    assert.equal(ndpParse(K_DAD_NS, w, m), NDP_OK);
    const out = new Uint8Array(100);
    const n = ndpAnswerNs(out, 0, K_DAD_NS, w, m, mac(R_MAC), false);
    const want = ndp(
      { src: "2001:db8:2::bb", dst: "ff02::1" },
      naBody(NDP_NA_OVERRIDE, "2001:db8:2::bb", TLLA),
    );
    assert.equal(toHex(out.subarray(0, n)), toHex(want));
    assert.equal(
      ndpAnswerNs(out, 0, K_NA_UNICAST, walk(K_NA_UNICAST, L3), parsed(K_NA_UNICAST, L3), mac(R_MAC), false),
      0,
    );
  });

  it("writeUnsolicitedNa: the kernel's unsolicited advertisements, frame for frame (keepalived's recipe)", () => {
    const out = new Uint8Array(UNSOLICITED_NA_FRAME_LEN);
    assert.equal(writeUnsolicitedNa(out, 0, mac("02:00:00:00:00:0c"), a6(SRC), 0, false), 86);
    assert.equal(toHex(out), toHex(K_UNSOL_NA));
    writeUnsolicitedNa(out, 0, mac("02:00:00:00:00:0b"), a6("2001:db8:2::bb"), 0, false);
    assert.equal(toHex(out), toHex(K_UNSOL_NA_DAD));
    writeUnsolicitedNa(out, 0, mac("02:00:00:00:00:0b"), a6("2001:db8:2::bb"), 0, true);
    assert.equal(out[L3 + 44], NDP_NA_ROUTER | NDP_NA_OVERRIDE);
    assert.equal(writeUnsolicitedNa(new Uint8Array(85), 0, mac(R_MAC), a6(SRC), 0, false), 0);
  });

  it("writeNdp: an NA without a link-layer address, and what it builds parses back (property)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }).filter((a) => a[0] !== 0xff),
        fc.uint8Array({ minLength: 6, maxLength: 6 }),
        fc.constantFrom(0, NDP_NA_SOLICITED, NDP_NA_SOLICITED | NDP_NA_OVERRIDE, NDP_NA_ROUTER),
        fc.boolean(),
        (target, hw, flags, withMac) => {
          const out = new Uint8Array(80);
          const n = writeNdp(out, 0, 136, flags, target, 0, a6(SRC), 0, target, 0, withMac ? hw : null);
          assert.equal(n, withMac ? 72 : 64);
          const m = parsed(out.subarray(0, n));
          assert.equal(m.code, NDP_OK);
          assert.equal(m.flags, flags);
          assert.equal(toHex(out.subarray(m.targetOff, m.targetOff + 16)), toHex(target));
          if (withMac) assert.equal(toHex(out.subarray(m.lladdrOff, m.lladdrOff + 6)), toHex(hw));
          else assert.equal(m.lladdrOff, -1);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("solicited-node groups and multicast MACs", () => {
  const rows: ReadonlyArray<readonly [string, string, string]> = [
    ["2001:db8::abcd:1234:5678", "ff0200000000000000000001ff345678", "3333ff345678"],
    ["2001:db8:1::1", "ff0200000000000000000001ff000001", "3333ff000001"],
    ["fe80::ff:fe00:a", "ff0200000000000000000001ff00000a", "3333ff00000a"],
  ];
  for (const [addr, group, hw] of rows) {
    it(`${addr} → ${group} / ${hw}`, () => {
      const g = new Uint8Array(18);
      ndpSolicitedNode(a6(addr), 0, g, 2);
      assert.equal(toHex(g.subarray(2)), group);
      assert.ok(ipv6IsSolicitedNode(g, 2));
      const m = new Uint8Array(6);
      ipv6MulticastMac(g, 2, m, 0);
      assert.equal(toHex(m), hw);
    });
  }
  it("all nodes: ff02::1 and 33:33:00:00:00:01; it is not a solicited-node group", () => {
    const m = new Uint8Array(6);
    ipv6MulticastMac(ALL_NODES, 0, m, 0);
    assert.equal(toHex(m), toHex(ALL_NODES_MAC));
    assert.equal(toHex(ALL_NODES), "ff020000000000000000000000000001");
    assert.equal(ipv6IsSolicitedNode(ALL_NODES, 0), false);
    assert.equal(ipv6IsSolicitedNode(a6("ff02::1:fe00:1"), 0), false);
  });
});

// ---- malformed input: a reason code, never a throw ------------------------------------------------

/** Every decoder over buf[l3..end): each answers with one of its own codes. */
function decodeAll(buf: Uint8Array, l3: number, end: number): void {
  const w = new Ipv6Walk();
  const code = ipv6Walk(buf, l3, end, w);
  assert.ok(IP6_RESULT_NAMES[code] !== undefined, `walk code ${code}`);
  assert.ok(IP6_RESULT_NAMES[ipv6WalkQuoted(buf, l3, end, new Ipv6Walk())] !== undefined);
  if (code !== IP6_OK) return;
  assert.ok(w.l4Off <= w.l3End && w.l3End <= end);
  const i = new Icmpv6Inner();
  assert.ok(ICMPV6_INNER_NAMES[icmpv6Inner(buf, w, i)] !== undefined);
  const m = new NdpMsg();
  assert.ok(NDP_RESULT_NAMES[ndpParse(buf, w, m)] !== undefined);
  icmpv6ErrorAllowed(buf, w, 1, 4);
  ipv6L4CheckOffset(buf, w);
  const out = new Uint8Array(1400);
  buildIcmpv6EchoReply(out, 0, buf, w, buf, l3 + IP6_DADDR, 64);
  if (m.type === 135) ndpAnswerNs(out, 0, buf, w, m, mac(R_MAC), false);
}

describe("malformed input", () => {
  const valid: Uint8Array[] = [
    ...KERNEL_FRAMES.map(([, f]) => f.subarray(L3)),
    ...WALKS.filter((r) => r.want.code === IP6_OK).map((r) => r.pkt),
  ];

  it("every truncation of every valid packet decodes to a reason code, never a throw", () => {
    for (const p of valid) {
      for (let cut = 0; cut <= p.length; cut++) {
        decodeAll(p.subarray(0, cut), 0, cut);
        decodeAll(p, 0, cut);
      }
    }
  });

  it("random bytes and random extension-header chains never throw (property)", () => {
    const nh = fc.constantFrom(0, 6, 17, 43, 44, 50, 51, 58, 59, 60, 135, 255);
    const extHdr = fc
      .tuple(nh, fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 0xffff }))
      .map(([n, len, fo]) =>
        n === 44
          ? frag(17, fo & 0xfff8, (fo & 1) === 1, fo)
          : n === 51
            ? ah(n, 12 + 4 * len)
            : opts(n, 8 * (len + 1)),
      );
    const chain = fc
      .tuple(
        nh,
        fc.array(extHdr, { maxLength: 12 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.integer({ min: -8, max: 8 }),
      )
      .map(([first, hdrs, tail, skew]) => {
        const body = cat(...hdrs, tail);
        return ip6({ nh: first, plen: Math.max(0, body.length + skew) }, body);
      });
    const mutated = fc
      .tuple(chain, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }))
      .map(([p, edits]) => {
        const q = p.slice();
        for (const [at, v] of edits) q[at % q.length] = v;
        return q;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), chain, mutated), fc.nat(8), (p, l3) => {
        const buf = cat(Array(l3).fill(0x60), p);
        decodeAll(buf, l3, buf.length);
        decodeAll(buf, l3, buf.length + 10);
      }),
      { numRuns: 3000 },
    );
  });
});
