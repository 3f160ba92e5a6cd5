// `tsvs daemon ARGS`: see src/daemon/main.ts and docs/daemon.md.

import { DAEMON_USAGE, DaemonUsageError, parseDaemonArgs, runDaemon } from "../daemon/main.js";
import { dropCapabilities } from "../daemon/privileges.js";

export async function daemonMain(args: string[]): Promise<number> {
  if (args.includes("-h") || args.includes("--help")) {
    process.stdout.write(DAEMON_USAGE);
    return 0;
  }
  try {
    const opts = parseDaemonArgs(args);
    // Before anything else: only the capabilities the daemon needs (src/daemon/privileges.ts).
    dropCapabilities(opts);
    return await runDaemon(opts);
  } catch (e) {
    if (e instanceof DaemonUsageError) {
      process.stderr.write(`tsvs daemon: ${e.message}\n${DAEMON_USAGE}`);
      return 2;
    }
    throw e;
  }
}
