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
//   - IPv6 instances (VRRPv3, RFC 5798 §5.1.2): the same socket passes IPv6 next header 112 too
//     and joins ff02::12's MAC 33:33:00:00:00:12, and a UDP socket joins the group itself, so that
//     the kernel sends MLD reports (an MLD-snooping switch forwards ff02::12 only to ports that
//     report it, as keepalived's raw socket does); adverts go from the interface's link-local
//     address (or unicast_src_ip), hop limit 255, traffic class 0xc0, as keepalived's raw socket
//     sends them. The workers answer NS for a MASTER's IPv6 addresses (RouteTable.setVrrp6) and
//     the new master sends keepalived's unsolicited NAs (ndp.ts writeUnsolicitedNa: ff02::1, O,
//     R when the interface forwards, the target link-layer option) where it sends gratuitous ARPs
//     for IPv4, with the same repeat and delay timers. An IPv6 unicast peer's MAC comes from its
//     neighbour advertisements (the socket solicits, every PEER_ARP_MS until it knows) and adverts
//   - global_defs vrrp_garp_interval / vrrp_gna_interval space the GARPs / NAs of one interface as
//     keepalived does (vrrp_arp.c, vrrp_ndisc.c, vrrp_arp_thread): one goes at once, the next no
//     sooner than the interval after it; an address asked for again while it waits is sent once

import { type ChildProcess, spawn } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import type { Logger } from "pino";
import { canonicalIPv6, formatIPv4, formatIPv6, parseIPv6, readU16, readU32 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import { ARP_LEN, ARP_SHA, ARP_SPA } from "../core/packet/arp.js";
import { ETH_HLEN } from "../core/packet/eth.js";
import { ETH_P_ARP, ETH_P_IPV6 } from "../core/packet/flow.js";
import { NDISC_NEIGHBOUR_ADVERTISEMENT } from "../core/packet/icmpv6.js";
import { IP6_OK, IPV6_HLEN, Ipv6Walk, ipv6Walk, NEXTHDR_ICMPV6 } from "../core/packet/ipv6.js";
import {
  NDP_OK,
  NdpMsg,
  ndpParse,
  UNSOLICITED_NA_FRAME_LEN,
  writeUnsolicitedNa,
} from "../core/packet/ndp.js";
import type {
  HaConfig,
  VrrpAddr,
  VrrpInstanceConfig,
  VrrpScriptConfig,
  VrrpStateName,
} from "../core/vrrp/config.js";
import { VrrpSyncGroup } from "../core/vrrp/group.js";
import { VrrpInstance, type VrrpSink } from "../core/vrrp/instance.js";
import { UpdatePacer } from "../core/vrrp/pacer.js";
import {
  checkAdvert,
  decodeAdvert,
  multicastMac,
  multicastMac6,
  parseVrrpFrame,
  vmac6Of,
  vmacOf,
  writeAdvertFrame,
  writeAdvertFrame6,
  writeArpRequestFrame,
  writeGarpFrame,
  writeNsFrame,
} from "../core/vrrp/packet.js";
import { planVrrpReload, type VrrpReloadPlan } from "../core/vrrp/reload.js";
import { openPacketSocket, type PacketSocket } from "../io/afpacket.js";
import { addLinkMembership } from "../io/packet-common.js";
import { compileVrrpFilter, type VrrpFilterSpec } from "../io/vrrp-filter.js";
import type { HostLink } from "./kernel.js";
import { runScript, splitScript } from "./scripts.js";
import type { VrrpOwnership } from "./worker.js";

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
  /** 6: VRRPv3 over IPv6 (master and addresses are IPv6 text); absent from older daemons: 4. */
  family?: 4 | 6;
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

/** A gratuitous ARP or unsolicited NA waiting for vrrp_garp_interval / vrrp_gna_interval. */
interface PendingUpdate {
  inst: VrrpInstance;
  a: VrrpAddr;
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
  /** The same for IPv6 peers (formatIPv6's text), learnt from NAs and adverts. */
  peerMacs6: Map<string, Uint8Array>;
  peerAsked6: Map<string, number>;
  peers6: Set<string>;
  /** What the socket's filter passes, and the link-layer groups and unicast MACs it joined. */
  filter: VrrpFilterSpec;
  joined: Set<string>;
  /** vrrp_garp_interval / vrrp_gna_interval on this interface (core/vrrp/pacer.ts). */
  garps: UpdatePacer<PendingUpdate>;
  nas: UpdatePacer<PendingUpdate>;
}

/** The virtual MAC of an instance (use_vmac): 00:00:5e:00:01:VRID, or 00:00:5e:00:02:VRID for IPv6. */
function instanceVmac(cfg: VrrpInstanceConfig): Uint8Array {
  return cfg.family === 6 ? vmac6Of(cfg.vrid) : vmacOf(cfg.vrid);
}

/** fe80::/10 (ipv6_addr_type's IPV6_ADDR_LINKLOCAL). */
function isLinkLocal(text: string): boolean {
  const b = parseIPv6(text);
  return b !== null && b[0] === 0xfe && (b[1] & 0xc0) === 0x80;
}

/** The text of a VRRP address, with its prefix (status, logs). */
function addrText(a: VrrpAddr): string {
  return `${a.addr6 ?? formatIPv4(a.addr)}/${a.prefix}`;
}

/**
 * The addresses each state holds, from every instance's state: what the workers get. IPv6
 * addresses (an IPv6 instance's, or the IPv6 ones of a virtual_ipaddress_excluded) go in the `6`
 * lists, present only when there are some.
 */
export function ownershipOf(
  instances: readonly { state: VrrpStateName; cfg: VrrpInstanceConfig }[],
): VrrpOwnership {
  const master = new Set<number>();
  const all = new Set<number>();
  const macs: { addr: number; mac: number[] }[] = [];
  const master6 = new Set<string>();
  const all6 = new Set<string>();
  const macs6: { addr6: string; mac: number[] }[] = [];
  for (const i of instances)
    for (const a of [...i.cfg.addrs, ...i.cfg.excludedAddrs]) {
      const mac = i.cfg.useVmac ? [...instanceVmac(i.cfg)] : null;
      if (a.addr6 !== undefined) {
        all6.add(a.addr6);
        if (i.state !== "MASTER") continue;
        master6.add(a.addr6);
        if (mac !== null) macs6.push({ addr6: a.addr6, mac });
        continue;
      }
      all.add(a.addr >>> 0);
      if (i.state !== "MASTER") continue;
      master.add(a.addr >>> 0);
      if (mac !== null) macs.push({ addr: a.addr >>> 0, mac });
    }
  const out: VrrpOwnership = {
    master: [...master].sort((a, b) => a - b),
    standby: [...all].filter((a) => !master.has(a)).sort((a, b) => a - b),
  };
  if (macs.length > 0) out.macs = macs.sort((a, b) => a.addr - b.addr);
  if (all6.size > 0) {
    out.master6 = [...master6].sort();
    out.standby6 = [...all6].filter((a) => !master6.has(a)).sort();
    if (macs6.length > 0) out.macs6 = macs6.sort((a, b) => (a.addr6 < b.addr6 ? -1 : 1));
  }
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

export class VrrpRunner {
  readonly instances: VrrpInstance[] = [];
  private groups: VrrpSyncGroup[] = [];
  private readonly socks = new Map<string, IfSocket>();
  private readonly frame = new Uint8Array(2048);
  private timer: NodeJS.Timeout | null = null;
  private readonly linkUp = new Map<string, boolean>();
  private scripts: ScriptTracker[] = [];
  private lastOwnership = "";
  /** While a reload switches instances: the workers hear the outcome once, not each step. */
  private switching = false;
  private readonly now: () => number;
  private readonly runScript: (argv: string[]) => void;
  private readonly sink: VrrpSink;
  /** IPv6 instances' addresses as bytes, and their group and peers: parsed once. */
  private readonly bytes6 = new Map<VrrpInstance, { addrs: Uint8Array[]; group: Uint8Array }>();
  /** IPv6 instances already logged as having no address to send from. */
  private readonly noSource6 = new Set<VrrpInstance>();
  private readonly walk = new Ipv6Walk();
  private readonly ndp = new NdpMsg();
  /** IPv6 group memberships (MLD), one UDP socket per interface and group. */
  private readonly mld = new Map<string, Socket>();

  constructor(
    private cfg: HaConfig,
    private readonly deps: VrrpDeps,
  ) {
    this.now = deps.now ?? (() => performance.now());
    this.runScript = deps.runScript ?? runScript;
    this.sink = {
      advert: (inst, prio) => this.sendAdvert(inst, prio),
      transition: (inst, from, to, reason) => this.transition(inst, from, to, reason),
      garp: (inst) => this.sendGarps(inst),
    };
    const built = this.build(cfg, new Map());
    this.instances.push(...built.instances);
    this.groups = built.groups;
    this.scripts = built.scripts;
  }

  /** The configuration in force (the last one started or reloaded). */
  get ha(): HaConfig {
    return this.cfg;
  }

  /**
   * The objects a configuration runs as: instances, their sync groups (which add their trackers
   * to the members), and the vrrp_scripts some instance or group tracks. `carried`: scripts whose
   * result a reload keeps (name → up).
   */
  private build(
    ha: HaConfig,
    carried: ReadonlyMap<string, boolean>,
  ): { instances: VrrpInstance[]; groups: VrrpSyncGroup[]; scripts: ScriptTracker[] } {
    const instances: VrrpInstance[] = [];
    const byName = new Map<string, VrrpInstance>();
    for (const cfg of ha.instances) {
      const inst = new VrrpInstance(cfg, this.sink);
      instances.push(inst);
      byName.set(cfg.name, inst);
      if (cfg.family === 6)
        this.bytes6.set(inst, {
          addrs: cfg.addrs.map((a) => parseIPv6(a.addr6 ?? "::") ?? new Uint8Array(16)),
          group: parseIPv6(cfg.mcastDst6) ?? new Uint8Array(16),
        });
    }
    const groups = ha.syncGroups.map(
      (g) =>
        new VrrpSyncGroup(
          g,
          g.members.map((m) => byName.get(m)).filter((x): x is VrrpInstance => x !== undefined),
        ),
    );
    const scripts: ScriptTracker[] = [];
    for (const s of ha.scripts) {
      const used =
        instances.some((i) => i.cfg.trackScripts.some((t) => t.name === s.name)) ||
        ha.syncGroups.some((g) => g.trackScripts.some((t) => t.name === s.name));
      if (used)
        scripts.push(new ScriptTracker(s, (up) => this.tracked("script", s.name, up), carried.get(s.name)));
    }
    return { instances, groups, scripts };
  }

  /** Opens the sockets and starts every instance (throws TsvsError when an interface cannot be used). */
  start(): void {
    const now = this.now();
    this.openAll(this.cfg);
    for (const inst of this.instances) this.bind(inst);
    this.pushOwnership();
    for (const l of this.deps.links()) this.linkUp.set(l.name, l.up && l.lowerUp);
    // keepalived knows the links (and init_fail scripts) before an instance starts, and tracks the
    // instance's own interface: down is FAULT, told before start, so that an owner never starts
    // MASTER to leave. A sync group's trackers reach its members the same way.
    this.trackersNow(now);
    for (const inst of this.instances) inst.start(now);
    for (const s of this.scripts) s.start();
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.deps.log.info(
      { instances: this.instances.map((i) => ({ name: i.cfg.name, vrid: i.cfg.vrid, state: i.state })) },
      "VRRP started",
    );
  }

  /**
   * SIGHUP / `tsvs reload` with the file's new VRRP part, as keepalived reloads
   * (core/vrrp/reload.ts has the rules). Every interface is checked and its socket made ready
   * first: a missing one throws TsvsError with nothing running changed. Then the removed
   * instances leave (a MASTER with priority 0), the others are rebuilt from the new sections and
   * take the state of the instance they replace (VrrpInstance.resume), the new ones start as at
   * daemon start, and the workers get the addresses to hold once, at the end. Returns the plan.
   */
  reload(next: HaConfig, plan: VrrpReloadPlan = planVrrpReload(this.cfg, next)): VrrpReloadPlan {
    if (plan.unchanged) return plan;
    this.openAll(next);
    const now = this.now();
    const oldOf = new Map(this.instances.map((i) => [i.cfg, i]));
    const carried = new Map<string, boolean>();
    for (const s of this.scripts) {
      if (plan.keptScripts.includes(s.name)) carried.set(s.name, s.good);
      s.stop();
    }
    this.switching = true;
    try {
      for (const p of plan.instances) {
        const gone = p.action === "remove" && p.old !== null ? oldOf.get(p.old) : undefined;
        if (gone !== undefined) this.removeInstance(gone, now);
      }
      for (const inst of this.instances) {
        this.bytes6.delete(inst);
        this.noSource6.delete(inst);
      }
      this.cfg = next;
      const built = this.build(next, carried);
      this.instances.splice(0, this.instances.length, ...built.instances);
      this.groups = built.groups;
      this.scripts = built.scripts;
      if (plan.garpIntervals)
        for (const s of this.socks.values()) {
          s.garps = new UpdatePacer(next.garpIntervalMs ?? 0);
          s.nas = new UpdatePacer(next.gnaIntervalMs ?? 0);
        }
      this.closeUnused();
      for (const inst of this.instances) this.bind(inst);
      this.trackersNow(now);
      const planOf = new Map(plan.instances.map((p) => [p.cfg, p]));
      const resume = (inst: VrrpInstance): void => {
        const p = planOf.get(inst.cfg);
        const prev = p?.old === null || p?.old === undefined ? undefined : oldOf.get(p.old);
        if (prev !== undefined) inst.resume(prev, (p?.addAddrs.length ?? 0) > 0, now);
      };
      // Those that go on as they were first, then those with a fault now, whose group takes the
      // others to FAULT (a MASTER among them with priority 0), then the new ones.
      for (const inst of this.instances) if (!inst.faulty) resume(inst);
      for (const inst of this.instances) if (inst.faulty) resume(inst);
      for (const inst of this.instances) inst.start(now);
      for (const g of this.groups) g.resume(now);
    } finally {
      this.switching = false;
    }
    this.pushOwnership();
    for (const s of this.scripts) s.start();
    if (this.instances.length > 0 && this.timer === null)
      this.timer = setInterval(() => this.poll(), POLL_MS);
    this.deps.log.info(
      {
        instances: plan.instances.map((p) => ({
          name: p.name,
          action: p.action,
          ...(p.changed.length > 0 ? { changed: p.changed } : {}),
          ...(p.dropAddrs.length > 0 ? { dropped: p.dropAddrs.map(addrText) } : {}),
          ...(p.addAddrs.length > 0 ? { added: p.addAddrs.map(addrText) } : {}),
          state: this.instances.find((i) => i.cfg === p.cfg)?.state ?? "STOP",
        })),
      },
      "VRRP reloaded",
    );
    return plan;
  }

  /**
   * A removed instance: priority 0 from a MASTER, and keepalived's notifies for a deleted one
   * (clear_diff_vrrp, send_instance_notifies): DELETED with notify_deleted (its script, then
   * `notify`), else those of FAULT unless it was in FAULT already.
   */
  private removeInstance(inst: VrrpInstance, now: number): void {
    const was = inst.remove(now);
    const cfg = inst.cfg;
    this.deps.log.info(
      { instance: cfg.name, vrid: cfg.vrid, from: was, priority: inst.effectivePriority },
      `VRRP_Instance(${cfg.name}) removed by the reload`,
    );
    if (cfg.notifyDeleted) this.notifyScripts(inst, "DELETED");
    else if (was !== "FAULT") this.notifyScripts(inst, "FAULT");
  }

  /**
   * Every instance's interface exists and its socket is ready for it; throws TsvsError otherwise,
   * closing the sockets it opened (those already open keep running as they were).
   */
  private openAll(ha: HaConfig): void {
    for (const cfg of ha.instances)
      if (this.link(cfg.iface) === undefined)
        throw new TsvsError("TSVS_ERR_HOST", `vrrp_instance ${cfg.name}: no interface ${cfg.iface}`);
    const had = new Set(this.socks.keys());
    let at = "";
    try {
      for (const cfg of ha.instances) {
        at = cfg.name;
        this.open(cfg.iface, cfg);
      }
    } catch (e) {
      this.closeSocks((name) => !had.has(name));
      if (e instanceof TsvsError) throw e;
      throw new TsvsError("TSVS_ERR_HOST", `vrrp_instance ${at}: ${(e as Error).message}`);
    }
  }

  /** Sockets of interfaces no instance uses any more. */
  private closeUnused(): void {
    const used = new Set(this.instances.map((i) => i.cfg.iface));
    this.closeSocks((name) => !used.has(name));
  }

  private closeSocks(which: (iface: string) => boolean): void {
    for (const [name, s] of this.socks)
      if (which(name)) {
        s.sock.close();
        this.socks.delete(name);
      }
  }

  /** The advert source of an instance whose socket is open. */
  private bind(inst: VrrpInstance): void {
    inst.primaryAddr = inst.cfg.unicastSrc ?? this.link(inst.cfg.iface)?.addrs[0]?.addr ?? 0;
    if (inst.cfg.family === 6) inst.primaryAddr6 = this.source6(inst);
  }

  /**
   * What is down now, told to instances not yet started (at daemon start, or a reload's): links an
   * instance or a group tracks, and vrrp_scripts that failed (a kept one's last result, or init_fail).
   */
  private trackersNow(now: number): void {
    for (const l of this.deps.links())
      if (!this.linkUp.has(l.name)) this.linkUp.set(l.name, l.up && l.lowerUp);
    const down = (name: string): boolean => !(this.linkUp.get(name) ?? false);
    for (const inst of this.instances)
      for (const name of this.trackedIfaces(inst))
        if (down(name)) inst.setTracked("interface", name, false, now);
    for (const g of this.groups)
      for (const t of g.cfg.trackInterfaces) if (down(t.name)) g.setTracked("interface", t.name, false, now);
    for (const s of this.scripts)
      if (!s.good) {
        for (const inst of this.instances) inst.setTracked("script", s.name, false, now);
        for (const g of this.groups) g.setTracked("script", s.name, false, now);
      }
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
    for (const m of this.mld.values()) m.close();
    this.mld.clear();
  }

  status(): VrrpInstanceStatus[] {
    return this.instances.map((i) => ({
      name: i.cfg.name,
      iface: i.cfg.iface,
      vrid: i.cfg.vrid,
      family: i.cfg.family,
      version: i.cfg.version,
      state: i.state,
      priority: i.cfg.priority,
      effectivePriority: i.effectivePriority,
      master: i.masterText(),
      advertIntMs: i.cfg.advertIntMs,
      masterAdvertIntMs: i.masterAdverIntMs,
      transitions: i.transitions,
      lastReason: i.lastReason,
      addresses: i.cfg.addrs.map(addrText),
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

  /**
   * An IPv6 instance's advert source: unicast_src_ip, else the interface's link-local address
   * (keepalived's ifp->sin6_addr), else its first IPv6 address; null while it has none (a link
   * that just came up: the kernel's duplicate address detection is still running).
   */
  private source6(inst: VrrpInstance): string | null {
    if (inst.cfg.unicastSrc6 !== null) return inst.cfg.unicastSrc6;
    const addrs = this.link(inst.cfg.iface)?.addrs6 ?? [];
    const ll = addrs.find((a) => isLinkLocal(a.addr6)) ?? addrs[0];
    return ll === undefined ? null : canonicalIPv6(ll.addr6);
  }

  /** The interface's socket, opened the first time; then what cfg needs of it (groups, peers, filter). */
  private open(name: string, cfg: VrrpInstanceConfig): void {
    let s = this.socks.get(name);
    if (s === undefined) {
      const sock = openPacketSocket(name, {
        vnetHdr: false,
        snaplen: 2048,
        batch: 16,
        rcvbuf: 0,
        auxdata: false,
      });
      s = {
        name,
        sock,
        mac: sock.mac,
        peerMacs: new Map(),
        peerAsked: new Map(),
        peers: new Set(),
        peerMacs6: new Map(),
        peerAsked6: new Map(),
        peers6: new Set(),
        filter: { ipv4: false, ipv6: false, arp: false, na: false },
        joined: new Set(),
        garps: new UpdatePacer(this.cfg.garpIntervalMs ?? 0),
        nas: new UpdatePacer(this.cfg.gnaIntervalMs ?? 0),
      };
      this.socks.set(name, s);
    }
    const f = { ...s.filter };
    const join = (type: "multicast" | "unicast", mac: Uint8Array): void => {
      const key = `${type} ${[...mac].join(":")}`;
      if (s.joined.has(key)) return;
      addLinkMembership(s.sock.fd, s.sock.ifindex, type, mac);
      s.joined.add(key);
    };
    try {
      if (cfg.family === 6) {
        f.ipv6 = true;
        f.na ||= cfg.unicastPeers6.length > 0;
        for (const p of cfg.unicastPeers6) s.peers6.add(p);
        join("multicast", multicastMac6(parseIPv6(cfg.mcastDst6) ?? new Uint8Array(16)));
        this.joinMld(name, cfg.mcastDst6);
      } else {
        f.ipv4 = true;
        f.arp ||= cfg.unicastPeers.length > 0;
        for (const p of cfg.unicastPeers) s.peers.add(p >>> 0);
        join("multicast", multicastMac(cfg.mcastDst));
      }
      if (cfg.useVmac) join("unicast", instanceVmac(cfg));
      if (JSON.stringify(f) !== JSON.stringify(s.filter)) {
        s.sock.attachFilter(compileVrrpFilter(f));
        s.filter = f;
      }
    } catch (e) {
      if (s.joined.size === 0) {
        s.sock.close();
        this.socks.delete(name);
      }
      throw e;
    }
  }

  /**
   * IPV6_JOIN_GROUP on the interface from a UDP socket: the kernel then reports the group (MLD)
   * and keeps reporting it, as for keepalived's read socket. A failure is logged: the packet
   * socket's link-layer membership still hears the group where nothing snoops.
   */
  private joinMld(ifname: string, group: string): void {
    const key = `${ifname} ${group}`;
    if (this.mld.has(key)) return;
    const sock = createSocket({ type: "udp6", reuseAddr: true });
    const fail = (e: Error): void =>
      this.deps.log.warn(
        { iface: ifname, group, err: e.message },
        "cannot join the VRRP group (no MLD report)",
      );
    sock.on("error", fail);
    sock.bind(0, "::", () => {
      try {
        sock.addMembership(group, `::%${ifname}`);
      } catch (e) {
        fail(e as Error);
      }
    });
    sock.unref();
    this.mld.set(key, sock);
  }

  /** One pass: adverts in, tracked interfaces, timers, spaced GARPs and NAs. */
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
    // An instance a reload replaced or removed is not in the list: its pending updates go.
    const live = (p: PendingUpdate): boolean => p.inst.state === "MASTER" && this.instances.includes(p.inst);
    for (const s of this.socks.values()) {
      for (const pacer of [s.garps, s.nas])
        for (let p = pacer.due(now, live); p !== null; p = pacer.due(now, live))
          this.sendUpdateNow(s, p.inst, p.a);
      s.sock.flush();
    }
  }

  private input(s: IfSocket, frame: Uint8Array, len: number, now: number): void {
    if (len >= ETH_HLEN + ARP_LEN && readU16(frame, 12) === ETH_P_ARP) {
      // A unicast peer's MAC: from any ARP it sends (its reply to our request, its own requests).
      const spa = readU32(frame, ETH_HLEN + ARP_SPA);
      if (s.peers.has(spa)) s.peerMacs.set(spa, frame.slice(ETH_HLEN + ARP_SHA, ETH_HLEN + ARP_SHA + 6));
      return;
    }
    if (
      len >= ETH_HLEN + IPV6_HLEN + 1 &&
      readU16(frame, 12) === ETH_P_IPV6 &&
      frame[ETH_HLEN + 6] === NEXTHDR_ICMPV6
    ) {
      this.learnNa(s, frame, len);
      return;
    }
    const p = parseVrrpFrame(frame, len);
    if (p === null) return;
    if (p.family === 4) {
      if (s.peers.has(p.srcIp >>> 0)) s.peerMacs.set(p.srcIp >>> 0, frame.slice(6, 12));
    } else if (s.peers6.size > 0) {
      const src = formatIPv6(frame, p.src6Off);
      if (s.peers6.has(src)) s.peerMacs6.set(src, frame.slice(6, 12));
    }
    for (const inst of this.instances) {
      // keepalived's sockets are per family: an instance hears its own family only.
      if (inst.cfg.iface !== s.name || inst.cfg.vrid !== p.vrid || inst.cfg.family !== p.family) continue;
      const why = checkAdvert(inst.cfg, frame, p);
      if (why !== null) {
        inst.stats.drops[why] = (inst.stats.drops[why] ?? 0) + 1;
        continue;
      }
      inst.receive(decodeAdvert(frame, p), now);
    }
  }

  /** An IPv6 unicast peer's MAC, from its neighbour advertisement (target link-layer option, else the frame's source). */
  private learnNa(s: IfSocket, frame: Uint8Array, len: number): void {
    if (s.peers6.size === 0 || ipv6Walk(frame, ETH_HLEN, len, this.walk) !== IP6_OK) return;
    const m = this.ndp;
    if (ndpParse(frame, this.walk, m) !== NDP_OK || m.type !== NDISC_NEIGHBOUR_ADVERTISEMENT) return;
    const target = formatIPv6(frame, m.targetOff);
    if (!s.peers6.has(target)) return;
    const at = m.lladdrOff >= 0 ? m.lladdrOff : 6;
    s.peerMacs6.set(target, frame.slice(at, at + 6));
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
      for (const inst of this.instances)
        if (inst.cfg.iface === name && inst.cfg.family === 6)
          inst.primaryAddr6 = this.source6(inst) ?? inst.primaryAddr6;
    }
  }

  /** The workers get the addresses to hold and hold back, when they changed. */
  private pushOwnership(): void {
    if (this.switching) return;
    const o = ownershipOf(this.instances);
    const key = JSON.stringify(o);
    if (key === this.lastOwnership) return;
    this.lastOwnership = key;
    this.deps.own(o);
  }

  private sendAdvert(inst: VrrpInstance, priority: number): void {
    if (inst.cfg.family === 6) {
      this.sendAdvert6(inst, priority);
      return;
    }
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

  /** An IPv6 advert to ff02::12 (mcast_dst_ip), or one to each unicast peer whose MAC is known. */
  private sendAdvert6(inst: VrrpInstance, priority: number): void {
    const s = this.socks.get(inst.cfg.iface);
    const b = this.bytes6.get(inst);
    if (s === undefined || b === undefined) return;
    const cfg = inst.cfg;
    // The link-local address may have come (DAD done) or changed since the last advert.
    if (cfg.unicastSrc6 === null) inst.primaryAddr6 = this.source6(inst) ?? inst.primaryAddr6;
    const src = inst.primaryAddr6 === null ? null : parseIPv6(inst.primaryAddr6);
    if (src === null) {
      if (!this.noSource6.has(inst)) {
        this.noSource6.add(inst);
        this.deps.log.warn(
          { instance: cfg.name, iface: cfg.iface },
          `VRRP_Instance(${cfg.name}) no IPv6 address on ${cfg.iface} to send adverts from (yet)`,
        );
      }
      return;
    }
    this.noSource6.delete(inst);
    const o = {
      srcMac: cfg.useVmac ? vmac6Of(cfg.vrid) : s.mac,
      dstMac: s.mac,
      src,
      dst: b.group,
      vrid: cfg.vrid,
      advertIntMs: cfg.advertIntMs,
      addrs: b.addrs,
      priority,
    };
    if (cfg.unicastPeers6.length === 0) {
      o.dstMac = multicastMac6(b.group);
      const len = writeAdvertFrame6(this.frame, 0, o);
      if (len > 0) s.sock.send(this.frame, 0, len);
    } else {
      const now = this.now();
      for (const peer of cfg.unicastPeers6) {
        const dstMac = s.peerMacs6.get(peer);
        const dst = parseIPv6(peer);
        if (dst === null) continue;
        if (dstMac === undefined) {
          this.askPeer6(s, src, peer, dst, now);
          continue;
        }
        const len = writeAdvertFrame6(this.frame, 0, { ...o, dstMac, dst });
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

  /** A neighbour solicitation for an unresolved IPv6 unicast peer, at most every PEER_ARP_MS. */
  private askPeer6(s: IfSocket, src: Uint8Array, peer: string, dst: Uint8Array, now: number): void {
    if (now - (s.peerAsked6.get(peer) ?? Number.NEGATIVE_INFINITY) < PEER_ARP_MS) return;
    s.peerAsked6.set(peer, now);
    const len = writeNsFrame(this.frame, 0, s.mac, src, dst);
    if (len > 0) s.sock.send(this.frame, 0, len);
  }

  /**
   * One round of keepalived's vrrp_send_link_update: a gratuitous ARP for each IPv4 address and
   * an unsolicited NA for each IPv6 one, virtual_ipaddress then virtual_ipaddress_excluded.
   */
  private sendGarps(inst: VrrpInstance): void {
    const cfg = inst.cfg;
    const now = this.now();
    const base = this.instances.indexOf(inst) * 65536;
    [...cfg.addrs, ...cfg.excludedAddrs].forEach((a, k) => {
      const s = this.socks.get(a.dev ?? cfg.iface) ?? this.socks.get(cfg.iface);
      if (s !== undefined) this.sendUpdate(s, inst, a, now, base + k);
    });
    for (const s of this.socks.values()) s.sock.flush();
  }

  /** send_gratuitous_arp / ndisc_send_unsolicited_na: at once, or queued behind the interval. */
  private sendUpdate(s: IfSocket, inst: VrrpInstance, a: VrrpAddr, now: number, rank: number): void {
    const pacer = a.addr6 !== undefined ? s.nas : s.garps;
    if (pacer.offer(`${inst.cfg.name} ${addrText(a)}`, { inst, a }, now, rank))
      this.sendUpdateNow(s, inst, a);
  }

  private sendUpdateNow(s: IfSocket, inst: VrrpInstance, a: VrrpAddr): void {
    const mac = inst.cfg.useVmac ? instanceVmac(inst.cfg) : s.mac;
    if (a.addr6 === undefined) {
      const len = writeGarpFrame(this.frame, 0, mac, a.addr);
      s.sock.send(this.frame, 0, len);
      return;
    }
    const addr = parseIPv6(a.addr6);
    if (addr === null) return;
    // R as keepalived sets it: the interface forwards IPv6 (set_ipv6_forwarding).
    const router = this.link(s.name)?.forwarding6 ?? false;
    const len = writeUnsolicitedNa(this.frame, 0, mac, addr, 0, router);
    if (len === UNSOLICITED_NA_FRAME_LEN) s.sock.send(this.frame, 0, len);
  }

  private transition(inst: VrrpInstance, from: VrrpStateName, to: VrrpStateName, reason: string): void {
    this.pushOwnership();
    this.deps.log.info(
      { instance: inst.cfg.name, vrid: inst.cfg.vrid, from, to, reason, priority: inst.effectivePriority },
      `VRRP_Instance(${inst.cfg.name}) Entering ${to} STATE`,
    );
    this.notifyScripts(inst, to);
    const sd = this.cfg.lvsSyncDaemon;
    if (sd !== null && sd.instance === inst.cfg.name && this.deps.syncRole !== undefined && to !== "STOP")
      this.deps.syncRole(to === "MASTER" ? "master" : "backup");
  }

  /** keepalived's notify scripts of entering `to`: the state's own, then `notify` with its arguments. */
  private notifyScripts(inst: VrrpInstance, to: VrrpStateName | "DELETED"): void {
    const cfg = inst.cfg;
    const field = to === "DELETED" ? "notifyDeletedScript" : NOTIFY_OF[to];
    const script = field === null ? null : cfg[field];
    if (script !== null) this.runScript(splitScript(script));
    if (cfg.notify !== null)
      this.runScript([...splitScript(cfg.notify), "INSTANCE", cfg.name, to, String(inst.effectivePriority)]);
  }
}

/** A vrrp_script: run every interval (timeout kills it), up after `rise` successes, down after `fall` failures. */
class ScriptTracker {
  private timer: NodeJS.Timeout | null = null;
  private up: boolean;
  private streak = 0;
  private running = false;
  private child: ChildProcess | null = null;
  /** Stopped (the daemon stops, or a reload replaced it): a run still going reports nothing. */
  private stopped = false;

  private readonly argv: string[];

  /** `up`: the result a reload carried over from the same script (default: init_fail's). */
  constructor(
    private readonly cfg: VrrpScriptConfig,
    private readonly onChange: (up: boolean) => void,
    up?: boolean,
  ) {
    this.argv = splitScript(cfg.script);
    this.up = up ?? !cfg.initFail;
  }

  get name(): string {
    return this.cfg.name;
  }

  /** GOOD (keepalived's data dump): the weight or FAULT of a failure does not apply. */
  get good(): boolean {
    return this.up;
  }

  start(): void {
    if (!this.up) this.onChange(false);
    this.timer = setInterval(() => this.run(), this.cfg.intervalMs);
    this.run();
  }

  /** keepalived's reload ends every script it runs (script_killall); so does a stop here. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.child?.kill("SIGTERM");
    this.child = null;
  }

  status(): VrrpScriptStatus {
    return { name: this.cfg.name, good: this.up, running: this.running };
  }

  private run(): void {
    if (this.running || this.stopped || this.argv.length === 0) return;
    this.running = true;
    const child = spawn(this.argv[0], this.argv.slice(1), { stdio: "ignore", timeout: this.cfg.timeoutMs });
    this.child = child;
    const done = (ok: boolean): void => {
      if (!this.running || this.child !== child) return;
      this.running = false;
      this.child = null;
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
