import type { Prng } from "../prng.ts";
import type { KeySpace, RequestSpec, RequestTemplate } from "../template.ts";

/** Options every scenario may read; each uses what applies to it. */
export interface ScenarioOptions {
  readonly entities: number;
  /** Entity rows per request (lookups) or rows per push. */
  readonly batch: number;
  /** Share of writes in mixed scenarios, 0..1. */
  readonly writeRatio: number;
  /** The server's admin token, sent with writes (`Authorization: Bearer <token>`). */
  readonly token?: string | undefined;
  readonly view: string;
  readonly features: readonly string[] | undefined;
  /** Path for scenarios that take one (`get`). */
  readonly path: string;
  /** For scenarios that vary payloads (push values); keys come from the engine's own PRNG. */
  readonly rng: Prng;
}

/**
 * A plug-in: turns options into request shapes. The engine owns keys, timing and
 * transport. `protocol` names the transport: "http1" (requests compiled from
 * specs) or "grpc" (unary calls over loadtest/grpc/connection.ts).
 */
export type ScenarioPlan = HttpPlan | GrpcPlan;

export interface HttpPlan {
  readonly protocol: "http1";
  readonly keySpaces: readonly KeySpace[];
  readonly requests: readonly RequestSpec[];
}

/** gRPC unary calls: each request is a method path and its compiled message (loadtest/grpc/request-bytes.ts). */
export interface GrpcPlan {
  readonly protocol: "grpc";
  readonly requests: readonly { readonly weight: number; readonly path: string; readonly template: RequestTemplate }[];
}

export interface Scenario {
  readonly name: string;
  readonly summary: string;
  /** Batch size when `--batch` is not given. */
  readonly defaultBatch: number;
  build(options: ScenarioOptions): ScenarioPlan;
}
