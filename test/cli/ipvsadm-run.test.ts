// `ipvsadm` end to end over a real IpvsCtl: stdout, stderr and exit codes as ipvsadm 1.31
// gives them. Expected listings are written from ipvsadm.c's printf formats (see
// ipvsadm-format.test.ts); messages are ipvsadm.c's fail() strings, popt's
// "<word>: <poptStrerror>" and libipvs's ipvs_strerror table, verbatim.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TRY_HELP } from "../../src/cli/ipvsadm/parse.js";
import {
  type IpvsadmBackend,
  type IpvsadmResult,
  runIpvsadm,
  splitRestoreLine,
} from "../../src/cli/ipvsadm/run.js";
import { serviceSnapshot, zeroStats } from "../../src/control/snapshot.js";
import { IpvsCtl } from "../../src/core/ctl.js";
import type { ConnView } from "../../src/core/ctl-types.js";
import { Timeouts } from "../../src/core/proto/timeouts.js";

function ip(s: string): number {
  return s.split(".").reduce((a, b) => a * 256 + Number(b), 0);
}

interface Harness {
  ctl: IpvsCtl;
  conns: ConnView[];
  /** `ipvsadm <args>`; args split on blanks. */
  run(args: string, stdin?: string): IpvsadmResult;
}

function harness(): Harness {
  const timeouts = new Timeouts();
  const ctl = new IpvsCtl({
    onSetTimeout: (t) => timeouts.set(t),
    onDestRemoved: () => {},
    onServiceRemoved: () => {},
    onDestQuiesced: () => {},
  });
  const conns: ConnView[] = [];
  const backend: IpvsadmBackend = {
    apply: (cmds) => ctl.applyAll(cmds),
    snapshot: (withConns) => ({
      services: ctl.services().map(serviceSnapshot),
      connTabSize: 4096,
      total: zeroStats(),
      timeouts: timeouts.get(),
      conns: withConns ? conns : undefined,
    }),
  };
  return {
    ctl,
    conns,
    run: (args, stdin = "") => runIpvsadm(args === "" ? [] : args.split(" "), backend, stdin),
  };
}

const OK = (stdout: string): IpvsadmResult => ({ code: 0, stdout, stderr: "" });

const SETUP = [
  "-A -t 10.0.0.100:80 -s rr",
  "-a -t 10.0.0.100:80 -r 10.0.1.11:80 -m -w 3",
  "-a -t 10.0.0.100:80 -r 10.0.1.12 -g",
  "-A -u 10.0.0.100:53",
  "-a -u 10.0.0.100:53 -r 10.0.1.11:5300 -m",
];

function populated(): Harness {
  const h = harness();
  for (const line of SETUP) assert.deepEqual(h.run(line), OK(""), line);
  return h;
}

const LIST_N = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port Scheduler Flags",
  "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
  "TCP  10.0.0.100:80 rr",
  "  -> 10.0.1.11:80                 Masq    3      0          0         ",
  "  -> 10.0.1.12:80                 Route   1      0          0         ",
  "UDP  10.0.0.100:53 wlc",
  "  -> 10.0.1.11:5300               Masq    1      0          0         ",
  "",
].join("\n");

const LIST_NAMES = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port Scheduler Flags",
  "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
  "TCP  10.0.0.100:http rr",
  "  -> 10.0.1.11:http               Masq    3      0          0         ",
  "  -> 10.0.1.12:http               Route   1      0          0         ",
  "UDP  10.0.0.100:domain wlc",
  "  -> 10.0.1.11:5300               Masq    1      0          0         ",
  "",
].join("\n");

const LIST_UDP = [
  "Prot LocalAddress:Port Scheduler Flags",
  "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
  "UDP  10.0.0.100:53 wlc",
  "  -> 10.0.1.11:5300               Masq    1      0          0         ",
  "",
].join("\n");

const STATS_AFTER_ZERO_WEB = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
  "  -> RemoteAddress:Port",
  "TCP  10.0.0.100:80                       0        0        0        0        0",
  "  -> 10.0.1.11:80                        0        0        0        0        0",
  "  -> 10.0.1.12:80                        0        0        0        0        0",
  "UDP  10.0.0.100:53                       7       70        0     7000        0",
  "  -> 10.0.1.11:5300                      7       70        0     7000        0",
  "",
].join("\n");

const CONNS_N = [
  "IPVS connection entries",
  "pro expire state       source             virtual            destination",
  "TCP 01:59  FIN_WAIT    192.168.5.1:40000  10.0.0.100:80      10.0.1.11:80",
  "",
].join("\n");

describe("ipvsadm listing commands", () => {
  it("-Ln after -A/-a lists the table; no argument and -L print port names", () => {
    const h = populated();
    assert.deepEqual(h.run("-Ln"), OK(LIST_N));
    assert.deepEqual(h.run("-l --numeric"), OK(LIST_N));
    assert.deepEqual(h.run("-L"), OK(LIST_NAMES));
    assert.deepEqual(h.run(""), OK(LIST_NAMES));
  });

  it("-L -n -u VIP:port lists one service; a missing one is No such service, exit 1", () => {
    const h = populated();
    assert.deepEqual(h.run("-L -n -u 10.0.0.100:53"), OK(LIST_UDP));
    assert.deepEqual(h.run("-L -n -u 10.0.0.100:domain"), OK(LIST_UDP));
    assert.deepEqual(h.run("-L -n -t 10.0.0.100:53"), { code: 1, stdout: "", stderr: "No such service\n" });
  });

  it("-Lnc lists the backend's connections", () => {
    const h = populated();
    h.conns.push({
      protocol: 6,
      expiresMs: 119_999,
      state: "FIN_WAIT",
      caddr: ip("192.168.5.1"),
      cport: 40000,
      vaddr: ip("10.0.0.100"),
      vport: 80,
      daddr: ip("10.0.1.11"),
      dport: 80,
      laddr: 0,
      lport: 0,
      template: false,
      fwmark: 0,
    });
    assert.deepEqual(h.run("-Lnc"), OK(CONNS_N));
  });

  it("--set changes the timeouts --timeout shows; 0 keeps a value", () => {
    const h = harness();
    assert.deepEqual(h.run("-L --timeout"), OK("Timeout (tcp tcpfin udp): 900 120 300\n"));
    assert.deepEqual(h.run("--set 3600 0 60"), OK(""));
    assert.deepEqual(h.run("-L --timeout"), OK("Timeout (tcp tcpfin udp): 3600 120 60\n"));
  });

  it("-Z -t VIP:port zeroes one service's counters, -Z all of them", () => {
    const h = populated();
    for (const s of h.ctl.services()) {
      const n = s.protocol === 6 ? 5 : 7;
      for (const st of [s.stats, ...s.dests.map((d) => d.stats)]) {
        st.conns = n;
        st.inpkts = n * 10;
        st.inbytes = n * 1000;
      }
    }
    assert.deepEqual(h.run("-Z -t 10.0.0.100:80"), OK(""));
    assert.deepEqual(h.run("-Ln --stats"), OK(STATS_AFTER_ZERO_WEB));
    assert.deepEqual(h.run("-Z"), OK(""));
    assert.ok(
      h.ctl.services().every((s) => s.stats.conns === 0 && s.dests.every((d) => d.stats.inpkts === 0)),
    );
  });

  it("-r before -t copies the service port known so far (none): a NAT destination gets port 0", () => {
    const h = populated();
    assert.deepEqual(h.run("-a -r 10.0.1.5 -t 10.0.0.100:80 -m"), OK(""));
    // DR and TUN take the service port whatever -r said.
    assert.deepEqual(h.run("-a -r 10.0.1.6 -t 10.0.0.100:80 -g"), OK(""));
    const rules = h.run("-S -n").stdout.split("\n");
    assert.ok(rules.includes("-a -t 10.0.0.100:80 -r 10.0.1.5:0 -m -w 1"));
    assert.ok(rules.includes("-a -t 10.0.0.100:80 -r 10.0.1.6:80 -g -w 1"));
  });

  it("-h prints the usage on stdout, -v the version, both exit 0", () => {
    const h = harness();
    const help = h.run("-h");
    assert.equal(help.code, 0);
    assert.ok(
      help.stdout.startsWith("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n"),
    );
    assert.ok(help.stdout.includes("  --set tcp tcpfin udp        set connection timeout values\n"));
    assert.deepEqual(
      h.run("--version"),
      OK("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"),
    );
  });
});

describe("ipvsadm -S and -R", () => {
  it("-S -n writes rules; -S names ports", () => {
    const h = populated();
    assert.deepEqual(
      h.run("-S -n"),
      OK(
        [
          "-A -t 10.0.0.100:80 -s rr",
          "-a -t 10.0.0.100:80 -r 10.0.1.11:80 -m -w 3",
          "-a -t 10.0.0.100:80 -r 10.0.1.12:80 -g -w 1",
          "-A -u 10.0.0.100:53 -s wlc",
          "-a -u 10.0.0.100:53 -r 10.0.1.11:5300 -m -w 1",
          "",
        ].join("\n"),
      ),
    );
    assert.deepEqual(
      h.run("--save"),
      OK(
        [
          "-A -t 10.0.0.100:http -s rr",
          "-a -t 10.0.0.100:http -r 10.0.1.11:http -m -w 3",
          "-a -t 10.0.0.100:http -r 10.0.1.12:http -g -w 1",
          "-A -u 10.0.0.100:domain -s wlc",
          "-a -u 10.0.0.100:domain -r 10.0.1.11:5300 -m -w 1",
          "",
        ].join("\n"),
      ),
    );
  });

  it("-S output fed to -R recreates the same table (with and without -n)", () => {
    const src = populated();
    for (const cmd of [
      "-A -t 10.0.0.200:0 -s sh -b sh-port -p 900 -M 255.255.0.0",
      "-a -t 10.0.0.200:0 -r 10.0.2.1:0 -i --tun-type gue --tun-port 6080 --tun-remcsum -w 9",
      "-a -t 10.0.0.200:0 -r 10.0.2.2 -i -w 0",
      "-A -f 42 -s mh -b mh-fallback --pe sip -p",
      "-a -f 42 -r 10.0.3.1:8080 -m -w 65535",
      "-A -u 10.0.0.201:53 -s wrr -o",
      "-a -u 10.0.0.201:53 -r 10.0.4.1:53 --fullnat",
    ])
      assert.deepEqual(src.run(cmd), OK(""), cmd);
    for (const save of ["-S -n", "-S"]) {
      const rules = src.run(save).stdout;
      const dst = harness();
      assert.deepEqual(dst.run("-R", rules), OK(""), save);
      assert.equal(dst.run("-S -n").stdout, src.run("-S -n").stdout, save);
      assert.equal(dst.run("-L -n").stdout, src.run("-L -n").stdout, save);
    }
  });

  it("-R reads ipvsadm-save lines: the program name and blank lines are skipped", () => {
    const h = harness();
    const input =
      "ipvsadm -A -t 10.0.0.1:80\n\n  \t\nipvsadm -a -t 10.0.0.1:80 -r 10.0.1.1 -w 2\r\n# tsvs: a comment\n";
    assert.deepEqual(h.run("-R", input), OK(""));
    assert.equal(h.run("-Sn").stdout, "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 2\n");
  });

  it("config_stream splitting: blanks separate words, quotes are plain characters", () => {
    assert.deepEqual(splitRestoreLine(' -A\t-t  10.0.0.1:80 ipvsadm "-s rr"\r'), [
      "-A",
      "-t",
      "10.0.0.1:80",
      '"-s',
      'rr"',
    ]);
  });

  it("-R with a bad line applies nothing and names the line", () => {
    const h = populated();
    const before = h.run("-S -n").stdout;
    const cases: Array<[string, IpvsadmResult]> = [
      [
        "-A -t 10.0.0.2:80\n-a -t 10.0.0.2:80 -r 10.0.1.1 -w 70000\n",
        { code: 2, stdout: "", stderr: "line 2: illegal weight specified\n" },
      ],
      [
        "-A -t 10.0.0.2:80\n\n-A -t 10.0.0.100:80\n",
        { code: 255, stdout: "", stderr: "line 3: Service already exists\n" },
      ],
      [
        "-C\n-a -t 10.0.0.100:80 -r 10.0.1.11:80\n",
        { code: 255, stdout: "", stderr: "line 2: Service not defined\n" },
      ],
      [
        "-A -t 10.0.0.2:80\n-L -n\n",
        {
          code: 255,
          stdout: "",
          stderr:
            "line 2: only table changes (-A -E -D -C -a -e -d -Z --set -P -Q) may appear in restore input\n",
        },
      ],
      ["-A -t 10.0.0.2:80 --bogus\n", { code: 255, stdout: "", stderr: "line 1: --bogus: unknown option\n" }],
    ];
    for (const [input, want] of cases) {
      assert.deepEqual(h.run("-R", input), want, input);
      assert.equal(h.run("-S -n").stdout, before, `unchanged after ${JSON.stringify(input)}`);
    }
  });
});

describe("ipvsadm errors", () => {
  const CTL = 255;
  // [setup on the populated table, argv, exit code, stderr]
  const cases: Array<[string, number, string]> = [
    // libipvs's messages (ipvs_strerror), by call and errno
    ["-A -t 10.0.0.100:80", CTL, "Service already exists"],
    ["-A -t 10.0.0.101:80 -s nosuch", CTL, "Scheduler or persistence engine not found"],
    ["-A -t 10.0.0.101:80 -p --pe nosuch", CTL, "Scheduler or persistence engine not found"],
    ["-E -t 10.0.0.100:80 -s nosuch", CTL, "Scheduler or persistence engine not found"],
    ["-E -t 10.0.0.101:80", CTL, "No such service"],
    ["-D -t 10.0.0.101:80", CTL, "No such service"],
    ["-Z -t 10.0.0.101:80", CTL, "No such service"],
    ["-D -f 9", CTL, "No such service"],
    ["-a -t 10.0.0.101:80 -r 10.0.1.11", CTL, "Service not defined"],
    ["-a -t 10.0.0.100:80 -r 10.0.1.11:80", CTL, "Destination already exists"],
    ["-e -t 10.0.0.101:80 -r 10.0.1.11", CTL, "Service not defined"],
    ["-e -t 10.0.0.100:80 -r 10.0.1.99", CTL, "No such destination"],
    ["-d -t 10.0.0.101:80 -r 10.0.1.11", CTL, "Service not defined"],
    ["-d -t 10.0.0.100:80 -r 10.0.1.11:81", CTL, "No such destination"],
    // popt: the "Try" line when the first option fails, else "<word>: <error>"
    ["--bogus", 255, TRY_HELP],
    ["10.0.0.1", 255, TRY_HELP],
    ["-t 10.0.0.1:80", 255, TRY_HELP],
    ["-L --bogus", 255, "--bogus: unknown option"],
    ["-Lq", 255, "-Lq: unknown option"],
    ["-A -t", 255, "-t: missing argument"],
    ["-L --numeric=yes", 255, "--numeric=yes: option does not take an argument"],
    // fail(): options are handled in order, so an earlier bad value wins over a later popt error
    ["-A -t 10.0.0.1:80:x -q", 2, "illegal virtual server address[:port] specified"],
    ["-L -A", 2, "invalid option `-A'"],
    ["-L --start-daemon master", 2, "invalid option `master'"],
    ["-A -t 10.0.0.1", 2, "Zero port specified for non-persistent service"],
    ["-A -t 10.0.0.1:0 -s rr", 2, "Zero port specified for non-persistent service"],
    ["-A -t 10.0.0.1:80 -p 0", 2, "invalid timeout value `0' specified"],
    ["-A -t 10.0.0.1:80 -p 2678401", 2, "invalid timeout value `2678401' specified"],
    ["-A -t 10.0.0.300:80", 2, "illegal virtual server address[:port] specified"],
    ["-A -t 10.0.0.1:65536", 2, "illegal virtual server address[:port] specified"],
    ["-A -u 10.0.0.1:http", 2, "illegal virtual server address[:port] specified"],
    ["-A -t 10.0.0.1:80 -M 255.255.255.256 -p", 2, "illegal virtual server persistent mask specified"],
    ["-a -t 10.0.0.100:80 -r host.invalid", 2, "illegal real server address[:port] specified"],
    ["-a -t 10.0.0.100:80 -r 10.0.1.5 -w 65536", 2, "illegal weight specified"],
    ["-a -t 10.0.0.100:80 -r 10.0.1.5 -x -1", 2, "illegal u_threshold specified"],
    ["-a -t 10.0.0.100:80 -r 10.0.1.5 -y x", 2, "illegal l_threshold specified"],
    ["-A -f 0", 2, "invalid fwmark value `0' specified"],
    ["-A -t 10.0.0.1:80 -s rr -s wlc", 2, "multiple 'scheduler' options specified"],
    ["-A -t 10.0.0.1:80 -r 10.0.1.1", 2, "Illegal 'real-server' option with the 'add-service' command"],
    ["-a -t 10.0.0.100:80", 2, "You need to supply the 'real-server' option for the 'add-server' command"],
    ["-A -s rr", 2, "You need to supply the 'service-address' option for the 'add-service' command"],
    [
      "-L -c --timeout",
      2,
      "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
    ],
    ["-L -c --stats", 2, "options conflicts in the list command"],
    ["-L --timeout --persistent-conn", 2, "options conflicts in the list command"],
    ["-S -c", 2, "Illegal 'connection' option with the 'save' command"],
    ["--set 1 2", 2, "--set option requires 3 timeout values"],
    ["--set 1 2 x", 2, "invalid timeout value `x' specified"],
    ["-L foo", 2, "unexpected argument foo"],
    ["-A -t 10.0.0.1:80 -o", 2, "One-Packet Scheduling is only for UDP virtual services"],
    ["-A -t 10.0.0.1:80 -b sh-port", 2, "incompatible scheduler flag `sh-port'"],
    ["-A -t 10.0.0.1:80 -s sh -b sh-port,bogus", 2, "invalid scheduler flag `bogus'"],
    ["-a -t 10.0.0.100:80 -r 10.0.1.5 -m --tun-type gue", 2, "Tunnel options conflict with forward method"],
    [
      "-a -t 10.0.0.100:80 -r 10.0.1.5 -i --tun-type gue",
      2,
      "You need to supply the 'tun-port' option for the 'gue' tunnel type",
    ],
    ["-a -t 10.0.0.100:80 -r 10.0.1.5 -i --tun-type vxlan", 2, "illegal tunnel type specified"],
    ["--start-daemon primary", 2, "illegal start-daemon parameter specified"],
    ["--stop-daemon primary", 2, "illegal start_daemon specified"],
    // the message ends in its own "\n" in ipvsadm.c, and fail() adds one
    ["-A -t 10.0.0.1:80 -6", 2, "-6 used before -f\n"],
  ];
  for (const [argv, code, message] of cases) {
    it(`ipvsadm ${argv} -> exit ${code}: ${JSON.stringify(message)}`, () => {
      const h = populated();
      const before = h.run("-S -n").stdout;
      assert.deepEqual(h.run(argv), { code, stdout: "", stderr: `${message}\n` });
      assert.equal(h.run("-S -n").stdout, before, "table unchanged");
    });
  }
});
