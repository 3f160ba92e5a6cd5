// Firewall-mark classifier: the subset of `iptables -t mangle -A PREROUTING ... -j MARK` that
// IPVS fwmark services are configured with (keepalived and LVS how-tos), applied to every IPv4
// packet before the service lookup, as the mangle PREROUTING hook runs before ip_vs_in.
//
// Matches: -s/-d (net/ipv4/netfilter/ip_tables.c ip_packet_match), -p, -f, -i, the tcp/udp
// port matches (net/netfilter/xt_tcpudp.c) and -m multiport (xt_multiport.c); target MARK
// (xt_mark.c: mark = (mark & ~mask) ^ value, which --set-mark, --set-xmark, --and-mark,
// --or-mark and --xor-mark all reduce to, as libxt_MARK.c does). Every matching rule applies its
// target and evaluation continues, so with full-mask --set-mark the last matching rule wins.
//
// Rules compile into flat objects of numbers; classify() reads them and allocates nothing.

import { formatIPv4, maskToPrefix, parseIPv4, prefixToMask } from "./addr.js";
import { TsvsError } from "./errors.js";
import type { Flow } from "./packet/flow.js";

export interface FwmarkOptions {
  /**
   * Resolves `-i NAME` when a rule is added. Without it, rules with -i are refused. The
   * interface must exist when the rule is added (iptables matches names per packet; resolving
   * once keeps classify() free of strings).
   */
  ifindexOf?: (name: string) => number | undefined;
}

export interface FwmarkRuleView {
  id: number;
  rule: string;
}

/** Port list of -m multiport; xt_multiport.h XT_MULTI_PORTS. Ranges count as two. */
const MULTI_PORTS = 15;

const F_NEG_SRC = 1 << 0;
const F_NEG_DST = 1 << 1;
const F_NEG_PROTO = 1 << 2;
const F_NEG_IF = 1 << 3;
const F_NEG_SPORT = 1 << 4;
const F_NEG_DPORT = 1 << 5;
const F_NEG_MULTI = 1 << 6;
const F_SPORT = 1 << 7;
const F_DPORT = 1 << 8;
/** -f: only second and further fragments; with F_FRAG_NEG: only unfragmented and first. */
const F_FRAG = 1 << 9;
const F_FRAG_NEG = 1 << 10;

const MULTI_NONE = 0;
const MULTI_SRC = 1;
const MULTI_DST = 2;
const MULTI_ANY = 3;
const MULTI_OPT = ["", "--sports", "--dports", "--ports"] as const;

const PROTO_NAMES: Record<string, number> = { all: 0, icmp: 1, tcp: 6, udp: 17 };

interface Rule {
  id: number;
  flags: number;
  saddr: number;
  smask: number;
  daddr: number;
  dmask: number;
  /** 0 = any (iptables -p all). */
  proto: number;
  /** -1 = any. */
  ifindex: number;
  ifname: string;
  sportLo: number;
  sportHi: number;
  dportLo: number;
  dportHi: number;
  multi: number;
  /** Pairs lo, hi; multiCount pairs used. */
  multiPorts: Uint16Array;
  multiCount: number;
  /** MARK target: mark = (mark & ~markMask) ^ markXor. */
  markMask: number;
  markXor: number;
  text: string;
}

function parseErr(msg: string): TsvsError {
  return new TsvsError("TSVS_ERR_PARSE", msg);
}

/** strtoul(s, 0) over the whole token, as xtables_strtoui: decimal, 0x hex, leading-0 octal. */
function parseU32(s: string): number | null {
  let v: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) v = Number.parseInt(s.slice(2), 16);
  else if (/^0[0-7]+$/.test(s)) v = Number.parseInt(s.slice(1), 8);
  else if (/^\d+$/.test(s)) v = Number(s);
  else return null;
  return v <= 0xffffffff ? v : null;
}

function parsePort(s: string): number {
  if (/^\d{1,5}$/.test(s)) {
    const p = Number(s);
    if (p <= 65535) return p;
  }
  throw parseErr(`invalid port/service \`${s}' specified`);
}

/** "P", "P:Q", ":Q", "P:" as xtables_parse_port + tcp_parse_ports. */
function parsePortRange(s: string): [number, number] {
  const i = s.indexOf(":");
  if (i < 0) {
    const p = parsePort(s);
    return [p, p];
  }
  const lo = i === 0 ? 0 : parsePort(s.slice(0, i));
  const hi = i === s.length - 1 ? 65535 : parsePort(s.slice(i + 1));
  if (lo > hi) throw parseErr(`invalid portrange (min > max) \`${s}' specified`);
  return [lo, hi];
}

function parseAddrMask(s: string): [number, number] {
  const slash = s.indexOf("/");
  const a = parseIPv4(slash < 0 ? s : s.slice(0, slash));
  if (a === null) throw parseErr(`host/network \`${slash < 0 ? s : s.slice(0, slash)}' not found`);
  let mask = 0xffffffff;
  if (slash >= 0) {
    const m = s.slice(slash + 1);
    const dotted = parseIPv4(m);
    if (dotted !== null) mask = dotted;
    else if (/^\d{1,2}$/.test(m) && Number(m) <= 32) mask = prefixToMask(Number(m));
    else throw parseErr(`invalid mask \`${m}' specified`);
  }
  return [(a & mask) >>> 0, mask >>> 0];
}

function formatAddrMask(a: number, m: number): string {
  const p = maskToPrefix(m);
  return `${formatIPv4(a)}/${p >= 0 ? p : formatIPv4(m)}`;
}

function formatRange(lo: number, hi: number): string {
  return lo === hi ? `${lo}` : `${lo}:${hi}`;
}

function hex(v: number): string {
  return `0x${(v >>> 0).toString(16)}`;
}

function protoName(p: number): string {
  for (const k in PROTO_NAMES) if (PROTO_NAMES[k] === p) return k;
  return `${p}`;
}

/** The rule as `iptables -S` would print it (without the chain), which add() accepts again. */
function canonical(r: Rule): string {
  const out: string[] = [];
  const neg = (f: number): string => ((r.flags & f) !== 0 ? "! " : "");
  if (r.smask !== 0 || (r.flags & F_NEG_SRC) !== 0)
    out.push(`${neg(F_NEG_SRC)}-s ${formatAddrMask(r.saddr, r.smask)}`);
  if (r.dmask !== 0 || (r.flags & F_NEG_DST) !== 0)
    out.push(`${neg(F_NEG_DST)}-d ${formatAddrMask(r.daddr, r.dmask)}`);
  if (r.ifindex >= 0) out.push(`${neg(F_NEG_IF)}-i ${r.ifname}`);
  if (r.proto !== 0) out.push(`${neg(F_NEG_PROTO)}-p ${protoName(r.proto)}`);
  if ((r.flags & F_FRAG) !== 0) out.push(`${(r.flags & F_FRAG_NEG) !== 0 ? "! " : ""}-f`);
  if ((r.flags & (F_SPORT | F_DPORT)) !== 0) {
    out.push(`-m ${protoName(r.proto)}`);
    if ((r.flags & F_SPORT) !== 0)
      out.push(`${neg(F_NEG_SPORT)}--sport ${formatRange(r.sportLo, r.sportHi)}`);
    if ((r.flags & F_DPORT) !== 0)
      out.push(`${neg(F_NEG_DPORT)}--dport ${formatRange(r.dportLo, r.dportHi)}`);
  }
  if (r.multi !== MULTI_NONE) {
    const ports: string[] = [];
    for (let i = 0; i < r.multiCount; i++)
      ports.push(formatRange(r.multiPorts[2 * i], r.multiPorts[2 * i + 1]));
    out.push(`-m multiport ${neg(F_NEG_MULTI)}${MULTI_OPT[r.multi]} ${ports.join(",")}`);
  }
  out.push(`-j MARK --set-xmark ${hex(r.markXor)}/${hex(r.markMask)}`);
  return out.join(" ");
}

export class FwmarkClassifier {
  private readonly ifindexOf: ((name: string) => number | undefined) | undefined;
  /** In evaluation order (the order rules were added, as -A appends). */
  private rules: Rule[] = [];
  private nextId = 1;

  constructor(opts: FwmarkOptions = {}) {
    this.ifindexOf = opts.ifindexOf;
  }

  get size(): number {
    return this.rules.length;
  }

  /** Appends a rule; returns its id. Throws TsvsError TSVS_ERR_PARSE naming the offending token. */
  add(rule: string): number {
    const r = this.compile(rule);
    r.id = this.nextId++;
    this.rules.push(r);
    return r.id;
  }

  remove(id: number): boolean {
    const i = this.rules.findIndex((r) => r.id === id);
    if (i < 0) return false;
    this.rules.splice(i, 1);
    return true;
  }

  clear(): void {
    this.rules = [];
  }

  list(): FwmarkRuleView[] {
    return this.rules.map((r) => ({ id: r.id, rule: r.text }));
  }

  /**
   * Does a rule match `addr` as one host (`-d A` or `-d A/32`, not negated)? Such an address
   * is the VIP of a firewall-mark service, and the director answers ARP and ping for it.
   */
  matchesHost(addr: number): boolean {
    addr >>>= 0;
    for (const r of this.rules) {
      if (r.dmask === 0xffffffff && (r.flags & F_NEG_DST) === 0 && r.daddr === addr) return true;
    }
    return false;
  }

  /** The mark the mangle table would leave on this packet; 0 when no rule matches. */
  classify(f: Flow): number {
    const rules = this.rules;
    const nonFirst = f.fragment && !f.firstFragment;
    let mark = 0;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i];
      const fl = r.flags;
      if (((f.saddr & r.smask) >>> 0 === r.saddr) === ((fl & F_NEG_SRC) !== 0)) continue;
      if (((f.daddr & r.dmask) >>> 0 === r.daddr) === ((fl & F_NEG_DST) !== 0)) continue;
      if (r.ifindex >= 0 && (f.ifindex === r.ifindex) === ((fl & F_NEG_IF) !== 0)) continue;
      if (r.proto !== 0 && (f.proto === r.proto) === ((fl & F_NEG_PROTO) !== 0)) continue;
      if ((fl & F_FRAG) !== 0 && nonFirst === ((fl & F_FRAG_NEG) !== 0)) continue;
      if ((fl & (F_SPORT | F_DPORT)) !== 0 || r.multi !== MULTI_NONE) {
        // xt_tcpudp / xt_multiport: a non-first fragment has no ports and never matches,
        // negated or not.
        if (nonFirst) continue;
        if (
          (fl & F_SPORT) !== 0 &&
          (f.sport >= r.sportLo && f.sport <= r.sportHi) === ((fl & F_NEG_SPORT) !== 0)
        )
          continue;
        if (
          (fl & F_DPORT) !== 0 &&
          (f.dport >= r.dportLo && f.dport <= r.dportHi) === ((fl & F_NEG_DPORT) !== 0)
        )
          continue;
        if (r.multi !== MULTI_NONE && multiMatch(r, f.sport, f.dport) === ((fl & F_NEG_MULTI) !== 0))
          continue;
      }
      mark = ((mark & ~r.markMask) ^ r.markXor) >>> 0;
    }
    return mark;
  }

  private compile(text: string): Rule {
    const tok = text
      .trim()
      .split(/\s+/)
      .filter((t) => t.length > 0);
    const r: Rule = {
      id: 0,
      flags: 0,
      saddr: 0,
      smask: 0,
      daddr: 0,
      dmask: 0,
      proto: 0,
      ifindex: -1,
      ifname: "",
      sportLo: 0,
      sportHi: 65535,
      dportLo: 0,
      dportHi: 65535,
      multi: MULTI_NONE,
      multiPorts: new Uint16Array(2 * MULTI_PORTS),
      multiCount: 0,
      markMask: 0,
      markXor: 0,
      text: "",
    };
    const seen = new Set<string>();
    let protoSet = false;
    let target = "";
    let markSet = false;
    let multiLoaded = false;
    const explicitMatches: string[] = [];
    let i = 0;

    const once = (key: string, shown: string): void => {
      if (seen.has(key)) throw parseErr(`multiple ${shown} flags not allowed`);
      seen.add(key);
    };
    const arg = (opt: string): string => {
      const v = tok[i + 1];
      if (v === undefined || v === "!") throw parseErr(`option "${opt}" requires an argument`);
      i++;
      return v;
    };
    const noNeg = (neg: boolean, opt: string): void => {
      if (neg) throw parseErr(`cannot have ! before ${opt}`);
    };
    const setMark = (opt: string, v: string, kind: "set" | "xset" | "and" | "or" | "xor"): void => {
      if (target !== "MARK") throw parseErr(`unknown option "${opt}"`);
      if (markSet) throw parseErr("MARK target: Can't specify --set-mark twice");
      markSet = true;
      const slash = v.indexOf("/");
      const value = parseU32(slash < 0 ? v : v.slice(0, slash));
      const mask = slash < 0 ? 0xffffffff : parseU32(v.slice(slash + 1));
      if (
        value === null ||
        mask === null ||
        (slash >= 0 && (kind === "and" || kind === "or" || kind === "xor"))
      )
        throw parseErr(`Bad MARK value \`${v}'`);
      // libxt_MARK.c mark_tg_parse: every form as (mask, xor-value).
      switch (kind) {
        case "set":
          r.markXor = value;
          r.markMask = (value | mask) >>> 0;
          break;
        case "xset":
          r.markXor = value;
          r.markMask = mask;
          break;
        case "and":
          r.markXor = 0;
          r.markMask = ~value >>> 0;
          break;
        case "or":
          r.markXor = value;
          r.markMask = value;
          break;
        case "xor":
          r.markXor = value;
          r.markMask = 0;
          break;
      }
    };

    for (; i < tok.length; i++) {
      let t = tok[i];
      let neg = false;
      if (t === "!") {
        neg = true;
        i++;
        t = tok[i];
        if (t === undefined) throw parseErr("Bad argument `!'");
        if (t === "!") throw parseErr("consecutive ! not allowed");
      }
      switch (t) {
        case "-t":
        case "--table": {
          noNeg(neg, t);
          const v = arg(t);
          if (v !== "mangle") throw parseErr(`table \`${v}' not supported: fwmark rules live in mangle`);
          break;
        }
        case "-A":
        case "--append": {
          noNeg(neg, t);
          const v = arg(t);
          if (v !== "PREROUTING")
            throw parseErr(`chain \`${v}' not supported: fwmark rules are mangle PREROUTING rules`);
          break;
        }
        case "-s":
        case "--source":
        case "--src": {
          once("-s", "-s");
          [r.saddr, r.smask] = parseAddrMask(arg(t));
          if (neg) r.flags |= F_NEG_SRC;
          break;
        }
        case "-d":
        case "--destination":
        case "--dst": {
          once("-d", "-d");
          [r.daddr, r.dmask] = parseAddrMask(arg(t));
          if (neg) r.flags |= F_NEG_DST;
          break;
        }
        case "-p":
        case "--protocol": {
          once("-p", "-p");
          const v = arg(t);
          const named = PROTO_NAMES[v.toLowerCase()];
          let p: number;
          if (named !== undefined) p = named;
          else if (/^\d{1,3}$/.test(v) && Number(v) <= 255) p = Number(v);
          else throw parseErr(`unknown protocol "${v}" specified`);
          if (p === 0 && neg) throw parseErr("rule would never match protocol");
          r.proto = p;
          protoSet = true;
          if (neg) r.flags |= F_NEG_PROTO;
          break;
        }
        case "-f":
        case "--fragment":
          once("-f", "-f");
          r.flags |= F_FRAG | (neg ? F_FRAG_NEG : 0);
          break;
        case "-i":
        case "--in-interface": {
          once("-i", "-i");
          const v = arg(t);
          if (this.ifindexOf === undefined)
            throw parseErr(`-i ${v}: interface matching needs an interface resolver (option ifindexOf)`);
          if (v.endsWith("+")) throw parseErr(`interface wildcard \`${v}' not supported`);
          const ix = this.ifindexOf(v);
          if (ix === undefined) throw parseErr(`interface \`${v}' not found`);
          r.ifindex = ix;
          r.ifname = v;
          if (neg) r.flags |= F_NEG_IF;
          break;
        }
        case "-m":
        case "--match": {
          noNeg(neg, t);
          const v = arg(t);
          if (v === "multiport") multiLoaded = true;
          else if (v === "tcp" || v === "udp") explicitMatches.push(v);
          else throw parseErr(`Couldn't load match \`${v}': only tcp, udp and multiport are supported`);
          break;
        }
        case "--sport":
        case "--source-port":
        case "--dport":
        case "--destination-port": {
          const src = t === "--sport" || t === "--source-port";
          once(src ? "--sport" : "--dport", src ? "--sport" : "--dport");
          const [lo, hi] = parsePortRange(arg(t));
          if (src) {
            r.sportLo = lo;
            r.sportHi = hi;
            r.flags |= F_SPORT | (neg ? F_NEG_SPORT : 0);
          } else {
            r.dportLo = lo;
            r.dportHi = hi;
            r.flags |= F_DPORT | (neg ? F_NEG_DPORT : 0);
          }
          break;
        }
        case "--sports":
        case "--source-ports":
        case "--dports":
        case "--destination-ports":
        case "--ports": {
          if (!multiLoaded) throw parseErr(`unknown option "${t}" (needs -m multiport before it)`);
          if (r.multi !== MULTI_NONE) throw parseErr("multiport can only have one option");
          r.multi =
            t === "--ports" ? MULTI_ANY : t === "--sports" || t === "--source-ports" ? MULTI_SRC : MULTI_DST;
          const list = arg(t).split(",");
          let used = 0;
          let n = 0;
          for (const item of list) {
            if (item === "") throw parseErr(`invalid port/service \`' specified`);
            const range = item.includes(":");
            used += range ? 2 : 1;
            if (used > MULTI_PORTS) throw parseErr("too many ports specified");
            const [lo, hi] = range ? parsePortRange(item) : [parsePort(item), parsePort(item)];
            r.multiPorts[2 * n] = lo;
            r.multiPorts[2 * n + 1] = hi;
            n++;
          }
          r.multiCount = n;
          if (neg) r.flags |= F_NEG_MULTI;
          break;
        }
        case "-j":
        case "--jump": {
          noNeg(neg, t);
          if (target !== "") throw parseErr("multiple -j flags not allowed");
          const v = arg(t);
          if (v !== "MARK") throw parseErr(`target \`${v}' not supported: only -j MARK`);
          target = v;
          break;
        }
        case "--set-mark":
          noNeg(neg, t);
          setMark(t, arg(t), "set");
          break;
        case "--set-xmark":
          noNeg(neg, t);
          setMark(t, arg(t), "xset");
          break;
        case "--and-mark":
          noNeg(neg, t);
          setMark(t, arg(t), "and");
          break;
        case "--or-mark":
          noNeg(neg, t);
          setMark(t, arg(t), "or");
          break;
        case "--xor-mark":
          noNeg(neg, t);
          setMark(t, arg(t), "xor");
          break;
        default:
          if (t.startsWith("-")) throw parseErr(`unknown option "${t}"`);
          throw parseErr(`Bad argument \`${t}'`);
      }
    }

    const hasPorts = (r.flags & (F_SPORT | F_DPORT)) !== 0 || r.multi !== MULTI_NONE;
    const tcpUdp = protoSet && (r.proto === 6 || r.proto === 17);
    for (const m of explicitMatches) {
      if (!protoSet || protoName(r.proto) !== m) throw parseErr(`-m ${m} needs \`-p ${m}'`);
    }
    if (hasPorts) {
      if (!tcpUdp) {
        const opt =
          r.multi !== MULTI_NONE ? MULTI_OPT[r.multi] : (r.flags & F_SPORT) !== 0 ? "--sport" : "--dport";
        throw parseErr(
          r.multi !== MULTI_NONE && (r.flags & (F_SPORT | F_DPORT)) === 0
            ? "multiport needs `-p tcp' or `-p udp'"
            : `unknown option "${opt}" (ports need -p tcp or -p udp)`,
        );
      }
      if ((r.flags & F_NEG_PROTO) !== 0) throw parseErr("rule would never match protocol");
    }
    if (multiLoaded && r.multi === MULTI_NONE) throw parseErr("multiport expects an option");
    if (target === "") throw parseErr("-j MARK --set-mark N is required");
    if (!markSet) throw parseErr("MARK target: Parameter --set/and/or/xor-mark is required");
    r.text = canonical(r);
    return r;
  }
}

function multiMatch(r: Rule, sport: number, dport: number): boolean {
  const p = r.multiPorts;
  const m = r.multi;
  for (let i = 0; i < r.multiCount; i++) {
    const lo = p[2 * i];
    const hi = p[2 * i + 1];
    if (m !== MULTI_DST && sport >= lo && sport <= hi) return true;
    if (m !== MULTI_SRC && dport >= lo && dport <= hi) return true;
  }
  return false;
}
