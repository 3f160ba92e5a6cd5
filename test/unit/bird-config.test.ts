import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { configMain } from "../../src/cli/config.js";
import { bgpVips } from "../../src/config/bird.js";
import { parseBgpYaml, parseYamlConfig } from "../../src/config/yaml.js";
import { parseIPv4 } from "../../src/core/addr.js";
import {
  announcement,
  type BirdReply,
  inPrefixes,
  parseShowProtocols,
  type ServiceQuorum,
} from "../../src/daemon/bgp.js";
import { parseDaemonArgs } from "../../src/daemon/main.js";
import { configErrors } from "../support/config.js";

const SERVICES = `virtual_servers:
  - address: 198.18.0.10
    port: 80
    real_servers: [{ address: 198.18.1.11, port: 80 }]
  - address: 198.18.0.10
    port: 443
    real_servers: [{ address: 198.18.1.11, port: 443 }]
  - address: fd74:7376::10
    port: 80
    real_servers: [{ address: fd74:7376:1::11, port: 80 }]
  - fwmark: 7
    real_servers: [{ address: 198.18.1.11 }]
`;

const BGP = `bgp:
  local_as: 65011
  neighbors:
    - { address: 198.18.2.1, as: 65000 }
    - { address: fd74:7376:2::1, as: 65000, bfd: true }
`;

describe("the YAML bgp section", () => {
  it("reads the speaker with its defaults; the VIPs are the services' addresses, fwmark ones aside", () => {
    const { model, warnings } = parseYamlConfig(SERVICES + BGP, "c.yaml");
    assert.deepEqual(warnings, []);
    const { pos, ...bgp } = model.bgp ?? assert.fail("no bgp");
    assert.deepEqual(bgp, {
      routerId: null,
      localAs: 65011,
      neighbors: [
        { address: "198.18.2.1", as: 65000 },
        { address: "fd74:7376:2::1", as: 65000, bfd: true },
      ],
      holdTime: 3,
      keepaliveTime: 1,
      connectRetryTime: 5,
      bfd: false,
      livenessIfname: "tsvs-bgp0",
      bird: { binary: "bird", socket: null, config: null, log: null, keepRunning: false },
    });
    assert.equal(pos.line, 14);
    assert.deepEqual(bgpVips(model.virtualServers), { vips4: ["198.18.0.10"], vips6: ["fd74:7376::10"] });
  });

  const errors: { name: string; bgp: string; want: string }[] = [
    {
      name: "a keepalive as long as the hold time, at the keepalive",
      bgp: "bgp:\n  local_as: 65011\n  neighbors: [{ address: 198.18.2.1, as: 65000 }]\n  hold_time: 3\n  keepalive_time: 3\n",
      want: "c.yaml:17:19: bgp: keepalive_time: must be less than hold_time (3 >= 3; a third of it is usual)",
    },
    {
      name: "a hold time below 3 s",
      bgp: "bgp:\n  local_as: 65011\n  neighbors: [{ address: 198.18.2.1, as: 65000 }]\n  hold_time: 2\n",
      want: "c.yaml:16:14: hold_time must be 3..65535",
    },
    {
      name: "AS_TRANS as a neighbour's AS, at that neighbour's as",
      bgp: "bgp:\n  local_as: 65011\n  neighbors:\n    - address: 198.18.2.1\n      as: 23456\n",
      want: "c.yaml:17:11: bgp: neighbors[0].as: 23456 is AS_TRANS (RFC 6793), not a usable AS number",
    },
    {
      name: "an IPv6 VIP without an IPv6 session",
      bgp: "bgp:\n  local_as: 65011\n  neighbors: [{ address: 198.18.2.1, as: 65000 }]\n",
      want: "c.yaml:15:14: bgp: neighbors: IPv6 VIPs are announced over an IPv6 session, and there is none",
    },
    {
      name: "an unknown key",
      bgp: "bgp:\n  local_as: 65011\n  neighbours: []\n",
      want: 'c.yaml:15:3: unknown key "neighbours"',
    },
  ];
  for (const c of errors)
    it(`refuses ${c.name}`, () => {
      assert.ok(
        configErrors(() => parseYamlConfig(SERVICES + c.bgp, "c.yaml")).includes(c.want),
        configErrors(() => parseYamlConfig(SERVICES + c.bgp, "c.yaml")).join("\n"),
      );
    });

  it("--bgp FILE reads the bgp section alone, and says what else it does not read", () => {
    const { bgp, warnings } = parseBgpYaml(`${BGP}  router_id: 198.18.2.11\nvrrp: {}\n`, "b.yaml");
    assert.equal(bgp.routerId, "198.18.2.11");
    assert.deepEqual(
      warnings.map((w) => `${w.line}: ${w.message}`),
      ["7: vrrp: not read (--bgp reads the bgp section only)"],
    );
    assert.deepEqual(
      configErrors(() => parseBgpYaml("vrrp: {}\n", "b.yaml")),
      ["b.yaml:1:1: no bgp section"],
    );
    assert.deepEqual(
      configErrors(() => parseBgpYaml("bgp:\n  local_as: 0\n  neighbors: []\n", "b.yaml")),
      ["b.yaml:2:13: local_as must be 1..4294967295"],
    );
  });

  it("--bgp needs --config", () => {
    assert.throws(() => parseDaemonArgs(["--bgp", "b.yaml"]), /--bgp needs --config/);
    assert.equal(parseDaemonArgs(["--config", "k.conf", "--bgp", "b.yaml"]).bgp, "b.yaml");
  });

  it("tsvs config check prints the speaker, its neighbours and what each VIP follows", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsvs-bgpcheck-"));
    try {
      const file = join(dir, "c.yaml");
      writeFileSync(file, SERVICES + BGP);
      let out = "";
      let err = "";
      const code = await configMain(["check", file], {
        stdout: {
          write: (s: string) => {
            out += s;
          },
        },
        stderr: {
          write: (s: string) => {
            err += s;
          },
        },
      });
      assert.equal(code, 0, err);
      assert.deepEqual(
        out.split("\n").filter((l) => l.startsWith("# bgp")),
        [
          "# bgp: AS 65011, router id the source address toward the first neighbour, hold 3 s, keepalive 1 s, BFD off, liveness device tsvs-bgp0",
          "# bgp neighbor 198.18.2.1 AS 65000",
          "# bgp neighbor fd74:7376:2::1 AS 65000 (BFD)",
          "# bgp VIP 198.18.0.10: announced while one of TCP 198.18.0.10:80, TCP 198.18.0.10:443 has quorum",
          "# bgp VIP fd74:7376::10: announced while one of TCP [fd74:7376::10]:80 has quorum",
        ],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("tsvs config check --bgp (a keepalived.conf's VIPs with a YAML bgp section)", () => {
  const check = async (conf: string, bgp: string): Promise<{ code: number; out: string; err: string }> => {
    const dir = mkdtempSync(join(tmpdir(), "tsvs-bgpcheck-"));
    try {
      writeFileSync(join(dir, "keepalived.conf"), conf);
      writeFileSync(join(dir, "bgp.yaml"), bgp);
      let out = "";
      let err = "";
      const code = await configMain(["check", "--bgp", join(dir, "bgp.yaml"), join(dir, "keepalived.conf")], {
        stdout: {
          write: (s: string) => {
            out += s;
          },
        },
        stderr: {
          write: (s: string) => {
            err += s.replaceAll(`${dir}/`, "");
          },
        },
      });
      return { code, out, err };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const vs = (vip: string) =>
    `virtual_server ${vip} 80 {\n  lb_kind DR\n  protocol TCP\n  real_server ${vip.includes(":") ? "fd74:7376:1::11" : "198.18.1.11"} 80 {\n  }\n}\n`;

  it("prints the VIPs the daemon would announce", async () => {
    const r = await check(vs("198.18.0.10"), BGP);
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.out,
      /^# bgp VIP 198\.18\.0\.10: announced while one of TCP 198\.18\.0\.10:80 has quorum$/m,
    );
  });

  it("refuses an IPv6 VIP without an IPv6 session, at the bgp file's section", async () => {
    const r = await check(
      vs("fd74:7376::10"),
      "bgp:\n  local_as: 65011\n  neighbors: [{ address: 198.18.2.1, as: 65000 }]\n",
    );
    assert.equal(r.code, 1);
    assert.equal(
      r.err,
      "bgp.yaml:2:3: bgp: neighbors: IPv6 VIPs are announced over an IPv6 session, and there is none\n",
    );
  });
});

describe("what the daemon announces", () => {
  const svc = (name: string, vip: string | null, quorumUp: boolean, weightSum: number): ServiceQuorum => ({
    name,
    vip,
    quorumUp,
    weightSum,
    quorum: 1,
  });
  it("a VIP while at least one of its services has quorum, with the reason either way", () => {
    const got = announcement(
      ["198.18.0.10", "198.18.0.11", "198.18.0.12"],
      [
        svc("TCP 198.18.0.10:80", "198.18.0.10", true, 2),
        svc("TCP 198.18.0.10:443", "198.18.0.10", false, 0),
        svc("TCP 198.18.0.11:80", "198.18.0.11", false, 0),
        svc("FWM 7", null, true, 1),
      ],
    );
    assert.deepEqual(Object.fromEntries(got), {
      "198.18.0.10": { announce: true, why: "quorum: TCP 198.18.0.10:80 (weight 2, quorum 1)" },
      "198.18.0.11": { announce: false, why: "no quorum: TCP 198.18.0.11:80 (weight 0, quorum 1)" },
      "198.18.0.12": { announce: false, why: "no virtual service" },
    });
  });

  it("with --host-vips, only a VIP the host has (an address or inside a local route)", () => {
    const local = [
      { addr: parseIPv4("198.18.0.10") ?? 0, prefix: 32 },
      { addr: parseIPv4("198.18.4.0") ?? 0, prefix: 22 },
      { addr: 0, prefix: 127, addr6: "fd74:7376::10" },
    ];
    const table: [string, boolean][] = [
      ["198.18.0.10", true],
      ["198.18.0.11", false],
      ["198.18.7.255", true],
      ["198.18.8.0", false],
      ["fd74:7376::11", true],
      ["fd74:7376::12", false],
      ["fd74:7376::10", true],
    ];
    for (const [vip, want] of table) assert.equal(inPrefixes(vip, local), want, vip);
    const got = announcement(
      ["198.18.0.10", "198.18.0.11"],
      [svc("TCP 198.18.0.10:80", "198.18.0.10", true, 1), svc("TCP 198.18.0.11:80", "198.18.0.11", true, 1)],
      (vip) => inPrefixes(vip, local),
    );
    assert.deepEqual(got.get("198.18.0.11"), {
      announce: false,
      why: "not served: --host-vips, and the host does not have it",
    });
    assert.equal(got.get("198.18.0.10")?.announce, true);
  });

  it("reads BIRD's sessions from show protocols", () => {
    // BIRD 2.0.12's reply to `show protocols`, codes taken off (doc/reply_codes: 2002 heading, 1002 rows).
    const reply: BirdReply = {
      code: 0,
      lines: [
        "Name       Proto      Table      State  Since         Info",
        "device1    Device     ---        up     20:50:01.123  ",
        "tsvs_vip4_198_18_0_10 Static     master4    up     20:50:01.123  ",
        "tsvs_peer_198_18_2_1 BGP        ---        up     20:50:03.456  Established   ",
        "tsvs_peer_198_18_3_1 BGP        ---        start  20:50:01.123  Active        Socket: Connection refused",
        "",
      ],
    };
    const names = new Map([
      ["tsvs_peer_198_18_2_1", "198.18.2.1"],
      ["tsvs_peer_198_18_3_1", "198.18.3.1"],
    ]);
    assert.deepEqual(parseShowProtocols(reply, names), [
      { protocol: "tsvs_peer_198_18_2_1", neighbor: "198.18.2.1", state: "up", info: "Established" },
      {
        protocol: "tsvs_peer_198_18_3_1",
        neighbor: "198.18.3.1",
        state: "start",
        info: "Active Socket: Connection refused",
      },
    ]);
  });
});
