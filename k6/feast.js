// Feast-compatible lookup (POST /get-online-features, columnar entities) at a
// constant arrival rate; BATCH entities per request (default 1 here).
// Body shape: test/fixtures/feast-get-online-features.json, over BODIES
// prebuilt bodies (lib/bodies.js); checks status and answer size.
//   k6 run -e RATE=1000 k6/feast.js
import { check } from 'k6';
import http from 'k6/http';
import { answered, cycle, prebuilt } from './lib/bodies.js';
import { BASE_URL, BATCH, constantRate, ENTITIES, jsonParams, KEYS, THRESHOLDS, TREND_STATS } from './lib/config.js';
import { driverIds } from './lib/keys.js';

const rows = BATCH || 1;
const bodies = prebuilt('feast-get-online-features', () => {
  const f = JSON.parse(open('../test/fixtures/feast-get-online-features.json'));
  const nextId = driverIds(KEYS, ENTITIES);
  return () => {
    const ids = [];
    for (let i = 0; i < rows; i++) ids.push(nextId());
    return JSON.stringify({ features: f.features, entities: { driver_id: ids } });
  };
});
const nextBody = cycle(bodies);
const params = jsonParams('feast');
const url = `${BASE_URL}/get-online-features`;
/** Metadata plus a column per feature and the join key: well over 100 bytes per entity. */
const ok = answered(rows * 100);

export const options = {
  scenarios: { feast: constantRate() },
  thresholds: THRESHOLDS,
  summaryTrendStats: TREND_STATS,
};

export default function () {
  check(http.post(url, nextBody(), params), { 'feast 200 with columns': ok });
}
