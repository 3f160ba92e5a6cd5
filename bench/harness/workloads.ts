// The workloads, each one repetition of one cell: the load runs in the client namespace, pinned to
// the generator core, bounded in time (its own duration, plus a kill timeout by pid).
//
//   udp_pps   small UDP datagrams (64-byte payload, 256 source ports) to TARGET:53 as fast as the
//             generator goes; the rate is what reaches the servers (their nft counters)
//   http_cps  wrk -t1 -c64 with `Connection: close`: new connections per second
//   http_rps  wrk -t1 -c64 keep-alive: requests per second
//   latency   wrk -t1 -c1 keep-alive: p50/p90/p99/p99.9 of one request at a time, read from wrk's
//             own histogram by a done() script (every request is a sample: ~10^5 per 10 s cell)
//   tcp_bulk  iperf3 -c TARGET:5201 (to r1): throughput

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { linkMac, linkStats, nsExecStatus } from "../../src/io/netns.js";
import { jsPath } from "../../src/lab/proc.js";
import { LAB_ADDR, LAB_ADDR6 } from "../../src/lab/topology.js";
import type { DirectorRun } from "./directors.js";
import {
  type BenchNet,
  benchServers,
  IPERF_PORT,
  placeServers,
  type SinkCounts,
  sinkCounts,
  UDP_PORT,
} from "./topology.js";
import { round, runCmd, sleep } from "./util.js";

export type WorkloadName = "udp_pps" | "http_cps" | "http_rps" | "latency" | "tcp_bulk";

export interface WorkloadDef {
  name: WorkloadName;
  label: string;
  /** Unit of the cell's headline value. */
  unit: string;
}

export const WORKLOADS: readonly WorkloadDef[] = [
  { name: "udp_pps", label: "UDP 64-byte packets forwarded (at the sink)", unit: "pps" },
  { name: "http_cps", label: "HTTP new connections (Connection: close, 64 conns)", unit: "conn/s" },
  { name: "http_rps", label: "HTTP keep-alive requests (64 conns)", unit: "req/s" },
  { name: "latency", label: "HTTP latency p99, one request at a time", unit: "ms" },
  { name: "tcp_bulk", label: "TCP bulk throughput (iperf3, to r1)", unit: "Gbit/s" },
];

export const UDP_PAYLOAD = 64;
export const UDP_SPORTS = 256;

export interface CellCtx {
  net: BenchNet;
  run: DirectorRun;
  durationS: number;
  /** Core of the load generator ("0"), or null without pinning. */
  genPin: string | null;
  /** Core of the director ("1"), or null without pinning. */
  dirPin: string | null;
  /** Every CPU of the machine as a taskset list ("0-1"): where the servers live outside the latency cell. */
  allCpus: string;
  /** "trafgen" or "node" (src/io/afpacket.ts generator, bench/harness/udpgen.ts). */
  generator: "trafgen" | "node";
}

/** One repetition's result: the headline value plus raw figures. */
export interface RepResult {
  value: number;
  extra: Record<string, number | string | number[]>;
}

function pinned(genPin: string | null, argv: readonly string[]): string[] {
  return genPin === null ? [...argv] : ["taskset", "-c", genPin, ...argv];
}

/** Latency as wrk prints it ("812.00us", "3.90ms", "1.02s") in ms. */
export function wrkMs(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s.trim());
  if (m === null) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === "us" ? v / 1000 : m[2] === "ms" ? v : m[2] === "s" ? v * 1000 : v * 60_000;
}

export interface WrkOut {
  rps: number;
  requests: number;
  p50: number;
  p75: number;
  p90: number;
  p99: number;
  /** From the done() script only (wrk prints no p99.9): NaN without it. */
  p999: number;
  socketErrors: number;
  non2xx: number;
}

/**
 * wrk's done() hook: its latency histogram's percentiles in microseconds, exact to wrk's
 * recording (`latency:percentile`), where --latency prints 50/75/90/99 rounded to two decimals.
 */
export const WRK_PERCENTILES_LUA = `done = function(summary, latency, requests)
  for _, p in ipairs({50, 75, 90, 99, 99.9}) do
    io.write(string.format("tsvs-pct %g %d\\n", p, latency:percentile(p)))
  end
end
`;

export function parseWrk(out: string): WrkOut | null {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (rps === null) return null;
  // The done() script's lines (µs) first; else --latency's distribution.
  const pct = (p: string): number => {
    const exact = new RegExp(`^tsvs-pct ${p.replace(".", "\\.")} (\\d+)$`, "m").exec(out);
    if (exact !== null) return Number(exact[1]) / 1000;
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m").exec(out);
    return m === null ? Number.NaN : wrkMs(m[1]);
  };
  const req = /(\d+) requests in/.exec(out);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    rps: Number(rps[1]),
    requests: req === null ? 0 : Number(req[1]),
    p50: pct("50"),
    p75: pct("75"),
    p90: pct("90"),
    p99: pct("99"),
    p999: pct("99.9"),
    socketErrors: se === null ? 0 : se.slice(1).reduce((a, b) => a + Number(b), 0),
    non2xx: non === null ? 0 : Number(non[1]),
  };
}

/** Is the director's target an IPv6 address (tsvs-nat6, tsvs-dr6)? Then the client sends from CIP6. */
function isIpv6(target: string): boolean {
  return target.includes(":");
}

/** The target as a URL's host: IPv6 in brackets. */
export function urlHost(target: string): string {
  return isIpv6(target) ? `[${target}]` : target;
}

function serverCounts(ctx: CellCtx): SinkCounts[] {
  return benchServers(ctx.net.names).map((s) => sinkCounts(s.ns));
}

async function wrk(ctx: CellCtx, conns: number, close: boolean): Promise<WrkOut> {
  const script = join(ctx.net.dir, "percentiles.lua");
  writeFileSync(script, WRK_PERCENTILES_LUA);
  const argv = [
    "wrk",
    "-t1",
    `-c${conns}`,
    `-d${ctx.durationS}s`,
    "--latency",
    "--timeout",
    "5s",
    "-s",
    script,
  ];
  if (close) argv.push("-H", "Connection: close");
  argv.push(`http://${urlHost(ctx.run.target)}/`);
  const r = await runCmd(ctx.net.names.client, pinned(ctx.genPin, argv), ctx.durationS * 1000 + 20_000);
  const w = parseWrk(r.stdout);
  if (w === null) {
    throw new Error(
      `wrk: ${r.timedOut ? "timed out" : `exit ${r.status}`}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`,
    );
  }
  if (w.requests === 0) throw new Error("wrk: no request completed");
  // A director that answers with errors is not measured: the figure would be of the error path.
  if (w.non2xx > 0) throw new Error(`wrk: ${w.non2xx} of ${w.requests} responses were not 2xx or 3xx`);
  return w;
}

async function httpCell(ctx: CellCtx, conns: number, close: boolean): Promise<RepResult> {
  const before = serverCounts(ctx);
  const w = await wrk(ctx, conns, close);
  const after = serverCounts(ctx);
  return {
    value: round(w.rps, 1),
    extra: {
      requests: w.requests,
      p50_ms: w.p50,
      p90_ms: w.p90,
      p99_ms: w.p99,
      p999_ms: w.p999,
      socket_errors: w.socketErrors,
      non_2xx: w.non2xx,
      syn_per_server: after.map((a, i) => a.syn - before[i].syn),
    },
  };
}

/** trafgen's packet: IPv4, or IPv6 when dst is (trafgen fills the UDP checksum IPv6 requires). */
export function trafgenConf(dstMac: string, srcMac: string, src: string, dst: string): string {
  const l3 = isIpv6(dst)
    ? `ipv6(saddr=${src}, daddr=${dst}, hl=64)`
    : `ipv4(saddr=${src}, daddr=${dst}, ttl=64)`;
  return `{
  eth(da=${dstMac}, sa=${srcMac}),
  ${l3},
  udp(sp=dinc(1024, ${1024 + UDP_SPORTS - 1}), dp=${UDP_PORT}),
  fill(0x41, ${UDP_PAYLOAD})
}
`;
}

async function udpCell(ctx: CellCtx): Promise<RepResult> {
  const n = ctx.net.names;
  const dstMac = linkMac(n.director, n.dirClientIf);
  const srcMac = linkMac(n.client, "eth0");
  // Upper bound on what is sent, whatever the rate: 5 Mpps for the whole duration.
  const bound = Math.ceil(5_000_000 * ctx.durationS);
  const cip = isIpv6(ctx.run.target) ? LAB_ADDR6.CIP : LAB_ADDR.CIP;
  let argv: string[];
  if (ctx.generator === "trafgen") {
    const f = join(ctx.net.dir, "udp.trafgen");
    writeFileSync(f, trafgenConf(dstMac, srcMac, cip, ctx.run.target));
    argv = [
      "trafgen",
      "--dev",
      "eth0",
      "--conf",
      f,
      "--cpus",
      "1",
      "--no-sock-mem",
      "-q",
      "-C",
      "-n",
      String(bound),
    ];
  } else {
    argv = [
      process.execPath,
      jsPath("bench/harness/udpgen.js"),
      "--iface",
      "eth0",
      "--dst-mac",
      dstMac,
      "--src",
      cip,
      "--dst",
      ctx.run.target,
      "--dport",
      String(UDP_PORT),
      "--sports",
      String(UDP_SPORTS),
      "--payload",
      String(UDP_PAYLOAD),
      "--seconds",
      String(ctx.durationS),
      "--count",
      String(bound),
    ];
  }
  // The generator writes the director's MAC itself and never resolves it, and a director may send
  // nothing on the client net (DR: the replies come by the router): the switch would never learn
  // where that MAC is and flood every frame to every port, the router's included, on the
  // generator's CPU (issue 15's "DR forwards fewer UDP packets than NAT"). A client resolves its
  // peer first, and the director's answer teaches the switch, as on a real network.
  nsExecStatus(n.client, ["ping", "-n", "-c", "1", "-W", "1", ctx.run.target], 5000);
  const before = serverCounts(ctx);
  const tx0 = linkStats(n.client, "eth0").txPackets;
  const t0 = performance.now();
  const done = runCmd(
    n.client,
    pinned(ctx.genPin, argv),
    ctx.durationS * 1000 + 15_000,
    ctx.durationS * 1000,
  );
  // The rate is taken between two samples inside the run (20 % and 90 % of it), so that the
  // generator's start-up and the tail after SIGINT do not count.
  const sample = (): { t: number; rx: number[]; tx: number } => {
    const ta = performance.now();
    const rx = serverCounts(ctx).map((c) => c.udp);
    const tx = linkStats(n.client, "eth0").txPackets;
    return { t: (ta + performance.now()) / 2, rx, tx };
  };
  await sleep(ctx.durationS * 200);
  const a = sample();
  await sleep(Math.max(0, t0 + ctx.durationS * 900 - performance.now()));
  const b = sample();
  const r = await done;
  const elapsed = (performance.now() - t0) / 1000;
  // Frames still in flight through the director.
  await sleep(300);
  const after = serverCounts(ctx);
  const sent = linkStats(n.client, "eth0").txPackets - tx0;
  if (sent === 0) {
    throw new Error(`${ctx.generator}: nothing sent (exit ${r.status}: ${r.stderr.trim().slice(0, 300)})`);
  }
  const perServer = after.map((x, i) => x.udp - before[i].udp);
  const got = perServer.reduce((x, y) => x + y, 0);
  const win = (b.t - a.t) / 1000;
  const winGot = b.rx.reduce((x, y) => x + y, 0) - a.rx.reduce((x, y) => x + y, 0);
  return {
    value: Math.round(winGot / win),
    extra: {
      window_s: round(win, 3),
      window_sent_pps: Math.round((b.tx - a.tx) / win),
      sent,
      received: got,
      seconds: round(elapsed, 3),
      loss_pct: round((100 * (sent - got)) / sent, 2),
      udp_per_server: perServer,
    },
  };
}

async function bulkCell(ctx: CellCtx): Promise<RepResult> {
  const argv = [
    "iperf3",
    "-c",
    ctx.run.target,
    "-p",
    String(IPERF_PORT),
    "-t",
    String(ctx.durationS),
    "-J",
    "--connect-timeout",
    "3000",
  ];
  const r = await runCmd(ctx.net.names.client, pinned(ctx.genPin, argv), ctx.durationS * 1000 + 20_000);
  let j: {
    error?: string;
    end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } };
  };
  try {
    j = JSON.parse(r.stdout) as typeof j;
  } catch {
    throw new Error(`iperf3: exit ${r.status}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
  }
  const bps = j.end?.sum_received?.bits_per_second;
  if (j.error !== undefined || bps === undefined) throw new Error(`iperf3: ${j.error ?? "no result"}`);
  return {
    value: round(bps / 1e9, 3),
    extra: { bits_per_second: Math.round(bps), retransmits: j.end?.sum_sent?.retransmits ?? 0 },
  };
}

/** Runs one repetition of a workload against a started director. */
export async function runWorkload(name: WorkloadName, ctx: CellCtx): Promise<RepResult> {
  switch (name) {
    case "udp_pps":
      return udpCell(ctx);
    case "http_cps":
      return httpCell(ctx, 64, true);
    case "http_rps":
      return httpCell(ctx, 64, false);
    case "latency": {
      // One request at a time: the scheduler would put each director's nginx workers on either
      // core, and a server on the client's core costs two more cross-CPU wake-ups per request
      // than one on the director's. On the director's core, with nothing running at the same
      // time, every director (the direct path included) pays the same two, client ⇄ rest.
      if (ctx.dirPin !== null) placeServers(ctx.net, ctx.dirPin);
      let r: RepResult;
      try {
        r = await httpCell(ctx, 1, false);
      } finally {
        if (ctx.dirPin !== null) placeServers(ctx.net, ctx.allCpus);
      }
      return { value: r.extra.p99_ms as number, extra: { ...r.extra, rps: r.value } };
    }
    case "tcp_bulk":
      return bulkCell(ctx);
  }
}
