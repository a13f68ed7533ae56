// Single-entity lookup (POST /v1/lookup, the 10 features of driver_hourly_stats)
// at a constant arrival rate. Body: test/fixtures/lookup-single.json, key varied.
//   k6 run -e QUIVER_URL=http://127.0.0.1:6566 -e RATE=2000 -e DURATION=1m -e ENTITIES=10000 k6/lookup.js
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import http from 'k6/http';
import { BASE_URL, constantRate, ENTITIES, jsonParams, KEYS, THRESHOLDS, TREND_STATS } from './lib/config.js';
import { driverIds } from './lib/keys.js';

const fixture = new SharedArray('lookup-single', () => [JSON.parse(open('../test/fixtures/lookup-single.json'))]);
const nextId = driverIds(KEYS, ENTITIES);

export const options = {
  scenarios: { lookup: constantRate() },
  thresholds: THRESHOLDS,
  summaryTrendStats: TREND_STATS,
};

export default function () {
  const f = fixture[0];
  const body = { features: f.features, entities: [{ driver_id: nextId() }], fillDefaults: f.fillDefaults };
  const res = http.post(`${BASE_URL}/v1/lookup`, JSON.stringify(body), jsonParams('lookup'));
  check(res, { 'lookup 200': (r) => r.status === 200 });
}
