// The tsvs dashboard's script (docs/dashboard.md). Plain browser JavaScript, no build step: the
// daemon serves this file as it is, with uPlot (window.uPlot) loaded before it.
//
// It reads /events (server-sent events: `history` once, then `snapshot` every second) with fetch,
// not EventSource, so that the bearer token can go in a header when the endpoint needs it; it
// reconnects after a pause when the stream ends or goes quiet. Writes (drain) and the connection
// search go to the REST API (/api/v1). The DOM is updated in place, row by row, so that a button
// under the pointer stays the same element between ticks. Elements are built with createElement
// and textContent only, with no inline handlers or styles: the page runs under
// Content-Security-Policy default-src 'self'.

const TOKEN_KEY = "tsvs.token";
const API = "/api/v1";
/** A stream with no event for this long is dropped and opened again (the server ticks every second). */
const QUIET_MS = 5000;
const CHART_HEIGHT = 180;
const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4", "#6e7781"];

const $ = (sel) => document.querySelector(sel);

/** createElement with properties, dataset entries (`data`) and children. */
function h(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = String(dv);
    else if (k === "class") e.className = v;
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

// --- numbers -------------------------------------------------------------------------------------

function fmtInt(n) {
  return Number(n).toLocaleString("en-US");
}

function fmtSI(n, unit = "") {
  const a = Math.abs(n);
  const [d, s] = a >= 1e9 ? [1e9, "G"] : a >= 1e6 ? [1e6, "M"] : a >= 1e3 ? [1e3, "k"] : [1, ""];
  const v = n / d;
  const text = d === 1 ? String(Math.round(v * 10) / 10) : v.toFixed(v >= 100 ? 0 : 1);
  return `${text}${s !== "" || unit !== "" ? " " : ""}${s}${unit}`;
}

const fmtBytes = (n) => fmtSI(n, "B");

function fmtDuration(ms) {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (d > 0) return `${d}d ${hh}h`;
  if (hh > 0) return `${hh}h ${mm}m`;
  if (mm > 0) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

// --- state ---------------------------------------------------------------------------------------

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) ?? "",
  /** The latest snapshot. */
  snap: null,
  /** Destinations by id, from the latest snapshot (with their service's key). */
  dests: new Map(),
  /** Drains in flight, by destination id. */
  pending: new Set(),
  /** Service cards and destination rows, by key and id. */
  cards: new Map(),
  rows: new Map(),
  /** Rows of checked servers out of the table, by id. */
  absent: new Map(),
  /** Chart columns: times (s) and series by id, capacity from the history event. */
  hist: { capacity: 300, time: [], series: new Map() },
  charts: [],
  chartIds: "",
  stream: null,
};

function authHeaders() {
  return state.token === "" ? {} : { authorization: `Bearer ${state.token}` };
}

function setLive(kind, text) {
  const live = $("#live");
  live.dataset.state = kind;
  live.textContent = text;
}

// --- the event stream ----------------------------------------------------------------------------

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One SSE block (`field: value` lines) → { event, data, id }. */
function parseBlock(block) {
  const out = { event: "message", data: "", id: null, retry: null };
  for (const line of block.split(/\r?\n/)) {
    if (line === "" || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "event") out.event = value;
    else if (field === "data") out.data += out.data === "" ? value : `\n${value}`;
    else if (field === "id") out.id = value;
    else if (field === "retry") out.retry = Number(value);
  }
  return out;
}

async function stream() {
  let retryMs = 2000;
  for (;;) {
    const ctl = new AbortController();
    state.stream = ctl;
    let quiet = null;
    const awake = () => {
      clearTimeout(quiet);
      quiet = setTimeout(() => ctl.abort(), QUIET_MS);
    };
    try {
      awake();
      const res = await fetch("/events", {
        headers: { accept: "text/event-stream", ...authHeaders() },
        cache: "no-store",
        signal: ctl.signal,
      });
      if (res.status === 401) {
        clearTimeout(quiet);
        setLive("denied", state.token === "" ? "token needed" : "bad token");
        $("#summary").textContent = "This endpoint needs the bearer token to read: enter it below.";
        await new Promise((resolve) => {
          state.onToken = resolve;
        });
        continue;
      }
      if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}`);
      setLive("live", "live");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        awake();
        buf += value;
        for (let cut = buf.indexOf("\n\n"); cut >= 0; cut = buf.indexOf("\n\n")) {
          const ev = parseBlock(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
          if (ev.retry !== null && ev.retry > 0) retryMs = ev.retry;
          onEvent(ev);
        }
      }
    } catch {
      // Aborted (quiet, or a new token) or the network: reconnect below.
    }
    clearTimeout(quiet);
    setLive("down", "reconnecting…");
    await sleep(retryMs);
  }
}

function onEvent(ev) {
  if (ev.data === "") return;
  const data = JSON.parse(ev.data);
  if (ev.event === "history") loadHistory(data);
  else if (ev.event === "snapshot") {
    render(data);
    addPoint(data);
    setLive("live", "live");
  } else if (ev.event === "unavailable") setLive("down", `data plane: ${data.message}`);
}

// --- services ------------------------------------------------------------------------------------

const DEST_COLUMNS = [
  ["server", "real server", "text"],
  ["forward", "fwd", "text"],
  ["weight", "weight", ""],
  ["active", "active", ""],
  ["inactive", "inactive", ""],
  ["health", "health", "text"],
  ["conns", "conns", ""],
  ["pkts", "packets in / out", ""],
  ["bytes", "bytes in / out", ""],
  ["cps", "conn/s", ""],
  ["pps", "pkt/s in / out", ""],
  ["bps", "bytes/s in / out", ""],
  ["action", "", ""],
];

function serviceCard(s) {
  const head = h(
    "div",
    { class: "service-head" },
    h("span", { class: "service-name", textContent: s.name }),
    h("span", { class: "chip", textContent: s.scheduler, title: "scheduler" }),
    h("span", { class: "service-rates", data: { field: "rates" } }),
  );
  const thead = h(
    "thead",
    {},
    h("tr", {}, ...DEST_COLUMNS.map(([, label, cls]) => h("th", { class: cls, textContent: label }))),
  );
  const tbody = h("tbody");
  const root = h(
    "article",
    { class: "service", data: { service: s.key } },
    head,
    h("div", { class: "table-wrap" }, h("table", { class: "cards dests" }, thead, tbody)),
  );
  return { root, tbody, rates: head.querySelector("[data-field=rates]") };
}

function destRow(id) {
  const cells = {};
  const tr = h("tr", { data: { dest: id } });
  for (const [field, label, cls] of DEST_COLUMNS) {
    const td = h("td", { class: cls, data: { field, label } });
    cells[field] = td;
    tr.append(td);
  }
  const button = h("button", { type: "button", class: "drain", textContent: "drain", data: { drain: id } });
  cells.action.append(button);
  return { tr, cells, button };
}

/** Sets a cell's text and its exact figure(s) (data-value, or data-in / data-out). */
function setCell(td, text, values) {
  if (td.textContent !== text) td.textContent = text;
  for (const [k, v] of Object.entries(values)) {
    const s = v === null || v === undefined ? "" : String(v);
    if (td.dataset[k] !== s) td.dataset[k] = s;
  }
}

function setHealth(td, health, failures) {
  const text = health === null ? "—" : health === "retrying" ? `retrying (${failures})` : health;
  let badge = td.firstElementChild;
  if (badge === null) {
    badge = h("span");
    td.append(badge);
  }
  const cls = `health ${health ?? "none"}`;
  if (badge.className !== cls) badge.className = cls;
  if (badge.textContent !== text) badge.textContent = text;
  td.dataset.value = health ?? "";
  badge.title =
    health === null
      ? "not checked (no health check for this real server)"
      : `${failures} failed checks in a row`;
}

function updateRow(row, d) {
  const c = row.cells;
  setCell(c.server, `${d.address}:${d.port}`, { value: `${d.address}:${d.port}` });
  setCell(c.forward, d.forward, { value: d.forward });
  setCell(c.weight, fmtInt(d.weight), { value: d.weight });
  c.weight.classList.toggle("weight0", d.weight === 0);
  setCell(c.active, fmtInt(d.activeConns), { value: d.activeConns });
  setCell(c.inactive, fmtInt(d.inactConns), { value: d.inactConns });
  setHealth(c.health, d.health, d.failures);
  const st = d.stats;
  setCell(c.conns, fmtInt(st.conns), { value: st.conns });
  setCell(c.pkts, `${fmtSI(st.inpkts)} / ${fmtSI(st.outpkts)}`, { in: st.inpkts, out: st.outpkts });
  setCell(c.bytes, `${fmtBytes(st.inbytes)} / ${fmtBytes(st.outbytes)}`, {
    in: st.inbytes,
    out: st.outbytes,
  });
  setCell(c.cps, fmtSI(st.cps), { value: st.cps });
  setCell(c.pps, `${fmtSI(st.inpps)} / ${fmtSI(st.outpps)}`, { in: st.inpps, out: st.outpps });
  setCell(c.bps, `${fmtBytes(st.inbps)} / ${fmtBytes(st.outbps)}`, { in: st.inbps, out: st.outbps });
  drainButton(row.button, d);
}

function drainButton(b, d) {
  const pending = state.pending.has(d.id);
  const disabled = state.token === "" || d.weight === 0 || pending;
  if (b.disabled !== disabled) b.disabled = disabled;
  const text = pending ? "draining…" : d.weight === 0 ? "drained" : "drain";
  if (b.textContent !== text) b.textContent = text;
  b.title =
    state.token === ""
      ? "enter the token below to drain"
      : d.weight === 0
        ? "weight 0: no new connections"
        : "set the weight to 0: no new connections, established ones go on";
}

function absentRow(id) {
  const row = destRow(id);
  row.tr.classList.add("absent");
  row.button.remove();
  for (const f of ["weight", "active", "inactive", "conns", "pkts", "bytes", "cps", "pps", "bps"])
    setCell(row.cells[f], "—", {});
  setCell(row.cells.forward, "out of the table", {});
  return row;
}

/**
 * Makes `nodes` the children of `parent`, in this order, moving only what is out of place: a
 * button moved out of the document and back would lose its focus, or a click under way.
 */
function reconcile(parent, nodes) {
  nodes.forEach((n, i) => {
    if (parent.children[i] !== n) parent.insertBefore(n, parent.children[i] ?? null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
}

function render(snap) {
  state.snap = snap;
  $("#live").dataset.seq = String(snap.seq);
  const t = snap.total;
  const parts = [
    `pid ${snap.pid}`,
    `up ${fmtDuration(snap.uptimeMs)}`,
    `${fmtInt(snap.connections)} connections`,
    `${fmtSI(t.cps)} conn/s`,
    `${fmtSI(t.inpps + t.outpps)} pkt/s`,
    `${fmtBytes(t.inbps + t.outbps)}/s`,
    `${fmtInt(snap.drops)} drops`,
  ];
  for (const v of snap.vrrp) parts.push(`VRRP ${v.name} ${v.state}`);
  $("#summary").textContent = parts.join(" · ");

  const cards = [];
  const dests = new Map();
  const absent = new Map();
  for (const s of snap.services) {
    let card = state.cards.get(s.key);
    if (card === undefined) card = serviceCard(s);
    cards.push([s.key, card]);
    const st = s.stats;
    card.rates.textContent = `${fmtInt(st.conns)} conns · ${fmtSI(st.cps)} conn/s · ${fmtSI(st.inpps + st.outpps)} pkt/s · ${fmtBytes(st.inbps + st.outbps)}/s`;
    const trs = [];
    for (const d of s.destinations) {
      dests.set(d.id, { ...d, service: s.key });
      const row = state.rows.get(d.id) ?? destRow(d.id);
      state.rows.set(d.id, row);
      updateRow(row, d);
      trs.push(row.tr);
    }
    for (const a of s.absent) {
      const id = `${s.key}>${a.server}`;
      const row = state.absent.get(id) ?? absentRow(id);
      absent.set(id, row);
      setCell(row.cells.server, a.server, { value: a.server });
      setHealth(row.cells.health, a.health, a.failures);
      trs.push(row.tr);
    }
    reconcile(card.tbody, trs);
  }
  reconcile(
    $("#service-list"),
    cards.map(([, c]) => c.root),
  );
  state.cards = new Map(cards);
  state.dests = dests;
  state.absent = absent;
  for (const id of state.rows.keys()) if (!dests.has(id)) state.rows.delete(id);
  $("#no-services").hidden = snap.services.length > 0;
}

// --- drain ---------------------------------------------------------------------------------------

async function drain(id) {
  const d = state.dests.get(id);
  if (d === undefined || state.token === "") return;
  state.pending.add(id);
  const row = state.rows.get(id);
  if (row !== undefined) drainButton(row.button, d);
  const note = $("#token-note");
  try {
    const res = await fetch(`${API}/services/${d.service}/destinations/${d.address}/${d.port}`, {
      method: "PUT",
      headers: { "content-type": "application/json", ...authHeaders() },
      body: JSON.stringify({ weight: 0 }),
    });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new Error(body?.error?.message ?? `HTTP ${res.status}`);
    note.className = "note";
    note.textContent = `${d.address}:${d.port} drained: weight ${body.weight}.`;
    const cur = state.dests.get(id);
    if (cur !== undefined) {
      cur.weight = body.weight;
      if (row !== undefined) updateRow(row, cur);
    }
  } catch (e) {
    note.className = "note error";
    note.textContent = `drain ${d.address}:${d.port}: ${e.message}`;
  } finally {
    state.pending.delete(id);
    const cur = state.dests.get(id);
    if (row !== undefined && cur !== undefined) drainButton(row.button, cur);
  }
}

// --- charts --------------------------------------------------------------------------------------

const RATES = [
  ["cps", "#chart-cps", (v) => fmtSI(v)],
  ["pps", "#chart-pps", (v) => fmtSI(v)],
  ["bps", "#chart-bps", (v) => fmtBytes(v)],
];

function loadHistory(j) {
  const hist = state.hist;
  hist.capacity = j.capacity;
  hist.time = j.time.map((ms) => ms / 1000);
  hist.series = new Map();
  for (const s of j.series)
    hist.series.set(s.id, { ...s, cps: [...s.cps], pps: [...s.pps], bps: [...s.bps] });
  drawCharts();
}

function seriesLabel(s, many) {
  if (s.id === "total") return "all";
  return many ? `${s.service} → ${s.server}` : s.server;
}

function addPoint(snap) {
  const hist = state.hist;
  const n = hist.time.length;
  if (n > 0 && hist.time[n - 1] >= snap.time / 1000) return; // the history already had it
  hist.time.push(snap.time / 1000);
  const values = new Map([["total", snap.total]]);
  for (const s of snap.services)
    for (const d of s.destinations) {
      values.set(d.id, d.stats);
      if (!hist.series.has(d.id))
        hist.series.set(d.id, {
          id: d.id,
          service: s.name,
          server: `${d.address}:${d.port}`,
          cps: new Array(n).fill(null),
          pps: new Array(n).fill(null),
          bps: new Array(n).fill(null),
        });
    }
  for (const [id, s] of hist.series) {
    const st = values.get(id);
    s.cps.push(st === undefined ? null : st.cps);
    s.pps.push(st === undefined ? null : st.inpps + st.outpps);
    s.bps.push(st === undefined ? null : st.inbps + st.outbps);
  }
  while (hist.time.length > hist.capacity) {
    hist.time.shift();
    for (const s of hist.series.values()) {
      s.cps.shift();
      s.pps.shift();
      s.bps.shift();
    }
  }
  // Series with no value left in the window go.
  for (const [id, s] of hist.series) if (s.cps.every((v) => v === null)) hist.series.delete(id);
  drawCharts();
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function drawCharts() {
  const hist = state.hist;
  const series = [...hist.series.values()];
  const ids = series.map((s) => s.id).join("\n");
  const section = $("#charts");
  section.dataset.points = String(hist.time.length);
  section.dataset.series = String(series.length);
  const total = hist.series.get("total");
  section.dataset.peakCps = String(Math.max(0, ...(total?.cps ?? []).filter((v) => v !== null)));
  const minutes = hist.time.length > 1 ? (hist.time[hist.time.length - 1] - hist.time[0]) / 60 : 0;
  $("#charts-span").textContent = hist.time.length > 1 ? `last ${minutes.toFixed(1)} min` : "";
  if (typeof window.uPlot !== "function") return;
  if (ids !== state.chartIds || state.charts.length === 0) {
    for (const c of state.charts) c.destroy();
    state.charts = [];
    state.chartIds = ids;
    const many = new Set(series.map((s) => s.service).filter((x) => x !== "")).size > 1;
    const fg = cssVar("--muted") || "#666";
    const grid = cssVar("--line") || "#ddd";
    for (const [key, sel, fmt] of RATES) {
      const target = $(sel);
      target.replaceChildren();
      const opts = {
        width: Math.max(200, target.clientWidth),
        height: CHART_HEIGHT,
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
        axes: [
          { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
          {
            stroke: fg,
            grid: { stroke: grid, width: 1 },
            ticks: { stroke: grid },
            size: 56,
            values: (_u, vals) => vals.map(fmt),
          },
        ],
        series: [
          {},
          ...series.map((s, i) => ({
            label: seriesLabel(s, many),
            stroke: s.id === "total" ? fg : COLORS[i % COLORS.length],
            width: s.id === "total" ? 1 : 1.5,
            dash: s.id === "total" ? [4, 4] : undefined,
            points: { show: false },
            spanGaps: false,
            value: (_u, v) => (v === null || v === undefined ? "–" : fmt(v)),
          })),
        ],
        legend: { live: true },
      };
      state.charts.push({ key, target, plot: new window.uPlot(opts, chartData(key, series), target) });
    }
    return;
  }
  for (const c of state.charts) c.plot.setData(chartData(c.key, series));
}

function chartData(key, series) {
  return [state.hist.time, ...series.map((s) => s[key])];
}

function resizeCharts() {
  for (const c of state.charts) {
    const w = Math.max(200, c.target.clientWidth);
    if (w !== c.plot.width) c.plot.setSize({ width: w, height: CHART_HEIGHT });
  }
}

// --- connections ---------------------------------------------------------------------------------

const PAGE = 20;

/** The filters of the last search, and the page shown. */
const search = { query: null, offset: 0 };

function searchConnections(form) {
  const q = new URLSearchParams();
  for (const name of ["client", "vip", "server"]) {
    const v = form.elements[name].value.trim();
    if (v !== "") q.set(name, v);
  }
  search.query = q;
  search.offset = 0;
  return showConnections();
}

async function showConnections() {
  const note = $("#conn-note");
  const table = $("#conn-table");
  const pager = $("#conn-pages");
  const q = new URLSearchParams(search.query);
  q.set("limit", String(PAGE));
  q.set("offset", String(search.offset));
  note.className = "note";
  note.textContent = "searching…";
  try {
    const res = await fetch(`${API}/connections?${q}`, { headers: authHeaders(), cache: "no-store" });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new Error(body?.error?.message ?? `HTTP ${res.status}`);
    const tbody = table.tBodies[0];
    const ep = (e) => (e === null ? "—" : `${e.address}:${e.port}`);
    const cell = (field, label, text, cls = "text") =>
      h("td", { class: cls, textContent: text, data: { label, field } });
    tbody.replaceChildren(
      ...body.connections.map((c) =>
        h(
          "tr",
          {},
          cell("protocol", "proto", c.protocol.toUpperCase()),
          cell("state", "state", c.template ? `${c.state} (template)` : c.state),
          cell("client", "client", ep(c.client)),
          cell("virtual", "virtual", ep(c.virtual)),
          cell("server", "real server", ep(c.server)),
          cell("expires", "expires", `${Math.round(c.expiresMs / 1000)} s`, ""),
        ),
      ),
    );
    table.hidden = body.connections.length === 0;
    const from = body.offset + 1;
    const to = body.offset + body.connections.length;
    note.textContent =
      body.total === 0
        ? "No connection matches."
        : `${fmtInt(from)}–${fmtInt(to)} of ${fmtInt(body.total)} matching connections.`;
    pager.hidden = body.total <= PAGE;
    $("#conn-prev").disabled = body.offset === 0;
    $("#conn-next").disabled = to >= body.total;
  } catch (e) {
    table.hidden = true;
    pager.hidden = true;
    note.className = "note error";
    note.textContent = `search: ${e.message}`;
  }
}

// --- token ---------------------------------------------------------------------------------------

function tokenChanged() {
  const note = $("#token-note");
  note.className = "note";
  note.textContent =
    state.token === ""
      ? "No token: the page only reads (on loopback). It is kept in this tab only (sessionStorage)."
      : "Token set for this tab: the drain buttons work.";
  $("#token").value = "";
  $("#token").placeholder = state.token === "" ? "the daemon's http.token" : "•••• (set)";
  for (const [id, row] of state.rows) {
    const d = state.dests.get(id);
    if (d !== undefined) drainButton(row.button, d);
  }
  // A stream refused for want of a token tries again now; a running one is opened again with it.
  if (state.onToken !== undefined) {
    const go = state.onToken;
    state.onToken = undefined;
    go();
  }
}

function init() {
  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("#token").value.trim();
    if (v === "") return;
    state.token = v;
    sessionStorage.setItem(TOKEN_KEY, v);
    tokenChanged();
  });
  $("#token-forget").addEventListener("click", () => {
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    tokenChanged();
  });
  $("#service-list").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-drain]");
    if (b !== null && !b.disabled) drain(b.dataset.drain);
  });
  $("#conn-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    searchConnections(ev.currentTarget);
  });
  $("#conn-prev").addEventListener("click", () => {
    search.offset = Math.max(0, search.offset - PAGE);
    showConnections();
  });
  $("#conn-next").addEventListener("click", () => {
    search.offset += PAGE;
    showConnections();
  });
  new ResizeObserver(resizeCharts).observe($("#charts"));
  tokenChanged();
  stream();
}

init();
