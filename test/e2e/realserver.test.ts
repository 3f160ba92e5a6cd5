// `tsvs realserver` in a network namespace of this machine's kernel:
//
//   host namespace: veth tsvsq<pid36> (no address)  ⇄  eth0 198.18.1.11/24 in ns tsvs-rs<pid>
//
// setup/doctor/teardown for DR, the doctor's diagnosis of a VIP on lo with a /24 mask, and the TUN
// decapsulator: an IPIP datagram built by hand (test/support/packet-builder.ts) and sent from the
// host end with an AF_PACKET socket reaches a UDP socket listening on the VIP, whose answer comes
// back out of eth0 — and the kernel sends no ICMP protocol-unreachable for the tunnel packet.
// Needs root and iproute2: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { openPacketSocket } from "../../src/io/afpacket.js";
import {
  addNetns,
  delNetns,
  ip,
  linkMac,
  nsExec,
  nsExecStatus,
  REALSERVER_STATE_ROOT,
} from "../../src/io/netns.js";
import { fileHas, jsPath, type ProcRef, spawnInNs, stopProc, waitFor } from "../../src/lab/proc.js";
import { e2eSkip } from "../support/e2e-env.js";
import {
  ETH_P_IP,
  ethFrame,
  ip as ipv4,
  ipv4Datagram,
  mac,
  PROTO_ICMP,
  PROTO_IPIP,
  PROTO_UDP,
  udpDatagram,
} from "../support/packet-builder.js";

const skip = e2eSkip("realserver e2e");

const CLI = fileURLToPath(new URL("../../src/cli/realserver.js", import.meta.url));
const NS = `tsvs-rs${process.pid}`;
const HOST_IF = `tsvsq${process.pid.toString(36)}`;
const RIP = "198.18.1.11";
const DIP = "198.18.1.1";
const VIP = "198.18.0.100";
const CIP = "198.18.1.50";

function rs(...args: string[]): { status: number; stdout: string; stderr: string } {
  return nsExecStatus(NS, [process.execPath, CLI, ...args], 15_000);
}

function sysctl(key: string): string {
  return nsExec(NS, ["cat", `/proc/sys/${key.replaceAll(".", "/")}`]).trim();
}

function loAddrs(): string[] {
  const info = JSON.parse(nsExec(NS, ["ip", "-j", "-4", "addr", "show", "dev", "lo"])) as {
    addr_info: { local: string; prefixlen: number }[];
  }[];
  return info[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`);
}

describe("tsvs realserver in a namespace", { skip, timeout: 40_000 }, () => {
  const tmp = mkdtempSync(join(tmpdir(), "tsvs-rs-"));
  let server: ProcRef | null = null;

  before(() => {
    delNetns(NS);
    addNetns(NS);
    ip("link", "add", HOST_IF, "type", "veth", "peer", "name", "eth0", "netns", NS);
    nsExec(NS, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
    ip("-n", NS, "addr", "add", `${RIP}/24`, "dev", "eth0");
    ip("-n", NS, "link", "set", "eth0", "up");
    ip("link", "set", HOST_IF, "up");
  });

  after(async () => {
    if (server !== null) await stopProc(server);
    rs("teardown");
    delNetns(NS); // takes the host end of the veth with it
    rmSync(tmp, { recursive: true, force: true });
  });

  it("doctor fails on an unprepared server and names every missing setting", () => {
    const r = rs("doctor", "--vip", VIP, "--method", "dr");
    assert.equal(r.status, 1);
    assert.match(r.stdout, /FAIL\s+arp_ignore all=0 eth0=0 → 0\n\s+reply for any local target address/);
    assert.match(r.stdout, /FAIL\s+arp_announce all=0 eth0=0 → 0/);
    assert.match(r.stdout, new RegExp(`FAIL\\s+VIP ${VIP.replaceAll(".", "\\.")} not on lo`));
    assert.match(r.stdout, /3 problems found/);
  });

  it("setup for DR sets arp_ignore=1, arp_announce=2, VIP/32 on lo; doctor passes; teardown reverts", () => {
    const s = rs("setup", "--vip", VIP, "--method", "dr");
    assert.equal(s.status, 0, s.stderr);
    for (const scope of ["all", "eth0"]) {
      assert.equal(sysctl(`net.ipv4.conf.${scope}.arp_ignore`), "1");
      assert.equal(sysctl(`net.ipv4.conf.${scope}.arp_announce`), "2");
    }
    assert.ok(loAddrs().includes(`${VIP}/32`));
    const d = rs("doctor", "--vip", VIP, "--method", "dr");
    assert.equal(d.status, 0, d.stdout);
    assert.match(
      d.stdout,
      /ok\s+arp_ignore all=1 eth0=1 → 1\n\s+reply only if the target address is configured on the incoming interface/,
    );
    assert.match(d.stdout, /ok\s+arp_announce all=2 eth0=2 → 2/);
    assert.match(d.stdout, /all good/);
    assert.equal(rs("teardown").status, 0);
    for (const scope of ["all", "eth0"]) {
      assert.equal(sysctl(`net.ipv4.conf.${scope}.arp_ignore`), "0");
      assert.equal(sysctl(`net.ipv4.conf.${scope}.arp_announce`), "0");
    }
    assert.ok(!loAddrs().includes(`${VIP}/32`));
  });

  it("doctor explains why a VIP on lo with a /24 mask breaks director↔server traffic; setup replaces it by /32", () => {
    const vipInLan = "198.18.1.100";
    nsExec(NS, ["ip", "addr", "add", `${vipInLan}/24`, "dev", "lo"]);
    const d = rs("doctor", "--vip", vipInLan, "--method", "dr");
    assert.equal(d.status, 1);
    assert.match(d.stdout, /FAIL\s+VIP 198\.18\.1\.100\/24 on lo: mask wider than \/32/);
    assert.match(d.stdout, /local 198\.18\.1\.0\/24 dev lo/);
    assert.match(d.stdout, /overlaps the RIP network \(eth0 198\.18\.1\.0\/24\)/);
    assert.match(d.stdout, /director↔real-server traffic/);
    const s = rs("setup", "--vip", vipInLan, "--method", "dr");
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stdout, /removed 198\.18\.1\.100\/24 from lo/);
    assert.ok(loAddrs().includes(`${vipInLan}/32`));
    assert.equal(rs("doctor", "--vip", vipInLan, "--method", "dr").status, 0);
    assert.equal(rs("teardown").status, 0);
  });

  it("TUN: a hand-built IPIP datagram to the RIP reaches a UDP socket on the VIP, which answers; no ICMP error", async () => {
    const log = join(tmp, "server.log");
    server = spawnInNs(
      NS,
      [process.execPath, jsPath("src/lab/server.js"), "--name", "r1", "--udp", "5353"],
      log,
      "udp",
    );
    assert.ok(await waitFor(() => fileHas(log, "ready"), 5000), "UDP server ready");
    const s = rs("setup", "--vip", VIP, "--method", "tun");
    assert.equal(s.status, 0, s.stderr);
    assert.equal(sysctl("net.ipv4.conf.all.rp_filter"), "0");
    assert.equal(sysctl("net.ipv4.conf.tsvsipip0.rp_filter"), "0");
    // The server binds the VIP once setup has put it on lo (so that it answers from the VIP).
    assert.ok(await waitFor(() => fileHas(log, `udp ${VIP}:5353`), 3000), "UDP server bound to the VIP");

    const hostMacStr = (JSON.parse(ip("-j", "link", "show", "dev", HOST_IF)) as { address: string }[])[0]
      .address;
    const hostMac = mac(hostMacStr);
    const nsMac = mac(linkMac(NS, "eth0"));
    // The answer goes to the (made-up) client address: tell the server where it lives.
    nsExec(NS, ["ip", "neigh", "replace", CIP, "lladdr", hostMacStr, "dev", "eth0"]);

    const inner = ipv4Datagram({
      src: ipv4(CIP),
      dst: ipv4(VIP),
      proto: PROTO_UDP,
      payload: udpDatagram(ipv4(CIP), ipv4(VIP), { sport: 40000, dport: 5353, payload: Buffer.from("who?") }),
    });
    const outer = ipv4Datagram({
      src: ipv4(DIP),
      dst: ipv4(RIP),
      proto: PROTO_IPIP,
      payload: inner,
      df: true,
    });
    const frame = ethFrame(nsMac, hostMac, ETH_P_IP, outer);

    const sock = openPacketSocket(HOST_IF, { batch: 16 });
    let answer = "";
    let icmpErrors = 0;
    try {
      assert.ok(sock.send(frame, 0, frame.length));
      sock.flush();
      const deadline = Date.now() + 4000;
      while (answer === "" && Date.now() < deadline) {
        const n = sock.recvBatch(100);
        for (let i = 0; i < n; i++) {
          const f = sock.frame(i);
          if (((f[12] << 8) | f[13]) !== ETH_P_IP) continue;
          const ihl = (f[14] & 15) * 4;
          const src = f.subarray(26, 30).join(".");
          const dst = f.subarray(30, 34).join(".");
          if (f[23] === PROTO_ICMP) icmpErrors++;
          if (f[23] === PROTO_UDP && src === VIP && dst === CIP) {
            const l4 = 14 + ihl;
            assert.equal((f[l4] << 8) | f[l4 + 1], 5353, "from the VIP's port");
            assert.equal((f[l4 + 2] << 8) | f[l4 + 3], 40000, "to the client's port");
            const ulen = (f[l4 + 4] << 8) | f[l4 + 5];
            answer = Buffer.from(f.subarray(l4 + 8, l4 + ulen)).toString();
          }
        }
      }
    } finally {
      sock.close();
    }
    assert.equal(answer, "r1\n", "the UDP server on the VIP answered the decapsulated datagram");
    assert.equal(icmpErrors, 0, "no ICMP protocol-unreachable for the IPIP datagram");

    // The decapsulator's counters reach the doctor (written within its 1 s receive timeout).
    const path = `/run/tsvs/realserver/${statSync(`/run/netns/${NS}`).ino}/decap-stats.json`;
    assert.ok(
      await waitFor(() => {
        try {
          return (JSON.parse(readFileSync(path, "utf8")) as { delivered: number }).delivered >= 1;
        } catch {
          return false;
        }
      }, 3000),
      "decap counted the delivery",
    );
    const d = rs("doctor", "--vip", VIP, "--method", "tun");
    assert.equal(d.status, 0, d.stdout);
    assert.match(
      d.stdout,
      /ok\s+IPIP decapsulator pid \d+, tsvsipip0 present\n\s+user-space decapsulation into tsvsipip0; received 1, delivered 1/,
    );

    assert.equal(rs("teardown").status, 0);
    assert.equal(
      nsExecStatus(NS, ["ip", "link", "show", "dev", "tsvsipip0"]).status !== 0,
      true,
      "tun device gone",
    );
  });
});

describe("a namespace's realserver state goes with the namespace", { skip, timeout: 30_000 }, () => {
  const ns = `tsvs-rsg${process.pid}`;
  after(() => delNetns(ns));

  it("delNetns removes /run/tsvs/realserver/<inode> (a later namespace may be given the inode)", () => {
    delNetns(ns);
    addNetns(ns);
    // A veth pair inside it (this kernel has no dummy driver): eth0 is the server's interface.
    nsExec(ns, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"]);
    nsExec(ns, ["ip", "addr", "add", `${RIP}/24`, "dev", "eth0"]);
    nsExec(ns, ["ip", "link", "set", "eth0", "up"]);
    const r = nsExecStatus(ns, [process.execPath, CLI, "setup", "--vip", VIP, "--method", "dr"], 15_000);
    assert.equal(r.status, 0, r.stderr);
    const dir = join(REALSERVER_STATE_ROOT, String(statSync(`/run/netns/${ns}`).ino));
    assert.ok(existsSync(join(dir, "state.json")), `setup keeps its state in ${dir}`);
    delNetns(ns);
    assert.equal(existsSync(dir), false, "the state directory is gone");
  });
});
