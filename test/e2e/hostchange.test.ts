// `tsvs daemon` with no --iface follows the host while it runs (rtnetlink): addresses, routes and
// interfaces that change, links that go down and come back. Default veth offloads everywhere.
//
//   ns c (client)                ns d (director: tsvs daemon --host-vips)        ns r (real server)
//   c0 198.18.0.1/24  ⇄  d0 198.18.0.254/24     d1 198.18.1.254/24  ⇄  r1 198.18.1.11/24
//                        (VIP 198.18.0.100/32    d2 198.18.2.254/24  ⇄  r2 198.18.2.11/24  (added later)
//                         added and removed)                            lo 198.18.5.11/32 (the RIP)
//
// The RIP is reached through a static route (198.18.5.0/24 via 198.18.1.11 dev d1), later moved
// onto d2 (a new interface) while the old path is cut. NAT: the real server's default route points
// back at the director. With --host-vips the VIP is served only while the director's host has it,
// as with the kernel's IPVS and a VIP that VRRP moves.
// Needs root, iproute2, nft and curl: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { DaemonStatus } from "../../src/daemon/protocol.js";
import { addVethPair, delNetns, freshNetns, ip, nsExec, nsExecStatus } from "../../src/io/netns.js";
import {
  Children,
  type Daemon,
  startDaemon as startDaemonIn,
  startHttp as startHttpIn,
  tsvsIn,
} from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("host change e2e", ["nftables", "curl"]);

const P = process.pid;
const tag = P.toString(36);
const NS = { c: `tsvs-hc-${P}-c`, d: `tsvs-hc-${P}-d`, r: `tsvs-hc-${P}-r` };
// veth ends are created in the test's own namespace first: unique names there.
const IF = {
  c0: `hcc${tag}`,
  d0: `hcd${tag}`,
  d1: `hcD${tag}`,
  d2: `hcE${tag}`,
  r1: `hcr${tag}`,
  r2: `hcs${tag}`,
};
const VIP = "198.18.0.100";
const RIP = "198.18.5.11";

const children = new Children();

function startDaemon(sock: string, extra: string[]): Promise<Daemon> {
  // No --iface: every up interface of the namespace, followed as they come and go.
  return startDaemonIn(NS.d, ["--host-vips", "--control", sock, ...extra], children);
}

function tsvs(
  sock: string,
  sub: string,
  ...args: string[]
): { status: number; stdout: string; stderr: string } {
  return tsvsIn(NS.d, sock, sub, ...args);
}

function status(sock: string): DaemonStatus {
  const r = tsvs(sock, "status", "--json");
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as DaemonStatus;
}

function curl(maxTime = 1): { ok: boolean; body: string } {
  const r = nsExecStatus(NS.c, ["curl", "-sS", "--max-time", String(maxTime), `http://${VIP}/`], 10_000);
  return { ok: r.status === 0, body: r.stdout.trim() };
}

/** Polls `probe` until it returns true; fails with `what` and the daemon's log after `ms`. */
async function until(what: string, ms: number, probe: () => boolean, d?: Daemon): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (probe()) return;
    if (Date.now() > deadline)
      assert.fail(
        `${what}: not within ${ms} ms${d === undefined ? "" : `\ndaemon:\n${d.stderr().slice(-4000)}`}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits for a line of the daemon's log (stderr arrives through the event loop: poll it). */
async function logged(d: Daemon, re: RegExp): Promise<void> {
  await until(`the daemon logs ${re}`, 5_000, () => re.test(d.stderr()), d);
}

/** The client's neighbour entry for the VIP: its link-layer address, or null (FAILED/INCOMPLETE/none). */
function clientArp(): string | null {
  const rows = JSON.parse(ip("-n", NS.c, "-j", "neigh", "show", VIP)) as { lladdr?: string }[];
  return rows[0]?.lladdr ?? null;
}

function startHttp(ns: string, name: string): Promise<unknown> {
  return startHttpIn(ns, name, children);
}

/** CPU time (utime + stime, in clock ticks) of a process so far. */
function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return Number(rest[11]) + Number(rest[12]);
}

/**
 * Requests in a loop (bounded: `count` requests or `ms`, whichever first), while `during` runs;
 * returns each request's outcome in order.
 */
async function curlLoop(
  count: number,
  ms: number,
  during: (results: readonly boolean[]) => Promise<void>,
): Promise<boolean[]> {
  const results: boolean[] = [];
  const deadline = Date.now() + ms;
  let stop = false;
  const loop = (async () => {
    while (!stop && results.length < count && Date.now() < deadline) {
      const ok = await new Promise<boolean>((resolve) => {
        const p = spawn(
          "ip",
          ["netns", "exec", NS.c, "curl", "-s", "-o", "/dev/null", "--max-time", "1", `http://${VIP}/`],
          {
            stdio: "ignore",
          },
        );
        p.once("exit", (code) => resolve(code === 0));
      });
      results.push(ok);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    await during(results);
  } finally {
    // Let a few more requests run after the change, then stop.
    const n = results.length + 5;
    await until("the request loop goes on after the change", 15_000, () => results.length >= n || stop);
    stop = true;
    await loop;
  }
  return results;
}

describe("tsvs daemon follows the host (rtnetlink)", { skip, timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-hc-"));
  const sock = join(dir, "control.sock");
  let d: Daemon;

  before(async () => {
    freshNetns(Object.values(NS));
    addVethPair(
      { ns: NS.c, ifname: IF.c0, cidr: "198.18.0.1/24" },
      { ns: NS.d, ifname: IF.d0, cidr: "198.18.0.254/24" },
    );
    addVethPair(
      { ns: NS.d, ifname: IF.d1, cidr: "198.18.1.254/24" },
      { ns: NS.r, ifname: IF.r1, cidr: "198.18.1.11/24" },
    );
    ip("-n", NS.r, "addr", "add", `${RIP}/32`, "dev", "lo");
    ip("-n", NS.r, "route", "add", "default", "via", "198.18.1.254");
    ip("-n", NS.c, "route", "add", "default", "via", "198.18.0.254");
    ip("-n", NS.d, "route", "add", "198.18.5.0/24", "via", "198.18.1.11", "dev", IF.d1);
    nsExec(NS.d, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    await startHttp(NS.r, "r");
    d = await startDaemon(sock, []);
    for (const argv of [
      ["-A", "-t", `${VIP}:80`, "-s", "rr"],
      ["-a", "-t", `${VIP}:80`, "-r", `${RIP}:80`, "-m"],
    ]) {
      const r = tsvs(sock, "ipvsadm", ...argv);
      assert.equal(r.status, 0, `ipvsadm ${argv.join(" ")}: ${r.stderr}`);
    }
  });

  after(async () => {
    await children.stopAll();
    for (const ns of Object.values(NS)) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it("with no arguments serves every up interface but lo, and shows the host in tsvs status", () => {
    const st = status(sock);
    assert.deepEqual(st.interfaces.map((i) => i.name).sort(), [IF.d0, IF.d1].sort());
    assert.ok(st.host !== undefined, "status has the host view");
    assert.equal(st.host.following, true);
    assert.equal(st.host.hostVips, true);
    const lo = st.host.interfaces.find((l) => l.name === "lo");
    assert.equal(lo?.served, false);
    assert.deepEqual(st.host.interfaces.find((l) => l.name === IF.d1)?.addrs, ["198.18.1.254/24"]);
    assert.equal(st.host.routes, 3, "two connected routes and the one to the RIP");
    const text = tsvs(sock, "status");
    assert.match(
      text.stdout,
      /^host: followed \(rtnetlink\), VIPs only while the host has them; 3 IPv4 and \d+ IPv6 routes/m,
    );
    // IPv6 addresses (the link-local one at least, where IPv6 is on) follow the IPv4 ones.
    assert.match(
      text.stdout,
      new RegExp(`^ {2}${IF.d0} \\(#\\d+\\) UP served 198\\.18\\.0\\.254/24( [0-9a-f:]+/\\d+)*$`, "m"),
    );
  });

  it("a VIP added as an interface address is served and answered for ARP; removed, it no longer is", async () => {
    assert.equal(curl().ok, false, "not served while the host does not have the VIP");
    assert.equal(clientArp(), null, "nobody answers ARP for it");
    const changes = status(sock).host?.changes ?? 0;

    ip("-n", NS.d, "addr", "add", `${VIP}/32`, "dev", IF.d0);
    await until("the VIP is served once it is an address of d0", 10_000, () => curl().body === "r", d);
    assert.match(clientArp() ?? "", /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    const st = status(sock);
    assert.ok(
      st.host?.interfaces.find((l) => l.name === IF.d0)?.addrs.includes(`${VIP}/32`),
      JSON.stringify(st.host),
    );
    assert.ok((st.host?.changes ?? 0) > changes, "the change is counted");
    assert.ok(st.host?.lastChange !== null);
    await logged(d, /"what":"address added","dev":"[^"]+","addr":"198\.18\.0\.100\/32"/);

    ip("-n", NS.d, "addr", "del", `${VIP}/32`, "dev", IF.d0);
    await until("the VIP is no longer served once removed", 10_000, () => !curl().ok, d);
    ip("-n", NS.c, "neigh", "flush", "all");
    assert.equal(curl().ok, false);
    assert.equal(clientArp(), null, "ARP for the VIP goes unanswered again");
    await logged(d, /"what":"address removed","dev":"[^"]+","addr":"198\.18\.0\.100\/32"/);

    ip("-n", NS.d, "addr", "add", `${VIP}/32`, "dev", IF.d0);
    await until("served again", 10_000, () => curl().ok, d);
  });

  it("a new interface gets a socket, and traffic follows the RIP's route moved onto it", async () => {
    addVethPair(
      { ns: NS.d, ifname: IF.d2, cidr: "198.18.2.254/24" },
      { ns: NS.r, ifname: IF.r2, cidr: "198.18.2.11/24" },
    );
    await until(
      "the new interface is served",
      10_000,
      () => status(sock).interfaces.some((i) => i.name === IF.d2),
      d,
    );
    ip("-n", NS.d, "route", "replace", "198.18.5.0/24", "via", "198.18.2.11", "dev", IF.d2);
    ip("-n", NS.r, "route", "replace", "default", "via", "198.18.2.254");
    // The old path is cut: only the new one can carry the traffic.
    ip("-n", NS.r, "link", "set", IF.r1, "down");
    const tx0 = status(sock).interfaces.find((i) => i.name === IF.d2)?.txFrames ?? 0;
    await until("served through the new interface", 10_000, () => curl().body === "r", d);
    for (let i = 0; i < 3; i++) assert.equal(curl(3).body, "r");
    const st = status(sock);
    const d2 = st.interfaces.find((i) => i.name === IF.d2);
    assert.ok(
      d2 !== undefined && d2.txFrames > tx0,
      `requests leave through ${IF.d2}: ${JSON.stringify(d2)}`,
    );
    assert.equal(st.counters.noSocket, 0);
    await logged(d, /"what":"route added","route":"198\.18\.5\.0\/24 via 198\.18\.2\.11 dev /);
  });

  it("a link set down and up under traffic: serving resumes after up", async () => {
    const changes = status(sock).host?.changes ?? 0;
    const results = await curlLoop(200, 40_000, async (sofar) => {
      await until("requests run before the flap", 10_000, () => sofar.length >= 3);
      ip("-n", NS.d, "link", "set", IF.d0, "down");
      await until(
        "the daemon sees d0 down",
        10_000,
        () => status(sock).host?.interfaces.find((l) => l.name === IF.d0)?.up === false,
        d,
      );
      await new Promise((r) => setTimeout(r, 1000));
      ip("-n", NS.d, "link", "set", IF.d0, "up");
      await until("a request succeeds after up", 15_000, () => curl().ok, d);
    });
    assert.equal(d.proc.exitCode, null, `the daemon survives the flap:\n${d.stderr().slice(-2000)}`);
    assert.ok(results.length >= 5, `requests ran: ${results.length}`);
    assert.equal(results[0], true, "served before the flap");
    assert.deepEqual(results.slice(-3), [true, true, true], `served after the flap: ${results.join(",")}`);
    const st = status(sock);
    assert.ok((st.host?.changes ?? 0) >= changes + 2, "down and up were both seen");
    assert.equal(st.host?.interfaces.find((l) => l.name === IF.d0)?.state, "UP");
  });

  it("a deleted interface's socket is closed", async () => {
    ip("-n", NS.r, "link", "set", IF.r1, "up");
    ip("-n", NS.d, "route", "replace", "198.18.5.0/24", "via", "198.18.1.11", "dev", IF.d1);
    ip("-n", NS.r, "route", "replace", "default", "via", "198.18.1.254");
    ip("-n", NS.d, "link", "del", IF.d2);
    await until(
      "the deleted interface is gone from the daemon",
      10_000,
      () => {
        const st = status(sock);
        return (
          !st.interfaces.some((i) => i.name === IF.d2) && !st.host?.interfaces.some((l) => l.name === IF.d2)
        );
      },
      d,
    );
    await until("served through d1 again", 10_000, () => curl().body === "r", d);
    await logged(d, /"closed":\["[^"]+"\],"msg":"packet sockets follow the host"/);
  });

  it("the ring backend with two workers: a new interface joins both workers, a flap neither kills nor spins it", async () => {
    d.proc.kill("SIGTERM");
    assert.equal(await d.exited, 0, d.stderr().slice(-2000));
    d = await startDaemon(sock, ["--io", "ring", "--workers", "2"]);
    for (const argv of [
      ["-A", "-t", `${VIP}:80`, "-s", "rr"],
      ["-a", "-t", `${VIP}:80`, "-r", `${RIP}:80`, "-m"],
    ])
      assert.equal(tsvs(sock, "ipvsadm", ...argv).status, 0);
    await until("served", 10_000, () => curl().body === "r", d);

    addVethPair(
      { ns: NS.d, ifname: IF.d2, cidr: "198.18.2.254/24" },
      { ns: NS.r, ifname: IF.r2, cidr: "198.18.2.11/24" },
    );
    await until(
      "the new interface is served",
      10_000,
      () => status(sock).interfaces.some((i) => i.name === IF.d2),
      d,
    );
    ip("-n", NS.d, "route", "replace", "198.18.5.0/24", "via", "198.18.2.11", "dev", IF.d2);
    ip("-n", NS.r, "route", "replace", "default", "via", "198.18.2.254");
    ip("-n", NS.r, "link", "set", IF.r1, "down");
    await until("served through the new interface", 10_000, () => curl().body === "r", d);
    // Connections spread over both workers (fanout hash): each must be able to send on d2.
    for (let i = 0; i < 10; i++) assert.equal(curl(3).body, "r", `request ${i}`);
    assert.equal(status(sock).counters.noSocket, 0, "both workers have a socket on the new interface");

    const pid = d.proc.pid ?? 0;
    ip("-n", NS.d, "link", "set", IF.d2, "down");
    await until(
      "the daemon sees d2 down",
      10_000,
      () => status(sock).host?.interfaces.find((l) => l.name === IF.d2)?.up === false,
      d,
    );
    const t0 = cpuTicks(pid);
    await new Promise((r) => setTimeout(r, 1500));
    const ticks = cpuTicks(pid) - t0;
    // Two workers polling with a 10 ms timeout use a few ticks; a poll(2) that returns at once
    // (POLLERR never cleared) would keep a core busy: ~150 ticks in 1.5 s at 100 Hz.
    assert.ok(ticks < 60, `CPU while the link is down: ${ticks} ticks in 1.5 s`);
    ip("-n", NS.d, "link", "set", IF.d2, "up");
    // The kernel flushed the route through d2 with the link: put it back, as an administrator would.
    await until(
      "d2 up again",
      10_000,
      () => status(sock).host?.interfaces.find((l) => l.name === IF.d2)?.up === true,
      d,
    );
    ip("-n", NS.d, "route", "replace", "198.18.5.0/24", "via", "198.18.2.11", "dev", IF.d2);
    await until("served after the flap", 15_000, () => curl().body === "r", d);
    assert.equal(d.proc.exitCode, null);
    d.proc.kill("SIGTERM");
    assert.equal(await d.exited, 0, d.stderr().slice(-2000));
  });

  // Worker 0 opens an XDP interface and the other worker binds onto its sockets (sockets.ts): an
  // interface deleted goes from both (the last socket on a queue unmaps the shared rings), and one
  // created again is opened by worker 0 and joined by worker 1 anew.
  it("XDP with two workers: an interface deleted and created again is served by both anew", async () => {
    d = await startDaemon(sock, ["--io", "xdp", "--workers", "2"]);
    for (const argv of [
      ["-A", "-t", `${VIP}:80`, "-s", "rr"],
      ["-a", "-t", `${VIP}:80`, "-r", `${RIP}:80`, "-m"],
    ])
      assert.equal(tsvs(sock, "ipvsadm", ...argv).status, 0);
    const io = (): string[] =>
      status(sock)
        .interfaces.map((i) => `${i.name} ${i.io}`)
        .sort();
    assert.deepEqual(io(), [IF.d0, IF.d1, IF.d2].map((n) => `${n} xdp-native`).sort());
    await until("served through d2", 10_000, () => curl().body === "r", d);

    ip("-n", NS.r, "link", "set", IF.r1, "up");
    ip("-n", NS.d, "route", "replace", "198.18.5.0/24", "via", "198.18.1.11", "dev", IF.d1);
    ip("-n", NS.r, "route", "replace", "default", "via", "198.18.1.254");
    ip("-n", NS.d, "link", "del", IF.d2);
    await until("d2 no longer served", 10_000, () => !io().some((l) => l.startsWith(`${IF.d2} `)), d);
    await until("served through d1", 10_000, () => curl().body === "r", d);

    addVethPair(
      { ns: NS.d, ifname: IF.d2, cidr: "198.18.2.254/24" },
      { ns: NS.r, ifname: IF.r2, cidr: "198.18.2.11/24" },
    );
    await until("d2 served again", 10_000, () => io().includes(`${IF.d2} xdp-native`), d);
    ip("-n", NS.d, "route", "replace", "198.18.5.0/24", "via", "198.18.2.11", "dev", IF.d2);
    ip("-n", NS.r, "route", "replace", "default", "via", "198.18.2.254");
    ip("-n", NS.r, "link", "set", IF.r1, "down");
    await until("served through the new d2", 10_000, () => curl().body === "r", d);
    assert.doesNotMatch(d.stderr(), /XDP not available/);
    assert.equal(status(sock).counters.noSocket, 0);
    d.proc.kill("SIGTERM");
    assert.equal(await d.exited, 0, d.stderr().slice(-2000));
  });
});
