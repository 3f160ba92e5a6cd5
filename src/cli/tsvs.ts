// `tsvs` — the command line entry. Parses the subcommand and hands off; every subcommand
// returns its exit code (bin/tsvs sets process.exitCode), errors print one line on stderr.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { TsvsError } from "../core/errors.js";
import { benchMain } from "./bench.js";
import { configMain } from "./config.js";
import { daemonMain } from "./daemon.js";
import { explainMain } from "./explain.js";
import { fuzzMain } from "./fuzz.js";
import { fwmarkMain, ipvsadmMain, reloadMain, statusMain, sysctlMain } from "./ipvsadm-client.js";
import { labMain } from "./lab.js";
import { realserverMain } from "./realserver.js";
import { simMain } from "./sim/main.js";
import { topMain } from "./top.js";

const USAGE = `Usage: tsvs COMMAND [ARGS]

Commands:
  lab up|demo|status|down   the network-namespace lab: client, director, real servers (docs/lab.md)
  daemon [--iface IF]...    the director on this namespace's interfaces (all up ones, followed, by default; docs/daemon.md)
  ipvsadm ARGS              ipvsadm 1.31's commands and output, through the daemon's control socket
  status [--json]           the daemon's interfaces, the host it follows, worker, counters
  top [-d SECONDS] [--once] a live view: rates per service and real server, drops, health (docs/top.md)
  explain -t VIP:PORT --from CIP:CPORT [--fwmark N] [--json]   where a new connection would go, and why (docs/explain.md)
  sysctl [NAME[=VALUE]]     the daemon's director sysctls (expire_nodest_conn, conn_reuse_mode, ...)
  fwmark add|del|list|flush [RULE]   the daemon's firewall-mark rules (iptables -j MARK phrasing)
  realserver setup|doctor|teardown --vip VIP [--method dr|tun]   prepare a DR/TUN real server
  reload                    the daemon re-reads its --config file (as SIGHUP does)
  config check FILE         validate a keepalived.conf or tsvs YAML file, print its ipvsadm rules
  bench [--smoke] [--only NAME,...]   tsvs against nft DNAT, haproxy, nginx stream (docs/bench.md)
  fuzz [--count N] [--seed S]   malformed and random frames against a daemon in namespaces (docs/fuzz.md)
  sim FILE...               run scenario files on the in-memory network (docs/sim.md)
  sim --all DIR             run every *.tsvs scenario in DIR
  version                   print the version
  help                      this text
`;

function version(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

/**
 * `tsvs … | head`: the reader went away. Node ignores SIGPIPE and reports EPIPE as an error event,
 * which unhandled would end the process with a stack trace; a command-line tool just stops.
 */
function quietOnClosedPipe(): void {
  for (const s of [process.stdout, process.stderr])
    if (s.listenerCount("error") === 0)
      s.on("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
        throw e;
      });
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  quietOnClosedPipe();
  try {
    switch (cmd) {
      case "sim":
        return await simMain(rest);
      case "lab":
        return await labMain(rest);
      case "daemon":
        return await daemonMain(rest);
      case "ipvsadm":
        return await ipvsadmMain(rest);
      case "status":
        return await statusMain(rest);
      case "top":
        return await topMain(rest);
      case "explain":
        return await explainMain(rest);
      case "sysctl":
        return await sysctlMain(rest);
      case "fwmark":
        return await fwmarkMain(rest);
      case "reload":
        return await reloadMain(rest);
      case "config":
        return await configMain(rest);
      case "realserver":
        return await realserverMain(rest);
      case "bench":
        return await benchMain(rest);
      case "fuzz":
        return await fuzzMain(rest);
      case "version":
      case "--version":
      case "-V":
        process.stdout.write(`tsvs ${version()}\n`);
        return 0;
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        process.stderr.write(`tsvs: unknown command '${cmd}'\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof TsvsError) {
      process.stderr.write(`tsvs: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
