// `tsvs realserver setup|doctor|undo` for an IPv6 VIP (issue 14), in the network namespace it runs
// in. What NDP does with a VIP on lo, and why no arp_ignore-like setting is needed: checks6.ts.
//
//   - VIP/128 on lo, `nodad` (DAD never runs on lo anyway: checks6.ts); a shorter prefix routes the
//     rest of it into lo and is replaced;
//   - IPv6 on (disable_ipv6 0) for lo and for the interface the director reaches over IPv6;
//   - TUN: the director sends the client's IPv6 datagram behind next header 41 (--tun-type ipip),
//     GUE proto_ctype 41 (gue, to --tun-port) or GRE protocol 0x86DD (gre), inside IPv6 to an IPv6
//     RIP or inside IPv4 to an IPv4 one (ip_vs_xmit.c: the outer family is the destination's). The
//     kernel's devices take both outer families where it has the modules (IPIP: ip6tnl0 of
//     ip6_tunnel and sit0 of sit; GUE: fou ports over IPv4 and IPv6 feeding those two; GRE: gre0
//     and ip6gre0); else the user-space decapsulator (decap.ts --family 6) on a tun device
//     (tsvsip6tnl0 for IPIP; tsvsgue0 / tsvsgre0, which a GUE/GRE decapsulator of the IPv4 VIP of a
//     dual-stack server already is: it delivers IPv6 datagrams too, and is shared) — the kernels
//     tsvs is developed on have none of those modules.
//
// No rp_filter: IPv6 has none in the kernel (only netfilter's rpfilter match). forwarding is only
// checked: a real server should be a host, but turning routing off is not setup's call.
// State (values found before setup, the decapsulator) in state6.json beside the IPv4 VIP's
// state.json, so that a dual-stack server is set up and undone per family.

import { execFileSync } from "node:child_process";
import { TsvsError } from "../core/errors.js";
import type { ProcRef } from "../lab/proc.js";
import {
  type DirectorIfaceChoice,
  decapFindings,
  type Finding,
  type RealserverMethod,
  type TunnelType,
} from "./checks.js";
import {
  type Addr6,
  acceptDadFinding,
  chooseDecap6,
  disableIpv6Defaults,
  disableIpv6Finding,
  forwardingFinding,
  type KernelTunnels6,
  kernelDevices6,
  parseVip6,
  ripStateFindings,
  route6Finding,
  settingsFor6,
  vip6Findings,
} from "./checks6.js";
import {
  checkAddr,
  claimFinding,
  type DoctorOptions,
  directorIfaceAmong,
  fouPorts,
  givenHints,
  ipJson,
  isOurDecap,
  kernelFou,
  kernelLinkType,
  linkIsUp,
  linkShow,
  noteClaim,
  type RealserverOptions,
  readDecapStats,
  readStateFile,
  readSysctl,
  removeStateFiles,
  restoreSysctls,
  routeSources,
  sharedDecap,
  sourcesElsewhere,
  startDecap,
  stopDecap,
  TUN_DEVICE_NAMES,
  TUN_DEVICE6,
  TUN_DEVICES,
  tunnelOf,
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

/**
 * What this kernel offers for an IPv6 VIP's tunnels of `type` (a probe may load a module, as `ip
 * link add` does; only the modules the type needs are probed).
 */
export function kernelTunnels6(type: TunnelType = "ipip"): KernelTunnels6 {
  if (type === "gre")
    return {
      ip6tnl: false,
      sit: false,
      gre: kernelLinkType("gre", "gre0"),
      ip6gre: kernelLinkType("ip6gre", "ip6gre0"),
    };
  const k: KernelTunnels6 = {
    ip6tnl: kernelLinkType("ip6tnl", "ip6tnl0"),
    sit: kernelLinkType("sit", "sit0"),
  };
  if (type === "gue") k.fou = kernelFou();
  return k;
}

export interface Realserver6State {
  vip: string;
  method: RealserverMethod;
  iface: string;
  ifaces: string[];
  director: string[];
  ifaceGiven: string | null;
  tunnelLocal: string[] | null;
  /** TUN: the director's tunnel type and GUE port (absent in state of older versions: ipip). */
  tunType?: TunnelType;
  tunPort?: number;
  /** TUN decapsulated by the kernel: the fallback devices setup brought up. */
  kernel: { dev: string; wasDown: boolean }[] | null;
  /** GUE decapsulated by the kernel: the fou ports setup added (`ip fou add port N gue [-6]`). */
  fou?: { port: number; af: 4 | 6 }[];
  saved: Record<string, number>;
  vipAdded: boolean;
  decap: ProcRef | null;
  /** GUE/GRE: the IPv4 VIP's decapsulator, which delivers this VIP's datagrams too (not ours to stop). */
  sharedDecap?: ProcRef | null;
}

/** The tunnel type and GUE port for an IPv6 VIP (realserver.ts tunnelOf: GUE needs --tun-port). */
function checkTunnel6(opts: { method: RealserverMethod; tunType?: TunnelType; tunPort?: number }): {
  type: TunnelType;
  port: number;
} {
  if (opts.method !== "tun") return { type: "ipip", port: 0 };
  return tunnelOf(opts);
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
  const { type, port } = checkTunnel6(opts);
  const how = opts.method === "tun" ? chooseDecap6(opts.decap ?? "auto", kernelTunnels6(type), type) : null;
  noteClaim(log);
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
  const name = tunnelName6(type);
  if (how !== null) log(`${name} decapsulation: ${how.detail}`);
  // The pid of an earlier setup's decapsulator may be another program's by now.
  let decap = prev?.decap != null && isOurDecap(prev.decap) ? prev.decap : null;
  const sameDecap =
    JSON.stringify(prev?.tunnelLocal ?? null) === JSON.stringify(tunnelLocal) &&
    (prev?.tunType ?? "ipip") === type &&
    (prev?.tunPort ?? 0) === port;
  if (decap !== null && (how?.how !== "user" || !sameDecap)) {
    await stopDecap(decap, tunnelName6(prev?.tunType ?? "ipip"), log);
    decap = null;
  }
  let kernel = prev?.kernel ?? null;
  let fou = prev?.fou ?? [];
  const devs = kernelDevices6(type);
  const sameKernel = kernel?.every((k) => devs.includes(k.dev)) === true && fou.every((f) => f.port === port);
  if (kernel !== null && (how?.how !== "kernel" || !sameKernel)) {
    undoKernel6(kernel, fou, log);
    kernel = null;
    fou = [];
  }
  const st: Realserver6State = {
    vip,
    method: opts.method,
    iface: ifaces[0],
    ifaces,
    director: opts.director ?? [],
    ifaceGiven: opts.iface ?? null,
    tunnelLocal,
    tunType: opts.method === "tun" ? type : undefined,
    tunPort: opts.method === "tun" ? port : undefined,
    kernel,
    fou,
    saved,
    vipAdded,
    decap,
    sharedDecap: null,
  };
  writeStateFile(STATE6, st);
  if (how?.how === "kernel" && kernel === null) {
    if (type === "gue") {
      // fou over both families, each handing proto_ctype 41 to sit0 (IPv4) or ip6tnl0 (IPv6).
      const have = fouPorts() ?? [];
      for (const af of [4, 6] as const) {
        if (have.some((p) => p.port === port && p.af === af)) continue;
        execFileSync("ip", ["fou", "add", "port", String(port), "gue", ...(af === 6 ? ["-6"] : [])], {
          stdio: "ignore",
        });
        st.fou = [...(st.fou ?? []), { port, af }];
        log(
          `ip fou add port ${port} gue${af === 6 ? " -6" : ""} (fou hands the inner datagrams to ${af === 6 ? "ip6tnl0" : "sit0"})`,
        );
      }
    }
    st.kernel = devs.map((dev) => {
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
  const shared = how?.how === "user" && decap === null ? sharedDecap("state.json", type, port) : null;
  if (shared !== null) {
    st.sharedDecap = shared.proc;
    log(
      `${name} decapsulation by the IPv4 VIP's decapsulator on ${TUN_DEVICES[type]} (pid ${shared.proc.pid}), which delivers IPv6 datagrams too`,
    );
  } else if (how?.how === "user" && decap === null) {
    st.decap = await startDecap({ type, port, tunnelLocal, family: 6 });
    writeStateFile(STATE6, st);
    const what =
      type === "ipip"
        ? "next header 41 inside IPv6 and IPv4"
        : type === "gue"
          ? `UDP port ${port} over IPv6 and IPv4, either family inside`
          : "protocol 47 over IPv6 and IPv4, either family inside";
    log(
      `${name} decapsulator on ${type === "ipip" ? TUN_DEVICE6 : TUN_DEVICES[type]} (pid ${st.decap.pid}), ${what}, accepting ${tunnelLocal === null ? "every local address" : tunnelLocal.join(", ")}`,
    );
  }
  st.saved = saved;
  writeStateFile(STATE6, st);
  return st;
}

function undoKernel6(
  devs: { dev: string; wasDown: boolean }[],
  fou: { port: number; af: 4 | 6 }[],
  log: (line: string) => void,
): void {
  for (const f of fou) {
    try {
      execFileSync("ip", ["fou", "del", "port", String(f.port), ...(f.af === 6 ? ["-6"] : [])], {
        stdio: "ignore",
      });
      log(`ip fou del port ${f.port}${f.af === 6 ? " -6" : ""}`);
    } catch {
      // already gone
    }
  }
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
  noteClaim(log);
  const st = readStateFile<Realserver6State>(STATE6);
  if (st?.decap != null) {
    await stopDecap(st.decap, tunnelName6(st.tunType ?? "ipip"), log);
  }
  if (st?.kernel != null) undoKernel6(st.kernel, st.fou ?? [], log);
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
  for (const a of opts.director ?? []) checkAddr(a);
  out.push(...claimFinding());
  const st = readStateFile<Realserver6State>(STATE6);
  // The type doctor checks: as given, else as setup was given.
  const tunType = opts.tunType ?? st?.tunType;
  const tun = checkTunnel6({
    method: opts.method,
    tunType,
    tunPort: opts.tunPort ?? (tunType === "gue" && st?.tunType === "gue" ? st.tunPort : undefined),
  });
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
  const dp = decapOf6(st);
  const stats = opts.method === "tun" && dp !== null ? readDecapStats(dp.stats) : null;
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
  if (opts.method === "tun") out.push(...tunFindings6(vip, tun, st, given, toDirector, choice));
  return out;
}

/** How an IPv6 VIP's tunnel type is named to the operator (IPIP carries IPv6 as IPv6-in-IP). */
function tunnelName6(type: TunnelType): string {
  return type === "ipip" ? "IPv6-in-IP" : type.toUpperCase();
}

/** The running decapsulator for this VIP (its own, or the IPv4 VIP's shared one) and its stats file; null if none runs. */
function decapOf6(st: Realserver6State | null): { proc: ProcRef; stats: string } | null {
  if (st?.decap != null && isOurDecap(st.decap)) return { proc: st.decap, stats: STATS6 };
  if (st?.sharedDecap != null && isOurDecap(st.sharedDecap))
    return { proc: st.sharedDecap, stats: "decap-stats.json" };
  return null;
}

/** The TUN checks: the kernel's devices for the type, or the user-space decapsulator and its device. */
function tunFindings6(
  vip: string,
  tun: { type: TunnelType; port: number },
  st: Realserver6State | null,
  given: { iface?: string; director?: string[] },
  toDirector: Set<string>,
  choice: DirectorIfaceChoice,
): Finding[] {
  const out: Finding[] = [];
  const { type, port } = tun;
  const dp = decapOf6(st);
  const alive = dp !== null;
  const setup = `tsvs realserver setup --vip ${vip} --method tun${type === "ipip" ? "" : ` --tun-type ${type}`}${type === "gue" ? ` --tun-port ${port}` : ""}`;
  const kUp = kernelDevices6(type).map((dev) => ({ dev, up: linkIsUp(dev) }));
  if (!alive && (st?.kernel != null || kUp.every((k) => k.up === true))) {
    for (const k of kUp) {
      out.push({
        level: k.up === true ? "ok" : "FAIL",
        what: `kernel ${k.dev} ${k.up === null ? "absent" : k.up ? "up" : "down"}`,
        detail:
          k.up === true
            ? `the kernel decapsulates ${k.dev === "sit0" || k.dev === "gre0" ? "IPv6 inside IPv4" : "IPv6 inside IPv6"}${type === "ipip" ? "" : ` (${type.toUpperCase()})`} on ${k.dev} (its fallback device takes any local address)`
            : `tunnelled datagrams are not decapsulated: ip link set ${k.dev} up, or run ${setup}`,
      });
    }
    if (type === "gue") {
      const fou = fouPorts() ?? [];
      for (const af of [4, 6] as const) {
        const mine = fou.find((p) => p.port === port && p.af === af);
        out.push({
          level: mine?.gue === true ? "ok" : "FAIL",
          what: `fou port ${port} over IPv${af} ${mine === undefined ? "absent" : mine.gue ? "gue" : "direct (not gue)"}`,
          detail:
            mine?.gue === true
              ? `the kernel takes GUE over IPv${af} on the director's --tun-port and hands proto_ctype 41 to ${af === 6 ? "ip6tnl0" : "sit0"}`
              : `the director sends GUE over IPv${af} to UDP port ${port}: ip fou add port ${port} gue${af === 6 ? " -6" : ""}`,
        });
      }
    }
    return out;
  }
  const tunDev = type === "ipip" ? TUN_DEVICE6 : TUN_DEVICES[type];
  const hasTun = linkShow(tunDev);
  const stats = dp !== null ? readDecapStats(dp.stats) : null;
  const toward = (given.director ?? []).length > 0 ? (given.director ?? []) : (stats?.sources ?? []);
  out.push(
    ...decapFindings({
      type,
      port,
      alive,
      pid: dp?.proc.pid ?? null,
      tun: tunDev,
      hasTun,
      stats,
      directorSrc: routeSources(toward),
      label: tunnelName6(type),
      setup,
    }),
  );
  if (dp !== null && dp.proc !== st?.decap)
    out.push({
      level: "info",
      what: `${type.toUpperCase()} decapsulator shared with the IPv4 VIP (pid ${dp.proc.pid})`,
      detail: `its header names the inner family, so the IPv4 VIP's decapsulator delivers this VIP's IPv6 datagrams too; undoing the IPv4 VIP stops it: run ${setup} again then`,
    });
  out.push(...sourcesElsewhere(stats?.sources ?? [], toDirector, choice));
  if (hasTun)
    out.push(disableIpv6Finding(tunDev, sysctlOr(`net.ipv6.conf.${tunDev}.disable_ipv6`, 1), "tun"));
  return out;
}
