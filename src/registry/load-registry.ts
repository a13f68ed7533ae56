import { invalidArgument } from "../errors/index.ts";
import { type ReadOptions, readOffThread, readTextFile, type TextReader } from "../runtime/index.ts";
import { compileRegistryDef } from "./compile-registry.ts";
import type { RegistryDef } from "./definitions.ts";
import type { Registry } from "./registry.ts";

/** read-definitions.ts's reader, run in a worker: the YAML parser and TypeBox never load in the server's own heap. */
export const REGISTRY_READER: TextReader = { module: new URL("./read-definitions.ts", import.meta.url).href, name: "readRegistryText" };

/**
 * Reads, validates and compiles a definitions file; throws QuiverError naming
 * every problem. The text is parsed and its structure checked in a worker
 * (runtime/off-thread.ts), its meaning compiled here.
 */
export async function loadRegistryFile(path: string, now = Date.now(), options: ReadOptions = {}): Promise<Registry> {
  const text = await readTextFile(path).catch((e: unknown) => {
    // A directory in its place, no read permission, ...: the operator's file to fix, like a missing one (it was a 500
    // "internal error; see the server log" for a reload).
    throw invalidArgument("invalid_registry", `registry file not readable: ${path}: ${(e as Error).message}`, { path: "(file)" });
  });
  if (text === undefined) throw invalidArgument("invalid_registry", `registry file not found: ${path}`, { path: "(file)" });
  return compileRegistryDef(await readOffThread<RegistryDef>(REGISTRY_READER, text, path, options), now);
}
