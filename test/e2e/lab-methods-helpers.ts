// Shared by the lab-methods e2e files: the availability check (skip with the reason, fail on CI),
// per-run lab names with cleanup of labs that an earlier, killed run left, and the client-side
// tools (curl, a UDP asker, a keep-alive HTTP client driven step by step, ping, traceroute).

import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ipvsadmRemote } from "../../src/cli/ipvsadm-client.js";
import { netnsUnavailableReason, nsExecStatus } from "../../src/io/netns.js";
import { tsvsEntry } from "../../src/lab/daemon.js";
import { ensurePackages } from "../../src/lab/packages.js";
import { deadRuns } from "../../src/lab/proc.js";
import { nginxAvailable } from "../../src/lab/servers.js";
import { LAB_ADDR, type LabNames, labDown, labNames } from "../../src/lab/topology.js";

export const VIP = LAB_ADDR.VIP;

/** Why these tests cannot run here, or null. Throws when CI=true and something is missing. */
export function labUnavailable(): string | null {
  let why = netnsUnavailableReason();
  if (why === null) {
    const missing = ensurePackages(["curl", "nginx", "nftables", "iputils-ping", "traceroute"]);
    if (missing.length > 0) why = `missing ${missing.join(", ")}`;
    else if (!nginxAvailable()) why = "nginx is missing";
    else if (tsvsEntry() === null) why = "tsvs is not built (make build)";
  }
  if (why !== null && process.env.CI === "true") throw new Error(`lab e2e tests cannot run on CI: ${why}`);
  return why;
}

/**
 * Names for this run (prefix tag + pid), after removing labs of earlier runs with the same tag whose
 * process is gone (a run killed before its `after` hook).
 */
export async function runNames(tag: string): Promise<LabNames> {
  for (const id of deadRuns(`tsvs-${tag}`)) await labDown(labNames(`tsvs-${tag}${id}`));
  return labNames(`tsvs-${tag}${process.pid}`);
}

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

export function curl(names: LabNames, url: string, extra: string[] = [], timeoutS = 3): Run {
  return nsExecStatus(
    names.client,
    ["curl", "-s", "--max-time", String(timeoutS), ...extra, url],
    (timeoutS + 5) * 1000,
  );
}

/** n sequential requests, one connection each; the answers (server names) counted. */
export function count(names: LabNames, n: number, url = `http://${VIP}/`): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = curl(names, url);
    const who = r.status === 0 ? r.stdout.trim() : `curl exit ${r.status}`;
    out[who] = (out[who] ?? 0) + 1;
  }
  return out;
}

/** One datagram from a new socket in the client namespace; the answer, or "" after 2 s. */
export function udpAsk(names: LabNames, addr: string, port: number): string {
  const src = `const s=require("dgram").createSocket("udp4");const t=setTimeout(()=>s.close(),2000);
s.on("message",(m)=>{process.stdout.write(String(m));clearTimeout(t);s.close()});s.send("who?",${port},"${addr}");`;
  return nsExecStatus(names.client, [process.execPath, "-e", src], 10_000).stdout;
}

/** ipvsadm over the lab's control socket, in process (no process per command); asserts success. */
export async function ipvsadm(names: LabNames, argv: string[], stdin?: string): Promise<string> {
  const res = await ipvsadmRemote(names.controlSock, argv, stdin ?? "");
  assert.ok(typeof res !== "number", `ipvsadm ${argv.join(" ")}: the daemon did not answer`);
  assert.equal(res.code, 0, `ipvsadm ${argv.join(" ")}: ${res.stderr}`);
  return res.stdout;
}

/** Replaces the whole table with these ipvsadm -R lines. */
export async function table(names: LabNames, lines: string[]): Promise<void> {
  await ipvsadm(names, ["-C"]);
  await ipvsadm(names, ["-R"], `${lines.join("\n")}\n`);
}

/** The connection entries (`-Lnc`) as rows [pro, expire, state, source, virtual, destination]. */
export async function conns(names: LabNames): Promise<string[][]> {
  const out = await ipvsadm(names, ["-Lnc"]);
  return out
    .split("\n")
    .slice(2)
    .filter((l) => l.trim() !== "")
    .map((l) => l.trim().split(/\s+/));
}

/** sha256 of /bytes/N's body (byte i = i mod 256), computed without holding N bytes. */
export function patternSha256(n: number): string {
  const chunk = Buffer.alloc(1 << 16);
  for (let i = 0; i < chunk.length; i++) chunk[i] = i & 0xff;
  const h = createHash("sha256");
  for (let off = 0; off < n; off += chunk.length)
    h.update(chunk.subarray(0, Math.min(chunk.length, n - off)));
  return h.digest("hex");
}

/** Downloads /bytes/N from the VIP in the client namespace; returns "SIZE SHA256" of the body. */
export function download(names: LabNames, n: number, timeoutS = 60, base = `http://${VIP}`): string {
  const dir = mkdtempSync(join(tmpdir(), "tsvs-dl-"));
  try {
    const file = join(dir, "body");
    const r = curl(names, `${base}/bytes/${n}`, ["-g", "-o", file], timeoutS);
    if (r.status !== 0) return `curl exit ${r.status}`;
    const h = createHash("sha256");
    const body = readFileSync(file);
    h.update(body);
    return `${body.length} ${h.digest("hex")}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A keep-alive HTTP client in the client namespace, one connection, driven request by request:
 * `get()` sends GET / on the same connection and resolves to "NAME LOCALPORT" (or "error ..." when
 * no answer comes within 3 s).
 */
export class KeepAliveClient {
  readonly #proc: ChildProcessWithoutNullStreams;
  #buf = "";
  #waiters: ((line: string) => void)[] = [];

  constructor(names: LabNames, url = `http://${VIP}/`) {
    const src = `const http=require("http");const agent=new http.Agent({keepAlive:true,maxSockets:1});
const rl=require("readline").createInterface({input:process.stdin});
rl.on("line",()=>{const req=http.get(${JSON.stringify(url)},{agent,timeout:3000},(res)=>{let b="";
res.on("data",(c)=>b+=c);res.on("end",()=>console.log(b.trim()+" "+req.socket.localPort+(req.reusedSocket?" reused":" new")));});
req.on("timeout",()=>{req.destroy(new Error("timeout"))});req.on("error",(e)=>console.log("error "+e.message));});
rl.on("close",()=>{agent.destroy();process.exit(0)});`;
    this.#proc = spawn("ip", ["netns", "exec", names.client, process.execPath, "-e", src], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.#proc.stdout.setEncoding("utf8");
    this.#proc.stdout.on("data", (c: string) => {
      this.#buf += c;
      for (let nl = this.#buf.indexOf("\n"); nl >= 0; nl = this.#buf.indexOf("\n")) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        this.#waiters.shift()?.(line);
      }
    });
  }

  get(): Promise<string> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve("error no answer from the client process"), 8000);
      this.#waiters.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
      this.#proc.stdin.write("go\n");
    });
  }

  close(): void {
    this.#proc.stdin.end();
    setTimeout(() => this.#proc.kill("SIGKILL"), 2000).unref();
  }
}

/** `ping -c N` from the client; true when every echo was answered. */
export function ping(names: LabNames, addr: string, extra: string[] = []): Run {
  return nsExecStatus(
    names.client,
    ["ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", ...extra, addr],
    10_000,
  );
}
