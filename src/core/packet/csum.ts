// Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// Partial sums are plain non-negative numbers, left unfolded so that callers can keep adding
// words; folding happens in csumFold/csumFinish and whenever a sum could leave the safe-integer
// range (it cannot for frames: 2^37 words would be needed). Bytes past the end of the buffer
// read as zero instead of NaN, so a wrong length yields a wrong checksum, never a crash.
//
// Incremental updates use RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), which never produces the
// 0x0000/0xffff ambiguity that eqn. 2 has: the result is what a full recomputation gives,
// except that one's-complement 0x0000 and 0xffff are the same number (both verify).

import { readU16 } from "../addr.js";
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from "./flow.js";

/** One's complement sum of the 16-bit big-endian words of buf[off, off+len), odd tail padded with 0. */
export function csumAdd(buf: Uint8Array, off: number, len: number, sum = 0): number {
  let end = off + len;
  if (end > buf.length) end = buf.length;
  if (off < 0) off = 0;
  // Long runs (a segment, not a header) are summed a 32-bit word at a time; the threshold keeps
  // small typed arrays, whose `buffer` V8 would have to allocate, on the byte path.
  if (end - off >= WORDS_MIN && LITTLE_ENDIAN && ((buf.byteOffset + off) & 1) === 0)
    return sum + csumWords(buf, off, end);
  return sum + csumBytes(buf, off, end);
}

function csumBytes(buf: Uint8Array, i: number, end: number): number {
  let s = 0;
  // 2 words per step; s stays below 2^53 for any Uint8Array a process can hold.
  for (; i + 3 < end; i += 4) s += ((buf[i] << 8) | buf[i + 1]) + ((buf[i + 2] << 8) | buf[i + 3]);
  for (; i + 1 < end; i += 2) s += (buf[i] << 8) | buf[i + 1];
  if (i < end) s += buf[i] << 8;
  return s;
}

const WORDS_MIN = 128;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** 32-bit words summed into one double before a fold: the sums stay exact (below 2^53). */
const WORDS_CHUNK = 1 << 20;
// The last buffer's 32-bit view (the daemon's frames all sit in one or two buffers).
let viewOf: ArrayBufferLike | null = null;
let view32: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

/**
 * csumBytes over an even start, from aligned 32-bit loads. A sum of 32-bit words folds to the
 * sum of their 16-bit halves (2^16 ≡ 1 modulo 0xffff); on a little-endian CPU those halves are
 * byte-swapped words, and a one's complement sum of byte-swapped words is the byte swap of the sum
 * (RFC 1071 §2(B)), so the folded result is swapped back once. Two sums, so that the additions of
 * consecutive words do not wait for each other.
 */
function csumWords(buf: Uint8Array, i: number, end: number): number {
  let s = 0;
  if (((buf.byteOffset + i) & 2) !== 0) {
    s = (buf[i] << 8) | buf[i + 1];
    i += 2;
  }
  const ab = buf.buffer;
  if (ab !== viewOf) {
    viewOf = ab;
    view32 = new Uint32Array(ab, 0, ab.byteLength >>> 2);
  }
  const u32 = view32;
  let k = (buf.byteOffset + i) >>> 2;
  const last = k + ((end - i) >>> 2);
  i += (last - k) << 2;
  while (k < last) {
    const stop = last - k > WORDS_CHUNK ? k + WORDS_CHUNK : last;
    let s0 = 0;
    let s1 = 0;
    for (; k + 1 < stop; k += 2) {
      s0 += u32[k];
      s1 += u32[k + 1];
    }
    if (k < stop) s0 += u32[k++];
    // 2^32 ≡ 1 as well: the sum's high and low 32 bits add up to the same fold, without the
    // floating-point remainder csumFold would need for a sum above 2^32.
    const t = s0 + s1;
    const lo = t >>> 0;
    const f = csumFold(Math.floor(t / 4294967296) + (lo >>> 16) + (lo & 0xffff));
    s += ((f & 0xff) << 8) | (f >>> 8);
  }
  return s + csumBytes(buf, i, end);
}

export function csumAdd16(sum: number, v16: number): number {
  return sum + (v16 & 0xffff);
}

export function csumAdd32(sum: number, v32: number): number {
  return sum + (v32 >>> 16) + (v32 & 0xffff);
}

/** Folds a partial sum to 16 bits with end-around carry (not complemented). */
export function csumFold(sum: number): number {
  // First fold by division: `>>>` would truncate sums above 2^32.
  while (sum > 0xffffffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return (sum & 0xffff) + (sum >>> 16);
}

/** The value to store in a checksum field: the complement of the folded sum. */
export function csumFinish(sum: number): number {
  return ~csumFold(sum) & 0xffff;
}

/** RFC 1624 eqn. 3: new checksum field after a 16-bit word changed from oldv to newv. */
export function csumReplace16(check: number, oldv: number, newv: number): number {
  const s = (~check & 0xffff) + (~oldv & 0xffff) + (newv & 0xffff);
  return ~csumFold(s) & 0xffff;
}

/** RFC 1624 eqn. 3 for a 32-bit field (two words; it must sit at an even offset). */
export function csumReplace32(check: number, oldv: number, newv: number): number {
  const s =
    (~check & 0xffff) + (~oldv >>> 16) + (~oldv & 0xffff) + ((newv >>> 16) & 0xffff) + (newv & 0xffff);
  return ~csumFold(s) & 0xffff;
}

/** IPv4 header checksum over ihl*4 bytes (at least 20), the checksum field taken as 0. */
export function ipv4HeaderChecksum(buf: Uint8Array, l3Off: number): number {
  let hlen = (buf[l3Off] & 15) << 2;
  if (hlen < 20) hlen = 20;
  let s = csumAdd(buf, l3Off, 10);
  s = csumAdd(buf, l3Off + 12, hlen - 12, s);
  return csumFinish(s);
}

/** Offset of the checksum field inside a TCP/UDP/ICMP header; -1 for other protocols. */
function l4CheckField(proto: number): number {
  if (proto === IPPROTO_TCP) return 16;
  if (proto === IPPROTO_UDP) return 6;
  if (proto === IPPROTO_ICMP) return 2;
  return -1;
}

function pseudoHeaderSum(buf: Uint8Array, l3Off: number, l4Len: number, proto: number): number {
  let s = csumAdd(buf, l3Off + 12, 8);
  s += proto + (l4Len >>> 16) + (l4Len & 0xffff);
  return s;
}

/**
 * Checksum of the segment buf[l4Off, l4Off+l4Len) (its checksum field taken as 0) with the IPv4
 * pseudo-header read from the header at l3Off; ICMP (proto 1) has no pseudo-header. A UDP result of
 * 0 is returned as 0xffff (RFC 768: 0 means "no checksum").
 */
export function l4ChecksumV4(
  buf: Uint8Array,
  l3Off: number,
  l4Off: number,
  l4Len: number,
  proto: number,
): number {
  let s = proto === IPPROTO_ICMP ? 0 : pseudoHeaderSum(buf, l3Off, l4Len, proto);
  const cf = l4CheckField(proto);
  if (cf < 0 || cf + 2 > l4Len) {
    s = csumAdd(buf, l4Off, l4Len, s);
  } else {
    // Both pieces start at an even distance from l4Off, so word alignment is kept.
    s = csumAdd(buf, l4Off, cf, s);
    s = csumAdd(buf, l4Off + cf + 2, l4Len - cf - 2, s);
  }
  const c = csumFinish(s);
  return proto === IPPROTO_UDP && c === 0 ? 0xffff : c;
}

/** True when the IPv4 header at l3Off (ihl*4 bytes, in bounds) sums to 0xffff, as ip_rcv checks. */
export function verifyIpv4Header(buf: Uint8Array, l3Off: number): boolean {
  if (l3Off < 0 || l3Off + 20 > buf.length) return false;
  const hlen = (buf[l3Off] & 15) << 2;
  if (hlen < 20 || l3Off + hlen > buf.length) return false;
  return csumFold(csumAdd(buf, l3Off, hlen)) === 0xffff;
}

/** Verifies a TCP/UDP/ICMP checksum in place; a UDP checksum of 0 (not computed) is valid. */
export function verifyL4V4(
  buf: Uint8Array,
  l3Off: number,
  l4Off: number,
  l4Len: number,
  proto: number,
): boolean {
  if (l3Off < 0 || l3Off + 20 > buf.length || l4Off < 0 || l4Len < 0 || l4Off + l4Len > buf.length)
    return false;
  if (proto === IPPROTO_UDP && l4Len >= 8 && readU16(buf, l4Off + 6) === 0) return true;
  let s = proto === IPPROTO_ICMP ? 0 : pseudoHeaderSum(buf, l3Off, l4Len, proto);
  s = csumAdd(buf, l4Off, l4Len, s);
  return csumFold(s) === 0xffff;
}

// IPv6 (RFC 8200 §8.1). The pseudo-header is source, destination, the upper-layer length as a
// 32-bit number, three zero bytes and the next header; ICMPv6 is covered by it too (unlike ICMP).
// A zero UDP checksum is not "no checksum" over IPv6: receivers drop it (§8.1), except where a
// tunnel allows it (RFC 6935), so verifyL4V6 rejects it and rewrites leave a 0 alone as l4.ts does.

const IPPROTO_ICMPV6 = 58;
/** Offset of the source address in the IPv6 header; the destination follows it. */
const IP6_SADDR = 8;

/**
 * Unfolded sum of the pseudo-header for the IPv6 header at l3Off: its two addresses, l4Len and
 * nextHdr. With a routing header the pseudo-header should carry the final destination, not the
 * header's (RFC 8200 §8.1); the director does not route by segments, so it sums what is there.
 */
export function ipv6PseudoSum(
  buf: Uint8Array,
  l3Off: number,
  l4Len: number,
  nextHdr: number,
  sum = 0,
): number {
  return csumAdd(buf, l3Off + IP6_SADDR, 32, sum) + (l4Len >>> 16) + (l4Len & 0xffff) + (nextHdr & 255);
}

function l6CheckField(proto: number): number {
  if (proto === IPPROTO_TCP) return 16;
  if (proto === IPPROTO_UDP) return 6;
  if (proto === IPPROTO_ICMPV6) return 2;
  return -1;
}

/**
 * Checksum of the TCP/UDP/ICMPv6 message buf[l4Off, l4Off+l4Len) (its checksum field taken as 0)
 * with the pseudo-header of the IPv6 header at l3Off. A UDP result of 0 is stored as 0xffff.
 */
export function l4ChecksumV6(
  buf: Uint8Array,
  l3Off: number,
  l4Off: number,
  l4Len: number,
  proto: number,
): number {
  let s = csumAdd(buf, l4Off, l4Len, ipv6PseudoSum(buf, l3Off, l4Len, proto));
  // Adding the complement of the stored field takes it out (one's complement subtraction); the
  // pseudo-header's next header keeps the sum above 0, so no 0/0xffff ambiguity arises.
  const cf = l6CheckField(proto);
  if (cf >= 0 && cf + 2 <= l4Len) s += ~((buf[l4Off + cf] << 8) | buf[l4Off + cf + 1]) & 0xffff;
  const c = csumFinish(s);
  return proto === IPPROTO_UDP && c === 0 ? 0xffff : c;
}

/** True when the TCP/UDP/ICMPv6 message sums to 0xffff with its pseudo-header; UDP checksum 0 is invalid. */
export function verifyL4V6(
  buf: Uint8Array,
  l3Off: number,
  l4Off: number,
  l4Len: number,
  proto: number,
): boolean {
  if (l3Off < 0 || l3Off + 40 > buf.length || l4Off < 0 || l4Len < 0 || l4Off + l4Len > buf.length)
    return false;
  if (proto === IPPROTO_UDP && l4Len >= 8 && readU16(buf, l4Off + 6) === 0) return false;
  return csumFold(csumAdd(buf, l4Off, l4Len, ipv6PseudoSum(buf, l3Off, l4Len, proto))) === 0xffff;
}

/**
 * RFC 1624 eqn. 3 over the eight words of a 128-bit field (a pseudo-header address under NAT):
 * the checksum after oldA[oOff..+16] became newA[nOff..+16]. Call it before the old bytes are
 * overwritten. The field sits at an even offset of the summed data, as addresses always do.
 */
export function csumReplace128(
  check: number,
  oldA: Uint8Array,
  oOff: number,
  newA: Uint8Array,
  nOff: number,
): number {
  let s = ~check & 0xffff;
  for (let i = 0; i < 16; i += 2) {
    s +=
      (~((oldA[oOff + i] << 8) | oldA[oOff + i + 1]) & 0xffff) + ((newA[nOff + i] << 8) | newA[nOff + i + 1]);
  }
  return ~csumFold(s) & 0xffff;
}
