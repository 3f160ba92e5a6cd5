// The connection life cycle as ipvsadm -Lnc shows it: states and timeouts of the kernel's TCP
// table (ip_vs_proto_tcp.c), active/inactive counters per destination, expiry by the timer,
// persistence templates (-p, PCC, fwmark), quiescent destinations (weight 0),
// expire_nodest_conn and conn_reuse_mode (ip_vs_core.c ip_vs_in).

import assert from "node:assert/strict";
import { test } from "node:test";
import { parseFwmarkRule } from "../../src/control/fwmark-rule.js";
import type { Dest } from "../../src/core/dest.js";
import { Director, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { ACK, FIN, ip, ipStr, macStr, RST, SYN, tcpFrame, udpFrame } from "../support/packet-builder.js";

const VIP = ip(IP.vip);

function fromClient(
  d: Director,
  sport: number,
  flags: number,
  now = d.now,
  dport = 80,
  client: string = IP.client1,
) {
  return d.input(1, tcpFrame(L2_FROM_ROUTER, { src: ip(client), dst: VIP }, { sport, dport, flags }), now);
}

function fromServer(d: Director, rs: string, rport: number, cport: number, flags: number, now = d.now) {
  const m = rs === IP.rs1 ? MAC.rs1 : MAC.rs2;
  return d.input(
    2,
    tcpFrame(l2FromLan(m), { src: ip(rs), dst: ip(IP.client1) }, { sport: rport, dport: cport, flags }),
    now,
  );
}

function dest(d: Director, addr: string): Dest {
  for (const s of d.engine.services()) for (const x of s.dests) if (x.addr === ip(addr)) return x;
  throw new Error(`no dest ${addr}`);
}

function rows(d: Director, now = d.now) {
  return d.engine
    .connections(now)
    .map((c) => ({
      state: c.state,
      c: `${ipStr(c.caddr)}:${c.cport}`,
      v: `${ipStr(c.vaddr)}:${c.vport}`,
      d: `${ipStr(c.daddr)}:${c.dport}`,
      expires: Math.round(c.expiresMs / 1000),
      template: c.template,
    }))
    .sort((a, b) => (a.c + a.v < b.c + b.v ? -1 : 1));
}

function natDirector(sysctls = {}): Director {
  const d = new Director({ sysctls });
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs2}:8080 -m`);
  return d;
}

test("NAT life cycle: states, timeouts and the destination's active/inactive counters", () => {
  const d = natDirector();
  const steps = [
    { desc: "client SYN", side: "c", flags: SYN, state: "SYN_RECV", expires: 60, act: 0, inact: 1 },
    { desc: "server SYN/ACK", side: "s", flags: SYN | ACK, state: "SYN_RECV", expires: 60, act: 0, inact: 1 },
    { desc: "client ACK", side: "c", flags: ACK, state: "ESTABLISHED", expires: 900, act: 1, inact: 0 },
    { desc: "client FIN", side: "c", flags: FIN | ACK, state: "CLOSE_WAIT", expires: 60, act: 0, inact: 1 },
    { desc: "server FIN", side: "s", flags: FIN | ACK, state: "TIME_WAIT", expires: 120, act: 0, inact: 1 },
    { desc: "client last ACK", side: "c", flags: ACK, state: "TIME_WAIT", expires: 120, act: 0, inact: 1 },
  ];
  let rs = "";
  for (const s of steps) {
    const r = s.side === "c" ? fromClient(d, 40000, s.flags) : fromServer(d, rs, 8080, 40000, s.flags);
    assert.equal(r.out.length, 1, s.desc);
    const [row] = rows(d);
    rs = row.d.split(":")[0];
    assert.equal(row.state, s.state, s.desc);
    assert.equal(row.expires, s.expires, `${s.desc}: expiry`);
    const x = dest(d, rs);
    assert.equal(x.activeConns, s.act, `${s.desc}: active`);
    assert.equal(x.inactConns, s.inact, `${s.desc}: inactive`);
  }
  // TIME_WAIT lasts 120 s: still there just before, gone (and counted down) after.
  const t0 = d.now;
  d.advance(t0 + 119_000);
  assert.equal(rows(d, t0 + 119_000).length, 1);
  d.advance(t0 + 121_000);
  assert.equal(rows(d, t0 + 121_000).length, 0);
  assert.equal(dest(d, rs).inactConns, 0);
  assert.equal(d.engine.counters.connsExpired, 1);
});

test("timeouts of a lone SYN, an established connection, UDP, and after ipvsadm --set", () => {
  const table = [
    { desc: "SYN_RECV", set: "", flags: [SYN], udp: false, life: 60 },
    { desc: "ESTABLISHED", set: "", flags: [SYN, ACK], udp: false, life: 900 },
    {
      desc: "ESTABLISHED after --set 100 20 30",
      set: "--set 100 20 30",
      flags: [SYN, ACK],
      udp: false,
      life: 100,
    },
    { desc: "RST → CLOSE", set: "", flags: [SYN, ACK, RST], udp: false, life: 10 },
    { desc: "RST in SYN_RECV stays SYN_RECV", set: "", flags: [SYN, RST], udp: false, life: 60 },
    { desc: "UDP", set: "", flags: [], udp: true, life: 300 },
    { desc: "UDP after --set 0 0 30", set: "--set 0 0 30", flags: [], udp: true, life: 30 },
  ];
  for (const c of table) {
    const d = natDirector();
    d.ipvsadm(`-A -u ${IP.vip}:53 -s rr`);
    d.ipvsadm(`-a -u ${IP.vip}:53 -r ${IP.rs1} -m`);
    if (c.set !== "") d.ipvsadm(c.set);
    const t0 = d.now;
    if (c.udp)
      d.input(1, udpFrame(L2_FROM_ROUTER, { src: ip(IP.client1), dst: VIP }, { sport: 9, dport: 53 }), t0);
    for (const f of c.flags) fromClient(d, 41000, f, t0);
    assert.equal(rows(d, t0)[0].expires, c.life, c.desc);
    d.advance(t0 + c.life * 1000 - 500);
    assert.equal(rows(d).length, 1, `${c.desc}: alive before its timeout`);
    d.advance(t0 + c.life * 1000 + 500);
    assert.equal(rows(d).length, 0, `${c.desc}: expired after its timeout`);
  }
});

test("persistence (-p): one client sticks to one server, the template outlives its connections", () => {
  const d = new Director();
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr -p 300`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1} -g`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs2} -g`);
  const t0 = d.now;
  const dmacs = new Set<unknown>();
  for (let p = 0; p < 4; p++) {
    const r = fromClient(d, 50000 + p, SYN, t0);
    dmacs.add(macStr(r.out[0].frame));
  }
  assert.equal(dmacs.size, 1, "all four connections on one server");
  const other = fromClient(d, 50000, SYN, t0, 80, IP.client2);
  assert.notDeepEqual(macStr(other.out[0].frame), [...dmacs][0], "the next client is scheduled (rr)");
  const all = rows(d, t0);
  const templates = all.filter((r) => r.template);
  assert.equal(templates.length, 2);
  const t1 = templates.find((r) => r.c === `${IP.client1}:0`);
  assert.ok(t1);
  assert.equal(t1.v, `${IP.vip}:80`);
  assert.equal(t1.state, "NONE");
  assert.equal(t1.expires, 300);
  const d1 = dest(d, t1.d.split(":")[0]);
  assert.equal(d1.persistConns, 1);
  assert.equal(d1.inactConns, 4);
  // Connections (SYN_RECV, 60 s) go first; the template lives on to its own timeout.
  d.advance(t0 + 61_000);
  assert.deepEqual(
    rows(d).map((r) => r.template),
    [true, true],
  );
  // A new connection 200 s later still goes to the same server and restarts the template.
  const again = fromClient(d, 50010, SYN, t0 + 200_000);
  assert.equal(macStr(again.out[0].frame), [...dmacs][0]);
  const t1b = rows(d).find((r) => r.template && r.c === `${IP.client1}:0`);
  assert.equal(t1b?.expires, 300);
  // One jump of 301 s, longer than a turn of the timer wheel: the connection (260 s) must
  // still expire before its template (500 s), or the template is kept 60 s more.
  d.advance(t0 + 200_000 + 301_000);
  assert.equal(
    rows(d).filter((r) => r.c.startsWith(IP.client1)).length,
    0,
    "template expires after the last connection and its timeout",
  );
  assert.equal(d1.persistConns, 0);
});

test("PCC (port 0 service with -p): one client on every port lands on one server", () => {
  const d = new Director();
  d.ipvsadm(`-A -t ${IP.vip}:0 -s rr -p 60`);
  d.ipvsadm(`-a -t ${IP.vip}:0 -r ${IP.rs1} -g`);
  d.ipvsadm(`-a -t ${IP.vip}:0 -r ${IP.rs2} -g`);
  const seen = new Set<string>();
  for (const port of [22, 80, 443, 8080]) {
    const r = fromClient(d, 30000, SYN, d.now, port);
    assert.equal(r.out.length, 1, `port ${port}`);
    seen.add(macStr(r.out[0].frame));
  }
  assert.equal(seen.size, 1);
  const templates = rows(d).filter((r) => r.template);
  assert.equal(templates.length, 1);
  assert.equal(templates[0].v, `${IP.vip}:0`);
  // Another client is scheduled afresh (rr → the other server).
  const r = fromClient(d, 30000, SYN, d.now, 22, IP.client2);
  assert.ok(!seen.has(macStr(r.out[0].frame)));
});

test("fwmark service: marked ports form one service, unmarked ports are not served", () => {
  const d = new Director();
  d.engine.fwmarks.add(parseFwmarkRule(`-d ${IP.vip} -p tcp --dport 80 -j MARK --set-mark 10`));
  d.engine.fwmarks.add(parseFwmarkRule(`-d ${IP.vip} -p tcp --dport 443 -j MARK --set-mark 10`));
  d.ipvsadm("-A -f 10 -s rr");
  d.ipvsadm(`-a -f 10 -r ${IP.rs1} -g`);
  d.ipvsadm(`-a -f 10 -r ${IP.rs2} -g`);
  const a = fromClient(d, 1000, SYN, d.now, 80);
  const b = fromClient(d, 1001, SYN, d.now, 443);
  assert.equal(a.out.length, 1);
  assert.equal(b.out.length, 1);
  assert.notEqual(macStr(a.out[0].frame), macStr(b.out[0].frame), "rr over the mark");
  const vports = rows(d)
    .map((r) => r.v)
    .sort();
  assert.deepEqual(vports, [`${IP.vip}:443`, `${IP.vip}:80`]);
  // Port 22 carries no mark: no service. The MARK rules name the VIP as one host, so tsvs owns
  // it and answers as the kernel does for a port without a listener: a reset.
  const c = fromClient(d, 1002, SYN, d.now, 22);
  assert.equal(c.out.length, 1);
  assert.equal(c.out[0].frame[14 + 20 + 13] & RST, RST, "RST");
  assert.equal(d.engine.connCount(), 2, "no connection for port 22");
});

test("fwmark service with persistence: HTTP and HTTPS of one client share a server", () => {
  const d = new Director();
  d.engine.fwmarks.add(
    parseFwmarkRule(`-d ${IP.vip} -p tcp -m multiport --dports 80,443 -j MARK --set-mark 7`),
  );
  d.ipvsadm("-A -f 7 -s rr -p 120");
  d.ipvsadm(`-a -f 7 -r ${IP.rs1} -g`);
  d.ipvsadm(`-a -f 7 -r ${IP.rs2} -g`);
  const a = fromClient(d, 1000, SYN, d.now, 80);
  const b = fromClient(d, 1001, SYN, d.now, 443);
  assert.equal(macStr(a.out[0].frame), macStr(b.out[0].frame));
  const tpl = d.engine.connections(d.now).filter((c) => c.template);
  assert.equal(tpl.length, 1);
  assert.equal(tpl[0].fwmark, 7);
});

test("weight 0: established connections continue, new ones avoid the quiesced server", () => {
  const d = natDirector();
  fromClient(d, 2000, SYN);
  const [first] = rows(d);
  const rs = first.d.split(":")[0];
  const other = rs === IP.rs1 ? IP.rs2 : IP.rs1;
  fromClient(d, 2000, ACK);
  d.ipvsadm(`-e -t ${IP.vip}:80 -r ${rs}:8080 -m -w 0`);
  for (let p = 2001; p < 2005; p++) {
    const r = fromClient(d, p, SYN);
    assert.equal(r.out.length, 1);
    assert.equal(macStr(r.out[0].frame), other === IP.rs1 ? MAC.rs1 : MAC.rs2, `port ${p}`);
  }
  const old = fromClient(d, 2000, ACK);
  assert.equal(old.out.length, 1, "established connection still forwarded");
  assert.equal(dest(d, rs).activeConns, 1);
});

test("removed destination: packets dropped by default, entry expired with expire_nodest_conn", () => {
  for (const expireNodestConn of [false, true]) {
    const d = natDirector({ expireNodestConn });
    fromClient(d, 3000, SYN);
    fromClient(d, 3000, ACK);
    const rs = rows(d)[0].d.split(":")[0];
    d.ipvsadm(`-d -t ${IP.vip}:80 -r ${rs}:8080`);
    const r = fromClient(d, 3000, ACK);
    if (!expireNodestConn) {
      assert.equal(r.out.length, 0);
      assert.equal(d.engine.counters.dropTable().dest_unavailable, 1);
      assert.equal(rows(d).length, 1);
    } else {
      // The entry is gone; the ACK finds no connection and the stack resets it.
      assert.equal(rows(d).length, 0);
      assert.equal(r.out.length, 1);
      assert.equal(r.out[0].ifindex, 1);
      // A new SYN from the same port is scheduled on the remaining server.
      const s = fromClient(d, 3000, SYN);
      assert.equal(s.out[0].ifindex, 2);
      assert.notEqual(rows(d)[0].d.split(":")[0], rs);
    }
  }
});

test("conn_reuse_mode: a SYN hitting a TIME_WAIT entry is rescheduled (1) or reuses it (0)", () => {
  for (const connReuseMode of [1, 0]) {
    const d = natDirector({ connReuseMode });
    fromClient(d, 4000, SYN);
    const rs = rows(d)[0].d.split(":")[0];
    fromServer(d, rs, 8080, 4000, SYN | ACK);
    fromClient(d, 4000, ACK);
    fromClient(d, 4000, FIN | ACK);
    fromServer(d, rs, 8080, 4000, FIN | ACK);
    fromClient(d, 4000, ACK);
    assert.equal(rows(d)[0].state, "TIME_WAIT");
    const created = d.engine.counters.connsCreated;
    const r = fromClient(d, 4000, SYN);
    assert.equal(r.out.length, 1);
    const after = rows(d);
    assert.equal(after.length, 1, `mode ${connReuseMode}: one entry`);
    assert.equal(after[0].state, "SYN_RECV");
    if (connReuseMode === 1) {
      assert.equal(d.engine.counters.connsCreated, created + 1, "a new entry");
      assert.notEqual(after[0].d.split(":")[0], rs, "rr picked the other server");
    } else {
      assert.equal(d.engine.counters.connsCreated, created, "the old entry reused");
      assert.equal(after[0].d.split(":")[0], rs);
    }
  }
});

test("one-packet scheduling (-o): each UDP datagram is scheduled and its entry freed at once", () => {
  const d = new Director();
  d.ipvsadm(`-A -u ${IP.vip}:53 -s rr -o`);
  d.ipvsadm(`-a -u ${IP.vip}:53 -r ${IP.rs1} -m`);
  d.ipvsadm(`-a -u ${IP.vip}:53 -r ${IP.rs2} -m`);
  const dsts = [];
  for (let i = 0; i < 4; i++) {
    const r = d.input(
      1,
      udpFrame(L2_FROM_ROUTER, { src: ip(IP.client1), dst: VIP }, { sport: 7777, dport: 53 }),
    );
    assert.equal(r.out.length, 1);
    dsts.push(macStr(r.out[0].frame));
    assert.equal(rows(d).length, 0, "no entry kept");
  }
  assert.deepEqual(dsts, [dsts[0], dsts[1], dsts[0], dsts[1]]);
  assert.notEqual(dsts[0], dsts[1]);
  assert.equal(dest(d, IP.rs1).inactConns + dest(d, IP.rs1).activeConns, 0);
});

test("persistence granularity and quiescent templates", () => {
  const cases = [
    {
      desc: "-M 255.255.255.0: a /24 shares one server",
      mask: "255.255.255.0",
      quiesce: false,
      expireQ: false,
      same: true,
    },
    {
      desc: "default mask: clients are scheduled apart (rr)",
      mask: "",
      quiesce: false,
      expireQ: false,
      same: false,
    },
    {
      desc: "weight 0: the template still holds",
      mask: "255.255.255.0",
      quiesce: true,
      expireQ: false,
      same: true,
    },
    {
      desc: "weight 0 + expire_quiescent_template: rescheduled",
      mask: "255.255.255.0",
      quiesce: true,
      expireQ: true,
      same: false,
    },
  ];
  for (const c of cases) {
    const d = new Director({ sysctls: { expireQuiescentTemplate: c.expireQ } });
    d.ipvsadm(`-A -t ${IP.vip}:80 -s rr -p 300${c.mask === "" ? "" : ` -M ${c.mask}`}`);
    d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1} -g`);
    d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs2} -g`);
    const a = fromClient(d, 6000, SYN, d.now, 80, IP.client1);
    const first = macStr(a.out[0].frame);
    if (c.quiesce) d.ipvsadm(`-e -t ${IP.vip}:80 -r ${first === MAC.rs1 ? IP.rs1 : IP.rs2} -g -w 0`);
    const b = fromClient(d, 6000, SYN, d.now, 80, IP.client2);
    assert.equal(macStr(b.out[0].frame) === first, c.same, c.desc);
  }
});
