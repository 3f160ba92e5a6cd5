// The fanout program (src/io/bpf.ts compileFanoutProgram) on IPv6 frames, run by the test's cBPF
// interpreter (test/support/cbpf.ts): requests spread by client, a NAT reply from an IPv6 real
// server reaches its request's worker, a FULLNAT reply to an IPv6 LIP reaches the LIP's owner, NDP
// goes to worker 0, and IPv4 is keyed as before. The program sees the network header at
// offset 0 and the ethertype through SKF_AD_PROTOCOL. No root needed.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIPv4, parseIPv6 } from "../../src/core/addr.js";
import {
  BPF_MAX_INSNS,
  compileFanoutProgram,
  type FanoutSpec,
  fanoutHash,
  fanoutHash6,
  fanoutSpreadsIpv6,
} from "../../src/io/bpf.js";
import { ipv4Frame, runBpf } from "../support/cbpf.js";

const A = (s: string): number => parseIPv4(s) ?? 0;
const B = (s: string): Uint8Array => parseIPv6(s) ?? new Uint8Array(16);
const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;

/** An IPv6 header (next header nh) + 40 bytes of payload, `body` at its start; no link header. */
function net6(src: string, dst: string, nh = 6, body: number[] = []): Uint8Array {
  const f = new Uint8Array(40 + 40);
  f[0] = 0x60;
  f[5] = 40;
  f[6] = nh;
  f[7] = 64;
  f.set(B(src), 8);
  f.set(B(dst), 24);
  f.set(body, 40);
  return f;
}
const icmp6 = (src: string, dst: string, type: number): Uint8Array => net6(src, dst, 58, [type]);
/** The four words of an address, as addr.ts ipv6TextWords, written independently. */
function words(s: string): Int32Array {
  const dv = new DataView(B(s).buffer);
  return Int32Array.from([0, 4, 8, 12], (o) => dv.getInt32(o));
}

const VIP6 = "2001:db8::80";
const FNAT_VIP6 = "2001:db8::443";
const RIP6 = "2001:db8:1::11";
const LIP6 = "2001:db8:1::201";
const LIP6B = "2001:db8:1::202";
const SPEC: FanoutSpec = {
  lips: [{ addr: A("198.18.1.201"), worker: 1 }],
  rips: [A("198.18.1.11")],
  rips6: [RIP6, "2001:db8:1::12"],
  lips6: [
    { addr6: LIP6, worker: 0 },
    { addr6: LIP6B, worker: 3 },
  ],
};
const client = (i: number): string => `2001:db8:9:${(i >> 8).toString(16)}::${(i & 255).toString(16)}`;

describe("fanout program, IPv6: both directions of a NAT connection on one worker", () => {
  const prog = compileFanoutProgram(SPEC);
  for (const n of [2, 3, 4])
    it(`request CIP → VIP and reply RIP → CIP pick the same of ${n} workers, for 200 clients`, () => {
      for (let i = 1; i <= 200; i++) {
        const req = runBpf(prog, net6(client(i), VIP6), ETH_P_IPV6) % n;
        assert.equal(runBpf(prog, net6("2001:db8:1::12", client(i), 17), ETH_P_IPV6) % n, req, client(i));
        assert.equal(req, fanoutHash6(words(client(i))) % n, "the JS hash is the program's");
      }
    });

  it("requests spread over the workers", () => {
    const per = [0, 0, 0, 0];
    for (let i = 0; i < 1000; i++) per[runBpf(prog, net6(client(i), VIP6), ETH_P_IPV6) % 4]++;
    for (const c of per) assert.ok(c > 180 && c < 320, JSON.stringify(per));
  });

  it("the IPv6 hash is the IPv4 one over the fold of the four words", () => {
    const w = words("2001:db8:9::7");
    assert.equal(fanoutHash6(w), fanoutHash((w[0] ^ w[1] ^ w[2] ^ w[3]) >>> 0));
  });
});

describe("fanout program, IPv6: where each kind of frame goes (table)", () => {
  // Clients whose hash is not 0 modulo 4, so that worker 0 is the program's choice, not chance.
  const c = [1, 2, 3, 4, 5, 6, 7, 8].map(client).find((a) => fanoutHash6(words(a)) % 4 !== 0) ?? "";
  const cases: [string, Uint8Array, number | "hash"][] = [
    ["TCP request to a NAT VIP: by client", net6(c, VIP6), "hash"],
    ["an echo request to a VIP: by client", icmp6(c, VIP6, 128), "hash"],
    ["an ICMPv6 error from a real server: by its destination", icmp6(RIP6, c, 1), "hash"],
    ["FULLNAT reply to the IPv6 LIP of worker 0", net6(RIP6, LIP6), 0],
    ["FULLNAT reply to the IPv6 LIP of worker 3", net6(RIP6, LIP6B), 3],
    ["FULLNAT request to a VIP of a service with IPv6 LIPs: by client", net6(c, FNAT_VIP6), "hash"],
    ["router solicitation", icmp6(c, "ff02::2", 133), 0],
    ["router advertisement", icmp6(c, "ff02::1", 134), 0],
    ["neighbour solicitation", icmp6(c, "ff02::1:ff00:80", 135), 0],
    ["neighbour advertisement", icmp6(c, VIP6, 136), 0],
    ["redirect", icmp6(c, VIP6, 137), 0],
  ];
  const prog = compileFanoutProgram(SPEC);
  for (const [name, frame, want] of cases)
    it(`${name} → ${want === "hash" ? "the client's worker" : `worker ${want}`}`, () => {
      const got = runBpf(prog, frame, ETH_P_IPV6) % 4;
      assert.equal(got, want === "hash" ? fanoutHash6(words(c)) % 4 : want);
    });
});

describe("fanout program, IPv6: falling back to worker 0, IPv4 unchanged", () => {
  const c = client(3);
  it("sets too large for BPF_MAXINSNS: all IPv6 to worker 0, IPv4 still keyed", () => {
    const many = Array.from({ length: 500 }, (_, i) => `2001:db8:7::${(i + 1).toString(16)}`);
    const spec = { ...SPEC, rips6: many };
    const p = compileFanoutProgram(spec);
    assert.ok(p.length / 8 <= BPF_MAX_INSNS);
    assert.equal(fanoutSpreadsIpv6(spec), false);
    assert.equal(runBpf(p, net6(c, VIP6), ETH_P_IPV6), 0);
    assert.equal(runBpf(p, ipv4Frame("198.18.1.11", "198.18.1.201").subarray(14), ETH_P_IP), 1, "to a LIP");
    assert.equal(fanoutSpreadsIpv6(SPEC), true);
  });

  it("IPv4 keeps its keys: LIP owner, reply by destination, request by source", () => {
    const v4 = (s: string, d: string): number =>
      runBpf(compileFanoutProgram(SPEC), ipv4Frame(s, d).subarray(14), ETH_P_IP);
    assert.equal(v4("198.18.1.11", "198.18.1.201"), 1);
    assert.equal(v4("198.18.1.11", "10.0.0.7"), fanoutHash(A("10.0.0.7")));
    assert.equal(v4("10.0.0.7", "198.18.0.100"), fanoutHash(A("10.0.0.7")));
  });

  it("other ethertypes go to worker 0", () => {
    assert.equal(runBpf(compileFanoutProgram(SPEC), new Uint8Array(28), 0x0806), 0);
  });
});
