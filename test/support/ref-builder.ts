// Test-local frame builder and reference checksum, independent of the codecs under test
// (shared by the packet codec and property tests).
export type Bytes = number[];

/** Reference RFC 1071 checksum: sum 16-bit words with a BigInt-free, loop-folding adder. */
export function refSum(b: ArrayLike<number>, start = 0, end = b.length): number {
  let s = 0;
  for (let i = start; i < end; i += 2) {
    s += b[i] * 256 + (i + 1 < end ? b[i + 1] : 0);
    while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  }
  return s;
}
export function refCsum(b: ArrayLike<number>, start = 0, end = b.length): number {
  return 0xffff - refSum(b, start, end);
}
export function be16(v: number): Bytes {
  return [(v >>> 8) & 255, v & 255];
}
export function be32(v: number): Bytes {
  return [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
}
export function ip4(s: string): number {
  return s.split(".").reduce((a, o) => a * 256 + Number(o), 0);
}
export function pseudo(saddr: number, daddr: number, proto: number, len: number): Bytes {
  return [...be32(saddr), ...be32(daddr), 0, proto, ...be16(len)];
}

export interface TcpSpec {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags?: number;
  win?: number;
  options?: Bytes;
  payload?: Bytes;
  doff?: number;
}
export function tcpSeg(t: TcpSpec, saddr: number, daddr: number): Bytes {
  const opts = t.options ?? [];
  const hlen = 20 + opts.length;
  const doff = t.doff ?? hlen / 4;
  const seg = [
    ...be16(t.sport),
    ...be16(t.dport),
    ...be32(t.seq ?? 0),
    ...be32(t.ack ?? 0),
    doff << 4,
    t.flags ?? 0,
    ...be16(t.win ?? 65535),
    0,
    0,
    0,
    0,
    ...opts,
    ...(t.payload ?? []),
  ];
  const c = refCsum([...pseudo(saddr, daddr, 6, seg.length), ...seg]);
  seg[16] = c >>> 8;
  seg[17] = c & 255;
  return seg;
}
export function udpSeg(
  u: { sport: number; dport: number; payload?: Bytes; len?: number; nocsum?: boolean },
  saddr: number,
  daddr: number,
): Bytes {
  const p = u.payload ?? [];
  const seg = [...be16(u.sport), ...be16(u.dport), ...be16(u.len ?? 8 + p.length), 0, 0, ...p];
  if (!u.nocsum) {
    let c = refCsum([...pseudo(saddr, daddr, 17, seg.length), ...seg]);
    if (c === 0) c = 0xffff;
    seg[6] = c >>> 8;
    seg[7] = c & 255;
  }
  return seg;
}
export function icmpMsg(type: number, code: number, rest: number, data: Bytes = []): Bytes {
  const m = [type, code, 0, 0, ...be32(rest), ...data];
  const c = refCsum(m);
  m[2] = c >>> 8;
  m[3] = c & 255;
  return m;
}
export interface IpSpec {
  tos?: number;
  id?: number;
  frag?: number;
  ttl?: number;
  proto: number;
  saddr: number;
  daddr: number;
  options?: Bytes;
  totlen?: number;
  ver?: number;
  ihl?: number;
  badCsum?: boolean;
}
export function ipv4Dgram(h: IpSpec, payload: Bytes): Bytes {
  const opts = h.options ?? [];
  const hlen = 20 + opts.length;
  const hdr = [
    ((h.ver ?? 4) << 4) | (h.ihl ?? hlen / 4),
    h.tos ?? 0,
    ...be16(h.totlen ?? hlen + payload.length),
    ...be16(h.id ?? 0x1234),
    ...be16(h.frag ?? 0x4000),
    h.ttl ?? 64,
    h.proto,
    0,
    0,
    ...be32(h.saddr),
    ...be32(h.daddr),
    ...opts,
  ];
  let c = refCsum(hdr);
  if (h.badCsum) c ^= 0x0100;
  hdr[10] = c >>> 8;
  hdr[11] = c & 255;
  return [...hdr, ...payload];
}
export const MAC_A = [0x02, 0, 0, 0, 0, 0x0a];
export const MAC_B = [0x02, 0, 0, 0, 0, 0x0b];
export function ethFrame(
  ethType: number,
  payload: Bytes,
  tags: Array<[number, number]> = [],
  pad = 0,
): Uint8Array {
  const t: Bytes = [];
  for (const [tpid, tci] of tags) t.push(...be16(tpid), ...be16(tci));
  return Uint8Array.from([...MAC_A, ...MAC_B, ...t, ...be16(ethType), ...payload, ...new Array(pad).fill(0)]);
}
export function u16(b: ArrayLike<number>, o: number): number {
  return b[o] * 256 + b[o + 1];
}
export function u32(b: ArrayLike<number>, o: number): number {
  return ((b[o] * 256 + b[o + 1]) * 256 + b[o + 2]) * 256 + b[o + 3];
}
/** Full recomputation: the IPv4 header at l3 sums to 0xffff. */
export function refIpOk(b: ArrayLike<number>, l3: number): boolean {
  return refSum(b, l3, l3 + (b[l3] & 15) * 4) === 0xffff;
}
/** Full recomputation of the TCP/UDP/ICMP checksum of the datagram at l3 (UDP 0 = none). */
export function refL4Ok(b: ArrayLike<number>, l3: number): boolean {
  const hlen = (b[l3] & 15) * 4;
  const end = l3 + u16(b, l3 + 2);
  const l4 = l3 + hlen;
  const proto = b[l3 + 9];
  const seg = Array.from(b).slice(l4, end);
  if (proto === 1) return refSum(seg) === 0xffff;
  if (proto === 17 && u16(b, l4 + 6) === 0) return true;
  const ph = pseudo(u32(b, l3 + 12), u32(b, l3 + 16), proto, seg.length);
  return refSum([...ph, ...seg]) === 0xffff;
}
