import { dr } from "./dr.js";
import { fullnat } from "./fullnat.js";
import { nat } from "./nat.js";
import { tun } from "./tun.js";
import type { XmitMethod } from "./types.js";

/**
 * Methods indexed by the connection's forwarding bits (Fwd): a connection is bound to its
 * method when created (the kernel's cp->packet_xmit), by the value stored in its flags.
 * Local and Bypass are not forwarding methods tsvs offers; they map to DR so the table is dense.
 */
export const XMIT: readonly XmitMethod[] = [nat, dr, tun, dr, dr, fullnat];
