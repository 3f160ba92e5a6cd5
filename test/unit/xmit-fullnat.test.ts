// FULLNAT (after DPVS / Alibaba LVS): CIP:cport → LIP:lport and VIP:vport → RIP:rport on the
// way in, the inverse on the way back; the client's address travels in a TOA option
// (kind 254, length 8: port, IPv4 address) on the SYN and on the ACK completing the handshake.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Director, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { ACK, bytes, ip, PSH, SYN, tcpFrame, udpFrame } from "../support/packet-builder.js";

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
  const syn = d.one(
    1,
    tcpFrame(L2_FROM_ROUTER, { src: client, dst: VIP }, { sport: 40000, dport: 80, flags: SYN, seq: 1 }),
  );
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
      const o = d.one(
        1,
        tcpFrame(
          L2_FROM_ROUTER,
          { src: client, dst: VIP },
          { sport: 40000, dport: 80, flags: s.flags, payload },
        ),
      );
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
      const o = d.one(
        2,
        tcpFrame(
          l2FromLan(MAC.rs1),
          { src: ip(IP.rs1), dst: ip(IP.lip) },
          { sport: 8080, dport: lport, flags: s.flags, payload },
        ),
      );
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
  }
  assert.equal(d.engine.connections(d.now)[0].state, "ESTABLISHED");
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
});
