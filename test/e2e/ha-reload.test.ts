// VRRP reload (docs/ha.md "Reload"): two tsvs directors (topology ha-helpers.ts, namespaces
// tsvs-harl<pid>-*) with two instances each and no sync group: VI_1 holds the VIP on eth0, VI_2 the
// servers' gateway on eth1; d1 (priority 150) is MASTER of both, d2 (100) BACKUP. d1's file is
// edited and reloaded (SIGHUP, or `tsvs reload`), step by step, as keepalived's reload would take
// each edit (keepalived vrrp.c clear_diff_vrrp, restore_vrrp_state):
//
//   1. VI_1's priority 150 → 50: d1 advertises 50 at once, d2 preempts; VI_2 (unchanged) stays
//      MASTER on d1 with no transition at all
//   2. VI_2 lists a second address: d1 (still MASTER, no transition) answers for it at once and
//      the nft guard holds it
//   3. VI_2 lists the second address only: the first is answered by nobody and leaves the guard
//   4. a broken file: refused, nothing changes
//   5. VI_2 removed: d1 sends priority 0 and d2 takes the gateway within its skew time; VI_2 has
//      notify_deleted, so its `notify` hears DELETED (keepalived's default would be FAULT)
//   6. VI_2 back: it starts in BACKUP as at daemon start and preempts d2 by the protocol
//
// lvs_sync_daemon follows VI_1 on both: its role changes with VI_1's state, not with the reload.
//
// VRRPv3, advert_int 0.3 s (master-down ~1 s): short, yet wider than the scheduling hiccups of a
// loaded 2-CPU machine, which would be a takeover, not a reload problem.

import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { linkMac, nsExecStatus } from "../../src/io/netns.js";
import { sleep, waitFor } from "../../src/lab/proc.js";
import { Children, type Daemon, ENTRY, startDaemon } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";
import {
  buildHa,
  HA,
  haNames,
  logTime,
  removeHa,
  removeStaleHa,
  statusOf,
  waitState,
  workDir,
  writeFile,
} from "./ha-helpers.js";

const skip = e2eSkip("VRRP reload e2e", ["nftables", "iputils-ping"]);

const ADVERT_S = 0.3;
/** The backup's master-down time at priority 100 (3 × advert + (256 − 100)/256 × advert), ms. */
const DOWN_MS = 3 * ADVERT_S * 1000 + ((256 - 100) / 256) * ADVERT_S * 1000;
const SKEW_MS = ((256 - 100) / 256) * ADVERT_S * 1000;
/** A second gateway address VI_2 takes on. */
const GW2 = "198.18.73.2";

interface Inst {
  name: string;
  iface: string;
  vrid: number;
  priority: number;
  vips: string[];
}

function vi1(priority: number): Inst {
  return { name: "VI_1", iface: "eth0", vrid: 51, priority, vips: [HA.VIP] };
}

function vi2(priority: number, vips: string[] = [HA.GW]): Inst {
  return { name: "VI_2", iface: "eth1", vrid: 52, priority, vips };
}

/** The notify script (set by the suite): appends its arguments to FILE.notify, FILE its first. */
let notifySh = "";

/**
 * keepalived.conf with these instances (BACKUP at start, VRRPv3). VI_2 runs `notify` (with the
 * daemon's name `who` as the script's own argument) and announces its removal as DELETED.
 */
function conf(insts: Inst[], who = "d1"): string {
  return `global_defs {\n    router_id tsvs-reload\n    lvs_sync_daemon eth1 VI_1 id 7\n}\n\n${insts
    .map(
      (i) => `vrrp_instance ${i.name} {
    state BACKUP
    interface ${i.iface}
    virtual_router_id ${i.vrid}
    priority ${i.priority}
    advert_int ${ADVERT_S}
    version 3
    garp_master_delay 1
    virtual_ipaddress {
${i.vips.map((v) => `        ${v}/24\n`).join("")}    }
${i.name === "VI_2" ? `    notify "${notifySh} ${who}"\n    notify_deleted\n` : ""}}
`,
    )
    .join("\n")}`;
}

function readLines(path: string): string[] {
  return existsSync(path)
    ? readFileSync(path, "utf8")
        .split("\n")
        .filter((l) => l !== "")
    : [];
}

describe("VRRP reload between two tsvs directors (SIGHUP, tsvs reload)", { skip }, () => {
  const n = haNames("rl");
  const dir = workDir(n);
  const children = new Children();
  const file = { d1: join(dir, "d1.conf"), d2: join(dir, "d2.conf") };
  let d1: Daemon;
  let d2: Daemon;

  before(async () => {
    await removeStaleHa("rl");
    buildHa(n);
    notifySh = writeFile(
      join(dir, "notify.sh"),
      `#!/bin/sh\nf="$1"; shift\necho "$@" >> "${dir}/$f.notify"\n`,
      0o755,
    );
    writeFile(file.d1, conf([vi1(150), vi2(150)]));
    writeFile(file.d2, conf([vi1(100), vi2(100)], "d2"));
    const args = (f: string): string[] => ["--config", f, "--http", "off", "--warmup-ms", "0"];
    [d1, d2] = await Promise.all([
      startDaemon(n.d1, args(file.d1), children),
      startDaemon(n.d2, args(file.d2), children),
    ]);
    await waitState(n.d1, "MASTER", 8000, "VI_1");
    await waitState(n.d1, "MASTER", 3000, "VI_2");
    await waitState(n.d2, "BACKUP", 3000, "VI_1");
    await waitState(n.d2, "BACKUP", 3000, "VI_2");
  });

  after(async () => {
    await children.stopAll();
    await removeHa(n);
    rmSync(dir, { recursive: true, force: true });
  });

  /** An instance of the daemon in ns, as `tsvs status --json` shows it. */
  function inst(ns: string, name: string) {
    return statusOf(ns)?.vrrp?.find((v) => v.name === name);
  }

  /** Writes d1's file and sends SIGHUP; resolves once d1 logged the reload (or its refusal). */
  async function reloadD1(text: string): Promise<number> {
    const t0 = Date.now();
    writeFile(file.d1, text);
    d1.proc.kill("SIGHUP");
    for (let i = 0; i < 100; i++) {
      if (logTime(d1.stderr(), /"msg":"configuration (not )?reloaded"/, t0) !== null) return t0;
      await sleep(50);
    }
    assert.fail(`d1 logged no reload after SIGHUP:\n${d1.stderr().slice(-2000)}`);
  }

  /** The daemon (d1 unless told) logged a transition of instance `name` at or after t0. */
  function transitioned(name: string, t0: number, d: Daemon = d1): boolean {
    return logTime(d.stderr(), new RegExp(`VRRP_Instance\\(${name}\\) Entering`), t0) !== null;
  }

  /** The MAC that answered `addr` for ns (a ping that must succeed first), or "" when nobody answers. */
  async function macOf(ns: string, dev: string, addr: string, answers = true): Promise<string> {
    nsExecStatus(ns, ["ip", "neigh", "flush", "dev", dev]);
    let ok = false;
    for (let i = 0; i < 10 && !ok; i++) {
      ok = nsExecStatus(ns, ["ping", "-c", "1", "-W", "1", addr]).status === 0;
      if (!ok && answers) await sleep(100);
      if (!answers) break;
    }
    if (!ok) return "";
    const out = nsExecStatus(ns, ["ip", "-j", "neigh", "show", addr, "dev", dev]).stdout;
    return (JSON.parse(out || "[]")[0]?.lladdr as string | undefined) ?? "";
  }

  /** The addresses of d1's nft guard set own4 (every VRRP address, in every state). */
  function guard4(ns: string): string {
    return nsExecStatus(ns, ["nft", "list", "set", "netdev", "tsvs", "own4"]).stdout;
  }

  it("a lower priority on the MASTER: the backup preempts; the unchanged instance does not flap", async () => {
    assert.equal(await macOf(n.c, "eth0", HA.VIP), linkMac(n.d1, "eth0"));
    const vi2Before = inst(n.d1, "VI_2");
    assert.equal(vi2Before?.state, "MASTER");
    const t0 = await reloadD1(conf([vi1(50), vi2(150)]));
    // d1 advertises 50 at once; d2 (100) discards it and takes over when its down timer runs out.
    const took = await waitState(n.d2, "MASTER", DOWN_MS + 2000, "VI_1");
    await waitState(n.d1, "BACKUP", 2000, "VI_1");
    console.log(`# d2 preempted VI_1 ${Math.round(took)} ms after the reload (master-down ${DOWN_MS} ms)`);
    assert.equal(inst(n.d1, "VI_1")?.effectivePriority, 50);
    assert.equal(await macOf(n.c, "eth0", HA.VIP), linkMac(n.d2, "eth0"), "the VIP moved to d2");
    // lvs_sync_daemon follows VI_1: the sync roles swapped with it.
    const roles = async (ns: string, role: string): Promise<boolean> =>
      waitFor(() => (statusOf(ns)?.sync ?? []).map((x) => x.role).join() === role, 3000, 200);
    assert.ok(await roles(n.d1, "backup"), JSON.stringify(statusOf(n.d1)?.sync));
    assert.ok(await roles(n.d2, "master"), JSON.stringify(statusOf(n.d2)?.sync));
    // Unchanged VI_2: MASTER throughout, the same transition count, no transition logged, d2 BACKUP.
    const vi2After = inst(n.d1, "VI_2");
    assert.equal(vi2After?.state, "MASTER");
    assert.equal(vi2After?.transitions, vi2Before?.transitions);
    assert.ok(!transitioned("VI_2", t0), "VI_2 logged a transition");
    assert.equal(inst(n.d2, "VI_2")?.state, "BACKUP");
    assert.ok(!transitioned("VI_2", t0, d2), "d2's VI_2 logged a transition (an election)");
    assert.equal(await macOf(n.r1, "eth0", HA.GW), linkMac(n.d1, "eth1"), "the gateway stays on d1");
    const line =
      d1
        .stderr()
        .split("\n")
        .find((l) => l.includes('"msg":"VRRP reloaded"')) ?? "";
    assert.match(line, /"name":"VI_1","action":"update","changed":\["priority"\]/);
    assert.match(line, /"name":"VI_2","action":"keep"/);
  });

  it("a MASTER's new address is answered at once and guarded; a dropped one is answered by nobody and leaves the guard", async () => {
    const before = inst(n.d1, "VI_2");
    const t0 = await reloadD1(conf([vi1(50), vi2(150, [HA.GW, GW2])]));
    assert.equal(await macOf(n.r1, "eth0", GW2), linkMac(n.d1, "eth1"), "d1 answers the new address");
    assert.match(guard4(n.d1), new RegExp(GW2.replace(/\./g, "\\.")));
    assert.equal(await macOf(n.r1, "eth0", HA.GW), linkMac(n.d1, "eth1"));

    await reloadD1(conf([vi1(50), vi2(150, [GW2])]));
    assert.equal(await macOf(n.r1, "eth0", HA.GW, false), "", "nobody answers the dropped address");
    assert.doesNotMatch(guard4(n.d1), /198\.18\.73\.1[,\s}]/, "the dropped address left d1's guard");
    assert.equal(await macOf(n.r1, "eth0", GW2), linkMac(n.d1, "eth1"));
    const after = inst(n.d1, "VI_2");
    assert.equal(after?.state, "MASTER");
    assert.equal(after?.transitions, before?.transitions);
    assert.ok(!transitioned("VI_2", t0), "VI_2 logged a transition");
    assert.equal(inst(n.d2, "VI_2")?.state, "BACKUP");
  });

  it("a broken file changes nothing: `tsvs reload` and SIGHUP both refuse it", async () => {
    const states = [inst(n.d1, "VI_1")?.state, inst(n.d1, "VI_2")?.state];
    writeFile(file.d1, `${conf([vi1(200), vi2(150, [GW2])])}\nvrrp_instance VI_3 {\n    priority 999\n}\n`);
    const cli = nsExecStatus(n.d1, [process.execPath, ENTRY, "reload"], 10_000);
    assert.equal(cli.status, 1, cli.stdout);
    assert.match(cli.stderr, /d1\.conf:\d+:\d+/);
    await reloadD1(`${conf([vi1(200), vi2(150, [GW2])])}\nvrrp_instance VI_3 {\n    priority 999\n}\n`);
    assert.ok(/"msg":"configuration not reloaded"/.test(d1.stderr()));
    await sleep(3 * ADVERT_S * 1000);
    assert.deepEqual([inst(n.d1, "VI_1")?.state, inst(n.d1, "VI_2")?.state], states);
    assert.equal(inst(n.d1, "VI_1")?.effectivePriority, 50, "the priority in force is the last good file's");
  });

  it("a removed MASTER instance sends priority 0: the backup takes over within its skew time, its notify says DELETED; a new one starts BACKUP and preempts", async () => {
    const vi1Before = inst(n.d1, "VI_1");
    const notified = join(dir, "d1.notify");
    const before = readLines(notified);
    assert.equal(before.at(-1), "INSTANCE VI_2 MASTER 150", "VI_2's notify ran as MASTER");
    const t0 = await reloadD1(conf([vi1(50)]));
    const took = await waitState(n.d2, "MASTER", 3000, "VI_2");
    console.log(
      `# d2 took VI_2 over ${Math.round(took)} ms after the reload (skew ${SKEW_MS.toFixed(0)} ms)`,
    );
    assert.ok(took < SKEW_MS + 1000, `takeover ${took} ms`);
    assert.equal(inst(n.d1, "VI_2"), undefined, "VI_2 is gone from d1");
    assert.ok((statusOf(n.d2)?.vrrp?.find((v) => v.name === "VI_2") as { priZeroRx?: number })?.priZeroRx);
    assert.equal(inst(n.d1, "VI_1")?.transitions, vi1Before?.transitions, "VI_1 untouched");
    assert.ok(!transitioned("VI_1", t0));
    // d2 lists 198.18.73.1 only: that is what it answers now.
    assert.equal(await macOf(n.r1, "eth0", HA.GW), linkMac(n.d2, "eth1"));
    // notify_deleted: DELETED rather than keepalived's default FAULT (vrrp_notify.c).
    assert.ok(
      await waitFor(() => readLines(notified).length > before.length, 3000),
      "VI_2's notify on removal",
    );
    assert.deepEqual(readLines(notified).slice(before.length), ["INSTANCE VI_2 DELETED 150"]);

    const t1 = await reloadD1(conf([vi1(50), vi2(150)]));
    await waitState(n.d1, "MASTER", DOWN_MS + 2000, "VI_2");
    await waitState(n.d2, "BACKUP", 2000, "VI_2");
    assert.ok(
      logTime(d1.stderr(), /VRRP_Instance\(VI_2\) Entering BACKUP STATE/, t1) !== null,
      "the new instance started in BACKUP",
    );
    assert.equal(await macOf(n.r1, "eth0", HA.GW), linkMac(n.d1, "eth1"));
    assert.equal(inst(n.d1, "VI_1")?.state, "BACKUP");
  });
});
