// The backup side of connection sync: ip_vs_proc_conn (net/netfilter/ipvs/ip_vs_sync.c), one
// received entry at a time, into the engine's connection table.
//
//   flags = (wire & BACKUP_MASK) | SYNC (tsvs keeps its TOA_SENT bit too; FULLNAT is FWD 5);
//   a connection (not a template) in a state its protocol does not have is refused;
//   an existing connection with another destination: replaced (expired now, created anew),
//     unless the entry is INACTIVE — the expiry news of a connection already replaced: ignored;
//   an existing one with the same destination (or a template): only INACTIVE and SEQ follow
//     the master, with the destination's active/inactive counters;
//   a new one: bound to the destination ip_vs_find_dest finds (which imposes its forwarding
//     method), or left unbound but handled;
//   then in_pkts = sync_threshold, state (and old_state) as received, the timer restarted with
//     the received timeout (v1), or the protocol's for the state (v0; templates 3 min).
//
// tsvs additions: a FULLNAT connection keeps the master's LIP:lport (the v1 option), so that the
// real server's replies to LIP:lport find it in the OUT table; a connection of a persistent
// service is linked to its template when the backup has it (the kernel's backup links none; the
// master sends templates first, sender.ts), so that the template outlives it as on the master.
//
// IPv6 (struct ip_vs_sync_v6): the same steps with the entry's words: the IN and template lookups
// by folds confirmed by words, the service by its IPv6 VIP (findService6), the destination by
// its IPv6 address and port; a new entry gets both sides IPv6 (the client is the reply's
// destination: NAT's laddr; FULLNAT's IPv6 local end from tsvs's option). A NAT64 entry (daf 4,
// codec.ts) keeps an IPv6 client side and an IPv4 server side: its IPv4 real server and LIP. A
// FULLNAT connection with the PROXY protocol gets its sequence state from tsvs's PP option.

import { ipv6MaskWords } from "../addr.js";
import type { ConnLife } from "../conn/life.js";
import {
  A6_DADDR,
  CONN_F_PP,
  CONN_F_SYNC,
  CONN_F_SYNPROXY,
  CONN_F_TOA_SENT,
  type ConnTable,
} from "../conn/table.js";
import type { IpvsCtl } from "../ctl.js";
import { type Dest, Fwd } from "../dest.js";
import { Flow, IPPROTO_TCP, IPPROTO_UDP } from "../packet/flow.js";
import { TCP_S_LAST } from "../proto/tcp.js";
import type { Timeouts } from "../proto/timeouts.js";
import { sameWords6 } from "../route.js";
import type { Service } from "../service.js";
import {
  SYNC_F_BACKUP_MASK,
  SYNC_F_BACKUP_UPD_MASK,
  SYNC_F_FWD_MASK,
  SYNC_F_INACTIVE,
  SYNC_F_NOOUTPUT,
  SYNC_F_TEMPLATE,
} from "./codec.js";
import { syncWordInstalled } from "./policy.js";
import { SA6_CADDR, SA6_DADDR, SA6_LADDR, SA6_VADDR, type SyncConn } from "./types.js";

/**
 * What became of one entry: created, updated in place, created in place of a connection to
 * another destination, ignored (stale INACTIVE news of a replaced connection, or FULLNAT without
 * its local end), refused (a state, protocol or forwarding method the backup does not have), or
 * not created because the table is full.
 */
export type SyncInstallResult = "new" | "updated" | "replaced" | "ignored" | "bad-state" | "full";

/** Templates and v0 entries without a timeout: 3 minutes (ip_vs_proc_conn). */
const DEFAULT_TIMEOUT_MS = 180_000;
/** The largest timeout a word of the table holds, in seconds (MAX_SCHEDULE_TIMEOUT's role). */
const MAX_TIMEOUT_S = 2_147_483;
/** UDP has one state (IP_VS_UDP_S_LAST). */
const UDP_S_LAST = 1;

/** What the installer reads and changes of the engine. */
export interface SyncInstallDeps {
  readonly conns: ConnTable;
  /** Installs a synced SYN-proxy connection's translation (synproxy.ts installSynced). */
  readonly synproxy?: {
    installSynced(cx: number, seqd: number, tsd: number, opt: number, capacity: number): void;
  };
  readonly ctl: IpvsCtl;
  readonly life: ConnLife;
  readonly timeouts: Timeouts;
  readonly sysctls: { readonly syncThreshold: number };
}

export class SyncInstaller {
  private readonly t: ConnTable;
  /** The service lookup's key (findService reads a Flow). */
  private readonly key = new Flow();
  /** An IPv6 entry's caddr, vaddr and daddr words, and a template key's client net and vaddr. */
  private readonly c6 = new Int32Array(4);
  private readonly v6 = new Int32Array(4);
  private readonly d6 = new Int32Array(4);
  private readonly l6 = new Int32Array(4);
  private readonly snet6 = new Int32Array(4);
  private readonly tv6 = new Int32Array(4);

  constructor(private readonly e: SyncInstallDeps) {
    this.t = e.conns;
  }

  /** ip_vs_proc_conn for one decoded entry (codec.ts). */
  install(c: SyncConn, now: number): SyncInstallResult {
    const t = this.t;
    let flags = (c.flags & (SYNC_F_BACKUP_MASK | CONN_F_TOA_SENT)) | CONN_F_SYNC;
    const template = (flags & SYNC_F_TEMPLATE) !== 0;
    const proto = c.proto & 0xff;
    const state = c.state;
    // Templates' states are only logged by the kernel; tsvs keeps a byte of state.
    if (template ? state > 0xff : !stateValid(proto, state)) return "bad-state";
    const caddr = c.caddr | 0;
    const vaddr = c.vaddr | 0;
    const v6 = c.af === 6;
    const c6 = this.c6;
    const v6w = this.v6;
    if (v6) {
      c6.set(c.a6.subarray(SA6_CADDR, SA6_CADDR + 4));
      v6w.set(c.a6.subarray(SA6_VADDR, SA6_VADDR + 4));
      this.d6.set(c.a6.subarray(SA6_DADDR, SA6_DADDR + 4));
    }
    let result: SyncInstallResult = "new";
    let cx: number;
    if (!template) {
      cx = v6
        ? t.lookupIn6(proto, c6, c.cport, v6w, c.vport)
        : t.lookupIn(proto, caddr, c.cport, vaddr, c.vport);
      if (cx >= 0 && (t.dportOf(cx) !== c.dport || !this.sameDaddr(cx, c, v6))) {
        if ((flags & SYNC_F_INACTIVE) !== 0) return "ignored";
        this.e.life.expireNow(cx, now);
        cx = -1;
        result = "replaced";
      }
    } else
      cx = v6 ? t.lookupTemplate6(proto, c6, v6w, c.vport) : t.lookupTemplate(proto, caddr, vaddr, c.vport);

    if (cx >= 0) {
      const old = t.flagsOf(cx);
      const dest = this.e.ctl.destById(t.destOf(cx));
      if (((old ^ flags) & SYNC_F_INACTIVE) !== 0 && !template && dest !== undefined) {
        if ((flags & SYNC_F_INACTIVE) !== 0) {
          dest.activeConns--;
          dest.inactConns++;
        } else {
          dest.activeConns++;
          dest.inactConns--;
        }
      }
      t.setFlags(cx, (flags & SYNC_F_BACKUP_UPD_MASK) | (old & ~SYNC_F_BACKUP_UPD_MASK));
      if (dest === undefined) this.tryBindDest(cx, c, template);
      result = "updated";
    } else {
      const dest = this.findDest(c, proto, flags, template);
      if (dest !== undefined) {
        // ip_vs_bind_dest: the destination's forwarding method (and NOOUTPUT unless NAT); a
        // template takes its INACTIVE too, a synced connection keeps the master's.
        flags &= ~(SYNC_F_FWD_MASK | SYNC_F_NOOUTPUT);
        flags |= destConnFlags(dest);
        if (template) flags |= SYNC_F_INACTIVE;
      }
      const fwd = flags & SYNC_F_FWD_MASK;
      if (fwd > Fwd.FullNat) return "bad-state";
      let laddr = caddr;
      let lport = c.cport;
      // IPv6 FULLNAT: the entry's server side is RIP6 → LIP6 (the option's words).
      const fnat6 = v6 && c.daf === 6 && fwd === Fwd.FullNat && !template;
      if (fnat6) this.l6.set(c.a6.subarray(SA6_LADDR, SA6_LADDR + 4));
      if (fwd === Fwd.FullNat && !template) {
        if (c.laddr === 0 && c.lport === 0) return "ignored";
        laddr = c.laddr | 0;
        lport = c.lport;
      }
      cx = this.e.life.newSynced(
        proto,
        caddr,
        c.cport,
        vaddr,
        c.vport,
        c.daddr | 0,
        c.dport,
        laddr,
        lport,
        flags,
        dest,
        now,
        fnat6 ? c.a6 : null,
        SA6_LADDR,
      );
      if (cx < 0) return "full";
      if (v6) {
        t.setClient6(cx, c6, v6w);
        if (c.daf === 6) t.setServer6(cx, this.d6, fnat6 ? this.l6 : c6);
        // newSynced hashed by the folds alone: again with the words (setClient6's contract).
        t.hash(cx);
      }
    }

    // FULLNAT's PROXY protocol state: the shift the connection's later packets need.
    if (c.pp && (t.flagsOf(cx) & (SYNC_F_FWD_MASK | SYNC_F_TEMPLATE)) === Fwd.FullNat) {
      t.setPp(cx, c.ppIsn, c.ppWord);
      t.setFlags(cx, t.flagsOf(cx) | CONN_F_PP);
    }
    // The SYN proxy's translation: the real server's numbers differ from the client's view by it.
    const sp = this.e.synproxy;
    if (c.sp && sp !== undefined && (t.flagsOf(cx) & SYNC_F_TEMPLATE) === 0) {
      const fwd = t.flagsOf(cx) & SYNC_F_FWD_MASK;
      if (fwd === Fwd.Masq || fwd === Fwd.FullNat) {
        sp.installSynced(cx, c.spSeqd, c.spTsd, c.spOpt, t.capacity);
        t.setFlags(cx, t.flagsOf(cx) | CONN_F_SYNPROXY);
      }
    }
    t.setInPkts(cx, this.e.sysctls.syncThreshold);
    t.setState(cx, state);
    t.setSyncWord(cx, syncWordInstalled(state));
    t.arm(cx, this.timeoutMs(c, proto, state, template), now);
    if (!template && t.controlOf(cx) < 0) this.linkTemplate(cx, proto, v6);
    return result;
  }

  /** Is the entry's real server the one c names (the same family, address and, for IPv6, words)? */
  private sameDaddr(cx: number, c: SyncConn, v6: boolean): boolean {
    const t = this.t;
    const d6 = v6 && c.daf === 6;
    if (t.isDestIpv6(cx) !== d6 || t.daddrOf(cx) !== c.daddr >>> 0) return false;
    if (!d6) return true;
    const a = t.addr6Words;
    return a !== null && sameWords6(a, (cx << 4) + A6_DADDR, this.d6, 0);
  }

  private timeoutMs(c: SyncConn, proto: number, state: number, template: boolean): number {
    const s = c.timeoutS;
    if (s !== null && s > 0) return Math.min(s, MAX_TIMEOUT_S) * 1000;
    if (template) return DEFAULT_TIMEOUT_MS;
    return proto === IPPROTO_TCP ? this.e.timeouts.tcpMs(state) : this.e.timeouts.udpMs();
  }

  /** ip_vs_service_find for the entry: its fwmark first (a fwmark template's is its vaddr). */
  private findService(c: SyncConn, proto: number, template: boolean): Service | null {
    const k = this.key;
    k.fwmark = c.fwmark !== 0 ? c.fwmark : template && proto === 0 ? c.vaddr : 0;
    k.proto = proto;
    k.daddr = c.vaddr;
    k.dport = c.vport;
    if (c.af !== 6) return this.e.ctl.findService(k);
    k.d6.set(c.a6.subarray(SA6_VADDR, SA6_VADDR + 4));
    return this.e.ctl.findService6(k);
  }

  /**
   * ip_vs_find_dest: the service's destination daddr:dport; a fwmark service's non-NAT
   * destinations by address with port 0; then the other of the two ports.
   */
  private findDest(c: SyncConn, proto: number, flags: number, template: boolean): Dest | undefined {
    const svc = this.findService(c, proto, template);
    if (svc === null) return undefined;
    const addr = c.daddr >>> 0;
    const a6 = c.af === 6 && c.daf === 6 ? c.a6 : null;
    let port = c.dport;
    if (svc.fwmark !== 0 && (flags & SYNC_F_FWD_MASK) !== Fwd.Masq) port = 0;
    return lookupDest(svc, addr, a6, port) ?? lookupDest(svc, addr, a6, port ^ c.dport);
  }

  /** ip_vs_try_bind_dest: an unbound entry whose destination exists now (same method only). */
  private tryBindDest(cx: number, c: SyncConn, template: boolean): void {
    const t = this.t;
    const flags = t.flagsOf(cx);
    const dest = this.findDest(c, t.protoOf(cx), flags, template);
    if (dest === undefined || dest.fwd !== (flags & SYNC_F_FWD_MASK)) return;
    this.e.life.bindDest(cx, dest);
  }

  /** A connection of a persistent service under its template, when the backup has it. */
  private linkTemplate(cx: number, proto: number, v6: boolean): void {
    const t = this.t;
    const svc = this.e.ctl.destById(t.destOf(cx))?.svc ?? null;
    if (svc === null || !svc.persistent) return;
    const vport = t.vportOf(cx);
    const fwmark = svc.fwmark !== 0;
    const tproto = fwmark ? 0 : proto;
    const tvport = !fwmark && vport === svc.port ? vport : 0;
    let ct: number;
    if (v6) {
      // life.ts's keys: ipv6_addr_prefix(caddr, netmask), the fwmark in the vaddr's first word.
      const snet = this.snet6;
      snet.set(this.c6);
      ipv6MaskWords(snet, 0, svc.netmask);
      const tv = this.tv6;
      if (fwmark) {
        tv.fill(0);
        tv[0] = svc.fwmark;
      } else tv.set(this.v6);
      ct = t.lookupTemplate6(tproto, snet, tv, tvport);
    } else
      ct = t.lookupTemplate(
        tproto,
        t.caddrOf(cx) & svc.netmask,
        (fwmark ? svc.fwmark : t.vaddrOf(cx)) | 0,
        tvport,
      );
    if (ct < 0) return;
    t.setControl(cx, ct);
    t.setNControl(ct, t.nControlOf(ct) + 1);
  }
}

function stateValid(proto: number, state: number): boolean {
  if (proto === IPPROTO_TCP) return state < TCP_S_LAST;
  if (proto === IPPROTO_UDP) return state < UDP_S_LAST;
  return false;
}

/** dest->conn_flags without INACTIVE: the method, NOOUTPUT unless the replies cross tsvs. */
function destConnFlags(d: Dest): number {
  return d.fwd === Fwd.Masq || d.fwd === Fwd.FullNat ? d.fwd : d.fwd | SYNC_F_NOOUTPUT;
}

/** The service's destination addr:port; a6 (the entry's words, daddr at SA6_DADDR) for IPv6. */
function lookupDest(svc: Service, addr: number, a6: Int32Array | null, port: number): Dest | undefined {
  for (const d of svc.dests) {
    if (d.addr !== addr || d.port !== port) continue;
    const w = d.addr6;
    if (a6 === null ? w === null : w !== null && sameWords6(w, 0, a6, SA6_DADDR)) return d;
  }
  return undefined;
}
