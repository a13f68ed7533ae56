/**
 * Turns text into vectors for `text` match queries and for demo data. The
 * built-in implementation is lexical (hashed-ngram-embedder.ts); an operator
 * who has a sentence-embedding model plugs it in behind this interface.
 */
export interface Embedder {
  /** Name for logs and metrics, e.g. "hashed-ngrams". */
  readonly name: string;
  readonly dim: number;
  /** One vector per text, in order; batched because models are much faster per batch. */
  embed(texts: readonly string[]): Promise<number[][]>;
}

/** Synchronous embedders (the built-in one) also offer this, for start-up data and tight loops. */
export interface SyncEmbedder extends Embedder {
  embedNow(text: string): number[];
}
