/**
 * The baseline server: a bare Bun.serve answering every request with one
 * precomputed body (`--body-bytes N` of JSON-looking filler, or `--body-file F`).
 * Anything Quiver's server is compared with is this, on the same core, in the same run.
 * With --parse-json it also parses each JSON request body: the floor for any
 * server answering POST lookups, which shows how much of a gap is protocol.
 * With --status 503 it answers like a shedding server (503 + Retry-After, body unread):
 * the floor of what any refusal costs on this HTTP stack.
 * With --batch-answers N it holds answers as Quiver does by default (runtime/turn-batch.ts):
 * what the same batching buys a server that does no lookup work.
 * Usage: bun bench/servers/bare-server.ts --port 0 --body-bytes 420 [--parse-json [--batch-answers 16]] [--status 503]
 */
import { parseArgs } from "node:util";
import { TurnBatch } from "../../src/runtime/turn-batch.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    port: { type: "string", default: "0" },
    "body-bytes": { type: "string", default: "2" },
    "body-file": { type: "string" },
    "content-type": { type: "string", default: "application/json" },
    // Also read and parse the JSON request, as any server answering a POST lookup must.
    "parse-json": { type: "boolean", default: false },
    status: { type: "string", default: "200" },
    "batch-answers": { type: "string", default: "0" },
  },
});

function filler(n: number): Uint8Array {
  if (n < 2) return new TextEncoder().encode("{}".slice(0, n));
  const s = `{"x":"${"a".repeat(Math.max(0, n - 8))}"}`;
  return new TextEncoder().encode(s.length === n ? s : `${s}${" ".repeat(Math.max(0, n - s.length))}`.slice(0, n));
}

const body = values["body-file"] !== undefined ? new Uint8Array(await Bun.file(values["body-file"]).arrayBuffer()) : filler(Number(values["body-bytes"]));
const status = Number(values.status);
if (!Number.isInteger(status) || status < 200 || status > 599) throw new Error(`--status: expected an HTTP status, got ${values.status}`);
const headers: Record<string, string> = status === 503 ? { "Content-Type": values["content-type"], "Retry-After": "1" } : { "Content-Type": values["content-type"] };
const init = { status, headers };
const batchSize = Number(values["batch-answers"]);
const batch = batchSize > 1 ? new TurnBatch<Response>({ max: batchSize, atOnce: 4, maxHoldMs: 0.2 }) : null;

const server = Bun.serve({
  port: Number(values.port),
  hostname: "127.0.0.1",
  // Readiness for the harness, whatever --status says.
  routes: { "/__ready": new Response("ok") },
  fetch: values["parse-json"]
    ? async function parseThenAnswer(req: Request): Promise<Response> {
        if (req.method === "POST") await req.json();
        const res = new Response(body, init);
        return batch === null ? res : batch.hold(res);
      }
    : function answer(): Response {
        return new Response(body, init);
      },
});
console.log(`bare server listening on ${server.port} (body ${body.length} bytes)`);
