// The engine's own randomness: xorshift32 (Marsaglia, "Xorshift RNGs", J. Stat. Software 2003,
// shifts 13/17/5). Only twos draws from it, once per new connection. It is an object rather than a
// closure so that `tsvs explain` can copy its state and see the very values the next connection
// will draw, without drawing them (src/core/explain.ts).

/** The default seed (an engine built without one is deterministic, as the simulator wants). */
export const DEFAULT_SEED = 0x9e3779b9;

export class Xorshift32 {
  private s: number;

  /** seed: any u32; 0 (xorshift's one fixed point) is replaced by the default. */
  constructor(seed: number = DEFAULT_SEED) {
    this.s = seed >>> 0 === 0 ? DEFAULT_SEED : seed >>> 0;
  }

  /** The next uniform u32. */
  next(): number {
    let s = this.s;
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    this.s = s;
    return s;
  }

  /** A generator in the same state: it draws what this one will draw next, and this one is left as it is. */
  copy(): Xorshift32 {
    return new Xorshift32(this.s);
  }
}
