import { expect, test } from "bun:test";
import { GrpcConnections } from "./connections.ts";

test("a grpc-js whose server is not the one read here counts no connections and says so, not breaking the edge", () => {
  const warnings: string[] = [];
  const connections = new GrpcConnections(() => {}, (m) => warnings.push(m));
  expect(connections.follow({})).toBe(false);
  expect(connections.follow({ http2Servers: new Map([[{}, {}]]) })).toBe(false);
  expect(connections.open).toBeUndefined();
  expect(warnings).toHaveLength(2);
  expect(warnings[0]).toContain("connections.ts");
});
