// Source hashing, net/netfilter/ipvs/ip_vs_sh.c.
// 256 buckets (IP_VS_SH_TAB_BITS = 8) dealt in list order, each dest taking `weight` consecutive
// buckets before the next (a weight-0 dest still takes one), round and round until full. The
// bucket of a packet is hash_32(saddr + sport, 8), sport only with sh-port (SVC_F_SCHED2). A
// quiesced or overloaded bucket dest gives no destination, unless sh-fallback (SVC_F_SCHED1): then
// the kernel tries bucket (offset + 2*ihash) & 255 for offset = 0..255 — ip_vs_sh_get_fallback
// adds ihash to the rotating offset and hashkey adds the offset to the hash again.
import { DEST_F_OVERLOAD, type Dest } from "../dest.js";
import type { Flow } from "../packet/flow.js";
import { type Service, SVC_F_SCHED_SH_FALLBACK, SVC_F_SCHED_SH_PORT } from "../service.js";
import type { SchedDetail, Scheduler } from "./types.js";
import { flowSaddrText, hash32, hashPort } from "./util.js";

export const SH_TAB_BITS = 8;
export const SH_TAB_SIZE = 1 << SH_TAB_BITS;
const SH_TAB_MASK = SH_TAB_SIZE - 1;

interface ShState {
  buckets: (Dest | null)[];
}

function reassign(svc: Service): ShState {
  let st = svc.schedData as ShState | undefined;
  if (st === undefined) {
    st = { buckets: new Array<Dest | null>(SH_TAB_SIZE).fill(null) };
    svc.schedData = st;
  }
  const ds = svc.dests;
  let p = 0;
  let count = 0;
  for (let i = 0; i < SH_TAB_SIZE; i++) {
    if (ds.length === 0) {
      st.buckets[i] = null;
      continue;
    }
    if (p === ds.length) p = 0;
    const d = ds[p];
    st.buckets[i] = d;
    if (++count >= d.weight) {
      p++;
      count = 0;
    }
  }
  return st;
}

/** ip_vs_sh_hashkey: (offset + hash_32(port + addr, 8)) & mask, the sum wrapping at 32 bits. */
export function shHashKey(addr: number, port: number, offset: number): number {
  return (offset + hash32((port + addr) >>> 0, SH_TAB_BITS)) & SH_TAB_MASK;
}

function unavailable(d: Dest): boolean {
  return d.weight <= 0 || (d.flags & DEST_F_OVERLOAD) !== 0;
}

export function createSh(): Scheduler {
  const changed = (svc: Service): void => {
    reassign(svc);
  };
  return {
    name: "sh",
    initService(svc: Service): void {
      svc.schedData = undefined;
      reassign(svc);
    },
    doneService(svc: Service): void {
      svc.schedData = undefined;
    },
    addDest: changed,
    delDest: changed,
    updDest: changed,
    explain(svc: Service, flow: Flow): SchedDetail {
      const st = svc.schedData as ShState | undefined;
      const portFlag = (svc.flags & SVC_F_SCHED_SH_PORT) !== 0;
      const fallback = (svc.flags & SVC_F_SCHED_SH_FALLBACK) !== 0;
      const port = portFlag ? hashPort(flow.proto, flow.sport) : 0;
      const ihash = shHashKey(flow.saddr, port, 0);
      const d = st === undefined ? null : st.buckets[ihash];
      // The bucket a fallback ends at (the walk schedule() makes).
      let fallbackBucket: number | null = null;
      if (st !== undefined && d !== null && unavailable(d) && fallback) {
        for (let offset = 0; offset < SH_TAB_SIZE; offset++) {
          const b = shHashKey(flow.saddr, port, (offset + ihash) % SH_TAB_SIZE);
          const x = st.buckets[b];
          if (x === null || !unavailable(x)) {
            fallbackBucket = b;
            break;
          }
        }
      }
      return {
        rule: "source hashing: bucket hash_32(client address + port if sh-port, 8) of 256, weight consecutive buckets per destination; an unavailable bucket destination means no destination, unless sh-fallback walks on",
        figures: {
          hashed: portFlag ? `${flowSaddrText(flow)} + port ${port}` : flowSaddrText(flow),
          bucket: ihash,
          buckets: SH_TAB_SIZE,
          bucketDest: d,
          bucketUsable: d !== null && !unavailable(d),
          "sh-fallback": fallback,
          "sh-port": portFlag,
          fallbackBucket,
        },
        dests: svc.dests.map((x) => {
          let count = 0;
          if (st !== undefined) for (const b of st.buckets) if (b === x) count++;
          return {
            dest: x,
            figures: { weight: x.weight, overloaded: (x.flags & DEST_F_OVERLOAD) !== 0, buckets: count },
          };
        }),
      };
    },
    schedule(svc: Service, flow: Flow): Dest | null {
      const st = (svc.schedData as ShState | undefined) ?? reassign(svc);
      const port = (svc.flags & SVC_F_SCHED_SH_PORT) !== 0 ? hashPort(flow.proto, flow.sport) : 0;
      const addr = flow.saddr;
      const ihash = shHashKey(addr, port, 0);
      let d = st.buckets[ihash];
      if (d === null) return null;
      if (!unavailable(d)) return d;
      if ((svc.flags & SVC_F_SCHED_SH_FALLBACK) === 0) return null;
      for (let offset = 0; offset < SH_TAB_SIZE; offset++) {
        const roffset = (offset + ihash) % SH_TAB_SIZE;
        d = st.buckets[shHashKey(addr, port, roffset)];
        if (d === null) return null;
        if (!unavailable(d)) return d;
      }
      return null;
    },
  };
}
