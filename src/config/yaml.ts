// tsvs's own configuration format (docs/config.md): YAML read with `yaml` (which keeps
// every node's source range) and validated with zod. Every error is reported as
// `file:line:col: message`, at the value that is wrong (or at the key for unknown keys,
// at the enclosing mapping for missing ones).
//
// Addresses of virtual and real servers, sorry servers and checkers are IPv4 or IPv6 (any form
// inet_pton takes); a fwmark virtual server's family is `ip_family` (inet, inet6) or its servers'
// as in keepalived.conf (model.ts vsFamily); an IPv6 persistence_granularity is a prefix length.

import { isMap, isScalar, LineCounter, type Node, parseDocument } from "yaml";
import { z } from "zod";
import { addrText } from "../control/snapshot.js";
import { type InetFields, inetEndpoint, inetFields } from "../control/spec.js";
import { parseIPv4 } from "../core/addr.js";
import type { VrrpAddr } from "../core/vrrp/config.js";
import { DNS_TYPES } from "./keepalived.js";
import {
  type CheckSpec,
  ConfigError,
  DEFAULTS,
  type Diagnostic,
  fullGranularity,
  LB_KINDS,
  type LbKind,
  modelWarnings,
  type ParsedConfig,
  parseNetmask,
  parseProtocol,
  type RealServerConfig,
  type SourcePos,
  type VirtualServerConfig,
  validateModel,
  vsFamily,
} from "./model.js";
import {
  buildHa,
  emptyDraft,
  emptyInstanceDraft,
  type HaDraft,
  type HaGlobals,
  type InstanceSettings,
  IPV6_VRRP,
  type TrackDraft,
} from "./vrrp.js";

const int = (name: string, lo: number, hi: number) => {
  const msg = `${name} must be ${lo}..${hi}`;
  return z.number({ error: msg }).int({ error: msg }).min(lo, { error: msg }).max(hi, { error: msg });
};
const seconds = (name: string) => {
  const msg = `${name} must be a number of seconds (0..86400)`;
  return z.number({ error: msg }).min(0, { error: msg }).max(86400, { error: msg });
};
/** A string checked by `why` (the error message, or null when fine): one error a value. */
const checked = (what: string, why: (s: string) => string | null) =>
  z.string({ error: what }).superRefine((s, ctx) => {
    const message = why(s);
    if (message !== null) ctx.addIssue({ code: "custom", message });
  });
const inet = (name: string) =>
  z
    .string({ error: `${name} must be an IPv4 or IPv6 address` })
    .refine((s) => inetFields(s) !== null, { error: `${name} must be an IPv4 or IPv6 address` });
const port = (name: string) => int(name, 0, 65535);
const bool = (name: string) => z.boolean({ error: `${name} must be true or false` });

const common = {
  connect_timeout: seconds("connect_timeout").optional(),
  connect_port: port("connect_port").optional(),
  connect_ip: inet("connect_ip").optional(),
  bindto: inet("bindto").optional(),
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
  address: inet("address"),
  port: port("port").optional(),
  weight: int("weight", 0, 65535).optional(),
  inhibit_on_failure: bool("inhibit_on_failure").optional(),
  uthreshold: int("uthreshold", 0, 2147483647).optional(),
  lthreshold: int("lthreshold", 0, 2147483647).optional(),
  check: checkSchema.optional(),
});

const SORRY_FORMS = "sorry_server must be ADDRESS, ADDRESS:PORT or [IPv6]:PORT";

const virtualServerSchema = z
  .strictObject({
    address: inet("address").optional(),
    port: port("port").optional(),
    ip_family: z.enum(["inet", "inet6"], { error: "ip_family must be inet or inet6" }).optional(),
    protocol: z
      .enum(["tcp", "udp", "sctp", "TCP", "UDP", "SCTP"], { error: "protocol must be tcp, udp or sctp" })
      .optional(),
    fwmark: int("fwmark", 1, 4294967295).optional(),
    scheduler: z.string({ error: "scheduler must be a name" }).optional(),
    persistence_timeout: int("persistence_timeout", 1, 86400 * 31).optional(),
    // Checked with the family, which may come from the real servers (superRefine below).
    persistence_granularity: z
      .union([z.string(), z.number()], { error: "persistence_granularity must be a netmask" })
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
      .string({ error: SORRY_FORMS })
      .refine((s) => inetEndpoint(s) !== null, { error: SORRY_FORMS })
      .optional(),
    real_servers: z.array(realServerSchema, { error: "real_servers must be a list" }).optional(),
    // FULLNAT local addresses of this service (DPVS's ipvsadm -P -z / laddr_group_name).
    local_addresses: z
      .array(
        checked("local_addresses entry must be an IPv4 address", (s) =>
          s.includes(":")
            ? "IPv6 local addresses are not supported by tsvs yet"
            : parseIPv4(s) === null
              ? "local_addresses entry must be an IPv4 address"
              : null,
        ),
        { error: "local_addresses must be a list of addresses" },
      )
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
    const af = familyOf(v);
    if (v.ip_family !== undefined && v.address !== undefined && (v.ip_family === "inet6") !== (af === 6))
      ctx.addIssue({
        code: "custom",
        message: `ip_family ${v.ip_family} conflicts with the address ${v.address}`,
        path: ["ip_family"],
      });
    const g = v.persistence_granularity;
    if (g !== undefined && parseNetmask(String(g), af) === null)
      ctx.addIssue({
        code: "custom",
        message:
          af === 6
            ? "persistence_granularity of an IPv6 service is a prefix length 1..128"
            : "persistence_granularity must be a netmask",
        path: ["persistence_granularity"],
      });
  });

/** A virtual server's family: its address's, ip_family, or its servers' (model.ts vsFamily). */
function familyOf(v: {
  address?: string;
  ip_family?: "inet" | "inet6";
  lb_kind?: string;
  persistence_granularity?: string | number;
  real_servers?: ReadonlyArray<{ address: string }>;
  sorry_server?: string;
}): 4 | 6 {
  const a = v.address !== undefined ? inetFields(v.address) : null;
  if (a !== null) return a.af;
  if (v.ip_family !== undefined) return v.ip_family === "inet6" ? 6 : 4;
  const servers = (v.real_servers ?? []).flatMap((rs) => inetFields(rs.address) ?? []);
  const sorry = v.sorry_server !== undefined ? inetEndpoint(v.sorry_server) : null;
  if (sorry !== null) servers.push(sorry.a);
  const g = v.persistence_granularity;
  return vsFamily((v.lb_kind ?? DEFAULTS.lbKind) as LbKind, servers, g === undefined ? null : String(g));
}

// The vrrp section: keepalived's vrrp_instance / vrrp_sync_group / vrrp_script / lvs_sync_daemon
// keywords, as YAML keys (docs/config.md). Durations are seconds, as in keepalived.conf.
const vrrpIpv4 = (name: string) =>
  checked(`${name} must be an IPv4 address`, (s) =>
    s.includes(":")
      ? `${name}: ${IPV6_VRRP}`
      : parseIPv4(s) === null
        ? `${name} must be an IPv4 address`
        : null,
  );
const vipString = checked("an address must be A.B.C.D[/PREFIX]", (s) =>
  s.includes(":") ? IPV6_VRRP : parseVip(s) === null ? "an address must be A.B.C.D[/PREFIX]" : null,
);
const vipSchema = z.union(
  [
    vipString,
    z.strictObject({ address: vipString, dev: z.string({ error: "dev must be a name" }).optional() }),
  ],
  { error: "an address is A.B.C.D[/PREFIX] or { address, dev }" },
);
const trackSchema = z.union(
  [
    z.string({ error: "a tracker is a name or { name, weight, reverse }" }),
    z.strictObject({
      name: z.string({ error: "name must be a string" }),
      weight: int("weight", -253, 253).optional(),
      reverse: bool("reverse").optional(),
    }),
  ],
  { error: "a tracker is a name or { name, weight, reverse }" },
);
const notifyKeys = {
  notify_master: z.string({ error: "notify_master must be a command line" }).optional(),
  notify_backup: z.string({ error: "notify_backup must be a command line" }).optional(),
  notify_fault: z.string({ error: "notify_fault must be a command line" }).optional(),
  notify_stop: z.string({ error: "notify_stop must be a command line" }).optional(),
  notify: z.string({ error: "notify must be a command line" }).optional(),
  track_interface: z.array(trackSchema, { error: "track_interface must be a list" }).optional(),
  track_script: z.array(trackSchema, { error: "track_script must be a list" }).optional(),
};
const garpKeys = {
  garp_master_delay: int("garp_master_delay", 0, 4294).optional(),
  garp_master_repeat: int("garp_master_repeat", 1, 4294967295).optional(),
  garp_master_refresh: int("garp_master_refresh", 0, 4294967).optional(),
  garp_master_refresh_repeat: int("garp_master_refresh_repeat", 1, 4294967295).optional(),
  garp_lower_prio_delay: int("garp_lower_prio_delay", 0, 4294).optional(),
  garp_lower_prio_repeat: int("garp_lower_prio_repeat", 0, 2147483647).optional(),
};
const advertInt = z
  .number({ error: "advert_int must be 0.01..255 seconds" })
  .min(0.01, { error: "advert_int must be 0.01..255 seconds" })
  .max(255, { error: "advert_int must be 0.01..255 seconds" });
const instanceSchema = z.strictObject({
  name: z.string({ error: "name must be a string" }),
  state: z.enum(["MASTER", "BACKUP"], { error: "state must be MASTER or BACKUP" }).optional(),
  interface: z.string({ error: "interface must be a name" }),
  virtual_router_id: int("virtual_router_id", 1, 255),
  priority: int("priority", 1, 255).optional(),
  advert_int: advertInt.optional(),
  version: z.union([z.literal(2), z.literal(3)], { error: "version must be 2 or 3" }).optional(),
  auth_pass: z
    .string({ error: "auth_pass must be a string" })
    .min(1, { error: "auth_pass must not be empty" })
    .max(8, { error: "auth_pass is at most 8 characters (VRRPv2 PASS)" })
    .optional(),
  virtual_ipaddress: z.array(vipSchema, { error: "virtual_ipaddress must be a list" }).optional(),
  virtual_ipaddress_excluded: z
    .array(vipSchema, { error: "virtual_ipaddress_excluded must be a list" })
    .optional(),
  unicast_src_ip: vrrpIpv4("unicast_src_ip").optional(),
  unicast_peer: z.array(vrrpIpv4("unicast_peer entry"), { error: "unicast_peer must be a list" }).optional(),
  mcast_dst_ip: vrrpIpv4("mcast_dst_ip")
    .refine((s) => (parseIPv4(s) ?? 0) >>> 28 === 0xe, { error: "mcast_dst_ip must be a multicast address" })
    .optional(),
  nopreempt: bool("nopreempt").optional(),
  preempt_delay: z
    .number({ error: "preempt_delay must be 0..1000 seconds" })
    .min(0, { error: "preempt_delay must be 0..1000 seconds" })
    .max(1000, { error: "preempt_delay must be 0..1000 seconds" })
    .optional(),
  ...notifyKeys,
  ...garpKeys,
  down_timer_adverts: int("down_timer_adverts", 1, 100).optional(),
  lower_prio_no_advert: bool("lower_prio_no_advert").optional(),
  higher_prio_send_advert: bool("higher_prio_send_advert").optional(),
  use_vmac: bool("use_vmac").optional(),
  v3_checksum_as_v2: bool("v3_checksum_as_v2").optional(),
});
const syncGroupSchema = z.strictObject({
  name: z.string({ error: "name must be a string" }),
  group: z.array(z.string({ error: "group entries are instance names" }), { error: "group must be a list" }),
  sync_group_tracking_weight: bool("sync_group_tracking_weight").optional(),
  ...notifyKeys,
});
const seconds3 = (name: string) => {
  const msg = `${name} must be a number of seconds (0.001..4294967)`;
  return z.number({ error: msg }).min(0.001, { error: msg }).max(4294967, { error: msg });
};
const scriptSchema = z.strictObject({
  name: z.string({ error: "name must be a string" }),
  script: z.string({ error: "script must be a command line" }).min(1, { error: "script must not be empty" }),
  interval: seconds3("interval").optional(),
  timeout: seconds3("timeout").optional(),
  weight: int("weight", -253, 253).optional(),
  reverse: bool("reverse").optional(),
  rise: int("rise", 1, 2147483647).optional(),
  fall: int("fall", 1, 2147483647).optional(),
  init_fail: bool("init_fail").optional(),
});
const syncDaemonSchema = z.strictObject({
  interface: z.string({ error: "interface must be a name" }),
  instance: z.string({ error: "instance must be a vrrp instance name" }).optional(),
  id: int("id", 0, 255).optional(),
  maxlen: int("maxlen", 1, 65535 - 20 - 8).optional(),
  port: int("port", 1, 65535).optional(),
  ttl: int("ttl", 1, 255).optional(),
  group: vrrpIpv4("group")
    .refine((s) => (parseIPv4(s) ?? 0) >>> 28 === 0xe, { error: "group must be a multicast address" })
    .optional(),
});
const vrrpSchema = z.strictObject(
  {
    router_id: z.string({ error: "router_id must be a string" }).optional(),
    version: z.union([z.literal(2), z.literal(3)], { error: "version must be 2 or 3" }).optional(),
    ...garpKeys,
    instances: z.array(instanceSchema, { error: "instances must be a list" }).optional(),
    sync_groups: z.array(syncGroupSchema, { error: "sync_groups must be a list" }).optional(),
    scripts: z.array(scriptSchema, { error: "scripts must be a list" }).optional(),
    lvs_sync_daemon: syncDaemonSchema.optional(),
  },
  { error: "vrrp must be a mapping (router_id, instances, sync_groups, scripts, lvs_sync_daemon)" },
);

const fileSchema = z.strictObject({
  virtual_servers: z.array(virtualServerSchema, { error: "virtual_servers must be a list" }),
  vrrp: vrrpSchema.optional(),
});

function parseVip(s: string): VrrpAddr | null {
  const m = /^([\d.]+)(?:\/(\d{1,2}))?$/.exec(s);
  const addr = m !== null ? parseIPv4(m[1]) : null;
  const prefix = m?.[2] !== undefined ? Number(m[2]) : 32;
  return addr === null || prefix > 32 ? null : { addr, prefix };
}

type FileConfig = z.infer<typeof fileSchema>;
type VrrpFile = z.infer<typeof vrrpSchema>;
type Path = readonly PropertyKey[];

const secMs = (v: number | undefined): number | undefined =>
  v === undefined ? undefined : Math.round(v * 1000);

function garpOf(v: z.infer<z.ZodObject<typeof garpKeys>>): HaGlobals {
  return {
    garpMasterDelayMs: secMs(v.garp_master_delay),
    garpMasterRepeat: v.garp_master_repeat,
    garpMasterRefreshMs: secMs(v.garp_master_refresh),
    garpMasterRefreshRepeat: v.garp_master_refresh_repeat,
    garpLowerPrioDelayMs: secMs(v.garp_lower_prio_delay),
    garpLowerPrioRepeat: v.garp_lower_prio_repeat,
  };
}

/** The vrrp section as an HaDraft; `at` gives the position of a path's node. */
function haDraftOf(v: VrrpFile, at: (path: Path) => SourcePos): HaDraft {
  const d = emptyDraft();
  d.routerId = v.router_id ?? null;
  d.globals = { version: v.version, ...garpOf(v) };
  const tracks = (list: z.infer<typeof trackSchema>[] | undefined, path: Path): TrackDraft[] =>
    (list ?? []).map((t, i) =>
      typeof t === "string"
        ? { name: t, weight: null, reverse: null, pos: at([...path, i]) }
        : { name: t.name, weight: t.weight ?? null, reverse: t.reverse ?? null, pos: at([...path, i]) },
    );
  const vips = (list: z.infer<typeof vipSchema>[] | undefined): VrrpAddr[] | undefined =>
    list?.map((a) => {
      const { addr, prefix } = parseVip(typeof a === "string" ? a : a.address) ?? { addr: 0, prefix: 32 };
      return typeof a === "string" || a.dev === undefined ? { addr, prefix } : { addr, prefix, dev: a.dev };
    });
  const ipOf = (s: string | undefined): number | undefined =>
    s === undefined ? undefined : (parseIPv4(s) ?? 0);
  (v.instances ?? []).forEach((x, i) => {
    const path = ["vrrp", "instances", i];
    const inst = emptyInstanceDraft(x.name, at(path));
    const set: InstanceSettings = {
      iface: x.interface,
      vrid: x.virtual_router_id,
      priority: x.priority,
      version: x.version,
      advertIntMs: secMs(x.advert_int),
      initialState: x.state,
      nopreempt: x.nopreempt,
      preemptDelayMs: secMs(x.preempt_delay),
      authPass: x.auth_pass,
      addrs: vips(x.virtual_ipaddress),
      excludedAddrs: vips(x.virtual_ipaddress_excluded),
      unicastSrc: ipOf(x.unicast_src_ip),
      unicastPeers: x.unicast_peer?.map((p) => parseIPv4(p) ?? 0),
      mcastDst: ipOf(x.mcast_dst_ip),
      v3ChecksumAsV2: x.v3_checksum_as_v2,
      ...garpOf(x),
      downTimerAdverts: x.down_timer_adverts,
      lowerPrioNoAdvert: x.lower_prio_no_advert,
      higherPrioSendAdvert: x.higher_prio_send_advert,
      useVmac: x.use_vmac,
      notifyMaster: x.notify_master,
      notifyBackup: x.notify_backup,
      notifyFault: x.notify_fault,
      notifyStop: x.notify_stop,
      notify: x.notify,
    };
    inst.set = Object.fromEntries(Object.entries(set).filter(([, e]) => e !== undefined));
    inst.at = {
      vrid: at([...path, "virtual_router_id"]),
      advertInt: at([...path, "advert_int"]),
      auth: at([...path, "auth_pass"]),
      nopreempt: at([...path, "nopreempt"]),
      preemptDelay: at([...path, "preempt_delay"]),
    };
    inst.trackInterfaces = tracks(x.track_interface, [...path, "track_interface"]);
    inst.trackScripts = tracks(x.track_script, [...path, "track_script"]);
    d.instances.push(inst);
  });
  (v.sync_groups ?? []).forEach((x, i) => {
    const path = ["vrrp", "sync_groups", i];
    d.syncGroups.push({
      name: x.name,
      pos: at(path),
      members: x.group.map((name, j) => ({ name, pos: at([...path, "group", j]) })),
      trackInterfaces: tracks(x.track_interface, [...path, "track_interface"]),
      trackScripts: tracks(x.track_script, [...path, "track_script"]),
      trackingWeight: x.sync_group_tracking_weight ?? false,
      notifyMaster: x.notify_master ?? null,
      notifyBackup: x.notify_backup ?? null,
      notifyFault: x.notify_fault ?? null,
      notifyStop: x.notify_stop ?? null,
      notify: x.notify ?? null,
    });
  });
  (v.scripts ?? []).forEach((x, i) => {
    d.scripts.push({
      cfg: {
        name: x.name,
        script: x.script,
        intervalMs: secMs(x.interval) ?? 1000,
        timeoutMs: secMs(x.timeout) ?? null,
        weight: x.weight ?? 0,
        reverse: x.reverse ?? false,
        rise: x.rise ?? 1,
        fall: x.fall ?? 1,
        initFail: x.init_fail ?? false,
      },
      pos: at(["vrrp", "scripts", i]),
    });
  });
  const sd = v.lvs_sync_daemon;
  if (sd !== undefined)
    d.lvsSyncDaemon = {
      cfg: {
        iface: sd.interface,
        syncid: sd.id ?? null,
        maxlen: sd.maxlen ?? null,
        port: sd.port ?? null,
        ttl: sd.ttl ?? null,
        group: sd.group !== undefined ? (parseIPv4(sd.group) ?? null) : null,
      },
      instance:
        sd.instance !== undefined
          ? { name: sd.instance, pos: at(["vrrp", "lvs_sync_daemon", "instance"]) }
          : null,
      pos: at(["vrrp", "lvs_sync_daemon"]),
    };
  return d;
}

function checkOf(c: NonNullable<z.infer<typeof realServerSchema>["check"]>): CheckSpec {
  const retry = c.retry ?? DEFAULTS.retry;
  const delayBeforeRetry = c.delay_before_retry ?? DEFAULTS.delayBeforeRetry;
  if (c.type === "misc")
    return { type: "misc", path: c.path, timeout: c.timeout ?? 0, retry, delayBeforeRetry };
  const base = {
    connectTimeout: c.connect_timeout ?? DEFAULTS.connectTimeout,
    connectPort: c.connect_port ?? 0,
    connectIp: 0,
    retry,
    delayBeforeRetry,
  };
  const ci = c.connect_ip !== undefined ? inetFields(c.connect_ip) : null;
  if (ci !== null)
    Object.assign(base, ci.addr6 !== undefined ? { connectIp6: ci.addr6 } : { connectIp: ci.addr });
  const bind = c.bindto !== undefined ? inetFields(c.bindto) : null;
  if (bind !== null) Object.assign(base, { bindTo: addrText(bind) });
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
  const ha = buildHa(
    cfg.vrrp !== undefined ? haDraftOf(cfg.vrrp, (p) => posOf(nodeAt(p).node)) : emptyDraft(),
  );
  if (ha.errors.length > 0) throw new ConfigError(ha.errors);
  const model = {
    ha: ha.ha,
    virtualServers: cfg.virtual_servers.map((v, i): VirtualServerConfig => {
      const realServers = (v.real_servers ?? []).map(
        (rs, j): RealServerConfig => ({
          ...inetOf(rs.address),
          port: rs.port ?? 0,
          weight: rs.weight ?? DEFAULTS.weight,
          inhibitOnFailure: rs.inhibit_on_failure ?? false,
          uThreshold: rs.uthreshold ?? 0,
          lThreshold: rs.lthreshold ?? 0,
          check: rs.check !== undefined ? checkOf(rs.check) : null,
          pos: posOf(nodeAt(["virtual_servers", i, "real_servers", j]).node),
        }),
      );
      const af = familyOf(v);
      const sorry = v.sorry_server !== undefined ? inetEndpoint(v.sorry_server) : null;
      return {
        af,
        protocol: v.fwmark !== undefined ? 0 : (parseProtocol(v.protocol ?? "tcp") ?? 6),
        ...(v.address !== undefined ? inetOf(v.address) : { addr: 0 }),
        port: v.fwmark !== undefined ? 0 : (v.port ?? 0),
        fwmark: v.fwmark ?? 0,
        scheduler: v.scheduler ?? DEFAULTS.scheduler,
        persistenceTimeout: v.persistence_timeout ?? 0,
        persistenceGranularity:
          v.persistence_granularity !== undefined
            ? (parseNetmask(String(v.persistence_granularity), af) ?? fullGranularity(af))
            : fullGranularity(af),
        lbKind: (v.lb_kind as VirtualServerConfig["lbKind"] | undefined) ?? DEFAULTS.lbKind,
        onePacket: v.ops ?? false,
        sorryServer: sorry === null ? null : { ...addrOf(sorry.a), port: sorry.port ?? 0 },
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
  return { model, warnings: [...warnings, ...ha.warnings, ...modelWarnings(model)] };
}

/** `addr` and, for IPv6, `addr6` of an address (without its family: the model's shape). */
function addrOf(a: InetFields | null): { addr: number; addr6?: string } {
  if (a === null) return { addr: 0 };
  return a.addr6 !== undefined ? { addr: 0, addr6: a.addr6 } : { addr: a.addr };
}

/** addrOf an address the schema has checked. */
function inetOf(text: string): { addr: number; addr6?: string } {
  return addrOf(inetFields(text));
}
