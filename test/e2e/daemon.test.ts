// `tsvs daemon` end to end, with real kernels on both sides:
//
//   ns c (client)                 ns d (director: tsvs daemon)                  ns r1, r2 (real servers)
//   c0 198.18.0.1/24  ⇄  d0 198.18.0.254/24   d1 198.18.1.254/24 ⇄ bd ─ br0 ─ b1 ⇄ r1e 198.18.1.11/24
//                                                                        └─ b2 ⇄ r2e 198.18.1.12/24
//
// VIP 198.18.0.100 belongs to no kernel: tsvs answers ARP for it. The director's kernel has
// ip_forward=1 (as an LVS director does), so only the nft guard keeps it from forwarding the real
// servers' replies a second time. The real servers run a tiny Node HTTP server answering their
// name, with their default route via the DIP (NAT). The client is curl.
// Needs root, iproute2, nft and curl: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseIPv4 } from "../../src/core/addr.js";
import { guardScript } from "../../src/daemon/nft.js";
import { parseRequest } from "../../src/daemon/protocol.js";
import { addVethPair, delNetns, freshNetns, ip, nsExec, nsExecStatus } from "../../src/io/netns.js";
import {
  Children,
  type Daemon,
  ENTRY,
  startDaemon as startDaemonIn,
  startHttp as startHttpIn,
  tsvsIn,
} from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("daemon e2e", ["nftables", "curl"]);

describe("control protocol requests (no root needed)", () => {
  const cases: { line: string; want: unknown }[] = [
    { line: '{"op":"table"}', want: { op: "table" } },
    { line: '{"op":"table","conns":true}', want: { op: "table", conns: true } },
    { line: '{"op":"table","conns":1}', want: { error: "table: conns must be a boolean" } },
    {
      line: '{"op":"apply","commands":[{"op":"clear"}]}',
      want: { op: "apply", commands: [{ op: "clear" }] },
    },
    { line: '{"op":"status","extra":1}', want: { op: "status" } },
    { line: "not json", want: { error: "request is not JSON" } },
    { line: "[1]", want: { error: "request must be a JSON object" } },
    { line: '{"op":"apply","commands":{"op":"clear"}}', want: { error: "apply: commands must be an array" } },
    {
      line: '{"op":"apply","commands":[{"op":"clear"},{"op":"set-timeout","timeouts":{"tcp":-1,"tcpFin":0,"udp":0}}]}',
      want: { error: "apply: command 1 at timeouts.tcp: Too small: expected number to be >=0" },
    },
    { line: '{"op":"ipvsadm","argv":["-Ln"]}', want: { error: 'unknown op "ipvsadm"' } },
    { line: '{"op":"reboot"}', want: { error: 'unknown op "reboot"' } },
  ];
  for (const c of cases) {
    it(`parses ${c.line}`, () => assert.deepEqual(parseRequest(c.line), c.want));
  }

  it("guard script: one ingress chain per interface, fwmark NAT destinations guarded for TCP and UDP", () => {
    const a = (s: string): number => parseIPv4(s) ?? 0;
    const script = guardScript(["eth0", "eth1"], [a("198.18.1.254"), a("198.18.0.254")], {
      owned: [a("198.18.0.100")],
      nat: [
        { addr: a("198.18.1.11"), proto: 6, port: 80 },
        { addr: a("198.18.1.12"), proto: 0, port: 53 },
      ],
    });
    assert.match(script, /^table netdev tsvs \{\}\ndelete table netdev tsvs\ntable netdev tsvs \{\n/);
    assert.match(script, /set own4 \{ type ipv4_addr; elements = \{ 198\.18\.0\.100 \}; \}/);
    assert.match(
      script,
      /set local4 \{ type ipv4_addr; elements = \{ 198\.18\.0\.254, 198\.18\.1\.254 \}; \}/,
    );
    assert.match(
      script,
      /elements = \{ 198\.18\.1\.11 \. tcp \. 80, 198\.18\.1\.12 \. tcp \. 53, 198\.18\.1\.12 \. udp \. 53 \}/,
    );
    assert.equal(script.match(/hook ingress device/g)?.length, 2);
    assert.match(
      script,
      /chain in_eth1 \{\n {4}type filter hook ingress device "eth1" priority -500; policy accept;/,
    );
    const empty = guardScript(["eth0"], [], { owned: [], nat: [] });
    assert.doesNotMatch(empty, /elements/);
  });
});

const P = process.pid;
const NS = { c: `tsvs-dm-${P}-c`, d: `tsvs-dm-${P}-d`, r1: `tsvs-dm-${P}-r1`, r2: `tsvs-dm-${P}-r2` };
const tag = P.toString(36);
// veth ends are named in the test's own namespace first: keep them unique there.
const IF = {
  c0: `dmc${tag}`,
  d0: `dmd${tag}`,
  d1: `dmD${tag}`,
  bd: `dmb${tag}`,
  b1: `dmx${tag}`,
  b2: `dmy${tag}`,
  r1: `dmr${tag}`,
  r2: `dms${tag}`,
};
const VIP = "198.18.0.100";

const children = new Children();

function startDaemon(sock: string): Promise<Daemon> {
  return startDaemonIn(NS.d, ["--iface", IF.d0, "--iface", IF.d1, "--control", sock], children);
}

function tsvs(
  sock: string,
  sub: string,
  ...args: string[]
): { status: number; stdout: string; stderr: string } {
  return tsvsIn(NS.d, sock, sub, ...args);
}

function startHttp(ns: string, name: string): Promise<unknown> {
  return startHttpIn(ns, name, children);
}

function guardPresent(): boolean {
  return nsExecStatus(NS.d, ["nft", "list", "table", "netdev", "tsvs"]).status === 0;
}

describe("tsvs daemon with real kernels, nft guard and curl", { skip, timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-dm-"));
  const sock = join(dir, "run", "control.sock");

  before(() => {
    freshNetns(Object.values(NS));
    addVethPair(
      { ns: NS.c, ifname: IF.c0, cidr: "198.18.0.1/24" },
      { ns: NS.d, ifname: IF.d0, cidr: "198.18.0.254/24" },
    );
    addVethPair({ ns: NS.d, ifname: IF.d1, cidr: "198.18.1.254/24" }, { ns: NS.d, ifname: IF.bd });
    addVethPair({ ns: NS.d, ifname: IF.b1 }, { ns: NS.r1, ifname: IF.r1, cidr: "198.18.1.11/24" });
    addVethPair({ ns: NS.d, ifname: IF.b2 }, { ns: NS.r2, ifname: IF.r2, cidr: "198.18.1.12/24" });
    ip("-n", NS.d, "link", "add", "br0", "type", "bridge");
    for (const p of [IF.bd, IF.b1, IF.b2]) ip("-n", NS.d, "link", "set", p, "master", "br0");
    ip("-n", NS.d, "link", "set", "br0", "up");
    for (const ns of [NS.r1, NS.r2]) ip("-n", ns, "route", "add", "default", "via", "198.18.1.254");
    // The director is the client's gateway too: without the guard, the director's kernel forwards
    // each real server's SYN-ACK un-rewritten (RIP → CIP), the client answers it with a RST
    // through the director, and the real server drops the connection.
    ip("-n", NS.c, "route", "add", "default", "via", "198.18.0.254");
    nsExec(NS.d, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    // Every veth keeps its default offloads (partial checksums, GSO): as a host has them.
  });

  after(async () => {
    await children.stopAll();
    for (const ns of Object.values(NS)) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it("the client says clearly that no daemon is listening", () => {
    const r = tsvs(sock, "ipvsadm", "-Ln");
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^tsvs: cannot reach the daemon at ${sock}: `));
  });

  it("replaces the guard a killed daemon left behind, serves 10 curl requests rr 5/5 over NAT, lists, and cleans up on SIGTERM", async () => {
    const first = await startDaemon(sock);
    assert.ok(guardPresent(), "guard installed at start");
    first.proc.kill("SIGKILL");
    await first.exited;
    assert.ok(guardPresent(), "a crashed daemon leaves its table");

    const d = await startDaemon(sock);
    await Promise.all([startHttp(NS.r1, "r1"), startHttp(NS.r2, "r2")]);
    for (const argv of [
      ["-A", "-t", `${VIP}:80`, "-s", "rr"],
      ["-a", "-t", `${VIP}:80`, "-r", "198.18.1.11:80", "-m"],
      ["-a", "-t", `${VIP}:80`, "-r", "198.18.1.12:80", "-m"],
    ]) {
      const r = tsvs(sock, "ipvsadm", ...argv);
      assert.equal(r.status, 0, `ipvsadm ${argv.join(" ")}: ${r.stderr}`);
    }
    const dup = tsvs(sock, "ipvsadm", "-A", "-t", `${VIP}:80`, "-s", "rr");
    assert.deepEqual([dup.status, dup.stderr], [255, "Service already exists\n"]);

    const guard = nsExec(NS.d, ["nft", "list", "table", "netdev", "tsvs"]);
    assert.match(guard, /198\.18\.0\.100/);
    assert.match(guard, /198\.18\.1\.11 \. tcp \. 80/);

    // A second daemon in the namespace is refused before it touches the first one's guard.
    const second = await startDaemon(sock).then(
      () => "started",
      (e: Error) => e.message,
    );
    assert.match(second, /exited with 1[\s\S]*another daemon is listening/);
    assert.match(nsExec(NS.d, ["nft", "list", "table", "netdev", "tsvs"]), /198\.18\.1\.11 \. tcp \. 80/);

    const seen: Record<string, number> = {};
    for (let i = 0; i < 10; i++) {
      const r = nsExecStatus(NS.c, ["curl", "-sS", "--max-time", "3", `http://${VIP}/`], 10_000);
      assert.equal(r.status, 0, `curl #${i + 1}: ${r.stderr}\ndaemon:\n${d.stderr()}`);
      const who = r.stdout.trim();
      seen[who] = (seen[who] ?? 0) + 1;
    }
    assert.deepEqual(seen, { r1: 5, r2: 5 });

    const list = tsvs(sock, "ipvsadm", "-Ln");
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /^IP Virtual Server version 1\.2\.1 \(size=\d+\)\n/);
    assert.match(list.stdout, /\nTCP {2}198\.18\.0\.100:80 rr\n/);
    // "  -> %-28s %-7s %-6d %-10u %-10u": 10 connections, 5 each, active or not by now.
    for (const rip of ["198.18.1.11", "198.18.1.12"]) {
      const line = list.stdout.split("\n").find((l) => l.startsWith(`  -> ${rip}:80 `));
      assert.ok(line !== undefined, list.stdout);
      assert.equal(line.slice(0, 49), `  -> ${`${rip}:80`.padEnd(28)} Masq    1      `);
      const [active, inactive] = line.slice(49).trim().split(/ +/).map(Number);
      assert.equal(active + inactive, 5, line);
    }

    // -S → -C → -R (stdin carried by the client) gives the same table back.
    const saved = tsvs(sock, "ipvsadm", "-S", "-n");
    assert.equal(saved.status, 0, saved.stderr);
    assert.equal(
      saved.stdout,
      `-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r 198.18.1.11:80 -m -w 1\n-a -t ${VIP}:80 -r 198.18.1.12:80 -m -w 1\n`,
    );
    assert.equal(tsvs(sock, "ipvsadm", "-C").status, 0);
    assert.equal(tsvs(sock, "ipvsadm", "-Ln").stdout.includes("TCP "), false);
    execFileSync("ip", ["netns", "exec", NS.d, process.execPath, ENTRY, "ipvsadm", "--control", sock, "-R"], {
      input: saved.stdout,
      stdio: ["pipe", "ignore", "pipe"],
    });
    assert.equal(tsvs(sock, "ipvsadm", "-S", "-n").stdout, saved.stdout);

    const st = tsvs(sock, "status", "--json");
    assert.equal(st.status, 0, st.stderr);
    const status = JSON.parse(st.stdout) as { services: number; counters: Record<string, number> };
    assert.equal(status.services, 1);
    assert.ok(status.counters.connsCreated >= 10, JSON.stringify(status.counters));

    d.proc.kill("SIGTERM");
    assert.equal(await d.exited, 0, d.stderr());
    assert.equal(guardPresent(), false, "SIGTERM removes the nft table");
  });
});
