// GSO/GRO aggregates through the engine (issue 10): packet in → packets out.
//
// An aggregate comes in with its offload word (gso_type, gso_size, NEEDS_CSUM) and a partial
// checksum (the field holds the pseudo-header sum). NAT, DR and FULLNAT (TOA already sent)
// rewrite it once and send it whole with a virtio_net_hdr; its checksum field must then be the
// pseudo-header sum of the new addresses, so that the checksum the kernel finishes equals the full
// checksum the test builder computes for the expected packet. TUN and FULLNAT with TOA to add cut
// it in software: each segment is compared with what the kernel's GSO would make of it
// (referenceSegments in the builder), and decoded with every checksum verified. MTU decisions
// look at gso_size, not at the aggregate's length.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { Engine, Verdict } from "../../src/core/engine.js";
import {
  makeOffloadWord,
  VNET_F_NEEDS_CSUM,
  VNET_GSO_ECN,
  VNET_GSO_TCPV4,
  VNET_GSO_UDP_L4,
} from "../../src/core/packet/vnet.js";
import { decodeFrame, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import {
  ACK,
  arpFrame,
  asPartial,
  FIN,
  inetChecksum,
  ip,
  PSH,
  pseudoHeader,
  pseudoHeaderSum,
  referenceSegments,
  SYN,
  tcpFrame,
  udpFrame,
} from "../support/packet-builder.js";

const CWR = 0x80;
const CLIENT = ip(IP.client1);
const VIP = ip(IP.vip);
const RS1 = ip(IP.rs1);
const LIP = ip(IP.lip);

interface Out {
  ifindex: number;
  frame: Uint8Array;
  vnet: Uint8Array | null;
}

function macBytes(s: string): Uint8Array {
  return Uint8Array.from(s.split(":").map((x) => Number.parseInt(x, 16)));
}

/** The topology of test/support/frames.ts's Director, with the virtio_net_hdr of every frame kept. */
class GsoDirector {
  readonly engine: Engine;
  out: Out[] = [];
  now = 1000;

  constructor(o: { mtu1?: number } = {}) {
    let seed = 99;
    this.engine = new Engine({
      interfaces: [
        {
          ifindex: 1,
          name: "eth0",
          mac: macBytes(MAC.dir0),
          addrs: [{ addr: ip(IP.dir0), prefix: 24 }],
          mtu: 1500,
        },
        {
          ifindex: 2,
          name: "eth1",
          mac: macBytes(MAC.dir1),
          addrs: [{ addr: ip(IP.dir1), prefix: 24 }],
          mtu: o.mtu1 ?? 1500,
        },
      ],
      routes: [{ dst: 0, prefix: 0, via: ip(IP.router), ifindex: 1 }],
      lips: [LIP],
      random: () => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed;
      },
      send: (ifindex, buf, off, len, vnet) => {
        this.out.push({
          ifindex,
          frame: buf.slice(off, off + len),
          vnet: vnet === null ? null : vnet.slice(),
        });
      },
    });
    const n = this.engine.neigh;
    n.confirm(1, ip(IP.router), macBytes(MAC.router), this.now);
    n.confirm(2, RS1, macBytes(MAC.rs1), this.now);
  }

  ipvsadm(line: string): void {
    const r = parseIpvsadm(line.trim().split(/\s+/));
    if (r.kind !== "ctl") throw new Error(`not a control command: ${line}`);
    this.engine.apply(r.cmd);
  }

  input(ifindex: number, frame: Uint8Array, offload = 0): { verdict: number; out: Out[] } {
    const buf = new Uint8Array(frame.length + 64);
    buf.set(frame);
    this.out = [];
    const verdict = this.engine.input(ifindex, buf, frame.length, this.now, offload);
    const out = this.out;
    this.out = [];
    return { verdict, out };
  }
}

const be16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];
const le16 = (b: Uint8Array, o: number): number => b[o] | (b[o + 1] << 8);
const be32 = (b: Uint8Array, o: number): number =>
  ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

/** What the device does with a partial checksum: sum from csum_start to the end, complement, store. */
function finishChecksum(frame: Uint8Array, start: number, offset: number): Uint8Array {
  const b = frame.slice();
  let s = 0;
  for (let i = start; i < b.length; i += 2) s += (b[i] << 8) | (i + 1 < b.length ? b[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  const c = ~s & 0xffff;
  b[start + offset] = c >>> 8;
  b[start + offset + 1] = c & 255;
  return b;
}

function payloadOf(n: number, seed: number): Uint8Array {
  const p = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    p[i] = x >>> 24;
  }
  return p;
}

/** Frames the director sends to RS1 on its LAN. */
const L2_TO_RS1 = { dmac: macBytes(MAC.rs1), smac: macBytes(MAC.dir1) };

const TCP_AGG = (mss: number): number => makeOffloadWord(VNET_GSO_TCPV4, mss, VNET_F_NEEDS_CSUM);

function natDirector(fwd: "-m" | "-g" | "-i" | "--fullnat", o: { mtu1?: number } = {}): GsoDirector {
  const d = new GsoDirector(o);
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:${fwd === "-m" || fwd === "--fullnat" ? 8080 : 80} ${fwd}`);
  d.ipvsadm(`-A -u ${IP.vip}:53 -s rr`);
  d.ipvsadm(`-a -u ${IP.vip}:53 -r ${IP.rs1}:5353 ${fwd === "--fullnat" ? "-m" : fwd}`);
  return d;
}

/** A SYN from the client (and the server's SYN/ACK where replies cross the director). */
function handshake(d: GsoDirector, replies: boolean, serverPort = 8080, serverAddr = CLIENT): void {
  const syn = d.input(
    1,
    tcpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP, ttl: 64 },
      { sport: 40000, dport: 80, flags: SYN, seq: 100 },
    ),
  );
  assert.equal(syn.verdict, Verdict.Sent);
  if (!replies) return;
  const sa = d.input(
    2,
    tcpFrame(
      l2FromLan(MAC.rs1),
      { src: RS1, dst: serverAddr, ttl: 64 },
      {
        sport: serverPort,
        dport: serverAddr === LIP ? lportOf(d) : 40000,
        flags: SYN | ACK,
        seq: 5000,
        ack: 101,
      },
    ),
  );
  assert.equal(sa.verdict, Verdict.Sent);
}

function lportOf(d: GsoDirector): number {
  const c = d.engine.connections(d.now).find((v) => !v.template && v.lport !== 0);
  assert.ok(c !== undefined, "a FULLNAT connection");
  return c.lport;
}

interface WholeCase {
  desc: string;
  setup: () => GsoDirector;
  inIf: number;
  /** The aggregate as it arrives (full checksum: asPartial makes it partial). */
  agg: () => Uint8Array;
  offload: number;
  /** The expected output, with a full checksum (built independently). */
  want: (d: GsoDirector) => Uint8Array;
  outIf: number;
  gsoType: number;
  mss: number;
}

const BIG = payloadOf(20000, 7);
const fromClient = (flags: number, payload = BIG, src = CLIENT, ttl = 64): Uint8Array =>
  tcpFrame(
    L2_FROM_ROUTER,
    { src, dst: VIP, ttl, df: true, id: 0x4000 },
    { sport: 40000, dport: 80, flags, seq: 101, ack: 5001, payload },
  );

const wholeCases: WholeCase[] = [
  {
    desc: "NAT request: VIP:80 → RIP:8080",
    setup: () => {
      const d = natDirector("-m");
      handshake(d, true);
      return d;
    },
    inIf: 1,
    agg: () => fromClient(ACK | PSH),
    offload: TCP_AGG(1448),
    want: () =>
      tcpFrame(
        L2_TO_RS1,
        { src: CLIENT, dst: RS1, ttl: 63, df: true, id: 0x4000 },
        { sport: 40000, dport: 8080, flags: ACK | PSH, seq: 101, ack: 5001, payload: BIG },
      ),
    outIf: 2,
    gsoType: VNET_GSO_TCPV4,
    mss: 1448,
  },
  {
    desc: "NAT reply: RIP:8080 → VIP:80, ECN bit kept",
    setup: () => {
      const d = natDirector("-m");
      handshake(d, true);
      return d;
    },
    inIf: 2,
    agg: () =>
      tcpFrame(
        l2FromLan(MAC.rs1),
        { src: RS1, dst: CLIENT, ttl: 64, df: true, id: 7 },
        { sport: 8080, dport: 40000, flags: ACK, seq: 5001, ack: 101, payload: BIG },
      ),
    offload: makeOffloadWord(VNET_GSO_TCPV4 | VNET_GSO_ECN, 1448, VNET_F_NEEDS_CSUM),
    want: () =>
      tcpFrame(
        { dmac: macBytes(MAC.router), smac: macBytes(MAC.dir0) },
        { src: VIP, dst: CLIENT, ttl: 63, df: true, id: 7 },
        { sport: 80, dport: 40000, flags: ACK, seq: 5001, ack: 101, payload: BIG },
      ),
    outIf: 1,
    gsoType: VNET_GSO_TCPV4 | VNET_GSO_ECN,
    mss: 1448,
  },
  {
    desc: "DR request: unchanged but TTL",
    setup: () => {
      const d = natDirector("-g");
      handshake(d, false);
      return d;
    },
    inIf: 1,
    agg: () => fromClient(ACK),
    offload: TCP_AGG(1448),
    want: () =>
      tcpFrame(
        L2_TO_RS1,
        { src: CLIENT, dst: VIP, ttl: 63, df: true, id: 0x4000 },
        { sport: 40000, dport: 80, flags: ACK, seq: 101, ack: 5001, payload: BIG },
      ),
    outIf: 2,
    gsoType: VNET_GSO_TCPV4,
    mss: 1448,
  },
  {
    desc: "FULLNAT request after the handshake (TOA sent): CIP:cport → LIP:lport, VIP → RIP",
    setup: () => {
      const d = natDirector("--fullnat");
      handshake(d, true, 8080, LIP);
      // The handshake's ACK carries TOA and marks it sent.
      const ack = d.input(1, fromClient(ACK, new Uint8Array(0)));
      assert.equal(ack.verdict, Verdict.Sent);
      assert.ok(decodeFrame(ack.out[0].frame).ip?.tcp?.toa !== null, "TOA on the handshake ACK");
      return d;
    },
    inIf: 1,
    agg: () => fromClient(ACK | PSH),
    offload: TCP_AGG(1448),
    want: (d) =>
      tcpFrame(
        L2_TO_RS1,
        { src: LIP, dst: RS1, ttl: 63, df: true, id: 0x4000 },
        { sport: lportOf(d), dport: 8080, flags: ACK | PSH, seq: 101, ack: 5001, payload: BIG },
      ),
    outIf: 2,
    gsoType: VNET_GSO_TCPV4,
    mss: 1448,
  },
  {
    desc: "NAT UDP_L4 aggregate: VIP:53 → RIP:5353",
    setup: () => natDirector("-m"),
    inIf: 1,
    agg: () =>
      udpFrame(
        L2_FROM_ROUTER,
        { src: CLIENT, dst: VIP, ttl: 64, id: 9 },
        { sport: 5000, dport: 53, payload: BIG.subarray(0, 6000) },
      ),
    offload: makeOffloadWord(VNET_GSO_UDP_L4, 1000, VNET_F_NEEDS_CSUM),
    want: () =>
      udpFrame(
        L2_TO_RS1,
        { src: CLIENT, dst: RS1, ttl: 63, id: 9 },
        { sport: 5000, dport: 5353, payload: BIG.subarray(0, 6000) },
      ),
    outIf: 2,
    gsoType: VNET_GSO_UDP_L4,
    mss: 1000,
  },
];

describe("aggregates rewritten once and sent whole with a virtio_net_hdr", () => {
  for (const c of wholeCases) {
    it(c.desc, () => {
      const d = c.setup();
      const before = { ...d.engine.counters };
      const r = d.input(c.inIf, asPartial(c.agg()), c.offload);
      assert.equal(r.verdict, Verdict.Sent);
      assert.equal(r.out.length, 1, "one frame out: the aggregate, whole");
      const o = r.out[0];
      assert.equal(o.ifindex, c.outIf);
      const want = c.want(d);
      assert.equal(o.frame.length, want.length);
      const udp = c.gsoType === VNET_GSO_UDP_L4;
      const l4 = 14 + 20;
      const field = udp ? 6 : 16;
      const hdrEnd = l4 + (udp ? 8 : 20);
      // virtio_net_hdr: NEEDS_CSUM, the gso type and size, headers, where the checksum goes.
      assert.ok(o.vnet !== null, "sent with a virtio_net_hdr");
      assert.deepEqual(
        [o.vnet[0], o.vnet[1], le16(o.vnet, 2), le16(o.vnet, 4), le16(o.vnet, 6), le16(o.vnet, 8)],
        [VNET_F_NEEDS_CSUM, c.gsoType, hdrEnd, c.mss, l4, field],
      );
      // The field holds the pseudo-header sum of the rewritten addresses...
      const l4Len = want.length - l4;
      assert.equal(
        be16(o.frame, l4 + field),
        pseudoHeaderSum(be32(want, 26), be32(want, 30), udp ? 17 : 6, l4Len),
      );
      // ...so the checksum the device finishes is the full one of the expected packet, and every
      // other byte (headers rewritten once, payload untouched) is the expected packet's.
      assert.deepEqual(finishChecksum(o.frame, l4, field), want);
      const k = d.engine.counters;
      assert.equal(k.gsoIn - before.gsoIn, 1);
      assert.equal(k.gsoOut - before.gsoOut, 1);
      assert.equal(k.gsoSegmented - before.gsoSegmented, 0);
    });
  }
});

describe("an aggregate that waits for its next hop's ARP answer", () => {
  it("leaves with its virtio_net_hdr once the neighbour answers (the kernel refuses it without)", () => {
    const d = natDirector("-g");
    assert.ok(d.engine.neigh.delete(2, RS1), "RS1 unknown: its MAC must be asked for");
    handshake(d, false);
    const r = d.input(1, asPartial(fromClient(ACK)), TCP_AGG(1448));
    assert.equal(r.verdict, Verdict.Sent);
    assert.equal(r.out.length, 0, "queued behind the ARP request (sent with the SYN)");
    const answer = d.input(
      2,
      arpFrame(macBytes(MAC.dir1), macBytes(MAC.rs1), {
        op: 2,
        sha: macBytes(MAC.rs1),
        spa: RS1,
        tha: macBytes(MAC.dir1),
        tpa: ip(IP.dir1),
      }),
    );
    assert.equal(answer.out.length, 2, "the SYN, then the aggregate");
    const [syn, agg] = answer.out;
    assert.equal(syn.vnet, null);
    assert.ok(agg.vnet !== null, "the aggregate keeps its header while it waits");
    assert.deepEqual(
      [agg.vnet[0], agg.vnet[1], le16(agg.vnet, 4)],
      [VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 1448],
    );
    const want = tcpFrame(
      L2_TO_RS1,
      { src: CLIENT, dst: VIP, ttl: 63, df: true, id: 0x4000 },
      { sport: 40000, dport: 80, flags: ACK, seq: 101, ack: 5001, payload: BIG },
    );
    assert.deepEqual(finishChecksum(agg.frame, 14 + 20, 16), want);
  });
});

describe("aggregates cut in software", () => {
  it("TUN: each segment IPIP-encapsulated, as the kernel's GSO would cut it, checksums full, bytes in order", () => {
    const d = natDirector("-i");
    handshake(d, false);
    const payload = BIG.subarray(0, 10000);
    const agg = fromClient(ACK | PSH | FIN | CWR, payload);
    const r = d.input(1, asPartial(agg), TCP_AGG(1400));
    assert.equal(r.verdict, Verdict.Sent);
    // The reference: the aggregate as forwarded (TTL - 1), cut by the builder's own GSO.
    const fwd = agg.slice(14);
    fwd[8] = 63;
    fwd[10] = 0;
    fwd[11] = 0;
    const ck = inetChecksum(fwd.subarray(0, 20));
    fwd[10] = ck >>> 8;
    fwd[11] = ck & 255;
    const ref = referenceSegments(fwd, 1400);
    assert.equal(ref.length, 8);
    assert.equal(r.out.length, ref.length, "one IPIP frame per segment");
    const got: Uint8Array[] = [];
    r.out.forEach((o, k) => {
      assert.equal(o.vnet, null, "segments are plain frames");
      assert.equal(o.ifindex, 2);
      const dec = decodeFrame(o.frame); // verifies outer and inner checksums
      const inner = dec.ip?.ipip;
      assert.ok(inner?.tcp, `segment ${k} is IPIP with TCP inside`);
      assert.deepEqual(o.frame.subarray(14 + 20), ref[k], `segment ${k} as the kernel's GSO makes it`);
      assert.equal(inner.tcp.seq, (101 + k * 1400) >>> 0);
      assert.equal(inner.id, (0x4000 + k) & 0xffff);
      assert.equal((inner.tcp.flags & CWR) !== 0, k === 0, `CWR only on the first (segment ${k})`);
      assert.equal(
        (inner.tcp.flags & (FIN | PSH)) !== 0,
        k === ref.length - 1,
        `FIN/PSH only on the last (segment ${k})`,
      );
      got.push(inner.tcp.payload);
    });
    assert.deepEqual(Buffer.concat(got), Buffer.from(payload));
    const k = d.engine.counters;
    assert.deepEqual([k.gsoIn, k.gsoOut, k.gsoSegmented, k.gsoSegments], [1, 0, 1, 8]);
  });

  it("FULLNAT: the handshake ACK coalesced with data is cut, TOA only in the first segment", () => {
    const d = natDirector("--fullnat");
    handshake(d, true, 8080, LIP);
    const payload = BIG.subarray(0, 3000);
    const r = d.input(1, asPartial(fromClient(ACK, payload)), TCP_AGG(1000));
    assert.equal(r.verdict, Verdict.Sent);
    assert.equal(r.out.length, 3);
    const segs = r.out.map((o) => {
      assert.equal(o.vnet, null);
      return decodeFrame(o.frame).ip?.tcp; // checksums verified
    });
    assert.deepEqual(
      segs.map((t) => [t?.toa === null ? null : t?.toa.addr, t?.seq, t?.payload.length]),
      [
        [IP.client1, 101, 1000],
        [null, 1101, 1000],
        [null, 2101, 1000],
      ],
    );
    // The next aggregate goes whole: TOA was sent.
    const next = d.input(1, asPartial(fromClient(ACK, payload)), TCP_AGG(1000));
    assert.equal(next.out.length, 1);
    assert.notEqual(next.out[0].vnet, null);
  });

  it("an aggregate without NEEDS_CSUM (no partial checksum to finish) is cut, full checksums", () => {
    const d = natDirector("-m");
    handshake(d, true);
    const r = d.input(1, fromClient(ACK, BIG.subarray(0, 4000)), makeOffloadWord(VNET_GSO_TCPV4, 1448, 0));
    assert.equal(r.out.length, 3);
    for (const o of r.out) {
      assert.equal(o.vnet, null);
      assert.equal(decodeFrame(o.frame).ip?.tcp?.dport, 8080);
    }
  });
});

describe("MTU decisions for aggregates look at gso_size", () => {
  it("a 20 KB NAT aggregate of 1448-byte segments fits a 1500 link: forwarded, no ICMP", () => {
    const d = natDirector("-m");
    handshake(d, true);
    const r = d.input(1, asPartial(fromClient(ACK)), TCP_AGG(1448));
    assert.deepEqual([r.verdict, r.out.length, r.out[0].ifindex], [Verdict.Sent, 1, 2]);
    assert.equal(d.engine.counters.icmpErrorsSent, 0);
  });

  it("segments too big for the destination's link (DF): fragmentation needed with that MTU, dropped", () => {
    const d = natDirector("-m", { mtu1: 1400 });
    handshake(d, true);
    // The method declines (the ICMP error is its only output); the drop is counted below.
    const r = d.input(1, asPartial(fromClient(ACK)), TCP_AGG(1448));
    assert.notEqual(r.verdict, Verdict.Sent);
    assert.equal(r.out.length, 1);
    const icmp = decodeFrame(r.out[0].frame).ip?.icmp;
    assert.deepEqual([icmp?.type, icmp?.code, (icmp?.rest ?? 0) & 0xffff], [3, 4, 1400]);
    assert.equal(d.engine.counters.dropTable().frag_needed, 1);
  });

  it("TUN: segments + 20 bytes of IPIP over the MTU (DF): one fragmentation-needed (MTU 1480), not one per segment", () => {
    const d = natDirector("-i");
    handshake(d, false);
    // The method declines (the ICMP error is its only output); the drop is counted below.
    const r = d.input(1, asPartial(fromClient(ACK)), TCP_AGG(1448));
    assert.notEqual(r.verdict, Verdict.Sent);
    assert.equal(r.out.length, 1);
    const icmp = decodeFrame(r.out[0].frame).ip?.icmp;
    assert.deepEqual([icmp?.type, icmp?.code, (icmp?.rest ?? 0) & 0xffff], [3, 4, 1480]);
    assert.equal(d.engine.counters.gsoSegments, 1);
  });
});

describe("the pseudo-header sum of a partial checksum", () => {
  it("finishing it over the segment gives the full checksum (builder's reference)", () => {
    const f = tcpFrame(
      L2_FROM_ROUTER,
      { src: CLIENT, dst: VIP },
      { sport: 1, dport: 2, flags: ACK, payload: BIG.subarray(0, 999) },
    );
    const p = asPartial(f);
    const l4 = f.subarray(34);
    assert.equal(be16(p, 34 + 16), pseudoHeaderSum(CLIENT, VIP, 6, l4.length));
    assert.deepEqual(finishChecksum(p, 34, 16), f);
    assert.equal(inetChecksum(pseudoHeader(CLIENT, VIP, 6, l4.length), l4), 0);
  });
});

describe("a plain frame received CHECKSUM_PARTIAL (NEEDS_CSUM, no gso_type): the engine finishes its sum once", () => {
  const PLAIN_PARTIAL = makeOffloadWord(0, 0, VNET_F_NEEDS_CSUM);
  const small = BIG.subarray(0, 700);
  const cases: {
    desc: string;
    fwd: "-m" | "-g";
    frame: () => Uint8Array;
    want: (d: GsoDirector) => Uint8Array;
  }[] = [
    {
      desc: "NAT: TCP to RIP:8080, the full checksum of the rewritten packet",
      fwd: "-m",
      frame: () => fromClient(ACK | PSH, small),
      want: () =>
        tcpFrame(
          L2_TO_RS1,
          { src: CLIENT, dst: RS1, ttl: 63, df: true, id: 0x4000 },
          { sport: 40000, dport: 8080, flags: ACK | PSH, seq: 101, ack: 5001, payload: small },
        ),
    },
    {
      desc: "NAT: UDP to RIP:5353",
      fwd: "-m",
      frame: () =>
        udpFrame(
          L2_FROM_ROUTER,
          { src: CLIENT, dst: VIP, ttl: 64 },
          { sport: 5000, dport: 53, payload: small },
        ),
      want: () =>
        udpFrame(L2_TO_RS1, { src: CLIENT, dst: RS1, ttl: 63 }, { sport: 5000, dport: 5353, payload: small }),
    },
    {
      desc: "DR: the segment goes on unchanged, with its full checksum (the real server verifies it)",
      fwd: "-g",
      frame: () => fromClient(ACK | PSH, small),
      want: () =>
        tcpFrame(
          L2_TO_RS1,
          { src: CLIENT, dst: VIP, ttl: 63, df: true, id: 0x4000 },
          { sport: 40000, dport: 80, flags: ACK | PSH, seq: 101, ack: 5001, payload: small },
        ),
    },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const d = natDirector(c.fwd);
      handshake(d, c.fwd === "-m");
      const before = d.engine.counters.csumCompleted;
      const r = d.input(1, asPartial(c.frame()), PLAIN_PARTIAL);
      assert.equal(r.verdict, Verdict.Sent);
      assert.equal(r.out.length, 1);
      assert.equal(r.out[0].vnet, null, "a plain frame leaves without a virtio_net_hdr");
      assert.deepEqual(r.out[0].frame, c.want(d));
      assert.equal(d.engine.counters.csumCompleted - before, 1);
    });
  }
});
