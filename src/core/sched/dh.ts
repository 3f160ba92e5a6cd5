// Destination hashing, net/netfilter/ipvs/ip_vs_dh.c.
// 256 buckets (IP_VS_DH_TAB_BITS = 8) dealt to the dests one each, round and round in list order,
// weights ignored; the bucket is hash_32(daddr, 8). A bucket whose dest is removed, quiesced or
// overloaded yields no destination (no fallback). Like the kernel, only add/del rebuild the table
// (there is no upd_dest hook).
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD, type Dest } from "../dest.js";
import type { Flow } from "../packet/flow.js";
import type { Service } from "../service.js";
import type { SchedDetail, Scheduler } from "./types.js";
import { flowDaddrText, hash32 } from "./util.js";

export const DH_TAB_BITS = 8;
export const DH_TAB_SIZE = 1 << DH_TAB_BITS;

interface DhState {
  buckets: (Dest | null)[];
}

function reassign(svc: Service): DhState {
  let st = svc.schedData as DhState | undefined;
  if (st === undefined) {
    st = { buckets: new Array<Dest | null>(DH_TAB_SIZE).fill(null) };
    svc.schedData = st;
  }
  const ds = svc.dests;
  for (let i = 0; i < DH_TAB_SIZE; i++) st.buckets[i] = ds.length === 0 ? null : ds[i % ds.length];
  return st;
}

export function dhBucket(daddr: number): number {
  return hash32(daddr, DH_TAB_BITS);
}

export function createDh(): Scheduler {
  return {
    name: "dh",
    initService(svc: Service): void {
      svc.schedData = undefined;
      reassign(svc);
    },
    doneService(svc: Service): void {
      svc.schedData = undefined;
    },
    addDest(svc: Service): void {
      reassign(svc);
    },
    delDest(svc: Service): void {
      reassign(svc);
    },
    explain(svc: Service, flow: Flow): SchedDetail {
      const st = svc.schedData as DhState | undefined;
      const bucket = dhBucket(flow.daddr);
      const d = st === undefined ? null : st.buckets[bucket];
      return {
        rule: "destination hashing: bucket hash_32(packet's destination address, 8) of 256, dealt to the destinations in list order; an unavailable bucket destination means no destination",
        figures: {
          hashed: flowDaddrText(flow),
          bucket,
          buckets: DH_TAB_SIZE,
          bucketDest: d,
          bucketUsable: d !== null && (d.flags & DEST_F_OVERLOAD) === 0 && d.weight > 0,
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
      const st = (svc.schedData as DhState | undefined) ?? reassign(svc);
      const d = st.buckets[dhBucket(flow.daddr)];
      if (
        d === null ||
        (d.flags & DEST_F_AVAILABLE) === 0 ||
        d.weight <= 0 ||
        (d.flags & DEST_F_OVERLOAD) !== 0
      ) {
        return null;
      }
      return d;
    },
  };
}
