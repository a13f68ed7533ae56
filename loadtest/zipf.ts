import type { Prng } from "./prng.ts";

/**
 * Zipf(s) sampler over ranks 1..n by rejection-inversion (Hörmann & Derflinger,
 * 1996): O(1) time and memory per sample for any n, so a million-entity key space
 * needs no cumulative table. Valid for every exponent s > 0, including s = 1.
 */
export class ZipfSampler {
  private readonly hIntegralX1: number;
  private readonly hIntegralN: number;
  private readonly sCut: number;

  constructor(
    readonly n: number,
    readonly exponent: number,
  ) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`zipf: n must be a positive integer, got ${n}`);
    if (!(exponent > 0)) throw new Error(`zipf: exponent must be > 0, got ${exponent}`);
    this.hIntegralX1 = this.hIntegral(1.5) - 1;
    this.hIntegralN = this.hIntegral(n + 0.5);
    this.sCut = 2 - this.hIntegralInverse(this.hIntegral(2.5) - this.h(2));
  }

  /** A rank in 1..n; rank 1 is the most frequent. */
  sample(rng: Prng): number {
    for (;;) {
      const u = this.hIntegralN + rng.nextFloat() * (this.hIntegralX1 - this.hIntegralN);
      const x = this.hIntegralInverse(u);
      let k = Math.floor(x + 0.5);
      if (k < 1) k = 1;
      else if (k > this.n) k = this.n;
      if (k - x <= this.sCut || u >= this.hIntegral(k + 0.5) - this.h(k)) return k;
    }
  }

  /** h(x) = x^-s, the unnormalised density. */
  private h(x: number): number {
    return Math.exp(-this.exponent * Math.log(x));
  }

  /** H(x), an antiderivative of h, written to stay exact near s = 1. */
  private hIntegral(x: number): number {
    const logX = Math.log(x);
    return helper2((1 - this.exponent) * logX) * logX;
  }

  private hIntegralInverse(x: number): number {
    let t = x * (1 - this.exponent);
    if (t < -1) t = -1;
    return Math.exp(helper1(t) * x);
  }
}

/** log1p(x)/x, with its series near 0. */
function helper1(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x * (0.5 - x * (1 / 3 - 0.25 * x));
}

/** expm1(x)/x, with its series near 0. */
function helper2(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x * 0.5 * (1 + (x / 3) * (1 + 0.25 * x));
}

/** Probability of rank k under Zipf(s) over n ranks (for tests and docs). */
export function zipfPmf(n: number, s: number): Float64Array {
  const p = new Float64Array(n);
  let total = 0;
  for (let k = 1; k <= n; k++) {
    const w = k ** -s;
    p[k - 1] = w;
    total += w;
  }
  for (let i = 0; i < n; i++) p[i] = (p[i] ?? 0) / total;
  return p;
}
