import { readFile, writeFile } from "node:fs/promises";

/**
 * File access for core code through node:fs, which Bun and Deno both provide,
 * so only entry points (src/main.ts, CLIs) touch runtime-specific APIs.
 */

/** The file's text, or `undefined` when there is no such file (other errors throw). */
export async function readTextFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** The file's bytes (throws when it is missing). */
export async function readBytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(path));
}

export async function writeBytes(path: string, data: string | Uint8Array): Promise<void> {
  await writeFile(path, data);
}
