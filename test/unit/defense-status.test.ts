// The defence as `tsvs status` and /metrics show it: the text line, the workers merged, and the
// tsvs_defense_* families read back with a Prometheus text-format parser.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { defenseLine } from "../../src/cli/ipvsadm-client.js";
import { type TableSnapshot, zeroStats } from "../../src/control/snapshot.js";
import { DaemonUsageError, parseDaemonArgs } from "../../src/daemon/main.js";
import {
  cgroupMemoryFiles,
  headroomPages,
  lastLevelCacheBytes,
  parseCacheSize,
  processHeadroom,
} from "../../src/daemon/memory.js";
import { metricsText } from "../../src/daemon/metrics.js";
import type { DaemonStatus, DefenseStatus, WorkerStatus } from "../../src/daemon/protocol.js";
import { mergeStatus } from "../../src/daemon/requests.js";

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: Array<{ value: string; labels?: Record<string, string> }>;
}
const parse = createRequire(import.meta.url)("parse-prometheus-text-format") as (text: string) => Family[];

const DEF: DefenseStatus = {
  dropEntry: 2,
  dropPacket: 1,
  secureTcp: 3,
  availmem: 12,
  amemthresh: 56,
  dropRate: 0,
  secureTcpTable: true,
  entriesDropped: 40,
  packetsDropped: 7,
};

function worker(defense: DefenseStatus): WorkerStatus {
  return {
    interfaces: [],
    loops: 1,
    batches: 1,
    busyMs: 1,
    uptimeMs: 1000,
    services: 1,
    dests: 1,
    connections: 10,
    counters: {},
    drops: {},
    defense,
  };
}

const STATUS: DaemonStatus = {
  ...worker(DEF),
  version: 2,
  pid: 1,
  control: "/run/tsvs/control.sock",
  netns: "net:[1]",
  nft: { table: "netdev tsvs", vips: 1, natDests: 0, updates: 0 },
  worker: { alive: true, restarts: 0 },
};

describe("the defence in tsvs status", () => {
  it("prints each strategy's mode and availmem/amemthresh", () => {
    assert.equal(
      defenseLine(DEF),
      "defense: availmem 12/amemthresh 56 pages; drop_entry 2 active (auto) (40 entries dropped), " +
        "drop_packet 1 auto (7 packets dropped), secure_tcp 3 always (tcp_states_dos)",
    );
    assert.match(
      defenseLine({ ...DEF, dropPacket: 2, dropRate: 4 }),
      /drop_packet 2 active \(auto\) \(1 in 4\)/,
    );
    assert.match(
      defenseLine({ ...DEF, dropEntry: 0, secureTcp: 0, secureTcpTable: false }),
      /drop_entry 0 off .*secure_tcp 0 off$/,
    );
  });

  it("merges workers: highest modes, lowest availmem, counters summed", () => {
    const m = mergeStatus([
      worker(DEF),
      worker({
        ...DEF,
        dropEntry: 1,
        dropPacket: 2,
        dropRate: 5,
        availmem: 30,
        entriesDropped: 2,
        packetsDropped: 1,
      }),
    ]);
    assert.deepEqual(m.defense, {
      ...DEF,
      dropPacket: 2,
      dropRate: 5,
      availmem: 12,
      entriesDropped: 42,
      packetsDropped: 8,
    });
  });
});

describe("the defence in /metrics", () => {
  it("tsvs_defense_mode{strategy}, availmem, amemthresh and the two counters", async () => {
    const table: TableSnapshot = {
      connTabSize: 4096,
      timeouts: { tcp: 900, tcpFin: 120, udp: 300 },
      services: [],
      total: zeroStats(),
    };
    const fams = new Map(parse(await metricsText(table, STATUS)).map((f) => [f.name, f]));
    const mode = fams.get("tsvs_defense_mode");
    assert.equal(mode?.type, "GAUGE");
    const modes = Object.fromEntries((mode?.metrics ?? []).map((s) => [s.labels?.strategy, Number(s.value)]));
    assert.deepEqual(modes, { drop_entry: 2, drop_packet: 1, secure_tcp: 3 });
    const one = (n: string): [string | undefined, number] => [
      fams.get(n)?.type,
      Number(fams.get(n)?.metrics[0].value),
    ];
    assert.deepEqual(one("tsvs_defense_availmem_pages"), ["GAUGE", 12]);
    assert.deepEqual(one("tsvs_defense_amemthresh_pages"), ["GAUGE", 56]);
    assert.deepEqual(one("tsvs_defense_entries_dropped_total"), ["COUNTER", 40]);
    assert.deepEqual(one("tsvs_defense_packets_dropped_total"), ["COUNTER", 7]);
  });
});

describe("tsvs daemon: the table's capacity and the defence sysctls", () => {
  it("--conn-capacity N sizes each worker's table; --sysctl takes the defence's names", () => {
    assert.equal(parseDaemonArgs([]).connCapacity, undefined);
    const o = parseDaemonArgs([
      "--conn-capacity",
      "4096",
      "--sysctl",
      "drop_entry=1",
      "--sysctl",
      "net.ipv4.vs.amemthresh=56",
      "--sysctl",
      "secure_tcp=3",
    ]);
    assert.equal(o.connCapacity, 4096);
    assert.deepEqual(o.sysctls, { dropEntry: 1, amemthresh: 56, secureTcp: 3 });
    assert.throws(() => parseDaemonArgs(["--conn-capacity", "0"]), DaemonUsageError);
    assert.throws(() => parseDaemonArgs(["--sysctl", "drop_packet=4"]), /Invalid argument \(EINVAL\)/);
  });
});

describe("the memory cgroup's headroom (daemon/memory.ts)", () => {
  it("finds the cgroup v2 files, or v1's memory controller", () => {
    assert.deepEqual(
      cgroupMemoryFiles("0::/system.slice/tsvs.service\n", "cpuset cpu io memory pids\n", "/cg"),
      {
        limit: "/cg/system.slice/tsvs.service/memory.max",
        usage: "/cg/system.slice/tsvs.service/memory.current",
      },
    );
    assert.deepEqual(cgroupMemoryFiles("0::/\n", "memory", "/cg"), {
      limit: "/cg/memory.max",
      usage: "/cg/memory.current",
    });
    const v1 = "9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n";
    assert.deepEqual(cgroupMemoryFiles(v1, "", "/cg"), {
      limit: "/cg/memory/process_api/abc/memory.limit_in_bytes",
      usage: "/cg/memory/process_api/abc/memory.usage_in_bytes",
    });
    assert.deepEqual(
      cgroupMemoryFiles("5:cpuacct,memory:/x\n", null, "/cg")?.limit,
      "/cg/memory/x/memory.limit_in_bytes",
    );
    assert.equal(cgroupMemoryFiles("0::/a\n", "cpu io\n", "/cg"), null, "v2 without the memory controller");
    assert.equal(cgroupMemoryFiles("", null), null);
  });

  it("is (limit - usage) in 4 KiB pages; none without a limit", () => {
    assert.equal(headroomPages("536870912\n", "134217728\n"), 98304);
    assert.equal(headroomPages("4096", "8192"), 0, "over the limit: 0, not negative");
    assert.equal(headroomPages("max\n", "1000"), null);
    assert.equal(headroomPages("9223372036854771712\n", "32436224\n"), null, "v1's unlimited");
    assert.equal(headroomPages("garbage", "1"), null);
  });

  it("reads this process's files (or answers null where there are none)", () => {
    const h = processHeadroom()();
    assert.ok(h === null || (Number.isInteger(h) && h >= 0), String(h));
  });
});

describe("the last-level cache's size (daemon/memory.ts, the read-ahead threshold)", () => {
  for (const [text, want] of [
    ["32768K\n", 32 * 1024 * 1024],
    ["1M", 1024 * 1024],
    ["512", 512],
    ["2G", 2 * 1024 ** 3],
    ["", null],
    ["32 MiB", null],
  ] as const)
    it(`${JSON.stringify(text)} → ${want}`, () => assert.equal(parseCacheSize(text), want));

  it("is the largest index's size under the cpu's cache directory, null without one", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsvs-cache-"));
    try {
      assert.equal(lastLevelCacheBytes(dir), null);
      for (const [i, size] of ["48K", "32K", "1024K", "32768K"].entries()) {
        mkdirSync(join(dir, `index${i}`));
        writeFileSync(join(dir, `index${i}`, "size"), `${size}\n`);
      }
      assert.equal(lastLevelCacheBytes(dir), 32 * 1024 * 1024);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
