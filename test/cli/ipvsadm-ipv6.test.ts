// IPv6 in the ipvsadm front end and the control core (issue 14): "[addr]:port" and bare addresses as
// parse_service takes them, -6 for fwmark services, -M as a prefix length, and the listings as
// ipvsadm 1.31 prints them: addrport_to_anyname's "[%s]:%u" with inet_ntop's text, IPv6 names
// never cut (IPv4 ones at 33 and 28), " mask %i" / " -M %i" only when the prefix is not 128,
// "FWM  %d IPv6" and "-f %d -6". Expected lines are written from those printf formats.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatList, formatSave } from "../../src/cli/ipvsadm/format.js";
import { IpvsadmUsageError, parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { parseCommands } from "../../src/control/commands.js";
import { serviceSnapshot, zeroStats } from "../../src/control/snapshot.js";
import { IpvsCtl } from "../../src/core/ctl.js";
import type { CtlCommand } from "../../src/core/ctl-types.js";
import { IPVS_MESSAGES, TsvsError } from "../../src/core/errors.js";
import { Timeouts } from "../../src/core/proto/timeouts.js";

function newCtl(): IpvsCtl {
  const timeouts = new Timeouts();
  return new IpvsCtl({
    onSetTimeout: (t) => timeouts.set(t),
    onDestRemoved: () => {},
    onServiceRemoved: () => {},
    onDestQuiesced: () => {},
  });
}

function cmd(line: string): CtlCommand {
  const r = parseIpvsadm(line.split(" "));
  if (r.kind !== "ctl") throw new Error(`not a table change: ${line}`);
  return r.cmd;
}

function run(ctl: IpvsCtl, lines: readonly string[]): void {
  for (const l of lines) ctl.apply(cmd(l));
}

function snap(ctl: IpvsCtl) {
  return {
    services: ctl.services().map(serviceSnapshot),
    connTabSize: 4096,
    total: zeroStats(),
    timeouts: { tcp: 900, tcpFin: 120, udp: 300 },
  };
}

function list(ctl: IpvsCtl, argv: string): string {
  const req = parseIpvsadm(argv.split(" "));
  if (req.kind !== "list") throw new Error("not a listing");
  return formatList(snap(ctl), req.key, req.opts);
}

const TABLE = [
  "-A -t [2001:db8::100]:80 -s rr",
  "-a -t [2001:db8::100]:80 -r [2001:db8:1::12]:8080 -m -w 1",
  "-a -t [2001:db8::100]:80 -r [2001:DB8:1:0::11]:80 -m -w 2",
  "-A -u [2001:db8::100]:53 -s sh -p 600 -M 64",
  "-a -u [2001:db8::100]:53 -r [2001:db8:1::11]:53 -g",
  "-A -f 5 -6 -s wlc -p 300",
  "-a -f 5 -6 -r [2001:db8:1::13]:80 -g",
  "-A -f 5 -s wlc",
  "-a -f 5 -r 10.0.1.13:80 -g",
  "-A -t 10.0.0.100:80 -s wlc",
  "-a -t 10.0.0.100:80 -r 10.0.1.11:80 -g",
  "-A -t [2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535 -s rr",
  "-a -t [2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535 -r [2001:db8:aaaa:bbbb:cccc:dddd:eeee:1]:65535 -g",
];

function table(): IpvsCtl {
  const ctl = newCtl();
  run(ctl, TABLE);
  return ctl;
}

describe("ipvsadm IPv6: parse_service and the options", () => {
  it("[addr]:port and a bare address; the text is carried in inet_ntop's form", () => {
    const c = cmd("-A -t [2001:DB8:0::100]:http -s rr");
    assert.equal(c.op, "add-service");
    if (c.op !== "add-service") return;
    assert.deepEqual(
      [c.svc.af, c.svc.addr, c.svc.addr6, c.svc.port, c.svc.netmask],
      [6, 0, "2001:db8::100", 80, 128],
    );
    const d = cmd("-a -t [2001:db8::100]:80 -r 2001:db8:1::11 -g");
    assert.equal(d.op, "add-dest");
    if (d.op !== "add-dest") return;
    // A bare IPv6 real server has no port: -r copies the service's.
    assert.deepEqual([d.dest.af, d.dest.addr6, d.dest.port], [6, "2001:db8:1::11", 80]);
    assert.equal(d.key.addr6, "2001:db8::100");
  });

  it("-M after an IPv6 service is a prefix length (1..128); -6 gives a fwmark service IPv6 and /128", () => {
    const p = cmd("-A -t [2001:db8::100]:80 -p 60 -M 48");
    assert.equal(p.op === "add-service" && p.svc.netmask, 48);
    const f = cmd("-A -f 9 -6 -p 60");
    assert.ok(f.op === "add-service" && f.svc.af === 6 && f.svc.netmask === 128 && f.svc.fwmark === 9);
  });

  const errors: [string, string][] = [
    ["-A -t [2001:db8::100]:80 -p 60 -M 129", "illegal ipv6 netmask specified"],
    ["-A -t [2001:db8::100]:80 -p 60 -M 0", "illegal ipv6 netmask specified"],
    ["-A -t [2001:db8::100] -s rr", "illegal virtual server address[:port] specified"],
    ["-A -t [2001:db8::100]80 -s rr", "illegal virtual server address[:port] specified"],
    ["-A -t [2001:db8::g]:80 -s rr", "illegal virtual server address[:port] specified"],
    ["-A -6 -f 5", "-6 used before -f\n"],
    ["-a -t [2001:db8::100]:80 -r [2001:db8::1 -g", "illegal real server address[:port] specified"],
  ];
  for (const [argv, msg] of errors) {
    it(`refuses ${argv}: ${JSON.stringify(msg)}`, () => {
      assert.throws(
        () => parseIpvsadm(argv.split(" ")),
        (e: unknown) => e instanceof IpvsadmUsageError && e.message === msg,
      );
    });
  }
});

describe("ipvsadm IPv6 listings", () => {
  it("-Ln: IPv4 before IPv6, services by address words, names never cut, mask only when not /128", () => {
    assert.equal(
      list(table(), "-L -n"),
      [
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        "TCP  10.0.0.100:80 wlc",
        "  -> 10.0.1.11:80                 Route   1      0          0         ",
        // libipvs subtracts the words as u32 and reads the difference as an int: 0 - 0xaaaabbbb is
        // positive, so 2001:db8:: sorts after 2001:db8:aaaa:bbbb:: (as the kernel's ipvsadm does).
        "TCP  [2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535 rr",
        "  -> [2001:db8:aaaa:bbbb:cccc:dddd:eeee:1]:65535 Route   1      0          0         ",
        "TCP  [2001:db8::100]:80 rr",
        "  -> [2001:db8:1::11]:80          Masq    2      0          0         ",
        "  -> [2001:db8:1::12]:8080        Masq    1      0          0         ",
        "UDP  [2001:db8::100]:53 sh persistent 600 mask 64",
        "  -> [2001:db8:1::11]:53          Route   1      0          0         ",
        "FWM  5 wlc",
        "  -> 10.0.1.13:80                 Route   1      0          0         ",
        "FWM  5 IPv6 wlc persistent 300",
        "  -> [2001:db8:1::13]:80          Route   1      0          0         ",
        "",
      ].join("\n"),
    );
  });

  it("-L -t [v6]:port lists that service; the same text in another form names it too", () => {
    assert.equal(
      list(table(), "-L -n -t [2001:db8:0:0::100]:80"),
      [
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        "TCP  [2001:db8::100]:80 rr",
        "  -> [2001:db8:1::11]:80          Masq    2      0          0         ",
        "  -> [2001:db8:1::12]:8080        Masq    1      0          0         ",
        "",
      ].join("\n"),
    );
  });

  it("--stats keeps the %-33s column for a long IPv6 name (the name runs over, as printf's does)", () => {
    const line = list(table(), "-L -n --stats")
      .split("\n")
      .find((l) => l.startsWith("TCP  [2001:db8:aaaa"));
    assert.equal(line, `TCP  [2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535${"        0".repeat(5)}`);
  });

  it("-S -n: -M as the prefix length, -f N -6, and restores into the same table", () => {
    const saved = formatSave(snap(table()), true);
    assert.equal(
      saved,
      [
        "-A -t 10.0.0.100:80 -s wlc",
        "-a -t 10.0.0.100:80 -r 10.0.1.11:80 -g -w 1",
        "-A -t [2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535 -s rr",
        "-a -t [2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535 -r [2001:db8:aaaa:bbbb:cccc:dddd:eeee:1]:65535 -g -w 1",
        "-A -t [2001:db8::100]:80 -s rr",
        "-a -t [2001:db8::100]:80 -r [2001:db8:1::11]:80 -m -w 2",
        "-a -t [2001:db8::100]:80 -r [2001:db8:1::12]:8080 -m -w 1",
        "-A -u [2001:db8::100]:53 -s sh -p 600 -M 64",
        "-a -u [2001:db8::100]:53 -r [2001:db8:1::11]:53 -g -w 1",
        "-A -f 5 -s wlc",
        "-a -f 5 -r 10.0.1.13:80 -g -w 1",
        "-A -f 5 -6 -s wlc -p 300",
        "-a -f 5 -6 -r [2001:db8:1::13]:80 -g -w 1",
        "",
      ].join("\n"),
    );
    const again = newCtl();
    run(again, saved.trimEnd().split("\n"));
    assert.equal(formatSave(snap(again), true), saved);
  });
});

describe("the control core with IPv6", () => {
  const bad: [string, string[], string][] = [
    [
      "a link-local real server",
      ["-A -t [2001:db8::100]:80", "-a -t [2001:db8::100]:80 -r [fe80::1]:80 -m"],
      IPVS_MESSAGES.invalid,
    ],
    [
      "a multicast real server",
      ["-A -t [2001:db8::100]:80", "-a -t [2001:db8::100]:80 -r [ff02::1]:80 -m"],
      IPVS_MESSAGES.invalid,
    ],
    [
      "an IPv4 real server behind NAT for an IPv6 service",
      ["-A -t [2001:db8::100]:80", "-a -t [2001:db8::100]:80 -r 10.0.1.11:80 -m"],
      IPVS_MESSAGES.invalid,
    ],
    [
      "the same service twice (another spelling)",
      ["-A -t [2001:db8::100]:80", "-A -t [2001:db8:0::100]:80"],
      "Service already exists",
    ],
    [
      "a real server of a service that does not exist",
      ["-a -t [2001:db8::200]:80 -r [2001:db8:1::11]:80 -m"],
      "Service not defined",
    ],
  ];
  for (const [what, lines, msg] of bad) {
    it(`refuses ${what}: ${msg}`, () => {
      const ctl = newCtl();
      assert.throws(
        () => ctl.applyAll(lines.map(cmd)),
        (e: unknown) => e instanceof TsvsError && e.message === msg,
      );
      assert.equal(ctl.services().length, 0, "a refused batch changes nothing");
    });
  }

  it("IPv4 and IPv6 fwmark services with the same mark are two services; -D removes the one named", () => {
    const ctl = table();
    ctl.apply(cmd("-D -f 5 -6"));
    const left = ctl.services().filter((s) => s.fwmark === 5);
    assert.deepEqual(
      left.map((s) => s.af),
      [4],
    );
  });

  it("a real server is found by its address in any spelling: -e and -d", () => {
    const ctl = table();
    ctl.apply(cmd("-e -t [2001:db8::100]:80 -r [2001:db8:1:0:0:0:0:12]:8080 -m -w 7"));
    ctl.apply(cmd("-d -t [2001:db8::100]:80 -r [2001:db8:1::11]:80"));
    const s = ctl.services().find((x) => x.af === 6 && x.port === 80 && x.fwmark === 0)!;
    assert.deepEqual(
      s.dests.map((d) => [d.weight, d.port]),
      [[7, 8080]],
    );
  });

  it("an IPv6 VIP never makes the director answer for the IPv4 address its fold equals", () => {
    const ctl = table();
    const v6 = ctl.services().filter((s) => s.af === 6 && s.fwmark === 0);
    for (const s of v6) assert.equal(ctl.ownsAddress(s.addr), false);
    assert.equal(ctl.ownsAddress(0x0a000064), true); // 10.0.0.100
  });

  it("the control socket's commands carry IPv6 text and refuse what is not an address", () => {
    const ok = parseCommands([
      {
        op: "add-service",
        svc: {
          af: 6,
          protocol: 6,
          addr: 0,
          addr6: "2001:DB8::0:100",
          port: 80,
          fwmark: 0,
          schedName: "rr",
          flags: 0,
          timeout: 0,
          netmask: 128,
          peName: "",
        },
      },
    ]);
    assert.equal(ok[0].op === "add-service" && ok[0].svc.addr6, "2001:db8::100");
    assert.throws(() =>
      parseCommands([
        {
          op: "del-service",
          key: { af: 6, protocol: 6, addr: 0, addr6: "2001:db8::zz", port: 80, fwmark: 0 },
        },
      ]),
    );
  });
});
