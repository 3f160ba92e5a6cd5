// The fuzzer's own header writers and checksums. They are written from the RFCs here, apart from
// the product's codecs (src/core/packet), so that a codec bug cannot shape the frames meant to find
// it (STYLE.md: tests build their fixtures with a separate writer). Offsets in, offsets out; the
// caller keeps every write inside its buffer.

export const ETH_HLEN = 14;
export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;

export const PROTO_ICMP = 1;
export const PROTO_IPIP = 4;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_IPV6 = 41;
export const PROTO_GRE = 47;
export const PROTO_ESP = 50;
export const PROTO_AH = 51;
export const PROTO_ICMPV6 = 58;
export const PROTO_NONE = 59;
export const PROTO_VRRP = 112;
export const NH_HOP = 0;
export const NH_ROUTING = 43;
export const NH_FRAGMENT = 44;
export const NH_DEST = 60;

export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

export function get16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

export function putBytes(b: Uint8Array, o: number, src: Uint8Array): void {
  for (let i = 0; i < src.length; i++) b[o + i] = src[i];
}

/** RFC 1071 sum of buf[off, off+len) (odd tail padded with zero) added to s; unfolded. */
export function sum16(b: Uint8Array, off: number, len: number, s = 0): number {
  let i = 0;
  for (; i + 1 < len; i += 2) s += (b[off + i] << 8) | b[off + i + 1];
  if (i < len) s += b[off + i] << 8;
  // Folded now and then so that the sum stays an exact integer over 64 KiB.
  return s > 0x7fffffff ? (s & 0xffff) + Math.floor(s / 0x10000) : s;
}

/** Folded and complemented: the value a checksum field takes. */
export function finish(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/** Ethernet II header (dst, src, type) at 0; returns 14. */
export function writeEth(b: Uint8Array, dst: Uint8Array, src: Uint8Array, type: number): number {
  putBytes(b, 0, dst);
  putBytes(b, 6, src);
  put16(b, 12, type);
  return ETH_HLEN;
}

/** Fills in the IPv4 header at l3 (IHL from hlen): total length end - l3, then its checksum. */
export function finishIpv4(b: Uint8Array, l3: number, hlen: number, end: number): void {
  b[l3] = 0x40 | ((hlen >>> 2) & 15);
  put16(b, l3 + 2, end - l3);
  ipv4Checksum(b, l3);
}

/** Recomputes the IPv4 header checksum from the IHL the header has now (bounded by the buffer). */
export function ipv4Checksum(b: Uint8Array, l3: number): void {
  if (l3 + 12 > b.length) return;
  let hlen = (b[l3] & 15) << 2;
  if (hlen < 20) hlen = 20;
  if (l3 + hlen > b.length) hlen = b.length - l3;
  b[l3 + 10] = 0;
  b[l3 + 11] = 0;
  put16(b, l3 + 10, finish(sum16(b, l3, hlen)));
}

/** The 20 fixed bytes of an IPv4 header at l3 (length and checksum filled in by finishIpv4). */
export function writeIpv4(
  b: Uint8Array,
  l3: number,
  tos: number,
  id: number,
  frag: number,
  ttl: number,
  proto: number,
  src: number,
  dst: number,
): void {
  b[l3] = 0x45;
  b[l3 + 1] = tos;
  put16(b, l3 + 2, 0);
  put16(b, l3 + 4, id);
  put16(b, l3 + 6, frag);
  b[l3 + 8] = ttl;
  b[l3 + 9] = proto;
  put16(b, l3 + 10, 0);
  put32(b, l3 + 12, src);
  put32(b, l3 + 16, dst);
}

/** The 40-byte IPv6 header at l3 (payload length filled in by finishIpv6). */
export function writeIpv6(
  b: Uint8Array,
  l3: number,
  tc: number,
  flow: number,
  nh: number,
  hlim: number,
  src: Uint8Array,
  dst: Uint8Array,
): void {
  put32(b, l3, (0x60000000 | ((tc & 255) << 20) | (flow & 0xfffff)) >>> 0);
  put16(b, l3 + 4, 0);
  b[l3 + 6] = nh;
  b[l3 + 7] = hlim;
  putBytes(b, l3 + 8, src);
  putBytes(b, l3 + 24, dst);
}

export function finishIpv6(b: Uint8Array, l3: number, end: number): void {
  put16(b, l3 + 4, end - l3 - 40);
}

/** Pseudo-header sum of the IPv4 header at l3 for an upper layer of `len` bytes. */
export function pseudo4(b: Uint8Array, l3: number, proto: number, len: number): number {
  return sum16(b, l3 + 12, 8) + proto + len;
}

/** Pseudo-header sum of the IPv6 header at l3 (RFC 8200 §8.1). */
export function pseudo6(b: Uint8Array, l3: number, proto: number, len: number): number {
  return sum16(b, l3 + 8, 32) + proto + (len >>> 16) + (len & 0xffff);
}

/**
 * Writes the checksum of the upper-layer message b[l4, end) at l4 + field: with the IPv4 or IPv6
 * pseudo-header when `pseudo` (TCP, UDP, ICMPv6, VRRPv3), over the message alone otherwise (ICMP,
 * VRRPv2, GRE). A UDP result of 0 is sent as 0xffff (RFC 768).
 */
export function l4Checksum(
  b: Uint8Array,
  af: 4 | 6,
  l3: number,
  l4: number,
  end: number,
  proto: number,
  field: number,
  pseudo: boolean,
): void {
  if (l4 + field + 2 > end || end > b.length) return;
  b[l4 + field] = 0;
  b[l4 + field + 1] = 0;
  const len = end - l4;
  let s = 0;
  if (pseudo) s = af === 4 ? pseudo4(b, l3, proto, len) : pseudo6(b, l3, proto, len);
  let c = finish(sum16(b, l4, len, s));
  if (c === 0 && proto === PROTO_UDP) c = 0xffff;
  put16(b, l4 + field, c);
}

/** The checksum field's place in an upper-layer header, and whether a pseudo-header is summed. */
export function l4CheckField(proto: number): number {
  if (proto === PROTO_TCP) return 16;
  if (proto === PROTO_UDP) return 6;
  if (proto === PROTO_ICMP || proto === PROTO_ICMPV6) return 2;
  if (proto === PROTO_VRRP) return 6;
  if (proto === PROTO_GRE) return 4;
  return -1;
}

/** ff02::1:ffXX:XXXX, the solicited-node group of addr (RFC 4291 §2.7.1). */
export function solicitedNode(addr: Uint8Array, out: Uint8Array): void {
  out.fill(0);
  out[0] = 0xff;
  out[1] = 0x02;
  out[11] = 1;
  out[12] = 0xff;
  out[13] = addr[13];
  out[14] = addr[14];
  out[15] = addr[15];
}

/** 33:33 + the group's last four bytes (RFC 2464 §7). */
export function multicastMac6(group: Uint8Array, out: Uint8Array): void {
  out[0] = 0x33;
  out[1] = 0x33;
  for (let i = 0; i < 4; i++) out[2 + i] = group[12 + i];
}

/** 01:00:5e + the group's low 23 bits (RFC 1112 §6.4). */
export function multicastMac4(group: number, out: Uint8Array): void {
  out[0] = 1;
  out[1] = 0;
  out[2] = 0x5e;
  out[3] = (group >>> 16) & 0x7f;
  out[4] = group >>> 8;
  out[5] = group;
}

/** "a.b.c.d" → u32 (the fuzzer's plan only: addresses it was written with). */
export function ip4(text: string): number {
  const p = text.split(".").map(Number);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

/** IPv6 text (with at most one "::") → 16 bytes. */
export function ip6(text: string): Uint8Array {
  const out = new Uint8Array(16);
  const [head, tail] = text.includes("::") ? text.split("::") : [text, null];
  const h = head === "" ? [] : head.split(":");
  const t = tail === null || tail === "" ? [] : tail.split(":");
  const words = [...h, ...new Array(8 - h.length - t.length).fill("0"), ...t];
  for (let i = 0; i < 8; i++) put16(out, 2 * i, Number.parseInt(words[i], 16));
  return out;
}

/** "aa:bb:cc:dd:ee:ff" → 6 bytes. */
export function mac(text: string): Uint8Array {
  return Uint8Array.from(text.split(":").map((x) => Number.parseInt(x, 16)));
}
