// The XDP program (src/io/xdp-prog.ts) through the kernel's verifier and BPF_PROG_TEST_RUN: the
// verdict for each kind of frame, as a table, with the sets changed in place between runs (no
// reload). In a test run no socket is bound, so the program is built with XDP_TX as its "no socket
// for this queue" verdict: TX here means "redirected to the socket". Needs root and a kernel that
// loads XDP programs: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ipv6TextWords, parseIPv4, parseIPv6 } from "../../src/core/addr.js";
import { fanoutHash, fanoutHash6 } from "../../src/io/bpf.js";
import { BpfError, loadXdpProgram, testRunXdp, XDP_PASS, XDP_TX } from "../../src/io/ebpf.js";
import { libc } from "../../src/io/libc.js";
import { createXskMap, XdpSets, type XdpSetsSpec } from "../../src/io/xdp-prog.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("xdp program");
const A = (s: string): number => parseIPv4(s) ?? 0;
const REDIRECT = XDP_TX;
const PASS = XDP_PASS;

function ip4(src: string, dst: string, proto: number, sport = 0, frag = 0): Uint8Array {
  const f = new Uint8Array(60);
  const dv = new DataView(f.buffer);
  f[12] = 0x08;
  f[14] = 0x45;
  dv.setUint16(20, frag);
  f[23] = proto;
  dv.setUint32(26, A(src));
  dv.setUint32(30, A(dst));
  dv.setUint16(34, sport);
  dv.setUint16(36, 80);
  return f;
}

function arp(target: string): Uint8Array {
  const f = new Uint8Array(60);
  f[12] = 0x08;
  f[13] = 0x06;
  new DataView(f.buffer).setUint32(38, A(target));
  return f;
}

function ip6(src: string, dst: string, nh: number, body: number[] = []): Uint8Array {
  const f = new Uint8Array(14 + 40 + 40);
  f[12] = 0x86;
  f[13] = 0xdd;
  f[14] = 0x60;
  f[19] = 40;
  f[20] = nh;
  f.set(parseIPv6(src) ?? [], 22);
  f.set(parseIPv6(dst) ?? [], 38);
  f.set(body, 54);
  return f;
}

/** The program through the verifier; its log, the diagnosis, is the failure's message. */
function load(code: Uint8Array, name: string): number {
  try {
    return loadXdpProgram(code, name);
  } catch (e) {
    if (e instanceof BpfError) assert.fail(e.message);
    throw e;
  }
}

function closeAll(prog: number, xsks: { close(): void } | undefined, sets: XdpSets | undefined): void {
  if (prog >= 0) libc().close(prog);
  xsks?.close();
  sets?.close();
}

const SPEC: XdpSetsSpec = {
  owned: [A("198.18.0.100"), A("198.18.0.101")],
  locals: [A("198.18.0.1")],
  nat: [
    { addr: A("198.18.1.11"), proto: 6, port: 80 },
    { addr: A("198.18.1.12"), proto: 17, port: 0 },
  ],
  owned6: ["fd00:18::100"],
  locals6: ["fd00:18::1"],
  nat6: [{ addr6: "fd00:18:1::11", proto: 6, port: 80 }],
};

describe("XDP program in the kernel", { skip }, () => {
  let sets: XdpSets;
  let prog = -1;
  let xsks: ReturnType<typeof createXskMap>;
  before(() => {
    sets = new XdpSets();
    xsks = createXskMap(4);
    sets.update(SPEC);
    prog = load(sets.program(xsks, XDP_TX), "tsvs_test");
  });
  after(() => closeAll(prog, xsks, sets));

  const table: [string, Uint8Array, number][] = [
    ["UDP to a VIP", ip4("198.18.5.5", "198.18.0.100", 17, 1234), REDIRECT],
    ["TCP to the other VIP", ip4("198.18.5.5", "198.18.0.101", 6, 1234), REDIRECT],
    ["ICMP echo to a VIP", ip4("198.18.5.5", "198.18.0.100", 1), REDIRECT],
    ["anything to the director's own address", ip4("198.18.5.5", "198.18.0.1", 6, 22), PASS],
    ["traffic of other hosts", ip4("198.18.5.5", "198.18.9.9", 6, 22), PASS],
    ["a NAT reply RIP:80 → client", ip4("198.18.1.11", "198.18.5.5", 6, 80), REDIRECT],
    ["from the RIP, another port", ip4("198.18.1.11", "198.18.5.5", 6, 81), PASS],
    ["from the RIP:80 to the director (its health check)", ip4("198.18.1.11", "198.18.0.1", 6, 80), PASS],
    ["from a port-0 destination, any port", ip4("198.18.1.12", "198.18.5.5", 17, 5353), REDIRECT],
    ["from a port-0 destination, TCP (not its protocol)", ip4("198.18.1.12", "198.18.5.5", 6, 5353), PASS],
    ["ICMP from a NAT real server to a client", ip4("198.18.1.11", "198.18.5.5", 1), REDIRECT],
    ["a later fragment of a NAT reply (no ports)", ip4("198.18.1.11", "198.18.5.5", 6, 0, 0x00b9), PASS],
    ["ARP about a VIP", arp("198.18.0.100"), REDIRECT],
    ["ARP about the director's address (the kernel answers)", arp("198.18.0.1"), PASS],
    ["IPv6 to a VIP", ip6("fd00:18::5", "fd00:18::100", 6, [0x12, 0x34, 0, 80]), REDIRECT],
    ["IPv6 to the director", ip6("fd00:18::5", "fd00:18::1", 6, [0x12, 0x34, 0, 22]), PASS],
    [
      "NS for a VIP",
      ip6("fd00:18::5", "ff02::1:ff00:100", 58, [
        135,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        ...(parseIPv6("fd00:18::100") ?? []),
      ]),
      REDIRECT,
    ],
    [
      "NS for the director's address",
      ip6("fd00:18::5", "ff02::1:ff00:1", 58, [135, 0, 0, 0, 0, 0, 0, 0, ...(parseIPv6("fd00:18::1") ?? [])]),
      PASS,
    ],
    ["an IPv6 NAT reply", ip6("fd00:18:1::11", "fd00:18::5", 6, [0, 80, 0x12, 0x34]), REDIRECT],
    // Its ICMPv6 goes to the engine (a packet too big for a client), its NDP to the kernel: a NAT
    // real server solicits the director's address, its default gateway.
    [
      "ICMPv6 packet too big from a NAT real server",
      ip6("fd00:18:1::11", "fd00:18::5", 58, [2, 0]),
      REDIRECT,
    ],
    [
      "NS from a NAT real server for the director's address",
      ip6("fd00:18:1::11", "ff02::1:ff00:1", 58, [
        135,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        ...(parseIPv6("fd00:18::1") ?? []),
      ]),
      PASS,
    ],
    ["NA from a NAT real server", ip6("fd00:18:1::11", "fd00:18::1", 58, [136, 0]), PASS],
    [
      "LLDP (another EtherType)",
      Uint8Array.from({ length: 60 }, (_, i) => (i === 12 ? 0x88 : i === 13 ? 0xcc : 0)),
      PASS,
    ],
    [
      "IPv4 cut short (14 bytes past the Ethernet header)",
      Uint8Array.from({ length: 28 }, (_, i) => (i === 12 ? 8 : 0)),
      PASS,
    ],
  ];

  it("passes the verifier, and decides each frame as the guard would", () => {
    for (const [what, frame, want] of table) assert.equal(testRunXdp(prog, frame), want, what);
  });

  it("follows set changes without a reload; a fwmark network rule redirects all IPv4/IPv6 not to the director (NDP excepted)", () => {
    sets.update({ ...SPEC, owned: [A("198.18.0.101")] });
    assert.equal(testRunXdp(prog, ip4("198.18.5.5", "198.18.0.100", 17, 1)), PASS, "VIP removed");
    assert.equal(testRunXdp(prog, ip4("198.18.5.5", "198.18.0.101", 17, 1)), REDIRECT, "VIP kept");
    sets.update({ ...SPEC, allIpv4: true });
    assert.equal(testRunXdp(prog, ip4("198.18.5.5", "198.18.9.9", 6, 1)), REDIRECT, "all IPv4");
    assert.equal(testRunXdp(prog, ip4("198.18.5.5", "198.18.0.1", 6, 22)), PASS, "still the director's");
    sets.update({ ...SPEC, allIpv6: true });
    assert.equal(testRunXdp(prog, ip6("fd00:18::5", "fd00:18::99", 17, [0, 1, 0, 2])), REDIRECT, "all IPv6");
    const nsFrame = ip6("fd00:18::5", "ff02::1:ff00:1", 58, [
      135,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...(parseIPv6("fd00:18::1") ?? []),
    ]);
    assert.equal(testRunXdp(prog, nsFrame), PASS, "NDP for the director stays the kernel's");
    assert.equal(testRunXdp(prog, ip6("fe80::1", "ff02::1", 58, [134])), PASS, "a router advertisement too");
    assert.equal(
      testRunXdp(prog, ip6("fd00:18::5", "fd00:18::99", 58, [128])),
      REDIRECT,
      "an echo request is not NDP",
    );
    sets.update(SPEC);
    assert.equal(testRunXdp(prog, ip4("198.18.5.5", "198.18.9.9", 6, 1)), PASS, "back");
    assert.equal(sets.own4.keys().length, 2);
    assert.equal(sets.nat4.keys().length, 4, "RIP.tcp.80, RIP2.udp.any, and ICMP from each");
  });
});

/**
 * Several workers: the program picks the worker as the packet sockets' fanout does (fanoutHash of
 * the client, a LIP's owner), checked against the fanout's own JS twin. Built to return 100 + the
 * socket map's key (queue 0: the worker) instead of redirecting, so the choice shows.
 */
describe("XDP program in the kernel, two workers", { skip }, () => {
  const BASE = 100;
  const LIP_W0 = "198.18.1.200";
  const LIP_W1 = "198.18.1.201";
  const LIP6_W1 = "fd00:18:1::201";
  let sets: XdpSets;
  let prog = -1;
  let xsks: ReturnType<typeof createXskMap>;
  const spec: XdpSetsSpec = {
    ...SPEC,
    owned: [...SPEC.owned, A(LIP_W0)],
    lipOwners: [
      { addr: A(LIP_W0), worker: 0 },
      { addr: A(LIP_W1), worker: 1 },
    ],
    lipOwners6: [{ addr6: LIP6_W1, worker: 1 }],
  };
  before(() => {
    sets = new XdpSets();
    xsks = createXskMap(1, 2);
    sets.update(spec);
    prog = load(sets.program(xsks, XDP_TX, { workers: 2, keyVerdictBase: BASE }), "tsvs_test2");
  });
  after(() => closeAll(prog, xsks, sets));

  const clients = ["198.18.5.5", "198.18.5.6", "198.18.5.7", "198.18.5.8", "198.18.77.1", "198.18.200.3"];
  const clients6 = ["fd00:18::5", "fd00:18::6", "fd00:18::7", "fd00:18:9::1234"];
  const byClient = (c: string): number => BASE + (fanoutHash(A(c)) % 2);
  const byClient6 = (c: string): number => BASE + (fanoutHash6(ipv6TextWords(c) ?? new Int32Array(4)) % 2);

  it("sends a client's requests and the NAT replies to it to the same worker, the fanout's", () => {
    const seen = new Set<number>();
    for (const c of clients) {
      const want = byClient(c);
      seen.add(want);
      assert.equal(testRunXdp(prog, ip4(c, "198.18.0.100", 6, 40000)), want, `TCP to a VIP from ${c}`);
      assert.equal(testRunXdp(prog, ip4(c, "198.18.0.101", 17, 5000)), want, `UDP to a VIP from ${c}`);
      assert.equal(testRunXdp(prog, ip4("198.18.1.11", c, 6, 80)), want, `NAT reply to ${c}`);
      assert.equal(testRunXdp(prog, ip4("198.18.1.11", c, 1)), want, `ICMP from the real server to ${c}`);
    }
    assert.deepEqual([...seen].sort(), [BASE, BASE + 1], "both workers get clients");
    for (const c of clients6) {
      const want = byClient6(c);
      assert.equal(testRunXdp(prog, ip6(c, "fd00:18::100", 6, [0x12, 0x34, 0, 80])), want, `IPv6 from ${c}`);
      assert.equal(
        testRunXdp(prog, ip6("fd00:18:1::11", c, 6, [0, 80, 0x12, 0x34])),
        want,
        `IPv6 reply to ${c}`,
      );
    }
  });

  it("sends a LIP's frames to its owner; ARP and NS for owned addresses to the kernel and every worker's ARP socket", () => {
    for (const c of clients) {
      assert.equal(
        testRunXdp(prog, ip4("198.18.1.11", LIP_W0, 6, 80)),
        BASE,
        `FULLNAT reply to worker 0's LIP (${c})`,
      );
      assert.equal(
        testRunXdp(prog, ip4(c, LIP_W1, 6, 80)),
        BASE + 1,
        "to worker 1's LIP, not listed as owned",
      );
    }
    assert.equal(testRunXdp(prog, ip6("fd00:18:1::11", LIP6_W1, 6, [0, 80, 0x12, 0x34])), BASE + 1);
    assert.equal(testRunXdp(prog, arp("198.18.0.100")), PASS, "ARP about a VIP");
    const ns = ip6("fd00:18::5", "ff02::1:ff00:100", 58, [
      135,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...(parseIPv6("fd00:18::100") ?? []),
    ]);
    assert.equal(testRunXdp(prog, ns), PASS, "NS for a VIP");
    assert.equal(testRunXdp(prog, ip4("198.18.5.5", "198.18.0.1", 6, 22)), PASS, "the director's own");
    sets.update({ ...spec, allIpv4: true });
    for (const c of clients)
      assert.equal(
        testRunXdp(prog, ip4(c, "198.18.9.9", 6, 1)),
        byClient(c),
        "a fwmark network: by the source",
      );
    sets.update(spec);
  });
});
