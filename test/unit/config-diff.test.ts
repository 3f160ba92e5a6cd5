import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { diff } from "../../src/config/diff.js";
import { parseKeepalived } from "../../src/config/keepalived.js";
import { type ConfigModel, commandToIpvsadm, toCommands } from "../../src/config/model.js";
import { saved, tableCtl } from "../support/config.js";

const model = (src: string): ConfigModel => parseKeepalived(src, "t.conf").model;

const OLD = `
virtual_server 10.0.0.1 80 {
  lb_algo rr
  lb_kind NAT
  real_server 10.0.1.1 80 { weight 1 }
  real_server 10.0.1.2 80 { weight 2 }
  real_server 10.0.1.3 80 { weight 3 }
}
virtual_server 10.0.0.2 80 {
  lb_kind DR
  real_server 10.0.1.9 80 { }
}
virtual_server fwmark 3 {
  real_server 10.0.1.7 { }
}
`;

const NEW = `
virtual_server 10.0.0.1 80 {
  lb_algo wrr
  lb_kind NAT
  persistence_timeout 60
  real_server 10.0.1.1 80 { weight 1 }
  real_server 10.0.1.2 80 { weight 5 }
  real_server 10.0.1.4 80 { weight 1 }
}
virtual_server fwmark 3 {
  real_server 10.0.1.7 { }
}
virtual_server 10.0.0.3 80 {
  lb_kind NAT
  real_server 10.0.1.10 8080 { }
}
`;

describe("config toCommands", () => {
  it("gives the commands ipvsadm parses from the same rules", () => {
    for (const c of toCommands(model(OLD))) {
      const r = parseIpvsadm(commandToIpvsadm(c).split(" "));
      assert.equal(r.kind, "ctl");
      assert.deepEqual(r.kind === "ctl" && r.cmd, c);
    }
  });

  it("builds a table the control core accepts", () => {
    assert.equal(
      saved(toCommands(model(OLD))),
      [
        "-A -t 10.0.0.1:80 -s rr",
        "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1",
        "-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 2",
        "-a -t 10.0.0.1:80 -r 10.0.1.3:80 -m -w 3",
        "-A -t 10.0.0.2:80 -s wlc",
        "-a -t 10.0.0.2:80 -r 10.0.1.9:80 -g -w 1",
        "-A -f 3 -s wlc",
        "-a -f 3 -r 10.0.1.7:0 -g -w 1",
        "",
      ].join("\n"),
    );
  });
});

describe("config diff (reload)", () => {
  it("edits kept services and destinations, adds and deletes only what changed", () => {
    assert.deepEqual(diff(model(OLD), model(NEW)).map(commandToIpvsadm), [
      "-D -t 10.0.0.2:80",
      "-E -t 10.0.0.1:80 -s wrr -p 60",
      "-d -t 10.0.0.1:80 -r 10.0.1.3:80",
      "-e -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 5",
      "-a -t 10.0.0.1:80 -r 10.0.1.4:80 -m -w 1",
      "-A -t 10.0.0.3:80 -s wlc",
      "-a -t 10.0.0.3:80 -r 10.0.1.10:8080 -m -w 1",
    ]);
  });

  it("is empty for an unchanged configuration", () => {
    assert.deepEqual(diff(model(OLD), model(OLD)), []);
  });

  it("leads to the same table as building the new configuration from scratch", () => {
    const ctl = tableCtl();
    ctl.applyAll(toCommands(model(OLD)));
    const kept = ctl.services().find((s) => s.port === 80 && s.fwmark === 0 && s.addr === 0x0a000001);
    assert.equal(saved(diff(model(OLD), model(NEW)), ctl), saved(toCommands(model(NEW))));
    // The service object survived: its connections and templates are not dropped.
    assert.equal(
      ctl.services().find((s) => s.port === 80 && s.fwmark === 0 && s.addr === 0x0a000001),
      kept,
    );
  });

  it("switches a destination's forwarding method with an edit", () => {
    const a = model("virtual_server 10.0.0.1 80 {\n lb_kind NAT\n real_server 10.0.1.1 80 { }\n}\n");
    const b = model("virtual_server 10.0.0.1 80 {\n lb_kind DR\n real_server 10.0.1.1 80 { }\n}\n");
    assert.deepEqual(diff(a, b).map(commandToIpvsadm), ["-e -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 1"]);
  });
});
