// Worker CPU placement against receive livelock (docs/daemon.md "CPU placement", docs/io.md
// "Receive livelock"): the CPU list/mask parsers, the plan, reading RPS masks and IRQ affinity from
// a fake /sys + /proc tree, and a real daemon in a namespace whose interface's RPS mask names a
// CPU: the worker must place itself elsewhere, stay unpinned with --no-pin, take --cpus, and warn
// when taskset leaves it nothing else.
//
// The namespace part needs root, iproute2, nft and ≥ 2 CPUs: skipped with the reason otherwise,
// failed when CI=true (except for the CPU count).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parseCpuList, parseCpuMask, planCpus, readRxCpus } from "../../src/daemon/main.js";
import { addNetns, addVethPair, delNetns, nsExec } from "../../src/io/netns.js";
import { e2eSkip } from "../support/e2e-env.js";

const ENTRY = fileURLToPath(new URL("../../src/cli/entry.js", import.meta.url));

describe("CPU lists and masks", () => {
  const lists: [string, number[] | null][] = [
    ["0", [0]],
    ["0-3,6", [0, 1, 2, 3, 6]],
    ["3,1,1-2", [1, 2, 3]],
    ["", []],
    ["2-1", null],
    ["a", null],
    ["1,", null],
  ];
  for (const [s, want] of lists) {
    it(`parses the list ${JSON.stringify(s)}`, () => assert.deepEqual(parseCpuList(s), want));
  }
  const masks: [string, number[] | null][] = [
    ["0\n", []],
    ["00000002", [1]],
    ["3", [0, 1]],
    ["00000001,00000000", [32]],
    ["f0,00000001", [0, 36, 37, 38, 39]],
    ["xyz", null],
  ];
  for (const [s, want] of masks) {
    it(`parses the mask ${JSON.stringify(s)}`, () => assert.deepEqual(parseCpuMask(s), want));
  }
});

describe("planCpus: workers go where no receive work runs", () => {
  const pin = { cpus: null, pin: true };
  const rows: {
    name: string;
    allowed: number[];
    rx: number[];
    workers: number;
    opts: { cpus: number[] | null; pin: boolean };
    cpus: (number[] | null)[];
    shared: boolean;
  }[] = [
    {
      name: "no receive CPU known: unpinned",
      allowed: [0, 1],
      rx: [],
      workers: 1,
      opts: pin,
      cpus: [null],
      shared: false,
    },
    {
      name: "RPS on CPU 1: the worker takes CPU 0",
      allowed: [0, 1],
      rx: [1],
      workers: 1,
      opts: pin,
      cpus: [[0]],
      shared: false,
    },
    {
      name: "two workers over the free CPUs",
      allowed: [0, 1, 2, 3],
      rx: [0],
      workers: 2,
      opts: pin,
      cpus: [[1], [2]],
      shared: false,
    },
    {
      name: "more workers than free CPUs: round robin",
      allowed: [0, 1, 2],
      rx: [2],
      workers: 3,
      opts: pin,
      cpus: [[0], [1], [0]],
      shared: false,
    },
    {
      name: "receive work everywhere: unpinned, shared",
      allowed: [0, 1],
      rx: [0, 1],
      workers: 1,
      opts: pin,
      cpus: [null],
      shared: true,
    },
    {
      name: "taskset onto the RPS CPU: shared",
      allowed: [1],
      rx: [1],
      workers: 1,
      opts: pin,
      cpus: [null],
      shared: true,
    },
    {
      name: "receive CPUs outside the allowed set do not count",
      allowed: [2, 3],
      rx: [0, 1],
      workers: 1,
      opts: pin,
      cpus: [null],
      shared: false,
    },
    {
      name: "--cpus wins, and says when it shares",
      allowed: [0, 1],
      rx: [1],
      workers: 2,
      opts: { cpus: [1], pin: true },
      cpus: [[1], [1]],
      shared: true,
    },
    {
      name: "--no-pin",
      allowed: [0, 1],
      rx: [1],
      workers: 1,
      opts: { cpus: null, pin: false },
      cpus: [null],
      shared: true,
    },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const p = planCpus(r.allowed, r.rx, r.workers, r.opts);
      assert.deepEqual(p.cpus, r.cpus);
      assert.equal(p.shared, r.shared);
    });
  }
});

describe("readRxCpus reads RPS masks and IRQ affinity", () => {
  let root = "";
  before(() => {
    root = mkdtempSync(join(tmpdir(), "tsvs-rxcpus-"));
    const sys = join(root, "sys");
    const proc = join(root, "proc");
    for (const q of ["rx-0", "rx-1", "tx-0"])
      mkdirSync(join(sys, "class/net/eth9/queues", q), { recursive: true });
    writeFileSync(join(sys, "class/net/eth9/queues/rx-0/rps_cpus"), "00000000\n");
    writeFileSync(join(sys, "class/net/eth9/queues/rx-1/rps_cpus"), "0000000c\n");
    mkdirSync(join(sys, "devices/virtio7"), { recursive: true });
    symlinkSync(join(sys, "devices/virtio7"), join(sys, "class/net/eth9/device"));
    mkdirSync(join(sys, "class/net/veth9/queues/rx-0"), { recursive: true });
    writeFileSync(join(sys, "class/net/veth9/queues/rx-0/rps_cpus"), "0\n");
    for (const [n, list] of [
      [40, "1"],
      [41, "5"],
      [42, "0-7"],
    ] as const) {
      mkdirSync(join(proc, "irq", String(n)), { recursive: true });
      writeFileSync(join(proc, "irq", String(n), "smp_affinity_list"), `${list}\n`);
    }
    writeFileSync(join(proc, "irq/41/effective_affinity_list"), "4\n");
    writeFileSync(
      join(proc, "interrupts"),
      [
        "           CPU0       CPU1",
        " 40:         10          0 PCI-MSIX-0000:00:05.0   1-edge      virtio7-input.0",
        " 41:          0          5 PCI-MSIX-0000:00:05.0   2-edge      virtio7-input.1",
        " 42:          0          0 PCI-MSIX-0000:00:05.0   0-edge      virtio7-config",
        "",
      ].join("\n"),
    );
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("virtio: RPS CPUs of every rx queue, the input IRQs' effective affinity, not the config IRQ", () => {
    assert.deepEqual(readRxCpus("eth9", join(root, "sys"), join(root, "proc")), { rps: [2, 3], irq: [1, 4] });
  });
  it("veth with RPS off: nothing known", () => {
    assert.deepEqual(readRxCpus("veth9", join(root, "sys"), join(root, "proc")), { rps: [], irq: [] });
  });
  it("a missing interface: nothing known", () => {
    assert.deepEqual(readRxCpus("nope0", join(root, "sys"), join(root, "proc")), { rps: [], irq: [] });
  });
});

// The CPU count is the machine's, not something to install: one CPU skips, even on CI.
const skip =
  e2eSkip("livelock e2e", ["nftables"]) ||
  (availableParallelism() < 2 ? "livelock e2e: needs 2 CPUs" : false);

const P = process.pid;
const tag = P.toString(36);
const NS = { a: `tsvs-ll-${P}-a`, d: `tsvs-ll-${P}-d` };
const IF = { a0: `lla${tag}`, d0: `lld${tag}` };

/**
 * Starts the daemon, waits for the log line `killOn` (ready by default), stops it with SIGTERM at
 * once; checks that it cleaned up and returns its log lines as objects.
 */
async function daemonLog(
  pre: string[],
  extra: string[],
  killOn = "ready",
): Promise<Record<string, unknown>[]> {
  const sock = join(tmpdir(), `tsvs-ll-${P}.sock`);
  const argv = ["netns", "exec", NS.d, ...pre, process.execPath, ENTRY, "daemon", "--iface", IF.d0];
  const d = spawn("ip", [...argv, "--control", sock, ...extra], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  d.stderr?.setEncoding("utf8");
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`daemon not ready: ${err}`)), 15_000);
    d.stderr?.on("data", (s: string) => {
      err += s;
      if (err.includes(`"msg":"${killOn}"`)) {
        clearTimeout(t);
        resolve();
      }
    });
    d.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`daemon exited ${code}: ${err}`));
    });
  });
  d.removeAllListeners("exit");
  // At once, as a supervisor may: the daemon catches signals from its start, so it still cleans up.
  d.kill("SIGTERM");
  const code = await new Promise((r) => d.once("exit", r));
  assert.equal(code, 0, err);
  assert.match(err, /"msg":"stopped; nft guard removed"/, "the daemon's cleanup ran");
  assert.equal(existsSync(sock), false, "the control socket is removed");
  return err
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const placedCpus = (log: Record<string, unknown>[]): number[] =>
  (log.find((l) => l.msg === "worker placed")?.cpus as number[] | undefined) ?? [];

describe("the daemon's worker avoids its interface's RPS CPU", { skip, timeout: 120_000 }, () => {
  before(() => {
    for (const ns of Object.values(NS)) delNetns(ns);
    for (const ns of Object.values(NS)) addNetns(ns);
    addVethPair(
      { ns: NS.a, ifname: IF.a0, cidr: "198.18.9.1/24" },
      { ns: NS.d, ifname: IF.d0, cidr: "198.18.9.254/24" },
    );
    // Receive work of the daemon's interface on CPU 0.
    nsExec(NS.d, ["sh", "-c", `echo 1 > /sys/class/net/${IF.d0}/queues/rx-0/rps_cpus`]);
  });
  after(() => {
    for (const ns of Object.values(NS)) delNetns(ns);
  });

  it("takes a CPU other than the RPS one, and logs both", async () => {
    const log = await daemonLog(["taskset", "-c", "0,1"], []);
    assert.deepEqual(placedCpus(log), [1]);
    const plan = log.find((l) => l.msg === "worker CPUs") as { receive: { rps: number[] }[] } | undefined;
    assert.deepEqual(plan?.receive[0].rps, [0]);
  });
  it("--no-pin leaves the worker on every CPU it may use", async () => {
    assert.deepEqual(placedCpus(await daemonLog(["taskset", "-c", "0,1"], ["--no-pin"])), [0, 1]);
  });
  it("--cpus overrides the choice", async () => {
    const log = await daemonLog(["taskset", "-c", "0,1"], ["--cpus", "0"]);
    assert.deepEqual(placedCpus(log), [0]);
    assert.ok(log.some((l) => l.level === 40 && String(l.msg).includes("share CPUs with receive work")));
  });
  it("SIGTERM while it starts: it finishes starting, then stops and cleans up (guard, socket)", async () => {
    const log = await daemonLog([], [], "starting");
    assert.ok(!log.some((l) => l.msg === "ready"), "a stop asked for while starting: never ready");
    assert.equal(log.find((l) => l.msg === "stopping")?.why, "SIGTERM");
  });
  it("warns when taskset leaves only the RPS CPU", async () => {
    const log = await daemonLog(["taskset", "-c", "0"], []);
    assert.deepEqual(placedCpus(log), [0]);
    assert.ok(log.some((l) => l.level === 40 && String(l.msg).includes("share CPUs with receive work")));
  });
});
