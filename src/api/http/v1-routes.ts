import { CORKED_BYTES } from "../../runtime/index.ts";
import { type LookupResult, type PlannedLookup, QUIVER_LOOKUP, QUIVER_PUSH, type RawRows } from "../../serving/index.ts";
import { asObject, containerBudget, rejectUnknownFields, wantsMsgpack } from "./body.ts";
import { deadlineAfter, degradedHeaders, lookupBudget, waitedForAdmission } from "./deadline.ts";
import type { HttpDeps } from "./deps.ts";
import { staleHeaders } from "./encode-result.ts";
import { NativeAnswerEncoder } from "./native-answer.ts";
import { encodedAnswer, errorResponse, json } from "./responses.ts";
import type { AddRoute } from "./route.ts";

/** What a lookup's answer needs once its rows are read (LookupService.lookupRest). */
interface LateAnswer {
  readonly plan: PlannedLookup;
  readonly asMsgpack: boolean;
  readonly req: Request;
}

const LOOKUP_FIELDS = new Set(["features", "featureService", "entities", "fillDefaults", "fullFeatureNames"]);
const PUSH_FIELDS = new Set(["featureView", "rows"]);

/** Quiver's own API: /v1/lookup, /v1/push, /v1/registry. Handlers read the body, call the serving layer, encode. */
export function mountV1Routes(add: AddRoute, deps: HttpDeps): void {
  const { limits, serving } = deps;
  const answers = new NativeAnswerEncoder();
  const fromRowsJson = (rows: RawRows, plan: PlannedLookup) => answers.jsonRows(rows, plan.fullFeatureNames);
  const fromRowsMsgpack = (rows: RawRows, plan: PlannedLookup) => answers.msgpackRows(rows, plan.fullFeatureNames);
  // The same, once storage was waited for (keys a cache lacked read through), and the decoding path's answer.
  const lateRows = (rows: RawRows, a: LateAnswer) => {
    const bytes = a.asMsgpack ? answers.msgpackRows(rows, a.plan.fullFeatureNames) : answers.jsonRows(rows, a.plan.fullFeatureNames);
    return bytes === undefined ? undefined : encodedAnswer(bytes, a.asMsgpack, undefined, true);
  };
  const fromResult = (result: LookupResult, a: LateAnswer, late: boolean) => encode(result, a.plan.fullFeatureNames, a.asMsgpack, late || waitedForAdmission(a.req));

  /** After the body: plan, read (synchronously when every key is in memory), encode. */
  const answer = (value: unknown, req: Request): Response | Promise<Response> => {
    const body = asObject(value);
    rejectUnknownFields(body, LOOKUP_FIELDS);
    const plan = serving.planLookup(body, QUIVER_LOOKUP);
    const asMsgpack = wantsMsgpack(req.headers.get("accept"));
    const budget = lookupBudget(req, limits.lookupTimeoutMs);
    // The embedded store hands rows over as bytes: the answer is written from them, no value objects in between.
    const stored = serving.lookupRaw(plan, asMsgpack ? fromRowsMsgpack : fromRowsJson);
    // Small answers leave in one write either way: only a large one asks whether it is late.
    if (stored !== undefined) return encodedAnswer(stored, asMsgpack, undefined, stored.length > CORKED_BYTES && waitedForAdmission(req));
    // Answered once storage has: after this request's socket callback (late-body.ts).
    return serving.lookupRest(plan, { deadline: deadlineAfter(req, budget) }, lateRows, fromResult, { plan, asMsgpack, req });
  };
  const encode = (result: LookupResult, full: boolean, asMsgpack: boolean, late: boolean): Response => {
    const bytes = asMsgpack ? answers.msgpack(result, full) : answers.json(result, full);
    // Rare: a cache served grace copies (per-row `stale` flags in the body, and a header).
    const headers = result.stale === undefined ? degradedHeaders(result.degraded) : staleHeaders(result, degradedHeaders(result.degraded));
    return encodedAnswer(bytes, asMsgpack, headers, late);
  };

  // Bodies are read before a route takes a concurrency slot (route.ts); lookups leniently, writes strictly (body.ts).
  // Lookups keep Bun's native JSON parse (exactIntegers off: reading the text for exact integers cost ~0.5 KB per
  // lookup): an int64 join key past 2^53 comes as a decimal string or in MessagePack; as a JSON number it is refused.
  add("POST", "/v1/lookup", function v1Lookup(req, value) {
    return answer(value, req);
  }, errorResponse, { limit: limits.maxBodyBytes, allowMsgpack: true, strict: false, maxContainers: containerBudget(limits.maxRows), exactIntegers: false });

  add("POST", "/v1/push",
    async (_req, value) => {
      const body = asObject(value);
      rejectUnknownFields(body, PUSH_FIELDS);
      return json(await serving.push(body, QUIVER_PUSH));
    },
    errorResponse,
    { limit: limits.maxBodyBytes, allowMsgpack: true, strict: true, maxContainers: containerBudget(limits.maxRows), exactIntegers: true },
  );

  add("GET", "/v1/registry",
    () => {
      const r = deps.registry.current;
      return json({ project: r.project, digest: r.digest, loadedAt: new Date(r.loadedAt).toISOString(), ...r.definition });
    },
    errorResponse,
  );
}
