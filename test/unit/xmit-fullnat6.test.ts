// FULLNAT over IPv6 (DPVS's FULLNAT for AF_INET6): [CIP]:cport → [LIP]:lport and [VIP]:vport →
// [RIP]:rport on the way in, the inverse on the way back, hop limit - 1 both ways; the client's
// address travels in DPVS's IPv6 TOA option (kind 254, length 20: port, 16-byte address) on the
// SYN and on the ACK completing the handshake. Every output's checksum is recomputed from scratch
// by the test's decoder (frames6.ts); the TOA bytes are read from the raw frame.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatLaddrs, formatSave } from "../../src/cli/ipvsadm/format.js";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { tableSnapshot } from "../../src/control/snapshot.js";
import { Director6, IP6, L2_6_FROM_ROUTER, l2_6FromLan, MAC6 } from "../support/frames6.js";
import { ACK, bytes, FIN, PSH, SYN } from "../support/packet-builder.js";
import {
  a6Str,
  icmp6ErrorFrame,
  ipv6Packet,
  NH_TCP,
  tcp6Frame,
  tcp6Segment,
  udp6Frame,
} from "../support/packet6.js";

const VIP = "2001:db8::100";
const LIP = "2001:db8:1::100";
const LIP2 = "2001:db8:1::101";
const LIP_FULL = "2001:db8:1:0:0:0:0:100";
const CLIENT = IP6.client1;

function fnatDirector(o: { mtu1?: number; laddrs?: string[] } = {}): Director6 {
  const d = new Director6(o);
  d.ipvsadm(`-A -t [${VIP}]:80 -s rr`);
  d.ipvsadm(`-a -t [${VIP}]:80 -r [${IP6.rs1}]:8080 --fullnat`);
  d.ipvsadm(`-A -u [${VIP}]:53 -s rr`);
  d.ipvsadm(`-a -u [${VIP}]:53 -r [${IP6.rs2}]:5353 --fullnat`);
  for (const l of o.laddrs ?? [LIP]) {
    d.ipvsadm(`-P -t [${VIP}]:80 -z ${l}`);
    d.ipvsadm(`-P -u [${VIP}]:53 -z ${l}`);
  }
  return d;
}

function assertFields(
  actual: Record<string, unknown>,
  expected: Record<string, unknown>,
  what: string,
): void {
  const diffs: string[] = [];
  for (const [k, v] of Object.entries(expected))
    if (actual[k] !== v)
      diffs.push(`  ${k}: expected ${JSON.stringify(v)}, got ${JSON.stringify(actual[k])}`);
  if (diffs.length > 0) assert.fail(`${what} differs:\n${diffs.join("\n")}`);
}

/** The TOA option right after the fixed TCP header of the raw frame (no extension headers), or null. */
function toaOf(raw: Uint8Array): string | null {
  const l4 = 14 + 40;
  const doff = (raw[l4 + 12] >> 4) * 4;
  if (doff <= 20 || raw[l4 + 20] !== 254) return null;
  assert.equal(raw[l4 + 21], 20, "IPv6 TOA length");
  assert.ok(doff >= 40, "TCP header holds the 20-byte option");
  const port = (raw[l4 + 22] << 8) | raw[l4 + 23];
  return `[${a6Str(raw, l4 + 24)}]:${port}`;
}

interface Step {
  desc: string;
  from: "client" | "server";
  flags: number;
  seq: number;
  ack: number;
  payload?: string;
  /** TOA expected on the packet toward the real server. */
  toa?: boolean;
  state: string;
}

const steps: Step[] = [
  { desc: "SYN", from: "client", flags: SYN, seq: 100, ack: 0, toa: true, state: "SYN_RECV" },
  { desc: "SYN/ACK", from: "server", flags: SYN | ACK, seq: 5000, ack: 101, state: "SYN_RECV" },
  { desc: "handshake ACK", from: "client", flags: ACK, seq: 101, ack: 5001, toa: true, state: "ESTABLISHED" },
  {
    desc: "request",
    from: "client",
    flags: PSH | ACK,
    seq: 101,
    ack: 5001,
    payload: "GET / HTTP/1.0\r\n\r\n",
    toa: false,
    state: "ESTABLISHED",
  },
  {
    desc: "response",
    from: "server",
    flags: PSH | ACK,
    seq: 5001,
    ack: 119,
    payload: "HTTP/1.0 200 OK\r\n\r\nhi",
    state: "ESTABLISHED",
  },
  {
    desc: "client FIN",
    from: "client",
    flags: FIN | ACK,
    seq: 119,
    ack: 5022,
    toa: false,
    state: "CLOSE_WAIT",
  },
  { desc: "server FIN", from: "server", flags: FIN | ACK, seq: 5022, ack: 120, state: "TIME_WAIT" },
];

describe("FULLNAT over IPv6", () => {
  it("a TCP connection: both ends rewritten both ways, IPv6 TOA on the SYN and the handshake ACK", () => {
    const d = fnatDirector();
    let lport = 0;
    for (const s of steps) {
      const payload = s.payload === undefined ? undefined : bytes(s.payload);
      const tcp = { flags: s.flags, seq: s.seq, ack: s.ack, payload };
      if (s.from === "client") {
        const input = tcp6Frame(
          L2_6_FROM_ROUTER,
          { src: CLIENT, dst: VIP, hl: 64, tc: 0x28, flow: 0x12345 },
          { sport: 40000, dport: 80, ...tcp },
        );
        const o = d.one(1, input);
        assert.equal(o.ifindex, 2, s.desc);
        if (lport === 0) lport = o.f.sport as number;
        assertFields(
          o.f,
          {
            dmac: MAC6.rs1,
            smac: MAC6.dir1,
            src: LIP_FULL,
            dst: IP6.rs1,
            sport: lport,
            dport: 8080,
            hl: 63,
            tc: 0x28,
            flow: 0x12345,
            seq: s.seq,
            ackno: s.ack,
            flags: s.flags,
            payload: s.payload ?? "",
          },
          s.desc,
        );
        assert.equal(toaOf(o.raw), s.toa ? `[${CLIENT}]:40000` : null, `${s.desc}: TOA`);
        assert.equal(o.f.plen, input.length - 14 - 40 + (s.toa ? 20 : 0), `${s.desc}: payload length`);
      } else {
        const o = d.one(
          2,
          tcp6Frame(
            l2_6FromLan(MAC6.rs1),
            { src: IP6.rs1, dst: LIP, hl: 64 },
            { sport: 8080, dport: lport, ...tcp },
          ),
        );
        assert.equal(o.ifindex, 1, s.desc);
        assertFields(
          o.f,
          {
            dmac: MAC6.router,
            smac: MAC6.dir0,
            src: IP6.vip,
            dst: CLIENT,
            sport: 80,
            dport: 40000,
            hl: 63,
            seq: s.seq,
            ackno: s.ack,
            flags: s.flags,
            payload: s.payload ?? "",
          },
          s.desc,
        );
      }
      const conns = d.engine.connections(d.now);
      assert.equal(conns.length, 1, s.desc);
      assert.equal(conns[0].state, s.state, s.desc);
    }
    const c = d.engine.connections(d.now)[0];
    assert.equal(c.caddr6, "2001:db8:ff::10");
    assert.equal(c.vaddr6, VIP);
    assert.equal(c.daddr6, "2001:db8:1::11");
    assert.equal(c.laddr6, LIP);
    assert.equal(c.lport, lport);
  });

  it("UDP: both ends rewritten, the reply found by [RIP]:rport → [LIP]:lport", () => {
    const d = fnatDirector();
    const q = d.one(
      1,
      udp6Frame(
        L2_6_FROM_ROUTER,
        { src: CLIENT, dst: VIP, hl: 64 },
        { sport: 5000, dport: 53, payload: bytes("q") },
      ),
    );
    assertFields(
      q.f,
      { dmac: MAC6.rs2, src: LIP_FULL, dst: IP6.rs2, dport: 5353, hl: 63, payload: "q" },
      "query",
    );
    const lport = q.f.sport as number;
    const a = d.one(
      2,
      udp6Frame(
        l2_6FromLan(MAC6.rs2),
        { src: IP6.rs2, dst: LIP, hl: 64 },
        { sport: 5353, dport: lport, payload: bytes("answer") },
      ),
    );
    assertFields(
      a.f,
      { dmac: MAC6.router, src: IP6.vip, dst: CLIENT, sport: 53, dport: 5000, hl: 63, payload: "answer" },
      "answer",
    );
  });

  it("local addresses round robin; distinct clients get distinct local ports", () => {
    const d = fnatDirector({ laddrs: [LIP, LIP2] });
    const seen: string[] = [];
    for (const sport of [41000, 41001, 41002]) {
      const o = d.one(
        1,
        tcp6Frame(
          L2_6_FROM_ROUTER,
          { src: CLIENT, dst: VIP, hl: 64 },
          { sport, dport: 80, flags: SYN, seq: 1 },
        ),
      );
      seen.push(`${o.f.src}`);
    }
    assert.deepEqual(seen, [LIP_FULL, "2001:db8:1:0:0:0:0:101", LIP_FULL]);
    const ports = new Set(d.engine.connections(d.now).map((c) => `${c.laddr6}:${c.lport}`));
    assert.equal(ports.size, 3);
  });

  it("no IPv6 local address: no connection (the --lip pool is IPv4)", () => {
    const d = fnatDirector({ laddrs: [] });
    d.input(
      1,
      tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENT, dst: VIP, hl: 64 }, { sport: 40000, dport: 80, flags: SYN }),
    );
    assert.equal(d.engine.connections(d.now).length, 0);
  });

  it("TOA is left out when the grown SYN would not fit the link", () => {
    const d = fnatDirector({ mtu1: 1280 });
    const payload = new Uint8Array(1280 - 40 - 20 - 10);
    const o = d.one(
      1,
      tcp6Frame(
        L2_6_FROM_ROUTER,
        { src: CLIENT, dst: VIP, hl: 64 },
        { sport: 40000, dport: 80, flags: SYN, payload },
      ),
    );
    assert.equal(toaOf(o.raw), null);
    assert.equal(o.f.plen, 20 + payload.length);
  });

  it("ICMPv6 errors: the real server's side to the client from the VIP, the client's side to the server from the LIP", () => {
    const d = fnatDirector();
    const syn = d.one(
      1,
      tcp6Frame(
        L2_6_FROM_ROUTER,
        { src: CLIENT, dst: VIP, hl: 64 },
        { sport: 40000, dport: 80, flags: SYN, seq: 7 },
      ),
    );
    const lport = syn.f.sport as number;
    const fwd = syn.raw.subarray(14);
    // Packet too big from the servers' gateway about LIP:lport → RIP:8080.
    const out = d.one(
      2,
      icmp6ErrorFrame(l2_6FromLan(MAC6.gw1), { src: "2001:db8:1::fe", dst: LIP, hl: 64 }, 2, 0, 1400, fwd),
    );
    assert.equal(out.ifindex, 1);
    assertFields(
      out.f,
      {
        dmac: MAC6.router,
        src: IP6.vip,
        dst: CLIENT,
        hl: 63,
        icmpType: 2,
        icmpRest: 1400,
        qsrc: CLIENT,
        qdst: IP6.vip,
        qsport: 40000,
        qdport: 80,
      },
      "packet too big to the client",
    );
    // Port unreachable from the client's router about a reply VIP:80 → CIP:40000.
    const reply = ipv6Packet(
      { src: VIP, dst: CLIENT, hl: 60 },
      NH_TCP,
      tcp6Segment(VIP, CLIENT, { sport: 80, dport: 40000, flags: SYN | ACK, seq: 1, ack: 8 }),
    );
    const back = d.one(
      1,
      icmp6ErrorFrame(L2_6_FROM_ROUTER, { src: IP6.router, dst: VIP, hl: 64 }, 1, 4, 0, reply),
    );
    assert.equal(back.ifindex, 2);
    assertFields(
      back.f,
      {
        dmac: MAC6.rs1,
        src: LIP_FULL,
        dst: IP6.rs1,
        hl: 63,
        icmpType: 1,
        icmpCode: 4,
        qsrc: IP6.rs1,
        qdst: LIP_FULL,
        qsport: 8080,
        qdport: lport,
      },
      "port unreachable to the real server",
    );
  });
});

describe("IPv6 local addresses (ipvsadm -P/-Q/-G/-S)", () => {
  it("are kept per service, listed, saved, deleted; refused on an IPv4 service and twice", () => {
    const d = fnatDirector({ laddrs: [LIP, "2001:DB8:1:0::101"] });
    const snap = tableSnapshot(d.engine, d.now, false);
    const key = { protocol: 6, addr: 0, addr6: VIP, port: 80, fwmark: 0, af: 6 as const };
    const g = formatLaddrs(snap, key);
    assert.match(g, /2001:db8:1::100 {5}/);
    assert.match(g, /2001:db8:1::101 {5}/);
    assert.match(formatSave(snap, true), /-P -t \[2001:db8::100\]:80 -z 2001:db8:1::101\n/);
    assert.throws(() => d.ipvsadm(`-P -t [${VIP}]:80 -z ${LIP}`), /exists/i);
    d.ipvsadm(`-Q -t [${VIP}]:80 -z 2001:db8:1::101`);
    assert.doesNotMatch(formatLaddrs(tableSnapshot(d.engine, d.now, false), key), /::101/);
    d.ipvsadm("-A -t 198.18.0.100:80 -s rr");
    assert.throws(() => d.ipvsadm(`-P -t 198.18.0.100:80 -z ${LIP}`), /Invalid operation/);
    const r = parseIpvsadm(["-P", "-t", `[${VIP}]:80`, "-z", LIP]);
    assert.deepEqual(r.kind === "ctl" ? r.cmd : null, {
      op: "add-laddr",
      key: { protocol: 6, addr: 0, addr6: VIP, port: 80, fwmark: 0, af: 6 },
      addr: 0,
      addr6: LIP,
    });
  });
});
