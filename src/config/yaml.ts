// tsvs's own configuration format (docs/config.md): YAML read with `yaml` (which keeps
// every node's source range) and validated with zod. Every error is reported as
// `file:line:col: message`, at the value that is wrong (or at the key for unknown keys,
// at the enclosing mapping for missing ones).

import { isMap, isScalar, LineCounter, type Node, parseDocument } from "yaml";
import { z } from "zod";
import { parseIPv4 } from "../core/addr.js";
import { DNS_TYPES } from "./keepalived.js";
import {
  type CheckSpec,
  ConfigError,
  DEFAULTS,
  type Diagnostic,
  LB_KINDS,
  modelWarnings,
  type ParsedConfig,
  parseNetmask,
  parseProtocol,
  type RealServerConfig,
  type SourcePos,
  type VirtualServerConfig,
  validateModel,
} from "./model.js";

const int = (name: string, lo: number, hi: number) => {
  const msg = `${name} must be ${lo}..${hi}`;
  return z.number({ error: msg }).int({ error: msg }).min(lo, { error: msg }).max(hi, { error: msg });
};
const seconds = (name: string) => {
  const msg = `${name} must be a number of seconds (0..86400)`;
  return z.number({ error: msg }).min(0, { error: msg }).max(86400, { error: msg });
};
const ipv4 = (name: string) =>
  z
    .string({ error: `${name} must be an IPv4 address` })
    .refine((s) => parseIPv4(s) !== null, { error: `${name} must be an IPv4 address (tsvs is IPv4 only)` });
const port = (name: string) => int(name, 0, 65535);
const bool = (name: string) => z.boolean({ error: `${name} must be true or false` });

const common = {
  connect_timeout: seconds("connect_timeout").optional(),
  connect_port: port("connect_port").optional(),
  connect_ip: ipv4("connect_ip").optional(),
  retry: int("retry", 0, 1000000).optional(),
  delay_before_retry: seconds("delay_before_retry").optional(),
};

const urlSchema = z.strictObject({
  path: z.string({ error: "path must be a string" }).startsWith("/", { error: "path must start with /" }),
  digest: z
    .string({ error: "digest must be a string" })
    .regex(/^[0-9a-fA-F]{32}$/, { error: "digest must be 32 hex digits (MD5)" })
    .optional(),
  status_code: z.union([int("status_code", 100, 599), z.array(int("status_code", 100, 599))]).optional(),
});

const checkSchema = z.discriminatedUnion(
  "type",
  [
    z.strictObject({ type: z.literal("tcp"), ...common }),
    z.strictObject({
      type: z.enum(["http", "https"]),
      ...common,
      urls: z.array(urlSchema).min(1, { error: "urls needs at least one entry" }),
      virtualhost: z.string().optional(),
    }),
    z.strictObject({
      type: z.literal("dns"),
      ...common,
      name: z.string({ error: "name must be a string" }).optional(),
      query_type: z
        .enum(DNS_TYPES as [string, ...string[]], {
          error: `query_type must be one of ${DNS_TYPES.join(", ")}`,
        })
        .optional(),
    }),
    z.strictObject({
      type: z.literal("misc"),
      path: z.string({ error: "path must be a command line" }).min(1, { error: "path must not be empty" }),
      timeout: seconds("timeout").optional(),
      retry: int("retry", 0, 1000000).optional(),
      delay_before_retry: seconds("delay_before_retry").optional(),
    }),
  ],
  { error: "check type must be tcp, http, https, dns or misc" },
);

const realServerSchema = z.strictObject({
  address: ipv4("address"),
  port: port("port").optional(),
  weight: int("weight", 0, 65535).optional(),
  inhibit_on_failure: bool("inhibit_on_failure").optional(),
  uthreshold: int("uthreshold", 0, 2147483647).optional(),
  lthreshold: int("lthreshold", 0, 2147483647).optional(),
  check: checkSchema.optional(),
});

const virtualServerSchema = z
  .strictObject({
    address: ipv4("address").optional(),
    port: port("port").optional(),
    protocol: z
      .enum(["tcp", "udp", "sctp", "TCP", "UDP", "SCTP"], { error: "protocol must be tcp, udp or sctp" })
      .optional(),
    fwmark: int("fwmark", 1, 4294967295).optional(),
    scheduler: z.string({ error: "scheduler must be a name" }).optional(),
    persistence_timeout: int("persistence_timeout", 1, 86400 * 31).optional(),
    persistence_granularity: z
      .union([z.string(), z.number()], { error: "persistence_granularity must be a netmask" })
      .refine((v) => parseNetmask(String(v)) !== null, { error: "persistence_granularity must be a netmask" })
      .optional(),
    ops: bool("ops").optional(),
    lb_kind: z
      .enum(LB_KINDS as [string, ...string[]], { error: "lb_kind must be NAT, DR, TUN or FULLNAT" })
      .optional(),
    delay_loop: seconds("delay_loop").optional(),
    quorum: int("quorum", 0, 2147483647).optional(),
    hysteresis: int("hysteresis", 0, 2147483647).optional(),
    alpha: bool("alpha").optional(),
    omega: bool("omega").optional(),
    sorry_server: z
      .string({ error: "sorry_server must be ADDRESS or ADDRESS:PORT" })
      .refine((s) => parseHostPort(s) !== null, { error: "sorry_server must be ADDRESS or ADDRESS:PORT" })
      .optional(),
    real_servers: z.array(realServerSchema, { error: "real_servers must be a list" }).optional(),
    // FULLNAT local addresses of this service (DPVS's ipvsadm -P -z / laddr_group_name).
    local_addresses: z
      .array(ipv4("local_addresses entry"), { error: "local_addresses must be a list of addresses" })
      .optional(),
  })
  .superRefine((v, ctx) => {
    if ((v.address === undefined) === (v.fwmark === undefined))
      ctx.addIssue({
        code: "custom",
        message: "a virtual server has either address (and port) or fwmark",
        path: [],
      });
    if (v.fwmark !== undefined && (v.port !== undefined || v.protocol !== undefined))
      ctx.addIssue({ code: "custom", message: "a fwmark virtual server has no port or protocol", path: [] });
  });

const fileSchema = z.strictObject({
  virtual_servers: z.array(virtualServerSchema, { error: "virtual_servers must be a list" }),
});

type FileConfig = z.infer<typeof fileSchema>;

function parseHostPort(s: string): { addr: number; port: number } | null {
  const m = /^([\d.]+)(?::(\d{1,5}))?$/.exec(s);
  if (m === null) return null;
  const addr = parseIPv4(m[1]);
  const p = m[2] === undefined ? 0 : Number(m[2]);
  return addr === null || p > 65535 ? null : { addr, port: p };
}

function checkOf(c: NonNullable<z.infer<typeof realServerSchema>["check"]>): CheckSpec {
  const retry = c.retry ?? DEFAULTS.retry;
  const delayBeforeRetry = c.delay_before_retry ?? DEFAULTS.delayBeforeRetry;
  if (c.type === "misc")
    return { type: "misc", path: c.path, timeout: c.timeout ?? 0, retry, delayBeforeRetry };
  const base = {
    connectTimeout: c.connect_timeout ?? DEFAULTS.connectTimeout,
    connectPort: c.connect_port ?? 0,
    connectIp: c.connect_ip !== undefined ? (parseIPv4(c.connect_ip) ?? 0) : 0,
    retry,
    delayBeforeRetry,
  };
  if (c.type === "tcp") return { type: "tcp", ...base };
  if (c.type === "dns") return { type: "dns", name: c.name ?? ".", qtype: c.query_type ?? "SOA", ...base };
  return {
    type: c.type,
    urls: c.urls.map((u) => ({
      path: u.path,
      digest: (u.digest ?? "").toLowerCase(),
      statusCodes:
        u.status_code === undefined ? [] : Array.isArray(u.status_code) ? u.status_code : [u.status_code],
    })),
    virtualHost: c.virtualhost ?? "",
    ...base,
  };
}

/** Parses tsvs YAML; throws ConfigError listing every error (file:line:col). */
export function parseYamlConfig(src: string, file: string): ParsedConfig {
  const lc = new LineCounter();
  const doc = parseDocument(src, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  const at = (offset: number): SourcePos => {
    const p = lc.linePos(offset);
    return { file, line: p.line, col: p.col };
  };
  const diag = (e: { message: string; pos: [number, number] }): Diagnostic => ({
    ...at(e.pos[0]),
    // yaml's messages carry "at line L, column C:" and a source excerpt: keep the first sentence.
    message: e.message.split(/ at line \d+, column \d+|\n/)[0],
  });
  if (doc.errors.length > 0) throw new ConfigError(doc.errors.map(diag));
  const warnings = doc.warnings.map(diag);

  const nodeAt = (path: readonly PropertyKey[]): { node: Node | null; depth: number } => {
    let node: unknown = doc.contents;
    let depth = 0;
    for (const k of path) {
      const next = (node as { get?: (k: unknown, keep: boolean) => unknown } | null)?.get?.(k, true);
      if (next === undefined || next === null) break;
      node = next;
      depth++;
    }
    return { node: (node as Node | null) ?? null, depth };
  };
  const posOf = (n: Node | null): SourcePos => at(n?.range?.[0] ?? 0);

  const data: unknown = doc.toJS();
  const r = fileSchema.safeParse(data ?? {});
  if (!r.success) {
    const errors: Diagnostic[] = r.error.issues.map((iss) => {
      const { node, depth } = nodeAt(iss.path);
      if (iss.code === "unrecognized_keys" && isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && p.key.value === iss.keys[0]);
        return {
          ...posOf((pair?.key as Node | undefined) ?? node),
          message: `unknown key ${iss.keys.map((k) => `"${k}"`).join(", ")}`,
        };
      }
      if (depth < iss.path.length) {
        const key = String(iss.path[iss.path.length - 1]);
        return { ...posOf(node), message: key === "type" ? "check needs a type" : `${key} is required` };
      }
      return { ...posOf(node), message: iss.message };
    });
    errors.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new ConfigError(errors);
  }
  const cfg: FileConfig = r.data;
  const model = {
    virtualServers: cfg.virtual_servers.map((v, i): VirtualServerConfig => {
      const realServers = (v.real_servers ?? []).map(
        (rs, j): RealServerConfig => ({
          addr: parseIPv4(rs.address) ?? 0,
          port: rs.port ?? 0,
          weight: rs.weight ?? DEFAULTS.weight,
          inhibitOnFailure: rs.inhibit_on_failure ?? false,
          uThreshold: rs.uthreshold ?? 0,
          lThreshold: rs.lthreshold ?? 0,
          check: rs.check !== undefined ? checkOf(rs.check) : null,
          pos: posOf(nodeAt(["virtual_servers", i, "real_servers", j]).node),
        }),
      );
      return {
        protocol: v.fwmark !== undefined ? 0 : (parseProtocol(v.protocol ?? "tcp") ?? 6),
        addr: v.address !== undefined ? (parseIPv4(v.address) ?? 0) : 0,
        port: v.fwmark !== undefined ? 0 : (v.port ?? 0),
        fwmark: v.fwmark ?? 0,
        scheduler: v.scheduler ?? DEFAULTS.scheduler,
        persistenceTimeout: v.persistence_timeout ?? 0,
        persistenceGranularity:
          v.persistence_granularity !== undefined
            ? (parseNetmask(String(v.persistence_granularity)) ?? 0xffffffff)
            : 0xffffffff,
        lbKind: (v.lb_kind as VirtualServerConfig["lbKind"] | undefined) ?? DEFAULTS.lbKind,
        onePacket: v.ops ?? false,
        sorryServer: v.sorry_server !== undefined ? parseHostPort(v.sorry_server) : null,
        quorum: v.quorum ?? DEFAULTS.quorum,
        hysteresis: v.hysteresis ?? DEFAULTS.hysteresis,
        alpha: v.alpha ?? false,
        omega: v.omega ?? false,
        delayLoop: v.delay_loop ?? DEFAULTS.delayLoop,
        realServers,
        ...(v.local_addresses !== undefined
          ? { localAddresses: v.local_addresses.map((a) => parseIPv4(a) ?? 0) }
          : {}),
        pos: posOf(nodeAt(["virtual_servers", i]).node),
      };
    }),
  };
  const errors = validateModel(model);
  if (errors.length > 0) throw new ConfigError(errors);
  return { model, warnings: [...warnings, ...modelWarnings(model)] };
}
