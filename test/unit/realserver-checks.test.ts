// `tsvs realserver` decisions as tables (src/realserver/checks.ts, decap.ts innerOffset): which
// interface leads to the director, the doctor's verdicts on rp_filter and on the decapsulator's
// counters, and which tunnelled datagrams the decapsulator takes (issue-10: a real server with a
// link toward the director and another toward the clients).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  chooseDirectorIface,
  type DecapStatsView,
  type DirectorIfaceInput,
  decapFindings,
  type Level,
  type RouteTo,
  type RpFilterInput,
  rpFilterFinding,
} from "../../src/realserver/checks.js";
import { innerOffset } from "../../src/realserver/decap.js";
import { ip, ipv4Datagram, PROTO_IPIP, PROTO_UDP, udpDatagram } from "../support/packet-builder.js";

function route(addr: string, dev: string | null, extra: Partial<RouteTo> = {}): RouteTo {
  return { addr, dev, src: null, local: false, ...extra };
}

describe("chooseDirectorIface", () => {
  const two = ["eth0", "eth1"];
  const cases: {
    description: string;
    input: Partial<DirectorIfaceInput>;
    ifaces?: string[];
    how?: string;
    throws?: RegExp;
  }[] = [
    {
      description: "the route to --director wins over everything",
      input: {
        director: [route("198.18.21.1", "eth0")],
        iface: "eth1",
        tunnel: [route("198.18.9.9", "eth1")],
      },
      ifaces: ["eth0"],
      how: "director",
    },
    {
      description: "two directors through two links: both",
      input: {
        director: [route("198.18.21.1", "eth0"), route("198.18.23.1", "eth1"), route("198.18.21.2", "eth0")],
      },
      ifaces: ["eth0", "eth1"],
      how: "director",
    },
    {
      description: "--iface without --director",
      input: { iface: "eth1", tunnel: [route("198.18.21.1", "eth0")] },
      ifaces: ["eth1"],
      how: "iface",
    },
    {
      description: "the tunnel sources seen, when nothing is given",
      input: { tunnel: [route("198.18.21.1", "eth0")] },
      ifaces: ["eth0"],
      how: "tunnel",
    },
    {
      description: "an unroutable or local tunnel source says nothing",
      input: { tunnel: [route("198.18.21.1", null), route("198.18.21.11", "lo", { local: true })] },
      ifaces: two,
      how: "ambiguous",
    },
    { description: "the only interface", input: { ifaces: ["eth0"] }, ifaces: ["eth0"], how: "only" },
    { description: "several and no hint: every one", input: {}, ifaces: two, how: "ambiguous" },
    {
      description: "a director that is this host",
      input: { director: [route("198.18.21.11", "lo", { local: true })] },
      throws: /is an address of this host/,
    },
    {
      description: "an unreachable director",
      input: { director: [route("203.0.113.1", null)] },
      throws: /not reachable/,
    },
    {
      description: "no interface at all",
      input: { ifaces: [] },
      throws: /no interface with an IPv4 address/,
    },
  ];
  for (const c of cases) {
    it(c.description, () => {
      const input: DirectorIfaceInput = { director: [], iface: null, tunnel: [], ifaces: two, ...c.input };
      if (c.throws !== undefined) {
        assert.throws(() => chooseDirectorIface(input), c.throws);
        return;
      }
      const got = chooseDirectorIface(input);
      assert.deepEqual(got.ifaces, c.ifaces);
      assert.equal(got.how, c.how);
    });
  }
});

describe("rpFilterFinding", () => {
  const base: RpFilterInput = {
    method: "dr",
    ifname: "eth0",
    all: 0,
    dev: 0,
    director: true,
    clientDev: "eth1",
    rpDrops: 0,
  };
  const cases: { description: string; input: Partial<RpFilterInput>; level: Level; detail?: RegExp }[] = [
    { description: "DR, off", input: {}, level: "ok" },
    { description: "DR, loose on the director's link", input: { all: 1, dev: 2 }, level: "ok" },
    {
      description: "DR, strict (all=1) on the director's link, clients routed via the other link",
      input: { all: 1 },
      level: "FAIL",
      detail: /client addresses are routed via eth1/,
    },
    {
      description: "DR, strict on the director's link which is also the clients' route",
      input: { dev: 1, clientDev: "eth0" },
      level: "ok",
      detail: /clients are routed through eth0/,
    },
    { description: "DR, strict, no default route", input: { dev: 1, clientDev: null }, level: "ok" },
    {
      description: "DR, strict on another link, no drops yet",
      input: { dev: 1, director: false },
      level: "warn",
      detail: /if the director is reached through eth0/,
    },
    {
      description: "DR, strict on another link, and the kernel dropped packets by rp_filter",
      input: { dev: 1, director: false, rpDrops: 7 },
      level: "FAIL",
      detail: /dropped 7 packets by rp_filter/,
    },
    {
      description: "TUN, strict on the director's link even when clients are routed there",
      input: { method: "tun", dev: 1, clientDev: "eth0" },
      level: "FAIL",
      detail: /TUN wants 0/,
    },
    { description: "TUN, loose on the director's link", input: { method: "tun", dev: 2 }, level: "ok" },
    {
      description: "TUN, strict on the clients' link",
      input: { method: "tun", ifname: "eth1", dev: 1, director: false },
      level: "ok",
    },
  ];
  for (const c of cases) {
    it(c.description, () => {
      const f = rpFilterFinding({ ...base, ...c.input });
      assert.equal(f.level, c.level, f.detail);
      if (c.detail !== undefined) assert.match(f.detail, c.detail);
    });
  }
  it("names all, the interface and the effective value (the larger)", () => {
    assert.equal(rpFilterFinding({ ...base, all: 2, dev: 1 }).what, "rp_filter all=2 eth0=1 → 2");
  });
});

describe("decapFindings", () => {
  const stats = (s: Partial<DecapStatsView>): DecapStatsView => ({
    received: 0,
    delivered: 0,
    badOuter: 0,
    badInner: 0,
    notLocal: 0,
    writeErrors: 0,
    accept: "host",
    addresses: ["127.0.0.1", "198.18.21.11", "198.18.22.11"],
    sources: [],
    lastNotLocal: null,
    ...s,
  });
  const up = { alive: true, pid: 42, tun: "tsvsipip0", hasTun: true, directorSrc: [] as string[] };
  const cases: {
    description: string;
    input: Partial<typeof up> & { stats: DecapStatsView | null };
    levels: Level[];
    what?: RegExp;
  }[] = [
    { description: "not running", input: { alive: false, stats: null }, levels: ["FAIL"] },
    { description: "tun device gone", input: { hasTun: false, stats: stats({}) }, levels: ["FAIL"] },
    { description: "running, no counters yet", input: { stats: null }, levels: ["ok"] },
    {
      description: "every packet delivered",
      input: { stats: stats({ received: 9, delivered: 9 }) },
      levels: ["ok"],
    },
    {
      description: "issue-10: every packet refused as not local (held to the client-side address)",
      input: {
        stats: stats({
          accept: "fixed",
          addresses: ["198.18.22.11"],
          received: 5,
          notLocal: 5,
          lastNotLocal: "198.18.21.11",
          sources: ["198.18.21.1"],
        }),
        directorSrc: ["198.18.21.11"],
      },
      levels: ["ok", "FAIL", "FAIL"],
      what: /received but not delivered: 5 of 5/,
    },
    {
      description: "a fixed list without the director's address fails before any traffic",
      input: {
        stats: stats({ accept: "fixed", addresses: ["198.18.22.11"] }),
        directorSrc: ["198.18.21.11"],
      },
      levels: ["ok", "FAIL"],
      what: /does not accept 198\.18\.21\.11/,
    },
    {
      description: "a fixed list holding the director's address",
      input: {
        stats: stats({ accept: "fixed", addresses: ["198.18.21.11"] }),
        directorSrc: ["198.18.21.11"],
      },
      levels: ["ok"],
    },
    {
      description: "writes to the tun device failed",
      input: { stats: stats({ received: 3, delivered: 1, writeErrors: 2 }) },
      levels: ["ok", "FAIL"],
      what: /2 of 3/,
    },
    {
      description: "malformed datagrams only warn",
      input: { stats: stats({ received: 4, delivered: 3, badInner: 1 }) },
      levels: ["ok", "warn"],
    },
  ];
  for (const c of cases) {
    it(c.description, () => {
      const f = decapFindings({ ...up, ...c.input });
      assert.deepEqual(
        f.map((x) => x.level),
        c.levels,
        f.map((x) => `${x.level} ${x.what}: ${x.detail}`).join("\n"),
      );
      if (c.what !== undefined)
        assert.ok(
          f.some((x) => c.what?.test(x.what)),
          JSON.stringify(f),
        );
    });
  }
  it("says where the refused packets went and where they came from", () => {
    const f = decapFindings({
      ...up,
      stats: stats({ received: 2, notLocal: 2, lastNotLocal: "198.18.21.99", sources: ["198.18.21.1"] }),
    });
    assert.equal(
      f[1].detail,
      "2 addressed to 198.18.21.99 that is not a local address; tunnel sources 198.18.21.1",
    );
  });
});

describe("innerOffset: which tunnelled datagrams the decapsulator takes", () => {
  const inner = ipv4Datagram({
    src: ip("198.18.20.2"),
    dst: ip("198.18.0.100"),
    proto: PROTO_UDP,
    payload: udpDatagram(ip("198.18.20.2"), ip("198.18.0.100"), {
      sport: 40000,
      dport: 53,
      payload: new Uint8Array(4),
    }),
  });
  const outer = (dst: string, payload = inner, proto = PROTO_IPIP): Uint8Array =>
    ipv4Datagram({ src: ip("198.18.21.1"), dst: ip(dst), proto, payload });
  const host = Uint32Array.from(["127.0.0.1", "198.18.21.11", "198.18.22.11"].map(ip));
  const cases: { description: string; frame: Uint8Array; len?: number; accept: Uint32Array; want: number }[] =
    [
      { description: "to the director-facing address", frame: outer("198.18.21.11"), accept: host, want: 20 },
      { description: "to the client-side address", frame: outer("198.18.22.11"), accept: host, want: 20 },
      {
        description: "empty list: any destination",
        frame: outer("198.18.99.9"),
        accept: new Uint32Array(0),
        want: 20,
      },
      { description: "not among the accepted", frame: outer("198.18.21.99"), accept: host, want: -3 },
      {
        description: "held to one address (--local), to another",
        frame: outer("198.18.21.11"),
        accept: Uint32Array.of(ip("198.18.22.11")),
        want: -3,
      },
      {
        description: "outer shorter than a header",
        frame: outer("198.18.21.11"),
        len: 19,
        accept: host,
        want: -1,
      },
      {
        description: "outer not IPIP",
        frame: outer("198.18.21.11", inner, PROTO_UDP),
        accept: host,
        want: -1,
      },
      {
        description: "inner total length beyond what arrived",
        frame: outer("198.18.21.11"),
        len: 20 + inner.length - 1,
        accept: host,
        want: -2,
      },
      {
        description: "inner not IPv4",
        frame: outer("198.18.21.11", Uint8Array.from([0x60, ...inner.subarray(1)])),
        accept: host,
        want: -2,
      },
    ];
  for (const c of cases) {
    it(c.description, () => {
      assert.equal(innerOffset(c.frame, c.len ?? c.frame.length, c.accept), c.want);
    });
  }
});
