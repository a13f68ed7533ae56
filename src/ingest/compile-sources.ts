import { type Issue, invalidAll } from "../errors/index.ts";
import type { FeatureValue } from "../kv/kv-node.ts";
import { isNumeric, parseDurationMs, type Registry } from "../registry/index.ts";
import { type ReadOptions, readOffThread, readTextFile, type TextReader } from "../runtime/index.ts";
import { CoercionError, coercerFor, keyCoercerFor } from "./coerce.ts";
import { CompiledMapping, compilePath, eventTimeParser, type FieldMapping } from "./mapping.ts";
import { DEFAULT_DEAD_LETTER_RETENTION, type DeadLetterRetention } from "./dead-letters.ts";
import { DEFAULT_WINDOW_MAX_BYTES } from "./idempotency-window.ts";
import { natsServerIds, natsShareServer, redisServerId } from "./server-address.ts";
import type { MappingDef, SourceDef, SourcesDef } from "./sources-definitions.ts";

export interface RedisSourceSettings {
  readonly url: string;
  readonly stream: string;
  readonly group: string;
  readonly field: string;
  readonly claimIdleMs: number;
  readonly deadLetterStream: string;
  /** Largest entry, all its fields' names and values (`maxEventBytes`): a larger one is dead-lettered `too_large`. */
  readonly maxEventBytes: number;
}

export interface NatsSourceSettings {
  readonly servers: string;
  readonly stream: string;
  readonly consumer: string;
  readonly subject: string;
  readonly ackWaitMs: number;
  /** The durable's max_ack_pending (shared by every pod): `nats.maxAckPending`, default 4 × batchSize. */
  readonly maxAckPending: number;
  readonly deadLetterStream: string;
  /** Largest payload (`maxEventBytes`): a larger one is dead-lettered `too_large`. */
  readonly maxEventBytes: number;
}

/** A source ready to run: engine settings with defaults filled, mappings compiled against the registry. */
export interface CompiledSource {
  readonly name: string;
  readonly engine: "redis" | "nats";
  readonly redis?: RedisSourceSettings;
  readonly nats?: NatsSourceSettings;
  readonly format: "json" | "msgpack";
  readonly batchSize: number;
  readonly maxDeliver: number;
  /** Age (from its publication) past which a message delivered more than maxDeliver times is dead-lettered when read again. */
  readonly retryForMs: number;
  readonly dedupWindowMs: number;
  /** The namespace of this source's idempotency keys: its name unless `dedupScope` names one shared with other sources. */
  readonly dedupScope: string;
  /** Estimated bytes of idempotency keys the window holds per view (IdempotencyWindow). */
  readonly dedupMaxBytes: number;
  readonly deadLetterRetention: DeadLetterRetention;
  readonly mappings: readonly CompiledMapping[];
  /** The definition as written (the producer generates payloads from it). */
  readonly definition: SourceDef;
}

const DEFAULT_BATCH = 500;
/** NATS's default max_payload: one event past it was read, mapped and written whatever its size. */
export const DEFAULT_MAX_EVENT_BYTES = 1 << 20;
const MIN_EVENT_BYTES = 1024;
const MAX_EVENT_BYTES = 64 << 20;
const DEFAULT_MAX_DELIVER = 5;
const DEFAULT_RETRY_FOR_MS = 6 * 3600_000;
/** Shortest dead-letter age limit: letters must live long enough for someone to look at them. */
const MIN_DEAD_LETTER_AGE_MS = 60_000;

/** read-sources.ts's reader, run in a worker: the YAML parser and TypeBox never load in the server's own heap. */
const SOURCES_READER: TextReader = { module: new URL("./read-sources.ts", import.meta.url).href, name: "readSourcesText" };

/**
 * Reads and compiles a sources file; throws QuiverError `invalid_sources`
 * naming every problem with its path. The text is parsed and its structure
 * checked in a worker (read-sources.ts), its meaning compiled here.
 */
export async function loadSourcesFile(path: string, registry: Registry, options: ReadOptions = {}): Promise<CompiledSource[]> {
  const text = await readTextFile(path);
  if (text === undefined) throw invalidAll("invalid_sources", [{ path: "(file)", message: `sources file not found: ${path}` }]);
  return compileSourcesDef(await readOffThread<SourcesDef>(SOURCES_READER, text, path, options), registry);
}

/** Compiles sources whose structure is checked (read-sources.ts) against the registry: views, features, mappings, engines. */
export function compileSourcesDef(def: SourcesDef, registry: Registry): CompiledSource[] {
  const issues: Issue[] = [];
  const names = new Set<string>();
  const out: CompiledSource[] = [];
  // Sources may share a dead-letter stream; each add trims it to its own source's limits, so they must agree.
  const paths: string[] = [];
  def.sources.forEach((s, i) => {
    const path = `sources[${i}]`;
    if (names.has(s.name)) issues.push({ path: `${path}.name`, message: `duplicate source "${s.name}"` });
    names.add(s.name);
    const compiled = compileSource(s, path, registry, issues);
    if (!compiled) return;
    const mine = compiled.deadLetterRetention;
    const seen = out.find((o) => sameServer(o, compiled) && deadLetterStreamOf(o) === deadLetterStreamOf(compiled));
    if (seen !== undefined && (seen.deadLetterRetention.maxLetters !== mine.maxLetters || seen.deadLetterRetention.maxAgeMs !== mine.maxAgeMs)) {
      issues.push({ path: `${path}.deadLetters`, message: `shares its dead-letter stream with source "${seen.name}", whose deadLetters limits differ: give both the same` });
    }
    out.push(compiled);
    paths.push(path);
  });
  out.forEach((c, i) => {
    // Pods running one file share a group (that is scaling out); two sources of one file sharing it split its events.
    const first = out.slice(0, i).find((o) => sameServer(o, c) && streamOf(o) === streamOf(c) && readerOf(o) === readerOf(c));
    if (first === undefined) return;
    const [field, what] = c.redis ? ["redis.group", `group "${c.redis.group}"`] : ["nats.consumer", `durable consumer "${c.nats!.consumer}"`];
    issues.push({
      path: `${paths[i]}.${field}`,
      message:
        `reads stream "${streamOf(c)}" through ${what}, as source "${first.name}" does${sameText(first, c) ? "" : ` (on the same server: ${serverText(first)} and ${serverText(c)})`}: it hands each message to one of its consumers, ` +
        "so each source would get only part of the events (the rest acknowledged through the other's mappings, never its own); give each source its own, or map both sources' views in one source",
    });
  });
  out.forEach((c, i) => {
    const feeds = out.find((o) => sameServer(o, c) && streamOf(o) === deadLetterStreamOf(c));
    if (feeds === undefined) return;
    const engine = c.redis ? "redis" : "nats";
    const named = c.definition[engine]?.deadLetterStream === undefined ? ` (the default for stream "${streamOf(c)}")` : "";
    issues.push({
      path: `${paths[i]}.${engine}.deadLetterStream`,
      message:
        `"${deadLetterStreamOf(c)}"${named} is the stream source "${feeds.name}" reads: ` +
        "its letters would be read back as events (each dead-lettered again, without end) and the letters' retention would trim that stream's unread events; name another stream",
    });
  });
  if (issues.length > 0) throw invalidAll("invalid_sources", issues);
  return out;
}

/**
 * Whether two sources' engines are one server (and Redis database), however their addresses are spelt
 * (server-address.ts): sources on one server may not share a group or durable (two sources of one file through
 * the same one each got part of the stream: 100 events on one stream feeding two views left 59 rows in one and
 * 41 in the other), nor read a stream another writes its dead letters to (on Redis, one bad event became thousands
 * of letters a second, each read back as another bad event).
 */
function sameServer(a: CompiledSource, b: CompiledSource): boolean {
  if (a.redis && b.redis) return redisServerId(a.redis.url) === redisServerId(b.redis.url);
  if (a.nats && b.nats) return natsShareServer(natsServerIds(a.nats.servers), natsServerIds(b.nats.servers));
  return false;
}

const streamOf = (c: CompiledSource): string => c.redis?.stream ?? c.nats!.stream;
const readerOf = (c: CompiledSource): string => c.redis?.group ?? c.nats!.consumer;
const deadLetterStreamOf = (c: CompiledSource): string => c.redis?.deadLetterStream ?? c.nats!.deadLetterStream;
/** An address as written, its passwords masked: a refused file's message is the server's start-up error, in its logs. */
const serverText = (c: CompiledSource): string => `"${(c.redis?.url ?? c.nats!.servers).replace(/\/\/([^/@:,]*):[^/@,]*@/g, "//$1:***@")}"`;
const sameText = (a: CompiledSource, b: CompiledSource): boolean => (a.redis?.url ?? a.nats!.servers) === (b.redis?.url ?? b.nats!.servers);

function duration(v: number | string | undefined, fallbackMs: number, path: string, issues: Issue[]): number {
  if (v === undefined) return fallbackMs;
  const ms = parseDurationMs(v);
  if (ms === undefined) issues.push({ path, message: `expected seconds or a duration like "30s", got ${JSON.stringify(v)}` });
  return ms ?? fallbackMs;
}

/** Shortest claimIdle: below it, XAUTOCLAIM takes entries other consumers are still writing (at 0, every one). */
const MIN_CLAIM_IDLE_MS = 1000;

function claimIdle(v: number | string | undefined, path: string, issues: Issue[]): number {
  const ms = duration(v, 30_000, path, issues);
  if (ms < MIN_CLAIM_IDLE_MS) {
    issues.push({ path, message: `must be at least 1s (got ${JSON.stringify(v)}): shorter, consumers take each other's entries while they are being written (0: every one)` });
  }
  return ms;
}

function retention(def: SourceDef["deadLetters"], path: string, issues: Issue[]): DeadLetterRetention {
  const maxAgeMs = duration(def?.maxAge, DEFAULT_DEAD_LETTER_RETENTION.maxAgeMs, `${path}.maxAge`, issues);
  if (maxAgeMs > 0 && maxAgeMs < MIN_DEAD_LETTER_AGE_MS) {
    issues.push({ path: `${path}.maxAge`, message: `must be 0 (no age limit) or at least 1m (got ${JSON.stringify(def?.maxAge)}): letters are kept for someone to look at` });
  }
  return { maxLetters: def?.maxLetters ?? DEFAULT_DEAD_LETTER_RETENTION.maxLetters, maxAgeMs: Math.round(maxAgeMs) };
}

function compileSource(s: SourceDef, path: string, registry: Registry, issues: Issue[]): CompiledSource | undefined {
  const before = issues.length;
  const maxEventBytes = s.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  if (maxEventBytes < MIN_EVENT_BYTES || maxEventBytes > MAX_EVENT_BYTES) {
    issues.push({
      path: `${path}.maxEventBytes`,
      message: `must be from ${MIN_EVENT_BYTES} (1 KiB) to ${MAX_EVENT_BYTES} (64 MiB, NATS's largest max_payload), got ${maxEventBytes}: a consumer holds up to batchSize events this large at once`,
    });
  }
  let redis: RedisSourceSettings | undefined;
  let nats: NatsSourceSettings | undefined;
  if (s.engine === "redis") {
    if (!s.redis) issues.push({ path: `${path}.redis`, message: 'is required when engine is "redis"' });
    if (s.nats) issues.push({ path: `${path}.nats`, message: 'is for engine "nats"; this source\'s engine is "redis"' });
    if (s.redis) {
      redis = {
        url: s.redis.url,
        stream: s.redis.stream,
        group: s.redis.group,
        field: s.redis.field ?? "data",
        claimIdleMs: claimIdle(s.redis.claimIdle, `${path}.redis.claimIdle`, issues),
        deadLetterStream: s.redis.deadLetterStream ?? `${s.redis.stream}:dead`,
        maxEventBytes,
      };
    }
  } else {
    if (!s.nats) issues.push({ path: `${path}.nats`, message: 'is required when engine is "nats"' });
    if (s.redis) issues.push({ path: `${path}.redis`, message: 'is for engine "redis"; this source\'s engine is "nats"' });
    if (s.nats) {
      nats = {
        servers: s.nats.servers,
        stream: s.nats.stream,
        consumer: s.nats.consumer,
        subject: s.nats.subject,
        ackWaitMs: duration(s.nats.ackWait, 30_000, `${path}.nats.ackWait`, issues),
        maxAckPending: s.nats.maxAckPending ?? (s.batchSize ?? DEFAULT_BATCH) * 4,
        deadLetterStream: s.nats.deadLetterStream ?? `${s.nats.stream}_DEAD`,
        maxEventBytes,
      };
    }
  }
  const dedupWindowMs = duration(s.dedupWindow, 600_000, `${path}.dedupWindow`, issues);
  const retryForMs = duration(s.retryFor, DEFAULT_RETRY_FOR_MS, `${path}.retryFor`, issues);
  const deadLetterRetention = retention(s.deadLetters, `${path}.deadLetters`, issues);
  const mappings: CompiledMapping[] = [];
  s.mappings.forEach((m, j) => {
    const compiled = compileMapping(m, `${path}.mappings[${j}]`, registry, issues);
    if (compiled) mappings.push(compiled);
  });
  if (issues.length > before) return undefined;
  return {
    name: s.name,
    engine: s.engine,
    ...(redis ? { redis } : {}),
    ...(nats ? { nats } : {}),
    format: s.format ?? "json",
    batchSize: s.batchSize ?? DEFAULT_BATCH,
    maxDeliver: s.maxDeliver ?? DEFAULT_MAX_DELIVER,
    retryForMs,
    dedupWindowMs,
    dedupScope: s.dedupScope ?? s.name,
    dedupMaxBytes: s.dedupMaxBytes ?? DEFAULT_WINDOW_MAX_BYTES,
    deadLetterRetention,
    mappings,
    definition: s,
  };
}

function compileMapping(m: MappingDef, path: string, registry: Registry, issues: Issue[]): CompiledMapping | undefined {
  const view = registry.views.get(m.featureView);
  if (!view) {
    issues.push({ path: `${path}.featureView`, message: `unknown feature view "${m.featureView}" (views: ${[...registry.views.keys()].join(", ")})` });
    return undefined;
  }
  const before = issues.length;
  const fields: FieldMapping[] = [];
  for (const key of view.joinKeys) {
    const p = m.keys[key.name];
    if (p === undefined) issues.push({ path: `${path}.keys`, message: `missing join key "${key.name}" of view "${view.name}"` });
    else fields.push({ name: key.name, path: p, get: compilePath(p), coerce: keyCoercerFor(key), required: true });
  }
  for (const name of Object.keys(m.keys)) {
    if (!view.joinKeys.some((k) => k.name === name)) issues.push({ path: `${path}.keys.${name}`, message: `view "${view.name}" has no join key "${name}"` });
  }
  for (const [name, rule] of Object.entries(m.features)) {
    const fpath = `${path}.features.${name}`;
    const feature = view.featureIndex.get(name);
    if (!feature) {
      issues.push({ path: fpath, message: `view "${view.name}" has no feature "${name}" (features: ${view.features.map((f) => f.name).join(", ")})` });
      continue;
    }
    if (typeof rule === "string") {
      fields.push({ name, path: rule, get: compilePath(rule), coerce: coercerFor(feature.type), required: false });
    } else if ("value" in rule) {
      const constant = checkedConstant(rule.value, feature.type, feature.check, `${fpath}.value`, issues);
      if (constant !== undefined) fields.push({ name, path: `${fpath}.value`, get: () => constant, coerce: (v) => v as FeatureValue, required: false, constant });
    } else {
      if (rule.scale !== undefined && !isNumeric(feature.type) && feature.type.kind !== "float64[]" && feature.type.kind !== "int64[]" && feature.type.kind !== "embedding") {
        issues.push({ path: `${fpath}.scale`, message: `feature "${name}" is ${feature.typeName}; only numeric features scale` });
      }
      fields.push({ name, path: rule.path, get: compilePath(rule.path), coerce: coercerFor(feature.type, rule.scale ?? 1), required: false });
    }
  }
  if (issues.length > before) return undefined;
  const eventTime = { path: m.eventTime.path, get: compilePath(m.eventTime.path), parse: eventTimeParser(m.eventTime.format, m.eventTime.path) };
  const idempotency = m.idempotencyKey === undefined ? undefined : { path: m.idempotencyKey, get: compilePath(m.idempotencyKey) };
  const filter = m.filter === undefined ? undefined : { get: compilePath(m.filter.path), equals: m.filter.equals };
  return new CompiledMapping(view, fields, eventTime, idempotency, filter);
}

function checkedConstant(
  v: unknown,
  type: Parameters<typeof coercerFor>[0],
  check: (v: unknown) => string | undefined,
  path: string,
  issues: Issue[],
): FeatureValue | undefined {
  try {
    const coerced = coercerFor(type)(v);
    const problem = check(coerced);
    if (problem) issues.push({ path, message: problem });
    else return coerced;
  } catch (e) {
    if (!(e instanceof CoercionError)) throw e;
    issues.push({ path, message: e.message });
  }
  return undefined;
}
