// The control core: services and destinations as ipvsadm changes them (net/netfilter/ipvs/
// ip_vs_ctl.c: ip_vs_add_service, ip_vs_edit_service, ip_vs_del_service, ip_vs_add_dest,
// ip_vs_edit_dest, ip_vs_del_dest, ip_vs_zero_*, ip_vs_flush; the dest trash), with
// libipvs's error messages (ipvs_strerror), which ipvsadm prints verbatim. FULLNAT local addresses
// per service are DPVS's (src/ipvs/ip_vs_laddr.c: dp_vs_laddr_add / dp_vs_laddr_del, with its
// libipvs's messages); the engine turns them into owned LIPs (lip.ts).
//
// Every batch is validated whole against a shadow of the table before anything changes, so
// one ipvsadm command (or one -R file) is one atomic change: it fails with nothing applied.

import { parseAclPrefix, ServiceAcl } from "./acl.js";
import { canonicalIPv6, ipv6Fold, ipv6TextWords, ipv6UsableUnicast, ipv6WordsText } from "./addr.js";
import { ConnLimiter, checkConnLimit } from "./conn-limit.js";
import type { CtlCommand, DestSpec, ServiceKey, ServiceSpec, TimeoutSpec } from "./ctl-types.js";
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD, Dest, Fwd } from "./dest.js";
import { IPVS_MESSAGES, TsvsError, type TsvsErrorCode } from "./errors.js";
import { type Flow, IPPROTO_TCP } from "./packet/flow.js";
import { ppRefusal, ppValue } from "./packet/proxy-proto.js";
import { sameWords6 } from "./route.js";
import { findScheduler } from "./sched/index.js";
import { Service, SVC_F_PERSISTENT, SVC_F_SYNPROXY } from "./service.js";

export interface CtlHooks {
  onSetTimeout(t: TimeoutSpec): void;
  /** A destination left its service (it may live on in the trash while connections use it). */
  onDestRemoved(d: Dest): void;
  onServiceRemoved(s: Service): void;
  /** A destination's weight became 0. */
  onDestQuiesced(d: Dest): void;
  /** `ipvsadm -Z` without a service also zeroes the global counters. */
  onZeroAll?(): void;
  /**
   * A service gained a FULLNAT local address (in command order: every worker sees the same order):
   * an IPv4 one as its u32, an IPv6 one as its canonical text.
   */
  onLaddrAdded?(addr: number | string): void;
}

/** A TsvsError raised by a batch, with the position of the failing command (for -R line numbers). */
export class CtlError extends TsvsError {
  readonly index: number;
  constructor(code: TsvsErrorCode, message: string, index: number) {
    super(code, message);
    this.index = index;
  }
}

/** IP_VS_SVC_TAB_BITS: the kernel's service hash has 256 buckets. */
const SVC_TAB_BITS = 8;
const SVC_TAB_MASK = (1 << SVC_TAB_BITS) - 1;
const PERSISTENT_PE = new Set(["", "sip"]);
/** ip_vs_set_timeout refuses more than INT_MAX / HZ seconds (Debian's kernels: HZ = 250). */
const MAX_TIMEOUT_S = Math.floor(0x7fffffff / 250);

/** Numeric map key for <proto, addr, port>: < 2^50, exact in a double. */
function svcKeyNum(protocol: number, addr: number, port: number): number {
  return ((addr >>> 0) * 65536 + port) * 256 + (protocol & 255);
}

function destKeyNum(addr: number, port: number): number {
  return (addr >>> 0) * 65536 + port;
}

/** A service's or destination's identity in the maps: a number for IPv4, text for IPv6. */
type MapKey = number | string;

function destKeyOf(af: 4 | 6, addr: number, addr6: string | undefined, port: number): MapKey {
  return af === 6 ? `${canonicalIPv6(addr6 ?? "") ?? addr6}/${port}` : destKeyNum(addr, port);
}

function destKeyOfDest(d: Dest): MapKey {
  return d.addr6 !== null ? `${ipv6WordsText(d.addr6)}/${d.port}` : destKeyNum(d.addr, d.port);
}

function destKeyOfSpec(d: DestSpec): MapKey {
  return destKeyOf(d.af, d.addr, d.addr6, d.port);
}

/**
 * ip_vs_svc_hashkey with the netns pointer term taken as 0: the kernel's listing order is
 * the walk of its 256 buckets (then the fwmark table), newest first within a bucket.
 */
function svcBucket(s: Service): number {
  // An IPv6 service's addr is its fold: ip_vs_svc_hashkey folds the same way.
  if (s.fwmark !== 0) return 256 + (s.fwmark & SVC_TAB_MASK);
  return (s.protocol ^ (s.addr >>> 0) ^ (s.port >>> SVC_TAB_BITS) ^ s.port) & SVC_TAB_MASK;
}

/**
 * The packet-side service index: open addressing over int32 words, rebuilt on every service
 * add/delete. findService runs once per new connection; the byKey map's numeric keys are above
 * 2^31 (a boxed heap number per get), so the data path reads this instead and allocates
 * nothing. A slot is <word A, word B> → service: A = VIP as int32 and B = port << 8 | proto for
 * proto/VIP/port services; A = fwmark as int32 and B = SVC_IDX_FWMARK for fwmark services (no
 * proto/port word has bit 24 set, so the two kinds never collide). An IPv6 service has its VIP's
 * fold in A and SVC_IDX_V6 in B (a fwmark service of family 6: its mark, FWMARK | V6, as
 * __ip_vs_svc_fwm_find matches the family too); folds collide, so an IPv6 slot whose A and B
 * match is taken only when its VIP's words are the packet's.
 */
const SVC_IDX_FWMARK = 1 << 24;
const SVC_IDX_V6 = 1 << 25;

function svcIdxSlot(a: number, b: number, mask: number): number {
  const h = Math.imul(a ^ Math.imul(b, 0x9e3779b1), 0x85ebca6b);
  return (h ^ (h >>> 15)) & mask;
}

class ServiceIndex {
  private readonly a: Int32Array;
  private readonly b: Int32Array;
  /** The service of each slot; null = empty. */
  private readonly svc: Array<Service | null>;
  private readonly mask: number;

  constructor(services: Iterable<Service>, count: number) {
    let n = 8;
    while (n < count * 2) n *= 2;
    this.mask = n - 1;
    this.a = new Int32Array(n);
    this.b = new Int32Array(n);
    this.svc = new Array<Service | null>(n).fill(null);
    for (const s of services) {
      const v6 = s.af === 6 ? SVC_IDX_V6 : 0;
      const a = s.fwmark !== 0 ? s.fwmark | 0 : s.addr | 0;
      const b = (s.fwmark !== 0 ? SVC_IDX_FWMARK : ((s.port & 0xffff) << 8) | (s.protocol & 0xff)) | v6;
      let i = svcIdxSlot(a, b, this.mask);
      while (this.svc[i] !== null) i = (i + 1) & this.mask;
      this.a[i] = a;
      this.b[i] = b;
      this.svc[i] = s;
    }
  }

  /** a, b as int32 (see above); null when absent. */
  get(a: number, b: number): Service | null {
    const m = this.mask;
    for (let i = svcIdxSlot(a, b, m); ; i = (i + 1) & m) {
      const s = this.svc[i];
      if (s === null) return null;
      if (this.a[i] === a && this.b[i] === b) return s;
    }
  }

  /** get for an IPv6 VIP: a = its fold, b with SVC_IDX_V6; the slot's VIP must be the words w. */
  get6(a: number, b: number, w: Int32Array): Service | null {
    const m = this.mask;
    for (let i = svcIdxSlot(a, b, m); ; i = (i + 1) & m) {
      const s = this.svc[i];
      if (s === null) return null;
      if (this.a[i] === a && this.b[i] === b && s.addr6 !== null && sameWords6(s.addr6, 0, w, 0)) return s;
    }
  }
}

function keyOf(k: ServiceKey): MapKey {
  if (k.fwmark !== 0) return k.af === 6 ? `f6/${k.fwmark}` : -k.fwmark;
  if (k.af === 6) return `6/${k.protocol}/${canonicalIPv6(k.addr6 ?? "") ?? k.addr6}/${k.port}`;
  return svcKeyNum(k.protocol, k.addr, k.port);
}

function keyOfService(s: Service): MapKey {
  const addr6 = s.addr6 === null ? undefined : ipv6WordsText(s.addr6);
  return keyOf({ af: s.af, protocol: s.protocol, addr: s.addr, addr6, port: s.port, fwmark: s.fwmark });
}

function fail(code: TsvsErrorCode, message: string, index: number): never {
  throw new CtlError(code, message, index);
}

export class IpvsCtl {
  private readonly byKey = new Map<MapKey, Service>();
  /** byKey for the data path (see ServiceIndex); rebuilt by reorder(). */
  private index = new ServiceIndex([], 0);
  /** Kernel listing order (see svcBucket), recomputed on change. */
  private ordered: Service[] = [];
  /** Destination registry: connections refer to destinations by id. */
  private readonly dests: Array<Dest | undefined> = [];
  private readonly refs: number[] = [];
  private readonly freeIds: number[] = [];
  /** Removed destinations still referenced by connections (the kernel's dest trash). */
  private readonly trash = new Set<Dest>();
  /** VIP → number of services (and explicit owners) using it. */
  private readonly owned = new Map<number, number>();
  /**
   * IPv6 VIPs, kept apart so that a fold never reaches `owned`: fold (int32) → the chain of
   * owned addresses with that fold, each with its own count (see own6).
   */
  private readonly owned6 = new Map<number, Owned6>();
  private nextSvcSeq = 0;
  private readonly svcSeq = new Map<Service, number>();

  /**
   * A connection sync daemon runs (the kernel's ipvs->sync_state != 0): a destination whose family
   * differs from its service's is then refused (ip_vs_genl_set_cmd; the sync protocol has one
   * family per entry). Set by whoever starts and stops the daemons.
   */
  syncRunning = false;

  constructor(private readonly hooks: CtlHooks) {}

  /**
   * TUN destinations whose family differs from their service's (the kernel's
   * ipvs->mixed_address_family_dests): a sync daemon may start only while there are none
   * (ip_vs_genl_new_daemon answers EINVAL otherwise). NAT64 ones (DPVS's) are not counted: tsvs
   * syncs them in its own form.
   */
  mixedFamilyDests(): number {
    let n = 0;
    for (const s of this.ordered) for (const d of s.dests) if (d.af !== s.af && d.fwd === Fwd.Tunnel) n++;
    return n;
  }

  // ------------------------------------------------------------------ queries

  services(): readonly Service[] {
    return this.ordered;
  }

  getService(key: ServiceKey): Service | undefined {
    return this.byKey.get(keyOf(key));
  }

  /**
   * ip_vs_service_find for a packet: a firewall-mark service first, then proto/VIP/port,
   * then the VIP's port-zero (persistent) service.
   */
  findService(f: Flow): Service | null {
    const ix = this.index;
    if (f.fwmark !== 0) {
      const s = ix.get(f.fwmark | 0, SVC_IDX_FWMARK);
      if (s !== null) return s;
    }
    const proto = f.proto & 0xff;
    const daddr = f.daddr | 0;
    const s = ix.get(daddr, ((f.dport & 0xffff) << 8) | proto);
    if (s !== null) return s;
    return ix.get(daddr, proto);
  }

  /** findService for an IPv6 packet (f.d6 its destination, f.daddr the fold): the same three steps. */
  findService6(f: Flow): Service | null {
    const ix = this.index;
    if (f.fwmark !== 0) {
      const s = ix.get(f.fwmark | 0, SVC_IDX_FWMARK | SVC_IDX_V6);
      if (s !== null) return s;
    }
    const proto = f.proto & 0xff;
    const daddr = f.daddr | 0;
    const s = ix.get6(daddr, ((f.dport & 0xffff) << 8) | proto | SVC_IDX_V6, f.d6);
    if (s !== null) return s;
    return ix.get6(daddr, proto | SVC_IDX_V6, f.d6);
  }

  destById(id: number): Dest | undefined {
    return this.dests[id];
  }

  destRef(id: number): void {
    this.refs[id]++;
  }

  destUnref(id: number): void {
    if (--this.refs[id] === 0) {
      const d = this.dests[id];
      if (d !== undefined && this.trash.has(d)) this.release(d);
    }
  }

  /** Addresses the director answers for: the VIPs of its services and explicit ones (fwmark VIPs). */
  ownsAddress(addr: number): boolean {
    return this.owned.has(addr >>> 0);
  }

  /** ownsAddress for IPv6: the four words at w[off] are the VIP of one of the IPv6 services (or owned explicitly). */
  ownsAddress6(w: Int32Array, off = 0): boolean {
    let o = this.owned6.get((w[off] ^ w[off + 1] ^ w[off + 2] ^ w[off + 3]) | 0);
    while (o !== undefined && !sameWords6(o.words, 0, w, off)) o = o.next;
    return o !== undefined;
  }

  /** Every owned IPv6 address, as text (the socket filter, the guard, the multicast memberships). */
  ownedAddresses6(): string[] {
    const out: string[] = [];
    for (const h of this.owned6.values())
      for (let o: Owned6 | undefined = h; o !== undefined; o = o.next) out.push(ipv6WordsText(o.words));
    return out;
  }

  addOwnedAddress6(w: Int32Array): void {
    this.own6(w, 1);
  }

  removeOwnedAddress6(w: Int32Array): void {
    this.own6(w, -1);
  }

  addOwnedAddress(addr: number): void {
    this.own(addr, 1);
  }

  removeOwnedAddress(addr: number): void {
    this.own(addr, -1);
  }

  /** Destinations waiting in the trash (listing/debug). */
  trashSize(): number {
    return this.trash.size;
  }

  // ------------------------------------------------------------------ changes

  apply(cmd: CtlCommand): void {
    this.applyAll([cmd]);
  }

  /** All commands or none: the whole batch is checked first against a shadow of the table. */
  applyAll(cmds: readonly CtlCommand[]): void {
    this.validate(cmds);
    for (const c of cmds) this.exec(c);
  }

  private validate(cmds: readonly CtlCommand[]): void {
    // Shadow: service key → set of destination keys, and its local addresses.
    const shadow = new Map<MapKey, Set<MapKey>>();
    for (const [k, s] of this.byKey) shadow.set(k, new Set(s.dests.map(destKeyOfDest)));
    // An IPv4 local address by its u32, an IPv6 one by its inet_ntop text.
    const laddrs = new Map<MapKey, Set<number | string>>();
    for (const [k, s] of this.byKey)
      if (s.laddrs.length + s.laddrs6.length > 0) laddrs.set(k, new Set([...s.laddrs, ...s.laddrs6]));
    const laddrsOf = (k: MapKey): Set<number | string> => {
      let set = laddrs.get(k);
      if (set === undefined) {
        set = new Set();
        laddrs.set(k, set);
      }
      return set;
    };
    // ACL rules by service key and list ("k|deny"), from the services' lists when first needed.
    const acls = new Map<string, Set<string>>();
    const aclOf = (k: MapKey, list: "deny" | "allow"): Set<string> => {
      const ak = `${k}|${list}`;
      let set = acls.get(ak);
      if (set === undefined) {
        const acl = this.byKey.get(k)?.acl;
        set = new Set(acl == null ? [] : acl[list].rules().map((r) => r.text));
        acls.set(ak, set);
      }
      return set;
    };
    // SYN proxy services and their DR/TUN destinations' keys: the two are refused together.
    const synproxy = new Map<MapKey, boolean>();
    const direct = new Map<MapKey, Set<MapKey>>();
    for (const [k, s] of this.byKey) {
      synproxy.set(k, (s.flags & SVC_F_SYNPROXY) !== 0);
      direct.set(k, new Set(s.dests.filter((d) => !repliesCross(d.fwd)).map(destKeyOfDest)));
    }
    const directOf = (k: MapKey): Set<MapKey> => {
      let set = direct.get(k);
      if (set === undefined) {
        set = new Set();
        direct.set(k, set);
      }
      return set;
    };
    const checkSynproxyDest = (k: MapKey, d: DestSpec, i: number): void => {
      if (synproxy.get(k) === true && !repliesCross(d.fwd)) fail("TSVS_ERR_INVALID", SYNPROXY_METHOD, i);
      if (repliesCross(d.fwd)) directOf(k).delete(destKeyOfSpec(d));
      else directOf(k).add(destKeyOfSpec(d));
    };
    const dropAcls = (k: MapKey): void => {
      acls.set(`${k}|deny`, new Set());
      acls.set(`${k}|allow`, new Set());
    };
    cmds.forEach((c, i) => {
      switch (c.op) {
        case "add-service": {
          const k = keyOf(c.svc);
          dropAcls(k);
          checkService(c.svc, i);
          if (shadow.has(k)) fail("TSVS_ERR_SERVICE_EXISTS", IPVS_MESSAGES.serviceExists, i);
          shadow.set(k, new Set());
          synproxy.set(k, (c.svc.flags & SVC_F_SYNPROXY) !== 0);
          direct.set(k, new Set());
          laddrs.delete(k);
          break;
        }
        case "edit-service": {
          checkService(c.svc, i);
          const k = keyOf(c.svc);
          if (!shadow.has(k)) fail("TSVS_ERR_NO_SERVICE", IPVS_MESSAGES.noService, i);
          const sp = (c.svc.flags & SVC_F_SYNPROXY) !== 0;
          if (sp && directOf(k).size > 0) fail("TSVS_ERR_INVALID", SYNPROXY_METHOD, i);
          synproxy.set(k, sp);
          break;
        }
        case "del-service":
          if (!shadow.delete(keyOf(c.key))) fail("TSVS_ERR_NO_SERVICE", IPVS_MESSAGES.noService, i);
          laddrs.delete(keyOf(c.key));
          dropAcls(keyOf(c.key));
          break;
        case "clear":
          shadow.clear();
          laddrs.clear();
          for (const k of this.byKey.keys()) dropAcls(k);
          break;
        case "zero":
          if (c.key !== null && !shadow.has(keyOf(c.key)))
            fail("TSVS_ERR_NO_SERVICE", IPVS_MESSAGES.noService, i);
          break;
        case "add-dest": {
          const set = shadow.get(keyOf(c.key));
          if (set === undefined) fail("TSVS_ERR_SERVICE_NOT_DEFINED", IPVS_MESSAGES.serviceNotDefined, i);
          checkDest(c.dest, c.key.af, i, this.syncRunning);
          const dk = destKeyOfSpec(c.dest);
          if (set.has(dk)) fail("TSVS_ERR_DEST_EXISTS", IPVS_MESSAGES.destExists, i);
          checkSynproxyDest(keyOf(c.key), c.dest, i);
          set.add(dk);
          break;
        }
        case "edit-dest": {
          const set = shadow.get(keyOf(c.key));
          if (set === undefined) fail("TSVS_ERR_SERVICE_NOT_DEFINED", IPVS_MESSAGES.serviceNotDefined, i);
          checkDest(c.dest, c.key.af, i, this.syncRunning);
          if (!set.has(destKeyOfSpec(c.dest))) fail("TSVS_ERR_NO_DEST", IPVS_MESSAGES.noDest, i);
          checkSynproxyDest(keyOf(c.key), c.dest, i);
          break;
        }
        case "del-dest": {
          const set = shadow.get(keyOf(c.key));
          if (set === undefined) fail("TSVS_ERR_SERVICE_NOT_DEFINED", IPVS_MESSAGES.serviceNotDefined, i);
          const af = c.addr6 !== undefined ? 6 : 4;
          if (!set.delete(destKeyOf(af, c.addr, c.addr6, c.port)))
            fail("TSVS_ERR_NO_DEST", IPVS_MESSAGES.noDest, i);
          directOf(keyOf(c.key)).delete(destKeyOf(af, c.addr, c.addr6, c.port));
          break;
        }
        case "add-laddr": {
          // dp_vs_laddr_add: ESRCH without the service, EEXIST for an address already listed.
          const k = keyOf(c.key);
          if (!shadow.has(k)) fail("TSVS_ERR_SERVICE_NOT_DEFINED", IPVS_MESSAGES.serviceNotDefined, i);
          const a = checkLaddr(c.addr, c.addr6, c.key.af, i);
          const set = laddrsOf(k);
          if (set.has(a)) fail("TSVS_ERR_LADDR_EXISTS", IPVS_MESSAGES.laddrExists, i);
          set.add(a);
          break;
        }
        case "del-laddr": {
          const k = keyOf(c.key);
          if (!shadow.has(k)) fail("TSVS_ERR_SERVICE_NOT_DEFINED", IPVS_MESSAGES.serviceNotDefined, i);
          const a = c.addr6 !== undefined ? (canonicalIPv6(c.addr6) ?? "") : c.addr >>> 0;
          if (!laddrsOf(k).delete(a)) fail("TSVS_ERR_NO_LADDR", IPVS_MESSAGES.noLaddr, i);
          break;
        }
        case "add-acl":
        case "del-acl": {
          // dp_vs_blklst_add/del (and whtlst): ESRCH without the service, EEXIST/ENOENT for the entry.
          const k = keyOf(c.key);
          if (!shadow.has(k)) fail("TSVS_ERR_SERVICE_NOT_DEFINED", IPVS_MESSAGES.serviceNotDefined, i);
          const p = parseAclPrefix(c.rule);
          if (typeof p === "string") fail("TSVS_ERR_INVALID", `${c.list} rule: ${p}`, i);
          const set = aclOf(k, c.list);
          if (c.op === "add-acl") {
            if (set.has(p.text))
              fail(
                "TSVS_ERR_ACL_EXISTS",
                c.list === "deny" ? IPVS_MESSAGES.blklstExists : IPVS_MESSAGES.whtlstExists,
                i,
              );
            set.add(p.text);
          } else if (!set.delete(p.text)) fail("TSVS_ERR_NO_ACL", IPVS_MESSAGES.noAclAddress, i);
          break;
        }
        case "set-conn-limit": {
          if (!shadow.has(keyOf(c.key)))
            fail("TSVS_ERR_SERVICE_NOT_DEFINED", IPVS_MESSAGES.serviceNotDefined, i);
          const m = checkConnLimit(c.limit);
          if (m !== null) fail("TSVS_ERR_INVALID", m, i);
          break;
        }
        case "set-timeout": {
          const t = c.timeouts;
          for (const v of [t.tcp, t.tcpFin, t.udp]) {
            if (!Number.isInteger(v) || v < 0 || v > MAX_TIMEOUT_S)
              fail("TSVS_ERR_INVALID", IPVS_MESSAGES.invalid, i);
          }
          break;
        }
      }
    });
  }

  private exec(c: CtlCommand): void {
    switch (c.op) {
      case "add-service":
        this.addService(c.svc);
        break;
      case "edit-service":
        this.editService(c.svc);
        break;
      case "del-service":
        this.delService(this.byKey.get(keyOf(c.key))!);
        break;
      case "clear":
        for (const s of [...this.ordered]) this.delService(s);
        break;
      case "zero":
        if (c.key === null) {
          for (const s of this.ordered) zeroService(s);
          this.hooks.onZeroAll?.();
        } else zeroService(this.byKey.get(keyOf(c.key))!);
        break;
      case "add-dest":
        this.addDest(this.byKey.get(keyOf(c.key))!, c.dest);
        break;
      case "edit-dest":
        this.editDest(this.byKey.get(keyOf(c.key))!, c.dest);
        break;
      case "del-dest": {
        const s = this.byKey.get(keyOf(c.key))!;
        const dk = destKeyOf(c.addr6 !== undefined ? 6 : 4, c.addr, c.addr6, c.port);
        this.delDest(s, s.dests.find((x) => destKeyOfDest(x) === dk)!);
        break;
      }
      case "set-timeout":
        this.hooks.onSetTimeout(c.timeouts);
        break;
      case "add-laddr": {
        // list_add_tail: local addresses are used in the order they were added.
        if (c.addr6 !== undefined) {
          const s = this.byKey.get(keyOf(c.key))!;
          const a = canonicalIPv6(c.addr6)!;
          s.laddrs6.push(a);
          this.own6(ipv6TextWords(a)!, 1);
          this.hooks.onLaddrAdded?.(a);
          break;
        }
        const a = c.addr >>> 0;
        this.byKey.get(keyOf(c.key))!.laddrs.push(a);
        this.hooks.onLaddrAdded?.(a);
        break;
      }
      case "add-acl":
      case "del-acl": {
        const s = this.byKey.get(keyOf(c.key))!;
        const p = parseAclPrefix(c.rule);
        if (typeof p === "string") break;
        if (c.op === "add-acl") {
          s.acl ??= new ServiceAcl();
          s.acl[c.list].add(p);
        } else if (s.acl !== null) {
          s.acl[c.list].del(p);
          if (s.acl.empty) s.acl = null;
        }
        break;
      }
      case "set-conn-limit": {
        // A new limit starts with full buckets (the old table goes).
        const s = this.byKey.get(keyOf(c.key))!;
        s.connLimit = c.limit.rate === 0 ? null : new ConnLimiter(c.limit);
        break;
      }
      case "del-laddr": {
        // Connections bound to the address keep it (the engine keeps owning it while they last).
        const s = this.byKey.get(keyOf(c.key))!;
        if (c.addr6 !== undefined) {
          const a = canonicalIPv6(c.addr6);
          s.laddrs6 = s.laddrs6.filter((x) => x !== a);
          this.own6(ipv6TextWords(c.addr6)!, -1);
          break;
        }
        s.laddrs = s.laddrs.filter((a) => a !== c.addr >>> 0);
        break;
      }
    }
  }

  private addService(spec: ServiceSpec): void {
    const s = new Service(spec.fwmark !== 0 ? 0 : spec.protocol, spec.addr, spec.port, spec.fwmark);
    s.af = spec.af;
    if (spec.af === 6 && spec.fwmark === 0) {
      s.addr6 = ipv6TextWords(spec.addr6 ?? "")!;
      s.addr = ipv6Fold(s.addr6);
    }
    setServiceParams(s, spec);
    s.sched = findScheduler(spec.schedName)!;
    s.sched.initService?.(s);
    this.byKey.set(keyOf(spec), s);
    this.svcSeq.set(s, this.nextSvcSeq++);
    if (ownsVip(s)) this.own(s.addr, 1);
    else if (ownsVip6(s)) this.own6(s.addr6 as Int32Array, 1);
    this.reorder();
  }

  private editService(spec: ServiceSpec): void {
    const s = this.byKey.get(keyOf(spec))!;
    setServiceParams(s, spec);
    if (s.sched.name !== spec.schedName) {
      // ip_vs_edit_service: unbind the old scheduler, bind the new one over the same dests.
      s.sched.doneService?.(s);
      s.schedData = undefined;
      s.sched = findScheduler(spec.schedName)!;
      s.sched.initService?.(s);
    }
  }

  private delService(s: Service): void {
    for (const d of [...s.dests]) this.delDest(s, d);
    s.sched.doneService?.(s);
    this.byKey.delete(keyOfService(s));
    this.svcSeq.delete(s);
    if (ownsVip(s)) this.own(s.addr, -1);
    else if (ownsVip6(s)) this.own6(s.addr6 as Int32Array, -1);
    // IPv6 local addresses are owned (NDP answered, kernel kept out) while configured.
    for (const a of s.laddrs6) this.own6(ipv6TextWords(a)!, -1);
    this.reorder();
    this.hooks.onServiceRemoved(s);
  }

  private addDest(s: Service, spec: DestSpec): void {
    // ip_vs_trash_get_dest: a removed destination still in use comes back with its counters.
    let d: Dest | undefined;
    const dk = destKeyOfSpec(spec);
    for (const t of this.trash) {
      if (t.lastSvc === s && destKeyOfDest(t) === dk) {
        d = t;
        break;
      }
    }
    if (d !== undefined) this.trash.delete(d);
    else {
      d = new Dest(spec.addr, spec.port);
      d.af = spec.af;
      if (spec.af === 6) {
        d.addr6 = ipv6TextWords(spec.addr6 ?? "")!;
        d.addr = ipv6Fold(d.addr6);
      }
      const id = this.freeIds.pop() ?? this.dests.length;
      d.id = id;
      this.dests[id] = d;
      this.refs[id] = 0;
    }
    this.updateDest(d, spec, true);
    d.svc = s;
    d.lastSvc = s;
    // list_add_rcu: new destinations go to the head of svc->destinations.
    s.dests.unshift(d);
    s.sched.addDest?.(s, d);
  }

  private editDest(s: Service, spec: DestSpec): void {
    const dk = destKeyOfSpec(spec);
    const d = s.dests.find((x) => destKeyOfDest(x) === dk)!;
    const wasQuiesced = d.weight === 0;
    this.updateDest(d, spec, false);
    s.sched.updDest?.(s, d);
    if (d.weight === 0 && !wasQuiesced) this.hooks.onDestQuiesced(d);
  }

  /** __ip_vs_update_dest: parameters, availability and the overload flag. */
  private updateDest(d: Dest, spec: DestSpec, add: boolean): void {
    d.fwd = spec.fwd;
    d.weight = spec.weight;
    // dest->last_weight: the latest non-zero weight, or the weight given when it was added (mh uses it).
    if (add || spec.weight > 0) d.lastWeight = spec.weight;
    d.tunType = spec.tunType;
    d.tunPort = spec.tunPort;
    d.tunFlags = spec.tunFlags;
    d.flags |= DEST_F_AVAILABLE;
    if (spec.uThreshold === 0 || spec.uThreshold > d.activeConns + d.inactConns) d.flags &= ~DEST_F_OVERLOAD;
    d.uThreshold = spec.uThreshold;
    d.lThreshold = spec.lThreshold;
  }

  /** __ip_vs_del_dest + __ip_vs_unlink_dest: out of the service; to the trash while in use. */
  private delDest(s: Service, d: Dest): void {
    const i = s.dests.indexOf(d);
    if (i >= 0) s.dests.splice(i, 1);
    d.flags &= ~DEST_F_AVAILABLE;
    s.sched.delDest?.(s, d);
    d.svc = null;
    this.hooks.onDestRemoved(d);
    if (this.refs[d.id] > 0) this.trash.add(d);
    else this.release(d);
  }

  private release(d: Dest): void {
    this.trash.delete(d);
    this.dests[d.id] = undefined;
    this.freeIds.push(d.id);
  }

  private own(addr: number, delta: number): void {
    const a = addr >>> 0;
    const n = (this.owned.get(a) ?? 0) + delta;
    if (n <= 0) this.owned.delete(a);
    else this.owned.set(a, n);
  }

  private own6(w: Int32Array, delta: number): void {
    const key = ipv6Fold(w) | 0;
    const head = this.owned6.get(key);
    let prev: Owned6 | undefined;
    let o = head;
    while (o !== undefined && !sameWords6(o.words, 0, w, 0)) {
      prev = o;
      o = o.next;
    }
    if (o === undefined) {
      if (delta > 0) this.owned6.set(key, { words: w.slice(0, 4), count: delta, next: head });
      return;
    }
    o.count += delta;
    if (o.count > 0) return;
    if (prev !== undefined) prev.next = o.next;
    else if (o.next !== undefined) this.owned6.set(key, o.next);
    else this.owned6.delete(key);
  }

  private reorder(): void {
    this.index = new ServiceIndex(this.byKey.values(), this.byKey.size);
    const seq = this.svcSeq;
    this.ordered = [...this.byKey.values()].sort(
      (a, b) => svcBucket(a) - svcBucket(b) || seq.get(b)! - seq.get(a)!,
    );
  }
}

/**
 * An IPv4 VIP the director answers ARP for. An IPv6 service's `addr` is a fold, not an address: it
 * must never make the director answer for an IPv4 address that happens to equal it.
 */
function ownsVip(s: Service): boolean {
  return s.fwmark === 0 && s.af === 4;
}

/** An IPv6 VIP the director answers NDP for. */
function ownsVip6(s: Service): boolean {
  return s.fwmark === 0 && s.af === 6 && s.addr6 !== null;
}

/** An owned IPv6 address and how many services (and explicit owners) use it; chained by fold. */
interface Owned6 {
  readonly words: Int32Array;
  count: number;
  next: Owned6 | undefined;
}

/** What the kernel refuses in a service spec (ipvsadm checks the rest before it asks). */
function checkService(spec: ServiceSpec, i: number): void {
  const sched = findScheduler(spec.schedName);
  if (sched === null || !PERSISTENT_PE.has(spec.peName)) {
    fail("TSVS_ERR_SCHED_NOT_FOUND", IPVS_MESSAGES.schedOrPeNotFound, i);
  }
  if (spec.af === 6) {
    if (spec.fwmark === 0 && ipv6TextWords(spec.addr6 ?? "") === null)
      fail("TSVS_ERR_INVALID", IPVS_MESSAGES.invalid, i);
    // ip_vs_add_service / ip_vs_edit_service: an IPv6 netmask is a prefix length, 1..128.
    if (!Number.isInteger(spec.netmask) || spec.netmask < 1 || spec.netmask > 128)
      fail("TSVS_ERR_INVALID", IPVS_MESSAGES.invalid, i);
  } else if (spec.af !== 4) fail("TSVS_ERR_INVALID", IPVS_MESSAGES.invalid, i);
  if ((spec.flags & SVC_F_PERSISTENT) !== 0 && (spec.timeout < 1 || spec.timeout > MAX_TIMEOUT_S)) {
    fail("TSVS_ERR_INVALID", IPVS_MESSAGES.invalid, i);
  }
  checkProxyProtocol(spec, i);
  if ((spec.flags & SVC_F_SYNPROXY) !== 0 && (spec.protocol !== IPPROTO_TCP || spec.fwmark !== 0))
    fail("TSVS_ERR_INVALID", SYNPROXY_TCP_ONLY, i);
}

/** The SYN proxy answers the handshake of a TCP VIP:port (synproxy.ts). */
export const SYNPROXY_TCP_ONLY = "synproxy is for TCP virtual services (-t) only";
/** ...and must see the real server's replies to translate them. */
export const SYNPROXY_METHOD =
  "synproxy needs NAT (-m) or FULLNAT (--fullnat) real servers: DR and TUN replies bypass the director";

/** Do a destination's replies cross the director (NAT, FULLNAT), as the SYN proxy needs? */
function repliesCross(fwd: Fwd): boolean {
  return fwd === Fwd.Masq || fwd === Fwd.FullNat;
}

/** The PROXY protocol a service may ask for (DPVS's proxy_protocol): over TCP only (ppRefusal). */
function checkProxyProtocol(spec: ServiceSpec, i: number): void {
  if (spec.proxyProtocol === undefined) return;
  const why = ppRefusal(spec.proxyProtocol, spec.protocol, spec.fwmark);
  if (why !== null) fail("TSVS_ERR_INVALID", why, i);
}

function checkDest(spec: DestSpec, svcAf: 4 | 6, i: number, syncRunning: boolean): void {
  if (spec.af !== 4 && spec.af !== 6) fail("TSVS_ERR_INVALID", IPVS_MESSAGES.invalid, i);
  // ip_vs_genl_set_cmd: a destination of the other family than its service's is taken for TUN
  // only (ip_vs_tunnel_xmit(_v6) carries either family inside either: xmit/tun.ts), and not while
  // a sync daemon runs (the sync protocol has one family per entry). DPVS lets FULLNAT cross from
  // an IPv6 service to IPv4 real servers (NAT64, xmit/fullnat.ts; synced in tsvs's own form),
  // never the other way.
  if (spec.af !== svcAf) {
    const nat64 = spec.fwd === Fwd.FullNat && svcAf === 6;
    if (!nat64 && (spec.fwd !== Fwd.Tunnel || syncRunning))
      fail("TSVS_ERR_INVALID", IPVS_MESSAGES.invalid, i);
  }
  // ip_vs_add_dest/ip_vs_edit_dest: -ERANGE for a weight out of range or l_threshold > u_threshold.
  if (spec.weight < 0 || spec.weight > 65535 || spec.lThreshold > spec.uThreshold) {
    fail("TSVS_ERR_INVALID", "Numerical result out of range", i);
  }
  if (spec.af === 6) {
    // ip_vs_new_dest: ipv6_addr_type must say unicast and not link-local.
    const w = ipv6TextWords(spec.addr6 ?? "");
    if (w === null || !ipv6UsableUnicast(w)) fail("TSVS_ERR_INVALID", IPVS_MESSAGES.invalid, i);
    return;
  }
  const a = spec.addr >>> 0;
  // A destination must be a unicast address (the kernel's inet_addr_type check).
  if (a === 0 || a === 0xffffffff || a >>> 28 === 0xe) fail("TSVS_ERR_INVALID", IPVS_MESSAGES.invalid, i);
}

/**
 * A local address must be a unicast address, as a destination's (EINVAL otherwise); an IPv6 one
 * serves an IPv6 service only (an IPv4 service's real servers are IPv4). Returns its key in the
 * shadow: the u32, or the IPv6 text as inet_ntop prints it.
 */
function checkLaddr(addr: number, addr6: string | undefined, svcAf: 4 | 6, i: number): number | string {
  if (addr6 !== undefined) {
    const w = ipv6TextWords(addr6);
    if (svcAf !== 6 || w === null || !ipv6UsableUnicast(w))
      fail("TSVS_ERR_INVALID", IPVS_MESSAGES.invalid, i);
    return ipv6WordsText(w);
  }
  const a = addr >>> 0;
  if (a === 0 || a === 0xffffffff || a >>> 28 === 0xe) fail("TSVS_ERR_INVALID", IPVS_MESSAGES.invalid, i);
  return a;
}

function setServiceParams(s: Service, spec: ServiceSpec): void {
  s.flags = spec.flags;
  s.timeout = spec.timeout;
  s.netmask = spec.netmask >>> 0;
  s.peName = spec.peName;
  s.proxyProtocol = ppValue(spec.proxyProtocol ?? "disable");
}

function zeroService(s: Service): void {
  s.stats.zero();
  for (const d of s.dests) d.stats.zero();
  s.acl?.deny.zero();
  s.acl?.allow.zero();
  if (s.connLimit !== null) s.connLimit.limited = 0;
}
