// The director's interfaces and routing table, as tsvs needs them to emit whole frames:
// which link a next hop is on, the source address to use there, and the link's MTU.
// Longest-prefix match over a short list (a director has a handful of routes); the
// per-destination result is cached by the caller (see Dest route cache in engine.ts).
//
// IPv6 sits beside IPv4 in the same table, in its own lists: interface addresses and routes in the
// core's four-word form (addr.ts ipv6TextWords: word k = bytes 4k..4k+3, int32 bits), looked up by
// lookup6 into a preallocated Route6Result. In the configuration and the messages that carry it
// (IfaceConfig, RouteConfig, hostLocal) an IPv6 address is text, as the control plane carries it
// (docs/dev-notes.md "IPv6 design"): `addr6`/`dst6`/`via6`, with the IPv4 fields 0. IPv4 lookups
// never look at the IPv6 lists.

import { ipv6TextWords, prefixToMask } from "./addr.js";
import { TsvsError } from "./errors.js";

export interface IfaceAddr {
  addr: number;
  prefix: number;
  /**
   * An IPv6 network in a list that may hold both families (setHostLocal): its text, `addr` 0.
   * Interface addresses keep IPv6 apart, in IfaceConfig.addrs6.
   */
  addr6?: string;
}

/** An IPv6 interface address: the text inet_ntop prints (link-local fe80::/10 ones included). */
export interface IfaceAddr6 {
  addr6: string;
  prefix: number;
}

export interface IfaceConfig {
  ifindex: number;
  name: string;
  mac: Uint8Array;
  addrs: IfaceAddr[];
  mtu: number;
  /**
   * IPv6 addresses, link-local ones included: NDP answers and solicits from them. Each brings its
   * on-link prefix route, as an IPv4 address does (the kernel's prefix route).
   */
  addrs6?: IfaceAddr6[];
  /**
   * net.ipv6.conf.<if>.forwarding: the interface is a router's, so the NAs sent there carry R
   * (ndisc_send_na, keepalived's unsolicited NAs).
   */
  forwarding6?: boolean;
}

export interface RouteConfig {
  dst: number;
  prefix: number;
  /** Gateway, 0 for a connected route. */
  via: number;
  ifindex: number;
  /** An IPv6 route: its destination prefix as text (dst and via are 0, prefix is 0..128). */
  dst6?: string;
  /** An IPv6 route's gateway as text (often link-local); absent or "" for an on-link route. */
  via6?: string;
}

/** An IPv6 address of an interface in the core's form. */
export interface Iface6Addr {
  /** Four words, int32 bits. */
  readonly words: Int32Array;
  readonly prefix: number;
  /** fe80::/10: NDP's source toward link-local neighbours, never a source beyond the link. */
  readonly linkLocal: boolean;
}

export class Iface {
  readonly ifindex: number;
  readonly name: string;
  readonly mac: Uint8Array;
  readonly addrs: IfaceAddr[];
  mtu: number;
  /** IPv6 addresses as configured (text), so that an Iface is still an IfaceConfig. */
  readonly addrs6: IfaceAddr6[];
  /** The same in the core's form. */
  readonly ip6: Iface6Addr[];
  /** The first link-local address, or null (then NDP solicits from a global one, see local.ts). */
  readonly linkLocal6: Int32Array | null;
  readonly forwarding6: boolean;
  constructor(c: IfaceConfig) {
    this.ifindex = c.ifindex;
    this.name = c.name;
    this.mac = c.mac;
    this.addrs = c.addrs.map((a) => ({ addr: a.addr >>> 0, prefix: a.prefix }));
    this.mtu = c.mtu;
    this.addrs6 = (c.addrs6 ?? []).map((a) => ({ addr6: a.addr6, prefix: a.prefix }));
    this.ip6 = this.addrs6.map((a) => {
      const words = words6(a.addr6, `interface ${c.name}`);
      checkPrefix6(a.prefix);
      return { words, prefix: a.prefix, linkLocal: isLinkLocal6(words[0]) };
    });
    this.linkLocal6 = this.ip6.find((a) => a.linkLocal)?.words ?? null;
    this.forwarding6 = c.forwarding6 ?? false;
  }
  /** Primary address (the kernel's choice of source for locally generated packets on this link). */
  get primary(): number {
    return this.addrs.length > 0 ? this.addrs[0].addr : 0;
  }
}

interface RouteEntry {
  dst: number;
  mask: number;
  prefix: number;
  via: number;
  iface: Iface;
  /** The source address, computed once; -1 when it depends on the destination (computed per lookup). */
  viaSrc: number;
}

/** Result of a route lookup; one reusable instance per caller (no allocation per lookup). */
export class RouteResult {
  iface: Iface | null = null;
  nexthop = 0;
  src = 0;
}

interface Route6Entry {
  /** The prefix, masked, and its mask: four words each. */
  dst: Int32Array;
  mask: Int32Array;
  prefix: number;
  /** Gateway words, null for an on-link route. */
  via: Int32Array | null;
  iface: Iface;
}

/** Result of lookup6; one reusable instance per caller (no allocation per lookup). */
export class Route6Result {
  iface: Iface | null = null;
  /** The next hop's words: the gateway, or the destination itself when onLink. */
  readonly nexthop = new Int32Array(4);
  onLink = false;
  /** The source address to use (see lookup6); :: when the director has no IPv6 address at all. */
  readonly src = new Int32Array(4);
}

export class RouteTable {
  readonly ifaces: Iface[] = [];
  private readonly byIndex = new Map<number, Iface>();
  private routes: RouteEntry[] = [];
  /** What the host delivers locally (see setHostLocal); null = no such restriction. */
  private hostLocal: { dst: number; mask: number }[] | null = null;
  /** VRRP: addresses this director holds as MASTER, and those it holds back as BACKUP (setVrrp). */
  private vrrpMaster: Int32Array = new Int32Array(0);
  private vrrpStandby: Int32Array = new Int32Array(0);
  private vrrpMacs = new Map<number, Uint8Array>();
  private routes6: Route6Entry[] = [];
  /** hostLocal's IPv6 networks: masked words and mask, four words each; null = no restriction. */
  private hostLocal6: { dst: Int32Array; mask: Int32Array }[] | null = null;
  /** VRRP's IPv6 addresses (setVrrp6), four words each, and their virtual MACs by position. */
  private vrrp6Master: Int32Array = new Int32Array(0);
  private vrrp6Standby: Int32Array = new Int32Array(0);
  private vrrp6Macs: (Uint8Array | undefined)[] = [];

  addIface(c: IfaceConfig): Iface {
    const i = new Iface(c);
    this.ifaces.push(i);
    this.byIndex.set(i.ifindex, i);
    for (const a of i.addrs) this.insert(a.addr, a.prefix, 0, i);
    for (const a of i.ip6) this.insert6(a.words, a.prefix, null, i);
    return i;
  }

  /**
   * Replaces every interface and route (the host changed under the daemon). Routes through an
   * interface that is not given are left out, as the kernel takes a device's routes with it.
   */
  replace(ifaces: readonly IfaceConfig[], routes: readonly RouteConfig[]): void {
    this.ifaces.length = 0;
    this.byIndex.clear();
    this.routes = [];
    this.routes6 = [];
    for (const c of ifaces) this.addIface(c);
    for (const r of routes) if (this.byIndex.has(r.ifindex)) this.addRoute(r);
  }

  /**
   * The host's locally delivered addresses (its interfaces' addresses and `local` routes, which is
   * where the kernel's IPVS sees requests: LOCAL_IN), or null to serve virtual addresses wherever
   * they are. With a list, a VIP is served only while the host has it: an address VRRP moves away
   * stops being answered here.
   */
  setHostLocal(nets: readonly IfaceAddr[] | null): void {
    this.hostLocal =
      nets === null
        ? null
        : nets
            .filter((n) => n.addr6 === undefined)
            .map((n) => {
              const mask = prefixToMask(n.prefix);
              return { dst: (n.addr & mask) >>> 0, mask };
            });
    this.hostLocal6 =
      nets === null
        ? null
        : nets.flatMap((n) => {
            if (n.addr6 === undefined) return [];
            checkPrefix6(n.prefix);
            const mask = mask6(n.prefix);
            const dst = words6(n.addr6, "host local address");
            for (let k = 0; k < 4; k++) dst[k] &= mask[k];
            return [{ dst, mask }];
          });
  }

  /**
   * VRRP's virtual addresses (daemon/vrrp.ts): `master` are this director's while its instance is
   * MASTER (answered and served even when the host does not have them: keepalived would have added
   * them to the interface), `standby` belong to instances in BACKUP, FAULT or STOP and are neither
   * answered nor served, whatever else says so: the master director has them.
   */
  setVrrp(
    master: readonly number[],
    standby: readonly number[],
    macs: readonly { addr: number; mac: readonly number[] }[] = [],
  ): void {
    this.vrrpMaster = Int32Array.from(master, (a) => a | 0);
    this.vrrpStandby = Int32Array.from(standby, (a) => a | 0);
    this.vrrpMacs = new Map(macs.map((m) => [m.addr | 0, Uint8Array.from(m.mac)]));
  }

  /** use_vmac: the virtual MAC a MASTER address is answered with (undefined: the interface's). */
  vrrpMacOf(addr: number): Uint8Array | undefined {
    return this.vrrpMacs.size === 0 ? undefined : this.vrrpMacs.get(addr | 0);
  }

  /** Is addr a VRRP address this director holds back (its instance is not MASTER)? */
  vrrpHoldsBack(addr: number): boolean {
    return this.vrrpStandby.length > 0 && this.vrrpStandby.includes(addr | 0);
  }

  /** Is addr a VRRP address this director holds as MASTER? */
  vrrpOwns(addr: number): boolean {
    return this.vrrpMaster.includes(addr | 0);
  }

  /** May a virtual address be served (addr as the u32 or its int32 bits)? Always, unless VRRP holds it back or setHostLocal gave a list. */
  hostDelivers(addr: number): boolean {
    if (this.vrrpHoldsBack(addr)) return false;
    const nets = this.hostLocal;
    if (nets === null || this.vrrpOwns(addr)) return true;
    for (let i = 0; i < nets.length; i++) if ((addr & nets[i].mask) >>> 0 === nets[i].dst) return true;
    return false;
  }

  /**
   * VRRP's IPv6 addresses (text), as setVrrp has the IPv4 ones: the hook the VRRPv3-over-IPv6 runner
   * will call. `master` are answered (NS, with the instance's virtual MAC from `macs`) and served,
   * `standby` are neither.
   */
  setVrrp6(
    master: readonly string[],
    standby: readonly string[],
    macs: readonly { addr6: string; mac: readonly number[] }[] = [],
  ): void {
    const flat = (list: readonly string[]): Int32Array => {
      const out = new Int32Array(list.length * 4);
      for (let i = 0; i < list.length; i++) out.set(words6(list[i], "VRRP address"), i * 4);
      return out;
    };
    this.vrrp6Master = flat(master);
    this.vrrp6Standby = flat(standby);
    this.vrrp6Macs = master.map((_, i) => {
      const m = macs.find((x) => sameWords6(words6(x.addr6, "VRRP address"), 0, this.vrrp6Master, i * 4));
      return m === undefined ? undefined : Uint8Array.from(m.mac);
    });
  }

  /** use_vmac for IPv6: the virtual MAC a MASTER address is answered with (undefined: the interface's). */
  vrrpMacOf6(w: Int32Array, off = 0): Uint8Array | undefined {
    const i = indexOf6(this.vrrp6Master, w, off);
    return i < 0 ? undefined : this.vrrp6Macs[i];
  }

  vrrpHoldsBack6(w: Int32Array, off = 0): boolean {
    return this.vrrp6Standby.length > 0 && indexOf6(this.vrrp6Standby, w, off) >= 0;
  }

  vrrpOwns6(w: Int32Array, off = 0): boolean {
    return this.vrrp6Master.length > 0 && indexOf6(this.vrrp6Master, w, off) >= 0;
  }

  /** hostDelivers for an IPv6 virtual address (four words at w[off]). */
  hostDelivers6(w: Int32Array, off = 0): boolean {
    if (this.vrrpHoldsBack6(w, off)) return false;
    const nets = this.hostLocal6;
    if (nets === null || this.vrrpOwns6(w, off)) return true;
    for (let i = 0; i < nets.length; i++) if (matches6(w, off, nets[i].dst, nets[i].mask)) return true;
    return false;
  }

  iface(ifindex: number): Iface | undefined {
    return this.byIndex.get(ifindex);
  }

  addRoute(r: RouteConfig): void {
    const i = this.byIndex.get(r.ifindex);
    if (i === undefined) throw new TsvsError("TSVS_ERR_INVALID", `route via unknown interface ${r.ifindex}`);
    if (r.dst6 !== undefined) {
      checkPrefix6(r.prefix);
      const via = r.via6 === undefined || r.via6 === "" ? null : words6(r.via6, "route gateway");
      this.insert6(words6(r.dst6, "route"), r.prefix, via, i);
      return;
    }
    this.insert(r.dst, r.prefix, r.via >>> 0, i);
  }

  private insert6(dst: Int32Array, prefix: number, via: Int32Array | null, iface: Iface): void {
    const mask = mask6(prefix);
    const d = Int32Array.from(dst, (x, k) => x & mask[k]);
    this.routes6.push({ dst: d, mask, prefix, via, iface });
    this.routes6.sort((a, b) => b.prefix - a.prefix);
  }

  /**
   * Longest-prefix match for the IPv6 destination at d[dOff..+4] into out; false when there is no
   * route. A link-scoped destination (fe80::/10, a link-local multicast group) names no link by
   * itself: with `oif` (the interface the conversation is on, as a socket's scope id) it is on-link
   * there. The source is the kernel's choice (ipv6_dev_get_saddr, RFC 6724 §5) reduced to the rules
   * that decide on a director: the scope must cover the destination's (rule 2: link-local only
   * toward link-scoped destinations), the outgoing interface's addresses first (rule 5), then the
   * longest common prefix with the destination (rule 8), the first listed on a tie; a global
   * address of another interface before the outgoing one's link-local. Labels (rule 6) and
   * deprecated or temporary addresses are not modelled.
   */
  lookup6(d: Int32Array, dOff: number, oif: number, out: Route6Result): boolean {
    const w0 = d[dOff];
    if (oif !== 0 && isLinkScoped6(w0)) {
      const i = this.byIndex.get(oif);
      if (i !== undefined) {
        out.iface = i;
        this.onLink6(d, dOff, out);
        return true;
      }
    }
    const rs = this.routes6;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i];
      if (!matches6(d, dOff, r.dst, r.mask)) continue;
      out.iface = r.iface;
      if (r.via === null) this.onLink6(d, dOff, out);
      else {
        out.onLink = false;
        out.nexthop.set(r.via);
        this.source6(r.iface, d, dOff, out.src);
      }
      return true;
    }
    out.iface = null;
    return false;
  }

  private onLink6(d: Int32Array, dOff: number, out: Route6Result): void {
    out.onLink = true;
    const n = out.nexthop;
    n[0] = d[dOff];
    n[1] = d[dOff + 1];
    n[2] = d[dOff + 2];
    n[3] = d[dOff + 3];
    this.source6(out.iface as Iface, d, dOff, out.src);
  }

  /** The source address toward d through iface (see lookup6), written to out; :: when none. */
  source6(iface: Iface, d: Int32Array, dOff: number, out: Int32Array): void {
    let best: Int32Array | null = null;
    if (isLinkScoped6(d[dOff])) best = iface.linkLocal6;
    else {
      best = longestGlobal(iface, d, dOff);
      for (let k = 0; best === null && k < this.ifaces.length; k++)
        best = longestGlobal(this.ifaces[k], d, dOff);
      if (best === null) best = iface.linkLocal6;
    }
    if (best === null) out.fill(0);
    else out.set(best);
  }

  /** Is the address at w[off] one of the interfaces' own IPv6 addresses? */
  isLocal6(w: Int32Array, off = 0): boolean {
    for (const i of this.ifaces) for (const a of i.ip6) if (sameWords6(a.words, 0, w, off)) return true;
    return false;
  }

  private insert(dst: number, prefix: number, via: number, iface: Iface): void {
    const mask = prefixToMask(prefix);
    // The source is fixed per route when every address of the interface covers the route's
    // whole prefix (the usual connected route); else it depends on the destination (-1).
    const fixed = via !== 0 || iface.addrs.every((a) => a.prefix <= prefix);
    const viaSrc = fixed ? sourceFor(iface, via !== 0 ? via : (dst & mask) >>> 0) : -1;
    this.routes.push({ dst: (dst & mask) >>> 0, mask, prefix, via, iface, viaSrc });
    // Longest prefix first, so the first match wins.
    this.routes.sort((a, b) => b.prefix - a.prefix);
  }

  /** Longest-prefix match (daddr as the u32 or its int32 bits); false when there is no route. */
  lookup(daddr: number, out: RouteResult): boolean {
    const rs = this.routes;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i];
      if ((daddr & r.mask) >>> 0 === r.dst) {
        out.iface = r.iface;
        if (r.via !== 0) {
          out.nexthop = r.via;
          out.src = r.viaSrc;
        } else {
          out.nexthop = daddr >>> 0;
          out.src = r.viaSrc !== -1 ? r.viaSrc : sourceFor(r.iface, daddr >>> 0);
        }
        return true;
      }
    }
    out.iface = null;
    return false;
  }

  /** Is addr one of the interfaces' own addresses? */
  isLocal(addr: number): boolean {
    for (const i of this.ifaces) for (const a of i.addrs) if (a.addr === addr) return true;
    return false;
  }
}

/** The interface address on the next hop's subnet, else the primary (as inet_select_addr). */
function sourceFor(iface: Iface, nexthop: number): number {
  for (const a of iface.addrs) {
    const m = prefixToMask(a.prefix);
    if ((a.addr & m) >>> 0 === (nexthop & m) >>> 0) return a.addr;
  }
  return iface.primary;
}

function words6(text: string, what: string): Int32Array {
  const w = ipv6TextWords(text);
  if (w === null)
    throw new TsvsError("TSVS_ERR_INVALID", `${what}: bad IPv6 address ${JSON.stringify(text)}`);
  return w;
}

function checkPrefix6(prefix: number): void {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 128)
    throw new TsvsError("TSVS_ERR_INVALID", `bad IPv6 prefix length ${prefix}`);
}

/** A /prefix mask in the four-word form. */
function mask6(prefix: number): Int32Array {
  const m = new Int32Array(4);
  for (let k = 0; k < 4; k++) {
    const bits = prefix - 32 * k;
    m[k] = bits >= 32 ? -1 : bits <= 0 ? 0 : prefixToMask(bits) | 0;
  }
  return m;
}

function matches6(w: Int32Array, off: number, dst: Int32Array, mask: Int32Array): boolean {
  return (
    (w[off] & mask[0]) === dst[0] &&
    (w[off + 1] & mask[1]) === dst[1] &&
    (w[off + 2] & mask[2]) === dst[2] &&
    (w[off + 3] & mask[3]) === dst[3]
  );
}

/** Do the four-word addresses at a[aOff] and b[bOff] match? */
export function sameWords6(a: Int32Array, aOff: number, b: Int32Array, bOff: number): boolean {
  return (
    a[aOff] === b[bOff] &&
    a[aOff + 1] === b[bOff + 1] &&
    a[aOff + 2] === b[bOff + 2] &&
    a[aOff + 3] === b[bOff + 3]
  );
}

/** Position (in addresses) of w[off..+4] in a flat list of four-word addresses, or -1. */
function indexOf6(list: Int32Array, w: Int32Array, off: number): number {
  for (let i = 0; i < list.length; i += 4) if (sameWords6(list, i, w, off)) return i >> 2;
  return -1;
}

/** fe80::/10, from the first word. */
function isLinkLocal6(w0: number): boolean {
  return w0 >>> 22 === 0x3fa;
}

/** A destination that names no link by itself: link-local unicast, or multicast of interface or link scope. */
function isLinkScoped6(w0: number): boolean {
  return isLinkLocal6(w0) || (w0 >>> 24 === 0xff && ((w0 >>> 16) & 15) <= 2);
}

/** Bits in common from the left (RFC 6724 CommonPrefixLen, over the whole address). */
function commonPrefix6(a: Int32Array, b: Int32Array, bOff: number): number {
  for (let k = 0; k < 4; k++) {
    const x = a[k] ^ b[bOff + k];
    if (x !== 0) return 32 * k + Math.clz32(x);
  }
  return 128;
}

/** The interface's global address sharing the longest prefix with d (the first on a tie), or null. */
function longestGlobal(iface: Iface, d: Int32Array, dOff: number): Int32Array | null {
  let best: Int32Array | null = null;
  let bestLen = -1;
  const as = iface.ip6;
  for (let i = 0; i < as.length; i++) {
    const a = as[i];
    if (a.linkLocal) continue;
    const n = commonPrefix6(a.words, d, dOff);
    if (n > bestLen) {
      best = a.words;
      bestLen = n;
    }
  }
  return best;
}
