// `tsvs top`'s frame from hand-made samples: rates from two snapshots' counters (and the
// estimator's when there is no earlier one, or a counter was zeroed), the per-service and
// per-real-server rows, health from --config, drops per second, VRRP and sync lines, every line
// cut to the terminal's width and height; and `tsvs top`'s arguments.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseTopArgs } from "../../src/cli/top.js";
import { formatTop, formatTopFrame, human, ratesBetween, type TopSample } from "../../src/cli/top-format.js";
import {
  type DestSnapshot,
  type ServiceSnapshot,
  type StatsSnapshot,
  type TableSnapshot,
  zeroStats,
} from "../../src/control/snapshot.js";
import { parseIPv4 } from "../../src/core/addr.js";
import type { DaemonStatus } from "../../src/daemon/protocol.js";
import { destSnap, serviceSnap } from "../support/snapshots.js";

const a = (s: string): number => parseIPv4(s) ?? 0;

function stats(
  conns: number,
  inpkts: number,
  outpkts: number,
  inbytes: number,
  outbytes: number,
): StatsSnapshot {
  return { ...zeroStats(), conns, inpkts, outpkts, inbytes, outbytes };
}

function dest(addr: string, weight: number, active: number, inact: number, st: StatsSnapshot): DestSnapshot {
  return destSnap(addr, 80, { weight, activeConns: active, inactConns: inact, stats: st });
}

function service(vip: string, st: StatsSnapshot, dests: DestSnapshot[]): ServiceSnapshot {
  return serviceSnap({ protocol: 6, addr: vip, port: 80 }, dests, { stats: st });
}

function table(services: ServiceSnapshot[], total: StatsSnapshot): TableSnapshot {
  return {
    connTabSize: 4096,
    timeouts: { tcp: 900, tcpFin: 120, udp: 300 } as TableSnapshot["timeouts"],
    services,
    total,
  };
}

function status(over: Partial<DaemonStatus> = {}): DaemonStatus {
  return {
    interfaces: [],
    loops: 0,
    batches: 0,
    busyMs: 0,
    uptimeMs: 3_723_000,
    services: 1,
    dests: 2,
    connections: 7,
    counters: { workers: 2 },
    drops: {},
    version: 2,
    pid: 4242,
    control: "/run/tsvs/control.sock",
    netns: "1",
    nft: { table: "inet tsvs", vips: 1, natDests: 2, updates: 1 },
    worker: { alive: true, restarts: 0 },
    ...over,
  };
}

/** Two readings one second apart: 10 conns, 100/80 packets, 10000/50000 bytes more. */
function pair(): [TopSample, TopSample] {
  const before = table(
    [
      service("198.18.0.100", stats(10, 100, 80, 10_000, 40_000), [
        dest("198.18.1.11", 3, 1, 2, stats(6, 60, 50, 6000, 24_000)),
        dest("198.18.2.12", 1, 0, 1, stats(4, 40, 30, 4000, 16_000)),
      ]),
    ],
    stats(10, 100, 80, 10_000, 40_000),
  );
  const after = table(
    [
      service("198.18.0.100", stats(20, 200, 160, 20_000, 90_000), [
        dest("198.18.1.11", 3, 4, 5, stats(14, 140, 110, 14_000, 60_000)),
        dest("198.18.2.12", 1, 1, 2, stats(6, 60, 50, 6000, 30_000)),
      ]),
    ],
    stats(20, 200, 160, 20_000, 90_000),
  );
  return [
    { at: 1_000_000, table: before, status: status({ drops: { no_service: 5, bad_csum: 1 } }) },
    { at: 1_002_000, table: after, status: status({ drops: { no_service: 9, bad_csum: 1 } }) },
  ];
}

/** The whitespace-separated fields of the row whose name starts with `prefix`. */
function row(lines: string[], prefix: string): string[] {
  const l = lines.find((x) => x.startsWith(prefix));
  assert.ok(l !== undefined, `no row ${prefix} in\n${lines.join("\n")}`);
  return l.slice(prefix.length).trim().split(/\s+/);
}

const CHECKS = { checksOk: 0, checksFailed: 0, wentUp: 0, wentDown: 0 };

describe("top-format: rates", () => {
  it("are the counters' differences over the interval between two samples", () => {
    const r = ratesBetween(stats(10, 100, 80, 10_000, 40_000), stats(20, 200, 160, 20_000, 90_000), 2000);
    assert.deepEqual(r, { cps: 5, inpps: 50, outpps: 40, inbps: 5000, outbps: 25_000 });
  });

  it("fall back to the estimator's without an earlier sample or after a zero", () => {
    const cur = { ...stats(3, 30, 20, 300, 200), cps: 1, inpps: 2, outpps: 3, inbps: 4, outbps: 5 };
    const est = { cps: 1, inpps: 2, outpps: 3, inbps: 4, outbps: 5 };
    assert.deepEqual(ratesBetween(undefined, cur, 1000), est);
    assert.deepEqual(ratesBetween(stats(10, 100, 80, 10_000, 40_000), cur, 1000), est);
    assert.deepEqual(ratesBetween(cur, cur, 0), est);
  });

  it("print in at most 5 characters", () => {
    assert.deepEqual([0, 0.25, 2, 9.96, 340, 999.4, 1234, 12_345, 999_999, 4.5e6, 7e9].map(human), [
      "0",
      "0.3",
      "2",
      "10",
      "340",
      "999",
      "1.2K",
      "12K",
      "1000K",
      "4.5M",
      "7.0G",
    ]);
  });
});

describe("top-format: the frame", () => {
  it("shows each service and real server with weight, connections and the interval's rates", () => {
    const [p, c] = pair();
    const lines = formatTop(p, c, { width: 200, intervalMs: 1000 });
    assert.match(
      lines[0],
      /^tsvs top — pid 4242, up 1h02m, 2 workers, 1 service, 2 real servers, 7 connections/,
    );
    assert.equal(lines[1], "traffic: 5 conn/s, in 50 pkt/s 5.0KB/s, out 40 pkt/s 25KB/s");
    // Service: weight blank, connections summed over its real servers.
    assert.deepEqual(row(lines, "TCP  198.18.0.100:80 wlc"), ["5", "7", "5", "50", "40", "5.0K", "25K"]);
    assert.deepEqual(row(lines, "  -> 198.18.1.11:80 Masq"), ["3", "4", "5", "4", "40", "30", "4.0K", "18K"]);
    assert.deepEqual(row(lines, "  -> 198.18.2.12:80 Masq"), [
      "1",
      "1",
      "2",
      "1",
      "10",
      "10",
      "1.0K",
      "7.0K",
    ]);
    const frame = formatTopFrame(p, c, { width: 200 });
    assert.match(frame.lines[frame.headerRow], /^SERVICE \/ REAL SERVER +WEIGHT +ACTIVE +INACT +CONN\/S/);
  });

  it("shows drops per second by reason, busiest first, with their totals", () => {
    const [p, c] = pair();
    const lines = formatTop(p, c, { width: 200 });
    assert.equal(lines[2], "drops: 2/s — no_service 2/s (9), bad_csum 0/s (1)");
    const quiet = formatTop(null, { ...c, status: status() }, { width: 200 });
    assert.equal(quiet[2], "drops: none");
  });

  it("uses the estimator's rates for the first frame", () => {
    const [, c] = pair();
    c.table.services[0].stats.cps = 12;
    const lines = formatTop(null, c, { width: 200 });
    assert.equal(row(lines, "TCP  198.18.0.100:80 wlc")[2], "12");
  });

  it("adds a health column and summary when the daemon runs --config", () => {
    const [p, c] = pair();
    c.status.config = {
      file: "/etc/tsvs.yaml",
      reloads: 2,
      health: [
        { service: "TCP 198.18.0.100:80", server: "198.18.1.11:80", alive: true, failures: 0, ...CHECKS },
        { service: "TCP 198.18.0.100:80", server: "198.18.2.12:80", alive: false, failures: 3, ...CHECKS },
      ],
    };
    const lines = formatTop(p, c, { width: 200 });
    assert.ok(lines.includes("health: 1 up, 1 down — config /etc/tsvs.yaml, 2 reloads"), lines.join("\n"));
    assert.match(lines.find((l) => l.startsWith("SERVICE")) ?? "", /HEALTH$/);
    assert.equal(row(lines, "  -> 198.18.1.11:80 Masq").at(-1), "up");
    assert.equal(row(lines, "  -> 198.18.2.12:80 Masq").at(-1), "down");
  });

  it("shows a line per VRRP instance and per sync daemon, sync messages per second", () => {
    const [p, c] = pair();
    const vrrp = {
      name: "VI_1",
      iface: "eth0",
      vrid: 51,
      version: 2,
      state: "MASTER" as const,
      priority: 100,
      effectivePriority: 90,
      master: "198.18.0.254",
      advertIntMs: 1000,
      masterAdvertIntMs: 1000,
      transitions: 3,
      lastReason: "higher priority",
      addresses: ["198.18.0.100"],
      advertsRx: 7,
      advertsTx: 20,
      priZeroRx: 0,
      priZeroTx: 0,
      becameMaster: 1,
      releasedMaster: 0,
      addrListErrors: 0,
      garpDelayS: 5,
      drops: {},
    };
    const sync = {
      role: "master" as const,
      iface: "eth0",
      syncid: 1,
      group: a("224.0.0.81") | 0,
      port: 8848,
      ttl: 1,
      maxlen: 1472,
      messagesSent: 10,
      messagesReceived: 0,
      connsSent: 30,
      connsReceived: 0,
      errors: 0,
      drops: {},
    };
    p.status.sync = [sync];
    c.status.vrrp = [vrrp];
    c.status.sync = [{ ...sync, messagesSent: 16, connsSent: 48 }];
    const lines = formatTop(p, c, { width: 300 });
    assert.ok(
      lines.includes(
        "vrrp VI_1: MASTER on eth0 vrid 51, priority 90/100, master 198.18.0.254, 3 transitions " +
          "(last: higher priority), adverts rx 7 tx 20",
      ),
      lines.join("\n"),
    );
    assert.ok(
      lines.includes(
        "sync master on eth0 syncid 1: sent 16 msgs (3/s) 48 conns, received 0 msgs (0/s) 0 conns, errors 0, drops 0",
      ),
      lines.join("\n"),
    );
  });

  it("says so when there is no service", () => {
    const [, c] = pair();
    const frame = formatTopFrame(null, { ...c, table: table([], zeroStats()) }, { width: 80 });
    assert.equal(frame.lines.at(-1), "(no virtual services)");
    assert.equal(frame.headerRow, -1);
  });
});

describe("top-format: narrow and short terminals", () => {
  it("drops the byte and packet columns first, keeps names and connections, cuts every line", () => {
    const [p, c] = pair();
    for (const width of [100, 55, 40, 20]) {
      const lines = formatTop(p, c, { width });
      for (const l of lines) assert.ok(l.length <= width, `${width}: ${JSON.stringify(l)}`);
      if (width === 55) {
        const head = lines.find((l) => l.startsWith("SERVICE")) ?? "";
        assert.doesNotMatch(head, /B\/S|PKT/);
        assert.match(head, /WEIGHT +ACTIVE +INACT +CONN\/S$/);
        assert.deepEqual(row(lines, "  -> 198.18.1.11:80 Masq"), ["3", "4", "5", "4"]);
      }
      if (width === 40) assert.ok(lines[0].endsWith("…"), lines[0]);
    }
  });

  it("cuts the table to the terminal's height with a count of what is left out", () => {
    const [p, c] = pair();
    const full = formatTop(p, c, { width: 200 });
    const frame = formatTopFrame(p, c, { width: 200, height: full.length - 1 });
    assert.equal(frame.lines.length, full.length - 1);
    assert.equal(frame.lines.at(-1), "… 2 more lines");
    assert.ok(frame.headerRow > 0);
    assert.equal(formatTop(p, c, { width: 200, height: 2 }).length, 2);
  });
});

describe("top: arguments", () => {
  it("takes -d SECONDS (fractions too) and --once", () => {
    assert.deepEqual(parseTopArgs([]), { intervalMs: 1000, once: false });
    assert.deepEqual(parseTopArgs(["-d", "0.5", "--once"]), { intervalMs: 500, once: true });
    assert.deepEqual(parseTopArgs(["-d2"]), { intervalMs: 2000, once: false });
    assert.deepEqual(parseTopArgs(["--delay=3"]), { intervalMs: 3000, once: false });
  });

  it("refuses a missing or out-of-range interval and unknown arguments", () => {
    for (const argv of [["-d"], ["-d", "0"], ["-d", "x"], ["-d", "5000"], ["--rate"]])
      assert.ok("error" in parseTopArgs(argv), argv.join(" "));
  });
});
