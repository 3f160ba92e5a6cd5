// What the data plane needs from a link backend: batches of received frames it may rewrite in place,
// and a transmit queue flushed once per loop. Three backends implement it: PacketSocket (recvmmsg and
// sendmmsg, src/io/afpacket.ts), RingSocket (a TPACKET_V3 mmap receive ring, src/io/ring.ts) and
// XdpSocket (AF_XDP rings over a UMEM, src/io/xdp.ts; the daemon falls back to mmsg where the XDP
// program cannot be attached).

import type { BpfProgram } from "./bpf.js";

export type IoBackend = "mmsg" | "ring" | "xdp";
export const IO_BACKENDS: readonly IoBackend[] = ["mmsg", "ring", "xdp"];

/** Counters kept by the socket itself (monotonic, never reset). */
export interface PacketSocketCounters {
  rxFrames: number;
  rxBytes: number;
  /** Frames longer than snaplen, delivered cut. */
  rxTruncated: number;
  txFrames: number;
  txBytes: number;
  /** Frames the kernel refused for lack of buffer (ENOBUFS/EAGAIN): dropped, as a NIC would. */
  txDropped: number;
  /** Frames refused for another reason (EMSGSIZE, ENETDOWN, …); lastTxErrno says which. */
  txErrors: number;
  lastTxErrno: number;
  /** send()/commit() calls with a frame larger than txFrameSize (not queued). */
  txOversize: number;
  /** Frames received CHECKSUM_PARTIAL (TP_STATUS_CSUMNOTREADY, or the virtio_net_hdr's NEEDS_CSUM). */
  rxCsumPartial: number;
  /** Of those, IPv4 TCP/UDP frames whose checksum was completed in place (aggregates never are). */
  rxCsumCompleted: number;
  /** Frames whose stripped 802.1Q/802.1ad tag was put back (TP_STATUS_VLAN_VALID). */
  rxVlanRestored: number;
  /**
   * Frames longer than MTU + Ethernet header (+ tag) that came without GSO metadata (no
   * virtio_net_hdr, or gso_type NONE): the kernel refuses to send them as they are.
   */
  rxOversize: number;
  /** GSO/GRO aggregates received (virtio_net_hdr gso_type set): forwarded whole or segmented. */
  rxAggregates: number;
  /** Frames the kernel dropped because it could not describe them in a virtio_net_hdr (recvmsg EINVAL). */
  rxVnetErrors: number;
  /** Frames sent with a GSO virtio_net_hdr (the kernel or the device segments them). */
  txAggregates: number;
}

export interface FrameIo {
  readonly ifname: string;
  readonly ifindex: number;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly batch: number;
  readonly counters: PacketSocketCounters;
  readonly fd: number;
  readonly closed: boolean;
  /** Frames queued for transmit and not yet flushed. */
  readonly pending: number;
  /** Flushes queued transmits, then returns up to `batch` received frames (0 on timeout). */
  recvBatch(timeoutMs: number): number;
  /** Frame i of the last batch: valid and unchanged until the next recvBatch(). */
  frame(i: number): Uint8Array;
  length(i: number): number;
  pktType(i: number): number;
  /**
   * Offload word of frame i (src/core/packet/vnet.ts: gso_size, gso_type, NEEDS_CSUM), 0 for a
   * plain frame; what Engine.input takes as its `offload` argument.
   */
  offload(i: number): number;
  /** True when frames carry a virtio_net_hdr (PACKET_VNET_HDR): aggregates can be received and sent. */
  readonly vnetHdr: boolean;
  /**
   * The transmit calls take an optional 10-byte virtio_net_hdr (null: all zeros, a plain frame);
   * on a socket without PACKET_VNET_HDR it must be null.
   */
  send(buf: Uint8Array, off: number, len: number, vnet?: Uint8Array | null): boolean;
  txBuffer(): Uint8Array;
  commit(len: number, vnet?: Uint8Array | null): boolean;
  /** Queues bytes of received frame i without copying. */
  forward(i: number, off: number, len: number, vnet?: Uint8Array | null): boolean;
  /** Native address of frame i's first byte; valid until this socket's next recvBatch(). */
  frameAddress(i: number): number;
  /** Queues len bytes at a native address without copying; the memory must live until flush(). */
  queueAddress(addr: number, len: number, vnet?: Uint8Array | null): void;
  flush(): number;
  kernelStats(): { packets: number; drops: number };
  /** SO_ATTACH_FILTER: replaces the socket's classic BPF filter. */
  attachFilter(prog: BpfProgram): void;
  close(): void;
}
