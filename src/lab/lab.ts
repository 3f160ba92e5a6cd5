// `tsvs lab up|down|status`: the whole lab life cycle over topology.ts, servers.ts and daemon.ts.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { TsvsError } from "../core/errors.js";
import { ip, nsExecStatus } from "../io/netns.js";
import { addLabService, linkAlias, startDaemon, startDaemonIn } from "./daemon.js";
import {
  type DirectorHa,
  formatDirectorHa,
  haDirectors,
  startKeepalived,
  vi1State,
  waitHaSettled,
  writeHaConfs,
} from "./ha.js";
import { ensurePackages } from "./packages.js";
import { fileHas, jsPath, procAlive, waitFor } from "./proc.js";
import { nginxAvailable, type ServerKind, startServer } from "./servers.js";
import {
  buildTopology,
  existingNamespaces,
  LAB_ADDR,
  LAB_ADDR6,
  type LabBackup,
  type LabMethod,
  type LabNames,
  type LabOffloads,
  type LabState,
  labDown,
  labNamespaces,
  methodServers,
  readState,
  writeState,
} from "./topology.js";

/** The UDP port of the lab's GUE tunnels (`lab up --method tun --tun-type gue`). */
export const LAB_GUE_PORT = 6080;

export interface LabUpOptions {
  method: LabMethod;
  /** TUN: the tunnel type of the lab's destinations (default ipip); GUE goes to LAB_GUE_PORT. */
  tunType?: "ipip" | "gue" | "gre";
  /** "auto" (default): nginx when installed (or installable), else the Node server. */
  servers?: ServerKind | "auto";
  /** Start the daemon and add the service (default true). */
  daemon?: boolean;
  /** More `tsvs daemon` arguments, e.g. ["--sysctl", "expire_nodest_conn=1"]. */
  daemonArgs?: readonly string[];
  /**
   * Add the lab's service (VIP:80 rr over the method's servers) once the daemon runs (default
   * true). False when daemonArgs bring their own table (`--config FILE`): the service would be
   * a duplicate of the file's.
   */
  service?: boolean;
  /** "on" (default): veth's default offloads on every link; "off" turns them off, to compare. */
  offloads?: LabOffloads;
  /** Dual stack: IPv6 on every link (LAB_ADDR6's plan) and the servers listening on it too. */
  ipv6?: boolean;
  /**
   * Two directors (docs/lab.md "HA"): P-d runs `tsvs daemon --config` (priority 150), P-d2 the
   * same (100) or keepalived (VRRP only). The service comes from the keepalived.conf.
   */
  ha?: { backup: LabBackup };
  log?: (line: string) => void;
}

/** argv of `tsvs realserver ARGS…` run by this node from the build output. */
export function realserverArgv(args: readonly string[]): string[] {
  return [process.execPath, jsPath("src/cli/realserver.js"), ...args];
}

/**
 * Brings the lab up from scratch (an earlier lab of the same prefix is removed first). On a
 * failure before the state is complete everything is torn down again and the error rethrown.
 */
export async function labUp(names: LabNames, opts: LabUpOptions): Promise<LabState> {
  const log = opts.log ?? (() => {});
  const tunType = opts.tunType ?? "ipip";
  if (tunType !== "ipip" && opts.method !== "tun")
    throw new TsvsError("TSVS_ERR_USAGE", "--tun-type goes with --method tun");
  if (tunType !== "ipip" && opts.ha !== undefined)
    throw new TsvsError("TSVS_ERR_USAGE", "--tun-type gue|gre is not available with --ha");
  // What the real servers and the destinations are given (ipvsadm's --tun-type, --tun-port).
  const tunArgs =
    tunType === "gue"
      ? ["--tun-type", "gue", "--tun-port", String(LAB_GUE_PORT)]
      : tunType === "gre"
        ? ["--tun-type", "gre"]
        : [];
  const want = opts.servers ?? "auto";
  const offloads = opts.offloads ?? "on";
  const pkgs = ["iproute2", "curl"];
  if (offloads === "off") pkgs.push("ethtool");
  if (want !== "node") pkgs.push("nginx");
  // The daemon's ingress guard is an nft table (SPEC §1).
  if (opts.daemon !== false) pkgs.push("nftables");
  if (opts.ha?.backup === "keepalived" && opts.daemon !== false) pkgs.push("keepalived");
  const missing = ensurePackages(pkgs, log);
  if (missing.includes("iproute2")) throw new TsvsError("TSVS_ERR_DEPENDENCY", "iproute2 (`ip`) is missing");
  if (missing.includes("keepalived"))
    throw new TsvsError(
      "TSVS_ERR_DEPENDENCY",
      "--backup keepalived: keepalived is missing and could not be installed",
    );
  let kind: ServerKind = want === "auto" ? (nginxAvailable() ? "nginx" : "node") : want;
  if (kind === "nginx" && !nginxAvailable()) {
    if (want === "nginx")
      throw new TsvsError("TSVS_ERR_DEPENDENCY", "nginx is not installed and could not be installed");
    kind = "node";
  }
  await labDown(names);
  const ha = opts.ha !== undefined;
  const st: LabState = {
    version: 1,
    prefix: names.prefix,
    method: opts.method,
    servers: kind,
    offloads,
    ...(opts.ipv6 === true ? { ipv6: true } : {}),
    namespaces: labNamespaces(names, ha),
    procs: [],
    daemon: null,
    daemonStatus: "not started",
    createdAt: new Date().toISOString(),
  };
  try {
    writeState(names, st);
    buildTopology(names, opts.method, offloads, ha, opts.ipv6 === true);
    log(
      `topology ${names.prefix}: ${st.namespaces.join(" ")} (${opts.method}${ha ? ", two directors" : ""}, offloads ${offloads === "on" ? "as veth has them" : "off"})`,
    );
    for (const s of names.servers) {
      st.procs.push(...(await startServer(s, kind, join(names.runDir, s.name), opts.ipv6 === true)));
      writeState(names, st);
    }
    log(`servers: ${kind} on ${names.servers.map((s) => `${s.name} ${s.rip}`).join(", ")}`);
    if (opts.method === "dr" || opts.method === "tun") {
      const vips = opts.ipv6 === true ? [LAB_ADDR.VIP, LAB_ADDR6.VIP] : [LAB_ADDR.VIP];
      for (const s of methodServers(names, opts.method)) {
        for (const vip of vips) {
          const r = nsExecStatus(
            s.ns,
            realserverArgv(["setup", "--vip", vip, "--method", opts.method, "--iface", "eth0", ...tunArgs]),
          );
          if (r.status !== 0)
            throw new TsvsError(
              "TSVS_ERR_LAB",
              `${s.name}: tsvs realserver setup failed: ${r.stderr.trim()}`,
            );
        }
      }
      log(
        `real servers prepared for ${opts.method.toUpperCase()}${tunType !== "ipip" ? ` over ${tunType.toUpperCase()}` : ""} (VIP ${LAB_ADDR.VIP} on lo, ARP suppressed)`,
      );
    }
  } catch (e) {
    await labDown(names);
    throw e;
  }
  if (opts.ha !== undefined) {
    await startHa(names, st, opts.ha.backup, opts, log);
    return st;
  }
  if (opts.daemon !== false) {
    const d = await startDaemon(names, opts.method, opts.daemonArgs);
    st.daemon = d.proc;
    st.daemonStatus = d.status;
    writeState(names, st);
    if (d.status === "running" && opts.service !== false) {
      const err = addLabService(names, opts.method, tunArgs, opts.ipv6 === true);
      if (err !== null) st.daemonStatus = `running; service not added: ${err}`;
      writeState(names, st);
    }
    log(`daemon: ${st.daemonStatus}`);
  }
  return st;
}

/**
 * The directors of an HA lab: both keepalived.conf files, `tsvs daemon --config` on P-d, then on
 * P-d2 (or keepalived), then a wait (≤ 8 s) for P-d to win the election. Without --no-daemon.
 */
async function startHa(
  names: LabNames,
  st: LabState,
  backup: LabBackup,
  opts: LabUpOptions,
  log: (line: string) => void,
): Promise<void> {
  const f = writeHaConfs(names, opts.method, backup);
  st.ha = {
    backup,
    daemon2: null,
    daemon2Status: "not started",
    confs: { director: f.conf, director2: f.conf2 },
    notifyLog: backup === "keepalived" ? f.notifyLog : null,
  };
  writeState(names, st);
  log(`keepalived.conf: ${f.conf} (${names.director}), ${f.conf2} (${names.director2})`);
  if (opts.daemon === false) return;
  const extra = opts.daemonArgs ?? [];
  const d = await startDaemonIn(names.director, names.controlSock, names.daemonLog, [
    "--config",
    f.conf,
    ...extra,
  ]);
  st.daemon = d.proc;
  st.daemonStatus = d.status;
  if (d.status === "running") {
    linkAlias(names);
    // Its VRRP starts (INIT → BACKUP) just before it logs "ready", a moment after its socket: the
    // backup starts after that, so P-d's master-down timer (the shorter one) also ends first.
    await waitFor(() => fileHas(names.daemonLog, '"msg":"ready"'), 5000);
  }
  writeState(names, st);
  log(`${names.director}: ${d.status}`);
  if (backup === "tsvs") {
    const d2 = await startDaemonIn(names.director2, names.controlSock2, names.daemon2Log, [
      "--config",
      f.conf2,
      ...extra,
    ]);
    st.ha.daemon2 = d2.proc;
    st.ha.daemon2Status = d2.status;
  } else {
    const ka = startKeepalived(names, f);
    // keepalived writes its VRRP child's pid file once the configuration is read.
    await waitFor(() => existsSync(f.keepalivedVrrpPid) || !procAlive(ka), 5000);
    st.ha.daemon2 = procAlive(ka) ? ka : null;
    st.ha.daemon2Status = procAlive(ka) ? "running" : `keepalived exited (see ${f.keepalivedLog})`;
  }
  writeState(names, st);
  log(
    `${names.director2}: ${backup === "keepalived" ? "keepalived (VRRP only) " : ""}${st.ha.daemon2Status}`,
  );
  if (st.daemonStatus !== "running" || st.ha.daemon2Status !== "running") return;
  const daemon2 = st.ha.daemon2;
  const settled = await waitHaSettled(
    () => haDirectors(names, opts.method, backup, st.daemon, daemon2),
    8000,
  );
  for (const dir of settled.directors) log(`  ${formatDirectorHa(dir)}`);
  if (!settled.ok) st.daemonStatus = "running; VRRP did not settle (P-d MASTER, P-d2 BACKUP) within 8 s";
  writeState(names, st);
}

export interface LabStatus {
  prefix: string;
  up: boolean;
  method: LabMethod | null;
  servers: ServerKind | null;
  offloads: LabOffloads | null;
  /** The daemon's control socket (the director namespace's default) and its lab.sock alias. */
  control: string;
  controlAlias: string;
  namespaces: { name: string; present: boolean }[];
  procs: { what: string; pid: number; ns: string; alive: boolean }[];
  daemon: { pid: number | null; alive: boolean; status: string };
  /** HA labs: what each director says about VRRP (and the sync daemon). */
  ha: { backup: LabBackup; directors: DirectorHa[] } | null;
  addresses: Record<string, string>;
}

export function labStatus(names: LabNames): LabStatus {
  const st = readState(names);
  const present = new Set(existingNamespaces(names));
  const addresses: Record<string, string> = {};
  const all = labNamespaces(names, st?.ha !== undefined);
  for (const ns of all) {
    if (!present.has(ns)) continue;
    try {
      const info = JSON.parse(ip("-n", ns, "-j", "-4", "addr", "show")) as {
        ifname: string;
        addr_info: { local: string; prefixlen: number }[];
      }[];
      addresses[ns] = info
        .filter((i) => i.ifname !== "lo" || i.addr_info.some((a) => a.local !== "127.0.0.1"))
        .flatMap((i) =>
          i.addr_info
            .filter((a) => a.local !== "127.0.0.1")
            .map((a) => `${i.ifname} ${a.local}/${a.prefixlen}`),
        )
        .join(", ");
    } catch {
      addresses[ns] = "?";
    }
  }
  return {
    prefix: names.prefix,
    up: st !== null && all.every((n) => present.has(n)),
    method: st?.method ?? null,
    servers: st?.servers ?? null,
    // A state file from before the option had offloads off on every link.
    offloads: st === null ? null : (st.offloads ?? "off"),
    control: names.controlSock,
    controlAlias: names.controlAlias,
    namespaces: all.map((n) => ({ name: n, present: present.has(n) })),
    procs: (st?.procs ?? []).map((p) => ({ what: p.what, pid: p.pid, ns: p.ns, alive: procAlive(p) })),
    daemon: {
      pid: st?.daemon?.pid ?? null,
      alive: st?.daemon != null && procAlive(st.daemon),
      status: st?.daemonStatus ?? "no lab",
    },
    ha:
      st?.ha === undefined
        ? null
        : {
            backup: st.ha.backup,
            directors: haDirectors(names, st.method, st.ha.backup, st.daemon, st.ha.daemon2),
          },
    addresses,
  };
}

export function formatStatus(s: LabStatus): string {
  const out: string[] = [];
  out.push(`lab ${s.prefix}: ${s.up ? "up" : s.namespaces.some((n) => n.present) ? "partial" : "down"}`);
  if (s.method !== null)
    out.push(
      `method ${s.method}, servers ${s.servers}, offloads ${s.offloads === "off" ? "off" : "on (veth defaults)"}`,
    );
  for (const n of s.namespaces) {
    out.push(`  ${n.name.padEnd(16)} ${n.present ? (s.addresses[n.name] ?? "") : "absent"}`);
  }
  for (const p of s.procs)
    out.push(`  pid ${String(p.pid).padEnd(8)} ${p.alive ? "alive" : "dead "} ${p.what}`);
  out.push(
    `  daemon: ${s.daemon.status}${s.daemon.pid !== null ? ` (pid ${s.daemon.pid}, ${s.daemon.alive ? "alive" : "dead"})` : ""}`,
  );
  if (s.daemon.alive) out.push(`  control: ${s.control} (alias ${s.controlAlias})`);
  if (s.ha !== null) {
    const masters = s.ha.directors.filter((d) => d.alive && vi1State(d) === "MASTER").map((d) => d.ns);
    out.push(`  VRRP: master ${masters.length > 0 ? masters.join(", ") : "none"}`);
    for (const d of s.ha.directors) out.push(`    ${formatDirectorHa(d)}`);
  }
  return `${out.join("\n")}\n`;
}
