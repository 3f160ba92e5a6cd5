// The master's table refresh (core/sync/refresh.ts): a walk of the connection table in bounded
// slices that writes every live entry once (templates first) as ordinary sync messages and ends
// with a marker, so that a joining director's backup installs the whole table, idle connections
// included, which the policy alone would never send again.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeSyncMessage } from "../../src/core/sync/codec.js";
import {
  readRefreshMarker,
  TableRefresh,
  writeRefreshMarker,
  writeSyncHello,
} from "../../src/core/sync/refresh.js";
import { SyncSender } from "../../src/core/sync/sender.js";
import { Director, IP, L2_FROM_ROUTER } from "../support/frames.js";
import { ip, SYN, tcpFrame } from "../support/packet-builder.js";

const VIP = ip(IP.vip);
const PERSIST = [
  `-A -t ${IP.vip}:80 -s rr -p 300`,
  `-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`,
  `-a -t ${IP.vip}:80 -r ${IP.rs2}:8080 -m`,
];

/** A master with `clients` × `ports` connections opened by one SYN each (below sync_threshold). */
function loaded(clients: number, ports: number): { d: Director; s: SyncSender } {
  const d = new Director({});
  for (const l of PERSIST) d.ipvsadm(l);
  const s = new SyncSender(d.engine, { syncid: 1, maxlen: 1472 });
  d.engine.syncMaster = s;
  for (let c = 0; c < clients; c++)
    for (let p = 0; p < ports; p++) {
      const src = ip(`198.18.${100 + (c >> 8)}.${c & 0xff}`);
      const r = d.input(
        1,
        tcpFrame(L2_FROM_ROUTER, { src, dst: VIP }, { sport: 10000 + p, dport: 80, flags: SYN }),
        d.now,
      );
      assert.equal(r.out.length, 1);
    }
  // What the policy sent (a template at its client's first connection) is gone.
  s.flush(d.now, 0);
  s.takeMessages();
  return { d, s };
}

function key(c: {
  proto: number;
  caddr: number;
  cport: number;
  vaddr: number;
  vport: number;
  flags: number;
}): string {
  return `${c.proto} ${c.caddr >>> 0}:${c.cport} ${c.vaddr >>> 0}:${c.vport} ${c.flags & 0x1000 ? "T" : "C"}`;
}

interface Walked {
  keys: string[];
  perStep: number[];
  markers: number[];
  steps: number;
}

/** Steps the refresh to its end (20 ms apart), decoding what each step queued. */
function walk(
  d: Director,
  s: SyncSender,
  rf: TableRefresh,
  rate: number,
  maxMsgs: number,
  maxSlots?: number,
): Walked {
  const out: Walked = { keys: [], perStep: [], markers: [], steps: 0 };
  s.takeMessages();
  while (out.steps < 100_000) {
    d.now += 20;
    const running = rf.step(d.now, rate, maxMsgs, maxSlots);
    out.steps++;
    if (!running) s.flush(d.now, 0);
    const msgs = s.takeMessages();
    out.perStep.push(msgs.length);
    for (const m of msgs) {
      const mark = readRefreshMarker(m);
      if (mark >= 0) out.markers.push(mark);
      const r = decodeSyncMessage(m, m.length, 1, (c) => out.keys.push(key(c)));
      assert.ok(r.ok);
    }
    if (!running) break;
  }
  return out;
}

function tableKeys(d: Director): string[] {
  return d.engine.connections(d.now).map((c) =>
    key({
      proto: 6,
      caddr: c.caddr,
      cport: c.cport,
      vaddr: c.vaddr,
      vport: c.vport,
      flags: c.template ? 0x1000 : 0,
    }),
  );
}

describe("the table refresh", () => {
  it("writes every live entry exactly once, templates first, then its marker", () => {
    const { d, s } = loaded(40, 25);
    const rf = new TableRefresh(d.engine.conns, s, 1, 2);
    rf.start(d.now);
    const w = walk(d, s, rf, 4000, 3);
    const want = tableKeys(d);
    assert.equal(want.length, 40 + 40 * 25);
    assert.deepEqual([...w.keys].sort(), [...want].sort());
    assert.equal(new Set(w.keys).size, w.keys.length, "no entry twice");
    const lastTemplate = w.keys.map((k) => k.endsWith("T")).lastIndexOf(true);
    const firstConn = w.keys.findIndex((k) => k.endsWith("C"));
    assert.ok(lastTemplate < firstConn, "templates before connections");
    assert.deepEqual(w.markers, [1 | (2 << 8)], "one marker: worker 1 of 2");
    assert.equal(rf.entries, want.length);
    assert.equal(rf.done, 1);
  });

  it("finishes no more messages per step than its cap, nor more over time than its rate", () => {
    const { d, s } = loaded(20, 50);
    const rf = new TableRefresh(d.engine.conns, s);
    rf.start(d.now);
    // 100 messages/s, 20 ms per step: 2 a step on average; unused credit carries up to the cap (5).
    const w = walk(d, s, rf, 100, 5);
    const body = w.perStep.slice(0, -1);
    for (const n of body) assert.ok(n <= 5, `${n} messages in a step`);
    let sum = 0;
    for (let i = 0; i < body.length; i++) {
      sum += body[i];
      assert.ok(sum <= (100 * 20 * (i + 1)) / 1000 + 5, `${sum} messages after ${i + 1} steps`);
    }
    assert.equal(w.keys.length, 1020);
  });

  it("looks at no more indices per step than its slice", () => {
    const { d, s } = loaded(10, 10);
    const rf = new TableRefresh(d.engine.conns, s);
    rf.start(d.now);
    const w = walk(d, s, rf, 1_000_000, 100, 64);
    const slots = (d.engine.conns as unknown as { slots?: number }).slots ?? d.engine.conns.capacity;
    // Two passes over the index space, 64 indices a step.
    assert.ok(w.steps >= Math.floor((2 * slots) / 64), `${w.steps} steps for ${slots} slots`);
    assert.equal(w.keys.length, 110);
  });

  it("asked again while it runs, walks the whole table once more and marks only the end", () => {
    const { d, s } = loaded(10, 20);
    const rf = new TableRefresh(d.engine.conns, s);
    rf.start(d.now);
    s.takeMessages();
    d.now += 20;
    rf.step(d.now, 50, 1);
    rf.start(d.now);
    const w = walk(d, s, rf, 4000, 4);
    assert.equal(rf.done, 2);
    assert.equal(rf.again, 1);
    assert.equal(w.markers.length, 1);
    const want = tableKeys(d);
    // Everything in the second walk, whatever the first one had sent before the second was asked.
    for (const k of want) assert.ok(w.keys.includes(k), k);
  });

  it("is installed whole by a backup that had none of it", () => {
    const { d, s } = loaded(8, 16);
    const backup = new Director({});
    for (const l of PERSIST) backup.ipvsadm(l);
    const rf = new TableRefresh(d.engine.conns, s);
    rf.start(d.now);
    s.takeMessages();
    for (let i = 0; i < 1000 && rf.running; i++) {
      d.now += 20;
      rf.step(d.now, 4000, 8);
      if (!rf.running) s.flush(d.now, 0);
      for (const m of s.takeMessages())
        decodeSyncMessage(m, m.length, 0, (c) => backup.engine.installSynced(c, backup.now));
    }
    assert.deepEqual(tableKeys(backup).sort(), tableKeys(d).sort());
  });
});

describe("the refresh's marker and the master's hello", () => {
  it("are v1 messages of no connection, which a backup accepts and installs nothing from", () => {
    const a = new Uint8Array(64);
    const b = new Uint8Array(64);
    for (const [m, mark] of [
      [a.slice(0, writeRefreshMarker(a, 7, 3, 4)), 3 | (4 << 8)],
      [b.slice(0, writeSyncHello(b, 7)), -1],
    ] as const) {
      const r = decodeSyncMessage(m, m.length, 7, () => assert.fail("no entry"));
      assert.deepEqual(r, { ok: true, version: 1, conns: 0, skipped: 0, v6: 0 });
      assert.equal(readRefreshMarker(m), mark);
    }
  });
});
