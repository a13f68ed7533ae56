import { expect, test } from "bun:test";
import { deadlineExceeded, failedPrecondition, internal, invalid, notFound, resourceExhausted, unauthenticated, unavailable, unknownName } from "../../errors/index.ts";
import { httpStatusOf, errorHeaders } from "./error-status.ts";

test("each error kind maps to one HTTP status; unknown names in a body stay a 400", () => {
  expect(httpStatusOf(invalid("x", "a", "b"))).toBe(400);
  expect(httpStatusOf(unknownName("unknown_feature", "features[0]", "nope"))).toBe(400);
  expect(httpStatusOf(unauthenticated("no token"))).toBe(401);
  expect(httpStatusOf(notFound("not_found", "no route"))).toBe(404);
  expect(httpStatusOf(failedPrecondition("no_topology", "embedded"))).toBe(409);
  expect(httpStatusOf(resourceExhausted("shed", "busy"))).toBe(429);
  expect(httpStatusOf(internal("bug"))).toBe(500);
  expect(httpStatusOf(unavailable("down"))).toBe(503);
  expect(httpStatusOf(deadlineExceeded("late"))).toBe(504);
});

test("retryable 503s and 429s carry Retry-After; other errors do not", () => {
  const down = unavailable("down");
  expect(errorHeaders(down, httpStatusOf(down))).toEqual({ "retry-after": "1" });
  const shed = resourceExhausted("shed", "busy");
  expect(errorHeaders(shed, httpStatusOf(shed))).toEqual({ "retry-after": "1" });
  const late = deadlineExceeded("late");
  expect(errorHeaders(late, httpStatusOf(late))).toBeUndefined();
  const bad = invalid("x", "a", "b");
  expect(errorHeaders(bad, httpStatusOf(bad))).toBeUndefined();
});

test("a 401 names the scheme it expects (WWW-Authenticate)", () => {
  const denied = unauthenticated("no token");
  expect(errorHeaders(denied, httpStatusOf(denied))).toEqual({ "www-authenticate": 'Bearer realm="quiver"' });
});
