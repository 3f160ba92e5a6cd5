// A TPACKET_V2 transmit ring (PACKET_TX_RING): frames are written into slots of a ring shared with
// the kernel, marked TP_STATUS_SEND_REQUEST, and one send(fd, NULL, 0, 0) hands every marked slot to
// the driver (af_packet.c tpacket_snd). Kept as the measured alternative to sendmmsg (docs/io.md:
// the daemon transmits with sendmmsg); the generator of the figures can use either.
//
// struct tpacket2_hdr { u32 tp_status, tp_len, tp_snaplen; u16 tp_mac, tp_net; u32 tp_sec, tp_nsec;
//   u16 tp_vlan_tci, tp_vlan_tpid; u8 tp_padding[4]; } (32 bytes); on transmit the frame starts at
// tp_hdrlen - sizeof(struct sockaddr_ll) = TPACKET_ALIGN(32) + 20 - 20 = 32.

import {
  libc,
  MAP_SHARED,
  type NativePtr,
  PACKET_QDISC_BYPASS,
  PACKET_TX_RING,
  PACKET_VERSION,
  PROT_READ,
  PROT_WRITE,
  SOL_PACKET,
  SyscallError,
  TPACKET_V2,
} from "./libc.js";
import { bindIf, ifIndex, packetSocketFd, setIntOpt } from "./packet-common.js";

const TP_STATUS_SEND_REQUEST = 1;
const TP_STATUS_SENDING = 2;
const TP_STATUS_WRONG_FORMAT = 4;
const DATA_OFF = 32;

export interface TxRingOptions {
  /** Slot size (a power of two, ≥ 128). Default 2048. */
  frameSize?: number;
  /** Slots. Default 1024. */
  frames?: number;
  qdiscBypass?: boolean;
}

export class TxRing {
  readonly ifindex: number;
  readonly frameSize: number;
  readonly frames: number;
  sent = 0;
  /** Slots found still owned by the kernel (ring full): the frame was not queued. */
  full = 0;
  wrongFormat = 0;
  #fd: number;
  #ptr: NativePtr = null;
  #len = 0;
  #ring: Uint8Array = new Uint8Array(0);
  #dv: DataView = new DataView(new ArrayBuffer(0));
  #views: Uint8Array[] = [];
  #next = 0;
  #queued = 0;

  constructor(ifname: string, opts: TxRingOptions = {}) {
    const c = libc();
    this.frameSize = opts.frameSize ?? 2048;
    this.frames = opts.frames ?? 1024;
    const ifindex = ifIndex(ifname);
    this.ifindex = ifindex;
    const fd = packetSocketFd("socket(AF_PACKET)");
    this.#fd = fd;
    try {
      setIntOpt(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V2, true, "setsockopt(PACKET_VERSION)");
      if (opts.qdiscBypass) {
        setIntOpt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1, true, "setsockopt(PACKET_QDISC_BYPASS)");
      }
      const block = 1 << 16;
      const perBlock = block / this.frameSize;
      const blocks = Math.ceil(this.frames / perBlock);
      this.frames = blocks * perBlock;
      const req = Buffer.alloc(16);
      req.writeUInt32LE(block, 0);
      req.writeUInt32LE(blocks, 4);
      req.writeUInt32LE(this.frameSize, 8);
      req.writeUInt32LE(this.frames, 12);
      if (c.setsockopt(fd, SOL_PACKET, PACKET_TX_RING, req, 16) < 0) {
        throw new SyscallError("setsockopt(PACKET_TX_RING)", c.errno());
      }
      this.#len = block * blocks;
      const p = c.mmap(this.#len, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
      if (p === null || c.koffi.address(p) === 0xffffffffffffffffn) throw new SyscallError("mmap", c.errno());
      this.#ptr = p;
      const ab = c.koffi.view(p, this.#len);
      this.#ring = new Uint8Array(ab);
      this.#dv = new DataView(ab);
      for (let i = 0; i < this.frames; i++) {
        const off = i * this.frameSize + DATA_OFF;
        this.#views.push(this.#ring.subarray(off, (i + 1) * this.frameSize));
      }
      // Protocol 0: a tx-only socket registers no receive hook; it only names the device.
      bindIf(fd, ifindex, ifname, 0);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** The next free slot's data area, or null when the kernel still owns it (ring full). */
  slot(): Uint8Array | null {
    const st = this.#dv.getUint32(this.#next * this.frameSize, true);
    if (st === TP_STATUS_WRONG_FORMAT) this.wrongFormat++;
    else if (st === TP_STATUS_SEND_REQUEST || st === TP_STATUS_SENDING) {
      this.full++;
      return null;
    }
    return this.#views[this.#next];
  }

  /** Slot i's data area (to prebuild frames). */
  view(i: number): Uint8Array {
    return this.#views[i];
  }

  /** Marks the slot returned by slot() for sending, len bytes. */
  commit(len: number): void {
    const h = this.#next * this.frameSize;
    this.#dv.setUint32(h + 4, len, true);
    this.#dv.setUint32(h, TP_STATUS_SEND_REQUEST, true);
    this.#next = (this.#next + 1) % this.frames;
    this.#queued++;
  }

  /** Kicks the kernel: every slot marked since the last flush is sent (blocking until done). */
  flush(): number {
    if (this.#queued === 0) return 0;
    const c = libc();
    const n = c.send(this.#fd, 0, 0, 0);
    const q = this.#queued;
    this.#queued = 0;
    if (n < 0) return 0;
    this.sent += q;
    return q;
  }

  close(): void {
    const c = libc();
    if (this.#ptr !== null) c.munmap(this.#ptr, this.#len);
    this.#ptr = null;
    if (this.#fd >= 0) c.close(this.#fd);
    this.#fd = -1;
  }
}
