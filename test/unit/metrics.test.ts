// The daemon's /metrics from hand-made snapshots, read back with a Prometheus text-format parser:
// node_ipvs_* exactly as node_exporter's ipvs collector names, types, helps and labels them
// (collector/ipvs_linux.go, fixture e2e-output.txt), and the tsvs_* families.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import {
  type DestSnapshot,
  type ServiceSnapshot,
  type StatsSnapshot,
  type TableSnapshot,
  zeroStats,
} from "../../src/control/snapshot.js";
import { parseIPv4 } from "../../src/core/addr.js";
import { metricsText } from "../../src/daemon/metrics.js";
import type { DaemonStatus } from "../../src/daemon/protocol.js";
import { destSnap, serviceSnap } from "../support/snapshots.js";

interface Sample {
  value: string;
  labels?: Record<string, string>;
}
interface Family {
  name: string;
  help: string;
  type: string;
  metrics: Sample[];
}
const parse = createRequire(import.meta.url)("parse-prometheus-text-format") as (text: string) => Family[];

const a = (s: string): number => parseIPv4(s) ?? 0;

function stats(
  conns: number,
  inpkts: number,
  outpkts: number,
  inbytes: number,
  outbytes: number,
): StatsSnapshot {
  return { ...zeroStats(), conns, inpkts, outpkts, inbytes, outbytes };
}

function dest(
  addr: string,
  port: number,
  weight: number,
  active: number,
  inact: number,
  st = zeroStats(),
): DestSnapshot {
  return destSnap(addr, port, { weight, activeConns: active, inactConns: inact, stats: st });
}

function service(
  s: { protocol: number; addr: string; port: number; fwmark?: number },
  dests: DestSnapshot[],
  st = zeroStats(),
): ServiceSnapshot {
  return serviceSnap(s, dests, { stats: st });
}

// node_exporter's fixture (/proc/net/ip_vs in collector/fixtures), as a tsvs table.
const TABLE: TableSnapshot = {
  connTabSize: 4096,
  timeouts: { tcp: 900, tcpFin: 120, udp: 300 },
  services: [
    service(
      { protocol: 6, addr: "192.168.0.22", port: 3306 },
      [
        dest("192.168.82.22", 3306, 100, 248, 2, stats(3, 30, 20, 3000, 2000)),
        dest("192.168.83.24", 3306, 100, 248, 2),
        dest("192.168.83.21", 3306, 100, 248, 1),
      ],
      stats(7, 70, 50, 7000, 5000),
    ),
    service({ protocol: 6, addr: "192.168.0.57", port: 3306 }, [
      dest("192.168.84.22", 3306, 0, 0, 0),
      dest("192.168.82.21", 3306, 100, 1499, 0),
      dest("192.168.50.21", 3306, 100, 1498, 0),
    ]),
    service({ protocol: 0, addr: "0.0.0.0", port: 0, fwmark: 0x10001000 }, [
      dest("192.168.50.26", 3306, 20, 64, 1),
      dest("192.168.49.32", 3306, 100, 321, 5),
    ]),
    service({ protocol: 17, addr: "10.0.0.1", port: 53 }, [dest("10.0.1.1", 53, 1, 0, 7)]),
  ],
  total: stats(23765872, 3811989221, 0, 89991519156915, 0),
};

const STATUS: DaemonStatus = {
  interfaces: [
    {
      name: "eth0",
      ifindex: 2,
      mac: "02:00:00:00:00:01",
      mtu: 1500,
      addrs: [],
      rxFrames: 1000,
      txFrames: 900,
      rxTruncated: 0,
      rxAggregates: 5,
      txAggregates: 4,
      txDropped: 1,
      txErrors: 0,
      kernelDrops: 2,
    },
  ],
  loops: 10,
  batches: 8,
  busyMs: 1500,
  uptimeMs: 60000,
  services: 4,
  dests: 9,
  connections: 42,
  counters: {},
  drops: { no_service: 3, bad_csum: 1 },
  version: 2,
  pid: 1,
  control: "/run/tsvs/control.sock",
  netns: "net:[1]",
  nft: { table: "netdev tsvs", vips: 1, natDests: 0, updates: 0 },
  worker: { alive: true, restarts: 0 },
  config: {
    file: "/etc/tsvs.yaml",
    reloads: 0,
    health: [
      {
        service: "192.168.0.22:3306",
        server: "192.168.82.22:3306",
        alive: true,
        failures: 0,
        checksOk: 40,
        checksFailed: 2,
        wentUp: 1,
        wentDown: 0,
      },
      {
        service: "192.168.0.22:3306",
        server: "192.168.83.24:3306",
        alive: false,
        failures: 3,
        checksOk: 7,
        checksFailed: 9,
        wentUp: 2,
        wentDown: 3,
      },
    ],
  },
};

async function families(table = TABLE, status = STATUS): Promise<Map<string, Family>> {
  return new Map(parse(await metricsText(table, status)).map((f) => [f.name, f]));
}

function value(f: Family | undefined, labels: Record<string, string> = {}): number {
  assert.ok(f !== undefined);
  const m = f.metrics.filter(
    (x) => JSON.stringify(sorted(x.labels ?? {})) === JSON.stringify(sorted(labels)),
  );
  assert.equal(m.length, 1, `${f.name}${JSON.stringify(labels)}: ${JSON.stringify(f.metrics)}`);
  return Number(m[0].value);
}

function sorted(l: Record<string, string>): [string, string][] {
  return Object.entries(l).sort(([x], [y]) => (x < y ? -1 : 1));
}

describe("/metrics: node_exporter's ipvs collector", () => {
  it("names, types and HELP texts are node_exporter's", async () => {
    const fams = await families();
    const want: [string, string, string][] = [
      ["node_ipvs_connections_total", "COUNTER", "The total number of connections made."],
      ["node_ipvs_incoming_packets_total", "COUNTER", "The total number of incoming packets."],
      ["node_ipvs_outgoing_packets_total", "COUNTER", "The total number of outgoing packets."],
      ["node_ipvs_incoming_bytes_total", "COUNTER", "The total amount of incoming data."],
      ["node_ipvs_outgoing_bytes_total", "COUNTER", "The total amount of outgoing data."],
      [
        "node_ipvs_backend_connections_active",
        "GAUGE",
        "The current active connections by local and remote address.",
      ],
      [
        "node_ipvs_backend_connections_inactive",
        "GAUGE",
        "The current inactive connections by local and remote address.",
      ],
      ["node_ipvs_backend_weight", "GAUGE", "The current backend weight by local and remote address."],
    ];
    for (const [name, type, help] of want) {
      const f = fams.get(name);
      assert.ok(f !== undefined, name);
      assert.deepEqual([f.type, f.help], [type, help], name);
    }
    assert.deepEqual(
      [...fams.keys()].filter((n) => n.startsWith("node_")).sort(),
      want.map((w) => w[0]).sort(),
    );
  });

  it("the totals are unlabelled and equal the table's total stats", async () => {
    const fams = await families();
    assert.equal(value(fams.get("node_ipvs_connections_total")), 23765872);
    assert.equal(value(fams.get("node_ipvs_incoming_packets_total")), 3811989221);
    assert.equal(value(fams.get("node_ipvs_incoming_bytes_total")), 89991519156915);
    assert.equal(value(fams.get("node_ipvs_outgoing_bytes_total")), 0);
  });

  it("backend series carry exactly the six labels, values as node_exporter's fixture", async () => {
    const fams = await families();
    const active = fams.get("node_ipvs_backend_connections_active");
    assert.ok(active !== undefined);
    for (const m of active.metrics)
      assert.deepEqual(Object.keys(m.labels ?? {}).sort(), [
        "local_address",
        "local_mark",
        "local_port",
        "proto",
        "remote_address",
        "remote_port",
      ]);
    assert.equal(active.metrics.length, 9);
    const tcp = {
      local_address: "192.168.0.22",
      local_mark: "",
      local_port: "3306",
      proto: "TCP",
      remote_address: "192.168.82.22",
      remote_port: "3306",
    };
    assert.equal(value(active, tcp), 248);
    assert.equal(value(fams.get("node_ipvs_backend_connections_inactive"), tcp), 2);
    assert.equal(value(fams.get("node_ipvs_backend_weight"), tcp), 100);
    const zero = { ...tcp, local_address: "192.168.0.57", remote_address: "192.168.84.22" };
    assert.equal(value(fams.get("node_ipvs_backend_weight"), zero), 0);
    const udp = {
      local_address: "10.0.0.1",
      local_mark: "",
      local_port: "53",
      proto: "UDP",
      remote_address: "10.0.1.1",
      remote_port: "53",
    };
    assert.equal(value(fams.get("node_ipvs_backend_connections_inactive"), udp), 7);
  });

  it("a fwmark service: local_address empty, local_port 0, proto FWM, local_mark as /proc prints it (%08X)", async () => {
    const fams = await families();
    const fwm = {
      local_address: "",
      local_mark: "10001000",
      local_port: "0",
      proto: "FWM",
      remote_address: "192.168.49.32",
      remote_port: "3306",
    };
    assert.equal(value(fams.get("node_ipvs_backend_connections_active"), fwm), 321);
    assert.equal(value(fams.get("node_ipvs_backend_connections_inactive"), fwm), 5);
    assert.equal(
      value(fams.get("node_ipvs_backend_weight"), { ...fwm, remote_address: "192.168.50.26" }),
      20,
    );
    const small: TableSnapshot = {
      ...TABLE,
      services: [
        service({ protocol: 0, addr: "0.0.0.0", port: 0, fwmark: 10 }, [dest("10.0.1.1", 80, 1, 0, 0)]),
      ],
    };
    const f = (await families(small)).get("node_ipvs_backend_weight");
    assert.equal(f?.metrics[0].labels?.local_mark, "0000000A");
  });

  it("IPv6: addresses as Go's net.IP.String() prints them (RFC 5952, a v4-mapped one dotted)", async () => {
    const v6 = service({ protocol: 6, addr: "0.0.0.0", port: 443 }, [
      { ...dest("0.0.0.0", 443, 5, 7, 1), af: 6, addr6: "2001:db8:1::11" },
      { ...dest("0.0.0.0", 443, 1, 2, 0), af: 6, addr6: "::ffff:198.18.1.12" },
    ]);
    const table: TableSnapshot = { ...TABLE, services: [{ ...v6, af: 6, addr6: "2001:db8::100" }] };
    const fams = await families(table);
    const active = fams.get("node_ipvs_backend_connections_active");
    const l = { local_address: "2001:db8::100", local_port: "443", proto: "TCP", local_mark: "" };
    assert.equal(value(active, { ...l, remote_address: "2001:db8:1::11", remote_port: "443" }), 7);
    assert.equal(value(active, { ...l, remote_address: "198.18.1.12", remote_port: "443" }), 2);
  });

  it("colliding label tuples are summed, as node_exporter does", async () => {
    const twice: TableSnapshot = {
      ...TABLE,
      services: [
        service({ protocol: 6, addr: "10.0.0.1", port: 80 }, [dest("10.0.1.1", 80, 2, 3, 4)]),
        service({ protocol: 6, addr: "10.0.0.1", port: 80 }, [dest("10.0.1.1", 80, 5, 6, 7)]),
      ],
    };
    const fams = await families(twice);
    const l = {
      local_address: "10.0.0.1",
      local_mark: "",
      local_port: "80",
      proto: "TCP",
      remote_address: "10.0.1.1",
      remote_port: "80",
    };
    assert.equal(value(fams.get("node_ipvs_backend_weight"), l), 7);
    assert.equal(value(fams.get("node_ipvs_backend_connections_active"), l), 9);
    assert.equal(value(fams.get("node_ipvs_backend_connections_inactive"), l), 11);
  });
});

describe("/metrics: tsvs_* families", () => {
  it("per-service and per-backend counters (ipvsadm -L --stats)", async () => {
    const fams = await families();
    const svc = { local_address: "192.168.0.22", local_mark: "", local_port: "3306", proto: "TCP" };
    assert.equal(fams.get("tsvs_service_connections_total")?.type, "COUNTER");
    assert.equal(value(fams.get("tsvs_service_connections_total"), svc), 7);
    assert.equal(value(fams.get("tsvs_service_outgoing_bytes_total"), svc), 5000);
    const be = { ...svc, remote_address: "192.168.82.22", remote_port: "3306" };
    assert.equal(value(fams.get("tsvs_backend_connections_total"), be), 3);
    assert.equal(value(fams.get("tsvs_backend_incoming_packets_total"), be), 30);
    assert.equal(value(fams.get("tsvs_backend_outgoing_packets_total"), be), 20);
    assert.equal(value(fams.get("tsvs_backend_incoming_bytes_total"), be), 3000);
  });

  it('access lists: hits per rule for short lists, one rule="*" series for long ones; not allowed; rate limited', async () => {
    const small = service({ protocol: 6, addr: "10.0.0.1", port: 80 }, []);
    small.deny = [
      { rule: "203.0.113.0/24", hits: 5 },
      { rule: "2001:db8::/32", hits: 0 },
    ];
    small.allow = [{ rule: "198.51.100.1", hits: 2 }];
    small.notAllowed = 3;
    small.connLimit = { rate: 10, burst: 20, prefix4: 32, prefix6: 64, limited: 4 };
    const big = service({ protocol: 6, addr: "10.0.0.2", port: 80 }, []);
    big.deny = Array.from({ length: 1000 }, (_, i) => ({ rule: `10.${i >> 8}.${i & 255}.0/24`, hits: 1 }));
    const fams = await families({ ...TABLE, services: [small, big] });
    const l1 = { local_address: "10.0.0.1", local_mark: "", local_port: "80", proto: "TCP" };
    const f = fams.get("tsvs_acl_hits_total");
    assert.equal(value(f, { ...l1, list: "deny", rule: "203.0.113.0/24" }), 5);
    assert.equal(value(f, { ...l1, list: "deny", rule: "2001:db8::/32" }), 0);
    assert.equal(value(f, { ...l1, list: "allow", rule: "198.51.100.1" }), 2);
    const l2 = { ...l1, local_address: "10.0.0.2" };
    assert.equal(value(f, { ...l2, list: "deny", rule: "*" }), 1000);
    assert.equal(f?.metrics.length, 4, "1000 rules: one series");
    assert.equal(value(fams.get("tsvs_acl_not_allowed_total"), l1), 3);
    assert.equal(value(fams.get("tsvs_conn_rate_limited_total"), l1), 4);
  });

  it("drops by reason, interfaces, workers, table size, health", async () => {
    const fams = await families();
    assert.equal(fams.get("tsvs_drops_total")?.type, "COUNTER");
    assert.equal(value(fams.get("tsvs_drops_total"), { reason: "no_service" }), 3);
    assert.equal(value(fams.get("tsvs_drops_total"), { reason: "bad_csum" }), 1);
    assert.equal(value(fams.get("tsvs_interface_rx_frames_total"), { interface: "eth0" }), 1000);
    assert.equal(value(fams.get("tsvs_interface_tx_frames_total"), { interface: "eth0" }), 900);
    assert.equal(value(fams.get("tsvs_interface_kernel_drops_total"), { interface: "eth0" }), 2);
    assert.equal(value(fams.get("tsvs_worker_busy_seconds_total")), 1.5);
    assert.equal(fams.get("tsvs_connections")?.type, "GAUGE");
    assert.equal(value(fams.get("tsvs_connections")), 42);
    assert.equal(value(fams.get("tsvs_connection_hash_size")), 4096);
    const up = fams.get("tsvs_realserver_up");
    assert.equal(value(up, { service: "192.168.0.22:3306", server: "192.168.82.22:3306" }), 1);
    assert.equal(value(up, { service: "192.168.0.22:3306", server: "192.168.83.24:3306" }), 0);
    const rs2 = { service: "192.168.0.22:3306", server: "192.168.83.24:3306" };
    assert.equal(fams.get("tsvs_realserver_checks_total")?.type, "COUNTER");
    assert.equal(value(fams.get("tsvs_realserver_checks_total"), { ...rs2, result: "ok" }), 7);
    assert.equal(value(fams.get("tsvs_realserver_checks_total"), { ...rs2, result: "failed" }), 9);
    assert.equal(value(fams.get("tsvs_realserver_transitions_total"), { ...rs2, to: "up" }), 2);
    assert.equal(value(fams.get("tsvs_realserver_transitions_total"), { ...rs2, to: "down" }), 3);
  });

  it("VRRP state in keepalived's numbering and sync counters by role", async () => {
    const vrrp = (name: string, state: "INIT" | "BACKUP" | "MASTER" | "FAULT", vrid: number) => ({
      name,
      iface: "eth0",
      vrid,
      version: 2,
      state,
      priority: 100,
      effectivePriority: 100,
      master: null,
      advertIntMs: 1000,
      masterAdvertIntMs: 1000,
      transitions: 2,
      lastReason: "",
      addresses: [],
      advertsRx: 10,
      advertsTx: 20,
      priZeroRx: 0,
      priZeroTx: 0,
      becameMaster: 0,
      releasedMaster: 0,
      addrListErrors: 0,
      garpDelayS: 5,
      drops: {},
    });
    const st: DaemonStatus = {
      ...STATUS,
      vrrp: [
        vrrp("VI_1", "MASTER", 51),
        vrrp("VI_2", "BACKUP", 52),
        vrrp("VI_3", "FAULT", 53),
        vrrp("VI_4", "INIT", 54),
      ],
      sync: [
        {
          role: "master",
          iface: "eth1",
          syncid: 7,
          maxlen: 1472,
          group: a("224.0.0.81"),
          port: 8848,
          ttl: 1,
          messagesSent: 5,
          messagesReceived: 0,
          connsSent: 50,
          connsReceived: 0,
          errors: 1,
          drops: { malformed: 2 },
        },
      ],
    };
    const fams = await families(TABLE, st);
    const state = fams.get("tsvs_vrrp_state");
    assert.equal(state?.type, "GAUGE");
    const want: [string, number, number][] = [
      ["VI_1", 51, 2],
      ["VI_2", 52, 1],
      ["VI_3", 53, 3],
      ["VI_4", 54, 0],
    ];
    for (const [instance, vrid, n] of want)
      assert.equal(value(state, { instance, iface: "eth0", vrid: String(vrid) }), n, instance);
    const l = { role: "master", iface: "eth1", syncid: "7" };
    assert.equal(value(fams.get("tsvs_sync_messages_sent_total"), l), 5);
    assert.equal(value(fams.get("tsvs_sync_connections_sent_total"), l), 50);
    assert.equal(value(fams.get("tsvs_sync_errors_total"), l), 1);
    assert.equal(value(fams.get("tsvs_sync_drops_total"), { ...l, reason: "malformed" }), 2);
  });

  it("keepalived-exporter's families: names, labels (state as a name), one state series per address", async () => {
    const st: DaemonStatus = {
      ...STATUS,
      vrrp: [
        {
          name: "VI_1",
          iface: "eth0",
          vrid: 51,
          version: 2,
          state: "MASTER",
          priority: 150,
          effectivePriority: 150,
          master: "198.18.0.2",
          advertIntMs: 1000,
          masterAdvertIntMs: 1000,
          transitions: 2,
          lastReason: "",
          addresses: ["198.18.0.100/32", "198.18.0.101/24"],
          advertsRx: 10,
          advertsTx: 20,
          priZeroRx: 1,
          priZeroTx: 2,
          becameMaster: 3,
          releasedMaster: 4,
          addrListErrors: 5,
          garpDelayS: 5,
          drops: { length: 6, interval: 7, ttl: 8, type: 9, auth_type: 10, auth_mismatch: 11, auth: 12 },
        },
      ],
      vrrpScripts: [
        { name: "chk_nginx", good: true, running: false },
        { name: "chk_disk", good: false, running: true },
      ],
    };
    const fams = await families(TABLE, st);
    assert.equal(value(fams.get("keepalived_up")), 1);
    const state = fams.get("keepalived_vrrp_state");
    assert.equal(state?.help, "State of vrrp");
    // keepalived-exporter's ip_address: keepalived's ipaddresstos, "/prefix" kept unless /32.
    for (const ip of ["198.18.0.100", "198.18.0.101/24"])
      assert.equal(value(state, { iname: "VI_1", intf: "eth0", vrid: "51", ip_address: ip }), 2);
    const l = { iname: "VI_1", intf: "eth0", vrid: "51", state: "MASTER" };
    const want: [string, number][] = [
      ["keepalived_advertisements_received_total", 10],
      ["keepalived_advertisements_sent_total", 20],
      ["keepalived_become_master_total", 3],
      ["keepalived_release_master_total", 4],
      ["keepalived_packet_length_errors_total", 6],
      ["keepalived_advertisements_interval_errors_total", 7],
      ["keepalived_ip_ttl_errors_total", 8],
      ["keepalived_invalid_type_received_total", 9],
      ["keepalived_address_list_errors_total", 5],
      ["keepalived_authentication_invalid_total", 10],
      ["keepalived_authentication_mismatch_total", 11],
      ["keepalived_authentication_failure_total", 12],
      ["keepalived_priority_zero_received_total", 1],
      ["keepalived_priority_zero_sent_total", 2],
      ["keepalived_gratuitous_arp_delay_total", 5],
    ];
    for (const [name, n] of want) {
      assert.equal(fams.get(name)?.type, "COUNTER", name);
      assert.equal(value(fams.get(name), l), n, name);
    }
    assert.equal(value(fams.get("keepalived_script_status"), { name: "chk_nginx" }), 1);
    assert.equal(value(fams.get("keepalived_script_status"), { name: "chk_disk" }), 0);
    assert.equal(value(fams.get("keepalived_script_state"), { name: "chk_disk" }), 1);
  });

  it("keepalived_vrrp_state of an IPv6 instance: ip_address as keepalived prints it (inet_ntop, /128 left out)", async () => {
    const st: DaemonStatus = {
      ...STATUS,
      vrrp: [
        {
          name: "VI_6",
          iface: "eth0",
          vrid: 61,
          family: 6,
          version: 3,
          state: "BACKUP",
          priority: 100,
          effectivePriority: 100,
          master: "fe80::5054:ff:feaa:1",
          advertIntMs: 1000,
          masterAdvertIntMs: 1000,
          transitions: 1,
          lastReason: "",
          addresses: ["fe80::61/64", "fd74:7376:6::100/128"],
          advertsRx: 0,
          advertsTx: 0,
          priZeroRx: 0,
          priZeroTx: 0,
          becameMaster: 0,
          releasedMaster: 0,
          addrListErrors: 0,
          garpDelayS: 5,
          drops: {},
        },
      ],
    };
    const state = (await families(TABLE, st)).get("keepalived_vrrp_state");
    for (const ip of ["fe80::61/64", "fd74:7376:6::100"])
      assert.equal(value(state, { iname: "VI_6", intf: "eth0", vrid: "61", ip_address: ip }), 1, ip);
  });

  it("no VRRP, no sync, no --config: the families are there, without series", async () => {
    const { config: _c, ...bare } = STATUS;
    const fams = await families(TABLE, bare);
    for (const n of ["tsvs_vrrp_state", "tsvs_sync_messages_sent_total", "tsvs_realserver_up"])
      assert.deepEqual(fams.get(n)?.metrics ?? [], [], n);
    // keepalived_up 0 would read as "keepalived is down": without VRRP there is no keepalived family.
    assert.equal(fams.get("keepalived_up"), undefined);
  });
});
