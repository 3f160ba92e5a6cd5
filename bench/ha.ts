// bench:ha — failover and connection-sync figures of a tsvs director pair (issue 12, docs/ha.md,
// docs/bench.md "HA"). Not a test: it builds the HA e2e topology in namespaces tsvs-hb<pid>-*
// (bench/harness/ha-topology.ts; root), runs two `tsvs daemon --config keepalived.conf` (NAT, VI_1
// + VI_2 in a sync group, d1 priority 150, d2 100, `lvs_sync_daemon eth1 VI_1 id 7`), measures,
// writes bench/results/ha-<date>.json and prints a table.
//
//   [TSVS_HA_BENCH_ROUNDS=20] node dist/bench/ha.js          (make bench-ha)
//
// 1. Takeover. Per round: d1 MASTER and d2 BACKUP and settled; a probe in the client namespace
//    starts a request (one short TCP connection, GET /) through the VIP every 20 ms (10 ms for
//    advert_int < 1); d1's daemon gets SIGKILL (no priority-0 advert). Measured from the kill:
//    "vrrp" = the `time` of d2's "VRRP_Instance(VI_1) Entering MASTER STATE" log line, "client" =
//    the end of the first successful request that started after the kill. Then d1 is restarted,
//    preempts (150 > 100), and the next round starts once both are settled.
//    Bound: master-down time = 3 × advert_int + skew, skew = (256 − 100)/256 × (v2: 1 s, v3:
//    advert_int); the kill lands at a random point of the advert interval, so the takeover
//    should fall between bound − advert_int and bound (+ the time to notice the timer).
// 2. Connection sync. Fresh pair per cell, VRRPv2 advert_int 1. The client opens short connections
//    through the VIP (an open loop at RATE conn/s); the master's daemon CPU (utime + stime of its
//    process, /proc/PID/stat, all its threads) over the load and a 3 s tail, with and without
//    lvs_sync_daemon in both configs (cells alternate), divided by the connections; sync counters
//    (master connsSent, backup connsReceived) read on the control sockets every 500 ms in every
//    cell. Two more cells, a closed loop of CONCURRENCY connections with and without sync, give the
//    most connections per second the pair carried (and synced) here.
//
// Knobs (env): TSVS_HA_BENCH_ROUNDS (20), TSVS_HA_BENCH_VARIANTS ("2:1,3:0.1": version:advert_int),
// TSVS_HA_BENCH_ONLY ("takeover,sync"), TSVS_HA_BENCH_RATE (1000 conn/s), TSVS_HA_BENCH_LOAD_S (10),
// TSVS_HA_BENCH_CPU_REPS (3 per setting), TSVS_HA_BENCH_CONCURRENCY (64, the closed-loop cell),
// TSVS_HA_BENCH_OUT (bench/results).

import type { ChildProcess } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { sleep } from "../src/lab/proc.js";
import { HA, haConf, logTime, removeHa, spawnIn } from "../test/e2e/ha-helpers.js";
import { Children, type Daemon, startDaemon } from "../test/support/e2e-daemon.js";
import {
  benchNames,
  buildBenchHa,
  controlStatus,
  type DaemonStatus,
  procCpuTicks,
  removeStaleBench,
  waitBoth,
} from "./harness/ha-topology.js";
import { clockTicks, median, round } from "./harness/util.js";

const CLIENT = fileURLToPath(new URL("./harness/ha-client.js", import.meta.url));

function num(name: string, dflt: number): number {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name}: not a number ≥ 0`);
  return v;
}

const ROUNDS = Math.min(num("TSVS_HA_BENCH_ROUNDS", 20), 500);
const RATE = num("TSVS_HA_BENCH_RATE", 1000);
const LOAD_S = Math.min(num("TSVS_HA_BENCH_LOAD_S", 10), 300);
const CPU_REPS = Math.min(num("TSVS_HA_BENCH_CPU_REPS", 3), 50);
const CONCURRENCY = Math.max(1, Math.min(num("TSVS_HA_BENCH_CONCURRENCY", 64), 1000));
const ONLY = new Set((process.env.TSVS_HA_BENCH_ONLY ?? "takeover,sync").split(","));
const OUT = resolve(process.env.TSVS_HA_BENCH_OUT ?? "bench/results");
const VARIANTS = (process.env.TSVS_HA_BENCH_VARIANTS ?? "2:1,3:0.1").split(",").map((s) => {
  const [v, a] = s.split(":").map(Number);
  if ((v !== 2 && v !== 3) || !(a > 0) || (v === 2 && !Number.isInteger(a)))
    throw new Error(`TSVS_HA_BENCH_VARIANTS: bad "${s}" (version:advert_int, v2 whole seconds)`);
  return { version: v as 2 | 3, advertInt: a };
});
const MASTER_RE = /VRRP_Instance\(VI_1\) Entering MASTER STATE/;
const PRIO = { d1: 150, d2: 100 };

const n = benchNames();
const children = new Children();
const dir = join("/tmp", n.prefix);

/** Master-down time of the backup (priority 100) in ms: 3 × advert_int + skew (docs/ha.md). */
function masterDownMs(version: 2 | 3, advertInt: number): number {
  const skew = ((256 - PRIO.d2) / 256) * (version === 2 ? 1000 : advertInt * 1000);
  return 3 * advertInt * 1000 + skew;
}

interface Pair {
  d1: Daemon;
  d2: Daemon;
  conf1: string;
  conf2: string;
}

async function stopDaemon(d: Daemon | undefined): Promise<void> {
  if (d === undefined || d.proc.exitCode !== null || d.proc.signalCode !== null) return;
  d.proc.kill("SIGTERM");
  const gone = await Promise.race([d.exited.then(() => true), sleep(5000).then(() => false)]);
  if (!gone) d.proc.kill("SIGKILL");
  await Promise.race([d.exited, sleep(2000)]);
}

/** Fresh daemons on d1 and d2; resolves once d1 is MASTER and d2 BACKUP on both instances. */
async function startPair(version: 2 | 3, advertInt: number, sync: boolean, tag: string): Promise<Pair> {
  const conf = (priority: number): string => haConf({ priority, version, advertInt, method: "nat", sync });
  const conf1 = join(dir, `${tag}-d1.conf`);
  const conf2 = join(dir, `${tag}-d2.conf`);
  writeFileSync(conf1, conf(PRIO.d1));
  writeFileSync(conf2, conf(PRIO.d2));
  const [d1, d2] = await Promise.all([
    startDaemon(n.d1, ["--config", conf1], children),
    startDaemon(n.d2, ["--config", conf2], children),
  ]);
  const bound = masterDownMs(version, advertInt) + 10_000;
  if ((await waitBoth(n.d1, "MASTER", bound)) === null || (await waitBoth(n.d2, "BACKUP", 3000)) === null)
    throw new Error(`pair did not settle (d1 ${await states(n.d1)}, d2 ${await states(n.d2)})`);
  return { d1, d2, conf1, conf2 };
}

async function stopPair(p: Pair | undefined): Promise<void> {
  await Promise.all([stopDaemon(p?.d1), stopDaemon(p?.d2)]);
}

async function states(ns: string): Promise<string> {
  const v = (await controlStatus(ns))?.vrrp;
  return v === undefined ? "no answer" : v.map((i) => `${i.name}=${i.state}`).join(" ");
}

/** Waits (bounded) for a log line matching re at or after since; its pino time or null. */
async function waitLog(log: () => string, re: RegExp, since: number, ms: number): Promise<number | null> {
  const t0 = Date.now();
  for (;;) {
    const t = logTime(log(), re, since);
    if (t !== null || Date.now() - t0 > ms) return t;
    await sleep(25);
  }
}

// ---- 1. takeover -------------------------------------------------------------------------------

interface Probe {
  proc: ChildProcess;
  /** [start, end] of each successful request (ms since the epoch). */
  oks: Array<[number, number]>;
  fails: Array<[number, number]>;
}

function startProbe(intervalMs: number, timeoutMs: number, maxS: number): Probe {
  const proc = spawnIn(
    children,
    n.c,
    [
      process.execPath,
      CLIENT,
      "probe",
      HA.VIP,
      String(HA.PORT),
      String(intervalMs),
      String(timeoutMs),
      String(maxS),
    ],
    ["ignore", "pipe", "ignore"],
  );
  const p: Probe = { proc, oks: [], fails: [] };
  let rest = "";
  proc.stdout?.setEncoding("utf8");
  proc.stdout?.on("data", (d: string) => {
    rest += d;
    const lines = rest.split("\n");
    rest = lines.pop() ?? "";
    for (const l of lines) {
      const [what, a, b] = l.split(" ");
      (what === "ok" ? p.oks : p.fails).push([Number(a), Number(b)]);
    }
  });
  return p;
}

async function stopProbe(p: Probe): Promise<void> {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null) return;
  const exited = new Promise((r) => p.proc.once("exit", r));
  p.proc.kill("SIGTERM");
  // The probe waits for its requests in flight (each bounded by its timeout).
  if ((await Promise.race([exited.then(() => true), sleep(3000).then(() => false)])) === false) {
    p.proc.kill("SIGKILL");
    await Promise.race([exited, sleep(1000)]);
  }
}

interface RoundResult {
  round: number;
  /** Wait between the probe's first success and the kill (200 ms + a step through the advert interval). */
  kill_delay_ms: number;
  /** Kill → the backup's "Entering MASTER STATE" log time. */
  vrrp_ms: number | null;
  /** Kill → the end of the first successful request started after the kill. */
  client_ms: number | null;
  /** Requests started after the kill that failed (timed out or refused) before that success. */
  client_failures: number;
  /** Restarted d1: "ready" → MASTER on both instances again. */
  preempt_ms: number | null;
  error?: string;
}

async function takeoverRound(pair: Pair, i: number, version: 2 | 3, advertInt: number): Promise<RoundResult> {
  const advMs = advertInt * 1000;
  const bound = masterDownMs(version, advertInt);
  const r: RoundResult = emptyRound(i);
  const interval = advertInt < 1 ? 10 : 20;
  const probe = startProbe(interval, 1000, Math.ceil((bound + 15_000) / 1000));
  try {
    // The probe gets through before the kill (bounded: 5 s).
    for (let k = 0; k < 200 && probe.oks.length === 0; k++) await sleep(25);
    if (probe.oks.length === 0) throw new Error("no request through the VIP before the kill");
    // Each round settles in the same time after d1's preemption, so a fixed wait would kill it at
    // the same point of its advert interval every time (and measure one point of the range
    // floor…bound). The rounds spread the kill over the interval instead (golden-ratio steps:
    // even coverage for any number of rounds).
    r.kill_delay_ms = Math.round(200 + ((i * 0.6180339887) % 1) * advMs);
    await sleep(r.kill_delay_ms);
    const killedAt = Date.now();
    pair.d1.proc.kill("SIGKILL");
    await Promise.race([pair.d1.exited, sleep(2000)]);
    if ((await waitBoth(n.d2, "MASTER", bound + 5000)) === null)
      throw new Error(`no takeover within ${Math.round(bound + 5000)} ms (d2 ${await states(n.d2)})`);
    const t = await waitLog(pair.d2.stderr, MASTER_RE, killedAt, 3000);
    r.vrrp_ms = t === null ? null : t - killedAt;
    // The client: the first success among requests started after the kill (bounded: 10 s).
    const deadline = Date.now() + 10_000;
    let first: [number, number] | undefined;
    while (Date.now() < deadline) {
      first = probe.oks.filter(([t0]) => t0 >= killedAt).sort((a, b) => a[1] - b[1])[0];
      if (first !== undefined) break;
      await sleep(interval);
    }
    if (first !== undefined) {
      r.client_ms = first[1] - killedAt;
      const end = first[1];
      r.client_failures = probe.fails.filter(([t0, t1]) => t0 >= killedAt && t1 <= end).length;
    }
  } catch (e) {
    r.error = e instanceof Error ? e.message : String(e);
  } finally {
    await stopProbe(probe);
  }
  // d1 comes back and preempts; the round ends when both are settled again.
  if (pair.d1.proc.exitCode === null && pair.d1.proc.signalCode === null) pair.d1.proc.kill("SIGKILL");
  await Promise.race([pair.d1.exited, sleep(2000)]);
  let pre: number | null = null;
  try {
    pair.d1 = await startDaemon(n.d1, ["--config", pair.conf1], children);
    pre = await waitBoth(n.d1, "MASTER", bound + 10_000);
    if (pre !== null && (await waitBoth(n.d2, "BACKUP", 3000)) === null) pre = null;
  } catch (e) {
    r.error = `${r.error ?? ""} ${e instanceof Error ? e.message : String(e)}`.trim();
  }
  if (pre === null) {
    r.error =
      `${r.error ?? ""} d1 did not preempt (d1 ${await states(n.d1)}, d2 ${await states(n.d2)})`.trim();
    throw Object.assign(new Error(r.error), { round: r });
  }
  r.preempt_ms = Math.round(pre);
  // Settled: at least two adverts (and 1 s) with the roles back in place.
  await sleep(Math.max(1000, 2 * advMs));
  return r;
}

interface Summary {
  n: number;
  min: number | null;
  median: number | null;
  p99: number | null;
  max: number | null;
}

/** Nearest-rank percentiles (with 20 samples p99 is the maximum). */
function summary(xs: readonly (number | null)[]): Summary {
  const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return { n: 0, min: null, median: null, p99: null, max: null };
  const rank = (p: number): number => v[Math.min(v.length - 1, Math.ceil(p * v.length) - 1)];
  return { n: v.length, min: v[0], median: round(median(v), 1), p99: rank(0.99), max: v[v.length - 1] };
}

interface TakeoverResult {
  version: 2 | 3;
  advert_int_s: number;
  /** 3 × advert_int + skew: the longest the backup waits after the master's last advert. */
  bound_ms: number;
  /** bound − advert_int: the shortest, when the master dies just before its next advert. */
  floor_ms: number;
  vrrp_ms: Summary;
  client_ms: Summary;
  preempt_ms: Summary;
  rounds: RoundResult[];
  error?: string;
}

async function takeover(version: 2 | 3, advertInt: number): Promise<TakeoverResult> {
  const bound = masterDownMs(version, advertInt);
  const res: TakeoverResult = {
    version,
    advert_int_s: advertInt,
    bound_ms: round(bound, 1),
    floor_ms: round(bound - advertInt * 1000, 1),
    vrrp_ms: summary([]),
    client_ms: summary([]),
    preempt_ms: summary([]),
    rounds: [],
  };
  let pair: Pair | undefined;
  try {
    pair = await startPair(version, advertInt, true, `v${version}-${advertInt}`);
    await sleep(Math.max(1000, 2 * advertInt * 1000));
    for (let i = 1; i <= ROUNDS; i++) {
      let r: RoundResult;
      try {
        r = await takeoverRound(pair, i, version, advertInt);
      } catch (e) {
        // d1 did not come back: the variant ends here.
        r = (e as { round?: RoundResult }).round ?? { ...emptyRound(i), error: String(e) };
        res.rounds.push(r);
        throw e;
      }
      res.rounds.push(r);
      console.log(
        JSON.stringify({
          takeover: `v${version} advert_int ${advertInt}`,
          bound_ms: Math.round(bound),
          ...r,
        }),
      );
    }
  } catch (e) {
    res.error = e instanceof Error ? e.message : String(e);
    console.error(`takeover v${version} advert_int ${advertInt}: ${res.error}`);
  } finally {
    await stopPair(pair);
  }
  res.vrrp_ms = summary(res.rounds.map((r) => r.vrrp_ms));
  res.client_ms = summary(res.rounds.map((r) => r.client_ms));
  res.preempt_ms = summary(res.rounds.map((r) => r.preempt_ms));
  return res;
}

function emptyRound(i: number): RoundResult {
  return { round: i, kill_delay_ms: 0, vrrp_ms: null, client_ms: null, client_failures: 0, preempt_ms: null };
}

// ---- 2. connection sync ------------------------------------------------------------------------

interface LoadResult {
  ok: number;
  fail: number;
  skipped: number;
  seconds: number;
}

function runLoad(rate: number, conc: number, seconds: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const proc = spawnIn(
      children,
      n.c,
      [
        process.execPath,
        CLIENT,
        "load",
        HA.VIP,
        String(HA.PORT),
        String(rate),
        String(conc),
        String(seconds),
      ],
      ["ignore", "pipe", "pipe"],
    );
    let out = "";
    let err = "";
    proc.stdout?.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    proc.stderr?.setEncoding("utf8").on("data", (d: string) => {
      err += d;
    });
    // Bounded: the load's own duration, its requests' 5 s timeout, and start-up.
    const timer = setTimeout(() => proc.kill("SIGKILL"), (seconds + 15) * 1000);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      const last = out.trim().split("\n").pop() ?? "";
      if (code === 0 && last.startsWith("{")) resolve(JSON.parse(last) as LoadResult);
      else reject(new Error(`load client exited ${code}: ${err.trim()}`));
    });
  });
}

interface Sample {
  t_ms: number;
  sent: number;
  received: number;
}

interface SyncCell {
  sync: boolean;
  mode: string;
  conns: number;
  failed: number;
  skipped: number;
  load_s: number;
  conns_per_s: number;
  /** Master daemon's utime + stime over the load and the 3 s tail. */
  master_cpu_ms: number;
  master_cpu_us_per_conn: number;
  backup_cpu_ms: number;
  /** Entries the master sent / the backup received during the load and the tail. */
  conns_sent: number;
  conns_received: number;
  /** Entries the backup received per second while the load ran (from ~1 s into it to its end). */
  received_per_s: number;
  /** received_per_s over the entries sent per connection in this cell: connections synced per second. */
  synced_conns_per_s: number;
  /** Largest sent − received seen in a sample. */
  max_lag: number;
  sync_drops: Record<string, number>;
  samples: Sample[];
}

const syncOf = (s: DaemonStatus | null, role: string) => s?.sync?.find((x) => x.role === role);

async function syncCell(sync: boolean, rate: number, conc: number): Promise<SyncCell> {
  const mode = rate > 0 ? `open loop ${rate} conn/s` : `closed loop, ${conc} in flight`;
  const pair = await startPair(2, 1, sync, `sync-${sync ? "on" : "off"}`);
  try {
    // Warm-up (JIT, ARP, the first connections), then the sync daemon's 2 s flush of it.
    await runLoad(rate, conc, 2);
    await sleep(2500);
    const hz = clockTicks();
    const pid1 = pair.d1.proc.pid ?? -1;
    const pid2 = pair.d2.proc.pid ?? -1;
    const c1 = procCpuTicks(pid1);
    const c2 = procCpuTicks(pid2);
    const read = async (): Promise<{ sent: number; received: number }> => {
      const [a, b] = await Promise.all([controlStatus(n.d1), controlStatus(n.d2)]);
      return { sent: syncOf(a, "master")?.connsSent ?? 0, received: syncOf(b, "backup")?.connsReceived ?? 0 };
    };
    const base = await read();
    const t0 = Date.now();
    const samples: Sample[] = [];
    let running = true;
    const load = runLoad(rate, conc, LOAD_S).finally(() => {
      running = false;
    });
    // Awaited after the sampling; handled now so that a failed load is this cell's error, not an
    // unhandled rejection that would end the process before its teardown.
    load.catch(() => undefined);
    // Samples every 500 ms through the load (bounded by the load's own bound) and a 3 s tail.
    const sample = async (): Promise<void> => {
      await sleep(500);
      const s = await read();
      samples.push({ t_ms: Date.now() - t0, sent: s.sent - base.sent, received: s.received - base.received });
    };
    for (let k = 0; running && k < 2 * (LOAD_S + 20); k++) await sample();
    const loadSamples = samples.length;
    for (let k = 0; k < 6; k++) await sample();
    const lr = await load;
    const cpu1 = ((procCpuTicks(pid1) - c1) * 1000) / hz;
    const cpu2 = ((procCpuTicks(pid2) - c2) * 1000) / hz;
    const last = samples[samples.length - 1] ?? { sent: 0, received: 0 };
    // The backup's steady rate: from the sample ~1 s into the load to the last one before it ended.
    const inLoad = samples.slice(0, loadSamples);
    const a = inLoad.find((x) => x.t_ms >= 1000) ?? inLoad[0];
    const b = inLoad[inLoad.length - 1];
    const recvRate =
      a !== undefined && b !== undefined && b.t_ms > a.t_ms
        ? ((b.received - a.received) * 1000) / (b.t_ms - a.t_ms)
        : 0;
    const drops = syncOf(await controlStatus(n.d2), "backup")?.drops ?? {};
    return {
      sync,
      mode,
      conns: lr.ok,
      failed: lr.fail,
      skipped: lr.skipped,
      load_s: round(lr.seconds, 2),
      conns_per_s: round(lr.ok / lr.seconds, 1),
      master_cpu_ms: round(cpu1, 0),
      master_cpu_us_per_conn: round((cpu1 * 1000) / Math.max(1, lr.ok), 1),
      backup_cpu_ms: round(cpu2, 0),
      conns_sent: last.sent,
      conns_received: last.received,
      received_per_s: round(recvRate, 1),
      synced_conns_per_s: last.sent > 0 ? round((recvRate * lr.ok) / last.sent, 1) : 0,
      max_lag: Math.max(0, ...samples.map((s) => s.sent - s.received)),
      sync_drops: Object.fromEntries(Object.entries(drops).filter(([, v]) => v > 0)),
      samples,
    };
  } finally {
    await stopPair(pair);
  }
}

interface SyncResult {
  cells: SyncCell[];
  /** Medians of master_cpu_us_per_conn over the open-loop cells. */
  cpu_us_per_conn_sync: number | null;
  cpu_us_per_conn_nosync: number | null;
  extra_cpu_us_per_conn: number | null;
  /** The extra CPU over the entries the master sent (a connection may be sent more than once). */
  extra_cpu_us_per_entry: number | null;
  entries_per_conn: number | null;
  max_received_per_s: number | null;
  max_synced_conns_per_s: number | null;
  error?: string;
}

async function syncBench(): Promise<SyncResult> {
  const res: SyncResult = {
    cells: [],
    cpu_us_per_conn_sync: null,
    cpu_us_per_conn_nosync: null,
    extra_cpu_us_per_conn: null,
    extra_cpu_us_per_entry: null,
    entries_per_conn: null,
    max_received_per_s: null,
    max_synced_conns_per_s: null,
  };
  try {
    // Alternating (on, off, off, on, …) so that a burst of outside load hits both settings.
    for (let rep = 0; rep < CPU_REPS; rep++)
      for (const sync of rep % 2 === 0 ? [true, false] : [false, true]) {
        const c = await syncCell(sync, RATE, CONCURRENCY);
        res.cells.push(c);
        console.log(JSON.stringify({ sync_cell: c.mode, ...c, samples: c.samples.length }));
      }
    // The most the pair does here, with and without sync (closed loop).
    for (const sync of [true, false]) {
      const c = await syncCell(sync, 0, CONCURRENCY);
      res.cells.push(c);
      console.log(JSON.stringify({ sync_cell: c.mode, ...c, samples: c.samples.length }));
    }
  } catch (e) {
    res.error = e instanceof Error ? e.message : String(e);
    console.error(`sync: ${res.error}`);
  }
  const open = res.cells.filter((c) => c.mode.startsWith("open"));
  const on = open.filter((c) => c.sync);
  const off = open.filter((c) => !c.sync);
  if (on.length > 0 && off.length > 0) {
    const a = median(on.map((c) => c.master_cpu_us_per_conn));
    const b = median(off.map((c) => c.master_cpu_us_per_conn));
    const epc = median(on.map((c) => c.conns_sent / Math.max(1, c.conns)));
    res.cpu_us_per_conn_sync = round(a, 1);
    res.cpu_us_per_conn_nosync = round(b, 1);
    res.extra_cpu_us_per_conn = round(a - b, 1);
    res.entries_per_conn = round(epc, 2);
    res.extra_cpu_us_per_entry = epc > 0 ? round((a - b) / epc, 1) : null;
  }
  const synced = res.cells.filter((c) => c.sync);
  if (synced.length > 0) {
    res.max_received_per_s = Math.max(...synced.map((c) => c.received_per_s));
    res.max_synced_conns_per_s = Math.max(...synced.map((c) => c.synced_conns_per_s));
  }
  return res;
}

// ---- report ------------------------------------------------------------------------------------

const METHOD = {
  takeover:
    "Per round: d1 (priority 150) MASTER, d2 (100) BACKUP, settled; SIGKILL to d1's daemon. vrrp_ms = pino time of d2's " +
    '"VRRP_Instance(VI_1) Entering MASTER STATE" minus the kill time; client_ms = end of the first successful request ' +
    "(new TCP connection, GET /, through the VIP from the client namespace; one started every 20 ms, 10 ms for " +
    "advert_int < 1; 1 s timeout each) among those started after the kill, minus the kill time. The kill comes " +
    "200 ms + a golden-ratio step through the advert interval after the probe's first success, so that the rounds " +
    "sample the whole range floor…bound (a fixed wait hits one phase of the master's adverts). Then d1 is restarted " +
    "and preempts (preempt_ms: its ready → MASTER). bound_ms = 3 × advert_int + skew ((256 − 100)/256 s; v3 × advert_int); " +
    "floor_ms = bound − advert_int (the kill just before the master's next advert). p99 is nearest-rank.",
  sync:
    "Fresh pair per cell (NAT, VRRPv2 advert_int 1). Load = short connections (GET /, server closes) from the client " +
    "namespace through the VIP; 2 s warm-up + 2.5 s for the sync flush, then LOAD_S of load and a 3 s tail. Master " +
    "CPU = utime + stime of its daemon process (/proc/PID/stat, all threads) over load + tail, divided by the " +
    "completed connections. Sync on/off = lvs_sync_daemon in or out of both configs; cells alternate. " +
    "conns_sent/received = the master's sync connsSent and the backup's connsReceived (entries: a connection is " +
    "sent at its 3rd packet and again on FIN/CLOSE state changes), read on the control sockets every 500 ms in " +
    "every cell. extra_cpu_us_per_conn = median(on) − median(off) of the open-loop cells; synced conn/s = entries/s at the " +
    "backup ÷ entries sent per connection; the closed-loop cells (CONCURRENCY in flight) give the most the pair carried. The daemon's CPU includes " +
    "the peers' softirq work veth runs in its context; it is the same in both settings and cancels in the difference.",
};

function host(): Record<string, unknown> {
  return {
    kernel: release(),
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? "?",
    node: process.version,
  };
}

function fmt(x: number | null | undefined, d = 0): string {
  return x === null || x === undefined ? "—" : x.toFixed(d);
}

function printTables(tk: TakeoverResult[], sy: SyncResult | null): void {
  if (tk.length > 0) {
    console.log("\nTakeover after SIGKILL of the master (ms; median / p99 / min–max over the rounds)\n");
    console.log(
      "| VRRP | advert_int | rounds | bound (floor) | Entering MASTER: median | p99 | min–max | client: median | p99 | min–max |",
    );
    console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const t of tk)
      console.log(
        `| v${t.version} | ${t.advert_int_s} s | ${t.vrrp_ms.n}/${ROUNDS} | ${fmt(t.bound_ms)} (${fmt(t.floor_ms)}) | ` +
          `${fmt(t.vrrp_ms.median)} | ${fmt(t.vrrp_ms.p99)} | ${fmt(t.vrrp_ms.min)}–${fmt(t.vrrp_ms.max)} | ` +
          `${fmt(t.client_ms.median)} | ${fmt(t.client_ms.p99)} | ${fmt(t.client_ms.min)}–${fmt(t.client_ms.max)} |`,
      );
  }
  if (sy !== null) {
    console.log("\nConnection sync (master d1 → backup d2)\n");
    console.log(
      "| sync | load | conn/s | master CPU ms | µs/conn | backup CPU ms | entries sent | received | entries/s at backup | synced conn/s | max lag |",
    );
    console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const c of sy.cells)
      console.log(
        `| ${c.sync ? "on" : "off"} | ${c.mode} | ${fmt(c.conns_per_s)} | ${fmt(c.master_cpu_ms)} | ${fmt(c.master_cpu_us_per_conn, 1)} | ` +
          `${fmt(c.backup_cpu_ms)} | ${c.sync ? c.conns_sent : "—"} | ${c.sync ? c.conns_received : "—"} | ` +
          `${c.sync ? fmt(c.received_per_s) : "—"} | ${c.sync ? fmt(c.synced_conns_per_s) : "—"} | ${c.sync ? c.max_lag : "—"} |`,
      );
    console.log(
      `\nmaster CPU per connection (open loop, medians): ${fmt(sy.cpu_us_per_conn_sync, 1)} µs with sync, ` +
        `${fmt(sy.cpu_us_per_conn_nosync, 1)} µs without: extra ${fmt(sy.extra_cpu_us_per_conn, 1)} µs per synced ` +
        `connection (${fmt(sy.entries_per_conn, 2)} entries sent per connection: ${fmt(sy.extra_cpu_us_per_entry, 1)} µs per entry); ` +
        `most seen at the backup: ${fmt(sy.max_received_per_s)} entries/s = ${fmt(sy.max_synced_conns_per_s)} connections/s` +
        (sy.cells.every((c) => c.conns_received === c.conns_sent)
          ? " (the backup received every entry sent: the pair's connection rate bounds it here, a floor of the sync's own capacity)"
          : " (the backup missed entries: see sync_drops in the JSON)"),
    );
  }
  console.log(`\nMethod: ${METHOD.takeover}\n${METHOD.sync}`);
}

async function tearDown(): Promise<void> {
  await children.stopAll();
  await removeHa(n);
  rmSync(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench:ha needs root (network namespaces, packet sockets)");
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.once(sig, () => {
      void tearDown().finally(() => process.exit(130));
    });
  // A bug that escapes every catch still ends with the namespaces removed.
  process.once("unhandledRejection", (e) => {
    console.error("unhandled:", e);
    void tearDown().finally(() => process.exit(1));
  });
  const stale = await removeStaleBench();
  if (stale.length > 0) console.error(`removed stale namespaces of ${stale.join(", ")}`);
  const date = new Date();
  const load0 = loadavg();
  const tk: TakeoverResult[] = [];
  let sy: SyncResult | null = null;
  mkdirSync(dir, { recursive: true });
  try {
    await buildBenchHa(n, children);
    if (ONLY.has("takeover")) for (const v of VARIANTS) tk.push(await takeover(v.version, v.advertInt));
    if (ONLY.has("sync")) sy = await syncBench();
  } finally {
    await tearDown();
  }
  const result = {
    version: 1,
    date: date.toISOString(),
    host: {
      ...host(),
      loadavg_start: load0.map((x) => round(x, 2)),
      loadavg_end: loadavg().map((x) => round(x, 2)),
    },
    knobs: { rounds: ROUNDS, rate: RATE, load_s: LOAD_S, cpu_reps: CPU_REPS, concurrency: CONCURRENCY },
    topology:
      "test/e2e/ha-helpers.ts (NAT, VI_1 + VI_2 sync group, lvs_sync_daemon eth1 VI_1 id 7), namespaces tsvs-hb<pid>-*",
    method: METHOD,
    takeover: tk,
    sync: sy,
  };
  mkdirSync(OUT, { recursive: true });
  const stamp = result.date.slice(0, 16).replace(":", "").replace("T", "-");
  const path = join(OUT, `ha-${stamp}.json`);
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  printTables(tk, sy);
  console.log(`\nwritten: ${path} (load average ${load0.map((x) => x.toFixed(2)).join(" ")} at the start)`);
  if (tk.some((t) => t.error !== undefined) || sy?.error !== undefined) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
