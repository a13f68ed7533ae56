// Not re-exported: read-definitions.ts (compileRegistry, parseDefinitionsText, pointerToPath). It loads the YAML parser and
// the schema validator, which the server keeps out of its process (load-registry.ts); import it from its own path.
export { compileJoinKey, compileRegistryDef, unknownRefMessage } from "./compile-registry.ts";
export type { RegistryDef } from "./definitions.ts";
export { parseDurationMs } from "./durations.ts";
export { mismatchIssues, registryLayouts } from "./layout-ledger.ts";
export { loadRegistryFile } from "./load-registry.ts";
export { type CompiledFeature, type CompiledPushSource, type CompiledView, DEFAULT_TIMESTAMP_FIELD, type FeatureRef, type JoinKey, PUSH_TIME_COLUMNS, type Registry, RegistryHolder, type VectorIndexSpec, type VectorMetric } from "./registry.ts";
export { describe as describeValue, embeddingLengthProblem, isNumeric, type ValueType } from "./value-types.ts";
