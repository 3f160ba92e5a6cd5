// NAT64's ICMP errors and path MTU against real kernels (issue 14, docs/ipv6.md "NAT64"), in
// namespaces of their own (ULA fd00:6e36:3634::/48, "n64"; IPv4 198.18.64.0/22):
//
//   c (client)          d (director, tsvs)            x (router)              y (router)        r (real server)
//   c0 ::10/64  ⇄  d0 ::1/64   d1 198.18.64.1/24 ⇄ x0 .64.254   x1 .65.1 ⇄ y0 .65.2   y1 .66.1 ⇄ r0 198.18.66.11
//   fd00:6e36:3634:1::/64      LIP 198.18.64.100       MTU 1400 between x and y; every other link 1500
//
// The service [VIP6]:80 (and udp :9999) has the IPv4 real server r through FULLNAT with the LIP:
//
// - an upload of 2 MiB from the client: its full-sized segments (1500 bytes of IPv6, 1480 of IPv4
//   with DF) cannot cross x → y; x's frag-needed (MTU 1400) reaches the LIP, the director makes it
//   packet too big (MTU 1420) for the client, whose kernel then keeps a path MTU of 1420 toward the
//   VIP, and the upload completes (the server answers the body's sha256);
// - a 10 MiB download arrives intact (sha256) through the same path (y's frag-needed goes to r);
// - a connected UDP socket's datagram to a port nobody listens on: r's port unreachable to the LIP
//   comes back to the client as ICMPv6 port unreachable, and socat's read fails with ECONNREFUSED;
// - a 1300-byte UDP answer without DF (r's UDP server socket is made with ip_no_pmtu_disc): 1328
//   bytes of IPv6, so the director sends it as two IPv6 fragments (RFC 7915 §4.1), which the
//   client's kernel reassembles (Ip6ReasmOKs) and whose UDP checksum it accepts.
//
// Needs root, iproute2, nft, curl, socat: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { addVethPair, delNetns, freshNetns, ip, nsExec, nsExecStatus } from "../../src/io/netns.js";
import { Children, type Daemon, startDaemon, startListener, tsvsIn } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("NAT64 e2e", ["nftables", "curl", "socat"]);

const P = process.pid;
const tag = P.toString(36);
const NS = {
  c: `tsvs64-${P}-c`,
  d: `tsvs64-${P}-d`,
  x: `tsvs64-${P}-x`,
  y: `tsvs64-${P}-y`,
  r: `tsvs64-${P}-r`,
};
const IF = {
  c0: `64c${tag}`,
  d0: `64d${tag}`,
  d1: `64e${tag}`,
  x0: `64x${tag}`,
  x1: `64w${tag}`,
  y0: `64y${tag}`,
  y1: `64z${tag}`,
  r0: `64r${tag}`,
};
const NET6 = "fd00:6e36:3634:1";
const CLIENT6 = `${NET6}::10`;
const DIR6 = `${NET6}::1`;
const VIP6 = `${NET6}::100`;
const LIP = "198.18.64.100";
const RIP = "198.18.66.11";
const SMALL_MTU = 1400;
const children = new Children();

function topology(): void {
  freshNetns(Object.values(NS));
  for (const ns of [NS.c, NS.d])
    for (const k of ["all", "default"])
      nsExec(ns, [
        "sysctl",
        "-q",
        "-w",
        `net.ipv6.conf.${k}.disable_ipv6=0`,
        `net.ipv6.conf.${k}.accept_dad=0`,
      ]);
  addVethPair({ ns: NS.c, ifname: IF.c0 }, { ns: NS.d, ifname: IF.d0 });
  addVethPair(
    { ns: NS.d, ifname: IF.d1, cidr: "198.18.64.1/24" },
    { ns: NS.x, ifname: IF.x0, cidr: "198.18.64.254/24" },
  );
  addVethPair(
    { ns: NS.x, ifname: IF.x1, cidr: "198.18.65.1/24" },
    { ns: NS.y, ifname: IF.y0, cidr: "198.18.65.2/24" },
  );
  addVethPair(
    { ns: NS.y, ifname: IF.y1, cidr: "198.18.66.1/24" },
    { ns: NS.r, ifname: IF.r0, cidr: `${RIP}/24` },
  );
  ip("-n", NS.x, "link", "set", IF.x1, "mtu", String(SMALL_MTU));
  ip("-n", NS.y, "link", "set", IF.y0, "mtu", String(SMALL_MTU));
  ip("-n", NS.c, "-6", "addr", "add", `${CLIENT6}/64`, "dev", IF.c0, "nodad");
  ip("-n", NS.d, "-6", "addr", "add", `${DIR6}/64`, "dev", IF.d0, "nodad");
  ip("-n", NS.d, "route", "add", "198.18.64.0/22", "via", "198.18.64.254");
  ip("-n", NS.x, "route", "add", "198.18.66.0/24", "via", "198.18.65.2");
  ip("-n", NS.y, "route", "add", "default", "via", "198.18.65.1");
  ip("-n", NS.r, "route", "add", "default", "via", "198.18.66.1");
  for (const ns of [NS.x, NS.y]) {
    // Routers: forwarding, and frag-needed without the per-destination rate limit.
    nsExec(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0"]);
  }
  nsExec(NS.r, ["sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0"]);
}

/** The real server: GET /bytes/N a pattern of N bytes, PUT /sha256 the body's sha256 (hex). */
const SERVER = `
const http = require("http");
const { createHash } = require("crypto");
const chunk = Buffer.alloc(65536);
for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7 + 3) & 255;
http.createServer((q, s) => {
  s.setHeader("connection", "close");
  if (q.method === "PUT") {
    const h = createHash("sha256");
    q.on("data", (d) => h.update(d));
    q.on("end", () => s.end(h.digest("hex") + "\\n"));
    return;
  }
  const n = Number((q.url.match(/^\\/bytes\\/(\\d+)$/) || [])[1] || 0);
  s.setHeader("content-length", n);
  let left = n;
  const more = () => {
    while (left > 0) {
      const k = Math.min(left, chunk.length);
      left -= k;
      if (!s.write(chunk.subarray(0, k))) return s.once("drain", more);
    }
    s.end();
  };
  more();
}).listen(80, "0.0.0.0", () => console.log("listening"));
`;

function patternSha256(n: number): string {
  const chunk = Buffer.alloc(65536);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7 + 3) & 255;
  const h = createHash("sha256");
  for (let off = 0; off < n; off += chunk.length)
    h.update(chunk.subarray(0, Math.min(chunk.length, n - off)));
  return h.digest("hex");
}

/** r's UDP answer on :7: 1300 bytes of "a" to every datagram, from a socket without DF. */
const UDP_SERVER = `
const s = require("dgram").createSocket("udp4");
s.on("message", (m, r) => s.send(Buffer.alloc(1300, 0x61), r.port, r.address));
s.bind(7, "0.0.0.0", () => console.log("listening"));
`;

/** A counter of the client's /proc/net/snmp6. */
function clientSnmp6(name: string): number {
  const out = nsExec(NS.c, ["cat", "/proc/net/snmp6"]);
  const m = new RegExp(`^${name}\\s+(\\d+)$`, "m").exec(out);
  assert.ok(m !== null, `${name} in /proc/net/snmp6`);
  return Number(m[1]);
}

/** The path MTU the client's kernel keeps toward the VIP (`ip -6 route get`), or null. */
function clientPmtu(): number | null {
  const out = ip("-n", NS.c, "-6", "route", "get", VIP6);
  const m = /\bmtu (\d+)/.exec(out);
  return m === null ? null : Number(m[1]);
}

describe(
  "NAT64: frag-needed and port unreachable from the IPv4 side reach the IPv6 client",
  { skip, timeout: 120_000 },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "tsvs64-"));
    const sock = join(dir, "control.sock");
    let d: Daemon | undefined;

    before(async () => {
      topology();
      await startListener(NS.r, SERVER, children, "http server");
      // Sockets made from now on in r send without DF (IP_PMTUDISC_DONT); the HTTP server's listener,
      // made before, and the connections it accepts keep DF.
      nsExec(NS.r, ["sysctl", "-q", "-w", "net.ipv4.ip_no_pmtu_disc=1"]);
      await startListener(NS.r, UDP_SERVER, children, "udp server");
      d = await startDaemon(NS.d, ["--iface", IF.d0, "--iface", IF.d1, "--control", sock], children);
      const adm = (...args: string[]): void => {
        const r = tsvsIn(NS.d, sock, "ipvsadm", ...args);
        assert.equal(r.status, 0, `ipvsadm ${args.join(" ")}: ${r.stderr}`);
      };
      adm("-A", "-t", `[${VIP6}]:80`, "-s", "rr");
      adm("-a", "-t", `[${VIP6}]:80`, "-r", `${RIP}:80`, "--fullnat");
      adm("-P", "-t", `[${VIP6}]:80`, "-z", LIP);
      adm("-A", "-u", `[${VIP6}]:9999`, "-s", "rr");
      adm("-a", "-u", `[${VIP6}]:9999`, "-r", `${RIP}:9999`, "--fullnat");
      adm("-P", "-u", `[${VIP6}]:9999`, "-z", LIP);
      adm("-A", "-u", `[${VIP6}]:7`, "-s", "rr");
      adm("-a", "-u", `[${VIP6}]:7`, "-r", `${RIP}:7`, "--fullnat");
      adm("-P", "-u", `[${VIP6}]:7`, "-z", LIP);
    });

    after(async () => {
      await children.stopAll();
      for (const ns of Object.values(NS)) delNetns(ns);
      rmSync(dir, { recursive: true, force: true });
    });

    /** curl in the client namespace (with a retry while the neighbours are being learned). */
    function curl(args: string[], timeoutS: number): { status: number; stdout: string; stderr: string } {
      let r = { status: -1, stdout: "", stderr: "" };
      for (let i = 0; i < 3; i++) {
        r = nsExecStatus(
          NS.c,
          ["curl", "-g", "-6", "-s", "-S", "--connect-timeout", "5", "--max-time", String(timeoutS), ...args],
          (timeoutS + 10) * 1000,
        );
        if (r.status !== 7 && r.status !== 28) break;
      }
      return r;
    }

    it("an upload too big for the x → y link: frag-needed becomes packet too big (1420), and it completes", () => {
      assert.equal(clientPmtu(), null, "no path MTU known before");
      const body = Buffer.alloc(2 << 20);
      for (let i = 0; i < body.length; i++) body[i] = (i * 31 + 7) & 255;
      const file = join(dir, "up");
      writeFileSync(file, body);
      const r = curl(["-T", file, `http://[${VIP6}]/sha256`], 40);
      assert.equal(r.status, 0, `curl exit ${r.status}: ${r.stderr}\ndaemon:\n${d?.stderr().slice(-2000)}`);
      assert.equal(r.stdout.trim(), createHash("sha256").update(body).digest("hex"));
      assert.equal(clientPmtu(), SMALL_MTU + 20, "the client learned the translated packet too big");
    });

    it("a 10 MiB download arrives intact through the same path", () => {
      const size = 10 << 20;
      const file = join(dir, "down");
      const r = curl(["-o", file, `http://[${VIP6}]/bytes/${size}`], 50);
      assert.equal(r.status, 0, `curl exit ${r.status}: ${r.stderr}`);
      const got = readFileSync(file);
      assert.equal(
        `${got.length} ${createHash("sha256").update(got).digest("hex")}`,
        `${size} ${patternSha256(size)}`,
      );
    });

    it("UDP to a port nobody listens on: the client's connected socket gets ECONNREFUSED", () => {
      let r = { status: -1, stdout: "", stderr: "" };
      for (let i = 0; i < 3; i++) {
        r = nsExecStatus(NS.c, ["sh", "-c", `echo ping | socat -t 3 -T 3 - UDP6:[${VIP6}]:9999`], 15_000);
        if (/Connection refused/.test(r.stderr)) break;
      }
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /Connection refused/, `socat: ${r.stderr}`);
    });

    it("a 1300-byte UDP answer without DF: two IPv6 fragments, reassembled by the client", () => {
      const before = clientSnmp6("Ip6ReasmOKs");
      let r = { status: -1, stdout: "", stderr: "" };
      for (let i = 0; i < 3; i++) {
        r = nsExecStatus(NS.c, ["sh", "-c", `echo ping | socat -t 2 -T 3 - UDP6:[${VIP6}]:7`], 15_000);
        if (r.stdout.length > 0) break;
      }
      assert.equal(r.stdout, "a".repeat(1300), `socat: ${r.status} ${r.stderr}`);
      assert.ok(clientSnmp6("Ip6ReasmOKs") > before, "the answer came in fragments");
    });
  },
);
