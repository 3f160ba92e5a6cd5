// The compiled classic BPF programs (src/io/bpf.ts) run by a small cBPF interpreter
// (test/support/cbpf.ts), on hand-built frames. No root needed. (Several workers' tables
// are merged as numbers: test/unit/control-api.test.ts.)

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIPv4 } from "../../src/core/addr.js";
import { compileFanoutProgram, compileOwnedFilter, fanoutHash } from "../../src/io/bpf.js";
import { arpFrame, ipv4Frame, runBpf } from "../support/cbpf.js";

const A = (s: string): number => parseIPv4(s) ?? 0;

describe("owned-address socket filter", () => {
  const prog = compileOwnedFilter({
    owned: [A("198.18.0.100"), A("198.18.1.201")],
    locals: [A("198.18.0.254")],
    rips: [A("198.18.1.11")],
    snaplen: 2048,
  });
  const ipv6 = new Uint8Array(60);
  ipv6[12] = 0x86;
  ipv6[13] = 0xdd;
  const cases: [string, Uint8Array, number][] = [
    ["IPv4 to a VIP", ipv4Frame("198.18.0.1", "198.18.0.100"), 2048],
    ["IPv4 to a LIP (FULLNAT reply)", ipv4Frame("198.18.1.11", "198.18.1.201"), 2048],
    ["IPv4 from a real server (NAT reply)", ipv4Frame("198.18.1.11", "198.18.0.1"), 2048],
    ["ICMP to anyone", ipv4Frame("10.0.0.1", "10.0.0.2", 1), 2048],
    ["IPv4 between other hosts", ipv4Frame("198.18.0.1", "198.18.0.254"), 0],
    ["ARP for a VIP", arpFrame("198.18.0.100"), 2048],
    ["ARP for the DIP (reply to our request)", arpFrame("198.18.0.254"), 2048],
    ["ARP for another host", arpFrame("198.18.0.7"), 0],
    ["IPv6", ipv6, 0],
  ];
  for (const [name, frame, want] of cases)
    it(`${name} → ${want === 0 ? "dropped" : "kept"}`, () => assert.equal(runBpf(prog, frame), want));

  it("falls back to all IPv4 when the sets would not fit in BPF_MAXINSNS", () => {
    const many = Array.from({ length: 3000 }, (_, i) => 0x0a000000 + i);
    const p = compileOwnedFilter({ owned: many, locals: [], rips: [], snaplen: 100 });
    assert.ok(p.length / 8 < 4096);
    assert.equal(runBpf(p, ipv4Frame("1.2.3.4", "5.6.7.8")), 100);
  });

  it("ARP-only and all-ARP variants", () => {
    const p = compileOwnedFilter({ owned: [], locals: [], rips: [], ipv4: false, allArp: true, snaplen: 64 });
    assert.equal(runBpf(p, arpFrame("1.1.1.1")), 64);
    assert.equal(runBpf(p, ipv4Frame("1.1.1.1", "2.2.2.2", 1)), 0);
    const noArp = compileOwnedFilter({
      owned: [A("1.1.1.1")],
      locals: [],
      rips: [],
      arp: false,
      snaplen: 64,
    });
    assert.equal(runBpf(noArp, arpFrame("1.1.1.1")), 0);
  });
});

describe("fanout program: both directions of a connection go to one worker", () => {
  const rips = [A("198.18.1.11"), A("198.18.1.12")];
  const lips = [
    { addr: A("198.18.1.201"), worker: 0 },
    { addr: A("198.18.1.202"), worker: 1 },
    { addr: A("198.18.1.203"), worker: 2 },
  ];
  const prog = compileFanoutProgram({ lips, rips });
  // The fanout program sees the IP header at offset 0 (no Ethernet header).
  const net = (s: string, d: string): Uint8Array => ipv4Frame(s, d).subarray(14);
  for (const n of [2, 3, 4]) {
    it(`NAT request CIP → VIP and reply RIP → CIP pick the same of ${n} workers, for 200 clients`, () => {
      for (let i = 1; i <= 200; i++) {
        const cip = `10.${i >> 8}.${i & 255}.${(i * 7) & 255}`;
        const req = runBpf(prog, net(cip, "198.18.0.100"), 0x0800) % n;
        const rep = runBpf(prog, net("198.18.1.12", cip), 0x0800) % n;
        assert.equal(req, rep, cip);
        assert.equal(req, fanoutHash(A(cip)) % n, "the JS hash is the program's");
      }
    });
  }
  it("a frame to a LIP goes to the LIP's owner; non-IPv4 to worker 0", () => {
    for (const l of lips)
      assert.equal(runBpf(prog, net("198.18.1.11", `198.18.1.20${l.worker + 1}`), 0x0800), l.worker);
    assert.equal(runBpf(prog, new Uint8Array(28), 0x0806), 0);
  });
  it("the hash spreads consecutive client addresses over the workers", () => {
    const per = [0, 0, 0, 0];
    for (let i = 0; i < 1000; i++)
      per[runBpf(prog, net(`10.0.${i >> 8}.${i & 255}`, "198.18.0.100"), 0x0800) % 4]++;
    for (const c of per) assert.ok(c > 180 && c < 320, JSON.stringify(per));
  });
});
