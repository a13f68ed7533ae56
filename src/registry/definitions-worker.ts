import { QuiverError } from "../errors/index.ts";
import type { DefinitionsReply, DefinitionsRequest } from "./definitions-thread.ts";
import { parseDefinitionsText, validateRegistryDef } from "./read-definitions.ts";

/**
 * Worker entry (definitions-thread.ts): reads one definitions text into
 * checked structure, answers, and is terminated. The YAML parser and the
 * schema validator load here, in the worker's own heap, and go with it.
 */

declare const self: { onmessage: ((e: MessageEvent<DefinitionsRequest>) => void) | null; postMessage(reply: DefinitionsReply): void };

self.onmessage = (e: MessageEvent<DefinitionsRequest>): void => {
  const { text, source } = e.data;
  try {
    self.postMessage({ ok: true, def: validateRegistryDef(parseDefinitionsText(text, source)) });
  } catch (err) {
    if (err instanceof QuiverError) {
      self.postMessage({ ok: false, error: { kind: err.kind, code: err.code, message: err.message, path: err.path, issues: err.issues } });
    } else {
      self.postMessage({ ok: false, error: { kind: "internal", code: "internal", message: `reading ${source}: ${err instanceof Error ? err.message : String(err)}`, path: undefined, issues: [] } });
    }
  }
};
