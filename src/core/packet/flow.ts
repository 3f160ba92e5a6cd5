// The packet descriptor: a frame is parsed once (parseFrame in parse.ts) into one reusable
// Flow, and every later stage (service lookup, scheduling, state, xmit) reads the
// descriptor instead of the bytes. One instance per data-path context: no allocation per packet.

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;
export const ETH_P_IPV6 = 0x86dd;

export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

/**
 * Field groups of a Flow, for the parser's reset: a group the previous parse did not write is
 * still at its defaults, and a group the current parse writes whole needs no reset either, so
 * an established TCP packet after another one resets nothing but the frame fields.
 */
export const FLOW_G_IP = 1;
export const FLOW_G_L4 = 2;
export const FLOW_G_ICMP = 4;
export const FLOW_G_ARP = 8;
export const FLOW_G_ALL = FLOW_G_IP | FLOW_G_L4 | FLOW_G_ICMP | FLOW_G_ARP;

export class Flow {
  /** The frame being processed and its length (frames may sit in larger buffers). */
  buf: Uint8Array = new Uint8Array(0);
  len = 0;
  /** Ethernet: destination/source MAC offsets are 0 and 6; ethType after VLAN tags. */
  ethType = 0;
  /** 802.1Q tag (TCI) or -1. */
  vlan = -1;
  /** Offsets of the network and transport headers and of the transport payload. */
  l3Off = 0;
  l4Off = 0;
  payloadOff = 0;
  /** End of the IP datagram (l3Off + total length), which may be before `len` (padding). */
  l3End = 0;

  af: 4 | 6 = 4;
  proto = 0;
  saddr = 0;
  daddr = 0;
  ttl = 0;
  tos = 0;
  ipId = 0;
  /** Don't-fragment bit set. */
  df = false;
  /** Any fragment (MF set or offset > 0); only the first fragment has ports. */
  fragment = false;
  firstFragment = false;

  sport = 0;
  dport = 0;
  tcpFlags = 0;
  tcpSeq = 0;
  tcpAck = 0;

  icmpType = 0;
  icmpCode = 0;
  /** Echo identifier (used as both ports of an ICMP echo "connection"). */
  icmpId = 0;

  /** Set for ICMP errors that carry an embedded header (dest unreach, time exceeded...). */
  hasInner = false;
  innerL3Off = 0;
  innerL4Off = 0;
  innerProto = 0;
  innerSaddr = 0;
  innerDaddr = 0;
  innerSport = 0;
  innerDport = 0;
  /** The error quotes at least 8 bytes of the embedded TCP/UDP header (innerSport/Dport are valid). */
  innerHasPorts = false;

  /** ARP (ethType 0x0806): operation, sender and target protocol addresses; sender MAC is at l3Off + 8. */
  arpOp = 0;
  arpSpa = 0;
  arpTpa = 0;

  /** Firewall mark set by the classifier (0 = none). */
  fwmark = 0;
  /** Index of the link (interface) the frame arrived on. */
  ifindex = 0;

  /**
   * GSO metadata of an aggregate (src/core/packet/vnet.ts), set by Engine.input from the offload
   * word for every frame: gso_type (ECN bit included; 0 = a plain frame), gso_size, and whether the
   * transport checksum is partial (NEEDS_CSUM: the field holds the pseudo-header sum).
   */
  gsoType = 0;
  gsoSize = 0;
  csumPartial = false;

  /**
   * FLOW_G_* groups that may hold non-default values: those the last parseFrame wrote (all of
   * them for a flow never parsed). Only parseFrame reads it. Code that writes a field of a
   * group the parse did not write (e.g. icmpType on a TCP flow) must set the group's bit.
   */
  groups = FLOW_G_ALL;
}
