// bench:scale — what survives when the set of directors behind an ECMP router changes (issue 17,
// docs/scale-out.md). Not a test: it builds the scale-out lab (src/lab/scale.ts, prefix
// tsvs-sb<pid>; root, BIRD), measures, writes bench/results/scale-<date>.json and prints tables.
//
//   [TSVS_SCALE_BENCH_CONNS=120] node dist/bench/scale.js          (make bench-scale)
//
// 1. Survival. Per cell (scheduler mh or rr × sync on or off; DR; sloppy_tcp on, the lab's
//    default; 3 directors over BGP): CONNS paced downloads from eight client addresses, every
//    byte checked. "loss": 2.5 s after they are all connected (every entry synced), d1's daemon
//    gets SIGKILL, the router drops it (time from the kill to the route without it, polled every
//    5 ms, is "withdraw"), and the downloads run to their end. "addition": a fresh load, then a
//    fourth director joins (d1 restarted before: 3 → 4; its session up, the route with 4 next hops). A download counts as
//    surviving when it completed intact. The flows that changed director are not counted apart:
//    with plain ECMP (hash-threshold) a change of the next-hop set moves flows between the
//    surviving directors too, which is part of what is measured.
// 2. ECMP disruption, without traffic: a router namespace with a route to the VIP over 3 next
//    hops, `ip route get` (iif, 5-tuple, fib_multipath_hash_policy=1) for FLOWS flows; the
//    share of flows whose next hop changes when one next hop goes and when a fourth comes, for a
//    plain multipath route (what BIRD installs) and for a resilient next-hop group (`ip nexthop
//    … type resilient`), whose buckets move only as needed.
//
// 3. Throughput: short connections (one GET each, bench/harness/ha-client.ts, closed loop of
//    CONCURRENCY) through 1, 2 and 3 directors (DR, mh, sync on), REPS rounds of LOAD_S seconds,
//    the best round kept. On this 2-vCPU machine every director, the router, the client and the
//    servers share the same two cores: the total is expected flat, not N times one director's.
//
// Knobs (env): TSVS_SCALE_BENCH_CONNS (120), TSVS_SCALE_BENCH_SECONDS (12, each download),
// TSVS_SCALE_BENCH_CELLS ("mh:on,mh:off,rr:on,rr:off"), TSVS_SCALE_BENCH_FLOWS (3000),
// TSVS_SCALE_BENCH_OUT (bench/results), TSVS_SCALE_BENCH_ONLY ("ecmp,survival,throughput"),
// TSVS_SCALE_BENCH_CONCURRENCY (64), TSVS_SCALE_BENCH_LOAD_S (6), TSVS_SCALE_BENCH_REPS (3).

import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { addNetns, delNetns, ip, nsExec } from "../src/io/netns.js";
import { startLoad } from "../src/lab/demo-scale.js";
import { sleep } from "../src/lab/proc.js";
import {
  addScaleDirector,
  directorPlan,
  killScaleDirector,
  SCALE_ADDR,
  SCALE_CLIENTS,
  type ScaleNames,
  type ScaleState,
  scaleDown,
  scaleNames,
  scaleUp,
  startScaleDirector,
  waitNexthops,
} from "../src/lab/scale.js";
import { intact } from "../src/lab/scale-load.js";
import { runCmd } from "./harness/util.js";

function num(name: string, dflt: number): number {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v < 1) throw new Error(`${name}: not a number ≥ 1`);
  return v;
}

const CONNS = Math.min(num("TSVS_SCALE_BENCH_CONNS", 120), 1000);
const SECONDS = Math.min(num("TSVS_SCALE_BENCH_SECONDS", 12), 120);
const FLOWS = Math.min(num("TSVS_SCALE_BENCH_FLOWS", 3000), 100_000);
const RATE = 16 * 1024;
const BYTES = RATE * SECONDS;
const ONLY = new Set((process.env.TSVS_SCALE_BENCH_ONLY ?? "ecmp,survival,throughput").split(","));
const CONCURRENCY = Math.min(num("TSVS_SCALE_BENCH_CONCURRENCY", 64), 1000);
const LOAD_S = Math.min(num("TSVS_SCALE_BENCH_LOAD_S", 6), 120);
const REPS = Math.min(num("TSVS_SCALE_BENCH_REPS", 3), 20);
const CLIENT = fileURLToPath(new URL("./harness/ha-client.js", import.meta.url));
const OUT = resolve(process.env.TSVS_SCALE_BENCH_OUT ?? "bench/results");
const CELLS = (process.env.TSVS_SCALE_BENCH_CELLS ?? "mh:on,mh:off,rr:on,rr:off")
  .split(",")
  .filter((c) => c !== "none")
  .map((c) => {
    const [sched, sync] = c.split(":");
    if (!/^[a-z]+$/.test(sched ?? "") || (sync !== "on" && sync !== "off"))
      throw new Error(`TSVS_SCALE_BENCH_CELLS: bad cell '${c}' (SCHED:on|off)`);
    return { scheduler: sched, sync: sync === "on" };
  });

interface Phase {
  intact: number;
  conns: number;
  /** Milliseconds from the event to the router's route reflecting it. */
  routeMs: number | null;
  errors: Record<string, number>;
}

interface Cell {
  scheduler: string;
  sync: boolean;
  loss: Phase;
  addition: Phase;
}

async function load(names: ScaleNames, event: () => Promise<number | null>): Promise<Phase> {
  const run = startLoad(names, { conns: CONNS, bytes: BYTES, rate: RATE, timeoutMs: (SECONDS + 40) * 1000 });
  const est = await run.established;
  if (est === null) throw new Error(`the load did not start: ${run.stderr()}`);
  await sleep(2500);
  const routeMs = await event();
  const results = await run.done;
  if (results === null) throw new Error(`the load failed: ${run.stderr()}`);
  const errors: Record<string, number> = {};
  for (const r of results)
    if (!intact(r, BYTES)) {
      const why = (r.error || "bad bytes").replace(/\d+/g, "N");
      errors[why] = (errors[why] ?? 0) + 1;
    }
  return { intact: results.filter((r) => intact(r, BYTES)).length, conns: CONNS, routeMs, errors };
}

async function cell(names: ScaleNames, scheduler: string, sync: boolean): Promise<Cell> {
  try {
    const st: ScaleState = await scaleUp(names, {
      directors: 3,
      method: "dr",
      scheduler,
      sync,
      bgp: true,
      servers: "node",
    });
    if (st.directors.some((d) => d.status !== "running"))
      throw new Error(st.directors.map((d) => `${d.ns}: ${d.status}`).join("; "));
    if ((await waitNexthops(names, (h) => h.length === 3, 20_000)) === null)
      throw new Error("no 3 next hops");
    // d1: the first next hop, whose removal also moves flows between the others (hash-threshold).
    const gone = directorPlan(names, 1).uplink;
    const loss = await load(names, async () => {
      const at = killScaleDirector(names, st, 1);
      const ok = await waitNexthops(names, (h) => h.length === 2 && !h.includes(gone), 20_000, 5);
      return ok === null ? null : Date.now() - at;
    });
    // d1 back first, so that the addition is 3 → 4.
    await startScaleDirector(names, st, 1);
    if ((await waitNexthops(names, (h) => h.length === 3, 20_000)) === null)
      throw new Error("d1 did not return");
    const addition = await load(names, async () => {
      const at = Date.now();
      await addScaleDirector(names, st);
      const ok = await waitNexthops(names, (h) => h.length === 4, 20_000, 5);
      return ok === null ? null : Date.now() - at;
    });
    return { scheduler, sync, loss, addition };
  } finally {
    await scaleDown(names);
  }
}

interface Disruption {
  kind: "multipath" | "resilient";
  /** Flows whose next hop changed, in %: one of 3 next hops removed; a 4th added to 3. */
  removeMovedPct: number;
  /** Among the flows that were not on the removed next hop: the first, second, third removed. */
  removeMovedOthersPct: number[];
  addMovedPct: number;
}

/** The next hop of each flow (`ip route get … iif`), one `ip -batch` for all. */
function nextHops(ns: string, flows: readonly { src: string; sport: number }[]): string[] {
  const batch = join(OUT, "tmp", `route-get-${process.pid}.txt`);
  writeFileSync(
    batch,
    flows
      .map(
        (f) => `route get ${SCALE_ADDR.VIP} from ${f.src} iif eth0 ipproto tcp sport ${f.sport} dport 80\n`,
      )
      .join(""),
  );
  let out: string;
  try {
    out = nsExec(ns, ["ip", "-batch", batch], { timeoutMs: 60_000 });
  } finally {
    rmSync(batch, { force: true });
  }
  return out
    .split("\n")
    .filter((l) => l.startsWith(SCALE_ADDR.VIP))
    .map((l) => /via (\S+)/.exec(l)?.[1] ?? "?");
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function moved(a: readonly string[], b: readonly string[], skip?: string): number {
  let n = 0;
  let total = 0;
  for (let i = 0; i < a.length; i++) {
    if (skip !== undefined && a[i] === skip) continue;
    total++;
    if (a[i] !== b[i]) n++;
  }
  return total === 0 ? 0 : (100 * n) / total;
}

function disruption(): Disruption[] {
  const ns = `tsvs-sb${process.pid}-e`;
  const hops = [11, 12, 13, 14].map((i) => `198.18.81.${i}`);
  const flows = Array.from({ length: FLOWS }, (_, i) => ({
    src: SCALE_CLIENTS[i % SCALE_CLIENTS.length],
    sport: 1024 + ((i * 7919) % 60000),
  }));
  delNetns(ns);
  addNetns(ns);
  try {
    nsExec(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1"]);
    for (const [dev, addr] of [
      ["eth0", `${SCALE_ADDR.X_CLIENT}/24`],
      ["eth1", `${SCALE_ADDR.X_UPLINK}/24`],
    ]) {
      // A veth pair inside the namespace (no dummy module on every kernel).
      ip("-n", ns, "link", "add", dev, "type", "veth", "peer", "name", `${dev}p`);
      ip("-n", ns, "addr", "add", addr, "dev", dev);
      ip("-n", ns, "link", "set", dev, "up");
      ip("-n", ns, "link", "set", `${dev}p`, "up");
    }
    for (const c of ["all", "default", "eth0"])
      nsExec(ns, ["sysctl", "-q", "-w", `net.ipv4.conf.${c}.rp_filter=0`]);
    const vip = `${SCALE_ADDR.VIP}/32`;
    const out: Disruption[] = [];
    // Plain multipath (hash-threshold), as BIRD's merge paths installs it.
    const mp = (hs: readonly string[]) =>
      ip("-n", ns, "route", "replace", vip, ...hs.flatMap((h) => ["nexthop", "via", h, "dev", "eth1"]));
    // Each of the three removed in turn: which one goes decides how many other flows move.
    mp(hops.slice(0, 3));
    const m3 = nextHops(ns, flows);
    const mRemoved = [0, 1, 2].map((i) => {
      mp(hops.slice(0, 3).filter((_, j) => j !== i));
      return nextHops(ns, flows);
    });
    mp(hops);
    const m4 = nextHops(ns, flows);
    out.push({
      kind: "multipath",
      removeMovedPct: mean(mRemoved.map((m) => moved(m3, m))),
      removeMovedOthersPct: mRemoved.map((m, i) => moved(m3, m, hops[i])),
      addMovedPct: moved(m3, m4),
    });
    ip("-n", ns, "route", "del", vip);
    // A resilient group: idle_timer 0 lets overweight buckets move at once (no traffic here).
    hops.forEach((h, i) => {
      ip("-n", ns, "nexthop", "add", "id", String(i + 1), "via", h, "dev", "eth1");
    });
    const grp = (ids: string) =>
      ip(
        "-n",
        ns,
        "nexthop",
        "replace",
        "id",
        "100",
        "group",
        ids,
        "type",
        "resilient",
        "buckets",
        "512",
        "idle_timer",
        "0",
      );
    grp("1/2/3");
    ip("-n", ns, "route", "add", vip, "nhid", "100");
    // Each removal against the assignment just before it (a re-add reshuffles some buckets).
    const rPairs = ["2/3", "1/3", "1/2"].map((ids) => {
      grp("1/2/3");
      const before = nextHops(ns, flows);
      grp(ids);
      return [before, nextHops(ns, flows)] as const;
    });
    grp("1/2/3");
    const r3b = nextHops(ns, flows);
    grp("1/2/3/4");
    const r4 = nextHops(ns, flows);
    out.push({
      kind: "resilient",
      removeMovedPct: mean(rPairs.map(([b, a]) => moved(b, a))),
      removeMovedOthersPct: rPairs.map(([b, a], i) => moved(b, a, hops[i])),
      addMovedPct: moved(r3b, r4),
    });
    return out;
  } finally {
    delNetns(ns);
  }
}

interface Throughput {
  directors: number;
  /** Connections per second of each round, and the best. */
  rounds: number[];
  best: number;
  failed: number;
}

async function throughput(names: ScaleNames, n: number): Promise<Throughput> {
  try {
    const st = await scaleUp(names, { directors: n, method: "dr", bgp: true, servers: "node" });
    if (st.directors.some((d) => d.status !== "running"))
      throw new Error(st.directors.map((d) => `${d.ns}: ${d.status}`).join("; "));
    if ((await waitNexthops(names, (h) => h.length === n, 20_000)) === null)
      throw new Error(`no ${n} next hops`);
    const rounds: number[] = [];
    let failed = 0;
    for (let r = 0; r < REPS; r++) {
      const res = await runCmd(
        names.client,
        [process.execPath, CLIENT, "load", SCALE_ADDR.VIP, "80", "0", String(CONCURRENCY), String(LOAD_S)],
        (LOAD_S + 30) * 1000,
      );
      const j = JSON.parse(res.stdout.trim().split("\n").at(-1) ?? "{}") as {
        ok?: number;
        fail?: number;
        seconds?: number;
      };
      rounds.push(Math.round((j.ok ?? 0) / (j.seconds ?? LOAD_S)));
      failed += j.fail ?? 0;
    }
    return { directors: n, rounds, best: Math.max(...rounds), failed };
  } finally {
    await scaleDown(names);
  }
}

const pct = (p: Phase): string => `${((100 * p.intact) / p.conns).toFixed(1)} % (${p.intact}/${p.conns})`;

async function main(): Promise<void> {
  mkdirSync(join(OUT, "tmp"), { recursive: true });
  const names = scaleNames(`tsvs-sb${process.pid}`);
  const ecmp = ONLY.has("ecmp") ? disruption() : [];
  if (ecmp.length > 0) process.stdout.write("ECMP disruption (ip route get over the 5-tuple, policy 1):\n");
  for (const d of ecmp)
    process.stdout.write(
      `  ${d.kind.padEnd(10)} remove 1 of 3: ${d.removeMovedPct.toFixed(1)} % of flows move (of those not on it: ${d.removeMovedOthersPct.map((x) => x.toFixed(1)).join(" / ")} % when the first / second / third goes); add a 4th: ${d.addMovedPct.toFixed(1)} %\n`,
    );
  const cells: Cell[] = [];
  for (const c of ONLY.has("survival") ? CELLS : []) {
    const r = await cell(names, c.scheduler, c.sync);
    cells.push(r);
    process.stdout.write(
      `  ${c.scheduler} sync ${c.sync ? "on " : "off"}: loss ${pct(r.loss)} (withdrawn in ${r.loss.routeMs} ms), addition ${pct(r.addition)} (route in ${r.addition.routeMs} ms) ${JSON.stringify({ loss: r.loss.errors, addition: r.addition.errors })}\n`,
    );
  }
  const through: Throughput[] = [];
  for (const n of ONLY.has("throughput") ? [1, 2, 3] : []) {
    const t = await throughput(names, n);
    through.push(t);
    process.stdout.write(
      `  ${n} director${n > 1 ? "s" : ""}: ${t.best} conn/s (rounds ${t.rounds.join(", ")}; ${t.failed} failed)\n`,
    );
  }
  const date = new Date();
  const result = {
    date: date.toISOString(),
    machine: { cpus: cpus().length, kernel: release(), loadavg: loadavg() },
    settings: {
      conns: CONNS,
      seconds: SECONDS,
      rateBps: RATE,
      directors: 3,
      method: "dr",
      sloppyTcp: true,
      flows: FLOWS,
    },
    ecmp,
    cells,
    throughput: { concurrency: CONCURRENCY, seconds: LOAD_S, reps: REPS, results: through },
  };
  const stamp = result.date.slice(0, 16).replace(":", "").replace("T", "-");
  const path = join(OUT, `scale-${stamp}.json`);
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`wrote ${path}\n`);
}

await main();
