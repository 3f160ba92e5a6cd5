// struct virtio_net_hdr (include/uapi/linux/virtio_net.h), the 10 bytes an AF_PACKET socket with
// PACKET_VNET_HDR puts before every frame it receives and expects before every frame it sends:
//   u8 flags; u8 gso_type; u16 hdr_len; u16 gso_size; u16 csum_start; u16 csum_offset
// The u16 fields are in the legacy virtio byte order, which is the host's: little endian on every
// host tsvs runs on (x86-64, arm64).
//
// On receive the socket layer turns the header into one "offload word" per frame, a small integer
// the worker hands to Engine.input with the frame (no object per packet):
//   bits 0..15 gso_size, bits 16..23 gso_type (ECN bit included), bits 24..25 flags.
// csum_start/csum_offset are not carried: for the IPv4 TCP/UDP frames tsvs forwards, the parser
// already knows where the transport header is, and the kernel's csum_start would be 4 bytes off
// once a VLAN tag taken out by the device has been put back.

export const VNET_HDR_LEN = 10;

export const VNET_F_NEEDS_CSUM = 1;
export const VNET_F_DATA_VALID = 2;

export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_UDP = 3;
export const VNET_GSO_TCPV6 = 4;
export const VNET_GSO_UDP_L4 = 5;
export const VNET_GSO_ECN = 0x80;

/** Offsets of the fields. */
export const VNET_FLAGS = 0;
export const VNET_GSO_TYPE = 1;
export const VNET_HDR_LEN_OFF = 2;
export const VNET_GSO_SIZE = 4;
export const VNET_CSUM_START = 6;
export const VNET_CSUM_OFFSET = 8;

/** The offload word of a received header at buf[off, off+10). */
export function vnetOffloadWord(buf: Uint8Array, off: number): number {
  const flags = buf[off + VNET_FLAGS] & 3;
  const type = buf[off + VNET_GSO_TYPE];
  const size = buf[off + VNET_GSO_SIZE] | (buf[off + VNET_GSO_SIZE + 1] << 8);
  return size | (type << 16) | (flags << 24);
}

export function offloadGsoSize(word: number): number {
  return word & 0xffff;
}

/** gso_type without the ECN bit. */
export function offloadGsoType(word: number): number {
  return (word >>> 16) & 0x7f;
}

export function offloadFlags(word: number): number {
  return (word >>> 24) & 3;
}

/** An offload word from its parts (tests, and the socket when it reads a header field by field). */
export function makeOffloadWord(gsoType: number, gsoSize: number, flags: number): number {
  return (gsoSize & 0xffff) | ((gsoType & 0xff) << 16) | ((flags & 3) << 24);
}

/** Writes a header for transmit into out[off, off+10). */
export function writeVnetHdr(
  out: Uint8Array,
  off: number,
  flags: number,
  gsoType: number,
  hdrLen: number,
  gsoSize: number,
  csumStart: number,
  csumOffset: number,
): void {
  out[off + VNET_FLAGS] = flags;
  out[off + VNET_GSO_TYPE] = gsoType;
  out[off + VNET_HDR_LEN_OFF] = hdrLen & 255;
  out[off + VNET_HDR_LEN_OFF + 1] = hdrLen >>> 8;
  out[off + VNET_GSO_SIZE] = gsoSize & 255;
  out[off + VNET_GSO_SIZE + 1] = gsoSize >>> 8;
  out[off + VNET_CSUM_START] = csumStart & 255;
  out[off + VNET_CSUM_START + 1] = csumStart >>> 8;
  out[off + VNET_CSUM_OFFSET] = csumOffset & 255;
  out[off + VNET_CSUM_OFFSET + 1] = csumOffset >>> 8;
}
