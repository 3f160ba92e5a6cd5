// Firewall-mark classifier: the subset of `iptables -t mangle -A PREROUTING ... -j MARK` (and of
// ip6tables') that IPVS fwmark services are configured with (keepalived and LVS how-tos), applied
// to every packet before the service lookup, as the mangle PREROUTING hook runs before ip_vs_in.
// A rule is of one family, as a rule lives in iptables or in ip6tables: an IPv4 rule never sees an
// IPv6 packet and the other way round.
//
// Matches: -s/-d (net/ipv4/netfilter/ip_tables.c ip_packet_match, and for IPv6
// net/ipv6/netfilter/ip6_tables.c ip6_packet_match: the address under the prefix mask, word by
// word; -p is the upper-layer protocol after the extension headers), -p, -f (IPv4 only), -i, the tcp/udp
// port matches (net/netfilter/xt_tcpudp.c) and -m multiport (xt_multiport.c); target MARK
// (xt_mark.c: mark = (mark & ~mask) ^ value, which --set-mark, --set-xmark, --and-mark,
// --or-mark and --xor-mark all reduce to, as libxt_MARK.c does). Every matching rule applies its
// target and evaluation continues, so with full-mask --set-mark the last matching rule wins.
//
// The core holds compiled rules only: flat objects of numbers that classify() reads without
// allocating. The iptables text is parsed (and printed back) by src/control/fwmark-rule.ts.

import type { Flow } from "./packet/flow.js";

export interface FwmarkRuleView {
  id: number;
  rule: string;
}

/** Port list of -m multiport; xt_multiport.h XT_MULTI_PORTS. Ranges count as two. */
export const MULTI_PORTS = 15;

export const F_NEG_SRC = 1 << 0;
export const F_NEG_DST = 1 << 1;
export const F_NEG_PROTO = 1 << 2;
export const F_NEG_IF = 1 << 3;
export const F_NEG_SPORT = 1 << 4;
export const F_NEG_DPORT = 1 << 5;
export const F_NEG_MULTI = 1 << 6;
export const F_SPORT = 1 << 7;
export const F_DPORT = 1 << 8;
/** -f: only second and further fragments; with F_FRAG_NEG: only unfragmented and first. */
export const F_FRAG = 1 << 9;
export const F_FRAG_NEG = 1 << 10;

export const MULTI_NONE = 0;
export const MULTI_SRC = 1;
export const MULTI_DST = 2;
export const MULTI_ANY = 3;
export const MULTI_OPT = ["", "--sports", "--dports", "--ports"] as const;

/** libxtables xtables_chain_protos' names; the first of a number is the one printed. */
export const PROTO_NAMES: Record<string, number> = {
  all: 0,
  icmp: 1,
  tcp: 6,
  udp: 17,
  "ipv6-icmp": 58,
  icmpv6: 58,
};

/** A compiled rule (src/control/fwmark-rule.ts builds them from iptables text). */
export interface FwmarkRule {
  id: number;
  /** The family of the packets the rule sees: 4 = an iptables rule, 6 = an ip6tables one. */
  af: 4 | 6;
  flags: number;
  saddr: number;
  smask: number;
  daddr: number;
  dmask: number;
  /**
   * af 6: source, source mask, destination, destination mask as four words each (addr.ts
   * ipv6ToWords, int32 bits), the address already masked; af 4: unused (zeros).
   */
  a6: Int32Array;
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

export class FwmarkClassifier {
  /** In evaluation order (the order rules were added, as -A appends). */
  private rules: FwmarkRule[] = [];
  private nextId = 1;

  get size(): number {
    return this.rules.length;
  }

  /** Appends a compiled rule (parseFwmarkRule); returns its id. */
  add(rule: FwmarkRule): number {
    const r = { ...rule, id: this.nextId++ };
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

  /** The compiled rules in evaluation order (read only: explain.ts tests them one by one). */
  compiled(): readonly FwmarkRule[] {
    return this.rules;
  }

  /**
   * Does a rule match `addr` as one host (`-d A` or `-d A/32`, not negated)? Such an address
   * is the VIP of a firewall-mark service, and the director answers ARP and ping for it.
   */
  matchesHost(addr: number): boolean {
    addr >>>= 0;
    for (const r of this.rules) {
      if (r.af === 4 && r.dmask === 0xffffffff && (r.flags & F_NEG_DST) === 0 && r.daddr === addr)
        return true;
    }
    return false;
  }

  /** matchesHost for IPv6: a rule `-d A/128`, not negated, for the words w. */
  matchesHost6(w: Int32Array, off = 0): boolean {
    for (const r of this.rules) {
      const a = r.a6;
      if (
        r.af === 6 &&
        (r.flags & F_NEG_DST) === 0 &&
        (a[12] & a[13] & a[14] & a[15]) === -1 &&
        a[8] === w[off] &&
        a[9] === w[off + 1] &&
        a[10] === w[off + 2] &&
        a[11] === w[off + 3]
      )
        return true;
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
      if (r.af !== f.af) continue;
      if (r.af === 6) {
        if (match6(f.s6, r.a6, 0) === ((fl & F_NEG_SRC) !== 0)) continue;
        if (match6(f.d6, r.a6, 8) === ((fl & F_NEG_DST) !== 0)) continue;
      } else {
        if (((f.saddr & r.smask) >>> 0 === r.saddr) === ((fl & F_NEG_SRC) !== 0)) continue;
        if (((f.daddr & r.dmask) >>> 0 === r.daddr) === ((fl & F_NEG_DST) !== 0)) continue;
      }
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
}

/** ip6_packet_match's ipv6_masked_addr_cmp: w under the mask at a[off + 4..] equals a[off..]. */
function match6(w: Int32Array, a: Int32Array, off: number): boolean {
  return (
    (w[0] & a[off + 4]) === a[off] &&
    (w[1] & a[off + 5]) === a[off + 1] &&
    (w[2] & a[off + 6]) === a[off + 2] &&
    (w[3] & a[off + 7]) === a[off + 3]
  );
}

function multiMatch(r: FwmarkRule, sport: number, dport: number): boolean {
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
