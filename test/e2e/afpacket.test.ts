// AF_PACKET backend on a real veth pair between two network namespaces:
//
//   ns A (tsvs-afp-PID-a)  ifA 198.18.0.1/24  ⇄  ifB 198.18.0.2/24  ns B (tsvs-afp-PID-b)
//
// The packet socket is opened inside ns A by a child (`ip netns exec A node afpacket-helper.js …`),
// exactly as `tsvs daemon` runs in a namespace; it speaks as 198.18.0.10, an address no kernel holds
// (like a VIP owned by tsvs), so every answer seen proves the frame went out and came back whole.
// Needs root and iproute2: skipped with the reason otherwise, failed when CI=true.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  addNetns,
  addVethPair,
  delNetns,
  linkMac,
  linkStats,
  nsExec,
  nsExecStatus,
} from "../../src/io/netns.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("AF_PACKET e2e");

const HELPER = fileURLToPath(new URL("./afpacket-helper.js", import.meta.url));
const NS_A = `tsvs-afp-${process.pid}-a`;
const NS_B = `tsvs-afp-${process.pid}-b`;
// Interface names are created in the test's own namespace first: keep them unique there too.
const IF_A = `tsvsa${process.pid.toString(36)}`;
const IF_B = `tsvsb${process.pid.toString(36)}`;
const IP_A = "198.18.0.1";
const IP_B = "198.18.0.2";
const IP_TSVS = "198.18.0.10";

function helper(...args: string[]): Record<string, unknown> {
  const r = nsExecStatus(
    NS_A,
    [process.execPath, "--expose-gc", "--max-semi-space-size=64", HELPER, ...args],
    15_000,
  );
  assert.equal(r.status, 0, `helper ${args[0]} exited ${r.status}: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
  assert.equal(out.ok, true, `helper ${args[0]}: ${JSON.stringify(out)}`);
  return out;
}

describe("AF_PACKET socket on a veth pair between namespaces", { skip }, () => {
  let macB = "";

  before(() => {
    delNetns(NS_A);
    delNetns(NS_B);
    addNetns(NS_A);
    addNetns(NS_B);
    addVethPair(
      { ns: NS_A, ifname: IF_A, cidr: `${IP_A}/24` },
      { ns: NS_B, ifname: IF_B, cidr: `${IP_B}/24` },
    );
    // No IPv6 on the pair: router/neighbour solicitations would add frames to the counters.
    for (const [ns, ifname] of [
      [NS_A, IF_A],
      [NS_B, IF_B],
    ]) {
      nsExec(ns, ["sysctl", "-q", "-w", `net.ipv6.conf.${ifname}.disable_ipv6=1`]);
    }
    macB = linkMac(NS_B, IF_B);
  });

  after(() => {
    delNetns(NS_A);
    delNetns(NS_B);
  });

  it("sends a hand-built ARP request and receives the peer kernel's ARP reply, not its own request", () => {
    const r = helper("arp", IF_A, IP_TSVS, IP_B);
    assert.equal(r.sent, 1);
    assert.equal(r.replySenderMac, macB);
    assert.equal(r.replyDstMac, r.ourMac);
    assert.equal(r.replyTargetMac, r.ourMac);
    assert.equal(r.sawOwnRequest, false, "PACKET_IGNORE_OUTGOING: our own transmission must not come back");
    assert.equal(r.pktType, 0, "PACKET_HOST: the reply is unicast to the interface's MAC");
    assert.equal(r.mtu, 1500);
    assert.equal(r.ourMac, linkMac(NS_A, IF_A));
  });

  it("sends a hand-built ICMP echo request that the peer kernel answers with a valid echo reply", () => {
    const r = helper("icmp", IF_A, IP_TSVS, IP_B, macB);
    assert.equal(r.sent, 1);
    assert.equal(r.replyDstMac, r.ourMac);
    assert.equal(r.ipChecksumOk, true);
    assert.equal(r.icmpChecksumOk, true);
    assert.equal(r.payloadEchoed, true);
  });

  it("sends a burst of 10k frames in batches, all counted by the far side's interface", () => {
    const count = 10_000;
    const before = linkStats(NS_B, IF_B).rxPackets;
    const r = helper("burst", IF_A, macB, String(count));
    const afterStats = linkStats(NS_B, IF_B);
    const counters = r.counters as { txFrames: number; txDropped: number; txErrors: number };
    assert.equal(counters.txFrames, count);
    assert.equal(counters.txDropped + counters.txErrors, 0);
    assert.ok(
      afterStats.rxPackets - before >= count,
      `far side counted ${afterStats.rxPackets - before} of ${count} frames`,
    );
    console.log(
      `AF_PACKET burst: ${r.measured} frames of 60 bytes in ${(r.seconds as number).toFixed(4)} s = ` +
        `${r.pps} pps (sendmmsg, batch 64, veth, figure varies with the machine); JS heap growth ` +
        `${(r.heapBytesPerTxFrame as number).toFixed(2)} B/frame sent, ` +
        `${(r.heapBytesPerEmptyRecv as number).toFixed(2)} B/empty recvBatch`,
    );
  });
});
