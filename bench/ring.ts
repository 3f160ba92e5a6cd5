// bench:ring — forwarding figures of the data plane (docs/io.md "Figures"). Not a test: it builds
// a namespace network (root), measures, prints one JSON line per cell and then a table.
//
//   ns g (generator)                     ns d (tsvs daemon, NAT)                    ns k (sink)
//   g0 198.18.0.1/24  ⇄  d0 198.18.0.254/24      d1 198.18.1.254/24  ⇄  k0 198.18.1.11/24
//
// The generator (test/e2e/ring-helper.js gen: a packet socket, sendmmsg batches of 64 prebuilt
// frames) sends 60-byte (64 on the wire) UDP frames from 64 source ports to VIP:9; the daemon
// rewrites them to 198.18.1.11:9; the sink's interface counts what arrives (rx_packets, no socket
// reads it). Each cell: fresh daemon, 1 s warm-up, then SECONDS of load.
//
//   [TSVS_RING_BENCH_SECONDS=5] [TSVS_RING_BENCH_REPS=3] node dist/bench/ring.js     (make bench-ring)
//
// Knobs: TSVS_RING_BENCH_SET=rps|livelock|io (the cell sets below), TSVS_RING_BENCH_ONLY=REGEXP
// (cells whose name matches), TSVS_RING_BENCH_IO=mmsg,ring,xdp and TSVS_RING_BENCH_RATES=pps,…
// (livelock and io sets; "max" or 0 = unpaced), TSVS_RING_BENCH_EXTRA="daemon options" (io set).

import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  addVethPair,
  delNetns,
  freshNetns,
  ip,
  linkMac,
  linkStats,
  nsExec,
  nsExecStatus,
} from "../src/io/netns.js";

const ENTRY = fileURLToPath(new URL("../src/cli/entry.js", import.meta.url));
const HELPER = fileURLToPath(new URL("../test/e2e/ring-helper.js", import.meta.url));
const SECONDS = Number(process.env.TSVS_RING_BENCH_SECONDS ?? 5);
const REPS = Number(process.env.TSVS_RING_BENCH_REPS ?? 3);
const P = process.pid;
const tag = P.toString(36);
const NS = { g: `tsvs-rb-${P}-g`, d: `tsvs-rb-${P}-d`, k: `tsvs-rb-${P}-k` };
const IF = { g0: `rbg${tag}`, d0: `rbd${tag}`, d1: `rbD${tag}`, k0: `rbk${tag}` };
const VIP = "198.18.0.100";
const SOCK = `/tmp/tsvs-rb-${P}.sock`;
/** The daemon of the running cell, ended on the way out whatever happens. */
let daemon: ChildProcess | null = null;

interface Cell {
  io: string;
  workers: number;
  rps: string;
  pps: number;
  extra?: string[];
  /** taskset -c of the daemon (its workers may only use these CPUs). */
  pin?: string;
  /** taskset -c of the generator (default: CPU 0 when the daemon is pinned to CPU 1). */
  genPin?: string;
}

type Row = Record<string, number | string>;

function cellName(c: Cell): string {
  const pin = c.pin === undefined ? "" : `taskset=${c.pin} `;
  return `${c.io} workers=${c.workers} rps=${c.rps} pps=${c.pps || "max"} ${pin}${(c.extra ?? []).join(" ")}`.trim();
}

/** The cells of the chosen set, repetitions interleaved (mmsg, ring, mmsg, ring…) so that a burst of outside load hits both. */
function plan(): Cell[] {
  const set = process.env.TSVS_RING_BENCH_SET;
  const cells: Cell[] = [];
  if (set === "livelock") {
    // Receive work steered to the daemon's CPU (RPS mask 2 = CPU 1, or 3 = both), offered
    // 100k…400k pps, per setting (docs/io.md "Receive livelock"). The generator stays on CPU 0.
    // "taskset 1" confines the daemon to CPU 1 (it must share); without it the daemon may use
    // both CPUs and places its worker itself.
    const rates = (process.env.TSVS_RING_BENCH_RATES ?? "100000,200000,300000,400000").split(",").map(Number);
    const ios = (process.env.TSVS_RING_BENCH_IO ?? "mmsg,ring").split(",");
    const settings: { rps: string; pin?: string; extra?: string[] }[] = [
      { rps: "2", pin: "1" },
      { rps: "2" },
      { rps: "2", extra: ["--no-pin"] },
      { rps: "3", pin: "1" },
      { rps: "3", pin: "1", extra: ["--rx-kib", "256"] },
    ];
    for (let rep = 0; rep < REPS; rep++)
      for (const st of settings)
        for (const pps of rates)
          for (const io of ios) cells.push({ io, workers: 1, pps, genPin: "0", ...st });
  } else if (set === "io") {
    // The backends side by side (docs/io.md "AF_XDP"): one worker on CPU 1, the generator on
    // CPU 0, unpaced and paced.
    const ios = (process.env.TSVS_RING_BENCH_IO ?? "mmsg,ring,xdp").split(",");
    // TSVS_RING_BENCH_EXTRA: more daemon options for every cell of this set (e.g. "--idle-ms 0").
    const extra = (process.env.TSVS_RING_BENCH_EXTRA ?? "").split(" ").filter((a) => a !== "");
    const rates = (process.env.TSVS_RING_BENCH_RATES ?? "max,200000,300000")
      .split(",")
      .map((r) => (r === "max" ? 0 : Number(r)));
    for (let rep = 0; rep < REPS; rep++)
      for (const pps of rates)
        for (const io of ios) cells.push({ io, workers: 1, rps: "off", pps, pin: "1", extra });
  } else if (set === "rps") {
    // Only the receive-steering variants (both CPUs, two workers).
    for (let rep = 0; rep < REPS; rep++) {
      for (const io of ["mmsg", "ring"]) cells.push({ io, workers: 2, rps: "3", pps: 0 });
      for (const io of ["mmsg", "ring"]) cells.push({ io, workers: 2, rps: "2", pps: 0 });
      for (const io of ["mmsg", "ring"]) cells.push({ io, workers: 1, rps: "3", pps: 0, pin: "1" });
    }
  } else if (set === undefined || set === "") {
    for (let rep = 0; rep < REPS; rep++) {
      for (const rps of ["off", "2"])
        for (const io of ["mmsg", "ring"]) cells.push({ io, workers: 1, rps, pps: 0, pin: "1" });
      for (const io of ["mmsg", "ring"]) cells.push({ io, workers: 2, rps: "off", pps: 0 });
      for (const extra of [["--qdisc-bypass"], ["--no-filter"]])
        cells.push({ io: "ring", workers: 1, rps: "off", pps: 0, pin: "1", extra });
      for (const pps of [100_000, 200_000, 300_000, 400_000])
        for (const io of ["mmsg", "ring"]) cells.push({ io, workers: 1, rps: "off", pps, pin: "1" });
    }
  } else throw new Error(`TSVS_RING_BENCH_SET: unknown set "${set}" (rps, livelock, io, or unset)`);
  const only = process.env.TSVS_RING_BENCH_ONLY;
  return only === undefined ? cells : cells.filter((x) => new RegExp(only).test(cellName(x)));
}

function setUp(): void {
  freshNetns(Object.values(NS));
  addVethPair(
    { ns: NS.g, ifname: IF.g0, cidr: "198.18.0.1/24" },
    { ns: NS.d, ifname: IF.d0, cidr: "198.18.0.254/24" },
  );
  addVethPair(
    { ns: NS.d, ifname: IF.d1, cidr: "198.18.1.254/24" },
    { ns: NS.k, ifname: IF.k0, cidr: "198.18.1.11/24" },
  );
  ip("-n", NS.k, "route", "add", "default", "via", "198.18.1.254");
  ip("-n", NS.g, "route", "add", "default", "via", "198.18.0.254");
  // The sink's kernel would answer every datagram with an ICMP port unreachable: drop them at
  // its ingress after they are counted (rx_packets counts before netfilter).
  nsExec(NS.k, [
    "nft",
    "add table netdev sink; add chain netdev sink in { type filter hook ingress device " +
      `${IF.k0} priority 0; policy accept; }; add rule netdev sink in udp dport 9 drop`,
  ]);
}

function tearDown(): void {
  if (daemon !== null && daemon.exitCode === null && daemon.signalCode === null) daemon.kill("SIGKILL");
  daemon = null;
  for (const ns of Object.values(NS)) delNetns(ns);
}

async function runCell(c: Cell): Promise<Row> {
  const args = [ENTRY, "daemon", "--iface", IF.d0, "--iface", IF.d1, "--control", SOCK, "--io", c.io];
  args.push("--workers", String(c.workers), ...(c.extra ?? []));
  const argv = ["netns", "exec", NS.d, ...(c.pin ? ["taskset", "-c", c.pin] : []), process.execPath, ...args];
  const d: ChildProcess = spawn("ip", argv, { stdio: ["ignore", "ignore", "pipe"] });
  daemon = d;
  let err = "";
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`daemon not ready within 10 s: ${err}`)), 10_000);
    d.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`daemon exited (${code}) before ready: ${err}`));
    });
    d.stderr?.setEncoding("utf8");
    d.stderr?.on("data", (s: string) => {
      err += s;
      if (err.includes('"msg":"ready"')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  const tsvs = (...a: string[]): string =>
    nsExecStatus(NS.d, [process.execPath, ENTRY, a[0], "--control", SOCK, ...a.slice(1)]).stdout;
  tsvs("ipvsadm", "-A", "-u", `${VIP}:9`, "-s", "rr");
  tsvs("ipvsadm", "-a", "-u", `${VIP}:9`, "-r", "198.18.1.11:9", "-m");
  // d0's receive work: "off" = where veth's sender runs it (the generator's CPU), else a CPU mask.
  nsExec(NS.d, [
    "sh",
    "-c",
    `echo ${c.rps === "off" ? "0" : c.rps} > /sys/class/net/${IF.d0}/queues/rx-0/rps_cpus`,
  ]);
  const mac = linkMac(NS.d, IF.d0);
  const gen = (secs: number): { sent: number; seconds: number } => {
    const gp = c.genPin ?? (c.pin === "1" ? "0" : undefined);
    const pin = gp === undefined ? [] : ["taskset", "-c", gp];
    const r = nsExecStatus(
      NS.g,
      [
        ...pin,
        process.execPath,
        HELPER,
        "gen",
        IF.g0,
        mac,
        "198.18.0.1",
        VIP,
        "9",
        String(secs),
        String(c.pps),
        "64",
      ],
      (secs + 20) * 1000,
    );
    const last = r.stdout.trim().split("\n").pop() ?? "";
    if (!last.startsWith("{")) throw new Error(`generator failed: ${r.stderr || r.stdout}`);
    return JSON.parse(last) as { sent: number; seconds: number };
  };
  gen(1);
  const k0 = linkStats(NS.k, IF.k0).rxPackets;
  const cpu0 = cpuSeconds(d.pid);
  const g = gen(SECONDS);
  const cpu = cpuSeconds(d.pid) - cpu0;
  // Frames still in flight through the daemon when the generator stops.
  await new Promise((r) => setTimeout(r, 200));
  const got = linkStats(NS.k, IF.k0).rxPackets - k0;
  const st = JSON.parse(tsvs("status", "--json")) as {
    interfaces: { kernelDrops: number; io?: string; xdp?: Record<string, number> }[];
  };
  const exited = new Promise((r) => d.once("exit", r));
  d.kill("SIGTERM");
  await exited;
  daemon = null;
  // Where the worker put itself (main.ts planCpus → worker.ts placeThread).
  const placedLine = err.split("\n").find((l) => l.includes('"msg":"worker placed"')) ?? "";
  const placed = /"cpus":\[([\d,]*)\]/.exec(placedLine)?.[1] ?? "?";
  return {
    io: c.io,
    workers: c.workers,
    rps: c.rps,
    extra: `${c.pin === undefined ? "" : `taskset ${c.pin} `}${(c.extra ?? []).join(" ")}`.trim() || "-",
    cpus: placed,
    target: c.pps || "max",
    offered: Math.round(g.sent / g.seconds),
    forwarded: Math.round(got / g.seconds),
    kernelDrops: st.interfaces[0]?.kernelDrops ?? 0,
    io_used: st.interfaces.map((i) => i.io ?? c.io).join(","),
    // Where an XDP socket lost frames (rxDropped: no fill-ring frame; rxRingFull: we were late).
    ...(st.interfaces[0]?.xdp === undefined ? {} : { xdp: JSON.stringify(st.interfaces[0].xdp) }),
    // The daemon's own CPU (user + system, all its threads) per forwarded frame, in µs: the
    // receive softirq of veth runs on the generator's CPU and is not in it.
    daemonUsPerPkt: got > 0 ? Math.round((cpu / got) * 1e8) / 100 : 0,
  };
}

/** utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15, in clock ticks). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / 100;
  } catch {
    return 0;
  }
}

/** Medians over the repetitions of each cell, as a markdown table. */
function printTable(results: Row[]): void {
  const groups = new Map<string, Row[]>();
  for (const r of results) {
    const k = `${r.io} | ${r.workers} | ${r.rps} | ${r.extra} | ${r.cpus} | ${r.target}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  console.log(
    "| io | workers | rps | options | worker CPUs | target pps | offered pps | forwarded pps (median) | min–max | daemon µs/pkt (median) |",
  );
  for (const [k, rs] of groups) {
    const f = rs.map((r) => Number(r.forwarded));
    console.log(
      `| ${k} | ${med(rs.map((r) => Number(r.offered)))} | ${med(f)} | ${Math.min(...f)}–${Math.max(...f)} | ${med(rs.map((r) => Number(r.daemonUsPerPkt)))} |`,
    );
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench:ring needs root (network namespaces, packet sockets)");
  if (!(SECONDS > 0) || !(REPS > 0))
    throw new Error("TSVS_RING_BENCH_SECONDS and TSVS_RING_BENCH_REPS must be > 0");
  const cells = plan();
  if (cells.length === 0) throw new Error("no cell matches TSVS_RING_BENCH_ONLY");
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.once(sig, () => {
      tearDown();
      process.exit(130);
    });
  const results: Row[] = [];
  setUp();
  try {
    for (const c of cells) {
      const r = await runCell(c);
      results.push(r);
      console.log(JSON.stringify({ cell: cellName(c), ...r }));
    }
  } finally {
    tearDown();
  }
  printTable(results);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
