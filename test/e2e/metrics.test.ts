// The daemon's /metrics end to end: real curl traffic through a NAT service, then a scrape of
// http://127.0.0.1:9715/metrics from inside the director's namespace, read with a Prometheus
// text-format parser and compared with `tsvs ipvsadm -Ln --stats --exact` and `-Ln`.
//
//   ns c (client)                 ns d (director: tsvs daemon)          ns r1, r2 (real servers)
//   mxc 198.18.0.1/24  ⇄  mxd 198.18.0.254/24   mxD 198.18.1.254/24 ⇄ mxr 198.18.1.11/24
//                                               mxE 198.18.2.254/24 ⇄ mxs 198.18.2.12/24
//
// Also: `--http off` serves nothing, the endpoint closes with the daemon, and a port already taken
// stops the daemon at start with an error naming the address (and its guard removed).
// Needs root, iproute2, nft and curl: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { delNetns, nsExecStatus } from "../../src/io/netns.js";
import {
  Children,
  type Daemon,
  ipvsadmDests,
  startDaemon,
  startHttp,
  startListener,
  tsvsIn,
} from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";
import { buildTwoLanNat, twoLanNatNames } from "../support/two-lan-nat.js";

const skip = e2eSkip("metrics e2e", ["nftables", "curl"]);

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: { value: string; labels?: Record<string, string> }[];
}
const parse = createRequire(import.meta.url)("parse-prometheus-text-format") as (text: string) => Family[];

const _P = process.pid;
const NET = twoLanNatNames("mx");
const NS = NET.ns;
const IF = NET.ifs;
const VIP = "198.18.0.100";
const RS = [
  { addr: "198.18.1.11", weight: 3 },
  { addr: "198.18.2.12", weight: 1 },
];
const URL_METRICS = "http://127.0.0.1:9715/metrics";

const children = new Children();

/** Conns InPkts OutPkts InBytes OutBytes, per "TCP  VIP:80" and per "TCP  VIP:80 -> RIP:80". */
function ipvsadmStats(sock: string): Map<string, number[]> {
  const r = tsvsIn(NS.d, sock, "ipvsadm", "-Ln", "--stats", "--exact");
  assert.equal(r.status, 0, r.stderr);
  const out = new Map<string, number[]>();
  let svc = "";
  for (const line of r.stdout.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (/^(TCP|UDP|SCTP|FWM) /.test(line)) {
      svc = `${f[0]} ${f[1]}`;
      out.set(svc, f.slice(2, 7).map(Number));
    } else if (line.startsWith("  -> ") && /^\d/.test(f[2] ?? ""))
      out.set(`${svc} -> ${f[1]}`, f.slice(2, 7).map(Number));
  }
  return out;
}

function scrape(): { families: Map<string, Family>; seconds: number } {
  const r = nsExecStatus(
    NS.d,
    ["curl", "-sS", "--max-time", "5", "-w", "\n%{time_total}", URL_METRICS],
    10_000,
  );
  assert.equal(r.status, 0, `curl ${URL_METRICS}: ${r.stderr}`);
  const cut = r.stdout.lastIndexOf("\n");
  const families = new Map(parse(r.stdout.slice(0, cut)).map((f) => [f.name, f]));
  return { families, seconds: Number(r.stdout.slice(cut + 1)) };
}

function sample(f: Family | undefined, labels: Record<string, string> = {}): number {
  assert.ok(f !== undefined, "family missing");
  const key = (l: Record<string, string>): string => JSON.stringify(Object.entries(l).sort());
  const m = f.metrics.filter((x) => key(x.labels ?? {}) === key(labels));
  assert.equal(m.length, 1, `${f.name}${JSON.stringify(labels)} in ${JSON.stringify(f.metrics)}`);
  return Number(m[0].value);
}

const TOTALS = ["connections", "incoming_packets", "outgoing_packets", "incoming_bytes", "outgoing_bytes"];

describe("tsvs daemon --http: /metrics after real traffic", { skip, timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-mx-"));
  const sock = join(dir, "run", "control.sock");
  const ifaces = ["--iface", IF.d0, "--iface", IF.d1, "--iface", IF.d2, "--control", sock];

  before(() => {
    buildTwoLanNat(NET);
  });

  after(async () => {
    await children.stopAll();
    for (const ns of Object.values(NS)) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  async function stop(d: Daemon): Promise<void> {
    d.proc.kill("SIGTERM");
    assert.equal(await d.exited, 0, d.stderr());
  }

  it("node_ipvs_* and tsvs_* equal ipvsadm --stats --exact and -Ln after 12 curl requests over NAT", async () => {
    const d = await startDaemon(NS.d, ifaces, children);
    assert.match(d.stderr(), /"http":"http:\/\/127\.0\.0\.1:9715","msg":"http listening"/);
    await Promise.all([startHttp(NS.r1, "r1", children), startHttp(NS.r2, "r2", children)]);
    for (const argv of [
      ["-A", "-t", `${VIP}:80`, "-s", "rr"],
      ...RS.map((r) => ["-a", "-t", `${VIP}:80`, "-r", `${r.addr}:80`, "-m", "-w", String(r.weight)]),
    ]) {
      const r = tsvsIn(NS.d, sock, "ipvsadm", ...argv);
      assert.equal(r.status, 0, `ipvsadm ${argv.join(" ")}: ${r.stderr}`);
    }
    for (let i = 0; i < 12; i++) {
      const r = nsExecStatus(NS.c, ["curl", "-sS", "--max-time", "3", `http://${VIP}/`], 10_000);
      assert.equal(r.status, 0, `curl #${i + 1}: ${r.stderr}\ndaemon:\n${d.stderr()}`);
    }

    // The figures hold still once the last FIN is answered: compare a scrape taken between two
    // equal ipvsadm readings.
    let stats = new Map<string, number[]>();
    let dests = new Map<string, number[]>();
    let fams = new Map<string, Family>();
    for (let tries = 0; ; tries++) {
      await new Promise((r) => setTimeout(r, 300));
      const s0 = ipvsadmStats(sock);
      const d0 = ipvsadmDests(NS.d, sock);
      fams = scrape().families;
      stats = ipvsadmStats(sock);
      dests = ipvsadmDests(NS.d, sock);
      if (JSON.stringify([...s0, ...d0]) === JSON.stringify([...stats, ...dests])) break;
      assert.ok(tries < 10, "the table kept changing");
    }

    const svc = stats.get(`TCP ${VIP}:80`);
    assert.ok(svc !== undefined, JSON.stringify([...stats]));
    assert.equal(svc[0], 12);
    // One service: the totals (ip_vs_stats) are its figures.
    TOTALS.forEach((t, i) => {
      assert.equal(sample(fams.get(`node_ipvs_${t}_total`)), svc[i], `node_ipvs_${t}_total`);
    });
    const sl = { local_address: VIP, local_port: "80", proto: "TCP", local_mark: "" };
    TOTALS.forEach((t, i) => {
      assert.equal(sample(fams.get(`tsvs_service_${t}_total`), sl), svc[i], `tsvs_service_${t}_total`);
    });
    for (const rs of RS) {
      const l = { ...sl, remote_address: rs.addr, remote_port: "80" };
      const st = stats.get(`TCP ${VIP}:80 -> ${rs.addr}:80`);
      assert.ok(st !== undefined, rs.addr);
      assert.equal(st[0], 6, `rr: 6 connections each (${rs.addr})`);
      TOTALS.forEach((t, i) => {
        assert.equal(
          sample(fams.get(`tsvs_backend_${t}_total`), l),
          st[i],
          `tsvs_backend_${t}_total ${rs.addr}`,
        );
      });
      const [weight, active, inactive] = dests.get(`${rs.addr}:80`) ?? [];
      assert.equal(weight, rs.weight);
      assert.equal(sample(fams.get("node_ipvs_backend_weight"), l), weight);
      assert.equal(sample(fams.get("node_ipvs_backend_connections_active"), l), active);
      assert.equal(sample(fams.get("node_ipvs_backend_connections_inactive"), l), inactive);
      assert.equal(active + inactive, 6);
    }
    assert.equal(fams.get("node_ipvs_backend_weight")?.metrics.length, 2);
    assert.equal(fams.get("node_ipvs_connections_total")?.type, "COUNTER");
    assert.equal(fams.get("node_ipvs_backend_weight")?.type, "GAUGE");
    // Every frame of the traffic crossed the client's interface of the director.
    assert.ok(sample(fams.get("tsvs_interface_rx_frames_total"), { interface: IF.d0 }) >= svc[1]);
    assert.ok(sample(fams.get("tsvs_connections")) >= 0);

    // Scrape time, as a Prometheus server would see it (curl's time_total in the namespace).
    const times = Array.from({ length: 20 }, () => scrape().seconds).sort((x, y) => x - y);
    console.log(
      `# /metrics scrape: median ${(times[10] * 1000).toFixed(1)} ms, max ${(times[19] * 1000).toFixed(1)} ms (20 scrapes)`,
    );

    await stop(d);
    const closed = nsExecStatus(NS.d, ["curl", "-sS", "--max-time", "2", URL_METRICS], 5_000);
    assert.notEqual(closed.status, 0, "the endpoint closes with the daemon");
  });

  it("--http off serves nothing", async () => {
    const d = await startDaemon(NS.d, [...ifaces, "--http", "off"], children);
    const r = nsExecStatus(NS.d, ["curl", "-sS", "--max-time", "2", URL_METRICS], 5_000);
    assert.equal(r.status, 7, `curl: connection refused expected, got ${r.status} ${r.stderr}`);
    assert.doesNotMatch(d.stderr(), /http listening/);
    await stop(d);
  });

  it("a port already taken: the daemon stops at start, naming the address, and removes its guard", async () => {
    const holder = await startListener(
      NS.d,
      `require("net").createServer().listen(9715, "127.0.0.1", () => console.log("listening"));`,
      children,
      "port holder",
    );
    const why = await startDaemon(NS.d, ifaces, children).then(
      () => "started",
      (e: Error) => e.message,
    );
    holder.kill("SIGTERM");
    assert.match(why, /exited with 1 before it was ready/);
    assert.match(why, /"msg":"cannot open the HTTP endpoint"/);
    assert.match(why, /cannot listen on http:\/\/127\.0\.0\.1:9715: address in use/);
    assert.equal(nsExecStatus(NS.d, ["nft", "list", "table", "netdev", "tsvs"]).status, 1, "guard removed");
  });
});
