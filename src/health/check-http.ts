// HTTP_GET / SSL_GET: every configured URL must answer with an accepted status code
// (default any 2xx) and, when a digest is given, a body whose MD5 matches it
// (keepalived's check_http.c; like keepalived, HTTPS does not verify the certificate:
// the check is about the server answering, not about its identity). A server the director sends
// the PROXY protocol to gets the check's header first, before the request (and before TLS's
// ClientHello), as DPVS's keepalived writes it once connected (http_send_proxy_protocol).

import { createHash } from "node:crypto";
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { isIPv6, type NetConnectOpts, connect as netConnect, type Socket } from "node:net";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import type { HttpUrl } from "../config/model.js";
import type { CheckResult, CheckTarget } from "./checkers.js";
import { settleOnce } from "./settle.js";

export interface HttpCheckOptions {
  timeoutMs: number;
  tls: boolean;
  urls: readonly HttpUrl[];
  /** Host header; "" = the target's address and port. */
  virtualHost: string;
}

/**
 * The Host header without a virtualhost, as keepalived's check_http.c writes it: the address and
 * port, an IPv6 address in brackets (RFC 2732's literal, "[2001:db8::1]:80").
 */
export function hostHeader(target: CheckTarget): string {
  return isIPv6(target.host) ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
}

/** At most this much of a body is read (keepalived reads the whole body, we cap it). */
const MAX_BODY = 16 * 1024 * 1024;

function getOnce(target: CheckTarget, url: HttpUrl, opts: HttpCheckOptions): Promise<CheckResult> {
  const request = opts.tls ? httpsRequest : httpRequest;
  const req = request({
    host: target.host,
    port: target.port,
    localAddress: target.localAddress,
    path: url.path,
    method: "GET",
    headers: {
      Host: opts.virtualHost || hostHeader(target),
      "User-Agent": "tsvs-healthcheck",
      Connection: "close",
    },
    rejectUnauthorized: false,
    agent: target.proxyHeader === undefined ? false : proxyAgent(opts.tls, target.proxyHeader),
  });
  return settleOnce(
    opts.timeoutMs,
    { ok: false, detail: `${url.path}: timeout after ${opts.timeoutMs} ms` },
    () => req.destroy(),
    (finish) => {
      req.once("error", (e: NodeJS.ErrnoException) =>
        finish({ ok: false, detail: `${url.path}: ${e.code ?? e.message}` }),
      );
      req.once("response", (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const okStatus =
          url.statusCodes.length > 0 ? url.statusCodes.includes(status) : status >= 200 && status < 300;
        if (!okStatus) {
          finish({ ok: false, detail: `${url.path}: status ${status}` });
          return;
        }
        if (url.digest === "") {
          finish({ ok: true, detail: `${url.path}: status ${status}` });
          return;
        }
        const md5 = createHash("md5");
        let len = 0;
        res.on("data", (chunk: Buffer) => {
          len += chunk.length;
          if (len > MAX_BODY)
            finish({ ok: false, detail: `${url.path}: body larger than ${MAX_BODY} bytes` });
          else md5.update(chunk);
        });
        res.once("end", () => {
          const got = md5.digest("hex");
          finish(
            got === url.digest
              ? { ok: true, detail: `${url.path}: status ${status}, digest ok` }
              : { ok: false, detail: `${url.path}: digest ${got}, expected ${url.digest}` },
          );
        });
        res.once("error", (e: Error) => finish({ ok: false, detail: `${url.path}: ${e.message}` }));
      });
      req.end();
    },
  );
}

/** An agent whose connections start with the PROXY header (then TLS, for SSL_GET). */
function proxyAgent(tls: boolean, header: Uint8Array): HttpAgent {
  const raw = (o: NetConnectOpts): Socket => {
    const s = netConnect(o);
    s.write(header);
    return s;
  };
  if (!tls) {
    const a = new HttpAgent();
    a.createConnection = (o) => raw(o as NetConnectOpts);
    return a;
  }
  const a = new HttpsAgent({ rejectUnauthorized: false });
  a.createConnection = (o) => {
    const c = o as ConnectionOptions & NetConnectOpts;
    return tlsConnect({ ...c, socket: raw(c) });
  };
  return a;
}

export async function httpCheck(target: CheckTarget, opts: HttpCheckOptions): Promise<CheckResult> {
  const details: string[] = [];
  for (const url of opts.urls) {
    const r = await getOnce(target, url, opts);
    if (!r.ok) return r;
    details.push(r.detail);
  }
  return { ok: true, detail: details.join("; ") };
}
