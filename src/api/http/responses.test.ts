import { describe, expect, test } from "bun:test";
import { decode } from "@msgpack/msgpack";
import { encodedAnswer, json, msgpack } from "./responses.ts";

/** An answer well over Bun's 16 KB cork buffer. */
const big = { rows: Array.from({ length: 2000 }, (_, i) => ({ id: i, city: "Porto" })) };

/** A real server answering from a later turn of the loop, as an answer that waited on storage does. */
async function served(answer: (path: string) => Response, paths: string[]): Promise<Response[]> {
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req) => new Promise<Response>((resolve) => setImmediate(() => resolve(answer(new URL(req.url).pathname)))),
  });
  try {
    const out: Response[] = [];
    for (const p of paths) {
      const res = await fetch(`http://127.0.0.1:${server.port}${p}`);
      await res.clone().arrayBuffer();
      out.push(res);
    }
    return out;
  } finally {
    server.stop(true);
  }
}

describe("answers completed late (after the request's callback)", () => {
  test("a large one goes out as a stream (chunked) of the same bytes, headers kept", async () => {
    const [lateJson, earlyJson, lateMsgpack] = await served(
      (path) => (path === "/msgpack" ? msgpack(big, 200, undefined, true) : json(big, 200, { "x-quiver-stale": "1" }, path === "/late")),
      ["/late", "/early", "/msgpack"],
    );
    expect(lateJson!.headers.get("transfer-encoding")).toBe("chunked");
    expect(lateJson!.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(lateJson!.headers.get("x-quiver-stale")).toBe("1");
    expect(await lateJson!.json()).toEqual(big);
    expect(earlyJson!.headers.get("content-length")).toBe(String(JSON.stringify(big).length));
    expect(lateMsgpack!.headers.get("transfer-encoding")).toBe("chunked");
    expect(decode(new Uint8Array(await lateMsgpack!.arrayBuffer()))).toEqual(big);
  });

  test("an encoder's bytes are copied: its next answer does not change this one", async () => {
    const bytes = new TextEncoder().encode(JSON.stringify(big));
    const res = encodedAnswer(bytes, false, undefined, true);
    bytes.fill(0x20);
    expect(await res.json()).toEqual(big);
  });
});
