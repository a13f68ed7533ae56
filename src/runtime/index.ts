export { readBytes, readTextFile, writeBytes } from "./files.ts";
export { collectGarbage } from "./gc.ts";
