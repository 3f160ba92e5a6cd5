// The rtnetlink codec (src/io/rtnetlink.ts) on IPv6 address and route notifications, as the kernel
// sent them: datagrams recorded in a throwaway namespace (tsvs6l-<pid>) from a NETLINK_ROUTE socket
// bound to RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE while a veth pair came up (v6a, ifindex 3, MAC
// 02:00:00:00:00:aa) and `ip -6 addr add fd00:5eed:1::1/64`, `ip -6 route add fd00:5eed:99::/48
// via fe80::9`, `ip -6 route add default via fd00:5eed:1::fe`, then the deletions. Hand-made
// datagrams cover what the kernel does not send (bad lengths).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeRtnl, type RtnlEvent } from "../../src/io/rtnetlink.js";

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"));

/** The attributes every route message carries after its own (RTA_OIF 3, RTA_CACHEINFO, RTA_PREF). */
const ROUTE_TAIL = `080004000300000024000c00${"00".repeat(32)}0500140000000000`;

const K = {
  /** RTM_NEWADDR fe80::ff:fe00:aa/64 (scope link, IFA_CACHEINFO, IFA_FLAGS, IFA_PROTO). */
  newLinkLocal: hex(
    "500000001400000000000000000000000a4080fd0300000014000100fe80000000000000000000fffe0000aa14000600" +
      "ffffffffffffffff84b9320084b93200080008008000000005000b0003000000",
  ),
  /** RTM_NEWADDR fd00:5eed:1::1/64, permanent. */
  newAddr: hex(
    "480000001400000000000000000000000a4080000300000014000100fd005eed00010000000000000000000114000600" +
      "ffffffffffffffff98b9320098b932000800080080000000",
  ),
  /** RTM_DELADDR of it. */
  delAddr: hex(
    "480000001500000000000000000000000a4080000300000014000100fd005eed00010000000000000000000114000600" +
      "ffffffffffffffff98b9320098b932000800080080000000",
  ),
  /** RTM_NEWROUTE fd00:5eed:1::/64 dev v6a: the address's prefix route, main table. */
  prefixRoute: hex(
    `740000001800000600000000000000000a400000fe0200010000000008000f00fe00000014000100fd005eed00010000` +
      `00000000000000000800060000010000${ROUTE_TAIL}`,
  ),
  /** RTM_NEWROUTE local fd00:5eed:1::1 (local table, RTN_LOCAL). */
  localRoute: hex(
    `740000001800000600000000000000000a800000ff0200020000000008000f00ff00000014000100fd005eed00010000` +
      `00000000000000010800060000000000${ROUTE_TAIL}`,
  ),
  /** RTM_NEWROUTE multicast ff00::/8 (local table, RTN_MULTICAST). */
  mcastRoute: hex(
    `740000001800000600000000000000000a080000ff0200050000000008000f00ff00000014000100ff000000000000000000` +
      `0000000000000800060000010000${ROUTE_TAIL}`,
  ),
  /** RTM_NEWROUTE fd00:5eed:99::/48 via fe80::9 dev v6a. */
  newRoute: hex(
    "880000001800000611db126bda3900000a300000fe0300010000000008000f00fe00000014000100fd005eed00990000" +
      `0000000000000000080006000004000014000500fe800000000000000000000000000009${ROUTE_TAIL}`,
  ),
  /** RTM_DELROUTE of it. */
  delRoute: hex(
    "880000001900000012db126bde3900000a300000fe0300010000000008000f00fe00000014000100fd005eed00990000" +
      `0000000000000000080006000004000014000500fe800000000000000000000000000009${ROUTE_TAIL}`,
  ),
  /** RTM_NEWROUTE default via fd00:5eed:1::fe dev v6a (no RTA_DST). */
  defaultRoute: hex(
    "740000001800000612db126bdc3900000a000000fe0300010000000008000f00fe000000080006000004000014000500" +
      `fd005eed0001000000000000000000fe${ROUTE_TAIL}`,
  ),
};

const addr = (op: "new" | "del", addr6: string, prefix = 64): RtnlEvent => ({
  kind: "addr",
  op,
  ifindex: 3,
  prefix,
  addr: null,
  addr6,
});
const route = (over: Partial<Extract<RtnlEvent, { kind: "route" }>>): RtnlEvent => ({
  kind: "route",
  op: "new",
  table: 254,
  type: 1,
  dst: 0,
  prefix: 0,
  gateway: 0,
  oif: 3,
  prefsrc: 0,
  dst6: "::",
  gateway6: null,
  prefsrc6: null,
  ...over,
});

describe("rtnetlink codec, IPv6 (kernel captures)", () => {
  const cases: Array<[string, Uint8Array, RtnlEvent]> = [
    ["RTM_NEWADDR link-local", K.newLinkLocal, addr("new", "fe80::ff:fe00:aa")],
    ["RTM_NEWADDR global", K.newAddr, addr("new", "fd00:5eed:1::1")],
    ["RTM_DELADDR", K.delAddr, addr("del", "fd00:5eed:1::1")],
    ["prefix route", K.prefixRoute, route({ prefix: 64, dst6: "fd00:5eed:1::" })],
    ["local route", K.localRoute, route({ table: 255, type: 2, prefix: 128, dst6: "fd00:5eed:1::1" })],
    ["multicast route", K.mcastRoute, route({ table: 255, type: 5, prefix: 8, dst6: "ff00::" })],
    [
      "route via a link-local gateway",
      K.newRoute,
      route({ prefix: 48, dst6: "fd00:5eed:99::", gateway6: "fe80::9" }),
    ],
    [
      "RTM_DELROUTE",
      K.delRoute,
      route({ op: "del", prefix: 48, dst6: "fd00:5eed:99::", gateway6: "fe80::9" }),
    ],
    ["default route", K.defaultRoute, route({ gateway6: "fd00:5eed:1::fe" })],
  ];
  for (const [name, bytes, ev] of cases)
    it(name, () => {
      const d = decodeRtnl(bytes, bytes.length);
      assert.deepEqual(d, { events: [ev], malformed: 0, ignored: 0, overrun: false });
    });

  it("one datagram with several messages, as a dump brings them", () => {
    const all = new Uint8Array([...K.newAddr, ...K.newRoute, ...K.localRoute]);
    assert.deepEqual(
      decodeRtnl(all, all.length).events.map((e) =>
        e.kind === "addr" ? e.addr6 : e.kind === "route" ? e.dst6 : "",
      ),
      ["fd00:5eed:1::1", "fd00:5eed:99::", "fd00:5eed:1::1"],
    );
  });

  it("never takes an IPv6 event for an IPv4 one", () => {
    for (const b of Object.values(K))
      for (const e of decodeRtnl(b, b.length).events) {
        if (e.kind === "addr") assert.equal(e.addr, null);
        if (e.kind === "route") assert.deepEqual([e.dst, e.gateway, e.prefsrc], [0, 0, 0]);
      }
  });
});

describe("rtnetlink codec, malformed IPv6", () => {
  /** The captured RTM_NEWADDR with byte i replaced by v. */
  const patched = (b: Uint8Array, i: number, v: number): Uint8Array => {
    const c = b.slice();
    c[i] = v;
    return c;
  };
  const cases: Array<[string, Uint8Array]> = [
    // IFA_ADDRESS is the first attribute, at 24: its length 20 (4 + 16) made 8 (4 + 4).
    ["an IPv6 IFA_ADDRESS of 4 bytes", patched(K.newAddr, 24, 8)],
    ["IPv6 prefix length 129", patched(K.newAddr, 17, 129)],
    // RTA_DST is the second attribute of the route, at 36.
    ["an IPv6 RTA_DST of 4 bytes", patched(K.prefixRoute, 36, 8)],
    ["IPv6 route prefix length 129", patched(K.prefixRoute, 17, 129)],
  ];
  for (const [name, bytes] of cases)
    it(name, () => {
      const d = decodeRtnl(bytes, bytes.length);
      assert.deepEqual([d.events.length, d.malformed], [0, 1]);
    });
});
