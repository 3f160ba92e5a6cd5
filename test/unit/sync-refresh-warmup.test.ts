// The BGP warm-up's setting: `bgp: { warmup: SECONDS }` bounds how long a director whose sync
// daemons start together waits for its peers' tables before it announces (daemon/sync.ts);
// absent, the default derived from the refresh's bound applies.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BGP_DEFAULTS } from "../../src/config/model.js";
import { parseBgpYaml } from "../../src/config/yaml.js";
import { configErrors } from "../support/config.js";

const BGP = `bgp:
  local_as: 65011
  neighbors: [{ address: 198.18.2.1, as: 65000 }]
`;

describe("bgp.warmup", () => {
  it("is read in seconds, and absent leaves the default (10 s) to the daemon", () => {
    assert.equal(parseBgpYaml(`${BGP}  warmup: 25\n`, "b.yaml").bgp.warmup, 25);
    assert.equal(parseBgpYaml(`${BGP}  warmup: 0\n`, "b.yaml").bgp.warmup, 0);
    assert.equal(parseBgpYaml(BGP, "b.yaml").bgp.warmup, undefined);
    assert.equal(BGP_DEFAULTS.warmup, 10);
  });

  it("refuses what is not a whole number of seconds up to an hour", () => {
    for (const v of ["-1", "3601", "1.5", "soon"]) {
      const errs = configErrors(() => parseBgpYaml(`${BGP}  warmup: ${v}\n`, "b.yaml"));
      assert.ok(
        errs.some((e) => e.includes("warmup")),
        `${v}: ${errs.join("; ")}`,
      );
    }
  });
});
