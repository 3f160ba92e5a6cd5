// High availability (docs/ha.md): two tsvs directors running one keepalived.conf each (VRRP
// instances VI_1 for the VIP and VI_2 for the NAT gateway in a sync group, lvs_sync_daemon tied to
// VI_1), topology in ha-helpers.ts. Under 50 concurrent rate-limited downloads through the VIP,
// the master's daemon is killed (SIGKILL, nothing said to anyone): the backup takes over after
// its master-down time, and every download completes intact (byte pattern checked, no reset),
// because the connections were synced beforehand. Also: a graceful stop (priority 0) hands over
// within skew + 0.5 s, and the old master comes back and preempts.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
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
  haConf,
  haNames,
  realserverDr,
  removeHa,
  removeStaleHa,
  serverRoutes,
  startServers,
  statusOf,
  waitLogTime,
  waitState,
  workDir,
  writeFile,
} from "./ha-helpers.js";

const skip = e2eSkip("HA e2e", ["nftables", "curl"]);

const DOWNLOADS = 50;
const SIZE = 5 << 20;
/** Bytes per second per download: long enough that the kill lands in the middle. */
const RATE = "1M";

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
    const p = children.add(
      spawn(
        "ip",
        [
          "netns",
          "exec",
          ns,
          "curl",
          "-sS",
          "--limit-rate",
          RATE,
          "-m",
          "60",
          "-o",
          file,
          `http://${HA.VIP}:${HA.PORT}/bytes/${SIZE}`,
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      ),
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

for (const method of ["nat", "dr"] as const) {
  describe(`HA failover, ${method.toUpperCase()} (tsvs + tsvs, VRRPv2 advert_int 1, sync)`, { skip }, () => {
    const n = haNames(method === "nat" ? "n" : "r");
    const children = new Children();
    const dir = workDir(n);
    const conf = {
      d1: writeFile(join(dir, "d1.conf"), haConf({ priority: 150, version: 2, advertInt: 1, method })),
      d2: writeFile(join(dir, "d2.conf"), haConf({ priority: 100, version: 2, advertInt: 1, method })),
    };
    let d1: Daemon;
    let d2: Daemon;

    before(async () => {
      await removeStaleHa(method === "nat" ? "n" : "r");
      buildHa(n);
      serverRoutes(n, method);
      if (method === "dr") realserverDr(n);
      await startServers(n, children);
      [d1, d2] = await Promise.all([
        startDaemon(n.d1, ["--config", conf.d1], children),
        startDaemon(n.d2, ["--config", conf.d2], children),
      ]);
      await waitState(n.d1, "MASTER", 8000);
      await waitState(n.d2, "BACKUP", 1000);
    });

    after(async () => {
      await children.stopAll();
      await removeHa(n);
      rmSync(dir, { recursive: true, force: true });
    });

    it("SIGKILL of the master halfway: every download completes intact, takeover within 3 × advert + skew + 0.5 s", async () => {
      const dls = startDownloads(n.c, dir, children);
      // The kernel sends a partly filled message after 2 s (IPVS_SYNC_FLUSH_TIME): kill after that.
      await sleep(3000);
      const synced = statusOf(n.d2)?.sync?.find((s) => s.role === "backup")?.connsReceived ?? 0;
      assert.ok(synced >= DOWNLOADS, `backup received ${synced} synced connections before the kill`);
      const killedAt = Date.now();
      d1.proc.kill("SIGKILL");
      await waitState(n.d2, "MASTER", 6000);
      const tookOver = await waitLogTime(d2.stderr, /Entering MASTER STATE/, killedAt);
      const takeoverMs = tookOver - killedAt;
      const bound = 3 * 1000 + ((256 - 100) / 256) * 1000 + 500;
      console.log(`# ${method}: takeover ${takeoverMs} ms after SIGKILL (bound ${bound.toFixed(0)} ms)`);
      assert.ok(takeoverMs <= bound, `takeover took ${takeoverMs} ms, bound ${bound} ms`);
      await checkDownloads(dls);
    });

    it("the old master comes back and preempts; a graceful stop hands over within skew + 0.5 s", async () => {
      d1 = await startDaemon(n.d1, ["--config", conf.d1], children);
      await waitState(n.d1, "MASTER", 8000);
      await waitState(n.d2, "BACKUP", 2000);
      const t0 = Date.now();
      d1.proc.kill("SIGTERM");
      await waitState(n.d2, "MASTER", 3000);
      const took = (await waitLogTime(d2.stderr, /Entering MASTER STATE/, t0)) - t0;
      const bound = ((256 - 100) / 256) * 1000 + 500;
      console.log(`# ${method}: graceful handover ${took} ms (bound ${bound.toFixed(0)} ms)`);
      assert.ok(took <= bound, `handover took ${took} ms, bound ${bound} ms`);
      const r = await fetchThroughVip(n.c);
      assert.match(r, /^r[12]$/);
    });
  });
}

/** One request through the VIP from the client: the server's name. */
async function fetchThroughVip(ns: string): Promise<string> {
  const r = nsExecStatus(ns, ["curl", "-sS", "-m", "5", `http://${HA.VIP}:${HA.PORT}/`]);
  assert.equal(r.status, 0, `curl through the VIP: ${r.stderr}`);
  return r.stdout.trim();
}
