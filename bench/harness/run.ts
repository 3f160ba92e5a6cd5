// `tsvs bench`: every director in turn on a fresh copy of the same namespace network, every
// workload against each, repetitions, medians; then the JSON, the chart and the printed table.

import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { netnsUnavailableReason } from "../../src/io/netns.js";
import { commandPath, ensurePackages } from "../../src/lab/packages.js";
import { deadRuns } from "../../src/lab/proc.js";
import { type LabOffloads, labDown } from "../../src/lab/topology.js";
import { DIRECTORS, type DirectorDef, type DirectorRun, nginxStreamReason } from "./directors.js";
import {
  type BenchResult,
  type Cell,
  chartSvg,
  type DirectorRecord,
  finalize,
  markdownTable,
  RATIO_KEYS,
  type RepRecord,
  ratiosText,
  runLine,
} from "./report.js";
import { type BenchNet, benchNames, setupNet, teardown } from "./topology.js";
import { clockTicks, coreTimes, coreUse, cpuTicks, meanSteal, median, round } from "./util.js";
import { type CellCtx, runWorkload, WORKLOADS, type WorkloadDef, type WorkloadName } from "./workloads.js";

export interface BenchOptions {
  smoke: boolean;
  /** Director or workload names to run (others are left out of the result), or null for all. */
  only: string[] | null;
  durationS: number;
  reps: number;
  outDir: string;
  /** Namespace names are `tsvs-b<suffix>-…`. */
  suffix: string;
  log: (line: string) => void;
  /** The UDP generator: trafgen when installed (default), or the Node AF_PACKET one. */
  generator?: "trafgen" | "node";
  /** Veth offloads on every link, for every director: "on" (veth's defaults) or "off". */
  offloads?: LabOffloads;
}

export interface BenchOutput {
  result: BenchResult;
  jsonPath: string;
  svgPath: string;
}

const SMOKE_LEFT_OUT = "unavailable (left out of --smoke runs to keep them short; --only NAME runs it)";

/** Workloads in running order: `Connection: close` last, so its TIME_WAIT sockets trouble no other. */
const RUN_ORDER: readonly WorkloadName[] = ["udp_pps", "http_rps", "latency", "tcp_bulk", "http_cps"];

export function selectDirectors(only: string[] | null): DirectorDef[] {
  if (only === null) return [...DIRECTORS];
  const ds = DIRECTORS.filter((d) => only.includes(d.name));
  return ds.length > 0 ? ds : [...DIRECTORS];
}

export function selectWorkloads(only: string[] | null): WorkloadDef[] {
  if (only === null) return [...WORKLOADS];
  const ws = WORKLOADS.filter((w) => only.includes(w.name));
  return ws.length > 0 ? ws : [...WORKLOADS];
}

/** Names in --only that are neither a director nor a workload. */
export function unknownNames(only: readonly string[]): string[] {
  const known = new Set([...DIRECTORS.map((d) => d.name), ...WORKLOADS.map((w) => w.name)]);
  return only.filter((n) => !known.has(n));
}

function installTools(log: (s: string) => void, offloads: LabOffloads): void {
  // A tool that cannot be installed leaves its cells "unavailable (… is not installed)": the result
  // says so instead of the run failing (ensurePackages throws on CI for what stays missing).
  const tools = ["iproute2", "nftables", "nginx", "wrk", "iperf3", "haproxy", "netsniff-ng"];
  // Turning offloads off needs ethtool; the default run never touches them.
  if (offloads === "off") tools.push("ethtool");
  try {
    const missing = ensurePackages(tools, log);
    if (missing.length > 0) log(`not installed (their cells will say so): ${missing.join(", ")}`);
  } catch (e) {
    log((e as Error).message);
  }
  if (commandPath("nginx") !== null && nginxStreamReason() !== null) {
    // Debian's nginx loads the stream module from a package of its own (no command to probe).
    try {
      ensurePackages(["libnginx-mod-stream"], log);
    } catch {
      // nginxStreamReason() tells afterwards
    }
  }
}

/** Removes the namespaces of earlier bench runs whose process is gone (killed before teardown). */
export async function removeStaleRuns(log: (s: string) => void): Promise<void> {
  for (const sfx of deadRuns("tsvs-b", 36)) {
    log(`removing the namespaces of an earlier bench run (tsvs-b${sfx}-*)`);
    await labDown(benchNames(sfx));
  }
}

async function runCell(
  w: WorkloadName,
  ctx: CellCtx,
  reps: number,
  unit: string,
  log: (s: string) => void,
): Promise<Cell> {
  const records: RepRecord[] = [];
  const hz = clockTicks();
  for (let i = 0; i < reps; i++) {
    const c0 = coreTimes();
    const p0 = cpuTicks(ctx.run.pids);
    const t0 = performance.now();
    const r = await runWorkload(w, ctx);
    const secs = (performance.now() - t0) / 1000;
    const p1 = cpuTicks(ctx.run.pids);
    const c1 = coreTimes();
    const cores = coreUse(c0, c1);
    records.push({
      ...r,
      director_cpu_pct: ctx.run.pids.length === 0 ? null : round((100 * (p1 - p0)) / hz / secs, 1),
      cores,
    });
    const steal = meanSteal(cores);
    log(`    rep ${i + 1}/${reps}: ${r.value} ${unit}${steal >= 1 ? ` (steal ${steal} %)` : ""}`);
  }
  const cpu = records.map((x) => x.director_cpu_pct).filter((x): x is number => x !== null);
  return {
    status: "ok",
    value: median(records.map((x) => x.value)),
    unit,
    director_cpu_pct: cpu.length > 0 ? median(cpu) : null,
    reps: records,
  };
}

function toolVersion(argv: string[]): string {
  try {
    const out = execFileSync(argv[0], argv.slice(1), {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 5000,
    });
    return out.split("\n")[0].trim();
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return `${err.stdout ?? ""}${err.stderr ?? ""}`.split("\n")[0].trim();
  }
}

export async function runBench(o: BenchOptions): Promise<BenchOutput> {
  const why = netnsUnavailableReason();
  if (why !== null) throw new Error(`tsvs bench needs network namespaces: ${why}`);
  const offloads = o.offloads ?? "on";
  installTools(o.log, offloads);
  await removeStaleRuns(o.log);
  const directors = selectDirectors(o.only);
  const workloads = selectWorkloads(o.only);
  const ncpu = cpus().length;
  const genPin = ncpu >= 2 ? "0" : null;
  const dirPin = ncpu >= 2 ? "1" : null;
  const generator = o.generator ?? (commandPath("trafgen") !== null ? "trafgen" : "node");
  const names = benchNames(o.suffix);
  const logRoot = join(o.outDir, o.smoke ? "" : "tmp", "logs");
  const date = new Date();
  const result: BenchResult = {
    version: 1,
    date: date.toISOString(),
    smoke: o.smoke,
    duration_s: o.durationS,
    reps: o.reps,
    host: {
      kernel: release(),
      cpus: ncpu,
      cpu_model: (cpus()[0]?.model ?? "?").replace(/\s+/g, " ").trim(),
      node: process.version,
    },
    pinning: {
      generator: genPin === null ? "not pinned (1 CPU)" : `cpu ${genPin} (taskset)`,
      director: dirPin === null ? "not pinned (1 CPU)" : `cpu ${dirPin} (taskset)`,
      servers:
        dirPin === null
          ? "not pinned (1 CPU)"
          : `not pinned; cpu ${dirPin} (taskset) during the latency cell`,
    },
    offloads,
    generator:
      generator === "trafgen"
        ? toolVersion(["trafgen", "-v"]).replace(/, Git id.*$/, "") || "trafgen"
        : "node AF_PACKET sendmmsg (bench/harness/udpgen.ts)",
    directors: [],
    workloads,
    cells: {},
    ratios: Object.fromEntries(RATIO_KEYS.map((k) => [k, null])) as BenchResult["ratios"],
    ratio_notes: Object.fromEntries(RATIO_KEYS.map((k) => [k, ""])) as BenchResult["ratio_notes"],
  };

  let current: BenchNet | null = null;
  const onSignal = (): void => {
    // Leave nothing behind on ^C: the current round's processes and namespaces.
    const n = current;
    const done = n === null ? Promise.resolve() : teardown(n);
    void done.finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    for (const d of directors) {
      const rec: DirectorRecord = { name: d.name, label: d.label, status: "ok" };
      result.directors.push(rec);
      const cells: Record<string, Cell> = {};
      result.cells[d.name] = cells;
      // A smoke run leaves out what a director marks as too long for it, unless --only names it.
      const smokeOnly =
        o.smoke && d.smokeWorkloads !== undefined && !(o.only?.includes(d.name) ?? false)
          ? d.smokeWorkloads
          : null;
      const na =
        smokeOnly !== null && !workloads.some((w) => smokeOnly.includes(w.name))
          ? SMOKE_LEFT_OUT
          : d.unavailable();
      if (na !== null) {
        rec.status = "unavailable";
        rec.reason = na;
        for (const w of workloads) cells[w.name] = { status: "unavailable", reason: na };
        o.log(`${d.name}: ${na}`);
        continue;
      }
      o.log(`${d.name}: ${d.label}`);
      let run: DirectorRun;
      try {
        current = await setupNet(names, d.mode, join(logRoot, d.name), offloads, d.ipv6 === true);
        run = await d.start(current, dirPin);
        rec.pinned = run.pinned;
      } catch (e) {
        rec.status = "error";
        rec.reason = (e as Error).message;
        for (const w of workloads) cells[w.name] = { status: "error", reason: `director: ${rec.reason}` };
        o.log(`  ${d.name} did not start: ${rec.reason}`);
        if (current !== null) await teardown(current);
        current = null;
        continue;
      }
      try {
        for (const wn of RUN_ORDER) {
          const w = workloads.find((x) => x.name === wn);
          if (w === undefined) continue;
          const skip = smokeOnly !== null && !smokeOnly.includes(wn) ? SMOKE_LEFT_OUT : d.skip?.[wn];
          if (skip !== undefined) {
            cells[wn] = { status: "unavailable", reason: skip };
            continue;
          }
          if (wn === "udp_pps" || wn === "tcp_bulk") {
            const tool = wn === "udp_pps" ? (generator === "trafgen" ? "trafgen" : null) : "iperf3";
            if (tool !== null && commandPath(tool) === null) {
              cells[wn] = { status: "unavailable", reason: `unavailable (${tool} is not installed)` };
              continue;
            }
          } else if (commandPath("wrk") === null) {
            cells[wn] = { status: "unavailable", reason: "unavailable (wrk is not installed)" };
            continue;
          }
          o.log(`  ${wn} (${o.durationS} s × ${o.reps})`);
          const ctx: CellCtx = {
            net: current,
            run,
            durationS: o.durationS,
            genPin,
            dirPin,
            allCpus: `0-${ncpu - 1}`,
            generator,
          };
          try {
            cells[wn] = await runCell(wn, ctx, o.reps, w.unit, o.log);
          } catch (e) {
            cells[wn] = { status: "error", reason: (e as Error).message };
            o.log(`    error: ${(e as Error).message}`);
          }
        }
      } finally {
        await teardown(current);
        current = null;
      }
      // Same key order as the workload list, whatever the running order was.
      result.cells[d.name] = Object.fromEntries(workloads.map((w) => [w.name, cells[w.name]]));
    }
  } finally {
    if (current !== null) await teardown(current);
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
  finalize(result);
  mkdirSync(o.outDir, { recursive: true });
  const stamp = result.date.slice(0, 16).replace(":", "").replace("T", "-");
  const jsonPath = join(o.outDir, `${stamp}.json`);
  const svgPath = join(o.outDir, `${stamp}.svg`);
  writeFileSync(jsonPath, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(svgPath, chartSvg(result));
  return { result, jsonPath, svgPath };
}

/** The text `tsvs bench` prints at the end. */
export function summary(out: BenchOutput): string {
  const r = out.result;
  return `\n${runLine(r)}\n\n${markdownTable(r)}\n${ratiosText(r)}\n\nwrote ${out.jsonPath} and ${out.svgPath}\n`;
}
