// IPv6 in the director's routing table (src/core/route.ts): interface addresses and their prefix
// routes, routes through link-local gateways, longest prefix first, the source address as the
// kernel's ipv6_dev_get_saddr picks it on a director (scope, outgoing interface, longest common
// prefix), link-scoped destinations on the interface they are asked for, and the IPv6 side of
// --host-vips and VRRP. IPv4 lookups are unaffected by the IPv6 lists.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatIPv4, ipv6TextWords, ipv6WordsText, parseIPv4 } from "../../src/core/addr.js";
import { Route6Result, RouteResult, RouteTable } from "../../src/core/route.js";

const A = (s: string): number => parseIPv4(s) as number;
const W = (s: string): Int32Array => ipv6TextWords(s) as Int32Array;
const MAC = Uint8Array.from([2, 0, 0, 0, 0, 1]);

function table(): RouteTable {
  const t = new RouteTable();
  t.addIface({
    ifindex: 1,
    name: "eth0",
    mac: MAC,
    mtu: 1500,
    addrs: [{ addr: A("198.18.0.1"), prefix: 24 }],
    addrs6: [
      { addr6: "2001:db8:1::1", prefix: 64 },
      { addr6: "fe80::1", prefix: 64 },
    ],
  });
  t.addIface({
    ifindex: 2,
    name: "eth1",
    mac: MAC,
    mtu: 1500,
    addrs: [],
    addrs6: [
      { addr6: "fe80::2", prefix: 64 },
      { addr6: "fd00:1::1", prefix: 64 },
      { addr6: "2001:db8:2::1", prefix: 64 },
    ],
  });
  // A link with a link-local address only: its traffic beyond the link leaves from another one's global.
  t.addIface({
    ifindex: 3,
    name: "eth2",
    mac: MAC,
    mtu: 1500,
    addrs: [],
    addrs6: [{ addr6: "fe80::3", prefix: 64 }],
  });
  t.addRoute({ dst: 0, prefix: 48, via: 0, ifindex: 2, dst6: "2001:db8:99::", via6: "fe80::9" });
  t.addRoute({ dst: 0, prefix: 48, via: 0, ifindex: 3, dst6: "2001:db8:77::", via6: "fe80::7" });
  t.addRoute({ dst: 0, prefix: 0, via: 0, ifindex: 1, dst6: "::", via6: "2001:db8:1::fe" });
  t.addRoute({ dst: 0, prefix: 0, via: A("198.18.0.254"), ifindex: 1 });
  return t;
}

describe("RouteTable.lookup6", () => {
  const cases: Array<[string, number, string, string, boolean, string]> = [
    // destination, oif, interface, next hop, on-link, source
    ["2001:db8:1::7", 0, "eth0", "2001:db8:1::7", true, "2001:db8:1::1"],
    ["fd00:1::5", 0, "eth1", "fd00:1::5", true, "fd00:1::1"],
    ["2001:db8:2::5", 0, "eth1", "2001:db8:2::5", true, "2001:db8:2::1"],
    ["2001:db8:99::1", 0, "eth1", "fe80::9", false, "2001:db8:2::1"],
    ["2001:4860::8888", 0, "eth0", "2001:db8:1::fe", false, "2001:db8:1::1"],
    ["2001:db8:77::1", 0, "eth2", "fe80::7", false, "2001:db8:1::1"],
    ["fe80::77", 2, "eth1", "fe80::77", true, "fe80::2"],
    ["fe80::77", 0, "eth0", "fe80::77", true, "fe80::1"],
    ["ff02::1", 1, "eth0", "ff02::1", true, "fe80::1"],
    ["ff02::1:ff00:7", 3, "eth2", "ff02::1:ff00:7", true, "fe80::3"],
    // A global destination with an oif: the routes decide, not the oif.
    ["2001:db8:2::5", 1, "eth1", "2001:db8:2::5", true, "2001:db8:2::1"],
  ];
  for (const [dst, oif, iface, nexthop, onLink, src] of cases)
    it(`${dst}${oif !== 0 ? ` (oif ${oif})` : ""} → ${iface} ${onLink ? "on-link" : `via ${nexthop}`} from ${src}`, () => {
      const t = table();
      const r = new Route6Result();
      // Twice, and at an offset: the answer does not depend on earlier lookups.
      const d = new Int32Array(8);
      d.set(W(dst), 4);
      for (let k = 0; k < 2; k++) {
        assert.ok(t.lookup6(d, 4, oif, r));
        assert.equal(r.iface?.name, iface);
        assert.equal(ipv6WordsText(r.nexthop), nexthop);
        assert.equal(r.onLink, onLink);
        assert.equal(ipv6WordsText(r.src), src);
      }
    });

  it("has no route where nothing matches, and :: as source without any IPv6 address", () => {
    const t = new RouteTable();
    t.addIface({
      ifindex: 1,
      name: "eth0",
      mac: MAC,
      mtu: 1500,
      addrs: [],
      addrs6: [{ addr6: "fd00::1", prefix: 64 }],
    });
    const r = new Route6Result();
    assert.equal(t.lookup6(W("fd00:1::1"), 0, 0, r), false);
    assert.equal(r.iface, null);
    const bare = new RouteTable();
    bare.addIface({ ifindex: 1, name: "eth0", mac: MAC, mtu: 1500, addrs: [] });
    assert.ok(bare.lookup6(W("fe80::9"), 0, 1, r));
    assert.equal(ipv6WordsText(r.src), "::");
  });

  it("the interface keeps its link-local address and forwarding flag", () => {
    const t = table();
    assert.equal(ipv6WordsText(t.iface(2)?.linkLocal6 as Int32Array), "fe80::2");
    assert.equal(t.iface(2)?.forwarding6, false);
    const u = new RouteTable();
    u.addIface({ ifindex: 4, name: "x", mac: MAC, mtu: 1500, addrs: [], forwarding6: true });
    assert.equal(u.iface(4)?.linkLocal6, null);
    assert.equal(u.iface(4)?.forwarding6, true);
  });

  it("replace() drops the IPv6 routes of interfaces that are gone", () => {
    const t = table();
    const r = new Route6Result();
    t.replace(
      [
        {
          ifindex: 1,
          name: "eth0",
          mac: MAC,
          mtu: 1500,
          addrs: [],
          addrs6: [{ addr6: "2001:db8:1::1", prefix: 64 }],
        },
      ],
      [
        { dst: 0, prefix: 48, via: 0, ifindex: 2, dst6: "2001:db8:99::", via6: "fe80::9" },
        { dst: 0, prefix: 0, via: 0, ifindex: 1, dst6: "::", via6: "" },
      ],
    );
    assert.ok(t.lookup6(W("2001:db8:99::1"), 0, 0, r));
    assert.equal(r.iface?.name, "eth0");
    assert.equal(r.onLink, true, "an empty via6 is an on-link route");
    assert.equal(t.isLocal6(W("fd00:1::1")), false);
  });

  it("refuses bad addresses and prefixes", () => {
    const t = table();
    assert.throws(
      () => t.addRoute({ dst: 0, prefix: 64, via: 0, ifindex: 1, dst6: "2001:db8::g" }),
      /bad IPv6/,
    );
    assert.throws(
      () => t.addRoute({ dst: 0, prefix: 129, via: 0, ifindex: 1, dst6: "2001:db8::" }),
      /prefix/,
    );
    assert.throws(
      () =>
        t.addIface({
          ifindex: 9,
          name: "y",
          mac: MAC,
          mtu: 1500,
          addrs: [],
          addrs6: [{ addr6: "1.2.3.4", prefix: 64 }],
        }),
      /bad IPv6/,
    );
  });

  it("leaves IPv4 lookups as they were", () => {
    const t = table();
    const r = new RouteResult();
    assert.ok(t.lookup(A("203.0.113.9"), r));
    assert.equal(r.iface?.name, "eth0");
    assert.equal(formatIPv4(r.nexthop), "198.18.0.254");
    assert.equal(formatIPv4(r.src), "198.18.0.1");
    assert.equal(t.lookup(A("10.9.9.9") | 0, r), true, "the IPv4 default route, not an IPv6 one");
  });
});

describe("RouteTable IPv6 ownership", () => {
  it("isLocal6: every interface address, link-local included", () => {
    const t = table();
    for (const [a, want] of [
      ["2001:db8:1::1", true],
      ["fe80::2", true],
      ["fd00:1::1", true],
      ["2001:db8:1::2", false],
      ["::", false],
    ] as const)
      assert.equal(t.isLocal6(W(a)), want, a);
  });

  it("hostDelivers6 follows the IPv6 entries of setHostLocal, apart from the IPv4 ones", () => {
    const t = table();
    assert.equal(t.hostDelivers6(W("2001:db8:5::80")), true, "no list: every VIP");
    t.setHostLocal([
      { addr: A("198.18.0.100"), prefix: 32 },
      { addr: 0, prefix: 128, addr6: "2001:db8:5::80" },
      { addr: 0, prefix: 64, addr6: "fd00:9::" },
    ]);
    for (const [a, want] of [
      ["2001:db8:5::80", true],
      ["2001:db8:5::81", false],
      ["fd00:9::1234", true],
      ["fd00:8::1", false],
    ] as const)
      assert.equal(t.hostDelivers6(W(a)), want, a);
    assert.equal(t.hostDelivers(A("198.18.0.100")), true);
    // The IPv6 entries never reach the IPv4 list (addr 0 would otherwise be 0.0.0.0/128 … or /64).
    assert.equal(t.hostDelivers(A("0.0.0.1")), false);
    t.setHostLocal([{ addr: A("198.18.0.100"), prefix: 32 }]);
    assert.equal(
      t.hostDelivers6(W("2001:db8:5::80")),
      false,
      "a list without IPv6: no IPv6 VIP is the host's",
    );
    t.setHostLocal(null);
    assert.equal(t.hostDelivers6(W("2001:db8:5::80")), true);
  });

  it("VRRP's IPv6 addresses: MASTER ones are served (with their virtual MAC), BACKUP ones never", () => {
    const t = table();
    t.setHostLocal([]);
    t.setVrrp6(
      ["2001:db8:5::1", "2001:db8:5::2"],
      ["2001:db8:5::3"],
      [{ addr6: "2001:db8:5::2", mac: [0, 0, 0x5e, 0, 2, 7] }],
    );
    assert.equal(t.hostDelivers6(W("2001:db8:5::1")), true);
    assert.equal(t.vrrpOwns6(W("2001:db8:5::2")), true);
    assert.equal(t.hostDelivers6(W("2001:db8:5::3")), false);
    assert.equal(t.vrrpHoldsBack6(W("2001:db8:5::3")), true);
    assert.equal(t.vrrpMacOf6(W("2001:db8:5::1")), undefined);
    assert.deepEqual([...(t.vrrpMacOf6(W("2001:db8:5::2")) ?? [])], [0, 0, 0x5e, 0, 2, 7]);
    t.setHostLocal(null);
    assert.equal(t.hostDelivers6(W("2001:db8:5::3")), false, "held back whatever else says");
    t.setVrrp6([], []);
    assert.equal(t.hostDelivers6(W("2001:db8:5::3")), true);
  });
});
