// Property tests for the packet codecs (fast-check): the parser never throws, rewrites keep
// checksums that a full recomputation accepts, option insertion keeps the payload, IPIP and ICMP
// error construction round-trip through the parser.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { csumAdd, csumFold } from "../../src/core/packet/csum.js";
import { Flow } from "../../src/core/packet/flow.js";
import { buildIcmpError, icmpIsError } from "../../src/core/packet/icmp.js";
import { ipipEncap } from "../../src/core/packet/ipip.js";
import { ipv4DecTtl, ipv4SetDaddr, ipv4SetSaddr } from "../../src/core/packet/ipv4.js";
import { l4SetDport, l4SetSport } from "../../src/core/packet/l4.js";
import { PARSE_OK, PARSE_RESULT_NAMES, parseFrame } from "../../src/core/packet/parse.js";
import { tcpInsertOption } from "../../src/core/packet/tcp.js";

import {
  be16,
  be32,
  ETH_P_IP,
  ethTaggedFrame,
  get16,
  get32,
  icmpMessage,
  ipv4Datagram,
  ipv4HeaderOk,
  l4ChecksumOk,
  mac,
  PROTO_ICMP,
  PROTO_TCP,
  PROTO_UDP,
  tcpSegment,
  udpDatagram,
} from "../support/packet-builder.js";

const RUNS = { numRuns: 500 };

const DMAC = mac("02:00:00:00:00:0a");
const SMAC = mac("02:00:00:00:00:0b");
function eth(payload: Uint8Array, tags: ReadonlyArray<readonly [number, number]> = [], pad = 0): Uint8Array {
  return ethTaggedFrame(DMAC, SMAC, tags, ETH_P_IP, payload, pad);
}

const u8 = fc.integer({ min: 0, max: 255 });
const port = fc.integer({ min: 0, max: 65535 });
const addr = fc.integer({ min: 0, max: 0xffffffff });
const bytes = (max: number) => fc.array(u8, { maxLength: max });
/** TCP options made of whole options (NOP, MSS, SACK-permitted, timestamps), padded to 4 bytes. */
const tcpOptions = fc
  .array(
    fc.oneof(
      fc.constant([1]),
      port.map((m) => [2, 4, ...be16(m)]),
      fc.constant([4, 2]),
      fc.tuple(addr, addr).map(([a, b]) => [8, 10, ...be32(a), ...be32(b)]),
    ),
    { maxLength: 5 },
  )
  .map((parts) => {
    const o = parts.flat().slice(0, 40);
    // A cut option would be malformed: pad with NOPs up to a whole option boundary instead.
    let n = 0;
    let ok = 0;
    while (n < o.length) {
      const len = o[n] === 1 ? 1 : o[n + 1];
      if (n + len > o.length) break;
      n += len;
      ok = n;
    }
    const r = o.slice(0, ok);
    while (r.length % 4 !== 0) r.push(1);
    return r;
  });
const ipOptions = fc.integer({ min: 0, max: 10 }).map((w) => new Array(w * 4).fill(1));

interface L4Frame {
  frame: Uint8Array;
  proto: number;
}
const tcpFrameArb = fc
  .record({
    saddr: addr,
    daddr: addr,
    sport: port,
    dport: port,
    seq: addr,
    ack: addr,
    flags: u8,
    ttl: u8,
    tos: u8,
    id: port,
    options: tcpOptions,
    ipOpts: ipOptions,
    payload: bytes(80),
    vlan: fc.boolean(),
    pad: fc.integer({ min: 0, max: 10 }),
    mf: fc.boolean(),
  })
  .map(
    (r): L4Frame => ({
      proto: PROTO_TCP,
      frame: eth(
        ipv4Datagram({
          proto: PROTO_TCP,
          src: r.saddr,
          dst: r.daddr,
          ttl: r.ttl,
          tos: r.tos,
          id: r.id,
          options: Uint8Array.from(r.ipOpts),
          mf: r.mf,
          df: !r.mf,
          payload: tcpSegment(r.saddr, r.daddr, {
            ...r,
            options: Uint8Array.from(r.options),
            payload: Uint8Array.from(r.payload),
          }),
        }),
        r.vlan ? [[0x8100, 5]] : [],
        r.pad,
      ),
    }),
  );
const udpFrameArb = fc
  .record({
    saddr: addr,
    daddr: addr,
    sport: port,
    dport: port,
    ttl: u8,
    ipOpts: ipOptions,
    payload: bytes(80),
    nocsum: fc.boolean(),
    vlan: fc.boolean(),
  })
  .map(
    (r): L4Frame => ({
      proto: PROTO_UDP,
      frame: eth(
        ipv4Datagram({
          proto: PROTO_UDP,
          src: r.saddr,
          dst: r.daddr,
          ttl: r.ttl,
          options: Uint8Array.from(r.ipOpts),
          df: true,
          payload: udpDatagram(r.saddr, r.daddr, {
            sport: r.sport,
            dport: r.dport,
            payload: Uint8Array.from(r.payload),
            noChecksum: r.nocsum,
          }),
        }),
        r.vlan ? [[0x88a8, 7]] : [],
      ),
    }),
  );
const icmpFrameArb = fc
  .record({ saddr: addr, daddr: addr, type: u8, code: u8, rest: addr, data: bytes(80) })
  .map(
    (r): L4Frame => ({
      proto: PROTO_ICMP,
      frame: eth(
        ipv4Datagram({
          proto: PROTO_ICMP,
          src: r.saddr,
          dst: r.daddr,
          df: true,
          payload: icmpMessage({ type: r.type, code: r.code, rest: r.rest, data: Uint8Array.from(r.data) }),
        }),
      ),
    }),
  );
const anyValidFrame = fc.oneof(tcpFrameArb, udpFrameArb, icmpFrameArb);

function codeOf(buf: Uint8Array, len: number): number {
  const f = new Flow();
  return parseFrame(buf, len, f, 1);
}
function isKnownCode(r: number): boolean {
  return Number.isInteger(r) && r >= 0 && r < PARSE_RESULT_NAMES.length;
}

describe("parseFrame (properties)", () => {
  it("never throws on random bytes and returns a named code", () => {
    const ethTypes = fc.constantFrom(0x0800, 0x0806, 0x8100, 0x88a8, 0x86dd, 0x0042);
    fc.assert(
      fc.property(
        bytes(200),
        ethTypes,
        fc.boolean(),
        fc.integer({ min: -10, max: 300 }),
        (b, t, force, len) => {
          const buf = Uint8Array.from(b);
          if (force && buf.length >= 14) {
            buf[12] = t >>> 8;
            buf[13] = t & 255;
            if (t === 0x0800 && buf.length > 14) buf[14] = 0x40 | (buf[14] & 15);
          }
          assert.ok(isKnownCode(codeOf(buf, buf.length)));
          assert.ok(isKnownCode(codeOf(buf, len)));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("never throws on any truncation or single-byte corruption of valid frames", () => {
    fc.assert(
      fc.property(anyValidFrame, fc.nat(), u8, ({ frame }, at, v) => {
        assert.equal(codeOf(frame, frame.length), PARSE_OK);
        for (let n = 0; n <= frame.length; n++) {
          assert.ok(isKnownCode(codeOf(frame, n)));
          assert.ok(isKnownCode(codeOf(frame.slice(0, n), n)));
        }
        const bad = frame.slice();
        bad[at % bad.length] = v;
        assert.ok(isKnownCode(codeOf(bad, bad.length)));
      }),
      RUNS,
    );
  });

  it("parses valid ICMP errors quoting random datagrams without throwing", () => {
    fc.assert(
      fc.property(anyValidFrame, fc.integer({ min: 0, max: 600 }), u8, ({ frame }, cut, type) => {
        const o = new Flow();
        parseFrame(frame, frame.length, o, 0);
        const quoted = frame.slice(o.l3Off, Math.min(o.l3Off + cut, o.l3End));
        const err = eth(
          ipv4Datagram({
            proto: PROTO_ICMP,
            src: 1,
            dst: 2,
            df: true,
            payload: icmpMessage({ type, code: 0, rest: 0, data: quoted }),
          }),
        );
        const f = new Flow();
        assert.equal(parseFrame(err, err.length, f, 0), PARSE_OK);
        if (f.hasInner) assert.ok(icmpIsError(type));
        const ihl = (frame[o.l3Off] & 15) * 4;
        assert.equal(f.hasInner, icmpIsError(type) && quoted.length >= ihl);
        const ports = o.proto !== 1 && !(o.fragment && !o.firstFragment) && quoted.length >= ihl + 8;
        assert.equal(f.innerHasPorts, f.hasInner && ports);
        if (f.innerHasPorts) assert.deepEqual([f.innerSport, f.innerDport], [o.sport, o.dport]);
      }),
      RUNS,
    );
  });
});

type Op = { k: "saddr" | "daddr"; v: number } | { k: "sport" | "dport"; v: number } | { k: "ttl" };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constantFrom("saddr" as const, "daddr" as const), v: addr }),
  fc.record({ k: fc.constantFrom("sport" as const, "dport" as const), v: port }),
  fc.constant({ k: "ttl" as const }),
);

describe("rewrites (properties)", () => {
  it("any sequence of address/port/TTL rewrites leaves checksums a full recomputation accepts", () => {
    fc.assert(
      fc.property(
        fc.oneof(tcpFrameArb, udpFrameArb, icmpFrameArb),
        fc.array(opArb, { maxLength: 12 }),
        (l4, ops) => {
          const buf = l4.frame;
          const f = new Flow();
          assert.equal(parseFrame(buf, buf.length, f, 0), PARSE_OK);
          const udpNoCsum = l4.proto === 17 && get16(buf, f.l4Off + 6) === 0;
          const want = { saddr: f.saddr, daddr: f.daddr, sport: f.sport, dport: f.dport, ttl: f.ttl };
          for (const op of ops) {
            if (op.k === "saddr") ipv4SetSaddr(buf, f, op.v);
            else if (op.k === "daddr") ipv4SetDaddr(buf, f, op.v);
            else if (op.k === "sport") l4SetSport(buf, f, op.v);
            else if (op.k === "dport") l4SetDport(buf, f, op.v);
            else ipv4DecTtl(buf, f);
            if (op.k === "saddr" || op.k === "daddr") want[op.k] = op.v;
            else if ((op.k === "sport" || op.k === "dport") && l4.proto !== 1) want[op.k] = op.v;
            else if (op.k === "ttl" && want.ttl > 0) want.ttl--;
          }
          assert.ok(ipv4HeaderOk(buf, f.l3Off), "IP checksum");
          assert.ok(l4ChecksumOk(buf, f.l3Off), "L4 checksum");
          if (udpNoCsum) assert.equal(get16(buf, f.l4Off + 6), 0, "UDP checksum 0 stays 0");
          const g = new Flow();
          assert.equal(parseFrame(buf, buf.length, g, 0), PARSE_OK);
          assert.deepEqual(
            { saddr: g.saddr, daddr: g.daddr, sport: g.sport, dport: g.dport, ttl: g.ttl },
            want,
          );
          assert.deepEqual(
            { saddr: f.saddr, daddr: f.daddr, sport: f.sport, dport: f.dport, ttl: f.ttl },
            want,
          );
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("tcpInsertOption keeps the payload, the old options and valid checksums", () => {
    const optArb = fc
      .integer({ min: 1, max: 10 })
      .chain((w) => fc.array(u8, { minLength: w * 4, maxLength: w * 4 }));
    fc.assert(
      fc.property(tcpFrameArb, optArb, fc.integer({ min: 0, max: 64 }), (l4, opt, slack) => {
        const fr = l4.frame;
        const f = new Flow();
        assert.equal(parseFrame(fr, fr.length, f, 0), PARSE_OK);
        const buf = new Uint8Array(f.l3End + slack);
        buf.set(fr.subarray(0, Math.min(fr.length, buf.length)));
        const g = new Flow();
        assert.equal(parseFrame(buf, Math.min(fr.length, buf.length), g, 0), PARSE_OK);
        const hlen = g.payloadOff - g.l4Off;
        const oldOpts = Array.from(buf.subarray(g.l4Off + 20, g.payloadOff));
        const payload = Array.from(buf.subarray(g.payloadOff, g.l3End));
        const header = Array.from(buf.subarray(0, g.l4Off + 12));
        const ok = tcpInsertOption(buf, g, Uint8Array.from(opt), opt.length, buf.length);
        const fits = !g.fragment && hlen + opt.length <= 60 && f.l3End + opt.length <= buf.length;
        assert.equal(ok, fits);
        if (!ok) return;
        const at = g.l4Off + 20;
        assert.deepEqual(Array.from(buf.subarray(at, at + opt.length)), opt);
        assert.deepEqual(Array.from(buf.subarray(at + opt.length, g.payloadOff)), oldOpts);
        assert.deepEqual(Array.from(buf.subarray(g.payloadOff, g.l3End)), payload);
        assert.deepEqual(Array.from(buf.subarray(0, 14)), header.slice(0, 14));
        assert.equal(g.payloadOff - g.l4Off, hlen + opt.length);
        assert.ok(ipv4HeaderOk(buf, g.l3Off));
        assert.ok(l4ChecksumOk(buf, g.l3Off));
        const h = new Flow();
        assert.equal(parseFrame(buf, g.len, h, 0), PARSE_OK);
        assert.equal(h.payloadOff, g.payloadOff);
        assert.equal(h.l3End, g.l3End);
      }),
      RUNS,
    );
  });
});

describe("encapsulation and ICMP errors (properties)", () => {
  it("ipipEncap output parses back to the same inner datagram", () => {
    fc.assert(
      fc.property(
        anyValidFrame,
        addr,
        addr,
        u8,
        u8,
        fc.boolean(),
        fc.boolean(),
        (l4, s, d, ttl, tos, df, inPlace) => {
          const fr = l4.frame;
          const f = new Flow();
          parseFrame(fr, fr.length, f, 0);
          const inner = Array.from(fr.subarray(f.l3Off, f.l3End));
          let out: Uint8Array;
          let n: number;
          if (inPlace) {
            out = new Uint8Array(f.l3Off + inner.length + 20);
            out.set(fr.subarray(0, f.l3End));
            n = ipipEncap(out, f.l3Off, out, f.l3Off, inner.length, s, d, ttl, tos, df);
          } else {
            out = new Uint8Array(14 + 20 + inner.length + 3);
            out.set(fr.subarray(0, 14));
            out[12] = 8;
            out[13] = 0;
            n = ipipEncap(out, 14, fr, f.l3Off, inner.length, s, d, ttl, tos, df);
          }
          assert.equal(n, 20 + inner.length);
          const o = new Flow();
          assert.equal(parseFrame(out, out.length, o, 0), PARSE_OK);
          assert.equal(o.proto, 4);
          assert.equal(o.saddr, s >>> 0);
          assert.equal(o.daddr, d >>> 0);
          assert.equal(o.ttl, ttl);
          assert.equal(o.tos, tos);
          assert.equal(o.df, df);
          assert.equal(o.l3End - o.l4Off, inner.length);
          assert.deepEqual(Array.from(out.subarray(o.l4Off, o.l3End)), inner);
        },
      ),
      RUNS,
    );
  });

  it("buildIcmpError output parses as an ICMP error whose inner header equals the original", () => {
    const errType = fc.constantFrom([3, 3], [3, 4], [11, 0], [12, 0], [5, 1], [4, 0]);
    fc.assert(
      fc.property(
        anyValidFrame,
        errType,
        addr,
        addr,
        addr,
        fc.boolean(),
        (l4, [type, code], info, s, d, inPlace) => {
          const fr = l4.frame;
          const f = new Flow();
          parseFrame(fr, fr.length, f, 0);
          const origLen = f.l3End - f.l3Off;
          const orig = Array.from(fr.subarray(f.l3Off, f.l3End));
          const out = inPlace ? fr : new Uint8Array(600);
          const n = buildIcmpError(out, 14, type, code, info, fr, f.l3Off, origLen, s, d, 64);
          if (inPlace && 14 + 28 + Math.min(origLen, 548) > fr.length) {
            assert.equal(n, 0, "does not fit in the original frame");
            return;
          }
          const q = Math.min(origLen, 548);
          assert.equal(n, 28 + q);
          out[12] = 8;
          out[13] = 0;
          const e = new Flow();
          assert.equal(parseFrame(out, 14 + n, e, 0), PARSE_OK);
          assert.equal(e.proto, 1);
          assert.equal(e.icmpType, type);
          assert.equal(e.icmpCode, code);
          assert.equal(e.df, false);
          assert.equal(e.tos, (orig[1] & 0x1e) | 0xc0);
          assert.ok(l4ChecksumOk(out, 14));
          assert.equal(get32(out, 38), info >>> 0);
          assert.equal(e.hasInner, true);
          assert.equal(e.innerProto, orig[9]);
          assert.equal(e.innerSaddr, f.saddr);
          assert.equal(e.innerDaddr, f.daddr);
          const ihl = (orig[0] & 15) * 4;
          assert.deepEqual(Array.from(out.subarray(e.innerL3Off, e.innerL3Off + ihl)), orig.slice(0, ihl));
          assert.deepEqual(Array.from(out.subarray(e.innerL3Off, e.l3End)), orig.slice(0, q));
          if (l4.proto !== 1 && !f.fragment) {
            assert.equal(e.innerHasPorts, true);
            assert.equal(e.innerSport, f.sport);
            assert.equal(e.innerDport, f.dport);
          }
        },
      ),
      RUNS,
    );
  });
});

/** RFC 1071 a 16-bit word at a time, as the definition reads: the reference for csumAdd. */
function csumByWords(b: Uint8Array, off: number, len: number): number {
  const end = Math.min(off + len, b.length);
  let s = 0;
  let i = off;
  for (; i + 1 < end; i += 2) s += (b[i] << 8) | b[i + 1];
  if (i < end) s += b[i] << 8;
  return csumFold(s);
}

describe("csumAdd (properties)", () => {
  // csumAdd sums long runs from 32-bit loads of the underlying buffer: every alignment of the
  // view and of the start, odd and even lengths, and runs that end past the view.
  it("equals the word-by-word sum for any buffer alignment, start and length", () => {
    const backing = new Uint8Array(8192 + 8);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 64 }),
        fc.integer({ min: 0, max: 8200 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (base, off, len, seed) => {
          let x = seed | 1;
          for (let i = 0; i < backing.length; i++) {
            x ^= x << 13;
            x ^= x >>> 17;
            x ^= x << 5;
            backing[i] = x & 0xff;
          }
          const b = backing.subarray(base, base + 8192);
          assert.equal(csumFold(csumAdd(b, off, len)), csumByWords(b, off, len));
        },
      ),
      RUNS,
    );
  });

  it("sums runs longer than one fold's worth of words (4 MiB) exactly", () => {
    const b = new Uint8Array((1 << 22) + 4096).fill(0xff);
    b[3] = 0x12;
    for (const off of [0, 2, 6])
      assert.equal(csumFold(csumAdd(b, off, b.length - off - 2)), csumByWords(b, off, b.length - off - 2));
  });
});
