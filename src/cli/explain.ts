// `tsvs explain`: what the director would do with the first packet of a connection, and why, from
// the daemon's live tables (the control socket's `explain` request, docs/explain.md). Parses argv
// in ipvsadm's terms (-t/-u/--sctp-service VIP:PORT, -f MARK), prints explain-format.ts's lines or
// the raw answer (--json).

import { inetEndpoint } from "../control/spec.js";
import { request } from "../daemon/control.js";
import { type ExplainRequest, resolveControlPath } from "../daemon/protocol.js";
import { explainExitCode, formatExplanation } from "./explain-format.js";
import { takeControlFlag } from "./ipvsadm-client.js";

export const EXPLAIN_USAGE = `Usage: tsvs explain -t|-u|--sctp-service VIP:PORT --from CIP:CPORT [--fwmark N] [--json] [--control PATH]
       tsvs explain -f MARK -t|-u|--sctp-service VIP:PORT --from CIP:CPORT [--json]
  what the director would do with the first packet (a TCP SYN, a UDP datagram) from CIP:CPORT to
  VIP:PORT (IPv6 as [ADDR]:PORT, both ends of one family): the service that matches, an existing connection or persistence template, the real
  server the scheduler would pick now and the figures that decide it, the forwarding method and the
  rewritten addresses. Nothing is sent, nothing changes.
  --fwmark N, -f N   the packet carries firewall mark N (default: tsvs's fwmark rules decide)
  --json             the daemon's answer as it is
  Exit status: 0 when the packet would be forwarded, 1 when not (No such service, no destination).
`;

export interface ExplainArgs {
  req: ExplainRequest;
  json: boolean;
}

const SERVICE_FLAGS: Record<string, ExplainRequest["proto"]> = {
  "-t": "tcp",
  "--tcp-service": "tcp",
  "-u": "udp",
  "--udp-service": "udp",
  "--sctp-service": "sctp",
};

/**
 * "A.B.C.D:PORT" or "[IPv6]:PORT" (as ipvsadm writes a service) → the address (IPv6 as inet_ntop
 * prints it) and the port; null when malformed or without a port.
 */
export function parseEndpoint(s: string): { addr: string; port: number } | null {
  const e = inetEndpoint(s);
  if (e === null || e.port === null || (e.a.af === 6 && !s.startsWith("["))) return null;
  return { addr: e.a.addr6 ?? s.slice(0, s.lastIndexOf(":")), port: e.port };
}

function markArg(v: string | undefined, flag: string): number | { error: string } {
  if (v === undefined) return { error: `${flag} needs a mark` };
  const n = /^(0x[0-9a-fA-F]{1,8}|\d{1,10})$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= 0 && n <= 0xffffffff)) return { error: `bad firewall mark '${v}' (0 to 4294967295)` };
  return n;
}

export function parseExplainArgs(args: readonly string[]): ExplainArgs | { error: string } {
  let proto: ExplainRequest["proto"] | undefined;
  let vip: { addr: string; port: number } | undefined;
  let from: { addr: string; port: number } | undefined;
  let fwmark: number | undefined;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--json") json = true;
    else if (Object.hasOwn(SERVICE_FLAGS, a)) {
      if (proto !== undefined) return { error: "one service only: -t, -u or --sctp-service" };
      const v = args[++i];
      if (v === undefined) return { error: `${a} needs VIP:PORT` };
      const e = parseEndpoint(v);
      if (e === null)
        return { error: `bad service address '${v}' (VIP:PORT, e.g. 198.18.0.100:80 or [2001:db8::100]:80)` };
      proto = SERVICE_FLAGS[a];
      vip = e;
    } else if (a === "--from") {
      const v = args[++i];
      if (v === undefined) return { error: "--from needs CIP:CPORT" };
      const e = parseEndpoint(v);
      if (e === null)
        return {
          error: `bad client address '${v}' (CIP:CPORT, e.g. 203.0.113.10:40000 or [2001:db8:ff::10]:40000)`,
        };
      from = e;
    } else if (a === "--fwmark" || a === "-f" || a === "--fwmark-service") {
      if (fwmark !== undefined) return { error: "one firewall mark only (-f or --fwmark)" };
      const m = markArg(args[++i], a);
      if (typeof m !== "number") return m;
      fwmark = m;
    } else return { error: `unknown argument ${a}` };
  }
  if (vip === undefined || proto === undefined)
    return {
      error:
        fwmark !== undefined
          ? "-f MARK needs the packet's destination too: -t|-u|--sctp-service VIP:PORT (a mark is set on packets that still have an address)"
          : "which packet? -t|-u|--sctp-service VIP:PORT is required",
    };
  if (from === undefined) return { error: "--from CIP:CPORT is required (the client's address and port)" };
  if (vip.addr.includes(":") !== from.addr.includes(":"))
    return { error: "the service and the client must be of one family (both IPv4 or both IPv6)" };
  const req: ExplainRequest = {
    op: "explain",
    proto,
    vip: vip.addr,
    port: vip.port,
    client: from.addr,
    cport: from.port,
  };
  if (fwmark !== undefined) req.fwmark = fwmark;
  return { req, json };
}

export async function explainMain(args: string[]): Promise<number> {
  const { path: flag, rest } = takeControlFlag(args);
  if (rest.includes("-h") || rest.includes("--help")) {
    process.stdout.write(EXPLAIN_USAGE);
    return 0;
  }
  const p = parseExplainArgs(rest);
  if ("error" in p) {
    process.stderr.write(`tsvs explain: ${p.error}\n${EXPLAIN_USAGE}`);
    return 2;
  }
  const path = resolveControlPath(flag);
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(path, p.req);
  } catch (e) {
    process.stderr.write(
      `tsvs: cannot reach the daemon at ${path}: ${e instanceof Error ? e.message : String(e)} (is tsvs daemon running?)\n`,
    );
    return 1;
  }
  if (!("explain" in res)) {
    process.stderr.write(
      `tsvs explain: ${"error" in res ? res.error : "unexpected answer from the daemon"}\n`,
    );
    return 1;
  }
  process.stdout.write(p.json ? `${JSON.stringify(res.explain, null, 2)}\n` : formatExplanation(res.explain));
  return explainExitCode(res.explain);
}
