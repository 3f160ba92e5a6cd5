import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { CheckSpec } from "../../src/config/model.js";
import { dnsCheck } from "../../src/health/check-dns.js";
import { httpCheck } from "../../src/health/check-http.js";
import { miscCheck } from "../../src/health/check-misc.js";
import { tcpCheck } from "../../src/health/check-tcp.js";
import { runCheck } from "../../src/health/checkers.js";
import { skipOrFail } from "../support/e2e-env.js";

const HOST = "127.0.0.1";
const portOf = (s: { address(): AddressInfo | string | null }) => (s.address() as AddressInfo).port;
const listen = <T extends { listen(port: number, host: string, cb: () => void): unknown }>(s: T) =>
  new Promise<T>((resolve) => s.listen(0, HOST, () => resolve(s)));
const close = (s: { close(cb: () => void): unknown }) =>
  new Promise<void>((resolve) => s.close(() => resolve()));

/** A port nothing listens on: bound then released. */
async function closedPort(): Promise<number> {
  const s = await listen(createTcpServer());
  const p = portOf(s);
  await close(s);
  return p;
}

describe("TCP_CHECK", () => {
  it("succeeds when the connection completes", async () => {
    const srv = await listen(createTcpServer((c) => c.end()));
    assert.deepEqual(await tcpCheck({ host: HOST, port: portOf(srv) }, { timeoutMs: 1000 }), {
      ok: true,
      detail: "connected",
    });
    await close(srv);
  });

  it("fails on a refused connection", async () => {
    assert.deepEqual(await tcpCheck({ host: HOST, port: await closedPort() }, { timeoutMs: 1000 }), {
      ok: false,
      detail: "ECONNREFUSED",
    });
  });
});

const BODY = "hello from r1\n";
const BODY_MD5 = createHash("md5").update(BODY).digest("hex");

function handler(
  req: { url?: string; headers: Record<string, unknown> },
  res: import("node:http").ServerResponse,
) {
  if (req.url === "/health") res.writeHead(200).end("ok");
  else if (req.url === "/index.html") res.writeHead(200).end(BODY);
  else if (req.url === "/host") res.writeHead(req.headers.host === "www.example.net" ? 200 : 404).end();
  else if (req.url === "/slow") setTimeout(() => res.writeHead(200).end(), 2000).unref();
  else res.writeHead(503).end("down");
}

describe("HTTP_GET", () => {
  let srv: Server;
  let port = 0;
  before(async () => {
    srv = await listen(createHttpServer(handler));
    port = portOf(srv);
  });
  after(() => {
    srv.closeAllConnections();
    return close(srv);
  });
  const url = (path: string, statusCodes: number[] = [], digest = "") => ({ path, statusCodes, digest });
  const check = (urls: ReturnType<typeof url>[], extra: { virtualHost?: string; timeoutMs?: number } = {}) =>
    httpCheck(
      { host: HOST, port },
      { timeoutMs: extra.timeoutMs ?? 1000, tls: false, urls, virtualHost: extra.virtualHost ?? "" },
    );

  for (const [name, urls, ok, detail] of [
    ["any 2xx by default", [url("/health")], true, "/health: status 200"],
    ["an explicit status code", [url("/health", [200])], true, "/health: status 200"],
    ["a status outside the list", [url("/health", [201, 204])], false, "/health: status 200"],
    ["an error status by default", [url("/nope")], false, "/nope: status 503"],
    ["an expected error status", [url("/nope", [503])], true, "/nope: status 503"],
    ["a matching MD5 digest", [url("/index.html", [], BODY_MD5)], true, "/index.html: status 200, digest ok"],
    [
      "a wrong digest",
      [url("/index.html", [], "0".repeat(32))],
      false,
      `/index.html: digest ${BODY_MD5}, expected ${"0".repeat(32)}`,
    ],
    ["every URL must pass", [url("/health"), url("/nope")], false, "/nope: status 503"],
  ] as const) {
    it(`${ok ? "accepts" : "refuses"} ${name}`, async () => {
      assert.deepEqual(await check([...urls]), { ok, detail });
    });
  }

  it("sends the virtualhost as Host", async () => {
    assert.equal((await check([url("/host")], { virtualHost: "www.example.net" })).ok, true);
    assert.equal((await check([url("/host")])).ok, false);
  });

  it("fails after connect_timeout", async () => {
    assert.deepEqual(await check([url("/slow")], { timeoutMs: 100 }), {
      ok: false,
      detail: "/slow: timeout after 100 ms",
    });
  });

  it("fails on a refused connection", async () => {
    const r = await httpCheck(
      { host: HOST, port: await closedPort() },
      { timeoutMs: 1000, tls: false, urls: [url("/")], virtualHost: "" },
    );
    assert.deepEqual(r, { ok: false, detail: "/: ECONNREFUSED" });
  });
});

describe("SSL_GET", () => {
  it("checks over TLS without verifying the (self-signed) certificate", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tsvs-tls-"));
    try {
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-subj",
          "/CN=r1",
          "-days",
          "1",
          "-keyout",
          join(dir, "k.pem"),
          "-out",
          join(dir, "c.pem"),
        ],
        { stdio: "ignore" },
      );
    } catch {
      skipOrFail(t, "openssl not available");
      return;
    }
    const srv = await listen(
      createHttpsServer(
        { key: readFileSync(join(dir, "k.pem")), cert: readFileSync(join(dir, "c.pem")) },
        handler,
      ),
    );
    rmSync(dir, { recursive: true });
    const r = await httpCheck(
      { host: HOST, port: portOf(srv) },
      {
        timeoutMs: 2000,
        tls: true,
        urls: [{ path: "/index.html", statusCodes: [200], digest: BODY_MD5 }],
        virtualHost: "",
      },
    );
    assert.deepEqual(r, { ok: true, detail: "/index.html: status 200, digest ok" });
    srv.closeAllConnections();
    await close(srv);
  });
});

// A DNS responder built by hand (not with the codec under test): example.net A -> 192.0.2.7,
// empty.example.net -> NOERROR without answers, anything else -> NXDOMAIN.
function respond(q: Buffer): Buffer {
  let o = 12;
  const labels: string[] = [];
  while (q[o] !== 0) {
    labels.push(q.subarray(o + 1, o + 1 + q[o]).toString());
    o += 1 + q[o];
  }
  const question = q.subarray(12, o + 5);
  const name = labels.join(".");
  const rcode = name === "example.net" || name === "empty.example.net" ? 0 : 3;
  const answer =
    name === "example.net"
      ? // pointer to the question's name, type A, class IN, ttl 60, rdlength 4, 192.0.2.7
        Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7])
      : Buffer.alloc(0);
  const header = Buffer.from([
    q[0],
    q[1],
    0x81,
    0x80 | rcode,
    0,
    1,
    0,
    answer.length > 0 ? 1 : 0,
    0,
    0,
    0,
    0,
  ]);
  return Buffer.concat([header, question, answer]);
}

describe("DNS_CHECK", () => {
  let sock: UdpSocket;
  let port = 0;
  before(async () => {
    sock = createSocket("udp4");
    sock.on("message", (m, r) => {
      // A stray datagram first: the checker must wait for its own answer.
      sock.send(Buffer.from("junk"), r.port, r.address);
      sock.send(respond(m), r.port, r.address);
    });
    await new Promise<void>((resolve) => sock.bind(0, HOST, () => resolve()));
    port = sock.address().port;
  });
  after(() => new Promise<void>((resolve) => sock.close(() => resolve())));

  for (const [name, ok, detail] of [
    ["example.net", true, "1 answer(s), 192.0.2.7"],
    ["empty.example.net", false, "no answer record"],
    ["missing.example.net", false, "rcode NXDOMAIN"],
  ] as const) {
    it(`${ok ? "succeeds" : "fails"} for ${name}`, async () => {
      assert.deepEqual(await dnsCheck({ host: HOST, port }, { timeoutMs: 1000, name, qtype: "A" }), {
        ok,
        detail,
      });
    });
  }

  it("fails when nothing answers", async () => {
    const quiet = createSocket("udp4");
    await new Promise<void>((resolve) => quiet.bind(0, HOST, () => resolve()));
    const r = await dnsCheck(
      { host: HOST, port: quiet.address().port },
      { timeoutMs: 100, name: "example.net", qtype: "A" },
    );
    quiet.close();
    assert.deepEqual(r, { ok: false, detail: "no answer after 100 ms" });
  });
});

describe("MISC_CHECK", () => {
  for (const [command, ok, detail] of [
    ["exit 0", true, "exit 0"],
    ["test 1 -eq 2", false, "exit 1"],
    ["exit 3", false, "exit 3"],
    ["kill -TERM $$", false, "killed by SIGTERM"],
  ] as const) {
    it(`${command} -> ${detail}`, async () => {
      assert.deepEqual(await miscCheck({ command, timeoutMs: 5000 }), { ok, detail });
    });
  }

  it("kills the script and fails after misc_timeout", async () => {
    const t0 = Date.now();
    assert.deepEqual(await miscCheck({ command: "sleep 10; exit 0", timeoutMs: 100 }), {
      ok: false,
      detail: "timed out after 100 ms",
    });
    assert.ok(Date.now() - t0 < 5000);
  });
});

describe("runCheck", () => {
  it("dispatches on the check type, to connect_port when set", async () => {
    const srv = await listen(createTcpServer((c) => c.end()));
    const spec: CheckSpec = {
      type: "tcp",
      connectTimeout: 1,
      connectPort: 0,
      connectIp: 0,
      retry: 0,
      delayBeforeRetry: 0,
    };
    assert.equal((await runCheck(spec, { host: HOST, port: portOf(srv) }, 10)).ok, true);
    await close(srv);
  });

  it("fails a network check without a port (fwmark service without connect_port)", async () => {
    const spec: CheckSpec = {
      type: "tcp",
      connectTimeout: 1,
      connectPort: 0,
      connectIp: 0,
      retry: 0,
      delayBeforeRetry: 0,
    };
    assert.deepEqual(await runCheck(spec, { host: HOST, port: 0 }, 10), {
      ok: false,
      detail: "no port to check (set connect_port)",
    });
  });

  it("gives MISC_CHECK delay_loop as its timeout when misc_timeout is not set", async () => {
    const spec: CheckSpec = { type: "misc", path: "sleep 5", timeout: 0, retry: 0, delayBeforeRetry: 0 };
    assert.deepEqual(await runCheck(spec, { host: HOST, port: 0 }, 0.1), {
      ok: false,
      detail: "timed out after 100 ms",
    });
  });
});
