// FULLNAT local addresses per service, as DPVS configures them (`ipvsadm -P -t VIP:PORT -z LIP`):
// the service's connections take their LIP from its own list (round robin), the daemon's --lip pool
// serves the others; the director owns (ARP, guard) every configured LIP and a deleted one while
// connections still use it; several workers each take their share of one ordered list of LIPs.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { diff } from "../../src/config/diff.js";
import { parseKeepalived } from "../../src/config/keepalived.js";
import { commandToIpvsadm, toCommands } from "../../src/config/model.js";
import { parseYamlConfig } from "../../src/config/yaml.js";
import { ControlApi } from "../../src/control/api.js";
import { mergeTables } from "../../src/control/snapshot.js";
import { parseIPv6 } from "../../src/core/addr.js";
import type { CtlCommand } from "../../src/core/ctl-types.js";
import { Engine } from "../../src/core/engine.js";
import { LipTable } from "../../src/core/lip.js";
import { decodeFrame, flat, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { ACK, arpFrame, ip, SYN, tcpFrame } from "../support/packet-builder.js";

const VIP = ip(IP.vip);
const L1 = "198.18.1.101";
const L2 = "198.18.1.102";
const L3 = "198.18.1.103";

function mac(s: string): Uint8Array {
  return Uint8Array.from(s.split(":").map((x) => Number.parseInt(x, 16)));
}

interface Out {
  ifindex: number;
  f: Record<string, unknown>;
}

/** The test director of support/frames.ts, with the pool and the worker place given. */
class Dir {
  readonly engine: Engine;
  readonly api: ControlApi;
  now = 1000;
  private out: Out[] = [];

  constructor(lips: string[], worker?: { index: number; count: number }) {
    let seed = 7;
    this.engine = new Engine({
      interfaces: [
        {
          ifindex: 1,
          name: "eth0",
          mac: mac(MAC.dir0),
          addrs: [{ addr: ip(IP.dir0), prefix: 24 }],
          mtu: 1500,
        },
        {
          ifindex: 2,
          name: "eth1",
          mac: mac(MAC.dir1),
          addrs: [{ addr: ip(IP.dir1), prefix: 24 }],
          mtu: 1500,
        },
      ],
      routes: [{ dst: 0, prefix: 0, via: ip(IP.router), ifindex: 1 }],
      lips: lips.map(ip),
      worker,
      random: () => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed;
      },
      send: (ifindex, buf, off, len) => {
        this.out.push({ ifindex, f: flat(decodeFrame(buf.slice(off, off + len))) });
      },
    });
    this.api = new ControlApi(this.engine, () => this.now);
    const n = this.engine.neigh;
    n.confirm(1, ip(IP.router), mac(MAC.router), this.now);
    n.confirm(2, ip(IP.rs1), mac(MAC.rs1), this.now);
  }

  ipvsadm(...lines: string[]): void {
    const cmds: CtlCommand[] = lines.map((l) => {
      const r = parseIpvsadm(l.trim().split(/\s+/));
      if (r.kind !== "ctl") throw new Error(`not a control command: ${l}`);
      return r.cmd;
    });
    this.api.apply(cmds);
  }

  input(ifindex: number, frame: Uint8Array): Out[] {
    const buf = new Uint8Array(frame.length + 64);
    buf.set(frame);
    this.out = [];
    this.engine.input(ifindex, buf, frame.length, this.now);
    return this.out;
  }

  /** A client's SYN to VIP:80; returns what went out. */
  syn(sport: number, client = IP.client1): Out[] {
    return this.input(
      1,
      tcpFrame(L2_FROM_ROUTER, { src: ip(client), dst: VIP }, { sport, dport: 80, flags: SYN }),
    );
  }

  /** The real server's segment to LIP:lport. */
  reply(lip: string, lport: number, flags = SYN | ACK): Out[] {
    return this.input(
      2,
      tcpFrame(l2FromLan(MAC.rs1), { src: ip(IP.rs1), dst: ip(lip) }, { sport: 8080, dport: lport, flags }),
    );
  }

  /** Does the director answer an ARP request for addr on the servers' LAN? */
  arpAnswers(addr: string): boolean {
    const out = this.input(
      2,
      arpFrame(mac("ff:ff:ff:ff:ff:ff"), mac(MAC.rs1), {
        op: 1,
        sha: mac(MAC.rs1),
        spa: ip(IP.rs1),
        tpa: ip(addr),
      }),
    );
    return out.some((o) => o.f.arp === 2 && o.f.spa === addr);
  }

  fullnatService(): void {
    this.ipvsadm(`-A -t ${IP.vip}:80 -s rr`, `-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 --fullnat`);
  }
}

describe("FULLNAT with the service's own local addresses", () => {
  it("without a pool, the service's laddr is the source toward the server and the reply goes back to the client", () => {
    const d = new Dir([]);
    d.fullnatService();
    d.ipvsadm(`-P -t ${IP.vip}:80 -z ${L1}`);
    const out = d.syn(40000);
    assert.equal(out.length, 1);
    assert.equal(out[0].ifindex, 2);
    assert.equal(out[0].f.src, L1);
    assert.equal(out[0].f.dst, IP.rs1);
    assert.equal(out[0].f.dport, 8080);
    assert.equal(out[0].f.toa, `${IP.client1}:40000`);
    const back = d.reply(L1, out[0].f.sport as number);
    assert.equal(back.length, 1);
    assert.deepEqual(
      {
        ifindex: back[0].ifindex,
        src: back[0].f.src,
        sport: back[0].f.sport,
        dst: back[0].f.dst,
        dport: back[0].f.dport,
      },
      { ifindex: 1, src: IP.vip, sport: 80, dst: IP.client1, dport: 40000 },
    );
    assert.equal(d.engine.connections(d.now)[0].laddr, ip(L1));
    assert.ok(d.arpAnswers(L1), "the director answers ARP for the laddr");
    assert.deepEqual(d.api.guard().owned.includes(ip(L1)), true);
  });

  it("without a pool and without a laddr, a FULLNAT connection is refused (no_dest)", () => {
    const d = new Dir([]);
    d.fullnatService();
    const out = d.syn(40001);
    assert.equal(out.length, 1);
    assert.equal(out[0].f.icmpType, 3, "port unreachable to the client");
    assert.equal(d.engine.counters.dropTable().no_dest, 1);
    assert.equal(d.engine.connections(d.now).length, 0);
  });

  it("several laddrs are taken in turn (the order they were added), and before the pool", () => {
    const d = new Dir([IP.lip]);
    d.fullnatService();
    d.ipvsadm(`-P -t ${IP.vip}:80 -z ${L2}`, `-P -t ${IP.vip}:80 -z ${L1}`);
    const srcs = [1, 2, 3, 4].map((k) => d.syn(41000 + k)[0].f.src);
    assert.deepEqual(srcs, [L2, L1, L2, L1]);
    // Another FULLNAT service without laddrs keeps the pool.
    d.ipvsadm(`-A -t ${IP.vip}:81 -s rr`, `-a -t ${IP.vip}:81 -r ${IP.rs1}:8080 --fullnat`);
    const o = d.input(
      1,
      tcpFrame(L2_FROM_ROUTER, { src: ip(IP.client2), dst: VIP }, { sport: 5, dport: 81, flags: SYN }),
    );
    assert.equal(o[0].f.src, IP.lip);
  });

  it("a laddr deleted while in use: its connection keeps working, new ones take another, it is released with its last connection", () => {
    const d = new Dir([]);
    d.fullnatService();
    d.ipvsadm(`-P -t ${IP.vip}:80 -z ${L1}`);
    const first = d.syn(42000)[0];
    assert.equal(first.f.src, L1);
    d.ipvsadm(`-P -t ${IP.vip}:80 -z ${L2}`, `-Q -t ${IP.vip}:80 -z ${L1}`);
    const v0 = d.engine.lipTable.version;
    // Still owned: the connection on L1 lives on.
    assert.ok(d.engine.ownsLocal(ip(L1)));
    assert.ok(d.api.guard().owned.includes(ip(L1)));
    const back = d.reply(L1, first.f.sport as number);
    assert.equal(back.length, 1);
    assert.equal(back[0].f.dst, IP.client1);
    assert.equal(d.syn(42001)[0].f.src, L2);
    // The snapshot lists only the configured one.
    const svc = d.api.snapshot(false).services[0];
    assert.deepEqual(
      svc.laddrs?.map((l) => l.addr),
      [ip(L2)],
    );
    // Both connections expire (SYN_RECV/SYN_SENT timeouts are well under 10 minutes).
    d.now += 600_000;
    d.engine.tick(d.now);
    assert.equal(d.engine.connections(d.now).length, 0);
    assert.ok(!d.engine.ownsLocal(ip(L1)), "released with its last connection");
    assert.ok(d.engine.ownsLocal(ip(L2)));
    assert.ok(!d.api.guard().owned.includes(ip(L1)));
    assert.notEqual(d.engine.lipTable.version, v0, "the I/O side is told to refilter");
    assert.ok(!d.arpAnswers(L1));
  });

  it("deleting the service releases its laddrs when no connection uses them", () => {
    const d = new Dir([]);
    d.fullnatService();
    d.ipvsadm(`-P -t ${IP.vip}:80 -z ${L1}`);
    assert.ok(d.engine.ownsLocal(ip(L1)));
    d.ipvsadm(`-D -t ${IP.vip}:80`);
    assert.ok(!d.engine.ownsLocal(ip(L1)));
  });
});

describe("laddr commands are atomic and fail as DPVS's libipvs does", () => {
  const cases: { what: string; lines: string[]; code: string; message: string; index: number }[] = [
    {
      what: "a bad address in the middle of a batch",
      lines: [
        `-P -t ${IP.vip}:80 -z ${L1}`,
        `-P -t ${IP.vip}:80 -z 224.0.0.5`,
        `-P -t ${IP.vip}:80 -z ${L2}`,
      ],
      code: "TSVS_ERR_INVALID",
      message: "Invalid operation.  Possibly wrong module version, address not unicast, ...",
      index: 1,
    },
    {
      what: "the same address twice in one batch",
      lines: [`-P -t ${IP.vip}:80 -z ${L1}`, `-P -t ${IP.vip}:80 -z ${L1}`],
      code: "TSVS_ERR_LADDR_EXISTS",
      message: "Local address already exists",
      index: 1,
    },
    {
      what: "a service that does not exist",
      lines: [`-P -t ${IP.vip}:80 -z ${L1}`, `-P -t ${IP.vip}:81 -z ${L1}`],
      code: "TSVS_ERR_SERVICE_NOT_DEFINED",
      message: "Service not defined",
      index: 1,
    },
    {
      what: "deleting an address the service does not have",
      lines: [`-P -t ${IP.vip}:80 -z ${L1}`, `-Q -t ${IP.vip}:80 -z ${L2}`],
      code: "TSVS_ERR_NO_LADDR",
      message: "No such Local address",
      index: 1,
    },
    {
      what: "deleting an address added and removed earlier in the batch",
      lines: [`-P -t ${IP.vip}:80 -z ${L1}`, `-Q -t ${IP.vip}:80 -z ${L1}`, `-Q -t ${IP.vip}:80 -z ${L1}`],
      code: "TSVS_ERR_NO_LADDR",
      message: "No such Local address",
      index: 2,
    },
  ];
  for (const c of cases) {
    it(`${c.what}: nothing applied`, () => {
      const d = new Dir([]);
      d.fullnatService();
      const before = d.engine.lipTable.all().length;
      assert.throws(
        () => d.ipvsadm(...c.lines),
        (e: unknown) => {
          const err = e as { code: string; message: string; index: number };
          assert.deepEqual(
            { code: err.code, message: err.message, index: err.index },
            {
              code: c.code,
              message: c.message,
              index: c.index,
            },
          );
          return true;
        },
      );
      assert.equal(d.api.snapshot(false).services[0].laddrs, undefined);
      assert.equal(d.engine.lipTable.all().length, before);
      assert.ok(!d.engine.ownsLocal(ip(L1)));
    });
  }

  it("a service deleted and re-added in one batch starts without laddrs", () => {
    const d = new Dir([]);
    d.fullnatService();
    d.ipvsadm(`-P -t ${IP.vip}:80 -z ${L1}`);
    d.ipvsadm(`-D -t ${IP.vip}:80`, `-A -t ${IP.vip}:80`, `-P -t ${IP.vip}:80 -z ${L1}`);
    assert.deepEqual(
      d.api.snapshot(false).services[0].laddrs?.map((l) => l.addr),
      [ip(L1)],
    );
  });
});

describe("several workers share one ordered list of LIPs", () => {
  it("the list is the pool then laddrs in order of first appearance; LIP k belongs to worker k % N", () => {
    const t0 = new LipTable([ip("198.18.1.1"), ip("198.18.1.2")], 0, 2);
    const t1 = new LipTable([ip("198.18.1.1"), ip("198.18.1.2")], 1, 2);
    for (const t of [t0, t1]) for (const a of [L3, L1, L2, L1]) t.register(ip(a));
    const list = ["198.18.1.1", "198.18.1.2", L3, L1, L2].map(ip);
    assert.deepEqual(t0.all(), list);
    assert.deepEqual(t1.all(), list);
    const share0 = [...t0.share([L1, L2, L3].map(ip))].map((a) => a >>> 0);
    const share1 = [...t1.share([L1, L2, L3].map(ip))].map((a) => a >>> 0);
    assert.deepEqual(share0, [ip(L2), ip(L3)]);
    assert.deepEqual(share1, [ip(L1)]);
    assert.deepEqual(
      [...t0.poolShare].map((a) => a >>> 0),
      [ip("198.18.1.1")],
    );
    assert.deepEqual(
      [...t1.poolShare].map((a) => a >>> 0),
      [ip("198.18.1.2")],
    );
  });

  it("the list keeps growing past its first tables (rehash) with every address findable", () => {
    const t = new LipTable([], 0, 3);
    const addrs = Array.from({ length: 100 }, (_, k) => ip(`198.18.${4 + (k >> 8)}.${k & 255}`));
    for (const a of addrs) t.register(a);
    for (let k = 0; k < addrs.length; k++) assert.equal(t.indexOf(addrs[k]), k);
    assert.equal(t.indexOf(ip("198.18.9.9")), -1);
  });

  it("engines given the same commands take disjoint shares that cover every laddr, and each uses only its own", () => {
    const n = 3;
    const dirs = Array.from({ length: n }, (_, i) => new Dir([IP.lip], { index: i, count: n }));
    const laddrs = ["198.18.1.101", "198.18.1.102", "198.18.1.103", "198.18.1.104", "198.18.1.105"];
    for (const d of dirs) {
      d.fullnatService();
      d.ipvsadm(...laddrs.map((a) => `-P -t ${IP.vip}:80 -z ${a}`));
    }
    const lists = dirs.map((d) => d.engine.lipTable.all());
    for (const l of lists) assert.deepEqual(l, lists[0]);
    assert.deepEqual(lists[0], [IP.lip, ...laddrs].map(ip));
    const used = dirs.map((d, w) => {
      const srcs = new Set<string>();
      for (let k = 0; k < 6; k++) srcs.add(d.syn(43000 + k)[0].f.src as string);
      // Worker w owns list positions w, w + n, ...: the laddrs at positions 1.. are laddrs[k - 1].
      const mine = laddrs.filter((_, k) => (k + 1) % n === w);
      assert.deepEqual([...srcs].sort(), [...mine].sort(), `worker ${w}`);
      for (const a of laddrs)
        assert.equal(d.engine.ownsLocal(ip(a)), mine.includes(a), `worker ${w} owns ${a}`);
      return mine;
    });
    assert.deepEqual(used.flat().sort(), [...laddrs].sort());
    // The daemon's guard is the union of the workers' guards: every LIP, each once.
    const owned = dirs.flatMap((d) => d.api.guard().owned).filter((a) => a !== VIP);
    assert.deepEqual(owned.sort(), [IP.lip, ...laddrs].map(ip).sort());
    // Snapshots merge: each laddr's connections add up over the workers.
    const merged = mergeTables(dirs.map((d) => d.api.snapshot(false)));
    const conns = merged.services[0].laddrs?.reduce((s, l) => s + l.conns, 0);
    assert.equal(conns, 6 * n);
  });

  it("IPv6 LIPs: a list of their own, LIP k to worker k % N, found by words, held while connections use them", () => {
    const lips6 = ["2001:db8:1::101", "2001:db8:1::102", "2001:db8:1::103"];
    const tables = [0, 1].map((w) => new LipTable([], w, 2));
    for (const t of tables) {
      for (const a of [...lips6, lips6[0]]) t.register6(a);
      t.setInUse([], lips6);
      assert.deepEqual(t.all6(), lips6);
    }
    const [t0, t1] = tables;
    const w = (a: string): Int32Array => {
      const b = parseIPv6(a) ?? new Uint8Array(16);
      const dv = new DataView(b.buffer);
      return Int32Array.from([0, 4, 8, 12], (o) => dv.getInt32(o));
    };
    assert.deepEqual([...t0.share6(lips6)], [...w(lips6[0]), ...w(lips6[2])]);
    assert.deepEqual([...t1.share6(lips6)], [...w(lips6[1])]);
    assert.deepEqual([t0.owned6(), t1.owned6()], [[lips6[0], lips6[2]], [lips6[1]]]);
    // Two addresses with the same fold (words swapped) are two positions.
    const twin = "2001:db8:0:0:1::101";
    assert.equal(
      (w(twin)[0] ^ w(twin)[1] ^ w(twin)[2] ^ w(twin)[3]) >>> 0,
      (w(lips6[0])[0] ^ w(lips6[0])[1] ^ w(lips6[0])[2] ^ w(lips6[0])[3]) >>> 0,
    );
    assert.equal(t0.indexOf6(w(twin), 0), -1);
    assert.equal(t0.register6(twin), 3);
    assert.deepEqual([t0.indexOf6(w(lips6[0]), 0), t0.indexOf6(w(twin), 0)], [0, 3]);
    // A connection holds its LIP past the laddr's deletion; the last one lets it go.
    const v0 = t0.version;
    t0.acquire6(w(lips6[2]), 0);
    t0.conflict6(w(lips6[2]), 0);
    t0.setInUse([], [lips6[0]]);
    assert.ok(t0.version > v0);
    assert.equal(t0.owns6(w(lips6[2]), 0), true);
    assert.deepEqual(t0.usage6(lips6[2]), { conns: 1, conflicts: 1 });
    const v1 = t0.version;
    t0.release6(w(lips6[2]), 0);
    assert.equal(t0.owns6(w(lips6[2]), 0), false);
    assert.ok(t0.version > v1, "the owned set changed: filters recompile");
    assert.deepEqual(t0.owned6(), [lips6[0]]);
    assert.equal(t1.owns6(w(lips6[0]), 0), false, "another worker's LIP");
  });

  it("a worker that owns none of a service's laddrs refuses its FULLNAT connections (no_dest)", () => {
    const w0 = new Dir([], { index: 0, count: 2 });
    const w1 = new Dir([], { index: 1, count: 2 });
    for (const d of [w0, w1]) {
      d.fullnatService();
      d.ipvsadm(`-P -t ${IP.vip}:80 -z ${L1}`);
    }
    assert.equal(w0.syn(44000)[0].f.src, L1);
    const out = w1.syn(44001);
    assert.equal(out[0].f.icmpType, 3);
    assert.equal(w1.engine.counters.dropTable().no_dest, 1);
  });
});

describe("configuration files name a service's local addresses", () => {
  it("keepalived.conf: DPVS's local_address_group and laddr_group_name", () => {
    const src = `
virtual_server ${IP.vip} 80 {
    lb_kind FULLNAT
    laddr_group_name lg1
    real_server ${IP.rs1} 8080 {
    }
}
local_address_group lg1 {
    ${L1} dpdk0
    198.18.1.110-112
}
`;
    const { model, warnings } = parseKeepalived(src, "k.conf");
    assert.deepEqual(warnings, []);
    const lines = toCommands(model).map(commandToIpvsadm);
    assert.deepEqual(lines, [
      `-A -t ${IP.vip}:80 -s wlc`,
      `-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 --fullnat -w 1`,
      `-P -t ${IP.vip}:80 -z ${L1}`,
      `-P -t ${IP.vip}:80 -z 198.18.1.110`,
      `-P -t ${IP.vip}:80 -z 198.18.1.111`,
      `-P -t ${IP.vip}:80 -z 198.18.1.112`,
    ]);
  });

  it("keepalived.conf: an undefined group is an error at its line", () => {
    const src = `virtual_server ${IP.vip} 80 {\n    laddr_group_name nope\n}\n`;
    assert.throws(
      () => parseKeepalived(src, "k.conf"),
      /k\.conf:2:22: local_address_group "nope" is not defined/,
    );
  });

  it("YAML: local_addresses, checked as addresses, duplicates refused", () => {
    const ok = `virtual_servers:\n  - address: ${IP.vip}\n    port: 80\n    lb_kind: FULLNAT\n    local_addresses: [${L1}, ${L2}]\n`;
    const { model } = parseYamlConfig(ok, "c.yaml");
    assert.deepEqual(
      toCommands(model)
        .filter((c) => c.op === "add-laddr")
        .map(commandToIpvsadm),
      [`-P -t ${IP.vip}:80 -z ${L1}`, `-P -t ${IP.vip}:80 -z ${L2}`],
    );
    assert.throws(
      () => parseYamlConfig(ok.replace(L2, "nope"), "c.yaml"),
      /local_addresses entry must be an IPv4 or IPv6 address/,
    );
    assert.throws(() => parseYamlConfig(ok.replace(L2, L1), "c.yaml"), /appears twice/);
  });

  it("a reload deletes the local addresses that went and adds the new ones, the service kept", () => {
    const conf = (laddrs: string[]) =>
      parseYamlConfig(
        `virtual_servers:\n  - address: ${IP.vip}\n    port: 80\n    lb_kind: FULLNAT\n    local_addresses: [${laddrs.join(", ")}]\n`,
        "c.yaml",
      ).model;
    assert.deepEqual(diff(conf([L1, L2]), conf([L2, L3])).map(commandToIpvsadm), [
      `-Q -t ${IP.vip}:80 -z ${L1}`,
      `-P -t ${IP.vip}:80 -z ${L3}`,
    ]);
    assert.deepEqual(diff(conf([L1]), conf([L1])), []);
  });
});
