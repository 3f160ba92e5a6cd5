// The scripts keepalived runs on events (VRRP notify_*, notify_up/notify_down of a real server,
// quorum_up/quorum_down of a virtual server): its word splitting, and a detached spawn that never
// holds the daemon's output or exit.

import { spawn } from "node:child_process";

/** keepalived's word splitting of a notify/script line: spaces separate, quotes group. */
export function splitScript(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: string | null = null;
  let any = false;
  for (const ch of line) {
    if (quote !== null) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      any = true;
    } else if (ch === " " || ch === "\t") {
      if (cur !== "" || any) out.push(cur);
      cur = "";
      any = false;
    } else cur += ch;
  }
  if (cur !== "" || any) out.push(cur);
  return out;
}

/** Starts argv detached from the daemon (keepalived's notify_exec: nobody waits for it). */
export function runScript(argv: string[]): void {
  if (argv.length === 0) return;
  const child = spawn(argv[0], argv.slice(1), { stdio: "ignore", detached: true });
  child.on("error", () => {});
  child.unref();
}
