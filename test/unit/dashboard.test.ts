// The live dashboard's server side (src/daemon/dashboard.ts, dashboard-http.ts): the snapshot built
// from hand-made `table` and `status` answers (health joined by the checks' names, servers the
// checks took out listed apart), the bounded history of rates, the SSE frames, and the feed: one
// request pair a tick whatever the number of clients, the same text to each, a client that left
// or does not read dropped, a data plane that does not answer reported without piling requests.
// Then the routes through fastify: the page and its files under a strict CSP, nothing inline in
// them, /events over a real socket (history then snapshots; closed with the app).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { get, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import fastify from "fastify";
import {
  type DestSnapshot,
  type ServiceSnapshot,
  type StatsSnapshot,
  type TableSnapshot,
  zeroStats,
} from "../../src/control/snapshot.js";
import {
  buildSnapshot,
  type DashboardSnapshot,
  type HistoryJson,
  RateHistory,
  sseFrame,
  TOTAL_SERIES,
} from "../../src/daemon/dashboard.js";
import {
  CSP,
  DashboardFeed,
  dashboardDir,
  loadAssets,
  MAX_BUFFERED,
  registerDashboard,
  type SseClient,
} from "../../src/daemon/dashboard-http.js";
import type { DaemonStatus, Request, Response } from "../../src/daemon/protocol.js";
import { destSnap, serviceSnap } from "../support/snapshots.js";

function stats(o: Partial<StatsSnapshot> = {}): StatsSnapshot {
  return { ...zeroStats(), ...o };
}

function dest(addr: string, port: number, weight: number, st = stats(), active = 0, inact = 0): DestSnapshot {
  return destSnap(addr, port, { weight, activeConns: active, inactConns: inact, stats: st });
}

function service(
  k: { protocol: number; addr: string; port: number; fwmark?: number },
  dests: DestSnapshot[],
  st = stats(),
): ServiceSnapshot {
  return serviceSnap(k, dests, { schedName: "rr", stats: st });
}

function table(services: ServiceSnapshot[], total = stats()): TableSnapshot {
  return {
    connTabSize: 4096,
    timeouts: { tcp: 900, tcpFin: 120, udp: 300 },
    services,
    total,
  };
}

const row = (service: string, server: string, alive: boolean, failures: number) => ({
  service,
  server,
  alive,
  failures,
  checksOk: 0,
  checksFailed: failures,
  wentUp: 0,
  wentDown: 0,
});

function status(o: Partial<DaemonStatus> = {}): DaemonStatus {
  return {
    interfaces: [],
    loops: 0,
    batches: 0,
    busyMs: 0,
    uptimeMs: 12_000,
    services: 0,
    dests: 0,
    connections: 7,
    counters: {},
    drops: { no_service: 3, bad_csum: 2 },
    version: 2,
    pid: 4242,
    control: "/run/tsvs/control.sock",
    netns: "net:[1]",
    nft: { table: "netdev tsvs", vips: 1, natDests: 0, updates: 0 },
    worker: { alive: true, restarts: 0 },
    ...o,
  };
}

const TABLE = table(
  [
    service(
      { protocol: 6, addr: "198.18.0.100", port: 80 },
      [
        dest(
          "198.18.1.11",
          80,
          3,
          stats({ conns: 10, cps: 2, inpps: 5, outpps: 4, inbps: 500, outbps: 900 }),
          1,
          9,
        ),
        dest("198.18.1.12", 80, 0, stats({ conns: 4, cps: 1 }), 0, 4),
      ],
      stats({ conns: 14, cps: 3, inpps: 5, outpps: 4, inbps: 500, outbps: 900 }),
    ),
    service({ protocol: 0, addr: "0.0.0.0", port: 0, fwmark: 5 }, [dest("198.18.2.12", 0, 1)]),
  ],
  stats({ conns: 14, cps: 3, inpps: 5, outpps: 4, inbps: 500, outbps: 900 }),
);

const STATUS = status({
  config: {
    file: "/etc/tsvs.yaml",
    reloads: 0,
    health: [
      row("TCP 198.18.0.100:80", "198.18.1.11:80", true, 0),
      row("TCP 198.18.0.100:80", "198.18.1.12:80", true, 1),
      row("TCP 198.18.0.100:80", "198.18.1.13:80", false, 3),
    ],
  },
});

describe("dashboard: the snapshot", () => {
  it("services, real servers, counters and rates as the table has them; health joined by name", () => {
    const s = buildSnapshot(TABLE, STATUS, 1_000_000, 7);
    assert.equal(s.time, 1_000_000);
    assert.equal(s.seq, 7);
    assert.equal(s.pid, 4242);
    assert.equal(s.connections, 7);
    assert.equal(s.drops, 5, "every drop reason added up");
    assert.equal(s.checks, true);
    assert.deepEqual(s.total, TABLE.total);
    assert.deepEqual(
      s.services.map((x) => [x.key, x.name, x.scheduler]),
      [
        ["tcp/198.18.0.100/80", "TCP 198.18.0.100:80", "rr"],
        ["fwm/5", "FWM 5", "rr"],
      ],
    );
    const [d1, d2] = s.services[0].destinations;
    assert.deepEqual(
      { ...d1, stats: undefined },
      {
        id: "tcp/198.18.0.100/80>198.18.1.11:80",
        address: "198.18.1.11",
        port: 80,
        forward: "masq",
        weight: 3,
        activeConns: 1,
        inactConns: 9,
        persistConns: 0,
        available: true,
        health: "up",
        failures: 0,
        stats: undefined,
      },
    );
    assert.deepEqual(d1.stats, TABLE.services[0].dests[0].stats);
    assert.equal(d2.health, "retrying", "alive with a failed check: being retried");
    assert.equal(d2.weight, 0);
    assert.deepEqual(s.services[0].absent, [{ server: "198.18.1.13:80", health: "down", failures: 3 }]);
    assert.equal(s.services[1].destinations[0].health, null, "not checked");
    assert.deepEqual(s.services[1].absent, []);
    // Plain data: the stream sends it as JSON, unchanged.
    assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
  });

  it("without a configuration file: no health, no absent servers; VRRP instances listed", () => {
    const st = status({
      vrrp: [
        {
          name: "VI_1",
          state: "MASTER",
          effectivePriority: 150,
        } as unknown as NonNullable<DaemonStatus["vrrp"]>[number],
      ],
    });
    const s = buildSnapshot(TABLE, st, 0, 1);
    assert.equal(s.checks, false);
    assert.ok(
      s.services.every((x) => x.absent.length === 0 && x.destinations.every((d) => d.health === null)),
    );
    assert.deepEqual(s.vrrp, [{ name: "VI_1", state: "MASTER", priority: 150 }]);
  });
});

function snapAt(time: number, dests: Array<[string, number]>, seq = 1): DashboardSnapshot {
  const t = table(
    [
      service(
        { protocol: 6, addr: "198.18.0.100", port: 80 },
        dests.map(([addr, cps]) =>
          dest(addr, 80, 1, stats({ cps, inpps: cps * 10, outpps: cps, inbps: cps * 100 })),
        ),
      ),
    ],
    stats({ cps: dests.reduce((n, [, c]) => n + c, 0) }),
  );
  return buildSnapshot(t, status(), time, seq);
}

describe("dashboard: the history of rates", () => {
  it("keeps the last `capacity` ticks, oldest first, and the total series", () => {
    const h = new RateHistory(3, 1000);
    assert.deepEqual(h.toJSON(), { intervalMs: 1000, capacity: 3, time: [], series: [] });
    for (let i = 1; i <= 5; i++) h.push(snapAt(i * 1000, [["198.18.1.11", i]]));
    assert.equal(h.length, 3);
    const j = h.toJSON();
    assert.deepEqual(j.time, [3000, 4000, 5000]);
    assert.deepEqual(
      j.series.map((s) => [s.id, s.service, s.server]),
      [
        [TOTAL_SERIES, "", "all"],
        ["tcp/198.18.0.100/80>198.18.1.11:80", "TCP 198.18.0.100:80", "198.18.1.11:80"],
      ],
    );
    const rs = j.series[1];
    assert.deepEqual(rs.cps, [3, 4, 5]);
    assert.deepEqual(rs.pps, [33, 44, 55], "packets in + out");
    assert.deepEqual(rs.bps, [300, 400, 500], "bytes in + out");
    assert.deepEqual(j.series[0].cps, [3, 4, 5]);
  });

  it("a server that comes or goes has nulls where it was not; one gone from the window is forgotten", () => {
    const h = new RateHistory(4, 1000);
    h.push(snapAt(1000, [["198.18.1.11", 1]]));
    h.push(
      snapAt(2000, [
        ["198.18.1.11", 1],
        ["198.18.1.12", 2],
      ]),
    );
    h.push(snapAt(3000, [["198.18.1.12", 2]]));
    let j: HistoryJson = h.toJSON();
    const by = (id: string) => j.series.find((s) => s.id === id);
    assert.deepEqual(by("tcp/198.18.0.100/80>198.18.1.11:80")?.cps, [1, 1, null]);
    assert.deepEqual(by("tcp/198.18.0.100/80>198.18.1.12:80")?.cps, [null, 2, 2]);
    for (let t = 4000; t <= 7000; t += 1000) h.push(snapAt(t, [["198.18.1.12", 2]]));
    j = h.toJSON();
    assert.equal(by("tcp/198.18.0.100/80>198.18.1.11:80"), undefined);
    assert.equal(j.time.length, 4);
  });

  it("at most maxSeries real servers a tick (the first in the table's order)", () => {
    const h = new RateHistory(2, 1000, 2);
    h.push(
      snapAt(1000, [
        ["198.18.1.11", 1],
        ["198.18.1.12", 1],
        ["198.18.1.13", 1],
      ]),
    );
    assert.deepEqual(
      h.toJSON().series.map((s) => s.server),
      ["all", "198.18.1.11:80", "198.18.1.12:80"],
    );
    assert.throws(() => new RateHistory(0), RangeError);
  });
});

describe("dashboard: server-sent events", () => {
  it("one frame: event, id, the JSON on one data line, a blank line", () => {
    assert.equal(sseFrame("snapshot", { a: "x\ny" }, 3), 'event: snapshot\nid: 3\ndata: {"a":"x\\ny"}\n\n');
    assert.equal(sseFrame("history", [1]), "event: history\ndata: [1]\n\n");
    assert.throws(() => sseFrame("a\nb", 1), RangeError);
  });
});

class FakeClient implements SseClient {
  chunks: string[] = [];
  ended = false;
  writableLength = 0;
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return true;
  }
  end(): void {
    this.ended = true;
  }
  events(): Array<{ event: string; data: unknown }> {
    return this.chunks
      .join("")
      .split("\n\n")
      .filter((b) => /^event: /m.test(b))
      .map((b) => ({
        event: /^event: (.*)$/m.exec(b)?.[1] ?? "",
        data: JSON.parse(/^data: (.*)$/m.exec(b)?.[1] ?? "null"),
      }));
  }
}

/** A data plane answering `table` and `status` from TABLE and STATUS, counting the requests. */
function fakeAsk(): { ask: (r: Request) => Promise<Response>; count: Record<string, number> } {
  const count: Record<string, number> = {};
  return {
    count,
    ask: async (r) => {
      count[r.op] = (count[r.op] ?? 0) + 1;
      if (r.op === "table") return { table: structuredClone(TABLE) };
      if (r.op === "status") return { status: structuredClone(STATUS) };
      return { error: "not here" };
    },
  };
}

describe("dashboard: the feed", () => {
  it("one table and one status request a tick for any number of clients; the same frame to each", async () => {
    let now = 5000;
    const { ask, count } = fakeAsk();
    const feed = new DashboardFeed(ask, { now: () => now });
    const clients = [new FakeClient(), new FakeClient(), new FakeClient()];
    for (const c of clients) assert.equal(feed.attach(c), true);
    for (let i = 0; i < 4; i++) {
      await feed.tick();
      now += 1000;
    }
    assert.deepEqual(count, { table: 4, status: 4 });
    assert.equal(feed.asks, 4);
    assert.equal(feed.history.length, 4);
    const texts = clients.map((c) => c.chunks.join(""));
    assert.equal(texts[1], texts[0]);
    assert.equal(texts[2], texts[0]);
    const ev = clients[0].events();
    assert.deepEqual(
      ev.map((e) => e.event),
      ["history", "snapshot", "snapshot", "snapshot", "snapshot"],
    );
    assert.match(clients[0].chunks[0], /^retry: \d+\n\n$/);
    const last = ev[4].data as DashboardSnapshot;
    assert.equal(last.seq, 4);
    assert.equal(last.time, 8000);
    assert.equal(feed.latest?.seq, 4);
  });

  it("a new client gets the history and the latest snapshot at once", async () => {
    let now = 0;
    const feed = new DashboardFeed(fakeAsk().ask, {
      now: () => {
        now += 1000;
        return now;
      },
    });
    for (let i = 0; i < 3; i++) await feed.tick();
    const c = new FakeClient();
    feed.attach(c);
    const [h, s] = c.events();
    assert.equal(h.event, "history");
    assert.deepEqual((h.data as HistoryJson).time, [1000, 2000, 3000]);
    assert.equal(s.event, "snapshot");
    assert.equal((s.data as DashboardSnapshot).seq, 3);
  });

  it("a client that left gets nothing more; one that does not read is cut off; stop ends the rest", async () => {
    const feed = new DashboardFeed(fakeAsk().ask);
    const gone = new FakeClient();
    const slow = new FakeClient();
    const ok = new FakeClient();
    for (const c of [gone, slow, ok]) feed.attach(c);
    feed.detach(gone);
    const before = gone.chunks.length;
    slow.writableLength = MAX_BUFFERED + 1;
    await feed.tick();
    assert.equal(gone.chunks.length, before);
    assert.equal(slow.ended, true);
    assert.equal(feed.clientCount, 1);
    assert.equal(ok.events().at(-1)?.event, "snapshot");
    feed.stop();
    assert.equal(ok.ended, true);
    assert.equal(feed.clientCount, 0);
  });

  it("maxClients streams at most", () => {
    const feed = new DashboardFeed(fakeAsk().ask, { maxClients: 2 });
    assert.equal(feed.attach(new FakeClient()), true);
    assert.equal(feed.attach(new FakeClient()), true);
    assert.equal(feed.attach(new FakeClient()), false);
  });

  it("an error answer, or none in time: `unavailable`; a stuck data plane is not asked again", async () => {
    let release: (r: Response) => void = () => {};
    let stuck = false;
    let asked = 0;
    const ask = (r: Request): Promise<Response> => {
      asked++;
      if (stuck)
        return new Promise((resolve) => {
          release = resolve;
        });
      return Promise.resolve(r.op === "table" ? { error: "the data plane stopped" } : { status: STATUS });
    };
    const warned: string[] = [];
    const log = { warn: (_o: object, m: string) => warned.push(m), info: () => {} };
    const feed = new DashboardFeed(ask, { timeoutMs: 30, log: log as never });
    const c = new FakeClient();
    feed.attach(c);
    await feed.tick();
    assert.deepEqual(c.events().at(-1), {
      event: "unavailable",
      data: { time: (c.events().at(-1)?.data as { time: number }).time, message: "the data plane stopped" },
    });
    stuck = true;
    asked = 0;
    await feed.tick();
    assert.match(String((c.events().at(-1)?.data as { message: string }).message), /did not answer/);
    await feed.tick(); // still waiting for the first answers: no new request
    assert.equal(asked, 2, "one table and one status request, not one pair a tick");
    release({ status: STATUS });
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(warned.length, 2, "logged once per new reason");
    assert.equal(feed.history.length, 0);
  });
});

// --- routes -----------------------------------------------------------------------------------------

function readHead(url: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => get(url, { headers }, resolve).on("error", reject));
}

/** Reads the stream until `n` events came (or 3 s). */
function readEvents(res: IncomingMessage, n: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`only: ${buf}`)), 3000);
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      buf += chunk;
      const events = buf.split("\n\n").filter((b) => b.startsWith("event: "));
      if (events.length >= n) {
        clearTimeout(timer);
        resolve(events.map((b) => /^event: (.*)$/m.exec(b)?.[1] ?? ""));
      }
    });
  });
}

describe("dashboard: the routes", () => {
  it("the page's files are found from the build output; none has inline script, style or handler", () => {
    const dir = dashboardDir();
    assert.ok(dir !== null, "src/daemon/dashboard/ found from dist/src/daemon/");
    const html = readFileSync(join(dir, "index.html"), "utf8");
    for (const m of html.matchAll(/<script\b[^>]*>/g)) assert.match(m[0], /\bsrc="\//, `${m[0]}: not inline`);
    assert.doesNotMatch(html, /<script\b[^>]*>[^<\s]/, "no inline script body");
    assert.doesNotMatch(html, /\son[a-z]+\s*=/i, "no inline event handler");
    assert.doesNotMatch(html, /\sstyle\s*=|<style/i, "no inline style");
    assert.doesNotMatch(html, /https?:\/\//, "nothing from another origin");
    const js = readFileSync(join(dir, "app.js"), "utf8");
    assert.doesNotMatch(js, /innerHTML|outerHTML|eval\(|new Function|setAttribute\("style"|\.cssText/);
    assert.doesNotMatch(js, /https?:\/\//);
  });

  it("/ and its files under the CSP; uPlot from node_modules; /events needs the token off loopback", async () => {
    const app = fastify({ logger: false });
    const files = loadAssets();
    assert.deepEqual(files.missing, []);
    await registerDashboard(app, { ask: fakeAsk().ask, token: "0123456789abcdef", openReads: false, files });
    await app.ready();
    for (const [url, type] of [
      ["/", /^text\/html/],
      ["/dashboard.js", /^text\/javascript/],
      ["/dashboard.css", /^text\/css/],
      ["/favicon.svg", /^image\/svg\+xml/],
      ["/assets/uPlot.iife.min.js", /^text\/javascript/],
      ["/assets/uPlot.min.css", /^text\/css/],
    ] as const) {
      const r = await app.inject({ method: "GET", url });
      assert.equal(r.statusCode, 200, url);
      assert.match(String(r.headers["content-type"]), type, url);
      assert.equal(r.headers["content-security-policy"], CSP, url);
      assert.equal(r.headers["x-content-type-options"], "nosniff");
    }
    assert.match(CSP, /^default-src 'self'/);
    assert.match((await app.inject({ url: "/assets/uPlot.iife.min.js" })).body, /uPlot/);
    const no = await app.inject({ url: "/events" });
    assert.equal(no.statusCode, 401);
    assert.equal(no.json().error.code, "TSVS_ERR_UNAUTHORIZED");
    const bad = await app.inject({
      url: "/events",
      headers: { authorization: "Bearer nope-nope-nope-nope" },
    });
    assert.equal(bad.statusCode, 401);
    await app.close();
  });

  it("a broken install: / says which file is missing, the rest works", async () => {
    const app = fastify({ logger: false });
    const files = loadAssets("/nonexistent");
    assert.ok(files.missing.length > 0);
    await registerDashboard(app, { ask: fakeAsk().ask, token: "0123456789abcdef", openReads: true, files });
    const r = await app.inject({ url: "/" });
    assert.equal(r.statusCode, 503);
    assert.match(r.body, /index\.html/);
    assert.equal((await app.inject({ url: "/assets/uPlot.min.css" })).statusCode, 200);
    await app.close();
  });

  it("/events over a socket: history then snapshots (with the token), one request pair a tick; closed with the app", async () => {
    const app = fastify({ logger: false });
    const fake = fakeAsk();
    const feed = await registerDashboard(app, {
      ask: fake.ask,
      token: "0123456789abcdef",
      openReads: false,
      intervalMs: 50,
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/events`;
    const res = await readHead(url, { authorization: "Bearer 0123456789abcdef" });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers["content-type"]), /^text\/event-stream/);
    assert.equal(res.headers["cache-control"], "no-store");
    const events = await readEvents(res, 4);
    assert.equal(events[0], "history");
    assert.deepEqual(events.slice(1, 4), ["snapshot", "snapshot", "snapshot"]);
    assert.equal(feed.clientCount, 1);
    // Two more clients: still one request pair a tick.
    const more = await Promise.all([
      readHead(url, { authorization: "Bearer 0123456789abcdef" }),
      readHead(url, { authorization: "Bearer 0123456789abcdef" }),
    ]);
    await Promise.all(more.map((r) => readEvents(r, 3)));
    assert.equal(feed.clientCount, 3);
    assert.equal(fake.count.table, feed.asks);
    // A client that goes away is dropped.
    res.destroy();
    for (let i = 0; i < 50 && feed.clientCount > 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(feed.clientCount, 2);
    // close() does not wait for the open streams.
    const t0 = Date.now();
    await app.close();
    assert.ok(Date.now() - t0 < 1000, `closed in ${Date.now() - t0} ms`);
    assert.equal(feed.clientCount, 0);
    const asks = feed.asks;
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(feed.asks, asks, "no tick after close");
  });
});
