// The eBPF encoder (src/io/ebpf.ts) against instruction bytes written out by hand from
// include/uapi/linux/bpf.h ({u8 code; u8 dst:4, src:4; s16 off; s32 imm}, little endian), and the
// XDP program's shape (src/io/xdp-prog.ts): where its map references are, how it starts and ends.
// No kernel needed; test/e2e/xdp-prog.test.ts loads the program and runs it.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  BPF_ADD,
  BPF_AND,
  BPF_B,
  BPF_DW,
  BPF_H,
  BPF_JEQ,
  BPF_JGT,
  BPF_LSH,
  BPF_MOD,
  BPF_MUL,
  BPF_RSH,
  BPF_W,
  BPF_XOR,
  EbpfAsm,
  FN_REDIRECT_MAP,
  XDP_PASS,
} from "../../src/io/ebpf.js";
import { buildXdpProgram } from "../../src/io/xdp-prog.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

describe("eBPF encoder", () => {
  it("encodes each instruction form as the uapi lays it out (golden bytes)", () => {
    const cases: [string, (a: EbpfAsm) => void, string][] = [
      // BPF_ALU64|BPF_MOV|BPF_K = 0xb7, dst r0, imm 2
      ["mov r0, 2", (a) => a.movImm(0, XDP_PASS), "b700000002000000"],
      // BPF_ALU64|BPF_MOV|BPF_X = 0xbf, dst r6 (low nibble), src r1 (high nibble)
      ["mov r6, r1", (a) => a.movReg(6, 1), "bf16000000000000"],
      // BPF_ALU64|BPF_ADD|BPF_K = 0x07, negative immediate in two's complement
      ["add r2, -4", (a) => a.aluImm(BPF_ADD, 2, -4), "07020000fcffffff"],
      ["and r2, 0xff1f", (a) => a.aluImm(BPF_AND, 2, 0xff1f), "570200001fff0000"],
      ["lsh r2, 2", (a) => a.aluImm(BPF_LSH, 2, 2), "6702000002000000"],
      ["w2 *= 0x45d9f3b", (a) => a.alu32Imm(BPF_MUL, 2, 0x45d9f3b), "240200003b9f5d04"],
      ["w3 >>= 16", (a) => a.alu32Imm(BPF_RSH, 3, 16), "7403000010000000"],
      ["w2 ^= w3", (a) => a.alu32Reg(BPF_XOR, 2, 3), "ac32000000000000"],
      ["w2 %= 2", (a) => a.alu32Imm(BPF_MOD, 2, 2), "9402000002000000"],
      ["r2 = be32 r2", (a) => a.toBe32(2), "dc02000020000000"],
      ["add r3, r2", (a) => a.aluReg(BPF_ADD, 3, 2), "0f23000000000000"],
      // BPF_LDX|BPF_MEM|BPF_W = 0x61, r7 = *(u32 *)(r6 + 0)
      ["ldxw r7, [r6+0]", (a) => a.ldx(BPF_W, 7, 6, 0), "6167000000000000"],
      ["ldxh r2, [r7+12]", (a) => a.ldx(BPF_H, 2, 7, 12), "69720c0000000000"],
      ["ldxb r3, [r7+23]", (a) => a.ldx(BPF_B, 3, 7, 23), "7173170000000000"],
      // BPF_STX|BPF_MEM|BPF_W = 0x63, *(u32 *)(r10 - 4) = r2: off -4 = 0xfffc
      ["stxw [r10-4], r2", (a) => a.stx(BPF_W, 10, -4, 2), "632afcff00000000"],
      // BPF_ST|BPF_MEM|BPF_H = 0x6a
      ["sth [r10-12], 0", (a) => a.st(BPF_H, 10, -12, 0), "6a0af4ff00000000"],
      ["ldxdw r1, [r2+8]", (a) => a.ldx(BPF_DW, 1, 2, 8), "7921080000000000"],
      // BPF_LD|BPF_DW|BPF_IMM = 0x18, src = BPF_PSEUDO_MAP_FD (1), imm = fd; second slot zero
      ["ld_map_fd r1, 7", (a) => a.ldMapFd(1, 7), "1811000007000000" + "0000000000000000"],
      // BPF_JMP|BPF_CALL = 0x85, imm = helper id
      ["call redirect_map", (a) => a.call(FN_REDIRECT_MAP), "8500000033000000"],
      ["exit", (a) => a.exit(), "9500000000000000"],
    ];
    for (const [what, emit, want] of cases) {
      const a = new EbpfAsm();
      emit(a);
      assert.equal(hex(a.code()), want, what);
    }
  });

  it("resolves jumps forward and backward, counting from the next instruction", () => {
    const a = new EbpfAsm();
    a.label("top");
    a.jmpImm(BPF_JEQ, 2, 8, "out"); // insn 0: to 3, off +2
    a.jmpReg(BPF_JGT, 2, 8, "top"); // insn 1: back to 0, off -2
    a.ja("out"); // insn 2: to 3, off 0
    a.label("out");
    a.exit();
    assert.equal(
      hex(a.code()),
      [
        "1502020008000000", // jeq r2, 8, +2 (0x15 = JMP|JEQ|K)
        "2d82feff00000000", // jgt r2, r8, -2 (0x2d = JMP|JGT|X; src r8 in the high nibble)
        "0500000000000000", // ja +0
        "9500000000000000",
      ].join(""),
    );
  });

  it("refuses an undefined label and a label defined twice", () => {
    const a = new EbpfAsm();
    a.ja("nowhere");
    assert.throws(() => a.code(), /undefined label nowhere/);
    const b = new EbpfAsm().label("x");
    assert.throws(() => b.label("x"), /defined twice/);
  });
});

describe("XDP program bytecode", () => {
  const maps = { xsks: 11, own4: 12, local4: 13, nat4: 14, own6: 15, local6: 16, nat6: 17, cfg: 18 };
  const code = buildXdpProgram(maps);
  const insn = (i: number): string => hex(code.subarray(i * 8, i * 8 + 8));

  it("starts by saving the context and loading data/data_end, and ends with pass: r0 = XDP_PASS; exit", () => {
    assert.equal(insn(0), "bf16000000000000");
    assert.equal(insn(1), "6167000000000000"); // r7 = ctx->data
    assert.equal(insn(2), "6168040000000000"); // r8 = ctx->data_end
    const n = code.length / 8;
    assert.equal(insn(n - 2), "b700000002000000");
    assert.equal(insn(n - 1), "9500000000000000");
  });

  it("names every map by fd in a two-slot load, and redirects through the socket map with XDP_PASS as fallback", () => {
    const seen = new Map<number, number>();
    for (let i = 0; i < code.length / 8; i++) {
      if (code[i * 8] !== 0x18) continue;
      assert.equal(code[i * 8 + 1] >> 4, 1, `insn ${i}: BPF_PSEUDO_MAP_FD`);
      const fd = new DataView(code.buffer).getInt32(i * 8 + 4, true);
      seen.set(fd, (seen.get(fd) ?? 0) + 1);
      assert.equal(insn(i + 1), "0000000000000000", `insn ${i + 1}: the upper half`);
      i++;
    }
    assert.deepEqual(
      [...seen.keys()].sort((x, y) => x - y),
      Object.values(maps),
    );
    assert.equal(seen.get(maps.xsks), 1);
    // …; r1 = xsks; r3 = XDP_PASS; call bpf_redirect_map; exit
    const n = code.length / 8;
    const tail = [insn(n - 7), insn(n - 6), insn(n - 5), insn(n - 4), insn(n - 3)];
    assert.deepEqual(tail, [
      "181100000b000000",
      "0000000000000000",
      "b703000002000000",
      "8500000033000000",
      "9500000000000000",
    ]);
    assert.equal(insn(n - 8), "6162100000000000"); // r2 = ctx->rx_queue_index
  });

  it("takes another verdict for a queue without socket when asked (for BPF_PROG_TEST_RUN)", () => {
    const t = buildXdpProgram(maps, 3);
    const n = t.length / 8;
    assert.equal(hex(t.subarray((n - 5) * 8, (n - 4) * 8)), "b703000003000000");
  });
});
