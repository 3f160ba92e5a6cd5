// What the data plane needs from a link backend: batches of received frames it may rewrite in place,
// and a transmit queue flushed once per loop. Two backends implement it: PacketSocket (recvmmsg and
// sendmmsg, src/io/afpacket.ts) and RingSocket (a TPACKET_V3 mmap receive ring, src/io/ring.ts).

import type { BpfProgram } from "./bpf.js";

export type IoBackend = "mmsg" | "ring";
export const IO_BACKENDS: readonly IoBackend[] = ["mmsg", "ring"];

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
  /** Frames received CHECKSUM_PARTIAL (TP_STATUS_CSUMNOTREADY). */
  rxCsumPartial: number;
  /** Of those, IPv4 TCP/UDP frames whose checksum was completed in place. */
  rxCsumCompleted: number;
  /** Frames whose stripped 802.1Q/802.1ad tag was put back (TP_STATUS_VLAN_VALID). */
  rxVlanRestored: number;
  /** Frames longer than MTU + Ethernet header (+ tag): GRO/LRO/GSO aggregates, not forwardable as is. */
  rxOversize: number;
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
  send(buf: Uint8Array, off: number, len: number): boolean;
  txBuffer(): Uint8Array;
  commit(len: number): boolean;
  /** Queues bytes of received frame i without copying. */
  forward(i: number, off: number, len: number): boolean;
  /** Native address of frame i's first byte; valid until this socket's next recvBatch(). */
  frameAddress(i: number): number;
  /** Queues len bytes at a native address without copying; the memory must live until flush(). */
  queueAddress(addr: number, len: number): void;
  flush(): number;
  kernelStats(): { packets: number; drops: number };
  /** SO_ATTACH_FILTER: replaces the socket's classic BPF filter. */
  attachFilter(prog: BpfProgram): void;
  close(): void;
}
