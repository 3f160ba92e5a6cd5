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
  /** NAT64 (xmit/fullnat.ts): a fragment of a NAT64 connection, either way; it is not translated (no reassembly). */
  "nat64_fragment",
  /** NAT64: an ICMP error about a NAT64 connection that RFC 7915 §4.2/§5.2 has no counterpart for. */
  "nat64_icmp_untranslatable",
  /** NAT64: an ICMP error about a NAT64 connection whose own checksum is wrong (not made valid by translating it). */
  "nat64_icmp_csum",
  /** drop_packet (defense.ts): a packet that would have created a connection, dropped while the defence is on. */
  "defense_drop_packet",
  /**
   * FULLNAT with the PROXY protocol (xmit/fullnat.ts): client data past the first byte before the
   * first data was seen; the client sends it again.
   */
  "pp_early",
  /** acl.ts: the source is on the service's deny list (DPVS's blacklist). */
  "acl_deny",
  /** acl.ts: the service has an allow list (DPVS's whitelist) and the source is not on it. */
  "acl_not_allowed",
  /** conn-limit.ts: the source prefix's bucket of new connections is empty. */
  "conn_rate_limited",
  /**
   * synproxy.ts: a segment of a SYN-proxy connection whose real server has not answered yet that
   * carries nothing to keep (a client's pure ACK, a real server's segment other than its SYN-ACK).
   */
  "synproxy_waiting",
  /** synproxy.ts: a client segment that could not be held for the real server (per connection bound, pool, size). */
  "synproxy_hold_full",
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
  /**
   * SYN proxy (synproxy.ts): SYN-ACKs with a cookie sent, ACKs whose cookie was valid (each made a
   * connection) or not (each answered with a reset), connections whose real server completed the
   * handshake, and SYNs sent to real servers again.
   */
  synproxySynAcks = 0;
  synproxyAcksValid = 0;
  synproxyAcksInvalid = 0;
  synproxyConnsOpened = 0;
  synproxySynRetries = 0;
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
