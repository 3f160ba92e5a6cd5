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

import { readU16, writeU16 } from "../core/addr.js";
import { l4ChecksumV4 } from "../core/packet/csum.js";
import { attachFilter, type BpfProgram } from "./bpf.js";
import type { FrameIo } from "./frame-io.js";
import {
  AF_PACKET,
  AUX_LEN,
  AUX_STATUS,
  AUX_VLAN_TCI,
  AUX_VLAN_TPID,
  AUXDATA_CMSG_LEN,
  AUXDATA_CMSG_SPACE,
  addressOf,
  CMSG_LEVEL,
  CMSG_TYPE,
  EAGAIN,
  EINTR,
  ENOBUFS,
  ETH_P_ALL,
  IFNAMSIZ,
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
  type NativePtr,
  PACKET_ADD_MEMBERSHIP,
  PACKET_AUXDATA,
  PACKET_IGNORE_OUTGOING,
  PACKET_MR_PROMISC,
  PACKET_QDISC_BYPASS,
  PACKET_STATISTICS,
  POLLIN,
  SIOCGIFHWADDR,
  SIOCGIFMTU,
  SIZEOF_CMSGHDR,
  SIZEOF_IFREQ,
  SIZEOF_IOVEC,
  SIZEOF_MMSGHDR,
  SIZEOF_PACKET_MREQ,
  SIZEOF_POLLFD,
  SIZEOF_SOCKADDR_LL,
  SLL_PKTTYPE,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOL_PACKET,
  SOL_SOCKET,
  SyscallError,
  TP_STATUS_CSUMNOTREADY,
  TP_STATUS_VLAN_TPID_VALID,
  TP_STATUS_VLAN_VALID,
} from "./libc.js";

export interface PacketSocketOptions {
  /** Frames per recvmmsg/sendmmsg call, and the number of preallocated rx and tx slots. Default 64. */
  batch?: number;
  /** Bytes kept per received frame; longer frames are cut (counted in rxTruncated). Default 2048. */
  snaplen?: number;
  /** Bytes per tx slot (the largest frame send()/txBuffer() accept). Default: snaplen. */
  txFrameSize?: number;
  /** Do not receive our own transmissions (PACKET_IGNORE_OUTGOING, Linux ≥ 4.20). Default true. */
  ignoreOutgoing?: boolean;
  /** Receive frames for any MAC (PACKET_MR_PROMISC membership, dropped with the socket). Default false. */
  promisc?: boolean;
  /** SO_RCVBUF / SO_SNDBUF in bytes (FORCE variants when root). Default 4 MiB each; 0 = kernel default. */
  rcvbuf?: number;
  sndbuf?: number;
  /**
   * Ask for PACKET_AUXDATA and act on it: complete CHECKSUM_PARTIAL IPv4 TCP/UDP checksums and put
   * back VLAN tags the device stripped. Default true; false only to measure what it costs.
   */
  auxdata?: boolean;
  /** PACKET_QDISC_BYPASS: transmit straight to the driver's queue, skipping the qdisc. Default false. */
  qdiscBypass?: boolean;
}

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

const ETH_ALEN = 6;
const ETH_HLEN = 14;
const VLAN_HLEN = 4;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
const ETH_P_IP = 0x0800;
const htons = (v: number): number => ((v & 0xff) << 8) | ((v >>> 8) & 0xff);

interface Region {
  ptr: NativePtr;
  addr: number;
  bytes: Uint8Array;
  dv: DataView;
}

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
export class PacketSocket implements FrameIo {
  readonly ifname: string;
  readonly ifindex: number;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly batch: number;
  readonly snaplen: number;
  readonly txFrameSize: number;
  readonly counters: PacketSocketCounters = {
    rxFrames: 0,
    rxBytes: 0,
    rxTruncated: 0,
    txFrames: 0,
    txBytes: 0,
    txDropped: 0,
    txErrors: 0,
    lastTxErrno: 0,
    txOversize: 0,
    rxCsumPartial: 0,
    rxCsumCompleted: 0,
    rxVlanRestored: 0,
    rxOversize: 0,
  };

  #fd: number;
  #rxData: Region;
  // mmsghdr[batch] | iovec[batch] | sockaddr_ll[batch] (24-byte stride) | cmsg[batch] (AUXDATA_CMSG_SPACE)
  #rxMsgs: Region;
  #txData: Region;
  #txMsgs: Region; // mmsghdr[batch] | iovec[batch]
  #pollfd: Region;
  #rxViews: Uint8Array[];
  #txViews: Uint8Array[];
  #rxLen: Int32Array;
  #rxIovOff: number;
  #rxNameOff: number;
  #rxCtlOff: number;
  #rxSlotSize: number;
  #aux: boolean;
  #txIovOff: number;
  // Slot addresses split in 32-bit halves, so that forward() can point a tx iovec anywhere without
  // a BigInt: [lo, hi] per slot.
  #rxSlotAddr: Uint32Array;
  #txSlotAddr: Uint32Array;
  #rxCount = 0;
  #txCount = 0;
  #closed = false;

  constructor(ifname: string, opts: PacketSocketOptions = {}) {
    const batch = opts.batch ?? 64;
    const snaplen = opts.snaplen ?? 2048;
    const txFrameSize = opts.txFrameSize ?? snaplen;
    if (!Number.isInteger(batch) || batch < 1 || batch > 1024) throw new RangeError("batch must be 1..1024");
    if (!Number.isInteger(snaplen) || snaplen < 64 || snaplen > 65536) {
      throw new RangeError("snaplen must be 64..65536");
    }
    if (!Number.isInteger(txFrameSize) || txFrameSize < 64 || txFrameSize > 65536) {
      throw new RangeError("txFrameSize must be 64..65536");
    }
    if (Buffer.byteLength(ifname) >= IFNAMSIZ || ifname.length === 0) {
      throw new RangeError(`bad interface name ${JSON.stringify(ifname)}`);
    }
    const c = libc();
    this.ifname = ifname;
    this.batch = batch;
    this.snaplen = snaplen;
    this.txFrameSize = txFrameSize;
    this.#aux = opts.auxdata ?? true;
    // Each rx slot has VLAN_HLEN spare bytes after snaplen, so a restored tag never cuts the frame.
    this.#rxSlotSize = snaplen + VLAN_HLEN;

    const ifindex = c.if_nametoindex(ifname);
    if (ifindex === 0) throw new SyscallError(`if_nametoindex(${ifname})`, c.errno());
    this.ifindex = ifindex;

    // Protocol 0 at socket() time: the socket receives nothing until bind() names ETH_P_ALL and the
    // interface, so no frame of another interface slips into the queue in between (af_packet.c
    // registers the protocol hook only when proto != 0).
    const fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new SyscallError("socket(AF_PACKET, SOCK_RAW)", c.errno());
    this.#fd = fd;
    try {
      if (opts.ignoreOutgoing ?? true) this.#setInt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, true);
      if (this.#aux) this.#setInt(SOL_PACKET, PACKET_AUXDATA, 1, true);
      if (opts.qdiscBypass) this.#setInt(SOL_PACKET, PACKET_QDISC_BYPASS, 1, true);
      const rcvbuf = opts.rcvbuf ?? 4 << 20;
      const sndbuf = opts.sndbuf ?? 4 << 20;
      if (rcvbuf > 0 && !this.#setInt(SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf, false)) {
        this.#setInt(SOL_SOCKET, SO_RCVBUF, rcvbuf, false);
      }
      if (sndbuf > 0 && !this.#setInt(SOL_SOCKET, SO_SNDBUFFORCE, sndbuf, false)) {
        this.#setInt(SOL_SOCKET, SO_SNDBUF, sndbuf, false);
      }

      const ifr = Buffer.alloc(SIZEOF_IFREQ);
      ifr.write(ifname, 0, "utf8");
      if (c.ioctlPtr(fd, SIOCGIFHWADDR, ifr) < 0) throw new SyscallError("ioctl(SIOCGIFHWADDR)", c.errno());
      // ifr_hwaddr is a struct sockaddr at offset 16: sa_family (2 bytes), then the address.
      this.mac = Uint8Array.from(ifr.subarray(18, 18 + ETH_ALEN));
      ifr.fill(0, IFNAMSIZ);
      if (c.ioctlPtr(fd, SIOCGIFMTU, ifr) < 0) throw new SyscallError("ioctl(SIOCGIFMTU)", c.errno());
      this.mtu = ifr.readInt32LE(IFNAMSIZ);

      if (opts.promisc) {
        const mreq = Buffer.alloc(SIZEOF_PACKET_MREQ);
        mreq.writeInt32LE(ifindex, 0);
        mreq.writeUInt16LE(PACKET_MR_PROMISC, 4);
        if (c.setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq, SIZEOF_PACKET_MREQ) < 0) {
          throw new SyscallError("setsockopt(PACKET_ADD_MEMBERSHIP, PROMISC)", c.errno());
        }
      }

      const sll = Buffer.alloc(SIZEOF_SOCKADDR_LL);
      sll.writeUInt16LE(AF_PACKET, 0);
      sll.writeUInt16LE(htons(ETH_P_ALL), 2);
      sll.writeInt32LE(ifindex, 4);
      if (c.bind(fd, sll, SIZEOF_SOCKADDR_LL) < 0) throw new SyscallError(`bind(${ifname})`, c.errno());

      const slot = this.#rxSlotSize;
      this.#rxData = alloc(batch * slot);
      this.#rxIovOff = batch * SIZEOF_MMSGHDR;
      this.#rxNameOff = this.#rxIovOff + batch * SIZEOF_IOVEC;
      this.#rxCtlOff = this.#rxNameOff + batch * 24; // 8-aligned: cmsghdr starts with a size_t
      this.#rxMsgs = alloc(this.#rxCtlOff + (this.#aux ? batch * AUXDATA_CMSG_SPACE : 0));
      this.#txData = alloc(batch * txFrameSize);
      this.#txIovOff = batch * SIZEOF_MMSGHDR;
      this.#txMsgs = alloc(this.#txIovOff + batch * SIZEOF_IOVEC);
      this.#pollfd = alloc(SIZEOF_POLLFD);
      this.#pollfd.dv.setInt32(0, fd, true);
      this.#pollfd.dv.setInt16(4, POLLIN, true);

      this.#rxViews = [];
      this.#txViews = [];
      this.#rxLen = new Int32Array(batch);
      this.#rxSlotAddr = new Uint32Array(batch * 2);
      this.#txSlotAddr = new Uint32Array(batch * 2);
      const rx = this.#rxMsgs.dv;
      const tx = this.#txMsgs.dv;
      for (let i = 0; i < batch; i++) {
        const m = i * SIZEOF_MMSGHDR;
        const iov = this.#rxIovOff + i * SIZEOF_IOVEC;
        const name = this.#rxNameOff + i * 24;
        setPtr(rx, m + MSG_NAME, this.#rxMsgs.addr + name);
        rx.setUint32(m + MSG_NAMELEN, SIZEOF_SOCKADDR_LL, true);
        setPtr(rx, m + MSG_IOV, this.#rxMsgs.addr + iov);
        setPtr(rx, m + MSG_IOVLEN, 1);
        if (this.#aux) {
          setPtr(rx, m + MSG_CONTROL, this.#rxMsgs.addr + this.#rxCtlOff + i * AUXDATA_CMSG_SPACE);
          setPtr(rx, m + MSG_CONTROLLEN, AUXDATA_CMSG_SPACE);
        }
        setPtr(rx, iov, this.#rxData.addr + i * slot);
        setPtr(rx, iov + 8, snaplen);
        this.#rxViews.push(this.#rxData.bytes.subarray(i * slot, (i + 1) * slot));
        splitAddr(this.#rxSlotAddr, i, this.#rxData.addr + i * slot);

        // tx messages carry no address: af_packet.c's packet_snd() then uses the bound ifindex.
        const tiov = this.#txIovOff + i * SIZEOF_IOVEC;
        setPtr(tx, m + MSG_IOV, this.#txMsgs.addr + tiov);
        setPtr(tx, m + MSG_IOVLEN, 1);
        setPtr(tx, tiov, this.#txData.addr + i * txFrameSize);
        this.#txViews.push(this.#txData.bytes.subarray(i * txFrameSize, (i + 1) * txFrameSize));
        splitAddr(this.#txSlotAddr, i, this.#txData.addr + i * txFrameSize);
      }
    } catch (e) {
      this.#release();
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
    return this.#txCount;
  }

  /**
   * Receives up to `batch` frames. timeoutMs: 0 = do not wait, < 0 = wait forever, > 0 = wait at
   * most that long (poll(2)). Returns the number of frames (0 on timeout or EINTR). Flushes queued
   * transmits first.
   */
  recvBatch(timeoutMs: number): number {
    if (this.#closed) throw new Error("recvBatch on a closed PacketSocket");
    if (this.#txCount > 0) this.flush();
    const c = libc();
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
    let n = c.recvmmsg(this.#fd, this.#rxMsgs.addr, this.batch, MSG_DONTWAIT, null);
    if (n < 0) {
      const err = c.errno();
      if (err !== EAGAIN && err !== EINTR) throw new SyscallError("recvmmsg", err);
      if (timeoutMs === 0) return 0;
      const p = c.poll(this.#pollfd.addr, 1, timeoutMs < 0 ? -1 : Math.ceil(timeoutMs));
      if (p <= 0) {
        if (p < 0 && c.errno() !== EINTR) throw new SyscallError("poll", c.errno());
        return 0;
      }
      n = c.recvmmsg(this.#fd, this.#rxMsgs.addr, this.batch, MSG_DONTWAIT, null);
      if (n < 0) {
        const err2 = c.errno();
        if (err2 !== EAGAIN && err2 !== EINTR) throw new SyscallError("recvmmsg", err2);
        return 0;
      }
    }
    const cnt = this.counters;
    const maxLen = this.mtu + ETH_HLEN;
    for (let i = 0; i < n; i++) {
      const m = i * SIZEOF_MMSGHDR;
      let len = rx.getUint32(m + MMSG_LEN, true);
      const truncated = (rx.getInt32(m + MSG_FLAGS, true) & MSG_TRUNC) !== 0;
      if (truncated) cnt.rxTruncated++;
      // msg_len is what was copied (≤ snaplen); tp_len, when we have it, is the frame's own length.
      let origLen = len;
      const f = this.#rxViews[i];
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
            cnt.rxCsumPartial++;
            // A cut frame lacks bytes the checksum covers: leave it (it is counted as truncated).
            if (!truncated && completeL4Checksum(f, len)) cnt.rxCsumCompleted++;
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
      if (origLen > maxLen + VLAN_HLEN * tagCount(f, len)) cnt.rxOversize++;
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

  /** sll_pkttype of frame i: PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST… */
  pktType(i: number): number {
    return this.#rxMsgs.bytes[this.#rxNameOff + i * 24 + SLL_PKTTYPE];
  }

  /** Copies buf[off, off+len) into the next tx slot. False (counted) if len exceeds txFrameSize. */
  send(buf: Uint8Array, off: number, len: number): boolean {
    if (len > this.txFrameSize || len <= 0) {
      this.counters.txOversize++;
      return false;
    }
    if (this.#txCount === this.batch) this.flush();
    const dst = this.#txViews[this.#txCount];
    if (off === 0 && len === buf.length) dst.set(buf);
    else for (let k = 0; k < len; k++) dst[k] = buf[off + k];
    this.#queue(this.#txSlotAddr, this.#txCount, 0, len);
    return true;
  }

  /** The next tx slot to build a frame in (txFrameSize bytes); queue it with commit(len). */
  txBuffer(): Uint8Array {
    if (this.#txCount === this.batch) this.flush();
    return this.#txViews[this.#txCount];
  }

  commit(len: number): boolean {
    if (len > this.txFrameSize || len <= 0) {
      this.counters.txOversize++;
      return false;
    }
    if (this.#txCount === this.batch) this.flush();
    this.#queue(this.#txSlotAddr, this.#txCount, 0, len);
    return true;
  }

  /** Queues bytes [off, off+len) of rx slot i as they are (zero copy), e.g. a frame rewritten in place. */
  forward(i: number, off: number, len: number): boolean {
    if (i < 0 || i >= this.#rxCount || off < 0 || len <= 0 || off + len > this.#rxSlotSize) return false;
    if (this.#txCount === this.batch) this.flush();
    this.#queue(this.#rxSlotAddr, i, off, len);
    return true;
  }

  /** The native address of frame i's first byte (for queueAddress on any socket before this one's next recvBatch). */
  frameAddress(i: number): number {
    return this.#rxSlotAddr[i * 2] + this.#rxSlotAddr[i * 2 + 1] * 0x100000000;
  }

  /**
   * Queues len bytes at a native address (zero copy): a frame of another socket's last batch,
   * rewritten in place. The memory must stay valid until the next flush.
   */
  queueAddress(addr: number, len: number): void {
    if (this.#txCount === this.batch) this.flush();
    const tx = this.#txMsgs.dv;
    const iov = this.#txIovOff + this.#txCount * SIZEOF_IOVEC;
    setPtr(tx, iov, addr);
    tx.setUint32(iov + 8, len, true);
    tx.setUint32(iov + 12, 0, true);
    this.#txCount++;
  }

  /** Sends every queued frame (sendmmsg, retried until all are taken or refused). Returns frames sent. */
  flush(): number {
    const total = this.#txCount;
    if (total === 0) return 0;
    if (this.#closed) throw new Error("flush on a closed PacketSocket");
    const c = libc();
    const cnt = this.counters;
    const tx = this.#txMsgs.dv;
    let done = 0;
    let sent = 0;
    while (done < total) {
      const n = c.sendmmsg(this.#fd, this.#txMsgs.addr + done * SIZEOF_MMSGHDR, total - done, 0);
      if (n > 0) {
        for (let i = done; i < done + n; i++)
          cnt.txBytes += tx.getUint32(i * SIZEOF_MMSGHDR + MMSG_LEN, true);
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
    this.#txCount = 0;
    return sent;
  }

  /** Attaches (or replaces) a classic BPF socket filter (src/io/bpf.ts). */
  attachFilter(prog: BpfProgram): void {
    attachFilter(this.#fd, prog);
  }

  /** The kernel's PACKET_STATISTICS since the last call (reading resets them): frames queued, dropped. */
  kernelStats(): { packets: number; drops: number } {
    const c = libc();
    const val = Buffer.alloc(8);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(8, 0);
    if (c.getsockopt(this.#fd, SOL_PACKET, PACKET_STATISTICS, val, len) < 0) {
      throw new SyscallError("getsockopt(PACKET_STATISTICS)", c.errno());
    }
    return { packets: val.readUInt32LE(0), drops: val.readUInt32LE(4) };
  }

  /** Closes the socket and frees the native memory; every frame() view is dead afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#release();
  }

  #queue(addrs: Uint32Array, slot: number, off: number, len: number): void {
    const tx = this.#txMsgs.dv;
    const iov = this.#txIovOff + this.#txCount * SIZEOF_IOVEC;
    // base = slot address + off, carried across the 32-bit halves without leaving integers.
    const lo = addrs[slot * 2] + off;
    tx.setUint32(iov, lo >>> 0, true);
    tx.setUint32(iov + 4, addrs[slot * 2 + 1] + (lo > 0xffffffff ? 1 : 0), true);
    tx.setUint32(iov + 8, len, true);
    tx.setUint32(iov + 12, 0, true);
    this.#txCount++;
  }

  #setInt(level: number, name: number, value: number, required: boolean): boolean {
    const c = libc();
    const v = Buffer.alloc(4);
    v.writeInt32LE(value, 0);
    if (c.setsockopt(this.#fd, level, name, v, 4) === 0) return true;
    if (required) throw new SyscallError(`setsockopt(${level}, ${name})`, c.errno());
    return false;
  }

  #release(): void {
    this.#closed = true;
    const c = libc();
    if (this.#fd >= 0) c.close(this.#fd);
    this.#fd = -1;
    for (const r of [this.#rxData, this.#rxMsgs, this.#txData, this.#txMsgs, this.#pollfd]) {
      if (r !== undefined) c.koffi.free(r.ptr);
    }
    this.#rxCount = 0;
    this.#txCount = 0;
  }
}

/**
 * Completes, in place, the TCP or UDP checksum of an IPv4 frame received CHECKSUM_PARTIAL: the field
 * then holds only the pseudo-header sum that the transmitting device was to finish, so the checksum
 * is computed from scratch over pseudo-header + segment (IP total length, not the frame length:
 * Ethernet padding is not part of the segment). Up to two 802.1Q/802.1ad tags may precede the IP
 * header. Returns false, frame untouched, for anything else (IPv6, other protocols, fragments, a
 * header or total length that does not fit in len): such frames are passed on as they came.
 */
export function completeL4Checksum(f: Uint8Array, len: number): boolean {
  if (len > f.length) return false;
  let off = 12;
  if (off + 2 > len) return false;
  let type = readU16(f, off);
  for (let k = 0; k < 2 && isVlanType(type); k++) {
    off += VLAN_HLEN;
    if (off + 2 > len) return false;
    type = readU16(f, off);
  }
  if (type !== ETH_P_IP) return false;
  const l3 = off + 2;
  if (l3 + 20 > len || f[l3] >>> 4 !== 4) return false;
  const ihl = (f[l3] & 15) << 2;
  const tot = readU16(f, l3 + 2);
  if (ihl < 20 || tot < ihl || l3 + tot > len) return false;
  // MF set or a non-zero offset: a fragment never carries a partial checksum (ip_fragment
  // finishes it before it splits), and its L4 header may not be here.
  if ((readU16(f, l3 + 6) & 0x3fff) !== 0) return false;
  const proto = f[l3 + 9];
  const l4 = l3 + ihl;
  const l4Len = tot - ihl;
  let field: number;
  if (proto === 6 /* TCP */) {
    if (l4Len < 20) return false;
    field = 16;
  } else if (proto === 17 /* UDP */) {
    if (l4Len < 8) return false;
    field = 6;
  } else return false;
  writeU16(f, l4 + field, l4ChecksumV4(f, l3, l4, l4Len, proto));
  return true;
}

function isVlanType(t: number): boolean {
  return t === ETH_P_8021Q || t === ETH_P_8021AD;
}

/** 802.1Q/802.1ad tags at the start of the frame (0, 1 or 2: QinQ). */
export function tagCount(f: Uint8Array, len: number): number {
  if (len < 18 || !isVlanType(readU16(f, 12))) return 0;
  return len >= 22 && isVlanType(readU16(f, 16)) ? 2 : 1;
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

function alloc(size: number): Region {
  const k = libc().koffi;
  const ptr = k.alloc("uint8_t", size);
  const ab = k.view(ptr, size);
  const bytes = new Uint8Array(ab);
  bytes.fill(0);
  return { ptr, addr: addressOf(ptr), bytes, dv: new DataView(ab) };
}

function setPtr(dv: DataView, off: number, value: number): void {
  dv.setUint32(off, value % 0x100000000, true);
  dv.setUint32(off + 4, Math.floor(value / 0x100000000), true);
}

function splitAddr(out: Uint32Array, i: number, addr: number): void {
  out[i * 2] = addr % 0x100000000;
  out[i * 2 + 1] = Math.floor(addr / 0x100000000);
}
