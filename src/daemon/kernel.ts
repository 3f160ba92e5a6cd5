// What the daemon learns from the kernel of its network namespace, at start and again after every
// change rtnetlink reports (host.ts): each link's state, MAC, MTU and addresses (IPv4 and IPv6,
// link-local ones included), the main tables' routes and the local tables' addresses of both
// families (iproute2's JSON output, `ip -j`), and each link's net.ipv6.conf.<if>.forwarding. The
// kernel keeps owning the interfaces' addresses (the engine runs with ownInterfaceAddresses =
// false): it answers ARP and ping for the DIP, tsvs only uses the DIP as a source toward real
// servers.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { canonicalIPv6, parseIPv4 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import { parseMac } from "../core/packet/eth.js";
import type { IfaceAddr, IfaceAddr6, IfaceConfig, RouteConfig } from "../core/route.js";

interface IpAddrJson {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  link_type?: string;
  flags?: string[];
  operstate?: string;
  master?: string;
  addr_info?: {
    family: string;
    local: string;
    prefixlen: number;
    tentative?: boolean;
    dadfailed?: boolean;
  }[];
}

interface IpRouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
  type?: string;
}

function ipJson(args: string[]): unknown {
  let out: string;
  try {
    out = execFileSync("ip", ["-j", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new TsvsError(
      "TSVS_ERR_HOST",
      `ip -j ${args.join(" ")}: ${(err.stderr ?? "").trim() || err.message}`,
    );
  }
  return JSON.parse(out === "" ? "[]" : out);
}

function ipv4(s: string, what: string): number {
  const a = parseIPv4(s);
  if (a === null) throw new TsvsError("TSVS_ERR_HOST", `${what}: bad IPv4 address ${JSON.stringify(s)}`);
  return a;
}

function ipv6(s: string, what: string): string {
  const a = canonicalIPv6(s);
  if (a === null) throw new TsvsError("TSVS_ERR_HOST", `${what}: bad IPv6 address ${JSON.stringify(s)}`);
  return a;
}

/** One link of the namespace as `ip -j addr show` describes it. */
export interface HostLink {
  ifindex: number;
  name: string;
  /** null for a link without a 6-byte link-layer address. */
  mac: Uint8Array | null;
  mtu: number;
  /** IFF_UP: administratively up (`ip link set … up`). */
  up: boolean;
  /** Carrier (IFF_LOWER_UP). */
  lowerUp: boolean;
  /** RFC 2863 operational state (UP, DOWN, LOWERLAYERDOWN, UNKNOWN, …). */
  operstate: string;
  ether: boolean;
  loopback: boolean;
  /** A bridge or bond port: its frames are the master's business. */
  master: string | null;
  addrs: IfaceAddr[];
  /**
   * IPv6 addresses, link-local ones included; not those still tentative (DAD running: the kernel
   * neither uses nor answers for them yet) or whose DAD failed.
   */
  addrs6: IfaceAddr6[];
  /** net.ipv6.conf.<if>.forwarding (readHost reads it; false when unreadable). */
  forwarding6: boolean;
}

/** A main-table unicast route with one next hop (IPv6: dst6/via6 set, RouteConfig's convention). */
export interface HostRoute extends RouteConfig {
  dev: string;
}

/** What the daemon follows of its namespace: links, main-table routes, locally delivered addresses. */
export interface HostState {
  links: HostLink[];
  routes: HostRoute[];
  /**
   * The local tables' `local` routes: every address the kernel delivers to itself (LOCAL_IN); an
   * IPv6 one with `addr6` (addr 0).
   */
  local: IfaceAddr[];
}

function prefixOf(dst: string, what: string, v6 = false): IfaceAddr {
  const max = v6 ? 128 : 32;
  if (dst === "default") return v6 ? { addr: 0, prefix: 0, addr6: "::" } : { addr: 0, prefix: 0 };
  const [a, p] = dst.split("/");
  const prefix = p === undefined ? max : Number(p);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max)
    throw new TsvsError("TSVS_ERR_HOST", `${what}: bad prefix ${dst}`);
  return v6 ? { addr: 0, prefix, addr6: ipv6(a, what) } : { addr: ipv4(a, what), prefix };
}

/** The unicast routes with one next hop through a known link (multipath, blackhole... left out). */
function unicastRoutes(rows: unknown, byName: ReadonlyMap<string, number>, v6: boolean): HostRoute[] {
  const routes: HostRoute[] = [];
  for (const r of rows as IpRouteJson[]) {
    if (r.type !== undefined && r.type !== "unicast") continue;
    const ifindex = r.dev === undefined ? undefined : byName.get(r.dev);
    if (r.dev === undefined || ifindex === undefined) continue;
    const d = prefixOf(r.dst, "route", v6);
    if (v6) {
      const via6 = r.gateway === undefined ? "" : ipv6(r.gateway, "route gateway");
      routes.push({ dst: 0, prefix: d.prefix, via: 0, ifindex, dev: r.dev, dst6: d.addr6, via6 });
    } else
      routes.push({
        dst: d.addr,
        prefix: d.prefix,
        via: r.gateway === undefined ? 0 : ipv4(r.gateway, "route gateway"),
        ifindex,
        dev: r.dev,
      });
  }
  return routes;
}

/**
 * `ip -j addr show`, `ip -j -4 route show table main` and `… table local` as a HostState (pure),
 * with `ip -j -6 route show table main` and `… table local` for IPv6.
 */
export function parseHost(
  addrRows: unknown,
  mainRows: unknown,
  localRows: unknown,
  main6Rows: unknown = [],
  local6Rows: unknown = [],
): HostState {
  const links: HostLink[] = (addrRows as IpAddrJson[]).map((r) => {
    const flags = r.flags ?? [];
    return {
      ifindex: r.ifindex,
      name: r.ifname,
      mac: parseMac(r.address ?? ""),
      mtu: r.mtu,
      up: flags.includes("UP"),
      lowerUp: flags.includes("LOWER_UP"),
      operstate: r.operstate ?? "UNKNOWN",
      ether: r.link_type === "ether",
      loopback: flags.includes("LOOPBACK") || r.link_type === "loopback",
      master: r.master ?? (flags.includes("SLAVE") ? "(bond)" : null),
      addrs: (r.addr_info ?? [])
        .filter((a) => a.family === "inet")
        .map((a) => ({ addr: ipv4(a.local, r.ifname), prefix: a.prefixlen })),
      addrs6: (r.addr_info ?? [])
        .filter((a) => a.family === "inet6" && a.tentative !== true && a.dadfailed !== true)
        .map((a) => ({ addr6: ipv6(a.local, r.ifname), prefix: a.prefixlen })),
      forwarding6: false,
    };
  });
  const byName = new Map(links.map((l) => [l.name, l.ifindex]));
  const routes = [...unicastRoutes(mainRows, byName, false), ...unicastRoutes(main6Rows, byName, true)];
  const local: IfaceAddr[] = [];
  for (const r of localRows as IpRouteJson[])
    if (r.type === "local") local.push(prefixOf(r.dst, "local route"));
  for (const r of local6Rows as IpRouteJson[])
    if (r.type === "local") local.push(prefixOf(r.dst, "local route", true));
  return { links, routes, local };
}

/** The namespace's links, addresses and routes now (five `ip -j` runs), and IPv6 forwarding per link. */
export function readHost(): HostState {
  const s = parseHost(
    ipJson(["addr", "show"]),
    ipJson(["-4", "route", "show", "table", "main"]),
    ipJson(["-4", "route", "show", "table", "local"]),
    ipv6Json(["route", "show", "table", "main"]),
    ipv6Json(["route", "show", "table", "local"]),
  );
  for (const l of s.links) l.forwarding6 = ipv6Forwarding(l.name);
  return s;
}

/** `ip -j -6 …`, or nothing on a kernel without IPv6 (ipv6.disable=1): IPv4 is served all the same. */
function ipv6Json(args: string[]): unknown {
  try {
    return ipJson(["-6", ...args]);
  } catch {
    return [];
  }
}

/** net.ipv6.conf.<name>.forwarding; false when unreadable (IPv6 disabled, a name sysctl cannot take). */
function ipv6Forwarding(name: string): boolean {
  if (name.includes("/") || name === "." || name === "..") return false;
  try {
    return readFileSync(`/proc/sys/net/ipv6/conf/${name}/forwarding`, "utf8").trim() === "1";
  } catch {
    return false;
  }
}

/** A link as the engine takes it; throws when it cannot carry Ethernet frames. */
export function ifaceConfig(l: HostLink): IfaceConfig {
  if (!l.ether) throw new TsvsError("TSVS_ERR_HOST", `interface ${l.name} is not Ethernet`);
  if (l.mac === null) throw new TsvsError("TSVS_ERR_HOST", `interface ${l.name}: no MAC address`);
  return {
    ifindex: l.ifindex,
    name: l.name,
    mac: l.mac,
    mtu: l.mtu,
    addrs: l.addrs,
    addrs6: l.addrs6,
    forwarding6: l.forwarding6,
  };
}

/** net.ipv4.ip_forward of this namespace, or null when unreadable. */
export function ipForward(): string | null {
  try {
    return execFileSync("sysctl", ["-n", "net.ipv4.ip_forward"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return null;
  }
}
