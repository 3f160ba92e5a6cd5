// `tsvs explain` in the core (src/core/explain.ts): for every scheduler, explain says X and then the
// real SYN through the same engine goes to X, over 50 random client tuples (seeded) with the load
// moving between them (handshakes completed or not, a destination quiesced and back, a threshold
// overloading one, time passing so that entries expire and lblc's timer runs); explain changes no
// state (twice = the same answer; the scheduler's state and the generator's next draws as before).
// Then the cases around scheduling: an existing entry, a persistence template (-M applied), a
// fwmark rule, a port-0 service, no service, DR/TUN/FULLNAT rewrites, an injected random source.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseExplainArgs } from "../../src/cli/explain.js";
import { explainExitCode, formatExplanation, mmss } from "../../src/cli/explain-format.js";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { parseFwmarkRule } from "../../src/control/fwmark-rule.js";
import { Dest } from "../../src/core/dest.js";
import { Engine } from "../../src/core/engine.js";
import { type ExplainQuery, type Explanation, explainPacket } from "../../src/core/explain.js";
import { SCHEDULER_NAMES } from "../../src/core/sched/index.js";
import { IP, L2_FROM_ROUTER, MAC } from "../support/frames.js";
import { ACK, ip, ipStr, mac, SYN, tcpFrame, udpFrame } from "../support/packet-builder.js";
import { seeded } from "../support/seeded.js";

const VIP = IP.vip;
const RS = [IP.rs1, IP.rs2, IP.rs3];

interface Bench {
  e: Engine;
  now: number;
  out: Array<{ ifindex: number; frame: Uint8Array }>;
  ipvsadm(line: string): void;
  /** The frame in, what went out. */
  input(frame: Uint8Array): Array<{ ifindex: number; frame: Uint8Array }>;
  /** Time passes with the neighbours fresh; expiry and timers run as the worker's loop runs them. */
  advance(ms: number): void;
}

/** The tests' director (test/support/frames.ts Director's topology), with the engine's own seeded generator. */
function bench(o: { seed?: number; random?: () => number } = {}): Bench {
  const b: Bench = {
    e: undefined as unknown as Engine,
    now: 1000,
    out: [],
    ipvsadm(line) {
      const r = parseIpvsadm(line.trim().split(/\s+/));
      if (r.kind !== "ctl") throw new Error(`not a control command: ${line}`);
      this.e.apply(r.cmd);
    },
    input(frame) {
      const buf = new Uint8Array(frame.length + 64);
      buf.set(frame);
      this.out = [];
      this.e.input(1, buf, frame.length, this.now);
      const out = this.out;
      this.out = [];
      return out;
    },
    advance(ms) {
      this.now += ms;
      seed(this.e, this.now);
      this.e.tick(this.now);
      this.out = [];
    },
  };
  b.e = new Engine({
    interfaces: [
      { ifindex: 1, name: "eth0", mac: mac(MAC.dir0), addrs: [{ addr: ip(IP.dir0), prefix: 24 }], mtu: 1500 },
      { ifindex: 2, name: "eth1", mac: mac(MAC.dir1), addrs: [{ addr: ip(IP.dir1), prefix: 24 }], mtu: 1500 },
    ],
    routes: [
      { dst: ip("198.18.2.0"), prefix: 24, via: ip(IP.gw1), ifindex: 2 },
      { dst: 0, prefix: 0, via: ip(IP.router), ifindex: 1 },
    ],
    lips: [ip(IP.lip)],
    seed: o.seed,
    random: o.random,
    send: (ifindex, buf, off, len) => b.out.push({ ifindex, frame: buf.slice(off, off + len) }),
  });
  seed(b.e, b.now);
  return b;
}

function seed(e: Engine, now: number): void {
  e.neigh.confirm(1, ip(IP.router), mac(MAC.router), now);
  e.neigh.confirm(2, ip(IP.gw1), mac(MAC.gw1), now);
  e.neigh.confirm(2, ip(IP.rs1), mac(MAC.rs1), now);
  e.neigh.confirm(2, ip(IP.rs2), mac(MAC.rs2), now);
  e.neigh.confirm(2, ip(IP.rs3), mac(MAC.rs3), now);
}

const u32 = (b: Uint8Array, o: number): number =>
  ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
const u16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];

/** Where the request went: the IPv4 destination (and TCP/UDP port) of the frame sent on the server side. */
function sentTo(out: Array<{ ifindex: number; frame: Uint8Array }>): string | null {
  const f = out.find((x) => x.ifindex === 2);
  if (f === undefined) return null;
  return `${ipStr(u32(f.frame, 30))}:${u16(f.frame, 36)}`;
}

function syn(client: string, cport: number, vip: string = VIP, vport = 80, flags = SYN): Uint8Array {
  return tcpFrame(L2_FROM_ROUTER, { src: ip(client), dst: ip(vip) }, { sport: cport, dport: vport, flags });
}

function query(client: string, cport: number, vip: string = VIP, vport = 80, proto = 6): ExplainQuery {
  return { proto, vaddr: ip(vip), vport, caddr: ip(client), cport };
}

/** The scheduler's state as data: Dests by name, Maps as entries (JSON of svc.schedData). */
function stateOf(e: Engine): string {
  return JSON.stringify(
    e.services().map((s) => s.schedData),
    (_k, v: unknown) => {
      if (v instanceof Dest) return `${ipStr(v.addr)}:${v.port}`;
      if (v instanceof Map) return [...v.entries()];
      if (typeof v === "number" && Number.isNaN(v)) return "NaN";
      return v;
    },
  );
}

/** The generator's next draws, read ahead (as explain reads them). */
function nextDraws(e: Engine, now: number): number[] {
  const ctx = e.life.peekContext(now);
  return ctx === null ? [] : [ctx.random(), ctx.random(), ctx.random()];
}

/** explain, twice, and nothing changed by it. */
function explainChecked(b: Bench, q: ExplainQuery): Explanation {
  const before = stateOf(b.e);
  const draws = nextDraws(b.e, b.now);
  const conns = b.e.connCount();
  const a = explainPacket(b.e, q, b.now);
  assert.deepEqual(explainPacket(b.e, q, b.now), a, "explain twice: the same answer");
  assert.equal(stateOf(b.e), before, "the scheduler's state is unchanged");
  assert.deepEqual(nextDraws(b.e, b.now), draws, "the generator is not advanced");
  assert.equal(b.e.connCount(), conns, "no entry made");
  return a;
}

/** The scheduler-specific variants: flags that change the decision path. */
const VARIANTS: Array<{ sched: string; flags?: string }> = [
  ...SCHEDULER_NAMES.map((s) => ({ sched: s })),
  { sched: "sh", flags: "sh-fallback,sh-port" },
  { sched: "mh", flags: "mh-fallback,mh-port" },
];

describe("explain: the predicted destination is where the real connection goes", () => {
  for (const v of VARIANTS) {
    it(`${v.sched}${v.flags !== undefined ? ` -b ${v.flags}` : ""}: 50 random client tuples`, () => {
      const b = bench({ seed: 0x5eed + v.sched.length });
      b.ipvsadm(`-A -t ${VIP}:80 -s ${v.sched}${v.flags !== undefined ? ` -b ${v.flags}` : ""}`);
      b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[0]}:8080 -m -w 3`);
      b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[1]}:8080 -m -w 1 -x 6`);
      b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[2]}:8080 -m -w 2`);
      const rnd = seeded(0xc0ffee ^ v.sched.charCodeAt(0));
      const seen = new Set<string>();
      let forwarded = 0;
      for (let i = 0; i < 50; i++) {
        if (i === 20) b.ipvsadm(`-e -t ${VIP}:80 -r ${RS[2]}:8080 -m -w 0`);
        if (i === 35) b.ipvsadm(`-e -t ${VIP}:80 -r ${RS[2]}:8080 -m -w 2`);
        b.advance(i === 40 ? 65_000 : Math.floor(rnd() * 3000));
        const client = `203.0.113.${1 + Math.floor(rnd() * 254)}`;
        const cport = 1024 + Math.floor(rnd() * 64000);
        const a = explainChecked(b, query(client, cport));
        const went = sentTo(b.input(syn(client, cport)));
        if (a.verdict === "no-destination") {
          assert.equal(went, null, `#${i} ${client}:${cport}: explain said no destination`);
          continue;
        }
        assert.equal(a.verdict, "scheduled", `#${i}: ${a.summary}`);
        assert.ok(a.schedule?.exact, "the engine's own generator: exact");
        assert.equal(went, a.forward?.dst, `#${i} ${client}:${cport}: ${a.summary}`);
        assert.equal(`${a.destination?.address}:${a.destination?.port}`, went);
        seen.add(went ?? "");
        forwarded++;
        // Half the handshakes complete: active and inactive counts move apart.
        if (rnd() < 0.5) b.input(syn(client, cport, VIP, 80, ACK));
        // The entry is there now: explain says so, and where it goes.
        const again = explainChecked(b, query(client, cport));
        assert.equal(again.verdict, "existing");
        assert.equal(again.connection?.destination, went);
      }
      assert.ok(forwarded >= 25, `${forwarded} of 50 forwarded`);
      assert.ok(seen.size >= 1);
    });
  }
});

describe("explain: what it says around scheduling", () => {
  it("figures: wlc's overheads and weights, the pick marked by its destination", () => {
    const b = bench();
    b.ipvsadm(`-A -t ${VIP}:80 -s wlc`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[0]}:80 -m -w 3`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[1]}:80 -m -w 1`);
    b.input(syn(IP.client1, 40000));
    b.input(syn(IP.client1, 40000, VIP, 80, ACK));
    const a = explainChecked(b, query(IP.client2, 40001));
    assert.equal(a.schedule?.scheduler, "wlc");
    const by = new Map(a.schedule?.dests.map((d) => [d.destination, d.figures]));
    const busy = by.get(`${RS[1]}:80`);
    const other = by.get(`${RS[0]}:80`);
    assert.ok(busy !== undefined && other !== undefined);
    // The first connection went to the newest dest (wlc's tie goes to the list head: RS[1]).
    assert.deepEqual(
      [busy.active, busy.overhead, busy.weight, other.overhead],
      [1, 256, 1, 0],
      JSON.stringify(a.schedule),
    );
    assert.equal(a.schedule?.destination, `${RS[0]}:80`);
    assert.equal(a.forward?.method, "masq");
    assert.equal(a.forward?.src, `${IP.client2}:40001`);
    assert.equal(a.forward?.dst, `${RS[0]}:80`);
    assert.equal(a.forward?.mac, MAC.rs1);
  });

  it("wrr: the cursor and the current weight before and after", () => {
    const b = bench();
    b.ipvsadm(`-A -t ${VIP}:80 -s wrr`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[0]}:80 -m -w 2`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[1]}:80 -m -w 4`);
    const a = explainChecked(b, query(IP.client1, 1234));
    assert.deepEqual(a.schedule?.figures, {
      cursor: null,
      cw: 1,
      gcd: 2,
      max: 3,
      cursorAfter: `${RS[1]}:80`,
      cwAfter: 1,
    });
    assert.equal(a.schedule?.destination, `${RS[1]}:80`);
  });

  it("mh: the slot of the lookup table and the flags; sh: the bucket", () => {
    const b = bench();
    b.ipvsadm(`-A -t ${VIP}:80 -s mh -b mh-port`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[0]}:80 -m -w 1`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[1]}:80 -m -w 1`);
    const a = explainChecked(b, query(IP.client1, 1234));
    const f = a.schedule?.figures ?? {};
    assert.equal(f.slots, 4093);
    assert.equal(f["mh-port"], true);
    assert.equal(f["mh-fallback"], false);
    assert.ok(typeof f.slot === "number" && f.slot >= 0 && f.slot < 4093);
    assert.equal(f.slotDest, a.schedule?.destination);
    const slots = (a.schedule?.dests ?? []).map((d) => d.figures.slots as number);
    assert.equal(
      slots.reduce((x, y) => x + y, 0),
      4093,
    );
    b.ipvsadm(`-E -t ${VIP}:80 -s sh`);
    const s = explainChecked(b, query(IP.client1, 1234));
    assert.equal(s.schedule?.figures.buckets, 256);
    assert.equal(s.schedule?.figures.bucketDest, s.schedule?.destination);
  });

  it("twos: the two draws and candidates; with an injected random source the pick is a guess", () => {
    const b = bench({ seed: 7 });
    b.ipvsadm(`-A -t ${VIP}:80 -s twos`);
    for (const [i, r] of RS.entries()) b.ipvsadm(`-a -t ${VIP}:80 -r ${r}:80 -m -w ${i + 1}`);
    const a = explainChecked(b, query(IP.client1, 1234));
    assert.equal(a.schedule?.figures.total, 7);
    assert.equal(typeof a.schedule?.figures.r1, "number");
    assert.equal(a.schedule?.exact, true);
    let n = 0;
    const c = bench({ random: () => n++ });
    c.ipvsadm(`-A -t ${VIP}:80 -s twos`);
    c.ipvsadm(`-a -t ${VIP}:80 -r ${RS[0]}:80 -m`);
    const g = explainPacket(c.e, query(IP.client1, 1234), c.now);
    assert.equal(g.schedule?.exact, false);
    assert.equal(n, 0, "the injected source is not drawn from");
    assert.ok(g.notes.some((x) => /cannot be read ahead/.test(x)));
  });

  it("lblc: the table entry, kept or left because its destination is overloaded", () => {
    const b = bench();
    b.ipvsadm(`-A -t ${VIP}:80 -s lblc`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[0]}:80 -m -w 1`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[1]}:80 -m -w 4`);
    const first = explainChecked(b, query(IP.client1, 1000));
    assert.equal(first.schedule?.figures.entry, null);
    assert.match(String(first.schedule?.figures.path), /no entry/);
    b.input(syn(IP.client1, 1000));
    b.input(syn(IP.client1, 1000, VIP, 80, ACK));
    const kept = explainChecked(b, query(IP.client1, 1001));
    assert.equal(kept.schedule?.figures.entry, first.schedule?.destination);
    assert.match(String(kept.schedule?.figures.path), /kept/);
    // Established connections pile up on the cached one (weight 4) until it is overloaded in lblc's
    // sense: active > weight while another has active*2 < weight. Then wlc, and the entry moves.
    let over: Explanation | null = null;
    for (let p = 1001; p < 1020 && over === null; p++) {
      const a = explainChecked(b, query(IP.client1, p));
      if (a.schedule?.figures.entryOverloaded === true) over = a;
      assert.equal(sentTo(b.input(syn(IP.client1, p))), a.forward?.dst);
      b.input(syn(IP.client1, p, VIP, 80, ACK));
    }
    assert.ok(over !== null, "the entry's destination became overloaded");
    assert.equal(over.schedule?.figures.entry, `${RS[1]}:80`);
    assert.equal(over.schedule?.figures.entryActive, 5);
    assert.equal(over.schedule?.figures.underused, `${RS[0]}:80`);
    assert.match(String(over.schedule?.figures.path), /overloaded/);
    assert.equal(over.schedule?.destination, `${RS[0]}:80`);
  });

  it("persistence: a new template (client masked by -M), then the template decides", () => {
    const b = bench();
    b.ipvsadm(`-A -t ${VIP}:80 -s rr -p 120 -M 255.255.255.0`);
    for (const r of RS) b.ipvsadm(`-a -t ${VIP}:80 -r ${r}:80 -m`);
    const a = explainChecked(b, query("203.0.113.10", 5000));
    assert.equal(a.verdict, "scheduled");
    assert.equal(a.template?.status, "new");
    assert.equal(a.template?.client, "203.0.113.0");
    assert.equal(a.template?.netmask, "255.255.255.0");
    assert.equal(a.service?.persistent?.timeoutS, 120);
    assert.equal(sentTo(b.input(syn("203.0.113.10", 5000))), a.forward?.dst);
    b.advance(10_000);
    // Another client of the same /24: the template's destination, whatever rr's cursor says.
    const t = explainChecked(b, query("203.0.113.77", 6000));
    assert.equal(t.verdict, "template");
    assert.equal(t.template?.status, "exists");
    assert.equal(t.template?.destination, a.forward?.dst);
    assert.equal(t.template?.controls, 1);
    assert.equal(t.template?.expiresMs, 110_000);
    assert.equal(t.schedule, null, "the scheduler is not asked");
    assert.equal(sentTo(b.input(syn("203.0.113.77", 6000))), a.forward?.dst);
    // A client of another /24 gets rr's next.
    const o = explainChecked(b, query("203.0.114.1", 6000));
    assert.equal(o.template?.status, "new");
    assert.notEqual(o.forward?.dst, a.forward?.dst);
    assert.equal(sentTo(b.input(syn("203.0.114.1", 6000))), o.forward?.dst);
  });

  it("a fwmark rule classifies the packet to a fwmark service; --fwmark overrides the rules", () => {
    const b = bench();
    b.e.fwmarks.add(parseFwmarkRule(`-d ${VIP} -p tcp --dport 443 -j MARK --set-mark 10`));
    b.ipvsadm("-A -f 10 -s rr");
    b.ipvsadm(`-a -f 10 -r ${RS[0]}:0 -m`);
    b.ipvsadm(`-A -t ${VIP}:80 -s rr`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[1]}:80 -m`);
    const a = explainChecked(b, query(IP.client1, 3000, VIP, 443));
    assert.equal(a.fwmark.source, "rules");
    assert.equal(a.fwmark.mark, 10);
    assert.deepEqual(
      a.fwmark.rules.map((r) => r.matched),
      [true],
    );
    assert.equal(a.service?.name, "FWM  10");
    assert.equal(a.service?.matchedBy, "fwmark");
    assert.equal(a.forward?.dst, `${RS[0]}:443`);
    assert.equal(sentTo(b.input(syn(IP.client1, 3000, VIP, 443))), `${RS[0]}:443`);
    const p80 = explainChecked(b, query(IP.client1, 3001));
    assert.equal(p80.fwmark.mark, 0);
    assert.equal(p80.fwmark.rules[0].matched, false);
    assert.equal(p80.service?.name, `TCP  ${VIP}:80`);
    const given = explainChecked(b, { ...query(IP.client1, 3001), fwmark: 10 });
    assert.equal(given.fwmark.source, "given");
    assert.equal(given.service?.name, "FWM  10");
  });

  it("a port-0 service (PCC) catches other ports; without one: No such service", () => {
    const b = bench();
    b.ipvsadm(`-A -t ${VIP}:0 -s rr -p 60`);
    b.ipvsadm(`-a -t ${VIP}:0 -r ${RS[0]}:0 -m`);
    const a = explainChecked(b, query(IP.client1, 3000, VIP, 8443));
    assert.equal(a.service?.matchedBy, "port 0");
    assert.equal(a.forward?.dst, `${RS[0]}:8443`);
    assert.equal(sentTo(b.input(syn(IP.client1, 3000, VIP, 8443))), `${RS[0]}:8443`);
    b.ipvsadm(`-D -t ${VIP}:0`);
    b.ipvsadm(`-A -t ${VIP}:80 -s rr`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[0]}:80 -m`);
    const n = explainChecked(b, query(IP.client1, 3001, VIP, 81));
    assert.equal(n.verdict, "no-service");
    assert.equal(n.service, null);
    assert.match(n.summary, /^No such service: the director answers with a TCP reset/);
    assert.deepEqual(n.lookups, [
      `TCP  ${VIP}:81: no such service`,
      `TCP  ${VIP}:0 (all ports): no such service`,
    ]);
    const out = b.input(syn(IP.client1, 3001, VIP, 81));
    assert.equal(sentTo(out), null);
    assert.equal(out.length, 1, "a reset");
    const far = explainChecked(b, query(IP.client1, 3001, "192.0.2.1", 80));
    assert.match(far.summary, /not an address tsvs owns/);
    const udp = explainChecked(b, query(IP.client1, 3001, VIP, 80, 17));
    assert.match(udp.summary, /ICMP port unreachable/);
    const sctp = explainPacket(b.e, query(IP.client1, 3001, VIP, 80, 132), b.now);
    assert.equal(sctp.verdict, "pass");
  });

  it("DR: the MAC only; TUN: the outer header; FULLNAT: the LIP and port the connection takes", () => {
    const b = bench();
    b.ipvsadm(`-A -t ${VIP}:80 -s rr`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[1]}:80 -g`);
    const dr = explainChecked(b, query(IP.client1, 4000));
    assert.equal(dr.forward?.method, "route");
    assert.equal(dr.forward?.dst, `${VIP}:80`);
    assert.equal(dr.forward?.mac, MAC.rs2);
    assert.equal(dr.forward?.iface, "eth1");
    b.ipvsadm(`-e -t ${VIP}:80 -r ${RS[1]}:80 -i`);
    const tun = explainChecked(b, query(IP.client1, 4001));
    assert.deepEqual(tun.forward?.outer, { src: IP.dir1, dst: RS[1], kind: "IPIP" });
    b.ipvsadm(`-e -t ${VIP}:80 -r ${RS[1]}:80 --fullnat`);
    const fn = explainChecked(b, query(IP.client1, 4002));
    assert.equal(fn.forward?.method, "fullnat");
    const out = b.input(syn(IP.client1, 4002));
    const f = out.find((x) => x.ifindex === 2)?.frame;
    assert.ok(f !== undefined);
    assert.equal(fn.forward?.src, `${ipStr(u32(f, 26))}:${u16(f, 34)}`, "the LIP:port the connection took");
    assert.equal(fn.forward?.src.startsWith(`${IP.lip}:`), true);
    const next = explainChecked(b, query(IP.client1, 4003));
    assert.notEqual(next.forward?.src, fn.forward?.src, "the next connection: the next local port");
  });

  it("an entry in TIME_WAIT: a SYN reusing it is scheduled anew (conn_reuse_mode); UDP follows its entry", () => {
    const b = bench();
    b.ipvsadm(`-A -t ${VIP}:80 -s rr`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[0]}:80 -m`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[1]}:80 -m`);
    b.input(syn(IP.client1, 5000));
    const cx = b.e.conns.lookupIn(6, ip(IP.client1) | 0, 5000, ip(VIP) | 0, 80);
    b.e.conns.setState(cx, 5 /* TIME_WAIT */);
    const a = explainChecked(b, query(IP.client1, 5000));
    assert.equal(a.verdict, "scheduled");
    assert.equal(a.connection?.state, "TIME_WAIT");
    assert.ok(a.notes.some((n) => /scheduled anew/.test(n)));
    assert.equal(sentTo(b.input(syn(IP.client1, 5000))), a.forward?.dst);
    b.ipvsadm(`-A -u ${VIP}:53 -s rr`);
    b.ipvsadm(`-a -u ${VIP}:53 -r ${RS[0]}:53 -m`);
    b.input(udpFrame(L2_FROM_ROUTER, { src: ip(IP.client1), dst: ip(VIP) }, { sport: 5353, dport: 53 }));
    const u = explainChecked(b, query(IP.client1, 5353, VIP, 53, 17));
    assert.equal(u.verdict, "existing");
    assert.equal(u.connection?.state, "UDP");
    assert.equal(u.forward?.dst, `${RS[0]}:53`);
  });
});

describe("tsvs explain: argv and the lines", () => {
  it("-t/-u/--sctp-service VIP:PORT --from CIP:CPORT [--fwmark N | -f N] [--json]; errors say what is wrong", () => {
    assert.deepEqual(parseExplainArgs(["-t", `${VIP}:80`, "--from", "203.0.113.1:4000"]), {
      req: { op: "explain", proto: "tcp", vip: VIP, port: 80, client: "203.0.113.1", cport: 4000 },
      json: false,
    });
    assert.deepEqual(
      parseExplainArgs(["--from", "203.0.113.1:4000", "-f", "0x10", "-u", `${VIP}:53`, "--json"]),
      {
        req: {
          op: "explain",
          proto: "udp",
          vip: VIP,
          port: 53,
          client: "203.0.113.1",
          cport: 4000,
          fwmark: 16,
        },
        json: true,
      },
    );
    const err = (argv: string[]): string => {
      const r = parseExplainArgs(argv);
      assert.ok("error" in r, JSON.stringify(r));
      return r.error;
    };
    assert.match(err(["-t", "198.18.0.100", "--from", "1.2.3.4:5"]), /bad service address '198\.18\.0\.100'/);
    assert.match(err(["-t", `${VIP}:80`, "--from", "1.2.3.400:5"]), /bad client address/);
    assert.match(err(["-t", `${VIP}:80`]), /--from CIP:CPORT is required/);
    assert.match(err(["-f", "10", "--from", "1.2.3.4:5"]), /-f MARK needs the packet's destination too/);
    assert.match(err(["-t", `${VIP}:80`, "-u", `${VIP}:80`, "--from", "1.2.3.4:5"]), /one service only/);
    assert.match(err(["-t", `${VIP}:80`, "--from", "1.2.3.4:5", "--fwmark", "x"]), /bad firewall mark 'x'/);
    assert.match(err(["-t", `${VIP}:80`, "--from", "1.2.3.4:5", "-x"]), /unknown argument -x/);
  });

  it("the lines: summary first, then service, entry, template, schedule with the pick marked, forward", () => {
    const b = bench();
    b.ipvsadm(`-A -t ${VIP}:80 -s wlc -p 300`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[0]}:80 -m -w 3`);
    b.ipvsadm(`-a -t ${VIP}:80 -r ${RS[1]}:80 -m -w 1 -x 10`);
    const a = { ...explainPacket(b.e, query(IP.client1, 4000), b.now), worker: { index: 1, of: 2 } };
    const text = formatExplanation(a);
    const lines = text.split("\n");
    assert.equal(
      lines[0],
      `TCP ${IP.client1}:4000 -> ${VIP}:80: new connection: wlc picks ${RS[1]}:80 (Masq)`,
    );
    assert.equal(lines[1], `  service  TCP  ${VIP}:80 wlc persistent 300  [matched by address and port]`);
    assert.equal(lines[2], "  entry    none");
    assert.equal(
      lines[3],
      `  template none for ${IP.client1}/255.255.255.255: a new one -> ${RS[1]}:80 for 300 s`,
    );
    assert.match(lines[4], /^ {2}schedule wlc -> 198\.18\.1\.12:80: weighted least-connection/);
    assert.equal(
      lines[5],
      `           * ${RS[1]}:80  weight 1  active 0  inactive 0  overhead 0  overhead/weight 0`,
    );
    assert.equal(
      lines[6],
      `             ${RS[0]}:80  weight 3  active 0  inactive 0  overhead 0  overhead/weight 0`,
    );
    assert.equal(
      lines[7],
      `  forward  Masq: ${IP.client1}:4000 -> ${RS[1]}:80 via eth1 next hop ${RS[1]} ${MAC.rs2}`,
    );
    assert.ok(lines.includes("  worker   1 of 2 (the one the client's packets reach)"));
    assert.equal(explainExitCode(a), 0);
    const none = {
      ...explainPacket(b.e, query(IP.client1, 4000, VIP, 9), b.now),
      worker: { index: 0, of: 1 },
    };
    assert.match(
      formatExplanation(none),
      /^TCP 203\.0\.113\.10:4000 -> 198\.18\.0\.100:9: No such service: /,
    );
    assert.equal(explainExitCode(none), 1);
    assert.equal(mmss(899_001), "15:00");
    assert.equal(mmss(0), "00:00");
  });
});
