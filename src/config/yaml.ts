// tsvs's own configuration format (docs/config.md): YAML read with `yaml` (which keeps
// every node's source range) and validated with zod. Every error is reported as
// `file:line:col: message`, at the value that is wrong (or at the key for unknown keys,
// at the enclosing mapping for missing ones).
//
// Addresses of virtual and real servers, sorry servers, checkers and local addresses are IPv4 or
// IPv6 (any form inet_pton takes); a fwmark virtual server's family is `ip_family` (inet, inet6)
// or its servers' as in keepalived.conf (model.ts vsFamily); an IPv6 persistence_granularity is a
// prefix length.

import { isMap, isScalar, LineCounter, type Node, parseDocument } from "yaml";
import { z } from "zod";
import { addrText } from "../control/snapshot.js";
import { type InetFields, inetEndpoint, inetFields } from "../control/spec.js";
import { type AclPrefix, parseAclPrefix } from "../core/acl.js";
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "../core/addr.js";
import { SCHED_FLAG_BITS } from "../core/service.js";
import type { VrrpAddr } from "../core/vrrp/config.js";
import { type BgpNeighbor, bgpConfigErrors, bgpVips } from "./bird.js";
import { DNS_TYPES } from "./keepalived.js";
import {
  BGP_DEFAULTS,
  type BgpConfig,
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
  type FamilyClaim,
  type HaDraft,
  type HaGlobals,
  type InstanceSettings,
  isLinkLocalMulticast6,
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
/** A script keyword's command line (keepalived's word splitting: quotes group words). */
const script = (name: string) =>
  z.string({ error: `${name} must be a command line` }).min(1, `${name} is empty`);

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
  notify_up: script("notify_up").optional(),
  notify_down: script("notify_down").optional(),
});

const SCHED_FLAGS_FORMS = `scheduler_flags must be a list of ${Object.keys(SCHED_FLAG_BITS).join(", ")}`;
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
    // ipvsadm -b's names (flag-1..3, sh-/mh-fallback, sh-/mh-port): checked with the scheduler below.
    scheduler_flags: z
      .array(z.enum(Object.keys(SCHED_FLAG_BITS) as [string, ...string[]], { error: SCHED_FLAGS_FORMS }), {
        error: SCHED_FLAGS_FORMS,
      })
      .optional(),
    // DPVS keepalived's syn_proxy (ipvsadm --synproxy): TCP with NAT or FULLNAT (superRefine below).
    syn_proxy: bool("syn_proxy").optional(),
    // DPVS's --proxy-protocol; the value is checked with the protocol (control/spec.ts).
    proxy_protocol: z.string({ error: "proxy_protocol must be disable, v1 or v2" }).optional(),
    lb_kind: z
      .enum(LB_KINDS as [string, ...string[]], { error: "lb_kind must be NAT, DR, TUN or FULLNAT" })
      .optional(),
    delay_loop: seconds("delay_loop").optional(),
    quorum: int("quorum", 0, 2147483647).optional(),
    hysteresis: int("hysteresis", 0, 2147483647).optional(),
    alpha: bool("alpha").optional(),
    omega: bool("omega").optional(),
    quorum_up: script("quorum_up").optional(),
    quorum_down: script("quorum_down").optional(),
    sorry_server: z
      .string({ error: SORRY_FORMS })
      .refine((s) => inetEndpoint(s) !== null, { error: SORRY_FORMS })
      .optional(),
    real_servers: z.array(realServerSchema, { error: "real_servers must be a list" }).optional(),
    // FULLNAT local addresses of this service (DPVS's ipvsadm -P -z / laddr_group_name), either
    // family; which family a service takes is checked with the model (validateModel).
    local_addresses: z
      .array(inet("local_addresses entry"), { error: "local_addresses must be a list of addresses" })
      .optional(),
    // Access lists (docs/acl.md; DPVS's blacklist/whitelist): addresses or prefixes ADDR/LEN.
    deny: aclList("deny").optional(),
    allow: aclList("allow").optional(),
    // The per-source new-connection rate limit (docs/acl.md).
    conn_limit: z
      .strictObject(
        {
          rate: int("conn_limit.rate", 1, 1e9),
          burst: int("conn_limit.burst", 1, 1e9).optional(),
          prefix4: int("conn_limit.prefix4", 1, 32).optional(),
          prefix6: int("conn_limit.prefix6", 1, 128).optional(),
        },
        { error: "conn_limit is a mapping: rate, and optionally burst, prefix4, prefix6" },
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
    if (v.syn_proxy === true) {
      const kind = v.lb_kind ?? DEFAULTS.lbKind;
      const why =
        v.fwmark !== undefined || (v.protocol !== undefined && v.protocol.toLowerCase() !== "tcp")
          ? "syn_proxy is for TCP address:port virtual servers only"
          : kind !== "NAT" && kind !== "FULLNAT"
            ? `syn_proxy needs lb_kind NAT or FULLNAT (${kind} replies bypass the director)`
            : null;
      if (why !== null) ctx.addIssue({ code: "custom", message: why, path: ["syn_proxy"] });
    }
    // ipvsadm's check: sh-/mh- flags only with their scheduler (its message).
    const sched = v.scheduler ?? DEFAULTS.scheduler;
    (v.scheduler_flags ?? []).forEach((n, i) => {
      if ((n.startsWith("sh-") || n.startsWith("mh-")) && n.slice(0, 2) !== sched)
        ctx.addIssue({
          code: "custom",
          message: `incompatible scheduler flag \`${n}'`,
          path: ["scheduler_flags", i],
        });
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
// keywords, as YAML keys (docs/config.md). Durations are seconds, as in keepalived.conf. An
// instance's addresses are IPv4 or IPv6; its family is keepalived's (config/vrrp.ts buildHa).
const vrrpIpv4 = (name: string) =>
  checked(`${name} must be an IPv4 address`, (s) =>
    parseIPv4(s) === null ? `${name} must be an IPv4 address` : null,
  );
const vrrpIp = (name: string) =>
  checked(`${name} must be an IPv4 or IPv6 address`, (s) =>
    (s.includes(":") ? parseIPv6(s) : parseIPv4(s)) === null
      ? `${name} must be an IPv4 or IPv6 address`
      : null,
  );
const VIP_FORM = "an address must be A.B.C.D[/PREFIX] or an IPv6 address[/PREFIX]";
const vipString = checked(VIP_FORM, (s) => (parseVip(s) === null ? VIP_FORM : null));
const vipSchema = z.union(
  [
    vipString,
    z.strictObject({ address: vipString, dev: z.string({ error: "dev must be a name" }).optional() }),
  ],
  { error: "an address is ADDRESS[/PREFIX] or { address, dev }" },
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
  native_ipv6: bool("native_ipv6").optional(),
  unicast_src_ip: vrrpIp("unicast_src_ip").optional(),
  unicast_peer: z.array(vrrpIp("unicast_peer entry"), { error: "unicast_peer must be a list" }).optional(),
  mcast_dst_ip: vrrpIp("mcast_dst_ip")
    .refine((s) => (s.includes(":") ? isLinkLocalMulticast6(s) : (parseIPv4(s) ?? 0) >>> 28 === 0xe), {
      error: "mcast_dst_ip must be a multicast address (IPv6: link-local, ff02::/16)",
    })
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
  notify_deleted: z
    .union([z.boolean(), z.string()], { error: "notify_deleted must be true, false or a command line" })
    .optional(),
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
    garp_interval: z
      .number({ error: "garp_interval must be 0.000001..4294 seconds" })
      .min(0.000001, { error: "garp_interval must be 0.000001..4294 seconds" })
      .max(4294, { error: "garp_interval must be 0.000001..4294 seconds" })
      .optional(),
    gna_interval: z
      .number({ error: "gna_interval must be 0.000001..4294 seconds" })
      .min(0.000001, { error: "gna_interval must be 0.000001..4294 seconds" })
      .max(4294, { error: "gna_interval must be 0.000001..4294 seconds" })
      .optional(),
    instances: z.array(instanceSchema, { error: "instances must be a list" }).optional(),
    sync_groups: z.array(syncGroupSchema, { error: "sync_groups must be a list" }).optional(),
    scripts: z.array(scriptSchema, { error: "scripts must be a list" }).optional(),
    lvs_sync_daemon: syncDaemonSchema.optional(),
  },
  { error: "vrrp must be a mapping (router_id, instances, sync_groups, scripts, lvs_sync_daemon)" },
);

// The bgp section (docs/scale-out.md): the director's BIRD, its BGP sessions and timers. The VIPs
// are the virtual servers' addresses; bird.ts validates the whole (AS numbers, timers, families).
const bgpNeighborSchema = z.strictObject({
  address: inet("address"),
  as: int("as", 1, 4294967295),
  port: port("port").optional(),
  password: z.string({ error: "password must be a string" }).optional(),
  bfd: bool("bfd").optional(),
});
const pathString = (name: string) =>
  z.string({ error: `${name} must be a path` }).min(1, { error: `${name} must not be empty` });
const bgpSchema = z.strictObject(
  {
    router_id: vrrpIpv4("router_id").optional(),
    local_as: int("local_as", 1, 4294967295),
    neighbors: z.array(bgpNeighborSchema, { error: "neighbors must be a list" }),
    hold_time: int("hold_time", 3, 65535).optional(),
    keepalive_time: int("keepalive_time", 1, 65535).optional(),
    connect_retry_time: int("connect_retry_time", 1, 65535).optional(),
    bfd: bool("bfd").optional(),
    liveness_interface: z.string({ error: "liveness_interface must be an interface name" }).optional(),
    warmup: int("warmup", 0, 3600).optional(),
    bird: z
      .strictObject(
        {
          binary: pathString("binary").optional(),
          socket: pathString("socket").optional(),
          config: pathString("config").optional(),
          log: pathString("log").optional(),
          keep_running: bool("keep_running").optional(),
        },
        { error: "bird is a mapping: binary, socket, config, log, keep_running" },
      )
      .optional(),
  },
  { error: "bgp must be a mapping (router_id, local_as, neighbors, hold_time, keepalive_time, bfd, bird)" },
);

const fileSchema = z.strictObject({
  virtual_servers: z.array(virtualServerSchema, { error: "virtual_servers must be a list" }),
  vrrp: vrrpSchema.optional(),
  bgp: bgpSchema.optional(),
});

/** The bgp section as the model's BgpConfig; `at` gives the position of a path's node. */
function bgpOf(b: z.infer<typeof bgpSchema>, at: (path: Path) => SourcePos): BgpConfig {
  return {
    routerId: b.router_id !== undefined ? formatIPv4(parseIPv4(b.router_id) ?? 0) : null,
    localAs: b.local_as,
    neighbors: b.neighbors.map((n) => {
      const out: BgpNeighbor = { address: addrText(inetOf(n.address)), as: n.as };
      if (n.port !== undefined) out.port = n.port;
      if (n.password !== undefined) out.password = n.password;
      if (n.bfd !== undefined) out.bfd = n.bfd;
      return out;
    }),
    holdTime: b.hold_time ?? BGP_DEFAULTS.holdTime,
    keepaliveTime: b.keepalive_time ?? BGP_DEFAULTS.keepaliveTime,
    connectRetryTime: b.connect_retry_time ?? BGP_DEFAULTS.connectRetryTime,
    bfd: b.bfd ?? false,
    livenessIfname: b.liveness_interface ?? BGP_DEFAULTS.livenessIfname,
    ...(b.warmup !== undefined ? { warmup: b.warmup } : {}),
    bird: {
      binary: b.bird?.binary ?? BGP_DEFAULTS.birdBinary,
      socket: b.bird?.socket ?? null,
      config: b.bird?.config ?? null,
      log: b.bird?.log ?? null,
      keepRunning: b.bird?.keep_running ?? false,
    },
    pos: at(["bgp"]),
  };
}

/**
 * bird.ts's checks of the bgp section with the VIPs of the virtual servers, each at the node its
 * message names ("neighbors[1].as: ..." at bgp.neighbors[1].as; "hold_time: ..." at bgp.hold_time).
 */
function bgpDiagnostics(
  bgp: BgpConfig,
  virtualServers: readonly VirtualServerConfig[],
  at: (path: Path) => SourcePos,
): Diagnostic[] {
  return bgpConfigErrors(bgp, bgpVips(virtualServers)).map((message) => {
    const m = /^([a-z_]+)(?:\[(\d+)\])?(?:\.([a-z_]+))?:/.exec(message);
    const path: PropertyKey[] = ["bgp"];
    if (m !== null && m[1] !== "vips4" && m[1] !== "vips6") {
      path.push(m[1]);
      if (m[2] !== undefined) path.push(Number(m[2]));
      if (m[3] !== undefined) path.push(m[3]);
    }
    return { ...at(path), message: `bgp: ${message}` };
  });
}

/**
 * `tsvs daemon --bgp FILE`: the bgp section of a YAML file, for a daemon whose services come from
 * keepalived.conf (which has no BGP); the file's other sections are not read. The VIPs are checked
 * with the daemon's configuration, at start.
 */
export function parseBgpYaml(src: string, file: string): { bgp: BgpConfig; warnings: Diagnostic[] } {
  const lc = new LineCounter();
  const doc = parseDocument(src, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  const at0 = (offset: number): SourcePos => {
    const p = lc.linePos(offset);
    return { file, line: p.line, col: p.col };
  };
  const diag = (e: { message: string; pos: [number, number] }): Diagnostic => ({
    ...at0(e.pos[0]),
    message: e.message.split(/ at line \d+, column \d+|\n/)[0],
  });
  if (doc.errors.length > 0) throw new ConfigError(doc.errors.map(diag));
  const nodeAt = (path: readonly PropertyKey[]): Node | null => {
    let node: unknown = doc.contents;
    for (const k of path) {
      const next = (node as { get?: (k: unknown, keep: boolean) => unknown } | null)?.get?.(k, true);
      if (next === undefined || next === null) break;
      node = next;
    }
    return (node as Node | null) ?? null;
  };
  const at = (path: Path): SourcePos => at0(nodeAt(path)?.range?.[0] ?? 0);
  const data = (doc.toJS() ?? {}) as Record<string, unknown>;
  if (data === null || typeof data !== "object" || data.bgp === undefined)
    throw new ConfigError([{ ...at([]), message: "no bgp section" }]);
  const r = bgpSchema.safeParse(data.bgp);
  if (!r.success)
    throw new ConfigError(
      r.error.issues.map((iss) => {
        const path = ["bgp", ...iss.path];
        if (iss.code === "unrecognized_keys")
          return { ...at(path), message: `unknown key ${iss.keys.map((k) => `"${k}"`).join(", ")}` };
        return { ...at(path), message: iss.message };
      }),
    );
  const bgp = bgpOf(r.data, at);
  const errors = bgpDiagnostics(bgp, [], at);
  if (errors.length > 0) throw new ConfigError(errors);
  const others = Object.keys(data).filter((k) => k !== "bgp");
  return {
    bgp,
    warnings: others.map((k) => ({
      ...at([k]),
      message: `${k}: not read (--bgp reads the bgp section only)`,
    })),
  };
}

/** ADDRESS[/PREFIX] of either family, as keepalived's parse_ipaddress (default /32, /128). */
function parseVip(s: string): VrrpAddr | null {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(s);
  if (m === null) return null;
  if (m[1].includes(":")) {
    const b = parseIPv6(m[1]);
    const prefix = m[2] !== undefined ? Number(m[2]) : 128;
    return b === null || prefix > 128 ? null : { addr: 0, prefix, addr6: formatIPv6(b) };
  }
  const addr = /^[\d.]+$/.test(m[1]) ? parseIPv4(m[1]) : null;
  const prefix = m[2] !== undefined ? Number(m[2]) : 32;
  return addr === null || prefix > 32 ? null : { addr, prefix };
}

type FileConfig = z.infer<typeof fileSchema>;
type VrrpFile = z.infer<typeof vrrpSchema>;
type Path = readonly PropertyKey[];

const nonEmpty = <T>(l: T[] | undefined): T[] | undefined =>
  l === undefined || l.length === 0 ? undefined : l;
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
  if (v.garp_interval !== undefined) d.garpIntervalMs = v.garp_interval * 1000;
  if (v.gna_interval !== undefined) d.gnaIntervalMs = v.gna_interval * 1000;
  const tracks = (list: z.infer<typeof trackSchema>[] | undefined, path: Path): TrackDraft[] =>
    (list ?? []).map((t, i) =>
      typeof t === "string"
        ? { name: t, weight: null, reverse: null, pos: at([...path, i]) }
        : { name: t.name, weight: t.weight ?? null, reverse: t.reverse ?? null, pos: at([...path, i]) },
    );
  const vips = (list: z.infer<typeof vipSchema>[] | undefined): VrrpAddr[] | undefined =>
    list?.map((a) => {
      const v = parseVip(typeof a === "string" ? a : a.address) ?? { addr: 0, prefix: 32 };
      return typeof a === "string" || a.dev === undefined ? v : { ...v, dev: a.dev };
    });
  const v4 = (s: string | undefined): number | undefined =>
    s === undefined || s.includes(":") ? undefined : (parseIPv4(s) ?? 0);
  const v6 = (s: string | undefined): string | undefined => {
    const b = s === undefined || !s.includes(":") ? null : parseIPv6(s);
    return b === null ? undefined : formatIPv6(b);
  };
  const peers4 = (l: string[] | undefined) => l?.filter((p) => !p.includes(":")).map((p) => v4(p) ?? 0);
  const peers6 = (l: string[] | undefined) => l?.flatMap((p) => v6(p) ?? []);
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
      unicastSrc: v4(x.unicast_src_ip),
      unicastPeers: nonEmpty(peers4(x.unicast_peer)),
      mcastDst: v4(x.mcast_dst_ip),
      unicastSrc6: v6(x.unicast_src_ip),
      unicastPeers6: nonEmpty(peers6(x.unicast_peer)),
      mcastDst6: v6(x.mcast_dst_ip),
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
      notifyDeleted: x.notify_deleted === undefined ? undefined : x.notify_deleted !== false,
      notifyDeletedScript: typeof x.notify_deleted === "string" ? x.notify_deleted : undefined,
    };
    inst.set = Object.fromEntries(Object.entries(set).filter(([, e]) => e !== undefined));
    inst.at = {
      vrid: at([...path, "virtual_router_id"]),
      advertInt: at([...path, "advert_int"]),
      auth: at([...path, "auth_pass"]),
      nopreempt: at([...path, "nopreempt"]),
      preemptDelay: at([...path, "preempt_delay"]),
    };
    // What decides the family, in keepalived.conf's usual order (a mapping has no order to keep).
    const claim = (family: 4 | 6, kind: FamilyClaim["kind"], text: string, p: Path) =>
      inst.families.push({ family, kind, text, pos: at(p) });
    const fam = (t: string): 4 | 6 => (t.includes(":") ? 6 : 4);
    if (x.native_ipv6 === true) claim(6, "native_ipv6", "native_ipv6", [...path, "native_ipv6"]);
    (x.virtual_ipaddress ?? []).forEach((a, k) => {
      const t = typeof a === "string" ? a : a.address;
      claim(fam(t), "vip", t, [...path, "virtual_ipaddress", k]);
    });
    if (x.unicast_src_ip !== undefined)
      claim(fam(x.unicast_src_ip), "src", x.unicast_src_ip, [...path, "unicast_src_ip"]);
    (x.unicast_peer ?? []).forEach((p, k) => {
      claim(fam(p), "peer", p, [...path, "unicast_peer", k]);
    });
    if (x.mcast_dst_ip !== undefined)
      claim(fam(x.mcast_dst_ip), "mcast_dst", x.mcast_dst_ip, [...path, "mcast_dst_ip"]);
    if (x.version !== undefined) claim(4, "version", String(x.version), [...path, "version"]);
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
          ...(rs.notify_up !== undefined ? { notifyUp: rs.notify_up } : {}),
          ...(rs.notify_down !== undefined ? { notifyDown: rs.notify_down } : {}),
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
        ...(v.scheduler_flags !== undefined && v.scheduler_flags.length > 0
          ? { schedFlags: v.scheduler_flags.reduce((f, n) => f | SCHED_FLAG_BITS[n], 0) }
          : {}),
        ...(v.syn_proxy === true ? { synproxy: true } : {}),
        ...(v.proxy_protocol !== undefined ? { proxyProtocol: v.proxy_protocol } : {}),
        sorryServer: sorry === null ? null : { ...addrOf(sorry.a), port: sorry.port ?? 0 },
        quorum: v.quorum ?? DEFAULTS.quorum,
        hysteresis: v.hysteresis ?? DEFAULTS.hysteresis,
        alpha: v.alpha ?? false,
        omega: v.omega ?? false,
        ...(v.quorum_up !== undefined ? { quorumUp: v.quorum_up } : {}),
        ...(v.quorum_down !== undefined ? { quorumDown: v.quorum_down } : {}),
        delayLoop: v.delay_loop ?? DEFAULTS.delayLoop,
        realServers,
        ...(v.local_addresses !== undefined
          ? {
              localAddresses: v.local_addresses.map((a, j) => ({
                ...inetOf(a),
                pos: posOf(nodeAt(["virtual_servers", i, "local_addresses", j]).node),
              })),
            }
          : {}),
        ...(v.deny !== undefined ? { deny: [...new Set(v.deny.map(aclText))] } : {}),
        ...(v.allow !== undefined ? { allow: [...new Set(v.allow.map(aclText))] } : {}),
        ...(v.conn_limit !== undefined
          ? {
              connLimit: {
                rate: v.conn_limit.rate,
                burst: v.conn_limit.burst ?? v.conn_limit.rate,
                prefix4: v.conn_limit.prefix4 ?? 32,
                prefix6: v.conn_limit.prefix6 ?? 64,
              },
            }
          : {}),
        pos: posOf(nodeAt(["virtual_servers", i]).node),
      };
    }),
  };
  if (cfg.bgp !== undefined) {
    const bgp = bgpOf(cfg.bgp, (p) => posOf(nodeAt(p).node));
    const bgpErrors = bgpDiagnostics(bgp, model.virtualServers, (p) => posOf(nodeAt(p).node));
    if (bgpErrors.length > 0) throw new ConfigError(bgpErrors);
    Object.assign(model, { bgp });
  }
  const errors = validateModel(model);
  if (errors.length > 0) throw new ConfigError(errors);
  return { model, warnings: [...warnings, ...ha.warnings, ...modelWarnings(model)] };
}

/** A deny/allow list: addresses or prefixes, each checked (acl.ts parseAclPrefix). */
function aclList(name: string) {
  return z.array(
    z.string({ error: `${name} entries are addresses or prefixes (ADDR/LEN)` }).superRefine((t, ctx) => {
      const p = parseAclPrefix(t);
      if (typeof p === "string") ctx.addIssue({ code: "custom", message: `${name}: ${p}` });
    }),
    { error: `${name} must be a list of addresses or prefixes` },
  );
}

/** The canonical text of a rule the schema has checked. */
function aclText(t: string): string {
  return (parseAclPrefix(t) as AclPrefix).text;
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
