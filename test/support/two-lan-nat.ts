// A client, a director and two real servers, each server on a LAN of its own behind the director
// (NAT: the servers route back through it), in namespaces tsvs-<tag><pid>-{c,d,r1,r2}:
//
//   c 198.18.0.1 ─ 198.18.0.254 d 198.18.1.254 ─ 198.18.1.11 r1
//                                 198.18.2.254 ─ 198.18.2.12 r2
//
// Interface names derive from the tag and the pid (base 36), so parallel runs never collide.

import { addVethPair, freshNetns, ip, nsExec } from "../../src/io/netns.js";

export interface TwoLanNat {
  ns: { c: string; d: string; r1: string; r2: string };
  ifs: { c0: string; d0: string; d1: string; d2: string; r1: string; r2: string };
  /** The director's interfaces as `tsvs daemon --iface` arguments. */
  ifaceArgs: string[];
}

export function twoLanNatNames(tag: string, pid = process.pid): TwoLanNat {
  const p = `tsvs-${tag}${pid}`;
  const t = pid.toString(36);
  const ifs = {
    c0: `${tag}c${t}`,
    d0: `${tag}d${t}`,
    d1: `${tag}D${t}`,
    d2: `${tag}E${t}`,
    r1: `${tag}r${t}`,
    r2: `${tag}s${t}`,
  };
  return {
    ns: { c: `${p}-c`, d: `${p}-d`, r1: `${p}-r1`, r2: `${p}-r2` },
    ifs,
    ifaceArgs: ["--iface", ifs.d0, "--iface", ifs.d1, "--iface", ifs.d2],
  };
}

/** Builds it (fresh namespaces: a leftover of the same names is removed first). */
export function buildTwoLanNat(t: TwoLanNat): void {
  const { ns, ifs } = t;
  freshNetns(Object.values(ns));
  addVethPair(
    { ns: ns.c, ifname: ifs.c0, cidr: "198.18.0.1/24" },
    { ns: ns.d, ifname: ifs.d0, cidr: "198.18.0.254/24" },
  );
  addVethPair(
    { ns: ns.d, ifname: ifs.d1, cidr: "198.18.1.254/24" },
    { ns: ns.r1, ifname: ifs.r1, cidr: "198.18.1.11/24" },
  );
  addVethPair(
    { ns: ns.d, ifname: ifs.d2, cidr: "198.18.2.254/24" },
    { ns: ns.r2, ifname: ifs.r2, cidr: "198.18.2.12/24" },
  );
  ip("-n", ns.r1, "route", "add", "default", "via", "198.18.1.254");
  ip("-n", ns.r2, "route", "add", "default", "via", "198.18.2.254");
  ip("-n", ns.c, "route", "add", "default", "via", "198.18.0.254");
  nsExec(ns.d, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
}
