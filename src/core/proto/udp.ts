// UDP in IPVS (net/netfilter/ipvs/ip_vs_proto_udp.c) has a single state, IP_VS_UDP_S_NORMAL,
// which `ipvsadm -L -c` prints as "UDP"; its timeout is the only one `--set udp` changes.

export const UDP_S_NORMAL = 0;
export const UDP_S_LAST = 1;
export const UDP_STATE_NAME = "UDP";
export const UDP_STATE_NAMES: readonly string[] = [UDP_STATE_NAME];
