// MISC_CHECK: a command run by /bin/sh; exit status 0 means up (keepalived's
// check_misc.c). It is killed, with its process group, when misc_timeout expires.

import { spawn } from "node:child_process";
import type { CheckResult } from "./checkers.js";

export interface MiscCheckOptions {
  command: string;
  timeoutMs: number;
}

export function miscCheck(opts: MiscCheckOptions): Promise<CheckResult> {
  return new Promise((resolve) => {
    let done = false;
    let timedOut = false;
    const child = spawn("/bin/sh", ["-c", opts.command], { stdio: "ignore", detached: true });
    const finish = (r: CheckResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
    }, opts.timeoutMs);
    child.once("error", (e) => finish({ ok: false, detail: e.message }));
    child.once("exit", (code, signal) => {
      if (timedOut) finish({ ok: false, detail: `timed out after ${opts.timeoutMs} ms` });
      else if (code === 0) finish({ ok: true, detail: "exit 0" });
      else finish({ ok: false, detail: code !== null ? `exit ${code}` : `killed by ${signal}` });
    });
  });
}
