// Following the host, without a kernel: the reading of `ip -j` output, which links are served,
// what a difference between two readings says, and what the engine does with a new view
// (routes replaced, neighbours of a changed link flushed, --host-vips' gate on VIPs).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chooseServed, diffHost, hostView } from "../../src/daemon/host.js";
import { type HostLink, type HostState, parseHost } from "../../src/daemon/kernel.js";
import { parseDaemonArgs } from "../../src/daemon/main.js";
import { Director, IP, L2_FROM_ROUTER, MAC } from "../support/frames.js";
import { arpFrame, ip, mac, SYN, tcpFrame } from "../support/packet-builder.js";

const ADDR_ROWS = [
  {
    ifindex: 1,
    ifname: "lo",
    flags: ["LOOPBACK", "UP", "LOWER_UP"],
    mtu: 65536,
    operstate: "UNKNOWN",
    link_type: "loopback",
    address: "00:00:00:00:00:00",
    addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8 }],
  },
  {
    ifindex: 2,
    ifname: "eth0",
    flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
    mtu: 1500,
    operstate: "UP",
    link_type: "ether",
    address: "02:00:00:00:00:01",
    addr_info: [
      { family: "inet", local: "198.18.0.1", prefixlen: 24 },
      { family: "inet6", local: "fe80::1", prefixlen: 64 },
    ],
  },
  {
    ifindex: 3,
    ifname: "eth1",
    flags: ["BROADCAST", "MULTICAST"],
    mtu: 9000,
    operstate: "DOWN",
    link_type: "ether",
    address: "02:00:00:00:00:02",
    addr_info: [{ family: "inet", local: "198.18.1.1", prefixlen: 24 }],
  },
  {
    ifindex: 4,
    ifname: "port1",
    flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
    mtu: 1500,
    operstate: "UP",
    link_type: "ether",
    master: "br0",
    address: "02:00:00:00:00:03",
  },
  {
    ifindex: 5,
    ifname: "tun0",
    flags: ["POINTOPOINT", "UP", "LOWER_UP"],
    mtu: 1480,
    operstate: "UNKNOWN",
    link_type: "none",
    addr_info: [{ family: "inet", local: "198.18.9.1", prefixlen: 32 }],
  },
];
const MAIN_ROWS = [
  { dst: "default", gateway: "198.18.0.254", dev: "eth0", flags: [] },
  { dst: "198.18.0.0/24", dev: "eth0", protocol: "kernel", scope: "link", prefsrc: "198.18.0.1", flags: [] },
  { dst: "198.18.5.0/24", gateway: "198.18.1.254", dev: "eth1", flags: ["linkdown"] },
  { type: "blackhole", dst: "198.18.6.0/24", flags: [] },
  { dst: "198.18.7.0/24", nexthops: [{ gateway: "198.18.0.2", dev: "eth0" }], flags: [] },
];
const LOCAL_ROWS = [
  { type: "local", dst: "127.0.0.0/8", dev: "lo" },
  { type: "local", dst: "198.18.0.1", dev: "eth0" },
  { type: "broadcast", dst: "198.18.0.255", dev: "eth0" },
  { type: "local", dst: "198.18.0.100", dev: "lo" },
];

const host = (): HostState => parseHost(ADDR_ROWS, MAIN_ROWS, LOCAL_ROWS);
const link = (s: HostState, name: string): HostLink => {
  const l = s.links.find((x) => x.name === name);
  assert.ok(l !== undefined, name);
  return l;
};

describe("reading the host (ip -j)", () => {
  it("links: state, carrier, Ethernet or not, bridge ports, IPv4 addresses only", () => {
    const s = host();
    assert.deepEqual(
      s.links.map((l) => [
        l.name,
        l.up,
        l.lowerUp,
        l.operstate,
        l.ether,
        l.loopback,
        l.master,
        l.addrs.length,
      ]),
      [
        ["lo", true, true, "UNKNOWN", false, true, null, 1],
        ["eth0", true, true, "UP", true, false, null, 1],
        ["eth1", false, false, "DOWN", true, false, null, 1],
        ["port1", true, true, "UP", true, false, "br0", 0],
        ["tun0", true, true, "UNKNOWN", false, false, null, 1],
      ],
    );
    assert.deepEqual([...(link(s, "eth1").mac ?? [])], [2, 0, 0, 0, 0, 2]);
    assert.equal(link(s, "tun0").mac, null);
  });

  it("main table: unicast routes with one next hop; blackhole and multipath left out", () => {
    assert.deepEqual(host().routes, [
      { dst: 0, prefix: 0, via: ip("198.18.0.254"), ifindex: 2, dev: "eth0" },
      { dst: ip("198.18.0.0"), prefix: 24, via: 0, ifindex: 2, dev: "eth0" },
      { dst: ip("198.18.5.0"), prefix: 24, via: ip("198.18.1.254"), ifindex: 3, dev: "eth1" },
    ]);
  });

  it("local table: the `local` routes (addresses and `ip route add local …`), not broadcast", () => {
    assert.deepEqual(host().local, [
      { addr: ip("127.0.0.0"), prefix: 8 },
      { addr: ip("198.18.0.1"), prefix: 32 },
      { addr: ip("198.18.0.100"), prefix: 32 },
    ]);
  });
});

describe("which links are served", () => {
  const cases: { desc: string; wanted: string[]; served: number[]; links: string[]; skipped?: string[] }[] = [
    {
      desc: "no arguments: up Ethernet links, not lo, not a bridge port",
      wanted: [],
      served: [],
      links: ["eth0"],
    },
    {
      desc: "no arguments: a served link that went down stays served",
      wanted: [],
      served: [3],
      links: ["eth0", "eth1"],
    },
    {
      desc: "--iface: the named links, down or not",
      wanted: ["eth1", "eth0"],
      served: [],
      links: ["eth1", "eth0"],
    },
    {
      desc: "--iface: a missing or non-Ethernet name is reported",
      wanted: ["eth0", "gone0", "tun0"],
      served: [],
      links: ["eth0"],
      skipped: ["gone0: not found", "tun0: not Ethernet"],
    },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const r = chooseServed(host().links, c.wanted, new Set(c.served));
      assert.deepEqual(
        r.links.map((l) => l.name),
        c.links,
      );
      assert.deepEqual(
        r.skipped.map((x) => `${x.name}: ${x.why}`),
        c.skipped ?? [],
      );
    });
  }

  it("the view: routes through served links only, their addresses as locals, every local address", () => {
    const s = host();
    const v = hostView(s, [link(s, "eth0")]);
    assert.deepEqual(
      v.interfaces.map((i) => i.name),
      ["eth0"],
    );
    assert.equal(v.routes.length, 2);
    assert.deepEqual(v.locals, [ip("198.18.0.1")]);
    assert.equal(v.hostLocal.length, 3);
  });
});

describe("what changed between two readings", () => {
  const base = host();
  const variant = (f: (s: HostState) => void): HostState => {
    const s = structuredClone(base);
    f(s);
    return s;
  };
  const cases: { desc: string; next: HostState; want: string[] }[] = [
    { desc: "nothing", next: variant(() => {}), want: [] },
    {
      desc: "an address added on a link (its local route is not repeated)",
      next: variant((s) => {
        link(s, "eth0").addrs.push({ addr: ip("198.18.0.100"), prefix: 32 });
        s.local.push({ addr: ip("198.18.0.100"), prefix: 32 });
      }),
      want: ["address added dev=eth0 addr=198.18.0.100/32"],
    },
    {
      desc: "a link set down: state, carrier, and the routes the kernel takes with it",
      next: variant((s) => {
        const l = link(s, "eth0");
        l.up = false;
        l.lowerUp = false;
        l.operstate = "DOWN";
        s.routes = s.routes.filter((r) => r.dev !== "eth0");
      }),
      want: [
        "link down name=eth0 ifindex=2",
        "carrier down name=eth0 operstate=DOWN",
        "route removed route=default via 198.18.0.254 dev eth0",
        "route removed route=198.18.0.0/24 dev eth0",
      ],
    },
    {
      desc: "a route moved to another gateway",
      next: variant((s) => {
        s.routes[2].via = ip("198.18.1.253");
      }),
      want: [
        "route added route=198.18.5.0/24 via 198.18.1.253 dev eth1",
        "route removed route=198.18.5.0/24 via 198.18.1.254 dev eth1",
      ],
    },
    {
      desc: "MTU, MAC and name",
      next: variant((s) => {
        const l = link(s, "eth1");
        l.mtu = 1400;
        l.mac = Uint8Array.from([2, 0, 0, 0, 0, 9]);
        l.name = "wan0";
      }),
      want: [
        "link renamed name=wan0 was=eth1 ifindex=3",
        "MAC changed name=wan0 mac=02:00:00:00:00:09 was=02:00:00:00:00:02",
        "MTU changed name=wan0 mtu=1400 was=9000",
      ],
    },
    {
      desc: "a link deleted, another added",
      next: variant((s) => {
        s.links = s.links.filter((l) => l.name !== "port1");
        s.links.push({
          ...structuredClone(link(s, "eth0")),
          ifindex: 9,
          name: "eth9",
          addrs: [],
          addrs6: [],
        });
      }),
      want: ["link added name=eth9 ifindex=9 up=true", "link removed name=port1 ifindex=4"],
    },
    {
      desc: "a VIP given to the host as a local route",
      next: variant((s) => {
        s.local.push({ addr: ip("198.18.0.101"), prefix: 32 });
      }),
      want: ["local route added dst=198.18.0.101/32"],
    },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const got = diffHost(base, c.next).map(({ what, ...rest }) =>
        [what, ...Object.entries(rest).map(([k, v]) => `${k}=${v}`)].join(" "),
      );
      assert.deepEqual(got, c.want);
    });
  }
});

describe("Engine.setHost", () => {
  const syn = (): Uint8Array =>
    tcpFrame(
      L2_FROM_ROUTER,
      { src: ip(IP.client1), dst: ip(IP.vip) },
      { sport: 40000, dport: 80, flags: SYN },
    );

  it("a route moved to a new interface: the next connection leaves through it", () => {
    const d = new Director();
    d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
    d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.far}:80 -m`);
    assert.equal(d.one(1, syn()).ifindex, 2, "via the gateway on eth1 first");
    const e = d.engine;
    const eth2 = { ifindex: 3, name: "eth2", mac: mac("02:00:00:00:00:03"), mtu: 1500, addrs: [] };
    e.setHost(
      [
        ...e.routes.ifaces.map((i) => ({ ...i })),
        { ...eth2, addrs: [{ addr: ip("198.18.3.1"), prefix: 24 }] },
      ],
      [
        { dst: ip("198.18.3.0"), prefix: 24, via: 0, ifindex: 3 },
        { dst: ip("198.18.2.0"), prefix: 24, via: ip("198.18.3.254"), ifindex: 3 },
        { dst: 0, prefix: 0, via: ip(IP.router), ifindex: 1 },
      ],
    );
    e.neigh.confirm(3, ip("198.18.3.254"), mac("02:00:00:00:fe:03"), d.now);
    const other = tcpFrame(
      L2_FROM_ROUTER,
      { src: ip(IP.client2), dst: ip(IP.vip) },
      { sport: 40001, dport: 80, flags: SYN },
    );
    const out = d.one(1, other);
    assert.equal(out.ifindex, 3);
    assert.equal(out.f.dmac, "02:00:00:00:fe:03");
    assert.equal(out.f.smac, "02:00:00:00:00:03");
    assert.equal(out.f.src, IP.client2);
  });

  it("neighbours of a removed interface, or of one whose MAC changed, are flushed; others kept", () => {
    const d = new Director();
    const e = d.engine;
    const [eth0, eth1] = e.routes.ifaces.map((i) => ({ ...i, addrs: [...i.addrs] }));
    assert.ok(e.neigh.entry(2, ip(IP.rs1)) !== null);
    e.setHost([eth0], [{ dst: 0, prefix: 0, via: ip(IP.router), ifindex: 1 }]);
    assert.equal(e.neigh.entry(2, ip(IP.rs1)), null, "eth1 gone: its neighbours too");
    assert.ok(e.neigh.entry(1, ip(IP.router)) !== null, "eth0 unchanged: kept");
    e.setHost([{ ...eth0, mac: mac("02:00:00:00:00:99") }, eth1], []);
    assert.equal(e.neigh.entry(1, ip(IP.router)), null, "eth0 took another MAC: flushed");
  });

  it("--host-vips: a VIP the host does not have is neither answered for ARP nor served", () => {
    const d = new Director();
    d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
    d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:80 -m`);
    const e = d.engine;
    const ifs = e.routes.ifaces.map((i) => ({ ...i, addrs: [...i.addrs] }));
    const routes = [
      { dst: ip("198.18.2.0"), prefix: 24, via: ip(IP.gw1), ifindex: 2 },
      { dst: 0, prefix: 0, via: ip(IP.router), ifindex: 1 },
    ];
    const arp = (): Uint8Array =>
      arpFrame(mac("ff:ff:ff:ff:ff:ff"), mac(MAC.router), {
        op: 1,
        sha: mac(MAC.router),
        spa: ip(IP.router),
        tpa: ip(IP.vip),
      });
    e.setHost(ifs, routes, [{ addr: ip(IP.dir0), prefix: 32 }]);
    assert.equal(d.input(1, arp()).out.length, 0, "no ARP answer");
    assert.equal(d.input(1, syn()).out.length, 0, "no connection");
    assert.equal(e.connCount(), 0);
    e.setHost(ifs, routes, [
      { addr: ip(IP.dir0), prefix: 32 },
      { addr: ip(IP.vip), prefix: 32 },
    ]);
    assert.equal(d.input(1, arp()).out.length, 1, "answered once the host has it");
    assert.equal(d.one(1, syn()).f.dst, IP.rs1);
    e.setHost(ifs, routes, null);
    assert.equal(d.input(1, arp()).out.length, 1, "without the gate every VIP is served");
  });
});

describe("tsvs daemon with no arguments", () => {
  it("needs none: every up interface, followed; --host-vips is off unless given", () => {
    const o = parseDaemonArgs([]);
    assert.deepEqual(o.ifaces, []);
    assert.equal(o.hostVips, false);
    assert.equal(parseDaemonArgs(["--host-vips"]).hostVips, true);
  });
});
