// DPVS's --proxy-protocol in tsvs's ipvsadm (iqiyi/dpvs tools/ipvsadm/ipvsadm.c): taken by -A/-E
// (proxy_protocol_type: disable|v1|v2|v1-insecure|v2-insecure, any case), listed by
// print_service_entry as " pp%s" (proxy_protocol_str) after the scheduler's other words, and written
// by tsvs's -S as `--proxy-protocol NAME` (DPVS's -S leaves it out) so that -S | -R round-trips.
// Where DPVS takes an unknown word as "disable", tsvs says it is wrong; UDP services are refused by
// the control core (docs/daemon.md "FULLNAT: the client's address").

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type IpvsadmResult, runIpvsadm } from "../../src/cli/ipvsadm/run.js";
import { ControlApi } from "../../src/control/api.js";
import { Engine } from "../../src/core/engine.js";

function director(): { run(args: string, stdin?: string): IpvsadmResult } {
  const engine = new Engine({ interfaces: [], send: () => {} });
  const api = new ControlApi(engine, () => 0);
  const backend = { apply: (c: never) => api.apply(c), snapshot: (w: boolean) => api.snapshot(w) };
  return { run: (args, stdin = "") => runIpvsadm(args === "" ? [] : args.split(" "), backend, stdin) };
}

const HEAD =
  "IP Virtual Server version 1.2.1 (size=4096)\n" +
  "Prot LocalAddress:Port Scheduler Flags\n" +
  "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";

describe("ipvsadm --proxy-protocol", () => {
  it("lists ' pp<name>' after the service's flags, and -S writes it back", () => {
    const d = director();
    for (const c of [
      "-A -t 10.0.0.100:80 -s rr --proxy-protocol v2",
      "-a -t 10.0.0.100:80 -r 10.0.1.11:8080 --fullnat",
      "-A -t 10.0.0.100:443 -s wlc -p 60 --proxy-protocol V1",
      "-A -t [2001:db8::100]:80 -s rr --proxy-protocol v1",
      "-A -f 7 -s rr --proxy-protocol v2",
      "-A -t 10.0.0.100:8080 -s rr --proxy-protocol disable",
      "-A -t 10.0.0.100:81 -s rr --proxy-protocol v2-insecure",
    ])
      assert.equal(d.run(c).code, 0, c);
    const list = d.run("-Ln");
    assert.equal(list.code, 0);
    assert.equal(
      list.stdout,
      `${HEAD}` +
        "TCP  10.0.0.100:80 rr ppv2\n" +
        // "  -> %-28s %-7s %-6d %-10u %-10u"
        `  -> ${"10.0.1.11:8080".padEnd(28)} FullNat 1      0          0         \n` +
        "TCP  10.0.0.100:81 rr ppv2-insecure\n" +
        "TCP  10.0.0.100:443 wlc persistent 60 ppv1\n" +
        "TCP  10.0.0.100:8080 rr\n" +
        "TCP  [2001:db8::100]:80 rr ppv1\n" +
        "FWM  7 rr ppv2\n",
    );
    const save = d.run("-Sn").stdout;
    assert.match(save, /^-A -t 10\.0\.0\.100:80 -s rr --proxy-protocol v2$/m);
    assert.match(save, /^-A -t 10\.0\.0\.100:443 -s wlc -p 60 --proxy-protocol v1$/m);
    assert.match(save, /^-A -t 10\.0\.0\.100:8080 -s rr$/m);
    assert.match(save, /^-A -f 7 -s rr --proxy-protocol v2$/m);
    const again = director();
    assert.equal(again.run("-R", save).code, 0);
    assert.equal(again.run("-Ln").stdout, list.stdout, "-S | -R round trip");
  });

  it("-E without the option turns it off (ipvsadm's -E sets every service parameter)", () => {
    const d = director();
    d.run("-A -t 10.0.0.100:80 -s rr --proxy-protocol v2");
    d.run("-E -t 10.0.0.100:80 -s rr");
    assert.equal(d.run("-Ln").stdout, `${HEAD}TCP  10.0.0.100:80 rr\n`);
    d.run("-E -t 10.0.0.100:80 -s rr --proxy-protocol v1");
    assert.equal(d.run("-Ln").stdout, `${HEAD}TCP  10.0.0.100:80 rr ppv1\n`);
  });

  it("refuses what tsvs does not do, nothing applied", () => {
    const d = director();
    const bad: [string, RegExp][] = [
      ["-A -t 10.0.0.100:80 --proxy-protocol v3", /illegal proxy-protocol specified: v3/],
      ["-A -t 10.0.0.100:80 --proxy-protocol", /requires an argument|missing argument|argument/],
      ["-A -u 10.0.0.100:53 --proxy-protocol v2", /proxy protocol is for TCP services/],
      [
        "-a -t 10.0.0.100:80 -r 10.0.1.11 --proxy-protocol v2",
        /Illegal 'proxy-protocol' option with the 'add-server' command/,
      ],
      [
        "-A -t 10.0.0.100:80 --proxy-protocol v1 --proxy-protocol v2",
        /multiple 'proxy-protocol' options specified/,
      ],
    ];
    for (const [args, msg] of bad) {
      const r = d.run(args);
      assert.notEqual(r.code, 0, args);
      assert.match(r.stderr, msg, args);
    }
    assert.equal(d.run("-Ln").stdout, HEAD, "nothing applied");
  });
});
