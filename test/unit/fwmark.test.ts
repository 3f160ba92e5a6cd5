import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type IfindexOf, parseFwmarkRule } from "../../src/control/fwmark-rule.js";
import { parseIPv4 } from "../../src/core/addr.js";
import { TsvsError } from "../../src/core/errors.js";
import { FwmarkClassifier } from "../../src/core/fwmark.js";
import { Flow, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from "../../src/core/packet/flow.js";

function ip(s: string): number {
  const v = parseIPv4(s);
  if (v === null) throw new Error(s);
  return v;
}

interface FlowSpec {
  src?: string;
  dst?: string;
  proto?: number;
  sport?: number;
  dport?: number;
  ifindex?: number;
  /** "first" | "later" fragment; absent = not fragmented. */
  frag?: "first" | "later";
}

const flow = new Flow();
function mk(s: FlowSpec): Flow {
  flow.saddr = ip(s.src ?? "192.0.2.1");
  flow.daddr = ip(s.dst ?? "10.0.0.1");
  flow.proto = s.proto ?? IPPROTO_TCP;
  flow.sport = s.sport ?? 40000;
  flow.dport = s.dport ?? 80;
  flow.ifindex = s.ifindex ?? 1;
  flow.fragment = s.frag !== undefined;
  flow.firstFragment = s.frag === "first";
  if (s.frag === "later") {
    flow.sport = 0;
    flow.dport = 0;
  }
  return flow;
}

/** The classifier fed with iptables text, as the control API feeds it (src/control/fwmark-rule.ts). */
class Classifier extends FwmarkClassifier {
  constructor(private readonly resolve?: IfindexOf) {
    super();
  }

  addText(rule: string): number {
    return this.add(parseFwmarkRule(rule, this.resolve));
  }
}

const ifindexOf = (name: string): number | undefined => ({ eth0: 1, eth1: 2 })[name];

function one(rule: string, spec: FlowSpec): number {
  const c = new Classifier(ifindexOf);
  c.addText(rule);
  return c.classify(mk(spec));
}

function parseError(rule: string): string {
  const c = new Classifier();
  try {
    c.addText(rule);
  } catch (e) {
    assert.ok(e instanceof TsvsError, rule);
    assert.equal(e.code, "TSVS_ERR_PARSE");
    return e.message;
  }
  assert.fail(`accepted: ${rule}`);
}

describe("FwmarkClassifier (iptables -t mangle -A PREROUTING -j MARK)", () => {
  it("matches rules one at a time (table)", () => {
    const cases: { rule: string; flow: FlowSpec; mark: number }[] = [
      { rule: "-d 10.0.0.1 -p tcp --dport 80 -j MARK --set-mark 10", flow: {}, mark: 10 },
      { rule: "-d 10.0.0.1 -p tcp --dport 80 -j MARK --set-mark 10", flow: { dport: 443 }, mark: 0 },
      { rule: "-d 10.0.0.1 -p tcp --dport 80 -j MARK --set-mark 10", flow: { dst: "10.0.0.2" }, mark: 0 },
      { rule: "-d 10.0.0.1 -p tcp --dport 80 -j MARK --set-mark 10", flow: { proto: IPPROTO_UDP }, mark: 0 },
      { rule: "-A PREROUTING -t mangle -d 10.0.0.1 -j MARK --set-mark 0x20", flow: {}, mark: 32 },
      {
        rule: "-t mangle -A PREROUTING -d 10.0.0.0/24 -j MARK --set-mark 1",
        flow: { dst: "10.0.0.200" },
        mark: 1,
      },
      { rule: "-d 10.0.0.0/24 -j MARK --set-mark 1", flow: { dst: "10.0.1.1" }, mark: 0 },
      { rule: "-d 10.0.0.0/255.255.0.0 -j MARK --set-mark 1", flow: { dst: "10.0.9.9" }, mark: 1 },
      { rule: "-s 192.0.2.0/28 -j MARK --set-mark 2", flow: { src: "192.0.2.15" }, mark: 2 },
      { rule: "-s 192.0.2.0/28 -j MARK --set-mark 2", flow: { src: "192.0.2.16" }, mark: 0 },
      { rule: "-s 0.0.0.0/0 -j MARK --set-mark 3", flow: { src: "255.255.255.255" }, mark: 3 },
      { rule: "-p udp --sport 53 -j MARK --set-mark 4", flow: { proto: IPPROTO_UDP, sport: 53 }, mark: 4 },
      { rule: "-p udp --sport 53 -j MARK --set-mark 4", flow: { proto: IPPROTO_UDP, sport: 54 }, mark: 0 },
      { rule: "-p tcp --dport 1000:2000 -j MARK --set-mark 5", flow: { dport: 1000 }, mark: 5 },
      { rule: "-p tcp --dport 1000:2000 -j MARK --set-mark 5", flow: { dport: 2000 }, mark: 5 },
      { rule: "-p tcp --dport 1000:2000 -j MARK --set-mark 5", flow: { dport: 2001 }, mark: 0 },
      { rule: "-p tcp --dport :1023 -j MARK --set-mark 6", flow: { dport: 0 }, mark: 6 },
      { rule: "-p tcp --dport 1024: -j MARK --set-mark 6", flow: { dport: 65535 }, mark: 6 },
      { rule: "-p 6 -m tcp --dport 80 -j MARK --set-mark 7", flow: {}, mark: 7 },
      { rule: "-p icmp -j MARK --set-mark 8", flow: { proto: IPPROTO_ICMP }, mark: 8 },
      { rule: "-p all -j MARK --set-mark 9", flow: { proto: IPPROTO_ICMP }, mark: 9 },
      { rule: "-j MARK --set-mark 010", flow: {}, mark: 8 }, // strtoul base 0: octal
      { rule: "-j MARK --set-xmark 0xffffffff", flow: {}, mark: 0xffffffff },
      { rule: "-j MARK --set-mark 0x1/0xff", flow: {}, mark: 1 },
      { rule: "-j MARK --or-mark 0x3", flow: {}, mark: 3 },
      { rule: "-j MARK --xor-mark 0x5", flow: {}, mark: 5 },
      { rule: "-j MARK --and-mark 0x5", flow: {}, mark: 0 },
    ];
    for (const t of cases)
      assert.equal(one(t.rule, t.flow), t.mark, `${t.rule} on ${JSON.stringify(t.flow)}`);
  });

  it("matches -m multiport lists and ranges (table)", () => {
    const r = "-d 10.0.0.1 -p tcp -m multiport --dports 80,443,8000:8080 -j MARK --set-mark 10";
    const cases: { rule: string; flow: FlowSpec; mark: number }[] = [
      { rule: r, flow: { dport: 80 }, mark: 10 },
      { rule: r, flow: { dport: 443 }, mark: 10 },
      { rule: r, flow: { dport: 8000 }, mark: 10 },
      { rule: r, flow: { dport: 8080 }, mark: 10 },
      { rule: r, flow: { dport: 8081 }, mark: 0 },
      { rule: r, flow: { dport: 22 }, mark: 0 },
      {
        rule: "-p udp -m multiport --sports 53,123 -j MARK --set-mark 2",
        flow: { proto: 17, sport: 123 },
        mark: 2,
      },
      {
        rule: "-p udp -m multiport --sports 53,123 -j MARK --set-mark 2",
        flow: { proto: 17, dport: 123 },
        mark: 0,
      },
      { rule: "-p tcp -m multiport --ports 22 -j MARK --set-mark 3", flow: { sport: 22, dport: 5 }, mark: 3 },
      { rule: "-p tcp -m multiport --ports 22 -j MARK --set-mark 3", flow: { sport: 5, dport: 22 }, mark: 3 },
      { rule: "-p tcp -m multiport --ports 22 -j MARK --set-mark 3", flow: { sport: 5, dport: 5 }, mark: 0 },
    ];
    for (const t of cases)
      assert.equal(one(t.rule, t.flow), t.mark, `${t.rule} on ${JSON.stringify(t.flow)}`);
  });

  it("honours ! negations, -f and -i (table)", () => {
    const cases: { rule: string; flow: FlowSpec; mark: number }[] = [
      { rule: "! -s 192.0.2.0/24 -j MARK --set-mark 1", flow: { src: "192.0.2.1" }, mark: 0 },
      { rule: "! -s 192.0.2.0/24 -j MARK --set-mark 1", flow: { src: "198.51.100.1" }, mark: 1 },
      { rule: "! -d 10.0.0.1 -j MARK --set-mark 1", flow: { dst: "10.0.0.1" }, mark: 0 },
      { rule: "! -p tcp -j MARK --set-mark 1", flow: { proto: IPPROTO_UDP }, mark: 1 },
      { rule: "! -p tcp -j MARK --set-mark 1", flow: {}, mark: 0 },
      { rule: "-p tcp ! --dport 80 -j MARK --set-mark 1", flow: { dport: 81 }, mark: 1 },
      { rule: "-p tcp ! --dport 80 -j MARK --set-mark 1", flow: { dport: 80 }, mark: 0 },
      { rule: "-p tcp -m multiport ! --dports 80,443 -j MARK --set-mark 1", flow: { dport: 443 }, mark: 0 },
      { rule: "-p tcp -m multiport ! --dports 80,443 -j MARK --set-mark 1", flow: { dport: 22 }, mark: 1 },
      { rule: "-f -j MARK --set-mark 1", flow: { frag: "later" }, mark: 1 },
      { rule: "-f -j MARK --set-mark 1", flow: { frag: "first" }, mark: 0 },
      { rule: "-f -j MARK --set-mark 1", flow: {}, mark: 0 },
      { rule: "! -f -j MARK --set-mark 1", flow: { frag: "first" }, mark: 1 },
      { rule: "! -f -j MARK --set-mark 1", flow: { frag: "later" }, mark: 0 },
      { rule: "-i eth1 -j MARK --set-mark 1", flow: { ifindex: 2 }, mark: 1 },
      { rule: "-i eth1 -j MARK --set-mark 1", flow: { ifindex: 1 }, mark: 0 },
      { rule: "! -i eth1 -j MARK --set-mark 1", flow: { ifindex: 1 }, mark: 1 },
    ];
    for (const t of cases)
      assert.equal(one(t.rule, t.flow), t.mark, `${t.rule} on ${JSON.stringify(t.flow)}`);
  });

  it("never matches ports on a non-first fragment, negated or not (xt_tcpudp)", () => {
    const cases: { rule: string; frag: "first" | "later"; mark: number }[] = [
      { rule: "-p tcp --dport 80 -j MARK --set-mark 1", frag: "first", mark: 1 },
      { rule: "-p tcp --dport 80 -j MARK --set-mark 1", frag: "later", mark: 0 },
      { rule: "-p tcp ! --dport 80 -j MARK --set-mark 1", frag: "later", mark: 0 },
      { rule: "-p tcp --dport 0 -j MARK --set-mark 1", frag: "later", mark: 0 },
      { rule: "-p tcp -m multiport --dports 0,80 -j MARK --set-mark 1", frag: "later", mark: 0 },
      { rule: "-p tcp -m multiport ! --dports 80 -j MARK --set-mark 1", frag: "later", mark: 0 },
      { rule: "-p tcp -j MARK --set-mark 1", frag: "later", mark: 1 },
    ];
    for (const t of cases)
      assert.equal(one(t.rule, { dport: 80, frag: t.frag }), t.mark, `${t.rule} ${t.frag}`);
  });

  it("applies every matching rule in order: the last matching --set-mark wins", () => {
    const c = new Classifier();
    const a = c.addText("-d 10.0.0.1 -j MARK --set-mark 1");
    c.addText("-d 10.0.0.1 -p tcp --dport 443 -j MARK --set-mark 2");
    c.addText("-d 10.0.0.2 -j MARK --set-mark 3");
    assert.equal(c.classify(mk({ dport: 80 })), 1);
    assert.equal(c.classify(mk({ dport: 443 })), 2);
    assert.equal(c.classify(mk({ dst: "10.0.0.2" })), 3);
    assert.equal(c.classify(mk({ dst: "10.0.0.3" })), 0);
    assert.equal(c.remove(a), true);
    assert.equal(c.classify(mk({ dport: 80 })), 0);
    assert.equal(c.classify(mk({ dport: 443 })), 2);
  });

  it("composes masked marks as xt_mark does: (mark & ~mask) ^ value", () => {
    const c = new Classifier();
    c.addText("-j MARK --set-mark 0x100");
    c.addText("-p tcp -j MARK --or-mark 0x3");
    c.addText("-p tcp --dport 80 -j MARK --and-mark 0xff0f");
    c.addText("-p tcp --dport 22 -j MARK --set-xmark 0x10/0xf0");
    assert.equal(c.classify(mk({ proto: IPPROTO_UDP })), 0x100);
    assert.equal(c.classify(mk({ dport: 443 })), 0x103);
    assert.equal(c.classify(mk({ dport: 80 })), 0x103 & 0xff0f);
    assert.equal(c.classify(mk({ dport: 22 })), 0x113);
  });

  it("lists rules in canonical iptables -S form that add() accepts again", () => {
    const cases: { rule: string; text: string }[] = [
      {
        rule: "-A PREROUTING -t mangle -d 10.0.0.1 -p tcp --dport 80 -j MARK --set-mark 10",
        text: "-d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j MARK --set-xmark 0xa/0xffffffff",
      },
      {
        rule: "--source 192.0.2.77/24 --protocol 17 --sport 1:2 --dport 53 -j MARK --set-xmark 5/0xff",
        text: "-s 192.0.2.0/24 -p udp -m udp --sport 1:2 --dport 53 -j MARK --set-xmark 0x5/0xff",
      },
      {
        rule: "-d 10.0.0.0/255.0.255.0 -p tcp -m multiport --dports 80,443,8000:8080 -j MARK --set-mark 0x20",
        text: "-d 10.0.0.0/255.0.255.0 -p tcp -m multiport --dports 80,443,8000:8080 -j MARK --set-xmark 0x20/0xffffffff",
      },
      {
        rule: "! -s 1.2.3.4 ! -p udp -i eth0 -j MARK --or-mark 1",
        text: "! -s 1.2.3.4/32 -i eth0 ! -p udp -j MARK --set-xmark 0x1/0x1",
      },
      {
        rule: "-p tcp ! --sport 80 ! -f -j MARK --and-mark 0",
        text: "-p tcp ! -f -m tcp ! --sport 80 -j MARK --set-xmark 0x0/0xffffffff",
      },
      { rule: "-p all -j MARK --xor-mark 7", text: "-j MARK --set-xmark 0x7/0x0" },
    ];
    for (const t of cases) {
      const c = new Classifier(ifindexOf);
      const id = c.addText(t.rule);
      assert.deepEqual(c.list(), [{ id, rule: t.text }], t.rule);
      const again = new Classifier(ifindexOf);
      again.addText(t.text);
      assert.equal(again.list()[0].rule, t.text, `round trip of ${t.text}`);
    }
  });

  it("numbers rules, removes, clears and counts", () => {
    const c = new Classifier();
    const ids = [
      c.addText("-j MARK --set-mark 1"),
      c.addText("-j MARK --set-mark 2"),
      c.addText("-j MARK --set-mark 3"),
    ];
    assert.deepEqual(ids, [1, 2, 3]);
    assert.equal(c.size, 3);
    assert.equal(c.remove(2), true);
    assert.equal(c.remove(2), false);
    assert.deepEqual(
      c.list().map((r) => r.id),
      [1, 3],
    );
    c.clear();
    assert.equal(c.size, 0);
    assert.equal(c.classify(mk({})), 0);
    assert.equal(c.addText("-j MARK --set-mark 4"), 4, "ids are not reused");
  });

  it("refuses bad rules with an iptables-like message naming the token (table)", () => {
    const cases: { rule: string; msg: RegExp }[] = [
      { rule: "foo -j MARK --set-mark 1", msg: /^Bad argument `foo'$/ },
      { rule: "--x -j MARK --set-mark 1", msg: /^unknown option "--x"$/ },
      { rule: "-p tcp --dport 99999 -j MARK --set-mark 1", msg: /^invalid port\/service `99999' specified$/ },
      { rule: "-p tcp --dport http -j MARK --set-mark 1", msg: /`http'/ },
      { rule: "-p tcp --dport 2000:1000 -j MARK --set-mark 1", msg: /min > max.*`2000:1000'/ },
      { rule: "-d 10.0.0 -j MARK --set-mark 1", msg: /^host\/network `10.0.0' not found$/ },
      { rule: "-d 10.0.0.0/33 -j MARK --set-mark 1", msg: /^invalid mask `33' specified$/ },
      { rule: "-p sctpx -j MARK --set-mark 1", msg: /^unknown protocol "sctpx" specified$/ },
      { rule: "-p 256 -j MARK --set-mark 1", msg: /"256"/ },
      { rule: "--dport 80 -j MARK --set-mark 1", msg: /unknown option "--dport"/ },
      { rule: "-p icmp --sport 80 -j MARK --set-mark 1", msg: /unknown option "--sport"/ },
      { rule: "-p tcp --dports 80,443 -j MARK --set-mark 1", msg: /unknown option "--dports"/ },
      { rule: "-m multiport --dports 80 -j MARK --set-mark 1", msg: /multiport needs `-p tcp'/ },
      {
        rule: "-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 -j MARK --set-mark 1",
        msg: /^too many ports specified$/,
      },
      {
        rule: "-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16 -j MARK --set-mark 1",
        msg: /^too many ports specified$/,
      },
      { rule: "-p tcp -m multiport -j MARK --set-mark 1", msg: /multiport expects an option/ },
      { rule: "-p udp -m tcp --dport 1 -j MARK --set-mark 1", msg: /-m tcp needs `-p tcp'/ },
      { rule: "-m string -j MARK --set-mark 1", msg: /`string'/ },
      { rule: "-i eth0 -j MARK --set-mark 1", msg: /-i eth0: .*ifindexOf/ },
      { rule: "-s 1.2.3.4 -s 1.2.3.5 -j MARK --set-mark 1", msg: /^multiple -s flags not allowed$/ },
      { rule: "-s", msg: /^option "-s" requires an argument$/ },
      { rule: "-d 10.0.0.1", msg: /-j MARK/ },
      { rule: "-d 10.0.0.1 -j ACCEPT", msg: /`ACCEPT'/ },
      { rule: "-d 10.0.0.1 -j MARK", msg: /--set/ },
      { rule: "--set-mark 1", msg: /^unknown option "--set-mark"$/ },
      { rule: "-j MARK --set-mark 0x1g", msg: /`0x1g'/ },
      { rule: "-j MARK --set-mark 4294967296", msg: /`4294967296'/ },
      { rule: "-j MARK --set-mark 1 --set-mark 2", msg: /twice/ },
      { rule: "-t nat -j MARK --set-mark 1", msg: /`nat'/ },
      { rule: "-A INPUT -j MARK --set-mark 1", msg: /`INPUT'/ },
      { rule: "! -p tcp --dport 80 -j MARK --set-mark 1", msg: /never match/ },
      { rule: "-j MARK --set-mark 1 !", msg: /`!'/ },
    ];
    for (const t of cases) assert.match(parseError(t.rule), t.msg, t.rule);
  });

  it("fits exactly 15 multiport slots, a range taking two (libxt_multiport.c)", () => {
    const c = new Classifier();
    c.addText("-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 -j MARK --set-mark 1");
    c.addText("-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,100:200 -j MARK --set-mark 2");
    assert.equal(c.classify(mk({ dport: 15 })), 1);
    assert.equal(c.classify(mk({ dport: 150 })), 2);
  });

  it("refuses -i for an interface the resolver does not know", () => {
    const c = new Classifier(ifindexOf);
    assert.throws(() => c.addText("-i eth9 -j MARK --set-mark 1"), /interface `eth9' not found/);
    assert.throws(() => c.addText("-i eth+ -j MARK --set-mark 1"), /wildcard/);
    assert.equal(c.size, 0);
  });
});
