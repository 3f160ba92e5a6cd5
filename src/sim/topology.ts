// The LVS lab of `tsvs sim`: a client network, a server LAN and a routed network behind a
// router, wired for one forwarding method. The director itself is not built here: the lab hands
// out its interface and route configuration (src/core/route.ts types) and plugs whatever
// implements the director (the engine, or a test stand-in) into the links by two callbacks.
//
//   client 198.18.0.2 ──[client 198.18.0.0/24]── director eth0 198.18.0.1 (VIP 198.18.0.100)
//                          │ (DR/TUN only: x eth2 198.18.0.254)
//   director eth1 198.18.1.1 (LIP 198.18.1.100) ──[lan 198.18.1.0/24]── r1 .11  r2 .12  r3 .13
//                                                                       x eth0 .254
//   x eth1 198.18.2.1 ──[routed 198.18.2.0/24]── r4 198.18.2.14
//
// NAT: real servers route via the director (r4 via x, x routes the client net via the director).
// DR/TUN: real servers hold the VIP on lo with arp_ignore=1/arp_announce=2 and answer the client
// directly through x, which therefore also sits on the client net (TUN: ipip enabled). DR needs
// layer 2 adjacency, so r4 cannot be a DR destination. FULLNAT: nothing special; replies go to
// the LIP, which is on the LAN.

import { TsvsError } from "../core/errors.js";
import { parseMac } from "../core/packet/eth.js";
import type { IfaceConfig, RouteConfig } from "../core/route.js";
import { type HttpServer, httpServer, type UdpEcho, udpEcho } from "./apps.js";
import type { SimClock } from "./clock.js";
import { Host, ip } from "./host.js";
import { Link, type NetPort } from "./net.js";

export type LabMethod = "nat" | "dr" | "tun" | "fullnat";

export type DirectorSend = (ifindex: number, buf: Uint8Array, off: number, len: number) => void;
export type DirectorInput = (ifindex: number, buf: Uint8Array, len: number, now: number) => void;

export const LAB = {
  client: "198.18.0.2",
  dirEth0: "198.18.0.1",
  vip: "198.18.0.100",
  xClient: "198.18.0.254",
  dirEth1: "198.18.1.1",
  lip: "198.18.1.100",
  r1: "198.18.1.11",
  r2: "198.18.1.12",
  r3: "198.18.1.13",
  xLan: "198.18.1.254",
  xRouted: "198.18.2.1",
  r4: "198.18.2.14",
} as const;

export const LAB_MACS = {
  dirEth0: "02:00:00:00:00:01",
  client: "02:00:00:00:00:02",
  xClient: "02:00:00:00:00:fe",
  dirEth1: "02:00:00:00:01:01",
  r1: "02:00:00:00:01:0b",
  r2: "02:00:00:00:01:0c",
  r3: "02:00:00:00:01:0d",
  xLan: "02:00:00:00:01:fe",
  xRouted: "02:00:00:00:02:01",
  r4: "02:00:00:00:02:0e",
} as const;

export type RealServerName = "r1" | "r2" | "r3" | "r4";

export interface ServerApps {
  http80: HttpServer;
  http8080: HttpServer;
  udp53: UdpEcho;
}

export interface LabOptions {
  /** One-way latency of every link in ms (default 0.05). */
  latencyMs?: number;
  /** TCP TIME_WAIT of every host in ms (default 1000). */
  timeWaitMs?: number;
  /** MTU of the routed network and x's interface on it (default 1500), for PMTU scenarios. */
  routedMtu?: number;
}

export interface Lab {
  clock: SimClock;
  method: LabMethod;
  hosts: { client: Host; r1: Host; r2: Host; r3: Host; r4: Host; x: Host };
  links: { client: Link; lan: Link; routed: Link };
  /** The real servers in address order, with their applications (HTTP 80/8080, UDP echo 53). */
  servers: Array<{ name: RealServerName; host: Host; addr: number; apps: ServerApps }>;
  directorIfaces: IfaceConfig[];
  directorRoutes: RouteConfig[];
  vip: number;
  lip: number;
  /**
   * Plugs the director into the client (ifindex 1) and LAN (ifindex 2) links: frames addressed
   * to its MACs (or broadcast) go to `input`; the returned function sends its frames (copied).
   */
  attachDirector(input: DirectorInput): DirectorSend;
  /** Another client on the client network (MAC 02:00 + the address bytes, gateway the director). */
  addClient(name: string, addr: string): Host;
}

function mac(s: string): Uint8Array {
  const m = parseMac(s);
  if (m === null) throw new TsvsError("TSVS_ERR_INVALID", `bad MAC ${s}`);
  return m;
}

export function buildLab(clock: SimClock, method: LabMethod, o: LabOptions = {}): Lab {
  const lo = { latencyMs: o.latencyMs };
  const links = {
    client: new Link(clock, { name: "client", ...lo }),
    lan: new Link(clock, { name: "lan", ...lo }),
    routed: new Link(clock, { name: "routed", ...lo, mtu: o.routedMtu }),
  };
  const hopts = { timeWaitMs: o.timeWaitMs };
  const directReturn = method === "dr" || method === "tun";

  const client = new Host(clock, "client", hopts);
  client.addIface(links.client, { name: "eth0", mac: LAB_MACS.client, addrs: [`${LAB.client}/24`] });
  client.setDefaultRoute(LAB.dirEth0);

  const x = new Host(clock, "x", { ...hopts, ipForward: true });
  x.addIface(links.lan, { name: "eth0", mac: LAB_MACS.xLan, addrs: [`${LAB.xLan}/24`] });
  x.addIface(links.routed, {
    name: "eth1",
    mac: LAB_MACS.xRouted,
    addrs: [`${LAB.xRouted}/24`],
    mtu: o.routedMtu ?? 1500,
  });
  if (directReturn)
    x.addIface(links.client, { name: "eth2", mac: LAB_MACS.xClient, addrs: [`${LAB.xClient}/24`] });
  else if (method === "nat") x.addRoute("198.18.0.0/24", LAB.dirEth1);

  const realServer = (name: RealServerName, link: Link, gw: string, mtu: number): Host => {
    const h = new Host(clock, name, {
      ...hopts,
      ipip: method === "tun",
      arpIgnore: directReturn ? 1 : 0,
      arpAnnounce: directReturn ? 2 : 0,
    });
    h.addIface(link, { name: "eth0", mac: LAB_MACS[name], addrs: [`${LAB[name]}/24`], mtu });
    h.setDefaultRoute(gw);
    if (directReturn) h.addLoopbackAddr(LAB.vip);
    return h;
  };
  const lanGw = method === "nat" ? LAB.dirEth1 : LAB.xLan;
  const r1 = realServer("r1", links.lan, lanGw, 1500);
  const r2 = realServer("r2", links.lan, lanGw, 1500);
  const r3 = realServer("r3", links.lan, lanGw, 1500);
  const r4 = realServer("r4", links.routed, LAB.xRouted, o.routedMtu ?? 1500);

  const servers = (
    [
      ["r1", r1],
      ["r2", r2],
      ["r3", r3],
      ["r4", r4],
    ] as const
  ).map(([name, host]) => ({
    name,
    host,
    addr: ip(LAB[name]),
    apps: {
      http80: httpServer(host, 80, name),
      http8080: httpServer(host, 8080, name),
      udp53: udpEcho(host, 53, name),
    },
  }));

  const directorIfaces: IfaceConfig[] = [
    {
      ifindex: 1,
      name: "eth0",
      mac: mac(LAB_MACS.dirEth0),
      addrs: [{ addr: ip(LAB.dirEth0), prefix: 24 }],
      mtu: 1500,
    },
    {
      ifindex: 2,
      name: "eth1",
      mac: mac(LAB_MACS.dirEth1),
      addrs: [{ addr: ip(LAB.dirEth1), prefix: 24 }],
      mtu: 1500,
    },
  ];
  const directorRoutes: RouteConfig[] = [
    { dst: ip("198.18.2.0"), prefix: 24, via: ip(LAB.xLan), ifindex: 2 },
  ];

  let attached = false;
  const attachDirector = (input: DirectorInput): DirectorSend => {
    if (attached) throw new TsvsError("TSVS_ERR_INVALID", "director already attached");
    attached = true;
    const senders: Array<(buf: Uint8Array, off: number, len: number) => void> = [];
    for (const cfg of directorIfaces) {
      const link = cfg.ifindex === 1 ? links.client : links.lan;
      const port: NetPort = {
        mac: cfg.mac,
        deliver: (buf, len) => {
          // The NIC's filter: unicast for another MAC never reaches the stack (no promiscuous mode).
          if ((buf[0] & 1) === 0) for (let i = 0; i < 6; i++) if (buf[i] !== cfg.mac[i]) return;
          input(cfg.ifindex, buf, len, clock.now);
        },
      };
      senders[cfg.ifindex] = link.attach(port);
    }
    return (ifindex, buf, off, len) => {
      const s = senders[ifindex];
      if (s !== undefined) s(buf, off, len);
    };
  };

  const addClient = (name: string, addr: string): Host => {
    const a = ip(addr);
    const h = new Host(clock, name, hopts);
    const m = [2, 0, a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255];
    h.addIface(links.client, { name: "eth0", mac: new Uint8Array(m), addrs: [`${addr}/24`] });
    h.setDefaultRoute(LAB.dirEth0);
    return h;
  };

  return {
    clock,
    method,
    hosts: { client, r1, r2, r3, r4, x },
    links,
    servers,
    directorIfaces,
    directorRoutes,
    vip: ip(LAB.vip),
    lip: ip(LAB.lip),
    attachDirector,
    addClient,
  };
}
