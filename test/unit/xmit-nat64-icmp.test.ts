// NAT64's ICMP errors, MSS and fragments (issue 14; docs/ipv6.md "NAT64"): packet in → packet out.
//
// - An ICMPv4 error from the real server's side about a NAT64 request (LIP:lport → RIP:rport)
//   reaches the client as the ICMPv6 error RFC 7915 §4.2 maps it to, from the VIP, quoting the
//   packet the client sent ([client]:cport → [VIP]:vport); the other way, an ICMPv6 error from the
//   client's side about a reply reaches the real server as ICMPv4 from the LIP (§5.2).
// - The real server's SYN-ACK has its MSS lowered by 20 (DPVS's tcp_out_adjust_mss).
// - Fragments of a NAT64 connection are dropped (nat64_fragment); a reply without DF over 1280
//   bytes of IPv6 is cut in IPv6 fragments (RFC 7915 §4.1); one with DF over the client link's MTU
//   gets frag-needed.
//
// Every output is decoded and verified by the test helpers (frames.ts, frames6.ts: IP header,
// ICMP/ICMPv6 with its pseudo-header, quoted headers); the quoted transport checksums and the
// reassembled fragments are summed here from the bytes with packet-builder's inetChecksum.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { R } from "../../src/core/counters.js";
import {
  nat64FragNeededMtu,
  nat64MapIcmp4,
  nat64MapIcmp6,
  nat64MappedInfo,
  nat64PtbMtu,
} from "../../src/core/packet/nat64.js";
import { decodeFrame, flat } from "../support/frames.js";
import { Director6, flat6, IP6, L2_6_FROM_ROUTER, MAC6 } from "../support/frames6.js";
import {
  ACK,
  bytes,
  concat,
  ethFrame,
  get16,
  get32,
  icmpErrorFrame,
  inetChecksum,
  ip,
  ipv4Datagram,
  mac,
  PROTO_TCP,
  PROTO_UDP,
  pseudoHeader,
  put16,
  SYN,
  tcpFrame,
  tcpSegment,
  udpDatagram,
  udpFrame,
} from "../support/packet-builder.js";
import {
  a6,
  ETH_P_IPV6,
  fragmentHdr,
  icmp6ErrorFrame,
  ipv6WithExt,
  NH_TCP,
  NH_UDP,
  pseudoHeader6,
  tcp6Frame,
  tcp6Segment,
  udp6Datagram,
  udp6Frame,
} from "../support/packet6.js";

const VIP = IP6.vip;
const CLIENT = IP6.client1;
const RS1 = "198.18.1.11";
const RS2 = "198.18.1.12";
const LIP = "198.18.1.100";
const ROUTER4 = "198.18.1.254";
const FROM_RS1 = { dmac: mac(MAC6.dir1), smac: mac(MAC6.rs1) };
const FROM_RS2 = { dmac: mac(MAC6.dir1), smac: mac(MAC6.rs2) };

interface Setup {
  d: Director6;
  /** The SYN and the UDP query as they left toward the real servers (IPv4 datagrams). */
  syn4: Uint8Array;
  query4: Uint8Array;
  /** The local ports of the TCP and UDP entries. */
  tport: number;
  uport: number;
}

/** A NAT64 director (tcp [VIP]:80 → RS1:8080, udp [VIP]:53 → RS2:5353) with a TCP and a UDP entry. */
function setup(o: { mtu0?: number; mtu1?: number } = {}): Setup {
  const d = new Director6(o);
  d.engine.neigh.confirm(2, ip(RS1), mac(MAC6.rs1), d.now);
  d.engine.neigh.confirm(2, ip(RS2), mac(MAC6.rs2), d.now);
  d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
  d.ipvsadm(`-a -t [${VIP}]:80 -r ${RS1}:8080 --fullnat`);
  d.ipvsadm(`-P -t [${VIP}]:80 -z ${LIP}`);
  d.ipvsadm(`-A -u [${VIP}]:53 -s rr`);
  d.ipvsadm(`-a -u [${VIP}]:53 -r ${RS2}:5353 --fullnat`);
  d.ipvsadm(`-P -u [${VIP}]:53 -z ${LIP}`);
  const mss = new Uint8Array([2, 4, 0x05, 0xa0]); // 1440
  const s = d.input(
    1,
    tcp6Frame(
      L2_6_FROM_ROUTER,
      { src: CLIENT, dst: VIP, hl: 64 },
      { sport: 40000, dport: 80, flags: SYN, seq: 100, options: mss },
    ),
  );
  assert.equal(s.out.length, 1);
  const q = d.input(
    1,
    udp6Frame(
      L2_6_FROM_ROUTER,
      { src: CLIENT, dst: VIP, hl: 64 },
      { sport: 5000, dport: 53, payload: bytes("q") },
    ),
  );
  assert.equal(q.out.length, 1);
  const syn4 = s.out[0].frame.subarray(14);
  const query4 = q.out[0].frame.subarray(14);
  return { d, syn4, query4, tport: get16(syn4, 20), uport: get16(query4, 20) };
}

/** The drop counters that moved, by name. */
function drops(d: Director6): Record<string, number> {
  return d.engine.counters.dropTable();
}

/** The quoted transport bytes of an ICMPv6 error frame (no extension headers in the quote). */
function quoted6L4(frame: Uint8Array): Uint8Array {
  return frame.subarray(14 + 40 + 8 + 40);
}

// ---------------------------------------------------------------- ICMPv4 → ICMPv6

interface Row4 {
  desc: string;
  type: number;
  code: number;
  rest?: number;
  /** Expected ICMPv6 type, code and the word after the checksum; null: dropped with `reason`. */
  want: [number, number, number] | null;
  reason?: string;
  udp?: boolean;
}

const rows4: Row4[] = [
  { desc: "net unreachable", type: 3, code: 0, want: [1, 0, 0] },
  { desc: "host unreachable", type: 3, code: 1, want: [1, 0, 0] },
  {
    desc: "protocol unreachable → parameter problem at Next Header",
    type: 3,
    code: 2,
    want: [4, 1, 6 << 24],
  },
  { desc: "port unreachable", type: 3, code: 3, want: [1, 4, 0], udp: true },
  { desc: "frag-needed MTU 1400 → packet too big 1420", type: 3, code: 4, rest: 1400, want: [2, 0, 1420] },
  {
    desc: "frag-needed MTU 1000 → packet too big 1280 (never below)",
    type: 3,
    code: 4,
    rest: 1000,
    want: [2, 0, 1280],
  },
  {
    desc: "frag-needed MTU 0 (no RFC 1191) → plateau below 60 bytes: 1280",
    type: 3,
    code: 4,
    rest: 0,
    want: [2, 0, 1280],
  },
  {
    desc: "frag-needed MTU 1500 → packet too big 1500 (the IPv6 link)",
    type: 3,
    code: 4,
    rest: 1500,
    want: [2, 0, 1500],
  },
  { desc: "source route failed", type: 3, code: 5, want: [1, 0, 0] },
  { desc: "destination network unknown", type: 3, code: 6, want: [1, 0, 0] },
  { desc: "destination host unknown", type: 3, code: 7, want: [1, 0, 0] },
  { desc: "source host isolated", type: 3, code: 8, want: [1, 0, 0] },
  { desc: "network administratively prohibited", type: 3, code: 9, want: [1, 1, 0] },
  { desc: "host administratively prohibited", type: 3, code: 10, want: [1, 1, 0] },
  { desc: "network unreachable for TOS", type: 3, code: 11, want: [1, 0, 0] },
  { desc: "host unreachable for TOS", type: 3, code: 12, want: [1, 0, 0] },
  { desc: "communication administratively prohibited", type: 3, code: 13, want: [1, 1, 0] },
  {
    desc: "host precedence violation: dropped",
    type: 3,
    code: 14,
    want: null,
    reason: "nat64_icmp_untranslatable",
  },
  { desc: "precedence cutoff", type: 3, code: 15, want: [1, 1, 0] },
  { desc: "unknown code 16: dropped", type: 3, code: 16, want: null, reason: "nat64_icmp_untranslatable" },
  { desc: "TTL exceeded in transit", type: 11, code: 0, want: [3, 0, 0] },
  { desc: "fragment reassembly time exceeded", type: 11, code: 1, want: [3, 1, 0] },
  {
    desc: "time exceeded code 2: dropped",
    type: 11,
    code: 2,
    want: null,
    reason: "nat64_icmp_untranslatable",
  },
  {
    desc: "source quench (obsolete): dropped",
    type: 4,
    code: 0,
    want: null,
    reason: "nat64_icmp_untranslatable",
  },
];

describe("NAT64: ICMPv4 errors from the real server's side → ICMPv6 to the client", () => {
  for (const r of rows4) {
    it(`${r.type}/${r.code} ${r.desc}`, () => {
      const s = setup();
      const orig = r.udp === true ? s.query4 : s.syn4;
      const e = icmpErrorFrame(
        r.udp === true ? FROM_RS2 : FROM_RS1,
        { src: ip(r.udp === true ? RS2 : RS1), dst: ip(LIP), ttl: 64, tos: 0xc0 },
        r.type,
        r.code,
        r.rest ?? 0,
        orig,
      );
      const out = s.d.input(2, e).out;
      if (r.want === null) {
        assert.equal(out.length, 0);
        assert.deepEqual(drops(s.d), { [r.reason as string]: 1 });
        return;
      }
      assert.equal(out.length, 1);
      assert.equal(out[0].ifindex, 1);
      const f = flat6(out[0].frame);
      const [type, code, rest] = r.want;
      assert.deepEqual(
        {
          dmac: f.dmac,
          src: f.src,
          dst: f.dst,
          hl: f.hl,
          tc: f.tc,
          type: f.icmpType,
          code: f.icmpCode,
          rest: f.icmpRest,
          qsrc: f.qsrc,
          qdst: f.qdst,
          qsport: f.qsport,
          qdport: f.qdport,
          qhl: f.qhl,
        },
        {
          dmac: MAC6.router,
          src: VIP,
          dst: CLIENT,
          hl: 63,
          tc: 0xc0,
          type,
          code,
          rest,
          qsrc: CLIENT,
          qdst: VIP,
          qsport: r.udp === true ? 5000 : 40000,
          qdport: r.udp === true ? 53 : 80,
          qhl: 63,
        },
      );
      // The quoted IPv6 header: payload length from the IPv4 Total Length, the protocol.
      const q3 = out[0].frame.subarray(14 + 48);
      assert.equal(get16(q3, 4), orig.length - 20, "quoted payload length");
      assert.equal(q3[6], r.udp === true ? NH_UDP : NH_TCP);
      assert.deepEqual(drops(s.d), {});
    });
  }

  it("a whole quoted TCP segment: its checksum is that of the client's [CIP]:40000 → [VIP]:80", () => {
    const s = setup();
    const e = icmpErrorFrame(FROM_RS1, { src: ip(RS1), dst: ip(LIP), ttl: 64 }, 11, 0, 0, s.syn4, 1000);
    const out = s.d.input(2, e).out;
    assert.equal(out.length, 1);
    const l4 = quoted6L4(out[0].frame);
    assert.equal(l4.length, s.syn4.length - 20, "the whole segment (with the TOA option it got)");
    assert.equal(get16(l4, 0), 40000);
    assert.equal(get16(l4, 2), 80);
    assert.equal(inetChecksum(pseudoHeader6(a6(CLIENT), a6(VIP), NH_TCP, l4.length), l4), 0);
  });

  it("a whole quoted UDP datagram: its checksum is that of the client's query", () => {
    const s = setup();
    const e = icmpErrorFrame(FROM_RS2, { src: ip(RS2), dst: ip(LIP), ttl: 64 }, 3, 3, 0, s.query4, 1000);
    const out = s.d.input(2, e).out;
    assert.equal(out.length, 1);
    const l4 = quoted6L4(out[0].frame);
    assert.deepEqual(l4, udp6Datagram(CLIENT, VIP, { sport: 5000, dport: 53, payload: bytes("q") }));
  });

  it("from a router on the LIP → RIP path, not the real server: the same error from the VIP", () => {
    const s = setup();
    const e = icmpErrorFrame(
      { dmac: mac(MAC6.dir1), smac: mac(MAC6.gw1) },
      { src: ip(ROUTER4), dst: ip(LIP), ttl: 255 },
      3,
      4,
      1400,
      s.syn4,
    );
    const f = flat6(s.d.input(2, e).out[0].frame);
    assert.deepEqual([f.src, f.dst, f.hl, f.icmpType, f.icmpRest], [VIP, CLIENT, 254, 2, 1420]);
  });

  it("packet too big takes the smaller of the IPv4 link toward the real server + 20 and the IPv6 link", () => {
    const s = setup({ mtu0: 1400, mtu1: 1300 });
    const e = icmpErrorFrame(FROM_RS1, { src: ip(RS1), dst: ip(LIP), ttl: 64 }, 3, 4, 1480, s.syn4);
    assert.equal(flat6(s.d.input(2, e).out[0].frame).icmpRest, 1320);
    const s2 = setup({ mtu0: 1350 });
    const e2 = icmpErrorFrame(FROM_RS1, { src: ip(RS1), dst: ip(LIP), ttl: 64 }, 3, 4, 1400, s2.syn4);
    assert.equal(flat6(s2.d.input(2, e2).out[0].frame).icmpRest, 1350);
  });

  it("a long quote is cut so that the ICMPv6 error is 1280 bytes", () => {
    const s = setup();
    const big = ipv4Datagram({
      src: ip(LIP),
      dst: ip(RS1),
      proto: PROTO_TCP,
      df: true,
      ttl: 63,
      payload: tcpSegment(ip(LIP), ip(RS1), {
        sport: s.tport,
        dport: 8080,
        flags: ACK,
        payload: new Uint8Array(1400).fill(7),
      }),
    });
    const e = icmpErrorFrame(FROM_RS1, { src: ip(RS1), dst: ip(LIP), ttl: 64 }, 3, 4, 1400, big, 1440);
    const out = s.d.input(2, e).out;
    assert.equal(out[0].frame.length - 14, 1280);
    assert.equal(get16(out[0].frame.subarray(14 + 48), 4), 1420, "quoted payload length: the datagram's");
  });

  it("an RFC 4884 extension is left out: only the original datagram is quoted", () => {
    const s = setup();
    const orig = concat(s.syn4, new Uint8Array(128 - s.syn4.length)); // padded to 128 bytes
    const ext = new Uint8Array(16).fill(0xee);
    const f4 = icmpErrorFrame(
      FROM_RS1,
      { src: ip(RS1), dst: ip(LIP), ttl: 64 },
      11,
      0,
      32 << 16,
      concat(orig, ext),
      2000,
    );
    const out = s.d.input(2, f4).out;
    assert.equal(out.length, 1);
    // The syn's own Total Length bounds the quote first: the padding and the extension both go.
    assert.equal(quoted6L4(out[0].frame).length, s.syn4.length - 20);
    assert.equal(get32(out[0].frame, 14 + 44), 0, "no length attribute");
  });

  it("a corrupted ICMPv4 error is not made valid: dropped, nat64_icmp_csum", () => {
    const s = setup();
    const e = icmpErrorFrame(FROM_RS1, { src: ip(RS1), dst: ip(LIP), ttl: 64 }, 3, 3, 0, s.syn4);
    e[14 + 20 + 8 + 20 + 7] ^= 0x55; // a quoted byte; the IP header stays valid
    assert.equal(s.d.input(2, e).out.length, 0);
    assert.deepEqual(drops(s.d), { nat64_icmp_csum: 1 });
  });

  it("parameter problem and redirect are not relayed for any connection (IPVS's ip_vs_out_icmp): passed", () => {
    const s = setup();
    for (const type of [5, 12]) {
      const e = icmpErrorFrame(FROM_RS1, { src: ip(RS1), dst: ip(LIP), ttl: 64 }, type, 0, 0, s.syn4);
      const r = s.d.input(2, e);
      assert.equal(r.out.length, 0);
    }
    assert.deepEqual(drops(s.d), {});
  });
});

// ---------------------------------------------------------------- ICMPv6 → ICMPv4

interface Row6 {
  desc: string;
  type: number;
  code: number;
  rest?: number;
  want: [number, number, number] | null;
  reason?: string;
}

const rows6: Row6[] = [
  { desc: "no route", type: 1, code: 0, want: [3, 1, 0] },
  { desc: "administratively prohibited", type: 1, code: 1, want: [3, 10, 0] },
  { desc: "beyond scope", type: 1, code: 2, want: [3, 1, 0] },
  { desc: "address unreachable", type: 1, code: 3, want: [3, 1, 0] },
  { desc: "port unreachable", type: 1, code: 4, want: [3, 3, 0] },
  {
    desc: "source address failed policy: dropped",
    type: 1,
    code: 5,
    want: null,
    reason: "nat64_icmp_untranslatable",
  },
  { desc: "reject route: dropped", type: 1, code: 6, want: null, reason: "nat64_icmp_untranslatable" },
  { desc: "packet too big 1400 → frag-needed 1380", type: 2, code: 0, rest: 1400, want: [3, 4, 1380] },
  { desc: "packet too big 1280 → frag-needed 1260", type: 2, code: 0, rest: 1280, want: [3, 4, 1260] },
  {
    desc: "packet too big 1000 (below IPv6's minimum) → frag-needed 1260",
    type: 2,
    code: 0,
    rest: 1000,
    want: [3, 4, 1260],
  },
  { desc: "packet too big 9000 → the IPv4 link's 1500", type: 2, code: 0, rest: 9000, want: [3, 4, 1480] },
  { desc: "hop limit exceeded", type: 3, code: 0, want: [11, 0, 0] },
  { desc: "fragment reassembly time exceeded", type: 3, code: 1, want: [11, 1, 0] },
];

/** The SYN-ACK the client got, as quoted by an error from its side. */
function reply6(hl = 60): Uint8Array {
  return ipv6WithExt(
    { src: VIP, dst: CLIENT, hl },
    [],
    NH_TCP,
    tcp6Segment(VIP, CLIENT, { sport: 80, dport: 40000, flags: SYN | ACK, seq: 5000, ack: 101 }),
  );
}

describe("NAT64: ICMPv6 errors from the client's side → ICMPv4 to the real server", () => {
  for (const r of rows6) {
    it(`${r.type}/${r.code} ${r.desc}`, () => {
      const s = setup();
      const e = icmp6ErrorFrame(
        L2_6_FROM_ROUTER,
        { src: CLIENT, dst: VIP, hl: 64, tc: 0x20 },
        r.type,
        r.code,
        r.rest ?? 0,
        reply6(),
      );
      const out = s.d.input(1, e).out;
      if (r.want === null) {
        assert.equal(out.length, 0);
        assert.deepEqual(drops(s.d), { [r.reason as string]: 1 });
        return;
      }
      assert.equal(out.length, 1);
      assert.equal(out[0].ifindex, 2);
      const d = decodeFrame(out[0].frame);
      const v = d.ip;
      assert.ok(v?.icmp?.inner);
      const q = v.icmp.inner;
      // The frag-needed MTU: min(advertised − 20, the IPv4 link 1500, the IPv6 link 1500 − 20).
      const [type, code, rest] = r.want;
      assert.deepEqual(
        {
          dmac: d.dmac,
          src: v.src,
          dst: v.dst,
          ttl: v.ttl,
          tos: v.tos,
          df: v.df,
          id: v.id,
          type: v.icmp.type,
          code: v.icmp.code,
          rest: v.icmp.rest,
          qsrc: q.src,
          qdst: q.dst,
          qsport: q.sport,
          qdport: q.dport,
          qttl: q.ttl,
          qproto: q.proto,
          qlen: q.totalLen,
          qdf: q.df,
        },
        {
          dmac: MAC6.rs1,
          src: LIP,
          dst: RS1,
          ttl: 63,
          tos: 0x20,
          df: false,
          id: 0,
          type,
          code,
          rest,
          qsrc: RS1,
          qdst: LIP,
          qsport: 8080,
          qdport: s.tport,
          qttl: 60,
          qproto: PROTO_TCP,
          qlen: 40,
          qdf: true,
        },
      );
      // The quoted segment, whole here: its checksum is the real server's RIP:8080 → LIP:lport.
      const l4 = v.icmp.data.subarray(20);
      assert.equal(l4.length, 20);
      assert.equal(inetChecksum(pseudoHeader(ip(RS1), ip(LIP), PROTO_TCP, l4.length), l4), 0);
      assert.deepEqual(drops(s.d), {});
    });
  }

  it("the quoted packet's extension headers go; a quoted first fragment keeps its ID and MF", () => {
    const s = setup();
    const seg = tcp6Segment(VIP, CLIENT, {
      sport: 80,
      dport: 40000,
      flags: ACK,
      payload: new Uint8Array(64),
    });
    const quoted = ipv6WithExt(
      { src: VIP, dst: CLIENT, hl: 60 },
      [fragmentHdr(0, true, 0xabcd1234)],
      NH_TCP,
      seg,
    );
    const e = icmp6ErrorFrame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 64 }, 3, 1, 0, quoted);
    const v = decodeFrame(s.d.input(1, e).out[0].frame).ip;
    const q = v?.icmp?.inner;
    assert.ok(q);
    assert.deepEqual(
      [q.id, q.mf, q.df, q.fragOff, q.totalLen, q.sport, q.dport],
      [0x1234, true, false, 0, 20 + seg.length, 8080, s.tport],
    );
  });

  it("a long quote is cut so that the ICMPv4 error is 576 bytes", () => {
    const s = setup();
    const seg = tcp6Segment(VIP, CLIENT, {
      sport: 80,
      dport: 40000,
      flags: ACK,
      payload: new Uint8Array(1000),
    });
    const quoted = ipv6WithExt({ src: VIP, dst: CLIENT, hl: 60 }, [], NH_TCP, seg);
    const e = icmp6ErrorFrame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 64 }, 2, 0, 1400, quoted);
    const v = decodeFrame(s.d.input(1, e).out[0].frame).ip;
    assert.equal(v?.totalLen, 576);
    assert.equal(v?.icmp?.inner?.totalLen, 20 + seg.length, "quoted Total Length: the datagram's");
  });

  it("a corrupted ICMPv6 error is not made valid: dropped, nat64_icmp_csum", () => {
    const s = setup();
    const e = icmp6ErrorFrame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 64 }, 1, 4, 0, reply6());
    e[e.length - 1] ^= 0x0f;
    assert.equal(s.d.input(1, e).out.length, 0);
    assert.deepEqual(drops(s.d), { nat64_icmp_csum: 1 });
  });

  it("a quoted non-first fragment names no connection: passed to the kernel", () => {
    const s = setup();
    const quoted = ipv6WithExt(
      { src: VIP, dst: CLIENT, hl: 60 },
      [fragmentHdr(1232, false, 7)],
      NH_TCP,
      new Uint8Array(40),
    );
    const e = icmp6ErrorFrame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 64 }, 3, 1, 0, quoted);
    assert.equal(s.d.input(1, e).out.length, 0);
    assert.deepEqual(drops(s.d), {});
  });
});

// ---------------------------------------------------------------- the mapping tables

describe("NAT64: RFC 7915's tables as functions", () => {
  it("ICMPv4 parameter problem (§4.2, Figure 3): codes 0 and 2 with their pointer, the rest dropped", () => {
    const want: [number, number][] = [
      [0, 0],
      [1, 1],
      [2, 4],
      [3, 4],
      [8, 7],
      [9, 6],
      [12, 8],
      [15, 8],
      [16, 24],
      [19, 24],
    ];
    for (const code of [0, 2])
      for (const [p4, p6] of want) {
        assert.equal(nat64MapIcmp4(12, code, p4), (4 << 8) | 0, `code ${code} pointer ${p4}`);
        assert.equal(nat64MappedInfo(), p6 << 24);
      }
    for (const p of [4, 5, 6, 7, 10, 11, 20, 200]) assert.equal(nat64MapIcmp4(12, 0, p), -1, `pointer ${p}`);
    assert.equal(nat64MapIcmp4(12, 1, 0), -1, "missing a required option");
    assert.equal(nat64MapIcmp4(12, 3, 0), -1);
    for (const t of [0, 4, 5, 8, 9, 10, 13, 14, 15, 16, 17, 18])
      assert.equal(nat64MapIcmp4(t, 0, 0), -1, `type ${t}`);
  });

  it("ICMPv6 parameter problem (§5.2, Figure 6): code 0 with its pointer, 1 → protocol unreachable", () => {
    const want: [number, number][] = [
      [0, 0],
      [1, 1],
      [4, 2],
      [5, 2],
      [6, 9],
      [7, 8],
      [8, 12],
      [23, 12],
      [24, 16],
      [39, 16],
    ];
    for (const [p6, p4] of want) {
      assert.equal(nat64MapIcmp6(4, 0, p6), 12 << 8, `pointer ${p6}`);
      assert.equal(nat64MappedInfo(), p4 << 24);
    }
    for (const p of [2, 3, 40, 1000]) assert.equal(nat64MapIcmp6(4, 0, p), -1, `pointer ${p}`);
    assert.equal(nat64MapIcmp6(4, 1, 0), (3 << 8) | 2);
    assert.equal(nat64MapIcmp6(4, 2, 0), -1, "unrecognized option");
    for (const t of [128, 129, 130, 133, 135, 137, 5, 100])
      assert.equal(nat64MapIcmp6(t, 0, 0), -1, `type ${t}`);
  });

  it("packet too big's MTU (§4.2) and frag-needed's (§5.2)", () => {
    // advertised, quoted Total Length, IPv6 link, IPv4 link → PTB MTU
    const ptb: [number, number, number, number, number][] = [
      [1400, 1500, 1500, 1500, 1420],
      [1400, 1500, 1400, 1500, 1400],
      [1400, 1500, 1500, 1300, 1320],
      [600, 1500, 1500, 1500, 1280],
      [0, 1500, 9000, 9000, 1512], // plateau 1492
      [0, 4000, 9000, 9000, 2022], // plateau 2002
      [0, 9000, 9000, 9000, 8186], // plateau 8166
      [0, 40, 9000, 9000, 1280],
      [9000, 9000, 0, 0, 9020], // no link known: the advertised + 20
    ];
    for (const [adv, tot, m6, m4, want] of ptb)
      assert.equal(nat64PtbMtu(adv, tot, m6, m4), want, `${adv} ${tot} ${m6} ${m4}`);
    // advertised, fragment header in the quote, IPv4 link, IPv6 link → frag-needed MTU
    const fn: [number, boolean, number, number, number][] = [
      [1400, false, 1500, 1500, 1380],
      [1400, true, 1500, 1500, 1372],
      [1500, false, 1400, 1500, 1400],
      [1500, false, 1500, 1450, 1430],
      [100, false, 1500, 1500, 1260],
      [100000, false, 0, 0, 65515],
    ];
    for (const [adv, frag, m4, m6, want] of fn)
      assert.equal(nat64FragNeededMtu(adv, frag, m4, m6), want, `${adv} ${frag} ${m4} ${m6}`);
  });
});

// ---------------------------------------------------------------- MSS

/** The MSS option of the TCP header at l4 in an IPv6 frame (no extension headers), or 0. */
function mssOf6(frame: Uint8Array): number {
  const l4 = frame.subarray(14 + 40);
  const hlen = (l4[12] >> 4) * 4;
  for (let o = 20; o < hlen; ) {
    if (l4[o] === 0) break;
    if (l4[o] === 1) {
      o++;
      continue;
    }
    if (l4[o] === 2) return get16(l4, o + 2);
    o += l4[o + 1];
  }
  return 0;
}

describe("NAT64: the SYN-ACK's MSS (DPVS's tcp_out_adjust_mss)", () => {
  function synAck(s: Setup, options?: Uint8Array): Uint8Array {
    const r = s.d.input(
      2,
      tcpFrame(
        FROM_RS1,
        { src: ip(RS1), dst: ip(LIP), ttl: 64, df: true },
        { sport: 8080, dport: s.tport, flags: SYN | ACK, seq: 5000, ack: 101, options },
      ),
    );
    assert.equal(r.out.length, 1);
    flat6(r.out[0].frame); // verifies the TCP checksum over the IPv6 pseudo-header
    return r.out[0].frame;
  }

  it("lowered by 20 toward the client (the IPv6 TOA option's room), the checksum fixed", () => {
    const s = setup();
    // MSS 1460, then NOP NOP SACK-permitted, then window scale at an odd offset: the MSS word is
    // at an even one here; the odd case is tcpSetMss's, tested with it.
    const opts = new Uint8Array([2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7]);
    assert.equal(mssOf6(synAck(s, opts)), 1440);
  });

  it("an MSS after a NOP (at an odd offset) too", () => {
    const s = setup();
    assert.equal(mssOf6(synAck(s, new Uint8Array([1, 2, 4, 0x05, 0x78, 1, 1, 1]))), 1380);
  });

  it("the SYN toward the real server keeps the client's MSS (DPVS does not touch it)", () => {
    const s = setup();
    const l4 = s.syn4.subarray(20);
    const hlen = (l4[12] >> 4) * 4;
    let mss = 0;
    for (let o = 20; o < hlen; ) {
      if (l4[o] === 1) {
        o++;
        continue;
      }
      if (l4[o] === 2) mss = get16(l4, o + 2);
      if (l4[o] === 0) break;
      o += l4[o + 1];
    }
    assert.equal(mss, 1440);
  });

  it("no MSS option, or one that would fall below 88: left alone; a plain ACK is not touched", () => {
    const s = setup();
    assert.equal(mssOf6(synAck(s)), 0);
    assert.equal(mssOf6(synAck(s, new Uint8Array([2, 4, 0, 100]))), 100);
    const r = s.d.input(
      2,
      tcpFrame(
        FROM_RS1,
        { src: ip(RS1), dst: ip(LIP), ttl: 64, df: true },
        {
          sport: 8080,
          dport: s.tport,
          flags: ACK,
          seq: 5001,
          ack: 101,
          options: new Uint8Array([2, 4, 5, 0xb4]),
        },
      ),
    );
    assert.equal(mssOf6(r.out[0].frame), 1460);
  });
});

// ---------------------------------------------------------------- fragments

function frame6(pkt: Uint8Array): Uint8Array {
  return ethFrame(L2_6_FROM_ROUTER.dmac, L2_6_FROM_ROUTER.smac, ETH_P_IPV6, pkt);
}

describe("NAT64: fragments", () => {
  it("an IPv6 first fragment from the client: dropped, nat64_fragment; a later one: fragment", () => {
    const s = setup();
    const seg = udp6Datagram(CLIENT, VIP, { sport: 5000, dport: 53, payload: new Uint8Array(100) });
    const first = ipv6WithExt(
      { src: CLIENT, dst: VIP, hl: 64 },
      [fragmentHdr(0, true, 9)],
      NH_UDP,
      seg.subarray(0, 48),
    );
    const later = ipv6WithExt(
      { src: CLIENT, dst: VIP, hl: 64 },
      [fragmentHdr(48, false, 9)],
      NH_UDP,
      seg.subarray(48),
    );
    assert.equal(s.d.input(1, frame6(first)).out.length, 0);
    assert.equal(s.d.input(1, frame6(later)).out.length, 0);
    assert.deepEqual(drops(s.d), { nat64_fragment: 1, fragment: 1 });
  });

  it("an IPv4 first fragment from the real server: dropped, nat64_fragment; a later one: fragment", () => {
    const s = setup();
    const dg = udpDatagram(ip(RS2), ip(LIP), { sport: 5353, dport: s.uport, payload: new Uint8Array(100) });
    const l2 = FROM_RS2;
    const first = ethFrame(
      l2.dmac,
      l2.smac,
      0x0800,
      ipv4Datagram({ src: ip(RS2), dst: ip(LIP), proto: PROTO_UDP, mf: true, payload: dg.subarray(0, 48) }),
    );
    const later = ethFrame(
      l2.dmac,
      l2.smac,
      0x0800,
      ipv4Datagram({ src: ip(RS2), dst: ip(LIP), proto: PROTO_UDP, fragOff: 6, payload: dg.subarray(48) }),
    );
    assert.equal(s.d.input(2, first).out.length, 0);
    assert.equal(s.d.input(2, later).out.length, 0);
    assert.deepEqual(drops(s.d), { nat64_fragment: 1, fragment: 1 });
  });

  it("a reply without DF that fits 1280 bytes of IPv6: one packet, no Fragment Header", () => {
    const s = setup();
    const r = s.d.input(
      2,
      udpFrame(
        FROM_RS2,
        { src: ip(RS2), dst: ip(LIP), ttl: 64, df: false, id: 77 },
        { sport: 5353, dport: s.uport, payload: new Uint8Array(1232) },
      ),
    );
    assert.equal(r.out.length, 1);
    const f = flat6(r.out[0].frame);
    assert.deepEqual([f.nh, f.plen, r.out[0].frame.length - 14], [NH_UDP, 1240, 1280]);
  });

  it("a reply without DF over 1280 bytes of IPv6: fragments of 1280 (RFC 7915 §4.1), reassembling to the datagram", () => {
    const s = setup();
    const payload = new Uint8Array(3000).map((_, i) => (i * 13) & 255);
    const r = s.d.input(
      2,
      udpFrame(
        FROM_RS2,
        { src: ip(RS2), dst: ip(LIP), ttl: 64, df: false, id: 0xbeef },
        { sport: 5353, dport: s.uport, payload },
      ),
    );
    assert.equal(r.out.length, 3);
    const parts: Uint8Array[] = [];
    let expectOff = 0;
    r.out.forEach((o, k) => {
      assert.equal(o.ifindex, 1);
      const p = o.frame.subarray(14);
      const f = flat6(o.frame);
      assert.deepEqual([f.src, f.dst, f.hl, f.nh], [VIP, CLIENT, 63, NH_UDP]);
      assert.equal(p[6], 44, "Fragment Header");
      const fh = p.subarray(40, 48);
      assert.equal(fh[0], NH_UDP);
      const offM = get16(fh, 2);
      assert.equal(offM & 0xfff8, expectOff, `fragment ${k} offset`);
      assert.equal(offM & 1, k < 2 ? 1 : 0, `fragment ${k} M`);
      assert.equal(get32(fh, 4), 0xbeef, "identification: the IPv4 ID");
      assert.ok(p.length <= 1280);
      if (k < 2) assert.equal(p.length, 1280);
      parts.push(p.subarray(48));
      expectOff += p.length - 48;
    });
    const dg = concat(...parts);
    assert.equal(dg.length, 8 + 3000);
    assert.equal(get16(dg, 0), 53);
    assert.equal(get16(dg, 2), 5000);
    assert.equal(inetChecksum(pseudoHeader6(a6(VIP), a6(CLIENT), NH_UDP, dg.length), dg), 0);
    assert.deepEqual(dg.subarray(8), payload);
  });

  it("a reply with DF over the client link's MTU: frag-needed to the real server with that MTU − 20", () => {
    const s = setup({ mtu0: 1400 });
    const big = tcpFrame(
      FROM_RS1,
      { src: ip(RS1), dst: ip(LIP), ttl: 64, df: true },
      { sport: 8080, dport: s.tport, flags: ACK, seq: 5001, ack: 101, payload: new Uint8Array(1341) },
    );
    const r = s.d.input(2, big);
    assert.equal(r.out.length, 1);
    const f = flat(decodeFrame(r.out[0].frame));
    assert.deepEqual([f.src, f.dst, f.icmpType, f.icmpCode, f.icmpRest], [LIP, RS1, 3, 4, 1380]);
    assert.deepEqual(drops(s.d), { frag_needed: 1 });
    const fits = tcpFrame(
      FROM_RS1,
      { src: ip(RS1), dst: ip(LIP), ttl: 64, df: true },
      { sport: 8080, dport: s.tport, flags: ACK, seq: 5001, ack: 101, payload: new Uint8Array(1340) },
    );
    const o = s.d.input(2, fits).out;
    assert.equal(o.length, 1);
    assert.equal(o[0].frame.length - 14, 1400);
  });
});

// ---------------------------------------------------------------- never throws

describe("NAT64: ICMP errors quoting nonsense", () => {
  it("random types, codes, truncations and bytes about the connections never throw; whatever leaves verifies", () => {
    const s = setup();
    // The packets the errors claim to quote, as the director's lookups need them (right addresses
    // and ports), followed by random bytes.
    const heads4 = [s.syn4.subarray(0, 24), s.query4.subarray(0, 24)];
    const heads6 = [reply6().subarray(0, 44), reply6().subarray(0, 40)];
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.nat(1),
        fc.nat(255),
        fc.nat(255),
        fc.nat(0xffffffff),
        fc.uint8Array({ maxLength: 1600 }),
        fc.nat(1700),
        fc.nat(255),
        (v6, which, type, code, rest, tail, cut, ttl) => {
          let frame: Uint8Array;
          let ifindex: number;
          if (v6) {
            const q = concat(heads6[which], tail);
            if (which === 0) q[4] = (q[4] + (tail[0] ?? 0)) & 255; // a payload length that lies
            frame = icmp6ErrorFrame(
              L2_6_FROM_ROUTER,
              { src: CLIENT, dst: VIP, hl: ttl },
              type & 0x7f,
              code,
              rest,
              q,
              cut,
            );
            ifindex = 1;
          } else {
            const q = concat(heads4[which], tail);
            if (which === 1) put16(q, 2, rest & 0xffff); // a Total Length that lies
            frame = icmpErrorFrame(FROM_RS1, { src: ip(RS1), dst: ip(LIP), ttl }, type, code, rest, q, cut);
            ifindex = 2;
          }
          const r = s.d.input(ifindex, frame);
          for (const o of r.out) {
            if (o.ifindex === 1) flat6(o.frame);
            else decodeFrame(o.frame);
          }
        },
      ),
      { numRuns: 3000, seed: 0x64 },
    );
    const c = s.d.engine.counters;
    assert.ok(c.drops[R.nat64_icmp_untranslatable] > 0, "some were untranslatable");
  });
});
