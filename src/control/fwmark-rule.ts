// iptables text for firewall-mark rules: `[-t mangle] [-A PREROUTING] MATCHES -j MARK --set-mark N`
// parsed into the core's compiled form (src/core/fwmark.ts) and printed back as `iptables -S`
// prints it, which the parser accepts again. One parser for iptables and ip6tables: the rule's
// family is its addresses' (a rule without -s/-d is an iptables rule, as typed at iptables),
// or `-6` (`--ipv6`, the option iptables-restore files use to say a rule is ip6tables'), which
// the printed form keeps where no address tells the family. Messages follow iptables' own (xtables.c,
// libxt_tcp.c, libxt_multiport.c, libxt_MARK.c). Parsing is control-plane work: the data path
// only ever sees compiled rules.

import {
  formatIPv4,
  formatIPv6,
  ipv6FromWords,
  ipv6MaskToPrefix,
  ipv6MaskWords,
  ipv6ToWords,
  maskToPrefix,
  parseIPv4,
  parseIPv6,
  prefixToMask,
} from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import {
  F_DPORT,
  F_FRAG,
  F_FRAG_NEG,
  F_NEG_DPORT,
  F_NEG_DST,
  F_NEG_IF,
  F_NEG_MULTI,
  F_NEG_PROTO,
  F_NEG_SPORT,
  F_NEG_SRC,
  F_SPORT,
  type FwmarkRule,
  MULTI_ANY,
  MULTI_DST,
  MULTI_NONE,
  MULTI_OPT,
  MULTI_PORTS,
  MULTI_SRC,
  PROTO_NAMES,
} from "../core/fwmark.js";

type Rule = FwmarkRule;

/** Resolves `-i NAME` when the rule is parsed; without it, rules with -i are refused. */
export type IfindexOf = (name: string) => number | undefined;

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

/**
 * ip6tables' -s/-d: ADDR[/PREFIX|/MASK] (xtables_ip6parse_any) as words into out[off..+8]: the
 * address under the mask, then the mask.
 */
function parseAddrMask6(s: string, out: Int32Array, off: number): void {
  const slash = s.indexOf("/");
  const host = slash < 0 ? s : s.slice(0, slash);
  const a = parseIPv6(host);
  if (a === null) throw parseErr(`host/network \`${host}' not found`);
  ipv6ToWords(a, 0, out, off);
  out.fill(-1, off + 4, off + 8);
  if (slash >= 0) {
    const m = s.slice(slash + 1);
    const asAddr = parseIPv6(m);
    if (asAddr !== null) ipv6ToWords(asAddr, 0, out, off + 4);
    else if (/^\d{1,3}$/.test(m) && Number(m) <= 128) ipv6MaskWords(out, off + 4, Number(m));
    else throw parseErr(`invalid mask \`${m}' specified`);
  }
  for (let k = 0; k < 4; k++) out[off + k] &= out[off + 4 + k];
}

function formatAddrMask6(w: Int32Array, off: number): string {
  const a = new Uint8Array(16);
  const m = new Uint8Array(16);
  ipv6FromWords(w, off, a, 0);
  ipv6FromWords(w, off + 4, m, 0);
  const p = ipv6MaskToPrefix(m);
  return `${formatIPv6(a)}/${p >= 0 ? p : formatIPv6(m)}`;
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
  if (r.af === 6) {
    // ip6tables -S prints ::/0 as nothing, as iptables does 0.0.0.0/0.
    const a = r.a6;
    const src = (a[4] | a[5] | a[6] | a[7]) !== 0 || (r.flags & F_NEG_SRC) !== 0;
    const dst = (a[12] | a[13] | a[14] | a[15]) !== 0 || (r.flags & F_NEG_DST) !== 0;
    if (!src && !dst) out.push("-6");
    if (src) out.push(`${neg(F_NEG_SRC)}-s ${formatAddrMask6(a, 0)}`);
    if (dst) out.push(`${neg(F_NEG_DST)}-d ${formatAddrMask6(a, 8)}`);
  } else {
    if (r.smask !== 0 || (r.flags & F_NEG_SRC) !== 0)
      out.push(`${neg(F_NEG_SRC)}-s ${formatAddrMask(r.saddr, r.smask)}`);
    if (r.dmask !== 0 || (r.flags & F_NEG_DST) !== 0)
      out.push(`${neg(F_NEG_DST)}-d ${formatAddrMask(r.daddr, r.dmask)}`);
  }
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

type MarkKind = "set" | "xset" | "and" | "or" | "xor";

const MARK_OPTIONS: Readonly<Record<string, MarkKind>> = {
  "--set-mark": "set",
  "--set-xmark": "xset",
  "--and-mark": "and",
  "--or-mark": "or",
  "--xor-mark": "xor",
};

/** libxt_MARK.c mark_tg_parse: every form of the target as (mask, xor-value). */
function markOf(kind: MarkKind, v: string): { mask: number; xor: number } {
  const slash = v.indexOf("/");
  const value = parseU32(slash < 0 ? v : v.slice(0, slash));
  const mask = slash < 0 ? 0xffffffff : parseU32(v.slice(slash + 1));
  if (value === null || mask === null || (slash >= 0 && (kind === "and" || kind === "or" || kind === "xor")))
    throw parseErr(`Bad MARK value \`${v}'`);
  switch (kind) {
    case "set":
      return { xor: value, mask: (value | mask) >>> 0 };
    case "xset":
      return { xor: value, mask };
    case "and":
      return { xor: 0, mask: ~value >>> 0 };
    case "or":
      return { xor: value, mask: value };
    case "xor":
      return { xor: value, mask: 0 };
  }
}

function emptyRule(): Rule {
  return {
    id: 0,
    af: 4,
    flags: 0,
    saddr: 0,
    smask: 0,
    daddr: 0,
    dmask: 0,
    a6: new Int32Array(16),
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
}

/** One pass over the tokens of one rule: an option per step, then the checks on the whole. */
class RuleParser {
  readonly r = emptyRule();
  private readonly tok: string[];
  private i = 0;
  private readonly seen = new Set<string>();
  private protoSet = false;
  private target = "";
  private markSet = false;
  private multiLoaded = false;
  private readonly explicitMatches: string[] = [];
  /** The family -4/-6 asked for (0: none), and the first address that told one ("" if none). */
  private familyFlag: 0 | 4 | 6 = 0;
  private familyAddr = "";

  constructor(
    text: string,
    private readonly ifindexOf: IfindexOf | undefined,
  ) {
    this.tok = text
      .trim()
      .split(/\s+/)
      .filter((t) => t.length > 0);
  }

  parse(): Rule {
    for (; this.i < this.tok.length; this.i++) {
      let t = this.tok[this.i];
      let neg = false;
      if (t === "!") {
        neg = true;
        t = this.tok[++this.i];
        if (t === undefined) throw parseErr("Bad argument `!'");
        if (t === "!") throw parseErr("consecutive ! not allowed");
      }
      this.option(t, neg);
    }
    this.finish();
    this.r.text = canonical(this.r);
    return this.r;
  }

  private once(key: string): void {
    if (this.seen.has(key)) throw parseErr(`multiple ${key} flags not allowed`);
    this.seen.add(key);
  }

  private arg(opt: string): string {
    const v = this.tok[this.i + 1];
    if (v === undefined || v === "!") throw parseErr(`option "${opt}" requires an argument`);
    this.i++;
    return v;
  }

  private option(t: string, neg: boolean): void {
    const noNeg = (): void => {
      if (neg) throw parseErr(`cannot have ! before ${t}`);
    };
    const mark = MARK_OPTIONS[t];
    if (mark !== undefined) {
      noNeg();
      this.mark(t, mark);
      return;
    }
    switch (t) {
      case "-t":
      case "--table":
        noNeg();
        return this.table(t);
      case "-A":
      case "--append":
        noNeg();
        return this.chain(t);
      case "-s":
      case "--source":
      case "--src":
        return this.address(t, "-s", neg);
      case "-d":
      case "--destination":
      case "--dst":
        return this.address(t, "-d", neg);
      case "-4":
      case "--ipv4":
      case "-6":
      case "--ipv6":
        noNeg();
        return this.family(t, t === "-4" || t === "--ipv4" ? 4 : 6);
      case "-p":
      case "--protocol":
        return this.protocol(t, neg);
      case "-f":
      case "--fragment":
        this.once("-f");
        this.r.flags |= F_FRAG | (neg ? F_FRAG_NEG : 0);
        return;
      case "-i":
      case "--in-interface":
        return this.inInterface(t, neg);
      case "-m":
      case "--match":
        noNeg();
        return this.match(t);
      case "--sport":
      case "--source-port":
        return this.port(t, true, neg);
      case "--dport":
      case "--destination-port":
        return this.port(t, false, neg);
      case "--sports":
      case "--source-ports":
      case "--dports":
      case "--destination-ports":
      case "--ports":
        return this.multiport(t, neg);
      case "-j":
      case "--jump":
        noNeg();
        return this.jump(t);
      default:
        if (t.startsWith("-")) throw parseErr(`unknown option "${t}"`);
        throw parseErr(`Bad argument \`${t}'`);
    }
  }

  private table(t: string): void {
    const v = this.arg(t);
    if (v !== "mangle") throw parseErr(`table \`${v}' not supported: fwmark rules live in mangle`);
  }

  private chain(t: string): void {
    const v = this.arg(t);
    if (v !== "PREROUTING")
      throw parseErr(`chain \`${v}' not supported: fwmark rules are mangle PREROUTING rules`);
  }

  /** xshared.c's -4/-6: iptables refuses -6 and ip6tables -4; here either names the rule's family. */
  private family(t: string, af: 4 | 6): void {
    if (this.familyFlag !== 0 && this.familyFlag !== af)
      throw parseErr("-4 and -6 together: a rule has one family");
    if (this.familyAddr !== "" && this.r.af !== af) this.mixed(t, af);
    this.familyFlag = af;
    this.r.af = af;
  }

  private mixed(what: string, af: 4 | 6): never {
    const other = this.familyAddr !== "" ? `\`${this.familyAddr}' is` : `-${this.familyFlag} says`;
    throw parseErr(
      `\`${what}' is IPv${af} but ${other} IPv${af === 4 ? 6 : 4}: a rule is an iptables (IPv4) or an ip6tables (IPv6) rule`,
    );
  }

  private address(t: string, key: "-s" | "-d", neg: boolean): void {
    this.once(key);
    const text = this.arg(t);
    const host = text.split("/")[0];
    const af = host.includes(":") ? 6 : 4;
    if ((this.familyAddr !== "" && this.r.af !== af) || (this.familyFlag !== 0 && this.familyFlag !== af))
      this.mixed(text, af);
    this.r.af = af;
    if (this.familyAddr === "") this.familyAddr = text;
    if (af === 6) {
      parseAddrMask6(text, this.r.a6, key === "-s" ? 0 : 8);
      if (neg) this.r.flags |= key === "-s" ? F_NEG_SRC : F_NEG_DST;
      return;
    }
    const [a, m] = parseAddrMask(text);
    if (key === "-s") {
      this.r.saddr = a;
      this.r.smask = m;
      if (neg) this.r.flags |= F_NEG_SRC;
    } else {
      this.r.daddr = a;
      this.r.dmask = m;
      if (neg) this.r.flags |= F_NEG_DST;
    }
  }

  private protocol(t: string, neg: boolean): void {
    this.once("-p");
    const v = this.arg(t);
    const named = PROTO_NAMES[v.toLowerCase()];
    let p: number;
    if (named !== undefined) p = named;
    else if (/^\d{1,3}$/.test(v) && Number(v) <= 255) p = Number(v);
    else throw parseErr(`unknown protocol "${v}" specified`);
    if (p === 0 && neg) throw parseErr("rule would never match protocol");
    this.r.proto = p;
    this.protoSet = true;
    if (neg) this.r.flags |= F_NEG_PROTO;
  }

  private inInterface(t: string, neg: boolean): void {
    this.once("-i");
    const v = this.arg(t);
    if (this.ifindexOf === undefined)
      throw parseErr(`-i ${v}: interface matching needs an interface resolver (option ifindexOf)`);
    if (v.endsWith("+")) throw parseErr(`interface wildcard \`${v}' not supported`);
    const ix = this.ifindexOf(v);
    if (ix === undefined) throw parseErr(`interface \`${v}' not found`);
    this.r.ifindex = ix;
    this.r.ifname = v;
    if (neg) this.r.flags |= F_NEG_IF;
  }

  private match(t: string): void {
    const v = this.arg(t);
    if (v === "multiport") this.multiLoaded = true;
    else if (v === "tcp" || v === "udp") this.explicitMatches.push(v);
    else throw parseErr(`Couldn't load match \`${v}': only tcp, udp and multiport are supported`);
  }

  private port(t: string, src: boolean, neg: boolean): void {
    this.once(src ? "--sport" : "--dport");
    const [lo, hi] = parsePortRange(this.arg(t));
    const r = this.r;
    if (src) {
      r.sportLo = lo;
      r.sportHi = hi;
      r.flags |= F_SPORT | (neg ? F_NEG_SPORT : 0);
    } else {
      r.dportLo = lo;
      r.dportHi = hi;
      r.flags |= F_DPORT | (neg ? F_NEG_DPORT : 0);
    }
  }

  private multiport(t: string, neg: boolean): void {
    const r = this.r;
    if (!this.multiLoaded) throw parseErr(`unknown option "${t}" (needs -m multiport before it)`);
    if (r.multi !== MULTI_NONE) throw parseErr("multiport can only have one option");
    r.multi =
      t === "--ports" ? MULTI_ANY : t === "--sports" || t === "--source-ports" ? MULTI_SRC : MULTI_DST;
    let used = 0;
    let n = 0;
    for (const item of this.arg(t).split(",")) {
      if (item === "") throw parseErr(`invalid port/service \`' specified`);
      const range = item.includes(":");
      // xt_multiport counts a range as two ports.
      used += range ? 2 : 1;
      if (used > MULTI_PORTS) throw parseErr("too many ports specified");
      const [lo, hi] = range ? parsePortRange(item) : [parsePort(item), parsePort(item)];
      r.multiPorts[2 * n] = lo;
      r.multiPorts[2 * n + 1] = hi;
      n++;
    }
    r.multiCount = n;
    if (neg) r.flags |= F_NEG_MULTI;
  }

  private jump(t: string): void {
    if (this.target !== "") throw parseErr("multiple -j flags not allowed");
    const v = this.arg(t);
    if (v !== "MARK") throw parseErr(`target \`${v}' not supported: only -j MARK`);
    this.target = v;
  }

  private mark(t: string, kind: MarkKind): void {
    if (this.target !== "MARK") throw parseErr(`unknown option "${t}"`);
    if (this.markSet) throw parseErr("MARK target: Can't specify --set-mark twice");
    this.markSet = true;
    const m = markOf(kind, this.arg(t));
    this.r.markMask = m.mask;
    this.r.markXor = m.xor;
  }

  /** What only the whole rule can tell: ports need tcp/udp, -m tcp needs -p tcp, a target. */
  private finish(): void {
    const r = this.r;
    if (r.af === 6 && (r.flags & F_FRAG) !== 0)
      throw parseErr(
        "-f: ip6tables has no fragment flag (IPv6 fragments are matched with -m frag, which tsvs does not model)",
      );
    const hasPorts = (r.flags & (F_SPORT | F_DPORT)) !== 0 || r.multi !== MULTI_NONE;
    const tcpUdp = this.protoSet && (r.proto === 6 || r.proto === 17);
    for (const m of this.explicitMatches) {
      if (!this.protoSet || protoName(r.proto) !== m) throw parseErr(`-m ${m} needs \`-p ${m}'`);
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
    if (this.multiLoaded && r.multi === MULTI_NONE) throw parseErr("multiport expects an option");
    if (this.target === "") throw parseErr("-j MARK --set-mark N is required");
    if (!this.markSet) throw parseErr("MARK target: Parameter --set/and/or/xor-mark is required");
  }
}

/**
 * Compiles one iptables rule for the classifier. Throws TsvsError (TSVS_ERR_PARSE) naming the
 * offending token, with iptables' message where it has one.
 */
export function parseFwmarkRule(text: string, ifindexOf?: IfindexOf): FwmarkRule {
  return new RuleParser(text, ifindexOf).parse();
}
