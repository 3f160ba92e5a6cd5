// `tsvs lab up|down|status|demo`: the network-namespace lab (docs/lab.md).

import { listCommand } from "../lab/daemon.js";
import { labDemo } from "../lab/demo.js";
import { labDemoHa } from "../lab/demo-ha.js";
import { labDemoScale } from "../lab/demo-scale.js";
import { formatStatus, LAB_GUE_PORT, labStatus, labUp } from "../lab/lab.js";
import {
  formatScaleStatus,
  isScaleLab,
  SCALE_ADDR,
  SCALE_MAX_DIRECTORS,
  scaleDown,
  scaleNames,
  scaleStatus,
  scaleUp,
} from "../lab/scale.js";
import type { ServerKind } from "../lab/servers.js";
import {
  DEFAULT_PREFIX,
  LAB_ADDR,
  LAB_ADDR6,
  LAB_BACKUPS,
  LAB_METHODS,
  type LabBackup,
  type LabMethod,
  type LabOffloads,
  labNames,
  RUN_ROOT,
} from "../lab/topology.js";

const USAGE = `Usage: tsvs lab COMMAND [OPTIONS]

Commands:
  up [--method nat|dr|tun|fullnat]   build the lab, start the servers and the daemon, add the service
                                     TCP ${LAB_ADDR.VIP}:80 (default method nat)
  up --method tun --tun-type ipip|gue|gre
                                     TUN over IPIP (default), GUE (UDP port ${LAB_GUE_PORT}) or GRE;
                                     the real servers are set up for it
  down                               remove everything the lab made (idempotent, works after a crash)
  status [--json]                    namespaces, addresses, processes, daemon
  demo [--methods LIST] [--requests N]
                                     for each method: up, N curl requests (default 30), counts per
                                     server and ipvsadm -Ln, down
  up --ha [--method M] [--backup tsvs|keepalived]
                                     two directors, P-d (priority 150) and P-d2 (100), each
                                     running tsvs daemon --config with a keepalived.conf the lab
                                     writes; the VIP (and, for NAT, the servers' gateway
                                     ${LAB_ADDR.GW}) moves by VRRP; --backup keepalived runs
                                     keepalived on P-d2 instead (VRRP only: it takes the VIP
                                     over, not the traffic)
  demo --ha [--method M] [--backup tsvs|keepalived]
                                     up --ha, a ~6 s download through the VIP, SIGKILL to the
                                     master's daemon halfway: prints the takeover time and whether
                                     the download completed intact (exit 1 if not), then down
  up --directors N [--bgp] [--method M] [--scheduler S] [--sync on|off] [--no-sloppy-tcp]
                                     scale-out (docs/lab.md "Scale-out"): N active directors
                                     (2..${SCALE_MAX_DIRECTORS}) behind a router that spreads the VIP
                                     ${SCALE_ADDR.VIP} over them by ECMP; with --bgp each
                                     director announces it over BGP (BIRD) and the router runs
                                     BIRD; without, a static multipath route. Default method dr,
                                     scheduler mh, sync on (master and backup on every director)
  demo --scale [--directors N] [--method M] [--conns C]
                                     up --directors N --bgp (default 3), C downloads (default 60)
                                     through the VIP, SIGKILL to one director's daemon: prints
                                     the flows per director, the time until the router dropped
                                     it and whether every download completed intact (exit 1 if
                                     not), then down

Options:
  --prefix P                 namespace name prefix (default ${DEFAULT_PREFIX}: ${DEFAULT_PREFIX}-c, ${DEFAULT_PREFIX}-d, ...)
  --servers auto|nginx|node  real-server HTTP: nginx when installed (auto), or the Node server
  --no-daemon                up: topology and servers only
  --ha                       up, demo: two directors (VRRP and connection sync), see above
  --backup tsvs|keepalived   with --ha: what runs on the second director (default tsvs)
  --offloads on|off          up, demo: veth checksum/segmentation offloads as veth has them (on,
                             the default, as on a user's host) or turned off with ethtool (to compare)
  --ipv6                     up: dual stack, IPv6 on every link in ${LAB_ADDR6.CLIENT_NET.replace("::/64", "::/48")} (docs/lab.md
                             "IPv6"); the servers answer on it too

The daemon listens on the director namespace's own control socket, so \`ip netns exec P-d tsvs
ipvsadm -Ln\` reaches it (${RUN_ROOT}/lab.sock is a link to it for older scripts).
`;

interface Args {
  cmd: string;
  prefix: string;
  method: LabMethod;
  methods: LabMethod[];
  servers: ServerKind | "auto";
  daemon: boolean;
  offloads: LabOffloads;
  json: boolean;
  requests: number;
  ha: boolean;
  backup: LabBackup;
  tunType: "ipip" | "gue" | "gre";
  ipv6: boolean;
  /** Scale-out: the number of directors (0: not a scale-out lab). */
  directors: number;
  bgp: boolean;
  scheduler: string;
  sync: boolean;
  sloppyTcp: boolean;
  scale: boolean;
  conns: number;
}

function isMethod(s: string | undefined): s is LabMethod {
  return s !== undefined && (LAB_METHODS as readonly string[]).includes(s);
}

function parse(argv: string[]): Args | string {
  const [cmd, ...rest] = argv;
  const a: Args = {
    cmd: cmd ?? "",
    prefix: DEFAULT_PREFIX,
    method: "nat",
    methods: [...LAB_METHODS],
    servers: "auto",
    daemon: true,
    offloads: "on",
    json: false,
    requests: 30,
    ha: false,
    backup: "tsvs",
    tunType: "ipip",
    ipv6: false,
    directors: 0,
    bgp: false,
    scheduler: "mh",
    sync: true,
    sloppyTcp: true,
    scale: false,
    conns: 60,
  };
  for (let i = 0; i < rest.length; i++) {
    const opt = rest[i];
    const v = rest[i + 1];
    switch (opt) {
      case "--prefix":
        if (v === undefined) return "--prefix needs a value";
        a.prefix = v;
        i++;
        break;
      case "--method":
      case "-m":
        if (!isMethod(v)) return `--method must be one of ${LAB_METHODS.join(", ")}`;
        a.method = v;
        i++;
        break;
      case "--methods": {
        const ms = (v ?? "").split(",");
        if (!ms.every(isMethod)) return `--methods takes a list of ${LAB_METHODS.join(", ")}`;
        a.methods = ms;
        i++;
        break;
      }
      case "--servers":
        if (v !== "auto" && v !== "nginx" && v !== "node") return "--servers must be auto, nginx or node";
        a.servers = v;
        i++;
        break;
      case "--requests": {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) return "--requests needs a positive integer";
        a.requests = n;
        i++;
        break;
      }
      case "--offloads":
        if (v !== "on" && v !== "off") return "--offloads must be on or off";
        a.offloads = v;
        i++;
        break;
      case "--ha":
        a.ha = true;
        break;
      case "--tun-type":
        if (v !== "ipip" && v !== "gue" && v !== "gre") return "--tun-type must be ipip, gue or gre";
        a.tunType = v;
        i++;
        break;
      case "--backup":
        if (v !== "tsvs" && v !== "keepalived") return `--backup must be one of ${LAB_BACKUPS.join(", ")}`;
        a.backup = v;
        i++;
        break;
      case "--no-daemon":
        a.daemon = false;
        break;
      case "--ipv6":
        a.ipv6 = true;
        break;
      case "--json":
        a.json = true;
        break;
      case "--directors": {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 2 || n > SCALE_MAX_DIRECTORS)
          return `--directors needs a number from 2 to ${SCALE_MAX_DIRECTORS}`;
        a.directors = n;
        i++;
        break;
      }
      case "--bgp":
        a.bgp = true;
        break;
      case "--scheduler":
        if (v === undefined || !/^[a-z]+$/.test(v)) return "--scheduler needs a scheduler name";
        a.scheduler = v;
        i++;
        break;
      case "--sync":
        if (v !== "on" && v !== "off") return "--sync must be on or off";
        a.sync = v === "on";
        i++;
        break;
      case "--no-sloppy-tcp":
        a.sloppyTcp = false;
        break;
      case "--scale":
        a.scale = true;
        break;
      case "--conns": {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 2000) return "--conns needs a number from 1 to 2000";
        a.conns = n;
        i++;
        break;
      }
      default:
        return `unknown option '${opt}'`;
    }
  }
  if (argv.includes("--backup") && !a.ha) return "--backup goes with --ha";
  const scaleOnly = ["--bgp", "--scheduler", "--sync", "--no-sloppy-tcp"].find((o) => argv.includes(o));
  if (scaleOnly !== undefined && a.directors === 0 && !a.scale) return `${scaleOnly} goes with --directors`;
  if ((a.directors > 0 || a.scale) && (a.ha || a.ipv6 || a.tunType !== "ipip" || argv.includes("--offloads")))
    return "--directors and --scale go without --ha, --ipv6, --tun-type and --offloads";
  if (a.scale && a.cmd !== "demo") return "--scale goes with demo";
  if (argv.includes("--conns") && !a.scale) return "--conns goes with demo --scale";
  // The scale-out lab's default method is DR (docs/lab.md "Scale-out").
  if ((a.directors > 0 || a.scale) && !argv.includes("--method") && !argv.includes("-m")) a.method = "dr";
  if (a.ipv6 && a.cmd !== "up") return "--ipv6 goes with up";
  if (a.tunType !== "ipip" && (a.method !== "tun" || a.cmd !== "up"))
    return "--tun-type goes with up --method tun";
  return a;
}

export async function labMain(argv: string[]): Promise<number> {
  const a = parse(argv);
  if (typeof a === "string") {
    process.stderr.write(`tsvs lab: ${a}\n${USAGE}`);
    return 2;
  }
  const log = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  try {
    const names = labNames(a.prefix);
    switch (a.cmd) {
      case "up": {
        if (a.directors > 0) {
          const sn = scaleNames(a.prefix);
          const st = await scaleUp(sn, {
            directors: a.directors,
            method: a.method,
            scheduler: a.scheduler,
            sync: a.sync,
            sloppyTcp: a.sloppyTcp,
            bgp: a.bgp,
            servers: a.servers,
            daemon: a.daemon,
            log,
          });
          const p = names.prefix !== DEFAULT_PREFIX ? ` --prefix ${names.prefix}` : "";
          log(`lab ${names.prefix} is up (scale-out, ${st.directors.length} directors, ${st.method}); try:`);
          log(`  ip netns exec ${sn.client} curl http://${SCALE_ADDR.VIP}/`);
          log(`  ip netns exec ${sn.router} ip route show ${SCALE_ADDR.VIP}`);
          log(`  tsvs lab status${p}`);
          return a.daemon && st.directors.some((d) => d.status !== "running") ? 1 : 0;
        }
        const st = await labUp(names, {
          method: a.method,
          servers: a.servers,
          daemon: a.daemon,
          offloads: a.offloads,
          tunType: a.tunType,
          ipv6: a.ipv6,
          ...(a.ha ? { ha: { backup: a.backup } } : {}),
          log,
        });
        log(
          `lab ${names.prefix} is up (${st.method}${a.tunType !== "ipip" ? ` over ${a.tunType}` : ""}${a.ha ? `, HA with a ${a.backup} backup` : ""}); try:`,
        );
        log(`  ip netns exec ${names.client} curl http://${LAB_ADDR.VIP}/`);
        if (a.ipv6)
          log(
            `  ip netns exec ${names.client} ping -6 -c 1 ${LAB_ADDR6.DIR_CLIENT}   (the director over IPv6)`,
          );
        if (st.daemonStatus.startsWith("running")) log(`  ${listCommand(names)}`);
        if (a.ha)
          log(
            `  tsvs lab status${names.prefix !== DEFAULT_PREFIX ? ` --prefix ${names.prefix}` : ""}   (who is master)`,
          );
        const ha2 = st.ha === undefined || st.ha.daemon2Status === "running";
        return a.daemon && (st.daemonStatus !== "running" || !ha2) ? 1 : 0;
      }
      case "down":
        // Also a scale-out lab's directors; the classic lab's teardown comes with it.
        for (const l of await scaleDown(scaleNames(a.prefix))) log(l);
        return 0;
      case "status": {
        const sn = scaleNames(a.prefix);
        if (isScaleLab(sn)) {
          const ss = scaleStatus(sn);
          if (ss !== null) {
            process.stdout.write(a.json ? `${JSON.stringify(ss, null, 2)}\n` : formatScaleStatus(ss));
            return 0;
          }
        }
        const s = labStatus(names);
        process.stdout.write(a.json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
        return 0;
      }
      case "demo": {
        if (a.scale) {
          const r = await labDemoScale(scaleNames(a.prefix), {
            directors: a.directors > 0 ? a.directors : 3,
            method: a.method,
            scheduler: a.scheduler,
            sync: a.sync,
            conns: a.conns,
            servers: a.servers,
            log,
          });
          return r.ok ? 0 : 1;
        }
        if (a.ha) {
          const r = await labDemoHa(names, {
            method: a.method,
            backup: a.backup,
            servers: a.servers,
            offloads: a.offloads,
            log,
          });
          return r.ok ? 0 : 1;
        }
        const res = await labDemo(names, {
          methods: a.methods,
          requests: a.requests,
          servers: a.servers,
          offloads: a.offloads,
          log,
        });
        return res.every((r) => r.failed === 0) ? 0 : 1;
      }
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(USAGE);
        return 0;
      default:
        process.stderr.write(`tsvs lab: unknown command '${a.cmd}'\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    process.stderr.write(`tsvs lab: ${(e as Error).message}\n`);
    return 1;
  }
}
