// Writes: POST /v1/push of whole driver_hourly_stats rows at a constant arrival
// rate; BATCH rows per request (default 1 here). Rows: test/fixtures/push.json
// with the key varied, over BODIES prebuilt bodies (lib/bodies.js); the server
// stamps the event time, so a body sent again is a fresh write.
//   k6 run -e RATE=500 k6/push.js   (add -e TOKEN=... when the server has an admin token)
import { check } from 'k6';
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import { cycle, prebuilt } from './lib/bodies.js';
import { BASE_URL, BATCH, constantRate, ENTITIES, KEYS, THRESHOLDS, TREND_STATS, writeParams } from './lib/config.js';
import { driverIds } from './lib/keys.js';

const rowsPerPush = BATCH || 1;
const bodies = prebuilt('push', () => {
  const f = JSON.parse(open('../test/fixtures/push.json'));
  const nextId = driverIds(KEYS, ENTITIES);
  return () => {
    const rows = [];
    for (let i = 0; i < rowsPerPush; i++) rows.push(Object.assign({}, f.rows[i % f.rows.length], { driver_id: nextId() }));
    return JSON.stringify({ featureView: f.featureView, rows: rows });
  };
});
const nextBody = cycle(bodies);
const params = writeParams('push');
const url = `${BASE_URL}/v1/push`;
const written = new Counter('quiver_rows_written');

export const options = {
  scenarios: { push: constantRate() },
  thresholds: THRESHOLDS,
  summaryTrendStats: TREND_STATS,
};

export default function () {
  const res = http.post(url, nextBody(), params);
  // The answer is a few bytes ({"written":n,"ignored":m}): counting rows costs nothing.
  if (check(res, { 'push 200': (r) => r.status === 200 })) written.add(rowsPerPush);
}
