// A process entry for the daemon and its clients while `tsvs` (src/cli/tsvs.ts) is not wired:
//   node dist/src/daemon/entry.js daemon|ipvsadm|status|sysctl|fwmark ARGS
// The e2e test and the lab start the daemon through it.

import { daemonMain } from "../cli/daemon.js";
import { fwmarkMain, ipvsadmMain, statusMain, sysctlMain } from "../cli/ipvsadm-client.js";

const [cmd, ...rest] = process.argv.slice(2);
const mains: Record<string, (a: string[]) => Promise<number>> = {
  daemon: daemonMain,
  ipvsadm: ipvsadmMain,
  status: statusMain,
  sysctl: sysctlMain,
  fwmark: fwmarkMain,
};
const fn = cmd === undefined ? undefined : mains[cmd];
if (fn === undefined) {
  process.stderr.write("usage: entry.js daemon|ipvsadm|status|sysctl|fwmark ARGS\n");
  process.exitCode = 2;
} else {
  process.exitCode = await fn(rest);
}
