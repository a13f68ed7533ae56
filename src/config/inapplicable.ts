import { type QuiverConfig, SETTINGS } from "./config.ts";

type Key = Exclude<keyof QuiverConfig, "explicit">;

/** A setting that does something only when `applies` holds; `when` says what that takes. */
interface Rule {
  readonly keys: readonly Key[];
  readonly applies: (c: QuiverConfig) => boolean;
  readonly when: string;
}

const RULES: readonly Rule[] = [
  {
    keys: ["migrateOnStart", "migrationCheckpoint", "placementCheckMs", "readFrom", "writeAcks", "commonStallMs", "vectorCatchUpMs"],
    applies: (c) => c.topologyPath !== "",
    when: "applies to Redis shards only, and this server would run on the embedded store (no --topology)",
  },
  { keys: ["embeddedNodes"], applies: (c) => c.topologyPath === "", when: "applies to the embedded store only (no --topology)" },
  { keys: ["durability"], applies: (c) => c.topologyPath === "" && c.dataDir !== "", when: "applies to the embedded store kept on disk only (--data-dir, no --topology)" },
  { keys: ["vectorSnapshotMs"], applies: (c) => c.dataDir !== "", when: "applies only with --data-dir (where snapshots are kept)" },
  {
    keys: ["grpcKeepaliveMs", "grpcRequestWaitMs", "grpcMaxConnectionAgeMs", "grpcMaxConnectionAgeGraceMs", "grpcMaxConnectionIdleMs", "grpcStreamIdleMs"],
    applies: (c) => c.grpcPort !== -1,
    when: "applies only with gRPC on, and --grpc-port -1 turns it off",
  },
  { keys: ["grpcMaxConnectionAgeGraceMs"], applies: (c) => c.grpcMaxConnectionAgeMs > 0, when: "applies only with a connection age, and --grpc-max-connection-age 0 turns it off" },
  // The topology file's cache section may name the Sentinels the flag's master name is for.
  { keys: ["cacheL2Master"], applies: (c) => c.cacheL2Sentinels !== "" || c.topologyPath !== "", when: "applies only with --cache-l2-sentinels (or a topology file's cache.l2Sentinels)" },
  { keys: ["youngGcMinRequests", "youngGcMinHeapMb"], applies: (c) => c.youngGcIntervalMs > 0, when: "applies only while young collections are paced, and --young-gc-interval-ms 0 turns that off" },
  { keys: ["admissionLimitAllowance"], applies: (c) => c.maxConcurrency === 0, when: "applies only to the adaptive limit, and --max-concurrency sets a fixed one" },
  // Not --overload-interval-ms: the admission queue's standing rule reads it too, shedding on or off.
  { keys: ["overloadTurnMs", "overloadTurnMaxMs"], applies: (c) => c.overloadDelayMs > 0, when: "applies only with CPU overload shedding on, and --overload-delay-ms 0 turns it off" },
  { keys: ["answerBatchAfter", "answerHoldMs"], applies: (c) => c.answerBatch > 1, when: "applies only with answers batched, and --answer-batch 0 or 1 turns that off" },
  // Not --warmup-shapes: a manifest sets it for every pod, and QUIVER_WARMUP_LOOKUPS=0 for one must not stop it starting.
];

/**
 * Settings given (by flag or environment) that would do nothing with the
 * others: `--read-from replica` on the embedded store, `--durability full`
 * without `--data-dir`. They were accepted silently, so an operator believed
 * a setting was in force that was not; the server now refuses to start and
 * names each one with what it takes.
 */
export function inapplicableSettings(config: QuiverConfig): string[] {
  const out: string[] = [];
  for (const rule of RULES) {
    if (rule.applies(config)) continue;
    for (const key of rule.keys) {
      if (!config.explicit.has(key)) continue;
      const s = SETTINGS.find((x) => x.key === key);
      if (s !== undefined) out.push(`${s.flag} / ${s.env}: ${rule.when}`);
    }
  }
  return out;
}
