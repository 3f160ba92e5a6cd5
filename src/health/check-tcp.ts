// TCP_CHECK: the server is up when a TCP connection to it completes (keepalived's
// check_tcp.c connects and closes at once). For a server the director sends the PROXY protocol to,
// the check's PROXY header goes out first, so that the server does not log a broken header.

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
      sock.once("connect", () => {
        const h = target.proxyHeader;
        if (h === undefined) finish({ ok: true, detail: "connected" });
        else sock.end(h, () => finish({ ok: true, detail: "connected (PROXY header sent)" }));
      });
      sock.once("error", (e: NodeJS.ErrnoException) => finish({ ok: false, detail: e.code ?? e.message }));
      sock.connect({ port: target.port, host: target.host, localAddress: target.localAddress });
    },
  );
}
