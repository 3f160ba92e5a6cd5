// The classic BPF filter of the VRRP runner's packet sockets (daemon/vrrp.ts): what keepalived's
// raw sockets would receive, and nothing else of the interface's traffic.
//
//   IPv4 protocol 112                 adverts of the IPv4 instances on the interface
//   IPv6 next header 112              adverts of the IPv6 instances (no extension header before
//                                     it: keepalived's peers send none)
//   ARP (`arp`)                       a unicast IPv4 peer's MAC, from its replies to our requests
//   ICMPv6 neighbour advertisements   a unicast IPv6 peer's MAC, from its answers to our
//   (`na`)                            solicitations (an NA with no extension header either)
//
// Offsets are from the Ethernet header (a packet socket's filter sees the frame with its link
// header; a VLAN tag the NIC took off is not in it).

import type { BpfProgram } from "./bpf.js";

const LD_H_ABS = 0x28;
const LD_B_ABS = 0x30;
const JEQ_K = 0x15;
const RET_K = 0x06;

const ETH_P_IP = 0x0800;
const ETH_P_ARP = 0x0806;
const ETH_P_IPV6 = 0x86dd;
const OFF_TYPE = 12;
const OFF_IP_PROTO = 14 + 9;
const OFF_IP6_NEXTHDR = 14 + 6;
const OFF_ICMP6_TYPE = 14 + 40;
const IPPROTO_VRRP = 112;
const NEXTHDR_ICMPV6 = 58;
const NDISC_NEIGHBOUR_ADVERTISEMENT = 136;

export interface VrrpFilterSpec {
  /** IPv4 adverts (an IPv4 instance uses the interface). */
  ipv4: boolean;
  /** IPv6 adverts (an IPv6 instance uses the interface). */
  ipv6: boolean;
  /** ARP too (an IPv4 instance with unicast peers). */
  arp: boolean;
  /** ICMPv6 neighbour advertisements too (an IPv6 instance with unicast peers). */
  na: boolean;
  /** Bytes of an accepted frame to keep. */
  snaplen?: number;
}

/** One instruction; jt/jf name the label jumped to ("" = the next instruction). */
interface Line {
  label?: string;
  code: number;
  k: number;
  jt?: string;
  jf?: string;
}

/** The socket filter for spec (SO_ATTACH_FILTER; it replaces the socket's previous one). */
export function compileVrrpFilter(spec: VrrpFilterSpec): BpfProgram {
  const snap = spec.snaplen ?? 0x10000;
  const p: Line[] = [
    { code: LD_H_ABS, k: OFF_TYPE },
    { code: JEQ_K, k: ETH_P_IP, jt: spec.ipv4 ? "v4" : "drop" },
    { code: JEQ_K, k: ETH_P_IPV6, jt: spec.ipv6 ? "v6" : "drop" },
    { code: JEQ_K, k: ETH_P_ARP, jt: spec.arp ? "accept" : "drop", jf: "drop" },
    { label: "v4", code: LD_B_ABS, k: OFF_IP_PROTO },
    { code: JEQ_K, k: IPPROTO_VRRP, jt: "accept", jf: "drop" },
    { label: "v6", code: LD_B_ABS, k: OFF_IP6_NEXTHDR },
    { code: JEQ_K, k: IPPROTO_VRRP, jt: "accept", jf: spec.na ? "" : "drop" },
    { code: JEQ_K, k: NEXTHDR_ICMPV6, jf: "drop" },
    { code: LD_B_ABS, k: OFF_ICMP6_TYPE },
    { code: JEQ_K, k: NDISC_NEIGHBOUR_ADVERTISEMENT, jt: "accept", jf: "drop" },
    { label: "accept", code: RET_K, k: snap },
    { label: "drop", code: RET_K, k: 0 },
  ];
  const at = new Map<string, number>();
  p.forEach((l, i) => {
    if (l.label !== undefined) at.set(l.label, i);
  });
  const jump = (from: number, to: string | undefined): number => {
    if (to === undefined || to === "") return 0;
    return (at.get(to) as number) - from - 1;
  };
  const out = new Uint8Array(p.length * 8);
  const dv = new DataView(out.buffer);
  p.forEach((l, i) => {
    dv.setUint16(i * 8, l.code, true);
    out[i * 8 + 2] = jump(i, l.jt);
    out[i * 8 + 3] = jump(i, l.jf);
    dv.setUint32(i * 8 + 4, l.k >>> 0, true);
  });
  return out;
}
