// IPv4 addresses travel through the core as unsigned 32-bit integers in host order
// (a.b.c.d = a<<24 | b<<16 | c<<8 | d, always >>> 0). The control plane names an
// address with its family so that IPv6 can join without changing call sites.

export type Family = 4 | 6;

export interface InetAddr {
  readonly af: Family;
  /** IPv4 value (host order, unsigned); 0 for IPv6. */
  readonly v4: number;
  /** IPv6 bytes, network order; undefined for IPv4. */
  readonly v6?: Uint8Array;
}

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses dotted-quad IPv4; null if it is not one. */
export function parseIPv4(s: string): number | null {
  const m = DOTTED.exec(s);
  if (m === null) return null;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return null;
    v = v * 256 + o;
  }
  return v >>> 0;
}

export function formatIPv4(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/** Netmask for a prefix length 0..32. */
export function prefixToMask(prefix: number): number {
  return prefix <= 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Prefix length of a contiguous netmask, or -1 when the mask has holes. */
export function maskToPrefix(mask: number): number {
  mask >>>= 0;
  const inv = ~mask >>> 0;
  if ((inv & (inv + 1)) !== 0) return -1;
  let n = 0;
  while (n < 32 && (mask & (0x80000000 >>> n)) !== 0) n++;
  return n;
}

export function v4(a: number): InetAddr {
  return { af: 4, v4: a >>> 0 };
}

/** Host-order IPv4 read from network-order bytes. */
export function readU32(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}

export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 255;
  b[off + 2] = (v >>> 8) & 255;
  b[off + 3] = v & 255;
}

export function readU16(b: Uint8Array, off: number): number {
  return (b[off] << 8) | b[off + 1];
}

export function writeU16(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 8) & 255;
  b[off + 1] = v & 255;
}

// ---------------------------------------------------------------------------------------------
// IPv6 addresses. The wire form is 16 bytes in network order (a Uint8Array + offset, as in
// packets). The text forms follow the tools the output is compared with: inet_pton for input (what
// ipvsadm accepts), glibc's inet_ntop for output (what ipvsadm -n prints), and the kernel's %pI6
// for /proc/net/ip_vs. The hot-path key form is four u32 words (see ipv6ToWords).

export const IPV6_ALEN = 16;
/** Longest text inet_pton accepts: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255". */
const IPV6_TEXT_MAX = 45;
/** A dotted quad as inet_pton4 accepts it inside an IPv6 address: no leading zeros. */
const DOTTED_STRICT = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Parses IPv6 text as glibc's inet_pton(AF_INET6) does: every RFC 4291 §2.2 form (full, "::"
 * once, a trailing dotted quad in the last 32 bits), hex groups of 1-4 digits in either case.
 * Rejected like inet_pton: a "::" that stands for no group ("1:2:3:4::5:6:7:8"), a lone leading or
 * trailing ":", leading zeros in the dotted quad, zone ids ("fe80::1%eth0": node's net.isIPv6
 * takes them, inet_pton does not), brackets and spaces. Returns 16 bytes or null.
 */
export function parseIPv6(s: string): Uint8Array | null {
  const n = s.length;
  if (n < 2 || n > IPV6_TEXT_MAX) return null;
  const out = new Uint8Array(IPV6_ALEN);
  let i = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return null;
    i = 1;
  }
  let tp = 0;
  let colonp = -1;
  let curtok = i;
  let val = 0;
  let digits = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    const d = hexDigit(c);
    if (d >= 0) {
      if (++digits > 4) return null;
      val = (val << 4) | d;
      continue;
    }
    if (c === 58) {
      curtok = i + 1;
      if (digits === 0) {
        if (colonp >= 0) return null;
        colonp = tp;
        continue;
      }
      if (i + 1 === n || tp + 2 > IPV6_ALEN) return null;
      out[tp++] = val >>> 8;
      out[tp++] = val & 255;
      val = 0;
      digits = 0;
      continue;
    }
    if (c === 46) {
      // The dotted quad must be the last 32 bits: it runs to the end of the string.
      const v = DOTTED_STRICT.test(s.slice(curtok)) ? parseIPv4(s.slice(curtok)) : null;
      if (v === null || tp + 4 > IPV6_ALEN) return null;
      writeU32(out, tp, v);
      tp += 4;
      digits = 0;
      break;
    }
    return null;
  }
  if (digits > 0) {
    if (tp + 2 > IPV6_ALEN) return null;
    out[tp++] = val >>> 8;
    out[tp++] = val & 255;
  }
  if (colonp >= 0) {
    // "::" stands for at least one zero group (glibc rejects it in a full address).
    if (tp === IPV6_ALEN) return null;
    const tail = tp - colonp;
    for (let k = 1; k <= tail; k++) {
      out[IPV6_ALEN - k] = out[colonp + tail - k];
      out[colonp + tail - k] = 0;
    }
    tp = IPV6_ALEN;
  }
  return tp === IPV6_ALEN ? out : null;
}

/**
 * Text as glibc's inet_ntop(AF_INET6) prints it (what ipvsadm -n shows): lowercase hex without
 * leading zeros; the longest run of two or more zero groups becomes "::", the leftmost on a tie
 * (RFC 5952 §4.2); a single zero group stays "0". The last 32 bits print as a dotted quad when the
 * run is exactly groups 0-5 (IPv4-compatible, "::1.2.3.4", though "::1" and "::" stay as they are
 * since their run is longer) or groups 0-4 followed by ffff (IPv4-mapped, "::ffff:1.2.3.4").
 */
export function formatIPv6(b: Uint8Array, off = 0): string {
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  for (let i = 0; i <= 8; i++) {
    const zero = i < 8 && b[off + 2 * i] === 0 && b[off + 2 * i + 1] === 0;
    if (zero) {
      if (curBase < 0) curBase = i;
    } else if (curBase >= 0) {
      if (i - curBase > bestLen) {
        bestBase = curBase;
        bestLen = i - curBase;
      }
      curBase = -1;
    }
  }
  if (bestLen < 2) bestBase = -1;
  let s = "";
  for (let i = 0; i < 8; i++) {
    if (bestBase >= 0 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) s += ":";
      continue;
    }
    if (i !== 0) s += ":";
    if (
      i === 6 &&
      bestBase === 0 &&
      (bestLen === 6 || (bestLen === 5 && b[off + 10] === 0xff && b[off + 11] === 0xff))
    ) {
      s += formatIPv4(readU32(b, off + 12));
      return s;
    }
    s += readU16(b, off + 2 * i).toString(16);
  }
  if (bestBase >= 0 && bestBase + bestLen === 8) s += ":";
  return s;
}

/** The kernel's %pI6: eight groups of four lowercase hex digits (/proc/net/ip_vs, ip_vs_conn). */
export function formatIPv6Full(b: Uint8Array, off = 0): string {
  let s = "";
  for (let i = 0; i < 8; i++) {
    if (i !== 0) s += ":";
    s += readU16(b, off + 2 * i)
      .toString(16)
      .padStart(4, "0");
  }
  return s;
}

/** An IPv6 InetAddr holding a copy of the 16 bytes at b[off]. */
export function v6(b: Uint8Array, off = 0): InetAddr {
  return { af: 6, v4: 0, v6: b.slice(off, off + IPV6_ALEN) };
}

/** Writes the netmask of a prefix length (clamped to 0..128) as 16 bytes at out[off]. */
export function ipv6PrefixMask(prefix: number, out: Uint8Array, off = 0): Uint8Array {
  for (let i = 0; i < IPV6_ALEN; i++) {
    const bits = prefix - 8 * i;
    out[off + i] = bits >= 8 ? 255 : bits <= 0 ? 0 : (0xff00 >>> bits) & 255;
  }
  return out;
}

/** dst[dOff..+16] = src[sOff..+16] with the bits past `prefix` cleared (the kernel's ipv6_addr_prefix). */
export function ipv6ApplyPrefix(
  src: Uint8Array,
  sOff: number,
  prefix: number,
  dst: Uint8Array,
  dOff: number,
): void {
  for (let i = 0; i < IPV6_ALEN; i++) {
    const bits = prefix - 8 * i;
    const m = bits >= 8 ? 255 : bits <= 0 ? 0 : (0xff00 >>> bits) & 255;
    dst[dOff + i] = src[sOff + i] & m;
  }
}

/** Prefix length of a contiguous 16-byte netmask, or -1 when the mask has holes. */
export function ipv6MaskToPrefix(mask: Uint8Array, off = 0): number {
  let n = 0;
  let i = 0;
  while (i < IPV6_ALEN && mask[off + i] === 255) i++;
  n = 8 * i;
  if (i === IPV6_ALEN) return n;
  const p = maskToPrefix((mask[off + i] << 24) >>> 0);
  if (p < 0) return -1;
  for (let k = i + 1; k < IPV6_ALEN; k++) if (mask[off + k] !== 0) return -1;
  return n + p;
}

/**
 * The hot-path key form: word k (0..3) = bytes 4k..4k+3 read big-endian as an unsigned 32-bit
 * number, the same convention as an IPv4 address in the core (so ::ffff:a.b.c.d has a.b.c.d as
 * its word 3). Words compare and hash without touching bytes; store them in a Uint32Array, or an
 * Int32Array holding the same bits (a plain number above 2^31 is boxed by V8). Writes out[outOff..+4].
 */
export function ipv6ToWords(b: Uint8Array, off: number, out: Uint32Array | Int32Array, outOff: number): void {
  out[outOff] = readU32(b, off);
  out[outOff + 1] = readU32(b, off + 4);
  out[outOff + 2] = readU32(b, off + 8);
  out[outOff + 3] = readU32(b, off + 12);
}

/** The inverse of ipv6ToWords: 16 network-order bytes at b[off]. */
export function ipv6FromWords(w: Uint32Array | Int32Array, wOff: number, b: Uint8Array, off: number): void {
  writeU32(b, off, w[wOff]);
  writeU32(b, off + 4, w[wOff + 1]);
  writeU32(b, off + 8, w[wOff + 2]);
  writeU32(b, off + 12, w[wOff + 3]);
}

/** Clears, in place, the bits of the word form past `prefix` (0..128): word k keeps prefix - 32k bits. */
export function ipv6MaskWords(w: Uint32Array | Int32Array, wOff: number, prefix: number): void {
  for (let k = 0; k < 4; k++) {
    const bits = prefix - 32 * k;
    w[wOff + k] &= bits >= 32 ? 0xffffffff : prefixToMask(bits);
  }
}

/**
 * The control plane's IPv6 form (docs/dev-notes.md "IPv6 design"): the text glibc's inet_ntop
 * prints. Any text inet_pton accepts → that form; null when it is not an IPv6 address.
 */
export function canonicalIPv6(s: string): string | null {
  const b = parseIPv6(s);
  return b === null ? null : formatIPv6(b);
}

/** The core's IPv6 form: four words as int32 bits (the engine's rule for numbers it passes on). */
export function ipv6TextWords(s: string): Int32Array | null {
  const b = parseIPv6(s);
  if (b === null) return null;
  const w = new Int32Array(4);
  for (let k = 0; k < 4; k++) w[k] = readU32(b, 4 * k) | 0;
  return w;
}

/** The text of the four-word form. */
export function ipv6WordsText(w: Int32Array): string {
  const b = new Uint8Array(IPV6_ALEN);
  for (let k = 0; k < 4; k++) writeU32(b, 4 * k, w[k] >>> 0);
  return formatIPv6(b);
}

/**
 * The kernel's addr_fold of an IPv6 address (ip_vs_svc_hashkey, ip_vs_sh/dh/lblc/lblcr/mh): the
 * XOR of its four words, u32. The core keeps it where an IPv4 address would be, so that every hash
 * keyed by address treats IPv6 as the kernel does.
 */
export function ipv6Fold(w: Int32Array, off = 0): number {
  return (w[off] ^ w[off + 1] ^ w[off + 2] ^ w[off + 3]) >>> 0;
}

/** ipv6_addr_type's verdict for a destination: unicast, not link-local (fe80::/10), not ::. */
export function ipv6UsableUnicast(w: Int32Array): boolean {
  const w0 = w[0] >>> 0;
  if (w0 >>> 24 === 0xff) return false; // multicast
  if (w0 >>> 22 === 0x3fa) return false; // fe80::/10
  return (w[0] | w[1] | w[2] | w[3]) !== 0;
}
