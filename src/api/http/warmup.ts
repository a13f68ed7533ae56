import { encode } from "@msgpack/msgpack";
import type { CompiledView } from "../../registry/index.ts";
import type { SampledEntity, ViewSample, WarmupShape } from "../../serving/index.ts";
import type { NativeRoutes } from "./app.ts";
import { MSGPACK } from "./body.ts";

/**
 * Start-up warm-up of the HTTP edge: lookups the process sends its own hot
 * routes, in process, before it listens. A fresh JavaScriptCore process runs
 * the lookup path in its interpreter and baseline tiers until each function
 * has run often enough to be optimised: measured at 28k lookups/s against a
 * just-started server (1M entities, the load generator itself warmed on
 * another server first), the first second's p99 was 184–425 ms (ten runs)
 * against 2–16 ms in the seconds after; warmed with `json` (50,000), 8–15 ms. A pod the autoscaler adds under load
 * takes that hit on its first requests. The warm-up runs the same code (route,
 * body parse, plan, store read, encoders) on stored entities
 * (serving/warmup-entities.ts), for the request shapes asked for
 * (WARMUP_SHAPES), so the hit lands before the port opens. The gRPC edge has
 * its own (api/grpc/warmup.ts).
 */
export interface WarmupOptions {
  /** Lookups to send (0: none). */
  readonly lookups: number;
  /** Which requests (default json alone; see WARMUP_SHAPES for what warming more costs). */
  readonly shapes?: readonly WarmupShape[];
  /** Lookups in flight at once (default 16: each loop turn serves that many, as under load). */
  readonly concurrency?: number;
  /** Stops after this long whatever is left (default 15 s): a slow store cannot hold start-up. */
  readonly maxMs?: number;
}

export interface WarmupReport {
  readonly lookups: number;
  readonly byStatus: Readonly<Record<string, number>>;
  readonly ms: number;
}

/** A lookup the warm-up sends, prepared once. */
interface WarmupRequest {
  readonly path: string;
  readonly body: Uint8Array;
  /** With Content-Length, as a socket's request has: the body is read the way a client's is (body.ts). */
  readonly headers: Readonly<Record<string, string>>;
}

const utf8 = new TextEncoder();

function request(path: string, body: string | Uint8Array, headers: Readonly<Record<string, string>>): WarmupRequest {
  const bytes = typeof body === "string" ? utf8.encode(body) : body;
  return { path, body: bytes, headers: { ...headers, "content-length": String(bytes.byteLength) } };
}

/** Sends `o.lookups` lookups through `routes` (Bun.serve's native routes: the same handlers sockets reach). */
export async function warmUp(routes: NativeRoutes, samples: readonly ViewSample[], o: WarmupOptions): Promise<WarmupReport> {
  const started = performance.now();
  const maxMs = o.maxMs ?? 15_000;
  const byStatus: Record<string, number> = {};
  const shapes = new Set<WarmupShape>(o.shapes ?? ["json"]);
  const requests = samples.flatMap((s) => requestsFor(s.view, s.entities, shapes));
  if (o.lookups <= 0 || requests.length === 0) return { lookups: 0, byStatus, ms: 0 };
  let next = 0;
  let sent = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      // Each lookup in its own loop turn, as a socket's request arrives: chained in microtasks they
      // would make one endless turn, which the CPU-overload signal rightly reads as overload (503s).
      await nextTurn();
      if (next >= o.lookups || performance.now() - started >= maxMs) return;
      const r = requests[next++ % requests.length]!;
      const serve = routes[r.path]?.POST;
      if (serve === undefined) throw new Error(`warm-up: no native route POST ${r.path}`);
      const res = await serve(new Request(`http://warmup.invalid${r.path}`, { method: "POST", headers: r.headers, body: r.body }));
      await res.arrayBuffer();
      byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
      sent++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency ?? 16) }, worker));
  return { lookups: sent, byStatus, ms: Math.round(performance.now() - started) };
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The requests for one view, by shape: `json` single-entity /v1/lookup (the
 * common call), `msgpack` the same answered in MessagePack (JSON request, and
 * MessagePack request), `feast` /get-online-features, `batch` 20 entities.
 */
function requestsFor(view: CompiledView, entities: readonly SampledEntity[], shapes: ReadonlySet<WarmupShape>): WarmupRequest[] {
  const features = view.features.map((f) => `${view.name}:${f.name}`);
  const row = (e: SampledEntity) => Object.fromEntries(view.joinKeys.map((k) => [k.name, e.get(k.name)]));
  const json = { "content-type": "application/json" };
  const out: WarmupRequest[] = [];
  entities.forEach((e, i) => {
    const one = { features, entities: [row(e)] };
    if (shapes.has("json")) out.push(request("/v1/lookup", JSON.stringify(one), json));
    if (shapes.has("msgpack")) {
      out.push(request("/v1/lookup", JSON.stringify(one), { ...json, accept: MSGPACK }));
      if (i % 2 === 1) out.push(request("/v1/lookup", encode(one), { "content-type": MSGPACK, accept: MSGPACK }));
    }
    const columns = Object.fromEntries(view.joinKeys.map((k) => [k.name, [e.get(k.name)]]));
    if (shapes.has("feast")) out.push(request("/get-online-features", JSON.stringify({ features, entities: columns }), json));
    if (shapes.has("batch") && i % 8 === 0) {
      const batch = Array.from({ length: 20 }, (_, j) => row(entities[(i + j) % entities.length]!));
      out.push(request("/v1/lookup", JSON.stringify({ features, entities: batch }), json));
    }
  });
  return out;
}
