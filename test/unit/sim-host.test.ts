import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatIPv4, writeU16 } from "../../src/core/addr.js";
import { IPPROTO_TCP } from "../../src/core/packet/flow.js";
import { ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, ICMP_TIME_EXCEEDED } from "../../src/core/packet/icmp.js";
import { ipipEncap } from "../../src/core/packet/ipip.js";
import { SimClock } from "../../src/sim/clock.js";
import { Host, type IcmpEvent, ip } from "../../src/sim/host.js";
import { Link } from "../../src/sim/net.js";

function mac(n: number): string {
  return `02:00:00:00:00:${n.toString(16).padStart(2, "0")}`;
}

/** a (10.0.0.1) and b (10.0.0.2) on one segment. */
function pair(bOpts: ConstructorParameters<typeof Host>[2] = {}) {
  const clock = new SimClock();
  const link = new Link(clock, { name: "lan" });
  const a = new Host(clock, "a");
  a.addIface(link, { name: "eth0", mac: mac(1), addrs: ["10.0.0.1/24"] });
  const b = new Host(clock, "b", bOpts);
  b.addIface(link, { name: "eth0", mac: mac(2), addrs: ["10.0.0.2/24"] });
  return { clock, link, a, b };
}

describe("sim host: ARP and ICMP", () => {
  it("resolves the neighbour with ARP, then answers a ping", () => {
    const { clock, a, b } = pair();
    let res: string | null = null;
    a.ping("10.0.0.2", (err, r) => {
      res =
        err === null && r !== null
          ? `${formatIPv4(r.from)} ttl=${r.ttl} rtt=${r.rttMs.toFixed(2)}`
          : String(err);
    });
    clock.runUntilIdle();
    assert.equal(res, "10.0.0.2 ttl=64 rtt=0.20");
    assert.equal(a.counters.arpRequestsSent, 1);
    assert.equal(b.counters.arpRepliesSent, 1);
    // b learned a from the request it answered: its reply needed no ARP of its own.
    assert.equal(b.counters.arpRequestsSent, 0);
    assert.ok(a.neigh.has(ip("10.0.0.2")) && b.neigh.has(ip("10.0.0.1")));
  });

  it("times out a ping to an address nobody owns after ARP gives up", () => {
    const { clock, a } = pair();
    let code = "";
    a.ping(
      "10.0.0.9",
      (err) => {
        code = err?.code ?? "ok";
      },
      { timeoutMs: 5000 },
    );
    clock.runUntilIdle();
    assert.equal(code, "ETIMEDOUT");
    assert.equal(a.counters.arpRequestsSent, 3);
    assert.equal(a.counters.arpFailed, 1);
  });

  it("answers a UDP datagram to a closed port with ICMP port unreachable", () => {
    const { clock, a } = pair();
    const seen: IcmpEvent[] = [];
    a.onIcmp((e) => seen.push(e));
    let err = "";
    const s = a.udp.bind(0, () => {});
    s.onError = (e) => {
      err = e.code;
    };
    s.send("10.0.0.2", 9999, "x");
    clock.runUntilIdle();
    assert.equal(seen.length, 1);
    assert.equal(seen[0].type, ICMP_DEST_UNREACH);
    assert.equal(seen[0].code, ICMP_PORT_UNREACH);
    assert.equal(seen[0].innerDport, 9999);
    assert.equal(err, "ECONNREFUSED");
  });
});

describe("sim host: arp_ignore / arp_announce (the LVS ARP problem)", () => {
  const cases = [
    { arpIgnore: 0, answersVip: true, why: "misconfigured real server: answers for its lo VIP" },
    { arpIgnore: 1, answersVip: false, why: "arp_ignore=1: only addresses of the receiving interface" },
    { arpIgnore: 2, answersVip: false, why: "arp_ignore=2: same, and the sender must be on that subnet" },
    { arpIgnore: 8, answersVip: false, why: "arp_ignore=8: never answers" },
  ];
  for (const c of cases) {
    it(c.why, () => {
      const { clock, a, b } = pair({ arpIgnore: c.arpIgnore, arpAnnounce: 2 });
      b.addLoopbackAddr("10.0.0.100");
      let pinged = "";
      a.ping(
        "10.0.0.100",
        (err) => {
          pinged = err === null ? "reply" : err.code;
        },
        { timeoutMs: 4000 },
      );
      clock.runUntilIdle();
      assert.equal(pinged, c.answersVip ? "reply" : "ETIMEDOUT");
      assert.equal(b.counters.arpRepliesSent, c.answersVip ? 1 : 0);
    });
  }

  it("arp_ignore=2 still answers for the interface address from the same subnet", () => {
    const { clock, a } = pair({ arpIgnore: 2 });
    let pinged = "";
    a.ping("10.0.0.2", (err) => {
      pinged = err === null ? "reply" : err.code;
    });
    clock.runUntilIdle();
    assert.equal(pinged, "reply");
  });

  const announce = [
    { level: 0, spa: "10.0.0.100", why: "arp_announce=0 sends the VIP as ARP source (poisons neighbours)" },
    { level: 2, spa: "10.0.0.2", why: "arp_announce=2 uses the interface address for the target" },
  ];
  for (const c of announce) {
    it(c.why, () => {
      // arp_ignore=1 keeps b from learning a through an ARP request for the VIP.
      const { clock, link, a, b } = pair({ arpIgnore: 1, arpAnnounce: c.level });
      b.addLoopbackAddr("10.0.0.100");
      let spa = "";
      link.tap((_from, f) => {
        if (f[12] === 0x08 && f[13] === 0x06 && f[21] === 1 && f[11] === 2)
          spa = `${f[28]}.${f[29]}.${f[30]}.${f[31]}`;
      });
      // b answers a datagram addressed to its VIP: the reply's source is the VIP.
      b.udp.bind(53, (_d, from, fport, to, s) => s.send(from, fport, "ok", to));
      // a reaches the VIP by a static neighbour entry (as a director's DR xmit would).
      a.neigh.set(ip("10.0.0.100"), { mac: b.ifaces[0].mac, iface: a.ifaces[0] });
      let answer = "";
      const cs = a.udp.bind(0, (d) => {
        answer = new TextDecoder().decode(d);
      });
      cs.send("10.0.0.100", 53, "q");
      clock.runUntilIdle();
      assert.equal(spa, c.spa);
      assert.equal(answer, "ok");
    });
  }
});

/** client 10.0.1.2 — router (10.0.1.1 | 10.0.2.1) — server 10.0.2.2 */
function routed() {
  const clock = new SimClock();
  const l1 = new Link(clock, { name: "l1" });
  const l2 = new Link(clock, { name: "l2", mtu: 1400 });
  const c = new Host(clock, "c");
  c.addIface(l1, { name: "eth0", mac: mac(1), addrs: ["10.0.1.2/24"] });
  c.setDefaultRoute("10.0.1.1");
  const r = new Host(clock, "r", { ipForward: true });
  r.addIface(l1, { name: "eth0", mac: mac(2), addrs: ["10.0.1.1/24"] });
  r.addIface(l2, { name: "eth1", mac: mac(3), addrs: ["10.0.2.1/24"], mtu: 1400 });
  const s = new Host(clock, "s");
  s.addIface(l2, { name: "eth0", mac: mac(4), addrs: ["10.0.2.2/24"], mtu: 1400 });
  s.setDefaultRoute("10.0.2.1");
  return { clock, c, r, s };
}

describe("sim host: routing", () => {
  it("forwards between subnets and decrements the TTL", () => {
    const { clock, c, r } = routed();
    let ttl = 0;
    c.ping("10.0.2.2", (err, res) => {
      assert.equal(err, null);
      ttl = res?.ttl ?? 0;
    });
    clock.runUntilIdle();
    assert.equal(ttl, 63);
    assert.equal(r.counters.forwarded, 2);
  });

  it("answers TTL 1 with ICMP time exceeded from the router", () => {
    const { clock, c } = routed();
    let out = "";
    c.ping(
      "10.0.2.2",
      (err) => {
        out = `${err?.code} ${formatIPv4(err?.from ?? 0)}`;
      },
      { ttl: 1 },
    );
    const seen: IcmpEvent[] = [];
    c.onIcmp((e) => seen.push(e));
    clock.runUntilIdle();
    assert.equal(out, "ETIMEEXCEEDED 10.0.1.1");
    assert.equal(seen[0].type, ICMP_TIME_EXCEEDED);
  });

  it("a host without ip_forward drops transit traffic", () => {
    const { clock, c, r } = routed();
    r.ipForward = false;
    let code = "";
    c.ping("10.0.2.2", (err) => {
      code = err?.code ?? "reply";
    });
    clock.runUntilIdle();
    assert.equal(code, "ETIMEDOUT");
    assert.equal(r.counters.notForwarded, 1);
  });

  it("sends fragmentation needed with the next-hop MTU for an oversized DF datagram", () => {
    const { clock, c, r } = routed();
    const seen: IcmpEvent[] = [];
    c.onIcmp((e) => seen.push(e));
    c.sendIp(
      IPPROTO_TCP,
      0,
      ip("10.0.2.2"),
      1450,
      (b, off) => {
        writeU16(b, off + 2, 80);
        b[off + 12] = 0x50;
      },
      { df: true },
    );
    clock.runUntilIdle();
    assert.equal(r.counters.fragNeeded, 1);
    assert.equal(seen[0].type, ICMP_DEST_UNREACH);
    assert.equal(seen[0].info & 0xffff, 1400);
    assert.equal(c.pmtu.get(ip("10.0.2.2")), 1400);
  });
});

describe("sim host: IPIP", () => {
  function tunnelTo(ipipOn: boolean) {
    const { clock, a, b } = pair({ ipip: ipipOn });
    b.addLoopbackAddr("10.9.9.9");
    let got = "";
    b.udp.bind(7, (d, from, _p, to) => {
      got = `${new TextDecoder().decode(d)} from ${formatIPv4(from)} to ${formatIPv4(to)}`;
    });
    // An inner UDP datagram 10.0.0.1:5 → VIP 10.9.9.9:7 "hi", encapsulated to b's RIP.
    const raw = new Uint8Array(30);
    raw.set([0x45, 0, 0, 30, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 9, 9, 9]);
    raw.set([0, 5, 0, 7, 0, 10, 0, 0, 104, 105], 20);
    let s = 0;
    for (let i = 0; i < 20; i += 2) s += (raw[i] << 8) | raw[i + 1];
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    writeU16(raw, 10, ~s & 0xffff);
    const out = new Uint8Array(14 + 50);
    const n = ipipEncap(out, 14, raw, 0, 30, ip("10.0.0.1"), ip("10.0.0.2"), 64, 0, false);
    assert.ok(a.output(out, n));
    clock.runUntilIdle();
    return { got, b };
  }

  it("decapsulates and delivers to an address on lo", () => {
    const { got, b } = tunnelTo(true);
    assert.equal(got, "hi from 10.0.0.1 to 10.9.9.9");
    assert.equal(b.counters.ipipDecap, 1);
  });

  it("without ipip the datagram is refused with protocol unreachable", () => {
    const { got, b } = tunnelTo(false);
    assert.equal(got, "");
    assert.equal(b.counters.icmpSent, 1);
  });
});
