// DPVS's local address commands in tsvs's ipvsadm (iqiyi/dpvs tools/ipvsadm/ipvsadm.c):
// --add-laddr|-P, --del-laddr|-Q with --laddr|-z (and -F ifname, accepted and ignored), and
// --get-laddr|-G, whose listing is print_service_and_laddrs's printf formats:
//   title   "%-20s %-8s %-20s %-10s %-10s\n" VIP:VPORT TOTAL SNAT_IP CONFLICTS CONNS
//   service "%-20s %-8u \n"                 VIP:PORT, number of local addresses
//   address "%-20s %-8s %-20s %-10lu %-10u\n" "", "", address, port conflicts, connections
// Errors are DPVS's fail() strings and its libipvs messages; exit codes as ipvsadm's.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatLaddrs } from "../../src/cli/ipvsadm/format.js";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { type IpvsadmResult, runIpvsadm, usageText } from "../../src/cli/ipvsadm/run.js";
import { ControlApi } from "../../src/control/api.js";
import { type TableSnapshot, zeroStats } from "../../src/control/snapshot.js";
import { Engine } from "../../src/core/engine.js";

function ip(s: string): number {
  return s.split(".").reduce((a, b) => a * 256 + Number(b), 0);
}

/** ipvsadm over a director with no interfaces (the control side only). */
function director(): { run(args: string, stdin?: string): IpvsadmResult } {
  const engine = new Engine({ interfaces: [], send: () => {} });
  const api = new ControlApi(engine, () => 0);
  const backend = { apply: (c: never) => api.apply(c), snapshot: (w: boolean) => api.snapshot(w) };
  return { run: (args, stdin = "") => runIpvsadm(args === "" ? [] : args.split(" "), backend, stdin) };
}

const OK = (stdout: string): IpvsadmResult => ({ code: 0, stdout, stderr: "" });
const ERR = (code: number, message: string): IpvsadmResult => ({ code, stdout: "", stderr: `${message}\n` });

const KEY = { af: 4, protocol: 6, addr: ip("10.0.0.100"), port: 80, fwmark: 0 } as const;

describe("ipvsadm -P / -Q / -G: parsing", () => {
  const good: { argv: string; want: unknown }[] = [
    {
      argv: "-P -t 10.0.0.100:80 -z 10.0.1.200",
      want: { kind: "ctl", cmd: { op: "add-laddr", key: KEY, addr: ip("10.0.1.200") } },
    },
    {
      argv: "--add-laddr -t 10.0.0.100:80 --laddr 10.0.1.200 -F eth1",
      want: { kind: "ctl", cmd: { op: "add-laddr", key: KEY, addr: ip("10.0.1.200") } },
    },
    {
      argv: "-Q -t 10.0.0.100:80 -z 10.0.1.200",
      want: { kind: "ctl", cmd: { op: "del-laddr", key: KEY, addr: ip("10.0.1.200") } },
    },
    {
      argv: "--del-laddr --tcp-service 10.0.0.100:http --laddr=10.0.1.200 --ifname eth1",
      want: { kind: "ctl", cmd: { op: "del-laddr", key: KEY, addr: ip("10.0.1.200") } },
    },
    {
      argv: "-P -f 7 -z 10.0.1.200:99",
      want: {
        kind: "ctl",
        cmd: {
          op: "add-laddr",
          key: { af: 4, protocol: 0, addr: 0, port: 0, fwmark: 7 },
          addr: ip("10.0.1.200"),
        },
      },
    },
    { argv: "-G", want: { kind: "laddrs", key: null } },
    { argv: "--get-laddr -t 10.0.0.100:80", want: { kind: "laddrs", key: KEY } },
  ];
  for (const g of good) {
    it(`${g.argv}`, () => assert.deepEqual(parseIpvsadm(g.argv.split(" ")), g.want));
  }

  const bad: { argv: string; out: IpvsadmResult }[] = [
    {
      argv: "-P -t 10.0.0.100:80",
      out: ERR(2, "You need to supply the 'local-address' option for the 'add-laddr' command"),
    },
    {
      argv: "-Q -t 10.0.0.100:80",
      out: ERR(2, "You need to supply the 'local-address' option for the 'del-laddr' command"),
    },
    {
      argv: "-P -z 10.0.1.200",
      out: ERR(2, "You need to supply the 'service-address' option for the 'add-laddr' command"),
    },
    { argv: "-P -t 10.0.0.100:80 -z nope", out: ERR(2, "illegal local address") },
    {
      argv: "-P -t 10.0.0.100:80 -z 10.0.1.200 -z 10.0.1.201",
      out: ERR(2, "multiple 'local-address' options specified"),
    },
    {
      argv: "-P -t 10.0.0.100:80 -z 10.0.1.200 -w 2",
      out: ERR(2, "Illegal 'weight' option with the 'add-laddr' command"),
    },
    {
      argv: "-Q -t 10.0.0.100:80 -z 10.0.1.200 -r 10.0.1.11",
      out: ERR(2, "Illegal 'real-server' option with the 'del-laddr' command"),
    },
    { argv: "-G -z 10.0.1.200", out: ERR(2, "Illegal 'local-address' option with the 'get-laddr' command") },
    { argv: "-G -n", out: ERR(2, "Illegal 'numeric' option with the 'get-laddr' command") },
    {
      argv: "-A -t 10.0.0.100:80 -z 10.0.1.200",
      out: ERR(2, "Illegal 'local-address' option with the 'add-service' command"),
    },
    {
      argv: "-a -t 10.0.0.100:80 -r 10.0.1.11 -F eth0",
      out: ERR(2, "Illegal 'ifname' option with the 'add-server' command"),
    },
    { argv: "-P -t 10.0.0.100:80 -z", out: ERR(255, "-z: missing argument") },
  ];
  for (const b of bad) {
    it(`${b.argv} -> ${JSON.stringify(b.out.stderr.trim())}`, () =>
      assert.deepEqual(director().run(b.argv), b.out));
  }
});

describe("ipvsadm -P / -Q / -G against a director", () => {
  function setup(): ReturnType<typeof director> {
    const d = director();
    for (const line of [
      "-A -t 10.0.0.100:80 -s rr",
      "-a -t 10.0.0.100:80 -r 10.0.1.11:8080 --fullnat",
      "-A -u 10.0.0.100:53",
    ])
      assert.deepEqual(d.run(line), OK(""), line);
    return d;
  }

  it("adds, lists, refuses as DPVS's libipvs does, and deletes", () => {
    const d = setup();
    assert.deepEqual(d.run("-P -t 10.0.0.100:80 -z 10.0.1.200 -F eth1"), OK(""));
    assert.deepEqual(d.run("-P -t 10.0.0.100:80 -z 10.0.1.201"), OK(""));
    assert.deepEqual(d.run("-P -t 10.0.0.100:80 -z 10.0.1.200"), ERR(255, "Local address already exists"));
    assert.deepEqual(d.run("-P -t 10.0.0.100:81 -z 10.0.1.200"), ERR(255, "Service not defined"));
    assert.deepEqual(d.run("-Q -t 10.0.0.100:80 -z 10.0.1.99"), ERR(255, "No such Local address"));
    assert.deepEqual(d.run("-Q -t 10.0.0.100:81 -z 10.0.1.200"), ERR(255, "Service not defined"));
    assert.deepEqual(
      d.run("-P -t 10.0.0.100:80 -z 255.255.255.255"),
      ERR(255, "Invalid operation.  Possibly wrong module version, address not unicast, ..."),
    );
    const title = "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n";
    const tcp =
      "10.0.0.100:80        2        \n" +
      "                              10.0.1.200           0          0         \n" +
      "                              10.0.1.201           0          0         \n";
    assert.deepEqual(d.run("-G -t 10.0.0.100:80"), OK(title + tcp));
    // Every service, those without local addresses too, in the table's (hash walk) order, one title.
    assert.deepEqual(d.run("-G"), OK(`${title}${tcp}10.0.0.100:53        0        \n`));
    assert.deepEqual(d.run("-G -t 10.0.0.100:81"), ERR(1, "No such service"));
    assert.deepEqual(d.run("-Q -t 10.0.0.100:80 -z 10.0.1.200"), OK(""));
    assert.deepEqual(
      d.run("-G -t 10.0.0.100:80"),
      OK(
        `${title}10.0.0.100:80        1        \n                              10.0.1.201           0          0         \n`,
      ),
    );
  });

  it("-G on an empty table prints nothing", () => {
    assert.deepEqual(director().run("-G"), OK(""));
  });

  it("-S saves local addresses as -P lines after their service's lines, and -R restores them", () => {
    const d = setup();
    assert.deepEqual(d.run("-P -t 10.0.0.100:80 -z 10.0.1.201"), OK(""));
    assert.deepEqual(d.run("-P -t 10.0.0.100:80 -z 10.0.1.200"), OK(""));
    const saved = d.run("-S -n");
    assert.deepEqual(
      saved,
      OK(
        "-A -t 10.0.0.100:80 -s rr\n" +
          "-a -t 10.0.0.100:80 -r 10.0.1.11:8080 --fullnat -w 1\n" +
          "-P -t 10.0.0.100:80 -z 10.0.1.201\n" +
          "-P -t 10.0.0.100:80 -z 10.0.1.200\n" +
          "-A -u 10.0.0.100:53 -s wlc\n",
      ),
    );
    const other = director();
    assert.deepEqual(other.run("-R", saved.stdout), OK(""));
    assert.deepEqual(other.run("-S -n"), saved);
    assert.deepEqual(other.run("-G"), d.run("-G"));
    // A restore with a bad -P line applies nothing and names the line.
    const again = director();
    assert.deepEqual(
      again.run("-R", `${saved.stdout}-P -t 10.0.0.100:80 -z 10.0.1.200\n`),
      ERR(255, "line 6: Local address already exists"),
    );
    assert.deepEqual(again.run("-S -n"), OK(""));
  });

  it("the usage text names the three commands and the two options", () => {
    const u = usageText();
    for (const s of [
      "-P|Q virtual-service -z local-address [-F ifname]",
      "-G [virtual-service]",
      "--add-laddr       -P        add local address",
      "--del-laddr       -Q        del local address",
      "--get-laddr       -G        get local address",
      "--laddr        -z local-ip          local IP",
    ])
      assert.ok(u.includes(s), s);
  });
});

describe("ipvsadm -G columns", () => {
  it("prints conflicts and connections left-aligned in their columns; a fwmark service by its mark", () => {
    const stats = zeroStats();
    const svc = {
      af: 4 as const,
      protocol: 6,
      addr: ip("192.168.100.254"),
      port: 8080,
      fwmark: 0,
      schedName: "rr",
      flags: 0,
      timeout: 0,
      netmask: 0xffffffff,
      peName: "",
      stats,
      dests: [],
    };
    const snap: TableSnapshot = {
      connTabSize: 4096,
      total: zeroStats(),
      timeouts: { tcp: 900, tcpFin: 120, udp: 300 },
      services: [
        { ...svc, laddrs: [{ af: 4, addr: ip("192.168.100.200"), conns: 123456, conflicts: 7 }] },
        { ...svc, protocol: 0, addr: 0, port: 0, fwmark: 3 },
      ],
    };
    assert.equal(
      formatLaddrs(snap, null),
      "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n" +
        "192.168.100.254:8080 1        \n" +
        "                              192.168.100.200      7          123456    \n" +
        "FWM 3                0        \n",
    );
  });
});
