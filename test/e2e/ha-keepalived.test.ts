// VRRP interoperation with the real keepalived (Debian's 2.2.7) as the peer director, both ways
// (docs/ha.md). keepalived has no ip_vs here, so it runs its VRRP subsystem only (-P): its state
// is read from its log (ha-helpers.ts Keepalived), and "who has the VIP" from the client's neighbour
// entry for the VIP (the MAC that answered ARP, or sent the last gratuitous ARP) and a ping.
// tsvs's state comes from `tsvs status --json`. Topology: ha-helpers.ts (d1 .11 and d2 .12; the
// higher address wins an election at equal priority). One case reloads tsvs (SIGHUP) with
// keepalived as its peer: an unchanged file moves nothing, a priority change is an election.

import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { linkMac, nsExecStatus } from "../../src/io/netns.js";
import { sleep, waitFor } from "../../src/lab/proc.js";
import { Children, type Daemon, startDaemon } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";
import {
  buildHa,
  type DirectorOpts,
  HA,
  haConf,
  haNames,
  Keepalived,
  logTime,
  partition,
  readState,
  removeHa,
  removeStaleHa,
  statusOf,
  waitState,
  workDir,
  writeFile,
} from "./ha-helpers.js";

const skip = e2eSkip("keepalived interop e2e", ["nftables", "keepalived", "iputils-ping"]);

describe("VRRP interop with keepalived 2.2.7", { skip }, () => {
  const n = haNames("k");
  const dir = workDir(n);
  const children = new Children();
  const ka = new Keepalived(dir, "VI_1");
  let tsvs: Daemon | null = null;
  let kaPid: number | null = null;

  before(async () => {
    await removeStaleHa("k");
    buildHa(n);
  });

  afterEach(async () => {
    await stopAll();
  });

  after(async () => {
    await children.stopAll();
    await removeHa(n);
    rmSync(dir, { recursive: true, force: true });
  });

  async function stopAll(): Promise<void> {
    tsvs?.proc.kill("SIGTERM");
    if (tsvs !== null) await tsvs.exited;
    tsvs = null;
    if (kaPid !== null) {
      try {
        process.kill(kaPid, "SIGTERM");
      } catch {
        // gone
      }
      await waitFor(() => !alive(kaPid ?? 0), 5000);
    }
    kaPid = null;
    ka.reset();
    // The client forgets who had the VIP.
    nsExecStatus(n.c, ["ip", "neigh", "flush", "dev", "eth0"]);
  }

  function alive(pid: number): boolean {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  const base: Omit<DirectorOpts, "priority"> = {
    version: 2,
    advertInt: 1,
    method: "dr",
    sync: false,
    single: true,
  };

  async function startTsvs(ns: string, o: DirectorOpts): Promise<Daemon> {
    const conf = writeFile(join(dir, `tsvs-${ns.slice(-2)}.conf`), haConf(o));
    tsvs = await startDaemon(ns, ["--config", conf], children);
    return tsvs;
  }

  function startKeepalived(ns: string, o: DirectorOpts): void {
    const conf = writeFile(join(dir, `ka-${ns.slice(-2)}.conf`), haConf({ ...o, vrrpOnly: true }));
    kaPid = ka.start(children, ns, conf).pid ?? null;
  }

  const kaWait = (state: string, ms: number): Promise<void> => ka.wait(state, ms);

  /** The MAC the client reaches the VIP at, after a ping that must succeed. */
  async function vipMac(): Promise<string> {
    let ok = false;
    for (let i = 0; i < 20 && !ok; i++) {
      ok = nsExecStatus(n.c, ["ping", "-c", "1", "-W", "1", HA.VIP]).status === 0;
      if (!ok) await sleep(200);
    }
    assert.ok(ok, "the VIP does not answer ping");
    const out = nsExecStatus(n.c, ["ip", "-j", "neigh", "show", HA.VIP, "dev", "eth0"]).stdout;
    return (JSON.parse(out)[0]?.lladdr as string | undefined) ?? "";
  }

  it("v2: tsvs (150) master, keepalived (100) backup; tsvs stops (priority 0): keepalived takes over at once; tsvs comes back and preempts", async () => {
    await startTsvs(n.d1, { ...base, priority: 150 });
    startKeepalived(n.d2, { ...base, priority: 100 });
    await waitState(n.d1, "MASTER", 8000);
    await kaWait("BACKUP", 8000);
    assert.equal(await vipMac(), linkMac(n.d1, "eth0"));

    const t0 = Date.now();
    tsvs?.proc.kill("SIGTERM");
    await kaWait("MASTER", 3000);
    const took = Date.now() - t0;
    console.log(`# keepalived took over ${took} ms after tsvs's priority-0 advert`);
    assert.ok(took < ((256 - 100) / 256) * 1000 + 1000, `handover ${took} ms`);
    assert.equal(await vipMac(), linkMac(n.d2, "eth0"));

    await startTsvs(n.d1, { ...base, priority: 150 });
    await waitState(n.d1, "MASTER", 8000);
    await kaWait("BACKUP", 3000);
    assert.equal(await vipMac(), linkMac(n.d1, "eth0"), "the client follows tsvs's gratuitous ARP");
  });

  it("tsvs reloaded beside keepalived (SIGHUP): the same file changes nothing; priority 150 → 50 lets keepalived preempt, → 150 takes the VIP back", async () => {
    const conf = join(dir, `tsvs-${n.d1.slice(-2)}.conf`);
    const d = await startTsvs(n.d1, { ...base, priority: 150 });
    startKeepalived(n.d2, { ...base, priority: 100 });
    await waitState(n.d1, "MASTER", 8000);
    await kaWait("BACKUP", 8000);
    const reload = async (priority: number): Promise<void> => {
      const t0 = Date.now();
      writeFile(conf, haConf({ ...base, priority }));
      d.proc.kill("SIGHUP");
      assert.ok(
        await waitFor(() => logTime(d.stderr(), /"msg":"configuration reloaded"/, t0) !== null, 5000),
        `tsvs logged no reload:\n${d.stderr().slice(-2000)}`,
      );
    };
    const transitions = statusOf(n.d1)?.vrrp?.[0]?.transitions;
    assert.equal(typeof transitions, "number");
    await reload(150);
    await sleep(3000);
    assert.equal(statusOf(n.d1)?.vrrp?.[0]?.transitions, transitions, "an unchanged file: no transition");
    assert.equal(ka.state(), "BACKUP");

    // keepalived preempts a lower-priority master after its master-down time (3 s + skew at v2).
    await reload(50);
    await kaWait("MASTER", 5000);
    await waitState(n.d1, "BACKUP", 3000);
    assert.equal(await vipMac(), linkMac(n.d2, "eth0"));

    await reload(150);
    await waitState(n.d1, "MASTER", 6000);
    await kaWait("BACKUP", 3000);
    assert.equal(await vipMac(), linkMac(n.d1, "eth0"), "the client follows tsvs's gratuitous ARP");
  });

  it("v2: keepalived (200) master, tsvs (150) backup, knowing keepalived as the master", async () => {
    startKeepalived(n.d2, { ...base, priority: 200 });
    await kaWait("MASTER", 8000);
    await startTsvs(n.d1, { ...base, priority: 150 });
    await sleep(4000);
    const v = statusOf(n.d1)?.vrrp?.[0];
    assert.equal(v?.state, "BACKUP");
    assert.equal(v?.master, HA.D2.c);
    assert.equal(ka.state(), "MASTER");
    assert.equal(await vipMac(), linkMac(n.d2, "eth0"));
  });

  it("v3 advert_int 0.1, equal priority, both MASTER after a partition: when it heals the higher address stays, either way round", async () => {
    const v3: Omit<DirectorOpts, "priority"> = { ...base, version: 3, advertInt: 0.1 };
    // A backup accepts an equal-priority advert: the address decides only between two masters,
    // which a partition makes.
    for (const [tsvsNs, kaNs, winner] of [
      [n.d1, n.d2, "keepalived"],
      [n.d2, n.d1, "tsvs"],
    ] as const) {
      partition(n, true);
      await startTsvs(tsvsNs, { ...v3, priority: 100 });
      startKeepalived(kaNs, { ...v3, priority: 100 });
      await waitState(tsvsNs, "MASTER", 5000);
      await kaWait("MASTER", 5000);
      partition(n, false);
      if (winner === "keepalived") {
        await waitState(tsvsNs, "BACKUP", 3000);
        await sleep(1000);
        assert.equal(ka.state(), "MASTER");
        assert.equal(statusOf(tsvsNs)?.vrrp?.[0]?.state, "BACKUP");
      } else {
        await kaWait("BACKUP", 3000);
        await sleep(1000);
        assert.equal(statusOf(tsvsNs)?.vrrp?.[0]?.state, "MASTER");
        assert.equal(ka.state(), "BACKUP");
      }
      await stopAll();
    }
  });

  it("unicast_peer, both ways: adverts to the peer's address, elections as with multicast", async () => {
    // advert_int 1: a loaded CI machine can hold a process off the CPU for longer than v3 0.1's
    // 0.36 s master-down time, which would be a takeover, not a unicast problem.
    const v3: Omit<DirectorOpts, "priority"> = { ...base, version: 3, advertInt: 1 };
    const uni = (self: string, peer: string) => ({ src: self, peer });
    await startTsvs(n.d1, { ...v3, priority: 150, unicast: uni(HA.D1.c, HA.D2.c) });
    startKeepalived(n.d2, { ...v3, priority: 100, unicast: uni(HA.D2.c, HA.D1.c) });
    await waitState(n.d1, "MASTER", 8000);
    await kaWait("BACKUP", 5000);
    await sleep(4000);
    assert.equal(statusOf(n.d1)?.vrrp?.[0]?.state, "MASTER");
    assert.equal(ka.state(), "BACKUP", "keepalived hears tsvs's unicast adverts");
    const t0 = Date.now();
    tsvs?.proc.kill("SIGTERM");
    await kaWait("MASTER", 3000);
    console.log(`# unicast: keepalived took over ${Date.now() - t0} ms after tsvs's priority-0 advert`);
    // keepalived (200) now, tsvs (150) joins: stays backup, knowing keepalived as the master.
    await stopAll();
    startKeepalived(n.d2, { ...v3, priority: 200, unicast: uni(HA.D2.c, HA.D1.c) });
    await kaWait("MASTER", 8000);
    await startTsvs(n.d1, { ...v3, priority: 150, unicast: uni(HA.D1.c, HA.D2.c) });
    await sleep(5000);
    const v = statusOf(n.d1)?.vrrp?.[0];
    assert.equal(v?.state, "BACKUP", "tsvs hears keepalived's unicast adverts");
    assert.equal(v?.master, HA.D2.c);
  });

  it("track_script and notify on tsvs: a failing check is FAULT (priority 0 sent, keepalived takes over), its recovery preempts back", async () => {
    const v3: Omit<DirectorOpts, "priority"> = { ...base, version: 3, advertInt: 0.1 };
    const flag = join(dir, "healthy");
    const tsvsState = join(dir, "tsvs.state");
    const tsvsNotify = writeFile(
      join(dir, "tsvs-notify.sh"),
      `#!/bin/sh\necho "$3 $4" > ${tsvsState}\n`,
      0o755,
    );
    writeFile(flag, "");
    await startTsvs(n.d1, {
      ...v3,
      priority: 150,
      notify: tsvsNotify,
      trackScript: `/usr/bin/test -f ${flag}`,
    });
    startKeepalived(n.d2, { ...v3, priority: 100 });
    await waitState(n.d1, "MASTER", 5000);
    await kaWait("BACKUP", 5000);
    assert.ok(
      await waitFor(() => readState(tsvsState) === "MASTER 150", 3000),
      `tsvs notify: ${readState(tsvsState)}`,
    );
    rmSync(flag);
    await waitState(n.d1, "FAULT", 4000);
    await kaWait("MASTER", 2000);
    assert.ok(
      await waitFor(() => readState(tsvsState).startsWith("FAULT"), 2000),
      `tsvs notify: ${readState(tsvsState)}`,
    );
    writeFile(flag, "");
    await waitState(n.d1, "MASTER", 5000);
    await kaWait("BACKUP", 2000);
    assert.ok(
      await waitFor(() => readState(tsvsState) === "MASTER 150", 2000),
      `tsvs notify: ${readState(tsvsState)}`,
    );
  });

  it("nopreempt: a higher-priority tsvs that starts while keepalived is master stays backup", async () => {
    const v3: Omit<DirectorOpts, "priority"> = { ...base, version: 3, advertInt: 0.1 };
    startKeepalived(n.d2, { ...v3, priority: 100 });
    await kaWait("MASTER", 5000);
    await startTsvs(n.d1, { ...v3, priority: 150, nopreempt: true });
    await sleep(1500);
    assert.equal(statusOf(n.d1)?.vrrp?.[0]?.state, "BACKUP");
    assert.equal(ka.state(), "MASTER");
  });

  it("PASS authentication mismatch: each side ignores the other's adverts, as keepalived does", async () => {
    startKeepalived(n.d2, { ...base, priority: 100, authPass: "secret1" });
    await startTsvs(n.d1, { ...base, priority: 150, authPass: "other1" });
    await waitState(n.d1, "MASTER", 8000);
    await sleep(1500);
    const v = statusOf(n.d1)?.vrrp?.[0] as unknown as { drops: Record<string, number> };
    assert.ok((v.drops.auth ?? 0) > 0, `tsvs counted no authentication drop: ${JSON.stringify(v.drops)}`);
    // keepalived ignores tsvs too: it becomes master after its own master-down time.
    await kaWait("MASTER", 6000);
  });
});
