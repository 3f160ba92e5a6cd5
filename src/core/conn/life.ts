// The connection life cycle: net/netfilter/ipvs/ip_vs_conn.c (ip_vs_conn_new, ip_vs_bind_dest,
// ip_vs_conn_expire, ip_vs_conn_expire_now, ip_vs_unbind_dest, ip_vs_check_template) with the
// scheduling parts of ip_vs_core.c (ip_vs_schedule, ip_vs_sched_persist, set_tcp_state's
// active/inactive accounting in ip_vs_proto_tcp.c, ip_vs_in_stats / ip_vs_out_stats /
// ip_vs_conn_stats) and DPVS's FULLNAT local address and port choice.
//
// Addresses cross these calls as int32 bits (see engine.ts). The connection table stores them so.
// An IPv6 connection is keyed by the folds like an IPv4 one, its words going to the table beside
// them (conn/table.ts); the schedulers see the folds in the Flow's saddr/daddr and dest.addr, which
// is how the kernel's hash their IPv6 keys (addr_fold).

import { ipv6Fold, ipv6MaskWords } from "../addr.js";
import type { EngineCounters } from "../counters.js";
import type { IpvsCtl } from "../ctl.js";
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD, type Dest, Fwd } from "../dest.js";
import type { LipTable } from "../lip.js";
import { type Flow, IPPROTO_UDP } from "../packet/flow.js";
import {
  DIR_OUTPUT,
  TCP_S_ESTABLISHED,
  TCP_S_NONE,
  TCP_S_SYN_RECV,
  TCP_S_SYNACK,
  tcpNextState,
} from "../proto/tcp.js";
import type { Timeouts } from "../proto/timeouts.js";
import type { Xorshift32 } from "../random.js";
import type { SchedContext } from "../sched/types.js";
import type { Service } from "../service.js";
import { SVC_F_ONEPACKET } from "../service.js";
import type { Stats } from "../stats.js";
import {
  A6_LADDR,
  CONN_F_FWD_MASK,
  CONN_F_INACTIVE,
  CONN_F_NOOUTPUT,
  CONN_F_ONE_PACKET,
  CONN_F_SYNPROXY,
  CONN_F_TEMPLATE,
  type ConnTable,
} from "./table.js";

const FIRST_LPORT = 1024;
const TEMPLATE_EXPIRE_LATER_MS = 60_000;
/** Port value the kernel writes into an invalidated template so that it is never found again. */
const INVALID_PORT = 0xffff;

/** The SYN proxy's part in expiry (synproxy.ts): its SYN retries and its held segments. */
export interface SynproxyLife {
  /** The timer of a SYN-proxy entry ran out: true when it was re-armed (a SYN sent again). */
  expire(cx: number, now: number): boolean;
  /** The entry goes: what was held for it too. */
  release(cx: number): void;
}

/** What the life cycle reads of the engine (all fixed for the engine's life). */
export interface ConnLifeDeps {
  readonly conns: ConnTable;
  readonly ctl: IpvsCtl;
  readonly sysctls: { readonly expireQuiescentTemplate: boolean };
  readonly timeouts: Timeouts;
  readonly counters: EngineCounters;
  /** secure_tcp's choice of TCP table (defense.ts). */
  readonly defense: { readonly secureTcpTable: boolean };
  readonly lipTable: LipTable;
  readonly totalStats: Stats;
}

/**
 * set_tcp_state's accounting: a connection leaving ESTABLISHED counts as inactive on its
 * destination, one entering it as active again. Returns the flags with CONN_F_INACTIVE to match.
 */
function activeAccounting(dest: Dest | undefined, flags: number, next: number): number {
  if (dest === undefined) return flags;
  if ((flags & CONN_F_INACTIVE) === 0 && next !== TCP_S_ESTABLISHED) {
    dest.activeConns--;
    dest.inactConns++;
    return flags | CONN_F_INACTIVE;
  }
  if ((flags & CONN_F_INACTIVE) !== 0 && next === TCP_S_ESTABLISHED) {
    dest.activeConns++;
    dest.inactConns--;
    return flags & ~CONN_F_INACTIVE;
  }
  return flags;
}

export class ConnLife {
  private readonly conns: ConnTable;
  private readonly ctl: IpvsCtl;
  private readonly timeouts: Timeouts;
  private readonly counters: EngineCounters;
  private readonly lipTable: LipTable;
  private readonly totalStats: Stats;
  private readonly sysctls: { readonly expireQuiescentTemplate: boolean };
  private readonly defense: { readonly secureTcpTable: boolean };
  private readonly schedCtx: SchedContext;
  /** The schedulers' generator when it is the engine's own (readable ahead); null when injected. */
  private readonly rng: Xorshift32 | null;
  private lipCursor = 0;
  private lportCursor = FIRST_LPORT;
  /** An IPv6 template's key: the client under the service's prefix, and a fwmark service's vaddr. */
  private readonly snet6 = new Int32Array(4);
  private readonly fwmark6 = new Int32Array(4);
  /** pickLocal6's IPv6 LIP (allocLocal6's candidate). */
  readonly pickedLip6 = new Int32Array(4);
  /** pickLocal's answer (two numbers, no object per connection). */
  pickedLip = 0;
  pickedLport = 0;
  /** Set by the engine once: the SYN proxy's expiry hooks. */
  synproxy: SynproxyLife | null = null;
  /** The conn table's timer callback (ConnTable.advance): one closure for the engine's life. */
  readonly expireCb = (cx: number, at: number): void => this.expire(cx, at);

  constructor(e: ConnLifeDeps, random: (() => number) | Xorshift32) {
    this.conns = e.conns;
    this.ctl = e.ctl;
    this.timeouts = e.timeouts;
    this.counters = e.counters;
    this.lipTable = e.lipTable;
    this.totalStats = e.totalStats;
    this.sysctls = e.sysctls;
    this.defense = e.defense;
    if (typeof random === "function") {
      this.rng = null;
      this.schedCtx = { now: 0, random };
    } else {
      const rng = random;
      this.rng = rng;
      this.schedCtx = { now: 0, random: () => rng.next() };
    }
  }

  /**
   * For explain: a scheduler context at `now` whose random() draws what the next connection's
   * scheduling will draw, from a copy of the generator (the engine's own is not advanced); null
   * when the randomness was injected and cannot be read ahead.
   */
  peekContext(now: number): SchedContext | null {
    if (this.rng === null) return null;
    const copy = this.rng.copy();
    return { now, random: () => copy.next() };
  }

  // ---------------------------------------------------------------- scheduling

  /**
   * ip_vs_schedule: returns the new connection's index, -1 when no destination can be
   * found (the caller answers as ip_vs_leave does), -2 when the table is full.
   */
  schedule(svc: Service, f: Flow, now: number): number {
    this.schedCtx.now = now;
    if (svc.persistent) return this.schedulePersist(svc, f, now);
    if (svc.fwmark === 0 && f.dport !== svc.port) return -1;
    const dest = svc.sched.schedule(svc, f, this.schedCtx);
    if (dest === null) return -1;
    const cx = this.packetConn(svc, f, dest, dest.port !== 0 ? dest.port : f.dport, now);
    if (cx >= 0) this.connStats(svc, dest);
    return cx;
  }

  /** The connection of the packet in f (its client and virtual ends, either family) to dest:dport. */
  private packetConn(svc: Service, f: Flow, dest: Dest, dport: number, now: number): number {
    const flags = (svc.flags & SVC_F_ONEPACKET) !== 0 && f.proto === IPPROTO_UDP ? CONN_F_ONE_PACKET : 0;
    const c6 = f.af === 6 ? f.s6 : null;
    return this.newConn(
      f.proto,
      f.saddr | 0,
      f.sport,
      f.daddr | 0,
      f.dport,
      dest,
      dport,
      flags,
      now,
      c6,
      f.d6,
    );
  }

  /** ip_vs_sched_persist: find or create the template, then the connection under it. */
  private schedulePersist(svc: Service, f: Flow, now: number): number {
    const t = this.conns;
    // Template keys, as the kernel fills ip_vs_conn_param for them:
    //   port-specific (PPC):      <proto, snet, 0, vaddr, vport>
    //   port zero (PCC):          <proto, snet, 0, vaddr, 0>
    //   fwmark:                   <IPPROTO_IP, snet, 0, fwmark, 0>
    // IPv6: snet is ipv6_addr_prefix(saddr, netmask) (a prefix length), and a fwmark template's
    // vaddr the mark in the first word of the address (union nf_inet_addr fwmark = { .ip = mark }).
    const portMatch = f.dport === svc.port;
    const tproto = svc.fwmark !== 0 ? 0 : f.proto;
    const tvport = svc.fwmark === 0 && portMatch ? f.dport : 0;
    let snet: number;
    let tvaddr: number;
    let snet6: Int32Array | null = null;
    let tv6: Int32Array | null = null;
    let ct: number;
    if (f.af === 6) {
      snet6 = this.snet6;
      snet6.set(f.s6);
      ipv6MaskWords(snet6, 0, svc.netmask);
      snet = ipv6Fold(snet6) | 0;
      tv6 = f.d6;
      if (svc.fwmark !== 0) {
        tv6 = this.fwmark6;
        tv6[0] = svc.fwmark;
      }
      tvaddr = ipv6Fold(tv6) | 0;
      ct = t.lookupTemplate6(tproto, snet6, tv6, tvport);
    } else {
      snet = f.saddr & svc.netmask;
      tvaddr = (svc.fwmark !== 0 ? svc.fwmark : f.daddr) | 0;
      ct = t.lookupTemplate(tproto, snet, tvaddr, tvport);
    }
    let dest: Dest | undefined;
    if (ct >= 0 && this.checkTemplate(ct)) {
      dest = this.ctl.destById(t.destOf(ct));
    } else {
      const d = svc.sched.schedule(svc, f, this.schedCtx);
      if (d === null) return -1;
      dest = d;
      const tdport = portMatch ? d.port : 0;
      ct = this.newConn(tproto, snet, 0, tvaddr, tvport, d, tdport, CONN_F_TEMPLATE, now, snet6, tv6);
      if (ct < 0) return -2;
      t.setTimeout(ct, svc.timeout * 1000);
    }
    if (dest === undefined) return -1;
    let dport = f.dport;
    if (dport === svc.port && dest.port !== 0) dport = dest.port;
    const cx = this.packetConn(svc, f, dest, dport, now);
    if (cx < 0) return cx === -1 ? -2 : cx;
    t.setControl(cx, ct);
    t.setNControl(ct, t.nControlOf(ct) + 1);
    // ip_vs_conn_put(ct): every new connection restarts the template's timer.
    t.arm(ct, t.timeoutOf(ct), now);
    this.connStats(svc, dest);
    return cx;
  }

  /** ip_vs_check_template: is the template's destination still fit for new connections? */
  private checkTemplate(ct: number): boolean {
    const t = this.conns;
    if (!this.templateFit(ct)) {
      // Invalidate: re-key so that it is never found again; it lives on while it controls.
      if (t.vportOf(ct) !== INVALID_PORT) {
        t.unhash(ct);
        t.setDport(ct, INVALID_PORT);
        t.setVport(ct, INVALID_PORT);
        t.setCport(ct, 0);
        t.hash(ct);
      }
      return false;
    }
    return true;
  }

  /** checkTemplate's test alone (changes nothing): the destination is there, available, not quiesced-and-expired. */
  templateFit(ct: number): boolean {
    const dest = this.ctl.destById(this.conns.destOf(ct));
    return !(
      dest === undefined ||
      dest.svc === null ||
      (dest.flags & DEST_F_AVAILABLE) === 0 ||
      (this.sysctls.expireQuiescentTemplate && dest.weight === 0)
    );
  }

  // ---------------------------------------------------------------- new

  /**
   * ip_vs_conn_new + ip_vs_bind_dest. Returns the index, or -1 when the table is full. An IPv6
   * client side comes as its words c6 and v6 (caddr and vaddr then being their folds), null for
   * IPv4. FULLNAT from an IPv6 client to an IPv4 real server is NAT64 (xmit/fullnat.ts fullnat64):
   * the server side stays IPv4, an IPv4 LIP from allocLocal.
   */
  private newConn(
    proto: number,
    caddr: number,
    cport: number,
    vaddr: number,
    vport: number,
    dest: Dest,
    dport: number,
    flags: number,
    now: number,
    c6: Int32Array | null,
    v6: Int32Array | null,
  ): number {
    const t = this.conns;
    const template = (flags & CONN_F_TEMPLATE) !== 0;
    const fnat = dest.fwd === Fwd.FullNat && !template;
    const cx = this.alloc(now);
    if (cx < 0) return -1;
    let fl = flags | dest.fwd | CONN_F_INACTIVE;
    if (dest.fwd !== Fwd.Masq && dest.fwd !== Fwd.FullNat) fl |= CONN_F_NOOUTPUT;
    // alloc() cleared state, control, counters. The real server replies to the client itself
    // (NAT): the reply key is <RIP:rport → CIP:cport>; FULLNAT picks laddr:lport below.
    const daddr = dest.addr | 0;
    t.setEntry(cx, proto, caddr, cport, vaddr, vport, daddr, dport, caddr, cport, fl, dest.id);
    if (c6 !== null && v6 !== null) {
      t.setClient6(cx, c6, v6);
      if (dest.addr6 !== null) t.setServer6(cx, dest.addr6, c6);
    } else if (dest.addr6 !== null) t.setDest6(cx, dest.addr6); // TUN: IPv4 client, IPv6 real server
    if (fnat) {
      const ok =
        dest.addr6 !== null
          ? this.allocLocal6(cx, proto, dest.addr6, dport, dest.svc)
          : this.allocLocal(cx, proto, daddr, dport, dest.svc);
      if (!ok) {
        t.free(cx);
        return -1;
      }
    }
    t.hash(cx);
    this.bindDest(cx, dest);
    t.arm(cx, template ? 0 : this.initialTimeout(proto), now);
    this.counters.connsCreated++;
    return cx;
  }

  /** A free entry; when the table is full, the oldest embryonic entry makes room. -1 if none. */
  private alloc(now: number): number {
    const t = this.conns;
    let cx = t.alloc();
    if (cx < 0) {
      // The kernel allocates until memory runs out, its defences (drop_entry: defense.ts) freeing
      // entries once a second meanwhile; here the table is the bound, so when it is full the
      // oldest embryonic entry makes room at once.
      const victim = t.oldestEmbryonic();
      if (victim < 0) return -1;
      this.counters.connsDropped++;
      this.expireNow(victim, now);
      cx = t.alloc();
    }
    return cx;
  }

  /**
   * ip_vs_bind_dest's counters: the entry refers to dest; a template counts as persistent, a
   * connection as active or inactive by its INACTIVE flag (always inactive when new, a synced one
   * as its master said).
   */
  bindDest(cx: number, dest: Dest): void {
    const t = this.conns;
    t.setDest(cx, dest.id);
    this.ctl.destRef(dest.id);
    const fl = t.flagsOf(cx);
    if ((fl & CONN_F_TEMPLATE) !== 0) dest.persistConns++;
    else if ((fl & CONN_F_INACTIVE) !== 0) dest.inactConns++;
    else dest.activeConns++;
    if (dest.uThreshold !== 0 && dest.activeConns + dest.inactConns >= dest.uThreshold)
      dest.flags |= DEST_F_OVERLOAD;
  }

  /**
   * ip_vs_conn_new for an entry a sync message brought (ip_vs_proc_conn): the key, the local end
   * and the flags as the installer settled them (sync/install.ts), bound to dest when one was
   * found, unbound (but handled) when not. Not armed: the caller sets state and timeout. Returns
   * the index, or -1 when the table is full.
   */
  newSynced(
    proto: number,
    caddr: number,
    cport: number,
    vaddr: number,
    vport: number,
    daddr: number,
    dport: number,
    laddr: number,
    lport: number,
    flags: number,
    dest: Dest | undefined,
    now: number,
    lip6: Int32Array | null = null,
    lip6Off = 0,
  ): number {
    const t = this.conns;
    const cx = this.alloc(now);
    if (cx < 0) return -1;
    t.setEntry(cx, proto, caddr, cport, vaddr, vport, daddr, dport, laddr, lport, flags, -1);
    t.hash(cx);
    if (dest !== undefined) this.bindDest(cx, dest);
    if ((flags & (CONN_F_FWD_MASK | CONN_F_TEMPLATE)) === Fwd.FullNat) {
      if (lip6 !== null) this.lipTable.acquire6(lip6, lip6Off);
      else this.lipTable.acquire(laddr);
    }
    return cx;
  }

  private initialTimeout(proto: number): number {
    return proto === IPPROTO_UDP ? this.timeouts.udpMs() : this.timeouts.tcpMs(TCP_S_NONE);
  }

  /**
   * FULLNAT: a LIP and a free local port toward RIP:rport. The LIP comes from the service's own
   * local addresses when it has any (round robin over this worker's share, as DPVS's __get_laddr
   * walks svc->laddr_list), else from this worker's share of the --lip pool. A service whose
   * laddrs all belong to other workers gets nothing here: the connection fails (no_dest).
   */
  private allocLocal(cx: number, proto: number, raddr: number, rport: number, svc: Service | null): boolean {
    if (!this.pickLocal(proto, raddr, rport, svc, true)) return false;
    const t = this.conns;
    t.setLaddr(cx, this.pickedLip);
    t.setLport(cx, this.pickedLport);
    this.lipTable.acquire(this.pickedLip);
    return true;
  }

  /**
   * allocLocal for an IPv6 real server: an IPv6 LIP of the service (DPVS's -P, round robin over
   * this worker's share; the --lip pool is IPv4) and a free local port, the entry's server side
   * becoming RIP6 → LIP6.
   */
  private allocLocal6(
    cx: number,
    proto: number,
    r6: Int32Array,
    rport: number,
    svc: Service | null,
  ): boolean {
    if (!this.pickLocal6(proto, r6, rport, svc, true)) return false;
    const t = this.conns;
    t.setServer6(cx, r6, this.pickedLip6);
    t.setLport(cx, this.pickedLport);
    this.lipTable.acquire6(this.pickedLip6, 0);
    return true;
  }

  /**
   * allocLocal6's choice into pickedLip6 / pickedLport; false when there is none. `commit` as
   * pickLocal's (explain: the IPv6 LIP and port the next connection toward [r6]:rport would take).
   */
  pickLocal6(proto: number, r6: Int32Array, rport: number, svc: Service | null, commit: boolean): boolean {
    const lips = svc === null ? null : svc.laddr6Share;
    const n = lips === null ? 0 : lips.length >> 2;
    if (svc === null || lips === null || n === 0) return false;
    const t = this.conns;
    const lt = this.lipTable;
    const l6 = this.pickedLip6;
    let cursor = svc.laddr6Cursor;
    let lport = this.lportCursor;
    for (let l = 0; l < n; l++) {
      const at = cursor < n ? cursor : 0;
      cursor = (at + 1) % n;
      if (commit) svc.laddr6Cursor = cursor;
      for (let k = 0; k < 4; k++) l6[k] = lips[(at << 2) + k];
      for (let k = 0; k < 65536 - FIRST_LPORT; k++) {
        const p = lport;
        lport = p === 65535 ? FIRST_LPORT : p + 1;
        if (commit) this.lportCursor = lport;
        if (t.lookupOut6(proto, r6, rport, l6, p) < 0) {
          this.pickedLport = p;
          return true;
        }
        if (commit) lt.conflict6(l6, 0);
      }
    }
    return false;
  }

  /**
   * allocLocal's choice into pickedLip / pickedLport; false when there is none. `commit` moves the
   * cursors and counts port conflicts, as a new connection does; without it nothing changes
   * (explain: the LIP and port the next FULLNAT connection toward raddr:rport would take).
   */
  pickLocal(proto: number, raddr: number, rport: number, svc: Service | null, commit: boolean): boolean {
    const own = svc !== null && svc.laddrs.length > 0;
    const lips = own ? svc.laddrShare : this.lipTable.poolShare;
    const n = lips.length;
    if (n === 0) return false;
    const t = this.conns;
    const lt = this.lipTable;
    let cursor = own ? svc.laddrCursor : this.lipCursor;
    let lport = this.lportCursor;
    for (let l = 0; l < n; l++) {
      const at = cursor < n ? cursor : 0;
      cursor = (at + 1) % n;
      if (commit) {
        if (own) svc.laddrCursor = cursor;
        else this.lipCursor = cursor;
      }
      const lip = lips[at];
      for (let k = 0; k < 65536 - FIRST_LPORT; k++) {
        const p = lport;
        lport = p === 65535 ? FIRST_LPORT : p + 1;
        if (commit) this.lportCursor = lport;
        if (t.lookupOut(proto, raddr, rport, lip, p) < 0) {
          this.pickedLip = lip;
          this.pickedLport = p;
          return true;
        }
        if (commit) lt.conflict(lip);
      }
    }
    return false;
  }

  // ---------------------------------------------------------------- state

  /**
   * set_tcp_state with the kernel's active/inactive accounting. `dest` is the connection's
   * destination, looked up once by the caller for the packet (undefined once it is gone).
   */
  setTcpState(cx: number, dest: Dest | undefined, dir: number, tcpFlags: number, now: number): void {
    const t = this.conns;
    const fl0 = t.flagsOf(cx);
    let fl = fl0;
    const noOutput = (fl & CONN_F_NOOUTPUT) !== 0;
    if (noOutput && dir === DIR_OUTPUT) {
      fl &= ~CONN_F_NOOUTPUT;
    }
    const old = t.stateOf(cx);
    const next = tcpNextState(old, dir, tcpFlags, noOutput, this.defense.secureTcpTable);
    if (next !== old) {
      t.setStateFlags(cx, next, activeAccounting(dest, fl, next));
      if (next === TCP_S_SYN_RECV || next === TCP_S_SYNACK) t.noteEmbryonic(cx);
    } else if (fl !== fl0) t.setFlags(cx, fl);
    t.arm(cx, this.timeouts.tcpMs(next), now);
  }

  /**
   * The SYN proxy (synproxy.ts) sets a state itself (its SYN_SENT → ESTABLISHED is no transition
   * of the kernel's table): set_tcp_state's active/inactive accounting, the state's timeout.
   */
  setTcpStateTo(cx: number, dest: Dest | undefined, next: number, now: number): void {
    const t = this.conns;
    t.setStateFlags(cx, next, activeAccounting(dest, t.flagsOf(cx), next));
    t.arm(cx, this.timeouts.tcpMs(next), now);
  }

  // ---------------------------------------------------------------- expiry

  /** ip_vs_conn_expire: entries that still control others wait another 60 s. */
  private expire(cx: number, now: number): void {
    const t = this.conns;
    const sp = this.synproxy;
    if (sp !== null && (t.flagsOf(cx) & CONN_F_SYNPROXY) !== 0 && sp.expire(cx, now)) return;
    if (t.nControlOf(cx) > 0) {
      t.arm(cx, TEMPLATE_EXPIRE_LATER_MS, now);
      return;
    }
    this.unlink(cx);
    this.counters.connsExpired++;
  }

  /** ip_vs_conn_expire_now. */
  expireNow(cx: number, now: number): void {
    const t = this.conns;
    if (t.nControlOf(cx) > 0) {
      t.arm(cx, 0, now);
      return;
    }
    this.unlink(cx);
  }

  /** Unhash, detach from the template, ip_vs_unbind_dest, free. */
  private unlink(cx: number): void {
    const t = this.conns;
    const ct = t.controlOf(cx);
    if (ct >= 0) {
      t.setNControl(ct, t.nControlOf(ct) - 1);
      t.setControl(cx, -1);
    }
    const id = t.destOf(cx);
    const dest = this.ctl.destById(id);
    if (dest !== undefined) {
      if ((t.flagsOf(cx) & CONN_F_TEMPLATE) === 0) {
        if ((t.flagsOf(cx) & CONN_F_INACTIVE) !== 0) dest.inactConns--;
        else dest.activeConns--;
      } else dest.persistConns--;
      const total = dest.activeConns + dest.inactConns;
      if (dest.lThreshold !== 0) {
        if (total < dest.lThreshold) dest.flags &= ~DEST_F_OVERLOAD;
      } else if (dest.uThreshold !== 0) {
        if (total * 4 < dest.uThreshold * 3) dest.flags &= ~DEST_F_OVERLOAD;
      } else dest.flags &= ~DEST_F_OVERLOAD;
      this.ctl.destUnref(id);
    }
    // A FULLNAT connection held its LIP (the hash key <RIP:rport → LIP:lport> dies with it).
    if ((t.flagsOf(cx) & (CONN_F_FWD_MASK | CONN_F_TEMPLATE)) === Fwd.FullNat) {
      if (!t.isDestIpv6(cx)) this.lipTable.release(t.laddrOf(cx));
      else if (t.addr6Words !== null) this.lipTable.release6(t.addr6Words, (cx << 4) + A6_LADDR);
    }
    if ((t.flagsOf(cx) & CONN_F_SYNPROXY) !== 0) this.synproxy?.release(cx);
    t.free(cx);
  }

  // ---------------------------------------------------------------- statistics

  private connStats(svc: Service, dest: Dest): void {
    dest.stats.conns++;
    svc.stats.conns++;
    this.totalStats.conns++;
  }

  /** ip_vs_in_stats for a packet of a connection whose destination is `dest`. */
  inStats(dest: Dest | undefined, bytes: number): void {
    if (dest === undefined) return;
    dest.stats.inpkts++;
    dest.stats.inbytes += bytes;
    const svc = dest.svc;
    if (svc !== null) {
      svc.stats.inpkts++;
      svc.stats.inbytes += bytes;
    }
    this.totalStats.inpkts++;
    this.totalStats.inbytes += bytes;
  }

  /** ip_vs_out_stats. */
  outStats(dest: Dest | undefined, bytes: number): void {
    if (dest === undefined) return;
    dest.stats.outpkts++;
    dest.stats.outbytes += bytes;
    const svc = dest.svc;
    if (svc !== null) {
      svc.stats.outpkts++;
      svc.stats.outbytes += bytes;
    }
    this.totalStats.outpkts++;
    this.totalStats.outbytes += bytes;
  }
}
