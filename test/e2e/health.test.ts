// Health checks end to end (docs/health.md, docs/config.md "Running a configuration"): the lab's
// NAT director started with `tsvs daemon --config keepalived.conf`, real nginx on r1-r4, real curl
// and a Node load client in the client namespace.
//
//   VIP:80   rr, HTTP_GET on r1-r3:80, sorry_server r4 198.18.2.14:8080 (reached through x)
//   VIP:8080 rr, TCP_CHECK on r1-r3:8080 with inhibit_on_failure (weight 0 instead of removal)
//
// Stopping r1's nginx (its pid from the lab state, nothing else) under load takes r1 out of
// VIP:80 within delay_loop × (retry + 1) + slack and sets its weight 0 on VIP:8080; no request
// that starts after that fails or reaches r1. Restarted, r1 is back within one delay_loop. A
// changed weight applied by SIGHUP keeps an open keep-alive connection; a broken file is refused
// (`reload` op, file:line:col) and changes nothing. With r1-r3 all stopped, the sorry server
// answers.
// Prefix tsvs-hc<pid>; the lab is removed afterwards (and a killed run's lab by the next run).
// Needs root, iproute2, curl, nginx, nft: skipped with the reason, failed on CI.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "../../src/daemon/control.js";
import type { DaemonStatus } from "../../src/daemon/protocol.js";
import { nsExecStatus } from "../../src/io/netns.js";
import { tsvsCtl } from "../../src/lab/daemon.js";
import { labUp } from "../../src/lab/lab.js";
import { jsPath, type ProcRef, procAlive, sleep, spawnInNs, stopProc } from "../../src/lab/proc.js";
import { type LabNames, type LabState, labDown, writeState } from "../../src/lab/topology.js";
import { count, ipvsadm, KeepAliveClient, labUnavailable, runNames, VIP } from "./lab-methods-helpers.js";

const unavailable = labUnavailable();
const skip = unavailable === null ? false : `health e2e: ${unavailable}`;

const RIP: Record<string, string> = { r1: "198.18.1.11", r2: "198.18.1.12", r3: "198.18.1.13" };
const SORRY = "198.18.2.14:8080";
const SVC80 = `TCP  ${VIP}:80`;
const SVC8080 = `TCP  ${VIP}:8080`;
const DELAY_LOOP = 2;
const RETRY = 1;
const DELAY_BEFORE_RETRY = 1;
/** Down is declared after retry + 1 failed checks: one delay_loop, then retry × delay_before_retry. */
const DOWN_WITHIN_MS = (DELAY_LOOP * (RETRY + 1) + 2) * 1000;
/** A down server is checked every delay_loop; one success brings it back. */
const UP_WITHIN_MS = (DELAY_LOOP + 2) * 1000;

type Weights = Record<"r1" | "r2" | "r3", number | string>;

/** The keepalived.conf of the test; `weights` go into VIP:80's real servers. */
function keepalivedConf(w: Weights): string {
  const http = (n: keyof Weights) => `    real_server ${RIP[n]} 80 {
        weight ${w[n]}
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 1
            retry ${RETRY}
            delay_before_retry ${DELAY_BEFORE_RETRY}
        }
    }`;
  const tcp = (n: keyof Weights) => `    real_server ${RIP[n]} 8080 {
        weight 1
        inhibit_on_failure
        TCP_CHECK {
            connect_timeout 1
            retry ${RETRY}
            delay_before_retry ${DELAY_BEFORE_RETRY}
        }
    }`;
  return `! tsvs e2e: health checks (test/e2e/health.test.ts)
global_defs {
    router_id tsvs-hc
}

virtual_server ${VIP} 80 {
    delay_loop ${DELAY_LOOP}
    lb_algo rr
    lb_kind NAT
    protocol TCP
    sorry_server ${SORRY.replace(":", " ")}
${(["r1", "r2", "r3"] as const).map(http).join("\n")}
}

virtual_server ${VIP} 8080 {
    delay_loop ${DELAY_LOOP}
    lb_algo rr
    lb_kind NAT
    protocol TCP
${(["r1", "r2", "r3"] as const).map(tcp).join("\n")}
}
`;
}

/** `ipvsadm -Ln` as service → (real server → weight). */
async function table(names: LabNames): Promise<Map<string, Map<string, number>>> {
  const out = new Map<string, Map<string, number>>();
  let cur: Map<string, number> | null = null;
  for (const line of (await ipvsadm(names, ["-Ln"])).split("\n")) {
    const tok = line.trim().split(/\s+/);
    if (/^(TCP|UDP|SCTP|FWM)$/.test(tok[0])) {
      cur = new Map();
      out.set(`${tok[0]}  ${tok[1]}`, cur);
    } else if (tok[0] === "->" && tok[1] !== "RemoteAddress:Port" && cur !== null) {
      cur.set(tok[1], Number(tok[3]));
    }
  }
  return out;
}

async function dests(names: LabNames, svc: string): Promise<Record<string, number>> {
  return Object.fromEntries((await table(names)).get(svc) ?? []);
}

async function status(names: LabNames): Promise<DaemonStatus> {
  const res = await request(names.controlSock, { op: "status" });
  assert.ok("status" in res, JSON.stringify(res));
  return res.status;
}

/** Polls check() every 100 ms until it holds; returns the time it first held, or throws after ms. */
async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return Date.now();
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(100);
  }
}

/**
 * Sequential HTTP requests from the client namespace, one connection each, until stop() (or 20 s):
 * each answer as { start, end, body } ("error CODE" when the request failed or took over 1 s).
 */
class Load {
  readonly #proc;
  readonly #done: Promise<{ start: number; end: number; body: string }[]>;

  constructor(names: LabNames, url = `http://${VIP}/`) {
    const src = `const http=require("http");let stop=false;const end=Date.now()+20000;
process.stdin.on("end",()=>{stop=true});process.stdin.resume();
function one(){if(stop||Date.now()>end)process.exit(0);const t0=Date.now();let done=false;
const fin=(b)=>{if(done)return;done=true;console.log(t0+" "+Date.now()+" "+b);setTimeout(one,20)};
const req=http.get(${JSON.stringify(url)},{agent:false,timeout:1000},(res)=>{let b="";res.on("data",(c)=>b+=c);
res.on("end",()=>fin(b.trim()));res.on("error",(e)=>fin("error "+(e.code||e.message)))});
req.on("timeout",()=>req.destroy(Object.assign(new Error("timeout"),{code:"TIMEOUT"})));
req.on("error",(e)=>fin("error "+(e.code||e.message)));}
one();`;
    this.#proc = spawn("ip", ["netns", "exec", names.client, process.execPath, "-e", src], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    let buf = "";
    this.#proc.stdout.setEncoding("utf8");
    this.#proc.stdout.on("data", (c: string) => {
      buf += c;
    });
    const killer = setTimeout(() => this.#proc.kill("SIGKILL"), 25_000);
    this.#done = new Promise((resolve) => {
      this.#proc.on("close", () => {
        clearTimeout(killer);
        resolve(
          buf
            .split("\n")
            .filter((l) => l !== "")
            .map((l) => {
              const [start, end, ...body] = l.split(" ");
              return { start: Number(start), end: Number(end), body: body.join(" ") };
            }),
        );
      });
    });
  }

  stop(): Promise<{ start: number; end: number; body: string }[]> {
    this.#proc.stdin.end();
    return this.#done;
  }
}

/** `tsvs reload --control SOCK` in the director namespace, through the CLI entry (src/cli/tsvs.js). */
function tsvsReload(names: LabNames): { status: number; stdout: string; stderr: string } {
  const launcher =
    "const m=await import(process.argv[1]);process.exitCode=await m.main(process.argv.slice(2));";
  return nsExecStatus(
    names.director,
    [
      process.execPath,
      "--input-type=module",
      "-e",
      launcher,
      jsPath("src/cli/tsvs.js"),
      "reload",
      "--control",
      names.controlSock,
    ],
    15_000,
  );
}

function tally(rows: readonly { body: string }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) out[r.body] = (out[r.body] ?? 0) + 1;
  return out;
}

const parseProm = createRequire(import.meta.url)("parse-prometheus-text-format") as (
  text: string,
) => { name: string; metrics: { value: string; labels?: Record<string, string> }[] }[];

describe("health checks through the lab (NAT, keepalived.conf)", { skip, timeout: 180_000 }, () => {
  let names: LabNames;
  let st: LabState;
  let dir: string;
  let conf: string;

  const nginxOf = (name: string): ProcRef => {
    const p = st.procs.filter((q) => q.what === `nginx ${name}`).at(-1);
    assert.ok(p !== undefined, `no nginx recorded for ${name}`);
    return p;
  };
  /** Starts r's nginx again with the lab's own configuration, recorded in the lab state. */
  const restartNginx = (name: string): void => {
    const s = names.servers.find((x) => x.name === name);
    assert.ok(s !== undefined);
    const sdir = join(names.runDir, name);
    const p = spawnInNs(
      s.ns,
      ["nginx", "-c", join(sdir, "nginx.conf"), "-e", join(sdir, "nginx-error.log")],
      join(sdir, "nginx.log"),
      `nginx ${name}`,
    );
    st.procs.push({ ...p, ns: s.ns });
    writeState(names, st);
  };
  const health = async (): Promise<Record<string, boolean>> => {
    const rows = (await status(names)).config?.health ?? [];
    return Object.fromEntries(rows.map((h) => [`${h.service} ${h.server}`, h.alive]));
  };

  before(async () => {
    names = await runNames("hc");
    dir = mkdtempSync(join(tmpdir(), "tsvs-hc-"));
    conf = join(dir, "keepalived.conf");
    writeFileSync(conf, keepalivedConf({ r1: 1, r2: 1, r3: 1 }));
    st = await labUp(names, { method: "nat", daemonArgs: ["--config", conf], service: false });
    assert.equal(st.daemonStatus, "running", st.daemonStatus);
    assert.equal(st.servers, "nginx");
    await until("every real server checked up", 8000, async () => {
      const h = await health();
      return Object.keys(h).length === 6 && Object.values(h).every((v) => v);
    });
  });
  after(async () => {
    if (names !== undefined) await labDown(names);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("the file's services are in the table, the lab added none of its own", async () => {
    assert.deepEqual(await dests(names, SVC80), {
      "198.18.1.11:80": 1,
      "198.18.1.12:80": 1,
      "198.18.1.13:80": 1,
    });
    assert.deepEqual(await dests(names, SVC8080), {
      "198.18.1.11:8080": 1,
      "198.18.1.12:8080": 1,
      "198.18.1.13:8080": 1,
    });
    assert.equal((await table(names)).size, 2);
    assert.deepEqual(count(names, 6), { r1: 2, r2: 2, r3: 2 });
  });

  it("r1's server stopped under load: out of VIP:80 (weight 0 on VIP:8080) in time, no request after that reaches it", async () => {
    const load = new Load(names);
    await sleep(800);
    const stopped = Date.now();
    await stopProc(nginxOf("r1"));
    const out = await until("r1 removed from VIP:80", DOWN_WITHIN_MS, async () => {
      const d = await dests(names, SVC80);
      return !("198.18.1.11:80" in d) && Object.keys(d).length === 2;
    });
    await until("r1 at weight 0 on VIP:8080", DOWN_WITHIN_MS, async () => {
      const d = await dests(names, SVC8080);
      return d["198.18.1.11:8080"] === 0 && d["198.18.1.12:8080"] === 1 && d["198.18.1.13:8080"] === 1;
    });
    await sleep(1500);
    const rows = await load.stop();
    const before = rows.filter((r) => r.end < stopped);
    const afterOut = rows.filter((r) => r.start > out);
    assert.ok(
      before.some((r) => r.body === "r1"),
      JSON.stringify(tally(before)),
    );
    assert.ok(afterOut.length >= 10, `only ${afterOut.length} requests after r1 left`);
    const t = tally(afterOut);
    assert.deepEqual(Object.keys(t).sort(), ["r2", "r3"], `after r1 left: ${JSON.stringify(t)}`);
    // Requests between the stop and the removal that were scheduled to r1 were refused: the
    // reason the checks exist.
    const h = await health();
    assert.equal(h[`TCP ${VIP}:80 198.18.1.11:80`], false, JSON.stringify(h));
    assert.equal(h[`TCP ${VIP}:8080 198.18.1.11:8080`], false, JSON.stringify(h));
    const text = tsvsCtl(names, "status", []);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`TCP ${VIP}:80 -> 198\\.18\\.1\\.11:80: down`), text.stdout);
    assert.match(text.stdout, new RegExp(`TCP ${VIP}:80 -> 198\\.18\\.1\\.12:80: up`), text.stdout);
    console.log(
      `# r1 out ${out - stopped} ms after its server stopped (bound ${DOWN_WITHIN_MS} ms); ` +
        `load: ${JSON.stringify(tally(rows))}, after: ${JSON.stringify(t)}`,
    );
  });

  it("r1's server started again: back in VIP:80 and at weight 1 on VIP:8080 within delay_loop", async () => {
    const started = Date.now();
    restartNginx("r1");
    const back = await until("r1 back in VIP:80", UP_WITHIN_MS, async () => {
      const d = await dests(names, SVC80);
      return d["198.18.1.11:80"] === 1 && Object.keys(d).length === 3;
    });
    await until("r1 at weight 1 on VIP:8080", UP_WITHIN_MS, async () => {
      return (await dests(names, SVC8080))["198.18.1.11:8080"] === 1;
    });
    const c = count(names, 6);
    assert.equal(c.r1, 2, JSON.stringify(c));
    // The verdict changes are counted once each, as the rs-down / rs-up log lines.
    const scrape = nsExecStatus(names.director, ["curl", "-sf", "http://127.0.0.1:9715/metrics"]);
    assert.equal(scrape.status, 0, scrape.stderr);
    const trans = parseProm(scrape.stdout).find((f) => f.name === "tsvs_realserver_transitions_total");
    const n = (to: string): number =>
      Number(
        trans?.metrics.find(
          (m) =>
            m.labels?.service === `TCP ${VIP}:80` &&
            m.labels?.server === "198.18.1.11:80" &&
            m.labels?.to === to,
        )?.value,
      );
    assert.deepEqual([n("down"), n("up")], [1, 1], JSON.stringify(trans?.metrics));
    console.log(`# r1 back ${back - started} ms after its server started (bound ${UP_WITHIN_MS} ms)`);
  });

  it("SIGHUP applies a changed weight as an edit: an open keep-alive connection goes on; a broken file is refused with file:line:col and changes nothing", async () => {
    const ka = new KeepAliveClient(names);
    try {
      const first = await ka.get();
      assert.match(first, /^r[123] \d+ new$/, first);
      const [who, port] = first.split(" ");
      const reloads = (await status(names)).config?.reloads;
      assert.equal(reloads, 0);

      writeFileSync(conf, keepalivedConf({ r1: 2, r2: 3, r3: 4 }));
      assert.ok(st.daemon !== null && procAlive(st.daemon));
      process.kill(st.daemon.pid, "SIGHUP");
      await until("the new weights", 5000, async () => {
        const d = await dests(names, SVC80);
        return d["198.18.1.11:80"] === 2 && d["198.18.1.12:80"] === 3 && d["198.18.1.13:80"] === 4;
      });
      assert.equal((await status(names)).config?.reloads, 1);
      assert.equal(await ka.get(), `${who} ${port} reused`);
      const h = await health();
      assert.ok(
        Object.values(h).every((v) => v),
        `health kept through the reload: ${JSON.stringify(h)}`,
      );

      // A weight out of range, on a known line: the whole file is refused.
      const broken = keepalivedConf({ r1: 2, r2: 70000, r3: 9 });
      writeFileSync(conf, broken);
      const lines = broken.split("\n");
      const line = lines.findIndex((l) => l.includes("weight 70000")) + 1;
      const col = lines[line - 1].indexOf("70000") + 1;
      const before = await table(names);
      const res = await request(names.controlSock, { op: "reload" });
      assert.ok("error" in res, JSON.stringify(res));
      const cli = tsvsReload(names);
      assert.equal(cli.status, 1, cli.stdout);
      assert.ok(cli.stderr.includes(res.error), cli.stderr);
      console.log(`# broken file refused: ${res.error}`);
      assert.match(
        res.error,
        new RegExp(`^${conf.replace(/[.]/g, "\\.")}:${line}:${col}: weight must be 0\\.\\.65535`, "m"),
        res.error,
      );
      // The same file by SIGHUP: logged, refused, the daemon goes on. The refusal is in the
      // daemon's log (a missing SIGHUP handler would end the process instead).
      const refusals = (): number =>
        readFileSync(names.daemonLog, "utf8")
          .split("\n")
          .filter((l) => l.includes("configuration not reloaded")).length;
      const refusedBefore = refusals();
      process.kill(st.daemon.pid, "SIGHUP");
      await until("SIGHUP's refusal in the daemon log", 5000, async () => refusals() > refusedBefore);
      assert.ok(procAlive(st.daemon), "the daemon survived a broken file");
      assert.deepEqual(await table(names), before);
      assert.equal((await status(names)).config?.reloads, 1);
      assert.equal(await ka.get(), `${who} ${port} reused`);

      writeFileSync(conf, keepalivedConf({ r1: 1, r2: 1, r3: 1 }));
      const ok = tsvsReload(names);
      assert.equal(ok.status, 0, ok.stderr);
      assert.equal(ok.stdout, `reloaded ${conf}\n`);
      assert.equal((await status(names)).config?.reloads, 2);
      assert.deepEqual(await dests(names, SVC80), {
        "198.18.1.11:80": 1,
        "198.18.1.12:80": 1,
        "198.18.1.13:80": 1,
      });
      assert.equal(await ka.get(), `${who} ${port} reused`);
    } finally {
      ka.close();
    }
  });

  it("all three servers stopped: the sorry server answers; VIP:8080 keeps them at weight 0", async () => {
    const stopped = Date.now();
    await Promise.all(["r1", "r2", "r3"].map((n) => stopProc(nginxOf(n))));
    const on = await until("only the sorry server in VIP:80", DOWN_WITHIN_MS, async () => {
      const d = await dests(names, SVC80);
      return Object.keys(d).length === 1 && d[SORRY] !== undefined;
    });
    assert.deepEqual(count(names, 4), { r4: 4 });
    await until("VIP:8080 all at weight 0", DOWN_WITHIN_MS, async () => {
      const d = await dests(names, SVC8080);
      return Object.keys(d).length === 3 && Object.values(d).every((w) => w === 0);
    });
    const h = await health();
    assert.ok(
      Object.values(h).every((v) => !v),
      JSON.stringify(h),
    );
    console.log(`# sorry server on ${on - stopped} ms after the servers stopped`);
  });
});
