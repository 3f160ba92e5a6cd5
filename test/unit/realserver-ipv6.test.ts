// `tsvs realserver` for an IPv6 VIP (issue 14), the pure parts as tables: the VIP's spellings, the
// decapsulator's codecs for next header 41 and 4 (inside IPv6 as a raw IPv6 socket hands them over,
// inside IPv4 with the outer header) and its tally, and the doctor's verdicts (src/realserver/
// checks6.ts). Datagrams come from test/support/packet6.ts, independent of the product's codecs.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chooseDirectorIface, type Level } from "../../src/realserver/checks.js";
import {
  type Addr6,
  acceptDadFinding,
  chooseDecap6,
  disableIpv6Defaults,
  disableIpv6Finding,
  forwardingFinding,
  type Ipv6Role,
  maskProblem6,
  parseVip6,
  ripStateFindings,
  route6Finding,
  settingsFor6,
  vip6Findings,
} from "../../src/realserver/checks6.js";
import {
  DECAP_BAD_INNER,
  DECAP_BAD_OUTER,
  DECAP_NOT_LOCAL,
  DecapTally,
  fixedAccept,
  innerLength,
  ip6in4InnerOffset,
  ipxip6InnerOffset,
} from "../../src/realserver/decap.js";
import { concat, ip, ipv4Datagram, PROTO_UDP, udpDatagram } from "../support/packet-builder.js";
import { a6, ipv6Packet, NH_IPV6, NH_UDP, udp6Datagram } from "../support/packet6.js";

const VIP = "2001:db8::100";
const CIP = "2001:db8:c::50";
const RIP = "fd00:6:1::11";
const RIP4 = "198.18.61.11";
const DIP4 = "198.18.61.1";

describe("parseVip6: any inet_pton spelling, printed as inet_ntop does", () => {
  const ok: [string, string][] = [
    ["2001:db8::100", "2001:db8::100"],
    ["2001:DB8:0:0:0:0:0:100", "2001:db8::100"],
    ["2001:0db8:0000::0100", "2001:db8::100"],
    ["fd00:6:100::100", "fd00:6:100::100"],
    ["::1.2.3.4", "::1.2.3.4"],
  ];
  for (const [text, want] of ok) it(`${text} → ${want}`, () => assert.equal(parseVip6(text), want));
  const refused: [string, RegExp][] = [
    ["2001:db8::1::2", /bad IPv6 address '2001:db8::1::2'/],
    ["[2001:db8::100]", /bad IPv6 address/],
    ["fe80::1%eth0", /bad IPv6 address/],
    ["::", /VIP :: is the unspecified address/],
    ["::1", /VIP ::1 is the loopback address/],
    ["ff02::1", /is a multicast address/],
    ["fe80::100", /is link-local/],
    ["::ffff:198.18.0.100", /IPv4-mapped: give the IPv4 address/],
  ];
  for (const [text, want] of refused)
    it(`${text} is refused`, () => assert.throws(() => parseVip6(text), want));
});

describe("decapsulator codecs for IPv6 tunnels", () => {
  const inner6 = ipv6Packet(
    { src: CIP, dst: VIP },
    NH_UDP,
    udp6Datagram(CIP, VIP, { sport: 4000, dport: 53 }),
  );
  const inner4 = ipv4Datagram({
    src: ip("198.18.62.50"),
    dst: ip("198.18.60.100"),
    proto: PROTO_UDP,
    payload: udpDatagram(ip("198.18.62.50"), ip("198.18.60.100"), { sport: 4000, dport: 53 }),
  });
  const host6 = concat(a6(RIP), a6("fd00:6:2::11"));
  const dst = (s: string): Uint8Array => concat(new Uint8Array(3), a6(s)); // at offset 3, like a cmsg

  describe("ipxip6InnerOffset: what a raw IPv6 socket hands over (no outer header)", () => {
    const cases: {
      description: string;
      inner: 4 | 6;
      b: Uint8Array;
      len?: number;
      to?: string;
      accept?: Uint8Array;
      want: number;
    }[] = [
      { description: "IPv6 in IPv6 to the RIP", inner: 6, b: inner6, want: 0 },
      { description: "to another local address", inner: 6, b: inner6, to: "fd00:6:2::11", want: 0 },
      { description: "IPv4 in IPv6 (next header 4)", inner: 4, b: inner4, want: 0 },
      { description: "not for us", inner: 6, b: inner6, to: "fd00:6:1::99", want: DECAP_NOT_LOCAL },
      {
        description: "empty list: any",
        inner: 6,
        b: inner6,
        to: "fd00:6:1::99",
        accept: new Uint8Array(0),
        want: 0,
      },
      {
        description: "a fixed IPv4-only list refuses IPv6 outer (:: placeholder)",
        inner: 6,
        b: inner6,
        accept: fixedAccept([RIP4]).v6,
        want: DECAP_NOT_LOCAL,
      },
      {
        description: "truncated: shorter than the IPv6 header",
        inner: 6,
        b: inner6,
        len: 39,
        want: DECAP_BAD_INNER,
      },
      {
        description: "truncated: payload length beyond what arrived",
        inner: 6,
        b: inner6,
        len: inner6.length - 1,
        want: DECAP_BAD_INNER,
      },
      {
        description: "wrong version: IPv4 behind next header 41",
        inner: 6,
        b: inner4,
        want: DECAP_BAD_INNER,
      },
      { description: "wrong version: IPv6 behind next header 4", inner: 4, b: inner6, want: DECAP_BAD_INNER },
      { description: "nothing at all", inner: 6, b: new Uint8Array(0), want: DECAP_BAD_INNER },
    ];
    for (const c of cases) {
      it(c.description, () => {
        const got = ipxip6InnerOffset(
          c.inner,
          c.b,
          c.len ?? c.b.length,
          dst(c.to ?? RIP),
          3,
          c.accept ?? host6,
        );
        assert.equal(got, c.want);
      });
    }
  });

  describe("ip6in4InnerOffset: IPv6 inside IPv4 (protocol 41), outer header included", () => {
    const outer = (payload: Uint8Array, to = RIP4, proto = NH_IPV6): Uint8Array =>
      ipv4Datagram({ src: ip(DIP4), dst: ip(to), proto, payload });
    const host4 = Uint32Array.of(ip(RIP4));
    const cases: { description: string; b: Uint8Array; len?: number; want: number }[] = [
      { description: "to the RIP", b: outer(inner6), want: 20 },
      { description: "not for us", b: outer(inner6, "198.18.61.99"), want: DECAP_NOT_LOCAL },
      { description: "outer truncated", b: outer(inner6), len: 19, want: DECAP_BAD_OUTER },
      {
        description: "outer not IPv4",
        b: Uint8Array.from([0x65, ...outer(inner6).subarray(1)]),
        want: DECAP_BAD_OUTER,
      },
      { description: "outer of another protocol", b: outer(inner6, RIP4, 4), want: DECAP_BAD_OUTER },
      {
        description: "inner truncated",
        b: outer(inner6),
        len: 20 + inner6.length - 1,
        want: DECAP_BAD_INNER,
      },
      { description: "inner IPv4", b: outer(inner4), want: DECAP_BAD_INNER },
    ];
    for (const c of cases) {
      it(c.description, () => assert.equal(ip6in4InnerOffset(c.b, c.len ?? c.b.length, host4), c.want));
    }
  });

  it("never throws on random bytes of any length, and answers an offset inside the datagram or a drop code", () => {
    let seed = 14;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed & 255;
    };
    const d = dst(RIP);
    for (let n = 0; n < 2000; n++) {
      const b = Uint8Array.from({ length: rnd() % 96 }, rnd);
      if (b.length > 0 && n % 2 === 0) b[0] = (n % 4 === 0 ? 0x60 : 0x45) | (b[0] & 0x0f);
      for (const got of [
        ipxip6InnerOffset(6, b, b.length, d, 3, host6),
        ipxip6InnerOffset(4, b, b.length, d, 3, host6),
        ip6in4InnerOffset(b, b.length, Uint32Array.of(0)),
      ]) {
        assert.ok(
          got === DECAP_BAD_OUTER ||
            got === DECAP_BAD_INNER ||
            got === DECAP_NOT_LOCAL ||
            (got >= 0 && got < b.length),
        );
        if (got >= 0) assert.ok(got + innerLength(b, got) <= b.length);
      }
    }
  });

  it("innerLength: the IPv6 header plus its payload length, or the IPv4 total length", () => {
    assert.equal(innerLength(inner6, 0), inner6.length);
    assert.equal(innerLength(concat(new Uint8Array(20), inner4), 20), inner4.length);
  });

  it("fixedAccept splits --local by family; a family not given accepts nothing", () => {
    const a = fixedAccept([RIP4, "FD00:6:1:0::11"]);
    assert.deepEqual(Array.from(a.v4), [ip(RIP4)]);
    assert.deepEqual(Array.from(a.v6), Array.from(a6(RIP)));
    assert.deepEqual(Array.from(fixedAccept([RIP]).v4), [0]);
  });

  it("the tally counts each datagram once by its fate, whatever the outer family, and keeps the sources of both", () => {
    const t = new DecapTally();
    const src = (s: string): Uint8Array => concat(new Uint8Array(5), a6(s));
    t.account6(0, src("fd00:6:1::1"), 5, dst(RIP), 3);
    t.account6(0, src("fd00:6:1::1"), 5, dst(RIP), 3);
    t.account6(DECAP_NOT_LOCAL, src("fd00:6:1::2"), 5, dst("fd00:6:1::99"), 3);
    t.account6(DECAP_BAD_INNER, src("fd00:6:1::3"), 5, dst(RIP), 3);
    t.account(20, ip(DIP4), ip(RIP4));
    t.account(DECAP_BAD_OUTER, ip("198.18.61.2"), ip(RIP4));
    assert.deepEqual(
      { ...t.cnt },
      { received: 6, delivered: 0, badOuter: 1, badInner: 1, notLocal: 1, writeErrors: 0 },
    );
    assert.deepEqual(t.sourceList(), [DIP4, "fd00:6:1::1", "fd00:6:1::2"]);
    assert.equal(t.lastNotLocalText(), "fd00:6:1::99");
    t.account(DECAP_NOT_LOCAL, ip(DIP4), ip("198.18.61.99"));
    assert.equal(t.lastNotLocalText(), "198.18.61.99");
  });
});

function addr(ifname: string, local: string, prefixlen: number, extra: Partial<Addr6> = {}): Addr6 {
  return { ifname, local, prefixlen, scope: "global", tentative: false, dadfailed: false, ...extra };
}

describe("doctor's verdicts for an IPv6 VIP", () => {
  const table: { role: Ipv6Role; value: number; level: Level; detail: RegExp }[] = [
    { role: "lo", value: 0, level: "ok", detail: /IPv6 on for lo/ },
    {
      role: "lo",
      value: 1,
      level: "FAIL",
      detail: /the VIP cannot be added there .* removed lo's addresses/,
    },
    { role: "director", value: 1, level: "FAIL", detail: /ipv6_rcv drops every IPv6 packet arriving there/ },
    { role: "tun", value: 1, level: "FAIL", detail: /drops every decapsulated IPv6 datagram/ },
    { role: "other", value: 1, level: "warn", detail: /nothing IPv6 arrives or leaves there/ },
  ];
  for (const c of table) {
    it(`disable_ipv6=${c.value} on a ${c.role} interface: ${c.level}`, () => {
      const f = disableIpv6Finding(c.role === "lo" ? "lo" : "eth0", c.value, c.role);
      assert.equal(f.level, c.level);
      assert.match(f.detail, c.detail);
      if (c.value !== 0) assert.match(f.detail, /sysctl -w net\.ipv6\.conf\.(lo|eth0)\.disable_ipv6=0/);
    });
  }

  it("disable_ipv6 all/default: information, never a failure", () => {
    assert.equal(disableIpv6Defaults(0, 0).level, "ok");
    const f = disableIpv6Defaults(1, 1);
    assert.equal(f.level, "info");
    assert.match(f.detail, /start with IPv6 off.*all=1 was written/);
  });

  const dad: [number, number, Level, string][] = [
    [0, 0, "ok", "accept_dad all=0 eth0=0 → 0"],
    [0, 1, "ok", "accept_dad all=0 eth0=1 → 1"],
    [2, 1, "warn", "accept_dad all=2 eth0=1 → 2"],
    [0, 2, "warn", "accept_dad all=0 eth0=2 → 2"],
  ];
  for (const [all, dev, level, what] of dad) {
    it(`${what}: ${level}`, () => {
      const f = acceptDadFinding("eth0", all, dev);
      assert.deepEqual([f.level, f.what], [level, what]);
    });
  }

  it("a RIP in DAD warns, a duplicate RIP fails, the rest says nothing", () => {
    const f = ripStateFindings([
      addr("eth0", RIP, 64, { tentative: true }),
      addr("eth1", "fd00:6:2::11", 64, { tentative: true, dadfailed: true }),
      addr("eth0", "fe80::1", 64, { scope: "link", tentative: true }),
      addr("eth0", "fd00:6:1::12", 64),
    ]);
    assert.deepEqual(
      f.map((x) => [x.level, x.what]),
      [
        ["warn", "fd00:6:1::11/64 on eth0 tentative"],
        ["FAIL", "fd00:6:2::11/64 on eth1 dadfailed"],
      ],
    );
  });

  it("forwarding: a host is ok, a router warns and says why (router advertisements ignored with accept_ra 1)", () => {
    assert.equal(forwardingFinding(0, [{ ifname: "eth0", value: 0, acceptRa: 1 }]).level, "ok");
    const f = forwardingFinding(1, [{ ifname: "eth0", value: 1, acceptRa: 1 }]);
    assert.equal(f.what, "forwarding all=1 eth0=1");
    assert.equal(f.level, "warn");
    assert.match(f.detail, /router advertisements on eth0 are ignored/);
  });

  it("the route back: a default route is ok, none warns", () => {
    assert.equal(
      route6Finding({ dev: "eth0", gateway: "fe80::1" }).what,
      "IPv6 default route via fe80::1 dev eth0",
    );
    assert.equal(route6Finding({ dev: null, gateway: null }).level, "warn");
  });

  const rips = [addr("eth0", RIP, 64)];
  const vipCases: {
    description: string;
    found: Addr6[];
    proxy?: { ifname: string; active: boolean }[];
    want: [Level, string][];
  }[] = [
    {
      description: "on lo as /128: ok",
      found: [addr("lo", VIP, 128)],
      want: [["ok", `VIP ${VIP}/128 on lo`]],
    },
    { description: "absent: FAIL", found: [], want: [["FAIL", `VIP ${VIP} not on lo`]] },
    {
      description: "on lo, /64: FAIL",
      found: [addr("lo", VIP, 64)],
      want: [["FAIL", `VIP ${VIP}/64 on lo: prefix shorter than /128`]],
    },
    {
      description: "on lo but tentative: FAIL",
      found: [addr("lo", VIP, 128, { tentative: true })],
      want: [["FAIL", `VIP ${VIP}/128 on lo tentative`]],
    },
    {
      description: "on eth0 too: FAIL (it answers solicitations there)",
      found: [addr("lo", VIP, 128), addr("eth0", VIP, 64)],
      want: [
        ["ok", `VIP ${VIP}/128 on lo`],
        ["FAIL", `VIP ${VIP}/64 on eth0`],
      ],
    },
    {
      description: "a proxy NDP entry: FAIL when answered, warn when not (yet)",
      found: [addr("lo", VIP, 128)],
      proxy: [
        { ifname: "eth0", active: true },
        { ifname: "eth1", active: false },
      ],
      want: [
        ["ok", `VIP ${VIP}/128 on lo`],
        ["FAIL", `proxy NDP entry for VIP ${VIP} on eth0`],
        ["warn", `proxy NDP entry for VIP ${VIP} on eth1`],
      ],
    },
  ];
  for (const c of vipCases) {
    it(`VIP ${c.description}`, () => {
      const f = vip6Findings({
        vip: VIP,
        found: c.found,
        ripAddrs: rips,
        gateway: null,
        proxy: c.proxy ?? [],
      });
      assert.deepEqual(
        f.map((x) => [x.level, x.what]),
        c.want,
      );
    });
  }

  it("a VIP prefix on lo overlapping the RIP's: the prefix route into lo, the overlap, the gateway, the fix", () => {
    const why = maskProblem6("fd00:6:1::100", 64, rips, "fd00:6:1::1");
    assert.match(why, /"fd00:6:1::\/64 dev lo"/);
    assert.match(why, /overlaps eth0 fd00:6:1::\/64/);
    assert.match(why, /The default gateway fd00:6:1::1 is inside it/);
    assert.match(
      why,
      /Fix: ip -6 addr del fd00:6:1::100\/64 dev lo; ip -6 addr add fd00:6:1::100\/128 dev lo nodad$/,
    );
    assert.equal(maskProblem6(VIP, 128, rips, null), "");
    assert.doesNotMatch(maskProblem6(VIP, 64, rips, null), /overlaps/);
  });

  const decap: [boolean, boolean, "kernel" | "user"][] = [
    [false, false, "user"],
    [true, false, "user"],
    [false, true, "user"],
    [true, true, "kernel"],
  ];
  for (const [ip6tnl, sit, how] of decap) {
    it(`ip6tnl ${ip6tnl}, sit ${sit}: ${how}`, () => {
      assert.equal(chooseDecap6("auto", { ip6tnl, sit }).how, how);
      assert.equal(chooseDecap6("user", { ip6tnl, sit }).how, "user");
    });
  }
  it("--decap kernel without the modules names them", () => {
    assert.throws(() => chooseDecap6("kernel", { ip6tnl: true, sit: false }), /ip6_tunnel and sit/);
  });

  it("setup switches IPv6 on where the director reaches the server over it, nowhere when it tunnels over IPv4", () => {
    assert.deepEqual(
      settingsFor6("dr", ["eth0"], false).map(([k, v]) => [k, v]),
      [["net.ipv6.conf.eth0.disable_ipv6", 0]],
    );
    assert.deepEqual(settingsFor6("tun", ["eth0"], true), []);
  });

  it("the director-facing interface: the same choice as for IPv4, in IPv6's words", () => {
    assert.throws(
      () => chooseDirectorIface({ director: [], iface: null, tunnel: [], ifaces: [], family: 6 }),
      /no interface with an IPv6 address besides lo \(link-local aside\)/,
    );
    const c = chooseDirectorIface({
      director: [],
      iface: null,
      tunnel: [],
      ifaces: ["eth0", "eth1"],
      family: 6,
    });
    assert.match(c.detail, /all carry IPv6/);
    // A VIP's /64 on lo covering the DIP routes it into lo: the director is not behind lo.
    assert.throws(
      () =>
        chooseDirectorIface({
          director: [{ addr: "fd00:6:1::1", dev: "lo", src: "fd00:6:1::100", local: false }],
          iface: null,
          tunnel: [],
          ifaces: ["eth0"],
          family: 6,
        }),
      /director fd00:6:1::1 is routed into lo/,
    );
  });
});
