// Per-service ACLs and the per-source new-connection rate limit end to end (docs/acl.md): real curl
// from two addresses of one client, one denied (DPVS's -U/-k), then only the other allowed (-O/-2),
// over IPv4 and IPv6; -B/-W with their hit counters; -S | -R; and --conn-limit refusing a burst past
// its bucket and letting a connection through after the refill.
//
//   ns c (client: two addresses)                 ns d (tsvs daemon)                   ns r (real server)
//   c0 198.18.104.1,.2/24 fd74:6163:6c00:1::1,2  d0 .254 / ::fe   d1 198.18.105.254  r0 198.18.105.11
//                                                                  fd74:6163:6c00:2::fe  fd74:6163:6c00:2::11
//
// VIPs 198.18.104.100 and [fd74:6163:6c00:1::100], NAT. Needs root, iproute2, nft and curl.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { DaemonStatus } from "../../src/daemon/protocol.js";
import { addVethPair, delNetns, freshNetns, ip, nsExec } from "../../src/io/netns.js";
import { Children, ENTRY, startDaemon, startListener, tsvsIn } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("acl e2e", ["nftables", "curl"]);

const P = process.pid;
const NS = { c: `tsvs-acl-${P}-c`, d: `tsvs-acl-${P}-d`, r: `tsvs-acl-${P}-r` };
const tag = P.toString(36);
const IF = { c0: `acc${tag}`, d0: `acd${tag}`, d1: `acD${tag}`, r0: `acr${tag}` };
const VIP = "198.18.104.100";
const C1 = "198.18.104.1";
const C2 = "198.18.104.2";
const N6 = "fd74:6163:6c00";
const VIP6 = `${N6}:1::100`;
const C1_6 = `${N6}:1::1`;
const C2_6 = `${N6}:1::2`;
const SVC = `${VIP}:80`;
const SVC6 = `[${VIP6}]:80`;

const children = new Children();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** curl from one of the client's addresses; resolves with its exit status and body. */
function curl(from: string, url: string, maxTime: number): Promise<{ status: number | null; body: string }> {
  return new Promise((resolve) => {
    const p = children.add(
      spawn(
        "ip",
        ["netns", "exec", NS.c, "curl", "-sS", "-g", "--interface", from, "--max-time", String(maxTime), url],
        { stdio: ["ignore", "pipe", "ignore"] },
      ),
    );
    let body = "";
    p.stdout?.on("data", (b: Buffer) => {
      body += b.toString();
    });
    p.once("exit", (status) => resolve({ status, body: body.trim() }));
  });
}

describe("per-service ACLs and the new-connection rate limit", { skip, timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-acl-"));
  const sock = join(dir, "run", "control.sock");
  const adm = (...argv: string[]): string => {
    const r = tsvsIn(NS.d, sock, "ipvsadm", ...argv);
    assert.equal(r.status, 0, `ipvsadm ${argv.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const drops = (): Record<string, number> => {
    const r = tsvsIn(NS.d, sock, "status", "--json");
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as DaemonStatus).drops;
  };

  before(() => {
    freshNetns(Object.values(NS), { ipv6: true });
    addVethPair(
      { ns: NS.c, ifname: IF.c0, cidr: `${C1}/24` },
      { ns: NS.d, ifname: IF.d0, cidr: "198.18.104.254/24" },
    );
    addVethPair(
      { ns: NS.d, ifname: IF.d1, cidr: "198.18.105.254/24" },
      { ns: NS.r, ifname: IF.r0, cidr: "198.18.105.11/24" },
    );
    ip("-n", NS.c, "addr", "add", `${C2}/24`, "dev", IF.c0);
    for (const [ns, ifn, a] of [
      [NS.c, IF.c0, `${C1_6}/64`],
      [NS.c, IF.c0, `${C2_6}/64`],
      [NS.d, IF.d0, `${N6}:1::fe/64`],
      [NS.d, IF.d1, `${N6}:2::fe/64`],
      [NS.r, IF.r0, `${N6}:2::11/64`],
    ])
      ip("-n", ns, "-6", "addr", "add", a, "dev", ifn, "nodad");
    ip("-n", NS.c, "route", "add", "default", "via", "198.18.104.254");
    ip("-n", NS.r, "route", "add", "default", "via", "198.18.105.254");
    ip("-n", NS.c, "-6", "route", "add", "default", "via", `${N6}:1::fe`);
    ip("-n", NS.r, "-6", "route", "add", "default", "via", `${N6}:2::fe`);
    nsExec(NS.d, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
  });

  after(async () => {
    await children.stopAll();
    for (const ns of Object.values(NS)) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it("denies and allows by source address and prefix, counts the hits, and -S | -R keeps the lists", async () => {
    const d = await startDaemon(
      NS.d,
      ["--iface", IF.d0, "--iface", IF.d1, "--control", sock, "--http", "off"],
      children,
    );
    await startListener(
      NS.r,
      `require("http").createServer((q, s) => { s.setHeader("connection", "close"); s.end("r1\\n"); }).listen(80, "::", () => console.log("listening"));`,
      children,
      "http server",
    );
    adm("-A", "-t", SVC, "-s", "rr");
    adm("-a", "-t", SVC, "-r", "198.18.105.11:80", "-m");
    adm("-A", "-t", SVC6, "-s", "rr");
    adm("-a", "-t", SVC6, "-r", `[${N6}:2::11]:80`, "-m");
    const url = `http://${VIP}/`;
    const url6 = `http://[${VIP6}]/`;
    for (const [from, u] of [
      [C1, url],
      [C2, url],
      [C1_6, url6],
      [C2_6, url6],
    ]) {
      const r = await curl(from, u, 5);
      assert.deepEqual(r, { status: 0, body: "r1" }, `${from} → ${u} before any rule\n${d.stderr()}`);
    }

    // Deny C2 (a host) and C2_6's /127 (a prefix): C1 still gets through.
    adm("-U", "-t", SVC, "-k", C2);
    adm("-U", "-t", SVC6, "-k", `${N6}:1::2/127`);
    assert.equal((await curl(C2, url, 1.5)).status, 28, "denied: curl times out");
    assert.equal((await curl(C2_6, url6, 1.5)).status, 28, "denied over IPv6");
    assert.deepEqual(await curl(C1, url, 5), { status: 0, body: "r1" });
    assert.deepEqual(await curl(C1_6, url6, 5), { status: 0, body: "r1" });
    assert.ok((drops().acl_deny ?? 0) >= 2, JSON.stringify(drops()));
    const b = adm("-B");
    assert.match(b, /^PROTO {4}VIP:VPORT {22}BLACKLIST {22}HITS$/m);
    assert.match(b, /^TCP {6}198\.18\.104\.100:80 +198\.18\.104\.2 +[1-9]\d*$/m);
    assert.match(b, new RegExp(`^TCP {6}\\[${VIP6}\\]:80 +${N6}:1::2/127 +[1-9]\\d*$`, "m"));

    // An allow list: only C1 (IPv4); the deny list gone. C2 is now not allowed.
    adm("-V", "-t", SVC, "-k", C2);
    adm("-O", "-t", SVC, "-2", `${C1}/32`);
    assert.equal((await curl(C2, url, 1.5)).status, 28, "not on the allow list");
    assert.deepEqual(await curl(C1, url, 5), { status: 0, body: "r1" });
    assert.ok((drops().acl_not_allowed ?? 0) >= 1, JSON.stringify(drops()));
    assert.match(adm("-W", "-t", SVC), /^TCP {6}198\.18\.104\.100:80 +198\.18\.104\.1 +1$/m);

    // -S | -R: the lists come back as they were.
    const saved = adm("-S", "-n");
    assert.match(saved, /^-O -t 198\.18\.104\.100:80 -2 198\.18\.104\.1$/m);
    assert.match(saved, new RegExp(`^-U -t \\[${VIP6}\\]:80 -k ${N6}:1::2/127$`, "m"));
    adm("-C");
    const r = spawnSync(
      "ip",
      ["netns", "exec", NS.d, process.execPath, ENTRY, "ipvsadm", "--control", sock, "-R"],
      {
        input: saved,
        encoding: "utf8",
        timeout: 15_000,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(adm("-S", "-n"), saved);
    assert.equal((await curl(C2, url, 1.5)).status, 28, "still not allowed after -R");
  });

  it("--conn-limit refuses new connections past the bucket and lets them through after the refill", async () => {
    adm("-Y", "-t", SVC, "-2", C1);
    adm("--conn-limit", "-t", SVC, "--conn-rate", "1/s", "--conn-burst", "3", "--conn-rate-prefix", "24,64");
    const before = drops().conn_rate_limited ?? 0;
    // Six at once from one /24 (both addresses): three tokens, at most a few more refilled meanwhile.
    const burst = await Promise.all([C1, C2, C1, C2, C1, C2].map((a) => curl(a, `http://${VIP}/`, 1.5)));
    const ok = burst.filter((x) => x.status === 0).length;
    assert.ok(ok >= 3 && ok < 6, `${ok} of 6 got through a bucket of 3 at 1/s`);
    assert.ok((drops().conn_rate_limited ?? 0) > before);
    await sleep(3500);
    assert.deepEqual(await curl(C2, `http://${VIP}/`, 5), { status: 0, body: "r1" }, "after the refill");
    assert.match(
      adm("-S", "-n"),
      /^--conn-limit -t 198\.18\.104\.100:80 --conn-rate 1 --conn-burst 3 --conn-rate-prefix 24,64$/m,
    );
  });
});
