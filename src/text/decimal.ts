/**
 * Non-negative integers written as ASCII decimal digits into byte buffers,
 * without an intermediate string and without floating-point division: the
 * digit count comes from comparisons, the digits from int32 arithmetic on the
 * two halves below and above 10^8. Shared by the answer writers (JSON numbers,
 * fixed-point decimals) and the storage-key builder.
 */

/** 10^0 .. 10^15, all exact doubles. */
export const POW10: readonly number[] = Array.from({ length: 16 }, (_, k) => 10 ** k);

/** Digits of an integer 0 <= v < 2^53 (1 for 0). */
export function digitCount(v: number): number {
  if (v < 100_000_000) {
    const t = v | 0;
    return t < 10_000 ? (t < 100 ? (t < 10 ? 1 : 2) : t < 1000 ? 3 : 4) : t < 1_000_000 ? (t < 100_000 ? 5 : 6) : t < 10_000_000 ? 7 : 8;
  }
  let digits = 9;
  while (digits < 16 && v >= POW10[digits]!) digits++;
  return digits;
}

/**
 * Writes the last `count` digits of the integer 0 <= v < 2^53 into
 * `out[end - count .. end)`, zero-padded on the left when v has fewer.
 */
export function writeDigits(out: Uint8Array, end: number, v: number, count: number): void {
  let p = end - 1;
  let d = 0;
  let t: number;
  if (v >= 100_000_000) {
    // The low 8 digits first, then the rest: each part fits int32.
    const hi = Math.floor(v / 100_000_000);
    let lo = (v - hi * 100_000_000) | 0;
    for (; d < 8 && d < count; d++, p--) {
      const q = (lo / 10) | 0;
      out[p] = 48 + lo - q * 10;
      lo = q;
    }
    t = hi | 0;
  } else t = v | 0;
  for (; d < count; d++, p--) {
    const q = (t / 10) | 0;
    out[p] = 48 + t - q * 10;
    t = q;
  }
}
