export { demoCounts, loadDemoData } from "./demo-data.ts";
export { ColumnEntities, type EntityInput, entityKeys, keyPart, parseEntities, RowEntities } from "./entity-input.ts";
export { formatRfc3339, parseEventTime } from "./event-time.ts";
export { type LookupQuery, type LookupResult, LookupService } from "./lookup-service.ts";
export { type PushOptions, PushService } from "./push-service.ts";
export { MAX_FEATURES_PER_REQUEST, resolveFeatures } from "./resolve-features.ts";
export { STATUS_NAMES, Status, type StatusCode } from "./statuses.ts";
