// A client, a director and one real server in a line, dual stack, for e2e tests of one method's
// data path (namespaces and interface names from the caller, who keeps them unique per run):
//
//   c C4/24, N1::10 ─ d NET4.1 … N1::1 │ d NEXT4.1 … N2::1 ─ r R4/24, R6
//
// The client and the server route everything through the director; no DAD, no RA
// (freshNetns's ipv6 option).

import { addVethPair, freshNetns, ip } from "../../src/io/netns.js";

export interface DualStackLine {
  ns: { c: string; d: string; r: string };
  ifs: { c0: string; d0: string; d1: string; r0: string };
  /** The client's and the server's IPv4 addresses, and the director's on each side. */
  c4: string;
  d0v4: string;
  d1v4: string;
  r4: string;
  /** The two IPv6 /64 prefixes (client side, server side) and the client's and server's addresses. */
  n1: string;
  n2: string;
  c6: string;
  r6: string;
}

export function buildDualStackLine(l: DualStackLine): void {
  const { ns, ifs } = l;
  freshNetns(Object.values(ns), { ipv6: true });
  addVethPair(
    { ns: ns.c, ifname: ifs.c0, cidr: `${l.c4}/24` },
    { ns: ns.d, ifname: ifs.d0, cidr: `${l.d0v4}/24` },
  );
  addVethPair(
    { ns: ns.d, ifname: ifs.d1, cidr: `${l.d1v4}/24` },
    { ns: ns.r, ifname: ifs.r0, cidr: `${l.r4}/24` },
  );
  ip("-n", ns.c, "-6", "addr", "add", `${l.c6}/64`, "dev", ifs.c0, "nodad");
  ip("-n", ns.d, "-6", "addr", "add", `${l.n1}::1/64`, "dev", ifs.d0, "nodad");
  ip("-n", ns.d, "-6", "addr", "add", `${l.n2}::1/64`, "dev", ifs.d1, "nodad");
  ip("-n", ns.r, "-6", "addr", "add", `${l.r6}/64`, "dev", ifs.r0, "nodad");
  ip("-n", ns.c, "route", "add", "default", "via", l.d0v4);
  ip("-n", ns.c, "-6", "route", "add", "default", "via", `${l.n1}::1`);
  ip("-n", ns.r, "route", "add", "default", "via", l.d1v4);
  ip("-n", ns.r, "-6", "route", "add", "default", "via", `${l.n2}::1`);
}
