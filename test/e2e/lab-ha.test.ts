// `tsvs lab up --ha --method nat` on this machine's kernel (docs/lab.md "HA"): two directors
// running `tsvs daemon --config` with the keepalived.conf the lab writes settle as one MASTER
// (P-d, priority 150) and one BACKUP (P-d2, 100), `lab status` says so, curl reaches the real
// servers through the VIP (NAT replies through the floating gateway 198.18.1.250), P-d2 takes both
// over when P-d's daemon is killed, and `lab down` leaves no namespace, no process and no run
// directory.
// Names use the prefix tsvs-lh<pid>; a killed run's lab is removed by the next run.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { namespacesWith, nsExecStatus } from "../../src/io/netns.js";
import { tsvsEntry } from "../../src/lab/daemon.js";
import { countResponses } from "../../src/lab/demo.js";
import { labStatus, labUp } from "../../src/lab/lab.js";
import { deadRuns, jsPath, procAlive, waitFor } from "../../src/lab/proc.js";
import { LAB_ADDR, type LabNames, labDown, labNames } from "../../src/lab/topology.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("lab HA e2e", ["curl", "nftables"]);

const names: LabNames = labNames(`tsvs-lh${process.pid}`);

/** Labs of earlier runs that were killed before their cleanup: tsvs-lh<pid>-* of dead pids. */
async function removeStale(): Promise<void> {
  for (const id of deadRuns("tsvs-lh")) await labDown(labNames(`tsvs-lh${id}`));
}

describe("tsvs lab up --ha (NAT): two directors, VRRP, the VIP", { skip, timeout: 60_000 }, () => {
  before(async () => {
    await removeStale();
  });

  after(async () => {
    await labDown(names);
  });

  it("one MASTER and one BACKUP, curl through the VIP, takeover on SIGKILL, lab down leaves nothing", async (t) => {
    if (tsvsEntry() === null) {
      t.skip("the daemon is not built");
      return;
    }
    const st = await labUp(names, { method: "nat", servers: "node", ha: { backup: "tsvs" } });
    assert.equal(st.daemonStatus, "running", st.daemonStatus);
    assert.equal(st.ha?.daemon2Status, "running", st.ha?.daemon2Status);
    assert.ok(st.namespaces.includes(names.director2));

    const s = labStatus(names);
    assert.equal(s.up, true);
    assert.match(s.addresses[names.director2], /eth0 198\.18\.0\.3\/24, eth1 198\.18\.1\.3\/24/);
    const states = s.ha?.directors.map((d) => [d.ns, d.vrrp?.map((v) => `${v.name} ${v.state}`)]);
    assert.deepEqual(states, [
      [names.director, ["VI_1 MASTER", "VI_2 MASTER"]],
      [names.director2, ["VI_1 BACKUP", "VI_2 BACKUP"]],
    ]);
    // The CLI's view, as a user reads it.
    const cli = spawnSync(
      process.execPath,
      [jsPath("src/cli/entry.js"), "lab", "status", "--prefix", names.prefix],
      { encoding: "utf8", timeout: 20_000 },
    );
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`VRRP: master ${names.director}\\n`));
    assert.match(cli.stdout, new RegExp(`${names.director2} tsvs pid \\d+: BACKUP`));

    // NAT: r1-r3 answer through the VIP, their replies going back via the floating gateway.
    const route = nsExecStatus(names.servers[0].ns, ["ip", "route", "show", "default"]).stdout;
    assert.match(route, new RegExp(`default via ${LAB_ADDR.GW.replaceAll(".", "\\.")} `));
    const { counts, failed } = countResponses(names, 6);
    assert.equal(failed, 0);
    assert.deepEqual(counts, { r1: 2, r2: 2, r3: 2 });

    // SIGKILL to the master's daemon: the backup takes the VIP and the gateway over (VI_1 and VI_2
    // move together, one sync group) within its master-down time, 3 × 1 s + (256 − 100)/256 s.
    process.kill(st.daemon?.pid ?? 0, "SIGKILL");
    const t0 = Date.now();
    const took = await waitFor(
      () => {
        const d2 = labStatus(names).ha?.directors[1];
        return d2?.vrrp?.every((v) => v.state === "MASTER") === true;
      },
      8000,
      200,
    );
    assert.ok(took, `${names.director2} did not become MASTER within 8 s of the kill`);
    assert.ok(Date.now() - t0 < 5000, `takeover took ${Date.now() - t0} ms`);
    const again = countResponses(names, 3);
    assert.equal(again.failed, 0, "curl through the VIP after the takeover");

    const pids = [st.daemon?.pid ?? 0, st.ha?.daemon2?.pid ?? 0, ...st.procs.map((p) => p.pid)];
    await labDown(names);
    assert.deepEqual(namespacesWith(`${names.prefix}-`), [], "no namespace of the lab is left");
    assert.equal(existsSync(names.runDir), false, "the run directory is removed");
    for (const pid of pids) assert.equal(procAlive({ pid, start: 0, what: "" }), false, `pid ${pid} is gone`);
  });
});
