import { open, readFile, writeFile } from "node:fs/promises";
import { digests } from "./digest.ts";

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

/** A file's length and SHA-256 (hex), to tell later whether it is still what was written. */
export interface FileDigest {
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * The file's length and SHA-256, read a MiB at a time: a large file (a vector
 * index of a million embeddings is over a GB) is hashed between other work,
 * never in one long turn of the event loop.
 */
export async function fileDigest(path: string): Promise<FileDigest> {
  const file = await open(path, "r");
  try {
    const hash = digests.sha256Incremental();
    const chunk = new Uint8Array(1 << 20);
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await file.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      hash.update(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    return { bytes, sha256: hash.hex() };
  } finally {
    await file.close();
  }
}
