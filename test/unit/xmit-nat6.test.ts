// NAT for IPv6 (ip_vs_nat_xmit_v6, the dnat/snat handlers for AF_INET6, ip_vs_nat_icmp_v6): packet
// in → packet out. Requests [VIP]:vport → [RIP]:rport, replies back from [VIP]:vport, hop limit - 1
// both ways, every output's checksum recomputed from scratch by the test's decoder (frames6.ts).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { makeOffloadWord, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV6 } from "../../src/core/packet/vnet.js";
import { decodeFrame, flat } from "../support/frames.js";
import { Director6, IP6, L2_6_FROM_ROUTER, l2_6FromLan, MAC6 } from "../support/frames6.js";
import {
  ACK,
  bytes,
  FIN,
  inetChecksum,
  ip,
  mac,
  PSH,
  put16,
  SYN,
  tcpFrame,
} from "../support/packet-builder.js";
import {
  a6,
  fold6,
  icmp6ErrorFrame,
  ipv6Packet,
  NH_TCP,
  pseudoHeader6,
  tcp6Frame,
  tcp6Segment,
  udp6Frame,
} from "../support/packet6.js";

const VIP = "2001:db8::100";
const RS1 = "2001:db8:1::11";
const CLIENT = IP6.client1;

function natDirector(o: { mtu1?: number } = {}): Director6 {
  const d = new Director6(o);
  d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
  d.ipvsadm(`-a -t [${VIP}]:80 -r [${RS1}]:8080 -m`);
  d.ipvsadm(`-A -u [${VIP}]:53 -s rr`);
  d.ipvsadm(`-a -u [${VIP}]:53 -r [2001:db8:1::12]:5353 -m`);
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

interface Step {
  desc: string;
  from: "client" | "server";
  flags: number;
  seq: number;
  ack: number;
  payload?: string;
  state: string;
}

const steps: Step[] = [
  { desc: "SYN", from: "client", flags: SYN, seq: 100, ack: 0, state: "SYN_RECV" },
  { desc: "SYN/ACK", from: "server", flags: SYN | ACK, seq: 5000, ack: 101, state: "SYN_RECV" },
  { desc: "ACK", from: "client", flags: ACK, seq: 101, ack: 5001, state: "ESTABLISHED" },
  {
    desc: "request",
    from: "client",
    flags: PSH | ACK,
    seq: 101,
    ack: 5001,
    payload: "GET / HTTP/1.0\r\n\r\n",
    state: "ESTABLISHED",
  },
  {
    desc: "response",
    from: "server",
    flags: PSH | ACK,
    seq: 5001,
    ack: 119,
    payload: "HTTP/1.0 200 OK\r\n\r\nhi",
    state: "ESTABLISHED",
  },
  { desc: "client FIN", from: "client", flags: FIN | ACK, seq: 119, ack: 5022, state: "CLOSE_WAIT" },
  { desc: "server FIN", from: "server", flags: FIN | ACK, seq: 5022, ack: 120, state: "TIME_WAIT" },
];

describe("NAT over IPv6", () => {
  it("a TCP connection is rewritten both ways: hop limit - 1, ports, 128-bit addresses, checksums", () => {
    const d = natDirector();
    for (const s of steps) {
      const payload = s.payload === undefined ? undefined : bytes(s.payload);
      const tcp = { flags: s.flags, seq: s.seq, ack: s.ack, payload };
      if (s.from === "client") {
        const o = d.one(
          1,
          tcp6Frame(
            L2_6_FROM_ROUTER,
            { src: CLIENT, dst: VIP, hl: 64, tc: 0x28, flow: 0x12345 },
            { sport: 40000, dport: 80, ...tcp },
          ),
        );
        assert.equal(o.ifindex, 2, s.desc);
        assertFields(
          o.f,
          {
            dmac: MAC6.rs1,
            smac: MAC6.dir1,
            src: CLIENT,
            dst: IP6.rs1,
            hl: 63,
            tc: 0x28,
            flow: 0x12345,
            sport: 40000,
            dport: 8080,
            seq: s.seq,
            ackno: s.ack,
            payload: s.payload ?? "",
          },
          s.desc,
        );
      } else {
        const o = d.one(
          2,
          tcp6Frame(
            l2_6FromLan(MAC6.rs1),
            { src: RS1, dst: CLIENT, hl: 64 },
            { sport: 8080, dport: 40000, ...tcp },
          ),
        );
        assert.equal(o.ifindex, 1, s.desc);
        assertFields(
          o.f,
          {
            dmac: MAC6.router,
            smac: MAC6.dir0,
            src: IP6.vip,
            dst: CLIENT,
            hl: 63,
            sport: 80,
            dport: 40000,
            seq: s.seq,
            ackno: s.ack,
            payload: s.payload ?? "",
          },
          s.desc,
        );
      }
      const conns = d.engine.connections(d.now);
      assert.equal(conns.length, 1, s.desc);
      assert.equal(conns[0].state, s.state, `state after ${s.desc}`);
    }
    const c = d.engine.connections(d.now)[0];
    assert.deepEqual(
      [c.caddr6, c.vaddr6, c.daddr6, c.caddr, c.vaddr, c.daddr],
      ["2001:db8:ff::10", VIP, RS1, fold6(CLIENT), fold6(VIP), fold6(RS1)],
    );
  });

  const udpCases = [
    { desc: "a checksummed query", noChecksum: false },
    {
      desc: "a query without checksum (invalid over IPv6) gets one computed, as udp_dnat_handler does",
      noChecksum: true,
    },
  ];
  for (const [i, c] of udpCases.entries()) {
    it(`UDP: ${c.desc}; the reply comes back from [VIP]:53`, () => {
      const d = natDirector();
      const sport = 5000 + i;
      const q = d.one(
        1,
        udp6Frame(
          L2_6_FROM_ROUTER,
          { src: CLIENT, dst: VIP, hl: 9 },
          { sport, dport: 53, payload: bytes("query"), noChecksum: c.noChecksum },
        ),
      );
      assertFields(
        q.f,
        { dmac: MAC6.rs2, dst: IP6.rs2, hl: 8, sport, dport: 5353, payload: "query" },
        "query",
      );
      const r = d.one(
        2,
        udp6Frame(
          l2_6FromLan(MAC6.rs2),
          { src: "2001:db8:1::12", dst: CLIENT },
          { sport: 5353, dport: sport, payload: bytes("answer"), noChecksum: c.noChecksum },
        ),
      );
      assertFields(
        r.f,
        { dmac: MAC6.router, src: IP6.vip, dst: CLIENT, sport: 53, dport: sport, payload: "answer" },
        "reply",
      );
    });
  }

  it("ICMPv6 errors about a connection are relayed with the quoted packet rewritten (ip_vs_nat_icmp_v6)", () => {
    const d = natDirector();
    d.one(1, tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40000, dport: 80, flags: SYN }));
    // Packet too big from a router beyond the real server about the forwarded request CIP → RIP:8080:
    // the client hears it about CIP → VIP:80, from the VIP.
    const fwd = ipv6Packet(
      { src: CLIENT, dst: RS1, hl: 63 },
      NH_TCP,
      tcp6Segment(CLIENT, RS1, { sport: 40000, dport: 8080, flags: ACK, payload: bytes("x".repeat(64)) }),
    );
    const out = d.one(
      2,
      icmp6ErrorFrame(l2_6FromLan(MAC6.gw1), { src: "2001:db8:1::fe", dst: CLIENT, hl: 64 }, 2, 0, 1400, fwd),
    );
    assert.equal(out.ifindex, 1);
    assertFields(
      out.f,
      {
        dmac: MAC6.router,
        src: IP6.vip,
        dst: CLIENT,
        hl: 63,
        icmpType: 2,
        icmpRest: 1400,
        qsrc: CLIENT,
        qdst: IP6.vip,
        qsport: 40000,
        qdport: 80,
      },
      "packet too big to the client",
    );
    // Destination unreachable from the client's side about a reply VIP:80 → CIP: the real server
    // hears it about RIP:8080 → CIP, sent to it.
    const reply = ipv6Packet(
      { src: VIP, dst: CLIENT, hl: 63 },
      NH_TCP,
      tcp6Segment(VIP, CLIENT, { sport: 80, dport: 40000, flags: SYN | ACK }),
    );
    const back = d.one(1, icmp6ErrorFrame(L2_6_FROM_ROUTER, { src: IP6.router, dst: VIP }, 1, 3, 0, reply));
    assert.equal(back.ifindex, 2);
    assertFields(
      back.f,
      {
        dmac: MAC6.rs1,
        src: IP6.router,
        dst: IP6.rs1,
        hl: 63,
        icmpType: 1,
        icmpCode: 3,
        qsrc: IP6.rs1,
        qdst: CLIENT,
        qsport: 8080,
        qdport: 40000,
      },
      "unreachable to the real server",
    );
  });

  it("hop limit 1: time exceeded from the VIP, the connection still counts the request", () => {
    const d = natDirector();
    const o = d.one(
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 1 }, { sport: 40001, dport: 80, flags: SYN }),
    );
    assertFields(
      o.f,
      {
        dmac: MAC6.router,
        src: IP6.vip,
        dst: CLIENT,
        icmpType: 3,
        icmpCode: 0,
        qsrc: CLIENT,
        qdst: IP6.vip,
        qhl: 1,
      },
      "time exceeded",
    );
    assert.deepEqual(d.engine.counters.dropTable(), { ttl_exceeded: 1 });
    assert.equal(d.engine.totalStats.inpkts, 1);
  });

  it("a request over the real servers' link MTU: packet too big to the client from the VIP, nothing forwarded", () => {
    const d = natDirector({ mtu1: 1400 });
    d.one(1, tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40002, dport: 80, flags: SYN }));
    const big = tcp6Frame(
      L2_6_FROM_ROUTER,
      { src: CLIENT, dst: VIP },
      { sport: 40002, dport: 80, flags: ACK, payload: new Uint8Array(1400) },
    );
    const o = d.one(1, big);
    assert.equal(o.ifindex, 1);
    assertFields(
      o.f,
      {
        dst: CLIENT,
        src: IP6.vip,
        icmpType: 2,
        icmpCode: 0,
        icmpRest: 1400,
        qsrc: CLIENT,
        qdst: IP6.vip,
        qdport: 80,
      },
      "packet too big",
    );
    assert.deepEqual(d.engine.counters.dropTable(), { frag_needed: 1 });
  });

  it("IPv4 and IPv6 clients with colliding folds keep apart: each reply goes back in its own family", () => {
    const d = natDirector();
    const vip4 = fold6(VIP);
    const a4 = (n: number): string => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
    d.engine.neigh.confirm(1, ip("198.18.0.254"), mac(MAC6.router), d.now);
    d.engine.neigh.confirm(2, ip("198.18.1.11"), mac(MAC6.rs1), d.now);
    // An IPv4 NAT service on the VIP's fold, and an IPv4 client on the IPv6 client's fold.
    d.ipvsadm(`-A -t ${a4(vip4)}:80 -s rr`);
    d.ipvsadm(`-a -t ${a4(vip4)}:80 -r 198.18.1.11:8080 -m`);
    const c4 = fold6(CLIENT);
    const l2 = { dmac: mac(MAC6.dir0), smac: mac(MAC6.router) };
    const o4 = d.input(1, tcpFrame(l2, { src: c4, dst: vip4 }, { sport: 40000, dport: 80, flags: SYN }));
    assert.equal(o4.out.length, 1);
    assert.equal(flat(decodeFrame(o4.out[0].frame)).dst, "198.18.1.11");
    const o6 = d.one(
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40000, dport: 80, flags: SYN }),
    );
    assert.equal(o6.f.dst, IP6.rs1);
    assert.equal(d.engine.connections(d.now).length, 2);
    const r6 = d.one(
      2,
      tcp6Frame(
        l2_6FromLan(MAC6.rs1),
        { src: RS1, dst: CLIENT },
        { sport: 8080, dport: 40000, flags: SYN | ACK },
      ),
    );
    assertFields(r6.f, { src: IP6.vip, dst: CLIENT, sport: 80 }, "IPv6 reply");
  });
});

describe("NAT over IPv6: GSO aggregates", () => {
  it("a TCPV6 aggregate is rewritten once and leaves whole, its checksum field the new pseudo-header sum", () => {
    const d = natDirector();
    d.one(1, tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40000, dport: 80, flags: SYN }));
    const payload = new Uint8Array(4000).map((_, i) => (i * 7) & 255);
    const agg = tcp6Frame(
      L2_6_FROM_ROUTER,
      { src: CLIENT, dst: VIP },
      { sport: 40000, dport: 80, flags: ACK, payload },
    );
    const l4 = 14 + 40;
    put16(agg, l4 + 16, ~inetChecksum(pseudoHeader6(a6(CLIENT), a6(VIP), NH_TCP, agg.length - l4)) & 0xffff);
    const r = d.input(1, agg, d.now, makeOffloadWord(VNET_GSO_TCPV6, 1400, VNET_F_NEEDS_CSUM));
    assert.equal(r.out.length, 1);
    const out = r.out[0];
    assert.ok(out.vnet !== null, "leaves with a virtio_net_hdr");
    assert.equal(out.vnet[1], VNET_GSO_TCPV6);
    const field = (out.frame[l4 + 16] << 8) | out.frame[l4 + 17];
    const want = ~inetChecksum(pseudoHeader6(a6(CLIENT), a6(RS1), NH_TCP, out.frame.length - l4)) & 0xffff;
    assert.equal(field, want);
    assert.equal(out.frame.length, agg.length);
  });
});

describe("NAT over IPv6: replies to a client whose fold is the VIP's", () => {
  it("are still found (the VIP set is confirmed by the words, not the fold)", () => {
    const d = natDirector();
    const client = "2001:db8:0:100::";
    assert.equal(fold6(client), fold6(VIP));
    d.one(1, tcp6Frame(L2_6_FROM_ROUTER, { src: client, dst: VIP }, { sport: 40000, dport: 80, flags: SYN }));
    const r = d.one(
      2,
      tcp6Frame(
        l2_6FromLan(MAC6.rs1),
        { src: RS1, dst: client },
        { sport: 8080, dport: 40000, flags: SYN | ACK },
      ),
    );
    assertFields(
      r.f,
      { dmac: MAC6.router, src: IP6.vip, dst: "2001:db8:0:100:0:0:0:0", sport: 80, dport: 40000 },
      "reply",
    );
  });
});
