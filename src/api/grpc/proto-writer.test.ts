import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import protobuf from "protobufjs";
import { ProtoWriter } from "./proto-writer.ts";

type Op =
  | { readonly k: "uint32"; readonly v: number }
  | { readonly k: "int32"; readonly v: number }
  | { readonly k: "int64"; readonly v: number }
  | { readonly k: "double"; readonly v: number }
  | { readonly k: "bool"; readonly v: boolean }
  | { readonly k: "string"; readonly v: string }
  | { readonly k: "nested"; readonly v: readonly Op[] };

/** Writes the same calls to either writer (both have protobufjs's call shapes). */
interface Target {
  uint32(v: number): unknown;
  int32(v: number): unknown;
  int64(v: number): unknown;
  double(v: number): unknown;
  bool(v: boolean): unknown;
  string(v: string): unknown;
  fork(): unknown;
  ldelim(): unknown;
}

function apply(w: Target, ops: readonly Op[]): void {
  for (const op of ops) {
    if (op.k === "nested") {
      w.uint32(18);
      w.fork();
      apply(w, op.v);
      w.ldelim();
    } else {
      w.uint32(8);
      (w[op.k] as (v: unknown) => unknown).call(w, op.v);
    }
  }
}

const leaf: fc.Arbitrary<Op> = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }).map((v) => ({ k: "uint32" as const, v })),
  fc.integer({ min: -0x80000000, max: 0x7fffffff }).map((v) => ({ k: "int32" as const, v })),
  fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.constantFrom(0, -1, 2 ** 32, 2 ** 32 - 1, -(2 ** 32), 2 ** 53 - 1, -(2 ** 53) + 1, 1_763_800_000_123)).map((v) => ({ k: "int64" as const, v })),
  fc.double().map((v) => ({ k: "double" as const, v })),
  fc.boolean().map((v) => ({ k: "bool" as const, v })),
  // Well-formed text (a lone surrogate is the one place the two differ: see below).
  fc.oneof(fc.string(), fc.string({ unit: "grapheme" }), fc.string({ minLength: 130, maxLength: 400 })).map((v) => ({ k: "string" as const, v })),
);
const { message } = fc.letrec<{ message: readonly Op[]; op: Op }>((tie) => ({
  op: fc.oneof({ depthSize: "small", withCrossShrink: true }, leaf, tie("message").map((v) => ({ k: "nested" as const, v }))),
  message: fc.array(tie("op"), { maxLength: 12 }),
}));

describe("ProtoWriter", () => {
  test("writes the bytes protobufjs's Writer writes, nested messages and all (property)", () => {
    const w = new ProtoWriter();
    fc.assert(
      fc.property(message, (ops) => {
        const ours = w.reset();
        apply(ours, ops);
        const theirs = protobuf.Writer.create();
        apply(theirs, ops);
        expect(Buffer.from(ours.finish()).equals(Buffer.from(theirs.finish()))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  test("a body longer than one length byte is moved right by its prefix, and the buffer grows past 64 KB", () => {
    const w = new ProtoWriter().reset();
    const theirs = protobuf.Writer.create();
    const ops: Op[] = [{ k: "nested", v: Array.from({ length: 9000 }, (_, i) => ({ k: "double" as const, v: i / 7 })) }, { k: "string", v: "é".repeat(20_000) }];
    apply(w, ops);
    apply(theirs, ops);
    const bytes = w.finish();
    expect(bytes.length).toBeGreaterThan(64 * 1024);
    expect(Buffer.from(bytes).equals(Buffer.from(theirs.finish()))).toBe(true);
  });

  test("uint64 from a number or from Long halves, as protobufjs writes them", () => {
    for (const [low, high] of [
      [0, 0],
      [1, 0],
      [0xffffffff, 0],
      [0, 1],
      [0xffffffff, 0x7fffffff],
      [0, 0x80000000],
      [0xffffffff, 0xffffffff],
    ] as const) {
      const long = { low: low | 0, high: high | 0 };
      const ours = new ProtoWriter().reset().uint64(long).finish();
      const theirs = protobuf.Writer.create().uint64(protobuf.util.LongBits.from({ low: long.low, high: long.high, unsigned: true }).toLong(true)).finish();
      expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true);
    }
    expect(Buffer.from(new ProtoWriter().reset().uint64(2 ** 40 + 3).finish()).equals(Buffer.from(protobuf.Writer.create().uint64(2 ** 40 + 3).finish()))).toBe(true);
  });

  test("a lone surrogate is written as U+FFFD, valid UTF-8 that strict decoders accept", () => {
    const bytes = new ProtoWriter().reset().string("a\ud800b").finish();
    expect([...bytes]).toEqual([5, 0x61, 0xef, 0xbf, 0xbd, 0x62]);
    expect(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(1))).toBe("a\ufffdb");
  });

  test("an unbalanced ldelim or finish is a bug, said at once", () => {
    expect(() => new ProtoWriter().reset().ldelim()).toThrow("ldelim without fork");
    expect(() => new ProtoWriter().reset().fork().finish()).toThrow("open fork");
  });
});
