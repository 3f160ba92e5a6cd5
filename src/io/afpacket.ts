// AF_PACKET (SOCK_RAW) link backend: whole Ethernet frames in and out of one interface, in batches
// with recvmmsg(2)/sendmmsg(2). See docs/io.md for the design and its limits.
//
// All memory the kernel touches is allocated once, in koffi-managed native memory, when the socket
// is opened: frame slots, the mmsghdr and iovec arrays, the per-frame sockaddr_ll, the pollfd. The
// JS side sees it through typed-array views created at open time, so the steady state (recvBatch,
// frame(i), send/forward, flush) allocates nothing per packet.
//
// PACKET_AUXDATA: every received frame comes with a struct tpacket_auxdata control message (one
// preallocated control buffer per mmsghdr). It tells us what the frame bytes alone do not:
// - TP_STATUS_CSUMNOTREADY: the skb is CHECKSUM_PARTIAL (veth, a local sender, virtio with
//   offloads): its TCP/UDP checksum field holds only the pseudo-header sum, to be completed by a
//   device that will never see this frame. We complete it in place before recvBatch returns, so
//   a director that rewrites with incremental updates forwards correct checksums.
// - TP_STATUS_VLAN_VALID: the NIC (or veth's tx-vlan offload) took the 802.1Q tag out of the
//   frame into skb->vlan_tci; we put it back, so the frame is what was on the wire.

import { writeU16 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import { VNET_F_NEEDS_CSUM, VNET_HDR_LEN, vnetOffloadWord } from "../core/packet/vnet.js";
import {
  AUX_LEN,
  AUX_STATUS,
  AUX_VLAN_TCI,
  AUX_VLAN_TPID,
  AUXDATA_CMSG_LEN,
  AUXDATA_CMSG_SPACE,
  CMSG_LEVEL,
  CMSG_TYPE,
  EAGAIN,
  EINTR,
  EINVAL,
  ENETDOWN,
  libc,
  MMSG_LEN,
  MSG_CONTROL,
  MSG_CONTROLLEN,
  MSG_DONTWAIT,
  MSG_FLAGS,
  MSG_IOV,
  MSG_IOVLEN,
  MSG_NAME,
  MSG_NAMELEN,
  MSG_TRUNC,
  PACKET_AUXDATA,
  SIZEOF_CMSGHDR,
  SIZEOF_IOVEC,
  SIZEOF_MMSGHDR,
  SIZEOF_SOCKADDR_LL,
  SLL_PKTTYPE,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SOL_PACKET,
  SyscallError,
  TP_STATUS_CSUMNOTREADY,
  TP_STATUS_VLAN_TPID_VALID,
  TP_STATUS_VLAN_VALID,
} from "./libc.js";
import { MAX_AGGREGATE_FRAME, PacketSocketBase, type PacketSocketBaseOptions } from "./packet-base.js";
import {
  alloc,
  bindAll,
  freeRegions,
  type Region,
  readKernelStats,
  setBufSize,
  setIntOpt,
  setPtr,
  splitAddr,
  tagCount,
} from "./packet-common.js";

export type { PacketSocketCounters } from "./frame-io.js";
// Where the tests and older callers look for them.
export { completeL4Checksum, tagCount } from "./packet-common.js";

export interface PacketSocketOptions extends PacketSocketBaseOptions {
  /** Frames per recvmmsg/sendmmsg call, and the number of preallocated rx and tx slots. Default 64. */
  batch?: number;
  /**
   * Bytes kept per received frame; longer frames are cut (counted in rxTruncated). Default
   * MAX_AGGREGATE_FRAME with PACKET_VNET_HDR (an aggregate is never cut), else 2048.
   */
  snaplen?: number;
  /** Bytes per tx slot (the largest frame send()/txBuffer() accept). Default: MTU + 64, at least 2048. */
  txFrameSize?: number;
  /** SO_RCVBUF in bytes (SO_RCVBUFFORCE when root). Default 4 MiB; 0 = kernel default. */
  rcvbuf?: number;
  /**
   * Ask for PACKET_AUXDATA and act on it: complete CHECKSUM_PARTIAL IPv4 TCP/UDP checksums and put
   * back VLAN tags the device stripped. Default true; false only to measure what it costs.
   */
  auxdata?: boolean;
}

const ETH_HLEN = 14;
const VLAN_HLEN = 4;
const ETH_P_8021Q = 0x8100;

/**
 * One AF_PACKET socket bound to one interface.
 *
 * Receive: `n = recvBatch(timeoutMs)`, then for i < n `frame(i)` (a fixed view of slot i, snaplen
 * long) and `length(i)`. The views stay valid and unchanged until the next recvBatch().
 *
 * Transmit: `send(buf, off, len)` copies into the next tx slot; `txBuffer()` + `commit(len)` builds
 * in place; `forward(i, off, len)` queues bytes of rx slot i without copying. `flush()` hands the
 * queue to the kernel in one sendmmsg; a full queue flushes by itself, and recvBatch() flushes first
 * (forwarded rx slots are about to be overwritten).
 */
export class PacketSocket extends PacketSocketBase {
  #rxData: Region;
  // mmsghdr[batch] | iovec[batch × iovPer] | sockaddr_ll[batch] (24-byte stride) |
  // cmsg[batch] (AUXDATA_CMSG_SPACE) | virtio_net_hdr[batch] (16-byte stride, with PACKET_VNET_HDR)
  #rxMsgs: Region;
  #rxHdrOff = 0;
  #rxOffload: Int32Array;
  #rxViews: Uint8Array[];
  #rxLen: Int32Array;
  #rxIovOff: number;
  #rxNameOff: number;
  #rxCtlOff: number;
  #rxSlotSize: number;
  #aux: boolean;
  // Slot addresses split in 32-bit halves, so that forward() can point a tx iovec anywhere without
  // a BigInt: [lo, hi] per slot.
  #rxSlotAddr: Uint32Array;
  #rxCount = 0;

  constructor(ifname: string, opts: PacketSocketOptions = {}) {
    const batch = opts.batch ?? 64;
    const vnet = opts.vnetHdr ?? true;
    const snaplen = opts.snaplen ?? (vnet ? MAX_AGGREGATE_FRAME : 2048);
    const txFrameSize = opts.txFrameSize ?? 0;
    if (!Number.isInteger(batch) || batch < 1 || batch > 1024) throw new RangeError("batch must be 1..1024");
    super("PacketSocket", ifname, batch, snaplen, txFrameSize, opts);
    this.#aux = opts.auxdata ?? true;
    // Each rx slot has VLAN_HLEN spare bytes after snaplen, so a restored tag never cuts the frame.
    this.#rxSlotSize = snaplen + VLAN_HLEN;

    const fd = this.fd;
    try {
      if (this.#aux) setIntOpt(fd, SOL_PACKET, PACKET_AUXDATA, 1, true);
      setBufSize(fd, SO_RCVBUFFORCE, SO_RCVBUF, opts.rcvbuf ?? 4 << 20);
      bindAll(fd, this.ifindex, ifname);

      const slot = this.#rxSlotSize;
      const iovPer = this.vnetHdr ? 2 : 1;
      this.#rxData = alloc(batch * slot);
      this.#rxIovOff = batch * SIZEOF_MMSGHDR;
      this.#rxNameOff = this.#rxIovOff + batch * iovPer * SIZEOF_IOVEC;
      this.#rxCtlOff = this.#rxNameOff + batch * 24; // 8-aligned: cmsghdr starts with a size_t
      this.#rxHdrOff = this.#rxCtlOff + (this.#aux ? batch * AUXDATA_CMSG_SPACE : 0);
      this.#rxMsgs = alloc(this.#rxHdrOff + (this.vnetHdr ? batch * 16 : 0));

      this.#rxViews = [];
      this.#rxLen = new Int32Array(batch);
      this.#rxOffload = new Int32Array(batch);
      this.#rxSlotAddr = new Uint32Array(batch * 2);
      const rx = this.#rxMsgs.dv;
      for (let i = 0; i < batch; i++) {
        const m = i * SIZEOF_MMSGHDR;
        let iov = this.#rxIovOff + i * iovPer * SIZEOF_IOVEC;
        const name = this.#rxNameOff + i * 24;
        setPtr(rx, m + MSG_NAME, this.#rxMsgs.addr + name);
        rx.setUint32(m + MSG_NAMELEN, SIZEOF_SOCKADDR_LL, true);
        setPtr(rx, m + MSG_IOV, this.#rxMsgs.addr + iov);
        setPtr(rx, m + MSG_IOVLEN, iovPer);
        if (this.vnetHdr) {
          setPtr(rx, iov, this.#rxMsgs.addr + this.#rxHdrOff + i * 16);
          setPtr(rx, iov + 8, VNET_HDR_LEN);
          iov += SIZEOF_IOVEC;
        }
        if (this.#aux) {
          setPtr(rx, m + MSG_CONTROL, this.#rxMsgs.addr + this.#rxCtlOff + i * AUXDATA_CMSG_SPACE);
          setPtr(rx, m + MSG_CONTROLLEN, AUXDATA_CMSG_SPACE);
        }
        setPtr(rx, iov, this.#rxData.addr + i * slot);
        setPtr(rx, iov + 8, snaplen);
        this.#rxViews.push(this.#rxData.bytes.subarray(i * slot, (i + 1) * slot));
        splitAddr(this.#rxSlotAddr, i, this.#rxData.addr + i * slot);
      }
    } catch (e) {
      this.release();
      throw e;
    }
  }

  /**
   * Receives up to `batch` frames. timeoutMs: 0 = do not wait, < 0 = wait forever, > 0 = wait at
   * most that long (poll(2)). Returns the number of frames (0 on timeout or EINTR). Flushes queued
   * transmits first.
   */
  recvBatch(timeoutMs: number): number {
    if (this.closed) throw new TsvsError("TSVS_ERR_INTERNAL", "recvBatch on a closed PacketSocket");
    if (this.tx.count > 0) this.flush();
    const c = libc();
    const fd = this.fd;
    const rx = this.#rxMsgs.dv;
    // recvmsg overwrites msg_namelen and msg_controllen with the lengths it wrote; restore the
    // buffer sizes (msg_controllen is a size_t: its high half stays 0).
    const aux = this.#aux;
    for (let i = 0; i < this.#rxCount; i++) {
      rx.setUint32(i * SIZEOF_MMSGHDR + MSG_NAMELEN, SIZEOF_SOCKADDR_LL, true);
      if (aux) rx.setUint32(i * SIZEOF_MMSGHDR + MSG_CONTROLLEN, AUXDATA_CMSG_SPACE, true);
    }
    this.#rxCount = 0;
    // Try first, poll only when the queue is empty: under load the poll(2) call is skipped entirely.
    let n = this.#recv(c, fd);
    if (n < 0) {
      const err = c.errno();
      // ENETDOWN: the link went down (reported once); the socket receives again once it is up.
      if (err !== EAGAIN && err !== EINTR && err !== ENETDOWN) throw new SyscallError("recvmmsg", err);
      if (timeoutMs === 0) return 0;
      const p = c.poll(this.pollfd.addr, 1, timeoutMs < 0 ? -1 : Math.ceil(timeoutMs));
      if (p <= 0) {
        if (p < 0 && c.errno() !== EINTR) throw new SyscallError("poll", c.errno());
        return 0;
      }
      n = this.#recv(c, fd);
      if (n < 0) {
        const err2 = c.errno();
        if (err2 !== EAGAIN && err2 !== EINTR && err2 !== ENETDOWN) throw new SyscallError("recvmmsg", err2);
        return 0;
      }
    }
    const cnt = this.counters;
    const maxLen = this.mtu + ETH_HLEN;
    const vnet = this.vnetHdr;
    const hdrBytes = this.#rxMsgs.bytes;
    for (let i = 0; i < n; i++) {
      const m = i * SIZEOF_MMSGHDR;
      // msg_len is what was copied (≤ snaplen), plus the virtio_net_hdr in front of it.
      let len = rx.getUint32(m + MMSG_LEN, true) - (vnet ? VNET_HDR_LEN : 0);
      if (len < 0) len = 0;
      const truncated = (rx.getInt32(m + MSG_FLAGS, true) & MSG_TRUNC) !== 0;
      if (truncated) cnt.rxTruncated++;
      // tp_len, when we have it, is the frame's own length.
      let origLen = len;
      const f = this.#rxViews[i];
      // gso_type set: an aggregate. Its partial checksum stays partial (the kernel finishes it per
      // segment when the aggregate goes out with a header); the offload word tells the engine.
      let word = vnet ? vnetOffloadWord(hdrBytes, this.#rxHdrOff + i * 16) : 0;
      const aggregate = (word & 0xff0000) !== 0;
      if (aggregate) cnt.rxAggregates++;
      else word = 0;
      this.#rxOffload[i] = word;
      if (aux && rx.getUint32(m + MSG_CONTROLLEN, true) >= AUXDATA_CMSG_LEN) {
        const c = this.#rxCtlOff + i * AUXDATA_CMSG_SPACE;
        if (
          rx.getInt32(c + CMSG_LEVEL, true) === SOL_PACKET &&
          rx.getInt32(c + CMSG_TYPE, true) === PACKET_AUXDATA
        ) {
          const d = c + SIZEOF_CMSGHDR;
          const status = rx.getUint32(d + AUX_STATUS, true);
          origLen = rx.getUint32(d + AUX_LEN, true);
          if ((status & TP_STATUS_CSUMNOTREADY) !== 0) {
            if (aggregate) cnt.rxCsumPartial++;
            else this.#rxOffload[i] = this.plainPartial(f, len, truncated);
          }
          if ((status & TP_STATUS_VLAN_VALID) !== 0) {
            const tpid =
              (status & TP_STATUS_VLAN_TPID_VALID) !== 0
                ? rx.getUint16(d + AUX_VLAN_TPID, true)
                : ETH_P_8021Q;
            len = insertVlanTag(f, len, tpid, rx.getUint16(d + AUX_VLAN_TCI, true));
            origLen += VLAN_HLEN;
            cnt.rxVlanRestored++;
          }
        }
      }
      // Tags in the frame (restored or never removed) ride on top of the MTU, as on the wire.
      if (!aggregate && origLen > maxLen + VLAN_HLEN * tagCount(f, len)) cnt.rxOversize++;
      // Without AUXDATA the header's NEEDS_CSUM says the same as TP_STATUS_CSUMNOTREADY.
      if (!aux && vnet && !aggregate && (hdrBytes[this.#rxHdrOff + i * 16] & VNET_F_NEEDS_CSUM) !== 0)
        this.#rxOffload[i] = this.plainPartial(f, len, truncated);
      this.#rxLen[i] = len;
      cnt.rxBytes += len;
    }
    cnt.rxFrames += n;
    this.#rxCount = n;
    return n;
  }

  /**
   * The view of rx slot i: snaplen + 4 bytes (room for a restored VLAN tag); the frame is the first
   * length(i) of them.
   */
  frame(i: number): Uint8Array {
    return this.#rxViews[i];
  }

  length(i: number): number {
    return this.#rxLen[i];
  }

  /** recvmmsg, retried past frames the kernel could not describe in a virtio_net_hdr (EINVAL, counted). */
  #recv(c: ReturnType<typeof libc>, fd: number): number {
    for (let k = 0; ; k++) {
      const n = c.recvmmsg(fd, this.#rxMsgs.addr, this.batch, MSG_DONTWAIT, null);
      if (n >= 0 || !this.vnetHdr || k === 8 || c.errno() !== EINVAL) return n;
      // packet_rcv_vnet failed (a GSO type without a virtio_net_hdr code): the frame is consumed,
      // or reported as sk_err after the frames before it; either way the next call goes on.
      this.counters.rxVnetErrors++;
      const rx = this.#rxMsgs.dv;
      for (let i = 0; i < this.batch; i++) {
        rx.setUint32(i * SIZEOF_MMSGHDR + MSG_NAMELEN, SIZEOF_SOCKADDR_LL, true);
        if (this.#aux) rx.setUint32(i * SIZEOF_MMSGHDR + MSG_CONTROLLEN, AUXDATA_CMSG_SPACE, true);
      }
    }
  }

  /** Offload word of frame i (0: a plain frame); see src/core/packet/vnet.ts. */
  offload(i: number): number {
    return this.#rxOffload[i];
  }

  /** sll_pkttype of frame i: PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST… */
  pktType(i: number): number {
    return this.#rxMsgs.bytes[this.#rxNameOff + i * 24 + SLL_PKTTYPE];
  }

  /** Queues bytes [off, off+len) of rx slot i as they are (zero copy), e.g. a frame rewritten in place. */
  forward(i: number, off: number, len: number, vnet: Uint8Array | null = null): boolean {
    if (i < 0 || i >= this.#rxCount || off < 0 || len <= 0 || off + len > this.#rxSlotSize) return false;
    this.tx.queueSlot(this.#rxSlotAddr, i, off, len, vnet);
    return true;
  }

  /** The native address of frame i's first byte (for queueAddress on any socket before this one's next recvBatch). */
  frameAddress(i: number): number {
    return this.#rxSlotAddr[i * 2] + this.#rxSlotAddr[i * 2 + 1] * 0x100000000;
  }

  /** The kernel's PACKET_STATISTICS since the last call (reading resets them): frames queued, dropped. */
  kernelStats(): { packets: number; drops: number } {
    return readKernelStats(this.fd, 8);
  }

  protected override release(): void {
    super.release();
    freeRegions(this.#rxData, this.#rxMsgs);
    this.#rxCount = 0;
  }
}

/**
 * Puts a VLAN tag back between the MAC addresses and the ethertype (what the device took out):
 * moves frame bytes 12..len up by 4. f must have len + 4 bytes. Returns the new length.
 */
export function insertVlanTag(f: Uint8Array, len: number, tpid: number, tci: number): number {
  if (len < 12 || len + VLAN_HLEN > f.length) return len;
  f.copyWithin(12 + VLAN_HLEN, 12, len);
  writeU16(f, 12, tpid);
  writeU16(f, 14, tci);
  return len + VLAN_HLEN;
}

export function openPacketSocket(ifname: string, opts?: PacketSocketOptions): PacketSocket {
  return new PacketSocket(ifname, opts);
}
