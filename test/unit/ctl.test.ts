import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIpvsadm } from "../../src/cli/ipvsadm/parse.js";
import { parseIPv4 } from "../../src/core/addr.js";
import { CtlError, IpvsCtl } from "../../src/core/ctl.js";
import type { CtlCommand, TimeoutSpec } from "../../src/core/ctl-types.js";
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD, type Dest } from "../../src/core/dest.js";
import { Flow, IPPROTO_TCP, IPPROTO_UDP } from "../../src/core/packet/flow.js";

function cmd(line: string): CtlCommand {
  const r = parseIpvsadm(line.split(" "));
  if (r.kind !== "ctl") throw new Error(`not a control command: ${line}`);
  return r.cmd;
}

function newCtl() {
  const events: string[] = [];
  const timeouts: TimeoutSpec[] = [];
  const c = new IpvsCtl({
    onSetTimeout: (t) => timeouts.push(t),
    onDestRemoved: (d: Dest) => events.push(`removed ${d.addr.toString(16)}`),
    onServiceRemoved: () => events.push("svc removed"),
    onDestQuiesced: () => events.push("quiesced"),
  });
  const run = (...lines: string[]) => c.applyAll(lines.map(cmd));
  return { c, run, events, timeouts };
}

function flow(proto: number, daddr: string, dport: number, fwmark = 0): Flow {
  const f = new Flow();
  f.proto = proto;
  f.daddr = parseIPv4(daddr)!;
  f.dport = dport;
  f.fwmark = fwmark;
  return f;
}

function errorOf(fn: () => void): { message: string; index: number } {
  try {
    fn();
  } catch (e) {
    if (e instanceof CtlError) return { message: e.message, index: e.index };
    throw e;
  }
  assert.fail("expected a control error");
}

describe("ipvs control: libipvs errors", () => {
  const cases: Array<[string, string[], string]> = [
    ["adding a service twice", ["-A -t 198.18.0.100:80", "-A -t 198.18.0.100:80"], "Service already exists"],
    ["editing a missing service", ["-E -t 198.18.0.100:80 -s rr"], "No such service"],
    ["deleting a missing service", ["-D -t 198.18.0.100:80"], "No such service"],
    ["zeroing a missing service", ["-Z -t 198.18.0.100:80"], "No such service"],
    ["a destination without its service", ["-a -t 198.18.0.100:80 -r 198.18.1.11"], "Service not defined"],
    [
      "a destination twice",
      [
        "-A -t 198.18.0.100:80",
        "-a -t 198.18.0.100:80 -r 198.18.1.11",
        "-a -t 198.18.0.100:80 -r 198.18.1.11",
      ],
      "Destination already exists",
    ],
    [
      "editing a missing destination",
      ["-A -t 198.18.0.100:80", "-e -t 198.18.0.100:80 -r 198.18.1.11"],
      "No such destination",
    ],
    [
      "deleting a missing destination",
      ["-A -t 198.18.0.100:80", "-d -t 198.18.0.100:80 -r 198.18.1.11"],
      "No such destination",
    ],
    [
      "an unknown scheduler",
      ["-A -t 198.18.0.100:80 -s nosuch"],
      "Scheduler or persistence engine not found",
    ],
    [
      "a lower threshold above the upper",
      ["-A -t 198.18.0.100:80", "-a -t 198.18.0.100:80 -r 198.18.1.11 -x 10 -y 20"],
      "Numerical result out of range",
    ],
  ];
  for (const [name, lines, message] of cases) {
    it(`refuses ${name} with "${message}"`, () => {
      const { c, run } = newCtl();
      const e = errorOf(() => run(...lines));
      assert.equal(e.message, message);
      assert.equal(e.index, lines.length - 1);
      assert.equal(c.services().length, 0, "a failed batch applies nothing");
    });
  }
});

describe("ipvs control: services and destinations", () => {
  it("keeps destinations newest first, as the kernel's list_add_rcu", () => {
    const { c, run } = newCtl();
    run(
      "-A -t 198.18.0.100:80 -s rr",
      "-a -t 198.18.0.100:80 -r 198.18.1.11 -m",
      "-a -t 198.18.0.100:80 -r 198.18.1.12 -m -w 3",
      "-a -t 198.18.0.100:80 -r 198.18.1.13 -m",
    );
    const s = c.services()[0];
    assert.deepEqual(
      s.dests.map((d) => d.addr),
      ["198.18.1.13", "198.18.1.12", "198.18.1.11"].map((a) => parseIPv4(a)!),
    );
    assert.equal(s.dests[1].weight, 3);
    assert.equal(s.sched.name, "rr");
  });

  it("finds fwmark, then exact, then port-zero services", () => {
    const { c, run } = newCtl();
    run("-A -t 198.18.0.100:80", "-A -t 198.18.0.100:0 -p", "-A -f 7", "-A -u 198.18.0.100:53");
    assert.equal(c.findService(flow(IPPROTO_TCP, "198.18.0.100", 80))!.port, 80);
    assert.equal(c.findService(flow(IPPROTO_TCP, "198.18.0.100", 443))!.port, 0);
    assert.equal(c.findService(flow(IPPROTO_TCP, "198.18.0.100", 80, 7))!.fwmark, 7);
    assert.equal(c.findService(flow(IPPROTO_UDP, "198.18.0.100", 53))!.protocol, IPPROTO_UDP);
    assert.equal(c.findService(flow(IPPROTO_UDP, "198.18.0.100", 54)), null);
    assert.equal(c.findService(flow(IPPROTO_TCP, "198.18.0.101", 80)), null);
  });

  it("owns a VIP while a service uses it", () => {
    const { c, run } = newCtl();
    const vip = parseIPv4("198.18.0.100")!;
    run("-A -t 198.18.0.100:80", "-A -u 198.18.0.100:53");
    assert.ok(c.ownsAddress(vip));
    run("-D -t 198.18.0.100:80");
    assert.ok(c.ownsAddress(vip));
    run("-D -u 198.18.0.100:53");
    assert.ok(!c.ownsAddress(vip));
  });

  it("edits a service's scheduler and persistence in place", () => {
    const { c, run } = newCtl();
    run(
      "-A -t 198.18.0.100:80 -s rr",
      "-a -t 198.18.0.100:80 -r 198.18.1.11",
      "-E -t 198.18.0.100:80 -s wlc -p 60",
    );
    const s = c.services()[0];
    assert.equal(s.sched.name, "wlc");
    assert.ok(s.persistent);
    assert.equal(s.timeout, 60);
    assert.equal(s.dests.length, 1);
  });

  it("clears the overload flag when the upper threshold is raised above the connections", () => {
    const { c, run } = newCtl();
    run("-A -t 198.18.0.100:80", "-a -t 198.18.0.100:80 -r 198.18.1.11 -x 2");
    const d = c.services()[0].dests[0];
    d.activeConns = 2;
    d.flags |= DEST_F_OVERLOAD;
    run("-e -t 198.18.0.100:80 -r 198.18.1.11 -x 3");
    assert.equal(d.flags & DEST_F_OVERLOAD, 0);
  });

  it("reports a weight dropping to 0 as quiescing", () => {
    const { run, events } = newCtl();
    run("-A -t 198.18.0.100:80", "-a -t 198.18.0.100:80 -r 198.18.1.11");
    run("-e -t 198.18.0.100:80 -r 198.18.1.11 -w 0");
    assert.deepEqual(events, ["quiesced"]);
  });

  it("passes --set to the timeout hook", () => {
    const { run, timeouts } = newCtl();
    run("--set 100 20 30");
    assert.deepEqual(timeouts, [{ tcp: 100, tcpFin: 20, udp: 30 }]);
  });
});

describe("ipvs control: the destination trash", () => {
  it("keeps a removed destination while connections use it, unavailable", () => {
    const { c, run } = newCtl();
    run("-A -t 198.18.0.100:80", "-a -t 198.18.0.100:80 -r 198.18.1.11");
    const d = c.services()[0].dests[0];
    c.destRef(d.id);
    run("-d -t 198.18.0.100:80 -r 198.18.1.11");
    assert.equal(c.destById(d.id), d);
    assert.equal(d.flags & DEST_F_AVAILABLE, 0);
    assert.equal(d.svc, null);
    assert.equal(c.trashSize(), 1);
    c.destUnref(d.id);
    assert.equal(c.destById(d.id), undefined);
    assert.equal(c.trashSize(), 0);
  });

  it("revives a trashed destination re-added to its service, counters kept", () => {
    const { c, run } = newCtl();
    run("-A -t 198.18.0.100:80", "-a -t 198.18.0.100:80 -r 198.18.1.11");
    const d = c.services()[0].dests[0];
    d.stats.conns = 5;
    c.destRef(d.id);
    run("-d -t 198.18.0.100:80 -r 198.18.1.11", "-a -t 198.18.0.100:80 -r 198.18.1.11 -w 4");
    const back = c.services()[0].dests[0];
    assert.equal(back, d);
    assert.equal(back.stats.conns, 5);
    assert.equal(back.weight, 4);
    assert.notEqual(back.flags & DEST_F_AVAILABLE, 0);
  });

  it("frees unreferenced destinations at once and reuses their ids", () => {
    const { c, run } = newCtl();
    run("-A -t 198.18.0.100:80", "-a -t 198.18.0.100:80 -r 198.18.1.11");
    const id = c.services()[0].dests[0].id;
    run("-C");
    assert.equal(c.destById(id), undefined);
    run("-A -t 198.18.0.100:80", "-a -t 198.18.0.100:80 -r 198.18.1.12");
    assert.equal(c.services()[0].dests[0].id, id);
  });
});

describe("ipvs control: listing order", () => {
  it("walks the service hash buckets, then the fwmark table, as the kernel's dump", () => {
    const { c, run } = newCtl();
    run("-A -f 3", "-A -t 198.18.0.100:80", "-A -u 198.18.0.100:53", "-A -t 198.18.0.100:443");
    const order = c.services().map((s) => (s.fwmark !== 0 ? `fwm${s.fwmark}` : `${s.protocol}:${s.port}`));
    // (proto ^ addr ^ (port >> 8) ^ port) & 255 with addr 0xc6120064: 80 → 0x32, 53 → 0x40, 443 → 0xd8.
    assert.deepEqual(order, ["6:80", "17:53", "6:443", "fwm3"]);
  });
});
