// A minimal DNS message codec (RFC 1035 §4.1) for DNS_CHECK: one question out, the
// header and answer records back. Decoding is bounds checked and returns null on a
// malformed message; compressed names (§4.1.4) are followed with a hop limit.

import { formatIPv6 } from "../core/addr.js";

export const DNS_QTYPES: Readonly<Record<string, number>> = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  MX: 15,
  TXT: 16,
  AAAA: 28,
};

export const DNS_CLASS_IN = 1;
const FLAG_QR = 0x8000;
const FLAG_RD = 0x0100;
const HEADER_LEN = 12;
/** A name is at most 255 bytes; more pointer hops than that is a loop. */
const MAX_POINTER_HOPS = 128;

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: Uint8Array;
  /** The address of an A (dotted) or AAAA (inet_ntop's form) record, "" otherwise. */
  address: string;
}

export interface DnsMessage {
  id: number;
  flags: number;
  qr: boolean;
  rcode: number;
  questions: { name: string; type: number; class: number }[];
  answers: DnsRecord[];
}

/** Encodes a recursive query for `name` (dotted; "." or "" is the root). Null if a label is too long. */
export function encodeQuery(id: number, name: string, qtype: number): Uint8Array | null {
  const labels = name.split(".").filter((l) => l !== "");
  const bytes: number[] = [id >>> 8, id & 255, FLAG_RD >>> 8, FLAG_RD & 255, 0, 1, 0, 0, 0, 0, 0, 0];
  let nameLen = 1;
  for (const l of labels) {
    const b = new TextEncoder().encode(l);
    if (b.length > 63) return null;
    nameLen += b.length + 1;
    bytes.push(b.length, ...b);
  }
  if (nameLen > 255) return null;
  bytes.push(0, qtype >>> 8, qtype & 255, DNS_CLASS_IN >>> 8, DNS_CLASS_IN & 255);
  return Uint8Array.from(bytes);
}

const u16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];

/** Reads a possibly compressed name at `off`; returns it and the offset after it in place. */
function readName(b: Uint8Array, off: number): { name: string; next: number } | null {
  const labels: string[] = [];
  let next = -1;
  let hops = 0;
  let o = off;
  for (;;) {
    if (o >= b.length) return null;
    const len = b[o];
    if (len === 0) {
      if (next < 0) next = o + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (o + 1 >= b.length || ++hops > MAX_POINTER_HOPS) return null;
      if (next < 0) next = o + 2;
      o = ((len & 0x3f) << 8) | b[o + 1];
      continue;
    }
    if ((len & 0xc0) !== 0 || o + 1 + len > b.length) return null;
    labels.push(new TextDecoder().decode(b.subarray(o + 1, o + 1 + len)));
    o += 1 + len;
  }
  return { name: labels.join("."), next };
}

export function decodeMessage(b: Uint8Array): DnsMessage | null {
  if (b.length < HEADER_LEN) return null;
  const flags = u16(b, 2);
  const qd = u16(b, 4);
  const an = u16(b, 6);
  const msg: DnsMessage = {
    id: u16(b, 0),
    flags,
    qr: (flags & FLAG_QR) !== 0,
    rcode: flags & 15,
    questions: [],
    answers: [],
  };
  let o = HEADER_LEN;
  for (let i = 0; i < qd; i++) {
    const n = readName(b, o);
    if (n === null || n.next + 4 > b.length) return null;
    msg.questions.push({ name: n.name, type: u16(b, n.next), class: u16(b, n.next + 2) });
    o = n.next + 4;
  }
  for (let i = 0; i < an; i++) {
    const n = readName(b, o);
    if (n === null || n.next + 10 > b.length) return null;
    const p = n.next;
    const rdlen = u16(b, p + 8);
    if (p + 10 + rdlen > b.length) return null;
    const type = u16(b, p);
    const data = b.slice(p + 10, p + 10 + rdlen);
    msg.answers.push({
      name: n.name,
      type,
      class: u16(b, p + 2),
      ttl: (u16(b, p + 4) * 65536 + u16(b, p + 6)) >>> 0,
      data,
      address:
        type === DNS_QTYPES.A && rdlen === 4
          ? data.join(".")
          : type === DNS_QTYPES.AAAA && rdlen === 16
            ? formatIPv6(data)
            : "",
    });
    o = p + 10 + rdlen;
  }
  return msg;
}
