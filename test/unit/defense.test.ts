// The defence against table exhaustion (src/core/defense.ts): update_defense_level's state machine
// for drop_entry, drop_packet and secure_tcp (ip_vs_ctl.c), ip_vs_todrop's counter, todrop_entry's
// rule and ip_vs_random_dropentry's victims (ip_vs_conn.c), the sysctls' checks
// (proc_do_defense_mode), and drop_packet / drop_entry through the engine.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ControlApi } from "../../src/control/api.js";
import { parseSysctlArg, sysctlError, sysctlFields } from "../../src/control/commands.js";
import {
  DEFENSE_SYSCTL_DEFAULTS,
  Defense,
  type DefenseSysctls,
  dropentryScanSize,
  PAGE_BYTES,
  randomDropentry,
  tableAvailmem,
} from "../../src/core/defense.js";
import { DEFAULT_SYSCTLS } from "../../src/core/engine.js";
import { Verdict } from "../../src/core/xmit/types.js";
import { Director, IP, L2_FROM_ROUTER, l2FromLan, MAC } from "../support/frames.js";
import { ACK, ip, RST, SYN, tcpFrame, udpFrame } from "../support/packet-builder.js";

const VIP = ip(IP.vip);

function sc(over: Partial<DefenseSysctls> = {}): DefenseSysctls {
  return { ...DEFENSE_SYSCTL_DEFAULTS, amemthresh: 100, ...over };
}

describe("the defence sysctls", () => {
  it("have the kernel's names and defaults (ip_vs_control_net_init_sysctl)", () => {
    assert.deepEqual(DEFENSE_SYSCTL_DEFAULTS, {
      amemthresh: 1024,
      amDroprate: 10,
      dropEntry: 0,
      dropPacket: 0,
      secureTcp: 0,
    });
    for (const k of Object.keys(DEFENSE_SYSCTL_DEFAULTS) as (keyof DefenseSysctls)[])
      assert.equal(DEFAULT_SYSCTLS[k], DEFENSE_SYSCTL_DEFAULTS[k], k);
    assert.deepEqual(sysctlFields("amemthresh", 2048), { amemthresh: 2048 });
    assert.deepEqual(sysctlFields("am_droprate", 5), { amDroprate: 5 });
    assert.deepEqual(sysctlFields("drop_entry", 1), { dropEntry: 1 });
    assert.deepEqual(sysctlFields("drop_packet", 3), { dropPacket: 3 });
    assert.deepEqual(sysctlFields("secure_tcp", 2), { secureTcp: 2 });
  });

  it("take modes 0..3 and refuse others with EINVAL, as proc_do_defense_mode", () => {
    for (const n of ["drop_entry", "drop_packet", "secure_tcp"]) {
      for (const v of [0, 1, 2, 3]) assert.deepEqual(parseSysctlArg(`${n}=${v}`), { name: n, value: v });
      for (const bad of ["4", "-1", "x", ""]) {
        const p = parseSysctlArg(`net.ipv4.vs.${n}=${bad}`);
        assert.ok("error" in p && /Invalid argument \(EINVAL\)/.test(p.error), `${n}=${bad}`);
      }
      assert.match(sysctlError(n, 4, undefined, {}) ?? "", /^.+: Invalid argument \(EINVAL\)/);
    }
    assert.deepEqual(parseSysctlArg("amemthresh=0"), { name: "amemthresh", value: 0 });
    assert.ok("error" in parseSysctlArg("am_droprate=-3"));
  });

  it("a written mode takes effect at once (update_defense_level from proc_do_defense_mode)", () => {
    const d = new Director({ availmem: () => 50 });
    const api = new ControlApi(d.engine, () => d.now);
    api.apply([{ op: "set-sysctl", name: "drop_packet", value: 3 }]);
    assert.equal(d.engine.defense.dropRate, 10);
    api.apply([{ op: "set-sysctl", name: "amemthresh", value: 100 }]);
    api.apply([{ op: "set-sysctl", name: "drop_entry", value: 1 }]);
    assert.equal(d.engine.sysctls.dropEntry, 2);
    assert.equal(d.engine.defense.dropEntryActive, true);
    assert.deepEqual(api.sysctls("drop_entry"), { drop_entry: 2 });
    assert.throws(() => api.apply([{ op: "set-sysctl", name: "secure_tcp", value: 7 }]), /EINVAL/);
    assert.equal(d.engine.sysctls.secureTcp, 0);
  });
});

describe("update_defense_level: availmem sequences → modes (amemthresh 100)", () => {
  const cases: Array<{
    desc: string;
    set: Partial<DefenseSysctls>;
    availmem: number[];
    modes: number[];
    active: boolean[];
  }> = [
    {
      desc: "drop_entry 1: auto, 2 while short",
      set: { dropEntry: 1 },
      availmem: [200, 99, 0, 100, 150, 50],
      modes: [1, 2, 2, 1, 1, 2],
      active: [false, true, true, false, false, true],
    },
    {
      desc: "drop_entry 2 written with memory enough: back to 1",
      set: { dropEntry: 2 },
      availmem: [500, 10],
      modes: [1, 2],
      active: [false, true],
    },
    {
      desc: "drop_entry 3: always on",
      set: { dropEntry: 3 },
      availmem: [500, 10, 500],
      modes: [3, 3, 3],
      active: [true, true, true],
    },
    {
      desc: "drop_entry 0: off",
      set: { dropEntry: 0 },
      availmem: [0, 500],
      modes: [0, 0],
      active: [false, false],
    },
  ];
  for (const c of cases)
    it(c.desc, () => {
      const s = sc(c.set);
      const d = new Defense();
      c.availmem.forEach((a, i) => {
        d.update(s, a);
        assert.equal(s.dropEntry, c.modes[i], `step ${i}: mode`);
        assert.equal(d.dropEntryActive, c.active[i], `step ${i}: active`);
        assert.equal(d.availmem, a);
      });
    });

  it("drop_packet 1/2: rate = amemthresh / (amemthresh - availmem), int division", () => {
    const s = sc({ dropPacket: 1 });
    const d = new Defense();
    const steps = [
      { a: 120, mode: 1, rate: 0 },
      { a: 50, mode: 2, rate: 2 },
      { a: 90, mode: 2, rate: 10 },
      { a: 67, mode: 2, rate: 3 }, // 100 / 33 = 3.03
      { a: 0, mode: 2, rate: 1 },
      { a: 100, mode: 1, rate: 0 },
    ];
    for (const st of steps) {
      d.update(s, st.a);
      assert.equal(s.dropPacket, st.mode, `availmem ${st.a}: mode`);
      assert.equal(d.dropRate, st.rate, `availmem ${st.a}: rate`);
      if (st.rate !== 0) assert.equal(d.dropCounter, st.rate, "the counter restarts at the rate");
    }
  });

  it("drop_packet 3: rate = am_droprate whatever the memory; 0 = off", () => {
    const s = sc({ dropPacket: 3, amDroprate: 7 });
    const d = new Defense();
    d.update(s, 1000);
    assert.equal(d.dropRate, 7);
    d.update(s, 0);
    assert.equal(d.dropRate, 7);
    assert.equal(s.dropPacket, 3);
    s.dropPacket = 0;
    d.update(s, 0);
    assert.equal(d.dropRate, 0);
  });

  it("secure_tcp: the dos table while the mode is 2 or 3", () => {
    const s = sc({ secureTcp: 1 });
    const d = new Defense();
    const steps = [
      { a: 200, mode: 1, dos: false },
      { a: 10, mode: 2, dos: true },
      { a: 10, mode: 2, dos: true },
      { a: 200, mode: 1, dos: false },
    ];
    for (const st of steps) {
      d.update(s, st.a);
      assert.equal(s.secureTcp, st.mode, `availmem ${st.a}: mode`);
      assert.equal(d.secureTcpTable, st.dos, `availmem ${st.a}: table`);
    }
    s.secureTcp = 3;
    d.update(s, 500);
    assert.equal(d.secureTcpTable, true, "3: always");
    s.secureTcp = 0;
    d.update(s, 0);
    assert.equal(d.secureTcpTable, false, "0: off, even short of memory");
  });

  it("secure_tcp 2 written with memory enough: back to 1 without ever switching tables", () => {
    const s = sc({ secureTcp: 2 });
    const d = new Defense();
    d.update(s, 500);
    assert.equal(s.secureTcp, 1);
    assert.equal(d.secureTcpTable, false);
  });
});

describe("ip_vs_todrop and todrop_entry counters", () => {
  it("drop_packet mode 3 drops the first packet, then 1 in rate", () => {
    const s = sc({ dropPacket: 3, amDroprate: 4 });
    const d = new Defense();
    d.update(s, 0);
    const got = Array.from({ length: 12 }, () => d.todrop());
    // drop_counter starts at 0: --0 is not > 0, so the first packet goes.
    assert.deepEqual(
      got.map((x) => (x ? 1 : 0)),
      [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0],
    );
  });

  it("drop_packet auto mode: the counter starts at the rate, so the rate-th packet goes first", () => {
    const s = { ...sc({ dropPacket: 1 }), amemthresh: 1000 };
    const d = new Defense();
    d.update(s, 750); // 1000 / 250 = 4
    const got = Array.from({ length: 12 }, () => (d.todrop() ? 1 : 0));
    assert.deepEqual(got, [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
    d.update(s, 2000);
    assert.equal(d.todrop(), false, "memory back: nothing dropped");
  });

  it("todrop_entry: 60 s idle, 1..8 incoming packets, 1 in i of those with i", () => {
    const d = new Defense();
    assert.equal(d.todropEntry(1, 59_999), false, "idle < 60 s");
    assert.equal(d.todropEntry(0, 100_000), false, "no incoming packet (todrop_rate[0] = 0)");
    assert.equal(d.todropEntry(9, 100_000), false, "more than 8");
    const three = Array.from({ length: 7 }, () => (d.todropEntry(3, 60_000) ? 1 : 0));
    assert.deepEqual(three, [1, 0, 0, 1, 0, 0, 1]);
    const one = Array.from({ length: 3 }, () => (d.todropEntry(1, 60_000) ? 1 : 0));
    assert.deepEqual(one, [1, 1, 1]);
  });
});

function natDirector(o: { availmem?: () => number; connCapacity?: number; sysctls?: object } = {}): Director {
  const d = new Director(o);
  d.ipvsadm(`-A -t ${IP.vip}:80 -s rr`);
  d.ipvsadm(`-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m`);
  d.ipvsadm(`-A -u ${IP.vip}:53 -s rr`);
  d.ipvsadm(`-a -u ${IP.vip}:53 -r ${IP.rs1} -m`);
  return d;
}

function tcp(d: Director, sport: number, flags: number, now = d.now, src: string = IP.client1) {
  return d.input(1, tcpFrame(L2_FROM_ROUTER, { src: ip(src), dst: VIP }, { sport, dport: 80, flags }), now);
}

function udp(d: Director, sport: number, now = d.now) {
  return d.input(1, udpFrame(L2_FROM_ROUTER, { src: ip(IP.client1), dst: VIP }, { sport, dport: 53 }), now);
}

describe("ip_vs_random_dropentry", () => {
  it("scans 1/32 of the table (at least one slot)", () => {
    assert.equal(dropentryScanSize(65536), 2048);
    assert.equal(dropentryScanSize(256), 8);
    assert.equal(dropentryScanSize(10), 1);
  });

  it("drops embryonic entries, and established/UDP ones by todrop_entry; leaves the rest", () => {
    // 256 slots: a scan visits 8, here slots 0..7, filled in index order (the free list's).
    const d = natDirector({ connCapacity: 256 });
    const t0 = d.now;
    tcp(d, 1000, SYN, t0); // slot 0: established, 2 incoming packets
    tcp(d, 1000, ACK, t0);
    tcp(d, 1001, SYN, t0); // slot 1: the same, second of its count
    tcp(d, 1001, ACK, t0);
    udp(d, 2000, t0); // slot 2: UDP, 1 packet
    tcp(d, 1003, SYN, t0); // slot 3: established, 9 incoming packets
    for (let i = 0; i < 8; i++) tcp(d, 1003, ACK, t0);
    const t1 = t0 + 61_000;
    d.advance(t1);
    tcp(d, 1004, SYN, t1); // slot 4: SYN_RECV
    tcp(d, 1005, SYN, t1); // slot 5: established just now
    tcp(d, 1005, ACK, t1);
    udp(d, 2001, t1); // slot 6: UDP, fresh
    tcp(d, 1007, SYN, t1); // slot 7: CLOSE
    tcp(d, 1007, ACK, t1);
    tcp(d, 1007, RST, t1);
    const t = d.engine.conns;
    const before = [0, 1, 2, 3, 4, 5, 6, 7].map(
      (cx) => `${t.protoOf(cx)}:${t.stateOf(cx)}:${t.inPktsOf(cx)}`,
    );
    assert.deepEqual(before, ["6:1:2", "6:1:2", "17:0:1", "6:1:9", "6:3:1", "6:1:2", "17:0:1", "6:6:3"]);
    const dropped: number[] = [];
    const n = randomDropentry(t, d.engine.defense, 0, t1, (cx) => {
      dropped.push(cx);
      d.engine.life.expireNow(cx, t1);
    });
    assert.deepEqual(dropped, [0, 2, 4]);
    assert.equal(n, 3);
    assert.equal(d.engine.defense.entriesDropped, 3);
    for (const cx of [1, 3, 5, 6, 7]) assert.ok(t.isAllocated(cx), `slot ${cx} kept`);
    // A start near the end wraps round to slots 0 and 1: slot 1 is now the second established
    // entry with 2 packets todrop_entry sees, and 1 in 2 of those goes.
    const seen: number[] = [];
    randomDropentry(t, d.engine.defense, 250, t1, (cx) => seen.push(cx));
    assert.deepEqual(seen, [1]);
  });

  it("runs every second from the engine's tick while drop_entry is active", () => {
    let avail = 10_000;
    const d = natDirector({ connCapacity: 64, availmem: () => avail, sysctls: { dropEntry: 1 } });
    for (let p = 0; p < 64; p++) tcp(d, 3000 + p, SYN, d.now, "203.0.113.77");
    assert.equal(d.engine.conns.size, 64);
    d.advance(d.now + 1000);
    assert.equal(d.engine.sysctls.dropEntry, 1, "memory enough: mode 1");
    assert.equal(d.engine.defense.entriesDropped, 0);
    avail = 0;
    for (let s = 1; s <= 4; s++) d.advance(d.now + 1000);
    assert.equal(d.engine.sysctls.dropEntry, 2);
    // 64 slots → 2 per second, all SYN_RECV: 8 entries in 4 runs.
    assert.equal(d.engine.defense.entriesDropped, 8);
    assert.equal(d.engine.conns.size, 56);
  });
});

describe("drop_packet through the engine", () => {
  it("drops 1 in am_droprate of the SYNs that would create a connection, counted by reason", () => {
    const d = natDirector({ sysctls: { dropPacket: 3, amDroprate: 4 } });
    d.advance(d.now + 1000);
    const verdicts = Array.from({ length: 12 }, (_, i) => tcp(d, 5000 + i, SYN).verdict);
    assert.deepEqual(
      verdicts.map((v) => (v === Verdict.Drop ? 1 : 0)),
      [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0],
    );
    assert.equal(d.engine.conns.size, 9);
    assert.equal(d.engine.counters.dropTable().defense_drop_packet, 3);
    assert.equal(d.engine.defense.packetsDropped, 3);
    // Packets of existing connections are never dropped by it, nor segments that create nothing.
    for (let i = 0; i < 8; i++) assert.notEqual(tcp(d, 5001, ACK).verdict, Verdict.Drop);
    tcp(d, 6000, ACK);
    assert.equal(d.engine.defense.packetsDropped, 3);
    // UDP creates connections from any packet: counted in the same sequence.
    const u = Array.from({ length: 4 }, (_, i) => udp(d, 7000 + i).verdict);
    assert.equal(u.filter((v) => v === Verdict.Drop).length, 1);
  });

  it("is off while memory is enough in auto mode", () => {
    let avail = 5000;
    const d = natDirector({ availmem: () => avail, sysctls: { dropPacket: 1, amemthresh: 1000 } });
    d.advance(d.now + 1000);
    for (let i = 0; i < 20; i++) assert.notEqual(tcp(d, 8000 + i, SYN).verdict, Verdict.Drop);
    avail = 500; // rate 1000 / 500 = 2
    d.advance(d.now + 1000);
    const v = Array.from({ length: 6 }, (_, i) => (tcp(d, 9000 + i, SYN).verdict === Verdict.Drop ? 1 : 0));
    assert.deepEqual(v, [0, 1, 0, 1, 0, 1]);
    assert.equal(d.engine.sysctls.dropPacket, 2);
  });
});

describe("availmem from the connection table", () => {
  it("is the free entries' bytes in pages", () => {
    const d = natDirector({ connCapacity: 1024 });
    const t = d.engine.conns;
    const per = t.bytesPerEntry;
    assert.equal(tableAvailmem(t), Math.floor((1024 * per) / PAGE_BYTES));
    for (let p = 0; p < 512; p++) tcp(d, 10000 + p, SYN);
    assert.equal(tableAvailmem(t), Math.floor((512 * per) / PAGE_BYTES));
    d.advance(d.now + 1000);
    assert.equal(d.engine.defense.availmem, tableAvailmem(t));
  });

  it("a full table reads 0 pages", () => {
    const d = natDirector({ connCapacity: 32 });
    for (let p = 0; p < 40; p++) tcp(d, 11000 + p, SYN);
    assert.equal(tableAvailmem(d.engine.conns), 0);
  });
});

// Secure_tcp's transitions through the engine (NAT: both directions cross the director).
describe("secure_tcp through the engine", () => {
  function server(d: Director, cport: number, flags: number) {
    return d.input(
      2,
      tcpFrame(
        l2FromLan(MAC.rs1),
        { src: ip(IP.rs1), dst: ip(IP.client1) },
        { sport: 8080, dport: cport, flags },
      ),
      d.now,
    );
  }
  const name = (d: Director) => d.engine.connections(d.now)[0]?.state;

  it("a spoofed handshake (SYN, ACK, no server reply) stays SYN_RECV", () => {
    const plain = natDirector();
    tcp(plain, 4000, SYN);
    tcp(plain, 4000, ACK);
    assert.equal(name(plain), "ESTABLISHED");
    const sec = natDirector({ sysctls: { secureTcp: 3 } });
    sec.advance(sec.now + 1000);
    tcp(sec, 4000, SYN);
    tcp(sec, 4000, ACK);
    assert.equal(name(sec), "SYN_RECV");
  });

  it("a real handshake goes SYN_RECV → SYNACK → ESTABLISHED when the server speaks", () => {
    const d = natDirector({ sysctls: { secureTcp: 3 } });
    d.advance(d.now + 1000);
    const seq: Array<[string, () => unknown, string]> = [
      ["client SYN", () => tcp(d, 4100, SYN), "SYN_RECV"],
      ["server SYN/ACK", () => server(d, 4100, SYN | ACK), "SYNACK"],
      ["client ACK", () => tcp(d, 4100, ACK), "SYNACK"],
      ["server ACK", () => server(d, 4100, ACK), "ESTABLISHED"],
    ];
    for (const [desc, send, state] of seq) {
      send();
      assert.equal(name(d), state, desc);
    }
  });
});
