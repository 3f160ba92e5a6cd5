import type { ConnTable } from "../conn/table.js";
import type { DestPath } from "../output.js";
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

/**
 * What a forwarding method needs from the engine (output.ts): per packet it takes its
 * destination's path once (destPath, the kernel's __ip_vs_get_out_rt), checks the MTU against it
 * (fitsPath) and emits through it (emitToDest); replies go by address (emitIp). Addresses are
 * passed as int32 bits (`| 0`, see engine.ts).
 */
export interface XmitEngine {
  readonly conns: ConnTable;
  /** Scratch frame buffer for packets that must be rebuilt (encapsulation, TOA, ICMP). */
  readonly scratch: Uint8Array;
  /** Routes the IPv4 datagram at buf[l3Off, l3Off+l3Len) to daddr: Ethernet header written at l3Off-14. */
  emitIp(buf: Uint8Array, l3Off: number, l3Len: number, daddr: number, now: number): number;
  /** The cached path to destination `destId`, or null when it has no route (counted as no_route). */
  destPath(destId: number): DestPath | null;
  /** Same as emitIp, through a destination's path (its interface and next hop). */
  emitToDest(buf: Uint8Array, l3Off: number, l3Len: number, p: DestPath, now: number): number;
  /**
   * ensure_mtu_is_adequate: true when a datagram of l3Len (+ overhead for encapsulation) fits the
   * path's link; otherwise answers the client with fragmentation-needed (DF set, source
   * `errSrc`) or counts a drop, and returns false. Call before rewriting, so the error quotes the
   * packet as the client sent it. A path whose MTU less the overhead is below minMtu (a tunnel's
   * outer family's minimum: 68 for IPv4, 1280 for IPv6; default 0) drops every packet (too_big).
   */
  fitsPath(
    p: DestPath,
    l3Len: number,
    overhead: number,
    f: Flow,
    errSrc: number,
    now: number,
    minMtu?: number,
  ): boolean;
  /**
   * emitIp for IPv6: to the address at dst[dOff..+4], through its neighbour (resolved by NDP);
   * `oif` is the interface of a link-scoped destination, 0 when none.
   */
  emitIp6(
    buf: Uint8Array,
    l3Off: number,
    l3Len: number,
    dst: Int32Array,
    dOff: number,
    oif: number,
    now: number,
  ): number;
  /** emitToDest through an IPv6 destination's path. */
  emitToDest6(buf: Uint8Array, l3Off: number, l3Len: number, p: DestPath, now: number): number;
  /**
   * fitsPath for IPv6: packet too big from errSrc (four words; null: the route's source) where IPv4
   * would fragment or answer fragmentation-needed. minMtu as for fitsPath (default: IPV6_MIN_MTU
   * when overhead is not 0, else 0).
   */
  fitsPath6(
    p: DestPath,
    l3Len: number,
    overhead: number,
    f: Flow,
    errSrc: Int32Array | null,
    now: number,
    minMtu?: number,
  ): boolean;
  /** MTU of the link toward destination `destId` (before the packet's own destPath). */
  destMtuOf(destId: number): number;
  /** NAT64: the MTU of the link the IPv6 route toward dst[dOff..+4] leaves by, 0 when there is no route. */
  routeMtu6(dst: Int32Array, dOff: number): number;
  /**
   * fitsPath's answer to an IPv4 datagram with DF that does not fit `mtu` (NAT64's reply toward an
   * IPv6 link): fragmentation needed from errSrc to its sender, counted frag_needed; Drop.
   */
  fragNeeded(f: Flow, mtu: number, errSrc: number, now: number): number;
  drop(reason: number): number;
}

/** A method's per-packet entry (inbound, outbound), as software GSO hands it each segment. */
export type XmitFn = (e: XmitEngine, c: number, f: Flow, now: number) => number;

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
