import { QuiverError } from "../errors/index.ts";
import { type ReadReply, type ReadRequest, readerFunction } from "./off-thread.ts";

/**
 * Worker entry (off-thread.ts): runs one reader on one text, answers, and is
 * terminated. The reader's module and everything it imports load here, in
 * the worker's own heap, and go with it.
 */

declare const self: { onmessage: ((e: MessageEvent<ReadRequest>) => void) | null; postMessage(reply: ReadReply): void };

self.onmessage = async (e: MessageEvent<ReadRequest>): Promise<void> => {
  const { module, name, text, source } = e.data;
  try {
    const read = await readerFunction({ module, name });
    self.postMessage({ ok: true, value: read(text, source) });
  } catch (err) {
    if (err instanceof QuiverError) {
      self.postMessage({ ok: false, error: { kind: err.kind, code: err.code, message: err.message, path: err.path, issues: err.issues, retryable: err.retryable } });
    } else {
      self.postMessage({ ok: false, error: { kind: "internal", code: "internal", message: `reading ${source}: ${err instanceof Error ? err.message : String(err)}`, path: undefined, issues: [], retryable: false } });
    }
  }
};
