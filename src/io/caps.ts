// The process's capabilities (capabilities(7)) and how the daemon gives up the ones it does not
// need.
//
// Capabilities belong to threads, and capset(2) changes only the calling one: a Node process
// already runs V8's and libuv's threads when the first line of JavaScript runs, so no in-process
// call can take a capability from all of them. execve(2) can: it leaves one thread, whose sets
// are computed from the caller's. For uid 0 without file capabilities the new permitted and
// effective sets are the caller's inheritable set plus its bounding set (the "root" rule of
// capabilities(7), with the file sets taken as full). So the daemon, first thing, drops every
// other capability from its bounding set and from its inheritable and ambient sets, sets
// no_new_privs (nothing it runs can gain privileges through setuid or file capabilities), and
// executes itself again: the new image, its threads and its children (nft, notify scripts) hold
// the kept capabilities and nothing else. The pid stays the same.

import { readFileSync } from "node:fs";
import { libc, SyscallError } from "./libc.js";

/** The capability numbers tsvs names (<linux/capability.h>). */
export const CAP = {
  CHOWN: 0,
  DAC_OVERRIDE: 1,
  SETPCAP: 8,
  NET_BIND_SERVICE: 10,
  NET_ADMIN: 12,
  NET_RAW: 13,
  IPC_LOCK: 14,
  SYS_ADMIN: 21,
  SYS_RESOURCE: 24,
  PERFMON: 38,
  BPF: 39,
} as const;

const NAMES: Record<number, string> = {
  0: "cap_chown",
  1: "cap_dac_override",
  2: "cap_dac_read_search",
  3: "cap_fowner",
  4: "cap_fsetid",
  5: "cap_kill",
  6: "cap_setgid",
  7: "cap_setuid",
  8: "cap_setpcap",
  9: "cap_linux_immutable",
  10: "cap_net_bind_service",
  11: "cap_net_broadcast",
  12: "cap_net_admin",
  13: "cap_net_raw",
  14: "cap_ipc_lock",
  15: "cap_ipc_owner",
  16: "cap_sys_module",
  17: "cap_sys_rawio",
  18: "cap_sys_chroot",
  19: "cap_sys_ptrace",
  20: "cap_sys_pacct",
  21: "cap_sys_admin",
  22: "cap_sys_boot",
  23: "cap_sys_nice",
  24: "cap_sys_resource",
  25: "cap_sys_time",
  26: "cap_sys_tty_config",
  27: "cap_mknod",
  28: "cap_lease",
  29: "cap_audit_write",
  30: "cap_audit_control",
  31: "cap_setfcap",
  32: "cap_mac_override",
  33: "cap_mac_admin",
  34: "cap_syslog",
  35: "cap_wake_alarm",
  36: "cap_block_suspend",
  37: "cap_audit_read",
  38: "cap_perfmon",
  39: "cap_bpf",
  40: "cap_checkpoint_restore",
};

/** A set of capabilities as the kernel prints it in /proc/PID/status (bit n = capability n). */
export function capMask(caps: readonly number[]): bigint {
  let m = 0n;
  for (const c of caps) m |= 1n << BigInt(c);
  return m;
}

/** The names of a mask's capabilities, as capsh prints them ("cap_net_admin"), ascending. */
export function capNames(mask: bigint): string[] {
  const out: string[] = [];
  for (let c = 0; c < 64; c++) if ((mask >> BigInt(c)) & 1n) out.push(NAMES[c] ?? `cap_${c}`);
  return out;
}

export interface ProcCaps {
  inheritable: bigint;
  permitted: bigint;
  effective: bigint;
  bounding: bigint;
  ambient: bigint;
  noNewPrivs: boolean;
  uid: number;
}

/** The credentials line of /proc/PID/status (or /proc/PID/task/TID/status): one task's sets. */
export function parseStatusCaps(status: string): ProcCaps {
  const hex = (k: string): bigint => {
    const m = new RegExp(`^${k}:\\s*([0-9a-f]+)$`, "m").exec(status);
    return m === null ? 0n : BigInt(`0x${m[1]}`);
  };
  const uid = /^Uid:\s*(\d+)/m.exec(status);
  return {
    inheritable: hex("CapInh"),
    permitted: hex("CapPrm"),
    effective: hex("CapEff"),
    bounding: hex("CapBnd"),
    ambient: hex("CapAmb"),
    noNewPrivs: /^NoNewPrivs:\s*1$/m.test(status),
    uid: uid === null ? -1 : Number(uid[1]),
  };
}

/** The calling process's main thread's sets. */
export function processCaps(pid: number | "self" = "self"): ProcCaps {
  return parseStatusCaps(readFileSync(`/proc/${pid}/status`, "utf8"));
}

// prctl(2) options (<linux/prctl.h>).
const PR_CAPBSET_DROP = 24;
const PR_SET_NO_NEW_PRIVS = 38;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_LOWER = 3;
const F_SETFD = 2;
/** _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set. */
const CAP_V3 = 0x20080522;

interface CapFns {
  prctl(option: number, a2: number, a3: number, a4: number, a5: number): number;
  capget(hdr: Buffer, data: Buffer): number;
  capset(hdr: Buffer, data: Buffer): number;
  execve(path: string, argv: (string | null)[], envp: (string | null)[]): number;
  fcntl(fd: number, cmd: number, arg: number): number;
}

let fns: CapFns | null = null;

function capFns(): CapFns {
  if (fns !== null) return fns;
  const k = libc().koffi;
  const lib = k.load("libc.so.6");
  fns = {
    prctl: lib.func(
      "int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)",
    ),
    capget: lib.func("int capget(void *hdr, void *data)"),
    capset: lib.func("int capset(void *hdr, void *data)"),
    execve: lib.func("int execve(const char *path, const char **argv, const char **envp)"),
    fcntl: lib.func("int fcntl(int fd, int cmd, int arg)"),
  };
  return fns;
}

/** The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap). */
function lastCap(): number {
  return Number(readFileSync("/proc/sys/kernel/cap_last_cap", "utf8").trim());
}

/**
 * Keeps only `keep`: drops every other capability from the bounding set, clears the inheritable
 * and ambient sets, sets no_new_privs, and executes `argv` (argv[0] the program) with `env`. Does
 * not return: an error before execve throws, and execve's own failure throws too (the sets are
 * already reduced then, so the process cannot go on as it was: the caller exits).
 */
export function reexecWithCaps(
  keep: readonly number[],
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): never {
  const f = capFns();
  const c = libc();
  const kept = capMask(keep);
  const last = lastCap();
  // Only what the bounding set holds (dropping needs CAP_SETPCAP, even for an absent one).
  const bounding = processCaps().bounding;
  for (let cap = 0; cap <= last; cap++) {
    if ((kept >> BigInt(cap)) & 1n || ((bounding >> BigInt(cap)) & 1n) === 0n) continue;
    if (f.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) !== 0)
      throw new SyscallError(`prctl(PR_CAPBSET_DROP, ${NAMES[cap] ?? cap})`, c.errno());
  }
  // Ambient capabilities outside the kept set go (under SECBIT_NOROOT the kept ambient ones are
  // what the new image gets).
  for (let cap = 0; cap <= last; cap++) {
    if ((kept >> BigInt(cap)) & 1n) continue;
    if (f.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, cap, 0, 0) !== 0)
      throw new SyscallError(`prctl(PR_CAP_AMBIENT_LOWER, ${cap})`, c.errno());
  }
  // capset: the inheritable set cut to the kept one, permitted and effective as they are.
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(CAP_V3, 0);
  const data = Buffer.alloc(24);
  if (f.capget(hdr, data) !== 0) throw new SyscallError("capget", c.errno());
  data.writeUInt32LE(data.readUInt32LE(8) & Number(kept & 0xffffffffn), 8);
  data.writeUInt32LE(data.readUInt32LE(20) & Number(kept >> 32n), 20);
  if (f.capset(hdr, data) !== 0) throw new SyscallError("capset", c.errno());
  if (f.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) !== 0)
    throw new SyscallError("prctl(PR_SET_NO_NEW_PRIVS)", c.errno());
  // Node marks its standard descriptors close-on-exec; the new image must write where this one did.
  for (let fd = 0; fd <= 2; fd++) f.fcntl(fd, F_SETFD, 0);
  const envp = Object.entries(env)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  f.execve(argv[0], [...argv, null], [...envp, null]);
  throw new SyscallError(`execve(${argv[0]})`, c.errno());
}
