// The bench harness (docs/bench.md) keeps working: `tsvs bench --smoke` (1 s per cell, one
// repetition) runs every director over every workload in namespaces tsvs-b<pid>-*, and its JSON
// has every director × workload cell with a number or an explicit "unavailable" reason, and the
// ratio keys. The parsers, ratios, chart and README block are checked without root first.
// The smoke run takes about a minute on 2 vCPUs. Needs root: skipped with the reason, failed on CI.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { escapeXml } from "../../bench/harness/chart.js";
import { DIRECTORS, haproxyConf, nftScript } from "../../bench/harness/directors.js";
import {
  type BenchResult,
  chartSvg,
  finalize,
  markdownTable,
  RATIO_KEYS,
  README_BEGIN,
  README_END,
  replaceBetweenMarkers,
  runLine,
} from "../../bench/harness/report.js";
import { coreUse, meanSteal, median } from "../../bench/harness/util.js";
import { parseWrk, WORKLOADS, WRK_PERCENTILES_LUA, wrkMs } from "../../bench/harness/workloads.js";
import { benchMain } from "../../src/cli/bench.js";
import { namespacesWith, netnsUnavailableReason } from "../../src/io/netns.js";
import { tsvsEntry } from "../../src/lab/daemon.js";

const WRK_OUT = `Running 1s test @ http://198.18.0.100/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.12ms    1.10ms  20.00ms   80.00%
    Req/Sec    15.60k     1.20k   17.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    3.90ms
     90%    5.01ms
     99%    1.02s
  15934 requests in 1.00s, 2.71MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  15934.40
Transfer/sec:      2.71MB
`;

function okCell(value: number, p50 = 0, p99 = 0, cpu: number | null = null) {
  return {
    status: "ok" as const,
    value,
    unit: "x",
    director_cpu_pct: cpu,
    reps: [
      {
        value,
        extra: { p50_ms: p50, p90_ms: p50, p99_ms: p99, p999_ms: p99 * 2 },
        director_cpu_pct: cpu,
        cores: [],
      },
    ],
  };
}

function fakeResult(): BenchResult {
  const r: BenchResult = {
    version: 1,
    date: "2026-11-25T17:00:00.000Z",
    smoke: true,
    duration_s: 1,
    reps: 1,
    host: { kernel: "6.x", cpus: 2, cpu_model: "cpu", node: "v22" },
    pinning: { generator: "cpu 0", director: "cpu 1" },
    generator: "trafgen",
    directors: ["direct", "tsvs-nat", "tsvs-dr", "nft-dnat", "haproxy"].map((name) => ({
      name,
      label: `<${name}>`,
      status: "ok" as const,
    })),
    workloads: [...WORKLOADS],
    cells: {
      direct: { latency: okCell(0.3, 0.1, 0.3), http_cps: okCell(10) },
      "tsvs-nat": {
        udp_pps: okCell(300, 0, 0, 90),
        http_cps: okCell(8, 0, 0, 80),
        http_rps: okCell(40),
        latency: okCell(0.5, 0.2, 0.5),
        tcp_bulk: okCell(1.2),
      },
      "tsvs-dr": { http_cps: okCell(12, 0, 0, 30) },
      "nft-dnat": {
        udp_pps: okCell(200),
        http_cps: okCell(10),
        http_rps: okCell(50),
        latency: okCell(0.4, 0.1, 0.4),
        tcp_bulk: okCell(1.6),
      },
      haproxy: {
        udp_pps: { status: "unavailable", reason: "unavailable (haproxy does not proxy UDP)" },
        http_cps: okCell(4),
        http_rps: okCell(50),
        latency: okCell(0.7, 0.2, 0.7),
      },
    },
    ratios: Object.fromEntries(RATIO_KEYS.map((k) => [k, null])) as BenchResult["ratios"],
    ratio_notes: Object.fromEntries(RATIO_KEYS.map((k) => [k, ""])) as BenchResult["ratio_notes"],
  };
  return r;
}

describe("bench harness pieces (no root needed)", () => {
  it("reads wrk's figures, latencies in us/ms/s and error counts", () => {
    const w = parseWrk(WRK_OUT);
    assert.ok(w !== null);
    assert.equal(w.rps, 15934.4);
    assert.equal(w.requests, 15934);
    assert.equal(w.p50, 0.812);
    assert.equal(w.p75, 3.9);
    assert.equal(w.p99, 1020);
    assert.equal(w.socketErrors, 5);
    assert.equal(w.non2xx, 7);
    assert.equal(parseWrk("unable to connect to 198.18.0.100:80 Connection refused"), null);
    for (const [s, ms] of [
      ["250.00us", 0.25],
      ["2.50ms", 2.5],
      ["1.50s", 1500],
    ] as const)
      assert.equal(wrkMs(s), ms);
  });

  it("splits a core's time into busy, softirq and steal (steal is not busy)", () => {
    const a = [{ busy: 100, total: 1000, softirq: 10, steal: 0 }];
    const b = [{ busy: 150, total: 1200, softirq: 30, steal: 100 }];
    const use = coreUse(a, b);
    assert.deepEqual(use, [{ busy_pct: 25, softirq_pct: 10, steal_pct: 50 }]);
    assert.equal(meanSteal([...use, { busy_pct: 0, softirq_pct: 0, steal_pct: 0 }]), 25);
    assert.deepEqual(coreUse(b, b), [{ busy_pct: 0, softirq_pct: 0, steal_pct: 0 }]);
  });

  it("takes the median of the repetitions", () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
  });

  it("computes the ratios from the same result (like with like), n/a with the reason", () => {
    const r = fakeResult();
    finalize(r);
    assert.deepEqual(r.ratios, {
      pps_vs_nft: 1.5,
      cps_nat_vs_nft: 0.8,
      cps_nat_vs_haproxy: 2,
      rps_keepalive_vs_nft: 0.8,
      p99_vs_haproxy: 0.714,
      p99_vs_nft: 1.25,
      bulk_vs_nft: 0.75,
      // DR: 30 % of a core at 12 conn/s; NAT: 80 % at 8 conn/s.
      cpu_per_conn_dr_vs_nat: 0.25,
      // 90 % of a core at 300 packets/s: 3000 µs each.
      director_us_per_pkt: 3000,
    });
    assert.match(r.ratio_notes.bulk_vs_nft, /tsvs-nat tcp_bulk \/ nft-dnat tcp_bulk/);
    assert.match(r.ratio_notes.director_us_per_pkt, /tsvs-nat CPU µs per packet; goal ≤ 1.0/);
    delete r.cells["nft-dnat"].udp_pps;
    r.cells["tsvs-dr"].http_cps = okCell(12);
    finalize(r);
    assert.equal(r.ratios.pps_vs_nft, null);
    assert.match(r.ratio_notes.pps_vs_nft, /nft-dnat has no figure/);
    assert.equal(r.ratios.cpu_per_conn_dr_vs_nat, null, "no director CPU: no per-connection figure");
  });

  it("reads exact percentiles, p99.9 included, from the wrk script's lines", () => {
    const w = parseWrk(
      `${WRK_OUT}tsvs-pct 50 812\ntsvs-pct 90 5010\ntsvs-pct 99 1020000\ntsvs-pct 99.9 1500123\n`,
    );
    assert.ok(w !== null);
    assert.deepEqual([w.p50, w.p90, w.p99, w.p999], [0.812, 5.01, 1020, 1500.123]);
    assert.ok(Number.isNaN(parseWrk(WRK_OUT)?.p999 ?? 0), "no script: no p99.9");
    assert.match(WRK_PERCENTILES_LUA, /latency:percentile\(p\)/);
  });

  it("writes a table, an escaped SVG and a README block between the markers only", () => {
    const r = fakeResult();
    finalize(r);
    const t = markdownTable(r);
    assert.match(t, /\| <tsvs-nat> \| 300 \|/);
    assert.match(t, /haproxy does not proxy UDP/);
    const svg = chartSvg(r);
    assert.ok(svg.startsWith("<svg") && svg.trimEnd().endsWith("</svg>"));
    assert.match(svg, /<rect x="\d+" y="[\d.]+" width="[\d.]+"/);
    assert.match(svg, /unavailable \(haproxy does not proxy UDP\)/);
    assert.equal(escapeXml(`<a & "b">`), "&lt;a &amp; &quot;b&quot;&gt;");
    const readme = `# x\n\nbefore\n${README_BEGIN}\nold\n${README_END}\nafter\n`;
    const out = replaceBetweenMarkers(readme, `${README_BEGIN}\nnew\n${README_END}`);
    assert.equal(out, `# x\n\nbefore\n${README_BEGIN}\nnew\n${README_END}\nafter\n`);
    assert.throws(() => replaceBetweenMarkers("no markers", "x"), /markers/);
  });

  it("configures nft DNAT round robin and haproxy over the three servers", () => {
    const rips = ["198.18.1.11", "198.18.1.12", "198.18.1.13"];
    assert.match(
      nftScript(rips),
      /numgen inc mod 3 map \{ 0 : 198\.18\.1\.11, 1 : 198\.18\.1\.12, 2 : 198\.18\.1\.13 \}/,
    );
    const h = haproxyConf(rips);
    assert.match(h, /nbthread 1/);
    assert.match(h, /mode tcp/);
    assert.equal(h.match(/server r\d 198\.18\.1\.1\d:80/g)?.length, 3);
  });

  it("refuses unknown directors and bad numbers with usage status 2", async () => {
    assert.equal(await benchMain(["--only", "nosuch"]), 2);
    assert.equal(await benchMain(["--duration", "0"]), 2);
    assert.equal(await benchMain(["--bogus"]), 2);
    assert.equal(await benchMain(["--offloads", "maybe"]), 2);
  });
});

function smokeUnavailable(): string | null {
  const why = netnsUnavailableReason() ?? (tsvsEntry() === null ? "tsvs is not built (make build)" : null);
  if (why !== null && process.env.CI === "true") throw new Error(`bench smoke cannot run on CI: ${why}`);
  return why;
}

const unavailable = smokeUnavailable();

describe("tsvs bench --smoke", { skip: unavailable === null ? false : `bench smoke: ${unavailable}` }, () => {
  it("fills every director × workload cell with a figure or an unavailable reason, and the ratios", async () => {
    const out = mkdtempSync(join(tmpdir(), "tsvs-bench-"));
    try {
      const code = await benchMain(["--smoke", "--out", out]);
      const files = readdirSync(out);
      const json = files.find((f) => f.endsWith(".json"));
      assert.ok(json !== undefined, `no JSON in ${out}: ${files.join(", ")}`);
      assert.ok(
        files.some((f) => f.endsWith(".svg")),
        "no SVG chart",
      );
      const r = JSON.parse(readFileSync(join(out, json), "utf8")) as BenchResult;
      const problems: string[] = [];
      for (const d of DIRECTORS) {
        for (const w of WORKLOADS) {
          const c = r.cells[d.name]?.[w.name];
          if (c === undefined) problems.push(`${d.name}/${w.name}: missing`);
          else if (c.status === "ok") {
            if (!Number.isFinite(c.value)) problems.push(`${d.name}/${w.name}: value ${c.value}`);
          } else if (c.status === "unavailable") {
            if (!/^unavailable \(.+\)$/.test(c.reason))
              problems.push(`${d.name}/${w.name}: reason '${c.reason}'`);
          } else problems.push(`${d.name}/${w.name}: ${c.reason}`);
        }
      }
      assert.deepEqual(problems, []);
      assert.equal(code, 0);
      for (const k of RATIO_KEYS) assert.ok(k in r.ratios, `ratio ${k} missing`);
      // Every director ran with veth's default offloads, and the run says so.
      assert.equal(r.offloads, "on");
      assert.match(runLine(r), /veth offloads on \(defaults\)/);
      // Bulk TCP through tsvs NAT and nft DNAT: both measured, so the ratio is computed.
      assert.equal(r.cells["tsvs-nat"].tcp_bulk.status, "ok", JSON.stringify(r.cells["tsvs-nat"].tcp_bulk));
      assert.equal(r.cells["nft-dnat"].tcp_bulk.status, "ok", JSON.stringify(r.cells["nft-dnat"].tcp_bulk));
      assert.ok(r.ratios.bulk_vs_nft !== null && r.ratios.bulk_vs_nft > 0, r.ratio_notes.bulk_vs_nft);
      // The machine's own tools are always there: the direct path has every figure.
      for (const w of WORKLOADS) assert.equal(r.cells.direct[w.name].status, "ok", `direct/${w.name}`);
      assert.equal(r.cells["tsvs-nat"].http_cps.status, "ok");
      if (r.host.cpus >= 2) assert.match(r.pinning.servers ?? "", /latency cell/);

      // The README block is regenerated from the JSON, between the markers only.
      const readme = join(out, "README.md");
      writeFileSync(readme, `# t\n${README_BEGIN}\nold\n${README_END}\ntail\n`);
      assert.equal(await benchMain(["--update-readme", join(out, json), "--readme", readme]), 0);
      const text = readFileSync(readme, "utf8");
      assert.match(text, /\| direct to r1/);
      assert.match(text, /cps_nat_vs_haproxy/);
      assert.match(text, /bulk_vs_nft/);
      assert.match(text, /tail\n$/);
      assert.ok(!text.includes("\nold\n"));

      const left = namespacesWith(`tsvs-b${process.pid.toString(36)}-`);
      assert.deepEqual(left, [], "namespaces left behind");
    } finally {
      if (existsSync(out)) rmSync(out, { recursive: true, force: true });
    }
  });
});
