import { CORKED_BYTES } from "../../runtime/index.ts";
import { UNAVAILABLE_HEADER } from "../answer-headers.ts";
import { FEAST_LOOKUP, FEAST_PUSH, FEAST_WRITE, type LookupResult, type PlannedLookup, type RawRows, unavailableCount } from "../../serving/index.ts";
import { asObject, containerBudget } from "./body.ts";
import { deadlineAfter, degradedHeaders, lookupBudget, waitedForAdmission } from "./deadline.ts";
import type { HttpDeps } from "./deps.ts";
import { staleHeaders } from "./encode-result.ts";
import { FeastAnswerEncoder } from "./feast-answer.ts";
import { encodedAnswer, feastErrorResponse, json } from "./responses.ts";
import type { AddRoute } from "./route.ts";

/** What a lookup's answer needs once its rows are read (LookupService.lookupRest). */
interface LateAnswer {
  readonly plan: PlannedLookup;
  readonly req: Request;
}

/**
 * Feast feature-server routes, wire-compatible with ../shared/reference/
 * feast-serving-api.md, so model code written for Feast works unchanged.
 * Like Feast, missing values are null (no defaults) unless the store is down.
 */
export function mountFeastRoutes(add: AddRoute, deps: HttpDeps): void {
  const { limits, serving } = deps;
  const answers = new FeastAnswerEncoder();
  const fromRows = (rows: RawRows, plan: PlannedLookup) => answers.jsonRows(rows, plan.entities, plan.fullFeatureNames);
  // The same, once storage was waited for (keys a cache lacked read through), and the decoding path's answer.
  const lateRows = (rows: RawRows, a: LateAnswer) => {
    const bytes = answers.jsonRows(rows, a.plan.entities, a.plan.fullFeatureNames);
    return bytes === undefined ? undefined : encodedAnswer(bytes, false, undefined, true);
  };
  const fromResult = (result: LookupResult, a: LateAnswer, late: boolean) => encode(result, a.plan, late || waitedForAdmission(a.req));

  /** After the body: plan, read (synchronously when every key is in memory), encode in Feast's shape. */
  const answer = (value: unknown, req: Request): Response | Promise<Response> => {
    const plan = serving.planLookup(asObject(value), FEAST_LOOKUP);
    const budget = lookupBudget(req, limits.lookupTimeoutMs);
    // The embedded store hands rows over as bytes: the answer is written from them (nothing is unavailable in memory).
    const stored = serving.lookupRaw(plan, fromRows);
    // Small answers leave in one write either way: only a large one asks whether it is late.
    if (stored !== undefined) return encodedAnswer(stored, false, undefined, stored.length > CORKED_BYTES && waitedForAdmission(req));
    // Answered once storage has: after this request's socket callback (late-body.ts).
    return serving.lookupRest(plan, { deadline: deadlineAfter(req, budget) }, lateRows, fromResult, { plan, req });
  };
  const encode = (result: LookupResult, plan: PlannedLookup, late: boolean): Response => {
    const missing = unavailableCount(result.statuses);
    const bytes = answers.json(result, plan.entities, plan.fullFeatureNames);
    return encodedAnswer(bytes, false, staleHeaders(result, degradedHeaders(result.degraded, missing > 0 ? { [UNAVAILABLE_HEADER]: String(missing) } : undefined)), late);
  };

  // Bodies are read before a route takes a concurrency slot (route.ts); lookups leniently, writes strictly (body.ts).
  // Every body is read as JSON whatever its Content-Type, as Feast's server reads it: Feast's documented
  // `curl -X POST .../get-online-features -d '{...}'` sends application/x-www-form-urlencoded, and got a 415 here.
  // Integer literals past 2^53 exact, as Feast's Python server reads them (its clients send int64 ids as JSON
  // numbers): for lookups this reads the body's text, ~0.5 KB more per lookup than Bun's native parse (body.ts).
  // Whole numbers written as floats (1.0) are noted, so a string join key refuses them (planLookup's typedEcho).
  const lookupBody = { limit: limits.maxBodyBytes, allowMsgpack: false, anyTypeAsJson: true, strict: false, maxContainers: containerBudget(limits.maxRows), exactIntegers: true, floatLiterals: true };
  const writeBody = { limit: limits.maxBodyBytes, allowMsgpack: false, anyTypeAsJson: true, strict: true, maxContainers: containerBudget(limits.maxRows), exactIntegers: true };
  add("POST", "/get-online-features", (req, value) => answer(value, req), feastErrorResponse, lookupBody);

  add("POST", "/push", async (_req, value) => json(await serving.push(asObject(value), FEAST_PUSH)), feastErrorResponse, writeBody);

  add("POST", "/write-to-online-store", async (_req, value) => json(await serving.push(asObject(value), FEAST_WRITE)), feastErrorResponse, writeBody);

  // Feast's "200 when serving", by /readyz's rule: a shard down (its values answered as defaults, flagged) does not
  // make the pod stop serving; it answered 503 whenever any shard's breaker was open, and stayed so until a read reached it.
  add("GET", "/health",
    async () => {
      const unready = deps.draining() ? "draining" : deps.unready?.();
      return new Response(unready ?? "", { status: unready === undefined ? 200 : 503 });
    },
    feastErrorResponse,
  );
}
