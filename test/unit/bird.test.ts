import assert from "node:assert/strict";
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  type DirectorBgp,
  directorBirdConf,
  neighborProtocolName,
  type RouterBgp,
  routerBirdConf,
  validateDirectorBgp,
  validateRouterBgp,
  vipProtocolName,
} from "../../src/config/bird.js";
import { TsvsError } from "../../src/core/errors.js";
import { commandPath } from "../../src/lab/packages.js";
import { skipOrFail } from "../support/e2e-env.js";

const director: DirectorBgp = {
  routerId: "198.18.2.11",
  localAs: 65011,
  neighbors: [{ address: "198.18.2.1", as: 65000 }],
  holdTime: 3,
  keepaliveTime: 1,
  vips4: ["198.18.0.10"],
  vips6: [],
  livenessIfname: "tsvs-bgp0",
};

const router: RouterBgp = {
  routerId: "198.18.2.1",
  localAs: 65000,
  neighbors: [
    { address: "198.18.2.11", as: 65011 },
    { address: "198.18.2.12", as: 65011 },
  ],
  holdTime: 3,
  keepaliveTime: 1,
  ecmpLimit: 16,
};

/** The lines of a generated file without comments and blank lines, each trimmed. */
const body = (conf: string): string[] =>
  conf
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));

describe("BIRD configuration of a director", () => {
  it("announces each VIP from its own static protocol via the liveness interface, over one session a neighbour", () => {
    assert.deepEqual(body(directorBirdConf(director)), [
      "router id 198.18.2.11;",
      "protocol device {",
      "scan time 10;",
      "}",
      "protocol static tsvs_vip4_198_18_0_10 {",
      "ipv4;",
      'route 198.18.0.10/32 via "tsvs-bgp0";',
      "}",
      "protocol bgp tsvs_peer_198_18_2_1 {",
      "local as 65011;",
      "neighbor 198.18.2.1 as 65000;",
      "hold time 3;",
      "keepalive time 1;",
      "ipv4 {",
      "import none;",
      "export where source = RTS_STATIC && net ~ [ 198.18.0.10/32 ];",
      "next hop self;",
      "};",
      "}",
    ]);
  });

  it("writes a VIP that is not announced now as a disabled protocol", () => {
    const conf = directorBirdConf(
      { ...director, vips4: ["198.18.0.10", "198.18.0.11"] },
      { announced: new Set(["198.18.0.11"]) },
    );
    const l = body(conf);
    const at = (name: string) => l.indexOf(`protocol static ${name} {`);
    assert.equal(l[at("tsvs_vip4_198_18_0_10") + 1], "disabled;");
    assert.equal(l[at("tsvs_vip4_198_18_0_11") + 1], "ipv4;");
  });

  it("announces IPv6 VIPs over IPv6 sessions with canonical addresses, and sets timers, port, password, BFD and a log file", () => {
    const conf = directorBirdConf(
      {
        ...director,
        neighbors: [
          { address: "198.18.2.1", as: 65000, port: 1179, password: "s3cret" },
          { address: "FD74:7376:0:2::1", as: 65000, bfd: true },
        ],
        vips6: ["fd74:7376:0:0::10"],
        connectRetryTime: 2,
      },
      { logFile: "/run/tsvs/bird.log" },
    );
    const l = body(conf);
    assert.equal(l[0], 'log "/run/tsvs/bird.log" all;');
    assert.ok(l.includes('route fd74:7376::10/128 via "tsvs-bgp0";'));
    assert.ok(l.includes("protocol static tsvs_vip6_fd74_7376__10 {"));
    assert.ok(l.includes("neighbor 198.18.2.1 port 1179 as 65000;"));
    assert.ok(l.includes('password "s3cret";'));
    assert.ok(l.includes("connect retry time 2;"));
    assert.ok(l.includes("protocol bgp tsvs_peer_fd74_7376_0_2__1 {"));
    assert.ok(l.includes("export where source = RTS_STATIC && net ~ [ fd74:7376::10/128 ];"));
    // BFD only on the session that asks for it, and the bfd protocol it needs.
    assert.equal(l.filter((x) => x === "bfd on;").length, 1);
    assert.ok(l.includes("protocol bfd {"));
    assert.equal(neighborProtocolName({ address: "fd74:7376:0:2:0::1" }), "tsvs_peer_fd74_7376_0_2__1");
    assert.equal(vipProtocolName("198.18.0.10"), "tsvs_vip4_198_18_0_10");
  });

  it("exports nothing on a session of a family without VIPs", () => {
    const l = body(
      directorBirdConf({
        ...director,
        neighbors: [...director.neighbors, { address: "fd74:7376::1", as: 65000 }],
      }),
    );
    assert.ok(l.includes("export none;"));
  });
});

describe("BIRD configuration of the upstream router", () => {
  it("imports every director's routes, exports none back and merges them into an ECMP kernel route", () => {
    assert.deepEqual(body(routerBirdConf({ ...router, kernelTable: 100 })), [
      "router id 198.18.2.1;",
      "protocol device {",
      "scan time 10;",
      "}",
      "protocol kernel tsvs_kernel4 {",
      "ipv4 {",
      "import none;",
      "export where source = RTS_BGP;",
      "};",
      "merge paths on limit 16;",
      "kernel table 100;",
      "}",
      "protocol bgp tsvs_director_198_18_2_11 {",
      "local as 65000;",
      "neighbor 198.18.2.11 as 65011;",
      "hold time 3;",
      "keepalive time 1;",
      "ipv4 {",
      "import all;",
      "export none;",
      "};",
      "}",
      "protocol bgp tsvs_director_198_18_2_12 {",
      "local as 65000;",
      "neighbor 198.18.2.12 as 65011;",
      "hold time 3;",
      "keepalive time 1;",
      "ipv4 {",
      "import all;",
      "export none;",
      "};",
      "}",
    ]);
  });
});

describe("BGP settings validation", () => {
  const cases: { name: string; change: Partial<DirectorBgp>; error: RegExp }[] = [
    {
      name: "a zero local AS",
      change: { localAs: 0 },
      error: /^local_as: AS number must be 1\.\.4294967295/,
    },
    { name: "AS_TRANS", change: { localAs: 23456 }, error: /^local_as: 23456 is AS_TRANS/ },
    { name: "a router id that is no IPv4 address", change: { routerId: "fd74::1" }, error: /^router_id:/ },
    {
      name: "a hold time below 3 s",
      change: { holdTime: 2, keepaliveTime: 1 },
      error: /^hold_time: must be 3\.\.65535/,
    },
    {
      name: "a keepalive as long as the hold time",
      change: { holdTime: 3, keepaliveTime: 3 },
      error: /^keepalive_time: must be less than hold_time/,
    },
    { name: "no neighbour", change: { neighbors: [] }, error: /^neighbors: at least one/ },
    {
      name: "a multicast neighbour",
      change: { neighbors: [{ address: "224.0.0.5", as: 65000 }] },
      error: /^neighbors\[0\]\.address:/,
    },
    {
      name: "a link-local neighbour",
      change: { neighbors: [{ address: "fe80::1", as: 65000 }] },
      error: /^neighbors\[0\]\.address:/,
    },
    {
      name: "a neighbour's bad AS",
      change: { neighbors: [{ address: "198.18.2.1", as: 4294967296 }] },
      error: /^neighbors\[0\]\.as:/,
    },
    {
      name: "a neighbour's port 0",
      change: { neighbors: [{ address: "198.18.2.1", as: 65000, port: 0 }] },
      error: /^neighbors\[0\]\.port:/,
    },
    {
      name: "a password with a quote",
      change: { neighbors: [{ address: "198.18.2.1", as: 65000, password: 'a"b' }] },
      error: /^neighbors\[0\]\.password:/,
    },
    {
      name: "a neighbour listed twice",
      change: {
        neighbors: [
          { address: "198.18.2.1", as: 65000 },
          { address: "198.18.2.1", as: 65001 },
        ],
      },
      error: /^neighbors\[1\]\.address: 198\.18\.2\.1 is listed twice/,
    },
    { name: "a bad IPv4 VIP", change: { vips4: ["198.18.0.300"] }, error: /^vips4\[0\]:/ },
    {
      name: "an IPv6 VIP without an IPv6 session",
      change: { vips6: ["fd74:7376::10"] },
      error: /^neighbors: IPv6 VIPs/,
    },
    {
      name: "an interface name too long",
      change: { livenessIfname: "tsvs-bgp-liveness0" },
      error: /^liveness_interface:/,
    },
    { name: "a connect retry of 0", change: { connectRetryTime: 0 }, error: /^connect_retry_time:/ },
  ];
  for (const c of cases)
    it(`refuses ${c.name}, naming the field`, () => {
      const errors = validateDirectorBgp({ ...director, ...c.change });
      assert.equal(errors.length, 1, errors.join("\n"));
      assert.match(errors[0], c.error);
      assert.throws(
        () => directorBirdConf({ ...director, ...c.change }),
        (e: unknown) => e instanceof TsvsError && e.code === "TSVS_ERR_INVALID" && c.error.test(e.message),
      );
    });

  it("accepts the documented example", () => {
    assert.deepEqual(validateDirectorBgp(director), []);
    assert.deepEqual(validateRouterBgp(router), []);
  });

  it("refuses a router's ECMP limit of 0 and a kernel table of 0", () => {
    assert.deepEqual(
      validateRouterBgp({ ...router, ecmpLimit: 0, kernelTable: 0 }).map((e) => e.split(":")[0]),
      ["ecmp_limit", "kernel_table"],
    );
  });
});

describe("generated files and bird -p", () => {
  it("both files pass BIRD's own parser (bird -p -c FILE)", (t) => {
    const bird = commandPath("bird");
    if (bird === null) {
      skipOrFail(t, "bird (Debian bird2) is not installed: scripts/e2e-deps.sh installs it");
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), "tsvs-bird-"));
    try {
      const files = {
        "director.conf": directorBirdConf(
          {
            ...director,
            neighbors: [
              { address: "198.18.2.1", as: 65000, port: 1179, password: "s3cret" },
              { address: "fd74:7376:0:2::1", as: 65000, bfd: true },
            ],
            vips4: ["198.18.0.10", "198.18.0.11"],
            vips6: ["fd74:7376::10"],
            connectRetryTime: 1,
          },
          { logFile: join(dir, "bird.log"), announced: new Set(["198.18.0.11"]) },
        ),
        "router.conf": routerBirdConf({
          ...router,
          neighbors: [...router.neighbors, { address: "fd74:7376:0:2::11", as: 65011, bfd: true }],
          kernelTable: 100,
        }),
      };
      for (const [name, text] of Object.entries(files)) {
        const path = join(dir, name);
        writeFileSync(path, text);
        const r: SpawnSyncReturns<string> = spawnSync(bird, ["-p", "-c", path], {
          encoding: "utf8",
          timeout: 10_000,
        });
        assert.equal(r.status, 0, `${name}: ${r.stderr}${r.stdout}\n${text}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
