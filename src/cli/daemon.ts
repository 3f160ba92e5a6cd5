// `tsvs daemon ARGS`: see src/daemon/main.ts and docs/daemon.md.

import { DAEMON_USAGE, DaemonUsageError, parseDaemonArgs, runDaemon } from "../daemon/main.js";

export async function daemonMain(args: string[]): Promise<number> {
  if (args.includes("-h") || args.includes("--help")) {
    process.stdout.write(DAEMON_USAGE);
    return 0;
  }
  try {
    return await runDaemon(parseDaemonArgs(args));
  } catch (e) {
    if (e instanceof DaemonUsageError) {
      process.stderr.write(`tsvs daemon: ${e.message}\n${DAEMON_USAGE}`);
      return 2;
    }
    throw e;
  }
}
