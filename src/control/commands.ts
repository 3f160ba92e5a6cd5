// The control commands: what may change a director's state, as typed data. The table commands are
// the core's (struct ip_vs_service_user / ip_vs_dest_user as ipvsadm hands them to libipvs,
// src/core/ctl-types.ts); the director sysctls, fwmark rules and connection sync daemons join them
// here, and later commands (ACLs) will too. Commands that come from outside (the control socket)
// are checked against schemas before anything looks at them.

import { z } from "zod";
import { canonicalIPv6 } from "../core/addr.js";
import type { CtlCommand } from "../core/ctl-types.js";
import { TsvsError } from "../core/errors.js";
import { PP_NAMES } from "../core/packet/proxy-proto.js";
import type { SyncDaemonConfig, SyncRole } from "../core/sync/types.js";

/** `ipvsadm --start-daemon ROLE ...` (IPVS_CMD_NEW_DAEMON): every field filled in (SYNC_DEFAULTS). */
export interface StartDaemonCommand {
  op: "start-daemon";
  daemon: SyncDaemonConfig;
}

/** `ipvsadm --stop-daemon ROLE` (IPVS_CMD_DEL_DAEMON: the kernel looks at the role only). */
export interface StopDaemonCommand {
  op: "stop-daemon";
  role: SyncRole;
}

export type SyncDaemonCommand = StartDaemonCommand | StopDaemonCommand;

export type ControlCommand =
  | CtlCommand
  /** `value2`: a vector sysctl's second int (sync_threshold's period); absent keeps it. */
  | { op: "set-sysctl"; name: string; value: number; value2?: number }
  | { op: "add-fwmark"; rule: string }
  /** `rule`: the rule's text (iptables -D RULE) or its id. */
  | { op: "del-fwmark"; rule: string }
  | { op: "flush-fwmarks" }
  | SyncDaemonCommand;

const TABLE_OPS: ReadonlySet<string> = new Set([
  "add-service",
  "edit-service",
  "del-service",
  "clear",
  "zero",
  "add-dest",
  "edit-dest",
  "del-dest",
  "set-timeout",
  "add-laddr",
  "del-laddr",
  "add-acl",
  "del-acl",
  "set-conn-limit",
]);

export function isTableCommand(c: ControlCommand): c is CtlCommand {
  return TABLE_OPS.has(c.op);
}

/**
 * Sync daemon commands are not the workers' (no engine state changes): the daemon's main thread
 * runs them, as the kernel runs them outside the IPVS table's lock.
 */
export function isSyncDaemonCommand(c: ControlCommand): c is SyncDaemonCommand {
  return c.op === "start-daemon" || c.op === "stop-daemon";
}

/** How a sysctl is held and checked. */
export interface SysctlSpec {
  /** The engine's field (Sysctls in core/engine.ts). */
  field: string;
  /** Largest value accepted (the smallest is 0). */
  max: number;
  /** The engine holds a flag: 0 → false, anything else → true. Otherwise the int itself. */
  flag?: boolean;
  /**
   * A vector sysctl's second int (sync_threshold's sync_period): its field and largest value.
   * As proc_dointvec does, a write with one value sets the first int and keeps the second.
   */
  second?: { field: string; max: number };
  /** A defence mode (proc_do_defense_mode): outside 0..max the kernel answers EINVAL. */
  mode?: boolean;
}

const INT_MAX = 0x7fffffff;

/**
 * The director sysctls, by their /proc/sys/net/ipv4/vs names, with the engine's field and the
 * values accepted (the kernel reads them as plain ints; tsvs refuses values it would not give a
 * meaning). The sync ones are Documentation/networking/ipvs-sysctl.rst's, checked as
 * ip_vs_ctl.c's handlers check them.
 */
export const SYSCTLS: Readonly<Record<string, SysctlSpec>> = {
  conn_reuse_mode: { field: "connReuseMode", max: 3 },
  expire_nodest_conn: { field: "expireNodestConn", max: 1, flag: true },
  expire_quiescent_template: { field: "expireQuiescentTemplate", max: 1, flag: true },
  sloppy_tcp: { field: "sloppyTcp", max: 1, flag: true },
  // proc_do_sync_threshold: both >= 0, and threshold < period unless period is 0 (sync once).
  sync_threshold: { field: "syncThreshold", max: INT_MAX, second: { field: "syncPeriod", max: INT_MAX } },
  // proc_dointvec_jiffies: seconds, refused above INT_MAX / HZ (HZ 1000 is the tightest).
  sync_refresh_period: { field: "syncRefreshPeriod", max: Math.floor(INT_MAX / 1000) },
  // proc_dointvec_minmax 0..3.
  sync_retries: { field: "syncRetries", max: 3 },
  // proc_do_sync_mode: 0 or 1.
  sync_version: { field: "syncVersion", max: 1 },
  // 0 or 1 (the kernel takes any int; only 1 changes anything).
  sync_persist_mode: { field: "syncPersistMode", max: 1 },
  // tsvs: the table refresh to a joining peer (core/sync/refresh.ts, docs/ha.md).
  sync_table_refresh: { field: "syncTableRefresh", max: 2 },
  sync_table_rate: { field: "syncTableRate", max: 1_000_000 },
  // The defence against table exhaustion (core/defense.ts). amemthresh and am_droprate are
  // proc_dointvec ints (a negative one has no meaning); the modes are proc_do_defense_mode's 0..3.
  amemthresh: { field: "amemthresh", max: INT_MAX },
  am_droprate: { field: "amDroprate", max: INT_MAX },
  drop_entry: { field: "dropEntry", max: 3, mode: true },
  drop_packet: { field: "dropPacket", max: 3, mode: true },
  secure_tcp: { field: "secureTcp", max: 3, mode: true },
};

/**
 * The sysctls whose write reruns update_defense_level at once (proc_do_defense_mode: the three
 * modes; amemthresh and am_droprate are read at the next second).
 */
export function isDefenseMode(name: string): boolean {
  return SYSCTLS[name]?.mode === true;
}

/** A sysctl's value as /proc holds it: one int, or a vector of two (sync_threshold). */
export type SysctlValue = number | [number, number];

/** As sysctl(8) and /proc print it: a vector's ints separated by a tab. */
export function formatSysctlValue(v: SysctlValue): string {
  return typeof v === "number" ? String(v) : v.join("\t");
}

function rangeError(name: string, raw: string, max: number): string {
  if (SYSCTLS[name]?.mode === true)
    return `${name}: Invalid argument (EINVAL): a defence mode is 0..${max}, not ${JSON.stringify(raw)}`;
  return `${name}: value must be an integer 0..${max}, not ${JSON.stringify(raw)}`;
}

/**
 * "NAME" or "NAME=VALUE" (NAME also as net.ipv4.vs.NAME) → name and value, or why not. A vector
 * sysctl takes "A B" (as /proc reads it: blanks or tabs), "A,B" or "A" (keeps the second int);
 * its second int comes back as `value2`.
 */
export function parseSysctlArg(
  arg: string,
): { name: string; value?: number; value2?: number } | { error: string } {
  const eq = arg.indexOf("=");
  const name = (eq < 0 ? arg : arg.slice(0, eq)).trim().replace(/^net\.ipv4\.vs\./, "");
  const spec = SYSCTLS[name];
  if (spec === undefined)
    return { error: `unknown sysctl ${JSON.stringify(name)} (known: ${Object.keys(SYSCTLS).join(", ")})` };
  if (eq < 0) return { name };
  const raw = arg.slice(eq + 1).trim();
  const parts = raw === "" ? [] : spec.second === undefined ? [raw] : raw.split(/\s*,\s*|\s+/);
  const int = (s: string, max: number): number | null => {
    if (!/^\d+$/.test(s)) return null;
    const n = Number(s);
    return n <= max ? n : null;
  };
  if (spec.second === undefined) {
    const value = parts.length === 1 ? int(parts[0], spec.max) : null;
    return value === null ? { error: rangeError(name, raw, spec.max) } : { name, value };
  }
  const value = parts.length >= 1 && parts.length <= 2 ? int(parts[0], spec.max) : null;
  const value2 = parts.length === 2 ? int(parts[1], spec.second.max) : undefined;
  if (value === null || value2 === null)
    return {
      error: `${name}: value must be one or two integers ("A B" or "A,B", 0..${spec.max}), not ${JSON.stringify(raw)}`,
    };
  return value2 === undefined ? { name, value } : { name, value, value2 };
}

/**
 * Why NAME=VALUE [VALUE2] is refused, given the engine's current values (`current`, the Sysctls
 * object), or null when it is accepted. Checks what the kernel's handler checks, including the
 * values together (sync_threshold's threshold below its period, the period kept when not given).
 */
export function sysctlError(
  name: string,
  value: number,
  value2: number | undefined,
  current: Readonly<Record<string, unknown>>,
): string | null {
  const spec = SYSCTLS[name];
  if (spec === undefined) return `unknown sysctl ${name}`;
  if (!Number.isInteger(value) || value < 0 || value > spec.max)
    return rangeError(name, String(value), spec.max);
  if (spec.second === undefined) return value2 === undefined ? null : `${name} takes one value`;
  if (value2 !== undefined && (!Number.isInteger(value2) || value2 < 0 || value2 > spec.second.max))
    return rangeError(name, String(value2), spec.second.max);
  const period = value2 ?? Number(current[spec.second.field] ?? 0);
  if (period !== 0 && value >= period)
    return `${name}: the threshold (${value}) must be below the period (${period}) unless the period is 0`;
  return null;
}

/** The engine fields NAME=VALUE [VALUE2] sets (check it with sysctlError first). */
export function sysctlFields(name: string, value: number, value2?: number): Record<string, number | boolean> {
  const spec = SYSCTLS[name];
  if (spec === undefined) return {};
  const out: Record<string, number | boolean> = { [spec.field]: spec.flag === true ? value !== 0 : value };
  if (spec.second !== undefined && value2 !== undefined) out[spec.second.field] = value2;
  return out;
}

/** NAME's value read from the engine's fields (`current`, the Sysctls object); flags read as 0/1. */
export function sysctlValue(
  name: string,
  current: Readonly<Record<string, unknown>>,
): SysctlValue | undefined {
  const spec = SYSCTLS[name];
  if (spec === undefined) return undefined;
  const first = Number(current[spec.field] ?? 0);
  return spec.second === undefined ? first : [first, Number(current[spec.second.field] ?? 0)];
}

// --- the wire form ---------------------------------------------------------------------------

const u32 = z.number().int().min(0).max(0xffffffff);
const u16 = z.number().int().min(0).max(0xffff);
const intMax = z.number().int().min(0).max(0x7fffffff);
const af = z.union([z.literal(4), z.literal(6)]);
const protocol = z.union([z.literal(0), z.literal(6), z.literal(17), z.literal(132)]);

/** An IPv6 address as text: any form inet_pton takes, carried on in the form inet_ntop prints. */
const ipv6Text = z.string().transform((s, ctx) => {
  const c = canonicalIPv6(s);
  if (c === null) {
    ctx.addIssue({ code: "custom", message: `not an IPv6 address: ${JSON.stringify(s)}` });
    return z.NEVER;
  }
  return c;
});
const serviceKey = z.strictObject({
  af,
  protocol,
  addr: u32,
  addr6: ipv6Text.optional(),
  port: u16,
  fwmark: u32,
});
const serviceSpec = serviceKey.extend({
  schedName: z.string().max(15),
  flags: u32,
  timeout: intMax,
  netmask: u32,
  peName: z.string().max(16),
  proxyProtocol: z.enum(PP_NAMES).optional(),
});
const destSpec = z.strictObject({
  af,
  addr: u32,
  addr6: ipv6Text.optional(),
  port: u16,
  // Fwd: Masq 0, Local 1, Tunnel 2, Route 3, FullNat 5 (Bypass is never configured).
  fwd: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3), z.literal(5)]),
  weight: u16,
  uThreshold: intMax,
  lThreshold: intMax,
  tunType: z.union([z.literal(0), z.literal(1), z.literal(2)]),
  tunPort: u16,
  tunFlags: z.union([z.literal(0), z.literal(1), z.literal(2)]),
});
const timeoutSpec = z.strictObject({ tcp: intMax, tcpFin: intMax, udp: intMax });
const syncRole = z.enum(["master", "backup"]);
/** struct ip_vs_daemon_user as ipvsadm checks it (parse_options); IPv4 groups only (u32). */
export const syncDaemonConfigSchema = z.strictObject({
  role: syncRole,
  // IP_VS_IFNAME_MAXLEN 16, with its NUL.
  iface: z.string().min(1).max(15),
  syncid: z.number().int().min(0).max(255),
  // 65535 - IPv4 header (20) - UDP header (8): ipvsadm's bound.
  maxlen: z
    .number()
    .int()
    .min(1)
    .max(65535 - 20 - 8),
  group: u32.refine((g) => g >>> 28 === 0xe, { message: "group must be an IPv4 multicast address" }),
  port: z.number().int().min(1).max(65535),
  ttl: z.number().int().min(1).max(255),
});

const commandSchema = z.discriminatedUnion("op", [
  z.strictObject({ op: z.literal("add-service"), svc: serviceSpec }),
  z.strictObject({ op: z.literal("edit-service"), svc: serviceSpec }),
  z.strictObject({ op: z.literal("del-service"), key: serviceKey }),
  z.strictObject({ op: z.literal("clear") }),
  z.strictObject({ op: z.literal("zero"), key: serviceKey.nullable() }),
  z.strictObject({ op: z.literal("add-dest"), key: serviceKey, dest: destSpec }),
  z.strictObject({ op: z.literal("edit-dest"), key: serviceKey, dest: destSpec }),
  z.strictObject({
    op: z.literal("del-dest"),
    key: serviceKey,
    addr: u32,
    addr6: ipv6Text.optional(),
    port: u16,
  }),
  z.strictObject({ op: z.literal("set-timeout"), timeouts: timeoutSpec }),
  z.strictObject({ op: z.literal("add-laddr"), key: serviceKey, addr: u32, addr6: ipv6Text.optional() }),
  z.strictObject({ op: z.literal("del-laddr"), key: serviceKey, addr: u32, addr6: ipv6Text.optional() }),
  z.strictObject({
    op: z.enum(["add-acl", "del-acl"]),
    key: serviceKey,
    list: z.enum(["deny", "allow"]),
    rule: z.string().max(64),
  }),
  z.strictObject({
    op: z.literal("set-conn-limit"),
    key: serviceKey,
    limit: z.strictObject({
      rate: z.number().int().min(0),
      burst: z.number().int().min(1),
      prefix4: z.number().int().min(1).max(32),
      prefix6: z.number().int().min(1).max(128),
    }),
  }),
  z.strictObject({
    op: z.literal("set-sysctl"),
    name: z.string(),
    value: z.number().int(),
    value2: z.number().int().optional(),
  }),
  z.strictObject({ op: z.literal("add-fwmark"), rule: z.string().min(1).max(4096) }),
  z.strictObject({ op: z.literal("del-fwmark"), rule: z.string().min(1).max(4096) }),
  z.strictObject({ op: z.literal("flush-fwmarks") }),
  z.strictObject({ op: z.literal("start-daemon"), daemon: syncDaemonConfigSchema }),
  z.strictObject({ op: z.literal("stop-daemon"), role: syncRole }),
]);

/** Most commands one batch may carry (a -R file with every rule of a large site fits). */
export const MAX_BATCH = 100_000;

/**
 * Checks commands that came from outside (JSON) and returns them typed. Throws TsvsError
 * (TSVS_ERR_INVALID) naming the first bad command by its position and what is wrong with it.
 */
export function parseCommands(v: unknown): ControlCommand[] {
  if (!Array.isArray(v)) throw new TsvsError("TSVS_ERR_INVALID", "commands must be an array");
  if (v.length > MAX_BATCH)
    throw new TsvsError("TSVS_ERR_INVALID", `at most ${MAX_BATCH} commands in one batch`);
  return v.map((c, i) => {
    const r = commandSchema.safeParse(c);
    if (r.success) return r.data as ControlCommand;
    const issue = r.error.issues[0];
    const where = issue.path.length > 0 ? ` at ${issue.path.join(".")}` : "";
    throw new TsvsError("TSVS_ERR_INVALID", `command ${i}${where}: ${issue.message}`);
  });
}
