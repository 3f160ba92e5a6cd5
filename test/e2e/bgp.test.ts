// The VIP's BGP announcement end to end (docs/scale-out.md "Announcing VIPs with BIRD", "Liveness"):
//
//   ns rt (router: BIRD, routerBirdConf)          ns d (director: tsvs daemon + the BIRD it starts)   ns r
//   rt0 198.18.2.1/24  ⇄  d0 198.18.2.11/24        d1 198.18.1.254/24  ⇄  r0 198.18.1.11/24, .12/24 (HTTP :80)
//
// The daemon runs `--config FILE.yaml` with TCP-checked NAT services on an IPv4 and an IPv6 VIP and a
// bgp section with a session of each family (fd74:7376:2::/64 on the same link).
// The router's kernel table gets `VIP via 198.18.2.11` from BGP; both real servers down (their
// HTTP server stopped, by pid) withdraw it, back up announce it; the daemon SIGKILLed withdraws it
// without any help (the liveness TUN device goes with the process): the time from the kill to the
// route's removal at the router is printed. A restarted daemon reuses the BIRD still running (same
// pid, one BIRD in the namespace) and announces again; SIGTERM withdraws and stops that BIRD.
// Namespaces tsvsg<pid>…; BIRDs ended by the pids of their pid files. Needs root, iproute2, nft,
// bird (Debian bird2): skipped with the reason, failed when CI=true.

import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { routerBirdConf } from "../../src/config/bird.js";
import { request } from "../../src/daemon/control.js";
import type { DaemonStatus } from "../../src/daemon/protocol.js";
import {
  addVethPair,
  delNetns,
  freshNetns,
  ip,
  netnsPids,
  nsExecStatus,
  uniqueName,
} from "../../src/io/netns.js";
import { commandPath } from "../../src/lab/packages.js";
import { Children, type Daemon, startDaemon, startListener, tsvsIn } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("bgp e2e", ["nftables", "curl", "bird2"]);

const base = uniqueName("g");
const NS = { rt: `${base}-rt`, d: `${base}-d`, r: `${base}-r` };
// veth ends are created in the test's own namespace first: unique names there.
const IF = { rt0: `${base}a`, d0: `${base}b`, d1: `${base}c`, r0: `${base}e` };
const VIP = "198.18.0.10";
/** A second service's VIP, added by a reload. */
const VIP2 = "198.18.0.11";
const DIRECTOR = "198.18.2.11";
/** An IPv6 service's VIP, announced over the IPv6 session. */
const VIP6 = "fd74:7376::10";
/** Health: a check a second, one failure declares a server down (1 s connect timeout). */
const HEALTH_MS = 1_000 + 1_000 + 1_000;
/** Withdrawal and announcement bounds: generous, for a shared 2-CPU machine. */
const WITHDRAW_AFTER_KILL_MS = 3_000;
const QUORUM_MS = HEALTH_MS + 4_000;

const children = new Children();
/** The daemon's /metrics, inside the director's namespace. */
const HTTP = "127.0.0.1:9715";

function yamlConfig(dir: string, vips: readonly string[]): string {
  return `virtual_servers:
${vips.map((vip) => service(vip)).join("")}${service6()}bgp:
  local_as: 65011
  neighbors: [{ address: 198.18.2.1, as: 65000 }, { address: "fd74:7376:2::1", as: 65000 }]
  hold_time: 3
  keepalive_time: 1
  connect_retry_time: 1
  bird: { socket: ${dir}/bird.ctl, config: ${dir}/bird.conf, log: ${dir}/bird.log }
`;
}

function service6(): string {
  return `  - address: "${VIP6}"
    port: 80
    lb_kind: NAT
    delay_loop: 1
    real_servers:
      - address: "fd74:7376:1::11"
        port: 80
        check: { type: tcp, connect_timeout: 1, retry: 0 }
`;
}

function service(vip: string): string {
  return `  - address: ${vip}
    port: 80
    lb_kind: NAT
    scheduler: rr
    delay_loop: 1
    real_servers:
      - address: 198.18.1.11
        port: 80
        check: { type: tcp, connect_timeout: 1, retry: 0 }
      - address: 198.18.1.12
        port: 80
        check: { type: tcp, connect_timeout: 1, retry: 0 }
`;
}

/** The router's route to the VIP: its gateways, [] when it has none. */
function routerGateways(vip = VIP): string[] {
  const dst = vip.includes(":") ? `${vip}/128` : `${vip}/32`;
  const r = nsExecStatus(NS.rt, ["ip", vip.includes(":") ? "-6" : "-4", "-j", "route", "show", dst], 5_000);
  if (r.status !== 0) return [];
  const routes = JSON.parse(r.stdout || "[]") as Array<{
    gateway?: string;
    nexthops?: Array<{ gateway: string }>;
  }>;
  return routes.flatMap((x) =>
    x.gateway !== undefined ? [x.gateway] : (x.nexthops ?? []).map((n) => n.gateway),
  );
}

/** Polls every 5 ms until check() holds; the time it took, or throws after ms. */
async function until(what: string, ms: number, check: () => boolean): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (check()) return performance.now() - t0;
    if (performance.now() - t0 > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function pidOf(file: string): number | null {
  try {
    const n = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

function alive(pid: number | null): boolean {
  if (pid === null) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The BIRD processes of a namespace. */
function birdsIn(ns: string): number[] {
  return netnsPids(ns).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, "utf8").trim() === "bird";
    } catch {
      return false;
    }
  });
}

async function status(sock: string): Promise<DaemonStatus> {
  const res = await request(sock, { op: "status" });
  assert.ok("status" in res, JSON.stringify(res));
  return res.status;
}

describe("VIP announcement over BGP through BIRD", { skip, timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-bgp-"));
  const sock = join(dir, "control.sock");
  const conf = join(dir, "tsvs.yaml");
  const routerPid = join(dir, "router.pid");
  const directorPid = join(dir, "bird.pid");
  let http: ChildProcess | null = null;
  let daemon: Daemon | null = null;

  const start = (): Promise<Daemon> =>
    startDaemon(
      NS.d,
      ["--iface", IF.d0, "--iface", IF.d1, "--control", sock, "--http", HTTP, "--config", conf],
      children,
    );
  // One server on [::]:80 (dual-stack): both families' checks reach it.
  const serversUp = async (): Promise<void> => {
    http = await startListener(
      NS.r,
      `require("http").createServer((q, s) => s.end("r\\n")).listen(80, "::", () => console.log("listening"));`,
      children,
      "http server",
    );
  };

  before(() => {
    // IPv6 on, without DAD: the addresses are usable at once.
    freshNetns(Object.values(NS), { ipv6: true });
    addVethPair(
      { ns: NS.rt, ifname: IF.rt0, cidr: "198.18.2.1/24" },
      { ns: NS.d, ifname: IF.d0, cidr: `${DIRECTOR}/24` },
    );
    addVethPair(
      { ns: NS.d, ifname: IF.d1, cidr: "198.18.1.254/24" },
      { ns: NS.r, ifname: IF.r0, cidr: "198.18.1.11/24" },
    );
    ip("-n", NS.r, "addr", "add", "198.18.1.12/24", "dev", IF.r0);
    for (const [ns, ifname, cidr] of [
      [NS.rt, IF.rt0, "fd74:7376:2::1/64"],
      [NS.d, IF.d0, "fd74:7376:2::11/64"],
      [NS.d, IF.d1, "fd74:7376:1::254/64"],
      [NS.r, IF.r0, "fd74:7376:1::11/64"],
    ])
      ip("-n", ns, "addr", "add", cidr, "dev", ifname, "nodad");
    const rconf = join(dir, "router.conf");
    writeFileSync(
      rconf,
      routerBirdConf(
        {
          routerId: "198.18.2.1",
          localAs: 65000,
          neighbors: [
            { address: DIRECTOR, as: 65011 },
            { address: "fd74:7376:2::11", as: 65011 },
          ],
          holdTime: 3,
          keepaliveTime: 1,
          ecmpLimit: 16,
          connectRetryTime: 1,
        },
        { logFile: join(dir, "router.log") },
      ),
    );
    writeFileSync(conf, yamlConfig(dir, [VIP]));
    const bird = commandPath("bird") ?? "bird";
    const r = nsExecStatus(
      NS.rt,
      [bird, "-c", rconf, "-s", join(dir, "router.ctl"), "-P", routerPid],
      10_000,
    );
    assert.equal(r.status, 0, r.stderr);
  });

  after(async () => {
    await children.stopAll();
    for (const f of [routerPid, directorPid]) {
      const pid = pidOf(f);
      if (alive(pid)) process.kill(pid as number, "SIGTERM");
    }
    for (const ns of Object.values(NS)) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it("announces while the service has quorum, withdraws on its loss and when the daemon dies, and reuses BIRD", async () => {
    await serversUp();
    daemon = await start();
    await until("the router learns the VIP via the director", 15_000, () =>
      routerGateways().includes(DIRECTOR),
    );
    await until("the router learns the IPv6 VIP", 15_000, () => routerGateways(VIP6).length > 0);
    const st = await status(sock);
    assert.equal(st.bgp?.vips[0]?.vip, VIP);
    assert.equal(st.bgp?.vips[0]?.announced, true);
    let birdPid = pidOf(directorPid);
    assert.ok(alive(birdPid), "the daemon started BIRD");
    assert.equal(st.bgp?.bird.startedByTsvs, true);
    const text = tsvsIn(NS.d, sock, "status").stdout;
    assert.match(
      text,
      /^ {2}198\.18\.0\.10: announced \(quorum: TCP 198\.18\.0\.10:80 \(weight 2, quorum 1\)\)$/m,
    );
    await until("BIRD's session in the status", 5_000, () =>
      /^ {2}neighbor 198\.18\.2\.1: up Established$/m.test(tsvsIn(NS.d, sock, "status").stdout),
    );
    const metrics = nsExecStatus(NS.d, ["curl", "-sf", `http://${HTTP}/metrics`], 5_000).stdout;
    assert.match(metrics, /^tsvs_bgp_vip_announced\{vip="198\.18\.0\.10"\} 1$/m);
    assert.match(metrics, /^tsvs_bgp_session_established\{neighbor="198\.18\.2\.1"\} 1$/m);

    // A reload that adds a service on another VIP: BIRD reconfigured, the new VIP announced.
    writeFileSync(conf, yamlConfig(dir, [VIP, VIP2]));
    assert.equal(tsvsIn(NS.d, sock, "reload").status, 0);
    await until("the reloaded VIP at the router", 10_000, () => routerGateways(VIP2).includes(DIRECTOR));
    assert.ok(routerGateways().includes(DIRECTOR), "the first VIP stays announced across the reload");

    // BIRD killed under the daemon: started again from the file, the VIPs announced again.
    process.kill(birdPid as number, "SIGKILL");
    await until("withdrawal when BIRD dies", 5_000, () => routerGateways().length === 0);
    const killed = birdPid;
    await until("BIRD restarted by the daemon", 10_000, () => {
      const now = pidOf(directorPid);
      return now !== killed && alive(now);
    });
    birdPid = pidOf(directorPid);
    await until("announcement by the new BIRD", 10_000, () => routerGateways().includes(DIRECTOR));

    // Every real server down: quorum lost, the VIP withdrawn.
    http?.kill("SIGTERM");
    const lost = await until(
      "withdrawal on quorum loss",
      QUORUM_MS,
      () =>
        routerGateways().length === 0 &&
        routerGateways(VIP2).length === 0 &&
        routerGateways(VIP6).length === 0,
    );
    const down = await status(sock);
    assert.equal(down.bgp?.vips[0]?.announced, false);
    assert.match(down.bgp?.vips[0]?.why ?? "", /^no quorum: TCP 198\.18\.0\.10:80/);
    // Back up: announced again.
    await serversUp();
    const back = await until("announcement on quorum regained", QUORUM_MS, () =>
      routerGateways().includes(DIRECTOR),
    );

    // SIGKILL: nothing of the daemon runs, the liveness device goes with it.
    const t0 = performance.now();
    daemon.proc.kill("SIGKILL");
    await until("withdrawal after SIGKILL", WITHDRAW_AFTER_KILL_MS, () => routerGateways().length === 0);
    const killMs = performance.now() - t0;
    await until(
      "IPv6 withdrawal after SIGKILL",
      WITHDRAW_AFTER_KILL_MS,
      () => routerGateways(VIP6).length === 0,
    );
    process.stderr.write(
      `bgp e2e: quorum lost -> withdrawn in ${Math.round(lost)} ms, regained -> announced in ${Math.round(back)} ms, ` +
        `SIGKILL -> withdrawn at the router in ${killMs.toFixed(1)} ms\n`,
    );
    await daemon.exited;
    assert.ok(alive(birdPid), "BIRD outlives the daemon");

    // Restarted: the same BIRD, reconfigured, announces again.
    daemon = await start();
    await until("announcement after the restart", 15_000, () => routerGateways().includes(DIRECTOR));
    assert.equal(pidOf(directorPid), birdPid);
    assert.deepEqual(birdsIn(NS.d), [birdPid]);

    // SIGTERM: the VIP withdrawn first, then the BIRD tsvs started stopped.
    daemon.proc.kill("SIGTERM");
    assert.equal(await daemon.exited, 0, daemon.stderr());
    await until("withdrawal on SIGTERM", 3_000, () => routerGateways().length === 0);
    await until("BIRD stopped with the daemon", 3_000, () => !alive(birdPid));
  });
});
