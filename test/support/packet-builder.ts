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

// ------------------------------------------------------------------ GSO aggregates (issue 10)

/** Folded (not complemented) one's complement sum of the TCP/UDP pseudo-header. */
export function pseudoHeaderSum(src: number, dst: number, proto: number, len: number): number {
  const b = pseudoHeader(src, dst, proto, len);
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i] << 8) | b[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * The frame as a sender with checksum offload hands it over (CHECKSUM_PARTIAL): the TCP/UDP
 * checksum field holds only the pseudo-header sum. Ethernet/IPv4 without tags; modifies a copy.
 */
export function asPartial(frame: Uint8Array): Uint8Array {
  const b = frame.slice();
  const l3 = 14;
  const ihl = (b[l3] & 15) * 4;
  const proto = b[l3 + 9];
  const tot = (b[l3 + 2] << 8) | b[l3 + 3];
  const src = ((b[l3 + 12] << 24) | (b[l3 + 13] << 16) | (b[l3 + 14] << 8) | b[l3 + 15]) >>> 0;
  const dst = ((b[l3 + 16] << 24) | (b[l3 + 17] << 16) | (b[l3 + 18] << 8) | b[l3 + 19]) >>> 0;
  put16(b, l3 + ihl + (proto === PROTO_TCP ? 16 : 6), pseudoHeaderSum(src, dst, proto, tot - ihl));
  return b;
}

/**
 * What the kernel's GSO makes of a partial aggregate (the reference the product's output is
 * compared with): the IPv4 datagram at `dgram` (header checksum valid, L4 field = pseudo sum of
 * the whole) cut into `mss` payload pieces, each a datagram with its own total length, IP id + k,
 * TCP seq + k × mss, CWR only on the first, FIN/PSH only on the last, UDP length, and a full
 * checksum computed from scratch.
 */
export function referenceSegments(dgram: Uint8Array, mss: number): Uint8Array[] {
  const ihl = (dgram[0] & 15) * 4;
  const proto = dgram[9];
  const tot = (dgram[2] << 8) | dgram[3];
  const l4hl = proto === PROTO_TCP ? (dgram[ihl + 12] >> 4) * 4 : 8;
  const hl = ihl + l4hl;
  const payload = dgram.subarray(hl, tot);
  const n = Math.max(1, Math.ceil(payload.length / mss));
  const src = ((dgram[12] << 24) | (dgram[13] << 16) | (dgram[14] << 8) | dgram[15]) >>> 0;
  const dst = ((dgram[16] << 24) | (dgram[17] << 16) | (dgram[18] << 8) | dgram[19]) >>> 0;
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const chunk = payload.subarray(k * mss, Math.min(payload.length, (k + 1) * mss));
    const s = new Uint8Array(hl + chunk.length);
    s.set(dgram.subarray(0, hl), 0);
    s.set(chunk, hl);
    put16(s, 2, s.length);
    put16(s, 4, (((dgram[4] << 8) | dgram[5]) + k) & 0xffff);
    put16(s, 10, 0);
    put16(s, 10, inetChecksum(s.subarray(0, ihl)));
    const l4 = s.subarray(ihl);
    if (proto === PROTO_TCP) {
      const seq =
        ((dgram[ihl + 4] << 24) | (dgram[ihl + 5] << 16) | (dgram[ihl + 6] << 8) | dgram[ihl + 7]) >>> 0;
      put32(l4, 4, (seq + k * mss) >>> 0);
      let fl = dgram[ihl + 13];
      if (k > 0) fl &= ~0x80;
      if (k < n - 1) fl &= ~(FIN | PSH);
      l4[13] = fl;
      put16(l4, 16, 0);
      put16(l4, 16, inetChecksum(pseudoHeader(src, dst, proto, l4.length), l4));
    } else {
      put16(l4, 4, l4.length);
      put16(l4, 6, 0);
      const c = inetChecksum(pseudoHeader(src, dst, proto, l4.length), l4);
      put16(l4, 6, c === 0 ? 0xffff : c);
    }
    out.push(s);
  }
  return out;
}

// ------------------------------------------------ codec fixtures: tags, malformed headers, verifiers
// What the parser and rewrite tests need beyond well-formed frames: VLAN-tagged and padded
// Ethernet, header fields a correct sender never writes (version, IHL, total length, TCP data
// offset, UDP length, a broken header checksum), and checksum verification by full
// recomputation over the final bytes.

/** Big-endian 16-bit read. */
export function get16(b: Uint8Array, off: number): number {
  return (b[off] << 8) | b[off + 1];
}

/** Big-endian 32-bit read, unsigned. */
export function get32(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}

/** A 16-bit value as 2 big-endian bytes. */
export function be16(v: number): Uint8Array {
  const b = new Uint8Array(2);
  put16(b, 0, v);
  return b;
}

/** A 32-bit value as 4 big-endian bytes. */
export function be32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  put32(b, 0, v);
  return b;
}

/**
 * Folded one's complement sum, not complemented, of the concatenated parts (an odd tail padded
 * with zero): 0xffff exactly when a region that carries its own checksum verifies.
 */
export function onesSum(...parts: Uint8Array[]): number {
  const all = concat(...parts);
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) {
    sum += (all[i] << 8) | (i + 1 < all.length ? all[i + 1] : 0);
    // Fold as we go: the sum stays exact whatever the length.
    if (sum > 0xffff) sum = (sum & 0xffff) + 1;
  }
  return sum;
}

/** An Ethernet frame with VLAN tags [TPID, TCI] (outermost first) and `pad` zero bytes after it. */
export function ethTaggedFrame(
  dst: Uint8Array,
  src: Uint8Array,
  tags: ReadonlyArray<readonly [number, number]>,
  type: number,
  payload: Uint8Array,
  pad = 0,
): Uint8Array {
  const b = new Uint8Array(14 + tags.length * 4 + payload.length + pad);
  b.set(dst, 0);
  b.set(src, 6);
  let o = 12;
  for (const [tpid, tci] of tags) {
    put16(b, o, tpid);
    put16(b, o + 2, tci);
    o += 4;
  }
  put16(b, o, type);
  b.set(payload, o + 2);
  return b;
}

/** IPv4 header fields a correct sender never writes. */
export interface Ipv4Overrides {
  version?: number;
  /** Header length field in 32-bit words, whatever the header laid out is. */
  ihl?: number;
  totLen?: number;
  /** Store the header checksum with one bit flipped. */
  badChecksum?: boolean;
}

/**
 * ipv4Datagram with overridden fields. The header checksum is computed with the overrides in
 * place, over the header as laid out (20 bytes + options, whatever IHL now claims), so that
 * each fixture is wrong in the one field it names.
 */
export function ipv4WithOverrides(s: Ipv4Spec, o: Ipv4Overrides): Uint8Array {
  const b = ipv4Datagram(s);
  const hlen = (b[0] & 15) * 4;
  if (o.version !== undefined) b[0] = ((o.version & 15) << 4) | (b[0] & 15);
  if (o.ihl !== undefined) b[0] = (b[0] & 0xf0) | (o.ihl & 15);
  if (o.totLen !== undefined) put16(b, 2, o.totLen);
  put16(b, 10, 0);
  const c = inetChecksum(b.subarray(0, hlen));
  put16(b, 10, o.badChecksum ? c ^ 0x0100 : c);
  return b;
}

/** tcpSegment with the data offset field set to `doff` words; the checksum covers that. */
export function tcpSegmentWithDoff(src: number, dst: number, s: TcpSpec, doff: number): Uint8Array {
  const b = tcpSegment(src, dst, s);
  b[12] = (doff & 15) << 4;
  put16(b, 16, 0);
  put16(b, 16, inetChecksum(pseudoHeader(src, dst, PROTO_TCP, b.length), b));
  return b;
}

/**
 * udpDatagram with the length field set to `len` (a first fragment's whole length, or a lie);
 * the checksum is over the bytes present, with their real length in the pseudo-header.
 */
export function udpDatagramWithLength(src: number, dst: number, s: UdpSpec, len: number): Uint8Array {
  const b = udpDatagram(src, dst, s);
  put16(b, 4, len);
  if (!s.noChecksum) {
    put16(b, 6, 0);
    const c = inetChecksum(pseudoHeader(src, dst, PROTO_UDP, b.length), b);
    put16(b, 6, c === 0 ? 0xffff : c);
  }
  return b;
}

/** Full recomputation: does the IPv4 header at `l3` (IHL from its first byte) verify? */
export function ipv4HeaderOk(b: Uint8Array, l3: number): boolean {
  return onesSum(b.subarray(l3, l3 + (b[l3] & 15) * 4)) === 0xffff;
}

/**
 * Full recomputation of the transport checksum of the datagram at `l3` (the extent its total
 * length gives): ICMP over the message, TCP/UDP with the pseudo-header; UDP 0 means none.
 */
export function l4ChecksumOk(b: Uint8Array, l3: number): boolean {
  const l4 = l3 + (b[l3] & 15) * 4;
  const seg = b.subarray(l4, l3 + get16(b, l3 + 2));
  const proto = b[l3 + 9];
  if (proto === PROTO_ICMP) return onesSum(seg) === 0xffff;
  if (proto === PROTO_UDP && get16(b, l4 + 6) === 0) return true;
  const ph = pseudoHeader(get32(b, l3 + 12), get32(b, l3 + 16), proto, seg.length);
  return onesSum(ph, seg) === 0xffff;
}
