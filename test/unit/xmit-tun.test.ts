// TUN (LVS-TUN, ip_vs_tunnel_xmit): the client's datagram (TTL - 1) inside a new IPv4 header
// (IPIP, proto 4) from the director's address toward the real server, DF copied; a DF
// datagram that no longer fits the link after the 20-byte overhead earns the client an ICMP
// fragmentation-needed with next-hop MTU 1480.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Director, IP, L2_FROM_ROUTER, MAC } from "../support/frames.js";
import { bytes, ip, l3Of, SYN, tcpFrame, udpFrame } from "../support/packet-builder.js";

const CLIENT = ip(IP.client1);
const VIP = ip(IP.vip);

function tunDirector(): Director {
  const d = new Director();
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.far} -i`);
  d.ipvsadm(`-A -u ${IP.vip}:53 -s rr`);
  d.ipvsadm(`-a -u ${IP.vip}:53 -r ${IP.rs1} -i`);
  return d;
}

/** A TCP SYN whose IP datagram is exactly `size` bytes. */
function synOfSize(size: number, df: boolean, sport = 40000): Uint8Array {
  return tcpFrame(
    L2_FROM_ROUTER,
    { src: CLIENT, dst: VIP, ttl: 64, df },
    { sport, dport: 80, flags: SYN, payload: new Uint8Array(size - 40).fill(0x5a) },
  );
}

const cases = [
  {
    desc: "remote real server via the gateway, DF set",
    frame: synOfSize(60, true),
    expect: {
      dmac: MAC.gw1,
      smac: MAC.dir1,
      src: IP.dir1,
      dst: IP.far,
      proto: 4,
      df: true,
      ttl: 63,
      len: 80,
    },
  },
  {
    desc: "largest datagram that fits (1480 + 20 = 1500)",
    frame: synOfSize(1480, true, 40001),
    expect: { dmac: MAC.gw1, src: IP.dir1, dst: IP.far, df: true, len: 1500 },
  },
  {
    desc: "UDP to a real server on the LAN, DF clear",
    frame: udpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP, ttl: 9 },
      { sport: 7, dport: 53, payload: bytes("q") },
    ),
    expect: { dmac: MAC.rs1, smac: MAC.dir1, src: IP.dir1, dst: IP.rs1, proto: 4, df: false, ttl: 8 },
  },
];

test("TUN wraps the datagram in IPIP from the director's address to the RIP, inner intact but TTL-1", () => {
  const d = tunDirector();
  for (const c of cases) {
    const o = d.one(1, c.frame);
    assert.equal(o.ifindex, 2, c.desc);
    for (const [k, v] of Object.entries(c.expect)) assert.equal(o.f[k], v, `${c.desc}: ${k}`);
    const inner = l3Of(o.raw).subarray(20);
    const sent = l3Of(c.frame);
    assert.equal(inner.length, sent.length, `${c.desc}: inner length`);
    assert.equal(o.f.isrc, IP.client1);
    assert.equal(o.f.idst, IP.vip);
    assert.equal(o.f.ittl, sent[8] - 1, `${c.desc}: inner TTL - 1`);
    for (let i = 0; i < sent.length; i++) {
      if (i !== 8 && i !== 10 && i !== 11) assert.equal(inner[i], sent[i], `${c.desc}: inner byte ${i}`);
    }
  }
});

test("TUN: a DF datagram of 1500 bytes gets fragmentation-needed (MTU 1480) back to the client", () => {
  const d = tunDirector();
  const big = synOfSize(1500, true);
  const o = d.one(1, big);
  assert.equal(o.ifindex, 1);
  for (const [k, v] of Object.entries({
    dmac: MAC.router,
    smac: MAC.dir0,
    dst: IP.client1,
    proto: 1,
    icmpType: 3,
    icmpCode: 4,
    icmpRest: 1480,
    qsrc: IP.client1,
    qdst: IP.vip,
    qsport: 40000,
    qdport: 80,
  }))
    assert.equal(o.f[k], v, k);
  // As in the kernel's __ip_vs_get_out_rt, decrement_ttl runs before ensure_mtu_is_adequate:
  // the quoted header carries the decremented TTL.
  assert.equal(o.f.qttl, 63);
  assert.equal(d.engine.counters.dropTable().frag_needed, 1);
});

test("TUN: a datagram of 1500 bytes without DF is dropped and counted, nothing is sent", () => {
  const d = tunDirector();
  const r = d.input(1, synOfSize(1500, false));
  assert.equal(r.out.length, 0);
  assert.equal(d.engine.counters.dropTable().too_big, 1);
});
