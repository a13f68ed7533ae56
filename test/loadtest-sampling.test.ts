import { describe, expect, test } from "bun:test";
import { parseKeySpec, UniformKeys, ZipfKeys } from "../loadtest/keys.ts";
import { Prng } from "../loadtest/prng.ts";
import { ZipfSampler, zipfPmf } from "../loadtest/zipf.ts";

describe("Prng", () => {
  test("the same seed gives the same sequence, another seed a different one", () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const c = new Prng(43);
    const sa = Array.from({ length: 100 }, () => a.nextUint32());
    expect(Array.from({ length: 100 }, () => b.nextUint32())).toEqual(sa);
    expect(Array.from({ length: 100 }, () => c.nextUint32())).not.toEqual(sa);
    expect(new Prng("run-1").nextFloat()).toBe(new Prng("run-1").nextFloat());
  });

  test("floats are in [0, 1) with mean 1/2 and variance 1/12", () => {
    const r = new Prng(7);
    const n = 200_000;
    let sum = 0;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      const x = r.nextFloat();
      expect(x >= 0 && x < 1).toBe(true);
      sum += x;
      sq += x * x;
    }
    const mean = sum / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.005);
    expect(Math.abs(sq / n - mean * mean - 1 / 12)).toBeLessThan(0.002);
  });
});

describe("uniform keys", () => {
  test("cover the key space evenly (chi-square over 100 buckets)", () => {
    const keys = new UniformKeys(1_000_000);
    const rng = new Prng(1);
    const buckets = new Float64Array(100);
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      const k = keys.next(rng);
      expect(k >= 0 && k < 1_000_000 && Number.isInteger(k)).toBe(true);
      buckets[Math.floor(k / 10_000)] = (buckets[Math.floor(k / 10_000)] ?? 0) + 1;
    }
    const expected = n / 100;
    let chi = 0;
    for (const b of buckets) chi += (b - expected) ** 2 / expected;
    // 99 degrees of freedom: the 99.9% quantile is about 148.
    expect(chi).toBeLessThan(148);
  });
});

describe("Zipf sampler (rejection-inversion)", () => {
  for (const s of [0.8, 1, 1.1, 2]) {
    test(`matches the Zipf(${s}) pmf over 1000 ranks (chi-square)`, () => {
      const n = 1000;
      const z = new ZipfSampler(n, s);
      const rng = new Prng(s * 1000);
      const draws = 200_000;
      const counts = new Float64Array(n);
      for (let i = 0; i < draws; i++) {
        const k = z.sample(rng);
        expect(k >= 1 && k <= n).toBe(true);
        counts[k - 1] = (counts[k - 1] ?? 0) + 1;
      }
      const pmf = zipfPmf(n, s);
      // Pool the tail into bins with an expected count of at least 20.
      let chi = 0;
      let df = -1;
      let obs = 0;
      let exp = 0;
      for (let k = 0; k < n; k++) {
        obs += counts[k] ?? 0;
        exp += (pmf[k] ?? 0) * draws;
        if (exp >= 20 || k === n - 1) {
          chi += (obs - exp) ** 2 / exp;
          df++;
          obs = 0;
          exp = 0;
        }
      }
      // Well above the 99.9% quantile of chi-square(df) (≈ df + 3.1·sqrt(2·df) + 10).
      expect(chi).toBeLessThan(df + 3.1 * Math.sqrt(2 * df) + 10);
    });
  }

  test("head frequencies over a million entities match theory within 3%", () => {
    const n = 1_000_000;
    const z = new ZipfSampler(n, 1.1);
    const rng = new Prng(99);
    const draws = 300_000;
    const head = new Float64Array(5);
    for (let i = 0; i < draws; i++) {
      const k = z.sample(rng);
      if (k <= 5) head[k - 1] = (head[k - 1] ?? 0) + 1;
    }
    const pmf = zipfPmf(n, 1.1);
    for (let k = 0; k < 5; k++) {
      const expected = (pmf[k] ?? 0) * draws;
      expect(Math.abs((head[k] ?? 0) - expected) / expected).toBeLessThan(0.03);
    }
  });

  test("is deterministic for a seed", () => {
    const z = new ZipfSampler(1_000_000, 1.1);
    const a = new Prng(5);
    const b = new Prng(5);
    expect(Array.from({ length: 1000 }, () => z.sample(a))).toEqual(Array.from({ length: 1000 }, () => z.sample(b)));
  });
});

describe("key specs", () => {
  test("zipf keys scatter hot ranks but stay a bijection of the key space", () => {
    const keys = new ZipfKeys(1000, 1.1);
    const rng = new Prng(3);
    const seen = new Set<number>();
    for (let i = 0; i < 50_000; i++) seen.add(keys.next(rng));
    for (const k of seen) expect(k >= 0 && k < 1000).toBe(true);
    // The hottest key is index 0; the second hottest is not its neighbour.
    const counts = new Map<number, number>();
    const r2 = new Prng(4);
    for (let i = 0; i < 50_000; i++) {
      const k = keys.next(r2);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    const ranked = [...counts].sort((x, y) => y[1] - x[1]).map(([k]) => k);
    expect(ranked[0]).toBe(0);
    expect(Math.abs((ranked[1] ?? 0) - (ranked[0] ?? 0))).toBeGreaterThan(1);
  });

  test("parses uniform, zipf and zipf:s, and rejects the rest", () => {
    expect(parseKeySpec("uniform", 10).description).toBe("uniform over 10");
    expect(parseKeySpec("zipf", 10).description).toBe("zipf(s=1.1) over 10");
    expect(parseKeySpec("zipf:0.9", 10).description).toBe("zipf(s=0.9) over 10");
    expect(() => parseKeySpec("zipf:0", 10)).toThrow("exponent");
    expect(() => parseKeySpec("normal", 10)).toThrow("--keys");
    expect(() => parseKeySpec("uniform", 0)).toThrow("--entities");
  });
});
