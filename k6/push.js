// Writes: POST /v1/push of whole driver_hourly_stats rows at a constant arrival
// rate; BATCH rows per request (default 1 here). Rows: test/fixtures/push.json
// with the key varied; the server stamps the event time.
//   k6 run -e RATE=500 k6/push.js
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import { BASE_URL, BATCH, constantRate, ENTITIES, jsonParams, KEYS, THRESHOLDS, TREND_STATS } from './lib/config.js';
import { driverIds } from './lib/keys.js';

const fixture = new SharedArray('push', () => [JSON.parse(open('../test/fixtures/push.json'))]);
const nextId = driverIds(KEYS, ENTITIES);
const rowsPerPush = BATCH || 1;
const written = new Counter('quiver_rows_written');

export const options = {
  scenarios: { push: constantRate() },
  thresholds: THRESHOLDS,
  summaryTrendStats: TREND_STATS,
};

export default function () {
  const f = fixture[0];
  const rows = [];
  for (let i = 0; i < rowsPerPush; i++) rows.push(Object.assign({}, f.rows[i % f.rows.length], { driver_id: nextId() }));
  const res = http.post(`${BASE_URL}/v1/push`, JSON.stringify({ featureView: f.featureView, rows: rows }), jsonParams('push'));
  check(res, { 'push 200': (r) => r.status === 200 });
  if (res.status === 200) written.add(res.json('written'));
}
