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
export const FLOW_G_IP6 = 16;
export const FLOW_G_ALL = FLOW_G_IP | FLOW_G_L4 | FLOW_G_ICMP | FLOW_G_ARP | FLOW_G_IP6;

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
  /** The upper-layer protocol (IPv6: after the extension headers). */
  proto = 0;
  /**
   * IPv4: the addresses (u32). IPv6: the kernel's addr_fold of s6/d6 (the XOR of the words, u32),
   * so that every hash keyed by address (schedulers, connection table, service index) treats
   * IPv6 as the kernel's does; anything that compares addresses compares the words too.
   */
  saddr = 0;
  daddr = 0;
  /** IPv6 addresses: word k = bytes 4k..4k+3 big-endian, as int32 bits (addr.ts ipv6ToWords). */
  readonly s6 = new Int32Array(4);
  readonly d6 = new Int32Array(4);
  /** TTL, or the IPv6 hop limit. */
  ttl = 0;
  /** TOS, or the IPv6 traffic class. */
  tos = 0;
  ipId = 0;
  /** Don't-fragment bit set; always for IPv6, which routers never fragment. */
  df = false;
  /** Any fragment (MF set or offset > 0); only the first fragment has ports. */
  fragment = false;
  firstFragment = false;

  /**
   * The rest of an IPv6 extension-header walk (packet/ipv6.ts Ipv6Walk, whose fields the Flow
   * shares by name): the parser walks into the Flow itself, and the IPv6 codecs that take a walk
   * take the Flow. Meaningful for af 6 only.
   */
  protoOff = 0;
  extCount = 0;
  routingOff = -1;
  fragHdrOff = -1;
  /** Fragment offset in bytes, the M flag and the identification of the fragment header. */
  fragOffset = 0;
  fragMore = false;
  fragId = 0;

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
  /** The embedded addresses (IPv6: folds, with the words in innerS6/innerD6). */
  innerSaddr = 0;
  innerDaddr = 0;
  readonly innerS6 = new Int32Array(4);
  readonly innerD6 = new Int32Array(4);
  innerSport = 0;
  innerDport = 0;
  /** The error quotes at least 8 bytes of the embedded TCP/UDP header (innerSport/Dport are valid). */
  innerHasPorts = false;

  /** ARP (ethType 0x0806): operation, sender and target protocol addresses; sender MAC is at l3Off + 8. */
  arpOp = 0;
  arpSpa = 0;
  arpTpa = 0;

  /**
   * Set once by the owner of the Flow when it handles IPv6: parseFrame then parses ethertype
   * 0x86DD. Without it an IPv6 frame is PARSE_OTHER, for callers that handle IPv4 only.
   */
  acceptIpv6 = false;

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
