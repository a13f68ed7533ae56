// Shared settings for the Quiver k6 scripts: everything comes from environment
// variables (k6 run -e NAME=value, or the shell environment), with defaults that
// match `npm start` (demo data, port 6566). Plain JS: k6 runs it as is.

function num(name, dflt) {
  const v = __ENV[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!(n >= 0)) throw new Error(`${name}: expected a number, got "${v}"`);
  return n;
}

export const BASE_URL = (__ENV.QUIVER_URL || 'http://127.0.0.1:6566').replace(/\/+$/, '');
export const ENTITIES = num('ENTITIES', 10000);
export const KEYS = __ENV.KEYS || 'uniform';
export const RATE = num('RATE', 1000);
export const DURATION = __ENV.DURATION || '30s';
export const BATCH = num('BATCH', 0);
export const WRITE_RATIO = num('WRITE_RATIO', 0.1);
export const PRE_VUS = num('PRE_VUS', 50);
export const MAX_VUS = num('MAX_VUS', 500);
/** The server's admin token (--admin-token / QUIVER_ADMIN_TOKEN), when it has one: writes need it. */
export const TOKEN = __ENV.TOKEN || '';
/** Distinct prebuilt request bodies per script (built once at start, see lib/bodies.js). */
export const BODIES = Math.max(1, num('BODIES', 1000));

/**
 * The SLO every script enforces: p99 under 8 ms (the Feature API target) and
 * under 0.1% failed requests. k6 exits non-zero when a threshold fails.
 */
export const THRESHOLDS = {
  http_req_duration: ['p(99)<8'],
  http_req_failed: ['rate<0.001'],
};

export const TREND_STATS = ['avg', 'med', 'p(90)', 'p(99)', 'p(99.9)', 'max'];

/** A constant-arrival-rate scenario: RATE iterations per second whatever the latency (open loop). */
export function constantRate() {
  return {
    executor: 'constant-arrival-rate',
    rate: RATE,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: PRE_VUS,
    maxVUs: MAX_VUS,
  };
}

/** JSON headers plus a tag naming the request kind (for per-kind thresholds). */
export function jsonParams(kind) {
  return { headers: { 'Content-Type': 'application/json' }, tags: { kind: kind } };
}

/** jsonParams for a write: with TOKEN set, also `Authorization: Bearer TOKEN` (a server with an admin token refuses writes without it). */
export function writeParams(kind) {
  const params = jsonParams(kind);
  if (TOKEN !== '') params.headers.Authorization = `Bearer ${TOKEN}`;
  return params;
}
