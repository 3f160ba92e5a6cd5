// SYN proxy (synproxy.ts, issue 16; DPVS's ip_vs_synproxy.c): the cookie SYN-ACK, the ACK that
// opens the connection to the real server, the real server's SYN-ACK completing it with what was
// held, the translation of later segments both ways (SACK and timestamps too), bad and expired
// cookies, the SYN retries. Frames in are built by the test packet builder, frames out decoded and
// their checksums verified by the test decoders (test/support/frames.ts), never by the production
// writer.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { R } from "../../src/core/counters.js";
import { decodeSyncMessage } from "../../src/core/sync/codec.js";
import { SyncSender } from "../../src/core/sync/sender.js";
import type { SyncConn } from "../../src/core/sync/types.js";
import { cookieData, SYNPROXY_MSS_TABLE, sipHi, siphash24 } from "../../src/core/synproxy.js";
import {
  type DecodedTcp,
  Director,
  decodeFrame,
  IP,
  L2_FROM_ROUTER,
  l2FromLan,
  MAC,
} from "../support/frames.js";
import { Director6, decode6, IP6, L2_6_FROM_ROUTER, l2_6FromLan, MAC6 } from "../support/frames6.js";
import {
  ACK,
  bytes,
  inetChecksum,
  ip,
  PSH,
  pseudoHeader,
  RST,
  SYN,
  tcpFrame,
} from "../support/packet-builder.js";
import { tcp6Frame } from "../support/packet6.js";

const CPORT = 40000;
const ISN = 0xfffffff0; // the client's: its numbers wrap during the test
const RS_ISN = 0x7ffffff0;
const add = (a: number, b: number): number => (a + b) >>> 0;

// ---------------------------------------------------------------- option bytes (the client's)

const mssOpt = (v: number): number[] => [2, 4, v >> 8, v & 255];
const wsOpt = (v: number): number[] => [1, 3, 3, v];
const sackPerm = [1, 1, 4, 2];
const u32 = (v: number): number[] => [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
const tsOpt = (val: number, ecr: number): number[] => [1, 1, 8, 10, ...u32(val), ...u32(ecr)];
const sackOpt = (l: number, r: number): number[] => [1, 1, 5, 10, ...u32(l), ...u32(r)];

function opt(tcp: DecodedTcp, kind: number): Uint8Array | undefined {
  return tcp.options.find((o) => o.kind === kind)?.data;
}
const be32 = (b: Uint8Array, off: number): number => new DataView(b.buffer, b.byteOffset).getUint32(off);
const be16 = (b: Uint8Array, off: number): number => new DataView(b.buffer, b.byteOffset).getUint16(off);

// ---------------------------------------------------------------- the director

function director(method: "-m" | "--fullnat"): Director {
  const d = new Director();
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr --synproxy`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 ${method}`);
  return d;
}

function client(
  flags: number,
  seq: number,
  ack: number,
  options: number[] = [],
  payload?: Uint8Array,
  win = 502,
): Uint8Array {
  return tcpFrame(
    L2_FROM_ROUTER,
    { src: ip(IP.client1), dst: ip(IP.vip) },
    { sport: CPORT, dport: 80, flags, seq, ack, win, options: Uint8Array.from(options), payload },
  );
}

/** The real server's segment toward the client (NAT) or the LIP:lport (FULLNAT). */
function server(
  fullnat: boolean,
  lport: number,
  flags: number,
  seq: number,
  ack: number,
  options: number[] = [],
  payload?: Uint8Array,
  win = 1000,
): Uint8Array {
  return tcpFrame(
    l2FromLan(MAC.rs1),
    { src: ip(IP.rs1), dst: ip(fullnat ? IP.lip : IP.client1) },
    {
      sport: 8080,
      dport: fullnat ? lport : CPORT,
      flags,
      seq,
      ack,
      win,
      options: Uint8Array.from(options),
      payload,
    },
  );
}

function tcpOf(frame: Uint8Array): { src: string; dst: string; tcp: DecodedTcp } {
  const d = decodeFrame(frame);
  assert.ok(d.ip?.tcp, "a TCP frame");
  return { src: d.ip.src, dst: d.ip.dst, tcp: d.ip.tcp };
}

/** The SYN-ACK a SYN with `options` gets (one frame toward the client). */
function synAck(d: Director, options: number[], seq = ISN): DecodedTcp {
  const r = d.input(1, client(SYN, seq, 0, options));
  assert.equal(r.out.length, 1, "one SYN-ACK");
  const o = tcpOf(r.out[0].frame);
  assert.equal(r.out[0].ifindex, 1, "back toward the client's router");
  assert.equal(o.src, IP.vip);
  assert.equal(o.dst, IP.client1);
  return o.tcp;
}

// ---------------------------------------------------------------- SipHash

describe("SipHash-2-4 (the cookie's keyed hash)", () => {
  // veorq/SipHash vectors.h: key 00..0f, message 00..(n-1), the 64-bit result little-endian.
  const vectors: [number, string][] = [
    [0, "310e0edd47db6f72"],
    [4, "b7877127e09427cf"],
    [8, "6224939a79f5f593"],
    [12, "fbe50e86bc8f1e75"],
    [16, "db9bc2577fcc2a3f"],
    [20, "98eea21af25cd6be"],
  ];
  const key = Uint32Array.of(0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c);
  for (const [n, hex] of vectors) {
    it(`matches the reference vector for ${n} bytes`, () => {
      const msg = new Int32Array(8);
      for (let i = 0; i < n; i++) msg[i >> 2] |= i << ((i & 3) * 8);
      const lo = siphash24(key, msg, n / 4);
      const out = new Uint8Array(8);
      const dv = new DataView(out.buffer);
      dv.setUint32(0, lo, true);
      dv.setUint32(4, sipHi, true);
      assert.equal(Buffer.from(out).toString("hex"), hex);
    });
  }
});

// ---------------------------------------------------------------- cookie data

describe("cookie data: the MSS table (DPVS's msstab) rounds the client's MSS down", () => {
  const rows: [number, number][] = [
    [0, 536], // no MSS option: TCP's default
    [40, 64],
    [64, 64],
    [255, 64],
    [256, 256],
    [536, 536],
    [1220, 1024],
    [1440, 1440],
    [1451, 1440],
    [1452, 1452],
    [1459, 1452],
    [1460, 1460],
    [4311, 1460],
    [4312, 4312],
    [9000, 4312],
    [65535, 4312],
  ];
  for (const [mss, expect] of rows)
    it(`MSS ${mss} → ${expect}`, () => {
      assert.equal(SYNPROXY_MSS_TABLE[cookieData(mss, -1, false, false) & 15], expect);
    });
  it("packs the window scale + 1, SACK and TS above the index", () => {
    assert.equal(cookieData(1460, -1, false, false), 8);
    assert.equal(cookieData(1460, 0, false, false), 8 | (1 << 4));
    assert.equal(cookieData(1460, 14, true, true), 8 | (15 << 4) | 0x100 | 0x200);
  });
});

// ---------------------------------------------------------------- step 1

describe("SYN proxy: a SYN is answered with a cookie SYN-ACK, no state kept", () => {
  const rows: {
    name: string;
    options: number[];
    mss: number;
    sack: boolean;
    ts: boolean;
    ws: boolean;
  }[] = [
    { name: "no options", options: [], mss: 536, sack: false, ts: false, ws: false },
    { name: "MSS only", options: mssOpt(1400), mss: 1400, sack: false, ts: false, ws: false },
    {
      name: "Linux's full set",
      options: [...mssOpt(1460), 4, 2, 8, 10, ...u32(111), ...u32(0), 1, 3, 3, 7],
      mss: 1452,
      sack: true,
      ts: true,
      ws: true,
    },
    {
      name: "SACK, no TS",
      options: [...mssOpt(9000), ...sackPerm, ...wsOpt(2)],
      mss: 1452,
      sack: true,
      ts: false,
      ws: true,
    },
    {
      name: "TS, no SACK",
      options: [...mssOpt(1460), ...tsOpt(5, 0)],
      mss: 1452,
      sack: false,
      ts: true,
      ws: false,
    },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const d = director("-m");
      const t = synAck(d, r.options);
      assert.equal(t.flags, SYN | ACK);
      assert.equal(t.ack, add(ISN, 1));
      assert.equal(t.sport, 80);
      assert.equal(t.dport, CPORT);
      assert.equal(be16(opt(t, 2)!, 0), r.mss, "MSS: min(client's, 1452)");
      assert.equal(opt(t, 4) !== undefined, r.sack, "SACK permitted as the client offered");
      const ts = opt(t, 8);
      assert.equal(ts !== undefined, r.ts, "timestamps as the client offered");
      if (ts !== undefined) {
        assert.equal(be32(ts, 0), t.seq, "TSval is the cookie");
        assert.equal(be32(ts, 4), r.name === "TS, no SACK" ? 5 : 111, "TSecr echoes the client's TSval");
      }
      const ws = opt(t, 3);
      assert.equal(ws !== undefined, r.ws, "window scale as the client offered");
      if (ws !== undefined) assert.equal(ws[0], 7);
      assert.equal(t.win, r.mss, "one segment's window until the real server answers");
      assert.equal(d.engine.connCount(), 0, "no connection");
      assert.equal(d.engine.counters.synproxySynAcks, 1);
    });
  }

  it("a retransmitted SYN gets the same SYN-ACK (same minute, same ISN)", () => {
    const d = director("-m");
    const opts = [...mssOpt(1460), ...sackPerm, ...tsOpt(100, 0), ...wsOpt(7)];
    const a = d.input(1, client(SYN, ISN, 0, opts)).out[0].frame;
    const b = d.input(1, client(SYN, ISN, 0, opts), d.now + 1000).out[0].frame;
    assert.deepEqual(b, a);
    const c = synAck(d, opts, ISN + 1);
    assert.notEqual(c.seq, tcpOf(a).tcp.seq, "another ISN, another cookie");
  });

  it("the deny list is checked at the SYN: no SYN-ACK for a denied source", () => {
    const d = director("-m");
    d.ipvsadm(`-U -t ${IP.vip}:80 -k ${IP.client1}`);
    const r = d.input(1, client(SYN, ISN, 0, mssOpt(1460)));
    assert.equal(r.out.length, 0);
    assert.equal(d.engine.counters.synproxySynAcks, 0);
  });
});

// ---------------------------------------------------------------- steps 2-4

interface Flowing {
  d: Director;
  fullnat: boolean;
  cookie: number;
  lport: number;
  /** The client's TSval at the ACK. */
  tsv: number;
}

const FULL = [...mssOpt(1460), 4, 2, 8, 10, ...u32(1000), ...u32(0), 1, 3, 3, 7];

/** SYN, SYN-ACK, ACK (with a request when `payload` is given): the SYN the real server got. */
function handshake(
  method: "-m" | "--fullnat",
  synOpts: number[],
  payload?: Uint8Array,
): Flowing & { syn: DecodedTcp } {
  const d = director(method);
  const fullnat = method === "--fullnat";
  const sa = synAck(d, synOpts);
  const cookie = sa.seq;
  const ts = synOpts.includes(8);
  const ackOpts = ts ? tsOpt(1005, cookie) : [];
  const r = d.input(1, client(ACK | (payload ? PSH : 0), add(ISN, 1), add(cookie, 1), ackOpts, payload));
  assert.equal(r.out.length, 1, "the SYN to the real server, nothing else");
  assert.equal(r.out[0].ifindex, 2);
  const o = tcpOf(r.out[0].frame);
  assert.equal(o.dst, IP.rs1);
  assert.equal(o.src, fullnat ? IP.lip : IP.client1);
  assert.equal(o.tcp.dport, 8080);
  assert.equal(o.tcp.flags, SYN);
  return { d, fullnat, cookie, lport: o.tcp.sport, tsv: 1005, syn: o.tcp };
}

for (const method of ["-m", "--fullnat"] as const) {
  const name = method === "-m" ? "NAT" : "FULLNAT";
  describe(`SYN proxy ${name}: a valid ACK opens the connection to the real server`, () => {
    it("the SYN carries the client's ISN and the options its cookie encodes", () => {
      const f = handshake(method, FULL);
      assert.equal(f.syn.seq, ISN, "the client's ISN");
      assert.equal(be16(opt(f.syn, 2)!, 0), 1460, "the client's MSS (table)");
      assert.ok(opt(f.syn, 4) !== undefined, "SACK permitted");
      assert.equal(opt(f.syn, 3)?.[0], 7, "the client's window scale");
      const ts = opt(f.syn, 8);
      assert.ok(ts !== undefined);
      assert.equal(be32(ts, 0), f.tsv, "the client's TSval");
      assert.equal(be32(ts, 4), 0);
      if (f.fullnat) assert.ok(opt(f.syn, 254) !== undefined, "FULLNAT's TOA on the SYN");
      const e = f.d.engine;
      assert.equal(e.connCount(), 1);
      assert.equal(e.counters.synproxyAcksValid, 1);
      const cx = e.connections(f.d.now)[0];
      assert.equal(cx.state, "SYN_SENT");
    });

    it("no options: a bare SYN (MSS 536)", () => {
      const f = handshake(method, []);
      assert.equal(be16(opt(f.syn, 2)!, 0), 536);
      assert.equal(opt(f.syn, 4), undefined);
      assert.equal(opt(f.syn, 3), undefined);
      assert.equal(opt(f.syn, 8), undefined);
    });

    it("the real server's SYN-ACK: an ACK completes its handshake, the held request follows, translated", () => {
      const req = bytes("GET / HTTP/1.1\r\n\r\n");
      const f = handshake(method, FULL, req);
      const rsTs = 900000;
      const r = f.d.input(
        2,
        server(f.fullnat, f.lport, SYN | ACK, RS_ISN, add(ISN, 1), [
          ...mssOpt(1460),
          4,
          2,
          8,
          10,
          ...u32(rsTs),
          ...u32(f.tsv),
          1,
          3,
          3,
          9,
        ]),
      );
      assert.equal(r.out.length, 2, "the ACK and the held request; nothing to the client");
      const [a, q] = r.out.map((o) => tcpOf(o.frame).tcp);
      assert.ok(r.out.every((o) => o.ifindex === 2));
      assert.equal(a.flags, ACK);
      assert.equal(a.seq, add(ISN, 1));
      assert.equal(a.ack, add(RS_ISN, 1));
      assert.equal(a.win, 502, "the client's window");
      assert.equal(be32(opt(a, 8)!, 0), f.tsv);
      assert.equal(be32(opt(a, 8)!, 4), rsTs, "TSecr: the real server's TSval");
      if (f.fullnat) assert.ok(opt(a, 254) !== undefined, "TOA on the handshake ACK");
      assert.deepEqual(q.payload, req);
      assert.equal(q.seq, add(ISN, 1));
      assert.equal(q.ack, add(RS_ISN, 1), "the client's ack moved into the real server's numbers");
      assert.equal(be32(opt(q, 8)!, 4), rsTs, "TSecr moved too");
      const e = f.d.engine;
      assert.equal(e.connections(f.d.now)[0].state, "ESTABLISHED");
      assert.equal(e.counters.synproxyConnsOpened, 1);
      assert.equal(e.synproxy.heldSlots(), 0, "the slot went back");

      // The real server's reply: seq and TSval onto the client's view, window 9 → 7.
      const body = bytes("HTTP/1.1 200 OK\r\n\r\n");
      const rep = f.d.input(
        2,
        server(
          f.fullnat,
          f.lport,
          ACK | PSH,
          add(RS_ISN, 1),
          add(ISN, 1 + req.length),
          tsOpt(rsTs + 7, 1006),
          body,
          100,
        ),
      );
      assert.equal(rep.out.length, 1);
      const c = tcpOf(rep.out[0].frame);
      assert.equal(c.src, IP.vip);
      assert.equal(c.dst, IP.client1);
      assert.equal(c.tcp.sport, 80);
      assert.equal(c.tcp.seq, add(f.cookie, 1));
      assert.equal(c.tcp.ack, add(ISN, 1 + req.length), "the client's numbers are the real server's");
      assert.equal(be32(opt(c.tcp, 8)!, 0), add(f.cookie, 7), "TSval moved onto the cookie's");
      assert.equal(c.tcp.win, 400, "100 << 9 >> 7");

      // The client's ACK with a SACK block: ack, SACK edges and TSecr back into the real server's.
      const sa = f.d.input(
        1,
        client(ACK, add(ISN, 1 + req.length), add(f.cookie, 100), [
          ...tsOpt(1010, add(f.cookie, 7)),
          ...sackOpt(add(f.cookie, 200), add(f.cookie, 300)),
        ]),
      );
      assert.equal(sa.out.length, 1);
      const s = tcpOf(sa.out[0].frame).tcp;
      assert.equal(s.ack, add(RS_ISN, 100));
      const sk = opt(s, 5)!;
      assert.equal(be32(sk, 0), add(RS_ISN, 200));
      assert.equal(be32(sk, 4), add(RS_ISN, 300));
      assert.equal(be32(opt(s, 8)!, 4), rsTs + 7);
      assert.equal(be32(opt(s, 8)!, 0), 1010, "the client's TSval as it is");
    });

    it("without window scaling on the real server's side, the client's window is given in bytes", () => {
      const f = handshake(method, [...mssOpt(1460), ...wsOpt(4)]);
      const r = f.d.input(2, server(f.fullnat, f.lport, SYN | ACK, RS_ISN, add(ISN, 1), mssOpt(1460)));
      const a = tcpOf(r.out[0].frame).tcp;
      assert.equal(a.win, Math.min(0xffff, 502 * 16));
      const rep = f.d.input(
        2,
        server(f.fullnat, f.lport, ACK, add(RS_ISN, 1), add(ISN, 1), [], undefined, 6400),
      );
      assert.equal(tcpOf(rep.out[0].frame).tcp.win, 50, "6400 unscaled → units of 2^7");
    });

    it("a segment from the real server other than its SYN-ACK is dropped while waiting", () => {
      const f = handshake(method, []);
      const r = f.d.input(2, server(f.fullnat, f.lport, ACK, RS_ISN, add(ISN, 1)));
      assert.equal(r.out.length, 0);
      assert.equal(f.d.engine.counters.drops[R.synproxy_waiting], 1);
    });

    it("the real server refuses: the client gets the reset at the number it expects", () => {
      const f = handshake(method, []);
      const r = f.d.input(2, server(f.fullnat, f.lport, RST | ACK, 0, add(ISN, 1)));
      assert.equal(r.out.length, 1);
      const c = tcpOf(r.out[0].frame);
      assert.equal(c.dst, IP.client1);
      assert.equal(c.tcp.flags & RST, RST);
      assert.equal(c.tcp.seq, add(f.cookie, 1));
      assert.equal(f.d.engine.connections(f.d.now)[0].state, "CLOSE");
    });

    it("a new handshake on a closed entry's 4-tuple: its ACK replaces the entry (DPVS's conn reuse)", () => {
      const f = handshake(method, []);
      f.d.input(2, server(f.fullnat, f.lport, RST | ACK, 0, add(ISN, 1)));
      assert.equal(f.d.engine.connections(f.d.now)[0].state, "CLOSE");
      const isn2 = 0x10000000;
      const c2 = synAck(f.d, mssOpt(1460), isn2).seq;
      const r = f.d.input(1, client(ACK, add(isn2, 1), add(c2, 1)));
      assert.equal(r.out.length, 1, "the SYN to the real server");
      const s = tcpOf(r.out[0].frame).tcp;
      assert.equal(s.flags, SYN);
      assert.equal(s.seq, isn2);
      const e = f.d.engine;
      assert.equal(e.connCount(), 1);
      assert.equal(e.connections(f.d.now)[0].state, "SYN_SENT");
      assert.equal(e.counters.synproxyAcksValid, 2);
    });

    it("the client's segments while waiting: data and FIN held (3 at most), pure ACKs dropped", () => {
      const f = handshake(method, []);
      const e = f.d.engine;
      assert.equal(f.d.input(1, client(ACK, add(ISN, 1), add(f.cookie, 1))).out.length, 0);
      for (let i = 0; i < 4; i++)
        assert.equal(
          f.d.input(1, client(ACK | PSH, add(ISN, 1 + i), add(f.cookie, 1), [], bytes("x"))).out.length,
          0,
        );
      assert.equal(e.synproxy.heldSlots(), 3);
      const r = f.d.input(2, server(f.fullnat, f.lport, SYN | ACK, RS_ISN, add(ISN, 1)));
      assert.equal(r.out.length, 4, "the ACK and the three held");
      assert.equal(e.synproxy.heldSlots(), 0);
    });

    it("the SYN goes again every 3 s, three times, then the entry expires", () => {
      const f = handshake(method, []);
      const e = f.d.engine;
      let now = f.d.now;
      const seen: number[] = [];
      for (let i = 0; i < 4; i++) {
        now += 3000;
        f.d.seedNeighbours(now);
        f.d.out = [];
        e.tick(now);
        seen.push(f.d.out.filter((o) => tcpOf(o.frame).tcp.flags === SYN).length);
      }
      assert.deepEqual(seen, [1, 1, 1, 0]);
      assert.equal(e.counters.synproxySynRetries, 3);
      assert.equal(e.connCount(), 0);
    });
  });
}

describe("SYN proxy: options at odd offsets keep the checksums right", () => {
  it("TSval, TSecr and SACK edges moved where they straddle checksum words", () => {
    const f = handshake("-m", FULL);
    f.d.input(
      2,
      server(false, 0, SYN | ACK, RS_ISN, add(ISN, 1), [...mssOpt(1460), 8, 10, ...u32(9), ...u32(f.tsv)]),
    );
    // One NOP, then TS (10) and SACK (10) unpadded: every 32-bit field at an odd offset.
    const odd = [
      1,
      8,
      10,
      ...u32(1010),
      ...u32(add(f.cookie, 3)),
      5,
      10,
      ...u32(add(f.cookie, 50)),
      ...u32(add(f.cookie, 60)),
      0,
    ];
    const r = f.d.input(1, client(ACK, add(ISN, 1), add(f.cookie, 40), odd));
    const t = tcpOf(r.out[0].frame).tcp; // decodeFrame verified the checksum
    assert.equal(be32(opt(t, 8)!, 4), 12, "TSecr back in the real server's clock");
    assert.equal(be32(opt(t, 5)!, 0), add(RS_ISN, 50));
    assert.equal(t.ack, add(RS_ISN, 40));
    const rep = f.d.input(
      2,
      server(false, 0, ACK, add(RS_ISN, 1), add(ISN, 1), [1, 8, 10, ...u32(20), ...u32(1010), 0, 0, 0]),
    );
    assert.equal(be32(opt(tcpOf(rep.out[0].frame).tcp, 8)!, 0), add(f.cookie, 11));
  });
});

/** An IPv4 frame's header and TCP checksums verify (options left as they came, malformed or not). */
function checksumsRight(frame: Uint8Array): void {
  if (be16(frame, 12) !== 0x0800) return;
  const l3 = frame.subarray(14);
  const hl = (l3[0] & 15) * 4;
  const total = be16(l3, 2);
  assert.equal(inetChecksum(l3.subarray(0, hl)), 0, "IP header checksum");
  if (l3[9] !== 6) return;
  const seg = l3.subarray(hl, total);
  const ph = pseudoHeader(be32(l3, 12), be32(l3, 16), 6, seg.length);
  assert.equal(inetChecksum(ph, seg), 0, "TCP checksum");
}

describe("SYN proxy: arbitrary segments", () => {
  it("random flags, numbers and option bytes both ways: no throw, every frame out checksummed right", () => {
    for (const method of ["-m", "--fullnat"] as const) {
      const f = handshake(method, FULL, bytes("GET /"));
      f.d.input(2, server(f.fullnat, f.lport, SYN | ACK, RS_ISN, add(ISN, 1), FULL));
      let seed = 0x2545f491;
      const rnd = (n: number): number => {
        seed ^= seed << 13;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        return (seed >>> 0) % n;
      };
      const kinds = [0, 1, 2, 3, 4, 5, 8, 254, 30];
      for (let i = 0; i < 3000; i++) {
        const opts: number[] = [];
        const n = rnd(40);
        while (opts.length < n) {
          const k = kinds[rnd(kinds.length)];
          opts.push(k);
          if (k > 1) {
            const len = rnd(4) === 0 ? rnd(12) : k === 5 ? 2 + 8 * (1 + rnd(3)) : k === 8 ? 10 : 2 + rnd(4);
            opts.push(len);
            for (let j = 2; j < len; j++) opts.push(rnd(256));
          }
        }
        const flags = [ACK, ACK | PSH, ACK | 1, RST, RST | ACK, SYN, SYN | ACK, 0][rnd(8)];
        const payload = rnd(3) === 0 ? new Uint8Array(rnd(300)) : undefined;
        const seq = rnd(2) === 0 ? add(ISN, 1 + rnd(5000)) : rnd(0x7fffffff) * 2;
        const ack = rnd(2) === 0 ? add(f.cookie, 1 + rnd(5000)) : rnd(0x7fffffff) * 2;
        const frame =
          rnd(2) === 0
            ? client(flags, seq, ack, opts.slice(0, 40), payload)
            : server(
                f.fullnat,
                f.lport,
                flags,
                add(RS_ISN, 1 + rnd(5000)),
                add(ISN, 1 + rnd(5000)),
                opts.slice(0, 40),
                payload,
              );
        const r = f.d.input(rnd(2) === 0 ? 1 : 2, frame, f.d.now + i);
        for (const o of r.out) checksumsRight(o.frame);
      }
    }
  });
});

describe("SYN proxy with FULLNAT's PROXY protocol: the two shifts compose", () => {
  it("the held request gets the header; later client numbers move by its length, the real server's by the cookie's delta", () => {
    const d = new Director();
    d.ipvsadm(`-A -t ${IP.vip}:80 -s rr --synproxy --proxy-protocol v1`);
    d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 --fullnat`);
    const cookie = synAck(d, mssOpt(1460)).seq;
    const req = bytes("GET / HTTP/1.0\r\n\r\n");
    const syn = d.input(1, client(ACK | PSH, add(ISN, 1), add(cookie, 1), [], req)).out;
    assert.equal(syn.length, 1);
    const lport = tcpOf(syn[0].frame).tcp.sport;
    const r = d.input(2, server(true, lport, SYN | ACK, RS_ISN, add(ISN, 1), mssOpt(1460))).out;
    assert.equal(r.length, 2, "the ACK, then the request with the header");
    const q = tcpOf(r[1].frame).tcp;
    const hdr = `PROXY TCP4 ${IP.client1} ${IP.vip} ${CPORT} 80\r\n`;
    assert.equal(new TextDecoder().decode(q.payload), `${hdr}GET / HTTP/1.0\r\n\r\n`);
    assert.equal(q.seq, add(ISN, 1));
    assert.equal(q.ack, add(RS_ISN, 1));
    const L = hdr.length;
    // The real server acknowledges header and request: the client sees its own numbers, the cookie's.
    const a = d.input(2, server(true, lport, ACK, add(RS_ISN, 1), add(ISN, 1 + L + req.length))).out;
    const c = tcpOf(a[0].frame).tcp;
    assert.equal(c.ack, add(ISN, 1 + req.length));
    assert.equal(c.seq, add(cookie, 1));
    // The client's next segment: shifted by the header, its ack back into the real server's numbers.
    const n = d.input(1, client(ACK | PSH, add(ISN, 1 + req.length), add(cookie, 1), [], bytes("x"))).out;
    const t = tcpOf(n[0].frame).tcp;
    assert.equal(t.seq, add(ISN, 1 + L + req.length));
    assert.equal(t.ack, add(RS_ISN, 1));
  });
});

describe("SYN proxy: a bad cookie never reaches a real server", () => {
  it("a forged ACK gets a reset and a counter", () => {
    const d = director("-m");
    const r = d.input(1, client(ACK, add(ISN, 1), 0x12345678, [], bytes("x")));
    assert.equal(r.out.length, 1);
    const o = tcpOf(r.out[0].frame);
    assert.equal(o.dst, IP.client1);
    assert.equal(o.tcp.flags & RST, RST);
    assert.equal(o.tcp.seq, 0x12345678);
    assert.equal(d.engine.counters.synproxyAcksInvalid, 1);
    assert.equal(d.engine.connCount(), 0);
  });

  it("the cookie of another 4-tuple or a far-off ISN is refused", () => {
    // (An ISN a few off passes as other data: the kernel's construction adds the ISN linearly.
    // Only one who saw the SYN-ACK knows the cookie, and it could answer it anyway.)
    const d = director("-m");
    const c = synAck(d, mssOpt(1460)).seq;
    const other = tcpFrame(
      L2_FROM_ROUTER,
      { src: ip(IP.client1), dst: ip(IP.vip) },
      { sport: CPORT + 1, dport: 80, flags: ACK, seq: add(ISN, 1), ack: add(c, 1) },
    );
    assert.equal(tcpOf(d.input(1, other).out[0].frame).tcp.flags & RST, RST);
    assert.equal(
      tcpOf(d.input(1, client(ACK, add(ISN, 0x10001), add(c, 1))).out[0].frame).tcp.flags & RST,
      RST,
    );
    assert.equal(d.engine.counters.synproxyAcksInvalid, 2);
    assert.equal(d.engine.connCount(), 0);
  });

  it("a cookie two minutes old has expired; one minute old is still good", () => {
    for (const [after, ok] of [
      [60_000, true],
      [120_000, false],
    ] as const) {
      const d = director("-m");
      const t0 = 60_000 * 1000;
      d.advance(t0);
      const c = synAck(d, mssOpt(1460)).seq;
      d.advance(t0 + after);
      const r = d.input(1, client(ACK, add(ISN, 1), add(c, 1)), t0 + after);
      const t = tcpOf(r.out[0].frame);
      assert.equal((t.tcp.flags & RST) === 0, ok, `${after} ms later`);
    }
  });
});

describe("SYN proxy: ipvsadm", () => {
  it("-j enable|disable and --synproxy parse into the service's flag", () => {
    for (const [args, on] of [
      ["--synproxy", true],
      ["--synproxy enable", true],
      ["-j enable", true],
      ["-j disable", false],
    ] as const) {
      const r = parseIpvsadm(`-A -t ${IP.vip}:80 -s rr ${args}`.split(" "));
      assert.equal(r.kind, "ctl");
      if (r.kind === "ctl" && r.cmd.op === "add-service")
        assert.equal((r.cmd.svc.flags & 0x10000) !== 0, on, args);
    }
    assert.throws(
      () => parseIpvsadm(`-A -t ${IP.vip}:80 -j maybe`.split(" ")),
      /synproxy switch must be enable or disable/,
    );
  });

  it("refuses UDP, and DR or TUN real servers, with the reason", () => {
    const d = new Director();
    assert.throws(() => d.ipvsadm(`-A -u ${IP.vip}:53 -s rr --synproxy`), /TCP virtual services/);
    d.ipvsadm(`-A -t ${IP.vip}:80 -s rr --synproxy`);
    assert.throws(
      () => d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:80 -g`),
      /DR and TUN replies bypass the director/,
    );
    assert.throws(() => d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:80 -i`), /bypass/);
    d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:80 -m`);
    d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs2}:80 --fullnat`);
    d.ipvsadm(`-A -t ${IP.vip}:81 -s rr`);
    d.ipvsadm(`-a -t ${IP.vip}:81 -r ${IP.rs1}:80 -g`);
    assert.throws(() => d.ipvsadm(`-E -t ${IP.vip}:81 -s rr --synproxy`), /bypass/);
  });
});

describe("SYN proxy over IPv6 (NAT)", () => {
  it("cookie SYN-ACK from the VIP, the SYN to the real server, its SYN-ACK completing it", () => {
    const d = new Director6();
    const vip = "2001:db8::100";
    const rs = "2001:db8:1::11";
    const cl = "2001:db8:ff::10";
    d.ipvsadm(`-A -t [${vip}]:80 -s rr --synproxy`);
    d.ipvsadm(`-a -t [${vip}]:80 -r [${rs}]:8080 -m`);
    const c = (
      flags: number,
      seq: number,
      ack: number,
      options: number[] = [],
      payload?: Uint8Array,
    ): Uint8Array =>
      tcp6Frame(
        L2_6_FROM_ROUTER,
        { src: cl, dst: vip },
        { sport: CPORT, dport: 80, flags, seq, ack, options: Uint8Array.from(options), payload },
      );
    const sa = d.input(1, c(SYN, ISN, 0, [...mssOpt(1440), ...sackPerm, ...tsOpt(77, 0), ...wsOpt(6)])).out;
    assert.equal(sa.length, 1);
    const t = decode6(sa[0].frame.subarray(14));
    assert.equal(t.src, IP6.vip);
    assert.equal(t.dst, IP6.client1);
    assert.ok(t.tcp);
    assert.equal(t.tcp.flags, SYN | ACK);
    assert.equal(t.tcp.ack, add(ISN, 1));
    const cookie = t.tcp.seq;
    assert.equal(d.engine.connCount(), 0);
    const syn = d.input(1, c(ACK | PSH, add(ISN, 1), add(cookie, 1), tsOpt(80, cookie), bytes("hi"))).out;
    assert.equal(syn.length, 1);
    const s = decode6(syn[0].frame.subarray(14));
    assert.equal(s.dst, IP6.rs1);
    assert.equal(s.src, IP6.client1);
    assert.equal(s.tcp?.flags, SYN);
    assert.equal(s.tcp?.seq, ISN);
    const fromRs = l2_6FromLan(MAC6.rs1);
    const done = d.input(
      2,
      tcp6Frame(
        fromRs,
        { src: rs, dst: cl },
        {
          sport: 8080,
          dport: CPORT,
          flags: SYN | ACK,
          seq: RS_ISN,
          ack: add(ISN, 1),
          options: Uint8Array.from(tsOpt(5000, 80)),
        },
      ),
    ).out;
    assert.equal(done.length, 2, "the ACK and the held data");
    const h = decode6(done[1].frame.subarray(14));
    assert.equal(h.tcp?.ack, add(RS_ISN, 1));
    assert.equal(new TextDecoder().decode(h.tcp?.payload), "hi");
    const rep = d.input(
      2,
      tcp6Frame(
        fromRs,
        { src: rs, dst: cl },
        {
          sport: 8080,
          dport: CPORT,
          flags: ACK,
          seq: add(RS_ISN, 1),
          ack: add(ISN, 3),
          options: Uint8Array.from(tsOpt(5001, 80)),
        },
      ),
    ).out;
    const back = decode6(rep[0].frame.subarray(14));
    assert.equal(back.src, IP6.vip);
    assert.equal(back.tcp?.seq, add(cookie, 1));
  });
});

// ---------------------------------------------------------------- connection sync

for (const method of ["-m", "--fullnat"] as const) {
  const name = method === "-m" ? "NAT" : "FULLNAT";
  describe(`SYN proxy ${name} and connection sync`, () => {
    it("a backup given the master's entry translates the real server's and the client's segments as the master", () => {
      const f = handshake(method, FULL);
      const sender = new SyncSender(f.d.engine, { syncid: 1, maxlen: 1472 });
      f.d.engine.syncMaster = sender;
      const rsTs = 700000;
      f.d.input(
        2,
        server(f.fullnat, f.lport, SYN | ACK, RS_ISN, add(ISN, 1), [
          ...mssOpt(1460),
          4,
          2,
          ...tsOpt(rsTs, f.tsv),
          1,
          3,
          3,
          9,
        ]),
      );
      // The client's segments after the handshake: the entry is synced once ESTABLISHED.
      for (let i = 1; i <= 3; i++)
        f.d.input(
          1,
          client(ACK | PSH, add(ISN, i), add(f.cookie, 1), tsOpt(1005 + i, add(f.cookie, 0)), bytes("x")),
        );
      sender.flush(f.d.now, 0);
      const entries: SyncConn[] = [];
      for (const m of sender.takeMessages())
        assert.ok(decodeSyncMessage(m, m.length, 1, (c) => entries.push({ ...c, a6: c.a6.slice() })).ok);
      const synced = entries.filter((c) => c.sp);
      assert.ok(synced.length > 0, `an entry with the SYN proxy's option: ${JSON.stringify(entries)}`);
      assert.equal(synced[0].spSeqd, (f.cookie - RS_ISN) | 0, "the sequence delta");

      const b = director(method);
      for (const c of synced) b.engine.installSynced(c, b.now);
      const bc = b.engine.connections(b.now);
      assert.equal(bc.length, 1);
      assert.equal(bc[0].state, "ESTABLISHED");

      // The real server's reply and the client's SACK through each: the same frames out.
      const reply = server(
        f.fullnat,
        f.lport,
        ACK | PSH,
        add(RS_ISN, 1),
        add(ISN, 4),
        tsOpt(rsTs + 9, 1008),
        bytes("HTTP/1.1 200 OK\r\n\r\n"),
        100,
      );
      const sack = client(ACK, add(ISN, 4), add(f.cookie, 40), [
        ...tsOpt(1010, add(f.cookie, 9)),
        ...sackOpt(add(f.cookie, 200), add(f.cookie, 300)),
      ]);
      for (const [ifindex, frame] of [
        [2, reply],
        [1, sack],
      ] as const) {
        const m = f.d.input(ifindex, frame.slice());
        const k = b.input(ifindex, frame.slice());
        assert.equal(k.out.length, 1);
        assert.deepEqual(tcpOf(k.out[0].frame), tcpOf(m.out[0].frame));
      }
      const c = tcpOf(b.input(2, reply.slice()).out[0].frame).tcp;
      assert.equal(c.seq, add(f.cookie, 1), "the real server's sequence number in the client's view");
      assert.equal(be32(opt(c, 8)!, 0), add(f.cookie, 9), "its TSval too");
    });
  });
}
