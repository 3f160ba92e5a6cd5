// The process's memory headroom for the defence's availmem (core/defense.ts; docs/daemon.md
// "Defence against table exhaustion"): what its memory cgroup still lets it allocate, in pages.
//
// The kernel's update_defense_level counts the host's free pages, because its connections are
// allocated one by one. The daemon's table is allocated at start, so the table's free entries are
// the first measure (tableAvailmem); what else could run out is the cgroup the daemon was started
// in (a systemd unit's MemoryMax=, a container's limit): its limit minus its usage. Without a
// limit (or where the cgroup files cannot be read: `ip netns exec` mounts a sysfs without them),
// there is no second measure. Read once a second, never per packet.

import { readFileSync } from "node:fs";
import { PAGE_BYTES } from "../core/defense.js";

/** A limit at or above this is "none" (cgroup v1 writes PAGE_COUNTER_MAX's bytes, ~2^63). */
const NO_LIMIT = 2 ** 60;

/** The files that hold the memory cgroup's limit and usage. */
export interface CgroupMemoryFiles {
  limit: string;
  usage: string;
}

/**
 * The memory cgroup of a process from its /proc/PID/cgroup text: the v2 entry ("0::/path":
 * memory.max, memory.current) when the unified hierarchy has the memory controller, else the v1
 * "memory" entry (memory.limit_in_bytes, memory.usage_in_bytes). `controllers` is the v2 root's
 * cgroup.controllers text (null when unreadable). Null when neither applies.
 */
export function cgroupMemoryFiles(
  procCgroup: string,
  controllers: string | null,
  root = "/sys/fs/cgroup",
): CgroupMemoryFiles | null {
  for (const line of procCgroup.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (m === null) continue;
    const [, id, ctl, path] = m;
    const p = path === "/" ? "" : path;
    if (id === "0" && ctl === "" && controllers !== null && /(^|\s)memory(\s|$)/.test(controllers))
      return { limit: `${root}${p}/memory.max`, usage: `${root}${p}/memory.current` };
    if (ctl.split(",").includes("memory"))
      return {
        limit: `${root}/memory${p}/memory.limit_in_bytes`,
        usage: `${root}/memory${p}/memory.usage_in_bytes`,
      };
  }
  return null;
}

/** (limit − usage) in pages from the two files' texts; null when there is no limit. */
export function headroomPages(limitText: string, usageText: string): number | null {
  const l = limitText.trim();
  if (l === "max") return null;
  const limit = Number(l);
  const usage = Number(usageText.trim());
  if (!Number.isFinite(limit) || !Number.isFinite(usage) || limit >= NO_LIMIT) return null;
  return Math.max(0, Math.floor((limit - usage) / PAGE_BYTES));
}

/**
 * A reader of this process's headroom: a function that reads the cgroup's two files and returns
 * the pages left, or null when there is no limit or the files cannot be read (then and later: a
 * cgroup that is not there at start is not looked for again).
 */
export function processHeadroom(): () => number | null {
  let files: CgroupMemoryFiles | null = null;
  try {
    let controllers: string | null = null;
    try {
      controllers = readFileSync("/sys/fs/cgroup/cgroup.controllers", "utf8");
    } catch {
      controllers = null;
    }
    files = cgroupMemoryFiles(readFileSync("/proc/self/cgroup", "utf8"), controllers);
  } catch {
    files = null;
  }
  const f = files;
  if (f === null) return () => null;
  return () => {
    try {
      return headroomPages(readFileSync(f.limit, "utf8"), readFileSync(f.usage, "utf8"));
    } catch {
      return null;
    }
  };
}

/** "32768K", "1M", "512" (sysfs cache `size`) in bytes, or null. */
export function parseCacheSize(text: string): number | null {
  const m = /^\s*(\d+)\s*([KMG]?)\s*$/.exec(text);
  if (m === null) return null;
  const unit = m[2] === "K" ? 1024 : m[2] === "M" ? 1024 ** 2 : m[2] === "G" ? 1024 ** 3 : 1;
  return Number(m[1]) * unit;
}

/**
 * The largest cache of cpu 0 (the last level: L3 on most servers) in bytes, from sysfs, or null
 * where sysfs does not say. The worker reads its table ahead only once the table's records
 * outgrow it (Engine.readAheadWorthIt): below that, measured, reading ahead costs more than the
 * cache hits it would speed up (docs/bench.md "Reading a batch ahead").
 */
export function lastLevelCacheBytes(dir = "/sys/devices/system/cpu/cpu0/cache"): number | null {
  let best: number | null = null;
  for (let i = 0; i < 8; i++) {
    let text: string;
    try {
      text = readFileSync(`${dir}/index${i}/size`, "utf8");
    } catch {
      break;
    }
    const n = parseCacheSize(text);
    if (n !== null && (best === null || n > best)) best = n;
  }
  return best;
}
