// `tsvs lab up|down|status|demo`: the network-namespace lab (docs/lab.md).

import { listCommand } from "../lab/daemon.js";
import { labDemo } from "../lab/demo.js";
import { formatStatus, labStatus, labUp } from "../lab/lab.js";
import type { ServerKind } from "../lab/servers.js";
import {
  DEFAULT_PREFIX,
  LAB_ADDR,
  LAB_METHODS,
  type LabMethod,
  type LabOffloads,
  labDown,
  labNames,
  RUN_ROOT,
} from "../lab/topology.js";

const USAGE = `Usage: tsvs lab COMMAND [OPTIONS]

Commands:
  up [--method nat|dr|tun|fullnat]   build the lab, start the servers and the daemon, add the service
                                     TCP ${LAB_ADDR.VIP}:80 (default method nat)
  down                               remove everything the lab made (idempotent, works after a crash)
  status [--json]                    namespaces, addresses, processes, daemon
  demo [--methods LIST] [--requests N]
                                     for each method: up, N curl requests (default 30), counts per
                                     server and ipvsadm -Ln, down

Options:
  --prefix P                 namespace name prefix (default ${DEFAULT_PREFIX}: ${DEFAULT_PREFIX}-c, ${DEFAULT_PREFIX}-d, ...)
  --servers auto|nginx|node  real-server HTTP: nginx when installed (auto), or the Node server
  --no-daemon                up: topology and servers only
  --offloads on|off          up, demo: veth checksum/segmentation offloads as veth has them (on,
                             the default, as on a user's host) or turned off with ethtool (to compare)

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
      case "--no-daemon":
        a.daemon = false;
        break;
      case "--json":
        a.json = true;
        break;
      default:
        return `unknown option '${opt}'`;
    }
  }
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
        const st = await labUp(names, {
          method: a.method,
          servers: a.servers,
          daemon: a.daemon,
          offloads: a.offloads,
          log,
        });
        log(`lab ${names.prefix} is up (${st.method}); try:`);
        log(`  ip netns exec ${names.client} curl http://${LAB_ADDR.VIP}/`);
        if (st.daemonStatus === "running") log(`  ${listCommand(names)}`);
        return a.daemon && st.daemonStatus !== "running" ? 1 : 0;
      }
      case "down":
        for (const l of await labDown(names)) log(l);
        return 0;
      case "status": {
        const s = labStatus(names);
        process.stdout.write(a.json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
        return 0;
      }
      case "demo": {
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
