import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { runScenario } from "../../src/cli/sim/main.js";
import { parseScenario } from "../../src/cli/sim/scenario.js";

// The shipped scenarios are the README's demo: every expectation in them must hold, and a
// run must print the same text every time (the simulation is deterministic).
const root = fileURLToPath(new URL("../../../", import.meta.url));
const dir = join(root, "examples");
const files = readdirSync(dir).filter((n) => n.endsWith(".tsvs"));

describe("tsvs sim: the example scenarios", () => {
  it("ships scenarios for the four methods, persistence and fwmark", () => {
    for (const n of ["nat", "dr", "tun", "fullnat", "persistence", "fwmark"])
      assert.ok(files.includes(`${n}.tsvs`), n);
  });
  for (const f of files) {
    it(`${f}: every expectation holds, deterministically`, () => {
      const scn = parseScenario(readFileSync(join(dir, f), "utf8"), f);
      const a = runScenario(scn);
      assert.equal(a.failures, 0, a.output);
      assert.match(a.output, /: ok\n/);
      const b = runScenario(scn);
      assert.equal(b.output, a.output);
    });
  }
});

describe("tsvs sim: failures are reported", () => {
  const run = (text: string) => runScenario(parseScenario(text, "t.tsvs"));

  it("a wrong distribution fails with what was found", () => {
    const r = run(
      "ipvsadm -A -t 198.18.0.100:80 -s rr\nipvsadm -a -t 198.18.0.100:80 -r 198.18.1.11 -m\nhttp 2 198.18.0.100:80\nexpect distribution r2=2\n",
    );
    assert.equal(r.failures, 1);
    assert.match(r.output, /expect distribution r2=2: FAILED, got r1=2/);
  });

  it("a failing ipvsadm command stops the scenario with ipvsadm's message", () => {
    const r = run("ipvsadm -a -t 198.18.0.100:80 -r 198.18.1.11 -m\nhttp 1 198.18.0.100:80\n");
    assert.equal(r.failures, 1);
    assert.match(r.output, /Service not defined/);
    assert.match(r.output, /t\.tsvs:1: ipvsadm failed; scenario stopped/);
    assert.doesNotMatch(r.output, /^http /m);
  });

  it("an expected ipvsadm error lets the scenario go on", () => {
    const r = run("ipvsadm -D -t 198.18.0.100:80\nexpect result error\nping 198.18.0.1\nexpect result ok\n");
    assert.equal(r.failures, 0, r.output);
  });

  it("traffic to a VIP without a service is refused by the director", () => {
    const r = run("http 1 198.18.0.100:80\nexpect result error\n");
    assert.equal(r.failures, 0, r.output);
  });
});
