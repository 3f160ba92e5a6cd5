// Byte moves between (possibly overlapping) views, without allocating a subarray per packet.

/** Copies src[sOff, sOff+n) to dst[dOff, ...), correct even when both views share memory. */
export function moveBytes(dst: Uint8Array, dOff: number, src: Uint8Array, sOff: number, n: number): void {
  if (n <= 0) return;
  if (dst === src) {
    dst.copyWithin(dOff, sOff, sOff + n);
    return;
  }
  if (dst.buffer === src.buffer && dst.byteOffset + dOff > src.byteOffset + sOff) {
    for (let i = n - 1; i >= 0; i--) dst[dOff + i] = src[sOff + i];
    return;
  }
  for (let i = 0; i < n; i++) dst[dOff + i] = src[sOff + i];
}
