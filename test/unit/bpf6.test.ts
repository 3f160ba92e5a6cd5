// The owned-address socket filter (src/io/bpf.ts compileOwnedFilter) on IPv6 frames, run by the
// test's cBPF interpreter (test/support/cbpf.ts) on frames built here: IPv6 to a VIP or from a real
// server reaches the socket, NSs for owned and local addresses and every NA do (the neighbour
// sockets of a multi-worker daemon take them instead of the fanout sockets), every other ICMPv6 does
// as every ICMP does, and the rest stays with the kernel. No root needed.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIPv4, parseIPv6 } from "../../src/core/addr.js";
import { BPF_MAX_INSNS, compileOwnedFilter, type OwnedFilterSpec } from "../../src/io/bpf.js";
import { arpFrame, ipv4Frame, runBpf } from "../support/cbpf.js";

const A = (s: string): number => parseIPv4(s) ?? 0;
const B = (s: string): Uint8Array => parseIPv6(s) ?? new Uint8Array(16);

/** Ethernet + IPv6 header (next header nh) + 40 bytes of payload, `body` at its start. */
function ip6Frame(src: string, dst: string, nh: number, body: number[] = []): Uint8Array {
  const f = new Uint8Array(14 + 40 + 40);
  f[12] = 0x86;
  f[13] = 0xdd;
  f[14] = 0x60;
  f[19] = 40;
  f[20] = nh;
  f[21] = 64;
  f.set(B(src), 22);
  f.set(B(dst), 38);
  f.set(body, 54);
  return f;
}
const tcp6 = (src: string, dst: string): Uint8Array => ip6Frame(src, dst, 6, [0x9c, 0x40, 0, 80]);
const icmp6 = (src: string, dst: string, type: number, target?: string): Uint8Array =>
  ip6Frame(src, dst, 58, [type, 0, 0, 0, 0, 0, 0, 0, ...(target === undefined ? [] : B(target))]);
const ns = (target: string): Uint8Array => icmp6("fe80::99", "ff02::1:ff00:80", 135, target);

const VIP6 = "2001:db8::80";
const RIP6 = "2001:db8:1::11";
const SPEC: OwnedFilterSpec = {
  owned: [A("198.18.0.100")],
  locals: [A("198.18.0.254")],
  rips: [A("198.18.1.11")],
  owned6: [VIP6, "fd00:5eed::80"],
  locals6: ["fe80::1", "2001:db8::fe"],
  rips6: [RIP6],
  snaplen: 2048,
};

type Case = [string, Uint8Array, boolean];
function table(spec: OwnedFilterSpec, cases: Case[]): void {
  const prog = compileOwnedFilter(spec);
  for (const [name, frame, kept] of cases)
    it(`${name} → ${kept ? "kept" : "dropped"}`, () =>
      assert.equal(runBpf(prog, frame), kept ? spec.snaplen : 0));
}

describe("owned-address socket filter, IPv6 (a single-worker daemon's socket)", () => {
  table(SPEC, [
    ["TCP to an IPv6 VIP", tcp6("2001:db8:9::1", VIP6), true],
    ["UDP to the other IPv6 VIP", ip6Frame("2001:db8:9::1", "fd00:5eed::80", 17), true],
    ["TCP from an IPv6 real server (NAT reply)", tcp6(RIP6, "2001:db8:9::1"), true],
    ["TCP between other hosts", tcp6("2001:db8:9::1", "2001:db8:9::2"), false],
    ["TCP to the director's own address (the kernel's)", tcp6("2001:db8:9::1", "2001:db8::fe"), false],
    // One word off, whichever: the whole address is compared.
    ["to the VIP but for word 0", tcp6("2001:db8:9::1", "2001:db9::80"), false],
    ["to the VIP but for word 1", tcp6("2001:db8:9::1", "2001:db8:0:1::80"), false],
    ["to the VIP but for word 2", tcp6("2001:db8:9::1", "2001:db8::1:0:80"), false],
    ["to the VIP but for word 3", tcp6("2001:db8:9::1", "2001:db8::81"), false],
    ["echo request to anyone (ICMPv6, as ICMP)", icmp6("2001:db8:9::1", "2001:db8:9::2", 128), true],
    ["an error about a connection", icmp6("2001:db8:9::5", "2001:db8:9::1", 1), true],
    ["NS for a VIP", ns(VIP6), true],
    ["NS for a local address (teaches a neighbour)", ns("fe80::1"), true],
    ["NS for another host", ns("2001:db8::77"), false],
    ["NA (the answer to tsvs's NS)", icmp6("fe80::9", "fe80::1", 136, "fe80::9"), true],
    ["MLD report behind hop-by-hop options", ip6Frame("fe80::9", "ff02::16", 0, [58, 0]), false],
    ["IPv4 to a VIP still", ipv4Frame("198.18.0.1", "198.18.0.100"), true],
    ["IPv4 between other hosts still", ipv4Frame("198.18.0.1", "198.18.0.7"), false],
    ["ARP for a VIP still", arpFrame("198.18.0.100"), true],
  ]);
});

describe("owned-address socket filter, IPv6, multi-worker daemon", () => {
  describe("fanout socket (arp: false): no NS/NA, they are read by the neighbour sockets", () =>
    table({ ...SPEC, arp: false }, [
      ["NS for a VIP", ns(VIP6), false],
      ["NA", icmp6("fe80::9", "fe80::1", 136, "fe80::9"), false],
      ["echo request", icmp6("2001:db8:9::1", VIP6, 128), true],
      ["TCP to an IPv6 VIP", tcp6("2001:db8:9::1", VIP6), true],
    ]));
  describe("neighbour socket (ipv4: false, allArp): every NS and NA, nothing else", () =>
    table({ owned: [], locals: [], rips: [], ipv4: false, allArp: true, snaplen: 2048 }, [
      ["NS for anyone", ns("2001:db8::77"), true],
      ["NA", icmp6("fe80::9", "fe80::1", 136, "fe80::9"), true],
      ["echo request", icmp6("2001:db8:9::1", VIP6, 128), false],
      ["TCP to anyone", tcp6("2001:db8:9::1", VIP6), false],
      ["ARP", arpFrame("1.1.1.1"), true],
    ]));
});

describe("owned-address socket filter, IPv6, falling back", () => {
  it("allIpv6 takes every IPv6 frame (a -6 fwmark rule on a network)", () => {
    const p = compileOwnedFilter({ ...SPEC, allIpv6: true });
    assert.equal(runBpf(p, tcp6("2001:db8:9::1", "2001:db8:9::2")), 2048);
    assert.equal(runBpf(p, ns("2001:db8::77")), 0, "NS still by target");
  });

  it("accepts all IPv6 then all NS when the sets would not fit in BPF_MAXINSNS", () => {
    const many = Array.from({ length: 400 }, (_, i) => `2001:db8:7::${(i + 1).toString(16)}`);
    const p = compileOwnedFilter({ ...SPEC, owned6: many });
    assert.ok(p.length / 8 <= BPF_MAX_INSNS);
    assert.equal(runBpf(p, tcp6("2001:db8:9::1", "2001:db8:9::2")), 2048, "all IPv6");
    assert.equal(runBpf(p, ns("2001:db8::77")), 0, "NS still by target: 402 of them fit");
    const more = Array.from({ length: 600 }, (_, i) => `2001:db8:7::${(i + 1).toString(16)}`);
    const q = compileOwnedFilter({ ...SPEC, owned6: more });
    assert.ok(q.length / 8 <= BPF_MAX_INSNS);
    assert.equal(runBpf(q, ns("2001:db8::77")), 2048, "all NS");
    assert.equal(runBpf(q, ipv4Frame("198.18.0.1", "198.18.0.7")), 0, "IPv4 still by address");
  });
});
