// The output tail (src/core/output.ts, ip_vs_xmit.c's __ip_vs_get_out_rt and ensure_mtu_is_adequate):
// a destination's path is resolved once and kept until the host or the control plane changes;
// a packet that cannot leave counts one drop reason and is a Drop verdict.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Director, IP, L2_FROM_ROUTER, MAC } from "../support/frames.js";
import { ACK, ip, SYN, tcpFrame } from "../support/packet-builder.js";

const CLIENT = ip(IP.client1);
const VIP = ip(IP.vip);
const DROP = 2;

const mac = (s: string): Uint8Array => Uint8Array.from(s.split(":").map((x) => Number.parseInt(x, 16)));
const eth0 = {
  ifindex: 1,
  name: "eth0",
  mac: mac(MAC.dir0),
  addrs: [{ addr: ip(IP.dir0), prefix: 24 }],
  mtu: 1500,
};

function drDirector(): Director {
  const d = new Director();
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:80 -g`);
  return d;
}

const syn = (sport: number) =>
  tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport, dport: 80, flags: SYN, seq: 1 });
const ack = (sport: number) =>
  tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport, dport: 80, flags: ACK, seq: 2, ack: 1 });

test("output: a destination's path is kept until the host changes, then looked up again", () => {
  const d = drDirector();
  const first = d.one(1, syn(41000));
  assert.equal(first.ifindex, 2, "rs1 is on eth1's LAN");
  assert.equal(first.f.dmac, MAC.rs1);
  // The host loses eth1: rs1 is now reached through the default route (the router on eth0).
  d.engine.setHost([eth0], [{ dst: 0, prefix: 0, via: ip(IP.router), ifindex: 1 }]);
  d.engine.neigh.confirm(1, ip(IP.router), mac(MAC.router), d.now);
  const next = d.one(1, ack(41000));
  assert.equal(next.ifindex, 1, "the cached path went with the host change");
  assert.equal(next.f.dmac, MAC.router);
  assert.equal(next.f.dst, IP.vip, "DR leaves the IP header as the client sent it");
});

test("output: a destination without a route counts one no_route per packet and is a Drop", () => {
  const d = drDirector();
  d.one(1, syn(41001));
  // No route at all toward rs1 (eth0 only, no default route).
  d.engine.setHost([eth0], []);
  for (let k = 1; k <= 3; k++) {
    const r = d.input(1, ack(41001));
    assert.equal(r.out.length, 0);
    assert.equal(r.verdict, DROP);
    assert.equal(d.engine.counters.dropTable().no_route, k, `packet ${k}: one no_route each`);
  }
});

test("output: a datagram refused for its size is a Drop verdict (frag_needed with DF, too_big without)", () => {
  const d = new Director({ mtu1: 1400 });
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`);
  const big = (df: boolean, sport: number) =>
    tcpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP, df },
      { sport, dport: 80, flags: SYN, payload: new Uint8Array(1460) },
    );
  const withDf = d.input(1, big(true, 41000));
  assert.equal(withDf.verdict, DROP);
  assert.equal(withDf.out.length, 1, "the client gets fragmentation-needed");
  const withoutDf = d.input(1, big(false, 41001));
  assert.equal(withoutDf.verdict, DROP);
  assert.equal(withoutDf.out.length, 0);
  assert.deepEqual(
    {
      frag_needed: d.engine.counters.dropTable().frag_needed,
      too_big: d.engine.counters.dropTable().too_big,
    },
    { frag_needed: 1, too_big: 1 },
  );
});
