// The guard: an nftables table that keeps the director's kernel away from the traffic tsvs owns.
//
// An AF_PACKET socket bound with ETH_P_ALL sees a frame in __netif_receive_skb_core's ptype_all
// pass, before the netdev ingress hook (nf_hook_ingress) runs; a `drop` there stops the frame for
// the kernel's IP and ARP stacks only, after tsvs has its copy. So every frame the engine consumes
// is dropped at ingress, and the kernel neither answers it (RST, port unreachable, ARP) nor
// forwards it (ip_forward=1 would route NAT replies a second time, un-rewritten).
//
//   table netdev tsvs
//     set own4   VIPs of non-fwmark services, and the LIPs
//     set local4 the daemon interfaces' own addresses (DIPs: the kernel's)
//     set nat4   RIP . proto . rport of every NAT/FULLNAT destination
//     chain in-<ifname>  (hook ingress, one per interface, priority -500)
//       ip daddr @own4 drop                              requests to VIPs/LIPs, replies to LIPs
//       arp daddr ip @own4 drop                          ARP about VIPs/LIPs (tsvs answers)
//       ip saddr . ip protocol . th sport @nat4 ip daddr != @local4 drop
//                                                        NAT replies RIP:rport → CIP (not the
//                                                        director's own traffic to a real server)
//       ip saddr . ip protocol @nat4any ip daddr != @local4 drop
//                                                        the same for port-0 destinations (PCC,
//                                                        fwmark): replies from any port
//     and the same for IPv6, with own6, local6 (link-local addresses included), nat6, nat6any:
//       ip6 daddr @own6 drop                             requests to IPv6 VIPs, echo to them
//       icmpv6 type nd-neighbor-solicit @th,64,128 @nd6 drop
//                                                        NS whose target is a VIP (tsvs answers):
//                                                        nd6 holds own6 as 128-bit integers, since
//                                                        nft compares a raw payload (the target,
//                                                        after the ICMPv6 header's 8 bytes) with
//                                                        integers only
//       ip6 saddr . meta l4proto . th sport @nat6 ip6 daddr != @local6 drop
//       ip6 saddr . meta l4proto @nat6any ip6 daddr != @local6 drop
//                                                        NAT replies (meta l4proto: after any
//                                                        extension header)
//     Everything else IPv6 (the host's own addresses, its NDP, router advertisements) stays with
//     the kernel.
//
// Updates replace the whole table in one `nft -f` transaction (create, delete, recreate), so
// there is no instant without a guard and a table left by a crashed daemon goes away on start.

import { execFileSync } from "node:child_process";
import type { Guard, GuardDest6 } from "../control/api.js";
import { formatIPv4, parseIPv6 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";

export const NFT_TABLE = "tsvs";
export const NFT_FAMILY = "netdev";

export class NftMissingError extends Error {}

/** Throws NftMissingError with what to do when `nft` cannot run. */
export function checkNft(): string {
  try {
    return execFileSync("nft", ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  } catch (e) {
    const err = e as { code?: string; message: string };
    throw new NftMissingError(
      err.code === "ENOENT"
        ? "nft (nftables) is not installed; tsvs needs it to keep the kernel out of the traffic it owns " +
            "(apt-get install nftables)"
        : `nft does not run: ${err.message}`,
    );
  }
}

const PROTO_NAMES: Record<number, string> = { 6: "tcp", 17: "udp", 132: "sctp" };

function elements(items: string[]): string {
  return items.length === 0 ? "" : ` elements = { ${items.join(", ")} };`;
}

/** The IPv6 side of the guard (owned6, nat6) is the control API's Guard's. */
export type Guard6 = Pick<Guard, "owned6" | "nat6">;
export type { GuardDest6 };

/** A guarded destination's `addr . proto . port` and `addr . proto` (port 0) elements. */
function natElements(
  dests: readonly { proto: number; port: number }[],
  addr: (i: number) => string,
): [string[], string[]] {
  const nat: string[] = [];
  const natAny: string[] = [];
  dests.forEach((d, i) => {
    const protos = d.proto === 0 ? [6, 17] : [d.proto];
    for (const p of protos) {
      const name = PROTO_NAMES[p];
      if (name === undefined) continue;
      // Port 0 (PCC and fwmark destinations): the connection keeps the client's port, so a
      // reply may come from any port of the RIP.
      if (d.port === 0) natAny.push(`${addr(i)} . ${name}`);
      else nat.push(`${addr(i)} . ${name} . ${d.port}`);
    }
  });
  return [nat, [...new Set(natAny)]];
}

/** An IPv6 address as the 128-bit integer nft compares a raw payload with. */
function ipv6Integer(a: string): string {
  const b = parseIPv6(a);
  if (b === null) throw new TsvsError("TSVS_ERR_NFT", `bad IPv6 address ${JSON.stringify(a)}`);
  return `0x${Buffer.from(b).toString("hex")}`;
}

/** The nft script that replaces the table (pure: tested by reading it). */
export function guardScript(
  ifnames: readonly string[],
  locals: readonly number[],
  guard: Guard & Guard6,
  locals6: readonly string[] = [],
): string {
  const own = guard.owned.map(formatIPv4);
  const local = [...new Set(locals)].sort((a, b) => a - b).map(formatIPv4);
  const [nat, natAny] = natElements(guard.nat, (i) => formatIPv4(guard.nat[i].addr));
  const own6 = [...new Set(guard.owned6 ?? [])];
  const nat6Dests = guard.nat6 ?? [];
  const [nat6, nat6Any] = natElements(nat6Dests, (i) => nat6Dests[i].addr6);
  const t = `${NFT_FAMILY} ${NFT_TABLE}`;
  const lines = [
    `table ${t} {}`,
    `delete table ${t}`,
    `table ${t} {`,
    `  set own4 { type ipv4_addr;${elements(own)} }`,
    `  set local4 { type ipv4_addr;${elements(local)} }`,
    `  set nat4 { type ipv4_addr . inet_proto . inet_service;${elements(nat)} }`,
    `  set nat4any { type ipv4_addr . inet_proto;${elements(natAny)} }`,
    `  set own6 { type ipv6_addr;${elements(own6)} }`,
    `  set nd6 { typeof @th,64,128;${elements(own6.map(ipv6Integer))} }`,
    `  set local6 { type ipv6_addr;${elements([...new Set(locals6)])} }`,
    `  set nat6 { type ipv6_addr . inet_proto . inet_service;${elements(nat6)} }`,
    `  set nat6any { type ipv6_addr . inet_proto;${elements(nat6Any)} }`,
  ];
  for (const ifname of ifnames) {
    lines.push(
      `  chain ${chainName(ifname)} {`,
      `    type filter hook ingress device ${JSON.stringify(ifname)} priority -500; policy accept;`,
      "    ip daddr @own4 drop",
      "    arp daddr ip @own4 drop",
      "    ip saddr . ip protocol . th sport @nat4 ip daddr != @local4 drop",
      "    ip saddr . ip protocol @nat4any ip daddr != @local4 drop",
      "    ip6 daddr @own6 drop",
      "    icmpv6 type nd-neighbor-solicit @th,64,128 @nd6 drop",
      "    ip6 saddr . meta l4proto . th sport @nat6 ip6 daddr != @local6 drop",
      "    ip6 saddr . meta l4proto @nat6any ip6 daddr != @local6 drop",
      "  }",
    );
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

function chainName(ifname: string): string {
  return `in_${ifname.replace(/[^A-Za-z0-9_]/g, "_")}`;
}

function nft(args: string[], input?: string): void {
  try {
    execFileSync("nft", args, {
      input,
      encoding: "utf8",
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      timeout: 10_000,
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new TsvsError("TSVS_ERR_NFT", `nft ${args.join(" ")}: ${(err.stderr ?? "").trim() || err.message}`);
  }
}

/** Installs or replaces the guard table atomically. */
export function applyGuard(
  ifnames: readonly string[],
  locals: readonly number[],
  guard: Guard & Guard6,
  locals6: readonly string[] = [],
): void {
  nft(["-f", "-"], guardScript(ifnames, locals, guard, locals6));
}

/** Removes the guard table; silent when it is not there. */
export function removeGuard(): void {
  try {
    nft(["-f", "-"], `table ${NFT_FAMILY} ${NFT_TABLE} {}\ndelete table ${NFT_FAMILY} ${NFT_TABLE}\n`);
  } catch {
    // nothing to remove (or nft gone): nothing to do
  }
}

/** Is the guard table present in this namespace? */
export function guardPresent(): boolean {
  try {
    nft(["list", "table", NFT_FAMILY, NFT_TABLE]);
    return true;
  } catch {
    return false;
  }
}

function sameGuard(a: Guard & Guard6, b: Guard & Guard6): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The guard as the daemon keeps it: the current table's inputs (interfaces, their addresses, what
 * the workers own), replaced whole whenever one of them changes.
 */
export class NftGuard {
  /** Table replacements so far. */
  updates = 0;

  constructor(
    private ifnames: readonly string[],
    private locals: readonly number[],
    private current: Guard & Guard6,
    /** The interfaces' IPv6 addresses (HostView.locals6). */
    private locals6: readonly string[] = [],
  ) {}

  get guard(): Guard & Guard6 {
    return this.current;
  }

  /** Installs the table (replacing one a crashed daemon left). Throws with nft's message. */
  install(): void {
    applyGuard(this.ifnames, this.locals, this.current, this.locals6);
    this.updates++;
  }

  /** The workers' guard changed: null when the table follows (or had nothing to do), else why not. */
  update(g: Guard & Guard6): string | null {
    if (sameGuard(this.current, g)) return null;
    try {
      applyGuard(this.ifnames, this.locals, g, this.locals6);
    } catch (e) {
      return (e as Error).message;
    }
    this.current = g;
    this.updates++;
    return null;
  }

  /** The served interfaces or their addresses changed. Throws with nft's message (nothing changed then). */
  follow(
    ifnames: readonly string[],
    locals: readonly number[],
    locals6: readonly string[] = this.locals6,
  ): void {
    applyGuard(ifnames, locals, this.current, locals6);
    this.ifnames = ifnames;
    this.locals = locals;
    this.locals6 = locals6;
    this.updates++;
  }

  remove(): void {
    removeGuard();
  }
}
