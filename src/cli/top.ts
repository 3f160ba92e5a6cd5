// `tsvs top`: the daemon's table and status, refreshed every interval, as top(1) shows processes.
// Reads over the control socket only (`table` and `status` requests, docs/control-protocol.md);
// the screen itself is top-format.ts's. Live mode draws on the terminal's alternate screen and
// puts the terminal back however it ends: q, Ctrl-C (stdin in raw mode when it is a TTY), a
// signal, or the daemon gone (then it says so and exits 1). --once prints one frame, sampled twice
// one interval apart so that its rates are the interval's, without any terminal control.

import { request } from "../daemon/control.js";
import { resolveControlPath } from "../daemon/protocol.js";
import { takeControlFlag } from "./ipvsadm-client.js";
import { formatTopFrame, type TopSample } from "./top-format.js";

export const TOP_USAGE = `Usage: tsvs top [-d SECONDS] [--once] [--control PATH]
  a live view of the daemon: per service and real server connections, rates, weight, health;
  drops, VRRP and sync counters. Keys: q or Ctrl-C quits.
  -d SECONDS   refresh interval (default 1, at least 0.1)
  --once       print one frame (rates over one interval) and exit, without the alternate screen
`;

const ALT_ON = "\x1b[?1049h";
const ALT_OFF = "\x1b[?1049l";
const CURSOR_OFF = "\x1b[?25l";
const CURSOR_ON = "\x1b[?25h";
const HOME = "\x1b[H";
const CLEAR_EOL = "\x1b[K";
const CLEAR_EOS = "\x1b[J";
const REVERSE = "\x1b[7m";
const NORMAL = "\x1b[0m";
const QUIT_KEYS = new Set(["q", "Q", "\x03", "\x04"]);
/** Width for --once when stdout is not a terminal and $COLUMNS says nothing. */
const DEFAULT_WIDTH = 132;

export interface TopArgs {
  intervalMs: number;
  once: boolean;
}

export function parseTopArgs(args: readonly string[]): TopArgs | { error: string } {
  const out: TopArgs = { intervalMs: 1000, once: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    let secs: string | undefined;
    if (a === "--once") out.once = true;
    else if (a === "-d" || a === "--delay") {
      secs = args[++i];
      if (secs === undefined) return { error: `${a} needs a number of seconds` };
    } else if (/^-d\d/.test(a)) secs = a.slice(2);
    else if (a.startsWith("--delay=")) secs = a.slice("--delay=".length);
    else return { error: `unknown argument ${a}` };
    if (secs !== undefined) {
      const n = Number(secs);
      if (!Number.isFinite(n) || n < 0.1 || n > 3600)
        return { error: `bad interval ${JSON.stringify(secs)} (seconds, 0.1 to 3600)` };
      out.intervalMs = Math.round(n * 1000);
    }
  }
  return out;
}

/** One reading: the table and the status, asked together. Throws with the reason. */
async function sample(path: string, timeoutMs: number): Promise<TopSample> {
  const [t, s] = await Promise.all([
    request(path, { op: "table" }, timeoutMs),
    request(path, { op: "status" }, timeoutMs),
  ]);
  const at = Date.now();
  if (!("table" in t)) throw new Error("error" in t ? t.error : "unexpected answer to table");
  if (!("status" in s)) throw new Error("error" in s ? s.error : "unexpected answer to status");
  return { at, table: t.table, status: s.status };
}

function width(): number {
  const c = process.stdout.columns;
  if (c !== undefined && c > 0) return c;
  const env = Number(process.env.COLUMNS);
  return Number.isInteger(env) && env > 0 ? env : DEFAULT_WIDTH;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function topMain(args: string[]): Promise<number> {
  const { path: flag, rest } = takeControlFlag(args);
  if (rest.includes("-h") || rest.includes("--help")) {
    process.stdout.write(TOP_USAGE);
    return 0;
  }
  const parsed = parseTopArgs(rest);
  if ("error" in parsed) {
    process.stderr.write(`tsvs top: ${parsed.error}\n${TOP_USAGE}`);
    return 2;
  }
  const path = resolveControlPath(flag);
  const timeoutMs = Math.max(2000, 2 * parsed.intervalMs);
  let first: TopSample;
  try {
    first = await sample(path, timeoutMs);
  } catch (e) {
    process.stderr.write(`tsvs top: cannot reach the daemon at ${path}: ${(e as Error).message}\n`);
    return 1;
  }
  if (parsed.once) {
    await sleep(parsed.intervalMs);
    let second: TopSample;
    try {
      second = await sample(path, timeoutMs);
    } catch (e) {
      process.stderr.write(`tsvs top: lost the daemon at ${path}: ${(e as Error).message}\n`);
      return 1;
    }
    const frame = formatTopFrame(first, second, { width: width(), intervalMs: parsed.intervalMs });
    process.stdout.write(`${frame.lines.join("\n")}\n`);
    return 0;
  }
  return live(path, parsed.intervalMs, timeoutMs, first);
}

/** The refreshing screen; resolves with the exit status once the terminal is put back. */
function live(path: string, intervalMs: number, timeoutMs: number, first: TopSample): Promise<number> {
  const out = process.stdout;
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  let prev: TopSample | null = null;
  let cur = first;
  let timer: NodeJS.Timeout | undefined;
  let done = false;

  const draw = (): void => {
    const rows = out.rows !== undefined && out.rows > 0 ? out.rows : undefined;
    const frame = formatTopFrame(prev, cur, { width: width(), height: rows, intervalMs });
    const lines = frame.lines.map((l, i) => (i === frame.headerRow ? `${REVERSE}${l}${NORMAL}` : l));
    out.write(`${HOME}${lines.join(`${CLEAR_EOL}\n`)}${CLEAR_EOL}${CLEAR_EOS}`);
  };

  return new Promise<number>((resolve) => {
    const onKey = (chunk: Buffer | string): void => {
      // q, Q, Ctrl-C (raw mode delivers it as a byte, not SIGINT), Ctrl-D.
      for (const c of chunk.toString()) if (QUIT_KEYS.has(c)) finish(0);
    };
    const onSignal = (): void => finish(0);
    const onResize = (): void => {
      if (!done) draw();
    };
    const finish = (code: number, message?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      process.off("SIGHUP", onSignal);
      out.off("resize", onResize);
      if (raw) {
        stdin.off("data", onKey);
        stdin.setRawMode(false);
        stdin.pause();
      }
      out.write(`${CURSOR_ON}${ALT_OFF}`);
      if (message !== undefined) process.stderr.write(message);
      resolve(code);
    };
    const tick = async (): Promise<void> => {
      const start = Date.now();
      let next: TopSample;
      try {
        next = await sample(path, timeoutMs);
      } catch (e) {
        finish(1, `tsvs top: lost the daemon at ${path}: ${(e as Error).message}\n`);
        return;
      }
      if (done) return;
      prev = cur;
      cur = next;
      draw();
      timer = setTimeout(tick, Math.max(0, intervalMs - (Date.now() - start)));
    };

    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    process.on("SIGHUP", onSignal);
    out.on("resize", onResize);
    if (raw) {
      stdin.setRawMode(true);
      stdin.resume();
      stdin.on("data", onKey);
    }
    out.write(`${ALT_ON}${CURSOR_OFF}`);
    // The first frame at once, with the estimator's rates; the interval's own from the next one.
    draw();
    timer = setTimeout(tick, intervalMs);
  });
}
