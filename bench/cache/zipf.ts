/**
 * Zipf(s) ranks over 1..n by inverse CDF: a cumulative table (8 bytes per
 * rank) and a binary search per draw; a seeded xorshift keeps runs repeatable.
 */
export class Zipf {
  private readonly cdf: Float64Array;
  private state: number;

  constructor(
    readonly n: number,
    s: number,
    seed = 0x9e3779b9,
  ) {
    this.cdf = new Float64Array(n);
    let sum = 0;
    for (let k = 1; k <= n; k++) {
      sum += 1 / k ** s;
      this.cdf[k - 1] = sum;
    }
    for (let i = 0; i < n; i++) this.cdf[i]! /= sum;
    this.state = seed >>> 0 || 1;
  }

  /** A rank in 0..n-1 (0 is the most popular). */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    const u = this.state / 4294967296;
    const cdf = this.cdf;
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
