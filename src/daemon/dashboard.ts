// The live dashboard's data (docs/dashboard.md): what one tick of the `/events` stream carries,
// built from the control socket's `table` and `status` answers (the same requests the REST API and
// /metrics ask), and the bounded history of rates the charts start from. Pure: no clock, no I/O;
// dashboard-http.ts runs the ticks and serves the page.

import {
  addrPortText,
  addrText,
  type DestSnapshot,
  type ServiceSnapshot,
  type StatsSnapshot,
  type TableSnapshot,
} from "../control/snapshot.js";
import { Fwd } from "../core/dest.js";
import type { DaemonStatus } from "./protocol.js";
import { serviceKeyPath } from "./rest.js";

/** ipvsadm's forwarding names, as the REST API spells them. */
const FWD_NAMES: Record<number, string> = {
  [Fwd.Masq]: "masq",
  [Fwd.Local]: "local",
  [Fwd.Tunnel]: "tunnel",
  [Fwd.Route]: "route",
  [Fwd.FullNat]: "fullnat",
};
const PROTO_NAMES: Record<number, string> = { 6: "TCP", 17: "UDP", 132: "SCTP" };

/** A checked real server's state: up, up with failed checks being retried, down; null: not checked. */
export type HealthState = "up" | "retrying" | "down";

export interface DashboardDest {
  /** `SERVICE-KEY>ADDR:PORT`, e.g. `tcp/198.18.0.100/80>198.18.1.11:80`: stable across ticks. */
  id: string;
  address: string;
  port: number;
  forward: string;
  weight: number;
  activeConns: number;
  inactConns: number;
  persistConns: number;
  available: boolean;
  health: HealthState | null;
  /** Consecutive failed checks (null: not checked). */
  failures: number | null;
  /** Counters since the last zero, and the estimator's per-second rates (ipvsadm --stats / --rate). */
  stats: StatsSnapshot;
}

/** A checked real server the checks took out of the table (down, without inhibit_on_failure). */
export interface DashboardAbsent {
  server: string;
  health: HealthState;
  failures: number;
}

export interface DashboardService {
  /** The REST API's path of the service: `tcp/ADDR/PORT`, `udp/…`, `sctp/…`, `fwm/MARK`. */
  key: string;
  /** As ipvsadm and the health checks name it: `TCP 198.18.0.100:80`, `FWM 5`. */
  name: string;
  scheduler: string;
  stats: StatsSnapshot;
  destinations: DashboardDest[];
  /** Checked real servers that are not in the table now. */
  absent: DashboardAbsent[];
}

export interface DashboardSnapshot {
  /** When the tick asked (ms since the epoch). */
  time: number;
  /** Ticks since the feed started. */
  seq: number;
  pid: number;
  uptimeMs: number;
  /** Entries in the connection table (templates included). */
  connections: number;
  /** Every drop counter added up. */
  drops: number;
  /** Every service's traffic together. */
  total: StatsSnapshot;
  /** Whether a configuration file with health checks is in use. */
  checks: boolean;
  services: DashboardService[];
  vrrp: Array<{ name: string; state: string; priority: number }>;
}

/** The service as ipvsadm and config/model.ts's serviceKeyString name it. */
export function serviceName(
  s: Pick<ServiceSnapshot, "fwmark" | "protocol" | "addr" | "addr6" | "port">,
): string {
  return s.fwmark !== 0
    ? `FWM ${s.fwmark}`
    : `${PROTO_NAMES[s.protocol] ?? String(s.protocol)} ${addrPortText(s, s.port)}`;
}

export function destId(serviceKey: string, d: Pick<DestSnapshot, "addr" | "addr6" | "port">): string {
  return `${serviceKey}>${addrPortText(d, d.port)}`;
}

function healthOf(row: { alive: boolean; failures: number }): HealthState {
  return !row.alive ? "down" : row.failures > 0 ? "retrying" : "up";
}

/** One tick's snapshot from the `table` and `status` answers. */
export function buildSnapshot(
  table: TableSnapshot,
  status: DaemonStatus,
  time: number,
  seq: number,
): DashboardSnapshot {
  const rows = status.config?.health ?? [];
  // Health rows by service name, then by "ADDR:PORT" (what the checks call them).
  const health = new Map<string, Map<string, { alive: boolean; failures: number }>>();
  for (const r of rows) {
    const m = health.get(r.service) ?? new Map();
    health.set(r.service, m);
    m.set(r.server, r);
  }
  const services = table.services.map((s): DashboardService => {
    const key = serviceKeyPath(s);
    const name = serviceName(s);
    const checked = health.get(name);
    const seen = new Set<string>();
    const destinations = s.dests.map((d): DashboardDest => {
      const server = addrPortText(d, d.port);
      seen.add(server);
      const h = checked?.get(server);
      return {
        id: destId(key, d),
        address: addrText(d),
        port: d.port,
        forward: FWD_NAMES[d.fwd] ?? String(d.fwd),
        weight: d.weight,
        activeConns: d.activeConns,
        inactConns: d.inactConns,
        persistConns: d.persistConns,
        available: d.available,
        health: h === undefined ? null : healthOf(h),
        failures: h === undefined ? null : h.failures,
        stats: { ...d.stats },
      };
    });
    const absent = [...(checked ?? new Map()).entries()]
      .filter(([server]) => !seen.has(server))
      .map(([server, h]) => ({ server, health: healthOf(h), failures: h.failures }));
    return { key, name, scheduler: s.schedName, stats: { ...s.stats }, destinations, absent };
  });
  return {
    time,
    seq,
    pid: status.pid,
    uptimeMs: status.uptimeMs,
    connections: status.connections,
    drops: Object.values(status.drops).reduce((a, b) => a + b, 0),
    total: { ...table.total },
    checks: rows.length > 0,
    services,
    vrrp: (status.vrrp ?? []).map((v) => ({ name: v.name, state: v.state, priority: v.effectivePriority })),
  };
}

// --- history -------------------------------------------------------------------------------------

/** The three rates a chart shows: connections/s, packets/s (in + out), bytes/s (in + out). */
export type RatePoint = [cps: number, pps: number, bps: number];

export function ratePoint(s: StatsSnapshot): RatePoint {
  return [s.cps, s.inpps + s.outpps, s.inbps + s.outbps];
}

/** The series id of every service's traffic together. */
export const TOTAL_SERIES = "total";

export interface HistorySeries {
  /** TOTAL_SERIES, or a destination's id. */
  id: string;
  /** The service's name (`TCP 198.18.0.100:80`), "" for the total. */
  service: string;
  /** `ADDR:PORT`, or "all" for the total. */
  server: string;
  /** One value per time, null where the series did not exist. */
  cps: Array<number | null>;
  pps: Array<number | null>;
  bps: Array<number | null>;
}

/** The `history` event: times (ms since the epoch) and every series over them, oldest first. */
export interface HistoryJson {
  intervalMs: number;
  /** Ticks kept at most: the page keeps as many. */
  capacity: number;
  time: number[];
  series: HistorySeries[];
}

interface Sample {
  time: number;
  values: Map<string, RatePoint>;
}

/**
 * The last `capacity` ticks' rates, per destination and in total: a ring, so that memory is
 * bounded whatever the uptime. At most `maxSeries` destinations a tick are kept (the first in
 * the table's order), so that a table of thousands of real servers does not make every new page
 * download megabytes.
 */
export class RateHistory {
  private readonly ring: Array<Sample | undefined>;
  private next = 0;
  private count = 0;
  /** id → service and server, for the series' labels (the latest seen). */
  private readonly labels = new Map<string, { service: string; server: string }>();

  constructor(
    readonly capacity = 300,
    readonly intervalMs = 1000,
    readonly maxSeries = 64,
  ) {
    if (!(capacity >= 1)) throw new RangeError("RateHistory: capacity must be at least 1");
    this.ring = new Array(capacity);
  }

  get length(): number {
    return this.count;
  }

  /** Appends one tick (replacing the oldest when full). */
  push(snap: DashboardSnapshot): void {
    const values = new Map<string, RatePoint>([[TOTAL_SERIES, ratePoint(snap.total)]]);
    let n = 0;
    for (const s of snap.services)
      for (const d of s.destinations) {
        if (n++ >= this.maxSeries) break;
        values.set(d.id, ratePoint(d.stats));
        this.labels.set(d.id, { service: s.name, server: `${d.address}:${d.port}` });
      }
    this.ring[this.next] = { time: snap.time, values };
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  /** The samples, oldest first. */
  private samples(): Sample[] {
    const out: Sample[] = [];
    for (let i = 0; i < this.count; i++) {
      const s = this.ring[(this.next - this.count + i + this.capacity) % this.capacity];
      if (s !== undefined) out.push(s);
    }
    return out;
  }

  /** Columns for the charts: one array per series and rate, null where a series was absent. */
  toJSON(): HistoryJson {
    const samples = this.samples();
    const ids: string[] = [];
    const seen = new Set<string>();
    for (const s of samples)
      for (const id of s.values.keys())
        if (!seen.has(id)) {
          seen.add(id);
          ids.push(id);
        }
    const series = ids.map((id): HistorySeries => {
      const l = id === TOTAL_SERIES ? { service: "", server: "all" } : this.labels.get(id);
      const col = (k: 0 | 1 | 2) => samples.map((s) => s.values.get(id)?.[k] ?? null);
      return {
        id,
        service: l?.service ?? "",
        server: l?.server ?? id,
        cps: col(0),
        pps: col(1),
        bps: col(2),
      };
    });
    // Labels of series that left the window are forgotten.
    for (const id of this.labels.keys()) if (!seen.has(id)) this.labels.delete(id);
    return { intervalMs: this.intervalMs, capacity: this.capacity, time: samples.map((s) => s.time), series };
  }
}

// --- server-sent events --------------------------------------------------------------------------

/** One server-sent event: `event:`, `id:` and the JSON on one `data:` line (JSON has no newline). */
export function sseFrame(event: string, data: unknown, id?: number): string {
  if (/[\r\n]/.test(event)) throw new RangeError("sseFrame: an event name has no line break");
  const head = id === undefined ? "" : `id: ${id}\n`;
  return `event: ${event}\n${head}data: ${JSON.stringify(data)}\n\n`;
}
