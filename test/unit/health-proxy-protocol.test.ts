// Health checks of a real server that expects the PROXY protocol (nginx `listen 80 proxy_protocol`):
// TCP_CHECK, HTTP_GET and SSL_GET send the check's header first (DPVS keepalived's
// http_send_proxy_protocol: v1 "PROXY UNKNOWN\r\n", v2 the LOCAL command), before the request and
// before TLS's ClientHello. The server here answers only after it has read exactly that header.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { TLSSocket } from "node:tls";
import { httpCheck } from "../../src/health/check-http.js";
import { tcpCheck } from "../../src/health/check-tcp.js";
import { skipOrFail } from "../support/e2e-env.js";

const V1 = Buffer.from("PROXY UNKNOWN\r\n");
const V2 = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0, 0, 0,
]);
const HOST = "127.0.0.1";
const url = { path: "/", digest: "", statusCodes: [] as number[] };

/** A server that wants `header` first; then HTTP (over TLS with tls) answered 200, or 400 without it. */
function ppServer(header: Buffer, seen: string[], tls?: { key: Buffer; cert: Buffer }): Promise<Server> {
  const answer = (s: Socket | TLSSocket, ok: boolean): void => {
    let req = "";
    s.on("data", (d: Buffer) => {
      req += d.toString("latin1");
      if (req.includes("\r\n\r\n"))
        s.end(
          `HTTP/1.1 ${ok ? "200 OK" : "400 Bad Request"}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
        );
    });
  };
  const srv = createServer((sock) => {
    let got = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d]);
      if (got.length < header.length) return;
      sock.off("data", onData);
      const ok = got.subarray(0, header.length).equals(header);
      seen.push(ok ? "header" : "no header");
      const rest = got.subarray(header.length);
      if (tls === undefined) {
        answer(sock, ok);
        if (rest.length > 0) sock.emit("data", rest);
        return;
      }
      sock.pause();
      if (rest.length > 0) sock.unshift(rest);
      const t = new TLSSocket(sock, { isServer: true, key: tls.key, cert: tls.cert });
      answer(t, ok);
    };
    sock.on("data", onData);
    sock.on("error", () => {});
  });
  return new Promise((resolve) => srv.listen(0, HOST, () => resolve(srv)));
}
const portOf = (s: Server): number => (s.address() as AddressInfo).port;
const close = (s: Server): Promise<void> => new Promise((r) => s.close(() => r()));

describe("health checks to a PROXY-protocol real server", () => {
  for (const [name, h] of [
    ["v1", V1],
    ["v2", V2],
  ] as const) {
    it(`HTTP_GET sends the ${name} check header first; without it the server refuses`, async () => {
      const seen: string[] = [];
      const srv = await ppServer(h, seen);
      try {
        const t = { host: HOST, port: portOf(srv) };
        const o = { timeoutMs: 2000, tls: false, urls: [url], virtualHost: "" };
        assert.deepEqual(await httpCheck({ ...t, proxyHeader: h }, o), { ok: true, detail: "/: status 200" });
        assert.deepEqual(await httpCheck(t, o), { ok: false, detail: "/: status 400" });
        assert.deepEqual(seen, ["header", "no header"]);
      } finally {
        await close(srv);
      }
    });
  }

  it("TCP_CHECK writes the header and closes", async () => {
    const seen: string[] = [];
    const srv = await ppServer(V2, seen);
    try {
      const r = await tcpCheck({ host: HOST, port: portOf(srv), proxyHeader: V2 }, { timeoutMs: 2000 });
      assert.deepEqual(r, { ok: true, detail: "connected (PROXY header sent)" });
      for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(seen, ["header"]);
    } finally {
      await close(srv);
    }
  });

  it("SSL_GET: the header before the TLS handshake", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tsvs-pp-tls-"));
    try {
      try {
        execFileSync(
          "openssl",
          ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=r1", "-days", "1"].concat([
            "-keyout",
            join(dir, "k.pem"),
            "-out",
            join(dir, "c.pem"),
          ]),
          { stdio: "ignore" },
        );
      } catch {
        skipOrFail(t, "openssl not available");
        return;
      }
      const seen: string[] = [];
      const srv = await ppServer(V1, seen, {
        key: readFileSync(join(dir, "k.pem")),
        cert: readFileSync(join(dir, "c.pem")),
      });
      try {
        const r = await httpCheck(
          { host: HOST, port: portOf(srv), proxyHeader: V1 },
          { timeoutMs: 3000, tls: true, urls: [url], virtualHost: "" },
        );
        assert.deepEqual(r, { ok: true, detail: "/: status 200" });
        assert.deepEqual(seen, ["header"]);
      } finally {
        await close(srv);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
