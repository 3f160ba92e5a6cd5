// `tsvs explain`'s text: a few short lines an IPVS operator reads as ipvsadm speaks (service names
// as -Ln prints them, Masq/Route/Tunnel, ActiveConn/InActConn as active/inactive), from the
// daemon's answer (daemon/protocol.ts ExplainAnswer). Pure: no I/O, tested on its own.

import type { ExplainAnswer } from "../daemon/protocol.js";

type Figure = number | string | boolean | null;

const LABEL = 9;
const line = (label: string, text: string): string => `  ${label.padEnd(LABEL)}${text}\n`;

/** mm:ss as ipvsadm -Lnc prints an expiry. */
export function mmss(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

function fig(v: Figure): string {
  if (v === null) return "-";
  if (typeof v === "boolean") return v ? "yes" : "no";
  return String(v);
}

/** One figure of a destination's line: a flag reads as its name when set ("overloaded"), "unusable" when not usable. */
function destFigure(k: string, v: Figure): string {
  if (typeof v !== "boolean") return `${k} ${fig(v)}`;
  if (k === "usable") return v ? "" : "unusable";
  return v ? k : "";
}

/** "k v, k v" of a scheduler's own figures, nulls left out (a list head cursor reads "head"). */
function figureList(f: Record<string, Figure>): string {
  return Object.entries(f)
    .filter(([k, v]) => v !== null || k === "cursor" || k === "cursorAfter")
    .map(([k, v]) => `${k} ${v === null ? "head" : fig(v)}`)
    .join(", ");
}

export function formatExplanation(a: ExplainAnswer): string {
  let out = `${a.packet.protocol} ${a.packet.client} -> ${a.packet.virtual}: ${a.summary}\n`;
  const fw = a.fwmark;
  if (fw.source === "given") out += line("fwmark", `${fw.mark} (given)`);
  else if (fw.rules.length > 0) {
    const hits = fw.rules.filter((r) => r.matched);
    out += line(
      "fwmark",
      hits.length === 0
        ? `none: no rule matches (${fw.rules.length} rule${fw.rules.length === 1 ? "" : "s"})`
        : `${fw.mark}: ${hits.map((r) => `rule ${r.id} "${r.rule}"`).join(", ")}`,
    );
  }
  const s = a.service;
  if (s === null) {
    if (a.lookups.length > 0) out += line("lookup", a.lookups.join("; "));
  } else {
    let desc = `${s.name} ${s.scheduler}`;
    if (s.flags.length > 0) desc += ` (${s.flags.join(",")})`;
    if (s.persistent !== null) {
      desc += ` persistent ${s.persistent.timeoutS}`;
      // As ipvsadm -L: the mask only when not one client address (IPv4 /32, IPv6 /128).
      if (s.persistent.netmask !== "255.255.255.255" && s.persistent.netmask !== "128")
        desc += ` mask ${s.persistent.netmask}`;
    }
    out += line("service", `${desc}  [matched by ${s.matchedBy}]`);
  }
  const c = a.connection;
  if (c !== null)
    out += line(
      "entry",
      `${c.state} ${c.client} -> ${c.virtual} -> ${c.destination}${c.local !== null ? ` via ${c.local}` : ""}, expires ${mmss(c.expiresMs)}${c.controlledBy !== null ? `, under template ${c.controlledBy}` : ""}`,
    );
  else if (s !== null) out += line("entry", "none");
  const t = a.template;
  if (t !== null) {
    const what =
      t.status === "exists"
        ? `${t.key} -> ${t.destination}, expires ${mmss(t.expiresMs)}, controls ${t.controls}`
        : t.status === "unfit"
          ? `${t.key} -> ${t.destination} unusable (destination gone or quiesced): replaced`
          : `none for ${t.client}/${t.netmask}: a new one -> ${t.destination ?? "-"} for ${t.timeoutS} s`;
    out += line("template", what);
  }
  const sch = a.schedule;
  if (sch !== null) {
    out += line("schedule", `${sch.scheduler} -> ${sch.destination ?? "no destination"}: ${sch.rule}`);
    const own = figureList(sch.figures);
    if (own !== "") out += line("", own);
    const w = Math.max(0, ...sch.dests.map((d) => d.destination.length));
    for (const d of sch.dests) {
      const mark = d.destination === sch.destination ? "*" : " ";
      const f = Object.entries(d.figures)
        .map(([k, v]) => destFigure(k, v))
        .filter((x) => x !== "")
        .join("  ");
      out += line("", `${mark} ${d.destination.padEnd(w)}  ${f}`);
    }
    if (!sch.exact) out += line("", "(a guess: the random source cannot be read ahead)");
  }
  const fwd = a.forward;
  if (fwd !== null) {
    const via =
      fwd.iface === null
        ? " (no route)"
        : ` via ${fwd.iface} next hop ${fwd.nexthop}${fwd.mac === null ? ` (MAC unresolved: ${fwd.nexthop?.includes(":") ? "NDP" : "ARP"} first)` : ` ${fwd.mac}`}`;
    const outer = fwd.outer !== null ? ` in ${fwd.outer.kind} ${fwd.outer.src} -> ${fwd.outer.dst}` : "";
    out += line("forward", `${fwd.ipvsadm}: ${fwd.src} -> ${fwd.dst}${outer}${via}`);
    out += line("", fwd.rewrite);
  }
  for (const n of a.notes) out += line("note", n);
  if (a.worker.of > 1)
    out += line("worker", `${a.worker.index} of ${a.worker.of} (the one the client's packets reach)`);
  return out;
}

/** The exit status: 0 when the packet is forwarded (to a real server, or back to a client), else 1. */
export function explainExitCode(a: ExplainAnswer): number {
  return a.verdict === "existing" ||
    a.verdict === "template" ||
    a.verdict === "scheduled" ||
    a.verdict === "reply"
    ? 0
    : 1;
}
