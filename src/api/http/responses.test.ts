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

describe("MessagePack answers built from values (grace copies)", () => {
  test("a body holding a bigint (an int64 past 2^53) is encoded, its other integers in the formats the plain encoder gives", async () => {
    // It answered 500 ("Unrecognized object: [object BigInt]") for a stale lookup of such a row.
    const body = { results: [{ values: [2n ** 63n - 1n, -(2n ** 63n), 5_000_000_000, -3_000_000_000, 7, 0.5, null, "x", [1, 2n ** 60n]] }] };
    const bytes = new Uint8Array(await msgpack(body).arrayBuffer());
    expect(decode(bytes, { useBigInt64: true })).toEqual({ results: [{ values: [2n ** 63n - 1n, -(2n ** 63n), 5_000_000_000n, -3_000_000_000n, 7, 0.5, null, "x", [1, 2n ** 60n]] }] });
    // 5e9 and -3e9 kept uint 64 / int 64 (0xcf / 0xd3), as without a bigint in the body.
    const plain = new Uint8Array(await msgpack({ v: [5_000_000_000, -3_000_000_000] }).arrayBuffer());
    expect([...plain].includes(0xcf) && [...plain].includes(0xd3)).toBe(true);
    expect([...bytes].filter((b) => b === 0xcb).length).toBe(1); // only 0.5 is a float 64
  });
});
