// Background processes of the lab and of `tsvs realserver`: started detached inside a namespace,
// remembered by pid *and* start time (field 22 of /proc/PID/stat), stopped by that pid only, so a
// pid the kernel has since reused for something else is never signalled.

import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { TsvsError } from "../core/errors.js";
import { namespacesWith } from "../io/netns.js";

export interface ProcRef {
  pid: number;
  /** Start time in clock ticks since boot; 0 = unknown (then only liveness is checked). */
  start: number;
  /** What it is, for status output. */
  what: string;
}

/** The build output root (the directory holding src/, test/): dist/ in the repo, or a private outDir. */
export const DIST_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Absolute path of a compiled module, e.g. jsPath("src/lab/server.js"). */
export function jsPath(rel: string): string {
  return join(DIST_ROOT, rel);
}

export function procStart(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(rest[19]);
  } catch {
    return -1;
  }
}

/** True while the process exists and is the one recorded (same start time), and is not a zombie. */
export function procAlive(p: ProcRef): boolean {
  try {
    const stat = readFileSync(`/proc/${p.pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (rest[0] === "Z" || rest[0] === "X") return false;
    return p.start === 0 || Number(rest[19]) === p.start;
  } catch {
    return false;
  }
}

/**
 * Earlier runs that left namespaces `<prefix><id>-…` behind and whose process is gone (killed
 * before their cleanup): their ids, each the run's pid written in `radix`. Never this process's.
 */
export function deadRuns(prefix: string, radix = 10): string[] {
  let names: string[];
  try {
    names = namespacesWith(prefix);
  } catch {
    return [];
  }
  const re = new RegExp(`^${prefix}(${radix === 10 ? "\\d" : "[0-9a-z]"}+)-`);
  const ids = new Set<string>();
  for (const n of names) {
    const m = re.exec(n);
    if (m !== null) ids.add(m[1]);
  }
  return [...ids].filter((id) => {
    const pid = Number.parseInt(id, radix);
    return pid !== process.pid && !procAlive({ pid, start: 0, what: "" });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Starts argv inside namespace ns (`ip netns exec` execs the command, so the pid is the program's own),
 * in its own session, stdout and stderr appended to logFile. Returns once the process exists.
 */
export function spawnInNs(
  ns: string | null,
  argv: readonly string[],
  logFile: string,
  what: string,
): ProcRef {
  mkdirSync(dirname(logFile), { recursive: true });
  const fd = openSync(logFile, "a");
  try {
    const full = ns === null ? [...argv] : ["ip", "netns", "exec", ns, ...argv];
    const child = spawn(full[0], full.slice(1), { detached: true, stdio: ["ignore", fd, fd] });
    if (child.pid === undefined) throw new TsvsError("TSVS_ERR_LAB", `cannot start ${argv.join(" ")}`);
    child.unref();
    return { pid: child.pid, start: procStart(child.pid), what };
  } finally {
    closeSync(fd);
  }
}

/** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. Unknown/dead pids: no-op. */
export async function stopProc(p: ProcRef, graceMs = 2000): Promise<void> {
  if (!procAlive(p)) return;
  try {
    process.kill(p.pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (procAlive(p)) {
    if (Date.now() > deadline) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        return;
      }
      await sleep(20);
      if (Date.now() > deadline + 2000) return;
      continue;
    }
    await sleep(20);
  }
}

/** Waits until check() is true or timeoutMs passes; returns the last check(). */
export async function waitFor(check: () => boolean, timeoutMs: number, stepMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(stepMs);
  }
}

export function fileHas(path: string, text: string): boolean {
  return existsSync(path) && readFileSync(path, "utf8").includes(text);
}

/**
 * Resets pid's VmHWM (peak resident set) to its current RSS (/proc/PID/clear_refs, "5", Linux
 * 4.0+), so that the peak read later is that of what ran in between: a daemon's start-up (its
 * data-path warm-up, before the gc) peaks tens of MiB above the idle daemon. False if refused.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}
