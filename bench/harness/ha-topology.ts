// bench/ha.ts's network: the HA e2e topology (test/e2e/ha-helpers.ts, docs/ha.md) under the
// bench's own names, tsvs-hb<pid>-{b,c,d1,d2,r1,r2,x}, so that a bench and the HA suites can run
// side by side and a bench killed before its cleanup is found by its dead pid.
//
//   c   client 198.18.72.2            d1, d2  directors (eth0 client net, eth1 server LAN)
//   r1, r2  the lab's HTTP server on :8080, default route via the floating gateway (NAT)
//   b   the two bridges               x   router (unused by NAT, built as in the suites)
//
// The builders are the suites' own (buildHa, startServers, haConf), imported rather than copied so
// that the bench measures the topology the tests check. Everything here is bounded: each socket
// request and each wait has a timeout, and processes are stopped by pid.

import { readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { nsExecStatus } from "../../src/io/netns.js";
import { deadRuns, sleep } from "../../src/lab/proc.js";
import {
  buildHa,
  type HaNames,
  haNamesOf,
  removeHa,
  serverRoutes,
  startServers,
} from "../../test/e2e/ha-helpers.js";
import type { Children } from "../../test/support/e2e-daemon.js";

/**
 * Not "tsvs-bh": `tsvs bench` sweeps namespaces matching ^tsvs-b([0-9a-z]+)- whose base-36 pid is
 * gone (bench/harness/run.ts removeStaleRuns), and "h<pid>" read in base 36 is never a live pid, so
 * a concurrent `tsvs bench` (or bench-smoke test) would tear this bench's network down mid-run.
 */
export const BENCH_PREFIX = "tsvs-hb";

/** The namespaces of the bench run of process pid. */
export function benchNames(pid = process.pid): HaNames {
  return haNamesOf(`${BENCH_PREFIX}${pid}`);
}

/**
 * Namespaces tsvs-hb<pid>-* (their processes stopped by pid first) and work directories
 * /tmp/tsvs-hb<pid> left by bench runs whose process is gone (killed before the cleanup).
 */
export async function removeStaleBench(): Promise<string[]> {
  const removed: string[] = [];
  for (const id of deadRuns(BENCH_PREFIX)) {
    const n = benchNames(Number(id));
    await removeHa(n);
    rmSync(join("/tmp", n.prefix), { recursive: true, force: true });
    removed.push(n.prefix);
  }
  return removed;
}

/** The NAT pair's network with both real servers answering; throws (bounded) when a step fails. */
export async function buildBenchHa(n: HaNames, children: Children): Promise<void> {
  buildHa(n);
  serverRoutes(n, "nat");
  // Many short connections from one client address: the widest port range, so that a port is
  // not reused while the director or a server still holds its last connection.
  const r = nsExecStatus(n.c, ["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"]);
  if (r.status !== 0) throw new Error(`sysctl in ${n.c}: ${r.stderr}`);
  await startServers(n, children);
}

export interface SyncStatus {
  role: string;
  connsSent: number;
  connsReceived: number;
  messagesSent?: number;
  messagesReceived: number;
  drops: Record<string, number>;
}

export interface DaemonStatus {
  pid: number;
  connections: number;
  vrrp?: Array<{ name: string; state: string; effectivePriority: number; master: string | null }>;
  sync?: SyncStatus[];
}

/** The daemon's control socket in namespace ns (docs/control-protocol.md "Where"). */
export function controlPath(ns: string): string {
  return join("/run/tsvs", `netns-${ns}`, "control.sock");
}

/**
 * `{"op":"status"}` on the daemon's control socket, from this process (no `tsvs status` child, whose
 * node start-up would cost more CPU than the daemon's answer); null when it does not answer in time.
 */
export function controlStatus(ns: string, timeoutMs = 2000): Promise<DaemonStatus | null> {
  return new Promise((resolve) => {
    let buf = "";
    let done = false;
    const s = connect(controlPath(ns));
    const finish = (v: DaemonStatus | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    s.on("connect", () => s.write('{"op":"status"}\n'));
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      try {
        const v = JSON.parse(buf.slice(0, nl)) as { status?: DaemonStatus };
        finish(v.status ?? null);
      } catch {
        finish(null);
      }
    });
    s.on("error", () => finish(null));
  });
}

/** VRRP state of instance inst in the daemon of ns, or null (no daemon, no answer). */
export async function vrrpState(ns: string, inst = "VI_1"): Promise<string | null> {
  return (await controlStatus(ns))?.vrrp?.find((v) => v.name === inst)?.state ?? null;
}

/** Polls until both instances of ns are in state (or timeoutMs passes): the ms it took, or null. */
export async function waitBoth(ns: string, state: string, timeoutMs: number): Promise<number | null> {
  const t0 = performance.now();
  while (performance.now() - t0 <= timeoutMs) {
    const st = await controlStatus(ns);
    const v = st?.vrrp ?? [];
    if (v.length > 0 && v.every((i) => i.state === state)) return performance.now() - t0;
    await sleep(25);
  }
  return null;
}

/** utime + stime of one process (clock ticks, /proc/PID/stat fields 14 and 15; its threads included). */
export function procCpuTicks(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return Number.NaN;
  }
}
