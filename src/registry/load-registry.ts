import { invalidArgument } from "../errors/index.ts";
import { readTextFile } from "../runtime/index.ts";
import { compileRegistry, parseDefinitionsText } from "./compile-registry.ts";
import type { Registry } from "./registry.ts";

/** Reads, validates and compiles a definitions file; throws QuiverError naming every problem. */
export async function loadRegistryFile(path: string, now = Date.now()): Promise<Registry> {
  const text = await readTextFile(path);
  if (text === undefined) throw invalidArgument("invalid_registry", `registry file not found: ${path}`, { path: "(file)" });
  return compileRegistry(parseDefinitionsText(text, path), now);
}
