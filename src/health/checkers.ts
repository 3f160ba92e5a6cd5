// The checkers keepalived offers, as functions of (target, options) -> {ok, detail}.
// They never throw: a refused connection, a timeout or a bad answer is a failed check,
// with the reason in `detail` for the logs.

import type { CheckSpec } from "../config/model.js";
import { dnsCheck } from "./check-dns.js";
import { httpCheck } from "./check-http.js";
import { miscCheck } from "./check-misc.js";
import { tcpCheck } from "./check-tcp.js";

export interface CheckTarget {
  /** IPv4 or IPv6 text (IPv6 without brackets, as node's net, http and dgram take it). */
  host: string;
  port: number;
  /** keepalived's bindto: the source address, of the host's family. */
  localAddress?: string;
  /**
   * Bytes a TCP checker writes first: the PROXY protocol header of a check (proxy-proto.ts
   * PP1_CHECK / PP2_CHECK) when the service sends the protocol to this real server.
   */
  proxyHeader?: Uint8Array;
}

export interface CheckResult {
  ok: boolean;
  detail: string;
}

/** Runs the checker a CheckSpec describes against a target. */
export function runCheck(check: CheckSpec, target: CheckTarget, delayLoopSec: number): Promise<CheckResult> {
  if (check.type === "misc")
    return miscCheck({ command: check.path, timeoutMs: (check.timeout || delayLoopSec) * 1000 });
  if (target.port === 0) return Promise.resolve({ ok: false, detail: "no port to check (set connect_port)" });
  const timeoutMs = check.connectTimeout * 1000;
  switch (check.type) {
    case "tcp":
      return tcpCheck(target, { timeoutMs });
    case "http":
    case "https":
      return httpCheck(target, {
        timeoutMs,
        tls: check.type === "https",
        urls: check.urls,
        virtualHost: check.virtualHost,
      });
    case "dns":
      return dnsCheck(target, { timeoutMs, name: check.name, qtype: check.qtype });
  }
}
