// The director's routing table (src/core/route.ts): longest prefix first, the next hop, and the
// source address as the kernel's inet_select_addr picks it (the interface address on the next
// hop's subnet, else the primary), fixed per route where it can be and per destination where not.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatIPv4, parseIPv4 } from "../../src/core/addr.js";
import { RouteResult, RouteTable } from "../../src/core/route.js";

const A = (s: string): number => parseIPv4(s) as number;
const MAC = Uint8Array.from([2, 0, 0, 0, 0, 1]);

function table(): RouteTable {
  const t = new RouteTable();
  t.addIface({
    ifindex: 1,
    name: "eth0",
    mac: MAC,
    mtu: 1500,
    addrs: [{ addr: A("198.18.0.1"), prefix: 24 }],
  });
  // Two addresses on eth1: a /24 and a /16 around it (the /16's connected route is wider than the /24 address).
  t.addIface({
    ifindex: 2,
    name: "eth1",
    mac: MAC,
    mtu: 1500,
    addrs: [
      { addr: A("10.0.1.1"), prefix: 24 },
      { addr: A("10.0.0.1"), prefix: 16 },
    ],
  });
  t.addRoute({ dst: A("198.19.0.0"), prefix: 16, via: A("10.0.9.9"), ifindex: 2 });
  t.addRoute({ dst: 0, prefix: 0, via: A("198.18.0.254"), ifindex: 1 });
  return t;
}

describe("RouteTable.lookup", () => {
  const cases: Array<[string, string, string, string]> = [
    // daddr, interface, next hop, source
    ["198.18.0.7", "eth0", "198.18.0.7", "198.18.0.1"],
    ["10.0.1.5", "eth1", "10.0.1.5", "10.0.1.1"],
    ["10.0.2.5", "eth1", "10.0.2.5", "10.0.0.1"],
    ["198.19.3.4", "eth1", "10.0.9.9", "10.0.0.1"],
    ["203.0.113.9", "eth0", "198.18.0.254", "198.18.0.1"],
  ];
  for (const [daddr, iface, nexthop, src] of cases)
    it(`${daddr} → ${iface} via ${nexthop} from ${src}`, () => {
      const t = table();
      const r = new RouteResult();
      // Twice, and with the int32 form of the address: the answer does not depend on earlier lookups.
      for (const d of [A(daddr), A(daddr) | 0, A(daddr)]) {
        assert.ok(t.lookup(d, r));
        assert.equal(r.iface?.name, iface);
        assert.equal(formatIPv4(r.nexthop), nexthop);
        assert.equal(formatIPv4(r.src), src);
      }
    });

  it("has no route where nothing matches", () => {
    const t = new RouteTable();
    t.addIface({
      ifindex: 1,
      name: "eth0",
      mac: MAC,
      mtu: 1500,
      addrs: [{ addr: A("198.18.0.1"), prefix: 24 }],
    });
    const r = new RouteResult();
    assert.equal(t.lookup(A("198.18.1.1"), r), false);
    assert.equal(r.iface, null);
  });
});
