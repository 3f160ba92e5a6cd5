// `tsvs lab demo --scale`: N active directors lose one in the middle of many downloads.
//
//   1. lab up --directors N --bgp (each director announces the VIP to the router over BGP; the
//      router's BIRD merges the N routes into one multipath route, L4 hash)
//   2. the client opens M downloads through the VIP from eight addresses, paced by the server so
//      that they last the whole demo, and every byte is checked as it arrives (i mod 256)
//   3. the flows per director (the connections each daemon scheduled) show the router's spread
//   4. one director's daemon gets SIGKILL: its liveness interface (a TUN device the process
//      holds) goes with it, its BIRD withdraws the VIP, and the router drops it from the
//      multipath route: the time from the kill to that is printed
//   5. the flows it carried, and those ECMP moves between the others as the route changes, go on
//      through the remaining directors: the same real server by mh (and sloppy_tcp), or the
//      connection entry sync gave them; every download is expected to complete intact
//   6. lab down

import { type ChildProcess, spawn } from "node:child_process";
import { jsPath, sleep } from "./proc.js";
import {
  directorConns,
  directorPlan,
  killScaleDirector,
  routerRouteText,
  SCALE_ADDR,
  SCALE_CLIENTS,
  type ScaleNames,
  scaleDown,
  scaleUp,
  waitNexthops,
} from "./scale.js";
import { intact, type LoadResult } from "./scale-load.js";
import type { ServerKind } from "./servers.js";
import type { LabMethod } from "./topology.js";

export interface LoadRun {
  proc: ChildProcess;
  /** Resolves once every connection has its response headers (or failed), null if the load died first. */
  established: Promise<{ established: number; failed: number } | null>;
  /** Every connection's result, null if the load process failed. */
  done: Promise<LoadResult[] | null>;
  stderr: () => string;
}

export interface LoadSpec {
  conns: number;
  bytes: number;
  rate: number;
  timeoutMs: number;
  sources?: readonly string[];
}

/** Starts the downloads in the client namespace (src/lab/scale-load.ts). */
export function startLoad(names: ScaleNames, o: LoadSpec): LoadRun {
  const proc = spawn(
    "ip",
    [
      "netns",
      "exec",
      names.client,
      process.execPath,
      jsPath("src/lab/scale-load.js"),
      "--vip",
      SCALE_ADDR.VIP,
      "--sources",
      (o.sources ?? SCALE_CLIENTS).join(","),
      "--conns",
      String(o.conns),
      "--bytes",
      String(o.bytes),
      "--rate",
      String(o.rate),
      "--timeout-ms",
      String(o.timeoutMs),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let err = "";
  proc.stderr?.setEncoding("utf8");
  proc.stderr?.on("data", (c: string) => {
    err += c;
  });
  let onEst: (v: { established: number; failed: number } | null) => void = () => {};
  let onDone: (v: LoadResult[] | null) => void = () => {};
  const established = new Promise<{ established: number; failed: number } | null>((r) => {
    onEst = r;
  });
  const done = new Promise<LoadResult[] | null>((r) => {
    onDone = r;
  });
  let buf = "";
  proc.stdout?.setEncoding("utf8");
  proc.stdout?.on("data", (c: string) => {
    buf += c;
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const j = JSON.parse(line) as { established?: number; failed?: number; done?: LoadResult[] };
        if (j.established !== undefined) onEst({ established: j.established, failed: j.failed ?? 0 });
        if (j.done !== undefined) onDone(j.done);
      } catch {
        // not a line of ours
      }
    }
  });
  proc.once("exit", () => {
    onEst(null);
    onDone(null);
  });
  return { proc, established, done, stderr: () => err };
}

export interface ScaleDemoOptions {
  directors?: number;
  method?: LabMethod;
  scheduler?: string;
  sync?: boolean;
  conns?: number;
  /** How long each download lasts, in seconds. */
  seconds?: number;
  servers?: ServerKind | "auto";
  log?: (line: string) => void;
}

export interface ScaleDemoResult {
  method: LabMethod;
  directors: number;
  /** Why the demo could not run, else null. */
  skipped: string | null;
  /** Connections each director scheduled before the kill (by namespace). */
  before: Record<string, number>;
  /** And at the end (the killed one's as it was). */
  after: Record<string, number>;
  killed: string;
  /** From the SIGKILL to the router's route without the killed director; null: not within 15 s. */
  withdrawMs: number | null;
  conns: number;
  intact: number;
  failures: LoadResult[];
  ok: boolean;
}

const RATE = 32 * 1024;

export async function labDemoScale(names: ScaleNames, opts: ScaleDemoOptions = {}): Promise<ScaleDemoResult> {
  const log = opts.log ?? ((s: string) => process.stdout.write(`${s}\n`));
  const n = opts.directors ?? 3;
  const method = opts.method ?? "dr";
  const conns = opts.conns ?? 60;
  const seconds = opts.seconds ?? 12;
  const bytes = RATE * seconds;
  // The route's first next hop: with hash-threshold its loss also moves flows between the others.
  const victim = 1;
  const res: ScaleDemoResult = {
    method,
    directors: n,
    skipped: null,
    before: {},
    after: {},
    killed: directorPlan(names, victim).ns,
    withdrawMs: null,
    conns,
    intact: 0,
    failures: [],
    ok: false,
  };
  try {
    log(
      `== scale-out, ${method.toUpperCase()}: ${n} directors announcing ${SCALE_ADDR.VIP} over BGP to the router ${names.router} (BIRD, merge paths, L4 hash)`,
    );
    const st = await scaleUp(names, {
      directors: n,
      method,
      scheduler: opts.scheduler,
      sync: opts.sync,
      bgp: true,
      servers: opts.servers ?? "auto",
      log: (l) => log(`   ${l}`),
    });
    const notRunning = st.directors.filter((d) => d.status !== "running");
    if (notRunning.length > 0) {
      res.skipped = notRunning.map((d) => `${d.ns}: ${d.status}`).join("; ");
      log(`   skipped: ${res.skipped}`);
      return res;
    }
    log(`   # ip netns exec ${names.router} ip route show ${SCALE_ADDR.VIP}`);
    for (const l of routerRouteText(names).split("\n")) log(`   ${l}`);
    log(
      `   ${conns} downloads of ${bytes} bytes at ${RATE} B/s (~${seconds} s) from ${SCALE_CLIENTS.length} client addresses (${SCALE_CLIENTS[0]}-${SCALE_CLIENTS[SCALE_CLIENTS.length - 1].split(".")[3]})`,
    );
    const t0 = Date.now();
    const load = startLoad(names, { conns, bytes, rate: RATE, timeoutMs: (seconds + 30) * 1000 });
    const est = await load.established;
    if (est === null) throw new Error(`the load did not start: ${load.stderr().trim()}`);
    for (const d of st.directors) res.before[d.ns] = directorConns(d.ns) ?? 0;
    log(
      `   t=${((Date.now() - t0) / 1000).toFixed(2)} s: ${est.established} connected${est.failed > 0 ? `, ${est.failed} failed` : ""}; flows per director: ${st.directors.map((d) => `${d.ns} ${res.before[d.ns]}`).join(", ")}`,
    );
    // Long enough for every connection to reach the sync threshold and its message to leave
    // (a partly filled message waits up to 2 s).
    await sleep(2500);
    const killedAt = killScaleDirector(names, st, victim);
    log(`   t=${((killedAt - t0) / 1000).toFixed(2)} s: SIGKILL to the tsvs daemon of ${res.killed}`);
    const gone = directorPlan(names, victim).uplink;
    await waitNexthops(names, (h) => h.length > 0 && !h.includes(gone), 15_000, 20);
    const seen = Date.now();
    const hopsNow = routerRouteText(names);
    res.withdrawMs = hopsNow.includes(gone) ? null : seen - killedAt;
    log(
      res.withdrawMs !== null
        ? `   the router dropped ${res.killed} ${res.withdrawMs} ms after the kill (the daemon's liveness interface went with its process, and BIRD withdrew the VIP at once)`
        : `   the router still routes to ${res.killed} 15 s after the kill`,
    );
    for (const l of hopsNow.split("\n")) log(`   ${l}`);
    const results = await load.done;
    if (results === null) throw new Error(`the load failed: ${load.stderr().trim()}`);
    for (const d of st.directors)
      res.after[d.ns] = d.k === victim ? res.before[d.ns] : (directorConns(d.ns) ?? 0);
    res.intact = results.filter((r) => intact(r, bytes)).length;
    res.failures = results.filter((r) => !intact(r, bytes));
    log(
      `   connections scheduled at the end (a flow taken over through a synced entry is not scheduled again): ${st.directors
        .filter((d) => d.k !== victim)
        .map((d) => `${d.ns} ${res.after[d.ns]}`)
        .join(", ")}`,
    );
    log(
      `   downloads: ${res.intact} of ${conns} complete and intact (byte i = i mod 256), ${((Date.now() - t0) / 1000).toFixed(2)} s`,
    );
    for (const f of res.failures.slice(0, 5))
      log(
        `     ${f.src}:${f.sport}: ${f.error || "bad bytes"}, ${f.bytes} bytes${f.firstBad >= 0 ? `, first wrong byte at ${f.firstBad}` : ""}`,
      );
    res.ok = res.intact === conns && res.withdrawMs !== null;
    return res;
  } finally {
    await scaleDown(names);
  }
}
