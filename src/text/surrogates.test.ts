import { expect, test } from "bun:test";
import { clipText, loneSurrogateAt } from "./surrogates.ts";

test("finds the first lone surrogate, high or low, and passes pairs and plain text", () => {
  expect(loneSurrogateAt("plain")).toBe(-1);
  expect(loneSurrogateAt("e\ud83d\ude00x")).toBe(-1);
  expect(loneSurrogateAt("a\ud800")).toBe(1);
  expect(loneSurrogateAt("\udc00b")).toBe(0);
  expect(loneSurrogateAt("\ud83d\ude00\ud83dz")).toBe(2);
  expect(loneSurrogateAt("x\ude00\ud83d")).toBe(1);
});

test("clipText cuts at whole characters, never inside a surrogate pair", () => {
  expect(clipText("short", 10)).toBe("short");
  expect(clipText("abcdefghij", 5)).toBe("abcd…");
  // The cut would fall between the halves of 😀 (units 3 and 4): the pair goes whole.
  expect(clipText("abc\u{1F600}defg", 5)).toBe("abc…");
  expect(clipText("abc\u{1F600}defg", 6)).toBe("abc\u{1F600}…");
  for (let max = 1; max < 12; max++) expect(clipText("a\u{1F600}\u{1F600}\u{1F600}bcdefgh", max).isWellFormed()).toBe(true);
});
