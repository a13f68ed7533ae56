import { expect, test } from "bun:test";
import { ByteWriter } from "./byte-writer.ts";

test("a buffer a large answer grew is let go at the next answer, so one huge lookup does not pin its memory", () => {
  const w = new ByteWriter(1024);
  const chunk = new Uint8Array(1 << 20).fill(0x61);
  for (let i = 0; i < 6; i++) w.bytes(chunk);
  const big = w.written();
  expect(big.length).toBe(6 << 20);
  expect(big.buffer.byteLength).toBeGreaterThanOrEqual(6 << 20);
  w.reset();
  w.bytes(new Uint8Array([1, 2, 3]));
  const small = w.written();
  expect([...small]).toEqual([1, 2, 3]);
  expect(small.buffer.byteLength).toBe(1024);
  // An ordinary answer keeps its grown buffer (no reallocation per request).
  for (let i = 0; i < 64; i++) w.bytes(new Uint8Array(1024));
  const grown = w.written().buffer;
  w.reset();
  w.bytes(new Uint8Array([9]));
  expect(w.written().buffer).toBe(grown);
});
