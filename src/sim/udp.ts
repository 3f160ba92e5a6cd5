// UDP for the simulated hosts: bound sockets, datagrams in and out, ICMP port unreachable
// reported to the socket that sent the datagram (as a connected Linux socket sees ECONNREFUSED).

import { formatIPv4, readU16, writeU16 } from "../core/addr.js";
import type { Flow } from "../core/packet/flow.js";
import { IPPROTO_UDP } from "../core/packet/flow.js";
import { ICMP_DEST_UNREACH, ICMP_PORT_UNREACH } from "../core/packet/icmp.js";
import { UDP_HLEN } from "../core/packet/udp.js";
import type { Host, IcmpEvent, IpLike } from "./host.js";
import { ip } from "./host.js";

export type UdpMessageHandler = (
  data: Uint8Array,
  from: number,
  fromPort: number,
  to: number,
  sock: UdpSocket,
) => void;

export type SimError = Error & { code: string };

export function simError(code: string, msg: string): SimError {
  return Object.assign(new Error(`${code}: ${msg}`), { code });
}

/** Ephemeral ports as net.ipv4.ip_local_port_range's default, 32768..60999. */
export const EPHEMERAL_LOW = 32768;
export const EPHEMERAL_HIGH = 60999;

export class UdpSocket {
  onError: ((err: SimError) => void) | null = null;
  closed = false;
  constructor(
    private readonly stack: UdpStack,
    readonly port: number,
    /** Bound address, 0 = any. */
    readonly addr: number,
    public onMessage: UdpMessageHandler,
  ) {}

  /** Sends from this socket; saddr 0 = the bound address, else the route's source. */
  send(dst: IpLike, dport: number, data: Uint8Array | string, saddr = 0): boolean {
    return this.stack.sendFrom(saddr !== 0 ? saddr : this.addr, this.port, ip(dst), dport, data);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stack.unbind(this);
  }
}

export class UdpStack {
  private socks = new Map<number, UdpSocket[]>();
  private nextEphemeral: number;
  readonly counters = { rx: 0, tx: 0, noPort: 0 };

  constructor(private readonly host: Host) {
    this.nextEphemeral = EPHEMERAL_LOW + ((host.seed >>> 8) % (EPHEMERAL_HIGH - EPHEMERAL_LOW + 1));
  }

  /** Binds port (0 = an ephemeral port) on addr (0 = any local address). */
  bind(port: number, onMessage: UdpMessageHandler, addr: IpLike = 0): UdpSocket {
    const a = ip(addr);
    if (port === 0) port = this.ephemeral();
    const list = this.socks.get(port) ?? [];
    if (list.some((s) => s.addr === a || s.addr === 0 || a === 0))
      throw simError("EADDRINUSE", `udp port ${port}`);
    const s = new UdpSocket(this, port, a, onMessage);
    list.push(s);
    this.socks.set(port, list);
    return s;
  }

  /** One datagram from srcPort (0 = a fresh ephemeral port, not bound: replies are refused). */
  send(dst: IpLike, dport: number, data: Uint8Array | string, srcPort = 0): boolean {
    return this.sendFrom(0, srcPort === 0 ? this.ephemeral() : srcPort, ip(dst), dport, data);
  }

  sendFrom(saddr: number, sport: number, daddr: number, dport: number, data: Uint8Array | string): boolean {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    this.counters.tx++;
    return this.host.sendIp(IPPROTO_UDP, saddr, daddr, UDP_HLEN + bytes.length, (b, off) => {
      writeU16(b, off, sport);
      writeU16(b, off + 2, dport);
      writeU16(b, off + 4, UDP_HLEN + bytes.length);
      b.set(bytes, off + UDP_HLEN);
    });
  }

  unbind(s: UdpSocket): void {
    const list = this.socks.get(s.port);
    if (list === undefined) return;
    const k = list.indexOf(s);
    if (k >= 0) list.splice(k, 1);
    if (list.length === 0) this.socks.delete(s.port);
  }

  private lookup(port: number, daddr: number): UdpSocket | undefined {
    const list = this.socks.get(port);
    if (list === undefined) return undefined;
    return list.find((s) => s.addr === daddr) ?? list.find((s) => s.addr === 0);
  }

  private ephemeral(): number {
    const span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1;
    for (let i = 0; i < span; i++) {
      const p = this.nextEphemeral;
      this.nextEphemeral = p === EPHEMERAL_HIGH ? EPHEMERAL_LOW : p + 1;
      if (!this.socks.has(p)) return p;
    }
    throw simError("EADDRNOTAVAIL", "no free udp port");
  }

  /** A datagram for a local address; false = no socket (the host answers port unreachable). */
  input(f: Flow, buf: Uint8Array): boolean {
    const s = this.lookup(f.dport, f.daddr);
    if (s === undefined) {
      this.counters.noPort++;
      return false;
    }
    this.counters.rx++;
    const ulen = readU16(buf, f.l4Off + 4);
    const data = buf.slice(f.payloadOff, f.l4Off + ulen);
    s.onMessage(data, f.saddr, f.sport, f.daddr, s);
    return true;
  }

  icmpError(ev: IcmpEvent): void {
    const s = this.lookup(ev.innerSport, ev.innerSaddr);
    if (s === undefined || s.onError === null) return;
    const refused = ev.type === ICMP_DEST_UNREACH && ev.code === ICMP_PORT_UNREACH;
    const code = refused ? "ECONNREFUSED" : "EHOSTUNREACH";
    s.onError(
      simError(code, `udp to ${formatIPv4(ev.innerDaddr)}:${ev.innerDport} (icmp ${ev.type}/${ev.code})`),
    );
  }
}
