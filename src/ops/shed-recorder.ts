import type { AnomalyBuffer } from "./anomaly-buffer.ts";
import type { MetricsRegistry } from "./metrics.ts";

/** Why admission refused a request (resilience/admission.ts `refusalReason`). */
export type ShedReason = "concurrency_limit" | "cpu_overload";

/**
 * Every request admission refuses, whichever edge refused it: counted in
 * `quiver_admission_shed_total` by route (an HTTP path, a gRPC method) and
 * reason, and noted in the anomaly buffer as a `shed` entry. One instance per
 * process, shared by the HTTP and gRPC edges, so both show in the same series
 * and `GET /admin/anomalies` lists both.
 */
export class ShedRecorder {
  private readonly counter;

  constructor(
    metrics: MetricsRegistry,
    private readonly anomalies: AnomalyBuffer,
  ) {
    this.counter = metrics.counter(
      "quiver_admission_shed_total",
      "Requests refused by admission control (HTTP 503 + Retry-After, gRPC RESOURCE_EXHAUSTED), by route (HTTP path or gRPC method) and reason (concurrency_limit, cpu_overload).",
      ["route", "reason"],
    );
  }

  /** One route's recorder for one reason, resolved once: refusals come in floods, each must cost a small share of a lookup. */
  recorder(route: string, reason: ShedReason): () => void {
    const count = this.counter.labels(route, reason);
    const note = this.anomalies.recorder("shed", route, reason);
    return () => {
      count.inc();
      note();
    };
  }
}
