import type { CliOptions } from "./args.ts";
import { formatDuration } from "./args.ts";
import type { Progress } from "./engine/run-load.ts";
import { runLoad } from "./engine/run-load.ts";
import { loadYoungGc } from "../src/runtime/gc.ts";
import { parseKeySpec } from "./keys.ts";
import { buildResult } from "./output/result.ts";
import type { RunResult } from "./output/result.ts";
import { Prng } from "./prng.ts";
import { getScenarioByName } from "./scenarios/index.ts";
import { GrpcConnection } from "./grpc/connection.ts";
import { compileRequest } from "./template.ts";
import type { RequestTemplate } from "./template.ts";

/** The options one run needs (the CLI's, minus output and find-max settings). */
export type RunOptions = Pick<
  CliOptions,
  | "scenario"
  | "target"
  | "mode"
  | "rate"
  | "connections"
  | "durationMs"
  | "warmupMs"
  | "timeoutMs"
  | "gcPaceMs"
  | "keys"
  | "entities"
  | "seed"
  | "batch"
  | "writeRatio"
  | "token"
  | "view"
  | "features"
  | "path"
  | "maxRequests"
  | "label"
>;

/** Builds the scenario's request templates for the target. */
export function buildTemplates(o: RunOptions): { templates: RequestTemplate[]; weights: number[]; batch: number; grpcPaths?: string[] } {
  const scenario = getScenarioByName(o.scenario);
  const batch = o.batch ?? scenario.defaultBatch;
  const plan = scenario.build({
    entities: o.entities,
    batch,
    writeRatio: o.writeRatio,
    token: o.token,
    view: o.view,
    features: o.features,
    path: o.path,
    rng: new Prng(`${o.seed}/payload`),
  });
  if (plan.protocol === "grpc") {
    return { templates: plan.requests.map((r) => r.template), weights: plan.requests.map((r) => r.weight), batch, grpcPaths: plan.requests.map((r) => r.path) };
  }
  const templates = plan.requests.map((r) => compileRequest(r, plan.keySpaces, o.entities, o.target.host));
  return { templates, weights: plan.requests.map((r) => r.weight), batch };
}

/** One run, programmatic: used by the CLI, --find-max, bench and tests. */
export async function runOnce(o: RunOptions, onProgress?: (p: Progress) => void): Promise<RunResult> {
  const { templates, weights, batch, grpcPaths } = buildTemplates(o);
  // Where the runtime lets us drive its young generation (Bun); elsewhere its own schedule. Not for
  // gRPC: an HTTP/2 stream costs the collector so much that each paced collection took ~1.1 ms (max
  // 10-18 ms) with grpc-js's client against 100-entity calls, and 0.7-1.0 ms (max 8-16 ms) with
  // node:http2's against single ones (12-06): a tenth of the generator's time, for no steadier send times.
  const youngGc = o.gcPaceMs > 0 && grpcPaths === undefined ? await loadYoungGc() : undefined;
  const startedAt = new Date();
  const outcome = await runLoad({
    mode: o.mode,
    hostname: o.target.hostname,
    port: Number(o.target.port || 80),
    rate: o.rate,
    connections: o.connections,
    durationMs: o.durationMs,
    warmupMs: o.warmupMs,
    timeoutMs: o.timeoutMs,
    templates,
    weights,
    keys: parseKeySpec(o.keys, o.entities),
    seed: o.seed,
    maxRequests: o.maxRequests,
    onProgress,
    ...(youngGc !== undefined ? { gcPace: { gc: youngGc, everyMs: o.gcPaceMs } } : {}),
    ...(grpcPaths ? { openConnection: (id, listener) => new GrpcConnection(id, o.target.hostname, Number(o.target.port || 80), listener, grpcPaths) } : {}),
  });
  return buildResult(
    {
      label: o.label ?? `${o.scenario}${o.mode === "open" ? ` @${o.rate}/s` : ` x${o.connections}`}`,
      scenario: o.scenario,
      mode: o.mode,
      target: o.target.origin,
      startedAt,
      targetRate: o.mode === "open" ? o.rate : null,
      options: {
        connections: o.connections,
        duration: formatDuration(o.durationMs),
        warmup: formatDuration(o.warmupMs),
        timeout: formatDuration(o.timeoutMs),
        keys: o.keys,
        entities: o.entities,
        seed: o.seed,
        batch,
        writeRatio: o.scenario === "mixed" ? o.writeRatio : null,
        view: o.view,
        features: o.features?.join(",") ?? null,
        requestBytes: templates[0]?.bytes.length ?? 0,
      },
    },
    outcome,
  );
}
