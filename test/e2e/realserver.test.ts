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
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
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
import {
  fileHas,
  jsPath,
  type ProcRef,
  procAlive,
  sleep,
  spawnInNs,
  stopProc,
  waitFor,
} from "../../src/lab/proc.js";
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

// The defect this guards against: a namespace deleted without a teardown leaves its state directory
// behind, and the kernel gives its inode number to a later namespace, which took the dead
// namespace's VIP, saved sysctls and decapsulator pid for its own. Reproduced for real: setup in a
// namespace, its decapsulator gone with it, a plain `ip netns del` (not delNetns, which would remove
// the directory), then namespaces made until one has the inode again; when the kernel hands out
// another (namespaces made meanwhile elsewhere), the directory is copied under the new inode, which
// is the same situation.
describe("state of a deleted namespace, its inode given to a new one", { skip, timeout: 60_000 }, () => {
  const old = `tsvs-rso${process.pid}`;
  const made: string[] = [];
  const keep = mkdtempSync(join(tmpdir(), "tsvs-rso-"));
  const copy = join(keep, "state");
  const procs: ProcRef[] = [];
  let oldDir = "";
  let oldCookie = "";
  let ns = "";
  let dir = "";
  let bystander: ProcRef | null = null;
  let how = "";

  const inode = (name: string): number => statSync(`/run/netns/${name}`).ino;
  const inNs = (...args: string[]) => nsExecStatus(ns, [process.execPath, CLI, ...args], 15_000);
  const nsSysctl = (key: string): string =>
    nsExec(ns, ["cat", `/proc/sys/${key.replaceAll(".", "/")}`]).trim();
  const nsLo = (): string[] =>
    (
      JSON.parse(nsExec(ns, ["ip", "-j", "-4", "addr", "show", "dev", "lo"])) as {
        addr_info: { local: string; prefixlen: number }[];
      }[]
    )[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`);
  /**
   * Removes d if it still is the dead namespace's: its inode may have gone to a namespace of
   * someone else's meanwhile, whose state is not ours to remove.
   */
  const removeDead = (d: string): void => {
    try {
      if (
        (JSON.parse(readFileSync(join(d, "netns.json"), "utf8")) as { cookie: string }).cookie !== oldCookie
      )
        return;
    } catch {
      return;
    }
    rmSync(d, { recursive: true, force: true });
  };
  /** The dead namespace's directory, as it was left, under the new namespace's inode. */
  const plant = (): void => {
    rmSync(dir, { recursive: true, force: true });
    cpSync(copy, dir, { recursive: true });
  };
  const addServerNs = (name: string): void => {
    addNetns(name);
    made.push(name);
  };
  const withEth0 = (name: string): void => {
    // A veth pair inside it (this kernel has no dummy driver): eth0 is the server's interface.
    nsExec(name, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"]);
    nsExec(name, ["ip", "addr", "add", `${RIP}/24`, "dev", "eth0"]);
    nsExec(name, ["ip", "link", "set", "eth0", "up"]);
  };

  before(async () => {
    delNetns(old);
    addNetns(old);
    withEth0(old);
    const s = nsExecStatus(
      old,
      [process.execPath, CLI, "setup", "--vip", VIP, "--method", "tun", "--decap", "user"],
      15_000,
    );
    assert.equal(s.status, 0, s.stderr);
    const ino = inode(old);
    oldDir = join(REALSERVER_STATE_ROOT, String(ino));
    oldCookie = (JSON.parse(readFileSync(join(oldDir, "netns.json"), "utf8")) as { cookie: string }).cookie;
    const decap = (JSON.parse(readFileSync(join(oldDir, "state.json"), "utf8")) as { decap: ProcRef }).decap;
    procs.push(decap);
    // Its processes keep a namespace alive: the dead namespace's decapsulator died with it.
    await stopProc(decap);
    ip("netns", "del", old);
    assert.ok(existsSync(join(oldDir, "state.json")), "a plain ip netns del leaves the state directory");
    cpSync(oldDir, copy, { recursive: true });

    // The kernel hands out the lowest free inode number (ida), once the deleted namespace is freed
    // (asynchronously): lower ones are kept to be filled, a higher one given back.
    for (let k = 0; k < 64 && ns === ""; k++) {
      const name = `tsvs-rsn${process.pid}-${k}`;
      addServerNs(name);
      const got = inode(name);
      if (got === ino) ns = name;
      else if (got > ino) {
        delNetns(name);
        made.pop();
        await sleep(50);
      }
    }
    if (ns === "") {
      ns = `tsvs-rsn${process.pid}-p`;
      addServerNs(ns);
    }
    dir = join(REALSERVER_STATE_ROOT, String(inode(ns)));
    how =
      dir === oldDir
        ? `the kernel gave ${ns} the dead namespace's inode ${ino}`
        : `no namespace got inode ${ino}: its directory planted under ${ns}'s`;
    if (dir !== oldDir) removeDead(oldDir);
    withEth0(ns);

    // What the operator of the new namespace has, and what a pid reused by another program looks
    // like at worst: alive with the start time recorded (procAlive alone would take it).
    nsExec(ns, ["ip", "addr", "add", `${VIP}/32`, "dev", "lo"]);
    nsExec(ns, ["sysctl", "-q", "-w", "net.ipv4.conf.all.arp_announce=1"]);
    bystander = spawnInNs(
      ns,
      [process.execPath, "-e", "setTimeout(() => {}, 120000)"],
      join(keep, "by.log"),
      "bystander",
    );
    procs.push(bystander);
    const st = JSON.parse(readFileSync(join(copy, "state.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(copy, "state.json"), JSON.stringify({ ...st, decap: bystander }));
  });

  after(async () => {
    for (const p of procs) await stopProc(p);
    for (const n of made) delNetns(n);
    delNetns(old);
    // The new namespace's directory went with it (delNetns); the dead one's is left if a run stopped early.
    if (oldDir !== "") removeDead(oldDir);
    rmSync(keep, { recursive: true, force: true });
  });

  it("teardown signals no pid of it, leaves the VIP and sysctls alone, and removes it", (t) => {
    t.diagnostic(how);
    plant();
    const r = inNs("teardown");
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /removed the state in .* of a deleted network namespace that had this one's inode/,
    );
    assert.doesNotMatch(r.stdout, /stopped|restored|removed 198/);
    assert.ok(procAlive(bystander as ProcRef), "the pid named by the stale state was not signalled");
    assert.ok(nsLo().includes(`${VIP}/32`), "the VIP the operator put on lo stays");
    assert.equal(nsSysctl("net.ipv4.conf.all.arp_announce"), "1", "the stale saved value was not restored");
    assert.equal(existsSync(dir), false, "the stale directory is gone");
  });

  it("doctor reports nothing configured by setup, with a note that stale state was removed", () => {
    plant();
    const d = inNs("doctor", "--vip", VIP, "--method", "tun");
    assert.match(d.stdout, /info\s+stale state removed\n\s+removed the state in/);
    assert.match(d.stdout, /IPIP decapsulator not running/);
    assert.ok(!d.stdout.includes(`pid ${(bystander as ProcRef).pid}`), d.stdout);
    assert.equal(existsSync(dir), false, "the stale directory is gone");
  });

  it("setup starts fresh: saves this namespace's values under its own cookie; teardown restores them", () => {
    plant();
    const s = inNs("setup", "--vip", VIP, "--method", "dr");
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stdout, /removed the state in .* of a deleted network namespace/);
    const st = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as {
      saved: Record<string, number>;
      vipAdded: boolean;
      decap: ProcRef | null;
    };
    assert.equal(
      st.saved["net.ipv4.conf.all.arp_announce"],
      1,
      "the value found here, not the dead namespace's",
    );
    assert.equal(st.vipAdded, false, "the VIP was there before setup");
    assert.equal(st.decap, null);
    const id = JSON.parse(readFileSync(join(dir, "netns.json"), "utf8")) as { cookie: string };
    assert.notEqual(id.cookie, oldCookie, "the new namespace's cookie is recorded");
    assert.equal(inNs("teardown").status, 0);
    assert.equal(nsSysctl("net.ipv4.conf.all.arp_announce"), "1");
    assert.ok(nsLo().includes(`${VIP}/32`), "setup did not add the VIP, so teardown keeps it");
    assert.ok(procAlive(bystander as ProcRef));
  });

  it("live state: teardown signals a recorded decapsulator pid only while it still is the decapsulator", () => {
    const s = inNs("setup", "--vip", VIP, "--method", "dr");
    assert.equal(s.status, 0, s.stderr);
    const file = join(dir, "state.json");
    const st = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...st, decap: bystander }));
    const r = inNs("teardown");
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`pid ${(bystander as ProcRef).pid} is no longer the IPIP decapsulator: not signalled`),
    );
    assert.ok(procAlive(bystander as ProcRef));
  });

  it("state of an older tsvs (no netns.json) whose decapsulator runs here is taken, stamped, and undone", async () => {
    const s = inNs("setup", "--vip", VIP, "--method", "tun", "--decap", "user");
    assert.equal(s.status, 0, s.stderr);
    const decap = (JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as { decap: ProcRef }).decap;
    procs.push(decap);
    rmSync(join(dir, "netns.json"));
    // Only the decapsulator's pid to go by (a VIP on lo would be enough too).
    nsExec(ns, ["ip", "addr", "del", `${VIP}/32`, "dev", "lo"]);
    const d = inNs("doctor", "--vip", VIP, "--method", "tun");
    assert.match(d.stdout, /info\s+state of an earlier tsvs/);
    assert.match(d.stdout, new RegExp(`IPIP decapsulator pid ${decap.pid}`));
    assert.ok(existsSync(join(dir, "netns.json")), "the identity is added");
    const t = inNs("teardown");
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout, new RegExp(`stopped the IPIP decapsulator \\(pid ${decap.pid}\\)`));
    assert.ok(await waitFor(() => !procAlive(decap), 3000), "the decapsulator is gone");
    assert.equal(existsSync(dir), false);
  });
});
