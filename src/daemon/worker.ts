// The data plane: one worker_thread owning one AF_PACKET socket per interface and the engine.
// A synchronous loop (docs/daemon.md, docs/io.md): receive a batch on every socket → engine.input
// per frame → the engine's frames go out through the socket of the interface it names → flush
// → engine.tick → control messages. It never returns to the event loop while running: control
// messages are pulled with receiveMessageOnPort between batches, and the only blocking call is
// one poll(2) over all sockets with a short timeout when every socket was empty.

import { type MessagePort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { runIpvsadm } from "../cli/ipvsadm/run.js";
import { formatIPv4 } from "../core/addr.js";
import { Fwd } from "../core/dest.js";
import { Engine } from "../core/engine.js";
import type { IfaceConfig, RouteConfig } from "../core/route.js";
import { engineBackend } from "../director/ipvsadm-backend.js";
import { openPacketSocket, type PacketSocket } from "../io/afpacket.js";
import { addressOf, libc, PACKET_OTHERHOST, POLLIN, SIZEOF_POLLFD } from "../io/libc.js";
import type { IfaceStatus, IpvsadmReply, WorkerStatus } from "./protocol.js";

export interface WorkerInit {
  interfaces: IfaceConfig[];
  routes: RouteConfig[];
  lips: number[];
  port: MessagePort;
  /** poll(2) timeout when idle: bounds the latency of control messages and ticks. */
  idleMs: number;
  batch: number;
}

/** A NAT/FULLNAT destination whose replies tsvs consumes: proto 0 = TCP and UDP (fwmark services). */
export interface GuardDest {
  addr: number;
  proto: number;
  port: number;
}

/** What the kernel must not see (nft.ts turns it into rules). */
export interface Guard {
  owned: number[];
  nat: GuardDest[];
}

export type ToWorker =
  | { type: "ipvsadm"; id: number; argv: string[]; stdin?: string }
  | { type: "status"; id: number }
  | { type: "stop" };

export type FromWorker =
  | { type: "ready"; guard: Guard }
  | { type: "reply"; id: number; result: IpvsadmReply; guard: Guard }
  | { type: "status"; id: number; status: WorkerStatus }
  | { type: "log"; level: "info" | "warn" | "error"; msg: string; data?: Record<string, unknown> }
  | { type: "stopped" };

/** VIPs and LIPs, and the NAT/FULLNAT destinations, sorted so that equal guards compare equal. */
export function guardOf(engine: Engine): Guard {
  const owned = new Set<number>(engine.lips);
  const nat = new Map<string, GuardDest>();
  for (const s of engine.services()) {
    if (s.fwmark === 0) owned.add(s.addr >>> 0);
    for (const d of s.dests) {
      if (d.fwd !== Fwd.Masq && d.fwd !== Fwd.FullNat) continue;
      const g = { addr: d.addr >>> 0, proto: s.fwmark === 0 ? s.protocol : 0, port: d.port };
      nat.set(`${g.addr}/${g.proto}/${g.port}`, g);
    }
  }
  return {
    owned: [...owned].sort((a, b) => a - b),
    nat: [...nat.values()].sort((a, b) => a.addr - b.addr || a.proto - b.proto || a.port - b.port),
  };
}

function run(init: WorkerInit): void {
  const port = init.port;
  const post = (m: FromWorker): void => port.postMessage(m);
  const sockets: PacketSocket[] = [];
  const byIfindex: (PacketSocket | undefined)[] = [];
  let noSocket = 0;
  let otherHost = 0;
  try {
    for (const c of init.interfaces) {
      const s = openPacketSocket(c.name, { batch: init.batch });
      sockets.push(s);
      byIfindex[s.ifindex] = s;
    }
  } catch (e) {
    for (const s of sockets) s.close();
    throw e;
  }
  const engine = new Engine({
    interfaces: init.interfaces,
    routes: init.routes,
    lips: init.lips,
    ownInterfaceAddresses: false,
    random: () => (Math.random() * 0x100000000) >>> 0,
    send: (ifindex, buf, off, len) => {
      const s = byIfindex[ifindex];
      if (s === undefined) noSocket++;
      else s.send(buf, off, len);
    },
  });
  const now = (): number => performance.now();
  const backend = engineBackend(engine, now);
  const c = libc();
  const pollMem = c.koffi.alloc("uint8_t", SIZEOF_POLLFD * sockets.length);
  const pollAddr = addressOf(pollMem);
  const pollDv = new DataView(c.koffi.view(pollMem, SIZEOF_POLLFD * sockets.length));
  sockets.forEach((s, i) => {
    pollDv.setInt32(i * SIZEOF_POLLFD, s.fd, true);
    pollDv.setInt16(i * SIZEOF_POLLFD + 4, POLLIN, true);
  });
  const kernelDrops = new Float64Array(sockets.length);
  const started = now();
  let loops = 0;
  let batches = 0;
  let busyMs = 0;
  post({ type: "ready", guard: guardOf(engine) });

  const status = (): WorkerStatus => {
    const ifs: IfaceStatus[] = sockets.map((s, i) => {
      try {
        kernelDrops[i] += s.kernelStats().drops;
      } catch {
        // socket error: reported by the loop
      }
      const cfg = init.interfaces[i];
      return {
        name: s.ifname,
        ifindex: s.ifindex,
        mac: [...s.mac].map((b) => b.toString(16).padStart(2, "0")).join(":"),
        mtu: s.mtu,
        addrs: cfg.addrs.map((a) => `${formatIPv4(a.addr)}/${a.prefix}`),
        rxFrames: s.counters.rxFrames,
        txFrames: s.counters.txFrames,
        rxTruncated: s.counters.rxTruncated,
        txDropped: s.counters.txDropped,
        txErrors: s.counters.txErrors,
        kernelDrops: kernelDrops[i],
      };
    });
    const k = engine.counters;
    let dests = 0;
    for (const s of engine.services()) dests += s.dests.length;
    return {
      interfaces: ifs,
      loops,
      batches,
      busyMs,
      uptimeMs: now() - started,
      services: engine.services().length,
      dests,
      connections: engine.connCount(),
      counters: {
        rxFrames: k.rxFrames,
        txFrames: k.txFrames,
        passed: k.passed,
        arpReplies: k.arpReplies,
        arpRequests: k.arpRequests,
        echoReplies: k.echoReplies,
        icmpErrorsSent: k.icmpErrorsSent,
        connsCreated: k.connsCreated,
        connsExpired: k.connsExpired,
        otherHost,
        noSocket,
      },
      drops: k.dropTable(),
    };
  };

  // Returns false when asked to stop.
  const control = (): boolean => {
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
      const msg = m.message as ToWorker;
      switch (msg.type) {
        case "stop":
          return false;
        case "status":
          post({ type: "status", id: msg.id, status: status() });
          break;
        case "ipvsadm": {
          let result: IpvsadmReply;
          try {
            result = runIpvsadm(msg.argv, backend, msg.stdin ?? "");
          } catch (e) {
            // runIpvsadm answers every ipvsadm error itself; anything else is a tsvs bug.
            result = {
              code: 255,
              stdout: "",
              stderr: `tsvs: internal error: ${e instanceof Error ? e.message : String(e)}\n`,
            };
            post({
              type: "log",
              level: "error",
              msg: "ipvsadm command failed",
              data: { argv: msg.argv, err: String(e) },
            });
          }
          post({ type: "reply", id: msg.id, result, guard: guardOf(engine) });
          break;
        }
      }
    }
    return true;
  };

  try {
    for (;;) {
      loops++;
      let got = 0;
      for (let si = 0; si < sockets.length; si++) {
        const s = sockets[si];
        const n = s.recvBatch(0);
        if (n === 0) continue;
        const t = now();
        for (let i = 0; i < n; i++) {
          // Unicast for another host (a bridge flooding, promiscuous peers): not ours, as in ip_rcv.
          if (s.pktType(i) === PACKET_OTHERHOST) {
            otherHost++;
            continue;
          }
          engine.input(s.ifindex, s.frame(i), s.length(i), t);
        }
        got += n;
        batches++;
        busyMs += now() - t;
      }
      engine.tick(now());
      for (let si = 0; si < sockets.length; si++) sockets[si].flush();
      if (!control()) break;
      if (got === 0 && init.idleMs > 0) {
        const p = c.poll(pollAddr, sockets.length, init.idleMs);
        if (p < 0 && c.errno() !== 4 /* EINTR */) throw new Error(`poll: errno ${c.errno()}`);
      }
    }
  } finally {
    for (const s of sockets) s.close();
    c.koffi.free(pollMem);
  }
  post({ type: "stopped" });
  port.close();
}

if (
  workerData !== null &&
  typeof workerData === "object" &&
  (workerData as { tsvsWorker?: boolean }).tsvsWorker
) {
  run(workerData as WorkerInit);
}
