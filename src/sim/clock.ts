// The simulation's time: a deterministic event queue. Nothing in the virtual network reads a
// wall clock; every delay (link latency, TCP retransmission, ARP retry, TIME_WAIT) is an event
// here, so a scenario replays identically. Events at equal times run in insertion order
// (a sequence number breaks ties in the heap), which is what makes runs reproducible.

export interface TimerHandle {
  readonly id: number;
}

interface Ev {
  t: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
  id: number;
}

export class SimClock {
  /** Current simulated time in milliseconds. */
  now = 0;
  private heap: Ev[] = [];
  private seq = 0;
  private live = new Map<number, Ev>();
  /** Events executed so far (a cheap progress measure for tests and runaway guards). */
  executed = 0;

  /** Runs fn at absolute time t (clamped to now: the past cannot be scheduled). */
  at(t: number, fn: () => void): TimerHandle {
    const ev: Ev = { t: t < this.now ? this.now : t, seq: this.seq++, fn, cancelled: false, id: this.seq };
    this.push(ev);
    this.live.set(ev.id, ev);
    return { id: ev.id };
  }

  after(ms: number, fn: () => void): TimerHandle {
    return this.at(this.now + (ms > 0 ? ms : 0), fn);
  }

  cancel(h: TimerHandle | null | undefined): void {
    if (h === null || h === undefined) return;
    const ev = this.live.get(h.id);
    if (ev !== undefined) {
      ev.cancelled = true;
      this.live.delete(h.id);
    }
  }

  /** Number of scheduled, not cancelled events. */
  get pending(): number {
    return this.live.size;
  }

  /** Time of the next live event, or Infinity. */
  nextTime(): number {
    this.dropCancelled();
    return this.heap.length > 0 ? this.heap[0].t : Number.POSITIVE_INFINITY;
  }

  /** Runs every event due at or before t, then sets now = t. */
  runUntil(t: number): void {
    for (;;) {
      this.dropCancelled();
      const h = this.heap;
      if (h.length === 0 || h[0].t > t) break;
      this.step();
    }
    if (t > this.now) this.now = t;
  }

  /**
   * Runs events until none is left or the next one lies more than maxMs after the time this
   * call started (default one simulated hour). Returns true when the queue drained.
   */
  runUntilIdle(maxMs = 3_600_000): boolean {
    const limit = this.now + maxMs;
    for (;;) {
      this.dropCancelled();
      const h = this.heap;
      if (h.length === 0) return true;
      if (h[0].t > limit) {
        this.now = limit;
        return false;
      }
      this.step();
    }
  }

  private step(): void {
    const ev = this.pop();
    this.live.delete(ev.id);
    this.now = ev.t;
    this.executed++;
    ev.fn();
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && this.heap[0].cancelled) this.pop();
  }

  private static less(a: Ev, b: Ev): boolean {
    return a.t < b.t || (a.t === b.t && a.seq < b.seq);
  }

  private push(ev: Ev): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!SimClock.less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private pop(): Ev {
    const h = this.heap;
    const top = h[0];
    const last = h.pop() as Ev;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && SimClock.less(h[l], h[m])) m = l;
        if (r < h.length && SimClock.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
