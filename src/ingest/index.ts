// Not re-exported: read-sources.ts (compileSources, readSourcesText), which loads the YAML parser and TypeBox.
export { type CompiledSource, compileSourcesDef, loadSourcesFile } from "./compile-sources.ts";
export type { DeadLetter, DeadLetterQueue } from "./dead-letters.ts";
export { openDeadLetters, openPublisher, openStreamSource } from "./engines.ts";
export { IngestMetrics } from "./ingest-metrics.ts";
export { type IngestDeps, IngestService } from "./ingest-service.ts";
export type { ConsumerOptions, ConsumerStatus } from "./stream-consumer.ts";
export type { Delivery, SourceLag, StreamPublisher, StreamSource } from "./stream-source.ts";
export { isReplayable, type ReplayOptions, type ReplayResult, replayDeadLetters } from "./replay.ts";
