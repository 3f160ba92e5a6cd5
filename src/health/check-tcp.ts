// TCP_CHECK: the server is up when a TCP connection to it completes (keepalived's
// check_tcp.c connects and closes at once).

import { Socket } from "node:net";
import type { CheckResult, CheckTarget } from "./checkers.js";

export interface TcpCheckOptions {
  timeoutMs: number;
}

export function tcpCheck(target: CheckTarget, opts: TcpCheckOptions): Promise<CheckResult> {
  return new Promise((resolve) => {
    const sock = new Socket();
    let done = false;
    const finish = (r: CheckResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(
      () => finish({ ok: false, detail: `connect timeout after ${opts.timeoutMs} ms` }),
      opts.timeoutMs,
    );
    sock.once("connect", () => finish({ ok: true, detail: "connected" }));
    sock.once("error", (e: NodeJS.ErrnoException) => finish({ ok: false, detail: e.code ?? e.message }));
    sock.connect(target.port, target.host);
  });
}
