// BIRD 2 configurations for scale-out behind an ECMP router (docs/scale-out.md): the director's,
// which announces its VIPs over BGP, and the upstream router's, which merges the directors' routes
// into one multipath kernel route. Pure: settings in, configuration text out.
//
// Syntax of BIRD 2.0.x (doc/bird.sgml of CZ-NIC/bird, v2.0.12 as in Debian bookworm's bird2):
// - eBGP needs explicit import and export filters (RFC 8212, "BGP" chapter): both are always given.
// - Hold time default 240 s, keepalive a third of it: far too slow to drop a dead director, so
//   both are set from the configuration (BIRD negotiates the smaller hold time with the peer).
// - A static route `via "IFNAME"` is announced only while that interface is up and removed at
//   once when it goes ("Static" chapter; proto/static/static.c static_decide over a NEF_IFACE
//   neighbour, nest/neighbor.c: IF_UP is the admin state, no address needed). The director's
//   VIPs are such routes over the liveness interface: a TUN device the tsvs daemon holds open and
//   the kernel deletes when the daemon's process dies (src/daemon/bgp.ts), so BIRD withdraws every
//   VIP without the daemon's help. Interface changes reach BIRD as netlink events, at once; the
//   kernel does not report IPv4 routes it flushes with a device (no RTM_DELROUTE), which is why a
//   route learned from the kernel (`learn`) would only go at the next scan.
// - Each VIP is its own static protocol, so that one VIP is announced or withdrawn alone, by
//   `enable NAME` / `disable NAME` on BIRD's control socket, or by the `disabled` switch in the
//   file (a `configure` applies a changed switch: nest/proto.c proto_reconfigure), without touching
//   the BGP sessions.
// - Kernel protocol `merge paths on limit N` (the router): best and equivalent non-best routes are
//   merged into one ECMP route; BGP routes are equivalent when local_pref, origin, MED (same
//   neighbour AS), AS-path length, type and IGP metric agree, neighbour AS and router ID aside
//   (proto/bgp/attrs.c bgp_rte_mergable): directors with equal path lengths merge.

import { canonicalIPv6, formatIPv4, ipv6TextWords, ipv6UsableUnicast, parseIPv4 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";

export interface BgpNeighbor {
  address: string;
  as: number;
  /** The neighbour's TCP port (default 179). */
  port?: number;
  /** TCP MD5 signature (RFC 2385). */
  password?: string;
  /** BFD for this session; default: DirectorBgp.bfd. */
  bfd?: boolean;
}

export interface DirectorBgp {
  /** IPv4 dotted quad (BGP identifier). */
  routerId: string;
  localAs: number;
  neighbors: BgpNeighbor[];
  /** Seconds: 3..65535 (RFC 4271: 0 or at least 3; 0 would mean no liveness at all). */
  holdTime: number;
  /** Seconds: 1..holdTime-1. */
  keepaliveTime: number;
  /** Seconds between connection attempts (BIRD's default 120 is long for a lab). */
  connectRetryTime?: number;
  bfd?: boolean;
  /** VIPs announced as /32 and /128 routes while the daemon serves them. */
  vips4: string[];
  vips6: string[];
  /** The interface the VIP routes point to; gone with the daemon, the routes go (see above). */
  livenessIfname: string;
}

export interface RouterBgp {
  routerId: string;
  localAs: number;
  neighbors: BgpNeighbor[];
  holdTime: number;
  keepaliveTime: number;
  /** Next hops of one merged route (BIRD's merge paths limit; its default is 16). */
  ecmpLimit: number;
  /** The kernel table the merged routes go to (default: main). */
  kernelTable?: number;
  /** Seconds between connection attempts (BIRD's default: 120). */
  connectRetryTime?: number;
}

export interface BirdConfOptions {
  /** A log file instead of syslog (BIRD's default). */
  logFile?: string;
  /**
   * Director: the VIPs (canonical text, as vipProtocolName takes them) announced now; the others
   * are written `disabled`. Absent: every VIP enabled.
   */
  announced?: ReadonlySet<string>;
}

// BGP AS numbers (RFC 6793): 4 bytes, 0 reserved (RFC 7607), 23456 is AS_TRANS (never a real AS).
const AS_MAX = 4294967295;
const AS_TRANS = 23456;
const HOLD_MIN = 3;
const HOLD_MAX = 65535;
/** Linux IFNAMSIZ - 1. */
const IFNAME_MAX = 15;

/** An IPv4 address's canonical text, or null. */
function ipv4Text(s: string): string | null {
  const a = parseIPv4(s);
  return a === null ? null : formatIPv4(a);
}

function unicast4(s: string): boolean {
  const a = parseIPv4(s);
  if (a === null) return false;
  const u = a >>> 0;
  return u !== 0 && u !== 0xffffffff && u >>> 28 !== 0xe && u >>> 24 !== 127;
}

function unicast6(s: string): boolean {
  const w = ipv6TextWords(s);
  return w !== null && ipv6UsableUnicast(w);
}

/** A neighbour's address family, or null when it is no unicast address. */
function neighborFamily(address: string): 4 | 6 | null {
  if (unicast4(address)) return 4;
  if (address.includes(":") && unicast6(address)) return 6;
  return null;
}

/** Text BIRD reads inside double quotes: no quote, backslash or control character. */
function quotable(s: string): boolean {
  return !/["\\\p{Cc}]/u.test(s);
}

function asErrors(field: string, as: number, out: string[]): void {
  if (!Number.isInteger(as) || as < 1 || as > AS_MAX)
    out.push(`${field}: AS number must be 1..${AS_MAX}, not ${as}`);
  else if (as === AS_TRANS) out.push(`${field}: ${AS_TRANS} is AS_TRANS (RFC 6793), not a usable AS number`);
}

function timerErrors(c: { holdTime: number; keepaliveTime: number }, out: string[]): void {
  if (!Number.isInteger(c.holdTime) || c.holdTime < HOLD_MIN || c.holdTime > HOLD_MAX)
    out.push(`hold_time: must be ${HOLD_MIN}..${HOLD_MAX} seconds (RFC 4271), not ${c.holdTime}`);
  if (!Number.isInteger(c.keepaliveTime) || c.keepaliveTime < 1)
    out.push(`keepalive_time: must be a whole number of seconds, at least 1, not ${c.keepaliveTime}`);
  else if (c.keepaliveTime >= c.holdTime)
    out.push(
      `keepalive_time: must be less than hold_time (${c.keepaliveTime} >= ${c.holdTime}; a third of it is usual)`,
    );
}

function commonErrors(
  c: {
    routerId: string;
    localAs: number;
    neighbors: BgpNeighbor[];
    holdTime: number;
    keepaliveTime: number;
    connectRetryTime?: number;
  },
  out: string[],
): void {
  if (c.connectRetryTime !== undefined && (!Number.isInteger(c.connectRetryTime) || c.connectRetryTime < 1))
    out.push(`connect_retry_time: must be a whole number of seconds, at least 1, not ${c.connectRetryTime}`);
  if (!unicast4(c.routerId)) out.push(`router_id: must be an IPv4 unicast address, not "${c.routerId}"`);
  asErrors("local_as", c.localAs, out);
  timerErrors(c, out);
  if (c.neighbors.length === 0) out.push("neighbors: at least one neighbour is needed");
  const seen = new Set<string>();
  c.neighbors.forEach((n, i) => {
    const f = `neighbors[${i}]`;
    const fam = neighborFamily(n.address);
    if (fam === null) out.push(`${f}.address: must be an IPv4 or IPv6 unicast address, not "${n.address}"`);
    else {
      const key = fam === 4 ? ipv4Text(n.address) : canonicalIPv6(n.address);
      if (key !== null && seen.has(key)) out.push(`${f}.address: ${key} is listed twice`);
      if (key !== null) seen.add(key);
    }
    asErrors(`${f}.as`, n.as, out);
    if (n.port !== undefined && (!Number.isInteger(n.port) || n.port < 1 || n.port > 65535))
      out.push(`${f}.port: must be 1..65535, not ${n.port}`);
    if (n.password !== undefined && (n.password === "" || n.password.length > 80 || !quotable(n.password)))
      out.push(`${f}.password: 1..80 characters, no quote, backslash or control character`);
  });
}

/** What is wrong with a director's settings, one message a problem, each naming its field. */
export function validateDirectorBgp(c: DirectorBgp): string[] {
  const out: string[] = [];
  commonErrors(c, out);
  const seen = new Set<string>();
  c.vips4.forEach((v, i) => {
    const t = unicast4(v) ? ipv4Text(v) : null;
    if (t === null) out.push(`vips4[${i}]: must be an IPv4 unicast address, not "${v}"`);
    else if (seen.has(t)) out.push(`vips4[${i}]: ${t} is listed twice`);
    else seen.add(t);
  });
  c.vips6.forEach((v, i) => {
    const t = unicast6(v) ? canonicalIPv6(v) : null;
    if (t === null) out.push(`vips6[${i}]: must be an IPv6 unicast address, not "${v}"`);
    else if (seen.has(t)) out.push(`vips6[${i}]: ${t} is listed twice`);
    else seen.add(t);
  });
  // Only when every neighbour's address is good: a bad one is reported already.
  const fams = new Set(c.neighbors.map((n) => neighborFamily(n.address)));
  const known = c.neighbors.length > 0 && !fams.has(null);
  if (known && c.vips4.length > 0 && !fams.has(4))
    out.push("neighbors: IPv4 VIPs are announced over an IPv4 session, and there is none");
  if (known && c.vips6.length > 0 && !fams.has(6))
    out.push("neighbors: IPv6 VIPs are announced over an IPv6 session, and there is none");
  const n = c.livenessIfname;
  if (n === "" || n.length > IFNAME_MAX || n === "." || n === ".." || /[/:\s"\\]/.test(n))
    out.push(
      `liveness_interface: "${n}" is not an interface name (1..${IFNAME_MAX} characters, no / : space or quote)`,
    );
  return out;
}

/** What is wrong with an upstream router's settings (see validateDirectorBgp). */
export function validateRouterBgp(c: RouterBgp): string[] {
  const out: string[] = [];
  commonErrors(c, out);
  if (!Number.isInteger(c.ecmpLimit) || c.ecmpLimit < 1 || c.ecmpLimit > 255)
    out.push(`ecmp_limit: must be 1..255 next hops, not ${c.ecmpLimit}`);
  if (
    c.kernelTable !== undefined &&
    (!Number.isInteger(c.kernelTable) || c.kernelTable < 1 || c.kernelTable > 0xfffffffe)
  )
    out.push(`kernel_table: must be a routing table number 1..4294967294, not ${c.kernelTable}`);
  return out;
}

/** A name BIRD takes as a symbol: letters, digits and '_' ("ADDR" with '.' and ':' as '_'). */
function symbol(prefix: string, address: string): string {
  return `${prefix}_${address.replace(/[.:]/g, "_")}`;
}

/** The static protocol that announces a VIP (canonical text of either family). */
export function vipProtocolName(vip: string): string {
  return symbol(vip.includes(":") ? "tsvs_vip6" : "tsvs_vip4", vip);
}

/** The BGP protocol of a neighbour, as `birdc show protocols` lists it. */
export function neighborProtocolName(n: Pick<BgpNeighbor, "address">): string {
  return symbol("tsvs_peer", neighborKey(n.address));
}

function neighborKey(address: string): string {
  return (address.includes(":") ? canonicalIPv6(address) : ipv4Text(address)) ?? address;
}

/** The canonical texts of a director's VIPs, IPv4 first, as the daemon and the file name them. */
export function canonicalVips(c: Pick<DirectorBgp, "vips4" | "vips6">): string[] {
  return [...c.vips4.map((v) => ipv4Text(v) ?? v), ...c.vips6.map((v) => canonicalIPv6(v) ?? v)];
}

function header(kind: string, routerId: string, opts: BirdConfOptions | undefined): string[] {
  const lines = [
    `# BIRD 2 configuration of a tsvs ${kind}, generated by tsvs (docs/scale-out.md): edits are overwritten.`,
  ];
  if (opts?.logFile !== undefined) {
    if (!quotable(opts.logFile))
      throw new TsvsError("TSVS_ERR_INVALID", `log file: cannot quote ${opts.logFile}`);
    lines.push(`log "${opts.logFile}" all;`);
  }
  lines.push(`router id ${ipv4Text(routerId)};`, "");
  // Interfaces as netlink reports them; the scan is only a safety net.
  lines.push("protocol device {", "  scan time 10;", "}", "");
  return lines;
}

function sessionLines(
  c: { localAs: number; holdTime: number; keepaliveTime: number },
  n: BgpNeighbor,
  bfd: boolean,
  connectRetry: number | undefined,
): string[] {
  const addr = neighborKey(n.address);
  const out = [
    `  local as ${c.localAs};`,
    `  neighbor ${addr}${n.port !== undefined && n.port !== 179 ? ` port ${n.port}` : ""} as ${n.as};`,
    `  hold time ${c.holdTime};`,
    `  keepalive time ${c.keepaliveTime};`,
  ];
  // BIRD waits 5 s before the first attempt and 120 s between attempts by default.
  if (connectRetry !== undefined)
    out.push("  connect delay time 1;", `  connect retry time ${connectRetry};`);
  if (n.password !== undefined) out.push(`  password "${n.password}";`);
  if (bfd) out.push("  bfd on;");
  return out;
}

function bfdLines(): string[] {
  // 100 ms x 3: a dead neighbour is noticed within ~0.3 s instead of the hold time.
  return [
    "protocol bfd {",
    '  interface "*" {',
    "    min rx interval 100 ms;",
    "    min tx interval 100 ms;",
    "    multiplier 3;",
    "  };",
    "}",
    "",
  ];
}

/** `net ~ [ ... ]` over the VIP routes of one family. */
function prefixSet(vips: readonly string[], len: number): string {
  return `[ ${vips.map((v) => `${v}/${len}`).join(", ")} ]`;
}

/**
 * The director's BIRD configuration: one static protocol a VIP (a /32 or /128 route via the
 * liveness interface, `disabled` when not announced now), one BGP session a neighbour exporting
 * those routes alone with this director as next hop, importing nothing. Throws TsvsError
 * (TSVS_ERR_INVALID) with validateDirectorBgp's messages.
 */
export function directorBirdConf(c: DirectorBgp, opts?: BirdConfOptions): string {
  const errors = validateDirectorBgp(c);
  if (errors.length > 0) throw new TsvsError("TSVS_ERR_INVALID", errors.join("\n"));
  const lines = header("director", c.routerId, opts);
  const v4 = c.vips4.map((v) => ipv4Text(v) as string);
  const v6 = c.vips6.map((v) => canonicalIPv6(v) as string);
  for (const vip of [...v4, ...v6]) {
    const six = vip.includes(":");
    lines.push(`protocol static ${vipProtocolName(vip)} {`);
    if (opts?.announced !== undefined && !opts.announced.has(vip)) lines.push("  disabled;");
    lines.push(
      `  ${six ? "ipv6" : "ipv4"};`,
      `  route ${vip}/${six ? 128 : 32} via "${c.livenessIfname}";`,
      "}",
      "",
    );
  }
  const anyBfd = c.neighbors.some((n) => n.bfd ?? c.bfd ?? false);
  if (anyBfd) lines.push(...bfdLines());
  for (const n of c.neighbors) {
    const six = neighborFamily(n.address) === 6;
    const vips = six ? v6 : v4;
    lines.push(`protocol bgp ${neighborProtocolName(n)} {`);
    lines.push(...sessionLines(c, n, n.bfd ?? c.bfd ?? false, c.connectRetryTime));
    lines.push(`  ${six ? "ipv6" : "ipv4"} {`, "    import none;");
    // Only the VIP routes of our static protocols, whatever else this BIRD may carry.
    lines.push(
      vips.length === 0
        ? "    export none;"
        : `    export where source = RTS_STATIC && net ~ ${prefixSet(vips, six ? 128 : 32)};`,
    );
    lines.push("    next hop self;", "  };", "}", "");
  }
  return lines.join("\n");
}

/**
 * The upstream router's BIRD configuration: every director's routes imported, nothing exported
 * back to them, and the best routes of a prefix merged (ECMP) into the kernel table, at most
 * ecmpLimit next hops. Throws TsvsError (TSVS_ERR_INVALID) with validateRouterBgp's messages.
 */
export function routerBirdConf(c: RouterBgp, opts?: { logFile?: string }): string {
  const errors = validateRouterBgp(c);
  if (errors.length > 0) throw new TsvsError("TSVS_ERR_INVALID", errors.join("\n"));
  const lines = header("upstream router", c.routerId, opts);
  const fams = new Set(c.neighbors.map((n) => neighborFamily(n.address)));
  for (const fam of [4, 6] as const) {
    if (!fams.has(fam)) continue;
    lines.push(
      `protocol kernel tsvs_kernel${fam} {`,
      `  ipv${fam} {`,
      "    import none;",
      "    export where source = RTS_BGP;",
      "  };",
      `  merge paths on limit ${c.ecmpLimit};`,
    );
    if (c.kernelTable !== undefined) lines.push(`  kernel table ${c.kernelTable};`);
    lines.push("}", "");
  }
  if (c.neighbors.some((n) => n.bfd === true)) lines.push(...bfdLines());
  for (const n of c.neighbors) {
    const six = neighborFamily(n.address) === 6;
    lines.push(`protocol bgp ${symbol("tsvs_director", neighborKey(n.address))} {`);
    lines.push(...sessionLines(c, n, n.bfd === true, c.connectRetryTime));
    lines.push(`  ${six ? "ipv6" : "ipv4"} {`, "    import all;", "    export none;", "  };", "}", "");
  }
  return lines.join("\n");
}

/**
 * The VIPs of a configuration's virtual servers, each once, canonical text: IPv4 and IPv6 apart.
 * A fwmark service has no address of its own: nothing of it is announced.
 */
export function bgpVips(virtualServers: ReadonlyArray<{ fwmark: number; addr: number; addr6?: string }>): {
  vips4: string[];
  vips6: string[];
} {
  const v4 = new Set<string>();
  const v6 = new Set<string>();
  for (const vs of virtualServers) {
    if (vs.fwmark !== 0) continue;
    if (vs.addr6 !== undefined) v6.add(canonicalIPv6(vs.addr6) ?? vs.addr6);
    else v4.add(formatIPv4(vs.addr >>> 0));
  }
  return { vips4: [...v4], vips6: [...v6] };
}

/**
 * A configuration's bgp section checked as the director's BIRD will be (validateDirectorBgp), its
 * router id aside when it is left to the daemon (null).
 */
export function bgpConfigErrors(
  bgp: Omit<DirectorBgp, "routerId" | "vips4" | "vips6"> & { routerId: string | null },
  vips: { vips4: string[]; vips6: string[] },
): string[] {
  const errors = validateDirectorBgp({ ...bgp, ...vips, routerId: bgp.routerId ?? "192.0.2.1" });
  return bgp.routerId === null ? errors.filter((e) => !e.startsWith("router_id:")) : errors;
}
