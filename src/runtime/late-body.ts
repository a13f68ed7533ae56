/**
 * The body of an answer completed after its request's socket callback has
 * returned — one written once storage has answered, not from memory.
 *
 * Bun (1.4.5) corks a response only while the callback that read its request
 * runs. Completed later, a response whose body fits the socket's 16 KB cork
 * buffer still leaves in one send(), but a larger one is written uncorked:
 * 15 send() calls, the status line and each header's name, `: `, value and
 * CRLF apart, then the body (strace; oven-sh/bun#41341, open, would cork
 * them). Every such call wakes the client. Handed over as a direct
 * ReadableStream, the head and the body leave in one sendmsg(), and the
 * terminating chunk in one more: the answer goes out with chunked encoding
 * instead of a Content-Length. Measured: 100-entity JSON lookups on 3 Redis
 * shards, closed loop, three alternating pairs: 1,708–1,913 answers/s against
 * 1,448–1,710, p50 7.0–7.9 against 8.2–9.4 ms.
 *
 * Answers completed inside their request's callback (the embedded store's,
 * read synchronously) are written in one call already and keep their bytes,
 * as do smaller ones and answers on other runtimes.
 *
 * `bytes` may be a view of an encoder's buffer: it is copied, as
 * `new Response(bytes)` would copy it.
 */
export function lateBody(bytes: Uint8Array): Uint8Array | ReadableStream<Uint8Array> {
  if (!ON_BUN || bytes.length <= CORKED_BYTES) return bytes;
  const own = bytes.slice();
  return new ReadableStream<Uint8Array>({
    type: "direct",
    pull(controller) {
      // The chunk is taken even when the socket's buffer is full (write then answers a promise of the drain).
      const written = controller.write(own);
      if (typeof written === "number") {
        controller.close();
        return;
      }
      return written.then(() => controller.close());
    },
  });
}

const ON_BUN = (globalThis as { Bun?: unknown }).Bun !== undefined;

/**
 * Largest body written in one call when the response completes late: Bun's
 * cork buffer (16 KB) less room for the status line and headers (bodies of
 * 15,000 bytes left in one send(), 17,000 in fifteen).
 */
export const CORKED_BYTES = 16 * 1024 - 1024;
