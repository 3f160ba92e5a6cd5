// Counters as the kernel's struct ip_vs_kstats, plus the rate estimator's state
// (ip_vs_est.c): a 2 s tick folds the deltas into EWMAs of cps, inpps, outpps, inbps, outbps.

export class Stats {
  conns = 0;
  inpkts = 0;
  outpkts = 0;
  inbytes = 0;
  outbytes = 0;
  /** Estimator state, scaled as the kernel scales it (see rate.ts). */
  cps = 0;
  inpps = 0;
  outpps = 0;
  inbps = 0;
  outbps = 0;
  lastConns = 0;
  lastInpkts = 0;
  lastOutpkts = 0;
  lastInbytes = 0;
  lastOutbytes = 0;

  zero(): void {
    this.conns = this.inpkts = this.outpkts = this.inbytes = this.outbytes = 0;
    this.cps = this.inpps = this.outpps = this.inbps = this.outbps = 0;
    this.lastConns = this.lastInpkts = this.lastOutpkts = this.lastInbytes = this.lastOutbytes = 0;
  }
}
