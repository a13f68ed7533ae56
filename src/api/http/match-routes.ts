import { STATUS_NAMES } from "../../serving/index.ts";
import { type MatchResult, parseMatchRequest } from "../../vector/index.ts";
import { containerBudget } from "./body.ts";
import type { HttpDeps } from "./deps.ts";
import { wholeInDecimal } from "./json-bytes.ts";
import { errorResponse, json } from "./responses.ts";
import type { AddRoute } from "./route.ts";

/** POST /v1/match: claim matching over a view's vector index (src/vector/); the use case lives there. */
export function mountMatchRoutes(add: AddRoute, deps: HttpDeps): void {
  const match = deps.match;
  if (!match) return;
  add("POST", "/v1/match",
    async (_req, value) => {
      const query = parseMatchRequest(value, deps.registry.current, deps.serving.limits);
      return json(matchBody(await match.match(query)));
    },
    errorResponse,
    { limit: deps.limits.maxBodyBytes, allowMsgpack: false, strict: true, maxContainers: containerBudget(deps.limits.maxRows), exactIntegers: true },
  );
}

/** `{ featureNames, matches: [{ entity, score, distance, values, statuses }] }`, best first. */
export function matchBody(result: MatchResult): unknown {
  const f = result.features;
  const nf = f?.refs.length ?? 0;
  const matches = result.matches.map((m, r) => {
    if (!f) return { entity: m.entity, score: m.score, distance: m.distance, values: [], statuses: [] };
    const values = new Array<unknown>(nf);
    const statuses = new Array<string>(nf);
    for (let c = 0, at = r * nf; c < nf; c++, at++) {
      values[c] = f.refs[c]!.feature.floats ? floatJson(f.values[at]) : f.values[at];
      statuses[c] = STATUS_NAMES[f.statuses[at]!]!;
    }
    return { entity: m.entity, score: m.score, distance: m.distance, values, statuses };
  });
  return { featureNames: f ? f.refs.map((r) => r.feature.name) : [], matches };
}

const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

/**
 * A float feature's value for JSON.stringify, its whole numbers spelled as
 * floats (`2.0`, `-0.0`; JSON.stringify writes `2` and `0`), as /v1/lookup and
 * Feast's route write them (json-bytes.ts, jsonDouble). Values with no whole
 * number are returned as they are.
 */
function floatJson(v: unknown): unknown {
  if (typeof v === "number") return wholeInDecimal(v) ? rawJSON(`${v === 0 && 1 / v < 0 ? "-0" : String(v)}.0`) : v;
  if (typeof v === "bigint") return rawJSON(`${v}.0`);
  if (Array.isArray(v) && v.some((x) => typeof x === "bigint" || (typeof x === "number" && wholeInDecimal(x)))) return v.map(floatJson);
  return v;
}
