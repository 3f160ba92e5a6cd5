// keepalived's spacing of gratuitous ARPs and unsolicited neighbour advertisements on one
// interface (global_defs vrrp_garp_interval / vrrp_gna_interval; vrrp_arp.c send_gratuitous_arp,
// vrrp_ndisc.c ndisc_send_unsolicited_na, vrrp_scheduler.c vrrp_arp_thread / vrrp_arpna_send):
//
//   - with no interval, every one goes at once (a burst: garp_master_repeat rounds in a row)
//   - with one, a message goes at once only if the interval has passed since the last one sent on
//     the interface; otherwise its address is marked pending, and a second request for a pending
//     address changes nothing (keepalived's garp_gna_pending flag: repeats collapse into one)
//   - the timer thread then sends the pending ones, one per interval, in keepalived's order (the
//     instances as configured, each one's virtual_ipaddress then virtual_ipaddress_excluded:
//     `rank`), dropping those whose instance is no longer MASTER
//
// Pure: the clock comes in. One pacer per interface and family (ARP and NA keep separate times).

export class UpdatePacer<T> {
  private next = Number.NEGATIVE_INFINITY;
  private readonly pending = new Map<string, { item: T; rank: number }>();

  /** intervalMs: 0 = no spacing. */
  constructor(private readonly intervalMs: number) {}

  /** A message for `key` wants to go: true = send it now, false = it waits (pending). */
  offer(key: string, item: T, now: number, rank = 0): boolean {
    if (this.intervalMs <= 0) return true;
    if (now < this.next) {
      this.pending.set(key, { item, rank });
      return false;
    }
    this.next = now + this.intervalMs;
    return true;
  }

  /**
   * The next pending message that may go now, or null; pending ones whose `live` is false are
   * dropped on the way. Call until null.
   */
  due(now: number, live: (item: T) => boolean): T | null {
    let first: string | null = null;
    let rank = Number.POSITIVE_INFINITY;
    for (const [k, p] of this.pending) {
      if (!live(p.item)) this.pending.delete(k);
      else if (p.rank < rank) {
        first = k;
        rank = p.rank;
      }
    }
    if (first === null || now < this.next) return null;
    const p = this.pending.get(first);
    this.pending.delete(first);
    this.next = now + this.intervalMs;
    return p?.item ?? null;
  }

  get waiting(): number {
    return this.pending.size;
  }
}
