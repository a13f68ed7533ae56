import type { FeatureValue } from "../../kv/kv-node.ts";

/**
 * How the gRPC encoders write a value into a typed protobuf field. A stored
 * value is normally of its feature's type (pushes are checked against it),
 * but a row written before the registry changed a feature's type without a
 * new view version holds the old type: it is written as the field's empty
 * value (0, "", false, an empty list; list elements likewise), never as bytes
 * of another type and never as a failed lookup.
 */
export function numberOr0(v: unknown): number {
  return typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : 0;
}

/** An int64 field's value: a number, or a bigint past 2^53 (src/kv/int64.ts); 0 for a value of another type. */
export function int64Or0(v: unknown): number | bigint {
  return typeof v === "number" || typeof v === "bigint" ? v : 0;
}

export function stringOrEmpty(v: unknown): string {
  return typeof v === "string" ? v : "";
}

const EMPTY: readonly never[] = [];

export function listOrEmpty(v: FeatureValue | undefined): readonly unknown[] {
  return Array.isArray(v) ? v : EMPTY;
}
