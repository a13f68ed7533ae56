import type { SyncEmbedder } from "./embedder.ts";

/**
 * A deterministic, dependency-free text embedder: character 3- and 4-grams
 * of the normalised text (lower case, letters and digits, single spaces,
 * padded with spaces so word starts and ends count), each hashed to one of
 * `dim` buckets with a hashed sign, then L2-normalised.
 *
 * It is LEXICAL, not semantic: two texts are close when they share spelling
 * (reworded, reordered, truncated or lightly edited copies of a claim — the
 * near-duplicates that dominate claim matching), not when they mean the same
 * thing in different words or languages. For semantic matching, embed with a
 * sentence model and send vectors, or plug a model in as an Embedder.
 */
export class HashedNgramEmbedder implements SyncEmbedder {
  readonly name = "hashed-ngrams";
  private readonly acc: Float64Array;

  constructor(readonly dim: number) {
    if (!Number.isInteger(dim) || dim < 1) throw new Error(`hashed-ngrams embedder: dim must be a positive integer, got ${dim}`);
    this.acc = new Float64Array(dim);
  }

  embed(texts: readonly string[]): Promise<number[][]> {
    return Promise.resolve(texts.map((t) => this.embedNow(t)));
  }

  embedNow(text: string): number[] {
    const acc = this.acc;
    acc.fill(0);
    const s = ` ${normalise(text)} `;
    for (let n = 3; n <= 4; n++) {
      for (let i = 0; i + n <= s.length; i++) {
        const h = fnv1a(s, i, i + n);
        const bucket = (h >>> 1) % this.dim;
        acc[bucket]! += (h & 1) === 0 ? 1 : -1;
      }
    }
    let norm = 0;
    for (let i = 0; i < acc.length; i++) norm += acc[i]! * acc[i]!;
    const out = new Array<number>(this.dim);
    if (norm === 0) {
      // Text with no letters or digits: a fixed unit vector rather than zeros (cosine needs a direction).
      out.fill(0);
      out[0] = 1;
      return out;
    }
    const inv = 1 / Math.sqrt(norm);
    for (let i = 0; i < acc.length; i++) out[i] = acc[i]! * inv;
    return out;
  }
}

/** Lower case, runs of anything but letters and digits become one space. */
export function normalise(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, " ")
    .trim();
}

/** 32-bit FNV-1a over UTF-16 code units [from, to). */
function fnv1a(s: string, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
