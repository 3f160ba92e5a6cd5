// Debian packages the lab uses, installed with apt-get when their command is missing (quietly, once
// per process). On CI (CI=true) a package that cannot be installed is an error; elsewhere the
// caller decides (the lab falls back to its Node server when nginx is missing).

import { spawnSync } from "node:child_process";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { TsvsError } from "../core/errors.js";

/** The command whose presence tells that a package is installed. */
const PROBE: Record<string, string> = {
  iproute2: "ip",
  curl: "curl",
  nginx: "nginx",
  nftables: "nft",
  "iputils-ping": "ping",
  traceroute: "traceroute",
  systemd: "systemd-analyze",
  bird2: "bird",
};

export function commandPath(cmd: string): string | null {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  for (const d of dirs) {
    if (d !== "" && existsSync(join(d, cmd))) return join(d, cmd);
  }
  return null;
}

export function missingPackages(pkgs: readonly string[]): string[] {
  return pkgs.filter((p) => commandPath(PROBE[p] ?? p) === null);
}

let updated = false;
const tried = new Set<string>();

function apt(args: string[]): boolean {
  const r = spawnSync("apt-get", args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    timeout: 300_000,
  });
  return r.status === 0;
}

/**
 * Installs the missing ones among pkgs; returns those still missing afterwards. Throws when CI=true
 * and something is still missing. A package's service is not started by the install (a temporary
 * policy-rc.d refuses it): an nginx listening in the host namespace would be a stray server.
 */
export function ensurePackages(pkgs: readonly string[], log: (s: string) => void = () => {}): string[] {
  let missing = missingPackages(pkgs).filter((p) => !tried.has(p));
  if (missing.length > 0 && commandPath("apt-get") !== null && process.getuid?.() === 0) {
    for (const p of missing) tried.add(p);
    log(`installing ${missing.join(" ")} with apt-get`);
    const policy = "/usr/sbin/policy-rc.d";
    const ownPolicy = !existsSync(policy);
    if (ownPolicy) writeFileSync(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
    try {
      const install = ["install", "-y", "-qq", "--no-install-recommends", ...missing];
      if (!apt(install)) {
        if (!updated) {
          updated = true;
          apt(["update", "-qq"]);
        }
        apt(install);
      }
    } finally {
      if (ownPolicy) rmSync(policy, { force: true });
    }
  }
  missing = missingPackages(pkgs);
  if (missing.length > 0 && process.env.CI === "true") {
    throw new TsvsError(
      "TSVS_ERR_DEPENDENCY",
      `cannot install ${missing.join(", ")} (apt-get failed or unavailable)`,
    );
  }
  return missing;
}
