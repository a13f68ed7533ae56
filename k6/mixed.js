// Mixed reads and writes with ramping stages: the arrival rate climbs to RATE over
// RAMP, holds for DURATION and ramps down; WRITE_RATIO of iterations push a row,
// the rest look one up. Thresholds apply overall and to reads and writes apart.
//   k6 run -e RATE=2000 -e WRITE_RATIO=0.1 -e DURATION=1m -e RAMP=30s k6/mixed.js
import { check } from 'k6';
import http from 'k6/http';
import { Rate } from 'k6/metrics';
import { answered, cycle, prebuilt } from './lib/bodies.js';
import { BASE_URL, DURATION, ENTITIES, jsonParams, KEYS, MAX_VUS, PRE_VUS, RATE, THRESHOLDS, TREND_STATS, WRITE_RATIO, writeParams } from './lib/config.js';
import { driverIds } from './lib/keys.js';

const reads = prebuilt('mixed-lookup', () => {
  const f = JSON.parse(open('../test/fixtures/lookup-single.json'));
  const nextId = driverIds(KEYS, ENTITIES);
  return () => JSON.stringify({ features: f.features, entities: [{ driver_id: nextId() }], fillDefaults: f.fillDefaults });
});
const writes = prebuilt('mixed-push', () => {
  const f = JSON.parse(open('../test/fixtures/push.json'));
  const nextId = driverIds(KEYS, ENTITIES);
  return () => JSON.stringify({ featureView: f.featureView, rows: [Object.assign({}, f.rows[0], { driver_id: nextId() })] });
});
const nextRead = cycle(reads);
const nextWrite = cycle(writes);
const readParams = jsonParams('lookup');
const pushParams = writeParams('push');
const readOk = answered(200);
const writeShare = new Rate('quiver_write_share');
const RAMP = __ENV.RAMP || '30s';

export const options = {
  scenarios: {
    mixed: {
      executor: 'ramping-arrival-rate',
      startRate: Math.max(1, Math.floor(RATE / 10)),
      timeUnit: '1s',
      preAllocatedVUs: PRE_VUS,
      maxVUs: MAX_VUS,
      stages: [
        { target: RATE, duration: RAMP },
        { target: RATE, duration: DURATION },
        { target: 0, duration: RAMP },
      ],
    },
  },
  thresholds: Object.assign({}, THRESHOLDS, {
    'http_req_duration{kind:lookup}': ['p(99)<8'],
    'http_req_duration{kind:push}': ['p(99)<8'],
  }),
  summaryTrendStats: TREND_STATS,
};

export default function () {
  const isWrite = Math.random() < WRITE_RATIO;
  writeShare.add(isWrite);
  if (isWrite) check(http.post(`${BASE_URL}/v1/push`, nextWrite(), pushParams), { 'push 200': (r) => r.status === 200 });
  else check(http.post(`${BASE_URL}/v1/lookup`, nextRead(), readParams), { 'lookup 200 with a row': readOk });
}
