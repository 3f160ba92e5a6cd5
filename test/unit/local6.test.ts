// The director's own IPv6 answers (src/core/local.ts, through output.ts's emitIp6): frame in →
// frame out, byte for byte against frames the kernel built in throwaway namespaces
// (test/support/kernel6.ts, the IPv6 codecs' fixtures too): NS answered for an owned address (multicast with
// R, S, O and our MAC; unicast with S only; a DAD probe defended to all nodes), the NS sent to
// resolve a neighbour (from the waiting packet's source when it is ours, from the link-local
// address otherwise; unicast when probing), echo, time exceeded, packet too big, port unreachable,
// the unsolicited NAs of a VRRP takeover; then what the kernel does that a capture does not show:
// the TCP reset, parameter problem, ownership (IpvsCtl.ownsAddress6, --host-vips, VRRP) and what
// is left to the kernel.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { ipv6TextWords, ipv6ToWords } from "../../src/core/addr.js";
import { R } from "../../src/core/counters.js";
import { IpvsCtl } from "../../src/core/ctl.js";
import { Engine } from "../../src/core/engine.js";
import { type Ipv6Frame, unsolicitedNaFrames } from "../../src/core/local.js";
import type { NeighTickOut } from "../../src/core/neigh.js";
import { Ipv6Walk, ipv6Walk } from "../../src/core/packet/ipv6.js";
import type { IfaceConfig, RouteConfig } from "../../src/core/route.js";
import {
  cat,
  K_DAD_NS,
  K_ECHO_REPLY,
  K_ECHO_REQUEST,
  K_NA_SOLICITED,
  K_NA_UNICAST,
  K_NS_MCAST,
  K_NS_UNICAST,
  K_PORT_UNREACH,
  K_PTB,
  K_PTB_INVOKING,
  K_TE,
  K_TE_INVOKING,
  K_UDP_AT_B,
  K_UNSOL_NA,
  K_UNSOL_NA_DAD,
} from "../support/kernel6.js";

// ---- the test's own helpers -----------------------------------------------------------------------

function toHex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

const mac = (last: number): Uint8Array => Uint8Array.from([2, 0, 0, 0, 0, last]);
const W = (s: string): Int32Array => ipv6TextWords(s) as Int32Array;
const L3 = 14;

/** The parse of a frame (a private copy: answers are built over it), as the engine's Flow has it. */
function frame6(bytes: Uint8Array, ifindex = 1): Ipv6Frame {
  const buf = bytes.slice();
  const w = new Ipv6Walk();
  assert.equal(ipv6Walk(buf, L3, buf.length, w), 0);
  const s6 = new Int32Array(4);
  const d6 = new Int32Array(4);
  ipv6ToWords(buf, L3 + 8, s6, 0);
  ipv6ToWords(buf, L3 + 24, d6, 0);
  const l4 = w.l4Off;
  const tcp = w.proto === 6;
  const dv = new DataView(buf.buffer);
  return Object.assign(w, {
    buf,
    ifindex,
    s6,
    d6,
    sport: tcp || w.proto === 17 ? dv.getUint16(l4) : 0,
    dport: tcp || w.proto === 17 ? dv.getUint16(l4 + 2) : 0,
    payloadOff: tcp ? l4 + (buf[l4 + 12] >>> 4) * 4 : w.proto === 17 ? l4 + 8 : l4,
    tcpFlags: tcp ? buf[l4 + 13] : 0,
    tcpSeq: tcp ? dv.getUint32(l4 + 4) : 0,
    tcpAck: tcp ? dv.getUint32(l4 + 8) : 0,
  });
}

interface Out {
  ifindex: number;
  bytes: Uint8Array;
}

interface Lab {
  e: Engine;
  sent: Out[];
  /** The frames sent since the last call, as hex. */
  take(): string[];
}

function lab(
  iface: Partial<IfaceConfig> & Pick<IfaceConfig, "mac" | "addrs6">,
  opts: { routes?: RouteConfig[]; own?: boolean; ipvsadm?: string[] } = {},
): Lab {
  const sent: Out[] = [];
  const e = new Engine({
    interfaces: [{ ifindex: 1, name: "eth0", mtu: 1500, addrs: [], ...iface }],
    routes: opts.routes,
    ownInterfaceAddresses: opts.own ?? false,
    send: (ifindex, buf, off, len) => sent.push({ ifindex, bytes: buf.slice(off, off + len) }),
  });
  for (const line of opts.ipvsadm ?? []) {
    const r = parseIpvsadm(line.split(" "));
    if (r.kind !== "ctl") throw new Error(line);
    e.apply(r.cmd);
  }
  let seen = 0;
  return {
    e,
    sent,
    take() {
      const out = sent.slice(seen).map((s) => toHex(s.bytes));
      seen = sent.length;
      return out;
    },
  };
}

/** Teaches the engine a neighbour, as an NS from it for one of our addresses would. */
function neighbour(l: Lab, addr: string, m: Uint8Array): void {
  const b = new Uint8Array(6);
  b.set(m);
  l.e.neigh.learnFromNs(1, W(addr), 0, b, 0, 0);
}

// ---- frame in → frame out -------------------------------------------------------------------------

describe("IPv6 local answers, byte for byte against the kernel's", () => {
  it("multicast NS for an owned address → NA with R, S, O and our MAC (a forwarding interface)", () => {
    const l = lab(
      { mac: mac(1), addrs6: [{ addr6: "fe80::ff:fe00:1", prefix: 64 }], forwarding6: true },
      { ipvsadm: ["-A -t [2001:db8:1::1]:80 -s rr"] },
    );
    assert.equal(l.e.local.ndpInput(frame6(K_NS_MCAST), 0), 1);
    assert.deepEqual(l.take(), [toHex(K_NA_SOLICITED)]);
    assert.equal(l.e.counters.ndpAdverts, 1);
    assert.deepEqual(
      l.e.neigh.entries().map((n) => [n.ip6, n.mac, n.state]),
      [["2001:db8:1::a", "02:00:00:00:00:0a", "STALE"]],
      "the asker is learned from its source link-layer option",
    );
  });

  it("unicast NS (a reachability probe) → NA with S only, no option, to the asker's MAC", () => {
    const l = lab(
      { mac: mac(0x0c), addrs6: [{ addr6: "fe80::c", prefix: 64 }] },
      { ipvsadm: ["-A -u [2001:db8:1::a]:53"] },
    );
    l.e.local.ndpInput(frame6(K_NS_UNICAST), 0);
    assert.deepEqual(l.take(), [toHex(K_NA_UNICAST)]);
  });

  it("DAD probe for an owned address → defended to all nodes with O and our MAC", () => {
    const l = lab({ mac: mac(0x0b), addrs6: [] }, { ipvsadm: ["-A -t [2001:db8:2::bb]:443 -s wrr"] });
    l.e.local.ndpInput(frame6(K_DAD_NS), 0);
    // ndisc_recv_ns defends with the very bytes of ndisc_notify's NA once DAD completed.
    assert.deepEqual(l.take(), [toHex(K_UNSOL_NA_DAD)]);
    assert.equal(l.e.neigh.size, 0, "a DAD probe teaches nothing");
  });

  it("echo request to a VIP → echo reply from the VIP to a known neighbour", () => {
    const l = lab(
      { mac: mac(1), addrs6: [{ addr6: "2001:db8:1::2", prefix: 64 }] },
      { ipvsadm: ["-A -t [2001:db8:1::1]:80"] },
    );
    neighbour(l, "2001:db8:1::a", mac(0x0a));
    assert.equal(l.e.local.icmpv6Input(frame6(K_ECHO_REQUEST), 0), 1);
    assert.deepEqual(l.take(), [toHex(K_ECHO_REPLY)]);
    assert.equal(l.e.counters.echoReplies, 1);
  });

  it("an unknown neighbour is solicited from the waiting packet's own source, and the packet follows the NA", () => {
    // The director answers a ping to its own 2001:db8:1::a (simulation: ownInterfaceAddresses):
    // the reply waits while an NS from 2001:db8:1::a resolves 2001:db8:1::1, as ndisc_solicit does.
    const l = lab(
      {
        mac: mac(0x0a),
        addrs6: [
          { addr6: "2001:db8:1::a", prefix: 64 },
          { addr6: "fe80::a", prefix: 64 },
        ],
      },
      { own: true },
    );
    const req = frame6(K_ECHO_REPLY); // from 2001:db8:1::1 to 2001:db8:1::a: turn it into a request
    req.buf[L3 + 40] = 128;
    const ck = (req.buf[L3 + 42] << 8) | req.buf[L3 + 43];
    const fixed = (ck + 0x0100) & 0xffff; // type 129 → 128 in the one's complement sum
    req.buf[L3 + 42] = fixed >>> 8;
    req.buf[L3 + 43] = fixed & 255;
    assert.equal(l.e.local.echo6(req, 0), 1);
    assert.deepEqual(l.take(), [toHex(K_NS_MCAST)]);
    assert.equal(l.e.local.ndpInput(frame6(K_NA_SOLICITED), 5), 1);
    // The reply is the kernel's request the other way round, as type 129.
    const want = K_ECHO_REQUEST.slice();
    want[L3 + 40] = 129;
    want[L3 + 42] -= 1; // checksum 0x294a → 0x284a
    assert.deepEqual(l.take(), [toHex(want)], "released to the MAC the NA gave");
    assert.deepEqual(
      l.e.neigh.entries().map((n) => [n.ip6, n.state]),
      [["2001:db8:1::1", "REACHABLE"]],
    );
  });

  it("a packet whose source is not ours is solicited from the link-local address; probes are unicast", () => {
    const l = lab({
      mac: mac(1),
      addrs6: [
        { addr6: "2001:db8:1::1", prefix: 64 },
        { addr6: "fe80::ff:fe00:1", prefix: 64 },
      ],
    });
    neighbour(l, "2001:db8:1::a", mac(0x0c));
    const o: Required<NeighTickOut> = { requests: [], solicits: [], dropped: 0 };
    assert.deepEqual(l.e.neigh.lookup6(1, W("2001:db8:1::a"), 0, 10), mac(0x0c)); // STALE → DELAY
    l.e.neigh.tick(10 + 5000, o);
    assert.equal(o.solicits.length, 1);
    l.e.local.solicit(o.solicits[0]);
    assert.deepEqual(l.take(), [toHex(K_NS_UNICAST)]);
    // A forwarded packet (from a client) to an unresolved neighbour: the NS comes from fe80::.
    const fwd = frame6(K_TE_INVOKING);
    l.e.out.emitIp6(fwd.buf, L3, fwd.l3End - L3, W("2001:db8:1::5"), 0, 0, 20);
    const [ns] = l.take();
    assert.equal(ns.slice(0, 12), "3333ff000005", "to the solicited-node group's MAC");
    assert.equal(
      ns.slice(L3 * 2 + 16, L3 * 2 + 48),
      "fe80000000000000000000fffe000001",
      "from the link-local",
    );
    assert.equal(l.e.counters.ndpSolicits, 2);
  });

  it("an interface without a link-local address solicits from a global one; without any address, not at all", () => {
    const l = lab({ mac: mac(1), addrs6: [{ addr6: "2001:db8:1::1", prefix: 64 }] });
    l.e.local.sendNs(1, W("fe80::9"), 0, null, null, 0);
    const [ns] = l.take();
    assert.equal(ns.slice(L3 * 2 + 16, L3 * 2 + 48), "20010db8000100000000000000000001");
    const bare = lab({ mac: mac(1), addrs6: [] });
    bare.e.local.sendNs(1, W("fe80::9"), 0, null, null, 0);
    assert.equal(bare.sent.length, 0);
  });

  it("hop limit out in forwarding → time exceeded from our address on the sender's link", () => {
    const l = lab({ mac: mac(1), addrs6: [{ addr6: "2001:db8:1::1", prefix: 64 }] });
    neighbour(l, "2001:db8:1::a", mac(0x0a));
    assert.equal(l.e.local.ttlExceeded6(frame6(K_TE_INVOKING), null, 0), 2);
    assert.deepEqual(l.take(), [toHex(K_TE)]);
    assert.equal(l.e.counters.drops[R.ttl_exceeded], 1);
  });

  it("too big for the path → packet too big with the MTU, quoting 1232 bytes", () => {
    const l = lab({ mac: mac(1), addrs6: [{ addr6: "2001:db8:1::1", prefix: 64 }] });
    neighbour(l, "2001:db8:1::a", mac(0x0a));
    l.e.local.tooBig6(frame6(K_PTB_INVOKING), 1280, null, 0);
    assert.deepEqual(l.take(), [toHex(K_PTB)]);
    assert.equal(l.e.counters.drops[R.frag_needed], 1);
  });

  it("UDP to an owned address without the service → port unreachable from it, through the gateway", () => {
    const l = lab(
      { mac: mac(0x0b), addrs6: [{ addr6: "2001:db8:2::b1", prefix: 64 }] },
      {
        ipvsadm: ["-A -u [2001:db8:2::b]:53"],
        routes: [{ dst: 0, prefix: 0, via: 0, ifindex: 1, dst6: "::", via6: "2001:db8:2::2" }],
      },
    );
    neighbour(l, "2001:db8:2::2", mac(2));
    assert.equal(l.e.local.notForUs6(frame6(K_UDP_AT_B), 0), 2);
    assert.deepEqual(l.take(), [toHex(K_PORT_UNREACH)]);
    assert.equal(l.e.counters.drops[R.closed_port], 1);
  });

  it("VRRP takeover → unsolicited NAs, one frame per address", () => {
    assert.deepEqual(unsolicitedNaFrames(mac(0x0c), ["2001:db8:1::a"], false).map(toHex), [
      toHex(K_UNSOL_NA),
    ]);
    assert.deepEqual(
      unsolicitedNaFrames(mac(0x0b), ["2001:db8:2::bb", "2001:db8:1::a"], false).map((f) =>
        toHex(f).slice(0, 28),
      ),
      ["33330000000102000000000b86dd", "33330000000102000000000b86dd"],
    );
    const l = lab({ mac: mac(0x0c), addrs6: [] });
    assert.equal(l.e.local.sendUnsolicitedNas(1, ["2001:db8:1::a"]), 1);
    assert.deepEqual(l.take(), [toHex(K_UNSOL_NA)]);
    assert.equal(l.e.counters.unsolicitedNas, 1);
    assert.throws(() => unsolicitedNaFrames(mac(1), ["10.0.0.1"], false), /bad IPv6/);
  });
});

// ---- what no capture shows ---------------------------------------------------------------------------

/** A TCP segment over IPv6, built and checksummed here. */
function tcp6(
  src: string,
  dst: string,
  flags: number,
  seq: number,
  ack: number,
  tc = 0,
  payload = 0,
): Uint8Array {
  const s = parse16(src);
  const d = parse16(dst);
  const len = 20 + payload;
  const t = new Uint8Array(len);
  const dv = new DataView(t.buffer);
  dv.setUint16(0, 40000);
  dv.setUint16(2, 8080);
  dv.setUint32(4, seq);
  dv.setUint32(8, ack);
  t[12] = 0x50;
  t[13] = flags;
  dv.setUint16(14, 65535);
  dv.setUint16(16, sum6(s, d, 6, t));
  const ip = new Uint8Array(40);
  ip[0] = 0x60 | (tc >>> 4);
  ip[1] = (tc & 15) << 4;
  ip[4] = len >>> 8;
  ip[5] = len & 255;
  ip[6] = 6;
  ip[7] = 64;
  ip.set(s, 8);
  ip.set(d, 24);
  return cat(Uint8Array.from([...mac(1), ...mac(0x0a), 0x86, 0xdd]), ip, t);
}
function parse16(s: string): Uint8Array {
  const out = new Uint8Array(16);
  const w = W(s);
  for (let k = 0; k < 4; k++) new DataView(out.buffer).setInt32(4 * k, w[k]);
  return out;
}
function sum6(s: Uint8Array, d: Uint8Array, nh: number, msg: Uint8Array): number {
  const all = cat(s, d, Uint8Array.from([0, 0, msg.length >>> 8, msg.length & 255, 0, 0, 0, nh]), msg);
  let x = 0;
  for (let i = 0; i < all.length; i += 2) x += (all[i] << 8) | (all[i + 1] ?? 0);
  while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
  return ~x & 0xffff;
}

describe("IPv6 local answers the kernel would give", () => {
  const VIP = "2001:db8:1::1";
  const CLIENT = "2001:db8:1::a";
  function director(): Lab {
    const l = lab(
      { mac: mac(1), addrs6: [{ addr6: "2001:db8:1::2", prefix: 64 }] },
      { ipvsadm: [`-A -t [${VIP}]:80`] },
    );
    neighbour(l, CLIENT, mac(0x0a));
    return l;
  }

  const resets: Array<[string, number, number, number, number, number, number, number]> = [
    // what, flags in, seq, ack, payload → flags out, seq out, ack out
    ["SYN", 0x02, 1000, 0, 0, 0x14, 0, 1001],
    ["ACK with data", 0x18, 5000, 777, 10, 0x04, 777, 0],
    ["FIN without ACK", 0x01, 42, 0, 0, 0x14, 0, 43],
  ];
  for (const [what, flags, seq, ack, payload, oFlags, oSeq, oAck] of resets)
    it(`TCP ${what} to an owned address on a closed port → RST (tcp_v6_send_reset)`, () => {
      const l = director();
      const f = frame6(tcp6(CLIENT, VIP, flags, seq, ack, 0xb9, payload));
      assert.equal(l.e.local.notForUs6(f, 0), 1);
      const [out] = l.sent;
      const want = tcp6(VIP, CLIENT, oFlags, oSeq, oAck, 0xb8).slice();
      // The RST's window is 0 and its ports are the segment's, swapped.
      const t = want.subarray(L3 + 40);
      const dv = new DataView(t.buffer, t.byteOffset);
      dv.setUint16(0, 8080);
      dv.setUint16(2, 40000);
      dv.setUint16(14, 0);
      dv.setUint16(16, 0);
      dv.setUint16(16, sum6(parse16(VIP), parse16(CLIENT), 6, t));
      want.set(mac(0x0a), 0);
      want.set(mac(1), 6);
      assert.equal(toHex(out.bytes), toHex(want));
    });

  it("never answers a RST", () => {
    const l = director();
    assert.equal(l.e.local.notForUs6(frame6(tcp6(CLIENT, VIP, 0x04, 1, 0)), 0), 2);
    assert.equal(l.sent.length, 0);
  });

  it("another protocol → parameter problem, unknown next header, pointing at it", () => {
    const l = director();
    const f = frame6(tcp6(CLIENT, VIP, 0x02, 1, 0));
    f.buf[L3 + 6] = 253; // RFC 3692 experimental
    f.proto = 253;
    l.e.local.notForUs6(f, 0);
    const [out] = l.sent;
    assert.deepEqual([...out.bytes.subarray(L3 + 40, L3 + 42)], [4, 1]);
    assert.equal(
      new DataView(out.bytes.buffer).getUint32(L3 + 44),
      6,
      "the next-header byte of the IPv6 header",
    );
  });

  it("ip_vs_leave → port unreachable from the VIP; nothing about an ICMPv6 error", () => {
    const l = director();
    const f = frame6(tcp6(CLIENT, VIP, 0x02, 1, 0));
    assert.equal(l.e.local.leave6(f, 0), 2);
    assert.equal(l.sent.length, 1);
    assert.equal(toHex(l.sent[0].bytes.subarray(L3 + 8, L3 + 24)), toHex(parse16(VIP)));
    assert.equal(l.e.counters.drops[R.no_dest], 1);
    const err = frame6(K_TE);
    assert.equal(l.e.local.icmp6Error(err, 1, 4, 0, null, 0), 2);
    assert.equal(l.sent.length, 1);
  });

  it("leaves to the kernel: NS for an address that is not ours, echo to it, other ICMPv6", () => {
    const l = lab({ mac: mac(1), addrs6: [{ addr6: "fe80::1", prefix: 64 }] });
    const pass = 0;
    assert.equal(l.e.local.ndpInput(frame6(K_NS_MCAST), 0), pass);
    assert.equal(l.e.local.icmpv6Input(frame6(K_ECHO_REQUEST), 0), pass);
    assert.equal(l.e.local.icmpv6Input(frame6(K_PTB), 0), pass);
    assert.equal(l.sent.length, 0);
    assert.equal(l.e.neigh.size, 0, "an NS for someone else teaches nothing");
  });

  it("NS for the interface's own address: learned from, answered by the kernel (not simulated)", () => {
    const l = lab({ mac: mac(1), addrs6: [{ addr6: "2001:db8:1::1", prefix: 64 }] });
    assert.equal(l.e.local.ndpInput(frame6(K_NS_MCAST), 0), 0);
    assert.equal(l.sent.length, 0);
    assert.equal(l.e.neigh.size, 1);
  });

  it("an NDP message a receiver must ignore is dropped and counted", () => {
    const l = lab({ mac: mac(1), addrs6: [] }, { ipvsadm: ["-A -t [2001:db8:1::1]:80"] });
    const f = frame6(K_NS_MCAST);
    f.buf[L3 + 7] = 64; // hop limit: forwarded by a router
    assert.equal(l.e.local.ndpInput(f, 0), 2);
    assert.equal(l.e.counters.drops[R.ndp_invalid], 1);
    assert.equal(l.sent.length, 0);
  });
});

describe("IPv6 ownership", () => {
  function ctl(): IpvsCtl {
    return new IpvsCtl({
      onSetTimeout: () => {},
      onDestRemoved: () => {},
      onServiceRemoved: () => {},
      onDestQuiesced: () => {},
    });
  }
  const run = (c: IpvsCtl, line: string): void => {
    const r = parseIpvsadm(line.split(" "));
    if (r.kind !== "ctl") throw new Error(line);
    c.apply(r.cmd);
  };

  it("IpvsCtl.ownsAddress6 counts the services of a VIP and never owns its fold as IPv4", () => {
    const c = ctl();
    const vip = W("2001:db8::80");
    run(c, "-A -t [2001:db8::80]:80");
    run(c, "-A -u [2001:db8::80]:53");
    run(c, "-A -f 7 -6");
    assert.equal(c.ownsAddress6(vip), true);
    const at = new Int32Array(6);
    at.set(vip, 2);
    assert.equal(c.ownsAddress6(at, 2), true, "words at an offset");
    const fold = (vip[0] ^ vip[1] ^ vip[2] ^ vip[3]) >>> 0;
    assert.equal(c.ownsAddress(fold), false);
    assert.equal(c.ownsAddress6(W("2001:db8::81")), false);
    assert.deepEqual(c.ownedAddresses6(), ["2001:db8::80"]);
    run(c, "-D -t [2001:db8::80]:80");
    assert.equal(c.ownsAddress6(vip), true, "the UDP service still has it");
    run(c, "-D -u [2001:db8::80]:53");
    assert.equal(c.ownsAddress6(vip), false);
    assert.deepEqual(c.ownedAddresses6(), []);
  });

  it("keeps addresses of equal fold apart", () => {
    const c = ctl();
    const a = W("2001:db8::1");
    const b = Int32Array.from([a[1], a[0], a[2], a[3]]);
    c.addOwnedAddress6(a);
    c.addOwnedAddress6(b);
    c.addOwnedAddress6(b);
    c.removeOwnedAddress6(a);
    assert.deepEqual([c.ownsAddress6(a), c.ownsAddress6(b)], [false, true]);
    c.removeOwnedAddress6(b);
    assert.equal(c.ownsAddress6(b), true, "counted twice");
    c.removeOwnedAddress6(b);
    assert.equal(c.ownsAddress6(b), false);
  });

  it("a VIP is answered while the host delivers it (--host-vips) or VRRP holds it as MASTER", () => {
    const l = lab({ mac: mac(1), addrs6: [] }, { ipvsadm: ["-A -t [2001:db8:1::1]:80"] });
    const vip = W("2001:db8:1::1");
    assert.equal(l.e.local.ownsLocal6(vip), true);
    l.e.routes.setHostLocal([]);
    assert.equal(l.e.local.ownsLocal6(vip), false);
    assert.equal(l.e.local.ndpInput(frame6(K_NS_MCAST), 0), 0, "not answered");
    l.e.routes.setHostLocal([{ addr: 0, prefix: 128, addr6: "2001:db8:1::1" }]);
    assert.equal(l.e.local.ownsLocal6(vip), true);
    l.e.routes.setVrrp6([], ["2001:db8:1::1"]);
    assert.equal(l.e.local.ownsLocal6(vip), false, "VRRP BACKUP");
    l.e.routes.setVrrp6(
      ["2001:db8:1::1", "2001:db8:1::99"],
      [],
      [{ addr6: "2001:db8:1::1", mac: [0, 0, 0x5e, 0, 2, 9] }],
    );
    assert.equal(l.e.local.ownsLocal6(W("2001:db8:1::99")), true, "a VRRP address without a service");
    l.e.local.ndpInput(frame6(K_NS_MCAST), 0);
    assert.equal(toHex(l.sent[0].bytes.subarray(6, 12)), "00005e000209", "answered with the virtual MAC");
    assert.equal(toHex(l.sent[0].bytes.subarray(L3 + 40 + 26, L3 + 40 + 32)), "00005e000209");
  });
});
