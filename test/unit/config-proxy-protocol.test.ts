// DPVS's `proxy_protocol` keyword of a virtual_server (keepalived check_parser.c
// proxy_protocol_handler) and YAML's proxy_protocol: the service's --proxy-protocol, refused with the
// line when tsvs cannot do it (UDP, an unknown word); a reload that changes it
// edits the service; the health checks of FULLNAT real servers send the check's PROXY header first.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sameService } from "../../src/config/diff.js";
import { parseKeepalived } from "../../src/config/keepalived.js";
import { commandToIpvsadm, toCommands } from "../../src/config/model.js";
import { parseYamlConfig } from "../../src/config/yaml.js";
import { checkProxyHeader } from "../../src/health/runner.js";
import { configErrors } from "../support/config.js";

const ka = (pp: string, proto = "TCP", kind = "FNAT"): string => `
virtual_server 198.18.0.100 80 {
    lb_algo rr
    lb_kind ${kind}
    protocol ${proto}
    proxy_protocol ${pp}
    real_server 198.18.1.11 8080 {
        weight 1
        HTTP_GET {
            url {
              path /
            }
        }
    }
}
`;

describe("proxy_protocol in keepalived.conf and YAML", () => {
  it("keepalived.conf: the service's --proxy-protocol", () => {
    const { model } = parseKeepalived(ka("v2"), "k.conf");
    assert.deepEqual(toCommands(model).map(commandToIpvsadm), [
      "-A -t 198.18.0.100:80 -s rr --proxy-protocol v2",
      "-a -t 198.18.0.100:80 -r 198.18.1.11:8080 --fullnat -w 1",
    ]);
    // check_data.h PROXY_PROTOCOL_CHECK_V2: the signature, version 2 LOCAL, no address.
    const local = Uint8Array.of(
      0x0d,
      0x0a,
      0x0d,
      0x0a,
      0x00,
      0x0d,
      0x0a,
      0x51,
      0x55,
      0x49,
      0x54,
      0x0a,
      0x20,
      0,
      0,
      0,
    );
    assert.deepEqual(checkProxyHeader(model.virtualServers[0]), local);
    const v1 = parseKeepalived(ka("v1"), "k.conf").model.virtualServers[0];
    assert.equal(new TextDecoder().decode(checkProxyHeader(v1) ?? new Uint8Array(0)), "PROXY UNKNOWN\r\n");
    // A NAT real server never gets the protocol from the director: its check sends none.
    assert.equal(
      checkProxyHeader(parseKeepalived(ka("v2", "TCP", "NAT"), "k.conf").model.virtualServers[0]),
      null,
    );
    assert.equal(checkProxyHeader(parseKeepalived(ka("disable"), "k.conf").model.virtualServers[0]), null);
  });

  it("refused with the line: UDP, an unknown word; the -insecure modes taken", () => {
    const errs = (src: string): string =>
      configErrors(() => toCommands(parseKeepalived(src, "k.conf").model)).join("\n");
    assert.match(errs(ka("v2", "UDP")), /^k\.conf:2:\d+: proxy protocol is for TCP services/);
    assert.deepEqual(
      toCommands(parseKeepalived(ka("v2-insecure"), "k.conf").model).map(commandToIpvsadm)[0],
      "-A -t 198.18.0.100:80 -s rr --proxy-protocol v2-insecure",
    );
    assert.match(errs(ka("v3")), /invalid proxy protocol "v3"/);
  });

  it("YAML: proxy_protocol", () => {
    const src = [
      "virtual_servers:",
      "  - address: 198.18.0.100",
      "    port: 80",
      "    lb_kind: FULLNAT",
      "    proxy_protocol: v1",
      "    real_servers:",
      "      - address: 198.18.1.11",
      "        port: 8080",
      "",
    ].join("\n");
    const { model } = parseYamlConfig(src, "c.yaml");
    assert.equal(commandToIpvsadm(toCommands(model)[0]), "-A -t 198.18.0.100:80 -s wlc --proxy-protocol v1");
    assert.match(
      configErrors(() => toCommands(parseYamlConfig(src.replace("v1", "v2-secure"), "c.yaml").model)).join(
        "\n",
      ),
      /c\.yaml:2:\d+: invalid proxy protocol "v2-secure"/,
    );
  });

  it("a reload that changes it edits the service", () => {
    const a = toCommands(parseKeepalived(ka("v1"), "k.conf").model)[0];
    const b = toCommands(parseKeepalived(ka("v2"), "k.conf").model)[0];
    const c = toCommands(parseKeepalived(ka("disable"), "k.conf").model)[0];
    assert.ok(a.op === "add-service" && b.op === "add-service" && c.op === "add-service");
    assert.equal(sameService(a.svc, b.svc), false);
    assert.equal(sameService(a.svc, a.svc), true);
    assert.equal(sameService(c.svc, { ...c.svc, proxyProtocol: undefined }), true);
  });
});
