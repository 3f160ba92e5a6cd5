// The director's interfaces and routing table, as tsvs needs them to emit whole frames:
// which link a next hop is on, the source address to use there, and the link's MTU.
// Longest-prefix match over a short list (a director has a handful of routes); the
// per-destination result is cached by the caller (see Dest route cache in engine.ts).

import { prefixToMask } from "./addr.js";
import { TsvsError } from "./errors.js";

export interface IfaceAddr {
  addr: number;
  prefix: number;
}

export interface IfaceConfig {
  ifindex: number;
  name: string;
  mac: Uint8Array;
  addrs: IfaceAddr[];
  mtu: number;
}

export interface RouteConfig {
  dst: number;
  prefix: number;
  /** Gateway, 0 for a connected route. */
  via: number;
  ifindex: number;
}

export class Iface {
  readonly ifindex: number;
  readonly name: string;
  readonly mac: Uint8Array;
  readonly addrs: IfaceAddr[];
  mtu: number;
  constructor(c: IfaceConfig) {
    this.ifindex = c.ifindex;
    this.name = c.name;
    this.mac = c.mac;
    this.addrs = c.addrs.map((a) => ({ addr: a.addr >>> 0, prefix: a.prefix }));
    this.mtu = c.mtu;
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

  addIface(c: IfaceConfig): Iface {
    const i = new Iface(c);
    this.ifaces.push(i);
    this.byIndex.set(i.ifindex, i);
    for (const a of i.addrs) this.insert(a.addr, a.prefix, 0, i);
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
        : nets.map((n) => {
            const mask = prefixToMask(n.prefix);
            return { dst: (n.addr & mask) >>> 0, mask };
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

  iface(ifindex: number): Iface | undefined {
    return this.byIndex.get(ifindex);
  }

  addRoute(r: RouteConfig): void {
    const i = this.byIndex.get(r.ifindex);
    if (i === undefined) throw new TsvsError("TSVS_ERR_INVALID", `route via unknown interface ${r.ifindex}`);
    this.insert(r.dst, r.prefix, r.via >>> 0, i);
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
