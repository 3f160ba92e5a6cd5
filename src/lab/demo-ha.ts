// `tsvs lab demo --ha`: a director pair loses its master in the middle of a download.
//
//   1. lab up --ha (P-d MASTER at priority 150, P-d2 BACKUP at 100, lvs_sync_daemon on eth1)
//   2. the client downloads /bytes/N through the VIP, rate-limited so that it lasts ~6 s: by curl
//      (--limit-rate) and by the server (?rate=, src/lab/server.ts), since curl 7.88's limiter
//      averages over seconds and sometimes lets a short transfer through at full speed
//   3. halfway, the master's daemon gets SIGKILL: no priority-0 advert, nothing said to anyone
//   4. the backup takes over after its master-down time (3 × advert_int + (256 − 100)/256 s); the
//      takeover time is from the kill to its "Entering MASTER STATE" log line (keepalived: its
//      notify script's line)
//   5. the download goes on on the new master, whose sync daemon received the connection: the body
//      is checked byte by byte against the pattern (byte i = i mod 256)
//   6. lab down
//
// With a keepalived backup, keepalived takes the VIP over (the VRRP interop) but not the traffic:
// it has no ip_vs here, so the download is expected to break; the demo then succeeds when the
// takeover happened.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { TsvsError } from "../core/errors.js";
import { formatDirectorHa, haDirectors, haFiles, LAB_HA } from "./ha.js";
import { labUp } from "./lab.js";
import { procAlive, waitFor } from "./proc.js";
import type { ServerKind } from "./servers.js";
import {
  LAB_ADDR,
  type LabBackup,
  type LabMethod,
  type LabNames,
  type LabOffloads,
  labDown,
} from "./topology.js";

/** The download: 6 MiB at 1 MiB/s, about 6 s. */
export const HA_DEMO_BYTES = 6 << 20;
export const HA_DEMO_RATE = 1 << 20;

export interface HaDemoOptions {
  method?: LabMethod;
  backup?: LabBackup;
  servers?: ServerKind | "auto";
  offloads?: LabOffloads;
  bytes?: number;
  /** Bytes per second (curl --limit-rate). */
  rate?: number;
  log?: (line: string) => void;
}

export interface HaDemoResult {
  method: LabMethod;
  backup: LabBackup;
  /** Why the demo could not run (lab or VRRP did not come up), else null. */
  skipped: string | null;
  /** Connections the backup's sync daemon had received before the kill (tsvs backup). */
  syncedBeforeKill: number | null;
  /** From the SIGKILL to the backup's MASTER state; null: no takeover seen within 10 s. */
  takeoverMs: number | null;
  bytes: number;
  /** Offset of the first byte that is not i mod 256, or -1. */
  firstBadByte: number;
  curlExit: number | null;
  curlError: string;
  intact: boolean;
  downloadMs: number;
  /** The demo's verdict: intact download (tsvs backup), takeover seen (keepalived backup). */
  ok: boolean;
}

/** Checks a body against the /bytes/N pattern as it streams in (no copy of it kept). */
export class PatternCheck {
  bytes = 0;
  firstBad = -1;

  push(chunk: Uint8Array): void {
    if (this.firstBad < 0) {
      const base = this.bytes;
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== ((base + i) & 0xff)) {
          this.firstBad = base + i;
          break;
        }
      }
    }
    this.bytes += chunk.length;
  }
}

/** The time (ms since the epoch) of the first line of a pino log matching re, at or after since. */
export function pinoLineTime(log: string, re: RegExp, since: number): number | null {
  for (const line of log.split("\n")) {
    if (!re.test(line)) continue;
    try {
      const t = (JSON.parse(line) as { time?: number }).time;
      if (typeof t === "number" && t >= since) return t;
    } catch {
      // not a pino line
    }
  }
  return null;
}

/** keepalived's notify.log ("MS NAME STATE PRIO" lines): the first NAME entering state at or after since. */
export function notifyLineTime(log: string, name: string, state: string, since: number): number | null {
  for (const line of log.split("\n")) {
    const [ms, n, s] = line.trim().split(/\s+/);
    const t = Number(ms);
    if (n === name && s === state && Number.isFinite(t) && t >= since) return t;
  }
  return null;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

const ms = (n: number): string => `${(n / 1000).toFixed(2)} s`;

export async function labDemoHa(names: LabNames, opts: HaDemoOptions = {}): Promise<HaDemoResult> {
  const log = opts.log ?? ((s: string) => process.stdout.write(`${s}\n`));
  const method = opts.method ?? "nat";
  const backup = opts.backup ?? "tsvs";
  const size = opts.bytes ?? HA_DEMO_BYTES;
  const rate = opts.rate ?? HA_DEMO_RATE;
  const res: HaDemoResult = {
    method,
    backup,
    skipped: null,
    syncedBeforeKill: null,
    takeoverMs: null,
    bytes: 0,
    firstBadByte: -1,
    curlExit: null,
    curlError: "",
    intact: false,
    downloadMs: 0,
    ok: false,
  };
  try {
    log(
      `== HA, ${method.toUpperCase()}: ${names.director} (tsvs, priority ${LAB_HA.PRIORITY.director}) and ${names.director2} (${backup}, priority ${LAB_HA.PRIORITY.director2}), VIP ${LAB_ADDR.VIP}`,
    );
    const st = await labUp(names, {
      method,
      servers: opts.servers ?? "auto",
      offloads: opts.offloads,
      ha: { backup },
      log: (l) => log(`   ${l}`),
    });
    const daemon = st.daemon;
    const daemon2 = st.ha?.daemon2 ?? null;
    if (st.daemonStatus !== "running" || st.ha?.daemon2Status !== "running" || daemon === null) {
      res.skipped = `${st.daemonStatus}; ${names.director2}: ${st.ha?.daemon2Status ?? "?"}`;
      log(`   skipped: ${res.skipped}`);
      return res;
    }

    const url = `http://${LAB_ADDR.VIP}/bytes/${size}?rate=${rate}`;
    const expectMs = (size / rate) * 1000;
    log(`   # ip netns exec ${names.client} curl --limit-rate ${rate} ${url}   (~${ms(expectMs)})`);
    const check = new PatternCheck();
    const t0 = Date.now();
    const curl = spawn(
      "ip",
      ["netns", "exec", names.client, "curl", "-sS", "--limit-rate", String(rate), "-m", "60", url],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    curl.stdout.on("data", (c: Buffer) => {
      check.push(c);
    });
    curl.stderr.setEncoding("utf8");
    curl.stderr.on("data", (c: string) => {
      res.curlError += c;
    });
    const done = new Promise<number | null>((r) => curl.once("exit", (code) => r(code)));
    let exited = false;
    void done.then(() => {
      exited = true;
    });

    // Halfway: half the bytes in.
    await waitFor(() => check.bytes >= size / 2 || exited, expectMs + 10_000);
    if (exited) {
      log(`   the download ended before the kill (${check.bytes} bytes)`);
    } else {
      const before = haDirectors(names, method, backup, daemon, daemon2);
      for (const d of before) log(`   ${formatDirectorHa(d)}`);
      if (backup === "tsvs")
        res.syncedBeforeKill = before[1].sync?.find((s) => s.role === "backup")?.connsReceived ?? null;
      if (!procAlive(daemon))
        throw new TsvsError("TSVS_ERR_LAB", `the daemon of ${names.director} is not running`);
      const killedAt = Date.now();
      process.kill(daemon.pid, "SIGKILL");
      log(
        `   t=${ms(killedAt - t0)}: ${check.bytes} bytes in; SIGKILL to tsvs daemon pid ${daemon.pid} on ${names.director}`,
      );
      const f = haFiles(names);
      let tookOver: number | null = null;
      await waitFor(
        () => {
          tookOver =
            backup === "tsvs"
              ? pinoLineTime(
                  readText(names.daemon2Log),
                  /VRRP_Instance\(VI_1\) Entering MASTER STATE/,
                  killedAt,
                )
              : notifyLineTime(readText(f.notifyLog), LAB_HA.VI_1.name, "MASTER", killedAt);
          return tookOver !== null;
        },
        10_000,
        20,
      );
      if (tookOver === null) {
        log(`   ${names.director2} did not enter MASTER within 10 s of the kill`);
      } else {
        res.takeoverMs = (tookOver as number) - killedAt;
        const bound = 3 * LAB_HA.ADVERT_INT * 1000 + ((256 - LAB_HA.PRIORITY.director2) / 256) * 1000;
        log(
          `   ${names.director2} entered MASTER ${res.takeoverMs} ms after the kill (the master-down time, 3 × ${LAB_HA.ADVERT_INT} s + skew = ${bound.toFixed(0)} ms, runs from the last advert before the kill)${res.syncedBeforeKill !== null ? `; its sync daemon had received ${res.syncedBeforeKill} connection entries` : ""}`,
        );
      }
    }
    if (backup === "keepalived" && !exited) {
      // keepalived's kernel has the VIP now but no ip_vs: the download stalls for good (nobody
      // forwards the servers' replies); it is given the rest of its time, then stopped.
      await waitFor(() => exited, expectMs / 2 + 3000);
      if (!exited) curl.kill("SIGTERM");
    }
    res.curlExit = await done;
    res.downloadMs = Date.now() - t0;
    res.bytes = check.bytes;
    res.firstBadByte = check.firstBad;
    res.intact = res.curlExit === 0 && check.bytes === size && check.firstBad < 0;
    const how = res.intact
      ? "complete and intact (byte i = i mod 256)"
      : `NOT intact: ${res.curlExit === null ? "curl stopped" : `curl exit ${res.curlExit}`}${res.curlError.trim() !== "" ? ` (${res.curlError.trim()})` : ""}, ${check.bytes} of ${size} bytes${check.firstBad >= 0 ? `, first wrong byte at ${check.firstBad}` : ""}`;
    log(`   download: ${how}, ${ms(res.downloadMs)}`);
    if (backup === "keepalived" && !res.intact)
      log("   (expected: keepalived took the VIP over, but it has no ip_vs here to carry the traffic)");
    res.ok = backup === "tsvs" ? res.intact && res.takeoverMs !== null : res.takeoverMs !== null;
    for (const d of haDirectors(names, method, backup, daemon, daemon2)) log(`   ${formatDirectorHa(d)}`);
    return res;
  } finally {
    await labDown(names);
  }
}
