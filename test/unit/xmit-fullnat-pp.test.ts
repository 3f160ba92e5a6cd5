// FULLNAT with the PROXY protocol (`--proxy-protocol v1|v2`, DPVS's proxy_proto_insert): the
// client's first data segment reaches the real server with the header in front of its payload,
// later client segments shifted by the header's length, the real server's ACK and SACK numbers
// shifted back; no TOA. IPv4↔IPv4, IPv6↔IPv6 and NAT64 (IPv6 client, IPv4 server: the header is
// the IPv6 form). Every output frame is decoded and its checksums verified by the test decoders;
// the expected headers are built here byte by byte, not by the production writer.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { makeOffloadWord, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4 } from "../../src/core/packet/vnet.js";
import { Director, decodeFrame, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { Director6, decode6, L2_6_FROM_ROUTER, MAC6 } from "../support/frames6.js";
import {
  ACK,
  asPartial,
  bytes,
  concat,
  FIN,
  icmpErrorFrame,
  ip,
  mac,
  PSH,
  SYN,
  tcpFrame,
} from "../support/packet-builder.js";
import { a6, icmp6ErrorFrame, tcp6Frame } from "../support/packet6.js";

const SIG = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
const u16 = (v: number): number[] => [v >> 8, v & 255];
const quad = (s: string): number[] => s.split(".").map(Number);

function v2Tcp4(src: string, sport: number, dst: string, dport: number): Uint8Array {
  return Uint8Array.of(...SIG, 0x21, 0x11, 0, 12, ...quad(src), ...quad(dst), ...u16(sport), ...u16(dport));
}
function v2Tcp6(src: string, sport: number, dst: string, dport: number): Uint8Array {
  return Uint8Array.of(...SIG, 0x21, 0x21, 0, 36, ...a6(src), ...a6(dst), ...u16(sport), ...u16(dport));
}

const ISN = 0xfffffff0; // the sequence space wraps during the test: serial arithmetic is needed
const add = (a: number, b: number): number => (a + b) >>> 0;

interface Out {
  ifindex: number;
  seq: number;
  ack: number;
  flags: number;
  payload: Uint8Array;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  options: { kind: number }[];
}

/** Decodes an IPv4 frame (checksums verified by frames.ts). */
function out4(ifindex: number, frame: Uint8Array): Out {
  const d = decodeFrame(frame);
  const i = d.ip;
  assert.ok(i?.tcp);
  const t = i.tcp;
  return {
    ifindex,
    seq: t.seq,
    ack: t.ack,
    flags: t.flags,
    payload: t.payload,
    src: i.src,
    dst: i.dst,
    sport: t.sport,
    dport: t.dport,
    options: t.options,
  };
}

/** Decodes an IPv6 frame (checksums verified by frames6.ts). */
function out6(ifindex: number, frame: Uint8Array): Out {
  const d = decode6(frame.subarray(14));
  assert.ok(d.tcp);
  return {
    ifindex,
    seq: d.tcp.seq,
    ack: d.tcp.ack,
    flags: d.tcp.flags,
    payload: d.tcp.payload,
    src: d.src,
    dst: d.dst,
    sport: d.sport,
    dport: d.dport,
    options: [],
  };
}

/** A SACK option (kind 5) with one block, NOP-padded to 12 bytes. */
function sack(l: number, r: number): Uint8Array {
  const b = new Uint8Array(12);
  b[0] = 1;
  b[1] = 1;
  b[2] = 5;
  b[3] = 10;
  new DataView(b.buffer).setUint32(4, l);
  new DataView(b.buffer).setUint32(8, r);
  return b;
}
function sackOf(frame: Uint8Array, v6: boolean): [number, number] {
  const l4 = v6 ? 14 + 40 : 14 + (frame[14] & 15) * 4;
  const dv = new DataView(frame.buffer, frame.byteOffset);
  const hlen = (frame[l4 + 12] >> 4) * 4;
  for (let p = l4 + 20; p < l4 + hlen; ) {
    if (frame[p] === 1) {
      p++;
      continue;
    }
    if (frame[p] === 5) return [dv.getUint32(p + 2), dv.getUint32(p + 6)];
    p += frame[p + 1];
  }
  assert.fail("no SACK option");
}

/** The sequence number of the TCP segment an ICMP/ICMPv6 error (as the client gets it) quotes. */
function quotedSeq(frame: Uint8Array): number {
  const dv = new DataView(frame.buffer, frame.byteOffset);
  const v6 = dv.getUint16(12) === 0x86dd;
  const q = v6 ? 14 + 40 + 8 : 14 + (frame[14] & 15) * 4 + 8;
  const ql4 = v6 ? q + 40 : q + (frame[q] & 15) * 4;
  return dv.getUint32(ql4 + 4);
}

/** One family's plumbing: how a client and the real server send, and how outputs decode. */
interface Side {
  d: { input(ifindex: number, frame: Uint8Array): { out: { ifindex: number; frame: Uint8Array }[] } };
  client(flags: number, seq: number, ack: number, payload?: Uint8Array, opts?: Uint8Array): Uint8Array;
  server(lport: number, flags: number, seq: number, ack: number, opts?: Uint8Array): Uint8Array;
  /** How the outputs toward the real server and toward the client decode. */
  toRs: (ifindex: number, frame: Uint8Array) => Out;
  toClient: (ifindex: number, frame: Uint8Array) => Out;
  rsV6: boolean;
  /** The real server's side reports an error about the datagram `quoted` (it sent toward the RS). */
  rsError: (quoted: Uint8Array) => Uint8Array;
  expectHeader: (ver: "v1" | "v2", lport: number) => Uint8Array;
}

const CPORT = 40000;

function side4(ver: string, mtu1 = 1500): Side {
  const d = new Director({ mtu1 });
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr --proxy-protocol ${ver}`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 --fullnat`);
  return {
    d,
    client: (flags, seq, ack, payload, options) =>
      tcpFrame(
        L2_FROM_ROUTER,
        { src: ip(IP.client1), dst: ip(IP.vip) },
        { sport: CPORT, dport: 80, flags, seq, ack, payload, options },
      ),
    server: (lport, flags, seq, ack, options) =>
      tcpFrame(
        l2FromLan(MAC.rs1),
        { src: ip(IP.rs1), dst: ip(IP.lip) },
        { sport: 8080, dport: lport, flags, seq, ack, options },
      ),
    toRs: out4,
    toClient: out4,
    rsV6: false,
    rsError: (q) =>
      icmpErrorFrame(l2FromLan(MAC.rs1), { src: ip(IP.rs1), dst: ip(IP.lip) }, 3, 4, 1400, q, 28),
    expectHeader: (v) =>
      v === "v2"
        ? v2Tcp4(IP.client1, CPORT, IP.vip, 80)
        : bytes(`PROXY TCP4 ${IP.client1} ${IP.vip} ${CPORT} 80\r\n`),
  };
}

const VIP6 = "2001:db8::100";
const CLIENT6 = "2001:db8:ff::10";
const RS6 = "2001:db8:1::11";
const LIP6 = "2001:db8:1::100";
const RS4 = "198.18.1.11";
const LIP4 = "198.18.1.100";

function side6(ver: string, nat64: boolean, mtu1 = 1500): Side {
  const d = new Director6({ mtu1 });
  if (nat64) d.engine.neigh.confirm(2, ip(RS4), mac(MAC6.rs1), d.now);
  d.ipvsadm(`-A -t [${VIP6}]:80 -s rr --proxy-protocol ${ver}`);
  d.ipvsadm(`-a -t [${VIP6}]:80 -r ${nat64 ? `${RS4}:8080` : `[${RS6}]:8080`} --fullnat`);
  d.ipvsadm(`-P -t [${VIP6}]:80 -z ${nat64 ? LIP4 : LIP6}`);
  const fromRs = { dmac: mac(MAC6.dir1), smac: mac(MAC6.rs1) };
  return {
    d,
    client: (flags, seq, ack, payload, options) =>
      tcp6Frame(
        L2_6_FROM_ROUTER,
        { src: CLIENT6, dst: VIP6 },
        { sport: CPORT, dport: 80, flags, seq, ack, payload, options },
      ),
    server: (lport, flags, seq, ack, options) =>
      nat64
        ? tcpFrame(
            fromRs,
            { src: ip(RS4), dst: ip(LIP4) },
            { sport: 8080, dport: lport, flags, seq, ack, options },
          )
        : tcp6Frame(fromRs, { src: RS6, dst: LIP6 }, { sport: 8080, dport: lport, flags, seq, ack, options }),
    toRs: nat64 ? out4 : out6,
    toClient: out6,
    rsV6: !nat64,
    rsError: (q) =>
      nat64
        ? icmpErrorFrame(fromRs, { src: ip(RS4), dst: ip(LIP4) }, 3, 4, 1400, q, 28)
        : icmp6ErrorFrame(fromRs, { src: RS6, dst: LIP6 }, 2, 0, 1400, q, 40 + 28),
    expectHeader: (v) =>
      v === "v2" ? v2Tcp6(CLIENT6, CPORT, VIP6, 80) : bytes(`PROXY TCP6 ${CLIENT6} ${VIP6} ${CPORT} 80\r\n`),
  };
}

function only(s: Side, ifindex: number, frame: Uint8Array): { ifindex: number; frame: Uint8Array }[] {
  return s.d.input(ifindex, frame).out;
}
function one(s: Side, ifindex: number, frame: Uint8Array): { ifindex: number; frame: Uint8Array } {
  const o = only(s, ifindex, frame);
  assert.equal(o.length, 1, "one frame out");
  return o[0];
}

const cases: { name: string; make: (ver: string, mtu1?: number) => Side }[] = [
  { name: "IPv4", make: (v, m) => side4(v, m) },
  { name: "IPv6", make: (v, m) => side6(v, false, m) },
  { name: "NAT64", make: (v, m) => side6(v, true, m) },
];

for (const c of cases) {
  for (const ver of ["v2", "v1"] as const) {
    describe(`FULLNAT ${c.name} --proxy-protocol ${ver}`, () => {
      it("header before the first data, later segments shifted, ACK/SACK shifted back, retransmission re-inserts", () => {
        const s = c.make(ver);
        const syn = one(s, 1, s.client(SYN, ISN, 0));
        const o = s.toRs(syn.ifindex, syn.frame);
        assert.equal(o.seq, ISN, "SYN seq untouched");
        assert.equal(
          o.options.find((x) => x.kind === 254),
          undefined,
          "no TOA on the SYN of a PP service",
        );
        const lport = o.sport;
        const hdr = s.expectHeader(ver, lport);
        const L = hdr.length;
        const isn1 = add(ISN, 1);
        const srvIsn = 7000;
        const synAck = s.toClient(1, one(s, 2, s.server(lport, SYN | ACK, srvIsn, isn1)).frame);
        assert.equal(synAck.ack, isn1, "SYN-ACK's ack (before the header) unchanged");
        // The handshake ACK: no data, no header, no TOA.
        const hs = s.toRs(2, one(s, 1, s.client(ACK, isn1, srvIsn + 1)).frame);
        assert.equal(hs.seq, isn1);
        assert.equal(hs.payload.length, 0);
        assert.equal(
          hs.options.find((x) => x.kind === 254),
          undefined,
          "no TOA on the handshake ACK",
        );
        // The first data segment: the header, then the client's bytes, at the client's seq.
        const req = bytes("GET / HTTP/1.0\r\n");
        const first = s.toRs(2, one(s, 1, s.client(PSH | ACK, isn1, srvIsn + 1, req)).frame);
        assert.equal(first.seq, isn1);
        assert.deepEqual(first.payload, concat(hdr, req));
        // The next segment: shifted by the header's length (the sequence space wraps here).
        const more = bytes("Host: x\r\n\r\n");
        const n2 = add(isn1, req.length);
        const lastToRs = one(s, 1, s.client(PSH | ACK, n2, srvIsn + 1, more)).frame;
        const second = s.toRs(2, lastToRs);
        assert.equal(second.seq, add(n2, L));
        assert.deepEqual(second.payload, more);
        // An ICMP error about it from the real server's side: the client gets its own seq quoted.
        const err = one(s, 2, s.rsError(lastToRs.subarray(14)));
        assert.equal(quotedSeq(err.frame), n2, "the quoted seq goes back");
        if (c.name === "IPv4")
          assert.equal(decodeFrame(err.frame).ip?.icmp?.type, 3, "ICMP checksum verified");
        else assert.equal(decode6(err.frame.subarray(14)).icmp?.type, 2, "ICMPv6 checksum verified");
        // The real server's ACKs: inside the header → the client's first byte; past it → back by L.
        const backs: [number, number, string][] = [
          [add(isn1, L >> 1), isn1, "partial ACK inside the header"],
          [add(isn1, L), isn1, "ACK of the header alone"],
        ];
        for (const [rsAck, want, what] of backs) {
          const r = s.toClient(1, one(s, 2, s.server(lport, ACK, srvIsn + 1, rsAck)).frame);
          assert.equal(r.ack, want, what);
        }
        // A SACK block (the second segment arrived, the first did not): both edges back by L.
        const sk = one(
          s,
          2,
          s.server(lport, ACK, srvIsn + 1, add(isn1, L), sack(add(n2, L), add(add(n2, L), more.length))),
        );
        assert.equal(s.toClient(1, sk.frame).ack, isn1);
        assert.deepEqual(
          sackOf(sk.frame, c.name !== "IPv4"),
          [n2, add(n2, more.length)],
          "SACK edges shifted back",
        );
        // The client retransmits its first segment: the header goes in again, the same.
        const again = s.toRs(2, one(s, 1, s.client(PSH | ACK, isn1, srvIsn + 1, req)).frame);
        assert.equal(again.seq, isn1);
        assert.deepEqual(again.payload, concat(hdr, req));
        // Acknowledged past the first byte: from now on every number is shifted without comparing.
        assert.equal(s.toClient(1, one(s, 2, s.server(lport, ACK, srvIsn + 1, add(n2, L))).frame).ack, n2);
        const all = add(n2, more.length);
        assert.equal(s.toClient(1, one(s, 2, s.server(lport, ACK, srvIsn + 1, add(all, L))).frame).ack, all);
        const fin = s.toRs(2, one(s, 1, s.client(FIN | ACK, all, srvIsn + 1)).frame);
        assert.equal(fin.seq, add(all, L), "FIN shifted");
      });

      it("TCP Fast Open: the SYN's data is cut off (sent again after the handshake, it gets the header)", () => {
        const s = c.make(ver);
        const req = bytes("GET / HTTP/1.0\r\n\r\n");
        const syn = s.toRs(2, one(s, 1, s.client(SYN, 500, 0, req)).frame);
        assert.equal(syn.payload.length, 0, "no data on the SYN");
        assert.equal(syn.seq, 500);
        one(s, 2, s.server(syn.sport, SYN | ACK, 9000, 501));
        const first = s.toRs(2, one(s, 1, s.client(PSH | ACK, 501, 9001, req)).frame);
        assert.deepEqual(first.payload, concat(s.expectHeader(ver, syn.sport), req));
      });

      it("a first segment that would outgrow the path leaves as two: the header, then the data", () => {
        const mtu = c.name === "IPv4" ? 576 : 1280;
        const s = c.make(ver, mtu);
        const syn = one(s, 1, s.client(SYN, 100, 0));
        const lport = s.toRs(syn.ifindex, syn.frame).sport;
        const hdr = s.expectHeader(ver, lport);
        one(s, 2, s.server(lport, SYN | ACK, 9000, 101));
        one(s, 1, s.client(ACK, 101, 9001));
        // Exactly the path's MTU once forwarded (NAT64: the IPv4 datagram is 20 bytes shorter).
        const l3 = c.name === "IPv4" ? 20 + 20 : c.name === "IPv6" ? 40 + 20 : 20 + 20;
        const data = new Uint8Array(mtu - l3).map((_, i) => 0x41 + (i % 26));
        const outs = only(s, 1, s.client(PSH | ACK | FIN, 101, 9001, data));
        assert.equal(outs.length, 2, "two segments");
        const h = s.toRs(outs[0].ifindex, outs[0].frame);
        const rest = s.toRs(outs[1].ifindex, outs[1].frame);
        assert.equal(h.seq, 101);
        assert.deepEqual(h.payload, hdr);
        assert.equal(h.flags & FIN, 0, "the header segment carries no FIN");
        assert.equal(rest.seq, 101 + hdr.length);
        assert.deepEqual(rest.payload, data);
        assert.equal(rest.flags & FIN, FIN, "the data segment keeps its FIN");
      });
    });
  }
}

describe("FULLNAT PP with GSO aggregates", () => {
  it("the first data aggregate is cut (only its first segment gets the header); a later one stays whole, shifted", () => {
    const s = side4("v2");
    const mss = 1000;
    const off = makeOffloadWord(VNET_GSO_TCPV4, mss, VNET_F_NEEDS_CSUM);
    const d = s.d as Director;
    const agg = (frame: Uint8Array): { ifindex: number; frame: Uint8Array }[] => {
      const buf = new Uint8Array(frame.length + 64);
      buf.set(frame);
      d.out = [];
      d.engine.input(1, buf, frame.length, d.now, off);
      const o = d.out;
      d.out = [];
      return o;
    };
    const syn = one(s, 1, s.client(SYN, 100, 0));
    const lport = out4(syn.ifindex, syn.frame).sport;
    one(s, 2, s.server(lport, SYN | ACK, 9000, 101));
    one(s, 1, s.client(ACK, 101, 9001));
    const data = new Uint8Array(3 * mss).map((_, i) => i & 0xff);
    const firstAgg = agg(asPartial(s.client(PSH | ACK, 101, 9001, data)));
    assert.equal(firstAgg.length, 3, "cut in three segments");
    const segs = firstAgg.map((o) => out4(o.ifindex, o.frame));
    assert.deepEqual(segs[0].payload, concat(v2Tcp4(IP.client1, CPORT, IP.vip, 80), data.subarray(0, mss)));
    assert.deepEqual(
      segs.map((x) => x.seq),
      [101, 101 + 28 + mss, 101 + 28 + 2 * mss],
    );
    const later = agg(asPartial(s.client(PSH | ACK, 101 + 3 * mss, 9001, data)));
    assert.equal(later.length, 1, "a later aggregate leaves whole");
    const dv = new DataView(later[0].frame.buffer, later[0].frame.byteOffset);
    assert.equal(dv.getUint32(14 + 20 + 4), 101 + 3 * mss + 28, "its seq shifted");
  });
});

describe("--proxy-protocol in the control plane", () => {
  const apply = (...lines: string[]): void => {
    const d = new Director();
    for (const l of lines) d.ipvsadm(l);
  };
  it("refuses a UDP service and unknown words, with what is wrong", () => {
    assert.throws(
      () => apply("-A -u 198.18.0.100:53 --proxy-protocol v2"),
      /proxy protocol is for TCP services/,
    );
    assert.throws(
      () => apply("-A -t 198.18.0.100:80 --proxy-protocol v3"),
      /illegal proxy-protocol specified: v3/,
    );
    assert.throws(
      () => apply("-a -t 198.18.0.100:80 -r 198.18.1.11 --proxy-protocol v1"),
      /Illegal 'proxy-protocol'/,
    );
    apply("-A -t 198.18.0.100:80 --proxy-protocol V2", "-A -u 198.18.0.100:53 --proxy-protocol disable");
  });
});

describe("explain of a PP service", () => {
  it("names the PROXY protocol header where TOA would be, for a new and an existing connection", async () => {
    const { explainPacket } = await import("../../src/core/explain.js");
    const s = side4("v1");
    const d = s.d as Director;
    const q = { proto: 6, vaddr: ip(IP.vip), vport: 80, caddr: ip(IP.client1), cport: CPORT };
    assert.match(
      explainPacket(d.engine, q, d.now).forward?.rewrite ?? "",
      /client address in a PROXY protocol v1 header/,
    );
    one(s, 1, s.client(SYN, 100, 0));
    const x = explainPacket(d.engine, q, d.now);
    assert.equal(x.verdict, "existing");
    assert.match(x.forward?.rewrite ?? "", /client address in a PROXY protocol v1 header/);
    const plain = new Director();
    plain.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
    plain.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 --fullnat`);
    assert.match(
      explainPacket(plain.engine, q, plain.now).forward?.rewrite ?? "",
      /client address in a TOA option/,
    );
  });
});

describe("FULLNAT PP: a client's own PROXY header (DPVS's tcp_in_add_proxy_proto)", () => {
  const own4 = "PROXY TCP4 192.0.2.1 198.51.100.2 1111 2222\r\n";
  const ownV2 = Uint8Array.of(
    ...SIG,
    0x21,
    0x11,
    0,
    12,
    ...quad("192.0.2.1"),
    ...quad("198.51.100.2"),
    ...u16(1111),
    ...u16(2222),
  );
  /** Handshake, then the first data (the client's header + req) and the next segment; what the RS got. */
  function run(s: Side, first: Uint8Array, req: Uint8Array) {
    const syn = one(s, 1, s.client(SYN, 100, 0));
    const lport = s.toRs(syn.ifindex, syn.frame).sport;
    one(s, 2, s.server(lport, SYN | ACK, 9000, 101));
    one(s, 1, s.client(ACK, 101, 9001));
    const data = concat(first, req);
    const a = s.toRs(2, one(s, 1, s.client(PSH | ACK, 101, 9001, data)).frame);
    const more = bytes("more");
    const b = s.toRs(2, one(s, 1, s.client(PSH | ACK, 101 + data.length, 9001, more)).frame);
    return { a, b, lport, dataLen: data.length };
  }
  const req = bytes("GET / HTTP/1.0\r\n\r\n");

  it("secure v2: the client's own header is replaced by the director's; numbers move by L - O both ways", () => {
    const s = side4("v2");
    const { a, b, lport, dataLen } = run(s, bytes(own4), req);
    const mine = v2Tcp4(IP.client1, CPORT, IP.vip, 80);
    assert.deepEqual(
      a.payload,
      concat(mine, req),
      "the client's header is gone, the director's in its place",
    );
    const delta = mine.length - own4.length;
    assert.equal(b.seq, 101 + dataLen + delta);
    const ack = s.toClient(1, one(s, 2, s.server(lport, ACK, 9001, 101 + mine.length + 5)).frame).ack;
    assert.equal(ack, 101 + own4.length + 5, "the client's byte after its own header");
  });

  it("v2-insecure: a v2 header of the client passes as it is, nothing shifted", () => {
    const s = side4("v2-insecure");
    const { a, b, dataLen } = run(s, ownV2, req);
    assert.deepEqual(a.payload, concat(ownV2, req));
    assert.equal(b.seq, 101 + dataLen);
  });

  it("v2-insecure: a v1 header of the client is translated to v2 (its addresses, not the connection's)", () => {
    const s = side4("v2-insecure");
    const { a, b, dataLen } = run(s, bytes(own4), req);
    assert.deepEqual(a.payload, concat(ownV2, req));
    assert.equal(b.seq, 101 + dataLen + ownV2.length - own4.length);
  });

  it("v1-insecure over IPv6: a client's v2 TCP6 header becomes the v1 line; none: the director's", () => {
    const s = side6("v1-insecure", false);
    const h6 = Uint8Array.of(
      ...SIG,
      0x21,
      0x21,
      0,
      36,
      ...a6("2001:db8::1"),
      ...a6("2001:db8::2"),
      0,
      7,
      0,
      8,
    );
    const { a } = run(s, h6, req);
    assert.deepEqual(a.payload, concat(bytes("PROXY TCP6 2001:db8::1 2001:db8::2 7 8\r\n"), req));
    const t = side6("v1-insecure", false);
    const r = run(t, new Uint8Array(0), req);
    assert.deepEqual(
      r.a.payload,
      concat(t.expectHeader("v1", 0), req),
      "no header of its own: the director's",
    );
  });

  it("data past the first byte before the first data is dropped (counted), then goes once it is decided", () => {
    const s = side4("v2");
    const d = s.d as Director;
    const syn = one(s, 1, s.client(SYN, 100, 0));
    const lport = s.toRs(syn.ifindex, syn.frame).sport;
    one(s, 2, s.server(lport, SYN | ACK, 9000, 101));
    assert.equal(only(s, 1, s.client(PSH | ACK, 101 + req.length, 9001, bytes("more"))).length, 0);
    assert.equal(d.engine.counters.dropTable().pp_early, 1);
    one(s, 1, s.client(PSH | ACK, 101, 9001, req));
    const b = s.toRs(2, one(s, 1, s.client(PSH | ACK, 101 + req.length, 9001, bytes("more"))).frame);
    assert.equal(b.seq, 101 + req.length + 28);
  });

  it("replacing a shorter header with a longer one past the MTU: the director's alone, then the data without the client's", () => {
    const s = side6("v2", false, 1280);
    const syn = one(s, 1, s.client(SYN, 100, 0));
    const lport = s.toRs(syn.ifindex, syn.frame).sport;
    one(s, 2, s.server(lport, SYN | ACK, 9000, 101));
    one(s, 1, s.client(ACK, 101, 9001));
    const own = bytes(own4);
    const body = new Uint8Array(1280 - 60 - own.length).fill(0x61);
    const outs = only(s, 1, s.client(PSH | ACK, 101, 9001, concat(own, body)));
    assert.equal(outs.length, 2);
    const h = out6(outs[0].ifindex, outs[0].frame);
    const rest = out6(outs[1].ifindex, outs[1].frame);
    assert.deepEqual(h.payload, v2Tcp6(CLIENT6, CPORT, VIP6, 80));
    assert.equal(h.seq, 101);
    assert.deepEqual(rest.payload, body);
    assert.equal(rest.seq, 101 + 52);
  });
});
