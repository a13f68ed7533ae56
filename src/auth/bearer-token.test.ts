import { expect, test } from "bun:test";
import { BearerToken } from "./bearer-token.ts";

test("admits exactly `Bearer <token>`, the scheme in any case (RFC 7235)", () => {
  const t = new BearerToken("s3cret");
  expect(t.admits("Bearer s3cret")).toBe(true);
  expect(t.admits("bearer s3cret")).toBe(true);
  expect(t.admits("BEARER s3cret")).toBe(true);
  for (const v of [null, undefined, "", "s3cret", "Bearer s3cre", "Bearer s3cret ", "Bearer  s3cret", "Basic s3cret", "Bearer s3cret\u0000", "Bearers3cret", "Bearer"]) {
    expect(t.admits(v)).toBe(false);
  }
});

test("a token no header can carry (a trailing newline from a secret file, a space) is refused at start", () => {
  for (const bad of ["abc\n", " abc", "a b", "abc\t", "a\u0000b"]) expect(() => new BearerToken(bad)).toThrow("no header can carry");
});

test("a token of any length or script compares alike; an empty one is refused at start", () => {
  const long = "x".repeat(10_000);
  expect(new BearerToken(long).admits(`Bearer ${long}`)).toBe(true);
  expect(new BearerToken(long).admits(`Bearer ${long.slice(1)}`)).toBe(false);
  expect(new BearerToken("clé-ü").admits("Bearer clé-ü")).toBe(true);
  expect(new BearerToken("clé-ü").admits("Bearer cle-u")).toBe(false);
  expect(() => new BearerToken("")).toThrow("must not be empty");
});
