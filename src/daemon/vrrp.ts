// VRRP in the daemon (docs/ha.md): keepalived's vrrp_instance state machines (core/vrrp) on the
// daemon's own packet sockets, and what a state change means for a director.
//
//   - one packet socket per interface an instance uses, in the main thread, with a filter that
//     passes IPv4 protocol 112 only and a PACKET_MR_MULTICAST membership for the advert group's
//     MAC; polled every POLL_MS (adverts come at most every 10 ms, a takeover is decided in
//     hundreds of ms: a few ms of polling is noise next to it)
//   - adverts and gratuitous ARPs are written into a frame here and sent on that socket
//   - a state change gives the workers the addresses to hold (MASTER) and to hold back (any other
//     state) at once, as one `vrrp` notice: the engine answers ARP for, and serves, the first, and
//     neither for the second (core/route.ts setVrrp). keepalived would add and delete the addresses
//     on the interface; tsvs owns them in user space, so a takeover costs no netlink round trip
//   - then the notify scripts run (keepalived's arguments), and a sync daemon tied to an instance
//     (global_defs lvs_sync_daemon) follows it: MASTER runs the master sync daemon, any other
//     state the backup one
//   - tracked interfaces follow the host (rtnetlink, follow.ts), tracked scripts run here
//   - unicast_peer: adverts go to each peer's address and MAC instead of the group. A peer's MAC
//     is learnt from its ARP replies (the socket asks, every PEER_ARP_MS until it knows) and
//     from the adverts it sends; it follows a peer that changes its hardware

import { spawn } from "node:child_process";
import type { Logger } from "pino";
import { formatIPv4, readU16, readU32 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import { ARP_LEN, ARP_SHA, ARP_SPA } from "../core/packet/arp.js";
import { ETH_HLEN } from "../core/packet/eth.js";
import { ETH_P_ARP } from "../core/packet/flow.js";
import type { HaConfig, VrrpInstanceConfig, VrrpScriptConfig, VrrpStateName } from "../core/vrrp/config.js";
import { VrrpSyncGroup } from "../core/vrrp/group.js";
import { VrrpInstance, type VrrpSink } from "../core/vrrp/instance.js";
import {
  checkAdvert,
  decodeAdvert,
  multicastMac,
  parseVrrpFrame,
  vmacOf,
  writeAdvertFrame,
  writeArpRequestFrame,
  writeGarpFrame,
} from "../core/vrrp/packet.js";
import { openPacketSocket, type PacketSocket } from "../io/afpacket.js";
import { compileIpProtoFilter } from "../io/bpf.js";
import { addLinkMembership } from "../io/packet-common.js";
import type { HostLink } from "./kernel.js";
import type { VrrpOwnership } from "./worker.js";

const IPPROTO_VRRP = 112;
/** How often the sockets are read and the timers run. */
const POLL_MS = 5;
/** How often an unresolved unicast peer is asked for its MAC. */
const PEER_ARP_MS = 500;

/** The notify_* script of each state an instance enters (INIT has none). */
const NOTIFY_OF: Readonly<
  Record<VrrpStateName, "notifyMaster" | "notifyBackup" | "notifyFault" | "notifyStop" | null>
> = {
  INIT: null,
  BACKUP: "notifyBackup",
  MASTER: "notifyMaster",
  FAULT: "notifyFault",
  STOP: "notifyStop",
};

/** One instance in `tsvs status`. */
export interface VrrpInstanceStatus {
  name: string;
  iface: string;
  vrid: number;
  version: number;
  state: VrrpStateName;
  priority: number;
  effectivePriority: number;
  master: string | null;
  advertIntMs: number;
  masterAdvertIntMs: number;
  transitions: number;
  lastReason: string;
  addresses: string[];
  advertsRx: number;
  advertsTx: number;
  priZeroRx: number;
  priZeroTx: number;
  becameMaster: number;
  releasedMaster: number;
  /** Adverts whose address list differs from ours (keepalived counts and logs them). */
  addrListErrors: number;
  /** garp_master_delay, whole seconds (what keepalived's data dump calls "Gratuitous ARP delay"). */
  garpDelayS: number;
  drops: Record<string, number>;
}

/** A vrrp_script as keepalived's data dump shows it: GOOD/BAD, and whether a run is under way. */
export interface VrrpScriptStatus {
  name: string;
  good: boolean;
  running: boolean;
}

export interface VrrpDeps {
  log: Logger;
  /** The host's links as the daemon follows them. */
  links: () => readonly HostLink[];
  /** Gives every worker the addresses to hold and to hold back. */
  own: (o: VrrpOwnership) => void;
  /** An lvs_sync_daemon tied to an instance: that instance changed state. */
  syncRole?: (role: "master" | "backup") => void;
  /** Runs a notify script (default: spawned, detached from the daemon's output). */
  runScript?: (argv: string[]) => void;
  now?: () => number;
}

interface IfSocket {
  name: string;
  sock: PacketSocket;
  mac: Uint8Array;
  /** Unicast peers' MACs (u32 address → MAC), and when each unresolved one was last asked. */
  peerMacs: Map<number, Uint8Array>;
  peerAsked: Map<number, number>;
  /** Every unicast peer of the instances on this interface. */
  peers: Set<number>;
}

/** The addresses each state holds, from every instance's state: what the workers get. */
export function ownershipOf(
  instances: readonly { state: VrrpStateName; cfg: VrrpInstanceConfig }[],
): VrrpOwnership {
  const master = new Set<number>();
  const all = new Set<number>();
  const macs: { addr: number; mac: number[] }[] = [];
  for (const i of instances)
    for (const a of [...i.cfg.addrs, ...i.cfg.excludedAddrs]) {
      all.add(a.addr >>> 0);
      if (i.state !== "MASTER") continue;
      master.add(a.addr >>> 0);
      if (i.cfg.useVmac) macs.push({ addr: a.addr >>> 0, mac: [...vmacOf(i.cfg.vrid)] });
    }
  const out: VrrpOwnership = {
    master: [...master].sort((a, b) => a - b),
    standby: [...all].filter((a) => !master.has(a)).sort((a, b) => a - b),
  };
  if (macs.length > 0) out.macs = macs.sort((a, b) => a.addr - b.addr);
  return out;
}

/** What the workers hold before any instance has run: instances that start MASTER own theirs. */
export function initialOwnership(ha: HaConfig): VrrpOwnership {
  return ownershipOf(
    ha.instances.map((cfg) => ({
      cfg,
      state:
        cfg.initialState === "MASTER" && cfg.priority === 255 ? ("MASTER" as const) : ("BACKUP" as const),
    })),
  );
}

/** keepalived's word splitting of a notify/script line: spaces separate, quotes group. */
export function splitScript(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: string | null = null;
  let any = false;
  for (const ch of line) {
    if (quote !== null) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      any = true;
    } else if (ch === " " || ch === "\t") {
      if (cur !== "" || any) out.push(cur);
      cur = "";
      any = false;
    } else cur += ch;
  }
  if (cur !== "" || any) out.push(cur);
  return out;
}

function defaultRunScript(argv: string[]): void {
  if (argv.length === 0) return;
  const child = spawn(argv[0], argv.slice(1), { stdio: "ignore", detached: true });
  child.on("error", () => {});
  child.unref();
}

export class VrrpRunner {
  readonly instances: VrrpInstance[] = [];
  private readonly groups: VrrpSyncGroup[] = [];
  private readonly socks = new Map<string, IfSocket>();
  private readonly frame = new Uint8Array(2048);
  private timer: NodeJS.Timeout | null = null;
  private readonly linkUp = new Map<string, boolean>();
  private readonly scripts: ScriptTracker[] = [];
  private lastOwnership = "";
  private readonly now: () => number;
  private readonly runScript: (argv: string[]) => void;

  constructor(
    readonly ha: HaConfig,
    private readonly deps: VrrpDeps,
  ) {
    this.now = deps.now ?? (() => performance.now());
    this.runScript = deps.runScript ?? defaultRunScript;
    const sink: VrrpSink = {
      advert: (inst, prio) => this.sendAdvert(inst, prio),
      transition: (inst, from, to, reason) => this.transition(inst, from, to, reason),
      garp: (inst) => this.sendGarps(inst),
    };
    const byName = new Map<string, VrrpInstance>();
    for (const cfg of ha.instances) {
      const inst = new VrrpInstance(cfg, sink);
      this.instances.push(inst);
      byName.set(cfg.name, inst);
    }
    for (const g of ha.syncGroups) {
      const members = g.members.map((m) => byName.get(m)).filter((x): x is VrrpInstance => x !== undefined);
      this.groups.push(new VrrpSyncGroup(g, members));
    }
    for (const s of ha.scripts) {
      const used =
        this.instances.some((i) => i.cfg.trackScripts.some((t) => t.name === s.name)) ||
        ha.syncGroups.some((g) => g.trackScripts.some((t) => t.name === s.name));
      if (used) this.scripts.push(new ScriptTracker(s, (up) => this.tracked("script", s.name, up)));
    }
  }

  /** Opens the sockets and starts every instance (throws TsvsError when an interface cannot be used). */
  start(): void {
    const now = this.now();
    for (const inst of this.instances) {
      const link = this.link(inst.cfg.iface);
      if (link === undefined)
        throw new TsvsError(
          "TSVS_ERR_HOST",
          `vrrp_instance ${inst.cfg.name}: no interface ${inst.cfg.iface}`,
        );
      this.open(inst.cfg.iface, inst.cfg);
      inst.primaryAddr = inst.cfg.unicastSrc ?? link.addrs[0]?.addr ?? 0;
    }
    this.pushOwnership();
    for (const l of this.deps.links()) this.linkUp.set(l.name, l.up && l.lowerUp);
    for (const inst of this.instances) {
      // keepalived knows the links before an instance starts, and tracks the instance's own
      // interface: down is FAULT (told before start, so an owner never starts MASTER to leave).
      for (const name of this.trackedIfaces(inst)) {
        const up = this.linkUp.get(name) ?? false;
        if (!up) inst.setTracked("interface", name, false, now);
      }
      inst.start(now);
    }
    for (const s of this.scripts) s.start();
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.deps.log.info(
      { instances: this.instances.map((i) => ({ name: i.cfg.name, vrid: i.cfg.vrid, state: i.state })) },
      "VRRP started",
    );
  }

  /** Leaves MASTER with a priority-0 advert (the backup takes over at once) and closes the sockets. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const s of this.scripts) s.stop();
    const now = this.now();
    for (const inst of this.instances) inst.stop(now);
    for (const s of this.socks.values()) {
      s.sock.flush();
      s.sock.close();
    }
    this.socks.clear();
  }

  status(): VrrpInstanceStatus[] {
    return this.instances.map((i) => ({
      name: i.cfg.name,
      iface: i.cfg.iface,
      vrid: i.cfg.vrid,
      version: i.cfg.version,
      state: i.state,
      priority: i.cfg.priority,
      effectivePriority: i.effectivePriority,
      master: i.masterAddr === 0 ? null : formatIPv4(i.masterAddr),
      advertIntMs: i.cfg.advertIntMs,
      masterAdvertIntMs: i.masterAdverIntMs,
      transitions: i.transitions,
      lastReason: i.lastReason,
      addresses: i.cfg.addrs.map((a) => `${formatIPv4(a.addr)}/${a.prefix}`),
      advertsRx: i.stats.advertsRx,
      advertsTx: i.stats.advertsTx,
      priZeroRx: i.stats.priZeroRx,
      priZeroTx: i.stats.priZeroTx,
      becameMaster: i.stats.becameMaster,
      releasedMaster: i.stats.releasedMaster,
      addrListErrors: i.stats.addrListErrors,
      garpDelayS: Math.trunc(i.cfg.garpMasterDelayMs / 1000),
      drops: { ...i.stats.drops },
    }));
  }

  scriptStatus(): VrrpScriptStatus[] {
    return this.scripts.map((s) => s.status());
  }

  private link(name: string): HostLink | undefined {
    return this.deps.links().find((l) => l.name === name);
  }

  private trackedIfaces(inst: VrrpInstance): string[] {
    return [inst.cfg.iface, ...inst.cfg.trackInterfaces.map((t) => t.name)];
  }

  private open(name: string, cfg: VrrpInstanceConfig): void {
    const unicast = cfg.unicastPeers.length > 0;
    const have = this.socks.get(name);
    if (have !== undefined) {
      for (const p of cfg.unicastPeers) have.peers.add(p >>> 0);
      if (cfg.useVmac) addLinkMembership(have.sock.fd, have.sock.ifindex, "unicast", vmacOf(cfg.vrid));
      if (unicast) have.sock.attachFilter(compileIpProtoFilter(IPPROTO_VRRP, 0x10000, true));
      return;
    }
    const sock = openPacketSocket(name, {
      vnetHdr: false,
      snaplen: 2048,
      batch: 16,
      rcvbuf: 0,
      auxdata: false,
    });
    try {
      sock.attachFilter(compileIpProtoFilter(IPPROTO_VRRP, 0x10000, unicast));
      addLinkMembership(sock.fd, sock.ifindex, "multicast", multicastMac(cfg.mcastDst));
      if (cfg.useVmac) addLinkMembership(sock.fd, sock.ifindex, "unicast", vmacOf(cfg.vrid));
    } catch (e) {
      sock.close();
      throw e;
    }
    this.socks.set(name, {
      name,
      sock,
      mac: sock.mac,
      peerMacs: new Map(),
      peerAsked: new Map(),
      peers: new Set(cfg.unicastPeers.map((p) => p >>> 0)),
    });
  }

  /** One pass: adverts in, tracked interfaces, timers. */
  private poll(): void {
    const now = this.now();
    for (const s of this.socks.values()) {
      const n = s.sock.recvBatch(0);
      for (let i = 0; i < n; i++) this.input(s, s.sock.frame(i), s.sock.length(i), now);
    }
    for (const l of this.deps.links()) {
      const up = l.up && l.lowerUp;
      if (this.linkUp.get(l.name) !== up) {
        this.linkUp.set(l.name, up);
        this.tracked("interface", l.name, up);
      }
    }
    for (const inst of this.instances) if (inst.nextDeadline() <= now) inst.tick(now);
    for (const s of this.socks.values()) s.sock.flush();
  }

  private input(s: IfSocket, frame: Uint8Array, len: number, now: number): void {
    if (len >= ETH_HLEN + ARP_LEN && readU16(frame, 12) === ETH_P_ARP) {
      // A unicast peer's MAC: from any ARP it sends (its reply to our request, its own requests).
      const spa = readU32(frame, ETH_HLEN + ARP_SPA);
      if (s.peers.has(spa)) s.peerMacs.set(spa, frame.slice(ETH_HLEN + ARP_SHA, ETH_HLEN + ARP_SHA + 6));
      return;
    }
    const p = parseVrrpFrame(frame, len);
    if (p === null) return;
    if (s.peers.has(p.srcIp >>> 0)) s.peerMacs.set(p.srcIp >>> 0, frame.slice(6, 12));
    for (const inst of this.instances) {
      if (inst.cfg.iface !== s.name || inst.cfg.vrid !== p.vrid) continue;
      const why = checkAdvert(inst.cfg, frame, p);
      if (why !== null) {
        inst.stats.drops[why] = (inst.stats.drops[why] ?? 0) + 1;
        continue;
      }
      inst.receive(decodeAdvert(frame, p), now);
    }
  }

  private tracked(kind: "interface" | "script", name: string, up: boolean): void {
    const now = this.now();
    // An instance ignores what it does not track (its own interface it tracks by itself).
    for (const inst of this.instances) inst.setTracked(kind, name, up, now);
    for (const g of this.groups) g.setTracked(kind, name, up, now);
    if (kind === "interface" && up) {
      // The primary address may have changed while the link was down.
      for (const inst of this.instances)
        if (inst.cfg.iface === name && inst.cfg.unicastSrc === null)
          inst.primaryAddr = this.link(name)?.addrs[0]?.addr ?? inst.primaryAddr;
    }
  }

  /** The workers get the addresses to hold and hold back, when they changed. */
  private pushOwnership(): void {
    const o = ownershipOf(this.instances);
    const key = JSON.stringify(o);
    if (key === this.lastOwnership) return;
    this.lastOwnership = key;
    this.deps.own(o);
  }

  private sendAdvert(inst: VrrpInstance, priority: number): void {
    const s = this.socks.get(inst.cfg.iface);
    if (s === undefined) return;
    const cfg = inst.cfg;
    const srcMac = cfg.useVmac ? vmacOf(cfg.vrid) : s.mac;
    if (cfg.unicastPeers.length === 0) {
      const len = writeAdvertFrame(this.frame, 0, {
        srcMac,
        dstMac: multicastMac(cfg.mcastDst),
        srcIp: inst.primaryAddr,
        dstIp: cfg.mcastDst,
        cfg,
        priority,
      });
      if (len > 0) s.sock.send(this.frame, 0, len);
    } else {
      const now = this.now();
      for (const peer of cfg.unicastPeers) {
        const dstMac = s.peerMacs.get(peer >>> 0);
        if (dstMac === undefined) {
          this.askPeer(s, inst.primaryAddr, peer >>> 0, now);
          continue;
        }
        const len = writeAdvertFrame(this.frame, 0, {
          srcMac,
          dstMac,
          srcIp: inst.primaryAddr,
          dstIp: peer,
          cfg,
          priority,
        });
        if (len > 0) s.sock.send(this.frame, 0, len);
      }
    }
    s.sock.flush();
  }

  /** An ARP request for an unresolved unicast peer, at most every PEER_ARP_MS. */
  private askPeer(s: IfSocket, src: number, peer: number, now: number): void {
    if (now - (s.peerAsked.get(peer) ?? Number.NEGATIVE_INFINITY) < PEER_ARP_MS) return;
    s.peerAsked.set(peer, now);
    const len = writeArpRequestFrame(this.frame, 0, s.mac, src, peer);
    if (len > 0) s.sock.send(this.frame, 0, len);
  }

  private sendGarps(inst: VrrpInstance): void {
    const cfg = inst.cfg;
    for (const a of [...cfg.addrs, ...cfg.excludedAddrs]) {
      const s = this.socks.get(a.dev ?? cfg.iface) ?? this.socks.get(cfg.iface);
      if (s === undefined) continue;
      const len = writeGarpFrame(this.frame, 0, cfg.useVmac ? vmacOf(cfg.vrid) : s.mac, a.addr);
      s.sock.send(this.frame, 0, len);
    }
    for (const s of this.socks.values()) s.sock.flush();
  }

  private transition(inst: VrrpInstance, from: VrrpStateName, to: VrrpStateName, reason: string): void {
    this.pushOwnership();
    this.deps.log.info(
      { instance: inst.cfg.name, vrid: inst.cfg.vrid, from, to, reason, priority: inst.effectivePriority },
      `VRRP_Instance(${inst.cfg.name}) Entering ${to} STATE`,
    );
    const cfg = inst.cfg;
    const field = NOTIFY_OF[to];
    const script = field === null ? null : cfg[field];
    if (script !== null) this.runScript(splitScript(script));
    if (cfg.notify !== null)
      this.runScript([...splitScript(cfg.notify), "INSTANCE", cfg.name, to, String(inst.effectivePriority)]);
    const sd = this.ha.lvsSyncDaemon;
    if (sd !== null && sd.instance === cfg.name && this.deps.syncRole !== undefined && to !== "STOP")
      this.deps.syncRole(to === "MASTER" ? "master" : "backup");
  }
}

/** A vrrp_script: run every interval (timeout kills it), up after `rise` successes, down after `fall` failures. */
class ScriptTracker {
  private timer: NodeJS.Timeout | null = null;
  private up: boolean;
  private streak = 0;
  private running = false;

  private readonly argv: string[];

  constructor(
    private readonly cfg: VrrpScriptConfig,
    private readonly onChange: (up: boolean) => void,
  ) {
    this.argv = splitScript(cfg.script);
    this.up = !cfg.initFail;
  }

  start(): void {
    if (!this.up) this.onChange(false);
    this.timer = setInterval(() => this.run(), this.cfg.intervalMs);
    this.run();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  status(): VrrpScriptStatus {
    return { name: this.cfg.name, good: this.up, running: this.running };
  }

  private run(): void {
    if (this.running || this.argv.length === 0) return;
    this.running = true;
    const child = spawn(this.argv[0], this.argv.slice(1), { stdio: "ignore", timeout: this.cfg.timeoutMs });
    const done = (ok: boolean): void => {
      if (!this.running) return;
      this.running = false;
      this.result(ok);
    };
    child.on("error", () => done(false));
    child.on("exit", (code) => done(code === 0));
  }

  private result(ok: boolean): void {
    if (ok === this.up) {
      this.streak = 0;
      return;
    }
    this.streak++;
    if (this.streak >= (ok ? this.cfg.rise : this.cfg.fall)) {
      this.up = ok;
      this.streak = 0;
      this.onChange(ok);
    }
  }
}
