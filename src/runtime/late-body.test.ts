import { describe, expect, test } from "bun:test";
import { CORKED_BYTES, lateBody } from "./late-body.ts";

const filled = (n: number) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = 97 + (i % 26);
  return b;
};

describe("lateBody", () => {
  test("a body that fits the cork buffer is handed over as it is (the Response copies it)", () => {
    const bytes = filled(CORKED_BYTES);
    expect(lateBody(bytes)).toBe(bytes);
  });

  test("a larger one becomes a stream of a copy: the same bytes, whatever the encoder writes next", async () => {
    const bytes = filled(CORKED_BYTES + 1);
    const expected = bytes.slice();
    const body = lateBody(bytes);
    expect(body).toBeInstanceOf(ReadableStream);
    bytes.fill(0); // the encoder's next answer
    expect(new Uint8Array(await new Response(body).arrayBuffer())).toEqual(expected);
  });

  test("served late by a real server: chunked, whole, also beyond the socket's buffer", async () => {
    const small = filled(1000);
    const large = filled(3_000_000);
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (req) => {
        const bytes = new URL(req.url).pathname === "/large" ? large : small;
        // Completed in a later turn of the loop, as an answer that waited on storage is.
        return new Promise<Response>((resolve) => setImmediate(() => resolve(new Response(lateBody(bytes)))));
      },
    });
    try {
      const big = await fetch(`http://127.0.0.1:${server.port}/large`);
      expect(big.headers.get("transfer-encoding")).toBe("chunked");
      expect(new Uint8Array(await big.arrayBuffer())).toEqual(large);
      const little = await fetch(`http://127.0.0.1:${server.port}/small`);
      expect(little.headers.get("content-length")).toBe("1000");
      expect(new Uint8Array(await little.arrayBuffer())).toEqual(small);
    } finally {
      server.stop(true);
    }
  });
});
