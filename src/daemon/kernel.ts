// What the daemon learns from the kernel of its network namespace, at start and again after every
// change rtnetlink reports (host.ts): each link's state, MAC, MTU and IPv4 addresses, the main
// table's IPv4 routes and the local table's addresses (iproute2's JSON output, `ip -j`). The
// kernel keeps owning the interfaces' addresses (the engine runs with ownInterfaceAddresses =
// false): it answers ARP and ping for the DIP, tsvs only uses the DIP as a source toward real
// servers.

import { execFileSync } from "node:child_process";
import { parseIPv4 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import { parseMac } from "../core/packet/eth.js";
import type { IfaceAddr, IfaceConfig, RouteConfig } from "../core/route.js";

interface IpAddrJson {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  link_type?: string;
  flags?: string[];
  operstate?: string;
  master?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
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
}

/** A main-table IPv4 unicast route with one next hop. */
export interface HostRoute extends RouteConfig {
  dev: string;
}

/** What the daemon follows of its namespace: links, main-table routes, locally delivered addresses. */
export interface HostState {
  links: HostLink[];
  routes: HostRoute[];
  /** The local table's `local` routes: every address the kernel delivers to itself (LOCAL_IN). */
  local: IfaceAddr[];
}

function prefixOf(dst: string, what: string): IfaceAddr {
  if (dst === "default") return { addr: 0, prefix: 0 };
  const [a, p] = dst.split("/");
  const prefix = p === undefined ? 32 : Number(p);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32)
    throw new TsvsError("TSVS_ERR_HOST", `${what}: bad prefix ${dst}`);
  return { addr: ipv4(a, what), prefix };
}

/** `ip -j addr show`, `ip -j -4 route show table main` and `… table local` as a HostState (pure). */
export function parseHost(addrRows: unknown, mainRows: unknown, localRows: unknown): HostState {
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
    };
  });
  const byName = new Map(links.map((l) => [l.name, l.ifindex]));
  const routes: HostRoute[] = [];
  for (const r of mainRows as IpRouteJson[]) {
    if (r.type !== undefined && r.type !== "unicast") continue;
    const ifindex = r.dev === undefined ? undefined : byName.get(r.dev);
    if (r.dev === undefined || ifindex === undefined) continue;
    const d = prefixOf(r.dst, "route");
    routes.push({
      dst: d.addr,
      prefix: d.prefix,
      via: r.gateway === undefined ? 0 : ipv4(r.gateway, "route gateway"),
      ifindex,
      dev: r.dev,
    });
  }
  const local: IfaceAddr[] = [];
  for (const r of localRows as IpRouteJson[])
    if (r.type === "local") local.push(prefixOf(r.dst, "local route"));
  return { links, routes, local };
}

/** The namespace's links, addresses and routes now (three `ip -j` runs). */
export function readHost(): HostState {
  return parseHost(
    ipJson(["addr", "show"]),
    ipJson(["-4", "route", "show", "table", "main"]),
    ipJson(["-4", "route", "show", "table", "local"]),
  );
}

/** A link as the engine takes it; throws when it cannot carry Ethernet frames. */
export function ifaceConfig(l: HostLink): IfaceConfig {
  if (!l.ether) throw new TsvsError("TSVS_ERR_HOST", `interface ${l.name} is not Ethernet`);
  if (l.mac === null) throw new TsvsError("TSVS_ERR_HOST", `interface ${l.name}: no MAC address`);
  return { ifindex: l.ifindex, name: l.name, mac: l.mac, mtu: l.mtu, addrs: l.addrs };
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
