// Feast-compatible lookup (POST /get-online-features, columnar entities) at a
// constant arrival rate; BATCH entities per request (default 1 here).
// Body shape: test/fixtures/feast-get-online-features.json.
//   k6 run -e RATE=1000 k6/feast.js
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import http from 'k6/http';
import { BASE_URL, BATCH, constantRate, ENTITIES, jsonParams, KEYS, THRESHOLDS, TREND_STATS } from './lib/config.js';
import { driverIds } from './lib/keys.js';

const fixture = new SharedArray('feast-get-online-features', () => [JSON.parse(open('../test/fixtures/feast-get-online-features.json'))]);
const nextId = driverIds(KEYS, ENTITIES);
const rows = BATCH || 1;

export const options = {
  scenarios: { feast: constantRate() },
  thresholds: THRESHOLDS,
  summaryTrendStats: TREND_STATS,
};

export default function () {
  const f = fixture[0];
  const ids = [];
  for (let i = 0; i < rows; i++) ids.push(nextId());
  const body = { features: f.features, entities: { driver_id: ids } };
  const res = http.post(`${BASE_URL}/get-online-features`, JSON.stringify(body), jsonParams('feast'));
  check(res, {
    'feast 200': (r) => r.status === 200,
    'join key + feature columns': (r) => r.status === 200 && r.json('results').length === f.features.length + 1,
  });
}
