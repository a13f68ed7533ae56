import type { ShardSpec, ShardTuning } from "./topology.ts";

export { ringSignature } from "../ring/signature.ts";

/**
 * How the shards' keys are placed, recorded on every shard beside its rows.
 *
 * The ring places each key by the shard names, weights and virtual nodes; a
 * server started on another topology (a shard added to the file, a weight or
 * `--vnodes` changed, and a restart instead of a reload) would look for keys on
 * shards that do not hold them and answer NOT_FOUND, defaults, for a share of
 * every lookup, silently. A topology reload moves the keys while serving; a
 * start compares its ring with this record and refuses, or with
 * `--migrate-on-start` moves them as a reload would.
 */
export interface PlacementRecord {
  /** The ring the keys are placed by (`ringSignature`). */
  readonly ring: string;
  /** That ring's shards and defaults: how to reach them from a topology that no longer lists them. */
  readonly shards: readonly ShardSpec[];
  readonly defaults: ShardTuning;
  /** Set while a migration moves the keys to this ring. */
  readonly movingTo?: string;
}

/** What a start does about the recorded placement. */
export type PlacementVerdict =
  | { readonly kind: "record" }
  | { readonly kind: "migrate"; readonly from: PlacementRecord }
  | { readonly kind: "refuse"; readonly reason: string };

/** A stored record, or undefined when the text is not one (it is then ignored, and replaced). */
export function parsePlacement(text: string): PlacementRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<PlacementRecord>;
    if (typeof r.ring !== "string" || !Array.isArray(r.shards) || typeof r.defaults !== "object" || r.defaults === null) return undefined;
    if (r.movingTo !== undefined && typeof r.movingTo !== "string") return undefined;
    return r as PlacementRecord;
  } catch {
    return undefined;
  }
}

/**
 * Decides a start on `ring` against the records its shards hold (those it
 * could read). Nothing recorded, or every record placing the keys by `ring`:
 * record it where missing. Keys placed by another ring, or being moved: refuse,
 * or with `migrateOnStart` move them from there to `ring` (taking over a move
 * to `ring` whose server is gone: moves are idempotent, copy then
 * compare-and-delete).
 */
export function judgePlacement(records: readonly PlacementRecord[], ring: string, migrateOnStart: boolean): PlacementVerdict {
  const moving = records.find((r) => r.movingTo !== undefined);
  if (moving !== undefined) {
    if (migrateOnStart && moving.movingTo === ring) return { kind: "migrate", from: moving };
    return {
      kind: "refuse",
      reason:
        `the shards' keys are being moved from [${moving.ring}] to [${moving.movingTo}] by a topology change that has not finished (a server ` +
        `migrating now, or one stopped without its checkpoint); this topology places keys by [${ring}]. Start again once the move is done` +
        (moving.movingTo === ring ? ", or with --migrate-on-start on (one server) to take the move over" : " with its target topology"),
    };
  }
  const other = records.find((r) => r.ring !== ring);
  if (other === undefined) return { kind: "record" };
  if (migrateOnStart) return { kind: "migrate", from: other };
  return {
    kind: "refuse",
    reason:
      `the shards hold keys placed by [${other.ring}], but this topology places them by [${ring}]: lookups would look for a share of the keys ` +
      "on shards that do not hold them and answer defaults (NOT_FOUND). Move them: start one server with --migrate-on-start on (it serves " +
      "while the keys move, reading a key not yet moved from its old shard), or start with the old topology and reload the new one " +
      "(POST /admin/topology/reload)",
  };
}

/**
 * Why a running server on `ring` must not serve, given the shards' record
 * (read every few seconds), or undefined when it may: the keys are placed by
 * another ring, or being moved by another server (this one is not moving them),
 * so a share of its lookups would look where the keys no longer are.
 */
export function placementProblem(record: PlacementRecord, ring: string, moving: boolean): string | undefined {
  if (record.movingTo === undefined) {
    return record.ring === ring ? undefined : `the shards' keys are placed by [${record.ring}], not by this server's [${ring}]: reload or restart it on that topology`;
  }
  if (record.movingTo === ring && moving) return undefined;
  return `another server is moving the shards' keys from [${record.ring}] to [${record.movingTo}]; this one places them by [${ring}]: reload it on the target topology (it joins the move) or restart it once the move is done`;
}
