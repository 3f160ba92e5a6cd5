// Connection sync through the engine: a master's requests are offered to its SyncSender after they
// are forwarded (ip_vs_in's ip_vs_sync_conn) and written as ip_vs_sync_conn_needed decides; a
// backup engine installs what the messages carry (ip_vs_proc_conn) and forwards the next packet
// of a synced connection to the same real server, its replies rewritten back.

import assert from "node:assert/strict";
import { test } from "node:test";
import { tableSnapshot } from "../../src/control/snapshot.js";
import { CONN_F_SYNC, CONN_F_TEMPLATE } from "../../src/core/conn/table.js";
import { decodeSyncMessage, SyncWriter } from "../../src/core/sync/codec.js";
import type { SyncInstallResult } from "../../src/core/sync/install.js";
import { SyncSender } from "../../src/core/sync/sender.js";
import type { SyncConn } from "../../src/core/sync/types.js";
import { Director, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { Director6, IP6, L2_6_FROM_ROUTER, l2_6FromLan, MAC6, type Sent6 } from "../support/frames6.js";
import { ACK, bytes, FIN, ip, ipStr, mac, PSH, SYN, tcpFrame, udpFrame } from "../support/packet-builder.js";
import { a6, a6Str, fold6, tcp6Frame, w6 } from "../support/packet6.js";

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
function drain(d: { now: number }, s: SyncSender, version = 1): SyncConn[] {
  s.flush(d.now, 0);
  const out: SyncConn[] = [];
  for (const m of s.takeMessages()) {
    const r = decodeSyncMessage(m, m.length, 1, (c) => out.push({ ...c, a6: c.a6.slice() }));
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
    af: 4,
    daf: 4,
    pp: false,
    ppIsn: 0,
    ppWord: 0,
    sp: false,
    spSeqd: 0,
    spTsd: 0,
    spOpt: 0,
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
    a6: new Int32Array(16),
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

// ---------------------------------------------------------------------------------- IPv6

const VIP6 = "2001:db8::100";
const NAT6 = [
  `-A -t [${VIP6}]:80 -s rr`,
  `-a -t [${VIP6}]:80 -r [${IP6.rs1}]:8080 -m`,
  `-a -t [${VIP6}]:80 -r [${IP6.rs2}]:8080 -m`,
];
const PERSIST6 = [
  `-A -t [${VIP6}]:80 -s rr -p 300 -M 64`,
  `-a -t [${VIP6}]:80 -r [${IP6.rs1}]:8080 -m`,
  `-a -t [${VIP6}]:80 -r [${IP6.rs2}]:8080 -m`,
];

function director6(lines: string[], sysctls = {}): Director6 {
  const d = new Director6({ sysctls });
  for (const l of lines) d.ipvsadm(l);
  return d;
}

function master6(lines: string[], sysctls = {}): { d: Director6; s: SyncSender } {
  const d = director6(lines, sysctls);
  const s = new SyncSender(d.engine, { syncid: 1, maxlen: 1472 });
  d.engine.syncMaster = s;
  return { d, s };
}

function client6(sport: number, flags: number, client: string = IP6.client1, payload = ""): Uint8Array {
  return tcp6Frame(
    L2_6_FROM_ROUTER,
    { src: client, dst: VIP6, hl: 64 },
    { sport, dport: 80, flags, seq: 1000, ack: 2000, payload: bytes(payload) },
  );
}

function server6(
  rs: string,
  dport: number,
  flags: number,
  client: string = IP6.client1,
  payload = "",
): Uint8Array {
  const m = rs === IP6.rs1 ? MAC6.rs1 : MAC6.rs2;
  return tcp6Frame(
    l2_6FromLan(m),
    { src: rs, dst: client, hl: 64 },
    { sport: 8080, dport, flags, seq: 2000, ack: 1001, payload: bytes(payload) },
  );
}

/** The real server (inet_ntop text of the decoder: uncompressed) of the connection from sport. */
function rsOf(d: Director6, sport: number): string {
  const row = d.engine.connections(d.now).find((c) => c.cport === sport && !c.template);
  assert.ok(row?.daddr6 !== undefined);
  return a6Str(a6(row.daddr6));
}

/** SYN, SYN/ACK, ACK, one more request: ESTABLISHED at its 3rd request (synced). */
function established6(d: Director6, sport: number, client: string = IP6.client1): string {
  assert.equal(d.input(1, client6(sport, SYN, client)).out.length, 1);
  const rs = rsOf(d, sport);
  assert.equal(d.input(2, server6(rs, sport, SYN | ACK, client)).out.length, 1);
  assert.equal(d.input(1, client6(sport, ACK, client)).out.length, 1);
  assert.equal(d.input(1, client6(sport, PSH | ACK, client, "GET /")).out.length, 1);
  return rs;
}

test("IPv6 NAT: the master's entry installs on a backup, which forwards the next request and its reply byte for byte as the master", () => {
  const { d, s } = master6(NAT6);
  // Another client's SYN first: rr gives 40000 the other server than a fresh backup would pick.
  d.input(1, client6(50000, SYN, IP6.client2));
  const first = rsOf(d, 50000);
  const rs = established6(d, 40000);
  assert.notEqual(rs, first);
  const e = drain(d, s);
  assert.equal(e.length, 1);
  assert.deepEqual(
    [e[0].af, e[0].proto, e[0].cport, e[0].vport, e[0].dport, e[0].flags, e[0].state, e[0].timeoutS],
    [6, 6, 40000, 80, 8080, 0, 1, 900],
  );
  assert.deepEqual([...e[0].a6.subarray(0, 12)], [...w6(IP6.client1), ...w6(VIP6), ...w6(rs)]);
  assert.equal(e[0].caddr, fold6(IP6.client1));

  const b = director6(NAT6);
  b.now = d.now;
  assert.equal(b.engine.installSynced(e[0], b.now), "new");
  const row = b.engine.connections(b.now)[0];
  assert.deepEqual(
    [row.caddr6, row.vaddr6, row.daddr, row.cport, row.dport, row.state],
    ["2001:db8:ff::10", VIP6, fold6(rs), 40000, 8080, "ESTABLISHED"],
  );
  const cx = b.engine.conns.lookupIn6(6, w6(IP6.client1), 40000, w6(VIP6), 80);
  assert.equal(b.engine.conns.flagsOf(cx) & CONN_F_SYNC, CONN_F_SYNC);
  const dest = b.engine.services()[0].dests.find((x) => x.addr === fold6(rs));
  assert.deepEqual([dest?.activeConns, dest?.inactConns], [1, 0]);

  // The failover: the same next request and the same reply into both; the same frames out.
  for (const [what, ifindex, frame] of [
    ["request", 1, client6(40000, PSH | ACK, IP6.client1, "more")],
    ["reply", 2, server6(rs, 40000, PSH | ACK, IP6.client1, "200 OK")],
  ] as const) {
    const m = d.one(ifindex, frame);
    const o = b.one(ifindex, frame);
    assert.equal(o.ifindex, m.ifindex, what);
    assert.deepEqual(o.f, m.f, what);
    assert.equal(Buffer.from(o.raw).toString("hex"), Buffer.from(m.raw).toString("hex"), what);
  }
  assert.equal(b.engine.connections(b.now).length, 1, "no second entry on the backup");
});

test("IPv6 persistence: the template (a /64 prefix) is synced first and linked; a new connection keeps its server", () => {
  const { d, s } = master6(PERSIST6);
  const rs = established6(d, 40000);
  const e = drain(d, s);
  // Templates are synced at every request (sync_period), the connection at its third.
  assert.deepEqual(
    e.map((c) => [c.af, c.flags & CONN_F_TEMPLATE, c.cport]),
    [
      [6, CONN_F_TEMPLATE, 0],
      [6, CONN_F_TEMPLATE, 0],
      [6, CONN_F_TEMPLATE, 0],
      [6, 0, 40000],
    ],
  );
  assert.deepEqual([...e[0].a6.subarray(0, 4)], [...w6("2001:db8:ff::")], "the client's /64");
  const b = director6(PERSIST6);
  b.now = d.now;
  assert.deepEqual(
    e.map((c) => b.engine.installSynced(c, b.now)),
    ["new", "updated", "updated", "new"],
  );
  const t = b.engine.conns;
  const cx = t.lookupIn6(6, w6(IP6.client1), 40000, w6(VIP6), 80);
  const ct = t.lookupTemplate6(6, w6("2001:db8:ff::"), w6(VIP6), 80);
  assert.ok(cx >= 0 && ct >= 0);
  assert.equal(t.controlOf(cx), ct);
  assert.equal(Math.round((t.expiresAt(ct) - b.now) / 1000), 300);
  // Another client of the same /64: rr would start at rs1, the template says rs.
  for (const sport of [40001, 40002]) {
    const o = b.one(1, client6(sport, SYN, "2001:db8:ff::99"));
    assert.equal(o.f.dst, rs, `new connection ${sport}`);
  }
});

test("IPv6 entries: never in v0 (ip_vs_sync_conn_v0 skips af != AF_INET), IPv4 ones still", () => {
  const { d, s } = master6(NAT6, { syncVersion: 0 });
  established6(d, 40000);
  for (let i = 0; i < 60; i++) d.input(1, client6(40000, ACK));
  assert.deepEqual(drain(d, s, 0), []);
  // The same engine with an IPv4 service: its connection goes out in v0.
  const v4 = master(NAT, { syncVersion: 0 });
  handshake(v4.d, 40000);
  tcpIn(v4.d, 40000, ACK);
  assert.equal(drain(v4.d, v4.s, 0).length, 1);
});

test("kept out of sync: a tunnel between families (the v1 entry has one family); NAT64 and IPv6 FULLNAT go in tsvs's form", () => {
  // [client side IPv6, server side IPv6, forwarding, entries written]
  const cases = [
    { what: "NAT64: IPv6 client side, IPv4 server side, FULLNAT", c6: true, s6: false, fwd: 5, n: 1 },
    { what: "IPv6 FULLNAT", c6: true, s6: true, fwd: 5, n: 1 },
    { what: "IPv6 NAT", c6: true, s6: true, fwd: 0, n: 1 },
    { what: "IPv6 client to an IPv4 real server, TUN", c6: true, s6: false, fwd: 2, n: 0 },
    { what: "IPv4 client to an IPv6 real server, TUN", c6: false, s6: true, fwd: 2, n: 0 },
  ];
  for (const c of cases) {
    const { d, s } = master6(NAT6);
    const t = d.engine.conns;
    const cx = t.alloc();
    const c6 = w6(IP6.client1);
    const caddr = c.c6 ? fold6(IP6.client1) : ip(IP.client1);
    t.setEntry(cx, 6, caddr | 0, 40000, fold6(VIP6) | 0, 80, ip(IP.rs1) | 0, 8080, 0, 0, c.fwd, -1);
    if (c.c6) t.setClient6(cx, c6, w6(VIP6));
    if (c.s6) t.setServer6(cx, w6(IP6.rs1), c6);
    t.hash(cx);
    t.setState(cx, 1);
    t.setInPkts(cx, 3);
    t.arm(cx, 900_000, d.now);
    s.connIn(cx, d.now);
    assert.equal(drain(d, s).length, c.n, c.what);
  }
});

/**
 * The one frame x sends for frame (of either family: Director6.one decodes IPv6 output only, and
 * NAT64 sends IPv4 toward its real servers).
 */
function oneOut(x: Director6, ifindex: number, frame: Uint8Array): Sent6 {
  const r = x.input(ifindex, frame);
  assert.equal(r.out.length, 1, `one frame out (verdict ${r.verdict})`);
  return r.out[0];
}

const FNAT6_LIP = "2001:db8:1::100";
const FNAT6 = [
  `-A -t [${VIP6}]:80 -s rr`,
  `-a -t [${VIP6}]:80 -r [${IP6.rs1}]:8080 --fullnat`,
  `-P -t [${VIP6}]:80 -z ${FNAT6_LIP}`,
];
const NAT64_LIP = "198.18.1.100";
const NAT64 = [
  `-A -t [${VIP6}]:80 -s rr`,
  `-a -t [${VIP6}]:80 -r ${IP.rs1}:8080 --fullnat`,
  `-P -t [${VIP6}]:80 -z ${NAT64_LIP}`,
];

for (const kind of ["IPv6 FULLNAT", "NAT64"] as const) {
  test(`${kind}: the entry and its local end install on a backup, which forwards the next request and reply byte for byte as the master`, () => {
    const lines = kind === "NAT64" ? NAT64 : FNAT6;
    const { d, s } = master6(lines);
    const nat64 = kind === "NAT64";
    if (nat64) d.engine.neigh.confirm(2, ip(IP.rs1), mac(MAC6.rs1), d.now);
    // The handshake through the master; the server side is read from what it sent.
    // The TCP header toward the real server: after 14 + 20 (IPv4) or 14 + 40 (IPv6) bytes.
    const syn = oneOut(d, 1, client6(40000, SYN)).frame;
    const l4 = nat64 ? 34 : 54;
    const lport = (syn[l4] << 8) | syn[l4 + 1];
    const ack = (((syn[l4 + 4] << 24) | (syn[l4 + 5] << 16) | (syn[l4 + 6] << 8) | syn[l4 + 7]) >>> 0) + 1;
    const server = (flags: number, payload = ""): Uint8Array =>
      nat64
        ? tcpFrame(
            { dmac: mac(MAC6.dir1), smac: mac(MAC6.rs1) },
            { src: ip(IP.rs1), dst: ip(NAT64_LIP) },
            { sport: 8080, dport: lport, flags, seq: 2000, ack, payload: bytes(payload) },
          )
        : tcp6Frame(
            l2_6FromLan(MAC6.rs1),
            { src: IP6.rs1, dst: FNAT6_LIP, hl: 64 },
            { sport: 8080, dport: lport, flags, seq: 2000, ack, payload: bytes(payload) },
          );
    assert.equal(d.input(2, server(SYN | ACK)).out.length, 1);
    assert.equal(d.input(1, client6(40000, ACK)).out.length, 1);
    assert.equal(d.input(1, client6(40000, PSH | ACK, IP6.client1, "GET /")).out.length, 1);
    const e = drain(d, s);
    assert.equal(e.length, 1);
    assert.deepEqual([e[0].af, e[0].daf, e[0].lport, e[0].flags & 7], [6, nat64 ? 4 : 6, lport, 5]);
    if (nat64) assert.deepEqual([ipStr(e[0].daddr), ipStr(e[0].laddr)], [IP.rs1, NAT64_LIP]);
    else assert.deepEqual([...e[0].a6.subarray(12, 16)], [...w6(FNAT6_LIP)]);

    // Through the wire format, as a backup receives it.
    const w = new SyncWriter(1472);
    w.begin(1, 1);
    assert.ok(w.add(e[0]));
    const len = w.finish();
    const b = director6(lines);
    b.now = d.now;
    if (nat64) b.engine.neigh.confirm(2, ip(IP.rs1), mac(MAC6.rs1), b.now);
    const got: SyncInstallResult[] = [];
    decodeSyncMessage(w.buf, len, 0, (c) => got.push(b.engine.installSynced(c, b.now)));
    assert.deepEqual(got, ["new"]);
    const lips = tableSnapshot(b.engine, b.now, false).services[0].laddrs ?? [];
    assert.deepEqual(
      lips.map((l) => [l.addr6 ?? ipStr(l.addr), l.conns]),
      [[nat64 ? NAT64_LIP : FNAT6_LIP, 1]],
      "-G counts the backup's connection on its local address",
    );

    for (const [what, ifindex, frame] of [
      ["request", 1, client6(40000, PSH | ACK, IP6.client1, "more")],
      ["reply", 2, server(PSH | ACK, "200 OK")],
    ] as const) {
      const m = oneOut(d, ifindex, frame);
      const o = oneOut(b, ifindex, frame);
      assert.equal(o.ifindex, m.ifindex, what);
      assert.equal(Buffer.from(o.frame).toString("hex"), Buffer.from(m.frame).toString("hex"), what);
    }
    assert.equal(b.engine.connections(b.now).length, 1, "no second entry on the backup");
  });
}

test("IPv6 FULLNAT with the PROXY protocol: the sequence state travels in tsvs's option; the backup shifts the next request and the reply's ACK as the master", () => {
  const lines = [
    `-A -t [${VIP6}]:80 -s rr --proxy-protocol v2`,
    `-a -t [${VIP6}]:80 -r [${IP6.rs1}]:8080 --fullnat`,
    `-P -t [${VIP6}]:80 -z ${FNAT6_LIP}`,
  ];
  const { d, s } = master6(lines);
  const client = (flags: number, seq: number, payload = ""): Uint8Array =>
    tcp6Frame(
      L2_6_FROM_ROUTER,
      { src: IP6.client1, dst: VIP6, hl: 64 },
      { sport: 40000, dport: 80, flags, seq, ack: 2001, payload: bytes(payload) },
    );
  const syn = oneOut(d, 1, client(SYN, 1000)).frame;
  const lport = (syn[54] << 8) | syn[55];
  const server = (flags: number, ack: number, payload = ""): Uint8Array =>
    tcp6Frame(
      l2_6FromLan(MAC6.rs1),
      { src: IP6.rs1, dst: FNAT6_LIP, hl: 64 },
      { sport: 8080, dport: lport, flags, seq: 2000, ack, payload: bytes(payload) },
    );
  oneOut(d, 2, server(SYN | ACK, 1001));
  oneOut(d, 1, client(ACK, 1001));
  // The first data: the header (16 + 36 bytes for TCP over IPv6) goes in front of it.
  const first = oneOut(d, 1, client(PSH | ACK, 1001, "GET /")).frame;
  const hdr = 16 + 36;
  assert.equal(first.length, 14 + 40 + 20 + hdr + 5, "header + data toward the real server");
  const e = drain(d, s);
  assert.equal(e.length, 1);
  assert.equal(e[0].pp, true);
  assert.equal(e[0].ppIsn, 1001);
  assert.equal(e[0].ppWord & 0xff, hdr, "the header's length in the state word");

  const w = new SyncWriter(1472);
  w.begin(1, 1);
  assert.ok(w.add(e[0]));
  const len = w.finish();
  const b = director6(lines);
  b.now = d.now;
  const got: SyncInstallResult[] = [];
  decodeSyncMessage(w.buf, len, 0, (c) => got.push(b.engine.installSynced(c, b.now)));
  assert.deepEqual(got, ["new"]);
  for (const [what, ifindex, frame] of [
    ["the next request, shifted by the header", 1, client(PSH | ACK, 1006, "more")],
    ["the reply, its ACK shifted back", 2, server(PSH | ACK, 1001 + hdr + 9, "200 OK")],
  ] as const) {
    const m = oneOut(d, ifindex, frame);
    const o = oneOut(b, ifindex, frame);
    assert.equal(Buffer.from(o.frame).toString("hex"), Buffer.from(m.frame).toString("hex"), what);
  }
  const seqOut = (f: Uint8Array): number => ((f[58] << 24) | (f[59] << 16) | (f[60] << 8) | f[61]) >>> 0;
  assert.equal(seqOut(oneOut(b, 1, client(PSH | ACK, 1010, "x")).frame), 1010 + hdr, "the backup shifts too");
});
