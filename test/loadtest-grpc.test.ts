import { expect, test } from "bun:test";
import { loadProtos } from "../src/api/grpc/protos.ts";
import { feastLookupTemplate, quiverLookupTemplate } from "../loadtest/grpc/request-bytes.ts";

const protos = loadProtos();
const key = { name: "driver_id", space: { kind: "int" as const, base: 1001 } };

test("quiver.v1 lookup templates decode to the drawn keys, with fixed-width varint slots", () => {
  const t = quiverLookupTemplate("grpc-lookup", ["driver_hourly_stats:conv_rate", "driver_hourly_stats:city"], key, 3);
  const a = t.render([0, 5, 2 ** 30]);
  const b = t.render([9, 9, 9]);
  expect(a.length).toBe(b.length);
  const msg = protos.type("quiver.v1.LookupRequest").toObject(protos.type("quiver.v1.LookupRequest").decode(a), { longs: String }) as Record<string, unknown>;
  expect(msg).toMatchObject({ features: ["driver_hourly_stats:conv_rate", "driver_hourly_stats:city"], fill_defaults: true, entities: [{ name: "driver_id", int64_values: ["1001", "1006", String(1001 + 2 ** 30)] }] });
});

test("Feast lookup templates decode to one int64 Value per row", () => {
  const t = feastLookupTemplate("grpc-feast", ["driver_hourly_stats:rating"], key, 2);
  const type = protos.type("feast.serving.GetOnlineFeaturesRequest");
  const msg = type.toObject(type.decode(t.render([3, 4])), { longs: String, oneofs: true }) as { features: { val: string[] }; entities: Record<string, { val: { int64_val: string }[] }> };
  expect(msg.features.val).toEqual(["driver_hourly_stats:rating"]);
  expect(msg.entities.driver_id!.val.map((v) => v.int64_val)).toEqual(["1004", "1005"]);
});

test("string join keys are refused: they cannot have fixed-width slots", () => {
  expect(() => quiverLookupTemplate("x", ["customer_profile:segment"], { name: "customer_id", space: { kind: "string", prefix: "c" } }, 1)).toThrow("integer join keys only");
});
