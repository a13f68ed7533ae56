// Batch lookup: BATCH entities (default 100) × 10 features per POST /v1/lookup,
// at a constant arrival rate. Body shape: test/fixtures/lookup-batch.json.
//   k6 run -e RATE=200 -e BATCH=100 k6/batch-lookup.js
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import http from 'k6/http';
import { BASE_URL, BATCH, constantRate, ENTITIES, jsonParams, KEYS, THRESHOLDS, TREND_STATS } from './lib/config.js';
import { driverIds } from './lib/keys.js';

const fixture = new SharedArray('lookup-batch', () => [JSON.parse(open('../test/fixtures/lookup-batch.json'))]);
const nextId = driverIds(KEYS, ENTITIES);
const rows = BATCH || 100;

export const options = {
  scenarios: { batch_lookup: constantRate() },
  thresholds: THRESHOLDS,
  summaryTrendStats: TREND_STATS,
};

export default function () {
  const f = fixture[0];
  const entities = [];
  for (let i = 0; i < rows; i++) entities.push({ driver_id: nextId() });
  const body = { features: f.features, entities: entities, fillDefaults: f.fillDefaults };
  const res = http.post(`${BASE_URL}/v1/lookup`, JSON.stringify(body), jsonParams('batch_lookup'));
  check(res, {
    'batch 200': (r) => r.status === 200,
    'one row per entity': (r) => r.status === 200 && r.json('rows').length === rows,
  });
}
