// ipvsadm's connection sync daemon commands: --start-daemon / --stop-daemon with their options,
// -L --daemon, the messages for every bad value (ipvsadm.c parse_options' fail() strings), the
// errors libipvs prints when the daemon refuses (ipvs_strerror), the commands' wire form (zod),
// the control protocol's `daemons` request and the sync sysctls.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { formatDaemons } from "../../src/cli/ipvsadm/format.js";
import {
  type IpvsadmRequest,
  IpvsadmUsageError,
  parseIpvsadm,
  TRY_HELP,
} from "../../src/cli/ipvsadm/parse.js";
import {
  EXIT_CTL_ERROR,
  type IpvsadmBackend,
  NO_SYNC_IN_PROCESS,
  planIpvsadm,
  runIpvsadm,
  usageText,
} from "../../src/cli/ipvsadm/run.js";
import { ipvsadmRemote } from "../../src/cli/ipvsadm-client.js";
import {
  type ControlCommand,
  formatSysctlValue,
  isSyncDaemonCommand,
  isTableCommand,
  parseCommands,
  parseSysctlArg,
  type SyncDaemonCommand,
  sysctlError,
  sysctlFields,
  sysctlValue,
} from "../../src/control/commands.js";
import type { SyncDaemonStatus } from "../../src/control/sync.js";
import { TsvsError, type TsvsErrorCode } from "../../src/core/errors.js";
import { SYNC_DEFAULTS, SYNC_SYSCTL_DEFAULTS, type SyncDaemonConfig } from "../../src/core/sync/types.js";
import { parseRequest, type Request, type Response } from "../../src/daemon/protocol.js";

const G_DEFAULT = 0xe0000051; // 224.0.0.81

function cfg(over: Partial<SyncDaemonConfig> = {}): SyncDaemonConfig {
  return { role: "master", ...SYNC_DEFAULTS, ...over };
}

function daemonCmd(argv: string): SyncDaemonCommand {
  const r = parseIpvsadm(argv.split(" "));
  assert.equal(r.kind, "daemon", argv);
  return (r as Extract<IpvsadmRequest, { kind: "daemon" }>).cmd;
}

describe("ipvsadm --start-daemon / --stop-daemon: parsing", () => {
  const cases: { argv: string; cmd: SyncDaemonCommand }[] = [
    // Defaults: DEF_MCAST_IFN eth0, syncid 0 (the memset; the help's "default=255" is wrong),
    // and what the kernel fills in: maxlen 1472, group 224.0.0.81, port 8848, ttl 1.
    {
      argv: "--start-daemon master",
      cmd: {
        op: "start-daemon",
        daemon: {
          role: "master",
          iface: "eth0",
          syncid: 0,
          maxlen: 1472,
          group: G_DEFAULT,
          port: 8848,
          ttl: 1,
        },
      },
    },
    { argv: "--start-daemon backup", cmd: { op: "start-daemon", daemon: cfg({ role: "backup" }) } },
    { argv: "--start-daemon=master", cmd: { op: "start-daemon", daemon: cfg() } },
    {
      argv: "--start-daemon backup --mcast-interface eth1 --syncid 7 --sync-maxlen 1400 --mcast-group 239.1.2.3 --mcast-port 9000 --mcast-ttl 4",
      cmd: {
        op: "start-daemon",
        daemon: {
          role: "backup",
          iface: "eth1",
          syncid: 7,
          maxlen: 1400,
          group: 0xef010203,
          port: 9000,
          ttl: 4,
        },
      },
    },
    {
      argv: "--start-daemon master --mcast-interface=bond0.100 --syncid=255 --sync-maxlen=65507 --mcast-group=224.0.0.1 --mcast-port=1 --mcast-ttl=255",
      cmd: {
        op: "start-daemon",
        daemon: {
          role: "master",
          iface: "bond0.100",
          syncid: 255,
          maxlen: 65507,
          group: 0xe0000001,
          port: 1,
          ttl: 255,
        },
      },
    },
    { argv: "--start-daemon master --syncid 0", cmd: { op: "start-daemon", daemon: cfg() } },
    {
      argv: "--start-daemon master --mcast-group 239.255.255.255",
      cmd: { op: "start-daemon", daemon: cfg({ group: 0xefffffff }) },
    },
    // strncpy(mcast_ifn, optarg, IP_VS_IFNAME_MAXLEN - 1)
    {
      argv: "--start-daemon master --mcast-interface abcdefghijklmnopq",
      cmd: { op: "start-daemon", daemon: cfg({ iface: "abcdefghijklmno" }) },
    },
    { argv: "--stop-daemon master", cmd: { op: "stop-daemon", role: "master" } },
    { argv: "--stop-daemon backup", cmd: { op: "stop-daemon", role: "backup" } },
    { argv: "--stop-daemon=backup", cmd: { op: "stop-daemon", role: "backup" } },
    // --syncid is allowed with --stop-daemon (commands_v_options); the kernel ignores it.
    { argv: "--stop-daemon backup --syncid 3", cmd: { op: "stop-daemon", role: "backup" } },
  ];
  for (const c of cases) it(c.argv, () => assert.deepEqual(daemonCmd(c.argv), c.cmd));

  it("every parsed command passes the wire schema unchanged", () => {
    const cmds: ControlCommand[] = cases.map((c) => c.cmd);
    assert.deepEqual(parseCommands(JSON.parse(JSON.stringify(cmds))), cmds);
  });

  it("the commands are not table commands", () => {
    for (const c of cases) {
      assert.equal(isTableCommand(c.cmd), false);
      assert.equal(isSyncDaemonCommand(c.cmd), true);
    }
    assert.equal(isSyncDaemonCommand({ op: "clear" }), false);
  });
});

describe("ipvsadm --start-daemon / --stop-daemon: messages", () => {
  const cases: { argv: string; msg: string; code?: number }[] = [
    { argv: "--start-daemon primary", msg: "illegal start-daemon parameter specified" },
    { argv: "--start-daemon Master", msg: "illegal start-daemon parameter specified" },
    { argv: "--stop-daemon primary", msg: "illegal start_daemon specified" },
    { argv: "--stop-daemon", msg: TRY_HELP, code: 255 },
    { argv: "--start-daemon", msg: TRY_HELP, code: 255 },
    { argv: "--start-daemon master --syncid 256", msg: "illegal syncid specified" },
    { argv: "--start-daemon master --syncid -1", msg: "illegal syncid specified" },
    { argv: "--start-daemon master --syncid x", msg: "illegal syncid specified" },
    { argv: "--stop-daemon master --syncid 300", msg: "illegal syncid specified" },
    { argv: "--start-daemon master --mcast-port 0", msg: "illegal mcast-port specified" },
    { argv: "--start-daemon master --mcast-port 65536", msg: "illegal mcast-port specified" },
    { argv: "--start-daemon master --mcast-port http", msg: "illegal mcast-port specified" },
    { argv: "--start-daemon master --mcast-ttl 0", msg: "illegal mcast-ttl specified" },
    { argv: "--start-daemon master --mcast-ttl 256", msg: "illegal mcast-ttl specified" },
    { argv: "--start-daemon master --sync-maxlen 0", msg: "illegal sync-maxlen specified" },
    { argv: "--start-daemon master --sync-maxlen 65508", msg: "illegal sync-maxlen specified" },
    { argv: "--start-daemon master --mcast-group 10.0.0.1", msg: "invalid IPv4 mcast-group `10.0.0.1'" },
    { argv: "--start-daemon master --mcast-group 240.0.0.1", msg: "invalid IPv4 mcast-group `240.0.0.1'" },
    // inet_pton(AF_INET) takes strict dotted quads only.
    {
      argv: "--start-daemon master --mcast-group 224.0.0.081",
      msg: "invalid IPv4 mcast-group `224.0.0.081'",
    },
    { argv: "--start-daemon master --mcast-group 224.1", msg: "invalid IPv4 mcast-group `224.1'" },
    { argv: "--start-daemon master --mcast-group group", msg: "invalid IPv4 mcast-group `group'" },
    { argv: "--start-daemon master --mcast-group fe80::1", msg: "invalid IPv6 mcast-group `fe80::1'" },
    { argv: "--start-daemon master --mcast-group ff02::zz", msg: "invalid IPv6 mcast-group `ff02::zz'" },
    // A good IPv6 group: tsvs syncs over IPv4 only.
    { argv: "--start-daemon master --mcast-group ff02::1:81", msg: "IPv6 is not supported by tsvs yet" },
    { argv: "--start-daemon master --syncid 1 --syncid 2", msg: "multiple 'syncid' options specified" },
    {
      argv: "--start-daemon master --mcast-port 1 --mcast-port 2",
      msg: "multiple 'mcast-port' options specified",
    },
    // commands_v_options
    { argv: "--start-daemon master -n", msg: "Illegal 'numeric' option with the 'start-daemon' command" },
    {
      argv: "--start-daemon master -t 10.0.0.1:80",
      msg: "Illegal 'service-address' option with the 'start-daemon' command",
    },
    {
      argv: "--stop-daemon master --mcast-interface eth0",
      msg: "Illegal 'mcast-interface' option with the 'stop-daemon' command",
    },
    {
      argv: "--stop-daemon master --mcast-port 8848",
      msg: "Illegal 'mcast-port' option with the 'stop-daemon' command",
    },
    {
      argv: "--stop-daemon master --mcast-group 224.0.0.81",
      msg: "Illegal 'mcast-group' option with the 'stop-daemon' command",
    },
    {
      argv: "--stop-daemon master --mcast-ttl 1",
      msg: "Illegal 'mcast-ttl' option with the 'stop-daemon' command",
    },
    {
      argv: "--stop-daemon master --sync-maxlen 1472",
      msg: "Illegal 'sync-maxlen' option with the 'stop-daemon' command",
    },
    { argv: "-A -t 10.0.0.1:80 --syncid 1", msg: "Illegal 'syncid' option with the 'add-service' command" },
    { argv: "-L --mcast-interface eth0", msg: "Illegal 'mcast-interface' option with the 'list' command" },
    // a second command is not an option
    { argv: "--start-daemon master --stop-daemon backup", msg: "invalid option `backup'" },
    { argv: "--start-daemon master backup", msg: "unexpected argument backup" },
    { argv: "--start-daemon master --mcast-bogus 1", msg: "--mcast-bogus: unknown option", code: 255 },
    // -L --daemon (process_options' list check, after generic_opt_check)
    { argv: "-L --daemon --stats", msg: "options conflicts in the list command" },
    { argv: "-L --daemon --rate", msg: "options conflicts in the list command" },
    { argv: "-L --daemon --thresholds", msg: "options conflicts in the list command" },
    { argv: "-L --daemon --persistent-conn", msg: "options conflicts in the list command" },
    {
      argv: "-L -c --daemon",
      msg: "The option 'daemon' conflicts with the 'connection' option in the 'list' command",
    },
    {
      argv: "-L --timeout --daemon",
      msg: "The option 'daemon' conflicts with the 'timeout' option in the 'list' command",
    },
    {
      argv: "-L -t 10.0.0.1:80 --daemon",
      msg: "The option 'daemon' conflicts with the 'service-address' option in the 'list' command",
    },
    { argv: "-L --daemon --daemon", msg: "multiple 'daemon' options specified" },
  ];
  for (const c of cases) {
    it(`${c.argv} -> ${JSON.stringify(c.msg)}`, () => {
      assert.throws(
        () => parseIpvsadm(c.argv.split(" ")),
        (e: unknown) => {
          assert.ok(e instanceof IpvsadmUsageError);
          assert.equal(e.message, c.msg);
          assert.equal(e.exitCode, c.code ?? 2);
          return true;
        },
      );
    });
  }
});

describe("ipvsadm -L --daemon: list_daemon's format", () => {
  const master = cfg({ syncid: 1 });
  const backup = cfg({ role: "backup", iface: "eth1", syncid: 2, group: 0xef000001, port: 9000, ttl: 2 });
  it("master only", () =>
    assert.equal(
      formatDaemons([master]),
      "master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
    ));
  it("backup only", () =>
    assert.equal(
      formatDaemons([backup]),
      "backup sync daemon (mcast=eth1, syncid=2, maxlen=1472, group=239.0.0.1, port=9000, ttl=2)\n",
    ));
  it("both: master first, whatever order they come in", () => {
    const text =
      "master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
      "backup sync daemon (mcast=eth1, syncid=2, maxlen=1472, group=239.0.0.1, port=9000, ttl=2)\n";
    assert.equal(formatDaemons([backup, master]), text);
    assert.equal(formatDaemons([master, backup]), text);
  });
  it("none: nothing", () => assert.equal(formatDaemons([]), ""));
  it("fields the kernel left 0 are not printed (an older kernel: mcast and syncid only)", () =>
    assert.equal(
      formatDaemons([cfg({ maxlen: 0, group: 0, port: 0, ttl: 0 })]),
      "master sync daemon (mcast=eth0, syncid=0)\n",
    ));
  it("takes statuses (the daemons answer) as they come", () => {
    const st: SyncDaemonStatus = {
      ...backup,
      messagesSent: 0,
      messagesReceived: 5,
      connsSent: 0,
      connsReceived: 40,
      errors: 0,
      drops: {},
    };
    assert.equal(formatDaemons([st]), formatDaemons([backup]));
  });
});

/** An in-process backend with sync daemons that refuse as the kernel does. */
function syncBackend(): { backend: IpvsadmBackend; running: Map<string, SyncDaemonConfig> } {
  const running = new Map<string, SyncDaemonConfig>();
  const backend: IpvsadmBackend = {
    apply: () => {},
    snapshot: () => {
      throw new Error("no table here");
    },
    sync: {
      apply(cmd) {
        if (cmd.op === "start-daemon") {
          if (running.has(cmd.daemon.role)) throw new TsvsError("TSVS_ERR_DAEMON_EXISTS", "already");
          if (cmd.daemon.iface === "nosuch0") throw new TsvsError("TSVS_ERR_NO_DEVICE", "no such interface");
          running.set(cmd.daemon.role, cmd.daemon);
        } else {
          if (!running.delete(cmd.role)) throw new TsvsError("TSVS_ERR_NO_DAEMON", "none");
        }
      },
      list: () => [...running.values()],
    },
  };
  return { backend, running };
}

describe("ipvsadm sync daemons over a backend", () => {
  it("starts, lists, refuses a second start and a stop of none, stops", () => {
    const { backend } = syncBackend();
    const run = (a: string) => runIpvsadm(a.split(" "), backend);
    assert.deepEqual(run("-L --daemon"), { code: 0, stdout: "", stderr: "" });
    assert.deepEqual(run("--start-daemon backup --syncid 2 --mcast-interface eth1"), {
      code: 0,
      stdout: "",
      stderr: "",
    });
    assert.deepEqual(run("--start-daemon master --syncid 1"), { code: 0, stdout: "", stderr: "" });
    const both =
      "master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
      "backup sync daemon (mcast=eth1, syncid=2, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n";
    assert.deepEqual(run("-L --daemon"), { code: 0, stdout: both, stderr: "" });
    assert.deepEqual(run("-Ln --daemon"), { code: 0, stdout: both, stderr: "" });
    assert.deepEqual(run("-l --daemon --nosort"), { code: 0, stdout: both, stderr: "" });
    assert.deepEqual(run("--start-daemon master"), {
      code: EXIT_CTL_ERROR,
      stdout: "",
      stderr: "Daemon has already run\n",
    });
    assert.deepEqual(run("--stop-daemon master"), { code: 0, stdout: "", stderr: "" });
    assert.deepEqual(run("--stop-daemon master"), {
      code: EXIT_CTL_ERROR,
      stdout: "",
      stderr: "No daemon is running\n",
    });
    assert.deepEqual(run("--start-daemon master --mcast-interface nosuch0"), {
      code: EXIT_CTL_ERROR,
      stdout: "",
      stderr: "No such device\n",
    });
    assert.equal(
      run("-L --daemon").stdout,
      "backup sync daemon (mcast=eth1, syncid=2, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
    );
  });

  it("usage errors come before the backend is asked", () => {
    const { backend, running } = syncBackend();
    const r = runIpvsadm(["--start-daemon", "master", "--mcast-port", "0"], backend);
    assert.deepEqual(r, { code: 2, stdout: "", stderr: "illegal mcast-port specified\n" });
    assert.equal(running.size, 0);
  });

  it("an in-process director without sync daemons (tsvs sim) refuses start and stop, lists none", () => {
    const backend: IpvsadmBackend = {
      apply: () => {},
      snapshot: () => {
        throw new Error("no table here");
      },
    };
    for (const a of ["--start-daemon master", "--stop-daemon backup"])
      assert.deepEqual(runIpvsadm(a.split(" "), backend), {
        code: EXIT_CTL_ERROR,
        stdout: "",
        stderr: `${NO_SYNC_IN_PROCESS}\n`,
      });
    assert.deepEqual(runIpvsadm(["-L", "--daemon"], backend), { code: 0, stdout: "", stderr: "" });
  });

  it("plans -L --daemon as a daemons request, not a table snapshot", () => {
    assert.equal(planIpvsadm(["-L", "--daemon"]).kind, "daemons");
    assert.equal(planIpvsadm(["-L", "--timeout"]).kind, "snapshot");
    assert.equal(planIpvsadm(["--start-daemon", "master"]).kind, "daemon");
  });

  it("the help has the daemon synopsis and the Daemon Options block", () => {
    const h = usageText();
    assert.ok(h.includes("  ipvsadm --start-daemon {master|backup} [daemon-options]\n"));
    assert.ok(h.includes("  ipvsadm --stop-daemon {master|backup}\n"));
    assert.ok(
      h.endsWith(
        "Daemon Options:\n" +
          "  --syncid sid                        syncid for connection sync (default=255)\n" +
          "  --sync-maxlen length                Max sync message length (default=1472)\n" +
          "  --mcast-interface interface         multicast interface for connection sync\n" +
          "  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)\n" +
          "  --mcast-port port                   UDP port (default=8848)\n" +
          "  --mcast-ttl ttl                     Multicast TTL (default=1)\n",
      ),
    );
  });
});

describe("tsvs ipvsadm against a daemon: the daemon commands on the control socket", () => {
  let dir = "";
  let path = "";
  let server: Server;
  const seen: Request[] = [];
  let answer: (req: Request) => Response = () => ({ error: "unset" });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tsvs-ipvsadm-daemon-"));
    path = join(dir, "control.sock");
    server = createServer((sock) => {
      let buf = "";
      sock.setEncoding("utf8");
      sock.on("data", (chunk: string) => {
        buf += chunk;
        const nl = buf.indexOf("\n");
        if (nl < 0) return;
        const req = JSON.parse(buf.slice(0, nl)) as Request;
        buf = buf.slice(nl + 1);
        seen.push(req);
        sock.write(`${JSON.stringify(answer(req))}\n`);
      });
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("--start-daemon sends one apply with the command", async () => {
    seen.length = 0;
    answer = () => ({ applied: 1 });
    const r = await ipvsadmRemote(path, ["--start-daemon", "backup", "--syncid", "9"], "");
    assert.deepEqual(r, { code: 0, stdout: "", stderr: "" });
    assert.deepEqual(seen, [
      { op: "apply", commands: [{ op: "start-daemon", daemon: cfg({ role: "backup", syncid: 9 }) }] },
    ]);
    // What the daemon receives passes its own checks.
    assert.deepEqual(parseRequest(JSON.stringify(seen[0])), seen[0]);
  });

  const refusals: [string, TsvsErrorCode, string][] = [
    ["--start-daemon master", "TSVS_ERR_DAEMON_EXISTS", "Daemon has already run"],
    ["--stop-daemon backup", "TSVS_ERR_NO_DAEMON", "No daemon is running"],
    ["--start-daemon master --mcast-interface eth9", "TSVS_ERR_NO_DEVICE", "No such device"],
    ["--start-daemon master", "TSVS_ERR_HOST", "cannot open the master sync socket: EADDRINUSE"],
  ];
  for (const [argv, code, msg] of refusals) {
    it(`${argv}: the daemon's ${code} prints ${JSON.stringify(msg)}`, async () => {
      answer = () => ({ error: "the daemon's own words", code, index: 0 });
      if (code === "TSVS_ERR_HOST") answer = () => ({ error: msg, code, index: 0 });
      const r = await ipvsadmRemote(path, argv.split(" "), "");
      assert.deepEqual(r, { code: EXIT_CTL_ERROR, stdout: "", stderr: `${msg}\n` });
    });
  }

  it("-L --daemon asks for the daemons and prints them", async () => {
    seen.length = 0;
    const st = (c: SyncDaemonConfig): SyncDaemonStatus => ({
      ...c,
      messagesSent: 1,
      messagesReceived: 0,
      connsSent: 3,
      connsReceived: 0,
      errors: 0,
      drops: {},
    });
    answer = () => ({ daemons: [st(cfg({ role: "backup" })), st(cfg({ syncid: 1 }))] });
    const r = await ipvsadmRemote(path, ["-Ln", "--daemon"], "");
    assert.deepEqual(seen, [{ op: "daemons" }]);
    assert.deepEqual(r, {
      code: 0,
      stdout:
        "master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
        "backup sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n",
      stderr: "",
    });
  });
});

describe("the sync daemon commands' wire form", () => {
  const good = cfg();
  const bad: [string, unknown][] = [
    ["role", { ...good, role: "primary" }],
    ["empty interface", { ...good, iface: "" }],
    ["16-character interface", { ...good, iface: "abcdefghijklmnop" }],
    ["syncid 256", { ...good, syncid: 256 }],
    ["maxlen 0", { ...good, maxlen: 0 }],
    ["maxlen 65508", { ...good, maxlen: 65508 }],
    ["unicast group", { ...good, group: 0x0a000001 }],
    ["port 0", { ...good, port: 0 }],
    ["ttl 0", { ...good, ttl: 0 }],
    ["ttl 1.5", { ...good, ttl: 1.5 }],
    ["unknown field", { ...good, mcastAf: 4 }],
    ["missing field", { role: "master", iface: "eth0" }],
  ];
  for (const [what, daemon] of bad)
    it(`start-daemon refuses ${what}`, () =>
      assert.throws(
        () => parseCommands([{ op: "start-daemon", daemon }]),
        (e: unknown) =>
          e instanceof TsvsError && e.code === "TSVS_ERR_INVALID" && /^command 0 at daemon/.test(e.message),
      ));
  it("stop-daemon takes a role and nothing else", () => {
    assert.deepEqual(parseCommands([{ op: "stop-daemon", role: "backup" }]), [
      { op: "stop-daemon", role: "backup" },
    ]);
    assert.throws(() => parseCommands([{ op: "stop-daemon", role: "both" }]), TsvsError);
    assert.throws(() => parseCommands([{ op: "stop-daemon", role: "master", syncid: 1 }]), TsvsError);
  });
  it("the schema takes them in any batch (the daemon refuses a mixed one)", () => {
    const cmds: ControlCommand[] = [
      { op: "clear" },
      { op: "start-daemon", daemon: good },
      { op: "stop-daemon", role: "master" },
    ];
    assert.deepEqual(parseCommands(cmds), cmds);
  });
});

describe("the control protocol's daemons request", () => {
  it("parses", () => assert.deepEqual(parseRequest('{"op":"daemons"}'), { op: "daemons" }));
});

describe("the sync sysctls", () => {
  const defaults = { ...SYNC_SYSCTL_DEFAULTS } as unknown as Record<string, unknown>;
  const good: [string, ReturnType<typeof parseSysctlArg>][] = [
    ["sync_threshold", { name: "sync_threshold" }],
    ["net.ipv4.vs.sync_threshold=3 50", { name: "sync_threshold", value: 3, value2: 50 }],
    ["sync_threshold=3\t50", { name: "sync_threshold", value: 3, value2: 50 }],
    ["sync_threshold=3,50", { name: "sync_threshold", value: 3, value2: 50 }],
    ["sync_threshold= 10 , 0 ", { name: "sync_threshold", value: 10, value2: 0 }],
    ["sync_threshold=7", { name: "sync_threshold", value: 7 }],
    ["sync_refresh_period=10", { name: "sync_refresh_period", value: 10 }],
    ["sync_retries=3", { name: "sync_retries", value: 3 }],
    ["sync_version=0", { name: "sync_version", value: 0 }],
    ["sync_persist_mode=1", { name: "sync_persist_mode", value: 1 }],
  ];
  for (const [arg, want] of good)
    it(`parses ${JSON.stringify(arg)}`, () => assert.deepEqual(parseSysctlArg(arg), want));

  const bad: [string, string][] = [
    [
      "sync_threshold=3 50 7",
      'sync_threshold: value must be one or two integers ("A B" or "A,B", 0..2147483647), not "3 50 7"',
    ],
    [
      "sync_threshold=",
      'sync_threshold: value must be one or two integers ("A B" or "A,B", 0..2147483647), not ""',
    ],
    [
      "sync_threshold=-1 5",
      'sync_threshold: value must be one or two integers ("A B" or "A,B", 0..2147483647), not "-1 5"',
    ],
    ["sync_retries=4", 'sync_retries: value must be an integer 0..3, not "4"'],
    ["sync_version=2", 'sync_version: value must be an integer 0..1, not "2"'],
    ["sync_persist_mode=2", 'sync_persist_mode: value must be an integer 0..1, not "2"'],
    [
      "sync_refresh_period=2147484",
      'sync_refresh_period: value must be an integer 0..2147483, not "2147484"',
    ],
    ["sync_retries=1 2", 'sync_retries: value must be an integer 0..3, not "1 2"'],
  ];
  for (const [arg, msg] of bad)
    it(`refuses ${JSON.stringify(arg)}`, () => assert.deepEqual(parseSysctlArg(arg), { error: msg }));

  it("checks the threshold against the period as proc_do_sync_threshold does", () => {
    assert.equal(sysctlError("sync_threshold", 3, 50, defaults), null);
    assert.equal(sysctlError("sync_threshold", 10, 0, defaults), null); // period 0: sync once
    assert.equal(sysctlError("sync_threshold", 49, undefined, defaults), null); // keeps period 50
    assert.equal(
      sysctlError("sync_threshold", 50, undefined, defaults),
      "sync_threshold: the threshold (50) must be below the period (50) unless the period is 0",
    );
    assert.equal(
      sysctlError("sync_threshold", 5, 5, defaults),
      "sync_threshold: the threshold (5) must be below the period (5) unless the period is 0",
    );
    assert.equal(sysctlError("sync_retries", 1, 2, defaults), "sync_retries takes one value");
    assert.equal(
      sysctlError("sync_retries", 4, undefined, defaults),
      'sync_retries: value must be an integer 0..3, not "4"',
    );
    assert.equal(sysctlError("sync_bogus", 1, undefined, defaults), "unknown sysctl sync_bogus");
  });

  it("maps to the engine's fields and reads back", () => {
    assert.deepEqual(sysctlFields("sync_threshold", 4, 60), { syncThreshold: 4, syncPeriod: 60 });
    assert.deepEqual(sysctlFields("sync_threshold", 4), { syncThreshold: 4 });
    assert.deepEqual(sysctlFields("sync_refresh_period", 10), { syncRefreshPeriod: 10 });
    assert.deepEqual(sysctlFields("sync_retries", 2), { syncRetries: 2 });
    // sync_version and sync_persist_mode stay ints; the older sysctls are flags.
    assert.deepEqual(sysctlFields("sync_version", 0), { syncVersion: 0 });
    assert.deepEqual(sysctlFields("sync_persist_mode", 1), { syncPersistMode: 1 });
    assert.deepEqual(sysctlFields("sloppy_tcp", 1), { sloppyTcp: true });
    assert.deepEqual(sysctlValue("sync_threshold", defaults), [3, 50]);
    assert.equal(sysctlValue("sync_version", defaults), 1);
    assert.equal(sysctlValue("sloppy_tcp", { sloppyTcp: true }), 1);
    assert.equal(formatSysctlValue([3, 50]), "3\t50");
    assert.equal(formatSysctlValue(1), "1");
  });

  it("the sysctl request and command carry the second value", () => {
    assert.deepEqual(parseRequest('{"op":"sysctl","name":"sync_threshold","value":3,"value2":50}'), {
      op: "sysctl",
      name: "sync_threshold",
      value: 3,
      value2: 50,
    });
    assert.deepEqual(parseRequest('{"op":"sysctl","name":"sync_threshold","value2":50}'), {
      error: "sysctl: value2 must be a number, with a value",
    });
    const cmd: ControlCommand = { op: "set-sysctl", name: "sync_threshold", value: 3, value2: 50 };
    assert.deepEqual(parseCommands([cmd]), [cmd]);
  });
});
