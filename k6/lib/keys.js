// Entity keys for k6 scripts, as in the Bun generator (loadtest/keys.ts):
// KEYS=uniform, or KEYS=zipf[:s] for a skewed key popularity. Drivers are
// 1001 .. 1000+ENTITIES in the demo data.

const helper1 = (x) => (Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x * (0.5 - x * (1 / 3 - 0.25 * x)));
const helper2 = (x) => (Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x * 0.5 * (1 + (x / 3) * (1 + 0.25 * x)));

/** Zipf(s) over ranks 1..n by rejection-inversion (Hörmann & Derflinger): O(1) per draw, no tables. */
export function zipfSampler(n, s) {
  const h = (x) => Math.exp(-s * Math.log(x));
  const hIntegral = (x) => {
    const l = Math.log(x);
    return helper2((1 - s) * l) * l;
  };
  const hIntegralInverse = (x) => Math.exp(helper1(Math.max(-1, x * (1 - s))) * x);
  const hX1 = hIntegral(1.5) - 1;
  const hN = hIntegral(n + 0.5);
  const cut = 2 - hIntegralInverse(hIntegral(2.5) - h(2));
  return (random) => {
    for (;;) {
      const u = hN + random() * (hX1 - hN);
      const x = hIntegralInverse(u);
      const k = Math.min(n, Math.max(1, Math.floor(x + 0.5)));
      if (k - x <= cut || u >= hIntegral(k + 0.5) - h(k)) return k;
    }
  };
}

/** A function giving the next driver id for the KEYS spec (uniform | zipf | zipf:<s>). */
export function driverIds(spec, entities, random) {
  const rnd = random || Math.random;
  if (spec === 'uniform') return () => 1001 + Math.floor(rnd() * entities);
  const m = /^zipf(?::([0-9.]+))?$/.exec(spec);
  if (m === null) throw new Error(`KEYS: expected uniform, zipf or zipf:<s>, got "${spec}"`);
  const zipf = zipfSampler(entities, m[1] === undefined ? 1.1 : Number(m[1]));
  return () => 1000 + zipf(rnd);
}
