import { Prng } from "../../loadtest/prng.ts";

const FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips", "is_active", "city", "vehicle_type", "rating", "hours_online_7d", "recent_trip_ids", "rating_history"].map(
  (f) => `driver_hourly_stats:${f}`,
);

/** The single lookup body (as in test/fixtures/lookup-single.json) with `id` spliced in as a literal. */
/** A /v1/lookup batch body in three parts (rows joined by commas between head and tail; `@` marks a row's id), the shape the generator sends. */
export const BATCH_LOOKUP_PARTS = { head: `{"features":${JSON.stringify(FEATURES)},"entities":[`, row: `{"driver_id":@}`, tail: `],"fillDefaults":true}` } as const;

export function singleLookupBody(id: string): string {
  return `{"features":${JSON.stringify(FEATURES)},"entities":[{"driver_id":${id}}],"fillDefaults":true}`;
}

/**
 * Asks the server a few lookups to learn the answer's size (for the baseline body)
 * and to check it really serves data (statuses), before measuring anything.
 */
export async function probeLookup(url: string, entities: number, rows: number): Promise<{ responseBytes: number; statuses: Record<string, number> }> {
  const rng = new Prng("probe");
  let bytes = 0;
  const statuses: Record<string, number> = {};
  const tries = 20;
  for (let i = 0; i < tries; i++) {
    const ids = Array.from({ length: rows }, () => 1001 + rng.nextInt(entities));
    const body = { features: FEATURES, entities: ids.map((driver_id) => ({ driver_id })), fillDefaults: true };
    const r = await fetch(`${url}/v1/lookup`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`lookup probe: HTTP ${r.status}: ${text.slice(0, 300)}`);
    bytes += Buffer.byteLength(text);
    const parsed = JSON.parse(text) as { rows?: { statuses?: string[] }[] };
    for (const row of parsed.rows ?? []) for (const s of row.statuses ?? []) statuses[s] = (statuses[s] ?? 0) + 1;
  }
  return { responseBytes: Math.round(bytes / tries), statuses };
}

/** The average size of a MessagePack /v1/lookup answer for `rows` entities (the batch baselines' body size). */
export async function probeMsgpackAnswerBytes(url: string, entities: number, rows: number): Promise<number> {
  const rng = new Prng("probe-msgpack");
  let bytes = 0;
  const tries = 20;
  for (let i = 0; i < tries; i++) {
    const ids = Array.from({ length: rows }, () => 1001 + rng.nextInt(entities));
    const body = { features: FEATURES, entities: ids.map((driver_id) => ({ driver_id })), fillDefaults: true };
    const r = await fetch(`${url}/v1/lookup`, { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/msgpack" }, body: JSON.stringify(body) });
    const answer = await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`lookup probe (MessagePack): HTTP ${r.status}`);
    bytes += answer.byteLength;
  }
  return Math.round(bytes / tries);
}
