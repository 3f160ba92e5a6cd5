// A small classic BPF interpreter written from Documentation/networking/filter.rst, for running the
// programs src/io/bpf.ts compiles on hand-built frames, without a kernel (test/e2e/ring-programs,
// test/unit/bpf6). It knows the opcodes those programs use and throws on any other.

import { parseIPv4 } from "../../src/core/addr.js";
import type { BpfProgram } from "../../src/io/bpf.js";

const A = (s: string): number => parseIPv4(s) ?? 0;

/** A minimum-size Ethernet frame with an IPv4 header's protocol and addresses (the rest zero). */
export function ipv4Frame(saddr: string, daddr: string, proto = 17): Uint8Array {
  const f = new Uint8Array(60);
  f[12] = 0x08;
  f[14] = 0x45;
  f[23] = proto;
  new DataView(f.buffer).setUint32(26, A(saddr));
  new DataView(f.buffer).setUint32(30, A(daddr));
  return f;
}

/** A minimum-size ARP frame with its target protocol address (the rest zero). */
export function arpFrame(target: string): Uint8Array {
  const f = new Uint8Array(60);
  f[12] = 0x08;
  f[13] = 0x06;
  new DataView(f.buffer).setUint32(38, A(target));
  return f;
}

/** Runs a cBPF program over pkt; `proto` answers the SKF_AD_PROTOCOL ancillary load. */
export function runBpf(prog: BpfProgram, pkt: Uint8Array, proto = 0): number {
  const dv = new DataView(prog.buffer, prog.byteOffset, prog.byteLength);
  let a = 0;
  let x = 0;
  for (let pc = 0; pc < prog.length / 8; pc++) {
    const code = dv.getUint16(pc * 8, true);
    const jt = prog[pc * 8 + 2];
    const jf = prog[pc * 8 + 3];
    const k = dv.getUint32(pc * 8 + 4, true);
    const load = (size: number): number => {
      if (k === 0xfffff000) return proto;
      if (k + size > pkt.length) throw new Error("out of packet");
      let v = 0;
      for (let i = 0; i < size; i++) v = (v * 256 + pkt[k + i]) >>> 0;
      return v;
    };
    switch (code) {
      case 0x20:
        a = load(4);
        break;
      case 0x28:
        a = load(2);
        break;
      case 0x30:
        a = load(1);
        break;
      case 0x15:
        pc += a === k ? jt : jf;
        break;
      case 0x05:
        pc += k;
        break;
      case 0x06:
        return k;
      case 0x16:
        return a;
      case 0x07:
        x = a;
        break;
      case 0x74:
        a = a >>> k;
        break;
      case 0x24:
        a = Math.imul(a, k) >>> 0;
        break;
      case 0xac:
        a = (a ^ x) >>> 0;
        break;
      default:
        throw new Error(`opcode ${code.toString(16)} not interpreted`);
    }
  }
  throw new Error("fell off the end");
}
