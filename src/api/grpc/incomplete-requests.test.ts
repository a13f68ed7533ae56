import { expect, test } from "bun:test";
import { loadConfig } from "../../config/config.ts";
import { REAL_TIMERS } from "../work-bounds.ts";
import { IncompleteRequests } from "./incomplete-requests.ts";

const paths = new Set(["/quiver.v1.FeatureService/Lookup"]);

test("the bound is a positive duration: --grpc-request-wait 10s by default, 0 or garbage refused at start", () => {
  expect(loadConfig([], {}).grpcRequestWaitMs).toBe(10_000);
  expect(loadConfig(["--grpc-request-wait", "2s"], {}).grpcRequestWaitMs).toBe(2000);
  expect(() => loadConfig(["--grpc-request-wait", "0"], {})).toThrow("--grpc-request-wait");
  expect(() => loadConfig([], { QUIVER_GRPC_REQUEST_WAIT: "soon" })).toThrow("QUIVER_GRPC_REQUEST_WAIT");
  for (const waitMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => new IncompleteRequests({ waitMs, paths, timers: REAL_TIMERS })).toThrow("waitMs");
});

test("a grpc-js whose server call is not the one read here leaves calls alone and says so once", () => {
  const warnings: string[] = [];
  const inc = new IncompleteRequests({ waitMs: 1000, paths, timers: REAL_TIMERS, warn: (m) => warnings.push(m) });
  const method = { path: "/quiver.v1.FeatureService/Lookup", requestStream: false, responseStream: false, requestDeserialize: () => null, responseSerialize: () => Buffer.alloc(0) };
  const moved = { sendStatus() {} };
  for (let i = 0; i < 3; i++) expect(inc.interceptor(method, moved as never) as unknown).toBe(moved);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain("incomplete-requests.ts");
  expect(inc.waitingCount).toBe(0);
});
