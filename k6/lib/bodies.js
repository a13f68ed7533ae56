// Request bodies built once, in the init context, and shared by every VU
// (SharedArray): an iteration only picks the next prebuilt string, so k6's
// JavaScript runtime spends its time sending requests instead of building
// JSON (a 100-entity body per iteration saturated k6's core at 300 req/s).
// BODIES distinct bodies (default 1000) are drawn from the KEYS distribution.
import { SharedArray } from 'k6/data';
import { BODIES } from './config.js';

/**
 * BODIES strings, built once and shared read-only by all VUs: `setup()` runs
 * once (read fixtures there) and returns the function that builds one body.
 */
export function prebuilt(name, setup) {
  return new SharedArray(name, () => {
    const build = setup();
    const out = [];
    for (let i = 0; i < BODIES; i++) out.push(build(i));
    return out;
  });
}

/** Cycles through prebuilt bodies from a random start (each VU its own start). */
export function cycle(bodies) {
  let i = Math.floor(Math.random() * bodies.length);
  return () => bodies[i++ % bodies.length];
}

/**
 * Cheap answer checks: status and size, never a parse of the body (parsing a
 * 37 KB answer per iteration in k6's runtime costs more than the server's work).
 */
export function answered(minBytes) {
  return (r) => r.status === 200 && typeof r.body === 'string' && r.body.length >= minBytes;
}
