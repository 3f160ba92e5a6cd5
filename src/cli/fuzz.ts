// `tsvs fuzz`: malformed and random frames of every kind the codecs know against a real daemon in
// namespaces (src/cli/fuzz/netns.ts), or against the engine in this process (src/cli/fuzz/inproc.ts).
// Parses argv and formats the result; docs/fuzz.md.

import { netnsUnavailableReason } from "../io/netns.js";
import { runInproc } from "./fuzz/inproc.js";
import { netnsFuzzMissing, runNetnsFuzz, teardown } from "./fuzz/netns.js";

export const FUZZ_USAGE = `Usage: tsvs fuzz [--count N] [--seed S] [--start I] [--rate PPS] [--seconds T]
                 [--keep | --reuse] [--prefix P] [--filter] [--no-vrrp] [--workers N] [--io MODE] [--json]
       tsvs fuzz --in-process [--count N] [--seed S] [--start I] [--json]
       tsvs fuzz --down [--prefix P]

  Sends N generated frames (default 100000; frame I of seed S is always the same bytes) from a
  sender namespace to a tsvs daemon in namespaces (P-c, P-d, P-r; P = tsvsfz), then checks that
  the daemon is alive, answers status and ipvsadm -Ln, and still forwards a curl through NAT.
  --rate caps the frames a second (default: as fast as the kernel takes them); --seconds bounds
  the sending (default 600). --keep leaves the namespaces and the daemon running, --reuse runs
  against what --keep left, --down removes it. --filter keeps the daemon's kernel socket filter
  (by default every frame reaches the engine); --workers and --io go to the daemon. --in-process
  feeds the frames to an engine in this process instead (no root needed). Exit status 1 when the
  daemon died, stopped answering or
  stopped forwarding (in-process: when anything threw).
`;

interface FuzzArgs {
  count: number;
  seed: number;
  start: number;
  rate: number;
  seconds: number;
  keep: boolean;
  reuse: boolean;
  down: boolean;
  prefix: string;
  filter: boolean;
  vrrp: boolean;
  json: boolean;
  inProcess: boolean;
  daemonArgs: string[];
}

function parse(args: readonly string[]): FuzzArgs | string {
  const o: FuzzArgs = {
    count: 100000,
    seed: 1,
    start: 0,
    rate: 0,
    seconds: 600,
    keep: false,
    reuse: false,
    down: false,
    prefix: "tsvsfz",
    filter: false,
    vrrp: true,
    json: false,
    inProcess: false,
    daemonArgs: [],
  };
  const num = (name: string, v: string | undefined, min: number): number | string => {
    const n = Number(v);
    if (v === undefined || v === "" || !Number.isInteger(n) || n < min)
      return `${name} takes an integer ≥ ${min}`;
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    let r: number | string;
    switch (a) {
      case "--count":
        r = num(a, args[++i], 1);
        if (typeof r === "string") return r;
        o.count = r;
        break;
      case "--seed":
        r = num(a, args[++i], 0);
        if (typeof r === "string") return r;
        o.seed = r >>> 0;
        break;
      case "--start":
        r = num(a, args[++i], 0);
        if (typeof r === "string") return r;
        o.start = r;
        break;
      case "--rate":
        r = num(a, args[++i], 1);
        if (typeof r === "string") return r;
        o.rate = r;
        break;
      case "--seconds":
        r = num(a, args[++i], 1);
        if (typeof r === "string") return r;
        o.seconds = r;
        break;
      case "--prefix": {
        const p = args[++i];
        if (p === undefined || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,11}$/.test(p))
          return "--prefix takes a name of at most 12 letters, digits, '.', '_', '-'";
        o.prefix = p;
        break;
      }
      case "--keep":
        o.keep = true;
        break;
      case "--reuse":
        o.reuse = true;
        break;
      case "--down":
        o.down = true;
        break;
      case "--filter":
        o.filter = true;
        break;
      case "--workers":
        r = num(a, args[++i], 1);
        if (typeof r === "string") return r;
        o.daemonArgs.push("--workers", String(r));
        break;
      case "--io": {
        const m = args[++i];
        if (m === undefined || !/^[a-z]+$/.test(m))
          return "--io takes the daemon's I/O backend (mmsg, ring, xdp, auto)";
        o.daemonArgs.push("--io", m);
        break;
      }
      case "--no-vrrp":
        o.vrrp = false;
        break;
      case "--json":
        o.json = true;
        break;
      case "--in-process":
        o.inProcess = true;
        break;
      default:
        return `unknown argument ${a}`;
    }
  }
  return o;
}

function table(rec: Record<string, number>): string {
  return Object.entries(rec)
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
}

export async function fuzzMain(args: string[]): Promise<number> {
  if (args.includes("-h") || args.includes("--help")) {
    process.stdout.write(FUZZ_USAGE);
    return 0;
  }
  const o = parse(args);
  if (typeof o === "string") {
    process.stderr.write(`tsvs fuzz: ${o}\n${FUZZ_USAGE}`);
    return 2;
  }
  const log = (line: string): void => {
    process.stderr.write(`tsvs fuzz: ${line}\n`);
  };
  if (o.inProcess) {
    const r = runInproc({
      seed: o.seed,
      count: o.count,
      start: o.start,
      onProgress: (done) => log(`${done} frames`),
      progressEvery: 1_000_000,
    });
    if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    else {
      process.stdout.write(
        `in-process: ${r.frames} frames of seed ${r.seed} from ${r.start} in ${r.seconds.toFixed(1)} s (${Math.round(r.frames / r.seconds)}/s)\n` +
          `  kinds: ${table(r.byKind)}\n  mutations: ${table(r.byMutation)}\n` +
          `  engine: ${table(r.counters)}; ${r.connections} connections; ${r.syncInstalled} synced entries installed; ${r.vrrpAccepted} VRRP adverts accepted\n` +
          `  drops: ${table(r.drops)}\n`,
      );
      for (const f of r.findings)
        process.stdout.write(
          `FINDING ${f.stage} at frame ${f.index} (${f.kind}, ${f.mutation}): ${f.error}\n${f.stack}\n  frame ${f.frame}${f.vnet !== null ? `\n  vnet ${f.vnet}` : ""}\n`,
        );
      process.stdout.write(
        r.findings.length === 0 ? "no findings\n" : `${r.findings.length} findings (${r.repeats} repeats)\n`,
      );
    }
    return r.findings.length === 0 ? 0 : 1;
  }
  const why = netnsUnavailableReason() ?? netnsFuzzMissing();
  if (why !== null) {
    process.stderr.write(`tsvs fuzz: ${why} (--in-process needs neither)\n`);
    return 1;
  }
  if (o.down) {
    await teardown(o.prefix);
    return 0;
  }
  const r = await runNetnsFuzz({ ...o, log });
  if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else {
    const d = r.daemon;
    const acc = r.accounting;
    const lines = [
      `sent ${r.sender.sent} of ${r.sender.generated} frames (seed ${r.seed}, from ${r.start}) in ${r.seconds.toFixed(1)} s: ${r.rate}/s` +
        `${r.sender.timedOut ? " (stopped by --seconds)" : ""}; refused by the kernel ${r.sender.errors}, dropped ${r.sender.dropped}`,
      `  kinds: ${table(r.sender.byKind)}`,
      `  mutations: ${table(r.sender.byMutation)}`,
      `frames: ${acc.senderLinkDropped} dropped by the sender's links, ${acc.bridgeDropped} by the bridge; the director's links received ${acc.linkRx} (its stack dropped ${acc.linkStackDropped} after the packet sockets); the daemon read ${acc.daemonRx} (+${acc.daemonKernelDrops} dropped by its sockets; ${r.sender.untagDiscards} frames with a cut VLAN tag reach no socket)`,
      `daemon pid ${d.pid}: ${d.alive ? "alive" : `DEAD (exit ${d.exitCode ?? "?"}${d.signal !== null ? `, ${d.signal}` : ""})`}; RSS ${Math.round(d.rssBeforeKiB / 1024)} → ${Math.round(d.rssAfterKiB / 1024)} MiB (peak ${Math.round(d.rssPeakKiB / 1024)} MiB)`,
      `  status: ${r.answers.status ? "answers" : "NO ANSWER"}; ipvsadm -Ln: ${r.answers.ipvsadm ? `${r.answers.ipvsadmLines} real servers` : "FAILS"}; -Lnc: ${r.answers.conns ? `${r.answers.connLines} lines` : "FAILS"}`,
      `  curl through NAT: ${r.answers.curl.ok ? `ok (${r.answers.curl.answer}, attempt ${r.answers.curl.attempts})` : `FAILS (${r.answers.curl.answer})`}; over IPv6: ${r.answers.curl6.ok ? `ok (attempt ${r.answers.curl6.attempts})` : `fails (${r.answers.curl6.answer})`}`,
      `  counters: ${table(r.counters)}`,
      `  drops: ${table(r.drops)}`,
      `  connections now ${r.connectionsAfter}`,
    ];
    if (!d.alive && d.stderrTail !== "") lines.push(`daemon's last words:\n${d.stderrTail}`);
    lines.push(r.failures.length === 0 ? "ok" : `FAILED: ${r.failures.join("; ")}`);
    process.stdout.write(`${lines.join("\n")}\n`);
  }
  return r.failures.length === 0 ? 0 : 1;
}
