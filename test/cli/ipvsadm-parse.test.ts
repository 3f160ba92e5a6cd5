import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  COMMANDS_V_OPTIONS,
  type IpvsadmRequest,
  IpvsadmUsageError,
  type ListOptions,
  parseIpvsadm,
  TRY_HELP,
} from "../../src/cli/ipvsadm/parse.js";
import type { CtlCommand, DestSpec, ServiceSpec } from "../../src/core/ctl-types.js";

const VIP = 0xc6120064; // 198.18.0.100
const RIP = 0xc612010b; // 198.18.1.11
const TCP = 6;
const UDP = 17;

function svc(over: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    af: 4,
    protocol: TCP,
    addr: VIP,
    port: 80,
    fwmark: 0,
    schedName: "wlc",
    flags: 0,
    timeout: 0,
    netmask: 0xffffffff,
    peName: "",
    ...over,
  };
}

function dest(over: Partial<DestSpec> = {}): DestSpec {
  return {
    af: 4,
    addr: RIP,
    port: 80,
    fwd: 3, // Route
    weight: 1,
    uThreshold: 0,
    lThreshold: 0,
    tunType: 0,
    tunPort: 0,
    tunFlags: 0,
    ...over,
  };
}

const KEY = { af: 4 as const, protocol: TCP, addr: VIP, port: 80, fwmark: 0 };

function ctl(argv: string): CtlCommand {
  const r = parseIpvsadm(argv.split(" "));
  assert.equal(r.kind, "ctl", argv);
  return (r as { kind: "ctl"; cmd: CtlCommand }).cmd;
}

function listOpts(over: Partial<ListOptions> = {}): ListOptions {
  return {
    numeric: false,
    stats: false,
    rate: false,
    exact: false,
    thresholds: false,
    persistentConn: false,
    sort: true,
    conns: false,
    timeout: false,
    daemon: false,
    tunInfo: false,
    ...over,
  };
}

describe("ipvsadm parser: services", () => {
  const cases: { argv: string; cmd: CtlCommand }[] = [
    { argv: "-A -t 198.18.0.100:80 -s rr", cmd: { op: "add-service", svc: svc({ schedName: "rr" }) } },
    { argv: "-A -t 198.18.0.100:80", cmd: { op: "add-service", svc: svc() } },
    {
      argv: "--add-service --tcp-service 198.18.0.100:80 --scheduler=rr",
      cmd: { op: "add-service", svc: svc({ schedName: "rr" }) },
    },
    { argv: "-At 198.18.0.100:80 -srr", cmd: { op: "add-service", svc: svc({ schedName: "rr" }) } },
    { argv: "-A -t 198.18.0.100:http", cmd: { op: "add-service", svc: svc() } },
    { argv: "-A -t localhost:443", cmd: { op: "add-service", svc: svc({ addr: 0x7f000001, port: 443 }) } },
    {
      argv: "-A -u 198.18.0.100:53 -s sh -b sh-fallback,sh-port",
      cmd: { op: "add-service", svc: svc({ protocol: UDP, port: 53, schedName: "sh", flags: 0x18 }) },
    },
    { argv: "-A -t 198.18.0.100:80 -p", cmd: { op: "add-service", svc: svc({ flags: 1, timeout: 300 }) } },
    {
      argv: "-A -t 198.18.0.100:80 -p 600 -M 255.255.255.0",
      cmd: { op: "add-service", svc: svc({ flags: 1, timeout: 600, netmask: 0xffffff00 }) },
    },
    {
      argv: "-A -t 198.18.0.100:80 --persistent=60",
      cmd: { op: "add-service", svc: svc({ flags: 1, timeout: 60 }) },
    },
    {
      argv: "-A -t 198.18.0.100:80 -p -s rr",
      cmd: { op: "add-service", svc: svc({ flags: 1, timeout: 300, schedName: "rr" }) },
    },
    {
      argv: "-A -t 198.18.0.100:0 -p",
      cmd: { op: "add-service", svc: svc({ port: 0, flags: 1, timeout: 300 }) },
    },
    {
      argv: "-A -t 198.18.0.100 -p",
      cmd: { op: "add-service", svc: svc({ port: 0, flags: 1, timeout: 300 }) },
    },
    {
      argv: "-A -f 10 -s wrr",
      cmd: { op: "add-service", svc: svc({ protocol: 0, addr: 0, port: 0, fwmark: 10, schedName: "wrr" }) },
    },
    {
      argv: "-A -u 198.18.0.100:53 -o",
      cmd: { op: "add-service", svc: svc({ protocol: UDP, port: 53, flags: 4 }) },
    },
    {
      argv: "-A -t 198.18.0.100:80 -p --pe sip",
      cmd: { op: "add-service", svc: svc({ flags: 1, timeout: 300, peName: "sip" }) },
    },
    { argv: "-E -t 198.18.0.100:80 -s lc", cmd: { op: "edit-service", svc: svc({ schedName: "lc" }) } },
    { argv: "-E -t 198.18.0.100:80", cmd: { op: "edit-service", svc: svc() } },
    { argv: "-D -t 198.18.0.100:80", cmd: { op: "del-service", key: KEY } },
    { argv: "-C", cmd: { op: "clear" } },
    { argv: "--clear", cmd: { op: "clear" } },
    { argv: "-Z", cmd: { op: "zero", key: null } },
    { argv: "-Z -t 198.18.0.100:80", cmd: { op: "zero", key: KEY } },
    { argv: "--set 900 120 300", cmd: { op: "set-timeout", timeouts: { tcp: 900, tcpFin: 120, udp: 300 } } },
    { argv: "--set 0 0 60", cmd: { op: "set-timeout", timeouts: { tcp: 0, tcpFin: 0, udp: 60 } } },
  ];
  for (const c of cases) {
    it(c.argv, () => assert.deepEqual(ctl(c.argv), c.cmd));
  }
});

describe("ipvsadm parser: destinations", () => {
  const cases: { argv: string; cmd: CtlCommand }[] = [
    { argv: "-a -t 198.18.0.100:80 -r 198.18.1.11:80", cmd: { op: "add-dest", key: KEY, dest: dest() } },
    { argv: "-a -t 198.18.0.100:80 -r 198.18.1.11", cmd: { op: "add-dest", key: KEY, dest: dest() } },
    // DR and TUN take the service port whatever port was given.
    { argv: "-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -g", cmd: { op: "add-dest", key: KEY, dest: dest() } },
    {
      argv: "-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -i",
      cmd: { op: "add-dest", key: KEY, dest: dest({ fwd: 2 }) },
    },
    {
      argv: "-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -m -w 3",
      cmd: { op: "add-dest", key: KEY, dest: dest({ port: 8080, fwd: 0, weight: 3 }) },
    },
    {
      argv: "-a -t 198.18.0.100:80 -r 198.18.1.11:8080 --fullnat",
      cmd: { op: "add-dest", key: KEY, dest: dest({ port: 8080, fwd: 5 }) },
    },
    {
      argv: "-a -t 198.18.0.100:80 -r 198.18.1.11 -m -w 0 -x 100 -y 50",
      cmd: { op: "add-dest", key: KEY, dest: dest({ fwd: 0, weight: 0, uThreshold: 100, lThreshold: 50 }) },
    },
    {
      argv: "-a -t 198.18.0.100:80 -r 198.18.1.11 -w 65535",
      cmd: { op: "add-dest", key: KEY, dest: dest({ weight: 65535 }) },
    },
    {
      argv: "-a -t 198.18.0.100:80 -r 198.18.1.11 -i --tun-type gue --tun-port 6080 --tun-csum",
      cmd: { op: "add-dest", key: KEY, dest: dest({ fwd: 2, tunType: 1, tunPort: 6080, tunFlags: 1 }) },
    },
    // fwmark services keep the destination's port.
    {
      argv: "-a -f 7 -r 198.18.1.11:8080 -g",
      cmd: {
        op: "add-dest",
        key: { af: 4, protocol: 0, addr: 0, port: 0, fwmark: 7 },
        dest: dest({ port: 8080 }),
      },
    },
    {
      argv: "-e -t 198.18.0.100:80 -r 198.18.1.11 -m -w 5",
      cmd: { op: "edit-dest", key: KEY, dest: dest({ fwd: 0, weight: 5 }) },
    },
    { argv: "-d -t 198.18.0.100:80 -r 198.18.1.11", cmd: { op: "del-dest", key: KEY, addr: RIP, port: 80 } },
    {
      argv: "-d -t 198.18.0.100:80 -r 198.18.1.11:8080",
      cmd: { op: "del-dest", key: KEY, addr: RIP, port: 8080 },
    },
  ];
  for (const c of cases) {
    it(c.argv, () => assert.deepEqual(ctl(c.argv), c.cmd));
  }
});

describe("ipvsadm parser: list, save, restore, help, version", () => {
  const cases: { argv: string[]; req: IpvsadmRequest }[] = [
    { argv: [], req: { kind: "list", key: null, opts: listOpts() } },
    { argv: ["-L"], req: { kind: "list", key: null, opts: listOpts() } },
    { argv: ["-Ln"], req: { kind: "list", key: null, opts: listOpts({ numeric: true }) } },
    { argv: ["-l", "-n"], req: { kind: "list", key: null, opts: listOpts({ numeric: true }) } },
    {
      argv: ["-L", "-n", "--stats", "--exact"],
      req: { kind: "list", key: null, opts: listOpts({ numeric: true, stats: true, exact: true }) },
    },
    {
      argv: ["-Ln", "--rate", "--nosort"],
      req: { kind: "list", key: null, opts: listOpts({ numeric: true, rate: true, sort: false }) },
    },
    {
      argv: ["-Ln", "--thresholds", "--sort"],
      req: { kind: "list", key: null, opts: listOpts({ numeric: true, thresholds: true }) },
    },
    { argv: ["-Lnc"], req: { kind: "list", key: null, opts: listOpts({ numeric: true, conns: true }) } },
    { argv: ["-L", "--timeout"], req: { kind: "list", key: null, opts: listOpts({ timeout: true }) } },
    { argv: ["-L", "--daemon"], req: { kind: "list", key: null, opts: listOpts({ daemon: true }) } },
    {
      argv: ["-Ln", "-t", "198.18.0.100:80"],
      req: { kind: "list", key: KEY, opts: listOpts({ numeric: true }) },
    },
    { argv: ["-S"], req: { kind: "save", numeric: false } },
    { argv: ["-S", "-n"], req: { kind: "save", numeric: true } },
    { argv: ["-Sn"], req: { kind: "save", numeric: true } },
    { argv: ["-R"], req: { kind: "restore" } },
    { argv: ["-h"], req: { kind: "help" } },
    { argv: ["--help"], req: { kind: "help" } },
    { argv: ["-v"], req: { kind: "version" } },
    { argv: ["--version"], req: { kind: "version" } },
    // --start-daemon / --stop-daemon in detail: ipvsadm-daemon.test.ts.
    {
      argv: ["--stop-daemon", "master"],
      req: { kind: "daemon", cmd: { op: "stop-daemon", role: "master" } },
    },
  ];
  for (const c of cases) {
    it(c.argv.join(" ") || "(no arguments)", () => assert.deepEqual(parseIpvsadm(c.argv), c.req));
  }
});

describe("ipvsadm parser: errors (ipvsadm.c's messages and exit codes)", () => {
  const V = "-t 198.18.0.100:80";
  const cases: { argv: string; msg: string; code?: number }[] = [
    { argv: `-A ${V} -w 2`, msg: "Illegal 'weight' option with the 'add-service' command" },
    { argv: `-A ${V} -r 198.18.1.11`, msg: "Illegal 'real-server' option with the 'add-service' command" },
    { argv: `-A ${V} -m`, msg: "Illegal 'forwarding-method' option with the 'add-service' command" },
    {
      argv: "-A -s rr",
      msg: "You need to supply the 'service-address' option for the 'add-service' command",
    },
    { argv: `-a ${V}`, msg: "You need to supply the 'real-server' option for the 'add-server' command" },
    { argv: `-d ${V}`, msg: "You need to supply the 'real-server' option for the 'delete-server' command" },
    { argv: `-e ${V}`, msg: "You need to supply the 'real-server' option for the 'edit-server' command" },
    { argv: "-D", msg: "You need to supply the 'service-address' option for the 'delete-service' command" },
    { argv: `-D ${V} -s rr`, msg: "Illegal 'scheduler' option with the 'delete-service' command" },
    { argv: `-d ${V} -r 198.18.1.11 -w 1`, msg: "Illegal 'weight' option with the 'delete-server' command" },
    { argv: `-a ${V} -r 198.18.1.11 -s rr`, msg: "Illegal 'scheduler' option with the 'add-server' command" },
    { argv: `-C ${V}`, msg: "Illegal 'service-address' option with the 'flush' command" },
    { argv: "-L -p", msg: "Illegal 'persistent' option with the 'list' command" },
    { argv: "-S --stats", msg: "Illegal 'stats' option with the 'save' command" },
    { argv: "-Z -n", msg: "Illegal 'numeric' option with the 'zero' command" },
    { argv: "-R -n", msg: "Illegal 'numeric' option with the 'restore' command" },
    { argv: "--set 1 2 3 -n", msg: "Illegal 'numeric' option with the 'set' command" },
    {
      argv: `-L -c ${V}`,
      msg: "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
    },
    {
      argv: "-L -c --timeout",
      msg: "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
    },
    { argv: "-L --stats --timeout", msg: "options conflicts in the list command" },
    { argv: "-L -c --rate", msg: "options conflicts in the list command" },
    { argv: "-L --daemon --persistent-conn", msg: "options conflicts in the list command" },
    { argv: `-A ${V} -s rr -s wlc`, msg: "multiple 'scheduler' options specified" },
    { argv: `-A ${V} -t 198.18.0.101:80`, msg: "multiple 'service-address' options specified" },
    { argv: `-a ${V} -r 198.18.1.11 -g -m`, msg: "multiple 'forwarding-method' options specified" },
    { argv: `-a ${V} -r 198.18.1.11 -w 65536`, msg: "illegal weight specified" },
    { argv: `-a ${V} -r 198.18.1.11 -w -1`, msg: "illegal weight specified" },
    { argv: `-a ${V} -r 198.18.1.11 -w x`, msg: "illegal weight specified" },
    { argv: `-a ${V} -r 198.18.1.11 -x 2147483648`, msg: "illegal u_threshold specified" },
    { argv: `-a ${V} -r 198.18.1.11 -y z`, msg: "illegal l_threshold specified" },
    { argv: "-A -t 198.18.0.100:65536", msg: "illegal virtual server address[:port] specified" },
    { argv: "-A -t 198.18.0.300:80", msg: "illegal virtual server address[:port] specified" },
    { argv: "-A -t 80", msg: "illegal virtual server address[:port] specified" },
    { argv: "-A -t example.org:80", msg: "illegal virtual server address[:port] specified" },
    { argv: "-A -t 198.18.0.100:gopher", msg: "illegal virtual server address[:port] specified" },
    { argv: `-a ${V} -r 198.18.1.x`, msg: "illegal real server address[:port] specified" },
    { argv: "-A -f 0", msg: "invalid fwmark value `0' specified" },
    { argv: "-A -f abc", msg: "invalid fwmark value `abc' specified" },
    { argv: "-A -f 4294967296", msg: "invalid fwmark value `4294967296' specified" },
    { argv: `-A ${V} -p 0`, msg: "invalid timeout value `0' specified" },
    { argv: `-A ${V} -p 2678401`, msg: "invalid timeout value `2678401' specified" },
    { argv: `-A ${V} -p -M 255.255.255.256`, msg: "illegal virtual server persistent mask specified" },
    { argv: "-A -t 198.18.0.100:0", msg: "Zero port specified for non-persistent service" },
    { argv: "-A -t 198.18.0.100", msg: "Zero port specified for non-persistent service" },
    { argv: `-A ${V} -o`, msg: "One-Packet Scheduling is only for UDP virtual services" },
    { argv: `-A ${V} -b sh-port`, msg: "incompatible scheduler flag `sh-port'" },
    { argv: `-A ${V} -s sh -b mh-port`, msg: "incompatible scheduler flag `mh-port'" },
    { argv: `-A ${V} -s sh -b bogus`, msg: "invalid scheduler flag `bogus'" },
    { argv: `-a ${V} -r 198.18.1.11 -m --tun-type gue`, msg: "Tunnel options conflict with forward method" },
    { argv: `-a ${V} -r 198.18.1.11 -i --tun-type udp`, msg: "illegal tunnel type specified" },
    {
      argv: `-a ${V} -r 198.18.1.11 -i --tun-type gue`,
      msg: "You need to supply the 'tun-port' option for the 'gue' tunnel type",
    },
    {
      argv: `-a ${V} -r 198.18.1.11 -i --tun-port 5000`,
      msg: "Illegal 'tun-port' option with the 'ipip' tunnel type",
    },
    { argv: `-a ${V} -r 198.18.1.11 -i --tun-type gue --tun-port 0`, msg: "illegal tunnel port specified" },
    {
      argv: `-a ${V} -r 198.18.1.11 -i --tun-type gue --tun-port 5 --tun-csum --tun-nocsum`,
      msg: "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type",
    },
    {
      argv: `-a ${V} -r 198.18.1.11 -i --tun-type gre --tun-remcsum`,
      msg: "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
    },
    { argv: "--set 1 2", msg: "--set option requires 3 timeout values" },
    { argv: "--set 1 2 x", msg: "invalid timeout value `x' specified" },
    { argv: "--set 1 2 3 4", msg: "unexpected argument 4" },
    { argv: `-A ${V} foo`, msg: "unexpected argument foo" },
    { argv: `-A ${V} -L`, msg: "invalid option `-L'" },
    { argv: "-L -h", msg: "invalid option `-h'" },
    { argv: "--start-daemon primary", msg: "illegal start-daemon parameter specified" },
    { argv: "--stop-daemon primary", msg: "illegal start_daemon specified" },
    { argv: "--start-daemon master --syncid 256", msg: "illegal syncid specified" },
    { argv: "--start-daemon master --mcast-group 10.0.0.1", msg: "invalid IPv4 mcast-group `10.0.0.1'" },
    { argv: "-A -t 198.18.0.100:80 -6", msg: "-6 used before -f\n" },
    // popt errors and the "Try" line: exit 255.
    { argv: "-t 198.18.0.100:80 -A", msg: TRY_HELP, code: 255 },
    { argv: "-n -L", msg: TRY_HELP, code: 255 },
    { argv: "foo", msg: TRY_HELP, code: 255 },
    { argv: "--bogus", msg: TRY_HELP, code: 255 },
    { argv: "-L --bogus", msg: "--bogus: unknown option", code: 255 },
    { argv: "-Lq", msg: "-Lq: unknown option", code: 255 },
    { argv: "-A -t", msg: "-t: missing argument", code: 255 },
    { argv: "-L --stats=1", msg: "--stats=1: option does not take an argument", code: 255 },
  ];
  for (const c of cases) {
    it(`${c.argv} -> ${JSON.stringify(c.msg)}`, () => {
      assert.throws(
        () => parseIpvsadm(c.argv.split(" ")),
        (e: unknown) => {
          assert.ok(e instanceof IpvsadmUsageError);
          assert.equal(e.code, "TSVS_ERR_USAGE");
          assert.equal(e.message, c.msg);
          assert.equal(e.exitCode, c.code ?? 2);
          return true;
        },
      );
    });
  }

  it("the command/option table has one column per option in every row", () => {
    // ipvsadm 1.31's 14 commands and 34 options, then DPVS's -P -Q -G and --laddr --ifname
    // --proxy-protocol, DPVS's -U -V -B -O -Y -W with -k -2, tsvs's --conn-limit with --conn-rate
    // --conn-burst --conn-rate-prefix, DPVS's --synproxy (-j).
    assert.equal(COMMANDS_V_OPTIONS.length, 24);
    for (const row of COMMANDS_V_OPTIONS) assert.equal(row.length, 43);
  });
});
