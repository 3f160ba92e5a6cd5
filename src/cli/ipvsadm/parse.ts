// The ipvsadm 1.31 command line (ipvsadm.c: parse_options, process_options,
// generic_opt_check, tunnel_opt_check), re-implemented over our control types.
//
// What matches ipvsadm:
// - popt's syntax: short options clustered (-Ln), short arguments attached or separate
//   (-srr, -s rr), long options with "=value" or a separate value, an optional argument
//   for -p/--persistent taken only when the next word does not start with '-', "--" ends
//   the options, other words are positional (only --set uses them).
// - The first option must be a command; command/option legality from the
//   commands_v_options table, the tunnel-type table, and every fail() message verbatim
//   (ipvsadm prints them alone on stderr, without a program prefix, and exits 2).
// - Defaults: scheduler wlc (-A and -E), forwarding -g, weight 1, persistence 300 s,
//   netmask 255.255.255.255; DR/TUN destinations of a non-fwmark service take the
//   service port; a destination without a port takes the service port.
//
// Where tsvs differs (documented in the user docs):
// - No resolver: addresses are dotted quads (inet_aton's short forms such as "10.1" are
//   refused) or "localhost"; service names come from SERVICE_PORTS below only.
// - --fullnat (long form only) selects tsvs's FULLNAT forwarding method.
// - DPVS's local address commands (tools/ipvsadm/ipvsadm.c in iqiyi/dpvs): --add-laddr|-P,
//   --del-laddr|-Q with --laddr|-z, and --get-laddr|-G, with DPVS's option names and table rows,
//   except that -F/--ifname is optional (DPVS requires it for -P/-Q): it is accepted and ignored,
//   tsvs sends by route.
// - DPVS's access lists: --add-blklst|-U, --del-blklst|-V, --get-blklst|-B with --blklst|-k, and
//   --add-whtlst|-O, --del-whtlst|-Y, --get-whtlst|-W with --whtlst|-2; tsvs takes an address or a
//   prefix (ADDR/LEN) where DPVS takes an address or ipset:NAME (no ipsets in tsvs).
// - tsvs's --conn-limit with --conn-rate N[/s], --conn-burst N, --conn-rate-prefix LEN[,LEN6].

import { isIPv6 } from "node:net";
import type { SyncDaemonCommand } from "../../control/commands.js";
import {
  checkDest,
  checkService,
  DEFAULT_PERSISTENCE_TIMEOUT,
  DEFAULT_SCHEDULER,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  SpecError,
} from "../../control/spec.js";
import { parseAclPrefix } from "../../core/acl.js";
import { canonicalIPv6, parseIPv4 } from "../../core/addr.js";
import type { CtlCommand, DestSpec, ServiceKey, ServiceSpec, TimeoutSpec } from "../../core/ctl-types.js";
import { Fwd, TunType } from "../../core/dest.js";
import { TsvsError } from "../../core/errors.js";
import { ppName, ppValue } from "../../core/packet/proxy-proto.js";
import {
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
  SVC_F_SCHED3,
  SVC_F_SYNPROXY,
} from "../../core/service.js";
import { SYNC_DEFAULTS, type SyncDaemonConfig } from "../../core/sync/types.js";

export const PROGRAM = "ipvsadm";
export { IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP };

/** ipvsadm's MAX_TIMEOUT: 31 days. */
const MAX_TIMEOUT = 86400 * 31;
const DEF_SCHED = DEFAULT_SCHEDULER;
const DEF_PERSISTENCE_TIMEOUT = DEFAULT_PERSISTENCE_TIMEOUT;
const INT_MAX = 2147483647;
const UINT_MAX = 4294967295;

/**
 * The /etc/services entries tsvs knows (Debian's netbase lists them so: http, ssh, ftp,
 * smtp are tcp only). ipvsadm asks getservbyname / getservbyport with the protocol, so a
 * name valid for tcp is not one for udp. Used to parse "VIP:http" and to print ports
 * without -n.
 */
export const SERVICE_PORTS: Readonly<Record<string, number>> = {
  ftp: 21,
  ssh: 22,
  smtp: 25,
  domain: 53,
  http: 80,
  https: 443,
  "http-alt": 8080,
};
const UDP_SERVICE_PORTS: Readonly<Record<string, number>> = { domain: 53, https: 443 };
/** Aliases getservbyname also answers (tcp). */
const TCP_ALIASES: Readonly<Record<string, number>> = { mail: 25, www: 80, webcache: 8080 };

function byPort(table: Readonly<Record<string, number>>): ReadonlyMap<number, string> {
  return new Map(Object.entries(table).map(([n, p]) => [p, n]));
}
const TCP_PORT_NAMES = byPort(SERVICE_PORTS);
const UDP_PORT_NAMES = byPort(UDP_SERVICE_PORTS);

/** getservbyname(name, proto), or -1. */
export function serviceToPort(name: string, protocol: number): number {
  if (protocol === IPPROTO_TCP) {
    if (Object.hasOwn(SERVICE_PORTS, name)) return SERVICE_PORTS[name];
    if (Object.hasOwn(TCP_ALIASES, name)) return TCP_ALIASES[name];
  } else if (protocol === IPPROTO_UDP && Object.hasOwn(UDP_SERVICE_PORTS, name))
    return UDP_SERVICE_PORTS[name];
  return -1;
}

/** Name of a port as ipvsadm prints it without -n (getservbyport), or null. */
export function portName(port: number, protocol: number): string | null {
  if (protocol === IPPROTO_TCP) return TCP_PORT_NAMES.get(port) ?? null;
  if (protocol === IPPROTO_UDP) return UDP_PORT_NAMES.get(port) ?? null;
  return null;
}

export interface ListOptions {
  numeric: boolean;
  stats: boolean;
  rate: boolean;
  exact: boolean;
  thresholds: boolean;
  persistentConn: boolean;
  /** false with --nosort. */
  sort: boolean;
  /** -c: list connections. */
  conns: boolean;
  /** --timeout. */
  timeout: boolean;
  /** --daemon. */
  daemon: boolean;
  /** --tun-info. */
  tunInfo: boolean;
}

export type IpvsadmRequest =
  | { kind: "ctl"; cmd: CtlCommand }
  | { kind: "list"; key: ServiceKey | null; opts: ListOptions }
  | { kind: "save"; numeric: boolean }
  /** DPVS's -G: the local addresses of one service or of every service. */
  | { kind: "laddrs"; key: ServiceKey | null }
  /** DPVS's -B / -W: the deny or allow list of one service or of every service. */
  | { kind: "acl"; list: "deny" | "allow"; key: ServiceKey | null }
  | { kind: "restore" }
  | { kind: "version" }
  | { kind: "help" }
  /** --start-daemon / --stop-daemon: a command for the daemon's sync daemons, not the table. */
  | { kind: "daemon"; cmd: SyncDaemonCommand };

/**
 * A command-line error. `message` is exactly the line ipvsadm writes on stderr;
 * `exitCode` is its exit status (2 for fail(), 255 for popt errors and "Try ... -h").
 */
export class IpvsadmUsageError extends TsvsError {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super("TSVS_ERR_USAGE", message);
    this.exitCode = exitCode;
  }
}

export const TRY_HELP = `Try \`${PROGRAM} -h' or '${PROGRAM} --help' for more information.`;

function fail(msg: string): never {
  throw new IpvsadmUsageError(msg, 2);
}

/** The rules ipvsadm and the configuration files share (src/control/spec.ts), failing as fail() does. */
function specOrFail(check: () => unknown): void {
  try {
    check();
  } catch (e) {
    if (e instanceof SpecError) fail(e.message);
    throw e;
  }
}

function tryHelp(): never {
  throw new IpvsadmUsageError(TRY_HELP, 255);
}

// ---------------------------------------------------------------------------------------
// Commands and options, in ipvsadm.c's order (the indices are the tables' indices).

const enum Cmd {
  Add = 0,
  Edit,
  Del,
  Flush,
  List,
  AddDest,
  DelDest,
  EditDest,
  Timeout,
  StartDaemon,
  StopDaemon,
  Restore,
  Save,
  Zero,
  AddLaddr,
  DelLaddr,
  GetLaddr,
  AddBlklst,
  DelBlklst,
  GetBlklst,
  AddWhtlst,
  DelWhtlst,
  GetWhtlst,
  ConnLimit,
}

const CMD_NAMES = [
  "add-service",
  "edit-service",
  "delete-service",
  "flush",
  "list",
  "add-server",
  "delete-server",
  "edit-server",
  "set",
  "start-daemon",
  "stop-daemon",
  "restore",
  "save",
  "zero",
  "add-laddr",
  "del-laddr",
  "get-laddr",
  "add-blklst",
  "del-blklst",
  "get-blklst",
  "add-whtlst",
  "del-whtlst",
  "get-whtlst",
  "conn-limit",
];

const enum Opt {
  Numeric = 0,
  Connection,
  Service,
  Scheduler,
  Persistent,
  Netmask,
  Server,
  Forward,
  Weight,
  UThreshold,
  LThreshold,
  Mcast,
  Timeout,
  Daemon,
  Stats,
  Rate,
  Thresholds,
  PersistentConn,
  NoSort,
  SyncId,
  Exact,
  OnePacket,
  PersistenceEngine,
  SchedFlags,
  McastGroup,
  McastPort,
  McastTtl,
  SyncMaxlen,
  TunInfo,
  TunType,
  TunPort,
  TunNocsum,
  TunCsum,
  TunRemcsum,
  LocalAddress,
  Ifname,
  ProxyProtocol,
  BlklstAddress,
  WhtlstAddress,
  ConnRate,
  ConnBurst,
  ConnRatePrefix,
  Synproxy,
}

const OPT_NAMES = [
  "numeric",
  "connection",
  "service-address",
  "scheduler",
  "persistent",
  "netmask",
  "real-server",
  "forwarding-method",
  "weight",
  "u-threshold",
  "l-threshold",
  "mcast-interface",
  "timeout",
  "daemon",
  "stats",
  "rate",
  "thresholds",
  "persistent-conn",
  "nosort",
  "syncid",
  "exact",
  "ops",
  "pe",
  "sched-flags",
  "mcast-group",
  "mcast-port",
  "mcast-ttl",
  "sync-maxlen",
  "tun-info",
  "tun-type",
  "tun-port",
  "tun-nocsum",
  "tun-csum",
  "tun-remcsum",
  "local-address",
  "ifname",
  "proxy-protocol",
  "blklst-address",
  "whtlst-address",
  "conn-rate",
  "conn-burst",
  "conn-rate-prefix",
  "synproxy",
];

/**
 * ipvsadm's commands_v_options: one row per command, one column per option.
 * '+' compulsory, 'x' illegal, '1' exclusive (at most one), ' ' optional.
 * Columns: -n -c svc -s -p -M -r fwd -w -x -y mcif timeout daemon stats rate thr pc nosort
 *          syncid exact ops pe -b grp port ttl maxlen tinfo ttype tport nocsum csum remcsum
 *          laddr ifname pp (DPVS's three, and its rows for -P -Q -G, with ifname optional;
 *          --proxy-protocol goes with -A/-E only) blklst whtlst (DPVS's -k and -2, its rows for
 *          -U -V -B -O -Y -W) conn-rate conn-burst conn-rate-prefix (tsvs's --conn-limit)
 *          synproxy (DPVS's -j / --synproxy, with -A/-E only)
 */
export const COMMANDS_V_OPTIONS: readonly string[] = [
  /* add-service    */ "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx xxxxx ",
  /* edit-service   */ "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx xxxxx ",
  /* delete-service */ "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  /* flush          */ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  /* list           */ " 11xxxxxxxxx11       xxxxxxx xxxxxxxxxxxxxx",
  /* add-server     */ "xx+xxx+    xxxxxxxxxxxxxxxxxx     xxxxxxxxx",
  /* delete-server  */ "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  /* edit-server    */ "xx+xxx+    xxxxxxxxxxxxxxxxxx     xxxxxxxxx",
  /* set            */ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  /* start-daemon   */ "xxxxxxxxxxx xxxxxxx xxxx    xxxxxxxxxxxxxxx",
  /* stop-daemon    */ "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxxxxxxxxxx",
  /* restore        */ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  /* save           */ " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  /* zero           */ "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  /* add-laddr      */ "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+ xxxxxxx",
  /* del-laddr      */ "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+ xxxxxxx",
  /* get-laddr      */ "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  /* add-blklst     */ "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xxxxx",
  /* del-blklst     */ "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xxxxx",
  /* get-blklst     */ "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  /* add-whtlst     */ "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xxxx",
  /* del-whtlst     */ "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xxxx",
  /* get-whtlst     */ "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  /* conn-limit     */ "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+  x",
];

const TUN_NAMES = ["ipip", "gue", "gre"];
/** tunnel_types_v_options: rows ipip/gue/gre, columns tun-port nocsum csum remcsum. */
const TUNNEL_TYPES_V_OPTIONS = ["xxxx", "+111", "x11x"];
const TUN_OPTS = [Opt.TunPort, Opt.TunNocsum, Opt.TunCsum, Opt.TunRemcsum];

/** Tunnel encapsulation flags (IP_VS_TUNNEL_ENCAP_FLAG_*). */
export const TUN_F_NOCSUM = 0;
export const TUN_F_CSUM = 1;
export const TUN_F_REMCSUM = 2;

// ---------------------------------------------------------------------------------------
// popt-style tokenizer.

const enum ArgKind {
  None,
  Required,
  Optional,
}

interface OptDef {
  long: string;
  short: string;
  arg: ArgKind;
  /** Tag: the short letter, or the long name for long-only options. */
  tag: string;
}

function def(long: string, short: string, arg: ArgKind): OptDef {
  return { long, short, arg, tag: short !== "" ? short : long };
}

const N = ArgKind.None;
const R = ArgKind.Required;
const O = ArgKind.Optional;

const OPTION_TABLE: readonly OptDef[] = [
  def("add-service", "A", N),
  def("edit-service", "E", N),
  def("delete-service", "D", N),
  def("clear", "C", N),
  def("list", "L", N),
  def("list", "l", N),
  def("zero", "Z", N),
  def("add-server", "a", N),
  def("edit-server", "e", N),
  def("delete-server", "d", N),
  def("set", "", N),
  def("help", "h", N),
  def("version", "v", N),
  def("restore", "R", N),
  def("save", "S", N),
  def("start-daemon", "", R),
  def("stop-daemon", "", R),
  def("tcp-service", "t", R),
  def("udp-service", "u", R),
  def("sctp-service", "", R),
  def("fwmark-service", "f", R),
  def("scheduler", "s", R),
  def("persistent", "p", O),
  def("netmask", "M", R),
  def("real-server", "r", R),
  def("masquerading", "m", N),
  def("ipip", "i", N),
  def("gatewaying", "g", N),
  def("fullnat", "", N),
  def("weight", "w", R),
  def("u-threshold", "x", R),
  def("l-threshold", "y", R),
  def("numeric", "n", N),
  def("connection", "c", N),
  def("mcast-interface", "", R),
  def("syncid", "", R),
  def("timeout", "", N),
  def("daemon", "", N),
  def("stats", "", N),
  def("rate", "", N),
  def("thresholds", "", N),
  def("persistent-conn", "", N),
  def("nosort", "", N),
  def("sort", "", N),
  def("exact", "X", N),
  def("ipv6", "6", N),
  def("ops", "o", N),
  def("pe", "", R),
  def("sched-flags", "b", R),
  def("mcast-group", "", R),
  def("mcast-port", "", R),
  def("mcast-ttl", "", R),
  def("sync-maxlen", "", R),
  def("tun-info", "", N),
  def("tun-type", "", R),
  def("tun-port", "", R),
  def("tun-nocsum", "", N),
  def("tun-csum", "", N),
  def("tun-remcsum", "", N),
  // DPVS's popt entries.
  def("add-laddr", "P", N),
  def("del-laddr", "Q", N),
  def("get-laddr", "G", N),
  def("laddr", "z", R),
  def("ifname", "F", R),
  def("proxy-protocol", "", R),
  def("add-blklst", "U", N),
  def("del-blklst", "V", N),
  def("get-blklst", "B", N),
  def("add-whtlst", "O", N),
  def("del-whtlst", "Y", N),
  def("get-whtlst", "W", N),
  def("blklst", "k", R),
  def("whtlst", "2", R),
  // tsvs's per-source new-connection rate limit (conn-limit.ts).
  def("conn-limit", "", N),
  def("conn-rate", "", R),
  def("conn-burst", "", R),
  def("conn-rate-prefix", "", R),
  // DPVS's -j enable|disable (--synproxy); bare, tsvs takes it as enable.
  def("synproxy", "j", O),
];

interface Token {
  tag: string;
  arg: string | null;
  /**
   * poptBadOption's answer while this option is being handled: the last argv word popt
   * consumed (the option's separate argument when it had one).
   */
  word: string;
}

/** A popt error, raised when the option loop reaches it (earlier options run first). */
interface PoptFailure {
  word: string;
  what: string;
}

/**
 * Splits argv into options (in order) and positional arguments, as popt does, up to the
 * first popt error (popt stops there).
 */
function tokenize(argv: readonly string[]): { opts: Token[]; args: string[]; error: PoptFailure | null } {
  const opts: Token[] = [];
  const args: string[] = [];
  const stop = (word: string, what: string) => ({ opts, args, error: { word, what } });
  let i = 0;
  while (i < argv.length) {
    const word = argv[i++];
    if (word === "--") {
      while (i < argv.length) args.push(argv[i++]);
      break;
    }
    if (word.startsWith("--")) {
      const eq = word.indexOf("=");
      const name = eq >= 0 ? word.slice(2, eq) : word.slice(2);
      const d = OPTION_TABLE.find((o) => o.long === name);
      if (d === undefined) return stop(word, "unknown option");
      let arg: string | null = null;
      let last = word;
      if (eq >= 0) {
        if (d.arg === ArgKind.None) return stop(word, "option does not take an argument");
        arg = word.slice(eq + 1);
      } else if (d.arg === ArgKind.Required) {
        if (i >= argv.length) return stop(word, "missing argument");
        arg = argv[i++];
        last = arg;
      } else if (d.arg === ArgKind.Optional && i < argv.length && !argv[i].startsWith("-")) {
        arg = argv[i++];
        last = arg;
      }
      opts.push({ tag: d.tag, arg, word: last });
      continue;
    }
    if (word.startsWith("-") && word.length > 1) {
      for (let k = 1; k < word.length; k++) {
        const ch = word[k];
        const d = OPTION_TABLE.find((o) => o.short === ch);
        if (d === undefined) return stop(word, "unknown option");
        if (d.arg === ArgKind.None) {
          opts.push({ tag: d.tag, arg: null, word });
          continue;
        }
        // An option with an argument ends the cluster: the rest is its argument.
        const rest = word.slice(k + 1);
        let arg: string | null = null;
        let last = word;
        if (rest !== "") arg = rest;
        else if (d.arg === ArgKind.Required) {
          if (i >= argv.length) return stop(word, "missing argument");
          arg = argv[i++];
          last = arg;
        } else if (i < argv.length && !argv[i].startsWith("-")) {
          arg = argv[i++];
          last = arg;
        }
        opts.push({ tag: d.tag, arg, word: last });
        break;
      }
      continue;
    }
    args.push(word);
  }
  return { opts, args, error: null };
}

// ---------------------------------------------------------------------------------------
// Value parsers (ipvsadm.c's helpers).

/** string_to_number: a whole decimal integer (strtol syntax) within [min, max], else -1. */
export function stringToNumber(s: string, min: number, max: number): number {
  if (!/^\s*[+-]?\d+$/.test(s)) return -1;
  const n = Number(s.trim());
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : -1;
}

function parseTimeout(s: string | null, min: number, max: number): number {
  if (s === null) return DEF_PERSISTENCE_TIMEOUT;
  const v = stringToNumber(s, min, max);
  if (v === -1) fail(`invalid timeout value \`${s}' specified`);
  return v;
}

function parseFwmark(s: string): number {
  if (!/^\s*[+-]?\d+$/.test(s)) fail(`invalid fwmark value \`${s}' specified`);
  const n = Number(s.trim());
  if (!(n > 0 && n <= UINT_MAX)) fail(`invalid fwmark value \`${s}' specified`);
  return n;
}

/** C's atoi: optional blanks and sign, then digits up to the first non-digit; 0 without any. */
function atoi(s: string): number {
  const m = /^\s*([+-]?\d+)/.exec(s);
  return m === null ? 0 : Number.parseInt(m[1], 10);
}

/** inet_aton for dotted quads, plus the one host name we know. */
export function hostToAddr(s: string): number | null {
  if (s === "localhost") return 0x7f000001;
  return parseIPv4(s);
}

const SERVICE_NONE = 0;
const SERVICE_ADDR = 1;
const SERVICE_PORT = 2;

interface ParsedService {
  result: number;
  af: 4 | 6;
  addr: number;
  /** IPv6: the address as inet_ntop prints it. */
  addr6?: string;
  port: number;
}

/**
 * parse_service: "host[:port]", "[v6]:port" or a bare IPv6 address; returns SERVICE_* bits with
 * the family, address and port. "[v6]" must be followed by ":port"; a bare IPv6 address has none.
 */
function parseService(s: string, protocol: number): ParsedService {
  const none: ParsedService = { result: SERVICE_NONE, af: 4, addr: 0, port: 0 };
  if (/^\d*$/.test(s)) return none; // str_is_digit: a bare number is not an address
  let host = s;
  let portText: string | null = null;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0 || s[close + 1] !== ":") return none;
    host = s.slice(1, close);
    portText = s.slice(close + 2);
  }
  const v6 = canonicalIPv6(host);
  let out: ParsedService;
  if (v6 !== null) out = { result: SERVICE_ADDR, af: 6, addr: 0, addr6: v6, port: 0 };
  else {
    if (portText === null) {
      const colon = s.lastIndexOf(":");
      if (colon >= 0) {
        host = s.slice(0, colon);
        portText = s.slice(colon + 1);
      }
    }
    const addr = hostToAddr(host);
    if (addr === null) return none;
    out = { result: SERVICE_ADDR, af: 4, addr, port: 0 };
  }
  if (portText !== null) {
    out.result |= SERVICE_PORT;
    const n = stringToNumber(portText, 0, 65535);
    if (n !== -1) out.port = n;
    else if (serviceToPort(portText, protocol) !== -1) out.port = serviceToPort(portText, protocol);
    else return none;
  }
  return out;
}

/** inet_pton(AF_INET): a strict dotted quad (no leading zeros, no short forms). */
function inetPton4(s: string): number | null {
  return /^(0|[1-9]\d{0,2})(\.(0|[1-9]\d{0,2})){3}$/.test(s) ? parseIPv4(s) : null;
}

/**
 * --mcast-group: an IPv6 group when the text has a ':' (IN6_IS_ADDR_MULTICAST: ff00::/8), else
 * an IPv4 one (IN_MULTICAST: 224.0.0.0/4). tsvs syncs over IPv4 only: a good IPv6 group is
 * refused as -6 is.
 */
function parseMcastGroup(arg: string): number {
  if (arg.includes(":")) {
    const first = arg.split(":")[0];
    if (!isIPv6(arg) || arg.includes("%") || !/^ff[0-9a-f]{2}$/i.test(first))
      fail(`invalid IPv6 mcast-group \`${arg}'`);
    fail("IPv6 is not supported by tsvs yet");
  }
  const g = inetPton4(arg);
  if (g === null || g >>> 28 !== 0xe) fail(`invalid IPv4 mcast-group \`${arg}'`);
  return g;
}

function parseSchedFlags(sched: string, arg: string): number {
  const name = sched !== "" ? sched : DEF_SCHED;
  let flags = 0;
  // strtok skips empty fields; an argument of only commas yields no flag at all.
  const fields = arg.split(",").filter((f) => f !== "");
  if (fields.length === 0) fail(`invalid scheduler flag \`${arg}'`);
  for (const f of fields) {
    if (f === "flag-1") flags |= SVC_F_SCHED1;
    else if (f === "flag-2") flags |= SVC_F_SCHED2;
    else if (f === "flag-3") flags |= SVC_F_SCHED3;
    else if (f === "sh-fallback" || f === "sh-port") {
      flags |= f === "sh-fallback" ? SVC_F_SCHED1 : SVC_F_SCHED2;
      if (name !== "sh") fail(`incompatible scheduler flag \`${f}'`);
    } else if (f === "mh-fallback" || f === "mh-port") {
      flags |= f === "mh-fallback" ? SVC_F_SCHED1 : SVC_F_SCHED2;
      if (name !== "mh") fail(`incompatible scheduler flag \`${f}'`);
    } else fail(`invalid scheduler flag \`${f}'`);
  }
  return flags;
}

// ---------------------------------------------------------------------------------------

const COMMAND_TAGS: Readonly<Record<string, Cmd>> = {
  A: Cmd.Add,
  E: Cmd.Edit,
  D: Cmd.Del,
  a: Cmd.AddDest,
  e: Cmd.EditDest,
  d: Cmd.DelDest,
  C: Cmd.Flush,
  L: Cmd.List,
  l: Cmd.List,
  Z: Cmd.Zero,
  set: Cmd.Timeout,
  R: Cmd.Restore,
  S: Cmd.Save,
  "start-daemon": Cmd.StartDaemon,
  "stop-daemon": Cmd.StopDaemon,
  P: Cmd.AddLaddr,
  Q: Cmd.DelLaddr,
  G: Cmd.GetLaddr,
  U: Cmd.AddBlklst,
  V: Cmd.DelBlklst,
  B: Cmd.GetBlklst,
  O: Cmd.AddWhtlst,
  Y: Cmd.DelWhtlst,
  W: Cmd.GetWhtlst,
  "conn-limit": Cmd.ConnLimit,
};

function genericOptCheck(cmd: Cmd, options: ReadonlySet<Opt>): void {
  const row = COMMANDS_V_OPTIONS[cmd];
  let last = -1;
  for (let j = 0; j < OPT_NAMES.length; j++) {
    const c = row[j];
    if (!options.has(j)) {
      if (c === "+")
        fail(`You need to supply the '${OPT_NAMES[j]}' option for the '${CMD_NAMES[cmd]}' command`);
      continue;
    }
    if (c === "x") fail(`Illegal '${OPT_NAMES[j]}' option with the '${CMD_NAMES[cmd]}' command`);
    if (c === "1") {
      if (last < 0) {
        last = j;
        continue;
      }
      fail(
        `The option '${OPT_NAMES[j]}' conflicts with the '${OPT_NAMES[last]}' option in the '${CMD_NAMES[cmd]}' command`,
      );
    }
  }
}

function tunnelOptCheck(tunType: number, options: ReadonlySet<Opt>): void {
  const row = TUNNEL_TYPES_V_OPTIONS[tunType];
  let last = -1;
  for (let j = 0; j < TUN_OPTS.length; j++) {
    const k = TUN_OPTS[j];
    const c = row[j];
    if (!options.has(k)) {
      if (c === "+")
        fail(`You need to supply the '${OPT_NAMES[k]}' option for the '${TUN_NAMES[tunType]}' tunnel type`);
      continue;
    }
    if (c === "x") fail(`Illegal '${OPT_NAMES[k]}' option with the '${TUN_NAMES[tunType]}' tunnel type`);
    if (c === "1") {
      if (last < 0) {
        last = k;
        continue;
      }
      fail(
        `The option '${OPT_NAMES[k]}' conflicts with the '${OPT_NAMES[last]}' option in the '${TUN_NAMES[tunType]}' tunnel type`,
      );
    }
  }
}

/**
 * Parses an ipvsadm command line (without the program name). An empty argv lists the
 * table, as ipvsadm does with no argument. Throws IpvsadmUsageError.
 */
export function parseIpvsadm(argv: readonly string[]): IpvsadmRequest {
  const listAll: ListOptions = {
    numeric: false,
    stats: false,
    rate: false,
    exact: false,
    thresholds: false,
    persistentConn: false,
    sort: true,
    conns: false,
    timeout: false,
    daemon: false,
    tunInfo: false,
  };
  if (argv.length === 0) return { kind: "list", key: null, opts: listAll };

  const { opts, args, error } = tokenize(argv);
  const first = opts[0];
  // The first poptGetNextOpt() < 0 (no option, or a popt error) prints the "Try" line.
  if (first === undefined) tryHelp();
  if (first.tag === "h") return { kind: "help" };
  if (first.tag === "v") return { kind: "version" };
  const cmd = COMMAND_TAGS[first.tag];
  if (cmd === undefined) tryHelp();

  // ipvsadm memsets the daemon entry (syncid 0, maxlen/group/port/ttl unset) and the kernel
  // fills what is unset (ip_vs_genl_new_daemon, start_sync_thread): tsvs fills it here.
  const daemon: SyncDaemonConfig = { role: "master", ...SYNC_DEFAULTS, iface: "" };
  if (cmd === Cmd.StartDaemon || cmd === Cmd.StopDaemon) {
    if (first.arg === "master" || first.arg === "backup") daemon.role = first.arg;
    else if (cmd === Cmd.StartDaemon) fail("illegal start-daemon parameter specified");
    else fail("illegal start_daemon specified");
  }

  // The command entry, with process_options' defaults.
  const svc: ServiceSpec = {
    af: 4,
    protocol: 0,
    addr: 0,
    port: 0,
    fwmark: 0,
    schedName: "",
    flags: 0,
    timeout: 0,
    netmask: 0xffffffff,
    peName: "",
  };
  const dest: DestSpec = {
    af: 4,
    addr: 0,
    port: 0,
    fwd: Fwd.Route,
    weight: 1,
    uThreshold: 0,
    lThreshold: 0,
    tunType: TunType.Ipip,
    tunPort: 0,
    tunFlags: 0,
  };
  const lo = { ...listAll };
  const options = new Set<Opt>();
  const setOption = (o: Opt): void => {
    if (options.has(o)) fail(`multiple '${OPT_NAMES[o]}' options specified`);
    options.add(o);
  };
  let schedFlagsArg = "";
  let laddr = 0;
  let laddr6: string | undefined;
  let aclRule = "";
  const limit = { rate: 0, burst: 0, prefix4: 32, prefix6: 64 };

  for (let k = 1; k < opts.length; k++) {
    const { tag, word } = opts[k];
    const arg = opts[k].arg ?? "";
    switch (tag) {
      case "t":
      case "u":
      case "sctp-service": {
        setOption(Opt.Service);
        svc.protocol = tag === "t" ? IPPROTO_TCP : tag === "u" ? IPPROTO_UDP : IPPROTO_SCTP;
        const p = parseService(arg, svc.protocol);
        if ((p.result & SERVICE_ADDR) === 0) fail("illegal virtual server address[:port] specified");
        svc.af = p.af;
        svc.addr = p.addr;
        if (p.addr6 !== undefined) svc.addr6 = p.addr6;
        else delete svc.addr6;
        svc.port = p.port;
        // parse_service: an IPv6 service's persistence granularity defaults to /128.
        if (p.af === 6) svc.netmask = 128;
        break;
      }
      case "f":
        setOption(Opt.Service);
        // ipvsadm sets a "sane" protocol here; our ServiceKey names fwmark services with protocol 0.
        svc.af = 4;
        svc.protocol = 0;
        svc.fwmark = parseFwmark(arg);
        break;
      case "s":
        setOption(Opt.Scheduler);
        svc.schedName = arg.slice(0, 15); // IP_VS_SCHEDNAME_MAXLEN - 1
        break;
      case "p":
        setOption(Opt.Persistent);
        svc.flags |= SVC_F_PERSISTENT;
        svc.timeout = parseTimeout(opts[k].arg, 1, MAX_TIMEOUT);
        break;
      case "M": {
        setOption(Opt.Netmask);
        // As ipvsadm: the family known so far decides (-M before -t parses an IPv4 mask).
        if (svc.af === 6) {
          const n = atoi(arg);
          if (n < 1 || n > 128) fail("illegal ipv6 netmask specified");
          svc.netmask = n;
          break;
        }
        const m = hostToAddr(arg);
        if (m === null) fail("illegal virtual server persistent mask specified");
        svc.netmask = m;
        break;
      }
      case "r": {
        setOption(Opt.Server);
        // ipvsadm gives -f services IPPROTO_TCP ("a sane value"): tcp port names parse.
        const p = parseService(arg, svc.fwmark !== 0 ? IPPROTO_TCP : svc.protocol);
        if ((p.result & SERVICE_ADDR) === 0) fail("illegal real server address[:port] specified");
        dest.af = p.af;
        dest.addr = p.addr;
        if (p.addr6 !== undefined) dest.addr6 = p.addr6;
        else delete dest.addr6;
        // Without a port -r copies the service port known so far: "-r RIP -t VIP:80" gets 0.
        dest.port = p.result === SERVICE_ADDR ? svc.port : p.port;
        break;
      }
      case "i":
        setOption(Opt.Forward);
        dest.fwd = Fwd.Tunnel;
        break;
      case "g":
        setOption(Opt.Forward);
        dest.fwd = Fwd.Route;
        break;
      case "m":
        setOption(Opt.Forward);
        dest.fwd = Fwd.Masq;
        break;
      case "fullnat":
        setOption(Opt.Forward);
        dest.fwd = Fwd.FullNat;
        break;
      case "w":
        setOption(Opt.Weight);
        dest.weight = stringToNumber(arg, 0, 65535);
        if (dest.weight === -1) fail("illegal weight specified");
        break;
      case "x":
        setOption(Opt.UThreshold);
        dest.uThreshold = stringToNumber(arg, 0, INT_MAX);
        if (dest.uThreshold === -1) fail("illegal u_threshold specified");
        break;
      case "y":
        setOption(Opt.LThreshold);
        dest.lThreshold = stringToNumber(arg, 0, INT_MAX);
        if (dest.lThreshold === -1) fail("illegal l_threshold specified");
        break;
      case "c":
        setOption(Opt.Connection);
        lo.conns = true;
        break;
      case "n":
        setOption(Opt.Numeric);
        lo.numeric = true;
        break;
      case "mcast-interface":
        setOption(Opt.Mcast);
        daemon.iface = arg.slice(0, 15); // IP_VS_IFNAME_MAXLEN - 1
        break;
      case "syncid":
        setOption(Opt.SyncId);
        daemon.syncid = stringToNumber(arg, 0, 255);
        if (daemon.syncid === -1) fail("illegal syncid specified");
        break;
      case "timeout":
        setOption(Opt.Timeout);
        lo.timeout = true;
        break;
      case "daemon":
        setOption(Opt.Daemon);
        lo.daemon = true;
        break;
      case "stats":
        setOption(Opt.Stats);
        lo.stats = true;
        break;
      case "rate":
        setOption(Opt.Rate);
        lo.rate = true;
        break;
      case "thresholds":
        setOption(Opt.Thresholds);
        lo.thresholds = true;
        break;
      case "persistent-conn":
        setOption(Opt.PersistentConn);
        lo.persistentConn = true;
        break;
      case "nosort":
        setOption(Opt.NoSort);
        lo.sort = false;
        break;
      case "sort":
        break; // the default; accepted for compatibility
      case "X":
        setOption(Opt.Exact);
        lo.exact = true;
        break;
      case "6":
        if (svc.fwmark === 0) fail("-6 used before -f\n");
        svc.af = 6;
        svc.netmask = 128;
        break;
      case "o":
        setOption(Opt.OnePacket);
        svc.flags |= SVC_F_ONEPACKET;
        break;
      case "pe":
        setOption(Opt.PersistenceEngine);
        svc.peName = arg.slice(0, 16);
        break;
      case "proxy-protocol": {
        // DPVS's proxy_protocol_type takes any other word as "disable"; tsvs says it is wrong.
        setOption(Opt.ProxyProtocol);
        const v = ppValue(arg);
        if (v < 0) fail(`illegal proxy-protocol specified: ${arg} (disable|v1|v2|v1-insecure|v2-insecure)`);
        svc.proxyProtocol = ppName(v);
        break;
      }
      case "b":
        setOption(Opt.SchedFlags);
        schedFlagsArg = arg.slice(0, 127);
        break;
      case "mcast-group":
        setOption(Opt.McastGroup);
        daemon.group = parseMcastGroup(arg);
        break;
      case "mcast-port":
        setOption(Opt.McastPort);
        daemon.port = stringToNumber(arg, 1, 65535);
        if (daemon.port === -1) fail("illegal mcast-port specified");
        break;
      case "mcast-ttl":
        setOption(Opt.McastTtl);
        daemon.ttl = stringToNumber(arg, 1, 255);
        if (daemon.ttl === -1) fail("illegal mcast-ttl specified");
        break;
      case "sync-maxlen":
        setOption(Opt.SyncMaxlen);
        daemon.maxlen = stringToNumber(arg, 1, 65535 - 20 - 8); // IPv4 and UDP headers
        if (daemon.maxlen === -1) fail("illegal sync-maxlen specified");
        break;
      case "tun-info":
        setOption(Opt.TunInfo);
        lo.tunInfo = true;
        break;
      case "tun-type": {
        setOption(Opt.TunType);
        const t = TUN_NAMES.indexOf(arg);
        if (t < 0) fail("illegal tunnel type specified");
        dest.tunType = t as TunType;
        break;
      }
      case "tun-port":
        setOption(Opt.TunPort);
        dest.tunPort = stringToNumber(arg, 1, 65535);
        if (dest.tunPort === -1) fail("illegal tunnel port specified");
        break;
      case "tun-nocsum":
        setOption(Opt.TunNocsum);
        dest.tunFlags |= TUN_F_NOCSUM;
        break;
      case "tun-csum":
        setOption(Opt.TunCsum);
        dest.tunFlags |= TUN_F_CSUM;
        break;
      case "tun-remcsum":
        setOption(Opt.TunRemcsum);
        dest.tunFlags |= TUN_F_REMCSUM;
        break;
      case "z": {
        // DPVS: parse_service, and only the address counts.
        setOption(Opt.LocalAddress);
        const p = parseService(arg, IPPROTO_TCP);
        if ((p.result & SERVICE_ADDR) === 0) fail("illegal local address");
        laddr = p.addr;
        laddr6 = p.addr6;
        break;
      }
      case "k":
      case "2": {
        // DPVS: "IP | ipset:NAME"; tsvs takes an address or a prefix (ADDR/LEN), no ipset.
        const deny = tag === "k";
        setOption(deny ? Opt.BlklstAddress : Opt.WhtlstAddress);
        const p = parseAclPrefix(arg);
        if (typeof p === "string")
          fail(`illegal ${deny ? "blacklist" : "whitelist"} entry format, require [ IP | IP/LEN ]`);
        aclRule = p.text;
        break;
      }
      case "conn-rate": {
        setOption(Opt.ConnRate);
        const m = /^(\d{1,10})(\/s)?$/.exec(arg);
        if (m === null || Number(m[1]) > 1e9) fail("illegal conn-rate specified");
        limit.rate = Number(m[1]);
        break;
      }
      case "conn-burst":
        setOption(Opt.ConnBurst);
        if (!/^\d{1,10}$/.test(arg) || Number(arg) < 1 || Number(arg) > 1e9)
          fail("illegal conn-burst specified");
        limit.burst = Number(arg);
        break;
      case "conn-rate-prefix": {
        // LEN (both families: IPv4 min(LEN, 32)) or LEN4,LEN6.
        setOption(Opt.ConnRatePrefix);
        const m = /^(\d{1,3})(?:,(\d{1,3}))?$/.exec(arg);
        const p4 = m === null ? 0 : Number(m[1]);
        const p6 = m === null ? 0 : m[2] !== undefined ? Number(m[2]) : p4;
        if (m === null || p4 < 1 || p6 < 1 || p6 > 128 || (m[2] !== undefined && p4 > 32))
          fail("illegal conn-rate-prefix specified");
        limit.prefix4 = Math.min(p4, 32);
        limit.prefix6 = p6;
        break;
      }
      case "j": {
        // DPVS's ipvsadm compares the word's first letters (memcmp); tsvs wants the whole word.
        setOption(Opt.Synproxy);
        const w = opts[k].arg;
        if (w === null || w === "enable") svc.flags |= SVC_F_SYNPROXY;
        else if (w === "disable") svc.flags &= ~SVC_F_SYNPROXY;
        else fail("synproxy switch must be enable or disable");
        break;
      }
      case "F":
        // DPVS binds the local address to a DPDK port; tsvs sends by route: accepted, ignored.
        setOption(Opt.Ifname);
        break;
      default:
        // A second command (or -h/-v after a command) is not an option here.
        fail(`invalid option \`${word}'`);
    }
  }

  // popt's error: "<poptBadOption>: <poptStrerror>", process_options returns -1 (exit 255).
  if (error !== null) throw new IpvsadmUsageError(`${error.word}: ${error.what}`, 255);

  const timeouts: TimeoutSpec = { tcp: 0, tcpFin: 0, udp: 0 };
  let next = 0;
  if (cmd === Cmd.Timeout) {
    if (args.length < 3) fail("--set option requires 3 timeout values");
    timeouts.tcp = parseTimeout(args[0], 0, MAX_TIMEOUT);
    timeouts.tcpFin = parseTimeout(args[1], 0, MAX_TIMEOUT);
    timeouts.udp = parseTimeout(args[2], 0, MAX_TIMEOUT);
    next = 3;
  }
  if (next < args.length) fail(`unexpected argument ${args[next]}`);

  if (schedFlagsArg !== "") {
    svc.flags &= ~(SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3);
    svc.flags |= parseSchedFlags(svc.schedName, schedFlagsArg);
  }

  genericOptCheck(cmd, options);

  if (cmd === Cmd.Add || cmd === Cmd.Edit) specOrFail(() => checkService(svc));

  if (cmd === Cmd.AddDest || cmd === Cmd.EditDest) {
    specOrFail(() => checkDest(svc, dest));
    const tunOpts = [Opt.TunType, Opt.TunPort, Opt.TunNocsum, Opt.TunCsum, Opt.TunRemcsum];
    if (tunOpts.some((o) => options.has(o)) && dest.fwd !== Fwd.Tunnel)
      fail("Tunnel options conflict with forward method");
    tunnelOptCheck(dest.tunType, options);
  }

  const key: ServiceKey = {
    af: svc.af,
    protocol: svc.protocol,
    addr: svc.addr,
    port: svc.port,
    fwmark: svc.fwmark,
  };
  if (svc.addr6 !== undefined && svc.fwmark === 0) key.addr6 = svc.addr6;

  switch (cmd) {
    case Cmd.List:
      if (
        ((lo.conns || lo.timeout || lo.daemon) && (lo.stats || lo.rate || lo.thresholds)) ||
        ((lo.timeout || lo.daemon) && lo.persistentConn)
      )
        fail("options conflicts in the list command");
      return { kind: "list", key: options.has(Opt.Service) ? key : null, opts: lo };
    case Cmd.Save:
      return { kind: "save", numeric: lo.numeric };
    case Cmd.Restore:
      return { kind: "restore" };
    case Cmd.Flush:
      return { kind: "ctl", cmd: { op: "clear" } };
    case Cmd.Add:
      return { kind: "ctl", cmd: { op: "add-service", svc } };
    case Cmd.Edit:
      return { kind: "ctl", cmd: { op: "edit-service", svc } };
    case Cmd.Del:
      return { kind: "ctl", cmd: { op: "del-service", key } };
    case Cmd.Zero:
      return { kind: "ctl", cmd: { op: "zero", key: options.has(Opt.Service) ? key : null } };
    case Cmd.AddDest:
      return { kind: "ctl", cmd: { op: "add-dest", key, dest } };
    case Cmd.EditDest:
      return { kind: "ctl", cmd: { op: "edit-dest", key, dest } };
    case Cmd.DelDest:
      return {
        kind: "ctl",
        cmd:
          dest.addr6 !== undefined
            ? { op: "del-dest", key, addr: 0, addr6: dest.addr6, port: dest.port }
            : { op: "del-dest", key, addr: dest.addr, port: dest.port },
      };
    case Cmd.Timeout:
      return { kind: "ctl", cmd: { op: "set-timeout", timeouts } };
    case Cmd.StartDaemon:
      if (daemon.iface === "") daemon.iface = SYNC_DEFAULTS.iface; // DEF_MCAST_IFN
      return { kind: "daemon", cmd: { op: "start-daemon", daemon } };
    case Cmd.StopDaemon:
      // ipvsadm sends the interface and syncid too; the kernel stops the role's daemon whatever they are.
      return { kind: "daemon", cmd: { op: "stop-daemon", role: daemon.role } };
    case Cmd.AddLaddr:
      return { kind: "ctl", cmd: laddrCmd("add-laddr", key, laddr, laddr6) };
    case Cmd.DelLaddr:
      return { kind: "ctl", cmd: laddrCmd("del-laddr", key, laddr, laddr6) };
    case Cmd.GetLaddr:
      return { kind: "laddrs", key: options.has(Opt.Service) ? key : null };
    case Cmd.AddBlklst:
    case Cmd.DelBlklst:
    case Cmd.AddWhtlst:
    case Cmd.DelWhtlst: {
      const op = cmd === Cmd.AddBlklst || cmd === Cmd.AddWhtlst ? "add-acl" : "del-acl";
      const list = cmd === Cmd.AddBlklst || cmd === Cmd.DelBlklst ? "deny" : "allow";
      return { kind: "ctl", cmd: { op, key, list, rule: aclRule } };
    }
    case Cmd.GetBlklst:
    case Cmd.GetWhtlst:
      return {
        kind: "acl",
        list: cmd === Cmd.GetBlklst ? "deny" : "allow",
        key: options.has(Opt.Service) ? key : null,
      };
    case Cmd.ConnLimit:
      // The burst defaults to the rate (one second's worth at once).
      if (limit.burst === 0) limit.burst = Math.max(1, limit.rate);
      return { kind: "ctl", cmd: { op: "set-conn-limit", key, limit } };
  }
}

/** -P / -Q: an IPv4 local address by its u32, an IPv6 one by its text (addr 0). */
function laddrCmd(
  op: "add-laddr" | "del-laddr",
  key: ServiceKey,
  addr: number,
  addr6: string | undefined,
): CtlCommand {
  return addr6 === undefined ? { op, key, addr } : { op, key, addr: 0, addr6 };
}
