// Least privilege: what the daemon keeps of root's powers, and the checks on the files that grant
// control over it.
//
// The daemon needs two capabilities for as long as it runs: CAP_NET_RAW for its packet sockets
// (opened again when an interface comes up) and CAP_NET_ADMIN for the nft guard (nft runs as its
// child), SO_RCVBUFFORCE, PACKET_QDISC_BYPASS, and the net sysctls it reads and its children
// write (net_ctl_permissions grants CAP_NET_ADMIN the owner's rights on /proc/sys/net). With
// `--io xdp` it also needs CAP_BPF (programs and maps), CAP_PERFMON (the verifier's pointer
// rules) and CAP_IPC_LOCK (the AF_XDP UMEM is pinned memory). Everything else goes before any
// work is done: src/io/caps.ts re-executes the program with a bounding set of those alone, no
// inheritable or ambient capabilities outside them, and no_new_privs, so that neither the
// daemon's threads nor anything it starts can hold or regain another one.

import { lstatSync, type Stats, statSync } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { CAP, capMask, capNames, processCaps, reexecWithCaps } from "../io/caps.js";
import { announcesBgp } from "./bgp.js";
import type { DaemonOptions } from "./main.js";

/** Set in the environment of the re-executed daemon: the drop happened, do not loop. */
export const CAPS_DROPPED_ENV = "TSVS_CAPS_DROPPED";

/** The capabilities the daemon keeps with these options. */
export function keptCapabilities(
  opts: Pick<DaemonOptions, "io"> & Partial<Pick<DaemonOptions, "bgp" | "config">>,
): number[] {
  const keep: number[] = [CAP.NET_ADMIN, CAP.NET_RAW];
  // The BIRD the daemon starts for its BGP announcement listens on BGP's port, 179.
  if (announcesBgp(opts)) keep.push(CAP.NET_BIND_SERVICE);
  // The verifier refuses an XDP program's packet-pointer comparisons (EACCES) without
  // CAP_PERFMON (bpf_allow_ptr_leaks), as well as the load without CAP_BPF.
  if ((opts.io as string) === "xdp") keep.push(CAP.IPC_LOCK, CAP.PERFMON, CAP.BPF);
  return keep.sort((a, b) => a - b);
}

/**
 * The daemon's first step (before any thread, socket or file of its own): when it holds a
 * capability it does not need, it executes itself again with only the kept ones. Returns when
 * there is nothing to drop (already done, --keep-caps, or nothing beyond the kept set).
 */
export function dropCapabilities(opts: DaemonOptions): void {
  if (!opts.dropCaps || process.env[CAPS_DROPPED_ENV] === "1") return;
  const keep = capMask(keptCapabilities(opts));
  const now = processCaps();
  const extra = (now.permitted | now.effective | now.bounding | now.inheritable | now.ambient) & ~keep;
  if (extra === 0n && now.noNewPrivs) return;
  const argv = [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  reexecWithCaps(keptCapabilities(opts), argv, { ...process.env, [CAPS_DROPPED_ENV]: "1" });
}

/** One log line with what the daemon holds: a deployment check reads it. */
export function logPrivileges(log: Logger, opts: DaemonOptions): void {
  const c = processCaps();
  const keep = capMask(keptCapabilities(opts));
  const data = {
    uid: c.uid,
    effective: capNames(c.effective),
    bounding: capNames(c.bounding),
    noNewPrivs: c.noNewPrivs,
  };
  if (!opts.dropCaps) log.warn(data, "privileges: --keep-caps, every capability kept");
  else if (((c.effective | c.bounding) & ~keep) !== 0n) log.warn(data, "privileges: more than needed");
  else log.info(data, "privileges");
}

/** "0644" */
function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/**
 * A file that grants control over the daemon (the REST token): it must be a regular file of the
 * daemon's user that nobody else may read or write. Returns the reason it is refused, or null.
 */
export function looseFile(path: string, st: Stats = statSync(path)): string | null {
  const uid = process.getuid?.() ?? 0;
  if (!st.isFile()) return `${path} is not a regular file`;
  if (st.uid !== uid) return `${path} belongs to uid ${st.uid}, not to the daemon's (${uid})`;
  if ((st.mode & 0o077) !== 0)
    return `${path} has mode ${octal(st.mode)}: others may read or change it (chmod 600 ${path})`;
  return null;
}

/**
 * The directory of the control socket: whoever may write to it can put another socket in the
 * daemon's place (or remove it). It must belong to the daemon's user or to root, and be writable by
 * nobody else unless sticky (as /tmp: only a file's owner may remove or rename it). Returns the
 * reason it is refused, or null.
 */
export function looseSocketDir(socketPath: string): string | null {
  const dir = dirname(socketPath);
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch {
    return null; // made by the control server, private
  }
  const uid = process.getuid?.() ?? 0;
  if (!st.isDirectory()) return `${dir} (the control socket's directory) is not a directory`;
  if (st.uid !== uid && st.uid !== 0)
    return `${dir} (the control socket's directory) belongs to uid ${st.uid}`;
  const sticky = (st.mode & 0o1000) !== 0;
  if ((st.mode & 0o022) !== 0 && !sticky)
    return `${dir} (the control socket's directory) has mode ${octal(st.mode)}: others may replace the socket`;
  return null;
}
