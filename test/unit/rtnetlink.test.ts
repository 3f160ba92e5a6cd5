// The rtnetlink codec against datagrams laid out by hand here (little-endian header and struct
// fields, big-endian addresses, 4-byte aligned attributes), not by any encoder of the product.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeRtnl, type RtnlDecoded, type RtnlEvent } from "../../src/io/rtnetlink.js";

const u16 = (v: number): number[] => [v & 255, (v >> 8) & 255];
const u32 = (v: number): number[] => [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255];
const ip = (s: string): number[] => s.split(".").map(Number);
const pad4 = (b: number[]): number[] => [...b, ...new Array((4 - (b.length % 4)) % 4).fill(0)];

/** rtattr: u16 len (header + payload, unpadded), u16 type, payload, padding to 4. */
function attr(type: number, payload: number[]): number[] {
  return pad4([...u16(4 + payload.length), ...u16(type), ...payload]);
}

/** nlmsghdr: u32 len, u16 type, u16 flags, u32 seq, u32 pid, then the body. */
function msg(type: number, body: number[], lenOverride?: number): number[] {
  const len = lenOverride ?? 16 + body.length;
  return [...u32(len), ...u16(type), ...u16(0), ...u32(0), ...u32(0), ...body];
}

/** ifinfomsg: family, pad, u16 type, s32 index, u32 flags, u32 change. */
const ifinfo = (index: number, flags: number, type = 1): number[] => [
  0,
  0,
  ...u16(type),
  ...u32(index),
  ...u32(flags),
  ...u32(0xffffffff),
];
/** ifaddrmsg: family, prefixlen, flags, scope, u32 index. */
const ifaddr = (family: number, prefix: number, index: number): number[] => [
  family,
  prefix,
  0,
  0,
  ...u32(index),
];
/** rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, u32 flags. */
const rtmsg = (family: number, dstLen: number, table: number, type: number): number[] => [
  family,
  dstLen,
  0,
  0,
  table,
  4,
  0,
  type,
  ...u32(0),
];
const name = (s: string): number[] => [...Buffer.from(s, "latin1"), 0];

function decode(bytes: number[]): RtnlDecoded {
  return decodeRtnl(Uint8Array.from(bytes), bytes.length);
}

const A = (s: string): number => {
  const [a, b, c, d] = ip(s);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
};

interface Case {
  name: string;
  bytes: number[];
  events: RtnlEvent[];
  malformed?: number;
  ignored?: number;
  overrun?: boolean;
}

const link = (over: Partial<Extract<RtnlEvent, { kind: "link" }>>): RtnlEvent => ({
  kind: "link",
  op: "new",
  ifindex: 7,
  type: 1,
  flags: 0x11043,
  name: null,
  mtu: null,
  mac: null,
  operstate: null,
  ...over,
});

const route = (over: Partial<Extract<RtnlEvent, { kind: "route" }>>): RtnlEvent => ({
  kind: "route",
  op: "new",
  table: 254,
  type: 1,
  dst: 0,
  prefix: 0,
  gateway: 0,
  oif: 0,
  prefsrc: 0,
  ...over,
});

const cases: Case[] = [
  {
    name: "RTM_NEWLINK with name, MTU, MAC and operstate UP",
    bytes: msg(16, [
      ...ifinfo(7, 0x11043),
      ...attr(3, name("eth1")),
      ...attr(4, u32(1500)),
      ...attr(1, [0x02, 0, 0, 0, 0, 0x0a]),
      ...attr(16, [6]),
      ...attr(99, [1, 2, 3]), // unknown attribute: skipped
    ]),
    events: [link({ name: "eth1", mtu: 1500, mac: "02:00:00:00:00:0a", operstate: "UP" })],
  },
  {
    name: "RTM_DELLINK with only the fixed part",
    bytes: msg(17, ifinfo(9, 0x1002)),
    events: [link({ op: "del", ifindex: 9, flags: 0x1002 })],
  },
  {
    name: "RTM_NEWADDR: IFA_LOCAL wins over IFA_ADDRESS (point-to-point peers)",
    bytes: msg(20, [...ifaddr(2, 24, 3), ...attr(1, ip("198.18.9.9")), ...attr(2, ip("198.18.0.100"))]),
    events: [{ kind: "addr", op: "new", ifindex: 3, prefix: 24, addr: A("198.18.0.100") }],
  },
  {
    name: "RTM_DELADDR with IFA_ADDRESS only",
    bytes: msg(21, [...ifaddr(2, 32, 3), ...attr(1, ip("198.18.0.101"))]),
    events: [{ kind: "addr", op: "del", ifindex: 3, prefix: 32, addr: A("198.18.0.101") }],
  },
  {
    name: "RTM_NEWADDR of another family (AF_BRIDGE) is ignored, not malformed (IPv6: rtnetlink6.test.ts)",
    bytes: msg(20, [...ifaddr(7, 64, 3), ...attr(1, new Array(16).fill(0xfe))]),
    events: [],
    ignored: 1,
  },
  {
    name: "RTM_NEWROUTE via a gateway, RTA_TABLE overrides rtm_table",
    bytes: msg(24, [
      ...rtmsg(2, 24, 252, 1),
      ...attr(15, u32(254)),
      ...attr(1, ip("198.18.5.0")),
      ...attr(5, ip("198.18.1.1")),
      ...attr(4, u32(3)),
      ...attr(7, ip("198.18.1.254")),
      ...attr(6, u32(100)), // RTA_PRIORITY: not used
    ]),
    events: [
      route({
        dst: A("198.18.5.0"),
        prefix: 24,
        gateway: A("198.18.1.1"),
        oif: 3,
        prefsrc: A("198.18.1.254"),
      }),
    ],
  },
  {
    name: "RTM_DELROUTE default route (no RTA_DST)",
    bytes: msg(25, [...rtmsg(2, 0, 254, 1), ...attr(5, ip("198.18.0.1")), ...attr(4, u32(2))]),
    events: [route({ op: "del", gateway: A("198.18.0.1"), oif: 2 })],
  },
  {
    name: "a local-table route keeps its table and type",
    bytes: msg(24, [...rtmsg(2, 32, 255, 2), ...attr(1, ip("198.18.0.100")), ...attr(4, u32(1))]),
    events: [route({ table: 255, type: 2, dst: A("198.18.0.100"), prefix: 32, oif: 1 })],
  },
  {
    name: "two messages in one datagram, NLMSG_DONE and NOOP ignored",
    bytes: [
      ...msg(17, ifinfo(4, 0)),
      ...msg(3, u32(0)),
      ...msg(1, []),
      ...msg(21, [...ifaddr(2, 24, 4), ...attr(2, ip("198.18.1.254"))]),
    ],
    events: [
      link({ op: "del", ifindex: 4, flags: 0 }),
      { kind: "addr", op: "del", ifindex: 4, prefix: 24, addr: A("198.18.1.254") },
    ],
    ignored: 2,
  },
  { name: "NLMSG_OVERRUN", bytes: msg(4, []), events: [], ignored: 1, overrun: true },
  { name: "empty datagram", bytes: [], events: [] },
  // Malformed input: counted, skipped, never thrown.
  { name: "shorter than a header", bytes: [1, 2, 3, 4, 5, 6, 7, 8], events: [], malformed: 1 },
  { name: "nlmsg_len below the header size", bytes: msg(16, ifinfo(7, 1), 8), events: [], malformed: 1 },
  {
    name: "nlmsg_len past the end of the datagram stops the walk",
    bytes: [...msg(17, ifinfo(5, 0)), ...msg(16, ifinfo(7, 1), 200)],
    events: [link({ op: "del", ifindex: 5, flags: 0 })],
    malformed: 1,
  },
  {
    name: "ifinfomsg cut short",
    bytes: msg(16, [0, 0, 1, 0, 7, 0]),
    events: [],
    malformed: 1,
  },
  {
    name: "an attribute running past its message is malformed; the next message is still read",
    bytes: [...msg(16, [...ifinfo(7, 1), ...u16(40), ...u16(3), ...name("eth")]), ...msg(17, ifinfo(8, 0))],
    events: [link({ op: "del", ifindex: 8, flags: 0 })],
    malformed: 1,
  },
  {
    name: "attribute length below its header",
    bytes: msg(16, [...ifinfo(7, 1), ...u16(2), ...u16(3)]),
    events: [],
    malformed: 1,
  },
  {
    name: "IFLA_MTU of 2 bytes",
    bytes: msg(16, [...ifinfo(7, 1), ...attr(4, [0xdc, 0x05])]),
    events: [],
    malformed: 1,
  },
  {
    name: "IFLA_IFNAME longer than IFNAMSIZ",
    bytes: msg(16, [...ifinfo(7, 1), ...attr(3, name("a-very-long-interface-name"))]),
    events: [],
    malformed: 1,
  },
  {
    name: "ifindex 0 on a link message",
    bytes: msg(16, ifinfo(0, 1)),
    events: [],
    malformed: 1,
  },
  {
    name: "IPv4 IFA_LOCAL of 3 bytes",
    bytes: msg(20, [...ifaddr(2, 24, 3), ...attr(2, [198, 18, 0])]),
    events: [],
    malformed: 1,
  },
  {
    name: "IPv4 prefix length 33",
    bytes: msg(20, [...ifaddr(2, 33, 3), ...attr(2, ip("198.18.0.1"))]),
    events: [],
    malformed: 1,
  },
  {
    name: "rtmsg cut short",
    bytes: msg(24, [2, 24, 0, 0, 254]),
    events: [],
    malformed: 1,
  },
  {
    name: "RTA_GATEWAY of 16 bytes in an IPv4 route",
    bytes: msg(24, [...rtmsg(2, 0, 254, 1), ...attr(5, new Array(16).fill(1))]),
    events: [],
    malformed: 1,
  },
  {
    name: "trailing bytes after the last message",
    bytes: [...msg(17, ifinfo(5, 0)), 0, 0, 0, 0],
    events: [link({ op: "del", ifindex: 5, flags: 0 })],
    malformed: 1,
  },
];

describe("rtnetlink codec", () => {
  for (const c of cases) {
    it(c.name, () => {
      const d = decode(c.bytes);
      assert.deepEqual(d.events, c.events);
      assert.equal(d.malformed, c.malformed ?? 0, "malformed");
      assert.equal(d.ignored, c.ignored ?? 0, "ignored");
      assert.equal(d.overrun, c.overrun ?? false, "overrun");
    });
  }

  it("honours len below the buffer's size (a reused receive buffer)", () => {
    const one = msg(17, ifinfo(5, 0));
    const buf = new Uint8Array(4096).fill(0xff);
    buf.set(one, 0);
    const d = decodeRtnl(buf, one.length);
    assert.equal(d.events.length, 1);
    assert.equal(d.malformed, 0);
  });

  it("never throws on random bytes", () => {
    let seed = 12345;
    const rnd = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 24;
    };
    for (let i = 0; i < 2000; i++) {
      const n = rnd() * 2;
      // A plausible header now and then, so that the walk gets past it into the bodies.
      const bytes = Array.from({ length: n }, rnd);
      if (n >= 16 && i % 2 === 0) {
        bytes.splice(0, 4, ...u32(n));
        bytes.splice(4, 2, ...u16([16, 17, 20, 21, 24, 25][i % 6]));
      }
      assert.doesNotThrow(() => decode(bytes));
    }
  });
});
