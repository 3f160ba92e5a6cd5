// The REST API's OpenAPI 3.1 description (served at /api/v1/openapi.json): every route of rest.ts,
// its parameters, bodies and answers. Its schemas are JSON Schema 2020-12, which OpenAPI 3.1 uses
// as it is; test/unit/rest.test.ts validates the real answers against them.

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const int = (min = 0, max?: number): Schema =>
  max === undefined ? { type: "integer", minimum: min } : { type: "integer", minimum: min, maximum: max };
const num: Schema = { type: "number", minimum: 0 };
const str: Schema = { type: "string" };
const ipv4: Schema = { type: "string", pattern: "^\\d{1,3}(\\.\\d{1,3}){3}$" };
/** IPv6 text: taken in any form inet_pton accepts, answered in the form inet_ntop prints. */
const ipv6: Schema = { type: "string", pattern: "^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$" };
const inet: Schema = { anyOf: [ipv4, ipv6] };
/** explain's persistence granularity: IPv4 dotted, IPv6 a prefix length as text ("64"). */
const explainMask: Schema = { anyOf: [ipv4, { type: "string", pattern: "^\\d{1,3}$" }] };

const family: Schema = { enum: [4, 6], description: "the address family: 4 IPv4, 6 IPv6" };
/** DPVS's --proxy-protocol; UDP services are refused (docs/daemon.md). */
const PROXY_PROTOCOL: Schema = {
  enum: ["disable", "v1", "v2", "v1-insecure", "v2-insecure"],
  description: "FULLNAT: the client's address in a PROXY protocol header (TCP) instead of TOA",
};
/** DPVS's --synproxy: SYN cookies for a TCP service with NAT/FULLNAT real servers (docs/synproxy.md). */
const SYNPROXY: Schema = { type: "boolean" };
/** Persistence granularity: an IPv4 service's dotted mask, an IPv6 service's prefix length. */
const netmask: Schema = {
  anyOf: [ipv4, int(1, 128)],
  description: "IPv4: a dotted mask; IPv6: a prefix length 1..128 (ipvsadm -M)",
};
const obj = (
  properties: Record<string, Schema>,
  required = Object.keys(properties),
  extra = false,
): Schema => ({
  type: "object",
  properties,
  required,
  additionalProperties: extra,
});
const json = (schema: Schema): Schema => ({ content: { "application/json": { schema } } });
const answer = (description: string, schema: Schema): Schema => ({ description, ...json(schema) });
const error = (description: string): Schema => answer(description, ref("Error"));

const STATS = [
  "conns",
  "inpkts",
  "outpkts",
  "inbytes",
  "outbytes",
  "cps",
  "inpps",
  "outpps",
  "inbps",
  "outbps",
];

const schemas: Record<string, Schema> = {
  Error: obj({
    error: obj(
      {
        code: { type: "string", pattern: "^TSVS_ERR_[A-Z_]+$" },
        message: str,
        index: { ...int(), description: "the failing command's position in a batch" },
      },
      ["code", "message"],
    ),
  }),
  Stats: obj(Object.fromEntries(STATS.map((k) => [k, num]))),
  Destination: obj({
    family: { ...family, description: "differs from the service's only for a tunnel" },
    address: inet,
    port: int(0, 65535),
    forward: { enum: ["masq", "local", "tunnel", "route", "fullnat"] },
    weight: { ...int(0, 65535), description: "0: quiesced (drained), no new connections" },
    upperThreshold: int(),
    lowerThreshold: int(),
    activeConns: int(),
    inactConns: int(),
    persistConns: int(),
    available: { type: "boolean" },
    tunType: { enum: [0, 1, 2], description: "0 ipip, 1 gue, 2 gre" },
    tunPort: int(0, 65535),
    tunFlags: int(),
    stats: ref("Stats"),
  }),
  Service: obj({
    key: {
      type: "string",
      description: "the service in paths: tcp/ADDR/PORT, udp/…, sctp/…, fwm/MARK, fwm6/MARK (IPv6 fwmark)",
    },
    protocol: { enum: ["tcp", "udp", "sctp", "fwm"] },
    family,
    address: { anyOf: [inet, { type: "null" }] },
    port: int(0, 65535),
    fwmark: int(0, 0xffffffff),
    scheduler: str,
    persistence: { ...int(), description: "persistence timeout, seconds; 0: not persistent" },
    netmask,
    onePacket: { type: "boolean" },
    schedFlags: int(),
    flags: { ...int(), description: "SVC_F_* bits" },
    peName: str,
    proxyProtocol: PROXY_PROTOCOL,
    synproxy: SYNPROXY,
    stats: ref("Stats"),
    destinations: { type: "array", items: ref("Destination") },
    deny: {
      type: "array",
      items: ref("AclRule"),
      description: "the deny list (DPVS's blacklist), in the order added",
    },
    allow: {
      type: "array",
      items: ref("AclRule"),
      description: "the allow list (DPVS's whitelist); empty: every source",
    },
    notAllowed: { ...int(), description: "new connections the allow list refused" },
    connLimit: { anyOf: [ref("ConnLimit"), { type: "null" }] },
  }),
  AclRule: obj({
    rule: { type: "string", description: "ADDR or ADDR/LEN, canonical" },
    hits: { ...int(), description: "new connections this rule matched (longest match)" },
  }),
  ConnLimit: obj({
    rate: { ...int(), description: "new connections a second per source prefix" },
    burst: int(1),
    prefix4: int(1, 32),
    prefix6: int(1, 128),
    limited: { ...int(), description: "new connections refused" },
  }),
  AclChange: {
    type: "object",
    additionalProperties: false,
    description: "a list given replaces the service's (one atomic batch); a list left out stays",
    properties: {
      deny: { type: "array", items: { type: "string", maxLength: 64 } },
      allow: { type: "array", items: { type: "string", maxLength: 64 } },
    },
  },
  ConnLimitChange: {
    type: "object",
    additionalProperties: false,
    required: ["rate"],
    properties: {
      rate: { ...int(0, 1e9), description: "0 turns the limit off" },
      burst: { ...int(1, 1e9), description: "default: the rate" },
      prefix4: { ...int(1, 32), description: "default 32" },
      prefix6: { ...int(1, 128), description: "default 64" },
    },
  },
  ServiceList: obj({ services: { type: "array", items: ref("Service") } }),
  DestinationList: obj({ destinations: { type: "array", items: ref("Destination") } }),
  NewService: {
    oneOf: [
      obj(
        {
          protocol: { enum: ["tcp", "udp", "sctp"] },
          family: { ...family, description: "the address's, when given" },
          address: inet,
          port: int(0, 65535),
          scheduler: str,
          persistence: int(),
          netmask,
          onePacket: { type: "boolean" },
          schedFlags: int(),
          peName: str,
          proxyProtocol: PROXY_PROTOCOL,
          synproxy: SYNPROXY,
        },
        ["protocol", "address", "port"],
      ),
      obj(
        {
          fwmark: int(1, 0xffffffff),
          family: { ...family, default: 4, description: "6: an IPv6 fwmark service (ipvsadm -f MARK -6)" },
          scheduler: str,
          persistence: int(),
          netmask,
          onePacket: { type: "boolean" },
          schedFlags: int(),
          peName: str,
          proxyProtocol: PROXY_PROTOCOL,
          synproxy: SYNPROXY,
        },
        ["fwmark"],
      ),
    ],
  },
  ServiceChange: obj(
    {
      scheduler: str,
      persistence: int(),
      netmask,
      onePacket: { type: "boolean" },
      schedFlags: int(),
      peName: str,
      proxyProtocol: PROXY_PROTOCOL,
      synproxy: SYNPROXY,
    },
    [],
  ),
  NewDestination: obj(
    {
      address: { ...inet, description: "IPv4 or IPv6; the family follows the address" },
      port: { ...int(0, 65535), description: "0 or absent: the service's port" },
      forward: { enum: ["masq", "local", "tunnel", "route", "fullnat"], default: "route" },
      weight: { ...int(0, 65535), default: 1 },
      upperThreshold: int(),
      lowerThreshold: int(),
    },
    ["address"],
  ),
  DestinationChange: obj(
    {
      forward: { enum: ["masq", "local", "tunnel", "route", "fullnat"] },
      weight: int(0, 65535),
      upperThreshold: int(),
      lowerThreshold: int(),
    },
    [],
  ),
  Endpoint: obj({ address: inet, port: int(0, 65535) }),
  Connection: obj({
    protocol: str,
    state: str,
    expiresMs: num,
    client: ref("Endpoint"),
    virtual: ref("Endpoint"),
    server: ref("Endpoint"),
    local: { oneOf: [ref("Endpoint"), { type: "null" }], description: "FULLNAT local address, else null" },
    template: { type: "boolean", description: "a persistence template" },
    fwmark: int(),
  }),
  ConnectionPage: obj({
    total: { ...int(), description: "connections that pass the filters" },
    offset: int(),
    limit: int(),
    connections: { type: "array", items: ref("Connection") },
  }),
  Status: {
    type: "object",
    description: "the control socket's status answer (docs/control-protocol.md)",
    required: [
      "version",
      "pid",
      "control",
      "uptimeMs",
      "services",
      "dests",
      "connections",
      "counters",
      "drops",
    ],
    properties: {
      version: int(),
      pid: int(),
      control: str,
      netns: str,
      uptimeMs: num,
      loops: num,
      batches: num,
      busyMs: num,
      services: int(),
      dests: int(),
      connections: int(),
      counters: { type: "object", additionalProperties: num },
      drops: { type: "object", additionalProperties: num },
      interfaces: { type: "array", items: { type: "object" } },
      worker: obj({ alive: { type: "boolean" }, restarts: int() }),
      nft: { type: "object" },
      host: { type: "object" },
      vrrp: { type: "array", items: { type: "object" }, description: "VRRP instances (--config)" },
      vrrpScripts: {
        type: "array",
        items: obj({ name: str, good: { type: "boolean" }, running: { type: "boolean" } }),
        description: "the vrrp_scripts VRRP instances track",
      },
      sync: { type: "array", items: { type: "object" }, description: "connection sync daemons" },
      bgp: {
        type: "object",
        description: "the VIPs' BGP announcement through BIRD, its sessions (docs/scale-out.md)",
      },
      defense: {
        type: "object",
        description:
          "the defence against table exhaustion: modes, availmem/amemthresh, entries and packets dropped",
      },
      config: {
        type: "object",
        description: "--config: the file, its reloads, every checked real server's health",
        properties: {
          file: str,
          reloads: int(),
          health: {
            type: "array",
            items: obj({
              service: str,
              server: str,
              alive: { type: "boolean" },
              failures: int(),
              checksOk: int(),
              checksFailed: int(),
              wentUp: int(),
              wentDown: int(),
            }),
          },
        },
      },
    },
  },
  Batch: obj({
    commands: {
      type: "array",
      items: { type: "object", required: ["op"], properties: { op: str } },
      description: "ControlCommands as the control socket's apply takes them (docs/control-protocol.md)",
    },
  }),
  Applied: obj({ applied: int(), warning: str }, ["applied"]),
  ...explainSchemas(),
  Zeroed: obj({ zeroed: str }),
};

/** `GET /explain`'s answer (core/explain.ts Explanation, daemon/protocol.ts ExplainAnswer). */
function explainSchemas(): Record<string, Schema> {
  const figure: Schema = { type: ["number", "string", "boolean", "null"] };
  const figures: Schema = { type: "object", additionalProperties: figure };
  const nullable = (s: Schema): Schema => ({ oneOf: [s, { type: "null" }] });
  const method = { enum: ["masq", "route", "tunnel", "fullnat", "local"] };
  return {
    Explanation: obj({
      verdict: {
        enum: ["existing", "template", "scheduled", "no-destination", "no-service", "reply", "drop", "pass"],
      },
      summary: str,
      notes: { type: "array", items: str },
      packet: obj({ protocol: str, client: str, virtual: str, assumed: str }),
      fwmark: obj({
        source: { enum: ["given", "rules", "none"] },
        mark: int(0, 0xffffffff),
        rules: {
          type: "array",
          items: obj({ id: int(), rule: str, matched: { type: "boolean" }, markAfter: int(0, 0xffffffff) }),
        },
      }),
      lookups: { type: "array", items: str },
      service: nullable(
        obj({
          name: str,
          matchedBy: { enum: ["fwmark", "address and port", "port 0"] },
          scheduler: str,
          persistent: nullable(obj({ timeoutS: int(), netmask: explainMask })),
          flags: { type: "array", items: str },
        }),
      ),
      connection: nullable(
        obj({
          state: str,
          client: str,
          virtual: str,
          destination: str,
          local: nullable(str),
          expiresMs: num,
          controlledBy: nullable(str),
        }),
      ),
      template: nullable(
        obj({
          key: str,
          client: inet,
          netmask: explainMask,
          status: { enum: ["exists", "unfit", "new"] },
          destination: nullable(str),
          expiresMs: num,
          timeoutS: int(),
          controls: int(),
        }),
      ),
      schedule: nullable(
        obj({
          scheduler: str,
          destination: nullable(str),
          exact: { type: "boolean" },
          rule: str,
          figures,
          dests: { type: "array", items: obj({ destination: str, figures }) },
        }),
      ),
      destination: nullable(
        obj({
          address: inet,
          port: int(0, 65535),
          forward: method,
          weight: int(0, 65535),
          active: int(),
          inactive: int(),
        }),
      ),
      forward: nullable(
        obj({
          method,
          ipvsadm: str,
          src: str,
          dst: str,
          outer: nullable(obj({ src: str, dst: str, kind: str })),
          iface: nullable(str),
          nexthop: nullable(str),
          mac: nullable(str),
          rewrite: str,
        }),
      ),
      worker: obj({ index: int(), of: int(1) }),
    }),
  };
}

const keyParams = {
  proto: [
    { name: "protocol", in: "path", required: true, schema: { enum: ["tcp", "udp", "sctp"] } },
    {
      name: "address",
      in: "path",
      required: true,
      schema: inet,
      description: "IPv4, or IPv6 unbracketed in any form inet_pton takes (2001:db8::100)",
    },
    { name: "port", in: "path", required: true, schema: int(0, 65535) },
  ],
  fwm: [{ name: "fwmark", in: "path", required: true, schema: int(1, 0xffffffff) }],
};
const destParams = [
  { name: "rsAddress", in: "path", required: true, schema: inet },
  { name: "rsPort", in: "path", required: true, schema: int(0, 65535) },
];

const E400 = error("bad JSON, bad values, refused by the schema or by ipvsadm's rules");
const E401 = error("no token, or a bad one (Authorization: Bearer TOKEN)");
const E404 = error("no such service or destination");
const E409 = error("the service or destination exists already");
const E503 = error("the data plane did not answer (the outcome of a write is unknown)");
const secured = [{ bearer: [] }];

function servicePaths(prefix: string, params: Schema[]): Record<string, Schema> {
  const svc = `${prefix}`;
  const dest = `${prefix}/destinations/{rsAddress}/{rsPort}`;
  return {
    [svc]: {
      parameters: params,
      get: {
        summary: "one service, its destinations and stats",
        responses: { 200: answer("the service", ref("Service")), 400: E400, 401: E401, 404: E404, 503: E503 },
      },
      put: {
        summary: "change a service (ipvsadm -E); fields left out keep their value",
        security: secured,
        requestBody: { required: true, ...json(ref("ServiceChange")) },
        responses: {
          200: answer("the service as changed", ref("Service")),
          400: E400,
          401: E401,
          404: E404,
          503: E503,
        },
      },
      delete: {
        summary: "delete a service (ipvsadm -D)",
        security: secured,
        responses: { 204: { description: "deleted" }, 400: E400, 401: E401, 404: E404, 503: E503 },
      },
    },
    [`${svc}/zero`]: {
      parameters: params,
      post: {
        summary: "zero the service's counters (ipvsadm -Z -t …)",
        security: secured,
        responses: { 200: answer("zeroed", ref("Zeroed")), 400: E400, 401: E401, 404: E404, 503: E503 },
      },
    },
    [`${svc}/acl`]: {
      parameters: params,
      put: {
        summary: "replace the service's deny and/or allow list (ipvsadm -U/-V, -O/-Y; docs/acl.md)",
        security: secured,
        requestBody: { required: true, ...json(ref("AclChange")) },
        responses: {
          200: answer(
            "the lists as changed",
            obj({
              deny: { type: "array", items: ref("AclRule") },
              allow: { type: "array", items: ref("AclRule") },
              notAllowed: int(),
            }),
          ),
          400: E400,
          401: E401,
          404: E404,
          503: E503,
        },
      },
    },
    [`${svc}/conn-limit`]: {
      parameters: params,
      put: {
        summary: "set the per-source new-connection rate limit (ipvsadm --conn-limit; docs/acl.md)",
        security: secured,
        requestBody: { required: true, ...json(ref("ConnLimitChange")) },
        responses: {
          200: answer(
            "the limit as set",
            obj({ connLimit: { anyOf: [ref("ConnLimit"), { type: "null" }] } }),
          ),
          400: E400,
          401: E401,
          404: E404,
          503: E503,
        },
      },
    },
    [`${svc}/destinations`]: {
      parameters: params,
      get: {
        summary: "the service's destinations",
        responses: {
          200: answer("destinations", ref("DestinationList")),
          400: E400,
          401: E401,
          404: E404,
          503: E503,
        },
      },
      post: {
        summary: "add a destination (ipvsadm -a)",
        security: secured,
        requestBody: { required: true, ...json(ref("NewDestination")) },
        responses: {
          201: answer("the destination added", ref("Destination")),
          400: E400,
          401: E401,
          404: E404,
          409: E409,
          503: E503,
        },
      },
    },
    [dest]: {
      parameters: [...params, ...destParams],
      get: {
        summary: "one destination",
        responses: {
          200: answer("the destination", ref("Destination")),
          400: E400,
          401: E401,
          404: E404,
          503: E503,
        },
      },
      put: {
        summary: "change a destination (ipvsadm -e); weight 0 drains it; fields left out keep their value",
        security: secured,
        requestBody: { required: true, ...json(ref("DestinationChange")) },
        responses: {
          200: answer("the destination as changed", ref("Destination")),
          400: E400,
          401: E401,
          404: E404,
          503: E503,
        },
      },
      delete: {
        summary: "delete a destination (ipvsadm -d)",
        security: secured,
        responses: { 204: { description: "deleted" }, 400: E400, 401: E401, 404: E404, 503: E503 },
      },
    },
  };
}

const P = "/api/v1";

export function openApiDocument(): Schema {
  return {
    openapi: "3.1.0",
    info: {
      title: "tsvs daemon REST API",
      version: "1",
      description:
        "The director's table over HTTP (docs/daemon.md, REST API). Writes need the bearer token; reads too unless the endpoint listens on loopback.",
    },
    // Reads: open on loopback, the token otherwise; writes say `security: bearer` themselves.
    security: [{}, { bearer: [] }],
    components: {
      schemas,
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
    paths: {
      [`${P}/openapi.json`]: {
        get: {
          summary: "this document",
          security: [],
          responses: { 200: answer("OpenAPI 3.1", { type: "object" }) },
        },
      },
      [`${P}/services`]: {
        get: {
          summary: "every service with its destinations and stats (ipvsadm -Ln --stats --rate)",
          responses: { 200: answer("services", ref("ServiceList")), 401: E401, 503: E503 },
        },
        post: {
          summary: "add a service (ipvsadm -A)",
          security: secured,
          requestBody: { required: true, ...json(ref("NewService")) },
          responses: {
            201: answer("the service added", ref("Service")),
            400: E400,
            401: E401,
            409: E409,
            503: E503,
          },
        },
      },
      ...servicePaths(`${P}/services/{protocol}/{address}/{port}`, keyParams.proto),
      ...servicePaths(`${P}/services/fwm/{fwmark}`, keyParams.fwm),
      ...servicePaths(`${P}/services/fwm6/{fwmark}`, keyParams.fwm),
      [`${P}/connections`]: {
        get: {
          summary: "the connection table (ipvsadm -Lnc), paged and filtered",
          parameters: [
            { name: "limit", in: "query", schema: { ...int(0, 10_000), default: 100 } },
            { name: "offset", in: "query", schema: { ...int(), default: 0 } },
            {
              name: "client",
              in: "query",
              schema: str,
              description: "ADDR, ADDR:PORT or [IPv6]:PORT of the client",
            },
            {
              name: "vip",
              in: "query",
              schema: str,
              description: "ADDR, ADDR:PORT or [IPv6]:PORT of the virtual service",
            },
            {
              name: "server",
              in: "query",
              schema: str,
              description: "ADDR, ADDR:PORT or [IPv6]:PORT of the real server",
            },
          ],
          responses: {
            200: answer("a page of connections", ref("ConnectionPage")),
            400: E400,
            401: E401,
            503: E503,
          },
        },
      },
      [`${P}/explain`]: {
        get: {
          summary:
            "what the director would do with the first packet of a connection (tsvs explain, docs/explain.md): service, entry or template, the scheduler's pick and its figures, the forwarding; nothing is sent or changed",
          parameters: [
            { name: "proto", in: "query", schema: { enum: ["tcp", "udp", "sctp"], default: "tcp" } },
            {
              name: "vip",
              in: "query",
              required: true,
              schema: inet,
              description: "the packet's destination (IPv4, or IPv6 with an IPv6 client)",
            },
            { name: "port", in: "query", required: true, schema: int(0, 65535) },
            { name: "client", in: "query", required: true, schema: inet, description: "the packet's source" },
            { name: "cport", in: "query", required: true, schema: int(0, 65535) },
            {
              name: "fwmark",
              in: "query",
              schema: int(0, 0xffffffff),
              description: "the mark the packet carries; absent: tsvs's fwmark rules decide",
            },
          ],
          responses: {
            200: answer("the explanation, from the worker the client's packets reach", ref("Explanation")),
            400: E400,
            401: E401,
            503: E503,
          },
        },
      },
      [`${P}/status`]: {
        get: {
          summary: "the daemon's status: counters, drops, interfaces, VRRP, sync daemons, health",
          responses: { 200: answer("status", ref("Status")), 401: E401, 503: E503 },
        },
      },
      [`${P}/zero`]: {
        post: {
          summary: "zero every counter (ipvsadm -Z)",
          security: secured,
          responses: { 200: answer("zeroed", ref("Zeroed")), 401: E401, 503: E503 },
        },
      },
      [`${P}/commands`]: {
        post: {
          summary: "a batch of ControlCommands, applied whole or not at all (the control socket's apply)",
          security: secured,
          requestBody: { required: true, ...json(ref("Batch")) },
          responses: {
            200: answer("applied", ref("Applied")),
            400: E400,
            401: E401,
            404: E404,
            409: E409,
            503: E503,
          },
        },
      },
    },
  };
}
