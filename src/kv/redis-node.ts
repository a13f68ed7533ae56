import { Redis } from "ioredis";
import type { KvEntry, KvNode, NodeHealth, ProcessScanPage, PutOutcome, ReadContext, ReadSlot, ScanPage, ServerProcess } from "./kv-node.ts";
import { neverNow, UNAVAILABLE } from "./kv-node.ts";
import type { LayoutMismatch, ViewLayout } from "./layout-ledger.ts";
import { DELETE_IF_NOT_NEWER_LUA, DELETE_IF_NOT_NEWER_SHA, globEscape, LAYOUT_LEDGER_KEY, LAYOUT_LEDGER_LUA, LWW_PUT_LUA, LWW_PUT_SHA, PLACEMENT_KEY, RECORD_KEY_PREFIX } from "./redis-lww-script.ts";
import { decodeRow, encodeRow } from "./row-codec.ts";
import { ScanRestartError, StorageTimeoutError, WriteNotAcknowledgedError, withDeadline } from "./storage-errors.ts";

/** How to reach one redis-server and how long to wait for it. */
export interface RedisNodeOptions {
  readonly host: string;
  readonly port: number;
  /** Defaults to `host:port`. */
  readonly id?: string;
  /** Per-command deadline in ms (default 1000). Replica sets pass a short one so a stalled node is detected quickly. */
  readonly commandTimeoutMs?: number;
  /** Initial connect deadline for `RedisKvNode.connect` (default 2000 ms). */
  readonly connectTimeoutMs?: number;
  /** Upper bound of the reconnect back-off in ms (default 1000). */
  readonly reconnectMaxDelayMs?: number;
}

/** What `ROLE` says about a server: its role and replication offsets. */
export type RedisRole =
  | { readonly role: "master"; readonly offset: number; readonly replicas: ReadonlyArray<{ address: string; offset: number }> }
  | { readonly role: "replica"; readonly master: string; readonly linkState: string; readonly offset: number }
  | { readonly role: "other"; readonly name: string };

/** Outcome of a put that waited for replicas (`WAIT`). */
export interface AckedPutOutcome extends PutOutcome {
  readonly acked: number;
}

const toBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** Script arguments: all keys, then all encoded rows in the same order. */
function lwwArgs(entries: readonly KvEntry[]): Array<string | Buffer> {
  const args: Array<string | Buffer> = new Array(entries.length * 2);
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    args[i] = entry.key;
    args[entries.length + i] = toBuffer(encodeRow(entry.row));
  }
  return args;
}

/** `run_id` from INFO's text; throws when missing (no Redis leaves it out). */
function runIdOf(info: string, address: string): string {
  const match = /^run_id:([0-9a-f]+)\r?$/m.exec(info);
  if (!match) throw new Error(`redis ${address}: INFO server has no run_id`);
  return match[1]!;
}

const isNoScript = (error: unknown): boolean => error instanceof Error && error.message.startsWith("NOSCRIPT");

/**
 * One redis-server as a KvNode. Rows are stored as row-codec bytes under their
 * canonical keys; reads are one MGET, writes one EVALSHA of the LWW script.
 * Commands fail fast while disconnected (no offline queue) so composites can
 * move on to another member instead of waiting behind a dead socket.
 */
export class RedisKvNode implements KvNode {
  readonly readsNow = "never";
  readonly rawNow = undefined;
  readonly getManyNow = neverNow;
  readonly id: string;
  readonly address: string;
  private readonly client: Redis;
  private readonly timeoutMs: number;
  private lastError: string | undefined;

  constructor(options: RedisNodeOptions) {
    this.address = `${options.host}:${options.port}`;
    this.id = options.id ?? this.address;
    this.timeoutMs = options.commandTimeoutMs ?? 1000;
    const maxDelay = options.reconnectMaxDelayMs ?? 1000;
    this.client = new Redis({
      host: options.host,
      port: options.port,
      connectionName: "quiver",
      connectTimeout: options.connectTimeoutMs ?? 2000,
      enableOfflineQueue: false,
      // Commands issued in the same tick (concurrent lookups) share one socket write.
      enableAutoPipelining: true,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), maxDelay),
    });
    this.client.on("error", (error: Error) => {
      this.lastError = error.message;
    });
    this.client.on("ready", () => {
      this.lastError = undefined;
      // Warm the script cache (a promoted replica starts without it); EVAL fallback covers races.
      this.client.script("LOAD", LWW_PUT_LUA).catch(() => {});
    });
  }

  /** Creates a node and waits until its connection is ready; throws naming the address if it is not. */
  static async connect(options: RedisNodeOptions): Promise<RedisKvNode> {
    const node = new RedisKvNode(options);
    if (!(await node.whenReady(options.connectTimeoutMs ?? 2000))) {
      await node.close();
      throw new StorageTimeoutError(`redis ${node.address} (connect)`, options.connectTimeoutMs ?? 2000);
    }
    return node;
  }

  /** True once connected; false if not ready within `ms`. */
  whenReady(ms: number): Promise<boolean> {
    if (this.client.status === "ready") return Promise.resolve(true);
    return new Promise((resolve) => {
      const onReady = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.client.off("ready", onReady);
        resolve(false);
      }, ms);
      this.client.once("ready", onReady);
    });
  }

  get connected(): boolean {
    return this.client.status === "ready";
  }

  /**
   * One MGET. With a request deadline the caller (a replica set's attempt,
   * under the shard policies) already races the call against it, so no second
   * timer is armed here; without one the node's own command timeout bounds it.
   */
  async getMany(keys: readonly string[], ctx?: ReadContext): Promise<ReadSlot[]> {
    if (keys.length === 0) return [];
    const work = this.client.mgetBuffer(keys as string[]);
    const raw = ctx?.deadline !== undefined && ctx.signal === undefined ? await work : await withDeadline(work, this.timeoutMs, `redis ${this.address} MGET`, ctx?.signal);
    const out = new Array<ReadSlot>(raw.length);
    for (let i = 0; i < raw.length; i++) {
      const bytes = raw[i];
      out[i] = bytes === null || bytes === undefined ? undefined : this.rowOf(keys[i]!, bytes);
    }
    return out;
  }

  /**
   * A stored row, or UNAVAILABLE when the value under the key is not one
   * (written by something else, or damaged): that key cannot be answered,
   * the batch's others can. Counted in `health()`; the first few keys logged.
   */
  private rowOf(key: string, bytes: Buffer): ReadSlot {
    try {
      return decodeRow(bytes);
    } catch (error) {
      if (this.unreadableRows++ < 10) console.error(`quiver: redis ${this.address}: the value under ${JSON.stringify(key.slice(0, 200))} is not a stored row (${(error as Error).message}); answered UNAVAILABLE`);
      return UNAVAILABLE;
    }
  }

  /** Values read that were not rows (rowOf). */
  private unreadableRows = 0;

  /** Values read that were not stored rows (each answered UNAVAILABLE), since start. */
  get unreadable(): number {
    return this.unreadableRows;
  }

  putMany(entries: readonly KvEntry[], signal?: AbortSignal): Promise<PutOutcome> {
    if (entries.length === 0) return Promise.resolve({ written: 0, ignored: 0, sameTime: 0 });
    return withDeadline(this.runLww(entries), this.timeoutMs, `redis ${this.address} LWW put`, signal);
  }

  /**
   * Puts, then `WAIT acks ackTimeoutMs` on the same connection (one round trip:
   * both commands are pipelined). Rejects with WriteNotAcknowledgedError when
   * fewer replicas confirm; the write itself may have happened (LWW makes a retry safe).
   */
  async putManyAcked(entries: readonly KvEntry[], acks: number, ackTimeoutMs: number, signal?: AbortSignal): Promise<AckedPutOutcome> {
    if (entries.length === 0) return { written: 0, ignored: 0, sameTime: 0, acked: acks };
    const args = lwwArgs(entries);
    const putThenWait = async (script: "sha" | "source"): Promise<AckedPutOutcome> => {
      const put = script === "sha" ? this.client.evalsha(LWW_PUT_SHA, entries.length, ...args) : this.client.eval(LWW_PUT_LUA, entries.length, ...args);
      const wait = this.client.wait(acks, ackTimeoutMs);
      wait.catch(() => {});
      return { ...lwwOutcome(await put), acked: await wait };
    };
    const work = putThenWait("sha").catch((error: unknown) => {
      if (isNoScript(error)) return putThenWait("source");
      throw error;
    });
    const outcome = await withDeadline(work, this.timeoutMs + ackTimeoutMs, `redis ${this.address} LWW put + WAIT`, signal);
    if (outcome.acked < acks) throw new WriteNotAcknowledgedError(this.address, outcome.acked, acks);
    return outcome;
  }

  async deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<number> {
    if (keys.length === 0) return 0;
    return withDeadline(this.client.del(keys as string[]), this.timeoutMs, `redis ${this.address} DEL`, signal);
  }

  /** DEL, then `WAIT` on the same connection, like `putManyAcked`. */
  async deleteManyAcked(keys: readonly string[], acks: number, ackTimeoutMs: number, signal?: AbortSignal): Promise<number> {
    if (keys.length === 0) return 0;
    const del = this.client.del(keys as string[]);
    const wait = this.client.wait(acks, ackTimeoutMs);
    del.catch(() => {});
    wait.catch(() => {});
    const what = `redis ${this.address} DEL + WAIT`;
    const [count, acked] = await withDeadline(Promise.all([del, wait]), this.timeoutMs + ackTimeoutMs, what, signal);
    if (acked < acks) throw new WriteNotAcknowledgedError(this.address, acked, acks);
    return count;
  }

  /**
   * Deletes each key unless its stored row is newer than `ts` (one script call).
   * Answers the keys kept because they are newer; rebalancing copies those again.
   */
  async deleteIfNotNewer(items: ReadonlyArray<{ readonly key: string; readonly ts: number }>, signal?: AbortSignal): Promise<string[]> {
    if (items.length === 0) return [];
    const args: Array<string | Buffer> = new Array(items.length * 2);
    items.forEach((item, i) => {
      const header = Buffer.alloc(8);
      header.writeDoubleBE(item.ts, 0);
      args[i] = item.key;
      args[items.length + i] = header;
    });
    const run = async (): Promise<number[]> => {
      try {
        return (await this.client.evalsha(DELETE_IF_NOT_NEWER_SHA, items.length, ...args)) as number[];
      } catch (error) {
        if (!isNoScript(error)) throw error;
        return (await this.client.eval(DELETE_IF_NOT_NEWER_LUA, items.length, ...args)) as number[];
      }
    };
    const kept = await withDeadline(run(), this.timeoutMs, `redis ${this.address} compare-and-delete`, signal);
    return kept.map((i) => items[i - 1]!.key);
  }

  /**
   * A scan page of the rows with `prefix`. The cursor names the process that
   * issued it (`<SCAN cursor>@<run_id>`; "0" starts and ends a scan as for
   * every node), and each page is read in one MULTI with that process's
   * `run_id` (scanWithProcess): a page answered by another process (a failover
   * behind the same shard, a restart on the same address) would have skipped
   * keys silently, so it is not given: ScanRestartError, and the caller scans
   * again from "0". Costs an INFO server per page (scans only, not lookups).
   */
  async scan(cursor: string, count: number, prefix = ""): Promise<ScanPage> {
    let issuedBy: string | undefined;
    let inner = "0";
    if (cursor !== "0") {
      const at = cursor.lastIndexOf("@");
      // A bare cursor (or anything else) names no process: it cannot be trusted on whatever answers now.
      if (at > 0) {
        inner = cursor.slice(0, at);
        issuedBy = cursor.slice(at + 1);
      } else inner = cursor;
    }
    const page = await this.scanWithProcess(inner, count, prefix);
    const runId = page.process.runId;
    if (cursor !== "0" && issuedBy !== runId) throw new ScanRestartError(this.address, issuedBy, runId);
    return { cursor: page.cursor === "0" ? "0" : `${page.cursor}@${runId}`, keys: page.keys };
  }

  /**
   * A SCAN page of the rows with `prefix` (all rows by default) and the `run_id`
   * of the process that answered it, in one MULTI: both come from the same
   * process, whatever the connection did in between (a reconnect to a restarted
   * server, a new primary behind the address). The cursor is Redis's own.
   * Rebalancing restarts a scan whose process changed; `scan` refuses the page.
   */
  async scanWithProcess(cursor: string, count: number, prefix = ""): Promise<ProcessScanPage> {
    const multi = this.client.multi().info("server");
    const work = (prefix === "" ? multi.scan(cursor, "COUNT", count) : multi.scan(cursor, "MATCH", `${globEscape(prefix)}*`, "COUNT", count)).exec();
    const replies = await withDeadline(work, this.timeoutMs, `redis ${this.address} INFO + SCAN`);
    if (replies === null) throw new Error(`redis ${this.address} INFO + SCAN: transaction aborted`);
    const [[infoError, info], [scanError, scan]] = replies as [[Error | null, string], [Error | null, [string, string[]]]];
    if (infoError) throw infoError;
    if (scanError) throw scanError;
    const [next, keys] = scan;
    return {
      cursor: next,
      // Quiver's own records (the layout ledger, the placement) are the only keys here that are not rows.
      keys: keys.some((k) => k.startsWith(RECORD_KEY_PREFIX)) ? keys.filter((k) => !k.startsWith(RECORD_KEY_PREFIX)) : keys,
      process: { address: this.address, runId: runIdOf(info, this.address) },
    };
  }

  /** This server's process: its address and `run_id` (INFO server). */
  async serverProcess(): Promise<ServerProcess> {
    const info = await withDeadline(this.client.info("server"), this.timeoutMs, `redis ${this.address} INFO server`);
    return { address: this.address, runId: runIdOf(info, this.address) };
  }

  /** The placement record this server holds (shard/placement.ts), or null. */
  readPlacement(): Promise<string | null> {
    return withDeadline(this.client.get(PLACEMENT_KEY), this.timeoutMs, `redis ${this.address} GET placement`);
  }

  /** Replaces the placement record. */
  async writePlacement(record: string): Promise<void> {
    await withDeadline(this.client.set(PLACEMENT_KEY, record), this.timeoutMs, `redis ${this.address} SET placement`);
  }

  /** Removes the placement record (a shard a migration emptied and retired holds no keys to place). */
  async clearPlacement(): Promise<void> {
    await withDeadline(this.client.del(PLACEMENT_KEY), this.timeoutMs, `redis ${this.address} DEL placement`);
  }

  /**
   * The layout ledger's reconciliation on this server (LAYOUT_LEDGER_LUA): the
   * conflicts, with nothing written when there are any, and nothing at all
   * when only checking (a shard set checks every shard before recording).
   */
  async reconcileLayouts(layouts: readonly ViewLayout[], mode: "check" | "record"): Promise<LayoutMismatch[]> {
    if (layouts.length === 0) return [];
    const args = [mode, ...layouts.flatMap((l) => [l.field, l.layout])];
    const reply = (await withDeadline(this.client.eval(LAYOUT_LEDGER_LUA, 1, LAYOUT_LEDGER_KEY, ...args), this.timeoutMs, `redis ${this.address} layout ledger`)) as string[];
    const out: LayoutMismatch[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) out.push({ field: reply[i]!, stored: reply[i + 1]!, where: this.id });
    return out;
  }

  /** Every layout the ledger on this server holds (a shard a topology reload adds is given them). */
  async readLayouts(): Promise<ViewLayout[]> {
    const all = await withDeadline(this.client.hgetall(LAYOUT_LEDGER_KEY), this.timeoutMs, `redis ${this.address} HGETALL layouts`);
    return Object.entries(all).map(([field, layout]) => ({ field, layout }));
  }

  /** Number of rows on the server (DBSIZE less Quiver's own records), for migration progress. */
  async size(): Promise<number> {
    const count = Promise.all([this.client.dbsize(), this.client.exists(LAYOUT_LEDGER_KEY, PLACEMENT_KEY)]);
    const [keys, records] = await withDeadline(count, this.timeoutMs, `redis ${this.address} DBSIZE`);
    return keys - records;
  }

  /** The server's replication role and offsets (`ROLE`), for health and lag. */
  async role(signal?: AbortSignal): Promise<RedisRole> {
    const reply = (await withDeadline(this.client.role(), this.timeoutMs, `redis ${this.address} ROLE`, signal)) as unknown[];
    const name = String(reply[0]);
    if (name === "master") {
      const replicas = ((reply[2] ?? []) as unknown[][]).map((r) => ({ address: `${r[0]}:${r[1]}`, offset: Number(r[2]) }));
      return { role: "master", offset: Number(reply[1]), replicas };
    }
    if (name === "slave") {
      return { role: "replica", master: `${reply[1]}:${reply[2]}`, linkState: String(reply[3]), offset: Number(reply[4]) };
    }
    return { role: "other", name };
  }

  async health(): Promise<NodeHealth> {
    try {
      const role = await this.role();
      return { id: this.id, ok: true, detail: { address: this.address, role: role.role, ...(this.unreadableRows > 0 ? { unreadableRows: this.unreadableRows } : {}) } };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return { id: this.id, ok: false, detail: { address: this.address, error: this.lastError ?? message } };
    }
  }

  async close(): Promise<void> {
    try {
      if (this.client.status === "ready") await withDeadline(this.client.quit(), 500, `redis ${this.address} QUIT`);
    } catch {
      // Closing anyway below.
    }
    this.client.disconnect();
  }

  /** EVALSHA of the LWW script for the whole batch; EVAL when the server lacks it (fresh or promoted node). */
  private async runLww(entries: readonly KvEntry[]): Promise<PutOutcome> {
    const args = lwwArgs(entries);
    let reply: unknown;
    try {
      reply = await this.client.evalsha(LWW_PUT_SHA, entries.length, ...args);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      reply = await this.client.eval(LWW_PUT_LUA, entries.length, ...args);
    }
    return lwwOutcome(reply);
  }
}

/** The LWW script's reply (redis-lww-script.ts) as a PutOutcome. */
function lwwOutcome(reply: unknown): PutOutcome {
  const [written, ignored, sameTime] = reply as [number, number, number];
  return { written, ignored, sameTime };
}
