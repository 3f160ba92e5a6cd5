// Test packet builder, independent of the product's codecs (src/core/packet/*): every header
// is laid out byte by byte here and every checksum is computed from scratch over the final
// bytes, so that a codec bug cannot cancel itself out in a test (pg-protocol's habit).

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const PROTO_ICMP = 1;
export const PROTO_IPIP = 4;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;

/** "a.b.c.d" → host-order u32. Throws on a malformed string (test input only). */
export function ip(s: string): number {
  const p = s.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new Error(`bad ip ${s}`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

export function ipStr(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/** "02:00:00:00:00:01" → 6 bytes. */
export function mac(s: string): Uint8Array {
  const p = s.split(":").map((x) => Number.parseInt(x, 16));
  if (p.length !== 6 || p.some((x) => Number.isNaN(x))) throw new Error(`bad mac ${s}`);
  return Uint8Array.from(p);
}

export function macStr(b: Uint8Array, off = 0): string {
  const out: string[] = [];
  for (let i = 0; i < 6; i++) out.push(b[off + i].toString(16).padStart(2, "0"));
  return out.join(":");
}

export function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 8) & 255;
  b[off + 1] = v & 255;
}

export function put32(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 24) & 255;
  b[off + 1] = (v >>> 16) & 255;
  b[off + 2] = (v >>> 8) & 255;
  b[off + 3] = v & 255;
}

/** RFC 1071 checksum over the concatenation of the parts (each padded only at the very end). */
export function inetChecksum(...parts: Uint8Array[]): number {
  const all = concat(...parts);
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) {
    sum += (all[i] << 8) | (i + 1 < all.length ? all[i + 1] : 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The 12-byte IPv4 pseudo-header of TCP/UDP checksums. */
export function pseudoHeader(src: number, dst: number, proto: number, len: number): Uint8Array {
  const b = new Uint8Array(12);
  put32(b, 0, src);
  put32(b, 4, dst);
  b[9] = proto;
  put16(b, 10, len);
  return b;
}

export interface TcpSpec {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags: number;
  win?: number;
  /** Raw option bytes (padded here to a multiple of 4 with EOL). */
  options?: Uint8Array;
  payload?: Uint8Array;
}

/** A TCP segment with its checksum for the given IP addresses. */
export function tcpSegment(src: number, dst: number, s: TcpSpec): Uint8Array {
  const opt = s.options ?? new Uint8Array(0);
  const optLen = (opt.length + 3) & ~3;
  const payload = s.payload ?? new Uint8Array(0);
  const hlen = 20 + optLen;
  const b = new Uint8Array(hlen + payload.length);
  put16(b, 0, s.sport);
  put16(b, 2, s.dport);
  put32(b, 4, s.seq ?? 1000);
  put32(b, 8, s.ack ?? 0);
  b[12] = (hlen / 4) << 4;
  b[13] = s.flags;
  put16(b, 14, s.win ?? 65535);
  b.set(opt, 20);
  b.set(payload, hlen);
  put16(b, 16, inetChecksum(pseudoHeader(src, dst, PROTO_TCP, b.length), b));
  return b;
}

export interface UdpSpec {
  sport: number;
  dport: number;
  payload?: Uint8Array;
  /** Leave the checksum 0 ("not computed"). */
  noChecksum?: boolean;
}

export function udpDatagram(src: number, dst: number, s: UdpSpec): Uint8Array {
  const payload = s.payload ?? new Uint8Array(0);
  const b = new Uint8Array(8 + payload.length);
  put16(b, 0, s.sport);
  put16(b, 2, s.dport);
  put16(b, 4, b.length);
  b.set(payload, 8);
  if (!s.noChecksum) {
    const c = inetChecksum(pseudoHeader(src, dst, PROTO_UDP, b.length), b);
    put16(b, 6, c === 0 ? 0xffff : c);
  }
  return b;
}

export interface IcmpSpec {
  type: number;
  code?: number;
  /** The 32-bit rest of header (echo id/seq, next-hop MTU, ...). */
  rest?: number;
  data?: Uint8Array;
}

export function icmpMessage(s: IcmpSpec): Uint8Array {
  const data = s.data ?? new Uint8Array(0);
  const b = new Uint8Array(8 + data.length);
  b[0] = s.type;
  b[1] = s.code ?? 0;
  put32(b, 4, s.rest ?? 0);
  b.set(data, 8);
  put16(b, 2, inetChecksum(b));
  return b;
}

export interface Ipv4Spec {
  src: number;
  dst: number;
  proto: number;
  payload: Uint8Array;
  ttl?: number;
  tos?: number;
  id?: number;
  df?: boolean;
  mf?: boolean;
  /** Fragment offset in 8-byte units. */
  fragOff?: number;
  /** Raw IP options (padded to a multiple of 4). */
  options?: Uint8Array;
}

export function ipv4Datagram(s: Ipv4Spec): Uint8Array {
  const opt = s.options ?? new Uint8Array(0);
  const hlen = 20 + ((opt.length + 3) & ~3);
  const b = new Uint8Array(hlen + s.payload.length);
  b[0] = 0x40 | (hlen / 4);
  b[1] = s.tos ?? 0;
  put16(b, 2, b.length);
  put16(b, 4, s.id ?? 0x1234);
  put16(b, 6, (s.df ? 0x4000 : 0) | (s.mf ? 0x2000 : 0) | (s.fragOff ?? 0));
  b[8] = s.ttl ?? 64;
  b[9] = s.proto;
  put32(b, 12, s.src);
  put32(b, 16, s.dst);
  b.set(opt, 20);
  put16(b, 10, inetChecksum(b.subarray(0, hlen)));
  b.set(s.payload, hlen);
  return b;
}

export function ethFrame(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const b = new Uint8Array(14 + payload.length);
  b.set(dst, 0);
  b.set(src, 6);
  put16(b, 12, type);
  b.set(payload, 14);
  return b;
}

export interface L2 {
  dmac: Uint8Array;
  smac: Uint8Array;
}

type IpFields = Omit<Ipv4Spec, "proto" | "payload">;

export function tcpFrame(l2: L2, ipf: IpFields, t: TcpSpec): Uint8Array {
  const seg = tcpSegment(ipf.src, ipf.dst, t);
  return ethFrame(l2.dmac, l2.smac, ETH_P_IP, ipv4Datagram({ ...ipf, proto: PROTO_TCP, payload: seg }));
}

export function udpFrame(l2: L2, ipf: IpFields, u: UdpSpec): Uint8Array {
  const d = udpDatagram(ipf.src, ipf.dst, u);
  return ethFrame(l2.dmac, l2.smac, ETH_P_IP, ipv4Datagram({ ...ipf, proto: PROTO_UDP, payload: d }));
}

export function icmpFrame(l2: L2, ipf: IpFields, m: IcmpSpec): Uint8Array {
  return ethFrame(
    l2.dmac,
    l2.smac,
    ETH_P_IP,
    ipv4Datagram({ ...ipf, proto: PROTO_ICMP, payload: icmpMessage(m) }),
  );
}

/** An ICMP error quoting `orig` (an IP datagram): its header and the first `quote` bytes after it. */
export function icmpErrorFrame(
  l2: L2,
  ipf: IpFields,
  type: number,
  code: number,
  rest: number,
  orig: Uint8Array,
  quote = 8,
): Uint8Array {
  const ihl = (orig[0] & 15) * 4;
  return icmpFrame(l2, ipf, { type, code, rest, data: orig.subarray(0, Math.min(orig.length, ihl + quote)) });
}

export interface ArpSpec {
  op: number;
  sha: Uint8Array;
  spa: number;
  tha?: Uint8Array;
  tpa: number;
}

export function arpFrame(dmac: Uint8Array, smac: Uint8Array, a: ArpSpec): Uint8Array {
  const b = new Uint8Array(28);
  put16(b, 0, 1);
  put16(b, 2, ETH_P_IP);
  b[4] = 6;
  b[5] = 4;
  put16(b, 6, a.op);
  b.set(a.sha, 8);
  put32(b, 14, a.spa);
  b.set(a.tha ?? new Uint8Array(6), 18);
  put32(b, 24, a.tpa);
  return ethFrame(dmac, smac, ETH_P_ARP, b);
}

/** The IP datagram of an Ethernet frame (no VLAN). */
export function l3Of(frame: Uint8Array): Uint8Array {
  return frame.subarray(14);
}

export function bytes(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}
