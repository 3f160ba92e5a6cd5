// IPv6 through the dual-stack lab (`lab up --ipv6`, docs/lab.md "IPv6"): for NAT, DR and TUN the
// lab serves TCP [fd74:7376::100]:80 beside the IPv4 VIP, and real curl in the client namespace
// reaches nginx on the real servers over IPv6 — round robin over the method's servers, a 10 MiB
// download checked byte for byte, the connection entries listed as ipvsadm prints IPv6 — while the
// IPv4 service keeps working in the same lab.
// Prefix tsvs-v6<pid>; every lab is removed after its group. Needs root, iproute2, curl, nginx, nft.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ipv6TextWords } from "../../src/core/addr.js";
import { request } from "../../src/daemon/control.js";
import { fanoutHash6 } from "../../src/io/bpf.js";
import { ip } from "../../src/io/netns.js";
import { labUp } from "../../src/lab/lab.js";
import { LAB_ADDR, LAB_ADDR6, type LabMethod, type LabNames, labDown } from "../../src/lab/topology.js";
import {
  conns,
  count,
  curl,
  ipvsadm,
  labUnavailable,
  patternSha256,
  runNames,
} from "./lab-methods-helpers.js";

const unavailable = labUnavailable();
const skip = unavailable === null ? false : `IPv6 e2e: ${unavailable}`;
const VIP6_URL = `http://[${LAB_ADDR6.VIP}]`;

let names: LabNames | undefined;

after(async () => {
  if (names !== undefined) await labDown(names);
});

/** n sequential requests to the IPv6 VIP, one connection each; the answering servers counted. */
function count6(n: LabNames, k: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < k; i++) {
    const r = curl(n, `${VIP6_URL}/`, ["-g", "-6"]);
    const who = r.status === 0 ? r.stdout.trim() : `curl exit ${r.status}`;
    out[who] = (out[who] ?? 0) + 1;
  }
  return out;
}

/** /bytes/N from the IPv6 VIP: "SIZE SHA256" of the body. */
function download6(n: LabNames, size: number): string {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-v6dl-"));
  try {
    const file = join(dir, "body");
    const r = curl(n, `${VIP6_URL}/bytes/${size}`, ["-g", "-6", "-o", file], 60);
    if (r.status !== 0) return `curl exit ${r.status}: ${r.stderr}`;
    const body = readFileSync(file);
    return `${body.length} ${createHash("sha256").update(body).digest("hex")}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const CASES: { method: LabMethod; servers: string[] }[] = [
  { method: "nat", servers: ["r1", "r2", "r3"] },
  { method: "dr", servers: ["r1", "r2", "r3"] },
  { method: "tun", servers: ["r1", "r2", "r3", "r4"] },
  { method: "fullnat", servers: ["r1", "r2", "r3", "r4"] },
];

for (const c of CASES) {
  describe(`IPv6 through ${c.method.toUpperCase()}`, { skip, timeout: 180_000 }, () => {
    it(`round robin over ${c.servers.join(", ")} on [${LAB_ADDR6.VIP}]:80, the IPv4 VIP beside it`, async () => {
      names ??= await runNames("v6");
      const st = await labUp(names, { method: c.method, ipv6: true });
      assert.equal(st.daemonStatus, "running", st.daemonStatus);
      const k = c.servers.length * 6;
      const got = count6(names, k);
      assert.deepEqual(
        Object.entries(got).sort(),
        c.servers.map((s) => [s, 6]),
        JSON.stringify(got),
      );
      const v4 = count(names, c.servers.length);
      assert.deepEqual(Object.keys(v4).sort(), c.servers, JSON.stringify(v4));
    });

    it("a 10 MiB download arrives intact", () => {
      assert.ok(names !== undefined);
      const size = 10 << 20;
      assert.equal(download6(names, size), `${size} ${patternSha256(size)}`);
    });

    it("ipvsadm -Lnc lists the IPv6 connections with bracketed addresses", async () => {
      assert.ok(names !== undefined);
      const rows = await conns(names);
      const v6 = rows.filter((r) => r[4] === `[${LAB_ADDR6.VIP}]:80`);
      assert.ok(v6.length > 0, JSON.stringify(rows.slice(0, 5)));
      for (const r of v6) assert.match(r[3], /^\[fd74:7376::2\]:\d+$/);
      await labDown(names);
    });
  });
}

// The --workers 2 suites run on the default backend and on AF_XDP, where the XDP program keys
// IPv6 on the folded client address (or a local address's owner) as the fanout program does
// (src/io/xdp-prog.ts).
const BACKENDS_2W = [
  [[], ""],
  [["--io", "xdp"], " --io xdp"],
] as const;

/** With `--io xdp`: every served interface is on XDP (a silent fallback to mmsg would pass the rest). */
async function assertXdp(n: LabNames, io: readonly string[]): Promise<void> {
  if (io.length === 0) return;
  const s = await request(n.controlSock, { op: "status" });
  assert.ok("status" in s, JSON.stringify(s));
  const got = s.status.interfaces.map((i) => i.io ?? "?");
  assert.ok(got.length > 0 && got.every((b) => b.startsWith("xdp-")), `interfaces run ${got.join(", ")}`);
}

for (const [io, tail] of BACKENDS_2W) {
  // `--workers 2`: the fanout program keys IPv6 on the client (io/bpf.ts compileFanoutProgram), so
  // clients spread over both workers, and each NAT reply (from an IPv6 real server) must reach the
  // worker holding its connection, or the download stalls.
  describe(`IPv6 through NAT with --workers 2${tail}`, { skip, timeout: 180_000 }, () => {
    const clients = Array.from({ length: 8 }, (_, i) => `fd74:7376::c:${i + 1}`);
    it("clients on both workers: every download arrives intact, one entry per client", async () => {
      const worker = clients.map((a) => fanoutHash6(ipv6TextWords(a) ?? new Int32Array(4)) % 2);
      const per = [0, 1].map((w) => worker.filter((x) => x === w).length);
      assert.ok(per[0] > 0 && per[1] > 0, JSON.stringify(per));
      names ??= await runNames("v6");
      const n = names;
      try {
        const st = await labUp(n, { method: "nat", ipv6: true, daemonArgs: ["--workers", "2", ...io] });
        assert.equal(st.daemonStatus, "running", st.daemonStatus);
        await assertXdp(n, io);
        for (const a of clients) ip("-n", n.client, "addr", "add", `${a}/64`, "dev", "eth0", "nodad");
        // rr schedules per worker (docs/daemon.md "Several workers"): each worker's clients see the
        // servers in turn (the kernel's list order, r3 first), and the clients in the order asked do
        // not, as they would on one worker.
        const order = ["r3", "r2", "r1"];
        const seen = clients.map((a) => {
          const r = curl(n, `${VIP6_URL}/`, ["-g", "-6", "--interface", a]);
          return r.status === 0 ? r.stdout.trim() : `curl exit ${r.status}`;
        });
        const inTurn = (xs: string[]): boolean =>
          xs.every((x, i) => i === 0 || order.indexOf(x) === (order.indexOf(xs[i - 1]) + 1) % order.length);
        const onWorker = (w: number): string[] => seen.filter((_, i) => worker[i] === w);
        const msg = JSON.stringify({ seen, worker });
        assert.ok(inTurn(onWorker(0)) && inTurn(onWorker(1)), msg);
        assert.ok(!inTurn(seen), `one round robin over all clients: ${msg}`);
        const size = 1 << 20;
        const dir = mkdtempSync(join(tmpdir(), "tsvs-v6w2-"));
        try {
          for (const a of clients) {
            const file = join(dir, a);
            const r = curl(n, `${VIP6_URL}/bytes/${size}`, ["-g", "-6", "--interface", a, "-o", file], 30);
            assert.equal(r.status, 0, `${a}: curl exit ${r.status} ${r.stderr}`);
            const body = readFileSync(file);
            assert.equal(
              `${body.length} ${createHash("sha256").update(body).digest("hex")}`,
              `${size} ${patternSha256(size)}`,
              a,
            );
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
        const from = new Set(
          (await conns(n))
            .filter((r) => r[4] === `[${LAB_ADDR6.VIP}]:80`)
            .map((r) => r[3].replace(/:\d+$/, "")),
        );
        assert.deepEqual([...from].sort(), clients.map((a) => `[${a}]`).sort());
      } finally {
        await labDown(n);
      }
    });
  });
}

// NAT64 (DPVS's FULLNAT from an IPv6 VIP to IPv4 real servers, docs/ipv6.md "NAT64"): a service on
// the IPv6 VIP whose real servers are the lab's IPv4 ones, with the lab's IPv4 local address as
// its `-P`; curl over IPv6 reaches nginx over IPv4, and the server's replies come back translated.
describe("NAT64: the IPv6 VIP to the lab's IPv4 real servers", { skip, timeout: 180_000 }, () => {
  const port = 8064;
  const url = `http://[${LAB_ADDR6.VIP}]:${port}`;
  const servers = [
    ["r1", "198.18.1.11"],
    ["r2", "198.18.1.12"],
    ["r3", "198.18.1.13"],
  ];
  it("round robin over r1, r2, r3 through IPv4, a 10 MiB download intact, IPv6 → IPv4 entries", async () => {
    names ??= await runNames("v6");
    const n = names;
    try {
      const st = await labUp(n, { method: "fullnat", ipv6: true });
      assert.equal(st.daemonStatus, "running", st.daemonStatus);
      await ipvsadm(n, ["-A", "-t", `[${LAB_ADDR6.VIP}]:${port}`, "-s", "rr"]);
      for (const [, rip] of servers)
        await ipvsadm(n, ["-a", "-t", `[${LAB_ADDR6.VIP}]:${port}`, "-r", `${rip}:80`, "--fullnat"]);
      await ipvsadm(n, ["-P", "-t", `[${LAB_ADDR6.VIP}]:${port}`, "-z", LAB_ADDR.LIP]);
      const got: Record<string, number> = {};
      for (let i = 0; i < servers.length * 3; i++) {
        const r = curl(n, `${url}/`, ["-g", "-6"]);
        const who = r.status === 0 ? r.stdout.trim() : `curl exit ${r.status}`;
        got[who] = (got[who] ?? 0) + 1;
      }
      assert.deepEqual(
        Object.entries(got).sort(),
        servers.map(([s]) => [s, 3]),
        JSON.stringify(got),
      );
      const size = 10 << 20;
      const dir = mkdtempSync(join(tmpdir(), "tsvs-v6nat64-"));
      try {
        const file = join(dir, "body");
        const r = curl(n, `${url}/bytes/${size}`, ["-g", "-6", "-o", file], 60);
        assert.equal(r.status, 0, `curl exit ${r.status} ${r.stderr}`);
        const body = readFileSync(file);
        assert.equal(
          `${body.length} ${createHash("sha256").update(body).digest("hex")}`,
          `${size} ${patternSha256(size)}`,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      const rows = (await conns(n)).filter((r) => r[4] === `[${LAB_ADDR6.VIP}]:${port}`);
      assert.ok(rows.length > 0, "NAT64 entries listed");
      for (const r of rows) {
        assert.match(r[3], /^\[fd74:7376::2\]:\d+$/);
        assert.match(r[5], /^198\.18\.1\.1[123]:80$/);
      }
    } finally {
      await labDown(n);
    }
  });
});

for (const [io, tail] of BACKENDS_2W) {
  // IPv6 FULLNAT and NAT64 with `--workers 2` (docs/daemon.md "Several workers"): IPv6 local
  // addresses are shared out as IPv4 ones are (LIP k to worker k % 2), so with two of them each
  // worker leaves from its own and the fanout program brings each reply back to the worker that chose
  // its LIP; a reply steered elsewhere would find no entry and the download would stall.
  describe(`IPv6 FULLNAT and NAT64 with --workers 2${tail}`, { skip, timeout: 240_000 }, () => {
    const clients = Array.from({ length: 6 }, (_, i) => `fd74:7376::c:${i + 11}`);
    const LIP6B = "fd74:7376:0:1::101";
    const LIP4B = "198.18.1.101";
    const port64 = 8064;
    it("each worker's clients leave from its own local address, downloads intact, -G counts them", async () => {
      const worker = clients.map((a) => fanoutHash6(ipv6TextWords(a) ?? new Int32Array(4)) % 2);
      assert.ok(worker.includes(0) && worker.includes(1), JSON.stringify(worker));
      names ??= await runNames("v6");
      const n = names;
      try {
        const st = await labUp(n, { method: "fullnat", ipv6: true, daemonArgs: ["--workers", "2", ...io] });
        assert.equal(st.daemonStatus, "running", st.daemonStatus);
        await assertXdp(n, io);
        for (const a of clients) ip("-n", n.client, "addr", "add", `${a}/64`, "dev", "eth0", "nodad");
        await ipvsadm(n, ["-P", "-t", `[${LAB_ADDR6.VIP}]:80`, "-z", LIP6B]);
        await ipvsadm(n, ["-A", "-t", `[${LAB_ADDR6.VIP}]:${port64}`, "-s", "rr"]);
        await ipvsadm(n, ["-a", "-t", `[${LAB_ADDR6.VIP}]:${port64}`, "-r", "198.18.1.11:80", "--fullnat"]);
        for (const l of [LAB_ADDR.LIP, LIP4B])
          await ipvsadm(n, ["-P", "-t", `[${LAB_ADDR6.VIP}]:${port64}`, "-z", l]);
        const size = 1 << 20;
        const dir = mkdtempSync(join(tmpdir(), "tsvs-v6fw2-"));
        try {
          for (const [i, a] of clients.entries())
            for (const url of [
              `${VIP6_URL}/bytes/${size}`,
              `http://[${LAB_ADDR6.VIP}]:${port64}/bytes/${size}`,
            ]) {
              const file = join(dir, `${i}-${url.length}`);
              const r = curl(n, url, ["-g", "-6", "--interface", a, "-o", file], 30);
              assert.equal(r.status, 0, `${a} ${url}: curl exit ${r.status} ${r.stderr}`);
              const body = readFileSync(file);
              assert.equal(
                `${body.length} ${createHash("sha256").update(body).digest("hex")}`,
                `${size} ${patternSha256(size)}`,
                `${a} ${url}`,
              );
            }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
        // The lab's LIP is the first of each list (worker 0's), the one added here the second
        // (worker 1's): each carried its worker's clients, as -G counts (connections in TIME_WAIT).
        const perWorker = [0, 1].map((w) => worker.filter((x) => x === w).length);
        for (const [svc, lips] of [
          [`[${LAB_ADDR6.VIP}]:80`, [LAB_ADDR6.LIP, LIP6B]],
          [`[${LAB_ADDR6.VIP}]:${port64}`, [LAB_ADDR.LIP, LIP4B]],
        ] as const) {
          const out = await ipvsadm(n, ["-G", "-t", svc]);
          const connsOf = (lip: string): number => {
            const line = out.split("\n").find((l) => l.trim().split(/\s+/)[0] === lip);
            assert.ok(line !== undefined, `${lip} in -G:\n${out}`);
            return Number(line.trim().split(/\s+/)[2]);
          };
          assert.deepEqual(
            lips.map((l) => connsOf(l)),
            perWorker,
            `${svc} -G:\n${out}`,
          );
        }
      } finally {
        await labDown(n);
      }
    });
  });
}
