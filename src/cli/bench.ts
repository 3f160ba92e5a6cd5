// `tsvs bench`: tsvs against the kernel's NAT, haproxy and nginx on one namespace network
// (bench/harness, docs/bench.md).

import { resolve } from "node:path";
import { updateReadme } from "../../bench/harness/report.js";
import { runBench, summary, unknownNames } from "../../bench/harness/run.js";

export const BENCH_USAGE = `Usage: tsvs bench [--smoke] [--only NAME,...] [--duration S] [--reps N] [--out DIR]
                  [--generator trafgen|node] [--offloads on|off]
       tsvs bench --update-readme FILE.json [--readme README.md]

Runs every director (direct, tsvs-nat, tsvs-nat6, tsvs-nat-2w, tsvs-nat-ring, tsvs-nat-spin,
tsvs-nat-xdp, tsvs-nat-xdp-2w, tsvs-dr, tsvs-dr-xdp, tsvs-dr6, tsvs-fullnat, tsvs-tun, nft-dnat, haproxy, nginx-stream,
ipvs-nat; the ...6 ones over IPv6, the ...-xdp ones with --io xdp)
over every workload (udp_pps, http_cps, http_rps, latency,
tcp_bulk) in network namespaces tsvs-b<pid>-*, then writes DIR/<date>.json and .svg
(default DIR: bench/results; with --smoke: bench/results/tmp). Needs root.
  --smoke            1 s per cell, 1 repetition (the test suite's run)
  --only NAMES       only these directors and/or workloads (comma-separated)
  --duration S       seconds per cell (default 10)
  --reps N           repetitions per cell, the median is reported (default 3)
  --generator G      UDP generator: trafgen (default when installed) or node (AF_PACKET, ours)
  --offloads on|off  veth checksum/segmentation offloads on every link, for every director:
                     on (default: veth's defaults, as a host has them) or off (ethtool -K), to compare
  --update-readme F  regenerate the README section between <!-- bench:begin --> and
                     <!-- bench:end --> (and F's chart) from the result file F
`;

export async function benchMain(args: string[]): Promise<number> {
  let smoke = false;
  let only: string[] | null = null;
  let duration: number | null = null;
  let reps: number | null = null;
  let out: string | null = null;
  let readmeJson: string | null = null;
  let readme = "README.md";
  let generator: "trafgen" | "node" | undefined;
  let offloads: "on" | "off" = "on";
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = (): string => {
      if (i + 1 >= args.length) throw new UsageError(`${a} needs a value`);
      return args[++i];
    };
    try {
      switch (a) {
        case "--smoke":
          smoke = true;
          break;
        case "--only":
          only = value()
            .split(",")
            .map((s) => s.trim())
            .filter((s) => s !== "");
          break;
        case "--duration":
          duration = positive(a, value());
          break;
        case "--reps":
          reps = positive(a, value());
          break;
        case "--out":
          out = value();
          break;
        case "--update-readme":
          readmeJson = value();
          break;
        case "--readme":
          readme = value();
          break;
        case "--generator": {
          const g = value();
          if (g !== "trafgen" && g !== "node")
            throw new UsageError(`--generator is trafgen or node, not '${g}'`);
          generator = g;
          break;
        }
        case "--offloads": {
          const v = value();
          if (v !== "on" && v !== "off") throw new UsageError(`--offloads is on or off, not '${v}'`);
          offloads = v;
          break;
        }
        case "-h":
        case "--help":
          process.stdout.write(BENCH_USAGE);
          return 0;
        default:
          throw new UsageError(`unknown argument '${a}'`);
      }
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      process.stderr.write(`tsvs bench: ${e.message}\n${BENCH_USAGE}`);
      return 2;
    }
  }
  if (readmeJson !== null) {
    try {
      updateReadme(resolve(readmeJson), resolve(readme));
    } catch (e) {
      process.stderr.write(`tsvs bench: ${(e as Error).message}\n`);
      return 1;
    }
    process.stdout.write(`updated ${readme} from ${readmeJson}\n`);
    return 0;
  }
  if (only !== null) {
    const bad = unknownNames(only);
    if (bad.length > 0) {
      process.stderr.write(`tsvs bench: unknown director or workload: ${bad.join(", ")}\n${BENCH_USAGE}`);
      return 2;
    }
  }
  try {
    const o = await runBench({
      smoke,
      only,
      durationS: duration ?? (smoke ? 1 : 10),
      reps: reps ?? (smoke ? 1 : 3),
      outDir: resolve(out ?? (smoke ? "bench/results/tmp" : "bench/results")),
      suffix: process.pid.toString(36),
      log: (s) => process.stderr.write(`${s}\n`),
      generator,
      offloads,
    });
    process.stdout.write(summary(o));
    const errors = Object.values(o.result.cells).flatMap((c) =>
      Object.values(c).filter((x) => x.status === "error"),
    );
    return errors.length > 0 ? 1 : 0;
  } catch (e) {
    process.stderr.write(`tsvs bench: ${(e as Error).message}\n`);
    return 1;
  }
}

class UsageError extends Error {}

function positive(name: string, s: string): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${name} wants a positive number, not '${s}'`);
  return n;
}
