// The live dashboard on the daemon's HTTP endpoint (docs/dashboard.md): the page at `/`, its
// script, style and uPlot (served from node_modules, never from a CDN), and `/events`, a stream of
// server-sent events with one snapshot a second.
//
// One feed for every client: a timer asks the workers for `table` and `status` once a second (as a
// /metrics scrape does: a snapshot between batches, no per-packet work), builds one JSON snapshot
// (dashboard.ts), keeps it in a bounded history and writes the same text to every open stream. The
// ticks run while the endpoint is open, watched or not, so that a page opened now starts with the
// last minutes' charts. A client that goes away is dropped on its socket's close; one that does
// not read (its buffer over MAX_BUFFERED) is cut off.

import { existsSync, readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { buildSnapshot, type DashboardSnapshot, RateHistory, sseFrame } from "./dashboard.js";
import type { Request, Response } from "./protocol.js";
import { tokenMatches } from "./rest.js";

/** The stream's path (beside /metrics: the dashboard's feed, not a resource of the REST API). */
export const EVENTS_PATH = "/events";
/** What the page's script asks EventSource-style clients to wait before they reconnect. */
export const RETRY_MS = 2000;
/** A client whose unsent data passes this is too slow: its stream is ended. */
export const MAX_BUFFERED = 1 << 20;

/** The headers of every dashboard answer: nothing but the endpoint's own files may run or load. */
export const CSP =
  "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/** An open event stream: what the feed needs of an http.ServerResponse. */
export interface SseClient {
  write(chunk: string): boolean;
  end(): void;
  readonly writableLength: number;
}

export interface FeedOptions {
  intervalMs?: number;
  /** Ticks of history kept (300: five minutes at one a second). */
  historyLength?: number;
  /** A tick whose answers take longer is reported as `unavailable` (5 s). */
  timeoutMs?: number;
  maxClients?: number;
  now?: () => number;
  log?: Pick<Logger, "warn" | "info">;
}

/** One tick a second for every client: the snapshot, the history, the streams. */
export class DashboardFeed {
  readonly history: RateHistory;
  readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;
  private readonly clients = new Set<SseClient>();
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private seq = 0;
  private latestSnap: DashboardSnapshot | null = null;
  private failing: string | null = null;
  /** Ticks that asked the workers (tests count them: one per tick, whatever the clients). */
  asks = 0;

  constructor(
    private readonly ask: (req: Request) => Promise<Response>,
    private readonly o: FeedOptions = {},
  ) {
    this.intervalMs = o.intervalMs ?? 1000;
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.maxClients = o.maxClients ?? 64;
    this.now = o.now ?? Date.now;
    this.history = new RateHistory(o.historyLength ?? 300, this.intervalMs);
  }

  get latest(): DashboardSnapshot | null {
    return this.latestSnap;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Ticks now, then every intervalMs (the timer does not keep the process alive). */
  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
    void this.tick();
  }

  /** No more ticks; every stream is ended. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  /**
   * A new stream: the reconnection delay, the history and the latest snapshot at once, then every
   * tick. False when there are maxClients already (the caller answers 503).
   */
  attach(c: SseClient): boolean {
    if (this.clients.size >= this.maxClients) return false;
    this.clients.add(c);
    c.write(`retry: ${RETRY_MS}\n\n`);
    c.write(sseFrame("history", this.history.toJSON()));
    if (this.latestSnap !== null) c.write(sseFrame("snapshot", this.latestSnap, this.latestSnap.seq));
    else if (this.failing !== null) c.write(sseFrame("unavailable", { message: this.failing }));
    return true;
  }

  detach(c: SseClient): void {
    this.clients.delete(c);
  }

  /** One tick: ask, build, keep, send. A tick still waiting for its answers makes the next one wait. */
  async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    this.asks++;
    const time = this.now();
    const work = Promise.all([this.ask({ op: "table" }), this.ask({ op: "status" })]);
    // `busy` until the answers come, even late: a stuck data plane gets one request, not one a tick.
    work.then(
      () => {
        this.busy = false;
      },
      () => {
        this.busy = false;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the data plane did not answer")), this.timeoutMs);
    });
    try {
      const [t, s] = await Promise.race([work, late]);
      if (!("table" in t)) throw new Error("error" in t ? t.error : "no table");
      if (!("status" in s)) throw new Error("error" in s ? s.error : "no status");
      const snap = buildSnapshot(t.table, s.status, time, ++this.seq);
      this.history.push(snap);
      this.latestSnap = snap;
      if (this.failing !== null) this.o.log?.info({}, "dashboard feed answering again");
      this.failing = null;
      this.broadcast(sseFrame("snapshot", snap, snap.seq));
    } catch (e) {
      const message = (e as Error).message;
      if (this.failing !== message) this.o.log?.warn({ err: message }, "dashboard feed tick failed");
      this.failing = message;
      this.broadcast(sseFrame("unavailable", { time, message }));
    } finally {
      clearTimeout(timer);
    }
  }

  private broadcast(frame: string): void {
    for (const c of this.clients) {
      if (c.writableLength > MAX_BUFFERED) {
        this.clients.delete(c);
        c.end();
        continue;
      }
      c.write(frame);
    }
  }
}

// --- the files -------------------------------------------------------------------------------------

interface Asset {
  type: string;
  body: Buffer;
}

/**
 * The page's own files live in src/daemon/dashboard/ and are read from there: `tsc` (the only
 * build step) does not copy them, and the package ships src/ beside dist/ (bin/tsvs runs
 * dist/src/cli/tsvs.js from the package root). From dist/src/daemon/ that is ../../../src/daemon/.
 */
export function dashboardDir(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const d of [join(here, "dashboard"), join(here, "..", "..", "..", "src", "daemon", "dashboard")])
    if (existsSync(join(d, "index.html"))) return d;
  return null;
}

/** Route → file; the page's files and uPlot's (MIT, node_modules/uplot/dist). */
export function loadAssets(dir: string | null = dashboardDir()): {
  assets: Map<string, Asset>;
  missing: string[];
} {
  const assets = new Map<string, Asset>();
  const missing: string[] = [];
  const req = createRequire(import.meta.url);
  const files: Array<[route: string, type: string, path: () => string]> = [
    ["/", "text/html; charset=utf-8", () => join(dir ?? "", "index.html")],
    ["/dashboard.js", "text/javascript; charset=utf-8", () => join(dir ?? "", "app.js")],
    ["/dashboard.css", "text/css; charset=utf-8", () => join(dir ?? "", "style.css")],
    ["/favicon.svg", "image/svg+xml", () => join(dir ?? "", "favicon.svg")],
    [
      "/assets/uPlot.iife.min.js",
      "text/javascript; charset=utf-8",
      () => req.resolve("uplot/dist/uPlot.iife.min.js"),
    ],
    ["/assets/uPlot.min.css", "text/css; charset=utf-8", () => req.resolve("uplot/dist/uPlot.min.css")],
  ];
  for (const [route, type, path] of files) {
    try {
      if (dir === null && !route.startsWith("/assets/")) throw new Error("src/daemon/dashboard/ not found");
      assets.set(route, { type, body: readFileSync(path()) });
    } catch (e) {
      missing.push(`${route}: ${(e as Error).message}`);
    }
  }
  return { assets, missing };
}

function secure(reply: FastifyReply): FastifyReply {
  return reply
    .header("content-security-policy", CSP)
    .header("x-content-type-options", "nosniff")
    .header("referrer-policy", "no-referrer")
    .header("cache-control", "no-cache");
}

// --- routes ----------------------------------------------------------------------------------------

export interface DashboardOptions extends FeedOptions {
  ask: (req: Request) => Promise<Response>;
  /** The REST API's token: /events needs it as reads do (off loopback). */
  token: string;
  openReads: boolean;
  /** Files by route (default: loadAssets()). */
  files?: { assets: Map<string, Asset>; missing: string[] };
}

/** The page, its files and /events; the feed starts now and stops when the app closes. */
export async function registerDashboard(app: FastifyInstance, o: DashboardOptions): Promise<DashboardFeed> {
  const feed = new DashboardFeed(o.ask, o);
  const { assets, missing } = o.files ?? loadAssets();
  if (missing.length > 0) o.log?.warn({ missing }, "dashboard files missing: / answers 503");

  // A file missing (a broken install): `/` says which; /metrics and the REST API work on.
  const broken = missing.length > 0;
  for (const [route, a] of assets)
    if (!(broken && route === "/"))
      app.get(route, async (_req, reply) => secure(reply).type(a.type).send(a.body));
  if (broken)
    app.get("/", async (_req, reply) =>
      secure(reply)
        .code(503)
        .type("text/plain; charset=utf-8")
        .send(
          `tsvs daemon: the dashboard's files are missing (${missing.join("; ")}).\nmetrics at /metrics, REST API at /api/v1\n`,
        ),
    );

  app.get(EVENTS_PATH, { exposeHeadRoute: false }, async (req: FastifyRequest, reply: FastifyReply) => {
    if (!o.openReads) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
      if (m === null || !tokenMatches(m[1], o.token))
        return reply
          .code(401)
          .header("www-authenticate", 'Bearer realm="tsvs"')
          .send({
            error: {
              code: "TSVS_ERR_UNAUTHORIZED",
              message: m === null ? "a bearer token is required (Authorization: Bearer …)" : "bad token",
            },
          });
    }
    if (feed.clientCount >= (o.maxClients ?? 64))
      return reply
        .code(503)
        .send({ error: { code: "TSVS_ERR_UNAVAILABLE", message: "too many event streams open" } });
    reply.hijack();
    const res: ServerResponse = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      // A reverse proxy (nginx) passes each event on at once instead of buffering the stream.
      "x-accel-buffering": "no",
      connection: "keep-alive",
    });
    res.flushHeaders();
    res.on("close", () => feed.detach(res));
    feed.attach(res);
  });

  // Before the server stops accepting: open streams would keep app.close() waiting forever.
  app.addHook("preClose", async () => feed.stop());
  feed.start();
  return feed;
}
