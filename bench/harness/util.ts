// Small helpers of the bench harness: bounded child processes (every one has a timeout and is
// stopped by its pid), CPU accounting from /proc, medians.

import { execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export interface CmdResult {
  status: number;
  stdout: string;
  stderr: string;
  /** True when the timeout fired and the process was killed. */
  timedOut: boolean;
}

/**
 * Runs argv (inside namespace ns when given) and collects its output. The process group it leads
 * (by its pid) is SIGKILLed when timeoutMs passes, so no load tool can outlive its cell.
 */
export function runCmd(
  ns: string | null,
  argv: readonly string[],
  timeoutMs: number,
  /** Send SIGINT after this many ms (a generator that runs until interrupted). */
  interruptAfterMs?: number,
): Promise<CmdResult> {
  const full = ns === null ? [...argv] : ["ip", "netns", "exec", ns, ...argv];
  return new Promise((resolve) => {
    // A process group of its own: signals reach the tool's forked children too (trafgen forks one
    // sender per CPU and only the parent would see a signal sent to its pid).
    const child = spawn(full[0], full.slice(1), { stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      if (stdout.length < 4 << 20) stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      if (stderr.length < 1 << 20) stderr += d;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }, timeoutMs);
    const intr =
      interruptAfterMs === undefined
        ? null
        : setTimeout(() => {
            if (child.pid !== undefined) {
              try {
                process.kill(-child.pid, "SIGINT");
              } catch {
                // already gone
              }
            }
          }, interruptAfterMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      if (intr !== null) clearTimeout(intr);
      resolve({ status: -1, stdout, stderr: `${stderr}${String(e)}`, timedOut });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (intr !== null) clearTimeout(intr);
      resolve({ status: code ?? (signal !== null ? 128 : -1), stdout, stderr, timedOut });
    });
  });
}

let clkTck = 0;
/** Clock ticks per second of /proc/PID/stat times (USER_HZ). */
export function clockTicks(): number {
  if (clkTck === 0) {
    try {
      clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after comm (which may hold spaces and parentheses) follow the last ')': state is [0].
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/**
 * utime + stime (ticks) of the processes and of their direct children (nginx's worker, the daemon's
 * threads are counted in its own process already). Children are found by ppid in /proc.
 */
export function cpuTicks(pids: readonly number[]): number {
  if (pids.length === 0) return 0;
  const want = new Set(pids);
  const all = new Set(pids);
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const f = statFields(Number(e));
    if (f !== null && want.has(Number(f[1]))) all.add(Number(e));
  }
  let t = 0;
  for (const p of all) {
    const f = statFields(p);
    if (f !== null) t += Number(f[11]) + Number(f[12]);
  }
  return t;
}

export interface CoreTimes {
  busy: number;
  total: number;
  softirq: number;
  /** Time the hypervisor ran something else while this vCPU wanted to run. */
  steal: number;
}

export interface CoreUse {
  busy_pct: number;
  softirq_pct: number;
  steal_pct: number;
}

/** Per-core jiffies from /proc/stat (cpu0, cpu1, …). */
export function coreTimes(): CoreTimes[] {
  const out: CoreTimes[] = [];
  for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (m === null) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = v[3] + v[4];
    const steal = v[7] ?? 0;
    out[Number(m[1])] = { busy: total - idle - steal, total, softirq: v[6], steal };
  }
  return out;
}

/** Busy, softirq and steal percentages of each core between two coreTimes() samples. */
export function coreUse(a: CoreTimes[], b: CoreTimes[]): CoreUse[] {
  return b.map((cb, i) => {
    const ca = a[i] ?? { busy: 0, total: 0, softirq: 0, steal: 0 };
    const dt = cb.total - ca.total;
    const pct = (x: number): number => (dt <= 0 ? 0 : round((100 * x) / dt, 1));
    return {
      busy_pct: pct(cb.busy - ca.busy),
      softirq_pct: pct(cb.softirq - ca.softirq),
      steal_pct: pct(cb.steal - ca.steal),
    };
  });
}

/** Mean steal over the cores, for the progress line (a noisy neighbour shows up there first). */
export function meanSteal(cores: readonly CoreUse[]): number {
  return cores.length === 0 ? 0 : round(cores.reduce((a, c) => a + c.steal_pct, 0) / cores.length, 1);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return Number.NaN;
  return n % 2 === 1 ? s[(n - 1) >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
