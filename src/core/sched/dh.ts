// Destination hashing, net/netfilter/ipvs/ip_vs_dh.c.
// 256 buckets (IP_VS_DH_TAB_BITS = 8) dealt to the dests one each, round and round in list order,
// weights ignored; the bucket is hash_32(daddr, 8). A bucket whose dest is removed, quiesced or
// overloaded yields no destination (no fallback). Like the kernel, only add/del rebuild the table
// (there is no upd_dest hook).
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD, type Dest } from "../dest.js";
import type { Flow } from "../packet/flow.js";
import type { Service } from "../service.js";
import type { Scheduler } from "./types.js";
import { hash32 } from "./util.js";

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
