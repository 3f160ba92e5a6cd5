import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DNS_QTYPES, decodeMessage, encodeQuery } from "../../src/health/dns.js";

const bytes = (...parts: (number | string)[]) =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "number" ? [p] : [...Buffer.from(p, "latin1")])));

describe("DNS codec", () => {
  it("encodes a recursive query with one question", () => {
    assert.deepEqual(
      encodeQuery(0x1234, "www.example.net", DNS_QTYPES.A),
      bytes(0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, "www", 7, "example", 3, "net", 0, 0, 1, 0, 1),
    );
  });

  it("encodes the root name as a single zero byte", () => {
    assert.deepEqual(encodeQuery(1, ".", DNS_QTYPES.SOA)?.subarray(12), bytes(0, 0, 6, 0, 1));
  });

  it("refuses labels longer than 63 bytes", () => {
    assert.equal(encodeQuery(1, `${"a".repeat(64)}.net`, 1), null);
  });

  it("decodes answers with compressed names", () => {
    const m = decodeMessage(
      bytes(
        0xab,
        0xcd,
        0x81,
        0x80,
        0,
        1,
        0,
        2,
        0,
        0,
        0,
        0,
        3,
        "www",
        7,
        "example",
        3,
        "net",
        0,
        0,
        1,
        0,
        1,
        // www.example.net CNAME web.example.net (name: pointer to 12; rdata: "web" + pointer to 16)
        0xc0,
        12,
        0,
        5,
        0,
        1,
        0,
        0,
        1,
        0,
        0,
        6,
        3,
        "web",
        0xc0,
        16,
        // web.example.net A 192.0.2.9 (name: pointer to the CNAME's rdata at 45)
        0xc0,
        45,
        0,
        1,
        0,
        1,
        0,
        0,
        0,
        30,
        0,
        4,
        192,
        0,
        2,
        9,
      ),
    );
    assert.ok(m !== null);
    assert.equal(m.id, 0xabcd);
    assert.equal(m.qr, true);
    assert.equal(m.rcode, 0);
    assert.deepEqual(m.questions, [{ name: "www.example.net", type: 1, class: 1 }]);
    assert.deepEqual(
      m.answers.map((a) => [a.name, a.type, a.ttl, a.address]),
      [
        ["www.example.net", 5, 256, ""],
        ["web.example.net", 1, 30, "192.0.2.9"],
      ],
    );
  });

  for (const [name, msg] of [
    ["a short header", bytes(0, 1, 0x81)],
    ["a truncated question", bytes(0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 3, "ww")],
    [
      "a truncated answer",
      bytes(0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2),
    ],
    ["a pointer loop", bytes(0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1)],
    ["a reserved label type", bytes(0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 1, 0, 1)],
  ] as const) {
    it(`returns null for ${name}`, () => assert.equal(decodeMessage(msg), null));
  }
});
