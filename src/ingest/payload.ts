import { decode } from "@msgpack/msgpack";
import { MappingError } from "./mapping.ts";

const text = new TextDecoder("utf-8", { fatal: true });

/** Decodes a payload into an object; throws MappingError("undecodable") otherwise. */
export type PayloadDecoder = (bytes: Uint8Array) => unknown;

export function payloadDecoder(format: "json" | "msgpack"): PayloadDecoder {
  const parse = format === "json" ? (b: Uint8Array) => JSON.parse(text.decode(b)) as unknown : (b: Uint8Array) => decode(b);
  return (bytes) => {
    let value: unknown;
    try {
      value = parse(bytes);
    } catch (e) {
      throw new MappingError("undecodable", "", `not valid ${format}: ${(e as Error).message}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new MappingError("undecodable", "", `expected a ${format} object`);
    return value;
  };
}
