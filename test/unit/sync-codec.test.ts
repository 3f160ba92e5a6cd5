// The IPVS sync message format (net/netfilter/ipvs/ip_vs_sync.c): fixtures written by hand as hex
// from the kernel's structs (ip_vs_sync_mesg / _v0, ip_vs_sync_v4 / _v6, ip_vs_sync_conn_v0,
// option TLVs), decoded; malformed messages give a stable reason, never an exception; the writer
// is checked against hand-written hex, not against the decoder.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  decodeSyncMessage,
  emptySyncConn,
  SYNC_DROP_REASONS,
  SYNC_MAX_CONNS,
  type SyncDecodeResult,
  SyncWriter,
} from "../../src/core/sync/codec.js";
import type { SyncConn } from "../../src/core/sync/types.js";
import { ip, ipStr } from "../support/packet-builder.js";

/** Hex with spaces, newlines and `# comments`. */
function hex(s: string): Uint8Array {
  const h = s.replace(/#[^\n]*/g, "").replace(/[^0-9a-fA-F]/g, "");
  assert.equal(h.length % 2, 0, "odd hex");
  return Uint8Array.from(h.match(/../g) ?? [], (x) => Number.parseInt(x, 16));
}

function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

interface Row {
  proto: number;
  c: string;
  v: string;
  d: string;
  flags: number;
  state: number;
  fwmark: number;
  timeoutS: number | null;
  l: string;
}

/** Words k..k+3 as 8 uncompressed groups, bracketed (the test's own formatter). */
function w6Str(w: Int32Array, k: number): string {
  const g: string[] = [];
  for (let i = k; i < k + 4; i++) g.push(((w[i] >>> 16) & 0xffff).toString(16), (w[i] & 0xffff).toString(16));
  return `[${g.join(":")}]`;
}

function decode(buf: Uint8Array, filter = 0, len = buf.length): { r: SyncDecodeResult; rows: Row[] } {
  const rows: Row[] = [];
  const r = decodeSyncMessage(buf, len, filter, (c) => {
    const v6 = c.af === 6;
    // A NAT64 entry (daf 4): an IPv6 client side, an IPv4 real server and local address.
    const d6 = v6 && c.daf === 6;
    // An IPv6 entry's u32 fields are the folds of its words.
    if (v6) assert.deepEqual([c.caddr, c.vaddr], [fold(c.a6, 0), fold(c.a6, 4)]);
    if (d6) assert.equal(c.daddr, fold(c.a6, 8));
    const l6 = d6 && c.laddr !== 0;
    if (l6) assert.equal(c.laddr, fold(c.a6, 12));
    rows.push({
      proto: c.proto,
      c: `${v6 ? w6Str(c.a6, 0) : ipStr(c.caddr)}:${c.cport}`,
      v: `${v6 ? w6Str(c.a6, 4) : ipStr(c.vaddr)}:${c.vport}`,
      d: `${d6 ? w6Str(c.a6, 8) : ipStr(c.daddr)}:${c.dport}`,
      flags: c.flags,
      state: c.state,
      fwmark: c.fwmark,
      timeoutS: c.timeoutS,
      l: `${l6 ? w6Str(c.a6, 12) : ipStr(c.laddr)}:${c.lport}`,
    });
  });
  return { r, rows };
}

function fold(w: Int32Array, k: number): number {
  return (w[k] ^ w[k + 1] ^ w[k + 2] ^ w[k + 3]) >>> 0;
}

// ---------------------------------------------------------------------------------- fixtures

/** v1, syncid 5, three entries: a TCP connection with SEQ data, a SIP template with PE data, a DR UDP one. */
const V1_THREE = `
  00 05 00a0 03 01 0000          # reserved, syncid 5, size 160, nr_conns 3, version 1, spare
  # entry 1: struct ip_vs_sync_v4 + IPVS_OPT_SEQ_DATA (size 36 + 2 + 24 = 62, padded to 64)
  00 06 003e                     # type v4, TCP, version 0 | size 62
  00000600                       # flags IN_SEQ|OUT_SEQ, FWD MASQ
  0001 9c40 0050 1f90            # state ESTABLISHED, cport 40000, vport 80, dport 8080
  00000000 00000384              # fwmark 0, timeout 900 s
  cb00710a c6120064 c612010b     # 203.0.113.10, 198.18.0.100, 198.18.1.11
  01 18                          # IPVS_OPT_SEQ_DATA, 24 bytes
  11111111 00000010 00000000     # in_seq: init_seq, delta, previous_delta
  22222222 00000000 00000000     # out_seq
  0000                           # padding to 4 bytes
  # entry 2: a template with IPVS_OPT_PE_DATA "callid" and IPVS_OPT_PE_NAME "sip" (size 49, padded to 52)
  00 11 0031
  00001000                       # TEMPLATE
  0000 0000 13c4 13c4            # state 0, cport 0, vport 5060, dport 5060
  00000000 0000012c              # fwmark 0, timeout 300 s
  cb00710a c6120064 c612010c
  02 06 63616c6c6964             # PE_DATA "callid"
  03 03 736970                   # PE_NAME "sip"
  000000                         # padding
  # entry 3: plain v4, UDP, DR (size 36)
  00 11 0024
  00000183                       # INACTIVE|NOOUTPUT|DROUTE
  0000 d431 0035 0035            # state 0, cport 54321, vport 53, dport 53
  00000007 0000012c              # fwmark 7, timeout 300 s
  cb007114 c6120064 c612010d
`;

/** v0, syncid 5, one entry without sequence data. */
const V0_ONE = `
  01 05 001c                     # nr_conns 1, syncid 5, size 28
  00 06 9c40 0050 1f90           # reserved, TCP, cport 40000, vport 80, dport 8080
  cb00710a c6120064 c612010b
  0100 0004                      # flags INACTIVE (16 bits), state FIN_WAIT
`;

/** v0, syncid 5, an entry with sequence data (host order: not read) and one without. */
const V0_SEQ = `
  02 05 004c                     # nr_conns 2, size 4 + 48 + 24 = 76
  00 06 9c41 0050 1f90 cb00710a c6120064 c612010b 0600 0001
  01000000 02000000 03000000 04000000 05000000 06000000   # ip_vs_sync_conn_options
  00 11 d431 0035 0035 cb007114 c6120064 c612010d 0083 0000
`;

/** The v4 UDP DR entry that ends V1_THREE and V1_V6, decoded. */
const UDP_DR_ROW: Row = {
  proto: 17,
  c: "203.0.113.20:54321",
  v: "198.18.0.100:53",
  d: "198.18.1.13:53",
  flags: 0x0183,
  state: 0,
  fwmark: 7,
  timeoutS: 300,
  l: "0.0.0.0:0",
};

test("v1: SEQ option accepted, PE-data template skipped (no engine), alignment followed", () => {
  const { r, rows } = decode(hex(V1_THREE));
  assert.deepEqual(r, { ok: true, version: 1, conns: 2, skipped: 1, v6: 0 });
  assert.deepEqual(rows, [
    {
      proto: 6,
      c: "203.0.113.10:40000",
      v: "198.18.0.100:80",
      d: "198.18.1.11:8080",
      flags: 0x0600,
      state: 1,
      fwmark: 0,
      timeoutS: 900,
      l: "0.0.0.0:0",
    },
    UDP_DR_ROW,
  ]);
});

test("v0: entries with and without sequence data; no timeout, no fwmark", () => {
  const one = decode(hex(V0_ONE));
  assert.deepEqual(one.r, { ok: true, version: 0, conns: 1, skipped: 0, v6: 0 });
  assert.deepEqual(one.rows, [
    {
      proto: 6,
      c: "203.0.113.10:40000",
      v: "198.18.0.100:80",
      d: "198.18.1.11:8080",
      flags: 0x0100,
      state: 4,
      fwmark: 0,
      timeoutS: null,
      l: "0.0.0.0:0",
    },
  ]);
  const seq = decode(hex(V0_SEQ));
  assert.deepEqual(seq.r, { ok: true, version: 0, conns: 2, skipped: 0, v6: 0 });
  assert.deepEqual(
    seq.rows.map((x) => [x.c, x.d, x.flags, x.state]),
    [
      ["203.0.113.10:40001", "198.18.1.11:8080", 0x0600, 1],
      ["203.0.113.20:54321", "198.18.1.13:53", 0x0083, 0],
    ],
  );
});

test("syncid filter: another syncid is ignored, 0 accepts every syncid", () => {
  assert.deepEqual(decode(hex(V1_THREE), 9).r, { ok: false, reason: "syncid", conns: 0 });
  assert.deepEqual(decode(hex(V0_ONE), 9).r, { ok: false, reason: "syncid", conns: 0 });
  assert.equal(decode(hex(V1_THREE), 5).r.ok, true);
  assert.equal(decode(hex(V1_THREE), 0).r.ok, true);
});

test("v1 header with a nonzero spare or reserved byte is read as v0 (the kernel's rule)", () => {
  const b = hex(V1_THREE);
  b[7] = 1; // spare != 0: v0 with nr_conns = reserved = 0
  assert.deepEqual(decode(b).r, { ok: true, version: 0, conns: 0, skipped: 0, v6: 0 });
});

/** One v1 message of one v4 entry (size 36 + opts) whose options are `opts` (hex). */
function v1With(opts: string, type = "00", verSizeOverride?: number): Uint8Array {
  const o = hex(opts);
  const size = 36 + o.length;
  const total = 8 + size;
  const vs = verSizeOverride ?? size;
  return hex(`
    00 01 ${total.toString(16).padStart(4, "0")} 01 01 0000
    ${type} 06 ${vs.toString(16).padStart(4, "0")} 00000005 0001 9c40 0050 1f90 00000000 00000384
    cb00710a c6120064 c612010b
    ${opts}
  `);
}

test("v1 options: tsvs's FULLNAT local end; unknown optional skipped; unknown mandatory skips the entry", () => {
  const ok = decode(v1With("48 06 c6120164 0400"));
  assert.deepEqual(ok.r, { ok: true, version: 1, conns: 1, skipped: 0, v6: 0 });
  assert.equal(ok.rows[0].l, "198.18.1.100:1024");
  assert.equal(ok.rows[0].flags, 5);
  const optional = decode(v1With("45 02 abcd"));
  assert.deepEqual(optional.r, { ok: true, version: 1, conns: 1, skipped: 0, v6: 0 });
  const mandatory = decode(v1With("05 02 abcd"));
  assert.deepEqual(mandatory.r, { ok: true, version: 1, conns: 0, skipped: 1, v6: 0 });
  // F_PARAM on a known type is still that type (the kernel switches on type & ~F_PARAM).
  assert.deepEqual(decode(v1With("41 02 abcd")).r, { ok: false, reason: "option", conns: 0 });
});

/**
 * v1, syncid 0: struct ip_vs_sync_v6 (a NAT connection, then a fwmark template with the mark in
 * the vaddr's first word as ip_vs_sched_persist keys it, SEQ data after it), then a v4 entry.
 */
const V1_V6 = `
  00 00 00d8 03 01 0000                   # size 8 + 72 + 98 (+2 pad) + 36 = 216
  # entry 1: 72 bytes
  01 06 0048                              # type STYPE_F_INET6, TCP, version 0 | size 72
  00000100                                # flags INACTIVE, FWD MASQ
  0004 9c40 0050 1f90                     # state FIN_WAIT, cport 40000, vport 80, dport 8080
  00000000 00000078                       # fwmark 0, timeout 120 s
  20010db8 00ff0000 00000000 00000010     # caddr 2001:db8:ff::10
  20010db8 00000000 00000000 00000100     # vaddr 2001:db8::100
  20010db8 00010000 00000000 00000011     # daddr 2001:db8:1::11
  # entry 2: a template (72 + SEQ option 26 = 98, padded to 100)
  01 00 0062
  00001003                                # TEMPLATE | DROUTE
  0000 0000 0000 0000
  00000009 0000012c                       # fwmark 9, timeout 300 s
  20010db8 00ff0000 00000000 00000000     # caddr 2001:db8:ff::/64 (the persistence prefix)
  00000009 00000000 00000000 00000000     # vaddr: the mark in word 0
  20010db8 00010000 00000000 00000012
  01 18 ${"00".repeat(24)}                # IPVS_OPT_SEQ_DATA
  0000                                    # padding
  # entry 3: v4
  00 11 0024 00000183 0000 d431 0035 0035 00000007 0000012c
  cb007114 c6120064 c612010d
`;

test("v1: IPv6 entries (struct ip_vs_sync_v6) decoded with their words, between and beside v4 ones", () => {
  const { r, rows } = decode(hex(V1_V6));
  assert.deepEqual(r, { ok: true, version: 1, conns: 3, skipped: 0, v6: 2 });
  assert.deepEqual(rows, [
    {
      proto: 6,
      c: "[2001:db8:ff:0:0:0:0:10]:40000",
      v: "[2001:db8:0:0:0:0:0:100]:80",
      d: "[2001:db8:1:0:0:0:0:11]:8080",
      flags: 0x0100,
      state: 4,
      fwmark: 0,
      timeoutS: 120,
      l: "0.0.0.0:0",
    },
    {
      proto: 0,
      c: "[2001:db8:ff:0:0:0:0:0]:0",
      v: "[0:9:0:0:0:0:0:0]:0",
      d: "[2001:db8:1:0:0:0:0:12]:0",
      flags: 0x1003,
      state: 0,
      fwmark: 9,
      timeoutS: 300,
      l: "0.0.0.0:0",
    },
    UDP_DR_ROW,
  ]);
});

/** One v1 message of one IPv6 entry (size 72 + opts) whose options are `opts` (hex). */
function v6With(opts: string, type = "01", verSizeOverride?: number): Uint8Array {
  const o = hex(opts);
  const size = 72 + o.length;
  const vs = verSizeOverride ?? size;
  return hex(`
    00 00 ${(8 + size).toString(16).padStart(4, "0")} 01 01 0000
    ${type} 11 ${vs.toString(16).padStart(4, "0")} 00000000 0000 d431 0035 0035 00000000 0000012c
    20010db8 00ff0000 00000000 00000010 20010db8 00000000 00000000 00000100
    20010db8 00010000 00000000 00000012
    ${opts}
  `);
}

test("v1 IPv6: the kernel's type test (bit 0), options after the 72 bytes, tsvs's local ends by family", () => {
  const cases: { what: string; buf: Uint8Array; r: SyncDecodeResult; l?: string }[] = [
    { what: "plain", buf: v6With(""), r: { ok: true, version: 1, conns: 1, skipped: 0, v6: 1 } },
    // ip_vs_proc_sync_conn tests type & STYPE_F_INET6 before type == 0: type 3 is IPv6.
    { what: "type 3", buf: v6With("", "03"), r: { ok: true, version: 1, conns: 1, skipped: 0, v6: 1 } },
    {
      what: "unknown optional parameter",
      buf: v6With("45 02 abcd"),
      r: { ok: true, version: 1, conns: 1, skipped: 0, v6: 1 },
    },
    {
      what: "unknown mandatory parameter: the entry skipped",
      buf: v6With("05 02 abcd"),
      r: { ok: true, version: 1, conns: 0, skipped: 1, v6: 0 },
    },
    {
      what: "tsvs's IPv4 local end on an IPv6 entry whose daddr is not IPv4-mapped",
      buf: v6With("48 06 c6120164 0400"),
      r: fail("option"),
    },
    {
      what: "tsvs's IPv6 local end (IPv6 FULLNAT)",
      buf: v6With("49 12 20010db8 00010000 00000000 00000201 0401"),
      r: { ok: true, version: 1, conns: 1, skipped: 0, v6: 1 },
      l: "[2001:db8:1:0:0:0:0:201]:1025",
    },
    {
      what: "the IPv6 local end with a wrong length",
      buf: v6With("49 06 c6120164 0400"),
      r: fail("option"),
    },
    {
      what: "two local ends",
      buf: v6With(
        "49 12 20010db8 00010000 00000000 00000201 0401 49 12 20010db8 00010000 00000000 00000201 0401",
      ),
      r: fail("option"),
    },
    { what: "size 71 (below the fixed part)", buf: v6With("", "01", 71), r: fail("entry-size") },
    { what: "size 36 (a v4 size)", buf: v6With("", "01", 36), r: fail("entry-size") },
    { what: "size past the datagram", buf: v6With("", "01", 76), r: fail("entry-size") },
    {
      what: "datagram cut inside the addresses",
      buf: (() => {
        const b = v6With("").subarray(0, 8 + 60);
        b[3] = 68;
        return b;
      })(),
      r: fail("entry-size"),
    },
    { what: "zero-length option", buf: v6With("48 00"), r: fail("option") },
  ];
  for (const c of cases) {
    const { r, rows } = decode(c.buf);
    assert.deepEqual(r, c.r, c.what);
    if (c.l !== undefined) assert.equal(rows[0].l, c.l, c.what);
  }
});

function fail(reason: string, conns = 0): SyncDecodeResult {
  return { ok: false, reason, conns } as SyncDecodeResult;
}

test("malformed messages: each a stable reason, entries before the fault delivered", () => {
  const three = hex(V1_THREE);
  const cases: { what: string; buf: Uint8Array; len?: number; reason: string; conns?: number }[] = [
    { what: "3 bytes", buf: hex("00 05 00"), reason: "short" },
    { what: "empty", buf: new Uint8Array(0), reason: "short" },
    { what: "size field != length", buf: three, len: three.length - 4, reason: "size" },
    {
      what: "size field larger than the buffer",
      buf: (() => {
        const b = three.slice();
        b[3] = 0xa4;
        return b;
      })(),
      reason: "size",
    },
    {
      what: "entry version nibble 1",
      buf: (() => {
        const b = three.slice();
        b[8 + 2] = 0x10; // ver_size 0x103e
        return b;
      })(),
      reason: "entry-version",
    },
    {
      what: "the third entry's version nibble (the first is installed)",
      buf: (() => {
        const b = three.slice();
        b[8 + 64 + 52 + 2] = 0x20;
        return b;
      })(),
      reason: "entry-version",
      conns: 1,
    },
    { what: "SEQ option of 23 bytes", buf: v1With(`01 17 ${"00".repeat(23)}`), reason: "option" },
    { what: "zero-length option", buf: v1With("48 00"), reason: "option" },
    { what: "option header cut", buf: v1With("48"), reason: "option" },
    { what: "option overruns the entry", buf: v1With("48 08 c6120164 0400"), reason: "option" },
    {
      what: "duplicate SEQ option",
      buf: v1With(`01 18 ${"00".repeat(24)} 01 18 ${"00".repeat(24)}`),
      reason: "option",
    },
    { what: "PE name longer than 16", buf: v1With(`03 11 ${"61".repeat(17)}`), reason: "option" },
    { what: "entry type 2", buf: v1With("", "02"), reason: "entry-type" },
    { what: "entry size past the buffer", buf: v1With("", "00", 40), reason: "entry-size" },
    { what: "entry size below the fixed part", buf: v1With("", "00", 20), reason: "entry-size" },
    {
      what: "v1 nr_conns larger than the entries (truncated entry)",
      buf: (() => {
        const b = hex(V1_THREE).slice();
        b[4] = 4;
        return b;
      })(),
      reason: "truncated",
      conns: 2,
    },
    {
      what: "v1 entry cut short",
      buf: hex("00 00 0014 01 01 0000 00 06 0024 00000000 0001 9c40"),
      reason: "truncated",
    },
    {
      what: "v0 entry cut short",
      buf: hex("01 00 0012 00 06 9c40 0050 1f90 cb00710a c612"),
      reason: "truncated",
    },
    {
      what: "v0 sequence data cut",
      buf: hex("01 00 0024 00 06 9c40 0050 1f90 cb00710a c6120064 c612010b 0600 0001 0000000000000000"),
      reason: "truncated",
    },
  ];
  for (const c of cases) {
    const { r } = decode(c.buf, 0, c.len ?? c.buf.length);
    assert.deepEqual(r, { ok: false, reason: c.reason, conns: c.conns ?? 0 }, c.what);
    assert.ok((SYNC_DROP_REASONS as readonly string[]).includes(c.reason), c.what);
  }
});

test("fuzz: random bytes and mutated fixtures never throw", () => {
  let s = 0x2545f491;
  const rnd = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  const seeds = [hex(V1_THREE), hex(V0_ONE), hex(V0_SEQ), v1With("48 06 c6120164 0400"), hex(V1_V6)];
  let delivered = 0;
  for (let i = 0; i < 20000; i++) {
    let b: Uint8Array;
    if (i % 2 === 0) {
      b = new Uint8Array(rnd() % 200);
      for (let k = 0; k < b.length; k++) b[k] = rnd();
      if (b.length >= 4 && (i & 4) !== 0) {
        b[2] = b.length >> 8;
        b[3] = b.length;
        if ((i & 8) !== 0) {
          b[0] = 0;
          b[5] = 1;
          b[6] = 0;
          b[7] = 0;
        }
      }
    } else {
      b = seeds[i % seeds.length].slice();
      for (let k = rnd() % 6; k >= 0; k--) b[8 + (rnd() % (b.length - 8))] = rnd();
    }
    const r = decodeSyncMessage(b, b.length, 0, () => {
      delivered++;
    });
    assert.equal(typeof r.ok, "boolean");
    if (!r.ok) assert.ok((SYNC_DROP_REASONS as readonly string[]).includes(r.reason));
  }
  assert.ok(delivered > 0);
});

// ---------------------------------------------------------------------------------- writer

function conn(o: Partial<SyncConn>): SyncConn {
  return Object.assign(emptySyncConn(), o);
}

test("writer v1: header, a NAT entry, a FULLNAT entry with the local-end option", () => {
  const w = new SyncWriter(1472);
  w.begin(5, 1);
  assert.equal(
    w.add(
      conn({
        proto: 6,
        caddr: ip("203.0.113.10"),
        cport: 40000,
        vaddr: ip("198.18.0.100"),
        vport: 80,
        daddr: ip("198.18.1.11"),
        dport: 8080,
        flags: 0x0620, // SYNC plus SEQ bits: SEQ is cleared (tsvs sends no sequence data)
        state: 1,
        timeoutS: 900,
      }),
    ),
    true,
  );
  assert.equal(
    w.add(
      conn({
        proto: 6,
        caddr: ip("203.0.113.20"),
        cport: 40001,
        vaddr: ip("198.18.0.100"),
        vport: 80,
        daddr: ip("198.18.1.12"),
        dport: 8080,
        flags: 0x8005, // TOA_SENT | FULLNAT
        state: 4,
        fwmark: 0x10,
        timeoutS: 120,
        laddr: ip("198.18.1.100"),
        lport: 1024,
      }),
    ),
    true,
  );
  const len = w.finish();
  const expected = hex(`
    00 05 0058 02 01 0000                 # size 8 + 36 + 44 = 88
    00 06 0024 00000020 0001 9c40 0050 1f90 00000000 00000384 cb00710a c6120064 c612010b
    00 06 002c 00008005 0004 9c41 0050 1f90 00000010 00000078 cb007114 c6120064 c612010c
    48 06 c6120164 0400                   # IPVS_OPT_F_PARAM | 8: LIP 198.18.1.100, lport 1024
  `);
  assert.equal(toHex(w.buf.subarray(0, len)), toHex(expected));
  assert.equal(w.version, -1, "nothing begun after finish");
});

test("writer v0: 4-byte header, 24-byte entries, 16-bit flags", () => {
  const w = new SyncWriter(1472);
  w.begin(7, 0);
  w.add(
    conn({
      proto: 17,
      caddr: ip("203.0.113.20"),
      cport: 54321,
      vaddr: ip("198.18.0.100"),
      vport: 53,
      daddr: ip("198.18.1.13"),
      dport: 53,
      flags: 0x0183,
      state: 0,
      fwmark: 9, // not in v0
      timeoutS: 300, // not in v0
    }),
  );
  const len = w.finish();
  assert.equal(
    toHex(w.buf.subarray(0, len)),
    toHex(hex("01 07 001c 00 11 d431 0035 0035 cb007114 c6120064 c612010d 0183 0000")),
  );
});

test("writer: add is refused when the entry does not fit or nr_conns would pass 255", () => {
  const w = new SyncWriter(8 + 36 * 2);
  const c = conn({ proto: 6, caddr: 1, vaddr: 2, daddr: 3 });
  assert.equal(w.add(c), false, "nothing begun");
  w.begin(1);
  assert.equal(w.add(c), true);
  assert.equal(w.add(c), true);
  assert.equal(w.add(c), false, "full");
  assert.equal(w.count, 2);
  assert.equal(w.finish(), 80);

  const big = new SyncWriter(65535 - 28);
  big.begin(1);
  for (let i = 0; i < SYNC_MAX_CONNS; i++) assert.equal(big.add(c), true);
  assert.equal(big.add(c), false, "256th entry");
  assert.equal(big.finish(), 8 + 36 * SYNC_MAX_CONNS);

  // A maxlen below one entry still holds one (ip_vs_sync_buff_create's max()).
  const tiny = new SyncWriter(1);
  tiny.begin(1);
  assert.equal(tiny.add(conn({ flags: 5, laddr: 1, lport: 2 })), true);
});

/** The test's own parser of an IPv6 text into four words (no production code). */
function words(s: string): Int32Array {
  const [h, t] = s.split("::");
  const hg = h === "" ? [] : h.split(":");
  const tg = t === undefined || t === "" ? [] : t.split(":");
  const g = [...hg, ...Array<string>(8 - hg.length - tg.length).fill("0"), ...tg].map((x) =>
    Number.parseInt(x, 16),
  );
  return Int32Array.from([0, 1, 2, 3], (k) => (g[2 * k] << 16) | g[2 * k + 1]);
}

function conn6(o: Partial<SyncConn>, c: string, v: string, d: string, l = "::"): SyncConn {
  const a6 = new Int32Array(16);
  a6.set(words(c), 0);
  a6.set(words(v), 4);
  a6.set(words(d), 8);
  a6.set(words(l), 12);
  const laddr = l === "::" ? 0 : fold(a6, 12);
  return conn({ af: 6, daf: 6, a6, caddr: fold(a6, 0), vaddr: fold(a6, 4), daddr: fold(a6, 8), laddr, ...o });
}

test("writer v1 IPv6: struct ip_vs_sync_v6 byte for byte, FULLNAT's IPv6 local end and NAT64 in tsvs's form", () => {
  const w = new SyncWriter(1472);
  w.begin(3, 1);
  const nat = conn6(
    { proto: 6, cport: 40000, vport: 80, dport: 8080, flags: 0x0020, state: 1, timeoutS: 900 },
    "2001:db8:ff::10",
    "2001:db8::100",
    "2001:db8:1::11",
  );
  assert.equal(w.add(nat), true);
  const tpl = conn6(
    { proto: 0, flags: 0x1003, fwmark: 9, timeoutS: 300 },
    "2001:db8:ff::",
    "0:9::",
    "2001:db8:1::12",
  );
  assert.equal(w.add(tpl), true);
  // IPv6 FULLNAT: its IPv6 local end in tsvs's option 9|F_PARAM (18 bytes).
  const fnat = conn6(
    { proto: 17, cport: 5353, vport: 53, dport: 53, flags: 5, lport: 2, timeoutS: 300 },
    "2001:db8:ff::20",
    "2001:db8::100",
    "2001:db8:1::13",
    "2001:db8:1::201",
  );
  assert.equal(w.add(fnat), true);
  // NAT64: daddr IPv4-mapped, the IPv4 local end in option 8|F_PARAM.
  const nat64 = conn6(
    { proto: 6, cport: 40001, vport: 80, dport: 80, flags: 5, state: 1, timeoutS: 900 },
    "2001:db8:ff::21",
    "2001:db8::100",
    "::",
  );
  nat64.daf = 4;
  nat64.daddr = ip("198.18.1.13");
  nat64.laddr = ip("198.18.1.100");
  nat64.lport = 1024;
  assert.equal(w.add(nat64), true);
  const len = w.finish();
  const expected = hex(`
    00 03 0144 04 01 0000                   # size 8 + 2 * 72 + (72 + 20) + (72 + 8) = 324
    01 06 0048 00000020 0001 9c40 0050 1f90 00000000 00000384
    20010db8 00ff0000 00000000 00000010 20010db8 00000000 00000000 00000100
    20010db8 00010000 00000000 00000011
    01 00 0048 00001003 0000 0000 0000 0000 00000009 0000012c
    20010db8 00ff0000 00000000 00000000 00000009 00000000 00000000 00000000
    20010db8 00010000 00000000 00000012
    01 11 005c 00000005 0000 14e9 0035 0035 00000000 0000012c
    20010db8 00ff0000 00000000 00000020 20010db8 00000000 00000000 00000100
    20010db8 00010000 00000000 00000013
    49 12 20010db8 00010000 00000000 00000201 0002
    01 06 0050 00000005 0001 9c41 0050 0050 00000000 00000384
    20010db8 00ff0000 00000000 00000021 20010db8 00000000 00000000 00000100
    00000000 00000000 0000ffff c612010d
    48 06 c6120164 0400
  `);
  assert.equal(toHex(w.buf.subarray(0, len)), toHex(expected));
  // And the decoder reads it back.
  const { r, rows } = decode(w.buf.subarray(0, len));
  assert.deepEqual(r, { ok: true, version: 1, conns: 4, skipped: 0, v6: 4 });
  assert.deepEqual(
    rows.map((x) => [x.c, x.v, x.d, x.l]),
    [
      [
        "[2001:db8:ff:0:0:0:0:10]:40000",
        "[2001:db8:0:0:0:0:0:100]:80",
        "[2001:db8:1:0:0:0:0:11]:8080",
        "0.0.0.0:0",
      ],
      ["[2001:db8:ff:0:0:0:0:0]:0", "[0:9:0:0:0:0:0:0]:0", "[2001:db8:1:0:0:0:0:12]:0", "0.0.0.0:0"],
      [
        "[2001:db8:ff:0:0:0:0:20]:5353",
        "[2001:db8:0:0:0:0:0:100]:53",
        "[2001:db8:1:0:0:0:0:13]:53",
        "[2001:db8:1:0:0:0:0:201]:2",
      ],
      [
        "[2001:db8:ff:0:0:0:0:21]:40001",
        "[2001:db8:0:0:0:0:0:100]:80",
        "198.18.1.13:80",
        "198.18.1.100:1024",
      ],
    ],
  );
});

test("writer: v0 refuses IPv6 (no layout); a maxlen below one IPv6 entry still holds one", () => {
  const c = conn6({ proto: 6 }, "2001:db8:ff::10", "2001:db8::100", "2001:db8:1::11");
  const w = new SyncWriter(1472);
  w.begin(1, 0);
  assert.equal(w.add(c), false);
  assert.equal(w.count, 0);
  assert.equal(w.finish(), 4);
  const tiny = new SyncWriter(1);
  tiny.begin(1);
  assert.equal(tiny.add(c), true);
  assert.equal(tiny.finish(), 8 + 72);
});
