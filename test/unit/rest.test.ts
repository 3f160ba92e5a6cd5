// The REST API (src/daemon/rest.ts) through fastify's inject(), against the control socket's
// requests answered by a real ControlApi over a real Engine (as a worker answers them): every route
// with and without the token, bad JSON and bad values refused with their codes and nothing applied,
// and every answer validated against the OpenAPI document the API serves (ajv, JSON Schema 2020-12).

import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Ajv2020Module from "ajv/dist/2020.js";
import fastify, { type FastifyInstance, type LightMyRequestResponse } from "fastify";
import { ControlApi } from "../../src/control/api.js";
import { mergeTables } from "../../src/control/snapshot.js";
import { parseIPv4 } from "../../src/core/addr.js";
import type { ConnView } from "../../src/core/ctl-types.js";
import { TsvsError } from "../../src/core/errors.js";
import { explainPacket } from "../../src/core/explain.js";
import { openApiDocument } from "../../src/daemon/openapi.js";
import type { Request, Response } from "../../src/daemon/protocol.js";
import { explainQuery } from "../../src/daemon/requests.js";
import { isLoopback, loadToken, registerRest, tokenMatches } from "../../src/daemon/rest.js";
import { Director, IP, L2_FROM_ROUTER } from "../support/frames.js";
import { SYN, tcpFrame } from "../support/packet-builder.js";

const TOKEN = "0123456789abcdef0123456789abcdef";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const P = "/api/v1";
const VIP = IP.vip;
const SVC = `${P}/services/tcp/${VIP}/80`;

/** What a worker answers (worker.ts): apply, snapshot, status from one ControlApi. */
function fakeDaemon(): { d: Director; api: ControlApi; ask: (req: Request) => Promise<Response> } {
  const d = new Director();
  const api = new ControlApi(d.engine, () => d.now);
  const ask = async (req: Request): Promise<Response> => {
    switch (req.op) {
      case "apply":
        try {
          api.apply(req.commands);
          return { applied: req.commands.length };
        } catch (e) {
          if (!(e instanceof TsvsError)) throw e;
          const index = (e as TsvsError & { index?: number }).index;
          return { error: e.message, code: e.code, index };
        }
      case "table":
        return { table: mergeTables([api.snapshot(req.conns === true)]) };
      case "status": {
        const snap = api.snapshot(false);
        return {
          status: {
            version: 2,
            pid: process.pid,
            control: "/run/tsvs/control.sock",
            netns: "1",
            nft: { table: "netdev tsvs", vips: 1, natDests: 0, updates: 0 },
            worker: { alive: true, restarts: 0 },
            interfaces: [],
            loops: 0,
            batches: 0,
            busyMs: 0,
            uptimeMs: 1,
            services: snap.services.length,
            dests: snap.services.reduce((n, s) => n + s.dests.length, 0),
            connections: d.engine.connections(d.now).length,
            counters: { rxFrames: 1 },
            drops: {},
            config: { file: "/etc/tsvs.yaml", reloads: 0, health: [] },
          },
        };
      }
      case "explain":
        return {
          explain: { ...explainPacket(d.engine, explainQuery(req), d.now), worker: { index: 0, of: 1 } },
        };
      default:
        return { error: `${req.op}: not in this test` };
    }
  };
  return { d, api, ask };
}

// biome-ignore lint/suspicious/noExplicitAny: ajv's CommonJS default export as NodeNext types it.
const Ajv2020 = ((Ajv2020Module as any).default ?? Ajv2020Module) as typeof Ajv2020Module.default;
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema(openApiDocument(), "openapi.json");

const ptr = (s: string): string => s.replaceAll("~", "~0").replaceAll("/", "~1");

/** The answer's status is documented for the route, and its body is what the document says. */
function conforms(template: string, method: string, res: LightMyRequestResponse): void {
  const doc = openApiDocument() as {
    paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
  };
  const op = doc.paths[template]?.[method.toLowerCase()];
  assert.ok(op !== undefined, `${method} ${template} is not in the document`);
  const r = op.responses[String(res.statusCode)] as { content?: unknown } | undefined;
  assert.ok(r !== undefined, `${method} ${template}: ${res.statusCode} not documented (${res.body})`);
  if (r.content === undefined) {
    assert.equal(res.body, "", `${method} ${template}: ${res.statusCode} has no body`);
    return;
  }
  assert.match(String(res.headers["content-type"]), /^application\/json/);
  const at = `openapi.json#/paths/${ptr(template)}/${method.toLowerCase()}/responses/${res.statusCode}/content/application~1json/schema`;
  const v = ajv.getSchema(at) ?? ajv.compile({ $ref: at });
  assert.ok(
    v(res.json()),
    `${method} ${template} ${res.statusCode}: ${ajv.errorsText(v.errors)}\n${res.body}`,
  );
}

interface Harness {
  app: FastifyInstance;
  d: Director;
  api: ControlApi;
  routes: Array<{ method: string; url: string }>;
  call(
    method: "GET" | "POST" | "PUT" | "DELETE",
    url: string,
    template: string,
    o?: { body?: unknown; token?: boolean; raw?: string },
  ): Promise<LightMyRequestResponse>;
}

async function harness(openReads: boolean, ask?: (req: Request) => Promise<Response>): Promise<Harness> {
  const f = fakeDaemon();
  const app = fastify({ logger: false });
  const routes: Array<{ method: string; url: string }> = [];
  app.addHook("onRoute", (r) => {
    for (const m of [r.method].flat()) if (m !== "HEAD") routes.push({ method: m, url: r.url });
  });
  await registerRest(app, { ask: ask ?? f.ask, token: TOKEN, openReads, timeoutMs: 200 });
  await app.ready();
  return {
    app,
    ...f,
    routes,
    async call(method, url, template, o = {}) {
      const headers: Record<string, string> = o.token === false ? {} : { ...AUTH };
      let payload: string | undefined;
      if (o.raw !== undefined || o.body !== undefined) {
        headers["content-type"] = "application/json";
        payload = o.raw ?? JSON.stringify(o.body);
      }
      const res = await app.inject({ method, url, headers, payload });
      conforms(template, method, res);
      return res;
    },
  };
}

const T = {
  services: `${P}/services`,
  svc: `${P}/services/{protocol}/{address}/{port}`,
  svcZero: `${P}/services/{protocol}/{address}/{port}/zero`,
  dests: `${P}/services/{protocol}/{address}/{port}/destinations`,
  dest: `${P}/services/{protocol}/{address}/{port}/destinations/{rsAddress}/{rsPort}`,
  fwm: `${P}/services/fwm/{fwmark}`,
  fwmDests: `${P}/services/fwm/{fwmark}/destinations`,
  fwmDest: `${P}/services/fwm/{fwmark}/destinations/{rsAddress}/{rsPort}`,
  fwm6: `${P}/services/fwm6/{fwmark}`,
  fwm6Zero: `${P}/services/fwm6/{fwmark}/zero`,
  fwm6Dests: `${P}/services/fwm6/{fwmark}/destinations`,
  fwm6Dest: `${P}/services/fwm6/{fwmark}/destinations/{rsAddress}/{rsPort}`,
  conns: `${P}/connections`,
  status: `${P}/status`,
  zero: `${P}/zero`,
  commands: `${P}/commands`,
  openapi: `${P}/openapi.json`,
};

const addService = { protocol: "tcp", address: VIP, port: 80, scheduler: "rr" };

/** A /commands batch as the control socket takes it: a UDP service on 53 and one NAT real server. */
function dnsBatch(key: object, netmask: number, rs: object): object[] {
  return [
    { op: "add-service", svc: { ...key, schedName: "rr", flags: 0, timeout: 0, netmask, peName: "" } },
    {
      op: "add-dest",
      key,
      dest: {
        ...rs,
        port: 53,
        fwd: 0,
        weight: 1,
        uThreshold: 0,
        lThreshold: 0,
        tunType: 0,
        tunPort: 0,
        tunFlags: 0,
      },
    },
  ];
}

async function withService(h: Harness): Promise<void> {
  assert.equal((await h.call("POST", `${P}/services`, T.services, { body: addService })).statusCode, 201);
  for (const [addr, weight] of [
    [IP.rs1, 3],
    [IP.rs2, 1],
  ] as const) {
    const r = await h.call("POST", `${SVC}/destinations`, T.dests, {
      body: { address: addr, forward: "masq", weight },
    });
    assert.equal(r.statusCode, 201, r.body);
  }
}

describe("REST API: the document and the routes", () => {
  it("every route is in the OpenAPI document, and every documented operation is a route", async () => {
    const h = await harness(true);
    const toDoc = (u: string): string =>
      u
        .replace(":proto", "{protocol}")
        .replace(":addr", "{address}")
        .replace(":port", "{port}")
        .replace(":mark", "{fwmark}")
        .replace(":raddr", "{rsAddress}")
        .replace(":rport", "{rsPort}");
    const routes = h.routes.map((r) => `${r.method} ${toDoc(r.url)}`).sort();
    const doc = openApiDocument() as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths)
      .flatMap(([p, ops]) =>
        Object.keys(ops)
          .filter((m) => m !== "parameters")
          .map((m) => `${m.toUpperCase()} ${p}`),
      )
      .sort();
    assert.deepEqual(routes, documented);
    assert.equal(ajv.validateSchema(openApiDocument().components as object), true);
    const r = await h.call("GET", T.openapi, T.openapi, { token: false });
    assert.equal(r.json().openapi, "3.1.0");
  });
});

describe("REST API: reads and writes on loopback", () => {
  it("add a service and two destinations, list them, drain one, edit, zero, delete", async () => {
    const h = await harness(true);
    await withService(h);

    const list = await h.call("GET", `${P}/services`, T.services, { token: false });
    assert.equal(list.statusCode, 200);
    const [svc] = list.json().services;
    assert.equal(svc.key, `tcp/${VIP}/80`);
    assert.equal(svc.scheduler, "rr");
    assert.deepEqual(
      svc.destinations.map((x: { address: string; weight: number; forward: string }) => [
        x.address,
        x.weight,
        x.forward,
      ]),
      [
        [IP.rs2, 1, "masq"],
        [IP.rs1, 3, "masq"],
      ],
      "newest first: the kernel's list order, as the snapshot has it",
    );
    assert.equal((await h.call("GET", SVC, T.svc, { token: false })).json().key, `tcp/${VIP}/80`);
    assert.equal(
      (await h.call("GET", `${SVC}/destinations`, T.dests, { token: false })).json().destinations.length,
      2,
    );
    const one = await h.call("GET", `${SVC}/destinations/${IP.rs1}/80`, T.dest, { token: false });
    assert.equal(one.json().weight, 3);

    // Drain: weight 0, the rest of the destination kept.
    const drain = await h.call("PUT", `${SVC}/destinations/${IP.rs1}/80`, T.dest, { body: { weight: 0 } });
    assert.equal(drain.statusCode, 200, drain.body);
    assert.equal(drain.json().weight, 0);
    assert.equal(drain.json().forward, "masq");
    assert.equal(
      h.api.snapshot(false).services[0].dests.find((x) => x.addr === parseIPv4(IP.rs1))?.weight,
      0,
    );

    const edit = await h.call("PUT", SVC, T.svc, { body: { scheduler: "wlc", persistence: 60 } });
    assert.equal(edit.statusCode, 200, edit.body);
    assert.equal(edit.json().scheduler, "wlc");
    assert.equal(edit.json().persistence, 60);
    assert.equal(h.api.snapshot(false).services[0].schedName, "wlc");

    // Traffic, then the connection table and the zeroes.
    h.d.input(
      1,
      tcpFrame(
        L2_FROM_ROUTER,
        { src: parseIPv4(IP.client1) as number, dst: parseIPv4(VIP) as number },
        { sport: 5000, dport: 80, flags: SYN },
      ),
    );
    const conns = await h.call("GET", `${P}/connections?client=${IP.client1}`, T.conns, { token: false });
    assert.equal(conns.statusCode, 200, conns.body);
    const c = conns.json();
    assert.ok(c.total >= 1, conns.body);
    assert.ok(
      c.connections.every((x: { client: { address: string } }) => x.client.address === IP.client1),
      conns.body,
    );
    const none = await h.call("GET", `${P}/connections?client=${IP.client2}`, T.conns, { token: false });
    assert.equal(none.json().total, 0);
    const page = await h.call("GET", `${P}/connections?limit=1&offset=0&vip=${VIP}:80`, T.conns, {
      token: false,
    });
    assert.ok(page.json().connections.length <= 1);
    assert.equal(h.api.snapshot(false).services[0].stats.conns, 1);
    assert.equal((await h.call("POST", `${SVC}/zero`, T.svcZero)).statusCode, 200);
    assert.equal(h.api.snapshot(false).services[0].stats.conns, 0);
    assert.equal((await h.call("POST", `${P}/zero`, T.zero)).statusCode, 200);

    const st = await h.call("GET", `${P}/status`, T.status, { token: false });
    assert.equal(st.json().services, 1);

    assert.equal((await h.call("DELETE", `${SVC}/destinations/${IP.rs1}/80`, T.dest)).statusCode, 204);
    assert.equal(h.api.snapshot(false).services[0].dests.length, 1);
    assert.equal((await h.call("DELETE", SVC, T.svc)).statusCode, 204);
    assert.equal(h.api.snapshot(false).services.length, 0);
  });

  it("a fwmark service: fwm/MARK in paths", async () => {
    const h = await harness(true);
    const r = await h.call("POST", `${P}/services`, T.services, { body: { fwmark: 5, scheduler: "wrr" } });
    assert.equal(r.statusCode, 201, r.body);
    assert.equal(r.json().key, "fwm/5");
    assert.equal(r.headers.location, `${P}/services/fwm/5`);
    const d = await h.call("POST", `${P}/services/fwm/5/destinations`, T.fwmDests, {
      body: { address: IP.rs1, port: 8080, forward: "masq" },
    });
    assert.equal(d.statusCode, 201, d.body);
    assert.equal((await h.call("GET", `${P}/services/fwm/5`, T.fwm)).json().destinations.length, 1);
    const w = await h.call("PUT", `${P}/services/fwm/5/destinations/${IP.rs1}/8080`, T.fwmDest, {
      body: { weight: 7 },
    });
    assert.equal(w.json().weight, 7);
    assert.equal((await h.call("DELETE", `${P}/services/fwm/5`, T.fwm)).statusCode, 204);
  });

  it("a batch of ControlCommands applies whole", async () => {
    const h = await harness(true);
    const commands = dnsBatch(
      { af: 4, protocol: 17, addr: parseIPv4(VIP), port: 53, fwmark: 0 },
      0xffffffff,
      { af: 4, addr: parseIPv4(IP.rs1) },
    );
    const r = await h.call("POST", `${P}/commands`, T.commands, { body: { commands } });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), { applied: 2 });
    assert.equal(
      (await h.call("GET", `${P}/services/udp/${VIP}/53`, T.svc, { token: false })).json().destinations
        .length,
      1,
    );
    // The same again: the service exists (index 0), nothing of the batch applied.
    const again = await h.call("POST", `${P}/commands`, T.commands, { body: { commands } });
    assert.equal(again.statusCode, 409);
    assert.deepEqual(again.json().error.code, "TSVS_ERR_SERVICE_EXISTS");
    assert.equal(again.json().error.index, 0);
  });
});

describe("REST API: the token", () => {
  it("every write needs it on loopback; reads do not", async () => {
    const h = await harness(true);
    await withService(h);
    const before = JSON.stringify(h.api.snapshot(false));
    const writes: Array<["POST" | "PUT" | "DELETE", string, string, unknown]> = [
      ["POST", `${P}/services`, T.services, { ...addService, port: 81 }],
      ["PUT", SVC, T.svc, { scheduler: "wlc" }],
      ["DELETE", SVC, T.svc, undefined],
      ["POST", `${SVC}/zero`, T.svcZero, undefined],
      ["POST", `${SVC}/destinations`, T.dests, { address: IP.rs3 }],
      ["PUT", `${SVC}/destinations/${IP.rs1}/80`, T.dest, { weight: 0 }],
      ["DELETE", `${SVC}/destinations/${IP.rs1}/80`, T.dest, undefined],
      ["POST", `${P}/services/fwm/5/zero`, `${P}/services/fwm/{fwmark}/zero`, undefined],
      ["POST", `${P}/zero`, T.zero, undefined],
      ["POST", `${P}/commands`, T.commands, { commands: [{ op: "clear" }] }],
    ];
    for (const [method, url, template, body] of writes) {
      const res = await h.call(method, url, template, { token: false, body });
      assert.equal(res.statusCode, 401, `${method} ${url}`);
      assert.equal(res.json().error.code, "TSVS_ERR_UNAUTHORIZED");
      assert.equal(res.headers["www-authenticate"], 'Bearer realm="tsvs"');
      const bad = await h.app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${TOKEN.slice(0, -1)}x` },
      });
      assert.equal(bad.statusCode, 401, `${method} ${url} with a bad token`);
      assert.equal(bad.json().error.message, "bad token");
    }
    assert.equal(JSON.stringify(h.api.snapshot(false)), before, "nothing applied");
    for (const [url, template] of [
      [`${P}/services`, T.services],
      [SVC, T.svc],
      [`${SVC}/destinations`, T.dests],
      [`${SVC}/destinations/${IP.rs1}/80`, T.dest],
      [`${P}/connections`, T.conns],
      [`${P}/status`, T.status],
    ]) {
      assert.equal((await h.call("GET", url, template, { token: false })).statusCode, 200, url);
    }
  });

  it("off loopback, reads need it too (but the OpenAPI document)", async () => {
    const h = await harness(false);
    await withService(h);
    for (const [url, template] of [
      [`${P}/services`, T.services],
      [SVC, T.svc],
      [`${SVC}/destinations`, T.dests],
      [`${SVC}/destinations/${IP.rs1}/80`, T.dest],
      [`${P}/connections`, T.conns],
      [`${P}/status`, T.status],
    ]) {
      const no = await h.call("GET", url, template, { token: false });
      assert.equal(no.statusCode, 401, url);
      assert.equal(no.json().error.code, "TSVS_ERR_UNAUTHORIZED");
      assert.equal((await h.call("GET", url, template)).statusCode, 200, url);
    }
    assert.equal((await h.call("GET", T.openapi, T.openapi, { token: false })).statusCode, 200);
  });

  it("isLoopback, tokenMatches", () => {
    assert.equal(isLoopback("127.0.0.1"), true);
    assert.equal(isLoopback("::1"), true);
    assert.equal(isLoopback("0.0.0.0"), false);
    assert.equal(isLoopback("198.18.0.254"), false);
    assert.equal(tokenMatches(TOKEN, TOKEN), true);
    assert.equal(tokenMatches(`${TOKEN}x`, TOKEN), false);
    assert.equal(tokenMatches("", TOKEN), false);
  });

  describe("the token file", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsvs-rest-"));
    after(() => rmSync(dir, { recursive: true, force: true }));
    it("created beside the control socket at first start, mode 0600", () => {
      const control = join(dir, "control.sock");
      const a = loadToken(control);
      assert.equal(a.file, join(dir, "http.token"));
      assert.match(a.token, /^[0-9a-f]{64}$/);
      assert.equal(statSync(a.file).mode & 0o777, 0o600);
      assert.equal(readFileSync(a.file, "utf8"), `${a.token}\n`);
      assert.equal(a.created, true);
      const b = loadToken(control);
      assert.equal(b.token, a.token, "a token left behind (a crashed daemon's) is used");
      assert.equal(b.created, false);
    });
    it("--http-token-file: its first line; a short one, or one others may read, is refused", () => {
      const f = join(dir, "given");
      writeFileSync(f, `${TOKEN}\nanything\n`, { mode: 0o600 });
      assert.deepEqual(loadToken(join(dir, "x.sock"), f), { token: TOKEN, file: f, created: false });
      writeFileSync(f, "short\n");
      assert.throws(() => loadToken(join(dir, "x.sock"), f), /at least 16 characters/);
      assert.throws(() => loadToken(join(dir, "x.sock"), join(dir, "missing")), /ENOENT/);
      writeFileSync(f, `${TOKEN}\n`);
      chmodSync(f, 0o640);
      assert.throws(() => loadToken(join(dir, "x.sock"), f), /has mode 0640: others may read or change it/);
    });
  });
});

describe("REST API: errors, nothing applied", () => {
  it("bad JSON, bad values, unknown fields: 400 with their codes", async () => {
    const h = await harness(true);
    await withService(h);
    const before = JSON.stringify(h.api.snapshot(false));
    const cases: Array<
      [string, "POST" | "PUT", string, string, { raw?: string; body?: unknown }, string, RegExp]
    > = [
      ["bad JSON", "POST", `${P}/services`, T.services, { raw: '{"protocol":' }, "TSVS_ERR_PARSE", /JSON/],
      ["bad JSON (batch)", "POST", `${P}/commands`, T.commands, { raw: "[" }, "TSVS_ERR_PARSE", /JSON/],
      [
        "port 70000",
        "POST",
        `${P}/services`,
        T.services,
        { body: { ...addService, port: 70000 } },
        "TSVS_ERR_INVALID",
        /^port: /,
      ],
      [
        "an unknown field",
        "POST",
        `${P}/services`,
        T.services,
        { body: { ...addService, port: 81, colour: "red" } },
        "TSVS_ERR_INVALID",
        /colour|Unrecognized|Invalid/,
      ],
      [
        "a bad address",
        "POST",
        `${SVC}/destinations`,
        T.dests,
        { body: { address: "198.18.1" } },
        "TSVS_ERR_INVALID",
        /address: must be an IPv4 or IPv6 address/,
      ],
      [
        "weight 65536",
        "PUT",
        `${SVC}/destinations/${IP.rs1}/80`,
        T.dest,
        { body: { weight: 65536 } },
        "TSVS_ERR_INVALID",
        /^weight: /,
      ],
      [
        "weight as a string",
        "PUT",
        `${SVC}/destinations/${IP.rs1}/80`,
        T.dest,
        { body: { weight: "0" } },
        "TSVS_ERR_INVALID",
        /^weight: /,
      ],
      [
        "an unknown scheduler",
        "PUT",
        SVC,
        T.svc,
        { body: { scheduler: "nope" } },
        "TSVS_ERR_SCHED_NOT_FOUND",
        /not found/,
      ],
      [
        "port 0 without persistence",
        "POST",
        `${P}/services`,
        T.services,
        { body: { ...addService, port: 0 } },
        "TSVS_ERR_INVALID",
        /Zero port specified for non-persistent service/,
      ],
      [
        "a batch whose second command breaks its schema",
        "POST",
        `${P}/commands`,
        T.commands,
        { body: { commands: [{ op: "clear" }, { op: "zero", key: null, extra: 1 }] } },
        "TSVS_ERR_INVALID",
        /^command 1/,
      ],
      [
        "a body that is not an object",
        "POST",
        `${SVC}/destinations`,
        T.dests,
        { raw: '"198.18.1.13"' },
        "TSVS_ERR_INVALID",
        /must be a JSON object/,
      ],
      [
        "a fwmark service with a port",
        "POST",
        `${P}/services`,
        T.services,
        { body: { fwmark: 3, port: 80 } },
        "TSVS_ERR_INVALID",
        /port|Unrecognized/,
      ],
      [
        "a batch that is not {commands: [...]}",
        "POST",
        `${P}/commands`,
        T.commands,
        { body: [{ op: "clear" }] },
        "TSVS_ERR_INVALID",
        /commands/,
      ],
    ];
    for (const [what, method, url, template, o, code, message] of cases) {
      const r = await h.call(method, url, template, o);
      assert.equal(r.statusCode, 400, `${what}: ${r.body}`);
      assert.equal(r.json().error.code, code, what);
      assert.match(r.json().error.message, message, what);
    }
    // A bad path value.
    const p = await h.call("GET", `${P}/services/tcp/${VIP}/99999`, T.svc);
    assert.equal(p.statusCode, 400);
    const q = await h.call("GET", `${P}/connections?limit=x`, T.conns);
    assert.equal(q.statusCode, 400);
    assert.equal(JSON.stringify(h.api.snapshot(false)), before, "nothing applied");
  });

  it("404 for no such service or destination, 409 for one that exists", async () => {
    const h = await harness(true);
    await withService(h);
    const before = JSON.stringify(h.api.snapshot(false));
    const missing = `${P}/services/tcp/${VIP}/81`;
    for (const [method, url, template, body, code] of [
      ["GET", missing, T.svc, undefined, "TSVS_ERR_NO_SERVICE"],
      ["PUT", missing, T.svc, { scheduler: "rr" }, "TSVS_ERR_NO_SERVICE"],
      ["DELETE", missing, T.svc, undefined, "TSVS_ERR_NO_SERVICE"],
      ["GET", `${missing}/destinations`, T.dests, undefined, "TSVS_ERR_NO_SERVICE"],
      ["POST", `${missing}/destinations`, T.dests, { address: IP.rs1 }, "TSVS_ERR_SERVICE_NOT_DEFINED"],
      ["GET", `${SVC}/destinations/${IP.rs3}/80`, T.dest, undefined, "TSVS_ERR_NO_DEST"],
      ["PUT", `${SVC}/destinations/${IP.rs3}/80`, T.dest, { weight: 0 }, "TSVS_ERR_NO_DEST"],
      ["DELETE", `${SVC}/destinations/${IP.rs3}/80`, T.dest, undefined, "TSVS_ERR_NO_DEST"],
      ["GET", `${P}/services/fwm/9`, T.fwm, undefined, "TSVS_ERR_NO_SERVICE"],
    ] as const) {
      const r = await h.call(method, url, template, { body });
      assert.equal(r.statusCode, 404, `${method} ${url}: ${r.body}`);
      assert.equal(r.json().error.code, code, `${method} ${url}`);
    }
    const dup = await h.call("POST", `${P}/services`, T.services, { body: addService });
    assert.equal(dup.statusCode, 409);
    assert.equal(dup.json().error.code, "TSVS_ERR_SERVICE_EXISTS");
    const dupDest = await h.call("POST", `${SVC}/destinations`, T.dests, { body: { address: IP.rs1 } });
    assert.equal(dupDest.statusCode, 409);
    assert.equal(dupDest.json().error.code, "TSVS_ERR_DEST_EXISTS");
    const route = await h.app.inject({ method: "GET", url: `${P}/nothing` });
    assert.equal(route.statusCode, 404);
    assert.equal(route.json().error.code, "TSVS_ERR_NOT_FOUND");
    assert.equal(JSON.stringify(h.api.snapshot(false)), before, "nothing applied");
  });

  it("503 when the workers do not answer, or answer that the data plane stopped", async () => {
    const never = await harness(true, () => new Promise<Response>(() => {}));
    const r = await never.call("GET", `${P}/services`, T.services);
    assert.equal(r.statusCode, 503);
    assert.equal(r.json().error.code, "TSVS_ERR_UNAVAILABLE");
    const stopped = await harness(true, async () => ({ error: "the data plane stopped" }));
    for (const [method, url, template, body] of [
      ["GET", `${P}/status`, T.status, undefined],
      ["POST", `${P}/zero`, T.zero, undefined],
      ["POST", `${P}/services`, T.services, addService],
    ] as const) {
      const s = await stopped.call(method, url, template, { body });
      assert.equal(s.statusCode, 503, `${method} ${url}`);
      assert.deepEqual(s.json(), {
        error: { code: "TSVS_ERR_UNAVAILABLE", message: "the data plane stopped" },
      });
    }
  });
});

describe("REST API: explain", () => {
  const EX = `${P}/explain`;
  it("GET /explain: the destination a SYN then goes to, no service, bad parameters, the token off loopback", async () => {
    const h = await harness(true);
    await withService(h);
    const q = `proto=tcp&vip=${VIP}&port=80&client=${IP.client1}&cport=40000`;
    const r = await h.call("GET", `${EX}?${q}`, EX, { token: false });
    assert.equal(r.statusCode, 200, r.body);
    const a = r.json();
    assert.equal(a.verdict, "scheduled");
    assert.equal(a.service.name, `TCP  ${VIP}:80`);
    assert.deepEqual(a.worker, { index: 0, of: 1 });
    const out = h.d.input(
      1,
      tcpFrame(
        L2_FROM_ROUTER,
        { src: parseIPv4(IP.client1) as number, dst: parseIPv4(VIP) as number },
        { sport: 40000, dport: 80, flags: SYN },
      ),
    ).out;
    const f = out.find((x) => x.ifindex === 2)?.frame;
    assert.ok(f !== undefined);
    assert.equal(`${f[30]}.${f[31]}.${f[32]}.${f[33]}:80`, a.forward.dst);
    const existing = await h.call("GET", `${EX}?${q}`, EX, { token: false });
    assert.equal(existing.json().verdict, "existing");
    // proto defaults to tcp; fwmark given.
    const marked = await h.call("GET", `${EX}?vip=${VIP}&port=80&client=${IP.client2}&cport=1&fwmark=7`, EX, {
      token: false,
    });
    assert.equal(marked.statusCode, 200, marked.body);
    assert.equal(marked.json().fwmark.source, "given");
    const none = await h.call("GET", `${EX}?proto=udp&vip=${VIP}&port=80&client=${IP.client1}&cport=1`, EX, {
      token: false,
    });
    assert.equal(none.statusCode, 200);
    assert.equal(none.json().verdict, "no-service");
    assert.match(none.json().summary, /^No such service/);
    for (const bad of [
      `vip=${VIP}&port=80&client=${IP.client1}`,
      `vip=1.2.3&port=80&client=${IP.client1}&cport=1`,
      `vip=${VIP}&port=70000&client=${IP.client1}&cport=1`,
      `proto=icmp&vip=${VIP}&port=80&client=${IP.client1}&cport=1`,
      `vip=${VIP}&port=80&client=${IP.client1}&cport=1&fwmark=-1`,
    ]) {
      const res = await h.call("GET", `${EX}?${bad}`, EX, { token: false });
      assert.equal(res.statusCode, 400, bad);
      assert.equal(res.json().error.code, "TSVS_ERR_INVALID");
    }
    const off = await harness(false);
    assert.equal((await off.call("GET", `${EX}?${q}`, EX, { token: false })).statusCode, 401);
    assert.equal((await off.call("GET", `${EX}?${q}`, EX)).statusCode, 200);
    const stopped = await harness(true, async () => ({ error: "the data plane stopped" }));
    assert.equal((await stopped.call("GET", `${EX}?${q}`, EX)).statusCode, 503);
  });
});

// IPv6 (issue 14): services and destinations named by IPv6 text in paths and bodies, fwm6/MARK for
// an IPv6 fwmark service, prefix-length netmasks, IPv6 endpoints and filters on connections.
const VIP6 = "2001:db8::100";
const SVC6 = `${P}/services/tcp/${VIP6}/80`;
const RS6 = ["2001:db8:1::11", "2001:db8:1::12"] as const;

async function withService6(h: Harness): Promise<void> {
  const r = await h.call("POST", `${P}/services`, T.services, {
    body: { protocol: "tcp", address: "2001:DB8:0:0::100", port: 80, scheduler: "rr" },
  });
  assert.equal(r.statusCode, 201, r.body);
  for (const [addr, weight] of [
    [RS6[0], 3],
    [RS6[1], 1],
  ] as const) {
    const d = await h.call("POST", `${SVC6}/destinations`, T.dests, {
      body: { address: addr, forward: "masq", weight },
    });
    assert.equal(d.statusCode, 201, d.body);
  }
}

describe("REST API: explain for IPv6", () => {
  const EX = `${P}/explain`;
  it("GET /explain with an IPv6 VIP and client: the answer names them as ipvsadm does, and conforms", async () => {
    const h = await harness(true);
    await withService6(h);
    const r = await h.call("GET", `${EX}?vip=2001:DB8:0::100&port=80&client=2001:db8:ff::10&cport=4000`, EX, {
      token: false,
    });
    assert.equal(r.statusCode, 200, r.body);
    const a = r.json();
    assert.equal(a.verdict, "scheduled");
    assert.equal(a.packet.client, "[2001:db8:ff::10]:4000");
    assert.equal(a.service.name, "TCP  [2001:db8::100]:80");
    assert.match(a.forward.dst, /^\[2001:db8:1::1[12]\]:80$/);
    // A persistent IPv6 service: the prefix length is the mask, the template the client's /64.
    const e = await h.call("PUT", SVC6, T.svc, {
      body: { scheduler: "rr", persistence: 60, netmask: 64 },
    });
    assert.equal(e.statusCode, 200, e.body);
    const p = await h.call("GET", `${EX}?vip=${VIP6}&port=80&client=2001:db8:ff::10&cport=4001`, EX, {
      token: false,
    });
    assert.equal(p.statusCode, 200, p.body);
    assert.deepEqual(
      [p.json().service.persistent.netmask, p.json().template.client],
      ["64", "2001:db8:ff::"],
    );
    for (const bad of [
      `vip=${VIP6}&port=80&client=198.18.0.1&cport=1`,
      `vip=2001:db8::1::2&port=80&client=2001:db8:ff::10&cport=1`,
    ]) {
      const res = await h.call("GET", `${EX}?${bad}`, EX, { token: false });
      assert.equal(res.statusCode, 400, bad);
      assert.equal(res.json().error.code, "TSVS_ERR_INVALID");
    }
  });
});

describe("REST API: IPv6", () => {
  it("an IPv6 service through every route: any inet_pton spelling in, inet_ntop's out", async () => {
    const h = await harness(true);
    const add = await h.call("POST", `${P}/services`, T.services, {
      body: { protocol: "tcp", address: "2001:DB8:0:0::100", port: 80, scheduler: "rr" },
    });
    assert.equal(add.statusCode, 201, add.body);
    assert.equal(add.headers.location, SVC6);
    assert.deepEqual(
      [add.json().key, add.json().family, add.json().address, add.json().netmask],
      [`tcp/${VIP6}/80`, 6, VIP6, 128],
      "an IPv6 service's granularity is a prefix length, 128 by default",
    );
    const d = await h.call("POST", `${SVC6}/destinations`, T.dests, {
      body: { address: "2001:db8:1:0:0:0:0:11", port: 8080, forward: "masq", weight: 3 },
    });
    assert.equal(d.statusCode, 201, d.body);
    assert.equal(d.headers.location, `${SVC6}/destinations/${RS6[0]}/8080`);
    assert.deepEqual([d.json().family, d.json().address, d.json().port], [6, RS6[0], 8080]);
    const snap = h.api.snapshot(false).services[0];
    assert.deepEqual([snap.af, snap.addr, snap.addr6], [6, 0, VIP6]);
    assert.deepEqual([snap.dests[0].addr6, snap.dests[0].port], [RS6[0], 8080]);

    // The same service however its address is written in the path (percent-encoded colons too).
    for (const spelling of [VIP6, "2001:0db8:0000::0100", "2001:db8:0:0:0:0:0:100", "2001%3Adb8%3A%3A100"]) {
      const r = await h.call("GET", `${P}/services/tcp/${spelling}/80`, T.svc, { token: false });
      assert.equal(r.statusCode, 200, `${spelling}: ${r.body}`);
      assert.equal(r.json().key, `tcp/${VIP6}/80`);
    }
    const list = await h.call("GET", `${SVC6}/destinations`, T.dests, { token: false });
    assert.equal(list.json().destinations.length, 1);
    const one = await h.call("GET", `${SVC6}/destinations/2001:db8:1::0:11/8080`, T.dest, { token: false });
    assert.equal(one.statusCode, 200, one.body);
    assert.equal(one.json().weight, 3);
    const drain = await h.call("PUT", `${SVC6}/destinations/${RS6[0]}/8080`, T.dest, { body: { weight: 0 } });
    assert.equal(drain.statusCode, 200, drain.body);
    assert.deepEqual([drain.json().weight, drain.json().forward], [0, "masq"]);
    const edit = await h.call("PUT", SVC6, T.svc, { body: { persistence: 60, netmask: 64 } });
    assert.equal(edit.statusCode, 200, edit.body);
    assert.deepEqual([edit.json().persistence, edit.json().netmask], [60, 64]);
    assert.equal(h.api.snapshot(false).services[0].netmask, 64);
    const zero = await h.call("POST", `${SVC6}/zero`, T.svcZero);
    assert.deepEqual(zero.json(), { zeroed: `tcp/${VIP6}/80` });
    assert.equal((await h.call("DELETE", `${SVC6}/destinations/${RS6[0]}/8080`, T.dest)).statusCode, 204);
    assert.equal(h.api.snapshot(false).services[0].dests.length, 0);
    assert.equal((await h.call("DELETE", `${P}/services/tcp/2001:db8:0::100/80`, T.svc)).statusCode, 204);
    assert.equal(h.api.snapshot(false).services.length, 0);
  });

  it("an IPv4 and an IPv6 service side by side keep apart; an IPv6 batch through /commands", async () => {
    const h = await harness(true);
    await withService(h);
    await withService6(h);
    const all = (await h.call("GET", `${P}/services`, T.services)).json().services;
    assert.deepEqual(all.map((s: { key: string }) => s.key).sort(), [`tcp/${VIP}/80`, `tcp/${VIP6}/80`]);
    const v6 = (await h.call("GET", SVC6, T.svc)).json();
    assert.deepEqual(
      v6.destinations.map((x: { address: string; family: number }) => [x.address, x.family]),
      [
        [RS6[1], 6],
        [RS6[0], 6],
      ],
    );
    const commands = dnsBatch(
      { af: 6, protocol: 17, addr: 0, addr6: "2001:db8::53", port: 53, fwmark: 0 },
      128,
      { af: 6, addr: 0, addr6: "2001:db8:1::53" },
    );
    const r = await h.call("POST", `${P}/commands`, T.commands, { body: { commands } });
    assert.equal(r.statusCode, 200, r.body);
    const dns = await h.call(
      "GET",
      `${P}/services/udp/2001:db8::53/53/destinations/2001:db8:1::53/53`,
      T.dest,
    );
    assert.equal(dns.statusCode, 200, dns.body);
  });

  it("fwm6/MARK: an IPv6 fwmark service, apart from fwm/MARK", async () => {
    const h = await harness(true);
    const r = await h.call("POST", `${P}/services`, T.services, {
      body: { fwmark: 5, family: 6, scheduler: "wrr", persistence: 30, netmask: 48 },
    });
    assert.equal(r.statusCode, 201, r.body);
    assert.deepEqual(
      [r.json().key, r.json().family, r.json().address, r.json().netmask],
      ["fwm6/5", 6, null, 48],
    );
    assert.equal(r.headers.location, `${P}/services/fwm6/5`);
    const none = await h.call("GET", `${P}/services/fwm/5`, T.fwm);
    assert.equal(none.statusCode, 404, "fwm/5 is the IPv4 service with mark 5");
    const v4 = await h.call("POST", `${P}/services`, T.services, { body: { fwmark: 5 } });
    assert.equal(v4.statusCode, 201, v4.body);
    assert.deepEqual([v4.json().key, v4.json().family, v4.json().netmask], ["fwm/5", 4, "255.255.255.255"]);
    const d = await h.call("POST", `${P}/services/fwm6/5/destinations`, T.fwm6Dests, {
      body: { address: RS6[0], port: 8080, forward: "masq" },
    });
    assert.equal(d.statusCode, 201, d.body);
    assert.equal(d.headers.location, `${P}/services/fwm6/5/destinations/${RS6[0]}/8080`);
    const w = await h.call("PUT", `${P}/services/fwm6/5/destinations/${RS6[0]}/8080`, T.fwm6Dest, {
      body: { weight: 7 },
    });
    assert.equal(w.json().weight, 7);
    assert.equal(
      (await h.call("GET", `${P}/services/fwm6/5/destinations/${RS6[0]}/8080`, T.fwm6Dest)).statusCode,
      200,
    );
    assert.equal(
      (await h.call("GET", `${P}/services/fwm6/5/destinations`, T.fwm6Dests)).json().destinations.length,
      1,
    );
    assert.equal((await h.call("GET", `${P}/services/fwm/5`, T.fwm)).json().destinations.length, 0);
    const e = await h.call("PUT", `${P}/services/fwm6/5`, T.fwm6, { body: { netmask: 56 } });
    assert.equal(e.json().netmask, 56);
    assert.deepEqual((await h.call("POST", `${P}/services/fwm6/5/zero`, T.fwm6Zero)).json(), {
      zeroed: "fwm6/5",
    });
    assert.equal(
      (await h.call("DELETE", `${P}/services/fwm6/5/destinations/${RS6[0]}/8080`, T.fwm6Dest)).statusCode,
      204,
    );
    assert.equal((await h.call("DELETE", `${P}/services/fwm6/5`, T.fwm6)).statusCode, 204);
    assert.deepEqual(
      h.api.snapshot(false).services.map((s) => [s.fwmark, s.af]),
      [[5, 4]],
    );
  });

  it("bad IPv6 values: 400 with their codes, 404s, and nothing applied", async () => {
    const h = await harness(true);
    await withService(h);
    await withService6(h);
    const before = JSON.stringify(h.api.snapshot(false));
    const cases: Array<[string, "GET" | "POST" | "PUT" | "DELETE", string, string, unknown, string, RegExp]> =
      [
        [
          "two '::'",
          "POST",
          `${P}/services`,
          T.services,
          { protocol: "tcp", address: "2001:db8::1::2", port: 80 },
          "TSVS_ERR_INVALID",
          /^address: must be an IPv4 or IPv6 address/,
        ],
        [
          "a zone id (inet_pton has none)",
          "POST",
          `${SVC6}/destinations`,
          T.dests,
          { address: "2001:db8::1%eth0" },
          "TSVS_ERR_INVALID",
          /^address: /,
        ],
        [
          "brackets in a body",
          "POST",
          `${SVC6}/destinations`,
          T.dests,
          { address: `[${RS6[0]}]` },
          "TSVS_ERR_INVALID",
          /^address: /,
        ],
        [
          "a family that is not the address's",
          "POST",
          `${P}/services`,
          T.services,
          { protocol: "tcp", address: "2001:db8::2", port: 80, family: 4 },
          "TSVS_ERR_INVALID",
          /family/,
        ],
        [
          "a prefix length for an IPv4 service",
          "PUT",
          SVC,
          T.svc,
          { netmask: 24 },
          "TSVS_ERR_INVALID",
          /IPv4 service's netmask is a dotted mask/,
        ],
        [
          "a dotted mask for an IPv6 service",
          "PUT",
          SVC6,
          T.svc,
          { netmask: "255.255.255.0" },
          "TSVS_ERR_INVALID",
          /IPv6 service's netmask is a prefix length/,
        ],
        ["prefix length 129", "PUT", SVC6, T.svc, { netmask: 129 }, "TSVS_ERR_INVALID", /^netmask: /],
        [
          "prefix length 0",
          "POST",
          `${P}/services`,
          T.services,
          { fwmark: 9, family: 6, netmask: 0 },
          "TSVS_ERR_INVALID",
          /^netmask: /,
        ],
        [
          "a link-local real server (the kernel's ipv6_addr_type)",
          "POST",
          `${SVC6}/destinations`,
          T.dests,
          { address: "fe80::1" },
          "TSVS_ERR_INVALID",
          /address not unicast/,
        ],
        [
          "a multicast real server",
          "POST",
          `${SVC6}/destinations`,
          T.dests,
          { address: "ff02::1" },
          "TSVS_ERR_INVALID",
          /address not unicast/,
        ],
        [
          "NAT from IPv6 to an IPv4 real server",
          "POST",
          `${SVC6}/destinations`,
          T.dests,
          { address: IP.rs3, forward: "masq" },
          "TSVS_ERR_INVALID",
          /address not unicast/,
        ],
        [
          "DR across families (only a tunnel crosses them: the kernel's rule)",
          "POST",
          `${SVC}/destinations`,
          T.dests,
          { address: RS6[0], forward: "route" },
          "TSVS_ERR_INVALID",
          /address not unicast/,
        ],
        [
          "a bad IPv6 path",
          "GET",
          `${P}/services/tcp/2001:db8::zz/80`,
          T.svc,
          undefined,
          "TSVS_ERR_INVALID",
          /bad address/,
        ],
        [
          "brackets in a path",
          "GET",
          `${P}/services/tcp/[${VIP6}]/80`,
          T.svc,
          undefined,
          "TSVS_ERR_INVALID",
          /bad address/,
        ],
        [
          "a bad IPv6 destination path",
          "DELETE",
          `${SVC6}/destinations/2001:db8:1::11::/80`,
          T.dest,
          undefined,
          "TSVS_ERR_INVALID",
          /bad address/,
        ],
        [
          "a bad connection filter",
          "GET",
          `${P}/connections?client=[${IP.client1}]:80`,
          T.conns,
          undefined,
          "TSVS_ERR_INVALID",
          /^client: ADDR, ADDR:PORT or \[IPv6\]:PORT/,
        ],
        [
          "an unclosed bracket",
          "GET",
          `${P}/connections?vip=[${VIP6}:80`,
          T.conns,
          undefined,
          "TSVS_ERR_INVALID",
          /^vip: /,
        ],
        [
          "a port too big",
          "GET",
          `${P}/connections?server=[${RS6[0]}]:65536`,
          T.conns,
          undefined,
          "TSVS_ERR_INVALID",
          /^server: /,
        ],
      ];
    for (const [what, method, url, template, body, code, message] of cases) {
      const r = await h.call(method, url, template, { body });
      assert.equal(r.statusCode, 400, `${what}: ${r.body}`);
      assert.equal(r.json().error.code, code, what);
      assert.match(r.json().error.message, message, what);
    }
    for (const [method, url, template, body, code] of [
      ["GET", `${P}/services/tcp/2001:db8::101/80`, T.svc, undefined, "TSVS_ERR_NO_SERVICE"],
      ["GET", `${P}/services/udp/${VIP6}/80`, T.svc, undefined, "TSVS_ERR_NO_SERVICE"],
      ["GET", `${SVC6}/destinations/2001:db8:1::13/80`, T.dest, undefined, "TSVS_ERR_NO_DEST"],
      ["PUT", `${SVC6}/destinations/2001:db8:1::13/80`, T.dest, { weight: 0 }, "TSVS_ERR_NO_DEST"],
      ["DELETE", `${SVC6}/destinations/2001:db8:1::13/80`, T.dest, undefined, "TSVS_ERR_NO_DEST"],
      ["GET", `${P}/services/fwm6/5`, T.fwm6, undefined, "TSVS_ERR_NO_SERVICE"],
      // An IPv4 address in an IPv6 service's real server path is another destination.
      ["GET", `${SVC6}/destinations/${IP.rs1}/80`, T.dest, undefined, "TSVS_ERR_NO_DEST"],
    ] as const) {
      const r = await h.call(method, url, template, { body });
      assert.equal(r.statusCode, 404, `${method} ${url}: ${r.body}`);
      assert.equal(r.json().error.code, code, `${method} ${url}`);
    }
    const dup = await h.call("POST", `${SVC6}/destinations`, T.dests, {
      body: { address: "2001:db8:1:0::11" },
    });
    assert.equal(dup.statusCode, 409, "the same real server written another way");
    assert.equal(dup.json().error.code, "TSVS_ERR_DEST_EXISTS");
    assert.equal(JSON.stringify(h.api.snapshot(false)), before, "nothing applied");
  });

  it("connections: IPv6 endpoints as text, filters ADDR, ADDR:PORT, bare IPv6 and [IPv6]:PORT", async () => {
    const base = fakeDaemon();
    const conn = (o: Partial<ConnView>): ConnView => ({
      protocol: 6,
      expiresMs: 900_000,
      state: "ESTABLISHED",
      caddr: 0,
      cport: 0,
      vaddr: 0,
      vport: 80,
      daddr: 0,
      dport: 80,
      laddr: 0,
      lport: 0,
      template: false,
      fwmark: 0,
      ...o,
    });
    // The data path's IPv6 entries: the folds in the numbers, the text beside them.
    const conns = [
      conn({
        caddr: parseIPv4(IP.client1) as number,
        cport: 5000,
        vaddr: parseIPv4(VIP) as number,
        daddr: parseIPv4(IP.rs1) as number,
      }),
      conn({
        caddr: 1,
        caddr6: "2001:db8:c::1",
        cport: 5000,
        vaddr: 2,
        vaddr6: VIP6,
        daddr: 3,
        daddr6: RS6[0],
      }),
      conn({
        caddr: 1,
        caddr6: "2001:db8:c::1",
        cport: 5001,
        vaddr: 2,
        vaddr6: VIP6,
        daddr: 4,
        daddr6: RS6[1],
      }),
      // NAT64 FULLNAT: an IPv6 client side, an IPv4 server side with an IPv4 local address.
      conn({
        caddr: 5,
        caddr6: "2001:db8:c::2",
        cport: 6000,
        vaddr: 2,
        vaddr6: VIP6,
        daddr: parseIPv4(IP.rs2) as number,
        laddr: parseIPv4("198.18.2.1") as number,
        lport: 1024,
      }),
    ];
    const h = await harness(true, async (req) =>
      req.op === "table" ? { table: { ...mergeTables([base.api.snapshot(false)]), conns } } : { error: "no" },
    );
    const page = (await h.call("GET", `${P}/connections`, T.conns)).json();
    assert.equal(page.total, 4);
    assert.deepEqual(page.connections[1].client, { address: "2001:db8:c::1", port: 5000 });
    assert.deepEqual(page.connections[1].virtual, { address: VIP6, port: 80 });
    assert.deepEqual(page.connections[1].server, { address: RS6[0], port: 80 });
    assert.equal(page.connections[1].local, null);
    assert.deepEqual(page.connections[3].server, { address: IP.rs2, port: 80 });
    assert.deepEqual(page.connections[3].local, { address: "198.18.2.1", port: 1024 });
    for (const [query, want] of [
      [`client=${IP.client1}`, [0]],
      [`client=2001:db8:c::1`, [1, 2]],
      [`client=2001:DB8:C:0::1`, [1, 2]],
      [`client=[2001:db8:c::1]:5001`, [2]],
      [`client=[2001:db8:c::1]`, [1, 2]],
      [`vip=[${VIP6}]:80`, [1, 2, 3]],
      [`vip=[${VIP6}]:81`, []],
      [`vip=${VIP}:80`, [0]],
      [`server=${RS6[1]}`, [2]],
      [`server=${IP.rs2}:80`, [3]],
      // The folds in the numbers never match an IPv4 filter.
      ["client=0.0.0.1", []],
    ] as const) {
      const r = await h.call("GET", `${P}/connections?${query}`, T.conns);
      assert.equal(r.statusCode, 200, `${query}: ${r.body}`);
      assert.deepEqual(
        r
          .json()
          .connections.map((c: { client: { port: number; address: string } }) =>
            page.connections.findIndex(
              (p: { client: { port: number; address: string } }) =>
                p.client.port === c.client.port && p.client.address === c.client.address,
            ),
          ),
        want,
        query,
      );
    }
  });
});

describe("REST API: proxyProtocol (DPVS's --proxy-protocol)", () => {
  it("set at creation, listed, kept by an edit that does not name it, changed by one that does; UDP refused", async () => {
    const h = await harness(true);
    const add = await h.call("POST", `${P}/services`, T.services, {
      body: { ...addService, proxyProtocol: "v2" },
    });
    assert.equal(add.statusCode, 201, add.body);
    assert.equal((await h.call("GET", SVC, T.svc)).json().proxyProtocol, "v2");
    await h.call("PUT", SVC, T.svc, { body: { scheduler: "wlc" } });
    assert.equal((await h.call("GET", SVC, T.svc)).json().proxyProtocol, "v2", "kept");
    await h.call("PUT", SVC, T.svc, { body: { proxyProtocol: "disable" } });
    assert.equal((await h.call("GET", SVC, T.svc)).json().proxyProtocol, "disable");
    const udp = await h.call("POST", `${P}/services`, T.services, {
      body: { protocol: "udp", address: VIP, port: 53, proxyProtocol: "v1" },
    });
    assert.equal(udp.statusCode, 400);
    assert.match(udp.json().error.message, /proxy protocol is for TCP services/);
    const bad = await h.call("POST", `${P}/services`, T.services, {
      body: { protocol: "tcp", address: VIP, port: 81, proxyProtocol: "v3" },
    });
    assert.equal(bad.statusCode, 400);
  });
});

describe("REST API: synproxy (DPVS's --synproxy)", () => {
  it("set at creation, listed, kept by an edit that does not name it, switched off by one that does; UDP refused", async () => {
    const h = await harness(true);
    const add = await h.call("POST", `${P}/services`, T.services, {
      body: { ...addService, synproxy: true },
    });
    assert.equal(add.statusCode, 201, add.body);
    assert.equal((await h.call("GET", SVC, T.svc)).json().synproxy, true);
    await h.call("PUT", SVC, T.svc, { body: { scheduler: "wlc" } });
    assert.equal((await h.call("GET", SVC, T.svc)).json().synproxy, true, "kept");
    await h.call("PUT", SVC, T.svc, { body: { synproxy: false } });
    assert.equal((await h.call("GET", SVC, T.svc)).json().synproxy, false);
    const udp = await h.call("POST", `${P}/services`, T.services, {
      body: { protocol: "udp", address: VIP, port: 53, synproxy: true },
    });
    assert.equal(udp.statusCode, 400);
    assert.match(udp.json().error.message, /synproxy is for TCP virtual services/);
  });
});

describe("REST API: access lists and the rate limit (docs/acl.md)", () => {
  it("PUT acl replaces a list in one batch, keeps the other; PUT conn-limit sets and clears; bad rules refused whole", async () => {
    const h = await harness(true);
    await withService(h);
    const T_ACL = `${P}/services/{protocol}/{address}/{port}/acl`;
    const T_LIM = `${P}/services/{protocol}/{address}/{port}/conn-limit`;
    let r = await h.call("PUT", `${SVC}/acl`, T_ACL, {
      body: { deny: ["203.0.113.0/24", "192.0.2.7", "192.0.2.7"], allow: ["2001:DB8::/32"] },
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), {
      deny: [
        { rule: "203.0.113.0/24", hits: 0 },
        { rule: "192.0.2.7", hits: 0 },
      ],
      allow: [{ rule: "2001:db8::/32", hits: 0 }],
      notAllowed: 0,
    });
    r = await h.call("PUT", `${SVC}/acl`, T_ACL, { body: { deny: ["192.0.2.7"] } });
    assert.deepEqual(r.json().deny, [{ rule: "192.0.2.7", hits: 0 }]);
    assert.deepEqual(r.json().allow, [{ rule: "2001:db8::/32", hits: 0 }], "allow left out: kept");
    r = await h.call("PUT", `${SVC}/acl`, T_ACL, { body: { deny: ["10.0.0.0/8", "10.0.0.1/8"] } });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.code, "TSVS_ERR_INVALID");
    assert.match(r.json().error.message, /deny\.1: '10\.0\.0\.1\/8' has host bits set past \/8/);
    assert.deepEqual(
      (await h.call("GET", SVC, T.svc)).json().deny,
      [{ rule: "192.0.2.7", hits: 0 }],
      "nothing applied",
    );
    r = await h.call("PUT", `${SVC}/conn-limit`, T_LIM, { body: { rate: 20, prefix4: 24 } });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), { connLimit: { rate: 20, burst: 20, prefix4: 24, prefix6: 64, limited: 0 } });
    r = await h.call("PUT", `${SVC}/conn-limit`, T_LIM, { body: { rate: 0 } });
    assert.deepEqual(r.json(), { connLimit: null });
    r = await h.call("PUT", `${P}/services/tcp/${VIP}/81/acl`, T_ACL, { body: { deny: [] } });
    assert.equal(r.statusCode, 404);
  });
});
