// Layer 2 at the director: ARP answers for the VIPs and LIPs (never for addresses tsvs does not
// own), and next-hop resolution: an unresolved real server gets a broadcast request, the frame
// waits (unres_qlen) and leaves, intact, when the reply arrives.

import assert from "node:assert/strict";
import { test } from "node:test";
import { parseFwmarkRule } from "../../src/control/fwmark-rule.js";
import { Director, decodeFrame, flat, IP, L2_FROM_ROUTER, MAC } from "../support/frames.js";
import { ACK, arpFrame, bytes, icmpFrame, ip, mac, PSH, SYN, tcpFrame } from "../support/packet-builder.js";

const BCAST = mac("ff:ff:ff:ff:ff:ff");

function director(seedNeigh = true): Director {
  const d = new Director({ seedNeigh });
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`);
  return d;
}

const requests = [
  { desc: "VIP on eth0", ifindex: 1, from: MAC.router, spa: IP.router, tpa: IP.vip, answer: MAC.dir0 },
  { desc: "LIP on eth1", ifindex: 2, from: MAC.rs2, spa: IP.rs2, tpa: IP.lip, answer: MAC.dir1 },
  {
    desc: "the kernel's own address (not tsvs's)",
    ifindex: 1,
    from: MAC.router,
    spa: IP.router,
    tpa: IP.dir0,
    answer: null,
  },
  {
    desc: "someone else's address",
    ifindex: 1,
    from: MAC.router,
    spa: IP.router,
    tpa: "198.18.0.77",
    answer: null,
  },
];

test("ARP requests: answered for VIPs and LIPs with the link's MAC, passed otherwise", () => {
  for (const r of requests) {
    const d = director();
    const req = arpFrame(BCAST, mac(r.from), { op: 1, sha: mac(r.from), spa: ip(r.spa), tpa: ip(r.tpa) });
    const res = d.input(r.ifindex, req);
    if (r.answer === null) {
      assert.equal(res.out.length, 0, r.desc);
      assert.equal(res.verdict, 0, r.desc);
      continue;
    }
    assert.equal(res.out.length, 1, r.desc);
    assert.equal(res.out[0].ifindex, r.ifindex, r.desc);
    const f = flat(decodeFrame(res.out[0].frame));
    const want = { dmac: r.from, smac: r.answer, arp: 2, sha: r.answer, spa: r.tpa, tha: r.from, tpa: r.spa };
    for (const [k, v] of Object.entries(want)) assert.equal(f[k], v, `${r.desc}: ${k}`);
    assert.equal(res.out[0].frame.length, 42, `${r.desc}: frame length`);
  }
});

test("unresolved real server: ARP request goes out, frames wait, the reply releases them in order", () => {
  const d = director(false);
  d.engine.neigh.confirm(1, ip(IP.router), mac(MAC.router), d.now);
  const syn = tcpFrame(
    L2_FROM_ROUTER,
    { src: ip(IP.client1), dst: ip(IP.vip) },
    { sport: 1234, dport: 80, flags: SYN, seq: 1 },
  );
  const r1 = d.input(1, syn);
  assert.equal(r1.out.length, 1, "only the ARP request");
  const req = flat(decodeFrame(r1.out[0].frame));
  assert.equal(r1.out[0].ifindex, 2);
  for (const [k, v] of Object.entries({
    dmac: "ff:ff:ff:ff:ff:ff",
    smac: MAC.dir1,
    arp: 1,
    sha: MAC.dir1,
    spa: IP.dir1,
    tpa: IP.rs1,
  }))
    assert.equal(req[k], v, `request ${k}`);

  // A second frame of the same connection waits too, without a second request.
  const data = tcpFrame(
    L2_FROM_ROUTER,
    { src: ip(IP.client1), dst: ip(IP.vip) },
    {
      sport: 1234,
      dport: 80,
      flags: PSH | ACK,
      seq: 2,
      payload: bytes("hi"),
    },
  );
  assert.equal(d.input(1, data, d.now + 10).out.length, 0);

  const reply = arpFrame(mac(MAC.dir1), mac(MAC.rs1), {
    op: 2,
    sha: mac(MAC.rs1),
    spa: ip(IP.rs1),
    tha: mac(MAC.dir1),
    tpa: ip(IP.dir1),
  });
  const r2 = d.input(2, reply, d.now + 20);
  assert.equal(r2.out.length, 2, "both queued frames released");
  const seqs = r2.out.map((o) => {
    assert.equal(o.ifindex, 2);
    const f = flat(decodeFrame(o.frame));
    for (const [k, v] of Object.entries({
      dmac: MAC.rs1,
      smac: MAC.dir1,
      src: IP.client1,
      dst: IP.rs1,
      dport: 8080,
      ttl: 63,
    }))
      assert.equal(f[k], v, k);
    return f.seq;
  });
  assert.deepEqual(seqs, [1, 2]);
  // Now resolved: the next frame goes straight out.
  const r3 = d.input(
    1,
    tcpFrame(
      L2_FROM_ROUTER,
      { src: ip(IP.client1), dst: ip(IP.vip) },
      { sport: 1234, dport: 80, flags: ACK, seq: 4 },
    ),
    d.now + 30,
  );
  assert.equal(r3.out.length, 1);
  assert.equal(flat(decodeFrame(r3.out[0].frame)).dmac, MAC.rs1);
});

test("a neighbour that never answers: requests are retried, then its queued frames are dropped and counted", () => {
  const d = director(false);
  const t0 = d.now;
  const syn = tcpFrame(
    L2_FROM_ROUTER,
    { src: ip(IP.client1), dst: ip(IP.vip) },
    { sport: 1, dport: 80, flags: SYN },
  );
  assert.equal(d.input(1, syn, t0).out.length, 1);
  let requests = 1;
  for (let t = t0 + 500; t <= t0 + 5000; t += 500) {
    d.out = [];
    d.engine.tick(t);
    requests += d.out.filter((o) => decodeFrame(o.frame).arp?.op === 1).length;
  }
  assert.equal(requests, 3, "mcast_solicit = 3 requests");
  assert.equal(d.engine.counters.dropTable().neigh_failed, 1);
});

test("fwmark-only service: the host a MARK rule matches (-d A, -d A/32) is answered for ARP and ping", () => {
  const rules: Array<[string, boolean]> = [
    [`-d ${IP.vip} -p tcp --dport 80 -j MARK --set-mark 10`, true],
    [`-d ${IP.vip}/32 -j MARK --set-mark 10`, true],
    [`! -d ${IP.vip} -j MARK --set-mark 10`, false],
    [`-d ${IP.vip}/24 -j MARK --set-mark 10`, false],
    [`-s ${IP.vip} -j MARK --set-mark 10`, false],
  ];
  for (const [rule, owned] of rules) {
    const d = new Director();
    d.engine.fwmarks.add(parseFwmarkRule(rule));
    d.ipvsadm("-A -f 10 -s rr");
    d.ipvsadm(`-a -f 10 -r ${IP.rs1} -g`);
    const arp = d.input(
      1,
      arpFrame(BCAST, mac(MAC.router), { op: 1, sha: mac(MAC.router), spa: ip(IP.router), tpa: ip(IP.vip) }),
    );
    assert.equal(arp.out.length, owned ? 1 : 0, `${rule}: ARP`);
    if (owned) assert.equal(flat(decodeFrame(arp.out[0].frame)).sha, MAC.dir0, rule);
    const ping = d.input(1, icmpFrame(L2_FROM_ROUTER, { src: ip(IP.router), dst: ip(IP.vip) }, { type: 8 }));
    assert.equal(ping.out.length, owned ? 1 : 0, `${rule}: ping`);
    assert.equal(d.engine.counters.echoReplies, owned ? 1 : 0, `${rule}: echo replies`);
  }
});

test("fwmark-only service: an address declared with ctl.addOwnedAddress is answered too", () => {
  const d = new Director();
  d.engine.fwmarks.add(parseFwmarkRule(`-d ${IP.vip}/24 -j MARK --set-mark 10`));
  d.ipvsadm("-A -f 10 -s rr");
  d.ipvsadm(`-a -f 10 -r ${IP.rs1} -g`);
  const req = () =>
    arpFrame(BCAST, mac(MAC.router), { op: 1, sha: mac(MAC.router), spa: ip(IP.router), tpa: ip(IP.vip) });
  // A network rule names no single host: nothing tells tsvs that the VIP is its own.
  assert.equal(d.input(1, req()).out.length, 0);
  d.engine.ctl.addOwnedAddress(ip(IP.vip));
  const r = d.input(1, req());
  assert.equal(r.out.length, 1);
  assert.equal(flat(decodeFrame(r.out[0].frame)).sha, MAC.dir0);
});
