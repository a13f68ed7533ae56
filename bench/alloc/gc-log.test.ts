import { describe, expect, test } from "bun:test";
import { allocationPerRequest } from "./gc-log.ts";

const gc = (bytes: number) => `Requesting GC because bytes allocated this cycle: ${bytes} exceed bytes allowed: 8000000 normal bytes: ${bytes} oversized bytes: 0 last oversized: 0\n[GC<0x1>: START M 9000kb => EdenCollection ... END]\nGC END!`;

describe("allocationPerRequest", () => {
  test("divides whole cycles' bytes by the requests between the first and the last collection", () => {
    const log = [
      "[GC<0x1>: warm-up collection outside the window]",
      "Requesting GC because bytes allocated this cycle: 999999999 exceed bytes allowed: 1",
      "ALLOC-WINDOW START 400",
      "AT 0",
      "AT 32",
      gc(5_000), // partial cycle (started before the window): its bytes are not counted
      "AT 64",
      "AT 96",
      "AT 128",
      gc(9_600), // 96 requests after the first collection: 100 B each
      "AT 160",
      "AT 192",
      "AT 224",
      gc(9_600),
      "AT 256",
      "AT 400",
      "ALLOC-WINDOW END",
    ].join("\n");
    const m = allocationPerRequest(log, 400, 32);
    expect(m).not.toBeNull();
    expect(m!.collections).toBe(3);
    expect(m!.requests).toBe(192);
    expect(m!.bytesPerRequest).toBe(100);
    expect(m!.gcPer100k).toBe(750);
    expect(m!.resolutionBytes).toBe(17);
  });

  test("asks for a longer run when the window holds fewer than 3 collections", () => {
    expect(allocationPerRequest(["ALLOC-WINDOW START 10", "AT 0", gc(1), "AT 10", "ALLOC-WINDOW END"].join("\n"), 10)).toBeNull();
  });

  test("fails loudly when the driver did not finish its window", () => {
    expect(() => allocationPerRequest("ALLOC-WINDOW START 10\nAT 0", 10)).toThrow(/ALLOC-WINDOW/);
  });
});
