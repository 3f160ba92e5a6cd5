// IPv4 header (RFC 791): field offsets, address/TTL rewrites with incremental checksums
// (RFC 1624), and a header writer.

import { readU16, readU32, writeU16, writeU32 } from "../addr.js";
import { csumFinish, csumFold, csumReplace16, csumReplace32 } from "./csum.js";
import { FLOW_G_IP, FLOW_G_L4, type Flow, IPPROTO_UDP } from "./flow.js";
import { l4ChecksumOffset, l4CsumReplace32 } from "./l4.js";

export const IP_VER_IHL = 0;
export const IP_TOS = 1;
export const IP_TOTLEN = 2;
export const IP_ID = 4;
export const IP_FRAG = 6;
export const IP_TTL = 8;
export const IP_PROTO = 9;
export const IP_CHECK = 10;
export const IP_SADDR = 12;
export const IP_DADDR = 16;
export const IPV4_HLEN = 20;
export const IP_DF = 0x4000;
export const IP_MF = 0x2000;
export const IP_OFFMASK = 0x1fff;

function setAddr(buf: Uint8Array, flow: Flow, field: number, addr: number): boolean {
  const l3 = flow.l3Off;
  if (l3 < 0 || l3 + IPV4_HLEN > buf.length) return false;
  addr >>>= 0;
  const old = readU32(buf, l3 + field);
  writeU32(buf, l3 + field, addr);
  writeU16(buf, l3 + IP_CHECK, csumReplace32(readU16(buf, l3 + IP_CHECK), old, addr));
  // The addresses are part of the TCP/UDP pseudo-header (not of ICMP's).
  l4CsumReplace32(buf, flow, old, addr);
  return true;
}

/** Rewrites the source address; fixes the IP and (TCP/UDP) L4 checksums; updates flow.saddr. */
export function ipv4SetSaddr(buf: Uint8Array, flow: Flow, addr: number): void {
  if (setAddr(buf, flow, IP_SADDR, addr)) {
    flow.saddr = addr >>> 0;
    flow.groups |= FLOW_G_IP;
  }
}

/** Rewrites the destination address; fixes the IP and (TCP/UDP) L4 checksums; updates flow.daddr. */
export function ipv4SetDaddr(buf: Uint8Array, flow: Flow, addr: number): void {
  if (setAddr(buf, flow, IP_DADDR, addr)) {
    flow.daddr = addr >>> 0;
    flow.groups |= FLOW_G_IP;
  }
}

/**
 * An address and the TCP/UDP port of the same end rewritten together (NAT, FULLNAT): one
 * incremental update of each checksum instead of two (RFC 1624 eqn. 3 over both changes).
 * Same results as setAddr + l4SetSport/Dport; the port is left alone when the datagram has
 * no TCP/UDP header (other protocols, non-first fragments).
 */
function setAddrPort(
  buf: Uint8Array,
  flow: Flow,
  field: number,
  portRel: number,
  addr: number,
  port: number,
): boolean {
  const l3 = flow.l3Off;
  if (l3 < 0 || l3 + IPV4_HLEN > buf.length) return false;
  // Addresses stay int32 here (small integers for V8: a u32 above 2^31 would be boxed).
  addr |= 0;
  port &= 0xffff;
  const a = l3 + field;
  const old = (buf[a] << 24) | (buf[a + 1] << 16) | (buf[a + 2] << 8) | buf[a + 3];
  buf[a] = addr >>> 24;
  buf[a + 1] = addr >>> 16;
  buf[a + 2] = addr >>> 8;
  buf[a + 3] = addr;
  const ipSum =
    (~((buf[l3 + IP_CHECK] << 8) | buf[l3 + IP_CHECK + 1]) & 0xffff) +
    (~old >>> 16) +
    (~old & 0xffff) +
    (addr >>> 16) +
    (addr & 0xffff);
  const ipCheck = ~csumFold(ipSum) & 0xffff;
  buf[l3 + IP_CHECK] = ipCheck >>> 8;
  buf[l3 + IP_CHECK + 1] = ipCheck;
  const off = l4ChecksumOffset(buf, flow);
  if (off < 0) return true;
  // The checksum field lies after both ports, so both are inside the buffer.
  const pOff = flow.l4Off + portRel;
  const oldPort = (buf[pOff] << 8) | buf[pOff + 1];
  buf[pOff] = port >>> 8;
  buf[pOff + 1] = port;
  if (portRel === 0) flow.sport = port;
  else flow.dport = port;
  flow.groups |= FLOW_G_L4;
  const c = (buf[off] << 8) | buf[off + 1];
  if (c === 0 && flow.proto === IPPROTO_UDP) return true;
  const sum =
    (~c & 0xffff) +
    (~old >>> 16) +
    (~old & 0xffff) +
    (addr >>> 16) +
    (addr & 0xffff) +
    (~oldPort & 0xffff) +
    port;
  let n = ~csumFold(sum) & 0xffff;
  if (n === 0 && flow.proto === IPPROTO_UDP) n = 0xffff;
  buf[off] = n >>> 8;
  buf[off + 1] = n;
  return true;
}

/** ipv4SetSaddr + l4SetSport in one pass (flow.saddr, flow.sport updated). */
export function ipv4SetSaddrSport(buf: Uint8Array, flow: Flow, addr: number, port: number): void {
  if (setAddrPort(buf, flow, IP_SADDR, 0, addr, port)) {
    flow.saddr = addr >>> 0;
    flow.groups |= FLOW_G_IP;
  }
}

/** ipv4SetDaddr + l4SetDport in one pass (flow.daddr, flow.dport updated). */
export function ipv4SetDaddrDport(buf: Uint8Array, flow: Flow, addr: number, port: number): void {
  if (setAddrPort(buf, flow, IP_DADDR, 2, addr, port)) {
    flow.daddr = addr >>> 0;
    flow.groups |= FLOW_G_IP;
  }
}

/** TTL - 1 with the header checksum fixed (as ip_decrease_ttl); no-op when the TTL is already 0. */
export function ipv4DecTtl(buf: Uint8Array, flow: Flow): void {
  const l3 = flow.l3Off;
  if (l3 < 0 || l3 + IPV4_HLEN > buf.length) return;
  const ttl = buf[l3 + IP_TTL];
  if (ttl === 0) return;
  // TTL is the high byte of the TTL/protocol word.
  const oldw = (ttl << 8) | buf[l3 + IP_PROTO];
  const neww = oldw - 0x100;
  buf[l3 + IP_TTL] = ttl - 1;
  writeU16(buf, l3 + IP_CHECK, csumReplace16(readU16(buf, l3 + IP_CHECK), oldw, neww));
  flow.ttl = ttl - 1;
  flow.groups |= FLOW_G_IP;
}

/** Writes a 20-byte header (no options) with its checksum; frag = flags + fragment offset field. */
export function writeIpv4Header(
  buf: Uint8Array,
  off: number,
  tos: number,
  totalLen: number,
  id: number,
  frag: number,
  ttl: number,
  proto: number,
  saddr: number,
  daddr: number,
): void {
  tos &= 255;
  totalLen &= 0xffff;
  id &= 0xffff;
  frag &= 0xffff;
  ttl &= 255;
  proto &= 255;
  saddr >>>= 0;
  daddr >>>= 0;
  buf[off] = 0x45;
  buf[off + IP_TOS] = tos;
  writeU16(buf, off + IP_TOTLEN, totalLen);
  writeU16(buf, off + IP_ID, id);
  writeU16(buf, off + IP_FRAG, frag);
  buf[off + IP_TTL] = ttl;
  buf[off + IP_PROTO] = proto;
  writeU32(buf, off + IP_SADDR, saddr);
  writeU32(buf, off + IP_DADDR, daddr);
  // Summed from the values, not read back, so a short buffer cannot poison the sum.
  const s =
    (0x4500 | tos) +
    totalLen +
    id +
    frag +
    ((ttl << 8) | proto) +
    (saddr >>> 16) +
    (saddr & 0xffff) +
    (daddr >>> 16) +
    (daddr & 0xffff);
  writeU16(buf, off + IP_CHECK, csumFinish(s));
}
