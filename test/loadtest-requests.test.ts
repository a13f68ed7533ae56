import { describe, expect, test } from "bun:test";
import { decode } from "@msgpack/msgpack";
import { Prng } from "../loadtest/prng.ts";
import { buildTemplates } from "../loadtest/run.ts";
import type { RunOptions } from "../loadtest/run.ts";
import { feastBody, lookupBody, pushBody } from "../loadtest/scenarios/bodies.ts";
import { DEMO_KEY_SPACES, DEMO_VIEWS, findView } from "../loadtest/scenarios/demo-catalog.ts";
import { SCENARIOS } from "../loadtest/scenarios/index.ts";
import { compileRequest, keyRef } from "../loadtest/template.ts";
import type { RequestTemplate } from "../loadtest/template.ts";

const fixture = async (name: string): Promise<unknown> => Bun.file(`${import.meta.dir}/fixtures/${name}`).json();
const driver = findView("driver_hourly_stats");

function split(bytes: Uint8Array): { head: string; body: Uint8Array } {
  const text = new TextDecoder().decode(bytes);
  const at = text.indexOf("\r\n\r\n");
  return { head: text.slice(0, at), body: bytes.subarray(Buffer.byteLength(text.slice(0, at + 4))) };
}

function jsonBody(t: RequestTemplate, indexes: number[]): unknown {
  return JSON.parse(new TextDecoder().decode(split(t.render(indexes)).body));
}

function compileJson(body: unknown, entities = 1_000_000): RequestTemplate {
  return compileRequest({ tag: "t", weight: 1, method: "POST", path: "/v1/lookup", body: { encoding: "json", value: body } }, DEMO_KEY_SPACES, entities, "127.0.0.1:6566");
}

const baseOptions: RunOptions = {
  scenario: "lookup",
  target: new URL("http://127.0.0.1:6566"),
  mode: "open",
  rate: 100,
  connections: 1,
  durationMs: 1000,
  warmupMs: 0,
  timeoutMs: 1000,
  gcPaceMs: 0,
  keys: "uniform",
  entities: 1_000_000,
  seed: "1",
  batch: undefined,
  writeRatio: 0.1,
  view: "driver_hourly_stats",
  features: undefined,
  path: "/healthz",
  maxRequests: 1000,
  label: undefined,
};

describe("request templates", () => {
  test("key slots keep a fixed Content-Length and render valid JSON for any key", () => {
    const t = compileJson(lookupBody(driver, driver.features, 2));
    const { head, body } = split(t.bytes);
    expect(head).toContain(`Content-Length: ${body.length}`);
    expect(head.startsWith("POST /v1/lookup HTTP/1.1\r\nHost: 127.0.0.1:6566\r\n")).toBe(true);
    for (const idx of [0, 9, 999_999]) {
      const out = t.render([idx, 5]);
      expect(out.length).toBe(t.bytes.length);
      expect(jsonBody(t, [idx, 5])).toMatchObject({ entities: [{ driver_id: 1001 + idx }, { driver_id: 1006 }] });
    }
  });

  test("string keys render as quoted strings, composite keys share one draw per row", () => {
    const affinity = findView("driver_customer_affinity");
    const t = compileJson(lookupBody(affinity, affinity.features, 1), 10_000);
    expect(jsonBody(t, [42])).toMatchObject({ entities: [{ driver_id: 1043, customer_id: "c42" }] });
    expect(jsonBody(t, [9999])).toMatchObject({ entities: [{ driver_id: 11000, customer_id: "c9999" }] });
  });

  test("a key space the demo data holds fewer keys of wraps round within it (claims: 2,000, whatever --entities)", () => {
    const claim = compileJson({ view: "claims", entity: { claim_id: keyRef(0, 2) }, k: 10 }, 10_000);
    expect(jsonBody(claim, [1999])).toMatchObject({ entity: { claim_id: 2000 } });
    // Claim 7,001 is not in the demo data: 79 of 100 match requests were 404s.
    expect(jsonBody(claim, [7000])).toMatchObject({ entity: { claim_id: 1001 } });
  });

  test("MessagePack bodies carry int keys as uint32 and decode to the JSON shape", () => {
    const body = { features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: keyRef(0, 0) }, { driver_id: keyRef(1, 0) }] };
    const t = compileRequest({ tag: "m", weight: 1, method: "POST", path: "/v1/lookup", headers: { Accept: "application/msgpack" }, body: { encoding: "msgpack", value: body } }, DEMO_KEY_SPACES, 1_000_000, "h");
    const { head, body: bytes } = split(t.render([0, 999_999]));
    expect(head).toContain("Content-Type: application/msgpack");
    expect(head).toContain("Accept: application/msgpack");
    expect(decode(bytes)).toEqual({ features: ["driver_hourly_stats:conv_rate"], entities: [{ driver_id: 1001 }, { driver_id: 1_001_000 }] });
  });

  test("MessagePack refuses string keys (they cannot be fixed-width)", () => {
    const body = { entities: [{ customer_id: keyRef(0, 1) }] };
    expect(() => compileRequest({ tag: "m", weight: 1, method: "POST", path: "/", body: { encoding: "msgpack", value: body } }, DEMO_KEY_SPACES, 10, "h")).toThrow("int join keys");
  });

  test("filling draws keys from the sampler and the PRNG, reproducibly", () => {
    const { templates } = buildTemplates({ ...baseOptions, batch: 3 });
    const t = templates[0] as RequestTemplate;
    const draw = (seed: number) => {
      const rng = new Prng(seed);
      const buf = t.bytes.slice();
      const keys = { description: "", next: (r: Prng) => r.nextInt(1_000_000) };
      t.fill(buf, rng, keys, new Float64Array(3));
      return new TextDecoder().decode(buf);
    };
    expect(draw(1)).toBe(draw(1));
    expect(draw(1)).not.toBe(draw(2));
  });
});

describe("scenario bodies match the shared fixtures (also used by k6 and the server test)", () => {
  test("single lookup", async () => {
    expect(jsonBody(compileJson(lookupBody(driver, driver.features, 1)), [0])).toEqual(await fixture("lookup-single.json"));
  });
  test("batch lookup of 100 entities", async () => {
    const idx = Array.from({ length: 100 }, (_, i) => i);
    expect(jsonBody(compileJson(lookupBody(driver, driver.features, 100)), idx)).toEqual(await fixture("lookup-batch.json"));
  });
  test("Feast get-online-features", async () => {
    expect(jsonBody(compileJson(feastBody(driver, driver.features, 3)), [0, 1, 2])).toEqual(await fixture("feast-get-online-features.json"));
  });
  test("push rows have the fixture's fields and value types", async () => {
    const built = jsonBody(compileJson(pushBody(driver, 2, new Prng("x"))), [0, 1]) as { featureView: string; rows: Record<string, unknown>[] };
    const fix = (await fixture("push.json")) as typeof built;
    expect(built.featureView).toBe(fix.featureView);
    const shape = (row: Record<string, unknown>) => Object.entries(row).map(([k, v]) => [k, Array.isArray(v) ? `array<${typeof v[0]}>` : typeof v]);
    for (const [i, row] of built.rows.entries()) expect(shape(row)).toEqual(shape(fix.rows[i] ?? {}));
  });
});

describe("scenario registry", () => {
  test("every scenario builds templates with positive weights", () => {
    for (const name of SCENARIOS.keys()) {
      const { templates, weights } = buildTemplates({ ...baseOptions, scenario: name });
      expect(templates.length).toBeGreaterThan(0);
      expect(weights.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    }
  });

  test("mixed splits weight by --write-ratio and tags reads and writes", () => {
    const { templates, weights } = buildTemplates({ ...baseOptions, scenario: "mixed", writeRatio: 0.25 });
    const byTag = new Map<string, number>();
    for (const [i, t] of templates.entries()) byTag.set(t.tag, (byTag.get(t.tag) ?? 0) + (weights[i] ?? 0));
    expect(byTag.get("lookup")).toBeCloseTo(0.75);
    expect(byTag.get("push")).toBeCloseTo(0.25);
  });

  test("batch-lookup defaults to 100 rows; unknown scenarios and features are named", () => {
    expect(buildTemplates({ ...baseOptions, scenario: "batch-lookup" }).batch).toBe(100);
    expect(() => buildTemplates({ ...baseOptions, scenario: "nope" })).toThrow('unknown "nope"');
    expect(() => buildTemplates({ ...baseOptions, features: ["conv_rate", "bogus"] })).toThrow('"bogus"');
  });
});

describe("demo catalogue", () => {
  test("covers every view of the example registry, each join key with a demo key space", () => {
    expect(DEMO_VIEWS.map((v) => v.name)).toEqual(["driver_hourly_stats", "customer_profile", "fraud_signals", "driver_customer_affinity", "claims"]);
    expect(findView("driver_customer_affinity").joinKeys).toEqual([
      { name: "driver_id", space: 0 },
      { name: "customer_id", space: 1 },
    ]);
    expect(findView("driver_hourly_stats").features).toHaveLength(10);
    expect(DEMO_KEY_SPACES[0]).toEqual({ kind: "int", base: 1001 });
  });
});
