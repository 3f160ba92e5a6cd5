// VRRP's hold on addresses in the engine (core/route.ts setVrrp): a MASTER instance's addresses are
// answered (ARP, echo) and served, even a NAT gateway address that is no service's VIP; a BACKUP
// instance's are neither, though a service has the VIP; the daemon's ownership sets follow the
// instances' states (daemon/vrrp.ts).

import assert from "node:assert/strict";
import { test } from "node:test";
import { vrrpInstanceDefaults } from "../../src/core/vrrp/config.js";
import { splitScript } from "../../src/daemon/scripts.js";
import { initialOwnership, ownershipOf } from "../../src/daemon/vrrp.js";
import { Director, decodeFrame, flat, IP, L2_FROM_ROUTER, MAC } from "../support/frames.js";
import { arpFrame, ip, mac, SYN, tcpFrame } from "../support/packet-builder.js";

const BCAST = mac("ff:ff:ff:ff:ff:ff");
const GW = "198.18.1.200";

function director(): Director {
  const d = new Director({ seedNeigh: true });
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`);
  return d;
}

function arpFor(d: Director, ifindex: number, from: string, spa: string, tpa: string) {
  const req = arpFrame(BCAST, mac(from), { op: 1, sha: mac(from), spa: ip(spa), tpa: ip(tpa) });
  return d.input(ifindex, req);
}

const syn = () =>
  tcpFrame(
    L2_FROM_ROUTER,
    { src: ip(IP.client1), dst: ip(IP.vip) },
    { sport: 1234, dport: 80, flags: SYN, seq: 1 },
  );

test("BACKUP: the VIP is neither answered nor served; MASTER: both, and the gateway address is answered", () => {
  const d = director();
  d.engine.setVrrp([], [ip(IP.vip), ip(GW)]);
  assert.equal(
    arpFor(d, 1, MAC.router, IP.router, IP.vip).out.length,
    0,
    "no ARP answer for a held-back VIP",
  );
  assert.equal(arpFor(d, 2, MAC.rs1, IP.rs1, GW).out.length, 0, "no ARP answer for a held-back gateway");
  const r = d.input(1, syn());
  assert.equal(r.out.length, 0, "a SYN to a held-back VIP is not forwarded");
  assert.equal(d.engine.conns.size, 0);

  d.engine.setVrrp([ip(IP.vip), ip(GW)], []);
  const a = arpFor(d, 1, MAC.router, IP.router, IP.vip);
  assert.equal(a.out.length, 1);
  assert.equal(flat(decodeFrame(a.out[0].frame)).sha, MAC.dir0);
  const g = arpFor(d, 2, MAC.rs1, IP.rs1, GW);
  assert.equal(g.out.length, 1, "the gateway address (no service) is answered while MASTER");
  assert.equal(flat(decodeFrame(g.out[0].frame)).sha, MAC.dir1);
  const f = d.input(1, syn());
  assert.equal(f.out.length, 1, "the SYN is forwarded");
  assert.equal(d.engine.conns.size, 1);
});

test("use_vmac: a MASTER address is answered with its instance's virtual MAC, others with the link's", () => {
  const d = director();
  d.engine.setVrrp([ip(IP.vip), ip(GW)], [], [{ addr: ip(IP.vip), mac: [0, 0, 0x5e, 0, 1, 51] }]);
  const a = flat(decodeFrame(arpFor(d, 1, MAC.router, IP.router, IP.vip).out[0].frame));
  assert.equal(a.sha, "00:00:5e:00:01:33");
  assert.equal(a.smac, "00:00:5e:00:01:33");
  const g = flat(decodeFrame(arpFor(d, 2, MAC.rs1, IP.rs1, GW).out[0].frame));
  assert.equal(g.sha, MAC.dir1);
});

test("ownership: addresses of MASTER instances are held, every other instance's held back", () => {
  const a = vrrpInstanceDefaults({
    name: "A",
    iface: "eth0",
    vrid: 1,
    addrs: [{ addr: 0xc6120064, prefix: 24 }],
  });
  const b = vrrpInstanceDefaults({
    name: "B",
    iface: "eth1",
    vrid: 2,
    addrs: [{ addr: 0xc6120101, prefix: 24 }],
    excludedAddrs: [{ addr: 0xc6120102, prefix: 32 }],
  });
  assert.deepEqual(
    ownershipOf([
      { cfg: a, state: "MASTER" },
      { cfg: b, state: "BACKUP" },
    ]),
    { master: [0xc6120064], standby: [0xc6120101, 0xc6120102] },
  );
  assert.deepEqual(
    ownershipOf([
      { cfg: a, state: "FAULT" },
      { cfg: b, state: "MASTER" },
    ]),
    { master: [0xc6120101, 0xc6120102], standby: [0xc6120064] },
  );
  // use_vmac: MASTER addresses carry the instance's virtual MAC.
  assert.deepEqual(ownershipOf([{ cfg: { ...a, useVmac: true }, state: "MASTER" }]).macs, [
    { addr: 0xc6120064, mac: [0, 0, 0x5e, 0, 1, 1] },
  ]);
  // Only an owner (255) that starts MASTER holds its addresses before the first advert.
  const owner = vrrpInstanceDefaults({ ...a, initialState: "MASTER", priority: 255 });
  const wants = vrrpInstanceDefaults({ ...b, initialState: "MASTER", priority: 200 });
  assert.deepEqual(
    initialOwnership({
      routerId: null,
      instances: [owner, wants],
      syncGroups: [],
      scripts: [],
      lvsSyncDaemon: null,
    }),
    { master: [0xc6120064], standby: [0xc6120101, 0xc6120102] },
  );
});

test("notify lines split as keepalived splits them", () => {
  assert.deepEqual(splitScript("/etc/keepalived/notify.sh master"), ["/etc/keepalived/notify.sh", "master"]);
  assert.deepEqual(splitScript(`"/opt/my scripts/n.sh" 'a b'  c`), ["/opt/my scripts/n.sh", "a b", "c"]);
  assert.deepEqual(splitScript(`x ""`), ["x", ""]);
});
