// Reading a batch ahead (Engine.aheadFrame, aheadRecords) only reads: over batches of requests,
// the replies they draw and mutated frames, a director that reads each batch ahead first sends
// exactly what one that does not sends and gives the same verdicts, IPv4 and IPv6. Any bytes are
// taken without throwing.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ipv6TextWords } from "../../src/core/addr.js";
import type { Engine } from "../../src/core/engine.js";
import { decodeFrame, everyMethodDirector, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { Director6, decode6, IP6, L2_6_FROM_ROUTER, l2_6FromLan, MAC6 } from "../support/frames6.js";
import { ACK, ip, PSH, SYN, tcpFrame, udpFrame } from "../support/packet-builder.js";
import { tcp6Frame, udp6Frame } from "../support/packet6.js";

interface Dir {
  readonly engine: Engine;
  out: { frame: Uint8Array }[];
  now: number;
}

/** The tuple of a frame the director sent, or null when it is not TCP/UDP or does not decode. */
interface Sent {
  src: string | number;
  dst: string | number;
  proto: number;
  sport: number;
  dport: number;
}

interface Family {
  director(): Dir;
  /** A client's request to one of the director's services (ports 53/54 UDP, 80-83 TCP; IPv6 has 53, 80, 81). */
  request(client: number, sport: number, dport: number, flags: number): Uint8Array;
  /** What the director sent, decoded; null for what does not decode (a mutated frame's rewrite). */
  sent(frame: Uint8Array): Sent | null;
  /** The real server's answer to a request the director forwarded. */
  reply(s: Sent): Uint8Array;
}

const v4: Family = {
  director: everyMethodDirector,
  request(client, sport, dport, flags) {
    const f = { src: (0xcb000000 | client) >>> 0, dst: ip(IP.vip) };
    return dport < 60
      ? udpFrame(L2_FROM_ROUTER, f, { sport, dport, payload: new Uint8Array(8) })
      : tcpFrame(L2_FROM_ROUTER, f, { sport, dport, flags });
  },
  sent(frame) {
    try {
      const f = decodeFrame(frame).ip;
      return f === null || (f.proto !== 6 && f.proto !== 17) ? null : f;
    } catch {
      return null;
    }
  },
  reply(s) {
    const back = { src: ip(s.dst as string), dst: ip(s.src as string) };
    return s.proto === 17
      ? udpFrame(l2FromLan(MAC.rs1), back, { sport: s.dport, dport: s.sport, payload: new Uint8Array(4) })
      : tcpFrame(l2FromLan(MAC.rs1), back, { sport: s.dport, dport: s.sport, flags: ACK });
  },
};

const v6: Family = {
  director() {
    const d = new Director6();
    d.ipvsadm(`-A -t [${IP6.vip}]:80 -s rr`);
    d.ipvsadm(`-a -t [${IP6.vip}]:80 -r [${IP6.rs1}]:8080 -m`);
    d.ipvsadm(`-A -t [${IP6.vip}]:81 -s rr`);
    d.ipvsadm(`-a -t [${IP6.vip}]:81 -r [${IP6.rs2}]:81 -g`);
    d.ipvsadm(`-A -u [${IP6.vip}]:53 -s rr`);
    d.ipvsadm(`-a -u [${IP6.vip}]:53 -r [${IP6.rs1}]:5353 -m`);
    return d;
  },
  request(client, sport, dport, flags) {
    const f = { src: `2001:db8:ff::${(client & 0xffff).toString(16)}`, dst: IP6.vip };
    return dport < 60
      ? udp6Frame(L2_6_FROM_ROUTER, f, { sport, dport: 53, payload: new Uint8Array(8) })
      : tcp6Frame(L2_6_FROM_ROUTER, f, { sport, dport: dport === 80 ? 80 : 81, flags });
  },
  sent(frame) {
    try {
      const f = decode6(frame.subarray(14));
      return f.nh !== 6 && f.nh !== 17 ? null : { ...f, proto: f.nh };
    } catch {
      return null;
    }
  },
  reply(s) {
    const back = { src: s.dst as string, dst: s.src as string };
    return s.proto === 17
      ? udp6Frame(l2_6FromLan(MAC6.rs1), back, { sport: s.dport, dport: s.sport, payload: new Uint8Array(4) })
      : tcp6Frame(l2_6FromLan(MAC6.rs1), back, { sport: s.dport, dport: s.sport, flags: ACK });
  },
};

const hex = (out: { frame: Uint8Array }[]): string[] => out.map((o) => Buffer.from(o.frame).toString("hex"));

/** Feeds frames in batches; with ahead, each batch is read ahead first. Verdicts and frames sent. */
function run(
  fam: Family,
  first: Uint8Array[],
  batch: number,
  ahead: boolean,
): { log: string[]; replies: number } {
  const d = fam.director();
  const queue = [...first];
  const log: string[] = [];
  let replies = 0;
  while (queue.length > 0) {
    const bufs = queue.splice(0, batch).map((f) => {
      const buf = new Uint8Array(f.length + 64);
      buf.set(f);
      return { buf, len: f.length, reply: !first.includes(f) };
    });
    if (ahead) {
      for (let k = 0; k < bufs.length; k++) d.engine.aheadFrame(k, bufs[k].buf, bufs[k].len);
      d.engine.aheadRecords(bufs.length);
    }
    for (const b of bufs) {
      d.out = [];
      const v = d.engine.input(b.reply ? 2 : 1, b.buf, b.len, d.now);
      log.push(`${v} ${hex(d.out).join(" ")}`);
      if (b.reply && d.out.length > 0) replies++;
      if (b.reply || log.length > 200) continue;
      for (const o of d.out) {
        const s = fam.sent(o.frame);
        if (s !== null) queue.push(fam.reply(s));
      }
    }
  }
  return { log, replies };
}

for (const [name, fam] of [
  ["IPv4", v4],
  ["IPv6", v6],
] as const) {
  test(`${name}: reading each batch ahead changes no verdict and no frame sent`, () => {
    let replies = 0;
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            client: fc.integer({ min: 1, max: 0xfffffe }),
            sport: fc.integer({ min: 1, max: 65535 }),
            dport: fc.constantFrom(53, 54, 80, 81, 82, 83),
            flags: fc.constantFrom(SYN, ACK, PSH | ACK),
            flip: fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }))),
            cut: fc.nat({ max: 23 }),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        fc.integer({ min: 1, max: 16 }),
        (reqs, batch) => {
          const first = reqs.map((r) => {
            const f = fam.request(r.client, r.sport, r.dport, r.flags);
            if (r.flip === null) return f;
            // Mutated and cut short: whatever input() makes of it, reading ahead must not change.
            f[r.flip[0] % f.length] = r.flip[1];
            return f.subarray(0, Math.max(1, f.length - r.cut));
          });
          const plain = run(fam, first, batch, false);
          const ahead = run(fam, first, batch, true);
          assert.deepEqual(ahead.log, plain.log);
          replies += plain.replies;
        },
      ),
      { numRuns: 200 },
    );
    // The reply direction (the OUT bucket) was read ahead too, not only requests.
    assert.ok(replies > 100, `replies forwarded: ${replies}`);
  });
}

test("aheadFrame takes any bytes without throwing, IPv4 and IPv6 ethertypes", () => {
  const d = v4.director();
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 120 }),
      fc.constantFrom(0x0800, 0x86dd, 0x0806),
      fc.integer({ min: 0, max: 255 }),
      (bytes, type, k) => {
        if (bytes.length >= 14) {
          bytes[12] = type >> 8;
          bytes[13] = type & 0xff;
        }
        d.engine.aheadFrame(k, bytes, bytes.length);
        d.engine.aheadRecords(k + 1);
      },
    ),
    { numRuns: 3000 },
  );
});

function words6(a: string): Int32Array {
  const w = ipv6TextWords(a);
  assert.ok(w !== null, a);
  return w;
}

/** aheadFrame's bucket heads for frame k (private: the engine's inputs do not depend on them). */
/** The heads frame k's reading ahead loaded (aheadRecords has run over the batch). */
function heads(e: Engine, k: number): [number, number] {
  const a = (e as unknown as { ahead: Int32Array }).ahead;
  return [a[2 * k], a[2 * k + 1]];
}

test("aheadFrame and aheadRecords read the buckets input() walks: a request's IN bucket (not OUT, to a VIP), a reply's OUT bucket, both families", () => {
  // One connection per table: its entry heads its buckets, so a head equal to it is the bucket.
  const c4 = ip(IP.client1);
  const d4 = everyMethodDirector();
  d4.input(1, tcpFrame(L2_FROM_ROUTER, { src: c4, dst: ip(IP.vip) }, { sport: 1000, dport: 80, flags: SYN }));
  const cx4 = d4.engine.conns.lookupIn(6, c4, 1000, ip(IP.vip), 80);
  assert.ok(cx4 >= 0);
  const req4 = tcpFrame(L2_FROM_ROUTER, { src: c4, dst: ip(IP.vip) }, { sport: 1000, dport: 80, flags: ACK });
  const rep4 = tcpFrame(
    l2FromLan(MAC.rs1),
    { src: ip(IP.rs1), dst: c4 },
    { sport: 8080, dport: 1000, flags: ACK },
  );
  d4.engine.aheadFrame(0, req4, req4.length);
  d4.engine.aheadFrame(1, rep4, rep4.length);
  d4.engine.aheadRecords(2);
  assert.deepEqual(heads(d4.engine, 0), [-1, cx4]);
  assert.deepEqual(heads(d4.engine, 1)[0], cx4);

  const d6 = new Director6();
  d6.ipvsadm(`-A -t [${IP6.vip}]:80 -s rr`);
  d6.ipvsadm(`-a -t [${IP6.vip}]:80 -r [${IP6.rs1}]:8080 -m`);
  const c6 = IP6.client1;
  d6.input(1, tcp6Frame(L2_6_FROM_ROUTER, { src: c6, dst: IP6.vip }, { sport: 1000, dport: 80, flags: SYN }));
  const cx6 = d6.engine.conns.lookupIn6(6, words6(c6), 1000, words6(IP6.vip), 80);
  assert.ok(cx6 >= 0);
  const req6 = tcp6Frame(L2_6_FROM_ROUTER, { src: c6, dst: IP6.vip }, { sport: 1000, dport: 80, flags: ACK });
  const rep6 = tcp6Frame(
    l2_6FromLan(MAC6.rs1),
    { src: IP6.rs1, dst: c6 },
    { sport: 8080, dport: 1000, flags: ACK },
  );
  d6.engine.aheadFrame(0, req6, req6.length);
  d6.engine.aheadFrame(1, rep6, rep6.length);
  d6.engine.aheadRecords(2);
  assert.equal(heads(d6.engine, 0)[1], cx6);
  assert.equal(heads(d6.engine, 1)[0], cx6);
});
