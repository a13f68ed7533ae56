export { type ArenaMemoryStats, ArenaKvNode, type MemoryReporting } from "./arena-node.ts";
export { KeyBatch } from "./key-batch.ts";
export { ForwardingKvNode } from "./forwarding-node.ts";
export { DurableKvNode, type DurableNodeOptions } from "./durable-node.ts";
export type { DurableState, ReopenEvent, ReopenOptions } from "./durable-reopen.ts";
export { encodeKeyPart, ringKeyOf, ringKeyStart, storageKey, viewKeyPrefix } from "./keys.ts";
export {
  type FeatureValue,
  type KvEntry,
  type KvNode,
  type NodeHealth,
  type PutOutcome,
  type ReadContext,
  type ReadSlot,
  type ScanPage,
  type StoredRow,
  combineReadsNow,
  neverNow,
  type ReadsNow,
  UNAVAILABLE,
  type Unavailable,
} from "./kv-node.ts";
export { MemoryKvNode } from "./memory-node.ts";
export { decodeRow, encodeRow, rowTimestamp } from "./row-codec.ts";
export { SCAN_RESTARTS, scanPasses } from "./scan-passes.ts";
export { ScanRestartError } from "./storage-errors.ts";
