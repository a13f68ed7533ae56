// Batch lookup: BATCH entities (default 100) × 10 features per POST /v1/lookup,
// at a constant arrival rate. Body shape: test/fixtures/lookup-batch.json, over
// BODIES prebuilt bodies (lib/bodies.js); checks status and answer size only.
//   k6 run -e RATE=200 -e BATCH=100 k6/batch-lookup.js
import { check } from 'k6';
import http from 'k6/http';
import { answered, cycle, prebuilt } from './lib/bodies.js';
import { BASE_URL, BATCH, constantRate, ENTITIES, jsonParams, KEYS, THRESHOLDS, TREND_STATS } from './lib/config.js';
import { driverIds } from './lib/keys.js';

const rows = BATCH || 100;
const bodies = prebuilt('lookup-batch', () => {
  const f = JSON.parse(open('../test/fixtures/lookup-batch.json'));
  const nextId = driverIds(KEYS, ENTITIES);
  return () => {
    const entities = [];
    for (let i = 0; i < rows; i++) entities.push({ driver_id: nextId() });
    return JSON.stringify({ features: f.features, entities: entities, fillDefaults: f.fillDefaults });
  };
});
const nextBody = cycle(bodies);
const params = jsonParams('batch_lookup');
const url = `${BASE_URL}/v1/lookup`;
/** Each row of 10 values, statuses and timestamps is well over 200 bytes: a short answer lost rows. */
const ok = answered(rows * 200);

export const options = {
  scenarios: { batch_lookup: constantRate() },
  thresholds: THRESHOLDS,
  summaryTrendStats: TREND_STATS,
};

export default function () {
  check(http.post(url, nextBody(), params), { 'batch 200 with every row': ok });
}
