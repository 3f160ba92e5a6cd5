// Output: the tail every forwarded or answered frame leaves through. Mirrors the parts of
// net/netfilter/ipvs/ip_vs_xmit.c that are not a method's own transform: __ip_vs_get_out_rt (the
// route to a destination, cached per destination as the kernel caches it in dest->dest_dst),
// ensure_mtu_is_adequate, and ip_vs_send_or_cont / the neighbour output (Ethernet header,
// neighbour resolution, the frame handed to the link). The forwarding methods (xmit/*.ts) see
// this class as their XmitEngine.
//
// Per packet: a method resolves its destination's path once (destPath), checks the MTU against it
// (fitsPath) and emits through it (emitToDest); replies and local answers are routed by address
// (emitIp). Both end in one tail (emitNeigh): the neighbour handle's MAC, else the ARP queue.
//
// A GSO aggregate that leaves whole gets a virtio_net_hdr (aggregateHeader); one a method cannot
// send whole is cut here in software (segmented) and each segment goes through the method.

import { readU32 } from "./addr.js";
import type { ConnTable } from "./conn/table.js";
import { type EngineCounters, R } from "./counters.js";
import type { IpvsCtl } from "./ctl.js";
import type { Dest } from "./dest.js";
import type { Engine, EngineOptions } from "./engine.js";
import type { Neigh, NeighCache } from "./neigh.js";
import { ETH_HLEN, writeEthHeader } from "./packet/eth.js";
import { ETH_P_IP, ETH_P_IPV6, type Flow, IPPROTO_TCP } from "./packet/flow.js";
import {
  gsoBuildSegment,
  gsoBuildSegment6,
  gsoSegmentCount,
  writePseudoHeaderSum,
  writePseudoHeaderSum6,
} from "./packet/gso.js";
import { ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED } from "./packet/icmp.js";
import { IPV6_MIN_MTU } from "./packet/ipv6.js";
import { VNET_F_NEEDS_CSUM, VNET_HDR_LEN, writeVnetHdr } from "./packet/vnet.js";
import { type Iface, Route6Result, RouteResult, type RouteTable, sameWords6 } from "./route.js";
import { Verdict, type XmitEngine, type XmitFn } from "./xmit/types.js";

/** The cached way to a destination: route, and the neighbour entry once one exists. */
export class DestPath {
  neigh: Neigh | null = null;
  /**
   * An IPv6 destination's next hop and the director's address toward it (TUN's outer source), as
   * words; null for an IPv4 one (whose are nexthop and src).
   */
  nexthop6: Int32Array | null = null;
  src6: Int32Array | null = null;
  /**
   * TUN: the ID of the last outer IPv4 header without DF sent toward the destination (a counter per
   * destination, as ip_select_ident's per address pair for a datagram that may be fragmented).
   */
  ipId = 0;
  /** int32 bits (see engine.ts: addresses cross calls as int32). */
  readonly nexthop: number;
  constructor(
    readonly iface: Iface,
    nexthop: number,
    /** The director's address on the way to the destination (TUN's outer source). */
    readonly src: number,
    /** The destination itself (TUN reads its tunnel type and flags from it, once per packet). */
    readonly dest: Dest,
  ) {
    this.nexthop = nexthop | 0;
  }
}

export class Output implements XmitEngine {
  readonly conns: ConnTable;
  readonly scratch: Uint8Array;
  private readonly counters: EngineCounters;
  private readonly routes: RouteTable;
  private readonly neigh: NeighCache;
  private readonly ctl: IpvsCtl;
  private readonly sendFrame: EngineOptions["send"];
  /** The frame being processed: what leaves from its buffer may be an aggregate (vnetFor). */
  private readonly flow: Flow;
  private readonly rt = new RouteResult();
  /** Per destination id: cached route and neighbour (cleared on every control or host change). */
  private destRoute: Array<DestPath | undefined> = [];
  /** emitIp's last next hop (interface, int32 address) and its neighbour entry, or null. */
  private hopNeigh: Neigh | null = null;
  private hopIface: Iface | null = null;
  private hopAddr = 0;
  private readonly rt6 = new Route6Result();
  /** emitIp6's last next hop and its neighbour entry, as for IPv4. */
  private hop6Neigh: Neigh | null = null;
  private hop6Iface: Iface | null = null;
  private readonly hop6Addr = new Int32Array(4);
  /** The MAC of a multicast group (33:33 + its last 32 bits, RFC 2464 §7). */
  private readonly groupMac = new Uint8Array([0x33, 0x33, 0, 0, 0, 0]);
  /** Where an aggregate's segments are built, one at a time (the methods may then use scratch). */
  private readonly segBuf = new Uint8Array(65536 + 256);
  /** The virtio_net_hdr handed to `send` with an aggregate. */
  private readonly txVnet = new Uint8Array(VNET_HDR_LEN);
  private readonly zeroMac = new Uint8Array(6);

  constructor(
    /** For the cold paths only: ARP requests and ICMP errors are local replies (local.ts). */
    private readonly e: Engine,
    flow: Flow,
    send: EngineOptions["send"],
  ) {
    this.conns = e.conns;
    this.scratch = e.scratch;
    this.counters = e.counters;
    this.routes = e.routes;
    this.neigh = e.neigh;
    this.ctl = e.ctl;
    this.flow = flow;
    this.sendFrame = send;
  }

  /** The destinations changed: their paths are looked up again. */
  forgetDests(): void {
    this.destRoute.length = 0;
  }

  /** The host's interfaces or routes changed: every cached path and emitIp's last hop go. */
  forget(): void {
    this.destRoute.length = 0;
    this.hopNeigh = null;
    this.hopIface = null;
    this.hopAddr = 0;
    this.hop6Neigh = null;
    this.hop6Iface = null;
  }

  drop(reason: number): number {
    this.counters.drops[reason]++;
    return Verdict.Drop;
  }

  // ---------------------------------------------------------------- the link

  transmit(ifindex: number, buf: Uint8Array, off: number, len: number): void {
    this.counters.txFrames++;
    this.sendFrame(ifindex, buf, off, len, this.vnetFor(buf, off));
  }

  /** A frame that waited for its neighbour: it carries its own virtio_net_hdr (or none). */
  sendQueued(ifindex: number, frame: Uint8Array, len: number, vnet: Uint8Array | null): void {
    this.counters.txFrames++;
    this.sendFrame(ifindex, frame, 0, len, vnet);
  }

  /** The virtio_net_hdr a frame at buf[off] leaves with: an aggregate sent whole needs one, others none. */
  private vnetFor(buf: Uint8Array, off: number): Uint8Array | null {
    const f = this.flow;
    return f.gsoType !== 0 && buf === f.buf && f.csumPartial ? this.aggregateHeader(f, off) : null;
  }

  /**
   * The aggregate in f leaves as one frame starting at f.buf[off]: its checksum field gets the
   * pseudo-header sum of the addresses it now carries (whatever the rewriters' incremental
   * updates left there is moot: ports are not in the pseudo-header, and the kernel sums the
   * transport header itself), and the virtio_net_hdr asks for segmentation and checksums.
   */
  private aggregateHeader(f: Flow, off: number): Uint8Array {
    const field = f.proto === IPPROTO_TCP ? 16 : 6;
    if (f.af === 6) writePseudoHeaderSum6(f.buf, f.l3Off, f.l4Off, f.l3End, f.proto, field);
    else writePseudoHeaderSum(f.buf, f.l3Off, f.l4Off, f.l3End, field);
    writeVnetHdr(
      this.txVnet,
      0,
      VNET_F_NEEDS_CSUM,
      f.gsoType,
      f.payloadOff - off,
      f.gsoSize,
      f.l4Off - off,
      field,
    );
    this.counters.gsoOut++;
    return this.txVnet;
  }

  // ---------------------------------------------------------------- emit

  emitIp(buf: Uint8Array, l3Off: number, l3Len: number, daddr: number, now: number): number {
    const rt = this.rt;
    daddr |= 0;
    if (!this.routes.lookup(daddr, rt) || rt.iface === null) return this.drop(R.no_route);
    const iface = rt.iface;
    const nexthop = rt.nexthop | 0;
    // Replies to many clients mostly leave through one gateway: the neighbour entry of the
    // last next hop is kept as a handle (as DestPath does per destination), which spares the
    // two map lookups of neigh.lookup. A removed entry is dead and is looked up again.
    let n = this.hopNeigh;
    if (n === null || n.dead || this.hopIface !== iface || this.hopAddr !== nexthop) {
      n = this.neigh.entry(iface.ifindex, nexthop);
      this.hopNeigh = n;
      this.hopIface = iface;
      this.hopAddr = nexthop;
    }
    return this.emitNeigh(iface, nexthop, n, buf, l3Off, l3Len, now);
  }

  emitToDest(buf: Uint8Array, l3Off: number, l3Len: number, p: DestPath, now: number): number {
    let n = p.neigh;
    if (n === null || n.dead) {
      n = this.neigh.entry(p.iface.ifindex, p.nexthop);
      p.neigh = n;
    }
    return this.emitNeigh(p.iface, p.nexthop, n, buf, l3Off, l3Len, now);
  }

  /** The one tail of emitIp and emitToDest: the neighbour's MAC when usable, else the ARP queue. */
  private emitNeigh(
    iface: Iface,
    nexthop: number,
    n: Neigh | null,
    buf: Uint8Array,
    l3Off: number,
    l3Len: number,
    now: number,
  ): number {
    const mac = n === null ? null : this.neigh.use(n, now);
    if (mac === null) return this.emitVia(iface, nexthop, buf, l3Off, l3Len, now);
    const off = l3Off - ETH_HLEN;
    writeEthHeader(buf, off, mac, iface.mac, ETH_P_IP);
    this.transmit(iface.ifindex, buf, off, ETH_HLEN + l3Len);
    return Verdict.Sent;
  }

  /** Through a next hop without a usable handle: its MAC if resolved now, else queue and ask ARP. */
  private emitVia(
    iface: Iface,
    nexthop: number,
    buf: Uint8Array,
    l3Off: number,
    l3Len: number,
    now: number,
  ): number {
    const off = l3Off - ETH_HLEN;
    const mac = this.neigh.lookup(iface.ifindex, nexthop, now);
    if (mac === null) {
      writeEthHeader(buf, off, this.zeroMac, iface.mac, ETH_P_IP);
      // An aggregate waits with its virtio_net_hdr (made now, while the flow still describes it).
      const act = this.neigh.enqueue(
        iface.ifindex,
        nexthop,
        buf.subarray(off, l3Off + l3Len),
        ETH_HLEN + l3Len,
        now,
        this.vnetFor(buf, off),
      );
      if (act.sendRequest) this.e.local.sendArpRequest(iface.ifindex, nexthop);
      return act.queued ? Verdict.Sent : this.drop(R.neigh_failed);
    }
    writeEthHeader(buf, off, mac, iface.mac, ETH_P_IP);
    this.transmit(iface.ifindex, buf, off, ETH_HLEN + l3Len);
    return Verdict.Sent;
  }

  // ---------------------------------------------------------------- IPv6

  /**
   * emitIp for IPv6: buf[l3Off, +l3Len) to the destination at dst[dOff..+4], routed by lookup6.
   * `oif` is the interface a link-scoped destination (fe80::/10, a link-local group) is on (the
   * interface the conversation came in on), 0 when none. A multicast destination goes to its
   * group's MAC; a unicast one through its neighbour, resolved by NDP when it is not yet.
   */
  emitIp6(
    buf: Uint8Array,
    l3Off: number,
    l3Len: number,
    dst: Int32Array,
    dOff: number,
    oif: number,
    now: number,
  ): number {
    const rt = this.rt6;
    if (!this.routes.lookup6(dst, dOff, oif, rt) || rt.iface === null) return this.drop(R.no_route);
    const iface = rt.iface;
    const nh = rt.nexthop;
    if (nh[0] >>> 24 === 0xff) {
      const g = this.groupMac;
      const w = nh[3];
      g[2] = w >>> 24;
      g[3] = (w >>> 16) & 255;
      g[4] = (w >>> 8) & 255;
      g[5] = w & 255;
      const off = l3Off - ETH_HLEN;
      writeEthHeader(buf, off, g, iface.mac, ETH_P_IPV6);
      this.transmit(iface.ifindex, buf, off, ETH_HLEN + l3Len);
      return Verdict.Sent;
    }
    let n = this.hop6Neigh;
    if (n === null || n.dead || this.hop6Iface !== iface || !sameWords6(this.hop6Addr, 0, nh, 0)) {
      n = this.neigh.entry6(iface.ifindex, nh, 0);
      this.hop6Neigh = n;
      this.hop6Iface = iface;
      this.hop6Addr.set(nh);
    }
    return this.emitNeigh6(iface, nh, 0, n, buf, l3Off, l3Len, now);
  }

  /**
   * The IPv6 tail (emitNeigh's twin): to the on-link next hop at nh[nhOff..+4] through its
   * neighbour handle n (null: none yet; a dead one is looked up again), else queued while an NS
   * resolves it.
   */
  emitNeigh6(
    iface: Iface,
    nh: Int32Array,
    nhOff: number,
    n: Neigh | null,
    buf: Uint8Array,
    l3Off: number,
    l3Len: number,
    now: number,
  ): number {
    const off = l3Off - ETH_HLEN;
    if (n?.dead) n = this.neigh.entry6(iface.ifindex, nh, nhOff);
    const mac = n === null ? null : this.neigh.use(n, now);
    if (mac !== null) {
      writeEthHeader(buf, off, mac, iface.mac, ETH_P_IPV6);
      this.transmit(iface.ifindex, buf, off, ETH_HLEN + l3Len);
      return Verdict.Sent;
    }
    writeEthHeader(buf, off, this.zeroMac, iface.mac, ETH_P_IPV6);
    const act = this.neigh.enqueue6(
      iface.ifindex,
      nh,
      nhOff,
      buf.subarray(off, l3Off + l3Len),
      ETH_HLEN + l3Len,
      now,
      this.vnetFor(buf, off),
    );
    if (act.sendRequest) this.e.local.sendNs(iface.ifindex, nh, nhOff, null, buf, l3Off);
    return act.queued ? Verdict.Sent : this.drop(R.neigh_failed);
  }

  // ---------------------------------------------------------------- destinations

  destPath(destId: number): DestPath | null {
    const r = this.destRoute[destId];
    if (r !== undefined) return r;
    const p = this.resolveDest(destId);
    if (p === null) this.counters.drops[R.no_route]++;
    return p;
  }

  /** __ip_vs_get_out_rt (_v6) without a cached dest_dst: the route, kept until the next change. */
  private resolveDest(destId: number): DestPath | null {
    const d = this.ctl.destById(destId);
    if (d === undefined) return null;
    let p: DestPath;
    if (d.addr6 !== null) {
      const rt = this.rt6;
      if (!this.routes.lookup6(d.addr6, 0, 0, rt) || rt.iface === null) return null;
      p = new DestPath(rt.iface, 0, 0, d);
      p.nexthop6 = rt.nexthop.slice();
      p.src6 = rt.src.slice();
    } else {
      const rt = this.rt;
      if (!this.routes.lookup(d.addr | 0, rt) || rt.iface === null) return null;
      p = new DestPath(rt.iface, rt.nexthop, rt.src, d);
    }
    this.destRoute[destId] = p;
    return p;
  }

  emitToDest6(buf: Uint8Array, l3Off: number, l3Len: number, p: DestPath, now: number): number {
    const nh = p.nexthop6;
    if (nh === null) return this.drop(R.no_route);
    let n = p.neigh;
    if (n === null || n.dead) {
      n = this.neigh.entry6(p.iface.ifindex, nh, 0);
      p.neigh = n;
    }
    return this.emitNeigh6(p.iface, nh, 0, n, buf, l3Off, l3Len, now);
  }

  /**
   * ensure_mtu_is_adequate for IPv6, which is never fragmented on the way: a packet over the path's
   * MTU (less `overhead` for a tunnel) gets packet too big from errSrc (four words; null: the
   * route's source), unless it is an ICMPv6 error or a non-first fragment (local.ts refuses those).
   * A tunnel leaving less than minMtu is refused outright, as __ip_vs_get_out_rt_v6 does (by
   * default IPV6_MIN_MTU when there is an overhead; TUN passes the outer family's minimum).
   */
  fitsPath6(
    p: DestPath,
    l3Len: number,
    overhead: number,
    f: Flow,
    errSrc: Int32Array | null,
    now: number,
    minMtu = overhead !== 0 ? IPV6_MIN_MTU : 0,
  ): boolean {
    const mtu = p.iface.mtu - overhead;
    if (mtu < minMtu) {
      this.counters.drops[R.too_big]++;
      return false;
    }
    if (f.gsoType !== 0 && f.gsoSize !== 0 && l3Len === f.l3End - f.l3Off) {
      const seg = f.payloadOff - f.l3Off + f.gsoSize;
      if (seg < l3Len) l3Len = seg;
    }
    if (l3Len <= mtu) return true;
    this.e.local.tooBig6(f, mtu, errSrc, now);
    return false;
  }

  fitsPath(
    p: DestPath,
    l3Len: number,
    overhead: number,
    f: Flow,
    errSrc: number,
    now: number,
    minMtu = 0,
  ): boolean {
    const mtu = p.iface.mtu - overhead;
    // A tunnel whose MTU falls below the outer family's minimum carries nothing (__ip_vs_get_out_rt).
    if (mtu < minMtu) {
      this.counters.drops[R.too_big]++;
      return false;
    }
    // An aggregate leaves as segments of gso_size payload: those must fit, not the whole.
    if (f.gsoType !== 0 && f.gsoSize !== 0 && l3Len === f.l3End - f.l3Off) {
      const seg = f.payloadOff - f.l3Off + f.gsoSize;
      if (seg < l3Len) l3Len = seg;
    }
    if (l3Len <= mtu) return true;
    if (f.df) {
      this.counters.drops[R.frag_needed]++;
      this.e.local.icmpError(f, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu & 0xffff, errSrc, now);
    } else this.counters.drops[R.too_big]++;
    return false;
  }

  routeMtu6(dst: Int32Array, dOff: number): number {
    const rt = this.rt6;
    return this.routes.lookup6(dst, dOff, 0, rt) && rt.iface !== null ? rt.iface.mtu : 0;
  }

  fragNeeded(f: Flow, mtu: number, errSrc: number, now: number): number {
    this.counters.drops[R.frag_needed]++;
    this.e.local.icmpError(f, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu & 0xffff, errSrc, now);
    return Verdict.Drop;
  }

  destMtuOf(destId: number): number {
    // No drop is counted here: the packet's own destPath() does that.
    const r = this.destRoute[destId] ?? this.resolveDest(destId);
    return r === null ? 1500 : r.iface.mtu;
  }

  // ---------------------------------------------------------------- software GSO

  /**
   * Software GSO: cuts the aggregate in f into gso_size segments (packet/gso.ts), points f at each
   * in turn (in segBuf) and hands it to the method as a plain packet. Stops at the first segment
   * the method does not send (it counted why; the rest would fare the same).
   */
  segmented(fn: XmitFn, cx: number, f: Flow, now: number): number {
    const src = f.buf;
    const l3 = f.l3Off;
    const l4 = f.l4Off;
    const pay = f.payloadOff;
    const end = f.l3End;
    const mss = f.gsoSize;
    const ipId = f.ipId;
    const n = gsoSegmentCount(end - pay, mss);
    const out = this.segBuf;
    const o3 = ETH_HLEN;
    f.gsoType = 0;
    f.gsoSize = 0;
    f.csumPartial = false;
    const c = this.counters;
    c.gsoSegmented++;
    let v: number = Verdict.Drop;
    const v6 = f.af === 6;
    for (let k = 0; k < n; k++) {
      const len = v6
        ? gsoBuildSegment6(out, o3, src, l3, l4, pay, end, f.proto, mss, k)
        : gsoBuildSegment(out, o3, src, l3, l4, pay, end, mss, k);
      if (len === 0) return this.drop(R.unsupported);
      c.gsoSegments++;
      f.buf = out;
      f.len = o3 + len;
      f.l3Off = o3;
      f.l4Off = o3 + (l4 - l3);
      f.payloadOff = o3 + (pay - l3);
      f.l3End = o3 + len;
      f.ipId = (ipId + k) & 0xffff;
      if (f.proto === IPPROTO_TCP) {
        f.tcpSeq = readU32(out, f.l4Off + 4);
        f.tcpFlags = out[f.l4Off + 13];
      }
      v = fn(this, cx, f, now);
      if (v !== Verdict.Sent) break;
    }
    return v;
  }
}
