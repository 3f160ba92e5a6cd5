// Properties of the data path (fast-check): it never throws on hostile input and counts what it
// drops; every frame it rewrites passes the independent checksum check; NAT and FULLNAT
// replies are rewritten back to exactly what the client sent, mirrored.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  Director,
  decodeFrame,
  everyMethodDirector,
  flat,
  IP,
  L2_FROM_ROUTER,
  l2FromLan,
  MAC,
} from "../support/frames.js";
import {
  ACK,
  arpFrame,
  icmpErrorFrame,
  icmpFrame,
  ip,
  l3Of,
  mac,
  PSH,
  SYN,
  tcpFrame,
  udpFrame,
} from "../support/packet-builder.js";

const VIP = ip(IP.vip);

const clientAddr = fc.integer({ min: 1, max: 0xfffffe }).map((n) => (0xcb000000 | n) >>> 0); // 203.x.y.z
const port = fc.integer({ min: 1, max: 65535 });
const payload = fc.uint8Array({ maxLength: 64 });

/** Valid frames of every kind the engine meets, for mutation. */
function seedFrames(): Uint8Array[] {
  const c = ip(IP.client1);
  const syn = tcpFrame(L2_FROM_ROUTER, { src: c, dst: VIP }, { sport: 1000, dport: 80, flags: SYN });
  return [
    syn,
    tcpFrame(
      L2_FROM_ROUTER,
      { src: c, dst: VIP, df: true },
      { sport: 1001, dport: 83, flags: SYN, options: new Uint8Array([2, 4, 5, 180]) },
    ),
    udpFrame(L2_FROM_ROUTER, { src: c, dst: VIP }, { sport: 1002, dport: 53, payload: new Uint8Array(10) }),
    icmpFrame(L2_FROM_ROUTER, { src: c, dst: VIP }, { type: 8, rest: 1, data: new Uint8Array(8) }),
    icmpErrorFrame(l2FromLan(MAC.rs1), { src: ip(IP.rs1), dst: c }, 3, 3, 0, l3Of(syn)),
    arpFrame(mac("ff:ff:ff:ff:ff:ff"), mac(MAC.router), {
      op: 1,
      sha: mac(MAC.router),
      spa: ip(IP.router),
      tpa: VIP,
    }),
  ];
}

function dropCount(d: Director): number {
  const c = d.engine.counters;
  let n = 0;
  for (const x of c.drops) n += x;
  for (const x of c.parseErrors) n += x;
  return n;
}

function checkAll(out: { frame: Uint8Array }[]): void {
  for (const o of out) decodeFrame(o.frame);
}

/**
 * Output frames are checked only for well-formed input: the rewrites update checksums
 * incrementally (RFC 1624), so a segment that arrived with a wrong checksum leaves with a wrong
 * one, as from the kernel, whose TCP/UDP NAT handlers also update rather than verify.
 */
function wellFormed(frame: Uint8Array): boolean {
  try {
    decodeFrame(frame);
    return true;
  } catch {
    return false;
  }
}

test("random bytes never throw; every frame sent is well formed; drops are counted", () => {
  const d = everyMethodDirector();
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(1, 2), (bytes, ifindex) => {
      const before = dropCount(d);
      const r = d.input(ifindex, bytes);
      assert.ok(r.verdict === 0 || r.verdict === 1 || r.verdict === 2);
      if (r.verdict === 2) assert.ok(dropCount(d) > before, "a drop is counted");
      if (wellFormed(bytes)) checkAll(r.out);
    }),
    { numRuns: 2000 },
  );
});

test("mutated and truncated valid frames never throw; truncated IPv4 datagrams are counted drops", () => {
  const d = everyMethodDirector();
  const seeds = seedFrames();
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: seeds.length - 1 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      fc.nat(),
      (si, flips, cut) => {
        const f = seeds[si].slice();
        for (const [at, v] of flips) f[at % f.length] = v;
        const len = flips.length === 0 ? cut % f.length : f.length;
        const frame = f.subarray(0, len);
        const before = dropCount(d);
        const r = d.input(1, frame);
        if (r.verdict === 2) assert.ok(dropCount(d) > before, "a drop is counted");
        if (flips.length === 0 && si < 5 && len >= 14) {
          // An IPv4 datagram cut short of its total length is malformed.
          assert.equal(r.verdict, 2, `seed ${si} cut at ${len}`);
          assert.equal(r.out.length, 0);
        }
        if (wellFormed(frame)) checkAll(r.out);
      },
    ),
    { numRuns: 3000 },
  );
});

test("every frame the methods rewrite passes the independent checksum check", () => {
  const d = everyMethodDirector();
  fc.assert(
    fc.property(
      clientAddr,
      port,
      fc.constantFrom(80, 81, 82, 83),
      fc.constantFrom(SYN, ACK, PSH | ACK),
      fc.integer({ min: 2, max: 255 }),
      fc.boolean(),
      payload,
      (c, sport, dport, flags, ttl, df, data) => {
        const r = d.input(
          1,
          tcpFrame(
            L2_FROM_ROUTER,
            { src: c, dst: VIP, ttl, df },
            { sport, dport, flags, payload: data, seq: 7, ack: 9 },
          ),
        );
        checkAll(r.out);
        for (const o of r.out) {
          const f = flat(decodeFrame(o.frame));
          if (o.ifindex === 2 && f.proto !== 4) assert.equal(f.ttl, ttl - 1);
        }
      },
    ),
    { numRuns: 1000 },
  );
});

test("NAT and FULLNAT: the reply to a rewritten request comes back as the request mirrored", () => {
  const d = everyMethodDirector();
  const methods = [
    { dport: 80, udp: false, rs: MAC.rs1 },
    { dport: 83, udp: false, rs: MAC.rs3 },
    { dport: 53, udp: true, rs: MAC.rs1 },
    { dport: 54, udp: true, rs: MAC.rs3 },
  ];
  fc.assert(
    fc.property(
      clientAddr,
      port,
      fc.integer({ min: 0, max: methods.length - 1 }),
      payload,
      payload,
      (c, sport, mi, q, a) => {
        const m = methods[mi];
        const ipf = { src: c, dst: VIP };
        const req = m.udp
          ? udpFrame(L2_FROM_ROUTER, ipf, { sport, dport: m.dport, payload: q })
          : tcpFrame(L2_FROM_ROUTER, ipf, { sport, dport: m.dport, flags: SYN, payload: q });
        const r1 = d.input(1, req);
        assert.equal(r1.out.length, 1);
        const fwd = decodeFrame(r1.out[0].frame).ip;
        assert.ok(fwd !== null);
        const back = { src: ip(fwd.dst), dst: ip(fwd.src) };
        const rep = m.udp
          ? udpFrame(l2FromLan(m.rs), back, { sport: fwd.dport, dport: fwd.sport, payload: a })
          : tcpFrame(l2FromLan(m.rs), back, {
              sport: fwd.dport,
              dport: fwd.sport,
              flags: SYN | ACK,
              payload: a,
            });
        const r2 = d.input(2, rep);
        assert.equal(r2.out.length, 1);
        assert.equal(r2.out[0].ifindex, 1);
        const f = flat(decodeFrame(r2.out[0].frame));
        assert.equal(f.src, IP.vip);
        assert.equal(f.dst, fwdClient(c));
        assert.equal(f.sport, m.dport);
        assert.equal(f.dport, sport);
        assert.equal(f.payload, new TextDecoder().decode(a));
      },
    ),
    { numRuns: 500 },
  );
});

function fwdClient(c: number): string {
  return `${c >>> 24}.${(c >>> 16) & 255}.${(c >>> 8) & 255}.${c & 255}`;
}

test("destination counters always match the table: active = ESTABLISHED entries, inactive = the rest", () => {
  const op = fc.record({
    from: fc.constantFrom("client", "server", "time"),
    client: fc.integer({ min: 0, max: 2 }),
    port: fc.integer({ min: 0, max: 2 }),
    flags: fc.constantFrom(SYN, SYN | ACK, ACK, 0x11 /* FIN|ACK */, 0x04 /* RST */, 0x14 /* RST|ACK */),
    dt: fc.integer({ min: 0, max: 200_000 }),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), fc.constantFrom(1, 0), (ops, reuse) => {
      const d = new Director({ sysctls: { connReuseMode: reuse }, connCapacity: 8 });
      d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
      d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`);
      d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs2}:8080 -m`);
      const clients = [IP.client1, IP.client2, "203.0.113.30"];
      for (const o of ops) {
        const c = ip(clients[o.client]);
        const sport = 10000 + o.port;
        if (o.from === "time") d.advance(d.now + o.dt);
        else if (o.from === "client") {
          d.input(1, tcpFrame(L2_FROM_ROUTER, { src: c, dst: VIP }, { sport, dport: 80, flags: o.flags }));
        } else {
          for (const [rs, m] of [
            [IP.rs1, MAC.rs1],
            [IP.rs2, MAC.rs2],
          ] as const) {
            d.input(
              2,
              tcpFrame(l2FromLan(m), { src: ip(rs), dst: c }, { sport: 8080, dport: sport, flags: o.flags }),
            );
          }
        }
        const conns = d.engine.connections(d.now);
        for (const s of d.engine.services())
          for (const x of s.dests) {
            const mine = conns.filter((r) => !r.template && r.daddr === x.addr);
            const est = mine.filter((r) => r.state === "ESTABLISHED").length;
            assert.equal(x.activeConns, est, "active");
            assert.equal(x.inactConns, mine.length - est, "inactive");
          }
        assert.ok(conns.length <= 8);
      }
    }),
    { numRuns: 300 },
  );
});
