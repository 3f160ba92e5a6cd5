// `tsvs lab demo`: for each forwarding method, bring the lab up (dual stack), send requests from the
// client to the VIP and to the IPv6 VIP, count which real server answered each, show the director's
// table, take the lab down.

import { nsExecStatus } from "../io/netns.js";
import { ipvsadm, listCommand } from "./daemon.js";
import { labUp } from "./lab.js";
import type { ServerKind } from "./servers.js";
import {
  LAB_ADDR,
  LAB_ADDR6,
  LAB_METHODS,
  type LabMethod,
  type LabNames,
  type LabOffloads,
  labDown,
} from "./topology.js";

export interface DemoResult {
  method: LabMethod;
  counts: Record<string, number>;
  /** Requests that got no answer, IPv4 and IPv6 together. */
  failed: number;
  /** The IPv6 VIP's answers. */
  counts6: Record<string, number>;
  table: string;
  daemonStatus: string;
}

export interface DemoOptions {
  methods?: readonly LabMethod[];
  requests?: number;
  servers?: ServerKind | "auto";
  offloads?: LabOffloads;
  log?: (line: string) => void;
}

/** One request per curl process, so that every request is a new TCP connection. */
export function countResponses(
  names: LabNames,
  requests: number,
  url = `http://${LAB_ADDR.VIP}/`,
): { counts: Record<string, number>; failed: number } {
  const counts: Record<string, number> = {};
  let failed = 0;
  for (let i = 0; i < requests; i++) {
    // -g: no URL globbing, so that an IPv6 literal in brackets is an address, not a range.
    const r = nsExecStatus(names.client, ["curl", "-s", "-g", "--max-time", "3", url], 10_000);
    const who = r.stdout.trim();
    if (r.status !== 0 || who === "") failed++;
    else counts[who] = (counts[who] ?? 0) + 1;
  }
  return { counts, failed };
}

function logCounts(
  log: (line: string) => void,
  family: string,
  r: { counts: Record<string, number>; failed: number },
): void {
  const per = Object.keys(r.counts)
    .sort()
    .map((k) => `${k} ${r.counts[k]}`)
    .join(", ");
  log(`   ${family} responses: ${per === "" ? "none" : per}${r.failed > 0 ? `; ${r.failed} failed` : ""}`);
}

const TITLE: Record<LabMethod, string> = {
  nat: "NAT (-m, masquerading)",
  dr: "DR (-g, direct routing)",
  tun: "TUN (-i, IPIP / IPv6-in-IPv6 tunnelling)",
  fullnat: "FULLNAT (--fullnat)",
};

export async function labDemo(names: LabNames, opts: DemoOptions = {}): Promise<DemoResult[]> {
  const log = opts.log ?? ((s: string) => process.stdout.write(`${s}\n`));
  const requests = opts.requests ?? 30;
  const results: DemoResult[] = [];
  try {
    for (const method of opts.methods ?? LAB_METHODS) {
      log(
        `== ${TITLE[method]}: ${requests} requests from ${LAB_ADDR.CIP} to ${LAB_ADDR.VIP}:80, ${requests} from [${LAB_ADDR6.CIP}] to [${LAB_ADDR6.VIP}]:80`,
      );
      const st = await labUp(names, {
        method,
        servers: opts.servers ?? "auto",
        offloads: opts.offloads,
        ipv6: true,
        log: (l) => log(`   ${l}`),
      });
      if (st.daemonStatus !== "running") {
        log(`   skipped: ${st.daemonStatus}`);
        results.push({
          method,
          counts: {},
          counts6: {},
          failed: 2 * requests,
          table: "",
          daemonStatus: st.daemonStatus,
        });
        await labDown(names);
        continue;
      }
      const v4 = countResponses(names, requests);
      logCounts(log, "IPv4", v4);
      const v6 = countResponses(names, requests, `http://[${LAB_ADDR6.VIP}]/`);
      logCounts(log, "IPv6", v6);
      const counts = v4.counts;
      const failed = v4.failed + v6.failed;
      // What a user types, run as the user would: in the director namespace, no --control.
      log(`   # ${listCommand(names)}`);
      const t = ipvsadm(names, ["-Ln"]);
      const table = t.status === 0 ? t.stdout : `ipvsadm -Ln failed: ${t.stderr.trim()}`;
      log(
        table
          .trimEnd()
          .split("\n")
          .map((l) => `   ${l}`)
          .join("\n"),
      );
      results.push({
        method,
        counts,
        failed,
        counts6: v6.counts,
        table,
        daemonStatus: st.daemonStatus,
      });
      await labDown(names);
    }
  } finally {
    await labDown(names);
  }
  return results;
}
