// The SYN proxy (`ipvsadm -A … --synproxy`, synproxy.ts) against real nginx, NAT and FULLNAT, in
// namespaces of its own (198.18.92.0/23; "sp"):
//
//   c (client: curl, trafgen)            d (director, tsvs)                        r (real server, nginx)
//   c0 198.18.92.10  ⇄  d0 198.18.92.1 (VIP .92.100)   d1 198.18.93.1 (LIP .93.100)  ⇄  r0 198.18.93.11
//
//   198.18.92.100:80  --synproxy, NAT     → 198.18.93.11:80 (its default route: the director)
//   198.18.92.100:81  --synproxy, FULLNAT → 198.18.93.11:81 (from the LIP)
//   [fd74:7376:92:1::100]:80  --synproxy, NAT → [fd74:7376:92:2::11]:80 (IPv6: c0 ::10, d0 ::1, d1 ::1)
//
// With the client's timestamps, SACK and window scaling on, then all three off (its namespace's
// sysctls): 10 MiB down (curl) and 10 MiB up (PUT, stored by nginx) intact by sha256 through each
// service; over IPv6, 10 MiB down. ACKs with forged cookies (trafgen, from a packet socket in c) get resets and never reach
// nginx's namespace: an nft counter there on the service ports stays where it was.
//
// Needs root, iproute2, curl, nginx, nft, trafgen: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { delNetns, linkMac, nsExec, nsExecStatus } from "../../src/io/netns.js";
import { nginxHead } from "../../src/lab/servers.js";
import { buildDualStackLine } from "../support/dual-stack-line.js";
import { Children, startDaemon, tsvsIn } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("SYN proxy e2e", ["curl", "nginx", "nft", "trafgen"]);

const P = process.pid;
const tag = P.toString(36);
const NS = { c: `tsvssp-${P}-c`, d: `tsvssp-${P}-d`, r: `tsvssp-${P}-r` };
const IF = { c0: `spc${tag}`, d0: `spd${tag}`, d1: `spe${tag}`, r0: `spr${tag}` };
const C4 = "198.18.92.10";
const VIP = "198.18.92.100";
const LIP = "198.18.93.100";
const R4 = "198.18.93.11";
const N1 = "fd74:7376:92:1";
const N2 = "fd74:7376:92:2";
const C6 = `${N1}::10`;
const VIP6 = `${N1}::100`;
const R6 = `${N2}::11`;
const BIG = 10 << 20;
const NFT_TABLE = "tsvssp";
const FORGED = 200;
const children = new Children();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function topology(): void {
  buildDualStackLine({
    ns: NS,
    ifs: IF,
    c4: C4,
    d0v4: "198.18.92.1",
    d1v4: "198.18.93.1",
    r4: R4,
    n1: N1,
    n2: N2,
    c6: C6,
    r6: R6,
  });
  // What reaches nginx's namespace on the service ports, counted before any socket sees it.
  nsExec(NS.r, ["nft", "add", "table", "inet", NFT_TABLE]);
  nsExec(NS.r, ["nft", "add chain inet tsvssp in { type filter hook prerouting priority -300 ; }"]);
  nsExec(NS.r, ["nft", "add rule inet tsvssp in tcp dport { 80, 81 } counter"]);
}

function rsPackets(): number {
  const out = nsExec(NS.r, ["nft", "list", "chain", "inet", NFT_TABLE, "in"]);
  const m = /counter packets (\d+)/.exec(out);
  assert.ok(m, out);
  return Number(m[1]);
}

function nginxConf(dir: string): string {
  return `${nginxHead(dir, { connections: 64, accessLog: true })}  server {
    listen ${R4}:80;
    listen ${R4}:81;
    listen [${R6}]:80;
    root ${dir}/www;
    location = / { default_type text/plain; return 200 "$remote_addr\\n"; }
    location /up/ { dav_methods PUT; client_max_body_size 16m; client_body_buffer_size 1m; }
  }
}
`;
}

function pattern(n: number, k: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * k + 5) & 255;
  return b;
}
const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe("SYN proxy: NAT and FULLNAT in front of nginx", { skip, timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvssp-"));
  const sock = join(dir, "control.sock");
  let stderr = (): string => "";

  before(async () => {
    topology();
    chmodSync(dir, 0o755);
    const www = join(dir, "www");
    nsExec(NS.r, ["mkdir", "-p", join(www, "up")]);
    chmodSync(join(www, "up"), 0o777);
    writeFileSync(join(www, "big"), pattern(BIG, 13));
    writeFileSync(join(dir, "upload"), pattern(BIG, 7));
    writeFileSync(join(dir, "nginx.conf"), nginxConf(dir));
    const { spawn } = await import("node:child_process");
    children.add(
      spawn(
        "ip",
        ["netns", "exec", NS.r, "nginx", "-c", join(dir, "nginx.conf"), "-e", join(dir, "nginx-error.log")],
        {
          stdio: "ignore",
        },
      ),
    );
    const d = await startDaemon(NS.d, ["--iface", IF.d0, "--iface", IF.d1, "--control", sock], children);
    stderr = d.stderr;
    for (const args of [
      ["-A", "-t", `${VIP}:80`, "-s", "rr", "--synproxy"],
      ["-a", "-t", `${VIP}:80`, "-r", `${R4}:80`, "-m"],
      ["-A", "-t", `${VIP}:81`, "-s", "rr", "-j", "enable"],
      ["-a", "-t", `${VIP}:81`, "-r", `${R4}:81`, "--fullnat"],
      ["-P", "-t", `${VIP}:81`, "-z", LIP],
      ["-A", "-t", `[${VIP6}]:80`, "-s", "rr", "--synproxy"],
      ["-a", "-t", `[${VIP6}]:80`, "-r", `[${R6}]:80`, "-m"],
    ]) {
      const r = tsvsIn(NS.d, sock, "ipvsadm", ...args);
      assert.equal(r.status, 0, `ipvsadm ${args.join(" ")}: ${r.stderr}`);
    }
    // nginx is up when it answers on its own link.
    const deadline = Date.now() + 10_000;
    while (nsExecStatus(NS.d, ["curl", "-s", "--max-time", "1", `http://${R4}/`]).status !== 0) {
      if (Date.now() > deadline) assert.fail(`nginx not up: ${errorLog(dir)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  });

  after(async () => {
    await children.stopAll();
    for (const ns of Object.values(NS)) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  function curl(args: string[], timeoutS = 40): { status: number; stdout: string; stderr: string } {
    return nsExecStatus(
      NS.c,
      ["curl", "-g", "-s", "-S", "--connect-timeout", "5", "--max-time", String(timeoutS), ...args],
      (timeoutS + 10) * 1000,
    );
  }

  it("the listing says synproxy; -S writes it so that -R restores it", () => {
    const l = tsvsIn(NS.d, sock, "ipvsadm", "-Ln");
    assert.match(l.stdout, new RegExp(`TCP  ${VIP}:80 rr synproxy`));
    assert.match(l.stdout, new RegExp(`TCP  ${VIP}:81 rr synproxy`));
    const s = tsvsIn(NS.d, sock, "ipvsadm", "-Sn");
    assert.match(s.stdout, new RegExp(`-A -t ${VIP}:80 -s rr --synproxy enable`));
  });

  it("ACKs with forged cookies get resets and never reach the real server's namespace", async () => {
    const before = rsPackets();
    const conf = join(dir, "forged.trafgen");
    // A client's ACK after a handshake it never made: random acknowledgment numbers (the cookie).
    writeFileSync(
      conf,
      `{
  eth(da=${linkMac(NS.d, IF.d0)}, sa=${linkMac(NS.c, IF.c0)}),
  ipv4(saddr=${C4}, daddr=${VIP}, ttl=64, df),
  tcp(sp=drnd(20000, 30000), dp=drnd(80, 81), seq=drnd(), aseq=drnd(), win=502, ack)
}
`,
    );
    const g = nsExecStatus(
      NS.c,
      ["trafgen", "--dev", IF.c0, "--conf", conf, "--cpus", "1", "-q", "-n", String(FORGED)],
      20_000,
    );
    assert.equal(g.status, 0, `trafgen: ${g.stderr}`);
    // Every forged ACK was looked at and refused (the daemon may still be reading them).
    let c: Record<string, number> = {};
    for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(100)) {
      const st = tsvsIn(NS.d, sock, "status", "--json");
      assert.equal(st.status, 0, st.stderr);
      c = (JSON.parse(st.stdout) as { counters: Record<string, number> }).counters;
      if (c.synproxyAcksInvalid === FORGED) break;
    }
    assert.equal(c.synproxyAcksInvalid, FORGED, JSON.stringify(c));
    assert.equal(c.synproxyAcksValid ?? 0, 0);
    assert.equal(rsPackets(), before, "no forged ACK got through");
  });

  for (const opts of [
    { name: "timestamps, SACK and window scaling on", v: "1" },
    { name: "timestamps, SACK and window scaling off", v: "0" },
  ]) {
    for (const svc of [
      { name: "NAT", port: 80 },
      { name: "FULLNAT", port: 81 },
    ]) {
      it(`${svc.name}, the client's ${opts.name}: 10 MiB down and 10 MiB up intact`, () => {
        for (const k of ["tcp_timestamps", "tcp_sack", "tcp_window_scaling"])
          nsExec(NS.c, ["sysctl", "-q", "-w", `net.ipv4.${k}=${opts.v}`]);
        const base = `http://${VIP}:${svc.port}/`;
        const r = curl([base]);
        assert.equal(r.status, 0, `curl ${r.status}: ${r.stderr}\n${stderr().slice(-2000)}`);
        assert.equal(r.stdout.trim(), svc.name === "NAT" ? C4 : LIP, "nginx's $remote_addr");
        const file = join(dir, "got");
        const b = curl(["-o", file, `${base}big`]);
        assert.equal(b.status, 0, `curl ${b.status}: ${b.stderr}\n${stderr().slice(-2000)}`);
        const got = readFileSync(file);
        assert.equal(got.length, BIG);
        assert.equal(sha(got), sha(pattern(BIG, 13)));
        const name = `up/${svc.name}-${opts.v}`;
        const u = curl([
          "-T",
          join(dir, "upload"),
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          `${base}${name}`,
        ]);
        assert.equal(u.status, 0, `curl ${u.status}: ${u.stderr}`);
        assert.match(u.stdout, /^20[14]$/);
        assert.equal(sha(readFileSync(join(dir, "www", name))), sha(pattern(BIG, 7)));
      });
    }
  }

  it("IPv6 NAT: the client's address comes through, 10 MiB down intact", () => {
    for (const k of ["tcp_timestamps", "tcp_sack", "tcp_window_scaling"])
      nsExec(NS.c, ["sysctl", "-q", "-w", `net.ipv4.${k}=1`]);
    const base = `http://[${VIP6}]/`;
    const r = curl([base]);
    assert.equal(r.status, 0, `curl ${r.status}: ${r.stderr}\n${stderr().slice(-2000)}`);
    assert.equal(r.stdout.trim(), C6);
    const file = join(dir, "got6");
    const b = curl(["-o", file, `${base}big`]);
    assert.equal(b.status, 0, `curl ${b.status}: ${b.stderr}`);
    assert.equal(sha(readFileSync(file)), sha(pattern(BIG, 13)));
  });
});

function errorLog(dir: string): string {
  try {
    return readFileSync(join(dir, "nginx-error.log"), "utf8");
  } catch {
    return "";
  }
}
