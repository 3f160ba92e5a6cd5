// DR (LVS-DR, ip_vs_dr_xmit): only the Ethernet header changes (real server's MAC, the
// director's MAC on that link); the IP datagram is forwarded as the client sent it but for
// TTL - 1 and the header checksum. Replies never cross the director. After each batch the
// engine's counters are checked as ipvsadm --stats and the drop table would show them: frames in
// and out, connections, inpkts/inbytes (the datagram as received) and, DR replies bypassing the
// director, outpkts 0.

import assert from "node:assert/strict";
import { test } from "node:test";
import { assertEngineCounts, Director, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { ACK, bytes, ip, l3Of, PSH, RST, SYN, tcpFrame, udpFrame } from "../support/packet-builder.js";

const CLIENT = ip(IP.client1);
const VIP = ip(IP.vip);

function drDirector(): Director {
  const d = new Director();
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs2} -g`);
  d.ipvsadm(`-A -u ${IP.vip}:53 -s rr`);
  d.ipvsadm(`-a -u ${IP.vip}:53 -r ${IP.rs3} -g`);
  return d;
}

const cases = [
  {
    desc: "TCP SYN",
    frame: tcpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP, ttl: 64, df: true },
      { sport: 33000, dport: 80, flags: SYN },
    ),
    rs: MAC.rs2,
  },
  {
    desc: "TCP data on the same connection",
    frame: tcpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP, ttl: 2, tos: 0x10 },
      { sport: 33000, dport: 80, flags: PSH | ACK, seq: 1001, ack: 7, payload: bytes("payload") },
    ),
    rs: MAC.rs2,
  },
  {
    desc: "UDP",
    frame: udpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP, ttl: 255 },
      { sport: 999, dport: 53, payload: bytes("q") },
    ),
    rs: MAC.rs3,
  },
];

test("DR rewrites the MACs only; the datagram differs from the input in TTL and header checksum alone", () => {
  const d = drDirector();
  for (const c of cases) {
    const o = d.one(1, c.frame);
    assert.equal(o.ifindex, 2, c.desc);
    assert.equal(o.f.dmac, c.rs, c.desc);
    assert.equal(o.f.smac, MAC.dir1, c.desc);
    const inL3 = l3Of(c.frame);
    const outL3 = l3Of(o.raw);
    assert.equal(outL3.length, inL3.length, c.desc);
    for (let i = 0; i < inL3.length; i++) {
      if (i === 8) assert.equal(outL3[8], inL3[8] - 1, `${c.desc}: TTL - 1`);
      else if (i !== 10 && i !== 11) assert.equal(outL3[i], inL3[i], `${c.desc}: byte ${i}`);
    }
  }
  // The SYN and the data segment share one connection; the UDP query makes the second.
  const inbytes = cases.reduce((n, c) => n + l3Of(c.frame).length, 0);
  assertEngineCounts(d, { rx: 3, tx: 3, conns: 2, inpkts: 3, inbytes }, "after the batch");
});

test("DR forwards with dport forced to the service port and the state machine in INPUT_ONLY rows", () => {
  const d = drDirector();
  const syn = tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 33001, dport: 80, flags: SYN });
  d.one(1, syn);
  let c = d.engine.connections(d.now)[0];
  assert.equal(c.dport, 80);
  assert.equal(c.state, "SYN_RECV");
  const ack = tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 33001, dport: 80, flags: ACK });
  d.one(1, ack);
  c = d.engine.connections(d.now)[0];
  assert.equal(c.state, "ESTABLISHED");
  const inbytes = l3Of(syn).length + l3Of(ack).length;
  assertEngineCounts(d, { rx: 2, tx: 2, conns: 1, inpkts: 2, inbytes }, "handshake");
  // A reply from the real server (src VIP, as DR real servers answer) is not the director's business.
  const r = d.input(
    2,
    tcpFrame(l2FromLan(MAC.rs2), { src: VIP, dst: CLIENT }, { sport: 80, dport: 33001, flags: ACK }),
  );
  assert.equal(r.out.length, 0);
  assert.equal(r.verdict, 0 /* Pass */);
  assertEngineCounts(d, { rx: 3, tx: 2, conns: 1, inpkts: 2, inbytes, passed: 1 }, "reply passed");
});

test("DR: a DF datagram larger than the real servers' link gets fragmentation-needed; without DF it is dropped", () => {
  const d = new Director({ mtu1: 1400 });
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs2} -g`);
  const big = (df: boolean, sport: number) =>
    tcpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP, df },
      { sport, dport: 80, flags: SYN, payload: new Uint8Array(1460) },
    );
  const o = d.one(1, big(true, 41000));
  assert.equal(o.ifindex, 1);
  for (const [k, v] of Object.entries({
    dmac: MAC.router,
    src: IP.vip,
    dst: IP.client1,
    icmpType: 3,
    icmpCode: 4,
    icmpRest: 1400,
    qdport: 80,
  }))
    assert.equal(o.f[k], v, `frag needed: ${k}`);
  // ip_vs_in counts the packet (and the new connection) before the transmit's MTU check.
  assertEngineCounts(
    d,
    { rx: 1, tx: 1, conns: 1, inpkts: 1, inbytes: 1500, icmpErrors: 1, drops: { frag_needed: 1 } },
    "DF",
  );
  assert.equal(d.input(1, big(false, 41001)).out.length, 0);
  assertEngineCounts(
    d,
    {
      rx: 2,
      tx: 1,
      conns: 2,
      inpkts: 2,
      inbytes: 3000,
      icmpErrors: 1,
      drops: { frag_needed: 1, too_big: 1 },
    },
    "no DF",
  );
});

test("DR: packets to the VIP that no connection or service takes are answered as the local stack would", () => {
  const d = drDirector();
  const rows = [
    {
      desc: "TCP ACK without a connection: reset from the VIP",
      frame: tcpFrame(
        L2_FROM_ROUTER,
        { src: CLIENT, dst: VIP },
        { sport: 33002, dport: 80, flags: ACK, seq: 5, ack: 77 },
      ),
      want: { src: IP.vip, dst: IP.client1, sport: 80, dport: 33002, flags: "R", seq: 77 },
      icmpErrors: 0,
    },
    {
      desc: "UDP to a port without a service: port unreachable from the VIP",
      frame: udpFrame(
        L2_FROM_ROUTER,
        { src: CLIENT, dst: VIP },
        { sport: 999, dport: 54, payload: bytes("q") },
      ),
      want: { src: IP.vip, dst: IP.client1, icmpType: 3, icmpCode: 3, qdport: 54 },
      icmpErrors: 1,
    },
  ];
  let n = 0;
  let icmpErrors = 0;
  for (const row of rows) {
    const o = d.one(1, row.frame);
    for (const [k, v] of Object.entries(row.want)) assert.equal(o.f[k], v, `${row.desc}: ${k}`);
    n++;
    icmpErrors += row.icmpErrors;
    // No connection, no inpkts: the kernel's ip_vs_in leaves these to the local stack.
    assertEngineCounts(
      d,
      { rx: n, tx: n, conns: 0, inpkts: 0, inbytes: 0, icmpErrors, drops: { closed_port: n } },
      row.desc,
    );
  }
  // A reset is never answered.
  const rst = tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 33003, dport: 80, flags: RST });
  assert.equal(d.input(1, rst).out.length, 0);
  assertEngineCounts(
    d,
    { rx: n + 1, tx: n, conns: 0, inpkts: 0, inbytes: 0, icmpErrors, drops: { closed_port: n + 1 } },
    "RST",
  );
});
