import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type KvEntry, type KvNode, UNAVAILABLE } from "../kv/kv-node.ts";
import { ringSignature } from "../ring/signature.ts";
import type { ShardedStore } from "./sharded-store.ts";

/** What re-placing the durable embedded store's rows did. */
export interface EmbeddedPlacement {
  /** The ring the data directory was last placed by (undefined: not recorded yet). */
  readonly was: string | undefined;
  readonly ring: string;
  /** Rows moved to the node that owns them now. */
  readonly moved: number;
  /** Node files no longer on the ring, emptied into it and deleted. */
  readonly drained: readonly string[];
}

const NODE_FILE = /^(embedded-\d+)\.sqlite$/;
const PAGE = 1000;

/**
 * The durable embedded store's rows placed by its current ring. Its nodes are
 * files in one data directory, placed by the ring over `--embedded-nodes`
 * nodes and `--vnodes`: started with other numbers, a lookup looked for a
 * share of the keys on nodes that did not hold them and answered NOT_FOUND
 * (4 → 2 nodes: 169 of 300 demo drivers), and the files of nodes no longer on
 * the ring were left unread. Every row not on its owner is copied there (last
 * write wins) and then deleted, and each file off the ring is emptied into the
 * store and deleted; both are idempotent, so a start cut short redoes what is
 * left. `placement.json` records the ring once done: a start with the same
 * ring and no stray file skips the scan.
 */
export async function placeEmbeddedRows(store: ShardedStore, dataDir: string, open: (id: string, file: string) => Promise<KvNode>): Promise<EmbeddedPlacement> {
  const record = join(dataDir, "placement.json");
  const was = existsSync(record) ? readRing(record) : undefined;
  const ring = ringSignature(store.ring.vnodesPerNode, store.members);
  const onRing = new Set(store.members.map((m) => m.id));
  const strays = readdirSync(dataDir).flatMap((f) => {
    const id = NODE_FILE.exec(f)?.[1];
    return id !== undefined && !onRing.has(id) ? [id] : [];
  });
  if (was === ring && strays.length === 0) return { was, ring, moved: 0, drained: [] };
  let moved = 0;
  for (const member of store.members) {
    const misplaced = (await allKeys(member.node)).filter((k) => store.nodeFor(k) !== member.node);
    moved += await moveRows(member.node, misplaced, store);
  }
  for (const id of strays) {
    const file = join(dataDir, `${id}.sqlite`);
    const node = await open(id, file);
    try {
      moved += await moveRows(node, await allKeys(node), store);
    } finally {
      await node.close();
    }
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true });
  }
  writeFileSync(`${record}.tmp`, `${JSON.stringify({ ring })}\n`);
  renameSync(`${record}.tmp`, record);
  return { was, ring, moved, drained: strays };
}

async function allKeys(node: KvNode): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const page = await node.scan(cursor, PAGE);
    for (const k of page.keys) keys.push(k);
    cursor = page.cursor;
  } while (cursor !== "0");
  return keys;
}

/** Copies `keys`' rows from `node` into `store` (to their owners), then deletes them from `node`. */
async function moveRows(node: KvNode, keys: readonly string[], store: ShardedStore): Promise<number> {
  let moved = 0;
  for (let i = 0; i < keys.length; i += PAGE) {
    const page = keys.slice(i, i + PAGE);
    const rows = await node.getMany(page);
    const entries: KvEntry[] = [];
    // A row the node could not read stays where it is (never deleted uncopied); one gone meanwhile has nothing to move.
    const settled: string[] = [];
    rows.forEach((row, j) => {
      if (row === UNAVAILABLE) return;
      if (row !== undefined) entries.push({ key: page[j]!, row });
      settled.push(page[j]!);
    });
    await store.putMany(entries);
    await node.deleteMany(settled);
    moved += entries.length;
  }
  return moved;
}

function readRing(file: string): string | undefined {
  try {
    const ring = (JSON.parse(readFileSync(file, "utf8")) as { ring?: unknown }).ring;
    return typeof ring === "string" ? ring : undefined;
  } catch {
    return undefined;
  }
}
