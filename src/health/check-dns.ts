// DNS_CHECK: one query over UDP; the server is up when it answers our query (same id,
// QR set) with RCODE NOERROR and at least one answer record (keepalived's check_dns.c).

import { randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { isIP } from "node:net";
import { canonicalIPv6 } from "../core/addr.js";
import type { CheckResult, CheckTarget } from "./checkers.js";
import { DNS_QTYPES, decodeMessage, encodeQuery } from "./dns.js";
import { settleOnce } from "./settle.js";

export interface DnsCheckOptions {
  timeoutMs: number;
  name: string;
  /** A, NS, CNAME, SOA, MX, TXT or AAAA. */
  qtype: string;
}

const RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];

export function dnsCheck(target: CheckTarget, opts: DnsCheckOptions): Promise<CheckResult> {
  const qtype = DNS_QTYPES[opts.qtype.toUpperCase()];
  const id = randomInt(65536);
  const query = qtype === undefined ? null : encodeQuery(id, opts.name, qtype);
  const family = isIP(target.host);
  if (query === null || family === 0) {
    return Promise.resolve({
      ok: false,
      detail: `cannot query ${opts.name} ${opts.qtype} at ${target.host}`,
    });
  }
  const sock = createSocket(family === 6 ? "udp6" : "udp4");
  // node prints an IPv6 source as inet_ntop does, the form the target is given in.
  const from = family === 6 ? canonicalIPv6(target.host) : target.host;
  return settleOnce(
    opts.timeoutMs,
    { ok: false, detail: `no answer after ${opts.timeoutMs} ms` },
    () => sock.close(),
    (finish) => {
      sock.on("error", (e: NodeJS.ErrnoException) => finish({ ok: false, detail: e.code ?? e.message }));
      sock.on("message", (buf, rinfo) => {
        // A datagram from elsewhere, or an answer to another query, is not ours: keep waiting.
        if (rinfo.address !== from || rinfo.port !== target.port) return;
        const m = decodeMessage(buf);
        if (m === null || m.id !== id || !m.qr) return;
        if (m.rcode !== 0) finish({ ok: false, detail: `rcode ${RCODES[m.rcode] ?? m.rcode}` });
        else if (m.answers.length === 0) finish({ ok: false, detail: "no answer record" });
        else {
          const a = m.answers.find((r) => r.address !== "");
          finish({
            ok: true,
            detail: `${m.answers.length} answer(s)${a !== undefined ? `, ${a.address}` : ""}`,
          });
        }
      });
      // connect() makes the kernel report ICMP port unreachable as ECONNREFUSED.
      const connect = (): void => sock.connect(target.port, target.host, () => sock.send(query));
      if (target.localAddress === undefined) connect();
      else sock.bind({ address: target.localAddress, port: 0 }, connect);
    },
  );
}
