import { writeSync } from "node:fs";
import { encode } from "@msgpack/msgpack";
import { buildQuiver } from "../../src/app.ts";
import { MsgpackReader } from "../../src/api/http/msgpack-reader.ts";
import { loadConfig } from "../../src/config/config.ts";
import { ALLOC_CASES, type AllocCase, MARK_EVERY } from "./gc-log.ts";

/**
 * Child process of the `lookup-alloc` suite: drives N lookups through the HTTP
 * edge's native handler in-process (no socket). With BUN_JSC_logGC=1 (set by
 * the parent) JavaScriptCore logs each collection with the bytes allocated
 * since the previous one; the child writes a mark every MARK_EVERY requests to
 * the same stream, and the parent divides the bytes of whole GC cycles by the
 * requests they spanned: allocation per lookup, independent of machine load.
 *
 *   bun bench/alloc/drive-lookups.ts <case> <requests>
 *
 * Cases: `harness` (build the Request, answer a prebuilt body: the driver's own
 * cost), `parse` (harness + parsing the body: the protocol floor's work), each
 * also with a MessagePack body (`-msgpack`), `json-1`, `json-100`,
 * `msgpack-1`, `msgpack-100` (Quiver's /v1/lookup) and `feast-1`, `feast-100`
 * (/get-online-features, columnar entities), and `json-1-l1`, `json-100-l1`
 * (/v1/lookup answered from L1 cache hits: the warm-up fills the cache), and
 * `json-100-l1-partial` (99 hits and one key L1 lacks, read through from the
 * store: a driver with no row, new in each request).
 */

const ENTITIES = 10_000;
const FIRST_ID = 1001;
const FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips", "is_active", "city", "vehicle_type", "rating", "hours_online_7d", "recent_trip_ids", "rating_history"].map(
  (f) => `driver_hourly_stats:${f}`,
);
/** Distinct prebuilt bodies cycled through, so keys vary without building bodies in the window. */
const BODIES = 256;

/** A driver id no demo row has: the partial case's key L1 lacks, one per request (its read caches a negative entry). */
const COLD_FIRST_ID = 50_000_000;

/**
 * `count` request bodies of `rows` entities each; with `coldAt` >= 0, entity
 * `coldAt` of body b is a driver never read before (COLD_FIRST_ID + b).
 */
function bodies(rows: number, msgpack: boolean, feast: boolean, count = BODIES, coldAt = -1): (string | Uint8Array)[] {
  const out: (string | Uint8Array)[] = [];
  let id = 0;
  for (let b = 0; b < count; b++) {
    const ids: number[] = [];
    for (let r = 0; r < rows; r++) ids.push(r === coldAt ? COLD_FIRST_ID + b : FIRST_ID + ((id++ * 7919) % ENTITIES));
    // Feast's columnar form for /get-online-features, Quiver's row form for /v1/lookup.
    const body = { features: FEATURES, entities: feast ? { driver_id: ids } : ids.map((driver_id) => ({ driver_id })) };
    // As bytes, as a body read off a socket is (a string body would let req.json() skip the UTF-8 decoding a real request costs).
    out.push(msgpack ? encode(body) : new TextEncoder().encode(JSON.stringify(body)));
  }
  return out;
}

async function main(): Promise<void> {
  const which = process.argv[2] as AllocCase;
  const n = Number(process.argv[3] ?? 20_000);
  if (!ALLOC_CASES.includes(which) || !(n > 0)) throw new Error(`usage: drive-lookups.ts <${ALLOC_CASES.join("|")}> <requests>`);
  const l1 = which.endsWith("-l1") || which.endsWith("-l1-partial");
  // One key of each request's hundred missing from L1 (read through from the store), the rest hits: bodies are not cycled.
  const partial = which.endsWith("-l1-partial");
  const warmCount = Math.min(n, 5000);
  const quiver = await buildQuiver(loadConfig(["--demo-entities", String(ENTITIES), ...(l1 ? ["--cache-l1", "on"] : [])], {}));
  const feast = which.startsWith("feast");
  const route = feast ? "/get-online-features" : "/v1/lookup";
  const lookupHandler = quiver.http.nativeRoutes[route]?.POST;
  if (!lookupHandler) throw new Error(`no native ${route} route`);
  const msgpack = which.includes("msgpack");
  const rows = which.includes("-100") ? 100 : 1;
  const reqBodies = partial ? bodies(rows, msgpack, feast, warmCount + n, rows >> 1) : bodies(rows, msgpack, feast);
  const type = msgpack ? "application/msgpack" : "application/json";
  // Each body's headers carry its Content-Length, as every request off a socket does: without it the
  // edge takes its fallback for bodies of unknown length (read the bytes, then parse), which a real client never triggers.
  const headersOf = reqBodies.map((b) => ({ "content-type": type, accept: type, "content-length": String(typeof b === "string" ? Buffer.byteLength(b) : b.byteLength) }));
  const url = `http://127.0.0.1${route}`;

  // One real answer first: the baselines answer a body of the same size.
  const probe = await lookupHandler(new Request(url, { method: "POST", headers: headersOf[0]!, body: reqBodies[0]! }));
  const answer = new Uint8Array(await probe.arrayBuffer());
  if (probe.status !== 200) throw new Error(`lookup answered ${probe.status}: ${new TextDecoder().decode(answer).slice(0, 300)}`);
  const answerText = msgpack ? answer : new TextDecoder().decode(answer);
  const fixed = async (_req: Request): Promise<Response> => new Response(answerText, { headers: { "content-type": type } });
  const decoder = new MsgpackReader({ maxStrLength: 1 << 20, maxArrayLength: 1 << 20, maxMapLength: 1 << 16, maxDepth: 64 });
  const parsing = async (req: Request): Promise<Response> => {
    (msgpack ? decoder.decode(new Uint8Array(await req.arrayBuffer())) : await req.json()) as unknown;
    return new Response(answerText, { headers: { "content-type": type } });
  };
  const handler = which.startsWith("harness") ? fixed : which.startsWith("parse") ? parsing : lookupHandler;

  const run = async (count: number, marks: boolean, from: number) => {
    for (let i = 0; i < count; i++) {
      // Synchronous marks interleave with the GC log on stderr, so the parent
      // knows between which requests each collection happened.
      if (marks && i % MARK_EVERY === 0) writeSync(2, `AT ${i}\n`);
      const b = partial ? from + i : i % BODIES;
      const res = await handler(new Request(url, { method: "POST", headers: headersOf[b]!, body: reqBodies[b]! }));
      if (res.status !== 200) throw new Error(`request ${i}: HTTP ${res.status}`);
    }
  };
  await run(warmCount, false, 0); // warm up: JIT tiers, lazily built state (and, with L1, the cache filled)
  Bun.gc(true);
  writeSync(2, `ALLOC-WINDOW START ${n}\n`);
  await run(n, true, warmCount);
  writeSync(2, `AT ${n}\nALLOC-WINDOW END\n`);
  process.stdout.write(`${JSON.stringify({ case: which, requests: n, answerBytes: answer.byteLength })}\n`);
  await quiver.close();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`drive-lookups: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
