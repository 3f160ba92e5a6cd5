// FULLNAT (after DPVS / Alibaba LVS): CIP:cport → LIP:lport and VIP:vport → RIP:rport on the
// way in, the inverse on the way back; the client's address travels in a TOA option
// (kind 254, length 8: port, IPv4 address) on the SYN and on the ACK completing the handshake.
// After each batch the engine's counters are checked as ipvsadm --stats and the drop table would
// show them: frames in and out, connections, inpkts/inbytes and outpkts/outbytes (datagrams as
// received: before TOA grows a SYN), drops by reason.

import assert from "node:assert/strict";
import { test } from "node:test";
import { assertEngineCounts, Director, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { ACK, bytes, ip, l3Of, PSH, RST, SYN, tcpFrame, udpFrame } from "../support/packet-builder.js";

const VIP = ip(IP.vip);

function fnatDirector(): Director {
  const d = new Director();
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 --fullnat`);
  d.ipvsadm(`-A -u ${IP.vip}:53 -s rr`);
  d.ipvsadm(`-a -u ${IP.vip}:53 -r ${IP.rs2}:5353 --fullnat`);
  return d;
}

function expectFields(f: Record<string, unknown>, e: Record<string, unknown>, what: string): void {
  for (const [k, v] of Object.entries(e)) assert.equal(f[k], v, `${what}: ${k}`);
}

test("FULLNAT TCP: both ends rewritten, reply rewritten back, TOA on SYN and handshake ACK only", () => {
  const d = fnatDirector();
  const client = ip(IP.client1);
  const synIn = tcpFrame(
    L2_FROM_ROUTER,
    { src: client, dst: VIP },
    { sport: 40000, dport: 80, flags: SYN, seq: 1 },
  );
  const syn = d.one(1, synIn);
  assert.equal(syn.ifindex, 2);
  const lport = syn.f.sport as number;
  expectFields(
    syn.f,
    {
      dmac: MAC.rs1,
      smac: MAC.dir1,
      src: IP.lip,
      dst: IP.rs1,
      dport: 8080,
      ttl: 63,
      flags: "S",
      toa: `${IP.client1}:40000`,
    },
    "SYN",
  );
  assert.equal(syn.f.len, 40 + 8, "SYN grew by the TOA option");
  const conn = d.engine.connections(d.now)[0];
  assert.equal(conn.laddr, ip(IP.lip));
  assert.equal(conn.lport, lport);
  const n = { in: 1, inbytes: l3Of(synIn).length, out: 0, outbytes: 0 };
  assertEngineCounts(d, { rx: 1, tx: 1, conns: 1, inpkts: 1, inbytes: 40, outpkts: 0, outbytes: 0 }, "SYN");

  const steps = [
    { desc: "SYN/ACK", from: "server", flags: SYN | ACK, toa: null },
    { desc: "handshake ACK", from: "client", flags: ACK, toa: `${IP.client1}:40000` },
    { desc: "request", from: "client", flags: PSH | ACK, payload: "GET /", toa: null },
    { desc: "response", from: "server", flags: PSH | ACK, payload: "200 OK", toa: null },
    { desc: "second ACK", from: "client", flags: ACK, toa: null },
  ] as const;
  for (const s of steps) {
    const payload = "payload" in s ? bytes(s.payload) : undefined;
    if (s.from === "client") {
      const input = tcpFrame(
        L2_FROM_ROUTER,
        { src: client, dst: VIP },
        { sport: 40000, dport: 80, flags: s.flags, payload },
      );
      n.in++;
      n.inbytes += l3Of(input).length;
      const o = d.one(1, input);
      expectFields(
        o.f,
        {
          src: IP.lip,
          sport: lport,
          dst: IP.rs1,
          dport: 8080,
          toa: s.toa,
          payload: "payload" in s ? s.payload : "",
        },
        s.desc,
      );
    } else {
      const input = tcpFrame(
        l2FromLan(MAC.rs1),
        { src: ip(IP.rs1), dst: ip(IP.lip) },
        { sport: 8080, dport: lport, flags: s.flags, payload },
      );
      n.out++;
      n.outbytes += l3Of(input).length;
      const o = d.one(2, input);
      assert.equal(o.ifindex, 1, s.desc);
      expectFields(
        o.f,
        {
          dmac: MAC.router,
          smac: MAC.dir0,
          src: IP.vip,
          sport: 80,
          dst: IP.client1,
          dport: 40000,
          ttl: 63,
          toa: null,
        },
        s.desc,
      );
    }
    const frames = n.in + n.out;
    assertEngineCounts(
      d,
      {
        rx: frames,
        tx: frames,
        conns: 1,
        inpkts: n.in,
        inbytes: n.inbytes,
        outpkts: n.out,
        outbytes: n.outbytes,
      },
      s.desc,
    );
  }
  assert.equal(d.engine.connections(d.now)[0].state, "ESTABLISHED");
  // 6 frames: the SYN, the client's three and the server's two.
  assert.deepEqual([n.in, n.out, n.inbytes, n.outbytes], [4, 2, 40 + 40 + 45 + 40, 40 + 46]);
});

test("FULLNAT: two clients with the same source port get distinct local ports", () => {
  const d = fnatDirector();
  const a = d.one(
    1,
    tcpFrame(L2_FROM_ROUTER, { src: ip(IP.client1), dst: VIP }, { sport: 5555, dport: 80, flags: SYN }),
  );
  const b = d.one(
    1,
    tcpFrame(L2_FROM_ROUTER, { src: ip(IP.client2), dst: VIP }, { sport: 5555, dport: 80, flags: SYN }),
  );
  assert.equal(a.f.src, IP.lip);
  assert.equal(b.f.src, IP.lip);
  assert.notEqual(a.f.sport, b.f.sport);
  assert.equal(a.f.toa, `${IP.client1}:5555`);
  assert.equal(b.f.toa, `${IP.client2}:5555`);
  // Each reply finds its own client.
  for (const [o, client] of [
    [a, IP.client1],
    [b, IP.client2],
  ] as const) {
    const r = d.one(
      2,
      tcpFrame(
        l2FromLan(MAC.rs1),
        { src: ip(IP.rs1), dst: ip(IP.lip) },
        { sport: 8080, dport: o.f.sport as number, flags: SYN | ACK },
      ),
    );
    expectFields(r.f, { dst: client, dport: 5555, src: IP.vip, sport: 80 }, client);
  }
  assertEngineCounts(
    d,
    { rx: 4, tx: 4, conns: 2, inpkts: 2, inbytes: 80, outpkts: 2, outbytes: 80 },
    "two clients",
  );
});

test("FULLNAT UDP: query and answer rewritten both ways, no option added", () => {
  const d = fnatDirector();
  const q = d.one(
    1,
    udpFrame(
      L2_FROM_ROUTER,
      { src: ip(IP.client2), dst: VIP },
      { sport: 3000, dport: 53, payload: bytes("q?") },
    ),
  );
  expectFields(
    q.f,
    { dmac: MAC.rs2, src: IP.lip, dst: IP.rs2, dport: 5353, payload: "q?", len: 20 + 8 + 2 },
    "query",
  );
  const r = d.one(
    2,
    udpFrame(
      l2FromLan(MAC.rs2),
      { src: ip(IP.rs2), dst: ip(IP.lip) },
      { sport: 5353, dport: q.f.sport as number, payload: bytes("a!") },
    ),
  );
  expectFields(
    r.f,
    { dmac: MAC.router, src: IP.vip, sport: 53, dst: IP.client2, dport: 3000, payload: "a!" },
    "answer",
  );
  assertEngineCounts(d, { rx: 2, tx: 2, conns: 1, inpkts: 1, inbytes: 30, outpkts: 1, outbytes: 30 }, "UDP");
});

test("FULLNAT: a SYN already carrying 40 bytes of options gets no TOA (header would exceed 60 bytes)", () => {
  const d = fnatDirector();
  const opts = new Uint8Array(40).fill(1); // NOPs
  const o = d.one(
    1,
    tcpFrame(
      L2_FROM_ROUTER,
      { src: ip(IP.client1), dst: VIP },
      { sport: 1, dport: 80, flags: SYN, options: opts },
    ),
  );
  assert.equal(o.f.toa, null);
  assert.equal(o.f.len, 80);
  assert.equal(o.f.dst, IP.rs1);
  assertEngineCounts(
    d,
    { rx: 1, tx: 1, conns: 1, inpkts: 1, inbytes: 80, outpkts: 0, outbytes: 0 },
    "no TOA",
  );
});

test("FULLNAT: a DF datagram larger than the real servers' link gets fragmentation-needed; without DF it is dropped", () => {
  const d = new Director({ mtu1: 1400 });
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 --fullnat`);
  const big = (df: boolean, sport: number) =>
    tcpFrame(
      L2_FROM_ROUTER,
      { src: ip(IP.client1), dst: VIP, df },
      { sport, dport: 80, flags: SYN, payload: new Uint8Array(1460) },
    );
  const o = d.one(1, big(true, 41000));
  assert.equal(o.ifindex, 1);
  expectFields(
    o.f,
    { dmac: MAC.router, src: IP.vip, dst: IP.client1, icmpType: 3, icmpCode: 4, icmpRest: 1400, qdport: 80 },
    "frag needed",
  );
  // Counted in (and the connection made) before the transmit's MTU check, as ip_vs_in does.
  assertEngineCounts(
    d,
    {
      rx: 1,
      tx: 1,
      conns: 1,
      inpkts: 1,
      inbytes: 1500,
      outpkts: 0,
      outbytes: 0,
      icmpErrors: 1,
      drops: { frag_needed: 1 },
    },
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
      outpkts: 0,
      outbytes: 0,
      icmpErrors: 1,
      drops: { frag_needed: 1, too_big: 1 },
    },
    "no DF",
  );
});

test("FULLNAT: a segment that opens no connection gets a reset from the VIP; a reset gets nothing", () => {
  const d = fnatDirector();
  const o = d.one(
    1,
    tcpFrame(
      L2_FROM_ROUTER,
      { src: ip(IP.client1), dst: VIP },
      { sport: 40002, dport: 80, flags: PSH | ACK, seq: 9, ack: 1234, payload: bytes("x") },
    ),
  );
  expectFields(o.f, { src: IP.vip, dst: IP.client1, sport: 80, dport: 40002, flags: "R", seq: 1234 }, "RST");
  const zero = { conns: 0, inpkts: 0, inbytes: 0, outpkts: 0, outbytes: 0 };
  assertEngineCounts(d, { rx: 1, tx: 1, ...zero, drops: { closed_port: 1 } }, "ACK without a connection");
  const rst = tcpFrame(
    L2_FROM_ROUTER,
    { src: ip(IP.client1), dst: VIP },
    { sport: 40003, dport: 80, flags: RST },
  );
  assert.equal(d.input(1, rst).out.length, 0);
  assertEngineCounts(d, { rx: 2, tx: 1, ...zero, drops: { closed_port: 2 } }, "RST");
  // A segment from a real server to a LIP port that no connection holds is not a reply to
  // rewrite: the LIP is a local address without a socket there, hence a reset from the LIP.
  const stray = tcpFrame(
    l2FromLan(MAC.rs1),
    { src: ip(IP.rs1), dst: ip(IP.lip) },
    { sport: 8080, dport: 1024, flags: ACK, ack: 99 },
  );
  const r = d.one(2, stray);
  assert.equal(r.ifindex, 2);
  expectFields(r.f, { src: IP.lip, dst: IP.rs1, sport: 1024, dport: 8080, flags: "R", seq: 99 }, "stray");
  assertEngineCounts(d, { rx: 3, tx: 2, ...zero, drops: { closed_port: 3 } }, "stray segment to the LIP");
});

test("FULLNAT: a service with its own local address (ipvsadm -P) uses it, not the pool's LIP, both ways", () => {
  const d = fnatDirector();
  const laddr = "198.18.1.120";
  d.ipvsadm(`-P -t ${IP.vip}:80 -z ${laddr}`);
  const syn = d.one(
    1,
    tcpFrame(L2_FROM_ROUTER, { src: ip(IP.client1), dst: VIP }, { sport: 40100, dport: 80, flags: SYN }),
  );
  expectFields(syn.f, { src: laddr, dst: IP.rs1, dport: 8080, toa: `${IP.client1}:40100` }, "SYN");
  const back = d.one(
    2,
    tcpFrame(
      l2FromLan(MAC.rs1),
      { src: ip(IP.rs1), dst: ip(laddr) },
      { sport: 8080, dport: syn.f.sport as number, flags: SYN | ACK },
    ),
  );
  expectFields(back.f, { src: IP.vip, sport: 80, dst: IP.client1, dport: 40100 }, "SYN/ACK");
  // The UDP service has no local address of its own: the pool's LIP.
  const q = d.one(
    1,
    udpFrame(
      L2_FROM_ROUTER,
      { src: ip(IP.client2), dst: VIP },
      { sport: 3001, dport: 53, payload: bytes("q") },
    ),
  );
  expectFields(q.f, { src: IP.lip, dst: IP.rs2 }, "UDP query");
  assertEngineCounts(
    d,
    { rx: 3, tx: 3, conns: 2, inpkts: 2, inbytes: 40 + 29, outpkts: 1, outbytes: 40 },
    "laddr",
  );
});
