// `tsvs explain` for IPv6 (issue 14): the same walk over input6's steps. For every scheduler,
// seeded random IPv6 client tuples are explained and then sent as SYNs through the same engine:
// the real server the frame left for is the one explain named. Then the cases around it, each
// checked against the packet the engine really sends: persistence under a prefix length (-M 64),
// an existing entry, no service, NAT64 and IPv6 FULLNAT (the local address and port the next
// connection takes), DR (the MAC), TUN (IPv6-in-IPv6), lblc's entries of one fold, the CLI's
// [ADDR]:PORT arguments and the human lines.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseExplainArgs } from "../../src/cli/explain.js";
import { formatExplanation } from "../../src/cli/explain-format.js";
import { parseFwmarkRule } from "../../src/control/fwmark-rule.js";
import { canonicalIPv6 } from "../../src/core/addr.js";
import { TsvsError } from "../../src/core/errors.js";
import { type ExplainQuery, type Explanation, explainPacket } from "../../src/core/explain.js";
import { SCHEDULER_NAMES } from "../../src/core/sched/index.js";
import { Director6, flat6, L2_6_FROM_ROUTER, MAC6 } from "../support/frames6.js";
import { ACK, SYN } from "../support/packet-builder.js";
import { tcp6Frame } from "../support/packet6.js";
import { seeded } from "../support/seeded.js";

const VIP = "2001:db8::100";
const RS = ["2001:db8:1::11", "2001:db8:1::12", "2001:db8:1::13"];

function q6(client: string, cport: number, vip = VIP, vport = 80): ExplainQuery {
  return { proto: 6, vaddr: 0, vport, caddr: 0, cport, vaddr6: vip, caddr6: client };
}

function explain(d: Director6, q: ExplainQuery): Explanation {
  const a = explainPacket(d.engine, q, d.now);
  // Explaining changes nothing: a second time gives the same answer.
  assert.deepEqual(explainPacket(d.engine, q, d.now), a);
  return a;
}

/** The SYN in; where its frame went, as explain writes an endpoint ([ADDR]:PORT), and the frame. */
function send(d: Director6, client: string, cport: number, vip = VIP, vport = 80, flags = SYN) {
  const r = d.input(
    1,
    tcp6Frame(L2_6_FROM_ROUTER, { src: client, dst: vip }, { sport: cport, dport: vport, flags }),
  );
  const o = r.out.find((x) => x.ifindex === 2);
  if (o === undefined) return { to: null, f: null };
  const f = flat6(o.frame);
  return { to: `[${canonicalIPv6(String(f.dst))}]:${f.dport}`, f };
}

describe("tsvs explain, IPv6: the prediction is where the SYN goes", () => {
  for (const sched of SCHEDULER_NAMES)
    it(`${sched}: 30 random IPv6 tuples, with the load moving between them`, () => {
      const d = new Director6({ seed: 0x6e6 });
      d.ipvsadm(`-A -t [${VIP}]:80 -s ${sched}`);
      RS.forEach((r, i) => {
        d.ipvsadm(`-a -t [${VIP}]:80 -r [${r}]:80 -m -w ${i + 1}`);
      });
      const rnd = seeded(0x6000 + sched.length);
      for (let i = 0; i < 30; i++) {
        const client = `2001:db8:ff:${Math.floor(rnd() * 4).toString(16)}::${(1 + Math.floor(rnd() * 0xfff)).toString(16)}`;
        const cport = 20000 + Math.floor(rnd() * 40000);
        const a = explain(d, q6(client, cport));
        // ovf leaves every server once each has more active connections than its weight.
        assert.ok(
          a.verdict === "scheduled" || a.verdict === "no-destination",
          `${sched} #${i}: ${a.summary}`,
        );
        assert.equal(a.schedule?.exact, true);
        const { to } = send(d, client, cport);
        assert.equal(
          to,
          a.forward?.dst ?? null,
          `${sched} #${i} [${client}]:${cport}: ${JSON.stringify(a.schedule)}`,
        );
        // Some handshakes complete (active), some do not (inactive): lc/wlc/sed/nq see both.
        if (rnd() < 0.5) send(d, client, cport, VIP, 80, ACK);
        if (rnd() < 0.2) d.advance(d.now + 1000);
      }
    });

  it("names the client, the VIP and the real server as ipvsadm prints IPv6", () => {
    const d = new Director6({ seed: 1 });
    d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
    d.ipvsadm(`-a -t [${VIP}]:80 -r [${RS[0]}]:8080 -m`);
    const a = explain(d, q6("2001:DB8:FF:0::10", 40000, "2001:db8:0::100"));
    assert.deepEqual(a.packet, {
      protocol: "TCP",
      client: "[2001:db8:ff::10]:40000",
      virtual: "[2001:db8::100]:80",
      assumed: "a SYN: the first packet of a connection",
    });
    assert.equal(a.service?.name, "TCP  [2001:db8::100]:80");
    assert.equal(a.destination?.address, "2001:db8:1::11");
    assert.equal(a.summary, "new connection: rr picks [2001:db8:1::11]:8080 (Masq)");
    assert.deepEqual(
      [a.forward?.src, a.forward?.dst, a.forward?.iface, a.forward?.nexthop, a.forward?.mac],
      ["[2001:db8:ff::10]:40000", "[2001:db8:1::11]:8080", "eth1", "2001:db8:1::11", MAC6.rs1],
    );
    assert.deepEqual(
      a.schedule?.dests.map((x) => x.destination),
      ["[2001:db8:1::11]:8080"],
    );
  });

  it("persistence: the template under the client's /64, then the template predicts", () => {
    const d = new Director6({ seed: 2 });
    d.ipvsadm(`-A -t [${VIP}]:80 -s rr -p 60 -M 64`);
    for (const r of RS) d.ipvsadm(`-a -t [${VIP}]:80 -r [${r}]:80 -m`);
    const first = explain(d, q6("2001:db8:ff::10", 1000));
    assert.equal(first.template?.status, "new");
    assert.equal(first.template?.client, "2001:db8:ff::");
    assert.equal(first.template?.netmask, "64");
    assert.equal(first.service?.persistent?.netmask, "64");
    assert.equal(send(d, "2001:db8:ff::10", 1000).to, first.forward?.dst);
    // Another client of the /64: the template's real server.
    const other = explain(d, q6("2001:db8:ff::ffff:1", 1001));
    assert.equal(other.verdict, "template");
    assert.equal(other.template?.key, "TCP 2001:db8:ff:: → [2001:db8::100]:80");
    assert.equal(other.template?.destination, first.forward?.dst);
    assert.equal(send(d, "2001:db8:ff::ffff:1", 1001).to, first.forward?.dst);
    // Another /64: a new template.
    assert.equal(explain(d, q6("2001:db8:ff:1::10", 1002)).template?.status, "new");
    assert.match(formatExplanation({ ...other, worker: { index: 0, of: 1 } }), /rr persistent 60 mask 64 /);
  });

  it("an existing entry, a reply, and no service", () => {
    const d = new Director6({ seed: 3 });
    d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
    d.ipvsadm(`-a -t [${VIP}]:80 -r [${RS[1]}]:80 -m`);
    send(d, "2001:db8:ff::10", 1000);
    const e = explain(d, q6("2001:db8:ff::10", 1000));
    assert.equal(e.verdict, "existing");
    assert.equal(e.connection?.client, "[2001:db8:ff::10]:1000");
    assert.equal(e.connection?.destination, "[2001:db8:1::12]:80");
    const r = explainPacket(d.engine, q6("2001:db8:1::12", 80, "2001:db8:ff::10", 1000), d.now);
    assert.equal(r.verdict, "reply");
    const none = explain(d, q6("2001:db8:ff::10", 1001, VIP, 81));
    assert.equal(none.verdict, "no-service");
    assert.equal(
      none.summary,
      "No such service: the director answers with a TCP reset (2001:db8::100 is its own address)",
    );
    assert.deepEqual(none.lookups, [
      "TCP  [2001:db8::100]:81: no such service",
      "TCP  [2001:db8::100]:0 (all ports): no such service",
    ]);
    const far = explain(d, q6("2001:db8:ff::10", 1002, "2001:db8:5::1", 80));
    assert.match(far.summary, /2001:db8:5::1 is not an address tsvs owns/);
  });

  it("FULLNAT: the IPv6 local address and port, and NAT64's IPv4 ones, that the SYN then takes", () => {
    const d = new Director6({ seed: 4 });
    d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
    d.ipvsadm(`-a -t [${VIP}]:80 -r [${RS[0]}]:80 --fullnat`);
    d.ipvsadm(`-a -t [${VIP}]:80 -r 198.18.1.11:80 --fullnat`);
    d.ipvsadm(`-P -t [${VIP}]:80 -z 2001:db8:1::100`);
    d.ipvsadm(`-P -t [${VIP}]:80 -z 198.18.1.100`);
    d.engine.neigh.confirm(2, 0xc612010b, Uint8Array.from([2, 0, 0, 0, 1, 0x11]), d.now);
    for (let i = 0; i < 4; i++) {
      const a = explain(d, q6("2001:db8:ff::10", 2000 + i));
      assert.equal(a.forward?.method, "fullnat");
      const r = d.input(
        1,
        tcp6Frame(
          L2_6_FROM_ROUTER,
          { src: "2001:db8:ff::10", dst: VIP },
          { sport: 2000 + i, dport: 80, flags: SYN },
        ),
      );
      const o = r.out.find((x) => x.ifindex === 2);
      assert.ok(o !== undefined, a.summary);
      const v6 = ((o.frame[12] << 8) | o.frame[13]) === 0x86dd;
      if (v6) {
        const f = flat6(o.frame);
        assert.equal(a.forward?.src, `[${canonicalIPv6(String(f.src))}]:${f.sport}`);
        assert.equal(a.forward?.dst, `[${canonicalIPv6(String(f.dst))}]:${f.dport}`);
      } else {
        const ip4 = (k: number) => [...o.frame.subarray(k, k + 4)].join(".");
        const port = (k: number) => (o.frame[k] << 8) | o.frame[k + 1];
        assert.equal(a.forward?.src, `${ip4(26)}:${port(34)}`);
        assert.equal(a.forward?.dst, `${ip4(30)}:${port(36)}`);
        assert.match(a.forward?.rewrite ?? "", /NAT64/);
      }
    }
  });

  it("DR: the real server's MAC; TUN: the IPv6-in-IPv6 outer header", () => {
    const d = new Director6({ seed: 5 });
    d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
    d.ipvsadm(`-a -t [${VIP}]:80 -r [${RS[2]}]:80 -g`);
    const dr = explain(d, q6("2001:db8:ff::10", 3000));
    assert.deepEqual(
      [dr.forward?.ipvsadm, dr.forward?.mac, dr.forward?.dst],
      ["Route", MAC6.rs3, "[2001:db8::100]:80"],
    );
    d.ipvsadm(`-D -t [${VIP}]:80`);
    d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
    d.ipvsadm(`-a -t [${VIP}]:80 -r [2001:db8:2::21]:80 -i`);
    const tun = explain(d, q6("2001:db8:ff::10", 3001));
    assert.deepEqual(tun.forward?.outer, {
      src: "2001:db8:1::1",
      dst: "2001:db8:2::21",
      kind: "IPv6-in-IPv6",
    });
    assert.equal(tun.forward?.nexthop, "2001:db8:1::fe");
    assert.match(
      formatExplanation({ ...tun, worker: { index: 0, of: 1 } }),
      /in IPv6-in-IPv6 2001:db8:1::1 -> 2001:db8:2::21/,
    );
  });

  it("lblc on a fwmark service: the entry of the packet's own address, not of its fold", () => {
    const d = new Director6({ seed: 6 });
    d.engine.fwmarks.add(parseFwmarkRule("-d 2001:db8:77::/64 -p tcp --dport 80 -j MARK --set-mark 7"));
    d.ipvsadm("-A -f 7 -6 -s lblc");
    d.ipvsadm(`-a -f 7 -6 -r [${RS[0]}]:0 -g`);
    d.ipvsadm(`-a -f 7 -6 -r [${RS[1]}]:0 -g`);
    const x = "2001:db8:77::1";
    const y = "2001:db8:77::100:0:101"; // the same fold as x
    const ax = explain(d, { ...q6("2001:db8:ff::10", 4000, x), fwmark: 7 });
    assert.equal(ax.schedule?.figures.key, x);
    const r = d.input(
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: "2001:db8:ff::10", dst: x }, { sport: 4000, dport: 80, flags: SYN }),
    );
    assert.equal(r.out.length, 1);
    const ay = explain(d, { ...q6("2001:db8:ff::10", 4001, y), fwmark: 7 });
    assert.equal(ay.schedule?.figures.key, y);
    assert.equal(ay.schedule?.figures.entry, null, "no entry for y: x's is another address");
    assert.equal(ay.schedule?.figures.tableSize, 1);
    assert.notEqual(ay.destination?.address, ax.destination?.address);
  });

  it("the core refuses a packet whose two ends are of two families", () => {
    const d = new Director6({ seed: 8 });
    assert.throws(
      () =>
        explainPacket(
          d.engine,
          { proto: 6, vaddr: 0, vport: 80, caddr: 0xc6120001, cport: 1, vaddr6: VIP },
          d.now,
        ),
      (e) => e instanceof TsvsError && e.code === "TSVS_ERR_INVALID",
    );
  });

  it("the CLI takes [ADDR]:PORT, of one family", () => {
    assert.deepEqual(parseExplainArgs(["-t", "[2001:DB8::100]:80", "--from", "[2001:db8:ff:0::10]:4000"]), {
      req: {
        op: "explain",
        proto: "tcp",
        vip: "2001:db8::100",
        port: 80,
        client: "2001:db8:ff::10",
        cport: 4000,
      },
      json: false,
    });
    for (const [argv, err] of [
      [["-t", "2001:db8::100:80", "--from", "[2001:db8::1]:1"], /bad service address '2001:db8::100:80'/],
      [["-t", "[2001:db8::100]", "--from", "[2001:db8::1]:1"], /bad service address/],
      [["-t", "[2001:db8::100]:80", "--from", "198.18.0.1:1"], /one family/],
      [["-t", "[2001:db8::1::2]:80", "--from", "[2001:db8::1]:1"], /bad service address/],
    ] as const) {
      const r = parseExplainArgs(argv);
      assert.ok("error" in r, JSON.stringify(r));
      assert.match(r.error, err);
    }
  });
});
