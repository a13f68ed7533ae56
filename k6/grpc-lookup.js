// gRPC lookups against both services at a constant arrival rate each (RATE/2
// per second per service): quiver.v1.FeatureService/Lookup and Feast's
// feast.serving.ServingService/GetOnlineFeatures, BATCH entities per call
// (default 1), the 10 features of test/fixtures/lookup-single.json. Loads the
// project's own protos; checks the status and the answer's shape.
//   k6 run -e GRPC_ADDR=127.0.0.1:6570 -e RATE=2000 -e DURATION=1m k6/grpc-lookup.js
import { check } from 'k6';
import grpc from 'k6/net/grpc';
import { BATCH, DURATION, ENTITIES, KEYS, MAX_VUS, PRE_VUS, RATE, TREND_STATS } from './lib/config.js';
import { driverIds } from './lib/keys.js';

const ADDR = __ENV.GRPC_ADDR || '127.0.0.1:6570';
const ROWS = BATCH || 1;
const REQUESTS = 200;

const client = new grpc.Client();
client.load(['../src/api/grpc/proto'], 'quiver/v1/feature_service.proto', 'feast/serving/ServingService.proto');

const features = JSON.parse(open('../test/fixtures/lookup-single.json')).features;

/** Request messages built once per VU in the init context; an iteration only picks the next one. */
function build(make) {
  const nextId = driverIds(KEYS, ENTITIES);
  const out = [];
  for (let i = 0; i < REQUESTS; i++) {
    const ids = [];
    for (let r = 0; r < ROWS; r++) ids.push(String(nextId()));
    out.push(make(ids));
  }
  return out;
}
const quiverRequests = build((ids) => ({ features: features, entities: [{ name: 'driver_id', int64Values: ids }] }));
const feastRequests = build((ids) => ({ features: { val: features }, entities: { driver_id: { val: ids.map((id) => ({ int64Val: id })) } } }));
let next = Math.floor(Math.random() * REQUESTS);

function scenario(exec) {
  return {
    executor: 'constant-arrival-rate',
    exec: exec,
    rate: Math.max(1, Math.round(RATE / 2)),
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: PRE_VUS,
    maxVUs: MAX_VUS,
  };
}

export const options = {
  scenarios: { quiver: scenario('quiverLookup'), feast: scenario('feastLookup') },
  // The same SLO as the HTTP scripts: p99 under 8 ms, under 0.1% failed calls.
  thresholds: {
    grpc_req_duration: ['p(99)<8'],
    checks: ['rate>0.999'],
  },
  summaryTrendStats: TREND_STATS,
};

let connected = false;
function connect() {
  if (!connected) {
    client.connect(ADDR, { plaintext: true, timeout: '5s' });
    connected = true;
  }
}

export function quiverLookup() {
  connect();
  const res = client.invoke('quiver.v1.FeatureService/Lookup', quiverRequests[next++ % REQUESTS], { timeout: '2s' });
  check(res, {
    'Lookup OK with a column per feature': (r) => r && r.status === grpc.StatusOK && r.message.columns.length === features.length,
  });
}

export function feastLookup() {
  connect();
  const res = client.invoke('feast.serving.ServingService/GetOnlineFeatures', feastRequests[next++ % REQUESTS], { timeout: '2s' });
  check(res, {
    'GetOnlineFeatures OK with join key and features': (r) => r && r.status === grpc.StatusOK && r.message.results.length === features.length + 1,
  });
}

export default function () {
  quiverLookup();
  feastLookup();
}
