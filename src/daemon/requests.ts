// The control socket's requests (docs/control-protocol.md), answered by the daemon's main thread:
// table changes and snapshots go to every worker and their answers are merged; the guard follows
// what the workers own; status adds the daemon's own figures to the workers'.

import type { Logger } from "pino";
import { type ControlCommand, isSyncDaemonCommand } from "../control/commands.js";
import { mergeTables } from "../control/snapshot.js";
import { ipv6TextWords, parseIPv4 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import type { ExplainQuery } from "../core/explain.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../core/packet/flow.js";
import { IPPROTO_SCTP } from "../core/sched/util.js";
import { fanoutHash, fanoutHash6 } from "../io/bpf.js";
import type { BgpAnnouncer } from "./bgp.js";
import type { DaemonConfig } from "./config-runner.js";
import type { HostFollower } from "./follow.js";
import { NFT_FAMILY, NFT_TABLE, type NftGuard } from "./nft.js";
import { mergeGuards, type WorkerPool } from "./pool.js";
import {
  type DaemonStatus,
  type ExplainRequest,
  netnsId,
  PROTOCOL_VERSION,
  type Request,
  type Response,
  type WorkerStatus,
} from "./protocol.js";
import type { SyncDaemons } from "./sync.js";
import type { VrrpRunner } from "./vrrp.js";
import type { Guard } from "./worker.js";

export interface RequestContext {
  pool: WorkerPool;
  guard: NftGuard;
  host: HostFollower;
  log: Logger;
  /** The control socket's path, for status. */
  control: string;
  /** --config's runner, once the file is applied. */
  config: () => DaemonConfig | null;
  /** The connection sync daemons (ipvsadm --start-daemon). */
  sync?: SyncDaemons;
  /** The file's VRRP instances, once running. */
  vrrp?: () => VrrpRunner | null;
  /** The VIPs' BGP announcement (bgp section or --bgp), once running. */
  bgp?: () => BgpAnnouncer | null;
}

const STOPPED: Response = { error: "the data plane stopped" };

export async function handleRequest(ctx: RequestContext, req: Request): Promise<Response> {
  switch (req.op) {
    case "apply":
      return apply(ctx, req.commands);
    case "table": {
      const ms = await ctx.pool.ask({ type: "snapshot", conns: req.conns === true });
      const ts = ms.flatMap((m) => (m.type === "snapshot" ? [m.table] : []));
      return ts.length !== ms.length ? STOPPED : { table: mergeTables(ts) };
    }
    case "reload": {
      const config = ctx.config();
      if (config === null) return { error: "the daemon runs without --config: nothing to reload" };
      const errors = await config.reload();
      return errors === "" ? { reloaded: config.path } : { error: errors };
    }
    case "sysctl":
    case "fwmark":
      return sysctlOrFwmark(ctx, req);
    case "status":
      return status(ctx);
    case "daemons":
      return { daemons: ctx.sync?.list() ?? [] };
    case "explain":
      return explain(ctx, req);
  }
}

const EXPLAIN_PROTO = { tcp: IPPROTO_TCP, udp: IPPROTO_UDP, sctp: IPPROTO_SCTP } as const;

/** The request as the core takes it (parseRequest checked the addresses already). */
export function explainQuery(req: ExplainRequest): ExplainQuery {
  const v6 = req.vip.includes(":");
  const q: ExplainQuery = {
    proto: EXPLAIN_PROTO[req.proto],
    vaddr: v6 ? 0 : (parseIPv4(req.vip) ?? 0),
    vport: req.port,
    caddr: v6 ? 0 : (parseIPv4(req.client) ?? 0),
    cport: req.cport,
  };
  if (v6) {
    q.vaddr6 = req.vip;
    q.caddr6 = req.client;
  }
  if (req.fwmark !== undefined) q.fwmark = req.fwmark;
  return q;
}

/**
 * Which worker a client's packets reach: the fanout program hashes the source address of a request
 * (io/bpf.ts compileFanoutProgram; the kernel's fanout_demux_bpf takes it modulo the group), the
 * worker that then schedules with its own state (rr cursors, lblc tables, twos' generator). An
 * IPv6 client by the fold of its words (fanoutHash6); the worker asked names worker 0 instead when
 * the program could not spread IPv6 (worker.ts explainOwner).
 */
export function explainWorker(q: ExplainQuery, workers: number): number {
  if (workers <= 1) return 0;
  const c6 = q.caddr6 !== undefined ? ipv6TextWords(q.caddr6) : null;
  return (c6 !== null ? fanoutHash6(c6) : fanoutHash(q.caddr)) % workers;
}

/** `explain`: asked of the worker that would own the flow, the only one whose state decides. */
async function explain(ctx: RequestContext, req: ExplainRequest): Promise<Response> {
  const q = explainQuery(req);
  let m: Awaited<ReturnType<WorkerPool["askOne"]>>;
  try {
    m = await ctx.pool.askOne(explainWorker(q, ctx.pool.size), { type: "explain", query: q });
    // The worker knows the fanout program's IPv6 exceptions: it names the owner when not itself.
    const r = m.type === "result" ? m.response : null;
    if (r !== null && "explainAt" in r) m = await ctx.pool.askOne(r.explainAt, { type: "explain", query: q });
  } catch {
    return STOPPED;
  }
  return m.type === "result" ? m.response : STOPPED;
}

/**
 * Sync daemon commands run in the main thread (daemon/sync.ts), one after the other, as ipvsadm
 * sends them one per call; a batch that mixes them with table commands is refused whole.
 */
async function syncCommands(ctx: RequestContext, commands: readonly ControlCommand[]): Promise<Response> {
  const sync = ctx.sync;
  if (sync === undefined) return { error: "connection sync is not available here", code: "TSVS_ERR_INVALID" };
  const other = commands.findIndex((c) => !isSyncDaemonCommand(c));
  if (other >= 0)
    return {
      error: "sync daemon commands cannot share a batch with other commands",
      code: "TSVS_ERR_INVALID",
      index: other,
    };
  for (let i = 0; i < commands.length; i++) {
    const c = commands[i];
    try {
      if (c.op === "start-daemon") await sync.start(c.daemon);
      else if (c.op === "stop-daemon") sync.stop(c.role);
    } catch (e) {
      if (!(e instanceof TsvsError)) throw e;
      return { error: e.message, code: e.code, index: i };
    }
  }
  return { applied: commands.length };
}

async function apply(
  ctx: RequestContext,
  commands: Extract<Request, { op: "apply" }>["commands"],
): Promise<Response> {
  if (commands.some(isSyncDaemonCommand)) return syncCommands(ctx, commands);
  const ms = await ctx.pool.ask({ type: "apply", cmds: commands });
  const rs = ms.flatMap((m) => (m.type === "applied" ? [m] : []));
  if (rs.length !== ms.length) return STOPPED;
  const first = rs[0].error;
  if (rs.some((r) => r.error?.code !== first?.code))
    ctx.log.error({ codes: rs.map((r) => r.error?.code ?? "ok") }, "workers disagree");
  const gErr = guardFollows(ctx, rs);
  ctx.log.debug({ commands: commands.length, error: first?.message }, "apply");
  if (first !== undefined) return { error: first.message, code: first.code, index: first.index };
  return gErr === null
    ? { applied: commands.length }
    : { applied: commands.length, warning: `the kernel guard was not updated: ${gErr}` };
}

async function sysctlOrFwmark(
  ctx: RequestContext,
  req: Extract<Request, { op: "sysctl" | "fwmark" }>,
): Promise<Response> {
  const ms = await ctx.pool.ask(
    req.op === "sysctl"
      ? { type: "sysctl", name: req.name, value: req.value, value2: req.value2 }
      : { type: "fwmark", action: req.action, rule: req.rule },
  );
  const results = ms.flatMap((m) => (m.type === "result" ? [m] : []));
  if (results.length !== ms.length) return STOPPED;
  const m = results[0];
  ctx.log.info({ req }, req.op);
  const gErr = guardFollows(ctx, results);
  if (gErr !== null && !("error" in m.response))
    return { error: `applied, but the kernel guard was not updated: ${gErr}` };
  return m.response;
}

/** The guard takes the union of what the workers own; null, or why nft refused it. */
function guardFollows(ctx: RequestContext, answers: ReadonlyArray<{ guard: Guard }>): string | null {
  const g = mergeGuards(answers.map((r) => r.guard));
  const before = ctx.guard.updates;
  const err = ctx.guard.update(g);
  if (err !== null) ctx.log.error({ err }, "nft guard update failed");
  else if (ctx.guard.updates !== before)
    ctx.log.info({ owned: g.owned.length, nat: g.nat.length }, "nft guard updated");
  return err;
}

async function status(ctx: RequestContext): Promise<Response> {
  const ms = await ctx.pool.ask({ type: "status" });
  const sts = ms.flatMap((m) => (m.type === "status" ? [m.status] : []));
  if (sts.length !== ms.length) return STOPPED;
  const g = ctx.guard.guard;
  const out: DaemonStatus = {
    ...mergeStatus(sts),
    version: PROTOCOL_VERSION,
    pid: process.pid,
    control: ctx.control,
    netns: netnsId(),
    nft: {
      table: `${NFT_FAMILY} ${NFT_TABLE}`,
      vips: g.owned.length,
      natDests: g.nat.length,
      updates: ctx.guard.updates,
    },
    worker: { alive: ctx.pool.alive(), restarts: 0 },
    host: ctx.host.status(),
  };
  const config = ctx.config();
  if (config !== null) out.config = { file: config.path, reloads: config.reloads, health: config.health() };
  const vrrp = ctx.vrrp?.() ?? null;
  if (vrrp !== null) {
    out.vrrp = vrrp.status();
    out.vrrpScripts = vrrp.scriptStatus();
  }
  if (ctx.sync !== undefined) out.sync = ctx.sync.list();
  const bgp = ctx.bgp?.() ?? null;
  if (bgp !== null) out.bgp = bgp.status();
  return { status: out };
}

/** The daemon's status over all workers: counters, drops and interface figures summed. */
export function mergeStatus(sts: readonly WorkerStatus[]): WorkerStatus {
  if (sts.length === 1) return sts[0];
  const base = structuredClone(sts[0]);
  for (const st of sts.slice(1)) {
    base.loops += st.loops;
    base.batches += st.batches;
    base.busyMs += st.busyMs;
    base.connections += st.connections;
    for (const [k, v] of Object.entries(st.counters)) {
      if (k !== "workers") base.counters[k] = (base.counters[k] ?? 0) + v;
    }
    for (const [k, v] of Object.entries(st.drops)) base.drops[k] = (base.drops[k] ?? 0) + v;
    const bd = base.defense;
    const d = st.defense;
    if (bd !== undefined && d !== undefined) {
      bd.dropEntry = Math.max(bd.dropEntry, d.dropEntry);
      bd.dropPacket = Math.max(bd.dropPacket, d.dropPacket);
      bd.secureTcp = Math.max(bd.secureTcp, d.secureTcp);
      bd.availmem = Math.min(bd.availmem, d.availmem);
      bd.dropRate = Math.max(bd.dropRate, d.dropRate);
      bd.secureTcpTable ||= d.secureTcpTable;
      bd.entriesDropped += d.entriesDropped;
      bd.packetsDropped += d.packetsDropped;
    }
    for (const ifs of st.interfaces) {
      // By ifindex: a worker that could not open one interface's socket lists one fewer.
      const b = base.interfaces.find((x) => x.ifindex === ifs.ifindex);
      if (b === undefined) continue;
      b.rxFrames += ifs.rxFrames;
      b.txFrames += ifs.txFrames;
      b.rxTruncated += ifs.rxTruncated;
      if (b.rxAggregates !== undefined) b.rxAggregates += ifs.rxAggregates ?? 0;
      if (b.txAggregates !== undefined) b.txAggregates += ifs.txAggregates ?? 0;
      if (b.rxOversize !== undefined) b.rxOversize += ifs.rxOversize ?? 0;
      b.txDropped += ifs.txDropped;
      b.txErrors += ifs.txErrors;
      b.kernelDrops += ifs.kernelDrops;
    }
  }
  return base;
}
