export type { Embedder, SyncEmbedder } from "./embedder.ts";
export { createEmbedder, type EmbedderOptions } from "./embedders.ts";
export { HashedNgramEmbedder } from "./hashed-ngram-embedder.ts";
export { MAX_K, type MatchQuery, parseMatchRequest } from "./match-request.ts";
export { type Match, type MatchResult, MatchService } from "./match-service.ts";
export { SnapshotStore } from "./snapshot.ts";
export { VectorIndexes, type VectorIndexesOptions } from "./vector-indexes.ts";
