import { expect, test } from "bun:test";
import { BearerToken } from "./bearer-token.ts";

test("admits exactly `Bearer <token>`", () => {
  const t = new BearerToken("s3cret");
  expect(t.admits("Bearer s3cret")).toBe(true);
  for (const v of [null, undefined, "", "s3cret", "Bearer s3cre", "Bearer s3cret ", "bearer s3cret", "Bearer  s3cret", "Basic s3cret", "Bearer s3cret\u0000"]) {
    expect(t.admits(v)).toBe(false);
  }
});

test("a token of any length or script compares alike; an empty one is refused at start", () => {
  const long = "x".repeat(10_000);
  expect(new BearerToken(long).admits(`Bearer ${long}`)).toBe(true);
  expect(new BearerToken(long).admits(`Bearer ${long.slice(1)}`)).toBe(false);
  expect(new BearerToken("clé-ü").admits("Bearer clé-ü")).toBe(true);
  expect(new BearerToken("clé-ü").admits("Bearer cle-u")).toBe(false);
  expect(() => new BearerToken("")).toThrow("must not be empty");
});
