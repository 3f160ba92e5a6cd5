// Classic BPF for the packet sockets: a socket filter (SO_ATTACH_FILTER) compiled from the addresses
// the engine owns (IPv4 and IPv6), so the kernel drops frames the director has no business with
// before they are queued for user space; and a fanout program (PACKET_FANOUT_CBPF) that sends both directions of a
// NAT connection to the same worker. Instruction set: Documentation/networking/filter.rst. Socket
// filters run on the frame from its Ethernet header (af_packet.c run_filter), with a stripped VLAN
// tag out of the data (so offsets are the untagged ones).

import { ipv6Fold, ipv6TextWords } from "../core/addr.js";
import {
  libc,
  PACKET_FANOUT,
  PACKET_FANOUT_CBPF,
  PACKET_FANOUT_DATA,
  SO_ATTACH_FILTER,
  SOL_PACKET,
  SOL_SOCKET,
  SyscallError,
} from "./libc.js";

/** struct sock_filter[]: 8 bytes each (u16 code, u8 jt, u8 jf, u32 k), in host byte order. */
export type BpfProgram = Uint8Array;

// opcodes (<linux/filter.h>)
const LD_W_ABS = 0x20;
const LD_H_ABS = 0x28;
const LD_B_ABS = 0x30;
const JEQ_K = 0x15;
const JA = 0x05;
const RET_K = 0x06;
const RET_A = 0x16;
const ALU_RSH_K = 0x74;
const ALU_MUL_K = 0x24;
const ALU_XOR_X = 0xac;
const TAX = 0x07;
/** BPF_MAXINSNS */
export const BPF_MAX_INSNS = 4096;

const ETH_P_IP = 0x0800;
const ETH_P_ARP = 0x0806;
const ETH_P_IPV6 = 0x86dd;
const OFF_TYPE = 12;
// An IPv6 header after the Ethernet header; the ICMPv6 type, and an NS's target, right after it
// (NDP with extension headers does not occur: RFC 6980 forbids fragments, and nothing else goes there).
const OFF_IP6_NEXTHDR = 14 + 6;
const OFF_IP6_SADDR = 14 + 8;
const OFF_IP6_DADDR = 14 + 24;
const OFF_ICMP6_TYPE = 14 + 40;
const OFF_NS_TARGET = 14 + 40 + 8;
const NEXTHDR_ICMPV6 = 58;
const NDISC_NEIGHBOUR_SOLICITATION = 135;
const NDISC_NEIGHBOUR_ADVERTISEMENT = 136;
/** Instructions per IPv6 address in a set (acceptIfEq6). */
const IP6_MATCH_INSNS = 9;
const OFF_ARP_TPA = 14 + 24;
const OFF_IP_PROTO = 14 + 9;
const OFF_IP_SADDR = 14 + 12;
const OFF_IP_DADDR = 14 + 16;
const NET_SADDR = 12;
const NET_DADDR = 16;
const NET6_NEXTHDR = 6;
const NET6_SADDR = 8;
const NET6_DADDR = 24;
const NET6_ICMP_TYPE = 40;
/** Router solicitation .. redirect: the NDP types (RFC 4861), all for the director itself. */
const NDISC_TYPES = [133, 134, 135, 136, 137];
const SKF_AD_OFF = -0x1000;
const SKF_AD_PROTOCOL = 0;

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

class Asm {
  readonly insns: Insn[] = [];
  emit(code: number, k = 0, jt = 0, jf = 0): number {
    this.insns.push({ code, jt, jf, k: k >>> 0 });
    return this.insns.length - 1;
  }
  /** A forward jump to be patched: ja with a 32-bit offset. */
  patchJa(at: number): void {
    this.insns[at].k = this.insns.length - at - 1;
  }
  /** "if A == v return ret": two instructions, short jumps only (no 255-instruction limit). */
  acceptIfEq(v: number, ret: number, retA = false): void {
    this.emit(JEQ_K, v, 0, 1);
    this.emit(retA ? RET_A : RET_K, ret);
  }
  /**
   * "if the 16 bytes at off are w, return ret": IP6_MATCH_INSNS instructions, the last word (the
   * one that differs most between neighbouring addresses) first.
   */
  acceptIfEq6(off: number, w: Int32Array, ret: number): void {
    const order = [3, 0, 1, 2];
    for (let i = 0; i < 4; i++) {
      const k = order[i];
      this.emit(LD_W_ABS, off + 4 * k);
      this.emit(JEQ_K, w[k], 0, 7 - 2 * i);
    }
    this.emit(RET_K, ret);
  }
  /** "if the 16 bytes at off are w, jump": as acceptIfEq6, returning the ja to patch. */
  jumpIfEq6(off: number, w: Int32Array): number {
    const order = [3, 0, 1, 2];
    for (let i = 0; i < 4; i++) {
      const k = order[i];
      this.emit(LD_W_ABS, off + 4 * k);
      this.emit(JEQ_K, w[k], 0, 7 - 2 * i);
    }
    return this.emit(JA);
  }
  /** A = w0 ^ w1 ^ w2 ^ w3 of the 16 bytes at off (ipv6Fold), clobbering X. */
  fold6(off: number): void {
    this.emit(LD_W_ABS, off);
    for (let k = 1; k < 4; k++) {
      this.emit(TAX);
      this.emit(LD_W_ABS, off + 4 * k);
      this.emit(ALU_XOR_X);
    }
  }
  encode(): BpfProgram {
    const out = new Uint8Array(this.insns.length * 8);
    const dv = new DataView(out.buffer);
    this.insns.forEach((x, i) => {
      dv.setUint16(i * 8, x.code, true);
      out[i * 8 + 2] = x.jt;
      out[i * 8 + 3] = x.jf;
      dv.setUint32(i * 8 + 4, x.k, true);
    });
    return out;
  }
}

export interface OwnedFilterSpec {
  /** VIPs and LIPs: IPv4 to them is ours, and ARP asking for them. */
  owned: readonly number[];
  /** The director's interface addresses: ARP replies to its own neighbour requests target them. */
  locals: readonly number[];
  /** NAT/FULLNAT real servers: IPv4 from them is (possibly) a reply to rewrite. */
  rips: readonly number[];
  /** Accept every IPv4 frame (a fwmark rule matches a network: its addresses are not listed). */
  allIpv4?: boolean;
  /** Accept ARP and NDP (false for the fanout sockets of a multi-worker daemon, which read them elsewhere). */
  arp?: boolean;
  /** Accept every ARP frame and every NS/NA, whatever their target (the neighbour sockets of a multi-worker daemon). */
  allArp?: boolean;
  /** Accept IP at all (false: a socket for ARP and NS/NA only). Default true. */
  ipv4?: boolean;
  /** IPv6 VIPs (text): IPv6 to them is ours, and NSs asking for them. */
  owned6?: readonly string[];
  /** The interfaces' IPv6 addresses (text): NSs for them teach tsvs its neighbours. */
  locals6?: readonly string[];
  /** NAT/FULLNAT real servers with IPv6 addresses (text): IPv6 from them is (possibly) a reply. */
  rips6?: readonly string[];
  /** Accept every IPv6 frame (a -6 fwmark rule on a network). */
  allIpv6?: boolean;
  /** Bytes of an accepted frame to keep (the filter's return value). */
  snaplen: number;
}

/**
 * The receive filter. IPv4: ARP whose target is owned or local, IPv4 to an owned address, from a
 * real server, or ICMP (errors about connections, echo to VIPs). IPv6: an NS whose target is owned
 * or local, every NA (the answers to tsvs's solicitations, and neighbours announcing a new MAC),
 * every other ICMPv6, IPv6 to an owned address or from a real server. Everything else is dropped in
 * the kernel. Sets are linear `jeq` chains (2 instructions per IPv4 address, 9 per IPv6 one); when
 * they would not fit in BPF_MAXINSNS the program accepts all IPv6, then all NSs, then all IPv4,
 * then all ARP instead (correct, only less selective).
 */
export function compileOwnedFilter(spec: OwnedFilterSpec): BpfProgram {
  const arpSet = [...new Set([...spec.owned, ...spec.locals].map((a) => a >>> 0))];
  const owned = [...new Set(spec.owned.map((a) => a >>> 0))];
  const rips = [...new Set(spec.rips.map((a) => a >>> 0))];
  const owned6 = words6([...(spec.owned6 ?? [])]);
  const rips6 = words6([...(spec.rips6 ?? [])]);
  const ndSet = words6([...(spec.owned6 ?? []), ...(spec.locals6 ?? [])]);
  const arp = spec.arp ?? true;
  const ip = spec.ipv4 !== false;
  const budget = BPF_MAX_INSNS - 32;
  const arpCost = arp ? 2 * arpSet.length : 0;
  const ndCost = arp ? IP6_MATCH_INSNS * ndSet.length : 0;
  const v4Cost = 2 * (owned.length + rips.length);
  const v6Cost = IP6_MATCH_INSNS * (owned6.length + rips6.length);
  // What does not fit is accepted whole, in this order: IPv6, NSs, IPv4, ARP.
  let cost = arpCost + ndCost + v4Cost + v6Cost;
  const allIpv6 = spec.allIpv6 === true || cost > budget;
  if (allIpv6) cost -= v6Cost;
  const allNd = spec.allArp === true || cost > budget;
  if (allNd) cost -= ndCost;
  const allIpv4 = spec.allIpv4 === true || cost > budget;
  if (allIpv4) cost -= v4Cost;
  const allArp = spec.allArp === true || cost > budget;
  const a = new Asm();
  const snap = spec.snaplen;
  a.emit(LD_H_ABS, OFF_TYPE);
  a.emit(JEQ_K, ETH_P_IP, 0, 1);
  const toIp = a.emit(JA);
  a.emit(JEQ_K, ETH_P_IPV6, 0, 1);
  const toIp6 = a.emit(JA);
  if (arp) {
    a.emit(JEQ_K, ETH_P_ARP, 1, 0);
    a.emit(RET_K, 0);
    if (allArp) a.emit(RET_K, snap);
    else {
      a.emit(LD_W_ABS, OFF_ARP_TPA);
      for (const x of arpSet) a.acceptIfEq(x, snap);
    }
  }
  a.emit(RET_K, 0);

  a.patchJa(toIp);
  if (!ip) a.emit(RET_K, 0);
  else if (allIpv4) a.emit(RET_K, snap);
  else {
    a.emit(LD_B_ABS, OFF_IP_PROTO);
    a.acceptIfEq(1 /* ICMP */, snap);
    a.emit(LD_W_ABS, OFF_IP_DADDR);
    for (const x of owned) a.acceptIfEq(x, snap);
    a.emit(LD_W_ABS, OFF_IP_SADDR);
    for (const x of rips) a.acceptIfEq(x, snap);
    a.emit(RET_K, 0);
  }

  a.patchJa(toIp6);
  a.emit(LD_B_ABS, OFF_IP6_NEXTHDR);
  a.emit(JEQ_K, NEXTHDR_ICMPV6, 0, 1);
  const toIcmp6 = a.emit(JA);
  // Not ICMPv6: to a VIP, or from a real server.
  if (!ip) a.emit(RET_K, 0);
  else if (allIpv6) a.emit(RET_K, snap);
  else {
    for (const w of owned6) a.acceptIfEq6(OFF_IP6_DADDR, w, snap);
    for (const w of rips6) a.acceptIfEq6(OFF_IP6_SADDR, w, snap);
    a.emit(RET_K, 0);
  }
  a.patchJa(toIcmp6);
  a.emit(LD_B_ABS, OFF_ICMP6_TYPE);
  a.emit(JEQ_K, NDISC_NEIGHBOUR_ADVERTISEMENT, 0, 1);
  a.emit(RET_K, arp ? snap : 0);
  a.emit(JEQ_K, NDISC_NEIGHBOUR_SOLICITATION, 1, 0);
  a.emit(RET_K, ip ? snap : 0);
  if (!arp) a.emit(RET_K, 0);
  else if (allNd) a.emit(RET_K, snap);
  else {
    for (const w of ndSet) a.acceptIfEq6(OFF_NS_TARGET, w, snap);
    a.emit(RET_K, 0);
  }
  return a.encode();
}

/** Distinct IPv6 addresses (text) in the four-word form; what is not one is left out. */
function words6(addrs: string[]): Int32Array[] {
  const seen = new Set<string>();
  const out: Int32Array[] = [];
  for (const t of addrs) {
    const w = ipv6TextWords(t);
    if (w === null || seen.has(w.join())) continue;
    seen.add(w.join());
    out.push(w);
  }
  return out;
}

/**
 * The filter of a control-plane socket that wants one IPv4 protocol only (VRRP, 112), and ARP
 * when asked: everything else stays in the kernel.
 */
export function compileIpProtoFilter(proto: number, snaplen = 0x10000, arp = false): BpfProgram {
  const a = new Asm();
  a.emit(LD_H_ABS, OFF_TYPE);
  // With `arp`, ARP passes too (a unicast VRRP peer's MAC is learnt from its replies).
  if (arp) a.acceptIfEq(ETH_P_ARP, snaplen);
  a.emit(JEQ_K, ETH_P_IP, 0, 3);
  a.emit(LD_B_ABS, OFF_IP_PROTO);
  a.emit(JEQ_K, proto, 0, 1);
  a.emit(RET_K, snaplen);
  a.emit(RET_K, 0);
  return a.encode();
}

export interface FanoutSpec {
  /** FULLNAT local addresses and the worker that owns each (replies to a LIP go to its owner). */
  lips: readonly { addr: number; worker: number }[];
  /** NAT/FULLNAT real servers: a frame from one is a reply, keyed on its destination (the client). */
  rips: readonly number[];
  /** IPv6 NAT/FULLNAT real servers (text), as `rips`. */
  rips6?: readonly string[];
  /** IPv6 FULLNAT local addresses (text) and their owners, as `lips`. */
  lips6?: readonly { addr6: string; worker: number }[];
}

/**
 * The fanout program: returns a worker index (the kernel takes it modulo the group size,
 * af_packet.c fanout_demux_bpf). Key = the client address: the source of a request, the
 * destination of a NAT reply (source ∈ rips) — the one address both directions share — mixed by a
 * multiplicative hash; for IPv6, the fold of its four words (ipv6Fold) mixed the same way. A frame
 * to a LIP, IPv4 or IPv6 (a FULLNAT reply), goes to the worker owning that LIP, which is the
 * worker that chose it. NDP goes to worker 0, as does every other frame, and all of IPv6 when its
 * sets would not fit in BPF_MAXINSNS.
 */
export function compileFanoutProgram(spec: FanoutSpec): BpfProgram {
  const p = fanoutProgram(spec, true);
  return p.length / 8 <= BPF_MAX_INSNS ? p : fanoutProgram(spec, false);
}

/**
 * Whether the program compiled from spec spreads IPv6 (false: every IPv6 frame goes to worker 0);
 * a synced IPv6 entry is installed where its packets will arrive.
 */
export function fanoutSpreadsIpv6(spec: FanoutSpec): boolean {
  return fanoutProgram(spec, true).length / 8 <= BPF_MAX_INSNS;
}

function fanoutProgram(spec: FanoutSpec, spread6: boolean): BpfProgram {
  // A fanout program runs before the packet socket pushes the link header back
  // (af_packet.c packet_rcv_fanout → fanout_demux_bpf): offsets are from the IP header, and the
  // ethertype comes from the skb (ancillary load SKF_AD_PROTOCOL, host order).
  const a = new Asm();
  const toMix: number[] = [];
  a.emit(LD_H_ABS, SKF_AD_OFF + SKF_AD_PROTOCOL);
  a.emit(JEQ_K, ETH_P_IP, 1, 0);
  const toIp6 = a.emit(JA);
  a.emit(LD_W_ABS, NET_DADDR);
  for (const l of spec.lips) a.acceptIfEq(l.addr >>> 0, l.worker);
  a.emit(LD_W_ABS, NET_SADDR);
  const reply: number[] = [];
  for (const r of new Set(spec.rips.map((x) => x >>> 0))) {
    a.emit(JEQ_K, r, 0, 1);
    reply.push(a.emit(JA));
  }
  toMix.push(a.emit(JA)); // request: A = saddr already
  for (const j of reply) a.patchJa(j);
  a.emit(LD_W_ABS, NET_DADDR);
  toMix.push(a.emit(JA));

  a.patchJa(toIp6);
  a.emit(JEQ_K, ETH_P_IPV6, 1, 0);
  a.emit(RET_K, 0);
  if (!spread6) a.emit(RET_K, 0);
  else {
    // NDP is the director's own business, read by the neighbour sockets: worker 0, as before.
    a.emit(LD_B_ABS, NET6_NEXTHDR);
    a.emit(JEQ_K, NEXTHDR_ICMPV6, 0, NDISC_TYPES.length + 3);
    a.emit(LD_B_ABS, NET6_ICMP_TYPE);
    for (let i = 0; i < NDISC_TYPES.length; i++) a.emit(JEQ_K, NDISC_TYPES[i], NDISC_TYPES.length - i, 0);
    a.emit(JA, 1);
    a.emit(RET_K, 0);
    for (const l of spec.lips6 ?? []) {
      const w = ipv6TextWords(l.addr6);
      if (w !== null) a.acceptIfEq6(NET6_DADDR, w, l.worker);
    }
    const reply6 = words6([...(spec.rips6 ?? [])]).map((w) => a.jumpIfEq6(NET6_SADDR, w));
    a.fold6(NET6_SADDR);
    toMix.push(a.emit(JA));
    for (const j of reply6) a.patchJa(j);
    a.fold6(NET6_DADDR);
  }

  for (const j of toMix) a.patchJa(j);
  // A ^= A >> 16; A *= 0x45d9f3b; A ^= A >> 16 (a 32-bit integer mix: consecutive client
  // addresses spread over the workers).
  a.emit(TAX);
  a.emit(ALU_RSH_K, 16);
  a.emit(ALU_XOR_X);
  a.emit(ALU_MUL_K, 0x45d9f3b);
  a.emit(TAX);
  a.emit(ALU_RSH_K, 16);
  a.emit(ALU_XOR_X);
  a.emit(RET_A);
  return a.encode();
}

/** The same hash in JS (tests, and to tell which worker a client lands on). */
export function fanoutHash(addr: number): number {
  let x = addr >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x45d9f3b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** fanoutHash of an IPv6 client, its four words (addr.ts ipv6ToWords) folded as the program does. */
export function fanoutHash6(w: Int32Array, off = 0): number {
  return fanoutHash(ipv6Fold(w, off));
}

/** A struct sock_fprog { u16 len; struct sock_filter *filter; } pointing at a copy of prog. */
function withFprog<T>(prog: BpfProgram, f: (fprog: Buffer) => T): T {
  const k = libc().koffi;
  const n = prog.length / 8;
  if (n < 1 || n > BPF_MAX_INSNS || prog.length % 8 !== 0)
    throw new RangeError(`bad BPF program (${n} insns)`);
  const mem = k.alloc("uint8_t", prog.length);
  try {
    new Uint8Array(k.view(mem, prog.length)).set(prog);
    const fprog = Buffer.alloc(16);
    fprog.writeUInt16LE(n, 0);
    fprog.writeBigUInt64LE(k.address(mem), 8);
    return f(fprog);
  } finally {
    k.free(mem);
  }
}

/** SO_ATTACH_FILTER (replaces any filter the socket had, atomically). */
export function attachFilter(fd: number, prog: BpfProgram): void {
  const c = libc();
  withFprog(prog, (fprog) => {
    if (c.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog, 16) < 0) {
      throw new SyscallError("setsockopt(SO_ATTACH_FILTER)", c.errno());
    }
  });
}

/**
 * Joins (or creates) fanout group `group` (16 bits, per network namespace) in `mode`; with
 * PACKET_FANOUT_CBPF, `prog` becomes the group's program (PACKET_FANOUT_DATA). The socket must be
 * bound. Members are indexed in join order: join them in worker order.
 */
export function joinFanout(fd: number, group: number, mode: number, prog?: BpfProgram): void {
  const c = libc();
  const v = Buffer.alloc(4);
  v.writeUInt32LE(((group & 0xffff) | (mode << 16)) >>> 0, 0);
  if (c.setsockopt(fd, SOL_PACKET, PACKET_FANOUT, v, 4) < 0) {
    throw new SyscallError("setsockopt(PACKET_FANOUT)", c.errno());
  }
  if (mode === PACKET_FANOUT_CBPF && prog !== undefined) setFanoutProgram(fd, prog);
}

/** Replaces the fanout group's cBPF program (any member may do it; it applies to the group). */
export function setFanoutProgram(fd: number, prog: BpfProgram): void {
  const c = libc();
  withFprog(prog, (fprog) => {
    if (c.setsockopt(fd, SOL_PACKET, PACKET_FANOUT_DATA, fprog, 16) < 0) {
      throw new SyscallError("setsockopt(PACKET_FANOUT_DATA)", c.errno());
    }
  });
}
