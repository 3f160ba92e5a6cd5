// The engine's counters: frames in and out, local replies, connections, GSO, and drops by reason
// (the data path never throws: every frame it refuses is counted here, see STYLE.md).

import { PARSE_RESULT_NAMES } from "./packet/parse.js";

/** Why frames were dropped, besides the parser's own reasons. */
export const DROP_REASONS = [
  "no_route",
  "neigh_failed",
  "ttl_exceeded",
  "frag_needed",
  "too_big",
  "no_dest",
  "dest_unavailable",
  "table_full",
  "not_syn",
  "fragment",
  "icmp_unrelated",
  "closed_port",
  "arp_ignored",
  "unsupported",
  /** An NS or NA that RFC 4861 §7.1 makes a receiver ignore (ndp.ts NDP_ERR_*). */
  "ndp_invalid",
] as const;
export type DropReason = (typeof DROP_REASONS)[number];
/** A drop reason's index in EngineCounters.drops. */
export const R: Record<DropReason, number> = Object.fromEntries(DROP_REASONS.map((n, i) => [n, i])) as Record<
  DropReason,
  number
>;

export class EngineCounters {
  rxFrames = 0;
  txFrames = 0;
  passed = 0;
  arpReplies = 0;
  arpRequests = 0;
  echoReplies = 0;
  icmpErrorsSent = 0;
  /** IPv6: NAs answering an NS for an owned address, NSs sent to resolve or probe a neighbour, unsolicited NAs. */
  ndpAdverts = 0;
  ndpSolicits = 0;
  unsolicitedNas = 0;
  connsCreated = 0;
  connsExpired = 0;
  connsDropped = 0;
  /** GSO/GRO aggregates received (offload word with a gso_type). */
  gsoIn = 0;
  /** Aggregates sent whole with a virtio_net_hdr (the kernel segments them). */
  gsoOut = 0;
  /** Aggregates cut in software (TUN, FULLNAT with TOA, no partial checksum), and the segments made. */
  gsoSegmented = 0;
  gsoSegments = 0;
  /** Plain frames received CHECKSUM_PARTIAL whose TCP/UDP checksum the engine finished. */
  csumCompleted = 0;
  readonly parseErrors = new Float64Array(PARSE_RESULT_NAMES.length);
  readonly drops = new Float64Array(DROP_REASONS.length);

  /** Non-zero drop counters by name (parser reasons prefixed "parse_"). */
  dropTable(): Record<string, number> {
    const out: Record<string, number> = {};
    PARSE_RESULT_NAMES.forEach((n, i) => {
      if (this.parseErrors[i] > 0) out[`parse_${n}`] = this.parseErrors[i];
    });
    DROP_REASONS.forEach((n, i) => {
      if (this.drops[i] > 0) out[n] = this.drops[i];
    });
    return out;
  }
}
