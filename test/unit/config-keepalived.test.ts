import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseKeepalived, parseStatements, tokenize } from "../../src/config/keepalived.js";
import { commandToIpvsadm, toCommands } from "../../src/config/model.js";
import { parseIPv4 } from "../../src/core/addr.js";
import { configErrors, fixture } from "../support/config.js";

const errorsOf = (src: string, file = "k.conf"): string[] => configErrors(() => parseKeepalived(src, file));

const ip = (s: string) => parseIPv4(s)!;

describe("keepalived tokenizer", () => {
  it("splits words, braces, quoted strings and drops # and ! comments", () => {
    const t = tokenize('a "b c" {d}# x\n! y\n  e\n').filter((x) => x.text !== "\n");
    assert.deepEqual(
      t.map((x) => [x.text, x.line, x.col, x.quoted]),
      [
        ["a", 1, 1, false],
        ["b c", 1, 3, true],
        ["{", 1, 9, false],
        ["d", 1, 10, false],
        ["}", 1, 11, false],
        ["e", 3, 3, false],
      ],
    );
  });

  it("opens a block written on the line after its keyword", () => {
    const s = parseStatements(tokenize("url\n{\n path /x\n}\n"), "f");
    assert.equal(s.length, 1);
    assert.equal(s[0].block?.[0].keyword.text, "path");
  });

  it("names the line of an unclosed brace", () => {
    const errs = errorsOf(fixture("keepalived-unbalanced.conf"), "u.conf");
    assert.deepEqual(errs, ["u.conf:1:30: '{' is never closed"]);
  });

  it("refuses a stray closing brace", () => {
    assert.deepEqual(errorsOf("}\n"), ["k.conf:1:1: unexpected '}'"]);
  });
});

describe("keepalived.conf virtual servers", () => {
  const { model, warnings } = parseKeepalived(fixture("keepalived-full.conf"), "full.conf");
  const vs = model.virtualServers;

  it("warns for every section and keyword it does not implement, with its line", () => {
    // global_defs and vrrp_instance are read (config-vrrp.test.ts); their keywords here are known.
    assert.deepEqual(
      warnings.map((w) => `${w.line}: ${w.message}`),
      [
        "20: include /etc/keepalived/conf.d/*.conf refused: tsvs reads one file",
        "110: notify_up in virtual_server is not supported by tsvs (ignored)",
      ],
    );
  });

  it("reads the service keywords", () => {
    const web = vs[0];
    assert.equal(web.addr, ip("10.0.0.100"));
    assert.equal(web.port, 80);
    assert.equal(web.protocol, 6);
    assert.equal(web.delayLoop, 6);
    assert.equal(web.scheduler, "wrr");
    assert.equal(web.lbKind, "NAT");
    assert.equal(web.persistenceTimeout, 600);
    assert.equal(web.persistenceGranularity, ip("255.255.255.0"));
    assert.equal(web.quorum, 2);
    assert.equal(web.hysteresis, 1);
    assert.equal(web.alpha, true);
    assert.equal(web.omega, true);
    assert.deepEqual(web.sorryServer, { addr: ip("10.0.2.99"), port: 8080 });
    assert.equal(web.pos.line, 23);
  });

  it("reads real servers and the HTTP_GET / SSL_GET checkers", () => {
    const [r1, r2] = vs[0].realServers;
    assert.equal(r1.weight, 3);
    assert.equal(r1.inhibitOnFailure, true);
    assert.equal(r1.uThreshold, 1000);
    assert.equal(r1.lThreshold, 800);
    assert.deepEqual(r1.check, {
      type: "http",
      urls: [
        { path: "/health", digest: "", statusCodes: [200] },
        { path: "/index.html", digest: "9b3a0c85a887a256d6939da88aabd8cd", statusCodes: [] },
      ],
      virtualHost: "",
      connectTimeout: 3,
      connectPort: 8081,
      connectIp: 0,
      retry: 3,
      delayBeforeRetry: 2,
    });
    assert.equal(r2.check?.type, "https");
    assert.deepEqual(r2.check?.type === "https" && r2.check.urls[0].statusCodes, [200, 201, 202, 203, 204]);
    assert.equal(r2.check?.retry, 2);
  });

  it("reads TCP_CHECK, MISC_CHECK and a bare persistence_timeout (300 s)", () => {
    const tls = vs[1];
    assert.equal(tls.scheduler, "rr");
    assert.equal(tls.persistenceTimeout, 300);
    assert.deepEqual(tls.realServers[0].check, {
      type: "tcp",
      connectTimeout: 2,
      connectPort: 443,
      connectIp: 0,
      retry: 4,
      delayBeforeRetry: 3,
    });
    assert.deepEqual(tls.realServers[1].check, {
      type: "misc",
      path: "/usr/local/bin/check-tls.sh 10.0.1.13",
      timeout: 5,
      retry: 1,
      delayBeforeRetry: 1,
    });
  });

  it("reads UDP services with DNS_CHECK", () => {
    const dns = vs[2];
    assert.equal(dns.protocol, 17);
    assert.equal(dns.lbKind, "TUN");
    assert.equal(dns.realServers[0].check?.type, "dns");
    assert.ok(dns.realServers[0].check?.type === "dns" && dns.realServers[0].check.name === "example.net");
    assert.ok(dns.realServers[0].check?.type === "dns" && dns.realServers[0].check.qtype === "A");
  });

  it("expands fwmark services and virtual_server groups (address ranges and fwmarks)", () => {
    assert.equal(vs[3].fwmark, 7);
    assert.equal(vs[3].protocol, 0);
    assert.deepEqual(
      vs.slice(4).map((v) => [v.addr, v.port, v.fwmark, v.scheduler, v.lbKind]),
      [
        [ip("10.0.0.110"), 80, 0, "lc", "FULLNAT"],
        [ip("10.0.0.111"), 80, 0, "lc", "FULLNAT"],
        [0, 0, 9, "lc", "FULLNAT"],
      ],
    );
  });

  it("turns into the commands ipvsadm would run (DR/TUN take the service port)", () => {
    assert.deepEqual(toCommands(model).map(commandToIpvsadm), [
      "-A -t 10.0.0.100:80 -s wrr -p 600 -M 255.255.255.0",
      "-a -t 10.0.0.100:80 -r 10.0.1.11:8080 -m -w 3 -x 1000 -y 800",
      "-a -t 10.0.0.100:80 -r 10.0.1.12:8080 -m -w 1",
      "-A -t 10.0.0.100:443 -s rr -p 300",
      "-a -t 10.0.0.100:443 -r 10.0.1.11:443 -g -w 1",
      "-a -t 10.0.0.100:443 -r 10.0.1.13:443 -g -w 2",
      "-A -u 10.0.0.53:53 -s rr",
      "-a -u 10.0.0.53:53 -r 10.0.1.21:53 -i -w 1",
      "-A -f 7 -s sh",
      "-a -f 7 -r 10.0.1.31:0 -g -w 5",
      "-A -t 10.0.0.110:80 -s lc",
      "-a -t 10.0.0.110:80 -r 10.0.1.41:80 --fullnat -w 1",
      "-A -t 10.0.0.111:80 -s lc",
      "-a -t 10.0.0.111:80 -r 10.0.1.41:80 --fullnat -w 1",
      "-A -f 9 -s lc",
      "-a -f 9 -r 10.0.1.41:80 --fullnat -w 1",
    ]);
  });
});

describe("keepalived.conf errors name file:line:col", () => {
  it("reports every bad value at once", () => {
    assert.deepEqual(errorsOf(fixture("keepalived-errors.conf"), "bad.conf"), [
      'bad.conf:5:16: weight must be 0..65535, not "70000"',
      'bad.conf:7:17: "10.0.1.300" is not an IPv4 or IPv6 address',
    ]);
  });

  it("refuses an unknown scheduler", () => {
    const errs = errorsOf("virtual_server 10.0.0.1 80 {\n  lb_algo nope\n}\n");
    assert.equal(errs.length, 1);
    assert.match(errs[0], /^k\.conf:1:1: unknown scheduler "nope"/);
  });

  it("applies ipvsadm's rules: zero port needs persistence", () => {
    assert.deepEqual(errorsOf(fixture("keepalived-zero-port.conf"), "z.conf"), [
      "z.conf:1:1: Zero port specified for non-persistent service (ipvsadm -A -t 10.0.0.100:0 -s wlc)",
    ]);
  });

  for (const [src, want] of [
    [
      "virtual_server 10.0.0.1 80 {\n lb_kind XX\n}\n",
      'k.conf:2:10: lb_kind must be NAT, DR, TUN or FULLNAT, not "XX"',
    ],
    [
      "virtual_server 10.0.0.1 80 {\n protocol ICMP\n}\n",
      'k.conf:2:11: protocol must be TCP, UDP or SCTP, not "ICMP"',
    ],
    [
      "virtual_server group G {\n}\n",
      'k.conf:1:22: virtual_server_group "G" is not defined (define it before its use)',
    ],
    [
      "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n HTTP_GET {\n connect_timeout 3\n }\n }\n}\n",
      "k.conf:3:2: HTTP_GET needs at least one url { path ... }",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n MISC_CHECK {\n }\n }\n}\n",
      "k.conf:3:2: MISC_CHECK needs misc_path",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n real_server 10.0.0.2 80 {\n }\n}\n",
      "k.conf:4:2: real server 10.0.0.2:80 appears twice in TCP 10.0.0.1:80",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n}\nvirtual_server 10.0.0.1 80 {\n}\n",
      "k.conf:3:1: TCP 10.0.0.1:80 is already defined at line 1",
    ],
    ['virtual_server 10.0.0.1 80 {\n sorry_server "10.0.0.9\n}\n', "k.conf:2:15: unterminated string"],
  ] as const) {
    it(`refuses: ${want.slice(7)}`, () => assert.deepEqual(errorsOf(src), [want]));
  }
});

describe("keepalived.conf: what ipvsadm's rules would change is reported", () => {
  it("warns when DR/TUN drop a real server's port, and for a granularity without persistence", () => {
    const { warnings } = parseKeepalived(
      "virtual_server 10.0.0.1 80 {\n lb_kind DR\n persistence_granularity 24\n real_server 10.0.1.1 8080 {\n }\n}\n",
      "w.conf",
    );
    assert.deepEqual(
      warnings.map((w) => `${w.line}:${w.col}: ${w.message}`),
      [
        "1:1: persistence_granularity without persistence_timeout has no effect",
        "4:2: DR cannot map ports: real server port 8080 becomes the service port 80",
      ],
    );
  });
});

describe("keepalived.conf: the scripts of quorum and real-server changes", () => {
  it("reads quorum_up/quorum_down and notify_up/notify_down, the quoted form keeping its arguments", () => {
    const { model, warnings } = parseKeepalived(
      `virtual_server 10.0.0.1 80 {
 quorum 2
 quorum_up "/usr/local/bin/vs.sh up web"
 quorum_down /usr/local/bin/vs-down.sh
 real_server 10.0.1.1 80 {
  notify_up "/usr/local/bin/rs.sh up 10.0.1.1"
  notify_down /usr/local/bin/rs-down.sh
 }
 real_server 10.0.1.2 80 {
 }
}
`,
      "q.conf",
    );
    assert.deepEqual(warnings, []);
    const [vs] = model.virtualServers;
    assert.equal(vs.quorumUp, "/usr/local/bin/vs.sh up web");
    assert.equal(vs.quorumDown, "/usr/local/bin/vs-down.sh");
    const [r1, r2] = vs.realServers;
    assert.equal(r1.notifyUp, "/usr/local/bin/rs.sh up 10.0.1.1");
    assert.equal(r1.notifyDown, "/usr/local/bin/rs-down.sh");
    assert.equal(r2.notifyUp, undefined);
    assert.equal(r2.notifyDown, undefined);
  });

  it("says that keepalived's script user and group are not used", () => {
    const { warnings } = parseKeepalived(
      "virtual_server 10.0.0.1 80 {\n quorum_up /bin/up.sh nobody\n}\n",
      "u.conf",
    );
    assert.deepEqual(
      warnings.map((w) => `${w.line}:${w.col}`),
      ["2:23"],
    );
    assert.match(warnings[0].message, /quorum_up: "nobody" is keepalived's script user\/group/);
  });
});

describe("keepalived.conf: scheduler flags (lbflags_handler)", () => {
  it("sets flag-N and, after lb_algo names their scheduler, sh-/mh- flags, as ipvsadm -b", () => {
    const { model, warnings } = parseKeepalived(
      "virtual_server 10.0.0.1 80 {\n lb_algo mh\n mh-port\n mh-fallback\n flag-3\n}\n",
      "f.conf",
    );
    assert.deepEqual(warnings, []);
    assert.equal(model.virtualServers[0].schedFlags, 0x08 | 0x10 | 0x20);
    assert.deepEqual(toCommands(model).map(commandToIpvsadm), [
      "-A -t 10.0.0.1:80 -s mh -b mh-fallback,mh-port,flag-3",
    ]);
  });

  it("ignores an sh-/mh- flag before (or without) its scheduler, with keepalived's warning", () => {
    const { model, warnings } = parseKeepalived(
      "virtual_server 10.0.0.1 80 {\n sh-port\n lb_algo sh\n sh-fallback\n}\n",
      "f.conf",
    );
    assert.deepEqual(
      warnings.map((w) => `${w.line}:${w.col}: ${w.message}`),
      ["2:2: sh-port only applies to the sh scheduler (lb_algo sh before it): ignored"],
    );
    assert.deepEqual(toCommands(model).map(commandToIpvsadm), ["-A -t 10.0.0.1:80 -s sh -b sh-fallback"]);
  });
});
