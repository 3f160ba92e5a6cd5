// The data path's warm-up: before a worker reads its first frame, it runs a throwaway engine over
// the in-memory lab (src/sim) with every forwarding method, so that V8 has seen each branch of the
// packet path and compiled it. Without it the first seconds of real traffic run interpreted and
// trigger TurboFan jobs of 10-260 ms each (the engine's inlining budget makes its functions big),
// plus deoptimisations as new branches appear ("insufficient type feedback"); on the bench's
// pinned director those jobs share the worker's CPU and delayed its packets by 1.4-5.9 ms
// (perf sched; docs/bench.md "The latency tail"). Compiling happens on V8's helper threads while this loop
// keeps feeding the functions, so the budget is wall time, not a packet count.

import { ControlApi } from "../control/api.js";
import type { ControlCommand } from "../control/commands.js";
import { destSpec, serviceSpec } from "../control/spec.js";
import { Fwd } from "../core/dest.js";
import { Engine, type EngineOptions } from "../core/engine.js";
import { type HttpGetOptions, httpGet, udpRequest } from "../sim/apps.js";
import { SimClock } from "../sim/clock.js";
import { buildLab, type LabMethod } from "../sim/topology.js";

const METHODS: readonly [LabMethod, Fwd][] = [
  ["nat", Fwd.Masq],
  ["dr", Fwd.Route],
  ["tun", Fwd.Tunnel],
  ["fullnat", Fwd.FullNat],
];
/** Small: the warm-up never holds more than a round's connections. */
const CAPACITY = 4096;
const TICK_MS = 100;
/** Simulated time a round may take before it is abandoned (it never should). */
const ROUND_LIMIT_MS = 60_000;

export interface WarmupResult {
  rounds: number;
  /** Frames the throwaway engines took in. */
  frames: number;
  /** Requests (HTTP, UDP, ping) that got no answer: none, unless the engine or the lab broke. */
  failed: number;
  ms: number;
}

/** Runs rounds of traffic over every method until `budgetMs` of wall time has passed. */
export function warmUp(budgetMs: number): WarmupResult {
  const start = performance.now();
  const out: WarmupResult = { rounds: 0, frames: 0, failed: 0, ms: 0 };
  while (performance.now() - start < budgetMs) {
    for (const [method, fwd] of METHODS) {
      const r = round(method, fwd);
      out.frames += r.frames;
      out.failed += r.failed;
    }
    out.rounds++;
  }
  out.ms = performance.now() - start;
  return out;
}

/** One method: HTTP requests with and without keep-alive, a download, UDP and a ping. */
function round(method: LabMethod, fwd: Fwd): { frames: number; failed: number } {
  const clock = new SimClock();
  const lab = buildLab(clock, method);
  let frames = 0;
  let engine: Engine | null = null;
  const send = lab.attachDirector((i, b, l, now) => {
    frames++;
    engine?.input(i, b, l, now);
  });
  // Two senders of different source functions make the engine's call of its sender megamorphic
  // from the first round, so the worker's own sender later is no new target: a monomorphic call
  // site would deoptimise the whole inlined path at the first real frame ("wrong feedback cell").
  const sender: EngineOptions["send"] =
    fwd === Fwd.Masq || fwd === Fwd.Tunnel
      ? (i, b, o, l) => send(i, b, o, l)
      : (i, b, o, l) => {
          send(i, b, o, l);
        };
  engine = new Engine({
    connCapacity: CAPACITY,
    interfaces: lab.directorIfaces,
    routes: lab.directorRoutes,
    lips: method === "fullnat" ? [lab.lip] : [],
    ownInterfaceAddresses: true,
    send: sender,
  });
  const eng = engine;
  const api = new ControlApi(eng, () => clock.now);
  const cmds: ControlCommand[] = [];
  for (const [protocol, port] of [
    [6, 80],
    [17, 53],
  ] as const) {
    const svc = serviceSpec({ protocol, addr: lab.vip, port, scheduler: "rr" });
    cmds.push({ op: "add-service", svc });
    // r1-r3: the LAN, where DR reaches too (r4 is routed).
    for (const rs of lab.servers.slice(0, 3))
      cmds.push({ op: "add-dest", key: svc, dest: destSpec(svc, { addr: rs.addr, fwd }) });
  }
  api.apply(cmds);

  const client = lab.hosts.client;
  let pending = 0;
  let failed = 0;
  const done = (err: Error | null, res: unknown): void => {
    pending--;
    if (err !== null || res === null) failed++;
  };
  for (let i = 0; i < 12; i++) {
    pending++;
    httpGet(client, lab.vip, 80, "/", { keepalive: false }, done);
  }
  pending++;
  const series = (left: number, socket?: HttpGetOptions["socket"]): void => {
    httpGet(client, lab.vip, 80, "/", { keepalive: true, socket }, (err, res) => {
      if (err !== null || res === null || left === 0 || !res.keepalive) {
        if (res?.socket?.state === "ESTABLISHED") res.socket.end();
        done(err, res);
        return;
      }
      series(left - 1, res.socket);
    });
  };
  series(20);
  pending++;
  httpGet(client, lab.vip, 80, "/bytes/65536", { timeoutMs: ROUND_LIMIT_MS }, done);
  for (let i = 0; i < 8; i++) {
    pending++;
    udpRequest(client, lab.vip, 53, "warm-up", { timeoutMs: 1000 }, done);
  }
  pending++;
  client.ping(lab.vip, done);

  let nextTick = 0;
  const deadline = clock.now + ROUND_LIMIT_MS;
  while (pending > 0 && clock.now < deadline) {
    clock.runUntil(Math.min(clock.nextTime(), nextTick, deadline));
    if (clock.now >= nextTick) {
      eng.tick(clock.now);
      nextTick = clock.now + TICK_MS;
    }
  }
  return { frames, failed: failed + pending };
}
