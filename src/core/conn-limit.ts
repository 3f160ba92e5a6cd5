// Per-source new-connection rate limit of a service (a tsvs extension; neither the kernel nor DPVS
// has one): a token bucket per source prefix (/32 and /64 by default), `rate` tokens a second up to
// `burst`, one token per packet that would create a connection. Checked where the ACLs are (the
// kernel's *_conn_schedule point), so packets of existing connections never spend tokens.
//
// Memory is bounded: a fixed table of CONN_LIMIT_SLOTS buckets (open addressing, 4 probes). A source
// with no bucket takes a free slot among its 4, or evicts the one idle longest; an evicted source
// starts again with a full bucket, so under a flood of more than CONN_LIMIT_SLOTS active sources the
// limit is loose for the evicted ones (it never blocks a source wrongly).

/** Buckets per limited service: 16384 × 32 bytes = 512 KiB. */
export const CONN_LIMIT_SLOTS = 16384;
const PROBES = 4;

export interface ConnLimitSpec {
  /** New connections per second per source prefix; 0 = off. */
  rate: number;
  /** Bucket size (connections that may come at once); default: rate. */
  burst: number;
  /** Source prefix length a bucket covers, IPv4 (1..32) and IPv6 (1..128). */
  prefix4: number;
  prefix6: number;
}

export class ConnLimiter {
  readonly spec: ConnLimitSpec;
  /** Packets refused (no token left). */
  limited = 0;
  private readonly keys = new Int32Array(CONN_LIMIT_SLOTS * 4);
  private readonly tokens = new Float64Array(CONN_LIMIT_SLOTS);
  /** Last refill time, ms; 0 = free slot. */
  private readonly stamp = new Float64Array(CONN_LIMIT_SLOTS);
  private readonly key = new Int32Array(4);
  private readonly perMs: number;

  constructor(spec: ConnLimitSpec) {
    this.spec = { ...spec };
    this.perMs = spec.rate / 1000;
  }

  /** A new connection from IPv4 source a at now (ms): true if a token was left. */
  take4(a: number, now: number): boolean {
    const k = this.key;
    const len = this.spec.prefix4;
    k[0] = len === 0 ? 0 : (a >>> (32 - len)) << (32 - len);
    k[1] = 0;
    k[2] = 0;
    k[3] = 4;
    return this.take(now);
  }

  take6(w: Int32Array, now: number): boolean {
    const k = this.key;
    const len = this.spec.prefix6;
    for (let i = 0; i < 4; i++) {
      const bits = len - 32 * i;
      k[i] = bits >= 32 ? w[i] : bits <= 0 ? 0 : (w[i] >>> (32 - bits)) << (32 - bits);
    }
    // An IPv6 key never equals an IPv4 one (whose last word is 4) unless ::4-like; harmless.
    return this.take(now);
  }

  private take(now: number): boolean {
    const k = this.key;
    let h = Math.imul(k[0] ^ Math.imul(k[1], 0x9e3779b1), 0x85ebca6b);
    h = Math.imul(h ^ k[2] ^ Math.imul(k[3], 0xc2b2ae35), 0x27d4eb2f);
    h ^= h >>> 15;
    const t = now > 0 ? now : 1;
    let victim = -1;
    let oldest = Number.POSITIVE_INFINITY;
    for (let p = 0; p < PROBES; p++) {
      const s = (h + p) & (CONN_LIMIT_SLOTS - 1);
      const st = this.stamp[s];
      const o = s * 4;
      const ks = this.keys;
      if (st !== 0 && ks[o] === k[0] && ks[o + 1] === k[1] && ks[o + 2] === k[2] && ks[o + 3] === k[3]) {
        const tok = Math.min(this.spec.burst, this.tokens[s] + (t - st) * this.perMs);
        this.stamp[s] = t;
        if (tok < 1) {
          this.tokens[s] = tok;
          this.limited++;
          return false;
        }
        this.tokens[s] = tok - 1;
        return true;
      }
      if (st < oldest) {
        oldest = st;
        victim = s;
      }
    }
    const o = victim * 4;
    this.keys.set(k, o);
    this.stamp[victim] = t;
    this.tokens[victim] = this.spec.burst - 1;
    return true;
  }
}

/** Checks a spec; a message naming what is wrong, or null. */
export function checkConnLimit(s: ConnLimitSpec): string | null {
  if (!Number.isInteger(s.rate) || s.rate < 0 || s.rate > 1e9) return "illegal conn-rate specified";
  if (!Number.isInteger(s.burst) || s.burst < 1 || s.burst > 1e9) return "illegal conn-burst specified";
  if (!Number.isInteger(s.prefix4) || s.prefix4 < 1 || s.prefix4 > 32)
    return "illegal conn-rate-prefix specified";
  if (!Number.isInteger(s.prefix6) || s.prefix6 < 1 || s.prefix6 > 128)
    return "illegal conn-rate-prefix specified";
  return null;
}
