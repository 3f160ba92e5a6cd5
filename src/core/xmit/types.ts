import type { ConnTable } from "../conn/table.js";
import type { Flow } from "../packet/flow.js";

/** Verdicts of the data path for one frame. */
export const enum Verdict {
  /** Not tsvs's business: the kernel (or the next device) handles it. */
  Pass = 0,
  /** Transmitted (forwarded, answered) — possibly after neighbour resolution. */
  Sent = 1,
  /** Dropped and counted. */
  Drop = 2,
}

/** What a forwarding method needs from the engine. */
export interface XmitEngine {
  readonly conns: ConnTable;
  /** Scratch frame buffer for packets that must be rebuilt (encapsulation, TOA, ICMP). */
  readonly scratch: Uint8Array;
  /** Routes the IPv4 datagram at buf[l3Off, l3Off+l3Len) to daddr: Ethernet header written at l3Off-14. */
  emitIp(buf: Uint8Array, l3Off: number, l3Len: number, daddr: number, flow: Flow, now: number): number;
  /** Same, but the next hop and interface are those of destination `destId` (cached route). */
  emitToDest(buf: Uint8Array, l3Off: number, l3Len: number, destId: number, flow: Flow, now: number): number;
  /** ICMP error about `flow` (the packet in flow.buf) from src, e.g. time exceeded / frag needed. */
  icmpError(flow: Flow, type: number, code: number, info: number, src: number, now: number): number;
  /**
   * ensure_mtu_is_adequate: true when a datagram of l3Len (+ overhead for encapsulation) fits the
   * destination's link; otherwise answers the client with fragmentation-needed (DF set, source
   * `errSrc`) or counts a drop, and returns false. Call before rewriting, so the error quotes the
   * packet as the client sent it.
   */
  fitsDest(destId: number, l3Len: number, overhead: number, f: Flow, errSrc: number, now: number): boolean;
  /** MTU of the link toward destination `destId`. */
  destMtuOf(destId: number): number;
  /** Source address the director uses toward destination `destId` (the DIP of its link). */
  destSrc(destId: number): number;
  drop(reason: number): number;
}

/**
 * A forwarding method: one module per method (the kernel's ip_vs_*_xmit), bound to a
 * connection when it is created; the per-packet path indexes the method table by the
 * connection's forwarding bits and never branches on the method.
 */
export interface XmitMethod {
  readonly name: string;
  /** Client → real server. */
  inbound(e: XmitEngine, c: number, f: Flow, now: number): number;
  /**
   * For a GSO aggregate (f.gsoType set): must it be cut into segments before inbound() (true), or
   * can inbound() rewrite it once and send it whole (absent or false)?
   */
  segmentsInbound?(e: XmitEngine, c: number, f: Flow): boolean;
  /** Real server → client (NAT, FULLNAT); absent when replies never cross the director. */
  outbound?(e: XmitEngine, c: number, f: Flow, now: number): number;
  /** ICMP error from the client side about connection c (embedded header is a reply packet). */
  icmpInbound(e: XmitEngine, c: number, f: Flow, now: number): number;
  /** ICMP error from the real-server side about connection c (embedded header is a request). */
  icmpOutbound?(e: XmitEngine, c: number, f: Flow, now: number): number;
}
