// DR (LVS-DR, ip_vs_dr_xmit): only the Ethernet header changes (real server's MAC, the
// director's MAC on that link); the IP datagram is forwarded as the client sent it but for
// TTL - 1 and the header checksum. Replies never cross the director.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Director, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { ACK, bytes, ip, l3Of, PSH, SYN, tcpFrame, udpFrame } from "../support/packet-builder.js";

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
});

test("DR forwards with dport forced to the service port and the state machine in INPUT_ONLY rows", () => {
  const d = drDirector();
  d.one(1, tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 33001, dport: 80, flags: SYN }));
  let c = d.engine.connections(d.now)[0];
  assert.equal(c.dport, 80);
  assert.equal(c.state, "SYN_RECV");
  d.one(1, tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 33001, dport: 80, flags: ACK }));
  c = d.engine.connections(d.now)[0];
  assert.equal(c.state, "ESTABLISHED");
  // A reply from the real server (src VIP, as DR real servers answer) is not the director's business.
  const r = d.input(
    2,
    tcpFrame(l2FromLan(MAC.rs2), { src: VIP, dst: CLIENT }, { sport: 80, dport: 33001, flags: ACK }),
  );
  assert.equal(r.out.length, 0);
});
