// Per-service ACLs (src/core/acl.ts: DPVS's blacklist/whitelist with prefixes) and the per-source
// new-connection rate limit (src/core/conn-limit.ts): the trie, the control commands, the engine
// (new connections only), ipvsadm's -U/-V/-B/-O/-Y/-W and --conn-limit, and -S | -R.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatAcl, formatSave } from "../../src/cli/ipvsadm/format.js";
import { IpvsadmUsageError, parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { runIpvsadm } from "../../src/cli/ipvsadm/run.js";
import { diff } from "../../src/config/diff.js";
import { parseKeepalived } from "../../src/config/keepalived.js";
import { commandToIpvsadm, toCommands } from "../../src/config/model.js";
import { parseYamlConfig } from "../../src/config/yaml.js";
import { tableSnapshot } from "../../src/control/snapshot.js";
import { AclList, type AclPrefix, PrefixTrie, parseAclPrefix } from "../../src/core/acl.js";
import { ipv6Fold, ipv6TextWords, ipv6WordsText, parseIPv4 } from "../../src/core/addr.js";
import { CONN_LIMIT_SLOTS, ConnLimiter } from "../../src/core/conn-limit.js";
import { CtlError } from "../../src/core/ctl.js";
import type { CtlCommand } from "../../src/core/ctl-types.js";
import { Verdict } from "../../src/core/xmit/types.js";
import { VirtualServerHealth } from "../../src/health/state.js";
import { Director, IP, L2_FROM_ROUTER } from "../support/frames.js";
import { Director6, IP6, L2_6_FROM_ROUTER } from "../support/frames6.js";
import { ACK, ip, SYN, tcpFrame } from "../support/packet-builder.js";
import { tcp6Frame } from "../support/packet6.js";

function pfx(s: string): AclPrefix {
  const p = parseAclPrefix(s);
  if (typeof p === "string") throw new Error(p);
  return p;
}

describe("parseAclPrefix", () => {
  const cases: [string, string | RegExp][] = [
    ["10.1.2.3", "10.1.2.3"],
    ["10.1.2.3/32", "10.1.2.3"],
    ["10.0.0.0/8", "10.0.0.0/8"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["2001:DB8::1", "2001:db8::1"],
    ["[2001:db8::]/32", "2001:db8::/32"],
    ["::/0", "::/0"],
    ["2001:db8::1/128", "2001:db8::1"],
    ["10.0.0.1/8", /host bits set past \/8/],
    ["10.0.0.0/33", /prefix length '33' is not 0..32 for IPv4/],
    ["2001:db8::/129", /not 0..128 for IPv6/],
    ["10.0.0.0/", /prefix length '' is not/],
    ["example.com", /not an IPv4 or IPv6 address: 'example.com'/],
  ];
  for (const [input, want] of cases) {
    it(`${input} → ${want}`, () => {
      const p = parseAclPrefix(input);
      if (typeof want === "string") assert.equal(typeof p === "string" ? p : p.text, want);
      else assert.match(p as string, want);
    });
  }
});

describe("PrefixTrie / AclList", () => {
  it("takes the longest match, IPv4, with /0 and /32 at the edges", () => {
    const l = new AclList();
    for (const r of ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.3"]) l.add(pfx(r));
    const hit = (a: string): string => {
      const before = l.rules().map((r) => r.hits);
      assert.ok(l.match4(parseIPv4(a) as number));
      const i = l.rules().findIndex((r, k) => r.hits !== before[k]);
      return l.rules()[i].text;
    };
    assert.equal(hit("10.1.2.3"), "10.1.2.3");
    assert.equal(hit("10.1.2.4"), "10.1.0.0/16");
    assert.equal(hit("10.2.0.1"), "10.0.0.0/8");
    assert.equal(hit("192.0.2.1"), "0.0.0.0/0");
    assert.equal(hit("255.255.255.255"), "0.0.0.0/0");
  });

  it("misses outside every prefix, and after a delete", () => {
    const l = new AclList();
    l.add(pfx("198.51.100.0/24"));
    assert.equal(l.match4(parseIPv4("198.51.101.1") as number), false);
    assert.equal(l.match4(parseIPv4("198.51.100.255") as number), true);
    assert.ok(l.del(pfx("198.51.100.0/24")));
    assert.equal(l.del(pfx("198.51.100.0/24")), false);
    assert.equal(l.match4(parseIPv4("198.51.100.255") as number), false);
    assert.equal(l.misses, 2);
  });

  it("IPv6 on all four words: two addresses with one fold are told apart; /0, /64 and /128", () => {
    const a = "2001:db8::100";
    const b = "2001:db8:0:100::"; // same XOR fold as a
    const wa = ipv6TextWords(a) as Int32Array;
    const wb = ipv6TextWords(b) as Int32Array;
    assert.equal(ipv6Fold(wa), ipv6Fold(wb));
    const l = new AclList();
    l.add(pfx(a));
    assert.equal(l.match6(wa), true);
    assert.equal(l.match6(wb), false);
    l.add(pfx("2001:db8:0:100::/64"));
    assert.equal(l.match6(wb), true);
    assert.equal(l.match6(ipv6TextWords("2001:db8:0:101::") as Int32Array), false);
    l.add(pfx("::/0"));
    assert.equal(l.match6(ipv6TextWords("fe80::1") as Int32Array), true);
    assert.deepEqual(
      l.rules().map((r) => [r.text, r.hits]),
      [
        ["2001:db8::100", 1],
        ["2001:db8:0:100::/64", 1],
        ["::/0", 1],
      ],
    );
  });

  it("keeps IPv4 and IPv6 rules apart", () => {
    const l = new AclList();
    l.add(pfx("0.0.0.0/0"));
    assert.equal(l.match6(ipv6TextWords("::") as Int32Array), false);
    assert.equal(l.match4(0), true);
  });

  it("agrees with a linear scan over random prefixes and addresses, through deletes and rebuilds", () => {
    let seed = 7;
    const rnd = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed;
    };
    const l = new AclList();
    const rules: { a: number; len: number; text: string }[] = [];
    for (let i = 0; i < 2000; i++) {
      const len = 8 + (rnd() % 25);
      const a = len === 32 ? rnd() >>> 0 : ((rnd() >>> (32 - len)) << (32 - len)) >>> 0;
      const p = pfx(`${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${len}`);
      if (l.has(p)) continue;
      l.add(p);
      rules.push({ a, len, text: p.text });
    }
    for (const r of rules.splice(0, 300)) assert.ok(l.del(pfx(r.text)));
    assert.ok(l.nodes() > 4096, `${l.nodes()} nodes: the 16-bit first level is in use`);
    const inRule = (x: number, r: { a: number; len: number }): boolean =>
      r.len === 0 || x >>> (32 - r.len) === r.a >>> (32 - r.len);
    for (let i = 0; i < 5000; i++) {
      // Half the probes inside a live rule.
      const r = rules[rnd() % rules.length];
      const x = i % 2 === 0 ? (r.a | (rnd() & (r.len === 32 ? 0 : 0xffffffff >>> r.len))) >>> 0 : rnd() >>> 0;
      assert.equal(
        l.match4(x),
        rules.some((q) => inRule(x, q)),
        `address ${x}`,
      );
    }
  });

  it("IPv6, large enough for the 16-bit first level: agrees with a linear scan, short prefixes added and removed after", () => {
    let seed = 99;
    const rnd = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) | 0;
      return seed;
    };
    const l = new AclList();
    const rules: { w: Int32Array; len: number; text: string }[] = [];
    const inRule = (x: Int32Array, r: { w: Int32Array; len: number }): boolean => {
      for (let i = 0; i < 4; i++) {
        const bits = r.len - 32 * i;
        if (bits <= 0) return true;
        const m = bits >= 32 ? -1 : ~(-1 >>> bits);
        if ((x[i] & m) !== (r.w[i] & m)) return false;
      }
      return true;
    };
    const add = (len: number): void => {
      const w = new Int32Array(4);
      // Two top-16 groups only, so that lookups go deep and paths share the first level.
      w[0] = (0x20010db8 + (rnd() & 1)) | 0;
      w[1] = rnd();
      w[2] = rnd();
      w[3] = rnd();
      for (let i = 0; i < 4; i++) {
        const bits = len - 32 * i;
        w[i] = bits >= 32 ? w[i] : bits <= 0 ? 0 : w[i] & ~(-1 >>> bits);
      }
      const p = pfx(len === 128 ? ipv6WordsText(w) : `${ipv6WordsText(w)}/${len}`);
      if (l.has(p)) return;
      l.add(p);
      rules.push({ w, len, text: p.text });
    };
    for (let i = 0; i < 300; i++) add(33 + ((rnd() >>> 0) % 96));
    add(8);
    add(16);
    add(0);
    for (const r of rules.filter((q) => q.len === 0 || q.len === 8)) {
      assert.ok(l.del(pfx(r.text)));
      rules.splice(rules.indexOf(r), 1);
    }
    add(12);
    const probe = new Int32Array(4);
    for (let i = 0; i < 3000; i++) {
      const r = rules[(rnd() >>> 0) % rules.length];
      for (let k = 0; k < 4; k++) {
        const bits = r.len - 32 * k;
        const host = bits >= 32 ? 0 : bits <= 0 ? -1 : -1 >>> bits;
        probe[k] = i % 3 === 0 ? rnd() : r.w[k] | (rnd() & host);
      }
      assert.equal(
        l.match6(probe),
        rules.some((q) => inRule(probe, q)),
        ipv6WordsText(probe),
      );
    }
    assert.ok(l.nodes() > 4096, `${l.nodes()} nodes: the first level is in use`);
  });

  it("a trie with no rule matches nothing; a /0 rule sits on the root", () => {
    const t = new PrefixTrie();
    assert.equal(t.lookup4(0x01020304), -1);
    t.insert(new Int32Array(4), 0, 5);
    assert.equal(t.lookup4(0xffffffff), 5);
    assert.equal(t.lookup6(new Int32Array([-1, -1, -1, -1])), 5);
  });
});

describe("ConnLimiter", () => {
  it("lets burst through, refuses the next, refills at rate", () => {
    const l = new ConnLimiter({ rate: 10, burst: 3, prefix4: 32, prefix6: 64 });
    const a = parseIPv4("192.0.2.1") as number;
    assert.deepEqual(
      [1, 2, 3, 4].map(() => l.take4(a, 1000)),
      [true, true, true, false],
    );
    assert.equal(l.take4(a, 1050), false, "half a token after 50 ms at 10/s");
    assert.equal(l.take4(a, 1100), true, "one token after 100 ms");
    assert.equal(l.limited, 2);
    assert.equal(l.take4(parseIPv4("192.0.2.2") as number, 1100), true, "another /32: its own bucket");
  });

  it("one bucket per prefix: /24 and IPv6 /64", () => {
    const l = new ConnLimiter({ rate: 1, burst: 1, prefix4: 24, prefix6: 64 });
    assert.equal(l.take4(parseIPv4("192.0.2.1") as number, 1000), true);
    assert.equal(l.take4(parseIPv4("192.0.2.200") as number, 1000), false);
    assert.equal(l.take4(parseIPv4("192.0.3.1") as number, 1000), true);
    assert.equal(l.take6(ipv6TextWords("2001:db8:1:2::1") as Int32Array, 1000), true);
    assert.equal(l.take6(ipv6TextWords("2001:db8:1:2:ffff::9") as Int32Array, 1000), false);
    assert.equal(l.take6(ipv6TextWords("2001:db8:1:3::1") as Int32Array, 1000), true);
  });

  it("stays within its table under many sources (evicted sources start full, never refused wrongly)", () => {
    const l = new ConnLimiter({ rate: 1, burst: 1, prefix4: 32, prefix6: 64 });
    for (let i = 0; i < CONN_LIMIT_SLOTS * 4; i++) assert.equal(l.take4(0x0a000000 + i, 1000), true);
    assert.equal(l.limited, 0);
  });
});

function natDirector(): Director {
  const d = new Director();
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`);
  return d;
}

function tcp(d: Director, src: string, sport: number, flags: number) {
  return d.input(1, tcpFrame(L2_FROM_ROUTER, { src: ip(src), dst: ip(IP.vip) }, { sport, dport: 80, flags }));
}

describe("the engine: ACLs and the limit on new connections only", () => {
  it("deny list first (DPVS's blklst then whtlst); allow list lets only its sources in", () => {
    const d = natDirector();
    d.ipvsadm(`-U -t ${IP.vip}:80 -k 203.0.113.0/24`);
    let r = tcp(d, IP.client1, 1000, SYN);
    assert.equal(r.verdict, Verdict.Drop);
    assert.equal(r.out.length, 0);
    assert.equal(d.engine.counters.dropTable().acl_deny, 1);
    assert.equal(d.engine.conns.size, 0);
    // Allowed too: deny wins.
    d.ipvsadm(`-O -t ${IP.vip}:80 -2 ${IP.client1}`);
    assert.equal(tcp(d, IP.client1, 1001, SYN).verdict, Verdict.Drop);
    assert.equal(d.engine.counters.dropTable().acl_deny, 2);
    d.ipvsadm(`-V -t ${IP.vip}:80 -k 203.0.113.0/24`);
    r = tcp(d, IP.client1, 1002, SYN);
    assert.equal(r.out.length, 1, "allowed: forwarded to the real server");
    assert.equal(d.engine.conns.size, 1);
    // Not on the allow list.
    r = tcp(d, "198.51.100.7", 1003, SYN);
    assert.equal(r.verdict, Verdict.Drop);
    assert.equal(d.engine.counters.dropTable().acl_not_allowed, 1);
    const snap = tableSnapshot(d.engine, d.now, false).services[0];
    assert.deepEqual(snap.allow, [{ rule: IP.client1, hits: 1 }]);
    assert.equal(snap.notAllowed, 1);
  });

  it("packets of an existing connection pass after the source is denied", () => {
    const d = natDirector();
    assert.equal(tcp(d, IP.client1, 2000, SYN).out.length, 1);
    d.ipvsadm(`-U -t ${IP.vip}:80 -k ${IP.client1}`);
    assert.equal(tcp(d, IP.client1, 2000, ACK).out.length, 1, "established: not checked");
    assert.equal(tcp(d, IP.client1, 2001, SYN).verdict, Verdict.Drop);
    assert.equal(d.engine.counters.dropTable().acl_deny, 1);
  });

  it("the rate limit refuses SYNs past the burst, not the established flow, and refills", () => {
    const d = natDirector();
    d.ipvsadm(`--conn-limit -t ${IP.vip}:80 --conn-rate 2/s --conn-burst 2`);
    assert.equal(tcp(d, IP.client1, 3000, SYN).out.length, 1);
    assert.equal(tcp(d, IP.client1, 3001, SYN).out.length, 1);
    assert.equal(tcp(d, IP.client1, 3002, SYN).verdict, Verdict.Drop);
    assert.equal(tcp(d, IP.client1, 3000, ACK).out.length, 1, "established: no token spent");
    assert.equal(tcp(d, IP.client2, 3003, SYN).out.length, 1, "another source");
    assert.equal(d.engine.counters.dropTable().conn_rate_limited, 1);
    d.advance(d.now + 500);
    assert.equal(tcp(d, IP.client1, 3004, SYN).out.length, 1, "a token after 500 ms at 2/s");
    d.ipvsadm(`--conn-limit -t ${IP.vip}:80 --conn-rate 0`);
    for (let p = 0; p < 5; p++) assert.equal(tcp(d, IP.client1, 3100 + p, SYN).out.length, 1, "off");
  });

  it("IPv6: a denied /64 and an allowed host, on the source's words", () => {
    const d = new Director6();
    const vip = IP6.vip;
    d.ipvsadm(`-A -t [${vip}]:80 -s rr`);
    d.ipvsadm(`-a -t [${vip}]:80 -r [${IP6.rs1}]:80 -m`);
    d.ipvsadm(`-U -t [${vip}]:80 -k 2001:db8:ff::/64`);
    const syn = (src: string, sport: number) =>
      d.input(1, tcp6Frame(L2_6_FROM_ROUTER, { src, dst: vip }, { sport, dport: 80, flags: SYN }));
    assert.equal(syn(IP6.client1, 1000).verdict, Verdict.Drop);
    assert.equal(syn("2001:db8:fe::10", 1001).out.length, 1);
    d.ipvsadm(`-O -t [${vip}]:80 -2 2001:db8:fe::10`);
    assert.equal(syn("2001:db8:fe::10", 1002).out.length, 1);
    assert.equal(syn("2001:db8:fe::11", 1003).verdict, Verdict.Drop);
    const t = d.engine.counters.dropTable();
    assert.equal(t.acl_deny, 1);
    assert.equal(t.acl_not_allowed, 1);
  });
});

describe("control: errors, all or nothing", () => {
  it("DPVS's messages for a duplicate, a missing rule, a missing service", () => {
    const d = natDirector();
    d.ipvsadm(`-U -t ${IP.vip}:80 -k 10.0.0.0/8`);
    const err = (line: string): string => {
      try {
        d.ipvsadm(line);
      } catch (e) {
        assert.ok(e instanceof CtlError);
        return e.message;
      }
      throw new Error("no error");
    };
    assert.equal(err(`-U -t ${IP.vip}:80 -k 10.0.0.0/8`), "blacklist address already exists");
    assert.equal(err(`-V -t ${IP.vip}:80 -k 10.0.0.0/9`), "No such deny address");
    assert.equal(err(`-O -t ${IP.vip}:81 -2 10.0.0.1`), "Service not defined");
    d.ipvsadm(`-O -t ${IP.vip}:80 -2 10.0.0.1`);
    assert.equal(err(`-O -t ${IP.vip}:80 -2 10.0.0.1`), "whitelist address already exists");
  });

  it("a batch with a bad rule applies nothing", () => {
    const d = natDirector();
    const key = { af: 4 as const, protocol: 6, addr: ip(IP.vip), port: 80, fwmark: 0 };
    assert.throws(() =>
      d.engine.applyAll([
        { op: "add-acl", key, list: "deny", rule: "10.0.0.0/8" },
        { op: "add-acl", key, list: "deny", rule: "10.0.0.1/8" },
      ]),
    );
    assert.equal(tableSnapshot(d.engine, d.now, false).services[0].deny, undefined);
  });
});

describe("ipvsadm: -U/-V/-B/-O/-Y/-W, --conn-limit, -S | -R", () => {
  it("parses DPVS's options and refuses a bad entry with DPVS's message", () => {
    assert.deepEqual(parseIpvsadm(["-U", "-t", "10.0.0.1:80", "-k", "192.0.2.0/24"]), {
      kind: "ctl",
      cmd: {
        op: "add-acl",
        key: { af: 4, protocol: 6, addr: 0x0a000001, port: 80, fwmark: 0 },
        list: "deny",
        rule: "192.0.2.0/24",
      },
    });
    assert.deepEqual(parseIpvsadm(["--get-whtlst"]), { kind: "acl", list: "allow", key: null });
    assert.throws(
      () => parseIpvsadm(["-U", "-t", "10.0.0.1:80", "-k", "ipset:foo"]),
      (e: unknown) =>
        e instanceof IpvsadmUsageError &&
        e.message === "illegal blacklist entry format, require [ IP | IP/LEN ]" &&
        e.exitCode === 2,
    );
    assert.throws(
      () => parseIpvsadm(["-O", "-t", "10.0.0.1:80"]),
      /You need to supply the 'whtlst-address' option for the 'add-whtlst' command/,
    );
    assert.throws(
      () => parseIpvsadm(["-U", "-t", "10.0.0.1:80", "-k", "10.0.0.1", "-2", "10.0.0.2"]),
      /Illegal 'whtlst-address' option with the 'add-blklst' command/,
    );
    assert.throws(
      () => parseIpvsadm(["--conn-limit", "-t", "10.0.0.1:80", "--conn-rate", "x"]),
      /illegal conn-rate specified/,
    );
    assert.deepEqual(
      parseIpvsadm(["--conn-limit", "-t", "10.0.0.1:80", "--conn-rate", "5", "--conn-rate-prefix", "24,56"]),
      {
        kind: "ctl",
        cmd: {
          op: "set-conn-limit",
          key: { af: 4, protocol: 6, addr: 0x0a000001, port: 80, fwmark: 0 },
          limit: { rate: 5, burst: 5, prefix4: 24, prefix6: 56 },
        },
      },
    );
  });

  it("-B lists as DPVS's print_service_and_blklsts, with the hits; -W for the allow list", () => {
    const d = natDirector();
    d.ipvsadm(`-U -t ${IP.vip}:80 -k 203.0.113.0/24`);
    d.ipvsadm(`-U -t ${IP.vip}:80 -k 192.0.2.7`);
    tcp(d, IP.client1, 1000, SYN);
    const snap = tableSnapshot(d.engine, d.now, false);
    assert.equal(
      formatAcl(snap, "deny", null),
      "PROTO    VIP:VPORT                      BLACKLIST                      HITS\n" +
        "TCP      198.18.0.100:80                203.0.113.0/24                 1\n" +
        "TCP      198.18.0.100:80                192.0.2.7                      0\n",
    );
    assert.equal(
      formatAcl(snap, "allow", null),
      "PROTO    VIP:VPORT                      WHITELIST                      HITS\n",
    );
  });

  it("-S emits the lists and the limit; -R of it rebuilds the same table", () => {
    const d = natDirector();
    const v6 = "2001:db8::80";
    for (const line of [
      `-A -t [${v6}]:443 -s wrr`,
      `-U -t ${IP.vip}:80 -k 203.0.113.0/24`,
      `-O -t ${IP.vip}:80 -2 198.51.100.1`,
      `-O -t ${IP.vip}:80 -2 0.0.0.0/0`,
      `-U -t [${v6}]:443 -k 2001:db8:bad::/48`,
      `--conn-limit -t ${IP.vip}:80 --conn-rate 100 --conn-burst 200 --conn-rate-prefix 24,48`,
    ])
      d.ipvsadm(line);
    const saved = formatSave(tableSnapshot(d.engine, d.now, false), true);
    assert.match(saved, /^-U -t 198\.18\.0\.100:80 -k 203\.0\.113\.0\/24$/m);
    assert.match(saved, /^-O -t 198\.18\.0\.100:80 -2 198\.51\.100\.1$/m);
    assert.match(saved, /^-U -t \[2001:db8::80\]:443 -k 2001:db8:bad::\/48$/m);
    assert.match(
      saved,
      /^--conn-limit -t 198\.18\.0\.100:80 --conn-rate 100 --conn-burst 200 --conn-rate-prefix 24,48$/m,
    );
    const d2 = new Director();
    const backend = {
      apply: (cmds: readonly CtlCommand[]) => d2.engine.applyAll([...cmds]),
      snapshot: (withConns: boolean) => tableSnapshot(d2.engine, d2.now, withConns),
    };
    const r = runIpvsadm(["-R"], backend, saved);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(formatSave(tableSnapshot(d2.engine, d2.now, false), true), saved);
  });
});

describe("configuration: keepalived.conf (DPVS's keywords), YAML, reload diff", () => {
  const KA = `
deny_address_group bad {
  203.0.113.7
  203.0.113.10-12
  198.51.100.0/24
  203.0.113.7
}
allow_address_group good {
  2001:db8:ff::/48
}
virtual_server 198.18.0.100 80 {
  lb_algo rr
  lb_kind NAT
  protocol TCP
  daddr_group_name bad
  real_server 198.18.1.11 80 {
  }
}
virtual_server 2001:db8::80 443 {
  lb_algo rr
  lb_kind NAT
  protocol TCP
  waddr_group_name good
  real_server 2001:db8:1::11 443 {
  }
}
`;

  it("deny_address_group / allow_address_group with daddr_group_name / waddr_group_name become -U / -O", () => {
    const { model } = parseKeepalived(KA, "k.conf");
    const lines = toCommands(model)
      .filter((c) => c.op === "add-acl")
      .map(commandToIpvsadm);
    assert.deepEqual(lines, [
      "-U -t 198.18.0.100:80 -k 203.0.113.7",
      "-U -t 198.18.0.100:80 -k 203.0.113.10",
      "-U -t 198.18.0.100:80 -k 203.0.113.11",
      "-U -t 198.18.0.100:80 -k 203.0.113.12",
      "-U -t 198.18.0.100:80 -k 198.51.100.0/24",
      "-O -t [2001:db8::80]:443 -2 2001:db8:ff::/48",
    ]);
  });

  it("refuses an ipset entry, a bad prefix and an undefined group, naming where", () => {
    assert.throws(
      () =>
        parseKeepalived(
          "deny_address_group g {\n  ipset:foo\n  10.0.0.1/8\n}\nvirtual_server 10.0.0.1 80 {\n  waddr_group_name nope\n}\n",
          "k.conf",
        ),
      (e: unknown) => {
        const m = String((e as Error).message);
        return (
          /k\.conf:2:3: "ipset:foo": tsvs has no ipsets/.test(m) &&
          /k\.conf:3:3: '10\.0\.0\.1\/8' has host bits set past \/8/.test(m) &&
          /k\.conf:6:20: allow_address_group "nope" is not defined/.test(m)
        );
      },
    );
  });

  it("YAML deny/allow/conn_limit, and a reload diff that adds and removes only what changed", () => {
    const y1 = `virtual_servers:
  - address: 198.18.0.100
    port: 80
    deny: [203.0.113.0/24, 192.0.2.1]
    conn_limit: { rate: 50, prefix4: 24 }
    real_servers:
      - address: 198.18.1.11
`;
    const y2 = `virtual_servers:
  - address: 198.18.0.100
    port: 80
    deny: [192.0.2.1]
    allow: ["2001:db8::/32"]
    real_servers:
      - address: 198.18.1.11
`;
    const m1 = parseYamlConfig(y1, "c.yaml").model;
    assert.deepEqual(
      toCommands(m1)
        .filter((c) => c.op === "add-acl" || c.op === "set-conn-limit")
        .map(commandToIpvsadm),
      [
        "-U -t 198.18.0.100:80 -k 203.0.113.0/24",
        "-U -t 198.18.0.100:80 -k 192.0.2.1",
        "--conn-limit -t 198.18.0.100:80 --conn-rate 50 --conn-burst 50 --conn-rate-prefix 24,64",
      ],
    );
    const m2 = parseYamlConfig(y2, "c.yaml").model;
    const d = diff(m1, m2);
    assert.deepEqual(d, [
      {
        op: "del-acl",
        key: { af: 4, protocol: 6, addr: ip("198.18.0.100"), port: 80, fwmark: 0 },
        list: "deny",
        rule: "203.0.113.0/24",
      },
      {
        op: "add-acl",
        key: { af: 4, protocol: 6, addr: ip("198.18.0.100"), port: 80, fwmark: 0 },
        list: "allow",
        rule: "2001:db8::/32",
      },
      {
        op: "set-conn-limit",
        key: { af: 4, protocol: 6, addr: ip("198.18.0.100"), port: 80, fwmark: 0 },
        limit: { rate: 0, burst: 1, prefix4: 32, prefix6: 64 },
      },
    ]);
    // The diff applies on a table built from the first model.
    const dir = new Director();
    dir.engine.applyAll(toCommands(m1));
    dir.engine.applyAll(d);
    const s = tableSnapshot(dir.engine, dir.now, false).services[0];
    assert.deepEqual(s.deny, [{ rule: "192.0.2.1", hits: 0 }]);
    assert.deepEqual(s.allow, [{ rule: "2001:db8::/32", hits: 0 }]);
    assert.equal(s.connLimit, undefined);
  });

  it("the daemon's --config runner (health/state.ts) installs the lists and the limit, and a reload sends the difference", () => {
    const y = (deny: string, limit: string) =>
      parseYamlConfig(
        `virtual_servers:\n  - address: 198.18.0.100\n    port: 80\n    deny: [${deny}]\n${limit}    real_servers:\n      - address: 198.18.1.11\n`,
        "c.yaml",
      ).model.virtualServers[0];
    const v1 = new VirtualServerHealth(y("203.0.113.0/24, 192.0.2.1", "    conn_limit: { rate: 5 }\n"));
    assert.deepEqual(v1.start().commands.map(commandToIpvsadm), [
      "-A -t 198.18.0.100:80 -s wlc",
      "-a -t 198.18.0.100:80 -r 198.18.1.11:80 -g -w 1",
      "-U -t 198.18.0.100:80 -k 203.0.113.0/24",
      "-U -t 198.18.0.100:80 -k 192.0.2.1",
      "--conn-limit -t 198.18.0.100:80 --conn-rate 5 --conn-burst 5 --conn-rate-prefix 32,64",
    ]);
    const v2 = new VirtualServerHealth(y("192.0.2.1, 192.0.2.2", ""), v1);
    assert.deepEqual(v2.sync().map(commandToIpvsadm), [
      "-U -t 198.18.0.100:80 -k 192.0.2.2",
      "--conn-limit -t 198.18.0.100:80 --conn-rate 0",
      "-V -t 198.18.0.100:80 -k 203.0.113.0/24",
    ]);
    assert.deepEqual(v2.sync(), [], "nothing more to do");
  });

  it("YAML refuses a bad entry with its position", () => {
    assert.throws(
      () =>
        parseYamlConfig(
          "virtual_servers:\n  - address: 10.0.0.1\n    port: 80\n    deny: [10.0.0.1/8]\n",
          "c.yaml",
        ),
      /c\.yaml:4:\d+: deny: '10\.0\.0\.1\/8' has host bits set past \/8/,
    );
  });
});
