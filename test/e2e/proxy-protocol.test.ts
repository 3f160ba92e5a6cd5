// FULLNAT with the PROXY protocol against real nginx (`listen … proxy_protocol`), in namespaces of
// its own (IPv4 198.18.88.0/22, ULA fd00:7070:7070::/48; "pp"):
//
//   c (client)                         d (director, tsvs)                       r (real server, nginx)
//   c0 198.18.88.10   ⇄  d0 198.18.88.1 (VIP .88.100)   d1 198.18.89.1 (LIP .89.100)  ⇄  r0 198.18.89.11
//      fd00:7070:7070:1::10  fd00:7070:7070:1::1 (VIP ::100)  fd00:7070:7070:2::1 (LIP ::100)  fd00:7070:7070:2::11
//
// The daemon runs `--config keepalived.conf` with four FULLNAT services and HTTP_GET checks, `alpha`
// (a real server is in only once its check has passed, which nginx refuses without the header):
//   198.18.88.100:80  proxy_protocol v2 → 198.18.89.11:80               (IPv4 ↔ IPv4)
//   [VIP6]:80         proxy_protocol v1 → [fd00:7070:7070:2::11]:80     (IPv6 ↔ IPv6)
//   [VIP6]:81         proxy_protocol v2 → 198.18.89.11:81               (NAT64: the header's IPv6 form)
//   198.18.88.100:82  proxy_protocol v1-insecure → 198.18.89.11:82      (a client's own header passes)
// nginx answers `$proxy_protocol_addr:$proxy_protocol_port`: curl sees its own address and port; a
// 10 MiB body arrives intact (sha256) through each; a 2 MiB PUT written at once (socat) arrives
// intact in nginx's file: its first segment is full-sized, so with the header it leaves as two (the
// header alone first; seen once with a trace in ppAlone for each family), the rest shifted.
//
// Needs root, iproute2, curl, nginx, socat: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { delNetns, nsExec, nsExecStatus } from "../../src/io/netns.js";
import { nginxHead } from "../../src/lab/servers.js";
import { buildDualStackLine } from "../support/dual-stack-line.js";
import { Children, startDaemon, tsvsIn } from "../support/e2e-daemon.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("PROXY protocol e2e", ["curl", "nginx", "socat"]);

const P = process.pid;
const tag = P.toString(36);
const NS = { c: `tsvspp-${P}-c`, d: `tsvspp-${P}-d`, r: `tsvspp-${P}-r` };
const IF = { c0: `ppc${tag}`, d0: `ppd${tag}`, d1: `ppe${tag}`, r0: `ppr${tag}` };
const C4 = "198.18.88.10";
const VIP4 = "198.18.88.100";
const LIP4 = "198.18.89.100";
const R4 = "198.18.89.11";
const N1 = "fd00:7070:7070:1";
const N2 = "fd00:7070:7070:2";
const C6 = `${N1}::10`;
const VIP6 = `${N1}::100`;
const LIP6 = `${N2}::100`;
const R6 = `${N2}::11`;
const BIG = 10 << 20;
const UP = 2 << 20;
const children = new Children();

function topology(): void {
  buildDualStackLine({
    ns: NS,
    ifs: IF,
    c4: C4,
    d0v4: "198.18.88.1",
    d1v4: "198.18.89.1",
    r4: R4,
    n1: N1,
    n2: N2,
    c6: C6,
    r6: R6,
  });
}

function nginxConf(dir: string): string {
  return `${nginxHead(dir, { connections: 64, accessLog: true })}  server {
    listen ${R4}:80 proxy_protocol;
    listen [${R6}]:80 proxy_protocol;
    listen ${R4}:81 proxy_protocol;
    listen ${R4}:82 proxy_protocol;
    root ${dir}/www;
    location = / { default_type text/plain; return 200 "$proxy_protocol_addr:$proxy_protocol_port\\n"; }
    location /up/ { dav_methods PUT; client_max_body_size 16m; }
  }
}
`;
}

function keepalivedConf(): string {
  const check = `HTTP_GET { url { path / status_code 200 } connect_timeout 2 }`;
  const vs = (addr: string, port: number, pp: string, rs: string, rport: number, group: string): string => `
virtual_server ${addr} ${port} {
    delay_loop 1
    lb_algo rr
    lb_kind FNAT
    protocol TCP
    alpha
    proxy_protocol ${pp}
    laddr_group_name ${group}
    real_server ${rs} ${rport} {
        weight 1
        ${check}
    }
}`;
  return [
    `local_address_group lip4 { ${LIP4} }`,
    `local_address_group lip6 { ${LIP6} }`,
    vs(VIP4, 80, "v2", R4, 80, "lip4"),
    vs(VIP6, 80, "v1", R6, 80, "lip6"),
    vs(VIP6, 81, "v2", R4, 81, "lip4"),
    vs(VIP4, 82, "v1-insecure", R4, 82, "lip4"),
  ].join("\n");
}

describe(
  "FULLNAT --proxy-protocol: nginx sees the client's address and port",
  { skip, timeout: 90_000 },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "tsvspp-"));
    const sock = join(dir, "control.sock");
    let stderr = (): string => "";

    before(async () => {
      topology();
      // nginx's worker (nobody) reads the body from here.
      chmodSync(dir, 0o755);
      const www = join(dir, "www");
      nsExec(NS.r, ["mkdir", "-p", www]);
      const big = Buffer.alloc(BIG);
      for (let i = 0; i < big.length; i++) big[i] = (i * 13 + 5) & 255;
      writeFileSync(join(www, "big"), big);
      // nginx's PUT target (its worker writes there).
      nsExec(NS.r, ["mkdir", "-p", join(www, "up")]);
      chmodSync(join(www, "up"), 0o777);
      writeFileSync(join(dir, "upload"), Buffer.from(big.subarray(0, UP)).reverse());
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
      writeFileSync(join(dir, "keepalived.conf"), keepalivedConf());
      const d = await startDaemon(
        NS.d,
        ["--iface", IF.d0, "--iface", IF.d1, "--control", sock, "--config", join(dir, "keepalived.conf")],
        children,
      );
      stderr = d.stderr;
      // alpha: each real server is in once its HTTP_GET (with the check's PROXY header) has passed.
      const deadline = Date.now() + 20_000;
      for (;;) {
        const r = tsvsIn(NS.d, sock, "ipvsadm", "-Ln");
        const up = r.stdout.split("\n").filter((l) => /^ {2}-> .*FullNat\s+1\s/.test(l)).length;
        if (up === 4) break;
        if (Date.now() > deadline)
          assert.fail(
            `real servers not up after 20 s:\n${r.stdout}\n${d.stderr().slice(-3000)}\n${errorLog(dir)}`,
          );
        await new Promise((res) => setTimeout(res, 200));
      }
    });

    after(async () => {
      await children.stopAll();
      for (const ns of Object.values(NS)) delNetns(ns);
      rmSync(dir, { recursive: true, force: true });
    });

    function curl(args: string[], timeoutS = 30): { status: number; stdout: string; stderr: string } {
      let r = { status: -1, stdout: "", stderr: "" };
      for (let i = 0; i < 3; i++) {
        r = nsExecStatus(
          NS.c,
          ["curl", "-g", "-s", "-S", "--connect-timeout", "5", "--max-time", String(timeoutS), ...args],
          (timeoutS + 10) * 1000,
        );
        if (r.status !== 7 && r.status !== 28) break;
      }
      return r;
    }

    const cases = [
      { name: "IPv4 FULLNAT, v2", url: `http://${VIP4}/`, client: C4, socat: `${VIP4}:80` },
      { name: "IPv6 FULLNAT, v1", url: `http://[${VIP6}]/`, client: C6, socat: `[${VIP6}]:80` },
      { name: "NAT64, v2 (IPv6 form)", url: `http://[${VIP6}]:81/`, client: C6, socat: `[${VIP6}]:81` },
    ];
    for (const c of cases) {
      it(`${c.name}: curl's own address and port come back; 10 MiB down and 2 MiB up intact`, () => {
        const r = curl(["-w", " %{local_ip} %{local_port}", c.url]);
        assert.equal(r.status, 0, `curl ${r.status}: ${r.stderr}\n${stderr().slice(-2000)}`);
        const [echoed, localIp, localPort] = r.stdout.trim().split(/\s+/);
        assert.equal(echoed, `${localIp}:${localPort}`, "nginx's $proxy_protocol_addr:$proxy_protocol_port");
        assert.equal(localIp, c.client);
        const file = join(dir, "got");
        const b = curl(["-o", file, `${c.url}big`], 40);
        assert.equal(b.status, 0, `curl ${b.status}: ${b.stderr}`);
        const got = readFileSync(file);
        const want = Buffer.alloc(BIG);
        for (let i = 0; i < want.length; i++) want[i] = (i * 13 + 5) & 255;
        assert.equal(got.length, BIG);
        assert.equal(
          createHash("sha256").update(got).digest("hex"),
          createHash("sha256").update(want).digest("hex"),
        );
        // An upload written at once (request and body in socat's 8 KiB writes): the client's first
        // segment is full-sized, so with the header it no longer fits the link and leaves as two
        // (the header alone first); every later one is shifted. nginx stores what it got.
        const name = `up/${c.name.replace(/\W+/g, "-")}`;
        const req = join(dir, `req-${name.slice(3)}`);
        const body = readFileSync(join(dir, "upload"));
        const head = `PUT /${name} HTTP/1.1\r\nHost: vip\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
        writeFileSync(req, Buffer.concat([Buffer.from(head), body]));
        const u = nsExecStatus(NS.c, ["sh", "-c", `socat -t 10 -T 30 - TCP:${c.socat} < ${req}`], 45_000);
        assert.match(u.stdout, /^HTTP\/1\.1 201 /, `socat ${u.status}: ${u.stderr}${u.stdout.slice(0, 200)}`);
        assert.equal(
          createHash("sha256")
            .update(readFileSync(join(dir, "www", name)))
            .digest("hex"),
          createHash("sha256").update(body).digest("hex"),
        );
      });
    }

    it("a client's own PROXY header: replaced by the director's (v2), passed on with v1-insecure", () => {
      const spoof = "PROXY TCP4 192.0.2.1 198.51.100.2 1111 2222\r\n";
      const ask = (port: number): string => {
        const q = join(dir, `spoof-${port}`);
        writeFileSync(q, `${spoof}GET / HTTP/1.0\r\nHost: vip\r\n\r\n`);
        const r = nsExecStatus(NS.c, ["sh", "-c", `socat -t 5 -T 10 - TCP:${VIP4}:${port} < ${q}`], 20_000);
        assert.match(r.stdout, /^HTTP\/1\.1 200 /, `socat ${r.status}: ${r.stderr}`);
        return r.stdout.trim().split("\n").at(-1) ?? "";
      };
      assert.match(ask(80), new RegExp(`^${C4.replaceAll(".", "\\.")}:\\d+$`), "secure: the real client");
      assert.equal(ask(82), "192.0.2.1:1111", "insecure: what the client said");
    });

    it("the health checks (from the director's own addresses) got 200 through the PROXY listeners; no broken header", () => {
      const log = readFileSync(join(dir, "nginx-access.log"), "utf8");
      assert.match(log, /^198\.18\.89\.1 .*"GET \/ HTTP\/1\.1" 200 /m, "the IPv4 checks");
      assert.match(log, new RegExp(`^${N2}::1 .*"GET / HTTP/1\\.1" 200 `, "m"), "the IPv6 check");
      assert.doesNotMatch(errorLog(dir), /broken header/);
    });
  },
);

function errorLog(dir: string): string {
  try {
    return readFileSync(join(dir, "nginx-error.log"), "utf8");
  } catch {
    return "";
  }
}
