import { formatIPv6, ipv6ApplyPrefix, parseIPv6 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import type { DecapChoice, DecapMode, Finding, RealserverMethod, TunnelType } from "./checks.js";
// Pure decisions of `tsvs realserver` for an IPv6 VIP (issue 14; realserver6.ts gathers the facts).
//
// What NDP does with a VIP on lo, as net/ipv6 does it (and as the e2e test sees it):
//   - lo joins no solicited-node group (addrconf_join_solict returns for IFF_LOOPBACK), so a
//     multicast neighbour solicitation for the VIP, sent to ff02::1:ffXX:XXXX, is not even taken
//     in by the interface toward the director: it has not joined that group;
//   - a unicast solicitation (a neighbour-unreachability probe, or one sent to the VIP itself with
//     the server's MAC) reaches ndisc_recv_ns, which looks the target up on the incoming interface
//     only (ipv6_get_ifaddr(net, target, dev, strict = 1)) and stays silent: no answer unless the
//     target is an anycast address of that interface or a proxy entry (ip -6 neigh add proxy) with
//     forwarding and proxy_ndp on. So IPv6 needs nothing like arp_ignore/arp_announce: a
//     solicitation's source is chosen among the outgoing interface's addresses (ndisc_send_ns),
//     never the VIP on lo;
//   - DAD never runs for an address on lo (addrconf_dad_begin completes at once for IFF_LOOPBACK
//     devices, whatever accept_dad; lo's own accept_dad is -1), and a probe from lo could not reach
//     the LAN anyway. The VIP is still added `nodad`, which says so in `ip addr` and holds on any
//     device. DAD matters for the VIP on a LAN interface (the mistake doctor names): there it would
//     probe the link, and with several real servers all but the first would mark it dadfailed.
// The settings that matter instead: IPv6 on (disable_ipv6 0) on lo and the director-facing
// interface, the RIP past DAD, a host rather than a router (forwarding 0), a route back to the
// clients, and for TUN a decapsulator for the director's tunnel type: next header 41 (IPv6 in IPv6 or
// IPv4), GUE (proto_ctype 41) or GRE (protocol 0x86DD) over either family.

/** An IPv6 address of an interface as `ip -j addr` shows it. */
export interface Addr6 {
  ifname: string;
  local: string;
  prefixlen: number;
  scope: string;
  tentative: boolean;
  dadfailed: boolean;
}

/**
 * The VIP as given (any inet_pton spelling) in inet_ntop's form. Refused: what is not IPv6, and
 * what cannot be a service address (unspecified, loopback, multicast, link-local, IPv4-mapped).
 */
export function parseVip6(text: string): string {
  const b = parseIPv6(text);
  if (b === null) throw new TsvsError("TSVS_ERR_USAGE", `bad IPv6 address '${text}'`);
  const why = unusableVip6(b);
  if (why !== null) throw new TsvsError("TSVS_ERR_USAGE", `VIP ${formatIPv6(b)} is ${why}`);
  return formatIPv6(b);
}

function unusableVip6(b: Uint8Array): string | null {
  if (b[0] === 0xff) return "a multicast address";
  if (b[0] === 0xfe && (b[1] & 0xc0) === 0x80)
    return "link-local (valid on one link only): use a global or ULA address";
  let zeros = 0;
  while (zeros < 16 && b[zeros] === 0) zeros++;
  if (zeros === 16) return "the unspecified address";
  if (zeros === 15 && b[15] === 1) return "the loopback address";
  if (zeros === 10 && b[10] === 0xff && b[11] === 0xff) return "IPv4-mapped: give the IPv4 address";
  return null;
}

/** Canonical text of any IPv6 address, or null (an IPv4 address, or nonsense). */
export function canonical6(text: string): string | null {
  const b = parseIPv6(text);
  return b === null ? null : formatIPv6(b);
}

function prefixOf(addr: string, prefixlen: number): string {
  const b = parseIPv6(addr) ?? new Uint8Array(16);
  ipv6ApplyPrefix(b, 0, prefixlen, b, 0);
  return `${formatIPv6(b)}/${prefixlen}`;
}

function inPrefix(addr: string, net: string, prefixlen: number): boolean {
  return prefixOf(addr, prefixlen) === prefixOf(net, prefixlen);
}

/**
 * Why a VIP on lo with a prefix shorter than /128 breaks things, or "" for /128. Unlike IPv4 (the
 * whole prefix local), IPv6 makes the address alone local but installs the prefix as a route
 * through lo (addrconf_prefix_route, unless noprefixroute): every other address of it is routed
 * into lo, where a host drops it. Overlapping a RIP prefix, the two routes have the same metric and
 * the one added first wins: after a link flap (keep_addr_on_down 0 removes the interface's
 * addresses; they are added again later) lo's comes first.
 */
export function maskProblem6(
  vip: string,
  prefixlen: number,
  ripAddrs: Addr6[],
  gateway: string | null,
): string {
  if (prefixlen >= 128) return "";
  const net = prefixOf(vip, prefixlen);
  const lines = [
    `VIP ${vip}/${prefixlen} on lo: the kernel routes the whole prefix into lo (addrconf_prefix_route: "${net} dev lo"),`,
    `so packets to any other address of ${net} go to lo, where this host drops them.`,
  ];
  const hit = ripAddrs.filter(
    (a) => inPrefix(a.local, vip, Math.min(prefixlen, a.prefixlen)) && a.scope === "global",
  );
  if (hit.length > 0) {
    lines.push(
      `Here it overlaps ${hit.map((a) => `${a.ifname} ${prefixOf(a.local, a.prefixlen)}`).join(", ")}: two routes of the same metric, the one`,
      "added first wins, and a link flap (which removes the interface's IPv6 addresses until they are added",
      "again) puts lo's first: then director↔real-server traffic (DIP, health checks, NDP) goes into lo.",
    );
  }
  if (gateway !== null && canonical6(gateway) !== null && inPrefix(gateway, vip, prefixlen)) {
    lines.push(`The default gateway ${gateway} is inside it.`);
  }
  lines.push(`Fix: ip -6 addr del ${vip}/${prefixlen} dev lo; ip -6 addr add ${vip}/128 dev lo nodad`);
  return lines.join("\n");
}

/** The VIP's findings: where it is configured, its state, and any proxy NDP entry for it. */
export interface Vip6Input {
  vip: string;
  /** Every IPv6 address of the host equal to the VIP. */
  found: Addr6[];
  ripAddrs: Addr6[];
  gateway: string | null;
  /** Interfaces with a proxy NDP entry for the VIP, each with whether it is answered there. */
  proxy: { ifname: string; active: boolean }[];
}

export function vip6Findings(v: Vip6Input): Finding[] {
  const out: Finding[] = [];
  const onLo = v.found.filter((a) => a.ifname === "lo");
  if (onLo.length === 0) {
    out.push({
      level: "FAIL",
      what: `VIP ${v.vip} not on lo`,
      detail: `packets the director forwards to the VIP are not local here and are dropped: ip -6 addr add ${v.vip}/128 dev lo nodad`,
    });
  }
  for (const a of onLo) {
    const why = maskProblem6(v.vip, a.prefixlen, v.ripAddrs, v.gateway);
    if (why !== "") {
      out.push({
        level: "FAIL",
        what: `VIP ${v.vip}/${a.prefixlen} on lo: prefix shorter than /128`,
        detail: why,
      });
    } else if (a.tentative || a.dadfailed) {
      out.push({
        level: "FAIL",
        what: `VIP ${v.vip}/128 on lo ${a.dadfailed ? "dadfailed" : "tentative"}`,
        detail:
          "the kernel does not take packets for it until it is usable: delete it and add it again with nodad",
      });
    } else {
      out.push({
        level: "ok",
        what: `VIP ${v.vip}/128 on lo`,
        detail:
          "local for the kernel, never advertised: lo joins no solicited-node group, and a neighbour solicitation is\n" +
          "answered only for addresses of the interface it arrived on (ndisc_recv_ns), so IPv6 needs nothing like arp_ignore",
      });
    }
  }
  for (const a of v.found.filter((x) => x.ifname !== "lo")) {
    out.push({
      level: "FAIL",
      what: `VIP ${v.vip}/${a.prefixlen} on ${a.ifname}`,
      detail: `${a.ifname} answers neighbour solicitations for its own addresses, and runs DAD for them (with several real servers, all but the first would mark it dadfailed): the VIP must be on lo only`,
    });
  }
  for (const p of v.proxy) {
    out.push({
      level: p.active ? "FAIL" : "warn",
      what: `proxy NDP entry for VIP ${v.vip} on ${p.ifname}`,
      detail: p.active
        ? `with forwarding and proxy_ndp on, ${p.ifname} answers neighbour solicitations for it (ndisc_recv_ns → pndisc_is_router): ip -6 neigh del proxy ${v.vip} dev ${p.ifname}`
        : `answered as soon as forwarding and proxy_ndp are both on for ${p.ifname}: ip -6 neigh del proxy ${v.vip} dev ${p.ifname}`,
    });
  }
  return out;
}

/** What the interface is to the real server, for disable_ipv6's verdict. */
export type Ipv6Role = "lo" | "director" | "other" | "tun";

/**
 * disable_ipv6 on one interface: the interface's own value is what the kernel reads (ipv6_rcv,
 * ipv6_add_addr); writing `all` sets every interface and `default`, and switching IPv6 off removes
 * the interface's IPv6 addresses (they do not come back when it is switched on again).
 */
export function disableIpv6Finding(ifname: string, value: number, role: Ipv6Role): Finding {
  const what = `disable_ipv6 ${ifname}=${value}`;
  if (value === 0) return { level: "ok", what, detail: `IPv6 on for ${ifname}` };
  const fix = `sysctl -w net.ipv6.conf.${ifname}.disable_ipv6=0`;
  switch (role) {
    case "lo":
      return {
        level: "FAIL",
        what,
        detail: `IPv6 off on lo: the VIP cannot be added there (the kernel says "IPv6 is disabled on this device"), and switching it off removed lo's addresses, the VIP with them: ${fix}, then tsvs realserver setup`,
      };
    case "tun":
      return {
        level: "FAIL",
        what,
        detail: `IPv6 off on the decapsulator's device: ipv6_rcv drops every decapsulated IPv6 datagram: ${fix}`,
      };
    case "director":
      return {
        level: "FAIL",
        what,
        detail: `IPv6 off on ${ifname}: ipv6_rcv drops every IPv6 packet arriving there, the director's with them, and switching it off removed ${ifname}'s IPv6 addresses (the RIP): ${fix}, then add them again`,
      };
    default:
      return {
        level: "warn",
        what,
        detail: `IPv6 off on ${ifname}: nothing IPv6 arrives or leaves there (${fix} if replies should)`,
      };
  }
}

/** `all` and `default`: not read by the kernel for an existing interface, but they shape what comes next. */
export function disableIpv6Defaults(all: number, dflt: number): Finding {
  const what = `disable_ipv6 all=${all} default=${dflt}`;
  if (all === 0 && dflt === 0)
    return { level: "ok", what, detail: "IPv6 on for interfaces created from now on" };
  return {
    level: "info",
    what,
    detail:
      (dflt !== 0
        ? "interfaces created from now on start with IPv6 off (tsvs switches its decapsulator's device on)"
        : "default is 0: new interfaces start with IPv6 on") +
      (all !== 0
        ? "; all=1 was written at some point, which switched every interface off then: the values above are what count"
        : ""),
  };
}

/** What each accept_dad value does (net/ipv6/addrconf.c: addrconf_dad_begin, addrconf_dad_work). */
export function acceptDadMeaning(v: number): string {
  if (v <= 0)
    return "no duplicate address detection: addresses are usable at once, a duplicate RIP on the link goes unnoticed";
  if (v === 1)
    return "duplicate address detection for each new address: tentative until it completes (1 s by default), dadfailed and never used if another host has it";
  return "as 1, and a duplicate of the MAC-based link-local address switches IPv6 off on the interface (addrconf_dad_work sets disable_ipv6)";
}

/**
 * accept_dad on one interface: DAD runs when max(all, interface) ≥ 1, and a failed link-local
 * switches IPv6 off when either is > 1, so the larger counts. 2 is a warning: a host on the link
 * with the same MAC-derived link-local takes the real server out of the IPv6 service.
 */
export function acceptDadFinding(ifname: string, all: number, dev: number): Finding {
  const value = Math.max(all, dev);
  return {
    level: value > 1 ? "warn" : "ok",
    what: `accept_dad all=${all} ${ifname}=${dev} → ${value}`,
    detail: acceptDadMeaning(value) + (value > 1 ? `; use 1 on all and ${ifname}` : ""),
  };
}

/** A RIP still in DAD or refused by it. */
export function ripStateFindings(addrs: Addr6[]): Finding[] {
  return addrs
    .filter((a) => a.ifname !== "lo" && a.scope === "global" && (a.dadfailed || a.tentative))
    .map((a) =>
      a.dadfailed
        ? {
            level: "FAIL" as const,
            what: `${a.local}/${a.prefixlen} on ${a.ifname} dadfailed`,
            detail:
              "duplicate address detection found another host using it: the kernel never uses it (no local route, no neighbour advertisements); give this server its own address",
          }
        : {
            level: "warn" as const,
            what: `${a.local}/${a.prefixlen} on ${a.ifname} tentative`,
            detail:
              "duplicate address detection still running: until it completes the kernel takes no packet for it and answers no solicitation (dad_transmits × retrans_time, 1 s by default)",
          },
    );
}

/**
 * forwarding: ip6_forward reads `all`; the interface's value makes it behave as a router there
 * (router advertisements ignored unless accept_ra is 2, neighbour advertisements with the router
 * flag, proxy entries answered). A real server is a host.
 */
export function forwardingFinding(
  all: number,
  devs: { ifname: string; value: number; acceptRa: number }[],
): Finding {
  const what = `forwarding all=${all} ${devs.map((d) => `${d.ifname}=${d.value}`).join(" ")}`.trimEnd();
  const on = devs.filter((d) => d.value !== 0);
  if (all === 0 && on.length === 0)
    return { level: "ok", what, detail: "a host: forwards nothing, takes router advertisements" };
  const ra = on.filter((d) => d.acceptRa === 1).map((d) => d.ifname);
  return {
    level: "warn",
    what,
    detail:
      "this host acts as an IPv6 router: it forwards packets not addressed to it, flags its neighbour advertisements as a router's and answers solicitations for proxy entries" +
      (ra.length > 0
        ? `; router advertisements on ${ra.join(", ")} are ignored (accept_ra 1), so no default route is learnt from them`
        : "") +
      ": a real server should be a host: sysctl -w net.ipv6.conf.all.forwarding=0",
  };
}

/** The route back to the clients: replies leave from the VIP by the default route. */
export function route6Finding(def: { dev: string | null; gateway: string | null }): Finding {
  if (def.dev === null) {
    return {
      level: "warn",
      what: "no IPv6 default route",
      detail:
        "replies from the VIP reach only clients on a connected prefix or behind a listed route: ip -6 route add default via GATEWAY (the director's side for DR, any router for TUN)",
    };
  }
  return {
    level: "ok",
    what: `IPv6 default route${def.gateway !== null ? ` via ${def.gateway}` : ""} dev ${def.dev}`,
    detail: "replies to clients leave from the VIP by it",
  };
}

/** What this kernel offers for IPv6 tunnels (probed by realserver6.ts). */
export interface KernelTunnels6 {
  /** ip6_tunnel: the fallback device ip6tnl0 exists (IPv6 in IPv6 to any local address). */
  ip6tnl: boolean;
  /** sit: the fallback device sit0 exists (IPv6 in IPv4). */
  sit: boolean;
  /** fou: its generic-netlink family answers (GUE ports over IPv4 and IPv6). */
  fou?: boolean;
  /** ip_gre: gre0 exists (GRE over IPv4, either protocol inside). */
  gre?: boolean;
  /** ip6_gre: ip6gre0 exists (GRE over IPv6). */
  ip6gre?: boolean;
}

/**
 * The kernel's devices for an IPv6 VIP, per tunnel type: ip6tnl0 takes next header 41 inside IPv6,
 * sit0 protocol 41 inside IPv4 (GUE: fou resubmits the inner datagram to those by proto_ctype 41,
 * gue_udp_recv); gre0 and ip6gre0 take GRE protocol 0x86DD over IPv4 and IPv6.
 */
export const KERNEL_DEVICES6 = ["ip6tnl0", "sit0"] as const;
export function kernelDevices6(type: TunnelType): readonly string[] {
  return type === "gre" ? ["gre0", "ip6gre0"] : KERNEL_DEVICES6;
}

/**
 * Kernel or user space for an IPv6 VIP's tunnels: the kernel where it has every module the type
 * needs for both outer families (the director tunnels over the real server's family, which the
 * server cannot know): IPIP ip6_tunnel and sit; GUE fou too; GRE ip_gre and ip6_gre. Else the
 * user-space decapsulator, which takes both.
 */
export function chooseDecap6(mode: DecapMode, k: KernelTunnels6, type: TunnelType = "ipip"): DecapChoice {
  const has =
    type === "gre"
      ? k.gre === true && k.ip6gre === true
      : k.ip6tnl && k.sit && (type !== "gue" || k.fou === true);
  const need =
    type === "gre"
      ? "the ip_gre and ip6_gre modules (gre0, ip6gre0)"
      : type === "gue"
        ? "the fou, ip6_tunnel and sit modules (GUE ports over IPv4 and IPv6, ip6tnl0, sit0)"
        : "the ip6_tunnel and sit modules (ip6tnl0, sit0)";
  if (mode === "user")
    return {
      how: "user",
      detail: `user-space decapsulator (asked with --decap user)${has ? `; the kernel has ${need}` : ""}`,
    };
  if (has) return { how: "kernel", detail: `the kernel has ${need}` };
  if (mode === "kernel") throw new TsvsError("TSVS_ERR_HOST", `--decap kernel: this kernel lacks ${need}`);
  return { how: "user", detail: `this kernel lacks ${need}: user-space decapsulator` };
}

/**
 * The settings `setup` writes for an IPv6 VIP besides lo's disable_ipv6 (written first): IPv6 on
 * for each interface the director reaches over IPv6; none when it tunnels over IPv4 only.
 */
export function settingsFor6(
  method: RealserverMethod,
  ifaces: string[],
  viaIpv4: boolean,
): [string, number, string][] {
  if (viaIpv4) return [];
  const why =
    method === "dr"
      ? " (the director's frames arrive here)"
      : " (the director's tunnelled datagrams arrive here)";
  return ifaces.map((i) => [`net.ipv6.conf.${i}.disable_ipv6`, 0, why]);
}
