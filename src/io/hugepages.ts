// Memory for the connection table that the kernel may back with 2 MiB pages. At a million
// connections every lookup reads a bucket head and a record at random in ~70 MiB: with 4 KiB pages
// each is a TLB miss and a page walk besides the cache miss. Transparent huge pages are `madvise`
// on a default Debian kernel, and V8 never madvises an ArrayBuffer's memory, so the table gets an
// anonymous mapping of its own, aligned to 2 MiB and advised MADV_HUGEPAGE before it is touched.
// The kernel still decides: without free 2 MiB blocks (or with THP `never`) the pages stay small
// and nothing else changes. The engine takes this as an injected allocator (core stays pure).

import { readFileSync } from "node:fs";
import { libc, SyscallError } from "./libc.js";

const HUGE = 2 * 1024 * 1024;
const PROT_NONE = 0;
const PROT_RW = 0x1 | 0x2;
const MAP_PRIVATE = 0x02;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;
const MAP_NORESERVE = 0x4000;
const MADV_HUGEPAGE = 14;
const MAP_FAILED = 0xffffffffffffffffn;

/** Unmaps a buffer's mapping once V8 has collected the buffer (the table went away). */
const unmapper = new FinalizationRegistry<{ addr: bigint; len: number }>((m) => {
  libc().munmapAt(m.addr, m.len);
});

/**
 * A zeroed ArrayBuffer of `bytes` in its own 2 MiB-aligned anonymous mapping advised for huge
 * pages. Throws SyscallError when the kernel refuses the mapping.
 */
export function hugePageBuffer(bytes: number): ArrayBuffer {
  const c = libc();
  const len = Math.ceil(Math.max(bytes, 1) / HUGE) * HUGE;
  // Reserve len + 2 MiB of address space, then map the aligned part of it for real.
  const reserve = len + HUGE;
  const r = c.mmapAt(0n, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  const base = r === null ? MAP_FAILED : c.koffi.address(r);
  if (base === MAP_FAILED) throw new SyscallError("mmap(reserve)", c.errno());
  const addr = (base + BigInt(HUGE - 1)) & ~BigInt(HUGE - 1);
  if (addr > base) c.munmapAt(base, Number(addr - base));
  const tail = base + BigInt(reserve) - (addr + BigInt(len));
  if (tail > 0n) c.munmapAt(addr + BigInt(len), Number(tail));
  const p = c.mmapAt(addr, len, PROT_RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (p === null || c.koffi.address(p) !== addr) {
    const errno = c.errno();
    c.munmapAt(addr, len);
    throw new SyscallError("mmap(table)", errno);
  }
  // Advice refused (THP compiled out) leaves small pages: still correct memory.
  c.madvise(addr, len, MADV_HUGEPAGE);
  const ab = c.koffi.view(p, len) as ArrayBuffer;
  unmapper.register(ab, { addr, len });
  return ab;
}

/**
 * The connection table's allocator: huge pages for arrays of 2 MiB and more, V8's memory for
 * smaller ones and wherever the kernel refuses the mapping.
 */
export function hugePageAlloc(bytes: number): ArrayBuffer {
  if (bytes < HUGE) return new ArrayBuffer(bytes);
  try {
    return hugePageBuffer(bytes);
  } catch {
    return new ArrayBuffer(bytes);
  }
}

/** Anonymous memory the process has in huge pages (smaps_rollup AnonHugePages), bytes; null if unknown. */
export function anonHugeBytes(): number | null {
  try {
    const m = /^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync("/proc/self/smaps_rollup", "utf8"));
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}
