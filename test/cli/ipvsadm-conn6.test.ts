// `ipvsadm -Lnc` with IPv6 entries: print_conn reads /proc/net/ip_vs_conn's %pI6 addresses back
// with inet_pton and prints each end with addrport_to_anyname, "[%s]:%s" with inet_ntop's text, in
// the same "%-18s" columns as IPv4, which a long address overruns. Expected lines are written from
// those printf formats.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatConns } from "../../src/cli/ipvsadm/format.js";
import type { ConnView } from "../../src/core/ctl-types.js";

function conn6(
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
  // The numeric fields hold the folds; the printer must not use them for IPv6 ends.
  return {
    protocol,
    expiresMs,
    state,
    caddr: 0x01020304,
    cport,
    vaddr: 0x05060708,
    vport,
    daddr: 0x090a0b0c,
    dport,
    laddr: 0,
    lport: 0,
    template: protocol === 0,
    fwmark: 0,
    caddr6: c,
    vaddr6: v,
    daddr6: d,
  };
}

const TITLE = [
  "IPVS connection entries",
  "pro expire state       source             virtual            destination",
];

describe("ipvsadm -Lc with IPv6 connections", () => {
  const rows: Array<{ name: string; c: ConnView; numeric: string; named: string }> = [
    {
      name: "long addresses overrun the 18-character columns",
      c: conn6(6, 899_500, "ESTABLISHED", "2001:db8:c::a", 40000, "2001:db8:f::80", 80, "2001:db8:1::11", 80),
      numeric: "TCP 14:59  ESTABLISHED [2001:db8:c::a]:40000 [2001:db8:f::80]:80 [2001:db8:1::11]:80",
      named: "TCP 14:59  ESTABLISHED [2001:db8:c::a]:40000 [2001:db8:f::80]:http [2001:db8:1::11]:http",
    },
    {
      name: "short ones are padded as IPv4 ones",
      c: conn6(17, 300_000, "UDP", "::1", 5000, "fd00::35", 53, "fd00::1:21", 5300),
      numeric: "UDP 05:00  UDP         [::1]:5000         [fd00::35]:53      [fd00::1:21]:5300",
      named: "UDP 05:00  UDP         [::1]:5000         [fd00::35]:domain  [fd00::1:21]:5300",
    },
    {
      name: "a fwmark template: the mark in the first word of the virtual address",
      c: conn6(0, 6_000_000, "NONE", "2001:db8::", 0, "0:7::", 0, "2001:db8:1::31", 0),
      numeric: "IP  100:00 NONE        [2001:db8::]:0     [0:7::]:0          [2001:db8:1::31]:0",
      named: "IP  100:00 NONE        [2001:db8::]:0     [0:7::]:0          [2001:db8:1::31]:0",
    },
  ];
  for (const r of rows) {
    it(`-Lnc: ${r.name}`, () => {
      assert.equal(formatConns([r.c], { numeric: true }), [...TITLE, r.numeric, ""].join("\n"));
    });
  }

  it("-Lc names the ports as for IPv4", () => {
    assert.equal(
      formatConns(
        rows.map((r) => r.c),
        { numeric: false },
      ),
      [...TITLE, ...rows.map((r) => r.named), ""].join("\n"),
    );
  });

  it("an IPv6 client side before an IPv4 real server (NAT64) prints each end in its family", () => {
    const c = conn6(6, 60_000, "SYN_RECV", "2001:db8:c::a", 40000, "2001:db8:f::80", 80, "", 80);
    c.daddr6 = undefined;
    c.daddr = 0x0a00010b;
    assert.equal(
      formatConns([c], { numeric: true }),
      [...TITLE, "TCP 01:00  SYN_RECV    [2001:db8:c::a]:40000 [2001:db8:f::80]:80 10.0.1.11:80", ""].join(
        "\n",
      ),
    );
  });
});
