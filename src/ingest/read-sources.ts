import { Value } from "@sinclair/typebox/value";
import { invalidAll } from "../errors/index.ts";
import type { Registry } from "../registry/index.ts";
import { parseDefinitionsText, pointerToPath } from "../registry/read-definitions.ts";
import { type CompiledSource, compileSourcesDef } from "./compile-sources.ts";
import { type SourcesDef, SourcesDefSchema } from "./sources-definitions.ts";

/**
 * Sources text to checked structure: the YAML parser and TypeBox, which a
 * server needs only while it reads the file. loadSourcesFile
 * (compile-sources.ts) runs `readSourcesText` in a worker
 * (runtime/off-thread.ts), so neither loads in the server's own heap; tools and
 * tests use this module in-process. ingest/index.ts does not re-export it.
 */

/** Checks the structure of a sources file (the schema in sources-definitions.ts); throws QuiverError `invalid_sources` listing the problems (50 at most). */
export function validateSourcesDef(input: unknown): SourcesDef {
  const structural = [...Value.Errors(SourcesDefSchema, input)].map((e) => ({ path: pointerToPath(e.path), message: e.message }));
  if (structural.length > 0) throw invalidAll("invalid_sources", structural.slice(0, 50));
  return input as SourcesDef;
}

/** Sources text to checked definitions: the reader loadSourcesFile runs in a worker. */
export function readSourcesText(text: string, source: string): SourcesDef {
  return validateSourcesDef(parseDefinitionsText(text, source, "invalid_sources"));
}

/** Validates and compiles sources against the registry, in this thread: structure here, meaning in compile-sources.ts. */
export function compileSources(input: unknown, registry: Registry): CompiledSource[] {
  return compileSourcesDef(validateSourcesDef(input), registry);
}
