// High availability (docs/ha.md): two tsvs directors running one keepalived.conf each (VRRP
// instances VI_1 for the VIP and VI_2 for the NAT gateway in a sync group, lvs_sync_daemon tied to
// VI_1), topology in ha-helpers.ts. Under 50 concurrent rate-limited downloads through the VIP,
// the master's daemon is killed (SIGKILL, nothing said to anyone): the backup takes over after
// its master-down time, and every download completes intact (byte pattern checked, no reset),
// because the connections were synced beforehand. Also: a graceful stop (priority 0) hands over
// within skew + 0.5 s, and the old master comes back and preempts.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { nsExecStatus } from "../../src/io/netns.js";
import { sleep } from "../../src/lab/proc.js";
import { patternChunk } from "../../src/lab/server.js";
import { Children, type Daemon, startDaemon } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";
import {
  buildHa,
  HA,
  type HaMethod,
  haConf,
  haNames,
  partition,
  realserverDr,
  removeHa,
  removeStaleHa,
  serverRoutes,
  spawnIn,
  startServers,
  stateOf,
  statusOf,
  waitLogTime,
  waitState,
  workDir,
  writeFile,
} from "./ha-helpers.js";

const skip = e2eSkip("HA e2e", ["nftables", "curl"]);

const DOWNLOADS = 50;
const SIZE = 5 << 20;
/** Bytes per second per download (paced by the server, and by curl): the kill lands in the middle. */
const RATE = 1 << 20;

const patternSum = createHash("sha256").update(patternChunk(0, SIZE)).digest("hex");

interface Download {
  file: string;
  done: Promise<{ code: number | null; err: string }>;
}

function startDownloads(ns: string, dir: string, children: Children): Download[] {
  const out: Download[] = [];
  for (let i = 0; i < DOWNLOADS; i++) {
    const file = join(dir, `dl${i}.bin`);
    rmSync(file, { force: true });
    const p = spawnIn(
      children,
      ns,
      [
        "curl",
        "-sS",
        "--limit-rate",
        String(RATE),
        "-m",
        "60",
        "-o",
        file,
        `http://${HA.VIP}:${HA.PORT}/bytes/${SIZE}?rate=${RATE}`,
      ],
      ["ignore", "ignore", "pipe"],
    );
    let err = "";
    p.stderr?.setEncoding("utf8");
    p.stderr?.on("data", (c: string) => {
      err += c;
    });
    out.push({ file, done: new Promise((r) => p.once("exit", (code) => r({ code, err }))) });
  }
  return out;
}

async function checkDownloads(dls: Download[]): Promise<void> {
  const results = await Promise.all(dls.map((d) => d.done));
  const bad: string[] = [];
  results.forEach((r, i) => {
    if (r.code !== 0) bad.push(`#${i}: curl exit ${r.code} ${r.err.trim()}`);
    else if (!existsSync(dls[i].file)) bad.push(`#${i}: no file`);
    else {
      const sum = createHash("sha256").update(readFileSync(dls[i].file)).digest("hex");
      if (sum !== patternSum) bad.push(`#${i}: content differs`);
    }
  });
  assert.deepEqual(bad, [], `downloads that did not complete intact:\n${bad.join("\n")}`);
}

interface Case {
  method: HaMethod;
  version: 2 | 3;
  advertInt: number;
  tag: string;
  /** Also: a partition of the directors, both MASTER, then healed. */
  splitBrain?: boolean;
  /** More `tsvs daemon` arguments. */
  args?: string[];
  /** use_vmac: the client and the servers reach the VIP and the gateway at 00:00:5e:00:01:VRID throughout. */
  useVmac?: boolean;
}

const CASES: Case[] = [
  // The split brain heals with keepalived's remedy for stale ARP caches (docs/ha.md): the master
  // that yields announces itself once more, and the winner answers with gratuitous ARPs.
  { method: "nat", version: 2, advertInt: 1, tag: "n", splitBrain: true },
  // Two workers each: a synced connection is installed by the worker its packets will reach.
  { method: "dr", version: 2, advertInt: 1, tag: "r", args: ["--workers", "2"] },
  // FULLNAT: the LIP floats with VI_2, and each connection's LIP:lport goes with it in the sync.
  { method: "fullnat", version: 3, advertInt: 0.1, tag: "f" },
  // use_vmac: no ARP cache has to change in a takeover.
  { method: "nat", version: 3, advertInt: 0.1, tag: "v", useVmac: true },
];

for (const c of CASES) {
  const { method, version, advertInt } = c;
  const label = `${method.toUpperCase()} (tsvs + tsvs, VRRPv${version} advert_int ${advertInt}, sync${c.args ? `, ${c.args.join(" ")}` : ""}${c.useVmac ? ", use_vmac" : ""})`;
  const args = (file: string): string[] => ["--config", file, ...(c.args ?? [])];
  describe(`HA failover, ${label}`, { skip }, () => {
    const n = haNames(c.tag);
    const children = new Children();
    const dir = workDir(n);
    const conf = {
      d1: writeFile(
        join(dir, "d1.conf"),
        haConf({
          priority: 150,
          version,
          advertInt,
          method,
          higherPrioSendAdvert: c.splitBrain,
          useVmac: c.useVmac,
        }),
      ),
      d2: writeFile(
        join(dir, "d2.conf"),
        haConf({
          priority: 100,
          version,
          advertInt,
          method,
          higherPrioSendAdvert: c.splitBrain,
          useVmac: c.useVmac,
        }),
      ),
    };
    const advMs = advertInt * 1000;
    /** The backup's skew (priority 100): v2 (256 − p)/256 s, v3 scaled by the advert interval. */
    const skewMs = version === 2 ? ((256 - 100) / 256) * 1000 : ((256 - 100) / 256) * advMs;
    let d1: Daemon;
    let d2: Daemon;

    before(async () => {
      await removeStaleHa(c.tag);
      buildHa(n);
      serverRoutes(n, method);
      if (method === "dr") realserverDr(n);
      await startServers(n, children);
      [d1, d2] = await Promise.all([
        startDaemon(n.d1, args(conf.d1), children),
        startDaemon(n.d2, args(conf.d2), children),
      ]);
      await waitState(n.d1, "MASTER", 8000);
      await waitState(n.d2, "BACKUP", 1000);
    });

    after(async () => {
      await children.stopAll();
      await removeHa(n);
      rmSync(dir, { recursive: true, force: true });
    });

    const bound = 3 * advMs + skewMs + 500;
    it(`SIGKILL of the master halfway: every download completes intact, takeover within 3 × advert + skew + 0.5 s (${Math.round(bound)} ms)`, async () => {
      const dls = startDownloads(n.c, dir, children);
      // The kernel sends a partly filled message after 2 s (IPVS_SYNC_FLUSH_TIME): kill after that.
      await sleep(3000);
      const synced = statusOf(n.d2)?.sync?.find((s) => s.role === "backup")?.connsReceived ?? 0;
      assert.ok(synced >= DOWNLOADS, `backup received ${synced} synced connections before the kill`);
      const killedAt = Date.now();
      d1.proc.kill("SIGKILL");
      await waitState(n.d2, "MASTER", 6000);
      const takeoverMs = (await waitLogTime(d2.stderr, /Entering MASTER STATE/, killedAt)) - killedAt;
      console.log(`# ${method}: takeover ${takeoverMs} ms after SIGKILL (bound ${bound.toFixed(0)} ms)`);
      assert.ok(takeoverMs <= bound, `takeover took ${takeoverMs} ms, bound ${bound} ms`);
      if (version === 3 && advertInt <= 0.1) assert.ok(takeoverMs <= 1000, `takeover ${takeoverMs} ms > 1 s`);
      await checkDownloads(dls);
      if (c.useVmac) {
        assert.equal(
          neighMac(n.c, HA.VIP),
          "00:00:5e:00:01:33",
          "the client reaches the VIP at VI_1's virtual MAC",
        );
        assert.equal(
          neighMac(n.r1, HA.GW),
          "00:00:5e:00:01:34",
          "the servers reach the gateway at VI_2's virtual MAC",
        );
      }
    });

    it("the old master comes back and preempts; a graceful stop (priority 0) hands over within skew + 0.5 s", async () => {
      d1 = await startDaemon(n.d1, args(conf.d1), children);
      await waitState(n.d1, "MASTER", 8000);
      await waitState(n.d2, "BACKUP", 2000);
      const t0 = Date.now();
      d1.proc.kill("SIGTERM");
      await waitState(n.d2, "MASTER", 3000);
      const took = (await waitLogTime(d2.stderr, /Entering MASTER STATE/, t0)) - t0;
      const graceful = skewMs + 500;
      console.log(`# ${method}: graceful handover ${took} ms (bound ${graceful.toFixed(0)} ms)`);
      assert.ok(took <= graceful, `handover took ${took} ms, bound ${graceful} ms`);
      assert.match(fetchThroughVip(n.c), /^r[12]$/);
    });

    if (c.splitBrain)
      it("split brain healed: a partition makes both MASTER; once it heals exactly one is, and traffic flows", async () => {
        d1 = await startDaemon(n.d1, args(conf.d1), children);
        await waitState(n.d1, "MASTER", 8000);
        await waitState(n.d2, "BACKUP", 2000);
        partition(n, true);
        await waitState(n.d2, "MASTER", 3 * advMs + skewMs + 2000);
        assert.equal(stateOf(n.d1), "MASTER", "both are MASTER while partitioned");
        partition(n, false);
        await waitState(n.d2, "BACKUP", 3000);
        await sleep(2 * advMs);
        assert.deepEqual([stateOf(n.d1), stateOf(n.d2)], ["MASTER", "BACKUP"]);
        assert.deepEqual(
          [stateOf(n.d1, "VI_2"), stateOf(n.d2, "VI_2")],
          ["MASTER", "BACKUP"],
          "the sync group too",
        );
        for (let i = 0; i < 4; i++) assert.match(fetchThroughVip(n.c), /^r[12]$/);
      });
  });
}

/** The MAC ns has for addr in its neighbour table ("" when none). */
function neighMac(ns: string, addr: string): string {
  const out = nsExecStatus(ns, ["ip", "-j", "neigh", "show", addr]).stdout;
  return (JSON.parse(out || "[]")[0]?.lladdr as string | undefined) ?? "";
}

/** One request through the VIP from the client: the server's name. */
function fetchThroughVip(ns: string): string {
  const r = nsExecStatus(ns, ["curl", "-sS", "-m", "5", `http://${HA.VIP}:${HA.PORT}/`]);
  assert.equal(r.status, 0, `curl through the VIP: ${r.stderr}`);
  return r.stdout.trim();
}
