// VRRPv3 over IPv6 above the wire: keepalived.conf and YAML as keepalived 2.2.7 reads them (the
// family from the first address or native_ipv6, keepalived's messages for a family that does not
// match, VRRPv3 forced, the first-VIP-link-local note, no IPv6 instance without a VIP), the state
// machine's election by IPv6 address, and the addresses the workers get (ownershipOf).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseKeepalived } from "../../src/config/keepalived.js";
import { haSummary } from "../../src/config/vrrp.js";
import { parseYamlConfig } from "../../src/config/yaml.js";
import { vrrpInstanceDefaults } from "../../src/core/vrrp/config.js";
import { VrrpInstance, type VrrpSink } from "../../src/core/vrrp/instance.js";
import { UpdatePacer } from "../../src/core/vrrp/pacer.js";
import { initialOwnership, ownershipOf } from "../../src/daemon/vrrp.js";
import { configErrors } from "../support/config.js";

const ka = (src: string) => parseKeepalived(src, "k.conf").model.ha;
const kaErrors = (src: string) => configErrors(() => parseKeepalived(src, "k.conf"));
const kaWarnings = (src: string) =>
  parseKeepalived(src, "k.conf").warnings.map((w) => `${w.line}:${w.col}: ${w.message}`);
const yaml = (src: string) => parseYamlConfig(src, "c.yaml").model.ha;
const yamlErrors = (src: string) => configErrors(() => parseYamlConfig(src, "c.yaml"));

/** A vrrp_instance with the given body lines (line 4 is the first body line). */
const inst = (body: string, name = "VI_6", vrid = 61) =>
  `vrrp_instance ${name} {\n interface eth0\n virtual_router_id ${vrid}\n${body}}\n`;
const vips = (...a: string[]) => ` virtual_ipaddress {\n${a.map((x) => `  ${x}\n`).join("")} }\n`;

describe("keepalived.conf: IPv6 instances", () => {
  it("an IPv6 virtual_ipaddress makes a VRRPv3 IPv6 instance, whatever vrrp_version says", () => {
    const ha = ka(
      `global_defs {\n vrrp_version 2\n}\n${inst(vips("fe80::61/64", "FD00:7:0::100/64 dev eth0"))}`,
    );
    const i = ha.instances[0];
    assert.equal(i.family, 6);
    assert.equal(i.version, 3);
    assert.deepEqual(i.addrs, [
      { addr: 0, prefix: 64, addr6: "fe80::61" },
      { addr: 0, prefix: 64, addr6: "fd00:7::100", dev: "eth0" },
    ]);
    assert.equal(i.mcastDst6, "ff02::12");
    assert.equal(i.unicastSrc6, null);
    assert.deepEqual(i.unicastPeers6, []);
  });

  it("an address without a prefix is a /128; virtual_ipaddress_excluded may mix families", () => {
    const i = ka(inst(`${vips("fe80::61")} virtual_ipaddress_excluded {\n  10.0.0.1/24\n  fd00::1\n }\n`))
      .instances[0];
    assert.equal(i.family, 6);
    assert.deepEqual(i.addrs, [{ addr: 0, prefix: 128, addr6: "fe80::61" }]);
    assert.deepEqual(i.excludedAddrs, [
      { addr: 0x0a000001, prefix: 24 },
      { addr: 0, prefix: 128, addr6: "fd00::1" },
    ]);
    const v4 = ka(inst(`${vips("10.0.0.1")} virtual_ipaddress_excluded {\n  fd00::1\n }\n`, "VI_1"))
      .instances[0];
    assert.equal(v4.family, 4);
    assert.equal(v4.version, 2);
  });

  it("native_ipv6 makes an IPv6 instance before its addresses do", () => {
    const i = ka(inst(` native_ipv6\n${vips("fe80::61")}`)).instances[0];
    assert.equal(i.family, 6);
    assert.equal(i.version, 3);
  });

  it("reads unicast_src_ip, unicast_peer and mcast_dst_ip in IPv6, and vrrp_mcast_group6", () => {
    const i = ka(
      inst(
        ` unicast_src_ip fd00:7::11\n unicast_peer {\n  fd00:7::12\n  fd00:7:0:0::13 min_ttl 200\n }\n${vips("fd00:7::100/64")}`,
      ),
    ).instances[0];
    assert.equal(i.family, 6);
    assert.equal(i.unicastSrc6, "fd00:7::11");
    assert.deepEqual(i.unicastPeers6, ["fd00:7::12", "fd00:7::13"]);
    assert.deepEqual(i.unicastPeers, []);
    const m = ka(inst(` mcast_dst_ip ff02::112\n${vips("fe80::61")}`)).instances[0];
    assert.equal(m.mcastDst6, "ff02::112");
    const g = ka(`global_defs {\n vrrp_mcast_group6 ff02::99\n}\n${inst(vips("fe80::61"))}`).instances[0];
    assert.equal(g.mcastDst6, "ff02::99");
  });

  it("one VRID serves an IPv4 and an IPv6 instance on one interface (two virtual routers)", () => {
    const ha = ka(`${inst(vips("10.0.0.100/24"), "VI_4", 51)}${inst(vips("fe80::51"), "VI_6", 51)}`);
    assert.deepEqual(
      ha.instances.map((i) => [i.name, i.family, i.vrid]),
      [
        ["VI_4", 4, 51],
        ["VI_6", 6, 51],
      ],
    );
    assert.deepEqual(kaErrors(`${inst(vips("fe80::51"), "A", 51)}${inst(vips("fe80::52"), "B", 51)}`), [
      "k.conf:10:20: virtual_router_id 51 on eth0 is already used by vrrp_instance A (line 1)",
    ]);
  });

  it("reads vrrp_gna_interval and vrrp_garp_interval (seconds, µs resolution)", () => {
    const ha = ka(
      `global_defs {\n vrrp_gna_interval 0.002\n vrrp_garp_interval 0.5\n}\n${inst(vips("fe80::61"))}`,
    );
    assert.equal(ha.gnaIntervalMs, 2);
    assert.equal(ha.garpIntervalMs, 500);
  });

  it("warns, as keepalived logs, when the first IPv6 VIP of a multicast instance is not link-local", () => {
    assert.deepEqual(kaWarnings(inst(vips("fd00:7::100/64", "fe80::61/64"))), [
      "5:3: (VI_6) the first IPv6 VIP address should be link local",
    ]);
    assert.deepEqual(kaWarnings(inst(vips("fe80::61/64", "fd00:7::100/64"))), []);
    assert.deepEqual(kaWarnings(inst(` unicast_peer {\n  fd00::2\n }\n${vips("fd00:7::100/64")}`)), []);
  });

  it("summarises an IPv6 instance on one line", () => {
    assert.deepEqual(haSummary(ka(inst(vips("fe80::61/64", "fd00:7::100/64")))), [
      "vrrp_instance VI_6: eth0 vrid 61 BACKUP priority 100 v3 IPv6 advert 1s vips fe80::61/64,fd00:7::100/64",
    ]);
  });
});

describe("keepalived.conf: mixed families and IPv6 errors, with keepalived's messages", () => {
  const table: [string, string, string][] = [
    [
      "an IPv6 VIP after an IPv4 one",
      inst(vips("10.0.0.1/24", "fd00::1/64")),
      "k.conf:6:3: (VI_6): address family must match VRRP instance [fd00::1/64]",
    ],
    [
      "an IPv4 VIP after an IPv6 one",
      inst(vips("fe80::1", "10.0.0.1")),
      "k.conf:6:3: (VI_6): address family must match VRRP instance [10.0.0.1]",
    ],
    [
      "native_ipv6 after IPv4 addresses",
      inst(`${vips("10.0.0.1")} native_ipv6\n`),
      "k.conf:7:2: (VI_6) Cannot specify native_ipv6 with IPv4 addresses",
    ],
    [
      "an IPv4 VIP after native_ipv6",
      inst(` native_ipv6\n${vips("10.0.0.1")}`),
      "k.conf:6:3: (VI_6): address family must match VRRP instance [10.0.0.1]",
    ],
    [
      "an IPv4 unicast_src_ip in an IPv6 instance",
      inst(`${vips("fe80::1")} unicast_src_ip 10.0.0.2\n`),
      "k.conf:7:17: Configuration error: VRRP instance[VI_6] and src address[10.0.0.2] MUST be of the same family",
    ],
    [
      "an IPv6 mcast_src_ip in an IPv4 instance",
      inst(`${vips("10.0.0.1")} mcast_src_ip fd00::2\n`),
      "k.conf:7:15: Configuration error: VRRP instance[VI_6] and src address[fd00::2] MUST be of the same family",
    ],
    [
      "an IPv4 unicast peer in an IPv6 instance",
      inst(`${vips("fe80::1")} unicast_peer {\n  10.0.0.3\n }\n`),
      "k.conf:8:3: Configuration error: VRRP instance[VI_6] and unicast peer address[10.0.0.3] MUST be of the same family",
    ],
    [
      "an IPv6 mcast_dst_ip in an IPv4 instance",
      inst(`${vips("10.0.0.1")} mcast_dst_ip ff02::12\n`),
      "k.conf:7:15: (VI_6) mcast dest address ff02::12 MUST match VRRP instance family",
    ],
    [
      "an IPv6 mcast_dst_ip that is not link-local multicast",
      inst(`${vips("fe80::1")} mcast_dst_ip ff05::12\n`),
      "k.conf:7:15: (VI_6) mcast_dst_ip ff05::12 not link-local multicast",
    ],
    [
      "version 2 after IPv6 addresses",
      inst(`${vips("fe80::1")} version 2\n`),
      "k.conf:7:10: (VI_6) vrrp_version 2 conflicts with configured or deduced version 3",
    ],
    [
      "version 2 before IPv6 addresses",
      inst(` version 2\n${vips("fe80::1")}`),
      "k.conf:4:10: (VI_6) version 2 with IPv6 addresses: an IPv6 instance is VRRPv3 (keepalived would send VRRPv2 over IPv6 here); write version 3 or leave it out",
    ],
    [
      "an IPv6 instance without a VIP",
      inst(" native_ipv6\n"),
      "k.conf:1:1: (VI_6) No VIP specified; at least one is required",
    ],
    [
      "an IPv6 prefix over 128",
      inst(vips("fe80::1/129")),
      'k.conf:5:3: "fe80::1/129" is not an address (A.B.C.D[/PREFIX] or an IPv6 address[/PREFIX])',
    ],
    [
      "an IPv6 address inet_pton refuses",
      inst(vips("fe80::1::2")),
      'k.conf:5:3: "fe80::1::2" is not an address (A.B.C.D[/PREFIX] or an IPv6 address[/PREFIX])',
    ],
    [
      "a vrrp_mcast_group6 that is not multicast",
      "global_defs {\n vrrp_mcast_group6 fd00::12\n}\n",
      "k.conf:2:20: vrrp_mcast_group6 [fd00::12] is not multicast",
    ],
  ];
  for (const [what, src, want] of table)
    it(`refuses ${what}`, () => {
      const errs = kaErrors(src);
      assert.ok(errs.includes(want), errs.join("\n"));
    });

  it("a vrrp_mcast_group6 outside ff02::/16 is a warning, as keepalived's", () => {
    assert.deepEqual(kaWarnings("global_defs {\n vrrp_mcast_group6 ff05::12\n}\n"), [
      "2:20: vrrp_mcast_group6 [ff05::12] should be link-local multicast",
    ]);
  });
});

describe("YAML: IPv6 instances", () => {
  const base = (body: string) =>
    `virtual_servers: []\nvrrp:\n  instances:\n    - name: VI_6\n      interface: eth0\n      virtual_router_id: 61\n${body}`;

  it("means what the keepalived.conf form means", () => {
    const y = yaml(
      base(
        '      virtual_ipaddress: ["fe80::61/64", { address: "fd00:7::100/64", dev: eth0 }]\n' +
          '      virtual_ipaddress_excluded: [10.0.0.1, "fd00::1"]\n',
      ),
    );
    const k = ka(
      inst(
        `${vips("fe80::61/64", "fd00:7::100/64 dev eth0")} virtual_ipaddress_excluded {\n  10.0.0.1\n  fd00::1\n }\n`,
      ),
    );
    assert.deepEqual(y, k);
    const u = base(
      '      native_ipv6: true\n      unicast_src_ip: "fd00:7::11"\n      unicast_peer: ["fd00:7::12"]\n' +
        '      virtual_ipaddress: ["fd00:7::100/64"]\n',
    );
    const ku = inst(
      ` native_ipv6\n unicast_src_ip fd00:7::11\n unicast_peer {\n  fd00:7::12\n }\n${vips("fd00:7::100/64")}`,
    );
    assert.deepEqual(yaml(u), ka(ku));
  });

  it("refuses mixed families with keepalived's messages, at the value", () => {
    assert.deepEqual(
      yamlErrors(base('      virtual_ipaddress: ["fe80::61"]\n      unicast_peer: [10.0.0.2]\n')),
      [
        "c.yaml:8:22: Configuration error: VRRP instance[VI_6] and unicast peer address[10.0.0.2] MUST be of the same family",
      ],
    );
    assert.deepEqual(
      yamlErrors(base('      virtual_ipaddress: ["fe80::61"]\n      mcast_dst_ip: "ff05::1"\n')),
      ["c.yaml:8:21: mcast_dst_ip must be a multicast address (IPv6: link-local, ff02::/16)"],
    );
    assert.deepEqual(yamlErrors(base('      virtual_ipaddress: ["fe80::61"]\n      version: 2\n')), [
      "c.yaml:8:16: (VI_6) vrrp_version 2 conflicts with configured or deduced version 3",
    ]);
  });

  it("reads gna_interval and garp_interval", () => {
    const y = yaml(
      `virtual_servers: []\nvrrp:\n  gna_interval: 0.01\n  garp_interval: 0.002\n  instances:\n    - name: V\n      interface: eth0\n      virtual_router_id: 1\n      virtual_ipaddress: ["fe80::1"]\n`,
    );
    assert.equal(y.gnaIntervalMs, 10);
    assert.equal(y.garpIntervalMs, 2);
  });
});

describe("the state machine over IPv6", () => {
  const silent: VrrpSink = { advert: () => {}, transition: () => {}, garp: () => {} };
  const master = (primary: string) => {
    const cfg = vrrpInstanceDefaults({
      name: "V6",
      iface: "eth0",
      vrid: 61,
      family: 6,
      addrs: [{ addr: 0, prefix: 64, addr6: "fe80::61" }],
    });
    const i = new VrrpInstance(cfg, silent);
    i.primaryAddr6 = primary;
    i.start(0);
    i.tick(10_000);
    assert.equal(i.state, "MASTER");
    assert.equal(i.masterText(), primary);
    return i;
  };
  const advert = (src6: string, priority = 100) => ({
    version: 3 as const,
    vrid: 61,
    priority,
    advertIntMs: 1000,
    addrs: [],
    srcIp: 0,
    src6,
    addrs6: ["fe80::61"],
  });

  it("equal priority: the higher link-local address wins, compared byte by byte (memcmp)", () => {
    const a = master("fe80::5054:ff:feaa:1");
    a.receive(advert("fe80::5054:ff:feaa:2"), 10_100);
    assert.equal(a.state, "BACKUP");
    assert.equal(a.masterText(), "fe80::5054:ff:feaa:2");
    assert.match(a.lastReason, /equal priority 100 advert from higher address fe80::5054:ff:feaa:2/);
    const b = master("fe80::5054:ff:feaa:1");
    // fe80::9 < fe80::5054:... although "9" > "5" as text.
    b.receive(advert("fe80::9"), 10_100);
    assert.equal(b.state, "MASTER");
  });

  it("a BACKUP knows its master by its IPv6 address; the address list is compared as text", () => {
    const cfg = vrrpInstanceDefaults({
      name: "V6",
      iface: "eth0",
      vrid: 61,
      family: 6,
      addrs: [{ addr: 0, prefix: 64, addr6: "fe80::61" }],
    });
    const i = new VrrpInstance(cfg, silent);
    i.primaryAddr6 = "fe80::1";
    i.start(0);
    i.receive(advert("fe80::2", 150), 100);
    assert.equal(i.state, "BACKUP");
    assert.equal(i.masterText(), "fe80::2");
    assert.equal(i.stats.addrListErrors, 0);
    i.receive({ ...advert("fe80::2", 150), addrs6: ["fe80::62"] }, 200);
    assert.equal(i.stats.addrListErrors, 1);
  });
});

describe("ownershipOf: what the workers hold", () => {
  const v6 = vrrpInstanceDefaults({
    name: "V6",
    iface: "eth0",
    vrid: 61,
    family: 6,
    useVmac: true,
    addrs: [
      { addr: 0, prefix: 64, addr6: "fe80::61" },
      { addr: 0, prefix: 64, addr6: "fd00:7::100" },
    ],
    excludedAddrs: [{ addr: 0x0a000001, prefix: 24 }],
  });
  const v4 = vrrpInstanceDefaults({
    name: "V4",
    iface: "eth0",
    vrid: 51,
    addrs: [{ addr: 0x0a000064, prefix: 24 }],
  });

  it("IPv6 addresses go in the 6 lists (with the IPv6 virtual MAC), IPv4 ones of the same instance in the others", () => {
    assert.deepEqual(
      ownershipOf([
        { cfg: v6, state: "MASTER" },
        { cfg: v4, state: "BACKUP" },
      ]),
      {
        master: [0x0a000001],
        standby: [0x0a000064],
        macs: [{ addr: 0x0a000001, mac: [0, 0, 0x5e, 0, 2, 61] }],
        master6: ["fd00:7::100", "fe80::61"],
        standby6: [],
        macs6: [
          { addr6: "fd00:7::100", mac: [0, 0, 0x5e, 0, 2, 61] },
          { addr6: "fe80::61", mac: [0, 0, 0x5e, 0, 2, 61] },
        ],
      },
    );
    assert.deepEqual(ownershipOf([{ cfg: v6, state: "BACKUP" }]), {
      master: [],
      standby: [0x0a000001],
      master6: [],
      standby6: ["fd00:7::100", "fe80::61"],
    });
  });

  it("without IPv6 addresses the shape is the IPv4 one", () => {
    assert.deepEqual(
      initialOwnership({ routerId: null, instances: [v4], syncGroups: [], scripts: [], lvsSyncDaemon: null }),
      {
        master: [],
        standby: [0x0a000064],
      },
    );
  });
});

describe("vrrp_garp_interval / vrrp_gna_interval (core/vrrp/pacer.ts, keepalived's vrrp_arp_thread)", () => {
  const live = (x: string) => !x.startsWith("dead");

  it("no interval: everything goes at once", () => {
    const p = new UpdatePacer<string>(0);
    for (let i = 0; i < 5; i++) assert.equal(p.offer("a", "a", 0), true);
    assert.equal(p.due(0, live), null);
  });

  it("an interval: one at once, a repeat of a waiting address goes once, then one per interval", () => {
    const p = new UpdatePacer<string>(10);
    // garp_master_repeat 3 over two addresses, at t = 0.
    const sent: string[] = [];
    for (let r = 0; r < 3; r++)
      ["fe80::61", "fd00::100"].forEach((a, k) => {
        if (p.offer(a, a, 0, k)) sent.push(`0 ${a}`);
      });
    assert.deepEqual(sent, ["0 fe80::61"]);
    assert.equal(p.waiting, 2, "fe80::61's repeats and fd00::100's collapse into one each");
    assert.equal(p.due(9, live), null, "not before the interval");
    // keepalived's order: the address list's, whichever started waiting first.
    assert.equal(p.due(10, live), "fe80::61");
    assert.equal(p.due(10, live), null, "one per interval");
    assert.equal(p.due(20, live), "fd00::100");
    assert.equal(p.due(30, live), null);
    assert.equal(p.offer("x", "x", 31), true, "after the interval, at once again");
  });

  it("a waiting message of an instance no longer MASTER is dropped", () => {
    const p = new UpdatePacer<string>(10);
    p.offer("a", "a", 0);
    p.offer("dead", "dead", 1);
    p.offer("b", "b", 2);
    assert.equal(p.due(10, live), "b");
    assert.equal(p.waiting, 0);
  });
});
