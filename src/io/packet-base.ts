// What PacketSocket (recvmmsg, src/io/afpacket.ts) and RingSocket (TPACKET_V3 rx ring, src/io/ring.ts)
// have in common: the AF_PACKET socket up to (not including) bind(), the interface's identity, the
// sendmmsg transmit batch and the lifecycle. A subclass adds its receive path and binds.

import { VNET_F_NEEDS_CSUM } from "../core/packet/vnet.js";
import type { BpfProgram } from "./bpf.js";
import { attachFilter } from "./bpf.js";
import type { FrameIo, PacketSocketCounters } from "./frame-io.js";
import {
  libc,
  PACKET_IGNORE_OUTGOING,
  PACKET_QDISC_BYPASS,
  PACKET_VNET_HDR,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOL_PACKET,
} from "./libc.js";
import {
  addPromisc,
  checkIfname,
  completeL4Checksum,
  freeRegions,
  ifHwInfo,
  ifIndex,
  newCounters,
  packetSocketFd,
  pollIn,
  type Region,
  setBufSize,
  setIntOpt,
} from "./packet-common.js";
import { TxBatch } from "./tx-batch.js";

export interface PacketSocketBaseOptions {
  /** Do not receive our own transmissions (PACKET_IGNORE_OUTGOING, Linux ≥ 4.20). Default true. */
  ignoreOutgoing?: boolean;
  /** Receive frames for any MAC (PACKET_MR_PROMISC membership, dropped with the socket). Default false. */
  promisc?: boolean;
  /** SO_SNDBUF in bytes (SO_SNDBUFFORCE when root). Default 4 MiB; 0 = kernel default. */
  sndbuf?: number;
  /** PACKET_QDISC_BYPASS: transmit straight to the driver's queue, skipping the qdisc. Default false. */
  qdiscBypass?: boolean;
  /**
   * PACKET_VNET_HDR: frames come with a struct virtio_net_hdr, so GSO/GRO aggregates (up to 64 KiB)
   * are received whole with their gso_size and sent back as aggregates for the kernel to segment.
   * Default true; false gives the old behaviour (aggregates are cut at snaplen and dropped).
   */
  vnetHdr?: boolean;
  /**
   * A plain (non-aggregate) frame received CHECKSUM_PARTIAL is handed over as it came, its offload
   * word saying NEEDS_CSUM, for a consumer that parses the frame anyway to finish the checksum
   * (the engine). Default false: the socket finishes it (a second parse of the headers), so that
   * every other reader sees the frame as it would be on the wire.
   */
  partialToConsumer?: boolean;
}

/** The offload word of a plain frame whose checksum the consumer finishes (partialToConsumer). */
export const PLAIN_PARTIAL_WORD = VNET_F_NEEDS_CSUM << 24;

/**
 * The largest frame a receive slot holds without cutting it: a 64 KiB IP datagram (GSO and GRO stop
 * at 65535 bytes without BIG TCP), its Ethernet header and two VLAN tags, rounded up.
 */
export const MAX_AGGREGATE_FRAME = 65536 + 64;

export abstract class PacketSocketBase implements FrameIo {
  readonly ifname: string;
  readonly ifindex: number;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly batch: number;
  readonly snaplen: number;
  readonly txFrameSize: number;
  readonly vnetHdr: boolean;
  readonly partialToConsumer: boolean;
  readonly counters: PacketSocketCounters = newCounters();
  protected readonly tx: TxBatch;
  protected readonly pollfd: Region;
  #fd: number;
  #closed = false;

  /**
   * owner names the class in errors; batch, snaplen and txFrameSize are checked by the subclass.
   * txFrameSize 0: the interface's MTU + 64 (at least 2048): the tx slots take copied frames, which
   * are never aggregates (those leave zero copy from the receive buffer).
   */
  constructor(
    owner: string,
    ifname: string,
    batch: number,
    snaplen: number,
    txFrameSize: number,
    opts: PacketSocketBaseOptions,
  ) {
    if (!Number.isInteger(snaplen) || snaplen < 64) throw new RangeError("snaplen must be at least 64");
    if (!Number.isInteger(snaplen) || snaplen > MAX_AGGREGATE_FRAME) {
      throw new RangeError(`snaplen must be 64..${MAX_AGGREGATE_FRAME}`);
    }
    if (
      !Number.isInteger(txFrameSize) ||
      (txFrameSize !== 0 && (txFrameSize < 64 || txFrameSize > MAX_AGGREGATE_FRAME))
    ) {
      throw new RangeError(`txFrameSize must be 64..${MAX_AGGREGATE_FRAME} (or 0: from the MTU)`);
    }
    checkIfname(ifname);
    this.ifname = ifname;
    this.batch = batch;
    this.snaplen = snaplen;
    this.vnetHdr = opts.vnetHdr ?? true;
    this.partialToConsumer = opts.partialToConsumer ?? false;
    const ifindex = ifIndex(ifname);
    this.ifindex = ifindex;
    const fd = packetSocketFd();
    this.#fd = fd;
    try {
      if (opts.ignoreOutgoing ?? true) setIntOpt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, true);
      if (opts.qdiscBypass) setIntOpt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1, true);
      // Before bind() and before PACKET_RX_RING (af_packet.c refuses it once a ring exists).
      if (this.vnetHdr) setIntOpt(fd, SOL_PACKET, PACKET_VNET_HDR, 1, true, "setsockopt(PACKET_VNET_HDR)");
      setBufSize(fd, SO_SNDBUFFORCE, SO_SNDBUF, opts.sndbuf ?? 4 << 20);
      const hw = ifHwInfo(fd, ifname);
      this.mac = hw.mac;
      this.mtu = hw.mtu;
      this.txFrameSize =
        txFrameSize !== 0 ? txFrameSize : Math.min(MAX_AGGREGATE_FRAME, Math.max(2048, hw.mtu + 64));
      if (opts.promisc) addPromisc(fd, ifindex);
      this.tx = new TxBatch(fd, batch, this.txFrameSize, this.counters, owner, this.vnetHdr);
      this.pollfd = pollIn(fd);
    } catch (e) {
      // Not release(): a subclass override would touch private fields not installed yet.
      this.#releaseBase();
      throw e;
    }
  }

  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Frames queued for transmit and not yet flushed. */
  get pending(): number {
    return this.tx.count;
  }

  abstract recvBatch(timeoutMs: number): number;
  abstract frame(i: number): Uint8Array;
  abstract length(i: number): number;
  abstract pktType(i: number): number;
  abstract offload(i: number): number;
  abstract forward(i: number, off: number, len: number, vnet?: Uint8Array | null): boolean;
  abstract frameAddress(i: number): number;
  abstract kernelStats(): { packets: number; drops: number };

  /** Copies buf[off, off+len) into the next tx slot. False (counted) if len exceeds txFrameSize. */
  send(buf: Uint8Array, off: number, len: number, vnet: Uint8Array | null = null): boolean {
    return this.tx.send(buf, off, len, vnet);
  }

  /** The next tx slot to build a frame in (txFrameSize bytes); queue it with commit(len). */
  txBuffer(): Uint8Array {
    return this.tx.buffer();
  }

  commit(len: number, vnet: Uint8Array | null = null): boolean {
    return this.tx.commit(len, vnet);
  }

  /**
   * Queues len bytes at a native address (zero copy): a frame of another socket's last batch,
   * rewritten in place. The memory must stay valid until the next flush.
   */
  queueAddress(addr: number, len: number, vnet: Uint8Array | null = null): void {
    this.tx.queueAddress(addr, len, vnet);
  }

  /** Sends every queued frame (sendmmsg, retried until all are taken or refused). Returns frames sent. */
  flush(): number {
    return this.tx.flush();
  }

  /** Attaches (or replaces) a classic BPF socket filter (src/io/bpf.ts). */
  attachFilter(prog: BpfProgram): void {
    attachFilter(this.#fd, prog);
  }

  /** Closes the socket and frees the native memory; every frame() view is dead afterwards. */
  close(): void {
    if (this.#closed) return;
    this.release();
  }

  /**
   * A plain frame received CHECKSUM_PARTIAL: its offload word, after finishing the checksum here
   * unless the consumer does (partialToConsumer). A cut frame lacks bytes the sum covers: it is left
   * as it is (and counted as truncated).
   */
  protected plainPartial(f: Uint8Array, len: number, truncated: boolean): number {
    const cnt = this.counters;
    cnt.rxCsumPartial++;
    if (truncated) return 0;
    if (this.partialToConsumer) return PLAIN_PARTIAL_WORD;
    if (completeL4Checksum(f, len)) cnt.rxCsumCompleted++;
    return 0;
  }

  /** Subclasses free their own memory too, then call this. Also their constructor's failure path. */
  protected release(): void {
    this.#releaseBase();
  }

  #releaseBase(): void {
    this.#closed = true;
    if (this.#fd >= 0) libc().close(this.#fd);
    this.#fd = -1;
    freeRegions(this.pollfd);
    this.tx?.free();
  }
}
