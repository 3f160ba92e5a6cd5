// `tsvs ipvsadm`: ipvsadm 1.31's process_options over a control backend (the daemon's
// control API, or an in-process IpvsCtl), with ipvsadm's stdout/stderr and exit codes:
//   - usage errors (fail()): the message alone on stderr, exit 2;
//   - popt errors and "Try `ipvsadm -h' ...": exit 255 (ipvsadm returns -1);
//   - control errors (libipvs): ipvs_strerror's message alone on stderr, exit 255
//     (process_options returns the -1 of the libipvs call);
//   - listing a service that does not exist: "No such service", exit 1.
//
// --start-daemon / --stop-daemon are not table commands: they go to the daemon's sync daemons
// (its main thread), and -L --daemon asks it which run. An in-process backend without sync
// daemons (tsvs sim) refuses the first two and lists none.
//
// -R (restore) differs from ipvsadm on purpose: ipvsadm runs the lines one by one, exits
// at the first usage error (fail()) with the lines before it applied, goes on after a
// libipvs error and exits with the status of the last line. tsvs parses every line first
// and applies them all as one atomic batch (backend.applyAll), so a bad input changes
// nothing; errors are prefixed with "line N: ". Only table changes may appear in the input
// (ipvsadm would also run -L or -S lines), and lines starting with '#' are comments.

import type { SyncDaemonCommand } from "../../control/commands.js";
import type { CtlCommand } from "../../core/ctl-types.js";
import { IPVS_MESSAGES, TsvsError, type TsvsErrorCode } from "../../core/errors.js";
import type { SyncDaemonConfig } from "../../core/sync/types.js";
import {
  formatAcl,
  formatDaemons,
  formatLaddrs,
  formatList,
  formatSave,
  type IpvsSnapshot,
} from "./format.js";
import { IpvsadmUsageError, PROGRAM, parseIpvsadm } from "./parse.js";

/** The director as an in-process ipvsadm sees it (the simulation, tests): src/control/api.ts. */
export interface IpvsadmBackend {
  /** Applies all commands or none (throws on the first failure, leaving the table as it was). */
  apply(cmds: readonly CtlCommand[]): void;
  snapshot(withConns: boolean): IpvsSnapshot;
  /** The connection sync daemons, when this director has them (the daemon has; tsvs sim has not). */
  sync?: {
    /** Throws TsvsError (TSVS_ERR_DAEMON_EXISTS, TSVS_ERR_NO_DAEMON, …). */
    apply(cmd: SyncDaemonCommand): void;
    list(): SyncDaemonConfig[];
  };
}

/** What an in-process director without sync daemons answers --start-daemon / --stop-daemon with. */
export const NO_SYNC_IN_PROCESS =
  "tsvs: connection sync runs in the tsvs daemon only (tsvs daemon; then tsvs ipvsadm --start-daemon ...)";

export interface IpvsadmResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const IPVSADM_VERSION = "v1.31 2019/12/24";
const SCHEDULERS = "rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh|twos";
const PE_LIST = "sip";

export function versionLine(): string {
  return `${PROGRAM} ${IPVSADM_VERSION} (compiled with popt and IPVS v1.2.1)\n`;
}

/** usage_exit's text (with tsvs's --fullnat added). */
export function usageText(): string {
  const p = PROGRAM;
  return `${versionLine()}Usage:
  ${p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
  ${p} -D virtual-service
  ${p} -C
  ${p} -R
  ${p} -S [-n]
  ${p} -P|Q virtual-service -z local-address [-F ifname]
  ${p} -G [virtual-service]
  ${p} -U|V virtual-service -k blacklist-address
  ${p} -O|Y virtual-service -2 whitelist-address
  ${p} -B|W [virtual-service]
  ${p} --conn-limit virtual-service --conn-rate N[/s] [--conn-burst N] [--conn-rate-prefix LEN[,LEN6]]
  ${p} -a|e virtual-service -r server-address [options]
  ${p} -d virtual-service -r server-address
  ${p} -L|l [virtual-service] [options]
  ${p} -Z [virtual-service]
  ${p} --set tcp tcpfin udp
  ${p} --start-daemon {master|backup} [daemon-options]
  ${p} --stop-daemon {master|backup}
  ${p} -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-laddr       -P        add local address (FULLNAT, as DPVS)
  --del-laddr       -Q        del local address
  --get-laddr       -G        get local address
  --add-blklst      -U        add blacklist address or prefix (as DPVS; ADDR or ADDR/LEN)
  --del-blklst      -V        del blacklist address or prefix
  --get-blklst      -B        get blacklist address or prefix
  --add-whtlst      -O        add whitelist address or prefix
  --del-whtlst      -Y        del whitelist address or prefix
  --get-whtlst      -W        get whitelist address or prefix
  --conn-limit                set the per-source new-connection rate limit (tsvs)
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --sctp-service    service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --ipv6         -6                   fwmark entry uses IPv6
  --scheduler    -s scheduler         one of ${SCHEDULERS},
                                      the default scheduler is wlc.
  --pe            engine              alternate persistence engine may be ${PE_LIST},
                                      not set by default.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --fullnat                           full NAT (tsvs extension)
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)
  --laddr        -z local-ip          local IP
  --ifname       -F                   nic interface for laddrs (accepted, ignored)
  --blklst       -k blacklist-address IP or IP/LEN
  --whtlst       -2 whitelist-address IP or IP/LEN
  --conn-rate       N[/s]             new connections a second per source prefix (0: off)
  --conn-burst      N                 bucket size (default: the rate)
  --conn-rate-prefix LEN[,LEN6]       source prefix of a bucket (default 32,64)
  --proxy-protocol                    proxy protocol config (disable|v1|v2|v1-insecure|v2-insecure)
  --synproxy     -j [enable|disable]  TCP syn proxy (NAT and FULLNAT; bare: enable)
Daemon Options:
  --syncid sid                        syncid for connection sync (default=255)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)
`;
}

/** Exit status of ipvsadm when a libipvs call fails (process_options returns -1). */
export const EXIT_CTL_ERROR = 255;

function ok(stdout: string): IpvsadmResult {
  return { code: 0, stdout, stderr: "" };
}

function fail(code: number, message: string): IpvsadmResult {
  return { code, stdout: "", stderr: `${message}\n` };
}

/**
 * Splits one -R input line into words as ipvsadm's config_stream_read does: words are
 * runs of characters other than space, tab and CR (no quoting), and every word that is
 * exactly "ipvsadm" is dropped, wherever it stands (so ipvsadm-save output with the
 * program name restores).
 */
export function splitRestoreLine(line: string): string[] {
  return line.split(/[ \t\r]+/).filter((w) => w !== "" && w !== PROGRAM);
}

const TRY_RESTORE = "only table changes (-A -E -D -C -a -e -d -Z --set -P -Q) may appear in restore input";

/** The commands of a -R input, with the input line (1-based) each came from. */
export interface RestoreBatch {
  cmds: CtlCommand[];
  lines: number[];
}

/**
 * Parses -R input into commands; throws IpvsadmUsageError naming the line. A line whose
 * first word starts with '#' is a comment (a tsvs extension: config_stream means to skip
 * comments but never does, so ipvsadm stops at such a line with its "Try" message).
 */
export function parseRestore(input: string): RestoreBatch {
  const cmds: CtlCommand[] = [];
  const lines: number[] = [];
  const text = input.split("\n");
  for (let i = 0; i < text.length; i++) {
    const words = splitRestoreLine(text[i]);
    if (words.length === 0 || words[0].startsWith("#")) continue;
    let req: ReturnType<typeof parseIpvsadm>;
    try {
      req = parseIpvsadm(words);
    } catch (e) {
      if (e instanceof IpvsadmUsageError)
        throw new IpvsadmUsageError(`line ${i + 1}: ${e.message}`, e.exitCode);
      throw e;
    }
    if (req.kind !== "ctl") throw new IpvsadmUsageError(`line ${i + 1}: ${TRY_RESTORE}`, 255);
    cmds.push(req.cmd);
    lines.push(i + 1);
  }
  return { cmds, lines };
}

/**
 * What one ipvsadm invocation needs from the director: nothing (help, usage errors), an atomic
 * change (`apply`, then `applied` maps its outcome to ipvsadm's answer), or a snapshot of the
 * table (`snapshot`, then `format` prints it). Parsing and printing stay here, in the front end;
 * the director only ever sees commands and hands back data.
 */
export type IpvsadmPlan =
  | { kind: "done"; result: IpvsadmResult }
  | { kind: "apply"; cmds: CtlCommand[]; applied: (err: unknown) => IpvsadmResult }
  | { kind: "snapshot"; withConns: boolean; format: (snap: IpvsSnapshot) => IpvsadmResult }
  /** --start-daemon / --stop-daemon: the command, then `applied` maps its outcome. */
  | { kind: "daemon"; cmd: SyncDaemonCommand; applied: (err: unknown) => IpvsadmResult }
  /** -L --daemon: the sync daemons running, then `format` prints them. */
  | { kind: "daemons"; format: (daemons: readonly SyncDaemonConfig[]) => IpvsadmResult };

/** libipvs's messages for the sync daemon errors (ipvs_strerror; ENODEV falls to strerror). */
const DAEMON_MESSAGES: Partial<Record<TsvsErrorCode, string>> = {
  TSVS_ERR_DAEMON_EXISTS: IPVS_MESSAGES.daemonExists,
  TSVS_ERR_NO_DAEMON: IPVS_MESSAGES.noDaemon,
  TSVS_ERR_NO_DEVICE: IPVS_MESSAGES.noDevice,
};

/** Maps a failed sync daemon command to ipvsadm's answer: ipvs_strerror's text, exit 255. */
export function daemonResult(err: unknown): IpvsadmResult {
  if (err === null || err === undefined) return ok("");
  if (err instanceof TsvsError) return fail(EXIT_CTL_ERROR, DAEMON_MESSAGES[err.code] ?? err.message);
  throw err;
}

/** Maps a failed apply to ipvsadm's answer; `lines` names -R input lines by command index. */
function appliedResult(err: unknown, lines?: readonly number[]): IpvsadmResult {
  if (err === null || err === undefined) return ok("");
  if (err instanceof TsvsError) {
    // A batch says which command failed with an `index` (CtlError).
    const idx = (err as TsvsError & { index?: unknown }).index;
    const at = lines !== undefined && typeof idx === "number" ? lines[idx] : undefined;
    return fail(EXIT_CTL_ERROR, at === undefined ? err.message : `line ${at}: ${err.message}`);
  }
  throw err;
}

export function planIpvsadm(argv: readonly string[], stdin = ""): IpvsadmPlan {
  const done = (result: IpvsadmResult): IpvsadmPlan => ({ kind: "done", result });
  let req: ReturnType<typeof parseIpvsadm>;
  try {
    req = parseIpvsadm(argv);
  } catch (e) {
    if (e instanceof IpvsadmUsageError) return done(fail(e.exitCode, e.message));
    throw e;
  }
  switch (req.kind) {
    case "help":
      return done(ok(usageText()));
    case "version":
      return done(ok(versionLine()));
    case "daemon":
      return { kind: "daemon", cmd: req.cmd, applied: daemonResult };
    case "ctl":
      return { kind: "apply", cmds: [req.cmd], applied: (e) => appliedResult(e) };
    case "list": {
      const { key, opts } = req;
      // process_options: -c, then a service, then --timeout, then --daemon (they exclude each other).
      if (opts.daemon && !opts.conns && key === null && !opts.timeout)
        return { kind: "daemons", format: (daemons) => ok(formatDaemons(daemons)) };
      return {
        kind: "snapshot",
        withConns: opts.conns,
        format: (snap) => {
          try {
            return ok(formatList(snap, key, opts));
          } catch (e) {
            // list_service: ipvs_get_service failed -> message, exit(1).
            if (e instanceof TsvsError) return fail(1, e.message);
            throw e;
          }
        },
      };
    }
    case "laddrs": {
      const { key } = req;
      return {
        kind: "snapshot",
        withConns: false,
        format: (snap) => {
          try {
            return ok(formatLaddrs(snap, key));
          } catch (e) {
            // list_laddrs: the service lookup failed -> message, exit(1).
            if (e instanceof TsvsError) return fail(1, e.message);
            throw e;
          }
        },
      };
    }
    case "acl": {
      const { key, list } = req;
      return {
        kind: "snapshot",
        withConns: false,
        format: (snap) => {
          try {
            return ok(formatAcl(snap, list, key));
          } catch (e) {
            // list_blklst: the service lookup failed -> message, exit(1).
            if (e instanceof TsvsError) return fail(1, e.message);
            throw e;
          }
        },
      };
    }
    case "save": {
      const numeric = req.numeric;
      return { kind: "snapshot", withConns: false, format: (snap) => ok(formatSave(snap, numeric)) };
    }
    case "restore": {
      let batch: RestoreBatch;
      try {
        batch = parseRestore(stdin);
      } catch (e) {
        if (e instanceof IpvsadmUsageError) return done(fail(e.exitCode, e.message));
        throw e;
      }
      return { kind: "apply", cmds: batch.cmds, applied: (e) => appliedResult(e, batch.lines) };
    }
  }
}

/** One ipvsadm invocation over an in-process backend: argv without the program name; stdin is read by -R. */
export function runIpvsadm(argv: readonly string[], backend: IpvsadmBackend, stdin = ""): IpvsadmResult {
  const plan = planIpvsadm(argv, stdin);
  switch (plan.kind) {
    case "done":
      return plan.result;
    case "apply": {
      let err: unknown = null;
      try {
        backend.apply(plan.cmds);
      } catch (e) {
        err = e;
      }
      return plan.applied(err);
    }
    case "snapshot":
      return plan.format(backend.snapshot(plan.withConns));
    case "daemon": {
      if (backend.sync === undefined) return fail(EXIT_CTL_ERROR, NO_SYNC_IN_PROCESS);
      let err: unknown = null;
      try {
        backend.sync.apply(plan.cmd);
      } catch (e) {
        err = e;
      }
      return plan.applied(err);
    }
    case "daemons":
      return plan.format(backend.sync?.list() ?? []);
  }
}
