// The daemon following its host (docs/daemon.md "Host changes"): after a burst of rtnetlink
// events has settled (host.ts HostWatcher), read the host again, log what changed, and bring the
// guard and every worker to the new view. The guard goes first, so that a new interface's ingress
// chain exists before its packet socket takes frames; workers are updated one after the other, as
// they started, so that new fanout groups keep the members' order.

import type { Logger } from "pino";
import { formatIPv4 } from "../core/addr.js";
import { TsvsError } from "../core/errors.js";
import type { IfaceAddr } from "../core/route.js";
import { chooseServed, diffHost, type HostView, type HostWatcher, hostView, viewKey } from "./host.js";
import { type HostState, readHost } from "./kernel.js";
import type { NftGuard } from "./nft.js";
import type { WorkerPool } from "./pool.js";
import type { HostStatus } from "./protocol.js";
import type { HostApplied, HostUpdate } from "./worker.js";

export interface FollowOptions {
  /** --iface names (empty: every up Ethernet interface but lo). */
  ifaces: readonly string[];
  /** --host-vips: workers get the host's locally delivered addresses. */
  hostVips: boolean;
  /** Fanout group id of the first served interface; the n-th served interface gets base + n. */
  fanoutGroup: number;
}

export class HostFollower {
  /** The last reading of the host and what the daemon serves of it. */
  host: HostState;
  view: HostView;
  /** Served interfaces (ifindex) → their fanout group offset, stable while they are served. */
  private readonly served: Map<number, number>;
  private nextFanout: number;
  private lastView: string;
  private changes = 0;
  private updates = 0;
  private lastChange: number | null = null;

  constructor(
    private readonly opts: FollowOptions,
    private readonly log: Logger,
    private readonly watcher: HostWatcher | null,
  ) {
    this.host = readHost();
    const pick = chooseServed(this.host.links, opts.ifaces, new Set());
    if (pick.skipped.length > 0)
      throw new TsvsError(
        "TSVS_ERR_HOST",
        pick.skipped.map((x) => `interface ${x.name}: ${x.why}`).join("; "),
      );
    this.view = hostView(this.host, pick.links);
    this.served = new Map(this.view.interfaces.map((i, k) => [i.ifindex, k]));
    this.nextFanout = this.view.interfaces.length;
    this.lastView = viewKey(this.view);
  }

  get ifnames(): string[] {
    return this.view.interfaces.map((i) => i.name);
  }

  get hostLocal(): IfaceAddr[] | null {
    return this.opts.hostVips ? this.view.hostLocal : null;
  }

  status(): HostStatus {
    const w = this.watcher;
    return {
      following: w !== null,
      hostVips: this.opts.hostVips,
      interfaces: this.host.links.map((l) => ({
        name: l.name,
        ifindex: l.ifindex,
        state: l.operstate,
        up: l.up,
        carrier: l.lowerUp,
        served: this.served.has(l.ifindex),
        addrs: l.addrs.map((a) => `${formatIPv4(a.addr)}/${a.prefix}`),
        addrs6: l.addrs6.map((a) => `${a.addr6}/${a.prefix}`),
      })),
      routes: this.view.routes.filter((r) => r.dst6 === undefined).length,
      routes6: this.view.routes.filter((r) => r.dst6 !== undefined).length,
      changes: this.changes,
      updates: this.updates,
      lastChange: this.lastChange === null ? null : new Date(this.lastChange).toISOString(),
      rtnetlink: w === null ? null : { ...w.counters },
    };
  }

  /** Reads the host again and applies what changed; on a failure it asks to be called again soon. */
  async apply(guard: NftGuard, pool: WorkerPool): Promise<void> {
    let next: HostState;
    try {
      next = readHost();
    } catch (e) {
      this.log.error({ err: (e as Error).message }, "cannot read the host (retrying)");
      this.watcher?.poke(1000);
      return;
    }
    const changes = diffHost(this.host, next);
    const before = new Map(this.view.interfaces.map((i) => [i.ifindex, i]));
    const pick = chooseServed(next.links, this.opts.ifaces, new Set(this.served.keys()));
    const nextView = hostView(next, pick.links);
    this.host = next;
    for (const c of changes) this.log.info(c, `host: ${c.what}`);
    if (changes.length > 0) {
      this.changes++;
      this.lastChange = Date.now();
    }
    const key = viewKey(nextView);
    if (key === this.lastView) return;
    this.followServed(nextView, before);
    const reopen = changedLinks(nextView, before);
    this.view = nextView;
    try {
      guard.follow(this.ifnames, nextView.locals, nextView.locals6);
    } catch (e) {
      // Most likely an interface went away between the reading and nft: read again shortly.
      this.log.error({ err: (e as Error).message }, "nft guard update failed (retrying)");
      this.lastView = "";
      this.watcher?.poke(1000);
      return;
    }
    let ok = true;
    if (reopen.size > 0) ok = await this.sendHost(pool, this.update(nextView, reopen));
    ok = (await this.sendHost(pool, this.update(nextView, new Set()))) && ok;
    this.updates++;
    this.lastChange = Date.now();
    this.log.info(
      {
        interfaces: this.ifnames,
        locals: nextView.locals.length,
        locals6: nextView.locals6.length,
        routes: nextView.routes.length,
        hostVips: this.opts.hostVips,
      },
      "host change applied",
    );
    this.lastView = ok ? key : "";
    if (!ok) this.watcher?.poke(1000);
  }

  /** New interfaces get the next fanout offset; gone ones leave the served map. */
  private followServed(next: HostView, before: ReadonlyMap<number, { name: string }>): void {
    const now = new Set(next.interfaces.map((i) => i.ifindex));
    for (const i of next.interfaces)
      if (!this.served.has(i.ifindex)) {
        this.served.set(i.ifindex, this.nextFanout++);
        this.log.info({ name: i.name, ifindex: i.ifindex }, "serving a new interface");
      }
    for (const [ifindex] of this.served)
      if (!now.has(ifindex)) {
        this.served.delete(ifindex);
        this.log.info({ name: before.get(ifindex)?.name, ifindex }, "no longer serving an interface");
      }
  }

  /** The view as a worker message, without the interfaces in `without` (closed first to reopen them). */
  private update(v: HostView, without: ReadonlySet<number>): HostUpdate {
    const interfaces = v.interfaces.filter((i) => !without.has(i.ifindex));
    const idx = new Set(interfaces.map((i) => i.ifindex));
    return {
      interfaces,
      routes: v.routes.filter((r) => idx.has(r.ifindex)),
      hostLocal: this.opts.hostVips ? v.hostLocal : null,
      fanout: interfaces.map((i) => (this.opts.fanoutGroup + (this.served.get(i.ifindex) ?? 0)) & 0xffff),
    };
  }

  private async sendHost(pool: WorkerPool, u: HostUpdate): Promise<boolean> {
    let ok = true;
    for (let w = 0; w < pool.size; w++) {
      const m = await pool.askOne(w, { type: "host", ...u }).catch(() => null);
      if (m === null || m.type !== "host") {
        ok = false;
        continue;
      }
      const r: HostApplied = m;
      if (r.opened.length > 0 || r.closed.length > 0)
        this.log.info({ worker: w, opened: r.opened, closed: r.closed }, "packet sockets follow the host");
      for (const e of r.errors) this.log.warn({ worker: w, ...e }, "cannot open a packet socket (retrying)");
      if (r.errors.length > 0) ok = false;
    }
    return ok;
  }
}

/**
 * A socket learns its interface's MAC and MTU when it opens (its transmit slots are sized from the
 * MTU): an interface whose MAC or MTU changed is closed and opened again, by every worker in turn
 * and in two steps, so that the fanout group is rebuilt in the workers' order.
 */
function changedLinks(
  next: HostView,
  before: ReadonlyMap<number, { mtu: number; mac: Uint8Array }>,
): Set<number> {
  const reopen = new Set<number>();
  for (const i of next.interfaces) {
    const o = before.get(i.ifindex);
    if (o !== undefined && (o.mtu !== i.mtu || o.mac.some((b, k) => b !== i.mac[k]))) reopen.add(i.ifindex);
  }
  return reopen;
}
