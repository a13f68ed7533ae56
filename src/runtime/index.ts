export { type FileDigest, fileDigest, readBytes, readTextFile, writeBytes } from "./files.ts";
export { type ReadOptions, readOffThread, type TextReader } from "./off-thread.ts";
export { CORKED_BYTES, lateBody } from "./late-body.ts";
export { collectGarbage, loadYoungGc, type YoungGc } from "./gc.ts";
export { YoungGcPacer, type YoungGcPacerOptions } from "./young-gc-pacer.ts";
export { type AfterTurn, type AnswerRelease, releaseAtOnce, TurnBatch } from "./turn-batch.ts";
export { loadSqlite, SQLITE_UNAVAILABLE, type OpenSqlite, type SqliteDatabase, type SqliteStatement, type SqlValue } from "./sqlite.ts";
export { MAX_TIMER_MS } from "./timers.ts";
