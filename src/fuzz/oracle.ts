// What must hold of every frame the director sends, whatever came in: the in-process run checks
// each output frame against it, with its own reading of the bytes (not the product's codecs).
//
//   - IPv4: version 4, IHL ≥ 5, the header checksum right (the input's was verified, and every
//     rewrite must keep it right), the total length within the frame;
//   - IPv6: version 6, the payload length within the frame;
//   - TCP, UDP (non-zero), ICMP and ICMPv6 of a whole, unfragmented datagram: the checksum right —
//     unless the frame that went in had a wrong one (IPVS rewrites incrementally: a wrong sum stays
//     wrong, as the kernel's does) or the frame goes out as a GSO aggregate (its sum is partial).
//
// checksumOk is also how the harness decides whether an input's upper-layer checksum was right.

import {
  ETH_HLEN,
  ETH_P_8021AD,
  ETH_P_8021Q,
  ETH_P_IP,
  ETH_P_IPV6,
  get16,
  pseudo4,
  pseudo6,
  sum16,
} from "./wire.js";

export const L4_NONE = 0;
export const L4_OK = 1;
export const L4_BAD = 2;

/** Where the IP header of a frame is (after any VLAN tags), and its ethertype; -1 when cut. */
function l3Of(b: Uint8Array, len: number): { l3: number; et: number } {
  let o = 12;
  let et = len >= 14 ? get16(b, 12) : 0;
  while ((et === ETH_P_8021Q || et === ETH_P_8021AD) && o + 6 <= len) {
    o += 4;
    et = get16(b, o);
  }
  return { l3: o + 2, et };
}

function folded(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/**
 * The upper-layer checksum of the frame's datagram: L4_OK, L4_BAD, or L4_NONE when there is none to
 * check (not TCP/UDP/ICMP/ICMPv6, a fragment, extension headers, a UDP checksum of 0, a cut frame).
 */
export function checksumState(b: Uint8Array, len: number): number {
  const { l3, et } = l3Of(b, len);
  if (et === ETH_P_IP) {
    if (l3 + 20 > len || b[l3] >> 4 !== 4) return L4_NONE;
    const ihl = (b[l3] & 15) * 4;
    const tot = get16(b, l3 + 2);
    if (ihl < 20 || tot < ihl || l3 + tot > len || (get16(b, l3 + 6) & 0x3fff) !== 0) return L4_NONE;
    const p = b[l3 + 9];
    const l4 = l3 + ihl;
    const n = tot - ihl;
    if (p === 6 && n >= 20) return folded(sum16(b, l4, n, pseudo4(b, l3, 6, n))) === 0xffff ? L4_OK : L4_BAD;
    if (p === 17 && n >= 8) {
      if (get16(b, l4 + 6) === 0) return L4_NONE;
      return folded(sum16(b, l4, n, pseudo4(b, l3, 17, n))) === 0xffff ? L4_OK : L4_BAD;
    }
    if (p === 1 && n >= 8) return folded(sum16(b, l4, n)) === 0xffff ? L4_OK : L4_BAD;
    return L4_NONE;
  }
  if (et === ETH_P_IPV6) {
    if (l3 + 40 > len || b[l3] >> 4 !== 6) return L4_NONE;
    const end = l3 + 40 + get16(b, l3 + 4);
    if (end > len) return L4_NONE;
    // The extension headers (RFC 8200 §4), up to the upper layer; a real fragment has no sum to check.
    let p = b[l3 + 6];
    let l4 = l3 + 40;
    for (let k = 0; k < 16 && (p === 0 || p === 43 || p === 44 || p === 60 || p === 51); k++) {
      if (l4 + 8 > end) return L4_NONE;
      if (p === 44 && (get16(b, l4 + 2) & 0xfff9) !== 0) return L4_NONE;
      const h = p === 44 ? 8 : p === 51 ? (b[l4 + 1] + 2) * 4 : (b[l4 + 1] + 1) * 8;
      p = b[l4];
      l4 += h;
    }
    const n = end - l4;
    if ((p === 6 && n >= 20) || (p === 17 && n >= 8) || (p === 58 && n >= 8))
      return folded(sum16(b, l4, n, pseudo6(b, l3, p, n))) === 0xffff ? L4_OK : L4_BAD;
    return L4_NONE;
  }
  return L4_NONE;
}

/**
 * Why the output frame b[0, len) breaks the rules above, or null. inputL4: the checksum state of the
 * frame that went in; partial: the frame leaves with a virtio_net_hdr asking for its checksum.
 */
export function outputViolation(
  b: Uint8Array,
  len: number,
  inputL4: number,
  partial: boolean,
): string | null {
  if (len < ETH_HLEN) return `frame of ${len} bytes`;
  const { l3, et } = l3Of(b, len);
  if (et === ETH_P_IP) {
    if (l3 + 20 > len) return "IPv4 header cut";
    if (b[l3] >> 4 !== 4) return `IPv4 version ${b[l3] >> 4}`;
    const ihl = (b[l3] & 15) * 4;
    if (ihl < 20 || l3 + ihl > len) return `IPv4 IHL ${ihl}`;
    if (folded(sum16(b, l3, ihl)) !== 0xffff) return "IPv4 header checksum";
    const tot = get16(b, l3 + 2);
    if (tot < ihl || l3 + tot > len) return `IPv4 total length ${tot} in a frame of ${len - l3}`;
  } else if (et === ETH_P_IPV6) {
    if (l3 + 40 > len) return "IPv6 header cut";
    if (b[l3] >> 4 !== 6) return `IPv6 version ${b[l3] >> 4}`;
    const n = get16(b, l3 + 4);
    if (l3 + 40 + n > len) return `IPv6 payload length ${n} in a frame of ${len - l3 - 40}`;
  } else return null;
  if (partial || inputL4 === L4_BAD) return null;
  return checksumState(b, len) === L4_BAD ? "upper-layer checksum" : null;
}

/**
 * checksumState of a frame sent CHECKSUM_PARTIAL (a virtio_net_hdr with NEEDS_CSUM): the state it
 * has once finished as a device would — the sum from csum_start to the end (the field holding the
 * pseudo-header sum) complemented into csum_start + csum_offset — on a copy.
 */
export function partialState(b: Uint8Array, len: number, vnet: Uint8Array): number {
  const start = vnet[6] | (vnet[7] << 8);
  const at = start + (vnet[8] | (vnet[9] << 8));
  if (start >= len || at + 2 > len) return L4_NONE;
  const c = b.slice(0, len);
  const v = ~folded(sum16(c, start, len - start)) & 0xffff;
  c[at] = v >>> 8;
  c[at + 1] = v;
  return checksumState(c, len);
}

/**
 * An ARP or neighbour solicitation/advertisement: it may release frames the director queued for
 * that neighbour (earlier inputs), whose checksums say nothing about this one.
 */
export function releasesQueued(b: Uint8Array, len: number): boolean {
  const { l3, et } = l3Of(b, len);
  if (et === 0x0806) return true;
  if (et !== ETH_P_IPV6 || l3 + 40 > len) return false;
  let p = b[l3 + 6];
  let l4 = l3 + 40;
  for (let k = 0; k < 16 && (p === 0 || p === 43 || p === 44 || p === 60 || p === 51) && l4 + 8 <= len; k++) {
    const h = p === 44 ? 8 : p === 51 ? (b[l4 + 1] + 2) * 4 : (b[l4 + 1] + 1) * 8;
    p = b[l4];
    l4 += h;
  }
  return p === 58 && l4 < len && (b[l4] === 135 || b[l4] === 136);
}
