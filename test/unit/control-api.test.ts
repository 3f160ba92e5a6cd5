// The control API (src/control): batches are validated whole and applied whole, a bad command is
// named by its position, commands from the wire are checked against their schemas, snapshots are
// plain data that survive structuredClone/JSON and add up across workers.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ControlApi, ruleHostDst, ruleHostDst6 } from "../../src/control/api.js";
import { type ControlCommand, parseCommands } from "../../src/control/commands.js";
import { mergeTables, type TableSnapshot } from "../../src/control/snapshot.js";
import { destSpec, SpecError, serviceSpec } from "../../src/control/spec.js";
import { ipv6Fold, ipv6TextWords, parseIPv4 } from "../../src/core/addr.js";
import { CtlError } from "../../src/core/ctl.js";
import type { ServiceKey } from "../../src/core/ctl-types.js";
import { Fwd } from "../../src/core/dest.js";
import { Director, IP, L2_FROM_ROUTER } from "../support/frames.js";
import { SYN, tcpFrame } from "../support/packet-builder.js";

const VIP = parseIPv4(IP.vip) as number;
const RS1 = parseIPv4(IP.rs1) as number;
const RS2 = parseIPv4(IP.rs2) as number;
const KEY: ServiceKey = { af: 4, protocol: 6, addr: VIP, port: 80, fwmark: 0 };

function api(): ControlApi {
  const d = new Director();
  return new ControlApi(d.engine, () => d.now);
}

const addSvc: ControlCommand = {
  op: "add-service",
  svc: serviceSpec({ protocol: 6, addr: VIP, port: 80, scheduler: "rr" }),
};
const addRs1: ControlCommand = {
  op: "add-dest",
  key: KEY,
  dest: destSpec(KEY, { addr: RS1, fwd: Fwd.Masq }),
};
const addRs2: ControlCommand = {
  op: "add-dest",
  key: KEY,
  dest: destSpec(KEY, { addr: RS2, port: 8080, fwd: Fwd.Masq, weight: 3 }),
};

describe("ControlApi.apply: one batch, all or nothing", () => {
  const cases: Array<{
    desc: string;
    batch: ControlCommand[];
    index: number;
    code: string;
    message: RegExp;
  }> = [
    {
      desc: "a destination of a service that does not exist (last command)",
      batch: [addSvc, addRs1, { ...addRs2, key: { ...KEY, port: 81 } }],
      index: 2,
      code: "TSVS_ERR_SERVICE_NOT_DEFINED",
      message: /^Service not defined$/,
    },
    {
      desc: "the same destination twice",
      batch: [addSvc, addRs1, addRs1],
      index: 2,
      code: "TSVS_ERR_DEST_EXISTS",
      message: /^Destination already exists$/,
    },
    {
      desc: "an unknown scheduler",
      batch: [
        { op: "add-service", svc: { ...serviceSpec({ protocol: 6, addr: VIP, port: 80 }), schedName: "xx" } },
      ],
      index: 0,
      code: "TSVS_ERR_SCHED_NOT_FOUND",
      message: /not found/,
    },
    {
      desc: "an unknown sysctl after good table commands",
      batch: [addSvc, addRs1, { op: "set-sysctl", name: "no_such", value: 1 }],
      index: 2,
      code: "TSVS_ERR_INVALID",
      message: /unknown sysctl no_such/,
    },
    {
      desc: "a sysctl value out of range",
      batch: [
        { op: "set-sysctl", name: "sloppy_tcp", value: 1 },
        { op: "set-sysctl", name: "conn_reuse_mode", value: 9 },
      ],
      index: 1,
      code: "TSVS_ERR_INVALID",
      message: /conn_reuse_mode: value must be an integer 0\.\.3/,
    },
    {
      desc: "a fwmark rule that does not parse",
      batch: [addSvc, { op: "add-fwmark", rule: "-d 198.18.0.100 -j DROP" }],
      index: 1,
      code: "TSVS_ERR_INVALID",
      message: /^fwmark add: /,
    },
    {
      desc: "deleting a fwmark rule that does not exist",
      batch: [addSvc, { op: "del-fwmark", rule: "7" }],
      index: 1,
      code: "TSVS_ERR_INVALID",
      message: /no such rule/,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.desc}, names command ${c.index} and changes nothing`, () => {
      const a = api();
      const before = JSON.stringify([a.snapshot(false), a.sysctls(), a.fwmarkRules()]);
      assert.throws(
        () => a.apply(c.batch),
        (e: unknown) => {
          assert.ok(e instanceof CtlError, String(e));
          assert.equal(e.index, c.index);
          assert.equal(e.code, c.code);
          assert.match(e.message, c.message);
          return true;
        },
      );
      assert.equal(JSON.stringify([a.snapshot(false), a.sysctls(), a.fwmarkRules()]), before);
    });
  }

  it("applies a good mixed batch: services, destinations, sysctls and fwmark rules", () => {
    const a = api();
    const changed = a.apply([
      addSvc,
      addRs1,
      addRs2,
      { op: "set-sysctl", name: "expire_nodest_conn", value: 1 },
      { op: "add-fwmark", rule: "-d 198.18.0.200 -p tcp --dport 443 -j MARK --set-mark 5" },
    ]);
    const snap = a.snapshot(false);
    assert.equal(snap.services.length, 1);
    assert.deepEqual(
      snap.services[0].dests.map((d) => [d.addr, d.port, d.fwd, d.weight]),
      [
        [RS2, 8080, Fwd.Masq, 3],
        [RS1, 80, Fwd.Masq, 1],
      ],
      "destinations in the kernel's list order: newest first",
    );
    assert.equal(a.sysctls("expire_nodest_conn").expire_nodest_conn, 1);
    assert.equal(changed.length, 1);
    assert.match(changed[0].rule, /-d 198\.18\.0\.200\/32/);
    assert.ok(
      a.guard().owned.includes(parseIPv4("198.18.0.200") as number),
      "a host rule's address is owned",
    );
  });

  it("deletes, within one batch, a fwmark rule the batch added, and releases its address", () => {
    const a = api();
    const rule = "-d 198.18.0.201 -j MARK --set-mark 6";
    const changed = a.apply([
      { op: "add-fwmark", rule },
      { op: "del-fwmark", rule },
    ]);
    assert.equal(changed.length, 2);
    assert.deepEqual(a.fwmarkRules(), []);
    assert.ok(!a.guard().owned.includes(parseIPv4("198.18.0.201") as number));
  });
});

describe("control API guard with IPv6", () => {
  it("an IPv6 service's VIP and NAT real servers go to owned6/nat6, never as folds into the IPv4 sets", () => {
    const a = api();
    a.apply([
      addSvc,
      addRs1,
      {
        op: "add-service",
        svc: { ...serviceSpec({ protocol: 6, addr: "2001:db8::100", port: 80 }), schedName: "rr" },
      },
      {
        op: "add-dest",
        key: { af: 6, protocol: 6, addr: 0, addr6: "2001:db8::100", port: 80, fwmark: 0 },
        dest: destSpec(
          { af: 6, protocol: 6, addr: 0, addr6: "2001:db8::100", port: 80, fwmark: 0 },
          { addr: "2001:db8:1::11", port: 8080, fwd: Fwd.Masq },
        ),
      },
    ]);
    const g = a.guard();
    const fold = ipv6Fold(ipv6TextWords("2001:db8::100") as Int32Array);
    assert.ok(g.owned.includes(VIP) && !g.owned.includes(fold), JSON.stringify(g.owned));
    assert.deepEqual(
      g.nat.map((d) => d.addr),
      [RS1],
    );
    assert.deepEqual(g.owned6, ["2001:db8::100"]);
    assert.deepEqual(g.nat6, [{ addr6: "2001:db8:1::11", proto: 6, port: 8080 }]);
  });
});

describe("control/spec: ipvsadm's rules without ipvsadm's text", () => {
  it("fills in wlc, refuses a zero port without persistence and OPS on TCP", () => {
    assert.equal(serviceSpec({ protocol: 6, addr: VIP, port: 80 }).schedName, "wlc");
    assert.throws(() => serviceSpec({ protocol: 6, addr: VIP, port: 0 }), /Zero port specified/);
    assert.equal(serviceSpec({ protocol: 6, addr: VIP, port: 0, persistence: 300 }).timeout, 300);
    assert.throws(() => serviceSpec({ protocol: 6, addr: VIP, port: 53, onePacket: true }), SpecError);
    assert.equal(serviceSpec({ protocol: 17, addr: VIP, port: 53, onePacket: true }).flags & 4, 4);
  });

  it("gives DR and TUN destinations the service port, and NAT its own", () => {
    for (const [fwd, want] of [
      [Fwd.Route, 80],
      [Fwd.Tunnel, 80],
      [Fwd.Masq, 8080],
      [Fwd.FullNat, 8080],
    ] as const)
      assert.equal(destSpec(KEY, { addr: RS1, port: 8080, fwd }).port, want);
    assert.throws(
      () => destSpec(KEY, { addr: RS1, fwd: Fwd.Masq, weight: 65536 }),
      /illegal weight specified/,
    );
  });
});

describe("parseCommands: commands from the wire", () => {
  it("passes well-formed commands through unchanged", () => {
    const batch = [addSvc, addRs1, { op: "zero", key: null }, { op: "flush-fwmarks" }];
    assert.deepEqual(parseCommands(JSON.parse(JSON.stringify(batch))), batch);
  });
  const bad: Array<[string, unknown, RegExp]> = [
    ["not an array", { op: "clear" }, /commands must be an array/],
    ["an unknown op", [{ op: "drop-table" }], /: command 0/],
    [
      "a port out of range",
      [addSvc, { ...addRs1, dest: { ...(addRs1 as { dest: object }).dest, port: 70000 } }],
      /: command 1 at dest\.port/,
    ],
    ["an extra field", [{ op: "clear", force: true }], /: command 0/],
    [
      "a weight that is not an integer",
      [{ ...addRs1, dest: { ...(addRs1 as { dest: object }).dest, weight: 1.5 } }],
      /: command 0 at dest\.weight/,
    ],
    [
      "a forwarding method that does not exist",
      [{ ...addRs1, dest: { ...(addRs1 as { dest: object }).dest, fwd: 4 } }],
      /: command 0 at dest\.fwd/,
    ],
  ];
  for (const [desc, v, msg] of bad) it(`refuses ${desc}`, () => assert.throws(() => parseCommands(v), msg));
});

describe("snapshots are plain data", () => {
  it("survive JSON and structuredClone as they are", () => {
    const a = api();
    a.apply([addSvc, addRs1]);
    const s = a.snapshot(true);
    assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
    assert.deepEqual(structuredClone(s), s);
  });

  it("add up across workers: counters, rates and connection counts sum, structure from the first", () => {
    const one = (conns: number, active: number): TableSnapshot => {
      const a = api();
      a.apply([addSvc, addRs1]);
      const s = a.snapshot(true);
      s.services[0].stats.conns = conns;
      s.services[0].stats.inbps = conns * 10;
      s.services[0].dests[0].activeConns = active;
      s.total.inpkts = conns * 2;
      s.conns = [];
      return s;
    };
    const m = mergeTables([one(3, 1), one(4, 2), one(5, 0)]);
    assert.equal(m.total.inpkts, 24, "the kernel's tot_stats add up too");
    assert.equal(m.services[0].stats.conns, 12);
    assert.equal(m.services[0].stats.inbps, 120);
    assert.equal(m.services[0].dests[0].activeConns, 3);
  });
});

describe("ruleHostDst", () => {
  for (const [rule, want] of [
    ["-d 198.18.0.100/32 -p tcp -j MARK --set-xmark 0x1/0xffffffff", "198.18.0.100"],
    ["-d 198.18.0.0/24 -j MARK --set-xmark 0x1/0xffffffff", null],
    ["! -d 198.18.0.100/32 -j MARK --set-xmark 0x1/0xffffffff", null],
    ["-p udp -j MARK --set-xmark 0x1/0xffffffff", null],
  ] as const)
    it(`${rule} → ${want}`, () => assert.equal(ruleHostDst(rule), want === null ? null : parseIPv4(want)));
});

describe("the table's total (ipvs->tot_stats)", () => {
  it("counts every service's packets and connections", () => {
    const d = new Director();
    const a = new ControlApi(d.engine, () => d.now);
    a.apply([addSvc, addRs1]);
    d.input(
      1,
      tcpFrame(
        L2_FROM_ROUTER,
        { src: parseIPv4(IP.client1) as number, dst: VIP },
        { sport: 5000, dport: 80, flags: SYN },
      ),
    );
    const snap = a.snapshot(false);
    assert.equal(snap.total.conns, 1);
    assert.equal(snap.total.inpkts, 1);
    assert.equal(snap.total.inpkts, snap.services[0].stats.inpkts);
  });
});

describe("ControlApi: ip6tables fwmark rules own their IPv6 host (issue 14)", () => {
  it("a -d ADDR/128 rule puts ADDR in owned6 while a rule names it; networks, negations and IPv4 rules do not", () => {
    const a = api();
    const steps: { cmd: ControlCommand; owned6: string[]; owned4: boolean }[] = [
      {
        cmd: { op: "add-fwmark", rule: "-d 2001:DB8::100 -p tcp --dport 80 -j MARK --set-mark 5" },
        owned6: ["2001:db8::100"],
        owned4: false,
      },
      {
        cmd: { op: "add-fwmark", rule: "-d 2001:db8::100/128 -p tcp --dport 443 -j MARK --set-mark 5" },
        owned6: ["2001:db8::100"],
        owned4: false,
      },
      {
        cmd: { op: "add-fwmark", rule: "-d 2001:db8::/64 -j MARK --set-mark 6" },
        owned6: ["2001:db8::100"],
        owned4: false,
      },
      {
        cmd: { op: "add-fwmark", rule: "! -d 2001:db8::200 -j MARK --set-mark 6" },
        owned6: ["2001:db8::100"],
        owned4: false,
      },
      {
        cmd: { op: "add-fwmark", rule: "-6 -p udp --dport 53 -j MARK --set-mark 7" },
        owned6: ["2001:db8::100"],
        owned4: false,
      },
      {
        cmd: { op: "add-fwmark", rule: "-d 198.18.0.100 -j MARK --set-mark 8" },
        owned6: ["2001:db8::100"],
        owned4: true,
      },
      // The address stays the director's while the second rule names it.
      {
        cmd: { op: "del-fwmark", rule: "-d 2001:db8::100 -p tcp --dport 80 -j MARK --set-mark 5" },
        owned6: ["2001:db8::100"],
        owned4: true,
      },
      { cmd: { op: "del-fwmark", rule: "2" }, owned6: [], owned4: true },
      {
        cmd: { op: "add-fwmark", rule: "-d 2001:db8::300 -j MARK --set-mark 9" },
        owned6: ["2001:db8::300"],
        owned4: true,
      },
      { cmd: { op: "flush-fwmarks" }, owned6: [], owned4: false },
    ];
    const v4 = parseIPv4("198.18.0.100") as number;
    for (const s of steps) {
      a.apply([s.cmd]);
      const g = a.guard();
      const what = JSON.stringify(s.cmd);
      assert.deepEqual(g.owned6, s.owned6, what);
      assert.equal(g.owned.includes(v4), s.owned4, what);
      for (const w of s.owned6)
        assert.ok(a.engine.ctl.ownsAddress6(ipv6TextWords(w) as Int32Array), `${what}: answers NDP for ${w}`);
    }
    assert.equal(a.engine.ctl.ownsAddress6(ipv6TextWords("2001:db8::100") as Int32Array), false);
  });

  it("hasNetworkFwmark per family: an IPv6 network rule lets all IPv6 in, not all IPv4 (table)", () => {
    const cases: { rule: string; net4: boolean; net6: boolean }[] = [
      { rule: "-d 2001:db8::100 -j MARK --set-mark 1", net4: false, net6: false },
      { rule: "-d 2001:db8::/64 -j MARK --set-mark 1", net4: false, net6: true },
      { rule: "-6 -p tcp --dport 80 -j MARK --set-mark 1", net4: false, net6: true },
      { rule: "-p tcp --dport 80 -j MARK --set-mark 1", net4: true, net6: false },
      { rule: "-d 198.18.0.100 -j MARK --set-mark 1", net4: false, net6: false },
    ];
    for (const t of cases) {
      const a = api();
      a.apply([{ op: "add-fwmark", rule: t.rule }]);
      assert.deepEqual([a.hasNetworkFwmark(), a.hasNetworkFwmark6()], [t.net4, t.net6], t.rule);
    }
  });
});

describe("ruleHostDst6", () => {
  for (const [rule, want] of [
    ["-d 2001:db8::100/128 -p tcp -j MARK --set-xmark 0x1/0xffffffff", "2001:db8::100"],
    ["-s fd00::/8 -d ::ffff:10.0.0.1/128 -j MARK --set-xmark 0x1/0xffffffff", "::ffff:10.0.0.1"],
    ["-d 2001:db8::/64 -j MARK --set-xmark 0x1/0xffffffff", null],
    ["! -d 2001:db8::100/128 -j MARK --set-xmark 0x1/0xffffffff", null],
    ["-s 2001:db8::100/128 -j MARK --set-xmark 0x1/0xffffffff", null],
    ["-d 198.18.0.100/32 -j MARK --set-xmark 0x1/0xffffffff", null],
    ["-6 -p udp -j MARK --set-xmark 0x1/0xffffffff", null],
  ] as const)
    it(`${rule} → ${want}`, () => assert.equal(ruleHostDst6(rule), want));
});
