// ip6tables rules in the fwmark classifier (issue 14): parsed and printed as ip6tables -S prints
// them, matched against IPv6 flows only, and IPv4 rules kept off IPv6 flows (and back).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type IfindexOf, parseFwmarkRule } from "../../src/control/fwmark-rule.js";
import { ipv6ToWords, parseIPv4, parseIPv6 } from "../../src/core/addr.js";
import { TsvsError } from "../../src/core/errors.js";
import { FwmarkClassifier } from "../../src/core/fwmark.js";
import { Flow, IPPROTO_TCP, IPPROTO_UDP } from "../../src/core/packet/flow.js";

const ifindexOf: IfindexOf = (name) => ({ eth0: 1, eth1: 2 })[name];

interface FlowSpec {
  src?: string;
  dst?: string;
  proto?: number;
  sport?: number;
  dport?: number;
  ifindex?: number;
}

function words(s: string, out: Int32Array): void {
  const b = parseIPv6(s);
  if (b === null) throw new Error(s);
  ipv6ToWords(b, 0, out, 0);
}

const flow = new Flow();
/** An IPv6 flow, or an IPv4 one when the addresses are dotted. */
function mk(s: FlowSpec): Flow {
  const src = s.src ?? "2001:db8:1::1";
  const dst = s.dst ?? "2001:db8::100";
  flow.af = dst.includes(":") ? 6 : 4;
  if (flow.af === 6) {
    words(src, flow.s6);
    words(dst, flow.d6);
    flow.saddr = flow.s6[0] ^ flow.s6[1] ^ flow.s6[2] ^ flow.s6[3];
    flow.daddr = flow.d6[0] ^ flow.d6[1] ^ flow.d6[2] ^ flow.d6[3];
  } else {
    flow.saddr = parseIPv4(src) ?? 0;
    flow.daddr = parseIPv4(dst) ?? 0;
    flow.s6.fill(0);
    flow.d6.fill(0);
  }
  flow.proto = s.proto ?? IPPROTO_TCP;
  flow.sport = s.sport ?? 40000;
  flow.dport = s.dport ?? 80;
  flow.ifindex = s.ifindex ?? 1;
  flow.fragment = false;
  flow.firstFragment = false;
  return flow;
}

function classifier(rules: string[]): FwmarkClassifier {
  const c = new FwmarkClassifier();
  for (const r of rules) c.add(parseFwmarkRule(r, ifindexOf));
  return c;
}

describe("fwmark: ip6tables rules", () => {
  it("are parsed and printed as ip6tables -S prints them (table)", () => {
    const cases: [string, string][] = [
      [
        "-d 2001:db8::100 -p tcp --dport 80 -j MARK --set-mark 5",
        "-d 2001:db8::100/128 -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x5/0xffffffff",
      ],
      [
        "-t mangle -A PREROUTING -s FD00::/8 ! -d 2001:0db8:0000::/32 -j MARK --set-mark 1",
        "-s fd00::/8 ! -d 2001:db8::/32 -j MARK --set-xmark 0x1/0xffffffff",
      ],
      // The address is kept under its mask, as ip6tables keeps it.
      ["-d 2001:db8::1/32 -j MARK --set-mark 1", "-d 2001:db8::/32 -j MARK --set-xmark 0x1/0xffffffff"],
      [
        "-d 2001:db8::1/ffff:ffff:: -j MARK --set-mark 1",
        "-d 2001:db8::/32 -j MARK --set-xmark 0x1/0xffffffff",
      ],
      // A mask with holes is printed as an address.
      [
        "-d 2001:db8::1/ffff::ffff -j MARK --set-mark 1",
        "-d 2001::1/ffff::ffff -j MARK --set-xmark 0x1/0xffffffff",
      ],
      [
        "-d 2001:db8::100 -p udp -m multiport --dports 53,5353:5360 -j MARK --set-mark 7",
        "-d 2001:db8::100/128 -p udp -m multiport --dports 53,5353:5360 -j MARK --set-xmark 0x7/0xffffffff",
      ],
      [
        "-d 2001:db8::100 -i eth1 -j MARK --set-mark 2",
        "-d 2001:db8::100/128 -i eth1 -j MARK --set-xmark 0x2/0xffffffff",
      ],
      [
        "-d 2001:db8::100 -p icmpv6 -j MARK --set-mark 3",
        "-d 2001:db8::100/128 -p ipv6-icmp -j MARK --set-xmark 0x3/0xffffffff",
      ],
      // -6 names the family of a rule without addresses, and stays in its text; with an IPv6
      // address it says nothing more (ip6tables -S does not print it).
      [
        "-6 -p tcp --dport 80 -j MARK --set-mark 5",
        "-6 -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x5/0xffffffff",
      ],
      ["--ipv6 -d ::/0 -j MARK --set-mark 1", "-6 -j MARK --set-xmark 0x1/0xffffffff"],
      ["-6 -d 2001:db8::100 -j MARK --set-mark 1", "-d 2001:db8::100/128 -j MARK --set-xmark 0x1/0xffffffff"],
      // Without an address or -6 a rule is an iptables one; -4 is allowed and not printed.
      [
        "-p tcp --dport 80 -j MARK --set-mark 5",
        "-p tcp -m tcp --dport 80 -j MARK --set-xmark 0x5/0xffffffff",
      ],
      ["-4 -d 10.0.0.1 -j MARK --set-mark 1", "-d 10.0.0.1/32 -j MARK --set-xmark 0x1/0xffffffff"],
    ];
    for (const [rule, text] of cases) {
      const r = parseFwmarkRule(rule, ifindexOf);
      assert.equal(r.text, text, rule);
      assert.equal(parseFwmarkRule(r.text, ifindexOf).text, text, `${rule} round trip`);
    }
    assert.equal(parseFwmarkRule("-6 -j MARK --set-mark 1").af, 6);
    assert.equal(parseFwmarkRule("-j MARK --set-mark 1").af, 4);
    assert.equal(parseFwmarkRule("-s ::ffff:10.0.0.1 -j MARK --set-mark 1").af, 6);
  });

  it("refuses what ip6tables would, and mixed families, with messages (table)", () => {
    const cases: [string, RegExp][] = [
      ["-d 2001:db8::1 -f -j MARK --set-mark 1", /^-f: ip6tables has no fragment flag/],
      ["-6 ! -f -j MARK --set-mark 1", /^-f: ip6tables has no fragment flag/],
      ["-s 10.0.0.1 -d 2001:db8::1 -j MARK --set-mark 1", /`2001:db8::1' is IPv6 but `10.0.0.1' is IPv4/],
      ["-d 2001:db8::1 -s 10.0.0.1 -j MARK --set-mark 1", /`10.0.0.1' is IPv4 but `2001:db8::1' is IPv6/],
      ["-6 -d 10.0.0.1 -j MARK --set-mark 1", /`10.0.0.1' is IPv4 but -6 says IPv6/],
      ["-d 10.0.0.1 -6 -j MARK --set-mark 1", /`-6' is IPv6 but `10.0.0.1' is IPv4/],
      ["-4 -d 2001:db8::1 -j MARK --set-mark 1", /`2001:db8::1' is IPv6 but -4 says IPv4/],
      ["-4 -6 -j MARK --set-mark 1", /-4 and -6 together/],
      ["! -6 -j MARK --set-mark 1", /cannot have ! before -6/],
      ["-d 2001:db8::1/129 -j MARK --set-mark 1", /invalid mask `129' specified/],
      ["-d 2001:db8::1/x -j MARK --set-mark 1", /invalid mask `x' specified/],
      ["-d 2001:zz::1 -j MARK --set-mark 1", /host\/network `2001:zz::1' not found/],
      ["-d 2001:db8::1 -d 2001:db8::2 -j MARK --set-mark 1", /multiple -d flags/],
      ["-d 2001:db8::1 --dport 80 -j MARK --set-mark 1", /ports need -p tcp or -p udp/],
    ];
    for (const [rule, want] of cases) {
      try {
        parseFwmarkRule(rule, ifindexOf);
        assert.fail(`accepted: ${rule}`);
      } catch (e) {
        assert.ok(e instanceof TsvsError, rule);
        assert.equal(e.code, "TSVS_ERR_PARSE", rule);
        assert.match(e.message, want, rule);
      }
    }
  });

  it("match IPv6 flows: prefixes, negation, ports, -i (table: flow in → mark out)", () => {
    const cases: { rule: string; flow: FlowSpec; mark: number }[] = [
      { rule: "-d 2001:db8::100 -p tcp --dport 80 -j MARK --set-mark 5", flow: {}, mark: 5 },
      { rule: "-d 2001:db8::100 -p tcp --dport 80 -j MARK --set-mark 5", flow: { dport: 443 }, mark: 0 },
      {
        rule: "-d 2001:db8::100 -p tcp --dport 80 -j MARK --set-mark 5",
        flow: { dst: "2001:db8::101" },
        mark: 0,
      },
      // The last word counts: an address that differs only there.
      { rule: "-d 2001:db8::100 -j MARK --set-mark 5", flow: { dst: "2001:db8::1:100" }, mark: 0 },
      { rule: "-d 2001:db8::100 -p tcp -j MARK --set-mark 5", flow: { proto: IPPROTO_UDP }, mark: 0 },
      { rule: "-s fd00::/8 -j MARK --set-mark 2", flow: { src: "fdff:ffff::1" }, mark: 2 },
      { rule: "-s fd00::/8 -j MARK --set-mark 2", flow: { src: "fe00::1" }, mark: 0 },
      // A prefix that ends inside a word (/36) and one in the last word (/127).
      { rule: "-d 2001:db8:f000::/36 -j MARK --set-mark 3", flow: { dst: "2001:db8:ffff::1" }, mark: 3 },
      { rule: "-d 2001:db8:f000::/36 -j MARK --set-mark 3", flow: { dst: "2001:db8:e000::1" }, mark: 0 },
      { rule: "-d 2001:db8::100/127 -j MARK --set-mark 4", flow: { dst: "2001:db8::101" }, mark: 4 },
      { rule: "-d 2001:db8::100/127 -j MARK --set-mark 4", flow: { dst: "2001:db8::102" }, mark: 0 },
      { rule: "! -d 2001:db8::/32 -j MARK --set-mark 6", flow: { dst: "2001:db9::1" }, mark: 6 },
      { rule: "! -d 2001:db8::/32 -j MARK --set-mark 6", flow: { dst: "2001:db8::1" }, mark: 0 },
      {
        rule: "! -s fd00::/8 -d 2001:db8::100 -j MARK --set-mark 7",
        flow: { src: "2001:db8:1::1" },
        mark: 7,
      },
      { rule: "! -s fd00::/8 -d 2001:db8::100 -j MARK --set-mark 7", flow: { src: "fd00::1" }, mark: 0 },
      { rule: "-6 -p tcp --dport 80 -j MARK --set-mark 8", flow: { dst: "2001:db8::9" }, mark: 8 },
      { rule: "-6 -p tcp ! --dport 80 -j MARK --set-mark 8", flow: {}, mark: 0 },
      { rule: "-6 -p udp --sport 53 -j MARK --set-mark 9", flow: { proto: IPPROTO_UDP, sport: 53 }, mark: 9 },
      {
        rule: "-d 2001:db8::100 -p tcp -m multiport --dports 80,443,8000:8080 -j MARK --set-mark 10",
        flow: { dport: 8080 },
        mark: 10,
      },
      {
        rule: "-d 2001:db8::100 -p tcp -m multiport --dports 80,443,8000:8080 -j MARK --set-mark 10",
        flow: { dport: 22 },
        mark: 0,
      },
      { rule: "-6 -i eth1 -j MARK --set-mark 11", flow: { ifindex: 2 }, mark: 11 },
      { rule: "-6 ! -i eth1 -j MARK --set-mark 11", flow: { ifindex: 2 }, mark: 0 },
      { rule: "-d ::/0 -j MARK --set-mark 12", flow: { dst: "ff02::1" }, mark: 12 },
      // One family's rules never see the other's packets.
      { rule: "-p tcp --dport 80 -j MARK --set-mark 13", flow: {}, mark: 0 },
      { rule: "-j MARK --set-mark 13", flow: {}, mark: 0 },
      {
        rule: "-6 -p tcp --dport 80 -j MARK --set-mark 14",
        flow: { src: "192.0.2.1", dst: "10.0.0.1" },
        mark: 0,
      },
      {
        rule: "! -d 2001:db8::/32 -j MARK --set-mark 14",
        flow: { src: "192.0.2.1", dst: "10.0.0.1" },
        mark: 0,
      },
      {
        rule: "-p tcp --dport 80 -j MARK --set-mark 15",
        flow: { src: "192.0.2.1", dst: "10.0.0.1" },
        mark: 15,
      },
    ];
    for (const t of cases) {
      const c = classifier([t.rule]);
      assert.equal(c.classify(mk(t.flow)), t.mark, `${t.rule} on ${JSON.stringify(t.flow)}`);
    }
  });

  it("apply in order across families, the last matching rule of the packet's family winning", () => {
    const c = classifier([
      "-p tcp --dport 80 -j MARK --set-mark 1",
      "-6 -p tcp --dport 80 -j MARK --set-mark 2",
      "-d 2001:db8::100 -j MARK --or-mark 0x100",
      "-d 10.0.0.1 -j MARK --or-mark 0x200",
    ]);
    const cases: [FlowSpec, number][] = [
      [{}, 0x102],
      [{ dst: "2001:db8::5" }, 2],
      [{ dport: 22 }, 0x100],
      [{ src: "192.0.2.1", dst: "10.0.0.1" }, 0x201],
      [{ src: "192.0.2.1", dst: "10.0.0.2" }, 1],
    ];
    for (const [f, mark] of cases) assert.equal(c.classify(mk(f)), mark, JSON.stringify(f));
  });

  it("matchesHost6: a /128 destination, not negated (table)", () => {
    const w = new Int32Array(4);
    words("2001:db8::100", w);
    const cases: [string, boolean][] = [
      ["-d 2001:db8::100 -j MARK --set-mark 1", true],
      ["-d 2001:db8::100/128 -p tcp --dport 80 -j MARK --set-mark 1", true],
      ["! -d 2001:db8::100 -j MARK --set-mark 1", false],
      ["-d 2001:db8::100/127 -j MARK --set-mark 1", false],
      ["-d 2001:db8::101 -j MARK --set-mark 1", false],
      ["-s 2001:db8::100 -j MARK --set-mark 1", false],
      ["-d 10.0.0.1 -j MARK --set-mark 1", false],
    ];
    for (const [rule, want] of cases) assert.equal(classifier([rule]).matchesHost6(w), want, rule);
  });
});
