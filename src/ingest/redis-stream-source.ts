import { Redis } from "ioredis";
import { replyFields } from "../kv/redis-reply.ts";
import type { RedisSourceSettings } from "./compile-sources.ts";
import {
  DEFAULT_DEAD_LETTER_RETENTION,
  type DeadLetter,
  type DeadLetterQueue,
  type DeadLetterRetention,
  deadLetterOf,
  type LetterFilter,
  letterPasses,
  type NewDeadLetter,
} from "./dead-letters.ts";
import { type Delivery, type SourceLag, type StreamPublisher, type StreamSource, TOO_LARGE_KEPT_BYTES } from "./stream-source.ts";

type RawEntry = [Buffer, Buffer[] | null];

const EMPTY = new Uint8Array(0);

/** A non-blocking command unanswered this long fails (the server stalled: SIGSTOP, a partition without RST). */
const COMMAND_TIMEOUT_MS = 5000;
/**
 * Deletes consumer ARGV[2] of group ARGV[1] on stream KEYS[1] if it holds no
 * pending entries, atomically: a DELCONSUMER of one holding entries would drop
 * them from the group's pending list (never delivered again).
 */
const DELETE_IF_EMPTY = `
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1] end
  end
  if name == ARGV[2] then
    if pending == 0 then return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) end
    return -1
  end
end
return -2`;

/** A blocking read unanswered this long past its BLOCK fails, and the reader connection is made again. */
const READ_STALL_MS = 2000;

function connect(url: string, name: string, options: { readonly commandTimeout?: boolean } = {}): Redis {
  // Loopback/cluster-local: fail fast instead of queueing commands while down, reconnect forever.
  const redis = new Redis(url, {
    connectionName: name,
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    lazyConnect: false,
    ...(options.commandTimeout === false ? {} : { commandTimeout: COMMAND_TIMEOUT_MS }),
  });
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
 * How far an entry id's time may lie behind the consumer's clock and still be
 * taken for when the entry was added (30 days), and ahead of it (10 minutes of
 * clock skew between the Redis host and this one).
 */
export const ID_TIME_MAX_AGE_MS = 30 * 24 * 3600_000;
export const ID_TIME_MAX_AHEAD_MS = 10 * 60_000;

/**
 * When the entry was added, from its id `<ms>-<seq>`, if the id can tell: an id
 * Redis made (`*`) starts with its clock, but a producer may XADD its own
 * (`1-1`, `2-0`, a sequence, seconds or microseconds). Such an id read as a time
 * made every entry look 56 years old, and one delivered past maxDeliver was
 * dead-lettered as past `retryFor` the first time this consumer saw it
 * (StreamConsumer.expired). A time further than ID_TIME_MAX_AGE_MS behind `now`
 * or ID_TIME_MAX_AHEAD_MS ahead of it is unknown (undefined): the consumer then
 * counts the age from when it first saw the entry come back. (An auto id added after a
 * producer's future id carries that id's time too: Redis keeps ids increasing.)
 */
export function idTime(id: string, now: number): number | undefined {
  const ms = Number(id.slice(0, id.indexOf("-")));
  return ms >= now - ID_TIME_MAX_AGE_MS && ms <= now + ID_TIME_MAX_AHEAD_MS ? ms : undefined;
}

/** Most bytes of an entry's fields kept in the dead letter of an entry that lacks the source's field. */
const SHOWN_FIELD_BYTES = 64 * 1024;
/** Most field names an unreadable entry's error lists (an entry may have thousands). */
const NAMED_FIELDS = 20;

/** A field's name or value as text, its first `budget` bytes and its size when longer. */
function shown(b: Buffer, budget: number): string {
  return b.byteLength <= budget ? b.toString() : `${b.subarray(0, Math.max(0, budget)).toString()}… (${b.byteLength} bytes)`;
}

/** An entry's fields as JSON (values as text), about `budget` bytes at most: the fields past it are only counted. */
function fieldsShown(fields: Buffer[] | null, budget: number): Uint8Array {
  const had: Record<string, string> = {};
  let i = 0;
  for (; fields !== null && i + 1 < fields.length && budget > 0; i += 2) {
    const name = shown(fields[i]!, Math.min(budget, 256));
    budget -= Math.min(fields[i]!.byteLength, 256);
    had[name] = shown(fields[i + 1]!, budget);
    // And the JSON around them: `"name":"value",`.
    budget -= fields[i + 1]!.byteLength + 6;
  }
  const more = fields === null ? 0 : (fields.length >> 1) - (i >> 1);
  if (more > 0) had["…"] = `${more} more field(s)`;
  return new TextEncoder().encode(JSON.stringify(had));
}

/** The first NAMED_FIELDS field names of an entry, quoted, for an error. */
function fieldNames(fields: Buffer[] | null): string {
  const count = fields === null ? 0 : fields.length >> 1;
  if (count === 0) return "none";
  const names: string[] = [];
  for (let i = 0; i < Math.min(count, NAMED_FIELDS); i++) names.push(`"${shown(fields![2 * i]!, 100)}"`);
  return count > NAMED_FIELDS ? `${names.join(", ")} and ${count - NAMED_FIELDS} more` : names.join(", ");
}

/**
 * An entry as a delivery: its payload is the source's field. An entry without
 * it becomes an unreadable delivery (dead-lettered, naming the field) whose
 * payload shows the fields it had, as JSON (values as text, cut to fit). An
 * entry larger than `maxBytes` (its fields' names and values) becomes a
 * `too_large` one whose payload is the field's first TOO_LARGE_KEPT_BYTES
 * (the whole field when it alone is within the bound), copied (a subarray
 * would hold the whole reply): until 12-07 a 50 MB entry was decoded, mapped
 * and written as a 50 MB row.
 */
function deliveryOf(id: string, fields: Buffer[] | null, field: string, deliveries: number, now: number, maxBytes: number): Delivery {
  const payload = fieldValue(fields, field);
  // Always an own property, undefined when the id is no time: `...(t === undefined ? {} : { publishedAt: t })` cost an
  // object and a spread per entry (127-178 against 95-113 ns an entry measured, the consumer reads ~100k/s) and gave
  // deliveries two shapes.
  const publishedAt = idTime(id, now);
  let size = 0;
  for (let i = 0; fields !== null && i < fields.length; i++) size += fields[i]!.byteLength;
  if (size > maxBytes) {
    // An event within the bound, the entry over it for its other fields, is kept whole (copied): a replay publishes it
    // without them. Cut to its first 4 KiB like a larger one, it was marked cut and never replayable.
    const kept =
      payload === undefined ? fieldsShown(fields, TOO_LARGE_KEPT_BYTES) : new Uint8Array(payload.byteLength <= maxBytes ? payload : payload.subarray(0, TOO_LARGE_KEPT_BYTES));
    const cut = payload !== undefined && payload.byteLength > kept.byteLength;
    const what =
      payload === undefined
        ? `it has no field "${field}" (it has ${fieldNames(fields)})`
        : `its "${field}" field is ${payload.byteLength} bytes${cut ? `, of which this letter keeps the first ${kept.byteLength}` : ", kept whole"}`;
    return {
      id,
      payload: kept,
      deliveries,
      publishedAt,
      unreadable: {
        reason: "too_large",
        path: payload === undefined ? `(entry).${field}` : "(entry)",
        error: `the entry holds ${size} bytes in ${fields === null ? 0 : fields.length >> 1} field(s), over maxEventBytes (${maxBytes}); ${what}`,
        ...(cut ? { cutFrom: payload.byteLength } : {}),
      },
    };
  }
  if (payload !== undefined) return { id, payload, deliveries, publishedAt };
  return {
    id,
    payload: fieldsShown(fields, SHOWN_FIELD_BYTES),
    deliveries,
    publishedAt,
    unreadable: { path: `(entry).${field}`, error: `the entry has no field "${field}" (it has ${fieldNames(fields)}); producers must XADD the payload as "${field}"` },
  };
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
  /**
   * Where the last XAUTOCLAIM's walk of the group's pending list stopped ("0-0": at its end, so from its start).
   * Redis looks at 10 × COUNT pending entries a call: restarted from "0" every time, a dead consumer's entries
   * behind more than that many live ones were never reached while the live ones stayed fresh.
   */
  private claimCursor = "0-0";
  private retryAt = 0;
  private closed = false;
  /** Entries found trimmed or deleted in this consumer's pending list (lag's lostPending). */
  private lostPending = 0;
  /** The group's entries removed before it read them, as last measured exactly (lag's lostUnread). */
  private lostUnread: number | null = null;

  constructor(
    readonly name: string,
    private readonly settings: RedisSourceSettings,
    private readonly consumer: string,
    private readonly clock: () => number = Date.now,
  ) {
    // Its blocking reads are bounded by read() instead (a command timeout would cut a long BLOCK short).
    this.reader = connect(settings.url, `quiver-ingest-${name}-read`, { commandTimeout: false });
    this.control = connect(settings.url, `quiver-ingest-${name}`);
  }

  async start(): Promise<void> {
    // Closed while the consumer was still starting (stop gave up waiting): nothing to start.
    if (this.closed) throw new Error(`source ${this.name}: closed while starting`);
    try {
      await this.control.xgroup("CREATE", this.settings.stream, this.settings.group, "0", "MKSTREAM");
    } catch (e) {
      if (!String((e as Error).message).includes("BUSYGROUP")) throw e;
    }
  }

  async read(max: number, waitMs: number): Promise<readonly Delivery[]> {
    if (this.closed) return [];
    try {
      return await this.unlessStalled(this.readGroup(max, waitMs), waitMs);
    } catch (e) {
      const message = String((e as Error)?.message);
      // A read blocked when the stream was deleted is woken with UNBLOCKED (Redis 7); the next read meets NOGROUP below.
      // Nothing failed: reported as an error, it made the consumer `reconnecting` and pause for nothing.
      if (message.startsWith("UNBLOCKED")) return [];
      if (!message.startsWith("NOGROUP")) throw e;
      // The stream (with its group) was deleted, or the group destroyed; a producer's XADD may have made the stream
      // again. Left alone, every read would fail from now on. The group is made again at the stream's start: what it
      // holds now is read (entries this group had written already come back as duplicates, which the store counts).
      console.error(`quiver ingest: source ${this.name}: consumer group "${this.settings.group}" of stream "${this.settings.stream}" is gone; making it again`);
      await this.start();
      this.ownPendingFirst = false;
      return [];
    }
  }

  /**
   * A read the server has not answered READ_STALL_MS past its wait fails, so
   * the consumer shows `reconnecting` (it said `running` through a stalled
   * Redis, and stop() waited for it forever). The reader connection is made
   * again (the unanswered read must not answer into the next), and this
   * consumer's pending entries are read first: the lost read may have been
   * given some.
   */
  private unlessStalled<T>(read: Promise<T>, waitMs: number): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.reader.disconnect(true);
        this.ownPendingFirst = true;
        reject(new Error(`the Redis server does not answer: a read got no reply ${waitMs + READ_STALL_MS} ms after it was sent (waiting ${waitMs} ms)`));
      }, waitMs + READ_STALL_MS);
    });
    read.catch(() => undefined);
    return Promise.race([read, stalled]).finally(() => clearTimeout(timer));
  }

  private async readGroup(max: number, waitMs: number): Promise<readonly Delivery[]> {
    const { stream, group } = this.settings;
    const now = this.clock();
    if (this.ownPendingFirst && now >= this.retryAt) {
      const entries = streamEntries(await this.reader.callBuffer("XREADGROUP", "GROUP", group, this.consumer, "COUNT", max, "STREAMS", stream, "0"));
      if (entries.length > 0) return this.withDeliveryCounts(entries);
      this.ownPendingFirst = false;
    }
    if (now >= this.nextClaimAt) {
      this.nextClaimAt = now + Math.max(100, this.settings.claimIdleMs / 2);
      const claimed = (await this.reader.callBuffer("XAUTOCLAIM", stream, group, this.consumer, this.settings.claimIdleMs, this.claimCursor, "COUNT", max)) as [
        Buffer,
        RawEntry[],
        Buffer[]?,
      ];
      this.claimCursor = claimed[0]?.toString() ?? "0-0";
      // The walk stopped partway: the next read goes on from there, whatever it took now.
      if (this.claimCursor !== "0-0") this.nextClaimAt = 0;
      const entries = claimed[1] ?? [];
      // Redis 7 takes entries deleted (trimmed) while pending out of the list itself and names them here: lost.
      const deleted = claimed[2]?.length ?? 0;
      this.lostPending += deleted;
      if (entries.length > 0 || deleted > 0) {
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
      out[i] = deliveryOf(id.toString(), fields, this.settings.field, 1, now, this.settings.maxEventBytes);
    }
    return out;
  }

  /** Pending entries read again: their delivery counts come from XPENDING. */
  private async withDeliveryCounts(entries: readonly RawEntry[]): Promise<Delivery[]> {
    const { stream, group } = this.settings;
    const live = entries.filter((e) => e[1] !== null);
    const gone = entries.filter((e) => e[1] === null).map((e) => e[0].toString());
    // Trimmed or deleted while pending: nothing left to deliver, counted as lost.
    if (gone.length > 0) {
      await this.control.xack(stream, group, ...gone);
      this.lostPending += gone.length;
    }
    if (live.length === 0) return [];
    const first = live[0]![0].toString();
    const last = live[live.length - 1]![0].toString();
    const pending = (await this.control.xpending(stream, group, first, last, live.length * 2, this.consumer)) as [string, string, number, number][];
    const counts = new Map<string, number>();
    for (const p of pending) counts.set(p[0], Number(p[3]));
    const now = this.clock();
    return live.map(([id, fields]) => {
      const key = id.toString();
      return deliveryOf(key, fields, this.settings.field, counts.get(key) ?? 1, now, this.settings.maxEventBytes);
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

  /**
   * Moves the entries to a parking consumer (`<consumer>:handed-back`) with
   * their idle time set to `claimIdle`, so another consumer's next XAUTOCLAIM
   * takes them; this one skips its own XAUTOCLAIM for `claimIdle`. Left in
   * this consumer's pending list, they were read again after every pause,
   * which reset their idle time: no other pod ever claimed them, and a pod
   * with a stale ring held its batch until it was fixed (20 events unwritten
   * for 20 s while another pod could write them).
   */
  async handBack(deliveries: readonly Delivery[]): Promise<void> {
    if (deliveries.length === 0) return;
    const { stream, group, claimIdleMs } = this.settings;
    await this.control.call("XCLAIM", stream, group, `${this.consumer}:handed-back`, 0, ...deliveries.map((d) => d.id), "IDLE", claimIdleMs, "JUSTID");
    this.nextClaimAt = this.clock() + claimIdleMs;
    this.parked = true;
  }

  /** This consumer handed entries back to its parking consumer, which may still exist (removeParkingIfEmpty). */
  private parked = false;

  /**
   * The parking consumer, once other consumers claimed everything in it, is
   * removed: each pod that ever handed back left one `<host>:<pid>:handed-back`
   * in the group for good (XINFO CONSUMERS grew with every pod). Checked with
   * the lag and at close.
   */
  private async removeParkingIfEmpty(): Promise<void> {
    if (!this.parked) return;
    const { stream, group } = this.settings;
    const result = await this.control.eval(DELETE_IF_EMPTY, 1, stream, group, `${this.consumer}:handed-back`);
    // Gone (deleted now, or never made / the group made again): nothing more to check until the next hand-back.
    if (result !== -1) this.parked = false;
  }

  /**
   * From XINFO GROUPS and XINFO STREAM (Redis 7). Redis's own `lag` is
   * entries-added minus the group's entries-read, so an entry trimmed before
   * the group read it stays in it forever (measured on 7.0: 60 entries trimmed
   * unread left lag at 60 after the group read everything). What was removed
   * unread is entries-added − entries-read − the unread entries still in the
   * stream, known exactly when the group has read everything (none unread) or
   * is behind the stream's first entry (all of it unread); in between, the
   * last exact figure stands (removals only add to it). `unprocessed` is
   * Redis's lag less that figure.
   */
  async lag(): Promise<SourceLag> {
    const { stream, group } = this.settings;
    await this.removeParkingIfEmpty().catch(() => undefined);
    const [groups, streamInfo] = (await Promise.all([this.control.call("XINFO", "GROUPS", stream), this.control.call("XINFO", "STREAM", stream)])) as [unknown[][], unknown[]];
    const s = replyFields(streamInfo);
    for (const g of groups) {
      const info = replyFields(g);
      if (info.get("name") !== group) continue;
      const lag = optionalNumber(info.get("lag"));
      const last = String(info.get("last-delivered-id") ?? "0-0");
      // A group that has read nothing yet answers entries-read nil.
      const read = optionalNumber(info.get("entries-read")) ?? (last === "0-0" ? 0 : null);
      const added = optionalNumber(s.get("entries-added"));
      const length = Number(s.get("length") ?? 0);
      let lost: number | null = null;
      if (read !== null && added !== null) {
        if (last === String(s.get("last-generated-id"))) lost = added - read;
        else if (length === 0 || compareIds(last, String(s.get("recorded-first-entry-id") ?? "0-0")) < 0) lost = added - read - length;
      }
      if (lost !== null && lost >= 0) this.lostUnread = Math.max(this.lostUnread ?? 0, lost);
      const unprocessed = lag === null ? null : Math.max(0, lag - (this.lostUnread ?? 0));
      return { pending: Number(info.get("pending") ?? 0), unprocessed, lostUnread: this.lostUnread, lostPending: this.lostPending };
    }
    return { pending: 0, unprocessed: null, lostUnread: this.lostUnread, lostPending: this.lostPending };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reader.disconnect();
    await this.removeParkingIfEmpty().catch(() => undefined);
    // Named <host>:<pid>, this consumer is never used again: it leaves the group unless it holds entries (a batch the
    // store refused at shutdown), which stay for another consumer's XAUTOCLAIM. Each start left one for good.
    const { stream, group } = this.settings;
    await this.control.eval(DELETE_IF_EMPTY, 1, stream, group, this.consumer).catch(() => undefined);
    // QUIT waits for the server's reply: one that stalled never sends it.
    await this.control.quit().catch(() => undefined);
    this.control.disconnect();
  }
}

/** An XINFO number that Redis may answer as nil. */
function optionalNumber(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

/** Orders two stream IDs (`ms-seq`). */
export function compareIds(a: string, b: string): number {
  const [am, as] = splitId(a);
  const [bm, bs] = splitId(b);
  return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
}

function splitId(id: string): [bigint, bigint] {
  const dash = id.indexOf("-");
  return dash < 0 ? [BigInt(id), 0n] : [BigInt(id.slice(0, dash)), BigInt(id.slice(dash + 1))];
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

/**
 * Dead letters as entries of a Redis stream beside the source (`<stream>:dead`), trimmed to the source's retention
 * after each add: `XTRIM MAXLEN ~` and `MINID ~` (whole macro nodes, so a few more may stay; cheap), whose counts
 * say how many went.
 */
export class RedisDeadLetters implements DeadLetterQueue {
  private readonly redis: Redis;
  constructor(
    url: string,
    private readonly stream: string,
    private readonly retention: DeadLetterRetention = DEFAULT_DEAD_LETTER_RETENTION,
  ) {
    this.redis = connect(url, "quiver-ingest-dead-letters");
  }

  async add(letters: readonly NewDeadLetter[]): Promise<number> {
    if (letters.length === 0) return 0;
    const pipeline = this.redis.pipeline();
    const now = Date.now();
    const at = String(now);
    for (const l of letters) {
      const fields = ["source", l.source, "reason", l.reason, "path", l.path, "error", l.error, "origin", l.origin, "at", at];
      // The event's size, when the payload is only its first bytes: such a letter is not replayed (replay.ts).
      if (l.cutFrom !== undefined) fields.push("cut", String(l.cutFrom));
      pipeline.xadd(this.stream, "*", ...fields, "payload", Buffer.from(l.payload));
    }
    const { maxLetters, maxAgeMs } = this.retention;
    pipeline.xtrim(this.stream, "MAXLEN", "~", maxLetters);
    // Entry ids start with the server's clock in ms: older than the age limit by this process's clock.
    if (maxAgeMs > 0 && now > maxAgeMs) pipeline.xtrim(this.stream, "MINID", "~", String(now - maxAgeMs));
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find((r) => r[0] !== null);
    if (failed) throw failed[0];
    let trimmed = 0;
    for (let i = letters.length; i < results.length; i++) trimmed += Number(results[i]![1]);
    return trimmed;
  }

  async list(limit: number, filter: LetterFilter = {}): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    const page = filter.reason === undefined && filter.source === undefined ? limit : Math.max(limit, 256);
    // Pages from the oldest; with a filter, past letters it leaves out until `limit` match or the stream ends.
    for (let from = "-"; out.length < limit; ) {
      const entries = (await this.redis.callBuffer("XRANGE", this.stream, from, "+", "COUNT", page)) as RawEntry[];
      for (const [id, fields] of entries) {
        const text = (name: string) => Buffer.from(fieldValue(fields, name) ?? EMPTY).toString();
        if (!letterPasses(filter, text("source"), text("reason"))) continue;
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
    // QUIT waits for the server's reply (at most the command timeout): a stalled server never sends it, and the
    // connection stayed open until the server answered again. disconnect() ends it (destroyed 2 s later if unanswered).
    await this.redis.quit().catch(() => undefined);
    this.redis.disconnect();
  }
}
