// Scale-out consistency (docs/scale-out.md "Consistency: mh and sync"): N directors behind ECMP
// must send a flow to the same real server whichever of them the router picks. With mh the
// table is a function of the destination list (ip_vs_mh.c: fixed hsiphash keys, Maglev's
// permutations), so engines given the same list agree flow by flow without talking; the list
// *order* is part of that function (ip_vs_mh_populate fills slots in list order, the earlier
// destination winning a contested slot), so a server removed and added back on one director
// changes its table a little (about 0.1 % of the flows with three servers). A flow that moves to another director mid-stream is scheduled there
// from any packet with sloppy_tcp (the Maglev property: no state shared); with rr only the
// entry that sync carried keeps it on its server.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeSyncMessage } from "../../src/core/sync/codec.js";
import { SyncSender } from "../../src/core/sync/sender.js";
import type { SyncConn } from "../../src/core/sync/types.js";
import { Director, decodeFrame, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { ACK, bytes, ip, ipStr, RST, SYN, tcpFrame } from "../support/packet-builder.js";
import { seeded } from "../support/seeded.js";

const VIP = ip(IP.vip);
const SERVERS = [IP.rs1, IP.rs2, IP.rs3];
const MAC_OF: Record<string, string> = { [MAC.rs1]: IP.rs1, [MAC.rs2]: IP.rs2, [MAC.rs3]: IP.rs3 };

interface FlowKey {
  client: number;
  sport: number;
}

/** `count` distinct client address/port pairs from 203.0.113.0/24 and ports 1024-65535. */
function flows(count: number, seed: number): FlowKey[] {
  const r = seeded(seed);
  const seen = new Set<string>();
  const out: FlowKey[] = [];
  while (out.length < count) {
    const f = {
      client: ip("203.0.113.0") + 1 + Math.floor(r() * 254),
      sport: 1024 + Math.floor(r() * 64512),
    };
    const k = `${f.client}:${f.sport}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(f);
  }
  return out;
}

/** A director with the service on VIP:80 (scheduler and flags in `sched`) and `order` of the servers. */
function director(sched: string, method: "-g" | "-m", order: readonly string[], sysctls = {}): Director {
  const d = new Director({ sysctls });
  d.ipvsadm(`-A -t ${IP.vip}:80 -s ${sched}`);
  for (const rs of order) d.ipvsadm(`-a -t ${IP.vip}:80 -r ${rs}:80 ${method}`);
  return d;
}

function clientPacket(d: Director, f: FlowKey, flags: number, payload?: string) {
  return d.input(
    1,
    tcpFrame(
      L2_FROM_ROUTER,
      { src: f.client, dst: VIP },
      { sport: f.sport, dport: 80, flags, ...(payload !== undefined ? { payload: bytes(payload) } : {}) },
    ),
    d.now,
  );
}

/**
 * The real server a director sends a client packet of f to: the DR frame's destination MAC, or
 * the NAT datagram's destination address; null when nothing went out.
 */
function serverOf(d: Director, f: FlowKey, flags: number, payload?: string): string | null {
  const r = clientPacket(d, f, flags, payload);
  if (r.out.length === 0) return null;
  const fr = decodeFrame(r.out[0].frame);
  return fr.ip?.dst === IP.vip ? (MAC_OF[fr.dmac] ?? null) : (fr.ip?.dst ?? null);
}

/** Each flow's SYN through a fresh director of this kind: flow i → its server. */
function choices(make: () => Director, fs: readonly FlowKey[]): (string | null)[] {
  const d = make();
  return fs.map((f) => serverOf(d, f, SYN));
}

function disagreements(a: readonly (string | null)[], b: readonly (string | null)[]): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

const FLOWS = flows(3000, 17);

describe("mh across directors", () => {
  for (const sched of ["mh", "mh -b mh-port"]) {
    it(`three directors with the same destinations in the same order pick the same server for every flow (${sched})`, () => {
      const picks = [0, 1, 2].map(() => choices(() => director(sched, "-g", SERVERS), FLOWS));
      assert.equal(picks[0].filter((p) => p === null).length, 0, "every SYN is forwarded");
      assert.equal(disagreements(picks[0], picks[1]), 0);
      assert.equal(disagreements(picks[0], picks[2]), 0);
      // Not a degenerate table: every server takes a share.
      for (const rs of SERVERS) assert.ok(picks[0].filter((p) => p === rs).length > 600, `${rs}'s share`);
    });
  }

  it("the same servers in another order give another table (the kernel fills slots in list order)", () => {
    const base = choices(() => director("mh -b mh-port", "-g", SERVERS), FLOWS);
    const other = choices(() => director("mh -b mh-port", "-g", [IP.rs3, IP.rs1, IP.rs2]), FLOWS);
    const moved = disagreements(base, other);
    // Only the slots two servers contend for change hands: a few flows in a thousand.
    assert.ok(moved > 0 && moved < FLOWS.length / 100, `${moved} of ${FLOWS.length} flows differ`);
  });

  it("a server quiesced and restored (inhibit_on_failure) keeps the table; removed and added back, it does not", () => {
    const base = choices(() => director("mh -b mh-port", "-g", SERVERS), FLOWS);
    const inhibited = choices(() => {
      const d = director("mh -b mh-port", "-g", SERVERS);
      d.ipvsadm(`-e -t ${IP.vip}:80 -r ${IP.rs2}:80 -g -w 0`);
      d.ipvsadm(`-e -t ${IP.vip}:80 -r ${IP.rs2}:80 -g -w 1`);
      return d;
    }, FLOWS);
    assert.equal(disagreements(base, inhibited), 0);
    const readded = choices(() => {
      const d = director("mh -b mh-port", "-g", SERVERS);
      d.ipvsadm(`-d -t ${IP.vip}:80 -r ${IP.rs2}:80`);
      d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs2}:80 -g`);
      return d;
    }, FLOWS);
    assert.ok(disagreements(base, readded) > 0, "re-added at the head of the list, rs2 changes the table");
  });
});

describe("a flow that ECMP moves to another director in mid-stream", () => {
  const SOME = FLOWS.slice(0, 400);

  /** Director a takes each flow's handshake (SYN, then the client's ACK); b sees its next data packet. */
  function moved(a: Director, b: Director): { first: (string | null)[]; next: (string | null)[] } {
    const first = SOME.map((f) => {
      const rs = serverOf(a, f, SYN);
      clientPacket(a, f, ACK);
      return rs;
    });
    const next = SOME.map((f) => serverOf(b, f, ACK, "GET / HTTP/1.1\r\n\r\n"));
    return { first, next };
  }

  it("mh with sloppy_tcp, no sync: the other director sends it to the same server (DR)", () => {
    const r = moved(
      director("mh -b mh-port", "-g", SERVERS),
      director("mh -b mh-port", "-g", SERVERS, { sloppyTcp: true }),
    );
    assert.equal(disagreements(r.first, r.next), 0);
  });

  it("mh with sloppy_tcp, no sync: NAT too, and the server's reply through that director is rewritten to the VIP", () => {
    const a = director("mh -b mh-port", "-m", SERVERS);
    const b = director("mh -b mh-port", "-m", SERVERS, { sloppyTcp: true });
    const r = moved(a, b);
    assert.equal(disagreements(r.first, r.next), 0);
    const f = SOME[0];
    const rs = r.next[0] ?? "";
    const m = rs === IP.rs1 ? MAC.rs1 : rs === IP.rs2 ? MAC.rs2 : MAC.rs3;
    const reply = b.input(
      2,
      tcpFrame(
        l2FromLan(m),
        { src: ip(rs), dst: f.client },
        { sport: 80, dport: f.sport, flags: ACK, payload: bytes("HTTP/1.1 200 OK\r\n") },
      ),
      b.now,
    );
    assert.equal(reply.out.length, 1);
    const out = decodeFrame(reply.out[0].frame);
    assert.equal(out.ip?.src, IP.vip);
    assert.equal(out.ip?.tcp?.sport, 80);
  });

  it("without sloppy_tcp the other director resets it: a RST from the VIP, as the kernel's stack answers", () => {
    const a = director("mh", "-g", SERVERS);
    const b = director("mh", "-g", SERVERS);
    for (const f of SOME) {
      serverOf(a, f, SYN);
      const r = clientPacket(b, f, ACK, "GET / HTTP/1.1\r\n\r\n");
      assert.equal(r.out.length, 1);
      const out = decodeFrame(r.out[0].frame);
      assert.deepEqual(
        [out.ip?.src, out.ip?.dst, out.ip?.tcp?.sport, out.ip?.tcp?.dport, (out.ip?.tcp?.flags ?? 0) & RST],
        [IP.vip, ipStr(f.client), 80, f.sport, RST],
      );
    }
  });

  it("rr without sync: the other director's own choice differs for many flows", () => {
    const a = director("rr", "-g", SERVERS);
    const b = director("rr", "-g", SERVERS, { sloppyTcp: true });
    // b has scheduled another flow before: its rr position is its own.
    clientPacket(b, { client: ip("198.51.100.1"), sport: 1 }, SYN);
    const r = moved(a, b);
    assert.ok(disagreements(r.first, r.next) > SOME.length / 2);
  });

  it("rr with sync: the entries the first director synced keep every flow on its server", () => {
    const a = director("rr", "-g", SERVERS);
    const s = new SyncSender(a.engine, { syncid: 17, maxlen: 1472 });
    a.engine.syncMaster = s;
    const b = director("rr", "-g", SERVERS, { sloppyTcp: true });
    clientPacket(b, { client: ip("198.51.100.1"), sport: 1 }, SYN);
    const first = SOME.map((f) => {
      const rs = serverOf(a, f, SYN);
      // ip_vs_sync_conn_needed: ESTABLISHED at the client's third packet.
      clientPacket(a, f, ACK);
      clientPacket(a, f, ACK, "x");
      return rs;
    });
    s.flush(a.now, 0);
    const conns: SyncConn[] = [];
    for (const m of s.takeMessages()) {
      const r = decodeSyncMessage(m, m.length, 17, (c) => conns.push({ ...c, a6: c.a6.slice() }));
      assert.ok(r.ok);
    }
    assert.equal(conns.length, SOME.length, "every connection was synced");
    for (const c of conns) assert.equal(b.engine.installSynced(c, b.now), "new");
    const next = SOME.map((f) => serverOf(b, f, ACK, "GET / HTTP/1.1\r\n\r\n"));
    assert.equal(disagreements(first, next), 0);
  });
});
