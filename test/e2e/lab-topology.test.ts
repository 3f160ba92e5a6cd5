// `tsvs lab` on this machine's kernel: the namespaces, links and routes of docs/lab.md with their
// real-server applications (Node server and nginx), veth offloads left as veth has them (or off
// with --offloads off), then the daemon serving the VIP through the lab and answering `ip netns
// exec P-d tsvs ipvsadm -Ln` without --control (lab.sock a link to its socket), and a teardown that
// leaves nothing behind, also after a "crash" (state file lost).
// Names use the prefix tsvs-lt<pid>; addresses are the lab's fixed ones.
// Needs root and iproute2 (+ curl): skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { request } from "../../src/daemon/control.js";
import { namespacesWith, nsExec, nsExecStatus } from "../../src/io/netns.js";
import { tsvsArgv, tsvsEntry } from "../../src/lab/daemon.js";
import { countResponses } from "../../src/lab/demo.js";
import { labStatus, labUp, realserverArgv } from "../../src/lab/lab.js";
import { ensurePackages } from "../../src/lab/packages.js";
import { procAlive } from "../../src/lab/proc.js";
import { nginxAvailable } from "../../src/lab/servers.js";
import { LAB_ADDR, LAB_ADDR6, type LabNames, labDown, labNames, readState } from "../../src/lab/topology.js";
import { e2eSkip, skipOrFail } from "../support/e2e-env.js";

const skip = e2eSkip("lab e2e", ["curl", "ethtool"]);

const names: LabNames = labNames(`tsvs-lt${process.pid}`);
const tmp = mkdtempSync(join(tmpdir(), "tsvs-lt-"));

function labNamespaces(): string[] {
  return namespacesWith(names.prefix);
}

function curl(ns: string, url: string): { status: number; body: string } {
  const r = nsExecStatus(ns, ["curl", "-s", "--max-time", "3", url], 10_000);
  return { status: r.status, body: r.stdout };
}

/** Sends one UDP datagram from inside ns and returns the answer ("" on timeout). */
function udpAsk(ns: string, addr: string, port: number): string {
  const src = `const s=require("dgram").createSocket("udp4");const t=setTimeout(()=>{s.close()},2000);
s.on("message",(m)=>{process.stdout.write(String(m));clearTimeout(t);s.close()});s.send("who?",${port},"${addr}");`;
  return nsExecStatus(ns, [process.execPath, "-e", src], 10_000).stdout;
}

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i & 0xff;
  return b;
}

/** Every server answers its name on 80 and 8080, /bytes/N with the pattern, and UDP 53. */
function checkServers(fromNs: string): void {
  for (const s of names.servers) {
    for (const port of [80, 8080]) {
      const r = curl(fromNs, `http://${s.rip}:${port}/`);
      assert.equal(r.status, 0, `${s.name} ${s.rip}:${port} from ${fromNs}`);
      assert.equal(r.body, `${s.name}\n`);
    }
    const file = join(tmp, `${s.name}.bin`);
    const url = `http://${s.rip}/bytes/100000`;
    const big = nsExecStatus(fromNs, ["curl", "-s", "--max-time", "5", "-o", file, url], 10_000);
    assert.equal(big.status, 0);
    assert.ok(readFileSync(file).equals(pattern(100_000)), `${s.name} /bytes/100000 is the pattern`);
    assert.equal(udpAsk(fromNs, s.rip, 53), `${s.name}\n`, `${s.name} UDP 53`);
  }
}

/** `ethtool -k IF` in ns: feature name → "on"/"off" (the "[fixed]" note dropped). */
function features(ns: string, ifname: string): Record<string, string> {
  const out = nsExec(ns, ["ethtool", "-k", ifname]);
  const f: Record<string, string> = {};
  for (const m of out.matchAll(/^\s*([a-z0-9-]+): (on|off)/gm)) f[m[1]] = m[2];
  return f;
}

function assertGone(pids: number[]): void {
  assert.deepEqual(labNamespaces(), [], "no namespace of the lab is left");
  assert.equal(existsSync(names.runDir), false, "the run directory is removed");
  for (const pid of pids) assert.equal(procAlive({ pid, start: 0, what: "" }), false, `pid ${pid} is gone`);
}

describe("tsvs lab topology, servers and teardown", { skip, timeout: 60_000 }, () => {
  after(async () => {
    await labDown(names);
    rmSync(tmp, { recursive: true, force: true });
  });

  it("builds the lab with Node servers that answer HTTP 80/8080, /bytes/N and UDP 53 on every RIP", async () => {
    const st = await labUp(names, { method: "nat", servers: "node", daemon: false });
    assert.equal(st.servers, "node");
    const status = labStatus(names);
    assert.equal(status.up, true);
    assert.ok(status.procs.every((p) => p.alive));
    assert.match(status.addresses[names.director], /eth0 198\.18\.0\.1\/24, eth1 198\.18\.1\.1\/24/);
    assert.match(status.addresses[names.router], /198\.18\.2\.1\/24/);
    // Offloads stay as veth has them, on every link (a host as users have it).
    assert.equal(status.offloads, "on");
    for (const [ns, ifname] of [
      [names.director, names.dirClientIf],
      [names.director, names.dirLanIf],
      [names.client, "eth0"],
      [names.servers[0].ns, "eth0"],
    ] as const) {
      const f = features(ns, ifname);
      assert.equal(f["tcp-segmentation-offload"], "on", `${ns} ${ifname} TSO`);
      assert.equal(f["generic-segmentation-offload"], "on", `${ns} ${ifname} GSO`);
      assert.equal(f["tx-checksumming"], "on", `${ns} ${ifname} tx checksumming`);
    }
    // From the director: r1-r3 on its LAN, r4 through the router x.
    checkServers(names.director);
    // From the client through the director's kernel, forwarding for the moment (NAT return path:
    // r1-r3 default via the DIP, x sends the client net to the DIP).
    nsExec(names.director, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    for (const s of [names.servers[0], names.servers[3]]) {
      assert.equal(curl(names.client, `http://${s.rip}/`).body, `${s.name}\n`, `client → ${s.name}`);
    }
    nsExec(names.director, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"]);

    const pids = st.procs.map((p) => p.pid);
    const removed = await labDown(names);
    assert.ok(removed.some((l) => l.startsWith("deleted namespace")));
    assertGone(pids);
    assert.deepEqual(await labDown(names), [], "a second down has nothing to do");
  });

  it("removes a lab whose state file is lost (after a crash): namespaces and the processes in them", async () => {
    const st = await labUp(names, { method: "dr", servers: "node", daemon: false, offloads: "off" });
    const pids = st.procs.map((p) => p.pid);
    assert.ok(pids.every((pid) => procAlive({ pid, start: 0, what: "" })));
    // --offloads off, to compare: every link has them off.
    assert.equal(labStatus(names).offloads, "off");
    const f = features(names.director, names.dirClientIf);
    assert.equal(f["tcp-segmentation-offload"], "off");
    assert.equal(f["generic-receive-offload"], "off");
    assert.equal(f["tx-checksumming"], "off");
    rmSync(names.stateFile);
    await labDown(names);
    assertGone(pids);
  });

  it("serves with nginx (name on 80/8080, /bytes/N proxied, UDP by the Node responder), DR real servers pass doctor", async (t) => {
    if (!nginxAvailable() && ensurePackages(["nginx"]).length > 0) {
      skipOrFail(t, "nginx is not installed and cannot be installed here");
      return;
    }
    const st = await labUp(names, { method: "dr", servers: "nginx", daemon: false });
    assert.equal(st.servers, "nginx");
    assert.ok(st.procs.some((p) => p.what.startsWith("nginx")));
    checkServers(names.director);
    for (const s of names.servers.slice(0, 3)) {
      const d = nsExecStatus(s.ns, realserverArgv(["doctor", "--vip", LAB_ADDR.VIP, "--method", "dr"]));
      assert.equal(d.status, 0, `${s.name} doctor:\n${d.stdout}${d.stderr}`);
    }
    const pids = st.procs.map((p) => p.pid);
    await labDown(names);
    assertGone(pids);
  });

  it("--ipv6: every link dual stack in fd74:7376::/48, nginx on [::]:80 too, IPv4 unchanged", async (t) => {
    if (!nginxAvailable() && ensurePackages(["nginx"]).length > 0) {
      skipOrFail(t, "nginx is not installed and cannot be installed here");
      return;
    }
    const st = await labUp(names, { method: "dr", servers: "nginx", daemon: false, ipv6: true });
    assert.equal(st.ipv6, true);
    const ping6 = (ns: string, to: string): number =>
      nsExecStatus(ns, ["ping", "-6", "-c", "1", "-W", "2", to]).status;
    assert.equal(ping6(names.client, LAB_ADDR6.DIR_CLIENT), 0, "client → director");
    assert.equal(ping6(names.director, LAB_ADDR6.X_ROUTED), 0, "director → router's routed side");
    for (const s of names.servers) {
      const r = nsExecStatus(names.director, ["curl", "-sS", "-m", "3", `http://[${s.rip6}]/`]);
      assert.equal(r.stdout.trim(), s.name, `${s.name} over IPv6: ${r.stderr}`);
    }
    checkServers(names.director);
    const pids = st.procs.map((p) => p.pid);
    await labDown(names);
    assertGone(pids);
  });

  it("with the daemon: TUN spreads 8 curl requests round robin over r1-r4 (r4 behind the router)", async (t) => {
    if (tsvsEntry() === null) {
      skipOrFail(t, "the daemon is not built");
      return;
    }
    const st = await labUp(names, { method: "tun", servers: "node" });
    assert.equal(st.daemonStatus, "running", st.daemonStatus);
    const { counts, failed } = countResponses(names, 8);
    assert.equal(failed, 0);
    assert.deepEqual(counts, { r1: 2, r2: 2, r3: 2, r4: 2 });

    // The drop-in way: `ip netns exec P-d tsvs ipvsadm -Ln`, no --control, reaches the lab's daemon
    // (its namespace's default socket); no TSVS_CONTROL either.
    const env = { ...process.env };
    delete env.TSVS_CONTROL;
    const plain = spawnSync("ip", ["netns", "exec", names.director, ...tsvsArgv(["ipvsadm", "-Ln"])], {
      encoding: "utf8",
      env,
      timeout: 15_000,
    });
    assert.equal(plain.status, 0, `ip netns exec ${names.director} tsvs ipvsadm -Ln: ${plain.stderr}`);
    assert.match(
      plain.stdout,
      /TCP {2}198\.18\.0\.100:80 rr\n(?: {2}-> 198\.18\.[12]\.1[1-4]:80 +Tunnel .*\n){4}/,
    );
    assert.equal(labStatus(names).control, names.controlSock);
    // lab.sock, for older scripts: a link to the same socket, answering.
    assert.ok(lstatSync(names.controlAlias).isSymbolicLink());
    const res = await request(names.controlAlias, { op: "status" });
    assert.ok("status" in res, JSON.stringify(res));
    assert.equal(res.status.control, names.controlSock);
    assert.equal(res.status.pid, st.daemon?.pid);

    const daemonPid = st.daemon?.pid ?? 0;
    await labDown(names);
    assertGone([daemonPid, ...st.procs.map((p) => p.pid)]);
    assert.equal(readState(names), null);
    assert.equal(existsSync(dirname(names.controlSock)), false, "the daemon's control directory is removed");
  });
});
