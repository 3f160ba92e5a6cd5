// NAT (LVS-NAT, "Masq"): net/netfilter/ipvs/ip_vs_xmit.c ip_vs_nat_xmit and the
// tcp/udp dnat/snat handlers. Request: dst VIP:vport → RIP:rport. Reply (real server's
// default gateway is the director): src RIP:rport → VIP:vport. Checksums are updated
// incrementally (RFC 1624) by the codecs. Addresses are passed as int32 (`| 0`): a u32 above
// 2^31 crossing a call is a boxed heap number, one allocation per packet.
//
// IPv6 (nat6: ip_vs_nat_xmit_v6, the dnat/snat handlers for AF_INET6, ip_vs_nat_icmp_v6): the
// 128-bit address is replaced with its pseudo-header part of the checksum fixed incrementally
// (csumReplace128); a UDP checksum of 0, invalid over IPv6, is computed in full as
// udp_dnat_handler does. The addresses come from the connection's IPv6 record.

import { ipv6Fold, ipv6FromWords, readU16, writeU16 } from "../addr.js";
import { A6_DADDR, A6_VADDR } from "../conn/table.js";
import { R } from "../counters.js";
import { l4ChecksumV6 } from "../packet/csum.js";
import { type Flow, IPPROTO_UDP } from "../packet/flow.js";
import {
  icmpInnerSetDaddr,
  icmpInnerSetDport,
  icmpInnerSetSaddr,
  icmpInnerSetSport,
  icmpRecomputeChecksum,
} from "../packet/icmp.js";
import { Icmpv6Inner, icmpv6Inner, icmpv6NatRelay } from "../packet/icmpv6.js";
import { ipv4SetDaddr, ipv4SetDaddrDport, ipv4SetSaddr, ipv4SetSaddrSport } from "../packet/ipv4.js";
import { IP6_DADDR, IP6_SADDR, ipv6L4CheckOffset, ipv6SetAddr } from "../packet/ipv6.js";
import { l4SetDport, l4SetSport } from "../packet/l4.js";
import { Verdict, type XmitEngine, type XmitMethod } from "./types.js";

export const nat: XmitMethod = {
  name: "nat",

  inbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    const p = e.destPath(t.destOf(c));
    if (p === null) return Verdict.Drop;
    const len = f.l3End - f.l3Off;
    if (!e.fitsPath(p, len, 0, f, f.daddr | 0, now)) return Verdict.Drop;
    ipv4SetDaddrDport(f.buf, f, t.daddrOf(c) | 0, t.dportOf(c));
    return e.emitToDest(f.buf, f.l3Off, len, p, now);
  },

  outbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    ipv4SetSaddrSport(f.buf, f, t.vaddrOf(c) | 0, t.vportOf(c));
    return e.emitIp(f.buf, f.l3Off, f.l3End - f.l3Off, f.daddr | 0, now);
  },

  // ip_vs_nat_icmp(inout = 0): the client reports an error about a reply it got from
  // VIP:vport; the real server must see it about RIP:rport.
  icmpInbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    const p = e.destPath(t.destOf(c));
    if (p === null) return Verdict.Drop;
    ipv4SetDaddr(f.buf, f, t.daddrOf(c) | 0);
    icmpInnerSetSaddr(f.buf, f, t.daddrOf(c));
    icmpInnerSetSport(f.buf, f, t.dportOf(c));
    icmpRecomputeChecksum(f.buf, f);
    return e.emitToDest(f.buf, f.l3Off, f.l3End - f.l3Off, p, now);
  },

  // ip_vs_nat_icmp(inout = 1): an error about a request we forwarded (CIP → RIP:rport) goes
  // back to the client as if it were about CIP → VIP:vport, from the VIP.
  icmpOutbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    ipv4SetSaddr(f.buf, f, t.vaddrOf(c) | 0);
    icmpInnerSetDaddr(f.buf, f, t.vaddrOf(c));
    icmpInnerSetDport(f.buf, f, t.vportOf(c));
    icmpRecomputeChecksum(f.buf, f);
    return e.emitIp(f.buf, f.l3Off, f.l3End - f.l3Off, f.daddr | 0, now);
  },
};

/** An address as 16 bytes (the IPv6 codecs' form) and the quoted packet of a relayed error. */
const addr16 = new Uint8Array(16);
const quoted = new Icmpv6Inner();

/**
 * The IPv6 source (IP6_SADDR) or destination (IP6_DADDR) of f becomes the four words at
 * w[wOff], and its TCP/UDP port at `portRel` (0 source, 2 destination) becomes `port`, with the
 * checksum fixed; the Flow follows.
 */
export function setAddrPort6(
  f: Flow,
  which: typeof IP6_SADDR | typeof IP6_DADDR,
  w: Int32Array,
  wOff: number,
  port: number,
): void {
  const buf = f.buf;
  ipv6FromWords(w, wOff, addr16, 0);
  const check = ipv6L4CheckOffset(buf, f);
  ipv6SetAddr(buf, f.l3Off + which, addr16, 0, check, f.proto);
  const fw = which === IP6_SADDR ? f.s6 : f.d6;
  for (let k = 0; k < 4; k++) fw[k] = w[wOff + k];
  if (which === IP6_SADDR) {
    f.saddr = ipv6Fold(fw);
    l4SetSport(buf, f, port);
  } else {
    f.daddr = ipv6Fold(fw);
    l4SetDport(buf, f, port);
  }
  // udp_dnat_handler / udp_snat_handler: no checksum is no option over IPv6, it is computed.
  if (f.proto === IPPROTO_UDP && check >= 0 && !f.fragment && readU16(buf, check) === 0)
    writeU16(buf, check, l4ChecksumV6(buf, f.l3Off, f.l4Off, f.l3End - f.l4Off, IPPROTO_UDP));
}

/**
 * ip_vs_nat_icmp_v6: the error in f about connection c gets its side rewritten (icmpv6NatRelay):
 * inbound to the real server (address and port of the connection's destination), outbound to the
 * client (the VIP and virtual port). False when the quote cannot be walked (nothing changed).
 */
function relay6(e: XmitEngine, c: number, f: Flow, outbound: boolean): boolean {
  const t = e.conns;
  const a = t.addr6Words;
  if (a === null || icmpv6Inner(f.buf, f, quoted) !== 0) return false;
  ipv6FromWords(a, (c << 4) + (outbound ? A6_VADDR : A6_DADDR), addr16, 0);
  icmpv6NatRelay(f.buf, f, quoted, outbound, addr16, 0, outbound ? t.vportOf(c) : t.dportOf(c));
  return true;
}

export const nat6: XmitMethod = {
  name: "nat",

  inbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    const p = e.destPath(t.destOf(c));
    const a = t.addr6Words;
    if (p === null || a === null) return Verdict.Drop;
    const len = f.l3End - f.l3Off;
    if (!e.fitsPath6(p, len, 0, f, f.d6, now)) return Verdict.Drop;
    setAddrPort6(f, IP6_DADDR, a, (c << 4) + A6_DADDR, t.dportOf(c));
    return e.emitToDest6(f.buf, f.l3Off, len, p, now);
  },

  outbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const t = e.conns;
    const a = t.addr6Words;
    if (a === null) return Verdict.Drop;
    setAddrPort6(f, IP6_SADDR, a, (c << 4) + A6_VADDR, t.vportOf(c));
    return e.emitIp6(f.buf, f.l3Off, f.l3End - f.l3Off, f.d6, 0, 0, now);
  },

  icmpInbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    const p = e.destPath(e.conns.destOf(c));
    if (p === null) return Verdict.Drop;
    if (!relay6(e, c, f, false)) return e.drop(R.icmp_unrelated);
    return e.emitToDest6(f.buf, f.l3Off, f.l3End - f.l3Off, p, now);
  },

  icmpOutbound(e: XmitEngine, c: number, f: Flow, now: number): number {
    if (!relay6(e, c, f, true)) return e.drop(R.icmp_unrelated);
    return e.emitIp6(f.buf, f.l3Off, f.l3End - f.l3Off, f.d6, 0, 0, now);
  },
};
