// `tsvs explain`: what the director would do with one packet, and why, read from the live tables
// without sending or changing anything. Katran's "simulator" answers the same question ("where
// would this flow go?") without a packet.
//
// The packet is the first of a connection: a TCP SYN, or a UDP datagram, from CIP:CPORT to
// VIP:VPORT, carrying a firewall mark when one is given (else tsvs's own mark rules classify it).
// The walk is Engine.input's and ConnLife.schedule's, in their order (net/netfilter/ipvs/
// ip_vs_core.c ip_vs_in, ip_vs_schedule, ip_vs_sched_persist): mark → reply-direction lookup →
// connection entry (conn_reuse_mode, expire_nodest_conn) → service (fwmark, proto/VIP/port,
// port 0) → persistence template → scheduler → forwarding method and the rewritten addresses.
//
// IPv6 (issue 14) is the same walk over input6's steps: the Flow carries the words (s6, d6) and their
// folds, the lookups are the IPv6 ones (isVip6, lookupOut6/In6, findService6, hostDelivers6,
// lookupTemplate6 under the service's prefix length), the route and neighbour are lookup6/entry6,
// and FULLNAT takes an IPv6 LIP (ConnLife.pickLocal6) or, toward an IPv4 real server (NAT64), an
// IPv4 one. Addresses print as ipvsadm prints them ([2001:db8::1]:80).
//
// Nothing here runs per packet. The tests that decide (checkTemplate's, reuseCheck's) are the data
// path's own, split out as side-effect-free functions (ConnLife.templateFit, Engine.synReschedules,
// ConnLife.pickLocal without commit). The destination comes from the service's scheduler itself,
// run over a copy of its state (sched/util.ts peekSchedule) with a random source that reads ahead
// of the engine's (ConnLife.peekContext): rr/wrr cursors, lblc/lblcr tables and the generator are
// left as they were, and the next real connection of the same tuple goes where this says.

import { formatIPv4, ipv6Fold, ipv6MaskWords, ipv6TextWords, ipv6WordsText } from "./addr.js";
import { A6_CADDR, A6_DADDR, A6_LADDR, A6_VADDR, CONN_F_FWD_MASK, CONN_F_PP } from "./conn/table.js";
import { DEST_F_AVAILABLE, type Dest, Fwd } from "./dest.js";
import type { Engine } from "./engine.js";
import { TsvsError } from "./errors.js";
import { FwmarkClassifier } from "./fwmark.js";
import { Flow, IPPROTO_TCP, IPPROTO_UDP, TCP_SYN } from "./packet/flow.js";
import { TCP_STATE_NAMES } from "./proto/tcp.js";
import { UDP_STATE_NAME } from "./proto/udp.js";
import { type Iface, Route6Result, RouteResult } from "./route.js";
import type { Figure, SchedContext } from "./sched/types.js";
import { destText, IPPROTO_SCTP, peekSchedule } from "./sched/util.js";
import { type Service, SVC_F_ONEPACKET, SVC_F_SCHED_BITS, schedFlagNames } from "./service.js";

export interface ExplainQuery {
  /** IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP. */
  proto: number;
  /** IPv4 addresses host-order u32 (0 for IPv6). */
  vaddr: number;
  vport: number;
  caddr: number;
  cport: number;
  /** IPv6: the VIP and the client as text (both, or neither); vaddr and caddr are then 0. */
  vaddr6?: string;
  caddr6?: string;
  /** The mark the packet carries, as if the mangle table had set it; absent: tsvs's own rules decide. */
  fwmark?: number;
}

/** What becomes of the packet. */
export type ExplainVerdict =
  /** A connection entry exists: the packet follows it. */
  | "existing"
  /** A persistence template names the destination of the new connection. */
  | "template"
  /** A new connection, the scheduler's choice. */
  | "scheduled"
  /** A service, but no destination: ICMP port unreachable to the client (ip_vs_leave). */
  | "no-destination"
  /** No service: a TCP reset or ICMP port unreachable for an address tsvs owns, else the kernel's. */
  | "no-service"
  /** The packet belongs to a connection's reply direction. */
  | "reply"
  /** Dropped (the entry's destination is gone and expire_nodest_conn is off). */
  | "drop"
  /** Not a protocol tsvs forwards: left to the kernel. */
  | "pass";

export interface ExplainFwmark {
  /** given: the query's mark; rules: tsvs's mark rules; none: no rules, no mark. */
  source: "given" | "rules" | "none";
  mark: number;
  /** Every rule in evaluation order: whether it matches, and the mark after it. */
  rules: Array<{ id: number; rule: string; matched: boolean; markAfter: number }>;
}

export interface ExplainService {
  /** As ipvsadm -Ln names it: "TCP  198.18.0.100:80", "TCP  [2001:db8::100]:80", "FWM  10", "FWM  10 IPv6". */
  name: string;
  matchedBy: "fwmark" | "address and port" | "port 0";
  scheduler: string;
  /** netmask: IPv4 dotted, IPv6 a prefix length ("64"), as ipvsadm -L prints " mask X". */
  persistent: { timeoutS: number; netmask: string } | null;
  flags: string[];
}

export interface ExplainConnection {
  state: string;
  client: string;
  virtual: string;
  destination: string;
  /** FULLNAT's LIP:LPORT, else null. */
  local: string | null;
  expiresMs: number;
  /** The template that controls it, as its key reads; null when none. */
  controlledBy: string | null;
}

export interface ExplainTemplate {
  /** The template's key: protocol (or FWM), client network, virtual address and port. */
  key: string;
  /** The client address with -M's netmask applied, and the mask. */
  client: string;
  netmask: string;
  /** exists: found and fit; unfit: found but its destination is gone or quiesced (a new one replaces it); new: none, one is made. */
  status: "exists" | "unfit" | "new";
  destination: string | null;
  /** Time left (exists, unfit); the service's timeout for a new one, and an existing one's timer restarts at it. */
  expiresMs: number;
  timeoutS: number;
  /** Connections it controls now. */
  controls: number;
}

export interface ExplainSchedule {
  scheduler: string;
  /** The scheduler's pick now (null: no destination available). */
  destination: string | null;
  /** false when the random source is injected and cannot be read ahead (twos only draws). */
  exact: boolean;
  rule: string;
  figures: Record<string, Figure>;
  dests: Array<{ destination: string; figures: Record<string, Figure> }>;
}

export interface ExplainDestination {
  address: string;
  port: number;
  forward: "masq" | "route" | "tunnel" | "fullnat" | "local";
  weight: number;
  active: number;
  inactive: number;
}

export interface ExplainForward {
  method: "masq" | "route" | "tunnel" | "fullnat" | "local";
  /** ipvsadm's name: Masq, Route, Tunnel, FullNat. */
  ipvsadm: string;
  /** The packet as it leaves toward the real server (the inner one for TUN). */
  src: string;
  dst: string;
  /** TUN's outer header (DIP → RIP) and its kind: IPIP, IPv6-in-IPv6, IPv6-in-IPv4, IPv4-in-IPv6. */
  outer: { src: string; dst: string; kind: string } | null;
  /** The way out: interface, next hop, and its MAC when resolved (null: an ARP request goes first). */
  iface: string | null;
  nexthop: string | null;
  mac: string | null;
  /** What the method rewrites, in a few words. */
  rewrite: string;
}

export interface Explanation {
  verdict: ExplainVerdict;
  /** One line: what happens to the packet. */
  summary: string;
  /** What else an operator should know, in the order the packet meets it. */
  notes: string[];
  packet: { protocol: string; client: string; virtual: string; assumed: string };
  fwmark: ExplainFwmark;
  /** What the service lookup tried, in the engine's order, and what it found. */
  lookups: string[];
  service: ExplainService | null;
  connection: ExplainConnection | null;
  template: ExplainTemplate | null;
  schedule: ExplainSchedule | null;
  destination: ExplainDestination | null;
  forward: ExplainForward | null;
}

const PROTO_LABEL: Record<number, string> = {
  [IPPROTO_TCP]: "TCP",
  [IPPROTO_UDP]: "UDP",
  [IPPROTO_SCTP]: "SCTP",
};
const METHOD: Record<number, ExplainForward["method"]> = {
  [Fwd.Masq]: "masq",
  [Fwd.Local]: "local",
  [Fwd.Tunnel]: "tunnel",
  [Fwd.Route]: "route",
  [Fwd.Bypass]: "route",
  [Fwd.FullNat]: "fullnat",
};
const IPVSADM_METHOD: Record<number, string> = {
  [Fwd.Masq]: "Masq",
  [Fwd.Local]: "Local",
  [Fwd.Tunnel]: "Tunnel",
  [Fwd.Route]: "Route",
  [Fwd.Bypass]: "Route",
  [Fwd.FullNat]: "FullNat",
};

/** An address of either family: IPv4 in v4; IPv6 as its words in w (v4 then its fold). */
interface Addr {
  v4: number;
  w: Int32Array | null;
}

const v4Addr = (a: number): Addr => ({ v4: a >>> 0, w: null });
const v6Addr = (w: Int32Array): Addr => ({ v4: ipv6Fold(w), w: Int32Array.from(w) });
const text = (a: Addr): string => (a.w !== null ? ipv6WordsText(a.w) : formatIPv4(a.v4 >>> 0));
/** ADDR:PORT, [ADDR6]:PORT, as ipvsadm -n prints an endpoint. */
const ep = (a: Addr, port: number): string => (a.w !== null ? `[${text(a)}]:${port}` : `${text(a)}:${port}`);
const destAddr = (d: Dest): Addr => (d.addr6 !== null ? v6Addr(d.addr6) : v4Addr(d.addr));
const destName = destText;
const mac = (m: Uint8Array): string => [...m].map((b) => b.toString(16).padStart(2, "0")).join(":");

/** Address `which` (A6_*) of entry cx, of the family its side has. */
function entryAddr(e: Engine, cx: number, which: number): Addr {
  const t = e.conns;
  const client = which === A6_CADDR || which === A6_VADDR;
  if (!(client ? t.isIpv6(cx) : t.isDestIpv6(cx)))
    return v4Addr(
      which === A6_CADDR
        ? t.caddrOf(cx)
        : which === A6_VADDR
          ? t.vaddrOf(cx)
          : which === A6_DADDR
            ? t.daddrOf(cx)
            : t.laddrOf(cx),
    );
  const w = new Int32Array(4);
  t.addr6Of(cx, which, w);
  return { v4: ipv6Fold(w), w };
}

/** "TCP  198.18.0.100:80" / "TCP  [2001:db8::100]:80" / "FWM  10" / "FWM  10 IPv6", as ipvsadm -Ln names a service. */
export function serviceName(s: Service): string {
  if (s.fwmark !== 0) return s.af === 6 ? `FWM  ${s.fwmark} IPv6` : `FWM  ${s.fwmark}`;
  const vip = s.addr6 !== null ? v6Addr(s.addr6) : v4Addr(s.addr);
  return `${PROTO_LABEL[s.protocol] ?? s.protocol}  ${ep(vip, s.port)}`;
}

/** The persistence granularity as ipvsadm -L prints it after " mask": dotted, or an IPv6 prefix length. */
function netmaskText(s: Service): string {
  return s.af === 6 ? String(s.netmask) : formatIPv4(s.netmask >>> 0);
}

function serviceFlags(s: Service): string[] {
  const out: string[] = [];
  const names = schedFlagNames(s.sched.name);
  SVC_F_SCHED_BITS.forEach((f, i) => {
    if ((s.flags & f) !== 0) out.push(names[i]);
  });
  if ((s.flags & SVC_F_ONEPACKET) !== 0) out.push("ops");
  return out;
}

function describeService(s: Service, matchedBy: ExplainService["matchedBy"]): ExplainService {
  return {
    name: serviceName(s),
    matchedBy,
    scheduler: s.sched.name,
    persistent: s.persistent ? { timeoutS: s.timeout, netmask: netmaskText(s) } : null,
    flags: serviceFlags(s),
  };
}

function describeDest(d: Dest): ExplainDestination {
  return {
    address: text(destAddr(d)),
    port: d.port,
    forward: METHOD[d.fwd] ?? "route",
    weight: d.weight,
    active: d.activeConns,
    inactive: d.inactConns,
  };
}

/** The fwmark rules one by one, as FwmarkClassifier.classify applies them, and the mark they leave. */
function explainFwmark(e: Engine, f: Flow, given: number | undefined): ExplainFwmark {
  const rules: ExplainFwmark["rules"] = [];
  let mark = 0;
  for (const r of e.fwmarks.compiled()) {
    // The rule's own match code: a classifier holding this rule alone, its target made to leave 1.
    const one = new FwmarkClassifier();
    one.add({ ...r, markMask: 0xffffffff, markXor: 1 });
    const matched = one.classify(f) === 1;
    if (matched) mark = ((mark & ~r.markMask) ^ r.markXor) >>> 0;
    rules.push({ id: r.id, rule: r.text, matched, markAfter: mark });
  }
  if (given !== undefined) return { source: "given", mark: given >>> 0, rules };
  // The data path's own answer (it skips the call when there are no rules).
  const real = e.fwmarks.size === 0 ? 0 : e.fwmarks.classify(f);
  return { source: e.fwmarks.size === 0 ? "none" : "rules", mark: real, rules };
}

/** The way toward an address: the route's interface, next hop and source, and the neighbour's MAC. */
interface Way {
  iface: Iface | null;
  nexthop: Addr;
  src: Addr;
  /** The next hop's MAC when resolved, else null (ARP or NDP goes first). */
  mac: string | null;
}

function wayToward(e: Engine, a: Addr): Way {
  if (a.w === null) {
    const rt = new RouteResult();
    const iface = e.routes.lookup(a.v4, rt) ? rt.iface : null;
    const n = iface === null ? null : e.neigh.entry(iface.ifindex, rt.nexthop);
    const hw = n !== null && !n.dead && n.state !== 0 ? mac(n.mac) : null;
    return { iface, nexthop: v4Addr(rt.nexthop), src: v4Addr(rt.src), mac: hw };
  }
  const rt = new Route6Result();
  const iface = e.routes.lookup6(a.w, 0, 0, rt) ? rt.iface : null;
  const n = iface === null ? null : e.neigh.entry6(iface.ifindex, rt.nexthop, 0);
  const hw = n !== null && !n.dead && n.state !== 0 ? mac(n.mac) : null;
  return { iface, nexthop: v6Addr(rt.nexthop), src: v6Addr(rt.src), mac: hw };
}

/** The interface a packet from the client would come in on (the route back to it), for `-i` rules. */
function ifindexToward(e: Engine, a: Addr): number {
  return wayToward(e, a).iface?.ifindex ?? 0;
}

/** The packet: its protocol, the client's and the VIP's addresses and ports. */
interface Packet {
  proto: number;
  client: Addr;
  cport: number;
  vip: Addr;
  vport: number;
}

/** A tunnel's name by the families inside and outside (ip_vs_tunnel_xmit(_v6)'s IPPROTO_IPIP / IPV6). */
function tunnelName(inner6: boolean, outer6: boolean): string {
  return outer6 ? (inner6 ? "IPv6-in-IPv6" : "IPv4-in-IPv6") : inner6 ? "IPv6-in-IPv4" : "IPIP";
}

/** What the method does to the packet toward daddr:dport (laddr:lport for FULLNAT). */
function explainForward(
  e: Engine,
  fwd: number,
  q: Packet,
  daddr: Addr,
  dport: number,
  local: { addr: Addr; port: number } | null,
  /** FULLNAT: the PROXY protocol version the connection sends (0: TOA). */
  pp = 0,
): ExplainForward {
  const w = wayToward(e, daddr);
  const iface = w.iface;
  const way = {
    iface: iface?.name ?? null,
    nexthop: iface === null ? null : text(w.nexthop),
    mac: w.mac,
  };
  const method = METHOD[fwd] ?? "route";
  const ipvsadm = IPVSADM_METHOD[fwd] ?? "Route";
  const client = ep(q.client, q.cport);
  const vip = ep(q.vip, q.vport);
  const rip = ep(daddr, dport);
  const resolve = daddr.w !== null ? "NDP" : "ARP";
  switch (fwd) {
    case Fwd.Masq:
      return {
        method,
        ipvsadm,
        src: client,
        dst: rip,
        outer: null,
        ...way,
        rewrite: `destination ${vip} → ${rip}; replies ${rip} → ${vip} on their way back through the director`,
      };
    case Fwd.Tunnel: {
      const dip = iface === null ? null : text(w.src);
      const name = tunnelName(q.client.w !== null, daddr.w !== null);
      return {
        method,
        ipvsadm,
        src: client,
        dst: vip,
        outer: { src: dip ?? "?", dst: text(daddr), kind: name },
        ...way,
        rewrite: `${name}: the packet unchanged inside an outer header ${dip ?? "(no route)"} → ${text(daddr)}; the real server answers the client itself`,
      };
    }
    case Fwd.FullNat: {
      const lip = local === null ? "no free local address" : ep(local.addr, local.port);
      const nat64 = q.client.w !== null && daddr.w === null ? " (NAT64: IPv6 → IPv4, RFC 7915)" : "";
      return {
        method,
        ipvsadm,
        src: local === null ? "?" : lip,
        dst: rip,
        outer: null,
        ...way,
        rewrite:
          local === null
            ? `no ${daddr.w !== null ? "IPv6 " : ""}LIP of this worker has a free port toward ${rip}: the connection fails`
            : `source ${client} → ${lip}, destination ${vip} → ${rip}${nat64}${q.proto !== IPPROTO_TCP ? "" : pp !== 0 ? ` (client address in a PROXY protocol v${pp} header)` : " (client address in a TOA option)"}; replies to ${lip} are rewritten back`,
      };
    }
    default:
      return {
        method,
        ipvsadm,
        src: client,
        dst: vip,
        outer: null,
        ...way,
        rewrite: `the IP packet unchanged, the frame to the real server's MAC ${w.mac ?? `(unresolved: ${resolve} first)`}; the real server answers the client itself`,
      };
  }
}

/**
 * The template key as it reads: "TCP 198.18.0.0 → 198.18.0.100:80", "TCP 2001:db8:ff:: →
 * [2001:db8::100]:80", "FWM 10 from 198.18.0.0".
 */
function templateKey(proto: number, snet: Addr, vaddr: Addr, vport: number): string {
  return proto === 0
    ? `FWM ${vaddr.w !== null ? vaddr.w[0] >>> 0 : vaddr.v4 >>> 0} from ${text(snet)}`
    : `${PROTO_LABEL[proto] ?? proto} ${text(snet)} → ${ep(vaddr, vport)}`;
}

function connView(e: Engine, cx: number, now: number): ExplainConnection {
  const t = e.conns;
  const proto = t.protoOf(cx);
  const fwd = t.flagsOf(cx) & CONN_F_FWD_MASK;
  const ct = t.controlOf(cx);
  return {
    state: proto === IPPROTO_TCP ? TCP_STATE_NAMES[t.stateOf(cx)] : UDP_STATE_NAME,
    client: ep(entryAddr(e, cx, A6_CADDR), t.cportOf(cx)),
    virtual: ep(entryAddr(e, cx, A6_VADDR), t.vportOf(cx)),
    destination: ep(entryAddr(e, cx, A6_DADDR), t.dportOf(cx)),
    local: fwd === Fwd.FullNat ? ep(entryAddr(e, cx, A6_LADDR), t.lportOf(cx)) : null,
    expiresMs: Math.max(0, t.expiresAt(cx) - now),
    controlledBy:
      ct < 0
        ? null
        : templateKey(t.protoOf(ct), entryAddr(e, ct, A6_CADDR), entryAddr(e, ct, A6_VADDR), t.vportOf(ct)),
  };
}

/** The scheduler's pick now and its figures; nothing of the service, the engine or the generator changes. */
function explainSchedule(
  e: Engine,
  svc: Service,
  f: Flow,
  now: number,
): { s: ExplainSchedule; dest: Dest | null } {
  let guessed = false;
  // Two contexts, each reading ahead from the same state: one for schedule(), one for the figures.
  const ctx = (): SchedContext =>
    e.life.peekContext(now) ?? {
      now,
      random: () => {
        guessed = true;
        return 0;
      },
    };
  const { dest, after } = peekSchedule(svc, f, ctx());
  const detail = svc.sched.explain?.(svc, f, ctx(), after);
  const fig = (v: Figure | Dest): Figure => (typeof v === "object" && v !== null ? destName(v) : v);
  return {
    dest,
    s: {
      scheduler: svc.sched.name,
      destination: dest === null ? null : destName(dest),
      exact: !guessed,
      rule: detail?.rule ?? svc.sched.name,
      figures: Object.fromEntries(Object.entries(detail?.figures ?? {}).map(([k, v]) => [k, fig(v)])),
      dests: (detail?.dests ?? []).map((x) => ({ destination: destName(x.dest), figures: x.figures })),
    },
  };
}

/** The query's addresses: IPv6 when it names them as text, else IPv4. Null: not an address. */
function queryAddrs(q: ExplainQuery): { client: Addr; vip: Addr } | null {
  if (q.vaddr6 === undefined && q.caddr6 === undefined)
    return { client: v4Addr(q.caddr), vip: v4Addr(q.vaddr) };
  const c = q.caddr6 !== undefined ? ipv6TextWords(q.caddr6) : null;
  const v = q.vaddr6 !== undefined ? ipv6TextWords(q.vaddr6) : null;
  return c === null || v === null ? null : { client: v6Addr(c), vip: v6Addr(v) };
}

/** What the director would do with this packet now (the first packet of a connection). */
export function explainPacket(e: Engine, q: ExplainQuery, now: number): Explanation {
  const proto = PROTO_LABEL[q.proto] ?? String(q.proto);
  const addrs = queryAddrs(q);
  // The control request checked them (daemon/protocol.ts); a caller of the core that did not gets this.
  if (addrs === null)
    throw new TsvsError("TSVS_ERR_INVALID", "explain: the client and the VIP must both be IPv4 or both IPv6");
  const pk: Packet = { proto: q.proto, client: addrs.client, cport: q.cport, vip: addrs.vip, vport: q.vport };
  const v6 = pk.vip.w !== null;
  const f = new Flow();
  f.proto = q.proto;
  f.saddr = pk.client.v4;
  f.sport = q.cport;
  f.daddr = pk.vip.v4;
  f.dport = q.vport;
  if (pk.client.w !== null && pk.vip.w !== null) {
    f.af = 6;
    f.s6.set(pk.client.w);
    f.d6.set(pk.vip.w);
  }
  f.ttl = 64;
  f.tcpFlags = q.proto === IPPROTO_TCP ? TCP_SYN : 0;
  f.ifindex = ifindexToward(e, pk.client);
  const fwmark = explainFwmark(e, f, q.fwmark);
  f.fwmark = fwmark.mark;
  const out: Explanation = {
    verdict: "pass",
    summary: "",
    notes: [],
    packet: {
      protocol: proto,
      client: ep(pk.client, q.cport),
      virtual: ep(pk.vip, q.vport),
      assumed:
        q.proto === IPPROTO_TCP ? "a SYN: the first packet of a connection" : "a datagram of a new flow",
    },
    fwmark,
    lookups: [],
    service: null,
    connection: null,
    template: null,
    schedule: null,
    destination: null,
    forward: null,
  };
  const notes = out.notes;
  if (q.proto !== IPPROTO_TCP && q.proto !== IPPROTO_UDP) {
    out.summary = `tsvs forwards TCP and UDP: an ${proto} packet is left to the kernel`;
    return out;
  }
  const t = e.conns;
  const saddr = f.saddr | 0;
  const daddr = f.daddr | 0;

  // ip_vs_out first, unless the address is a VIP (then it is a request: Engine.input / input6).
  if (v6 ? !e.isVip6(f.d6) : !e.isVip(daddr)) {
    const cx = v6
      ? t.lookupOut6(f.proto, f.s6, f.sport, f.d6, f.dport)
      : t.lookupOut(f.proto, saddr, f.sport, daddr, f.dport);
    if (cx >= 0) {
      out.verdict = "reply";
      out.connection = connView(e, cx, now);
      out.summary = `a reply of the connection ${out.connection.client} → ${out.connection.virtual}: rewritten back toward the client`;
      return out;
    }
  }

  // The connection entry, and what a SYN does to one (conn_reuse_mode, expire_nodest_conn).
  let cx = v6
    ? t.lookupIn6(f.proto, f.s6, f.sport, f.d6, f.dport)
    : t.lookupIn(f.proto, saddr, f.sport, daddr, f.dport);
  if (cx >= 0) {
    out.connection = connView(e, cx, now);
    const dest = e.ctl.destById(t.destOf(cx));
    if (f.proto === IPPROTO_TCP && e.synReschedules(cx)) {
      notes.push(
        `an entry in ${out.connection.state} exists: a SYN reusing it is scheduled anew (conn_reuse_mode / expire_nodest_conn)`,
      );
      cx = -1;
    } else if (dest !== undefined && (dest.flags & DEST_F_AVAILABLE) === 0) {
      if (!e.sysctls.expireNodestConn) {
        out.verdict = "drop";
        out.summary = `the connection's real server ${out.connection.destination} was removed: its packets are dropped (expire_nodest_conn=0)`;
        return out;
      }
      notes.push(
        "the connection's real server was removed: the entry expires and the packet is scheduled anew (expire_nodest_conn)",
      );
      cx = -1;
    }
    if (cx >= 0) {
      out.verdict = "existing";
      if (dest !== undefined) out.destination = describeDest(dest);
      const fwd = t.flagsOf(cx) & CONN_F_FWD_MASK;
      out.forward = explainForward(
        e,
        fwd,
        pk,
        entryAddr(e, cx, A6_DADDR),
        t.dportOf(cx),
        fwd === Fwd.FullNat ? { addr: entryAddr(e, cx, A6_LADDR), port: t.lportOf(cx) } : null,
        (t.flagsOf(cx) & CONN_F_PP) !== 0 ? (t.ppWordOf(cx) >>> 8) & 15 : 0,
      );
      out.summary = `existing connection (${out.connection.state}, expires in ${secs(out.connection.expiresMs)}): to ${out.connection.destination} (${out.forward.ipvsadm})`;
      return out;
    }
  }

  // The service: fwmark, then proto/VIP/port, then proto/VIP/0 (IpvsCtl.findService's order).
  const svc = v6 ? e.ctl.findService6(f) : e.ctl.findService(f);
  const m = f.fwmark;
  const fwmName = `FWM  ${m}${v6 ? " IPv6" : ""}`;
  if (m !== 0)
    out.lookups.push(
      svc !== null && svc.fwmark === m
        ? `fwmark ${m}: service ${fwmName}`
        : `fwmark ${m}: no ${v6 ? "IPv6 " : ""}fwmark service ${m}`,
    );
  if (svc === null || svc.fwmark === 0) {
    const exact = svc !== null && svc.port === f.dport;
    out.lookups.push(`${proto}  ${ep(pk.vip, q.vport)}: ${exact ? "service" : "no such service"}`);
    if (!exact && f.dport !== 0)
      out.lookups.push(
        `${proto}  ${ep(pk.vip, 0)} (all ports): ${svc !== null ? "service" : "no such service"}`,
      );
  }
  if (svc === null || !(v6 ? e.routes.hostDelivers6(f.d6, 0) : e.routes.hostDelivers(daddr))) {
    out.verdict = "no-service";
    if (svc !== null) {
      out.service = describeService(svc, matchedBy(svc, f));
      notes.push(
        "the virtual address is held back: its VRRP instance is not MASTER, or the host does not hold it (--host-vips)",
      );
    }
    const owned = v6 ? e.local.ownsLocal6(f.d6, 0) : e.ownsLocal(daddr);
    const vipText = text(pk.vip);
    out.summary = `No such service: ${
      owned
        ? f.proto === IPPROTO_TCP
          ? `the director answers with a TCP reset (${vipText} is its own address)`
          : `the director answers ${v6 ? "ICMPv6" : "ICMP"} port unreachable (${vipText} is its own address)`
        : `${vipText} is not an address tsvs owns: the packet is left to the kernel`
    }`;
    return out;
  }
  out.service = describeService(svc, matchedBy(svc, f));

  // ConnLife.schedule / schedulePersist, without their effects.
  let dest: Dest | undefined;
  let dport: number;
  if (svc.persistent) {
    const portMatch = f.dport === svc.port;
    const tproto = svc.fwmark !== 0 ? 0 : f.proto;
    const tvport = svc.fwmark === 0 && portMatch ? f.dport : 0;
    let snet: Addr;
    let tvaddr: Addr;
    let ct: number;
    if (v6) {
      // ipv6_addr_prefix(snet, saddr, netmask); a fwmark template's vaddr is the mark in word 0.
      const sw = Int32Array.from(f.s6);
      ipv6MaskWords(sw, 0, svc.netmask);
      snet = { v4: ipv6Fold(sw), w: sw };
      const tw = svc.fwmark !== 0 ? Int32Array.of(svc.fwmark | 0, 0, 0, 0) : Int32Array.from(f.d6);
      tvaddr = { v4: ipv6Fold(tw), w: tw };
      ct = t.lookupTemplate6(tproto, sw, tw, tvport);
    } else {
      snet = v4Addr(f.saddr & svc.netmask);
      tvaddr = v4Addr(svc.fwmark !== 0 ? svc.fwmark : f.daddr);
      ct = t.lookupTemplate(tproto, snet.v4 | 0, tvaddr.v4 | 0, tvport);
    }
    const fit = ct >= 0 && e.life.templateFit(ct);
    const tmpl: ExplainTemplate = {
      key: templateKey(tproto, snet, tvaddr, tvport),
      client: text(snet),
      netmask: netmaskText(svc),
      status: ct < 0 ? "new" : fit ? "exists" : "unfit",
      destination: ct >= 0 ? ep(entryAddr(e, ct, A6_DADDR), t.dportOf(ct)) : null,
      expiresMs: ct >= 0 ? Math.max(0, t.expiresAt(ct) - now) : svc.timeout * 1000,
      timeoutS: svc.timeout,
      controls: ct >= 0 ? t.nControlOf(ct) : 0,
    };
    out.template = tmpl;
    if (fit) {
      dest = e.ctl.destById(t.destOf(ct));
      notes.push(
        `persistence: the template ${tmpl.key} (client ${tmpl.client}/${tmpl.netmask}) names ${tmpl.destination}; its timer restarts at ${svc.timeout} s`,
      );
    } else {
      if (ct >= 0)
        notes.push(
          `persistence: the template ${tmpl.key} names ${tmpl.destination}, which is gone or quiesced (expire_quiescent_template): a new template replaces it`,
        );
      const s = explainSchedule(e, svc, f, now);
      out.schedule = s.s;
      if (s.dest === null) return noDestination(out, "the scheduler found no available destination", v6);
      dest = s.dest;
      tmpl.destination = destName(dest);
      notes.push(
        `persistence: no template for ${tmpl.client}/${tmpl.netmask} yet: one is made for ${svc.timeout} s, naming ${tmpl.destination}`,
      );
    }
    if (dest === undefined) return noDestination(out, "the template's destination is gone", v6);
    dport = f.dport === svc.port && dest.port !== 0 ? dest.port : f.dport;
    out.verdict = fit ? "template" : "scheduled";
  } else {
    if (svc.fwmark === 0 && f.dport !== svc.port)
      return noDestination(out, "a port-0 (all ports) service works only with persistence (-p)", v6);
    const s = explainSchedule(e, svc, f, now);
    out.schedule = s.s;
    if (s.dest === null) return noDestination(out, "the scheduler found no available destination", v6);
    dest = s.dest;
    dport = dest.port !== 0 ? dest.port : f.dport;
    out.verdict = "scheduled";
  }
  if (t.size >= t.capacity)
    notes.push(
      "the connection table is full: the oldest embryonic entry makes room, else the packet is dropped",
    );
  out.destination = describeDest(dest);
  let local: { addr: Addr; port: number } | null = null;
  if (dest.fwd === Fwd.FullNat) {
    const l = e.life;
    if (dest.addr6 !== null) {
      if (l.pickLocal6(f.proto, dest.addr6, dport, dest.svc, false))
        local = { addr: v6Addr(l.pickedLip6), port: l.pickedLport };
    } else if (l.pickLocal(f.proto, dest.addr | 0, dport, dest.svc, false))
      local = { addr: v4Addr(l.pickedLip), port: l.pickedLport };
  }
  out.forward = explainForward(e, dest.fwd, pk, destAddr(dest), dport, local, svc.proxyProtocol & 15);
  const how = out.verdict === "template" ? "persistence template" : `${svc.sched.name} picks`;
  out.summary = `new connection: ${how} ${ep(destAddr(dest), dport)} (${out.forward.ipvsadm})`;
  if (out.schedule !== null && !out.schedule.exact)
    notes.push("the random source is injected here and cannot be read ahead: twos' draw is a guess");
  return out;
}

function matchedBy(svc: Service, f: Flow): ExplainService["matchedBy"] {
  if (svc.fwmark !== 0) return "fwmark";
  return svc.port === f.dport ? "address and port" : "port 0";
}

function noDestination(out: Explanation, why: string, v6: boolean): Explanation {
  out.verdict = "no-destination";
  out.summary = `no destination: ${why}; the client gets ${v6 ? "ICMPv6" : "ICMP"} port unreachable`;
  return out;
}

function secs(ms: number): string {
  const s = Math.ceil(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}
