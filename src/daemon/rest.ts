// The REST API under /api/v1 (docs/daemon.md "REST API"): the control socket's structured requests
// (requests.ts: `apply`, `table`, `status`) as resources, never ipvsadm's text. A service is named
// in paths as `tcp/198.18.0.100/80` or `tcp/2001:db8::100/80` (udp, sctp alike; IPv6 in any form
// inet_pton takes, answered in inet_ntop's), `fwm/5`, or `fwm6/5` for an IPv6 fwmark service
// (ipvsadm -f 5 -6), a destination by `ADDR/PORT` under its service. Writes are the commands ipvsadm sends (add/edit/del service and destination,
// zero) or a batch of ControlCommands, applied whole or not at all as every `apply` is.
//
// Auth: a bearer token (loadToken) for writes, and for reads too unless the endpoint listens on
// loopback; compared in constant time. Errors are `{ error: { code: "TSVS_ERR_…", message } }`.

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { type ControlCommand, parseCommands } from "../control/commands.js";
import {
  addrText,
  type DestSnapshot,
  type ServiceSnapshot,
  type StatsSnapshot,
  type TableSnapshot,
} from "../control/snapshot.js";
import {
  destSpec,
  type InetFields,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  inetEndpoint,
  inetFields,
  serviceSpec,
} from "../control/spec.js";
import { parseAclPrefix } from "../core/acl.js";
import { formatIPv4, parseIPv4 } from "../core/addr.js";
import type { ConnView, ServiceKey } from "../core/ctl-types.js";
import { Fwd } from "../core/dest.js";
import { TsvsError, type TsvsErrorCode } from "../core/errors.js";
import { PP_NAMES } from "../core/packet/proxy-proto.js";
import {
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
  SVC_F_SCHED3,
  SVC_F_SYNPROXY,
} from "../core/service.js";
import { openApiDocument } from "./openapi.js";
import { looseFile } from "./privileges.js";
import {
  type DaemonStatus,
  type ExplainAnswer,
  parseRequest,
  type Request,
  type Response,
} from "./protocol.js";

export const API_PREFIX = "/api/v1";
/** The token file's name, beside the control socket. */
export const TOKEN_FILE = "http.token";
/** How long a request waits for the workers before it answers 503. */
export const ASK_TIMEOUT_MS = 5000;

/** The control core's codes, and three that only HTTP has. */
export type RestErrorCode =
  | TsvsErrorCode
  | "TSVS_ERR_UNAUTHORIZED"
  | "TSVS_ERR_UNAVAILABLE"
  | "TSVS_ERR_NOT_FOUND";

export interface RestOptions {
  /** A control request, answered as the control socket answers it (handleRequest). */
  ask: (req: Request) => Promise<Response>;
  token: string;
  /** Reads need no token (the endpoint listens on loopback only). */
  openReads: boolean;
  timeoutMs?: number;
}

/** Loopback addresses: reads may be open there (only processes of the namespace reach them). */
export function isLoopback(host: string): boolean {
  return /^127\./.test(host) || host === "::1" || host === "localhost";
}

/**
 * The bearer token: FILE's first line when given (--http-token-file), else `<control dir>/http.token`,
 * created at first start with 32 random bytes (hex) and mode 0600, read when it exists (a crashed
 * daemon's). `created`: this call made the file (the endpoint removes it when it closes, so that the
 * control socket's directory goes with the daemon, as control.ts intends). A token file that is not
 * the daemon user's own, or that others may read or write, is refused (privileges.ts looseFile).
 */
export function loadToken(control: string, file?: string): { token: string; file: string; created: boolean } {
  const path = file ?? join(dirname(control), TOKEN_FILE);
  let created = false;
  if (file === undefined) {
    try {
      // O_EXCL: never overwrite a token another process relies on; mode 0600 from the start.
      const fd = openSync(path, "wx", 0o600);
      try {
        writeSync(fd, `${randomBytes(32).toString("hex")}\n`);
        created = true;
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
  // A token others could read is known to them: refused, never quietly tightened.
  const loose = looseFile(path);
  if (loose !== null) throw new Error(loose);
  const token = readFileSync(path, "utf8").split("\n")[0].trim();
  if (token.length < 16) throw new Error(`${path}: the token must have at least 16 characters`);
  return { token, file: path, created };
}

/** Constant time over the token's bytes: both sides are hashed to the same length first. */
export function tokenMatches(given: string, token: string): boolean {
  const h = (s: string): Buffer => createHash("sha256").update(s).digest();
  return timingSafeEqual(h(given), h(token));
}

// --- representations ---------------------------------------------------------------------------

const PROTO_NAMES: Record<number, "tcp" | "udp" | "sctp"> = {
  [IPPROTO_TCP]: "tcp",
  [IPPROTO_UDP]: "udp",
  [IPPROTO_SCTP]: "sctp",
};
const PROTO_NUMBERS: Record<string, number> = { tcp: IPPROTO_TCP, udp: IPPROTO_UDP, sctp: IPPROTO_SCTP };
const FWD_NAMES: Record<number, string> = {
  [Fwd.Masq]: "masq",
  [Fwd.Local]: "local",
  [Fwd.Tunnel]: "tunnel",
  [Fwd.Route]: "route",
  [Fwd.FullNat]: "fullnat",
};
const FWD_BY_NAME: Record<string, Fwd> = Object.fromEntries(
  Object.entries(FWD_NAMES).map(([n, name]) => [name, Number(n) as Fwd]),
);
const SCHED_FLAGS = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3;

export function serviceKeyPath(s: ServiceKey): string {
  if (s.fwmark !== 0) return `${s.af === 6 ? "fwm6" : "fwm"}/${s.fwmark}`;
  return `${PROTO_NAMES[s.protocol] ?? s.protocol}/${addrText(s)}/${s.port}`;
}

function statsOut(s: StatsSnapshot): StatsSnapshot {
  return { ...s };
}

function destOut(d: DestSnapshot): Record<string, unknown> {
  return {
    family: d.af,
    address: addrText(d),
    port: d.port,
    forward: FWD_NAMES[d.fwd] ?? String(d.fwd),
    weight: d.weight,
    upperThreshold: d.uThreshold,
    lowerThreshold: d.lThreshold,
    activeConns: d.activeConns,
    inactConns: d.inactConns,
    persistConns: d.persistConns,
    available: d.available,
    tunType: d.tunType,
    tunPort: d.tunPort,
    tunFlags: d.tunFlags,
    stats: statsOut(d.stats),
  };
}

function serviceOut(s: ServiceSnapshot): Record<string, unknown> {
  const fwm = s.fwmark !== 0;
  return {
    key: serviceKeyPath(s),
    protocol: fwm ? "fwm" : (PROTO_NAMES[s.protocol] ?? String(s.protocol)),
    family: s.af,
    address: fwm ? null : addrText(s),
    port: s.port,
    fwmark: s.fwmark,
    scheduler: s.schedName,
    persistence: (s.flags & SVC_F_PERSISTENT) !== 0 ? s.timeout : 0,
    // IPv6: a prefix length, as the kernel keeps it (ipvsadm -M 64).
    netmask: s.af === 6 ? s.netmask : formatIPv4(s.netmask),
    onePacket: (s.flags & SVC_F_ONEPACKET) !== 0,
    schedFlags: s.flags & SCHED_FLAGS,
    flags: s.flags,
    peName: s.peName,
    proxyProtocol: s.proxyProtocol ?? "disable",
    synproxy: (s.flags & SVC_F_SYNPROXY) !== 0,
    stats: statsOut(s.stats),
    destinations: s.dests.map(destOut),
    // Access lists and the per-source rate limit (docs/acl.md).
    deny: (s.deny ?? []).map((r) => ({ ...r })),
    allow: (s.allow ?? []).map((r) => ({ ...r })),
    notAllowed: s.notAllowed ?? 0,
    connLimit: s.connLimit === undefined ? null : { ...s.connLimit },
  };
}

function endpoint(addr: number, addr6: string | undefined, port: number): { address: string; port: number } {
  return { address: addr6 ?? formatIPv4(addr), port };
}

function connOut(c: ConnView): Record<string, unknown> {
  return {
    protocol: PROTO_NAMES[c.protocol] ?? String(c.protocol),
    state: c.state,
    expiresMs: c.expiresMs,
    client: endpoint(c.caddr, c.caddr6, c.cport),
    virtual: endpoint(c.vaddr, c.vaddr6, c.vport),
    server: endpoint(c.daddr, c.daddr6, c.dport),
    local: c.laddr === 0 && c.laddr6 === undefined ? null : endpoint(c.laddr, c.laddr6, c.lport),
    template: c.template,
    fwmark: c.fwmark,
  };
}

// --- inputs --------------------------------------------------------------------------------------

const ipv4 = z.string().refine((s) => parseIPv4(s) !== null, { message: "must be an IPv4 address" });
const inet = z.string().refine((s) => inetFields(s) !== null, { message: "must be an IPv4 or IPv6 address" });
const port = z.number().int().min(0).max(65535);
const family = z.union([z.literal(4), z.literal(6)]);
const serviceOptions = {
  scheduler: z.string().min(1).max(15).optional(),
  persistence: z.number().int().min(0).max(0x7fffffff).optional(),
  // IPv4: a dotted mask; IPv6: a prefix length (which family is checked against the service).
  netmask: z.union([ipv4, z.number().int().min(1).max(128)]).optional(),
  onePacket: z.boolean().optional(),
  schedFlags: z
    .number()
    .int()
    .refine((f) => (f & ~SCHED_FLAGS) === 0, { message: "only the scheduler flags 8, 16, 32" })
    .optional(),
  peName: z.string().max(16).optional(),
  proxyProtocol: z.enum(PP_NAMES).optional(),
  synproxy: z.boolean().optional(),
};
const aclRules = z.array(z.string().max(64)).max(1_000_000);
const aclBody = z.strictObject({ deny: aclRules.optional(), allow: aclRules.optional() });
const connLimitBody = z.strictObject({
  rate: z.number().int().min(0).max(1e9),
  burst: z.number().int().min(1).max(1e9).optional(),
  prefix4: z.number().int().min(1).max(32).optional(),
  prefix6: z.number().int().min(1).max(128).optional(),
});
const newAddrService = z.strictObject({
  protocol: z.enum(["tcp", "udp", "sctp"]),
  family: family.optional(),
  address: inet,
  port,
  ...serviceOptions,
});
const newFwmService = z.strictObject({
  fwmark: z.number().int().min(1).max(0xffffffff),
  family: family.optional(),
  ...serviceOptions,
});
const editService = z.strictObject(serviceOptions);
const destOptions = {
  forward: z.enum(["masq", "local", "tunnel", "route", "fullnat"]).optional(),
  weight: z.number().int().min(0).max(65535).optional(),
  upperThreshold: z.number().int().min(0).max(0x7fffffff).optional(),
  lowerThreshold: z.number().int().min(0).max(0x7fffffff).optional(),
};
const newDest = z.strictObject({ address: inet, port: port.optional(), ...destOptions });
const editDest = z.strictObject(destOptions);

/** An error answer; `status` is the HTTP status. */
class RestError extends Error {
  constructor(
    readonly status: number,
    readonly code: RestErrorCode,
    message: string,
    readonly index?: number,
  ) {
    super(message);
  }
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body !== undefined && body !== null && (typeof body !== "object" || Array.isArray(body)))
    throw new RestError(
      400,
      "TSVS_ERR_INVALID",
      "the body must be a JSON object (content-type: application/json)",
    );
  const r = schema.safeParse(body ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
  throw new RestError(400, "TSVS_ERR_INVALID", `${where}${issue.message}`);
}

/** The control core's codes as HTTP statuses. */
function statusOf(code: string): number {
  switch (code) {
    case "TSVS_ERR_NO_SERVICE":
    case "TSVS_ERR_SERVICE_NOT_DEFINED":
    case "TSVS_ERR_NO_DEST":
    case "TSVS_ERR_NO_LADDR":
    case "TSVS_ERR_NO_ACL":
    case "TSVS_ERR_NO_DAEMON":
      return 404;
    case "TSVS_ERR_SERVICE_EXISTS":
    case "TSVS_ERR_DEST_EXISTS":
    case "TSVS_ERR_LADDR_EXISTS":
    case "TSVS_ERR_ACL_EXISTS":
    case "TSVS_ERR_DAEMON_EXISTS":
      return 409;
    case "TSVS_ERR_INVALID":
    case "TSVS_ERR_USAGE":
    case "TSVS_ERR_PARSE":
    case "TSVS_ERR_SCHED_NOT_FOUND":
    case "TSVS_ERR_PE_NOT_FOUND":
    case "TSVS_ERR_NO_DEVICE":
      return 400;
    default:
      return 500;
  }
}

type Params = Record<string, string>;

/** A service's key from its path: the route's fixed `af` for fwm/fwm6, else the address's. */
function keyOf(p: Params, af: 4 | 6): ServiceKey {
  if (p.mark !== undefined) {
    const m = /^\d{1,10}$/.test(p.mark) ? Number(p.mark) : Number.NaN;
    if (!(m >= 1 && m <= 0xffffffff)) throw new RestError(400, "TSVS_ERR_INVALID", `bad fwmark ${p.mark}`);
    return { af, protocol: 0, addr: 0, port: 0, fwmark: m };
  }
  const protocol = PROTO_NUMBERS[p.proto];
  if (protocol === undefined)
    throw new RestError(400, "TSVS_ERR_INVALID", `bad protocol ${p.proto} (tcp, udp, sctp, fwm or fwm6)`);
  return { ...addrParam(p.addr), protocol, port: portParam(p.port), fwmark: 0 };
}

function addrParam(s: string): InetFields {
  const a = inetFields(s);
  if (a === null) throw new RestError(400, "TSVS_ERR_INVALID", `bad address ${s}`);
  return a;
}

function portParam(s: string): number {
  const n = /^\d{1,5}$/.test(s) ? Number(s) : -1;
  if (n < 0 || n > 65535) throw new RestError(400, "TSVS_ERR_INVALID", `bad port ${s}`);
  return n;
}

/** The same address: IPv6 compares as canonical text, IPv4 as the number. */
function sameAddr(a: { addr: number; addr6?: string }, b: { addr: number; addr6?: string }): boolean {
  return a.addr6 !== undefined || b.addr6 !== undefined ? a.addr6 === b.addr6 : a.addr >>> 0 === b.addr >>> 0;
}

function sameKey(s: ServiceSnapshot, k: ServiceKey): boolean {
  return k.fwmark !== 0
    ? s.fwmark === k.fwmark && s.af === k.af
    : s.fwmark === 0 && s.protocol === k.protocol && sameAddr(s, k) && s.port === k.port;
}

/** A connection filter (inetEndpoint); the connection's IPv6 sides compare as text. */
function endpointFilter(
  name: string,
  v: unknown,
): ((addr: number, addr6: string | undefined, port: number) => boolean) | null {
  if (v === undefined) return null;
  const e = typeof v === "string" ? inetEndpoint(v) : null;
  if (e === null)
    throw new RestError(
      400,
      "TSVS_ERR_INVALID",
      `${name}: ADDR, ADDR:PORT or [IPv6]:PORT, not ${JSON.stringify(v)}`,
    );
  return (addr, addr6, port) => sameAddr({ addr, addr6 }, e.a) && (e.port === null || port === e.port);
}

function intQuery(name: string, v: unknown, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  const n = typeof v === "string" && /^\d{1,9}$/.test(v) ? Number(v) : -1;
  if (n < 0 || n > max) throw new RestError(400, "TSVS_ERR_INVALID", `${name} must be an integer 0..${max}`);
  return n;
}

export const MAX_PAGE = 10_000;

// --- routes --------------------------------------------------------------------------------------

/** The REST API's routes, under API_PREFIX, in their own fastify scope (error and 404 handlers). */
export async function registerRest(app: FastifyInstance, o: RestOptions): Promise<void> {
  const timeoutMs = o.timeoutMs ?? ASK_TIMEOUT_MS;
  // Writes one at a time: an edit reads the current entry and writes it back changed.
  let writes: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const p = writes.then(f, f);
    writes = p.catch(() => {});
    return p;
  };

  const ask = async (req: Request): Promise<Response> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new RestError(503, "TSVS_ERR_UNAVAILABLE", "the data plane did not answer")),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([o.ask(req), late]);
    } catch (e) {
      if (e instanceof RestError) throw e;
      throw new RestError(503, "TSVS_ERR_UNAVAILABLE", (e as Error).message);
    } finally {
      clearTimeout(timer);
    }
  };
  const failed = (r: Response, batch: boolean): never => {
    if (!("error" in r)) throw new Error("not an error");
    // No code: the workers did not answer (requests.ts STOPPED) or the request could not run.
    if (!("code" in r)) throw new RestError(503, "TSVS_ERR_UNAVAILABLE", r.error);
    throw new RestError(statusOf(r.code), r.code, r.error, batch ? r.index : undefined);
  };
  const table = async (conns = false): Promise<TableSnapshot> => {
    const r = await ask(conns ? { op: "table", conns: true } : { op: "table" });
    return "table" in r ? r.table : failed(r, false);
  };
  const apply = async (
    commands: ControlCommand[],
    batch = false,
  ): Promise<{ applied: number; warning?: string }> => {
    const r = await ask({ op: "apply", commands });
    return "applied" in r ? r : failed(r, batch);
  };
  const findService = async (k: ServiceKey): Promise<ServiceSnapshot> => {
    const s = (await table()).services.find((x) => sameKey(x, k));
    if (s === undefined) throw new RestError(404, "TSVS_ERR_NO_SERVICE", "No such service");
    return s;
  };
  const findDest = (s: ServiceSnapshot, a: InetFields, p: number): DestSnapshot => {
    const d = s.dests.find((x) => sameAddr(x, a) && x.port === p);
    if (d === undefined) throw new RestError(404, "TSVS_ERR_NO_DEST", "No such destination");
    return d;
  };
  const spec = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof TsvsError) throw new RestError(400, "TSVS_ERR_INVALID", e.message);
      throw e;
    }
  };

  await app.register(
    async (api) => {
      api.setErrorHandler((err: FastifyError | RestError, _req, reply) => {
        if (err instanceof RestError) return sendError(reply, err);
        const status = err.statusCode ?? 500;
        if (status >= 500) {
          api.log.error({ err }, "rest");
          return sendError(reply, new RestError(500, "TSVS_ERR_INTERNAL", err.message));
        }
        // fastify's own 4xx: a body that is not JSON, an unsupported content type, too large.
        return sendError(reply, new RestError(status, "TSVS_ERR_PARSE", err.message));
      });
      api.setNotFoundHandler((req, reply) =>
        sendError(reply, new RestError(404, "TSVS_ERR_NOT_FOUND", `no route ${req.method} ${req.url}`)),
      );
      api.addHook("onRequest", async (req: FastifyRequest, reply: FastifyReply) => {
        const read = req.method === "GET" || req.method === "HEAD";
        if (req.url.split("?")[0] === `${API_PREFIX}/openapi.json` || (read && o.openReads)) return;
        const h = req.headers.authorization ?? "";
        const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
        if (m === null || !tokenMatches(m[1], o.token)) {
          reply.header("www-authenticate", 'Bearer realm="tsvs"');
          return sendError(
            reply,
            new RestError(
              401,
              "TSVS_ERR_UNAUTHORIZED",
              m === null ? "a bearer token is required (Authorization: Bearer …)" : "bad token",
            ),
          );
        }
      });

      api.get("/openapi.json", async () => openApiDocument());

      api.get("/services", async () => ({ services: (await table()).services.map(serviceOut) }));

      api.post("/services", async (req, reply) =>
        serial(async () => {
          const fwm = typeof req.body === "object" && req.body !== null && "fwmark" in req.body;
          const b = fwm ? parseBody(newFwmService, req.body) : parseBody(newAddrService, req.body);
          const af = "fwmark" in b ? (b.family ?? 4) : (inetFields(b.address) as InetFields).af;
          if (b.family !== undefined && b.family !== af)
            throw new RestError(400, "TSVS_ERR_INVALID", `family: the address is IPv${af}`);
          const svc = spec(() =>
            serviceSpec(
              "fwmark" in b
                ? { protocol: 0, addr: 0, port: 0, fwmark: b.fwmark, af, ...serviceDesc(b, af) }
                : {
                    protocol: PROTO_NUMBERS[b.protocol],
                    addr: b.address,
                    port: b.port,
                    ...serviceDesc(b, af),
                  },
            ),
          );
          await apply([{ op: "add-service", svc }]);
          const s = await findService(svc);
          return reply
            .code(201)
            .header("location", `${API_PREFIX}/services/${serviceKeyPath(s)}`)
            .send(serviceOut(s));
        }),
      );

      api.get("/connections", async (req) => {
        const q = req.query as Record<string, unknown>;
        const limit = intQuery("limit", q.limit, 100, MAX_PAGE);
        const offset = intQuery("offset", q.offset, 0, 1e9);
        const client = endpointFilter("client", q.client);
        const vip = endpointFilter("vip", q.vip);
        const server = endpointFilter("server", q.server);
        const all = ((await table(true)).conns ?? []).filter(
          (c) =>
            (client === null || client(c.caddr, c.caddr6, c.cport)) &&
            (vip === null || vip(c.vaddr, c.vaddr6, c.vport)) &&
            (server === null || server(c.daddr, c.daddr6, c.dport)),
        );
        return {
          total: all.length,
          offset,
          limit,
          connections: all.slice(offset, offset + limit).map(connOut),
        };
      });

      // `tsvs explain` (docs/explain.md): ?proto=tcp&vip=A&port=P&client=C&cport=Q[&fwmark=N].
      api.get("/explain", async (req) => {
        const q = req.query as Record<string, unknown>;
        const num = (name: string, max: number): number | undefined => {
          const v = q[name];
          if (v === undefined) return undefined;
          const n = typeof v === "string" && /^\d{1,10}$/.test(v) ? Number(v) : -1;
          if (n < 0 || n > max)
            throw new RestError(400, "TSVS_ERR_INVALID", `${name} must be an integer 0..${max}`);
          return n;
        };
        for (const k of ["vip", "port", "client", "cport"])
          if (q[k] === undefined) throw new RestError(400, "TSVS_ERR_INVALID", `${k} is required`);
        const parsed = parseRequest(
          JSON.stringify({
            op: "explain",
            proto: q.proto ?? "tcp",
            vip: q.vip,
            port: num("port", 65535),
            client: q.client,
            cport: num("cport", 65535),
            fwmark: num("fwmark", 0xffffffff),
          }),
        );
        if ("error" in parsed)
          throw new RestError(400, "TSVS_ERR_INVALID", parsed.error.replace(/^explain: /, ""));
        const r = await ask(parsed);
        return "explain" in r ? (r.explain satisfies ExplainAnswer) : failed(r, false);
      });

      api.get("/status", async () => {
        const r = await ask({ op: "status" });
        return "status" in r ? (r.status satisfies DaemonStatus) : failed(r, false);
      });

      api.post("/zero", async () =>
        serial(async () => {
          await apply([{ op: "zero", key: null }]);
          return { zeroed: "all" };
        }),
      );

      api.post("/commands", async (req) =>
        serial(async () => {
          const body = req.body as { commands?: unknown } | null;
          if (typeof body !== "object" || body === null || Array.isArray(body))
            throw new RestError(400, "TSVS_ERR_INVALID", 'the body must be {"commands": [...]}');
          let commands: ControlCommand[];
          try {
            commands = parseCommands(body.commands);
          } catch (e) {
            if (e instanceof TsvsError) throw new RestError(400, "TSVS_ERR_INVALID", e.message);
            throw e;
          }
          return apply(commands, true);
        }),
      );

      // Every service route three times: `tcp/ADDR/PORT` (udp, sctp; ADDR of either family),
      // `fwm/MARK` and `fwm6/MARK` (static segments, which find-my-way prefers to a parameter).
      for (const [route, routeAf] of [
        [":proto/:addr/:port", 4],
        ["fwm/:mark", 4],
        ["fwm6/:mark", 6],
      ] as const) {
        const svcPath = `/services/${route}`;
        const destPath = `${svcPath}/destinations/:raddr/:rport`;
        const key = (req: FastifyRequest): ServiceKey => keyOf(req.params as Params, routeAf);
        const destOf = (req: FastifyRequest): { a: InetFields; port: number } => {
          const p = req.params as Params;
          return { a: addrParam(p.raddr), port: portParam(p.rport) };
        };

        api.get(svcPath, async (req) => serviceOut(await findService(key(req))));

        api.put(svcPath, async (req) =>
          serial(async () => {
            const k = key(req);
            const b = parseBody(editService, req.body);
            const cur = await findService(k);
            const svc = spec(() =>
              serviceSpec({
                protocol: cur.protocol,
                addr: cur.addr6 ?? cur.addr,
                port: cur.port,
                fwmark: cur.fwmark,
                af: cur.af,
                scheduler: b.scheduler ?? cur.schedName,
                persistence: b.persistence ?? ((cur.flags & SVC_F_PERSISTENT) !== 0 ? cur.timeout : 0),
                netmask: netmaskOf(b.netmask, cur.af) ?? cur.netmask,
                onePacket: b.onePacket ?? (cur.flags & SVC_F_ONEPACKET) !== 0,
                schedFlags: b.schedFlags ?? cur.flags & SCHED_FLAGS,
                peName: b.peName ?? cur.peName,
                proxyProtocol: b.proxyProtocol ?? cur.proxyProtocol,
                synproxy: b.synproxy ?? (cur.flags & SVC_F_SYNPROXY) !== 0,
              }),
            );
            await apply([{ op: "edit-service", svc }]);
            return serviceOut(await findService(k));
          }),
        );

        api.delete(svcPath, async (req, reply) =>
          serial(async () => {
            await apply([{ op: "del-service", key: key(req) }]);
            return reply.code(204).send();
          }),
        );

        api.post(`${svcPath}/zero`, async (req) =>
          serial(async () => {
            const k = key(req);
            await apply([{ op: "zero", key: k }]);
            return { zeroed: serviceKeyPath(k) };
          }),
        );

        // The access lists as a whole (docs/acl.md): a list given replaces the service's, one atomic
        // batch of del-acl/add-acl (ipvsadm -V/-U, -Y/-O); a list left out stays.
        api.put(`${svcPath}/acl`, async (req) =>
          serial(async () => {
            const k = key(req);
            const b = parseBody(aclBody, req.body);
            const cur = await findService(k);
            const cmds: ControlCommand[] = [];
            for (const list of ["deny", "allow"] as const) {
              const want = b[list];
              if (want === undefined) continue;
              const next = new Set<string>();
              want.forEach((t, i) => {
                const p = parseAclPrefix(t);
                if (typeof p === "string") throw new RestError(400, "TSVS_ERR_INVALID", `${list}.${i}: ${p}`);
                next.add(p.text);
              });
              const had = new Set((cur[list] ?? []).map((r) => r.rule));
              for (const rule of had) if (!next.has(rule)) cmds.push({ op: "del-acl", key: k, list, rule });
              for (const rule of next) if (!had.has(rule)) cmds.push({ op: "add-acl", key: k, list, rule });
            }
            if (cmds.length > 0) await apply(cmds);
            const s = serviceOut(await findService(k));
            return { deny: s.deny, allow: s.allow, notAllowed: s.notAllowed };
          }),
        );

        // The per-source new-connection rate limit (ipvsadm --conn-limit); rate 0 turns it off.
        api.put(`${svcPath}/conn-limit`, async (req) =>
          serial(async () => {
            const k = key(req);
            const b = parseBody(connLimitBody, req.body);
            const limit = {
              rate: b.rate,
              burst: b.burst ?? Math.max(1, b.rate),
              prefix4: b.prefix4 ?? 32,
              prefix6: b.prefix6 ?? 64,
            };
            await apply([{ op: "set-conn-limit", key: k, limit }]);
            return { connLimit: serviceOut(await findService(k)).connLimit };
          }),
        );

        api.get(`${svcPath}/destinations`, async (req) => ({
          destinations: (await findService(key(req))).dests.map(destOut),
        }));

        api.post(`${svcPath}/destinations`, async (req, reply) =>
          serial(async () => {
            const k = key(req);
            const b = parseBody(newDest, req.body);
            const dest = spec(() =>
              destSpec(k, {
                addr: b.address,
                port: b.port,
                // ipvsadm's default: -g, direct routing.
                fwd: FWD_BY_NAME[b.forward ?? "route"],
                weight: b.weight,
                uThreshold: b.upperThreshold,
                lThreshold: b.lowerThreshold,
              }),
            );
            await apply([{ op: "add-dest", key: k, dest }]);
            const d = findDest(await findService(k), dest, dest.port);
            return reply
              .code(201)
              .header(
                "location",
                `${API_PREFIX}/services/${serviceKeyPath(k)}/destinations/${addrText(d)}/${d.port}`,
              )
              .send(destOut(d));
          }),
        );

        api.get(destPath, async (req) => {
          const { a, port: rport } = destOf(req);
          return destOut(findDest(await findService(key(req)), a, rport));
        });

        api.put(destPath, async (req) =>
          serial(async () => {
            const k = key(req);
            const { a, port: rport } = destOf(req);
            const b = parseBody(editDest, req.body);
            const cur = findDest(await findService(k), a, rport);
            const dest = {
              ...spec(() =>
                destSpec(k, {
                  addr: a.addr6 ?? a.addr,
                  port: rport,
                  fwd: b.forward !== undefined ? FWD_BY_NAME[b.forward] : (cur.fwd as Fwd),
                  weight: b.weight ?? cur.weight,
                  uThreshold: b.upperThreshold ?? cur.uThreshold,
                  lThreshold: b.lowerThreshold ?? cur.lThreshold,
                }),
              ),
              tunType: cur.tunType,
              tunPort: cur.tunPort,
              tunFlags: cur.tunFlags,
            };
            await apply([{ op: "edit-dest", key: k, dest }]);
            return destOut(findDest(await findService(k), a, dest.port));
          }),
        );

        api.delete(destPath, async (req, reply) =>
          serial(async () => {
            const { a, port: rport } = destOf(req);
            const del: ControlCommand = { op: "del-dest", key: key(req), addr: a.addr, port: rport };
            if (a.addr6 !== undefined) del.addr6 = a.addr6;
            await apply([del]);
            return reply.code(204).send();
          }),
        );
      }
    },
    { prefix: API_PREFIX },
  );
}

/** A netmask from a body: a dotted mask for an IPv4 service, a prefix length for an IPv6 one. */
function netmaskOf(m: string | number | undefined, af: 4 | 6): number | undefined {
  if (m === undefined) return undefined;
  if (af === 6 && typeof m === "number") return m;
  if (af === 4 && typeof m === "string") return parseIPv4(m) as number;
  throw new RestError(
    400,
    "TSVS_ERR_INVALID",
    af === 6
      ? "netmask: an IPv6 service's netmask is a prefix length 1..128"
      : "netmask: an IPv4 service's netmask is a dotted mask (255.255.255.0)",
  );
}

function serviceDesc(
  b: z.infer<typeof editService>,
  af: 4 | 6,
): {
  scheduler?: string;
  persistence?: number;
  netmask?: number;
  onePacket?: boolean;
  schedFlags?: number;
  peName?: string;
  proxyProtocol?: string;
  synproxy?: boolean;
} {
  return {
    scheduler: b.scheduler,
    persistence: b.persistence,
    netmask: netmaskOf(b.netmask, af),
    onePacket: b.onePacket,
    schedFlags: b.schedFlags,
    peName: b.peName,
    proxyProtocol: b.proxyProtocol,
    synproxy: b.synproxy,
  };
}

function sendError(reply: FastifyReply, e: RestError): FastifyReply {
  const error: { code: string; message: string; index?: number } = { code: e.code, message: e.message };
  if (e.index !== undefined) error.index = e.index;
  return reply.code(e.status).type("application/json; charset=utf-8").send({ error });
}
