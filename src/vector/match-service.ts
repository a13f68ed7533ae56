import { invalid, notFound, unavailable } from "../errors/index.ts";
import type { KvNode } from "../kv/kv-node.ts";
import { UNAVAILABLE } from "../kv/kv-node.ts";
import type { MetricsRegistry } from "../ops/metrics.ts";
import { type LookupResult, type LookupService, RowEntities } from "../serving/index.ts";
import { decodeEntityKey } from "./entity-key.ts";
import { filterPredicate } from "./match-filter.ts";
import type { MatchQuery } from "./match-request.ts";
import { scoreOf, vectorProblem } from "./vector-index.ts";
import type { VectorIndexes } from "./vector-indexes.ts";

/** One neighbour, best first in `MatchResult.matches`. */
export interface Match {
  readonly entity: Record<string, number | bigint | string>;
  readonly score: number;
  readonly distance: number;
}

/** Matches and, when features were asked for, their values: row i of `features` belongs to match i. */
export interface MatchResult {
  readonly matches: readonly Match[];
  readonly features: LookupResult | undefined;
}

/**
 * The claim-matching use case, transport-neutral: a validated MatchQuery in,
 * neighbours with their joined features out, or a QuiverError (400 for a
 * query entity that does not exist or has no vector, 503 while the view's
 * index is still being built, or rebuilt for another version, feature,
 * dimension or metric).
 */
export class MatchService {
  private readonly searches;
  private readonly latency;

  constructor(
    private readonly indexes: VectorIndexes,
    /** Reads the query entity's row. */
    private readonly store: KvNode,
    private readonly lookup: LookupService,
    metrics: MetricsRegistry,
  ) {
    this.searches = metrics.counter("quiver_vector_searches_total", "Vector searches by view and query kind.", ["view", "query"]);
    this.latency = metrics.histogram("quiver_vector_search_duration_seconds", "Vector search latency (index walk only, without the feature join).", ["view"]);
  }

  async match(q: MatchQuery): Promise<MatchResult> {
    const vi = this.indexes.get(q.view.name);
    if (!vi) throw unavailable(`the vector index of "${q.view.name}" is being built; retry shortly`);
    // After a registry change that re-keys the view, the old index serves old keys until the rebuild swaps in.
    if (vi.view.keyPrefix !== q.view.keyPrefix) throw unavailable(`the vector index of "${q.view.name}" is being rebuilt for version ${q.view.version}; retry shortly`);
    // After a registry change of the indexed feature, dimension or metric, the old index serves the old definition
    // until the rebuild swaps in; a query validated against the new one reached it (HNSW threw: a 500; brute force
    // answered null scores).
    const want = q.view.index!;
    const spec = vi.spec;
    if (spec.dim !== want.dim || spec.metric !== want.metric || spec.feature.name !== want.feature.name) {
      throw unavailable(`the vector index of "${q.view.name}" is being rebuilt for the new index definition; retry shortly`);
    }
    let vector: readonly number[];
    let exclude: string | undefined;
    switch (q.query.kind) {
      case "vector":
        vector = q.query.vector;
        break;
      case "text": {
        if (!vi.embedder) throw invalid("invalid_request", "text", `feature view "${q.view.name}" has no embedder (index.embedder); send a vector`);
        vector = (await vi.embedder.embed([q.query.text]))[0]!;
        break;
      }
      case "entity": {
        const key = q.view.keyPrefix + q.query.entityKey;
        const [row] = await this.store.getMany([key]);
        if (row === UNAVAILABLE) throw unavailable(`storage could not answer for the query entity of "${q.view.name}"`);
        if (row === undefined) throw notFound("entity_not_found", `entity: no "${q.view.name}" row for this entity`, "entity");
        const v = row.values[spec.feature.index];
        if (!Array.isArray(v) || vectorProblem(v, spec.dim, spec.metric) !== undefined) throw invalid("invalid_entity", "entity", `the entity's ${spec.feature.name} is not a usable vector`);
        vector = v as number[];
        // Matching an entity means finding the others: it is its own best match.
        exclude = key;
        break;
      }
    }
    const start = performance.now();
    const hits = vi.search(vector, q.k, q.efSearch ?? spec.efSearch, filterPredicate(q.filter, vi.attributes), exclude);
    this.latency.labels(q.view.name).observe((performance.now() - start) / 1000);
    this.searches.labels(q.view.name, q.query.kind).inc();

    const matches: Match[] = [];
    const prefixLength = q.view.keyPrefix.length;
    for (const h of hits) {
      const { score, distance } = scoreOf(spec.metric, h.raw);
      if (q.minScore !== undefined && score < q.minScore) break;
      const entity = decodeEntityKey(h.key.slice(prefixLength), q.view.joinKeys);
      if (entity) matches.push({ entity, score, distance });
    }
    if (q.refs.length === 0 || matches.length === 0) return { matches, features: undefined };
    const entities = new RowEntities(
      matches.map((m) => m.entity),
      "matches",
    );
    const features = await this.lookup.lookup({ refs: q.refs, entities, fillDefaults: true });
    return { matches, features };
  }
}
