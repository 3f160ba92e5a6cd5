// The engine's IPv6 input path: service lookup (IPv6 entries of the service index, keyed by fold
// and confirmed word by word), persistence templates under the service's prefix length
// (ip_vs_sched_persist: ipv6_addr_prefix(snet, saddr, netmask)), what is not a service's, the
// director's own NDP, malformed packets and what is left to the kernel.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ControlApi } from "../../src/control/api.js";
import { parseFwmarkRule } from "../../src/control/fwmark-rule.js";
import { ipv6TextWords } from "../../src/core/addr.js";
import { Verdict } from "../../src/core/engine.js";
import { Director6, flat6, IP6, L2_6_FROM_ROUTER, MAC6 } from "../support/frames6.js";
import { ACK, concat, ethFrame, mac, SYN } from "../support/packet-builder.js";
import {
  a6,
  ETH_P_IPV6,
  fold6,
  icmp6Frame,
  ipv6Packet,
  NH_UDP,
  tcp6Frame,
  udp6Frame,
} from "../support/packet6.js";

const VIP = "2001:db8::100";
const CLIENT = IP6.client1;

function syn(d: Director6, src: string, dst: string, sport: number, dport = 80): Record<string, unknown> {
  return d.one(1, tcp6Frame(L2_6_FROM_ROUTER, { src, dst }, { sport, dport, flags: SYN })).f;
}

describe("engine, IPv6: services", () => {
  it("two VIPs with one fold and one port each reach their own real server (the words decide)", () => {
    const d = new Director6();
    // 2001:db8::100 and 2001:db8:0:100:: have the same fold.
    const vipB = "2001:db8:0:100::";
    assert.equal(fold6(VIP), fold6(vipB));
    d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
    d.ipvsadm(`-a -t [${VIP}]:80 -r [2001:db8:1::11]:80 -m`);
    d.ipvsadm(`-A -t [${vipB}]:80 -s rr`);
    d.ipvsadm(`-a -t [${vipB}]:80 -r [2001:db8:1::12]:80 -m`);
    assert.equal(syn(d, CLIENT, VIP, 1000).dst, IP6.rs1);
    assert.equal(syn(d, CLIENT, vipB, 1001).dst, IP6.rs2);
    // A third address with that fold is no service's: it is left to the kernel.
    const r = d.input(
      1,
      tcp6Frame(
        L2_6_FROM_ROUTER,
        { src: CLIENT, dst: "2001:db8:100::" },
        { sport: 1002, dport: 80, flags: SYN },
      ),
    );
    assert.equal(r.verdict, Verdict.Pass);
  });

  it("an IPv4 service on an address equal to an IPv6 VIP's fold takes no IPv6 packet, and the other way round", () => {
    const d = new Director6();
    const f = fold6(VIP);
    const a4 = `${f >>> 24}.${(f >>> 16) & 255}.${(f >>> 8) & 255}.${f & 255}`;
    d.ipvsadm(`-A -t ${a4}:80 -s rr`);
    d.ipvsadm(`-a -t ${a4}:80 -r 198.18.1.11:80 -m`);
    const r = d.input(
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 1000, dport: 80, flags: SYN }),
    );
    assert.equal(r.verdict, Verdict.Pass);
    assert.equal(d.engine.connCount(), 0);
  });

  it("a port-zero IPv6 service takes every port (-p), the connection keeping the client's port", () => {
    const d = new Director6();
    d.ipvsadm(`-A -t [${VIP}]:0 -s rr -p 60`);
    d.ipvsadm(`-a -t [${VIP}]:0 -r 2001:db8:1::11 -m`);
    const o = syn(d, CLIENT, VIP, 1000, 8443);
    assert.deepEqual([o.dst, o.dport], [IP6.rs1, 8443]);
  });

  it("FULLNAT toward an IPv6 service without an IPv6 local address (-P): nothing created", () => {
    const d = new Director6();
    d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
    d.ipvsadm(`-a -t [${VIP}]:80 -r [2001:db8:1::11]:80 --fullnat`);
    d.input(
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 1000, dport: 80, flags: SYN }),
    );
    assert.equal(d.engine.connCount(), 0);
  });

  it("a non-SYN to the VIP with no connection is answered as the stack would: a reset from the VIP", () => {
    const d = new Director6();
    d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
    d.ipvsadm(`-a -t [${VIP}]:80 -r [2001:db8:1::11]:80 -g`);
    const o = d.one(
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 1000, dport: 80, flags: ACK, ack: 77 }),
    );
    assert.deepEqual([o.f.src, o.f.dst, o.f.flags, o.f.seq], [IP6.vip, CLIENT, 0x04, 77]);
  });
});

describe("engine, IPv6: persistence (-M as a prefix length)", () => {
  const rows = [
    {
      desc: "-M 64: one template for the /64, both clients on its real server",
      mask: "-M 64",
      templates: 1,
      same: true,
    },
    { desc: "-M 128 (the default): one template per client", mask: "", templates: 2, same: false },
  ];
  for (const r of rows) {
    it(r.desc, () => {
      const d = new Director6();
      d.ipvsadm(`-A -t [${VIP}]:80 -s rr -p 300 ${r.mask}`);
      d.ipvsadm(`-a -t [${VIP}]:80 -r [2001:db8:1::11]:80 -g`);
      d.ipvsadm(`-a -t [${VIP}]:80 -r [2001:db8:1::12]:80 -g`);
      const a = syn(d, "2001:db8:ff::10", VIP, 1000);
      const b = syn(d, "2001:db8:ff::20", VIP, 1000);
      assert.equal(a.dmac === b.dmac, r.same);
      const conns = d.engine.connections(d.now);
      const templates = conns.filter((c) => c.template);
      assert.equal(templates.length, r.templates);
      if (r.templates === 1) {
        // The kernel's key: <IPPROTO_TCP, ipv6_addr_prefix(client, 64), 0, VIP, 80>.
        const t = templates[0];
        assert.deepEqual([t.caddr6, t.cport, t.vaddr6, t.vport], ["2001:db8:ff::", 0, VIP, 80]);
        assert.equal(t.caddr, fold6("2001:db8:ff::"));
      }
    });
  }

  it("-M 48 groups clients up to the 48th bit, not beyond", () => {
    const d = new Director6();
    d.ipvsadm(`-A -t [${VIP}]:80 -s rr -p 300 -M 48`);
    d.ipvsadm(`-a -t [${VIP}]:80 -r [2001:db8:1::11]:80 -g`);
    d.ipvsadm(`-a -t [${VIP}]:80 -r [2001:db8:1::12]:80 -g`);
    const a = syn(d, "2001:db8:ff:1::10", VIP, 1000);
    const b = syn(d, "2001:db8:ff:2::20", VIP, 1000);
    const c = syn(d, "2001:db8:fe::30", VIP, 1000);
    assert.equal(a.dmac, b.dmac);
    assert.notEqual(a.dmac, c.dmac);
    const keys = d.engine
      .connections(d.now)
      .filter((x) => x.template)
      .map((x) => x.caddr6)
      .sort();
    assert.deepEqual(keys, ["2001:db8:fe::", "2001:db8:ff::"]);
  });
});

describe("engine, IPv6: the director's own and malformed packets", () => {
  it("an NS for the VIP is answered with an NA (local.ts), from the engine's input", () => {
    const d = new Director6();
    d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
    const ns = icmp6Frame(
      { dmac: mac("33:33:ff:00:01:00"), smac: mac(MAC6.router) },
      { src: IP6.router, dst: "ff02::1:ff00:100", hl: 255 },
      { type: 135, data: concat(a6(VIP), Uint8Array.of(1, 1), mac(MAC6.router)) },
    );
    const o = d.one(1, ns);
    assert.deepEqual([o.f.icmpType, o.f.src, o.f.dst, o.f.dmac], [136, IP6.vip, IP6.router, MAC6.router]);
  });

  it("a malformed IPv6 packet is dropped and counted by its reason", () => {
    const d = new Director6();
    const p = ipv6Packet({ src: CLIENT, dst: VIP }, NH_UDP, new Uint8Array(8));
    p[5] = 200;
    const r = d.input(1, ethFrame(mac(MAC6.dir0), mac(MAC6.router), ETH_P_IPV6, p));
    assert.equal(r.verdict, Verdict.Drop);
    assert.deepEqual(d.engine.counters.dropTable(), { parse_err_ip6_plen: 1 });
  });

  it("IPv6 traffic that is no service's goes to the kernel, as IPv4 traffic does", () => {
    const d = new Director6();
    const r = d.input(
      1,
      udp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: IP6.dir0 }, { sport: 1, dport: 53 }),
    );
    assert.equal(r.verdict, Verdict.Pass);
    assert.equal(d.engine.counters.passed, 1);
  });

  it("ipvsadm -Lnc lists IPv6 connections by their addresses", () => {
    const d = new Director6();
    d.ipvsadm(`-A -u [${VIP}]:53 -s rr`);
    d.ipvsadm(`-a -u [${VIP}]:53 -r [2001:db8:1::12]:53 -g`);
    const o = d.one(1, udp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 5000, dport: 53 }));
    assert.equal(o.f.dmac, MAC6.rs2);
    const [c] = d.engine.connections(d.now);
    assert.deepEqual(
      [c.caddr6, c.vaddr6, c.daddr6, c.state],
      ["2001:db8:ff::10", VIP, "2001:db8:1::12", "UDP"],
    );
  });
});

describe("engine, IPv6: firewall-mark services (ip6tables rules, issue 14)", () => {
  it("a host rule added to the classifier alone (the simulation's way) still makes its address answered", () => {
    const d = new Director6();
    const w = ipv6TextWords("2001:db8::77") as Int32Array;
    assert.equal(d.engine.local.ownsLocal6(w), false);
    d.engine.fwmarks.add(parseFwmarkRule("-d 2001:db8::77 -j MARK --set-mark 9"));
    assert.equal(d.engine.local.ownsLocal6(w), true);
  });

  it("a -f 5 -6 service gets the connection an IPv6 host rule marks; other ports and IPv4 rules mark nothing", () => {
    const d = new Director6();
    const api = new ControlApi(d.engine, () => d.now);
    api.apply([
      { op: "add-fwmark", rule: `-d ${VIP} -p tcp -m multiport --dports 80,443 -j MARK --set-mark 5` },
      // An iptables rule (no address): it never sees IPv6 packets.
      { op: "add-fwmark", rule: "-p tcp --dport 8080 -j MARK --set-mark 5" },
    ]);
    d.ipvsadm("-A -f 5 -6 -s rr");
    d.ipvsadm("-a -f 5 -6 -r [2001:db8:1::11]:0 -m");
    const cases: { dport: number; dst: string | null }[] = [
      { dport: 80, dst: IP6.rs1 },
      { dport: 443, dst: IP6.rs1 },
      { dport: 8080, dst: null },
      { dport: 22, dst: null },
    ];
    let sport = 2000;
    for (const t of cases) {
      const r = d.input(
        1,
        tcp6Frame(
          L2_6_FROM_ROUTER,
          { src: CLIENT, dst: VIP },
          { sport: sport++, dport: t.dport, flags: SYN },
        ),
      );
      const out = r.out.length === 1 ? flat6(r.out[0].frame) : null;
      assert.equal(
        out !== null && out.dport === t.dport ? out.dst : null,
        t.dst,
        `port ${t.dport}: verdict ${r.verdict}, ${r.out.length} frames`,
      );
    }
    assert.equal(d.engine.connCount(), 2);
    const [c] = d.engine.connections(d.now);
    assert.deepEqual([c.vaddr6, c.daddr6], [VIP, "2001:db8:1::11"]);
  });
});
