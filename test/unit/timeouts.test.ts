import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  TCP_S_CLOSE,
  TCP_S_CLOSE_WAIT,
  TCP_S_ESTABLISHED,
  TCP_S_FIN_WAIT,
  TCP_S_LAST,
  TCP_S_LAST_ACK,
  TCP_S_LISTEN,
  TCP_S_NONE,
  TCP_S_SYN_RECV,
  TCP_S_SYN_SENT,
  TCP_S_SYNACK,
  TCP_S_TIME_WAIT,
} from "../../src/core/proto/tcp.js";
import { Timeouts } from "../../src/core/proto/timeouts.js";
import { UDP_STATE_NAME } from "../../src/core/proto/udp.js";

// tcp_timeouts[] of ip_vs_proto_tcp.c, in seconds (the kernel writes them as N*HZ).
const KERNEL_TCP_SECONDS: Array<[number, number]> = [
  [TCP_S_NONE, 2],
  [TCP_S_ESTABLISHED, 15 * 60],
  [TCP_S_SYN_SENT, 2 * 60],
  [TCP_S_SYN_RECV, 60],
  [TCP_S_FIN_WAIT, 2 * 60],
  [TCP_S_TIME_WAIT, 2 * 60],
  [TCP_S_CLOSE, 10],
  [TCP_S_CLOSE_WAIT, 60],
  [TCP_S_LAST_ACK, 30],
  [TCP_S_LISTEN, 2 * 60],
  [TCP_S_SYNACK, 120],
];

describe("Timeouts defaults (tcp_timeouts, udp_timeouts)", () => {
  for (const [state, sec] of KERNEL_TCP_SECONDS) {
    it(`TCP state ${state} times out after ${sec} s`, () => {
      assert.equal(new Timeouts().tcpMs(state), sec * 1000);
    });
  }

  it("UDP times out after 300 s", () => {
    assert.equal(new Timeouts().udpMs(), 300_000);
  });

  it("an unknown state gets the kernel's [LAST] entry, 2 s", () => {
    const t = new Timeouts();
    assert.equal(t.tcpMs(TCP_S_LAST), 2000);
    assert.equal(t.tcpMs(99), 2000);
    assert.equal(t.tcpMs(-1), 2000);
  });

  it("reads back as ipvsadm -L --timeout prints them: 900 120 300", () => {
    assert.deepEqual(new Timeouts().get(), { tcp: 900, tcpFin: 120, udp: 300 });
  });

  it("prints UDP connections in state UDP", () => {
    assert.equal(UDP_STATE_NAME, "UDP");
  });
});

describe("Timeouts.set (ipvsadm --set tcp tcpfin udp)", () => {
  it("changes ESTABLISHED, FIN_WAIT and UDP, in seconds", () => {
    const t = new Timeouts();
    t.set({ tcp: 3600, tcpFin: 30, udp: 20 });
    assert.equal(t.tcpMs(TCP_S_ESTABLISHED), 3_600_000);
    assert.equal(t.tcpMs(TCP_S_FIN_WAIT), 30_000);
    assert.equal(t.udpMs(), 20_000);
    assert.deepEqual(t.get(), { tcp: 3600, tcpFin: 30, udp: 20 });
  });

  it("leaves every other TCP state alone", () => {
    const t = new Timeouts();
    t.set({ tcp: 1, tcpFin: 1, udp: 1 });
    for (const [state, sec] of KERNEL_TCP_SECONDS) {
      if (state === TCP_S_ESTABLISHED || state === TCP_S_FIN_WAIT) continue;
      assert.equal(t.tcpMs(state), sec * 1000, `state ${state}`);
    }
  });

  const keepCases: Array<{ set: { tcp: number; tcpFin: number; udp: number }; want: number[] }> = [
    { set: { tcp: 0, tcpFin: 0, udp: 0 }, want: [900, 120, 300] },
    { set: { tcp: 60, tcpFin: 0, udp: 0 }, want: [60, 120, 300] },
    { set: { tcp: 0, tcpFin: 7, udp: 0 }, want: [900, 7, 300] },
    { set: { tcp: 0, tcpFin: 0, udp: 45 }, want: [900, 120, 45] },
  ];
  for (const c of keepCases) {
    it(`0 keeps the current value: --set ${c.set.tcp} ${c.set.tcpFin} ${c.set.udp}`, () => {
      const t = new Timeouts();
      t.set(c.set);
      const g = t.get();
      assert.deepEqual([g.tcp, g.tcpFin, g.udp], c.want);
    });
  }

  it("0 keeps a previously set value, not the default", () => {
    const t = new Timeouts();
    t.set({ tcp: 100, tcpFin: 50, udp: 10 });
    t.set({ tcp: 0, tcpFin: 0, udp: 0 });
    assert.deepEqual(t.get(), { tcp: 100, tcpFin: 50, udp: 10 });
  });

  it("reset returns to the defaults", () => {
    const t = new Timeouts();
    t.set({ tcp: 100, tcpFin: 50, udp: 10 });
    t.reset();
    assert.deepEqual(t.get(), { tcp: 900, tcpFin: 120, udp: 300 });
  });

  it("each instance has its own table (one per engine, as per netns)", () => {
    const a = new Timeouts();
    const b = new Timeouts();
    a.set({ tcp: 5, tcpFin: 0, udp: 0 });
    assert.equal(b.tcpMs(TCP_S_ESTABLISHED), 900_000);
  });
});
