// Goldens for ipvsadm 1.31's output formats. Every expected line below was written from
// ipvsadm.c's own printf formats (print_title, print_service_entry, print_largenum,
// print_conn, list_timeout, the -S rule format), e.g. a destination is
// "  -> %-28s %-7s %-6d %-10u %-10u" (trailing padding kept), a --stats number "%9llu"
// below 10^8 and "%8lluK" etc. above: never from the implementation's output.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  formatConns,
  formatList,
  formatSave,
  formatTimeout,
  type IpvsSnapshot,
  largeNum,
  mergeSort,
} from "../../src/cli/ipvsadm/format.js";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { serviceSnapshot, zeroStats } from "../../src/control/snapshot.js";
import { IpvsCtl } from "../../src/core/ctl.js";
import type { ConnView, ServiceKey } from "../../src/core/ctl-types.js";
import type { Dest } from "../../src/core/dest.js";
import { Timeouts } from "../../src/core/proto/timeouts.js";
import type { Service } from "../../src/core/service.js";

const TCP = 6;
const UDP = 17;

function ip(s: string): number {
  return s.split(".").reduce((a, b) => a * 256 + Number(b), 0);
}

function newCtl(): { ctl: IpvsCtl; timeouts: Timeouts } {
  const timeouts = new Timeouts();
  const ctl = new IpvsCtl({
    onSetTimeout: (t) => timeouts.set(t),
    onDestRemoved: () => {},
    onServiceRemoved: () => {},
    onDestQuiesced: () => {},
  });
  return { ctl, timeouts };
}

/** Applies ipvsadm command lines (the parser has its own tests). */
function exec(ctl: IpvsCtl, lines: readonly string[]): void {
  for (const line of lines) {
    const req = parseIpvsadm(line.split(" "));
    if (req.kind !== "ctl") throw new Error(`not a table change: ${line}`);
    ctl.apply(req.cmd);
  }
}

const TABLE = [
  "-A -t 10.0.0.100:80 -s wlc",
  "-a -t 10.0.0.100:80 -r 10.0.1.11:80 -g -w 1 -x 100 -y 10",
  "-a -t 10.0.0.100:80 -r 10.0.1.12:8080 -m -w 2",
  "-A -t 10.0.0.100:443 -s rr -p 600 -M 255.255.255.0",
  "-a -t 10.0.0.100:443 -r 10.0.1.13 -i -w 5",
  "-a -t 10.0.0.100:443 -r 10.0.1.14 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
  "-A -t 10.0.0.200:8080 -s lc -b flag-1,flag-3",
  "-a -t 10.0.0.200:8080 -r 10.0.2.1:80 --fullnat -w 3",
  "-A -u 10.0.0.53:53 -s sh -b sh-fallback,sh-port -o",
  "-a -u 10.0.0.53:53 -r 10.0.1.21:5300 -m -w 1",
  "-A -f 7 -s wrr -p",
  "-a -f 7 -r 10.0.1.31 -g -w 0",
];

function key(protocol: number, addr: string, port: number): ServiceKey {
  return { af: 4, protocol, addr: ip(addr), port, fwmark: 0 };
}

function svcOf(ctl: IpvsCtl, k: ServiceKey): Service {
  const s = ctl.getService(k);
  assert.ok(s, "service exists");
  return s;
}

function destOf(s: Service, addr: string): Dest {
  const d = s.dests.find((x) => x.addr === ip(addr));
  assert.ok(d, `dest ${addr}`);
  return d;
}

const WEB = key(TCP, "10.0.0.100", 80);
const TLS = key(TCP, "10.0.0.100", 443);

/** The table with counters set: what the listings below show. */
function table(): { ctl: IpvsCtl; snap: (conns?: ConnView[]) => IpvsSnapshot } {
  const { ctl, timeouts } = newCtl();
  exec(ctl, TABLE);
  const web = svcOf(ctl, WEB);
  const d11 = destOf(web, "10.0.1.11");
  d11.activeConns = 12;
  d11.inactConns = 3;
  const d12 = destOf(web, "10.0.1.12");
  d12.activeConns = 7;
  d12.inactConns = 41;
  const d13 = destOf(svcOf(ctl, TLS), "10.0.1.13");
  d13.activeConns = 2;
  d13.persistConns = 4;
  Object.assign(web.stats, {
    conns: 1234,
    inpkts: 99_999_999,
    outpkts: 100_000_000,
    inbytes: 123_456_789_012,
    outbytes: 500_000_000_000_000,
    // The estimator's scaled averages (ip_vs_est.c): packets << 10, bytes << 5.
    cps: 5 * 1024,
    inpps: 120 * 1024,
    outpps: 110 * 1024,
    inbps: 200_000_000 * 32,
    outbps: 1_500_000_000 * 32,
  });
  Object.assign(d11.stats, {
    conns: 1000,
    inpkts: 2_500_000_000,
    outpkts: 999_999_999,
    inbytes: 100_000_000_000,
    outbytes: 99_999_999_999_999,
    cps: 3 * 1024,
    inpps: 100 * 1024,
    outpps: 90 * 1024,
    inbps: 150_000_000 * 32,
    outbps: 99_999_999 * 32,
  });
  return {
    ctl,
    snap: (conns) => ({
      services: ctl.services().map(serviceSnapshot),
      connTabSize: 4096,
      total: zeroStats(),
      timeouts: timeouts.get(),
      conns,
    }),
  };
}

/** `ipvsadm <argv>` as a listing over snap. */
function list(snap: IpvsSnapshot, argv: string): string {
  const req = parseIpvsadm(argv.split(" "));
  assert.equal(req.kind, "list");
  if (req.kind !== "list") throw new Error("unreachable");
  return formatList(snap, req.key, req.opts);
}

const LIST_N = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port Scheduler Flags",
  "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
  "TCP  10.0.0.100:80 wlc",
  "  -> 10.0.1.11:80                 Route   1      12         3         ",
  "  -> 10.0.1.12:8080               Masq    2      7          41        ",
  "TCP  10.0.0.100:443 rr persistent 600 mask 255.255.255.0",
  "  -> 10.0.1.13:443                Tunnel  5      2          0         ",
  "  -> 10.0.1.14:443                Tunnel  1      0          0         ",
  "TCP  10.0.0.200:8080 lc (flag-1,flag-3)",
  "  -> 10.0.2.1:80                  FullNat 3      0          0         ",
  "UDP  10.0.0.53:53 sh (sh-fallback,sh-port) ops",
  "  -> 10.0.1.21:5300               Masq    1      0          0         ",
  "FWM  7 wrr persistent 300",
  "  -> 10.0.1.31:0                  Route   0      0          0         ",
  "",
].join("\n");

const LIST_NAMES = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port Scheduler Flags",
  "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
  "TCP  10.0.0.100:http wlc",
  "  -> 10.0.1.11:http               Route   1      12         3         ",
  "  -> 10.0.1.12:http-alt           Masq    2      7          41        ",
  "TCP  10.0.0.100:https rr persistent 600 mask 255.255.255.0",
  "  -> 10.0.1.13:https              Tunnel  5      2          0         ",
  "  -> 10.0.1.14:https              Tunnel  1      0          0         ",
  "TCP  10.0.0.200:http-alt lc (flag-1,flag-3)",
  "  -> 10.0.2.1:http                FullNat 3      0          0         ",
  "UDP  10.0.0.53:domain sh (sh-fallback,sh-port) ops",
  "  -> 10.0.1.21:5300               Masq    1      0          0         ",
  "FWM  7 wrr persistent 300",
  "  -> 10.0.1.31:0                  Route   0      0          0         ",
  "",
].join("\n");

const LIST_NOSORT = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port Scheduler Flags",
  "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
  "UDP  10.0.0.53:53 sh (sh-fallback,sh-port) ops",
  "  -> 10.0.1.21:5300               Masq    1      0          0         ",
  "FWM  7 wrr persistent 300",
  "  -> 10.0.1.31:0                  Route   0      0          0         ",
  "TCP  10.0.0.200:8080 lc (flag-1,flag-3)",
  "  -> 10.0.2.1:80                  FullNat 3      0          0         ",
  "TCP  10.0.0.100:443 rr persistent 600 mask 255.255.255.0",
  "  -> 10.0.1.14:443                Tunnel  1      0          0         ",
  "  -> 10.0.1.13:443                Tunnel  5      2          0         ",
  "TCP  10.0.0.100:80 wlc",
  "  -> 10.0.1.12:8080               Masq    2      7          41        ",
  "  -> 10.0.1.11:80                 Route   1      12         3         ",
  "",
].join("\n");

const LIST_ONE = [
  "Prot LocalAddress:Port Scheduler Flags",
  "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
  "TCP  10.0.0.100:443 rr persistent 600 mask 255.255.255.0",
  "  -> 10.0.1.13:443                Tunnel  5      2          0         ",
  "  -> 10.0.1.14:443                Tunnel  1      0          0         ",
  "",
].join("\n");

const STATS_N = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
  "  -> RemoteAddress:Port",
  "TCP  10.0.0.100:80                    1234 99999999  100000K     123G     500T",
  "  -> 10.0.1.11:80                     1000    2500M  999999K     100G   99999G",
  "  -> 10.0.1.12:8080                      0        0        0        0        0",
  "TCP  10.0.0.100:443                      0        0        0        0        0",
  "  -> 10.0.1.13:443                       0        0        0        0        0",
  "  -> 10.0.1.14:443                       0        0        0        0        0",
  "TCP  10.0.0.200:8080                     0        0        0        0        0",
  "  -> 10.0.2.1:80                         0        0        0        0        0",
  "UDP  10.0.0.53:53                        0        0        0        0        0",
  "  -> 10.0.1.21:5300                      0        0        0        0        0",
  "FWM  7                                   0        0        0        0        0",
  "  -> 10.0.1.31:0                         0        0        0        0        0",
  "",
].join("\n");

const STATS_EXACT = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
  "  -> RemoteAddress:Port",
  "TCP  10.0.0.100:80                    1234 99999999 100000000 123456789012 500000000000000",
  "  -> 10.0.1.11:80                     1000 2500000000 999999999 100000000000 99999999999999",
  "  -> 10.0.1.12:8080                      0        0        0        0        0",
  "TCP  10.0.0.100:443                      0        0        0        0        0",
  "  -> 10.0.1.13:443                       0        0        0        0        0",
  "  -> 10.0.1.14:443                       0        0        0        0        0",
  "TCP  10.0.0.200:8080                     0        0        0        0        0",
  "  -> 10.0.2.1:80                         0        0        0        0        0",
  "UDP  10.0.0.53:53                        0        0        0        0        0",
  "  -> 10.0.1.21:5300                      0        0        0        0        0",
  "FWM  7                                   0        0        0        0        0",
  "  -> 10.0.1.31:0                         0        0        0        0        0",
  "",
].join("\n");

const RATE_N = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
  "  -> RemoteAddress:Port",
  "TCP  10.0.0.100:80                       5      120      110  200000K    1500M",
  "  -> 10.0.1.11:80                        3      100       90  150000K 99999999",
  "  -> 10.0.1.12:8080                      0        0        0        0        0",
  "TCP  10.0.0.100:443                      0        0        0        0        0",
  "  -> 10.0.1.13:443                       0        0        0        0        0",
  "  -> 10.0.1.14:443                       0        0        0        0        0",
  "TCP  10.0.0.200:8080                     0        0        0        0        0",
  "  -> 10.0.2.1:80                         0        0        0        0        0",
  "UDP  10.0.0.53:53                        0        0        0        0        0",
  "  -> 10.0.1.21:5300                      0        0        0        0        0",
  "FWM  7                                   0        0        0        0        0",
  "  -> 10.0.1.31:0                         0        0        0        0        0",
  "",
].join("\n");

const RATE_EXACT = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
  "  -> RemoteAddress:Port",
  "TCP  10.0.0.100:80                       5      120      110 200000000 1500000000",
  "  -> 10.0.1.11:80                        3      100       90 150000000 99999999",
  "  -> 10.0.1.12:8080                      0        0        0        0        0",
  "TCP  10.0.0.100:443                      0        0        0        0        0",
  "  -> 10.0.1.13:443                       0        0        0        0        0",
  "  -> 10.0.1.14:443                       0        0        0        0        0",
  "TCP  10.0.0.200:8080                     0        0        0        0        0",
  "  -> 10.0.2.1:80                         0        0        0        0        0",
  "UDP  10.0.0.53:53                        0        0        0        0        0",
  "  -> 10.0.1.21:5300                      0        0        0        0        0",
  "FWM  7                                   0        0        0        0        0",
  "  -> 10.0.1.31:0                         0        0        0        0        0",
  "",
].join("\n");

const THRESHOLDS_N = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ",
  "  -> RemoteAddress:Port",
  "TCP  10.0.0.100:80 wlc",
  "  -> 10.0.1.11:80                 100        10         12         3         ",
  "  -> 10.0.1.12:8080               0          0          7          41        ",
  "TCP  10.0.0.100:443 rr persistent 600 mask 255.255.255.0",
  "  -> 10.0.1.13:443                0          0          2          0         ",
  "  -> 10.0.1.14:443                0          0          0          0         ",
  "TCP  10.0.0.200:8080 lc (flag-1,flag-3)",
  "  -> 10.0.2.1:80                  0          0          0          0         ",
  "UDP  10.0.0.53:53 sh (sh-fallback,sh-port) ops",
  "  -> 10.0.1.21:5300               0          0          0          0         ",
  "FWM  7 wrr persistent 300",
  "  -> 10.0.1.31:0                  0          0          0          0         ",
  "",
].join("\n");

const PERSISTENT_CONN_N = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ",
  "  -> RemoteAddress:Port",
  "TCP  10.0.0.100:80 wlc",
  "  -> 10.0.1.11:80                 1         0           12         3         ",
  "  -> 10.0.1.12:8080               2         0           7          41        ",
  "TCP  10.0.0.100:443 rr persistent 600 mask 255.255.255.0",
  "  -> 10.0.1.13:443                5         4           2          0         ",
  "  -> 10.0.1.14:443                1         0           0          0         ",
  "TCP  10.0.0.200:8080 lc (flag-1,flag-3)",
  "  -> 10.0.2.1:80                  3         0           0          0         ",
  "UDP  10.0.0.53:53 sh (sh-fallback,sh-port) ops",
  "  -> 10.0.1.21:5300               1         0           0          0         ",
  "FWM  7 wrr persistent 300",
  "  -> 10.0.1.31:0                  0         0           0          0         ",
  "",
].join("\n");

const TUN_INFO_N = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port Scheduler Flags",
  "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn",
  "TCP  10.0.0.100:80 wlc",
  "  -> 10.0.1.11:80                 Route   n/a           1      12         3         ",
  "  -> 10.0.1.12:8080               Masq    n/a           2      7          41        ",
  "TCP  10.0.0.100:443 rr persistent 600 mask 255.255.255.0",
  "  -> 10.0.1.13:443                Tunnel  ipip          5      2          0         ",
  "  -> 10.0.1.14:443                Tunnel  gue:6080:+c   1      0          0         ",
  "TCP  10.0.0.200:8080 lc (flag-1,flag-3)",
  "  -> 10.0.2.1:80                  FullNat n/a           3      0          0         ",
  "UDP  10.0.0.53:53 sh (sh-fallback,sh-port) ops",
  "  -> 10.0.1.21:5300               Masq    n/a           1      0          0         ",
  "FWM  7 wrr persistent 300",
  "  -> 10.0.1.31:0                  Route   n/a           0      0          0         ",
  "",
].join("\n");

const WRAP_N = [
  "IP Virtual Server version 1.2.1 (size=4096)",
  "Prot LocalAddress:Port Scheduler Flags",
  "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
  "TCP  200.0.0.1:80 wlc",
  "  -> 10.0.9.9:80                  Route   1      0          0         ",
  "TCP  10.0.0.1:80 wlc",
  "  -> 192.168.1.1:80               Masq    1      0          0         ",
  "  -> 10.0.1.1:80                  Masq    1      0          0         ",
  "",
].join("\n");

const CONNS_N = [
  "IPVS connection entries",
  "pro expire state       source             virtual            destination",
  "TCP 14:59  ESTABLISHED 192.168.5.1:40000  10.0.0.100:80      10.0.1.11:80",
  "TCP 00:59  SYN_RECV    192.168.5.2:40001  10.0.0.100:443     10.0.1.13:443",
  "UDP 05:00  UDP         192.168.5.3:5000   10.0.0.53:53       10.0.1.21:5300",
  "IP  100:00 NONE        192.168.5.0:0      0.0.0.7:0          10.0.1.31:0",
  "",
].join("\n");

const CONNS_NAMES = [
  "IPVS connection entries",
  "pro expire state       source             virtual            destination",
  "TCP 14:59  ESTABLISHED 192.168.5.1:40000  10.0.0.100:http    10.0.1.11:http",
  "TCP 00:59  SYN_RECV    192.168.5.2:40001  10.0.0.100:https   10.0.1.13:https",
  "UDP 05:00  UDP         192.168.5.3:5000   10.0.0.53:domain   10.0.1.21:5300",
  "IP  100:00 NONE        192.168.5.0:0      0.0.0.7:0          10.0.1.31:0",
  "",
].join("\n");

const CONNS_PC_N = [
  "IPVS connection entries",
  "pro expire state       source             virtual            destination        pe name          pe_data",
  "TCP 14:59  ESTABLISHED 192.168.5.1:40000  10.0.0.100:80      10.0.1.11:80",
  "TCP 00:59  SYN_RECV    192.168.5.2:40001  10.0.0.100:443     10.0.1.13:443",
  "UDP 05:00  UDP         192.168.5.3:5000   10.0.0.53:53       10.0.1.21:5300",
  "IP  100:00 NONE        192.168.5.0:0      0.0.0.7:0          10.0.1.31:0",
  "",
].join("\n");

const TIMEOUT_DEFAULT = ["Timeout (tcp tcpfin udp): 900 120 300", ""].join("\n");

const CONNS: ConnView[] = [
  conn(TCP, 899_500, "ESTABLISHED", "192.168.5.1", 40000, "10.0.0.100", 80, "10.0.1.11", 80),
  conn(TCP, 59_999, "SYN_RECV", "192.168.5.2", 40001, "10.0.0.100", 443, "10.0.1.13", 443),
  conn(UDP, 300_000, "UDP", "192.168.5.3", 5000, "10.0.0.53", 53, "10.0.1.21", 5300),
  // A persistence template of fwmark 7: protocol IP, the mark in the virtual address.
  conn(0, 6_000_000, "NONE", "192.168.5.0", 0, "0.0.0.7", 0, "10.0.1.31", 0),
];

function conn(
  protocol: number,
  expiresMs: number,
  state: string,
  c: string,
  cport: number,
  v: string,
  vport: number,
  d: string,
  dport: number,
): ConnView {
  return {
    protocol,
    expiresMs,
    state,
    caddr: ip(c),
    cport,
    vaddr: ip(v),
    vport,
    daddr: ip(d),
    dport,
    laddr: 0,
    lport: 0,
    template: protocol === 0,
    fwmark: protocol === 0 ? 7 : 0,
  };
}

describe("ipvsadm -L formats", () => {
  it("-Ln lists services sorted (fwmark last, TCP before UDP, by address, port) with padded columns", () => {
    assert.equal(list(table().snap(), "-L -n"), LIST_N);
    assert.equal(list(table().snap(), "-Ln --sort"), LIST_N);
  });

  it("-L without -n prints ports by their /etc/services names, addresses numerically", () => {
    assert.equal(list(table().snap(), "-L"), LIST_NAMES);
  });

  it("--nosort keeps the kernel's order of services and destinations (newest destination first)", () => {
    const t = table();
    const order = [
      key(UDP, "10.0.0.53", 53),
      { af: 4, protocol: 0, addr: 0, port: 0, fwmark: 7 } as const,
      key(TCP, "10.0.0.200", 8080),
      TLS,
      WEB,
    ];
    const snap = { ...t.snap(), services: order.map((k) => serviceSnapshot(svcOf(t.ctl, k))) };
    assert.equal(list(snap, "-L -n --nosort"), LIST_NOSORT);
  });

  it("sorts as libipvs compares: u32 differences taken as int, so addresses 2^31 apart swap", () => {
    const { ctl, timeouts } = newCtl();
    exec(ctl, [
      "-A -t 10.0.0.1:80",
      "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m",
      "-a -t 10.0.0.1:80 -r 192.168.1.1:80 -m",
      "-A -t 200.0.0.1:80",
      "-a -t 200.0.0.1:80 -r 10.0.9.9",
    ]);
    const snap = {
      services: ctl.services().map(serviceSnapshot),
      connTabSize: 4096,
      total: zeroStats(),
      timeouts: timeouts.get(),
    };
    assert.equal(list(snap, "-Ln"), WRAP_N);
  });

  it("glibc's merge sort: first half n/2, left element first on ties", () => {
    const cmp = (a: number, b: number) => Math.sign(a) - Math.sign(b);
    assert.deepEqual(mergeSort([3, -1, 2, -2, 1], cmp), [-1, -2, 3, 2, 1]);
    assert.deepEqual(mergeSort([], cmp), []);
  });

  it("-L -t VIP:port lists that service alone, without the version line", () => {
    assert.equal(list(table().snap(), "-L -n -t 10.0.0.100:443"), LIST_ONE);
    assert.equal(list(table().snap(), "-Ln --tcp-service 10.0.0.100:https"), LIST_ONE);
  });

  it("-L -t of a missing service throws libipvs's No such service", () => {
    assert.throws(() => list(table().snap(), "-L -n -t 10.0.0.100:81"), { message: "No such service" });
  });

  it("--stats prints %9llu counters with K/M/G/T past 10^8", () => {
    assert.equal(list(table().snap(), "-L -n --stats"), STATS_N);
  });

  it("--stats --exact prints whole numbers in max(9, digits+1) columns", () => {
    assert.equal(list(table().snap(), "-L -n --stats --exact"), STATS_EXACT);
    assert.equal(list(table().snap(), "-LnX --stats"), STATS_EXACT);
  });

  it("--rate prints the estimator's rates; a destination's CPS/InPPS/OutPPS are plain %8llu", () => {
    assert.equal(list(table().snap(), "-L -n --rate"), RATE_N);
  });

  it("--rate --exact expands only the numbers print_largenum prints", () => {
    assert.equal(list(table().snap(), "-L -n --rate --exact"), RATE_EXACT);
  });

  it("--thresholds shows upper/lower thresholds under the plain service line", () => {
    assert.equal(list(table().snap(), "-L -n --thresholds"), THRESHOLDS_N);
  });

  it("--persistent-conn shows weight and persistence templates per destination", () => {
    assert.equal(list(table().snap(), "-L -n --persistent-conn"), PERSISTENT_CONN_N);
  });

  it("--tun-info shows ipip, gue:port:flags, and n/a for other methods", () => {
    assert.equal(list(table().snap(), "-L -n --tun-info"), TUN_INFO_N);
  });

  it("print_largenum thresholds", () => {
    const cases: Array<[number, string, string]> = [
      [0, "        0", "        0"],
      [99_999_999, " 99999999", " 99999999"],
      [100_000_000, "  100000K", " 100000000"],
      [999_999_999, "  999999K", " 999999999"],
      [1_000_000_000, "    1000M", " 1000000000"],
      [99_999_999_999, "   99999M", " 99999999999"],
      [100_000_000_000, "     100G", " 100000000000"],
      [99_999_999_999_999, "   99999G", " 99999999999999"],
      [100_000_000_000_000, "     100T", " 100000000000000"],
    ];
    for (const [n, plain, exact] of cases) {
      assert.equal(largeNum(n, false), plain, `${n}`);
      assert.equal(largeNum(n, true), exact, `${n} exact`);
    }
  });
});

describe("ipvsadm -L -c and --timeout formats", () => {
  it("-Lnc prints expire as MM:SS of whole seconds left, minutes past 99 unclipped", () => {
    assert.equal(list(table().snap(CONNS), "-L -n -c"), CONNS_N);
    assert.equal(formatConns(CONNS, { numeric: true }), CONNS_N);
  });

  it("-Lc names the ports of TCP/UDP entries only", () => {
    assert.equal(list(table().snap(CONNS), "-Lc"), CONNS_NAMES);
  });

  it("-Lnc --persistent-conn adds the pe columns to the title; entries without pe data stay plain", () => {
    assert.equal(list(table().snap(CONNS), "-Lnc --persistent-conn"), CONNS_PC_N);
  });

  it("-Lnc with no connection prints the two title lines", () => {
    assert.equal(list(table().snap([]), "-Lnc"), `${CONNS_N.split("\n").slice(0, 2).join("\n")}\n`);
  });

  it("--timeout prints the three timeouts in seconds", () => {
    assert.equal(list(table().snap(), "-L --timeout"), TIMEOUT_DEFAULT);
    assert.equal(formatTimeout({ tcp: 3600, tcpFin: 0, udp: 60 }), "Timeout (tcp tcpfin udp): 3600 0 60\n");
  });
});

describe("ipvsadm -S format", () => {
  it("-S -n writes one rule a line, sorted, -p/-M/-o/-b on services and tunnel options on -i", () => {
    assert.equal(
      formatSave(table().snap(), true),
      [
        "-A -t 10.0.0.100:80 -s wlc",
        "-a -t 10.0.0.100:80 -r 10.0.1.11:80 -g -w 1",
        "-a -t 10.0.0.100:80 -r 10.0.1.12:8080 -m -w 2",
        "-A -t 10.0.0.100:443 -s rr -p 600 -M 255.255.255.0",
        "-a -t 10.0.0.100:443 -r 10.0.1.13:443 -i -w 5 --tun-type ipip",
        "-a -t 10.0.0.100:443 -r 10.0.1.14:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
        "-A -t 10.0.0.200:8080 -s lc -b flag-1,flag-3",
        "-a -t 10.0.0.200:8080 -r 10.0.2.1:80 --fullnat -w 3",
        "-A -u 10.0.0.53:53 -s sh -o -b sh-fallback,sh-port",
        "-a -u 10.0.0.53:53 -r 10.0.1.21:5300 -m -w 1",
        "-A -f 7 -s wrr -p 300",
        "-a -f 7 -r 10.0.1.31:0 -g -w 0",
        "",
      ].join("\n"),
    );
  });

  it("-S without -n writes port names", () => {
    assert.equal(
      formatSave(table().snap(), false),
      [
        "-A -t 10.0.0.100:http -s wlc",
        "-a -t 10.0.0.100:http -r 10.0.1.11:http -g -w 1",
        "-a -t 10.0.0.100:http -r 10.0.1.12:http-alt -m -w 2",
        "-A -t 10.0.0.100:https -s rr -p 600 -M 255.255.255.0",
        "-a -t 10.0.0.100:https -r 10.0.1.13:https -i -w 5 --tun-type ipip",
        "-a -t 10.0.0.100:https -r 10.0.1.14:https -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
        "-A -t 10.0.0.200:http-alt -s lc -b flag-1,flag-3",
        "-a -t 10.0.0.200:http-alt -r 10.0.2.1:http --fullnat -w 3",
        "-A -u 10.0.0.53:domain -s sh -o -b sh-fallback,sh-port",
        "-a -u 10.0.0.53:domain -r 10.0.1.21:5300 -m -w 1",
        "-A -f 7 -s wrr -p 300",
        "-a -f 7 -r 10.0.1.31:0 -g -w 0",
        "",
      ].join("\n"),
    );
  });

  it("an empty table saves as nothing and lists as the two title lines under the version", () => {
    const { ctl, timeouts } = newCtl();
    const snap = {
      services: ctl.services().map(serviceSnapshot),
      connTabSize: 4096,
      total: zeroStats(),
      timeouts: timeouts.get(),
    };
    assert.equal(formatSave(snap, true), "");
    assert.equal(list(snap, "-Ln"), `${LIST_N.split("\n").slice(0, 3).join("\n")}\n`);
  });

  it("sh with only flag-3 prints empty parentheses in the listing and a bare -b in the rules", () => {
    const { ctl, timeouts } = newCtl();
    exec(ctl, ["-A -t 10.0.0.1:80 -s sh -b flag-3"]);
    const snap = {
      services: ctl.services().map(serviceSnapshot),
      connTabSize: 4096,
      total: zeroStats(),
      timeouts: timeouts.get(),
    };
    assert.equal(list(snap, "-Ln").split("\n")[3], "TCP  10.0.0.1:80 sh ()");
    assert.equal(formatSave(snap, true), "-A -t 10.0.0.1:80 -s sh -b \n");
  });
});
