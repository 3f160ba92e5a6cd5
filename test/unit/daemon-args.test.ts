// `tsvs daemon` arguments: what each option sets, and the message a bad one is refused with.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DaemonUsageError,
  DEFAULT_SPIN_US,
  DEFAULT_WARMUP_MS,
  parseDaemonArgs,
} from "../../src/daemon/main.js";

describe("tsvs daemon arguments", () => {
  it("defaults", () => {
    const o = parseDaemonArgs([]);
    assert.equal(o.idleMs, 10);
    assert.equal(o.spinUs, DEFAULT_SPIN_US);
    assert.equal(o.warmupMs, DEFAULT_WARMUP_MS);
    assert.equal(o.readAhead, "auto");
    assert.equal(o.io, "mmsg");
    assert.equal(o.workers, 1);
    assert.equal(o.pin, true);
  });

  const good: [string[], Partial<ReturnType<typeof parseDaemonArgs>>][] = [
    [["--idle-ms", "0"], { idleMs: 0 }],
    [["--idle-ms=1000"], { idleMs: 1000 }],
    [["--spin-us", "0"], { spinUs: 0 }],
    [["--spin-us=250"], { spinUs: 250 }],
    [["--warmup-ms", "0"], { warmupMs: 0 }],
    [["--warmup-ms=2500"], { warmupMs: 2500 }],
    [["--read-ahead", "on"], { readAhead: "on" }],
    [["--read-ahead=off"], { readAhead: "off" }],
    [["--workers", "2"], { workers: 2 }],
    [["--io", "ring"], { io: "ring" }],
    [["--io", "xdp"], { io: "xdp" }],
    [["--io", "auto"], { io: "mmsg" }],
    [["--iface", "eth0", "-i", "eth1"], { ifaces: ["eth0", "eth1"] }],
    [["--cpus", "1,3"], { cpus: [1, 3] }],
    [["--no-pin"], { pin: false }],
    [["--rx-kib", "8192"], { rxKib: 8192 }],
    [["--lip", "198.18.1.100", "--lip=198.18.1.101"], { lips: [0xc6120164, 0xc6120165] }],
    [["--sysctl", "net.ipv4.vs.expire_nodest_conn=1"], { sysctls: { expireNodestConn: true } }],
    [["--sysctl=conn_reuse_mode=2"], { sysctls: { connReuseMode: 2 } }],
    [["--host-vips", "--no-filter", "--qdisc-bypass"], { hostVips: true, filter: false, qdiscBypass: true }],
    [
      ["--control", "/tmp/x.sock", "--config=/etc/tsvs.yaml"],
      { control: "/tmp/x.sock", config: "/etc/tsvs.yaml" },
    ],
    [["--log-level", "debug"], { logLevel: "debug" }],
    [[], { http: { host: "127.0.0.1", port: 9715 } }],
    [["--http", "0.0.0.0:9100"], { http: { host: "0.0.0.0", port: 9100 } }],
    [["--http=[::1]:9715"], { http: { host: "::1", port: 9715 } }],
    [["--http", "off"], { http: null }],
    [[], { httpTokenFile: undefined }],
    [["--http-token-file", "/etc/tsvs/token"], { httpTokenFile: "/etc/tsvs/token" }],
    [["--http-token-file=/root/t"], { httpTokenFile: "/root/t" }],
  ];
  for (const [argv, want] of good) {
    it(argv.join(" "), () => {
      const o = parseDaemonArgs(argv) as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(want)) assert.deepEqual(o[k], v, k);
    });
  }

  const bad: [string[], string][] = [
    [["--idle-ms", "-1"], "--idle-ms must be 0..1000"],
    [["--idle-ms", "1.5"], "--idle-ms must be 0..1000"],
    [["--spin-us", "x"], "--spin-us must be 0..100000"],
    [["--spin-us", "100001"], "--spin-us must be 0..100000"],
    [["--spin-us"], "--spin-us needs a value"],
    [["--warmup-ms", "-1"], "--warmup-ms must be 0..60000"],
    [["--read-ahead", "always"], '--read-ahead: auto, on or off, not "always"'],
    [["--workers", "0"], "--workers must be 1..64"],
    [["--io", "dpdk"], '--io: mmsg, ring, xdp or auto, not "dpdk"'],
    [["--cpus", "1", "--no-pin"], "--cpus and --no-pin exclude each other"],
    [["--bogus"], 'unknown argument "--bogus"'],
    // Measured and removed (docs/io.md, receive livelock): they made a sharing worker forward less.
    [["--nice", "-19"], 'unknown argument "--nice"'],
    [["--rt-prio", "10"], 'unknown argument "--rt-prio"'],
    [["--batch", "1024"], 'unknown argument "--batch"'],
    [["--no-pin=yes"], "--no-pin takes no value"],
    [["--lip", "198.18.1"], '--lip: bad IPv4 address "198.18.1"'],
    [["--sysctl", "sloppy_tcp"], "--sysctl: sloppy_tcp needs =VALUE"],
    [["--log-level", "loud"], '--log-level: unknown level "loud"'],
    [["--rx-kib", "64"], "--rx-kib must be 128..1048576"],
    [["--http", "9715"], '--http: ADDR:PORT or off, not "9715"'],
    [["--http", "127.0.0.1:65536"], '--http: ADDR:PORT or off, not "127.0.0.1:65536"'],
    [["--http-token-file"], "--http-token-file needs a value"],
    [["--http-token-file="], "--http-token-file needs a file"],
  ];
  for (const [argv, message] of bad) {
    it(`refuses ${argv.join(" ")}`, () =>
      assert.throws(
        () => parseDaemonArgs(argv),
        (e: unknown) => e instanceof DaemonUsageError && e.message === message,
      ));
  }
});
