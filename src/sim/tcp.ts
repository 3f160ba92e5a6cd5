// A small but real TCP (RFC 9293 state machine): 3-way handshake with the MSS option, segments
// sized to min(peer MSS, path MTU - 40), cumulative ACKs, retransmission timeout of 200 ms
// doubling, 6 retries then ETIMEDOUT (no RTT estimation), fast retransmit on three duplicate
// ACKs and NewReno partial-ACK recovery (RFC 5681, RFC 6582) over a receiver that keeps
// out-of-order segments, FIN in both directions (piggybacked on the last data), TIME_WAIT, RST.
// A fixed 64 KiB window, no window scaling, no congestion window, no SACK, no delayed ACKs.
// Sequence arithmetic is mod 2^32: send positions are offsets from the ISN, wire values are
// compared as signed 32-bit differences.

import { formatIPv4, readU16, writeU16, writeU32 } from "../core/addr.js";
import type { Flow } from "../core/packet/flow.js";
import { IPPROTO_TCP, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from "../core/packet/flow.js";
import { ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_PORT_UNREACH } from "../core/packet/icmp.js";
import { TCP_HLEN, TCPOPT_MSS, tcpGetMss } from "../core/packet/tcp.js";
import type { TimerHandle } from "./clock.js";
import type { Host, IcmpEvent, IpLike } from "./host.js";
import { ip } from "./host.js";
import { EPHEMERAL_HIGH, EPHEMERAL_LOW, type SimError, simError } from "./udp.js";

export type TcpState =
  | "CLOSED"
  | "SYN_SENT"
  | "SYN_RECEIVED"
  | "ESTABLISHED"
  | "FIN_WAIT_1"
  | "FIN_WAIT_2"
  | "CLOSE_WAIT"
  | "CLOSING"
  | "LAST_ACK"
  | "TIME_WAIT";

export interface TcpStackOptions {
  timeWaitMs?: number;
  /** Initial retransmission timeout (ms) and the number of retransmissions before giving up. */
  rtoMs?: number;
  maxRetries?: number;
}

/** Our advertised window: fixed, no scaling. */
const RCV_WND = 65535;
/** RFC 9293 default send MSS when the peer sent no option. */
const DEFAULT_MSS = 536;

const enc = new TextEncoder();

export class TcpSocket {
  state: TcpState = "CLOSED";
  onConnect: (() => void) | null = null;
  onData: ((chunk: Uint8Array) => void) | null = null;
  /** The peer's FIN: no more data will arrive. */
  onEnd: (() => void) | null = null;
  /** Once, when the socket is done for the application (TIME_WAIT or CLOSED). */
  onClose: ((hadError: boolean) => void) | null = null;
  onError: ((err: SimError) => void) | null = null;
  bytesIn = 0;
  bytesOut = 0;
  retransmits = 0;
  segmentsOut = 0;
  /** Largest data segment sent so far (tests check PMTU with it). */
  maxSegment = 0;

  iss = 0;
  irs = 0;
  /** Next expected wire sequence number from the peer. */
  rcvNxt = 0;
  peerMss = DEFAULT_MSS;
  peerWnd = RCV_WND;
  // Send side, as offsets from iss: SYN = 0, data byte k = 1 + k, FIN = 1 + total data.
  private sndUna = 0;
  private sndNxt = 0;
  private sndMax = 0;
  private tx = new Uint8Array(0);
  private txHead = 0;
  private txLen = 0;
  /** Offset (from iss) of tx[txHead]. */
  private txBase = 1;
  private finQueued = false;
  private finSent = false;
  private finReceived = false;
  private rto: number;
  private retries = 0;
  private timer: TimerHandle | null = null;
  private closedNotified = false;
  private pumpQueued = false;
  private dupAcks = 0;
  /** sndMax when loss recovery began; partial ACKs below it retransmit the next hole. */
  private recover = 0;
  /** Out-of-order segments by wire sequence number. */
  private ooo = new Map<number, Uint8Array>();
  listener: TcpListener | null = null;

  constructor(
    readonly stack: TcpStack,
    readonly localAddr: number,
    readonly localPort: number,
    readonly remoteAddr: number,
    readonly remotePort: number,
  ) {
    this.rto = stack.rtoMs;
  }

  get key(): string {
    return tupleKey(this.localAddr, this.localPort, this.remoteAddr, this.remotePort);
  }

  toString(): string {
    return `${formatIPv4(this.localAddr)}:${this.localPort}->${formatIPv4(this.remoteAddr)}:${this.remotePort} ${this.state}`;
  }

  /** Effective send MSS: the peer's option, lowered to fit the current path MTU. */
  get mss(): number {
    const p = this.stack.host.pathMtu(this.remoteAddr) - 40;
    return Math.max(8, Math.min(this.peerMss, p));
  }

  write(data: Uint8Array | string): void {
    if (this.finQueued || this.state === "CLOSED" || this.state === "TIME_WAIT") return;
    const b = typeof data === "string" ? enc.encode(data) : data;
    if (b.length === 0) return;
    this.reserve(b.length);
    this.tx.set(b, this.txHead + this.txLen);
    this.txLen += b.length;
    this.schedulePump();
  }

  /** Half-close: FIN after the queued data. */
  end(data?: Uint8Array | string): void {
    if (data !== undefined) this.write(data);
    if (this.finQueued || this.state === "CLOSED") return;
    this.finQueued = true;
    this.schedulePump();
  }

  /**
   * Writes made in one event go out together at the end of it (as tcp_autocorking and Nagle
   * coalesce small writes): a response's header, body and FIN share segments.
   */
  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    this.stack.host.clock.after(0, () => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** Abort: RST to the peer (when synchronized) and close without error. */
  destroy(): void {
    if (this.state === "CLOSED") return;
    if (this.state !== "SYN_SENT" && this.state !== "TIME_WAIT")
      this.stack.sendSegment(this, TCP_RST | TCP_ACK, this.sndNxt, null, 0, 0, false);
    this.close(null);
  }

  private reserve(n: number): void {
    if (this.txHead + this.txLen + n <= this.tx.length) return;
    if (this.txLen + n <= this.tx.length && this.txHead > this.tx.length / 2) {
      this.tx.copyWithin(0, this.txHead, this.txHead + this.txLen);
      this.txHead = 0;
      return;
    }
    let cap = Math.max(4096, this.tx.length);
    while (cap < this.txLen + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.tx.subarray(this.txHead, this.txHead + this.txLen));
    this.tx = nb;
    this.txHead = 0;
  }

  private get dataEnd(): number {
    return this.txBase + this.txLen;
  }

  // ---- output ----

  /** Sends what the window allows (and the FIN after the data); returns segments sent. */
  pump(): number {
    const st = this.state;
    if (
      st !== "ESTABLISHED" &&
      st !== "CLOSE_WAIT" &&
      st !== "FIN_WAIT_1" &&
      st !== "CLOSING" &&
      st !== "LAST_ACK"
    )
      return 0;
    let sent = 0;
    const wnd = Math.max(this.peerWnd, this.mss);
    const end = this.dataEnd;
    while (this.sndNxt < end && this.sndNxt - this.sndUna < wnd) {
      const mss = this.mss;
      const n = Math.min(mss, end - this.sndNxt, wnd - (this.sndNxt - this.sndUna));
      const off = this.txHead + (this.sndNxt - this.txBase);
      const last = this.sndNxt + n === end;
      // tcp_send_fin: the FIN rides on the last queued data segment when there is one.
      const fin = last && this.finQueued && this.sndNxt + n - this.sndUna < wnd;
      if (this.sndNxt < this.sndMax) this.retransmits++;
      const flags = TCP_ACK | (last ? TCP_PSH : 0) | (fin ? TCP_FIN : 0);
      this.stack.sendSegment(this, flags, this.sndNxt, this.tx, off, n, false);
      if (n > this.maxSegment) this.maxSegment = n;
      this.sndNxt += n;
      sent++;
      if (fin) this.finSentNow();
    }
    if (this.finQueued && this.sndNxt === end && this.sndNxt - this.sndUna < wnd) {
      if (this.finSent && this.sndNxt < this.sndMax) this.retransmits++;
      this.stack.sendSegment(this, TCP_FIN | TCP_ACK, this.sndNxt, null, 0, 0, false);
      sent++;
      this.finSentNow();
    }
    if (this.sndNxt > this.sndMax) this.sndMax = this.sndNxt;
    if (this.sndUna < this.sndMax && this.timer === null) this.armTimer();
    return sent;
  }

  private finSentNow(): void {
    this.sndNxt++;
    this.finSent = true;
    if (this.state === "ESTABLISHED") this.state = "FIN_WAIT_1";
    else if (this.state === "CLOSE_WAIT") this.state = "LAST_ACK";
  }

  private armTimer(): void {
    this.stack.host.clock.cancel(this.timer);
    this.timer = this.stack.host.clock.after(this.rto, () => this.onTimeout());
  }

  private stopTimer(): void {
    this.stack.host.clock.cancel(this.timer);
    this.timer = null;
  }

  private onTimeout(): void {
    this.timer = null;
    if (this.state === "CLOSED" || this.state === "TIME_WAIT") return;
    if (this.retries >= this.stack.maxRetries) {
      this.close(simError("ETIMEDOUT", `tcp ${this.toString()}`));
      return;
    }
    this.retries++;
    this.rto *= 2;
    this.retransmits++;
    if (this.state === "SYN_SENT") {
      this.stack.sendSegment(this, TCP_SYN, 0, null, 0, 0, true);
      this.armTimer();
      return;
    }
    if (this.state === "SYN_RECEIVED") {
      this.stack.sendSegment(this, TCP_SYN | TCP_ACK, 0, null, 0, 0, true);
      this.armTimer();
      return;
    }
    // Resend the oldest unacknowledged segment; later holes follow on partial ACKs (NewReno,
    // RFC 6582), the receiver having kept what arrived out of order.
    this.recover = this.sndMax;
    this.retransmitHead();
    this.armTimer();
  }

  /** Retransmits the segment at sndUna (data, data + FIN, or the FIN alone). */
  private retransmitHead(): void {
    const end = this.dataEnd;
    if (this.sndUna < end) {
      const n = Math.min(this.mss, end - this.sndUna, this.sndMax - this.sndUna);
      const fin = this.finSent && this.sndUna + n === end;
      const flags = TCP_ACK | (fin ? TCP_FIN : 0);
      this.stack.sendSegment(
        this,
        flags,
        this.sndUna,
        this.tx,
        this.txHead + (this.sndUna - this.txBase),
        n,
        false,
      );
    } else if (this.finSent && this.sndUna === end) {
      this.stack.sendSegment(this, TCP_FIN | TCP_ACK, this.sndUna, null, 0, 0, false);
    } else return;
    this.retransmits++;
  }

  /** A fragmentation-needed for this connection: resend at once at the new size (tcp_simple_retransmit). */
  pmtuLowered(): void {
    if (this.sndUna >= this.sndMax || this.state === "SYN_SENT" || this.state === "SYN_RECEIVED") return;
    this.sndNxt = this.sndUna;
    this.pump();
  }

  // ---- input ----

  /** Active open: send the SYN. */
  open(): void {
    this.state = "SYN_SENT";
    this.sndNxt = 1;
    this.sndMax = 1;
    this.stack.sendSegment(this, TCP_SYN, 0, null, 0, 0, true);
    this.armTimer();
  }

  /** Passive open from a listener's SYN. */
  accept(seq: number, mss: number, wnd: number): void {
    this.state = "SYN_RECEIVED";
    this.irs = seq;
    this.rcvNxt = (seq + 1) >>> 0;
    this.peerMss = mss > 0 ? mss : DEFAULT_MSS;
    this.peerWnd = wnd;
    this.sndNxt = 1;
    this.sndMax = 1;
    this.stack.sendSegment(this, TCP_SYN | TCP_ACK, 0, null, 0, 0, true);
    this.armTimer();
  }

  segment(f: Flow, buf: Uint8Array): void {
    const fl = f.tcpFlags;
    const seq = f.tcpSeq;
    const ackOff = ((f.tcpAck - this.iss) | 0) >>> 0;
    if (this.state === "SYN_SENT") {
      if ((fl & TCP_ACK) !== 0 && ackOff !== 1) {
        if ((fl & TCP_RST) === 0) this.stack.sendRstFor(f);
        return;
      }
      if ((fl & TCP_RST) !== 0) {
        if ((fl & TCP_ACK) !== 0) this.close(simError("ECONNREFUSED", `tcp ${this.toString()}`));
        return;
      }
      if ((fl & TCP_SYN) === 0 || (fl & TCP_ACK) === 0) return;
      this.irs = seq;
      this.rcvNxt = (seq + 1) >>> 0;
      const mss = tcpGetMss(buf, f.l4Off);
      this.peerMss = mss > 0 ? mss : DEFAULT_MSS;
      this.peerWnd = readU16(buf, f.l4Off + 14);
      this.sndUna = 1;
      this.retries = 0;
      this.rto = this.stack.rtoMs;
      this.stopTimer();
      this.state = "ESTABLISHED";
      this.stack.sendSegment(this, TCP_ACK, this.sndNxt, null, 0, 0, false);
      this.onConnect?.();
      this.pump();
      return;
    }

    const inWindow = ((seq - this.rcvNxt) | 0) >= 0 && ((seq - this.rcvNxt) | 0) < RCV_WND;
    if ((fl & TCP_RST) !== 0) {
      // RFC 5961 would want an exact match; in-window is what RFC 793 asked and is enough here.
      if (!inWindow && seq !== this.rcvNxt) return;
      if (this.state === "TIME_WAIT" || this.state === "SYN_RECEIVED") this.close(null);
      else this.close(simError("ECONNRESET", `tcp ${this.toString()}`));
      return;
    }
    if ((fl & TCP_SYN) !== 0) {
      if (this.state === "SYN_RECEIVED" && seq === this.irs) {
        this.stack.sendSegment(this, TCP_SYN | TCP_ACK, 0, null, 0, 0, true);
        return;
      }
      // A SYN inside a synchronized connection: challenge ACK, drop (RFC 5961 4.2).
      this.stack.sendSegment(this, TCP_ACK, this.sndNxt, null, 0, 0, false);
      return;
    }
    if ((fl & TCP_ACK) === 0) return;

    // Acknowledgement.
    const delta = (f.tcpAck - ((this.iss + this.sndUna) >>> 0)) | 0;
    const plen = f.l3End - f.payloadOff;
    if (delta === 0 && plen === 0 && (fl & TCP_FIN) === 0 && this.sndUna < this.sndMax) {
      // Duplicate ACK: three of them start a fast retransmit (RFC 5681 3.2), once per window.
      if (++this.dupAcks === 3 && this.sndUna >= this.recover) {
        this.recover = this.sndMax;
        this.retransmitHead();
      }
    }
    if (delta > 0) {
      if (this.sndUna + delta > this.sndMax) {
        this.stack.sendSegment(this, TCP_ACK, this.sndNxt, null, 0, 0, false);
        return;
      }
      this.sndUna += delta;
      this.dupAcks = 0;
      if (this.sndNxt < this.sndUna) this.sndNxt = this.sndUna;
      this.retries = 0;
      this.rto = this.stack.rtoMs;
      this.stopTimer();
      const dropData = Math.min(this.sndUna, this.dataEnd) - this.txBase;
      if (dropData > 0) {
        this.txHead += dropData;
        this.txLen -= dropData;
        this.txBase += dropData;
        if (this.txLen === 0) this.txHead = 0;
      }
      if (this.sndUna < this.sndMax) this.armTimer();
      // A partial ACK during recovery points at the next hole.
      if (this.sndUna < this.recover && this.sndNxt >= this.sndMax) this.retransmitHead();
    }
    this.peerWnd = readU16(buf, f.l4Off + 14);
    const finAcked = this.finSent && this.sndUna === this.dataEnd + 1;
    switch (this.state) {
      case "SYN_RECEIVED":
        if (this.sndUna >= 1) {
          this.state = "ESTABLISHED";
          this.stack.established(this);
        } else return;
        break;
      case "FIN_WAIT_1":
        if (finAcked) this.state = "FIN_WAIT_2";
        break;
      case "CLOSING":
        if (finAcked) this.enterTimeWait();
        return;
      case "LAST_ACK":
        if (finAcked) this.close(null);
        return;
      default:
    }

    // The whole segment is processed (state, rcvNxt, ACK) before the application hears of it,
    // as the kernel queues data and FIN before waking the reader: an app that closes on a
    // complete response then closes from CLOSE_WAIT, not simultaneously.
    let needAck = false;
    const chunks: Uint8Array[] = [];
    let ended = false;
    let dataEndSeq = (seq + plen) >>> 0;
    if (plen > 0) {
      needAck = true;
      if (this.state === "ESTABLISHED" || this.state === "FIN_WAIT_1" || this.state === "FIN_WAIT_2") {
        const skip = (this.rcvNxt - seq) | 0;
        if (skip >= 0 && skip < plen) {
          chunks.push(buf.slice(f.payloadOff + skip, f.l3End));
          this.rcvNxt = (this.rcvNxt + plen - skip) >>> 0;
          this.drainOutOfOrder(chunks);
        } else if (skip < 0) {
          // Ahead of a hole: kept until the hole fills (the ACK below is a duplicate).
          if (-skip < RCV_WND && !this.ooo.has(seq)) this.ooo.set(seq, buf.slice(f.payloadOff, f.l3End));
          dataEndSeq = -1;
        }
        for (const c of chunks) this.bytesIn += c.length;
      }
    }
    if ((fl & TCP_FIN) !== 0 && dataEndSeq === this.rcvNxt && !this.finReceived) {
      this.finReceived = true;
      ended = true;
      this.rcvNxt = (this.rcvNxt + 1) >>> 0;
      needAck = true;
      if (this.state === "ESTABLISHED") this.state = "CLOSE_WAIT";
      else if (this.state === "FIN_WAIT_1") this.state = finAcked ? "TIME_WAIT" : "CLOSING";
      else if (this.state === "FIN_WAIT_2") this.state = "TIME_WAIT";
    } else if ((fl & TCP_FIN) !== 0 && this.finReceived) {
      // A retransmitted FIN: our ACK was lost. In TIME_WAIT this also restarts the timer.
      needAck = true;
    }
    const tw = this.state === "TIME_WAIT";
    const sent = tw ? 0 : this.pump();
    if (needAck && sent === 0) this.stack.sendSegment(this, TCP_ACK, this.sndNxt, null, 0, 0, false);
    if (tw) this.enterTimeWait();
    for (const c of chunks) this.onData?.(c);
    if (ended) this.onEnd?.();
  }

  /** Appends queued out-of-order segments that now continue the stream. */
  private drainOutOfOrder(chunks: Uint8Array[]): void {
    let progress = this.ooo.size > 0;
    while (progress) {
      progress = false;
      for (const [sq, d] of this.ooo) {
        const skip = (this.rcvNxt - sq) | 0;
        if (skip < 0) continue;
        this.ooo.delete(sq);
        if (skip < d.length) {
          chunks.push(d.subarray(skip));
          this.rcvNxt = (this.rcvNxt + d.length - skip) >>> 0;
          progress = true;
        }
      }
    }
  }

  private enterTimeWait(): void {
    this.state = "TIME_WAIT";
    this.stopTimer();
    this.notifyClosed(false);
    this.timer = this.stack.host.clock.after(this.stack.timeWaitMs, () => {
      this.timer = null;
      this.state = "CLOSED";
      this.stack.remove(this);
    });
  }

  /** Leaves the connection: error (if any) reported, then onClose. */
  close(err: SimError | null): void {
    if (this.state === "CLOSED") return;
    this.stopTimer();
    this.state = "CLOSED";
    this.stack.remove(this);
    if (err !== null) this.onError?.(err);
    this.notifyClosed(err !== null);
  }

  private notifyClosed(hadError: boolean): void {
    if (this.closedNotified) return;
    this.closedNotified = true;
    this.onClose?.(hadError);
  }
}

export class TcpListener {
  closed = false;
  constructor(
    private readonly stack: TcpStack,
    readonly port: number,
    readonly addr: number,
    public onConnection: (s: TcpSocket) => void,
  ) {}
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stack.unlisten(this);
  }
}

function tupleKey(la: number, lp: number, ra: number, rp: number): string {
  return `${la}:${lp}:${ra}:${rp}`;
}

export class TcpStack {
  readonly timeWaitMs: number;
  readonly rtoMs: number;
  readonly maxRetries: number;
  readonly counters = { activeOpens: 0, passiveOpens: 0, rstSent: 0, segmentsOut: 0, segmentsIn: 0 };
  private socks = new Map<string, TcpSocket>();
  private listeners = new Map<number, TcpListener[]>();
  private portUse = new Map<number, number>();
  private nextEphemeral: number;
  private issCounter = 0;

  constructor(
    readonly host: Host,
    o: TcpStackOptions = {},
  ) {
    this.timeWaitMs = o.timeWaitMs ?? 1000;
    this.rtoMs = o.rtoMs ?? 200;
    this.maxRetries = o.maxRetries ?? 6;
    this.nextEphemeral = EPHEMERAL_LOW + (host.seed % (EPHEMERAL_HIGH - EPHEMERAL_LOW + 1));
  }

  /** Sockets (TIME_WAIT included), in creation order. */
  sockets(): TcpSocket[] {
    return [...this.socks.values()];
  }

  listen(port: number, onConnection: (s: TcpSocket) => void, addr: IpLike = 0): TcpListener {
    const a = ip(addr);
    const list = this.listeners.get(port) ?? [];
    if (list.some((l) => l.addr === a || l.addr === 0 || a === 0))
      throw simError("EADDRINUSE", `tcp port ${port}`);
    const l = new TcpListener(this, port, a, onConnection);
    list.push(l);
    this.listeners.set(port, list);
    return l;
  }

  unlisten(l: TcpListener): void {
    const list = this.listeners.get(l.port);
    if (list === undefined) return;
    const k = list.indexOf(l);
    if (k >= 0) list.splice(k, 1);
    if (list.length === 0) this.listeners.delete(l.port);
  }

  /** Active open. Errors (no route, refused, timeout) arrive through onError, never thrown. */
  connect(dst: IpLike, dport: number, o: { srcPort?: number; srcAddr?: IpLike } = {}): TcpSocket {
    const d = ip(dst);
    const src = o.srcAddr !== undefined ? ip(o.srcAddr) : this.host.sourceFor(d);
    const sport = o.srcPort ?? this.ephemeral(src, d, dport);
    const s = new TcpSocket(this, src, sport, d, dport);
    if (src === 0 || this.socks.has(s.key)) {
      const code = src === 0 ? "ENETUNREACH" : "EADDRINUSE";
      this.host.clock.after(0, () => s.close(simError(code, `tcp connect ${formatIPv4(d)}:${dport}`)));
      return s;
    }
    s.iss = this.nextIss();
    this.add(s);
    this.counters.activeOpens++;
    s.open();
    return s;
  }

  private nextIss(): number {
    // Deterministic per host: a seeded Weyl sequence stands in for secure_tcp_seq.
    this.issCounter++;
    return (
      (Math.imul(this.host.seed ^ 0x5bd1e995, 2654435761) + Math.imul(this.issCounter, 0x9e3779b9)) >>> 0
    );
  }

  /** Sequential from the host's seeded start, skipping ports in use (inet_hash_connect, simplified). */
  private ephemeral(src: number, dst: number, dport: number): number {
    const span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1;
    for (let i = 0; i < span; i++) {
      const p = this.nextEphemeral;
      this.nextEphemeral = p === EPHEMERAL_HIGH ? EPHEMERAL_LOW : p + 1;
      if (!this.portUse.has(p) && !this.listeners.has(p) && !this.socks.has(tupleKey(src, p, dst, dport)))
        return p;
    }
    return 0;
  }

  private add(s: TcpSocket): void {
    this.socks.set(s.key, s);
    this.portUse.set(s.localPort, (this.portUse.get(s.localPort) ?? 0) + 1);
  }

  remove(s: TcpSocket): void {
    if (this.socks.get(s.key) !== s) return;
    this.socks.delete(s.key);
    const n = (this.portUse.get(s.localPort) ?? 1) - 1;
    if (n <= 0) this.portUse.delete(s.localPort);
    else this.portUse.set(s.localPort, n);
  }

  established(s: TcpSocket): void {
    const l = s.listener;
    if (l !== null && !l.closed) l.onConnection(s);
  }

  input(f: Flow, buf: Uint8Array): void {
    this.counters.segmentsIn++;
    const s = this.socks.get(tupleKey(f.daddr, f.dport, f.saddr, f.sport));
    const fl = f.tcpFlags;
    if (s !== undefined) {
      // A new SYN on a TIME_WAIT pair with a higher sequence reopens it (tcp_timewait_state_process).
      if (
        s.state === "TIME_WAIT" &&
        (fl & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN &&
        ((f.tcpSeq - s.rcvNxt) | 0) > 0
      ) {
        s.close(null);
      } else {
        s.segment(f, buf);
        return;
      }
    }
    const list = this.listeners.get(f.dport);
    const l = list?.find((x) => x.addr === f.daddr) ?? list?.find((x) => x.addr === 0);
    if (l === undefined || (fl & (TCP_SYN | TCP_ACK | TCP_RST)) !== TCP_SYN) {
      if ((fl & TCP_RST) === 0) this.sendRstFor(f);
      return;
    }
    const ns = new TcpSocket(this, f.daddr, f.dport, f.saddr, f.sport);
    ns.listener = l;
    ns.iss = this.nextIss();
    this.add(ns);
    this.counters.passiveOpens++;
    ns.accept(f.tcpSeq, tcpGetMss(buf, f.l4Off), readU16(buf, f.l4Off + 14));
  }

  /** RFC 9293 reset generation for a segment that belongs to no connection. */
  sendRstFor(f: Flow): void {
    const fl = f.tcpFlags;
    let seq = 0;
    let ack = 0;
    let flags = TCP_RST;
    if ((fl & TCP_ACK) !== 0) seq = f.tcpAck;
    else {
      const plen = f.l3End - f.payloadOff;
      ack = (f.tcpSeq + plen + ((fl & TCP_SYN) !== 0 ? 1 : 0) + ((fl & TCP_FIN) !== 0 ? 1 : 0)) >>> 0;
      flags |= TCP_ACK;
    }
    this.counters.rstSent++;
    this.host.sendIp(
      IPPROTO_TCP,
      f.daddr,
      f.saddr,
      TCP_HLEN,
      (b, off) => {
        writeU16(b, off, f.dport);
        writeU16(b, off + 2, f.sport);
        writeU32(b, off + 4, seq);
        writeU32(b, off + 8, ack);
        b[off + 12] = (TCP_HLEN / 4) << 4;
        b[off + 13] = flags;
      },
      { df: true },
    );
  }

  /** Builds and sends one segment of s; seqOff is relative to the ISN. */
  sendSegment(
    s: TcpSocket,
    flags: number,
    seqOff: number,
    data: Uint8Array | null,
    off: number,
    len: number,
    withMss: boolean,
  ): void {
    const hlen = TCP_HLEN + (withMss ? 4 : 0);
    const seq = (s.iss + seqOff) >>> 0;
    const ack = (flags & TCP_ACK) !== 0 ? s.rcvNxt : 0;
    const ourMss = Math.min(65495, this.host.pathMtu(s.remoteAddr) - 40);
    this.counters.segmentsOut++;
    s.segmentsOut++;
    if (len > 0) s.bytesOut += len;
    this.host.sendIp(
      IPPROTO_TCP,
      s.localAddr,
      s.remoteAddr,
      hlen + len,
      (b, o) => {
        writeU16(b, o, s.localPort);
        writeU16(b, o + 2, s.remotePort);
        writeU32(b, o + 4, seq);
        writeU32(b, o + 8, ack);
        b[o + 12] = (hlen / 4) << 4;
        b[o + 13] = flags;
        writeU16(b, o + 14, RCV_WND);
        if (withMss) {
          b[o + 20] = TCPOPT_MSS;
          b[o + 21] = 4;
          writeU16(b, o + 22, ourMss);
        }
        if (data !== null && len > 0) b.set(data.subarray(off, off + len), o + hlen);
      },
      { df: true },
    );
  }

  icmpError(ev: IcmpEvent): void {
    const s = this.socks.get(tupleKey(ev.innerSaddr, ev.innerSport, ev.innerDaddr, ev.innerDport));
    if (s === undefined) return;
    if (ev.type === ICMP_DEST_UNREACH && ev.code === ICMP_FRAG_NEEDED) {
      s.pmtuLowered();
      return;
    }
    // tcp_v4_err: hard errors abort a connection still opening; established ones only note them.
    if (ev.type === ICMP_DEST_UNREACH && (s.state === "SYN_SENT" || s.state === "SYN_RECEIVED")) {
      const code = ev.code === ICMP_PORT_UNREACH ? "ECONNREFUSED" : "EHOSTUNREACH";
      s.close(simError(code, `tcp ${s.toString()} (icmp ${ev.type}/${ev.code} from ${formatIPv4(ev.from)})`));
    }
  }
}
