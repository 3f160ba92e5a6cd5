// `tsvs config check FILE`: parses a configuration (tsvs YAML or keepalived.conf), prints
// the table it stands for as `ipvsadm -R` input (one ipvsadm -S line a command) on stdout
// and its warnings on stderr. Exit 0 when usable, 1 on errors, 2 on a usage error.
// `tsvs config check FILE | tsvs ipvsadm -R` loads it without health checks. A file with VRRP
// sections gets one `# ` comment line per vrrp_instance, vrrp_sync_group, vrrp_script and
// lvs_sync_daemon first (tsvs ipvsadm -R skips comment lines).

import { readFileSync } from "node:fs";
import { bgpConfigErrors, bgpVips } from "../config/bird.js";
import { type ConfigFormat, loadConfigFile } from "../config/load.js";
import {
  ConfigError,
  type ConfigModel,
  commandToIpvsadm,
  formatDiagnostic,
  serviceKeyOf,
  serviceKeyString,
  toCommands,
} from "../config/model.js";
import { haSummary } from "../config/vrrp.js";
import { parseBgpYaml } from "../config/yaml.js";
import { TsvsError } from "../core/errors.js";

const USAGE = `Usage: tsvs config check [--format yaml|keepalived] [--bgp BGP.yaml] FILE
  Prints the ipvsadm rules FILE stands for (as ipvsadm -S writes them) and its warnings;
  its VRRP instances, sync groups, scripts and sync daemon as "# " comment lines first.
  FILE is tsvs YAML (.yaml, .yml) or keepalived.conf (anything else). --bgp checks the bgp
  section of BGP.yaml with FILE's VIPs, as \`tsvs daemon --config FILE --bgp BGP.yaml\` uses them.
`;

export interface ConfigIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

export async function configMain(args: string[], io: ConfigIo = process): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "-h" || sub === "--help" || sub === "help") {
    io.stdout.write(USAGE);
    return 0;
  }
  if (sub !== "check") {
    io.stderr.write(
      `tsvs config: ${sub === undefined ? "missing command" : `unknown command '${sub}'`}\n${USAGE}`,
    );
    return 2;
  }
  let format: ConfigFormat | undefined;
  let bgpFile: string | undefined;
  const files: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === "--format" || a.startsWith("--format=")) {
      const v = a.includes("=") ? a.slice(a.indexOf("=") + 1) : rest[++i];
      if (v !== "yaml" && v !== "keepalived") {
        io.stderr.write(`tsvs config: --format takes yaml or keepalived\n${USAGE}`);
        return 2;
      }
      format = v;
    } else if (a === "--bgp" || a.startsWith("--bgp=")) {
      bgpFile = a.includes("=") ? a.slice(a.indexOf("=") + 1) : rest[++i];
      if (bgpFile === undefined || bgpFile === "") {
        io.stderr.write(`tsvs config: --bgp takes a YAML file\n${USAGE}`);
        return 2;
      }
    } else if (a.startsWith("-") && a !== "-") {
      io.stderr.write(`tsvs config: unknown option '${a}'\n${USAGE}`);
      return 2;
    } else files.push(a);
  }
  if (files.length !== 1) {
    io.stderr.write(`tsvs config: check takes one FILE\n${USAGE}`);
    return 2;
  }
  try {
    const { model, warnings } = await loadConfigFile(files[0], format);
    if (bgpFile !== undefined) {
      if (model.bgp !== undefined)
        throw new TsvsError(
          "TSVS_ERR_USAGE",
          `${files[0]} has a bgp section and --bgp ${bgpFile} another: give one of them`,
        );
      const { bgp, warnings: w } = parseBgpYaml(readFileOr(bgpFile), bgpFile);
      warnings.push(...w);
      const errors = bgpConfigErrors(bgp, bgpVips(model.virtualServers));
      if (errors.length > 0)
        throw new ConfigError(errors.map((message) => ({ ...bgp.pos, message: `bgp: ${message}` })));
      model.bgp = bgp;
    }
    for (const w of warnings)
      io.stderr.write(`${formatDiagnostic({ ...w, message: `warning: ${w.message}` })}\n`);
    const out = [
      ...haSummary(model.ha).map((l) => `# ${l}\n`),
      ...bgpSummary(model).map((l) => `# ${l}\n`),
      ...toCommands(model).map((c) => `${commandToIpvsadm(c)}\n`),
    ];
    io.stdout.write(out.join(""));
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const d of e.diagnostics) io.stderr.write(`${formatDiagnostic(d)}\n`);
      return 1;
    }
    if (e instanceof TsvsError) {
      io.stderr.write(`tsvs config: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

/** The bgp section's lines: the speaker, its neighbours, each VIP and the services it follows. */
function bgpSummary(model: ConfigModel): string[] {
  const b = model.bgp;
  if (b === undefined) return [];
  const out = [
    `bgp: AS ${b.localAs}, router id ${b.routerId ?? "the source address toward the first neighbour"}, ` +
      `hold ${b.holdTime} s, keepalive ${b.keepaliveTime} s, BFD ${b.bfd ? "on" : "off"}, liveness device ${b.livenessIfname}`,
  ];
  for (const n of b.neighbors)
    out.push(
      `bgp neighbor ${n.address} AS ${n.as}${n.port !== undefined ? ` port ${n.port}` : ""}${n.password !== undefined ? " (MD5)" : ""}${(n.bfd ?? b.bfd) ? " (BFD)" : ""}`,
    );
  const { vips4, vips6 } = bgpVips(model.virtualServers);
  for (const vip of [...vips4, ...vips6]) {
    const services = model.virtualServers
      .filter((vs) => {
        const own = bgpVips([vs]);
        return [...own.vips4, ...own.vips6][0] === vip;
      })
      .map((vs) => serviceKeyString(serviceKeyOf(vs)));
    out.push(`bgp VIP ${vip}: announced while one of ${services.join(", ")} has quorum`);
  }
  return out;
}

/** A file's text; TsvsError when it cannot be read. */
function readFileOr(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new TsvsError("TSVS_ERR_PARSE", `${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}
