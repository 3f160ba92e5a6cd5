// TCP_CHECK: the server is up when a TCP connection to it completes (keepalived's
// check_tcp.c connects and closes at once).

import { Socket } from "node:net";
import type { CheckResult, CheckTarget } from "./checkers.js";
import { settleOnce } from "./settle.js";

export interface TcpCheckOptions {
  timeoutMs: number;
}

export function tcpCheck(target: CheckTarget, opts: TcpCheckOptions): Promise<CheckResult> {
  const sock = new Socket();
  return settleOnce(
    opts.timeoutMs,
    { ok: false, detail: `connect timeout after ${opts.timeoutMs} ms` },
    () => sock.destroy(),
    (finish) => {
      sock.once("connect", () => finish({ ok: true, detail: "connected" }));
      sock.once("error", (e: NodeJS.ErrnoException) => finish({ ok: false, detail: e.code ?? e.message }));
      sock.connect({ port: target.port, host: target.host, localAddress: target.localAddress });
    },
  );
}
