/**
 * A 64-bit string hash returned as a non-negative double (its top 53 bits),
 * so ring positions fit a Float64Array and compare without BigInt. Bun's own
 * 64-bit hashes return BigInt, which allocates on every call; this stays on
 * 32-bit integer math (two murmur3-style lanes with distinct seeds) and is
 * identical in every process and platform for the same input. With `from`,
 * hashes `s.slice(from)` without making that string.
 */
export function hash64(s: string, from = 0): number {
  let h1 = 0x9747b28c | 0;
  let h2 = 0x85ebca6b | 0;
  const end = s.length;
  for (let i = from; i < end; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0xcc9e2d51);
    h1 = (h1 << 15) | (h1 >>> 17);
    h2 = Math.imul(h2 ^ c, 0x1b873593);
    h2 = (h2 << 13) | (h2 >>> 19);
    h2 = (Math.imul(h2, 5) + 0xe6546b64) | 0;
  }
  return mix(h1, h2, end - from);
}

/**
 * `hash64` over bytes `b[from..end)` taken as character codes: for ASCII
 * text, the same value as `hash64` of the string (a KeyBatch's keys route
 * exactly as their strings do).
 */
export function hash64Bytes(b: Uint8Array, from: number, end: number): number {
  let h1 = 0x9747b28c | 0;
  let h2 = 0x85ebca6b | 0;
  for (let i = from; i < end; i++) {
    const c = b[i]!;
    h1 = Math.imul(h1 ^ c, 0xcc9e2d51);
    h1 = (h1 << 15) | (h1 >>> 17);
    h2 = Math.imul(h2 ^ c, 0x1b873593);
    h2 = (h2 << 13) | (h2 >>> 19);
    h2 = (Math.imul(h2, 5) + 0xe6546b64) | 0;
  }
  return mix(h1, h2, end - from);
}

function mix(h1: number, h2: number, n: number): number {
  h1 ^= n;
  h2 ^= n;
  // Cross-mix the lanes, then finalize each (murmur3 fmix32) so every input bit
  // reaches every output bit.
  h1 = (h1 + h2) | 0;
  h2 = (h2 + h1) | 0;
  h1 = fmix32(h1);
  h2 = fmix32(h2);
  h1 = (h1 + h2) | 0;
  h2 = (h2 + h1) | 0;
  // 32 high bits from h1, 21 from h2: exactly representable in a double.
  return (h1 >>> 0) * 2097152 + (h2 >>> 11);
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
