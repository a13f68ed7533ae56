import { expect, test } from "bun:test";
import { loneSurrogateAt } from "./surrogates.ts";

test("finds the first lone surrogate, high or low, and passes pairs and plain text", () => {
  expect(loneSurrogateAt("plain")).toBe(-1);
  expect(loneSurrogateAt("e\ud83d\ude00x")).toBe(-1);
  expect(loneSurrogateAt("a\ud800")).toBe(1);
  expect(loneSurrogateAt("\udc00b")).toBe(0);
  expect(loneSurrogateAt("\ud83d\ude00\ud83dz")).toBe(2);
  expect(loneSurrogateAt("x\ude00\ud83d")).toBe(1);
});
