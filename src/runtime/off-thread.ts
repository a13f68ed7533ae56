import { type ErrorKind, type Issue, QuiverError } from "../errors/index.ts";

/**
 * Runs a file reader (text to checked, plain data) in a worker, so the code it
 * needs (the YAML parser, TypeBox: ~1k and ~2k code cells) loads in the
 * worker's heap and goes with it. A server needs that code only while it reads
 * its registry, topology or sources file, and every young collection walks
 * every code cell a process holds (src/app.ts, on loading the gRPC edge);
 * modules cannot be unloaded (dropping them from require.cache freed
 * nothing). A read costs ~60 ms, at start-up and at each reload. Where the
 * runtime has no Worker (or `worker: false`) the same reader runs in this
 * thread. A reader's QuiverError arrives as itself (kind, code, message,
 * path, every issue, retryable) either way.
 */

/**
 * A module and the name of its export `(text, source) => value`: the value
 * must survive structured cloning (plain objects, arrays, strings, numbers,
 * booleans, null), and problems are thrown as QuiverError.
 */
export interface TextReader {
  /** The module's URL (`new URL("./read-x.ts", import.meta.url).href`). */
  readonly module: string;
  readonly name: string;
}

/** What the worker is sent. */
export interface ReadRequest {
  readonly module: string;
  readonly name: string;
  readonly text: string;
  /** Names the file in error messages. */
  readonly source: string;
}

/** What the worker answers: the value, or the error as data (errors do not cross a worker's boundary as themselves). */
export type ReadReply =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: { readonly kind: ErrorKind; readonly code: string; readonly message: string; readonly path: string | undefined; readonly issues: readonly Issue[]; readonly retryable: boolean } };

/** A worker that has not answered in this long is stopped and the read fails (ms). */
const DEFAULT_TIMEOUT_MS = 30_000;

export interface ReadOptions {
  /** false: read in this thread. Default: in a worker where the runtime has Worker. */
  readonly worker?: boolean;
  readonly timeoutMs?: number;
}

type ReaderFunction = (text: string, source: string) => unknown;

/** Loads the reader's function (in whichever thread calls it). */
export async function readerFunction(reader: TextReader): Promise<ReaderFunction> {
  const fn = ((await import(reader.module)) as Record<string, unknown>)[reader.name];
  if (typeof fn !== "function") throw new Error(`${reader.module} has no reader function ${reader.name}`);
  return fn as ReaderFunction;
}

/** `reader(text, source)`, in a worker (see the module's doc); throws what the reader threw. */
export async function readOffThread<T>(reader: TextReader, text: string, source: string, options: ReadOptions = {}): Promise<T> {
  if (options.worker === false || typeof Worker !== "function") return (await readerFunction(reader))(text, source) as T;
  const reply = await askWorker({ module: reader.module, name: reader.name, text, source }, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  if (reply.ok) return reply.value as T;
  const { kind, code, message, path, issues, retryable } = reply.error;
  // Rebuilt as the reader threw it, kind and all (its cause stays in the worker): none of the helpers in errors/ fits every kind.
  throw new QuiverError(kind, code, message, { path, issues, retryable });
}

function askWorker(request: ReadRequest, timeoutMs: number): Promise<ReadReply> {
  return new Promise((resolve, reject) => {
    // A module worker: Deno takes no other kind, Bun either.
    const worker = new Worker(new URL("./reader-worker.ts", import.meta.url).href, { type: "module" });
    const finish = (settle: () => void): void => {
      clearTimeout(timer);
      worker.terminate();
      settle();
    };
    const timer = setTimeout(() => finish(() => reject(new Error(`reading ${request.source}: no answer from the reader's worker in ${timeoutMs} ms`))), timeoutMs);
    worker.onmessage = (e: MessageEvent<ReadReply>) => finish(() => resolve(e.data));
    worker.onerror = (e: ErrorEvent) => finish(() => reject(new Error(`reading ${request.source}: the reader's worker failed: ${e.message}`)));
    worker.postMessage(request);
  });
}
