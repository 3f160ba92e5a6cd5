// VRRP codec: adverts against byte fixtures written out by hand from RFC 3768/5798 and keepalived's
// vrrp_build_ip4/vrrp_build_vrrp_v2/_v3 (checksums worked by hand, each re-checked here with the test
// support's own RFC 1071 sum), GARP as send_gratuitous_arp_immediate writes it, frame parsing with
// Ethernet padding, and keepalived's receive checks with one mutated fixture per reason.
//
// Fixture instance: keepalived's sample config (vrid 51, priority 100, advert_int 1,
// auth_pass 1111, VIP 192.168.200.16), sent from 192.168.200.2 to 224.0.0.18.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { vrrpInstanceDefaults } from "../../src/core/vrrp/config.js";
import {
  checkAdvert,
  decodeAdvert,
  encodeAdvert,
  multicastMac,
  parseVrrpFrame,
  vmacOf,
  writeAdvertFrame,
  writeGarpFrame,
} from "../../src/core/vrrp/packet.js";
import {
  concat,
  ethFrame,
  inetChecksum,
  ip,
  ipv4Datagram,
  mac,
  pseudoHeader,
  put16,
} from "../support/packet-builder.js";

function hex(s: string): Uint8Array {
  const h = s.replace(/[^0-9a-f]/gi, "");
  const b = new Uint8Array(h.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = Number.parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return b;
}

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

const SRC = ip("192.168.200.2");
const GROUP = ip("224.0.0.18");
const VIP = ip("192.168.200.16");
const SRC_MAC = mac("52:54:00:12:34:56");

// v2, PASS "1111". Checksum by hand: 2133 + 6401 + 0101 + c0a8 + c810 + 3131 + 3131 = 0x2714f
// → 714f + 2 = 7151 → ~ = 8eae.
const V2_MSG = hex("21 33 64 01 01 01 8e ae  c0 a8 c8 10  31 31 31 31 00 00 00 00");
// v3, 100 cs. Pseudo-header c0a8 c802 e000 0012 0070 000c sums to 0x26938, the message
// 3133 + 6401 + 0064 + c0a8 + c810 to 0x21e50; 0x48788 → 878c → ~ = 7873.
const V3_MSG = hex("31 33 64 01 00 64 78 73  c0 a8 c8 10");
// The same without the pseudo-header (v3_checksum_as_v2): 0x21e50 → 1e52 → ~ = e1ad.
const V3_MSG_AS_V2 = hex("31 33 64 01 00 64 e1 ad  c0 a8 c8 10");
// Ethernet + IPv4 as keepalived sends the v2 advert: TOS c0, id 0, no DF, TTL 255, proto 112;
// IP checksum 45c0+0028+ff70+c0a8+c802+e000+0012 → ~ = 51e8.
const V2_FRAME = hex(
  "01 00 5e 00 00 12  52 54 00 12 34 56  08 00" +
    "45 c0 00 28 00 00 00 00 ff 70 51 e8 c0 a8 c8 02 e0 00 00 12" +
    "21 33 64 01 01 01 8e ae c0 a8 c8 10 31 31 31 31 00 00 00 00",
);

const v2cfg = () =>
  vrrpInstanceDefaults({
    name: "VI_1",
    iface: "eth0",
    vrid: 51,
    priority: 100,
    authPass: "1111",
    addrs: [{ addr: VIP, prefix: 24 }],
  });
const v3cfg = () => ({ ...v2cfg(), version: 3 as const, authPass: null });

describe("fixtures are what RFC 1071 says", () => {
  it("hand-worked checksums verify with the test's own sum", () => {
    assert.equal(inetChecksum(V2_MSG), 0);
    assert.equal(inetChecksum(pseudoHeader(SRC, GROUP, 112, V3_MSG.length), V3_MSG), 0);
    assert.equal(inetChecksum(V3_MSG_AS_V2), 0);
    assert.equal(inetChecksum(V2_FRAME.subarray(14, 34)), 0);
  });
});

describe("encodeAdvert", () => {
  it("v2 with PASS: header, address, 8 auth bytes (password zero padded), message checksum", () => {
    const b = new Uint8Array(64).fill(0xee);
    const n = encodeAdvert(
      b,
      3,
      {
        version: 2,
        vrid: 51,
        priority: 100,
        advertIntMs: 1000,
        addrs: [VIP],
        authPass: "1111",
        v3ChecksumAsV2: false,
      },
      SRC,
      GROUP,
    );
    assert.equal(n, 20);
    assert.equal(toHex(b.subarray(3, 23)), toHex(V2_MSG));
    assert.equal(b[2], 0xee, "nothing written before off");
    assert.equal(b[23], 0xee, "nothing written past the message");
  });

  it("v2 without authentication still carries 8 zero auth bytes", () => {
    const b = new Uint8Array(20);
    const n = encodeAdvert(
      b,
      0,
      {
        version: 2,
        vrid: 51,
        priority: 100,
        advertIntMs: 1000,
        addrs: [VIP],
        authPass: null,
        v3ChecksumAsV2: false,
      },
      SRC,
      GROUP,
    );
    assert.equal(n, 20);
    // 2133 + 6401 + 0001 + c0a8 + c810 = 0x20ded → 0def → ~ = f210
    assert.equal(toHex(b), toHex(hex("21 33 64 01 00 01 f2 10 c0 a8 c8 10 00 00 00 00 00 00 00 00")));
  });

  it("v2 PASS uses only the first 8 characters", () => {
    const b = new Uint8Array(20);
    encodeAdvert(
      b,
      0,
      {
        version: 2,
        vrid: 51,
        priority: 100,
        advertIntMs: 1000,
        addrs: [VIP],
        authPass: "secretpassword",
        v3ChecksumAsV2: false,
      },
      SRC,
      GROUP,
    );
    assert.equal(new TextDecoder().decode(b.subarray(12, 20)), "secretpa");
    assert.equal(inetChecksum(b), 0);
  });

  it("v3: centisecond interval, checksum over the IPv4 pseudo-header with the actual destination", () => {
    const b = new Uint8Array(12);
    const a = {
      version: 3 as const,
      vrid: 51,
      priority: 100,
      advertIntMs: 1000,
      addrs: [VIP],
      authPass: null,
      v3ChecksumAsV2: false,
    };
    assert.equal(encodeAdvert(b, 0, a, SRC, GROUP), 12);
    assert.equal(toHex(b), toHex(V3_MSG));
    // Unicast: the peer is the pseudo-header's destination.
    const peer = ip("192.168.200.3");
    encodeAdvert(b, 0, a, SRC, peer);
    assert.equal(inetChecksum(pseudoHeader(SRC, peer, 112, 12), b), 0);
  });

  it("v3 with v3_checksum_as_v2: no pseudo-header", () => {
    const b = new Uint8Array(12);
    encodeAdvert(
      b,
      0,
      {
        version: 3,
        vrid: 51,
        priority: 100,
        advertIntMs: 1000,
        addrs: [VIP],
        authPass: null,
        v3ChecksumAsV2: true,
      },
      SRC,
      GROUP,
    );
    assert.equal(toHex(b), toHex(V3_MSG_AS_V2));
  });

  it("returns 0 when the message does not fit", () => {
    const a = {
      version: 2 as const,
      vrid: 1,
      priority: 1,
      advertIntMs: 1000,
      addrs: [VIP],
      authPass: null,
      v3ChecksumAsV2: false,
    };
    assert.equal(encodeAdvert(new Uint8Array(19), 0, a, SRC, GROUP), 0);
  });
});

describe("frames", () => {
  it("writeAdvertFrame writes keepalived's IPv4 header and the advert", () => {
    const b = new Uint8Array(128);
    const n = writeAdvertFrame(b, 0, {
      srcMac: SRC_MAC,
      dstMac: multicastMac(GROUP),
      srcIp: SRC,
      dstIp: GROUP,
      cfg: v2cfg(),
      priority: 100,
    });
    assert.equal(n, 54);
    assert.equal(toHex(b.subarray(0, n)), toHex(V2_FRAME));
  });

  it("writeAdvertFrame with priority 0 (resigning)", () => {
    const b = new Uint8Array(128);
    const n = writeAdvertFrame(b, 0, {
      srcMac: SRC_MAC,
      dstMac: multicastMac(GROUP),
      srcIp: SRC,
      dstIp: GROUP,
      cfg: v2cfg(),
      priority: 0,
    });
    assert.equal(b[14 + 20 + 2], 0);
    assert.equal(inetChecksum(b.subarray(34, n)), 0);
  });

  it("writeAdvertFrame v3 checksums over the frame's own addresses", () => {
    const b = new Uint8Array(128);
    const n = writeAdvertFrame(b, 2, {
      srcMac: SRC_MAC,
      dstMac: multicastMac(GROUP),
      srcIp: SRC,
      dstIp: GROUP,
      cfg: v3cfg(),
      priority: 100,
    });
    assert.equal(n, 14 + 20 + 12);
    // IPv4 checksum 45c0+0020+ff70+c0a8+c802+e000+0012 → ~ = 51f0
    assert.equal(
      toHex(b.subarray(2 + 14, 2 + 34)),
      toHex(hex("45 c0 00 20 00 00 00 00 ff 70 51 f0 c0 a8 c8 02 e0 00 00 12")),
    );
    assert.equal(toHex(b.subarray(2 + 34, 2 + n)), toHex(V3_MSG));
  });

  it("multicast and virtual MACs", () => {
    assert.equal(toHex(multicastMac(GROUP)), "01 00 5e 00 00 12");
    // Only the low 23 bits of the group: 239.129.2.3 → 01:00:5e:01:02:03.
    assert.equal(toHex(multicastMac(ip("239.129.2.3"))), "01 00 5e 01 02 03");
    assert.equal(toHex(vmacOf(51)), "00 00 5e 00 01 33");
    assert.equal(toHex(vmacOf(255)), "00 00 5e 00 01 ff");
  });

  it("writeGarpFrame: broadcast ARP request, sender = target = the address, target MAC broadcast", () => {
    const b = new Uint8Array(64);
    const n = writeGarpFrame(b, 0, SRC_MAC, VIP);
    assert.equal(n, 42);
    assert.equal(
      toHex(b.subarray(0, n)),
      toHex(
        hex(
          "ff ff ff ff ff ff 52 54 00 12 34 56 08 06" +
            "00 01 08 00 06 04 00 01 52 54 00 12 34 56 c0 a8 c8 10 ff ff ff ff ff ff c0 a8 c8 10",
        ),
      ),
    );
    assert.equal(writeGarpFrame(new Uint8Array(41), 0, SRC_MAC, VIP), 0);
  });
});

describe("parseVrrpFrame", () => {
  it("parses the fixture, ignoring Ethernet padding up to 60 bytes", () => {
    const f = new Uint8Array(60);
    f.set(V2_FRAME);
    const p = parseVrrpFrame(f, 60);
    assert.ok(p !== null);
    assert.deepEqual(
      { ...p },
      {
        family: 4,
        l3Off: 14,
        srcIp: SRC,
        dstIp: GROUP,
        src6Off: -1,
        dst6Off: -1,
        ttl: 255,
        vrrpOff: 34,
        vrrpLen: 20,
        version: 2,
        type: 1,
        vrid: 51,
        priority: 100,
        naddr: 1,
      },
    );
    assert.equal(checkAdvert(v2cfg(), f, p), null);
  });

  it("accepts one 802.1Q tag", () => {
    const f = concat(V2_FRAME.subarray(0, 12), hex("81 00 00 64"), V2_FRAME.subarray(12));
    const p = parseVrrpFrame(f, f.length);
    assert.ok(p !== null);
    assert.equal(p.l3Off, 18);
    assert.equal(p.vrrpOff, 38);
  });

  it("rejects what is not a whole, unfragmented IPv4 VRRP packet", () => {
    const mut = (fn: (b: Uint8Array) => void) => {
      const b = V2_FRAME.slice();
      fn(b);
      return b;
    };
    const cases: [string, Uint8Array, number][] = [
      ["truncated below the IPv4 total length", V2_FRAME, V2_FRAME.length - 1],
      ["ARP ethertype", mut((b) => put16(b, 12, 0x0806)), 54],
      [
        "not protocol 112",
        mut((b) => {
          b[23] = 51;
        }),
        54,
      ],
      [
        "bad IPv4 header checksum",
        mut((b) => {
          b[24] ^= 1;
        }),
        54,
      ],
      [
        "IPv6 version nibble",
        mut((b) => {
          b[14] = 0x65;
        }),
        54,
      ],
      ["total length shorter than the VRRP header", mut((b) => put16(b, 16, 27)), 54],
    ];
    for (const [name, frame, len] of cases) assert.equal(parseVrrpFrame(frame, len), null, name);
    const frag = ethFrame(
      multicastMac(GROUP),
      SRC_MAC,
      0x0800,
      ipv4Datagram({ src: SRC, dst: GROUP, proto: 112, ttl: 255, mf: true, payload: V2_MSG }),
    );
    assert.equal(parseVrrpFrame(frag, frag.length), null, "a fragment");
  });
});

/** A v2/v3 VRRP message built field by field in the test (independent of encodeAdvert). */
interface MsgSpec {
  version?: number;
  type?: number;
  vrid?: number;
  priority?: number;
  addrs?: number[];
  /** v2 */
  authType?: number;
  auth?: string;
  adverInt?: number;
  /** v3, centiseconds (12 bits + reserved) */
  adverIntCs?: number;
  /** Override the naddr byte. */
  naddr?: number;
  /** v3 pseudo-header dst; null = no pseudo-header. */
  pseudoDst?: number | null;
  badChecksum?: boolean;
}

function msg(s: MsgSpec, src = SRC): Uint8Array {
  const version = s.version ?? 2;
  const addrs = s.addrs ?? [VIP];
  const len = 8 + 4 * addrs.length + (version === 2 ? 8 : 0);
  const b = new Uint8Array(len);
  b[0] = (version << 4) | (s.type ?? 1);
  b[1] = s.vrid ?? 51;
  b[2] = s.priority ?? 100;
  b[3] = s.naddr ?? addrs.length;
  if (version === 2) {
    b[4] = s.authType ?? 1;
    b[5] = s.adverInt ?? 1;
    const pw = s.auth ?? "1111";
    for (let i = 0; i < 8 && i < pw.length; i++) b[8 + 4 * addrs.length + i] = pw.charCodeAt(i);
  } else {
    put16(b, 4, s.adverIntCs ?? 100);
  }
  addrs.forEach((a, i) => {
    b[8 + 4 * i] = a >>> 24;
    b[9 + 4 * i] = (a >>> 16) & 255;
    b[10 + 4 * i] = (a >>> 8) & 255;
    b[11 + 4 * i] = a & 255;
  });
  const pd = s.pseudoDst === undefined ? (version === 3 ? GROUP : null) : s.pseudoDst;
  const c = pd === null ? inetChecksum(b) : inetChecksum(pseudoHeader(src, pd, 112, len), b);
  put16(b, 6, s.badChecksum === true ? c ^ 0x0101 : c);
  return b;
}

function frame(m: Uint8Array, o: { ttl?: number; dst?: number; src?: number } = {}): Uint8Array {
  const dst = o.dst ?? GROUP;
  return ethFrame(
    multicastMac(GROUP),
    SRC_MAC,
    0x0800,
    ipv4Datagram({ src: o.src ?? SRC, dst, proto: 112, ttl: o.ttl ?? 255, tos: 0xc0, payload: m }),
  );
}

function check(cfg: ReturnType<typeof v2cfg>, f: Uint8Array): string | null {
  const p = parseVrrpFrame(f, f.length);
  assert.ok(p !== null, "the fixture parses");
  return checkAdvert(cfg, f, p);
}

describe("checkAdvert: keepalived's receive checks, one reason each", () => {
  const peer = ip("192.168.200.3");
  const unicast = () => ({ ...v2cfg(), unicastPeers: [SRC] });
  const cases: { name: string; cfg: ReturnType<typeof v2cfg>; frame: Uint8Array; want: string | null }[] = [
    { name: "the fixture", cfg: v2cfg(), frame: frame(msg({})), want: null },
    { name: "another VRID", cfg: v2cfg(), frame: frame(msg({ vrid: 52 })), want: "vrid" },
    { name: "naddr says 2, one address sent", cfg: v2cfg(), frame: frame(msg({ naddr: 2 })), want: "length" },
    { name: "TTL 254 on multicast", cfg: v2cfg(), frame: frame(msg({}), { ttl: 254 }), want: "ttl" },
    {
      name: "TTL 64 on unicast is fine",
      cfg: unicast(),
      frame: frame(msg({}), { ttl: 64, dst: peer }),
      want: null,
    },
    { name: "v3 to a v2 instance", cfg: v2cfg(), frame: frame(msg({ version: 3 })), want: "version" },
    { name: "unknown auth type 7", cfg: v2cfg(), frame: frame(msg({ authType: 7 })), want: "auth_type" },
    {
      name: "no auth while we use PASS",
      cfg: v2cfg(),
      frame: frame(msg({ authType: 0, auth: "" })),
      want: "auth_mismatch",
    },
    { name: "wrong password", cfg: v2cfg(), frame: frame(msg({ auth: "2222" })), want: "auth" },
    {
      name: "password compared on its first 8 characters",
      cfg: { ...v2cfg(), authPass: "secretpassword" },
      frame: frame(msg({ auth: "secretpa" })),
      want: null,
    },
    {
      name: "no authentication on both sides, auth bytes ignored",
      cfg: { ...v2cfg(), authPass: null },
      frame: frame(msg({ authType: 0, auth: "garbage!" })),
      want: null,
    },
    {
      name: "v2 interval 2 s against our 1 s",
      cfg: v2cfg(),
      frame: frame(msg({ adverInt: 2 })),
      want: "interval",
    },
    { name: "type 2", cfg: v2cfg(), frame: frame(msg({ type: 2 })), want: "type" },
    { name: "v2 bad checksum", cfg: v2cfg(), frame: frame(msg({ badChecksum: true })), want: "checksum" },
    { name: "multicast advert on a unicast instance", cfg: unicast(), frame: frame(msg({})), want: "dest" },
    {
      name: "unicast advert on a multicast instance",
      cfg: v2cfg(),
      frame: frame(msg({}), { dst: peer }),
      want: "dest",
    },
    { name: "v3 pseudo-header checksum", cfg: v3cfg(), frame: frame(msg({ version: 3 })), want: null },
    {
      name: "v3 interval mismatch is only noted",
      cfg: v3cfg(),
      frame: frame(msg({ version: 3, adverIntCs: 50 })),
      want: null,
    },
    {
      name: "v3 without pseudo-header on a default instance",
      cfg: v3cfg(),
      frame: frame(msg({ version: 3, pseudoDst: null })),
      want: "checksum",
    },
    {
      name: "v3 bad checksum",
      cfg: v3cfg(),
      frame: frame(msg({ version: 3, badChecksum: true })),
      want: "checksum",
    },
    {
      name: "v3_checksum_as_v2 accepts the v2 form",
      cfg: { ...v3cfg(), v3ChecksumAsV2: true },
      frame: frame(msg({ version: 3, pseudoDst: null })),
      want: null,
    },
    {
      name: "v3_checksum_as_v2 also accepts the pseudo-header form",
      cfg: { ...v3cfg(), v3ChecksumAsV2: true },
      frame: frame(msg({ version: 3 })),
      want: null,
    },
    {
      name: "v3 unicast: pseudo-header dst = the peer",
      cfg: { ...v3cfg(), unicastPeers: [SRC] },
      frame: frame(msg({ version: 3, pseudoDst: peer }), { dst: peer }),
      want: null,
    },
    {
      name: "v3 unicast: pre-1.3.6 pseudo-header dst 224.0.0.18",
      cfg: { ...v3cfg(), unicastPeers: [SRC] },
      frame: frame(msg({ version: 3, pseudoDst: GROUP }), { dst: peer }),
      want: null,
    },
  ];
  for (const c of cases) it(c.name, () => assert.equal(check(c.cfg, c.frame), c.want));

  it("the order is keepalived's: TTL before version before auth before interval before checksum", () => {
    const f = frame(msg({ version: 3, badChecksum: true }), { ttl: 1 });
    assert.equal(check(v2cfg(), f), "ttl");
    assert.equal(check(v2cfg(), frame(msg({ auth: "x", adverInt: 9, badChecksum: true }))), "auth");
    assert.equal(check(v2cfg(), frame(msg({ adverInt: 9, type: 3, badChecksum: true }))), "interval");
    assert.equal(check(v2cfg(), frame(msg({ type: 3, badChecksum: true }))), "type");
  });
});

describe("decodeAdvert", () => {
  it("v2: seconds; addresses in order", () => {
    const b = ip("10.1.1.1");
    const f = frame(msg({ priority: 150, adverInt: 3, addrs: [VIP, b] }));
    const p = parseVrrpFrame(f, f.length);
    assert.ok(p !== null);
    assert.deepEqual(decodeAdvert(f, p), {
      version: 2,
      vrid: 51,
      priority: 150,
      advertIntMs: 3000,
      addrs: [VIP, b],
      srcIp: SRC,
    });
  });

  it("v3: centiseconds, the reserved bits masked off", () => {
    const f = frame(msg({ version: 3, adverIntCs: 0xf000 | 250 }));
    const p = parseVrrpFrame(f, f.length);
    assert.ok(p !== null);
    assert.equal(decodeAdvert(f, p).advertIntMs, 2500);
  });
});
