// Ethernet II header and MAC address helpers.

export const ETH_HLEN = 14;
export const ETH_ALEN = 6;
/** ff:ff:ff:ff:ff:ff. Shared: never write into it. */
export const BROADCAST_MAC: Uint8Array = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** Writes dst MAC, src MAC (6 bytes each, from offset 0 of the arrays) and the EtherType. */
export function writeEthHeader(
  buf: Uint8Array,
  off: number,
  dst: Uint8Array,
  src: Uint8Array,
  ethType: number,
): void {
  for (let i = 0; i < ETH_ALEN; i++) {
    buf[off + i] = dst[i];
    buf[off + ETH_ALEN + i] = src[i];
  }
  buf[off + 12] = (ethType >>> 8) & 255;
  buf[off + 13] = ethType & 255;
}

export function copyMac(dst: Uint8Array, dOff: number, src: Uint8Array, sOff: number): void {
  // Byte by byte (source first into locals) so overlapping ranges of one buffer are safe.
  const a = src[sOff];
  const b = src[sOff + 1];
  const c = src[sOff + 2];
  const d = src[sOff + 3];
  const e = src[sOff + 4];
  const f = src[sOff + 5];
  dst[dOff] = a;
  dst[dOff + 1] = b;
  dst[dOff + 2] = c;
  dst[dOff + 3] = d;
  dst[dOff + 4] = e;
  dst[dOff + 5] = f;
}

export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  if (aOff < 0 || bOff < 0 || aOff + ETH_ALEN > a.length || bOff + ETH_ALEN > b.length) return false;
  for (let i = 0; i < ETH_ALEN; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

const MAC_RE =
  /^([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})[:-]([0-9a-f]{1,2})$/i;

/** "aa:bb:cc:dd:ee:ff" (":" or "-", one or two hex digits per byte) → 6 bytes; null otherwise. */
export function parseMac(s: string): Uint8Array | null {
  const m = MAC_RE.exec(s);
  if (m === null) return null;
  const out = new Uint8Array(ETH_ALEN);
  for (let i = 0; i < ETH_ALEN; i++) out[i] = Number.parseInt(m[i + 1], 16);
  return out;
}

/** Lower-case, colon-separated, two digits per byte (as `ip link` prints). */
export function formatMac(buf: Uint8Array, off = 0): string {
  let s = "";
  for (let i = 0; i < ETH_ALEN; i++) {
    const b = buf[off + i] ?? 0;
    s += (i === 0 ? "" : ":") + (b < 16 ? "0" : "") + b.toString(16);
  }
  return s;
}
