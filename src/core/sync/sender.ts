// The master side of connection sync: ip_vs_sync_conn / ip_vs_sync_conn_v0 and the master
// thread's buffer queue (net/netfilter/ipvs/ip_vs_sync.c), for one engine.
//
// The engine calls connIn() after every request of a connection it forwarded (where ip_vs_in
// calls ip_vs_sync_conn, with in_pkts just incremented). The policy (policy.ts) decides whether
// the connection and, in turn, its controlling template are written into the message being
// built; a message that fills up is copied into a buffer of a small pool and queued. The daemon's
// loop calls flush(now) every ~20 ms (IPVS_SYNC_SEND_DELAY) and sends what takeMessages() gives.
//
// Per packet this allocates nothing: one scratch SyncConn is filled from the table and written.
//
// IPv6: an entry whose two sides are IPv6 is written as struct ip_vs_sync_v6 (v1) from the
// words of the table's IPv6 record (an IPv6 FULLNAT one with its IPv6 local end, codec.ts); v0
// has no IPv6 layout and skips it with its controllers (ip_vs_sync_conn_v0 returns on cp->af !=
// AF_INET). Of the mixed-family entries only NAT64 (DPVS's FULLNAT from an IPv6 client to an IPv4
// real server) is written, in codec.ts's tsvs form. A tunnel between families (an IPv4 client to
// an IPv6 real server or the reverse) is not: the kernel's v1 entry has one family for all three
// addresses (ip_vs_sync_conn writes cp->daddr in cp->af's layout), which is why ipvs refuses
// mixed-family pools with a sync daemon running.
//
// Order within a message: the kernel writes a connection, then its template. tsvs writes the
// template first (both when both are due) so that a tsvs backup finds the template when the
// connection arrives and links them; a kernel backup does not depend on the order.

import {
  A6_CADDR,
  A6_DADDR,
  A6_LADDR,
  A6_VADDR,
  CONN_F_DEST_IPV6,
  CONN_F_IPV6,
  CONN_F_PP,
  CONN_F_SYNPROXY,
  type ConnTable,
} from "../conn/table.js";
import type { Dest } from "../dest.js";
import { emptySyncConn, SYNC_F_FWD_MASK, SYNC_F_ONE_PACKET, SYNC_F_TEMPLATE, SyncWriter } from "./codec.js";
import { syncNeeded } from "./policy.js";
import { writeRefreshMarker } from "./refresh.js";
import { SA6_CADDR, SA6_DADDR, SA6_LADDR, SA6_VADDR, type SyncConn, type SyncSysctls } from "./types.js";

/** IPVS_SYNC_FLUSH_TIME: a partly filled message waits at most this long (ms). */
export const SYNC_FLUSH_MS = 2000;
/** IPVS_SYNC_SEND_DELAY: how often the daemon's loop should call flush() (ms). */
export const SYNC_SEND_DELAY_MS = 20;
/** Finished messages kept for the daemon at most (the kernel's sync_qlen_max); more are dropped. */
export const SYNC_QUEUE_MAX = 256;
/** Controllers followed from one connection (tsvs: a connection and its template). */
const MAX_CHAIN = 4;
const FWD_FULLNAT = 5;
const F_FAMILY = CONN_F_IPV6 | CONN_F_DEST_IPV6;

/** NAT64: an IPv6 client side, an IPv4 server side, FULLNAT. */
function nat64(flags: number): boolean {
  return (flags & F_FAMILY) === CONN_F_IPV6 && (flags & SYNC_F_FWD_MASK) === FWD_FULLNAT;
}

/** What the sender reads of the engine. */
export interface SyncSenderDeps {
  readonly conns: ConnTable;
  /** The SYN proxy's translation of an established connection (synproxy.ts syncState). */
  readonly synproxy?: { syncState(cx: number, out: Int32Array): boolean };
  readonly ctl: { destById(id: number): Dest | undefined };
  /** Read at every call: sysctl changes apply to the next packet. */
  readonly sysctls: SyncSysctls;
}

export interface SyncSenderOptions {
  /** --syncid 0..255. */
  syncid: number;
  /** --sync-maxlen: the largest message. */
  maxlen: number;
  /** Finished messages kept until takeMessages(); default SYNC_QUEUE_MAX. */
  queueMax?: number;
  /** flush()'s default age (ms) for a partly filled message; default SYNC_FLUSH_MS. */
  flushMs?: number;
}

export class SyncSender {
  readonly syncid: number;
  readonly maxlen: number;
  /** Messages queued, and dropped because the queue was full. */
  messagesQueued = 0;
  messagesDropped = 0;
  /** Entries written (connections and templates). */
  connsWritten = 0;

  private readonly t: ConnTable;
  private readonly deps: SyncSenderDeps;
  private readonly w: SyncWriter;
  private readonly c: SyncConn = emptySyncConn();
  /** syncState's output: seq delta, TSval delta, option bits. */
  private readonly sp = new Int32Array(3);
  private readonly chain = new Int32Array(MAX_CHAIN);
  private readonly queueMax: number;
  private readonly flushMs: number;
  /** When the message being built got its first entry (the kernel's sb->firstuse). */
  private firstUse = 0;
  /** Finished messages (views of pool buffers), and the buffers behind them. */
  private queued: Uint8Array[] = [];
  private queuedBufs: Uint8Array[] = [];
  /** The buffers of the batch takeMessages() handed out last: free again at the next call. */
  private lent: Uint8Array[] = [];
  private readonly pool: Uint8Array[] = [];

  constructor(deps: SyncSenderDeps, opts: SyncSenderOptions) {
    this.deps = deps;
    this.t = deps.conns;
    this.syncid = opts.syncid & 0xff;
    this.w = new SyncWriter(opts.maxlen);
    this.maxlen = this.w.buf.length;
    this.queueMax = Math.max(1, opts.queueMax ?? SYNC_QUEUE_MAX);
    this.flushMs = opts.flushMs ?? SYNC_FLUSH_MS;
  }

  /**
   * ip_vs_sync_conn after a request of connection cx (its in_pkts already counted): writes it
   * and its controllers as the policy asks.
   */
  connIn(cx: number, now: number): void {
    const t = this.t;
    const sc = this.deps.sysctls;
    const v0 = sc.syncVersion === 0;
    const chain = this.chain;
    const flags = t.flagsOf(cx);
    const family = flags & F_FAMILY;
    if (family !== 0 && (v0 || (family !== F_FAMILY && !nat64(flags)))) return;
    let n = 0;
    let c = cx;
    let pkts = (flags & SYNC_F_ONE_PACKET) !== 0 ? sc.syncThreshold : t.inPktsOf(cx);
    for (let depth = 0; depth < MAX_CHAIN; depth++) {
      if (this.needed(c, pkts, now)) chain[n++] = c;
      // v0 follows a controller only from an entry it wrote (ip_vs_sync_conn_v0 returns early).
      else if (v0) break;
      const ct = t.controlOf(c);
      if (ct < 0) break;
      if ((t.flagsOf(ct) & SYNC_F_TEMPLATE) !== 0) {
        t.countIn(ct);
        pkts = t.inPktsOf(ct);
      } else pkts = sc.syncThreshold;
      c = ct;
    }
    if (n === 0) return;
    const version = v0 ? 0 : 1;
    for (let i = n - 1; i >= 0; i--) this.write(chain[i], version, now);
  }

  /**
   * The table refresh (refresh.ts): writes entry cx as connIn would, whatever the policy says;
   * false when it has no form in the sync version (the family rules of connIn).
   */
  writeEntry(cx: number, now: number): boolean {
    const flags = this.t.flagsOf(cx);
    const v0 = this.deps.sysctls.syncVersion === 0;
    const family = flags & F_FAMILY;
    if (family !== 0 && (v0 || (family !== F_FAMILY && !nat64(flags)))) return false;
    const before = this.connsWritten;
    this.write(cx, v0 ? 0 : 1, now);
    return this.connsWritten !== before;
  }

  /** The refresh's end: the message being built is queued, then the marker (refresh.ts). */
  queueRefreshMarker(worker: number, workers: number, _now: number): void {
    const w = this.w;
    if (w.version >= 0 && w.count > 0) this.queueCurrent();
    if (this.queued.length >= this.queueMax) {
      this.messagesDropped++;
      return;
    }
    const buf = this.pool.pop() ?? new Uint8Array(this.maxlen);
    const len = writeRefreshMarker(buf, this.syncid, worker, workers);
    this.queued.push(buf.subarray(0, len));
    this.queuedBufs.push(buf);
    this.messagesQueued++;
  }

  /**
   * Queues the message being built if it has entries and is at least maxAgeMs old (default:
   * the flushMs option, 2 s as the kernel; 0 queues it whatever its age).
   */
  flush(now: number, maxAgeMs = this.flushMs): void {
    const w = this.w;
    if (w.version >= 0 && w.count > 0 && now - this.firstUse >= maxAgeMs) this.queueCurrent();
  }

  /**
   * The finished messages, oldest first. They (and the array) stay valid until the next call,
   * which takes their buffers back into the pool: send or copy them before.
   */
  takeMessages(): Uint8Array[] {
    const lent = this.lent;
    for (const b of lent) this.pool.push(b);
    lent.length = 0;
    if (this.queued.length === 0) return [];
    const out = this.queued;
    this.queued = [];
    this.lent = this.queuedBufs;
    this.queuedBufs = lent;
    return out;
  }

  /** Messages waiting for takeMessages(). */
  get pending(): number {
    return this.queued.length;
  }

  private needed(cx: number, pkts: number, now: number): boolean {
    const t = this.t;
    const flags = t.flagsOf(cx);
    const sc = this.deps.sysctls;
    const ct = t.controlOf(cx);
    const inPersistence = sc.syncPersistMode !== 0 && ct >= 0 && (t.flagsOf(ct) & SYNC_F_TEMPLATE) !== 0;
    const w = syncNeeded(
      sc,
      t.protoOf(cx),
      flags,
      t.stateOf(cx),
      pkts,
      inPersistence,
      t.timeoutOf(cx),
      now,
      t.syncWordOf(cx),
    );
    if (w < 0) return false;
    t.setSyncWord(cx, w);
    return true;
  }

  private write(cx: number, version: 0 | 1, now: number): void {
    const t = this.t;
    const c = this.c;
    const flags = t.flagsOf(cx);
    const template = (flags & SYNC_F_TEMPLATE) !== 0;
    const proto = t.protoOf(cx);
    c.proto = proto;
    c.caddr = t.caddrOf(cx);
    c.cport = t.cportOf(cx);
    c.vaddr = t.vaddrOf(cx);
    c.vport = t.vportOf(cx);
    c.daddr = t.daddrOf(cx);
    c.dport = t.dportOf(cx);
    // tsvs-private bits stay home: the family bits (the entry's layout says it), CONN_F_PP and
    // CONN_F_SYNPROXY (their options carry the state).
    c.flags = flags & ~(F_FAMILY | CONN_F_PP | CONN_F_SYNPROXY);
    c.state = t.stateOf(cx);
    // cp->fwmark is the packet's mark; tsvs keeps the service's (a fwmark template's vaddr).
    const svc = this.deps.ctl.destById(t.destOf(cx))?.svc;
    c.fwmark = svc != null ? svc.fwmark : template && proto === 0 ? c.vaddr : 0;
    c.timeoutS = Math.floor(t.timeoutOf(cx) / 1000);
    const local = !template && (flags & SYNC_F_FWD_MASK) === FWD_FULLNAT;
    c.laddr = local ? t.laddrOf(cx) : 0;
    c.lport = local ? t.lportOf(cx) : 0;
    c.pp = local && (flags & CONN_F_PP) !== 0;
    c.ppIsn = c.pp ? t.ppIsnOf(cx) : 0;
    c.ppWord = c.pp ? t.ppWordOf(cx) : 0;
    const sp = this.deps.synproxy;
    c.sp = !template && (flags & CONN_F_SYNPROXY) !== 0 && sp !== undefined && sp.syncState(cx, this.sp);
    c.spSeqd = c.sp ? this.sp[0] : 0;
    c.spTsd = c.sp ? this.sp[1] : 0;
    c.spOpt = c.sp ? this.sp[2] : 0;
    c.af = (flags & CONN_F_IPV6) !== 0 ? 6 : 4;
    c.daf = (flags & CONN_F_DEST_IPV6) !== 0 ? 6 : 4;
    if (c.af === 6) {
      t.addr6Of(cx, A6_CADDR, c.a6, SA6_CADDR);
      t.addr6Of(cx, A6_VADDR, c.a6, SA6_VADDR);
      if (c.daf === 6) {
        t.addr6Of(cx, A6_DADDR, c.a6, SA6_DADDR);
        if (local) t.addr6Of(cx, A6_LADDR, c.a6, SA6_LADDR);
      }
    }

    const w = this.w;
    if (w.version !== version) {
      if (w.version >= 0 && w.count > 0) this.queueCurrent();
      this.begin(version, now);
    }
    if (!w.add(c)) {
      this.queueCurrent();
      this.begin(version, now);
      if (!w.add(c)) return;
    }
    this.connsWritten++;
  }

  private begin(version: 0 | 1, now: number): void {
    this.w.begin(this.syncid, version);
    this.firstUse = now;
  }

  /** sb_queue_tail: the message being built goes to the queue (or is dropped when it is full). */
  private queueCurrent(): void {
    const w = this.w;
    const len = w.finish();
    if (len === 0) return;
    if (this.queued.length >= this.queueMax) {
      this.messagesDropped++;
      return;
    }
    const buf = this.pool.pop() ?? new Uint8Array(this.maxlen);
    buf.set(w.buf.subarray(0, len));
    this.queued.push(buf.subarray(0, len));
    this.queuedBufs.push(buf);
    this.messagesQueued++;
  }
}
