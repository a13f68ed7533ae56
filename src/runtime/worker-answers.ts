import type { CallReply, CallRequest } from "./worker-calls.ts";

/** Posts a progress message for the call being handled (with `transfer`'s buffers moved). */
export type SendProgress = (progress: unknown, transfer?: ArrayBuffer[]) => void;

interface WorkerScope {
  onmessage: ((e: MessageEvent<CallRequest>) => void) | null;
  postMessage(reply: CallReply, transfer?: ArrayBuffer[]): void;
}

/**
 * The worker's side of WorkerCalls (worker-calls.ts). Call it at the top of
 * the worker's module, before anything is awaited: the handler is installed
 * at once, so no message arrives while there is none (Bun 1.4 drops those:
 * oven-sh/bun#40141). `ready` (the module's slow start, e.g. loading SQLite)
 * is awaited before the first call; calls are handled one at a time, in the
 * order they came (a handler may answer a promise: the next call waits for
 * it); whatever a handler throws is answered as an error (`code` when the
 * error has one), never left uncaught.
 */
export function answerCalls<C>(ready: Promise<C>, handle: (context: C, body: unknown, progress: SendProgress) => unknown): void {
  const scope = globalThis as unknown as WorkerScope;
  let queue: Promise<unknown> = ready.catch(() => undefined);
  scope.onmessage = (e) => {
    const { id, body } = e.data;
    queue = queue.then(async () => {
      try {
        const context = await ready;
        const value = await handle(context, body, (progress, transfer) => scope.postMessage({ id, progress }, transfer));
        scope.postMessage({ id, value: value === undefined ? null : value });
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        scope.postMessage({ id, error: { code: typeof code === "string" ? code : "", message: err instanceof Error ? err.message : String(err) } });
      }
    });
  };
}
