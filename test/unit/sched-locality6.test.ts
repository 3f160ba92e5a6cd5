// lblc and lblcr on IPv6 (issue 14): the kernel's ip_vs_lblc.c / ip_vs_lblcr.c hash an IPv6
// destination by its addr_fold (the XOR of its four words) but keep the whole address in each
// entry and compare it (ip_vs_addr_equal), so two addresses with the same fold have entries of
// their own. The expected picks below follow the kernel's code by hand: an address without an
// entry gets weighted least-connection over the service (ties to the first in list order), an
// entry's destination is kept unless unavailable, quiesced or overloaded (active > weight while
// another has active*2 < weight).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ControlApi } from "../../src/control/api.js";
import { ipv6Fold, ipv6TextWords, ipv6WordsText } from "../../src/core/addr.js";
import { Dest } from "../../src/core/dest.js";
import { Flow, IPPROTO_TCP } from "../../src/core/packet/flow.js";
import { findScheduler } from "../../src/core/sched/index.js";
import { type LocalityEntry, type LocalityState, localityGet } from "../../src/core/sched/lblc.js";
import type { SchedContext, Scheduler } from "../../src/core/sched/types.js";
import { Service } from "../../src/core/service.js";
import { Director6, L2_6_FROM_ROUTER } from "../support/frames6.js";
import { SYN } from "../support/packet-builder.js";
import { tcp6Frame } from "../support/packet6.js";

const HOUR = 3_600_000;

// Two destinations with one fold: words 2 and 3 differ by the same mask (0x100).
const X = "2001:db8:77::1";
const Y = "2001:db8:77::100:0:101";
const Z = "2001:db8:77::200:0:201";

function words(a: string): Int32Array {
  const w = ipv6TextWords(a);
  assert.ok(w !== null, a);
  return w;
}

function setup(sched: string, weights: number[]): { svc: Service; s: Scheduler; ds: Dest[] } {
  const svc = new Service(IPPROTO_TCP, 0, 80);
  svc.af = 6;
  const ds = weights.map((w, i) => {
    const d = new Dest(0x0a000101 + i, 80);
    d.weight = w;
    return d;
  });
  svc.dests = ds.slice();
  const s = findScheduler(sched);
  assert.ok(s !== null);
  svc.sched = s;
  s.initService?.(svc);
  return { svc, s, ds };
}

const flow = new Flow();
function to6(a: string): Flow {
  flow.af = 6;
  flow.proto = IPPROTO_TCP;
  flow.s6.set(words("2001:db8:ff::10"));
  flow.saddr = ipv6Fold(flow.s6);
  flow.d6.set(words(a));
  flow.daddr = ipv6Fold(flow.d6);
  return flow;
}
function to4(a: number): Flow {
  flow.af = 4;
  flow.proto = IPPROTO_TCP;
  flow.s6.fill(0);
  flow.d6.fill(0);
  flow.saddr = 0xc0a80001;
  flow.daddr = a >>> 0;
  return flow;
}
const at = (now: number): SchedContext => ({ now, random: () => 0 });
const state = (svc: Service) => svc.schedData as LocalityState<LocalityEntry>;

describe("lblc and lblcr on IPv6: the whole destination address is the key", () => {
  it("the test's addresses share one fold", () => {
    assert.equal(ipv6Fold(words(X)), ipv6Fold(words(Y)));
    assert.equal(ipv6Fold(words(X)), ipv6Fold(words(Z)));
  });

  for (const sched of ["lblc", "lblcr"]) {
    it(`${sched}: two destinations with one fold are scheduled apart (the kernel's picks)`, () => {
      const { svc, s, ds } = setup(sched, [1, 1]);
      const [A, B] = ds;
      // [destination, active connections of A and B before the packet, the kernel's pick, why]
      const table: [string, number, number, Dest, string][] = [
        [X, 0, 0, A, "no entry for X: wlc, a tie, the first"],
        [Y, 1, 0, B, "no entry for Y (X's entry is another address): wlc, B the least loaded"],
        [X, 1, 1, A, "X's entry: A, not overloaded (1 > 1 is false)"],
        [Y, 1, 1, B, "Y's entry: B"],
        [Z, 1, 1, A, "no entry for Z: wlc, a tie, the first"],
        [X, 2, 0, B, "X's entry names A, overloaded (2 > 1, B has 0*2 < 1): wlc, B"],
        [Y, 2, 0, B, "Y's entry: B"],
      ];
      table.forEach(([dst, a, b, want, why], i) => {
        A.activeConns = a;
        B.activeConns = b;
        assert.equal(s.schedule(svc, to6(dst), at(i)), want, `#${i} ${dst}: ${why}`);
      });
      assert.equal(state(svc).table.size, 1, "one fold");
      assert.equal(state(svc).entries, 3, "three entries");
      for (const a of [X, Y, Z]) assert.ok(localityGet(state(svc), to6(a)) !== undefined, a);
      assert.equal(localityGet(state(svc), to6("2001:db8:77::300:0:301")), undefined);
    });

    it(`${sched}: the entries of one fold expire on their own (24 h unused, at the full check)`, () => {
      const { svc, s } = setup(sched, [1, 1]);
      s.schedule(svc, to6(X), at(0));
      s.schedule(svc, to6(Y), at(0));
      s.schedule(svc, to6(Z), at(0));
      // Y stays in use; X and Z do not.
      for (let t = HOUR; t <= 25 * HOUR; t += HOUR) s.schedule(svc, to6(Y), at(t));
      assert.equal(state(svc).entries, 1);
      assert.equal(localityGet(state(svc), to6(X)), undefined);
      assert.equal(localityGet(state(svc), to6(Z)), undefined);
      assert.ok(localityGet(state(svc), to6(Y)) !== undefined);
      // The last one of the fold goes too, and the fold's key with it.
      for (let t = 26 * HOUR; t <= 52 * HOUR; t += HOUR) s.schedule(svc, to6("2001:db8:88::1"), at(t));
      assert.equal(localityGet(state(svc), to6(Y)), undefined);
      assert.equal(state(svc).table.has(ipv6Fold(words(Y))), false);
    });

    it(`${sched}: IPv6 addresses sharing folds are scheduled as distinct IPv4 addresses are (property)`, () => {
      // The same sequence of destinations and loads on two services: one keyed by IPv6 addresses of
      // few folds, the other by an IPv4 address per IPv6 address. Keyed whole, they pick alike.
      const addrs = Array.from({ length: 12 }, (_, i) => {
        const m = (i % 4) << 8;
        const w = Int32Array.of(0x20010db8, 0x770000, m, ((i >> 2) + 1) ^ m);
        return ipv6WordsText(w);
      });
      fc.assert(
        fc.property(
          fc.array(
            fc.record({
              dst: fc.integer({ min: 0, max: addrs.length - 1 }),
              loads: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 3, maxLength: 3 }),
            }),
            { minLength: 1, maxLength: 60 },
          ),
          (steps) => {
            const six = setup(sched, [1, 2, 1]);
            const four = setup(sched, [1, 2, 1]);
            steps.forEach((st, i) => {
              st.loads.forEach((l, k) => {
                six.ds[k].activeConns = l;
                four.ds[k].activeConns = l;
              });
              const p6 = six.s.schedule(six.svc, to6(addrs[st.dst]), at(i));
              const p4 = four.s.schedule(four.svc, to4(0x0a000001 + st.dst), at(i));
              assert.equal(p6 === null ? -1 : six.ds.indexOf(p6), p4 === null ? -1 : four.ds.indexOf(p4));
            });
            assert.equal(state(six.svc).entries, state(four.svc).entries);
          },
        ),
      );
    });
  }
});

describe("engine, IPv6 fwmark service with lblc: one fold, two destinations, two real servers", () => {
  it("the connections to X and Y go where the kernel sends them", () => {
    const d = new Director6();
    const api = new ControlApi(d.engine, () => d.now);
    api.apply([{ op: "add-fwmark", rule: "-d 2001:db8:77::/64 -p tcp --dport 80 -j MARK --set-mark 7" }]);
    d.ipvsadm("-A -f 7 -6 -s lblc");
    d.ipvsadm("-a -f 7 -6 -r [2001:db8:1::11]:0 -g -w 1");
    d.ipvsadm("-a -f 7 -6 -r [2001:db8:1::12]:0 -g -w 1");
    const via = (dst: string, sport: number): string | undefined => {
      d.input(
        1,
        tcp6Frame(L2_6_FROM_ROUTER, { src: "2001:db8:ff::10", dst }, { sport, dport: 80, flags: SYN }),
      );
      return d.engine.connections(d.now).find((c) => c.cport === sport)?.daddr6;
    };
    // List order is newest first: ::12, then ::11. Every connection stays inactive (no handshake),
    // so wlc compares inactive counts: overhead = inactive.
    assert.equal(via(X, 1000), "2001:db8:1::12"); // no entry: wlc, a tie, the first
    assert.equal(via(Y, 1001), "2001:db8:1::11"); // no entry for Y: wlc, ::11 (0 against 1)
    assert.equal(via(X, 1002), "2001:db8:1::12"); // X's entry
    assert.equal(via(Y, 1003), "2001:db8:1::11"); // Y's entry
  });
});
