// issue-10: a real server with two interfaces, one toward the director and one toward the client
// (its default route), behind a real tsvs director, for TUN and DR:
//
//   client C  c0 198.18.20.2/24 ── d0 198.18.20.1/24  director D (tsvs daemon)
//             │                     d1 198.18.21.1/24 (DIP) ── eth0 198.18.21.11/24  real server R
//             c1 198.18.22.2/24 ─────────────────────────────── eth1 198.18.22.11/24 (default route)
//
// The client routes the VIP via the director; the real server answers straight back through eth1.
// Veth offloads stay as veth has them by default. The defect: setup took the default route's
// interface (eth1) as "the RIP interface": the decapsulator accepted only 198.18.22.11 and dropped
// every tunnelled packet (sent to 198.18.21.11), and in DR the strict rp_filter of a distribution
// dropped every client packet arriving on eth0, while doctor said "all good". Here doctor must fail
// in both, and setup (told nothing, or --director) must make traffic flow.
// Needs root, iproute2, nftables (the daemon's ingress guard) and curl: failed on CI when missing.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { delNetns, freshNetns, ip, nsExec, nsExecStatus } from "../../src/io/netns.js";
import { tsvsArgv } from "../../src/lab/daemon.js";
import {
  fileHas,
  jsPath,
  type ProcRef,
  procAlive,
  spawnInNs,
  stopProc,
  waitFor,
} from "../../src/lab/proc.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("realserver multihomed e2e", ["curl", "nftables"]);

const CLI = fileURLToPath(new URL("../../src/cli/realserver.js", import.meta.url));
const TAG = process.pid.toString(36);
const C = `tsvsmh${TAG}c`;
const D = `tsvsmh${TAG}d`;
const R = `tsvsmh${TAG}r`;
const VIP = "198.18.0.100";
const CIP = "198.18.20.2";
const DIR_CLIENT = "198.18.20.1";
const DIP = "198.18.21.1";
const RIP = "198.18.21.11";
const RS_CLIENT_SIDE = "198.18.22.11";
const C_RS_SIDE = "198.18.22.2";

function rs(...args: string[]): { status: number; stdout: string; stderr: string } {
  return nsExecStatus(R, [process.execPath, CLI, ...args], 20_000);
}

function sysctl(ns: string, key: string, value?: number): string {
  if (value !== undefined) nsExec(ns, ["sysctl", "-q", "-w", `${key}=${value}`]);
  return nsExec(ns, ["cat", `/proc/sys/${key.replaceAll(".", "/")}`]).trim();
}

/** One datagram to VIP:53 from a new socket in the client; the answer, or "" after 1.5 s. */
function udpAsk(): string {
  const src = `const s=require("dgram").createSocket("udp4");const t=setTimeout(()=>s.close(),1500);
s.on("message",(m)=>{process.stdout.write(String(m));clearTimeout(t);s.close()});s.send("who?",53,"${VIP}");`;
  return nsExecStatus(C, [process.execPath, "-e", src], 10_000).stdout;
}

function curl(): { status: number; stdout: string } {
  return nsExecStatus(C, ["curl", "-s", "--max-time", "2", `http://${VIP}/`], 10_000);
}

interface Stats {
  follow: string | null;
  addresses: string[];
  received: number;
  delivered: number;
  notLocal: number;
  sources: string[];
}

function decapStats(): Stats | null {
  try {
    const path = `/run/tsvs/realserver/${statSync(`/run/netns/${R}`).ino}/decap-stats.json`;
    return JSON.parse(readFileSync(path, "utf8")) as Stats;
  } catch {
    return null;
  }
}

describe(
  "issue-10: real server with a link toward the director and one toward the client",
  { skip, timeout: 120_000 },
  () => {
    const tmp = mkdtempSync(join(tmpdir(), "tsvs-rsmh-"));
    const sock = join(tmp, "ctl.sock");
    let daemon: ProcRef | null = null;
    let server: ProcRef | null = null;
    const slog = join(tmp, "server.log");

    function ipvsadm(...args: string[]): void {
      const r = nsExecStatus(D, tsvsArgv(["ipvsadm", "--control", sock, ...args]), 15_000);
      assert.equal(r.status, 0, `ipvsadm ${args.join(" ")}: ${r.stderr}${r.stdout}`);
    }

    /** TCP VIP:80 and UDP VIP:53 to the real server at rip, by method (-i TUN, -g DR). */
    function services(flag: "-i" | "-g", rip = RIP): void {
      ipvsadm("-C");
      ipvsadm("-A", "-t", `${VIP}:80`, "-s", "rr");
      ipvsadm("-a", "-t", `${VIP}:80`, "-r", `${rip}:80`, flag);
      ipvsadm("-A", "-u", `${VIP}:53`, "-s", "rr");
      ipvsadm("-a", "-u", `${VIP}:53`, "-r", `${rip}:53`, flag);
    }

    function veth(aNs: string, aIf: string, aCidr: string, bNs: string, bIf: string, bCidr: string): void {
      ip("link", "add", aIf, "netns", aNs, "type", "veth", "peer", "name", bIf, "netns", bNs);
      ip("-n", aNs, "addr", "add", aCidr, "dev", aIf);
      ip("-n", bNs, "addr", "add", bCidr, "dev", bIf);
      ip("-n", aNs, "link", "set", aIf, "up");
      ip("-n", bNs, "link", "set", bIf, "up");
    }

    before(async () => {
      freshNetns([C, D, R]);
      veth(C, "c0", `${CIP}/24`, D, "d0", `${DIR_CLIENT}/24`);
      veth(D, "d1", `${DIP}/24`, R, "eth0", `${RIP}/24`);
      veth(C, "c1", `${C_RS_SIDE}/24`, R, "eth1", `${RS_CLIENT_SIDE}/24`);
      ip("-n", C, "route", "add", "default", "via", DIR_CLIENT);
      ip("-n", R, "route", "add", "default", "via", C_RS_SIDE);
      // The client takes answers from the VIP on c1 although it routes the VIP via c0.
      sysctl(C, "net.ipv4.conf.all.rp_filter", 0);
      sysctl(C, "net.ipv4.conf.c1.rp_filter", 0);

      server = spawnInNs(
        R,
        [process.execPath, jsPath("src/lab/server.js"), "--name", "r1", "--http", "80", "--udp", "53"],
        slog,
        "server",
      );
      assert.ok(
        await waitFor(() => fileHas(slog, "ready") || !procAlive(server as ProcRef), 5000),
        "server ready",
      );
      const dlog = join(tmp, "daemon.log");
      daemon = spawnInNs(
        D,
        tsvsArgv(["daemon", "--iface", "d0", "--iface", "d1", "--control", sock]),
        dlog,
        "daemon",
      );
      assert.ok(
        await waitFor(() => existsSync(sock) || !procAlive(daemon as ProcRef), 8000),
        `daemon control socket: ${existsSync(dlog) ? readFileSync(dlog, "utf8") : ""}`,
      );
      services("-i");
    });

    after(async () => {
      if (daemon !== null) await stopProc(daemon);
      if (server !== null) await stopProc(server);
      rs("teardown");
      for (const ns of [C, D, R]) delNetns(ns);
      rmSync(tmp, { recursive: true, force: true });
    });

    it("TUN, the defect: a decapsulator held to the client-side address delivers nothing, and doctor fails saying so", async () => {
      // What setup used to do on this server: the default route's interface (eth1) as the RIP's.
      const s = rs("setup", "--vip", VIP, "--method", "tun", "--tunnel-local", RS_CLIENT_SIDE);
      assert.equal(s.status, 0, s.stderr);
      // The UDP server binds the VIP once setup has put it on lo (so that it answers from the VIP);
      // the socket stays bound across later teardowns and setups.
      assert.ok(await waitFor(() => fileHas(slog, `udp ${VIP}:53`), 3000), "UDP server bound to the VIP");
      assert.equal(udpAsk(), "", "no answer through the tunnel");
      assert.ok(
        await waitFor(() => (decapStats()?.notLocal ?? 0) >= 1, 3000),
        `the datagram was counted as not local: ${JSON.stringify(decapStats())}`,
      );
      const d = rs("doctor", "--vip", VIP, "--method", "tun");
      assert.equal(d.status, 1, d.stdout);
      // The tunnel source seen leads doctor to eth0, whose address the decapsulator refuses.
      assert.match(
        d.stdout,
        /info\s+director-facing interface eth0\n\s+RIP 198\.18\.21\.11\/24; .*route to the tunnel sources seen: 198\.18\.21\.1 via eth0/,
      );
      assert.match(d.stdout, /FAIL\s+decapsulator does not accept 198\.18\.21\.11/);
      assert.match(
        d.stdout,
        /FAIL\s+tunnelled packets received but not delivered: (\d+) of \1\n\s+\1 addressed to 198\.18\.21\.11 that is not among 198\.18\.22\.11; tunnel sources 198\.18\.21\.1/,
      );
      assert.doesNotMatch(d.stdout, /all good/);
    });

    it("TUN, fixed: setup told nothing accepts every local address; UDP and HTTP through the director are answered; doctor passes", async () => {
      const s = rs("setup", "--vip", VIP, "--method", "tun");
      assert.equal(s.status, 0, s.stderr);
      // The director-facing interface comes from the traffic the earlier decapsulator saw.
      assert.match(
        s.stdout,
        /director-facing interface eth0: route to the tunnel sources seen: 198\.18\.21\.1 via eth0/,
      );
      assert.match(s.stdout, /net\.ipv4\.conf\.eth0\.rp_filter = 0/);
      assert.match(s.stdout, /accepting every local address/);
      assert.equal(udpAsk(), "r1\n");
      const h = curl();
      assert.equal(h.status, 0, `curl exit ${h.status}`);
      assert.equal(h.stdout, "r1\n");
      assert.ok(await waitFor(() => (decapStats()?.delivered ?? 0) >= 2, 3000), JSON.stringify(decapStats()));
      const st = decapStats();
      assert.equal(st?.notLocal, 0);
      assert.deepEqual(st?.sources, [DIP]);
      for (const args of [[], ["--director", DIP]]) {
        const d = rs("doctor", "--vip", VIP, "--method", "tun", ...args);
        assert.equal(d.status, 0, d.stdout);
        assert.match(
          d.stdout,
          /ok\s+IPIP decapsulator pid \d+, tsvsipip0 present\n\s+user-space decapsulation into tsvsipip0; received (\d+), delivered \1, bad 0, not local 0, write errors 0; accepts every local address/,
        );
        assert.match(d.stdout, /director-facing interface eth0/);
        assert.match(d.stdout, /ok\s+arp_ignore all=1 eth1=\d → 1/);
        assert.match(d.stdout, /all good\n$/);
      }
    });

    it("TUN: an address added after the decapsulator started is followed and tunnelled to", async () => {
      const extra = "198.18.21.99";
      ip("-n", R, "addr", "add", `${extra}/24`, "dev", "eth0");
      try {
        // rtnetlink tells the decapsulator before any datagram comes for the new address.
        assert.equal(decapStats()?.follow, "rtnetlink");
        assert.ok(
          await waitFor(() => decapStats()?.addresses.includes(extra) === true, 3000),
          `address list followed: ${JSON.stringify(decapStats())}`,
        );
        services("-i", extra);
        assert.equal(
          udpAsk(),
          "r1\n",
          `tunnelled to the new address and answered: ${JSON.stringify(decapStats())}`,
        );
        assert.ok(
          await waitFor(() => (decapStats()?.delivered ?? 0) >= 3, 3000),
          JSON.stringify(decapStats()),
        );
        assert.equal(decapStats()?.notLocal, 0);
      } finally {
        services("-i");
        ip("-n", R, "addr", "del", `${extra}/24`, "dev", "eth0");
      }
    });

    it("DR, the defect: strict rp_filter and setup on the client-side interface drop every client packet; doctor fails naming eth0", () => {
      assert.equal(rs("teardown").status, 0);
      services("-g");
      // Strict reverse-path filtering, as some distributions ship it.
      sysctl(R, "net.ipv4.conf.all.rp_filter", 1);
      const s = rs("setup", "--vip", VIP, "--method", "dr", "--iface", "eth1");
      assert.equal(s.status, 0, s.stderr);
      assert.equal(udpAsk(), "", "dropped by rp_filter on eth0");
      assert.notEqual(curl().status, 0, "no HTTP answer");
      const d = rs("doctor", "--vip", VIP, "--method", "dr");
      assert.equal(d.status, 1, d.stdout);
      assert.match(d.stdout, /info\s+director-facing interface eth1\n\s+.*given with --iface/);
      assert.match(
        d.stdout,
        /FAIL\s+rp_filter all=1 eth0=0 → 1\n\s+strict: .*client addresses are routed via eth1.*the kernel has dropped \d+ packets by rp_filter/,
      );
      const dd = rs("doctor", "--vip", VIP, "--method", "dr", "--director", DIP);
      assert.equal(dd.status, 1, dd.stdout);
      assert.match(
        dd.stdout,
        /info\s+director-facing interface eth0\n\s+.*route to the director: 198\.18\.21\.1 via eth0/,
      );
      assert.match(dd.stdout, /FAIL\s+rp_filter all=1 eth0=0 → 1/);
    });

    it("DR, fixed: setup --director sets loose rp_filter on eth0; traffic is answered; doctor passes with what setup was given", () => {
      assert.equal(rs("teardown").status, 0);
      assert.equal(
        sysctl(R, "net.ipv4.conf.all.rp_filter"),
        "1",
        "teardown restored the distribution's value",
      );
      const s = rs("setup", "--vip", VIP, "--method", "dr", "--director", DIP);
      assert.equal(s.status, 0, s.stderr);
      assert.match(s.stdout, /net\.ipv4\.conf\.eth0\.rp_filter = 2 \(clients are routed via eth1/);
      assert.equal(sysctl(R, "net.ipv4.conf.eth0.rp_filter"), "2");
      assert.equal(sysctl(R, "net.ipv4.conf.eth0.arp_ignore"), "1");
      assert.equal(udpAsk(), "r1\n");
      const h = curl();
      assert.equal(h.status, 0, `curl exit ${h.status}`);
      assert.equal(h.stdout, "r1\n");
      const d = rs("doctor", "--vip", VIP, "--method", "dr");
      assert.equal(d.status, 0, d.stdout);
      assert.match(d.stdout, /ok\s+rp_filter all=1 eth0=2 → 2/);
      assert.match(
        d.stdout,
        /ok\s+rp_filter all=1 eth1=0 → 1\n\s+strict: .*; clients are routed through eth1/,
      );
      assert.match(d.stdout, /all good\n$/);
    });

    it("DR, setup told nothing: every interface is treated as director-facing; traffic is answered, doctor warns to give --director", () => {
      assert.equal(rs("teardown").status, 0);
      const s = rs("setup", "--vip", VIP, "--method", "dr");
      assert.equal(s.status, 0, s.stderr);
      assert.match(s.stdout, /director-facing interface eth0, eth1: eth0, eth1 all carry IPv4/);
      assert.equal(sysctl(R, "net.ipv4.conf.eth0.rp_filter"), "2");
      assert.equal(sysctl(R, "net.ipv4.conf.eth1.rp_filter"), "0", "clients are routed via eth1: left alone");
      assert.equal(udpAsk(), "r1\n");
      const d = rs("doctor", "--vip", VIP, "--method", "dr");
      assert.equal(d.status, 0, d.stdout);
      assert.match(d.stdout, /warn\s+director-facing interface eth0\n.*give --director DIP/);
      assert.match(d.stdout, /all good \(2 warnings\)\n$/);
      assert.equal(rs("teardown").status, 0);
    });
  },
);
