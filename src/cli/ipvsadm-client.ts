// `tsvs ipvsadm ARGS` and `tsvs status`: clients of the daemon's control socket. As ipvsadm is a
// parser over libipvs, `tsvs ipvsadm` parses the command line here, sends the daemon typed
// commands (`apply`) or asks it for the table (`table`), and prints ipvsadm's text from the
// snapshot it gets back; the daemon never sees ipvsadm's syntax. --start-daemon / --stop-daemon
// travel as `apply` commands too (the daemon's main thread runs them), and -L --daemon asks for
// the running sync daemons (`daemons`).

import { formatSysctlValue } from "../control/commands.js";
import { formatIPv4 } from "../core/addr.js";
import { CtlError } from "../core/ctl.js";
import { TsvsError } from "../core/errors.js";
import { request } from "../daemon/control.js";
import type { DaemonStatus, DefenseStatus, FwmarkAction, Request, Response } from "../daemon/protocol.js";
import { parseSysctlArg, resolveControlPath, SYSCTLS } from "../daemon/protocol.js";
import { parseIpvsadm } from "./ipvsadm/parse.js";
import { type IpvsadmResult, planIpvsadm } from "./ipvsadm/run.js";

/** Pulls `--control PATH` / `--control=PATH` out of argv (it is not an ipvsadm option). */
export function takeControlFlag(args: readonly string[]): { path: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let path: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--control" && i + 1 < args.length) path = args[++i];
    else if (a.startsWith("--control=")) path = a.slice("--control=".length);
    else rest.push(a);
  }
  return { path, rest };
}

function isRestore(argv: readonly string[]): boolean {
  try {
    return parseIpvsadm(argv).kind === "restore";
  } catch {
    return false;
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(typeof c === "string" ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

async function call(path: string, req: Request): Promise<Response | number> {
  try {
    return await request(path, req);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`tsvs: cannot reach the daemon at ${path}: ${msg}\n`);
    return 1;
  }
}

/** Runs one ipvsadm invocation against the daemon at `path`; a number is an exit status already reported. */
export async function ipvsadmRemote(
  path: string,
  argv: readonly string[],
  stdin: string,
): Promise<IpvsadmResult | number> {
  const plan = planIpvsadm(argv, stdin);
  switch (plan.kind) {
    case "done":
      return plan.result;
    case "apply": {
      const res = await call(path, { op: "apply", commands: plan.cmds });
      if (typeof res === "number") return res;
      if ("applied" in res) {
        const r = plan.applied(null);
        return res.warning === undefined ? r : { ...r, stderr: `${r.stderr}tsvs: warning: ${res.warning}\n` };
      }
      if ("error" in res && "code" in res)
        return plan.applied(new CtlError(res.code, res.error, res.index ?? -1));
      return refused(res);
    }
    case "snapshot": {
      const res = await call(path, { op: "table", conns: plan.withConns });
      if (typeof res === "number") return res;
      if ("table" in res) return plan.format(res.table);
      return refused(res);
    }
    case "daemon": {
      const res = await call(path, { op: "apply", commands: [plan.cmd] });
      if (typeof res === "number") return res;
      if ("applied" in res) return plan.applied(null);
      if ("error" in res && "code" in res) return plan.applied(new TsvsError(res.code, res.error));
      return refused(res);
    }
    case "daemons": {
      const res = await call(path, { op: "daemons" });
      if (typeof res === "number") return res;
      if ("daemons" in res) return plan.format(res.daemons);
      return refused(res);
    }
  }
}

function refused(res: Response): number {
  if ("error" in res) process.stderr.write(`tsvs: the daemon refused the request: ${res.error}\n`);
  else process.stderr.write("tsvs: unexpected answer from the daemon\n");
  return 1;
}

export async function ipvsadmMain(args: string[]): Promise<number> {
  const { path: flag, rest } = takeControlFlag(args);
  const path = resolveControlPath(flag);
  const res = await ipvsadmRemote(path, rest, isRestore(rest) ? await readStdin() : "");
  if (typeof res === "number") return res;
  if (res.stdout !== "") process.stdout.write(res.stdout);
  if (res.stderr !== "") process.stderr.write(res.stderr);
  return res.code;
}

export async function statusMain(args: string[]): Promise<number> {
  const { path: flag, rest } = takeControlFlag(args);
  const json = rest.includes("--json");
  const unknown = rest.filter((a) => a !== "--json");
  if (unknown.length > 0) {
    process.stderr.write(
      `tsvs status: unknown argument ${unknown[0]}\nUsage: tsvs status [--json] [--control PATH]\n`,
    );
    return 2;
  }
  const path = resolveControlPath(flag);
  const res = await call(path, { op: "status" });
  if (typeof res === "number") return res;
  if (!("status" in res)) {
    process.stderr.write(`tsvs: ${"error" in res ? res.error : "unexpected answer from the daemon"}\n`);
    return 1;
  }
  process.stdout.write(json ? `${JSON.stringify(res.status, null, 2)}\n` : formatStatus(res.status));
  return 0;
}

export const SYSCTL_USAGE = `Usage: tsvs sysctl [--control PATH] [NAME[=VALUE]]...
  NAME: ${Object.keys(SYSCTLS).join(", ")} (as /proc/sys/net/ipv4/vs names them)
  sync_threshold takes two values, "THRESHOLD PERIOD" or THRESHOLD,PERIOD (one value keeps the period)
`;

/** `tsvs sysctl [NAME[=VALUE]]...`: prints `NAME = VALUE` lines, as sysctl(8) does. */
export async function sysctlMain(args: string[]): Promise<number> {
  const { path: flag, rest } = takeControlFlag(args);
  if (rest.includes("-h") || rest.includes("--help")) {
    process.stdout.write(SYSCTL_USAGE);
    return 0;
  }
  const reqs: Request[] = [];
  for (const a of rest) {
    const p = parseSysctlArg(a);
    if ("error" in p) {
      process.stderr.write(`tsvs sysctl: ${p.error}\n${SYSCTL_USAGE}`);
      return 2;
    }
    reqs.push({ op: "sysctl", ...p });
  }
  if (reqs.length === 0) reqs.push({ op: "sysctl" });
  const path = resolveControlPath(flag);
  for (const req of reqs) {
    const res = await call(path, req);
    if (typeof res === "number") return res;
    if (!("sysctls" in res)) {
      process.stderr.write(
        `tsvs sysctl: ${"error" in res ? res.error : "unexpected answer from the daemon"}\n`,
      );
      return 1;
    }
    for (const [k, v] of Object.entries(res.sysctls))
      process.stdout.write(`${k} = ${formatSysctlValue(v)}\n`);
  }
  return 0;
}

export const FWMARK_USAGE = `Usage: tsvs fwmark add|del|list|flush [--control PATH] [RULE]
  RULE in iptables-mangle phrasing, e.g.
    tsvs fwmark add -d 198.18.0.100 -p tcp --dport 80 -j MARK --set-mark 10
    tsvs fwmark add -d 2001:db8::100 -p tcp --dport 80 -j MARK --set-mark 11   (ip6tables rule)
    tsvs fwmark add -6 -p tcp --dport 80 -j MARK --set-mark 11   (no address: -6 makes it IPv6)
  del takes the same rule (or the number list prints first). A rule's single-host -d address
  (/32, or /128) becomes the director's (it answers ARP or NDP and keeps the kernel out), as a
  fwmark VIP must be.
`;

/** `tsvs fwmark add|del|list|flush RULE`: the daemon's firewall-mark classifier. */
export async function fwmarkMain(args: string[]): Promise<number> {
  const { path: flag, rest } = takeControlFlag(args);
  const [action, ...ruleArgs] = rest;
  if (action === "-h" || action === "--help" || action === "help") {
    process.stdout.write(FWMARK_USAGE);
    return 0;
  }
  if (action !== "add" && action !== "del" && action !== "list" && action !== "flush") {
    process.stderr.write(`tsvs fwmark: unknown action ${JSON.stringify(action ?? "")}\n${FWMARK_USAGE}`);
    return 2;
  }
  const rule = ruleArgs.join(" ");
  const needsRule = action === "add" || action === "del";
  if (needsRule !== (rule !== "")) {
    process.stderr.write(
      `tsvs fwmark ${action}: ${needsRule ? "a rule is needed" : "takes no rule"}\n${FWMARK_USAGE}`,
    );
    return 2;
  }
  const req: Request = needsRule
    ? { op: "fwmark", action: action as FwmarkAction, rule }
    : { op: "fwmark", action: action as FwmarkAction };
  const res = await call(resolveControlPath(flag), req);
  if (typeof res === "number") return res;
  if (!("fwmarks" in res)) {
    process.stderr.write(
      `tsvs fwmark: ${"error" in res ? res.error : "unexpected answer from the daemon"}\n`,
    );
    return 1;
  }
  if (action === "list") for (const r of res.fwmarks) process.stdout.write(`${r.id} ${r.rule}\n`);
  return 0;
}

const DEFENSE_MODE = ["off", "auto", "active (auto)", "always"];

/** The defence's line: each strategy's mode (number and meaning), availmem/amemthresh, what it did. */
export function defenseLine(d: DefenseStatus): string {
  const m = (n: number): string => `${n} ${DEFENSE_MODE[n] ?? "?"}`;
  return (
    `defense: availmem ${d.availmem}/amemthresh ${d.amemthresh} pages; drop_entry ${m(d.dropEntry)}` +
    ` (${d.entriesDropped} entries dropped), drop_packet ${m(d.dropPacket)}` +
    `${d.dropRate > 0 ? ` (1 in ${d.dropRate})` : ""} (${d.packetsDropped} packets dropped), secure_tcp ${m(d.secureTcp)}` +
    `${d.secureTcpTable ? " (tcp_states_dos)" : ""}`
  );
}

export function formatStatus(s: DaemonStatus): string {
  const lines: string[] = [];
  lines.push(`tsvs daemon pid ${s.pid}, netns ${s.netns}, control ${s.control}`);
  lines.push(
    `worker: ${s.worker.alive ? "running" : "stopped"} (restarts ${s.worker.restarts}), up ${Math.round(s.uptimeMs / 1000)} s, ` +
      `${s.batches} batches, busy ${Math.round(s.busyMs)} ms`,
  );
  lines.push(`services: ${s.services}, destinations: ${s.dests}, connections: ${s.connections}`);
  lines.push(
    `guard: nft table ${s.nft.table} (${s.nft.vips} owned addresses, ${s.nft.natDests} NAT destinations)`,
  );
  lines.push("interfaces:");
  for (const i of s.interfaces) {
    lines.push(
      `  ${i.name} (#${i.ifindex}) ${i.mac} mtu ${i.mtu} ${i.addrs.join(" ")}${i.io === undefined ? "" : ` io ${i.io}`}: rx ${i.rxFrames} tx ${i.txFrames}` +
        ` txDropped ${i.txDropped} txErrors ${i.txErrors} truncated ${i.rxTruncated} kernelDrops ${i.kernelDrops}`,
    );
    if (i.rxAggregates !== undefined)
      lines.push(
        `    aggregates: rx ${i.rxAggregates} tx ${i.txAggregates ?? 0} oversize (no GSO metadata) ${i.rxOversize ?? 0}`,
      );
  }
  if (s.host !== undefined) {
    const h = s.host;
    lines.push(
      `host: ${h.following ? "followed (rtnetlink)" : "read once at start"}${h.hostVips ? ", VIPs only while the host has them" : ""}; ` +
        `${h.routes} IPv4 and ${h.routes6} IPv6 routes, ${h.changes} changes, ${h.updates} updates applied, last ${h.lastChange ?? "never"}`,
    );
    for (const l of h.interfaces)
      lines.push(
        `  ${l.name} (#${l.ifindex}) ${l.state}${l.up ? "" : " admin-down"}${l.carrier ? "" : " no-carrier"}` +
          `${l.served ? " served" : ""}${[...l.addrs, ...l.addrs6].map((a) => ` ${a}`).join("")}`,
      );
  }
  lines.push(
    `counters: ${Object.entries(s.counters)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")}`,
  );
  const drops = Object.entries(s.drops);
  lines.push(`drops: ${drops.length === 0 ? "none" : drops.map(([k, v]) => `${k}=${v}`).join(" ")}`);
  if (s.defense !== undefined) lines.push(defenseLine(s.defense));
  for (const v of s.vrrp ?? []) {
    const drops = Object.entries(v.drops);
    lines.push(
      `vrrp ${v.name}: ${v.state} on ${v.iface} vrid ${v.vrid} v${v.version}, priority ${v.priority}` +
        `${v.effectivePriority !== v.priority ? ` (effective ${v.effectivePriority})` : ""}, master ${v.master ?? "unknown"}, ` +
        `advert ${v.advertIntMs} ms (master's ${v.masterAdvertIntMs} ms), ${v.transitions} transitions, last: ${v.lastReason || "-"}; ` +
        `adverts rx ${v.advertsRx} tx ${v.advertsTx}${drops.length === 0 ? "" : `, drops ${drops.map(([k, n]) => `${k}=${n}`).join(" ")}`}`,
    );
  }
  for (const d of s.sync ?? []) {
    const drops = Object.entries(d.drops ?? {});
    lines.push(
      `sync ${d.role}: ${d.iface} syncid ${d.syncid} group ${formatIPv4(d.group >>> 0)}:${d.port} ttl ${d.ttl} maxlen ${d.maxlen}; ` +
        `messages sent ${d.messagesSent} received ${d.messagesReceived}, conns sent ${d.connsSent} received ${d.connsReceived}, ` +
        `errors ${d.errors}${drops.length === 0 ? "" : `, drops ${drops.map(([k, v]) => `${k}=${v}`).join(" ")}`}`,
    );
  }
  if (s.bgp !== undefined) {
    const b = s.bgp;
    lines.push(
      `bgp: AS ${b.localAs} router id ${b.routerId}, BIRD ${b.bird.reachable ? "answering" : "NOT answering"} on ${b.bird.socket}` +
        `${b.bird.pid !== null ? ` (pid ${b.bird.pid}, started by tsvs)` : ""}, liveness ${b.liveness.ifname} ${b.liveness.up ? "up" : "down"}` +
        `${b.bird.error !== "" ? `; last error: ${b.bird.error}` : ""}`,
    );
    for (const n of b.sessions) lines.push(`  neighbor ${n.neighbor}: ${n.state} ${n.info}`.trimEnd());
    for (const v of b.vips) lines.push(`  ${v.vip}: ${v.announced ? "announced" : "withdrawn"} (${v.why})`);
  }
  if (s.config !== undefined) {
    lines.push(`config: ${s.config.file} (reloads ${s.config.reloads})`);
    for (const h of s.config.health)
      lines.push(
        `  ${h.service} -> ${h.server}: ${h.alive ? "up" : "down"}${h.failures > 0 ? ` (${h.failures} failed checks)` : ""}`,
      );
  }
  return `${lines.join("\n")}\n`;
}

/** `tsvs reload`: the daemon re-reads its --config file and applies the difference. */
export async function reloadMain(args: string[]): Promise<number> {
  const { path: flag, rest } = takeControlFlag(args);
  if (rest.length > 0) {
    process.stderr.write(`tsvs reload: unknown argument ${rest[0]}\nUsage: tsvs reload [--control PATH]\n`);
    return 2;
  }
  const res = await call(resolveControlPath(flag), { op: "reload" });
  if (typeof res === "number") return res;
  if (!("reloaded" in res)) {
    process.stderr.write(
      `tsvs reload: ${"error" in res ? res.error : "unexpected answer from the daemon"}\n`,
    );
    return 1;
  }
  process.stdout.write(`reloaded ${res.reloaded}\n`);
  return 0;
}
