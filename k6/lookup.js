// Single-entity lookup (POST /v1/lookup, the 10 features of driver_hourly_stats)
// at a constant arrival rate. Body: test/fixtures/lookup-single.json, key varied
// over BODIES prebuilt bodies (lib/bodies.js); checks status and answer size.
//   k6 run -e QUIVER_URL=http://127.0.0.1:6566 -e RATE=2000 -e DURATION=1m -e ENTITIES=10000 k6/lookup.js
import { check } from 'k6';
import http from 'k6/http';
import { answered, cycle, prebuilt } from './lib/bodies.js';
import { BASE_URL, constantRate, ENTITIES, jsonParams, KEYS, THRESHOLDS, TREND_STATS } from './lib/config.js';
import { driverIds } from './lib/keys.js';

const bodies = prebuilt('lookup-single', () => {
  const f = JSON.parse(open('../test/fixtures/lookup-single.json'));
  const nextId = driverIds(KEYS, ENTITIES);
  return () => JSON.stringify({ features: f.features, entities: [{ driver_id: nextId() }], fillDefaults: f.fillDefaults });
});
const nextBody = cycle(bodies);
const params = jsonParams('lookup');
const url = `${BASE_URL}/v1/lookup`;
/** One row of 10 values, statuses and timestamps is well over 200 bytes. */
const ok = answered(200);

export const options = {
  scenarios: { lookup: constantRate() },
  thresholds: THRESHOLDS,
  summaryTrendStats: TREND_STATS,
};

export default function () {
  check(http.post(url, nextBody(), params), { 'lookup 200 with a row': ok });
}
