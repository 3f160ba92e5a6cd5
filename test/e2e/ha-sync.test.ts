// Connection sync the drop-in way (docs/ha.md): `tsvs daemon` with no arguments on both directors
// and `ip netns exec D tsvs ipvsadm --start-daemon …` as on a kernel director, no VRRP. The
// backup starts late, while long downloads run through the master: it gets their connections
// from the periodic re-syncs (sync_threshold 3 50), and lists them (`ipvsadm -Lnc`). It runs a
// master daemon of its own at the same time (active-active). A message with another syncid is
// ignored; malformed datagrams are counted by reason and dropped, and the daemon keeps going.
// Topology: ha-helpers.ts, DR; the backup serves the VIP only while the host has it
// (--host-vips), so the client's ARP for it has one answer.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { nsExecStatus } from "../../src/io/netns.js";
import { sleep, waitFor } from "../../src/lab/proc.js";
import { Children, ENTRY, startDaemon } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";
import {
  buildHa,
  HA,
  haNames,
  realserverDr,
  removeHa,
  removeStaleHa,
  serverRoutes,
  spawnIn,
  startServers,
  statusOf,
} from "./ha-helpers.js";

const skip = e2eSkip("HA sync e2e", ["nftables", "curl"]);

/** `ip netns exec ns tsvs ipvsadm ARGS` (the namespace's default control socket). */
function ipvsadm(ns: string, ...args: string[]): { status: number; stdout: string; stderr: string } {
  return nsExecStatus(ns, [process.execPath, ENTRY, "ipvsadm", ...args], 15_000);
}

function ok(ns: string, ...args: string[]): string {
  const r = ipvsadm(ns, ...args);
  assert.equal(r.status, 0, `ipvsadm ${args.join(" ")} in ${ns}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

function addService(ns: string): void {
  ok(ns, "-A", "-t", `${HA.VIP}:${HA.PORT}`, "-s", "rr");
  for (const r of [HA.R1, HA.R2]) ok(ns, "-a", "-t", `${HA.VIP}:${HA.PORT}`, "-r", `${r}:${HA.PORT}`, "-g");
}

/** Connections to the VIP in `ipvsadm -Lnc` of ns, from client address `from`. */
function connsFrom(ns: string, from: string): number {
  return ok(ns, "-Lnc")
    .split("\n")
    .filter((l) => l.includes(` ${from}:`) && l.includes(`${HA.VIP}:${HA.PORT}`)).length;
}

/** A v1 sync message with one DR TCP connection, by hand from struct ip_vs_sync_v4. */
function v1Message(syncid: number, caddr: number[]): Buffer {
  const m = Buffer.alloc(8 + 36);
  m.writeUInt8(0, 0);
  m.writeUInt8(syncid, 1);
  m.writeUInt16BE(m.length, 2);
  m.writeUInt8(1, 4); // nr_conns
  m.writeUInt8(1, 5); // version
  const e = 8;
  m.writeUInt8(0, e); // type: IPv4
  m.writeUInt8(6, e + 1);
  m.writeUInt16BE(36, e + 2); // ver_size
  m.writeUInt32BE(3, e + 4); // flags: IP_VS_CONN_F_DROUTE
  m.writeUInt16BE(1, e + 8); // ESTABLISHED
  m.writeUInt16BE(40000, e + 10);
  m.writeUInt16BE(HA.PORT, e + 12);
  m.writeUInt16BE(HA.PORT, e + 14);
  m.writeUInt32BE(0, e + 16); // fwmark
  m.writeUInt32BE(900, e + 20); // timeout s
  Buffer.from(caddr).copy(m, e + 24);
  Buffer.from(HA.VIP.split(".").map(Number)).copy(m, e + 28);
  Buffer.from(HA.R1.split(".").map(Number)).copy(m, e + 32);
  return m;
}

/** Sends datagrams (hex) from the router x to 224.0.0.81:8848 on the server LAN. */
function sendFromX(ns: string, hexes: string[]): void {
  const src = `const s=require("dgram").createSocket("udp4");s.bind(0,"${HA.XL}",()=>{s.setMulticastInterface("${HA.XL}");let n=0;for(const h of ${JSON.stringify(
    hexes,
  )})s.send(Buffer.from(h,"hex"),8848,"224.0.0.81",()=>{if(++n===${hexes.length})s.close()});});`;
  const r = nsExecStatus(ns, [process.execPath, "-e", src], 10_000);
  assert.equal(r.status, 0, r.stderr);
}

describe(
  "connection sync, drop-in: ipvsadm --start-daemon, a late backup, active-active, bad datagrams",
  { skip },
  () => {
    const n = haNames("s");
    const children = new Children();

    before(async () => {
      await removeStaleHa("s");
      buildHa(n);
      serverRoutes(n, "dr");
      realserverDr(n);
      await startServers(n, children);
    });

    after(async () => {
      await children.stopAll();
      await removeHa(n);
    });

    it("ipvsadm --start-daemon / -L --daemon / --stop-daemon with ipvsadm's output and errors", async () => {
      await startDaemon(n.d1, [], children);
      addService(n.d1);
      assert.equal(ok(n.d1, "-L", "--daemon"), "");
      ok(n.d1, "--start-daemon", "master", "--mcast-interface", "eth1", "--syncid", "9");
      assert.equal(
        ok(n.d1, "-L", "--daemon"),
        "master sync daemon (mcast=eth1, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
      );
      const again = ipvsadm(n.d1, "--start-daemon", "master", "--mcast-interface", "eth1");
      assert.notEqual(again.status, 0);
      assert.match(again.stderr, /Daemon has already run/);
      const none = ipvsadm(n.d1, "--stop-daemon", "backup");
      assert.notEqual(none.status, 0);
      assert.match(none.stderr, /No daemon is running/);
      const bad = ipvsadm(n.d1, "--start-daemon", "master", "--syncid", "300");
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, /illegal syncid specified/);
      // A TUN real server of the other family (IPv6 for this IPv4 VIP), as the kernel: refused
      // while a sync daemon runs, and no daemon starts while one is there (the v1 entry has one
      // family; ip_vs_genl_set_cmd / ip_vs_genl_new_daemon answer EINVAL).
      const svc = `${HA.VIP}:${HA.PORT}`;
      const rip6 = `[2001:db8:9::1]:${HA.PORT}`;
      const mixed = ipvsadm(n.d1, "-a", "-t", svc, "-r", rip6, "-i");
      assert.notEqual(mixed.status, 0);
      assert.match(mixed.stderr, /Invalid operation/);
      ok(n.d1, "--stop-daemon", "master");
      ok(n.d1, "-a", "-t", svc, "-r", rip6, "-i");
      const refused = ipvsadm(n.d1, "--start-daemon", "master", "--mcast-interface", "eth1");
      assert.notEqual(refused.status, 0);
      assert.match(refused.stderr, /Invalid operation/);
      assert.equal(ok(n.d1, "-L", "--daemon"), "", "nothing started");
      ok(n.d1, "-d", "-t", svc, "-r", rip6);
      ok(n.d1, "--start-daemon", "master", "--mcast-interface", "eth1", "--syncid", "9");
    });

    it("a backup started late gets the running connections; it runs a master too (active-active)", async () => {
      // Re-sync every 10 packets instead of 50 (the downloads are paced by the server, but a client
      // behind GRO acks whole aggregates), set as on a kernel director: sync_threshold = "3 10".
      const sc = nsExecStatus(n.d1, [process.execPath, ENTRY, "sysctl", "sync_threshold=3,10"]);
      assert.equal(sc.status, 0, sc.stderr);
      assert.match(sc.stdout, /sync_threshold = 3\s+10/);
      const curls = [];
      const ended: string[] = [];
      const t0 = Date.now();
      for (let i = 0; i < 10; i++) {
        const p = spawnIn(
          children,
          n.c,
          [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-m",
            "30",
            `http://${HA.VIP}:${HA.PORT}/bytes/${24 << 20}?rate=${1 << 20}`,
          ],
          ["ignore", "ignore", "pipe"],
        );
        let err = "";
        p.stderr?.on("data", (d) => {
          err += String(d);
        });
        p.once("exit", (code) => ended.push(`#${i} exit ${code} after ${Date.now() - t0} ms ${err.trim()}`));
        curls.push(p);
      }
      await sleep(1000);
      await startDaemon(n.d2, ["--host-vips"], children);
      addService(n.d2);
      ok(n.d2, "--start-daemon", "backup", "--mcast-interface", "eth1", "--syncid", "9");
      ok(n.d2, "--start-daemon", "master", "--mcast-interface", "eth1", "--syncid", "10");
      assert.equal(
        ok(n.d2, "-L", "--daemon"),
        "master sync daemon (mcast=eth1, syncid=10, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
          "backup sync daemon (mcast=eth1, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
      );
      // Re-synced every 10 packets of each connection (a client behind GRO acks 64 KiB aggregates:
      // about 16 packets a second at 1 MB/s), and a partly filled message leaves within 2 s.
      const got = await waitFor(() => connsFrom(n.d2, HA.CIP) >= 10, 15_000, 200);
      assert.ok(
        got,
        `the late backup lists ${connsFrom(n.d2, HA.CIP)} of the 10 connections:\n${ok(n.d2, "-Lnc")}\nmaster:\n${ok(n.d1, "-Lnc")}\nended: ${ended.join("; ")}`,
      );
      const st = statusOf(n.d2)?.sync?.find((s) => s.role === "backup");
      assert.ok((st?.connsReceived ?? 0) >= 10);
      // The master's own backup (syncid 9 filter) ignores d2's master messages (syncid 10).
      for (const p of curls) p.kill("SIGTERM");
    });

    it("another syncid is ignored; malformed datagrams are counted and dropped, never a crash", async () => {
      const before = statusOf(n.d2)?.sync?.find((s) => s.role === "backup");
      assert.ok(before !== undefined, "the backup runs");
      sendFromX(n.x, [
        v1Message(99, [198, 18, 99, 99]).toString("hex"),
        "01", // short
        "0009000c0000", // size says 12, 6 bytes came
        Buffer.concat([v1Message(9, [198, 18, 99, 98]).subarray(0, 8), Buffer.alloc(10, 0xff)])
          .toString("hex")
          .replace(/^(..)(..)(....)/, (_, a, b) => `${a}${b}${(8 + 10).toString(16).padStart(4, "0")}`), // an entry cut short
      ]);
      await sleep(500);
      const after = statusOf(n.d2)?.sync?.find((s) => s.role === "backup");
      assert.ok(after !== undefined, "the daemon still answers");
      const drops = after.drops;
      assert.ok((drops.syncid ?? 0) >= 1, `syncid drop not counted: ${JSON.stringify(drops)}`);
      const malformed = Object.entries(drops)
        .filter(([k]) => k !== "syncid")
        .reduce((a, [, v]) => a + v, 0);
      assert.ok(malformed >= 3, `malformed datagrams not counted: ${JSON.stringify(drops)}`);
      assert.equal(connsFrom(n.d2, "198.18.99.99"), 0, "the other syncid's connection was not installed");
      // A good message afterwards is still taken.
      sendFromX(n.x, [v1Message(9, [198, 18, 99, 97]).toString("hex")]);
      assert.ok(
        await waitFor(() => connsFrom(n.d2, "198.18.99.97") === 1, 3000, 100),
        "a good message after bad ones",
      );
    });
  },
);
