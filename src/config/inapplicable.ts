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
    keys: ["migrateOnStart", "migrationCheckpoint", "placementCheckMs", "readFrom", "writeAcks", "commonStallMs"],
    applies: (c) => c.topologyPath !== "",
    when: "applies to Redis shards only (--topology); this server would run on the embedded store",
  },
  { keys: ["embeddedNodes"], applies: (c) => c.topologyPath === "", when: "applies to the embedded store only (no --topology)" },
  { keys: ["durability"], applies: (c) => c.topologyPath === "" && c.dataDir !== "", when: "applies to the embedded store kept on disk only (--data-dir, no --topology)" },
  { keys: ["vectorSnapshotMs"], applies: (c) => c.dataDir !== "", when: "applies only with --data-dir (where snapshots are kept)" },
  { keys: ["grpcKeepaliveMs"], applies: (c) => c.grpcPort !== -1, when: "applies only with gRPC on (--grpc-port is -1)" },
  // The topology file's cache section may name the Sentinels the flag's master name is for.
  { keys: ["cacheL2Master"], applies: (c) => c.cacheL2Sentinels !== "" || c.topologyPath !== "", when: "applies only with --cache-l2-sentinels (or a topology file's cache.l2Sentinels)" },
  { keys: ["youngGcMinRequests", "youngGcMinHeapMb"], applies: (c) => c.youngGcIntervalMs > 0, when: "applies only while young collections are paced (--young-gc-interval-ms is 0)" },
  { keys: ["admissionLimitAllowance"], applies: (c) => c.maxConcurrency === 0, when: "applies only to the adaptive limit (--max-concurrency is set to a fixed limit)" },
  { keys: ["overloadIntervalMs", "overloadTurnMs", "overloadTurnMaxMs"], applies: (c) => c.overloadDelayMs > 0, when: "applies only with CPU overload shedding on (--overload-delay-ms is 0)" },
  { keys: ["answerBatchAfter", "answerHoldMs"], applies: (c) => c.answerBatch > 1, when: "applies only with answers batched (--answer-batch is 0 or 1)" },
  { keys: ["warmupShapes"], applies: (c) => c.warmupLookups > 0, when: "applies only with a warm-up (--warmup-lookups is 0)" },
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
