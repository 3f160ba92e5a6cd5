// The control commands: what may change a director's state, as typed data. The table commands are
// the core's (struct ip_vs_service_user / ip_vs_dest_user as ipvsadm hands them to libipvs,
// src/core/ctl-types.ts); the director sysctls and fwmark rules join them here, and later commands
// (sync daemon, ACLs) will too. Commands that come from outside (the control socket) are checked
// against schemas before anything looks at them.

import { z } from "zod";
import type { CtlCommand } from "../core/ctl-types.js";
import { TsvsError } from "../core/errors.js";

export type ControlCommand =
  | CtlCommand
  | { op: "set-sysctl"; name: string; value: number }
  | { op: "add-fwmark"; rule: string }
  /** `rule`: the rule's text (iptables -D RULE) or its id. */
  | { op: "del-fwmark"; rule: string }
  | { op: "flush-fwmarks" };

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
]);

export function isTableCommand(c: ControlCommand): c is CtlCommand {
  return TABLE_OPS.has(c.op);
}

/**
 * The director sysctls, by their /proc/sys/net/ipv4/vs names, with the engine's field and the
 * values accepted (the kernel reads them as plain ints; tsvs refuses values it would not give a
 * meaning).
 */
export const SYSCTLS: Readonly<Record<string, { field: string; max: number }>> = {
  conn_reuse_mode: { field: "connReuseMode", max: 3 },
  expire_nodest_conn: { field: "expireNodestConn", max: 1 },
  expire_quiescent_template: { field: "expireQuiescentTemplate", max: 1 },
  sloppy_tcp: { field: "sloppyTcp", max: 1 },
};

/** "NAME" or "NAME=VALUE" (NAME also as net.ipv4.vs.NAME) → name and value, or why not. */
export function parseSysctlArg(arg: string): { name: string; value?: number } | { error: string } {
  const eq = arg.indexOf("=");
  const name = (eq < 0 ? arg : arg.slice(0, eq)).trim().replace(/^net\.ipv4\.vs\./, "");
  if (SYSCTLS[name] === undefined)
    return { error: `unknown sysctl ${JSON.stringify(name)} (known: ${Object.keys(SYSCTLS).join(", ")})` };
  if (eq < 0) return { name };
  const raw = arg.slice(eq + 1).trim();
  const value = Number(raw);
  const max = SYSCTLS[name].max;
  if (raw === "" || !Number.isInteger(value) || value < 0 || value > max)
    return { error: `${name}: value must be an integer 0..${max}, not ${JSON.stringify(raw)}` };
  return { name, value };
}

// --- the wire form ---------------------------------------------------------------------------

const u32 = z.number().int().min(0).max(0xffffffff);
const u16 = z.number().int().min(0).max(0xffff);
const intMax = z.number().int().min(0).max(0x7fffffff);
const af = z.union([z.literal(4), z.literal(6)]);
const protocol = z.union([z.literal(0), z.literal(6), z.literal(17), z.literal(132)]);

const serviceKey = z.strictObject({ af, protocol, addr: u32, port: u16, fwmark: u32 });
const serviceSpec = z.strictObject({
  af,
  protocol,
  addr: u32,
  port: u16,
  fwmark: u32,
  schedName: z.string().max(15),
  flags: u32,
  timeout: intMax,
  netmask: u32,
  peName: z.string().max(16),
});
const destSpec = z.strictObject({
  af,
  addr: u32,
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

const commandSchema = z.discriminatedUnion("op", [
  z.strictObject({ op: z.literal("add-service"), svc: serviceSpec }),
  z.strictObject({ op: z.literal("edit-service"), svc: serviceSpec }),
  z.strictObject({ op: z.literal("del-service"), key: serviceKey }),
  z.strictObject({ op: z.literal("clear") }),
  z.strictObject({ op: z.literal("zero"), key: serviceKey.nullable() }),
  z.strictObject({ op: z.literal("add-dest"), key: serviceKey, dest: destSpec }),
  z.strictObject({ op: z.literal("edit-dest"), key: serviceKey, dest: destSpec }),
  z.strictObject({ op: z.literal("del-dest"), key: serviceKey, addr: u32, port: u16 }),
  z.strictObject({ op: z.literal("set-timeout"), timeouts: timeoutSpec }),
  z.strictObject({ op: z.literal("add-laddr"), key: serviceKey, addr: u32 }),
  z.strictObject({ op: z.literal("del-laddr"), key: serviceKey, addr: u32 }),
  z.strictObject({ op: z.literal("set-sysctl"), name: z.string(), value: z.number().int() }),
  z.strictObject({ op: z.literal("add-fwmark"), rule: z.string().min(1).max(4096) }),
  z.strictObject({ op: z.literal("del-fwmark"), rule: z.string().min(1).max(4096) }),
  z.strictObject({ op: z.literal("flush-fwmarks") }),
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
