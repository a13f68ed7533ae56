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
 * ring and no stray file skips the scan. Before anything moves, it records
 * that a move is under way: a move cut short (kill -9) and a start with the
 * ring it was moving from skipped the scan, since the record still named that
 * ring, and answered NOT_FOUND for the rows already moved (7,479 of 20,000).
 */
export async function placeEmbeddedRows(
  store: ShardedStore,
  dataDir: string,
  open: (id: string, file: string) => Promise<KvNode>,
  /** Fault injection for tests: called after each page of rows moved (a throw there is a start cut short). */
  afterPage: () => void = () => {},
): Promise<EmbeddedPlacement> {
  const record = join(dataDir, "placement.json");
  const previous = existsSync(record) ? readRecord(record) : undefined;
  const was = previous === undefined ? undefined : previous.moving ? `${previous.ring} (a move to it cut short)` : previous.ring;
  const ring = ringSignature(store.ring.vnodesPerNode, store.members);
  const onRing = new Set(store.members.map((m) => m.id));
  const strays = readdirSync(dataDir).flatMap((f) => {
    const id = NODE_FILE.exec(f)?.[1];
    return id !== undefined && !onRing.has(id) ? [id] : [];
  });
  const nodes = store.members.map((m) => m.id);
  if (was === ring && strays.length === 0) {
    // A record from before 12-07 names no node files: add them, so a missing one is noticed from the next start.
    if (previous?.nodes === undefined) writeRecord(record, { ring, nodes });
    return { was, ring, moved: 0, drained: [] };
  }
  writeRecord(record, { ring, nodes, moving: true });
  let moved = 0;
  for (const member of store.members) {
    const misplaced = (await allKeys(member.node)).filter((k) => store.nodeFor(k) !== member.node);
    moved += await moveRows(member.node, misplaced, store, afterPage);
  }
  for (const id of strays) {
    const file = join(dataDir, `${id}.sqlite`);
    const node = await open(id, file);
    try {
      moved += await moveRows(node, await allKeys(node), store, afterPage);
    } finally {
      await node.close();
    }
    for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true });
  }
  writeRecord(record, { ring, nodes });
  return { was, ring, moved, drained: strays };
}

interface PlacementRecord {
  readonly ring: string;
  /** The node files the ring's rows are in (absent in records written before 12-07). */
  readonly nodes?: readonly string[];
  /** Rows are being moved to this ring: a start must scan, whatever its ring. */
  readonly moving?: boolean;
}

function writeRecord(file: string, value: PlacementRecord): void {
  writeFileSync(`${file}.tmp`, `${JSON.stringify(value)}\n`);
  renameSync(`${file}.tmp`, file);
}

/**
 * Refuses a data directory that lacks a node file its placement record names:
 * a partial restore started silently and answered NOT_FOUND for that node's
 * rows (447 of 2,000). Call before the nodes are opened (opening creates them).
 */
export function checkNodeFiles(dataDir: string): void {
  const record = join(dataDir, "placement.json");
  const placed = existsSync(record) ? readRecord(record) : undefined;
  const missing = (placed?.nodes ?? []).filter((id) => !existsSync(join(dataDir, `${id}.sqlite`)));
  if (missing.length > 0) {
    throw new Error(
      `${dataDir}: ${missing.map((id) => `${id}.sqlite`).join(", ")} missing, but placement.json records rows placed there; restore the file(s), or delete ${record} to start without their rows`,
    );
  }
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
async function moveRows(node: KvNode, keys: readonly string[], store: ShardedStore, afterPage: () => void): Promise<number> {
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
    afterPage();
  }
  return moved;
}

/** The record, or undefined when it cannot be read (a scan then places every row). */
function readRecord(file: string): PlacementRecord | undefined {
  try {
    const v = JSON.parse(readFileSync(file, "utf8")) as { ring?: unknown; nodes?: unknown; moving?: unknown };
    if (typeof v.ring !== "string") return undefined;
    const nodes = Array.isArray(v.nodes) && v.nodes.every((n) => typeof n === "string" && NODE_FILE.test(`${n}.sqlite`)) ? (v.nodes as string[]) : undefined;
    return { ring: v.ring, ...(nodes !== undefined ? { nodes } : {}), ...(v.moving === true ? { moving: true } : {}) };
  } catch {
    return undefined;
  }
}
