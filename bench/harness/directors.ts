// The directors the bench compares, each started on a fresh bench network (topology.ts) in the
// director namespace, pinned to the director core when there are two:
//
//   direct        the client talks to r1 itself, routed by the director's kernel (the ceiling)
//   tsvs-*        `tsvs daemon` (src/lab/daemon.ts) with NAT, DR, FULLNAT, TUN; 2 workers if supported
//   tsvs-nat6/dr6 the same NAT and DR over IPv6: the services on [VIP6], the clients' load to it
//   nft-dnat      nftables DNAT with `numgen inc mod 3` (round robin per connection, conntrack)
//   haproxy       haproxy `mode tcp`, nbthread 1, balance roundrobin
//   nginx-stream  nginx `stream`, one worker, round robin (UDP too)
//   ipvs-nat      the kernel's IPVS (ipvsadm -m), where the ip_vs module exists
//
// Every director serves the same three services: TCP VIP:80 and UDP VIP:53 round robin over
// r1-r3, and TCP VIP:5201 to r1 alone (iperf3's control and data connections must meet the same
// server). The IPv6 directors serve the same three on the lab's IPv6 plan (topology.ts).

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ip, nsExec, nsExecStatus } from "../../src/io/netns.js";
import { IPVSADM_FLAG, ipvsadm, startDaemon, tsvsArgv, tsvsEntry } from "../../src/lab/daemon.js";
import { commandPath, ensurePackages } from "../../src/lab/packages.js";
import { fileHas, type ProcRef, procAlive, spawnInNs, waitFor } from "../../src/lab/proc.js";
import { LAB_ADDR, LAB_ADDR6, type LabMethod } from "../../src/lab/topology.js";
import { type BenchNet, benchServers, IPERF_PORT, type RouteMode, UDP_PORT } from "./topology.js";
import type { WorkloadName } from "./workloads.js";

/** What a smoke run takes of a director that is not in a ratio: UDP forwarding and new connections. */
const HEADLINE: readonly WorkloadName[] = ["udp_pps", "http_cps"];

export interface DirectorRun {
  /** The address the client sends to (the VIP, or r1's RIP for the direct path). */
  target: string;
  /** Processes whose CPU time is the director's (empty: the kernel's softirq work, not attributable). */
  pids: number[];
  /** How the director was pinned, for the output. */
  pinned: string;
}

export interface DirectorDef {
  name: string;
  label: string;
  mode: RouteMode;
  /** Over IPv6: the bench network gets the dual-stack plan and the client sends to an IPv6 target. */
  ipv6?: boolean;
  /** null when this director can run here, else why not ("unavailable (no ip_vs)"). */
  unavailable(): string | null;
  /**
   * In a --smoke run that does not name this director in --only: only these workloads run (none:
   * the director is left out), so that the test suite's run stays short.
   */
  smokeWorkloads?: readonly WorkloadName[];
  /** Workloads that do not apply to this director, with the reason. */
  skip?: Partial<Record<WorkloadName, string>>;
  /** Starts the director on a fresh network; its processes go to net.procs (stopped by teardown). */
  start(net: BenchNet, pin: string | null): Promise<DirectorRun>;
}

const VIP = LAB_ADDR.VIP;

function rips(net: BenchNet): string[] {
  return benchServers(net.names).map((s) => s.rip);
}

function pinArgv(pin: string | null, argv: readonly string[]): string[] {
  return pin === null ? [...argv] : ["taskset", "-c", pin, ...argv];
}

function sysctl(ns: string, key: string, value: string | number): void {
  nsExec(ns, ["sysctl", "-q", "-w", `${key}=${value}`]);
}

/** The VIP on the director's client-net interface, for directors that own it in the kernel. */
function addVip(net: BenchNet): void {
  ip("-n", net.names.director, "addr", "add", `${VIP}/32`, "dev", net.names.dirClientIf);
}

let daemonHelp: string | null = null;

/** Whether `tsvs daemon --help` lists an option (--workers, --io: features of the data plane). */
export function daemonHasOption(opt: string): boolean {
  if (daemonHelp === null) {
    if (tsvsEntry() === null) return false;
    const argv = tsvsArgv(["daemon", "--help"]);
    try {
      daemonHelp = execFileSync(argv[0], argv.slice(1), { encoding: "utf8", timeout: 20_000 });
    } catch (e) {
      daemonHelp = String((e as { stdout?: string }).stdout ?? "");
    }
  }
  return new RegExp(`${opt}\\b`).test(daemonHelp);
}

/** The tsvs daemon's three services, added through its control socket; IPv6 ones in brackets. */
function addTsvsServices(net: BenchNet, method: LabMethod, ipv6: boolean): void {
  const flag = IPVSADM_FLAG[method];
  const vip = ipv6 ? `[${LAB_ADDR6.VIP}]` : VIP;
  const rs = ipv6 ? benchServers(net.names).map((s) => `[${s.rip6}]`) : rips(net);
  const cmds: string[][] = [
    ["-A", "-t", `${vip}:80`, "-s", "rr"],
    ...rs.map((r) => ["-a", "-t", `${vip}:80`, "-r", `${r}:80`, flag]),
    ["-A", "-u", `${vip}:${UDP_PORT}`, "-s", "rr"],
    ...rs.map((r) => ["-a", "-u", `${vip}:${UDP_PORT}`, "-r", `${r}:${UDP_PORT}`, flag]),
    ["-A", "-t", `${vip}:${IPERF_PORT}`, "-s", "rr"],
    ["-a", "-t", `${vip}:${IPERF_PORT}`, "-r", `${rs[0]}:${IPERF_PORT}`, flag],
  ];
  for (const c of cmds) {
    const r = ipvsadm(net.names, c);
    if (r.status !== 0) throw new Error(`tsvs ipvsadm ${c.join(" ")}: ${(r.stderr || r.stdout).trim()}`);
  }
}

function tsvsDirector(
  name: string,
  method: LabMethod,
  label: string,
  opts: { workers?: number; args?: string[]; ipv6?: boolean; smokeWorkloads?: readonly WorkloadName[] } = {},
): DirectorDef {
  const workers = opts.workers ?? 1;
  const ipv6 = opts.ipv6 === true;
  const args = [...(workers > 1 ? ["--workers", String(workers)] : []), ...(opts.args ?? [])];
  return {
    name,
    label,
    mode: method,
    ...(ipv6 ? { ipv6 } : {}),
    ...(opts.smokeWorkloads !== undefined ? { smokeWorkloads: opts.smokeWorkloads } : {}),
    unavailable() {
      if (tsvsEntry() === null) return "unavailable (tsvs is not built)";
      for (const a of args) {
        if (a.startsWith("--") && !daemonHasOption(a))
          return `unavailable (tsvs daemon has no ${a} option yet)`;
      }
      return null;
    },
    async start(net, pin) {
      const d = await startDaemon(net.names, method, args);
      if (d.proc !== null) net.procs.push(d.proc);
      if (d.status !== "running" || d.proc === null) throw new Error(`tsvs daemon: ${d.status}`);
      // Threads started before this call (the data-plane worker) are pinned too (-a).
      const usePin = workers > 1 ? null : pin;
      if (usePin !== null) {
        nsExecStatus(net.names.director, ["taskset", "-a", "-p", "-c", usePin, String(d.proc.pid)]);
      }
      addTsvsServices(net, method, ipv6);
      return {
        target: ipv6 ? LAB_ADDR6.VIP : VIP,
        pids: [d.proc.pid],
        pinned: usePin === null ? "not pinned (all cores)" : `cpu ${usePin}`,
      };
    },
  };
}

const direct: DirectorDef = {
  name: "direct",
  label: "direct to r1 (routed by the kernel, the ceiling)",
  mode: "nat",
  unavailable: () => null,
  async start(net) {
    sysctl(net.names.director, "net.ipv4.ip_forward", 1);
    return { target: rips(net)[0], pids: [], pinned: "kernel forwarding (softirq on the sending core)" };
  },
};

export function nftScript(r: readonly string[]): string {
  const map = r.map((a, i) => `${i} : ${a}`).join(", ");
  return `table ip benchnat {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${VIP} tcp dport 80 dnat to numgen inc mod ${r.length} map { ${map} }
    ip daddr ${VIP} udp dport ${UDP_PORT} dnat to numgen inc mod ${r.length} map { ${map} }
    ip daddr ${VIP} tcp dport ${IPERF_PORT} dnat to ${r[0]}
  }
}
`;
}

const nft: DirectorDef = {
  name: "nft-dnat",
  label: "nft DNAT (numgen inc mod 3)",
  mode: "nat",
  unavailable: () => (commandPath("nft") === null ? "unavailable (nft is not installed)" : null),
  async start(net) {
    sysctl(net.names.director, "net.ipv4.ip_forward", 1);
    addVip(net);
    const f = join(net.dir, "dnat.nft");
    writeFileSync(f, nftScript(rips(net)));
    nsExec(net.names.director, ["nft", "-f", f]);
    return { target: VIP, pids: [], pinned: "kernel forwarding (softirq on the sending core)" };
  },
};

export function haproxyConf(r: readonly string[]): string {
  const servers = r.map((a, i) => `  server r${i + 1} ${a}:80`).join("\n");
  return `global
  nbthread 1
  maxconn 4096

defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s

frontend http
  bind ${VIP}:80
  default_backend web

backend web
  balance roundrobin
${servers}

frontend bulk
  bind ${VIP}:${IPERF_PORT}
  default_backend bulk

backend bulk
  server r1 ${r[0]}:${IPERF_PORT}
`;
}

async function waitListen(ns: string, port: number, proc: ProcRef): Promise<boolean> {
  return waitFor(
    () => {
      if (!procAlive(proc)) return true;
      const r = nsExecStatus(ns, ["ss", "-Hltn", `sport = :${port}`], 5000);
      return r.status === 0 && r.stdout.trim() !== "";
    },
    10_000,
    100,
  );
}

const haproxy: DirectorDef = {
  name: "haproxy",
  label: "haproxy mode tcp, nbthread 1",
  mode: "nat",
  skip: { udp_pps: "unavailable (haproxy does not proxy UDP)" },
  unavailable: () => (commandPath("haproxy") === null ? "unavailable (haproxy is not installed)" : null),
  async start(net, pin) {
    addVip(net);
    const f = join(net.dir, "haproxy.cfg");
    writeFileSync(f, haproxyConf(rips(net)));
    const p = spawnInNs(
      net.names.director,
      pinArgv(pin, ["haproxy", "-db", "-f", f]),
      join(net.dir, "haproxy.log"),
      "haproxy",
    );
    net.procs.push(p);
    await waitListen(net.names.director, 80, p);
    if (!procAlive(p)) throw new Error(`haproxy exited (see ${join(net.dir, "haproxy.log")})`);
    return { target: VIP, pids: [p.pid], pinned: pin === null ? "not pinned" : `cpu ${pin}` };
  },
};

export const NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

/** Whether nginx can load the stream module (Debian ships it as libnginx-mod-stream). */
export function nginxStreamReason(): string | null {
  if (commandPath("nginx") === null) return "unavailable (nginx is not installed)";
  const v = nsExecVersion();
  if (v.includes("--with-stream ") || v.includes("--with-stream\n")) return null;
  if (existsSync(NGINX_STREAM_MODULE)) return null;
  return "unavailable (nginx has no stream module: install libnginx-mod-stream)";
}

/** `nginx -V` (printed on stderr). */
function nsExecVersion(): string {
  const r = spawnSync("nginx", ["-V"], { encoding: "utf8", timeout: 10_000 });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`;
}

export function nginxStreamConf(r: readonly string[], dir: string, loadModule: boolean): string {
  const up = (port: number): string => r.map((a) => `    server ${a}:${port};`).join("\n");
  return `# generated by tsvs bench
${loadModule ? `load_module ${NGINX_STREAM_MODULE};\n` : ""}worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 16384; }
stream {
  upstream web {
${up(80)}
  }
  upstream dns {
${up(UDP_PORT)}
  }
  server {
    listen ${VIP}:80 backlog=4096;
    proxy_pass web;
  }
  server {
    listen ${VIP}:${UDP_PORT} udp;
    proxy_pass dns;
    proxy_responses 0;
    proxy_timeout 5s;
  }
  server {
    listen ${VIP}:${IPERF_PORT};
    proxy_pass ${r[0]}:${IPERF_PORT};
  }
}
`;
}

const nginxStream: DirectorDef = {
  name: "nginx-stream",
  label: "nginx stream, 1 worker",
  mode: "nat",
  smokeWorkloads: HEADLINE,
  unavailable: nginxStreamReason,
  async start(net, pin) {
    addVip(net);
    const dir = join(net.dir, "nginx-stream");
    nsExec(net.names.director, ["mkdir", "-p", dir]);
    const f = join(dir, "nginx.conf");
    const builtIn = nsExecVersion().includes("--with-stream ");
    writeFileSync(f, nginxStreamConf(rips(net), dir, !builtIn));
    const p = spawnInNs(
      net.names.director,
      pinArgv(pin, ["nginx", "-p", dir, "-c", f, "-e", join(dir, "nginx-error.log")]),
      join(dir, "nginx.log"),
      "nginx stream",
    );
    net.procs.push(p);
    const ok = await waitFor(() => !procAlive(p) || fileHas(join(dir, "nginx.pid"), ""), 10_000);
    if (!ok || !procAlive(p)) throw new Error(`nginx stream did not come up (see ${dir})`);
    await waitListen(net.names.director, 80, p);
    return { target: VIP, pids: [p.pid], pinned: pin === null ? "not pinned" : `cpu ${pin}` };
  },
};

/** Whether the kernel has IPVS: /proc/net/ip_vs, or a successful `modprobe ip_vs`. */
export function ipvsReason(): string | null {
  if (existsSync("/proc/net/ip_vs")) return null;
  if (commandPath("modprobe") !== null) {
    try {
      execFileSync("modprobe", ["ip_vs"], { stdio: "ignore", timeout: 10_000 });
      if (existsSync("/proc/net/ip_vs")) return null;
    } catch {
      // fall through
    }
  }
  return "unavailable (no ip_vs)";
}

const ipvs: DirectorDef = {
  name: "ipvs-nat",
  label: "kernel IPVS NAT (ipvsadm -m)",
  mode: "nat",
  unavailable() {
    const r = ipvsReason();
    if (r !== null) return r;
    ensurePackages(["ipvsadm"]);
    return commandPath("ipvsadm") === null ? "unavailable (ipvsadm is not installed)" : null;
  },
  async start(net) {
    const ns = net.names.director;
    sysctl(ns, "net.ipv4.ip_forward", 1);
    addVip(net);
    const r = rips(net);
    const cmds: string[][] = [
      ["-A", "-t", `${VIP}:80`, "-s", "rr"],
      ...r.map((a) => ["-a", "-t", `${VIP}:80`, "-r", `${a}:80`, "-m"]),
      ["-A", "-u", `${VIP}:${UDP_PORT}`, "-s", "rr"],
      ...r.map((a) => ["-a", "-u", `${VIP}:${UDP_PORT}`, "-r", `${a}:${UDP_PORT}`, "-m"]),
      ["-A", "-t", `${VIP}:${IPERF_PORT}`, "-s", "rr"],
      ["-a", "-t", `${VIP}:${IPERF_PORT}`, "-r", `${r[0]}:${IPERF_PORT}`, "-m"],
    ];
    for (const c of cmds) nsExec(ns, ["ipvsadm", ...c]);
    return { target: VIP, pids: [], pinned: "kernel forwarding (softirq on the sending core)" };
  },
};

/** Every director, in the order they run and are reported. */
export const DIRECTORS: readonly DirectorDef[] = [
  direct,
  tsvsDirector("tsvs-nat", "nat", "tsvs NAT (-m), 1 worker"),
  // The smoke run takes IPv6 NAT's two headline cells (about 10 s more), not DR's (another 10 s).
  tsvsDirector("tsvs-nat6", "nat", "tsvs NAT (-m) over IPv6, 1 worker", {
    ipv6: true,
    smokeWorkloads: HEADLINE,
  }),
  // The variants and the other methods: the smoke run takes their two headline cells (the paths the
  // other workloads exercise are the same; the suite's time budget is what it saves, ~50 s).
  tsvsDirector("tsvs-nat-2w", "nat", "tsvs NAT (-m), 2 workers", { workers: 2, smokeWorkloads: HEADLINE }),
  tsvsDirector("tsvs-nat-ring", "nat", "tsvs NAT (-m), TPACKET_V3 ring receive (--io ring)", {
    args: ["--io", "ring"],
    smokeWorkloads: HEADLINE,
  }),
  tsvsDirector("tsvs-nat-spin", "nat", "tsvs NAT (-m), --spin-us 100 (no sleep within 100 µs of a frame)", {
    args: ["--spin-us", "100"],
    smokeWorkloads: HEADLINE,
  }),
  // AF_XDP (docs/io.md "AF_XDP"): off the smoke run, which keeps its time budget.
  tsvsDirector("tsvs-nat-xdp", "nat", "tsvs NAT (-m), AF_XDP (--io xdp)", {
    args: ["--io", "xdp"],
    smokeWorkloads: [],
  }),
  tsvsDirector("tsvs-nat-xdp-2w", "nat", "tsvs NAT (-m), AF_XDP (--io xdp), 2 workers", {
    args: ["--io", "xdp"],
    workers: 2,
    smokeWorkloads: [],
  }),
  tsvsDirector("tsvs-dr", "dr", "tsvs DR (-g)"),
  tsvsDirector("tsvs-dr-xdp", "dr", "tsvs DR (-g), AF_XDP (--io xdp)", {
    args: ["--io", "xdp"],
    smokeWorkloads: [],
  }),
  tsvsDirector("tsvs-dr6", "dr", "tsvs DR (-g) over IPv6", { ipv6: true, smokeWorkloads: [] }),
  tsvsDirector("tsvs-fullnat", "fullnat", "tsvs FULLNAT (--fullnat)", { smokeWorkloads: HEADLINE }),
  tsvsDirector("tsvs-tun", "tun", "tsvs TUN (-i), servers decapsulate in user space (no ipip module here)", {
    smokeWorkloads: HEADLINE,
  }),
  nft,
  haproxy,
  nginxStream,
  ipvs,
];
