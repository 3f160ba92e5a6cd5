// The fuzz run without namespaces: the generator's frames go straight into an Engine configured
// as the netns run configures its daemon (plan.ts), through the same entry points the daemon
// uses — Engine.input with the link's offload word, the sync backup's decodeSyncMessage +
// installSynced, the master's SyncSender, VRRP's parseVrrpFrame + checkAdvert + decodeAdvert, and
// the real servers' decapsulator checks (realserver/decap.ts) for tunnelled frames. Any exception
// is a finding: it is recorded with the seed, the index and the frame, and the run goes on (the
// engine is rebuilt, as the daemon would be restarted). Thousands of frames a second on one core,
// so that a seed can be searched before a namespace run replays it against the real daemon.

import { ControlApi } from "../../control/api.js";
import type { ControlCommand } from "../../control/commands.js";
import { formatIPv4, ipv6WordsText } from "../../core/addr.js";
import type { CtlCommand } from "../../core/ctl-types.js";
import { Engine, type Sysctls } from "../../core/engine.js";
import { TsvsError } from "../../core/errors.js";
import { makeOffloadWord, VNET_F_NEEDS_CSUM } from "../../core/packet/vnet.js";
import { decodeSyncMessage, syncMessageConns } from "../../core/sync/codec.js";
import { SyncSender } from "../../core/sync/sender.js";
import { type AdvertCheckConfig, checkAdvert, decodeAdvert, parseVrrpFrame } from "../../core/vrrp/packet.js";
import { FrameGen, FUZZ_KINDS, FUZZ_MAX_FRAME, FUZZ_MUTATIONS, FuzzFrame } from "../../fuzz/frames.js";
import { checksumState, L4_BAD, outputViolation, partialState, releasesQueued } from "../../fuzz/oracle.js";
import { FUZZ_ADDR, PLAN_SERVICES, planTarget } from "../../fuzz/plan.js";
import { FuzzRng } from "../../fuzz/rng.js";
import { ip4, mac } from "../../fuzz/wire.js";
import { PLAIN_PARTIAL_WORD } from "../../io/packet-base.js";
import {
  classify,
  gre6InnerOffset,
  gue6InnerOffset,
  ip6in4InnerOffset,
  ipxip6InnerOffset,
} from "../../realserver/decap.js";
import { parseIpvsadm } from "../ipvsadm/parse.js";

export const INPROC_MACS = {
  dir: [mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02")] as const,
  sender: [mac("02:00:00:00:fe:00"), mac("02:00:00:00:fe:01")] as const,
};

/** The VRRP instances the in-process run checks adverts against (v2 with a password, v3, v3 over IPv6). */
const VRRP_CHECKS: AdvertCheckConfig[] = [
  { vrid: 51, version: 2, advertIntMs: 1000, authPass: "fuzzpass", unicastPeers: [], v3ChecksumAsV2: false },
  { vrid: 52, version: 3, advertIntMs: 1000, authPass: null, unicastPeers: [], v3ChecksumAsV2: true },
  {
    vrid: 53,
    version: 3,
    advertIntMs: 1000,
    authPass: null,
    unicastPeers: [],
    v3ChecksumAsV2: false,
    family: 6,
    unicastPeers6: [],
  },
];

export interface InprocFinding {
  index: number;
  kind: string;
  mutation: string;
  /** Where it threw: engine.input, sync, vrrp, decap. */
  stage: string;
  error: string;
  stack: string;
  /** The frame as sent, hex. */
  frame: string;
  vnet: string | null;
}

export interface InprocResult {
  seed: number;
  start: number;
  frames: number;
  seconds: number;
  byKind: Record<string, number>;
  byMutation: Record<string, number>;
  /** The engine's drop table and counters at the end (of the last engine, if one was rebuilt). */
  drops: Record<string, number>;
  counters: Record<string, number>;
  connections: number;
  /** Per service (ipvsadm's key): connections, packets in and out, as -L --stats counts them. */
  services: Record<string, { conns: number; inpkts: number; outpkts: number }>;
  syncInstalled: number;
  vrrpAccepted: number;
  /** Control commands the churn applied (churnEvery). */
  churned: number;
  findings: InprocFinding[];
  /** Findings with the same stage and top stack frame as an earlier one, not listed. */
  repeats: number;
  /** Output frames that break oracle.ts's rules (one per kind and reason), and the repeats. */
  anomalies: InprocAnomaly[];
  anomalyRepeats: number;
}

export interface InprocAnomaly {
  index: number;
  kind: string;
  mutation: string;
  why: string;
  frame: string;
  output: string;
}

/** What the engine sent for the current frame (copied: the engine reuses its buffers). */
interface Sent {
  frame: Uint8Array;
  partial: boolean;
}

/** A director Engine as plan.ts describes it: two links, the routes, every service, fwmark rules, sync. */
export function planEngine(
  out: Sent[] = [],
  opts: Pick<InprocOptions, "sysctls" | "connCapacity"> = {},
): { engine: Engine; api: ControlApi; clock: { now: number } } {
  const clock = { now: 1000 };
  const a = FUZZ_ADDR;
  const engine = new Engine({
    connCapacity: opts.connCapacity,
    sysctls: opts.sysctls,
    interfaces: [
      {
        ifindex: 1,
        name: "eth0",
        mac: INPROC_MACS.dir[0],
        addrs: [{ addr: ip4(a.DIR0), prefix: 24 }],
        addrs6: [{ addr6: a.DIR0_6, prefix: 64 }],
        mtu: 1500,
      },
      {
        ifindex: 2,
        name: "eth1",
        mac: INPROC_MACS.dir[1],
        addrs: [{ addr: ip4(a.DIR1), prefix: 24 }],
        addrs6: [{ addr6: a.DIR1_6, prefix: 64 }],
        mtu: 1500,
      },
    ],
    routes: [
      { dst: 0, prefix: 0, via: ip4(a.CIP), ifindex: 1 },
      { dst: 0, prefix: 0, via: 0, ifindex: 1, dst6: "::", via6: a.CIP6 },
    ],
    lips: [ip4(a.LIP)],
    seed: 7,
    send: (_ifindex, b, off, len, vnet) => {
      if (out.length < 4096)
        out.push({ frame: b.slice(off, off + len), partial: vnet !== null && (vnet[0] & 1) !== 0 });
    },
  });
  const api = new ControlApi(engine, () => clock.now);
  const cmds: ControlCommand[] = [];
  for (const p of PLAN_SERVICES) {
    if (p.rule !== undefined) cmds.push({ op: "add-fwmark", rule: p.rule });
    for (const line of p.lines) {
      const r = parseIpvsadm(line.split(/\s+/));
      if (r.kind !== "ctl") throw new Error(`plan: not a table command: ${line}`);
      cmds.push(r.cmd);
    }
  }
  api.apply(cmds);
  engine.ctl.syncRunning = true;
  engine.syncMaster = new SyncSender(engine, { syncid: 1, maxlen: 1460 });
  // The neighbours the director would have learnt: the sender's link and the real servers.
  const n = engine.neigh;
  n.confirm(1, ip4(a.CIP), INPROC_MACS.sender[0], clock.now);
  for (const rip of a.RIPS) n.confirm(2, ip4(rip), mac("02:00:00:00:01:11"), clock.now);
  return { engine, api, clock };
}

function hex(b: Uint8Array, len: number): string {
  let s = "";
  for (let i = 0; i < len; i++) s += (b[i] < 16 ? "0" : "") + b[i].toString(16);
  return s;
}

/** The first "at …" line of a stack: two findings with the same one are the same bug. */
function topFrame(stack: string): string {
  const line = stack.split("\n").find((l) => l.trim().startsWith("at "));
  return (line ?? stack).trim().replace(/:\d+\)?$/, "");
}

export interface InprocOptions {
  seed: number;
  count: number;
  /** First index (a run can resume or replay one frame). */
  start?: number;
  /** Simulated time per frame, ms (default 0.02: 50k frames a simulated second). */
  stepMs?: number;
  /** Stop after this many distinct findings (default 20). */
  maxFindings?: number;
  /** Called every `progressEvery` frames. */
  onProgress?: (done: number) => void;
  progressEvery?: number;
  /** The director's sysctls (sloppy_tcp, expire_nodest_conn, the defence modes…). */
  sysctls?: Partial<Sysctls>;
  /** Connection table entries (default the engine's). */
  connCapacity?: number;
  /**
   * Every this many frames, the table changes under the traffic: a real server quiesced, removed
   * or put back, a service removed and added again, counters zeroed (0: never; default 0).
   */
  churnEvery?: number;
}

/** The plan's ipvsadm lines as control commands (lines that do not parse are a bug of the plan). */
function planCommands(lines: readonly string[]): CtlCommand[] {
  return lines.map((line) => {
    const r = parseIpvsadm(line.split(/\s+/));
    if (r.kind !== "ctl") throw new Error(`plan: not a table command: ${line}`);
    return r.cmd;
  });
}

/**
 * One change of the table (see InprocOptions.churnEvery), drawn from rng: first what the last one
 * took away comes back (commands that fail because it is there are fine), then something goes.
 */
function churn(engine: Engine, rng: FuzzRng, pending: string[][]): number {
  let applied = 0;
  const tryApply = (lines: readonly string[]): void => {
    for (const c of planCommands(lines)) {
      try {
        engine.apply(c);
        applied++;
      } catch (e) {
        if (!(e instanceof TsvsError)) throw e;
      }
    }
  };
  for (const lines of pending.splice(0)) tryApply(lines);
  const p = rng.pick(PLAN_SERVICES);
  const key = p.lines[0].replace(/^-A /, "").replace(/ -s .*$/, "");
  const dests = p.lines.filter((l) => l.startsWith("-a "));
  const d = rng.pick(dests);
  const rip = d.replace(/^.* -r (\S+).*$/, "$1");
  switch (rng.int(5)) {
    case 0: // quiesced: weight 0, then back
      tryApply([`${d.replace(/^-a /, "-e ").replace(/ -w \d+/, "")} -w 0`]);
      pending.push([`${d.replace(/^-a /, "-e ").replace(/ -w \d+/, "")} -w 1`]);
      break;
    case 1: // a real server removed under its connections
      tryApply([`-d ${key} -r ${rip}`]);
      pending.push([d]);
      break;
    case 2: // the whole service
      tryApply([`-D ${key}`]);
      pending.push(p.lines);
      break;
    case 3:
      tryApply([`-Z ${key}`]);
      break;
    default: // timeouts shortened and back
      tryApply(["--set 5 3 2"]);
      pending.push(["--set 900 120 300"]);
  }
  return applied;
}

/** Runs frames [start, start + count) of seed through a plan engine; never throws on a finding. */
export function runInproc(o: InprocOptions): InprocResult {
  const start = o.start ?? 0;
  const step = o.stepMs ?? 0.02;
  const maxFindings = o.maxFindings ?? 20;
  const target = planTarget(
    { dir: INPROC_MACS.dir, sender: INPROC_MACS.sender },
    {
      gso: true,
      vrrp: VRRP_CHECKS.map((c) => ({
        vrid: c.vrid,
        version: c.version,
        family: c.family ?? 4,
        pass: c.authPass,
      })),
    },
  );
  const gen = new FrameGen(target, o.seed);
  const frame = new Uint8Array(FUZZ_MAX_FRAME);
  // The engine rewrites frames in place and may grow them (TOA, tunnels): room behind each.
  const buf = new Uint8Array(FUZZ_MAX_FRAME + 512);
  const f = new FuzzFrame();
  const sent: Sent[] = [];
  const eopts = { sysctls: o.sysctls, connCapacity: o.connCapacity };
  let { engine, clock } = planEngine(sent, eopts);
  const churnRng = new FuzzRng();
  const pendingChurn: string[][] = [];
  let churned = 0;
  const byKind: Record<string, number> = {};
  const byMutation: Record<string, number> = {};
  const findings: InprocFinding[] = [];
  const seen = new Set<string>();
  let repeats = 0;
  let syncInstalled = 0;
  let vrrpAccepted = 0;
  const syncGroup = target.syncGroup;
  const t0 = performance.now();
  const accept = new Uint32Array(0);
  const accept6 = new Uint8Array(0);

  const anomalies: InprocAnomaly[] = [];
  const anomalySeen = new Set<string>();
  let anomalyRepeats = 0;
  const anomaly = (why: string, out: Uint8Array): void => {
    const key = `${FUZZ_KINDS[f.kind]} ${why}`;
    if (anomalySeen.has(key) || anomalies.length >= maxFindings) {
      anomalyRepeats++;
      return;
    }
    anomalySeen.add(key);
    anomalies.push({
      index: f.index,
      kind: FUZZ_KINDS[f.kind],
      mutation: FUZZ_MUTATIONS[f.mutation],
      why,
      frame: hex(frame, f.len),
      output: hex(out, out.length),
    });
  };
  const found = (stage: string, e: unknown): void => {
    const err = e instanceof Error ? e : new Error(String(e));
    const stack = err.stack ?? String(err);
    const key = `${stage} ${topFrame(stack)}`;
    if (seen.has(key)) {
      repeats++;
      return;
    }
    seen.add(key);
    findings.push({
      index: f.index,
      kind: FUZZ_KINDS[f.kind],
      mutation: FUZZ_MUTATIONS[f.mutation],
      stage,
      error: `${err.name}: ${err.message}`,
      stack,
      frame: hex(frame, f.len),
      vnet: f.hasVnet ? hex(f.vnet, 10) : null,
    });
  };

  let i = start;
  const end = start + o.count;
  for (; i < end && findings.length < maxFindings; i++) {
    gen.frame(i, frame, f);
    byKind[FUZZ_KINDS[f.kind]] = (byKind[FUZZ_KINDS[f.kind]] ?? 0) + 1;
    byMutation[FUZZ_MUTATIONS[f.mutation]] = (byMutation[FUZZ_MUTATIONS[f.mutation]] ?? 0) + 1;
    clock.now += step;
    const len = f.len;
    if (o.churnEvery !== undefined && o.churnEvery > 0 && i % o.churnEvery === o.churnEvery - 1) {
      churnRng.reseed(o.seed ^ 0x5eed, i);
      try {
        churned += churn(engine, churnRng, pendingChurn);
      } catch (e) {
        found("control", e);
        ({ engine, clock } = rebuilt(clock.now, sent, eopts));
      }
    }
    // What a packet socket with PACKET_VNET_HDR reports: the header of an aggregate, else nothing.
    // A plain frame the kernel marks CHECKSUM_PARTIAL gets the plain-partial word (packet-base.ts).
    let offload = 0;
    if (f.hasVnet && f.vnet[1] !== 0)
      offload = makeOffloadWord(f.vnet[1], f.vnet[4] | (f.vnet[5] << 8), f.vnet[0]);
    else if (f.hasVnet && (f.vnet[0] & VNET_F_NEEDS_CSUM) !== 0) offload = PLAIN_PARTIAL_WORD;
    buf.set(frame.subarray(0, len));
    sent.length = 0;
    const inputL4 = releasesQueued(frame, len)
      ? L4_BAD
      : offload === PLAIN_PARTIAL_WORD
        ? partialState(frame, len, f.vnet)
        : checksumState(frame, len);
    try {
      engine.input(f.side + 1, buf, len, clock.now, offload);
      for (const s of sent) {
        const why = outputViolation(
          s.frame,
          s.frame.length,
          inputL4,
          s.partial || (offload & 0xff0000) !== 0,
        );
        if (why !== null) anomaly(why, s.frame);
      }
      const sm = engine.syncMaster;
      if (sm !== null && (i & 1023) === 0) {
        sm.flush(clock.now);
        for (const m of sm.takeMessages()) {
          syncMessageConns(m);
          decodeSyncMessage(m, m.length, 0, () => {});
        }
      }
    } catch (e) {
      found("engine.input", e);
      ({ engine, clock } = rebuilt(clock.now, sent, eopts));
      continue;
    }
    // The other receivers see the frame as sent (the engine may have rewritten buf).
    try {
      const up = udpPayload(frame, len);
      if (up >= 0 && readU32(frame, 30) === syncGroup) {
        const n = len - up;
        buf.set(frame.subarray(up, len));
        const r = decodeSyncMessage(buf, n, 0, () => {});
        if (r.ok)
          decodeSyncMessage(buf, n, 0, (c) => {
            engine.installSynced(c, clock.now);
            syncInstalled++;
          });
      }
    } catch (e) {
      found("sync", e);
      ({ engine, clock } = rebuilt(clock.now, sent, eopts));
    }
    try {
      buf.set(frame.subarray(0, len));
      const p = parseVrrpFrame(buf, len);
      if (p !== null)
        for (const cfg of VRRP_CHECKS) {
          if (cfg.vrid !== p.vrid || (cfg.family ?? 4) !== p.family) continue;
          if (checkAdvert(cfg, buf, p) === null) {
            decodeAdvert(buf, p);
            vrrpAccepted++;
          }
        }
    } catch (e) {
      found("vrrp", e);
    }
    try {
      decapFrame(frame, buf, len, accept, accept6);
    } catch (e) {
      found("decap", e);
    }
    if (o.onProgress !== undefined && (i - start + 1) % (o.progressEvery ?? 100000) === 0)
      o.onProgress(i - start + 1);
  }
  const k = engine.counters;
  return {
    seed: o.seed,
    start,
    frames: i - start,
    seconds: (performance.now() - t0) / 1000,
    byKind,
    byMutation,
    drops: k.dropTable(),
    counters: {
      rxFrames: k.rxFrames,
      txFrames: k.txFrames,
      passed: k.passed,
      connsCreated: k.connsCreated,
      icmpErrorsSent: k.icmpErrorsSent,
      gsoIn: k.gsoIn,
    },
    connections: engine.connCount(),
    services: serviceStats(engine),
    syncInstalled,
    vrrpAccepted,
    churned,
    findings,
    repeats,
    anomalies,
    anomalyRepeats,
  };
}

function serviceStats(engine: Engine): InprocResult["services"] {
  const out: InprocResult["services"] = {};
  for (const s of engine.services()) {
    const addr = s.af === 6 && s.addr6 !== null ? `[${ipv6WordsText(s.addr6)}]` : formatIPv4(s.addr >>> 0);
    const key = s.fwmark !== 0 ? `FWM ${s.fwmark}` : `${s.protocol === 6 ? "TCP" : "UDP"} ${addr}:${s.port}`;
    out[key] = {
      conns: Number(s.stats.conns),
      inpkts: Number(s.stats.inpkts),
      outpkts: Number(s.stats.outpkts),
    };
  }
  return out;
}

function rebuilt(
  now: number,
  sent: Sent[],
  opts: Pick<InprocOptions, "sysctls" | "connCapacity">,
): { engine: Engine; clock: { now: number } } {
  const p = planEngine(sent, opts);
  p.clock.now = now;
  return { engine: p.engine, clock: p.clock };
}

function readU32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

/**
 * Where the UDP payload of an untagged IPv4 frame starts, as the kernel would hand it to a socket
 * (header checksum, lengths), or -1.
 */
function udpPayload(b: Uint8Array, len: number): number {
  if (len < 42 || b[12] !== 0x08 || b[13] !== 0 || b[14] >> 4 !== 4 || b[23] !== 17) return -1;
  const ihl = (b[14] & 15) * 4;
  const tot = (b[16] << 8) | b[17];
  if (ihl < 20 || tot < ihl + 8 || 14 + tot > len) return -1;
  let s = 0;
  for (let i = 0; i < ihl; i += 2) s += (b[14 + i] << 8) | b[15 + i];
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  if (s !== 0xffff) return -1;
  if (((b[20] << 8) | b[21]) & 0x3fff) return -1;
  const u = 14 + ihl;
  const ulen = (b[u + 4] << 8) | b[u + 5];
  if (ulen < 8 || u + ulen > 14 + tot) return -1;
  return u + 8;
}

/**
 * The real servers' decapsulator on a tunnelled frame, as its sockets would hand it over: IPv4
 * protocol 4 / 41 / 47 with the outer header (raw sockets), GUE as the UDP payload, and over IPv6
 * the payload after the fixed header (the kernel walks the rest).
 */
function decapFrame(
  frame: Uint8Array,
  buf: Uint8Array,
  len: number,
  accept: Uint32Array,
  accept6: Uint8Array,
): void {
  if (len < 34) return;
  const et = (frame[12] << 8) | frame[13];
  if (et === 0x0800) {
    const p = frame[23];
    const n = len - 14;
    buf.set(frame.subarray(14, len));
    if (p === 4) classify("ipip", buf, n, 0, accept);
    else if (p === 47) classify("gre", buf, n, 0, accept);
    else if (p === 41) ip6in4InnerOffset(buf, n, accept);
    else if (p === 17) {
      const up = udpPayload(frame, len);
      if (up < 0 || ((frame[up - 6] << 8) | frame[up - 5]) !== FUZZ_ADDR.GUE_PORT) return;
      buf.set(frame.subarray(up, len));
      classify("gue", buf, len - up, readU32(frame, 30), accept);
    }
    return;
  }
  if (et !== 0x86dd || len < 54) return;
  const nh = frame[20];
  const n = len - 54;
  buf.set(frame.subarray(54, len));
  const dst = frame.subarray(38, 54);
  if (nh === 47) gre6InnerOffset(buf, n, dst, 0, accept6);
  else if (nh === 4 || nh === 41) ipxip6InnerOffset(nh === 4 ? 4 : 6, buf, n, dst, 0, accept6);
  else if (nh === 17 && n >= 8 && ((frame[56] << 8) | frame[57]) === FUZZ_ADDR.GUE_PORT) {
    buf.set(frame.subarray(62, len));
    gue6InnerOffset(buf, len - 62, dst, 0, accept6);
  }
}
