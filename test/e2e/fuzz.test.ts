// `tsvs fuzz` (docs/fuzz.md) as the suite runs it: 100000 frames of a fixed seed — every kind the
// codecs know, valid and mutated — from a sender namespace to a real `tsvs daemon` with services of
// every method and family, two sync daemons and two VRRP instances, at 20000 frames a second (so
// that the run takes about 5 s on a loaded two-core machine, and the daemon reads nearly every
// frame instead of its socket dropping most of them). Afterwards the daemon must be alive, answer
// status, ipvsadm -Ln and -Lnc, and forward a real curl through its NAT service over IPv4 and IPv6.
//
// Every frame is counted somewhere: the sender's kernel took it or refused it (counted); its veths
// dropped it (tx_dropped: a full backlog) or the bridge did (rx_dropped of its port), or the
// director's links received it (a link's packet count includes what its stack drops after the
// packet sockets saw it); and the daemon's sockets read each frame the links received or counted
// it dropped — except frames with a VLAN tag cut short, which the kernel discards before any
// packet socket sees them (skb_vlan_untag), and which the sender counts. The links also carry the
// traffic the run causes (the real servers' answers to forwarded requests, ARP, the curls), so the
// checks are inequalities; the second has a slack of 200 frames for that traffic arriving between
// the two readings (the daemon's status is read first).
//
// RSS: the connection table and every per-connection structure are allocated when the daemon
// starts (--conn-capacity), so what can grow is V8's heaps (the main thread's and the worker's)
// up to their collectors' working sizes: measured +15 to +30 MiB over such a run, +65 MiB over
// 3 million frames, flat after that (docs/fuzz.md). The bound, 96 MiB, is ~1 KiB a frame: a leak
// of a buffer per frame would break it.

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { runNetnsFuzz, teardown } from "../../src/cli/fuzz/netns.js";
import { uniqueName } from "../../src/io/netns.js";
import { e2eSkip } from "../support/e2e-env.js";

const skip = e2eSkip("fuzz e2e", ["curl", "nftables"]);
const PREFIX = uniqueName("f");
const COUNT = 100_000;
const RSS_BOUND_KIB = 96 * 1024;

describe("tsvs fuzz: 100000 malformed and random frames against a daemon", { skip }, () => {
  after(async () => {
    await teardown(PREFIX);
  });

  it(
    "leaves the daemon alive, answering and forwarding, every frame counted",
    { timeout: 120_000 },
    async () => {
      const lines: string[] = [];
      const r = await runNetnsFuzz({
        prefix: PREFIX,
        seed: 1,
        count: COUNT,
        start: 0,
        rate: 20_000,
        seconds: 60,
        keep: false,
        reuse: false,
        filter: false,
        vrrp: true,
        log: (l) => lines.push(l),
      });
      const why = `${JSON.stringify({ daemon: r.daemon, answers: r.answers, accounting: r.accounting, failures: r.failures })}\n${lines.join("\n")}`;
      assert.deepEqual(r.failures, [], why);
      assert.equal(r.daemon.alive, true, why);
      assert.equal(r.answers.status, true, why);
      assert.equal(r.answers.ipvsadm, true, why);
      // Every real server of the plan is still listed.
      assert.equal(r.answers.ipvsadmLines, 31, why);
      assert.equal(r.answers.conns, true, why);
      assert.equal(r.answers.curl.ok, true, why);
      assert.equal(r.answers.curl6.ok, true, why);

      // The sender: every frame generated was sent or refused, and counted.
      const s = r.sender;
      assert.equal(s.timedOut, false, why);
      assert.equal(s.generated, COUNT);
      assert.equal(s.sent + s.errors + s.dropped, COUNT, why);
      assert.ok(s.sent > COUNT * 0.95, why);
      // The director's links received every frame sent that the veths and the bridge did not drop.
      const a = r.accounting;
      assert.ok(a.linkRx + a.senderLinkDropped + a.bridgeDropped >= a.sent, why);
      assert.ok(a.senderLinkDropped + a.bridgeDropped < a.sent * 0.05, why);
      // The daemon's sockets read every frame the links received, or counted it dropped.
      assert.ok(a.daemonRx + a.daemonKernelDrops + s.untagDiscards + 200 >= a.linkRx, why);
      // And the engine looked at them: parsed, dropped by reason, passed, answered.
      assert.ok((r.counters.rxFrames ?? 0) > COUNT * 0.5, why);
      assert.ok((r.counters.connsCreated ?? 0) > 100, why);

      assert.ok(r.daemon.rssAfterKiB - r.daemon.rssBeforeKiB < RSS_BOUND_KIB, why);
    },
  );
});
