// Table snapshots (src/control/snapshot.ts) built by hand for tests of what formats them (metrics,
// top, the dashboard): an IPv4 destination or service with every field at its default, and the
// fields a test cares about given.

import type { DestSnapshot, ServiceSnapshot } from "../../src/control/snapshot.js";
import { zeroStats } from "../../src/control/snapshot.js";
import { parseIPv4 } from "../../src/core/addr.js";

function a(s: string): number {
  const v = parseIPv4(s);
  if (v === null) throw new Error(`not an IPv4 address: ${s}`);
  return v;
}

/** A Masq destination ADDR:PORT, weight 1, no connections, zero stats, unless `over` says. */
export function destSnap(addr: string, port: number, over: Partial<DestSnapshot> = {}): DestSnapshot {
  return {
    af: 4,
    addr: a(addr),
    port,
    fwd: 0,
    weight: 1,
    uThreshold: 0,
    lThreshold: 0,
    activeConns: 0,
    inactConns: 0,
    persistConns: 0,
    tunType: 0,
    tunPort: 0,
    tunFlags: 0,
    available: true,
    stats: zeroStats(),
    ...over,
  };
}

/** A service PROTO ADDR:PORT (or fwmark) with wlc, not persistent, zero stats, unless `over` says. */
export function serviceSnap(
  k: { protocol: number; addr: string; port: number; fwmark?: number },
  dests: DestSnapshot[],
  over: Partial<ServiceSnapshot> = {},
): ServiceSnapshot {
  return {
    af: 4,
    protocol: k.protocol,
    addr: a(k.addr),
    port: k.port,
    fwmark: k.fwmark ?? 0,
    schedName: "wlc",
    flags: 0,
    timeout: 0,
    netmask: 0xffffffff,
    peName: "",
    stats: zeroStats(),
    dests,
    ...over,
  };
}
