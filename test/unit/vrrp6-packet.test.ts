// VRRPv3 over IPv6 (RFC 5798/9568 §5.1.2): the advert and the unsolicited NA against frames captured
// from Debian's keepalived 2.2.7 (tcpdump -xx on a veth peer; vrid 61, priority 150, advert_int 1,
// virtual_ipaddress fe80::61/64 then fd00:7::100/64, from the interface's link-local address
// fe80::5054:ff:feaa:1 and MAC 52:54:00:aa:00:01), each re-checked with the test support's own RFC
// 1071 sum; keepalived's receive checks over IPv6 with one mutated frame per drop reason; the
// runner's socket filter on the test's cBPF interpreter.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IP6_OK, Ipv6Walk, ipv6Walk } from "../../src/core/packet/ipv6.js";
import { NDP_OK, NdpMsg, ndpParse, writeUnsolicitedNa } from "../../src/core/packet/ndp.js";
import { vrrpInstanceDefaults } from "../../src/core/vrrp/config.js";
import {
  checkAdvert,
  decodeAdvert,
  encodeAdvert6,
  multicastMac6,
  parseVrrpFrame,
  vmac6Of,
  vrrpMessageLen,
  writeAdvertFrame6,
  writeNsFrame,
} from "../../src/core/vrrp/packet.js";
import { compileVrrpFilter } from "../../src/io/vrrp-filter.js";
import { arpFrame, ipv4Frame, runBpf } from "../support/cbpf.js";
import { inetChecksum, mac } from "../support/packet-builder.js";
import { a6, pseudoHeader6 } from "../support/packet6.js";

function hex(s: string): Uint8Array {
  const h = s.replace(/[^0-9a-f]/gi, "");
  const b = new Uint8Array(h.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = Number.parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return b;
}

const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

const SRC = a6("fe80::5054:ff:feaa:1");
const GROUP = a6("ff02::12");
const SRC_MAC = mac("52:54:00:aa:00:01");
const VIPS = [a6("fe80::61"), a6("fd00:7::100")];

// keepalived's advert as the wire had it. The kernel chose flow label 0xb19a5 (auto_flowlabels);
// tsvs writes 0 there, the only difference.
const KA_ADVERT = hex(
  "3333 0000 0012 5254 00aa 0001 86dd 6c0b" +
    "19a5 0028 70ff fe80 0000 0000 0000 5054" +
    "00ff feaa 0001 ff02 0000 0000 0000 0000" +
    "0000 0000 0012 313d 9602 0064 ed44 fe80" +
    "0000 0000 0000 0000 0000 0000 0061 fd00" +
    "0007 0000 0000 0000 0000 0000 0100",
);
const VRRP_MSG = KA_ADVERT.subarray(54);
const TSVS_ADVERT = KA_ADVERT.slice();
TSVS_ADVERT[15] = 0x00;
TSVS_ADVERT[16] = 0x00;
TSVS_ADVERT[17] = 0x00;
TSVS_ADVERT[14] = 0x6c;

// keepalived's unsolicited NA for fe80::61: from the VIP to ff02::1, O set, target link-layer option.
const KA_NA = hex(
  "3333 0000 0001 5254 00aa 0001 86dd 6000" +
    "0000 0020 3aff fe80 0000 0000 0000 0000" +
    "0000 0000 0061 ff02 0000 0000 0000 0000" +
    "0000 0000 0001 8800 05dd 2000 0000 fe80" +
    "0000 0000 0000 0000 0000 0000 0061 0201" +
    "5254 00aa 0001",
);

const cfg6 = (o: Partial<Parameters<typeof vrrpInstanceDefaults>[0]> = {}) =>
  vrrpInstanceDefaults({
    name: "V6",
    iface: "eth0",
    vrid: 61,
    family: 6,
    priority: 100,
    addrs: [
      { addr: 0, prefix: 64, addr6: "fe80::61" },
      { addr: 0, prefix: 64, addr6: "fd00:7::100" },
    ],
    ...o,
  });

describe("fixtures are what RFC 1071 / RFC 8200 say", () => {
  it("the captured advert and NA sum to zero with their pseudo-headers", () => {
    assert.equal(inetChecksum(pseudoHeader6(SRC, GROUP, 112, VRRP_MSG.length), VRRP_MSG), 0);
    const na = KA_NA.subarray(54);
    assert.equal(inetChecksum(pseudoHeader6(a6("fe80::61"), a6("ff02::1"), 58, na.length), na), 0);
  });
});

describe("VRRPv3 over IPv6: encode", () => {
  it("message length is 8 + 16 per address, no auth bytes", () => {
    assert.equal(vrrpMessageLen(3, 2, 6), 40);
    assert.equal(vrrpMessageLen(2, 2, 6), 40);
    assert.equal(vrrpMessageLen(3, 255, 6), 4088);
  });

  it("encodeAdvert6 writes keepalived's message, checksum over the IPv6 pseudo-header", () => {
    const b = new Uint8Array(48).fill(0xee);
    const n = encodeAdvert6(
      b,
      4,
      { vrid: 61, priority: 150, advertIntMs: 1000, addrs: VIPS },
      SRC,
      0,
      GROUP,
      0,
    );
    assert.equal(n, 40);
    assert.equal(toHex(b.subarray(4, 44)), toHex(VRRP_MSG));
    assert.equal(b[3], 0xee, "nothing before off");
    assert.equal(b[44], 0xee, "nothing after the message");
  });

  it("the checksum covers the destination: a unicast copy sums with the peer's address", () => {
    const peer = a6("fe80::5054:ff:febb:2");
    const b = new Uint8Array(40);
    encodeAdvert6(b, 0, { vrid: 61, priority: 150, advertIntMs: 1000, addrs: VIPS }, SRC, 0, peer, 0);
    assert.equal(inetChecksum(pseudoHeader6(SRC, peer, 112, 40), b), 0);
    assert.notEqual(toHex(b.subarray(6, 8)), toHex(VRRP_MSG.subarray(6, 8)));
  });

  it("refuses what does not fit, and more than 255 addresses", () => {
    assert.equal(
      encodeAdvert6(
        new Uint8Array(39),
        0,
        { vrid: 1, priority: 1, advertIntMs: 1000, addrs: VIPS },
        SRC,
        0,
        GROUP,
        0,
      ),
      0,
    );
    const many = Array.from({ length: 256 }, () => VIPS[0]);
    assert.equal(
      encodeAdvert6(
        new Uint8Array(8192),
        0,
        { vrid: 1, priority: 1, advertIntMs: 1000, addrs: many },
        SRC,
        0,
        GROUP,
        0,
      ),
      0,
    );
  });

  it("writeAdvertFrame6 is keepalived's frame: tc 0xc0, hop limit 255, next header 112, to 33:33:00:00:00:12", () => {
    const b = new Uint8Array(200);
    const n = writeAdvertFrame6(b, 0, {
      srcMac: SRC_MAC,
      dstMac: multicastMac6(GROUP),
      src: SRC,
      dst: GROUP,
      vrid: 61,
      advertIntMs: 1000,
      addrs: VIPS,
      priority: 150,
    });
    assert.equal(n, 94);
    assert.equal(toHex(b.subarray(0, n)), toHex(TSVS_ADVERT));
  });

  it("the IPv6 virtual MAC is 00:00:5e:00:02:VRID", () => {
    assert.equal(toHex(vmac6Of(61)), "00 00 5e 00 02 3d");
  });

  it("writeUnsolicitedNa gives keepalived's NA byte for byte", () => {
    const b = new Uint8Array(86);
    assert.equal(writeUnsolicitedNa(b, 0, SRC_MAC, a6("fe80::61"), 0, false), 86);
    assert.equal(toHex(b), toHex(KA_NA));
  });

  it("writeNsFrame solicits a unicast peer at its solicited-node group, with our link-layer address", () => {
    const b = new Uint8Array(100);
    const peer = a6("fd00:7::12");
    const n = writeNsFrame(b, 0, SRC_MAC, SRC, peer);
    assert.equal(n, 86);
    assert.equal(toHex(b.subarray(0, 6)), "33 33 ff 00 00 12");
    const w = new Ipv6Walk();
    assert.equal(ipv6Walk(b, 14, n, w), IP6_OK);
    const m = new NdpMsg();
    assert.equal(ndpParse(b, w, m), NDP_OK);
    assert.equal(m.type, 135);
    assert.equal(toHex(b.subarray(m.targetOff, m.targetOff + 16)), toHex(peer));
    assert.equal(toHex(b.subarray(m.lladdrOff, m.lladdrOff + 6)), toHex(SRC_MAC));
    assert.equal(toHex(b.subarray(38, 54)), toHex(a6("ff02::1:ff00:12")));
  });
});

describe("VRRPv3 over IPv6: parse and decode", () => {
  it("parses keepalived's advert: family, hop limit, offsets, header fields", () => {
    const p = parseVrrpFrame(KA_ADVERT, KA_ADVERT.length);
    assert.ok(p !== null);
    assert.equal(p.family, 6);
    assert.equal(p.ttl, 255);
    assert.equal(p.vrrpOff, 54);
    assert.equal(p.vrrpLen, 40);
    assert.equal(p.version, 3);
    assert.equal(p.vrid, 61);
    assert.equal(p.priority, 150);
    assert.equal(p.naddr, 2);
    assert.deepEqual(decodeAdvert(KA_ADVERT, p), {
      version: 3,
      vrid: 61,
      priority: 150,
      advertIntMs: 1000,
      addrs: [],
      srcIp: 0,
      src6: "fe80::5054:ff:feaa:1",
      addrs6: ["fe80::61", "fd00:7::100"],
    });
  });

  it("ignores Ethernet padding and skips a hop-by-hop header; drops fragments and other next headers", () => {
    const padded = new Uint8Array(KA_ADVERT.length + 10);
    padded.set(KA_ADVERT);
    assert.equal(parseVrrpFrame(padded, padded.length)?.vrrpLen, 40);
    // Hop-by-hop (PadN over 6 bytes) in front of the advert.
    const hbh = new Uint8Array(KA_ADVERT.length + 8);
    hbh.set(KA_ADVERT.subarray(0, 54));
    hbh.set(hex("70 00 01 04 00 00 00 00"), 54);
    hbh.set(VRRP_MSG, 62);
    hbh[20] = 0;
    hbh[19] = 0x30;
    const p = parseVrrpFrame(hbh, hbh.length);
    assert.equal(p?.vrrpOff, 62);
    const frag = new Uint8Array(KA_ADVERT.length + 8);
    frag.set(KA_ADVERT.subarray(0, 54));
    frag.set(hex("70 00 00 01 00 00 00 07"), 54);
    frag.set(VRRP_MSG, 62);
    frag[20] = 44;
    frag[19] = 0x30;
    assert.equal(parseVrrpFrame(frag, frag.length), null);
    const udp = KA_ADVERT.slice();
    udp[20] = 17;
    assert.equal(parseVrrpFrame(udp, udp.length), null);
    assert.equal(parseVrrpFrame(KA_ADVERT, 60), null, "cut short");
  });
});

describe("VRRPv3 over IPv6: keepalived's receive checks", () => {
  const mutate = (f: (b: Uint8Array) => void): Uint8Array => {
    const b = KA_ADVERT.slice();
    f(b);
    return b;
  };
  const check = (b: Uint8Array, cfg = cfg6()) => {
    const p = parseVrrpFrame(b, b.length);
    assert.ok(p !== null);
    return checkAdvert(cfg, b, p);
  };
  /** Re-sums the message after a mutation, so that only the mutated field is wrong. */
  const resum = (b: Uint8Array): Uint8Array => {
    b[60] = 0;
    b[61] = 0;
    const len = (b[18] << 8) | b[19];
    const c = inetChecksum(
      pseudoHeader6(b.subarray(22, 38), b.subarray(38, 54), 112, len),
      b.subarray(54, 54 + len),
    );
    b[60] = c >>> 8;
    b[61] = c & 255;
    return b;
  };

  it("accepts keepalived's advert (and tsvs's own)", () => {
    assert.equal(check(KA_ADVERT), null);
    assert.equal(check(TSVS_ADVERT), null);
  });

  const table: [string, Uint8Array, string, ReturnType<typeof cfg6>?][] = [
    ["another VRID", KA_ADVERT, "vrid", cfg6({ vrid: 62 })],
    [
      "a length that is not 8 + 16·naddr",
      resum(
        mutate((b) => {
          b[57] = 3;
        }),
      ),
      "length",
    ],
    [
      "hop limit 254 (a router forwarded it)",
      mutate((b) => {
        b[21] = 254;
      }),
      "ttl",
    ],
    [
      "version 2",
      resum(
        mutate((b) => {
          b[54] = 0x21;
        }),
      ),
      "version",
    ],
    [
      "type 2",
      resum(
        mutate((b) => {
          b[54] = 0x32;
        }),
      ),
      "type",
    ],
    [
      "a corrupt checksum",
      mutate((b) => {
        b[61] ^= 1;
      }),
      "checksum",
    ],
    [
      "a checksum computed without the pseudo-header (v3_checksum_as_v2 does not apply to IPv6)",
      mutate((b) => {
        b[60] = 0;
        b[61] = 0;
        const c = inetChecksum(b.subarray(54));
        b[60] = c >>> 8;
        b[61] = c & 255;
      }),
      "checksum",
      cfg6({ v3ChecksumAsV2: true }),
    ],
    [
      "a multicast advert on a unicast instance",
      KA_ADVERT,
      "dest",
      cfg6({ unicastPeers6: ["fe80::5054:ff:feaa:1"] }),
    ],
  ];
  for (const [what, frame, reason, cfg] of table)
    it(`drops ${what}: ${reason}`, () => {
      assert.equal(check(frame, cfg), reason);
    });

  it("a unicast instance takes any hop limit, to its own address", () => {
    const cfg = cfg6({ unicastPeers6: ["fe80::5054:ff:feaa:1"] });
    const b = new Uint8Array(200);
    const me = a6("fe80::5054:ff:febb:2");
    const n = writeAdvertFrame6(b, 0, {
      srcMac: SRC_MAC,
      dstMac: mac("52:54:00:bb:00:02"),
      src: SRC,
      dst: me,
      vrid: 61,
      advertIntMs: 1000,
      addrs: VIPS,
      priority: 150,
    });
    b[21] = 64;
    const p = parseVrrpFrame(b, n);
    assert.ok(p !== null);
    assert.equal(checkAdvert(cfg, b, p), null);
    assert.equal(checkAdvert(cfg6(), b, p), "ttl");
  });
});

describe("the VRRP socket filter (io/vrrp-filter.ts)", () => {
  const na = (): Uint8Array => {
    const b = new Uint8Array(86);
    writeUnsolicitedNa(b, 0, SRC_MAC, a6("fe80::61"), 0, false);
    return b;
  };
  const ns = (): Uint8Array => {
    const b = new Uint8Array(86);
    writeNsFrame(b, 0, SRC_MAC, SRC, a6("fd00:7::12"));
    return b;
  };
  const cases: [string, Uint8Array][] = [
    ["v4 advert", ipv4Frame("10.0.0.1", "224.0.0.18", 112)],
    ["v4 udp", ipv4Frame("10.0.0.1", "224.0.0.18", 17)],
    ["arp", arpFrame("10.0.0.1")],
    ["v6 advert", KA_ADVERT],
    ["v6 na", na()],
    ["v6 ns", ns()],
  ];
  const specs: [string, Parameters<typeof compileVrrpFilter>[0], string[]][] = [
    ["IPv4 multicast", { ipv4: true, ipv6: false, arp: false, na: false }, ["v4 advert"]],
    ["IPv4 unicast", { ipv4: true, ipv6: false, arp: true, na: false }, ["v4 advert", "arp"]],
    ["IPv6 multicast", { ipv4: false, ipv6: true, arp: false, na: false }, ["v6 advert"]],
    ["IPv6 unicast", { ipv4: false, ipv6: true, arp: false, na: true }, ["v6 advert", "v6 na"]],
    ["both", { ipv4: true, ipv6: true, arp: true, na: true }, ["v4 advert", "arp", "v6 advert", "v6 na"]],
  ];
  for (const [name, spec, pass] of specs)
    it(`${name}: passes ${pass.join(", ")} and nothing else`, () => {
      const prog = compileVrrpFilter(spec);
      for (const [what, f] of cases)
        assert.equal(runBpf(prog, f) > 0, pass.includes(what), `${what} under ${name}`);
    });
});
