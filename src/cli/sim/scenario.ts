// The scenario file format of `tsvs sim` (docs/sim.md): one command per line, `#` comments.
// Parsed whole before anything runs, so a bad line is reported with its number and nothing
// is half-done.

import { TsvsError } from "../../core/errors.js";

export type Step =
  | { kind: "title"; text: string }
  | { kind: "ipvsadm"; argv: string[] }
  | { kind: "fwmark"; rule: string }
  | { kind: "sysctl"; name: string; value: number }
  | { kind: "client"; name: string; addr: string }
  | { kind: "http"; count: number; target: string; from: string; keepalive: boolean; path: string }
  | { kind: "udp"; count: number; target: string; from: string }
  | { kind: "ping"; target: string; from: string }
  | { kind: "download"; bytes: number; target: string; from: string }
  | { kind: "open"; name: string; target: string; from: string }
  | { kind: "request"; name: string }
  | { kind: "close"; name: string }
  | { kind: "stop"; server: string; port: number }
  | { kind: "start"; server: string; port: number }
  | { kind: "wait"; ms: number }
  | { kind: "show"; what: "distribution" | "conns" | "counters" | "ipvsadm"; argv: string[] }
  | { kind: "expect"; what: "distribution" | "result" | "conns"; args: string[] };

export interface Scenario {
  file: string;
  method: string | null;
  steps: Array<Step & { line: number }>;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m)$/;

export function parseDuration(s: string): number | null {
  const m = DURATION.exec(s);
  if (m === null) return null;
  const v = Number(m[1]);
  return m[2] === "ms" ? v : m[2] === "s" ? v * 1000 : v * 60_000;
}

const SIZE = /^(\d+)(k|K|M)?B?$/;

function parseSize(s: string): number | null {
  const m = SIZE.exec(s);
  if (m === null) return null;
  const v = Number(m[1]);
  return m[2] === undefined ? v : m[2] === "M" ? v * 1024 * 1024 : v * 1024;
}

/** Splits a line into words; double quotes group words (for fwmark rules with spaces, titles). */
export function splitWords(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inQ = false;
  let has = false;
  for (const ch of line) {
    if (ch === '"') {
      inQ = !inQ;
      has = true;
    } else if (!inQ && (ch === " " || ch === "\t")) {
      if (has) out.push(cur);
      cur = "";
      has = false;
    } else {
      cur += ch;
      has = true;
    }
  }
  if (inQ) throw new TsvsError("TSVS_ERR_SCENARIO", "unterminated quote");
  if (has) out.push(cur);
  return out;
}

/** Reads `from NAME` style options after positional words. */
function opts(
  words: string[],
  start: number,
  allowed: string[],
  flags: string[] = [],
): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = start; i < words.length; i++) {
    const w = words[i];
    if (flags.includes(w)) {
      o[w] = "1";
      continue;
    }
    if (!allowed.includes(w)) throw new TsvsError("TSVS_ERR_SCENARIO", `unexpected '${w}'`);
    const v = words[i + 1];
    if (v === undefined) throw new TsvsError("TSVS_ERR_SCENARIO", `'${w}' needs a value`);
    o[w] = v;
    i++;
  }
  return o;
}

function count(s: string | undefined, what: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 100_000)
    throw new TsvsError("TSVS_ERR_SCENARIO", `${what} must be a count from 1 to 100000`);
  return n;
}

export function parseScenario(text: string, file: string): Scenario {
  const steps: Scenario["steps"] = [];
  let method: string | null = null;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].replace(/\r$/, "");
    const t = raw.trim();
    if (t === "" || t.startsWith("#")) continue;
    const line = i + 1;
    try {
      const w = splitWords(t);
      const cmd = w[0];
      const add = (s: Step) => steps.push({ ...s, line });
      switch (cmd) {
        case "title":
          add({ kind: "title", text: t.slice(5).trim() });
          break;
        case "method":
          if (!["nat", "dr", "tun", "fullnat"].includes(w[1] ?? ""))
            throw new TsvsError("TSVS_ERR_SCENARIO", "method is nat, dr, tun or fullnat");
          method = w[1];
          break;
        case "ipvsadm":
          add({ kind: "ipvsadm", argv: w.slice(1) });
          break;
        case "fwmark":
          if (w.length < 2) throw new TsvsError("TSVS_ERR_SCENARIO", "fwmark needs a rule");
          add({ kind: "fwmark", rule: w.slice(1).join(" ") });
          break;
        case "sysctl": {
          const m = /^([a-z_]+)=(\d+)$/.exec(w[1] ?? "");
          if (m === null || w.length !== 2)
            throw new TsvsError("TSVS_ERR_SCENARIO", "sysctl takes name=value");
          add({ kind: "sysctl", name: m[1], value: Number(m[2]) });
          break;
        }
        case "client":
          if (w.length !== 3) throw new TsvsError("TSVS_ERR_SCENARIO", "client takes NAME ADDRESS");
          add({ kind: "client", name: w[1], addr: w[2] });
          break;
        case "http": {
          const o = opts(w, 3, ["from", "path"], ["keepalive"]);
          add({
            kind: "http",
            count: count(w[1], "http count"),
            target: need(w[2], "target"),
            from: o.from ?? "c1",
            keepalive: o.keepalive === "1",
            path: o.path ?? "/",
          });
          break;
        }
        case "udp": {
          const o = opts(w, 3, ["from"]);
          add({
            kind: "udp",
            count: count(w[1], "udp count"),
            target: need(w[2], "target"),
            from: o.from ?? "c1",
          });
          break;
        }
        case "ping": {
          const o = opts(w, 2, ["from"]);
          add({ kind: "ping", target: need(w[1], "target"), from: o.from ?? "c1" });
          break;
        }
        case "download": {
          const size = parseSize(w[1] ?? "");
          if (size === null)
            throw new TsvsError("TSVS_ERR_SCENARIO", "download takes SIZE (e.g. 10M) and a target");
          const o = opts(w, 3, ["from"]);
          add({ kind: "download", bytes: size, target: need(w[2], "target"), from: o.from ?? "c1" });
          break;
        }
        case "open": {
          const o = opts(w, 3, ["from"]);
          add({ kind: "open", name: need(w[1], "name"), target: need(w[2], "target"), from: o.from ?? "c1" });
          break;
        }
        case "request":
          add({ kind: "request", name: need(w[1], "name") });
          break;
        case "close":
          add({ kind: "close", name: need(w[1], "name") });
          break;
        case "stop":
        case "start": {
          const port = Number(w[2] ?? "80");
          if (!Number.isInteger(port) || port < 1 || port > 65535)
            throw new TsvsError("TSVS_ERR_SCENARIO", "bad port");
          add({ kind: cmd, server: need(w[1], "server"), port });
          break;
        }
        case "wait": {
          const ms = parseDuration(w[1] ?? "");
          if (ms === null)
            throw new TsvsError("TSVS_ERR_SCENARIO", "wait takes a duration like 500ms, 2s, 5m");
          add({ kind: "wait", ms });
          break;
        }
        case "show": {
          const what = w[1];
          if (what !== "distribution" && what !== "conns" && what !== "counters" && what !== "ipvsadm") {
            throw new TsvsError("TSVS_ERR_SCENARIO", "show distribution | conns | counters | ipvsadm ARGS");
          }
          add({ kind: "show", what, argv: w.slice(2) });
          break;
        }
        case "expect": {
          const what = w[1];
          if (what !== "distribution" && what !== "result" && what !== "conns") {
            throw new TsvsError(
              "TSVS_ERR_SCENARIO",
              "expect distribution NAME=N... | result ok|error | conns N",
            );
          }
          add({ kind: "expect", what, args: w.slice(2) });
          break;
        }
        default:
          throw new TsvsError("TSVS_ERR_SCENARIO", `unknown command '${cmd}'`);
      }
    } catch (e) {
      throw new TsvsError("TSVS_ERR_SCENARIO", `${file}:${line}: ${(e as Error).message}`);
    }
  }
  return { file, method, steps };
}

function need(v: string | undefined, what: string): string {
  if (v === undefined) throw new TsvsError("TSVS_ERR_SCENARIO", `missing ${what}`);
  return v;
}
