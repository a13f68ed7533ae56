import { expect, test } from "bun:test";
import { AdaptiveAdmission } from "../resilience/admission.ts";
import { HealthMonitor } from "./health-score.ts";

test("health score: 100 when idle, falls with in-flight load, errors, latency, CPU and memory", () => {
  let now = 0;
  let cpu = 0;
  let rss = 100;
  const admission = new AdaptiveAdmission({ fixedLimit: 10, queue: 10, queueTimeoutMs: 10_000, now: () => now });
  const health = new HealthMonitor(admission, { targetMs: 50, memoryLimitBytes: 1000, cpuMicros: () => cpu, rssBytes: () => rss, now: () => now });
  now = 1000;
  expect(health.sample().score).toBe(99); // memory 10% × weight 0.1
  // Saturated: every slot taken, queue full, one core busy, 5xx everywhere, p99 over 2× target.
  const held: number[] = [];
  for (let i = 0; i < 10; i++) held.push(admission.admit() as number);
  for (let i = 0; i < 10; i++) void admission.admit(); // queued
  for (let i = 0; i < 5; i++) expect(admission.admit()).toBe(-1); // shed
  const t = held.pop()!;
  now += 150;
  admission.done(t, true);
  void admission.admit(); // the freed slot went to a queued request; this one queues
  cpu += 1_150_000;
  rss = 1000;
  now += 1000;
  const r = health.sample();
  expect(r.factors).toEqual({ active: 1, queue: 1, cpu: 1, memory: 1, errors: 1, latency: 1 });
  expect(r.score).toBe(0);
  expect(r.inFlight).toBe(10);
  expect(r.p99Ms).toBe(150);
});
