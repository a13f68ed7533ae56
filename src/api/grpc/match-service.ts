import type { FeatureValue } from "../../kv/kv-node.ts";
import type { JoinKey } from "../../registry/index.ts";
import type { ValueType } from "../../registry/value-types.ts";
import type { FeatureServing } from "../../serving/index.ts";
import { type MatchResult, type MatchService, parseMatchRequest } from "../../vector/index.ts";
import type { CallContext } from "./call.ts";
import { type FeastValue, plainOfFeastValue } from "./values.ts";

/** Decoded quiver.v1.MatchRequest. */
export interface QuiverMatchRequest {
  readonly view: string;
  readonly query?: "vector" | "entity" | "text";
  readonly vector: { readonly val: readonly number[] } | null;
  readonly entity: { readonly keys: Readonly<Record<string, FeastValue>> } | null;
  readonly text: string;
  readonly k: number;
  readonly min_score?: number | null;
  readonly filter: Readonly<Record<string, { readonly values: readonly FeastValue[] }>>;
  readonly features: readonly string[];
  readonly ef_search: number;
}

/**
 * An int64 as protobufjs's writer takes it: a bigint (an int64 past 2^53) as its decimal text, which the writer
 * reads exactly; given the bigint itself it wrote 0.
 */
function longOf(v: unknown): unknown {
  return typeof v === "bigint" ? v.toString() : v;
}

/** A Feast Value as a plain object for protobufjs's encoder, in the oneof the registry type calls for. */
export function feastValueOf(type: ValueType, v: FeatureValue | undefined): Record<string, unknown> {
  if (v === null || v === undefined) return { null_val: 0 };
  switch (type.kind) {
    case "int64":
      return { int64_val: longOf(v) };
    case "float64":
      return { double_val: v };
    case "string":
      return { string_val: v };
    case "bool":
      return { bool_val: v };
    case "int64[]":
      return { int64_list_val: { val: (v as readonly unknown[]).map(longOf) } };
    case "string[]":
      return { string_list_val: { val: v } };
    default:
      return { double_list_val: { val: v } };
  }
}

/**
 * quiver.v1 Match over the claim-matching use case (src/vector/): the message
 * becomes the plain request parseMatchRequest validates (the same path as
 * POST /v1/match, so errors name the same fields), the result a MatchResponse.
 */
export class QuiverMatchService {
  constructor(
    private readonly serving: FeatureServing,
    private readonly match: MatchService,
  ) {}

  async run(req: QuiverMatchRequest, _ctx: CallContext): Promise<Record<string, unknown>> {
    const body: Record<string, unknown> = { view: req.view };
    if (req.query === "vector") body.vector = req.vector?.val ?? [];
    else if (req.query === "entity") body.entity = plainMap(req.entity?.keys ?? {}, "entity.keys");
    else if (req.query === "text") body.text = req.text;
    if (req.k !== 0) body.k = req.k;
    if (req.min_score !== null && req.min_score !== undefined) body.minScore = req.min_score;
    const filterNames = Object.keys(req.filter);
    if (filterNames.length > 0) {
      const filter: Record<string, unknown> = Object.create(null);
      for (const name of filterNames) filter[name] = (req.filter[name]?.values ?? []).map((v, i) => plainOfFeastValue(v, `filter.${name}.values[${i}]`));
      body.filter = filter;
    }
    if (req.features.length > 0) body.features = req.features;
    if (req.ef_search !== 0) body.efSearch = req.ef_search;
    const query = parseMatchRequest(body, this.serving.currentRegistry, this.serving.limits);
    return responseOf(await this.match.match(query), query.view.joinKeys);
  }
}

function plainMap(values: Readonly<Record<string, FeastValue>>, path: string): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  for (const name of Object.keys(values)) out[name] = plainOfFeastValue(values[name], `${path}.${name}`);
  return out;
}

/**
 * Each entity key in the oneof its registry type calls for: picked by the
 * decoded value's JS type, an int64 beyond 2^53 (a decimal string) was
 * answered as string_val.
 */
function responseOf(result: MatchResult, joinKeys: readonly JoinKey[]): Record<string, unknown> {
  const f = result.features;
  const refs = f?.refs ?? [];
  const nf = refs.length;
  const matches = result.matches.map((m, r) => {
    const entity: Record<string, unknown> = {};
    for (const k of joinKeys) entity[k.name] = k.type === "int64" ? { int64_val: longOf(m.entity[k.name]) } : { string_val: m.entity[k.name] };
    const values = new Array<unknown>(nf);
    const statuses = new Array<number>(nf);
    for (let c = 0, at = r * nf; c < nf; c++, at++) {
      values[c] = feastValueOf(refs[c]!.feature.type, f!.values[at]);
      statuses[c] = f!.statuses[at]!;
    }
    return { entity, score: m.score, distance: m.distance, values, statuses };
  });
  return { feature_names: refs.map((r) => r.feature.name), matches };
}

