// `tsvs daemon --io xdp` end to end: the XDP program on each director interface hands the owned
// traffic to AF_XDP sockets, the engine (reading each batch ahead) serves a NAT and a DR service from them to curl, nginx
// answers on two real servers, and everything else — the director's own traffic, the DR replies
// the kernel forwards — goes to the kernel (XDP_PASS).
//
//   ns c (client)                 ns d (director, ip_forward=1)                ns r1 / r2 (nginx)
//   c0 198.18.42.1/24  ⇄  d0 198.18.42.254/24   d1 198.18.43.254/24  ⇄  r1 198.18.43.11/24
//                                               d2 198.18.44.254/24  ⇄  r2 198.18.44.12/24
//   NAT VIP 198.18.42.100:80, DR VIP 198.18.42.101:80 (on the servers' lo, arp_ignore)
//
// Needs root, iproute2, nft, curl, nginx and native XDP on veth: skipped with the reason
// otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { addVethPair, delNetns, freshNetns, ip, nsExec, nsExecStatus } from "../../src/io/netns.js";
import { nginxHead } from "../../src/lab/servers.js";
import { Children, type Daemon, startDaemon, startListener, tsvsIn } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("xdp daemon e2e", ["nftables", "curl", "nginx"]);

const tag = process.pid.toString(36);
const NS = { c: `tsvsxd${tag}c`, d: `tsvsxd${tag}d`, r1: `tsvsxd${tag}r1`, r2: `tsvsxd${tag}r2` };
const IF = {
  c0: `xdc${tag}`,
  d0: `xdd0${tag}`,
  d1: `xdd1${tag}`,
  d2: `xdd2${tag}`,
  r1: `xdr1${tag}`,
  r2: `xdr2${tag}`,
};
const NAT_VIP = "198.18.42.100";
const DR_VIP = "198.18.42.101";
const children = new Children();

function tsvs(sock: string, sub: string, ...args: string[]): string {
  const r = tsvsIn(NS.d, sock, sub, ...args);
  assert.equal(r.status, 0, `tsvs ${sub} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** nginx in ns answering its name on :80; resolves once it accepts a connection. */
async function startNginx(ns: string, name: string, dir: string): Promise<void> {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  // 4 MiB of a pattern for the bulk download (many MTU-sized frames each way through the engine).
  writeFileSync(join(d, "big"), Buffer.alloc(4 << 20, name));
  const conf = join(d, "nginx.conf");
  writeFileSync(
    conf,
    `${nginxHead(d, { connections: 256, root: true })}  server { listen 80; location / { return 200 "${name}\\n"; } location = /big { alias ${d}/big; } }
}
`,
  );
  children.add(spawn("ip", ["netns", "exec", ns, "nginx", "-p", d, "-c", conf], { stdio: "ignore" }));
  for (let i = 0; i < 100; i++) {
    if (nsExecStatus(ns, ["curl", "-s", "-m", "1", "http://127.0.0.1/"]).stdout === `${name}\n`) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx ${name} did not start`);
}

function curl(vip: string): string {
  const r = nsExecStatus(NS.c, ["curl", "-s", "-m", "3", `http://${vip}/`]);
  return r.status === 0 ? r.stdout.trim() : `ERR ${r.status}`;
}

describe(
  "tsvs daemon --io xdp: NAT and DR through AF_XDP, the host's own traffic through the kernel",
  {
    skip,
    timeout: 60_000,
  },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "tsvs-xd-"));
    const sock = join(dir, "control.sock");
    let daemon: Daemon;

    before(async () => {
      freshNetns(Object.values(NS));
      addVethPair(
        { ns: NS.c, ifname: IF.c0, cidr: "198.18.42.1/24" },
        { ns: NS.d, ifname: IF.d0, cidr: "198.18.42.254/24" },
      );
      addVethPair(
        { ns: NS.d, ifname: IF.d1, cidr: "198.18.43.254/24" },
        { ns: NS.r1, ifname: IF.r1, cidr: "198.18.43.11/24" },
      );
      addVethPair(
        { ns: NS.d, ifname: IF.d2, cidr: "198.18.44.254/24" },
        { ns: NS.r2, ifname: IF.r2, cidr: "198.18.44.12/24" },
      );
      ip("-n", NS.c, "route", "add", "default", "via", "198.18.42.254");
      nsExec(NS.d, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
      for (const [ns, gw] of [
        [NS.r1, "198.18.43.254"],
        [NS.r2, "198.18.44.254"],
      ]) {
        ip("-n", ns, "route", "add", "default", "via", gw);
        // DR: the VIP on lo, never announced nor answered for in ARP.
        ip("-n", ns, "addr", "add", `${DR_VIP}/32`, "dev", "lo");
        nsExec(ns, [
          "sysctl",
          "-q",
          "-w",
          "net.ipv4.conf.all.arp_ignore=1",
          "net.ipv4.conf.all.arp_announce=2",
        ]);
      }
      await startNginx(NS.r1, "r1", dir);
      await startNginx(NS.r2, "r2", dir);
      daemon = await startDaemon(
        NS.d,
        // --read-ahead on: every batch from the UMEM is read ahead (by default only a large table's).
        [
          "--iface",
          IF.d0,
          "--iface",
          IF.d1,
          "--iface",
          IF.d2,
          "--control",
          sock,
          "--io",
          "xdp",
          "--read-ahead",
          "on",
        ],
        children,
      );
      for (const argv of [
        ["-A", "-t", `${NAT_VIP}:80`, "-s", "rr"],
        ["-a", "-t", `${NAT_VIP}:80`, "-r", "198.18.43.11:80", "-m"],
        ["-a", "-t", `${NAT_VIP}:80`, "-r", "198.18.44.12:80", "-m"],
        ["-A", "-t", `${DR_VIP}:80`, "-s", "rr"],
        ["-a", "-t", `${DR_VIP}:80`, "-r", "198.18.43.11:80", "-g"],
        ["-a", "-t", `${DR_VIP}:80`, "-r", "198.18.44.12:80", "-g"],
      ])
        tsvs(sock, "ipvsadm", ...argv);
    });

    after(async () => {
      await children.stopAll();
      for (const ns of Object.values(NS)) delNetns(ns);
      rmSync(dir, { recursive: true, force: true });
    });

    it("serves every interface with the XDP backend, in the driver (native mode on veth)", () => {
      const st = JSON.parse(tsvs(sock, "status", "--json")) as { interfaces: { name: string; io: string }[] };
      assert.deepEqual(
        st.interfaces.map((i) => i.io),
        ["xdp-native", "xdp-native", "xdp-native"],
        JSON.stringify(st.interfaces),
      );
      assert.doesNotMatch(daemon.stderr(), /XDP not available/);
      for (const i of [IF.d0, IF.d1, IF.d2])
        assert.match(ip("-n", NS.d, "link", "show", i), /prog\/xdp id \d+ name tsvs_xdp/);
    });

    it("NAT: curl gets both real servers in turn, and the stats count them", () => {
      const answers = Array.from({ length: 6 }, () => curl(NAT_VIP));
      assert.deepEqual(
        [...answers].sort(),
        ["r1", "r1", "r1", "r2", "r2", "r2"],
        `round robin: ${answers.join(",")}`,
      );
      for (let i = 1; i < answers.length; i++) assert.notEqual(answers[i], answers[i - 1], answers.join(","));
      const stats = tsvs(sock, "ipvsadm", "-Ln", "--stats");
      for (const rip of ["198.18.43.11:80", "198.18.44.12:80"]) {
        const line =
          stats.split("\n").find((l) => l.includes(rip) && stats.indexOf(l) < stats.indexOf(DR_VIP)) ?? "";
        assert.equal(Number(line.trim().split(/\s+/)[2]), 3, `${rip} conns:\n${stats}`);
      }
    });

    it("NAT: a 4 MiB download arrives whole (bulk TCP in MTU-sized frames through AF_XDP)", () => {
      const r = nsExecStatus(NS.c, [
        "curl",
        "-s",
        "-m",
        "20",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        `http://${NAT_VIP}/big`,
      ]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(Number(r.stdout), 4 << 20);
    });

    it("DR: curl gets both real servers in turn; their replies cross the director's kernel", () => {
      const answers = Array.from({ length: 4 }, () => curl(DR_VIP));
      assert.deepEqual([...answers].sort(), ["r1", "r1", "r2", "r2"], `round robin: ${answers.join(",")}`);
      const stats = tsvs(sock, "ipvsadm", "-Ln", "--stats");
      const dr = stats.slice(stats.indexOf(DR_VIP));
      for (const rip of ["198.18.43.11:80", "198.18.44.12:80"]) {
        const line = dr.split("\n").find((l) => l.includes(rip)) ?? "";
        assert.equal(Number(line.trim().split(/\s+/)[2]), 2, `${rip} conns:\n${stats}`);
      }
    });

    it("the director's own traffic on the same interface reaches its kernel (XDP_PASS)", async () => {
      const ping = nsExecStatus(NS.c, ["ping", "-c", "3", "-i", "0.2", "-W", "1", "198.18.42.254"]);
      assert.equal(ping.status, 0, ping.stdout);
      // A TCP service of the director host itself, on the served interface's address.
      await startListener(
        NS.d,
        `require("net").createServer((s)=>s.end("host\\n")).listen(2222,"198.18.42.254",()=>console.log("up"))`,
        children,
        "host listener",
      );
      const r = nsExecStatus(NS.c, ["socat", "-T", "2", "-", "TCP:198.18.42.254:2222"]);
      assert.equal(r.stdout, "host\n", r.stderr);
    });

    it("the programs are gone once the daemon exits", async () => {
      daemon.proc.kill("SIGTERM");
      await daemon.exited;
      for (const i of [IF.d0, IF.d1, IF.d2])
        assert.doesNotMatch(ip("-n", NS.d, "link", "show", i), /prog\/xdp|\sxdp(generic)?\s/, i);
    });

    it("where native XDP is refused, generic mode serves (and leaves with a SIGKILLed daemon); several workers share the program", async () => {
      // A veth takes a native program only while its peer's MTU fits one page (veth_xdp_set: ERANGE).
      ip("-n", NS.c, "link", "set", IF.c0, "mtu", "9000");
      try {
        const d = await startDaemon(
          NS.d,
          ["--iface", IF.d0, "--iface", IF.d1, "--control", sock, "--io", "xdp"],
          children,
        );
        const st = JSON.parse(tsvs(sock, "status", "--json")) as { interfaces: { io: string }[] };
        assert.deepEqual(
          st.interfaces.map((i) => i.io),
          ["xdp-generic", "xdp-native"],
        );
        tsvs(sock, "ipvsadm", "-A", "-t", `${NAT_VIP}:80`, "-s", "rr");
        tsvs(sock, "ipvsadm", "-a", "-t", `${NAT_VIP}:80`, "-r", "198.18.43.11:80", "-m");
        assert.equal(curl(NAT_VIP), "r1", "NAT through a generic-mode program");
        // Killed outright: the bpf_links die with the process, the programs with them.
        d.proc.kill("SIGKILL");
        await d.exited;
        for (const i of [IF.d0, IF.d1])
          assert.doesNotMatch(
            ip("-n", NS.d, "link", "show", i),
            /prog\/xdp|\sxdp(generic)?\s/,
            `${i} after SIGKILL`,
          );
      } finally {
        ip("-n", NS.c, "link", "set", IF.c0, "mtu", "1500");
      }
      const w = await startDaemon(
        NS.d,
        ["--iface", IF.d0, "--iface", IF.d1, "--control", sock, "--io", "xdp", "--workers", "2"],
        children,
      );
      const st = JSON.parse(tsvs(sock, "status", "--json")) as { interfaces: { io: string }[] };
      assert.deepEqual(
        st.interfaces.map((i) => i.io),
        ["xdp-native", "xdp-native"],
      );
      assert.doesNotMatch(w.stderr(), /XDP not available/);
      // One program per interface for both workers (worker 0's), the other worker's sockets in its map.
      for (const i of [IF.d0, IF.d1]) assert.match(ip("-n", NS.d, "link", "show", i), /prog\/xdp/, i);
      tsvs(sock, "ipvsadm", "-A", "-t", `${NAT_VIP}:80`, "-s", "rr");
      tsvs(sock, "ipvsadm", "-a", "-t", `${NAT_VIP}:80`, "-r", "198.18.43.11:80", "-m");
      assert.equal(curl(NAT_VIP), "r1", "NAT with two workers on XDP");
      w.proc.kill("SIGTERM");
      assert.equal(await w.exited, 0, `a clean stop:\n${w.stderr().slice(-2000)}`);
      for (const i of [IF.d0, IF.d1])
        assert.doesNotMatch(
          ip("-n", NS.d, "link", "show", i),
          /prog\/xdp|\sxdp(generic)?\s/,
          `${i} after the stop`,
        );
    });
  },
);
