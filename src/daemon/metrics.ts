// The daemon's /metrics (docs/daemon.md "Metrics"), built from one table snapshot and one status:
// pure, so that a test builds it from hand-made snapshots and no scrape touches the data path.
//
// node_ipvs_*: exactly node_exporter's ipvs collector (collector/ipvs_linux.go): the five totals
// (/proc/net/ip_vs_stats: unlabelled counters) and three per-backend gauges with the labels
// local_address, local_port, remote_address, remote_port, proto, local_mark. A fwmark service has
// local_address "", local_port "0", proto "FWM" and local_mark the mark as /proc/net/ip_vs prints it
// (%08X); other services have local_mark "". Series whose labels collide are summed, as there.
// Dashboards and alerts written for node_exporter on a kernel director work unchanged.
//
// tsvs_*: what only tsvs knows, or what /proc/net/ip_vs does not carry (the per-service and
// per-backend counters of `ipvsadm -L --stats`). Counters count since the daemon started or since
// the last `ipvsadm -Z`, which Prometheus sees as a counter reset.

import { Counter, Gauge, Registry } from "prom-client";
import type { ServiceSnapshot, StatsSnapshot, TableSnapshot } from "../control/snapshot.js";
import { formatIPv4 } from "../core/addr.js";
import { VRRP_STATE_NUM } from "../core/vrrp/config.js";
import type { DaemonStatus } from "./protocol.js";
import type { VrrpInstanceStatus } from "./vrrp.js";

/** node_exporter's backend labels, in its order. */
export const IPVS_BACKEND_LABELS = [
  "local_address",
  "local_port",
  "remote_address",
  "remote_port",
  "proto",
  "local_mark",
] as const;
const SERVICE_LABELS = ["local_address", "local_port", "proto", "local_mark"] as const;

type Labels = Record<string, string>;

const PROTO_NAME: Readonly<Record<number, string>> = { 6: "TCP", 17: "UDP", 132: "SCTP" };

/** The five ipvs counters: field of StatsSnapshot, name part, and node_exporter's HELP text. */
const IPVS_TOTALS: ReadonlyArray<{ field: keyof StatsSnapshot; name: string; help: string }> = [
  { field: "conns", name: "connections_total", help: "The total number of connections made." },
  { field: "inpkts", name: "incoming_packets_total", help: "The total number of incoming packets." },
  { field: "outpkts", name: "outgoing_packets_total", help: "The total number of outgoing packets." },
  { field: "inbytes", name: "incoming_bytes_total", help: "The total amount of incoming data." },
  { field: "outbytes", name: "outgoing_bytes_total", help: "The total amount of outgoing data." },
];

/**
 * An address as node_exporter prints it: Go's net.IP.String(), which for IPv6 is RFC 5952's text —
 * inet_ntop's, except that an IPv4-mapped address prints as a dotted quad (net.IP.To4 succeeds).
 */
function addrLabel(a: { addr: number; addr6?: string }): string {
  if (a.addr6 === undefined) return formatIPv4(a.addr);
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a.addr6);
  return m !== null ? m[1] : a.addr6;
}

/** The service half of the labels, with node_exporter's fwmark convention. */
export function serviceLabels(s: ServiceSnapshot): Labels {
  if (s.fwmark !== 0)
    return {
      local_address: "",
      local_port: "0",
      proto: "FWM",
      local_mark: (s.fwmark >>> 0).toString(16).toUpperCase().padStart(8, "0"),
    };
  return {
    local_address: addrLabel(s),
    local_port: String(s.port),
    proto: PROTO_NAME[s.protocol] ?? String(s.protocol),
    local_mark: "",
  };
}

function counter(reg: Registry, name: string, help: string, labelNames: readonly string[] = []): Counter {
  return new Counter({ name, help, labelNames, registers: [reg] });
}

function gauge(reg: Registry, name: string, help: string, labelNames: readonly string[] = []): Gauge {
  return new Gauge({ name, help, labelNames, registers: [reg] });
}

function ipvsMetrics(reg: Registry, table: TableSnapshot): void {
  for (const t of IPVS_TOTALS) counter(reg, `node_ipvs_${t.name}`, t.help).inc(table.total[t.field]);
  const active = gauge(
    reg,
    "node_ipvs_backend_connections_active",
    "The current active connections by local and remote address.",
    IPVS_BACKEND_LABELS,
  );
  const inactive = gauge(
    reg,
    "node_ipvs_backend_connections_inactive",
    "The current inactive connections by local and remote address.",
    IPVS_BACKEND_LABELS,
  );
  const weight = gauge(
    reg,
    "node_ipvs_backend_weight",
    "The current backend weight by local and remote address.",
    IPVS_BACKEND_LABELS,
  );
  const svcTotals = IPVS_TOTALS.map((t) => ({
    t,
    c: counter(reg, `tsvs_service_${t.name}`, `Per virtual service: ${lower(t.help)}`, SERVICE_LABELS),
  }));
  const destTotals = IPVS_TOTALS.map((t) => ({
    t,
    c: counter(reg, `tsvs_backend_${t.name}`, `Per real server: ${lower(t.help)}`, IPVS_BACKEND_LABELS),
  }));
  const persistent = gauge(
    reg,
    "tsvs_backend_connections_persistent",
    "The current persistence templates by local and remote address.",
    IPVS_BACKEND_LABELS,
  );
  const aclHits = counter(
    reg,
    "tsvs_acl_hits_total",
    `New connections an access-list rule matched (deny: refused; allow: let in), per rule for lists of up to ${ACL_RULE_SERIES} rules, rule="*" for the sum of a longer list.`,
    [...SERVICE_LABELS, "list", "rule"],
  );
  const notAllowed = counter(
    reg,
    "tsvs_acl_not_allowed_total",
    "New connections refused because the service's allow list did not hold the source.",
    SERVICE_LABELS,
  );
  const limited = counter(
    reg,
    "tsvs_conn_rate_limited_total",
    "New connections refused by the service's per-source rate limit.",
    SERVICE_LABELS,
  );
  for (const s of table.services) {
    const sl = serviceLabels(s);
    for (const { t, c } of svcTotals) c.inc(sl, s.stats[t.field]);
    for (const list of ["deny", "allow"] as const) {
      const rules = s[list] ?? [];
      if (rules.length <= ACL_RULE_SERIES)
        for (const r of rules) aclHits.inc({ ...sl, list, rule: r.rule }, r.hits);
      else
        aclHits.inc(
          { ...sl, list, rule: "*" },
          rules.reduce((n, r) => n + r.hits, 0),
        );
    }
    if (s.notAllowed !== undefined) notAllowed.inc(sl, s.notAllowed);
    if (s.connLimit !== undefined) limited.inc(sl, s.connLimit.limited);
    for (const d of s.dests) {
      // inc, not set: colliding label tuples add up, as node_exporter sums them.
      const l: Labels = { ...sl, remote_address: addrLabel(d), remote_port: String(d.port) };
      active.inc(l, d.activeConns);
      inactive.inc(l, d.inactConns);
      weight.inc(l, d.weight);
      persistent.inc(l, d.persistConns);
      for (const { t, c } of destTotals) c.inc(l, d.stats[t.field]);
    }
  }
  gauge(reg, "tsvs_connection_hash_size", "Buckets of the connection hash (ipvsadm's size=N).").set(
    table.connTabSize,
  );
}

/** Lists longer than this have one tsvs_acl_hits_total series (rule="*"): cardinality stays bounded. */
export const ACL_RULE_SERIES = 32;

function lower(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

function dataPlaneMetrics(reg: Registry, st: DaemonStatus): void {
  gauge(reg, "tsvs_connections", "Entries in the connection table, all workers together.").set(
    st.connections,
  );
  gauge(reg, "tsvs_services", "Virtual services in the table.").set(st.services);
  gauge(reg, "tsvs_backends", "Real servers in the table, all services together.").set(st.dests);
  counter(reg, "tsvs_worker_busy_seconds_total", "Time the data-plane workers spent on frames.").inc(
    st.busyMs / 1000,
  );
  counter(reg, "tsvs_worker_batches_total", "Batches of frames the data-plane workers handled.").inc(
    st.batches,
  );
  const drops = counter(reg, "tsvs_drops_total", "Frames the data plane dropped, by reason.", ["reason"]);
  for (const [reason, n] of Object.entries(st.drops)) drops.inc({ reason }, n);
  defenseMetrics(reg, st);
  synproxyMetrics(reg, st);
  const per: ReadonlyArray<{
    name: string;
    help: string;
    get: (i: DaemonStatus["interfaces"][0]) => number;
  }> = [
    { name: "rx_frames", help: "Frames received", get: (i) => i.rxFrames },
    { name: "tx_frames", help: "Frames sent", get: (i) => i.txFrames },
    { name: "rx_aggregates", help: "GRO/GSO aggregates received whole", get: (i) => i.rxAggregates ?? 0 },
    { name: "tx_aggregates", help: "Frames sent as GSO aggregates", get: (i) => i.txAggregates ?? 0 },
    { name: "rx_truncated", help: "Frames received truncated", get: (i) => i.rxTruncated },
    { name: "tx_dropped", help: "Frames the send path dropped", get: (i) => i.txDropped },
    { name: "tx_errors", help: "Send errors", get: (i) => i.txErrors },
    { name: "kernel_drops", help: "Frames the kernel dropped before the socket", get: (i) => i.kernelDrops },
  ];
  for (const p of per) {
    const c = counter(reg, `tsvs_interface_${p.name}_total`, `${p.help}, per served interface.`, [
      "interface",
    ]);
    for (const i of st.interfaces) c.inc({ interface: i.name }, p.get(i));
  }
  // Which backend serves each interface (--io xdp may have fallen back to mmsg on some).
  const io = gauge(reg, "tsvs_interface_info", "Served interface, with its packet I/O backend (value 1).", [
    "interface",
    "io",
  ]);
  for (const i of st.interfaces) if (i.io !== undefined) io.set({ interface: i.name, io: i.io }, 1);
}

/** The SYN proxy (core/synproxy.ts), all workers together (their counters are summed). */
function synproxyMetrics(reg: Registry, st: DaemonStatus): void {
  const c = st.counters;
  counter(reg, "tsvs_synproxy_syn_acks_total", "SYN-ACKs with a SYN cookie the SYN proxy sent.").inc(
    c.synproxySynAcks ?? 0,
  );
  const acks = counter(
    reg,
    "tsvs_synproxy_acks_total",
    "Clients' handshake ACKs by their cookie: valid (a connection made) or invalid (answered with a reset).",
    ["result"],
  );
  acks.inc({ result: "valid" }, c.synproxyAcksValid ?? 0);
  acks.inc({ result: "invalid" }, c.synproxyAcksInvalid ?? 0);
  counter(
    reg,
    "tsvs_synproxy_connections_opened_total",
    "SYN-proxy connections whose real server completed the handshake.",
  ).inc(c.synproxyConnsOpened ?? 0);
  counter(reg, "tsvs_synproxy_rs_syn_retries_total", "SYNs the SYN proxy sent to real servers again.").inc(
    c.synproxySynRetries ?? 0,
  );
}

/** The defence against table exhaustion (core/defense.ts): modes, availmem, what it removed. */
function defenseMetrics(reg: Registry, st: DaemonStatus): void {
  const d = st.defense;
  if (d === undefined) return;
  const mode = gauge(
    reg,
    "tsvs_defense_mode",
    "Defence strategy mode: 0 off, 1 auto (idle), 2 auto (active), 3 always (the sysctl's value).",
    ["strategy"],
  );
  mode.set({ strategy: "drop_entry" }, d.dropEntry);
  mode.set({ strategy: "drop_packet" }, d.dropPacket);
  mode.set({ strategy: "secure_tcp" }, d.secureTcp);
  gauge(
    reg,
    "tsvs_defense_availmem_pages",
    "The defence's availmem: free connection-table entries, in 4 KiB pages.",
  ).set(d.availmem);
  gauge(
    reg,
    "tsvs_defense_amemthresh_pages",
    "The amemthresh sysctl: the defence acts while availmem is below it.",
  ).set(d.amemthresh);
  counter(reg, "tsvs_defense_entries_dropped_total", "Connection entries drop_entry removed.").inc(
    d.entriesDropped,
  );
  counter(
    reg,
    "tsvs_defense_packets_dropped_total",
    "Packets drop_packet dropped instead of creating a connection.",
  ).inc(d.packetsDropped);
}

function haMetrics(reg: Registry, st: DaemonStatus): void {
  const inst = ["instance", "iface", "vrid"];
  const state = gauge(
    reg,
    "tsvs_vrrp_state",
    "VRRP instance state: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT, 4 STOP (keepalived's numbering).",
    inst,
  );
  const prio = gauge(reg, "tsvs_vrrp_priority", "VRRP effective priority (tracking applied).", inst);
  const trans = counter(reg, "tsvs_vrrp_transitions_total", "VRRP state changes.", inst);
  const rx = counter(reg, "tsvs_vrrp_advertisements_received_total", "VRRP advertisements received.", inst);
  const tx = counter(reg, "tsvs_vrrp_advertisements_sent_total", "VRRP advertisements sent.", inst);
  for (const v of st.vrrp ?? []) {
    const l = { instance: v.name, iface: v.iface, vrid: String(v.vrid) };
    state.set(l, VRRP_STATE_NUM[v.state]);
    prio.set(l, v.effectivePriority);
    trans.inc(l, v.transitions);
    rx.inc(l, v.advertsRx);
    tx.inc(l, v.advertsTx);
  }
  const sl = ["role", "iface", "syncid"];
  const sync: ReadonlyArray<{
    name: string;
    help: string;
    field: "messagesSent" | "messagesReceived" | "connsSent" | "connsReceived" | "errors";
  }> = [
    { name: "messages_sent", help: "Connection sync messages sent", field: "messagesSent" },
    { name: "messages_received", help: "Connection sync messages received", field: "messagesReceived" },
    { name: "connections_sent", help: "Connections carried in the sync messages sent", field: "connsSent" },
    {
      name: "connections_received",
      help: "Connections carried in the sync messages received",
      field: "connsReceived",
    },
    { name: "errors", help: "Connection sync socket errors", field: "errors" },
  ];
  const syncDrops = counter(reg, "tsvs_sync_drops_total", "Sync messages dropped, by reason.", [
    ...sl,
    "reason",
  ]);
  const cs = sync.map((s) => ({
    s,
    c: counter(reg, `tsvs_sync_${s.name}_total`, `${s.help}, per sync daemon.`, sl),
  }));
  for (const d of st.sync ?? []) {
    const l = { role: d.role, iface: d.iface, syncid: String(d.syncid) };
    for (const { s, c } of cs) c.inc(l, d[s.field]);
    for (const [reason, n] of Object.entries(d.drops)) syncDrops.inc({ ...l, reason }, n);
  }
}

/**
 * keepalived_*: the names, labels and help texts of mehdy/keepalived-exporter
 * (internal/collector/collector.go), so that its dashboards and alerts read a tsvs pair as they read
 * keepalived. Its counters carry the state's name as a label ("MASTER"…), as there.
 */
const KEEPALIVED_COUNTERS: ReadonlyArray<{
  name: string;
  help: string;
  get: (v: VrrpInstanceStatus) => number;
}> = [
  { name: "gratuitous_arp_delay_total", help: "Gratuitous ARP delay", get: (v) => v.garpDelayS },
  { name: "advertisements_received_total", help: "Advertisements received", get: (v) => v.advertsRx },
  { name: "advertisements_sent_total", help: "Advertisements sent", get: (v) => v.advertsTx },
  { name: "become_master_total", help: "Became master", get: (v) => v.becameMaster },
  { name: "release_master_total", help: "Released master", get: (v) => v.releasedMaster },
  { name: "packet_length_errors_total", help: "Packet length errors", get: (v) => v.drops.length ?? 0 },
  {
    name: "advertisements_interval_errors_total",
    help: "Advertisement interval errors",
    get: (v) => v.drops.interval ?? 0,
  },
  { name: "ip_ttl_errors_total", help: "TTL errors", get: (v) => v.drops.ttl ?? 0 },
  { name: "invalid_type_received_total", help: "Invalid type errors", get: (v) => v.drops.type ?? 0 },
  { name: "address_list_errors_total", help: "Address list errors", get: (v) => v.addrListErrors },
  {
    name: "authentication_invalid_total",
    help: "Authentication invalid",
    get: (v) => v.drops.auth_type ?? 0,
  },
  {
    name: "authentication_mismatch_total",
    help: "Authentication mismatch",
    get: (v) => v.drops.auth_mismatch ?? 0,
  },
  { name: "authentication_failure_total", help: "Authentication failure", get: (v) => v.drops.auth ?? 0 },
  { name: "priority_zero_received_total", help: "Priority zero received", get: (v) => v.priZeroRx },
  { name: "priority_zero_sent_total", help: "Priority zero sent", get: (v) => v.priZeroTx },
];

/** The exporter's state names; a state it does not know (tsvs's STOP) is "" there too. */
const KEEPALIVED_STATE_NAMES = ["INIT", "BACKUP", "MASTER", "FAULT"];

function keepalivedMetrics(reg: Registry, st: DaemonStatus): void {
  // Only with VRRP configured: a keepalived_up of 0 would page whoever alerts on it.
  if (st.vrrp === undefined || st.vrrp.length === 0) return;
  gauge(reg, "keepalived_up", "Status").set(1);
  const state = gauge(reg, "keepalived_vrrp_state", "State of vrrp", ["iname", "intf", "vrid", "ip_address"]);
  const common = ["iname", "intf", "vrid", "state"];
  const cs = KEEPALIVED_COUNTERS.map((k) => ({ k, c: counter(reg, `keepalived_${k.name}`, k.help, common) }));
  for (const v of st.vrrp) {
    const num = VRRP_STATE_NUM[v.state];
    const l = {
      iname: v.name,
      intf: v.iface,
      vrid: String(v.vrid),
      state: KEEPALIVED_STATE_NAMES[num] ?? "",
    };
    for (const { k, c } of cs) c.inc(l, k.get(v));
    for (const a of v.addresses) {
      // The exporter's ip_address is the first word of keepalived's data dump line, ipaddresstos:
      // the address as inet_ntop prints it, with "/prefix" unless that is /32 (/128 for IPv6).
      const ip = a.replace(a.includes(":") ? /\/128$/ : /\/32$/, "");
      state.set({ iname: v.name, intf: v.iface, vrid: String(v.vrid), ip_address: ip }, num);
    }
  }
  const scripts = st.vrrpScripts ?? [];
  if (scripts.length === 0) return;
  const status = gauge(reg, "keepalived_script_status", "Tracker Script Status", ["name"]);
  const sstate = gauge(reg, "keepalived_script_state", "Tracker Script State", ["name"]);
  for (const s of scripts) {
    // The exporter's encodings: status BAD 0 / GOOD 1; state idle 0 / running 1.
    status.set({ name: s.name }, s.good ? 1 : 0);
    sstate.set({ name: s.name }, s.running ? 1 : 0);
  }
}

function healthMetrics(reg: Registry, st: DaemonStatus): void {
  const up = gauge(
    reg,
    "tsvs_realserver_up",
    "Health check verdict per real server (--config): 1 up, 0 down.",
    ["service", "server"],
  );
  const fails = gauge(
    reg,
    "tsvs_realserver_check_failures",
    "Consecutive failed health checks per real server.",
    ["service", "server"],
  );
  const checks = counter(
    reg,
    "tsvs_realserver_checks_total",
    "Health checks run per real server, by result.",
    ["service", "server", "result"],
  );
  const trans = counter(
    reg,
    "tsvs_realserver_transitions_total",
    "Health verdict changes per real server, by the state entered (up, down).",
    ["service", "server", "to"],
  );
  for (const h of st.config?.health ?? []) {
    const l = { service: h.service, server: h.server };
    up.set(l, h.alive ? 1 : 0);
    fails.set(l, h.failures);
    checks.inc({ ...l, result: "ok" }, h.checksOk);
    checks.inc({ ...l, result: "failed" }, h.checksFailed);
    trans.inc({ ...l, to: "up" }, h.wentUp);
    trans.inc({ ...l, to: "down" }, h.wentDown);
  }
}

/** The VIPs' BGP announcement (daemon/bgp.ts): per VIP and per BIRD session. */
function bgpMetrics(reg: Registry, st: DaemonStatus): void {
  const b = st.bgp;
  if (b === undefined) return;
  const vip = gauge(
    reg,
    "tsvs_bgp_vip_announced",
    "Whether the VIP is announced over BGP now (1) or withdrawn (0): quorum of its services.",
    ["vip"],
  );
  const changes = counter(
    reg,
    "tsvs_bgp_vip_changes_total",
    "Announcements and withdrawals of the VIP since the daemon started.",
    ["vip"],
  );
  const session = gauge(
    reg,
    "tsvs_bgp_session_established",
    "BIRD's BGP session with the neighbour: 1 Established, 0 otherwise.",
    ["neighbor"],
  );
  const bird = gauge(reg, "tsvs_bgp_bird_up", "Whether BIRD answers on its control socket.");
  const liveness = gauge(
    reg,
    "tsvs_bgp_liveness_up",
    "Whether the liveness device the VIP routes need is up.",
  );
  for (const v of b.vips) {
    vip.set({ vip: v.vip }, v.announced ? 1 : 0);
    changes.inc({ vip: v.vip }, v.changes);
  }
  for (const s of b.sessions) session.set({ neighbor: s.neighbor }, s.info.startsWith("Established") ? 1 : 0);
  bird.set(b.bird.reachable ? 1 : 0);
  liveness.set(b.liveness.up ? 1 : 0);
}

/** A fresh registry holding one scrape's metrics (prom-client's text via `registry.metrics()`). */
export function buildMetrics(table: TableSnapshot, status: DaemonStatus): Registry {
  const reg = new Registry();
  ipvsMetrics(reg, table);
  dataPlaneMetrics(reg, status);
  haMetrics(reg, status);
  keepalivedMetrics(reg, status);
  healthMetrics(reg, status);
  bgpMetrics(reg, status);
  return reg;
}

/** The Prometheus text of one scrape. */
export function metricsText(table: TableSnapshot, status: DaemonStatus): Promise<string> {
  return buildMetrics(table, status).metrics();
}
