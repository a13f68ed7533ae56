import { parse as parseYaml } from "yaml";
import { invalidArgument } from "../errors/index.ts";

/**
 * A definitions file's text (YAML, which includes JSON) as a plain value: the
 * one parse the registry, topology and sources readers share. A text that does
 * not parse is the QuiverError `code` (the file's own: `invalid_registry`,
 * `invalid_topology`, `invalid_sources`) naming `source` and the parser's
 * reason, at `errorPath`. Aliases are bounded (100), so a "billion laughs"
 * file cannot expand without limit. These readers run in a worker
 * (runtime/off-thread.ts): the server never loads the YAML parser itself.
 */
export function parseYamlText(text: string, source: string, code: string, errorPath: string): unknown {
  try {
    return parseYaml(text, { maxAliasCount: 100 });
  } catch (e) {
    throw invalidArgument(code, `${source}: not valid YAML/JSON: ${e instanceof Error ? e.message : String(e)}`, { path: errorPath });
  }
}
