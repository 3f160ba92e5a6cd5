import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseKeepalived } from "../../src/config/keepalived.js";
import { type ConfigModel, commandToIpvsadm } from "../../src/config/model.js";
import { type HealthEvent, HealthState, type Step, VirtualServerHealth } from "../../src/health/state.js";

const model = (src: string): ConfigModel => parseKeepalived(src, "t.conf").model;
const vsOf = (src: string) => new VirtualServerHealth(model(src).virtualServers[0]);
const cmds = (s: Step) => s.commands.map(commandToIpvsadm);
const kinds = (evs: readonly HealthEvent[]) => evs.map((e) => ("rs" in e ? `${e.kind} ${e.rs}` : e.kind));

function farm(opts: { body?: string; servers?: number; rsBody?: string; tcp?: string } = {}): string {
  let s = `virtual_server 10.0.0.1 80 {\n lb_kind NAT\n delay_loop 10\n${opts.body ?? ""}\n`;
  for (let i = 1; i <= (opts.servers ?? 2); i++)
    s += ` real_server 10.0.1.${i} 80 {\n${opts.rsBody ?? ""}\n  TCP_CHECK {\n${opts.tcp ?? "retry 2\ndelay_before_retry 3"}\n  }\n }\n`;
  return `${s}}\n`;
}

describe("health state: one real server", () => {
  it("retries `retry` times delay_before_retry apart, then removes the server", () => {
    const vs = vsOf(farm());
    assert.deepEqual(cmds(vs.start()), [
      "-A -t 10.0.0.1:80 -s wlc",
      "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1",
      "-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 1",
    ]);
    const steps = [
      vs.result(0, false, "ECONNREFUSED"),
      vs.result(0, false, "ECONNREFUSED"),
      vs.result(0, false, "ECONNREFUSED"),
    ];
    assert.deepEqual(
      steps.map((s) => [kinds(s.events), cmds(s), s.nextCheckMs]),
      [
        [["rs-retry 10.0.1.1:80"], [], 3000],
        [["rs-retry 10.0.1.1:80"], [], 3000],
        [["rs-down 10.0.1.1:80"], ["-d -t 10.0.0.1:80 -r 10.0.1.1:80"], 10000],
      ],
    );
    assert.deepEqual(steps[1].events[0], {
      kind: "rs-retry",
      vs: "TCP 10.0.0.1:80",
      rs: "10.0.1.1:80",
      attempt: 2,
      retries: 2,
      detail: "ECONNREFUSED",
    });
    // Down: checked every delay_loop, no retries; one success brings it back.
    const still = vs.result(0, false, "x");
    assert.deepEqual([still.events, cmds(still), still.nextCheckMs], [[], [], 10000]);
    const up = vs.result(0, true, "connected");
    assert.deepEqual(
      [kinds(up.events), cmds(up), up.nextCheckMs],
      [["rs-up 10.0.1.1:80"], ["-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1"], 10000],
    );
  });

  it("a success between failures resets the retry count", () => {
    const vs = vsOf(farm({ tcp: "retry 1" }));
    vs.start();
    assert.deepEqual(kinds(vs.result(0, false, "").events), ["rs-retry 10.0.1.1:80"]);
    assert.deepEqual(vs.result(0, true, "").events, []);
    assert.deepEqual(kinds(vs.result(0, false, "").events), ["rs-retry 10.0.1.1:80"]);
    assert.deepEqual(kinds(vs.result(0, false, "").events), ["rs-down 10.0.1.1:80"]);
  });

  it("retry 0 removes the server at the first failure", () => {
    const vs = vsOf(farm({ tcp: "retry 0" }));
    vs.start();
    assert.deepEqual(cmds(vs.result(1, false, "")), ["-d -t 10.0.0.1:80 -r 10.0.1.2:80"]);
  });

  it("inhibit_on_failure sets weight 0 instead of removing, and restores the weight", () => {
    const vs = vsOf(farm({ rsBody: "weight 7\ninhibit_on_failure", tcp: "retry 0" }));
    vs.start();
    assert.deepEqual(cmds(vs.result(0, false, "")), ["-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 0"]);
    assert.deepEqual(cmds(vs.result(0, true, "")), ["-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 7"]);
  });

  it("alpha: checked servers start down and join on their first success", () => {
    const vs = vsOf(farm({ body: "alpha\nsorry_server 10.0.2.1 80", tcp: "retry 0" }));
    const s = vs.start();
    assert.deepEqual(kinds(s.events), ["quorum-lost", "sorry-server-on 10.0.2.1:80"]);
    assert.deepEqual(cmds(s), ["-A -t 10.0.0.1:80 -s wlc", "-a -t 10.0.0.1:80 -r 10.0.2.1:80 -m -w 1"]);
    const up = vs.result(1, true, "");
    assert.deepEqual(kinds(up.events), [
      "rs-up 10.0.1.2:80",
      "quorum-gained",
      "sorry-server-off 10.0.2.1:80",
    ]);
    assert.deepEqual(cmds(up), [
      "-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 1",
      "-d -t 10.0.0.1:80 -r 10.0.2.1:80",
    ]);
  });

  it("alpha with inhibit_on_failure: servers start at weight 0", () => {
    const vs = vsOf(farm({ body: "alpha", rsBody: "inhibit_on_failure", servers: 1 }));
    assert.deepEqual(cmds(vs.start()), [
      "-A -t 10.0.0.1:80 -s wlc",
      "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 0",
    ]);
  });

  it("servers without a checker are always up and never checked", () => {
    const vs = vsOf("virtual_server 10.0.0.1 80 {\n alpha\n real_server 10.0.1.1 80 {\n }\n}\n");
    assert.deepEqual(cmds(vs.start()), [
      "-A -t 10.0.0.1:80 -s wlc",
      "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 1",
    ]);
    assert.equal(vs.firstCheckMs(0), -1);
  });
});

describe("health state: quorum, hysteresis and the sorry server", () => {
  const src = farm({
    body: "quorum 3\nhysteresis 1\nsorry_server 10.0.2.1 8080",
    servers: 4,
    tcp: "retry 0",
  });

  it("loses quorum below quorum - hysteresis and regains it at quorum + hysteresis", () => {
    const vs = vsOf(src);
    vs.start();
    const seq = [
      vs.result(0, false, ""), // sum 3
      vs.result(1, false, ""), // sum 2: not below 3 - 1
      vs.result(2, false, ""), // sum 1: lost
      vs.result(0, true, ""), // sum 2
      vs.result(1, true, ""), // sum 3: not yet 3 + 1
      vs.result(2, true, ""), // sum 4: regained
    ];
    assert.deepEqual(
      seq.map((s) => [kinds(s.events), cmds(s)]),
      [
        [["rs-down 10.0.1.1:80"], ["-d -t 10.0.0.1:80 -r 10.0.1.1:80"]],
        [["rs-down 10.0.1.2:80"], ["-d -t 10.0.0.1:80 -r 10.0.1.2:80"]],
        [
          ["rs-down 10.0.1.3:80", "quorum-lost", "sorry-server-on 10.0.2.1:8080"],
          // Sorry server in before the last live server out.
          [
            "-a -t 10.0.0.1:80 -r 10.0.2.1:8080 -m -w 1",
            "-d -t 10.0.0.1:80 -r 10.0.1.3:80",
            "-d -t 10.0.0.1:80 -r 10.0.1.4:80",
          ],
        ],
        [["rs-up 10.0.1.1:80"], []],
        [["rs-up 10.0.1.2:80"], []],
        [
          ["rs-up 10.0.1.3:80", "quorum-gained", "sorry-server-off 10.0.2.1:8080"],
          [
            "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1",
            "-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 1",
            "-a -t 10.0.0.1:80 -r 10.0.1.3:80 -m -w 1",
            "-a -t 10.0.0.1:80 -r 10.0.1.4:80 -m -w 1",
            "-d -t 10.0.0.1:80 -r 10.0.2.1:8080",
          ],
        ],
      ],
    );
    assert.deepEqual(seq[2].events[1], {
      kind: "quorum-lost",
      vs: "TCP 10.0.0.1:80",
      weightSum: 1,
      quorum: 3,
    });
  });

  it("puts the sorry server in when no server is up (default quorum 1)", () => {
    const vs = vsOf(farm({ body: "sorry_server 10.0.2.1 80", tcp: "retry 0" }));
    vs.start();
    assert.deepEqual(cmds(vs.result(0, false, "")), ["-d -t 10.0.0.1:80 -r 10.0.1.1:80"]);
    assert.deepEqual(cmds(vs.result(1, false, "")), [
      "-a -t 10.0.0.1:80 -r 10.0.2.1:80 -m -w 1",
      "-d -t 10.0.0.1:80 -r 10.0.1.2:80",
    ]);
  });

  it("without a sorry server, losing quorum is only reported", () => {
    const vs = vsOf(farm({ tcp: "retry 0" }));
    vs.start();
    vs.result(0, false, "");
    const s = vs.result(1, false, "");
    assert.deepEqual(kinds(s.events), ["rs-down 10.0.1.2:80", "quorum-lost"]);
    assert.deepEqual(cmds(s), ["-d -t 10.0.0.1:80 -r 10.0.1.2:80"]);
  });

  it("with inhibit_on_failure, live servers go to weight 0 while the sorry server serves", () => {
    const vs = vsOf(
      farm({ body: "quorum 2\nsorry_server 10.0.2.1 80", rsBody: "inhibit_on_failure", tcp: "retry 0" }),
    );
    vs.start();
    assert.deepEqual(cmds(vs.result(0, false, "")), [
      "-a -t 10.0.0.1:80 -r 10.0.2.1:80 -m -w 1",
      "-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 0",
      "-e -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 0",
    ]);
  });

  it("omega reports live servers and the quorum down at shutdown; without it nothing", () => {
    const withOmega = vsOf(farm({ body: "omega", tcp: "retry 0" }));
    withOmega.start();
    withOmega.result(0, false, "");
    assert.deepEqual(kinds(withOmega.stop().events), ["rs-down 10.0.1.2:80", "quorum-lost"]);
    const without = vsOf(farm());
    without.start();
    assert.deepEqual(without.stop(), { commands: [], events: [] });
  });
});

describe("health state: reload", () => {
  it("keeps the health of unchanged servers and emits only the difference", () => {
    const a = new HealthState(model(farm({ servers: 3, tcp: "retry 0" })));
    a.start();
    a.virtualServers[0].result(1, false, ""); // 10.0.1.2 down, out of the table
    const next = farm({ servers: 3, tcp: "retry 0" })
      .replace("lb_kind NAT", "lb_kind NAT\n lb_algo rr")
      .replace(" real_server 10.0.1.3 80 {\n", " real_server 10.0.1.3 80 {\nweight 4\n");
    const { state, step } = a.reload(
      model(`${next}virtual_server 10.0.0.2 80 {\n real_server 10.0.1.9 80 {\n }\n}\n`),
    );
    assert.deepEqual(cmds(step), [
      "-E -t 10.0.0.1:80 -s rr",
      "-e -t 10.0.0.1:80 -r 10.0.1.3:80 -m -w 4",
      "-A -t 10.0.0.2:80 -s wlc",
      "-a -t 10.0.0.2:80 -r 10.0.1.9:80 -g -w 1",
    ]);
    assert.equal(state.virtualServers[0].servers[1].alive, false);
    // The server that was down comes back into the new table on success.
    assert.deepEqual(cmds(state.virtualServers[0].result(1, true, "")), [
      "-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 1",
    ]);
    const gone = state.reload(model(farm({ servers: 1 })));
    assert.deepEqual(cmds(gone.step), [
      "-D -t 10.0.0.2:80",
      "-E -t 10.0.0.1:80 -s wlc",
      "-d -t 10.0.0.1:80 -r 10.0.1.2:80",
      "-d -t 10.0.0.1:80 -r 10.0.1.3:80",
    ]);
  });

  it("a changed checker starts the server afresh", () => {
    const a = new HealthState(model(farm({ servers: 1, tcp: "retry 0" })));
    a.start();
    a.virtualServers[0].result(0, false, "");
    const { step } = a.reload(model(farm({ servers: 1, tcp: "retry 0\nconnect_port 81" })));
    assert.deepEqual(cmds(step), ["-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1"]);
  });
});

describe("health state: FULLNAT local addresses (DPVS's local_address_group)", () => {
  const fnat = (addrs: string): string =>
    `local_address_group lg {\n ${addrs}\n}\n${farm({ body: " laddr_group_name lg" }).replace("lb_kind NAT", "lb_kind FNAT")}`;

  it("installs the group's addresses with the service, and a reload adds and removes only the difference", () => {
    const a = new HealthState(model(fnat("10.0.2.1\n 10.0.2.2")));
    const first = cmds(a.start());
    assert.deepEqual(
      first.filter((c) => c.startsWith("-P")),
      ["-P -t 10.0.0.1:80 -z 10.0.2.1", "-P -t 10.0.0.1:80 -z 10.0.2.2"],
    );
    assert.ok(first.indexOf("-P -t 10.0.0.1:80 -z 10.0.2.1") > first.indexOf("-A -t 10.0.0.1:80 -s wlc"));
    const { step } = a.reload(model(fnat("10.0.2.2\n 10.0.2.3")));
    assert.deepEqual(cmds(step), ["-P -t 10.0.0.1:80 -z 10.0.2.3", "-Q -t 10.0.0.1:80 -z 10.0.2.1"]);
  });
});
