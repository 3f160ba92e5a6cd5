// `tsvs realserver setup|doctor|undo --vip VIP [--method dr|tun] [--tun-type ipip|gue|gre] [--director ADDR] [--iface IF]`: prepares a real
// server of the DR/TUN methods in the current network namespace (docs/realserver.md), for an IPv4
// VIP (realserver.ts) or an IPv6 one (realserver6.ts), chosen by the VIP's spelling; each family
// keeps its own state, so a dual-stack server is set up once per VIP. Runnable on its own too
// (`node dist/src/cli/realserver.js …`), which is how `tsvs lab` runs it in a namespace.

import { pathToFileURL } from "node:url";
import { TsvsError } from "../core/errors.js";
import { canonical6 } from "../realserver/checks6.js";
import {
  type DecapMode,
  formatFindings,
  type RealserverMethod,
  realserverDoctor,
  realserverSetup,
  realserverTeardown,
  type TunnelType,
} from "../realserver/realserver.js";
import { realserverDoctor6, realserverSetup6, realserverTeardown6 } from "../realserver/realserver6.js";

const USAGE = `Usage: tsvs realserver COMMAND --vip VIP [--method dr|tun] [--director ADDR[,ADDR]] [--iface IF]
                           [--tun-type ipip|gue|gre] [--tun-port PORT] [--decap auto|kernel|user]
                           [--tunnel-local ADDR[,ADDR]] [--json]

Commands:
  setup      IPv4 VIP: arp_ignore=1, arp_announce=2 (all + IF), VIP/32 on lo; TUN: rp_filter=0
             (all + IF) and a decapsulator for the director's --tun-type (GUE: on its --tun-port):
             the kernel's device where it has the module (tunl0, fou + tunl0, gre0), else the
             user-space decapsulator (any local address) on a tun device; DR with
             clients routed through another interface: rp_filter=2 on IF
             IPv6 VIP: VIP/128 on lo (nodad), disable_ipv6=0 on lo and IF; TUN: a decapsulator
             for next header 41, GUE or GRE inside IPv6 and IPv4 (ip6tnl0 + sit0, fou, gre0 +
             ip6gre0 where the kernel has them)
  doctor     print every setting with its meaning; exit 1 when something is wrong (also when the
             decapsulator received tunnelled packets it did not deliver)
  undo       stop the decapsulator, restore the settings found by setup, remove the VIP from lo
             (teardown: the same); without --vip, for both families

IF is the interface that leads to the director: the route toward --director (the DIP, or the
tunnel source), else --iface, else the route toward the tunnel sources the decapsulator has seen,
else the only interface with an address of the VIP's family; with several and no hint, every one
of them. VIP, ADDR: IPv4 or IPv6 (any inet_pton spelling; --director may be of the other family
in TUN, which tunnels across families).
--method defaults to dr, --tun-type to ipip (doctor: to what setup was given). --decap kernel
insists on the kernel's devices, --decap user on the user-space decapsulator. --tunnel-local
restricts the user-space decapsulator to these outer destinations.
State is kept in /run/tsvs/realserver/<netns inode>/ with the namespace's netns cookie; what a
deleted namespace that had the same inode left there is removed unread (docs/realserver.md).
`;

interface Args {
  cmd: string;
  vip: string | undefined;
  method: RealserverMethod;
  iface: string | undefined;
  director: string[];
  tunnelLocal: string[] | undefined;
  tunType: TunnelType | undefined;
  tunPort: number | undefined;
  decap: DecapMode | undefined;
  json: boolean;
  quiet: boolean;
}

function parse(argv: string[]): Args | string {
  const [cmd, ...rest] = argv;
  const a: Args = {
    cmd: cmd ?? "",
    vip: undefined,
    method: "dr",
    iface: undefined,
    director: [],
    tunnelLocal: undefined,
    tunType: undefined,
    tunPort: undefined,
    decap: undefined,
    json: false,
    quiet: false,
  };
  for (let i = 0; i < rest.length; i++) {
    const opt = rest[i];
    const needs = (): string | undefined => {
      i++;
      return rest[i];
    };
    switch (opt) {
      case "--vip":
        a.vip = needs();
        break;
      case "--method":
      case "-m": {
        const m = needs();
        if (m !== "dr" && m !== "tun") return `--method must be dr or tun, not '${m ?? ""}'`;
        a.method = m;
        break;
      }
      case "--iface":
      case "-i":
        a.iface = needs();
        break;
      case "--director":
      case "-d": {
        const v = needs();
        if (v === undefined || v === "") return `${opt} needs an address`;
        a.director.push(...v.split(",").filter((x) => x !== ""));
        break;
      }
      case "--tunnel-local": {
        const v = needs();
        if (v === undefined || v === "") return "--tunnel-local needs an address";
        a.tunnelLocal = [...(a.tunnelLocal ?? []), ...v.split(",").filter((x) => x !== "")];
        break;
      }
      case "--tun-type": {
        const v = needs();
        if (v !== "ipip" && v !== "gue" && v !== "gre")
          return `--tun-type must be ipip, gue or gre, not '${v ?? ""}'`;
        a.tunType = v;
        break;
      }
      case "--tun-port": {
        const v = Number(needs());
        if (!Number.isInteger(v) || v < 1 || v > 65535) return "--tun-port needs a port (1..65535)";
        a.tunPort = v;
        break;
      }
      case "--decap": {
        const v = needs();
        if (v !== "auto" && v !== "kernel" && v !== "user")
          return `--decap must be auto, kernel or user, not '${v ?? ""}'`;
        a.decap = v;
        break;
      }
      case "--json":
        a.json = true;
        break;
      case "-q":
      case "--quiet":
        a.quiet = true;
        break;
      default:
        return `unknown option '${opt}'`;
    }
  }
  return a;
}

/** An IPv6 VIP is written with colons (inet_pton's forms all have them; an IPv4 one never does). */
function isIpv6(vip: string): boolean {
  return vip.includes(":");
}

export async function realserverMain(argv: string[]): Promise<number> {
  const a = parse(argv);
  if (typeof a === "string") {
    process.stderr.write(`tsvs realserver: ${a}\n${USAGE}`);
    return 2;
  }
  if (a.cmd === "help" || a.cmd === "--help" || a.cmd === "-h") {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = a.quiet ? () => {} : (line: string) => process.stdout.write(`${line}\n`);
  try {
    switch (a.cmd) {
      case "setup":
        if (a.vip === undefined) throw new TsvsError("TSVS_ERR_USAGE", "--vip is required");
        await (isIpv6(a.vip) ? realserverSetup6 : realserverSetup)({
          vip: a.vip,
          method: a.method,
          iface: a.iface,
          director: a.director,
          tunnelLocal: a.tunnelLocal,
          tunType: a.tunType,
          tunPort: a.tunPort,
          decap: a.decap,
          log,
        });
        return 0;
      case "teardown":
      case "undo":
        if (a.vip === undefined || !isIpv6(a.vip)) await realserverTeardown({ vip: a.vip, log });
        if (a.vip === undefined || isIpv6(a.vip)) await realserverTeardown6({ vip: a.vip, log });
        return 0;
      case "doctor": {
        if (a.vip === undefined) throw new TsvsError("TSVS_ERR_USAGE", "--vip is required");
        const f = (isIpv6(a.vip) ? realserverDoctor6 : realserverDoctor)({
          vip: a.vip,
          method: a.method,
          iface: a.iface,
          director: a.director,
          tunType: a.tunType,
          tunPort: a.tunPort,
        });
        if (a.json) process.stdout.write(`${JSON.stringify(f, null, 2)}\n`);
        else process.stdout.write(formatFindings(canonical6(a.vip) ?? a.vip, a.method, f));
        return f.some((x) => x.level === "FAIL") ? 1 : 0;
      }
      default:
        process.stderr.write(`tsvs realserver: unknown command '${a.cmd}'\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    process.stderr.write(`tsvs realserver: ${(e as Error).message}\n`);
    return 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await realserverMain(process.argv.slice(2));
}
