import { invalidArgument } from "../errors/index.ts";
import { readTextFile } from "../runtime/index.ts";
import { compileRegistryDef } from "./compile-registry.ts";
import { type ReadOptions, readRegistryDef } from "./definitions-thread.ts";
import type { Registry } from "./registry.ts";

/**
 * Reads, validates and compiles a definitions file; throws QuiverError naming
 * every problem. The text is parsed and its structure checked in a worker
 * (definitions-thread.ts), its meaning compiled here.
 */
export async function loadRegistryFile(path: string, now = Date.now(), options: ReadOptions = {}): Promise<Registry> {
  const text = await readTextFile(path);
  if (text === undefined) throw invalidArgument("invalid_registry", `registry file not found: ${path}`, { path: "(file)" });
  return compileRegistryDef(await readRegistryDef(text, path, options), now);
}
