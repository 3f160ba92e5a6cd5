// `tsvs config check FILE`: parses a configuration (tsvs YAML or keepalived.conf), prints
// the table it stands for as `ipvsadm -R` input (one ipvsadm -S line a command) on stdout
// and its warnings on stderr. Exit 0 when usable, 1 on errors, 2 on a usage error.
// `tsvs config check FILE | tsvs ipvsadm -R` loads it without health checks. A file with VRRP
// sections gets one `# ` comment line per vrrp_instance, vrrp_sync_group, vrrp_script and
// lvs_sync_daemon first (tsvs ipvsadm -R skips comment lines).

import { type ConfigFormat, loadConfigFile } from "../config/load.js";
import { ConfigError, commandToIpvsadm, formatDiagnostic, toCommands } from "../config/model.js";
import { haSummary } from "../config/vrrp.js";
import { TsvsError } from "../core/errors.js";

const USAGE = `Usage: tsvs config check [--format yaml|keepalived] FILE
  Prints the ipvsadm rules FILE stands for (as ipvsadm -S writes them) and its warnings;
  its VRRP instances, sync groups, scripts and sync daemon as "# " comment lines first.
  FILE is tsvs YAML (.yaml, .yml) or keepalived.conf (anything else).
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
    for (const w of warnings)
      io.stderr.write(`${formatDiagnostic({ ...w, message: `warning: ${w.message}` })}\n`);
    const out = [
      ...haSummary(model.ha).map((l) => `# ${l}\n`),
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
