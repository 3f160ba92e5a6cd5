// Health checks over IPv6 (issue 14) against real listeners on the loopback ::1: TCP_CHECK,
// HTTP_GET (the Host header in brackets, as keepalived's check_http.c writes an IPv6 literal),
// DNS_CHECK over udp6 (an AAAA answer), MISC_CHECK, bindto as the source address, connect_ip, and a
// runner whose check goes down and comes back up when the listener does. Skipped where the host
// has no IPv6 loopback.

import assert from "node:assert/strict";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer as createTcpServer, type Server } from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parseKeepalived } from "../../src/config/keepalived.js";
import type { CtlCommand } from "../../src/core/ctl-types.js";
import { dnsCheck } from "../../src/health/check-dns.js";
import { hostHeader, httpCheck } from "../../src/health/check-http.js";
import { miscCheck } from "../../src/health/check-misc.js";
import { tcpCheck } from "../../src/health/check-tcp.js";
import { checkTarget, HealthRunner } from "../../src/health/runner.js";
import { type HealthEvent, HealthState } from "../../src/health/state.js";

const HOST = "::1";
const portOf = (s: { address(): AddressInfo | string | null }) => (s.address() as AddressInfo).port;
const listen = <T extends { listen(port: number, host: string, cb: () => void): unknown }>(s: T, port = 0) =>
  new Promise<T>((resolve) => s.listen(port, HOST, () => resolve(s)));
const close = (s: { close(cb: () => void): unknown }) =>
  new Promise<void>((resolve) => s.close(() => resolve()));

/** Whether ::1 can be listened on (IPv6 may be off in a container). */
const HAVE_V6 = await new Promise<boolean>((resolve) => {
  const s = createTcpServer();
  s.once("error", () => resolve(false));
  s.listen(0, HOST, () => s.close(() => resolve(true)));
});
const skip = HAVE_V6 ? false : "no IPv6 loopback (::1) here";

async function closedPort(): Promise<number> {
  const s = await listen(createTcpServer());
  const p = portOf(s);
  await close(s);
  return p;
}

describe("checkers over IPv6", { skip }, () => {
  it("TCP_CHECK connects to ::1, from bindto when given", async () => {
    const peers: string[] = [];
    const srv = await listen(
      createTcpServer((c) => {
        peers.push(c.remoteAddress ?? "");
        c.end();
      }),
    );
    const port = portOf(srv);
    assert.deepEqual(await tcpCheck({ host: HOST, port }, { timeoutMs: 1000 }), {
      ok: true,
      detail: "connected",
    });
    assert.deepEqual(await tcpCheck({ host: HOST, port, localAddress: HOST }, { timeoutMs: 1000 }), {
      ok: true,
      detail: "connected",
    });
    await close(srv);
    assert.deepEqual(peers, [HOST, HOST]);
    assert.deepEqual(await tcpCheck({ host: HOST, port: await closedPort() }, { timeoutMs: 1000 }), {
      ok: false,
      detail: "ECONNREFUSED",
    });
  });

  it("HTTP_GET sends Host: [::1]:PORT as keepalived does, or the virtualhost", async () => {
    const hosts: string[] = [];
    const srv = await listen(
      createHttpServer((req, res) => {
        hosts.push(String(req.headers.host));
        res.writeHead(req.url === "/health" ? 200 : 404).end("ok");
      }),
    );
    const port = portOf(srv);
    const url = (path: string) => ({ path, digest: "", statusCodes: [] });
    const check = (path: string, virtualHost = "", localAddress?: string) =>
      httpCheck(
        { host: HOST, port, localAddress },
        { timeoutMs: 1000, tls: false, urls: [url(path)], virtualHost },
      );
    assert.deepEqual(await check("/health"), { ok: true, detail: "/health: status 200" });
    assert.deepEqual(await check("/health", "www.example.net", HOST), {
      ok: true,
      detail: "/health: status 200",
    });
    assert.deepEqual(await check("/missing"), { ok: false, detail: "/missing: status 404" });
    await close(srv);
    assert.deepEqual(hosts, [`[::1]:${port}`, "www.example.net", `[::1]:${port}`]);
    assert.equal(hostHeader({ host: "2001:db8::1", port: 80 }), "[2001:db8::1]:80");
    assert.equal(hostHeader({ host: "198.18.1.11", port: 8080 }), "198.18.1.11:8080");
  });

  describe("DNS_CHECK over udp6", () => {
    let sock: UdpSocket;
    let port = 0;
    before(async () => {
      sock = createSocket("udp6");
      sock.on("message", (q, r) => {
        // The question as it came (header 12 bytes, then name, type, class), one AAAA answer:
        // a pointer to the name, type 28, class IN, ttl 60, 16 bytes of 2001:db8::7.
        let o = 12;
        while (q[o] !== 0) o += 1 + q[o];
        const question = q.subarray(12, o + 5);
        const rdata = Buffer.from([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 7]);
        const answer = Buffer.concat([Buffer.from([0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]), rdata]);
        const header = Buffer.from([q[0], q[1], 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        sock.send(Buffer.concat([header, question, answer]), r.port, r.address);
      });
      await new Promise<void>((resolve) => sock.bind(0, HOST, () => resolve()));
      port = sock.address().port;
    });
    after(() => new Promise<void>((resolve) => sock.close(() => resolve())));

    it("asks ::1 and reads its AAAA answer, from bindto when given", async () => {
      for (const localAddress of [undefined, HOST])
        assert.deepEqual(
          await dnsCheck(
            { host: HOST, port, localAddress },
            { timeoutMs: 1000, name: "example.org", qtype: "AAAA" },
          ),
          { ok: true, detail: "1 answer(s), 2001:db8::7" },
        );
    });

    it("fails when nothing answers", async () => {
      const quiet = createSocket("udp6");
      await new Promise<void>((resolve) => quiet.bind(0, HOST, () => resolve()));
      const r = await dnsCheck(
        { host: "0:0:0:0:0:0:0:1", port: quiet.address().port },
        { timeoutMs: 100, name: "example.org", qtype: "AAAA" },
      );
      quiet.close();
      assert.deepEqual(r, { ok: false, detail: "no answer after 100 ms" });
    });
  });

  it("MISC_CHECK runs a command that reaches ::1", async () => {
    const srv = await listen(createTcpServer((c) => c.end()));
    const probe = (port: number) =>
      `"${process.execPath}" -e "require('net').connect(${port}, '::1').on('connect', () => process.exit(0)).on('error', () => process.exit(1))"`;
    assert.deepEqual(await miscCheck({ command: probe(portOf(srv)), timeoutMs: 5000 }), {
      ok: true,
      detail: "exit 0",
    });
    await close(srv);
    assert.deepEqual(await miscCheck({ command: probe(await closedPort()), timeoutMs: 5000 }), {
      ok: false,
      detail: "exit 1",
    });
  });
});

describe("where an IPv6 check connects", () => {
  it("the real server, connect_ip, connect_port and bindto, as text", () => {
    const model = parseKeepalived(
      [
        "virtual_server 2001:db8::100 80 {",
        "  lb_kind NAT",
        "  real_server 2001:db8:1::11 8080 { TCP_CHECK { } }",
        "  real_server 2001:db8:1::12 8080 { TCP_CHECK { connect_ip 2001:DB8:2::12\n connect_port 9000 } }",
        "  real_server 2001:db8:1::13 8080 { HTTP_GET { url { path / }\n bindto 2001:db8:ff::1 } }",
        "  real_server 2001:db8:1::14 8080 { MISC_CHECK { misc_path /bin/true } }",
        "}",
      ].join("\n"),
      "t.conf",
    ).model;
    const vs = new HealthState(model).virtualServers[0];
    assert.deepEqual(
      vs.servers.map((_, i) => checkTarget(vs, i)),
      [
        { host: "2001:db8:1::11", port: 8080 },
        { host: "2001:db8:2::12", port: 9000 },
        { host: "2001:db8:1::13", port: 8080, localAddress: "2001:db8:ff::1" },
        { host: "2001:db8:1::14", port: 8080 },
      ],
    );
  });
});

describe("an IPv6 real server goes down and comes back", { skip }, () => {
  let srv: Server;
  after(() => srv?.close());

  it("removes it when ::1 stops answering, puts the sorry server in, and undoes both", async () => {
    srv = await listen(createTcpServer((c) => c.end()));
    const port = portOf(srv);
    const model = parseKeepalived(
      [
        "virtual_server 2001:db8::100 80 {",
        "  lb_kind NAT",
        "  delay_loop 0.05",
        "  sorry_server 2001:db8:1::99 80",
        `  real_server ::1 ${port} {`,
        "    TCP_CHECK {",
        "      connect_timeout 0.5",
        "      retry 0",
        "    }",
        "  }",
        "}",
      ].join("\n"),
      "t.conf",
    ).model;
    const applied: CtlCommand[] = [];
    const events: HealthEvent[] = [];
    const runner = new HealthRunner(model, {
      apply: (cmds) => void applied.push(...cmds),
      log: (ev) => events.push(ev),
    });
    const until = async (what: string, f: () => boolean) => {
      for (let i = 0; i < 200 && !f(); i++) await sleep(10);
      assert.ok(f(), `${what}: ${JSON.stringify(events)}`);
    };
    await runner.start();
    const rs = `[::1]:${port}`;
    assert.deepEqual(
      applied.map((c) => (c.op === "add-dest" ? [c.op, c.key.addr6, c.dest.addr6, c.dest.port] : [c.op])),
      [["add-service"], ["add-dest", "2001:db8::100", "::1", port]],
    );
    await close(srv);
    await until("down", () => events.some((e) => e.kind === "rs-down"));
    await runner.idle();
    assert.deepEqual(
      events.map((e) => [e.kind, e.vs, "rs" in e ? e.rs : ""]),
      [
        ["rs-down", "TCP [2001:db8::100]:80", rs],
        ["quorum-lost", "TCP [2001:db8::100]:80", ""],
        ["sorry-server-on", "TCP [2001:db8::100]:80", "[2001:db8:1::99]:80"],
      ],
    );
    const down = applied
      .slice(2)
      .map((c) => [c.op, c.op === "del-dest" ? c.addr6 : c.op === "add-dest" ? c.dest.addr6 : ""]);
    assert.deepEqual(down, [
      ["add-dest", "2001:db8:1::99"],
      ["del-dest", "::1"],
    ]);
    srv = await listen(
      createTcpServer((c) => c.end()),
      port,
    );
    await until("up", () => events.some((e) => e.kind === "rs-up"));
    await runner.stop();
    assert.deepEqual(
      events.slice(3).map((e) => e.kind),
      ["rs-up", "quorum-gained", "sorry-server-off"],
    );
    assert.deepEqual(
      applied
        .slice(4)
        .map((c) => [c.op, c.op === "del-dest" ? c.addr6 : c.op === "add-dest" ? c.dest.addr6 : ""]),
      [
        ["add-dest", "::1"],
        ["del-dest", "2001:db8:1::99"],
      ],
    );
  });
});
