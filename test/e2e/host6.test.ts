// IPv6 layer 2/3 plumbing against real kernels, in namespaces (ULA fd00:7473:7673::/48, "tsvs"):
//
//   ns c (client)                         ns d (director)
//   c0 fd00:7473:7673:1::1/64   ⇄   d0 fd00:7473:7673:1::fe/64
//
// - the nft guard's IPv6 side keeps the director's kernel from answering an NS for an owned address
//   (the nd6 set, matched on the NS's target) and from taking traffic to it;
// - a packet socket's solicited-node memberships follow the VIPs (`ip maddr`);
// - `tsvs daemon` shows its interface's IPv6 addresses and follows `ip -6 addr add/del` and
//   `ip -6 route add` (status: addrs6, routes6), and its guard lists the link's IPv6 addresses.
// Needs root, iproute2, nft: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { guardScript } from "../../src/daemon/nft.js";
import type { DaemonStatus } from "../../src/daemon/protocol.js";
import { addVethPair, delNetns, freshNetns, ip, nsExec, nsExecStatus } from "../../src/io/netns.js";
import { Children, type Daemon, startDaemon, tsvsIn } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("IPv6 host e2e", ["nftables"]);

const P = process.pid;
const tag = P.toString(36);
const NS = { c: `tsvs6l-${P}-c`, d: `tsvs6l-${P}-d` };
const IF = { c0: `6lc${tag}`, d0: `6ld${tag}` };
const NET = "fd00:7473:7673:1";
const VIP6 = `${NET}::80`;
const children = new Children();

/** An IPv6-enabled namespace pair without DAD (addresses usable at once: no tentative state to wait out). */
function topology(): void {
  freshNetns(Object.values(NS), { ipv6: true });
  addVethPair({ ns: NS.c, ifname: IF.c0 }, { ns: NS.d, ifname: IF.d0 });
  ip("-n", NS.c, "-6", "addr", "add", `${NET}::1/64`, "dev", IF.c0);
  ip("-n", NS.d, "-6", "addr", "add", `${NET}::fe/64`, "dev", IF.d0);
}

function ping6(): boolean {
  return nsExecStatus(NS.c, ["ping", "-6", "-c", "1", "-W", "1", VIP6], 10_000).status === 0;
}

/** The client's neighbour entry for the VIP: its MAC, or null (INCOMPLETE, FAILED, none). */
function clientNeigh(): string | null {
  const rows = JSON.parse(ip("-n", NS.c, "-j", "-6", "neigh", "show", VIP6)) as { lladdr?: string }[];
  return rows[0]?.lladdr ?? null;
}

async function until(what: string, ms: number, probe: () => boolean, d?: Daemon): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (probe()) return;
    if (Date.now() > deadline)
      assert.fail(
        `${what}: not within ${ms} ms${d === undefined ? "" : `\ndaemon:\n${d.stderr().slice(-4000)}`}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("IPv6 plumbing with real kernels", { skip, timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvs6l-"));
  const sock = join(dir, "control.sock");

  before(() => topology());

  after(async () => {
    await children.stopAll();
    for (const ns of Object.values(NS)) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it("the guard keeps the kernel from answering an NS for an owned address", async () => {
    // The host has the VIP on its link: its kernel would answer NDP and ping for it.
    ip("-n", NS.d, "-6", "addr", "add", `${VIP6}/128`, "dev", IF.d0);
    try {
      assert.ok(ping6(), "without the guard the kernel answers");
      assert.ok(clientNeigh() !== null);
      const script = guardScript([IF.d0], [], { owned: [], nat: [], owned6: [VIP6] }, [`${NET}::fe`]);
      const r = spawnSync("ip", ["netns", "exec", NS.d, "nft", "-f", "-"], {
        input: script,
        encoding: "utf8",
      });
      assert.equal(r.status, 0, r.stderr);
      ip("-n", NS.c, "-6", "neigh", "flush", "dev", IF.c0);
      assert.equal(ping6(), false, "guarded: no answer");
      assert.equal(clientNeigh(), null, "the NS itself went unanswered (not only the echo)");
      nsExec(NS.d, ["nft", "delete", "table", "netdev", "tsvs"]);
      // The guarded attempt left an INCOMPLETE entry retrying once a second: start afresh, and
      // give the kernel a few tries (one ping may fall between two of its solicitations).
      ip("-n", NS.c, "-6", "neigh", "flush", "dev", IF.c0);
      await until("answered again once the guard is gone", 5000, ping6);
    } finally {
      ip("-n", NS.d, "-6", "addr", "del", `${VIP6}/128`, "dev", IF.d0);
    }
  });

  it("a packet socket joins and leaves the VIPs' solicited-node groups", () => {
    const common = fileURLToPath(new URL("../../src/io/packet-common.js", import.meta.url));
    const afpacket = fileURLToPath(new URL("../../src/io/afpacket.js", import.meta.url));
    const script = `
      import { execFileSync } from "node:child_process";
      import { SolicitedNodeMemberships } from ${JSON.stringify(common)};
      import { openPacketSocket } from ${JSON.stringify(afpacket)};
      const s = openPacketSocket(${JSON.stringify(IF.d0)});
      const m = new SolicitedNodeMemberships(s.fd, s.ifindex);
      const maddr = () => execFileSync("ip", ["maddr", "show", "dev", ${JSON.stringify(IF.d0)}], { encoding: "utf8" });
      const out = [];
      out.push(m.set(["${VIP6}", "fd00:7473:7673:2::80", "2001:db8::12:3456"]), maddr());
      out.push(m.set(["2001:db8::12:3456"]), maddr());
      out.push(m.set([]), maddr());
      console.log(JSON.stringify(out));
      s.close();
    `;
    const r = spawnSync(
      "ip",
      ["netns", "exec", NS.d, process.execPath, "--input-type=module", "-e", script],
      {
        encoding: "utf8",
        timeout: 20_000,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const [j1, m1, j2, m2, j3, m3] = JSON.parse(r.stdout) as [
      unknown,
      string,
      unknown,
      string,
      unknown,
      string,
    ];
    // …:1::80 and …:2::80 share their low 24 bits: one group.
    assert.deepEqual(j1, { joined: 2, left: 0 });
    assert.match(m1, /link {2}33:33:ff:00:00:80\b/);
    assert.match(m1, /link {2}33:33:ff:12:34:56\b/);
    assert.deepEqual(j2, { joined: 0, left: 1 });
    assert.doesNotMatch(m2, /33:33:ff:00:00:80/);
    assert.match(m2, /33:33:ff:12:34:56/);
    assert.deepEqual(j3, { joined: 0, left: 1 });
    assert.doesNotMatch(m3, /33:33:ff:12:34:56/);
  });

  it("the daemon shows its interface's IPv6 addresses and follows ip -6 addr and route changes", async () => {
    const d = await startDaemon(NS.d, ["--iface", IF.d0, "--control", sock], children);
    const status = (): DaemonStatus => {
      const r = tsvsIn(NS.d, sock, "status", "--json");
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as DaemonStatus;
    };
    const d0 = () => status().host?.interfaces.find((l) => l.name === IF.d0);
    const at = d0();
    assert.equal(at?.served, true);
    assert.ok(at?.addrs6.includes(`${NET}::fe/64`), JSON.stringify(at));
    assert.ok(
      at?.addrs6.some((a) => a.startsWith("fe80::")),
      "the link-local address too",
    );
    const routes6 = status().host?.routes6 ?? 0;
    assert.ok(routes6 >= 2, "the prefix routes of the global and the link-local address");
    assert.match(nsExec(NS.d, ["nft", "list", "set", "netdev", "tsvs", "local6"]), new RegExp(`${NET}::fe`));

    ip("-n", NS.d, "-6", "addr", "add", `${NET}::fd/64`, "dev", IF.d0);
    await until(
      "status shows the new address",
      10_000,
      () => d0()?.addrs6.includes(`${NET}::fd/64`) === true,
      d,
    );
    await until(
      "the guard lists it",
      10_000,
      () => nsExec(NS.d, ["nft", "list", "set", "netdev", "tsvs", "local6"]).includes(`${NET}::fd`),
      d,
    );
    ip("-n", NS.d, "-6", "route", "add", "fd00:7473:7673:99::/64", "via", "fe80::9", "dev", IF.d0);
    await until("status counts the route", 10_000, () => status().host?.routes6 === routes6 + 1, d);
    const logged = /"what":"route added","route":"fd00:7473:7673:99::\/64 via fe80::9 dev /;
    await until("the daemon logs the route", 5_000, () => logged.test(d.stderr()), d);
    ip("-n", NS.d, "-6", "addr", "del", `${NET}::fd/64`, "dev", IF.d0);
    await until(
      "status drops the address",
      10_000,
      () => d0()?.addrs6.includes(`${NET}::fd/64`) === false,
      d,
    );
  });
});
