// NAT (LVS-NAT, ip_vs_nat_xmit): requests VIP:vport → RIP:rport, replies RIP:rport → VIP:vport,
// TTL - 1 both ways, checksums verified by the independent decoder on every output frame.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Director, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { ACK, bytes, FIN, ip, PSH, SYN, tcpFrame, udpFrame } from "../support/packet-builder.js";

const CLIENT = ip(IP.client1);
const VIP = ip(IP.vip);
const RS1 = ip(IP.rs1);

function natDirector(): Director {
  const d = new Director();
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`);
  d.ipvsadm(`-A -u ${IP.vip}:53 -s rr`);
  d.ipvsadm(`-a -u ${IP.vip}:53 -r ${IP.rs2}:5353 -m`);
  return d;
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

// A whole connection (states from the kernel table: the SYN/ACK leaves SYN_RECV, the
// client's ACK establishes): handshake, request, response, active close by the client.
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
    payload: "HTTP/1.0 200 OK\r\n\r\nhello",
    state: "ESTABLISHED",
  },
  { desc: "client FIN", from: "client", flags: FIN | ACK, seq: 119, ack: 5025, state: "CLOSE_WAIT" },
  { desc: "server FIN", from: "server", flags: FIN | ACK, seq: 5025, ack: 120, state: "TIME_WAIT" },
  { desc: "last ACK", from: "client", flags: ACK, seq: 120, ack: 5026, state: "TIME_WAIT" },
];

test("NAT TCP: handshake, data and close are rewritten both ways with TTL-1 and valid checksums", () => {
  const d = natDirector();
  for (const s of steps) {
    const payload = s.payload === undefined ? undefined : bytes(s.payload);
    if (s.from === "client") {
      const frame = tcpFrame(
        L2_FROM_ROUTER,
        { src: CLIENT, dst: VIP, ttl: 64 },
        { sport: 40000, dport: 80, flags: s.flags, seq: s.seq, ack: s.ack, payload },
      );
      const o = d.one(1, frame);
      assert.equal(o.ifindex, 2, s.desc);
      assertOut(
        o.f,
        {
          dmac: MAC.rs1,
          smac: MAC.dir1,
          src: IP.client1,
          dst: IP.rs1,
          sport: 40000,
          dport: 8080,
          ttl: 63,
          seq: s.seq,
          ackno: s.ack,
          payload: s.payload ?? "",
        },
        s.desc,
      );
    } else {
      const frame = tcpFrame(
        l2FromLan(MAC.rs1),
        { src: RS1, dst: CLIENT, ttl: 64 },
        { sport: 8080, dport: 40000, flags: s.flags, seq: s.seq, ack: s.ack, payload },
      );
      const o = d.one(2, frame);
      assert.equal(o.ifindex, 1, s.desc);
      assertOut(
        o.f,
        {
          dmac: MAC.router,
          smac: MAC.dir0,
          src: IP.vip,
          dst: IP.client1,
          sport: 80,
          dport: 40000,
          ttl: 63,
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
});

function assertOut(actual: Record<string, unknown>, expected: Record<string, unknown>, what: string): void {
  for (const [k, v] of Object.entries(expected)) assert.equal(actual[k], v, `${what}: ${k}`);
}

test("NAT UDP: query to RIP:5353 and reply from VIP:53, checksum 0 stays 0", () => {
  const d = natDirector();
  const table = [
    { desc: "checksummed", noChecksum: false },
    { desc: "no checksum", noChecksum: true },
  ];
  let sport = 5000;
  for (const t of table) {
    sport++;
    const q = d.one(
      1,
      udpFrame(
        L2_FROM_ROUTER,
        { src: CLIENT, dst: VIP, ttl: 10 },
        {
          sport,
          dport: 53,
          payload: bytes("query"),
          noChecksum: t.noChecksum,
        },
      ),
    );
    assertOut(
      q.f,
      {
        dmac: MAC.rs2,
        smac: MAC.dir1,
        src: IP.client1,
        dst: IP.rs2,
        sport,
        dport: 5353,
        ttl: 9,
        payload: "query",
      },
      t.desc,
    );
    assert.equal(q.d.ip?.udp?.checksum === 0, t.noChecksum, `${t.desc}: checksum zero`);
    const r = d.one(
      2,
      udpFrame(
        l2FromLan(MAC.rs2),
        { src: ip(IP.rs2), dst: CLIENT, ttl: 64 },
        {
          sport: 5353,
          dport: sport,
          payload: bytes("answer"),
          noChecksum: t.noChecksum,
        },
      ),
    );
    assertOut(
      r.f,
      {
        dmac: MAC.router,
        smac: MAC.dir0,
        src: IP.vip,
        dst: IP.client1,
        sport: 53,
        dport: sport,
        ttl: 63,
        payload: "answer",
      },
      t.desc,
    );
    assert.equal(r.d.ip?.udp?.checksum === 0, t.noChecksum, `${t.desc}: reply checksum zero`);
  }
  const udp = d.engine.connections(d.now).filter((c) => c.protocol === 17);
  assert.equal(udp.length, 2);
  for (const c of udp) assert.equal(c.state, "UDP");
});

test("NAT reply rewriting inverts request rewriting (request 5-tuple mirrored on the reply)", () => {
  const d = natDirector();
  const ports = [1024, 40000, 65535];
  for (const cport of ports) {
    const req = d.one(
      1,
      tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: cport, dport: 80, flags: SYN }),
    );
    const rq = req.d.ip!;
    // The server answers the rewritten request; its answer, rewritten back, mirrors what the client sent.
    const rep = d.one(
      2,
      tcpFrame(
        l2FromLan(MAC.rs1),
        { src: ip(rq.dst), dst: ip(rq.src) },
        {
          sport: rq.dport,
          dport: rq.sport,
          flags: SYN | ACK,
        },
      ),
    );
    assertOut(rep.f, { src: IP.vip, dst: IP.client1, sport: 80, dport: cport }, `cport ${cport}`);
  }
});

test("NAT: traffic from a real server that matches no connection is not rewritten", () => {
  const d = natDirector();
  const r = d.input(
    2,
    tcpFrame(l2FromLan(MAC.rs1), { src: RS1, dst: CLIENT }, { sport: 8080, dport: 40000, flags: ACK }),
  );
  assert.equal(r.out.length, 0);
  assert.equal(r.verdict, 0 /* Pass */);
});

test("NAT: a DF datagram larger than the real servers' link gets fragmentation-needed with that MTU", () => {
  const d = new Director({ mtu1: 1400 });
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`);
  const big = (df: boolean, sport: number) =>
    tcpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP, df },
      { sport, dport: 80, flags: SYN, payload: new Uint8Array(1460) },
    );
  const o = d.one(1, big(true, 41000));
  assertOut(
    o.f,
    { dmac: MAC.router, src: IP.vip, dst: IP.client1, icmpType: 3, icmpCode: 4, icmpRest: 1400, qdport: 80 },
    "frag needed",
  );
  assert.equal(d.input(1, big(false, 41001)).out.length, 0, "no DF: dropped (too_big)");
  assert.equal(d.engine.counters.dropTable().too_big, 1);
});

test("NAT: a reply with TTL 1 is not forwarded; the real server gets time exceeded from the director", () => {
  const d = natDirector();
  d.one(1, tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40000, dport: 80, flags: SYN }));
  const o = d.one(
    2,
    tcpFrame(
      l2FromLan(MAC.rs1),
      { src: RS1, dst: CLIENT, ttl: 1 },
      { sport: 8080, dport: 40000, flags: SYN | ACK },
    ),
  );
  assert.equal(o.ifindex, 2);
  assertOut(
    o.f,
    { dmac: MAC.rs1, src: IP.dir1, dst: IP.rs1, icmpType: 11, icmpCode: 0, qsrc: IP.rs1, qsport: 8080 },
    "time exceeded",
  );
});
