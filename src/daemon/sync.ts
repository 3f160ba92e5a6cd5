// The connection sync daemons (docs/ha.md), as `ipvsadm --start-daemon master|backup` runs them in
// the kernel (net/netfilter/ipvs/ip_vs_sync.c), on UDP sockets of the main thread:
//
//   master: the workers write the connections to sync into messages (core/sync: the policy of
//           ip_vs_sync_conn_needed, the v1 or v0 format) and post finished ones here; this sends
//           each to group:port from the multicast interface's address, TTL mcast_ttl, no loopback
//           (start_sync_thread's master socket).
//   backup: bound to group:port, a member of the group on the multicast interface; a datagram is
//           checked here (counted, a malformed one dropped with its reason) and handed to the
//           workers, each of which installs the connections it would receive packets for.
//
// Both may run at once (active-active). Messages are never answered or acknowledged: the
// protocol is one-way, and a lost message is mended by the next sync of the same connection.
//
// The table refresh (tsvs, core/sync/refresh.ts, docs/ha.md): a master says it is there with an
// empty message every second it sent nothing else; the backup notes each master it hears (by
// source address), and one new (or silent for PEER_LOST_MS) asks this director's master to send
// its whole table, as ordinary messages. A director whose sync daemons start together warms up:
// until every master it hears has sent the marker that ends its refresh, from each of its workers
// (or the bound passes), warming() says so and the BGP announcement waits (daemon/bgp.ts).

import { createSocket, type Socket } from "node:dgram";
import type { Logger } from "pino";
import { daemonsInKernelOrder, type SyncDaemonStatus } from "../control/sync.js";
import { formatIPv4 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import { decodeSyncMessage, syncMessageConns } from "../core/sync/codec.js";
import { SYNC_HELLO_MS, SyncPeers } from "../core/sync/peers.js";
import { writeSyncHello } from "../core/sync/refresh.js";
import type { SyncDaemonConfig, SyncRole } from "../core/sync/types.js";
import type { HostLink } from "./kernel.js";
import type { WorkerPool } from "./pool.js";

interface Running {
  cfg: SyncDaemonConfig;
  sock: Socket;
  st: SyncDaemonStatus;
}

/** The warm-up of a director whose sync daemons start together. */
interface Warmup {
  done: boolean;
  onDone: () => void;
  timer: ReturnType<typeof setInterval>;
}

export interface SyncDeps {
  log: Logger;
  pool: WorkerPool;
  links: () => readonly HostLink[];
}

export class SyncDaemons {
  private master: Running | null = null;
  private backup: Running | null = null;
  private chain: Promise<void> = Promise.resolve();
  private readonly peers = new SyncPeers();
  private hello: ReturnType<typeof setInterval> | null = null;
  private sentSinceHello = false;
  private readonly helloBuf = new Uint8Array(8);
  private warm: Warmup | null = null;
  /** Refreshes this master was asked for (by peers, or at its start). */
  refreshes = 0;

  constructor(private readonly deps: SyncDeps) {
    deps.pool.onSyncOut = (msgs) => this.send(msgs);
  }

  running(role: SyncRole): boolean {
    return (role === "master" ? this.master : this.backup) !== null;
  }

  /** Starts a daemon; TSVS_ERR_DAEMON_EXISTS when one of that role runs (the kernel's -EEXIST). */
  async start(cfg: SyncDaemonConfig): Promise<void> {
    if (this.running(cfg.role))
      throw new TsvsError("TSVS_ERR_DAEMON_EXISTS", `a ${cfg.role} sync daemon is already running`);
    const link = this.deps.links().find((l) => l.name === cfg.iface);
    if (link === undefined) throw new TsvsError("TSVS_ERR_NO_DEVICE", `no such interface: ${cfg.iface}`);
    const addr = link.addrs[0]?.addr;
    if (addr === undefined) throw new TsvsError("TSVS_ERR_NO_DEVICE", `${cfg.iface} has no IPv4 address`);
    // ip_vs_genl_new_daemon: no sync daemon while a destination's family differs from its
    // service's (a TUN one: the v1 entry has one family); from here on, none may be added.
    await this.setSyncState(true);
    const ifaddr = formatIPv4(addr);
    const st: SyncDaemonStatus = {
      ...cfg,
      messagesSent: 0,
      messagesReceived: 0,
      connsSent: 0,
      connsReceived: 0,
      errors: 0,
      drops: {},
    };
    const sock = createSocket({ type: "udp4", reuseAddr: true });
    sock.on("error", (e) => {
      st.errors++;
      this.deps.log.warn({ role: cfg.role, err: e.message }, "sync socket error");
    });
    const bound = new Promise<void>((resolve, reject) => {
      sock.once("listening", () => resolve());
      sock.once("error", reject);
    });
    if (cfg.role === "master") sock.bind({ address: ifaddr, port: 0 });
    else sock.bind({ address: formatIPv4(cfg.group), port: cfg.port });
    try {
      await bound;
      if (cfg.role === "master") {
        sock.setMulticastInterface(ifaddr);
        sock.setMulticastTTL(cfg.ttl);
        sock.setMulticastLoopback(false);
      } else {
        sock.addMembership(formatIPv4(cfg.group), ifaddr);
        sock.on("message", (msg, rinfo) => this.receive(st, msg, rinfo.address));
      }
    } catch (e) {
      sock.close();
      if (!this.running("master") && !this.running("backup")) await this.setSyncState(false);
      throw new TsvsError(
        "TSVS_ERR_HOST",
        `cannot open the ${cfg.role} sync socket: ${(e as Error).message}`,
      );
    }
    const r: Running = { cfg, sock, st };
    if (cfg.role === "master") {
      this.master = r;
      this.deps.pool.notify({ type: "sync-master", daemon: cfg });
      this.startHello();
      this.askRefresh();
    } else this.backup = r;
    this.deps.log.info(
      { role: cfg.role, iface: cfg.iface, syncid: cfg.syncid, group: formatIPv4(cfg.group), port: cfg.port },
      `sync daemon started (${cfg.role})`,
    );
  }

  /** Stops a daemon; TSVS_ERR_NO_DAEMON when none of that role runs (the kernel's -ESRCH). */
  stop(role: SyncRole): void {
    const r = role === "master" ? this.master : this.backup;
    if (r === null) throw new TsvsError("TSVS_ERR_NO_DAEMON", `no ${role} sync daemon is running`);
    if (role === "master") {
      this.master = null;
      this.deps.pool.notify({ type: "sync-master", daemon: null });
      if (this.hello !== null) clearInterval(this.hello);
      this.hello = null;
    } else {
      this.backup = null;
      this.peers.clear();
    }
    r.sock.close();
    if (this.master === null && this.backup === null) void this.setSyncState(false).catch(() => {});
    this.deps.log.info({ role }, `sync daemon stopped (${role})`);
  }

  /** Tells the workers whether a sync daemon runs; refused (throws) when one may not start. */
  private async setSyncState(running: boolean): Promise<void> {
    const ms = await this.deps.pool.ask({ type: "sync-state", running });
    for (const m of ms)
      if (m.type === "result" && "error" in m.response)
        throw new TsvsError("code" in m.response ? m.response.code : "TSVS_ERR_INVALID", m.response.error);
  }

  /**
   * keepalived's lvs_sync_daemon following a VRRP instance: one role runs, the other stops. Calls
   * are chained, so that quick transitions apply in order.
   */
  follow(role: SyncRole, base: Omit<SyncDaemonConfig, "role">): Promise<void> {
    const step = async (): Promise<void> => {
      const other: SyncRole = role === "master" ? "backup" : "master";
      if (this.running(other)) this.stop(other);
      if (!this.running(role)) await this.start({ ...base, role });
    };
    const next = this.chain.then(step, step);
    this.chain = next.catch(() => {});
    return next;
  }

  list(): SyncDaemonStatus[] {
    const out: SyncDaemonStatus[] = [];
    for (const r of [this.master, this.backup])
      if (r !== null) out.push({ ...r.st, drops: { ...r.st.drops } });
    return daemonsInKernelOrder(out);
  }

  close(): void {
    for (const role of ["master", "backup"] as const) if (this.running(role)) this.stop(role);
    if (this.warm !== null) clearInterval(this.warm.timer);
  }

  /**
   * The daemons are about to start together (an lvs_sync_daemon on no VRRP instance): warm up
   * until each master heard has sent its table, or boundMs passes; onDone then (once).
   */
  beginWarmup(boundMs: number, onDone: () => void): void {
    if (this.warm !== null) return;
    const timer = setInterval(() => this.checkWarm(), 250);
    timer.unref();
    this.peers.beginWarmup(Date.now(), boundMs);
    this.warm = { done: false, onDone, timer };
  }

  /** "warming up (N entries received)" while the warm-up runs, else null. */
  warming(): string | null {
    const w = this.warm;
    if (w === null || w.done) return null;
    return `warming up (${this.peers.entries} entries received)`;
  }

  private checkWarm(): void {
    const w = this.warm;
    if (w === null || w.done) return;
    const now = Date.now();
    const state = this.peers.warmState(now, this.backup !== null);
    if (state === "warming") return;
    w.done = true;
    clearInterval(w.timer);
    this.deps.log.info(
      { entries: this.peers.entries, peers: this.peers.live(now), bound: state === "bound" },
      state === "complete" ? "sync: table received from every peer" : "sync: warm-up bound reached",
    );
    w.onDone();
  }

  /** The master's table refresh (the workers apply sync_table_refresh). */
  private askRefresh(): void {
    if (this.master === null) return;
    this.refreshes++;
    this.deps.pool.notify({ type: "sync-refresh", activeActive: this.backup !== null });
  }

  /** An empty message each SYNC_HELLO_MS this master sent nothing, at once first. */
  private startHello(): void {
    const tick = (): void => {
      const m = this.master;
      if (m === null) return;
      if (!this.sentSinceHello) {
        const n = writeSyncHello(this.helloBuf, m.cfg.syncid);
        m.sock.send(this.helloBuf.subarray(0, n), m.cfg.port, formatIPv4(m.cfg.group), (e) => {
          if (e) m.st.errors++;
        });
      }
      this.sentSinceHello = false;
    };
    this.sentSinceHello = false;
    tick();
    this.hello = setInterval(tick, SYNC_HELLO_MS);
    this.hello.unref();
  }

  /** The backup heard a master: a new one asks for this director's table. */
  private heard(from: string, data: Uint8Array, conns: number): void {
    if (this.peers.heard(from, data, conns, Date.now())) this.askRefresh();
  }

  private send(msgs: Uint8Array[]): void {
    const m = this.master;
    if (m === null) return;
    const group = formatIPv4(m.cfg.group);
    if (msgs.length > 0) this.sentSinceHello = true;
    for (const msg of msgs) {
      m.st.messagesSent++;
      m.st.connsSent += syncMessageConns(msg);
      m.sock.send(msg, m.cfg.port, group, (e) => {
        if (e) m.st.errors++;
      });
    }
  }

  private receive(st: SyncDaemonStatus, msg: Buffer, from: string): void {
    const data = new Uint8Array(msg.buffer, msg.byteOffset, msg.length);
    // Checked here (counted, dropped with its reason); the workers install the entries.
    const r = decodeSyncMessage(data, data.length, st.syncid, () => {});
    if (!r.ok) {
      st.drops[r.reason] = (st.drops[r.reason] ?? 0) + 1;
      if (r.reason !== "syncid") st.errors++;
      return;
    }
    st.messagesReceived++;
    st.connsReceived += r.conns;
    this.heard(from, data, r.conns);
    if (r.conns === 0) return;
    this.deps.pool.notify({ type: "sync-in", data: Uint8Array.from(data), syncid: st.syncid });
  }
}
