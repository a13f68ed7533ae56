import { invalidArgument } from "../errors/index.ts";
import { compileRegistry, parseDefinitionsText } from "./compile-registry.ts";
import type { Registry } from "./registry.ts";

/** Reads, validates and compiles a definitions file; throws QuiverError naming every problem. */
export async function loadRegistryFile(path: string, now = Date.now()): Promise<Registry> {
  const file = Bun.file(path);
  if (!(await file.exists())) throw invalidArgument("invalid_registry", `registry file not found: ${path}`, { path: "(file)" });
  return compileRegistry(parseDefinitionsText(await file.text(), path), now);
}
