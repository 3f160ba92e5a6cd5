import { dr, dr6 } from "./dr.js";
import { fullnat, fullnat6 } from "./fullnat.js";
import { nat, nat6 } from "./nat.js";
import { tun, tun6 } from "./tun.js";
import type { XmitMethod } from "./types.js";

/**
 * Methods indexed by the connection's forwarding bits (Fwd): a connection is bound to its
 * method when created (the kernel's cp->packet_xmit), by the value stored in its flags.
 * Local and Bypass are not forwarding methods tsvs offers; they map to DR so the table is dense.
 */
export const XMIT: readonly XmitMethod[] = [nat, dr, tun, dr, dr, fullnat];

/** The same for connections whose client side is IPv6 (conn/table.ts isIpv6). */
export const XMIT6: readonly XmitMethod[] = [nat6, dr6, tun6, dr6, dr6, fullnat6];
