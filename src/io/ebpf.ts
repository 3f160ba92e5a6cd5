// eBPF in TypeScript: an instruction encoder (as bpf.ts is for classic BPF) and the bpf(2) calls the
// AF_XDP backend needs — map create/update/delete, program load (with the verifier's log on failure),
// and attaching an XDP program to an interface through a bpf_link (BPF_LINK_CREATE, Linux ≥ 5.9),
// which the kernel detaches by itself when the last fd of the link closes: a daemon that crashes
// leaves no program behind.
//
// Encoding: include/uapi/linux/bpf.h, Documentation/bpf/standardization/instruction-set.rst. One
// instruction is 8 bytes {u8 opcode; u8 dst:4 (low nibble), src:4; s16 off; s32 imm} in host byte
// order (little endian on x86_64/aarch64); a 64-bit immediate load (BPF_LD | BPF_DW | BPF_IMM)
// takes two, the second carrying the upper 32 bits. A map is named in a program by that load with
// src = BPF_PSEUDO_MAP_FD and imm = the map's fd; the verifier replaces it with the map's address.

import { arch } from "node:os";
import { TsvsError } from "../core/errors.js";
import { libc } from "./libc.js";

// instruction classes, sizes, modes, operations (bpf.h / bpf_common.h)
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_JMP32 = 0x06;
export const BPF_ALU64 = 0x07;
export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;
export const BPF_DW = 0x18;
export const BPF_IMM = 0x00;
export const BPF_MEM = 0x60;
export const BPF_K = 0x00;
export const BPF_X = 0x08;
export const BPF_ADD = 0x00;
export const BPF_SUB = 0x10;
export const BPF_OR = 0x40;
export const BPF_AND = 0x50;
export const BPF_LSH = 0x60;
export const BPF_RSH = 0x70;
export const BPF_MUL = 0x20;
export const BPF_XOR = 0xa0;
export const BPF_MOD = 0x90;
export const BPF_MOV = 0xb0;
/** Byte swap (class BPF_ALU); with BPF_TO_BE it converts host order to big-endian. */
export const BPF_END = 0xd0;
export const BPF_TO_BE = 0x08;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JNE = 0x50;
export const BPF_JLT = 0xa0;
export const BPF_CALL = 0x80;
export const BPF_EXIT = 0x90;
export const BPF_PSEUDO_MAP_FD = 1;

/** Registers: r0 return value, r1–r5 arguments (clobbered by calls), r6–r9 callee saved, r10 frame pointer. */
export type Reg = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;

// helpers (bpf.h __BPF_FUNC_MAPPER order)
export const FN_MAP_LOOKUP_ELEM = 1;
export const FN_REDIRECT_MAP = 51;

// XDP verdicts (enum xdp_action)
export const XDP_ABORTED = 0;
export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const XDP_TX = 3;
export const XDP_REDIRECT = 4;

// struct xdp_md
export const XDP_MD_DATA = 0;
export const XDP_MD_DATA_END = 4;
export const XDP_MD_INGRESS_IFINDEX = 12;
export const XDP_MD_RX_QUEUE_INDEX = 16;

// bpf(2) commands, map and program types, attach types, flags
export const BPF_MAP_CREATE = 0;
export const BPF_MAP_LOOKUP_ELEM = 1;
export const BPF_MAP_UPDATE_ELEM = 2;
export const BPF_MAP_DELETE_ELEM = 3;
export const BPF_MAP_GET_NEXT_KEY = 4;
export const BPF_PROG_LOAD = 5;
export const BPF_PROG_TEST_RUN = 10;
export const BPF_LINK_CREATE = 28;
export const BPF_MAP_TYPE_HASH = 1;
export const BPF_MAP_TYPE_ARRAY = 2;
export const BPF_MAP_TYPE_XSKMAP = 17;
export const BPF_PROG_TYPE_XDP = 6;
export const BPF_XDP = 37;
export const BPF_ANY = 0;
/** XDP_FLAGS_* (if_link.h): generic (skb) mode, native (driver) mode. */
export const XDP_FLAGS_SKB_MODE = 1 << 1;
export const XDP_FLAGS_DRV_MODE = 1 << 2;

/** A program being written: 8-byte instructions, labels resolved by code(). */
export class EbpfAsm {
  #insns: number[][] = []; // [opcode, dst | src << 4, off, imm]
  #labels = new Map<string, number>();
  #fixups: { at: number; label: string }[] = [];

  get length(): number {
    return this.#insns.length;
  }

  #push(op: number, dst: number, src: number, off: number, imm: number): this {
    this.#insns.push([op, (dst & 0xf) | ((src & 0xf) << 4), off, imm | 0]);
    return this;
  }

  /** Places a label at the next instruction. */
  label(name: string): this {
    if (this.#labels.has(name)) throw new Error(`label ${name} defined twice`);
    this.#labels.set(name, this.#insns.length);
    return this;
  }

  /** dst = imm (64-bit ALU, sign-extended 32-bit immediate). */
  movImm(dst: Reg, imm: number): this {
    return this.#push(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm);
  }
  movReg(dst: Reg, src: Reg): this {
    return this.#push(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0);
  }
  /** 64-bit ALU with an immediate: op one of BPF_ADD, BPF_AND, BPF_LSH, … */
  aluImm(op: number, dst: Reg, imm: number): this {
    return this.#push(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm);
  }
  aluReg(op: number, dst: Reg, src: Reg): this {
    return this.#push(BPF_ALU64 | op | BPF_X, dst, src, 0, 0);
  }
  /** 32-bit ALU with an immediate (the result is zero-extended): wraps as C's u32 arithmetic. */
  alu32Imm(op: number, dst: Reg, imm: number): this {
    return this.#push(BPF_ALU | op | BPF_K, dst, 0, 0, imm);
  }
  alu32Reg(op: number, dst: Reg, src: Reg): this {
    return this.#push(BPF_ALU | op | BPF_X, dst, src, 0, 0);
  }
  /** dst = the low 32 bits of dst read as big-endian (bswap32 on a little-endian CPU). */
  toBe32(dst: Reg): this {
    return this.#push(BPF_ALU | BPF_END | BPF_TO_BE, dst, 0, 0, 32);
  }
  /** dst = *(size *)(src + off); size one of BPF_B, BPF_H, BPF_W, BPF_DW. */
  ldx(size: number, dst: Reg, src: Reg, off: number): this {
    return this.#push(BPF_LDX | BPF_MEM | size, dst, src, off, 0);
  }
  /** *(size *)(dst + off) = src. */
  stx(size: number, dst: Reg, off: number, src: Reg): this {
    return this.#push(BPF_STX | BPF_MEM | size, dst, src, off, 0);
  }
  /** *(size *)(dst + off) = imm. */
  st(size: number, dst: Reg, off: number, imm: number): this {
    return this.#push(BPF_ST | BPF_MEM | size, dst, 0, off, imm);
  }
  /** dst = the map with this fd (two instructions; the verifier swaps in the map's address). */
  ldMapFd(dst: Reg, fd: number): this {
    this.#push(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd);
    return this.#push(0, 0, 0, 0, 0);
  }
  /** if (dst op imm) goto label (64-bit compare). */
  jmpImm(op: number, dst: Reg, imm: number, label: string): this {
    this.#fixups.push({ at: this.#insns.length, label });
    return this.#push(BPF_JMP | op | BPF_K, dst, 0, 0, imm);
  }
  /** if (dst op src) goto label. */
  jmpReg(op: number, dst: Reg, src: Reg, label: string): this {
    this.#fixups.push({ at: this.#insns.length, label });
    return this.#push(BPF_JMP | op | BPF_X, dst, src, 0, 0);
  }
  ja(label: string): this {
    this.#fixups.push({ at: this.#insns.length, label });
    return this.#push(BPF_JMP | BPF_JA, 0, 0, 0, 0);
  }
  call(fn: number): this {
    return this.#push(BPF_JMP | BPF_CALL, 0, 0, 0, fn);
  }
  exit(): this {
    return this.#push(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  }

  /** The program's bytes, jumps resolved (offsets count from the instruction after the jump). */
  code(): Uint8Array {
    for (const f of this.#fixups) {
      const to = this.#labels.get(f.label);
      if (to === undefined) throw new Error(`undefined label ${f.label}`);
      const off = to - (f.at + 1);
      if (off < -0x8000 || off > 0x7fff) throw new Error(`jump to ${f.label} out of range`);
      this.#insns[f.at][2] = off;
    }
    const out = new Uint8Array(this.#insns.length * 8);
    const dv = new DataView(out.buffer);
    this.#insns.forEach(([op, regs, off, imm], i) => {
      dv.setUint8(i * 8, op);
      dv.setUint8(i * 8 + 1, regs);
      dv.setInt16(i * 8 + 2, off, true);
      dv.setInt32(i * 8 + 4, imm, true);
    });
    return out;
  }
}

/** An Error from bpf(2), with its errno and, for a refused program, the verifier's log. */
export class BpfError extends TsvsError {
  readonly errno: number;
  readonly log: string;
  constructor(what: string, errno: number, log = "") {
    super(
      "TSVS_ERR_INTERNAL",
      `${what}: ${libc().strerror(errno)} (errno ${errno})${log === "" ? "" : `\n${log.trimEnd()}`}`,
    );
    this.name = "BpfError";
    this.errno = errno;
    this.log = log;
  }
}

type SyscallFn = (nr: number, ...args: unknown[]) => number | bigint;
let syscallFn: SyscallFn | null = null;

/** bpf(2) through syscall(2): glibc has no wrapper. */
function bpf(cmd: number, attr: Buffer): number {
  const c = libc();
  if (syscallFn === null) {
    syscallFn = c.koffi.load("libc.so.6").func("long syscall(long number, ...)") as unknown as SyscallFn;
  }
  // __NR_bpf: 321 on x86_64, 280 on aarch64 (the generic table)
  const nr = arch() === "arm64" ? 280 : 321;
  return Number(syscallFn(nr, "int", cmd, "void *", attr, "unsigned int", attr.length));
}

/** sizeof(union bpf_attr) we pass: large enough for every command used here, zero-padded. */
const ATTR_SIZE = 128;

/** A BPF map (an fd): its key and value sizes, for update/delete. */
export class BpfMap {
  #fd: number;
  constructor(
    fd: number,
    readonly keySize: number,
    readonly valueSize: number,
    readonly maxEntries: number,
  ) {
    this.#fd = fd;
  }
  get fd(): number {
    return this.#fd;
  }

  /** Inserts or replaces key → value (BPF_ANY). */
  update(key: Uint8Array, value: Uint8Array): void {
    if (key.length !== this.keySize || value.length !== this.valueSize)
      throw new RangeError(`map key/value must be ${this.keySize}/${this.valueSize} bytes`);
    const k = Buffer.from(key);
    const v = Buffer.from(value);
    const attr = Buffer.alloc(ATTR_SIZE);
    // struct { u32 map_fd; u64 key (aligned: 8); u64 value; u64 flags; }
    attr.writeUInt32LE(this.#fd, 0);
    attr.writeBigUInt64LE(libc().koffi.address(k), 8);
    attr.writeBigUInt64LE(libc().koffi.address(v), 16);
    attr.writeBigUInt64LE(BigInt(BPF_ANY), 24);
    if (bpf(BPF_MAP_UPDATE_ELEM, attr) < 0) throw new BpfError("bpf(BPF_MAP_UPDATE_ELEM)", libc().errno());
  }

  /** Removes key; false when it was not there. */
  delete(key: Uint8Array): boolean {
    const k = Buffer.from(key);
    const attr = Buffer.alloc(ATTR_SIZE);
    attr.writeUInt32LE(this.#fd, 0);
    attr.writeBigUInt64LE(libc().koffi.address(k), 8);
    if (bpf(BPF_MAP_DELETE_ELEM, attr) < 0) {
      const e = libc().errno();
      if (e === 2 /* ENOENT */) return false;
      throw new BpfError("bpf(BPF_MAP_DELETE_ELEM)", e);
    }
    return true;
  }

  /** The value of key, or null. */
  lookup(key: Uint8Array): Uint8Array | null {
    const k = Buffer.from(key);
    const v = Buffer.alloc(this.valueSize);
    const attr = Buffer.alloc(ATTR_SIZE);
    attr.writeUInt32LE(this.#fd, 0);
    attr.writeBigUInt64LE(libc().koffi.address(k), 8);
    attr.writeBigUInt64LE(libc().koffi.address(v), 16);
    if (bpf(BPF_MAP_LOOKUP_ELEM, attr) < 0) {
      const e = libc().errno();
      if (e === 2) return null;
      throw new BpfError("bpf(BPF_MAP_LOOKUP_ELEM)", e);
    }
    return new Uint8Array(v);
  }

  /** Every key (BPF_MAP_GET_NEXT_KEY from none); for reconciling a set and for tests. */
  keys(): Uint8Array[] {
    const out: Uint8Array[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const attr = Buffer.alloc(ATTR_SIZE);
      attr.writeUInt32LE(this.#fd, 0);
      attr.writeBigUInt64LE(prev === null ? 0n : libc().koffi.address(prev), 8);
      attr.writeBigUInt64LE(libc().koffi.address(next), 16);
      if (bpf(BPF_MAP_GET_NEXT_KEY, attr) < 0) {
        const e = libc().errno();
        if (e === 2) return out;
        throw new BpfError("bpf(BPF_MAP_GET_NEXT_KEY)", e);
      }
      out.push(new Uint8Array(next));
      prev = next;
    }
  }

  close(): void {
    if (this.#fd >= 0) libc().close(this.#fd);
    this.#fd = -1;
  }
}

/** BPF_MAP_CREATE. name: up to 15 characters, shown by bpftool. */
export function createMap(
  type: number,
  keySize: number,
  valueSize: number,
  maxEntries: number,
  name: string,
  flags = 0,
): BpfMap {
  const attr = Buffer.alloc(ATTR_SIZE);
  // { u32 map_type, key_size, value_size, max_entries, map_flags, inner_map_fd, numa_node; char map_name[16]; … }
  attr.writeUInt32LE(type, 0);
  attr.writeUInt32LE(keySize, 4);
  attr.writeUInt32LE(valueSize, 8);
  attr.writeUInt32LE(maxEntries, 12);
  attr.writeUInt32LE(flags, 16);
  attr.write(name.slice(0, 15), 28, "latin1");
  const fd = bpf(BPF_MAP_CREATE, attr);
  if (fd < 0) throw new BpfError(`bpf(BPF_MAP_CREATE ${name})`, libc().errno());
  return new BpfMap(fd, keySize, valueSize, maxEntries);
}

/**
 * BPF_PROG_LOAD of an XDP program; returns its fd. On failure the call is made again with the
 * verifier's log (level 1), so the error says which instruction it refused and why.
 */
export function loadXdpProgram(code: Uint8Array, name: string): number {
  const c = libc();
  const insns = Buffer.from(code);
  const license = Buffer.from("GPL\0", "latin1");
  const attempt = (log: Buffer | null): number => {
    const attr = Buffer.alloc(ATTR_SIZE);
    // { u32 prog_type, insn_cnt; u64 insns, license; u32 log_level, log_size; u64 log_buf;
    //   u32 kern_version, prog_flags; char prog_name[16]; u32 prog_ifindex, expected_attach_type; … }
    attr.writeUInt32LE(BPF_PROG_TYPE_XDP, 0);
    attr.writeUInt32LE(code.length / 8, 4);
    attr.writeBigUInt64LE(c.koffi.address(insns), 8);
    attr.writeBigUInt64LE(c.koffi.address(license), 16);
    if (log !== null) {
      attr.writeUInt32LE(1, 24);
      attr.writeUInt32LE(log.length, 28);
      attr.writeBigUInt64LE(c.koffi.address(log), 32);
    }
    attr.write(name.slice(0, 15), 48, "latin1");
    attr.writeUInt32LE(BPF_XDP, 68);
    return bpf(BPF_PROG_LOAD, attr);
  };
  const fd = attempt(null);
  if (fd >= 0) return fd;
  const errno = c.errno();
  const log = Buffer.alloc(1 << 20);
  const again = attempt(log);
  if (again >= 0) return again; // a transient failure (EAGAIN from the verifier)
  const end = log.indexOf(0);
  throw new BpfError("bpf(BPF_PROG_LOAD)", errno, log.toString("latin1", 0, end < 0 ? log.length : end));
}

/**
 * BPF_PROG_TEST_RUN: runs an XDP program once over `frame` in the kernel; returns its verdict.
 * For tests of a loaded program's decisions (XDP_REDIRECT without a socket in the map is a redirect
 * to nothing: the verdict still says what the program chose).
 */
export function testRunXdp(progFd: number, frame: Uint8Array, rxQueue = 0): number {
  const c = libc();
  const data = Buffer.from(frame);
  const out = Buffer.alloc(frame.length + 256);
  // struct xdp_md as ctx_in: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(0, 0);
  ctx.writeUInt32LE(frame.length, 4);
  ctx.writeUInt32LE(rxQueue, 16);
  const attr = Buffer.alloc(ATTR_SIZE);
  // test: { u32 prog_fd, retval, data_size_in, data_size_out; u64 data_in, data_out; u32 repeat,
  //         duration, ctx_size_in, ctx_size_out; u64 ctx_in, ctx_out; u32 flags, cpu, batch_size; }
  attr.writeUInt32LE(progFd, 0);
  attr.writeUInt32LE(frame.length, 8);
  attr.writeUInt32LE(out.length, 12);
  attr.writeBigUInt64LE(c.koffi.address(data), 16);
  attr.writeBigUInt64LE(c.koffi.address(out), 24);
  attr.writeUInt32LE(1, 32);
  attr.writeUInt32LE(0, 40); // no ctx: the kernel builds xdp_md itself (queue 0)
  if (rxQueue !== 0) {
    attr.writeUInt32LE(ctx.length, 40);
    attr.writeBigUInt64LE(c.koffi.address(ctx), 48);
  }
  if (bpf(BPF_PROG_TEST_RUN, attr) < 0) throw new BpfError("bpf(BPF_PROG_TEST_RUN)", c.errno());
  return attr.readUInt32LE(4);
}

/** XDP attach modes, as `ip link` shows them. */
export type XdpMode = "native" | "generic";

/**
 * Attaches an XDP program to ifindex with a bpf_link (BPF_LINK_CREATE, attach type BPF_XDP); the
 * returned fd holds it: closing it (or the process exiting) detaches the program. mode "native"
 * asks the driver (XDP_FLAGS_DRV_MODE: veth, most NIC drivers), "generic" the core's skb path.
 */
export function attachXdpLink(progFd: number, ifindex: number, mode: XdpMode): number {
  const attr = Buffer.alloc(ATTR_SIZE);
  // link_create: { u32 prog_fd; u32 target_ifindex; u32 attach_type; u32 flags; … }
  attr.writeUInt32LE(progFd, 0);
  attr.writeUInt32LE(ifindex, 4);
  attr.writeUInt32LE(BPF_XDP, 8);
  attr.writeUInt32LE(mode === "native" ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE, 12);
  const fd = bpf(BPF_LINK_CREATE, attr);
  if (fd < 0) throw new BpfError(`bpf(BPF_LINK_CREATE, ${mode} XDP on ifindex ${ifindex})`, libc().errno());
  return fd;
}

/** Native mode first (the driver's path, no skb), generic where the driver has no XDP. */
export function attachXdpAuto(progFd: number, ifindex: number): { fd: number; mode: XdpMode } {
  try {
    return { fd: attachXdpLink(progFd, ifindex, "native"), mode: "native" };
  } catch (e) {
    // EOPNOTSUPP/EINVAL: no ndo_bpf in the driver; anything else (EBUSY: a program is there) too
    // is retried generic, whose own error is then the one reported.
    if (!(e instanceof BpfError)) throw e;
    return { fd: attachXdpLink(progFd, ifindex, "generic"), mode: "generic" };
  }
}
