// TUN for IPv6 (ip_vs_tunnel_xmit_v6, IPv6-in-IPv6): packet in → packet out. The outer header
// comes from the director's address toward the real server, next header 41, payload length the
// inner packet's, hop limit the inner one (already decremented), traffic class the inner one with
// ECN encapsulated (INET_ECN_encapsulate: CE becomes ECT(0)), flow label 0; the MTU check leaves
// 40 bytes for it and refuses a tunnel below IPV6_MIN_MTU; a GSO aggregate is cut first.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { makeOffloadWord, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV6 } from "../../src/core/packet/vnet.js";
import { Director6, flat6, IP6, L2_6_FROM_ROUTER, MAC6 } from "../support/frames6.js";
import { ACK, bytes, inetChecksum, put16, SYN } from "../support/packet-builder.js";
import { a6, NH_IPV6, NH_TCP, pseudoHeader6, tcp6Frame } from "../support/packet6.js";

const VIP = "2001:db8::100";
const CLIENT = IP6.client1;

function tunDirector(o: { mtu1?: number } = {}, type = ""): Director6 {
  const d = new Director6(o);
  d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
  d.ipvsadm(`-a -t [${VIP}]:80 -r [2001:db8:1::11]:80 -i${type}`);
  return d;
}

function fields(actual: Record<string, unknown>, expected: Record<string, unknown>, what: string): void {
  const got: Record<string, unknown> = {};
  for (const k of Object.keys(expected)) got[k] = actual[k];
  assert.deepEqual(got, expected, what);
}

describe("TUN over IPv6 (IPv6-in-IPv6)", () => {
  const rows = [
    { desc: "DSCP AF41, not ECN-capable", tc: 0x88, outerTc: 0x88 },
    { desc: "ECT(0)", tc: 0x2a, outerTc: 0x2a },
    { desc: "CE inside is ECT(0) outside", tc: 0x2b, outerTc: 0x2a },
  ];
  for (const r of rows) {
    it(`the outer header as ip_vs_tunnel_xmit_v6 writes it: ${r.desc}`, () => {
      const d = tunDirector();
      const o = d.one(
        1,
        tcp6Frame(
          L2_6_FROM_ROUTER,
          { src: CLIENT, dst: VIP, hl: 30, tc: r.tc, flow: 0x54321 },
          { sport: 42000, dport: 80, flags: SYN, payload: bytes("hi") },
        ),
      );
      assert.equal(o.ifindex, 2);
      fields(
        o.f,
        {
          dmac: MAC6.rs1,
          smac: MAC6.dir1,
          src: IP6.dir1,
          dst: IP6.rs1,
          nh: NH_IPV6,
          plen: 40 + 22,
          hl: 29,
          tc: r.outerTc,
          flow: 0,
          isrc: CLIENT,
          idst: IP6.vip,
          ihl: 29,
          itc: r.tc,
          inh: NH_TCP,
          isport: 42000,
          idport: 80,
        },
        r.desc,
      );
    });
  }

  it("the MTU leaves 40 bytes for the outer header: over it, packet too big with the tunnel's MTU", () => {
    const d = tunDirector();
    d.one(1, tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 42000, dport: 80, flags: SYN }));
    const fits = d.input(
      1,
      tcp6Frame(
        L2_6_FROM_ROUTER,
        { src: CLIENT, dst: VIP },
        { sport: 42000, dport: 80, flags: ACK, payload: new Uint8Array(1460 - 60) },
      ),
    );
    assert.equal(fits.out.length, 1);
    assert.equal(fits.out[0].frame.length, 14 + 1500);
    const o = d.one(
      1,
      tcp6Frame(
        L2_6_FROM_ROUTER,
        { src: CLIENT, dst: VIP },
        { sport: 42000, dport: 80, flags: ACK, payload: new Uint8Array(1401) },
      ),
    );
    fields(o.f, { dst: CLIENT, src: IP6.vip, icmpType: 2, icmpRest: 1460, qdst: IP6.vip }, "packet too big");
  });

  it("a tunnel leaving less than 1280 bytes drops without an error (__ip_vs_get_out_rt_v6)", () => {
    const d = tunDirector({ mtu1: 1300 });
    const r = d.input(
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 42000, dport: 80, flags: SYN }),
    );
    assert.equal(r.out.length, 0);
    assert.deepEqual(d.engine.counters.dropTable(), { too_big: 1 });
  });

  it("GUE and GRE toward an IPv6 real server: next header 17 and 47 (xmit-tun-families.test.ts has the bytes)", () => {
    for (const [type, nh] of [
      [" --tun-type gue --tun-port 6080 --tun-csum", 17],
      [" --tun-type gre", 47],
    ] as const) {
      const d = tunDirector({}, type);
      const o = d.one(
        1,
        tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 42000, dport: 80, flags: SYN }),
      );
      fields(o.f, { src: IP6.dir1, dst: IP6.rs1, nh, flow: 0 }, type);
    }
  });

  it("a TCPV6 aggregate is cut into segments, each encapsulated with a full inner checksum", () => {
    const d = tunDirector();
    d.one(1, tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 42000, dport: 80, flags: SYN }));
    const payload = new Uint8Array(3000).map((_, i) => i & 255);
    const agg = tcp6Frame(
      L2_6_FROM_ROUTER,
      { src: CLIENT, dst: VIP, hl: 64 },
      { sport: 42000, dport: 80, flags: ACK, seq: 1000, payload },
    );
    // As a sender with checksum offload hands it over: the field holds the pseudo-header sum.
    const l4 = 14 + 40;
    const ph = pseudoHeader6(a6(CLIENT), a6(VIP), NH_TCP, agg.length - l4);
    put16(agg, l4 + 16, ~inetChecksum(ph) & 0xffff);
    const r = d.input(1, agg, d.now, makeOffloadWord(VNET_GSO_TCPV6, 1200, VNET_F_NEEDS_CSUM));
    assert.equal(r.out.length, 3);
    const segs = r.out.map((s) => flat6(s.frame));
    assert.deepEqual(
      segs.map((s) => [s.nh, s.plen, s.ihl, s.isport]),
      [
        [NH_IPV6, 40 + 20 + 1200, 63, 42000],
        [NH_IPV6, 40 + 20 + 1200, 63, 42000],
        [NH_IPV6, 40 + 20 + 600, 63, 42000],
      ],
    );
    assert.equal(d.engine.counters.gsoSegments, 3);
  });
});
