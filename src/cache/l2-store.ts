import { Redis, type RedisOptions } from "ioredis";
import type { StoredRow } from "../kv/kv-node.ts";
import { decodeRow, encodeRow, ROW_HEADER_BYTES } from "../kv/row-codec.ts";
import type { InvalidationScope } from "../feed/change-feed.ts";
import { GENERATION_BUMP_LUA, GENERATION_CHECK_LUA, L2_FILL_LUA, L2_REMOVE_LUA, L2_WRITE_THROUGH_LUA, RUN_CHECK_LUA } from "./l2-script.ts";
import { L2_NEGATIVE, L2_NOT_ASKED, type L2Slot, type L2Tier, type L2Write } from "./l2-slot.ts";

/** Where the L2 Redis is: one address, or Sentinels and a master name. */
export type L2Address = { readonly address: string } | { readonly sentinels: readonly string[]; readonly masterName: string };

export interface L2Options {
  readonly where: L2Address;
  readonly ttlMs: number;
  readonly negativeTtlMs: number;
  /** Bound on every L2 read; past it the read counts as a miss. */
  readonly timeoutMs: number;
  /**
   * Bound on fills and write-throughs (default 10 × timeoutMs, at least 50 ms):
   * they are off the lookup path, and dropping them under load would leave L2 cold.
   */
  readonly writeTimeoutMs?: number;
  /** How often INFO is read for the L2 memory and eviction gauges (default 5000 ms). */
  readonly statsIntervalMs?: number;
  /** How often the generations are checked against L2's, and written back when it lost them (default 1000 ms; checkGenerations). */
  readonly generationsCheckMs?: number;
}


const GENERATIONS = "quiver:cache:generations";
/** The run id of the L2 server the generations were last checked against (RUN_CHECK_LUA). */
const RUN_KEY = "quiver:cache:run";
/** While L2 does not answer (HUNG_AFTER_TIMEOUTS in a row), one call in this long goes through as a probe; the rest are skipped. */
const HUNG_PROBE_MS = 1000;
/** Longest wait between retries of a generation re-read that failed. */
const SYNC_RETRY_MAX_MS = 5000;
/** Calls in a row that time out before the L2 is reported not answering (a hung server keeps its connection). */
const HUNG_AFTER_TIMEOUTS = 5;
/** How long L2 may go without answering anything, once not answering, before its connection is made again (through the Sentinels, when they name it). */
const HUNG_RECONNECT_MS = 3000;
/**
 * Least time any command may wait on the connection (ioredis's commandTimeout; at least the longest bound a call
 * is given by `bounded`). It bounds the handshake, which nothing else did: a hung server still accepts
 * connections, and the ready check then waited for ever.
 */
const COMMAND_TIMEOUT_MS = 2000;
/** A call's timer that fires this much later than due means the event loop stalled: L2 is not judged by it (bounded). */
const STALLED_TIMER_MS = 1000;
const ALL = "*";
const NEGATIVE_BYTES = (() => {
  const b = Buffer.alloc(ROW_HEADER_BYTES);
  b.writeDoubleBE(Number.NEGATIVE_INFINITY, 0);
  return b;
})();

type FillCommand = (numKeys: number, ...args: Array<string | Buffer | number>) => Promise<number>;
type GenerationCommand = (numKeys: number, ...args: Array<string | number>) => Promise<number>;

/** A storage key's view (what its generation is kept under): the part before `@`. */
function viewOf(key: string): string {
  const at = key.indexOf("@");
  return at < 0 ? key : key.slice(0, at);
}

/** A row's stored bytes for L2, or the negative entry's header. */
function l2Bytes(e: L2Write): Buffer {
  if (e.row === undefined) return NEGATIVE_BYTES;
  const bytes = encodeRow(e.row);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const backoff = (times: number): number => Math.min(50 * 2 ** Math.min(times, 10), 1000);

function parseAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
}

/**
 * The L2 tier: a Redis shared by the pods of one edge site. Rows are stored
 * as row-codec bytes under `qc|<all generation>.<view generation>|<storage key>`;
 * bumping a generation (one HINCRBY) makes every old key of the view
 * unreachable at once, without scanning, and `allkeys-lru` plus TTLs reclaim
 * them. Every call is bounded by a short timeout and never throws: L2 is an
 * optimisation, a failure is a miss.
 */
export class L2Store implements L2Tier {
  private readonly client: Redis;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  readonly timeoutMs: number;
  private readonly writeTimeoutMs: number;
  private readonly fillCommand: FillCommand;
  private readonly writeThroughCommand: FillCommand;
  private readonly removeCommand: GenerationCommand;
  private readonly bumpCommand: GenerationCommand;
  private readonly runCheckCommand: GenerationCommand;
  private readonly checkCommand: (numKeys: number, ...args: Array<string | number>) => Promise<string[]>;
  private readonly generationsTimer: ReturnType<typeof setInterval>;
  /** The run id of the server this connection checked (RUN_CHECK_LUA), written back by checkGenerations when L2 lost it. */
  private runId = "";
  private onRaised: ((scope: InvalidationScope) => void) | undefined;
  private allGen = 0;
  private readonly viewGens = new Map<string, number>();
  /** Key prefix per view for the current generations; rebuilt when a generation changes. */
  private readonly prefixes = new Map<string, string>();
  /** While generations are being re-read after a remote invalidation, L2 reads count as misses. */
  private syncing = 0;
  private lastError: string | undefined;
  /** From INFO, refreshed every few seconds: the server's memory and LRU evictions (all its keys, not only ours). */
  private serverStats = { usedBytes: 0, maxBytes: 0, evictedKeys: 0 };
  private readonly statsTimer: ReturnType<typeof setInterval>;
  readonly describe: string;

  constructor(options: L2Options) {
    this.ttlMs = options.ttlMs;
    this.negativeTtlMs = options.negativeTtlMs;
    this.timeoutMs = options.timeoutMs;
    this.writeTimeoutMs = options.writeTimeoutMs ?? Math.max(50, options.timeoutMs * 10);
    const common: RedisOptions = {
      connectionName: "quiver-cache",
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: 2000,
      commandTimeout: Math.max(COMMAND_TIMEOUT_MS, this.writeTimeoutMs),
      retryStrategy: backoff,
    };
    const where = options.where;
    if ("address" in where) {
      this.client = new Redis({ ...common, ...parseAddress(where.address) });
      this.describe = where.address;
    } else {
      this.client = new Redis({ ...common, name: where.masterName, sentinels: where.sentinels.map(parseAddress), sentinelRetryStrategy: backoff });
      this.describe = `sentinel master ${where.masterName}`;
    }
    this.client.defineCommand("quiverCacheFill", { lua: L2_FILL_LUA });
    this.client.defineCommand("quiverCacheWriteThrough", { lua: L2_WRITE_THROUGH_LUA });
    this.client.defineCommand("quiverCacheRemove", { lua: L2_REMOVE_LUA });
    this.client.defineCommand("quiverGenerationBump", { lua: GENERATION_BUMP_LUA });
    this.client.defineCommand("quiverRunCheck", { lua: RUN_CHECK_LUA });
    this.client.defineCommand("quiverGenerationCheck", { lua: GENERATION_CHECK_LUA });
    const commands = this.client as unknown as {
      quiverCacheFill: FillCommand;
      quiverCacheWriteThrough: FillCommand;
      quiverCacheRemove: GenerationCommand;
      quiverGenerationBump: GenerationCommand;
      quiverRunCheck: GenerationCommand;
      quiverGenerationCheck: (numKeys: number, ...args: Array<string | number>) => Promise<string[]>;
    };
    this.fillCommand = commands.quiverCacheFill.bind(this.client);
    this.writeThroughCommand = commands.quiverCacheWriteThrough.bind(this.client);
    this.removeCommand = commands.quiverCacheRemove.bind(this.client);
    this.bumpCommand = commands.quiverGenerationBump.bind(this.client);
    this.runCheckCommand = commands.quiverRunCheck.bind(this.client);
    this.checkCommand = commands.quiverGenerationCheck.bind(this.client);
    this.client.on("error", (e: Error) => {
      this.lastError = e.message;
    });
    this.client.on("ready", () => {
      this.lastError = undefined;
      this.timedOutInARow = 0;
      this.lastAnswerAt = performance.now();
      // Invalidations may have happened while we were away, and the server may not be the one we left.
      this.serverChecked = false;
      this.connectedSync = this.syncGenerations();
      void this.refreshServerStats();
    });
    this.statsTimer = setInterval(() => void this.refreshServerStats(), options.statsIntervalMs ?? 5000);
    this.statsTimer.unref?.();
    this.generationsTimer = setInterval(() => void this.checkGenerations(), options.generationsCheckMs ?? 1000);
    this.generationsTimer.unref?.();
  }

  /** L2's memory use, budget and evictions as of the last INFO (for /metrics). */
  stats(): { usedBytes: number; maxBytes: number; evictedKeys: number; unreadableEntries: number } {
    return { ...this.serverStats, unreadableEntries: this.unreadableEntries };
  }

  private async refreshServerStats(): Promise<void> {
    if (!this.connected) return;
    const text = await this.bounded(this.client.info(), 1000);
    if (text === undefined) return;
    const field = (name: string): number => {
      const m = new RegExp(`^${name}:(\\d+)`, "m").exec(text);
      return m ? Number(m[1]) : 0;
    };
    this.serverStats = { usedBytes: field("used_memory"), maxBytes: field("maxmemory"), evictedKeys: field("evicted_keys") };
  }

  get connected(): boolean {
    return this.client.status === "ready";
  }

  /**
   * What /readyz and the metrics report: reachable means connected and
   * answering. A hung L2 (SIGSTOP) keeps its connection "ready", every call
   * timing out at its bound, and was reported connected, the pod not degraded.
   */
  state(): { address: string; connected: boolean; error?: string } {
    const hung = this.timedOutInARow >= HUNG_AFTER_TIMEOUTS;
    const reachable = this.connected && !hung && !this.generationsUnknown;
    const error = hung
      ? `not answering: its last ${this.timedOutInARow} calls timed out`
      : this.generationsUnknown
        ? `generations could not be re-read (${this.lastError ?? "timed out"}); not used until they are`
        : this.lastError;
    return { address: this.describe, connected: reachable, ...(error && !reachable ? { error } : {}) };
  }

  /** Calls in a row that ran out their bound (reset by any answer). */
  private timedOutInARow = 0;
  /** When L2 last answered a call, however late (performance.now()): a slow L2 is not connected again, a silent one is. */
  private lastAnswerAt = performance.now();
  /** When the last call was let through to an L2 that does not answer (performance.now()). */
  private lastProbeAt = Number.NEGATIVE_INFINITY;
  /** The generations in use could not be re-read (after an invalidation elsewhere, a gap, a reconnect): L2 is not used until they are. */
  private generationsUnknown = false;
  /** The server's run id was checked since the connection was (re)made (RUN_CHECK_LUA). */
  private serverChecked = false;
  private syncRetry: ReturnType<typeof setTimeout> | undefined;
  private syncRetryMs = 0;
  private closed = false;
  /** The generation re-read that follows the latest (re)connection. */
  private connectedSync: Promise<boolean> | undefined;

  /**
   * May a read or a fill go to L2 now? Not while the generations are being
   * re-read or are unknown (keys would be the old generation's: an entry an
   * invalidation hid read as a hit), and while L2 does not answer, only one
   * call a second (a probe): every miss waited out the bound on a hung L2,
   * and ioredis held each command in its pipeline (1,025 held in 4 s at 150
   * lookups a second), replaying them all when it came back.
   */
  private usable(write = false): boolean {
    // A write during a re-read goes under the generations known (as before the re-read), a read waits for it.
    if (!this.connected || (this.syncing > 0 && !write) || this.generationsUnknown) return false;
    if (this.timedOutInARow < HUNG_AFTER_TIMEOUTS) return true;
    const now = performance.now();
    if (now - this.lastProbeAt < HUNG_PROBE_MS) return false;
    this.lastProbeAt = now;
    return true;
  }

  /**
   * Waits for the first connection (start-up) and the generation re-read
   * that follows it (until then L2 is not read, and a fill would go under
   * generations about to change); false if not ready within `ms` (the pod
   * starts anyway, degraded).
   */
  async whenReady(ms: number): Promise<boolean> {
    const until = performance.now() + ms;
    if (!(await this.whenConnected(ms))) return false;
    const sync = this.connectedSync;
    if (sync === undefined) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, until - performance.now()));
    });
    try {
      return await Promise.race([sync, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private whenConnected(ms: number): Promise<boolean> {
    if (this.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.client.off("ready", onReady);
        resolve(ok);
      };
      const onReady = (): void => done(true);
      const timer = setTimeout(() => done(false), ms);
      this.client.once("ready", onReady);
    });
  }

  /** The L2 key of a storage key under the current generations. */
  keyOf(key: string): string {
    const view = viewOf(key);
    let prefix = this.prefixes.get(view);
    if (prefix === undefined) {
      prefix = `qc|${this.allGen}.${this.viewGens.get(view) ?? 0}|`;
      this.prefixes.set(view, prefix);
    }
    return prefix + key;
  }

  /** One MGET; undefined when L2 is down, slow past the timeout, or re-reading generations. */
  async read(keys: readonly string[]): Promise<L2Slot[] | typeof L2_NOT_ASKED | undefined> {
    if (!this.connected) return undefined;
    if (!this.usable()) return L2_NOT_ASKED;
    const l2Keys = keys.map((k) => this.keyOf(k));
    const raw = await this.bounded(this.client.mgetBuffer(l2Keys));
    if (raw === undefined) return undefined;
    const out = new Array<L2Slot>(raw.length);
    for (let i = 0; i < raw.length; i++) {
      const bytes = raw[i];
      if (bytes === null || bytes === undefined || bytes.length < ROW_HEADER_BYTES) out[i] = undefined;
      else if (bytes.length === ROW_HEADER_BYTES) {
        // The header alone: a negative entry (event time -Infinity), else a floor (`supersede`), a miss.
        out[i] = bytes.readDoubleBE(0) === Number.NEGATIVE_INFINITY ? L2_NEGATIVE : undefined;
      } else out[i] = this.rowOf(bytes);
    }
    return out;
  }

  /** Entries read that were not rows (another program's key under our prefix, a torn write): each served as a miss. */
  private unreadableEntries = 0;

  /**
   * A stored row, or undefined (a miss: the origin answers) when the bytes are not one; one bad entry must not
   * fail its batch. Bytes that decode are a row only as an array of values under a finite event time: a lone
   * MessagePack value or a map was served as the row (its features NULL_VALUE), and an event time of +Infinity
   * was served and refused every write-through (the compare-event-time script) for as long as the entry lived.
   */
  private rowOf(bytes: Buffer): StoredRow | undefined {
    try {
      const row = decodeRow(bytes);
      if (Array.isArray(row.values) && Number.isFinite(row.ts)) return row;
    } catch {
      // Counted below.
    }
    this.unreadableEntries++;
    return undefined;
  }

  /** Writes rows (and negative entries) under the compare-event-time rule; resolves to false when L2 did not take them in time. */
  write(entries: readonly L2Write[]): Promise<boolean> {
    return this.fill(entries, false, l2Bytes, (e) => (e.row === undefined ? this.negativeTtlMs : this.ttlMs));
  }

  /** Rows the origin acknowledged, as `write` does, under the newest generations L2 or this pod knows (L2_WRITE_THROUGH_LUA). */
  writeThrough(entries: readonly L2Write[]): Promise<boolean> {
    return this.fillCurrent(entries, false, l2Bytes, (e) => (e.row === undefined ? this.negativeTtlMs : this.ttlMs));
  }

  /** Acknowledged entries through L2_WRITE_THROUGH_LUA: each key's value and TTL; `keepEqual` for floors. False when L2 did not take them in time. */
  private async fillCurrent<E extends { readonly key: string }>(entries: readonly E[], keepEqual: boolean, value: (e: E) => Buffer, ttl: (e: E) => number): Promise<boolean> {
    if (entries.length === 0 || !this.usable(true)) return entries.length === 0;
    const n = entries.length;
    const args = new Array<string | Buffer | number>(4 + n * 5);
    args[0] = GENERATIONS;
    args[1] = n;
    args[2] = keepEqual ? "1" : "0";
    args[3] = this.allGen;
    for (let i = 0; i < n; i++) {
      const e = entries[i]!;
      const at = 4 + i * 5;
      const view = viewOf(e.key);
      args[at] = e.key;
      args[at + 1] = view;
      args[at + 2] = this.viewGens.get(view) ?? 0;
      args[at + 3] = value(e);
      args[at + 4] = ttl(e);
    }
    return (await this.bounded(this.writeThroughCommand(1, ...args), this.writeTimeoutMs)) !== undefined;
  }

  /** Entries through L2_FILL_LUA: each key's value and TTL; `keepEqual` for floors. False when L2 did not take them in time. */
  private async fill<E extends { readonly key: string }>(entries: readonly E[], keepEqual: boolean, value: (e: E) => Buffer, ttl: (e: E) => number): Promise<boolean> {
    if (entries.length === 0 || !this.usable(true)) return entries.length === 0;
    const n = entries.length;
    const args = new Array<string | Buffer | number>(n * 3 + 1);
    for (let i = 0; i < n; i++) {
      const e = entries[i]!;
      args[i] = this.keyOf(e.key);
      args[n + i] = value(e);
      args[2 * n + i] = ttl(e);
    }
    args[3 * n] = keepEqual ? "1" : "0";
    return (await this.bounded(this.fillCommand(n, ...args), this.writeTimeoutMs)) !== undefined;
  }

  /**
   * Leaves a floor at each key's event time (the header alone, no values)
   * unless a copy at least as new is held (L2_FILL_LUA, keeping equals); an older one, or
   * none, becomes the floor, which reads as a miss and refuses every fill
   * older than it for the L2 TTL. For writes whose winners are unknown (the
   * origin ignored some rows): removed instead, a read in flight on another
   * pod filled the key's pre-write row back, and every pod without a floor
   * of its own (the writer, a new pod) served it PRESENT for the L2 TTL.
   */
  supersede(entries: readonly { readonly key: string; readonly row: { readonly ts: number } }[]): Promise<boolean> {
    return this.fillCurrent(entries, true, (e) => {
      const floor = Buffer.allocUnsafe(ROW_HEADER_BYTES);
      floor.writeDoubleBE(e.row.ts, 0);
      return floor;
    }, () => this.ttlMs);
  }

  /** Removes keys (a delete was acknowledged), under the newest generations L2 or this pod knows, as writeThrough places rows (L2_REMOVE_LUA). */
  async remove(keys: readonly string[]): Promise<boolean> {
    if (keys.length === 0 || !this.connected) return keys.length === 0;
    const args = new Array<string | number>(2 + keys.length * 3);
    args[0] = GENERATIONS;
    args[1] = this.allGen;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const view = viewOf(key);
      const at = 2 + i * 3;
      args[at] = key;
      args[at + 1] = view;
      args[at + 2] = this.viewGens.get(view) ?? 0;
    }
    return (await this.bounded(this.removeCommand(1, ...args), this.writeTimeoutMs)) !== undefined;
  }

  /**
   * Bumps the generation of a view (or of everything): its old keys become
   * unreachable for every pod at once. Waits longer than a read (an admin
   * action must not be lost to a 5 ms bound); throws if L2 cannot take it.
   */
  async bumpGeneration(scope: InvalidationScope): Promise<void> {
    const field = "all" in scope ? ALL : scope.view;
    const known = field === ALL ? this.allGen : (this.viewGens.get(field) ?? 0);
    const next = await this.boundedOrThrow(this.bumpCommand(1, GENERATIONS, field, known), 2000, "bump generation");
    this.applyGeneration(field, Number(next));
  }

  /** Re-reads every generation (after a remote invalidation, a reconnect or a feed gap); L2 reads miss meanwhile. */
  async syncGenerations(): Promise<boolean> {
    const ok = await this.syncOnce();
    if (ok) {
      this.generationsUnknown = false;
      this.syncRetryMs = 0;
    } else if (!this.closed) {
      // A re-read that failed once was never tried again: the pod kept its old generations and read the entries an
      // invalidation meant to hide as hits, for the L2 TTL. Until one succeeds L2 is not used, and it is retried.
      this.generationsUnknown = true;
      if (this.syncRetry === undefined) {
        this.syncRetryMs = Math.min(Math.max(2 * this.syncRetryMs, 100), SYNC_RETRY_MAX_MS);
        this.syncRetry = setTimeout(() => {
          this.syncRetry = undefined;
          void this.syncGenerations();
        }, this.syncRetryMs);
        this.syncRetry.unref?.();
      }
    }
    return ok;
  }

  private async syncOnce(): Promise<boolean> {
    this.syncing++;
    try {
      if (!this.serverChecked) {
        // A server restarted from its files (or a replica promoted) may hold copies older than acknowledged writes.
        const info = await this.bounded(this.client.info("server"), 2000);
        const runId = info === undefined ? undefined : /^run_id:(\w+)/m.exec(info)?.[1];
        if (runId === undefined) return false;
        const gen = await this.bounded(this.runCheckCommand(2, GENERATIONS, RUN_KEY, runId, this.allGen), 2000);
        if (gen === undefined) return false;
        this.applyGeneration(ALL, Number(gen));
        this.serverChecked = true;
        this.runId = runId;
      }
      // Generations in use here that L2 lost (flushed, restarted empty) are written back for pods that start later.
      const raised = await this.exchangeGenerations();
      if (raised === undefined) return false;
      // Higher ones taken here drop what L1 read under the old ones, as the periodic check's do: taken at a re-read
      // (another view's invalidation, a reconnection) they did not, and a pod that had read an overwritten row
      // under the old generation served it from L1 for its TTL.
      this.raised(raised);
      return true;
    } finally {
      this.syncing--;
    }
  }

  /** Takes `gen` for `field` if it is higher than the one in use; answers whether it was. */
  private applyGeneration(field: string, gen: number): boolean {
    if (!Number.isFinite(gen)) return false;
    if (field === ALL) {
      if (gen <= this.allGen) return false;
      this.allGen = gen;
      this.prefixes.clear();
      return true;
    }
    if (gen <= (this.viewGens.get(field) ?? 0)) return false;
    this.viewGens.set(field, gen);
    this.prefixes.delete(field);
    return true;
  }

  onGenerationRaised(listener: (scope: InvalidationScope) => void): void {
    this.onRaised = listener;
  }

  /**
   * Every second (generationsCheckMs): L2's generations against this pod's,
   * in one script (GENERATION_CHECK_LUA). Those L2 lost are written back and
   * higher ones taken (their L1 copies dropped through onGenerationRaised).
   * The generations hash and the noted run id are keys like any other under
   * allkeys-lru, and untouched between invalidations they were evicted
   * first: a pod started then read and filled under generation 0 while the
   * others read and wrote through under theirs (a write through another pod
   * never reached what it read: the old row for the L2 TTL), its invalidation
   * bumped the view to a generation the others already used (hiding
   * nothing), and an L2 restarted from a snapshot taken without the run id
   * was not abandoned. Read every second they stay recent; lost anyway (a
   * flush, an eviction between checks), they are back within a second.
   */
  async checkGenerations(): Promise<void> {
    if (!this.connected || this.closed || !this.serverChecked || this.syncing > 0 || this.generationsUnknown) return;
    const raised = await this.exchangeGenerations();
    if (raised !== undefined) this.raised(raised);
  }

  /** Tells the listener (the tier, which drops them from L1) of scopes whose generation was taken higher here. */
  private raised(scopes: readonly InvalidationScope[]): void {
    if (this.onRaised) for (const scope of scopes) this.onRaised(scope);
  }

  /**
   * Writes back the generations L2 holds lower than this pod's and takes the
   * higher ones it holds (GENERATION_CHECK_LUA, atomic): answers the scopes
   * raised here, or undefined when L2 did not answer.
   */
  private async exchangeGenerations(): Promise<InvalidationScope[] | undefined> {
    const args: Array<string | number> = [this.runId, ALL, this.allGen];
    for (const [view, gen] of this.viewGens) args.push(view, gen);
    const flat = await this.bounded(this.checkCommand(2, GENERATIONS, RUN_KEY, ...args), 2000);
    if (!Array.isArray(flat)) return undefined;
    const raised: InvalidationScope[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const field = String(flat[i]);
      if (this.applyGeneration(field, Number(flat[i + 1]))) raised.push(field === ALL ? { all: true } : { view: field });
    }
    return raised;
  }

  /** Generations as this pod uses them, for /readyz and tests. */
  generations(): { all: number; views: Record<string, number> } {
    return { all: this.allGen, views: Object.fromEntries(this.viewGens) };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.statsTimer);
    clearInterval(this.generationsTimer);
    if (this.syncRetry !== undefined) clearTimeout(this.syncRetry);
    try {
      if (this.connected) await this.bounded(this.client.quit(), 500);
    } catch {
      // Disconnecting anyway.
    }
    this.client.disconnect();
  }

  private bounded<T>(work: Promise<T>, ms = this.timeoutMs): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve) => {
      let due = performance.now() + ms;
      const expire = () => {
        const now = performance.now();
        // Fired long after it was due, the timer says this process stalled, not that L2 did: the answer may be
        // waiting unread in the socket. It is given its bound again, to be read first. Counted as a timeout, a
        // synchronous stall of 3.5 s with 8 reads in flight had a healthy L2 connected again (reconnectIfHung).
        if (now - due > STALLED_TIMER_MS) {
          due = now + ms;
          timer = setTimeout(expire, ms);
          return;
        }
        this.timedOutInARow++;
        this.reconnectIfHung();
        resolve(undefined);
      };
      let timer = setTimeout(expire, ms);
      work.then(
        (v) => {
          clearTimeout(timer);
          this.timedOutInARow = 0;
          this.lastAnswerAt = performance.now();
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          this.lastError = e instanceof Error ? e.message : String(e);
          resolve(undefined);
        },
      );
    });
  }

  /**
   * An L2 that has not answered for HUNG_RECONNECT_MS gets a new connection.
   * A hung server keeps its connections open, so nothing else made one: when
   * Sentinel promoted a replica in its place, every pod stayed on the old
   * primary (L2 skipped for good, its write-throughs and repairs failing)
   * until that one came back. A new connection asks the Sentinels again; on
   * one address, it waits (not ready, so not asked) until the server answers.
   */
  private reconnectIfHung(): void {
    if (this.timedOutInARow < HUNG_AFTER_TIMEOUTS || this.closed || !this.connected) return;
    const now = performance.now();
    // Answers that come late (a slow L2, not a hung one) keep the connection.
    if (now - this.lastAnswerAt < HUNG_RECONNECT_MS) return;
    this.lastAnswerAt = now;
    this.lastError = `no answer for ${HUNG_RECONNECT_MS} ms: connecting again`;
    this.client.disconnect(true);
  }

  private async boundedOrThrow<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
    const v = await this.bounded(work, ms);
    if (v === undefined) throw new Error(`L2 ${this.describe}: ${what} failed: ${this.lastError ?? "timed out"}`);
    return v;
  }
}
