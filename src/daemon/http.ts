// The daemon's HTTP endpoint (`--http ADDR:PORT`, docs/daemon.md "HTTP endpoint"): fastify, in the
// daemon's main thread and network namespace. A scrape asks the workers for what the control
// socket's `table` and `status` requests ask them (requests.ts), between batches: it costs the
// data path one snapshot, never per-packet work. The REST API (rest.ts) asks the same way, and so
// does the dashboard's feed (dashboard-http.ts: the page at `/`, `/events`), once a second.

import { rmSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { handleRequest, type RequestContext } from "./requests.js";

/** --http's default: loopback of the daemon's namespace, port 9715. */
export const DEFAULT_HTTP = "127.0.0.1:9715";

export interface HttpAddr {
  host: string;
  port: number;
}

/** "ADDR:PORT" or "[V6]:PORT" → host and port; null when malformed. */
export function parseHttpAddr(s: string): HttpAddr | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (m === null) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? m[2], port };
}

export function formatHttpAddr(a: HttpAddr): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

export class HttpEndpoint {
  private constructor(
    private readonly app: FastifyInstance,
    /** Where it listens (the real port when 0 was asked for). */
    readonly address: HttpAddr,
    /** The token file this endpoint generated, removed when it closes; null: given or found. */
    private readonly madeToken: string | null,
  ) {}

  /**
   * Listens on `addr`; rejects with an Error naming the address when it cannot (port in use…) or
   * when the REST API's token cannot be read or created (`tokenFile`: --http-token-file).
   */
  static async start(
    addr: HttpAddr,
    ctx: RequestContext,
    log: Logger,
    opts: { tokenFile?: string } = {},
  ): Promise<HttpEndpoint> {
    // Loaded here: `tsvs` commands other than the daemon never pay for fastify and prom-client.
    const [{ default: fastify }, { buildMetrics }, rest, { registerDashboard }] = await Promise.all([
      import("fastify"),
      import("./metrics.js"),
      import("./rest.js"),
      import("./dashboard-http.js"),
    ]);
    let token: { token: string; file: string; created: boolean };
    try {
      token = rest.loadToken(ctx.control, opts.tokenFile);
    } catch (e) {
      throw new Error(`cannot read the REST API token: ${(e as Error).message}`);
    }
    // At close, every connection goes at once: a browser's preconnected socket that never sent a
    // request counts as busy (waiting for its headers), not idle, and would hold app.close() for
    // Node's 60-s headers timeout (the dashboard e2e saw daemons take 61 s to stop, or hang).
    const app = fastify({ logger: false, forceCloseConnections: true });
    await rest.registerRest(app, {
      ask: (req) => handleRequest(ctx, req),
      token: token.token,
      openReads: rest.isLoopback(addr.host),
    });
    log.info({ tokenFile: token.file, openReads: rest.isLoopback(addr.host) }, "http api token");
    app.get("/metrics", async (_req, reply) => {
      const [t, s] = await Promise.all([
        handleRequest(ctx, { op: "table" }),
        handleRequest(ctx, { op: "status" }),
      ]);
      if (!("table" in t) || !("status" in s)) {
        const why = "error" in t ? t.error : "error" in s ? s.error : "no answer";
        log.warn({ err: why }, "metrics scrape failed");
        return reply.code(503).type("text/plain; charset=utf-8").send(`${why}\n`);
      }
      const reg = buildMetrics(t.table, s.status);
      return reply.type(reg.contentType).send(await reg.metrics());
    });
    // The live dashboard at `/` and its feed `/events` (docs/dashboard.md).
    await registerDashboard(app, {
      ask: (req) => handleRequest(ctx, req),
      token: token.token,
      openReads: rest.isLoopback(addr.host),
      log,
    });
    try {
      await app.listen({ host: addr.host, port: addr.port });
    } catch (e) {
      await app.close().catch(() => {});
      if (token.created) rmSync(token.file, { force: true });
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === "EADDRINUSE" ? "address in use" : (e as Error).message;
      throw new Error(`cannot listen on http://${formatHttpAddr(addr)}: ${why}`);
    }
    const bound = app.server.address();
    const port = typeof bound === "object" && bound !== null ? bound.port : addr.port;
    return new HttpEndpoint(app, { host: addr.host, port }, token.created ? token.file : null);
  }

  async close(): Promise<void> {
    await this.app.close();
    if (this.madeToken !== null) rmSync(this.madeToken, { force: true });
  }
}
