import type { Admission } from "../../resilience/admission.ts";
import { DEGRADED_HEADER } from "./deadline.ts";
import type { Handler } from "./route.ts";

/**
 * Puts a route behind admission control: admitted requests run as before;
 * shed ones get `shed()` (503 + Retry-After in the route family's error
 * shape) at once, without reading the body. Chosen per route at start-up:
 * health, metrics and admin routes are never wrapped.
 */
export function admitted(admission: Admission, handler: Handler, shed: () => Response): Handler {
  return async (req) => {
    const t = admission.admit();
    const startedAt = typeof t === "number" ? t : await t;
    if (startedAt < 0) return shed();
    let failed = true;
    try {
      const res = await handler(req);
      // A partial answer (some shard could not answer) counts against the error rate too.
      failed = res.status >= 500 || res.headers.has(DEGRADED_HEADER);
      return res;
    } finally {
      admission.done(startedAt, failed);
    }
  };
}
