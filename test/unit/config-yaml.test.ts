import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseKeepalived } from "../../src/config/keepalived.js";
import { commandToIpvsadm, toCommands } from "../../src/config/model.js";
import { parseYamlConfig } from "../../src/config/yaml.js";
import { configErrors, fixture } from "../support/config.js";

const errorsOf = (src: string, file = "c.yaml"): string[] => configErrors(() => parseYamlConfig(src, file));

describe("tsvs YAML configuration", () => {
  it("means the same as the equivalent keepalived.conf", () => {
    const y = parseYamlConfig(fixture("tsvs-full.yaml"), "full.yaml");
    assert.deepEqual(y.warnings, []);
    const k = parseKeepalived(fixture("keepalived-full.conf"), "full.conf");
    const web = (m: typeof y.model) => ({
      ...m.virtualServers[0],
      pos: null,
      realServers: m.virtualServers[0].realServers.map((r) => ({ ...r, pos: null })),
    });
    const yw = web(y.model);
    const kw = web(k.model);
    // The keepalived fixture's second server uses a status range and retry 2 as well, but with other timeouts.
    assert.deepEqual(yw.realServers[0], kw.realServers[0]);
    assert.deepEqual({ ...yw, realServers: [] }, { ...kw, realServers: [] });
  });

  it("turns into ipvsadm commands", () => {
    const { model } = parseYamlConfig(fixture("tsvs-full.yaml"), "full.yaml");
    assert.deepEqual(toCommands(model).map(commandToIpvsadm), [
      "-A -t 10.0.0.100:80 -s wrr -p 600 -M 255.255.255.0",
      "-a -t 10.0.0.100:80 -r 10.0.1.11:8080 -m -w 3 -x 1000 -y 800",
      "-a -t 10.0.0.100:80 -r 10.0.1.12:8080 -m -w 1",
      "-A -u 10.0.0.53:53 -s rr",
      "-a -u 10.0.0.53:53 -r 10.0.1.21:53 -i -w 1",
      "-A -f 7 -s sh",
      "-a -f 7 -r 10.0.1.31:0 -g -w 5",
      "-a -f 7 -r 10.0.1.32:0 -g -w 1",
    ]);
    const rs = model.virtualServers[2].realServers;
    assert.deepEqual(rs[0].check, {
      type: "misc",
      path: "/usr/local/bin/check.sh 10.0.1.31",
      timeout: 5,
      retry: 1,
      delayBeforeRetry: 1,
    });
    assert.deepEqual(rs[1].check, {
      type: "tcp",
      connectTimeout: 5,
      connectPort: 22,
      connectIp: 0,
      retry: 1,
      delayBeforeRetry: 1,
    });
    assert.deepEqual(
      model.virtualServers[0].realServers[1].check?.type === "https" &&
        model.virtualServers[0].realServers[1].check.urls,
      [{ path: "/ok", digest: "", statusCodes: [200, 204] }],
    );
  });

  it("names file, line and column of every error", () => {
    assert.deepEqual(errorsOf(fixture("tsvs-errors.yaml"), "bad.yaml"), [
      "bad.yaml:4:14: lb_kind must be NAT, DR, TUN or FULLNAT",
      "bad.yaml:8:17: weight must be 0..65535",
      "bad.yaml:9:9: address is required",
      'bad.yaml:10:9: unknown key "wieght"',
      "bad.yaml:13:17: urls needs at least one entry",
      "bad.yaml:14:5: a fwmark virtual server has no port or protocol",
    ]);
  });

  for (const [name, src, want] of [
    ["a YAML syntax error", "virtual_servers:\n  - address: [10.0.0.1\n", /^c\.yaml:\d+:\d+: /],
    ["a missing virtual_servers", "{}\n", /^c\.yaml:1:1: virtual_servers is required$/],
    ["an unknown top-level key", "virtual_servers: []\nvrrpp: 1\n", /^c\.yaml:2:1: unknown key "vrrpp"$/],
    [
      "a bad address",
      "virtual_servers:\n  - address: 10.0.0.256\n    port: 80\n",
      /^c\.yaml:2:14: address must be an IPv4 or IPv6 address/,
    ],
    [
      "an unknown check type",
      "virtual_servers:\n  - fwmark: 1\n    real_servers:\n      - address: 10.0.0.1\n        check: { type: ping }\n",
      /^c\.yaml:5:24: check type must be/,
    ],
    [
      "an unknown scheduler",
      "virtual_servers:\n  - fwmark: 1\n    scheduler: xx\n",
      /^c\.yaml:2:5: unknown scheduler "xx"/,
    ],
    [
      "neither address nor fwmark",
      "virtual_servers:\n  - port: 80\n",
      /^c\.yaml:2:5: a virtual server has either address/,
    ],
    [
      "a zero port without persistence (ipvsadm's rule)",
      "virtual_servers:\n  - address: 10.0.0.1\n",
      /^c\.yaml:2:5: Zero port specified for non-persistent service/,
    ],
    [
      "a duplicate key",
      "virtual_servers: []\nvirtual_servers: []\n",
      /^c\.yaml:2:1: Map keys must be unique/,
    ],
  ] as const) {
    it(`refuses ${name}`, () => {
      const errs = errorsOf(src);
      assert.equal(errs.length, 1, errs.join("\n"));
      assert.match(errs[0], want);
    });
  }
});

describe("tsvs YAML: the scripts of quorum and real-server changes", () => {
  it("reads quorum_up/quorum_down and a real server's notify_up/notify_down", () => {
    const { model } = parseYamlConfig(
      `virtual_servers:
  - address: 10.0.0.1
    port: 80
    quorum_up: "/usr/local/bin/vs.sh up"
    quorum_down: /usr/local/bin/vs.sh down
    real_servers:
      - { address: 10.0.1.1, port: 80, notify_up: /bin/up.sh, notify_down: "/bin/down.sh 'a b'" }
`,
      "s.yaml",
    );
    const [vs] = model.virtualServers;
    assert.equal(vs.quorumUp, "/usr/local/bin/vs.sh up");
    assert.equal(vs.quorumDown, "/usr/local/bin/vs.sh down");
    assert.equal(vs.realServers[0].notifyUp, "/bin/up.sh");
    assert.equal(vs.realServers[0].notifyDown, "/bin/down.sh 'a b'");
  });

  it("refuses a script that is not a command line", () => {
    const errs = errorsOf("virtual_servers:\n  - address: 10.0.0.1\n    port: 80\n    quorum_up: 5\n");
    assert.deepEqual(errs, ["c.yaml:4:16: quorum_up must be a command line"]);
  });
});

describe("tsvs YAML: scheduler flags", () => {
  it("scheduler_flags takes ipvsadm -b's names", () => {
    const { model } = parseYamlConfig(
      "virtual_servers:\n  - address: 10.0.0.1\n    port: 80\n    scheduler: mh\n    scheduler_flags: [mh-port]\n",
      "f.yaml",
    );
    assert.deepEqual(toCommands(model).map(commandToIpvsadm), ["-A -t 10.0.0.1:80 -s mh -b mh-port"]);
  });

  it("refuses a flag of another scheduler with ipvsadm's message, and an unknown name", () => {
    assert.deepEqual(
      errorsOf(
        "virtual_servers:\n  - address: 10.0.0.1\n    port: 80\n    scheduler: rr\n    scheduler_flags: [sh-port]\n",
      ),
      ["c.yaml:5:23: incompatible scheduler flag `sh-port'"],
    );
    assert.match(
      errorsOf("virtual_servers:\n  - address: 10.0.0.1\n    port: 80\n    scheduler_flags: [mh-prot]\n")[0],
      /^c\.yaml:4:23: scheduler_flags must be a list of flag-1, flag-2, flag-3, sh-fallback/,
    );
  });
});
