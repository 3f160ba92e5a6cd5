// AF_PACKET with a TPACKET_V3 mmap receive ring (PACKET_RX_RING): the kernel writes frames into
// blocks of a ring shared with us, and hands a whole block over at once (block_status |=
// TP_STATUS_USER) when it is full or when tp_retire_blk_tov ms have passed since its first frame
// (net/packet/af_packet.c: prb_retire_current_block, _prb_refresh_rx_retire_blk_timer). User space
// walks the block's frames in place and gives the block back (TP_STATUS_KERNEL). Under load there is
// no syscall at all on the receive side and no copy into iovecs: the engine rewrites the frame in
// the ring, and forward() points a sendmmsg iovec at it.
//
// Transmit stays sendmmsg (measured against a TPACKET_V2 tx ring: docs/io.md).
//
// Layouts (<linux/if_packet.h>, LP64):
//   struct tpacket_block_desc { u32 version; u32 offset_to_priv; struct tpacket_hdr_v1 {
//     u32 block_status; u32 num_pkts; u32 offset_to_first_pkt; u32 blk_len; u64 seq_num; … } }
//   struct tpacket3_hdr { u32 tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status;
//     u16 tp_mac, tp_net; u32 tp_rxhash, tp_vlan_tci; u16 tp_vlan_tpid, pad; u8 pad[8]; }  (48 bytes)
//   then struct sockaddr_ll at TPACKET_ALIGN(48) = 48.
// With V3 the per-frame tp_status carries what PACKET_AUXDATA gives the recvmsg path
// (TP_STATUS_CSUMNOTREADY, TP_STATUS_VLAN_VALID + hv1.tp_vlan_tci/tpid): no control messages.
//
// PACKET_VNET_HDR (default): tpacket_rcv writes the struct virtio_net_hdr in the 10 bytes right
// before the MAC header (netoff grows by 10, macoff = netoff - maclen). Blocks are 128 KiB so that a
// 64 KiB aggregate fits in one (V3 clamps a frame to the block: max_frame_len).

import { TsvsError } from "../core/errors.js";
import { VNET_HDR_LEN, vnetOffloadWord } from "../core/packet/vnet.js";
import { attachFilter, type BpfProgram } from "./bpf.js";
import {
  addressOf,
  EINTR,
  libc,
  MAP_SHARED,
  type NativePtr,
  PACKET_RX_RING,
  PACKET_VERSION,
  PROT_READ,
  PROT_WRITE,
  SOL_PACKET,
  SyscallError,
  TP_STATUS_CSUMNOTREADY,
  TP_STATUS_VLAN_TPID_VALID,
  TP_STATUS_VLAN_VALID,
  TPACKET_V3,
} from "./libc.js";
import { MAX_AGGREGATE_FRAME, PacketSocketBase, type PacketSocketBaseOptions } from "./packet-base.js";
import { bindAll, readKernelStats, setIntOpt, tagCount } from "./packet-common.js";

export interface RingSocketOptions extends PacketSocketBaseOptions {
  /** Most frames one recvBatch() returns, and the number of tx slots. Default 256. */
  batch?: number;
  /**
   * Bytes kept per frame (cut by the socket filter's return value too). Default MAX_AGGREGATE_FRAME
   * with PACKET_VNET_HDR, else 2048.
   */
  snaplen?: number;
  /** Bytes per tx slot. Default: MTU + 64, at least 2048. */
  txFrameSize?: number;
  /** Ring block size (a power of two ≥ 4096). Default 128 KiB with PACKET_VNET_HDR, else 64 KiB. */
  blockSize?: number;
  /** Ring blocks. Default 64 (8 MiB with 128 KiB blocks). */
  blocks?: number;
  /**
   * tp_retire_blk_tov: a block that is not full is handed over this many ms after its first frame.
   * The latency floor at low rates. Default 1.
   */
  retireMs?: number;
  /** A classic BPF filter attached before the socket is bound (no unfiltered frame is ever queued). */
  filter?: BpfProgram;
}

const VLAN_HLEN = 4;
const ETH_HLEN = 14;
const ETH_P_8021Q = 0x8100;
const TP_STATUS_KERNEL = 0;
const TP_STATUS_USER = 1;
// block descriptor offsets
const BD_STATUS = 8;
const BD_NUM_PKTS = 12;
const BD_FIRST = 16;
// tpacket3_hdr offsets
const H_NEXT = 0;
const H_SNAPLEN = 12;
const H_LEN = 16;
const H_STATUS = 20;
const H_MAC = 24;
const H_VLAN_TCI = 32;
const H_VLAN_TPID = 36;
const H_SLL = 48;
const SLL_PKTTYPE = 10;
/** Most cached frame views (see #views). */
const MAX_VIEWS = 1 << 16;

export class RingSocket extends PacketSocketBase {
  readonly blockSize: number;
  readonly blocks: number;
  /** Blocks handed over by the retire timer before they were full (TP_STATUS_BLK_TMO). */
  blocksTimedOut = 0;
  blocksSeen = 0;

  #ringPtr: NativePtr = null;
  #ringLen = 0;
  #ringAddr = 0;
  #ring: Uint8Array = new Uint8Array(0);
  #rdv: DataView = new DataView(new ArrayBuffer(0));
  // Views into the ring, created once per frame start and reused on later laps (frames of equal
  // sizes land at equal offsets), so recvBatch allocates nothing in the steady state. Keyed by the
  // frame's own start offset: V3 packs frames at 8-byte alignment (tp_next_offset), so a key of
  // header offset / 16 gave two frames 8 bytes apart one view, the second seen 8 bytes early (its
  // virtio_net_hdr as MAC addresses: frames "passed" as not IPv4, aggregates lost). A view whose VLAN
  // tag was put back starts 4 bytes earlier: another key.
  #views = new Map<number, Uint8Array>();
  #cur: Uint8Array[];
  #curStart: Float64Array; // frame start offsets in the ring (for forward())
  #curLen: Int32Array;
  #curType: Uint8Array;
  #curOffload: Int32Array;
  #count = 0;
  // Ring walk: block index, frames left in it, offset of the next frame header.
  #blk = 0;
  #left = 0;
  #off = 0;
  // Blocks fully walked during the last recvBatch: [#relFrom, #blk) mod blocks, given back at the
  // next call (their frames are valid until then).
  #relFrom = 0;
  #relCount = 0;

  constructor(ifname: string, opts: RingSocketOptions = {}) {
    const batch = opts.batch ?? 256;
    const vnet = opts.vnetHdr ?? true;
    const snaplen = opts.snaplen ?? (vnet ? MAX_AGGREGATE_FRAME : 2048);
    const txFrameSize = opts.txFrameSize ?? 0;
    const blockSize = opts.blockSize ?? (vnet ? 1 << 17 : 1 << 16);
    const blocks = opts.blocks ?? 64;
    const retireMs = opts.retireMs ?? 1;
    if (!Number.isInteger(batch) || batch < 1 || batch > 4096) throw new RangeError("batch must be 1..4096");
    if (blockSize < 4096 || (blockSize & (blockSize - 1)) !== 0 || blockSize > 1 << 22) {
      throw new RangeError("blockSize must be a power of two, 4 KiB..4 MiB");
    }
    if (!Number.isInteger(blocks) || blocks < 2 || blocks > 4096)
      throw new RangeError("blocks must be 2..4096");
    if (!Number.isInteger(retireMs) || retireMs < 1 || retireMs > 1000) {
      throw new RangeError("retireMs must be 1..1000");
    }
    super("RingSocket", ifname, batch, snaplen, txFrameSize, opts);
    const c = libc();
    this.blockSize = blockSize;
    this.blocks = blocks;
    const fd = this.fd;
    try {
      setIntOpt(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V3, true);
      // struct tpacket_req3: block size/nr, frame size/nr (V3 frames are variable; the kernel still
      // checks frame_nr = block_nr × block_size / frame_size), retire timeout, priv size, features.
      const frameSize = 2048;
      const req = Buffer.alloc(28);
      req.writeUInt32LE(blockSize, 0);
      req.writeUInt32LE(blocks, 4);
      req.writeUInt32LE(frameSize, 8);
      req.writeUInt32LE((blockSize / frameSize) * blocks, 12);
      req.writeUInt32LE(retireMs, 16);
      if (c.setsockopt(fd, SOL_PACKET, PACKET_RX_RING, req, 28) < 0) {
        throw new SyscallError("setsockopt(PACKET_RX_RING)", c.errno());
      }
      const len = blockSize * blocks;
      const p = c.mmap(len, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
      if (p === null || c.koffi.address(p) === 0xffffffffffffffffn) {
        throw new SyscallError("mmap(PACKET_RX_RING)", c.errno());
      }
      this.#ringPtr = p;
      this.#ringLen = len;
      this.#ringAddr = addressOf(p);
      const ab = c.koffi.view(p, len);
      this.#ring = new Uint8Array(ab);
      this.#rdv = new DataView(ab);
      if (opts.filter !== undefined) attachFilter(fd, opts.filter);

      bindAll(fd, this.ifindex, ifname);

      this.#cur = [];
      for (let i = 0; i < batch; i++) this.#cur.push(this.#ring);
      this.#curStart = new Float64Array(batch);
      this.#curLen = new Int32Array(batch);
      this.#curType = new Uint8Array(batch);
      this.#curOffload = new Int32Array(batch);
    } catch (e) {
      this.release();
      throw e;
    }
  }

  /**
   * Flushes queued transmits, gives back the blocks walked last time, then collects up to `batch`
   * frames from blocks the kernel has handed over; polls (≤ timeoutMs) only when there are none.
   */
  recvBatch(timeoutMs: number): number {
    if (this.closed) throw new TsvsError("TSVS_ERR_INTERNAL", "recvBatch on a closed RingSocket");
    if (this.tx.count > 0) this.flush();
    this.#giveBack();
    this.#count = 0;
    let n = this.#collect();
    if (n === 0 && timeoutMs !== 0) {
      const c = libc();
      const p = c.poll(this.pollfd.addr, 1, timeoutMs < 0 ? -1 : Math.ceil(timeoutMs));
      if (p < 0 && c.errno() !== EINTR) throw new SyscallError("poll", c.errno());
      if (p > 0) n = this.#collect();
    }
    return n;
  }

  #giveBack(): void {
    const dv = this.#rdv;
    for (let k = 0; k < this.#relCount; k++) {
      dv.setUint32(((this.#relFrom + k) % this.blocks) * this.blockSize + BD_STATUS, TP_STATUS_KERNEL, true);
    }
    this.#relFrom = this.#blk;
    this.#relCount = 0;
  }

  #collect(): number {
    const dv = this.#rdv;
    const ring = this.#ring;
    const cnt = this.counters;
    const bs = this.blockSize;
    const maxLen = this.mtu + ETH_HLEN;
    let n = this.#count;
    while (n < this.batch) {
      if (this.#left === 0) {
        const base = this.#blk * bs;
        const st = dv.getUint32(base + BD_STATUS, true);
        if ((st & TP_STATUS_USER) === 0) break;
        this.blocksSeen++;
        if ((st & 0x20) !== 0 /* TP_STATUS_BLK_TMO */) this.blocksTimedOut++;
        this.#left = dv.getUint32(base + BD_NUM_PKTS, true);
        this.#off = base + dv.getUint32(base + BD_FIRST, true);
        if (this.#left === 0) {
          this.#blockDone();
          continue;
        }
      }
      const h = this.#off;
      const snap = dv.getUint32(h + H_SNAPLEN, true);
      const wire = dv.getUint32(h + H_LEN, true);
      const status = dv.getUint32(h + H_STATUS, true);
      let start = h + dv.getUint16(h + H_MAC, true);
      let len = snap;
      let origLen = wire;
      const truncated = snap < wire;
      if (truncated) cnt.rxTruncated++;
      // The virtio_net_hdr sits in the 10 bytes before the MAC header: read it before a VLAN tag is
      // put back there.
      let word = this.vnetHdr ? vnetOffloadWord(ring, start - VNET_HDR_LEN) : 0;
      const aggregate = (word & 0xff0000) !== 0;
      if (aggregate) cnt.rxAggregates++;
      else word = 0;
      if ((status & TP_STATUS_VLAN_VALID) !== 0) {
        // Put the tag back by moving the two MAC addresses 4 bytes down, into the gap between the
        // sockaddr_ll and the frame (tp_mac ≥ 68 + 14), instead of moving the whole frame up.
        const tpid =
          (status & TP_STATUS_VLAN_TPID_VALID) !== 0 ? dv.getUint16(h + H_VLAN_TPID, true) : ETH_P_8021Q;
        const tci = dv.getUint32(h + H_VLAN_TCI, true) & 0xffff;
        ring.copyWithin(start - VLAN_HLEN, start, start + 12);
        start -= VLAN_HLEN;
        ring[start + 12] = tpid >>> 8;
        ring[start + 13] = tpid & 0xff;
        ring[start + 14] = tci >>> 8;
        ring[start + 15] = tci & 0xff;
        len += VLAN_HLEN;
        origLen += VLAN_HLEN;
        cnt.rxVlanRestored++;
      }
      const f = this.#view(h, start);
      if ((status & TP_STATUS_CSUMNOTREADY) !== 0) {
        if (aggregate) cnt.rxCsumPartial++;
        else word = this.plainPartial(f, len, truncated);
      }
      if (!aggregate && origLen > maxLen + VLAN_HLEN * tagCount(f, len)) cnt.rxOversize++;
      this.#curOffload[n] = word;
      this.#cur[n] = f;
      this.#curStart[n] = start;
      this.#curLen[n] = len;
      this.#curType[n] = ring[h + H_SLL + SLL_PKTTYPE];
      cnt.rxBytes += len;
      n++;
      this.#left--;
      if (this.#left === 0) this.#blockDone();
      else this.#off = h + dv.getUint32(h + H_NEXT, true);
    }
    cnt.rxFrames += n - this.#count;
    this.#count = n;
    return n;
  }

  #blockDone(): void {
    this.#blk = (this.#blk + 1) % this.blocks;
    this.#relCount++;
  }

  #view(h: number, start: number): Uint8Array {
    let v = this.#views.get(start);
    if (v === undefined) {
      // Frames of many sizes land at many offsets: the cache is bounded (a view is ~100 bytes).
      if (this.#views.size >= MAX_VIEWS) this.#views.clear();
      // Up to the end of the block: a frame never spans blocks.
      const end = Math.min(
        start + this.snaplen + VLAN_HLEN,
        (Math.floor(h / this.blockSize) + 1) * this.blockSize,
      );
      v = this.#ring.subarray(start, end);
      this.#views.set(start, v);
    }
    return v;
  }

  frame(i: number): Uint8Array {
    return this.#cur[i];
  }

  length(i: number): number {
    return this.#curLen[i];
  }

  pktType(i: number): number {
    return this.#curType[i];
  }

  /** Offload word of frame i (0: a plain frame); see src/core/packet/vnet.ts. */
  offload(i: number): number {
    return this.#curOffload[i];
  }

  /** Queues bytes of frame i straight from the ring (zero copy; the block is given back after flush). */
  forward(i: number, off: number, len: number, vnet: Uint8Array | null = null): boolean {
    if (i < 0 || i >= this.#count || off < 0 || len <= 0 || off + len > this.#cur[i].length) return false;
    this.tx.queueAddress(this.#ringAddr + this.#curStart[i] + off, len, vnet);
    return true;
  }

  frameAddress(i: number): number {
    return this.#ringAddr + this.#curStart[i];
  }

  /** PACKET_STATISTICS (tpacket_stats_v3: the first two fields) since the last call. */
  kernelStats(): { packets: number; drops: number } {
    return readKernelStats(this.fd, 12);
  }

  protected override release(): void {
    super.release();
    if (this.#ringPtr !== null) libc().munmap(this.#ringPtr, this.#ringLen);
    this.#ringPtr = null;
    this.#views.clear();
    this.#count = 0;
  }
}

export function openRingSocket(ifname: string, opts?: RingSocketOptions): RingSocket {
  return new RingSocket(ifname, opts);
}
