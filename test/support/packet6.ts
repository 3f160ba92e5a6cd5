// IPv6 test packets, laid out byte by byte independently of the product's codecs
// (src/core/packet/ipv6.ts, icmpv6.ts, csum.ts): addresses expanded here, every checksum computed
// from scratch over the final bytes with the RFC 8200 §8.1 pseudo-header, so that a codec bug
// cannot cancel itself out in a test. The IPv4 half is packet-builder.ts.

import {
  concat,
  ethFrame,
  inetChecksum,
  type L2,
  put16,
  put32,
  type TcpSpec,
  tcpSegment,
  type UdpSpec,
  udpDatagram,
} from "./packet-builder.js";

export const ETH_P_IPV6 = 0x86dd;
export const NH_HOP = 0;
export const NH_TCP = 6;
export const NH_UDP = 17;
export const NH_IPV6 = 41;
export const NH_ROUTING = 43;
export const NH_FRAGMENT = 44;
export const NH_ICMPV6 = 58;
export const NH_NONE = 59;
export const NH_DEST = 60;

/** "2001:db8::1" → 16 bytes: the test's own expansion (one "::" at most, no dotted quad). */
export function a6(s: string): Uint8Array {
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  if (groups.length !== 8) throw new Error(`bad IPv6 address ${s}`);
  const b = new Uint8Array(16);
  for (let i = 0; i < 8; i++) put16(b, 2 * i, Number.parseInt(groups[i], 16));
  return b;
}

/** The four 32-bit words of an address (big-endian), as int32 bits. */
export function w6(s: string | Uint8Array): Int32Array {
  const b = typeof s === "string" ? a6(s) : s;
  const w = new Int32Array(4);
  for (let k = 0; k < 4; k++)
    w[k] = (b[4 * k] << 24) | (b[4 * k + 1] << 16) | (b[4 * k + 2] << 8) | b[4 * k + 3];
  return w;
}

/** The kernel's addr_fold: the XOR of the four words, as u32. */
export function fold6(s: string | Uint8Array): number {
  const w = w6(s);
  return (w[0] ^ w[1] ^ w[2] ^ w[3]) >>> 0;
}

/** 16 bytes as lowercase groups, no compression (for messages). */
export function a6Str(b: Uint8Array, off = 0): string {
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[off + i] << 8) | b[off + i + 1]).toString(16));
  return g.join(":");
}

/** The RFC 8200 §8.1 pseudo-header: source, destination, 32-bit length, 3 zero bytes, next header. */
export function pseudoHeader6(src: Uint8Array, dst: Uint8Array, nh: number, len: number): Uint8Array {
  const b = new Uint8Array(40);
  b.set(src, 0);
  b.set(dst, 16);
  put32(b, 32, len);
  b[39] = nh;
  return b;
}

/** The message with its checksum (field at `field`) computed under the pseudo-header. */
export function checksummed6(
  msg: Uint8Array,
  src: Uint8Array,
  dst: Uint8Array,
  nh: number,
  field: number,
): Uint8Array {
  const m = msg.slice();
  put16(m, field, 0);
  const c = inetChecksum(pseudoHeader6(src, dst, nh, m.length), m);
  put16(m, field, nh === NH_UDP && c === 0 ? 0xffff : c);
  return m;
}

export interface Ip6Spec {
  src: string;
  dst: string;
  hl?: number;
  tc?: number;
  flow?: number;
}

/** The fixed header + payload; `nh` is the first next header (of the extension chain, if any). */
export function ipv6Packet(s: Ip6Spec, nh: number, payload: Uint8Array): Uint8Array {
  const b = new Uint8Array(40 + payload.length);
  const tc = s.tc ?? 0;
  const fl = s.flow ?? 0;
  put32(b, 0, ((6 << 28) | (tc << 20) | fl) >>> 0);
  put16(b, 4, payload.length);
  b[6] = nh;
  b[7] = s.hl ?? 64;
  b.set(a6(s.src), 8);
  b.set(a6(s.dst), 24);
  b.set(payload, 40);
  return b;
}

/** An extension header: its type (the previous header's next header) and its bytes (byte 0 set later). */
export interface ExtHdr {
  type: number;
  bytes: Uint8Array;
}

/** Hop-by-hop (NH_HOP) or destination options (NH_DEST) of `len` bytes (a multiple of 8), PadN-filled. */
export function optionsHdr(type: number, len = 8): ExtHdr {
  const b = new Uint8Array(len);
  b[1] = len / 8 - 1;
  b[2] = 1;
  b[3] = len - 4;
  return { type, bytes: b };
}

export function fragmentHdr(offsetBytes: number, more: boolean, id: number): ExtHdr {
  const b = new Uint8Array(8);
  put16(b, 2, offsetBytes | (more ? 1 : 0));
  put32(b, 4, id);
  return { type: NH_FRAGMENT, bytes: b };
}

/** The upper-layer message `upper` (protocol nh) behind the extension headers, in order. */
export function ipv6WithExt(s: Ip6Spec, headers: ExtHdr[], nh: number, upper: Uint8Array): Uint8Array {
  const hs = headers.map((h, i) => {
    const b = h.bytes.slice();
    b[0] = i + 1 < headers.length ? headers[i + 1].type : nh;
    return b;
  });
  return ipv6Packet(s, headers.length > 0 ? headers[0].type : nh, concat(...hs, upper));
}

/** packet-builder.ts's TCP segment, its checksum taken over the IPv6 pseudo-header instead. */
export function tcp6Segment(src: string, dst: string, s: TcpSpec): Uint8Array {
  return checksummed6(tcpSegment(0, 0, s), a6(src), a6(dst), NH_TCP, 16);
}

/** packet-builder.ts's UDP datagram, checksummed over the IPv6 pseudo-header (or left 0 with noChecksum). */
export function udp6Datagram(src: string, dst: string, s: UdpSpec): Uint8Array {
  const b = udpDatagram(0, 0, { ...s, noChecksum: true });
  return s.noChecksum ? b : checksummed6(b, a6(src), a6(dst), NH_UDP, 6);
}

export interface Icmp6Spec {
  type: number;
  code?: number;
  /** The 32 bits after the checksum (echo id/seq, MTU, pointer). */
  rest?: number;
  data?: Uint8Array;
}

export function icmp6Message(src: string, dst: string, m: Icmp6Spec): Uint8Array {
  const data = m.data ?? new Uint8Array(0);
  const b = new Uint8Array(8 + data.length);
  b[0] = m.type;
  b[1] = m.code ?? 0;
  put32(b, 4, m.rest ?? 0);
  b.set(data, 8);
  return checksummed6(b, a6(src), a6(dst), NH_ICMPV6, 2);
}

export function tcp6Frame(l2: L2, ip: Ip6Spec, t: TcpSpec): Uint8Array {
  return ethFrame(l2.dmac, l2.smac, ETH_P_IPV6, ipv6Packet(ip, NH_TCP, tcp6Segment(ip.src, ip.dst, t)));
}

export function udp6Frame(l2: L2, ip: Ip6Spec, u: UdpSpec): Uint8Array {
  return ethFrame(l2.dmac, l2.smac, ETH_P_IPV6, ipv6Packet(ip, NH_UDP, udp6Datagram(ip.src, ip.dst, u)));
}

export function icmp6Frame(l2: L2, ip: Ip6Spec, m: Icmp6Spec): Uint8Array {
  return ethFrame(l2.dmac, l2.smac, ETH_P_IPV6, ipv6Packet(ip, NH_ICMPV6, icmp6Message(ip.src, ip.dst, m)));
}

/** An ICMPv6 error quoting the first `quote` bytes of the IPv6 packet `orig` (all of it by default). */
export function icmp6ErrorFrame(
  l2: L2,
  ip: Ip6Spec,
  type: number,
  code: number,
  rest: number,
  orig: Uint8Array,
  quote = orig.length,
): Uint8Array {
  return icmp6Frame(l2, ip, { type, code, rest, data: orig.subarray(0, Math.min(quote, orig.length)) });
}

/** Does the TCP/UDP/ICMPv6 message of the IPv6 packet at b[l3] (no extension headers) verify? */
export function l4ChecksumOk6(b: Uint8Array, l3: number): boolean {
  const plen = (b[l3 + 4] << 8) | b[l3 + 5];
  const nh = b[l3 + 6];
  const msg = b.subarray(l3 + 40, l3 + 40 + plen);
  if (nh === NH_UDP && ((msg[6] << 8) | msg[7]) === 0) return false;
  const src = b.subarray(l3 + 8, l3 + 24);
  const dst = b.subarray(l3 + 24, l3 + 40);
  return inetChecksum(pseudoHeader6(src, dst, nh, plen), msg) === 0;
}
