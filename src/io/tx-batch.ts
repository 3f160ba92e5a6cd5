// The sendmmsg(2) transmit queue both AF_PACKET backends use (PacketSocket, RingSocket): `size`
// preallocated frame slots plus an mmsghdr/iovec array in native memory, so queueing a frame is a
// few stores into that array and flush() one sendmmsg call for the whole batch. Nothing here
// allocates after the constructor.
//
// Messages carry no address: af_packet.c's packet_snd() then uses the bound ifindex.
//
// With PACKET_VNET_HDR every message is two iovecs: the 10-byte struct virtio_net_hdr, then the
// frame (packet_snd reads the header from the front of the message, wherever the iovec boundary
// lies). A plain frame's header iovec points at one shared all-zero header; a frame with GSO
// metadata gets its header copied into its slot's own 16 bytes.

import { TsvsError } from "../core/errors.js";
import type { PacketSocketCounters } from "./frame-io.js";
import {
  EAGAIN,
  EINTR,
  ENOBUFS,
  libc,
  MMSG_LEN,
  MSG_IOV,
  MSG_IOVLEN,
  SIZEOF_IOVEC,
  SIZEOF_MMSGHDR,
} from "./libc.js";
import { alloc, freeRegions, type Region, setPtr, splitAddr } from "./packet-common.js";

const VNET_HDR_LEN = 10;
const HDR_STRIDE = 16;
/** The largest aggregate (IPv4 total length) and its Ethernet header with a VLAN tag. */
const JUMBO_SIZE = 65536 + 64;

export class TxBatch {
  /** Slots, and the most messages one flush hands to sendmmsg at a time. */
  readonly size: number;
  /** Bytes per slot: the largest frame send()/commit() accept. */
  readonly frameSize: number;
  /** Frames queued and not yet flushed. */
  count = 0;
  readonly #fd: number;
  readonly #counters: PacketSocketCounters;
  readonly #owner: string;
  readonly #data: Region;
  readonly #msgs: Region; // mmsghdr[size] | iovec[size × iovPer] | vnet hdr[size] | zero hdr
  readonly #iovOff: number;
  /** 2 with PACKET_VNET_HDR (header, frame), else 1. */
  readonly #iovPer: number;
  readonly #hdrOff: number;
  readonly #zeroHdrAddr: number;
  readonly #views: Uint8Array[] = [];
  // Slot addresses as [lo, hi] 32-bit halves (splitAddr), so that queueSlot() builds an iovec base
  // without a BigInt or a float division.
  readonly #slotAddr: Uint32Array;
  /**
   * One slot for an aggregate that is not sent from its receive buffer (one that waited for its
   * next hop's ARP answer): with PACKET_VNET_HDR only. Sent alone, at once.
   */
  readonly #jumbo: Region | null;
  #closed = false;

  /**
   * owner names the socket class in errors ("flush on a closed PacketSocket"); vnetHdr: the socket
   * has PACKET_VNET_HDR set, so every message starts with a virtio_net_hdr.
   */
  constructor(
    fd: number,
    size: number,
    frameSize: number,
    counters: PacketSocketCounters,
    owner: string,
    vnetHdr = false,
  ) {
    this.#fd = fd;
    this.size = size;
    this.frameSize = frameSize;
    this.#counters = counters;
    this.#owner = owner;
    this.#iovPer = vnetHdr ? 2 : 1;
    this.#data = alloc(size * frameSize);
    this.#iovOff = size * SIZEOF_MMSGHDR;
    this.#hdrOff = this.#iovOff + size * this.#iovPer * SIZEOF_IOVEC;
    const zeroOff = this.#hdrOff + (vnetHdr ? size * HDR_STRIDE : 0);
    try {
      this.#msgs = alloc(zeroOff + HDR_STRIDE);
    } catch (e) {
      freeRegions(this.#data);
      throw e;
    }
    this.#zeroHdrAddr = this.#msgs.addr + zeroOff;
    try {
      this.#jumbo = vnetHdr ? alloc(JUMBO_SIZE) : null;
    } catch (e) {
      freeRegions(this.#data, this.#msgs);
      throw e;
    }
    this.#slotAddr = new Uint32Array(size * 2);
    const dv = this.#msgs.dv;
    for (let i = 0; i < size; i++) {
      const m = i * SIZEOF_MMSGHDR;
      const iov = this.#iovOff + i * this.#iovPer * SIZEOF_IOVEC;
      setPtr(dv, m + MSG_IOV, this.#msgs.addr + iov);
      setPtr(dv, m + MSG_IOVLEN, this.#iovPer);
      if (vnetHdr) {
        setPtr(dv, iov, this.#zeroHdrAddr);
        setPtr(dv, iov + 8, VNET_HDR_LEN);
      }
      this.#views.push(this.#data.bytes.subarray(i * frameSize, (i + 1) * frameSize));
      splitAddr(this.#slotAddr, i, this.#data.addr + i * frameSize);
    }
  }

  /** Points message `count`'s header iovec at the zero header, or at a copy of vnet. */
  #setHdr(vnet: Uint8Array | null): void {
    if (this.#iovPer === 1) return;
    const tx = this.#msgs.dv;
    const iov = this.#iovOff + this.count * 2 * SIZEOF_IOVEC;
    if (vnet === null) {
      setPtr(tx, iov, this.#zeroHdrAddr);
      return;
    }
    const h = this.#hdrOff + this.count * HDR_STRIDE;
    const b = this.#msgs.bytes;
    for (let k = 0; k < VNET_HDR_LEN; k++) b[h + k] = vnet[k];
    setPtr(tx, iov, this.#msgs.addr + h);
    this.#counters.txAggregates++;
  }

  /** Offset of message `count`'s frame iovec. */
  #frameIov(): number {
    return this.#iovOff + (this.count * this.#iovPer + this.#iovPer - 1) * SIZEOF_IOVEC;
  }

  /** Copies buf[off, off+len) into the next slot. False (counted in txOversize) if len does not fit. */
  send(buf: Uint8Array, off: number, len: number, vnet: Uint8Array | null = null): boolean {
    if (len > this.frameSize && vnet !== null && this.#jumbo !== null && len <= JUMBO_SIZE) {
      // The queue goes first (frames keep their order), then the aggregate alone.
      this.flush();
      this.#jumbo.bytes.set(buf.subarray(off, off + len));
      this.queueAddress(this.#jumbo.addr, len, vnet);
      this.flush();
      return true;
    }
    if (len > this.frameSize || len <= 0) {
      this.#counters.txOversize++;
      return false;
    }
    if (this.count === this.size) this.flush();
    const dst = this.#views[this.count];
    if (off === 0 && len === buf.length) dst.set(buf);
    else for (let k = 0; k < len; k++) dst[k] = buf[off + k];
    this.queueSlot(this.#slotAddr, this.count, 0, len, vnet);
    return true;
  }

  /** The next slot to build a frame in (frameSize bytes); queue it with commit(len). */
  buffer(): Uint8Array {
    if (this.count === this.size) this.flush();
    return this.#views[this.count];
  }

  commit(len: number, vnet: Uint8Array | null = null): boolean {
    if (len > this.frameSize || len <= 0) {
      this.#counters.txOversize++;
      return false;
    }
    if (this.count === this.size) this.flush();
    this.queueSlot(this.#slotAddr, this.count, 0, len, vnet);
    return true;
  }

  /**
   * Queues len bytes at (address of slot `slot` in `addrs`, split by splitAddr) + off, flushing
   * first when the queue is full. The memory must stay valid until the next flush.
   */
  queueSlot(
    addrs: Uint32Array,
    slot: number,
    off: number,
    len: number,
    vnet: Uint8Array | null = null,
  ): void {
    if (this.count === this.size) this.flush();
    const tx = this.#msgs.dv;
    this.#setHdr(vnet);
    const iov = this.#frameIov();
    // base = slot address + off, carried across the 32-bit halves without leaving integers.
    const lo = addrs[slot * 2] + off;
    tx.setUint32(iov, lo >>> 0, true);
    tx.setUint32(iov + 4, addrs[slot * 2 + 1] + (lo > 0xffffffff ? 1 : 0), true);
    tx.setUint32(iov + 8, len, true);
    tx.setUint32(iov + 12, 0, true);
    this.count++;
  }

  /** Queues len bytes at a native address (zero copy), flushing first when the queue is full. */
  queueAddress(addr: number, len: number, vnet: Uint8Array | null = null): void {
    if (this.count === this.size) this.flush();
    const tx = this.#msgs.dv;
    this.#setHdr(vnet);
    const iov = this.#frameIov();
    setPtr(tx, iov, addr);
    tx.setUint32(iov + 8, len, true);
    tx.setUint32(iov + 12, 0, true);
    this.count++;
  }

  /** Sends every queued frame (sendmmsg, retried until all are taken or refused). Returns frames sent. */
  flush(): number {
    const total = this.count;
    if (total === 0) return 0;
    if (this.#closed) throw new TsvsError("TSVS_ERR_INTERNAL", `flush on a closed ${this.#owner}`);
    const c = libc();
    const cnt = this.#counters;
    const tx = this.#msgs.dv;
    let done = 0;
    let sent = 0;
    while (done < total) {
      const n = c.sendmmsg(this.#fd, this.#msgs.addr + done * SIZEOF_MMSGHDR, total - done, 0);
      if (n > 0) {
        // msg_len counts the virtio_net_hdr too (packet_snd returns it in the length).
        const hdr = this.#iovPer === 2 ? VNET_HDR_LEN : 0;
        for (let i = done; i < done + n; i++)
          cnt.txBytes += tx.getUint32(i * SIZEOF_MMSGHDR + MMSG_LEN, true) - hdr;
        done += n;
        sent += n;
        continue;
      }
      const err = c.errno();
      if (err === EINTR) continue;
      // The first remaining frame was refused: count it and go on with the rest (a NIC drops too).
      if (err === ENOBUFS || err === EAGAIN) cnt.txDropped++;
      else {
        cnt.txErrors++;
        cnt.lastTxErrno = err;
      }
      done++;
    }
    cnt.txFrames += sent;
    this.count = 0;
    return sent;
  }

  /** Frees the native memory; queued frames are dropped, a later flush throws. */
  free(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.count = 0;
    freeRegions(this.#data, this.#msgs);
    if (this.#jumbo !== null) freeRegions(this.#jumbo);
  }
}
