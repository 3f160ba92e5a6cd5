// The XDP program of the AF_XDP backend and the maps it reads. It runs on every frame the
// interface receives, before the kernel builds an skb (native mode) or right after (generic), and
// redirects to the AF_XDP socket of the frame's rx queue exactly the frames the nft guard
// (src/daemon/nft.ts) keeps from the kernel — the traffic tsvs owns — and passes everything else
// to the kernel (XDP_PASS), untouched:
//
//   ARP whose target is an owned address (VIP, LIP, VRRP MASTER address)     → socket
//   IPv4 to an owned address                                                 → socket
//   IPv4 to one of the director's own addresses (local4)                     → kernel
//   IPv4 from a NAT/FULLNAT real server, by saddr . proto . sport (nat4), or
//     saddr . proto . 0 for port-0 destinations and ICMP                     → socket
//   all other IPv4, when cfg says so (a fwmark rule on a network)            → socket
//   IPv6: the same with own6/local6/nat6, and a Neighbour Solicitation whose target is owned
//     (all IPv6 when cfg says so, except NDP, which stays the kernel's)
//   everything else (the host's own traffic, its ARP and NDP, tagged frames) → kernel
//
// So with XDP the program does for redirected traffic what the guard does for the packet-socket
// backends, one step earlier: the kernel never sees those frames (no RST, no second forward).
// ARP and NDP for the director's own addresses go to the kernel, which must answer them; the
// engine's copies of those (replies to its own requests, sent from the DIP) come through a small
// packet socket beside the XDP socket, since a redirect cannot clone (src/io/xdp.ts).
//
// The sets are hash maps updated in place when the guard changes: the program is loaded once.
// Keys hold addresses as they are on the wire (network order), so the program copies packet
// bytes into a stack key without swapping.

import type { GuardDest, GuardDest6 } from "../control/api.js";
import { parseIPv6 } from "../core/addr.js";
import {
  BPF_ADD,
  BPF_AND,
  BPF_B,
  BPF_H,
  BPF_JEQ,
  BPF_JGT,
  BPF_JNE,
  BPF_LSH,
  BPF_MAP_TYPE_ARRAY,
  BPF_MAP_TYPE_HASH,
  BPF_MAP_TYPE_XSKMAP,
  BPF_MOD,
  BPF_MUL,
  BPF_RSH,
  BPF_SUB,
  BPF_W,
  BPF_XOR,
  type BpfMap,
  createMap,
  EbpfAsm,
  FN_MAP_LOOKUP_ELEM,
  FN_REDIRECT_MAP,
  type Reg,
  XDP_MD_DATA,
  XDP_MD_DATA_END,
  XDP_MD_RX_QUEUE_INDEX,
  XDP_PASS,
} from "./ebpf.js";

/** The map fds a program is built against. */
export interface XdpProgramMaps {
  xsks: number;
  own4: number;
  local4: number;
  nat4: number;
  own6: number;
  local6: number;
  nat6: number;
  cfg: number;
}

/** cfg[0] bits. */
export const CFG_ALL_IPV4 = 1;
export const CFG_ALL_IPV6 = 2;

// Ethernet / IPv4 / IPv6 / ARP offsets from the frame's start
const ETH_TYPE = 12;
const ARP_TPA = 14 + 24;
const IP_VHL = 14;
const IP_FRAG = 14 + 6;
const IP_PROTO = 14 + 9;
const IP_SADDR = 14 + 12;
const IP_DADDR = 14 + 16;
const IP6_NEXTHDR = 14 + 6;
const IP6_SADDR = 14 + 8;
const IP6_DADDR = 14 + 24;
const IP6_L4 = 14 + 40;
const NS_TARGET = IP6_L4 + 8;
// EtherTypes as a little-endian u16 load of the two wire bytes reads them
const LE_IPV4 = 0x0008;
const LE_IPV6 = 0xdd86;
const LE_ARP = 0x0608;
/** The fragment offset bits of the IPv4 flags/offset field, as a little-endian u16 load sees them. */
const LE_FRAG_OFFSET = 0xff1f;

// stack slots (r10-relative): aligned for the widest store into them
const K4 = -4; // an IPv4 address
const KNAT4 = -16; // saddr(4) sport(2) proto(1) pad(1)
const K6 = -32; // an IPv6 address
const KNAT6 = -56; // saddr(16) sport(2) proto(1) pad(1)
const KCFG = -60;

const PROTOS_WITH_PORTS = [6, 17, 132];

/** How the program shares the frames out between several workers. */
export interface XdpWorkersOptions {
  /** Workers, each with a socket on every rx queue: the socket map's key is queue × workers + worker. */
  workers?: number;
  /**
   * Tests (BPF_PROG_TEST_RUN binds no socket): return base + the socket map key instead of
   * redirecting, so that the worker chosen shows in the verdict.
   */
  keyVerdictBase?: number;
}

/**
 * The program's bytecode. Registers: r6 the context, r7 data, r8 data_end (kept across helper
 * calls, which clobber r1–r5; the lookups do not move packet data, so r7/r8 stay valid).
 * noSocket: the verdict when the rx queue has no socket in the map (XDP_PASS; tests give another
 * value to tell "redirect" from "pass" in BPF_PROG_TEST_RUN, where no socket is bound).
 *
 * With several workers the program picks the worker as the packet sockets' fanout program does
 * (src/io/bpf.ts compileFanoutProgram, fanoutHash): a frame to a LIP goes to the LIP's owner (the
 * own4/own6 value, owner + 1), a frame from a NAT real server by its destination, every other one
 * by its source: the client's address, IPv6 folded to 32 bits, mixed and taken modulo the
 * workers. ARP and Neighbour Solicitations for owned addresses are then passed: every worker's
 * ARP/NDP packet socket sees them (each answers for the VIPs and its own LIPs), as with the fanout.
 */
export function buildXdpProgram(
  m: XdpProgramMaps,
  noSocket = XDP_PASS,
  w: XdpWorkersOptions = {},
): Uint8Array {
  const workers = w.workers ?? 1;
  const spread = workers > 1;
  // Where each kind of hit goes: one redirect with one worker, a choice of worker with several.
  const hitArp = spread ? "pass" : "redirect";
  const hitOwn4 = spread ? "own4" : "redirect";
  const hitOwn6 = spread ? "own6" : "redirect";
  const hitFromRs4 = spread ? "daddr4" : "redirect";
  const hitFromRs6 = spread ? "daddr6" : "redirect";
  const hitAll4 = spread ? "saddr4" : "redirect";
  const hitAll6 = spread ? "saddr6" : "redirect";
  const a = new EbpfAsm();
  const lookup = (fd: number, key: number, found: string): void => {
    a.ldMapFd(1, fd).movReg(2, 10).aluImm(BPF_ADD, 2, key).call(FN_MAP_LOOKUP_ELEM);
    a.jmpImm(BPF_JNE, 0, 0, found);
  };
  const need = (bytes: number, orElse: string): void => {
    a.movReg(2, 7).aluImm(BPF_ADD, 2, bytes).jmpReg(BPF_JGT, 2, 8, orElse);
  };
  const copy = (words: number, from: number, to: number): void => {
    for (let i = 0; i < words; i++) a.ldx(BPF_W, 2, 7, from + 4 * i).stx(BPF_W, 10, to + 4 * i, 2);
  };
  // Is cfg[0] & bit set? → label
  const cfgBit = (bit: number, label: string, skip: string): void => {
    a.st(BPF_W, 10, KCFG, 0);
    a.ldMapFd(1, m.cfg).movReg(2, 10).aluImm(BPF_ADD, 2, KCFG).call(FN_MAP_LOOKUP_ELEM);
    a.jmpImm(BPF_JEQ, 0, 0, skip);
    a.ldx(BPF_W, 2, 0, 0).aluImm(BPF_AND, 2, bit).jmpImm(BPF_JNE, 2, 0, label);
  };
  // bpf_redirect_map(xsks, r2, noSocket) and its verdict.
  const redirectR2 = (): void => {
    a.ldMapFd(1, m.xsks).movImm(3, noSocket).call(FN_REDIRECT_MAP).exit();
  };
  const protoWithPorts = (r: Reg, label: string): void => {
    for (const p of PROTOS_WITH_PORTS) a.jmpImm(BPF_JEQ, r, p, label);
  };

  a.movReg(6, 1);
  a.ldx(BPF_W, 7, 6, XDP_MD_DATA).ldx(BPF_W, 8, 6, XDP_MD_DATA_END);
  need(14, "pass");
  a.ldx(BPF_H, 2, 7, ETH_TYPE);
  a.jmpImm(BPF_JEQ, 2, LE_IPV4, "ip4").jmpImm(BPF_JEQ, 2, LE_IPV6, "ip6").jmpImm(BPF_JNE, 2, LE_ARP, "pass");

  // ARP about an owned address: the engine answers it.
  need(ARP_TPA + 4, "pass");
  a.ldx(BPF_W, 2, 7, ARP_TPA).stx(BPF_W, 10, K4, 2);
  lookup(m.own4, K4, hitArp);
  a.ja("pass");

  a.label("ip4");
  need(IP_DADDR + 4, "pass");
  a.ldx(BPF_W, 2, 7, IP_DADDR).stx(BPF_W, 10, K4, 2);
  lookup(m.own4, K4, hitOwn4);
  lookup(m.local4, K4, "pass");
  copy(1, IP_SADDR, KNAT4);
  a.st(BPF_H, 10, KNAT4 + 4, 0).st(BPF_B, 10, KNAT4 + 7, 0);
  a.ldx(BPF_B, 3, 7, IP_PROTO).stx(BPF_B, 10, KNAT4 + 6, 3);
  protoWithPorts(3, "ports4");
  a.ja("any4");
  a.label("ports4");
  // A later fragment has no ports: only the port-0 entries can match it.
  a.ldx(BPF_H, 2, 7, IP_FRAG).aluImm(BPF_AND, 2, LE_FRAG_OFFSET).jmpImm(BPF_JNE, 2, 0, "any4");
  a.ldx(BPF_B, 2, 7, IP_VHL).aluImm(BPF_AND, 2, 0xf).aluImm(BPF_LSH, 2, 2);
  a.movReg(3, 7).aluReg(BPF_ADD, 3, 2);
  a.movReg(4, 3)
    .aluImm(BPF_ADD, 4, 14 + 4)
    .jmpReg(BPF_JGT, 4, 8, "any4");
  a.ldx(BPF_H, 2, 3, 14).stx(BPF_H, 10, KNAT4 + 4, 2);
  lookup(m.nat4, KNAT4, hitFromRs4);
  a.st(BPF_H, 10, KNAT4 + 4, 0);
  a.label("any4");
  lookup(m.nat4, KNAT4, hitFromRs4);
  cfgBit(CFG_ALL_IPV4, hitAll4, "pass");
  a.ja("pass");

  a.label("ip6");
  need(IP6_L4, "pass");
  copy(4, IP6_DADDR, K6);
  lookup(m.own6, K6, hitOwn6);
  a.ldx(BPF_B, 3, 7, IP6_NEXTHDR).jmpImm(BPF_JNE, 3, 58, "local6");
  // A Neighbour Solicitation for an owned address (sent to its solicited-node group, not to it).
  need(NS_TARGET + 16, "local6");
  a.ldx(BPF_B, 2, 7, IP6_L4).jmpImm(BPF_JNE, 2, 135, "local6");
  copy(4, NS_TARGET, K6);
  lookup(m.own6, K6, hitArp);
  copy(4, IP6_DADDR, K6);
  a.label("local6");
  lookup(m.local6, K6, "pass");
  // NDP (router/neighbour solicitation and advertisement, redirect: types 133–137) stays with the
  // kernel: its neighbours are the kernel's. Before the NAT destinations, whose ICMPv6 entries
  // (saddr . 58 . 0) would otherwise take a real server's solicitations for its gateway, the
  // director's own address, and leave it unanswered.
  a.ldx(BPF_B, 3, 7, IP6_NEXTHDR).jmpImm(BPF_JNE, 3, 58, "nat6");
  need(IP6_L4 + 1, "pass");
  a.ldx(BPF_B, 2, 7, IP6_L4).aluImm(BPF_SUB, 2, 133).jmpImm(BPF_JGT, 2, 4, "nat6").ja("pass");
  a.label("nat6");
  copy(4, IP6_SADDR, KNAT6);
  a.st(BPF_H, 10, KNAT6 + 16, 0).st(BPF_B, 10, KNAT6 + 19, 0);
  a.ldx(BPF_B, 3, 7, IP6_NEXTHDR).stx(BPF_B, 10, KNAT6 + 18, 3);
  protoWithPorts(3, "ports6");
  a.ja("any6");
  a.label("ports6");
  need(IP6_L4 + 4, "any6");
  a.ldx(BPF_H, 2, 7, IP6_L4).stx(BPF_H, 10, KNAT6 + 16, 2);
  lookup(m.nat6, KNAT6, hitFromRs6);
  a.st(BPF_H, 10, KNAT6 + 16, 0);
  a.label("any6");
  lookup(m.nat6, KNAT6, hitFromRs6);
  cfgBit(CFG_ALL_IPV6, hitAll6, "pass");
  a.ja("pass");

  if (spread) {
    // r0 points at the own4/own6 value: a LIP's owner + 1, or 0 (a VIP: by the client).
    for (const [own, bySaddr] of [
      ["own4", "saddr4"],
      ["own6", "saddr6"],
    ] as const) {
      a.label(own);
      a.ldx(BPF_B, 2, 0, 0).jmpImm(BPF_JEQ, 2, 0, bySaddr);
      a.aluImm(BPF_SUB, 2, 1).ja("worker");
    }
    // The client's address in r2 as the fanout program reads it (a big-endian word; IPv6 the XOR
    // of its four, which commutes with the byte swap). Bounds: the IPv4 or IPv6 header was checked.
    a.label("saddr4");
    a.ldx(BPF_W, 2, 7, IP_SADDR).ja("mix");
    a.label("daddr4");
    a.ldx(BPF_W, 2, 7, IP_DADDR).ja("mix");
    for (const [label, at] of [
      ["saddr6", IP6_SADDR],
      ["daddr6", IP6_DADDR],
    ] as const) {
      a.label(label);
      a.ldx(BPF_W, 2, 7, at);
      for (let i = 1; i < 4; i++) a.ldx(BPF_W, 3, 7, at + 4 * i).aluReg(BPF_XOR, 2, 3);
      a.ja("mix");
    }
    // fanoutHash: x ^= x >> 16; x *= 0x45d9f3b; x ^= x >> 16 (u32), then modulo the workers.
    a.label("mix");
    a.toBe32(2);
    a.movReg(3, 2).alu32Imm(BPF_RSH, 3, 16).alu32Reg(BPF_XOR, 2, 3);
    a.alu32Imm(BPF_MUL, 2, 0x45d9f3b);
    a.movReg(3, 2).alu32Imm(BPF_RSH, 3, 16).alu32Reg(BPF_XOR, 2, 3);
    a.alu32Imm(BPF_MOD, 2, workers);
    // key = rx_queue_index × workers + worker
    a.label("worker");
    a.ldx(BPF_W, 3, 6, XDP_MD_RX_QUEUE_INDEX).alu32Imm(BPF_MUL, 3, workers).alu32Reg(BPF_ADD, 2, 3);
    if (w.keyVerdictBase !== undefined) a.movReg(0, 2).aluImm(BPF_ADD, 0, w.keyVerdictBase).exit();
    else redirectR2();
  }

  // bpf_redirect_map(xsks, rx_queue_index, XDP_PASS): the flags' low bits are the verdict when the
  // queue has no socket (Linux ≥ 5.3), so a frame is never lost for want of one. (The verifier
  // refuses unreachable code: with several workers nothing jumps here.)
  if (!spread) {
    a.label("redirect");
    a.ldx(BPF_W, 2, 6, XDP_MD_RX_QUEUE_INDEX);
    redirectR2();
  }
  a.label("pass");
  a.movImm(0, XDP_PASS).exit();
  return a.code();
}

/** What the program matches: the guard's inputs (control/api.ts Guard) and the host's addresses. */
export interface XdpSetsSpec {
  owned: readonly number[];
  locals: readonly number[];
  nat: readonly GuardDest[];
  owned6?: readonly string[];
  locals6?: readonly string[];
  nat6?: readonly GuardDest6[];
  /** Redirect all IPv4 (IPv6) not to a local address: a fwmark rule names a network. */
  allIpv4?: boolean;
  allIpv6?: boolean;
  /** Several workers: each LIP's owner (the frames to it go to that worker's socket). */
  lipOwners?: readonly { addr: number; worker: number }[];
  lipOwners6?: readonly { addr6: string; worker: number }[];
}

/** Most entries per set map (hash maps preallocate: ~100 bytes each). */
export const XDP_SET_MAX = 16384;

function ip4Key(a: number): Uint8Array {
  return Uint8Array.of(a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff);
}

function ip6Key(t: string): Uint8Array | null {
  return parseIPv6(t);
}

function natKeys(addr: Uint8Array, proto: number, port: number): Uint8Array[] {
  // As the guard: proto 0 stands for TCP and UDP; port 0 (PCC, fwmark) for any source port.
  const out: Uint8Array[] = [];
  for (const p of proto === 0 ? [6, 17] : [proto]) {
    const k = new Uint8Array(addr.length + 4);
    k.set(addr, 0);
    k[addr.length] = port >>> 8;
    k[addr.length + 1] = port & 0xff;
    k[addr.length + 2] = p;
    out.push(k);
  }
  return out;
}

const hex = (k: Uint8Array): string => Buffer.from(k).toString("hex");

/** A set map's entry: its key, and its one-byte value (1 in the plain sets; own4/own6: see update). */
type Entry = readonly [Uint8Array, number];

/** One set map and the entries we put in it (so an update writes only the difference). */
class KeySet {
  #have = new Map<string, Entry>();
  constructor(readonly map: BpfMap) {}
  set(entries: readonly Entry[]): void {
    const want = new Map(entries.map((e) => [hex(e[0]), e]));
    for (const [h, e] of want)
      if (this.#have.get(h)?.[1] !== e[1]) this.map.update(e[0], Uint8Array.of(e[1]));
    for (const [h, e] of this.#have) if (!want.has(h)) this.map.delete(e[0]);
    this.#have = want;
  }
}

/**
 * own4/own6's entries: the owned addresses with value 0, a LIP's with its owner + 1 (the program's
 * choice of worker); a LIP the guard does not list as owned is added (its replies are ours).
 */
function ownedEntries(
  keys: readonly Uint8Array[],
  owners: readonly (readonly [Uint8Array, number])[],
): Entry[] {
  const out = new Map<string, Entry>(keys.map((k) => [hex(k), [k, 0]]));
  for (const [k, w] of owners) out.set(hex(k), [k, w + 1]);
  return [...out.values()];
}

/**
 * The set maps, shared by the programs of every interface of a process (a map fd is the
 * process's: worker threads share it), and the per-interface socket maps.
 */
export class XdpSets {
  readonly own4: BpfMap;
  readonly local4: BpfMap;
  readonly nat4: BpfMap;
  readonly own6: BpfMap;
  readonly local6: BpfMap;
  readonly nat6: BpfMap;
  readonly cfg: BpfMap;
  readonly #sets: KeySet[];
  #cfg = -1;

  constructor() {
    const made: BpfMap[] = [];
    const mk = (k: number, name: string, type = BPF_MAP_TYPE_HASH, max = XDP_SET_MAX, v = 1): BpfMap => {
      const m = createMap(type, k, v, max, name);
      made.push(m);
      return m;
    };
    try {
      this.own4 = mk(4, "tsvs_own4");
      this.local4 = mk(4, "tsvs_local4");
      this.nat4 = mk(8, "tsvs_nat4");
      this.own6 = mk(16, "tsvs_own6");
      this.local6 = mk(16, "tsvs_local6");
      this.nat6 = mk(20, "tsvs_nat6");
      this.cfg = mk(4, "tsvs_cfg", BPF_MAP_TYPE_ARRAY, 1, 4);
    } catch (e) {
      for (const m of made) m.close();
      throw e;
    }
    this.#sets = [this.own4, this.local4, this.nat4, this.own6, this.local6, this.nat6].map(
      (m) => new KeySet(m),
    );
  }

  /** Brings the maps to `spec` (only the differences are written). Throws when a set is too big. */
  update(spec: XdpSetsSpec): void {
    const v6 = (l: readonly string[] | undefined): Uint8Array[] =>
      (l ?? []).map(ip6Key).filter((k): k is Uint8Array => k !== null);
    const nat4 = spec.nat.flatMap((d) => [
      ...natKeys(ip4Key(d.addr >>> 0), d.proto, d.port),
      // ICMP from the real server (errors about a connection) to a client: the engine's.
      ...natKeys(ip4Key(d.addr >>> 0), 1, 0),
    ]);
    const nat6 = (spec.nat6 ?? []).flatMap((d) => {
      const a = ip6Key(d.addr6);
      return a === null ? [] : [...natKeys(a, d.proto, d.port), ...natKeys(a, 58, 0)];
    });
    const plain = (l: Uint8Array[]): Entry[] => l.map((k) => [k, 1]);
    const owners6 = (spec.lipOwners6 ?? []).flatMap((o) => {
      const k = ip6Key(o.addr6);
      return k === null ? [] : [[k, o.worker] as const];
    });
    const lists = [
      ownedEntries(
        spec.owned.map((a) => ip4Key(a >>> 0)),
        (spec.lipOwners ?? []).map((o) => [ip4Key(o.addr >>> 0), o.worker] as const),
      ),
      plain(spec.locals.map((a) => ip4Key(a >>> 0))),
      plain(nat4),
      ownedEntries(v6(spec.owned6), owners6),
      plain(v6(spec.locals6)),
      plain(nat6),
    ];
    lists.forEach((l, i) => {
      if (new Set(l.map((e) => hex(e[0]))).size > XDP_SET_MAX)
        throw new RangeError(`XDP set ${this.#sets[i].map.fd} over ${XDP_SET_MAX} entries`);
    });
    lists.forEach((l, i) => {
      this.#sets[i].set(l);
    });
    const cfg = (spec.allIpv4 ? CFG_ALL_IPV4 : 0) | (spec.allIpv6 ? CFG_ALL_IPV6 : 0);
    if (cfg !== this.#cfg) {
      const v = new Uint8Array(4);
      new DataView(v.buffer).setUint32(0, cfg, true);
      this.cfg.update(new Uint8Array(4), v);
      this.#cfg = cfg;
    }
  }

  /**
   * The program for one interface, whose sockets are in `xsks` (an XSKMAP keyed by rx queue, or
   * by queue × workers + worker).
   */
  program(xsks: BpfMap, noSocket = XDP_PASS, w: XdpWorkersOptions = {}): Uint8Array {
    return buildXdpProgram(
      {
        xsks: xsks.fd,
        own4: this.own4.fd,
        local4: this.local4.fd,
        nat4: this.nat4.fd,
        own6: this.own6.fd,
        local6: this.local6.fd,
        nat6: this.nat6.fd,
        cfg: this.cfg.fd,
      },
      noSocket,
      w,
    );
  }

  close(): void {
    for (const m of [this.own4, this.local4, this.nat4, this.own6, this.local6, this.nat6, this.cfg])
      m.close();
  }
}

/** An XSKMAP for one interface's sockets, one slot per rx queue and worker. */
export function createXskMap(queues: number, workers = 1): BpfMap {
  return createMap(BPF_MAP_TYPE_XSKMAP, 4, 4, Math.max(1, queues * workers), "tsvs_xsks");
}
