// TCP/UDP port rewrites and the L4 checksum fix-ups shared by every header rewrite.
//
// UDP (RFC 768): a checksum of 0 means "not computed" and stays 0 after any rewrite; a rewritten
// checksum that comes out as 0 is stored as 0xffff (its one's-complement twin), as udp_v4_check's
// CSUM_MANGLED_0 does.

import { readU16, writeU16 } from "../addr.js";
import { csumReplace16, csumReplace32 } from "./csum.js";
import { FLOW_G_L4, type Flow, IPPROTO_TCP, IPPROTO_UDP } from "./flow.js";

/**
 * Offset in buf of the TCP/UDP checksum field of the flow's datagram, or -1 when there is none to
 * fix: another protocol, a non-first fragment (no L4 header), or a field outside the buffer.
 */
export function l4ChecksumOffset(buf: Uint8Array, flow: Flow): number {
  if (flow.fragment && !flow.firstFragment) return -1;
  let off: number;
  if (flow.proto === IPPROTO_TCP) off = flow.l4Off + 16;
  else if (flow.proto === IPPROTO_UDP) off = flow.l4Off + 6;
  else return -1;
  return off >= 0 && off + 2 <= buf.length ? off : -1;
}

function storeL4Check(buf: Uint8Array, flow: Flow, off: number, c: number): void {
  if (c === 0 && flow.proto === IPPROTO_UDP) c = 0xffff;
  writeU16(buf, off, c);
}

/** Fixes the TCP/UDP checksum after a 16-bit word it covers (at an even offset) changed. */
export function l4CsumReplace16(buf: Uint8Array, flow: Flow, oldv: number, newv: number): void {
  const off = l4ChecksumOffset(buf, flow);
  if (off < 0) return;
  const c = readU16(buf, off);
  if (c === 0 && flow.proto === IPPROTO_UDP) return;
  storeL4Check(buf, flow, off, csumReplace16(c, oldv, newv));
}

/** Fixes the TCP/UDP checksum after a 32-bit field it covers (e.g. a pseudo-header address) changed. */
export function l4CsumReplace32(buf: Uint8Array, flow: Flow, oldv: number, newv: number): void {
  const off = l4ChecksumOffset(buf, flow);
  if (off < 0) return;
  const c = readU16(buf, off);
  if (c === 0 && flow.proto === IPPROTO_UDP) return;
  storeL4Check(buf, flow, off, csumReplace32(c, oldv, newv));
}

function setPort(buf: Uint8Array, flow: Flow, rel: number, port: number): boolean {
  if (flow.proto !== IPPROTO_TCP && flow.proto !== IPPROTO_UDP) return false;
  if (flow.fragment && !flow.firstFragment) return false;
  const off = flow.l4Off + rel;
  if (off < 0 || off + 2 > buf.length) return false;
  port &= 0xffff;
  const old = readU16(buf, off);
  writeU16(buf, off, port);
  l4CsumReplace16(buf, flow, old, port);
  return true;
}

/** Rewrites the TCP/UDP source port with an incremental checksum fix; no-op for other protocols. */
export function l4SetSport(buf: Uint8Array, flow: Flow, port: number): void {
  if (setPort(buf, flow, 0, port)) {
    flow.sport = port & 0xffff;
    flow.groups |= FLOW_G_L4;
  }
}

/** Rewrites the TCP/UDP destination port with an incremental checksum fix; no-op for other protocols. */
export function l4SetDport(buf: Uint8Array, flow: Flow, port: number): void {
  if (setPort(buf, flow, 2, port)) {
    flow.dport = port & 0xffff;
    flow.groups |= FLOW_G_L4;
  }
}
