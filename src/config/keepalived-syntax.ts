// keepalived.conf syntax shared by the LVS part (keepalived.ts) and the VRRP part
// (keepalived-vrrp.ts): tokens, statements, and the argument readers that turn a bad value into
// a diagnostic at its line and column.

import { type InetFields, inetFields } from "../control/spec.js";
import { parseIPv4 } from "../core/addr.js";
import type { Diagnostic, SourcePos } from "./model.js";

export interface KaToken {
  text: string;
  line: number;
  col: number;
  quoted: boolean;
}

export interface KaStatement {
  keyword: KaToken;
  args: KaToken[];
  /** The "{ ... }" block, null when the statement has none. */
  block: KaStatement[] | null;
}

export interface Ctx {
  file: string;
  warnings: Diagnostic[];
  errors: Diagnostic[];
}

export function pos(ctx: Ctx, t: KaToken): SourcePos {
  return { file: ctx.file, line: t.line, col: t.col };
}

export function warn(ctx: Ctx, t: KaToken, message: string): void {
  ctx.warnings.push({ ...pos(ctx, t), message });
}

export function error(ctx: Ctx, t: KaToken, message: string): void {
  ctx.errors.push({ ...pos(ctx, t), message });
}

export function arg(ctx: Ctx, st: KaStatement, k: number, what: string): KaToken | null {
  const a = st.args[k];
  if (a === undefined) {
    error(ctx, st.keyword, `${st.keyword.text}: missing ${what}`);
    return null;
  }
  return a;
}

export function num(ctx: Ctx, st: KaStatement, lo: number, hi: number, k = 0): number | null {
  const a = arg(ctx, st, k, "value");
  if (a === null) return null;
  const v = /^\d+(\.\d+)?$/.test(a.text) ? Number(a.text) : Number.NaN;
  if (!(v >= lo && v <= hi)) {
    error(ctx, a, `${st.keyword.text} must be ${lo}..${hi}, not "${a.text}"`);
    return null;
  }
  return v;
}

export function int(ctx: Ctx, st: KaStatement, lo: number, hi: number, k = 0): number | null {
  const v = num(ctx, st, lo, hi, k);
  if (v !== null && !Number.isInteger(v)) {
    error(ctx, st.args[k], `${st.keyword.text} must be an integer`);
    return null;
  }
  return v;
}

/**
 * An address that can only be IPv4 where tsvs reads it (vrrp_mcast_group4, and the VRRP keywords
 * whose IPv6 forms keepalived-vrrp.ts handles before it asks). The LVS part takes either family
 * everywhere (inet).
 */
export function ip(ctx: Ctx, t: KaToken | null): number | null {
  if (t === null) return null;
  const v = parseIPv4(t.text);
  if (v === null) error(ctx, t, `"${t.text}" is not an IPv4 address`);
  return v;
}

/** An address of either family (keepalived's inet_stosockaddr: a ':' makes it IPv6). */
export function inet(ctx: Ctx, t: KaToken | null): InetFields | null {
  if (t === null) return null;
  const v = inetFields(t.text);
  if (v === null) error(ctx, t, `"${t.text}" is not an IPv4 or IPv6 address`);
  return v;
}

export function port(ctx: Ctx, t: KaToken | undefined): number | null {
  if (t === undefined) return 0;
  const v = /^\d+$/.test(t.text) ? Number(t.text) : -1;
  if (v < 0 || v > 65535) {
    error(ctx, t, `port must be 0..65535, not "${t.text}"`);
    return null;
  }
  return v;
}

/** keepalived's boolean keywords: no argument = on. */
export function flag(ctx: Ctx, st: KaStatement): boolean {
  const a = st.args[0];
  if (a === undefined) return true;
  const t = a.text.toLowerCase();
  if (t === "on" || t === "true" || t === "yes") return true;
  if (t === "off" || t === "false" || t === "no") return false;
  error(ctx, a, `${st.keyword.text} takes on/off, not "${a.text}"`);
  return false;
}

export function unknown(ctx: Ctx, st: KaStatement, where: string): void {
  warn(ctx, st.keyword, `${st.keyword.text} in ${where} is not supported by tsvs (ignored)`);
}

export function noBlock(ctx: Ctx, st: KaStatement): void {
  if (st.block !== null) error(ctx, st.keyword, `${st.keyword.text} does not take a block`);
}

/** A notify_* line: the (quoted) command line, then keepalived's optional user and group. */
export function notifyScript(ctx: Ctx, st: KaStatement): string | null {
  const a = arg(ctx, st, 0, "script");
  if (a === null) return null;
  if (st.args.length > 1)
    warn(
      ctx,
      st.args[1],
      `${st.keyword.text}: "${st.args
        .slice(1)
        .map((x) => x.text)
        .join(" ")}" is keepalived's script user/group` +
        " (ignored: scripts run as the daemon's user); quote the command line to pass arguments",
    );
  return a.text;
}
