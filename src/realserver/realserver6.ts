// `tsvs realserver setup|doctor|undo` for an IPv6 VIP (issue 14), in the network namespace it runs
// in. What NDP does with a VIP on lo, and why no arp_ignore-like setting is needed: checks6.ts.
//
//   - VIP/128 on lo, `nodad` (DAD never runs on lo anyway: checks6.ts); a shorter prefix routes the
//     rest of it into lo and is replaced;
//   - IPv6 on (disable_ipv6 0) for lo and for the interface the director reaches over IPv6;
//   - TUN: the director sends the client's IPv6 datagram behind next header 41, inside IPv6 to an
//     IPv6 RIP or inside IPv4 to an IPv4 one (ip_vs_xmit.c: the outer family is the destination's).
//     The kernel's fallback devices take both where it has the modules (ip6tnl0 of ip6_tunnel,
//     sit0 of sit); else the user-space decapsulator (decap.ts --family 6) on the tun device
//     tsvsip6tnl0 — the kernels tsvs is developed on have neither module. GUE and GRE around IPv6
//     datagrams are refused (not decapsulated yet).
//
// No rp_filter: IPv6 has none in the kernel (only netfilter's rpfilter match). forwarding is only
// checked: a real server should be a host, but turning routing off is not setup's call.
// State (values found before setup, the decapsulator) in state6.json beside the IPv4 VIP's
// state.json, so that a dual-stack server is set up and undone per family.

import { execFileSync } from "node:child_process";
import { TsvsError } from "../core/errors.js";
import { type ProcRef, procAlive, stopProc } from "../lab/proc.js";
import { type DirectorIfaceChoice, decapFindings, type Finding, type RealserverMethod } from "./checks.js";
import {
  type Addr6,
  acceptDadFinding,
  chooseDecap6,
  disableIpv6Defaults,
  disableIpv6Finding,
  forwardingFinding,
  KERNEL_DEVICES6,
  type KernelTunnels6,
  parseVip6,
  ripStateFindings,
  route6Finding,
  settingsFor6,
  vip6Findings,
} from "./checks6.js";
import {
  checkAddr,
  type DoctorOptions,
  directorIfaceAmong,
  givenHints,
  ipJson,
  kernelLinkType,
  linkIsUp,
  linkShow,
  type RealserverOptions,
  readDecapStats,
  readStateFile,
  readSysctl,
  removeStateFiles,
  restoreSysctls,
  routeSources,
  sourcesElsewhere,
  startDecap,
  TUN_DEVICE_NAMES,
  TUN_DEVICE6,
  writeStateFile,
  writeSysctl,
} from "./realserver.js";

const STATE6 = "state6.json";
const STATS6 = "decap6-stats.json";
const STATE6_FILES = [STATE6, "decap6.pid", "decap6.log", STATS6];
/** The kernel's fallback tunnel devices: never a RIP interface. */
const FALLBACK_DEVICES = new Set(["tunl0", "gre0", "ip6tnl0", "sit0", "ip6gre0", "ip6_vti0", "ip_vti0"]);

/** A link of this namespace and its IPv6 addresses (`ip -j addr show`; none when IPv6 is off on it). */
export interface Link6 {
  ifname: string;
  loopback: boolean;
  addrs: Addr6[];
}

export function ipv6Links(): Link6[] {
  const links = ipJson<
    {
      ifname: string;
      flags?: string[];
      addr_info?: {
        family?: string;
        local?: string;
        prefixlen?: number;
        scope?: string;
        tentative?: boolean;
        dadfailed?: boolean;
      }[];
    }[]
  >(["addr", "show"]);
  return links.map((l) => ({
    ifname: l.ifname,
    loopback: (l.flags ?? []).includes("LOOPBACK"),
    addrs: (l.addr_info ?? [])
      .filter((a) => a.family === "inet6" && a.local !== undefined)
      .map((a) => ({
        ifname: l.ifname,
        local: a.local as string,
        prefixlen: a.prefixlen ?? 128,
        scope: a.scope ?? "global",
        tentative: a.tentative === true,
        dadfailed: a.dadfailed === true,
      })),
  }));
}

/** Interfaces that may lead to the director over IPv6: a global address, not lo, not a tunnel of ours or the kernel's. */
function ipv6Ifaces(links: Link6[]): string[] {
  return links
    .filter((l) => !l.loopback && !TUN_DEVICE_NAMES.has(l.ifname) && !FALLBACK_DEVICES.has(l.ifname))
    .filter((l) => l.addrs.some((a) => a.scope === "global"))
    .map((l) => l.ifname);
}

/** The IPv6 default route's device and gateway (the first next hop of a multipath one), or nulls. */
export function defaultRoute6(): { dev: string | null; gateway: string | null } {
  try {
    const r = ipJson<{ dev?: string; gateway?: string; nexthops?: { dev?: string; gateway?: string }[] }[]>([
      "-6",
      "route",
      "show",
      "default",
    ])[0];
    const hop = r?.dev !== undefined ? r : r?.nexthops?.[0];
    return { dev: hop?.dev ?? null, gateway: hop?.gateway ?? null };
  } catch {
    return { dev: null, gateway: null };
  }
}

/** Interfaces with a proxy NDP entry for addr (`ip -6 neigh add proxy ADDR dev IF`). */
function proxyEntries(addr: string): string[] {
  try {
    return ipJson<{ dst?: string; dev?: string }[]>(["-6", "neigh", "show", "proxy"])
      .filter((n) => n.dst !== undefined && parseVip6Or(n.dst) === addr)
      .map((n) => n.dev ?? "?");
  } catch {
    return [];
  }
}

function parseVip6Or(text: string): string | null {
  try {
    return parseVip6(text);
  } catch {
    return null;
  }
}

/** What this kernel offers for IPv6 tunnels (a probe may load a module, as `ip link add` does). */
export function kernelTunnels6(): KernelTunnels6 {
  return { ip6tnl: kernelLinkType("ip6tnl", "ip6tnl0"), sit: kernelLinkType("sit", "sit0") };
}

export interface Realserver6State {
  vip: string;
  method: RealserverMethod;
  iface: string;
  ifaces: string[];
  director: string[];
  ifaceGiven: string | null;
  tunnelLocal: string[] | null;
  /** TUN decapsulated by the kernel: the fallback devices setup brought up. */
  kernel: { dev: string; wasDown: boolean }[] | null;
  saved: Record<string, number>;
  vipAdded: boolean;
  decap: ProcRef | null;
}

/** TUN with an IPv6 VIP: the director's IPIP (next header 41) only. */
function checkTunnel6(opts: { method: RealserverMethod; tunType?: string; tunPort?: number }): void {
  if (opts.method !== "tun") return;
  if ((opts.tunType ?? "ipip") !== "ipip")
    throw new TsvsError(
      "TSVS_ERR_USAGE",
      `--tun-type ${opts.tunType} with an IPv6 VIP: GUE and GRE around IPv6 datagrams are not decapsulated (yet); the director's ipip tunnels (next header 41, inside IPv6 or IPv4) are`,
    );
  if (opts.tunPort !== undefined)
    throw new TsvsError("TSVS_ERR_USAGE", "--tun-port goes with --tun-type gue");
}

/** The director-facing interface(s) for an IPv6 VIP (see realserver.ts directorIface). */
function directorIface6(
  opts: { iface?: string; director?: string[] },
  method: RealserverMethod,
  links: Link6[],
): DirectorIfaceChoice {
  return directorIfaceAmong(opts, method, ipv6Ifaces(links), 6);
}

/** Is the director reached over IPv4 only (TUN, IPv6 inside IPv4)? Then its interface needs no IPv6. */
function directorOverIpv4(director: string[], sources: string[]): boolean {
  const known = director.length > 0 ? director : sources;
  return known.length > 0 && known.every((a) => !a.includes(":"));
}

/** Applies the settings for an IPv6 VIP (idempotent: a second setup keeps the values saved by the first). */
export async function realserverSetup6(opts: RealserverOptions): Promise<Realserver6State> {
  const log = opts.log ?? (() => {});
  const vip = parseVip6(opts.vip);
  for (const a of [...(opts.director ?? []), ...(opts.tunnelLocal ?? [])]) checkAddr(a);
  checkTunnel6(opts);
  const how = opts.method === "tun" ? chooseDecap6(opts.decap ?? "auto", kernelTunnels6()) : null;
  const prev = readStateFile<Realserver6State>(STATE6);
  const saved: Record<string, number> = { ...(prev?.saved ?? {}) };
  const set = (key: string, v: number, why = ""): void => {
    const was = readSysctl(key);
    if (!(key in saved)) saved[key] = was;
    if (was === v) return;
    writeSysctl(key, v);
    log(`${key} = ${v}${why}`);
  };
  // lo first: with IPv6 off there, no address can be added to it.
  set("net.ipv6.conf.lo.disable_ipv6", 0, " (the VIP lives on lo)");
  const choice = directorIface6(opts, opts.method, ipv6Links());
  const ifaces = choice.ifaces;
  log(`director-facing interface ${ifaces.join(", ")}: ${choice.detail}`);
  const viaIpv4 = directorOverIpv4(opts.director ?? [], []);
  for (const [key, v, why] of settingsFor6(opts.method, ifaces, viaIpv4)) {
    const wasOff = readSysctl(key) !== 0;
    set(
      key,
      v,
      wasOff ? `${why}; its IPv6 addresses went when IPv6 was switched off: add the RIP again` : why,
    );
  }

  const found = ipv6Links()
    .flatMap((l) => l.addrs)
    .filter((a) => parseVip6Or(a.local) === vip);
  const elsewhere = found.filter((a) => a.ifname !== "lo");
  if (elsewhere.length > 0) {
    throw new TsvsError(
      "TSVS_ERR_HOST",
      `VIP ${vip} is configured on ${elsewhere.map((a) => a.ifname).join(", ")}: that interface answers neighbour solicitations for it; remove it there`,
    );
  }
  let vipAdded = prev?.vipAdded ?? false;
  for (const a of found) {
    if (a.prefixlen !== 128) {
      execFileSync("ip", ["-6", "addr", "del", `${vip}/${a.prefixlen}`, "dev", "lo"]);
      log(`removed ${vip}/${a.prefixlen} from lo (a prefix shorter than /128 routes the rest of it into lo)`);
    }
  }
  if (!found.some((a) => a.prefixlen === 128)) {
    execFileSync("ip", ["-6", "addr", "add", `${vip}/128`, "dev", "lo", "nodad"]);
    vipAdded = true;
    log(
      `added ${vip}/128 on lo (nodad; the kernel runs no DAD on lo anyway, and answers no neighbour solicitation for it)`,
    );
  }
  execFileSync("ip", ["link", "set", "lo", "up"]);

  const tunnelLocal = opts.tunnelLocal !== undefined && opts.tunnelLocal.length > 0 ? opts.tunnelLocal : null;
  if (how !== null) log(`IPv6-in-IP decapsulation: ${how.detail}`);
  let decap = prev?.decap != null && procAlive(prev.decap) ? prev.decap : null;
  if (
    decap !== null &&
    (how?.how !== "user" || JSON.stringify(prev?.tunnelLocal ?? null) !== JSON.stringify(tunnelLocal))
  ) {
    await stopProc(decap);
    log(`stopped the IPv6-in-IP decapsulator (pid ${decap.pid})`);
    decap = null;
  }
  let kernel = prev?.kernel ?? null;
  if (kernel !== null && how?.how !== "kernel") {
    undoKernel6(kernel, log);
    kernel = null;
  }
  const st: Realserver6State = {
    vip,
    method: opts.method,
    iface: ifaces[0],
    ifaces,
    director: opts.director ?? [],
    ifaceGiven: opts.iface ?? null,
    tunnelLocal,
    kernel,
    saved,
    vipAdded,
    decap,
  };
  writeStateFile(STATE6, st);
  if (how?.how === "kernel" && kernel === null) {
    st.kernel = KERNEL_DEVICES6.map((dev) => {
      const wasDown = linkIsUp(dev) !== true;
      if (wasDown) {
        execFileSync("ip", ["link", "set", dev, "up"], { stdio: "ignore" });
        log(
          `ip link set ${dev} up (the kernel's fallback device takes tunnelled datagrams to any local address)`,
        );
      }
      return { dev, wasDown };
    });
    writeStateFile(STATE6, st);
  }
  if (how?.how === "user" && decap === null) {
    st.decap = await startDecap({ type: "ipip", port: 0, tunnelLocal, family: 6 });
    writeStateFile(STATE6, st);
    log(
      `IPv6-in-IP decapsulator on ${TUN_DEVICE6} (pid ${st.decap.pid}), next header 41 inside IPv6 and IPv4, accepting ${tunnelLocal === null ? "every local address" : tunnelLocal.join(", ")}`,
    );
  }
  st.saved = saved;
  writeStateFile(STATE6, st);
  return st;
}

function undoKernel6(devs: { dev: string; wasDown: boolean }[], log: (line: string) => void): void {
  for (const d of devs.filter((x) => x.wasDown)) {
    try {
      execFileSync("ip", ["link", "set", d.dev, "down"], { stdio: "ignore" });
      log(`ip link set ${d.dev} down`);
    } catch {
      // the module went away
    }
  }
}

/** Stops the decapsulator, restores the saved sysctls, removes the VIP from lo if setup added it. */
export async function realserverTeardown6(opts: {
  vip?: string;
  log?: (line: string) => void;
}): Promise<void> {
  const log = opts.log ?? (() => {});
  const st = readStateFile<Realserver6State>(STATE6);
  if (st?.decap != null) {
    await stopProc(st.decap);
    log(`stopped the IPv6-in-IP decapsulator (pid ${st.decap.pid})`);
  }
  if (st?.kernel != null) undoKernel6(st.kernel, log);
  restoreSysctls(st?.saved ?? {}, log);
  const vip = opts.vip !== undefined ? parseVip6(opts.vip) : st?.vip;
  if (vip !== undefined && (st === null || st.vipAdded)) {
    for (const a of ipv6Links()
      .flatMap((l) => l.addrs)
      .filter((x) => x.ifname === "lo" && parseVip6Or(x.local) === vip)) {
      execFileSync("ip", ["-6", "addr", "del", `${vip}/${a.prefixlen}`, "dev", "lo"]);
      log(`removed ${vip}/${a.prefixlen} from lo`);
    }
  }
  removeStateFiles(STATE6_FILES);
}

function sysctlOr(key: string, fallback: number): number {
  try {
    return readSysctl(key);
  } catch {
    return fallback;
  }
}

/**
 * Every check for an IPv6 VIP, in order; a FAIL means the real server will not work for the
 * method. A director that cannot be reached (no route: IPv6 off on its interface, say) is itself a
 * failure, and the checks go on with the interfaces setup chose.
 */
export function realserverDoctor6(opts: DoctorOptions): Finding[] {
  const out: Finding[] = [];
  const vip = parseVip6(opts.vip);
  checkTunnel6(opts);
  for (const a of opts.director ?? []) checkAddr(a);
  const st = readStateFile<Realserver6State>(STATE6);
  const given = givenHints(opts, st);
  const links = ipv6Links();
  let choice: DirectorIfaceChoice;
  try {
    choice = directorIface6(given, opts.method, links);
  } catch (e) {
    if (!(e instanceof TsvsError) || e.code !== "TSVS_ERR_HOST") throw e;
    const fallback =
      st?.ifaces ?? links.filter((l) => !l.loopback && !TUN_DEVICE_NAMES.has(l.ifname)).map((l) => l.ifname);
    out.push({
      level: "FAIL",
      what: e.message,
      detail: `checked instead: ${fallback.join(", ") || "no interface"} (${st !== null ? "the interfaces setup chose" : "every interface"})`,
    });
    choice = { ifaces: fallback, how: "ambiguous", detail: "" };
  }
  const toDirector = new Set(choice.ifaces);
  const ifaces = [...choice.ifaces, ...ipv6Ifaces(links).filter((i) => !toDirector.has(i))];
  const stats =
    opts.method === "tun" && st?.decap != null && procAlive(st.decap) ? readDecapStats(STATS6) : null;
  const viaIpv4 = directorOverIpv4(given.director ?? [], stats?.sources ?? []);
  const addrs = links.flatMap((l) => l.addrs);
  const def = defaultRoute6();
  const route = `default route ${def.gateway !== null ? `via ${def.gateway} ` : ""}${def.dev !== null ? `dev ${def.dev}` : "none"}`;
  for (const i of ifaces) {
    const mine = addrs.filter((a) => a.ifname === i && a.scope === "global");
    const role = toDirector.has(i) ? "director-facing " : "";
    const none =
      toDirector.has(i) && viaIpv4
        ? "no IPv6 address; the director tunnels over IPv4"
        : "no IPv6 address: the director cannot reach this server over IPv6";
    out.push({
      level:
        mine.length === 0 && toDirector.has(i) && !viaIpv4
          ? "FAIL"
          : toDirector.has(i) && choice.how === "ambiguous" && choice.detail !== ""
            ? "warn"
            : "info",
      what: `${role}interface ${i}`,
      detail:
        mine.length === 0
          ? none
          : `RIP ${mine.map((a) => `${a.local}/${a.prefixlen}`).join(", ")}; ${route}${toDirector.has(i) && choice.detail !== "" ? `; ${choice.detail}` : ""}`,
    });
  }

  out.push(disableIpv6Finding("lo", sysctlOr("net.ipv6.conf.lo.disable_ipv6", 1), "lo"));
  for (const i of ifaces)
    out.push(
      disableIpv6Finding(
        i,
        sysctlOr(`net.ipv6.conf.${i}.disable_ipv6`, 1),
        toDirector.has(i) && !viaIpv4 ? "director" : "other",
      ),
    );
  out.push(
    disableIpv6Defaults(
      sysctlOr("net.ipv6.conf.all.disable_ipv6", 0),
      sysctlOr("net.ipv6.conf.default.disable_ipv6", 0),
    ),
  );
  const allDad = sysctlOr("net.ipv6.conf.all.accept_dad", 0);
  for (const i of ifaces) out.push(acceptDadFinding(i, allDad, sysctlOr(`net.ipv6.conf.${i}.accept_dad`, 0)));
  out.push(...ripStateFindings(addrs.filter((a) => ifaces.includes(a.ifname))));
  const fwd = ifaces.map((i) => ({
    ifname: i,
    value: sysctlOr(`net.ipv6.conf.${i}.forwarding`, 0),
    acceptRa: sysctlOr(`net.ipv6.conf.${i}.accept_ra`, 1),
  }));
  out.push(forwardingFinding(sysctlOr("net.ipv6.conf.all.forwarding", 0), fwd));

  const proxyAll = sysctlOr("net.ipv6.conf.all.proxy_ndp", 0);
  out.push(
    ...vip6Findings({
      vip,
      found: addrs.filter((a) => parseVip6Or(a.local) === vip),
      ripAddrs: addrs.filter((a) => a.ifname !== "lo" && !TUN_DEVICE_NAMES.has(a.ifname)),
      gateway: def.gateway,
      proxy: proxyEntries(vip).map((dev) => ({
        ifname: dev,
        active:
          sysctlOr(`net.ipv6.conf.${dev}.forwarding`, 0) !== 0 &&
          (proxyAll !== 0 || sysctlOr(`net.ipv6.conf.${dev}.proxy_ndp`, 0) !== 0),
      })),
    }),
  );
  out.push(route6Finding(def));
  if (opts.method === "tun") out.push(...tunFindings6(vip, st, given, toDirector, choice));
  return out;
}

/** The TUN checks: the kernel's fallback devices, or the user-space decapsulator and its device. */
function tunFindings6(
  vip: string,
  st: Realserver6State | null,
  given: { iface?: string; director?: string[] },
  toDirector: Set<string>,
  choice: DirectorIfaceChoice,
): Finding[] {
  const out: Finding[] = [];
  const alive = st?.decap != null && procAlive(st.decap);
  const kUp = KERNEL_DEVICES6.map((dev) => ({ dev, up: linkIsUp(dev) }));
  if (!alive && (st?.kernel != null || kUp.every((k) => k.up === true))) {
    for (const k of kUp) {
      out.push({
        level: k.up === true ? "ok" : "FAIL",
        what: `kernel ${k.dev} ${k.up === null ? "absent" : k.up ? "up" : "down"}`,
        detail:
          k.up === true
            ? `the kernel decapsulates ${k.dev === "sit0" ? "IPv6 inside IPv4" : "IPv6 inside IPv6"} on ${k.dev} (its fallback device takes any local address)`
            : `tunnelled datagrams are not decapsulated: ip link set ${k.dev} up, or run tsvs realserver setup --vip ${vip} --method tun`,
      });
    }
    return out;
  }
  const hasTun = linkShow(TUN_DEVICE6);
  const stats = alive ? readDecapStats(STATS6) : null;
  const toward = (given.director ?? []).length > 0 ? (given.director ?? []) : (stats?.sources ?? []);
  out.push(
    ...decapFindings({
      type: "ipip",
      alive,
      pid: st?.decap?.pid ?? null,
      tun: TUN_DEVICE6,
      hasTun,
      stats,
      directorSrc: routeSources(toward),
      label: "IPv6-in-IP",
      setup: `tsvs realserver setup --vip ${vip} --method tun`,
    }),
  );
  out.push(...sourcesElsewhere(stats?.sources ?? [], toDirector, choice));
  if (hasTun)
    out.push(
      disableIpv6Finding(TUN_DEVICE6, sysctlOr(`net.ipv6.conf.${TUN_DEVICE6}.disable_ipv6`, 1), "tun"),
    );
  return out;
}
