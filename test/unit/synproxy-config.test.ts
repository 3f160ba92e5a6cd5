// The SYN proxy's switch everywhere a service is described: DPVS keepalived's `syn_proxy` in a
// virtual_server, YAML's `syn_proxy: true`, ipvsadm -S | -R, and the reload that flips it
// (an edit of the service); refused with the position for UDP and for DR/TUN.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatSave } from "../../src/cli/ipvsadm/format.js";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { sameService } from "../../src/config/diff.js";
import { parseKeepalived } from "../../src/config/keepalived.js";
import { commandToIpvsadm, toCommands } from "../../src/config/model.js";
import { parseYamlConfig } from "../../src/config/yaml.js";
import { tableSnapshot } from "../../src/control/snapshot.js";
import { SVC_F_SYNPROXY } from "../../src/core/service.js";
import { configErrors } from "../support/config.js";
import { Director, IP } from "../support/frames.js";

const ka = (kind: string, proto = "TCP", sp = "syn_proxy"): string => `
virtual_server 198.18.0.100 80 {
    lb_algo rr
    lb_kind ${kind}
    protocol ${proto}
    ${sp}
    real_server 198.18.1.11 8080 {
        weight 1
    }
}
`;

describe("syn_proxy in keepalived.conf and YAML", () => {
  it("keepalived.conf: the service's --synproxy, NAT and FULLNAT", () => {
    assert.deepEqual(toCommands(parseKeepalived(ka("NAT"), "k.conf").model).map(commandToIpvsadm), [
      "-A -t 198.18.0.100:80 -s rr --synproxy enable",
      "-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -m -w 1",
    ]);
    const f = toCommands(parseKeepalived(ka("FNAT"), "k.conf").model)[0];
    assert.ok(f.op === "add-service");
    assert.equal(f.svc.flags & SVC_F_SYNPROXY, SVC_F_SYNPROXY);
  });

  it("refused with the keyword's line: UDP, DR, TUN", () => {
    const errs = (src: string): string =>
      configErrors(() => toCommands(parseKeepalived(src, "k.conf").model)).join("\n");
    assert.match(errs(ka("NAT", "UDP")), /^k\.conf:6:5: syn_proxy is for TCP virtual servers only/);
    assert.match(
      errs(ka("DR")),
      /^k\.conf:6:5: syn_proxy needs lb_kind NAT or FULLNAT \(DR replies bypass the director\)/,
    );
    assert.match(errs(ka("TUN")), /TUN replies bypass the director/);
  });

  it("YAML: syn_proxy: true, refused for DR", () => {
    const src = (kind: string) =>
      [
        "virtual_servers:",
        "  - address: 198.18.0.100",
        "    port: 80",
        `    lb_kind: ${kind}`,
        "    syn_proxy: true",
        "    real_servers:",
        "      - address: 198.18.1.11",
        "        port: 8080",
        "",
      ].join("\n");
    const { model } = parseYamlConfig(src("NAT"), "c.yaml");
    assert.equal(commandToIpvsadm(toCommands(model)[0]), "-A -t 198.18.0.100:80 -s wlc --synproxy enable");
    assert.match(
      configErrors(() => parseYamlConfig(src("DR"), "c.yaml")).join("\n"),
      /c\.yaml:5:\d+: syn_proxy needs lb_kind NAT or FULLNAT \(DR replies bypass the director\)/,
    );
  });

  it("a reload that switches it edits the service", () => {
    const on = toCommands(parseKeepalived(ka("NAT"), "k.conf").model)[0];
    const off = toCommands(parseKeepalived(ka("NAT", "TCP", ""), "k.conf").model)[0];
    assert.ok(on.op === "add-service" && off.op === "add-service");
    assert.equal(sameService(on.svc, off.svc), false);
  });
});

describe("ipvsadm -S | -R keeps the switch", () => {
  it("a saved synproxy service restores as one", () => {
    const a = new Director();
    a.ipvsadm(`-A -t ${IP.vip}:80 -s rr -j enable`);
    a.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`);
    a.ipvsadm(`-A -t ${IP.vip}:81 -s rr`);
    const saved = formatSave(tableSnapshot(a.engine, a.now, false), true);
    assert.match(saved, /^-A -t 198\.18\.0\.100:80 -s rr --synproxy enable$/m);
    assert.match(saved, /^-A -t 198\.18\.0\.100:81 -s rr$/m);
    const b = new Director();
    for (const line of saved.trim().split("\n")) {
      const r = parseIpvsadm(line.split(" "));
      assert.equal(r.kind, "ctl");
      if (r.kind === "ctl") b.engine.apply(r.cmd);
    }
    assert.equal(formatSave(tableSnapshot(b.engine, b.now, false), true), saved);
  });
});
