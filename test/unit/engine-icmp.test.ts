// ICMP at the director: echo for the VIP, time exceeded, errors about connections relayed to
// the other side with the embedded header rewritten (ip_vs_out_icmp / ip_vs_in_icmp), and what
// the local stack would answer for an owned address without a service (RST, port unreachable).

import assert from "node:assert/strict";
import { test } from "node:test";
import { Director, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import {
  ACK,
  bytes,
  icmpErrorFrame,
  icmpFrame,
  ip,
  l3Of,
  RST,
  SYN,
  tcpFrame,
  udpFrame,
} from "../support/packet-builder.js";

const CLIENT = ip(IP.client1);
const VIP = ip(IP.vip);

function director(): Director {
  const d = new Director();
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`);
  d.ipvsadm(`-A -t ${IP.vip}:443 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:443 -r ${IP.rs2}:8443 --fullnat`);
  d.ipvsadm(`-A -u ${IP.vip}:53 -s rr`);
  d.ipvsadm(`-A -t ${IP.vip}:25 -s rr`);
  return d;
}

function expectFields(f: Record<string, unknown>, e: Record<string, unknown>, what: string): void {
  for (const [k, v] of Object.entries(e)) assert.equal(f[k], v, `${what}: ${k}`);
}

test("echo request to the VIP is answered from the VIP with the same id, sequence and data", () => {
  const d = director();
  const o = d.one(
    1,
    icmpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP, ttl: 50 },
      { type: 8, rest: 0x1234_0007, data: bytes("ping!") },
    ),
  );
  assert.equal(o.ifindex, 1);
  expectFields(
    o.f,
    {
      dmac: MAC.router,
      smac: MAC.dir0,
      src: IP.vip,
      dst: IP.client1,
      icmpType: 0,
      icmpCode: 0,
      icmpRest: 0x1234_0007,
    },
    "echo reply",
  );
  assert.equal(new TextDecoder().decode(o.d.ip?.icmp?.data), "ping!");
  assert.equal(d.engine.counters.echoReplies, 1);
});

test("echo to an address tsvs does not own is passed to the kernel", () => {
  const d = director();
  const r = d.input(1, icmpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: ip("198.18.0.77") }, { type: 8 }));
  assert.equal(r.verdict, 0);
  assert.equal(r.out.length, 0);
});

const localAnswers = [
  {
    desc: "TCP SYN to a VIP port without a service → RST/ACK acking the SYN",
    frame: tcpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP },
      { sport: 4000, dport: 81, flags: SYN, seq: 777 },
    ),
    expect: { src: IP.vip, dst: IP.client1, sport: 81, dport: 4000, flags: "R.", seq: 0, ackno: 778 },
  },
  {
    desc: "TCP ACK to a VIP port without a service → RST with seq = their ack",
    frame: tcpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP },
      { sport: 4000, dport: 81, flags: ACK, seq: 5, ack: 9999 },
    ),
    expect: { src: IP.vip, sport: 81, dport: 4000, flags: "R", seq: 9999 },
  },
  {
    desc: "TCP non-SYN to a service without a connection → RST",
    frame: tcpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP },
      { sport: 4001, dport: 80, flags: ACK, seq: 5, ack: 42 },
    ),
    expect: { src: IP.vip, sport: 80, dport: 4001, flags: "R", seq: 42 },
  },
  {
    desc: "UDP to a VIP port without a service → port unreachable from the VIP",
    frame: udpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP },
      { sport: 4000, dport: 54, payload: bytes("x") },
    ),
    expect: {
      src: IP.vip,
      dst: IP.client1,
      icmpType: 3,
      icmpCode: 3,
      qsrc: IP.client1,
      qdst: IP.vip,
      qsport: 4000,
      qdport: 54,
    },
  },
  {
    desc: "UDP to a service without destinations → port unreachable",
    frame: udpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 4000, dport: 53 }),
    expect: { src: IP.vip, icmpType: 3, icmpCode: 3, qdport: 53 },
  },
  {
    desc: "TCP SYN to a service without destinations → port unreachable",
    frame: tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 4000, dport: 25, flags: SYN }),
    expect: { src: IP.vip, icmpType: 3, icmpCode: 3, qproto: 6, qdport: 25 },
  },
  {
    desc: "SYN with TTL 1 to a service → time exceeded from the VIP, quoting the SYN",
    frame: tcpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP, ttl: 1 },
      { sport: 4002, dport: 80, flags: SYN },
    ),
    expect: {
      src: IP.vip,
      dst: IP.client1,
      icmpType: 11,
      icmpCode: 0,
      qsrc: IP.client1,
      qdst: IP.vip,
      qdport: 80,
      qttl: 1,
    },
  },
];

test("answers for owned addresses: table of requests → RST / ICMP errors toward the client", () => {
  for (const c of localAnswers) {
    const d = director();
    const o = d.one(1, c.frame);
    assert.equal(o.ifindex, 1, c.desc);
    expectFields(o.f, { dmac: MAC.router, smac: MAC.dir0, ...c.expect }, c.desc);
  }
});

test("a RST to a VIP port without a service is dropped silently", () => {
  const d = director();
  const r = d.input(
    1,
    tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 1, dport: 81, flags: RST }),
  );
  assert.equal(r.out.length, 0);
});

test("NAT: port unreachable from the real server is relayed to the client about CIP → VIP:80", () => {
  const d = director();
  const fwd = d.one(
    1,
    tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40000, dport: 80, flags: SYN }),
  );
  const err = icmpErrorFrame(
    l2FromLan(MAC.rs1),
    { src: ip(IP.rs1), dst: CLIENT, ttl: 64 },
    3,
    3,
    0,
    l3Of(fwd.raw),
  );
  const o = d.one(2, err);
  assert.equal(o.ifindex, 1);
  expectFields(
    o.f,
    { dmac: MAC.router, src: IP.vip, dst: IP.client1, ttl: 63, icmpType: 3, icmpCode: 3 },
    "outer",
  );
  expectFields(o.f, { qsrc: IP.client1, qdst: IP.vip, qsport: 40000, qdport: 80 }, "embedded");
});

test("NAT: an error from the client about a reply reaches the real server about RIP:8080 → CIP", () => {
  const d = director();
  d.one(1, tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40000, dport: 80, flags: SYN }));
  const reply = d.one(
    2,
    tcpFrame(
      l2FromLan(MAC.rs1),
      { src: ip(IP.rs1), dst: CLIENT },
      { sport: 8080, dport: 40000, flags: SYN | ACK },
    ),
  );
  const err = icmpErrorFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, 3, 4, 1400, l3Of(reply.raw));
  const o = d.one(1, err);
  assert.equal(o.ifindex, 2);
  expectFields(
    o.f,
    { dmac: MAC.rs1, src: IP.client1, dst: IP.rs1, icmpType: 3, icmpCode: 4, icmpRest: 1400 },
    "outer",
  );
  expectFields(o.f, { qsrc: IP.rs1, qsport: 8080, qdst: IP.client1, qdport: 40000 }, "embedded");
});

test("FULLNAT: an error from the real server about LIP:lport → RIP is relayed about CIP → VIP:443", () => {
  const d = director();
  const fwd = d.one(
    1,
    tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40001, dport: 443, flags: SYN }),
  );
  assert.equal(fwd.f.src, IP.lip);
  const err = icmpErrorFrame(
    l2FromLan(MAC.rs2),
    { src: ip(IP.rs2), dst: ip(IP.lip) },
    3,
    1,
    0,
    l3Of(fwd.raw),
  );
  const o = d.one(2, err);
  assert.equal(o.ifindex, 1);
  expectFields(o.f, { src: IP.vip, dst: IP.client1, icmpType: 3, icmpCode: 1 }, "outer");
  expectFields(o.f, { qsrc: IP.client1, qsport: 40001, qdst: IP.vip, qdport: 443 }, "embedded");
});

test("an ICMP error about no known connection is passed, never answered", () => {
  const d = director();
  const orig = l3Of(
    tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: ip(IP.rs1) }, { sport: 1, dport: 2, flags: SYN }),
  );
  const r = d.input(2, icmpErrorFrame(l2FromLan(MAC.rs1), { src: ip(IP.rs1), dst: CLIENT }, 3, 3, 0, orig));
  assert.equal(r.out.length, 0);
  assert.equal(r.verdict, 0);
});

test("an ICMP error with TTL 1 is never answered with time exceeded", () => {
  const d = director();
  const fwd = d.one(
    1,
    tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40000, dport: 80, flags: SYN }),
  );
  const err = icmpErrorFrame(
    l2FromLan(MAC.rs1),
    { src: ip(IP.rs1), dst: CLIENT, ttl: 1 },
    3,
    3,
    0,
    l3Of(fwd.raw),
  );
  const r = d.input(2, err);
  assert.equal(r.out.length, 0);
});

test("FULLNAT: an error from the client about a reply reaches the real server about RIP → LIP:lport, from the LIP", () => {
  const d = director();
  const fwd = d.one(
    1,
    tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40002, dport: 443, flags: SYN }),
  );
  const lport = fwd.f.sport as number;
  const reply = d.one(
    2,
    tcpFrame(
      l2FromLan(MAC.rs2),
      { src: ip(IP.rs2), dst: ip(IP.lip) },
      { sport: 8443, dport: lport, flags: SYN | ACK },
    ),
  );
  assert.equal(reply.f.dst, IP.client1);
  const o = d.one(1, icmpErrorFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, 3, 4, 1300, l3Of(reply.raw)));
  assert.equal(o.ifindex, 2);
  expectFields(
    o.f,
    { dmac: MAC.rs2, src: IP.lip, dst: IP.rs2, icmpType: 3, icmpCode: 4, icmpRest: 1300 },
    "outer",
  );
  expectFields(o.f, { qsrc: IP.rs2, qsport: 8443, qdst: IP.lip, qdport: lport }, "embedded");
});

test("TUN and DR: an error from the client about a reply goes to the real server (TUN: encapsulated)", () => {
  const d = director();
  d.ipvsadm(`-A -t ${IP.vip}:22 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:22 -r ${IP.far} -i`);
  d.ipvsadm(`-A -t ${IP.vip}:23 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:23 -r ${IP.rs3} -g`);
  for (const [port, expect] of [
    [22, { dmac: MAC.gw1, src: IP.dir1, dst: IP.far, proto: 4, isrc: IP.client1, idst: IP.vip }],
    [23, { dmac: MAC.rs3, src: IP.client1, dst: IP.vip, proto: 1, icmpType: 3, qsrc: IP.vip, qsport: 23 }],
  ] as const) {
    d.one(1, tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40003, dport: port, flags: SYN }));
    // The real server's reply went straight to the client (src VIP); the client complains.
    const reply = tcpFrame(
      l2FromLan(MAC.rs3),
      { src: VIP, dst: CLIENT },
      { sport: port, dport: 40003, flags: SYN | ACK },
    );
    const o = d.one(1, icmpErrorFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, 3, 4, 1300, l3Of(reply)));
    assert.equal(o.ifindex, 2);
    expectFields(o.f, expect, `port ${port}`);
  }
});

test("a request that dies of its TTL still counts and moves the state (ip_vs_in: stats and state before decrement_ttl)", () => {
  const d = director();
  const r = d.input(
    1,
    tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP, ttl: 1 }, { sport: 4003, dport: 80, flags: SYN }),
  );
  assert.equal(r.out.length, 1, "the time exceeded error, nothing to the real server");
  const svc = d.engine.services().find((s) => s.port === 80 && s.protocol === 6);
  assert.ok(svc !== undefined);
  assert.equal(svc.stats.inpkts, 1);
  assert.equal(svc.stats.conns, 1);
  const rows = d.engine.connections(d.now).filter((c) => c.cport === 4003);
  assert.deepEqual(
    rows.map((c) => c.state),
    ["SYN_RECV"],
  );
});
