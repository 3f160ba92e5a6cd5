// Per-service access lists: DPVS's blacklist (deny) and whitelist (allow), src/ipvs/ip_vs_blklst.c
// and ip_vs_whtlst.c, extended from single addresses to prefixes (ADDR/LEN).
//
// DPVS checks both lists in tcp_conn_lookup/udp_conn_lookup (ip_vs_proto_tcp.c), the deny list
// first: dp_vs_blklst_filtered, then dp_vs_whtlst_filtered. Whitelist semantics
// (dp_vs_whtlst_filtered): no entry attached to the service accepts everyone; with entries, only a
// source they match is accepted. tsvs applies them where a packet would create a connection (the
// kernel's *_conn_schedule point), never to packets of existing connections.
//
// Each list keeps one binary trie per family over the address bits (IPv6 on its four words, never
// on the fold), so a lookup walks at most 32 or 128 nodes whatever the list's size, and allocates
// nothing. The tries change on control commands only.

import { canonicalIPv6, formatIPv4, ipv6TextWords, parseIPv4 } from "./addr.js";

/** One rule of a list: a prefix, its canonical text ("ADDR" for a host, "ADDR/LEN" otherwise). */
export interface AclRule {
  af: 4 | 6;
  text: string;
  /** Packets (that would have created a connection) this rule matched, as the longest match. */
  hits: number;
}

/** A parsed prefix: family, address bits (IPv4: words[0]; IPv6: four words, int32 bits), length. */
export interface AclPrefix {
  af: 4 | 6;
  words: Int32Array;
  len: number;
  text: string;
}

/**
 * "ADDR" or "ADDR/LEN" (IPv4 or IPv6, IPv6 optionally in brackets) → a prefix, or a message naming
 * what is wrong. Host bits past LEN must be zero (as `ip route` requires), so that every rule has one
 * text and -S prints back what was given.
 */
export function parseAclPrefix(s: string): AclPrefix | string {
  const slash = s.indexOf("/");
  let addr = slash < 0 ? s : s.slice(0, slash);
  const lenText = slash < 0 ? "" : s.slice(slash + 1);
  if (addr.startsWith("[") && addr.endsWith("]")) addr = addr.slice(1, -1);
  const a4 = parseIPv4(addr);
  const words = new Int32Array(4);
  let af: 4 | 6;
  if (a4 !== null) {
    af = 4;
    words[0] = a4 | 0;
  } else {
    const w = addr.includes(":") ? ipv6TextWords(addr) : null;
    if (w === null) return `not an IPv4 or IPv6 address: '${addr}'`;
    af = 6;
    words.set(w);
  }
  const max = af === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max)
      return `prefix length '${lenText}' is not 0..${max} for ${af === 4 ? "IPv4" : "IPv6"}`;
    len = Number(lenText);
  }
  for (let i = len; i < max; i++) {
    if (bitOf(words, i) !== 0) return `'${s}' has host bits set past /${len}`;
  }
  const a = af === 4 ? formatIPv4(words[0] >>> 0) : (canonicalIPv6(addr) as string);
  return { af, words, len, text: len === max ? a : `${a}/${len}` };
}

/** Bit i (0 = the most significant bit of the first word) of an address held as words. */
function bitOf(w: Int32Array, i: number): number {
  return (w[i >>> 5] >>> (31 - (i & 31))) & 1;
}

/** Tries of more nodes than this get the 16-bit first level (2 × 256 KiB). */
const TOP_MIN_NODES = 4096;
const TOP_BITS = 16;

/**
 * A binary trie over address bits. Node n has children kid[2n] and kid[2n+1] (0 = none: the root,
 * node 0, is nobody's child) and the rule ending there, rule[n] (-1 = none). Nodes of deleted rules
 * stay until the list is rebuilt (AclList.del rebuilds once they outnumber the live ones).
 *
 * A large trie also has a direct first level over the top 16 bits, so that a lookup starts at
 * depth 16 instead of walking 16 nodes (one cache miss each): top[i] is the node at depth 16 on
 * path i (0 = none) and topBest[i] the rule of the longest prefix of at most 16 bits holding it.
 */
export class PrefixTrie {
  private kid = new Int32Array(64);
  private rule = new Int32Array(32).fill(-1);
  /** Nodes in use. */
  size = 1;
  private top: Int32Array | null = null;
  private topBest: Int32Array | null = null;

  insert(words: Int32Array, len: number, ruleIdx: number): void {
    let n = 0;
    for (let i = 0; i < len; i++) {
      const k = 2 * n + bitOf(words, i);
      let c = this.kid[k];
      if (c === 0) {
        c = this.newNode();
        this.kid[k] = c;
      }
      n = c;
      if (i === TOP_BITS - 1 && this.top !== null) this.top[words[0] >>> TOP_BITS] = n;
    }
    this.rule[n] = ruleIdx;
    if (this.top === null) {
      if (this.size > TOP_MIN_NODES) this.buildTop();
    } else if (len <= TOP_BITS) this.refreshTop(words[0] >>> TOP_BITS, len);
  }

  /** Clears the rule at words/len (the nodes stay). */
  remove(words: Int32Array, len: number): void {
    let n = 0;
    for (let i = 0; i < len && n >= 0; i++) n = this.kid[2 * n + bitOf(words, i)] || -1;
    if (n < 0) return;
    this.rule[n] = -1;
    if (this.top !== null && len <= TOP_BITS) this.refreshTop(words[0] >>> TOP_BITS, len);
  }

  /** The rule of the longest prefix holding the IPv4 address a (u32 or int32 bits), or -1. */
  lookup4(a: number): number {
    let n = 0;
    let best = this.rule[0];
    let i = 0;
    const top = this.top;
    if (top !== null) {
      const t = a >>> TOP_BITS;
      best = (this.topBest as Int32Array)[t];
      n = top[t];
      if (n === 0) return best;
      i = TOP_BITS;
    }
    for (; i < 32; i++) {
      n = this.kid[2 * n + ((a >>> (31 - i)) & 1)];
      if (n === 0) break;
      const r = this.rule[n];
      if (r >= 0) best = r;
    }
    return best;
  }

  /** The rule of the longest prefix holding the IPv6 address w[off..off+3] (int32 words), or -1. */
  lookup6(w: Int32Array, off = 0): number {
    let n = 0;
    let best = this.rule[0];
    let i = 0;
    const top = this.top;
    if (top !== null) {
      const t = w[off] >>> TOP_BITS;
      best = (this.topBest as Int32Array)[t];
      n = top[t];
      if (n === 0) return best;
      i = TOP_BITS;
    }
    for (; i < 128; i++) {
      n = this.kid[2 * n + ((w[off + (i >>> 5)] >>> (31 - (i & 31))) & 1)];
      if (n === 0) break;
      const r = this.rule[n];
      if (r >= 0) best = r;
    }
    return best;
  }

  private buildTop(): void {
    this.top = new Int32Array(1 << TOP_BITS);
    this.topBest = new Int32Array(1 << TOP_BITS);
    this.refreshTop(0, 0);
  }

  /** Recomputes the first level under the prefix of len bits (≤ 16) starting at index t. */
  private refreshTop(t: number, len: number): void {
    const top = this.top as Int32Array;
    const topBest = this.topBest as Int32Array;
    const span = 1 << (TOP_BITS - len);
    const first = len === 0 ? 0 : (t >>> (TOP_BITS - len)) << (TOP_BITS - len);
    for (let x = first; x < first + span; x++) {
      let n = 0;
      let best = this.rule[0];
      for (let i = 0; i < TOP_BITS; i++) {
        n = this.kid[2 * n + ((x >>> (TOP_BITS - 1 - i)) & 1)];
        if (n === 0) break;
        const r = this.rule[n];
        // The node at depth 16 itself counts here: a lookup walks on from below it.
        if (r >= 0) best = r;
      }
      top[x] = n;
      topBest[x] = best;
    }
  }

  private newNode(): number {
    const n = this.size++;
    if (n >= this.rule.length) {
      const rule = new Int32Array(this.rule.length * 2).fill(-1);
      rule.set(this.rule);
      this.rule = rule;
      const kid = new Int32Array(this.kid.length * 2);
      kid.set(this.kid);
      this.kid = kid;
    }
    return n;
  }
}

/** One list (deny or allow) of a service: its rules in the order added, and a trie per family. */
export class AclList {
  /** Rule slots; null = deleted (the trie no longer points at it). */
  private slots: (AclRule | null)[] = [];
  private prefixes: (AclPrefix | null)[] = [];
  private readonly byText = new Map<string, number>();
  private t4 = new PrefixTrie();
  private t6 = new PrefixTrie();
  /** Lookups this list matched nothing for. */
  misses = 0;

  get size(): number {
    return this.byText.size;
  }

  has(p: AclPrefix): boolean {
    return this.byText.has(p.text);
  }

  add(p: AclPrefix): void {
    if (this.byText.has(p.text)) return;
    const idx = this.slots.length;
    this.slots.push({ af: p.af, text: p.text, hits: 0 });
    this.prefixes.push(p);
    this.byText.set(p.text, idx);
    (p.af === 4 ? this.t4 : this.t6).insert(p.words, p.len, idx);
  }

  del(p: AclPrefix): boolean {
    const idx = this.byText.get(p.text);
    if (idx === undefined) return false;
    this.byText.delete(p.text);
    this.slots[idx] = null;
    this.prefixes[idx] = null;
    (p.af === 4 ? this.t4 : this.t6).remove(p.words, p.len);
    // Deleted rules leave dead slots and nodes: rebuild once they are the majority.
    if (this.slots.length > 2 * this.byText.size + 16) this.rebuild();
    return true;
  }

  /** The rules in the order added (hit counters included). */
  rules(): AclRule[] {
    return this.slots.filter((r): r is AclRule => r !== null);
  }

  /** Longest match of an IPv4 source: its rule is counted; false when nothing matched. */
  match4(a: number): boolean {
    const r = this.t4.lookup4(a);
    if (r < 0) {
      this.misses++;
      return false;
    }
    (this.slots[r] as AclRule).hits++;
    return true;
  }

  match6(w: Int32Array, off = 0): boolean {
    const r = this.t6.lookup6(w, off);
    if (r < 0) {
      this.misses++;
      return false;
    }
    (this.slots[r] as AclRule).hits++;
    return true;
  }

  zero(): void {
    this.misses = 0;
    for (const r of this.slots) if (r !== null) r.hits = 0;
  }

  /** Trie nodes in use (both families): the list's memory is 12 bytes a node. */
  nodes(): number {
    return this.t4.size + this.t6.size;
  }

  private rebuild(): void {
    const live: [AclRule, AclPrefix][] = [];
    this.slots.forEach((r, i) => {
      if (r !== null) live.push([r, this.prefixes[i] as AclPrefix]);
    });
    this.slots = [];
    this.prefixes = [];
    this.byText.clear();
    this.t4 = new PrefixTrie();
    this.t6 = new PrefixTrie();
    for (const [r, p] of live) {
      this.add(p);
      (this.slots[this.slots.length - 1] as AclRule).hits = r.hits;
    }
  }
}

/** What the ACL says about a source that would open a connection. */
export const ACL_PASS = 0;
export const ACL_DENY = 1;
export const ACL_NOT_ALLOWED = 2;

/** A service's two lists. */
export class ServiceAcl {
  readonly deny = new AclList();
  readonly allow = new AclList();

  get empty(): boolean {
    return this.deny.size === 0 && this.allow.size === 0;
  }

  /** dp_vs_blklst_filtered, then dp_vs_whtlst_filtered (an empty allow list allows all). */
  check4(saddr: number): number {
    if (this.deny.size !== 0 && this.deny.match4(saddr)) return ACL_DENY;
    if (this.allow.size !== 0 && !this.allow.match4(saddr)) return ACL_NOT_ALLOWED;
    return ACL_PASS;
  }

  check6(s6: Int32Array): number {
    if (this.deny.size !== 0 && this.deny.match6(s6)) return ACL_DENY;
    if (this.allow.size !== 0 && !this.allow.match6(s6)) return ACL_NOT_ALLOWED;
    return ACL_PASS;
  }
}
