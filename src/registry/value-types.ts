import { int64Of, outOfInt64Range } from "../kv/int64.ts";
import type { FeatureValue } from "../kv/kv-node.ts";
import { clipText, loneSurrogateAt } from "../text/surrogates.ts";

/** A feature's declared type, parsed once at registry load. */
export type ValueType =
  | { readonly kind: "int64" | "float64" | "string" | "bool" }
  | { readonly kind: "int64[]" | "float64[]" | "string[]" }
  | { readonly kind: "embedding"; readonly dim: number };

export const TYPE_NAMES = ["int64", "float64", "string", "bool", "int64[]", "float64[]", "string[]", "embedding(<dim>)"] as const;

const EMBEDDING = /^embedding\((\d{1,5})\)$/;

/** Parses a type name; undefined when it is not one of TYPE_NAMES. */
export function parseValueType(name: string): ValueType | undefined {
  switch (name) {
    case "int64":
    case "float64":
    case "string":
    case "bool":
      return { kind: name };
    case "int64[]":
    case "float64[]":
    case "string[]":
      return { kind: name };
  }
  const m = EMBEDDING.exec(name);
  if (m) {
    const dim = Number(m[1]);
    if (dim >= 1 && dim <= 65536) return { kind: "embedding", dim };
  }
  return undefined;
}

export function typeName(t: ValueType): string {
  return t.kind === "embedding" ? `embedding(${t.dim})` : t.kind;
}

/**
 * Checks a value against a type; returns undefined when it fits, else what is
 * wrong. `null` always fits (stored as NULL_VALUE). Built once per feature so
 * the push path calls a prepared function instead of switching on the type.
 */
export type ValueCheck = (v: unknown) => string | undefined;

const isInt64 = (v: unknown): boolean => int64Of(v) !== undefined;
/** A finite number, or an integer literal past 2^53 that an exact parse gave as a bigint (stored as its nearest float64, as before). */
const isFloat = (v: unknown): boolean => (typeof v === "number" ? Number.isFinite(v) : typeof v === "bigint" && Number.isFinite(Number(v)));

/** What an int64 value is not: out of range (with its digits as sent), or not an integer at all. */
function int64Problem(what: string, v: unknown, element?: number): string {
  const digits = outOfInt64Range(v);
  const at = element === undefined ? "" : `element ${element} is `;
  if (digits !== undefined) return `expected ${what}, ${at}out of int64's range [-2^63, 2^63 − 1]: ${digits}`;
  return `expected ${what} (integers in [-2^63, 2^63 − 1], as numbers or decimal strings), ${element === undefined ? "got " : at}${describe(v)}`;
}

function arrayCheck(what: string, ok: (x: unknown) => boolean): ValueCheck {
  return (v) => {
    if (v === null) return undefined;
    if (!Array.isArray(v)) return `expected ${what}, got ${describe(v)}`;
    for (let i = 0; i < v.length; i++) if (!ok(v[i])) return `expected ${what}, element ${i} is ${describe(v[i])}`;
    return undefined;
  };
}

export function checkerFor(t: ValueType): ValueCheck {
  switch (t.kind) {
    case "int64":
      return (v) => (v === null || isInt64(v) ? undefined : int64Problem("int64", v));
    case "float64":
      return (v) => (v === null || isFloat(v) ? undefined : `expected float64 (a finite number), got ${describe(v)}`);
    case "string":
      return andThen((v) => (v === null || typeof v === "string" ? undefined : `expected string, got ${describe(v)}`), wellFormedProblem);
    case "bool":
      return (v) => (v === null || typeof v === "boolean" ? undefined : `expected bool, got ${describe(v)}`);
    case "int64[]":
      return (v) => {
        if (v === null) return undefined;
        if (!Array.isArray(v)) return `expected int64[], got ${describe(v)}`;
        for (let i = 0; i < v.length; i++) if (!isInt64(v[i])) return int64Problem("int64[]", v[i], i);
        return undefined;
      };
    case "float64[]":
      return arrayCheck("float64[]", isFloat);
    case "string[]":
      return andThen(arrayCheck("string[]", (x) => typeof x === "string"), (arr: readonly string[]) => {
        for (let i = 0; i < arr.length; i++) {
          const p = wellFormedProblem(arr[i]!);
          if (p !== undefined) return `element ${i}: ${p}`;
        }
        return undefined;
      });
    case "embedding":
      return andThen(arrayCheck(`embedding(${t.dim})`, isFloat), (arr: readonly number[]) =>
        arr.length !== t.dim ? `expected embedding(${t.dim}), got ${arr.length} dimensions` : embeddingLengthProblem(arr),
      );
  }
}

/**
 * The stored form of a value `checkerFor(t)` accepted (CompiledFeature.canonical):
 * int64s as src/kv/int64.ts keeps them, bigints in float64 features as numbers.
 * Values already in that form (all but a pushed big int64 or decimal text) are returned as they are.
 */
export function canonicalFor(t: ValueType): (v: unknown) => FeatureValue {
  switch (t.kind) {
    case "int64":
      // `+ 0`: an int64 -0 (JSON's `-0`) is 0, which stored rows write as an integer (they keep a -0 as float64 -0).
      return (v) => (typeof v === "number" ? v + 0 : v === null ? v : (int64Of(v) ?? null));
    case "float64":
      return (v) => (typeof v === "bigint" ? Number(v) : (v as FeatureValue));
    case "int64[]":
      return (v) => (Array.isArray(v) && !v.every((x) => typeof x === "number" && !Object.is(x, -0)) ? v.map((x) => plusZero(int64Of(x) ?? 0)) : (v as FeatureValue));
    case "float64[]":
    case "embedding":
      return (v) => (Array.isArray(v) && v.some((x) => typeof x === "bigint") ? v.map(Number) : (v as FeatureValue));
    default:
      return (v) => v as FeatureValue;
  }
}

/** An int64 with -0 as 0. */
const plusZero = (x: number | bigint): number | bigint => (typeof x === "number" ? x + 0 : x);

/** `first`, then `next` for a value other than null that `first` let through (so `next` sees the checked type). */
function andThen<T>(first: ValueCheck, next: (v: T) => string | undefined): ValueCheck {
  return (v) => first(v) ?? (v === null ? undefined : next(v as T));
}

/**
 * A string with a lone surrogate (JSON's "\ud800" escape allows one) has no
 * UTF-8 form: stored rows and MessagePack answers would carry U+FFFD instead,
 * so the value would not read back as written.
 */
function wellFormedProblem(s: string): string | undefined {
  const i = loneSurrogateAt(s);
  return i < 0 ? undefined : `the string has a lone surrogate (\\u${s.charCodeAt(i).toString(16)}) at index ${i}, which UTF-8 cannot store`;
}

/**
 * Longest embedding accepted (its L2 norm). Vector indexes compute in 32-bit
 * floats (largest ~3.4e38): past this, a distance between two embeddings can
 * overflow to Infinity and a cosine normalisation to NaN, and the index then
 * ranks garbage for every query, not just this row's (a push of 1e200s did).
 * Real embeddings are near unit length; 1e18 leaves room for any scale.
 */
export const MAX_EMBEDDING_NORM = 1e18;

/** Why finite numbers `v` are too long to be an embedding, or undefined. */
export function embeddingLengthProblem(v: readonly number[]): string | undefined {
  let sq = 0;
  for (let i = 0; i < v.length; i++) {
    // Number(): an element may be a bigint (an integer literal past 2^53, stored as its float64).
    const x = Number(v[i]!);
    sq += x * x;
  }
  const norm = Math.sqrt(sq);
  return norm <= MAX_EMBEDDING_NORM ? undefined : `the embedding's length (L2 norm) is ${norm}, over ${MAX_EMBEDDING_NORM} (vector indexes compute in 32-bit floats)`;
}

/** The derived default for a type when the definition names none. */
export function zeroValue(t: ValueType): FeatureValue {
  switch (t.kind) {
    case "int64":
    case "float64":
      return 0;
    case "string":
      return "";
    case "bool":
      return false;
    case "embedding":
      return Object.freeze(new Array<number>(t.dim).fill(0));
    default:
      return Object.freeze([]) as readonly never[];
  }
}

/**
 * Does a feature of this type hold float64s (a float64, a float64[] or an
 * embedding)? Stored MessagePack writes a whole float (2.0) as an integer and
 * JSON.stringify writes it `2`, so only the type tells an answer to write it
 * as a float.
 */
export function holdsFloats(t: ValueType): boolean {
  return t.kind === "float64" || t.kind === "float64[]" || t.kind === "embedding";
}

export function isNumeric(t: ValueType): boolean {
  return t.kind === "int64" || t.kind === "float64";
}

/** A short description of a client value for error messages (never the whole value). */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "string") return `string "${clipText(v, 41)}"`;
  if (typeof v === "number") return Number.isInteger(v) ? `integer ${v}` : `number ${v}`;
  if (typeof v === "bigint") return `integer ${v}`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}
