// `tsvs realserver setup|doctor|teardown`: prepares (checks, reverts) a real server of the DR and TUN
// methods, in the network namespace it runs in (SPEC §2, "The ARP problem"):
//
//   - arp_ignore = 1 on all and on the RIP interface: ARP is answered only for addresses of the
//     incoming interface, and the VIP lives on lo, so the VIP is never answered;
//   - arp_announce = 2 on all and the RIP interface: ARP requests carry the best local address for
//     the target as sender, never the VIP;
//   - VIP/32 on lo (a wider mask makes its whole subnet local: see maskProblem);
//   - TUN: rp_filter 0 on all and the RIP interface, and the user-space IPIP decapsulator
//     (decap.ts) on a tun device, since this kernel has no ipip module.
//
// The kernel uses max(all, interface) for arp_ignore, arp_announce and rp_filter
// (IN_DEV_ARP_IGNORE / IN_DEV_ARP_ANNOUNCE / IN_DEV_RPFILTER in include/linux/inetdevice.h), so
// doctor reports that effective value. State (values found before setup, the decapsulator's pid)
// is kept per network namespace under /run/tsvs/realserver/<netns inode>/.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileHas, jsPath, type ProcRef, procAlive, spawnInNs, stopProc, waitFor } from "../lab/proc.js";

export type RealserverMethod = "dr" | "tun";
export const TUN_DEVICE = "tsvsipip0";
export const STATE_ROOT = "/run/tsvs/realserver";

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

function ipJson<T>(args: string[]): T {
  return JSON.parse(execFileSync("ip", ["-j", ...args], { encoding: "utf8" }) || "[]") as T;
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

function linkShow(name: string): boolean {
  try {
    execFileSync("ip", ["link", "show", "dev", name], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** The RIP interface: the default route's device, else the first non-lo interface with IPv4. */
export function detectIface(): string | null {
  try {
    const r = ipJson<{ dev?: string }[]>(["-4", "route", "show", "default"]);
    if (r[0]?.dev !== undefined) return r[0].dev;
  } catch {
    // fall through
  }
  return ipv4Addresses().find((a) => a.ifname !== "lo")?.ifname ?? null;
}

function u32(s: string): number {
  const p = s.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new Error(`bad IPv4 address '${s}'`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
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

export function stateDir(): string {
  return join(STATE_ROOT, netnsId());
}

export interface RealserverState {
  vip: string;
  method: RealserverMethod;
  iface: string;
  /** sysctl values found before setup, restored by teardown. */
  saved: Record<string, number>;
  vipAdded: boolean;
  decap: ProcRef | null;
}

function readRsState(): RealserverState | null {
  try {
    return JSON.parse(readFileSync(join(stateDir(), "state.json"), "utf8")) as RealserverState;
  } catch {
    return null;
  }
}

function writeRsState(st: RealserverState): void {
  mkdirSync(stateDir(), { recursive: true });
  writeFileSync(join(stateDir(), "state.json"), `${JSON.stringify(st, null, 2)}\n`);
}

export interface RealserverOptions {
  vip: string;
  method: RealserverMethod;
  iface?: string;
  log?: (line: string) => void;
}

function settingsFor(method: RealserverMethod, iface: string): [string, number][] {
  const s: [string, number][] = [
    ["net.ipv4.conf.all.arp_ignore", 1],
    [`net.ipv4.conf.${iface}.arp_ignore`, 1],
    ["net.ipv4.conf.all.arp_announce", 2],
    [`net.ipv4.conf.${iface}.arp_announce`, 2],
  ];
  if (method === "tun") s.push(["net.ipv4.conf.all.rp_filter", 0], [`net.ipv4.conf.${iface}.rp_filter`, 0]);
  return s;
}

function ifaceOrThrow(iface: string | undefined): string {
  const i = iface ?? detectIface();
  if (i === null) throw new Error("no interface with an IPv4 address: give --iface");
  if (!linkShow(i)) throw new Error(`no interface '${i}' in this network namespace`);
  if (i === "lo") throw new Error("the RIP interface cannot be lo");
  return i;
}

/** Applies the settings (idempotent: a second setup keeps the values saved by the first). */
export async function realserverSetup(opts: RealserverOptions): Promise<RealserverState> {
  const log = opts.log ?? (() => {});
  u32(opts.vip);
  const iface = ifaceOrThrow(opts.iface);
  const prev = readRsState();
  const saved: Record<string, number> = { ...(prev?.saved ?? {}) };
  for (const [key, v] of settingsFor(opts.method, iface)) {
    if (!(key in saved)) saved[key] = readSysctl(key);
    writeSysctl(key, v);
    log(`${key} = ${v}`);
  }
  const addrs = ipv4Addresses().filter((a) => a.local === opts.vip);
  const elsewhere = addrs.filter((a) => a.ifname !== "lo");
  if (elsewhere.length > 0) {
    throw new Error(
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
  let decap = prev?.decap != null && procAlive(prev.decap) ? prev.decap : null;
  const st: RealserverState = { vip: opts.vip, method: opts.method, iface, saved, vipAdded, decap };
  writeRsState(st);
  if (opts.method === "tun" && decap === null) {
    decap = await startDecap(iface);
    st.decap = decap;
    writeRsState(st);
    log(`IPIP decapsulator on ${TUN_DEVICE} (pid ${decap.pid})`);
  }
  if (opts.method === "dr" && decap !== null) {
    await stopProc(decap);
    st.decap = null;
    writeRsState(st);
  }
  return st;
}

async function startDecap(iface: string): Promise<ProcRef> {
  const dir = stateDir();
  const logFile = join(dir, "decap.log");
  rmSync(logFile, { force: true });
  const rips = ipv4Addresses()
    .filter((a) => a.ifname === iface)
    .map((a) => a.local);
  const argv = [
    process.execPath,
    jsPath("src/realserver/decap.js"),
    "--tun",
    TUN_DEVICE,
    "--stats",
    join(dir, "decap-stats.json"),
  ];
  if (rips.length > 0) argv.push("--rip", rips.join(","));
  const p = spawnInNs(null, argv, logFile, "tsvs IPIP decapsulator");
  const ok = await waitFor(() => fileHas(logFile, "ready") || !procAlive(p), 5000);
  if (!ok || !procAlive(p)) {
    await stopProc(p);
    const why = existsSync(logFile) ? readFileSync(logFile, "utf8").trim() : "";
    throw new Error(`IPIP decapsulator did not start${why !== "" ? `: ${why}` : ""}`);
  }
  writeFileSync(join(dir, "decap.pid"), `${p.pid}\n`);
  return p;
}

/** Stops the decapsulator, restores the saved sysctls, removes the VIP if setup added it. */
export async function realserverTeardown(opts: {
  vip?: string;
  log?: (line: string) => void;
}): Promise<void> {
  const log = opts.log ?? (() => {});
  const st = readRsState();
  if (st?.decap != null) {
    await stopProc(st.decap);
    log(`stopped the IPIP decapsulator (pid ${st.decap.pid})`);
  }
  for (const [key, v] of Object.entries(st?.saved ?? {})) {
    try {
      writeSysctl(key, v);
      log(`${key} = ${v} (restored)`);
    } catch {
      // the interface is gone
    }
  }
  const vip = opts.vip ?? st?.vip;
  if (vip !== undefined && (st === null || st.vipAdded)) {
    for (const a of ipv4Addresses().filter((x) => x.local === vip && x.ifname === "lo")) {
      execFileSync("ip", ["addr", "del", `${a.local}/${a.prefixlen}`, "dev", "lo"]);
      log(`removed ${a.local}/${a.prefixlen} from lo`);
    }
  }
  rmSync(stateDir(), { recursive: true, force: true });
}

// ---- doctor ----

export type Level = "ok" | "warn" | "FAIL" | "info";

export interface Finding {
  level: Level;
  what: string;
  detail: string;
}

function eff(key: string, iface: string): { all: number; dev: number; value: number } {
  const all = readSysctl(`net.ipv4.conf.all.${key}`);
  const dev = readSysctl(`net.ipv4.conf.${iface}.${key}`);
  return { all, dev, value: Math.max(all, dev) };
}

/** Every check, in order; a FAIL means the real server will not work for the method. */
export function realserverDoctor(opts: { vip: string; method: RealserverMethod; iface?: string }): Finding[] {
  const out: Finding[] = [];
  u32(opts.vip);
  const iface = ifaceOrThrow(opts.iface);
  const addrs = ipv4Addresses();
  const ripAddrs = addrs.filter((a) => a.ifname === iface);
  let gateway: string | null = null;
  try {
    gateway = ipJson<{ gateway?: string }[]>(["-4", "route", "show", "default"])[0]?.gateway ?? null;
  } catch {
    gateway = null;
  }
  out.push({
    level: ripAddrs.length > 0 ? "info" : "FAIL",
    what: `interface ${iface}`,
    detail:
      ripAddrs.length > 0
        ? `RIP ${ripAddrs.map((a) => `${a.local}/${a.prefixlen}`).join(", ")}; default route ${gateway !== null ? `via ${gateway}` : "none"}`
        : "no IPv4 address: the director cannot reach this server",
  });

  const ai = eff("arp_ignore", iface);
  out.push({
    level: ai.value === 1 || ai.value === 2 ? "ok" : "FAIL",
    what: `arp_ignore all=${ai.all} ${iface}=${ai.dev} → ${ai.value}`,
    detail:
      arpIgnoreMeaning(ai.value) +
      (ai.value === 1 || ai.value === 2
        ? ""
        : ai.value === 8
          ? "; the RIP itself would never be resolved: use 1"
          : `; the VIP on lo would be answered on ${iface}, so the gateway may send client traffic here: use 1`),
  });
  const aa = eff("arp_announce", iface);
  out.push({
    level: aa.value === 2 ? "ok" : aa.value === 1 ? "warn" : "FAIL",
    what: `arp_announce all=${aa.all} ${iface}=${aa.dev} → ${aa.value}`,
    detail:
      arpAnnounceMeaning(aa.value) +
      (aa.value === 2
        ? ""
        : "; ARP requests for replies sent from the VIP may carry the VIP and teach neighbours that it lives here: use 2"),
  });

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

  if (opts.method === "tun") {
    const rp = eff("rp_filter", iface);
    out.push({
      level: rp.value === 1 ? "FAIL" : "ok",
      what: `rp_filter all=${rp.all} ${iface}=${rp.dev} → ${rp.value}`,
      detail: rpFilterMeaning(rp.value) + (rp.value === 1 ? "; use 0 for TUN" : ""),
    });
    const kernelIpip = linkShow("tunl0");
    const hasTun = linkShow(TUN_DEVICE);
    const st = readRsState();
    const alive = st?.decap != null && procAlive(st.decap);
    if (kernelIpip && !alive) {
      out.push({
        level: "info",
        what: "kernel IPIP (tunl0) present",
        detail: "the kernel decapsulates; the VIP must be on tunl0 or lo",
      });
    } else {
      let stats = "";
      try {
        const s = JSON.parse(readFileSync(join(stateDir(), "decap-stats.json"), "utf8")) as Record<
          string,
          number
        >;
        stats = `; received ${s.received}, delivered ${s.delivered}, bad ${s.badOuter + s.badInner}, not for a RIP ${s.notForRip}`;
      } catch {
        // no counters yet
      }
      out.push({
        level: alive && hasTun ? "ok" : "FAIL",
        what: `IPIP decapsulator ${alive ? `pid ${st?.decap?.pid}` : "not running"}, ${TUN_DEVICE} ${hasTun ? "present" : "absent"}`,
        detail:
          alive && hasTun
            ? `user-space decapsulation into ${TUN_DEVICE}${stats}`
            : "tunnelled packets are not decapsulated: run tsvs realserver setup --method tun",
      });
      if (hasTun) {
        const t = eff("rp_filter", TUN_DEVICE);
        out.push({
          level: t.value === 1 ? "FAIL" : "ok",
          what: `rp_filter on ${TUN_DEVICE} → ${t.value}`,
          detail:
            rpFilterMeaning(t.value) +
            (t.value === 1 ? "; decapsulated packets from clients would be dropped" : ""),
        });
      }
    }
  }
  return out;
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
