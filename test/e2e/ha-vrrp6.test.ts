// VRRPv3 over IPv6 with the real keepalived (Debian's 2.2.7) as the peer director, both ways
// (docs/ha.md "IPv6"). One IPv6 link, ULA fd76:7236:6::/48 (link fd76:7236:6:1::/64), namespaces
// tsvs-v6<pid>-*:
//
//   b   bridge br6, one port each
//   c   client fd76:7236:6:1::2
//   d1  fd76:7236:6:1::11 (tsvs)        d2  fd76:7236:6:1::12 (keepalived -P, VRRP only)
//
// One instance, vrid 61, advert_int 1, virtual_ipaddress fe80::6:100/64 (link-local first, as RFC
// 9568 §7.2 wants) and the VIP fd76:7236:6:1::100/64. DAD is off in every namespace, so the link-local
// addresses both directors advertise from are there at once.
//
// Each test elects a master by priority (the two orders of start), pings the VIP from the client,
// then SIGKILLs the master (no priority-0 advert: the backup must wait out its master-down timer,
// 3 × 1 s + (256 − 100)/256 s) and checks that the backup takes over within that time and that the
// client's neighbour entry for the VIP moved to the new master's MAC with no traffic from the client:
// the new master's unsolicited neighbour advertisements (O flag) did it. keepalived runs with
// --dont-respawn and its VRRP child is the one killed (its parent would otherwise start another).
// tsvs as the new master runs with vrrp_gna_interval 0.05: the VIP's NA waits behind the
// link-local address's. A third test runs unicast peers (global addresses) both ways.

import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import {
  delNetns,
  ip,
  linkMac,
  namespacesWith,
  netnsPids,
  nsExec,
  nsExecStatus,
} from "../../src/io/netns.js";
import { deadRuns, sleep, stopProc, waitFor } from "../../src/lab/proc.js";
import { Children, type Daemon, startDaemon } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";
import { Keepalived, readState, statusOf, waitLogTime, waitState, writeFile } from "./ha-helpers.js";

const skip = e2eSkip("IPv6 VRRP interop e2e", ["nftables", "keepalived", "iputils-ping"]);

const NET = "fd76:7236:6:1";
const A = { c: `${NET}::2`, d1: `${NET}::11`, d2: `${NET}::12`, vip: `${NET}::100`, ll: "fe80::6:100" };
const ADVERT_INT = 1;
/** The backup's master-down time at priority 100 (VRRPv3: skew = (256 − p) × interval / 256), ms. */
const MASTER_DOWN_MS = 3 * ADVERT_INT * 1000 + ((256 - 100) * ADVERT_INT * 1000) / 256;

const PREFIX = `tsvs-v6${process.pid}`;
const NS = { b: `${PREFIX}-b`, c: `${PREFIX}-c`, d1: `${PREFIX}-d1`, d2: `${PREFIX}-d2` };

/** Namespaces of a killed earlier run (tsvs-v6<dead pid>-*). */
async function removeStale(): Promise<void> {
  for (const id of deadRuns("tsvs-v6")) for (const ns of namespacesWith(`tsvs-v6${id}-`)) await removeNs(ns);
}

async function removeNs(ns: string): Promise<void> {
  for (const pid of netnsPids(ns)) await stopProc({ pid, start: 0, what: `process in ${ns}` }, 2000);
  rmSync(join("/run/tsvs", `netns-${ns}`), { recursive: true, force: true });
  delNetns(ns);
}

function build(): void {
  for (const ns of Object.values(NS)) {
    ip("netns", "add", ns);
    ip("-n", ns, "link", "set", "lo", "up");
    // Before any device: a device made from here on starts without DAD.
    nsExec(ns, ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"]);
  }
  ip("-n", NS.b, "link", "add", "br6", "type", "bridge");
  ip("-n", NS.b, "link", "set", "br6", "up");
  let k = 0;
  for (const [ns, addr] of [
    [NS.c, A.c],
    [NS.d1, A.d1],
    [NS.d2, A.d2],
  ] as const) {
    const port = `v6${process.pid % 100000}p${k++}`;
    ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", NS.b);
    ip("-n", NS.b, "link", "set", port, "master", "br6");
    ip("-n", NS.b, "link", "set", port, "up");
    ip("-n", ns, "-6", "addr", "add", `${addr}/64`, "dev", "eth0", "nodad");
    ip("-n", ns, "link", "set", "eth0", "up");
  }
}

/** The link-local address of ns's eth0 (what it advertises from; keepalived's fe80::6:100 left out). */
function linkLocal(ns: string): string {
  const rows = JSON.parse(ip("-n", ns, "-j", "-6", "addr", "show", "dev", "eth0", "scope", "link")) as {
    addr_info?: { local?: string }[];
  }[];
  const all = rows.flatMap((r) => r.addr_info ?? []).map((a) => a.local ?? "");
  const ll = all.find((a) => a.startsWith("fe80:") && a !== A.ll);
  assert.ok(ll !== undefined, `no link-local address on ${ns}: ${JSON.stringify(rows)}`);
  return ll;
}

/** The client's neighbour entry for the VIP: its MAC, or null. Sends nothing. */
function clientNeigh(): string | null {
  const rows = JSON.parse(ip("-n", NS.c, "-j", "-6", "neigh", "show", A.vip, "dev", "eth0")) as {
    lladdr?: string;
  }[];
  return rows[0]?.lladdr ?? null;
}

async function ping6(): Promise<boolean> {
  for (let i = 0; i < 20; i++) {
    if (nsExecStatus(NS.c, ["ping", "-6", "-c", "1", "-W", "1", A.vip], 10_000).status === 0) return true;
    await sleep(200);
  }
  return false;
}

/** A keepalived.conf for one director: runs unchanged on keepalived and on `tsvs daemon --config`. */
function conf(priority: number, unicast?: { src: string; peer: string }, gnaInterval?: number): string {
  return `global_defs {
    router_id tsvs-v6
${gnaInterval === undefined ? "" : `    vrrp_gna_interval ${gnaInterval}\n`}}

vrrp_instance V6 {
    state BACKUP
    interface eth0
    virtual_router_id 61
    priority ${priority}
    advert_int ${ADVERT_INT}
${
  unicast === undefined
    ? ""
    : `    unicast_src_ip ${unicast.src}\n    unicast_peer {\n        ${unicast.peer}\n    }\n`
}    virtual_ipaddress {
        ${A.ll}/64
        ${A.vip}/64
    }
}
`;
}

describe("VRRPv3 over IPv6 with keepalived 2.2.7", { skip }, () => {
  const dir = join("/tmp", PREFIX);
  mkdirSync(dir, { recursive: true });
  const children = new Children();
  const ka = new Keepalived(dir, "V6");
  let tsvs: Daemon | null = null;

  before(async () => {
    await removeStale();
    build();
  });

  afterEach(async () => {
    await children.stopAll();
    tsvs = null;
    ka.reset();
    // keepalived killed with SIGKILL leaves its VIPs on d2.
    for (const a of [A.ll, A.vip]) nsExecStatus(NS.d2, ["ip", "-6", "addr", "del", `${a}/64`, "dev", "eth0"]);
    nsExecStatus(NS.c, ["ip", "-6", "neigh", "flush", "dev", "eth0"]);
  });

  after(async () => {
    await children.stopAll();
    for (const ns of Object.values(NS)) await removeNs(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  async function startTsvs(
    priority: number,
    unicast?: { src: string; peer: string },
    gnaInterval?: number,
  ): Promise<Daemon> {
    const file = writeFile(join(dir, "tsvs.conf"), conf(priority, unicast, gnaInterval));
    tsvs = await startDaemon(NS.d1, ["--config", file], children);
    return tsvs;
  }

  function startKeepalived(priority: number, unicast?: { src: string; peer: string }): void {
    const file = writeFile(join(dir, "ka.conf"), conf(priority, unicast));
    ka.start(children, NS.d2, file, ["-R"]);
  }

  const kaWait = (state: string, ms: number): Promise<void> => ka.wait(state, ms);

  /**
   * After the master is killed at t0 (epoch ms): the backup took over within its master-down time
   * (`took` resolves to when, epoch ms), and the client's entry for the VIP moved to mac without a
   * packet from the client.
   */
  async function movedBy(t0: number, took: () => Promise<number>, mac: string, who: string): Promise<void> {
    const ms = (await took()) - t0;
    console.log(`# ${who} took over ${ms} ms after the master was killed (master-down ${MASTER_DOWN_MS} ms)`);
    // The down timer runs from the last advert, which came up to one interval before the kill.
    assert.ok(ms >= MASTER_DOWN_MS - ADVERT_INT * 1000 - 100, `took over after ${ms} ms: before its timer`);
    assert.ok(ms <= MASTER_DOWN_MS + 1000, `took over after ${ms} ms`);
    assert.ok(
      await waitFor(() => clientNeigh() === mac, 2000),
      `the client's entry for the VIP is ${clientNeigh()}, not ${who}'s ${mac}: no unsolicited NA`,
    );
  }

  it("tsvs (150) started first is master, keepalived (100) backup; tsvs killed: keepalived takes over, its NAs move the client", async () => {
    await startTsvs(150);
    startKeepalived(100);
    await waitState(NS.d1, "MASTER", 8000, "V6");
    await kaWait("BACKUP", 8000);
    const v = statusOf(NS.d1)?.vrrp?.[0] as unknown as { family: number; master: string; drops: object };
    assert.equal(v.family, 6);
    assert.equal(v.master, linkLocal(NS.d1), "tsvs advertises from its link-local address");
    assert.deepEqual(v.drops, {}, "tsvs dropped none of keepalived's adverts");
    // The group is joined at the IP layer too: the kernel reports it (MLD) for switches that snoop.
    assert.match(ip("-n", NS.d1, "-6", "maddr", "show", "dev", "eth0"), /inet6 ff02::12\b/);
    // keepalived stays backup: it hears tsvs's adverts.
    await sleep(2 * ADVERT_INT * 1000);
    assert.equal(ka.state(), "BACKUP");
    assert.ok(await ping6(), "tsvs answers ping at the VIP");
    assert.equal(clientNeigh(), linkMac(NS.d1, "eth0"));

    const t0 = Date.now();
    tsvs?.proc.kill("SIGKILL");
    const kaTook = async () => {
      await kaWait("MASTER", MASTER_DOWN_MS + 2000);
      return Date.now();
    };
    await movedBy(t0, kaTook, linkMac(NS.d2, "eth0"), "keepalived");
    assert.ok(await ping6(), "keepalived's host answers ping at the VIP");
  });

  it("keepalived (150) started first is master, tsvs (100) backup knowing it; keepalived killed: tsvs takes over, its NAs move the client", async () => {
    startKeepalived(150);
    await kaWait("MASTER", 8000);
    // vrrp_gna_interval: the VIP's NAs wait behind the link-local one's, 50 ms apart.
    await startTsvs(100, undefined, 0.05);
    await sleep(2 * ADVERT_INT * 1000);
    const v = statusOf(NS.d1)?.vrrp?.[0] as unknown as {
      state: string;
      master: string;
      advertsRx: number;
      drops: object;
    };
    assert.equal(v.state, "BACKUP");
    assert.equal(v.master, linkLocal(NS.d2), "tsvs knows keepalived's link-local address as the master");
    assert.ok(v.advertsRx >= 1);
    assert.deepEqual(
      v.drops,
      {},
      "keepalived's adverts pass tsvs's checks (checksum over the pseudo-header)",
    );
    assert.equal(ka.state(), "MASTER");
    // A backup's guard holds the VRRP addresses too: its kernel neither answers nor forwards them.
    const own6 = nsExec(NS.d1, ["nft", "list", "set", "netdev", "tsvs", "own6"]);
    for (const a of [A.ll, A.vip]) assert.ok(own6.includes(a), `${a} not in the guard: ${own6}`);
    assert.ok(await ping6(), "keepalived's host answers ping at the VIP");
    assert.equal(clientNeigh(), linkMac(NS.d2, "eth0"));

    const pid = Number(readState(ka.vrrpPid));
    assert.ok(pid > 0, "keepalived's VRRP child pid");
    const t0 = Date.now();
    process.kill(pid, "SIGKILL");
    // When tsvs logged the transition (pino's epoch ms): `tsvs status` takes too long to poll with.
    const log = tsvs?.stderr ?? (() => "");
    const took = () =>
      waitLogTime(log, /VRRP_Instance\(V6\) Entering MASTER STATE/, t0, MASTER_DOWN_MS + 2000);
    await movedBy(t0, took, linkMac(NS.d1, "eth0"), "tsvs");
    // keepalived's VIP is still on d2 (it was killed); the client reaches tsvs, which answers.
    assert.ok(await ping6(), "tsvs answers ping at the VIP");
    assert.equal(clientNeigh(), linkMac(NS.d1, "eth0"));
  });
  it("unicast_src_ip / unicast_peer over IPv6, both ways: adverts to the peer's global address, its MAC from a neighbour solicitation", async () => {
    const tsvsUni = { src: A.d1, peer: A.d2 };
    const kaUni = { src: A.d2, peer: A.d1 };
    // tsvs alone first: as MASTER it must solicit keepalived's MAC (it has heard nothing from it).
    await startTsvs(150, tsvsUni);
    await waitState(NS.d1, "MASTER", 8000, "V6");
    startKeepalived(100, kaUni);
    await kaWait("BACKUP", 8000);
    await sleep(MASTER_DOWN_MS + 500);
    assert.equal(ka.state(), "BACKUP", "keepalived hears tsvs's unicast adverts");
    // tsvs stops (SIGTERM: a priority-0 advert): keepalived takes over after its skew only.
    const t0 = Date.now();
    tsvs?.proc.kill("SIGTERM");
    await kaWait("MASTER", 3000);
    console.log(`# unicast: keepalived took over ${Date.now() - t0} ms after tsvs's priority-0 advert`);
    await tsvs?.exited;
    // tsvs (100) again: a backup that knows keepalived's unicast source as the master.
    await startTsvs(100, tsvsUni);
    await sleep(2 * ADVERT_INT * 1000);
    const v = statusOf(NS.d1)?.vrrp?.[0] as unknown as { state: string; master: string; drops: object };
    assert.equal(v.state, "BACKUP");
    assert.equal(v.master, A.d2, "tsvs hears keepalived's unicast adverts");
    assert.deepEqual(v.drops, {});
    assert.equal(ka.state(), "MASTER");
  });
});
