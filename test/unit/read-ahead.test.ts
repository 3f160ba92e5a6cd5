// Reading a batch ahead (Engine.aheadFrame, aheadRecords) only reads: over batches of requests,
// the replies they draw and mutated frames, a director that reads each batch ahead first sends
// exactly what one that does not sends and gives the same verdicts, IPv4 and IPv6. Any bytes are
// taken without throwing.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
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
