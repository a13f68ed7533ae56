import { type ErrorKind, type Issue, QuiverError } from "../errors/index.ts";
import type { RegistryDef } from "./definitions.ts";

/**
 * Reads definitions text (YAML or JSON) into checked structure in a worker,
 * so the YAML parser and the schema validator (read-definitions.ts, ~3k code
 * cells) load in the worker's heap and go with it: the server's own heap never
 * holds them, and every young collection walks every code cell a process
 * holds (src/app.ts, on loading the gRPC edge). A worker costs ~0.1 s at
 * start-up and at each registry reload. Where the runtime has no Worker, the
 * same module runs in this thread. Errors are the same QuiverError
 * (`invalid_registry`, every issue) either way.
 */

/** What the worker is sent. */
export interface DefinitionsRequest {
  readonly text: string;
  /** Names the file in error messages. */
  readonly source: string;
}

/** What the worker answers: the checked definitions, or the error as data (errors do not cross a worker's boundary as themselves). */
export type DefinitionsReply =
  | { readonly ok: true; readonly def: RegistryDef }
  | { readonly ok: false; readonly error: { readonly kind: ErrorKind; readonly code: string; readonly message: string; readonly path: string | undefined; readonly issues: readonly Issue[] } };

/** A worker that has not answered in this long is stopped and the read fails (ms). */
const DEFAULT_TIMEOUT_MS = 30_000;

export interface ReadOptions {
  /** false: read in this thread (tools, and runtimes without Worker). Default: a worker where the runtime has one. */
  readonly worker?: boolean;
  readonly timeoutMs?: number;
}

/** Parses and checks definitions text; throws QuiverError naming every problem. */
export async function readRegistryDef(text: string, source: string, options: ReadOptions = {}): Promise<RegistryDef> {
  if (options.worker === false || typeof Worker !== "function") {
    const { parseDefinitionsText, validateRegistryDef } = await import("./read-definitions.ts");
    return validateRegistryDef(parseDefinitionsText(text, source));
  }
  const reply = await askWorker({ text, source }, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  if (reply.ok) return reply.def;
  const { kind, code, message, path, issues } = reply.error;
  throw new QuiverError(kind, code, message, { path, issues });
}

function askWorker(request: DefinitionsRequest, timeoutMs: number): Promise<DefinitionsReply> {
  return new Promise((resolve, reject) => {
    // A module worker: Deno takes no other kind, Bun either.
    const worker = new Worker(new URL("./definitions-worker.ts", import.meta.url).href, { type: "module" });
    const finish = (settle: () => void): void => {
      clearTimeout(timer);
      worker.terminate();
      settle();
    };
    const timer = setTimeout(() => finish(() => reject(new Error(`reading ${request.source}: no answer from the definitions worker in ${timeoutMs} ms`))), timeoutMs);
    worker.onmessage = (e: MessageEvent<DefinitionsReply>) => finish(() => resolve(e.data));
    worker.onerror = (e: ErrorEvent) => finish(() => reject(new Error(`reading ${request.source}: the definitions worker failed: ${e.message}`)));
    worker.postMessage(request);
  });
}
