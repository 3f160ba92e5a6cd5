// IPv6 addresses in src/core/addr.ts: text in as inet_pton takes it, text out as glibc's inet_ntop
// prints it (the tables below were printed by glibc 2.36's inet_pton/inet_ntop), the kernel's %pI6,
// prefix masks and the four-word key form; property tests against node's own parsers (net.isIPv6,
// the WHATWG URL host serialiser) where they agree with glibc.

import assert from "node:assert/strict";
import { isIPv6 } from "node:net";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  formatIPv6,
  formatIPv6Full,
  IPV6_ALEN,
  ipv6ApplyPrefix,
  ipv6FromWords,
  ipv6MaskToPrefix,
  ipv6MaskWords,
  ipv6PrefixMask,
  ipv6ToWords,
  parseIPv6,
  v6,
} from "../../src/core/addr.js";

const RUNS = { numRuns: 1000 };

function hex(b: Uint8Array | null): string | null {
  return b === null ? null : Buffer.from(b).toString("hex");
}
function bytes(h: string): Uint8Array {
  return new Uint8Array(Buffer.from(h, "hex"));
}
function big(b: Uint8Array, off = 0): bigint {
  let v = 0n;
  for (let i = 0; i < 16; i++) v = (v << 8n) | BigInt(b[off + i]);
  return v;
}
function maskBig(prefix: number): bigint {
  return prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(128 - prefix);
}

/** Text → bytes as glibc's inet_pton(AF_INET6) answers (null: it returns 0). */
const PARSE: ReadonlyArray<readonly [string, string | null]> = [
  ["::", "00000000000000000000000000000000"],
  ["::1", "00000000000000000000000000000001"],
  ["1::", "00010000000000000000000000000000"],
  ["1:2:3:4:5:6:7:8", "00010002000300040005000600070008"],
  ["1:2:3:4:5:6:7::", "00010002000300040005000600070000"],
  ["::2:3:4:5:6:7:8", "00000002000300040005000600070008"],
  ["1::8", "00010000000000000000000000000008"],
  ["1::2:3:4:5:6:7", "00010000000200030004000500060007"],
  ["1:2:3:4:5:6:1.2.3.4", "00010002000300040005000601020304"],
  ["::1.2.3.4", "00000000000000000000000001020304"],
  ["::ffff:1.2.3.4", "00000000000000000000ffff01020304"],
  ["::FFFF:10.0.0.1", "00000000000000000000ffff0a000001"],
  ["1::1.2.3.4", "00010000000000000000000001020304"],
  ["1:2:3:4:5::1.2.3.4", "00010002000300040005000001020304"],
  ["::0:1.2.3.4", "00000000000000000000000001020304"],
  ["::0.0.0.0", "00000000000000000000000000000000"],
  ["0001::", "00010000000000000000000000000000"],
  ["FFFF::", "ffff0000000000000000000000000000"],
  ["2001:DB8::aBcD", "20010db800000000000000000000abcd"],
  ["ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "ffffffffffffffffffffffffffffffff"],
  ["1:2:3:4:5:6:7:1.2.3.4", null],
  ["::01.2.3.4", null],
  ["::1.2.3.04", null],
  ["::1.2.3", null],
  ["::1.2.3.4.5", null],
  ["::256.1.1.1", null],
  ["::1.2.3.4:1", null],
  ["::ffff:1.2.3.4:1", null],
  ["::a.2.3.4", null],
  ["12345::", null],
  ["01234::", null],
  ["1:::2", null],
  ["1::2::3", null],
  [":1::", null],
  [":", null],
  ["1:", null],
  ["1::2:", null],
  ["::1:", null],
  ["1:2:3:4:5:6:7:8:9", null],
  ["1:2:3:4:5:6:7", null],
  ["1:2:3:4:5:6:7:8::", null],
  ["::1:2:3:4:5:6:7:8", null],
  ["1:2:3:4::5:6:7:8", null],
  ["fe80::1%eth0", null],
  ["1.2.3.4", null],
  ["", null],
  ["[::1]", null],
  [" ::1", null],
  ["::1 ", null],
  ["g::", null],
  ["ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555", null],
];

/** Bytes → glibc 2.36 inet_ntop(AF_INET6). */
const FORMAT: ReadonlyArray<readonly [string, string]> = [
  ["00000000000000000000000000000000", "::"],
  ["00000000000000000000000000000001", "::1"],
  ["00000000000000000000000001020304", "::1.2.3.4"],
  ["00000000000000000000ffff01020304", "::ffff:1.2.3.4"],
  ["00000000000000000000ffff00000000", "::ffff:0.0.0.0"],
  ["0000000000000000000000000000ffff", "::ffff"],
  ["00000000000000000000000000010001", "::0.1.0.1"],
  ["00000000000000000000000000000100", "::100"],
  ["00000000000000000000fffe01020304", "::fffe:102:304"],
  ["00000000000000000001ffff01020304", "::1:ffff:102:304"],
  ["000000000000ffff0102030400000000", "::ffff:102:304:0:0"],
  ["20010db8000000000000000000000080", "2001:db8::80"],
  ["20010db8000000010000000000000001", "2001:db8:0:1::1"],
  ["20010db8000000000001000000000001", "2001:db8::1:0:0:1"],
  ["20010db8000000000000000100000000", "2001:db8::1:0:0"],
  ["00010000000000000000000000000000", "1::"],
  ["fe800000000000000000000000000001", "fe80::1"],
  ["ff020000000000000000000000000001", "ff02::1"],
  ["ff0200000000000000000001ff00abcd", "ff02::1:ff00:abcd"],
  ["20010db8000100020003000400050006", "2001:db8:1:2:3:4:5:6"],
  ["20010db800000db8000000000000000a", "2001:db8:0:db8::a"],
  ["00010000000100000000000100000001", "1:0:1::1:0:1"],
  ["00000001000000000000000000000000", "0:1::"],
  ["0000000000000000000000000a000001", "::10.0.0.1"],
  ["0000000000000000000000ff0a000001", "::ff:a00:1"],
  ["1111222233334444555566667777888f", "1111:2222:3333:4444:5555:6666:7777:888f"],
  ["0000000000000000ffff000001020304", "::ffff:0:102:304"],
  ["000000000000000000000000ffff0000", "::255.255.0.0"],
  ["00010002000300040005000600070000", "1:2:3:4:5:6:7:0"],
];

describe("parseIPv6 (inet_pton)", () => {
  for (const [text, want] of PARSE) {
    it(`${JSON.stringify(text)} → ${want ?? "rejected"}`, () => {
      assert.equal(hex(parseIPv6(text)), want);
    });
  }
});

describe("formatIPv6 (glibc inet_ntop, as ipvsadm -n prints)", () => {
  for (const [h, want] of FORMAT) {
    it(`${h} → ${want}`, () => {
      assert.equal(formatIPv6(bytes(h)), want);
      assert.equal(hex(parseIPv6(want)), h);
    });
  }
  it("reads at an offset", () => {
    const b = new Uint8Array(20);
    b.set(bytes("20010db8000000000000000000000080"), 3);
    assert.equal(formatIPv6(b, 3), "2001:db8::80");
  });
});

describe("formatIPv6Full (the kernel's %pI6, /proc/net/ip_vs)", () => {
  const rows: ReadonlyArray<readonly [string, string]> = [
    ["2001:db8::80", "2001:0db8:0000:0000:0000:0000:0000:0080"],
    ["::", "0000:0000:0000:0000:0000:0000:0000:0000"],
    ["::ffff:1.2.3.4", "0000:0000:0000:0000:0000:ffff:0102:0304"],
    ["FE80::ABCD", "fe80:0000:0000:0000:0000:0000:0000:abcd"],
  ];
  for (const [text, want] of rows) {
    it(`${text} → ${want}`, () => {
      const a = parseIPv6(text);
      assert.ok(a);
      assert.equal(formatIPv6Full(a), want);
      assert.equal(hex(parseIPv6(want)), hex(a));
    });
  }
});

const addrBytes = fc.uint8Array({ minLength: 16, maxLength: 16 });
/** Addresses with long zero runs, where the compression rules matter. */
const sparseAddr = fc
  .array(fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })), {
    minLength: 8,
    maxLength: 8,
  })
  .map((words) => {
    const b = new Uint8Array(16);
    words.forEach((w, i) => {
      b[2 * i] = w >>> 8;
      b[2 * i + 1] = w & 255;
    });
    return b;
  });
const anyAddr = fc.oneof(addrBytes, sparseAddr);

describe("IPv6 text properties", () => {
  it("parse(format(a)) = a, and parse(full(a)) = a", () => {
    fc.assert(
      fc.property(anyAddr, (a) => {
        assert.equal(hex(parseIPv6(formatIPv6(a))), hex(a));
        assert.equal(hex(parseIPv6(formatIPv6Full(a))), hex(a));
      }),
      RUNS,
    );
  });

  it("format agrees with node's URL host serialiser (RFC 5952) except for the dotted-quad forms", () => {
    fc.assert(
      fc.property(anyAddr, (a) => {
        const s = formatIPv6(a);
        const host = new URL(`http://[${s}]/`).hostname;
        if (s.includes(".")) {
          // WHATWG URLs never print a dotted quad; glibc does for v4-mapped and v4-compatible.
          assert.equal(hex(parseIPv6(host.slice(1, -1))), hex(a));
        } else {
          assert.equal(host, `[${s}]`);
        }
        assert.ok(isIPv6(s));
      }),
      RUNS,
    );
  });

  it("parseIPv6 accepts exactly what net.isIPv6 accepts, zone ids aside", () => {
    const piece = fc.oneof(
      fc.constantFrom(
        ":",
        "::",
        ".",
        "0",
        "1",
        "f",
        "F",
        "ffff",
        "0000",
        "12345",
        "255",
        "256",
        "01",
        "1.2.3.4",
        "g",
      ),
      fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16)),
    );
    const text = fc.array(piece, { maxLength: 12 }).map((p) => p.join(""));
    const valid = fc.oneof(
      anyAddr.map((a) => formatIPv6(a)),
      anyAddr.map((a) => formatIPv6Full(a)),
    );
    fc.assert(
      fc.property(fc.oneof(text, valid), (s) => {
        assert.equal(parseIPv6(s) !== null, isIPv6(s), s);
      }),
      { numRuns: 5000 },
    );
  });
});

describe("prefix masks on the 16-byte form", () => {
  it("ipv6PrefixMask(p) has p leading ones for every p in 0..128, and maskToPrefix inverts it", () => {
    const m = new Uint8Array(16);
    for (let p = 0; p <= 128; p++) {
      ipv6PrefixMask(p, m);
      assert.equal(big(m), maskBig(p), `prefix ${p}`);
      assert.equal(ipv6MaskToPrefix(m), p);
    }
  });

  it("a mask with a hole has no prefix length", () => {
    for (const h of [
      "ffffffff00000000000000000000ff00",
      "fffffffffffffffffffffffffffffffe".replace(/e$/, "d"),
      "7f000000000000000000000000000000",
    ]) {
      assert.equal(ipv6MaskToPrefix(bytes(h)), -1, h);
    }
  });

  it("ipv6ApplyPrefix = address & mask (ipv6_addr_prefix), at any offsets", () => {
    fc.assert(
      fc.property(anyAddr, fc.integer({ min: 0, max: 128 }), (a, p) => {
        const src = new Uint8Array(19);
        src.set(a, 3);
        const dst = new Uint8Array(21);
        ipv6ApplyPrefix(src, 3, p, dst, 5);
        assert.equal(big(dst, 5), big(a) & maskBig(p));
      }),
      RUNS,
    );
  });
});

describe("the four-word key form", () => {
  it("word k is bytes 4k..4k+3 big-endian, like an IPv4 address in the core", () => {
    const w = new Uint32Array(6);
    const a = parseIPv6("::ffff:192.168.1.2");
    assert.ok(a);
    ipv6ToWords(a, 0, w, 2);
    assert.deepEqual([...w], [0, 0, 0, 0, 0xffff, 0xc0a80102]);
    const b = parseIPv6("ffff:fffe:8000:1::");
    assert.ok(b);
    ipv6ToWords(b, 0, w, 0);
    assert.deepEqual([...w.subarray(0, 4)], [0xfffffffe, 0x80000001, 0, 0]);
  });

  it("bytes → words → bytes is the identity; masking words = masking bytes (Uint32Array or Int32Array)", () => {
    fc.assert(
      fc.property(anyAddr, fc.integer({ min: 0, max: 128 }), fc.boolean(), (a, p, signed) => {
        const w = signed ? new Int32Array(5) : new Uint32Array(5);
        ipv6ToWords(a, 0, w, 1);
        const back = new Uint8Array(18);
        ipv6FromWords(w, 1, back, 2);
        assert.equal(hex(back.subarray(2)), hex(a));
        ipv6MaskWords(w, 1, p);
        const masked = new Uint8Array(16);
        ipv6ApplyPrefix(a, 0, p, masked, 0);
        ipv6FromWords(w, 1, back, 2);
        assert.equal(hex(back.subarray(2)), hex(masked));
      }),
      RUNS,
    );
  });
});

describe("v6()", () => {
  it("holds a copy of the 16 bytes, family 6", () => {
    const b = new Uint8Array(20);
    b.set(bytes("20010db8000000000000000000000080"), 4);
    const a = v6(b, 4);
    b.fill(0);
    assert.equal(a.af, 6);
    assert.equal(a.v4, 0);
    assert.equal(a.v6?.length, IPV6_ALEN);
    assert.equal(formatIPv6(a.v6 as Uint8Array), "2001:db8::80");
  });
});
