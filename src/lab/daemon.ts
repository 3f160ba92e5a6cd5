// The director side of the lab: `tsvs daemon` in the director namespace, and `tsvs ipvsadm` talking
// to it. The daemon listens where any `ip netns exec P-d tsvs ipvsadm` looks by default (the
// namespace's own control socket, src/daemon/protocol.ts), so the lab's commands pass no
// --control, as a user's would not; /run/tsvs/lab.sock stays as a symlink to it for older
// scripts. Both run the built CLI entry (dist/src/cli/tsvs.js, what bin/tsvs runs) with the node
// that runs the lab, so a private build directory works as well.

import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { dirname, isAbsolute, join, relative } from "node:path";
import { TsvsError } from "../core/errors.js";
import { nsExecStatus } from "../io/netns.js";
import { commandPath } from "./packages.js";
import { DIST_ROOT, jsPath, type ProcRef, procAlive, spawnInNs, waitFor } from "./proc.js";
import {
  LAB_ADDR,
  LAB_ADDR6,
  type LabMethod,
  type LabNames,
  type LabServerSpec,
  methodServers,
} from "./topology.js";

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
  if (entry === null)
    throw new TsvsError("TSVS_ERR_DEPENDENCY", `tsvs is not built (no ${jsPath("src/cli/entry.js")})`);
  // Node flags NODE_OPTIONS refuses (--cpu-prof, --trace-gc) for profiling the lab's daemon.
  const flags = (process.env.TSVS_NODE_FLAGS ?? "").split(/\s+/).filter((f) => f !== "");
  if (entry.endsWith("entry.js")) return [process.execPath, ...flags, entry, ...args];
  return [process.execPath, ...flags, "--input-type=module", "-e", LAUNCHER, entry, ...args];
}

/**
 * How the user runs tsvs, for the commands the lab prints: `tsvs` when it is on PATH (npm link,
 * a package), else the repository's bin/tsvs as a path from the working directory.
 */
export function userTsvs(): string {
  if (commandPath("tsvs") !== null) return "tsvs";
  const bin = join(DIST_ROOT, "..", "bin", "tsvs");
  if (!existsSync(bin)) return "tsvs";
  const rel = relative(process.cwd(), bin);
  return rel.startsWith("..") || isAbsolute(rel) ? bin : rel;
}

/** The command that lists the lab director's table, as a user types it. */
export function listCommand(names: LabNames): string {
  return `ip netns exec ${names.director} ${userTsvs()} ipvsadm -Ln`;
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

/**
 * Prefix of the lab's tsvs commands: a TSVS_CONTROL in the environment of whoever runs the lab
 * would move the daemon's socket, and the clients', away from the namespace's default.
 */
const NO_TSVS_CONTROL = ["env", "-u", "TSVS_CONTROL"] as const;

/** `lab.sock` → the daemon's socket, replacing whatever an earlier lab left there. */
export function linkAlias(names: LabNames): void {
  mkdirSync(dirname(names.controlAlias), { recursive: true });
  rmSync(names.controlAlias, { force: true });
  symlinkSync(names.controlSock, names.controlAlias);
}

/**
 * Starts the daemon in the director namespace on the namespace's default control socket, waits
 * for it (≤ 8 s), then links the lab.sock alias to it.
 */
export async function startDaemon(
  names: LabNames,
  method: LabMethod,
  extraArgs: readonly string[] = [],
): Promise<DaemonStart> {
  // No --iface: the daemon takes every up Ethernet interface of its namespace (eth0, eth1), as on
  // a host; FULLNAT's local address is the one thing it cannot guess.
  const args = method === "fullnat" ? ["--lip", LAB_ADDR.LIP, ...extraArgs] : [...extraArgs];
  const d = await startDaemonIn(names.director, names.controlSock, names.daemonLog, args);
  if (d.status === "running") linkAlias(names);
  return d;
}

/**
 * Starts `tsvs daemon ARGS…` in namespace ns, listening on that namespace's default socket
 * (controlSock, as seen from here), its output appended to logFile; waits ≤ 8 s for the socket.
 */
export async function startDaemonIn(
  ns: string,
  controlSock: string,
  logFile: string,
  args: readonly string[],
): Promise<DaemonStart> {
  if (tsvsEntry() === null) {
    return { proc: null, status: `daemon not available yet: ${jsPath("src/cli/entry.js")} is not built` };
  }
  // A socket left by a killed daemon would pass for this one's until it listens.
  rmSync(controlSock, { force: true });
  const proc = spawnInNs(ns, [...NO_TSVS_CONTROL, ...tsvsArgv(["daemon", ...args])], logFile, "tsvs daemon");
  const up = await waitFor(() => existsSync(controlSock) || !procAlive(proc), 8000);
  if (!up || !procAlive(proc)) {
    const why = logTail(logFile);
    return {
      proc: procAlive(proc) ? proc : null,
      status: `daemon not available yet: ${procAlive(proc) ? "no control socket after 8 s" : "it exited"}${why !== "" ? ` (${why})` : ""}`,
    };
  }
  return { proc, status: "running" };
}

/** Runs `tsvs ipvsadm ARGS…` in the director namespace (its daemon, no --control). */
export function ipvsadm(
  names: LabNames,
  args: readonly string[],
): { status: number; stdout: string; stderr: string } {
  return tsvsCtl(names, "ipvsadm", args);
}

/** Runs `tsvs CMD ARGS…` (ipvsadm, sysctl, fwmark, status) in the director namespace, no --control. */
export function tsvsCtl(
  names: LabNames,
  cmd: "ipvsadm" | "sysctl" | "fwmark" | "status",
  args: readonly string[],
): { status: number; stdout: string; stderr: string } {
  return tsvsCtlIn(names.director, cmd, args);
}

/** `tsvs CMD ARGS…` in namespace ns (a director of the lab), on its daemon's default socket. */
export function tsvsCtlIn(
  ns: string,
  cmd: "ipvsadm" | "sysctl" | "fwmark" | "status",
  args: readonly string[],
  timeoutMs = 15_000,
): { status: number; stdout: string; stderr: string } {
  return nsExecStatus(ns, [...NO_TSVS_CONTROL, ...tsvsArgv([cmd, ...args])], timeoutMs);
}

/**
 * The lab's service: TCP VIP:80, round robin, with the method's servers (`destArgs` after each
 * destination, e.g. TUN's --tun-type); with `ipv6` the same on [VIP6]:80 over their IPv6
 * addresses. Returns the error, or null.
 */
export function addLabService(
  names: LabNames,
  method: LabMethod,
  destArgs: readonly string[] = [],
  ipv6 = false,
): string | null {
  const cmds: string[][] = [];
  const service = (vs: string, rip: (s: LabServerSpec) => string): void => {
    cmds.push(["-A", "-t", vs, "-s", "rr"]);
    for (const s of methodServers(names, method))
      cmds.push(["-a", "-t", vs, "-r", `${rip(s)}:80`, IPVSADM_FLAG[method], ...destArgs]);
  };
  service(`${LAB_ADDR.VIP}:80`, (s) => s.rip);
  if (ipv6) service(`[${LAB_ADDR6.VIP}]:80`, (s) => `[${s.rip6}]`);
  // FULLNAT over IPv6 takes the service's own local address: the --lip pool is IPv4.
  if (ipv6 && method === "fullnat") cmds.push(["-P", "-t", `[${LAB_ADDR6.VIP}]:80`, "-z", LAB_ADDR6.LIP]);
  for (const c of cmds) {
    const r = ipvsadm(names, c);
    if (r.status !== 0) return `tsvs ipvsadm ${c.join(" ")}: ${(r.stderr || r.stdout).trim()}`;
  }
  return null;
}
