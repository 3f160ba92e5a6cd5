// `tsvs realserver setup|doctor|teardown`: prepares (checks, reverts) a real server of the DR and TUN
// methods, in the network namespace it runs in (SPEC §2, "The ARP problem"):
//
//   - arp_ignore = 1 on all and on the director-facing interface: ARP is answered only for
//     addresses of the incoming interface, and the VIP lives on lo, so the VIP is never answered;
//   - arp_announce = 2 on all and the director-facing interface: ARP requests carry the best local
//     address for the target as sender, never the VIP;
//   - VIP/32 on lo (a wider mask makes its whole subnet local: see maskProblem);
//   - TUN: rp_filter 0 on all and the director-facing interface, and a decapsulator for the
//     director's tunnel type (--tun-type ipip|gue|gre, GUE with --tun-port): the kernel's device
//     where the kernel has the module (tunl0 for IPIP; a fou port feeding tunl0 for GUE; gre0 for
//     GRE), rp_filter 0 on it, else the user-space decapsulator (decap.ts, any local address) on a
//     tun device (tsvsipip0, tsvsgue0, tsvsgre0) — the kernels tsvs is developed on have none of
//     those modules;
//   - DR with clients routed through another interface than the director's: rp_filter loose (2)
//     on the director-facing interface, where strict filtering drops every client packet.
//
// The director-facing interface comes from the route to --director, --iface, the tunnel sources
// the decapsulator has seen, or is the only interface; with several and no hint, each is treated
// as director-facing (checks.ts, chooseDirectorIface).
//
// The kernel uses max(all, interface) for arp_ignore, arp_announce and rp_filter
// (IN_DEV_ARP_IGNORE / IN_DEV_ARP_ANNOUNCE / IN_DEV_RPFILTER in include/linux/inetdevice.h), so
// doctor reports that effective value. State (values found before setup, the decapsulator's pid)
// is kept per network namespace under /run/tsvs/realserver/<netns inode>/ (state.json; an IPv6 VIP
// has its own, state6.json, and decapsulator: realserver6.ts), with netns.json naming the namespace
// that wrote it by its netns cookie: the kernel gives a deleted namespace's inode number to the next
// one, and a directory left behind by a namespace deleted without a teardown must not pass for the
// new namespace's (claimState).

import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { parseIPv6 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import { AF_UNIX, libc, SO_NETNS_COOKIE, SOCK_CLOEXEC, SOCK_DGRAM, SOL_SOCKET } from "../io/libc.js";
import { REALSERVER_STATE_ROOT } from "../io/netns.js";
import { fileHas, jsPath, type ProcRef, procAlive, spawnInNs, stopProc, waitFor } from "../lab/proc.js";
import {
  chooseDecap,
  chooseDirectorIface,
  type DecapMode,
  type DecapStatsView,
  type DirectorIfaceChoice,
  decapFindings,
  type Finding,
  KERNEL_DEVICE,
  type KernelTunnels,
  type NetnsIdentity,
  type RealserverMethod,
  type RouteTo,
  rpFilterFinding,
  rpFilterMeaning,
  type StateOwner,
  stateOwner,
  type TunnelType,
} from "./checks.js";
import { canonical6 } from "./checks6.js";

export type { DecapMode, Finding, Level, RealserverMethod, TunnelType } from "./checks.js";
export { rpFilterMeaning };
/** The user-space decapsulator's tun device for IPIP (and the name it has always had). */
export const TUN_DEVICE = "tsvsipip0";
/** The user-space decapsulator's tun device per tunnel type. */
export const TUN_DEVICES: Record<TunnelType, string> = { ipip: TUN_DEVICE, gue: "tsvsgue0", gre: "tsvsgre0" };
/** The decapsulator's tun device for an IPv6 VIP (realserver6.ts). */
export const TUN_DEVICE6 = "tsvsip6tnl0";
/** Every tun device of the user-space decapsulators: never a RIP interface. */
export const TUN_DEVICE_NAMES: ReadonlySet<string> = new Set([...Object.values(TUN_DEVICES), TUN_DEVICE6]);

/** What each arp_ignore value does (net/ipv4/arp.c, arp_ignore()). */
export function arpIgnoreMeaning(v: number): string {
  switch (v) {
    case 0:
      return "reply for any local target address, configured on any interface (kernel default)";
    case 1:
      return "reply only if the target address is configured on the incoming interface";
    case 2:
      return "reply only if the target address is configured on the incoming interface and the sender's address is in its subnet";
    case 3:
      return "do not reply for addresses of scope host; only global and link addresses are answered";
    case 4:
    case 5:
    case 6:
    case 7:
      return "reserved: the kernel replies as for 0";
    case 8:
      return "do not reply at all (not even for the RIP)";
    default:
      return "unknown value: the kernel replies as for 0";
  }
}

/** What each arp_announce value does (net/ipv4/arp.c, arp_solicit()). */
export function arpAnnounceMeaning(v: number): string {
  switch (v) {
    case 0:
      return "use any local address as ARP sender, even one of another interface, e.g. the VIP (kernel default)";
    case 1:
      return "try to avoid sender addresses outside the target's subnet on the outgoing interface";
    case 2:
      return "always use the best local address for the target as ARP sender, never the packet's source (the VIP)";
    default:
      return "unknown value: the kernel behaves as for 0";
  }
}

// ---- sysctl and addresses of the current namespace ----

function sysctlPath(key: string): string {
  return `/proc/sys/${key.replaceAll(".", "/")}`;
}

export function readSysctl(key: string): number {
  return Number(readFileSync(sysctlPath(key), "utf8").trim());
}

export function writeSysctl(key: string, v: number): void {
  writeFileSync(sysctlPath(key), String(v));
}

export function ipJson<T>(args: string[]): T {
  // stderr kept from the terminal: "RTNETLINK answers: Network is unreachable" is an answer here.
  return JSON.parse(
    execFileSync("ip", ["-j", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }) || "[]",
  ) as T;
}

interface AddrInfo {
  ifname: string;
  local: string;
  prefixlen: number;
}

export function ipv4Addresses(): AddrInfo[] {
  const links = ipJson<
    { ifname: string; addr_info: { family: string; local: string; prefixlen: number }[] }[]
  >(["-4", "addr", "show"]);
  return links.flatMap((l) =>
    l.addr_info.map((a) => ({ ifname: l.ifname, local: a.local, prefixlen: a.prefixlen })),
  );
}

export function linkShow(name: string): boolean {
  try {
    execFileSync("ip", ["link", "show", "dev", name], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** `ip link show NAME`: whether the device exists and is administratively up; null when absent. */
export function linkIsUp(name: string): boolean | null {
  try {
    const out = execFileSync("ip", ["-j", "link", "show", "dev", name], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    const l = (JSON.parse(out || "[]") as { flags?: string[] }[])[0];
    return (l?.flags ?? []).includes("UP");
  } catch {
    return null;
  }
}

/** Does the kernel have the module for `kind` (ip link type)? Creating a device loads it where it can. */
export function kernelLinkType(kind: string, fallback: string): boolean {
  if (linkShow(fallback)) return true;
  const probe = "tsvsprobe0";
  try {
    execFileSync("ip", ["link", "add", probe, "type", kind], { stdio: "ignore" });
  } catch {
    return false;
  }
  try {
    execFileSync("ip", ["link", "del", probe], { stdio: "ignore" });
  } catch {
    // gone already
  }
  return linkShow(fallback);
}

/** The fou module answers on generic netlink. */
export function kernelFou(): boolean {
  try {
    execFileSync("ip", ["fou", "show"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** What this kernel offers for each tunnel type (a probe may load a module, as `ip link add` does). */
export function kernelTunnels(): KernelTunnels {
  return { ipip: kernelLinkType("ipip", "tunl0"), gre: kernelLinkType("gre", "gre0"), fou: kernelFou() };
}

/**
 * The fou ports configured (`ip fou show`: "port 6080 gue", "port 6080 gue -6" for an IPv6 one), or
 * null without fou.
 */
export function fouPorts(): { port: number; gue: boolean; af: 4 | 6 }[] | null {
  try {
    const out = execFileSync("ip", ["fou", "show"], { encoding: "utf8" });
    return out
      .split("\n")
      .map((l) => /port (\d+)(.*)/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ port: Number(m[1]), gue: /\bgue\b/.test(m[2]), af: /(^|\s)-6\b/.test(m[2]) ? 6 : 4 }));
  } catch {
    return null;
  }
}

/** The default route's device and gateway (where client addresses are routed), or nulls. */
export function defaultRoute(): { dev: string | null; gateway: string | null } {
  try {
    const r = ipJson<{ dev?: string; gateway?: string }[]>(["-4", "route", "show", "default"]);
    return { dev: r[0]?.dev ?? null, gateway: r[0]?.gateway ?? null };
  } catch {
    return { dev: null, gateway: null };
  }
}

/**
 * `ip -j route get ADDR`: the device and source address toward addr, of either family (a director
 * may tunnel over IPv6 to a server of an IPv4 VIP, and over IPv4 to one of an IPv6 VIP).
 */
export function routeGet(addr: string): RouteTo {
  const six = addr.includes(":");
  if (six) {
    if (parseIPv6(addr) === null) throw new TsvsError("TSVS_ERR_USAGE", `bad IPv6 address '${addr}'`);
  } else u32(addr);
  try {
    const r = ipJson<{ type?: string; dev?: string; prefsrc?: string }[]>([
      six ? "-6" : "-4",
      "route",
      "get",
      addr,
    ])[0];
    // An unreachable IPv6 destination is answered with a route of that type (dev lo), not an error.
    if (r?.type === "unreachable" || r?.type === "prohibit" || r?.type === "blackhole")
      return { addr, dev: null, src: null, local: false };
    return { addr, dev: r?.dev ?? null, src: r?.prefsrc ?? null, local: r?.type === "local" };
  } catch {
    return { addr, dev: null, src: null, local: false };
  }
}

/** Interfaces with an IPv4 address, except lo and the decapsulator's tun device. */
export function ipv4Ifaces(addrs = ipv4Addresses()): string[] {
  return [...new Set(addrs.map((a) => a.ifname))].filter((i) => i !== "lo" && !TUN_DEVICE_NAMES.has(i));
}

/** The kernel's count of packets dropped by rp_filter in this namespace (TcpExt IPReversePathFilter). */
export function rpFilterDrops(): number {
  try {
    const lines = readFileSync("/proc/net/netstat", "utf8").split("\n");
    for (let i = 0; i + 1 < lines.length; i++) {
      if (!lines[i].startsWith("TcpExt:") || !lines[i + 1].startsWith("TcpExt:")) continue;
      const k = lines[i].split(" ").indexOf("IPReversePathFilter");
      if (k > 0) return Number(lines[i + 1].split(" ")[k]) || 0;
    }
  } catch {
    // no /proc/net/netstat
  }
  return 0;
}

/** The running (or last) decapsulator's counters (the IPv6 VIP's: decap6-stats.json), or null. */
export function readDecapStats(file = "decap-stats.json"): DecapStatsView | null {
  try {
    const s = JSON.parse(readFileSync(join(ownStateDir(), file), "utf8")) as Partial<DecapStatsView>;
    return {
      received: s.received ?? 0,
      delivered: s.delivered ?? 0,
      badOuter: s.badOuter ?? 0,
      badInner: s.badInner ?? 0,
      notLocal: s.notLocal ?? 0,
      writeErrors: s.writeErrors ?? 0,
      accept: s.accept ?? "host",
      addresses: s.addresses ?? [],
      sources: s.sources ?? [],
      lastNotLocal: s.lastNotLocal ?? null,
      type: s.type ?? "ipip",
      port: s.port ?? 0,
      family: s.family ?? 4,
      receivers: s.receivers ?? [],
    };
  } catch {
    return null;
  }
}

function u32(s: string): number {
  const p = s.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new TsvsError("TSVS_ERR_USAGE", `bad IPv4 address '${s}'`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

/** An address of either family, checked (TSVS_ERR_USAGE naming it otherwise). */
export function checkAddr(a: string): void {
  if (!a.includes(":")) u32(a);
  else if (parseIPv6(a) === null) throw new TsvsError("TSVS_ERR_USAGE", `bad IPv6 address '${a}'`);
}

function inNet(addr: string, net: string, prefixlen: number): boolean {
  if (prefixlen === 0) return true;
  const mask = prefixlen >= 32 ? 0xffffffff : ~(0xffffffff >>> prefixlen) >>> 0;
  return (u32(addr) & mask) >>> 0 === (u32(net) & mask) >>> 0;
}

function netOf(addr: string, prefixlen: number): string {
  const mask = prefixlen >= 32 ? 0xffffffff : ~(0xffffffff >>> prefixlen) >>> 0;
  const v = (u32(addr) & mask) >>> 0;
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}/${prefixlen}`;
}

/**
 * Why a VIP on lo with a mask wider than /32 breaks things, in words, naming what this host would
 * lose (its RIP subnet, its gateway), or "" for /32.
 */
export function maskProblem(
  vip: string,
  prefixlen: number,
  ripAddrs: AddrInfo[],
  gateway: string | null,
): string {
  if (prefixlen >= 32) return "";
  const net = netOf(vip, prefixlen);
  const lines = [
    `VIP ${vip}/${prefixlen} on lo: for an address on a loopback device the kernel installs the whole prefix as a`,
    `local route (fib_add_ifaddr: "local ${net} dev lo" in table local), so every address of ${net} counts as this`,
    "host's own: packets to any of them are looped back to lo instead of leaving, and replies to clients,",
    "the director or the gateway in that network never go out.",
  ];
  const hit = ripAddrs.filter((a) => inNet(a.local, vip, prefixlen) || inNet(vip, a.local, a.prefixlen));
  if (hit.length > 0) {
    lines.push(
      `Here it overlaps the RIP network (${hit.map((a) => `${a.ifname} ${netOf(a.local, a.prefixlen)}`).join(", ")}):`,
      "director↔real-server traffic (DIP, health checks, NAT replies, ARP for the DIP) breaks.",
    );
  }
  if (gateway !== null && inNet(gateway, vip, prefixlen)) {
    lines.push(`The default gateway ${gateway} is inside it: every reply to a client is looped back.`);
  }
  lines.push(`Fix: ip addr del ${vip}/${prefixlen} dev lo; ip addr add ${vip}/32 dev lo`);
  return lines.join("\n");
}

// ---- state ----

export function netnsId(): string {
  return String(statSync("/proc/self/ns/net").ino);
}

/** This namespace's state directory, whoever wrote what is in it (readers go through ownStateDir). */
export function stateDir(): string {
  return join(REALSERVER_STATE_ROOT, netnsId());
}

/** Beside the state: the identity of the namespace that wrote it. */
export const IDENTITY_FILE = "netns.json";
/** The state files setup writes, one per VIP family: what an older tsvs's directory is judged by. */
const STATE_NAMES = ["state.json", "state6.json"];

function netnsCookie(): string | null {
  try {
    const c = libc();
    const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return null;
    try {
      const v = Buffer.alloc(8);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(8, 0);
      if (c.getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, v, len) !== 0 || len.readUInt32LE(0) !== 8)
        return null;
      // Host byte order, little-endian on the ABIs libc() accepts.
      return v.readBigUInt64LE(0).toString();
    } finally {
      c.close(fd);
    }
  } catch {
    // No koffi, or not Linux.
    return null;
  }
}

let identity: NetnsIdentity | null | undefined;

/**
 * This namespace's identity (checks.ts NetnsIdentity), or null where the kernel has no
 * SO_NETNS_COOKIE (before 5.14: getsockopt fails with ENOPROTOOPT) or libc cannot be loaded. Then
 * the state is trusted by inode alone, as before the identity existed: such a kernel has nothing
 * else that tells a namespace from a later one given its inode.
 */
export function netnsIdentity(): NetnsIdentity | null {
  if (identity !== undefined) return identity;
  const cookie = netnsCookie();
  let bootId = "";
  try {
    bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    // no procfs entry: the cookie alone (a reboot empties /run anyway)
  }
  identity = cookie === null ? null : { cookie, bootId };
  return identity;
}

function readIdentity(dir: string): NetnsIdentity | null {
  try {
    const o = JSON.parse(readFileSync(join(dir, IDENTITY_FILE), "utf8")) as Partial<NetnsIdentity>;
    return typeof o.cookie === "string" && typeof o.bootId === "string"
      ? { cookie: o.cookie, bootId: o.bootId }
      : null;
  } catch {
    return null;
  }
}

function writeIdentity(dir: string, id: NetnsIdentity): void {
  writeFileSync(join(dir, IDENTITY_FILE), `${JSON.stringify(id)}\n`);
}

/** The script startDecap runs, relative to the build root. */
const DECAP_JS = "src/realserver/decap.js";

/**
 * p (read from state) is still a decapsulator that setup started for this namespace: alive as
 * recorded (pid and start time), running decap.js with its counters in this namespace's state
 * directory, inside this network namespace. Only then is it signalled: the kernel may have given
 * the pid to another program, and a decapsulator of another namespace is not ours to stop.
 */
export function isOurDecap(p: ProcRef): boolean {
  if (!procAlive(p)) return false;
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0");
  } catch {
    return false;
  }
  // The build root may have moved since (an upgrade): the script's place under it is what counts.
  const script = argv[1] ?? "";
  if (script !== jsPath(DECAP_JS) && !script.endsWith(`/${DECAP_JS}`)) return false;
  const k = argv.indexOf("--stats");
  if (k < 0 || dirname(argv[k + 1] ?? "") !== stateDir()) return false;
  try {
    return readlinkSync(`/proc/${p.pid}/ns/net`) === readlinkSync("/proc/self/ns/net");
  } catch {
    // Unreadable only without ptrace access to it, and then it cannot be signalled either.
    return true;
  }
}

/** Is vip (either family) on lo in this namespace? */
function vipOnLo(vip: string): boolean {
  const want = vip.includes(":") ? canonical6(vip) : vip;
  try {
    const lo = ipJson<{ addr_info?: { local?: string }[] }[]>(["addr", "show", "dev", "lo"]);
    return lo
      .flatMap((l) => l.addr_info ?? [])
      .some((a) => a.local !== undefined && (a.local.includes(":") ? canonical6(a.local) : a.local) === want);
  } catch {
    return false;
  }
}

/** State written by a tsvs that kept no identity: is every state file's decapsulator or VIP here? */
function legacyHere(dir: string, files: string[]): boolean {
  const states = STATE_NAMES.filter((f) => files.includes(f));
  return (
    states.length > 0 &&
    states.every((f) => {
      try {
        const st = JSON.parse(readFileSync(join(dir, f), "utf8")) as { vip?: string; decap?: ProcRef | null };
        return (st.decap != null && isOurDecap(st.decap)) || (typeof st.vip === "string" && vipOnLo(st.vip));
      } catch {
        return false;
      }
    })
  );
}

export interface StateClaim {
  owner: StateOwner;
  /** What was found and done, for setup's and teardown's log and doctor; null when all is as usual. */
  note: string | null;
}

let claimed: { ns: string; claim: StateClaim } | null = null;

/**
 * Whose the state directory of this namespace's inode is (checks.ts stateOwner), decided once per
 * process before anything reads it. A deleted namespace's is removed unread, so that setup starts
 * afresh, doctor sees nothing configured and teardown signals no pid and restores no value of it;
 * state of an older tsvs found to be this namespace's is given its identity.
 */
export function claimState(): StateClaim {
  const ns = netnsId();
  if (claimed?.ns === ns) return claimed.claim;
  const dir = stateDir();
  let files: string[] = [];
  try {
    files = readdirSync(dir);
  } catch {
    // no directory
  }
  const current = netnsIdentity();
  const stored = readIdentity(dir);
  const hasFiles = files.length > 0;
  const owner = stateOwner({
    hasFiles,
    stored,
    current,
    legacyHere: hasFiles && current !== null && stored === null && legacyHere(dir, files),
  });
  let note: string | null = null;
  if (owner === "stale") {
    rmSync(dir, { recursive: true, force: true });
    const why =
      stored === null
        ? "it records no namespace, and neither its decapsulator nor its VIP is here"
        : `netns cookie ${stored.cookie}${stored.bootId !== current?.bootId ? " of another boot" : ""}, this namespace's is ${current?.cookie}`;
    note = `removed the state in ${dir} of a deleted network namespace that had this one's inode (${why}): none of it was acted on`;
  } else if (owner === "legacy" && current !== null) {
    writeIdentity(dir, current);
    note = `state in ${dir} written by an earlier tsvs taken as this namespace's (its decapsulator or VIP is here); netns cookie ${current.cookie} recorded beside it`;
  }
  const claim = { owner, note };
  claimed = { ns, claim };
  return claim;
}

/** The state directory, once claimState has cleared a dead namespace's state out of it. */
function ownStateDir(): string {
  claimState();
  return stateDir();
}

export interface RealserverState {
  vip: string;
  method: RealserverMethod;
  /** The first director-facing interface (all of them in `ifaces`). */
  iface: string;
  ifaces: string[];
  /** --director and --iface as given to setup: doctor uses them when not given again. */
  director: string[];
  ifaceGiven: string | null;
  /** The decapsulator's fixed address list (--tunnel-local), null = every local address. */
  tunnelLocal: string[] | null;
  /** TUN: the director's tunnel type and GUE port (absent in state of older versions: ipip). */
  tunType?: TunnelType;
  tunPort?: number;
  /** TUN decapsulated by the kernel: what setup changed there (undone by teardown). */
  kernel?: KernelSetup | null;
  /** sysctl values found before setup, restored by teardown. */
  saved: Record<string, number>;
  vipAdded: boolean;
  decap: ProcRef | null;
  /** GUE/GRE: the IPv6 VIP's decapsulator, which delivers this VIP's datagrams too (not ours to stop). */
  sharedDecap?: ProcRef | null;
}

/** A state file of this namespace (state.json for an IPv4 VIP, state6.json for an IPv6 one), or null. */
export function readStateFile<T>(file: string): T | null {
  try {
    return JSON.parse(readFileSync(join(ownStateDir(), file), "utf8")) as T;
  } catch {
    return null;
  }
}

/** Writes a state file, the namespace's identity first: no reader sees state without it. */
export function writeStateFile(file: string, st: unknown): void {
  const dir = ownStateDir();
  mkdirSync(dir, { recursive: true });
  const id = netnsIdentity();
  if (id !== null) writeIdentity(dir, id);
  writeFileSync(join(dir, file), `${JSON.stringify(st, null, 2)}\n`);
}

/** Removes these files of the state directory, and the directory once nothing else is left in it. */
export function removeStateFiles(files: string[]): void {
  const dir = ownStateDir();
  for (const f of files) rmSync(join(dir, f), { force: true });
  try {
    const left = readdirSync(dir);
    if (left.every((f) => f === IDENTITY_FILE)) rmSync(dir, { recursive: true, force: true });
  } catch {
    // no directory
  }
}

const readRsState = (): RealserverState | null => readStateFile<RealserverState>("state.json");
const writeRsState = (st: RealserverState): void => writeStateFile("state.json", st);
/** What an IPv4 VIP's setup keeps in the state directory. */
const STATE_FILES = ["state.json", "decap.pid", "decap.log", "decap-stats.json"];

/** What setup did to the kernel's tunnel devices. */
export interface KernelSetup {
  /** The device the tunnelled datagrams arrive on (tunl0, gre0). */
  dev: string;
  /** It was down before setup (teardown takes it down again). */
  wasDown: boolean;
  /** GUE: the fou port setup added (`ip fou add port N gue`), or null. */
  fouPort: number | null;
}

export interface RealserverOptions {
  vip: string;
  method: RealserverMethod;
  /** TUN: the director's --tun-type (default ipip) and, for GUE, its --tun-port. */
  tunType?: TunnelType;
  tunPort?: number;
  /** TUN: kernel devices, the user-space decapsulator, or the kernel's where it has the modules (default). */
  decap?: DecapMode;
  /** The director-facing interface. */
  iface?: string;
  /** Addresses of the director (DIP, tunnel source): the interface is the route toward them. */
  director?: string[];
  /** TUN: accept IPIP only to these addresses (default: every local address, followed). */
  tunnelLocal?: string[];
  log?: (line: string) => void;
}

/** The director-facing interface(s) for these options (and, for doctor, what setup was given). */
export function directorIface(
  opts: { iface?: string; director?: string[] },
  method: RealserverMethod,
  addrs = ipv4Addresses(),
): DirectorIfaceChoice {
  return directorIfaceAmong(opts, method, ipv4Ifaces(addrs), 4);
}

/**
 * The director-facing interface(s) among `ifaces` (those with an address of the VIP's family):
 * --iface checked, the TUN tunnel sources read from that family's decapsulator.
 */
export function directorIfaceAmong(
  opts: { iface?: string; director?: string[] },
  method: RealserverMethod,
  ifaces: string[],
  family: 4 | 6,
): DirectorIfaceChoice {
  if (opts.iface !== undefined) {
    if (opts.iface === "lo")
      throw new TsvsError("TSVS_ERR_USAGE", "the director-facing interface cannot be lo");
    if (!linkShow(opts.iface))
      throw new TsvsError("TSVS_ERR_HOST", `no interface '${opts.iface}' in this network namespace`);
  }
  const stats =
    method === "tun" ? readDecapStats(family === 6 ? "decap6-stats.json" : "decap-stats.json") : null;
  return chooseDirectorIface({
    director: (opts.director ?? []).map(routeGet),
    iface: opts.iface ?? null,
    tunnel: (stats?.sources ?? []).map(routeGet),
    ifaces,
    family,
  });
}

/** doctor's hints: --iface/--director when given, else those setup was given (its state). */
export function givenHints(
  opts: { iface?: string; director?: string[] },
  st: { ifaceGiven: string | null; director: string[] } | null,
): { iface?: string; director?: string[] } {
  return opts.iface !== undefined || (opts.director ?? []).length > 0
    ? { iface: opts.iface, director: opts.director }
    : { iface: st?.ifaceGiven ?? undefined, director: st?.director };
}

/** The local addresses the routes toward these addresses leave from (where the director tunnels to). */
export function routeSources(toward: string[]): string[] {
  return toward
    .map(routeGet)
    .map((r) => r.src)
    .filter((a): a is string => a !== null);
}

function settingsFor(
  method: RealserverMethod,
  ifaces: string[],
  clientDev: string | null,
): [string, number, string][] {
  const s: [string, number, string][] = [];
  for (const scope of ["all", ...ifaces]) {
    s.push([`net.ipv4.conf.${scope}.arp_ignore`, 1, ""], [`net.ipv4.conf.${scope}.arp_announce`, 2, ""]);
  }
  if (method === "tun")
    for (const scope of ["all", ...ifaces]) s.push([`net.ipv4.conf.${scope}.rp_filter`, 0, ""]);
  if (method === "dr") {
    for (const i of ifaces) {
      if (clientDev === null || clientDev === i) continue;
      const all = readSysctl("net.ipv4.conf.all.rp_filter");
      const dev = readSysctl(`net.ipv4.conf.${i}.rp_filter`);
      if (Math.max(all, dev) === 1) {
        s.push([
          `net.ipv4.conf.${i}.rp_filter`,
          2,
          ` (clients are routed via ${clientDev}: strict filtering on ${i} would drop their packets)`,
        ]);
      }
    }
  }
  return s;
}

/** The tunnel type and GUE port of the options, checked. */
export function tunnelOf(opts: { tunType?: TunnelType; tunPort?: number }): {
  type: TunnelType;
  port: number;
} {
  const type = opts.tunType ?? "ipip";
  const port = opts.tunPort ?? 0;
  if (type === "gue" && (!Number.isInteger(port) || port < 1 || port > 65535))
    throw new TsvsError("TSVS_ERR_USAGE", "--tun-type gue needs --tun-port (the director's, 1..65535)");
  if (type !== "gue" && opts.tunPort !== undefined)
    throw new TsvsError("TSVS_ERR_USAGE", `--tun-port goes with --tun-type gue, not ${type}`);
  return { type, port: type === "gue" ? port : 0 };
}

/** Applies the settings (idempotent: a second setup keeps the values saved by the first). */
export async function realserverSetup(opts: RealserverOptions): Promise<RealserverState> {
  const log = opts.log ?? (() => {});
  u32(opts.vip);
  // IPv6 tunnel ends too: the decapsulator takes IPv4 inside IPv6 (next header 4) as well.
  for (const a of opts.tunnelLocal ?? []) checkAddr(a);
  const { type, port } = tunnelOf(opts);
  // Decided before anything changes: --decap kernel on a kernel without the module stops here.
  const how = opts.method === "tun" ? chooseDecap(type, opts.decap ?? "auto", kernelTunnels()) : null;
  noteClaim(log);
  const choice = directorIface(opts, opts.method);
  const ifaces = choice.ifaces;
  log(`director-facing interface ${ifaces.join(", ")}: ${choice.detail}`);
  const clientDev = defaultRoute().dev;
  const prev = readRsState();
  const saved: Record<string, number> = { ...(prev?.saved ?? {}) };
  const set = (key: string, v: number, why = ""): void => {
    if (!(key in saved)) saved[key] = readSysctl(key);
    writeSysctl(key, v);
    log(`${key} = ${v}${why}`);
  };
  for (const [key, v, why] of settingsFor(opts.method, ifaces, clientDev)) set(key, v, why);
  const addrs = ipv4Addresses().filter((a) => a.local === opts.vip);
  const elsewhere = addrs.filter((a) => a.ifname !== "lo");
  if (elsewhere.length > 0) {
    throw new TsvsError(
      "TSVS_ERR_HOST",
      `VIP ${opts.vip} is configured on ${elsewhere.map((a) => a.ifname).join(", ")}: with arp_ignore=1 that interface answers ARP for it; remove it there`,
    );
  }
  let vipAdded = prev?.vipAdded ?? false;
  for (const a of addrs) {
    if (a.prefixlen !== 32) {
      execFileSync("ip", ["addr", "del", `${a.local}/${a.prefixlen}`, "dev", "lo"]);
      log(`removed ${a.local}/${a.prefixlen} from lo (a mask wider than /32 makes its whole subnet local)`);
    }
  }
  if (!addrs.some((a) => a.prefixlen === 32)) {
    execFileSync("ip", ["addr", "add", `${opts.vip}/32`, "dev", "lo"]);
    vipAdded = true;
    log(`added ${opts.vip}/32 on lo`);
  }
  execFileSync("ip", ["link", "set", "lo", "up"]);
  const tunnelLocal = opts.tunnelLocal !== undefined && opts.tunnelLocal.length > 0 ? opts.tunnelLocal : null;
  if (how !== null) log(`${type.toUpperCase()} decapsulation: ${how.detail}`);
  // The pid of an earlier setup's decapsulator may be another program's by now.
  let decap = prev?.decap != null && isOurDecap(prev.decap) ? prev.decap : null;
  // A decapsulator started for another type, port or address list is replaced (e.g. the RIP of an
  // earlier setup); none runs for DR or where the kernel decapsulates.
  const sameDecap =
    JSON.stringify(prev?.tunnelLocal ?? null) === JSON.stringify(tunnelLocal) &&
    (prev?.tunType ?? "ipip") === type &&
    (prev?.tunPort ?? 0) === port;
  if (decap !== null && (how?.how !== "user" || !sameDecap)) {
    await stopDecap(decap, (prev?.tunType ?? "ipip").toUpperCase(), log);
    decap = null;
  }
  // Kernel devices of an earlier setup that this one does not use any more are put back.
  let kernel = prev?.kernel ?? null;
  const sameKernel =
    kernel !== null &&
    kernel.dev === KERNEL_DEVICE[type] &&
    kernel.fouPort === (type === "gue" ? port : null);
  if (kernel !== null && (how?.how !== "kernel" || !sameKernel)) {
    undoKernel(kernel, log);
    kernel = null;
  }
  const st: RealserverState = {
    vip: opts.vip,
    method: opts.method,
    iface: ifaces[0],
    ifaces,
    director: opts.director ?? [],
    ifaceGiven: opts.iface ?? null,
    tunnelLocal,
    tunType: opts.method === "tun" ? type : undefined,
    tunPort: opts.method === "tun" ? port : undefined,
    kernel,
    saved,
    vipAdded,
    decap,
  };
  writeRsState(st);
  if (how?.how === "kernel" && kernel === null) {
    kernel = setupKernel(type, port, log);
    st.kernel = kernel;
    writeRsState(st);
  }
  if (kernel !== null)
    set(`net.ipv4.conf.${kernel.dev}.rp_filter`, 0, " (decapsulated datagrams arrive here)");
  const shared = how?.how === "user" && decap === null ? sharedDecap("state6.json", type, port) : null;
  st.sharedDecap = shared?.proc ?? null;
  if (shared !== null)
    log(
      `${type.toUpperCase()} decapsulation by the IPv6 VIP's decapsulator (pid ${shared.proc.pid}), which delivers IPv4 datagrams too`,
    );
  else if (how?.how === "user" && decap === null) {
    decap = await startDecap({ type, port, tunnelLocal, family: 4 });
    st.decap = decap;
    writeRsState(st);
    log(
      `${type.toUpperCase()} decapsulator on ${TUN_DEVICES[type]} (pid ${decap.pid})${type === "gue" ? `, UDP port ${port}` : ""}, accepting ${tunnelLocal === null ? "every local address" : tunnelLocal.join(", ")}`,
    );
  }
  st.saved = saved;
  writeRsState(st);
  return st;
}

/** The kernel's devices for `type`: a fou port for GUE, the fallback device up. */
function setupKernel(type: TunnelType, port: number, log: (line: string) => void): KernelSetup {
  const dev = KERNEL_DEVICE[type];
  let fouPort: number | null = null;
  if (type === "gue" && !(fouPorts() ?? []).some((p) => p.port === port && p.af === 4)) {
    execFileSync("ip", ["fou", "add", "port", String(port), "gue"], { stdio: "ignore" });
    fouPort = port;
    log(`ip fou add port ${port} gue (fou hands the inner datagrams to ${dev})`);
  }
  const wasDown = linkIsUp(dev) !== true;
  if (wasDown) {
    execFileSync("ip", ["link", "set", dev, "up"], { stdio: "ignore" });
    log(
      `ip link set ${dev} up (the kernel's fallback ${type === "gre" ? "GRE" : "IPIP"} device takes tunnelled datagrams to any local address)`,
    );
  }
  return { dev, wasDown, fouPort };
}

function undoKernel(k: KernelSetup, log: (line: string) => void): void {
  if (k.fouPort !== null) {
    try {
      execFileSync("ip", ["fou", "del", "port", String(k.fouPort)], { stdio: "ignore" });
      log(`ip fou del port ${k.fouPort}`);
    } catch {
      // already gone
    }
  }
  if (k.wasDown) {
    try {
      execFileSync("ip", ["link", "set", k.dev, "down"], { stdio: "ignore" });
      log(`ip link set ${k.dev} down`);
    } catch {
      // the module went away
    }
  }
}

/**
 * Starts the user-space decapsulator in the background for a VIP of `family`: files decap.* for an
 * IPv4 VIP, decap6.* for an IPv6 one. Both may run for IPIP (they read disjoint protocols); a GUE or
 * GRE one delivers both families (its header names the inner one), on the type's tun device, so a
 * dual-stack server runs one of those (sharedDecap).
 */
export async function startDecap(o: {
  type: TunnelType;
  port: number;
  tunnelLocal: string[] | null;
  family: 4 | 6;
}): Promise<ProcRef> {
  const dir = ownStateDir();
  const base = o.family === 6 ? "decap6" : "decap";
  const logFile = join(dir, `${base}.log`);
  const statsFile = join(dir, `${base}-stats.json`);
  mkdirSync(dir, { recursive: true });
  rmSync(logFile, { force: true });
  rmSync(statsFile, { force: true });
  const argv = [
    process.execPath,
    jsPath(DECAP_JS),
    "--type",
    o.type,
    "--family",
    String(o.family),
    "--tun",
    o.family === 6 && o.type === "ipip" ? TUN_DEVICE6 : TUN_DEVICES[o.type],
    "--stats",
    statsFile,
  ];
  if (o.type === "gue") argv.push("--port", String(o.port));
  if (o.tunnelLocal !== null) argv.push("--local", o.tunnelLocal.join(","));
  const name = o.family === 6 && o.type === "ipip" ? "IPv6-in-IP" : o.type.toUpperCase();
  const p = spawnInNs(null, argv, logFile, `tsvs ${name} decapsulator`);
  const ok = await waitFor(() => fileHas(logFile, "ready") || !procAlive(p), 5000);
  if (!ok || !procAlive(p)) {
    await stopProc(p);
    const why = existsSync(logFile) ? readFileSync(logFile, "utf8").trim() : "";
    throw new TsvsError("TSVS_ERR_HOST", `${name} decapsulator did not start${why !== "" ? `: ${why}` : ""}`);
  }
  writeFileSync(join(dir, `${base}.pid`), `${p.pid}\n`);
  return p;
}

/**
 * The other VIP family's running GUE or GRE decapsulator of this type and port, which delivers this
 * family's datagrams too (decap.ts): a dual-stack server shares it rather than bind the port (or
 * read protocol 47) twice. `otherState`: state.json or state6.json. null for IPIP or none.
 */
export function sharedDecap(
  otherState: string,
  type: TunnelType,
  port: number,
): { proc: ProcRef; stats: string } | null {
  if (type === "ipip") return null;
  const o = readStateFile<{ decap?: ProcRef | null; tunType?: TunnelType; tunPort?: number }>(otherState);
  const p = o?.decap;
  if (p == null || !isOurDecap(p) || o?.tunType !== type || (type === "gue" && o.tunPort !== port))
    return null;
  return { proc: p, stats: otherState === "state6.json" ? "decap6-stats.json" : "decap-stats.json" };
}

let noted = false;

/** Logs what claimState found, when it is worth saying (once per process: teardown runs per family). */
export function noteClaim(log: (line: string) => void): void {
  const c = claimState();
  if (c.note !== null && !noted) log(c.note);
  noted = true;
}

/** What doctor says of claimState's finding, if anything. */
export function claimFinding(): Finding[] {
  const c = claimState();
  if (c.note === null) return [];
  return [
    {
      level: "info",
      what: c.owner === "stale" ? "stale state removed" : "state of an earlier tsvs",
      detail: c.note,
    },
  ];
}

/** Stops a decapsulator named by state if it still is one (isOurDecap), else leaves the pid alone. */
export async function stopDecap(p: ProcRef, name: string, log: (line: string) => void): Promise<void> {
  if (isOurDecap(p)) {
    await stopProc(p);
    log(`stopped the ${name} decapsulator (pid ${p.pid})`);
  } else if (procAlive(p)) {
    log(`pid ${p.pid} is no longer the ${name} decapsulator: not signalled`);
  }
}

/** Writes back the values setup found, those that differ now (an interface gone is skipped). */
export function restoreSysctls(saved: Record<string, number>, log: (line: string) => void): void {
  for (const [key, v] of Object.entries(saved)) {
    try {
      if (readSysctl(key) === v) continue;
      writeSysctl(key, v);
      log(`${key} = ${v} (restored)`);
    } catch {
      // the interface is gone
    }
  }
}

/** Stops the decapsulator, restores the saved sysctls, removes the VIP if setup added it. */
export async function realserverTeardown(opts: {
  vip?: string;
  log?: (line: string) => void;
}): Promise<void> {
  const log = opts.log ?? (() => {});
  noteClaim(log);
  const st = readRsState();
  if (st?.decap != null) await stopDecap(st.decap, (st.tunType ?? "ipip").toUpperCase(), log);
  if (st?.kernel != null) undoKernel(st.kernel, log);
  restoreSysctls(st?.saved ?? {}, log);
  const vip = opts.vip ?? st?.vip;
  if (vip !== undefined && (st === null || st.vipAdded)) {
    for (const a of ipv4Addresses().filter((x) => x.local === vip && x.ifname === "lo")) {
      execFileSync("ip", ["addr", "del", `${a.local}/${a.prefixlen}`, "dev", "lo"]);
      log(`removed ${a.local}/${a.prefixlen} from lo`);
    }
  }
  removeStateFiles(STATE_FILES);
}

// ---- doctor ----

function eff(key: string, iface: string): { all: number; dev: number; value: number } {
  const all = readSysctl(`net.ipv4.conf.all.${key}`);
  const dev = readSysctl(`net.ipv4.conf.${iface}.${key}`);
  return { all, dev, value: Math.max(all, dev) };
}

export interface DoctorOptions {
  vip: string;
  method: RealserverMethod;
  iface?: string;
  director?: string[];
  /** TUN: the director's tunnel type and GUE port (default: what setup was given, else ipip). */
  tunType?: TunnelType;
  tunPort?: number;
}

/**
 * Every check, in order; a FAIL means the real server will not work for the method. Without
 * --iface/--director, doctor uses those setup was given, then the tunnel sources seen.
 */
export function realserverDoctor(opts: DoctorOptions): Finding[] {
  const out: Finding[] = [];
  u32(opts.vip);
  out.push(...claimFinding());
  const st = readRsState();
  const given = givenHints(opts, st);
  const addrs = ipv4Addresses();
  const choice = directorIface(given, opts.method, addrs);
  const toDirector = new Set(choice.ifaces);
  const others = ipv4Ifaces(addrs).filter((i) => !toDirector.has(i));
  const ifaces = [...choice.ifaces, ...others];
  const ripAddrs = addrs.filter((a) => a.ifname !== "lo" && a.ifname !== TUN_DEVICE);
  const { dev: clientDev, gateway } = defaultRoute();
  const route = `default route ${gateway !== null ? `via ${gateway} ` : ""}${clientDev !== null ? `dev ${clientDev}` : "none"}`;
  for (const i of ifaces) {
    const mine = addrs.filter((a) => a.ifname === i);
    const role = toDirector.has(i) ? "director-facing " : "";
    out.push({
      level: mine.length === 0 ? "FAIL" : toDirector.has(i) && choice.how === "ambiguous" ? "warn" : "info",
      what: `${role}interface ${i}`,
      detail:
        mine.length === 0
          ? "no IPv4 address: the director cannot reach this server"
          : `RIP ${mine.map((a) => `${a.local}/${a.prefixlen}`).join(", ")}; ${route}${toDirector.has(i) ? `; ${choice.detail}` : ""}`,
    });
  }

  for (const i of ifaces) {
    const ai = eff("arp_ignore", i);
    out.push({
      level: ai.value === 1 || ai.value === 2 ? "ok" : "FAIL",
      what: `arp_ignore all=${ai.all} ${i}=${ai.dev} → ${ai.value}`,
      detail:
        arpIgnoreMeaning(ai.value) +
        (ai.value === 1 || ai.value === 2
          ? ""
          : ai.value === 8
            ? "; the RIP itself would never be resolved: use 1"
            : `; the VIP on lo would be answered on ${i}, so the gateway may send client traffic here: use 1`),
    });
  }
  for (const i of ifaces) {
    const aa = eff("arp_announce", i);
    out.push({
      level: aa.value === 2 ? "ok" : aa.value === 1 ? "warn" : "FAIL",
      what: `arp_announce all=${aa.all} ${i}=${aa.dev} → ${aa.value}`,
      detail:
        arpAnnounceMeaning(aa.value) +
        (aa.value === 2
          ? ""
          : "; ARP requests for replies sent from the VIP may carry the VIP and teach neighbours that it lives here: use 2"),
    });
  }

  const onLo = addrs.filter((a) => a.local === opts.vip && a.ifname === "lo");
  const elsewhere = addrs.filter((a) => a.local === opts.vip && a.ifname !== "lo");
  if (onLo.length === 0) {
    out.push({
      level: "FAIL",
      what: `VIP ${opts.vip} not on lo`,
      detail:
        "packets the director forwards to the VIP are not local here and are dropped: ip addr add VIP/32 dev lo",
    });
  }
  for (const a of onLo) {
    const why = maskProblem(opts.vip, a.prefixlen, ripAddrs, gateway);
    out.push(
      why === ""
        ? {
            level: "ok",
            what: `VIP ${opts.vip}/32 on lo`,
            detail: "local for the kernel, never answered in ARP",
          }
        : { level: "FAIL", what: `VIP ${opts.vip}/${a.prefixlen} on lo: mask wider than /32`, detail: why },
    );
  }
  for (const a of elsewhere) {
    out.push({
      level: "FAIL",
      what: `VIP ${opts.vip}/${a.prefixlen} on ${a.ifname}`,
      detail: `${a.ifname} answers ARP for addresses configured on it (whatever arp_ignore): the VIP must be on lo only`,
    });
  }

  const rpDrops = rpFilterDrops();
  for (const i of ifaces) {
    const rp = eff("rp_filter", i);
    out.push(
      rpFilterFinding({
        method: opts.method,
        ifname: i,
        all: rp.all,
        dev: rp.dev,
        director: toDirector.has(i),
        clientDev,
        rpDrops,
      }),
    );
  }

  if (opts.method === "tun") out.push(...tunFindings(opts, st, given, toDirector, choice));
  return out;
}

/** The TUN checks for the director's tunnel type: the kernel's device, or the user-space decapsulator. */
function tunFindings(
  opts: DoctorOptions,
  st: RealserverState | null,
  given: { iface?: string; director?: string[] },
  toDirector: Set<string>,
  choice: DirectorIfaceChoice,
): Finding[] {
  const out: Finding[] = [];
  const type = opts.tunType ?? st?.tunType ?? "ipip";
  const port = opts.tunPort ?? (type === "gue" ? (st?.tunType === "gue" ? (st.tunPort ?? 0) : 0) : 0);
  const name = type.toUpperCase();
  const tunDev = TUN_DEVICES[type];
  // A GUE/GRE decapsulator shared with the IPv6 VIP (its pid and stats file are that VIP's).
  const shared =
    st?.decap == null && st?.sharedDecap != null && isOurDecap(st.sharedDecap) ? st.sharedDecap : null;
  const proc = shared ?? st?.decap ?? null;
  const alive = proc !== null && isOurDecap(proc);
  const kdev = KERNEL_DEVICE[type];
  const kUp = linkIsUp(kdev);
  // The kernel decapsulates: setup chose it, or its device is up and no decapsulator runs.
  if (!alive && (st?.kernel != null || kUp === true)) {
    out.push({
      level: kUp === true ? "ok" : "FAIL",
      what: `kernel ${name}: ${kdev} ${kUp === null ? "absent" : kUp ? "up" : "down"}`,
      detail:
        kUp === true
          ? `the kernel decapsulates ${name} on ${kdev} (its fallback device takes any local address); the VIP must be on lo or ${kdev}`
          : `tunnelled datagrams are not decapsulated: ip link set ${kdev} up, or run tsvs realserver setup --method tun --tun-type ${type}`,
    });
    if (type === "gue") {
      const fou = fouPorts();
      const mine = (fou ?? []).find((p) => p.port === port && p.af === 4);
      out.push({
        level: mine?.gue === true ? "ok" : "FAIL",
        what: `fou port ${port} ${mine === undefined ? "absent" : mine.gue ? "gue" : "direct (not gue)"}`,
        detail:
          mine?.gue === true
            ? "the kernel takes GUE on the director's --tun-port and hands the inner datagram to IPIP"
            : `the director sends GUE to UDP port ${port}: ip fou add port ${port} gue`,
      });
    }
    if (kUp !== null) {
      const t = eff("rp_filter", kdev);
      out.push({
        level: t.value === 1 ? "FAIL" : "ok",
        what: `rp_filter on ${kdev} → ${t.value}`,
        detail:
          rpFilterMeaning(t.value) +
          (t.value === 1 ? "; decapsulated packets from clients would be dropped" : ""),
      });
    }
    return out;
  }
  const hasTun = linkShow(tunDev);
  const stats = alive ? readDecapStats(shared !== null ? "decap6-stats.json" : "decap-stats.json") : null;
  // The addresses the director tunnels to: the route source toward it (given, or seen).
  const toward = (given.director ?? []).length > 0 ? (given.director ?? []) : (stats?.sources ?? []);
  const directorSrc = routeSources(toward);
  // The running decapsulator may be of another type (its own tun device).
  const running = stats?.type ?? st?.tunType ?? "ipip";
  out.push(
    ...decapFindings({
      type,
      port,
      alive,
      pid: proc?.pid ?? null,
      tun: tunDev,
      hasTun: hasTun || (alive && running !== type && linkShow(TUN_DEVICES[running])),
      stats,
      directorSrc,
    }),
  );
  out.push(...sourcesElsewhere(stats?.sources ?? [], toDirector, choice));
  if (hasTun) {
    const t = eff("rp_filter", tunDev);
    out.push({
      level: t.value === 1 ? "FAIL" : "ok",
      what: `rp_filter on ${tunDev} → ${t.value}`,
      detail:
        rpFilterMeaning(t.value) +
        (t.value === 1 ? "; decapsulated packets from clients would be dropped" : ""),
    });
  }
  return out;
}

/** A warning when the tunnel sources seen are routed through another interface than the director-facing one(s). */
export function sourcesElsewhere(
  sources: string[],
  toDirector: Set<string>,
  choice: DirectorIfaceChoice,
): Finding[] {
  const seen = sources.map(routeGet).filter((r) => r.dev !== null && !toDirector.has(r.dev));
  if (seen.length === 0) return [];
  return [
    {
      level: "warn",
      what: `tunnelled packets come in through ${[...new Set(seen.map((r) => r.dev))].join(", ")}`,
      detail: `tunnel sources ${seen.map((r) => `${r.addr} (via ${r.dev})`).join(", ")} are not routed through the interface checked as director-facing (${choice.ifaces.join(", ")}): run doctor with --director ${seen[0].addr}`,
    },
  ];
}

export function formatFindings(vip: string, method: RealserverMethod, findings: Finding[]): string {
  const lines = [`tsvs realserver doctor: VIP ${vip}, method ${method.toUpperCase()}`];
  for (const f of findings) {
    lines.push(`${f.level.padEnd(5)} ${f.what}`);
    for (const d of f.detail.split("\n")) lines.push(`      ${d}`);
  }
  const bad = findings.filter((f) => f.level === "FAIL").length;
  const warn = findings.filter((f) => f.level === "warn").length;
  lines.push(
    bad === 0
      ? `all good${warn > 0 ? ` (${warn} warning${warn > 1 ? "s" : ""})` : ""}`
      : `${bad} problem${bad > 1 ? "s" : ""} found`,
  );
  return `${lines.join("\n")}\n`;
}
