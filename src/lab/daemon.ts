// The director side of the lab: `tsvs daemon` in the director namespace, and `tsvs ipvsadm` talking
// to it over the lab's control socket. Both run the built CLI entry (dist/src/cli/tsvs.js, what
// bin/tsvs runs) with the node that runs the lab, so a private build directory works as well.

import { existsSync, readFileSync } from "node:fs";
import { nsExecStatus } from "../io/netns.js";
import { jsPath, type ProcRef, procAlive, spawnInNs, waitFor } from "./proc.js";
import { LAB_ADDR, type LabMethod, type LabNames, methodServers } from "./topology.js";

/** `node -e` launcher: imports the CLI entry (argv[1]) and runs main() on the remaining arguments. */
const LAUNCHER =
  "const m=await import(process.argv[1]);process.exitCode=await m.main(process.argv.slice(2));";

/**
 * The built entry that runs `daemon` and `ipvsadm`: src/cli/entry.js (a process entry of its
 * own), else the CLI (src/cli/tsvs.js, what bin/tsvs runs). Null when neither is built.
 */
export function tsvsEntry(): string | null {
  for (const rel of ["src/cli/entry.js", "src/cli/tsvs.js"]) {
    if (existsSync(jsPath(rel))) return jsPath(rel);
  }
  return null;
}

/** argv running `tsvs ARGS…` (daemon, ipvsadm, status) with this node. */
export function tsvsArgv(args: readonly string[]): string[] {
  const entry = tsvsEntry();
  if (entry === null) throw new Error(`tsvs is not built (no ${jsPath("src/cli/entry.js")})`);
  // Node flags NODE_OPTIONS refuses (--cpu-prof, --trace-gc) for profiling the lab's daemon.
  const flags = (process.env.TSVS_NODE_FLAGS ?? "").split(/\s+/).filter((f) => f !== "");
  if (entry.endsWith("entry.js")) return [process.execPath, ...flags, entry, ...args];
  return [process.execPath, ...flags, "--input-type=module", "-e", LAUNCHER, entry, ...args];
}

export const IPVSADM_FLAG: Record<LabMethod, string> = {
  nat: "-m",
  dr: "-g",
  tun: "-i",
  fullnat: "--fullnat",
};

export interface DaemonStart {
  proc: ProcRef | null;
  /** "running" or why not. */
  status: string;
}

function logTail(path: string): string {
  try {
    const lines = readFileSync(path, "utf8").trim().split("\n");
    return lines.slice(-3).join(" | ");
  } catch {
    return "";
  }
}

/** Starts the daemon in the director namespace and waits for its control socket (≤ 8 s). */
export async function startDaemon(
  names: LabNames,
  method: LabMethod,
  extraArgs: readonly string[] = [],
): Promise<DaemonStart> {
  if (tsvsEntry() === null) {
    return { proc: null, status: `daemon not available yet: ${jsPath("src/cli/entry.js")} is not built` };
  }
  const args = ["daemon", "--iface", names.dirClientIf, "--iface", names.dirLanIf];
  if (method === "fullnat") args.push("--lip", LAB_ADDR.LIP);
  args.push("--control", names.controlSock, ...extraArgs);
  const proc = spawnInNs(names.director, tsvsArgv(args), names.daemonLog, "tsvs daemon");
  const up = await waitFor(() => existsSync(names.controlSock) || !procAlive(proc), 8000);
  if (!up || !procAlive(proc)) {
    const why = logTail(names.daemonLog);
    return {
      proc: procAlive(proc) ? proc : null,
      status: `daemon not available yet: ${procAlive(proc) ? "no control socket after 8 s" : "it exited"}${why !== "" ? ` (${why})` : ""}`,
    };
  }
  return { proc, status: "running" };
}

/** Runs `tsvs ipvsadm --control SOCK ARGS…` in the director namespace. */
export function ipvsadm(
  names: LabNames,
  args: readonly string[],
): { status: number; stdout: string; stderr: string } {
  return nsExecStatus(names.director, tsvsArgv(["ipvsadm", "--control", names.controlSock, ...args]), 15_000);
}

/** Runs `tsvs CMD --control SOCK ARGS…` (ipvsadm, sysctl, fwmark, status) in the director namespace. */
export function tsvsCtl(
  names: LabNames,
  cmd: "ipvsadm" | "sysctl" | "fwmark" | "status",
  args: readonly string[],
): { status: number; stdout: string; stderr: string } {
  return nsExecStatus(names.director, tsvsArgv([cmd, "--control", names.controlSock, ...args]), 15_000);
}

/** The lab's service: TCP VIP:80, round robin, with the method's servers. Returns the error, or null. */
export function addLabService(names: LabNames, method: LabMethod): string | null {
  const vs = `${LAB_ADDR.VIP}:80`;
  const cmds: string[][] = [["-A", "-t", vs, "-s", "rr"]];
  for (const s of methodServers(names, method))
    cmds.push(["-a", "-t", vs, "-r", `${s.rip}:80`, IPVSADM_FLAG[method]]);
  for (const c of cmds) {
    const r = ipvsadm(names, c);
    if (r.status !== 0) return `tsvs ipvsadm ${c.join(" ")}: ${(r.stderr || r.stdout).trim()}`;
  }
  return null;
}
