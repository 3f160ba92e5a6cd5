// The IPVS connection sync message format (net/netfilter/ipvs/ip_vs_sync.c), both versions.
//
// Version 1 (the kernel's default, sync_version=1):
//   header  u8 reserved(0) | u8 syncid | be16 size | u8 nr_conns | s8 version(1) | u16 spare(0)
//   entry   u8 type | u8 protocol | be16 ver_size | be32 flags | be16 state | be16 cport |
//           be16 vport | be16 dport | be32 fwmark | be32 timeout(s) | caddr | vaddr | daddr
//           (4 bytes each: struct ip_vs_sync_v4, 36 bytes; 16 each: ip_vs_sync_v6, 72 bytes),
//           then option TLVs {u8 type, u8 len, data}; ver_size = version << 12 | size, the size
//           without the padding that aligns the next entry on 4 bytes.
// Version 0 (sync_version=0; "Version 0 receivers will just drop Ver 1 messages"):
//   header  u8 nr_conns | u8 syncid | be16 size
//   entry   u8 reserved | u8 protocol | be16 cport | be16 vport | be16 dport | be32 caddr |
//           be32 vaddr | be32 daddr | be16 flags | be16 state (24 bytes), + 24 bytes of sequence
//           data (struct ip_vs_sync_conn_options, host byte order) when flags & SEQ_MASK.
//
// The decoder applies ip_vs_process_message's checks in the kernel's order and returns a stable
// reason for whatever makes the kernel drop the rest of the buffer; entries the kernel skips one
// at a time (an unknown mandatory option, persistence-engine data without the engine) are
// counted and skipped. It never throws.
//
// IPv6: an entry is one family (ip_vs_sync_conn lays it out by cp->af, all three addresses of
// that family). v0 has no IPv6 at all: ip_vs_sync_conn_v0 returns on cp->af != AF_INET, and its
// decoder reads IPv4 only.
//
// tsvs adds two options for FULLNAT's local end. Their types have IPVS_OPT_F_PARAM set and numbers
// the kernel does not use (the kernel switches on type & ~F_PARAM, so 1..3 with the bit would be
// taken as its own), so a kernel backup skips them as optional parameters:
//   IPVS_OPT_TSVS_LOCAL   8|F_PARAM, 6 bytes: be32 laddr, be16 lport (an IPv4 local address);
//   IPVS_OPT_TSVS_LOCAL6  9|F_PARAM, 18 bytes: the IPv6 laddr, be16 lport.
// and one for FULLNAT's PROXY protocol state (the shift every later packet of the connection
// needs; without it a backup would forward the client's data unshifted):
//   IPVS_OPT_TSVS_PP     10|F_PARAM, 8 bytes: be32 the client's first data sequence number,
//                        be32 the header's length, version and state (xmit/fullnat.ts PPW_*).
// and one for the SYN proxy's translation of an established connection (NAT or FULLNAT; without
// it a backup would forward the real server's sequence numbers untranslated):
//   IPVS_OPT_TSVS_SYNPROXY 11|F_PARAM, 12 bytes: be32 the sequence delta, be32 the TSval delta,
//                        be32 the option bits (synproxy.ts syncState).
// NAT64 (DPVS's: an IPv6 client and VIP, an IPv4 real server and local address) has no layout of
// its own, and the kernel never syncs mixed families. tsvs writes it as an IPv6 entry whose daddr
// is the real server as an IPv4-mapped address (::ffff:a.b.c.d), a form no IPv6 destination can
// have (ip_vs_new_dest wants ipv6_addr_type unicast), with the IPv4 local option (a template: no
// option). A kernel backup, which has no FULLNAT, finds no such destination and keeps the entry
// unbound, as for any FULLNAT one.

import { ipv6Fold } from "../addr.js";
import { SA6_CADDR, SA6_DADDR, SA6_LADDR, SA6_VADDR, type SyncConn } from "./types.js";

export const SYNC_MESG_V0_HDR = 4;
export const SYNC_MESG_HDR = 8;
export const SYNC_CONN_V0_SIZE = 24;
/** ip_vs_sync_conn_options: in_seq and out_seq, 3 u32 each. */
export const SYNC_SEQ_OPTIONS_SIZE = 24;
export const SYNC_CONN_V0_FULL_SIZE = SYNC_CONN_V0_SIZE + SYNC_SEQ_OPTIONS_SIZE;
export const SYNC_V4_SIZE = 36;
export const SYNC_V6_SIZE = 72;
/** nr_conns is a u8. */
export const SYNC_MAX_CONNS = 255;
const SYNC_PROTO_VER = 1;
const STYPE_F_INET6 = 1;
const SVER_SHIFT = 12;
const SVER_MASK = 0x0fff;

export const IPVS_OPT_SEQ_DATA = 1;
export const IPVS_OPT_PE_DATA = 2;
export const IPVS_OPT_PE_NAME = 3;
/** A type with this bit is optional: a receiver that does not know it skips it. */
export const IPVS_OPT_F_PARAM = 0x40;
/** tsvs: FULLNAT laddr (be32) and lport (be16). */
export const IPVS_OPT_TSVS_LOCAL = IPVS_OPT_F_PARAM | 8;
const TSVS_LOCAL_LEN = 6;
/** tsvs: FULLNAT's IPv6 laddr (16 bytes) and lport (be16). */
export const IPVS_OPT_TSVS_LOCAL6 = IPVS_OPT_F_PARAM | 9;
const TSVS_LOCAL6_LEN = 18;
/** tsvs: FULLNAT's PROXY protocol state. */
export const IPVS_OPT_TSVS_PP = IPVS_OPT_F_PARAM | 10;
const TSVS_PP_LEN = 8;
/** tsvs: the SYN proxy's translation of an established connection. */
export const IPVS_OPT_TSVS_SYNPROXY = IPVS_OPT_F_PARAM | 11;
const TSVS_SP_LEN = 12;
/** ::ffff:0:0/96's third word: a NAT64 entry's daddr is the IPv4 real server mapped. */
const V4_MAPPED_WORD = 0xffff;
const IP_VS_PEDATA_MAXLEN = 255;
const IP_VS_PENAME_MAXLEN = 16;
// Which options an entry carried (the kernel's opt_flags), to refuse duplicates.
const SEEN_SEQ = 1;
const SEEN_PE_DATA = 2;
const SEEN_PE_NAME = 4;
const SEEN_LOCAL = 8;
const SEEN_LOCAL6 = 16;
const SEEN_PP = 32;
const SEEN_SP = 64;

// IP_VS_CONN_F_* as the sync protocol carries them (include/uapi/linux/ip_vs.h).
export const SYNC_F_FWD_MASK = 0x0007;
/** tsvs's FULLNAT forwarding method (dest.ts Fwd.FullNat). */
const FWD_FULLNAT = 5;
export const SYNC_F_SYNC = 0x0020;
export const SYNC_F_HASHED = 0x0040;
export const SYNC_F_NOOUTPUT = 0x0080;
export const SYNC_F_INACTIVE = 0x0100;
export const SYNC_F_OUT_SEQ = 0x0200;
export const SYNC_F_IN_SEQ = 0x0400;
export const SYNC_F_SEQ_MASK = 0x0600;
export const SYNC_F_NO_CPORT = 0x0800;
export const SYNC_F_TEMPLATE = 0x1000;
export const SYNC_F_ONE_PACKET = 0x2000;
/** What a backup takes of the wire's flags (IP_VS_CONN_F_BACKUP_MASK). */
export const SYNC_F_BACKUP_MASK =
  SYNC_F_FWD_MASK | SYNC_F_NOOUTPUT | SYNC_F_INACTIVE | SYNC_F_SEQ_MASK | SYNC_F_NO_CPORT | SYNC_F_TEMPLATE;
/** What a backup updates on an entry it already has (IP_VS_CONN_F_BACKUP_UPD_MASK). */
export const SYNC_F_BACKUP_UPD_MASK = SYNC_F_INACTIVE | SYNC_F_SEQ_MASK;

/**
 * Why a message was dropped (whole or from the failing entry on; entries before it were
 * delivered, as the kernel installs them before it meets the bad one).
 */
export const SYNC_DROP_REASONS = [
  /** Shorter than the 4-byte v0 header. */
  "short",
  /** The header's size is not the datagram's length. */
  "size",
  /** Another syncid than the backup's (not an error: several clusters share the group). */
  "syncid",
  /** nr_conns says more entries than the datagram holds (an entry's fixed part is cut). */
  "truncated",
  /** An entry's size runs past the datagram, or is smaller than its fixed part. */
  "entry-size",
  /** An entry's version nibble is not 0. */
  "entry-version",
  /** An entry's type has bits other than STYPE_F_INET6. */
  "entry-type",
  /** A bad option: cut header, zero or overrunning length, wrong length, duplicate. */
  "option",
] as const;
export type SyncDropReason = (typeof SYNC_DROP_REASONS)[number];

export type SyncDecodeResult =
  | {
      ok: true;
      version: 0 | 1;
      /** Entries handed to onConn. */
      conns: number;
      /** Entries skipped one by one: unknown mandatory option, persistence-engine data. */
      skipped: number;
      /** Of conns, the IPv6 ones (struct ip_vs_sync_v6). */
      v6: number;
    }
  | { ok: false; reason: SyncDropReason; conns: number };

function u16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

function fail(reason: SyncDropReason, conns: number): SyncDecodeResult {
  return { ok: false, reason, conns };
}

/** A SyncConn with every field zero (the decoder's and the sender's scratch). */
export function emptySyncConn(): SyncConn {
  return {
    af: 4,
    daf: 4,
    proto: 0,
    caddr: 0,
    cport: 0,
    vaddr: 0,
    vport: 0,
    daddr: 0,
    dport: 0,
    flags: 0,
    state: 0,
    fwmark: 0,
    timeoutS: null,
    laddr: 0,
    lport: 0,
    pp: false,
    ppIsn: 0,
    ppWord: 0,
    sp: false,
    spSeqd: 0,
    spTsd: 0,
    spOpt: 0,
    a6: new Int32Array(16),
  };
}

/**
 * ip_vs_process_message: checks and decodes one received datagram (buf[0..len)). Every
 * connection it carries (IPv4 or IPv6) is passed to onConn, in order, in one scratch object that is valid only
 * during the call (copy what you keep). syncidFilter 0 accepts every syncid (a backup's
 * --syncid 0). Flags are the wire's (the receiver masks them: SYNC_F_BACKUP_MASK).
 */
export function decodeSyncMessage(
  buf: Uint8Array,
  len: number,
  syncidFilter: number,
  onConn: (c: SyncConn) => void,
): SyncDecodeResult {
  if (!(len >= SYNC_MESG_V0_HDR)) return fail("short", 0);
  if (len > buf.length || u16(buf, 2) !== len) return fail("size", 0);
  if (syncidFilter !== 0 && buf[1] !== syncidFilter) return fail("syncid", 0);
  const c = emptySyncConn();
  return isV1(buf, len) ? decodeV1(buf, len, c, onConn) : decodeV0(buf, len, c, onConn);
}

/** A message is version 1 when reserved, version and spare say so (ip_vs_process_message); else 0. */
function isV1(buf: Uint8Array, len: number): boolean {
  return len >= SYNC_MESG_HDR && buf[0] === 0 && buf[5] === SYNC_PROTO_VER && buf[6] === 0 && buf[7] === 0;
}

/** The entries a well-formed message says it carries (nr_conns of its header, v1 or v0). */
export function syncMessageConns(buf: Uint8Array): number {
  return isV1(buf, buf.length) ? buf[4] : (buf[0] ?? 0);
}

function decodeV0(
  buf: Uint8Array,
  len: number,
  c: SyncConn,
  onConn: (c: SyncConn) => void,
): SyncDecodeResult {
  const n = buf[0];
  let p = SYNC_MESG_V0_HDR;
  for (let i = 0; i < n; i++) {
    if (p + SYNC_CONN_V0_SIZE > len) return fail("truncated", i);
    const flags = u16(buf, p + 20);
    const size = (flags & SYNC_F_SEQ_MASK) !== 0 ? SYNC_CONN_V0_FULL_SIZE : SYNC_CONN_V0_SIZE;
    if (p + size > len) return fail("truncated", i);
    c.af = 4;
    c.daf = 4;
    c.pp = false;
    c.sp = false;
    c.proto = buf[p + 1];
    c.cport = u16(buf, p + 2);
    c.vport = u16(buf, p + 4);
    c.dport = u16(buf, p + 6);
    c.caddr = u32(buf, p + 8);
    c.vaddr = u32(buf, p + 12);
    c.daddr = u32(buf, p + 16);
    c.flags = flags;
    c.state = u16(buf, p + 22);
    c.fwmark = 0;
    c.timeoutS = null;
    c.laddr = 0;
    c.lport = 0;
    onConn(c);
    p += size;
  }
  return { ok: true, version: 0, conns: n, skipped: 0, v6: 0 };
}

function decodeV1(
  buf: Uint8Array,
  len: number,
  c: SyncConn,
  onConn: (c: SyncConn) => void,
): SyncDecodeResult {
  const n = buf[4];
  let conns = 0;
  let skipped = 0;
  let v6 = 0;
  let next = SYNC_MESG_HDR;
  for (let i = 0; i < n; i++) {
    const p = next;
    if (p + SYNC_V4_SIZE > len) return fail("truncated", conns);
    const verSize = u16(buf, p + 2);
    const size = verSize & SVER_MASK;
    const end = p + size;
    if (end > len) return fail("entry-size", conns);
    if (verSize >>> SVER_SHIFT !== 0) return fail("entry-version", conns);
    const type = buf[p];
    let fixed: number;
    if ((type & STYPE_F_INET6) !== 0) fixed = SYNC_V6_SIZE;
    else if (type === 0) fixed = SYNC_V4_SIZE;
    else return fail("entry-type", conns);
    if (p + fixed > end) return fail("entry-size", conns);

    // ip_vs_proc_sync_conn's option loop.
    let seen = 0;
    let skip = false;
    let laddr = 0;
    let lport = 0;
    for (let q = p + fixed; q < end; ) {
      if (q + 2 > end) return fail("option", conns);
      const ot = buf[q];
      const ol = buf[q + 1];
      q += 2;
      if (ol === 0 || q + ol > end) return fail("option", conns);
      switch (ot & ~IPVS_OPT_F_PARAM) {
        case IPVS_OPT_SEQ_DATA:
          if (ol !== SYNC_SEQ_OPTIONS_SIZE || (seen & SEEN_SEQ) !== 0) return fail("option", conns);
          seen |= SEEN_SEQ;
          break;
        case IPVS_OPT_PE_DATA:
          if (ol > IP_VS_PEDATA_MAXLEN || (seen & SEEN_PE_DATA) !== 0) return fail("option", conns);
          seen |= SEEN_PE_DATA;
          break;
        case IPVS_OPT_PE_NAME:
          if (ol > IP_VS_PENAME_MAXLEN || (seen & SEEN_PE_NAME) !== 0) return fail("option", conns);
          seen |= SEEN_PE_NAME;
          break;
        default:
          if (ot === IPVS_OPT_TSVS_SYNPROXY) {
            if (ol !== TSVS_SP_LEN || (seen & SEEN_SP) !== 0) return fail("option", conns);
            seen |= SEEN_SP;
            c.spSeqd = u32(buf, q) | 0;
            c.spTsd = u32(buf, q + 4) | 0;
            c.spOpt = u32(buf, q + 8) | 0;
          } else if (ot === IPVS_OPT_TSVS_PP) {
            if (ol !== TSVS_PP_LEN || (seen & SEEN_PP) !== 0) return fail("option", conns);
            seen |= SEEN_PP;
            c.ppIsn = u32(buf, q);
            c.ppWord = u32(buf, q + 4);
          } else if (ot === IPVS_OPT_TSVS_LOCAL || ot === IPVS_OPT_TSVS_LOCAL6) {
            // One local end per entry, of a family the entry can have: IPv6 only on an IPv6 one.
            const six = ot === IPVS_OPT_TSVS_LOCAL6;
            if (
              ol !== (six ? TSVS_LOCAL6_LEN : TSVS_LOCAL_LEN) ||
              (seen & (SEEN_LOCAL | SEEN_LOCAL6)) !== 0 ||
              (six && fixed !== SYNC_V6_SIZE)
            )
              return fail("option", conns);
            seen |= six ? SEEN_LOCAL6 : SEEN_LOCAL;
            if (six) {
              for (let k = 0; k < 4; k++) c.a6[SA6_LADDR + k] = u32(buf, q + 4 * k);
              lport = u16(buf, q + 16);
            } else {
              laddr = u32(buf, q);
              lport = u16(buf, q + 4);
            }
          } else if ((ot & IPVS_OPT_F_PARAM) === 0) {
            // An unknown mandatory parameter: this entry cannot be processed (kernel retc 20).
            skip = true;
          }
      }
      if (skip) break;
      q += ol;
    }
    // Persistence-engine data is a template keyed by the engine (ip_vs_conn_fill_param_sync):
    // tsvs has no engine on the data path, as a kernel without the PE module it skips the entry.
    if (skip || (seen & SEEN_PE_DATA) !== 0) skipped++;
    else {
      c.proto = buf[p + 1];
      c.flags = u32(buf, p + 4);
      c.pp = (seen & SEEN_PP) !== 0;
      c.sp = (seen & SEEN_SP) !== 0;
      c.state = u16(buf, p + 8);
      c.cport = u16(buf, p + 10);
      c.vport = u16(buf, p + 12);
      c.dport = u16(buf, p + 14);
      c.fwmark = u32(buf, p + 16);
      c.timeoutS = u32(buf, p + 20);
      if (fixed === SYNC_V6_SIZE) {
        const a = c.a6;
        for (let k = 0; k < 12; k++) a[k] = u32(buf, p + 24 + 4 * k);
        c.af = 6;
        c.caddr = ipv6Fold(a, SA6_CADDR);
        c.vaddr = ipv6Fold(a, SA6_VADDR);
        c.lport = lport;
        // A mapped daddr is NAT64's IPv4 real server (the kernel refuses a mapped destination:
        // ipv6_addr_type gives it no unicast bit); the local option's family must agree.
        const mapped = a[SA6_DADDR] === 0 && a[SA6_DADDR + 1] === 0 && a[SA6_DADDR + 2] === V4_MAPPED_WORD;
        if (mapped ? (seen & SEEN_LOCAL6) !== 0 : (seen & SEEN_LOCAL) !== 0) return fail("option", conns);
        if (mapped) {
          c.daf = 4;
          c.daddr = a[SA6_DADDR + 3] >>> 0;
          c.laddr = laddr;
        } else {
          c.daf = 6;
          c.daddr = ipv6Fold(a, SA6_DADDR);
          c.laddr = (seen & SEEN_LOCAL6) !== 0 ? ipv6Fold(a, SA6_LADDR) : 0;
        }
        v6++;
      } else {
        c.af = 4;
        c.daf = 4;
        c.caddr = u32(buf, p + 24);
        c.vaddr = u32(buf, p + 28);
        c.daddr = u32(buf, p + 32);
        c.laddr = laddr;
        c.lport = lport;
      }
      onConn(c);
      conns++;
    }
    next = p + ((size + 3) & ~3);
  }
  return { ok: true, version: 1, conns, skipped, v6 };
}

/**
 * Builds messages in one preallocated buffer (the kernel's current sync_buff): begin(), add()
 * until it returns false (the entry does not fit: finish, hand the bytes on, begin again and
 * add it anew), finish(). Allocates nothing after construction.
 *
 * tsvs connections carry no sequence adjustments (no application helpers), so the writer never
 * sends IPVS_OPT_SEQ_DATA and clears the SEQ bits of the flags it writes.
 */
export class SyncWriter {
  /** The message is buf[0..length) once finish() has run. */
  readonly buf: Uint8Array;
  private off = 0;
  private nr = 0;
  private ver = -1;
  private syncid = 0;

  /**
   * maxlen: the largest message (--sync-maxlen). As ip_vs_sync_buff_create, the buffer holds at
   * least one entry of the largest kind whatever maxlen says.
   */
  constructor(maxlen: number) {
    const largest = SYNC_MESG_HDR + SYNC_V6_SIZE + 2 + TSVS_LOCAL6_LEN + 2 + TSVS_PP_LEN;
    this.buf = new Uint8Array(Math.max(Math.floor(maxlen) || 0, largest));
  }

  /** The version of the message being built; -1 when none is (before begin, after finish). */
  get version(): number {
    return this.ver;
  }

  /** Entries in the message being built. */
  get count(): number {
    return this.nr;
  }

  /** Bytes written so far (the header included). */
  get length(): number {
    return this.off;
  }

  /** Starts a message (any message being built is abandoned). */
  begin(syncid: number, version: 0 | 1 = 1): void {
    this.ver = version;
    this.syncid = syncid & 0xff;
    this.nr = 0;
    this.off = version === 1 ? SYNC_MESG_HDR : SYNC_MESG_V0_HDR;
  }

  /**
   * Appends one connection; false when no message is begun or it does not fit (by size or by
   * the 255 entries nr_conns can count). v0 cannot carry timeouts, fwmarks nor FULLNAT's local
   * end: it writes what its 24 bytes hold; nor IPv6 (false: the caller keeps IPv6 out of v0, as
   * ip_vs_sync_conn_v0 does). An IPv6 entry is struct ip_vs_sync_v6; a FULLNAT one carries its
   * local end as the IPv6 option, a NAT64 one (daf 4) as the IPv4 option beside a mapped daddr.
   */
  add(c: SyncConn): boolean {
    if (this.ver < 0 || this.nr >= SYNC_MAX_CONNS) return false;
    const b = this.buf;
    const flags = c.flags & ~(SYNC_F_HASHED | SYNC_F_SEQ_MASK);
    const v6 = c.af === 6;
    if (this.ver === 0) {
      if (v6) return false;
      const p = this.off;
      if (p + SYNC_CONN_V0_SIZE > b.length) return false;
      b[p] = 0;
      b[p + 1] = c.proto;
      put16(b, p + 2, c.cport);
      put16(b, p + 4, c.vport);
      put16(b, p + 6, c.dport);
      put32(b, p + 8, c.caddr);
      put32(b, p + 12, c.vaddr);
      put32(b, p + 16, c.daddr);
      put16(b, p + 20, flags & 0xffff);
      put16(b, p + 22, c.state);
      this.off = p + SYNC_CONN_V0_SIZE;
      this.nr++;
      return true;
    }
    const nat64 = v6 && c.daf === 4;
    const local =
      (flags & (SYNC_F_FWD_MASK | SYNC_F_TEMPLATE)) === FWD_FULLNAT && (c.laddr !== 0 || c.lport !== 0);
    const local6 = local && v6 && !nat64;
    const fixed = v6 ? SYNC_V6_SIZE : SYNC_V4_SIZE;
    const pp = c.pp && (flags & (SYNC_F_FWD_MASK | SYNC_F_TEMPLATE)) === FWD_FULLNAT;
    const localLen = local ? 2 + (local6 ? TSVS_LOCAL6_LEN : TSVS_LOCAL_LEN) : 0;
    const sp = c.sp && (flags & SYNC_F_TEMPLATE) === 0;
    const size = fixed + localLen + (pp ? 2 + TSVS_PP_LEN : 0) + (sp ? 2 + TSVS_SP_LEN : 0);
    const pad = (4 - this.off) & 3;
    if (this.off + pad + size > b.length) return false;
    let p = this.off;
    for (let k = 0; k < pad; k++) b[p++] = 0;
    b[p] = v6 ? STYPE_F_INET6 : 0;
    b[p + 1] = c.proto;
    put16(b, p + 2, size & SVER_MASK);
    put32(b, p + 4, flags);
    put16(b, p + 8, c.state);
    put16(b, p + 10, c.cport);
    put16(b, p + 12, c.vport);
    put16(b, p + 14, c.dport);
    put32(b, p + 16, c.fwmark);
    put32(b, p + 20, c.timeoutS ?? 0);
    if (v6) {
      const a = c.a6;
      for (let k = 0; k < 8; k++) put32(b, p + 24 + 4 * k, a[k]);
      if (nat64) {
        put32(b, p + 56, 0);
        put32(b, p + 60, 0);
        put32(b, p + 64, V4_MAPPED_WORD);
        put32(b, p + 68, c.daddr);
      } else for (let k = 8; k < 12; k++) put32(b, p + 24 + 4 * k, a[k]);
    } else {
      put32(b, p + 24, c.caddr);
      put32(b, p + 28, c.vaddr);
      put32(b, p + 32, c.daddr);
    }
    if (local6) {
      b[p + fixed] = IPVS_OPT_TSVS_LOCAL6;
      b[p + fixed + 1] = TSVS_LOCAL6_LEN;
      for (let k = 0; k < 4; k++) put32(b, p + fixed + 2 + 4 * k, c.a6[SA6_LADDR + k]);
      put16(b, p + fixed + 18, c.lport);
    } else if (local) {
      b[p + fixed] = IPVS_OPT_TSVS_LOCAL;
      b[p + fixed + 1] = TSVS_LOCAL_LEN;
      put32(b, p + fixed + 2, c.laddr);
      put16(b, p + fixed + 6, c.lport);
    }
    if (pp) {
      const o = p + fixed + localLen;
      b[o] = IPVS_OPT_TSVS_PP;
      b[o + 1] = TSVS_PP_LEN;
      put32(b, o + 2, c.ppIsn);
      put32(b, o + 6, c.ppWord);
    }
    if (sp) {
      const o = p + fixed + localLen + (pp ? 2 + TSVS_PP_LEN : 0);
      b[o] = IPVS_OPT_TSVS_SYNPROXY;
      b[o + 1] = TSVS_SP_LEN;
      put32(b, o + 2, c.spSeqd);
      put32(b, o + 6, c.spTsd);
      put32(b, o + 10, c.spOpt);
    }
    this.off = p + size;
    this.nr++;
    return true;
  }

  /** Writes the header (nr_conns, size) and returns the message's length; nothing is begun after. */
  finish(): number {
    const b = this.buf;
    const len = this.off;
    if (this.ver === 1) {
      b[0] = 0;
      b[1] = this.syncid;
      put16(b, 2, len);
      b[4] = this.nr;
      b[5] = SYNC_PROTO_VER;
      b[6] = 0;
      b[7] = 0;
    } else if (this.ver === 0) {
      b[0] = this.nr;
      b[1] = this.syncid;
      put16(b, 2, len);
    } else return 0;
    this.ver = -1;
    return len;
  }
}
