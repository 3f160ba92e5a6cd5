// What the daemon learns from the kernel of its network namespace at start: each interface's
// MAC, MTU and IPv4 addresses, and the IPv4 routes through those interfaces (iproute2's JSON
// output, `ip -j`). The kernel keeps owning these addresses (the engine runs with
// ownInterfaceAddresses = false): it answers ARP and ping for the DIP, tsvs only uses the
// DIP as a source toward real servers.

import { execFileSync } from "node:child_process";
import { parseIPv4 } from "../core/addr.js";
import { parseMac } from "../core/packet/eth.js";
import type { IfaceConfig, RouteConfig } from "../core/route.js";

interface IpAddrJson {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  link_type?: string;
  flags?: string[];
  operstate?: string;
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
    throw new Error(`ip -j ${args.join(" ")}: ${(err.stderr ?? "").trim() || err.message}`);
  }
  return JSON.parse(out === "" ? "[]" : out);
}

function ipv4(s: string, what: string): number {
  const a = parseIPv4(s);
  if (a === null) throw new Error(`${what}: bad IPv4 address ${JSON.stringify(s)}`);
  return a;
}

/** Every up, non-loopback Ethernet interface of the namespace (the daemon's default set). */
export function defaultInterfaces(): string[] {
  const links = ipJson(["link", "show"]) as IpAddrJson[];
  return links
    .filter(
      (l) =>
        l.link_type === "ether" && (l.flags ?? []).includes("UP") && !(l.flags ?? []).includes("LOOPBACK"),
    )
    .map((l) => l.ifname);
}

export function readInterface(name: string): IfaceConfig {
  const rows = ipJson(["addr", "show", "dev", name]) as IpAddrJson[];
  if (rows.length !== 1) throw new Error(`interface ${name} not found`);
  const r = rows[0];
  if (r.link_type !== undefined && r.link_type !== "ether") {
    throw new Error(`interface ${name} is not Ethernet (link/${r.link_type})`);
  }
  const mac = parseMac(r.address ?? "");
  if (mac === null) throw new Error(`interface ${name}: no MAC address`);
  const addrs = (r.addr_info ?? [])
    .filter((a) => a.family === "inet")
    .map((a) => ({ addr: ipv4(a.local, name), prefix: a.prefixlen }));
  return { ifindex: r.ifindex, name: r.ifname, mac, mtu: r.mtu, addrs };
}

/** The main table's IPv4 unicast routes that leave through one of `ifaces`. */
export function readRoutes(ifaces: readonly IfaceConfig[]): RouteConfig[] {
  const byName = new Map(ifaces.map((i) => [i.name, i.ifindex]));
  const rows = ipJson(["-4", "route", "show", "table", "main"]) as IpRouteJson[];
  const out: RouteConfig[] = [];
  for (const r of rows) {
    if (r.type !== undefined && r.type !== "unicast") continue;
    const ifindex = r.dev === undefined ? undefined : byName.get(r.dev);
    if (ifindex === undefined) continue;
    let dst = 0;
    let prefix = 0;
    if (r.dst !== "default") {
      const [a, p] = r.dst.split("/");
      dst = ipv4(a, "route");
      prefix = p === undefined ? 32 : Number(p);
    }
    out.push({ dst, prefix, via: r.gateway === undefined ? 0 : ipv4(r.gateway, "route gateway"), ifindex });
  }
  return out;
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
