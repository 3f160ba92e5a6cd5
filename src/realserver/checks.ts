import { TsvsError } from "../core/errors.js";
import type { DecapCounters } from "./decap.js";
// Pure decisions of `tsvs realserver` (no I/O: realserver.ts gathers the facts and calls these):
//
//   - which interface leads to the director, on a real server with one or several interfaces;
//   - the doctor's verdict on rp_filter per interface, and on the decapsulator's counters.
//
// Several interfaces (issue 10): a real server with one link toward the director and one toward the
// clients (its default route) receives the director's packets on the first and answers on the
// second. What the first needs:
//   - DR: packets from client addresses arrive there while those addresses are routed via the
//     other link, so strict reverse-path filtering (rp_filter 1, fib_validate_source in
//     net/ipv4/fib_frontend.c) drops every one of them; loose (2) or none (0) is required.
//   - TUN: the outer datagram (DIP → RIP) arrives there; the LVS documentation asks rp_filter 0 on
//     it, on `all` and on the tunnel device (where the inner datagram from the client arrives).
// arp_ignore/arp_announce matter on every interface: any of them may be asked for the VIP, and the
// replies from the VIP leave by the default route.
//
// Whose state a namespace's state directory holds (stateOwner): the directory is named after the
// namespace's inode, which the kernel hands to a new namespace once the old one is gone, so a
// namespace deleted without a teardown leaves state that a later one would take for its own.

export type Level = "ok" | "warn" | "FAIL" | "info";

export interface Finding {
  level: Level;
  what: string;
  detail: string;
}

export type RealserverMethod = "dr" | "tun";

/** The director's tunnel type for a TUN real server (ipvsadm --tun-type). */
export type TunnelType = "ipip" | "gue" | "gre";
/** Who decapsulates: the kernel's tunnel devices, the user-space decapsulator, or whichever exists. */
export type DecapMode = "auto" | "kernel" | "user";

/** What this kernel offers for decapsulation (probed by realserver.ts). */
export interface KernelTunnels {
  /** The ipip module: the fallback device tunl0 exists. */
  ipip: boolean;
  /** ip_gre: the fallback device gre0 exists. */
  gre: boolean;
  /** The fou module (its generic-netlink family answers `ip fou show`). */
  fou: boolean;
}

/** The kernel device that receives a type's tunnelled datagrams (GUE: fou hands them to IPIP). */
export const KERNEL_DEVICE: Record<TunnelType, string> = { ipip: "tunl0", gue: "tunl0", gre: "gre0" };

export interface DecapChoice {
  how: "kernel" | "user";
  detail: string;
}

/**
 * Kernel or user space for a tunnel type: the kernel's devices where it has every module the type
 * needs (IPIP: ipip; GRE: ip_gre; GUE: fou and ipip, fou handing the inner datagram to the IPIP
 * receive path), else the user-space decapsulator. "kernel" without the modules is an error; "user"
 * is always possible (where the kernel has the module, it still answers each tunnelled datagram
 * with an ICMP error while its device is down: tunnel4_rcv / gre_rcv).
 */
export function chooseDecap(type: TunnelType, mode: DecapMode, k: KernelTunnels): DecapChoice {
  const has = type === "ipip" ? k.ipip : type === "gre" ? k.gre : k.fou && k.ipip;
  const need =
    type === "ipip"
      ? "the ipip module (tunl0)"
      : type === "gre"
        ? "the ip_gre module (gre0)"
        : "the fou and ipip modules";
  if (mode === "user")
    return {
      how: "user",
      detail: `user-space decapsulator (asked with --decap user)${has ? `; the kernel has ${need}` : ""}`,
    };
  if (has) return { how: "kernel", detail: `the kernel has ${need}` };
  if (mode === "kernel")
    throw new TsvsError(
      "TSVS_ERR_HOST",
      `--decap kernel: this kernel lacks ${need} for ${type.toUpperCase()}`,
    );
  return { how: "user", detail: `this kernel lacks ${need}: user-space decapsulator` };
}

/** A route lookup (`ip -j route get ADDR`): the device toward addr, and the source it would use. */
export interface RouteTo {
  addr: string;
  /** null: unreachable. */
  dev: string | null;
  src: string | null;
  /** The route is of type local (addr is one of this host's own addresses). */
  local: boolean;
}

export type IfaceHow = "director" | "iface" | "tunnel" | "only" | "ambiguous";

export interface DirectorIfaceInput {
  /** Routes toward the addresses given with --director (or saved by setup). */
  director: RouteTo[];
  /** --iface. */
  iface: string | null;
  /** Routes toward the tunnel sources the running decapsulator has seen. */
  tunnel: RouteTo[];
  /** The interfaces with an address of the VIP's family, lo and the decapsulator's tun device excepted. */
  ifaces: string[];
  /** The VIP's family, for the wording (default 4). */
  family?: 4 | 6;
}

export interface DirectorIfaceChoice {
  /** The director-facing interface(s): one, or every candidate when it cannot be known. */
  ifaces: string[];
  how: IfaceHow;
  /** Where the choice comes from, in words. */
  detail: string;
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)];
}

function routeList(rs: RouteTo[]): string {
  return rs.map((r) => `${r.addr} via ${r.dev}`).join(", ");
}

/**
 * The interface that leads to the director, in this order: the route to --director; --iface; the
 * route to the tunnel sources seen (TUN traffic); the only interface; else every interface
 * ("ambiguous": settings go on each, and doctor says to give --director). Throws (with the reason)
 * when --director is unreachable or local, or there is no interface at all.
 */
export function chooseDirectorIface(inp: DirectorIfaceInput): DirectorIfaceChoice {
  if (inp.director.length > 0) {
    for (const r of inp.director) {
      if (r.local) throw new TsvsError("TSVS_ERR_HOST", `director ${r.addr} is an address of this host`);
      if (r.dev === null)
        throw new TsvsError("TSVS_ERR_HOST", `director ${r.addr} is not reachable from this host (no route)`);
      // A prefix on lo covers it (IPv6 routes a VIP's prefix into lo): its packets would loop.
      if (r.dev === "lo")
        throw new TsvsError(
          "TSVS_ERR_HOST",
          `director ${r.addr} is routed into lo (a prefix on lo covers it)`,
        );
    }
    const devs = uniq(inp.director.map((r) => r.dev as string));
    return { ifaces: devs, how: "director", detail: `route to the director: ${routeList(inp.director)}` };
  }
  if (inp.iface !== null) return { ifaces: [inp.iface], how: "iface", detail: "given with --iface" };
  const seen = inp.tunnel.filter((r) => r.dev !== null && !r.local);
  if (seen.length > 0) {
    const devs = uniq(seen.map((r) => r.dev as string));
    return { ifaces: devs, how: "tunnel", detail: `route to the tunnel sources seen: ${routeList(seen)}` };
  }
  const fam = inp.family === 6 ? "IPv6" : "IPv4";
  if (inp.ifaces.length === 0)
    throw new TsvsError(
      "TSVS_ERR_HOST",
      `no interface with an ${fam} address besides lo${inp.family === 6 ? " (link-local aside)" : ""}`,
    );
  if (inp.ifaces.length === 1) return { ifaces: inp.ifaces, how: "only", detail: "the only interface" };
  return {
    ifaces: [...inp.ifaces],
    how: "ambiguous",
    detail: `${inp.ifaces.join(", ")} all carry ${fam} and nothing says which leads to the director: each is treated as if it did (give --director DIP to check only its interface)`,
  };
}

/** What each rp_filter value does (net/ipv4/fib_frontend.c, fib_validate_source). */
export function rpFilterMeaning(v: number): string {
  switch (v) {
    case 0:
      return "no source validation";
    case 1:
      return "strict: drop packets whose source is not routed back through the incoming interface";
    case 2:
      return "loose: drop packets whose source is not routable at all";
    default:
      return "unknown value";
  }
}

export interface RpFilterInput {
  method: RealserverMethod;
  ifname: string;
  all: number;
  dev: number;
  /** The interface leads (or may lead) to the director. */
  director: boolean;
  /** The default route's device: where client addresses are routed; null without a default route. */
  clientDev: string | null;
  /** The kernel's count of packets dropped by rp_filter in this namespace (IPReversePathFilter). */
  rpDrops: number;
}

/**
 * rp_filter on one real-server interface (effective value max(all, dev): IN_DEV_RPFILTER in
 * include/linux/inetdevice.h). Strict filtering breaks:
 *   - TUN on the director-facing interface (the LVS docs require 0 there);
 *   - DR on the director-facing interface when clients are routed through another interface
 *     (their packets come in through the director's link).
 * On any other interface that clients are not routed through, strict filtering is a warning, and a
 * failure once the kernel has actually dropped packets by it.
 */
export function rpFilterFinding(r: RpFilterInput): Finding {
  const value = Math.max(r.all, r.dev);
  const what = `rp_filter all=${r.all} ${r.ifname}=${r.dev} → ${value}`;
  const meaning = rpFilterMeaning(value);
  if (value !== 1) return { level: "ok", what, detail: meaning };
  const clientsElsewhere = r.clientDev !== null && r.clientDev !== r.ifname;
  if (r.director && r.method === "tun") {
    return {
      level: "FAIL",
      what,
      detail: `${meaning}; TUN wants 0 on the interface the tunnelled packets arrive on (${r.ifname}), on all and on the tunnel device: tsvs realserver setup --method tun sets it`,
    };
  }
  if (!clientsElsewhere)
    return { level: "ok", what, detail: `${meaning}; clients are routed through ${r.ifname}` };
  const why = `client addresses are routed via ${r.clientDev}, so packets the director forwards from them into ${r.ifname} are dropped`;
  const drops =
    r.rpDrops > 0 ? ` (the kernel has dropped ${r.rpDrops} packets by rp_filter in this namespace)` : "";
  if (r.director || r.rpDrops > 0) {
    return {
      level: "FAIL",
      what,
      detail: `${meaning}; ${why}${drops}: use 2 (loose) on ${r.ifname}, as tsvs realserver setup does`,
    };
  }
  return {
    level: "warn",
    what,
    detail: `${meaning}; if the director is reached through ${r.ifname}, ${why}`,
  };
}

/** What the decapsulator writes: its counters and what it accepts (decap.ts, DecapStats). */
export interface DecapStatsView extends DecapCounters {
  /** "host": every local address, followed; "fixed": only `addresses` (--local). */
  accept: "host" | "fixed";
  addresses: string[];
  /** Outer sources (tunnel ends) seen, at most a few. */
  sources: string[];
  /** The last outer destination refused as not local. */
  lastNotLocal: string | null;
  /** The type it decapsulates and its GUE port (absent in stats of older versions: ipip). */
  type?: TunnelType;
  port?: number;
  /** The inner family (the VIP's; absent in stats of older versions: 4). */
  family?: 4 | 6;
  /** The sockets it reads, in words ("IPv6 next header 41"). */
  receivers?: string[];
}

export interface DecapInput {
  /** The tunnel type the decapsulator is checked for (default ipip). */
  type?: TunnelType;
  /** GUE: the UDP port it should listen on. */
  port?: number;
  alive: boolean;
  pid: number | null;
  tun: string;
  hasTun: boolean;
  stats: DecapStatsView | null;
  /** Local addresses toward the director (route src), when the director is known. */
  directorSrc: string[];
  /** The decapsulator's name in the verdict (default: the type, "IPIP"). */
  label?: string;
  /** The setup command that starts the right one (default: for an IPv4 VIP and this type). */
  setup?: string;
}

/**
 * The decapsulator's verdict: it must run, its tun device must exist, a fixed address list must
 * hold the address the director tunnels to, and every tunnelled packet received must have been
 * delivered (its counters: anything refused as not local, or not written to the tun device, means
 * the server silently loses the traffic). Malformed datagrams are only a warning: they say nothing
 * about this host's configuration.
 */
export function decapFindings(d: DecapInput): Finding[] {
  const s = d.stats;
  const counts =
    s === null
      ? ""
      : `; received ${s.received}, delivered ${s.delivered}, bad ${s.badOuter + s.badInner}, not local ${s.notLocal}, write errors ${s.writeErrors}`;
  const type = d.type ?? "ipip";
  const port = type === "gue" ? ` (UDP port ${d.port ?? 0})` : "";
  const label = d.label ?? type.toUpperCase();
  const what = `${label} decapsulator ${d.alive ? `pid ${d.pid}` : "not running"}${port}, ${d.tun} ${d.hasTun ? "present" : "absent"}`;
  const setup =
    d.setup ??
    `tsvs realserver setup --method tun${type === "ipip" ? "" : ` --tun-type ${type}`}${type === "gue" ? ` --tun-port ${d.port ?? "PORT"}` : ""}`;
  if (!d.alive || !d.hasTun) {
    return [{ level: "FAIL", what, detail: `tunnelled packets are not decapsulated: run ${setup}` }];
  }
  const runs = s?.type ?? "ipip";
  if (s !== null && (runs !== type || (type === "gue" && (s.port ?? 0) !== (d.port ?? 0)))) {
    return [
      {
        level: "FAIL",
        what: `${type.toUpperCase()} decapsulator${port}: the one running (pid ${d.pid}) takes ${runs.toUpperCase()}${runs === "gue" ? ` on UDP port ${s.port ?? 0}` : ""}`,
        detail: `tunnelled ${type.toUpperCase()} datagrams are not decapsulated: run ${setup}`,
      },
    ];
  }
  const accepts =
    s === null
      ? ""
      : (s.accept === "host" ? "; accepts every local address" : `; accepts ${s.addresses.join(", ")} only`) +
        ((s.receivers ?? []).length > 0 ? `; reads ${(s.receivers ?? []).join(", ")}` : "");
  const out: Finding[] = [
    { level: "ok", what, detail: `user-space decapsulation into ${d.tun}${counts}${accepts}` },
  ];
  if (s === null) return out;
  if (s.accept === "fixed") {
    const missing = d.directorSrc.filter((a) => !s.addresses.includes(a));
    if (missing.length > 0) {
      out.push({
        level: "FAIL",
        what: `decapsulator does not accept ${missing.join(", ")}`,
        detail: `the director reaches this host at ${missing.join(", ")}, but only ${s.addresses.join(", ")} are accepted: tunnelled packets would be dropped (setup without --tunnel-local accepts every local address)`,
      });
    }
  }
  const lost = s.notLocal + s.writeErrors;
  // received = delivered + badOuter + badInner + notLocal + writeErrors
  if (lost > 0) {
    const why: string[] = [];
    if (s.notLocal > 0) {
      why.push(
        `${s.notLocal} addressed to ${s.lastNotLocal ?? "an address"} that is not ${s.accept === "host" ? "a local address" : `among ${s.addresses.join(", ")}`}`,
      );
    }
    if (s.writeErrors > 0) why.push(`${s.writeErrors} could not be written to ${d.tun}`);
    out.push({
      level: "FAIL",
      what: `tunnelled packets received but not delivered: ${s.received - s.delivered} of ${s.received}`,
      detail: `${why.join("; ")}${s.sources.length > 0 ? `; tunnel sources ${s.sources.join(", ")}` : ""}`,
    });
  }
  if (s.badOuter + s.badInner > 0) {
    out.push({
      level: "warn",
      what: `malformed tunnelled datagrams: ${s.badOuter} outer, ${s.badInner} inner`,
      detail:
        "not of the family the tunnel says, header length or total length inconsistent, or a tunnel header the kernel would refuse too (version, flags, checksum): dropped",
    });
  }
  return out;
}

// ---- whose state ----

/**
 * A network namespace as no other namespace will be until reboot: its netns cookie
 * (SO_NETNS_COOKIE, a 64-bit counter the kernel never hands out twice; decimal, as JSON has no
 * u64) and the boot it belongs to (/proc/sys/kernel/random/boot_id), which tells a cookie of an
 * earlier boot from a new one should /run outlive a reboot.
 */
export interface NetnsIdentity {
  cookie: string;
  bootId: string;
}

/**
 * What a state directory is to the namespace reading it:
 *   - none: nothing there; start fresh;
 *   - ours: written in this namespace (same identity);
 *   - unverified: the kernel gives no cookie (before 5.14): trusted as it always was;
 *   - legacy: written by a tsvs that kept no identity, and what it names is found here: taken, and
 *     the identity added;
 *   - stale: another namespace's (a deleted one that had this inode): as good as absent, and
 *     nothing it names (a pid, a VIP, saved sysctls) is acted on.
 */
export type StateOwner = "none" | "ours" | "unverified" | "legacy" | "stale";

export interface StateOwnerInput {
  /** Any file in the directory (state, decapsulator pid, log or counters). */
  hasFiles: boolean;
  /** The identity written beside the state; null when missing or unreadable. */
  stored: NetnsIdentity | null;
  /** This namespace's; null where the kernel has no SO_NETNS_COOKIE. */
  current: NetnsIdentity | null;
  /**
   * For state without an identity: of every state file, the decapsulator it names runs in this
   * namespace as the one setup starts, or its VIP is on lo here. A namespace that merely inherited
   * the inode has neither (a dead namespace's decapsulator died with it, and a fresh namespace has
   * no address on lo but 127.0.0.1).
   */
  legacyHere: boolean;
}

export function stateOwner(i: StateOwnerInput): StateOwner {
  if (!i.hasFiles) return "none";
  // No cookie to compare: what every tsvs did before the identity existed.
  if (i.current === null) return "unverified";
  // Written by an older tsvs: accepted when its own traces are here, so that an upgrade between
  // setup and teardown still undoes what setup did; otherwise stale, which at worst leaves a
  // setting for the operator to undo, where trusting it could undo settings of another namespace.
  if (i.stored === null) return i.legacyHere ? "legacy" : "stale";
  return i.stored.cookie === i.current.cookie && i.stored.bootId === i.current.bootId ? "ours" : "stale";
}
