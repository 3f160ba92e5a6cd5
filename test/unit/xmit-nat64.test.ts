// NAT64 (DPVS's FULLNAT from an IPv6 VIP to IPv4 real servers, RFC 7915 header translation): the
// client's IPv6 packet leaves as IPv4 from the service's IPv4 local address to the real server,
// the real server's IPv4 reply leaves as IPv6 from the VIP to the client. Every output is decoded
// and verified from scratch: the IPv4 side by frames.ts (header, TCP and UDP checksums with the
// IPv4 pseudo-header), the IPv6 side by frames6.ts (TCP and UDP checksums with the IPv6 one).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  makeOffloadWord,
  VNET_F_NEEDS_CSUM,
  VNET_GSO_TCPV4,
  VNET_GSO_TCPV6,
} from "../../src/core/packet/vnet.js";
import { decodeFrame, flat } from "../support/frames.js";
import { Director6, flat6, IP6, L2_6_FROM_ROUTER, MAC6 } from "../support/frames6.js";
import {
  ACK,
  bytes,
  FIN,
  icmpErrorFrame,
  inetChecksum,
  ip,
  mac,
  PSH,
  pseudoHeader,
  put16,
  SYN,
  tcpFrame,
  udpFrame,
} from "../support/packet-builder.js";
import {
  a6,
  fragmentHdr,
  icmp6ErrorFrame,
  ipv6WithExt,
  NH_TCP,
  pseudoHeader6,
  tcp6Frame,
  tcp6Segment,
  udp6Frame,
} from "../support/packet6.js";

const VIP = "2001:db8::100";
const CLIENT = IP6.client1;
const RS1 = "198.18.1.11";
const RS2 = "198.18.1.12";
const LIP = "198.18.1.100";
const FROM_RS1 = { dmac: mac(MAC6.dir1), smac: mac(MAC6.rs1) };
const FROM_RS2 = { dmac: mac(MAC6.dir1), smac: mac(MAC6.rs2) };

function nat64Director(o: { mtu1?: number } = {}): Director6 {
  const d = new Director6(o);
  d.engine.neigh.confirm(2, ip(RS1), mac(MAC6.rs1), d.now);
  d.engine.neigh.confirm(2, ip(RS2), mac(MAC6.rs2), d.now);
  d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
  d.ipvsadm(`-a -t [${VIP}]:80 -r ${RS1}:8080 --fullnat`);
  d.ipvsadm(`-P -t [${VIP}]:80 -z ${LIP}`);
  d.ipvsadm(`-A -u [${VIP}]:53 -s rr`);
  d.ipvsadm(`-a -u [${VIP}]:53 -r ${RS2}:5353 --fullnat`);
  d.ipvsadm(`-P -u [${VIP}]:53 -z ${LIP}`);
  return d;
}

function assertFields(
  actual: Record<string, unknown>,
  expected: Record<string, unknown>,
  what: string,
): void {
  const diffs: string[] = [];
  for (const [k, v] of Object.entries(expected))
    if (actual[k] !== v)
      diffs.push(`  ${k}: expected ${JSON.stringify(v)}, got ${JSON.stringify(actual[k])}`);
  if (diffs.length > 0) assert.fail(`${what} differs:\n${diffs.join("\n")}`);
}

/** The IPv6 TOA option (kind 254, length 20: port, address) of a decoded IPv4 TCP segment, or null. */
function toa6Of(frame: Uint8Array): string | null {
  const t = decodeFrame(frame).ip?.tcp;
  assert.ok(t);
  const o = t.options.find((x) => x.kind === 254);
  if (o === undefined) return null;
  assert.equal(o.data.length, 18, "IPv6 TOA length 20");
  const port = (o.data[0] << 8) | o.data[1];
  const w: string[] = [];
  for (let k = 0; k < 8; k++) w.push(((o.data[2 + 2 * k] << 8) | o.data[3 + 2 * k]).toString(16));
  return `[${w.join(":")}]:${port}`;
}

/** The one frame an input produced, with the interface it left by. */
function one(d: Director6, ifindex: number, frame: Uint8Array): { ifindex: number; raw: Uint8Array } {
  const r = d.input(ifindex, frame);
  assert.equal(r.out.length, 1, `expected one output frame, got ${r.out.length} (verdict ${r.verdict})`);
  return { ifindex: r.out[0].ifindex, raw: r.out[0].frame };
}

interface Step {
  desc: string;
  from: "client" | "server";
  flags: number;
  seq: number;
  ack: number;
  payload?: string;
  /** The hop limit or TTL the packet comes with. */
  hl?: number;
  tc?: number;
  toa?: boolean;
  state: string;
}

const steps: Step[] = [
  { desc: "SYN", from: "client", flags: SYN, seq: 100, ack: 0, tc: 0x28, toa: true, state: "SYN_RECV" },
  { desc: "SYN/ACK", from: "server", flags: SYN | ACK, seq: 5000, ack: 101, tc: 0x10, state: "SYN_RECV" },
  { desc: "handshake ACK", from: "client", flags: ACK, seq: 101, ack: 5001, toa: true, state: "ESTABLISHED" },
  {
    desc: "request",
    from: "client",
    flags: PSH | ACK,
    seq: 101,
    ack: 5001,
    payload: "GET / HTTP/1.0\r\n\r\n",
    hl: 7,
    toa: false,
    state: "ESTABLISHED",
  },
  {
    desc: "response",
    from: "server",
    flags: PSH | ACK,
    seq: 5001,
    ack: 119,
    payload: "HTTP/1.0 200 OK\r\n\r\nhi",
    hl: 9,
    state: "ESTABLISHED",
  },
  {
    desc: "client FIN",
    from: "client",
    flags: FIN | ACK,
    seq: 119,
    ack: 5022,
    toa: false,
    state: "CLOSE_WAIT",
  },
  { desc: "server FIN", from: "server", flags: FIN | ACK, seq: 5022, ack: 120, state: "TIME_WAIT" },
];

describe("NAT64: FULLNAT from an IPv6 VIP to IPv4 real servers", () => {
  it("a TCP connection: IPv6 in → IPv4 to the RIP from the LIP, IPv4 reply → IPv6 from the VIP", () => {
    const d = nat64Director();
    let lport = 0;
    for (const s of steps) {
      const payload = s.payload === undefined ? undefined : bytes(s.payload);
      const tcp = { flags: s.flags, seq: s.seq, ack: s.ack, payload };
      const hl = s.hl ?? 64;
      if (s.from === "client") {
        const o = one(
          d,
          1,
          tcp6Frame(
            L2_6_FROM_ROUTER,
            { src: CLIENT, dst: VIP, hl, tc: s.tc ?? 0, flow: 0x12345 },
            { sport: 40000, dport: 80, ...tcp },
          ),
        );
        assert.equal(o.ifindex, 2, s.desc);
        const f = flat(decodeFrame(o.raw));
        if (lport === 0) lport = f.sport as number;
        assertFields(
          f,
          {
            dmac: MAC6.rs1,
            smac: MAC6.dir1,
            src: LIP,
            dst: RS1,
            sport: lport,
            dport: 8080,
            proto: 6,
            ttl: hl - 1,
            tos: s.tc ?? 0,
            df: true,
            seq: s.seq,
            ackno: s.ack,
            payload: s.payload ?? "",
          },
          s.desc,
        );
        assert.equal(decodeFrame(o.raw).ip?.id, 0, `${s.desc}: ID 0 with DF`);
        assert.equal(decodeFrame(o.raw).ip?.tcp?.flags, s.flags, s.desc);
        assert.equal(toa6Of(o.raw), s.toa ? "[2001:db8:ff:0:0:0:0:10]:40000" : null, `${s.desc}: TOA`);
        const tcpLen = 20 + (payload?.length ?? 0) + (s.toa ? 20 : 0);
        assert.equal(f.len, 20 + tcpLen, `${s.desc}: total length`);
      } else {
        const o = one(
          d,
          2,
          tcpFrame(
            FROM_RS1,
            { src: ip(RS1), dst: ip(LIP), ttl: hl, tos: s.tc ?? 0, df: true },
            { sport: 8080, dport: lport, ...tcp },
          ),
        );
        assert.equal(o.ifindex, 1, s.desc);
        const f = flat6(o.raw);
        assertFields(
          f,
          {
            dmac: MAC6.router,
            smac: MAC6.dir0,
            src: IP6.vip,
            dst: CLIENT,
            sport: 80,
            dport: 40000,
            hl: hl - 1,
            tc: s.tc ?? 0,
            flow: 0,
            seq: s.seq,
            ackno: s.ack,
            flags: s.flags,
            payload: s.payload ?? "",
            plen: 20 + (payload?.length ?? 0),
          },
          s.desc,
        );
      }
      const conns = d.engine.connections(d.now);
      assert.equal(conns.length, 1, s.desc);
      assert.equal(conns[0].state, s.state, s.desc);
    }
  });

  it("UDP both ways; an IPv4 reply without a checksum gets one computed for IPv6", () => {
    const d = nat64Director();
    const q = one(
      d,
      1,
      udp6Frame(
        L2_6_FROM_ROUTER,
        { src: CLIENT, dst: VIP, hl: 64 },
        { sport: 5000, dport: 53, payload: bytes("q") },
      ),
    );
    const qf = flat(decodeFrame(q.raw));
    assertFields(
      qf,
      { dmac: MAC6.rs2, src: LIP, dst: RS2, sport: qf.sport, dport: 5353, proto: 17, ttl: 63, payload: "q" },
      "query",
    );
    assert.notEqual(decodeFrame(q.raw).ip?.udp?.checksum, 0, "query keeps a checksum");
    const lport = qf.sport as number;
    for (const [desc, noCsum] of [
      ["answer", false],
      ["answer without checksum", true],
    ] as const) {
      const frame = udpFrame(
        FROM_RS2,
        { src: ip(RS2), dst: ip(LIP), ttl: 64 },
        { sport: 5353, dport: lport, payload: bytes("answer") },
      );
      if (noCsum) {
        frame[14 + 20 + 6] = 0;
        frame[14 + 20 + 7] = 0;
      }
      const a = one(d, 2, frame);
      assertFields(
        flat6(a.raw),
        { dmac: MAC6.router, src: IP6.vip, dst: CLIENT, sport: 53, dport: 5000, hl: 63, payload: "answer" },
        desc,
      );
    }
  });

  it("the connection's ends: an IPv6 client side, an IPv4 server side", () => {
    const d = nat64Director();
    one(
      d,
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 64 }, { sport: 40001, dport: 80, flags: SYN }),
    );
    const c = d.engine.connections(d.now)[0];
    assert.equal(c.caddr6, "2001:db8:ff::10");
    assert.equal(c.vaddr6, VIP);
  });

  it("hop limit 1 from the client: time exceeded, nothing forwarded", () => {
    const d = nat64Director();
    const r = d.input(
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 1 }, { sport: 40002, dport: 80, flags: SYN }),
    );
    assert.equal(r.out.length, 1);
    assert.equal(r.out[0].ifindex, 1);
    assert.equal(flat6(r.out[0].frame).icmpType, 3, "ICMPv6 time exceeded");
  });

  it("a request bigger than the IPv4 link + 20: packet too big with that MTU", () => {
    const d = nat64Director({ mtu1: 1300 });
    one(
      d,
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 64 }, { sport: 40003, dport: 80, flags: SYN }),
    );
    const big = bytes("x".repeat(1300 + 20 - 60 + 1));
    const r = d.input(
      1,
      tcp6Frame(
        L2_6_FROM_ROUTER,
        { src: CLIENT, dst: VIP, hl: 64 },
        { sport: 40003, dport: 80, flags: ACK, seq: 1, payload: big },
      ),
    );
    assert.equal(r.out.length, 1);
    const f = flat6(r.out[0].frame);
    assert.equal(f.icmpType, 2, "packet too big");
    assert.equal(f.icmpRest, 1320);
    const fits = bytes("x".repeat(1300 + 20 - 60));
    const o = one(
      d,
      1,
      tcp6Frame(
        L2_6_FROM_ROUTER,
        { src: CLIENT, dst: VIP, hl: 64 },
        { sport: 40003, dport: 80, flags: ACK, seq: 1, payload: fits },
      ),
    );
    assert.equal(flat(decodeFrame(o.raw)).len, 1300, "IPv4 datagram: the whole link");
    assert.equal(toa6Of(o.raw), null, "no room left for TOA on the handshake ACK");
  });

  it("an IPv6 fragment is not translated (dropped, nat64_fragment)", () => {
    const d = nat64Director();
    one(
      d,
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 64 }, { sport: 40004, dport: 80, flags: SYN }),
    );
    const seg = tcp6Segment(CLIENT, VIP, {
      sport: 40004,
      dport: 80,
      flags: ACK,
      seq: 1,
      payload: bytes("abcdefghijkl"),
    });
    // 32 bytes: a first fragment carries a multiple of 8.
    const pkt = ipv6WithExt({ src: CLIENT, dst: VIP, hl: 64 }, [fragmentHdr(0, true, 7)], NH_TCP, seg);
    const frame = new Uint8Array(14 + pkt.length);
    frame.set(L2_6_FROM_ROUTER.dmac, 0);
    frame.set(L2_6_FROM_ROUTER.smac, 6);
    frame[12] = 0x86;
    frame[13] = 0xdd;
    frame.set(pkt, 14);
    assert.equal(d.input(1, frame).out.length, 0);
    assert.deepEqual(d.engine.counters.dropTable(), { nat64_fragment: 1 });
  });

  it("ICMP errors about a NAT64 connection are translated both ways (xmit-nat64-icmp.test.ts has the tables)", () => {
    const d = nat64Director();
    const syn = one(
      d,
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 64 }, { sport: 40005, dport: 80, flags: SYN }),
    );
    // From the real server's side, about the request LIP → RIP: ICMPv6 to the client.
    const e4 = icmpErrorFrame(
      FROM_RS1,
      { src: ip(RS1), dst: ip(LIP), ttl: 64 },
      3,
      3,
      0,
      syn.raw.subarray(14),
    );
    const o4 = one(d, 2, e4);
    assert.equal(o4.ifindex, 1);
    assert.deepEqual([flat6(o4.raw).icmpType, flat6(o4.raw).icmpCode], [1, 4]);
    // From the client's side, about a reply VIP → CIP: ICMPv4 to the real server.
    const reply = tcp6Segment(VIP, CLIENT, { sport: 80, dport: 40005, flags: SYN | ACK });
    const quoted = ipv6WithExt({ src: VIP, dst: CLIENT, hl: 60 }, [], NH_TCP, reply);
    const e6 = icmp6ErrorFrame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 64 }, 1, 4, 0, quoted);
    const o6 = one(d, 1, e6);
    assert.equal(o6.ifindex, 2);
    const f = flat(decodeFrame(o6.raw));
    assert.deepEqual([f.src, f.dst, f.icmpType, f.icmpCode], [LIP, RS1, 3, 3]);
    assert.deepEqual(d.engine.counters.dropTable(), {});
  });
});

describe("NAT64: GSO aggregates", () => {
  function established(d: Director6): number {
    const s = one(
      d,
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 64 }, { sport: 40000, dport: 80, flags: SYN }),
    );
    one(
      d,
      1,
      tcp6Frame(
        L2_6_FROM_ROUTER,
        { src: CLIENT, dst: VIP, hl: 64 },
        { sport: 40000, dport: 80, flags: ACK, seq: 1 },
      ),
    );
    return flat(decodeFrame(s.raw)).sport as number;
  }
  const payload = new Uint8Array(4000).map((_, i) => (i * 7) & 255);

  it("a TCPV6 aggregate from the client is cut, each segment translated to IPv4", () => {
    const d = nat64Director();
    established(d);
    const agg = tcp6Frame(
      L2_6_FROM_ROUTER,
      { src: CLIENT, dst: VIP, hl: 64 },
      { sport: 40000, dport: 80, flags: ACK, seq: 1, payload },
    );
    const l4 = 14 + 40;
    put16(agg, l4 + 16, ~inetChecksum(pseudoHeader6(a6(CLIENT), a6(VIP), NH_TCP, agg.length - l4)) & 0xffff);
    const r = d.input(1, agg, d.now, makeOffloadWord(VNET_GSO_TCPV6, 1400, VNET_F_NEEDS_CSUM));
    assert.deepEqual(
      r.out.map((o) => {
        assert.equal(o.vnet, null);
        const f = flat(decodeFrame(o.frame));
        return [f.src, f.dst, f.seq, (f.payload as string).length, f.ttl];
      }),
      [
        [LIP, RS1, 1, 1400, 63],
        [LIP, RS1, 1401, 1400, 63],
        [LIP, RS1, 2801, 1200, 63],
      ],
    );
  });

  it("a TCPV4 aggregate from the real server leaves whole as TCPV6, its field the IPv6 pseudo-header sum", () => {
    const d = nat64Director();
    const lport = established(d);
    const agg = tcpFrame(
      FROM_RS1,
      { src: ip(RS1), dst: ip(LIP), ttl: 64, df: true },
      { sport: 8080, dport: lport, flags: ACK, seq: 1, payload },
    );
    const l4 = 14 + 20;
    put16(agg, l4 + 16, ~inetChecksum(pseudoHeader(ip(RS1), ip(LIP), 6, agg.length - l4)) & 0xffff);
    const r = d.input(2, agg, d.now, makeOffloadWord(VNET_GSO_TCPV4, 1400, VNET_F_NEEDS_CSUM));
    assert.equal(r.out.length, 1);
    const out = r.out[0];
    assert.ok(out.vnet !== null, "leaves with a virtio_net_hdr");
    assert.equal(out.vnet[1], VNET_GSO_TCPV6);
    const o4 = 14 + 40;
    const field = (out.frame[o4 + 16] << 8) | out.frame[o4 + 17];
    const want = ~inetChecksum(pseudoHeader6(a6(VIP), a6(CLIENT), NH_TCP, out.frame.length - o4)) & 0xffff;
    assert.equal(field, want);
    assert.equal(out.frame.length, agg.length + 20);
    assert.equal(out.frame[14 + 7], 63, "hop limit");
  });

  it("a TCPV4 aggregate without a partial checksum is cut, each segment translated to IPv6", () => {
    const d = nat64Director();
    const lport = established(d);
    const agg = tcpFrame(
      FROM_RS1,
      { src: ip(RS1), dst: ip(LIP), ttl: 64, df: true },
      { sport: 8080, dport: lport, flags: ACK, seq: 1, payload },
    );
    const r = d.input(2, agg, d.now, makeOffloadWord(VNET_GSO_TCPV4, 1400, 0));
    assert.deepEqual(
      r.out.map((o) => {
        const f = flat6(o.frame);
        return [f.src, f.dst, f.seq, (f.payload as string).length, f.hl];
      }),
      [
        [IP6.vip, CLIENT, 1, 1400, 63],
        [IP6.vip, CLIENT, 1401, 1400, 63],
        [IP6.vip, CLIENT, 2801, 1200, 63],
      ],
    );
  });
});
