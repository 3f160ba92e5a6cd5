// A `tsvs daemon` (and the small servers the e2e suites put behind it) in a test's namespace:
// started from this build's CLI entry, ready when it logs "ready", its stderr kept for the
// failure message, and every process remembered so that the suite's after() can end them.

import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { nsExecStatus } from "../../src/io/netns.js";

/** This build's process entry (what bin/tsvs runs). */
export const ENTRY = fileURLToPath(new URL("../../src/cli/entry.js", import.meta.url));

/** The processes a suite started and has not seen exit: its after() ends them (stopAll). */
export class Children {
  private readonly procs = new Set<ChildProcess>();

  add(p: ChildProcess): ChildProcess {
    this.procs.add(p);
    p.once("exit", () => this.procs.delete(p));
    return p;
  }

  /** SIGTERM to every process still running, then waits for them (bounded). */
  async stopAll(ms = 5_000): Promise<void> {
    const left = [...this.procs];
    for (const p of left) p.kill("SIGTERM");
    await Promise.race([
      Promise.all(left.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once("exit", r))))),
      new Promise((r) => setTimeout(r, ms).unref()),
    ]);
    for (const p of this.procs) p.kill("SIGKILL");
  }
}

export interface Daemon {
  proc: ChildProcess;
  /** Everything it logged so far (pino lines on stderr). */
  stderr: () => string;
  exited: Promise<number | null>;
}

/** `tsvs daemon ARGS` in namespace ns; resolves once it logs "ready" (rejects after 10 s or on exit). */
export function startDaemon(ns: string, args: readonly string[], children: Children): Promise<Daemon> {
  const proc = children.add(
    spawn("ip", ["netns", "exec", ns, process.execPath, ENTRY, "daemon", ...args], {
      stdio: ["ignore", "ignore", "pipe"],
    }),
  );
  let err = "";
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  proc.stderr?.setEncoding("utf8");
  proc.stderr?.on("data", (chunk: string) => {
    err += chunk;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      clearInterval(check);
      reject(new Error(`daemon not ready after 10 s:\n${err}`));
    }, 10_000);
    const check = setInterval(() => {
      if (!/"msg":"ready"/.test(err)) return;
      clearTimeout(timer);
      clearInterval(check);
      resolve({ proc, stderr: () => err, exited });
    }, 20);
    exited.then((code) => {
      clearTimeout(timer);
      clearInterval(check);
      reject(new Error(`daemon exited with ${code} before it was ready:\n${err}`));
    });
  });
}

/** `tsvs SUB --control SOCK ARGS` in namespace ns (15 s at most). */
export function tsvsIn(
  ns: string,
  sock: string,
  sub: string,
  ...args: string[]
): { status: number; stdout: string; stderr: string } {
  return nsExecStatus(ns, [process.execPath, ENTRY, sub, "--control", sock, ...args], 15_000);
}

/** Weight, ActiveConn, InActConn per "RIP:PORT", from `tsvs ipvsadm -Ln` in namespace ns. */
export function ipvsadmDests(ns: string, sock: string): Map<string, number[]> {
  const r = tsvsIn(ns, sock, "ipvsadm", "-Ln");
  if (r.status !== 0) throw new Error(`ipvsadm -Ln: ${r.stderr}`);
  const out = new Map<string, number[]>();
  for (const line of r.stdout.split("\n")) {
    if (!line.startsWith("  -> ")) continue;
    const f = line.trim().split(/\s+/);
    if (/^\d/.test(f[3] ?? "")) out.set(f[1], f.slice(3, 6).map(Number));
  }
  return out;
}

/**
 * A node program in namespace ns that prints a line once it listens; resolves then (rejects
 * after 5 s). `src` is its source (node -e).
 */
export function startListener(
  ns: string,
  src: string,
  children: Children,
  what: string,
): Promise<ChildProcess> {
  const proc = children.add(
    spawn("ip", ["netns", "exec", ns, process.execPath, "-e", src], { stdio: ["ignore", "pipe", "pipe"] }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} in ${ns} not listening`)), 5_000);
    proc.stdout?.once("data", () => {
      clearTimeout(timer);
      resolve(proc);
    });
  });
}

/** An HTTP server on :80 answering `name\n` to every request, one connection each. */
export function startHttp(ns: string, name: string, children: Children): Promise<ChildProcess> {
  const src = `require("http").createServer((q, s) => { s.setHeader("connection", "close"); s.end(${JSON.stringify(
    `${name}\n`,
  )}); }).listen(80, "0.0.0.0", () => console.log("listening"));`;
  return startListener(ns, src, children, "http server");
}
