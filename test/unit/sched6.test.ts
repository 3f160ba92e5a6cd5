// The hashing schedulers on IPv6 services, against the kernel: ip_vs_sh_hashkey and
// ip_vs_dh_hashkey fold an IPv6 address into addr_fold = ip6[0] ^ ip6[1] ^ ip6[2] ^ ip6[3] and
// hash ntohl(addr_fold) (+ the port for sh) with hash_32(v, 8) = (v * GOLDEN_RATIO_32) >> 24; the
// 256 buckets are dealt to the destinations in list order (newest first), weight 1 each here, so
// bucket b goes to destination b % n. The expected destinations below are computed from that
// formula, not from tsvs's code. ip_vs_mh_hashkey folds the same way (and the destinations' own
// addresses too): an IPv6 service is scheduled exactly as an IPv4 service whose addresses are the
// folds, which the last test checks without re-deriving hsiphash.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Director6, L2_6_FROM_ROUTER } from "../support/frames6.js";
import { SYN, tcpFrame } from "../support/packet-builder.js";
import { fold6, tcp6Frame } from "../support/packet6.js";

const GOLDEN_RATIO_32 = 0x61c88647;
function hash32(v: number, bits: number): number {
  return Math.imul(v >>> 0, GOLDEN_RATIO_32) >>> (32 - bits);
}

const RS = ["2001:db8:1::11", "2001:db8:1::12", "2001:db8:1::13"];
/** svc->destinations after adding RS in order: list_add_rcu puts each new one at the head. */
const LIST = [...RS].reverse();

const CLIENTS = [
  "2001:db8:ff::10",
  "2001:db8:ff::11",
  "2001:db8:ff:1::10",
  "2001:db8:ff:1::11",
  "2001:db8:fe::1",
  "fd00::1",
  "fd00:1::1",
  "2001:db8:ff::1:10",
  // Two clients with one fold: the kernel hashes them alike.
  "2001:db8:ff::10:0:0",
  "2001:db8:ef::10",
];

function a4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The destination the connection of client c (sport) got, by its IPv6 text. */
function chosen(d: Director6, c: string, sport: number): string | undefined {
  return d.engine.connections(d.now).find((x) => x.caddr6 === c && x.cport === sport)?.daddr6;
}

describe("sh, dh and mh on IPv6 services hash the kernel's addr_fold", () => {
  it("sh: client c goes to LIST[hash_32(ntohl(fold(c)), 8) % 3]", () => {
    const d = new Director6();
    const vip = "2001:db8::100";
    d.ipvsadm(`-A -t [${vip}]:80 -s sh`);
    for (const r of RS) d.ipvsadm(`-a -t [${vip}]:80 -r [${r}]:80 -g`);
    const got: string[] = [];
    const want: string[] = [];
    CLIENTS.forEach((c, i) => {
      d.input(
        1,
        tcp6Frame(L2_6_FROM_ROUTER, { src: c, dst: vip }, { sport: 1000 + i, dport: 80, flags: SYN }),
      );
      got.push(chosen(d, c, 1000 + i) ?? "none");
      want.push(LIST[hash32(fold6(c), 8) % LIST.length]);
    });
    assert.deepEqual(got, want);
    assert.ok(new Set(got).size > 1, "the clients are spread (the table means something)");
  });

  it("dh: every client of VIP v goes to LIST[hash_32(ntohl(fold(v)), 8) % 3]", () => {
    const d = new Director6();
    const vips = ["2001:db8::100", "2001:db8::101", "2001:db8::102", "2001:db8::103", "2001:db8::1:104"];
    const got: string[] = [];
    const want: string[] = [];
    vips.forEach((v, i) => {
      d.ipvsadm(`-A -t [${v}]:80 -s dh`);
      for (const r of RS) d.ipvsadm(`-a -t [${v}]:80 -r [${r}]:80 -g`);
      d.input(
        1,
        tcp6Frame(L2_6_FROM_ROUTER, { src: CLIENTS[i], dst: v }, { sport: 2000 + i, dport: 80, flags: SYN }),
      );
      got.push(chosen(d, CLIENTS[i], 2000 + i) ?? "none");
      want.push(LIST[hash32(fold6(v), 8) % LIST.length]);
    });
    assert.deepEqual(got, want);
  });

  it("mh: an IPv6 service schedules as the IPv4 service whose addresses are its folds", () => {
    const d = new Director6();
    const vip6 = "2001:db8::100";
    const vip4 = "198.18.0.100";
    d.ipvsadm(`-A -t [${vip6}]:80 -s mh`);
    d.ipvsadm(`-A -t ${vip4}:80 -s mh`);
    for (const r of RS) {
      d.ipvsadm(`-a -t [${vip6}]:80 -r [${r}]:80 -g`);
      d.ipvsadm(`-a -t ${vip4}:80 -r ${a4(fold6(r))}:80 -g`);
    }
    const l2 = { dmac: L2_6_FROM_ROUTER.dmac, smac: L2_6_FROM_ROUTER.smac };
    const conns = (): ReturnType<typeof d.engine.connections> => d.engine.connections(d.now);
    CLIENTS.forEach((c, i) => {
      d.input(
        1,
        tcp6Frame(L2_6_FROM_ROUTER, { src: c, dst: vip6 }, { sport: 3000 + i, dport: 80, flags: SYN }),
      );
      d.input(
        1,
        tcpFrame(l2, { src: fold6(c), dst: 0xc6120064 }, { sport: 3000 + i, dport: 80, flags: SYN }),
      );
      const six = conns().find((x) => x.caddr6 === c && x.cport === 3000 + i);
      const four = conns().find(
        (x) => x.caddr6 === undefined && x.caddr === fold6(c) && x.cport === 3000 + i,
      );
      assert.ok(six !== undefined && four !== undefined, c);
      assert.equal(six.daddr, four.daddr, `client ${c}`);
    });
  });
});
