// The fuzzer's random numbers: sfc32 (Chris Doty-Humphrey's "small fast counting" generator, from
// PractRand), seeded per frame from (seed, index) through a 32-bit integer hash (Chris Wellons'
// lowbias32 mixer), so that frame `index` of a run is the same bytes whatever came before it: a
// finding is reproduced from the seed and the index alone, and a run can start anywhere.
// Pure: no node: imports, nothing allocated after construction.

/** lowbias32: a bijective 32-bit mixer (xorshift-multiply, constants from Wellons' hash-prospector). */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

export class FuzzRng {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 1;

  constructor(seed = 0, index = 0) {
    this.reseed(seed, index);
  }

  /** The stream of frame `index` of run `seed` (index up to 2^53: its high part is mixed in too). */
  reseed(seed: number, index: number): void {
    const hi = Math.floor(index / 0x100000000) >>> 0;
    const h = mix32(mix32(seed >>> 0) ^ mix32((index >>> 0) ^ Math.imul(hi, 0x9e3779b9)));
    this.a = mix32(h ^ 0x243f6a88);
    this.b = mix32(h ^ 0x85a308d3);
    this.c = mix32(h ^ 0x13198a2e);
    this.d = 1;
    // sfc32's authors discard the first outputs so that close seeds diverge.
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform u32. */
  u32(): number {
    const a = this.a;
    const b = this.b;
    const c = this.c;
    const d = this.d;
    const t = (((a + b) | 0) + d) | 0;
    this.d = (d + 1) | 0;
    this.a = b ^ (b >>> 9);
    this.b = (c + (c << 3)) | 0;
    this.c = ((c << 21) | (c >>> 11)) + t;
    this.c |= 0;
    return t >>> 0;
  }

  /** Uniform in [0, n) (n ≤ 2^32; the bias of the multiply-shift is below 2^-20 for n < 4096). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x100000000) * n);
  }

  /** Uniform in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() < p * 0x100000000;
  }

  byte(): number {
    return this.u32() & 255;
  }

  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }

  /** An index into weights, drawn in proportion to them (total = their sum). */
  weighted(weights: readonly number[], total: number): number {
    let r = (this.u32() / 0x100000000) * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i];
      if (r < 0) return i;
    }
    return weights.length - 1;
  }

  /** Random bytes over buf[off, off+len). */
  fill(buf: Uint8Array, off: number, len: number): void {
    let i = 0;
    for (; i + 4 <= len; i += 4) {
      const v = this.u32();
      buf[off + i] = v;
      buf[off + i + 1] = v >>> 8;
      buf[off + i + 2] = v >>> 16;
      buf[off + i + 3] = v >>> 24;
    }
    for (; i < len; i++) buf[off + i] = this.u32();
  }

  /** Small numbers most of the time, any u16 sometimes: length and count fields. */
  edge16(): number {
    switch (this.int(8)) {
      case 0:
        return 0;
      case 1:
        return 0xffff;
      case 2:
        return this.int(8);
      case 3:
        return 0x8000 + this.int(2) - 1;
      default:
        return this.u32() & 0xffff;
    }
  }
}
