import { Redis } from "ioredis";
import type { RedisSourceSettings } from "./compile-sources.ts";
import { type DeadLetter, type DeadLetterQueue, deadLetterOf, type NewDeadLetter } from "./dead-letters.ts";
import type { Delivery, SourceLag, StreamPublisher, StreamSource } from "./stream-source.ts";

type RawEntry = [Buffer, Buffer[] | null];

const EMPTY = new Uint8Array(0);

function connect(url: string, name: string): Redis {
  // Loopback/cluster-local: fail fast instead of queueing commands while down, reconnect forever.
  const redis = new Redis(url, { connectionName: name, maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
  // Connection errors surface as rejected commands, which the consumer handles; no unhandled 'error' events.
  redis.on("error", () => undefined);
  return redis;
}

/**
 * Entries of the one stream in an XREADGROUP reply: RESP2 answers
 * `[[key, entries]]`, RESP3 a map that arrives as `[key, entries]`.
 */
function streamEntries(reply: unknown): RawEntry[] {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  const first = reply[0] as unknown;
  if (Array.isArray(first)) return (first[1] as RawEntry[] | undefined) ?? [];
  return (reply[1] as RawEntry[] | undefined) ?? [];
}

function fieldValue(fields: Buffer[] | null, name: string): Uint8Array | undefined {
  if (!fields) return undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]!.toString() === name) return fields[i + 1]!;
  return undefined;
}

/**
 * A Redis stream read by a consumer group: `XREADGROUP` in batches, `XACK`
 * once the store has the batch, `XAUTOCLAIM` of entries another consumer left
 * pending longer than `claimIdleMs` (it died), and a re-read of this
 * consumer's own pending entries after a restart or a `retryLater`. Two
 * connections: blocking reads must not delay acks.
 */
export class RedisStreamSource implements StreamSource {
  readonly engine = "redis" as const;
  private readonly reader: Redis;
  private readonly control: Redis;
  /** Re-read this consumer's own pending entries before new ones. */
  private ownPendingFirst = true;
  private nextClaimAt = 0;
  private retryAt = 0;
  private closed = false;

  constructor(
    readonly name: string,
    private readonly settings: RedisSourceSettings,
    private readonly consumer: string,
    private readonly clock: () => number = Date.now,
  ) {
    this.reader = connect(settings.url, `quiver-ingest-${name}-read`);
    this.control = connect(settings.url, `quiver-ingest-${name}`);
  }

  async start(): Promise<void> {
    try {
      await this.control.xgroup("CREATE", this.settings.stream, this.settings.group, "0", "MKSTREAM");
    } catch (e) {
      if (!String((e as Error).message).includes("BUSYGROUP")) throw e;
    }
  }

  async read(max: number, waitMs: number): Promise<readonly Delivery[]> {
    if (this.closed) return [];
    const { stream, group } = this.settings;
    const now = this.clock();
    if (this.ownPendingFirst && now >= this.retryAt) {
      const entries = streamEntries(await this.reader.callBuffer("XREADGROUP", "GROUP", group, this.consumer, "COUNT", max, "STREAMS", stream, "0"));
      if (entries.length > 0) return this.withDeliveryCounts(entries);
      this.ownPendingFirst = false;
    }
    if (now >= this.nextClaimAt) {
      this.nextClaimAt = now + Math.max(100, this.settings.claimIdleMs / 2);
      const claimed = (await this.reader.callBuffer("XAUTOCLAIM", stream, group, this.consumer, this.settings.claimIdleMs, "0", "COUNT", max)) as [
        Buffer,
        RawEntry[],
        Buffer[]?,
      ];
      const entries = claimed[1] ?? [];
      if (entries.length > 0) {
        // More may be left: come back for them before new entries.
        this.nextClaimAt = 0;
        return this.withDeliveryCounts(entries);
      }
    }
    const wait = this.ownPendingFirst ? Math.min(waitMs, Math.max(1, this.retryAt - now)) : waitMs;
    const entries = streamEntries(await this.reader.callBuffer("XREADGROUP", "GROUP", group, this.consumer, "COUNT", max, "BLOCK", Math.max(1, Math.round(wait)), "STREAMS", stream, ">"));
    const out = new Array<Delivery>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const [id, fields] = entries[i]!;
      out[i] = { id: id.toString(), payload: fieldValue(fields, this.settings.field) ?? EMPTY, deliveries: 1 };
    }
    return out;
  }

  /** Pending entries read again: their delivery counts come from XPENDING. */
  private async withDeliveryCounts(entries: readonly RawEntry[]): Promise<Delivery[]> {
    const { stream, group } = this.settings;
    const live = entries.filter((e) => e[1] !== null);
    const gone = entries.filter((e) => e[1] === null).map((e) => e[0].toString());
    // Trimmed or deleted while pending: nothing left to deliver.
    if (gone.length > 0) await this.control.xack(stream, group, ...gone);
    if (live.length === 0) return [];
    const first = live[0]![0].toString();
    const last = live[live.length - 1]![0].toString();
    const pending = (await this.control.xpending(stream, group, first, last, live.length * 2, this.consumer)) as [string, string, number, number][];
    const counts = new Map<string, number>();
    for (const p of pending) counts.set(p[0], Number(p[3]));
    return live.map(([id, fields]) => {
      const key = id.toString();
      return { id: key, payload: fieldValue(fields, this.settings.field) ?? EMPTY, deliveries: counts.get(key) ?? 1 };
    });
  }

  async ack(deliveries: readonly Delivery[]): Promise<void> {
    if (deliveries.length === 0) return;
    await this.control.xack(this.settings.stream, this.settings.group, ...deliveries.map((d) => d.id));
  }

  reject(deliveries: readonly Delivery[]): Promise<void> {
    return this.ack(deliveries);
  }

  async retryLater(_deliveries: readonly Delivery[], delayMs: number): Promise<void> {
    // They stay in this consumer's pending list; read them again once the delay is over.
    this.ownPendingFirst = true;
    this.retryAt = this.clock() + delayMs;
  }

  async lag(): Promise<SourceLag> {
    const groups = (await this.control.call("XINFO", "GROUPS", this.settings.stream)) as unknown[][];
    for (const g of groups) {
      const info = new Map<string, unknown>();
      for (let i = 0; i + 1 < g.length; i += 2) info.set(String(g[i]), g[i + 1]);
      if (info.get("name") === this.settings.group) {
        const lag = info.get("lag");
        return { pending: Number(info.get("pending") ?? 0), unprocessed: lag === null || lag === undefined ? null : Number(lag) };
      }
    }
    return { pending: 0, unprocessed: null };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reader.disconnect();
    await this.control.quit().catch(() => undefined);
  }
}

/** Appends payloads with `XADD`, optionally trimming with `MAXLEN ~`. */
export class RedisStreamPublisher implements StreamPublisher {
  private readonly redis: Redis;
  constructor(
    private readonly settings: Pick<RedisSourceSettings, "url" | "stream" | "field">,
    private readonly maxLen?: number,
  ) {
    this.redis = connect(settings.url, "quiver-ingest-publish");
  }

  async publish(payloads: readonly Uint8Array[]): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const p of payloads) {
      if (this.maxLen !== undefined) pipeline.xadd(this.settings.stream, "MAXLEN", "~", this.maxLen, "*", this.settings.field, Buffer.from(p));
      else pipeline.xadd(this.settings.stream, "*", this.settings.field, Buffer.from(p));
    }
    const results = await pipeline.exec();
    const failed = results?.find((r) => r[0] !== null);
    if (failed) throw failed[0];
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => undefined);
  }
}

/** Dead letters as entries of a Redis stream beside the source (`<stream>:dead`). */
export class RedisDeadLetters implements DeadLetterQueue {
  private readonly redis: Redis;
  constructor(
    url: string,
    private readonly stream: string,
  ) {
    this.redis = connect(url, "quiver-ingest-dead-letters");
  }

  async add(letters: readonly NewDeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    const pipeline = this.redis.pipeline();
    const at = String(Date.now());
    for (const l of letters) {
      pipeline.xadd(this.stream, "*", "source", l.source, "reason", l.reason, "path", l.path, "error", l.error, "origin", l.origin, "at", at, "payload", Buffer.from(l.payload));
    }
    const results = await pipeline.exec();
    const failed = results?.find((r) => r[0] !== null);
    if (failed) throw failed[0];
  }

  async list(limit: number, reason?: string): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    const page = reason === undefined ? limit : Math.max(limit, 256);
    // Pages from the oldest; with a reason, past letters of other reasons until `limit` match or the stream ends.
    for (let from = "-"; out.length < limit; ) {
      const entries = (await this.redis.callBuffer("XRANGE", this.stream, from, "+", "COUNT", page)) as RawEntry[];
      for (const [id, fields] of entries) {
        const text = (name: string) => Buffer.from(fieldValue(fields, name) ?? EMPTY).toString();
        if (reason !== undefined && text("reason") !== reason) continue;
        out.push(deadLetterOf(id.toString(), text, fieldValue(fields, "payload") ?? EMPTY));
        if (out.length === limit) break;
      }
      if (entries.length < page) break;
      from = `(${entries[entries.length - 1]![0].toString()}`;
    }
    return out;
  }

  async remove(ids: readonly string[]): Promise<void> {
    if (ids.length > 0) await this.redis.xdel(this.stream, ...ids);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => undefined);
  }
}
