// `tsvs lab demo`: for each forwarding method, bring the lab up, send requests from the client to the
// VIP, count which real server answered each, show the director's table, take the lab down.

import { nsExecStatus } from "../io/netns.js";
import { ipvsadm, listCommand } from "./daemon.js";
import { labUp } from "./lab.js";
import type { ServerKind } from "./servers.js";
import {
  LAB_ADDR,
  LAB_METHODS,
  type LabMethod,
  type LabNames,
  type LabOffloads,
  labDown,
} from "./topology.js";

export interface DemoResult {
  method: LabMethod;
  counts: Record<string, number>;
  failed: number;
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
    const r = nsExecStatus(names.client, ["curl", "-s", "--max-time", "3", url], 10_000);
    const who = r.stdout.trim();
    if (r.status !== 0 || who === "") failed++;
    else counts[who] = (counts[who] ?? 0) + 1;
  }
  return { counts, failed };
}

const TITLE: Record<LabMethod, string> = {
  nat: "NAT (-m, masquerading)",
  dr: "DR (-g, direct routing)",
  tun: "TUN (-i, IPIP tunnelling)",
  fullnat: "FULLNAT (--fullnat)",
};

export async function labDemo(names: LabNames, opts: DemoOptions = {}): Promise<DemoResult[]> {
  const log = opts.log ?? ((s: string) => process.stdout.write(`${s}\n`));
  const requests = opts.requests ?? 30;
  const results: DemoResult[] = [];
  try {
    for (const method of opts.methods ?? LAB_METHODS) {
      log(`== ${TITLE[method]}: ${requests} requests from ${LAB_ADDR.CIP} to ${LAB_ADDR.VIP}:80`);
      const st = await labUp(names, {
        method,
        servers: opts.servers ?? "auto",
        offloads: opts.offloads,
        log: (l) => log(`   ${l}`),
      });
      if (st.daemonStatus !== "running") {
        log(`   skipped: ${st.daemonStatus}`);
        results.push({ method, counts: {}, failed: requests, table: "", daemonStatus: st.daemonStatus });
        await labDown(names);
        continue;
      }
      const { counts, failed } = countResponses(names, requests);
      const per = Object.keys(counts)
        .sort()
        .map((k) => `${k} ${counts[k]}`)
        .join(", ");
      log(`   responses: ${per === "" ? "none" : per}${failed > 0 ? `; ${failed} failed` : ""}`);
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
      results.push({ method, counts, failed, table, daemonStatus: st.daemonStatus });
      await labDown(names);
    }
  } finally {
    await labDown(names);
  }
  return results;
}
