export { readBytes, readTextFile, writeBytes } from "./files.ts";
export { collectGarbage, loadYoungCollector, type YoungCollector } from "./gc.ts";
export { YoungGcPacer, type YoungGcPacerOptions, type YoungGcStats } from "./young-gc-pacer.ts";
