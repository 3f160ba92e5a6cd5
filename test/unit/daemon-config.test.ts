import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { formatList } from "../../src/cli/ipvsadm/format.js";
import type { IpvsadmBackend } from "../../src/cli/ipvsadm/run.js";
import { serviceSnapshot, zeroStats } from "../../src/control/snapshot.js";
import { IpvsCtl } from "../../src/core/ctl.js";
import { TsvsError } from "../../src/core/errors.js";
import { Timeouts } from "../../src/core/proto/timeouts.js";
import type { HaConfig } from "../../src/core/vrrp/config.js";
import { type ConfigDeps, DaemonConfig } from "../../src/daemon/config-runner.js";

// The daemon's --config path end to end minus the network: the file's services reach a real
// control core through ipvsadm -R batches; scripted checks drive removal and return; reload
// applies the difference and a broken file changes nothing.

const dir = mkdtempSync(join(tmpdir(), "tsvs-cfg-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function yaml(weight2: number, extra = ""): string {
  return `virtual_servers:
  - address: 198.18.0.100
    port: 80
    protocol: tcp
    scheduler: rr
    lb_kind: NAT
    delay_loop: 5
    sorry_server: 198.18.1.99:80
    real_servers:
      - address: 198.18.1.11
        port: 80
        check: { type: tcp, retry: 1, delay_before_retry: 1 }
      - address: 198.18.1.12
        port: 80
        weight: ${weight2}
        check: { type: tcp, retry: 1, delay_before_retry: 1 }
${extra}`;
}

function setup(file: string, extra: Pick<ConfigDeps, "reloadHa"> = {}) {
  const timeouts = new Timeouts();
  const ctl = new IpvsCtl({
    onSetTimeout: (t) => timeouts.set(t),
    onDestRemoved: () => {},
    onServiceRemoved: () => {},
    onDestQuiesced: () => {},
  });
  const backend: IpvsadmBackend = {
    apply: (c) => ctl.applyAll(c),
    snapshot: () => ({
      services: ctl.services().map(serviceSnapshot),
      connTabSize: 4096,
      total: zeroStats(),
      timeouts: timeouts.get(),
    }),
  };
  // Scripted world: which servers answer, and a manual clock for the runner's timers.
  const up = new Set(["198.18.1.11", "198.18.1.12"]);
  let now = 0;
  const timers: Array<{ at: number; fn: () => void; live: boolean }> = [];
  const logs: string[] = [];
  const scripts: string[][] = [];
  const cfg = new DaemonConfig(file, {
    runScript: (argv) => scripts.push(argv),
    apply: async (cmds) => backend.apply(cmds),
    log: {
      info: (_o, m) => logs.push(m),
      warn: (_o, m) => logs.push(`warn ${m}`),
      error: (_o, m) => logs.push(`error ${m}`),
    },
    runner: {
      timers: {
        setTimeout: (fn, ms) => {
          const t = { at: now + ms, fn, live: true };
          timers.push(t);
          return t;
        },
        clearTimeout: (h) => {
          (h as { live: boolean }).live = false;
        },
      },
      runCheck: async (_spec, target) =>
        up.has(target.host) ? { ok: true, detail: "connected" } : { ok: false, detail: "ECONNREFUSED" },
    },
    ...extra,
  });
  /** Runs due timers in time order until `ms` has passed, letting checks settle in between. */
  const advance = async (ms: number) => {
    const end = now + ms;
    for (;;) {
      const due = timers.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      due.live = false;
      now = due.at;
      due.fn();
      for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    }
    now = end;
  };
  const table = () =>
    formatList(backend.snapshot(false), null, {
      numeric: true,
      stats: false,
      rate: false,
      exact: false,
      thresholds: false,
      persistentConn: false,
      sort: true,
      conns: false,
      timeout: false,
      daemon: false,
      tunInfo: false,
    });
  return { cfg, up, advance, table, logs, ctl, scripts };
}

describe("daemon --config: services and health checks through ipvsadm -R", () => {
  it("installs the file's services, removes a failing server after its retries, and brings it back", async () => {
    const file = join(dir, "a.yaml");
    writeFileSync(file, yaml(2));
    const w = setup(file);
    await w.cfg.start();
    assert.match(w.table(), /198\.18\.1\.11:80 +Masq +1 /);
    assert.match(w.table(), /198\.18\.1\.12:80 +Masq +2 /);
    await w.advance(0); // the first checks run at once: all up

    w.up.delete("198.18.1.12");
    await w.advance(5_000); // first failure: retry
    assert.match(w.table(), /198\.18\.1\.12:80/);
    await w.advance(1_000); // failure after delay_before_retry: down
    assert.doesNotMatch(w.table(), /198\.18\.1\.12:80/);
    assert.ok(w.logs.includes("rs-down"));

    w.up.add("198.18.1.12");
    await w.advance(5_000);
    assert.match(w.table(), /198\.18\.1\.12:80 +Masq +2 /);
    assert.ok(w.logs.includes("rs-up"));
    assert.deepEqual(
      w.cfg.health().map((r) => [r.server, r.alive]),
      [
        ["198.18.1.11:80", true],
        ["198.18.1.12:80", true],
      ],
    );
    await w.cfg.stop();
  });

  it("puts the sorry server in when every real server is down", async () => {
    const file = join(dir, "b.yaml");
    writeFileSync(file, yaml(1));
    const w = setup(file);
    await w.cfg.start();
    w.up.clear();
    await w.advance(6_000);
    assert.match(w.table(), /198\.18\.1\.99:80/);
    assert.doesNotMatch(w.table(), /198\.18\.1\.1[12]:80/);
    await w.cfg.stop();
  });

  it("reloads as a difference, and keeps the running table when the new file is broken", async () => {
    const file = join(dir, "c.yaml");
    writeFileSync(file, yaml(2));
    const w = setup(file);
    await w.cfg.start();
    writeFileSync(file, yaml(5));
    assert.equal(await w.cfg.reload(), "");
    assert.match(w.table(), /198\.18\.1\.12:80 +Masq +5 /);

    writeFileSync(file, yaml(70000));
    const errors = await w.cfg.reload();
    assert.match(errors, /c\.yaml:\d+:\d+: .*weight/);
    assert.match(w.table(), /198\.18\.1\.12:80 +Masq +5 /);
    assert.ok(w.logs.includes("error configuration not reloaded"));
    await w.cfg.stop();
  });

  const vrrp = (prio: number) =>
    `vrrp:\n  instances:\n    - name: VI_1\n      interface: eth0\n      virtual_router_id: 51\n      priority: ${prio}\n      virtual_ipaddress: [198.18.0.100/24]\n`;

  it("hands the VRRP part to the VRRP side on reload, before the servers", async () => {
    const file = join(dir, "d.yaml");
    writeFileSync(file, yaml(2, vrrp(100)));
    const seen: Array<{ priority: number; table: string }> = [];
    const w = setup(file, {
      reloadHa: async (ha: HaConfig) => {
        seen.push({ priority: ha.instances[0]?.priority ?? 0, table: w.table() });
      },
    });
    await w.cfg.start();
    writeFileSync(file, yaml(4, vrrp(120)));
    assert.equal(await w.cfg.reload(), "");
    assert.equal(seen.length, 1);
    assert.equal(seen[0].priority, 120);
    assert.match(seen[0].table, /198\.18\.1\.12:80 +Masq +2 /, "the servers come after VRRP");
    assert.match(w.table(), /198\.18\.1\.12:80 +Masq +4 /);
    assert.ok(!w.logs.some((l) => /VRRP sections changed/.test(l)), w.logs.join("\n"));
    await w.cfg.stop();
  });

  it("applies neither part when the VRRP side refuses the reload, nor calls it for a broken file", async () => {
    const file = join(dir, "e.yaml");
    writeFileSync(file, yaml(2, vrrp(100)));
    let calls = 0;
    const w = setup(file, {
      reloadHa: async () => {
        calls++;
        throw new TsvsError("TSVS_ERR_HOST", "vrrp_instance VI_1: no interface eth0");
      },
    });
    await w.cfg.start();
    writeFileSync(file, yaml(4, vrrp(120)));
    assert.equal(await w.cfg.reload(), "vrrp_instance VI_1: no interface eth0");
    assert.equal(calls, 1);
    assert.match(w.table(), /198\.18\.1\.12:80 +Masq +2 /, "the servers stay as they were");
    assert.equal(w.cfg.reloads, 0);
    assert.ok(w.logs.includes("error configuration not reloaded"));

    writeFileSync(file, yaml(70000, vrrp(130)));
    assert.match(await w.cfg.reload(), /e\.yaml:\d+:\d+: .*weight/);
    assert.equal(calls, 1, "a file with errors never reaches VRRP");
    await w.cfg.stop();
  });

  it("runs reloads one after the other", async () => {
    const file = join(dir, "f.yaml");
    writeFileSync(file, yaml(2, vrrp(100)));
    const order: string[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const w = setup(file, {
      reloadHa: async (ha: HaConfig) => {
        order.push(`start ${ha.instances[0]?.priority}`);
        if (order.length === 1) await gate;
        order.push(`end ${ha.instances[0]?.priority}`);
      },
    });
    await w.cfg.start();
    writeFileSync(file, yaml(3, vrrp(110)));
    const first = w.cfg.reload();
    while (order.length === 0) await new Promise((r) => setImmediate(r));
    writeFileSync(file, yaml(4, vrrp(120)));
    const second = w.cfg.reload();
    await new Promise((r) => setImmediate(r));
    release();
    assert.deepEqual(await Promise.all([first, second]), ["", ""]);
    assert.deepEqual(order, ["start 110", "end 110", "start 120", "end 120"]);
    assert.match(w.table(), /198\.18\.1\.12:80 +Masq +4 /);
    await w.cfg.stop();
  });
});

describe("daemon --config: IPv6 local addresses", () => {
  const conf = (laddrs: string) => `virtual_servers:
  - address: 2001:db8::100
    port: 80
    lb_kind: FULLNAT
    local_addresses: [${laddrs}]
    real_servers:
      - { address: 2001:db8:1::11, port: 80 }
      - { address: 198.18.1.11, port: 80 }
`;

  it("installs them with the service (NAT64's IPv4 ones too), and a reload changes only the difference", async () => {
    const file = join(dir, "l6.yaml");
    writeFileSync(file, conf("2001:db8:ff::10, 2001:db8:ff::11, 198.18.2.1"));
    const w = setup(file);
    await w.cfg.start();
    const laddrs = () => {
      const [s] = w.ctl.services();
      return [...s.laddrs6, ...s.laddrs.map((a) => a.toString(16))];
    };
    assert.deepEqual(laddrs(), ["2001:db8:ff::10", "2001:db8:ff::11", "c6120201"]);
    writeFileSync(file, conf("2001:DB8:FF:0::11, 2001:db8:ff::12, 198.18.2.1"));
    assert.equal(await w.cfg.reload(), "");
    assert.deepEqual(laddrs(), ["2001:db8:ff::11", "2001:db8:ff::12", "c6120201"]);
    await w.cfg.stop();
  });
});

describe("daemon --config: keepalived's notify_up/notify_down and quorum_up/quorum_down", () => {
  it("runs a server's script when its verdict changes and the service's when its quorum does", async () => {
    const file = join(dir, "scripts.yaml");
    writeFileSync(
      file,
      `virtual_servers:
  - address: 198.18.0.100
    port: 80
    lb_kind: NAT
    delay_loop: 5
    quorum: 2
    omega: true
    quorum_up: /usr/local/bin/quorum.sh up
    quorum_down: "/usr/local/bin/quorum.sh 'down now'"
    real_servers:
      - address: 198.18.1.11
        port: 80
        check: { type: tcp, retry: 0 }
      - address: 198.18.1.12
        port: 80
        notify_up: /usr/local/bin/rs.sh up
        notify_down: /usr/local/bin/rs.sh down
        check: { type: tcp, retry: 0 }
`,
    );
    const w = setup(file);
    await w.cfg.start();
    await w.advance(0);
    assert.deepEqual(w.scripts, [], "nothing changed at start: no script");

    w.up.delete("198.18.1.12");
    await w.advance(5_000); // down: weight sum 1 < quorum 2
    assert.deepEqual(w.scripts, [
      ["/usr/local/bin/rs.sh", "down"],
      ["/usr/local/bin/quorum.sh", "down now"],
    ]);

    w.up.add("198.18.1.12");
    await w.advance(5_000);
    assert.deepEqual(w.scripts.slice(2), [
      ["/usr/local/bin/rs.sh", "up"],
      ["/usr/local/bin/quorum.sh", "up"],
    ]);

    // omega: the shutdown reports the live servers and the quorum down, scripts included.
    await w.cfg.stop();
    assert.deepEqual(w.scripts.slice(4), [
      ["/usr/local/bin/rs.sh", "down"],
      ["/usr/local/bin/quorum.sh", "down now"],
    ]);
  });
});
