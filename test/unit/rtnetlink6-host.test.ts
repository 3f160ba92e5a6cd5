// Following the host's IPv6, without a kernel: `ip -j` output as iproute2 6.1 printed it in a
// throwaway namespace (tsvs6l-<pid>: a veth with fd00:5eed:2::1 nodad, fd00:5eed:1::1 and its
// link-local address still tentative, routes via a link-local and a global gateway, a blackhole),
// the view the workers get (IPv6 addresses and routes in the IPv4 messages' shapes), what a
// difference between two readings says, the engine's route table and --host-vips fed from it, and
// the nft guard's IPv6 side.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ipv6TextWords, ipv6WordsText } from "../../src/core/addr.js";
import { Route6Result, RouteTable } from "../../src/core/route.js";
import { diffHost, hostView, viewKey } from "../../src/daemon/host.js";
import { type HostState, ifaceConfig, parseHost } from "../../src/daemon/kernel.js";
import { guardScript } from "../../src/daemon/nft.js";

const ADDR_ROWS = [
  {
    ifindex: 3,
    link: "v6b",
    ifname: "v6a",
    flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
    mtu: 1500,
    qdisc: "noqueue",
    operstate: "UP",
    group: "default",
    txqlen: 1000,
    link_type: "ether",
    address: "0e:ed:c1:5b:6d:20",
    broadcast: "ff:ff:ff:ff:ff:ff",
    addr_info: [
      {
        family: "inet6",
        local: "fd00:5eed:2::1",
        prefixlen: 64,
        scope: "global",
        nodad: true,
        valid_life_time: 4294967295,
        preferred_life_time: 4294967295,
      },
      {
        family: "inet6",
        local: "fd00:5eed:1::1",
        prefixlen: 64,
        scope: "global",
        tentative: true,
        valid_life_time: 4294967295,
        preferred_life_time: 4294967295,
      },
      {
        family: "inet6",
        local: "fe80::ced:c1ff:fe5b:6d20",
        prefixlen: 64,
        scope: "link",
        tentative: true,
        valid_life_time: 4294967295,
        preferred_life_time: 4294967295,
      },
    ],
  },
];
const MAIN6_ROWS = [
  { dst: "fd00:5eed:1::/64", dev: "v6a", protocol: "kernel", metric: 256, flags: [], pref: "medium" },
  { dst: "fd00:5eed:2::/64", dev: "v6a", protocol: "kernel", metric: 256, flags: [], pref: "medium" },
  { type: "blackhole", dst: "fd00:5eed:66::/48", dev: "lo", metric: 1024, flags: [], pref: "medium" },
  { dst: "fd00:5eed:99::/48", gateway: "fe80::9", dev: "v6a", metric: 1024, flags: [], pref: "medium" },
  { dst: "fe80::/64", dev: "v6b", protocol: "kernel", metric: 256, flags: [], pref: "medium" },
  { dst: "fe80::/64", dev: "v6a", protocol: "kernel", metric: 256, flags: [], pref: "medium" },
  { dst: "default", gateway: "fd00:5eed:1::fe", dev: "v6a", metric: 1024, flags: [], pref: "medium" },
];
const LOCAL6_ROWS = [
  {
    type: "local",
    dst: "fd00:5eed:2::1",
    dev: "v6a",
    protocol: "kernel",
    metric: 0,
    flags: [],
    pref: "medium",
  },
  {
    type: "multicast",
    dst: "ff00::/8",
    dev: "v6b",
    protocol: "kernel",
    metric: 256,
    flags: [],
    pref: "medium",
  },
  {
    type: "multicast",
    dst: "ff00::/8",
    dev: "v6a",
    protocol: "kernel",
    metric: 256,
    flags: [],
    pref: "medium",
  },
];

const host = (): HostState => parseHost(ADDR_ROWS, [], [], MAIN6_ROWS, LOCAL6_ROWS);

describe("reading the host's IPv6 (ip -j)", () => {
  it("addresses: usable ones only (not tentative, not DAD-failed), as inet_ntop prints them", () => {
    const [l] = host().links;
    assert.deepEqual(l.addrs6, [{ addr6: "fd00:5eed:2::1", prefix: 64 }]);
    assert.deepEqual(l.addrs, []);
    assert.equal(l.forwarding6, false, "parseHost does not read sysctls (readHost does)");
  });

  it("main table: unicast routes through known links, in RouteConfig's IPv6 form", () => {
    assert.deepEqual(host().routes, [
      { dst: 0, prefix: 64, via: 0, ifindex: 3, dev: "v6a", dst6: "fd00:5eed:1::", via6: "" },
      { dst: 0, prefix: 64, via: 0, ifindex: 3, dev: "v6a", dst6: "fd00:5eed:2::", via6: "" },
      { dst: 0, prefix: 48, via: 0, ifindex: 3, dev: "v6a", dst6: "fd00:5eed:99::", via6: "fe80::9" },
      { dst: 0, prefix: 64, via: 0, ifindex: 3, dev: "v6a", dst6: "fe80::", via6: "" },
      { dst: 0, prefix: 0, via: 0, ifindex: 3, dev: "v6a", dst6: "::", via6: "fd00:5eed:1::fe" },
    ]);
  });

  it("local table: `local` routes as addr6/128, not multicast", () => {
    assert.deepEqual(host().local, [{ addr: 0, prefix: 128, addr6: "fd00:5eed:2::1" }]);
  });

  it("refuses what is not an address", () => {
    const rows = structuredClone(ADDR_ROWS);
    rows[0].addr_info[0].local = "fd00::g";
    assert.throws(() => parseHost(rows, [], [], [], []), /bad IPv6 address/);
    assert.throws(() => parseHost(ADDR_ROWS, [], [], [{ dst: "fd00::/129", dev: "v6a" }], []), /bad prefix/);
  });
});

describe("the view and the engine", () => {
  it("carries the IPv6 addresses, routes and local addresses to the workers", () => {
    const s = host();
    s.links[0].forwarding6 = true;
    const v = hostView(s, s.links);
    assert.deepEqual(v.interfaces[0].addrs6, [{ addr6: "fd00:5eed:2::1", prefix: 64 }]);
    assert.equal(v.interfaces[0].forwarding6, true);
    assert.deepEqual(v.locals, []);
    assert.deepEqual(v.locals6, ["fd00:5eed:2::1"]);
    assert.equal(v.routes.length, 5);
    assert.deepEqual(v.hostLocal, [{ addr: 0, prefix: 128, addr6: "fd00:5eed:2::1" }]);
    const t = structuredClone(s);
    t.links[0].addrs6.push({ addr6: "fd00:5eed:1::1", prefix: 64 });
    assert.notEqual(viewKey(hostView(t, t.links)), viewKey(v), "an IPv6 address is a change to send");
  });

  it("is what the route table takes: lookups and --host-vips work from it", () => {
    const s = host();
    const v = hostView(s, s.links);
    const t = new RouteTable();
    t.replace(
      v.interfaces.map((i) => ({ ...i, mac: ifaceConfig(s.links[0]).mac })),
      v.routes,
    );
    t.setHostLocal(v.hostLocal);
    const r = new Route6Result();
    const W = (a: string): Int32Array => ipv6TextWords(a) as Int32Array;
    assert.ok(t.lookup6(W("2001:db8::1"), 0, 0, r));
    assert.deepEqual([ipv6WordsText(r.nexthop), ipv6WordsText(r.src)], ["fd00:5eed:1::fe", "fd00:5eed:2::1"]);
    assert.ok(t.lookup6(W("fd00:5eed:99::7"), 0, 0, r));
    assert.equal(ipv6WordsText(r.nexthop), "fe80::9");
    assert.equal(t.hostDelivers6(W("fd00:5eed:2::1")), true);
    assert.equal(t.hostDelivers6(W("fd00:5eed:2::80")), false);
  });
});

describe("what changed between two IPv6 readings", () => {
  const base = host();
  const variant = (f: (s: HostState) => void): HostState => {
    const s = structuredClone(base);
    f(s);
    return s;
  };
  const cases: { desc: string; next: HostState; want: string[] }[] = [
    {
      desc: "DAD completed: the address appears with its local route (not repeated)",
      next: variant((s) => {
        s.links[0].addrs6.push({ addr6: "fd00:5eed:1::1", prefix: 64 });
        s.local.push({ addr: 0, prefix: 128, addr6: "fd00:5eed:1::1" });
      }),
      want: ["address added dev=v6a addr=fd00:5eed:1::1/64"],
    },
    {
      desc: "an address removed",
      next: variant((s) => {
        s.links[0].addrs6 = [];
        s.local = [];
      }),
      want: ["address removed dev=v6a addr=fd00:5eed:2::1/64"],
    },
    {
      desc: "a gateway changed",
      next: variant((s) => {
        s.routes[4].via6 = "fe80::1";
      }),
      want: [
        "route added route=default via fe80::1 dev v6a",
        "route removed route=default via fd00:5eed:1::fe dev v6a",
      ],
    },
    {
      desc: "a VIP given to the host as a local route",
      next: variant((s) => {
        s.local.push({ addr: 0, prefix: 128, addr6: "fd00:5eed:2::80" });
      }),
      want: ["local route added dst=fd00:5eed:2::80/128"],
    },
  ];
  for (const c of cases)
    it(c.desc, () => {
      const got = diffHost(base, c.next).map(({ what, ...rest }) =>
        [what, ...Object.entries(rest).map(([k, v]) => `${k}=${v}`)].join(" "),
      );
      assert.deepEqual(got, c.want);
    });
});

describe("nft guard, IPv6", () => {
  it("own6, nd6 (the same addresses as integers for the NS target), local6, nat6, nat6any, and the rules", () => {
    const script = guardScript(
      ["eth0"],
      [],
      {
        owned: [],
        nat: [],
        owned6: ["2001:db8::80"],
        nat6: [
          { addr6: "2001:db8:1::11", proto: 6, port: 8080 },
          { addr6: "2001:db8:1::12", proto: 0, port: 0 },
        ],
      },
      ["fe80::1", "2001:db8:1::fe"],
    );
    assert.match(script, /set own6 \{ type ipv6_addr; elements = \{ 2001:db8::80 \}; \}/);
    assert.match(
      script,
      /set nd6 \{ typeof @th,64,128; elements = \{ 0x20010db8000000000000000000000080 \}; \}/,
    );
    assert.match(script, /set local6 \{ type ipv6_addr; elements = \{ fe80::1, 2001:db8:1::fe \}; \}/);
    assert.match(
      script,
      /set nat6 \{ type ipv6_addr \. inet_proto \. inet_service; elements = \{ 2001:db8:1::11 \. tcp \. 8080 \}; \}/,
    );
    assert.match(
      script,
      /set nat6any \{ type ipv6_addr \. inet_proto; elements = \{ 2001:db8:1::12 \. tcp, 2001:db8:1::12 \. udp \}; \}/,
    );
    for (const rule of [
      "ip6 daddr @own6 drop",
      "icmpv6 type nd-neighbor-solicit @th,64,128 @nd6 drop",
      "ip6 saddr . meta l4proto . th sport @nat6 ip6 daddr != @local6 drop",
      "ip6 saddr . meta l4proto @nat6any ip6 daddr != @local6 drop",
    ])
      assert.ok(script.includes(`    ${rule}\n`), rule);
  });

  it("an IPv4-only guard has empty IPv6 sets", () => {
    const script = guardScript(["eth0"], [], { owned: [], nat: [] });
    assert.doesNotMatch(script, /elements/);
    assert.match(script, /set nd6 \{ typeof @th,64,128; \}/);
  });
});
