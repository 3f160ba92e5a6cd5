// The fuzzer's frame generator: frame `index` of run `seed` is a function of those two numbers and
// the target (the director's MACs and addresses, its services), nothing else — the same bytes on
// every run, in any order, so a finding is replayed from (seed, index) alone (rng.ts).
//
// Each frame is one of FUZZ_KINDS, covering what the director's codecs read (src/core/packet/*.ts,
// src/core/sync/codec.ts, src/core/vrrp/packet.ts, the virtio_net_hdr of packet/vnet.ts):
// Ethernet with VLAN stacks, ARP, IPv4 with options, IPv6 with extension-header chains (hop-by-hop,
// routing, fragment, destination options, AH, ESP), fragments of both, TCP with every option kind
// (MSS, window scale, SACK, timestamps, TOA, MD5, fast open, MPTCP) and malformed option lengths,
// UDP, ICMP and ICMPv6 errors quoting the director's flows or nonsense, NDP with bad options, IPIP /
// GRE / GUE encapsulations, VRRP v2 and v3 over IPv4 and IPv6, the IPVS sync protocol, and GSO
// aggregates with a virtio_net_hdr. Most frames are built valid and aimed where the director keeps
// state (its VIPs from a small pool of clients and ports, so that SYNs create connections the next
// frames hit; replies from the real servers; errors quoting those connections), then one of
// FUZZ_MUTATIONS is applied: a cut at a layer boundary or anywhere, a length field set to an edge
// value, a bad checksum, random header bytes, bit flips, garbage options, link padding. Header
// checksums are then mostly fixed up again so that the mutated field reaches the code behind the
// checksum test. A share of frames is pure random bytes.
//
// Pure (no node: imports); the header writers are the fuzzer's own (wire.ts). A frame is written
// into a caller's buffer; nothing is allocated per frame.

import { FuzzRng } from "./rng.js";
import {
  ETH_HLEN,
  ETH_P_8021AD,
  ETH_P_8021Q,
  ETH_P_ARP,
  ETH_P_IP,
  ETH_P_IPV6,
  finish,
  finishIpv4,
  finishIpv6,
  ipv4Checksum,
  l4CheckField,
  l4Checksum,
  multicastMac4,
  multicastMac6,
  NH_DEST,
  NH_FRAGMENT,
  NH_HOP,
  NH_ROUTING,
  PROTO_AH,
  PROTO_ESP,
  PROTO_GRE,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_IPIP,
  PROTO_IPV6,
  PROTO_NONE,
  PROTO_TCP,
  PROTO_UDP,
  PROTO_VRRP,
  put16,
  put32,
  putBytes,
  solicitedNode,
  sum16,
  writeEth,
  writeIpv4,
  writeIpv6,
} from "./wire.js";

/** One link of the director the sender is attached to: 0 the clients' side, 1 the real servers'. */
export interface FuzzLink {
  /** The director's MAC on this link, and the sender's. */
  dirMac: Uint8Array;
  srcMac: Uint8Array;
  /** The director's own addresses on it. */
  dip4: number;
  dip6: Uint8Array;
}

/** A VRRP instance of the director: adverts aimed at it take its VRID, version and password. */
export interface FuzzVrrp {
  vrid: number;
  version: 2 | 3;
  family: 4 | 6;
  /** v2 PASS authentication (up to 8 characters), or null. */
  pass: string | null;
}

export type FuzzMethod = "nat" | "dr" | "tun" | "fullnat" | "nat64";

/** A virtual service frames are aimed at (a fwmark service is listed by the address its rule matches). */
export interface FuzzService {
  af: 4 | 6;
  proto: 6 | 17;
  vip4: number;
  vip6: Uint8Array | null;
  port: number;
  /** The real servers' port. */
  rport: number;
  method: FuzzMethod;
}

export interface FuzzTarget {
  links: readonly [FuzzLink, FuzzLink];
  services: readonly FuzzService[];
  /** Real servers (on link 1). */
  rips4: readonly number[];
  rips6: readonly Uint8Array[];
  /** FULLNAT local addresses. */
  lips4: readonly number[];
  lips6: readonly Uint8Array[];
  /** Client addresses the frames come from (a small pool, so that they meet their connections). */
  clients4: readonly number[];
  clients6: readonly Uint8Array[];
  /** Client ports: clientPortBase + [0, clientPorts). */
  clientPortBase: number;
  clientPorts: number;
  /** Other hosts on the real servers' link (sources of errors, VRRP peers, the sync master). */
  lanHosts4: readonly number[];
  lanHosts6: readonly Uint8Array[];
  /** Connection sync: the multicast group and port a backup listens on. */
  syncGroup: number;
  syncPort: number;
  /** VRRP instances on link 1 (adverts are mostly made to pass their checks: the same version, password). */
  vrrp: readonly FuzzVrrp[];
  /** GUE ports the director's tunnels use. */
  guePorts: readonly number[];
  /** The largest plain frame the link takes (MTU + 14). */
  maxFrame: number;
  /** Whether frames may carry a virtio_net_hdr (the sender's socket has PACKET_VNET_HDR). */
  gso: boolean;
}

export const FUZZ_KINDS = [
  "random",
  "ether",
  "arp",
  "tcp4",
  "udp4",
  "reply4",
  "ip4opt",
  "frag4",
  "icmp4",
  "tunnel4",
  "tcp6",
  "udp6",
  "reply6",
  "ext6",
  "frag6",
  "icmp6",
  "ndp",
  "tunnel6",
  "vrrp",
  "sync",
  "gso",
] as const;
export type FuzzKind = (typeof FUZZ_KINDS)[number];

/** Relative frequency of each kind (the deep paths get the most). */
const KIND_WEIGHTS: readonly number[] = [
  6, // random
  3, // ether
  3, // arp
  12, // tcp4
  5, // udp4
  7, // reply4
  3, // ip4opt
  3, // frag4
  8, // icmp4
  3, // tunnel4
  8, // tcp6
  4, // udp6
  5, // reply6
  4, // ext6
  3, // frag6
  6, // icmp6
  4, // ndp
  2, // tunnel6
  3, // vrrp
  4, // sync
  3, // gso
];

export const FUZZ_MUTATIONS = [
  "none",
  "cut-layer",
  "cut",
  "length",
  "checksum",
  "header-bytes",
  "bit-flip",
  "options",
  "pad",
  "payload",
] as const;
export type FuzzMutation = (typeof FUZZ_MUTATIONS)[number];

const M_NONE = 0;
const M_CUT_LAYER = 1;
const M_CUT = 2;
const M_LENGTH = 3;
const M_CHECKSUM = 4;
const M_HEADER = 5;
const M_FLIP = 6;
const M_OPTIONS = 7;
const M_PAD = 8;
const M_PAYLOAD = 9;
const MUTATION_WEIGHTS: readonly number[] = [24, 12, 5, 15, 6, 12, 10, 8, 3, 5];

/** What frame() wrote. */
export class FuzzFrame {
  index = 0;
  /** The link it goes out on (FuzzTarget.links). */
  side = 0;
  len = 0;
  /** Index into FUZZ_KINDS and FUZZ_MUTATIONS. */
  kind = 0;
  mutation = 0;
  /** A virtio_net_hdr to send the frame with (GSO aggregates), when hasVnet. */
  hasVnet = false;
  readonly vnet = new Uint8Array(10);
}

/** The largest frame frame() writes (a GSO aggregate); out must hold it. */
export const FUZZ_MAX_FRAME = 32 * 1024;

const MAX_MARKS = 32;

/**
 * Where a built frame's layers are, for the mutations: layer boundaries, length fields, IPv4
 * headers and upper-layer checksums to fix up, header and option regions, the payload.
 */
class Layout {
  nBound = 0;
  readonly bound = new Int32Array(MAX_MARKS);
  nLen = 0;
  readonly lenOff = new Int32Array(MAX_MARKS);
  /** 2: a 16-bit field; 1: a byte; 4: the high nibble of a byte (IHL, data offset); 5: the low nibble. */
  readonly lenSize = new Uint8Array(MAX_MARKS);
  nIp4 = 0;
  readonly ip4 = new Int32Array(8);
  nL4 = 0;
  readonly l4Af = new Uint8Array(8);
  readonly l4L3 = new Int32Array(8);
  readonly l4Off = new Int32Array(8);
  readonly l4End = new Int32Array(8);
  readonly l4Proto = new Uint8Array(8);
  readonly l4Pseudo = new Uint8Array(8);
  nHdr = 0;
  readonly hdrStart = new Int32Array(MAX_MARKS);
  readonly hdrEnd = new Int32Array(MAX_MARKS);
  nOpt = 0;
  readonly optStart = new Int32Array(8);
  readonly optEnd = new Int32Array(8);
  payStart = -1;
  payEnd = -1;
  /** A sync message's size field (fixed up after a payload mutation), or -1. */
  syncSize = -1;

  reset(): void {
    this.nBound = 0;
    this.nLen = 0;
    this.nIp4 = 0;
    this.nL4 = 0;
    this.nHdr = 0;
    this.nOpt = 0;
    this.payStart = -1;
    this.payEnd = -1;
    this.syncSize = -1;
  }

  bnd(o: number): void {
    if (this.nBound < MAX_MARKS) this.bound[this.nBound++] = o;
  }

  len(o: number, size: number): void {
    if (this.nLen < MAX_MARKS) {
      this.lenOff[this.nLen] = o;
      this.lenSize[this.nLen++] = size;
    }
  }

  hdr(s: number, e: number): void {
    if (this.nHdr < MAX_MARKS && e > s) {
      this.hdrStart[this.nHdr] = s;
      this.hdrEnd[this.nHdr++] = e;
    }
  }

  opt(s: number, e: number): void {
    if (this.nOpt < 8 && e > s) {
      this.optStart[this.nOpt] = s;
      this.optEnd[this.nOpt++] = e;
    }
  }

  ipv4(l3: number): void {
    if (this.nIp4 < 8) this.ip4[this.nIp4++] = l3;
  }

  l4(af: 4 | 6, l3: number, l4: number, end: number, proto: number, pseudo: boolean): void {
    if (this.nL4 >= 8) return;
    const i = this.nL4++;
    this.l4Af[i] = af;
    this.l4L3[i] = l3;
    this.l4Off[i] = l4;
    this.l4End[i] = end;
    this.l4Proto[i] = proto;
    this.l4Pseudo[i] = pseudo ? 1 : 0;
  }
}

const TCP_FIN = 1;
const TCP_SYN = 2;
const TCP_RST = 4;
const TCP_PSH = 8;
const TCP_ACK = 16;
const TCP_URG = 32;
const TCP_ECE = 64;
const TCP_CWR = 128;
const FLAG_CHOICES: readonly number[] = [
  TCP_SYN,
  TCP_SYN,
  TCP_SYN,
  TCP_SYN | TCP_ECE | TCP_CWR,
  TCP_ACK,
  TCP_ACK,
  TCP_PSH | TCP_ACK,
  TCP_PSH | TCP_ACK,
  TCP_FIN | TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_RST | TCP_ACK,
  TCP_SYN | TCP_ACK,
  TCP_SYN | TCP_FIN,
  TCP_SYN | TCP_RST,
  TCP_URG | TCP_ACK,
];
const REPLY_FLAGS: readonly number[] = [
  TCP_SYN | TCP_ACK,
  TCP_SYN | TCP_ACK,
  TCP_ACK,
  TCP_PSH | TCP_ACK,
  TCP_FIN | TCP_ACK,
  TCP_RST,
  TCP_RST | TCP_ACK,
  TCP_SYN,
];
const HTTP = Uint8Array.from("GET / HTTP/1.0\r\nHost: vip\r\n\r\n", (c) => c.charCodeAt(0));
const BROADCAST = new Uint8Array([255, 255, 255, 255, 255, 255]);
const ALL_NODES = new Uint8Array([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
const ALL_ROUTERS = new Uint8Array([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
const VRRP6_GROUP = new Uint8Array([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12]);
const VRRP4_GROUP = 0xe0000012;
const UNSPECIFIED = new Uint8Array(16);
/** ICMP error types (RFC 792, RFC 1122) and the codes each may carry. */
const ICMP4_ERRORS: readonly number[] = [3, 3, 3, 3, 4, 5, 11, 11, 12];
const ICMP6_ERRORS: readonly number[] = [1, 1, 2, 2, 3, 4];

export class FrameGen {
  private readonly t: FuzzTarget;
  private readonly seed: number;
  private readonly rng = new FuzzRng();
  private readonly lay = new Layout();
  private readonly kindWeights: number[];
  private readonly kindTotal: number;
  private readonly mutTotal: number;
  private readonly svc4: FuzzService[];
  private readonly svc6: FuzzService[];
  private readonly reply4: FuzzService[];
  private readonly reply6: FuzzService[];
  // Scratch addresses (never escape a frame() call).
  private readonly a6 = new Uint8Array(16);
  private readonly b6 = new Uint8Array(16);
  private readonly g6 = new Uint8Array(16);
  private readonly mac = new Uint8Array(6);
  private b: Uint8Array = new Uint8Array(0);
  private side = 0;
  /** Where a valid frame ends (padding and cuts are relative to it). */
  private end = 0;

  constructor(target: FuzzTarget, seed: number) {
    this.t = target;
    this.seed = seed >>> 0;
    const has = (k: FuzzKind): boolean => {
      if (k === "gso") return target.gso;
      if (k.endsWith("6") || k === "ndp") return target.services.some((s) => s.af === 6);
      if (k === "vrrp") return target.vrrp.length > 0;
      return true;
    };
    this.kindWeights = KIND_WEIGHTS.map((w, i) => (has(FUZZ_KINDS[i]) ? w : 0));
    this.kindTotal = this.kindWeights.reduce((a, b) => a + b, 0);
    this.mutTotal = MUTATION_WEIGHTS.reduce((a, b) => a + b, 0);
    this.svc4 = target.services.filter((s) => s.af === 4);
    this.svc6 = target.services.filter((s) => s.af === 6);
    // Replies cross the director for NAT and FULLNAT only (DR and TUN answer the client directly).
    this.reply4 = this.svc4.filter((s) => s.method === "nat" || s.method === "fullnat");
    this.reply6 = this.svc6.filter(
      (s) => s.method === "nat" || s.method === "fullnat" || s.method === "nat64",
    );
    if (this.svc4.length === 0) throw new Error("fuzz target: no IPv4 service");
  }

  /** Writes frame `index` into out (at least FUZZ_MAX_FRAME bytes) and describes it in f. */
  frame(index: number, out: Uint8Array, f: FuzzFrame): void {
    const r = this.rng;
    r.reseed(this.seed, index);
    this.lay.reset();
    this.b = out;
    f.index = index;
    f.hasVnet = false;
    const kind = r.weighted(this.kindWeights, this.kindTotal);
    this.side = 0;
    let len = this.build(kind, f);
    this.end = len;
    let m = M_NONE;
    if (kind !== 0) {
      m = r.weighted(MUTATION_WEIGHTS, this.mutTotal);
      if (m !== M_NONE) len = this.mutate(m, len, kind);
    }
    // packet_snd takes MTU + 14 bytes, 4 more behind an 802.1Q tag (packet_extra_vlan_len_allowed),
    // and more only with a GSO type in the virtio_net_hdr.
    const max = f.hasVnet
      ? FUZZ_MAX_FRAME
      : this.t.maxFrame + (((out[12] << 8) | out[13]) === ETH_P_8021Q ? 4 : 0);
    if (len > max) len = max;
    if (len < ETH_HLEN) len = ETH_HLEN;
    f.side = this.side;
    f.len = len;
    f.kind = kind;
    f.mutation = m;
  }

  // ------------------------------------------------------------------------------ kinds

  private build(kind: number, f: FuzzFrame): number {
    switch (FUZZ_KINDS[kind]) {
      case "random":
        return this.random();
      case "ether":
        return this.ether();
      case "arp":
        return this.arp();
      case "tcp4":
        return this.request4(PROTO_TCP, false);
      case "udp4":
        return this.request4(PROTO_UDP, false);
      case "reply4":
        return this.reply4Frame();
      case "ip4opt":
        return this.request4(this.rng.chance(0.7) ? PROTO_TCP : PROTO_UDP, true);
      case "frag4":
        return this.frag4();
      case "icmp4":
        return this.icmp4();
      case "tunnel4":
        return this.tunnel(4);
      case "tcp6":
        return this.request6(PROTO_TCP, this.rng.chance(0.15));
      case "udp6":
        return this.request6(PROTO_UDP, this.rng.chance(0.15));
      case "reply6":
        return this.reply6Frame();
      case "ext6":
        return this.request6(this.rng.pick([PROTO_TCP, PROTO_UDP, PROTO_ICMPV6]), true);
      case "frag6":
        return this.frag6();
      case "icmp6":
        return this.icmp6();
      case "ndp":
        return this.ndp();
      case "tunnel6":
        return this.tunnel(6);
      case "vrrp":
        return this.vrrp();
      case "sync":
        return this.sync();
      case "gso":
        return this.gso(f);
    }
    return this.random();
  }

  /** Pure random bytes behind a destination MAC the director takes (mostly). */
  private random(): number {
    const r = this.rng;
    const b = this.b;
    const t = this.t;
    this.side = r.int(2);
    const len = r.chance(0.5) ? r.range(ETH_HLEN, 128) : r.range(ETH_HLEN, t.maxFrame);
    r.fill(b, 0, len);
    const p = r.int(10);
    if (p < 7) putBytes(b, 0, t.links[this.side].dirMac);
    else if (p < 8) putBytes(b, 0, BROADCAST);
    // A bridge learns every source it sees (and drops multicast ones): on the servers' link the
    // sender keeps its own.
    if (this.side === 1 || r.chance(0.7)) putBytes(b, 6, t.links[this.side].srcMac);
    if (r.chance(0.5)) put16(b, 12, r.pick([ETH_P_IP, ETH_P_IPV6, ETH_P_ARP, ETH_P_8021Q]));
    if (r.chance(0.5) && len > 15) {
      // A plausible version nibble gets the bytes past the first test.
      const et = (b[12] << 8) | b[13];
      if (et === ETH_P_IP) b[14] = 0x40 | (b[14] & 15);
      else if (et === ETH_P_IPV6) b[14] = 0x60 | (b[14] & 15);
    }
    return len;
  }

  /** The Ethernet header toward the director on this.side, with VLAN tags now and then; returns l3. */
  private l2(type: number, dst: Uint8Array | null = null): number {
    const r = this.rng;
    const b = this.b;
    const link = this.t.links[this.side];
    writeEth(b, dst ?? link.dirMac, link.srcMac, type);
    let off = 12;
    if (r.chance(0.04)) {
      const n = r.chance(0.7) ? 1 : r.range(2, 6);
      for (let i = 0; i < n; i++) {
        put16(
          b,
          off,
          i === 0 && n > 1 && r.chance(0.5) ? ETH_P_8021AD : r.pick([ETH_P_8021Q, ETH_P_8021Q, 0x9100]),
        );
        put16(b, off + 2, r.int(4096) | (r.int(8) << 13));
        off += 4;
        this.lay.bnd(off);
      }
      put16(b, off, type);
    }
    this.lay.hdr(12, off + 2);
    this.lay.bnd(off + 2);
    return off + 2;
  }

  private ether(): number {
    const r = this.rng;
    const b = this.b;
    this.side = r.int(2);
    const v = r.int(6);
    if (v === 0) {
      // A VLAN stack (up to six tags, either TPID) in front of a frame of another kind.
      const n = r.range(1, 6);
      const inner = r.chance(0.5)
        ? this.request4(PROTO_TCP, false)
        : r.chance(0.5)
          ? this.arp()
          : this.icmp4();
      const shift = 4 * n;
      if (inner + shift > FUZZ_MAX_FRAME / 2) return inner;
      b.copyWithin(12 + shift, 12, inner);
      for (let i = 0; i < n; i++) {
        put16(b, 12 + 4 * i, r.pick([ETH_P_8021Q, ETH_P_8021AD, 0x9100]));
        put16(b, 14 + 4 * i, r.u32() & 0xffff);
      }
      this.lay.reset();
      this.lay.bnd(12 + shift);
      this.lay.hdr(12, 14 + shift);
      return inner + shift;
    }
    const len = v === 1 ? r.range(ETH_HLEN, ETH_HLEN + 12) : r.range(ETH_HLEN, 256);
    writeEth(b, this.t.links[this.side].dirMac, this.t.links[this.side].srcMac, 0);
    r.fill(b, 12, len - 12);
    switch (v) {
      case 1: // a frame that ends in or right after a VLAN tag or the ethertype
        put16(b, 12, r.pick([ETH_P_8021Q, ETH_P_8021AD, ETH_P_IP, ETH_P_IPV6, ETH_P_ARP]));
        break;
      case 2: // 802.3 with a length field and LLC
        put16(b, 12, r.int(0x600));
        break;
      case 3: // ethertypes nobody here speaks: LLDP, PPPoE, MPLS, MACsec, random
        put16(b, 12, r.pick([0x88cc, 0x8863, 0x8864, 0x8847, 0x88e5, 0x88f7, r.u32() & 0xffff]));
        break;
      default: // a tag in front of IPv4 or IPv6 garbage
        put16(b, 12, ETH_P_8021Q);
        put16(b, 16, r.chance(0.5) ? ETH_P_IP : ETH_P_IPV6);
        if (len > 18) b[18] = r.chance(0.5) ? 0x45 : 0x60;
    }
    this.lay.hdr(12, len);
    this.lay.bnd(14);
    return len;
  }

  /**
   * ARP (RFC 826) requests and replies for the director's VIPs, LIPs, own addresses and others:
   * gratuitous ones, other hardware and protocol types and address lengths, any opcode. The
   * sender never claims a real server's or the director's own address (the real servers' kernels
   * would believe a broadcast one and lose their gateway, which is not what the run is about), and
   * broadcasts go out on the clients' link only, where nothing but the director listens.
   */
  private arp(): number {
    const r = this.rng;
    const b = this.b;
    const t = this.t;
    this.side = r.chance(0.6) ? 0 : 1;
    const link = t.links[this.side];
    const bcast = this.side === 0 && r.chance(0.5);
    const l3 = this.l2(ETH_P_ARP, bcast ? BROADCAST : null);
    const odd = r.chance(0.1);
    put16(b, l3, odd ? r.pick([6, 0x100, r.u32() & 0xffff]) : 1);
    put16(b, l3 + 2, odd && r.chance(0.5) ? r.pick([ETH_P_IPV6, r.u32() & 0xffff]) : ETH_P_IP);
    b[l3 + 4] = odd && r.chance(0.5) ? r.byte() : 6;
    b[l3 + 5] = odd && r.chance(0.5) ? r.byte() : 4;
    put16(b, l3 + 6, r.chance(0.9) ? r.range(1, 2) : r.u32() & 0xffff);
    b.set(link.srcMac, l3 + 8);
    let spa: number;
    const sv = r.int(5);
    if (sv === 0) spa = this.client4();
    else if (sv === 1) spa = r.pick(t.lanHosts4);
    else if (sv === 2)
      spa = r.pick(this.svc4).vip4; // a claim on a VIP
    else if (sv === 3)
      spa = 0; // a probe (RFC 5227)
    else spa = r.u32();
    put32(b, l3 + 14, spa);
    if (r.chance(0.5)) b.fill(0, l3 + 18, l3 + 24);
    else r.fill(b, l3 + 18, 6);
    const tv = r.int(5);
    let tpa: number;
    if (tv === 0) tpa = link.dip4;
    else if (tv <= 2) tpa = r.pick(this.svc4).vip4;
    else if (tv === 3) tpa = t.lips4.length > 0 ? r.pick(t.lips4) : spa;
    else tpa = r.chance(0.5) ? spa : r.u32();
    put32(b, l3 + 24, tpa);
    const lay = this.lay;
    lay.len(l3 + 4, 1);
    lay.len(l3 + 5, 1);
    lay.hdr(l3, l3 + 28);
    lay.bnd(l3 + 8);
    lay.bnd(l3 + 28);
    return l3 + 28;
  }

  // ------------------------------------------------------------------------------ addresses

  private client4(): number {
    return this.rng.pick(this.t.clients4);
  }

  private client6(out: Uint8Array): void {
    out.set(this.rng.pick(this.t.clients6));
  }

  private cport(): number {
    return this.t.clientPortBase + this.rng.int(this.t.clientPorts);
  }

  /** A FULLNAT local port: the director hands them out upward from 1024 (conn/life.ts). */
  private lport(): number {
    return 1024 + this.rng.int(this.rng.chance(0.7) ? 64 : 4096);
  }

  /** Some other address the director might own or route: a DIP, a LIP, a real server, random. */
  private other4(): number {
    const r = this.rng;
    const t = this.t;
    switch (r.int(6)) {
      case 0:
        return t.links[r.int(2)].dip4;
      case 1:
        return t.lips4.length > 0 ? r.pick(t.lips4) : t.links[0].dip4;
      case 2:
        return r.pick(t.rips4);
      case 3:
        return r.pick(this.svc4).vip4;
      case 4:
        return r.chance(0.5) ? 0xffffffff : 0xe0000000 | r.int(256);
      default:
        return r.u32();
    }
  }

  private other6(out: Uint8Array): void {
    const r = this.rng;
    const t = this.t;
    switch (r.int(6)) {
      case 0:
        out.set(t.links[r.int(2)].dip6);
        return;
      case 1:
        out.set(t.lips6.length > 0 ? r.pick(t.lips6) : t.links[0].dip6);
        return;
      case 2:
        out.set(r.pick(t.rips6));
        return;
      case 3:
        out.set(ALL_NODES);
        return;
      case 4:
        out.set(this.svc6.length > 0 ? (r.pick(this.svc6).vip6 ?? ALL_NODES) : ALL_NODES);
        return;
      default:
        r.fill(out, 0, 16);
    }
  }

  // ------------------------------------------------------------------------------ IPv4

  /** IPv4 header (with options when opts) at l3; returns l4. The length and checksum come in end4. */
  private ip4(l3: number, proto: number, src: number, dst: number, opts: boolean): number {
    const r = this.rng;
    const b = this.b;
    let ttl = 64;
    const tp = r.int(40);
    if (tp === 0) ttl = 1;
    else if (tp === 1) ttl = 0;
    else if (tp === 2) ttl = 255;
    const frag = r.chance(0.5) ? 0x4000 : 0;
    writeIpv4(b, l3, r.chance(0.9) ? 0 : r.byte(), r.u32() & 0xffff, frag, ttl, proto, src, dst);
    let hlen = 20;
    if (opts) hlen += this.ip4Options(l3 + 20);
    b[l3] = 0x40 | (hlen >>> 2);
    const lay = this.lay;
    lay.ipv4(l3);
    lay.len(l3 + 2, 2);
    lay.len(l3, 5);
    lay.len(l3 + 6, 2);
    lay.hdr(l3, l3 + hlen);
    if (hlen > 20) lay.opt(l3 + 20, l3 + hlen);
    lay.bnd(l3 + 20);
    lay.bnd(l3 + hlen);
    return l3 + hlen;
  }

  private end4(l3: number, end: number): void {
    finishIpv4(this.b, l3, (this.b[l3] & 15) << 2, end);
    this.lay.bnd(end);
  }

  /**
   * IPv4 options (RFC 791 §3.1): end of list, no-op, record route, timestamp, loose and strict
   * source route, router alert, security, unknown kinds; lengths valid, zero, one, or past the end.
   * Returns their length (a multiple of 4, at most 40).
   */
  private ip4Options(off: number): number {
    const r = this.rng;
    const b = this.b;
    const max = 4 * r.range(1, 10);
    let o = 0;
    while (o < max) {
      const room = max - o;
      const k = r.int(12);
      if (k === 0) {
        b[off + o++] = 0; // EOL
        continue;
      }
      if (k === 1 || room < 2) {
        b[off + o++] = 1; // NOP
        continue;
      }
      const kind = r.pick([7, 68, 131, 137, 148, 130, 133, 25, 0x9e, r.byte()]);
      let len = kind === 148 ? 4 : r.range(3, Math.min(room, 39));
      if (kind === 7 || kind === 131 || kind === 137) len = 3 + 4 * r.int(Math.max(1, (room - 3) >> 2));
      if (len > room) len = room;
      const bad = r.int(10);
      b[off + o] = kind;
      b[off + o + 1] = bad === 0 ? 0 : bad === 1 ? 1 : bad === 2 ? r.range(room + 1, 255) : len;
      if (len > 2) {
        r.fill(b, off + o + 2, len - 2);
        // The pointer of RR/TS/LSRR/SSRR: 4 (first slot), or anywhere.
        if (kind === 7 || kind === 68 || kind === 131 || kind === 137)
          b[off + o + 2] = r.chance(0.6) ? 4 : r.byte();
      }
      o += len < 2 ? 2 : len;
    }
    return max;
  }

  // ------------------------------------------------------------------------------ IPv6

  /**
   * IPv6 header at l3 with, when ext, a chain of extension headers in front of `upper`; returns l4.
   * The payload length comes in end6.
   */
  private ip6(l3: number, upper: number, src: Uint8Array, dst: Uint8Array, ext: boolean, hlim = 64): number {
    const r = this.rng;
    const b = this.b;
    const hp = r.int(40);
    if (hp === 0) hlim = 1;
    else if (hp === 1) hlim = 0;
    writeIpv6(b, l3, r.chance(0.9) ? 0 : r.byte(), r.u32(), upper, hlim, src, dst);
    const lay = this.lay;
    lay.len(l3 + 4, 2);
    lay.hdr(l3, l3 + 40);
    lay.bnd(l3 + 40);
    let off = l3 + 40;
    if (ext) off = this.extChain(l3 + 6, off, upper);
    return off;
  }

  private end6(l3: number, end: number): void {
    finishIpv6(this.b, l3, end);
    this.lay.bnd(end);
  }

  /**
   * A chain of extension headers at off whose first next-header byte is at nhAt (RFC 8200 §4):
   * mostly in the recommended order, sometimes shuffled, repeated, past the walker's limit of 8,
   * with hop-by-hop options not first, bad lengths, routing types 0/2/3/4, AH and ESP.
   */
  private extChain(nhAt: number, off: number, upper: number): number {
    const r = this.rng;
    const b = this.b;
    const lay = this.lay;
    const n = r.chance(0.85) ? r.range(1, 4) : r.range(5, 12);
    const order = [NH_HOP, NH_DEST, NH_ROUTING, NH_FRAGMENT, PROTO_AH, NH_DEST];
    for (let i = 0; i < n; i++) {
      const nh =
        r.chance(0.7) && i < order.length
          ? order[i]
          : r.pick([NH_HOP, NH_DEST, NH_ROUTING, NH_FRAGMENT, PROTO_AH]);
      if (off + 8 > FUZZ_MAX_FRAME / 2) break;
      b[nhAt] = nh;
      const start = off;
      if (nh === NH_FRAGMENT) {
        b[off + 1] = 0;
        // Atomic (offset 0, M clear: RFC 6946) mostly; the fragment kinds make real ones.
        put16(b, off + 2, r.chance(0.8) ? 0 : r.u32() & 0xfff9);
        put32(b, off + 4, r.u32());
        off += 8;
        lay.len(off - 6, 2);
      } else if (nh === PROTO_AH) {
        // RFC 4302: payload length in 4-byte words minus 2; SPI, sequence, ICV.
        const words = r.range(1, 6);
        b[off + 1] = words;
        r.fill(b, off + 2, (words + 2) * 4 - 2);
        lay.len(off + 1, 1);
        off += (words + 2) * 4;
      } else {
        const units = r.chance(0.8) ? r.int(3) : r.int(8);
        b[off + 1] = units;
        const hlen = (units + 1) * 8;
        if (nh === NH_ROUTING) {
          // Type 0 (deprecated, RFC 5095), 2 (mobile IPv6), 3 (RPL), 4 (SRH); segments left.
          b[off + 2] = r.pick([0, 2, 3, 4, r.byte()]);
          b[off + 3] = r.chance(0.5) ? 0 : r.byte();
          r.fill(b, off + 4, hlen - 4);
        } else this.tlvOptions(off + 2, hlen - 2);
        lay.len(off + 1, 1);
        lay.opt(off + 2, off + hlen);
        off += hlen;
      }
      lay.hdr(start, off);
      lay.bnd(off);
      nhAt = start;
    }
    b[nhAt] = r.chance(0.05) ? r.pick([PROTO_ESP, PROTO_NONE, r.byte()]) : upper;
    return off;
  }

  /**
   * Hop-by-hop / destination options (RFC 8200 §4.2): Pad1, PadN, router alert, jumbo payload,
   * tunnel encapsulation limit, unknown types of every action (the top two bits), lengths that run
   * past the header.
   */
  private tlvOptions(off: number, len: number): void {
    const r = this.rng;
    const b = this.b;
    let o = 0;
    while (o < len) {
      const room = len - o;
      const k = r.int(8);
      if (k === 0 || room < 2) {
        b[off + o++] = 0; // Pad1
        continue;
      }
      const type = k === 1 ? 1 : r.pick([5, 0xc2, 4, 0x3e, 0x7e, 0xbe, 0xfe, r.byte()]);
      let l = type === 5 ? 2 : type === 0xc2 ? 4 : type === 4 ? 1 : r.int(room - 1);
      if (l > room - 2) l = room - 2;
      b[off + o] = type;
      b[off + o + 1] = r.chance(0.1) ? r.byte() : l;
      r.fill(b, off + o + 2, l);
      o += 2 + l;
    }
  }

  // ------------------------------------------------------------------------------ TCP, UDP

  /** TCP header with options at l4 and a payload; returns its end. */
  private tcp(
    l4: number,
    sport: number,
    dport: number,
    flags: number,
    opts: boolean,
    payload: number,
  ): number {
    const r = this.rng;
    const b = this.b;
    put16(b, l4, sport);
    put16(b, l4 + 2, dport);
    put32(b, l4 + 4, r.chance(0.8) ? r.u32() : r.int(4));
    put32(b, l4 + 8, (flags & TCP_ACK) !== 0 || r.chance(0.1) ? r.u32() : 0);
    put16(b, l4 + 14, r.chance(0.9) ? 29200 : r.u32() & 0xffff);
    put16(b, l4 + 16, 0);
    put16(b, l4 + 18, (flags & TCP_URG) !== 0 || r.chance(0.05) ? r.u32() & 0xffff : 0);
    b[l4 + 13] = r.chance(0.97) ? flags : r.byte();
    let hlen = 20;
    if (opts) hlen += this.tcpOptions(l4 + 20, (flags & TCP_SYN) !== 0);
    b[l4 + 12] = (hlen >>> 2) << 4;
    const lay = this.lay;
    lay.len(l4 + 12, 4);
    lay.hdr(l4, l4 + hlen);
    if (hlen > 20) lay.opt(l4 + 20, l4 + hlen);
    lay.bnd(l4 + 20);
    lay.bnd(l4 + hlen);
    return this.payload(l4 + hlen, payload);
  }

  /**
   * TCP options (RFC 9293 §3.2 and the IANA registry): MSS, window scale, SACK permitted, SACK
   * blocks, timestamps, MD5 (RFC 2385), MPTCP (30), fast open (34), TOA (254, 8 and 20 bytes: the
   * client address FULLNAT carries), experimental and unknown kinds; lengths 0, 1, odd, past the
   * header. At most 40 bytes, a multiple of 4.
   */
  private tcpOptions(off: number, syn: boolean): number {
    const r = this.rng;
    const b = this.b;
    const max = 4 * (syn && r.chance(0.5) ? r.range(3, 10) : r.range(1, 10));
    let o = 0;
    while (o < max) {
      const room = max - o;
      const k = r.int(14);
      if (k === 0 || room < 2) {
        b[off + o++] = r.chance(0.7) ? 1 : 0; // NOP, EOL
        continue;
      }
      let kind: number;
      let len: number;
      switch (k) {
        case 1:
        case 2:
          kind = 2;
          len = 4;
          break;
        case 3:
          kind = 3;
          len = 3;
          break;
        case 4:
          kind = 4;
          len = 2;
          break;
        case 5:
          kind = 5;
          len = 2 + 8 * r.range(1, 4);
          break;
        case 6:
        case 7:
          kind = 8;
          len = 10;
          break;
        case 8:
          kind = 254;
          len = r.chance(0.6) ? 8 : 20;
          break;
        case 9:
          kind = 19;
          len = 18;
          break;
        case 10:
          kind = 30;
          len = r.range(4, 24);
          break;
        case 11:
          kind = 34;
          len = r.pick([2, 6, 10, 18]);
          break;
        default:
          kind = r.pick([253, 6, 7, 9, 27, 28, 29, r.byte()]);
          len = r.range(2, 16);
      }
      if (len > room) len = room;
      b[off + o] = kind;
      const bad = r.int(12);
      b[off + o + 1] =
        bad === 0 ? 0 : bad === 1 ? 1 : bad === 2 ? r.range(room + 1, 255) : bad === 3 ? len + 1 : len;
      r.fill(b, off + o + 2, len - 2);
      if (kind === 2 && r.chance(0.5)) put16(b, off + o + 2, r.pick([0, 1, 536, 1460, 65535]));
      if (kind === 3 && len === 3) b[off + o + 2] = r.pick([0, 7, 14, 15, 255]);
      o += len;
    }
    return max;
  }

  private udp(l4: number, sport: number, dport: number, payload: number): number {
    const b = this.b;
    put16(b, l4, sport);
    put16(b, l4 + 2, dport);
    const end = this.payload(l4 + 8, payload);
    put16(b, l4 + 4, end - l4);
    put16(b, l4 + 6, 0);
    const lay = this.lay;
    lay.len(l4 + 4, 2);
    lay.hdr(l4, l4 + 8);
    lay.bnd(l4 + 8);
    return end;
  }

  /** len payload bytes at off (text or random); returns the end. */
  private payload(off: number, len: number): number {
    const r = this.rng;
    if (len > 0 && r.chance(0.3)) {
      const n = Math.min(len, HTTP.length);
      for (let i = 0; i < n; i++) this.b[off + i] = HTTP[i];
      r.fill(this.b, off + n, len - n);
    } else r.fill(this.b, off, len);
    this.lay.payStart = off;
    this.lay.payEnd = off + len;
    return off + len;
  }

  private payloadLen(): number {
    const r = this.rng;
    const p = r.int(10);
    if (p < 4) return 0;
    if (p < 8) return r.range(1, 64);
    return r.range(65, 1000);
  }

  // ------------------------------------------------------------------------------ requests

  private pickService(list: readonly FuzzService[], proto: number): FuzzService {
    const r = this.rng;
    for (let i = 0; i < 4; i++) {
      const s = r.pick(list);
      if (s.proto === proto) return s;
    }
    return r.pick(list);
  }

  /** A client's TCP or UDP datagram to a VIP (sometimes to another address or port). */
  private request4(proto: number, opts: boolean): number {
    const r = this.rng;
    const s = this.pickService(this.svc4, proto);
    this.side = r.chance(0.97) ? 0 : 1;
    const dst = r.chance(0.92) ? s.vip4 : this.other4();
    const dport = r.chance(0.92) ? s.port : r.chance(0.5) ? r.int(1024) : r.u32() & 0xffff;
    const l3 = this.l2(ETH_P_IP);
    const l4 = this.ip4(l3, proto, this.client4(), dst, opts || r.chance(0.05));
    const end =
      proto === PROTO_TCP
        ? this.tcp(l4, this.cport(), dport, r.pick(FLAG_CHOICES), r.chance(0.6), this.payloadLen())
        : this.udp(l4, this.cport(), dport, this.payloadLen());
    this.lay.l4(4, l3, l4, end, proto, true);
    l4Checksum(this.b, 4, l3, l4, end, proto, l4CheckField(proto), true);
    this.end4(l3, end);
    return end;
  }

  private request6(proto: number, ext: boolean): number {
    const r = this.rng;
    const s = this.pickService(this.svc6, proto === PROTO_ICMPV6 ? PROTO_TCP : proto);
    this.side = r.chance(0.97) ? 0 : 1;
    const src = this.a6;
    const dst = this.b6;
    this.client6(src);
    if (r.chance(0.92) && s.vip6 !== null) dst.set(s.vip6);
    else this.other6(dst);
    const dport = r.chance(0.92) ? s.port : r.u32() & 0xffff;
    const l3 = this.l2(ETH_P_IPV6);
    const l4 = this.ip6(l3, proto, src, dst, ext);
    let end: number;
    if (proto === PROTO_TCP)
      end = this.tcp(l4, this.cport(), dport, r.pick(FLAG_CHOICES), r.chance(0.6), this.payloadLen());
    else if (proto === PROTO_UDP) end = this.udp(l4, this.cport(), dport, this.payloadLen());
    else end = this.echo(l4, 128);
    this.lay.l4(6, l3, l4, end, proto, true);
    l4Checksum(this.b, 6, l3, l4, end, proto, l4CheckField(proto), true);
    this.end6(l3, end);
    return end;
  }

  /** A real server's answer to a client (NAT) or to a local address (FULLNAT), from its link. */
  private reply4Frame(): number {
    const r = this.rng;
    const list = this.reply4.length > 0 ? this.reply4 : this.svc4;
    const s = r.pick(list);
    this.side = r.chance(0.95) ? 1 : 0;
    const fnat = s.method === "fullnat" && this.t.lips4.length > 0;
    const dst = fnat ? r.pick(this.t.lips4) : this.client4();
    const dport = fnat ? this.lport() : this.cport();
    const l3 = this.l2(ETH_P_IP);
    const l4 = this.ip4(l3, s.proto, r.pick(this.t.rips4), dst, r.chance(0.05));
    const end =
      s.proto === PROTO_TCP
        ? this.tcp(l4, s.rport, dport, r.pick(REPLY_FLAGS), r.chance(0.4), this.payloadLen())
        : this.udp(l4, s.rport, dport, this.payloadLen());
    this.lay.l4(4, l3, l4, end, s.proto, true);
    l4Checksum(this.b, 4, l3, l4, end, s.proto, l4CheckField(s.proto), true);
    this.end4(l3, end);
    return end;
  }

  private reply6Frame(): number {
    const r = this.rng;
    const list = this.reply6.length > 0 ? this.reply6 : this.svc6;
    const s = r.pick(list);
    this.side = r.chance(0.95) ? 1 : 0;
    if (s.method === "nat64") {
      // NAT64: the real server answers over IPv4, to the IPv4 local address.
      const l3 = this.l2(ETH_P_IP);
      const dst = this.t.lips4.length > 0 ? r.pick(this.t.lips4) : this.t.links[1].dip4;
      const l4 = this.ip4(l3, s.proto, r.pick(this.t.rips4), dst, false);
      const end =
        s.proto === PROTO_TCP
          ? this.tcp(l4, s.rport, this.lport(), r.pick(REPLY_FLAGS), r.chance(0.4), this.payloadLen())
          : this.udp(l4, s.rport, this.lport(), this.payloadLen());
      this.lay.l4(4, l3, l4, end, s.proto, true);
      l4Checksum(this.b, 4, l3, l4, end, s.proto, l4CheckField(s.proto), true);
      this.end4(l3, end);
      return end;
    }
    const fnat = s.method === "fullnat" && this.t.lips6.length > 0;
    const src = this.a6;
    const dst = this.b6;
    src.set(r.pick(this.t.rips6));
    if (fnat) dst.set(r.pick(this.t.lips6));
    else this.client6(dst);
    const l3 = this.l2(ETH_P_IPV6);
    const l4 = this.ip6(l3, s.proto, src, dst, r.chance(0.1));
    const dport = fnat ? this.lport() : this.cport();
    const end =
      s.proto === PROTO_TCP
        ? this.tcp(l4, s.rport, dport, r.pick(REPLY_FLAGS), r.chance(0.4), this.payloadLen())
        : this.udp(l4, s.rport, dport, this.payloadLen());
    this.lay.l4(6, l3, l4, end, s.proto, true);
    l4Checksum(this.b, 6, l3, l4, end, s.proto, l4CheckField(s.proto), true);
    this.end6(l3, end);
    return end;
  }

  // ------------------------------------------------------------------------------ fragments

  /**
   * An IPv4 fragment of a client's datagram to a VIP: a first one (cut at an 8-byte boundary, or
   * inside the transport header), a middle or last one, offsets near the 13-bit limit, MF with
   * offset 0 on a whole datagram.
   */
  private frag4(): number {
    const r = this.rng;
    const b = this.b;
    const proto = r.pick([PROTO_TCP, PROTO_TCP, PROTO_UDP, PROTO_ICMP]);
    const s = this.pickService(this.svc4, proto === PROTO_ICMP ? PROTO_TCP : proto);
    this.side = 0;
    const l3 = this.l2(ETH_P_IP);
    const l4 = this.ip4(l3, proto, this.client4(), s.vip4, r.chance(0.1));
    const v = r.int(5);
    let end: number;
    let frag: number;
    if (v <= 1) {
      // First fragment: the transport header, then data up to an 8-byte multiple (or a tiny one).
      const full =
        proto === PROTO_TCP
          ? this.tcp(l4, this.cport(), s.port, r.pick(FLAG_CHOICES), r.chance(0.5), r.range(8, 600))
          : proto === PROTO_UDP
            ? this.udp(l4, this.cport(), s.port, r.range(8, 600))
            : this.echo(l4, 8);
      this.lay.l4(4, l3, l4, full, proto, proto !== PROTO_ICMP);
      l4Checksum(b, 4, l3, l4, full, proto, l4CheckField(proto), proto !== PROTO_ICMP);
      end = v === 0 ? l4 + 8 * Math.max(1, ((full - l4) >> 3) - r.int(3)) : l4 + r.range(1, 19);
      if (end > full) end = full;
      frag = 0x2000;
    } else {
      end = this.payload(l4, 8 * r.range(1, 100));
      const off = v === 4 ? 0x1fff - r.int(4) : r.range(1, 400);
      frag = off | (v === 2 ? 0x2000 : 0) | (r.chance(0.2) ? 0x4000 : 0);
    }
    put16(b, l3 + 6, frag);
    this.end4(l3, end);
    return end;
  }

  /** An IPv6 fragment (RFC 8200 §4.5) of a client's datagram to a VIP, the same variety as frag4. */
  private frag6(): number {
    const r = this.rng;
    const b = this.b;
    if (this.svc6.length === 0) return this.frag4();
    const proto = r.pick([PROTO_TCP, PROTO_UDP, PROTO_ICMPV6]);
    const s = this.pickService(this.svc6, proto === PROTO_ICMPV6 ? PROTO_TCP : proto);
    this.side = 0;
    const src = this.a6;
    this.client6(src);
    const l3 = this.l2(ETH_P_IPV6);
    const pre = r.chance(0.3);
    let l4 = this.ip6(l3, NH_FRAGMENT, src, s.vip6 ?? ALL_NODES, pre);
    // The fragment header itself (the chain, when there is one, ends with next header 44).
    const fh = l4;
    b[fh] = proto;
    b[fh + 1] = 0;
    put32(b, fh + 4, r.u32());
    this.lay.hdr(fh, fh + 8);
    this.lay.bnd(fh + 8);
    this.lay.len(fh + 2, 2);
    l4 = fh + 8;
    const v = r.int(5);
    let end: number;
    let fo: number;
    if (v <= 1) {
      const full =
        proto === PROTO_TCP
          ? this.tcp(l4, this.cport(), s.port, r.pick(FLAG_CHOICES), r.chance(0.5), r.range(8, 600))
          : proto === PROTO_UDP
            ? this.udp(l4, this.cport(), s.port, r.range(8, 600))
            : this.echo(l4, 128);
      end = v === 0 ? l4 + 8 * Math.max(1, ((full - l4) >> 3) - r.int(3)) : l4 + r.range(1, 19);
      if (end > full) end = full;
      fo = 1;
    } else {
      end = this.payload(l4, 8 * r.range(1, 100));
      const off = v === 4 ? 0x1fff - r.int(4) : r.range(1, 400);
      fo = (off << 3) | (v === 2 ? 1 : 0);
    }
    put16(b, fh + 2, fo);
    this.end6(l3, end);
    return end;
  }

  // ------------------------------------------------------------------------------ ICMP

  /** An ICMP or ICMPv6 echo (request type 8/128) with a small payload at l4; returns the end. */
  private echo(l4: number, type: number): number {
    const r = this.rng;
    const b = this.b;
    b[l4] = type;
    b[l4 + 1] = r.chance(0.9) ? 0 : r.byte();
    put16(b, l4 + 2, 0);
    put32(b, l4 + 4, r.u32());
    this.lay.hdr(l4, l4 + 8);
    this.lay.bnd(l4 + 8);
    return this.payload(l4 + 8, r.int(64));
  }

  /**
   * ICMP: echo requests to the director's addresses, other informational types, and errors (3, 4,
   * 5, 11, 12) from either side quoting one of the director's flows — a reply it sent to a client
   * (ip_vs_in_icmp), a request it forwarded to a real server by NAT or FULLNAT or through a tunnel
   * (ip_vs_out_icmp) — whole, cut to the 8 bytes RFC 792 promises, cut inside the IP header, or
   * nonsense: random bytes, another version, a fragment, an ICMP error inside.
   */
  private icmp4(): number {
    const r = this.rng;
    const b = this.b;
    const t = this.t;
    const v = r.int(10);
    if (v < 3) {
      this.side = r.chance(0.8) ? 0 : 1;
      const l3 = this.l2(ETH_P_IP);
      const dst = r.chance(0.6) ? r.pick(this.svc4).vip4 : this.other4();
      const l4 = this.ip4(l3, PROTO_ICMP, this.client4(), dst, r.chance(0.05));
      const end = this.echo(l4, v === 0 ? 8 : r.pick([8, 0, 13, 14, 15, 17, 9, 10, r.byte()]));
      this.lay.l4(4, l3, l4, end, PROTO_ICMP, false);
      l4Checksum(b, 4, l3, l4, end, PROTO_ICMP, 2, false);
      this.end4(l3, end);
      return end;
    }
    // Errors.
    const s = r.pick(this.svc4);
    const inDir = r.chance(0.45);
    this.side = inDir ? 0 : 1;
    const l3 = this.l2(ETH_P_IP);
    let src: number;
    let dst: number;
    const cip = this.client4();
    const cport = this.cport();
    const fnat = s.method === "fullnat" && t.lips4.length > 0;
    const lip = fnat ? r.pick(t.lips4) : 0;
    const lport = this.lport();
    const rip = r.pick(t.rips4);
    if (inDir) {
      src = r.chance(0.6) ? cip : r.u32();
      dst = r.chance(0.9) ? s.vip4 : this.other4();
    } else {
      src = r.chance(0.6) ? rip : r.pick(t.lanHosts4);
      dst = fnat ? lip : s.method === "tun" ? t.links[1].dip4 : cip;
      if (r.chance(0.1)) dst = this.other4();
    }
    const l4 = this.ip4(l3, PROTO_ICMP, src, dst, r.chance(0.05));
    const type = r.chance(0.95) ? r.pick(ICMP4_ERRORS) : r.byte();
    b[l4] = type;
    b[l4 + 1] = type === 3 ? (r.chance(0.4) ? 4 : r.int(16)) : r.int(type === 11 ? 2 : 4);
    put16(b, l4 + 2, 0);
    // Unused / pointer / next-hop MTU (RFC 1191): 0, tiny, usual, huge.
    put32(
      b,
      l4 + 4,
      type === 3 ? r.pick([0, 68, 576, 1400, 1500, 65535, r.u32() & 0xffff]) : r.chance(0.8) ? 0 : r.u32(),
    );
    this.lay.hdr(l4, l4 + 8);
    this.lay.bnd(l4 + 8);
    const q = l4 + 8;
    let qend: number;
    if (inDir) qend = this.quote4(q, s.proto, s.vip4, cip, s.port, cport);
    else if (fnat) qend = this.quote4(q, s.proto, lip, rip, lport, s.rport);
    else if (s.method === "tun" && r.chance(0.7)) qend = this.quoteTunnel4(q, s, cip, cport, rip);
    else qend = this.quote4(q, s.proto, cip, rip, cport, s.rport);
    const end = this.cutQuote(q, qend);
    this.lay.l4(4, l3, l4, end, PROTO_ICMP, false);
    l4Checksum(b, 4, l3, l4, end, PROTO_ICMP, 2, false);
    this.end4(l3, end);
    return end;
  }

  /**
   * The quoted datagram of an error at q: an IPv4 header (checksum valid, total length as sent)
   * and the transport header with some of its payload; sometimes nonsense. Returns its end.
   */
  private quote4(q: number, proto: number, src: number, dst: number, sport: number, dport: number): number {
    const r = this.rng;
    const b = this.b;
    const lay = this.lay;
    const v = r.int(20);
    if (v === 0) {
      // Random bytes.
      const n = r.range(1, 80);
      r.fill(b, q, n);
      return q + n;
    }
    const p = v === 1 ? r.pick([PROTO_ICMP, PROTO_GRE, PROTO_IPIP, 132, r.byte()]) : proto;
    writeIpv4(b, q, 0, r.u32() & 0xffff, v === 2 ? r.range(1, 0x1fff) : 0x4000, 64, p, src, dst);
    let hlen = 20;
    if (v === 3) hlen += this.ip4Options(q + 20);
    b[q] = 0x40 | (hlen >>> 2);
    if (v === 4) b[q] = r.byte();
    const l4 = q + hlen;
    lay.ipv4(q);
    lay.len(q + 2, 2);
    lay.len(q, 5);
    lay.hdr(q, l4);
    lay.bnd(q + 20);
    lay.bnd(l4);
    let end: number;
    if (p === PROTO_TCP) end = this.tcp(l4, sport, dport, r.pick(FLAG_CHOICES), r.chance(0.3), r.int(32));
    else if (p === PROTO_UDP) end = this.udp(l4, sport, dport, r.int(32));
    else if (p === PROTO_ICMP && v === 1) {
      // An error quoting an error.
      b[l4] = r.pick([3, 11, 8, 0]);
      b[l4 + 1] = r.int(16);
      put16(b, l4 + 2, 0);
      put32(b, l4 + 4, 0);
      end = r.chance(0.5) ? this.quote4(l4 + 8, proto, dst, src, dport, sport) : l4 + 8;
    } else end = this.payload(l4, r.int(40));
    // The quoted header says the datagram as it was sent, not the quote.
    put16(b, q + 2, end - q + (r.chance(0.5) ? r.int(1400) : 0));
    ipv4Checksum(b, q);
    return end;
  }

  /** A tunnel packet the director sent to a real server (outer DIP → RIP) about a client's request. */
  private quoteTunnel4(q: number, s: FuzzService, cip: number, cport: number, rip: number): number {
    const r = this.rng;
    const b = this.b;
    const t = this.t;
    const kind = r.int(3);
    const outerProto = kind === 0 ? PROTO_IPIP : kind === 1 ? PROTO_GRE : PROTO_UDP;
    writeIpv4(b, q, 0, r.u32() & 0xffff, 0x4000, 64, outerProto, t.links[1].dip4, rip);
    this.lay.ipv4(q);
    this.lay.bnd(q + 20);
    let inner = q + 20;
    if (kind === 1) {
      put16(b, inner, r.chance(0.8) ? 0 : 0x8000);
      put16(b, inner + 2, ETH_P_IP);
      inner += (b[inner] & 0x80) !== 0 ? 8 : 4;
    } else if (kind === 2) {
      put16(b, inner, r.int(65536));
      put16(b, inner + 2, t.guePorts.length > 0 ? r.pick(t.guePorts) : 6080);
      put16(b, inner + 6, 0);
      b[inner + 8] = 0;
      b[inner + 9] = PROTO_IPIP;
      put16(b, inner + 10, 0);
      inner += 12;
    }
    const end = this.quote4(inner, s.proto, cip, s.vip4, cport, s.port);
    if (kind === 2) put16(b, q + 24, end - q - 20);
    put16(b, q + 2, end - q);
    ipv4Checksum(b, q);
    return end;
  }

  /** Cuts a quote that starts at q: whole, 28 bytes (RFC 792), inside the header, or a byte. */
  private cutQuote(q: number, qend: number): number {
    const r = this.rng;
    const v = r.int(8);
    let end = qend;
    if (v === 0) end = q + 28;
    else if (v === 1) end = q + r.range(0, 27);
    else if (v === 2) end = q + r.range(0, qend - q);
    return end > qend ? qend : end;
  }

  /**
   * ICMPv6: echo requests, informational types, and errors (1 to 4) quoting the director's
   * flows (with extension headers inside the quote now and then), cut or nonsense; packet too big
   * with MTUs below, at and above 1280.
   */
  private icmp6(): number {
    const r = this.rng;
    const b = this.b;
    const t = this.t;
    const src = this.a6;
    const dst = this.b6;
    const v = r.int(10);
    if (v < 3 || this.svc6.length === 0) {
      this.side = r.chance(0.8) ? 0 : 1;
      this.client6(src);
      if (r.chance(0.6) && this.svc6.length > 0) dst.set(r.pick(this.svc6).vip6 ?? ALL_NODES);
      else this.other6(dst);
      const l3 = this.l2(ETH_P_IPV6);
      const l4 = this.ip6(l3, PROTO_ICMPV6, src, dst, r.chance(0.1));
      const end = this.echo(l4, v === 0 ? 128 : r.pick([128, 129, 130, 131, 132, 143, 139, r.byte()]));
      this.lay.l4(6, l3, l4, end, PROTO_ICMPV6, true);
      l4Checksum(b, 6, l3, l4, end, PROTO_ICMPV6, 2, true);
      this.end6(l3, end);
      return end;
    }
    const s = r.pick(this.svc6);
    const inDir = r.chance(0.45);
    this.side = inDir ? 0 : 1;
    const cip = this.g6;
    this.client6(cip);
    const cport = this.cport();
    const fnat = s.method === "fullnat" && t.lips6.length > 0;
    const rip = r.pick(t.rips6);
    if (inDir) {
      if (r.chance(0.6)) src.set(cip);
      else r.fill(src, 0, 16);
      if (r.chance(0.9) && s.vip6 !== null) dst.set(s.vip6);
      else this.other6(dst);
    } else {
      if (r.chance(0.6)) src.set(rip);
      else src.set(r.pick(t.lanHosts6));
      if (fnat) dst.set(r.pick(t.lips6));
      else if (s.method === "tun") dst.set(t.links[1].dip6);
      else dst.set(cip);
    }
    const l3 = this.l2(ETH_P_IPV6);
    const l4 = this.ip6(l3, PROTO_ICMPV6, src, dst, r.chance(0.1));
    const type = r.chance(0.95) ? r.pick(ICMP6_ERRORS) : r.int(128);
    b[l4] = type;
    b[l4 + 1] = r.int(type === 1 ? 8 : 4);
    put16(b, l4 + 2, 0);
    put32(
      b,
      l4 + 4,
      type === 2 ? r.pick([0, 1279, 1280, 1500, 65535, r.u32()]) : r.chance(0.8) ? 0 : r.u32(),
    );
    this.lay.hdr(l4, l4 + 8);
    this.lay.bnd(l4 + 8);
    const q = l4 + 8;
    let qend: number;
    const vip = s.vip6 ?? ALL_NODES;
    if (inDir) qend = this.quote6(q, s.proto, vip, cip, s.port, cport);
    else if (fnat) qend = this.quote6(q, s.proto, r.pick(t.lips6), rip, this.lport(), s.rport);
    else qend = this.quote6(q, s.proto, cip, rip, cport, s.rport);
    const end = this.cutQuote(q, qend);
    this.lay.l4(6, l3, l4, end, PROTO_ICMPV6, true);
    l4Checksum(b, 6, l3, l4, end, PROTO_ICMPV6, 2, true);
    this.end6(l3, end);
    return end;
  }

  private quote6(
    q: number,
    proto: number,
    src: Uint8Array,
    dst: Uint8Array,
    sport: number,
    dport: number,
  ): number {
    const r = this.rng;
    const b = this.b;
    const v = r.int(16);
    if (v === 0) {
      const n = r.range(1, 80);
      r.fill(b, q, n);
      return q + n;
    }
    const p = v === 1 ? r.pick([PROTO_ICMPV6, PROTO_NONE, PROTO_ESP, r.byte()]) : proto;
    writeIpv6(b, q, 0, 0, p, 64, src, dst);
    const lay = this.lay;
    lay.len(q + 4, 2);
    lay.hdr(q, q + 40);
    lay.bnd(q + 40);
    let l4 = q + 40;
    if (v === 2 || v === 3) l4 = this.extChain(q + 6, l4, p);
    if (v === 4) b[q] = r.byte();
    let end: number;
    if (p === PROTO_TCP) end = this.tcp(l4, sport, dport, r.pick(FLAG_CHOICES), r.chance(0.3), r.int(32));
    else if (p === PROTO_UDP) end = this.udp(l4, sport, dport, r.int(32));
    else if (p === PROTO_ICMPV6) {
      b[l4] = r.pick([1, 2, 3, 4, 128, 129, 135]);
      b[l4 + 1] = 0;
      put16(b, l4 + 2, 0);
      put32(b, l4 + 4, 0);
      end = r.chance(0.5) ? this.quote6(l4 + 8, proto, dst, src, dport, sport) : l4 + 8;
    } else end = this.payload(l4, r.int(40));
    put16(b, q + 4, end - q - 40 + (r.chance(0.3) ? r.int(1400) : 0));
    return end;
  }

  // ------------------------------------------------------------------------------ NDP

  /**
   * Neighbour discovery (RFC 4861): solicitations for the director's addresses and VIPs (DAD
   * probes from :: too), advertisements, router solicitations and advertisements, redirects; hop
   * limit 255 mostly; options of every kind with zero, odd and overlong lengths.
   */
  private ndp(): number {
    const r = this.rng;
    const b = this.b;
    const t = this.t;
    this.side = r.int(2);
    const link = t.links[this.side];
    const type = r.pick([135, 135, 135, 136, 136, 133, 134, 137]);
    const target = this.g6;
    const tv = r.int(5);
    if (tv === 0) target.set(link.dip6);
    else if (tv <= 2 && this.svc6.length > 0) target.set(r.pick(this.svc6).vip6 ?? link.dip6);
    else if (tv === 3 && t.lips6.length > 0) target.set(r.pick(t.lips6));
    else r.fill(target, 0, 16);
    const src = this.a6;
    const dst = this.b6;
    const sv = r.int(6);
    if (sv === 0) src.set(UNSPECIFIED);
    else if (sv === 1) {
      src.fill(0);
      src[0] = 0xfe;
      src[1] = 0x80;
      r.fill(src, 8, 8);
    } else if (this.side === 0) this.client6(src);
    else src.set(r.pick(t.lanHosts6));
    const dv = r.int(5);
    if (dv <= 1) solicitedNode(target, dst);
    else if (dv === 2) dst.set(target);
    else if (dv === 3) dst.set(type === 133 ? ALL_ROUTERS : ALL_NODES);
    else dst.set(link.dip6);
    // Multicast on the clients' link only, where the director alone listens (see arp()).
    if (this.side === 1 && dst[0] === 0xff) dst.set(link.dip6);
    const mac = this.mac;
    if (dst[0] === 0xff) multicastMac6(dst, mac);
    else mac.set(link.dirMac);
    const l3 = this.l2(ETH_P_IPV6, mac);
    const l4 = this.ip6(l3, PROTO_ICMPV6, src, dst, r.chance(0.05), r.chance(0.9) ? 255 : r.byte());
    b[l4] = type;
    b[l4 + 1] = r.chance(0.9) ? 0 : r.byte();
    put16(b, l4 + 2, 0);
    let o = l4 + 4;
    if (type === 135 || type === 136) {
      put32(b, o, type === 136 ? (r.int(8) << 29) >>> 0 : 0);
      b.set(target, o + 4);
      o += 20;
    } else if (type === 133) {
      put32(b, o, 0);
      o += 4;
    } else if (type === 134) {
      r.fill(b, o, 12);
      o += 12;
    } else {
      put32(b, o, 0);
      b.set(target, o + 4);
      b.set(link.dip6, o + 20);
      o += 36;
    }
    this.lay.hdr(l4, o);
    this.lay.bnd(o);
    const optStart = o;
    const n = r.int(5);
    for (let i = 0; i < n && o + 8 <= l3 + 40 + 600; i++) {
      const kind = r.pick([1, 1, 2, 2, 3, 4, 5, 14, 24, 25, 31, r.byte()]);
      let units = kind === 1 || kind === 2 || kind === 5 || kind === 14 ? 1 : kind === 3 ? 4 : r.range(1, 4);
      const bad = r.int(8);
      b[o] = kind;
      if (bad === 0) units = 0;
      b[o + 1] = bad === 1 ? r.range(units + 1, 255) : units;
      const l = Math.max(units, 1) * 8;
      r.fill(b, o + 2, l - 2);
      if ((kind === 1 || kind === 2) && r.chance(0.7)) b.set(link.srcMac, o + 2);
      this.lay.len(o + 1, 1);
      o += l;
      if (bad === 0) break;
    }
    this.lay.opt(optStart, o);
    this.lay.payStart = optStart;
    this.lay.payEnd = o;
    this.lay.l4(6, l3, l4, o, PROTO_ICMPV6, true);
    l4Checksum(b, 6, l3, l4, o, PROTO_ICMPV6, 2, true);
    this.end6(l3, o);
    return o;
  }

  // ------------------------------------------------------------------------------ tunnels

  /**
   * Encapsulated datagrams aimed at the director's and the real servers' addresses: IPIP (4 or 41
   * inside IPv4 or IPv6), GRE with checksum, key and sequence bits (and the routing and version
   * bits receivers refuse), GUE on the tunnels' ports with options, control messages and remote
   * checksum offload fields; the inner datagram a client's request to a VIP.
   */
  private tunnel(af: 4 | 6): number {
    const r = this.rng;
    const b = this.b;
    const t = this.t;
    this.side = r.int(2);
    const kind = r.int(3);
    const innerAf: 4 | 6 = this.svc6.length > 0 && r.chance(0.4) ? 6 : 4;
    const outerProto =
      kind === 0 ? (innerAf === 4 ? PROTO_IPIP : PROTO_IPV6) : kind === 1 ? PROTO_GRE : PROTO_UDP;
    let l3: number;
    let l4: number;
    if (af === 4 || this.svc6.length === 0) {
      l3 = this.l2(ETH_P_IP);
      const dst = r.chance(0.5) ? t.links[this.side].dip4 : this.other4();
      l4 = this.ip4(l3, outerProto, r.chance(0.5) ? t.links[1 - this.side].dip4 : this.client4(), dst, false);
      af = 4;
    } else {
      const src = this.a6;
      const dst = this.b6;
      this.client6(src);
      if (r.chance(0.5)) dst.set(t.links[this.side].dip6);
      else this.other6(dst);
      l3 = this.l2(ETH_P_IPV6);
      l4 = this.ip6(l3, outerProto, src, dst, r.chance(0.1));
    }
    let inner = l4;
    if (kind === 1) {
      // RFC 2784 / 2890: C, R, K, S bits and the version; the protocol says the inner family.
      let flags = 0;
      if (r.chance(0.4)) flags |= 0x8000;
      if (r.chance(0.2)) flags |= 0x2000;
      if (r.chance(0.2)) flags |= 0x1000;
      if (r.chance(0.05)) flags |= 0x4000;
      if (r.chance(0.05)) flags |= r.range(1, 7);
      put16(b, inner, flags);
      put16(b, inner + 2, r.chance(0.9) ? (innerAf === 4 ? ETH_P_IP : ETH_P_IPV6) : r.u32() & 0xffff);
      let h = 4;
      if ((flags & 0x8000) !== 0) h += 4;
      if ((flags & 0x2000) !== 0) h += 4;
      if ((flags & 0x1000) !== 0) h += 4;
      r.fill(b, inner + 4, h - 4);
      this.lay.hdr(inner, inner + h);
      inner += h;
    } else if (kind === 2) {
      // UDP to a GUE port, then the GUE header: version(2) C(1) hlen(5), proto_ctype, flags.
      put16(b, inner, r.u32() & 0xffff);
      put16(b, inner + 2, t.guePorts.length > 0 && r.chance(0.9) ? r.pick(t.guePorts) : r.u32() & 0xffff);
      put16(b, inner + 6, 0);
      const g = inner + 8;
      const optWords = r.chance(0.6) ? 0 : r.int(4);
      b[g] = (r.chance(0.9) ? 0 : r.int(4) << 6) | (r.chance(0.9) ? 0 : 0x20) | optWords;
      b[g + 1] = r.chance(0.9) ? (innerAf === 4 ? PROTO_IPIP : PROTO_IPV6) : r.byte();
      put16(b, g + 2, optWords > 0 && r.chance(0.7) ? 1 : r.chance(0.9) ? 0 : r.u32() & 0xffff);
      r.fill(b, g + 4, optWords * 4);
      if (optWords >= 2 && r.chance(0.7)) put32(b, g + 4, 0x80000000);
      this.lay.len(g, 1);
      this.lay.hdr(inner, g + 4 + optWords * 4);
      inner = g + 4 + optWords * 4;
    }
    this.lay.bnd(inner);
    let end: number;
    if (innerAf === 4) {
      const s = this.pickService(this.svc4, PROTO_TCP);
      const il4 = this.ip4(inner, s.proto, this.client4(), s.vip4, false);
      end =
        s.proto === PROTO_TCP
          ? this.tcp(il4, this.cport(), s.port, r.pick(FLAG_CHOICES), r.chance(0.5), r.int(64))
          : this.udp(il4, this.cport(), s.port, r.int(64));
      l4Checksum(b, 4, inner, il4, end, s.proto, l4CheckField(s.proto), true);
      this.end4(inner, end);
    } else {
      const s = this.pickService(this.svc6, PROTO_TCP);
      const src = this.g6;
      this.client6(src);
      const il4 = this.ip6(inner, s.proto, src, s.vip6 ?? ALL_NODES, false);
      end =
        s.proto === PROTO_TCP
          ? this.tcp(il4, this.cport(), s.port, r.pick(FLAG_CHOICES), r.chance(0.5), r.int(64))
          : this.udp(il4, this.cport(), s.port, r.int(64));
      l4Checksum(b, 6, inner, il4, end, s.proto, l4CheckField(s.proto), true);
      this.end6(inner, end);
    }
    if (kind === 2) put16(b, l4 + 4, end - l4);
    if (kind === 1 && (b[l4] & 0x80) !== 0) {
      put16(b, l4 + 4, 0);
      put16(b, l4 + 4, finish(sum16(b, l4, end - l4)));
      this.lay.l4(af, l3, l4, end, PROTO_GRE, false);
    }
    if (kind === 2 && af === 6) {
      l4Checksum(b, 6, l3, l4, end, PROTO_UDP, 6, true);
      this.lay.l4(6, l3, l4, end, PROTO_UDP, true);
    }
    if (af === 4) this.end4(l3, end);
    else this.end6(l3, end);
    return end;
  }

  // ------------------------------------------------------------------------------ VRRP

  /**
   * VRRP adverts (RFC 3768 v2, RFC 5798 v3) on the real servers' link: to 224.0.0.18 or ff02::12
   * (sometimes unicast), TTL 255 mostly, the instances' VRIDs and others, every priority class
   * (0: master leaving, 255: address owner), address counts that do not match the length, v2
   * authentication types and passwords, checksums right most of the time (the receive checks run
   * in keepalived's order, so a wrong length is seen before a wrong checksum).
   */
  private vrrp(): number {
    const r = this.rng;
    const b = this.b;
    const t = this.t;
    this.side = 1;
    const inst = t.vrrp.length > 0 && r.chance(0.85) ? r.pick(t.vrrp) : null;
    const six = inst !== null ? inst.family === 6 && r.chance(0.95) : this.svc6.length > 0 && r.chance(0.35);
    let version: number = inst !== null && r.chance(0.9) ? inst.version : r.chance(0.5) ? 2 : 3;
    if (r.chance(0.03)) version = r.int(16);
    const naddr = r.chance(0.8) ? r.range(1, 3) : r.pick([0, 255, r.range(4, 20)]);
    let l3: number;
    let v: number;
    const mac = this.mac;
    if (!six) {
      const dst = r.chance(0.9) ? VRRP4_GROUP : t.links[1].dip4;
      if (dst === VRRP4_GROUP) multicastMac4(dst, mac);
      else mac.set(t.links[1].dirMac);
      l3 = this.l2(ETH_P_IP, mac);
      v = this.ip4(l3, PROTO_VRRP, r.pick(t.lanHosts4), dst, r.chance(0.05));
      b[l3 + 8] = r.chance(0.9) ? 255 : r.byte();
    } else {
      const src = this.a6;
      src.fill(0);
      src[0] = 0xfe;
      src[1] = 0x80;
      r.fill(src, 8, 8);
      if (r.chance(0.9)) this.b6.set(VRRP6_GROUP);
      else this.b6.set(t.links[1].dip6);
      if (this.b6[0] === 0xff) multicastMac6(this.b6, mac);
      else mac.set(t.links[1].dirMac);
      l3 = this.l2(ETH_P_IPV6, mac);
      v = this.ip6(l3, PROTO_VRRP, src, this.b6, r.chance(0.05), r.chance(0.9) ? 255 : r.byte());
    }
    b[v] = (version << 4) | (r.chance(0.95) ? 1 : r.int(16));
    b[v + 1] = inst !== null ? inst.vrid : r.byte();
    b[v + 2] = r.pick([0, 1, 50, 100, 101, 150, 254, 255, r.byte()]);
    b[v + 3] = naddr;
    if (version === 2) {
      b[v + 4] = r.chance(0.8) ? r.int(2) : r.pick([2, r.byte()]);
      b[v + 5] = r.chance(0.8) ? 1 : r.byte();
    } else put16(b, v + 4, r.chance(0.8) ? 100 : r.u32() & 0xffff);
    put16(b, v + 6, 0);
    this.lay.len(v + 3, 1);
    this.lay.hdr(v, v + 8);
    this.lay.bnd(v + 8);
    const alen = six ? 16 : 4;
    const shown = r.chance(0.85) ? naddr : r.int(8);
    let end = v + 8;
    for (let i = 0; i < shown && end + alen + 8 <= l3 + 1400; i++) {
      if (six) {
        if (r.chance(0.5) && this.svc6.length > 0) b.set(r.pick(this.svc6).vip6 ?? ALL_NODES, end);
        else r.fill(b, end, 16);
      } else put32(b, end, r.chance(0.5) ? r.pick(t.lanHosts4) : r.u32());
      end += alen;
    }
    if (version === 2) {
      // Authentication data: 8 bytes, the instance's password (zero-padded) or anything.
      const pass = inst?.pass ?? null;
      if (pass !== null && r.chance(0.85)) {
        b[v + 4] = 1;
        for (let i = 0; i < 8; i++) b[end + i] = i < pass.length ? pass.charCodeAt(i) & 255 : 0;
      } else {
        if (inst !== null && pass === null && r.chance(0.85)) b[v + 4] = 0;
        r.fill(b, end, 8);
      }
      end += 8;
    }
    this.lay.payStart = v;
    this.lay.payEnd = end;
    const af: 4 | 6 = six ? 6 : 4;
    const pseudo = version !== 2 || six;
    this.lay.l4(af, l3, v, end, PROTO_VRRP, pseudo);
    l4Checksum(b, af, l3, v, end, PROTO_VRRP, 6, pseudo);
    if (six) this.end6(l3, end);
    else this.end4(l3, end);
    return end;
  }

  // ------------------------------------------------------------------------------ sync

  /**
   * A connection sync message (ip_vs_sync.c) from another director on the real servers' link, to
   * the group and port a backup listens on: version 1 (IPv4 and IPv6 entries with their options:
   * sequence data, persistence-engine data and name, tsvs's FULLNAT local addresses, unknown ones)
   * or version 0 (with and without sequence data); entries name the services, real servers and
   * clients frames use, with every forwarding method, flags, states and timeouts. UDP checksum 0
   * (RFC 768: none), so that the kernel hands a mutated message to the socket.
   */
  private sync(): number {
    const r = this.rng;
    const b = this.b;
    const t = this.t;
    this.side = 1;
    const mac = this.mac;
    const unicast = r.chance(0.05);
    const dst = unicast ? t.links[1].dip4 : t.syncGroup;
    if (unicast) mac.set(t.links[1].dirMac);
    else multicastMac4(t.syncGroup, mac);
    const l3 = this.l2(ETH_P_IP, mac);
    const l4 = this.ip4(l3, PROTO_UDP, r.pick(t.lanHosts4), dst, false);
    b[l3 + 8] = r.chance(0.9) ? 1 : r.byte();
    put16(b, l4, r.u32() & 0xffff);
    put16(b, l4 + 2, r.chance(0.95) ? t.syncPort : r.u32() & 0xffff);
    put16(b, l4 + 6, 0);
    this.lay.hdr(l4, l4 + 8);
    this.lay.bnd(l4 + 8);
    const m = l4 + 8;
    const v1 = r.chance(0.75);
    const n = r.chance(0.8) ? r.range(1, 6) : r.pick([0, 255, r.range(7, 40)]);
    let o: number;
    if (v1) {
      b[m] = 0;
      b[m + 1] = r.chance(0.8) ? 0 : r.byte();
      b[m + 4] = n;
      b[m + 5] = 1;
      put16(b, m + 6, 0);
      o = m + 8;
      for (let i = 0; i < n && o < l3 + 1300; i++) o = this.syncEntry(o);
    } else {
      b[m] = n;
      b[m + 1] = r.chance(0.8) ? 0 : r.byte();
      o = m + 4;
      for (let i = 0; i < n && o < l3 + 1300; i++) o = this.syncEntryV0(o);
    }
    put16(b, m + 2, o - m);
    this.lay.syncSize = m + 2;
    this.lay.len(m + 2, 2);
    this.lay.hdr(m, m + (v1 ? 8 : 4));
    this.lay.payStart = m;
    this.lay.payEnd = o;
    put16(b, l4 + 4, o - l4);
    this.end4(l3, o);
    return o;
  }

  /** One v1 entry at o (struct ip_vs_sync_v4 or _v6, its options, 4-byte padding); returns its end. */
  private syncEntry(o: number): number {
    const r = this.rng;
    const b = this.b;
    const t = this.t;
    const six = this.svc6.length > 0 && r.chance(0.35);
    const s = r.pick(six ? this.svc6 : this.svc4);
    const start = o;
    b[o] = six ? 1 : r.chance(0.95) ? 0 : r.byte();
    b[o + 1] = r.chance(0.9) ? s.proto : r.pick([0, 132, r.byte()]);
    put32(b, o + 4, this.syncFlags(s));
    put16(b, o + 8, r.chance(0.9) ? r.int(11) : r.u32() & 0xffff);
    put16(b, o + 10, this.cport());
    put16(b, o + 12, s.port);
    put16(b, o + 14, s.rport);
    put32(b, o + 16, r.chance(0.9) ? 0 : r.range(1, 4));
    put32(b, o + 20, r.pick([0, 1, 60, 900, 0x7fffffff, r.u32()]));
    o += 24;
    if (six) {
      b.set(r.pick(t.clients6), o);
      b.set(s.vip6 ?? ALL_NODES, o + 16);
      if (s.method === "nat64" && r.chance(0.7)) {
        b.fill(0, o + 32, o + 42);
        put16(b, o + 42, 0xffff);
        put32(b, o + 44, r.pick(t.rips4));
      } else b.set(r.pick(t.rips6), o + 32);
      o += 48;
    } else {
      put32(b, o, this.client4());
      put32(b, o + 4, r.chance(0.95) ? s.vip4 : r.u32());
      put32(b, o + 8, r.pick(t.rips4));
      o += 12;
    }
    // Options: {type, len, data}.
    const nopt = r.chance(0.6) ? 0 : r.range(1, 3);
    for (let i = 0; i < nopt; i++) {
      const type = r.pick([1, 2, 3, 0x48, 0x48, 0x49, 0x40 | r.int(64), r.byte()]);
      let len =
        type === 1
          ? 24
          : type === 0x48
            ? 6
            : type === 0x49
              ? 18
              : type === 3
                ? r.range(1, 16)
                : r.range(0, 40);
      if (r.chance(0.1)) len = r.pick([0, 255, len + 1]);
      b[o] = type;
      b[o + 1] = len;
      const fill = Math.min(len, 40);
      r.fill(b, o + 2, fill);
      if (type === 0x48 && len === 6) {
        put32(b, o + 2, t.lips4.length > 0 ? r.pick(t.lips4) : r.u32());
        put16(b, o + 6, this.lport());
      }
      if (type === 0x49 && len === 18 && t.lips6.length > 0) {
        b.set(r.pick(t.lips6), o + 2);
        put16(b, o + 18, this.lport());
      }
      o += 2 + fill;
    }
    const size = o - start;
    // ver_size: version 0 in the top nibble, the size without padding (sometimes a lie).
    put16(b, start + 2, r.chance(0.9) ? size : r.chance(0.5) ? (r.int(16) << 12) | size : r.u32() & 0xffff);
    this.lay.len(start + 2, 2);
    while (((o - start) & 3) !== 0) b[o++] = 0;
    return o;
  }

  /** One v0 entry (struct ip_vs_sync_conn_v0, with the sequence options when its flags say so). */
  private syncEntryV0(o: number): number {
    const r = this.rng;
    const b = this.b;
    const s = r.pick(this.svc4);
    b[o] = 0;
    b[o + 1] = r.chance(0.9) ? s.proto : r.byte();
    put16(b, o + 2, this.cport());
    put16(b, o + 4, s.port);
    put16(b, o + 6, s.rport);
    put32(b, o + 8, this.client4());
    put32(b, o + 12, s.vip4);
    put32(b, o + 16, r.pick(this.t.rips4));
    const flags = this.syncFlags(s) & 0xffff;
    put16(b, o + 20, flags);
    put16(b, o + 22, r.chance(0.9) ? r.int(11) : r.u32() & 0xffff);
    o += 24;
    if ((flags & 0x0600) !== 0) {
      r.fill(b, o, 24);
      o += 24;
    }
    return o;
  }

  /** IP_VS_CONN_F_*: the service's method mostly, templates, one-packet, no-output, inactive, seq. */
  private syncFlags(s: FuzzService): number {
    const r = this.rng;
    const fwd = s.method === "nat" ? 0 : s.method === "dr" ? 3 : s.method === "tun" ? 2 : 5;
    let f = r.chance(0.85) ? fwd : r.int(8);
    if (r.chance(0.15)) f |= 0x1000; // template
    if (r.chance(0.05)) f |= 0x2000; // one packet
    if (r.chance(0.1)) f |= 0x0080; // no output
    if (r.chance(0.2)) f |= 0x0100; // inactive
    if (r.chance(0.1)) f |= 0x0600; // seq
    if (r.chance(0.05)) f |= 0x0800; // no cport
    if (r.chance(0.05)) f = r.u32();
    return f >>> 0;
  }

  // ------------------------------------------------------------------------------ GSO

  /**
   * A GSO aggregate as a guest hands it to virtio_net (or a local socket to veth): a TCP or UDP
   * datagram bigger than the MTU with a virtio_net_hdr (NEEDS_CSUM, gso_type TCPV4/TCPV6/UDP_L4,
   * gso_size, the header length, csum_start/offset) and the partial checksum left in the field —
   * to a VIP from a client, or a real server's reply. Sometimes the header lies: a tiny or huge
   * gso_size, the other protocol's type, ECN, offsets anywhere; the sending kernel refuses what it
   * cannot take (counted as a send error).
   */
  private gso(f: FuzzFrame): number {
    const r = this.rng;
    const b = this.b;
    const six = this.svc6.length > 0 && r.chance(0.4);
    const proto = r.chance(0.75) ? PROTO_TCP : PROTO_UDP;
    const reply = r.chance(0.3);
    const list = six ? this.svc6 : this.svc4;
    const replies = six ? this.reply6 : this.reply4;
    const s = this.pickService(reply && replies.length > 0 ? replies : list, proto);
    // A third are plain frames whose checksum is left partial (NEEDS_CSUM, no GSO type), as a
    // local sender's reach a packet socket (TP_STATUS_CSUMNOTREADY): the director finishes them.
    const plain = r.chance(0.35);
    const payload = plain
      ? r.int(600)
      : r.range(this.t.maxFrame, Math.min(FUZZ_MAX_FRAME - 200, 3 * this.t.maxFrame + 4000));
    this.side = reply ? 1 : 0;
    let l3: number;
    let l4: number;
    if (!six) {
      l3 = this.l2(ETH_P_IP);
      const src = reply ? r.pick(this.t.rips4) : this.client4();
      const dst = reply ? this.client4() : s.vip4;
      l4 = this.ip4(l3, proto, src, dst, false);
    } else {
      if (reply) this.a6.set(r.pick(this.t.rips6));
      else this.client6(this.a6);
      if (reply) this.client6(this.b6);
      else this.b6.set(s.vip6 ?? ALL_NODES);
      l3 = this.l2(ETH_P_IPV6);
      l4 = this.ip6(l3, proto, this.a6, this.b6, false);
    }
    const sport = reply ? s.rport : this.cport();
    const dport = reply ? this.cport() : s.port;
    const end =
      proto === PROTO_TCP
        ? this.tcp(l4, sport, dport, reply ? TCP_ACK : TCP_ACK | TCP_PSH, r.chance(0.5), payload)
        : this.udp(l4, sport, dport, payload);
    if (six) this.end6(l3, end);
    else this.end4(l3, end);
    // CHECKSUM_PARTIAL: the field holds the pseudo-header sum, folded, not complemented.
    const field = l4CheckField(proto);
    const len = end - l4;
    const ps = six
      ? sum16(b, l3 + 8, 32) + proto + (len >>> 16) + (len & 0xffff)
      : sum16(b, l3 + 12, 8) + proto + len;
    put16(b, l4 + field, ~finish(ps) & 0xffff);
    const hdrLen = proto === PROTO_TCP ? l4 + ((b[l4 + 12] >>> 4) << 2) : l4 + 8;
    let type = proto === PROTO_UDP ? 5 : six ? 4 : 1;
    let size = proto === PROTO_TCP ? r.pick([1448, 1428, 1400, 536, 1000]) : r.pick([1472, 1452, 1200, 512]);
    let start = l4;
    let off = field;
    const lie = r.int(10);
    if (plain) {
      type = lie === 1 ? r.pick([1, 4, 5]) : 0;
      size = lie === 0 ? r.u32() & 0xffff : 0;
    } else if (lie === 0) size = r.pick([1, 8, 64, 9000, 65535, r.u32() & 0xffff]);
    else if (lie === 1) type = r.pick([1, 3, 4, 5, 0x81, 0x84]);
    if (lie === 2) start = r.int(end);
    else if (lie === 3) off = r.int(64);
    const v = f.vnet;
    v[0] = r.chance(0.95) ? 1 : r.int(4);
    v[1] = type;
    const hl = plain ? 0 : hdrLen;
    v[2] = hl & 255;
    v[3] = hl >>> 8;
    v[4] = size & 255;
    v[5] = size >>> 8;
    v[6] = start & 255;
    v[7] = start >>> 8;
    v[8] = off & 255;
    v[9] = off >>> 8;
    f.hasVnet = true;
    return end;
  }

  // ------------------------------------------------------------------------------ mutations

  /** Applies mutation m to the valid frame b[0, len) (kind: its FUZZ_KINDS index); returns the new length. */
  private mutate(m: number, len: number, kind: number): number {
    const r = this.rng;
    const b = this.b;
    const lay = this.lay;
    let fixIp = r.chance(0.85);
    let fixL4 = r.chance(0.35);
    const k = FUZZ_KINDS[kind];
    const deliver = k === "sync" || k === "vrrp" || k === "ndp";
    if (deliver) fixL4 = r.chance(0.9);
    switch (m) {
      case M_CUT_LAYER: {
        if (lay.nBound === 0) break;
        const at = lay.bound[r.int(lay.nBound)] + (r.chance(0.6) ? 0 : r.range(-3, 3));
        if (at < len) len = at;
        break;
      }
      case M_CUT:
        len = ETH_HLEN + r.int(len - ETH_HLEN + 1);
        break;
      case M_LENGTH: {
        const n = r.chance(0.8) ? 1 : r.range(2, 3);
        for (let i = 0; i < n && lay.nLen > 0; i++) {
          const j = r.int(lay.nLen);
          const o = lay.lenOff[j];
          if (o >= len) continue;
          switch (lay.lenSize[j]) {
            case 2: {
              const cur = (b[o] << 8) | b[o + 1];
              const v = r.int(4);
              put16(
                b,
                o,
                v === 0
                  ? r.edge16()
                  : v === 1
                    ? cur + r.range(-8, 8)
                    : v === 2
                      ? cur ^ (1 << r.int(16))
                      : cur + 1,
              );
              break;
            }
            case 1:
              b[o] = r.chance(0.5) ? r.pick([0, 1, 2, 255, b[o] + 1, b[o] - 1]) : r.byte();
              break;
            case 4:
              b[o] = (r.int(16) << 4) | (b[o] & 15);
              break;
            default:
              b[o] = (b[o] & 0xf0) | r.int(16);
          }
        }
        if (lay.syncSize >= 0 && r.chance(0.3)) lay.syncSize = -1;
        break;
      }
      case M_CHECKSUM:
        fixIp = false;
        fixL4 = false;
        if (lay.nIp4 > 0 && r.chance(0.5)) {
          const o = lay.ip4[r.int(lay.nIp4)] + 10;
          if (o + 1 < len) b[o + r.int(2)] ^= r.range(1, 255);
        } else if (lay.nL4 > 0) {
          const i = r.int(lay.nL4);
          const o = lay.l4Off[i] + l4CheckField(lay.l4Proto[i]);
          if (o + 1 < len) {
            if (r.chance(0.3)) put16(b, o, 0);
            else b[o + r.int(2)] ^= r.range(1, 255);
          }
        }
        break;
      case M_HEADER: {
        if (lay.nHdr === 0) break;
        const j = r.int(lay.nHdr);
        const s = lay.hdrStart[j];
        const e = Math.min(lay.hdrEnd[j], len);
        if (e <= s) break;
        if (r.chance(0.2)) r.fill(b, s, e - s);
        else for (let i = r.range(1, 4); i > 0; i--) b[s + r.int(e - s)] = r.byte();
        break;
      }
      case M_FLIP:
        for (let i = r.range(1, 8); i > 0; i--) b[r.int(len)] ^= 1 << r.int(8);
        break;
      case M_OPTIONS: {
        if (lay.nOpt === 0) {
          // No options region: overwrite the tail of the last header instead.
          if (lay.nHdr > 0) {
            const j = lay.nHdr - 1;
            const s = lay.hdrStart[j];
            const e = Math.min(lay.hdrEnd[j], len);
            if (e > s) r.fill(b, s + ((e - s) >> 1), e - s - ((e - s) >> 1));
          }
          break;
        }
        const j = r.int(lay.nOpt);
        const s = lay.optStart[j];
        const e = Math.min(lay.optEnd[j], len);
        // Option-shaped garbage: kinds and lengths 0, 1, 2, 255 and random.
        for (let o = s; o < e; ) {
          b[o] = r.chance(0.5) ? r.byte() : r.pick([0, 1, 2, 3, 4, 5, 8, 254]);
          if (o + 1 < e) b[o + 1] = r.pick([0, 1, 2, 3, 255, r.byte(), e - o, e - o + 1]);
          o += 2 + r.int(6);
        }
        break;
      }
      case M_PAD: {
        const room = this.t.maxFrame - len;
        if (room > 0) {
          const n = r.range(1, room);
          r.fill(b, len, n);
          len += n;
        }
        break;
      }
      case M_PAYLOAD: {
        const s = lay.payStart;
        const e = Math.min(lay.payEnd, len);
        if (s < 0 || e <= s) {
          for (let i = r.range(1, 4); i > 0; i--) b[r.int(len)] ^= 1 << r.int(8);
          break;
        }
        const v = r.int(3);
        if (v === 0) r.fill(b, s, e - s);
        else if (v === 1) for (let i = r.range(1, 6); i > 0; i--) b[s + r.int(e - s)] = r.byte();
        else for (let i = r.range(1, 8); i > 0; i--) b[s + r.int(e - s)] ^= 1 << r.int(8);
        fixIp = true;
        break;
      }
    }
    // A sync message's size field follows its datagram unless the length itself was the mutation.
    if (lay.syncSize >= 0 && lay.syncSize + 2 <= len && r.chance(0.8)) {
      const m0 = lay.syncSize - 2;
      put16(b, lay.syncSize, Math.min(len, this.end) - m0);
    }
    if (fixL4)
      for (let i = 0; i < lay.nL4; i++) {
        const end = Math.min(lay.l4End[i], len);
        const field = l4CheckField(lay.l4Proto[i]);
        if (field < 0 || lay.l4Off[i] + field + 2 > end) continue;
        if (lay.l4Proto[i] === PROTO_GRE) {
          put16(b, lay.l4Off[i] + 4, 0);
          put16(b, lay.l4Off[i] + 4, finish(sum16(b, lay.l4Off[i], end - lay.l4Off[i])));
        } else
          l4Checksum(
            b,
            lay.l4Af[i] === 6 ? 6 : 4,
            lay.l4L3[i],
            lay.l4Off[i],
            end,
            lay.l4Proto[i],
            field,
            lay.l4Pseudo[i] === 1,
          );
      }
    if (fixIp)
      for (let i = lay.nIp4 - 1; i >= 0; i--) {
        const o = lay.ip4[i];
        if (o + 20 <= len) ipv4ChecksumWithin(b, o, len);
      }
    return len;
  }
}

/** The IPv4 header checksum at l3 over at most the frame's first len bytes. */
function ipv4ChecksumWithin(b: Uint8Array, l3: number, len: number): void {
  let hlen = (b[l3] & 15) << 2;
  if (hlen < 20) hlen = 20;
  if (l3 + hlen > len) hlen = len - l3;
  b[l3 + 10] = 0;
  b[l3 + 11] = 0;
  let s = 0;
  for (let i = 0; i + 1 < hlen; i += 2) s += (b[l3 + i] << 8) | b[l3 + i + 1];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  const c = ~s & 0xffff;
  b[l3 + 10] = c >>> 8;
  b[l3 + 11] = c;
}
