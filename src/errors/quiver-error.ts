/** One problem with a client's input or a definitions file, located by path. */
export interface Issue {
  /** Where the problem is, e.g. `entities[3].driver_id` or `featureViews[2].features[0].type`. */
  readonly path: string;
  readonly message: string;
}

/**
 * The only error type that crosses module boundaries. `code` is stable (clients
 * and dashboards key on it), `status` is what the HTTP edge answers, and
 * `retryable` tells callers whether the same request may succeed later.
 */
export class QuiverError extends Error {
  readonly code: string;
  readonly status: number;
  readonly retryable: boolean;
  readonly path: string | undefined;
  /** Every problem found, when validation collected more than one. */
  readonly issues: readonly Issue[];

  constructor(
    code: string,
    status: number,
    message: string,
    opts: { path?: string; retryable?: boolean; cause?: unknown; issues?: readonly Issue[] } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "QuiverError";
    this.code = code;
    this.status = status;
    this.retryable = opts.retryable ?? false;
    this.path = opts.path;
    this.issues = opts.issues ?? (opts.path === undefined ? [] : [{ path: opts.path, message }]);
  }
}

/** 400 for input that fails validation at `path`. */
export function invalid(code: string, path: string, message: string): QuiverError {
  return new QuiverError(code, 400, `${path}: ${message}`, { path });
}

/** 400 carrying every issue found (registry files report all problems at once). */
export function invalidAll(code: string, issues: readonly Issue[]): QuiverError {
  const first = issues[0];
  const summary = issues.map((i) => `${i.path}: ${i.message}`).join("; ");
  return new QuiverError(code, 400, summary, { path: first?.path, issues });
}

/** 503 for storage that cannot take or serve the request right now. */
export function unavailable(message: string, cause?: unknown): QuiverError {
  return new QuiverError("unavailable", 503, message, { retryable: true, cause });
}
