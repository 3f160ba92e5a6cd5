// Lab and test helpers around iproute2: network namespaces, veth pairs, commands run inside a
// namespace. Synchronous on purpose (setup/teardown code, not the data path). Every name is passed
// to `ip` as its own argv entry (execFileSync, no shell).

import { execFileSync } from "node:child_process";
import { rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { TsvsError } from "../core/errors.js";

export interface ExecResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `ip ARGS…`; throws with ip's stderr on failure. */
export function ip(...args: string[]): string {
  return run("ip", args);
}

/** The network namespaces whose name starts with `prefix`, from `ip netns list` (throws where ip fails). */
export function namespacesWith(prefix = ""): string[] {
  return ip("netns", "list")
    .split("\n")
    .map((l) => l.split(" ")[0])
    .filter((n) => n !== "" && n.startsWith(prefix));
}

/** Runs argv inside namespace ns (`ip netns exec NS …`); throws with stderr on failure. */
export function nsExec(ns: string, argv: readonly string[], opts: { timeoutMs?: number } = {}): string {
  return run("ip", ["netns", "exec", ns, ...argv], opts.timeoutMs);
}

/** As nsExec, but reports the exit status instead of throwing. */
export function nsExecStatus(ns: string, argv: readonly string[], timeoutMs = 30_000): ExecResult {
  try {
    const stdout = execFileSync("ip", ["netns", "exec", ns, ...argv], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
    });
    return { status: 0, stdout, stderr: "" };
  } catch (e) {
    const err = e as { status?: number | null; stdout?: string; stderr?: string };
    return { status: err.status ?? -1, stdout: err.stdout ?? "", stderr: err.stderr ?? String(e) };
  }
}

/** Why namespaces cannot be used here (not root, no `ip`, no netns support), or null when they can. */
export function netnsUnavailableReason(): string | null {
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "needs root (CAP_NET_ADMIN)";
  try {
    execFileSync("ip", ["-V"], { stdio: "ignore" });
  } catch {
    return "the `ip` command (iproute2) is missing";
  }
  const probe = uniqueName("probe");
  try {
    execFileSync("ip", ["netns", "add", probe], { stdio: "ignore" });
  } catch {
    return "`ip netns add` failed (no network namespace support?)";
  }
  try {
    execFileSync("ip", ["netns", "del", probe], { stdio: "ignore" });
  } catch {
    // best effort
  }
  return null;
}

let seq = 0;

/** A namespace or interface base name unique to this process: `tsvs<tag><pid36><seq>` (≤ 15 chars usable). */
export function uniqueName(tag: string): string {
  seq++;
  return `tsvs${tag}${process.pid.toString(36)}${seq.toString(36)}`;
}

export function addNetns(name: string): void {
  ip("netns", "add", name);
  ip("-n", name, "link", "set", "lo", "up");
}

const IPV6_OFF = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"];
/** IPv6 on for the links made later, with no router advertisement to act on and no DAD to wait for. */
const IPV6_ON = ["all", "default"].flatMap((k) => [
  `net.ipv6.conf.${k}.disable_ipv6=0`,
  `net.ipv6.conf.${k}.accept_dad=0`,
  `net.ipv6.conf.${k}.accept_ra=0`,
]);

/**
 * Namespaces for a test topology: leftovers of a killed run with the same names are removed,
 * then each is created with IPv6 off (router solicitations would only add noise), or with
 * `ipv6` on but quiet (no RA, no DAD: an address is usable at once), before any link exists.
 */
export function freshNetns(names: readonly string[], opts: { ipv6?: boolean } = {}): void {
  for (const ns of names) delNetns(ns);
  for (const ns of names) {
    addNetns(ns);
    nsExec(ns, ["sysctl", "-q", "-w", ...(opts.ipv6 === true ? IPV6_ON : IPV6_OFF)]);
  }
}

/**
 * Where `tsvs realserver` keeps its state, per network namespace: a directory named after the
 * namespace's inode (src/realserver/realserver.ts).
 */
export const REALSERVER_STATE_ROOT = "/run/tsvs/realserver";

/**
 * Deletes a namespace with its `tsvs realserver` state directory (a later namespace may be given
 * the inode number); silent when it is already gone (cleanup paths call it unconditionally).
 */
export function delNetns(name: string): void {
  try {
    // A name ip cannot take is no namespace of ours, and must not reach the path below.
    if (/^[\w.-]+$/.test(name)) {
      const ino = statSync(`/run/netns/${name}`).ino;
      rmSync(join(REALSERVER_STATE_ROOT, String(ino)), { recursive: true, force: true });
    }
  } catch {
    // no such namespace: no state either
  }
  try {
    execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
  } catch {
    // already gone
  }
}

export interface VethEnd {
  ns: string;
  ifname: string;
  /** "198.18.0.1/24"-style address to configure, if any. */
  cidr?: string;
}

/**
 * Creates a veth pair with one end in each namespace, optional addresses, both up. Interface names
 * must fit IFNAMSIZ (15 chars); they only need to be unique within their namespace, but the pair is
 * created in the caller's namespace first, so they must not collide there either.
 */
export function addVethPair(a: VethEnd, b: VethEnd, queues = 1): void {
  // Several queues on both ends: a veth's rx queue is its peer's tx queue (the sender's flow hash).
  const q = queues > 1 ? ["numtxqueues", String(queues), "numrxqueues", String(queues)] : [];
  ip(
    "link",
    "add",
    a.ifname,
    "netns",
    a.ns,
    ...q,
    "type",
    "veth",
    "peer",
    "name",
    b.ifname,
    "netns",
    b.ns,
    ...q,
  );
  for (const end of [a, b]) {
    if (end.cidr !== undefined) ip("-n", end.ns, "addr", "add", end.cidr, "dev", end.ifname);
    ip("-n", end.ns, "link", "set", end.ifname, "up");
  }
}

/** The interface's MAC address as "aa:bb:…", read inside the namespace. */
export function linkMac(ns: string, ifname: string): string {
  const info = JSON.parse(ip("-n", ns, "-j", "link", "show", "dev", ifname)) as { address: string }[];
  return info[0].address;
}

/** The kernel's 64-bit link counters for one interface of a namespace. */
export function linkStats(
  ns: string,
  ifname: string,
): { rxPackets: number; rxDropped: number; txPackets: number } {
  const info = JSON.parse(ip("-n", ns, "-j", "-s", "link", "show", "dev", ifname)) as {
    stats64: { rx: { packets: number; dropped: number }; tx: { packets: number } };
  }[];
  const s = info[0].stats64;
  return { rxPackets: s.rx.packets, rxDropped: s.rx.dropped, txPackets: s.tx.packets };
}

function run(cmd: string, args: readonly string[], timeoutMs = 30_000): string {
  try {
    return execFileSync(cmd, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new TsvsError(
      "TSVS_ERR_HOST",
      `${cmd} ${args.join(" ")}: ${(err.stderr ?? "").trim() || err.message}`,
    );
  }
}

/** The processes in a namespace (`ip netns pids`), this one left out; none when it cannot be read. */
export function netnsPids(ns: string): number[] {
  try {
    return ip("netns", "pids", ns)
      .split("\n")
      .map(Number)
      .filter((p) => Number.isInteger(p) && p > 0 && p !== process.pid);
  } catch {
    return [];
  }
}
