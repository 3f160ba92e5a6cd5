// Maglev hashing, net/netfilter/ipvs/ip_vs_mh.c; algorithm from Eisenbud et al., "Maglev: A Fast
// and Reliable Software Network Load Balancer" (NSDI 2016), section 3.4.
// Lookup table of M = 4093 slots (the prime at CONFIG_IP_VS_MH_TAB_INDEX = 12, the default). Each
// dest gets offset = h1(addr+port) % M and skip = h2(addr+port) % (M-1) + 1 (h = hsiphash with the
// kernel's fixed keys) and fills, in list order, its next free preferred slot, `turns` times per
// round, until the table is full. turns = (last_weight / gcd) >> rshift, at least 1 for a
// non-zero weight, where rshift keeps max/gcd within IP_VS_MH_TAB_BITS = 6 bits. last_weight is
// the latest non-zero weight: a quiesced dest keeps its slots (consistent hashing) and is then
// "unavailable" at lookup — no destination, or with mh-fallback (SVC_F_SCHED1) the slots
// h1(saddr + port + roffset) % M for roffset = ihash, ihash+1, ... are tried. mh-port
// (SVC_F_SCHED2) adds the source port to the key.
import { DEST_F_OVERLOAD, type Dest } from "../dest.js";
import type { Flow } from "../packet/flow.js";
import { type Service, SVC_F_SCHED_MH_FALLBACK, SVC_F_SCHED_MH_PORT } from "../service.js";
import type { SchedDetail, Scheduler } from "./types.js";
import { flowSaddrText, fls, gcd, hashPort, hsiphash1u32 } from "./util.js";

export const MH_PRIMES: readonly number[] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];
const MH_TAB_INDEX_CONFIG = 12;
/** IP_VS_MH_TAB_BITS: the number of bits of max weight/gcd kept before shifting. */
export const MH_TAB_BITS = MH_TAB_INDEX_CONFIG >> 1;
export const MH_TAB_SIZE = MH_PRIMES[MH_TAB_INDEX_CONFIG - 8];

// generate_hash_secret: fixed keys, both halves of each key equal (unsigned long on 64-bit).
const H1 = 2654435761;
const H2 = 2654446892;

/** ip_vs_mh_hashkey with hash1: v = offset + port + addr (u32), hsiphash(&v, 4, key). */
export function mhHash1(addr: number, port: number, offset: number): number {
  return hsiphash1u32((offset + port + addr) >>> 0, 0, H1, 0, H1);
}

export function mhHash2(addr: number, port: number): number {
  return hsiphash1u32((port + addr) >>> 0, 0, H2, 0, H2);
}

interface MhState {
  lookup: (Dest | null)[];
  gcd: number;
  rshift: number;
  /** dest->last_weight as the kernel keeps it: set on add, then only by non-zero weights. */
  lastWeight: Map<Dest, number>;
}

function lw(st: MhState, d: Dest): number {
  return st.lastWeight.get(d) ?? d.weight;
}

function rebuild(st: MhState, svc: Service): void {
  const ds = svc.dests;
  // ip_vs_mh_gcd_weight / ip_vs_mh_shift_weight over last_weight.
  let g = 0;
  let max = 0;
  for (const d of ds) {
    const w = lw(st, d);
    if (w > 0) g = g > 0 ? gcd(w, g) : w;
    if (w > max) max = w;
  }
  st.gcd = g;
  st.rshift = g < 1 ? 0 : Math.max(fls(Math.trunc(max / g)) - MH_TAB_BITS, 0);
  // ip_vs_mh_reassign: more dests than slots is refused (-EINVAL), the old table stays.
  if (ds.length > MH_TAB_SIZE) return;
  if (st.gcd < 1) {
    st.lookup.fill(null);
    return;
  }
  const n = ds.length;
  const perm = new Array<number>(n);
  const skip = new Array<number>(n);
  const turns = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const d = ds[i];
    const offset = mhHash1(d.addr, d.port, 0) % MH_TAB_SIZE;
    skip[i] = (mhHash2(d.addr, d.port) % (MH_TAB_SIZE - 1)) + 1;
    perm[i] = offset;
    const w = lw(st, d);
    const t = Math.trunc(w / st.gcd) >> st.rshift;
    turns[i] = t !== 0 ? t : w !== 0 ? 1 : 0;
  }
  const taken = new Uint8Array(MH_TAB_SIZE);
  let filled = 0;
  let dtCount = 0;
  while (filled < MH_TAB_SIZE) {
    for (let i = 0; i < n; ) {
      if (turns[i] < 1) {
        i++;
        continue;
      }
      let c = perm[i];
      while (taken[c] !== 0) {
        perm[i] += skip[i];
        if (perm[i] >= MH_TAB_SIZE) perm[i] -= MH_TAB_SIZE;
        c = perm[i];
      }
      taken[c] = 1;
      st.lookup[c] = ds[i];
      if (++filled === MH_TAB_SIZE) return;
      if (++dtCount >= turns[i]) {
        dtCount = 0;
        i++;
      }
    }
  }
}

function init(svc: Service): MhState {
  const st: MhState = {
    lookup: new Array<Dest | null>(MH_TAB_SIZE).fill(null),
    gcd: 0,
    rshift: 0,
    lastWeight: new Map(),
  };
  // Binding over existing dests: their last non-zero weight is what the control plane kept in
  // lastWeight when the current weight is 0.
  for (const d of svc.dests) st.lastWeight.set(d, d.weight !== 0 ? d.weight : Math.max(d.lastWeight, 0));
  svc.schedData = st;
  rebuild(st, svc);
  return st;
}

function state(svc: Service): MhState {
  return (svc.schedData as MhState | undefined) ?? init(svc);
}

function unavailable(d: Dest): boolean {
  return d.weight <= 0 || (d.flags & DEST_F_OVERLOAD) !== 0;
}

export function createMh(): Scheduler {
  return {
    name: "mh",
    initService(svc: Service): void {
      svc.schedData = undefined;
      init(svc);
    },
    doneService(svc: Service): void {
      svc.schedData = undefined;
    },
    addDest(svc: Service, dest: Dest): void {
      const st = state(svc);
      st.lastWeight.set(dest, dest.weight);
      rebuild(st, svc);
    },
    updDest(svc: Service, dest: Dest): void {
      const st = state(svc);
      if (dest.weight !== 0) st.lastWeight.set(dest, dest.weight);
      rebuild(st, svc);
    },
    delDest(svc: Service, dest: Dest): void {
      const st = state(svc);
      st.lastWeight.delete(dest);
      rebuild(st, svc);
    },
    explain(svc: Service, flow: Flow): SchedDetail {
      const st = svc.schedData as MhState | undefined;
      const portFlag = (svc.flags & SVC_F_SCHED_MH_PORT) !== 0;
      const fallback = (svc.flags & SVC_F_SCHED_MH_FALLBACK) !== 0;
      const port = portFlag ? hashPort(flow.proto, flow.sport) : 0;
      const hash = mhHash1(flow.saddr, port, 0);
      const slot = hash % MH_TAB_SIZE;
      const d = st === undefined ? null : st.lookup[slot];
      // The slot a fallback ends at (the walk schedule() makes).
      let fallbackSlot: number | null = null;
      if (st !== undefined && d !== null && unavailable(d) && fallback) {
        for (let offset = 0; offset < MH_TAB_SIZE; offset++) {
          const s = mhHash1(flow.saddr, port, (offset + slot) % MH_TAB_SIZE) % MH_TAB_SIZE;
          const x = st.lookup[s];
          if (x === null || !unavailable(x)) {
            fallbackSlot = s;
            break;
          }
        }
      }
      return {
        rule: "Maglev hashing: lookup-table slot hsiphash(client address + port if mh-port) mod 4093, slots dealt by each destination's permutation in proportion to its weight; an unavailable slot destination means no destination, unless mh-fallback walks on",
        figures: {
          hashed: portFlag ? `${flowSaddrText(flow)} + port ${port}` : flowSaddrText(flow),
          hash,
          slot,
          slots: MH_TAB_SIZE,
          slotDest: d,
          slotUsable: d !== null && !unavailable(d),
          "mh-fallback": fallback,
          "mh-port": portFlag,
          fallbackSlot,
          gcd: st?.gcd ?? null,
          rshift: st?.rshift ?? null,
        },
        dests: svc.dests.map((x) => {
          let count = 0;
          if (st !== undefined) for (const s of st.lookup) if (s === x) count++;
          return {
            dest: x,
            figures: {
              weight: x.weight,
              lastWeight: st === undefined ? x.weight : lw(st, x),
              overloaded: (x.flags & DEST_F_OVERLOAD) !== 0,
              slots: count,
            },
          };
        }),
      };
    },
    schedule(svc: Service, flow: Flow): Dest | null {
      const st = state(svc);
      const port = (svc.flags & SVC_F_SCHED_MH_PORT) !== 0 ? hashPort(flow.proto, flow.sport) : 0;
      const addr = flow.saddr;
      const ihash = mhHash1(addr, port, 0) % MH_TAB_SIZE;
      let d = st.lookup[ihash];
      if (d === null) return null;
      if (!unavailable(d)) return d;
      if ((svc.flags & SVC_F_SCHED_MH_FALLBACK) === 0) return null;
      for (let offset = 0; offset < MH_TAB_SIZE; offset++) {
        const roffset = (offset + ihash) % MH_TAB_SIZE;
        d = st.lookup[mhHash1(addr, port, roffset) % MH_TAB_SIZE];
        if (d === null) return null;
        if (!unavailable(d)) return d;
      }
      return null;
    },
  };
}
