import type { Prng } from "./prng.ts";
import { ZipfSampler } from "./zipf.ts";

/** Draws entity indexes in [0, entities). Scenarios turn an index into a join-key value. */
export interface KeySampler {
  readonly description: string;
  next(rng: Prng): number;
}

export class UniformKeys implements KeySampler {
  readonly description: string;
  constructor(private readonly entities: number) {
    this.description = `uniform over ${entities}`;
  }
  next(rng: Prng): number {
    return rng.nextInt(this.entities);
  }
}

/**
 * Zipf keys. Rank r maps to index (r - 1) * stride mod n with a stride coprime to n,
 * so hot keys are spread over the key space (and over hash-ring shards and any
 * range-partitioned store) rather than packed at its start.
 */
export class ZipfKeys implements KeySampler {
  readonly description: string;
  private readonly zipf: ZipfSampler;
  private readonly stride: number;

  constructor(
    private readonly entities: number,
    exponent: number,
    scatter = true,
  ) {
    this.zipf = new ZipfSampler(entities, exponent);
    this.stride = scatter ? coprimeStride(entities) : 1;
    this.description = `zipf(s=${exponent}) over ${entities}`;
  }

  next(rng: Prng): number {
    const rank = this.zipf.sample(rng);
    return ((rank - 1) * this.stride) % this.entities;
  }
}

/** Parses `uniform`, `zipf` (s = 1.1) or `zipf:<s>` into a sampler. */
export function parseKeySpec(spec: string, entities: number): KeySampler {
  if (!Number.isInteger(entities) || entities < 1) throw new Error(`--entities: expected a positive integer, got ${entities}`);
  if (spec === "uniform") return new UniformKeys(entities);
  const m = /^zipf(?::([0-9.]+))?(:ordered)?$/.exec(spec);
  if (m) {
    const s = m[1] === undefined ? 1.1 : Number(m[1]);
    if (!(s > 0)) throw new Error(`--keys: zipf exponent must be > 0, got ${m[1]}`);
    return new ZipfKeys(entities, s, m[2] === undefined);
  }
  throw new Error(`--keys: expected uniform | zipf | zipf:<s>[:ordered], got "${spec}"`);
}

/** A stride near n·φ that is coprime with n, so the rank → index map is a bijection. */
function coprimeStride(n: number): number {
  if (n <= 2) return 1;
  let s = Math.floor(n * 0.6180339887) | 1;
  while (gcd(s, n) !== 1) s += 2;
  return s % n;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}
