// IPv6 in the configuration files (issue 14): keepalived.conf and tsvs YAML virtual servers, real,
// sorry and group servers with IPv6 addresses as keepalived takes them, fwmark services with a
// family, prefix-length granularity, errors at file:line:col, the ipvsadm lines `tsvs config check`
// prints (which ipvsadm parses back into the same commands), and reloads that compare IPv6 keys as
// the table does (one address, however it is written).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { diff } from "../../src/config/diff.js";
import { parseKeepalived } from "../../src/config/keepalived.js";
import { type ConfigModel, commandToIpvsadm, toCommands } from "../../src/config/model.js";
import { parseYamlConfig } from "../../src/config/yaml.js";
import { destSpec, inetEndpoint, SpecError, serviceSpec } from "../../src/control/spec.js";
import { formatIPv4 } from "../../src/core/addr.js";
import { Fwd } from "../../src/core/dest.js";
import { configErrors, fixture, saved, tableCtl } from "../support/config.js";

const ka = (src: string): ConfigModel => parseKeepalived(src, "k.conf").model;

const errorsOf = configErrors;

describe("control/spec: IPv6 services and destinations", () => {
  it("takes text of either family, canonicalises IPv6, defaults the granularity to /128", () => {
    const svc = serviceSpec({ protocol: 6, addr: "2001:DB8:0::100", port: 80 });
    assert.deepEqual(
      [svc.af, svc.addr, svc.addr6, svc.netmask, svc.schedName],
      [6, 0, "2001:db8::100", 128, "wlc"],
    );
    const v4 = serviceSpec({ protocol: 6, addr: "198.18.0.100", port: 80 });
    assert.deepEqual([v4.af, v4.addr, v4.addr6, v4.netmask], [4, 0xc6120064, undefined, 0xffffffff]);
    assert.equal(serviceSpec({ protocol: 6, addr: 0xc6120064, port: 80 }).addr, 0xc6120064);
    const fwm = serviceSpec({
      protocol: 0,
      addr: 0,
      port: 0,
      fwmark: 5,
      af: 6,
      persistence: 60,
      netmask: 48,
    });
    assert.deepEqual([fwm.af, fwm.fwmark, fwm.addr6, fwm.netmask], [6, 5, undefined, 48]);
    const d = destSpec(
      { af: 6, protocol: 6, addr: 0, addr6: "2001:db8::100", port: 80, fwmark: 0 },
      { addr: "2001:db8:1:0::11", fwd: Fwd.Route, port: 8080 },
    );
    assert.deepEqual([d.af, d.addr, d.addr6, d.port], [6, 0, "2001:db8:1::11", 80]);
  });

  for (const [what, make, message] of [
    ["two '::'", () => serviceSpec({ protocol: 6, addr: "1::2::3", port: 80 }), /illegal virtual server/],
    [
      "prefix length 129",
      () => serviceSpec({ protocol: 6, addr: "::1", port: 80, netmask: 129 }),
      /ipv6 netmask/,
    ],
    [
      "prefix length 0",
      () => serviceSpec({ protocol: 0, addr: 0, port: 0, fwmark: 1, af: 6, netmask: 0 }),
      /ipv6 netmask/,
    ],
    [
      "a family that is not the address's",
      () => serviceSpec({ protocol: 6, addr: "::1", port: 80, af: 4 }),
      /not IPv4/,
    ],
    [
      "a bad real server",
      () =>
        destSpec({ af: 6, protocol: 6, addr: 0, addr6: "::1", port: 80, fwmark: 0 }, { addr: "::g", fwd: 0 }),
      /illegal real server/,
    ],
  ] as const)
    it(`refuses ${what}`, () =>
      assert.throws(make, (e) => e instanceof SpecError && message.test(e.message)));

  it("reads endpoints as ipvsadm writes them", () => {
    for (const [text, want] of [
      ["10.0.0.1", { af: 4, addr: 0x0a000001, port: null }],
      ["10.0.0.1:80", { af: 4, addr: 0x0a000001, port: 80 }],
      ["2001:db8::1", { af: 6, addr6: "2001:db8::1", port: null }],
      ["[2001:DB8::1]:80", { af: 6, addr6: "2001:db8::1", port: 80 }],
      ["[2001:db8::1]", { af: 6, addr6: "2001:db8::1", port: null }],
      ["[10.0.0.1]:80", null],
      ["[2001:db8::1]:65536", null],
      ["[2001:db8::1", null],
      ["2001:db8::1]:80", null],
      ["10.0.0.1:", null],
    ] as const) {
      const e = inetEndpoint(text);
      assert.deepEqual(
        e === null
          ? null
          : { af: e.a.af, ...(e.a.af === 4 ? { addr: e.a.addr } : { addr6: e.a.addr6 }), port: e.port },
        want,
        text,
      );
    }
  });
});

describe("keepalived.conf with IPv6", () => {
  const k = parseKeepalived(fixture("keepalived-ipv6.conf"), "v6.conf");

  it("reads every IPv6 form of the fixture", () => {
    assert.deepEqual(k.warnings, []);
    const vs = k.model.virtualServers;
    assert.deepEqual(
      vs.map((v) => [v.af, v.addr6 ?? v.addr, v.port, v.fwmark, v.persistenceGranularity]),
      [
        [6, "2001:db8::100", 80, 0, 64],
        [6, 0, 0, 5, 128],
        [6, 0, 0, 6, 128],
        [6, "2001:db8::5e", 53, 0, 128],
        [6, "2001:db8::5f", 53, 0, 128],
        [6, 0, 0, 7, 128],
        [4, 0xc6120064, 80, 0, 0xffffffff],
      ],
    );
    const web = vs[0];
    assert.deepEqual(web.sorryServer, { addr: 0, addr6: "2001:db8:1::99", port: 8080 });
    assert.deepEqual(
      web.realServers.map((r) => [r.addr, r.addr6, r.port]),
      [
        [0, "2001:db8:1::11", 8080],
        [0, "2001:db8:1::12", 8080],
      ],
    );
    assert.equal(
      web.realServers[0].check?.type === "http" && web.realServers[0].check.bindTo,
      "2001:db8:ff::1",
    );
    const tcp = web.realServers[1].check;
    assert.deepEqual(tcp?.type === "tcp" && [tcp.connectIp, tcp.connectIp6, tcp.connectPort], [
      0,
      "2001:db8:2::12",
      9000,
    ]);
  });

  it("prints ipvsadm lines that ipvsadm parses back into the same commands", () => {
    const cmds = toCommands(k.model);
    assert.deepEqual(cmds.slice(0, 5).map(commandToIpvsadm), [
      "-A -t [2001:db8::100]:80 -s wrr -p 600 -M 64",
      "-a -t [2001:db8::100]:80 -r [2001:db8:1::11]:8080 -m -w 3",
      "-a -t [2001:db8::100]:80 -r [2001:db8:1::12]:8080 -m -w 1",
      "-A -f 5 -6 -s rr",
      "-a -f 5 -6 -r [2001:db8:1::21]:80 -g -w 1",
    ]);
    for (const c of cmds) {
      const r = parseIpvsadm(commandToIpvsadm(c).split(" "));
      assert.equal(r.kind, "ctl", commandToIpvsadm(c));
      assert.deepEqual(r.kind === "ctl" && r.cmd, c, commandToIpvsadm(c));
    }
  });

  it("builds a table the control core accepts", () => {
    assert.equal(
      saved(toCommands(k.model)),
      [
        // ipvsadm's order: the kernel's hash buckets, IPv6 VIPs by their fold (ip_vs_svc_hashkey).
        "-A -t 198.18.0.100:80 -s wlc",
        "-a -t 198.18.0.100:80 -r 198.18.1.11:80 -m -w 1",
        "-A -t [2001:db8::100]:80 -s wrr -p 600 -M 64",
        "-a -t [2001:db8::100]:80 -r [2001:db8:1::11]:8080 -m -w 3",
        "-a -t [2001:db8::100]:80 -r [2001:db8:1::12]:8080 -m -w 1",
        "-A -u [2001:db8::5e]:53 -s sh",
        "-a -u [2001:db8::5e]:53 -r [2001:db8:1::41]:53 -g -w 2",
        "-A -u [2001:db8::5f]:53 -s sh",
        "-a -u [2001:db8::5f]:53 -r [2001:db8:1::41]:53 -g -w 2",
        "-A -f 5 -6 -s rr",
        "-a -f 5 -6 -r [2001:db8:1::21]:80 -g -w 1",
        "-A -f 6 -6 -s wlc -p 60",
        "-a -f 6 -6 -r [2001:db8:1::31]:80 -g -w 1",
        "-A -f 7 -6 -s sh",
        "-a -f 7 -6 -r [2001:db8:1::41]:53 -g -w 2",
        "",
      ].join("\n"),
    );
  });

  it("gives a fwmark service its family as keepalived does", () => {
    const fam = (body: string): number => ka(`virtual_server fwmark 1 {\n${body}\n}\n`).virtualServers[0].af;
    for (const [body, af] of [
      ["lb_kind DR\n real_server 2001:db8::1 80 { }", 6],
      ["lb_kind DR\n real_server 10.0.0.1 80 { }", 4],
      ["lb_kind DR\n sorry_server 2001:db8::9 80\n real_server 2001:db8::1 80 { }", 6],
      ["ip_family inet6\n lb_kind TUN\n real_server 10.0.0.1 80 { }", 6],
      ["ip_family inet\n lb_kind DR", 4],
      // Tunnelled real servers give theirs when they agree, else IPv4 (vs_end_handler).
      ["lb_kind TUN\n real_server 2001:db8::1 80 { }\n real_server 2001:db8::2 80 { }", 6],
      ["lb_kind TUN\n real_server 2001:db8::1 80 { }\n real_server 10.0.0.2 80 { }", 4],
      ["lb_kind FULLNAT\n real_server 10.0.0.1 80 { }\n real_server 10.0.0.2 80 { }", 4],
      // A granularity without a '.' is an IPv6 prefix length (pgr_handler)...
      ["lb_kind TUN\n persistence_timeout 60\n persistence_granularity 64", 6],
      // ...unless the real servers have already said IPv4 (tsvs's "N" prefix lengths for IPv4).
      ["lb_kind DR\n persistence_timeout 60\n persistence_granularity 24\n real_server 10.0.0.1 80 { }", 4],
      ["lb_kind DR", 4],
    ] as const)
      assert.equal(fam(body), af, body);
  });

  it("names bad IPv6 values at file:line:col, every one at once", () => {
    const src = [
      "virtual_server 2001:db8::1::2 80 {", // 1
      "}",
      "virtual_server 2001:db8::100 80 {", // 3
      "  lb_kind NAT",
      "  persistence_timeout 60",
      "  persistence_granularity 255.255.255.0", // 6
      "  ip_family inet", // 7
      "  sorry_server 10.0.0.99 80", // 8
      "  real_server 10.0.0.1 80 { }", // 9
      "  real_server 2001:db8:1::1 80 {", // 10
      "    TCP_CHECK {",
      "      connect_ip fe80::1", // 12
      "    }",
      "  }",
      "  real_server 2001:db8:1::2 80 {", // 15
      "    TCP_CHECK { bindto 10.0.0.5 }",
      "  }",
      "  real_server 2001:db8:1::3 80 {", // 18
      "    TCP_CHECK { connect_ip 2001:db8:1::g }", // 19
      "  }",
      "}",
      "virtual_server 2001:db8::101 80 {", // 22
      "  persistence_timeout 60",
      "  persistence_granularity 129", // 24
      "  ip_family inet7", // 25
      "}",
      "virtual_server_group G {", // 27
      "  2001:db8::20-1f 80", // 28
      "  fwmark 9 inet7", // 29
      "  2001:db8::30-10000 80", // 30
      "}",
      "local_address_group L {",
      "  2001:db8::9-1ff", // 33
      "}",
    ].join("\n");
    assert.deepEqual(
      errorsOf(() => parseKeepalived(src, "bad.conf")),
      [
        // local_address_group first: virtual servers may name one defined after them.
        'bad.conf:33:3: bad address range "2001:db8::9-1ff": an IPv6 range runs the last byte, LAST in hex up to fe (2001:db8::10-1f)',
        'bad.conf:1:16: "2001:db8::1::2" is not an IPv4 or IPv6 address',
        'bad.conf:19:28: "2001:db8:1::g" is not an IPv4 or IPv6 address',
        "bad.conf:7:13: ip_family inet conflicts with the virtual server's address",
        'bad.conf:6:27: persistence_granularity of an IPv6 service is a prefix length 1..128, not "255.255.255.0"',
        "bad.conf:25:13: unknown address family inet7 (inet or inet6)",
        'bad.conf:24:27: persistence_granularity of an IPv6 service is a prefix length 1..128, not "129"',
        'bad.conf:28:3: bad address range "2001:db8::20-1f"',
        'bad.conf:29:12: fwmark family must be inet or inet6, not "inet7"',
        'bad.conf:30:3: bad address range "2001:db8::30-10000"',
      ],
    );
    // The family rules come once the syntax is right (validateModel).
    const fam = [
      "virtual_server 2001:db8::100 80 {",
      "  lb_kind NAT",
      "  sorry_server 10.0.0.99 80",
      "  real_server 10.0.0.1 80 { }",
      "  real_server 2001:db8:1::1 80 {",
      "    TCP_CHECK {",
      "      connect_ip fe80::1",
      "    }",
      "  }",
      "  real_server 2001:db8:1::2 80 {",
      "    HTTP_GET { url { path / }\n bindto 10.0.0.5 }",
      "  }",
      "}",
    ].join("\n");
    assert.deepEqual(
      errorsOf(() => parseKeepalived(fam, "fam.conf")),
      [
        "fam.conf:4:3: real server 10.0.0.1 is IPv4, TCP [2001:db8::100]:80 IPv6: only TUN and FULLNAT cross families",
        "fam.conf:5:3: the checker's link-local address fe80::1 needs bind_if (not in tsvs)",
        "fam.conf:10:3: the checker's bindto 10.0.0.5 is not of the family of 2001:db8:1::2, where it connects",
        "fam.conf:1:1: sorry server 10.0.0.99 is IPv4, TCP [2001:db8::100]:80 IPv6: only TUN and FULLNAT cross families",
      ],
    );
  });

  it("lets TUN and FULLNAT cross families (the kernel's rule, DPVS's NAT64; the control core decides)", () => {
    for (const [kind, sw] of [
      ["TUN", "-i"],
      ["FULLNAT", "--fullnat"],
    ] as const) {
      const m = ka(`virtual_server 2001:db8::100 80 {\n lb_kind ${kind}\n real_server 10.0.0.1 80 { }\n}\n`);
      assert.deepEqual(toCommands(m).map(commandToIpvsadm), [
        "-A -t [2001:db8::100]:80 -s wlc",
        `-a -t [2001:db8::100]:80 -r 10.0.0.1:80 ${sw} -w 1`,
      ]);
    }
  });

  it("refuses FULLNAT from an IPv4 service to an IPv6 server (NAT64 crosses one way only, as the control core)", () => {
    assert.deepEqual(
      errorsOf(() =>
        parseKeepalived(
          "virtual_server 10.0.0.100 80 {\n lb_kind FULLNAT\n real_server 2001:db8:1::1 80 { }\n}\n",
          "46.conf",
        ),
      ),
      [
        "46.conf:3:2: real server 2001:db8:1::1 is IPv6, TCP 10.0.0.100:80 IPv4: FULLNAT crosses families only from an IPv6 service to IPv4 servers (NAT64)",
      ],
    );
  });
});

describe("tsvs YAML with IPv6", () => {
  it("means the same as the equivalent keepalived.conf", () => {
    const y = parseYamlConfig(fixture("tsvs-ipv6.yaml"), "v6.yaml");
    assert.deepEqual(y.warnings, []);
    const k = parseKeepalived(fixture("keepalived-ipv6.conf"), "v6.conf").model;
    const strip = (m: ConfigModel) =>
      m.virtualServers.map((v) => ({
        ...v,
        pos: null,
        realServers: v.realServers.map((r) => ({ ...r, pos: null })),
      }));
    const kv = strip(k);
    // The YAML fixture has no group: the keepalived group's three services left out.
    assert.deepEqual(strip(y.model), [...kv.slice(0, 3), kv[6]]);
  });

  it("names bad IPv6 values at file:line:col", () => {
    const src = [
      "virtual_servers:",
      "  - address: 2001:db8::1::2", // 2
      "    port: 80",
      "  - address: 2001:db8::100", // 4
      "    port: 80",
      "    ip_family: inet", // 6
      "    persistence_timeout: 60",
      "    persistence_granularity: 255.255.255.0", // 8
      '    sorry_server: "[10.0.0.99]:80"', // 9
      "    local_addresses: [ 2001:db8::5-6 ]", // 10
      "    real_servers:",
      "      - address: 2001:db8:1::1", // 12
      "        check: { type: tcp, bindto: 10.0.0.1 }",
      "  - fwmark: 5", // 14
      "    ip_family: inet7", // 15
      "  - fwmark: 6",
      "    ip_family: inet6",
      "    persistence_timeout: 60",
      "    persistence_granularity: 129", // 19
    ].join("\n");
    assert.deepEqual(
      errorsOf(() => parseYamlConfig(src, "c.yaml")),
      [
        "c.yaml:2:14: address must be an IPv4 or IPv6 address",
        "c.yaml:6:16: ip_family inet conflicts with the address 2001:db8::100",
        "c.yaml:8:30: persistence_granularity of an IPv6 service is a prefix length 1..128",
        "c.yaml:9:19: sorry_server must be ADDRESS, ADDRESS:PORT or [IPv6]:PORT",
        "c.yaml:10:24: local_addresses entry must be an IPv4 or IPv6 address",
        "c.yaml:15:16: ip_family must be inet or inet6",
        "c.yaml:19:30: persistence_granularity of an IPv6 service is a prefix length 1..128",
      ],
    );
    const fam = [
      "virtual_servers:",
      "  - address: 2001:db8::100",
      "    port: 80",
      "    real_servers:",
      "      - address: 2001:db8:1::1", // 5
      "        check: { type: tcp, bindto: 10.0.0.1 }",
      "      - address: 10.0.0.2", // 7
    ].join("\n");
    assert.deepEqual(
      errorsOf(() => parseYamlConfig(fam, "f.yaml")),
      [
        "f.yaml:5:9: the checker's bindto 10.0.0.1 is not of the family of 2001:db8:1::1, where it connects",
        "f.yaml:7:9: real server 10.0.0.2 is IPv4, TCP [2001:db8::100]:80 IPv6: only TUN and FULLNAT cross families",
      ],
    );
  });
});

describe("config diff (reload) with IPv6", () => {
  const OLD = `
virtual_server 2001:db8::100 80 {
  lb_algo rr
  lb_kind NAT
  real_server 2001:db8:1::1 80 { weight 1 }
  real_server 2001:db8:1::2 80 { weight 2 }
  real_server 2001:db8:1::3 80 { weight 3 }
}
virtual_server fwmark 5 {
  ip_family inet6
  lb_kind DR
  real_server 2001:db8:1::7 80 { }
}
virtual_server fwmark 5 {
  lb_kind DR
  real_server 10.0.1.7 80 { }
}
`;
  // The same service and real servers written another way, one weight changed, one server gone.
  const NEW = `
virtual_server 2001:0DB8:0:0::100 80 {
  lb_algo rr
  lb_kind NAT
  persistence_timeout 60
  persistence_granularity 48
  real_server 2001:db8:1:0::1 80 { weight 1 }
  real_server 2001:DB8:1::2 80 { weight 5 }
  real_server 2001:db8:1::4 80 { weight 1 }
}
virtual_server fwmark 5 {
  lb_kind DR
  real_server 10.0.1.7 80 { }
}
`;

  it("keeps what is the same however it is written, and tells fwmark 5 IPv4 from IPv6", () => {
    assert.deepEqual(diff(ka(OLD), ka(NEW)).map(commandToIpvsadm), [
      "-D -f 5 -6",
      "-E -t [2001:db8::100]:80 -s rr -p 60 -M 48",
      "-d -t [2001:db8::100]:80 -r [2001:db8:1::3]:80",
      "-e -t [2001:db8::100]:80 -r [2001:db8:1::2]:80 -m -w 5",
      "-a -t [2001:db8::100]:80 -r [2001:db8:1::4]:80 -m -w 1",
    ]);
    assert.deepEqual(diff(ka(NEW), ka(NEW)), []);
  });

  it("leads to the same table as building the new configuration from scratch", () => {
    const ctl = tableCtl();
    ctl.applyAll(toCommands(ka(OLD)));
    const kept = ctl.services().find((s) => s.af === 6 && s.fwmark === 0);
    assert.equal(saved(diff(ka(OLD), ka(NEW)), ctl), saved(toCommands(ka(NEW))));
    assert.equal(
      ctl.services().find((s) => s.af === 6 && s.fwmark === 0),
      kept,
      "the service object survived: its connections and templates are not dropped",
    );
  });
});

describe("IPv6 local addresses: DPVS's local_address_group and YAML's local_addresses", () => {
  // An IPv6 FULLNAT service with an IPv6 real server (IPv6 local addresses) and an IPv4 one (NAT64:
  // IPv4 local addresses), as DPVS's keepalived and ipvsadm -P take them.
  const conf = (group: string, vip = "2001:db8::100") =>
    [
      `virtual_server ${vip} 80 {`, // 1
      "  lb_kind FNAT",
      "  laddr_group_name L", // 3
      "  real_server 2001:db8:1::11 80 { }", // 4
      "  real_server 10.0.1.11 80 { }",
      "}",
      "local_address_group L {", // 7
      ...group.split("\n").map((l) => `  ${l}`), // 8...
      "}",
    ].join("\n");

  it("become -P commands of either family, which the control core takes and ipvsadm parses back", () => {
    const m = ka(conf("2001:db8:ff::10-12 dpdk0\n10.0.2.1\n2001:DB8:FF:0::20"));
    const cmds = toCommands(m);
    assert.deepEqual(cmds.filter((c) => c.op === "add-laddr").map(commandToIpvsadm), [
      "-P -t [2001:db8::100]:80 -z 2001:db8:ff::10",
      "-P -t [2001:db8::100]:80 -z 2001:db8:ff::11",
      "-P -t [2001:db8::100]:80 -z 2001:db8:ff::12",
      "-P -t [2001:db8::100]:80 -z 10.0.2.1",
      "-P -t [2001:db8::100]:80 -z 2001:db8:ff::20",
    ]);
    for (const c of cmds.filter((x) => x.op === "add-laddr")) {
      const r = parseIpvsadm(commandToIpvsadm(c).split(" "));
      assert.deepEqual(r.kind === "ctl" && r.cmd, c, commandToIpvsadm(c));
    }
    const ctl = tableCtl();
    ctl.applyAll(cmds);
    const [svc] = ctl.services();
    assert.deepEqual(svc.laddrs6, [
      "2001:db8:ff::10",
      "2001:db8:ff::11",
      "2001:db8:ff::12",
      "2001:db8:ff::20",
    ]);
    assert.deepEqual(svc.laddrs, [0x0a000201]);
  });

  it("ranges run the last byte as DPVS's keepalived walks them (table)", () => {
    const cases: [string, string[] | string][] = [
      ["2001:db8::10-1f", Array.from({ length: 16 }, (_, i) => `2001:db8::${(0x10 + i).toString(16)}`)],
      ["2001:db8::1:10-12", ["2001:db8::1:10", "2001:db8::1:11", "2001:db8::1:12"]],
      ["2001:db8::a-A", ["2001:db8::a"]],
      ["2001:db8::5:fe-fe", ["2001:db8::5:fe"]],
      ["::ffff:10.0.0.1-3", ["::ffff:10.0.0.1", "::ffff:10.0.0.2", "::ffff:10.0.0.3"]],
      ["10.0.2.250-254", ["10.0.2.250", "10.0.2.251", "10.0.2.252", "10.0.2.253", "10.0.2.254"]],
      // The last byte, not the last group: ::110 is byte 0x10, and 0x11f is past it.
      [
        "2001:db8::110-11f",
        'bad address range "2001:db8::110-11f": an IPv6 range runs the last byte, LAST in hex up to fe (2001:db8::10-1f)',
      ],
      [
        "2001:db8::10-ff",
        'bad address range "2001:db8::10-ff": an IPv6 range runs the last byte, LAST in hex up to fe (2001:db8::10-1f)',
      ],
      [
        "2001:db8::10-f",
        'bad address range "2001:db8::10-f": an IPv6 range runs the last byte, LAST in hex up to fe (2001:db8::10-1f)',
      ],
      [
        "2001:db8::10-1g",
        'bad address range "2001:db8::10-1g": an IPv6 range runs the last byte, LAST in hex up to fe (2001:db8::10-1f)',
      ],
      ["10.0.2.250-255", 'bad address range "10.0.2.250-255": the last octet runs up to LAST, at most 254'],
      ["2001:db8::1::2", '"2001:db8::1::2" is not an address or an address range'],
      ["2001:db8::/64", '"2001:db8::/64" is not an address or an address range'],
    ];
    for (const [entry, want] of cases) {
      if (typeof want === "string")
        assert.deepEqual(
          errorsOf(() => ka(conf(entry))),
          [`k.conf:8:3: ${want}`],
          entry,
        );
      else
        assert.deepEqual(
          ka(conf(entry)).virtualServers[0].localAddresses?.map((a) => a.addr6 ?? formatIPv4(a.addr)),
          want,
          entry,
        );
    }
  });

  it("refuses what the service cannot use, at the line that wrote it", () => {
    const src = [
      "virtual_server 10.0.0.1 80 {", // 1
      "  lb_kind FNAT",
      "  laddr_group_name L",
      "  real_server 10.0.1.11 80 { }",
      "}",
      "virtual_server 2001:db8::100 80 {", // 6
      "  lb_kind FNAT",
      "  laddr_group_name M",
      "  real_server 2001:db8:1::11 80 { }",
      "}",
      "local_address_group L {",
      "  10.0.2.1",
      "  2001:db8:ff::1", // 13
      "}",
      "local_address_group M {",
      "  2001:db8:ff::1",
      "  2001:DB8:FF:0:0::1", // 17
      "  fe80::1 eth0", // 18
      "  ff02::1", // 19
      "  :: ", // 20
      "}",
    ].join("\n");
    assert.deepEqual(
      errorsOf(() => ka(src)),
      [
        "k.conf:13:3: local address 2001:db8:ff::1 is IPv6, TCP 10.0.0.1:80 IPv4: an IPv4 service takes IPv4 local addresses (an IPv6 service takes both: IPv6 ones for IPv6 real servers, IPv4 ones for NAT64)",
        "k.conf:17:3: local address 2001:db8:ff::1 appears twice in TCP [2001:db8::100]:80",
        "k.conf:18:3: local address fe80::1 of TCP [2001:db8::100]:80 is not a unicast address (link-local)",
        "k.conf:19:3: local address ff02::1 of TCP [2001:db8::100]:80 is not a unicast address",
        "k.conf:20:3: local address :: of TCP [2001:db8::100]:80 is not a unicast address",
      ],
    );
  });

  it("warns of IPv6 FULLNAT real servers that no IPv6 local address serves", () => {
    const { warnings } = parseKeepalived(conf("10.0.2.1"), "k.conf");
    assert.deepEqual(
      warnings.map((w) => `${w.line}:${w.col}: ${w.message}`),
      [
        "4:3: FULLNAT to the IPv6 real server 2001:db8:1::11 takes an IPv6 local address of the service (the --lip pool is IPv4): TCP [2001:db8::100]:80 has none, its connections to this server fail",
      ],
    );
    assert.deepEqual(parseKeepalived(conf("2001:db8:ff::1"), "k.conf").warnings, []);
  });

  it("YAML: the same addresses, the same rules, each entry named by its line", () => {
    const y = (laddrs: string, address = "2001:db8::100") =>
      [
        "virtual_servers:",
        `  - address: ${address}`,
        "    port: 80",
        "    lb_kind: FULLNAT",
        `    local_addresses: [${laddrs}]`, // 5
        "    real_servers:",
        "      - { address: 2001:db8:1::11, port: 80 }",
        "      - { address: 10.0.1.11, port: 80 }",
      ].join("\n");
    const k = ka(conf("2001:db8:ff::10-11\n10.0.2.1")).virtualServers[0].localAddresses;
    const m = parseYamlConfig(y("2001:db8:ff::10, 2001:db8:ff::11, 10.0.2.1"), "c.yaml").model;
    const strip = (l: typeof k) => l?.map(({ addr, addr6 }) => ({ addr, addr6 }));
    assert.deepEqual(strip(m.virtualServers[0].localAddresses), strip(k));
    assert.deepEqual(
      m.virtualServers[0].localAddresses?.map((a) => `${a.pos.line}:${a.pos.col}`),
      ["5:23", "5:40", "5:57"],
    );
    assert.deepEqual(
      errorsOf(() => parseYamlConfig(y("2001:db8:ff::10", "10.0.0.1"), "c.yaml")),
      [
        "c.yaml:7:9: real server 2001:db8:1::11 is IPv6, TCP 10.0.0.1:80 IPv4: FULLNAT crosses families only from an IPv6 service to IPv4 servers (NAT64)",
        "c.yaml:5:23: local address 2001:db8:ff::10 is IPv6, TCP 10.0.0.1:80 IPv4: an IPv4 service takes IPv4 local addresses (an IPv6 service takes both: IPv6 ones for IPv6 real servers, IPv4 ones for NAT64)",
      ],
    );
  });

  it("a reload deletes and adds only the IPv6 local addresses that changed, however they are written", () => {
    const a = ka(conf("2001:db8:ff::10\n2001:db8:ff::11\n10.0.2.1"));
    const b = ka(conf("2001:DB8:FF::11\n2001:db8:ff::12\n10.0.2.1"));
    assert.deepEqual(diff(a, b).map(commandToIpvsadm), [
      "-Q -t [2001:db8::100]:80 -z 2001:db8:ff::10",
      "-P -t [2001:db8::100]:80 -z 2001:db8:ff::12",
    ]);
    assert.deepEqual(diff(a, ka(conf("2001:db8:ff:0::10\n2001:db8:ff::11\n10.0.2.1"))), []);
    // The difference applies to the table the first configuration built.
    const ctl = tableCtl();
    ctl.applyAll(toCommands(a));
    ctl.applyAll(diff(a, b));
    assert.deepEqual(ctl.services()[0].laddrs6, ["2001:db8:ff::11", "2001:db8:ff::12"]);
  });
});
