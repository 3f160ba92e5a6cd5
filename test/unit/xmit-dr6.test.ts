// DR for IPv6 (ip_vs_dr_xmit_v6): packet in → packet out. The packet leaves as the client sent it
// but for the hop limit (decrement_ttl in __ip_vs_get_out_rt_v6), to the real server's MAC found
// by NDP; replies never cross the director; errors from the client's side go to the real server
// unchanged; over the MTU the client gets packet too big.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ipv6TextWords } from "../../src/core/addr.js";
import { Verdict } from "../../src/core/engine.js";
import { Director6, flat6, IP6, L2_6_FROM_ROUTER, l2_6FromLan, MAC6 } from "../support/frames6.js";
import { ACK, bytes, concat, mac, SYN } from "../support/packet-builder.js";
import {
  a6,
  icmp6ErrorFrame,
  icmp6Frame,
  ipv6Packet,
  NH_TCP,
  tcp6Frame,
  tcp6Segment,
} from "../support/packet6.js";

const VIP = "2001:db8::100";
const CLIENT = IP6.client1;

function drDirector(o: { mtu1?: number; seedNeigh?: boolean } = {}): Director6 {
  const d = new Director6(o);
  d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
  d.ipvsadm(`-a -t [${VIP}]:80 -r [2001:db8:1::11]:80 -g`);
  return d;
}

function fields(actual: Record<string, unknown>, expected: Record<string, unknown>, what: string): void {
  const got: Record<string, unknown> = {};
  for (const k of Object.keys(expected)) got[k] = actual[k];
  assert.deepEqual(got, expected, what);
}

describe("DR over IPv6", () => {
  const rows: Array<{ desc: string; flags: number; payload?: string; state: string }> = [
    { desc: "SYN", flags: SYN, state: "SYN_RECV" },
    { desc: "ACK", flags: ACK, state: "ESTABLISHED" },
    { desc: "data", flags: ACK, payload: "GET / HTTP/1.1\r\n\r\n", state: "ESTABLISHED" },
  ];
  it("requests go to the real server's MAC unchanged but the hop limit; the state machine's input-only rows", () => {
    const d = drDirector();
    for (const r of rows) {
      const payload = r.payload === undefined ? undefined : bytes(r.payload);
      const o = d.one(
        1,
        tcp6Frame(
          L2_6_FROM_ROUTER,
          { src: CLIENT, dst: VIP, hl: 50, tc: 0x10, flow: 0xabcde },
          { sport: 41000, dport: 80, flags: r.flags, payload },
        ),
      );
      assert.equal(o.ifindex, 2);
      fields(
        o.f,
        {
          dmac: MAC6.rs1,
          smac: MAC6.dir1,
          src: CLIENT,
          dst: IP6.vip,
          hl: 49,
          tc: 0x10,
          flow: 0xabcde,
          sport: 41000,
          dport: 80,
          payload: r.payload ?? "",
        },
        r.desc,
      );
      assert.equal(d.engine.connections(d.now)[0].state, r.state, r.desc);
    }
  });

  it("an ICMPv6 error from the client's side about the real server's reply goes to the real server unchanged", () => {
    const d = drDirector();
    d.one(1, tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 41000, dport: 80, flags: SYN }));
    const reply = ipv6Packet(
      { src: VIP, dst: CLIENT },
      NH_TCP,
      tcp6Segment(VIP, CLIENT, { sport: 80, dport: 41000, flags: SYN | ACK }),
    );
    const o = d.one(
      1,
      icmp6ErrorFrame(L2_6_FROM_ROUTER, { src: IP6.router, dst: VIP, hl: 64 }, 2, 0, 1280, reply),
    );
    fields(
      o.f,
      {
        dmac: MAC6.rs1,
        src: IP6.router,
        dst: IP6.vip,
        hl: 63,
        icmpType: 2,
        icmpRest: 1280,
        qsrc: IP6.vip,
        qdst: CLIENT,
        qsport: 80,
        qdport: 41000,
      },
      "relayed error",
    );
  });

  it("over the MTU toward the real server: packet too big from the VIP, quoting the request as it came", () => {
    const d = drDirector({ mtu1: 1280 });
    d.one(1, tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 41000, dport: 80, flags: SYN }));
    const o = d.one(
      1,
      tcp6Frame(
        L2_6_FROM_ROUTER,
        { src: CLIENT, dst: VIP, hl: 64 },
        { sport: 41000, dport: 80, flags: ACK, payload: new Uint8Array(1300) },
      ),
    );
    assert.equal(o.ifindex, 1);
    fields(
      o.f,
      {
        dmac: MAC6.router,
        src: IP6.vip,
        dst: CLIENT,
        icmpType: 2,
        icmpCode: 0,
        icmpRest: 1280,
        qdst: IP6.vip,
        qhl: 63,
      },
      "packet too big",
    );
  });

  it("an unknown real server is solicited (NS to its solicited-node group) and the request waits for its NA", () => {
    const d = drDirector({ seedNeigh: false });
    d.seedNeighbours(d.now);
    const n = d.engine.neigh;
    assert.ok(n.delete6(2, ipv6TextWords("2001:db8:1::11")!, 0));
    const r = d.input(
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP }, { sport: 41000, dport: 80, flags: SYN }),
    );
    assert.equal(r.verdict, Verdict.Sent);
    assert.equal(r.out.length, 1);
    const ns = flat6(r.out[0].frame);
    fields(
      ns,
      { dmac: "33:33:ff:00:00:11", smac: MAC6.dir1, dst: "ff02:0:0:0:0:1:ff00:11", hl: 255, icmpType: 135 },
      "NS",
    );
    // The NA (solicited, override, target link-layer address option) releases the request.
    const naFrame = icmp6Frame(
      l2_6FromLan(MAC6.rs1),
      { src: IP6.rs1, dst: IP6.dir1, hl: 255 },
      { type: 136, rest: 0x60000000, data: concat(a6(IP6.rs1), Uint8Array.of(2, 1), mac(MAC6.rs1)) },
    );
    const released = d.input(2, naFrame);
    assert.equal(released.out.length, 1);
    fields(
      flat6(released.out[0].frame),
      { dmac: MAC6.rs1, src: CLIENT, dst: IP6.vip, sport: 41000, dport: 80 },
      "released request",
    );
  });
});
