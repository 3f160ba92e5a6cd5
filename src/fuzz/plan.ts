// The fuzz run's director: its addresses, and services of every method and family that frames can
// reach deep into (the lab's address plan, docs/lab.md, with a VIP per method):
//
//   clients' link  198.18.112.0/24, fd74:7376::/64       director eth0 .1 / ::1, sender (and curl) .2 / ::2
//   servers' link  198.18.113.0/24, fd74:7376:0:1::/64   director eth1 .1 / ::1, real servers .11-.13 / ::11-::13,
//                                                      LIPs .100 (pool), .101 (NAT64), ::100
//   VIPs           198.18.112.100 NAT (tcp 80, udp 53, tcp 443 sh persistent), .101 DR, .102 TUN (ipip 80,
//                  gue 81, gre 82), .103 FULLNAT (tcp 80, udp 53 one-packet), .105 fwmark 1 (tcp 80, lblc),
//                  .106 fwmark 2 (udp, DR); fd74:7376::100 NAT, ::101 DR, ::102 TUN 6in6, ::103 FULLNAT,
//                  ::104 NAT64 (FULLNAT to the IPv4 real servers), ::105 fwmark 3
//   clients        203.0.113.1-6, 198.51.100.9 and 2001:db8:c::1-6 (routed by the director to the sender)
//
// and the sync daemons (a master, and a backup on 224.0.0.81:8848 taking every syncid) on eth1.
// Pure data: the netns run (netns.ts) and the in-process run (inproc.ts) both build from it.

import type { FuzzService, FuzzTarget, FuzzVrrp } from "./frames.js";
import { ip4, ip6 } from "./wire.js";

export const FUZZ_ADDR = {
  DIR0: "198.18.112.1",
  CIP: "198.18.112.2",
  DIR1: "198.18.113.1",
  RIPS: ["198.18.113.11", "198.18.113.12", "198.18.113.13"],
  LIP: "198.18.113.100",
  LIP64: "198.18.113.101",
  DIR0_6: "fd74:7376::1",
  CIP6: "fd74:7376::2",
  DIR1_6: "fd74:7376:0:1::1",
  RIPS6: ["fd74:7376:0:1::11", "fd74:7376:0:1::12", "fd74:7376:0:1::13"],
  LIP6: "fd74:7376:0:1::100",
  CLIENTS: [
    "203.0.113.1",
    "203.0.113.2",
    "203.0.113.3",
    "203.0.113.4",
    "203.0.113.5",
    "203.0.113.6",
    "198.51.100.9",
  ],
  CLIENTS6: [
    "2001:db8:c::1",
    "2001:db8:c::2",
    "2001:db8:c::3",
    "2001:db8:c::4",
    "2001:db8:c::5",
    "2001:db8:c::6",
  ],
  LAN_HOSTS: ["198.18.113.201", "198.18.113.202", "198.18.113.203"],
  LAN_HOSTS6: ["fd74:7376:0:1::201", "fd74:7376:0:1::202"],
  NAT_VIP: "198.18.112.100",
  NAT_VIP6: "fd74:7376::100",
  SYNC_GROUP: "224.0.0.81",
  SYNC_PORT: 8848,
  GUE_PORT: 6080,
} as const;

/** One service of the plan: its ipvsadm lines, and what frames aim at (fwmark ones by their rule's address). */
interface PlanService {
  svc: FuzzService;
  lines: string[];
  /** A fwmark rule (tsvs fwmark add) that marks its traffic. */
  rule?: string;
}

function v4(
  proto: 6 | 17,
  vip: string,
  port: number,
  rport: number,
  method: FuzzService["method"],
): FuzzService {
  return { af: 4, proto, vip4: ip4(vip), vip6: null, port, rport, method };
}

function v6(
  proto: 6 | 17,
  vip: string,
  port: number,
  rport: number,
  method: FuzzService["method"],
): FuzzService {
  return { af: 6, proto, vip4: 0, vip6: ip6(vip), port, rport, method };
}

const [R1, R2, R3] = FUZZ_ADDR.RIPS;
const [S1, S2, S3] = FUZZ_ADDR.RIPS6;

/** Every service, in the order its lines are applied. */
export const PLAN_SERVICES: readonly PlanService[] = [
  {
    svc: v4(6, "198.18.112.100", 80, 80, "nat"),
    lines: [
      "-A -t 198.18.112.100:80 -s rr",
      `-a -t 198.18.112.100:80 -r ${R1}:80 -m`,
      `-a -t 198.18.112.100:80 -r ${R2}:80 -m`,
      `-a -t 198.18.112.100:80 -r ${R3}:80 -m`,
    ],
  },
  {
    svc: v4(17, "198.18.112.100", 53, 53, "nat"),
    lines: [
      "-A -u 198.18.112.100:53 -s wrr",
      `-a -u 198.18.112.100:53 -r ${R1}:53 -m -w 2`,
      `-a -u 198.18.112.100:53 -r ${R2}:53 -m`,
    ],
  },
  {
    svc: v4(6, "198.18.112.100", 443, 8080, "nat"),
    lines: [
      "-A -t 198.18.112.100:443 -s sh -p 60",
      `-a -t 198.18.112.100:443 -r ${R1}:8080 -m`,
      `-a -t 198.18.112.100:443 -r ${R2}:8080 -m`,
    ],
  },
  {
    svc: v4(6, "198.18.112.101", 80, 80, "dr"),
    lines: [
      "-A -t 198.18.112.101:80 -s wlc",
      `-a -t 198.18.112.101:80 -r ${R1} -g`,
      `-a -t 198.18.112.101:80 -r ${R2} -g`,
    ],
  },
  {
    svc: v4(17, "198.18.112.101", 53, 53, "dr"),
    lines: [
      "-A -u 198.18.112.101:53 -s mh",
      `-a -u 198.18.112.101:53 -r ${R1} -g`,
      `-a -u 198.18.112.101:53 -r ${R3} -g`,
    ],
  },
  {
    svc: v4(6, "198.18.112.102", 80, 80, "tun"),
    lines: [
      "-A -t 198.18.112.102:80 -s lc",
      `-a -t 198.18.112.102:80 -r ${R1} -i`,
      `-a -t 198.18.112.102:80 -r ${R2} -i`,
    ],
  },
  {
    svc: v4(6, "198.18.112.102", 81, 81, "tun"),
    lines: [
      "-A -t 198.18.112.102:81 -s rr",
      `-a -t 198.18.112.102:81 -r ${R2} -i --tun-type gue --tun-port ${FUZZ_ADDR.GUE_PORT}`,
      `-a -t 198.18.112.102:81 -r ${R3} -i --tun-type gue --tun-port ${FUZZ_ADDR.GUE_PORT} --tun-remcsum`,
    ],
  },
  {
    svc: v4(6, "198.18.112.102", 82, 82, "tun"),
    lines: ["-A -t 198.18.112.102:82 -s rr", `-a -t 198.18.112.102:82 -r ${R3} -i --tun-type gre --tun-csum`],
  },
  {
    svc: v4(6, "198.18.112.103", 80, 80, "fullnat"),
    lines: [
      "-A -t 198.18.112.103:80 -s rr",
      `-a -t 198.18.112.103:80 -r ${R1}:80 --fullnat`,
      `-a -t 198.18.112.103:80 -r ${R2}:80 --fullnat`,
    ],
  },
  {
    svc: v4(17, "198.18.112.103", 53, 53, "fullnat"),
    lines: ["-A -u 198.18.112.103:53 -s rr -o", `-a -u 198.18.112.103:53 -r ${R2}:53 --fullnat`],
  },
  {
    svc: v4(6, "198.18.112.105", 80, 80, "nat"),
    rule: "-d 198.18.112.105 -p tcp --dport 80 -j MARK --set-mark 1",
    lines: ["-A -f 1 -s lblc", `-a -f 1 -r ${R1}:80 -m`, `-a -f 1 -r ${R2}:80 -m`],
  },
  {
    svc: v4(17, "198.18.112.106", 53, 53, "dr"),
    rule: "-d 198.18.112.106 -p udp -j MARK --set-mark 2",
    lines: ["-A -f 2 -s dh -p 30", `-a -f 2 -r ${R3} -g`],
  },
  {
    svc: v6(6, "fd74:7376::100", 80, 80, "nat"),
    lines: [
      "-A -t [fd74:7376::100]:80 -s rr",
      `-a -t [fd74:7376::100]:80 -r [${S1}]:80 -m`,
      `-a -t [fd74:7376::100]:80 -r [${S2}]:80 -m`,
    ],
  },
  {
    svc: v6(17, "fd74:7376::100", 53, 53, "nat"),
    lines: ["-A -u [fd74:7376::100]:53 -s rr", `-a -u [fd74:7376::100]:53 -r [${S1}]:53 -m`],
  },
  {
    svc: v6(6, "fd74:7376::101", 80, 80, "dr"),
    lines: ["-A -t [fd74:7376::101]:80 -s wrr", `-a -t [fd74:7376::101]:80 -r [${S2}]:80 -g`],
  },
  {
    svc: v6(6, "fd74:7376::102", 80, 80, "tun"),
    lines: ["-A -t [fd74:7376::102]:80 -s rr", `-a -t [fd74:7376::102]:80 -r [${S3}]:80 -i`],
  },
  {
    svc: v6(6, "fd74:7376::103", 80, 80, "fullnat"),
    lines: [
      "-A -t [fd74:7376::103]:80 -s rr",
      `-P -t [fd74:7376::103]:80 -z ${FUZZ_ADDR.LIP6}`,
      `-a -t [fd74:7376::103]:80 -r [${S1}]:80 --fullnat`,
    ],
  },
  {
    svc: v6(6, "fd74:7376::104", 80, 80, "nat64"),
    lines: [
      "-A -t [fd74:7376::104]:80 -s rr",
      `-P -t [fd74:7376::104]:80 -z ${FUZZ_ADDR.LIP64}`,
      `-a -t [fd74:7376::104]:80 -r ${R2}:80 --fullnat`,
    ],
  },
  {
    svc: v6(6, "fd74:7376::105", 80, 80, "nat"),
    rule: "-d fd74:7376::105 -p tcp --dport 80 -j MARK --set-mark 3",
    lines: ["-A -f 3 -6 -s sed", `-a -f 3 -6 -r [${S3}]:80 -m`],
  },
];

/** `ipvsadm --start-daemon` lines: a master, and a backup that takes every syncid. */
export const PLAN_SYNC_LINES: readonly string[] = [
  "--start-daemon master --mcast-interface eth1 --syncid 1",
  "--start-daemon backup --mcast-interface eth1 --syncid 0",
];

/** The director's MACs and the sender's, per link (0: clients', 1: servers'). */
export interface PlanMacs {
  dir: readonly [Uint8Array, Uint8Array];
  sender: readonly [Uint8Array, Uint8Array];
}

/** The generator's target for this plan. */
export function planTarget(
  macs: PlanMacs,
  opts: { gso: boolean; vrrp?: FuzzVrrp[]; mtu?: number },
): FuzzTarget {
  const a = FUZZ_ADDR;
  return {
    links: [
      { dirMac: macs.dir[0], srcMac: macs.sender[0], dip4: ip4(a.DIR0), dip6: ip6(a.DIR0_6) },
      { dirMac: macs.dir[1], srcMac: macs.sender[1], dip4: ip4(a.DIR1), dip6: ip6(a.DIR1_6) },
    ],
    services: PLAN_SERVICES.map((p) => p.svc),
    rips4: a.RIPS.map(ip4),
    rips6: a.RIPS6.map(ip6),
    lips4: [ip4(a.LIP), ip4(a.LIP64)],
    lips6: [ip6(a.LIP6)],
    clients4: a.CLIENTS.map(ip4),
    clients6: a.CLIENTS6.map(ip6),
    // Below the ephemeral range (32768+), so that a fuzz frame never lands on the check's own curl.
    clientPortBase: 20000,
    clientPorts: 24,
    lanHosts4: a.LAN_HOSTS.map(ip4),
    lanHosts6: a.LAN_HOSTS6.map(ip6),
    syncGroup: ip4(a.SYNC_GROUP),
    syncPort: a.SYNC_PORT,
    vrrp: opts.vrrp ?? [],
    guePorts: [a.GUE_PORT],
    maxFrame: (opts.mtu ?? 1500) + 14,
    gso: opts.gso,
  };
}
