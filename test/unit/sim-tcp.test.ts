import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readU16 } from "../../src/core/addr.js";
import { httpGet, httpServer, patternBytes, udpEcho, udpRequest } from "../../src/sim/apps.js";
import { SimClock } from "../../src/sim/clock.js";
import { Host } from "../../src/sim/host.js";
import { Link } from "../../src/sim/net.js";

function mac(n: number): string {
  return `02:00:00:00:00:${n.toString(16).padStart(2, "0")}`;
}

function pair() {
  const clock = new SimClock();
  const link = new Link(clock, { name: "lan" });
  const a = new Host(clock, "a");
  a.addIface(link, { name: "eth0", mac: mac(1), addrs: ["10.0.0.1/24"] });
  const b = new Host(clock, "b");
  b.addIface(link, { name: "eth0", mac: mac(2), addrs: ["10.0.0.2/24"] });
  return { clock, link, a, b };
}

/** TCP segments with payload seen on a link: [from port index, payload length]. */
function dataSegments(link: Link): number[] {
  const sizes: number[] = [];
  link.tap((_from, f, len) => {
    if (readU16(f, 12) !== 0x0800 || f[23] !== 6) return;
    const ihl = (f[14] & 15) * 4;
    const doff = (f[14 + ihl + 12] >>> 4) * 4;
    const plen = readU16(f, 16) - ihl - doff;
    if (plen > 0 && len > 0) sizes.push(plen);
  });
  return sizes;
}

describe("sim TCP over a link", () => {
  it("HTTP GET of 1 MB arrives intact, in MSS-sized segments", () => {
    const { clock, link, a, b } = pair();
    httpServer(b, 80, "b");
    const sizes = dataSegments(link);
    let res: { status: number; body: Uint8Array } | null = null;
    httpGet(a, "10.0.0.2", 80, "/bytes/1048576", {}, (err, r) => {
      assert.equal(err, null);
      res = r;
    });
    clock.runUntilIdle();
    assert.ok(res !== null);
    const r = res as { status: number; body: Uint8Array };
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 1048576);
    assert.deepEqual(r.body, patternBytes(1048576));
    assert.equal(Math.max(...sizes), 1460);
    // Both ends closed; the server (first to close) holds TIME_WAIT until it expires.
    assert.equal(a.tcp.sockets().length, 0);
    assert.equal(b.tcp.sockets().length, 0);
  });

  it("is deterministic: the same run gives the same ports, sequence numbers and timing", () => {
    const trace = (): string => {
      const { clock, link, a, b } = pair();
      httpServer(b, 80, "b");
      const lines: string[] = [];
      link.tap((from, f, len, t) =>
        lines.push(
          `${t.toFixed(3)} ${from} ${len} ${Buffer.from(f.subarray(0, len)).toString("hex").slice(0, 120)}`,
        ),
      );
      httpGet(a, "10.0.0.2", 80, "/bytes/5000", {}, () => {});
      clock.runUntilIdle();
      return lines.join("\n");
    };
    assert.equal(trace(), trace());
  });

  it("keep-alive: two requests on one connection", () => {
    const { clock, a, b } = pair();
    const srv = httpServer(b, 8080, "b");
    const bodies: string[] = [];
    httpGet(a, "10.0.0.2", 8080, "/", { keepalive: true }, (err, r) => {
      assert.equal(err, null);
      assert.ok(r?.keepalive);
      bodies.push(new TextDecoder().decode(r?.body));
      httpGet(a, "10.0.0.2", 8080, "/bytes/3", { keepalive: true, socket: r?.socket }, (err2, r2) => {
        assert.equal(err2, null);
        bodies.push(Array.from(r2?.body ?? []).join(","));
        r2?.socket.end();
      });
    });
    clock.runUntilIdle();
    assert.deepEqual(bodies, ["b\n", "0,7,14"]);
    assert.equal(srv.connections, 1);
    assert.equal(srv.requests, 2);
  });

  it("the side that closes first holds TIME_WAIT for timeWaitMs", () => {
    const clock = new SimClock();
    const link = new Link(clock);
    const a = new Host(clock, "a");
    a.addIface(link, { name: "eth0", mac: mac(1), addrs: ["10.0.0.1/24"] });
    const b = new Host(clock, "b", { timeWaitMs: 500 });
    b.addIface(link, { name: "eth0", mac: mac(2), addrs: ["10.0.0.2/24"] });
    httpServer(b, 80, "b");
    let doneAt = -1;
    httpGet(a, "10.0.0.2", 80, "/", {}, () => {
      doneAt = clock.now;
    });
    clock.runUntil(10);
    assert.ok(doneAt > 0);
    assert.deepEqual(
      b.tcp.sockets().map((s) => s.state),
      ["TIME_WAIT"],
    );
    assert.equal(a.tcp.sockets().length, 0);
    clock.runUntil(doneAt + 499);
    assert.equal(b.tcp.sockets().length, 1);
    clock.runUntil(doneAt + 501);
    assert.equal(b.tcp.sockets().length, 0);
  });

  it("an aborted connection resets the peer: ECONNRESET", () => {
    const { clock, a, b } = pair();
    b.tcp.listen(7000, (s) => {
      s.onData = () => s.destroy();
    });
    const c = a.tcp.connect("10.0.0.2", 7000);
    let code = "";
    c.onConnect = () => c.write("hello");
    c.onError = (e) => {
      code = e.code;
    };
    clock.runUntilIdle();
    assert.equal(code, "ECONNRESET");
    assert.equal(c.state, "CLOSED");
  });

  it("a SYN to a closed port is answered with RST: ECONNREFUSED", () => {
    const { clock, a, b } = pair();
    let code = "";
    httpGet(a, "10.0.0.2", 81, "/", {}, (err) => {
      code = err?.code ?? "ok";
    });
    clock.runUntilIdle();
    assert.equal(code, "ECONNREFUSED");
    assert.equal(b.tcp.counters.rstSent, 1);
  });

  it("a stopped server refuses, a restarted one serves again", () => {
    const { clock, a, b } = pair();
    const srv = httpServer(b, 80, "b");
    srv.stop();
    const out: string[] = [];
    httpGet(a, "10.0.0.2", 80, "/", {}, (err) => {
      out.push(err?.code ?? "ok");
      srv.start();
      httpGet(a, "10.0.0.2", 80, "/", {}, (err2, r) => out.push(err2?.code ?? String(r?.status)));
    });
    clock.runUntilIdle();
    assert.deepEqual(out, ["ECONNREFUSED", "200"]);
  });

  it("retransmits lost segments and completes", () => {
    const { clock, link, a, b } = pair();
    httpServer(b, 80, "b");
    let n = 0;
    // Lose every 10th frame b sends (data segments and the SYN-ACK alike).
    link.dropIf = (_f, _len, from) => from === 1 && ++n % 10 === 3;
    let body: Uint8Array | null = null;
    httpGet(a, "10.0.0.2", 80, "/bytes/100000", {}, (err, r) => {
      assert.equal(err, null);
      body = r?.body ?? null;
    });
    clock.runUntilIdle();
    assert.deepEqual(body, patternBytes(100000));
    assert.ok(link.stats.dropsFilter > 0);
    assert.ok(clock.now > 200, "recovery waited for the retransmission timer");
  });

  it("gives up with ETIMEDOUT after 6 retransmissions of an unanswered SYN", () => {
    const { clock, link, a } = pair();
    link.dropIf = (_f, _len, from) => from === 1;
    let code = "";
    const t0 = clock.now;
    const s = a.tcp.connect("10.0.0.2", 80);
    s.onError = (e) => {
      code = e.code;
    };
    clock.runUntilIdle();
    assert.equal(code, "ETIMEDOUT");
    // 200 + 400 + ... + 6400 (six retransmissions) + 12800 for the last: RTO doubling from 200 ms.
    assert.equal(clock.now - t0, 25400);
  });

  it("ephemeral ports are sequential from the host's seed", () => {
    const { clock, a, b } = pair();
    httpServer(b, 80, "b");
    const ports: number[] = [];
    for (let i = 0; i < 3; i++) ports.push(httpGet(a, "10.0.0.2", 80, "/", {}, () => {}).localPort);
    clock.runUntilIdle();
    assert.deepEqual(ports, [ports[0], ports[0] + 1, ports[0] + 2]);
    assert.ok(ports[0] >= 32768 && ports[0] <= 60997);
  });

  it("UDP echo answers with its name", () => {
    const { clock, a, b } = pair();
    udpEcho(b, 53, "b");
    let got = "";
    udpRequest(a, "10.0.0.2", 53, "q", {}, (err, d) => {
      assert.equal(err, null);
      got = new TextDecoder().decode(d ?? new Uint8Array(0));
    });
    clock.runUntilIdle();
    assert.equal(got, "b");
  });

  it("a UDP request to a closed port fails with ECONNREFUSED (ICMP port unreachable)", () => {
    const { clock, a } = pair();
    let code = "";
    udpRequest(a, "10.0.0.2", 54, "q", {}, (err) => {
      code = err?.code ?? "ok";
    });
    clock.runUntilIdle();
    assert.equal(code, "ECONNREFUSED");
  });
});

describe("sim TCP path MTU", () => {
  it("a fragmentation-needed from a router lowers the segment size and the transfer completes", () => {
    const clock = new SimClock();
    const l1 = new Link(clock, { name: "l1" });
    const l2 = new Link(clock, { name: "l2" });
    const c = new Host(clock, "c");
    c.addIface(l1, { name: "eth0", mac: mac(1), addrs: ["10.0.1.2/24"] });
    c.setDefaultRoute("10.0.1.1");
    // Only the router knows the narrow hop: both ends have MTU 1500 and agree on MSS 1460.
    const r = new Host(clock, "r", { ipForward: true });
    r.addIface(l1, { name: "eth0", mac: mac(2), addrs: ["10.0.1.1/24"] });
    r.addIface(l2, { name: "eth1", mac: mac(3), addrs: ["10.0.2.1/24"], mtu: 1300 });
    const srvHost = new Host(clock, "srv");
    srvHost.addIface(l2, { name: "eth0", mac: mac(5), addrs: ["10.0.2.3/24"] });
    srvHost.setDefaultRoute("10.0.2.1");
    const sizes = dataSegments(l1);
    let received = 0;
    srvHost.tcp.listen(9000, (sock) => {
      sock.onData = (d) => {
        received += d.length;
      };
      sock.onEnd = () => sock.end();
    });
    const up = c.tcp.connect("10.0.2.3", 9000);
    let closed = false;
    up.onConnect = () => up.end(patternBytes(200_000));
    up.onClose = (hadErr) => {
      closed = !hadErr;
    };
    clock.runUntilIdle();
    assert.equal(received, 200_000);
    assert.ok(closed);
    assert.equal(r.counters.fragNeeded > 0, true);
    assert.equal(c.pmtu.get(0x0a000203), 1300);
    assert.equal(sizes[0], 1460, "the first segment used the local MTU");
    assert.equal(sizes[sizes.length - 1] <= 1260, true);
    assert.equal(up.maxSegment, 1460);
    assert.ok(sizes.slice(-10).every((n) => n <= 1260));
  });
});
