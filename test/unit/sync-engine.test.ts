// Connection sync through the engine: a master's requests are offered to its SyncSender after they
// are forwarded (ip_vs_in's ip_vs_sync_conn) and written as ip_vs_sync_conn_needed decides; a
// backup engine installs what the messages carry (ip_vs_proc_conn) and forwards the next packet
// of a synced connection to the same real server, its replies rewritten back.

import assert from "node:assert/strict";
import { test } from "node:test";
import { CONN_F_SYNC } from "../../src/core/conn/table.js";
import { decodeSyncMessage } from "../../src/core/sync/codec.js";
import { SyncSender } from "../../src/core/sync/sender.js";
import type { SyncConn } from "../../src/core/sync/types.js";
import { Director, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { ACK, bytes, FIN, ip, ipStr, SYN, tcpFrame, udpFrame } from "../support/packet-builder.js";

const VIP = ip(IP.vip);
const CLIENT = ip(IP.client1);
const F_TEMPLATE = 0x1000;
const F_INACTIVE = 0x0100;

function director(lines: string[], sysctls = {}): Director {
  const d = new Director({ sysctls });
  for (const l of lines) d.ipvsadm(l);
  return d;
}

function master(lines: string[], sysctls = {}, maxlen = 1472): { d: Director; s: SyncSender } {
  const d = director(lines, sysctls);
  const s = new SyncSender(d.engine, { syncid: 1, maxlen });
  d.engine.syncMaster = s;
  return { d, s };
}

/** Everything the sender holds now, decoded (entries copied). */
function drain(d: Director, s: SyncSender, version = 1): SyncConn[] {
  s.flush(d.now, 0);
  const out: SyncConn[] = [];
  for (const m of s.takeMessages()) {
    const r = decodeSyncMessage(m, m.length, 1, (c) => out.push({ ...c }));
    assert.ok(r.ok, `message decodes: ${JSON.stringify(r)}`);
    assert.equal(r.version, version);
  }
  return out;
}

function tcpIn(d: Director, sport: number, flags: number, dport = 80, client = CLIENT) {
  return d.input(1, tcpFrame(L2_FROM_ROUTER, { src: client, dst: VIP }, { sport, dport, flags }), d.now);
}

function udpIn(d: Director, sport: number, dport = 53) {
  return d.input(
    1,
    udpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport, dport, payload: bytes("q") }),
    d.now,
  );
}

/** A reply from real server rs (rport) to dst:dport. */
function fromServer(d: Director, rs: string, rport: number, dst: number, dport: number, flags: number) {
  const m = rs === IP.rs1 ? MAC.rs1 : MAC.rs2;
  return d.input(2, tcpFrame(l2FromLan(m), { src: ip(rs), dst }, { sport: rport, dport, flags }), d.now);
}

const NAT = [
  `-A -t ${IP.vip}:80 -s rr`,
  `-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`,
  `-a -t ${IP.vip}:80 -r ${IP.rs2}:8080 -m`,
];
const PERSIST = [
  `-A -t ${IP.vip}:80 -s rr -p 300`,
  `-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`,
  `-a -t ${IP.vip}:80 -r ${IP.rs2}:8080 -m`,
];
const FULLNAT = [`-A -t ${IP.vip}:80 -s rr`, `-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 --fullnat`];

/** SYN, the server's SYN/ACK, the client's ACK: the connection is ESTABLISHED (2 requests). */
function handshake(d: Director, sport: number): { rs: string; dport: number; dst: number } {
  const syn = tcpIn(d, sport, SYN);
  assert.equal(syn.out.length, 1);
  const row = d.engine.connections(d.now).find((c) => c.cport === sport && !c.template);
  assert.ok(row !== undefined);
  const rs = ipStr(row.daddr);
  const fullnat = row.laddr !== 0;
  const dst = fullnat ? row.laddr : CLIENT;
  const dport = fullnat ? row.lport : sport;
  assert.equal(fromServer(d, rs, 8080, dst, dport, SYN | ACK).out.length, 1);
  assert.equal(tcpIn(d, sport, ACK).out.length, 1);
  return { rs, dport, dst };
}

test("TCP: synced at the client's packets 3, 53, 103 once ESTABLISHED (sync_threshold 3 50)", () => {
  const { d, s } = master(NAT);
  const syncedAt: number[] = [];
  tcpIn(d, 40000, SYN);
  assert.deepEqual(drain(d, s), [], "SYN_RECV is not synced");
  const row = d.engine.connections(d.now)[0];
  fromServer(d, ipStr(row.daddr), 8080, CLIENT, 40000, SYN | ACK);
  let last: SyncConn | undefined;
  for (let pkt = 2; pkt <= 110; pkt++) {
    tcpIn(d, 40000, ACK);
    const e = drain(d, s);
    if (e.length > 0) {
      syncedAt.push(pkt);
      assert.equal(e.length, 1);
      last = e[0];
    }
  }
  assert.deepEqual(syncedAt, [3, 53, 103]);
  assert.ok(last !== undefined);
  assert.deepEqual(
    {
      proto: last.proto,
      c: `${ipStr(last.caddr)}:${last.cport}`,
      v: `${ipStr(last.vaddr)}:${last.vport}`,
      d: `${ipStr(last.daddr)}:${last.dport}`,
      flags: last.flags,
      state: last.state,
      timeoutS: last.timeoutS,
    },
    {
      proto: 6,
      c: `${IP.client1}:40000`,
      v: `${IP.vip}:80`,
      d: `${ipStr(row.daddr)}:8080`,
      flags: 0, // Masq, active: not INACTIVE
      state: 1,
      timeoutS: 900,
    },
  );
});

test("TCP: a state change other than to ESTABLISHED is synced at once (FIN, then TIME_WAIT)", () => {
  const { d, s } = master(NAT);
  const { rs } = handshake(d, 40000);
  tcpIn(d, 40000, ACK); // packet 3
  assert.equal(drain(d, s).length, 1);
  tcpIn(d, 40000, FIN | ACK); // packet 4: ES → CLOSE_WAIT
  const fin = drain(d, s);
  assert.deepEqual(
    fin.map((c) => [c.state, c.flags & F_INACTIVE, c.timeoutS]),
    [[7, F_INACTIVE, 60]],
  );
  fromServer(d, rs, 8080, CLIENT, 40000, FIN | ACK); // replies are not synced
  assert.deepEqual(drain(d, s), []);
  tcpIn(d, 40000, ACK); // packet 5: TIME_WAIT, changed since the last sync
  assert.deepEqual(
    drain(d, s).map((c) => c.state),
    [5],
  );
  tcpIn(d, 40000, ACK); // packet 6: no change, not a multiple
  assert.deepEqual(drain(d, s), []);
});

test("UDP: synced by packet count only; ONE_PACKET never", () => {
  const { d, s } = master([`-A -u ${IP.vip}:53 -s rr`, `-a -u ${IP.vip}:53 -r ${IP.rs1}:53 -m`]);
  const at: number[] = [];
  for (let pkt = 1; pkt <= 60; pkt++) {
    udpIn(d, 5000);
    const e = drain(d, s);
    if (e.length > 0) {
      at.push(pkt);
      assert.deepEqual([e[0].proto, e[0].state, e[0].timeoutS], [17, 0, 300]);
    }
  }
  assert.deepEqual(at, [3, 53]);

  const o = master([`-A -u ${IP.vip}:53 -s rr -o`, `-a -u ${IP.vip}:53 -r ${IP.rs1}:53 -m`]);
  for (let pkt = 1; pkt <= 60; pkt++) udpIn(o.d, 6000 + (pkt % 3));
  assert.deepEqual(drain(o.d, o.s), []);
  assert.equal(o.s.connsWritten, 0);
});

test("persistence: the template is synced with every request, before its connection", () => {
  const { d, s } = master(PERSIST);
  tcpIn(d, 40000, SYN);
  const first = drain(d, s);
  assert.equal(first.length, 1, "the SYN syncs the template only");
  const t = first[0];
  assert.deepEqual(
    [t.proto, ipStr(t.caddr), t.cport, t.vport, t.flags & F_TEMPLATE, t.timeoutS],
    [6, IP.client1, 0, 80, F_TEMPLATE, 300],
  );
  const row = d.engine.connections(d.now).find((c) => !c.template);
  assert.ok(row !== undefined);
  fromServer(d, ipStr(row.daddr), 8080, CLIENT, 40000, SYN | ACK);
  tcpIn(d, 40000, ACK);
  assert.deepEqual(
    drain(d, s).map((c) => c.flags & F_TEMPLATE),
    [F_TEMPLATE],
  );
  tcpIn(d, 40000, ACK); // packet 3
  assert.deepEqual(
    drain(d, s).map((c) => [c.flags & F_TEMPLATE, c.cport]),
    [
      [F_TEMPLATE, 0],
      [0, 40000],
    ],
  );

  // sync_persist_mode: connections under a template are not synced, their templates are.
  const p = master(PERSIST, { syncPersistMode: 1 });
  handshake(p.d, 40000);
  tcpIn(p.d, 40000, ACK);
  assert.deepEqual(
    drain(p.d, p.s).map((c) => c.flags & F_TEMPLATE),
    [F_TEMPLATE, F_TEMPLATE, F_TEMPLATE],
  );
});

test("messages: a full one is queued at once, a partial one after 2 s (or flush(now, 0))", () => {
  const { d, s } = master(NAT, {}, 8 + 36 * 2);
  for (let k = 0; k < 3; k++) {
    handshake(d, 41000 + k);
    tcpIn(d, 41000 + k, ACK);
  }
  assert.equal(s.pending, 1, "two entries filled the first message");
  s.flush(d.now);
  assert.equal(s.pending, 1, "the third waits");
  s.flush(d.now + 2000);
  assert.equal(s.pending, 2);
  const msgs = s.takeMessages();
  assert.deepEqual(
    msgs.map((m) => [m.length, m[4]]),
    [
      [80, 2],
      [44, 1],
    ],
  );
  assert.deepEqual(s.takeMessages(), []);
});

test("sync_version 0: v0 messages; the backup takes timeouts from its tables", () => {
  const { d, s } = master(NAT, { syncVersion: 0 });
  handshake(d, 40000);
  tcpIn(d, 40000, ACK);
  const e = drain(d, s, 0);
  assert.equal(e.length, 1);
  assert.equal(e[0].timeoutS, null);
  const b = director(NAT);
  assert.equal(b.engine.installSynced(e[0], b.now), "new");
  const [row] = b.engine.connections(b.now);
  assert.equal(row.state, "ESTABLISHED");
  assert.equal(Math.round(row.expiresMs / 1000), 900);
});

test("backup: a synced NAT connection goes on to the same real server, its replies rewritten back", () => {
  const { d, s } = master(NAT);
  const { rs } = handshake(d, 40000);
  tcpIn(d, 40000, ACK);
  const e = drain(d, s);
  assert.equal(e.length, 1);

  const b = director(NAT);
  assert.equal(b.engine.installSynced(e[0], b.now), "new");
  const t = b.engine.conns;
  const cx = t.lookupIn(6, CLIENT, 40000, VIP, 80);
  assert.ok(cx >= 0);
  assert.equal(t.flagsOf(cx) & CONN_F_SYNC, CONN_F_SYNC, "marked as synced");
  assert.equal(t.inPktsOf(cx), 3, "in_pkts = sync_threshold");
  const dest = b.engine.services()[0].dests.find((x) => ipStr(x.addr) === rs);
  assert.ok(dest !== undefined);
  assert.deepEqual([dest.activeConns, dest.inactConns], [1, 0]);

  for (let k = 0; k < 4; k++) {
    const r = b.one(
      1,
      tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40000, dport: 80, flags: ACK }),
    );
    assert.deepEqual([r.f.dst, r.f.dport, r.f.src, r.f.sport], [rs, 8080, IP.client1, 40000], `request ${k}`);
  }
  const reply = b.one(
    2,
    tcpFrame(
      l2FromLan(rs === IP.rs1 ? MAC.rs1 : MAC.rs2),
      { src: ip(rs), dst: CLIENT },
      { sport: 8080, dport: 40000, flags: ACK },
    ),
  );
  assert.deepEqual([reply.f.src, reply.f.sport, reply.f.dst, reply.f.dport], [IP.vip, 80, IP.client1, 40000]);

  // Installed again (the master's next sync): updated in place.
  assert.equal(b.engine.installSynced(e[0], b.now), "updated");
  assert.equal(b.engine.connCount(), 1);
});

test("backup: FULLNAT keeps the master's LIP:lport, replies to it are found and rewritten", () => {
  const { d, s } = master(FULLNAT);
  const { dport: lport } = handshake(d, 40000);
  tcpIn(d, 40000, ACK);
  const e = drain(d, s);
  assert.equal(e.length, 1);
  assert.deepEqual([ipStr(e[0].laddr), e[0].lport, e[0].flags & 7], [IP.lip, lport, 5]);

  const b = director(FULLNAT);
  assert.equal(b.engine.installSynced(e[0], b.now), "new");
  const req = b.one(
    1,
    tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40000, dport: 80, flags: ACK }),
  );
  assert.deepEqual([req.f.src, req.f.sport, req.f.dst, req.f.dport], [IP.lip, lport, IP.rs1, 8080]);
  const reply = b.one(
    2,
    tcpFrame(
      l2FromLan(MAC.rs1),
      { src: ip(IP.rs1), dst: ip(IP.lip) },
      { sport: 8080, dport: lport, flags: ACK },
    ),
  );
  assert.deepEqual([reply.f.src, reply.f.sport, reply.f.dst, reply.f.dport], [IP.vip, 80, IP.client1, 40000]);
});

test("backup: another destination replaces the entry; stale INACTIVE news of it is ignored", () => {
  const b = director(NAT);
  const c: SyncConn = {
    proto: 6,
    caddr: CLIENT,
    cport: 40000,
    vaddr: VIP,
    vport: 80,
    daddr: ip(IP.rs1),
    dport: 8080,
    flags: 0,
    state: 1,
    fwmark: 0,
    timeoutS: 900,
    laddr: 0,
    lport: 0,
  };
  const dests = b.engine.services()[0].dests;
  const rs1 = dests.find((x) => ipStr(x.addr) === IP.rs1);
  const rs2 = dests.find((x) => ipStr(x.addr) === IP.rs2);
  assert.ok(rs1 !== undefined && rs2 !== undefined);
  assert.equal(b.engine.installSynced(c, b.now), "new");
  assert.equal(b.engine.installSynced({ ...c, daddr: ip(IP.rs2) }, b.now), "replaced");
  assert.deepEqual([rs1.activeConns, rs2.activeConns], [0, 1]);
  const r = b.one(
    1,
    tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40000, dport: 80, flags: ACK }),
  );
  assert.equal(r.f.dst, IP.rs2);
  assert.equal(b.engine.installSynced({ ...c, flags: F_INACTIVE, state: 7 }, b.now), "ignored");
  assert.equal(
    b.one(1, tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 40000, dport: 80, flags: ACK })).f
      .dst,
    IP.rs2,
  );
  // The same destination going INACTIVE: updated, counters moved.
  assert.equal(
    b.engine.installSynced({ ...c, daddr: ip(IP.rs2), flags: F_INACTIVE, state: 7 }, b.now),
    "updated",
  );
  assert.deepEqual([rs2.activeConns, rs2.inactConns], [0, 1]);
  assert.equal(b.engine.connections(b.now)[0].state, "CLOSE_WAIT");
  // A state TCP does not have is refused; an unknown destination leaves the entry unbound.
  assert.equal(b.engine.installSynced({ ...c, cport: 1, state: 11 }, b.now), "bad-state");
  assert.equal(b.engine.installSynced({ ...c, cport: 2, daddr: ip(IP.rs3) }, b.now), "new");
  assert.equal(b.engine.conns.destOf(b.engine.conns.lookupIn(6, CLIENT, 2, VIP, 80)), -1);
});

test("backup: templates installed and linked; a new connection of the client keeps its server", () => {
  const { d, s } = master(PERSIST);
  const { rs } = handshake(d, 40000);
  tcpIn(d, 40000, ACK);
  const b = director(PERSIST);
  const results = drain(d, s).map((c) => b.engine.installSynced(c, b.now));
  assert.deepEqual(results, ["new", "updated", "updated", "new"], "template x3, then the connection");
  const t = b.engine.conns;
  const cx = t.lookupIn(6, CLIENT, 40000, VIP, 80);
  const ct = t.lookupTemplate(6, CLIENT, VIP, 80);
  assert.ok(cx >= 0 && ct >= 0);
  assert.equal(t.controlOf(cx), ct);
  assert.equal(t.nControlOf(ct), 1);
  assert.equal(Math.round((t.expiresAt(ct) - b.now) / 1000), 300);
  // rr would pick the first destination for a fresh client; the template decides instead.
  for (const sport of [40001, 40002]) {
    const r = b.one(1, tcpFrame(L2_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport, dport: 80, flags: SYN }));
    assert.equal(r.f.dst, rs, `new connection ${sport}`);
  }
});
