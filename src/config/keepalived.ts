// keepalived.conf, the LVS part (keepalived's check/check_parser.c and check_*.c keyword
// sets): virtual_server, virtual_server_group, real_server and the TCP_CHECK, HTTP_GET,
// SSL_GET, MISC_CHECK and DNS_CHECK checkers; from DPVS's keepalived, local_address_group and
// laddr_group_name (FULLNAT local addresses per virtual server, IPv4 or IPv6).
//
// IPv6 as keepalived takes it: an address with a ':' is IPv6 (inet_stosockaddr), real and sorry
// servers have the virtual server's family unless tunnelled, a fwmark service's family is
// ip_family's or its servers' (model.ts vsFamily), and an IPv6 persistence_granularity is a prefix
// length (pgr_handler).
//
// The syntax is keepalived's: one keyword a line with its arguments, "{ ... }" opening a
// block (on the same line or alone), comments from '#' or '!' to the end of the line,
// double-quoted strings. global_defs, vrrp_instance, vrrp_sync_group and vrrp_script are read
// by keepalived-vrrp.ts. Everything tsvs does not implement (notify_up, track_file, ...) is
// named in a warning with its line, never silently dropped; `include` is refused with a
// warning (tsvs reads one file).

import { addrText } from "../control/snapshot.js";
import { IPPROTO_TCP, inetFields } from "../control/spec.js";
import { parseAclPrefix } from "../core/acl.js";
import { formatIPv4, ipv6TextWords, ipv6WordsText } from "../core/addr.js";
import { SCHED_FLAG_BITS } from "../core/service.js";
import {
  arg,
  type Ctx,
  error,
  flag,
  inet,
  int,
  type KaStatement,
  type KaToken,
  noBlock,
  notifyScript,
  num,
  port,
  pos,
  unknown,
  warn,
} from "./keepalived-syntax.js";
import {
  finishKeepalivedHa,
  parseGlobalDefs,
  parseSyncGroup,
  parseVrrpInstance,
  parseVrrpScript,
} from "./keepalived-vrrp.js";
import {
  type CheckCommon,
  type CheckSpec,
  ConfigError,
  type ConfigModel,
  DEFAULTS,
  fullGranularity,
  type HttpUrl,
  LB_KINDS,
  type LbKind,
  type LocalAddress,
  modelWarnings,
  type ParsedConfig,
  parseNetmask,
  parseProtocol,
  type RealServerConfig,
  type VirtualServerConfig,
  validateModel,
  vsFamily,
} from "./model.js";
import { buildHa, emptyDraft, emptyHa } from "./vrrp.js";

export type { KaStatement, KaToken } from "./keepalived-syntax.js";

/** Splits keepalived syntax into words; '{' and '}' are words of their own. */
export function tokenize(src: string): KaToken[] {
  const out: KaToken[] = [];
  let line = 1;
  let lineStart = 0;
  let i = 0;
  const n = src.length;
  while (i < n) {
    const c = src[i];
    if (c === "\n") {
      out.push({ text: "\n", line, col: i - lineStart + 1, quoted: false });
      line++;
      i++;
      lineStart = i;
      continue;
    }
    if (c === " " || c === "\t" || c === "\r") {
      i++;
      continue;
    }
    if (c === "#" || c === "!") {
      while (i < n && src[i] !== "\n") i++;
      continue;
    }
    const col = i - lineStart + 1;
    if (c === "{" || c === "}") {
      out.push({ text: c, line, col, quoted: false });
      i++;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      let text = "";
      while (j < n && src[j] !== '"' && src[j] !== "\n") {
        if (src[j] === "\\" && j + 1 < n && src[j + 1] !== "\n") j++;
        text += src[j++];
      }
      if (j >= n || src[j] !== '"')
        throw new ConfigError([{ file: "", line, col, message: "unterminated string" }]);
      out.push({ text, line, col, quoted: true });
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < n && !" \t\r\n{}".includes(src[j]) && src[j] !== "#" && src[j] !== "!") j++;
    out.push({ text: src.slice(i, j), line, col, quoted: false });
    i = j;
  }
  out.push({ text: "\n", line, col: i - lineStart + 1, quoted: false });
  return out;
}

/** Groups tokens into statements and blocks; throws ConfigError on unbalanced braces. */
export function parseStatements(tokens: readonly KaToken[], file: string): KaStatement[] {
  let i = 0;
  const err = (t: KaToken, message: string): never => {
    throw new ConfigError([{ file, line: t.line, col: t.col, message }]);
  };
  const block = (depth: number, open: KaToken | null): KaStatement[] => {
    const stmts: KaStatement[] = [];
    for (;;) {
      const t = tokens[i];
      if (t === undefined) {
        if (open !== null) err(open, "'{' is never closed");
        return stmts;
      }
      if (t.text === "\n" && !t.quoted) {
        i++;
        if (i >= tokens.length && open !== null) err(open, "'{' is never closed");
        continue;
      }
      if (t.text === "}" && !t.quoted) {
        if (depth === 0) err(t, "unexpected '}'");
        i++;
        return stmts;
      }
      if (t.text === "{" && !t.quoted) {
        // A bare block (keepalived allows "{" on the line after its keyword).
        const prev = stmts[stmts.length - 1];
        if (prev === undefined || prev.block !== null) err(t, "'{' without a keyword");
        i++;
        prev.block = block(depth + 1, t);
        continue;
      }
      const st: KaStatement = { keyword: t, args: [], block: null };
      i++;
      while (i < tokens.length) {
        const a = tokens[i];
        if (a.quoted || (a.text !== "\n" && a.text !== "{" && a.text !== "}")) {
          st.args.push(a);
          i++;
          continue;
        }
        if (a.text === "{") {
          i++;
          st.block = block(depth + 1, a);
        }
        break;
      }
      stmts.push(st);
    }
  };
  return block(0, null);
}

/** Top-level sections tsvs knows it does not implement (a warning, not an error). */
const IGNORED_TOP = new Set([
  "vrrp_track_process",
  "track_file",
  "static_ipaddress",
  "static_routes",
  "static_rules",
  "linkbeat_interfaces",
  "net_namespace",
  "garp_group",
  "bfd_instance",
]);

type CheckKind = "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "DNS_CHECK";
const CHECKERS = new Set<string>([
  "TCP_CHECK",
  "HTTP_GET",
  "SSL_GET",
  "MISC_CHECK",
  "DNS_CHECK",
  "SMTP_CHECK",
  "BFD_CHECK",
  "FILE_CHECK",
  "PING_CHECK",
  "UDP_CHECK",
]);

function parseUrl(ctx: Ctx, st: KaStatement): HttpUrl | null {
  const url = { path: "", digest: "", statusCodes: [] as number[] };
  for (const s of st.block ?? []) {
    const kw = s.keyword.text;
    if (kw === "path") url.path = arg(ctx, s, 0, "path")?.text ?? "";
    else if (kw === "digest") {
      const d = arg(ctx, s, 0, "digest");
      if (d !== null && !/^[0-9a-fA-F]{32}$/.test(d.text))
        error(ctx, d, `digest must be 32 hex digits (MD5)`);
      else if (d !== null) url.digest = d.text.toLowerCase();
    } else if (kw === "status_code") {
      // keepalived also takes ranges ("200-299") and lists.
      for (const a of s.args) {
        const m = /^(\d{3})(?:-(\d{3}))?$/.exec(a.text);
        if (m === null) {
          error(ctx, a, `status_code must be a code or a range (200-299), not "${a.text}"`);
          continue;
        }
        const lo = Number(m[1]);
        const hi = m[2] !== undefined ? Number(m[2]) : lo;
        for (let c = lo; c <= hi; c++) url.statusCodes.push(c);
      }
    } else unknown(ctx, s, "url");
  }
  if (url.path === "") {
    error(ctx, st.keyword, "url needs a path");
    return null;
  }
  return url;
}

function parseChecker(ctx: Ctx, st: KaStatement): CheckSpec | null {
  const kind = st.keyword.text as CheckKind;
  const common: CheckCommon = {
    connectTimeout: DEFAULTS.connectTimeout,
    connectPort: 0,
    connectIp: 0,
    retry: DEFAULTS.retry,
    delayBeforeRetry: DEFAULTS.delayBeforeRetry,
  };
  const urls: HttpUrl[] = [];
  let virtualHost = "";
  let name = ".";
  let qtype = "SOA";
  let miscPath = "";
  let miscTimeout = 0;
  for (const s of st.block ?? []) {
    const kw = s.keyword.text;
    switch (kw) {
      case "connect_timeout":
        common.connectTimeout = num(ctx, s, 0.001, 86400) ?? common.connectTimeout;
        continue;
      case "connect_port":
        if (kind !== "MISC_CHECK") {
          common.connectPort = port(ctx, arg(ctx, s, 0, "port") ?? undefined) ?? 0;
          continue;
        }
        break;
      case "connect_ip":
        if (kind !== "MISC_CHECK") {
          const a = inet(ctx, arg(ctx, s, 0, "address"));
          common.connectIp = a?.addr ?? 0;
          if (a?.addr6 !== undefined) common.connectIp6 = a.addr6;
          else delete common.connectIp6;
          continue;
        }
        break;
      case "bindto":
        if (kind !== "MISC_CHECK") {
          const a = inet(ctx, arg(ctx, s, 0, "address"));
          if (a !== null) common.bindTo = addrText(a);
          continue;
        }
        break;
      case "retry":
      case "nb_get_retry":
        common.retry = int(ctx, s, 0, 1000000) ?? common.retry;
        continue;
      case "delay_before_retry":
        common.delayBeforeRetry = num(ctx, s, 0, 86400) ?? common.delayBeforeRetry;
        continue;
      case "url":
        if (kind === "HTTP_GET" || kind === "SSL_GET") {
          const u = parseUrl(ctx, s);
          if (u !== null) urls.push(u);
          continue;
        }
        break;
      case "virtualhost":
        if (kind === "HTTP_GET" || kind === "SSL_GET") {
          virtualHost = arg(ctx, s, 0, "host name")?.text ?? "";
          continue;
        }
        break;
      case "name":
        if (kind === "DNS_CHECK") {
          name = arg(ctx, s, 0, "name")?.text ?? name;
          continue;
        }
        break;
      case "type":
        if (kind === "DNS_CHECK") {
          const a = arg(ctx, s, 0, "type");
          if (a !== null) {
            qtype = a.text.toUpperCase();
            if (!DNS_TYPES.includes(qtype))
              error(ctx, a, `DNS_CHECK type must be one of ${DNS_TYPES.join(", ")}`);
          }
          continue;
        }
        break;
      case "misc_path":
        if (kind === "MISC_CHECK") {
          miscPath = arg(ctx, s, 0, "path")?.text ?? "";
          if (s.args.length > 1) miscPath = s.args.map((a) => a.text).join(" ");
          continue;
        }
        break;
      case "misc_timeout":
        if (kind === "MISC_CHECK") {
          miscTimeout = num(ctx, s, 0.001, 86400) ?? 0;
          continue;
        }
        break;
      default:
        break;
    }
    unknown(ctx, s, kind);
  }
  switch (kind) {
    case "TCP_CHECK":
      return { type: "tcp", ...common };
    case "HTTP_GET":
    case "SSL_GET":
      if (urls.length === 0) {
        error(ctx, st.keyword, `${kind} needs at least one url { path ... }`);
        return null;
      }
      return { type: kind === "HTTP_GET" ? "http" : "https", urls, virtualHost, ...common };
    case "DNS_CHECK":
      return { type: "dns", name, qtype, ...common };
    case "MISC_CHECK":
      if (miscPath === "") {
        error(ctx, st.keyword, "MISC_CHECK needs misc_path");
        return null;
      }
      return {
        type: "misc",
        path: miscPath,
        timeout: miscTimeout,
        retry: common.retry,
        delayBeforeRetry: common.delayBeforeRetry,
      };
  }
}

/** Query types the DNS checker can ask (health/dns.ts). */
export const DNS_TYPES = ["A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"];

function parseRealServer(ctx: Ctx, st: KaStatement): RealServerConfig | null {
  const a = inet(ctx, arg(ctx, st, 0, "address"));
  const p = port(ctx, st.args[1]);
  if (a === null || p === null) return null;
  const rs: RealServerConfig = {
    addr: a.addr,
    ...(a.addr6 !== undefined ? { addr6: a.addr6 } : {}),
    port: p,
    weight: DEFAULTS.weight,
    inhibitOnFailure: false,
    uThreshold: 0,
    lThreshold: 0,
    check: null,
    pos: pos(ctx, st.keyword),
  };
  for (const s of st.block ?? []) {
    const kw = s.keyword.text;
    if (CHECKERS.has(kw)) {
      if (
        kw === "TCP_CHECK" ||
        kw === "HTTP_GET" ||
        kw === "SSL_GET" ||
        kw === "MISC_CHECK" ||
        kw === "DNS_CHECK"
      ) {
        if (rs.check !== null) {
          warn(ctx, s.keyword, `${kw}: tsvs runs one checker per real server, this one is ignored`);
          continue;
        }
        rs.check = parseChecker(ctx, s);
      } else unknown(ctx, s, "real_server");
      continue;
    }
    switch (kw) {
      case "weight":
        noBlock(ctx, s);
        rs.weight = int(ctx, s, 0, 65535) ?? rs.weight;
        break;
      case "inhibit_on_failure":
        rs.inhibitOnFailure = flag(ctx, s);
        break;
      case "uthreshold":
        rs.uThreshold = int(ctx, s, 0, 2147483647) ?? 0;
        break;
      case "lthreshold":
        rs.lThreshold = int(ctx, s, 0, 2147483647) ?? 0;
        break;
      case "notify_up":
      case "notify_down": {
        const script = notifyScript(ctx, s);
        if (script !== null) rs[kw === "notify_up" ? "notifyUp" : "notifyDown"] = script;
        break;
      }
      default:
        unknown(ctx, s, "real_server");
    }
  }
  return rs;
}

interface GroupEntry {
  /** Absent for a fwmark without inet/inet6: the virtual server decides (vsFamily). */
  af?: 4 | 6;
  addr: number;
  addr6?: string;
  port: number;
  fwmark: number;
}

/**
 * virtual_server_group NAME { IP[-LAST] PORT ... fwmark N [inet|inet6] } (check_data.c
 * alloc_vsg_entry). A range runs the last part of the address up to LAST: the last octet of an
 * IPv4 address (decimal), the last group of an IPv6 one (hex, inet_stor).
 */
function parseGroup(ctx: Ctx, st: KaStatement): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const s of st.block ?? []) {
    if (s.keyword.text === "fwmark") {
      const m = int(ctx, s, 1, 4294967295);
      const fam = s.args[1];
      const af = fam === undefined ? undefined : fam.text === "inet" ? 4 : fam.text === "inet6" ? 6 : null;
      if (af === null) error(ctx, fam, `fwmark family must be inet or inet6, not "${fam.text}"`);
      else if (m !== null) out.push({ ...(af !== undefined ? { af } : {}), addr: 0, port: 0, fwmark: m });
      continue;
    }
    const r = groupRange(s.keyword.text);
    if (typeof r === "string") {
      error(ctx, s.keyword, r);
      continue;
    }
    const p = port(ctx, s.args[0]);
    if (p === null) continue;
    for (const a of r) out.push({ ...a, port: p, fwmark: 0 });
  }
  return out;
}

/** The addresses of a group entry "IP" or "IP-LAST" (either family), or why it is not one. */
function groupRange(text: string): Array<{ af: 4 | 6; addr: number; addr6?: string }> | string {
  const dash = text.indexOf("-");
  const first = inetFields(dash < 0 ? text : text.slice(0, dash));
  if (first === null) return `"${text}" is not an address, an address range or fwmark`;
  if (dash < 0) return [first];
  const lastText = text.slice(dash + 1);
  const v6 = first.addr6 !== undefined;
  const last = (v6 ? /^[0-9a-fA-F]{1,4}$/ : /^\d{1,3}$/).test(lastText)
    ? Number.parseInt(lastText, v6 ? 16 : 10)
    : -1;
  const words = v6 ? (ipv6TextWords(first.addr6 as string) as Int32Array) : null;
  const start = words !== null ? words[3] & 0xffff : first.addr & 255;
  if (last < start || last > (v6 ? 0xffff : 255)) return `bad address range "${text}"`;
  const out: Array<{ af: 4 | 6; addr: number; addr6?: string }> = [];
  for (let k = start; k <= last; k++) {
    if (words === null) out.push({ af: 4, addr: (first.addr - start + k) >>> 0 });
    else {
      words[3] = (words[3] & ~0xffff) | k;
      out.push({ af: 6, addr: 0, addr6: ipv6WordsText(words) });
    }
  }
  return out;
}

/**
 * DPVS keepalived's `local_address_group NAME { IP[-LAST] [IFNAME] ... }`: FULLNAT local
 * addresses of either family, a ':' making one IPv6 (check_data.c alloc_laddr_entry,
 * inet_stosockaddr). The interface name is accepted and ignored: tsvs sends by route, whatever
 * interface the address would sit on.
 */
function parseLaddrGroup(ctx: Ctx, st: KaStatement): LocalAddress[] {
  const out: LocalAddress[] = [];
  for (const s of st.block ?? []) {
    const r = laddrRange(s.keyword.text);
    if (typeof r === "string") {
      error(ctx, s.keyword, r);
      continue;
    }
    if (s.args.length > 1) error(ctx, s.args[1], `unexpected "${s.args[1].text}" (IP[-LAST] [IFNAME])`);
    const at = pos(ctx, s.keyword);
    for (const a of r) out.push({ ...a, pos: at });
  }
  return out;
}

/**
 * The addresses of a local address group entry, "IP" or "IP-LAST", or why it is not one. A range
 * is DPVS's (inet_stor, then ipvswrapper.c dpvs_laddr_range_cmd): the address's last byte runs up
 * to LAST, decimal for IPv4 (the last octet), hex for IPv6 (2001:db8::10-1f is ::10 to ::1f; not
 * the last group, as a virtual_server_group range runs), LAST at most 254 (DPVS drops a larger one).
 */
function laddrRange(text: string): Array<{ addr: number; addr6?: string }> | string {
  const dash = text.indexOf("-");
  const first = inetFields(dash < 0 ? text : text.slice(0, dash));
  if (first === null) return `"${text}" is not an address or an address range`;
  const v6 = first.addr6 !== undefined;
  if (dash < 0) return [v6 ? { addr: 0, addr6: first.addr6 } : { addr: first.addr }];
  const lastText = text.slice(dash + 1);
  const last = (v6 ? /^[0-9a-fA-F]{1,4}$/ : /^\d{1,3}$/).test(lastText)
    ? Number.parseInt(lastText, v6 ? 16 : 10)
    : -1;
  const words = v6 ? (ipv6TextWords(first.addr6 as string) as Int32Array) : null;
  const start = words !== null ? words[3] & 255 : first.addr & 255;
  if (last < start || last > 254)
    return v6
      ? `bad address range "${text}": an IPv6 range runs the last byte, LAST in hex up to fe (2001:db8::10-1f)`
      : `bad address range "${text}": the last octet runs up to LAST, at most 254`;
  const out: Array<{ addr: number; addr6?: string }> = [];
  for (let k = start; k <= last; k++) {
    if (words === null) out.push({ addr: (first.addr - start + k) >>> 0 });
    else {
      words[3] = (words[3] & ~255) | k;
      out.push({ addr: 0, addr6: ipv6WordsText(words) });
    }
  }
  return out;
}

/**
 * DPVS keepalived's `deny_address_group NAME { ... }` / `allow_address_group NAME { ... }`
 * (check_data.c alloc_blklst_entry / alloc_whtlst_entry): one entry a line, IP or IP-LAST (a range
 * as local_address_group's); tsvs also takes ADDR/LEN, and has no `ipset:NAME`. Canonical rule
 * texts, each once.
 */
function parseAclGroup(ctx: Ctx, st: KaStatement): string[] {
  const out = new Set<string>();
  for (const s of st.block ?? []) {
    const text = s.keyword.text;
    if (s.args.length > 0)
      error(ctx, s.args[0], `unexpected "${s.args[0].text}" (one address, range or prefix a line)`);
    if (text.startsWith("ipset:")) {
      error(ctx, s.keyword, `"${text}": tsvs has no ipsets; list addresses or prefixes (ADDR/LEN)`);
      continue;
    }
    if (text.includes("/")) {
      const p = parseAclPrefix(text);
      if (typeof p === "string") error(ctx, s.keyword, p);
      else out.add(p.text);
      continue;
    }
    const r = laddrRange(text);
    if (typeof r === "string") {
      error(ctx, s.keyword, r);
      continue;
    }
    for (const a of r) out.add(a.addr6 ?? formatIPv4(a.addr));
  }
  return [...out];
}

function parseVirtualServer(
  ctx: Ctx,
  st: KaStatement,
  groups: ReadonlyMap<string, GroupEntry[]>,
  laddrGroups: ReadonlyMap<string, LocalAddress[]> = new Map(),
  aclGroups: ReadonlyMap<string, string[]> = new Map(),
): VirtualServerConfig[] {
  const a0 = arg(ctx, st, 0, "address, fwmark or group");
  if (a0 === null) return [];
  let targets: GroupEntry[] = [];
  if (a0.text === "fwmark") {
    const m = int(ctx, st, 1, 4294967295, 1);
    if (m === null) return [];
    targets = [{ addr: 0, port: 0, fwmark: m }];
  } else if (a0.text === "group") {
    const g = arg(ctx, st, 1, "group name");
    if (g === null) return [];
    const entries = groups.get(g.text);
    if (entries === undefined) {
      error(ctx, g, `virtual_server_group "${g.text}" is not defined (define it before its use)`);
      return [];
    }
    targets = entries;
  } else {
    const a = inet(ctx, a0);
    const p = port(ctx, st.args[1]);
    if (a === null || p === null) return [];
    targets = [{ ...a, port: p, fwmark: 0 }];
  }
  // Both wait for the block's end: the family may be known only from the real servers.
  let ipFamily: { af: 4 | 6; at: KaToken } | null = null;
  let granularity: KaToken | null = null;
  let synproxyAt: KaToken | null = null;
  const base: Omit<VirtualServerConfig, "af" | "addr" | "port" | "fwmark"> = {
    protocol: IPPROTO_TCP,
    scheduler: DEFAULTS.scheduler,
    persistenceTimeout: 0,
    persistenceGranularity: 0,
    lbKind: DEFAULTS.lbKind,
    onePacket: false,
    sorryServer: null,
    quorum: DEFAULTS.quorum,
    hysteresis: DEFAULTS.hysteresis,
    alpha: false,
    omega: false,
    delayLoop: DEFAULTS.delayLoop,
    realServers: [],
    pos: pos(ctx, st.keyword),
  };
  for (const s of st.block ?? []) {
    const kw = s.keyword.text;
    switch (kw) {
      case "lb_algo":
      case "lvs_sched": {
        const a = arg(ctx, s, 0, "scheduler");
        if (a !== null) base.scheduler = a.text;
        break;
      }
      case "lb_kind":
      case "lvs_method": {
        const a = arg(ctx, s, 0, "method");
        if (a === null) break;
        // DPVS's keepalived spells FULLNAT "FNAT".
        const u = a.text.toUpperCase();
        const k = (u === "FNAT" ? "FULLNAT" : u) as LbKind;
        if (LB_KINDS.includes(k)) base.lbKind = k;
        else error(ctx, a, `${kw} must be NAT, DR, TUN or FULLNAT, not "${a.text}"`);
        break;
      }
      case "persistence_timeout":
        // keepalived: the keyword without a value means ipvsadm's default.
        base.persistenceTimeout =
          s.args.length === 0 ? DEFAULTS.persistenceTimeout : (int(ctx, s, 1, 86400 * 31) ?? 0);
        break;
      case "persistence_granularity":
        granularity = arg(ctx, s, 0, "netmask");
        break;
      case "ip_family": {
        const a = arg(ctx, s, 0, "inet or inet6");
        if (a === null) break;
        if (a.text === "inet" || a.text === "inet6") ipFamily = { af: a.text === "inet" ? 4 : 6, at: a };
        else error(ctx, a, `unknown address family ${a.text} (inet or inet6)`);
        break;
      }
      case "protocol": {
        const a = arg(ctx, s, 0, "protocol");
        if (a === null) break;
        const p = parseProtocol(a.text);
        if (p === null) error(ctx, a, `protocol must be TCP, UDP or SCTP, not "${a.text}"`);
        else base.protocol = p;
        break;
      }
      case "ops":
        base.onePacket = flag(ctx, s);
        break;
      case "flag-1":
      case "flag-2":
      case "flag-3":
      case "sh-port":
      case "sh-fallback":
      case "mh-port":
      case "mh-fallback": {
        // keepalived's lbflags_handler: sh-/mh- names count only after lb_algo named that scheduler.
        noBlock(ctx, s);
        const own = kw.startsWith("flag-") ? "" : kw.slice(0, 2);
        const bit = SCHED_FLAG_BITS[kw];
        if (own !== "" && base.scheduler !== own)
          warn(
            ctx,
            s.keyword,
            `${kw} only applies to the ${own} scheduler (lb_algo ${own} before it): ignored`,
          );
        else base.schedFlags = (base.schedFlags ?? 0) | bit;
        break;
      }
      case "syn_proxy":
        // DPVS's keepalived (check_parser.c syn_proxy_handler): ipvsadm --synproxy.
        base.synproxy = flag(ctx, s);
        if (base.synproxy) synproxyAt = s.keyword;
        break;
      case "proxy_protocol": {
        // DPVS's keepalived (check_parser.c proxy_protocol_handler); checked with the protocol.
        const a = arg(ctx, s, 0, "disable, v1 or v2");
        if (a !== null) base.proxyProtocol = a.text;
        break;
      }
      case "delay_loop":
        base.delayLoop = num(ctx, s, 0.001, 86400) ?? base.delayLoop;
        break;
      case "sorry_server": {
        const a = inet(ctx, arg(ctx, s, 0, "address"));
        const p = port(ctx, s.args[1]);
        if (a !== null && p !== null)
          base.sorryServer = { addr: a.addr, ...(a.addr6 !== undefined ? { addr6: a.addr6 } : {}), port: p };
        break;
      }
      case "quorum":
        base.quorum = int(ctx, s, 0, 2147483647) ?? base.quorum;
        break;
      case "hysteresis":
        base.hysteresis = int(ctx, s, 0, 2147483647) ?? base.hysteresis;
        break;
      case "alpha":
        base.alpha = flag(ctx, s);
        break;
      case "omega":
        base.omega = flag(ctx, s);
        break;
      case "quorum_up":
      case "quorum_down": {
        const script = notifyScript(ctx, s);
        if (script !== null) base[s.keyword.text === "quorum_up" ? "quorumUp" : "quorumDown"] = script;
        break;
      }
      case "real_server": {
        const rs = parseRealServer(ctx, s);
        if (rs !== null) base.realServers.push(rs);
        break;
      }
      case "laddr_group_name": {
        // DPVS keepalived: the FULLNAT local addresses of this service (ipvsadm -P ... -z LIP).
        const g = arg(ctx, s, 0, "group name");
        if (g === null) break;
        const addrs = laddrGroups.get(g.text);
        if (addrs === undefined) error(ctx, g, `local_address_group "${g.text}" is not defined`);
        else base.localAddresses = [...addrs];
        break;
      }
      case "daddr_group_name":
      case "waddr_group_name": {
        // DPVS keepalived: the service's blacklist / whitelist (ipvsadm -U ... -k / -O ... -2).
        const deny = s.keyword.text === "daddr_group_name";
        const g = arg(ctx, s, 0, "group name");
        if (g === null) break;
        const rules = aclGroups.get(`${deny ? "deny" : "allow"} ${g.text}`);
        if (rules === undefined)
          error(ctx, g, `${deny ? "deny" : "allow"}_address_group "${g.text}" is not defined`);
        else if (deny) base.deny = [...rules];
        else base.allow = [...rules];
        break;
      }
      default:
        unknown(ctx, s, "virtual_server");
    }
  }
  // The SYN proxy translates the real servers' replies: TCP, and methods whose replies cross tsvs.
  if (synproxyAt !== null && base.protocol !== IPPROTO_TCP)
    error(ctx, synproxyAt, "syn_proxy is for TCP virtual servers only");
  else if (synproxyAt !== null && base.lbKind !== "NAT" && base.lbKind !== "FULLNAT")
    error(
      ctx,
      synproxyAt,
      `syn_proxy needs lb_kind NAT or FULLNAT (${base.lbKind} replies bypass the director)`,
    );
  else if (synproxyAt !== null && targets.some((t) => t.fwmark !== 0))
    error(ctx, synproxyAt, "syn_proxy is for an address:port virtual server, not a fwmark one");
  const servers = base.sorryServer !== null ? [...base.realServers, base.sorryServer] : base.realServers;
  const ipf = ipFamily;
  const afs = targets.map(
    (t) => t.af ?? ipf?.af ?? vsFamily(base.lbKind, servers, granularity?.text ?? null),
  );
  // keepalived's ip_family_handler: it must agree with the address.
  if (ipf !== null && afs.some((af) => af !== ipf.af))
    error(ctx, ipf.at, `ip_family ${ipf.at.text} conflicts with the virtual server's address`);
  const granularities = new Map<4 | 6, number>();
  for (const af of new Set(afs)) {
    const g = granularity === null ? fullGranularity(af) : parseNetmask(granularity.text, af);
    if (g === null && granularity !== null)
      error(
        ctx,
        granularity,
        af === 6
          ? `persistence_granularity of an IPv6 service is a prefix length 1..128, not "${granularity.text}"`
          : `persistence_granularity must be a netmask, not "${granularity.text}"`,
      );
    granularities.set(af, g ?? fullGranularity(af));
  }
  return targets.map((t, i) => ({
    ...base,
    ...t,
    af: afs[i],
    persistenceGranularity: granularities.get(afs[i]) as number,
    protocol: t.fwmark !== 0 ? 0 : base.protocol,
    realServers: base.realServers.map((rs) => ({ ...rs })),
    ...(base.localAddresses !== undefined ? { localAddresses: [...base.localAddresses] } : {}),
    ...(base.deny !== undefined ? { deny: [...base.deny] } : {}),
    ...(base.allow !== undefined ? { allow: [...base.allow] } : {}),
  }));
}

/** Parses keepalived.conf text; throws ConfigError listing every error (file:line:col). */
export function parseKeepalived(src: string, file: string): ParsedConfig {
  let stmts: KaStatement[];
  try {
    stmts = parseStatements(tokenize(src), file);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.diagnostics.map((d) => ({ ...d, file })));
    throw e;
  }
  const ctx: Ctx = { file, warnings: [], errors: [] };
  const model: ConfigModel = { virtualServers: [], ha: emptyHa() };
  const haDraft = emptyDraft();
  const groups = new Map<string, GroupEntry[]>();
  // Local address groups may come before or after the virtual servers that name them.
  const laddrGroups = new Map<string, LocalAddress[]>();
  // Deny/allow address groups too, by "deny NAME" / "allow NAME".
  const aclGroups = new Map<string, string[]>();
  for (const st of stmts) {
    const kw = st.keyword.text;
    if (kw === "deny_address_group" || kw === "allow_address_group") {
      const name = arg(ctx, st, 0, "group name");
      if (name !== null)
        aclGroups.set(`${kw.slice(0, kw.indexOf("_"))} ${name.text}`, parseAclGroup(ctx, st));
    }
    if (kw !== "local_address_group") continue;
    const name = arg(ctx, st, 0, "group name");
    if (name !== null) laddrGroups.set(name.text, parseLaddrGroup(ctx, st));
  }
  for (const st of stmts) {
    const kw = st.keyword.text;
    if (kw === "local_address_group" || kw === "deny_address_group" || kw === "allow_address_group") continue;
    if (kw === "include") {
      warn(ctx, st.keyword, `include ${st.args.map((a) => a.text).join(" ")} refused: tsvs reads one file`);
    } else if (kw === "virtual_server_group") {
      const name = arg(ctx, st, 0, "group name");
      if (name !== null) groups.set(name.text, parseGroup(ctx, st));
    } else if (kw === "virtual_server") {
      model.virtualServers.push(...parseVirtualServer(ctx, st, groups, laddrGroups, aclGroups));
    } else if (kw === "global_defs") {
      parseGlobalDefs(ctx, st, haDraft);
    } else if (kw === "vrrp_instance") {
      const d = parseVrrpInstance(ctx, st);
      if (d !== null) haDraft.instances.push(d);
    } else if (kw === "vrrp_sync_group") {
      const d = parseSyncGroup(ctx, st);
      if (d !== null) haDraft.syncGroups.push(d);
    } else if (kw === "vrrp_script") {
      const d = parseVrrpScript(ctx, st);
      if (d !== null) haDraft.scripts.push(d);
    } else if (IGNORED_TOP.has(kw)) {
      warn(ctx, st.keyword, `${kw} is not supported by tsvs (ignored)`);
    } else {
      warn(ctx, st.keyword, `unknown keyword ${kw} (ignored)`);
    }
  }
  finishKeepalivedHa(ctx, haDraft);
  const ha = buildHa(haDraft);
  model.ha = ha.ha;
  ctx.errors.push(...ha.errors);
  ctx.warnings.push(...ha.warnings);
  if (ctx.errors.length === 0) ctx.errors.push(...validateModel(model));
  if (ctx.errors.length > 0) throw new ConfigError(ctx.errors);
  return { model, warnings: [...ctx.warnings, ...modelWarnings(model)] };
}
