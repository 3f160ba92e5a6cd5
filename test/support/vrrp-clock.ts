// VRRP instances on a fake clock for the state-machine tests: every sink call logged as
// "t name event", adverts received from a given peer.

import type { VrrpAdvertIn, VrrpInstance, VrrpSink } from "../../src/core/vrrp/instance.js";

export class VrrpClock {
  now = 0;
  log: string[] = [];
  readonly sink: VrrpSink = {
    advert: (i, p) => this.log.push(`${this.now} ${i.cfg.name} advert ${p}`),
    transition: (i, f, t) => this.log.push(`${this.now} ${i.cfg.name} ${f}->${t}`),
    garp: (i) => this.log.push(`${this.now} ${i.cfg.name} garp`),
  };

  /** `peer` (the advert's source address) sends inst an advert of its own router, `a` changed. */
  protected receive(inst: VrrpInstance, peer: number, a: Partial<VrrpAdvertIn>): void {
    inst.receive(
      {
        version: inst.cfg.version,
        vrid: inst.cfg.vrid,
        priority: 100,
        advertIntMs: inst.cfg.advertIntMs,
        addrs: inst.cfg.addrs.map((x) => x.addr),
        srcIp: peer,
        ...a,
      },
      this.now,
    );
  }

  /** The calls logged since the last take. */
  take(): string[] {
    const l = this.log;
    this.log = [];
    return l;
  }
}
