// `tsvs top`'s screen as text: two samples of the daemon (its table and its status, taken one
// interval apart) in, the frame's lines out. Pure: no terminal, no clock, no socket — top.ts owns
// those. Rates are the counters' differences over the interval between the two samples (what an
// operator watching a 1 s refresh expects); without a previous sample, or when a counter went
// backwards (ipvsadm -Z, a service re-added), the snapshot's own estimator rates stand in.

import { protoName } from "../config/model.js";
import {
  addrPortText,
  type DestSnapshot,
  type ServiceSnapshot,
  type StatsSnapshot,
  serviceKeyOfSnapshot,
  type TableSnapshot,
} from "../control/snapshot.js";
import { Fwd } from "../core/dest.js";
import type { Rates } from "../core/rate.js";
import { SVC_F_PERSISTENT } from "../core/service.js";
import type { DaemonStatus } from "../daemon/protocol.js";

/** One reading of the daemon: when (ms, wall clock), its table and its status. */
export interface TopSample {
  at: number;
  table: TableSnapshot;
  status: DaemonStatus;
}

export interface TopOptions {
  /** Columns of the terminal: every line is cut to it, table columns dropped first. */
  width: number;
  /** Rows of the terminal: the table is cut to fit, with a "… N more" line (absent = no limit). */
  height?: number;
  /** The refresh interval, for the header. */
  intervalMs?: number;
}

export interface TopFrame {
  lines: string[];
  /** Index in `lines` of the table's column titles (top.ts shows it in reverse video), -1 if cut. */
  headerRow: number;
}

export type { Rates };

/**
 * The rates between two readings of the same counters, `dtMs` apart. Null `prev` (first sample,
 * or the service/destination is new), a non-positive interval, or a counter that went backwards
 * (zeroed): the snapshot's estimator rates.
 */
export function ratesBetween(prev: StatsSnapshot | undefined, cur: StatsSnapshot, dtMs: number): Rates {
  const est = { cps: cur.cps, inpps: cur.inpps, outpps: cur.outpps, inbps: cur.inbps, outbps: cur.outbps };
  if (prev === undefined || dtMs <= 0) return est;
  const d = [
    cur.conns - prev.conns,
    cur.inpkts - prev.inpkts,
    cur.outpkts - prev.outpkts,
    cur.inbytes - prev.inbytes,
    cur.outbytes - prev.outbytes,
  ];
  if (d.some((x) => x < 0)) return est;
  const s = dtMs / 1000;
  return { cps: d[0] / s, inpps: d[1] / s, outpps: d[2] / s, inbps: d[3] / s, outbps: d[4] / s };
}

/** A rate or count in at most 5 characters: 0, 2.5, 340, 12.3K, 45M. */
export function human(n: number): string {
  if (!Number.isFinite(n) || n <= 0) return "0";
  if (n < 10) return n.toFixed(1).replace(/\.0$/, "");
  if (n < 1000) return String(Math.round(n));
  for (const [unit, div] of [
    ["K", 1e3],
    ["M", 1e6],
    ["G", 1e9],
    ["T", 1e12],
  ] as const) {
    const v = n / div;
    if (v < 10) return `${v.toFixed(1)}${unit}`;
    if (v < 1000 || unit === "T") return `${Math.round(v)}${unit}`;
  }
  return String(n);
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? "" : "s"}`;

/** Seconds as 59s, 12m03s, 3h04m, 2d05h. */
export function uptime(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const p = (n: number): string => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${p(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${p(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${p(Math.floor(s / 3600) % 24)}h`;
}

const FWD: Record<number, string> = {
  [Fwd.Masq]: "Masq",
  [Fwd.Local]: "Local",
  [Fwd.Tunnel]: "Tunnel",
  [Fwd.Route]: "Route",
  [Fwd.FullNat]: "FullNat",
};

/** The name the health checker gives a service ("TCP 10.0.0.1:80", "FWM 7"): config-runner's rows. */
export function healthServiceName(s: ServiceSnapshot): string {
  return s.fwmark !== 0 ? `FWM ${s.fwmark}` : `${protoName(s.protocol)} ${addrPortText(s, s.port)}`;
}

function serviceLabel(s: ServiceSnapshot): string {
  const where =
    s.fwmark !== 0
      ? `FWM  ${s.fwmark}${s.af === 6 ? " IPv6" : ""}`
      : `${protoName(s.protocol)}  ${addrPortText(s, s.port)}`;
  const persist = (s.flags & SVC_F_PERSISTENT) !== 0 ? ` persistent ${s.timeout}` : "";
  return `${where} ${s.schedName}${persist}`;
}

function destLabel(d: DestSnapshot): string {
  return `  -> ${addrPortText(d, d.port)} ${FWD[d.fwd] ?? "?"}`;
}

interface Row {
  name: string;
  weight: string;
  active: string;
  inact: string;
  rates: Rates;
  health: string;
}

interface Column {
  title: string;
  width: number;
  cell: (r: Row) => string;
}

// In the order shown; DROP_ORDER says which go first when the terminal is narrow.
const COLUMNS: Record<string, Column> = {
  weight: { title: "WEIGHT", width: 6, cell: (r) => r.weight },
  active: { title: "ACTIVE", width: 6, cell: (r) => r.active },
  inact: { title: "INACT", width: 6, cell: (r) => r.inact },
  cps: { title: "CONN/S", width: 6, cell: (r) => human(r.rates.cps) },
  inpps: { title: "INPKT/S", width: 7, cell: (r) => human(r.rates.inpps) },
  outpps: { title: "OUTPKT/S", width: 8, cell: (r) => human(r.rates.outpps) },
  inbps: { title: "IN B/S", width: 6, cell: (r) => human(r.rates.inbps) },
  outbps: { title: "OUT B/S", width: 7, cell: (r) => human(r.rates.outbps) },
  health: { title: "HEALTH", width: 6, cell: (r) => r.health },
};
const DROP_ORDER = ["outbps", "inbps", "outpps", "inpps", "weight", "health", "cps", "inact", "active"];
const NAME_TITLE = "SERVICE / REAL SERVER";
/** The name column never shrinks below this while other columns can still go. */
const NAME_MIN = 24;

/** Cuts a line to `width` characters, marking the cut with "…". */
export function fit(line: string, width: number): string {
  if (width <= 0) return "";
  if (line.length <= width) return line;
  return width === 1 ? "…" : `${line.slice(0, width - 1)}…`;
}

function table(rows: readonly Row[], withHealth: boolean, width: number): string[] {
  let cols = Object.keys(COLUMNS).filter((k) => withHealth || k !== "health");
  const nameWidth = Math.max(NAME_TITLE.length, ...rows.map((r) => r.name.length));
  const used = (): number => cols.reduce((n, k) => n + 1 + COLUMNS[k].width, 0);
  for (const k of DROP_ORDER) {
    if (Math.min(nameWidth, NAME_MIN) + used() <= width) break;
    cols = cols.filter((c) => c !== k);
  }
  const nw = Math.max(1, Math.min(nameWidth, width - used()));
  const line = (name: string, cells: (k: string) => string): string =>
    fit(
      fit(name, nw).padEnd(nw) + cols.map((k) => ` ${cells(k).padStart(COLUMNS[k].width)}`).join(""),
      width,
    ).trimEnd();
  return [
    line(NAME_TITLE, (k) => COLUMNS[k].title),
    ...rows.map((r) => line(r.name, (k) => COLUMNS[k].cell(r))),
  ];
}

function dropsLine(prev: DaemonStatus | undefined, cur: DaemonStatus, dtMs: number): string {
  const entries = Object.entries(cur.drops).filter(([, v]) => v > 0);
  if (entries.length === 0) return "drops: none";
  const s = dtMs / 1000;
  const rated = entries.map(([k, v]) => {
    const before = prev?.drops[k] ?? 0;
    const rate = prev === undefined || s <= 0 || v < before ? 0 : (v - before) / s;
    return { k, v, rate };
  });
  rated.sort((a, b) => b.rate - a.rate || b.v - a.v || (a.k < b.k ? -1 : 1));
  const total = rated.reduce((n, r) => n + r.rate, 0);
  return `drops: ${human(total)}/s — ${rated.map((r) => `${r.k} ${human(r.rate)}/s (${r.v})`).join(", ")}`;
}

function headerLines(prev: TopSample | null, cur: TopSample, opts: TopOptions): string[] {
  const st = cur.status;
  const dt = prev === null ? 0 : cur.at - prev.at;
  const workers = st.counters.workers ?? 1;
  const every = opts.intervalMs === undefined ? "" : `, every ${opts.intervalMs / 1000}s`;
  const out = [
    `tsvs top — pid ${st.pid}, up ${uptime(st.uptimeMs)}, ${workers} worker${workers === 1 ? "" : "s"}` +
      `${st.worker.alive ? "" : " (stopped)"}, ${plural(st.services, "service")}, ` +
      `${plural(st.dests, "real server")}, ${plural(st.connections, "connection")}${every}`,
  ];
  const t = ratesBetween(prev?.table.total, cur.table.total, dt);
  out.push(
    `traffic: ${human(t.cps)} conn/s, in ${human(t.inpps)} pkt/s ${human(t.inbps)}B/s, ` +
      `out ${human(t.outpps)} pkt/s ${human(t.outbps)}B/s`,
  );
  out.push(dropsLine(prev?.status, st, dt));
  for (const v of st.vrrp ?? []) {
    const prio =
      v.effectivePriority !== v.priority ? `${v.effectivePriority}/${v.priority}` : `${v.priority}`;
    out.push(
      `vrrp ${v.name}: ${v.state} on ${v.iface} vrid ${v.vrid}, priority ${prio}, master ${v.master ?? "unknown"}, ` +
        `${v.transitions} transitions${v.lastReason === "" ? "" : ` (last: ${v.lastReason})`}, ` +
        `adverts rx ${v.advertsRx} tx ${v.advertsTx}`,
    );
  }
  for (const d of st.sync ?? []) {
    const before = prev?.status.sync?.find((x) => x.role === d.role);
    const s = dt / 1000;
    const sent = before === undefined || s <= 0 ? 0 : (d.messagesSent - before.messagesSent) / s;
    const recv = before === undefined || s <= 0 ? 0 : (d.messagesReceived - before.messagesReceived) / s;
    const drops = Object.values(d.drops ?? {}).reduce((n, x) => n + x, 0);
    out.push(
      `sync ${d.role} on ${d.iface} syncid ${d.syncid}: sent ${d.messagesSent} msgs (${human(sent)}/s) ` +
        `${d.connsSent} conns, received ${d.messagesReceived} msgs (${human(recv)}/s) ${d.connsReceived} conns, ` +
        `errors ${d.errors}, drops ${drops}`,
    );
  }
  if (st.config !== undefined) {
    const up = st.config.health.filter((h) => h.alive).length;
    const down = st.config.health.length - up;
    out.push(`health: ${up} up, ${down} down — config ${st.config.file}, ${st.config.reloads} reloads`);
  }
  return out;
}

/** The frame for `cur`, with rates since `prev` (null: the first sample, estimator rates). */
export function formatTopFrame(prev: TopSample | null, cur: TopSample, opts: TopOptions): TopFrame {
  const dt = prev === null ? 0 : cur.at - prev.at;
  const health = cur.status.config?.health;
  const prevSvcs = new Map((prev?.table.services ?? []).map((s) => [serviceKeyOfSnapshot(s), s]));
  const rows: Row[] = [];
  for (const s of cur.table.services) {
    const ps = prevSvcs.get(serviceKeyOfSnapshot(s));
    const hname = healthServiceName(s);
    let active = 0;
    let inact = 0;
    for (const d of s.dests) {
      active += d.activeConns;
      inact += d.inactConns;
    }
    rows.push({
      name: serviceLabel(s),
      weight: "",
      active: String(active),
      inact: String(inact),
      rates: ratesBetween(ps?.stats, s.stats, dt),
      health: "",
    });
    for (const d of s.dests) {
      const pd = ps?.dests.find((x) => x.addr === d.addr && x.port === d.port);
      const server = addrPortText(d, d.port);
      const h = health?.find((x) => x.service === hname && x.server === server);
      rows.push({
        name: destLabel(d),
        weight: String(d.weight),
        active: String(d.activeConns),
        inact: String(d.inactConns),
        rates: ratesBetween(pd?.stats, d.stats, dt),
        health: h === undefined ? "-" : h.alive ? "up" : "down",
      });
    }
  }
  const head = headerLines(prev, cur, opts).map((l) => fit(l, opts.width));
  const empty = cur.table.services.length === 0;
  let body = empty ? ["(no virtual services)"] : table(rows, health !== undefined, opts.width);
  let titled = !empty;
  if (opts.height !== undefined) {
    // The table gives way first: the header says what the daemon is doing as a whole.
    const room = opts.height - head.length - 1;
    if (room <= 0) return { lines: head.slice(0, Math.max(0, opts.height)), headerRow: -1 };
    if (body.length > room) {
      const more = body.length - (room - 1);
      body = [...body.slice(0, room - 1), fit(`… ${more} more lines`, opts.width)];
      titled &&= room >= 2;
    }
  }
  return { lines: [...head, "", ...body], headerRow: titled ? head.length + 1 : -1 };
}

/** The frame's lines (formatTopFrame without the header row's position). */
export function formatTop(prev: TopSample | null, cur: TopSample, opts: TopOptions): string[] {
  return formatTopFrame(prev, cur, opts).lines;
}
