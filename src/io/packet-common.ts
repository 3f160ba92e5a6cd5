// What both AF_PACKET link backends (PacketSocket, src/io/afpacket.ts; RingSocket, src/io/ring.ts)
// do alike outside the per-packet path: native memory regions, socket options, the interface's MAC
// and MTU, PROMISC and multicast memberships (the IPv6 VIPs' solicited-node groups), binding,
// PACKET_STATISTICS. All of it runs at open time or on demand
// (kernelStats), never per packet; and the checksum completion of a CHECKSUM_PARTIAL frame, for
// readers that do not parse the frame themselves.

import { parseIPv6, readU16, writeU16 } from "../core/addr.js";
import { l4ChecksumV4 } from "../core/packet/csum.js";
import type { PacketSocketCounters } from "./frame-io.js";
import {
  AF_PACKET,
  addressOf,
  ETH_P_ALL,
  IFNAMSIZ,
  libc,
  type NativePtr,
  PACKET_ADD_MEMBERSHIP,
  PACKET_MR_MULTICAST,
  PACKET_MR_PROMISC,
  PACKET_MR_UNICAST,
  PACKET_STATISTICS,
  POLLIN,
  SIOCGIFHWADDR,
  SIOCGIFMTU,
  SIZEOF_IFREQ,
  SIZEOF_PACKET_MREQ,
  SIZEOF_POLLFD,
  SIZEOF_SOCKADDR_LL,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOL_PACKET,
  SOL_SOCKET,
  SyscallError,
} from "./libc.js";

const ETH_ALEN = 6;
/** <linux/if_packet.h>: undoes PACKET_ADD_MEMBERSHIP. */
const PACKET_DROP_MEMBERSHIP = 2;

/** A block of koffi-managed native memory, zeroed, with its address and two views. */
export interface Region {
  ptr: NativePtr;
  addr: number;
  bytes: Uint8Array;
  dv: DataView;
}

export function alloc(size: number): Region {
  const k = libc().koffi;
  const ptr = k.alloc("uint8_t", size);
  const ab = k.view(ptr, size);
  const bytes = new Uint8Array(ab);
  bytes.fill(0);
  return { ptr, addr: addressOf(ptr), bytes, dv: new DataView(ab) };
}

/** Frees the regions that were allocated (a constructor may fail before it allocates them all). */
export function freeRegions(...regions: (Region | undefined)[]): void {
  const k = libc().koffi;
  for (const r of regions) if (r !== undefined) k.free(r.ptr);
}

/** A 64-bit little-endian pointer from a JS number (addresses stay below 2^53). */
export function setPtr(dv: DataView, off: number, value: number): void {
  dv.setUint32(off, value % 0x100000000, true);
  dv.setUint32(off + 4, Math.floor(value / 0x100000000), true);
}

/** Stores addr as [lo, hi] 32-bit halves at out[2i], out[2i+1] (see TxBatch.queueSlot). */
export function splitAddr(out: Uint32Array, i: number, addr: number): void {
  out[i * 2] = addr % 0x100000000;
  out[i * 2 + 1] = Math.floor(addr / 0x100000000);
}

export const htons = (v: number): number => ((v & 0xff) << 8) | ((v >>> 8) & 0xff);

export function newCounters(): PacketSocketCounters {
  return {
    rxFrames: 0,
    rxBytes: 0,
    rxTruncated: 0,
    txFrames: 0,
    txBytes: 0,
    txDropped: 0,
    txErrors: 0,
    lastTxErrno: 0,
    txOversize: 0,
    rxCsumPartial: 0,
    rxCsumCompleted: 0,
    rxVlanRestored: 0,
    rxOversize: 0,
    rxAggregates: 0,
    rxVnetErrors: 0,
    txAggregates: 0,
  };
}

export function checkIfname(ifname: string): void {
  if (Buffer.byteLength(ifname) >= IFNAMSIZ || ifname.length === 0) {
    throw new RangeError(`bad interface name ${JSON.stringify(ifname)}`);
  }
}

export function ifIndex(ifname: string): number {
  const c = libc();
  const ifindex = c.if_nametoindex(ifname);
  if (ifindex === 0) throw new SyscallError(`if_nametoindex(${ifname})`, c.errno());
  return ifindex;
}

/**
 * socket(AF_PACKET, SOCK_RAW) with protocol 0: it receives nothing until bindAll() names ETH_P_ALL
 * and the interface, so no frame of another interface slips into the queue in between (af_packet.c
 * registers the protocol hook only when proto != 0).
 */
export function packetSocketFd(what = "socket(AF_PACKET, SOCK_RAW)"): number {
  const c = libc();
  const fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new SyscallError(what, c.errno());
  return fd;
}

/**
 * setsockopt with an int value: true when it took; a failure throws only when required, naming the
 * call `what` (default: the numeric level and name).
 */
export function setIntOpt(
  fd: number,
  level: number,
  name: number,
  value: number,
  required: boolean,
  what = `setsockopt(${level}, ${name})`,
): boolean {
  const c = libc();
  const v = Buffer.alloc(4);
  v.writeInt32LE(value, 0);
  if (c.setsockopt(fd, level, name, v, 4) === 0) return true;
  if (required) throw new SyscallError(what, c.errno());
  return false;
}

/** SO_*BUFFORCE (root: past net.core.*mem_max), else the plain option; size 0 keeps the default. */
export function setBufSize(fd: number, force: number, plain: number, size: number): void {
  if (size > 0 && !setIntOpt(fd, SOL_SOCKET, force, size, false)) {
    setIntOpt(fd, SOL_SOCKET, plain, size, false);
  }
}

/** The interface's MAC address and MTU (SIOCGIFHWADDR, SIOCGIFMTU). */
export function ifHwInfo(fd: number, ifname: string): { mac: Uint8Array; mtu: number } {
  const c = libc();
  const ifr = Buffer.alloc(SIZEOF_IFREQ);
  ifr.write(ifname, 0, "utf8");
  if (c.ioctlPtr(fd, SIOCGIFHWADDR, ifr) < 0) throw new SyscallError("ioctl(SIOCGIFHWADDR)", c.errno());
  // ifr_hwaddr is a struct sockaddr at offset 16: sa_family (2 bytes), then the address.
  const mac = Uint8Array.from(ifr.subarray(18, 18 + ETH_ALEN));
  ifr.fill(0, IFNAMSIZ);
  if (c.ioctlPtr(fd, SIOCGIFMTU, ifr) < 0) throw new SyscallError("ioctl(SIOCGIFMTU)", c.errno());
  return { mac, mtu: ifr.readInt32LE(IFNAMSIZ) };
}

/** PACKET_MR_PROMISC membership: dropped by the kernel with the socket. */
export function addPromisc(fd: number, ifindex: number): void {
  const c = libc();
  const mreq = Buffer.alloc(SIZEOF_PACKET_MREQ);
  mreq.writeInt32LE(ifindex, 0);
  mreq.writeUInt16LE(PACKET_MR_PROMISC, 4);
  if (c.setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq, SIZEOF_PACKET_MREQ) < 0) {
    throw new SyscallError("setsockopt(PACKET_ADD_MEMBERSHIP, PROMISC)", c.errno());
  }
}

/**
 * A link-layer address membership, dropped with the socket: PACKET_MR_MULTICAST for a group
 * (e.g. 01:00:5e:00:00:12 for VRRP's 224.0.0.18: a NIC that filters multicast then passes it up),
 * PACKET_MR_UNICAST for a second unicast MAC (dev_uc_add: VRRP's virtual MAC).
 */
export function addLinkMembership(
  fd: number,
  ifindex: number,
  type: "multicast" | "unicast",
  mac: Uint8Array,
): void {
  linkMembership(fd, ifindex, type, mac, PACKET_ADD_MEMBERSHIP, "ADD");
}

/** Drops one addLinkMembership (the kernel counts them per socket: packet_mc_drop). */
export function dropLinkMembership(
  fd: number,
  ifindex: number,
  type: "multicast" | "unicast",
  mac: Uint8Array,
): void {
  linkMembership(fd, ifindex, type, mac, PACKET_DROP_MEMBERSHIP, "DROP");
}

function linkMembership(
  fd: number,
  ifindex: number,
  type: "multicast" | "unicast",
  mac: Uint8Array,
  opt: number,
  what: string,
): void {
  const c = libc();
  const mreq = Buffer.alloc(SIZEOF_PACKET_MREQ);
  mreq.writeInt32LE(ifindex, 0);
  mreq.writeUInt16LE(type === "multicast" ? PACKET_MR_MULTICAST : PACKET_MR_UNICAST, 4);
  mreq.writeUInt16LE(mac.length, 6);
  mreq.set(mac, 8);
  if (c.setsockopt(fd, SOL_PACKET, opt, mreq, SIZEOF_PACKET_MREQ) < 0) {
    throw new SyscallError(`setsockopt(PACKET_${what}_MEMBERSHIP, ${type})`, c.errno());
  }
}

/**
 * The multicast memberships a packet socket needs to hear the NSs for IPv6 addresses it answers
 * for (VIPs): each address's solicited-node group ff02::1:ffXX:XXXX (RFC 4291 §2.7.1), whose MAC
 * is 33:33:ff:XX:XX:XX (RFC 2464 §7). The kernel joins those groups for its own addresses only; a
 * NIC that filters multicast would drop the others. Addresses sharing their low 24 bits share a
 * group: one membership each.
 */
export class SolicitedNodeMemberships {
  /** Group MACs joined, as "33:33:ff:xx:xx:xx". */
  private readonly joined = new Set<string>();

  constructor(
    private readonly fd: number,
    private readonly ifindex: number,
  ) {}

  /** Joins the groups of `addrs` (IPv6 text; others are ignored) not joined yet, leaves the rest. */
  set(addrs: readonly string[]): { joined: number; left: number } {
    const want = new Map<string, Uint8Array>();
    for (const a of addrs) {
      const m = solicitedNodeMac(a);
      if (m !== null) want.set(macKey(m), m);
    }
    let joined = 0;
    let left = 0;
    for (const [k, m] of want)
      if (!this.joined.has(k)) {
        addLinkMembership(this.fd, this.ifindex, "multicast", m);
        this.joined.add(k);
        joined++;
      }
    for (const k of [...this.joined])
      if (!want.has(k)) {
        dropLinkMembership(
          this.fd,
          this.ifindex,
          "multicast",
          Uint8Array.from(k.split(":"), (x) => Number.parseInt(x, 16)),
        );
        this.joined.delete(k);
        left++;
      }
    return { joined, left };
  }

  get groups(): string[] {
    return [...this.joined];
  }
}

/** 33:33:ff and the address's low 24 bits; null when the text is not an IPv6 address. */
export function solicitedNodeMac(addr: string): Uint8Array | null {
  const b = parseIPv6(addr);
  return b === null ? null : Uint8Array.from([0x33, 0x33, 0xff, b[13], b[14], b[15]]);
}

const macKey = (m: Uint8Array): string => [...m].map((x) => x.toString(16).padStart(2, "0")).join(":");

/** bind() to ETH_P_ALL on the interface: from here on frames are queued. */
export function bindAll(fd: number, ifindex: number, ifname: string): void {
  bindIf(fd, ifindex, ifname, ETH_P_ALL);
}

/** bind() to the interface for `protocol` (host order); 0 registers no receive hook (tx only). */
export function bindIf(fd: number, ifindex: number, ifname: string, protocol: number): void {
  const c = libc();
  const sll = Buffer.alloc(SIZEOF_SOCKADDR_LL);
  sll.writeUInt16LE(AF_PACKET, 0);
  sll.writeUInt16LE(htons(protocol), 2);
  sll.writeInt32LE(ifindex, 4);
  if (c.bind(fd, sll, SIZEOF_SOCKADDR_LL) < 0) throw new SyscallError(`bind(${ifname})`, c.errno());
}

/** A struct pollfd waiting for POLLIN on fd. */
export function pollIn(fd: number): Region {
  const r = alloc(SIZEOF_POLLFD);
  r.dv.setInt32(0, fd, true);
  r.dv.setInt16(4, POLLIN, true);
  return r;
}

/**
 * PACKET_STATISTICS since the last call (reading resets them). size: 8 for struct tpacket_stats,
 * 12 for tpacket_stats_v3 (TPACKET_V3 sockets); both start with tp_packets, tp_drops.
 */
export function readKernelStats(fd: number, size: number): { packets: number; drops: number } {
  const c = libc();
  const val = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size, 0);
  if (c.getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, val, len) < 0) {
    throw new SyscallError("getsockopt(PACKET_STATISTICS)", c.errno());
  }
  return { packets: val.readUInt32LE(0), drops: val.readUInt32LE(4) };
}

const VLAN_HLEN = 4;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
const ETH_P_IP = 0x0800;

/**
 * Completes, in place, the TCP or UDP checksum of an IPv4 frame received CHECKSUM_PARTIAL: the field
 * then holds only the pseudo-header sum that the transmitting device was to finish, so the checksum
 * is computed from scratch over pseudo-header + segment (IP total length, not the frame length:
 * Ethernet padding is not part of the segment). Up to two 802.1Q/802.1ad tags may precede the IP
 * header. Returns false, frame untouched, for anything else (IPv6, other protocols, fragments, a
 * header or total length that does not fit in len): such frames are passed on as they came.
 */
export function completeL4Checksum(f: Uint8Array, len: number): boolean {
  if (len > f.length) return false;
  let off = 12;
  if (off + 2 > len) return false;
  let type = readU16(f, off);
  for (let k = 0; k < 2 && isVlanType(type); k++) {
    off += VLAN_HLEN;
    if (off + 2 > len) return false;
    type = readU16(f, off);
  }
  if (type !== ETH_P_IP) return false;
  const l3 = off + 2;
  if (l3 + 20 > len || f[l3] >>> 4 !== 4) return false;
  const ihl = (f[l3] & 15) << 2;
  const tot = readU16(f, l3 + 2);
  if (ihl < 20 || tot < ihl || l3 + tot > len) return false;
  // MF set or a non-zero offset: a fragment never carries a partial checksum (ip_fragment
  // finishes it before it splits), and its L4 header may not be here.
  if ((readU16(f, l3 + 6) & 0x3fff) !== 0) return false;
  const proto = f[l3 + 9];
  const l4 = l3 + ihl;
  const l4Len = tot - ihl;
  let field: number;
  if (proto === 6 /* TCP */) {
    if (l4Len < 20) return false;
    field = 16;
  } else if (proto === 17 /* UDP */) {
    if (l4Len < 8) return false;
    field = 6;
  } else return false;
  writeU16(f, l4 + field, l4ChecksumV4(f, l3, l4, l4Len, proto));
  return true;
}

function isVlanType(t: number): boolean {
  return t === ETH_P_8021Q || t === ETH_P_8021AD;
}

/** 802.1Q/802.1ad tags at the start of the frame (0, 1 or 2: QinQ). */
export function tagCount(f: Uint8Array, len: number): number {
  if (len < 18 || !isVlanType(readU16(f, 12))) return 0;
  return len >= 22 && isVlanType(readU16(f, 16)) ? 2 : 1;
}
