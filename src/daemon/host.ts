// Following the host: which links the daemon serves, what changed between two readings of the
// namespace, and the watcher that turns rtnetlink notifications into re-readings.
//
// The notifications are only a doorbell. A burst (a link deleted takes its addresses and routes
// with it, and the kernel does not even announce every route it drops with a device) is settled
// first, then the whole state is read again with `ip -j` (kernel.ts) and compared with the last
// reading: what the daemon applies is always a complete, consistent view, never a replay of
// events that may have been lost (ENOBUFS) or arrived out of order.

import { formatIPv4 } from "../core/addr.js";
import type { IfaceAddr, IfaceAddr6, IfaceConfig, RouteConfig } from "../core/route.js";
import { RT_TABLE_LOCAL, RT_TABLE_MAIN, type RtnlEvent, RtnlSocket } from "../io/rtnetlink.js";
import { type HostLink, type HostState, ifaceConfig } from "./kernel.js";

export interface ServedChoice {
  links: HostLink[];
  /** Links asked for (--iface) that cannot be served, and why. */
  skipped: { name: string; why: string }[];
}

/**
 * The links to serve. With names (--iface): those links, whatever their state (a link that goes
 * down keeps its socket: the kernel re-attaches it on up), each while it exists. Without: every
 * Ethernet link that is up, not loopback and not a bridge/bond port (the master carries its
 * frames), and, once served, it stays served until it is deleted, down or not.
 */
export function chooseServed(
  links: readonly HostLink[],
  wanted: readonly string[],
  served: ReadonlySet<number>,
): ServedChoice {
  const skipped: ServedChoice["skipped"] = [];
  if (wanted.length > 0) {
    const out: HostLink[] = [];
    for (const name of wanted) {
      const l = links.find((x) => x.name === name);
      if (l === undefined) skipped.push({ name, why: "not found" });
      else if (!l.ether) skipped.push({ name, why: "not Ethernet" });
      else if (l.mac === null) skipped.push({ name, why: "no MAC address" });
      else if (!out.includes(l)) out.push(l);
    }
    return { links: out, skipped };
  }
  return {
    links: links.filter(
      (l) => l.ether && !l.loopback && l.master === null && l.mac !== null && (l.up || served.has(l.ifindex)),
    ),
    skipped,
  };
}

/** What the engine, the socket filter and the guard take from a reading. */
export interface HostView {
  interfaces: IfaceConfig[];
  /** Main-table routes through a served link. */
  routes: RouteConfig[];
  /** The served links' own addresses (the guard's local4, the filter's locals). */
  locals: number[];
  /** The served links' own IPv6 addresses, link-local ones included (the guard's local6). */
  locals6: string[];
  /** Every locally delivered address of the host (--host-vips), IPv6 ones with addr6. */
  hostLocal: IfaceAddr[];
}

export function hostView(state: HostState, served: readonly HostLink[]): HostView {
  const interfaces = served.map(ifaceConfig);
  const idx = new Set(interfaces.map((i) => i.ifindex));
  return {
    interfaces,
    routes: state.routes
      .filter((r) => idx.has(r.ifindex))
      .map((r) =>
        r.dst6 === undefined
          ? { dst: r.dst, prefix: r.prefix, via: r.via, ifindex: r.ifindex }
          : { dst: 0, prefix: r.prefix, via: 0, ifindex: r.ifindex, dst6: r.dst6, via6: r.via6 ?? "" },
      ),
    locals: interfaces.flatMap((i) => i.addrs.map((a) => a.addr)),
    locals6: [...new Set(interfaces.flatMap((i) => (i.addrs6 ?? []).map((a) => a.addr6)))],
    hostLocal: state.local,
  };
}

/** A comparable key of what a worker is given (equal keys: nothing to send). */
export function viewKey(v: HostView): string {
  return JSON.stringify([
    v.interfaces.map((i) => [i.ifindex, i.name, [...i.mac], i.mtu, i.addrs, i.addrs6, i.forwarding6]),
    v.routes,
    v.hostLocal,
  ]);
}

/** One difference between two readings, as logged: `what` and the fields that say where. */
export interface HostChange {
  what: string;
  [field: string]: unknown;
}

const cidr = (a: IfaceAddr): string => `${a.addr6 ?? formatIPv4(a.addr)}/${a.prefix}`;
const cidr6 = (a: IfaceAddr6): string => `${a.addr6}/${a.prefix}`;
const macText = (m: Uint8Array | null): string =>
  m === null ? "none" : [...m].map((b) => b.toString(16).padStart(2, "0")).join(":");

/** As `ip route` prints it (`ip -6 route` for an IPv6 one). */
function routeText(r: HostState["routes"][number]): string {
  if (r.dst6 !== undefined) {
    const dst = r.prefix === 0 ? "default" : `${r.dst6}/${r.prefix}`;
    return r.via6 === undefined || r.via6 === ""
      ? `${dst} dev ${r.dev}`
      : `${dst} via ${r.via6} dev ${r.dev}`;
  }
  const dst = r.prefix === 0 ? "default" : `${formatIPv4(r.dst)}/${r.prefix}`;
  return r.via === 0 ? `${dst} dev ${r.dev}` : `${dst} via ${formatIPv4(r.via)} dev ${r.dev}`;
}

/** What changed from `a` to `b`: links, their state, MAC, MTU and addresses, routes, local addresses. */
export function diffHost(a: HostState, b: HostState): HostChange[] {
  const out: HostChange[] = [];
  const before = new Map(a.links.map((l) => [l.ifindex, l]));
  const after = new Map(b.links.map((l) => [l.ifindex, l]));
  const addrChanged = new Set<string>();
  for (const l of b.links) {
    const o = before.get(l.ifindex);
    if (o === undefined) {
      out.push({ what: "link added", name: l.name, ifindex: l.ifindex, up: l.up });
      for (const x of addrsOf(l)) {
        out.push({ what: "address added", dev: l.name, addr: x });
        addrChanged.add(bare(x));
      }
      continue;
    }
    if (o.name !== l.name) out.push({ what: "link renamed", name: l.name, was: o.name, ifindex: l.ifindex });
    if (o.up !== l.up) out.push({ what: l.up ? "link up" : "link down", name: l.name, ifindex: l.ifindex });
    if (o.lowerUp !== l.lowerUp)
      out.push({ what: l.lowerUp ? "carrier up" : "carrier down", name: l.name, operstate: l.operstate });
    if (macText(o.mac) !== macText(l.mac))
      out.push({ what: "MAC changed", name: l.name, mac: macText(l.mac), was: macText(o.mac) });
    if (o.mtu !== l.mtu) out.push({ what: "MTU changed", name: l.name, mtu: l.mtu, was: o.mtu });
    const oa = new Set(addrsOf(o));
    const na = new Set(addrsOf(l));
    for (const x of na)
      if (!oa.has(x)) {
        out.push({ what: "address added", dev: l.name, addr: x });
        addrChanged.add(bare(x));
      }
    for (const x of oa)
      if (!na.has(x)) {
        out.push({ what: "address removed", dev: l.name, addr: x });
        addrChanged.add(bare(x));
      }
  }
  for (const o of a.links) {
    if (after.has(o.ifindex)) continue;
    out.push({ what: "link removed", name: o.name, ifindex: o.ifindex });
    for (const x of addrsOf(o)) addrChanged.add(bare(x));
  }
  const ra = new Set(a.routes.map(routeText));
  const rb = new Set(b.routes.map(routeText));
  for (const r of b.routes) if (!ra.has(routeText(r))) out.push({ what: "route added", route: routeText(r) });
  for (const r of a.routes)
    if (!rb.has(routeText(r))) out.push({ what: "route removed", route: routeText(r) });
  // The local table repeats every interface address: only what an address change does not explain
  // (`ip route add local 198.18.0.100 dev lo`, the other way to give the host a VIP).
  const la = new Set(a.local.map(cidr));
  const lb = new Set(b.local.map(cidr));
  const own = (x: IfaceAddr): boolean =>
    x.prefix === (x.addr6 === undefined ? 32 : 128) && addrChanged.has(x.addr6 ?? formatIPv4(x.addr));
  for (const x of b.local)
    if (!la.has(cidr(x)) && !own(x)) out.push({ what: "local route added", dst: cidr(x) });
  for (const x of a.local)
    if (!lb.has(cidr(x)) && !own(x)) out.push({ what: "local route removed", dst: cidr(x) });
  return out;
}

/** The address of an addr/prefix. */
const bare = (cidrText: string): string => cidrText.slice(0, cidrText.indexOf("/"));

/** A link's addresses as `ip addr` names them (addr/prefix), IPv4 then IPv6. */
function addrsOf(l: HostLink): string[] {
  return [...l.addrs.map(cidr), ...l.addrs6.map(cidr6)];
}

/** Does an event concern what the daemon follows? Routes of other tables than main and local do not. */
export function relevant(ev: RtnlEvent): boolean {
  return ev.kind !== "route" || ev.table === RT_TABLE_MAIN || ev.table === RT_TABLE_LOCAL;
}

export interface HostWatcherOptions {
  /** Interval of the non-blocking reads of the netlink socket (ms). */
  pollMs?: number;
  /** A burst is over when a read finds nothing new for this long (ms). */
  settleMs?: number;
  /** ... or at the latest this long after its first event (ms). */
  maxDelayMs?: number;
  /** Every batch of relevant events, as read (for a debug log). */
  onEvents?: (events: RtnlEvent[], lost: boolean) => void;
  /** Re-read the host and apply the difference; the next run waits for this one. */
  onSettled: () => Promise<void>;
  /** Errors of a run (the watcher keeps going). */
  onError?: (e: unknown) => void;
}

export interface HostWatcherCounters {
  datagrams: number;
  events: number;
  malformed: number;
  lost: number;
  runs: number;
}

/**
 * The main thread's rtnetlink listener. The socket is read by a short interval timer with a
 * non-blocking recv: libuv cannot watch an arbitrary fd for Node code (net.Socket refuses a netlink
 * socket, and a worker blocked in recv would be a thread for a rare event), and one recv every
 * `pollMs` costs nothing next to the latency a change tolerates (a link flap, DHCP, VRRP). The
 * timer is unref'd: it never keeps the process alive.
 */
export class HostWatcher {
  readonly counters: HostWatcherCounters = { datagrams: 0, events: 0, malformed: 0, lost: 0, runs: 0 };
  private readonly sock: RtnlSocket;
  private readonly opts: Required<Omit<HostWatcherOptions, "onEvents" | "onError">> &
    Pick<HostWatcherOptions, "onEvents" | "onError">;
  private timer: NodeJS.Timeout | null = null;
  private firstAt = -1;
  private lastAt = -1;
  private running = false;
  private stopped = false;

  /** Opens the socket now (before the first reading, so that nothing between the two is missed). */
  constructor(opts: HostWatcherOptions) {
    this.opts = { pollMs: 50, settleMs: 50, maxDelayMs: 500, ...opts };
    this.sock = RtnlSocket.open();
  }

  start(): void {
    if (this.timer !== null || this.stopped) return;
    this.timer = setInterval(() => this.tick(), this.opts.pollMs);
    this.timer.unref();
  }

  /** Asks for a re-reading in `delayMs` even without an event (a retry after a failed update). */
  poke(delayMs = 0): void {
    const now = performance.now() + delayMs;
    if (this.firstAt < 0) this.firstAt = now;
    this.lastAt = Math.max(this.lastAt, now);
  }

  private tick(): void {
    if (this.stopped) return;
    let r: ReturnType<RtnlSocket["read"]>;
    try {
      r = this.sock.read();
    } catch (e) {
      this.opts.onError?.(e);
      return;
    }
    this.counters.datagrams += r.datagrams;
    this.counters.malformed += r.malformed;
    if (r.lost) this.counters.lost++;
    const evs = r.events.filter(relevant);
    this.counters.events += evs.length;
    const now = performance.now();
    if (evs.length > 0 || r.lost) {
      this.opts.onEvents?.(evs, r.lost);
      if (this.firstAt < 0) this.firstAt = now;
      this.lastAt = now;
    }
    if (this.firstAt < 0 || this.running) return;
    if (now - this.lastAt < this.opts.settleMs && now - this.firstAt < this.opts.maxDelayMs) return;
    this.firstAt = -1;
    this.lastAt = -1;
    this.running = true;
    this.counters.runs++;
    this.opts
      .onSettled()
      .catch((e) => this.opts.onError?.(e))
      .finally(() => {
        this.running = false;
      });
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.sock.close();
  }
}
