// The PROXY protocol codec (src/core/packet/proxy-proto.ts) against HAProxy's proxy-protocol.txt
// and DPVS's names: v1 lines with the addresses as glibc's inet_ntop prints them (addr.ts
// formatIPv6, tested against inet_ntop's rules elsewhere), the v2 bytes written out by hand here,
// keepalived's check headers, and the sequence mapping of the real server's numbers.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatIPv6, ipv6TextWords } from "../../src/core/addr.js";
import {
  PP_DISABLE,
  PP_F_INSECURE,
  PP_V1,
  PP_V2,
  PP1_CHECK,
  PP1_MAX_LEN,
  PP2_CHECK,
  pp1WriteTcp4,
  pp1WriteTcp6,
  pp2WriteTcp4,
  pp2WriteTcp6,
  ppName,
  ppParse,
  ppParsed,
  ppRefusal,
  ppSeqBack,
  ppValue,
  ppWriteParsed,
} from "../../src/core/packet/proxy-proto.js";
import { a6 } from "../support/packet6.js";

const text = (b: Uint8Array, n: number): string => new TextDecoder().decode(b.subarray(0, n));
const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

describe("PROXY protocol codec", () => {
  it("names: DPVS's proxy_protocol_type / proxy_protocol_str", () => {
    assert.deepEqual(["disable", "v1", "V2", "v1-insecure", "v2-INSECURE", "v3", ""].map(ppValue), [
      PP_DISABLE,
      PP_V1,
      PP_V2,
      PP_V1 | PP_F_INSECURE,
      PP_V2 | PP_F_INSECURE,
      -1,
      -1,
    ]);
    assert.deepEqual([0, 1, 2, 0x11, 0x12].map(ppName), [
      "disable",
      "v1",
      "v2",
      "v1-insecure",
      "v2-insecure",
    ]);
    assert.equal(ppRefusal("v2", 6, 0), null);
    assert.equal(ppRefusal("disable", 17, 0), null);
    assert.equal(ppRefusal("v1", 0, 5), null, "a fwmark service: its TCP connections get it");
    assert.match(ppRefusal("v1", 17, 0) ?? "", /TCP services/);
    assert.equal(ppRefusal("v1-insecure", 6, 0), null);
    assert.match(ppRefusal("v2-insecure", 17, 0) ?? "", /TCP services/);
  });

  it("v1 TCP4: the line DPVS's snprintf writes", () => {
    const b = new Uint8Array(PP1_MAX_LEN);
    const n = pp1WriteTcp4(b, 0, 0xcb00710a, 40000, 0xc6120064, 80);
    assert.equal(text(b, n), "PROXY TCP4 203.0.113.10 198.18.0.100 40000 80\r\n");
    const m = pp1WriteTcp4(b, 0, 0xffffffff, 65535, 0, 0);
    assert.equal(text(b, m), "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n");
  });

  it("v1 TCP6: inet_ntop's text of both addresses; the longest line fits PP1_MAX_LEN", () => {
    const addrs = [
      "2001:db8::1",
      "::",
      "::1",
      "::ffff:198.18.0.1",
      "::198.18.0.1",
      "fe80::1:0:0:1",
      "1:0:0:1:0:0:0:1",
      "2001:db8:0:1:1:1:1:1",
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ];
    const b = new Uint8Array(PP1_MAX_LEN);
    for (const s of addrs) {
      const w = new Int32Array(8);
      const ws = ipv6TextWords(s);
      assert.ok(ws !== null, s);
      w.set(ws, 0);
      w.set(ipv6TextWords("2001:db8::100") ?? [], 4);
      const n = pp1WriteTcp6(b, 0, w, 0, 1, 4, 65535);
      assert.equal(text(b, n), `PROXY TCP6 ${inetNtop(s)} 2001:db8::100 1 65535\r\n`);
    }
    const w = new Int32Array(8).fill(-1);
    // "PROXY TCP6 " + 39 + " " + 39 + " 65535 65535\r\n": 104, within the spec's 107 (its UNKNOWN worst case).
    const n = pp1WriteTcp6(b, 0, w, 0, 65535, 4, 65535);
    assert.equal(n, 104);
    assert.ok(n <= PP1_MAX_LEN);
  });

  it("v2: signature, 0x21 (version 2, PROXY), AF_INET/AF_INET6 over STREAM, addresses, ports", () => {
    const b = new Uint8Array(64);
    assert.equal(pp2WriteTcp4(b, 0, 0xcb00710a, 40000, 0xc6120064, 80), 28);
    assert.deepEqual(
      [...b.subarray(0, 28)],
      [...SIG, 0x21, 0x11, 0, 12, 203, 0, 113, 10, 198, 18, 0, 100, 0x9c, 0x40, 0, 80],
    );
    const w = new Int32Array(8);
    w.set(ipv6TextWords("2001:db8:ff::10") ?? [], 0);
    w.set(ipv6TextWords("2001:db8::100") ?? [], 4);
    assert.equal(pp2WriteTcp6(b, 0, w, 0, 40000, 4, 443), 52);
    assert.deepEqual(
      [...b.subarray(0, 52)],
      [...SIG, 0x21, 0x21, 0, 36, ...a6("2001:db8:ff::10"), ...a6("2001:db8::100"), 0x9c, 0x40, 0x01, 0xbb],
    );
  });

  it("keepalived's check headers (check_data.h PROXY_PROTOCOL_CHECK_V1/_V2)", () => {
    assert.equal(text(PP1_CHECK, PP1_CHECK.length), "PROXY UNKNOWN\r\n");
    assert.deepEqual([...PP2_CHECK], [...SIG, 0x20, 0x00, 0x00, 0x00]);
  });

  it("the real server's numbers back into the client's: past the header by L, inside it clamped, before it as is", () => {
    const isn1 = 0xfffffff0 | 0;
    const L = 28;
    const at = (d: number): number => (isn1 + d) >>> 0;
    const back = (d: number, done = false): number => ppSeqBack(at(d), isn1, L, 0, done) >>> 0;
    assert.equal(back(-1), at(-1), "before the first byte");
    assert.equal(back(0), at(0));
    assert.equal(back(1), at(0), "inside the header");
    assert.equal(back(L), at(0), "the header's end");
    assert.equal(back(L + 1), at(1), "the client's second byte");
    assert.equal(back(L + 100), at(100), "across the wrap");
    // Once done, no comparison: 3 GiB later the numbers still come back by L.
    assert.equal(back(L + 3 * 2 ** 30, true), at(3 * 2 ** 30));
  });
});

/** glibc inet_ntop's text for the test's addresses (the embedded-IPv4 forms written out). */
function inetNtop(s: string): string {
  if (s === "::ffff:198.18.0.1" || s === "::198.18.0.1") return s;
  return formatIPv6(a6(s));
}

describe("a client's own PROXY header (ppParse, ppWriteParsed)", () => {
  const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
  const parse = (b: Uint8Array): number => ppParse(b, 0, b.length);
  it("v1 TCP4 / TCP6 / UNKNOWN: the line's length and what it says", () => {
    const l4 = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    assert.equal(parse(enc(`${l4}GET /`)), l4.length);
    assert.deepEqual(
      [ppParsed.ver, ppParsed.fam, ppParsed.w[0] >>> 0, ppParsed.w[4] >>> 0, ppParsed.sport, ppParsed.dport],
      [1, 4, 0xc0000201, 0xc6336402, 56324, 443],
    );
    const l6 = "PROXY TCP6 2001:db8::1 ::ffff:198.51.100.2 1 65535\r\n";
    assert.equal(parse(enc(l6)), l6.length);
    assert.equal(ppParsed.fam, 6);
    assert.deepEqual([...ppParsed.w.subarray(0, 4)], [...(ipv6TextWords("2001:db8::1") ?? [])]);
    assert.deepEqual([...ppParsed.w.subarray(4, 8)], [...(ipv6TextWords("::ffff:198.51.100.2") ?? [])]);
    assert.equal(parse(enc("PROXY UNKNOWN ffff:f...f\r\nx")), 26);
    assert.equal(ppParsed.fam, 0);
  });

  it("not a header: 0; cut short or malformed: -1", () => {
    assert.equal(parse(enc("GET / HTTP/1.1\r\n")), 0);
    assert.equal(parse(enc("PROX")), 0);
    assert.equal(parse(enc("PROXY TCP4 192.0.2.1 198.51.100.2 1 2")), -1, "no CRLF yet");
    assert.equal(parse(enc("PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n")), -1);
    assert.equal(parse(enc("PROXY TCP4 192.0.2.1.5 198.51.100.2 1 2\r\n")), -1);
    assert.equal(parse(enc("PROXY TCP6 2001:db8:::1 ::1 1 2\r\n")), -1);
    assert.equal(parse(enc("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n")), -1);
    assert.equal(parse(enc("PROXY TCP4 192.0.2.1 198.51.100.2 1 65536\r\n")), -1);
    assert.equal(parse(enc(`PROXY ${"x".repeat(120)}\r\n`)), -1, "longer than 107 bytes");
    assert.equal(parse(Uint8Array.of(...SIG, 0x21, 0x11, 0, 12, 1, 2, 3)), -1, "v2 cut short");
    assert.equal(parse(Uint8Array.of(...SIG, 0x31, 0x11, 0, 0)), -1, "version 3");
  });

  it("v2 TCP4 with TLVs (their length counted), TCP6, LOCAL", () => {
    const h = Uint8Array.of(
      ...SIG,
      0x21,
      0x11,
      0,
      12 + 7,
      192,
      0,
      2,
      1,
      198,
      51,
      100,
      2,
      0xdc,
      0x04,
      1,
      0xbb,
    );
    const tlv = Uint8Array.of(0x04, 0, 4, 1, 2, 3, 4);
    assert.equal(parse(Uint8Array.of(...h, ...tlv, 0x47)), 16 + 19);
    assert.deepEqual([ppParsed.ver, ppParsed.fam, ppParsed.sport, ppParsed.dport], [2, 4, 0xdc04, 443]);
    const b = new Uint8Array(PP1_MAX_LEN);
    assert.equal(text(b, ppWriteParsed(b, 0, PP_V1)), "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    const h6 = Uint8Array.of(
      ...SIG,
      0x21,
      0x21,
      0,
      36,
      ...a6("2001:db8::1"),
      ...a6("2001:db8::2"),
      0,
      1,
      0,
      2,
    );
    assert.equal(parse(h6), 52);
    assert.equal(text(b, ppWriteParsed(b, 0, PP_V1)), "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n");
    assert.equal(parse(Uint8Array.of(...SIG, 0x20, 0x00, 0, 0)), 16);
    assert.equal(ppParsed.fam, 0);
    assert.equal(text(b, ppWriteParsed(b, 0, PP_V1)), "PROXY UNKNOWN\r\n");
    parse(enc("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"));
    assert.equal(ppWriteParsed(b, 0, PP_V2), 28);
    assert.deepEqual(
      [...b.subarray(0, 28)],
      [...SIG, 0x21, 0x11, 0, 12, 192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 1, 0xbb],
    );
  });
});
