/**
 * Deterministic embedding-like test data: `clusters` random unit centres in
 * `dim` dimensions, points spread around them (like sentence embeddings of
 * topical texts), and a seeded generator so every run sees the same data.
 */
export function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** Standard normal from two uniforms. */
function gauss(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

export function unitVector(dim: number, rand: () => number): number[] {
  const v = new Array<number>(dim);
  let n = 0;
  for (let i = 0; i < dim; i++) {
    v[i] = gauss(rand);
    n += v[i]! * v[i]!;
  }
  const inv = 1 / Math.sqrt(n);
  for (let i = 0; i < dim; i++) v[i]! *= inv;
  return v;
}

/**
 * `count` vectors around `clusters` centres; `spread` is the norm of the
 * noise relative to the unit centre (1.0 ≈ cosine 0.7 to the centre, like
 * sentence embeddings of one topic).
 */
export function clusteredVectors(count: number, dim: number, clusters: number, seed: number, spread = 1.0): number[][] {
  const rand = prng(seed);
  const centres = Array.from({ length: clusters }, () => unitVector(dim, rand));
  const out = new Array<number[]>(count);
  const scale = spread / Math.sqrt(dim);
  for (let i = 0; i < count; i++) {
    const c = centres[Math.floor(rand() * clusters)]!;
    const v = new Array<number>(dim);
    for (let d = 0; d < dim; d++) v[d] = c[d]! + gauss(rand) * scale;
    out[i] = v;
  }
  return out;
}
