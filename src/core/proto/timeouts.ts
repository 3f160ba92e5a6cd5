// Per-state connection timeouts (ms): tcp_timeouts in net/netfilter/ipvs/ip_vs_proto_tcp.c and
// udp_timeouts in ip_vs_proto_udp.c. `ipvsadm --set tcp tcpfin udp` (ip_vs_set_timeout)
// changes only ESTABLISHED, FIN_WAIT and UDP NORMAL; a 0 keeps the current value.
// `ipvsadm -L --timeout` (__ip_vs_get_timeouts) reads the same three back in seconds.

import type { TimeoutSpec } from "../ctl-types.js";
import {
  TCP_S_CLOSE,
  TCP_S_CLOSE_WAIT,
  TCP_S_ESTABLISHED,
  TCP_S_FIN_WAIT,
  TCP_S_LAST,
  TCP_S_LAST_ACK,
  TCP_S_LISTEN,
  TCP_S_NONE,
  TCP_S_SYN_RECV,
  TCP_S_SYN_SENT,
  TCP_S_SYNACK,
  TCP_S_TIME_WAIT,
} from "./tcp.js";

const SEC = 1000;
const MIN = 60 * SEC;

/** The kernel's defaults, indexed by TCP state; [TCP_S_LAST] is the kernel's fallback entry. */
export const TCP_DEFAULT_TIMEOUTS_MS: readonly number[] = (() => {
  const t: number[] = new Array(TCP_S_LAST + 1).fill(0);
  t[TCP_S_NONE] = 2 * SEC;
  t[TCP_S_ESTABLISHED] = 15 * MIN;
  t[TCP_S_SYN_SENT] = 2 * MIN;
  t[TCP_S_SYN_RECV] = 1 * MIN;
  t[TCP_S_FIN_WAIT] = 2 * MIN;
  t[TCP_S_TIME_WAIT] = 2 * MIN;
  t[TCP_S_CLOSE] = 10 * SEC;
  t[TCP_S_CLOSE_WAIT] = 60 * SEC;
  t[TCP_S_LAST_ACK] = 30 * SEC;
  t[TCP_S_LISTEN] = 2 * MIN;
  t[TCP_S_SYNACK] = 120 * SEC;
  t[TCP_S_LAST] = 2 * SEC;
  return t;
})();

export const UDP_DEFAULT_TIMEOUT_MS = 5 * MIN;

export class Timeouts {
  private readonly tcp = Float64Array.from(TCP_DEFAULT_TIMEOUTS_MS);
  private udp = UDP_DEFAULT_TIMEOUT_MS;

  /** Timeout of a TCP connection in `state`; unknown states get the kernel's [LAST] entry. */
  tcpMs(state: number): number {
    return state >= 0 && state < TCP_S_LAST ? this.tcp[state] : this.tcp[TCP_S_LAST];
  }

  udpMs(): number {
    return this.udp;
  }

  /** ip_vs_set_timeout: seconds, 0 keeps the current value (validation is the control plane's). */
  set(t: TimeoutSpec): void {
    if (t.tcp > 0) this.tcp[TCP_S_ESTABLISHED] = t.tcp * SEC;
    if (t.tcpFin > 0) this.tcp[TCP_S_FIN_WAIT] = t.tcpFin * SEC;
    if (t.udp > 0) this.udp = t.udp * SEC;
  }

  /** __ip_vs_get_timeouts, in whole seconds. */
  get(): TimeoutSpec {
    return {
      tcp: Math.floor(this.tcp[TCP_S_ESTABLISHED] / SEC),
      tcpFin: Math.floor(this.tcp[TCP_S_FIN_WAIT] / SEC),
      udp: Math.floor(this.udp / SEC),
    };
  }

  /** Back to the kernel defaults (a fresh netns). */
  reset(): void {
    this.tcp.set(TCP_DEFAULT_TIMEOUTS_MS);
    this.udp = UDP_DEFAULT_TIMEOUT_MS;
  }
}
