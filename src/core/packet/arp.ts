// ARP for Ethernet/IPv4 (RFC 826): the only ARP the director speaks.

import { writeU16, writeU32 } from "../addr.js";
import { copyMac } from "./eth.js";
import { ETH_P_IP } from "./flow.js";

export const ARP_HTYPE = 0;
export const ARP_PTYPE = 2;
export const ARP_HLEN_OFF = 4;
export const ARP_PLEN_OFF = 5;
export const ARP_OP = 6;
export const ARP_SHA = 8;
export const ARP_SPA = 14;
export const ARP_THA = 18;
export const ARP_TPA = 24;
/** Length of the Ethernet/IPv4 ARP body. */
export const ARP_LEN = 28;

export const ARPHRD_ETHER = 1;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

/** Writes an Ethernet/IPv4 ARP body at off (sha/tha: 6 bytes from offset 0; spa/tpa host order). */
export function writeArp(
  buf: Uint8Array,
  off: number,
  op: number,
  sha: Uint8Array,
  spa: number,
  tha: Uint8Array,
  tpa: number,
): void {
  writeU16(buf, off + ARP_HTYPE, ARPHRD_ETHER);
  writeU16(buf, off + ARP_PTYPE, ETH_P_IP);
  buf[off + ARP_HLEN_OFF] = 6;
  buf[off + ARP_PLEN_OFF] = 4;
  writeU16(buf, off + ARP_OP, op);
  copyMac(buf, off + ARP_SHA, sha, 0);
  writeU32(buf, off + ARP_SPA, spa);
  copyMac(buf, off + ARP_THA, tha, 0);
  writeU32(buf, off + ARP_TPA, tpa);
}
