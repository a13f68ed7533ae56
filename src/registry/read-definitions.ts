import { Value } from "@sinclair/typebox/value";
import { type Issue, invalidAll } from "../errors/index.ts";
import { parseYamlText } from "../text/yaml-text.ts";
import { compileRegistryDef } from "./compile-registry.ts";
import { type RegistryDef, RegistryDefSchema } from "./definitions.ts";
import type { Registry } from "./registry.ts";

/**
 * Definitions text to checked structure: the YAML parser and the schema
 * validator (TypeBox). Together ~3k code cells that a server needs only while
 * it reads its files, and every young collection walks every code cell a
 * process holds (src/app.ts, on loading the gRPC edge). So the server reads
 * its registry with `readRegistryText` in a worker (load-registry.ts,
 * runtime/off-thread.ts) and never loads this module itself; tools and tests
 * use it in-process. Nothing the server imports on its way to serving may
 * import this module (src/registry/index.ts does not re-export it).
 */

const REQUIRED = "is required but missing";

/** Turns a JSON pointer (`/featureViews/2/type`) into the path style of our errors (`featureViews[2].type`). */
export function pointerToPath(pointer: string): string {
  let out = "";
  for (const part of pointer.split("/").slice(1)) {
    const p = part.replace(/~1/g, "/").replace(/~0/g, "~");
    out += /^\d+$/.test(p) ? `[${p}]` : out === "" ? p : `.${p}`;
  }
  return out || "(root)";
}

/** Parses definitions text (YAML, which includes JSON) into a plain value; `code` is the error's (a sources file's is `invalid_sources`). */
export function parseDefinitionsText(text: string, source = "definitions", code = "invalid_registry"): unknown {
  return parseYamlText(text, source, code, "(root)");
}

/** Checks the structure of definitions (the schema in definitions.ts); throws one QuiverError (`invalid_registry`) listing every problem. */
export function validateRegistryDef(input: unknown): RegistryDef {
  const structural = [...Value.Errors(RegistryDefSchema, input)].map((e) => ({
    path: pointerToPath(e.path),
    message: e.message === "Expected required property" ? REQUIRED : e.message,
  }));
  if (structural.length > 0) throw invalidAll("invalid_registry", dedupe(structural));
  return input as RegistryDef;
}

/** Definitions text to checked definitions: the reader load-registry.ts runs in a worker (runtime/off-thread.ts). */
export function readRegistryText(text: string, source: string): RegistryDef {
  return validateRegistryDef(parseDefinitionsText(text, source));
}

/**
 * Validates and compiles definitions into a Registry, in this thread:
 * structure here, meaning in compile-registry.ts. Every problem of either
 * kind is reported in one QuiverError (code `invalid_registry`).
 */
export function compileRegistry(input: unknown, now = Date.now()): Registry {
  return compileRegistryDef(validateRegistryDef(input), now);
}

/** Drops repeats, and TypeBox's follow-on complaints about a property that is simply missing. */
function dedupe(issues: Issue[]): Issue[] {
  const seen = new Set<string>();
  const missing = new Set(issues.filter((i) => i.message === REQUIRED).map((i) => i.path));
  return issues.filter((i) => {
    if (missing.has(i.path) && i.message !== REQUIRED) return false;
    const k = `${i.path}\0${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
